//! Runtime state behind one trait (DESIGN "Where state lives").
//!
//! Declared configuration never lives here; this holds what the server itself creates:
//! object UIDs of folder-mode apps, hashes of client secrets, opaque access tokens and the
//! revocation list. SQLite is the embedded default.
//!
//! `sql.rs` is the one implementation of [`Store`] for both backends; `dialect.rs` holds what
//! differs between SQLite and PostgreSQL; `migrations/<backend>/NNN_name.sql` the schema,
//! numbered alike on both. `instrumented.rs` wraps any store to time its calls (metrics).

mod dialect;
mod instrumented;
mod sql;

use async_trait::async_trait;

pub use dialect::{PostgresStore, SqliteStore};
pub use instrumented::{Instrumented, OPERATIONS, StoreObserver};

use crate::api::ObjectKey;
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

/// An authorization code's binding (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3): everything the
/// token request must match, and what the tokens will carry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthorizationCode {
    pub client_id: String,
    pub redirect_uri: String,
    /// The authorization request named `redirect_uri`: the token request must repeat it.
    #[serde(default = "yes")]
    pub redirect_uri_given: bool,
    /// S256 PKCE challenge.
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub scopes: Vec<String>,
    pub resources: Vec<String>,
    pub tenant: Option<String>,
    pub subject: String,
    pub auth_time: i64,
    pub consent_id: String,
    /// The tenant-wide consent that granted some of the scopes, when it is not
    /// `consent_id` itself: revoking it ends this grant too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_consent_id: Option<String>,
    pub expires_at: i64,
}

fn yes() -> bool {
    true
}

/// What redeeming a code found.
#[derive(Debug, PartialEq, Eq)]
pub enum CodeRedemption {
    /// First use: the code is now spent.
    Fresh(Box<AuthorizationCode>),
    /// Already used: the caller must revoke what the first redemption issued.
    Replayed {
        family_id: Option<String>,
        access_token: Option<(String, i64)>,
    },
    Unknown,
}

/// A consent: which scopes a user granted an app, in a tenant, until when.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Consent {
    pub id: String,
    pub client_id: String,
    pub subject: String,
    pub tenant: Option<String>,
    /// Who granted it (the user, or an administrator acting for the tenant).
    pub granted_by: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A refresh token's state. Rotation issues a new token in the same family; presenting a
/// rotated token again revokes the family (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefreshToken {
    pub family_id: String,
    pub client_id: String,
    pub subject: String,
    pub consent_id: String,
    /// The tenant-wide consent that granted some of the scopes, when it is not
    /// `consent_id` itself: revoking it ends this grant too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_consent_id: Option<String>,
    pub scopes: Vec<String>,
    pub resources: Vec<String>,
    pub tenant: Option<String>,
    pub auth_time: i64,
    pub expires_at: i64,
}

/// What presenting a refresh token found.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// Valid: it is now spent and its successor stored.
    Rotated(RefreshToken),
    /// Already rotated: the whole family has just been revoked.
    Reused { family_id: String },
    /// Unknown, expired or revoked.
    Invalid,
}

/// An end user as the store knows them: who an identity source said they are at their last
/// login. UserInfo, refresh and consent read this record (never the configuration), so a
/// user signed in through any source is the same on every replica and after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct UserRecord {
    /// Stable, opaque subject identifier (`sub`).
    pub subject: String,
    /// The identity source that signed them in last (`development`, or `namespace/name` of
    /// an IdentityProvider).
    pub source: String,
    /// What the user is called on pages (a login name or an email address).
    pub username: String,
    /// The tenants the user belongs to (from the identity source, at the last login).
    pub tenants: Vec<String>,
    /// Roles held only in one tenant (tenant → roles), on top of `roles`.
    pub tenant_roles: std::collections::BTreeMap<String, Vec<String>>,
    /// Roles held in every tenant, checked against `Scope.spec.requiredRoles` and carried
    /// in access tokens.
    pub roles: Vec<String>,
    /// Attributes released by userInfo scopes (`email`, `name`...).
    pub attributes: std::collections::BTreeMap<String, String>,
    pub first_login_at: i64,
    pub last_login_at: i64,
}

impl UserRecord {
    /// Whether the user belongs to `tenant`.
    pub fn member_of(&self, tenant: &str) -> bool {
        self.tenants.iter().any(|t| t == tenant)
    }

