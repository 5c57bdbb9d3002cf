//! Semantic validation of a set of manifests: what a schema cannot say.
//!
//! The same rules run in `inbound check`, when `inbound serve` (re)loads its folder, and in
//! the operator; every problem names the file, the object and the field.
//!
//! Besides well-formedness, this is where the shared-cluster trust model is decided (README
//! "Who can mint what"): every resource URI has one owning namespace, and only that
//! namespace's objects can put it, or its scopes, into a token; one explicitly chosen
//! ConsentPolicy enables self-registration. An object breaking these rules is invalid on its
//! own and never displaces the object that holds the claim.

use std::collections::{BTreeMap, HashMap, HashSet};

use std::time::Duration;

use url::Url;

use crate::protocol::loopback::is_loopback_host;

use super::manifest::{Manifest, Object, Problem};
use crate::api::{
    ClientGrant, ClientType, ConsentPolicy, ConsentPolicySpec, DurationString, GrantType, InboundApp, Scope, ScopeKind,
    SubjectKind,
};
use crate::api::{ObjectKey, namespace_of};
use crate::protocol::scope::is_valid_scope_token;

/// What the deployment decides about trust across namespaces: the operator's configuration.
/// Folder mode has one author and uses the default (no namespace is special).
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// The operator's namespace: only a ConsentPolicy there may enable self-registration
    /// (unless `registration_policy` names one).
    pub operator_namespace: Option<String>,
    /// The one ConsentPolicy allowed to enable self-registration (`--registration-policy`).
    pub registration_policy: Option<ObjectKey>,
    /// Resource URIs pinned to their owning namespace (`--resource-owner URI=NAMESPACE`),
    /// so that no other namespace can claim them even before the owner declares its scopes.
    pub resource_owners: BTreeMap<String, String>,
}

/// Every problem of the set, in manifest order, under the default trust (folder mode).
pub fn validate(manifests: &[Manifest]) -> Vec<Problem> {
    validate_with(manifests, &Trust::default())
}

/// Every problem of the set, in manifest order.
pub fn validate_with(manifests: &[Manifest], trust: &Trust) -> Vec<Problem> {
    let mut problems = Vec::new();
    let index = Index::new(manifests, trust, &mut problems);
    for m in manifests {
        let mut at = At { manifest: m, problems: &mut problems };
        match &m.object {
            Object::App(app) => check_app(&mut at, app, &index),
            Object::Scope(scope) => check_scope(&mut at, scope, &index),
            Object::Grant(grant) => check_grant(&mut at, grant, &index),
            Object::Policy(policy) => check_policy(&mut at, policy, &index),
            Object::User(user) => check_user(&mut at, user, &index),
            Object::Provider(provider) => check_provider(&mut at, provider, trust, &index),
        }
    }
    problems
}

/// Lookups across the set: apps by (namespace, name), declared scopes per namespace,
/// resource owners.
struct Index<'a> {
    apps: HashMap<(&'a str, &'a str), &'a InboundApp>,
    scopes: HashMap<(&'a str, &'a str), &'a Scope>,
    /// Usernames declared more than once.
    duplicate_usernames: HashSet<&'a str>,
    /// The ConsentPolicy that enables self-registration (`Kind namespace/name`).
    registration_policy: Option<String>,
    /// Why other policies may not: the rule they break.
    registration_rule: String,
    owners: Vec<ResourceOwner>,
    /// Permission scopes without `spec.resource`: the namespace of the oldest Scope
    /// declaring each string, and that Scope's name.
    default_audience_scopes: HashMap<&'a str, (&'a str, String)>,
}

/// The namespace owning a resource URI, and what gave it the claim.
#[derive(Debug)]
struct ResourceOwner {
    resource: String,
    namespace: String,
    /// `--resource-owner`, or the first Scope that declared it.
    claimed_by: String,
}

/// An object's age for "the oldest claim wins": its creation time in a cluster (none in
/// a folder, where the manifest order decides).
fn age(m: &Manifest) -> Option<jiff::Timestamp> {
    m.object.metadata().creation_timestamp.as_ref().map(|t| t.0)
}

impl<'a> Index<'a> {
    fn new(manifests: &'a [Manifest], trust: &Trust, problems: &mut Vec<Problem>) -> Self {
        let mut seen: HashMap<(&str, &str, &str), &Manifest> = HashMap::new();
        let mut scope_owner: HashMap<(&str, &str), &Manifest> = HashMap::new();
        let mut apps = HashMap::new();
        let mut scopes = HashMap::new();
        let mut usernames = HashSet::new();
        let mut duplicate_usernames = HashSet::new();
        let mut registration_candidates: Vec<&Manifest> = Vec::new();
        let mut claims: Vec<&Manifest> = Vec::new();
        let mut default_audience_claims: Vec<&Manifest> = Vec::new();
        for m in manifests {
            let meta = m.object.metadata();
            let ns = namespace_of(meta);
            let name = meta.name.as_deref().unwrap_or("");
            if let Some(first) = seen.insert((m.object.kind(), ns, name), m) {
                problems.push(problem(
                    m,
                    "metadata.name",
                    format!(
                        "duplicate object: already defined in {} (document {})",
                        first.source.file, first.source.document
                    ),
                ));
                seen.insert((m.object.kind(), ns, name), first);
                continue;
            }
            match &m.object {
                Object::App(app) => {
                    apps.insert((ns, name), app.as_ref());
                }
                Object::Scope(scope) => {
                    let key = (ns, scope.spec.scope.as_str());
                    if let Some(first) = scope_owner.insert(key, m) {
                        problems.push(problem(
                            m,
                            "spec.scope",
                            format!(
                                "scope {:?} is already declared by {}",
                                scope.spec.scope,
                                first.object.display_name()
                            ),
                        ));
                    }
                    scopes.entry(key).or_insert(scope.as_ref());
                    match &scope.spec.resource {
                        Some(r) if check_resource_uri(r).is_ok() => claims.push(m),
                        None if scope.spec.kind == ScopeKind::Permission => default_audience_claims.push(m),
                        _ => {}
                    }
                }
                Object::User(user) if !usernames.insert(user.spec.username.as_str()) => {
                    duplicate_usernames.insert(user.spec.username.as_str());
                }
                Object::Policy(policy) if enables_registration(&policy.spec) => registration_candidates.push(m),
                _ => {}
            }
        }
        let (registration_policy, registration_rule) = choose_registration_policy(&registration_candidates, trust);
        Index {
            apps,
            scopes,
            duplicate_usernames,
            registration_policy,
            registration_rule,
            owners: resource_owners(&claims, trust),
            default_audience_scopes: default_audience_scopes(&default_audience_claims),
        }
    }

    /// The owner of `resource` (compared as `protocol::resource` does).
    fn owner(&self, resource: &str) -> Option<&ResourceOwner> {
        self.owners.iter().find(|o| crate::protocol::resource::same_resource(&o.resource, resource))
    }

