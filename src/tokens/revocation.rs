//! The revocation list of self-contained (JWT) access tokens, held in memory for the hot
//! path and mirrored in the store so that it survives restarts and is shared by replicas.

use std::{collections::HashMap, sync::RwLock};

/// Revoked token ids (`jti`) with their expiry; entries are dropped once the token would
/// have expired anyway.
#[derive(Default)]
pub struct RevocationList {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    revoked: HashMap<String, i64>,
    /// Highest store sequence number seen, for incremental sync.
    last_seq: i64,
}

impl RevocationList {
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.inner.read().expect("lock").revoked.contains_key(jti)
    }

    pub fn insert(&self, jti: String, expires_at: i64) {
        self.inner.write().expect("lock").revoked.insert(jti, expires_at);
    }

    pub fn last_seq(&self) -> i64 {
        self.inner.read().expect("lock").last_seq
    }

    /// Merges entries read from the store (`(seq, jti, expires_at)`).
    pub fn merge(&self, entries: Vec<(i64, String, i64)>) {
        let mut inner = self.inner.write().expect("lock");
        for (seq, jti, exp) in entries {
            inner.last_seq = inner.last_seq.max(seq);
            inner.revoked.insert(jti, exp);
        }
    }

    /// Forgets entries whose tokens have expired.
    pub fn purge(&self, now: i64) {
        self.inner.write().expect("lock").revoked.retain(|_, exp| *exp > now);
    }

    pub fn len(&self) -> usize {
        self.inner.read().expect("lock").revoked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
