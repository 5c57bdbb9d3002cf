//! The catalog: an immutable snapshot of apps, scopes, grants and policies.
//!
//! Loaders (the manifest folder now, Kubernetes watch caches in operator mode) build a new
//! snapshot on every change and swap it in atomically; requests read one snapshot from start
//! to end, so a reload never shows a half-applied configuration.

pub mod dynamic;
pub mod folder;
pub mod manifest;
pub mod validate;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use crate::api::ObjectKey;
use crate::api::{ClientType, ConsentPolicySpec, GrantType, InboundAppSpec, ScopeSpec, SubjectKind};
use crate::secrets::SecretHash;
use manifest::{Manifest, Object};

/// Credentials provisioned for an app (by `inbound serve` or the operator).
#[derive(Clone, Debug)]
pub struct ClientRecord {
    pub client_id: String,
    /// Accepted secret hashes: the current one, plus the previous during a rotation overlap.
    pub secret_hashes: Vec<SecretHash>,
}

/// An InboundApp resolved for serving.
#[derive(Debug)]
pub struct Client {
    pub key: ObjectKey,
    pub client_id: String,
    pub spec: InboundAppSpec,
    pub labels: BTreeMap<String, String>,
    pub secret_hashes: Vec<SecretHash>,
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    pub id_token_lifetime: Duration,
    /// How old a sign-in may be for this app: an older session signs in again.
    pub session_lifetime: Duration,
    pub origin: ClientOrigin,
    /// The ConsentPolicy that admitted a self-registered client.
    pub policy: Option<ObjectKey>,
}

/// Where a client comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOrigin {
    /// An InboundApp.
    Declared,
    /// Dynamic Client Registration (RFC 7591).
    Registered,
    /// A Client ID Metadata Document; `host` is shown on the consent screen.
    MetadataDocument { host: String },
}

impl Client {
    pub fn is_confidential(&self) -> bool {
        self.spec.client_type == ClientType::Confidential
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.spec.grant_types.contains(&grant)
    }
}

/// A ClientGrant resolved for serving.
#[derive(Debug)]
pub struct GrantRule {
    pub key: ObjectKey,
    pub scopes: Vec<String>,
    pub resources: Vec<String>,
    pub tenants: Vec<String>,
    /// Unix seconds after which the grant no longer applies.
    pub expires_at: Option<i64>,
    /// Set on delegation grants (token exchange only).
    pub token_exchange: Option<crate::api::TokenExchange>,
}

impl GrantRule {
    pub fn is_active(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }
}

/// Server-wide defaults the catalog applies where a resource says nothing.
#[derive(Clone, Debug)]
pub struct Defaults {
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    pub id_token_lifetime: Duration,
    /// How long a sign-in lasts (the login session), unless an app asks for less.
    pub session_lifetime: Duration,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            access_token_lifetime: Duration::from_secs(15 * 60),
            refresh_token_lifetime: Duration::from_secs(30 * 86_400),
            id_token_lifetime: Duration::from_secs(3600),
            session_lifetime: Duration::from_secs(8 * 3600),
        }
    }
}

/// A static end user (folder mode), resolved for serving.
#[derive(Debug)]
pub struct User {
    /// Stable, opaque subject identifier (`sub`), never the username.
    pub subject: String,
    pub username: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub tenants: Vec<String>,
    pub tenant_roles: BTreeMap<String, Vec<String>>,
    pub attributes: BTreeMap<String, String>,
}

/// An IdentityProvider, resolved for serving.
#[derive(Clone, Debug)]
pub struct UpstreamProvider {
    pub key: ObjectKey,
    pub spec: crate::api::IdentityProviderSpec,
}

impl UpstreamProvider {
    /// The source name users signed in through it carry: `namespace/name`.
    pub fn source(&self) -> String {
        format!("{}/{}", self.key.namespace, self.key.name)
    }
}

/// A ConsentPolicy, resolved for serving: its key and its spec (no Kubernetes metadata).
#[derive(Clone, Debug)]
pub struct Policy {
    pub key: ObjectKey,
    pub spec: ConsentPolicySpec,
}

impl Policy {
    /// Whether it enables self-registration (Dynamic Client Registration or metadata
    /// documents).
    pub fn enables_registration(&self) -> bool {
        validate::enables_registration(&self.spec)
    }
}

/// One immutable configuration snapshot.
#[derive(Debug, Default)]
pub struct Catalog {
    clients: HashMap<String, Arc<Client>>,
    client_ids: BTreeMap<ObjectKey, String>,
    /// Namespace, then scope name: looked up per token request with borrowed keys.
    scopes: HashMap<String, HashMap<String, ScopeSpec>>,
    app_grants: HashMap<ObjectKey, Vec<Arc<GrantRule>>>,
    /// Delegation grants (`spec.tokenExchange`), by app: never seen by client_credentials.
    delegation_grants: HashMap<ObjectKey, Vec<Arc<GrantRule>>>,
    service_account_grants: HashMap<ObjectKey, Vec<Arc<GrantRule>>>,
    policies: Vec<Policy>,
    users_by_name: HashMap<String, Arc<User>>,
    users_by_subject: HashMap<String, Arc<User>>,
    /// Identity sources, in (namespace, name) order.
    providers: Vec<Arc<UpstreamProvider>>,
    /// Self-registered clients resolved by recent requests (shared across snapshots).
    dynamic: Arc<dynamic::DynamicClients>,
    defaults: Defaults,
}