    /// `Ok` when `namespace` owns `resource`; else why not, for the problem message.
    fn check_owned_by(&self, resource: &str, namespace: &str) -> Result<(), String> {
        match self.owner(resource) {
            Some(owner) if owner.namespace == namespace => Ok(()),
            Some(owner) => Err(format!(
                "resource {resource} is owned by namespace {} ({}); only objects there can grant it",
                owner.namespace, owner.claimed_by
            )),
            None => Err(format!(
                "no Scope declares resource {resource}: the namespace that owns an API declares its scopes \
                 with spec.resource, which makes it the owner"
            )),
        }
    }

    /// `openid` and `offline_access` are built in (OpenID Connect); every other scope must
    /// be declared.
    fn has_scope(&self, ns: &str, scope: &str) -> bool {
        crate::protocol::scope::is_builtin(scope) || self.scopes.contains_key(&(ns, scope))
    }
}

/// Resource owners: pinned ones from the configuration, then, for every other resource, the
/// namespace of the oldest Scope declaring it (manifest order in a folder). A later claim
/// from another namespace is a problem of that Scope and never moves the resource.
fn resource_owners(claims: &[&Manifest], trust: &Trust) -> Vec<ResourceOwner> {
    let mut owners: Vec<ResourceOwner> = trust
        .resource_owners
        .iter()
        .map(|(resource, namespace)| ResourceOwner {
            resource: resource.clone(),
            namespace: namespace.clone(),
            claimed_by: "pinned by --resource-owner".into(),
        })
        .collect();
    let mut claims: Vec<(usize, &&Manifest)> = claims.iter().enumerate().collect();
    // Objects without a creation time (a folder) keep manifest order; in a cluster the
    // oldest claim wins, whatever order the watch caches list them in.
    claims.sort_by_key(|(i, m)| (age(m), *i));
    for (_, m) in claims {
        let Object::Scope(scope) = &m.object else { continue };
        let Some(resource) = &scope.spec.resource else { continue };
        if owners.iter().any(|o| crate::protocol::resource::same_resource(&o.resource, resource)) {
            continue;
        }
        owners.push(ResourceOwner {
            resource: resource.clone(),
            namespace: namespace_of(&scope.metadata).to_string(),
            claimed_by: format!("declared first by {}", m.object.display_name()),
        });
    }
    owners
}

/// Permission scopes without a resource go into tokens for the server's default audience,
/// where a resource server cannot tell which namespace declared them: each such string
/// belongs to the namespace of its oldest Scope (manifest order in a folder), as a resource
/// URI does. userInfo scopes are exempt: they release attributes through this server's own
/// userinfo endpoint and ID tokens, to the app the user consented to, and each namespace
/// words its own consent text for `email` or `profile`.
fn default_audience_scopes<'a>(claims: &[&'a Manifest]) -> HashMap<&'a str, (&'a str, String)> {
    let mut claims: Vec<(usize, &&Manifest)> = claims.iter().enumerate().collect();
    claims.sort_by_key(|(i, m)| (age(m), *i));
    let mut owners = HashMap::new();
    for (_, m) in claims {
        let Object::Scope(scope) = &m.object else { continue };
        owners
            .entry(scope.spec.scope.as_str())
            .or_insert_with(|| (namespace_of(&scope.metadata), m.object.display_name()));
    }
    owners
}

/// The one ConsentPolicy that enables self-registration, and the rule the others break.
/// Named by `--registration-policy`; else, in a cluster, the oldest in the operator's
/// namespace; in a folder, the first.
fn choose_registration_policy(candidates: &[&Manifest], trust: &Trust) -> (Option<String>, String) {
    if let Some(key) = &trust.registration_policy {
        let name = format!("ConsentPolicy {}/{}", key.namespace, key.name);
        let rule = format!("self-registration is enabled only by {name} (--registration-policy)");
        let found = candidates.iter().any(|m| m.object.display_name() == name);
        return (found.then_some(name), rule);
    }
    let mut eligible: Vec<(usize, &&Manifest)> = candidates
        .iter()
        .enumerate()
        .filter(|(_, m)| trust.operator_namespace.as_deref().is_none_or(|ns| namespace_of(m.object.metadata()) == ns))
        .collect();
    eligible.sort_by_key(|(i, m)| (age(m), *i));
    let chosen = eligible.first().map(|(_, m)| m.object.display_name());
    let rule = match (&trust.operator_namespace, &chosen) {
        (Some(ns), Some(chosen)) => {
            format!(
                "only one ConsentPolicy may enable self-registration, in the operator's namespace {ns}; {chosen} does"
            )
        }
        (Some(ns), None) => format!(
            "only a ConsentPolicy in the operator's namespace {ns} (or the one --registration-policy names) may \
             enable self-registration"
        ),
        (None, Some(chosen)) => format!("only one ConsentPolicy may enable self-registration; {chosen} does"),
        (None, None) => String::new(),
    };
    (chosen, rule)
}

fn problem(m: &Manifest, field: &str, message: String) -> Problem {
    Problem { source: m.source.clone(), object: Some(m.object.display_name()), field: Some(field.to_string()), message }
}

/// Collects problems about one manifest.
struct At<'a, 'p> {
    manifest: &'a Manifest,
    problems: &'p mut Vec<Problem>,
}

impl At<'_, '_> {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let field: String = field.into();
        self.problems.push(problem(self.manifest, &field, message.into()));
    }

    fn duration(&mut self, field: &str, value: Option<&DurationString>) -> Option<std::time::Duration> {
        let value = value?;
        match value.parse() {
            Ok(d) => Some(d),
            Err(e) => {
                self.push(field, e.to_string());
                None
            }
        }
    }

    fn duration_at_most(&mut self, field: &str, value: Option<&DurationString>, max: Duration, label: &str) {
        if let Some(d) = self.duration(field, value)
            && d > max
        {
            self.push(field, format!("must be at most {label}, got {}", value.map(|v| v.0.as_str()).unwrap_or("")));
        }
    }

    fn scope_refs(&mut self, field: &str, ns: &str, scopes: &[String], index: &Index<'_>) {
        for (i, scope) in scopes.iter().enumerate() {
            if !index.has_scope(ns, scope) {
                self.push(format!("{field}[{i}]"), format!("no Scope in namespace {ns} declares scope {scope:?}"));
            }
        }
    }

    fn resource_uris(&mut self, field: &str, resources: &[String]) {
        for (i, resource) in resources.iter().enumerate() {
            if let Err(message) = check_resource_uri(resource) {
                self.push(format!("{field}[{i}]"), message);
            }
        }
    }
}

/// Names and namespaces as the API server would accept them. Both become path components
/// of `inbound serve`'s credentials folder, so this is also what keeps `..` out of paths.
const DAY: Duration = Duration::from_secs(86_400);

fn check_name(at: &mut At<'_, '_>, meta: &kube::core::ObjectMeta) {
    if !is_dns_subdomain(meta.name.as_deref().unwrap_or("")) {
        at.push("metadata.name", "must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.'), at most 253 characters");
    }
    if let Some(namespace) = &meta.namespace
        && !is_dns_label(namespace)
    {
        at.push("metadata.namespace", "must be a lowercase RFC 1123 label (a-z, 0-9, '-'), at most 63 characters");
    }
}

