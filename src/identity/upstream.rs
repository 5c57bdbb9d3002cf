//! `inbound` as the relying party of an upstream OpenID Provider (`IdentityProvider`):
//! OpenID Connect Core §3.1 authorization code flow, with PKCE (RFC 7636), `state` and
//! `nonce`, the ID token validated per §3.1.3.7, and the upstream's claims mapped to
//! `inbound`'s user as the IdentityProvider declares.
//!
//! The OAuth core decides when a browser goes upstream and keeps the attempt (state, nonce,
//! verifier) with the pending request; this module does the network: discovery, JWKS, the
//! token request, UserInfo. Upstream issuers come from trusted configuration (the
//! operator's namespace), never from a request.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Identity;
use crate::api::{ObjectKey, SecretSource};
use crate::catalog::UpstreamProvider;
use crate::remote_keys::RemoteKeys;

/// How long discovery results are kept before they are fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// Timeout of one request to the upstream.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest upstream response read (discovery, token, UserInfo).
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY: i64 = 60;
/// Algorithms accepted when the IdentityProvider names none.
const DEFAULT_ALGS: &[&str] = &["RS256", "ES256", "PS256"];

/// Why signing in through an upstream failed. The messages name the upstream and the step,
/// never a secret or a token; they are shown on the error page and logged.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Discovery or JWKS failed: the provider cannot be used now.
    #[error("the identity provider cannot be reached or is misconfigured: {0}")]
    Unavailable(String),
    /// The client secret cannot be read.
    #[error("the client secret of the identity provider cannot be read: {0}")]
    Secret(String),
    /// The token request failed.
    #[error("the identity provider refused the sign-in: {0}")]
    Token(String),
    /// The ID token (or UserInfo) is not acceptable.
    #[error("the identity provider's answer is not valid: {0}")]
    Invalid(String),
}

/// Reads the client secret an IdentityProvider names.
#[async_trait]
pub trait SecretResolver: Send + Sync {
    async fn resolve(&self, namespace: &str, source: &SecretSource) -> Result<String, String>;
}

/// Folder mode: files (relative to the configuration folder) and environment variables.
pub struct LocalSecrets {
    pub base: std::path::PathBuf,
}

#[async_trait]
impl SecretResolver for LocalSecrets {
    async fn resolve(&self, _namespace: &str, source: &SecretSource) -> Result<String, String> {
        if let Some(file) = &source.file {
            let path = self.base.join(file);
            let text = tokio::fs::read_to_string(&path).await.map_err(|e| format!("{}: {e}", path.display()))?;
            return Ok(text.trim().to_string());
        }
        if let Some(var) = &source.env {
            return std::env::var(var).map_err(|_| format!("environment variable {var} is not set"));
        }
        Err("secretKeyRef needs a cluster; in a folder use file or env".into())
    }
}

/// What the browser is sent upstream with (OpenID Connect Core §3.1.2.1).
#[derive(Debug)]
pub struct AuthenticationRequest<'a> {
    pub redirect_uri: &'a str,
    pub state: &'a str,
    pub nonce: &'a str,
    pub code_challenge: &'a str,
    pub login_hint: Option<&'a str>,
    /// The client asked for a fresh sign-in (`prompt=login`): so must the upstream.
    pub fresh_login: bool,
    /// The client's `max_age`, passed on (OpenID Connect Core §3.1.2.1).
    pub max_age: Option<i64>,
}

/// The callback's answer, as the browser brought it.
#[derive(Debug)]
pub struct Callback<'a> {
    pub code: &'a str,
    /// RFC 9207 `iss`, when the upstream sends it.
    pub iss: Option<&'a str>,
    pub redirect_uri: &'a str,
    pub code_verifier: &'a str,
    pub nonce: &'a str,
}

/// The upstream's metadata (OpenID Connect Discovery §3), what this relying party uses.
#[derive(Clone, Debug, Deserialize)]
struct ProviderMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// The provider's OpenID Connect settings (validation guarantees them for `oidc` providers).
fn oidc_of(provider: &UpstreamProvider) -> Result<&crate::api::OidcProvider, UpstreamError> {
    provider
        .spec
        .oidc
        .as_ref()
        .ok_or_else(|| UpstreamError::Unavailable("not an OpenID Connect identity provider".into()))
}