    /// The tenant a user of exactly one tenant acts in when none is named.
    pub fn sole_tenant(&self) -> Option<&str> {
        match self.tenants.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// The roles the user holds when acting in `tenant` (their roles, plus the tenant's own
    /// when they belong to it), sorted and without duplicates. Roles of one tenant never
    /// count in another.
    pub fn roles_in(&self, tenant: Option<&str>) -> Vec<String> {
        let mut roles = self.roles.clone();
        if let Some(tenant) = tenant.filter(|t| self.member_of(t))
            && let Some(extra) = self.tenant_roles.get(tenant)
        {
            roles.extend(extra.iter().cloned());
        }
        roles.sort();
        roles.dedup();
        roles
    }
}

/// An authorization request decided by a user away from the client: a device authorization
/// (RFC 8628 §3.1) or a backchannel authentication request (OpenID Connect CIBA Core §7),
/// waiting for the user's decision.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DecoupledRequest {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub resources: Vec<String>,
    pub tenant: Option<String>,
    pub expires_at: i64,
    /// CIBA: the only user who may decide (the one the client's hint named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// CIBA: the text the client asked to show the user beside the request (§7.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding_message: Option<String>,
    /// CIBA ping mode: where to tell the client that the user decided, and the bearer token
    /// it gave for that call (§10.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<ClientNotification>,
}

/// A CIBA ping notification's target (the app's endpoint) and credential.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientNotification {
    pub endpoint: String,
    pub token: String,
    /// The request's `auth_req_id`, which the notification carries.
    pub auth_req_id: String,
}

/// What a user granted a client through a decoupled flow (the device grant): everything the
/// tokens will carry, and the consents they rest on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserGrant {
    pub client_id: String,
    pub subject: String,
    pub auth_time: i64,
    pub scopes: Vec<String>,
    pub resources: Vec<String>,
    pub tenant: Option<String>,
    pub consent_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_consent_id: Option<String>,
}

/// The user's answer to a device authorization request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecoupledDecision {
    Approved(UserGrant),
    Denied,
}

/// What one poll of the token endpoint finds (RFC 8628 §3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecoupledPoll {
    /// Not decided yet (`authorization_pending`).
    Pending,
    /// Polled before its interval passed: the interval is now this many seconds
    /// (`slow_down`, 5 s more each time).
    SlowDown { interval: i64 },
    /// Decided, and now spent: no other poll will see it.
    Decided(DecoupledDecision),
    /// Unknown, expired or already spent (`expired_token`).
    Expired,
}

/// A login session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub subject: String,
    pub auth_time: i64,
}

/// A self-registered client (RFC 7591), as stored. Never in etcd: registrations are
/// unbounded input from the internet.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisteredClient {
    pub client_id: String,
    /// The ConsentPolicy that admitted it.
    pub policy: ObjectKey,
    /// The client metadata as registered (RFC 7591 §2 names), normalized.
    pub metadata: serde_json::Value,
    /// HMAC of the client secret (confidential clients).
    pub secret_hash: Option<SecretHash>,
    /// HMAC of the registration access token (RFC 7592); None for deduplicated public
    /// registrations handed to a second registrant.
    pub registration_token_hash: Option<SecretHash>,
    /// Identical public registrations share one client: the digest of their metadata.
    pub dedupe_key: Option<String>,
    /// Where the registration came from (the peer address), for rate limits.
    pub source: String,
    pub created_at: i64,
    pub last_used_at: i64,
    /// Tags an administrator gave it (`inbound clients tag`): never from the client's own
    /// metadata.
    pub tags: Vec<String>,
}

/// What a registration attempt did.
#[derive(Clone, Debug, PartialEq)]
pub enum Registration {
    Created,
    /// An identical public registration exists: that client.
    Existing(Box<RegisteredClient>),
    /// A policy limit refused it.
    Limited(RegistrationLimit),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationLimit {
    MaxClients,
    PerSource,
    Total,
}

/// A fresh client id for a registered client: a random UUID (never derived from the
/// request, so it cannot be chosen by the registrant).
pub fn new_client_id() -> String {
    sql::new_uid()
}

/// The answer to a claim of a client id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientIdClaim {
    /// The app holds the id (claimed now or before).
    Held,
    /// Another app claimed it first.
    TakenBy(ObjectKey),
    /// The app already holds another id.
    AppHolds(String),
}

/// How busy the connection pool is: what saturation is read from (a request waits for a
/// connection when `in_use` reaches `max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections lent out to a query or transaction now.
    pub in_use: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

/// A revoked token id as stored: `(sequence number, jti, expires_at)`.
pub type Revocation = (i64, String, i64);

