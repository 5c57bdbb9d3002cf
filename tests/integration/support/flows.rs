//! The flows tests drive again and again: PKCE, the authorization request, login and
//! consent through the user agent, the code exchange, a self-registration policy, and an
//! independent check of our JWTs.

use std::{path::Path, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use openidconnect::PkceCodeChallenge;
use serde_json::Value;

use super::server::{QUICKSTART, Reply, TestServer, form, start_server_with};
use super::user_agent::Agent;

/// The redirect URI of the quickstart's public app (`billing-cli`).
pub const REDIRECT: &str = "http://127.0.0.1:45321/callback";
/// The resource of [`registration_policy`] in most tests.
pub const MCP_RESOURCE: &str = "https://mcp.example.com/mcp";

/// A valid PKCE pair for raw requests.
pub fn pkce() -> (String, String) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    (challenge.as_str().to_string(), verifier.secret().to_string())
}

pub fn authorize_url(server: &TestServer, client_id: &str, scope: &str, challenge: &str, extra: &str) -> String {
    format!(
        "{}/authorize?{}{extra}",
        server.base,
        form(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", "st4te"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ])
    )
}

/// Logs `user` in and approves with every optional scope checked; returns the code.
pub async fn code_for(base: &str, agent: &mut Agent, url: &str, user: (&str, &str), optional: &[&str]) -> String {
    let mut page = agent.get(url).await;
    if page.body.contains("action=\"/login\"") {
        page = agent.login(base, &page, user.0, user.1).await;
    }
    if page.status == 200 && page.body.contains("action=\"/consent\"") {
        page = agent.approve(base, &page, optional).await;
    }
    assert_eq!(page.status, 303, "{}", page.body);
    // RFC 9207: every authorization response names the issuer (its exact value is checked
    // where the issuer is the base URL).
    assert!(page.redirect_param("iss").is_some_and(|iss| iss.starts_with("http")), "RFC 9207 iss");
    page.redirect_param("code").unwrap_or_else(|| panic!("no code in {:?}", page.location))
}

pub async fn exchange(server: &TestServer, client_id: &str, code: &str, verifier: &str) -> Reply {
    server
        .post(
            "/token",
            None,
            &form(&[
                ("grant_type", "authorization_code"),
                ("client_id", client_id),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ]),
        )
        .await
}

/// Self-registration for an MCP server at `resource`, beside the quickstart: in namespace
/// `mcp`, which owns the resource through its Scopes (the same scope strings as the
/// quickstart's billing API, bound to the MCP server), with `mcp/mcp-server` as the
/// resource server that may introspect its tokens. `extra` continues `spec.registration`.
pub fn registration_policy(resource: &str, extra: &str) -> String {
    format!(
        "apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {{name: read, namespace: mcp}}
spec: {{scope: 'billing:read', description: Read invoices through the MCP server, resource: '{resource}'}}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {{name: refund, namespace: mcp}}
spec:
  scope: 'billing:refund'
  description: Issue refunds through the MCP server
  resource: '{resource}'
  requiredRoles: [billing-admin]
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {{name: profile, namespace: mcp}}
spec: {{scope: profile, description: Your name, kind: userInfo, userAttribute: name}}
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {{name: mcp-server, namespace: mcp}}
spec: {{displayName: MCP server, resourceServer: {{resources: ['{resource}']}}}}
---
apiVersion: inbound.dev/v1alpha1
kind: ConsentPolicy
metadata: {{name: mcp, namespace: mcp}}
spec:
  registration:
    dynamic: true
    approvedScopes:
      - {{scope: 'billing:read', mandatory: true}}
      - {{scope: 'billing:refund'}}
      - {{scope: profile}}
    redirectUriPatterns: ['http://127.0.0.1/callback', 'https://*.example.com/oauth/*']
    resources: ['{resource}']
{extra}"
    )
}

pub async fn server_with_registration(resource: &str, extra: &str) -> TestServer {
    let policy = registration_policy(resource, extra);
    start_server_with(QUICKSTART, None, Duration::from_millis(300), move |dir: &Path| {
        std::fs::write(dir.join("registration.yaml"), policy).unwrap();
    })
    .await
}

/// Drives login and consent for `client_id`; returns the token response.
pub async fn authorize_and_exchange(
    server: &TestServer,
    client_id: &str,
    scope: &str,
    resource: &str,
    approve: &[&str],
) -> Reply {
    let verifier = "a-verifier-that-is-long-enough-for-pkce-0123456789";
    let challenge = inbound::oauth::pkce::challenge_s256(verifier);
    let redirect = "http://127.0.0.1:50000/callback";
    let url = format!(
        "{}/authorize?{}",
        server.base,
        form(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("scope", scope),
            ("state", "s1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", resource),
        ])
    );
    let mut agent = Agent::new();
    let login = agent.get(&url).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let mut page = agent.login(&server.base, &login, "alice", "wonderland").await;
    if page.status == 200 {
        page = agent.approve(&server.base, &page, approve).await;
    }
    assert_eq!(page.status, 303, "{}", page.body);
    let code = page.redirect_param("code").unwrap_or_else(|| panic!("no code: {:?}", page.location));
    server
        .post(
            "/token",
            None,
            &form(&[
                ("grant_type", "authorization_code"),
                ("client_id", client_id),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", verifier),
                ("resource", resource),
            ]),
        )
        .await
}

/// Verifies a JWT against the served JWKS with an independent library; returns its claims.
pub async fn verify_jwt(server: &TestServer, token: &str, audience: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 §2.1");
    let jwks: JwkSet = serde_json::from_value(server.get("/jwks").await.json).unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("signing key published in the JWKS");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[&server.base]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap().claims
}
