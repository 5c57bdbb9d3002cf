//! A bounded memo of access tokens known to be genuine: JWTs whose signature verified, and
//! opaque tokens whose row the store returned.
//!
//! Resource servers introspect the same token on every call it makes; an ECDSA verification
//! or a store round trip costs many times a hash lookup. A token's claims are immutable, so
//! once it is genuine it stays so: only that is memoized, while expiry, revocation (the
//! revocation list, synced from the store on every maintenance pass) and the client's
//! existence are still checked on every request. An opaque token's row lives until the token
//! expires, so a memo never outlives it. Nothing is memoized for a token that is not found.
//! Keys are the SHA-256 of the whole token, so no other string can hit an entry.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use super::AccessTokenClaims;

pub struct VerifiedTokens {
    entries: RwLock<HashMap<[u8; 32], Arc<AccessTokenClaims>>>,
    capacity: usize,
}

impl VerifiedTokens {
    pub fn new(capacity: usize) -> VerifiedTokens {
        VerifiedTokens { entries: RwLock::new(HashMap::new()), capacity }
    }

    pub fn get(&self, digest: &[u8; 32]) -> Option<Arc<AccessTokenClaims>> {
        self.entries.read().expect("lock").get(digest).cloned()
    }

    /// Remembers a verified token. When full, starts over: simpler than LRU bookkeeping on
    /// the hot path, and a miss only costs one verification.
    pub fn insert(&self, digest: [u8; 32], claims: Arc<AccessTokenClaims>) {
        let mut entries = self.entries.write().expect("lock");
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(digest, claims);
    }

    /// Forgets everything (e.g. when the set of published keys changes).
    pub fn clear(&self) {
        self.entries.write().expect("lock").clear();
    }
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        VerifiedTokens::new(100_000)
    }
}