impl Catalog {
    /// Builds a snapshot from validated manifests. Apps without a [`ClientRecord`] (not yet
    /// provisioned) are left out rather than served without credentials.
    pub fn build(
        manifests: &[Manifest],
        records: &HashMap<ObjectKey, ClientRecord>,
        subjects: &HashMap<ObjectKey, String>,
        defaults: &Defaults,
    ) -> Catalog {
        let mut catalog = Catalog { defaults: defaults.clone(), ..Catalog::default() };
        for m in manifests {
            let meta = m.object.metadata();
            let key = ObjectKey::of(meta);
            match &m.object {
                Object::App(app) => {
                    let Some(record) = records.get(&key) else {
                        continue;
                    };
                    let lifetime = |d: &Option<crate::api::DurationString>, default| {
                        d.as_ref().and_then(|d| d.parse().ok()).unwrap_or(default)
                    };
                    let tokens = &app.spec.tokens;
                    let client = Client {
                        key: key.clone(),
                        client_id: record.client_id.clone(),
                        spec: app.spec.clone(),
                        labels: meta.labels.clone().unwrap_or_default(),
                        secret_hashes: record.secret_hashes.clone(),
                        access_token_lifetime: lifetime(&tokens.access_token_lifetime, defaults.access_token_lifetime),
                        refresh_token_lifetime: lifetime(
                            &tokens.refresh_token_lifetime,
                            defaults.refresh_token_lifetime,
                        ),
                        id_token_lifetime: lifetime(&tokens.id_token_lifetime, defaults.id_token_lifetime),
                        session_lifetime: lifetime(&tokens.session_lifetime, defaults.session_lifetime),
                        origin: ClientOrigin::Declared,
                        policy: None,
                    };
                    catalog.client_ids.insert(key, record.client_id.clone());
                    catalog.clients.insert(record.client_id.clone(), Arc::new(client));
                }
                Object::Scope(scope) => {
                    catalog
                        .scopes
                        .entry(key.namespace.clone())
                        .or_default()
                        .insert(scope.spec.scope.clone(), scope.spec.clone());
                }
                Object::Grant(grant) => {
                    let spec = &grant.spec;
                    let subject = ObjectKey {
                        namespace: spec.subject.namespace.clone().unwrap_or_else(|| key.namespace.clone()),
                        name: spec.subject.name.clone(),
                    };
                    let rule = Arc::new(GrantRule {
                        key,
                        scopes: spec.scopes.clone(),
                        resources: spec.resources.clone(),
                        tenants: spec.tenants.clone(),
                        expires_at: spec
                            .expires_at
                            .as_deref()
                            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                            .map(|t| t.as_second()),
                        token_exchange: spec.token_exchange.clone(),
                    });
                    let index = match spec.subject.kind {
                        SubjectKind::InboundApp if spec.token_exchange.is_some() => &mut catalog.delegation_grants,
                        SubjectKind::InboundApp => &mut catalog.app_grants,
                        SubjectKind::ServiceAccount => &mut catalog.service_account_grants,
                    };
                    index.entry(subject).or_default().push(rule);
                }
                Object::Policy(policy) => {
                    catalog.policies.push(Policy { key: ObjectKey::of(&policy.metadata), spec: policy.spec.clone() })
                }
                Object::Provider(provider) => {
                    catalog.providers.push(Arc::new(UpstreamProvider { key, spec: provider.spec.clone() }));
                }
                Object::User(user) => {
                    let Some(subject) = subjects.get(&key) else { continue };
                    let spec = &user.spec;
                    let user = Arc::new(User {
                        subject: subject.clone(),
                        username: spec.username.clone(),
                        password_hash: spec.password_hash.clone(),
                        roles: spec.roles.clone(),
                        tenants: spec.tenants.clone(),
                        tenant_roles: spec.tenant_roles.clone(),
                        attributes: spec.attributes.clone(),
                    });
                    catalog.users_by_name.insert(spec.username.clone(), user.clone());
                    catalog.users_by_subject.insert(subject.clone(), user);
                }
            }
        }
        catalog.providers.sort_by(|a, b| a.key.cmp(&b.key));
        catalog
    }

    /// Shares the cache of resolved self-registered clients with the previous snapshot.
    pub fn with_dynamic(mut self, dynamic: Arc<dynamic::DynamicClients>) -> Catalog {
        self.dynamic = dynamic;
        self
    }

    pub fn dynamic(&self) -> &Arc<dynamic::DynamicClients> {
        &self.dynamic
    }

    pub fn defaults(&self) -> &Defaults {
        &self.defaults
    }

