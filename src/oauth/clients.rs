//! Self-registered clients on the serving path: resolving a client id that is not a
//! declared app (a registered client from the store, or a Client ID Metadata Document), and
//! the registration operations of RFC 7591 / RFC 7592.

use std::sync::Arc;

use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::AuthorizationServer;
use super::register::{self, RegistrationError};
use crate::audit::{ClientKind, Event, Revoker};
use crate::catalog::{Catalog, ClientOrigin, dynamic};
use crate::cimd::CimdPolicy;
use crate::protocol::paths;
use crate::secrets::{ClientSecret, random_token};
use crate::store::{RegisteredClient, Registration, RegistrationLimit, StoreError};

/// Why a registration request failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// RFC 7591 §3.2.2 (400).
    #[error(transparent)]
    Invalid(#[from] RegistrationError),
    /// No ConsentPolicy enables dynamic registration.
    #[error("dynamic client registration is not enabled")]
    Disabled,
    #[error("registration limit reached")]
    Limited(RegistrationLimit),
    /// RFC 7592 §2.1: missing or wrong registration access token, or no such client (401).
    #[error("invalid registration access token")]
    InvalidToken,
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Why a `client_id` that no app declares names no usable client.
#[derive(Debug, thiserror::Error)]
pub enum UnusableClient {
    /// Neither declared, nor registered, nor a metadata document this server accepts.
    #[error("unknown client")]
    Unknown,
    #[error("client ID metadata documents are not enabled")]
    MetadataDocumentsDisabled,
    #[error("client metadata document: {0}")]
    MetadataDocument(#[from] crate::cimd::CimdError),
    /// The document asks for what the policy does not approve (e.g. a redirect URI).
    #[error("client metadata document: {0}")]
    UnapprovedMetadata(String),
    /// An administrator deleted this metadata-document client recently.
    #[error("this client was deleted by an administrator")]
    Deleted,
    #[error("storage is unavailable")]
    StoreUnavailable,
}

impl AuthorizationServer {
    /// Makes `client_id` findable through `catalog.client()` for this request if it names a
    /// self-registered client: a cache hit, a store read (DCR) or a fetch (CIMD). Says why
    /// when it names nothing usable (for error pages; clients get `invalid_client`).
    pub(crate) async fn resolve_client(
        &self,
        catalog: &Catalog,
        client_id: &str,
        now: i64,
    ) -> Result<(), UnusableClient> {
        if catalog.is_declared(client_id) || catalog.dynamic().get(client_id).is_some() {
            return Ok(());
        }
        let Some(policy) = catalog.registration_policy() else {
            return Err(UnusableClient::Unknown);
        };
        let registration = policy.spec.registration.clone().unwrap_or_default();
        if crate::protocol::client_id::is_metadata_document_url(client_id) {
            let cimd = &registration.client_id_metadata_documents;
            if !cimd.enabled {
                return Err(UnusableClient::MetadataDocumentsDisabled);
            }
            let fetch_policy = CimdPolicy {
                allowed_domains: cimd.allowed_domains.clone(),
                allow_private_addresses: cimd.allow_private_addresses,
            };
            let document = self.metadata_documents.fetch(client_id, &fetch_policy).await.map_err(|e| {
                tracing::info!(client_id, error = %e, "client metadata document refused");
                UnusableClient::MetadataDocument(e)
            })?;
            register::check_redirect_uris(&document.redirect_uris, &registration).map_err(|e| {
                tracing::info!(client_id, error = %e, "client metadata document refused");
                UnusableClient::UnapprovedMetadata(e.description)
            })?;
            let host =
                url::Url::parse(client_id).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
            let metadata = dynamic::ClientMetadata {
                client_name: document.client_name.clone(),
                redirect_uris: document.redirect_uris.clone(),
                grant_types: if document.grant_types.is_empty() {
                    vec!["authorization_code".into(), "refresh_token".into()]
                } else {
                    document.grant_types.clone()
                },
                response_types: vec!["code".into()],
                // `parse_document` admits only these two.
                token_endpoint_auth_method: document
                    .token_endpoint_auth_method
                    .clone()
                    .filter(|m| m == "private_key_jwt")
                    .unwrap_or_else(|| "none".into()),
                client_uri: document.client_uri.clone(),
                logo_uri: document.logo_uri.clone(),
                // Scopes: what the document asks for, within what the policy approves; a
                // document without `scope` may ask for every approved scope.
                scope: document.scope.clone().unwrap_or_else(|| {
                    registration.approved_scopes.iter().map(|a| a.scope.as_str()).collect::<Vec<_>>().join(" ")
                }),
                jwks_uri: document.extra.get("jwks_uri").and_then(Value::as_str).map(str::to_string),
                jwks: document.extra.get("jwks").cloned(),
                ..Default::default()
            };
            // The document is re-read whenever its cache lifetime ends (at most a day). If
            // its redirect URIs or keys changed, what users consented to is not what the
            // client now is: their consents (and the refresh tokens they back) end, and
            // each user is asked again.
            let previous = match self.store.registered_client(client_id).await {
                Ok(previous) => previous,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read registered clients");
                    return Err(UnusableClient::StoreUnavailable);
                }
            };
            let rebound = previous
                .and_then(|p| serde_json::from_value::<dynamic::ClientMetadata>(p.metadata).ok())
                .is_some_and(|old| !old.same_binding(&metadata));
            // Recorded in the store like a registered client: listed by `inbound clients`,
            // deletable (with its consents and tokens), reaped when unused.
            let record = RegisteredClient {
                client_id: client_id.to_string(),
                policy: policy.key.clone(),
                metadata: serde_json::to_value(&metadata).expect("metadata serializes"),
                secret_hash: None,
                registration_token_hash: None,
                dedupe_key: None,
                source: host.clone(),
                created_at: now,
                last_used_at: now,
                tags: Vec::new(),
            };
            match self.store.record_client(&record, now).await {
                Ok(true) => {}
                Ok(false) => return Err(UnusableClient::Deleted),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record a metadata-document client");
                    return Err(UnusableClient::StoreUnavailable);
                }
            }
            if rebound {
                match self.store.forget_client(client_id, now).await {
                    Ok(revoked) => tracing::info!(
                        client_id,
                        consents = revoked,
                        "client metadata document changed its redirect URIs or keys; its users consent again"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot revoke the consents of a changed metadata-document client");
                        return Err(UnusableClient::StoreUnavailable);
                    }
                }
            }
            let client = dynamic::client(
                client_id,
                &metadata,
                None,
                policy,
                ClientOrigin::MetadataDocument { host },
                catalog.defaults(),
            );
            catalog.dynamic().insert(Arc::new(client));
            // Recorded whenever the document is (re)read and accepted: what the client is
            // now, from whose host.
            self.audit.emit(Event::ClientRegistered {
                client_id: client_id.to_string(),
                kind: ClientKind::MetadataDocument,
                client_name: metadata.client_name.clone(),
            });
            return Ok(());
        }
        let record = match self.store.registered_client(client_id).await {
            Ok(Some(record)) => record,
            Ok(None) => return Err(UnusableClient::Unknown),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read registered clients");
                return Err(UnusableClient::StoreUnavailable);
            }
        };
        // A client admitted by a policy that no longer enables registration is not served.
        if record.policy != policy.key || !registration.dynamic {
            return Err(UnusableClient::Unknown);
        }
        let metadata: dynamic::ClientMetadata =
            serde_json::from_value(record.metadata.clone()).map_err(|_| UnusableClient::Unknown)?;
        let client = dynamic::client(
            client_id,
            &metadata,
            record.secret_hash,
            policy,
            ClientOrigin::Registered,
            catalog.defaults(),
        );
        catalog.dynamic().insert(Arc::new(client));
        if let Err(e) = self.store.touch_registered_client(client_id, now).await {
            tracing::warn!(error = %e, "cannot record client use");
        }
        Ok(())
    }

    /// RFC 7591 §3.1: registers a client (or returns the identical public one).
    pub async fn register(
        &self,
        catalog: &Catalog,
        body: &Value,
        source: &str,
        now: i64,
    ) -> Result<Value, RegisterError> {
        let result = self.register_client(catalog, body, source, now).await;
        if let Err(e) = &result {
            let error = match e {
                RegisterError::Invalid(invalid) => invalid.code.as_str().to_string(),
                RegisterError::Limited(limit) => format!("limit_reached: {limit:?}"),
                other => other.to_string(),
            };
            self.audit.emit(Event::ClientRegistrationRefused { error });
        }
        result
    }

    async fn register_client(
        &self,
        catalog: &Catalog,
        body: &Value,
        source: &str,
        now: i64,
    ) -> Result<Value, RegisterError> {
        let policy = catalog.registration_policy().ok_or(RegisterError::Disabled)?;
        let registration = policy.spec.registration.clone().unwrap_or_default();
        if !registration.dynamic {
            return Err(RegisterError::Disabled);
        }
        let metadata = register::validate(body, &registration)?;
        let key = policy.key.clone();
        let dedupe_key = register::dedupe_key(&key.to_string(), &metadata);
        let secret = dynamic::uses_secret(&metadata.token_endpoint_auth_method).then(ClientSecret::generate);
        let registration_token = random_token(32);
        let record = RegisteredClient {
            client_id: crate::store::new_client_id(),
            policy: key,
            metadata: serde_json::to_value(&metadata).expect("metadata serializes"),
            secret_hash: secret.as_ref().map(|s| self.hasher.hash(s.expose())),
            registration_token_hash: Some(self.hasher.hash(&registration_token)),
            dedupe_key,
            source: source.to_string(),
            created_at: now,
            last_used_at: now,
            tags: Vec::new(),
        };
        match self.store.register_client(&record, &registration.limits, now).await? {
            Registration::Created => {
                tracing::info!(client_id = %record.client_id, source, "client registered");
                self.audit.emit(Event::ClientRegistered {
                    client_id: record.client_id.clone(),
                    kind: ClientKind::Registered,
                    client_name: metadata.client_name.clone(),
                });
                let mut response = self.registration_response(&record.client_id, &metadata, now);
                if let Some(secret) = &secret {
                    response["client_secret"] = json!(secret.expose());
                    response["client_secret_expires_at"] = json!(0);
                }
                response["registration_access_token"] = json!(registration_token);
                Ok(response)
            }
            // The same public client registered again (an MCP client reconnecting, another
            // installation of the same software): no new client, and no management token,
            // since whoever registered it first manages it.
            Registration::Existing(existing) => {
                tracing::info!(client_id = %existing.client_id, source, "identical public registration: existing client");
                let metadata: dynamic::ClientMetadata = serde_json::from_value(existing.metadata.clone())
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let mut response = self.registration_response(&existing.client_id, &metadata, existing.created_at);
                if let Some(object) = response.as_object_mut() {
                    object.remove("registration_client_uri");
                }
                Ok(response)
            }
            Registration::Limited(limit) => {
                tracing::warn!(?limit, source, "registration refused: limit reached");
                Err(RegisterError::Limited(limit))
            }
        }
    }

    /// RFC 7592 §2.1: the client's current registration.
    pub async fn read_registration(&self, client_id: &str, token: Option<&str>) -> Result<Value, RegisterError> {
        let record = self.authorize_registration(client_id, token).await?;
        let metadata: dynamic::ClientMetadata =
            serde_json::from_value(record.metadata).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(self.registration_response(client_id, &metadata, record.created_at))
    }

    /// RFC 7592 §2.2: replaces the client's metadata (validated as a registration).
    pub async fn update_registration(
        &self,
        catalog: &Catalog,
        client_id: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<Value, RegisterError> {
        let record = self.authorize_registration(client_id, token).await?;
        if body.get("client_id").and_then(Value::as_str) != Some(client_id) {
            return Err(RegistrationError {
                code: crate::oauth::ErrorCode::InvalidClientMetadata,
                description: "the body's client_id must be the client's (RFC 7592 §2.2)".into(),
            }
            .into());
        }
        let policy = catalog.registration_policy().ok_or(RegisterError::Disabled)?;
        let registration = policy.spec.registration.clone().unwrap_or_default();
        let metadata = register::validate(body, &registration)?;
        // The authentication method is fixed at registration: a public client cannot turn
        // confidential without a secret, nor the reverse.
        let old: dynamic::ClientMetadata =
            serde_json::from_value(record.metadata).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if old.token_endpoint_auth_method != metadata.token_endpoint_auth_method
            && (dynamic::uses_secret(&old.token_endpoint_auth_method)
                || dynamic::uses_secret(&metadata.token_endpoint_auth_method))
        {
            return Err(RegistrationError {
                code: crate::oauth::ErrorCode::InvalidClientMetadata,
                description: "token_endpoint_auth_method cannot change between none and a secret".into(),
            }
            .into());
        }
        // A managed client is no longer shared with identical registrations.
        self.store
            .update_registered_client(client_id, &serde_json::to_value(&metadata).expect("serializes"), None)
            .await?;
        catalog.dynamic().remove(client_id);
        self.audit.emit(Event::ClientUpdated { client_id: client_id.to_string() });
        Ok(self.registration_response(client_id, &metadata, record.created_at))
    }

    /// RFC 7592 §2.3: deletes the client, its consents and tokens.
    pub async fn delete_registration(
        &self,
        catalog: &Catalog,
        client_id: &str,
        token: Option<&str>,
        now: i64,
    ) -> Result<(), RegisterError> {
        self.authorize_registration(client_id, token).await?;
        self.store.delete_registered_client(client_id, now).await?;
        catalog.dynamic().remove(client_id);
        tracing::info!(client_id, "client registration deleted");
        self.audit.emit(Event::ClientDeleted {
            client_id: client_id.to_string(),
            deleted_by: Revoker::Client,
            actor: None,
        });
        Ok(())
    }

    async fn authorize_registration(
        &self,
        client_id: &str,
        token: Option<&str>,
    ) -> Result<RegisteredClient, RegisterError> {
        let token = token.ok_or(RegisterError::InvalidToken)?;
        let record = self.store.registered_client(client_id).await?.ok_or(RegisterError::InvalidToken)?;
        let presented = self.hasher.hash(token);
        let valid = record.registration_token_hash.as_ref().is_some_and(|h| bool::from(h.0.ct_eq(&presented.0)));
        if !valid {
            return Err(RegisterError::InvalidToken);
        }
        Ok(record)
    }

    fn registration_response(&self, client_id: &str, metadata: &dynamic::ClientMetadata, issued_at: i64) -> Value {
        let mut response = serde_json::to_value(metadata).expect("metadata serializes");
        response["client_id"] = json!(client_id);
        response["client_id_issued_at"] = json!(issued_at);
        response["registration_client_uri"] = json!(format!("{}{}/{client_id}", self.issuer, paths::REGISTER));
        if metadata.scope.is_empty()
            && let Some(object) = response.as_object_mut()
        {
            object.remove("scope");
        }
        response
    }
}
