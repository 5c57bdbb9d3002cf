//! Enterprise-managed authorization (MCP's profile of the Identity Assertion JWT
//! Authorization Grant, "ID-JAG"): an enterprise IdP, trusted by the app, asserts a user
//! for one resource and one client; the client presents that assertion with the JWT bearer
//! grant. The IdP's key is made here (its public JWK declared inline, as a platform
//! engineer would for a private IdP).

use serde_json::{Value, json};

use crate::support::flows::verify_jwt;
use crate::support::keys::{SigningKey, now, signing_key};
use crate::support::server::{Reply, TestServer, form, start_server_configured};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const IDP: &str = "https://idp.example.com";
const MCP: &str = "https://mcp.example.com/mcp";

fn manifests(idp_key: &SigningKey) -> String {
    format!(
        r#"apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {{name: tools}}
spec: {{scope: "mcp:tools", description: Use the tools, resource: "{MCP}"}}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {{name: admin}}
spec: {{scope: "mcp:admin", description: Administer, resource: "{MCP}"}}
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {{name: mcp-client}}
spec:
  displayName: An MCP client
  grantTypes: ["{JWT_BEARER}"]
  trustedIssuers:
    - issuer: "{IDP}"
      jwks: '{{"keys": [{jwk}]}}'
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {{name: mcp-client}}
spec:
  subject: {{kind: InboundApp, name: mcp-client}}
  scopes: ["mcp:tools", "mcp:admin"]
  resources: ["{MCP}"]
"#,
        jwk = idp_key.jwk
    )
}

/// An ID-JAG as the IdP's token exchange would issue it, with `changes` applied (null
/// removes a claim).
fn id_jag(key: &SigningKey, server: &TestServer, client_id: &str, jti: &str, changes: Value) -> String {
    let now = now();
    let mut claims = json!({
        "iss": IDP, "sub": "employee-42", "aud": server.base, "client_id": client_id, "jti": jti,
        "iat": now, "exp": now + 300, "resource": MCP, "scope": "mcp:tools", "email": "e42@corp.example",
    });
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    key.sign(key.header("oauth-id-jag+jwt"), &claims)
}