/// A declared client id: unreserved URI characters (safe in URLs and, form-encoded, in
/// HTTP Basic credentials), and never a UUID: UIDs, and so every other app's default client
/// id and every registered client's, are UUIDs, so a declared id can never name another
/// client. Metadata-document ids are https URLs (`:` and `/` are refused here).
pub fn check_client_id(client_id: &str) -> Result<(), &'static str> {
    let unreserved = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-');
    if !(3..=128).contains(&client_id.len())
        || !client_id.chars().all(unreserved)
        || !client_id.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err("must be 3 to 128 letters, digits, '.', '_', '~' or '-', starting with a letter or digit");
    }
    let uuid_shaped = client_id.len() == 36
        && client_id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    if uuid_shaped {
        return Err("must not be a UUID: those are the ids of apps without spec.clientId and of registered clients");
    }
    Ok(())
}

fn check_app(at: &mut At<'_, '_>, app: &InboundApp, index: &Index<'_>) {
    let spec = &app.spec;
    let ns = namespace_of(&app.metadata);
    check_name(at, &app.metadata);
    if let Some(client_id) = &spec.client_id
        && let Err(rule) = check_client_id(client_id)
    {
        at.push("spec.clientId", rule);
    }
    if spec.display_name.trim().is_empty() {
        at.push("spec.displayName", "must not be empty");
    }
    if spec.grant_types.is_empty() && spec.resource_server.is_none() {
        at.push("spec.grantTypes", "must name at least one grant type (or spec.resourceServer, for an API)");
    }
    if let Some(server) = &spec.resource_server {
        if spec.client_type == ClientType::Public {
            at.push("spec.resourceServer", "a resource server authenticates to introspect: it must be confidential");
        }
        if server.resources.is_empty() {
            at.push("spec.resourceServer.resources", "must name at least one resource");
        }
        // Introspection reveals who a token acts for: only the resource's owner may declare
        // who reads its tokens.
        for (i, resource) in server.resources.iter().enumerate() {
            let checked = check_resource_uri(resource).and_then(|()| index.check_owned_by(resource, ns));
            if let Err(message) = checked {
                at.push(format!("spec.resourceServer.resources[{i}]"), message);
            }
        }
    }
    let mut seen = HashSet::new();
    for (i, grant_type) in spec.grant_types.iter().enumerate() {
        if !seen.insert(grant_type) {
            at.push(format!("spec.grantTypes[{i}]"), format!("{} is listed twice", grant_type.as_str()));
        }
        // Token exchange writes the client into `act` (RFC 8693 §4.1): it must prove who it is.
        // CIBA names a user on the back channel (CIBA Core §7.1): only an app that
        // authenticates may make someone's phone ring.
        if matches!(grant_type, GrantType::ClientCredentials | GrantType::TokenExchange | GrantType::Ciba)
            && spec.client_type == ClientType::Public
        {
            at.push(
                format!("spec.grantTypes[{i}]"),
                format!("{} requires a confidential client (spec.clientType is public)", grant_type.as_str()),
            );
        }
    }
    check_trusted_issuers(spec, at);
    check_ciba(spec, at);
    match (spec.client_type, spec.token_endpoint_auth_method) {
        (ClientType::Public, Some(m)) if m != crate::api::AuthMethod::None => at.push(
            "spec.tokenEndpointAuthMethod",
            format!("a public client has no secret: must be none, got {}", m.as_str()),
        ),
        (ClientType::Confidential, Some(crate::api::AuthMethod::None)) => at.push(
            "spec.tokenEndpointAuthMethod",
            "a confidential client must authenticate: client_secret_basic, client_secret_post or private_key_jwt",
        ),
        _ => {}
    }
    let key_based = spec.auth_method() == crate::api::AuthMethod::PrivateKeyJwt;
    if let Some(name) = &spec.service_account_name {
        if !is_dns_subdomain(name) {
            at.push("spec.serviceAccountName", "must be a valid ServiceAccount name");
        }
        if !key_based {
            at.push(
                "spec.serviceAccountName",
                "a ServiceAccount authenticates the app with its token as client assertion: set spec.tokenEndpointAuthMethod to private_key_jwt",
            );
        }
    }
    match (&spec.jwks, &spec.jwks_uri) {
        (None, None) if key_based && spec.service_account_name.is_none() => at.push(
            "spec.jwks",
            "private_key_jwt needs the app's public keys (spec.jwks or spec.jwksUri) or a spec.serviceAccountName",
        ),
        (Some(_), Some(_)) => {
            at.push("spec.jwks", "give the keys inline (jwks) or where to fetch them (jwksUri), not both")
        }
        (Some(_), _) | (_, Some(_)) if !key_based => at.push(
            "spec.tokenEndpointAuthMethod",
            "spec.jwks and spec.jwksUri are the keys of private_key_jwt, which is not this app's method",
        ),
        _ => {}
    }
    if let Some(set) = &spec.jwks
        && let Err(message) = crate::protocol::jwk::parse_public_jwk_set(set)
    {
        at.push("spec.jwks", message);
    }
    if let Some(uri) = &spec.jwks_uri
        && !Url::parse(uri).is_ok_and(|u| u.scheme() == "https" || is_loopback_host(&u))
    {
        at.push("spec.jwksUri", "must be an https URL");
    }
    if spec.grant_types.contains(&GrantType::AuthorizationCode) && spec.redirect_uris.is_empty() {
        at.push("spec.redirectUris", "the authorization_code grant needs at least one redirect URI");
    }
    for (i, uri) in spec.redirect_uris.iter().enumerate() {
        if let Err(message) = check_redirect_uri(uri) {
            at.push(format!("spec.redirectUris[{i}]"), message);
        }
    }
    for (i, uri) in spec.post_logout_redirect_uris.iter().enumerate() {
        if let Err(message) = check_redirect_uri(uri) {
            at.push(format!("spec.postLogoutRedirectUris[{i}]"), message);
        }
    }
    for (field, uri) in [("spec.tosUri", &spec.tos_uri), ("spec.policyUri", &spec.policy_uri)] {
        if let Some(uri) = uri
            && !Url::parse(uri).is_ok_and(|u| u.scheme() == "https")
        {
            at.push(field, "must be an https URL");
        }
    }
    if let Some(logo) = &spec.logo_uri {
        match Url::parse(logo) {
            Ok(url) if url.scheme() == "https" => {}
            _ => at.push("spec.logoUri", "must be an absolute https URL"),
        }
    }
    at.scope_refs("spec.allowedScopes", ns, &spec.allowed_scopes, index);
    at.resource_uris("spec.allowedResources", &spec.allowed_resources);
    // Users are asked for resources of the app's own namespace only. Without a user
    // (client_credentials), allowedResources only narrows what ClientGrants give, and a
    // resource's owner may grant it to an app of another namespace.
    let asks_users = spec.grant_types.iter().any(|g| g.signs_users_in());
    for (i, resource) in spec.allowed_resources.iter().enumerate() {
        if check_resource_uri(resource).is_err() {
            continue;
        }
        let owned = match index.check_owned_by(resource, ns) {
            Err(_) if !asks_users && index.owner(resource).is_some() => Ok(()),
            owned => owned,
        };
        if let Err(message) = owned {
            at.push(format!("spec.allowedResources[{i}]"), message);
        }
    }
    for (i, scope) in spec.allowed_scopes.iter().enumerate() {
        if let Some(resource) = index.scopes.get(&(ns, scope.as_str())).and_then(|s| s.spec.resource.as_deref())
            && crate::protocol::resource::find(&spec.allowed_resources, resource).is_none()
        {
            at.push(
                format!("spec.allowedScopes[{i}]"),
                format!("scope {scope} is for resource {resource}, which spec.allowedResources does not list"),
            );
        }
    }
    // RFC 9700 §2.2.2/§4.14: access tokens short-lived; a day is the most a bearer token
    // should live. Refresh tokens are bounded by the parser's ten years.
    at.duration_at_most("spec.tokens.accessTokenLifetime", spec.tokens.access_token_lifetime.as_ref(), DAY, "24h");
    at.duration("spec.tokens.refreshTokenLifetime", spec.tokens.refresh_token_lifetime.as_ref());
    at.duration_at_most("spec.tokens.idTokenLifetime", spec.tokens.id_token_lifetime.as_ref(), DAY, "24h");
    at.duration("spec.tokens.sessionLifetime", spec.tokens.session_lifetime.as_ref());
    // RFC 8628 §3.2 leaves both to the server: a device code is a bearer secret waiting for a
    // user, so it lives minutes, not days.
    at.duration_at_most(
        "spec.tokens.deviceCodeLifetime",
        spec.tokens.device_code_lifetime.as_ref(),
        Duration::from_secs(3600),
        "1h",
    );
    at.duration_at_most(
        "spec.tokens.devicePollInterval",
        spec.tokens.device_poll_interval.as_ref(),
        Duration::from_secs(60),
        "60s",
    );
    if let Some(secret) = &spec.credentials_secret {
        if !secret.name.is_empty() && !is_dns_subdomain(&secret.name) {
            at.push("spec.credentialsSecret.name", "must be a valid Secret name (lowercase RFC 1123 subdomain)");
        }
        check_credentials_template(at, secret);
    }
}

