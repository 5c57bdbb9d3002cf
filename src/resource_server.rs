//! The protected-resource side, for Rust resource servers (an MCP server, an API): verify
//! inbound's access tokens offline and answer with the challenges OAuth clients act on.
//!
//! - RFC 9728: the resource's metadata (`/.well-known/oauth-protected-resource{path}`)
//!   names its authorization server; [`ProtectedResource::metadata_router`] serves it.
//! - RFC 6750 §3 + RFC 9728 §5.1: a request without a valid token gets `401` with
//!   `WWW-Authenticate: Bearer resource_metadata="...", scope="..."`; a token without the
//!   needed scopes gets `403` with `error="insufficient_scope"` and the scopes to ask for,
//!   which is what MCP clients use to step up.
//! - RFC 9068: the token must be an `at+jwt` from the issuer, for this resource (`aud`),
//!   unexpired, signed by a key of the issuer's JWKS.
//!
//! ```ignore
//! let resource = ProtectedResource::new("https://mcp.example.com/mcp", "https://auth.example.com");
//! let app = Router::new()
//!     .route("/mcp", post(handler))
//!     .layer(resource.clone().require(&["mcp:tools"]))
//!     .merge(resource.metadata_router());
//! ```

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::remote_keys::RemoteKeys;

type BoxedResponse = std::pin::Pin<Box<dyn Future<Output = Response> + Send>>;

/// The claims a resource server reads from an access token (RFC 9068 §2.2).
#[derive(Clone, Debug, Deserialize)]
pub struct TokenClaims {
    pub iss: String,
    pub sub: String,
    pub client_id: String,
    #[serde(default)]
    pub scope: Option<String>,
    pub exp: i64,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub jti: Option<String>,
}

impl TokenClaims {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or("").split_ascii_whitespace()
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No bearer token (RFC 6750 §3.1: no error code).
    Missing,
    InvalidToken(String),
    /// The token lacks scopes; these are the scopes to ask for.
    InsufficientScope(Vec<String>),
}

/// One protected resource and its authorization server.
pub struct ProtectedResource {
    /// The resource identifier: the token audience (RFC 8707), e.g. the MCP server URL.
    pub resource: String,
    pub issuer: String,
    pub scopes_supported: Vec<String>,
    keys: RemoteKeys,
}

impl ProtectedResource {
    pub fn new(resource: &str, issuer: &str) -> Arc<ProtectedResource> {
        let issuer = issuer.trim_end_matches('/').to_string();
        Arc::new(ProtectedResource {
            resource: resource.to_string(),
            keys: RemoteKeys::new(&format!("{issuer}/jwks")),
            issuer,
            scopes_supported: Vec::new(),
        })
    }

    /// Fetches the issuer's keys from `jwks_uri` instead of `{issuer}/jwks` (e.g. the
    /// in-cluster Service of the issuer).
    pub fn with_jwks_uri(self: Arc<Self>, jwks_uri: &str) -> Arc<ProtectedResource> {
        let mut this = Arc::try_unwrap(self).ok().expect("configure before sharing");
        this.keys = RemoteKeys::new(jwks_uri);
        Arc::new(this)
    }

    pub fn with_scopes(resource: &str, issuer: &str, scopes: &[&str]) -> Arc<ProtectedResource> {
        let mut this = Arc::try_unwrap(ProtectedResource::new(resource, issuer)).ok().expect("fresh");
        this.scopes_supported = scopes.iter().map(|s| s.to_string()).collect();
        Arc::new(this)
    }

    /// RFC 9728 §2 metadata of this resource.
    pub fn metadata(&self) -> serde_json::Value {
        serde_json::json!({
            "resource": self.resource,
            "authorization_servers": [self.issuer],
            "scopes_supported": self.scopes_supported,
            "bearer_methods_supported": ["header"],
        })
    }

    /// RFC 9728 §3.1: `/.well-known/oauth-protected-resource` inserted between the host and
    /// the path of the resource identifier.
    pub fn metadata_path(&self) -> String {
        let path =
            url::Url::parse(&self.resource).map(|u| u.path().trim_end_matches('/').to_string()).unwrap_or_default();
        format!("/.well-known/oauth-protected-resource{path}")
    }

    pub fn metadata_url(&self) -> String {
        let origin = url::Url::parse(&self.resource).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
        format!("{origin}{}", self.metadata_path())
    }

