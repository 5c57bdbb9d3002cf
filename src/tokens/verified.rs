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

/// What the memo may hold, estimated from its entries' sizes: about 20k tokens (measured by
/// `make bench-memory`, the server's RSS grows up to about twice this with the allocator's
/// overhead). Each token costs far more than its claims' bytes; a budget in entries would
/// let tokens with long claims grow the heap unseen.
pub const DEFAULT_BUDGET_BYTES: usize = 16 * 1024 * 1024;

pub struct VerifiedTokens {
    entries: RwLock<Entries>,
    budget_bytes: usize,
}

#[derive(Default)]
struct Entries {
    by_digest: HashMap<[u8; 32], Arc<AccessTokenClaims>>,
    /// The estimated footprint of `by_digest`.
    bytes: usize,
}

impl VerifiedTokens {
    /// A memo holding up to about `budget_bytes` of entries.
    pub fn new(budget_bytes: usize) -> VerifiedTokens {
        VerifiedTokens { entries: RwLock::new(Entries::default()), budget_bytes }
    }

    pub fn get(&self, digest: &[u8; 32]) -> Option<Arc<AccessTokenClaims>> {
        self.entries.read().expect("lock").by_digest.get(digest).cloned()
    }

    /// Remembers a verified token. When the budget is spent, starts over: simpler than LRU
    /// bookkeeping on the hot path, and a miss only costs one verification or store read.
    pub fn insert(&self, digest: [u8; 32], claims: Arc<AccessTokenClaims>) {
        let size = footprint(&claims);
        let mut entries = self.entries.write().expect("lock");
        if entries.by_digest.contains_key(&digest) {
            return;
        }
        if entries.bytes + size > self.budget_bytes {
            entries.by_digest.clear();
            entries.bytes = 0;
        }
        entries.by_digest.insert(digest, claims);
        entries.bytes += size;
    }

    /// Forgets the tokens that expired before `now`: they are never active again, and their
    /// bytes go back to the budget.
    pub fn forget_expired(&self, now: i64) {
        let mut entries = self.entries.write().expect("lock");
        let mut freed = 0;
        entries.by_digest.retain(|_, claims| {
            let live = claims.exp > now;
            if !live {
                freed += footprint(claims);
            }
            live
        });
        entries.bytes -= freed;
    }

    /// Forgets everything (e.g. when the set of published keys changes).
    pub fn clear(&self) {
        let mut entries = self.entries.write().expect("lock");
        entries.by_digest.clear();
        entries.bytes = 0;
    }

    /// Entries held, and their estimated bytes.
    pub fn usage(&self) -> (usize, usize) {
        let entries = self.entries.read().expect("lock");
        (entries.by_digest.len(), entries.bytes)
    }
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        VerifiedTokens::new(DEFAULT_BUDGET_BYTES)
    }
}

/// An entry's estimated bytes: the claims, their heap strings with the allocator's
/// per-allocation overhead, and the table slot.
fn footprint(claims: &AccessTokenClaims) -> usize {
    const PER_ALLOCATION: usize = 16;
    let text = |s: &str| s.len().next_multiple_of(16) + PER_ALLOCATION;
    let optional = |s: &Option<String>| s.as_deref().map_or(0, text);
    let mut bytes = std::mem::size_of::<AccessTokenClaims>() + PER_ALLOCATION + 16 // the Arc
        + 32 + 8 + 8 // key, value, table control bytes and slack
        + text(&claims.iss) + text(&claims.sub) + text(&claims.jti) + text(&claims.client_id)
        + optional(&claims.client_namespace) + optional(&claims.scope) + optional(&claims.tenant);
    bytes += match &claims.aud {
        super::Audience::One(audience) => text(audience),
        super::Audience::Many(audiences) => PER_ALLOCATION + audiences.iter().map(|a| text(a) + 24).sum::<usize>(),
    };
    if let Some(roles) = &claims.roles {
        bytes += PER_ALLOCATION + roles.iter().map(|r| text(r) + 24).sum::<usize>();
    }
    if let Some(kubernetes) = &claims.kubernetes {
        // Namespace, ServiceAccount and Pod names and uids.
        bytes += std::mem::size_of_val(&**kubernetes) + PER_ALLOCATION + 6 * text("kubernetes-object-name");
    }
    let mut act = claims.act.as_deref();
    while let Some(actor) = act {
        bytes += std::mem::size_of_val(actor) + PER_ALLOCATION + text(&actor.sub) + optional(&actor.client_id);
        act = actor.act.as_deref();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Audience;

    fn claims(jti: &str) -> Arc<AccessTokenClaims> {
        Arc::new(AccessTokenClaims {
            iss: "https://id.example.com".into(),
            sub: "bc810102-2429-44b7-9048-fa94d06ea4d0".into(),
            aud: Audience::One("https://billing.example.com".into()),
            exp: 2_000_000_000,
            iat: 1_999_999_000,
            jti: jti.into(),
            client_id: "bc810102-2429-44b7-9048-fa94d06ea4d0".into(),
            client_namespace: Some("default".into()),
            scope: Some("billing:read".into()),
            tenant: None,
            roles: None,
            kubernetes: None,
            act: None,
        })
    }

    #[test]
    fn holds_entries_within_its_budget_then_starts_over() {
        let one = footprint(&claims("j0"));
        assert!((400..1200).contains(&one), "an entry is estimated at {one} bytes");
        let memo = VerifiedTokens::new(10 * one);
        for i in 0..10u8 {
            memo.insert([i; 32], claims("j0"));
        }
        assert_eq!(memo.usage(), (10, 10 * one));
        assert!(memo.get(&[3; 32]).is_some());
        // The same token again costs nothing more.
        memo.insert([3; 32], claims("j0"));
        assert_eq!(memo.usage(), (10, 10 * one));
        // One more does not fit: the memo starts over with it.
        memo.insert([10; 32], claims("j0"));
        assert_eq!(memo.usage(), (1, one));
        assert!(memo.get(&[3; 32]).is_none() && memo.get(&[10; 32]).is_some());
        memo.clear();
        assert_eq!(memo.usage(), (0, 0));
    }

    #[test]
    fn expired_tokens_are_forgotten_and_their_bytes_returned() {
        let memo = VerifiedTokens::new(1 << 20);
        let expiring = |exp| Arc::new(AccessTokenClaims { exp, ..(*claims("j")).clone() });
        memo.insert([1; 32], expiring(100));
        memo.insert([2; 32], expiring(200));
        let one = footprint(&expiring(100));
        memo.forget_expired(100);
        assert_eq!(memo.usage(), (1, one));
        assert!(memo.get(&[1; 32]).is_none() && memo.get(&[2; 32]).is_some());
        memo.forget_expired(199);
        assert_eq!(memo.usage(), (1, one));
        memo.forget_expired(200);
        assert_eq!(memo.usage(), (0, 0));
    }
}
