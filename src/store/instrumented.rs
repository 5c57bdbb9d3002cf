//! A [`Store`] that times every call of the store it wraps and reports failures: the one
//! place store latency and errors are measured, instead of one timer per call site.
//!
//! The store sits below the metrics in the layering, so it knows no metric type: it reports
//! to a [`StoreObserver`], which the runtime implements over its Prometheus registry.
//! `operation` is the trait method's name, from the fixed set [`OPERATIONS`] (generated with
//! the forwarding methods, so the two cannot drift apart).

use std::{sync::Arc, time::Duration, time::Instant};

use async_trait::async_trait;

use super::{
    AuthorizationCode, ClientIdClaim, CodeRedemption, Consent, DecoupledDecision, DecoupledPoll, DecoupledRequest,
    PoolStats, RefreshToken, RegisteredClient, Registration, Revocation, Rotation, Session, Store, StoreError,
    UserRecord,
};
use crate::api::ObjectKey;
use crate::secrets::SecretHash;
use crate::tokens::AccessTokenClaims;

/// Told about every call of an [`Instrumented`] store once it completed.
pub trait StoreObserver: Send + Sync + 'static {
    /// `operation`: one of [`OPERATIONS`]; `failed`: the call returned a [`StoreError`].
    fn observe(&self, operation: &'static str, elapsed: Duration, failed: bool);
}

/// `inner`, with every call reported to `observer`.
pub struct Instrumented {
    inner: Arc<dyn Store>,
    observer: Arc<dyn StoreObserver>,
}

impl Instrumented {
    pub fn new(inner: Arc<dyn Store>, observer: Arc<dyn StoreObserver>) -> Instrumented {
        Instrumented { inner, observer }
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.observer.observe(operation, started.elapsed(), result.is_err());
        result
    }
}

/// The forwarding methods of [`Instrumented`] and the list of their names, from one list of
/// the [`Store`] methods' signatures (a method missing here fails to compile: the impl
/// would be incomplete).
macro_rules! instrumented {
    ($( async fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty; )*) => {
        /// Every `operation` an [`Instrumented`] store reports: the [`Store`] methods that
        /// query the database.
        pub const OPERATIONS: &[&str] = &[$(stringify!($name)),*];

        #[async_trait]
        impl Store for Instrumented {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, StoreError> {
                    self.timed(stringify!($name), self.inner.$name($($arg),*)).await
                }
            )*

            // Not a query: read from the pool's counters, nothing to time.
            fn pool_stats(&self) -> PoolStats {
                self.inner.pool_stats()
            }
        }
    };
}