/// The Secret template: key names the API server accepts, no two alike, and none of the
/// labels inbound finds its Secrets by.
fn check_credentials_template(at: &mut At<'_, '_>, secret: &crate::api::CredentialsSecretRef) {
    let keys = &secret.keys;
    let named = [
        ("clientId", &keys.client_id),
        ("clientSecret", &keys.client_secret),
        ("issuer", &keys.issuer),
        ("tokenUrl", &keys.token_url),
        ("discoveryUrl", &keys.discovery_url),
        ("jwksUri", &keys.jwks_uri),
        ("inClusterTokenUrl", &keys.in_cluster_token_url),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (field, key) in named {
        let Some(key) = key else { continue };
        let valid = !key.is_empty()
            && key.len() <= 253
            && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            at.push(
                format!("spec.credentialsSecret.keys.{field}"),
                "must be a Secret key: letters, digits, '-', '_', '.'",
            );
        } else if !seen.insert(key.as_str()) {
            at.push(
                format!("spec.credentialsSecret.keys.{field}"),
                format!("{key:?} is already the name of another key"),
            );
        }
    }
    for reserved in ["app.kubernetes.io/managed-by", "inbound.dev/app"] {
        if secret.labels.contains_key(reserved) {
            at.push(
                format!("spec.credentialsSecret.labels.{reserved}"),
                "is set by inbound: it finds its Secrets by it",
            );
        }
    }
}

fn check_scope(at: &mut At<'_, '_>, scope: &Scope, index: &Index<'_>) {
    let spec = &scope.spec;
    check_name(at, &scope.metadata);
    if !is_valid_scope_token(&spec.scope) {
        at.push(
            "spec.scope",
            "must be a non-empty scope token: printable ASCII without space, '\"' or '\\' (RFC 6749 §3.3)",
        );
    }
    if spec.description.trim().is_empty() {
        at.push("spec.description", "must not be empty: it is shown on the consent screen");
    }
    match (spec.kind, &spec.user_attribute) {
        (ScopeKind::UserInfo, None) => {
            at.push("spec.userAttribute", "a userInfo scope must name the user attribute it releases")
        }
        (ScopeKind::Permission, Some(_)) => {
            at.push("spec.userAttribute", "only userInfo scopes release a user attribute")
        }
        _ => {}
    }
    if spec.kind == ScopeKind::UserInfo && spec.level == crate::api::ScopeLevel::Tenant {
        // A user's own attributes are theirs to release, not their tenant administrator's.
        at.push("spec.level", "userInfo scopes are granted by each user: only permission scopes can be tenant-level");
    }
    if let Some(resource) = &spec.resource {
        if let Err(message) = check_resource_uri(resource) {
            at.push("spec.resource", message);
        } else if let Err(message) = index.check_owned_by(resource, namespace_of(&scope.metadata)) {
            // A namespace declaring scopes for another's API could otherwise put them into
            // tokens that API accepts.
            at.push("spec.resource", message);
        }
    } else if spec.kind == ScopeKind::Permission
        && let Some((owner, declared_by)) = index.default_audience_scopes.get(spec.scope.as_str())
        && *owner != namespace_of(&scope.metadata)
    {
        // Another namespace's tokens for the default audience already carry this string.
        at.push(
            "spec.resource",
            format!(
                "scope {:?} without a resource is a scope of the server's default audience, declared first by \
                 {declared_by}; name your API with spec.resource, or choose another scope string",
                spec.scope
            ),
        );
    }
}