async fn present(server: &TestServer, assertion: &str, extra: &[(&str, &str)]) -> Reply {
    let mut body = vec![("grant_type", JWT_BEARER), ("assertion", assertion)];
    body.extend_from_slice(extra);
    server.post_as("mcp-client", "/token", &form(&body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprise_idp_identity_assertions() {
    let idp = signing_key("idp-1");
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("ema.yaml"), manifests(&idp)).unwrap();
    let server = start_server_configured(folder.path().to_str().unwrap(), |_| {}).await;
    let client_id = server.client_id("mcp-client");

    let metadata = server.get("/.well-known/oauth-authorization-server").await.json;
    assert_eq!(
        metadata["authorization_grant_profiles_supported"],
        json!(["urn:ietf:params:oauth:grant-profile:id-jag"])
    );

    // A request that fails leaves the assertion unspent.
    let assertion = id_jag(&idp, &server, &client_id, "jti-1", json!({}));
    present(&server, &assertion, &[("resource", "https://other.example.com")])
        .await
        .assert_error(400, "invalid_target");
    // The token: for the asserted resource only, the asserted scopes (not all the grants
    // give), no refresh token.
    let reply = present(&server, &assertion, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["scope"], "mcp:tools");
    assert!(reply.json.get("refresh_token").is_none(), "{}", reply.json);
    let claims = verify_jwt(&server, reply.json["access_token"].as_str().unwrap(), MCP).await;
    assert_eq!(claims["aud"], MCP);
    assert_eq!(claims["client_id"], client_id.as_str());
    assert!(claims["sub"].as_str().is_some_and(|s| !s.is_empty() && s != "employee-42"), "derived: {claims}");
    // Single use.
    let reply = present(&server, &assertion, &[]).await;
    reply.assert_error(400, "invalid_grant");
    assert!(reply.json["error_description"].as_str().unwrap().contains("replay"), "{}", reply.json);

    // Requested ∩ asserted.
    let both = id_jag(&idp, &server, &client_id, "jti-2", json!({"scope": "mcp:tools mcp:admin"}));
    let reply = present(&server, &both, &[("scope", "mcp:admin")]).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["scope"], "mcp:admin");
    let narrow = id_jag(&idp, &server, &client_id, "jti-3", json!({}));
    present(&server, &narrow, &[("scope", "mcp:admin")]).await.assert_error(400, "invalid_scope");

    // The profile's rules, each named in the error.
    for (changes, says) in [
        (json!({"client_id": "someone-else"}), "another client"),
        (json!({"client_id": null}), "client_id"),
        (json!({"jti": null}), "jti"),
        (json!({"resource": null}), "resource"),
        // An ID-JAG is for the authorization server itself, not its token endpoint.
        (json!({"aud": format!("{}/token", server.base)}), "aud"),
        (json!({"iss": "https://elsewhere.example.com"}), "not trusted"),
    ] {
        let assertion = id_jag(&idp, &server, &client_id, &format!("jti-{says}"), changes);
        let reply = present(&server, &assertion, &[]).await;
        reply.assert_error(400, "invalid_grant");
        assert!(reply.json["error_description"].as_str().unwrap().contains(says), "{says}: {}", reply.json);
    }
    // Signed by another key under the IdP's kid.
    let forged = id_jag(&signing_key("idp-1"), &server, &client_id, "jti-forged", json!({}));
    present(&server, &forged, &[]).await.assert_error(400, "invalid_grant");
    // Any other typ is still refused (RFC 8725 §3.11).
    let mut claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            id_jag(&idp, &server, &client_id, "jti-typ", json!({})).split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    claims["jti"] = json!("jti-typ-2");
    let at_jwt = idp.sign(idp.header("at+jwt"), &claims);
    present(&server, &at_jwt, &[]).await.assert_error(400, "invalid_grant");
}

/// A UserInfo endpoint of an enterprise IdP (on loopback, written here: the JWT is its own
/// access token): answers for the bearer JWT's `sub`, with its email.
async fn userinfo_server() -> String {
    use axum::http::{HeaderMap, StatusCode};
    async fn userinfo(headers: HeaderMap) -> Result<axum::Json<Value>, StatusCode> {
        let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let payload = bearer.and_then(|jwt| jwt.split('.').nth(1)).ok_or(StatusCode::UNAUTHORIZED)?;
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .map_err(|_| StatusCode::UNAUTHORIZED)?;
        let claims: Value = serde_json::from_slice(&bytes).map_err(|_| StatusCode::UNAUTHORIZED)?;
        let sub = claims["sub"].as_str().unwrap_or_default().to_string();
        match sub.as_str() {
            "revoked" => Err(StatusCode::UNAUTHORIZED),
            // An IdP answering about someone else must not be believed.
            "confused" => Ok(axum::Json(json!({"sub": "someone-else", "email": "boss@corp.example"}))),
            _ => Ok(axum::Json(json!({"sub": sub, "email": format!("{sub}@corp.example")}))),
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/userinfo", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/userinfo", axum::routing::get(userinfo));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A trusted issuer whose JWTs lack the login claim: UserInfo, called with the JWT after it
/// is verified, supplies it (OpenID Connect Core §5.3: only about the same `sub`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_issuers_userinfo_supplies_missing_claims() {
    let idp = signing_key("idp-ui");
    let userinfo = userinfo_server().await;
    let folder = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {{name: tools}}
spec: {{scope: "mcp:tools", description: Use the tools, resource: "{MCP}"}}
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {{name: ci-deployer}}
spec:
  displayName: CI deployer
  grantTypes: ["{JWT_BEARER}"]
  trustedIssuers:
    - issuer: "{IDP}"
      jwks: '{{"keys": [{jwk}]}}'
      userinfoUri: "{userinfo}"
      loginClaim: email
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {{name: ci-deployer}}
spec:
  subject: {{kind: InboundApp, name: ci-deployer}}
  scopes: ["mcp:tools"]
  resources: ["{MCP}"]
"#,
        jwk = idp.jwk
    );
    std::fs::write(folder.path().join("ci.yaml"), yaml).unwrap();
    // UserInfo is on loopback: allowed only because the operator says so.
    let server =
        start_server_configured(folder.path().to_str().unwrap(), |o| o.workload.allow_private_issuers = true).await;
    let jwt = |sub: &str| {
        let now = now();
        let claims = json!({"iss": IDP, "sub": sub, "aud": server.base, "iat": now, "exp": now + 300});
        idp.sign(idp.header("JWT"), &claims)
    };
    let present = |assertion: String| {
        let body = form(&[("grant_type", JWT_BEARER), ("assertion", &assertion)]);
        let server = &server;
        async move { server.post_as("ci-deployer", "/token", &body).await }
    };
    let reply = present(jwt("worker-7")).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let claims = verify_jwt(&server, reply.json["access_token"].as_str().unwrap(), MCP).await;
    // The subject derives from the login claim UserInfo gave (the email).
    let input = format!("inbound-trusted-issuer-subject\0default\0{IDP}\0worker-7@corp.example");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
    let expected = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, digest.as_ref());
    assert_eq!(claims["sub"], expected.as_str());

    let reply = present(jwt("confused")).await;
    reply.assert_error(400, "invalid_grant");
    assert!(reply.json["error_description"].as_str().unwrap().contains("another subject"), "{}", reply.json);
    let reply = present(jwt("revoked")).await;
    reply.assert_error(400, "invalid_grant");
    assert!(reply.json["error_description"].as_str().unwrap().contains("UserInfo"), "{}", reply.json);
}