instrumented! {
    async fn count_rows(&self, table: &str) -> i64;
    async fn storage_bytes(&self, tables: &[&str]) -> i64;
    async fn ping(&self) -> ();
    async fn object_uid(&self, kind: &str, key: &ObjectKey) -> String;
    async fn claim_client_id(&self, client_id: &str, app: &ObjectKey, now: i64) -> ClientIdClaim;
    async fn client_id_holder(&self, client_id: &str) -> Option<ObjectKey>;
    async fn release_client_id(&self, app: &ObjectKey) -> Option<String>;
    async fn client_secret_hashes(&self, client_id: &str, now: i64) -> Vec<SecretHash>;
    async fn add_first_client_secret(&self, client_id: &str, hash: &SecretHash, now: i64) -> bool;
    async fn set_client_secret(&self, client_id: &str, hash: &SecretHash, now: i64) -> ();
    async fn rotate_client_secret(
        &self,
        client_id: &str,
        hash: &SecretHash,
        now: i64,
        previous_expires_at: i64,
    ) -> ();
    async fn forget_client(&self, client_id: &str, now: i64) -> u64;
    async fn register_client(
        &self,
        client: &RegisteredClient,
        limits: &crate::api::RegistrationLimits,
        now: i64,
    ) -> Registration;
    async fn registered_client(&self, client_id: &str) -> Option<RegisteredClient>;
    async fn record_client(&self, client: &RegisteredClient, now: i64) -> bool;
    async fn update_registered_client(
        &self,
        client_id: &str,
        metadata: &serde_json::Value,
        dedupe_key: Option<&str>,
    ) -> bool;
    async fn delete_registered_client(&self, client_id: &str, now: i64) -> bool;
    async fn registered_clients(&self) -> Vec<RegisteredClient>;
    async fn set_registered_client_tags(&self, client_id: &str, tags: &[String]) -> bool;
    async fn put_decoupled_request(
        &self,
        digest: &[u8; 32],
        code: &str,
        authorization: &DecoupledRequest,
        interval: i64,
        now: i64,
    ) -> bool;
    async fn decoupled_request(&self, code: &str, now: i64) -> Option<DecoupledRequest>;
    async fn decide_decoupled_request(&self, code: &str, decision: &DecoupledDecision, now: i64) -> bool;
    async fn poll_decoupled_request(&self, digest: &[u8; 32], now: i64) -> DecoupledPoll;
    async fn touch_registered_client(&self, client_id: &str, now: i64) -> ();
    async fn reap_registered_clients(&self, policy: &ObjectKey, unused_since: i64, batch: u32) -> Vec<String>;
    async fn put_opaque_token(&self, digest: &[u8; 32], claims: &AccessTokenClaims) -> ();
    async fn opaque_token(&self, digest: &[u8; 32]) -> Option<AccessTokenClaims>;
    async fn revoke(&self, jti: &str, expires_at: i64) -> ();
    async fn revocations_since(&self, seq: i64) -> Vec<Revocation>;
    async fn put_code(&self, digest: &[u8; 32], code: &AuthorizationCode) -> ();
    async fn redeem_code(&self, digest: &[u8; 32], now: i64) -> CodeRedemption;
    async fn bind_code_issuance(
        &self,
        digest: &[u8; 32],
        family_id: Option<&str>,
        access_token: (&str, i64),
    ) -> ();
    async fn active_consent(
        &self,
        client_id: &str,
        subject: &str,
        tenant: Option<&str>,
        now: i64,
    ) -> Option<Consent>;
    async fn save_consent(&self, consent: &Consent) -> ();
    async fn consent(&self, id: &str, now: i64) -> Option<Consent>;
    async fn consents_of(&self, subject: &str, now: i64) -> Vec<Consent>;
    async fn active_consents(&self, now: i64) -> Vec<Consent>;
    async fn active_consent_counts(&self, now: i64) -> std::collections::HashMap<String, u32>;
    async fn revoke_consent(&self, id: &str, subject: &str, now: i64) -> bool;
    async fn put_refresh_token(&self, digest: &[u8; 32], token: &RefreshToken) -> ();
    async fn rotate_refresh_token(
        &self,
        old: &[u8; 32],
        new_digest: &[u8; 32],
        new_expires_at: i64,
        now: i64,
    ) -> Rotation;
    async fn live_refresh_token(&self, digest: &[u8; 32], now: i64) -> Option<RefreshToken>;
    async fn live_refresh_token_with_user(&self, digest: &[u8; 32], now: i64) -> Option<(RefreshToken, Option<UserRecord>)>;
    async fn revoke_family(&self, family_id: &str) -> ();
    async fn record_login(&self, user: &UserRecord, now: i64) -> UserRecord;
    async fn user(&self, subject: &str) -> Option<UserRecord>;
    async fn users_by_login(&self, login: &str) -> Vec<UserRecord>;
    async fn set_backchannel_user_code(&self, subject: &str, hash: Option<&str>) -> bool;
    async fn backchannel_user_code(&self, subject: &str) -> Option<String>;
    async fn put_session(&self, digest: &[u8; 32], session: &Session, expires_at: i64) -> ();
    async fn session(&self, digest: &[u8; 32], now: i64) -> Option<Session>;
    async fn delete_session(&self, digest: &[u8; 32]) -> ();
    async fn put_pending(&self, id: &str, request: &str, expires_at: i64) -> ();
    async fn pending(&self, id: &str, now: i64) -> Option<String>;
    async fn delete_pending(&self, id: &str) -> ();
    async fn take_pending(&self, id: &str, now: i64) -> Option<String>;
    async fn purge_expired(&self, now: i64, batch: u32) -> u64;
    async fn use_assertion_jti(&self, digest: &[u8; 32], expires_at: i64, now: i64) -> bool;
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Calls(Mutex<Vec<(&'static str, bool)>>);

    impl StoreObserver for Calls {
        fn observe(&self, operation: &'static str, _elapsed: Duration, failed: bool) {
            self.0.lock().expect("lock").push((operation, failed));
        }
    }

    #[tokio::test]
    async fn every_call_is_reported_under_its_method_name_with_its_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Store> = Arc::new(super::super::SqliteStore::open(&dir.path().join("s.db")).await.unwrap());
        let calls = Arc::new(Calls::default());
        let store = Instrumented::new(inner, calls.clone());
        store.ping().await.unwrap();
        assert_eq!(store.pending("nope", 0).await.unwrap(), None);
        // Not a table: the inner store refuses, and the failure is reported.
        assert!(store.count_rows("no_such_table").await.is_err());
        assert_eq!(*calls.0.lock().unwrap(), [("ping", false), ("pending", false), ("count_rows", true)]);
        assert!(store.pool_stats().max > 0);
        assert_eq!(calls.0.lock().unwrap().len(), 3, "pool statistics are not a query");
    }

    #[test]
    fn the_operations_are_distinct_method_names() {
        let unique: std::collections::BTreeSet<_> = OPERATIONS.iter().collect();
        assert_eq!(unique.len(), OPERATIONS.len());
        assert!(OPERATIONS.contains(&"rotate_refresh_token") && OPERATIONS.contains(&"ping"));
    }
}