fn check_grant(at: &mut At<'_, '_>, grant: &ClientGrant, index: &Index<'_>) {
    let spec = &grant.spec;
    let ns = namespace_of(&grant.metadata);
    check_name(at, &grant.metadata);
    let subject_ns = spec.subject.namespace.as_deref().unwrap_or(ns);
    let mut app = None;
    match spec.subject.kind {
        SubjectKind::InboundApp => {
            // A resource's owner grants it, to an app of any namespace; a grant of another
            // namespace's app must therefore say which of its own resources it gives.
            if subject_ns != ns && spec.resources.is_empty() {
                at.push(
                    "spec.resources",
                    "a ClientGrant for an app of another namespace must name the resources (of this namespace) it grants",
                );
            }
            match index.apps.get(&(subject_ns, spec.subject.name.as_str())) {
                None => at
                    .push("spec.subject.name", format!("InboundApp {subject_ns}/{} does not exist", spec.subject.name)),
                // A delegation grant is used only by token exchange.
                Some(found)
                    if spec.token_exchange.is_some() && !found.spec.grant_types.contains(&GrantType::TokenExchange) =>
                {
                    at.push(
                        "spec.tokenExchange",
                        format!(
                            "InboundApp {subject_ns}/{} does not allow the {} grant",
                            spec.subject.name,
                            GrantType::TokenExchange.as_str()
                        ),
                    )
                }
                // What a grant gives an app is used by client_credentials, and by the JWT
                // bearer grant for the users its trusted issuers name.
                Some(found)
                    if spec.token_exchange.is_none()
                        && !found.spec.grant_types.contains(&GrantType::ClientCredentials)
                        && !found.spec.grant_types.contains(&GrantType::JwtBearer) =>
                {
                    at.push(
                        "spec.subject.name",
                        format!(
                            "InboundApp {subject_ns}/{} allows neither the client_credentials nor the JWT bearer grant",
                            spec.subject.name
                        ),
                    )
                }
                Some(found) => app = Some(*found),
            }
        }
        SubjectKind::ServiceAccount => {
            if !is_dns_subdomain(&spec.subject.name) {
                at.push("spec.subject.name", "must be a valid ServiceAccount name");
            }
            if spec.token_exchange.is_some() {
                at.push(
                    "spec.tokenExchange",
                    "only an InboundApp can exchange tokens (it authenticates as itself); a ServiceAccount's \
                     token can be exchanged by an app whose delegation grant accepts Jwt subject tokens",
                );
            }
        }
    }
    at.scope_refs("spec.scopes", ns, &spec.scopes, index);
    at.resource_uris("spec.resources", &spec.resources);
    for (i, resource) in spec.resources.iter().enumerate() {
        if check_resource_uri(resource).is_ok()
            && let Err(message) = index.check_owned_by(resource, ns)
        {
            at.push(format!("spec.resources[{i}]"), message);
        }
    }
    for (i, scope) in spec.scopes.iter().enumerate() {
        if let Some(resource) = index.scopes.get(&(ns, scope.as_str())).and_then(|s| s.spec.resource.as_deref())
            && crate::protocol::resource::find(&spec.resources, resource).is_none()
        {
            at.push(
                format!("spec.scopes[{i}]"),
                format!("scope {scope} is for resource {resource}, which spec.resources does not name"),
            );
        }
    }
    if let Some(app) = app {
        if !app.spec.allowed_resources.is_empty() {
            for (i, resource) in spec.resources.iter().enumerate() {
                if crate::protocol::resource::find(&app.spec.allowed_resources, resource).is_none() {
                    at.push(format!("spec.resources[{i}]"), "is not in the app's spec.allowedResources");
                }
            }
        }
        if !app.spec.allowed_tenants.is_empty() {
            for (i, tenant) in spec.tenants.iter().enumerate() {
                if !app.spec.allowed_tenants.contains(tenant) {
                    at.push(format!("spec.tenants[{i}]"), "is not in the app's spec.allowedTenants");
                }
            }
        }
    }
    check_tenant_ids(at, "spec.tenants", &spec.tenants);
    if let Some(expires_at) = &spec.expires_at
        && expires_at.parse::<jiff::Timestamp>().is_err()
    {
        at.push("spec.expiresAt", "must be an RFC 3339 time such as 2027-01-31T00:00:00Z");
    }
}

fn check_policy(at: &mut At<'_, '_>, policy: &ConsentPolicy, index: &Index<'_>) {
    let spec = &policy.spec;
    let ns = namespace_of(&policy.metadata);
    check_name(at, &policy.metadata);
    for (i, name) in spec.app_selector.names.iter().enumerate() {
        if !index.apps.contains_key(&(ns, name.as_str())) {
            at.push(format!("spec.appSelector.names[{i}]"), format!("InboundApp {ns}/{name} does not exist"));
        }
    }
    at.scope_refs("spec.consent.mandatoryScopes", ns, &spec.consent.mandatory_scopes, index);
    for (i, role) in spec.consent.tenant_admin_roles.iter().enumerate() {
        if role.trim().is_empty() {
            at.push(format!("spec.consent.tenantAdminRoles[{i}]"), "must not be empty");
        }
    }
    let max = at.duration("spec.consent.maxDuration", spec.consent.max_duration.as_ref());
    let default = at.duration("spec.consent.defaultDuration", spec.consent.default_duration.as_ref());
    for (i, d) in spec.consent.durations.iter().enumerate() {
        let field = format!("spec.consent.durations[{i}]");
        if let (Some(d), Some(max)) = (at.duration(&field, Some(d)), max)
            && d > max
        {
            at.push(
                field,
                format!(
                    "exceeds spec.consent.maxDuration ({})",
                    spec.consent.max_duration.as_ref().map(|m| m.0.as_str()).unwrap_or("")
                ),
            );
        }
    }
    if let Some(default) = default {
        if max.is_some_and(|max| default > max) {
            at.push("spec.consent.defaultDuration", "exceeds spec.consent.maxDuration");
        }
        let listed = spec.consent.durations.iter().any(|d| d.parse().ok() == Some(default));
        if !spec.consent.durations.is_empty() && !listed {
            at.push("spec.consent.defaultDuration", "must be one of spec.consent.durations");
        }
    }
    check_registration(at, policy, index);
}

/// True when the policy admits self-registered clients (DCR or metadata documents).
pub fn enables_registration(policy: &ConsentPolicySpec) -> bool {
    policy.registration.as_ref().is_some_and(|r| r.dynamic || r.client_id_metadata_documents.enabled)
}

fn check_registration(at: &mut At<'_, '_>, policy: &ConsentPolicy, index: &Index<'_>) {
    let Some(registration) = &policy.spec.registration else { return };
    let ns = namespace_of(&policy.metadata);
    if enables_registration(&policy.spec)
        && index.registration_policy.as_deref()
            != Some(&format!("ConsentPolicy {ns}/{}", policy.metadata.name.as_deref().unwrap_or("")))
    {
        at.push("spec.registration", index.registration_rule.clone());
    }
    let scopes: Vec<String> = registration.approved_scopes.iter().map(|s| s.scope.clone()).collect();
    at.scope_refs("spec.registration.approvedScopes", ns, &scopes, index);
    for (i, scope) in scopes.iter().enumerate() {
        if let Some(resource) = index.scopes.get(&(ns, scope.as_str())).and_then(|s| s.spec.resource.as_deref())
            && crate::protocol::resource::find(&registration.resources, resource).is_none()
        {
            at.push(
                format!("spec.registration.approvedScopes[{i}]"),
                format!("scope {scope} is for resource {resource}, which spec.registration.resources does not list"),
            );
        }
    }
    for (i, pattern) in registration.redirect_uri_patterns.iter().enumerate() {
        if let Err(e) = crate::protocol::pattern::validate_redirect_pattern(pattern) {
            at.push(format!("spec.registration.redirectUriPatterns[{i}]"), e);
        }
    }
    for (i, resource) in registration.resources.iter().enumerate() {
        // RFC 8707 §2: an absolute URI without a fragment.
        match Url::parse(resource) {
            Ok(url) if url.fragment().is_none() && matches!(url.scheme(), "https" | "http") => {
                // Self-registered clients belong to the policy's namespace: they get tokens
                // only for resources it owns.
                if let Err(message) = index.check_owned_by(resource, ns) {
                    at.push(format!("spec.registration.resources[{i}]"), message);
                }
            }
            _ => at.push(
                format!("spec.registration.resources[{i}]"),
                "must be an absolute http(s) URL without a fragment",
            ),
        }
    }
    at.duration("spec.registration.reapAfter", registration.reap_after.as_ref());
    let cimd = &registration.client_id_metadata_documents;
    for (i, domain) in cimd.allowed_domains.iter().enumerate() {
        if let Err(e) = crate::protocol::pattern::validate_domain_pattern(domain) {
            at.push(format!("spec.registration.clientIdMetadataDocuments.allowedDomains[{i}]"), e);
        }
    }
    if cimd.enabled && cimd.allowed_domains.is_empty() {
        at.push(
            "spec.registration.clientIdMetadataDocuments.allowedDomains",
            "must list at least one domain when metadata documents are enabled",
        );
    }
}