/// Opens the store named by `url`: `postgres://...` / `postgresql://...` for PostgreSQL,
/// otherwise SQLite at `sqlite_path` (the embedded default).
pub async fn open(url: Option<&str>, sqlite_path: &std::path::Path) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(std::sync::Arc::new(PostgresStore::connect(url).await?))
        }
        Some(other) => Err(StoreError::Unavailable(format!(
            "unsupported store {:?}: use postgres://... or omit it for the embedded SQLite store",
            other.split('@').next_back().unwrap_or("")
        ))),
        None => Ok(std::sync::Arc::new(SqliteStore::open(sqlite_path).await?)),
    }
}

/// How long an administrator's deletion of a metadata-document client stands. Blocking one
/// for good is the policy's business (`allowedDomains`).
pub const TOMBSTONE_LIFETIME: i64 = 30 * 86_400;

/// Every table of the schema (both backends), the migrations' own `schema_migrations` aside.
pub const TABLES: &[&str] = &[
    "objects",
    "client_secrets",
    "opaque_tokens",
    "revocations",
    "authorization_codes",
    "consents",
    "refresh_families",
    "refresh_tokens",
    "sessions",
    "pending_requests",
    "registered_clients",
    "client_tombstones",
    "users",
    "assertion_jtis",
    "decoupled_requests",
];

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Rows in `table` (one of [`TABLES`]), for tests and diagnostics.
    async fn count_rows(&self, table: &str) -> Result<i64, StoreError>;

    /// Bytes on disk of `tables` with their indexes (benchmarks and capacity planning).
    async fn storage_bytes(&self, tables: &[&str]) -> Result<i64, StoreError>;

    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The connection pool's current use (no query: read from the pool).
    fn pool_stats(&self) -> PoolStats;

    /// The UID of a folder-mode object: assigned once, like the API server would, and stable
    /// across restarts. Client ids derive from it.
    async fn object_uid(&self, kind: &str, key: &ObjectKey) -> Result<String, StoreError>;

    /// Claims `client_id` (an InboundApp's `spec.clientId`) for the app `app`. The first
    /// claim of an id wins and is kept, by `namespace/name`: a restore, a re-creation or a
    /// Velero move under the same name finds it again, and no object takes it by choosing
    /// an id. An app holds one id (the field is immutable).
    async fn claim_client_id(&self, client_id: &str, app: &ObjectKey, now: i64) -> Result<ClientIdClaim, StoreError>;

    /// Who holds a claimed client id (what a serving replica checks before serving it).
    async fn client_id_holder(&self, client_id: &str) -> Result<Option<ObjectKey>, StoreError>;

    /// Gives up the id `app` holds (the app was deleted for good); returns it, `None` when
    /// `app` held none (it may have named an id another app holds).
    async fn release_client_id(&self, app: &ObjectKey) -> Result<Option<String>, StoreError>;

    /// Hashes of the client secrets currently accepted for `client_id`.
    async fn client_secret_hashes(&self, client_id: &str, now: i64) -> Result<Vec<SecretHash>, StoreError>;

    /// Records `hash` as the secret of `client_id` unless it already has one; true when this
    /// call won. Replicas provisioning the same app at once agree on one secret.
    async fn add_first_client_secret(&self, client_id: &str, hash: &SecretHash, now: i64) -> Result<bool, StoreError>;

    /// Makes `hash` the only accepted secret of `client_id`.
    async fn set_client_secret(&self, client_id: &str, hash: &SecretHash, now: i64) -> Result<(), StoreError>;

    /// Rotation: `hash` becomes the current secret of `client_id`; secrets accepted until now
    /// stay accepted until `previous_expires_at` (the overlap), never longer than before.
    async fn rotate_client_secret(
        &self,
        client_id: &str,
        hash: &SecretHash,
        now: i64,
        previous_expires_at: i64,
    ) -> Result<(), StoreError>;

    /// The client is gone (its InboundApp was deleted): revokes every consent and refresh
    /// token family granted to it and forgets its secrets. Returns the consents revoked.
    async fn forget_client(&self, client_id: &str, now: i64) -> Result<u64, StoreError>;

    /// Registers a client unless an identical public registration exists (same
    /// `dedupe_key`) or a limit is reached; atomic with respect to concurrent registrations.
    /// A client found by its `dedupe_key` is shared from then on and loses its registration
    /// access token (nobody manages a shared client).
    async fn register_client(
        &self,
        client: &RegisteredClient,
        limits: &crate::api::RegistrationLimits,
        now: i64,
    ) -> Result<Registration, StoreError>;

    async fn registered_client(&self, client_id: &str) -> Result<Option<RegisteredClient>, StoreError>;

    /// Records (or refreshes) a client known from its Client ID Metadata Document, so that
    /// it is listed, managed and reaped like a registered one. No limits apply: the
    /// document's host is on the policy's allow list. False, and nothing recorded, while
    /// an administrator's deletion of it stands (see [`Store::delete_registered_client`]).
    async fn record_client(&self, client: &RegisteredClient, now: i64) -> Result<bool, StoreError>;

    /// RFC 7592 update: new metadata (and dedupe key). False when the client is gone.
    async fn update_registered_client(
        &self,
        client_id: &str,
        metadata: &serde_json::Value,
        dedupe_key: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Deletes a registered client with its consents, refresh tokens and secrets. A
    /// metadata-document client stays deleted for [`TOMBSTONE_LIFETIME`]: its document is
    /// not recorded again meanwhile, so its tokens do not come back to life.
    async fn delete_registered_client(&self, client_id: &str, now: i64) -> Result<bool, StoreError>;

    /// Every registered client (for the CLI and the admin API), oldest first.
    async fn registered_clients(&self) -> Result<Vec<RegisteredClient>, StoreError>;

    /// Stores a decoupled request under the digest of its device code or auth_req_id, and
    /// `code` (a device's normalised user code, or the digest of a CIBA approval link),
    /// polled at most every `interval` seconds; false when `code` is in use (draw another).
    async fn put_decoupled_request(
        &self,
        digest: &[u8; 32],
        code: &str,
        authorization: &DecoupledRequest,
        interval: i64,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// The undecided, live request `code` names.
    async fn decoupled_request(&self, code: &str, now: i64) -> Result<Option<DecoupledRequest>, StoreError>;

    /// Records the user's decision; false when the request is gone or already decided.
    async fn decide_decoupled_request(
        &self,
        code: &str,
        decision: &DecoupledDecision,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// One poll: a decision is handed out once (the row goes with it); polls faster than
    /// the interval slow the client down.
    async fn poll_decoupled_request(&self, digest: &[u8; 32], now: i64) -> Result<DecoupledPoll, StoreError>;

    /// Replaces a registered client's tags; false when there is no such client.
    async fn set_registered_client_tags(&self, client_id: &str, tags: &[String]) -> Result<bool, StoreError>;

    /// Records a use; at most one write per client per minute.
    async fn touch_registered_client(&self, client_id: &str, now: i64) -> Result<(), StoreError>;

    /// Deletes (as `delete_registered_client`) up to `batch` clients of `policy` unused since
    /// `unused_since`; returns their ids.
    async fn reap_registered_clients(
        &self,
        policy: &ObjectKey,
        unused_since: i64,
        batch: u32,
    ) -> Result<Vec<String>, StoreError>;

    /// Records an opaque access token under the SHA-256 digest of its value.
    async fn put_opaque_token(&self, digest: &[u8; 32], claims: &AccessTokenClaims) -> Result<(), StoreError>;

    /// Looks an opaque access token up by digest (expired ones included; callers check).
    async fn opaque_token(&self, digest: &[u8; 32]) -> Result<Option<AccessTokenClaims>, StoreError>;

    /// Adds a token id to the revocation list until `expires_at`.
    async fn revoke(&self, jti: &str, expires_at: i64) -> Result<(), StoreError>;

    /// Revocations with a sequence number above `seq`, in order.
    async fn revocations_since(&self, seq: i64) -> Result<Vec<Revocation>, StoreError>;

    /// Stores a fresh authorization code under the digest of its value.
    async fn put_code(&self, digest: &[u8; 32], code: &AuthorizationCode) -> Result<(), StoreError>;

    /// Spends a code, atomically: of concurrent redemptions exactly one sees `Fresh`.
    async fn redeem_code(&self, digest: &[u8; 32], now: i64) -> Result<CodeRedemption, StoreError>;

    /// Records what a code's redemption issued, so a replay can revoke it.
    async fn bind_code_issuance(
        &self,
        digest: &[u8; 32],
        family_id: Option<&str>,
        access_token: (&str, i64),
    ) -> Result<(), StoreError>;

    /// The active consent of `subject` for `client_id` in `tenant`.
    async fn active_consent(
        &self,
        client_id: &str,
        subject: &str,
        tenant: Option<&str>,
        now: i64,
    ) -> Result<Option<Consent>, StoreError>;

    /// Creates the consent, or replaces scopes and expiry of the active one (same id).
    async fn save_consent(&self, consent: &Consent) -> Result<(), StoreError>;

    async fn consent(&self, id: &str, now: i64) -> Result<Option<Consent>, StoreError>;

    /// Active consents of a user, newest first.
    async fn consents_of(&self, subject: &str, now: i64) -> Result<Vec<Consent>, StoreError>;

    /// Every active consent, newest first (consent administration: CLI and admin API).
    async fn active_consents(&self, now: i64) -> Result<Vec<Consent>, StoreError>;

    /// How many active consents each client has (clients with none are absent).
    async fn active_consent_counts(&self, now: i64) -> Result<std::collections::HashMap<String, u32>, StoreError>;

    /// Revokes a user's consent and every refresh token family issued under it.
    /// Returns false if the user has no such active consent.
    async fn revoke_consent(&self, id: &str, subject: &str, now: i64) -> Result<bool, StoreError>;

    /// Stores a refresh token (its family is created on first use).
    async fn put_refresh_token(&self, digest: &[u8; 32], token: &RefreshToken) -> Result<(), StoreError>;

    /// Spends `old` and stores `new_digest` with `new_expires_at` in the same family. Only a
    /// token whose family is live and whose consent is active (not revoked, not expired) can
    /// be spent: checked in the same atomic step, so a revocation elsewhere wins at once.
    async fn rotate_refresh_token(
        &self,
        old: &[u8; 32],
        new_digest: &[u8; 32],
        new_expires_at: i64,
        now: i64,
    ) -> Result<Rotation, StoreError>;

    /// The refresh token with this digest while it can be spent (unused, unexpired, its
    /// family live and its consent active); changes nothing. The token endpoint checks a
    /// request against it before rotating, so that a refused request does not spend the
    /// grant; revocation and introspection read it.
    async fn live_refresh_token(&self, digest: &[u8; 32], now: i64) -> Result<Option<RefreshToken>, StoreError>;

    /// [`Store::live_refresh_token`] with the record of the user it was issued to (`None`
    /// when that user is gone), in one read: the token endpoint checks a refresh request
    /// against both before it rotates, and a round trip less is a third of the rotation's.
    async fn live_refresh_token_with_user(
        &self,
        digest: &[u8; 32],
        now: i64,
    ) -> Result<Option<(RefreshToken, Option<UserRecord>)>, StoreError>;

    async fn revoke_family(&self, family_id: &str) -> Result<(), StoreError>;

    /// Records a login: creates the user's record or refreshes it with what the identity
    /// source said now (`first_login_at` is kept, `last_login_at` becomes `now`). Returns
    /// the record as stored.
    async fn record_login(&self, user: &UserRecord, now: i64) -> Result<UserRecord, StoreError>;

    /// The user with this subject, if they ever signed in.
    async fn user(&self, subject: &str) -> Result<Option<UserRecord>, StoreError>;

    /// The users whose login name or `email` attribute is `login` (CIBA `login_hint`), most
    /// recently signed in first; at most two (more than one is ambiguous).
    async fn users_by_login(&self, login: &str) -> Result<Vec<UserRecord>, StoreError>;

    /// Sets (or with None clears) the user's CIBA user code, an argon2 PHC string; false
    /// when no user has this subject. A later login keeps it.
    async fn set_backchannel_user_code(&self, subject: &str, hash: Option<&str>) -> Result<bool, StoreError>;

    /// The user's CIBA user code (argon2 PHC string), if they set one.
    async fn backchannel_user_code(&self, subject: &str) -> Result<Option<String>, StoreError>;

    async fn put_session(&self, digest: &[u8; 32], session: &Session, expires_at: i64) -> Result<(), StoreError>;
    async fn session(&self, digest: &[u8; 32], now: i64) -> Result<Option<Session>, StoreError>;
    async fn delete_session(&self, digest: &[u8; 32]) -> Result<(), StoreError>;

    /// A pending authorization request between the login and consent steps.
    async fn put_pending(&self, id: &str, request: &str, expires_at: i64) -> Result<(), StoreError>;
    async fn pending(&self, id: &str, now: i64) -> Result<Option<String>, StoreError>;
    async fn delete_pending(&self, id: &str) -> Result<(), StoreError>;
    /// Reads and deletes a live pending request in one step: of concurrent takers exactly
    /// one gets it.
    async fn take_pending(&self, id: &str, now: i64) -> Result<Option<String>, StoreError>;

    /// Deletes at most `batch` expired rows per table; returns how many went.
    async fn purge_expired(&self, now: i64, batch: u32) -> Result<u64, StoreError>;

    /// Records a client assertion's `jti` (by digest) until `expires_at`: true the first
    /// time, false while an earlier use is unexpired (a replay), on every replica at once.
    async fn use_assertion_jti(&self, digest: &[u8; 32], expires_at: i64, now: i64) -> Result<bool, StoreError>;
}
