//! Runtime state behind one trait (DESIGN "Where state lives").
//!
//! Declared configuration never lives here; this holds what the server itself creates:
//! object UIDs of folder-mode apps, hashes of client secrets, opaque access tokens and the
//! revocation list. SQLite is the embedded default.

mod sqlite;

use async_trait::async_trait;

pub use sqlite::SqliteStore;

use crate::catalog::ObjectKey;
use crate::secrets::SecretHash;
use crate::tokens::AccessTokenClaims;

/// Storage failures, split by what the caller should do about them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is busy: retry later (HTTP 503).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data does not decode: a bug or tampering.
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
}

/// A revoked token id as stored: `(sequence number, jti, expires_at)`.
pub type Revocation = (i64, String, i64);

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The UID of a folder-mode object: assigned once, like the API server would, and stable
    /// across restarts. Client ids derive from it.
    async fn object_uid(&self, kind: &str, key: &ObjectKey) -> Result<String, StoreError>;

    /// Hashes of the client secrets currently accepted for `client_id`.
    async fn client_secret_hashes(
        &self,
        client_id: &str,
        now: i64,
    ) -> Result<Vec<SecretHash>, StoreError>;

    /// Makes `hash` the only accepted secret of `client_id`.
    async fn set_client_secret(
        &self,
        client_id: &str,
        hash: &SecretHash,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Records an opaque access token under the SHA-256 digest of its value.
    async fn put_opaque_token(
        &self,
        digest: &[u8; 32],
        claims: &AccessTokenClaims,
    ) -> Result<(), StoreError>;

    /// Looks an opaque access token up by digest (expired ones included; callers check).
    async fn opaque_token(
        &self,
        digest: &[u8; 32],
    ) -> Result<Option<AccessTokenClaims>, StoreError>;

    /// Adds a token id to the revocation list until `expires_at`.
    async fn revoke(&self, jti: &str, expires_at: i64) -> Result<(), StoreError>;

    /// Revocations with a sequence number above `seq`, in order.
    async fn revocations_since(&self, seq: i64) -> Result<Vec<Revocation>, StoreError>;

    /// Deletes at most `batch` expired rows per table; returns how many went.
    async fn purge_expired(&self, now: i64, batch: u32) -> Result<u64, StoreError>;
}
