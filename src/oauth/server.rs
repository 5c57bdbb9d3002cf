//! The authorization server: who we are, how we sign, where runtime state lives.
//!
//! Every flow is a method of [`AuthorizationServer`], in the file of its endpoint
//! (`token.rs`, `front_channel.rs`, `introspection.rs`, `clients.rs`). The fields are private
//! to the core: handlers get decisions, never the store, so no handler can persist or read
//! state outside a flow's rules.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::OAuthError;
use crate::audit::{Audit, Event, Revoker};
use crate::catalog::Catalog;
use crate::cimd::MetadataDocumentFetcher;
use crate::secrets::SecretHasher;
use crate::store::{Consent, RegisteredClient, Store, StoreError};
use crate::tokens::{KeySet, RevocationList, VerifiedTokens};

/// What the core is assembled from (by the runtime, once per process).
pub struct ServerParts {
    /// Issuer identifier (`iss`), no trailing slash.
    pub issuer: String,
    /// Audience of tokens whose grants name no resource.
    pub default_audience: String,
    /// Swapped when the key document changes (rotation in operator mode).
    pub keys: Arc<ArcSwap<KeySet>>,
    pub hasher: SecretHasher,
    pub store: Arc<dyn Store>,
    pub revocations: Arc<RevocationList>,
    /// JWTs whose signature already verified (introspection hot path).
    pub verified: Arc<VerifiedTokens>,
    /// Fetches Client ID Metadata Documents.
    pub metadata_documents: Arc<dyn MetadataDocumentFetcher>,
    /// Issuers' keys, and how ServiceAccount tokens are validated (JWT bearer grant).
    pub assertions: super::jwt_bearer::Assertions,
    /// Where every flow records its security-relevant acts.
    pub audit: Arc<Audit>,
}

/// A consent as an administrator sees it.
pub struct AdministeredConsent {
    pub consent: Consent,
    /// The app's display name ("" when the client no longer exists).
    pub app: String,
    /// The app's namespace (of its InboundApp, or of the policy that admitted it).
    pub namespace: Option<String>,
}

/// The OAuth 2.1 / OpenID Connect core. See the module documentation.
pub struct AuthorizationServer {
    pub(super) issuer: String,
    pub(super) default_audience: String,
    pub(super) keys: Arc<ArcSwap<KeySet>>,
    pub(super) hasher: SecretHasher,
    pub(super) store: Arc<dyn Store>,
    pub(super) revocations: Arc<RevocationList>,
    pub(super) verified: Arc<VerifiedTokens>,
    pub(super) metadata_documents: Arc<dyn MetadataDocumentFetcher>,
    pub(super) assertions: super::jwt_bearer::Assertions,
    pub(super) audit: Arc<Audit>,
    /// Failed password sign-ins by source and username (per process).
    pub(super) failed_logins: std::sync::Mutex<super::login_guard::FailedLogins>,
    /// Wrong device user codes by source (RFC 8628 §5.1) and wrong CIBA user codes by user
    /// (CIBA §7.1), under distinct keys (per process).
    pub(super) failed_user_codes: std::sync::Mutex<super::login_guard::FailedLogins>,
    /// Pending requests admitted for unauthenticated browsers (per process).
    pub(super) pending_budget: std::sync::Mutex<super::pending_budget::PendingBudget>,
}

impl AuthorizationServer {
    pub fn new(parts: ServerParts) -> AuthorizationServer {
        let ServerParts {
            issuer,
            default_audience,
            keys,
            hasher,
            store,
            revocations,
            verified,
            metadata_documents,
            assertions,
            audit,
        } = parts;
        AuthorizationServer {
            issuer,
            default_audience,
            keys,
            hasher,
            store,
            revocations,
            verified,
            metadata_documents,
            assertions,
            audit,
            failed_logins: Default::default(),
            failed_user_codes: Default::default(),
            pending_budget: Default::default(),
        }
    }