/// One provider's discovery results and keys.
struct Discovered {
    /// The configuration these were fetched for (a changed spec refetches).
    issuer: String,
    metadata: ProviderMetadata,
    keys: RemoteKeys,
    fetched: Instant,
}

/// The upstream providers' discovery and key caches, and the HTTP client that talks to them.
pub struct Upstreams {
    http: reqwest::Client,
    secrets: Arc<dyn SecretResolver>,
    discovered: Mutex<HashMap<ObjectKey, Arc<Discovered>>>,
}

impl Upstreams {
    pub fn new(secrets: Arc<dyn SecretResolver>) -> anyhow::Result<Upstreams> {
        let http = reqwest::Client::builder()
            .timeout(UPSTREAM_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Upstreams { http, secrets, discovered: Mutex::new(HashMap::new()) })
    }

    /// Discovery and the JWKS, fetched now: what `Ready` of an IdentityProvider means. The
    /// client secret must also be readable.
    pub async fn check(&self, provider: &UpstreamProvider) -> Result<(), UpstreamError> {
        self.discovered.lock().expect("lock").remove(&provider.key);
        let discovered = self.discovered(provider).await?;
        discovered.keys.refresh().await.map_err(|e| UpstreamError::Unavailable(format!("JWKS {e}")))?;
        let secret = self.client_secret(provider).await?;
        self.probe_client_authentication(provider, &discovered.metadata, secret.as_deref()).await
    }

    /// Whether the upstream accepts `inbound`'s client credentials, without a user: a token
    /// request with a code that cannot exist. RFC 6749 §5.2 makes the server say
    /// `invalid_client` when client authentication fails, and `invalid_grant` (or another
    /// error) when it succeeded and the code is what is wrong.
    async fn probe_client_authentication(
        &self,
        provider: &UpstreamProvider,
        metadata: &ProviderMetadata,
        secret: Option<&str>,
    ) -> Result<(), UpstreamError> {
        let oidc = oidc_of(provider)?;
        let mut form = vec![("grant_type", "authorization_code"), ("code", "inbound-readiness-probe")];
        let mut request = self.http.post(&metadata.token_endpoint).header(reqwest::header::ACCEPT, "application/json");
        match secret {
            Some(secret) => request = request.basic_auth(form_encode(&oidc.client_id), Some(form_encode(secret))),
            None => form.push(("client_id", oidc.client_id.as_str())),
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| UpstreamError::Unavailable(format!("token endpoint: {}", network(&e))))?;
        let body = read_bounded(response).await.map_err(UpstreamError::Unavailable)?;
        let error: Map<String, Value> = serde_json::from_slice(&body).unwrap_or_default();
        if error.get("error").and_then(Value::as_str) == Some("invalid_client") {
            return Err(UpstreamError::Secret(format!(
                "the upstream refuses client {:?} with this secret (invalid_client)",
                oidc.client_id
            )));
        }
        Ok(())
    }

