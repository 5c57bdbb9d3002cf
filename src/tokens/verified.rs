//! A bounded memo of JWT access tokens whose signature already verified.
//!
//! Resource servers introspect the same token on every call it makes; an ECDSA verification
//! costs several times a hash lookup. A token is immutable, so once its signature verified
//! it verifies forever: only the signature result is memoized, while expiry, revocation and
//! the client's existence are still checked on every request. Keys are the SHA-256 of the
//! whole token, so no other string can hit an entry.

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