    /// The issuer identifier (`iss`, RFC 8414 §2), no trailing slash.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audit trail (handlers record the refusals they render).
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Drops memoized tokens that expired before `now` (each maintenance pass): the memo
    /// then holds about the tokens live and introspected, not its whole budget.
    pub fn forget_expired_tokens(&self, now: i64) {
        self.verified.forget_expired(now);
    }

    /// The public signing keys (RFC 7517), current and published ahead or behind.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.load().jwks()
    }

    /// The JWKS document as served (serialised once per key set).
    pub fn jwks_json(&self) -> bytes::Bytes {
        self.keys.load().jwks_json()
    }

    /// Whether runtime state can be reached (readiness).
    pub async fn ping(&self) -> Result<(), OAuthError> {
        self.store.ping().await.map_err(store_error)
    }

    /// Every self-registered client, oldest first (admin API).
    pub async fn registered_clients(&self) -> Result<Vec<RegisteredClient>, OAuthError> {
        self.store.registered_clients().await.map_err(store_error)
    }

    /// Replaces a registered client's tags (admin API); false when it no longer exists.
    pub async fn set_registered_client_tags(&self, client_id: &str, tags: &[String]) -> Result<bool, OAuthError> {
        self.store.set_registered_client_tags(client_id, tags).await.map_err(store_error)
    }

    /// The active consents `selected` picks, newest first, with the app each was given to
    /// (its display name, when the client still exists) and that app's namespace (what the
    /// admin API authorizes against; `None` for a client no longer known).
    pub async fn consents(
        &self,
        catalog: &Catalog,
        selected: impl Fn(&Consent) -> bool,
        now: i64,
    ) -> Result<Vec<AdministeredConsent>, OAuthError> {
        let consents = self.store.active_consents(now).await.map_err(store_error)?;
        let mut chosen = Vec::new();
        for consent in consents.into_iter().filter(|c| selected(c)) {
            let _ = self.resolve_client(catalog, &consent.client_id, now).await;
            let client = catalog.client(&consent.client_id);
            chosen.push(AdministeredConsent {
                app: client.as_ref().map(|c| c.spec.display_name.clone()).unwrap_or_default(),
                namespace: client.as_ref().map(|c| c.key.namespace.clone()),
                consent,
            });
        }
        Ok(chosen)
    }

    /// An administrator (`actor`) revokes a consent with every refresh token family issued
    /// under it. False when it was no longer active.
    pub async fn revoke_consent_as_admin(
        &self,
        consent: &Consent,
        actor: Option<&str>,
        now: i64,
    ) -> Result<bool, OAuthError> {
        let revoked = self.store.revoke_consent(&consent.id, &consent.subject, now).await.map_err(store_error)?;
        if revoked {
            tracing::info!(consent = %consent.id, client_id = %consent.client_id, by = actor, "consent revoked by an administrator");
            self.audit.emit(Event::ConsentRevoked {
                consent_id: consent.id.clone(),
                subject: consent.subject.clone(),
                revoked_by: Revoker::Admin,
                actor: actor.map(str::to_string),
            });
        }
        Ok(revoked)
    }

    /// Deletes a self-registered client with its consents, refresh tokens and secrets
    /// (admin API, by `actor`). False when it did not exist.
    pub async fn delete_registered_client(
        &self,
        client_id: &str,
        actor: Option<&str>,
        now: i64,
    ) -> Result<bool, OAuthError> {
        let deleted = self.store.delete_registered_client(client_id, now).await.map_err(store_error)?;
        if deleted {
            self.audit.emit(Event::ClientDeleted {
                client_id: client_id.to_string(),
                deleted_by: Revoker::Admin,
                actor: actor.map(str::to_string),
            });
        }
        Ok(deleted)
    }
}

/// Storage failures become `temporarily_unavailable` (retry) or `server_error`; the detail
/// goes to the log only.
pub(crate) fn store_error(e: StoreError) -> OAuthError {
    match e {
        StoreError::Unavailable(detail) => {
            tracing::warn!(%detail, "store unavailable");
            OAuthError::temporarily_unavailable()
        }
        StoreError::Corrupt(detail) => {
            tracing::error!(%detail, "store data corrupt");
            OAuthError::server_error()
        }
    }
}