    /// The URL the browser is sent to (OpenID Connect Core §3.1.2.1).
    pub async fn authentication_url(
        &self,
        provider: &UpstreamProvider,
        request: &AuthenticationRequest<'_>,
    ) -> Result<String, UpstreamError> {
        let discovered = self.discovered(provider).await?;
        let mut url = url::Url::parse(&discovered.metadata.authorization_endpoint)
            .map_err(|e| UpstreamError::Unavailable(format!("authorization_endpoint: {e}")))?;
        let oidc = oidc_of(provider)?;
        let scope = scopes(&oidc.scopes);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &oidc.client_id)
                .append_pair("redirect_uri", request.redirect_uri)
                .append_pair("scope", &scope)
                .append_pair("state", request.state)
                .append_pair("nonce", request.nonce)
                .append_pair("code_challenge", request.code_challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(hint) = request.login_hint {
                q.append_pair("login_hint", hint);
            }
            if request.fresh_login {
                q.append_pair("prompt", "login");
            }
            if let Some(max_age) = request.max_age {
                q.append_pair("max_age", &max_age.to_string());
            }
        }
        Ok(url.into())
    }

    /// The code came back: redeems it, validates the ID token, reads UserInfo when
    /// configured, and maps the claims to the user.
    pub async fn complete(
        &self,
        provider: &UpstreamProvider,
        callback: &Callback<'_>,
        now: i64,
    ) -> Result<Identity, UpstreamError> {
        let discovered = self.discovered(provider).await?;
        let metadata = &discovered.metadata;
        // RFC 9207 §2.4: the response names the issuer it came from (mix-up defence).
        match callback.iss {
            Some(iss) if iss != metadata.issuer => {
                return Err(UpstreamError::Invalid("the response names another issuer (RFC 9207)".into()));
            }
            None if metadata.authorization_response_iss_parameter_supported => {
                return Err(UpstreamError::Invalid("the response lacks the iss parameter (RFC 9207)".into()));
            }
            _ => {}
        }
        let oidc = oidc_of(provider)?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", callback.code),
            ("redirect_uri", callback.redirect_uri),
            ("code_verifier", callback.code_verifier),
        ];
        let secret = self.client_secret(provider).await?;
        let mut request = self.http.post(&metadata.token_endpoint).header(reqwest::header::ACCEPT, "application/json");
        match &secret {
            // RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding.
            Some(secret) => request = request.basic_auth(form_encode(&oidc.client_id), Some(form_encode(secret))),
            None => form.push(("client_id", oidc.client_id.as_str())),
        }
        let response = request.form(&form).send().await.map_err(|e| UpstreamError::Token(network(&e)))?;
        let status = response.status();
        let body = read_bounded(response).await.map_err(UpstreamError::Token)?;
        if !status.is_success() {
            let error: Map<String, Value> = serde_json::from_slice(&body).unwrap_or_default();
            let code = error.get("error").and_then(Value::as_str).unwrap_or("no error code");
            return Err(UpstreamError::Token(format!("token endpoint answered HTTP {} ({code})", status.as_u16())));
        }
        let tokens: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| UpstreamError::Invalid(format!("token response: {e}")))?;
        let id_token =
            tokens.id_token.ok_or_else(|| UpstreamError::Invalid("no id_token in the token response".into()))?;
        let mut claims =
            self.validate_id_token(provider, &discovered, &id_token, callback.nonce, &tokens.access_token, now).await?;
        if oidc.userinfo {
            let userinfo = self.userinfo(metadata, &tokens.access_token).await?;
            // OpenID Connect Core §5.3.2: UserInfo is about the same subject, or ignored.
            if userinfo.get("sub") != claims.get("sub") {
                return Err(UpstreamError::Invalid("UserInfo names another subject than the ID token".into()));
            }
            for (name, value) in userinfo {
                if !matches!(name.as_str(), "iss" | "aud" | "sub") {
                    claims.insert(name, value);
                }
            }
        }
        map_claims(provider, &claims)
    }

    /// OpenID Connect Core §3.1.3.7.
    async fn validate_id_token(
        &self,
        provider: &UpstreamProvider,
        discovered: &Discovered,
        id_token: &str,
        nonce: &str,
        access_token: &str,
        now: i64,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let invalid = |m: &str| UpstreamError::Invalid(format!("ID token: {m}"));
        let header = jsonwebtoken::decode_header(id_token).map_err(|_| invalid("not a JWS"))?;
        let oidc = oidc_of(provider)?;
        let allowed = &oidc.id_token_signing_algs;
        let alg_name = format!("{:?}", header.alg);
        let accepted =
            if allowed.is_empty() { DEFAULT_ALGS.contains(&alg_name.as_str()) } else { allowed.contains(&alg_name) };
        if !accepted {
            return Err(invalid(&format!("signed with {alg_name}, which this provider does not accept")));
        }
        let key = match header.kid.as_deref() {
            Some(kid) => discovered.keys.key(kid).await,
            None => None,
        }
        .ok_or_else(|| invalid("signed by a key the provider does not publish"))?;
        let mut validation = Validation::new(header.alg);
        // exp and iat are checked below against `now`, with leeway.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "aud", "sub", "exp", "iat"]);
        validation.set_issuer(&[&discovered.metadata.issuer]);
        validation.set_audience(&[&oidc.client_id]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(id_token, &key, &validation)
            .map_err(|e| invalid(&format!("{e}")))?;
        let claims = data.claims;
        let number = |name: &str| claims.get(name).and_then(Value::as_i64);
        if number("exp").is_none_or(|exp| exp + LEEWAY <= now) {
            return Err(invalid("expired"));
        }
        if number("iat").is_none_or(|iat| iat > now + LEEWAY) {
            return Err(invalid("issued in the future"));
        }
        // §3.1.3.7 (4, 5): with several audiences, azp must be us.
        if let Some(Value::Array(aud)) = claims.get("aud")
            && aud.len() > 1
            && claims.get("azp").and_then(Value::as_str) != Some(oidc.client_id.as_str())
        {
            return Err(invalid("several audiences and azp is not this client"));
        }
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(invalid("the nonce does not match this sign-in"));
        }
        // §3.1.3.8: at_hash, when present, binds the access token we will use for UserInfo.
        if let Some(at_hash) = claims.get("at_hash").and_then(Value::as_str)
            && at_hash
                != half_hash(header.alg, access_token).ok_or_else(|| invalid("at_hash with an unknown algorithm"))?
        {
            return Err(invalid("at_hash does not match the access token"));
        }
        Ok(claims)
    }

    async fn userinfo(
        &self,
        metadata: &ProviderMetadata,
        access_token: &str,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let endpoint = metadata.userinfo_endpoint.as_deref().ok_or_else(|| {
            UpstreamError::Unavailable("userinfo is configured but the provider has no userinfo_endpoint".into())
        })?;
        let response = self
            .http
            .get(endpoint)
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| UpstreamError::Unavailable(format!("UserInfo: {}", network(&e))))?;
        let status = response.status();
        let body = read_bounded(response).await.map_err(UpstreamError::Unavailable)?;
        if !status.is_success() {
            return Err(UpstreamError::Invalid(format!("UserInfo answered HTTP {}", status.as_u16())));
        }
        // A signed UserInfo response (application/jwt) is not supported: ask for JSON.
        serde_json::from_slice(&body).map_err(|e| UpstreamError::Invalid(format!("UserInfo is not JSON: {e}")))
    }

    async fn client_secret(&self, provider: &UpstreamProvider) -> Result<Option<String>, UpstreamError> {
        match &oidc_of(provider)?.client_secret {
            None => Ok(None),
            Some(source) => {
                self.secrets.resolve(&provider.key.namespace, source).await.map(Some).map_err(UpstreamError::Secret)
            }
        }
    }

    /// Discovery (cached for an hour per provider and issuer).
    async fn discovered(&self, provider: &UpstreamProvider) -> Result<Arc<Discovered>, UpstreamError> {
        let issuer = oidc_of(provider)?.issuer.as_str();
        if let Some(d) = self.discovered.lock().expect("lock").get(&provider.key)
            && d.issuer == issuer
            && d.fetched.elapsed() < DISCOVERY_TTL
        {
            return Ok(d.clone());
        }
        // OpenID Connect Discovery §4: the issuer with `/.well-known/openid-configuration`
        // appended (after any path).
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let unavailable = |m: String| UpstreamError::Unavailable(format!("discovery at {url}: {m}"));
        let response = self.http.get(&url).send().await.map_err(|e| unavailable(network(&e)))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("HTTP {}", response.status().as_u16())));
        }
        let body = read_bounded(response).await.map_err(unavailable)?;
        let metadata: ProviderMetadata = serde_json::from_slice(&body).map_err(|e| unavailable(e.to_string()))?;
        // §4.3: the document must name exactly the issuer it was fetched for.
        if metadata.issuer != issuer {
            return Err(unavailable(format!("it names the issuer {:?}, not {issuer:?}", metadata.issuer)));
        }
        let discovered = Arc::new(Discovered {
            issuer: issuer.to_string(),
            keys: RemoteKeys::with_client(&metadata.jwks_uri, self.http.clone()),
            metadata,
            fetched: Instant::now(),
        });
        self.discovered.lock().expect("lock").insert(provider.key.clone(), discovered.clone());
        Ok(discovered)
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    id_token: Option<String>,
}

