//! `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect Core §9): the
//! `oauth2` crate as the client, assertions signed with keys made here, the app's public
//! keys inline (`spec.jwks`) or served at `spec.jwksUri` by a small loopback server.

use oauth2::{AuthType, ClientId, RequestTokenError, Scope, TokenResponse, TokenUrl, basic::BasicClient};
use serde_json::{Value, json};

use crate::support::keys::{SigningKey, signing_key};
use crate::support::server::{TestServer, form, start_server_configured};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn manifests(inline: &Value, jwks_uri: &str) -> String {
    format!(
        r#"apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {{name: inventory-read}}
spec: {{scope: "inventory:read", description: Read stock levels, resource: "https://inventory.example.com"}}
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {{name: inline-keys}}
spec:
  displayName: Keys inline
  grantTypes: [client_credentials]
  tokenEndpointAuthMethod: private_key_jwt
  jwks: '{inline}'
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {{name: fetched-keys}}
spec:
  displayName: Keys at a URL
  grantTypes: [client_credentials]
  tokenEndpointAuthMethod: private_key_jwt
  jwksUri: "{jwks_uri}"
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {{name: inline-keys}}
spec:
  subject: {{kind: InboundApp, name: inline-keys}}
  scopes: ["inventory:read"]
  resources: ["https://inventory.example.com"]
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {{name: fetched-keys}}
spec:
  subject: {{kind: InboundApp, name: fetched-keys}}
  scopes: ["inventory:read"]
  resources: ["https://inventory.example.com"]
"#
    )
}

/// Serves `jwks` at `/jwks` on a loopback port.
async fn jwks_server(jwks: Value) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/jwks", axum::routing::get(move || async move { axum::Json(jwks.clone()) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn server(inline: &SigningKey, fetched: &SigningKey) -> TestServer {
    let jwks_uri = jwks_server(json!({"keys": [fetched.jwk]})).await;
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("apps.yaml"), manifests(&json!({"keys": [inline.jwk]}), &jwks_uri)).unwrap();
    let source = folder.path().to_str().unwrap().to_string();
    // The JWKS is on loopback: allowed only because the operator says so.
    start_server_configured(&source, |options| options.workload.allow_private_issuers = true).await
}

async fn with_assertion(
    server: &TestServer,
    path: &str,
    assertion: &str,
    extra: &[(&str, &str)],
) -> crate::support::server::Reply {
    let mut pairs = vec![("client_assertion_type", ASSERTION_TYPE), ("client_assertion", assertion)];
    pairs.extend_from_slice(extra);
    server.post(path, None, &form(&pairs)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_authenticate_with_signed_assertions() {
    let (inline, fetched) = (signing_key("inline-1"), signing_key("fetched-1"));
    let server = server(&inline, &fetched).await;
    let metadata = server.get("/.well-known/oauth-authorization-server").await.json;
    assert!(
        metadata["token_endpoint_auth_methods_supported"].as_array().unwrap().iter().any(|m| m == "private_key_jwt")
    );
    assert_eq!(
        metadata["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS256", "PS256", "ES256", "EdDSA"])
    );
    let token_url = server.url("/token");

    // A real OAuth client library, the assertion as extra parameters (RFC 7521 §4.2).
    let id = server.client_id("inline-keys");
    let client = BasicClient::new(ClientId::new(id.clone()))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(TokenUrl::new(token_url.clone()).unwrap());
    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new("inventory:read".into()))
        .add_extra_param("client_assertion_type", ASSERTION_TYPE)
        .add_extra_param("client_assertion", inline.assertion(&id, &token_url, "jti-1"))
        .request_async(&server.http)
        .await
        .expect("token issued to a private_key_jwt client");
    assert_eq!(token.scopes().unwrap()[0].as_str(), "inventory:read");

    // The same assertion again: a replay (its jti is spent), refused on every replica.
    let replayed = client
        .exchange_client_credentials()
        .add_extra_param("client_assertion_type", ASSERTION_TYPE)
        .add_extra_param("client_assertion", inline.assertion(&id, &token_url, "jti-1"))
        .request_async(&server.http)
        .await;
    match replayed {
        Err(RequestTokenError::ServerResponse(e)) => assert_eq!(e.error().as_ref(), "invalid_client"),
        other => panic!("a replayed jti must be refused: {other:?}"),
    }

    // The issuer as audience works too; client_id may be left out (OIDC Core §9).
    let cc = [("grant_type", "client_credentials")];
    let reply = with_assertion(&server, "/token", &inline.assertion(&id, &server.base, "jti-2"), &cc).await;
    assert_eq!(reply.status, 200, "{}", reply.json);

    // Keys fetched from jwksUri.
    let fetched_id = server.client_id("fetched-keys");
    let reply = with_assertion(&server, "/token", &fetched.assertion(&fetched_id, &token_url, "jti-1"), &cc).await;
    assert_eq!(reply.status, 200, "{}", reply.json);

    // Refusals, all the same invalid_client to the caller (the reason is logged).
    let refused = |reply: crate::support::server::Reply| reply.assert_error(401, "invalid_client");
    // Signed by another app's key, or a key no one published.
    refused(with_assertion(&server, "/token", &fetched.assertion(&id, &token_url, "jti-3"), &cc).await);
    refused(with_assertion(&server, "/token", &signing_key("inline-1").assertion(&id, &token_url, "jti-4"), &cc).await);
    // An assertion for the token endpoint is not accepted at introspection.
    let reply =
        with_assertion(&server, "/introspect", &inline.assertion(&id, &token_url, "jti-5"), &[("token", "x")]).await;
    refused(reply);
    let introspect_url = server.url("/introspect");
    let reply =
        with_assertion(&server, "/introspect", &inline.assertion(&id, &introspect_url, "jti-6"), &[("token", "x")])
            .await;
    assert_eq!((reply.status, &reply.json["active"]), (200, &json!(false)), "{}", reply.json);
    // Another audience; no jti; a far exp; iss other than the client.
    refused(with_assertion(&server, "/token", &inline.assertion(&id, "https://elsewhere.example", "jti-7"), &cc).await);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("inline-1".into());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let base = json!({"iss": id, "sub": id, "aud": token_url, "jti": "jti-8", "iat": now, "exp": now + 60});
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v;
        }
        inline.sign(header.clone(), &c)
    };
    refused(with_assertion(&server, "/token", &with("jti", Value::Null), &cc).await);
    refused(with_assertion(&server, "/token", &with("exp", json!(now + 86_400)), &cc).await);
    refused(with_assertion(&server, "/token", &with("aud", json!([token_url, server.base])), &cc).await);
    let other_id = fetched_id.clone();
    refused(with_assertion(&server, "/token", &with("iss", json!(other_id)), &cc).await);
    // A secret is not a key: the app's registered method is enforced.
    let (_, secret) = server.creds("inline-keys");
    server.post("/token", Some((&id, &secret)), &form(&cc)).await.assert_error(401, "invalid_client");
    // Two methods at once, or a wrong assertion type.
    let reply = server
        .post(
            "/token",
            Some((&id, &secret)),
            &form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", "x"),
            ]),
        )
        .await;
    reply.assert_error(400, "invalid_request");
    let reply = server
        .post(
            "/token",
            None,
            &form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "saml"),
                ("client_assertion", "x"),
            ]),
        )
        .await;
    reply.assert_error(401, "invalid_client");
}