fn check_user(at: &mut At<'_, '_>, user: &crate::api::DevelopmentUser, index: &Index<'_>) {
    check_name(at, &user.metadata);
    let spec = &user.spec;
    if spec.username.trim().is_empty() {
        at.push("spec.username", "must not be empty");
    } else if index.duplicate_usernames.contains(spec.username.as_str()) {
        at.push("spec.username", format!("username {:?} is used by more than one DevelopmentUser", spec.username));
    }
    match argon2::PasswordHash::new(&spec.password_hash) {
        Ok(hash) if hash.algorithm.as_str().starts_with("argon2") => {}
        _ => at.push(
            "spec.passwordHash",
            "must be an argon2 PHC string ($argon2id$...); `inbound hash-password` prints one",
        ),
    }
    check_tenant_ids(at, "spec.tenants", &spec.tenants);
    for tenant in spec.tenant_roles.keys().filter(|t| !spec.tenants.contains(t)) {
        at.push(format!("spec.tenantRoles.{tenant}"), "names a tenant that is not in spec.tenants");
    }
}

/// CIBA settings: only with the grant; ping mode needs the endpoint it calls (https, or
/// http on a loopback address); bounded lifetimes.
fn check_ciba(spec: &crate::api::InboundAppSpec, at: &mut At<'_, '_>) {
    let Some(ciba) = &spec.ciba else { return };
    if !spec.grant_types.contains(&GrantType::Ciba) {
        at.push("spec.ciba", format!("the app does not list the {} grant", GrantType::Ciba.as_str()));
    }
    match (&ciba.delivery_mode, &ciba.client_notification_endpoint) {
        (crate::api::CibaDeliveryMode::Ping, None) => {
            at.push("spec.ciba.clientNotificationEndpoint", "ping mode needs the endpoint to notify")
        }
        (_, Some(endpoint))
            if !Url::parse(endpoint).is_ok_and(|u| {
                (u.scheme() == "https" || (u.scheme() == "http" && is_loopback_host(&u))) && u.fragment().is_none()
            }) =>
        {
            at.push(
                "spec.ciba.clientNotificationEndpoint",
                "must be an https URL without a fragment (http only on a loopback address)",
            )
        }
        _ => {}
    }
    at.duration_at_most("spec.ciba.linkLifetime", ciba.link_lifetime.as_ref(), Duration::from_secs(3600), "1h");
    at.duration_at_most("spec.ciba.pollInterval", ciba.poll_interval.as_ref(), Duration::from_secs(60), "60s");
}

/// Tenant identifiers as tokens carry them: non-empty, without spaces or control characters.
fn check_tenant_ids(at: &mut At<'_, '_>, field: &str, tenants: &[String]) {
    for (i, tenant) in tenants.iter().enumerate() {
        if tenant.is_empty() || tenant.chars().any(|c| c.is_control() || c == ' ') {
            at.push(format!("{field}[{i}]"), "must be a non-empty identifier without spaces");
        }
    }
}

/// ID token algorithms an IdentityProvider may accept: asymmetric only (a symmetric key
/// would be the client secret, shared with whoever else knows it; `none` is no signature).
pub const ID_TOKEN_ALGS: &[&str] = &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

fn check_provider(at: &mut At<'_, '_>, provider: &crate::api::IdentityProvider, trust: &Trust, index: &Index<'_>) {
    check_name(at, &provider.metadata);
    let spec = &provider.spec;
    let ns = namespace_of(&provider.metadata);
    // Who users are is decided for the whole deployment: only in the operator's namespace.
    if let Some(operator) = trust.operator_namespace.as_deref()
        && ns != operator
    {
        at.push(
            "metadata.namespace",
            format!("IdentityProviders are honoured only in the operator's namespace {operator:?}: who users are is not any namespace's decision"),
        );
    }
    if spec.display_name.trim().is_empty() {
        at.push("spec.displayName", "must not be empty");
    }
    match (&spec.oidc, &spec.application) {
        (Some(oidc), None) => check_oidc_provider(at, oidc),
        (None, Some(application)) => {
            match Url::parse(&application.login_url) {
                Ok(url) if url.scheme() == "https" || (url.scheme() == "http" && is_loopback_host(&url)) => {}
                Ok(_) => at.push("spec.application.loginUrl", "must be https (http only on a loopback address)"),
                Err(e) => at.push("spec.application.loginUrl", format!("must be an absolute URL: {e}")),
            }
            match index.apps.get(&(ns, application.client.as_str())) {
                None => {
                    at.push("spec.application.client", format!("InboundApp {ns}/{} does not exist", application.client))
                }
                Some(app) if app.spec.client_type != ClientType::Confidential => {
                    at.push("spec.application.client", "must be a confidential InboundApp (it authenticates to accept)")
                }
                Some(_) => {}
            }
        }
        _ => at.push("spec", "must set exactly one of oidc and application"),
    }
    let claims = &spec.claims;
    if claims.subject.is_empty() {
        at.push("spec.claims.subject", "must name a claim");
    }
    if let Some(tenant) = &claims.tenant
        && tenant.claim.is_some() == tenant.value.is_some()
    {
        at.push("spec.claims.tenant", "must give exactly one of claim, value");
    }
    if claims.roles.as_ref().is_some_and(|r| r.claim.is_empty()) {
        at.push("spec.claims.roles.claim", "must name a claim");
    }
    for (i, domain) in spec.email_domains.iter().enumerate() {
        let bare = domain.strip_prefix("*.").unwrap_or(domain);
        if bare.is_empty() || bare.contains(['@', '/', ':', '*']) {
            at.push(format!("spec.emailDomains[{i}]"), "must be a domain (example.com or *.example.com)");
        }
    }
}

fn check_oidc_provider(at: &mut At<'_, '_>, oidc: &crate::api::OidcProvider) {
    match Url::parse(&oidc.issuer) {
        Err(e) => at.push("spec.oidc.issuer", format!("must be an absolute URL: {e}")),
        Ok(url) if url.query().is_some() || url.fragment().is_some() => {
            at.push("spec.oidc.issuer", "must not have a query or fragment (OpenID Connect Discovery §2)")
        }
        Ok(url) if url.scheme() == "https" || (url.scheme() == "http" && is_loopback_host(&url)) => {}
        Ok(_) => at.push("spec.oidc.issuer", "must be https (http only on a loopback address, for development)"),
    }
    if oidc.client_id.trim().is_empty() {
        at.push("spec.oidc.clientId", "must not be empty");
    }
    if let Some(secret) = &oidc.client_secret {
        let given = [secret.secret_key_ref.is_some(), secret.file.is_some(), secret.env.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            at.push("spec.oidc.clientSecret", "must name exactly one of secretKeyRef, file, env");
        }
        if let Some(r) = &secret.secret_key_ref
            && (r.name.is_empty() || r.key.is_empty())
        {
            at.push("spec.oidc.clientSecret.secretKeyRef", "needs name and key");
        }
    }
    for (i, scope) in oidc.scopes.iter().enumerate() {
        if !is_valid_scope_token(scope) {
            at.push(format!("spec.oidc.scopes[{i}]"), "is not a valid scope token (RFC 6749 §3.3)");
        }
    }
    for (i, alg) in oidc.id_token_signing_algs.iter().enumerate() {
        if !ID_TOKEN_ALGS.contains(&alg.as_str()) {
            at.push(
                format!("spec.oidc.idTokenSigningAlgs[{i}]"),
                format!("must be one of {}", ID_TOKEN_ALGS.join(", ")),
            );
        }
    }
}