    /// A declared app, or a self-registered client resolved for this request.
    pub fn client(&self, client_id: &str) -> Option<Arc<Client>> {
        self.clients.get(client_id).cloned().or_else(|| self.dynamic.get(client_id))
    }

    /// True for a declared app (no resolution needed).
    pub fn is_declared(&self, client_id: &str) -> bool {
        self.clients.contains_key(client_id)
    }

    /// The ConsentPolicy enabling self-registration, if any. Validation admits exactly one
    /// (the one the operator's configuration chooses); the minimum only makes the answer
    /// deterministic for a catalog built without validation.
    pub fn registration_policy(&self) -> Option<&Policy> {
        self.policies.iter().filter(|p| p.enables_registration()).min_by(|a, b| a.key.cmp(&b.key))
    }

    /// Apps in (namespace, name) order.
    pub fn clients(&self) -> impl Iterator<Item = &Arc<Client>> {
        self.client_ids.values().filter_map(|id| self.clients.get(id))
    }

    pub fn grants_for_app(&self, app: &ObjectKey) -> &[Arc<GrantRule>] {
        self.app_grants.get(app).map(Vec::as_slice).unwrap_or_default()
    }

    /// The delegation grants (`spec.tokenExchange`) whose subject is `app`.
    pub fn delegation_grants_for_app(&self, app: &ObjectKey) -> &[Arc<GrantRule>] {
        self.delegation_grants.get(app).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn grants_for_service_account(&self, sa: &ObjectKey) -> &[Arc<GrantRule>] {
        self.service_account_grants.get(sa).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn scope(&self, namespace: &str, scope: &str) -> Option<&ScopeSpec> {
        self.scopes.get(namespace)?.get(scope)
    }

    /// Whether `scope` may appear in a token of `namespace` with this audience. A scope
    /// declared for a resource (`spec.resource`) goes only into tokens for that resource,
    /// so narrowing the audience (RFC 8707 §2.2) narrows the scopes with it.
    pub fn scope_fits_audience(&self, namespace: &str, scope: &str, audience: &[String]) -> bool {
        match self.scope(namespace, scope).and_then(|s| s.resource.as_deref()) {
            None => true,
            Some(resource) => crate::protocol::resource::find(audience, resource).is_some(),
        }
    }

    /// What discovery lists as `scopes_supported`: OpenID Connect's built-ins, the scopes the
    /// registration policy lets self-registered clients ask for (they discover them here),
    /// and every Scope marked `advertised`; sorted and unique after the built-ins.
    pub fn advertised_scopes(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.scopes.values().flat_map(HashMap::values).filter(|s| s.advertised).map(|s| s.scope.clone()).collect();
        if let Some(registration) = self.registration_policy().and_then(|p| p.spec.registration.as_ref()) {
            names.extend(registration.approved_scopes.iter().map(|a| a.scope.clone()));
        }
        names.retain(|s| !crate::protocol::scope::is_builtin(s));
        names.sort();
        names.dedup();
        let builtins = [crate::protocol::scope::OPENID, crate::protocol::scope::OFFLINE_ACCESS];
        builtins.into_iter().map(str::to_string).chain(names).collect()
    }

    /// The ConsentPolicy governing `client`: the one that admitted a self-registered client,
    /// else the first (by name) in its namespace whose selector matches it. An empty
    /// selector matches every app of the namespace.
    pub fn policy_for(&self, client: &Client) -> Option<&Policy> {
        if let Some(key) = &client.policy {
            return self.policies.iter().find(|p| p.key == *key);
        }
        self.policies
            .iter()
            .filter(|p| p.key.namespace == client.key.namespace)
            .filter(|p| {
                let selector = &p.spec.app_selector;
                let by_name = selector.names.is_empty() || selector.names.contains(&client.key.name);
                let by_label = selector.match_labels.iter().all(|(k, v)| client.labels.get(k) == Some(v));
                by_name && by_label
            })
            .min_by(|a, b| a.key.name.cmp(&b.key.name))
    }

    /// The users being served, by username.
    pub fn usernames(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.users_by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub fn user_by_name(&self, username: &str) -> Option<&Arc<User>> {
        self.users_by_name.get(username)
    }

    /// Development users whose username or `email` attribute is `login` (a CIBA hint).
    pub fn development_users_by_login(&self, login: &str) -> Vec<&Arc<User>> {
        self.users_by_name
            .values()
            .filter(|u| u.username == login || u.attributes.get("email").is_some_and(|e| e == login))
            .collect()
    }

    pub fn user(&self, subject: &str) -> Option<&Arc<User>> {
        self.users_by_subject.get(subject)
    }

    /// The upstream identity providers users may sign in with, in (namespace, name) order.
    pub fn identity_providers(&self) -> &[Arc<UpstreamProvider>] {
        &self.providers
    }

    /// The identity provider whose source name (`namespace/name`) is `source`.
    pub fn identity_provider(&self, source: &str) -> Option<&Arc<UpstreamProvider>> {
        self.providers.iter().find(|p| p.source() == source)
    }
}