/// A self-registered client (RFC 7591) declaring `private_key_jwt` with its `jwks`: no
/// secret is issued, the code flow ends with a signed assertion at `/token`, and the
/// assertion's `jti` is single-use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_registered_clients_authenticate_with_signed_assertions() {
    use crate::support::flows::{MCP_RESOURCE, REDIRECT, authorize_url, code_for, pkce, server_with_registration};
    let server = server_with_registration(MCP_RESOURCE, "").await;
    let key = signing_key("dcr-1");
    let registered = server
        .http
        .post(server.url("/register"))
        .header("content-type", "application/json")
        .body(
            json!({
                "client_name": "Signed agent",
                "redirect_uris": ["http://127.0.0.1:49152/callback"],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [key.jwk]},
                "scope": "billing:read",
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let registered = crate::support::server::reply(registered).await;
    assert_eq!(registered.status, 201, "{}", registered.json);
    assert_eq!(registered.json["token_endpoint_auth_method"], "private_key_jwt");
    assert!(registered.json.get("client_secret").is_none(), "a key-based client gets no secret: {}", registered.json);
    let client_id = registered.json["client_id"].as_str().unwrap().to_string();

    let (challenge, verifier) = pkce();
    let url = authorize_url(&server, &client_id, "billing:read", &challenge, &format!("&resource={MCP_RESOURCE}"));
    let code =
        code_for(&server.base, &mut crate::support::user_agent::Agent::new(), &url, ("alice", "wonderland"), &[]).await;
    let token_url = server.url("/token");
    let assertion = key.assertion(&client_id, &token_url, "dcr-jti-1");
    let redeem = |code: &str, assertion: &str| {
        form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ])
    };
    // Without the assertion (client_id alone), the code is not redeemed.
    let bare = server
        .post(
            "/token",
            None,
            &form(&[
                ("grant_type", "authorization_code"),
                ("client_id", &client_id),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ]),
        )
        .await;
    bare.assert_error(401, "invalid_client");
    let reply = server.post("/token", None, &redeem(&code, &assertion)).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let access =
        crate::support::flows::verify_jwt(&server, reply.json["access_token"].as_str().unwrap(), MCP_RESOURCE).await;
    assert_eq!(access["client_id"], client_id.as_str());
    // The same assertion again (a replay) is refused before the code is looked at.
    let replay = server.post("/token", None, &redeem("any-code", &assertion)).await;
    replay.assert_error(401, "invalid_client");
    // Signed by a key the registration did not publish.
    let other = signing_key("dcr-1").assertion(&client_id, &token_url, "dcr-jti-2");
    server.post("/token", None, &redeem("any-code", &other)).await.assert_error(401, "invalid_client");
}