/// RFC 6749 §3.1.2 and RFC 8252: absolute, no fragment; https, http on a loopback address,
/// or a private-use scheme in reverse-domain form (native apps, RFC 8252 §7.1).
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let url = Url::parse(uri).map_err(|e| format!("must be an absolute URI: {e}"))?;
    if url.fragment().is_some() {
        return Err("must not contain a fragment (RFC 6749 §3.1.2)".into());
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&url) => Ok(()),
        "http" => Err("must be https, or http on a loopback address".into()),
        scheme if scheme.contains('.') => Ok(()),
        _ => Err("must be https, http on a loopback address, or a reverse-domain private-use scheme".into()),
    }
}

/// RFC 8707 §2: an absolute URI without a fragment.
pub fn check_resource_uri(uri: &str) -> Result<(), String> {
    let url = Url::parse(uri).map_err(|e| format!("must be an absolute URI: {e}"))?;
    if url.fragment().is_some() {
        return Err("must not contain a fragment (RFC 8707 §2)".into());
    }
    Ok(())
}

/// Kubernetes object names (RFC 1123 subdomain).
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// Kubernetes namespaces and subdomain labels (RFC 1123 label).
fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// `spec.trustedIssuers` and the JWT bearer grant they serve (RFC 7523).
fn check_trusted_issuers(spec: &crate::api::InboundAppSpec, at: &mut At<'_, '_>) {
    let jwt_bearer = spec.grant_types.contains(&GrantType::JwtBearer);
    let token_exchange = spec.grant_types.contains(&GrantType::TokenExchange);
    // CIBA's login_hint_token is a trusted issuer's JWT too.
    let ciba = spec.grant_types.contains(&GrantType::Ciba);
    if jwt_bearer && spec.trusted_issuers.is_empty() {
        at.push(
            "spec.trustedIssuers",
            "the JWT bearer grant needs at least one trusted issuer (ServiceAccounts need no app: grant them with a ClientGrant)",
        );
    }
    if !jwt_bearer && !token_exchange && !ciba && !spec.trusted_issuers.is_empty() {
        at.push(
            "spec.grantTypes",
            format!(
                "spec.trustedIssuers is set but none of {}, {}, {} is a grant type of the app",
                GrantType::JwtBearer.as_str(),
                GrantType::TokenExchange.as_str(),
                GrantType::Ciba.as_str()
            ),
        );
    }
    let mut seen = HashSet::new();
    for (i, trusted) in spec.trusted_issuers.iter().enumerate() {
        let field = |name: &str| format!("spec.trustedIssuers[{i}].{name}");
        match Url::parse(&trusted.issuer) {
            Ok(url)
                if matches!(url.scheme(), "https" | "http") && url.query().is_none() && url.fragment().is_none() =>
            {
                if url.scheme() == "http" && !crate::protocol::loopback::is_loopback_host(&url) {
                    at.push(field("issuer"), "must be an https URL (http only on a loopback address)");
                }
            }
            _ => at.push(field("issuer"), "must be an https URL without query or fragment (the JWTs' iss, exactly)"),
        }
        if !seen.insert(trusted.issuer.as_str()) {
            at.push(field("issuer"), "is listed twice");
        }
        if let Some(uri) = &trusted.jwks_uri
            && !Url::parse(uri).is_ok_and(|u| u.scheme() == "https" || crate::protocol::loopback::is_loopback_host(&u))
        {
            at.push(field("jwksUri"), "must be an https URL");
        }
        if trusted.jwks.is_some() && trusted.jwks_uri.is_some() {
            at.push(field("jwks"), "give the keys inline (jwks) or where to fetch them (jwksUri), not both");
        }
        if let Some(set) = &trusted.jwks
            && let Err(message) = crate::protocol::jwk::parse_public_jwk_set(set)
        {
            at.push(field("jwks"), message);
        }
        if let Some(uri) = &trusted.userinfo_uri
            && !Url::parse(uri).is_ok_and(|u| u.scheme() == "https" || crate::protocol::loopback::is_loopback_host(&u))
        {
            at.push(field("userinfoUri"), "must be an https URL");
        }
        for (j, alg) in trusted.algorithms.iter().enumerate() {
            if !crate::protocol::jwk::ASYMMETRIC_ALGORITHMS.contains(&alg.as_str()) {
                at.push(
                    format!("spec.trustedIssuers[{i}].algorithms[{j}]"),
                    format!(
                        "{alg:?} is not accepted: one of {} (never none or HMAC)",
                        crate::protocol::jwk::ASYMMETRIC_ALGORITHMS.join(", ")
                    ),
                );
            }
        }
        if trusted.login_claim.as_deref().is_some_and(str::is_empty) {
            at.push(field("loginClaim"), "must name a claim");
        }
        at.duration(&field("maxLifetime"), trusted.max_lifetime.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_client_ids_never_look_like_anyone_elses() {
        for good in ["acme-billing", "partner.example_v2", "a~b", "abc"] {
            assert_eq!(check_client_id(good), Ok(()), "{good}");
        }
        for bad in [
            "ab",
            "-acme",
            "acme billing",
            "https://acme.example.com/client",
            "acme:billing",
            "6b3f8c2e-1d4a-4e9b-8c7f-2a1b3c4d5e6f",
            "6B3F8C2E-1D4A-4E9B-8C7F-2A1B3C4D5E6F",
        ] {
            assert!(check_client_id(bad).is_err(), "{bad}");
        }
        assert!(check_client_id(&"a".repeat(129)).is_err());
    }

    #[test]
    fn redirect_uris() {
        assert!(check_redirect_uri("https://app.example.com/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1/cb").is_ok());
        assert!(check_redirect_uri("http://[::1]:8080/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/cb").is_ok());
        assert_eq!(
            check_redirect_uri("http://app.example.com/cb").unwrap_err(),
            "must be https, or http on a loopback address"
        );
        assert!(check_redirect_uri("https://app.example.com/cb#x").is_err());
        assert!(check_redirect_uri("/relative").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
    }

    #[test]
    fn names() {
        assert!(is_dns_subdomain("billing-agent"));
        assert!(is_dns_subdomain("a.b-c"));
        assert!(!is_dns_subdomain("Billing"));
        assert!(!is_dns_subdomain("-x"));
        assert!(!is_dns_subdomain(""));
        assert!(is_dns_label("team-a"));
        assert!(!is_dns_label("a.b"), "namespaces have no dots");
        assert!(!is_dns_label(".."));
        assert!(!is_dns_label(&"a".repeat(64)));
    }

    fn problems_with(yaml: &str, trust: &Trust) -> Vec<String> {
        let (manifests, parse) = crate::catalog::manifest::parse_file("t.yaml", yaml);
        assert!(parse.is_empty(), "{parse:?}");
        validate_with(&manifests, trust)
            .into_iter()
            .map(|p| format!("{} {}: {}", p.object.unwrap_or_default(), p.field.unwrap_or_default(), p.message))
            .collect()
    }

    /// team-a owns billing (its Scopes declare it); team-b tries every way in.
    const TEAMS: &str = "
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: refund, namespace: team-a, creationTimestamp: '2026-01-01T00:00:00Z'}
spec: {scope: 'billing:refund', description: Refund, resource: 'https://billing.example.com', requiredRoles: [admin]}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: refund, namespace: team-b, creationTimestamp: '2026-02-01T00:00:00Z'}
spec: {scope: 'billing:refund', description: Refund, resource: 'https://billing.example.com/'}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: loose, namespace: team-b}
spec: {scope: 'billing:loose', description: Refund without a resource}
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: agent, namespace: team-b}
spec: {displayName: Agent, grantTypes: [client_credentials], allowedResources: ['https://billing.example.com']}
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: portal, namespace: team-b}
spec:
  displayName: Portal
  grantTypes: [authorization_code]
  redirectUris: ['https://portal.example.com/cb']
  allowedResources: ['https://billing.example.com']
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: self-service, namespace: team-b}
spec:
  subject: {kind: InboundApp, name: agent}
  scopes: ['billing:loose']
  resources: ['https://billing.example.com']
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: for-team-b, namespace: team-a}
spec:
  subject: {kind: InboundApp, name: agent, namespace: team-b}
  scopes: ['billing:refund']
  resources: ['https://billing.example.com']
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: no-resource, namespace: team-a}
spec:
  subject: {kind: InboundApp, name: agent, namespace: team-b}
  scopes: []
