//! Self-registered clients (Dynamic Client Registration, Client ID Metadata Documents) as
//! the serving path sees them.
//!
//! They live in the store (or at their metadata URL), not in the declared configuration, so
//! a request first *resolves* its client (async: a store read or a fetch) into this cache;
//! the pure core then finds it through `Catalog::client` like any declared app. Entries
//! expire after a few seconds, so a client deleted or reaped at another replica stops
//! working everywhere within that time.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use super::{Client, ClientOrigin, Defaults, Policy};
use crate::api::ObjectKey;
use crate::api::{AuthMethod, ClientType, GrantType, InboundAppSpec, RegistrationSettings, TokenSettings};
use crate::secrets::SecretHash;

/// How long a resolved client is used before it is read again.
pub const FRESH_FOR: Duration = Duration::from_secs(5);
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct DynamicClients {
    entries: RwLock<HashMap<String, (Arc<Client>, Instant)>>,
}

impl std::fmt::Debug for DynamicClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicClients").finish_non_exhaustive()
    }
}

impl DynamicClients {
    /// A fresh entry, if any.
    pub fn get(&self, client_id: &str) -> Option<Arc<Client>> {
        let entries = self.entries.read().expect("lock");
        let (client, at) = entries.get(client_id)?;
        (at.elapsed() < FRESH_FOR).then(|| client.clone())
    }

    pub fn insert(&self, client: Arc<Client>) {
        let mut entries = self.entries.write().expect("lock");
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, at)| at.elapsed() < FRESH_FOR);
        }
        entries.insert(client.client_id.clone(), (client, Instant::now()));
    }

    pub fn remove(&self, client_id: &str) {
        self.entries.write().expect("lock").remove(client_id);
    }
}

/// The registered metadata (RFC 7591 §2 names) of a self-registered client, as the server
/// uses it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClientMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub response_types: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    /// Space-separated, as registered (possibly empty).
    #[serde(default)]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// A metadata document's keys (RFC 7591 §2 `jwks_uri` / `jwks`), kept to notice a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
}

impl ClientMetadata {
    /// Whether a user who consented to `self` consented to `next` too: the same redirect
    /// URIs (where codes go) and the same keys (who the client is). A metadata document that
    /// changes either must ask its users again.
    pub fn same_binding(&self, next: &ClientMetadata) -> bool {
        let uris = |m: &ClientMetadata| {
            let mut uris = m.redirect_uris.clone();
            uris.sort();
            uris.dedup();
            uris
        };
        uris(self) == uris(next)
            && self.jwks_uri == next.jwks_uri
            && self.jwks == next.jwks
            && self.token_endpoint_auth_method == next.token_endpoint_auth_method
    }
}

/// Whether a self-registered client with this `token_endpoint_auth_method` is issued a
/// client secret (`none` and `private_key_jwt` are not).
pub fn uses_secret(auth_method: &str) -> bool {
    auth_method.starts_with("client_secret_")
}

/// Builds the serving view of a self-registered client under `policy`.
pub fn client(
    client_id: &str,
    metadata: &ClientMetadata,
    secret_hash: Option<SecretHash>,
    policy: &Policy,
    origin: ClientOrigin,
    defaults: &Defaults,
) -> Client {
    let registration = policy.spec.registration.clone().unwrap_or_default();
    let auth_method = match metadata.token_endpoint_auth_method.as_str() {
        "client_secret_basic" => AuthMethod::ClientSecretBasic,
        "client_secret_post" => AuthMethod::ClientSecretPost,
        "private_key_jwt" => AuthMethod::PrivateKeyJwt,
        _ => AuthMethod::None,
    };
    let grant_types = metadata
        .grant_types
        .iter()
        .filter_map(|g| match g.as_str() {
            "authorization_code" => Some(GrantType::AuthorizationCode),
            "refresh_token" => Some(GrantType::RefreshToken),
            _ => None,
        })
        .collect();
    let policy_key = policy.key.clone();
    let display_name = metadata.client_name.clone().unwrap_or_else(|| match &origin {
        ClientOrigin::MetadataDocument { host } => host.clone(),
        _ => "Unnamed client".to_string(),
    });
    Client {
        key: ObjectKey { namespace: policy_key.namespace.clone(), name: client_id.to_string() },
        client_id: client_id.to_string(),
        spec: InboundAppSpec {
            client_id: Some(client_id.to_string()),
            display_name,
            description: None,
            logo_uri: metadata.logo_uri.clone(),
            // Self-registered clients' links are whatever they sent: not shown.
            tos_uri: None,
            policy_uri: None,
            tags: Vec::new(),
            client_type: if auth_method == AuthMethod::None { ClientType::Public } else { ClientType::Confidential },
            grant_types,
            redirect_uris: metadata.redirect_uris.clone(),
            // RP-initiated logout redirects are for declared apps only.
            post_logout_redirect_uris: Vec::new(),
            token_endpoint_auth_method: Some(auth_method),
            allowed_scopes: allowed_scopes(&metadata.scope, &registration),
            allowed_resources: registration.resources.clone(),
            allowed_tenants: Vec::new(),
            tokens: TokenSettings::default(),
            first_party: false,
            credentials_secret: None,
            resource_server: None,
            secret_rotation_overlap: None,
            // Self-registered clients never trust issuers: that is for declared apps.
            trusted_issuers: Vec::new(),
            ciba: None,
            // The keys a private_key_jwt client registered (RFC 7591 §2).
            jwks: metadata.jwks.as_ref().map(|set| set.to_string()),
            jwks_uri: metadata.jwks_uri.clone(),
            service_account_name: None,
        },
        labels: Default::default(),
        secret_hashes: secret_hash.into_iter().collect(),
        access_token_lifetime: defaults.access_token_lifetime,
        refresh_token_lifetime: defaults.refresh_token_lifetime,
        id_token_lifetime: defaults.id_token_lifetime,
        session_lifetime: defaults.session_lifetime,
        origin,
        policy: Some(policy_key),
    }
}

/// What a self-registered client may ask users for: every scope the policy approves (and
/// OpenID Connect's `openid`). The registered `scope` was checked against the same list at
/// registration, but is not a ceiling: MCP clients register with the scopes of their first
/// challenge and later step up to others (the user consents to each).
pub fn allowed_scopes(_registered: &str, registration: &RegistrationSettings) -> Vec<String> {
    let mut scopes: Vec<String> = vec![crate::protocol::scope::OPENID.to_string()];
    scopes.extend(registration.approved_scopes.iter().map(|a| a.scope.clone()));
    scopes
}

/// The policy's mandatory scopes for self-registered clients.
pub fn mandatory_scopes(registration: &RegistrationSettings) -> Vec<String> {
    registration.approved_scopes.iter().filter(|a| a.mandatory).map(|a| a.scope.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::ClientMetadata;

    #[test]
    fn a_change_of_redirect_uris_or_keys_breaks_the_binding() {
        let base = ClientMetadata {
            redirect_uris: vec!["http://127.0.0.1/cb".into(), "https://a.example.com/cb".into()],
            token_endpoint_auth_method: "none".into(),
            ..Default::default()
        };
        let mut reordered = base.clone();
        reordered.redirect_uris.reverse();
        reordered.client_name = Some("Renamed".into());
        assert!(base.same_binding(&reordered), "order and display fields do not matter");
        let mut added = base.clone();
        added.redirect_uris.push("https://b.example.com/cb".into());
        assert!(!base.same_binding(&added));
        let mut keyed = base.clone();
        keyed.jwks_uri = Some("https://a.example.com/jwks".into());
        assert!(!base.same_binding(&keyed));
    }
}