/// `openid` first, then the configured scopes, without repeats.
fn scopes(configured: &[String]) -> String {
    let mut out = vec!["openid"];
    for s in configured {
        if !out.contains(&s.as_str()) {
            out.push(s);
        }
    }
    out.join(" ")
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A network error, short: whether it timed out or could not connect.
fn network(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        "the request failed".into()
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| network(&e))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_RESPONSE_BYTES {
            return Err("the response is too large".into());
        }
    }
    Ok(body)
}

/// OpenID Connect Core §3.1.3.6: base64url of the left half of the hash of `value`, with
/// the hash of the ID token's `alg`.
pub fn half_hash(alg: Algorithm, value: &str) -> Option<String> {
    use aws_lc_rs::digest;
    let algorithm = match alg {
        Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 => &digest::SHA256,
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => &digest::SHA384,
        // Ed25519 is the only EdDSA curve jsonwebtoken verifies: SHA-512.
        Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA => &digest::SHA512,
        _ => return None,
    };
    let hash = digest::digest(algorithm, value.as_bytes());
    let bytes = hash.as_ref();
    Some(URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2]))
}

/// `inbound`'s `sub` for a user of `provider`: derived from the provider and the upstream
/// identifier, so it is stable, opaque, and never collides across providers.
pub fn subject_for(provider: &ObjectKey, upstream_subject: &str) -> String {
    let input = format!("inbound-upstream-subject\0{}/{}\0{upstream_subject}", provider.namespace, provider.name);
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
    URL_SAFE_NO_PAD.encode(hash.as_ref())
}