";

    #[test]
    fn a_resource_belongs_to_the_namespace_that_declared_it_first() {
        let problems = problems_with(TEAMS, &Trust::default());
        let owned_by_a = "resource https://billing.example.com is owned by namespace team-a \
                          (declared first by Scope team-a/refund); only objects there can grant it";
        assert_eq!(
            problems,
            [
                format!("Scope team-b/refund spec.resource: {}", owned_by_a.replace(".com is", ".com/ is")),
                format!("InboundApp team-b/portal spec.allowedResources[0]: {owned_by_a}"),
                format!("ClientGrant team-b/self-service spec.resources[0]: {owned_by_a}"),
                "ClientGrant team-a/no-resource spec.resources: a ClientGrant for an app of another namespace \
                 must name the resources (of this namespace) it grants"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn the_oldest_claim_wins_whatever_the_order_and_a_pin_beats_both() {
        // Listed first but younger: team-b still loses.
        let mut reordered: Vec<&str> = TEAMS.split("---").collect();
        reordered.swap(0, 1);
        let problems = problems_with(&reordered.join("---"), &Trust::default());
        assert!(problems[0].starts_with("Scope team-b/refund spec.resource: resource"), "{problems:?}");

        let pinned = Trust {
            resource_owners: [("https://billing.example.com".to_string(), "team-c".to_string())].into(),
            ..Trust::default()
        };
        let problems = problems_with(TEAMS, &pinned);
        assert!(
            problems.iter().any(|p| p.starts_with("Scope team-a/refund spec.resource: resource https://billing.example.com is owned by namespace team-c (pinned by --resource-owner)")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_scope_of_the_default_audience_belongs_to_the_namespace_that_declared_it_first() {
        // team-b's `admin` is listed first but is younger; userInfo scopes never conflict.
        let yaml = "
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: admin, namespace: team-b, creationTimestamp: '2026-02-01T00:00:00Z'}
spec: {scope: admin, description: Administer team-b}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: admin, namespace: team-a, creationTimestamp: '2026-01-01T00:00:00Z'}
spec: {scope: admin, description: Administer}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: admin, namespace: team-c}
spec: {scope: admin, description: Administer team-c's API, resource: 'https://c.example.com'}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: email, namespace: team-a}
spec: {scope: email, description: Email, kind: userInfo, userAttribute: email}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: email, namespace: team-b}
spec: {scope: email, description: Work email, kind: userInfo, userAttribute: email}
";
        assert_eq!(
            problems_with(yaml, &Trust::default()),
            ["Scope team-b/admin spec.resource: scope \"admin\" without a resource is a scope of the server's \
              default audience, declared first by Scope team-a/admin; name your API with spec.resource, or choose \
              another scope string"]
        );
    }

    #[test]
    fn unclaimed_resources_and_scopes_outside_their_resource_are_refused() {
        let yaml = "
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: read, namespace: ns}
spec: {scope: 'api:read', description: Read, resource: 'https://api.example.com'}
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: agent, namespace: ns}
spec: {displayName: Agent, grantTypes: [client_credentials]}
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: g, namespace: ns}
spec:
  subject: {kind: InboundApp, name: agent}
  scopes: ['api:read']
  resources: ['https://nobody.example.com']
";
        let problems = problems_with(yaml, &Trust::default());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("ClientGrant ns/g spec.resources[0]: no Scope declares resource"));
        assert_eq!(
            problems[1],
            "ClientGrant ns/g spec.scopes[0]: scope api:read is for resource https://api.example.com, which \
             spec.resources does not name"
        );
    }

    const POLICIES: &str = "
apiVersion: inbound.dev/v1alpha1
kind: ConsentPolicy
metadata: {name: aaa, namespace: aaa, creationTimestamp: '2026-03-01T00:00:00Z'}
spec: {registration: {dynamic: true}}
---
apiVersion: inbound.dev/v1alpha1
kind: ConsentPolicy
metadata: {name: mcp, namespace: inbound-system, creationTimestamp: '2026-02-01T00:00:00Z'}
spec: {registration: {dynamic: true}}
---
apiVersion: inbound.dev/v1alpha1
kind: ConsentPolicy
metadata: {name: newer, namespace: inbound-system, creationTimestamp: '2026-04-01T00:00:00Z'}
spec: {registration: {dynamic: true}}
";

    #[test]
    fn self_registration_is_enabled_by_one_explicitly_chosen_policy() {
        let cluster = Trust { operator_namespace: Some("inbound-system".into()), ..Trust::default() };
        let rule = "only one ConsentPolicy may enable self-registration, in the operator's namespace \
                    inbound-system; ConsentPolicy inbound-system/mcp does";
        assert_eq!(
            problems_with(POLICIES, &cluster),
            [
                format!("ConsentPolicy aaa/aaa spec.registration: {rule}"),
                format!("ConsentPolicy inbound-system/newer spec.registration: {rule}"),
            ]
        );
        let named = Trust {
            registration_policy: Some(ObjectKey { namespace: "inbound-system".into(), name: "newer".into() }),
            ..cluster
        };
        let problems = problems_with(POLICIES, &named);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| p.ends_with(
            "spec.registration: self-registration is enabled only by ConsentPolicy inbound-system/newer \
             (--registration-policy)"
        )));
        assert!(!problems.iter().any(|p| p.contains("/newer spec")), "{problems:?}");
    }
}