    /// Serves the metadata document (at the resource's own well-known path).
    pub fn metadata_router<S: Clone + Send + Sync + 'static>(self: &Arc<Self>) -> Router<S> {
        let this = self.clone();
        Router::new().route(
            &self.metadata_path(),
            get(move || {
                let this = this.clone();
                async move { Json(this.metadata()) }
            }),
        )
    }

    /// A middleware requiring a valid token with every scope of `required`. The verified
    /// claims are put in the request's extensions for the handler.
    pub fn require(
        self: Arc<Self>,
        required: &[&str],
    ) -> axum::middleware::FromFnLayer<impl Fn(Request, Next) -> BoxedResponse + Clone, (), (Request,)> {
        let required: Arc<Vec<String>> = Arc::new(required.iter().map(|s| s.to_string()).collect());
        axum::middleware::from_fn(move |mut request: Request, next: Next| {
            let this = self.clone();
            let required = required.clone();
            Box::pin(async move {
                let token = bearer(&request);
                match this.check(token.as_deref(), &required).await {
                    Ok(claims) => {
                        request.extensions_mut().insert(claims);
                        next.run(request).await
                    }
                    Err(refusal) => this.challenge(&refusal, &required),
                }
            }) as BoxedResponse
        })
    }

    /// Verifies `token` and checks it carries `required`.
    pub async fn check(&self, token: Option<&str>, required: &[String]) -> Result<TokenClaims, Refusal> {
        let token = token.ok_or(Refusal::Missing)?;
        let claims = self.verify(token).await?;
        let granted: Vec<&str> = claims.scopes().collect();
        if required.iter().any(|r| !granted.contains(&r.as_str())) {
            // Ask for everything needed, including what the token already has: the new
            // token replaces it, and consent only asks the user for what is new.
            let mut wanted: Vec<String> = granted.iter().map(|s| s.to_string()).collect();
            for r in required {
                if !wanted.contains(r) {
                    wanted.push(r.clone());
                }
            }
            return Err(Refusal::InsufficientScope(wanted));
        }
        Ok(claims)
    }

    /// Signature (the issuer's JWKS), `typ: at+jwt`, `iss`, `aud` = this resource, `exp`.
    pub async fn verify(&self, token: &str) -> Result<TokenClaims, Refusal> {
        let invalid = |d: &str| Refusal::InvalidToken(d.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("not a JWT"))?;
        // RFC 9068 §4: reject anything not typed as an access token (an ID token, say).
        if !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("at+jwt")) {
            return Err(invalid("not an access token (typ must be at+jwt)"));
        }
        let kid = header.kid.ok_or_else(|| invalid("no key id"))?;
        if !matches!(header.alg, Algorithm::ES256 | Algorithm::RS256) {
            return Err(invalid("unsupported signing algorithm"));
        }
        let key = self.keys.key(&kid).await.ok_or_else(|| invalid("unknown signing key"))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.resource]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<TokenClaims>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| Refusal::InvalidToken(format!("the token is not valid here: {e}")))
    }

    /// The response for a refusal, with the challenge of RFC 6750 §3 / RFC 9728 §5.1.
    pub fn challenge(&self, refusal: &Refusal, required: &[String]) -> Response {
        let metadata = format!("resource_metadata=\"{}\"", self.metadata_url());
        let quoted = |s: &str| s.replace(['"', '\\'], "");
        let (status, value) = match refusal {
            Refusal::Missing => {
                (StatusCode::UNAUTHORIZED, format!("Bearer {metadata}, scope=\"{}\"", quoted(&required.join(" "))))
            }
            Refusal::InvalidToken(description) => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\", {metadata}, scope=\"{}\"",
                    quoted(description),
                    quoted(&required.join(" "))
                ),
            ),
            Refusal::InsufficientScope(wanted) => (
                StatusCode::FORBIDDEN,
                format!("Bearer error=\"insufficient_scope\", scope=\"{}\", {metadata}", quoted(&wanted.join(" "))),
            ),
        };
        let mut response = status.into_response();
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// RFC 9728 metadata for every resource the configuration declares (a ConsentPolicy's
/// `registration.resources`, an InboundApp's `allowedResources`, a ClientGrant's
/// `resources`, a Scope's `resource`), for resource servers to serve as they are. The
/// scopes of a resource are the Scopes naming it plus, for a registration resource, the
/// approved scopes.
pub fn declared_metadata(
    manifests: &[crate::catalog::manifest::Manifest],
    issuer: &str,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    use crate::catalog::manifest::Object;
    let mut scopes: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut add = |resource: &str, scope: Option<&str>| {
        let entry = scopes.entry(resource.to_string()).or_default();
        if let Some(s) = scope
            && !entry.iter().any(|e| e == s)
        {
            entry.push(s.to_string());
        }
    };
    for m in manifests {
        match &m.object {
            Object::Policy(p) => {
                for r in p.spec.registration.iter().flat_map(|r| r.resources.iter()) {
                    add(r, None);
                    for a in p.spec.registration.iter().flat_map(|r| r.approved_scopes.iter()) {
                        add(r, Some(&a.scope));
                    }
                }
            }
            Object::App(a) => a.spec.allowed_resources.iter().for_each(|r| add(r, None)),
            Object::Grant(g) => g.spec.resources.iter().for_each(|r| add(r, None)),
            Object::Scope(s) => {
                if let Some(r) = &s.spec.resource {
                    add(r, Some(&s.spec.scope));
                }
            }
            Object::User(_) | Object::Provider(_) => {}
        }
    }
    let issuer = issuer.trim_end_matches('/');
    scopes
        .into_iter()
        .map(|(resource, scopes)| {
            let metadata = serde_json::json!({
                "resource": resource,
                "authorization_servers": [issuer],
                "scopes_supported": scopes,
                "bearer_methods_supported": ["header"],
            });
            (resource, metadata)
        })
        .collect()
}

fn bearer(request: &Request) -> Option<String> {
    let value = request.headers().get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    crate::protocol::bearer::token_of(value).map(str::to_string)
}