/// A claim as text: strings as they are, numbers and booleans printed.
pub fn claim_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The user, from the upstream's claims and the IdentityProvider's mapping.
pub fn map_claims(provider: &UpstreamProvider, claims: &Map<String, Value>) -> Result<Identity, UpstreamError> {
    let mapping = &provider.spec.claims;
    let upstream_subject =
        claims.get(&mapping.subject).and_then(claim_text).filter(|s| !s.is_empty()).ok_or_else(|| {
            UpstreamError::Invalid(format!("the claim {:?} (the user's identifier) is missing", mapping.subject))
        })?;
    let username = match &mapping.username {
        Some(claim) => claims.get(claim).and_then(claim_text),
        None => ["preferred_username", "email"].iter().find_map(|c| claims.get(*c).and_then(claim_text)),
    }
    .unwrap_or_else(|| upstream_subject.clone());
    let mut tenants: Vec<String> = match &mapping.tenant {
        None => vec![],
        Some(t) => match (&t.value, &t.claim) {
            (Some(value), _) => vec![value.clone()],
            (None, Some(claim)) => claim_texts(claims.get(claim)),
            (None, None) => vec![],
        },
    };
    tenants.retain(|t| !t.is_empty());
    tenants.sort();
    tenants.dedup();
    let table = mapping.roles.as_ref().map(|r| &r.values);
    let roles = match &mapping.roles {
        Some(r) => mapped_roles(table, claim_texts(claims.get(&r.claim))),
        None => vec![],
    };
    // Per-tenant roles: only for tenants the user belongs to (a claim cannot add one).
    let by_tenant = mapping.tenant.as_ref().and_then(|t| t.roles_claim.as_ref()).and_then(|c| claims.get(c));
    let tenant_roles: BTreeMap<String, Vec<String>> = match by_tenant {
        Some(Value::Object(by_tenant)) => by_tenant
            .iter()
            .filter(|(tenant, _)| tenants.contains(tenant))
            .map(|(tenant, values)| (tenant.clone(), mapped_roles(table, claim_texts(Some(values)))))
            .filter(|(_, roles)| !roles.is_empty())
            .collect(),
        _ => BTreeMap::new(),
    };
    let attributes: BTreeMap<String, String> = mapping
        .attributes
        .iter()
        .filter_map(|(attribute, claim)| Some((attribute.clone(), claims.get(claim).and_then(claim_text)?)))
        .collect();
    Ok(Identity {
        source: provider.source(),
        subject: subject_for(&provider.key, &upstream_subject),
        username,
        tenants,
        tenant_roles,
        roles,
        attributes,
    })
}

/// A claim holding a string or a list of strings, as texts.
fn claim_texts(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(claim_text).collect(),
        Some(other) => claim_text(other).into_iter().collect(),
        None => vec![],
    }
}

/// The roles upstream values give: through the mapping's table when it has one (values not
/// listed give none), else each value as is. Sorted, once each.
fn mapped_roles(table: Option<&BTreeMap<String, Vec<String>>>, values: Vec<String>) -> Vec<String> {
    let mut roles: Vec<String> = match table.filter(|t| !t.is_empty()) {
        Some(table) => values.iter().filter_map(|v| table.get(v)).flatten().cloned().collect(),
        None => values,
    };
    roles.sort();
    roles.dedup();
    roles
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ClaimMapping, IdentityProviderSpec, OidcProvider, RoleMapping, TenantMapping};

    fn provider(claims: ClaimMapping) -> UpstreamProvider {
        UpstreamProvider {
            key: ObjectKey { namespace: "inbound".into(), name: "corp".into() },
            spec: IdentityProviderSpec {
                display_name: "Corp".into(),
                oidc: Some(OidcProvider::default()),
                application: None,
                claims,
                email_domains: vec![],
                tenants: vec![],
            },
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn claims_map_through_the_declared_table() {
        let mapping = ClaimMapping {
            tenant: Some(TenantMapping { claim: Some("tid".into()), value: None, roles_claim: None }),
            roles: Some(RoleMapping {
                claim: "groups".into(),
                values: [("billing-admins".to_string(), vec!["admin".to_string(), "billing".to_string()])].into(),
            }),
            ..ClaimMapping::default()
        };
        let p = provider(mapping);
        let id = map_claims(
            &p,
            &claims(serde_json::json!({
                "sub": "u1", "email": "a@acme.test", "email_verified": true, "name": "A", "tid": "acme",
                "groups": ["billing-admins", "admin", "everyone"], "phone": "+1"
            })),
        )
        .unwrap();
        assert_eq!(id.roles, ["admin", "billing"], "only mapped values give roles; `admin` upstream is not admin here");
        assert_eq!(id.tenants, ["acme"]);
        assert_eq!(id.username, "a@acme.test");
        assert_eq!(id.source, "inbound/corp");
        assert_eq!(
            id.attributes,
            BTreeMap::from([
                ("email".to_string(), "a@acme.test".to_string()),
                ("email_verified".to_string(), "true".to_string()),
                ("name".to_string(), "A".to_string()),
            ]),
            "only the declared attributes"
        );
        assert_eq!(id.subject, subject_for(&p.key, "u1"));
        let other = ObjectKey { namespace: "inbound".into(), name: "other".into() };
        assert_ne!(subject_for(&other, "u1"), id.subject, "the same upstream sub at two providers is two users");

        let missing = map_claims(&p, &claims(serde_json::json!({"email": "x"})));
        assert!(matches!(missing, Err(UpstreamError::Invalid(_))));
    }

    #[test]
    fn roles_pass_through_without_a_table_and_a_fixed_tenant_applies() {
        let mapping = ClaimMapping {
            tenant: Some(TenantMapping { claim: None, value: Some("acme".into()), roles_claim: None }),
            roles: Some(RoleMapping { claim: "role".into(), values: BTreeMap::new() }),
            username: Some("upn".into()),
            ..ClaimMapping::default()
        };
        let id =
            map_claims(&provider(mapping), &claims(serde_json::json!({"sub": 42, "role": "viewer", "upn": "a@b"})))
                .unwrap();
        assert_eq!(
            (id.roles, id.tenants, id.username.as_str()),
            (vec!["viewer".to_string()], vec!["acme".to_string()], "a@b")
        );
    }

    #[test]
    fn several_tenants_and_roles_per_tenant_only_where_the_user_belongs() {
        let mapping = ClaimMapping {
            tenant: Some(TenantMapping {
                claim: Some("orgs".into()),
                value: None,
                roles_claim: Some("org_roles".into()),
            }),
            roles: Some(RoleMapping {
                claim: "groups".into(),
                values: [("org-admins".to_string(), vec!["admin".to_string()])].into(),
            }),
            ..ClaimMapping::default()
        };
        let id = map_claims(
            &provider(mapping),
            &claims(serde_json::json!({
                "sub": "u1", "orgs": ["globex", "acme", "acme"], "groups": [],
                "org_roles": {"acme": ["org-admins", "admin"], "globex": "nothing-mapped", "initech": ["org-admins"]}
            })),
        )
        .unwrap();
        assert_eq!(id.tenants, ["acme", "globex"]);
        assert!(id.roles.is_empty());
        assert_eq!(
            id.tenant_roles,
            BTreeMap::from([("acme".to_string(), vec!["admin".to_string()])]),
            "mapped through the table; no roles in a tenant the user does not belong to"
        );
    }

    #[test]
    fn at_hash_is_the_left_half_of_the_algs_hash() {
        // OpenID Connect Core §A.3's example access token and at_hash (RS256).
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        assert_eq!(half_hash(Algorithm::RS256, token).as_deref(), Some("77QmUPtjPfzWtF2AnpK9RQ"));
        assert_eq!(half_hash(Algorithm::HS256, token), None, "symmetric algorithms are never accepted");
    }

    #[test]
    fn openid_is_always_requested_once() {
        assert_eq!(scopes(&["email".into(), "openid".into(), "groups".into()]), "openid email groups");
        assert_eq!(scopes(&[]), "openid");
    }
}
