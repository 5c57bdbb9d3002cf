//! Workload identity in `inbound serve` (the JWT bearer grant, RFC 7523): Kubernetes
//! ServiceAccount tokens validated offline against the issuer's keys, and an app's trusted
//! issuer. The tokens come from a real kube-apiserver (TokenRequest): an issuer no one here
//! wrote. (In a cluster, TokenReview: `operator::workloads_trade_service_account_tokens`.)

use std::path::Path;

use base64::Engine;
use serde_json::{Value, json};

use crate::support::api_server::ApiServer;
use crate::support::flows::verify_jwt;
use crate::support::server::{TestServer, form, start_server_configured};

const SA_ISSUER: &str = "https://kubernetes.default.svc";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const INVENTORY: &str = "https://inventory.example.com";

fn manifests(jwks: &Value) -> String {
    format!(
        r#"apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {{name: inventory-read}}
spec: {{scope: "inventory:read", description: Read stock levels, resource: "{INVENTORY}"}}
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {{name: billing-worker}}
spec:
  subject: {{kind: ServiceAccount, name: billing-worker}}
  scopes: ["inventory:read"]
  resources: ["{INVENTORY}"]
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {{name: ci-deployer}}
spec:
  displayName: CI deployer
  grantTypes: ["{JWT_BEARER}", "{TOKEN_EXCHANGE}"]
  trustedIssuers:
    - issuer: "{SA_ISSUER}"
      jwks: '{jwks}'
      algorithms: [RS256]
      maxLifetime: 15m
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {{name: ci-deployer}}
spec:
  subject: {{kind: InboundApp, name: ci-deployer}}
  scopes: ["inventory:read"]
  resources: ["{INVENTORY}"]
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {{name: other-app}}
spec:
  displayName: Trusts no one
  grantTypes: [client_credentials, "{TOKEN_EXCHANGE}"]
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {{name: billing-reporter}}
spec:
  displayName: Authenticated by its ServiceAccount
  grantTypes: [client_credentials]
  tokenEndpointAuthMethod: private_key_jwt
  serviceAccountName: billing-worker
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {{name: billing-reporter}}
spec:
  subject: {{kind: InboundApp, name: billing-reporter}}
  scopes: ["inventory:read"]
  resources: ["{INVENTORY}"]
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {{name: other-app-for-workloads}}
spec:
  subject: {{kind: InboundApp, name: other-app}}
  scopes: ["inventory:read"]
  resources: ["{INVENTORY}"]
  tokenExchange: {{subjectTokenTypes: [Jwt]}}
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {{name: ci-deployer-for-users}}
spec:
  subject: {{kind: InboundApp, name: ci-deployer}}
  scopes: ["inventory:read"]
  resources: ["{INVENTORY}"]
  tokenExchange: {{subjectTokenTypes: [Jwt]}}
"#
    )
}

/// A folder server trusting the API server's ServiceAccount issuer, with its keys in a file.
async fn server_trusting(api: &ApiServer) -> TestServer {
    let jwks: Value = serde_json::from_str(&api.kubectl_ok(&["get", "--raw", "/openid/v1/jwks"])).unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("workloads.yaml"), manifests(&jwks)).unwrap();
    let jwks_file = folder.path().join("sa-jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let source = folder.path().to_str().unwrap().to_string();
    let server = start_server_configured(&source, |options| {
        options.workload.service_account_issuer = Some(SA_ISSUER.into());
        options.workload.service_account_jwks = Some(jwks_file.to_str().unwrap().into());
    })
    .await;
    // The configuration was copied; the keys file is read at start.
    drop(folder);
    server
}

fn token_for(api: &ApiServer, namespace: &str, account: &str, args: &[&str]) -> String {
    let mut command = vec!["create", "token", account, "-n", namespace];
    command.extend_from_slice(args);
    api.kubectl_ok(&command).trim().to_string()
}

async fn jwt_bearer(
    server: &TestServer,
    basic: Option<(&str, &str)>,
    assertion: &str,
    extra: &[(&str, &str)],
) -> crate::support::server::Reply {
    let mut pairs = vec![("grant_type", JWT_BEARER), ("assertion", assertion)];
    pairs.extend_from_slice(extra);
    server.post("/token", basic, &form(&pairs)).await
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A JWT with the claims of a real ServiceAccount token, signed by a key the issuer never
/// published (same `kid`).
fn forged(real: &str, dir: &Path) -> String {
    let key = dir.join("forger.key");
    let ok = std::process::Command::new("openssl")
        .args(["genrsa", "-out", key.to_str().unwrap(), "2048"])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let pem = std::fs::read(&key).unwrap();
    let header = jsonwebtoken::decode_header(real).unwrap();
    let mut forged_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    forged_header.kid = header.kid;
    jsonwebtoken::encode(&forged_header, &claims_of(real), &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_and_trusted_issuers_in_a_folder() {
    let api = ApiServer::start();
    for (ns, sa) in [("default", "billing-worker"), ("other", "billing-worker"), ("default", "ci-runner")] {
        if ns != "default" {
            let _ = api.kubectl(&["create", "namespace", ns]);
        }
        api.kubectl_ok(&["create", "serviceaccount", sa, "-n", ns]);
    }
    let server = server_trusting(&api).await;
    let issuer = server.base.clone();

    // Metadata advertises the grant.
    let metadata = server.get("/.well-known/oauth-authorization-server").await.json;
    assert!(metadata["grant_types_supported"].as_array().unwrap().iter().any(|g| g == JWT_BEARER), "{metadata}");

    // A workload's projected token, audience = this issuer: a scoped token, no client secret.
    let token = token_for(&api, "default", "billing-worker", &["--audience", &issuer, "--duration", "10m"]);
    let reply = jwt_bearer(&server, None, &token, &[("scope", "inventory:read"), ("resource", INVENTORY)]).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["scope"], "inventory:read");
    let access = verify_jwt(&server, reply.json["access_token"].as_str().unwrap(), INVENTORY).await;
    assert_eq!(access["sub"], "system:serviceaccount:default:billing-worker");
    assert_eq!(access["client_id"], "system:serviceaccount:default:billing-worker");
    assert_eq!(access["client_namespace"], "default");
    let uid =
        api.kubectl_ok(&["get", "serviceaccount", "billing-worker", "-n", "default", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(access["kubernetes.io"]["serviceaccount"], json!({"name": "billing-worker", "uid": uid}));
    assert_eq!(access["kubernetes.io"]["namespace"], "default");

    // Without scope or resource: everything its grants give.
    let reply = jwt_bearer(&server, None, &token, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.json);

    // A token for the API server itself (its default audience) is not for us.
    let for_api_server = token_for(&api, "default", "billing-worker", &["--duration", "10m"]);
    let reply = jwt_bearer(&server, None, &for_api_server, &[]).await;
    reply.assert_error(400, "invalid_grant");
    assert!(reply.json["error_description"].as_str().unwrap().contains("aud"), "{}", reply.json);

    // Valid for longer than the offline validator accepts (its deletion could not be seen).
    let long = token_for(&api, "default", "billing-worker", &["--audience", &issuer, "--duration", "1h"]);
    let reply = jwt_bearer(&server, None, &long, &[]).await;
    reply.assert_error(400, "invalid_grant");
    assert!(reply.json["error_description"].as_str().unwrap().contains("more than the 600 s"), "{}", reply.json);

    // The same name in another namespace has no grant.
    let other = token_for(&api, "other", "billing-worker", &["--audience", &issuer, "--duration", "10m"]);
    let reply = jwt_bearer(&server, None, &other, &[]).await;
    reply.assert_error(400, "unauthorized_client");
    assert!(reply.json["error_description"].as_str().unwrap().contains("other/billing-worker"), "{}", reply.json);

    // A forged signature, and the classic algorithm attacks, are refused.
    let dir = tempfile::tempdir().unwrap();
    let reply = jwt_bearer(&server, None, &forged(&token, dir.path()), &[]).await;
    reply.assert_error(400, "invalid_grant");
    assert!(reply.json["error_description"].as_str().unwrap().contains("signature"), "{}", reply.json);
    let parts: Vec<&str> = token.split('.').collect();
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let unsigned = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), parts[1]);
    jwt_bearer(&server, None, &unsigned, &[]).await.assert_error(400, "invalid_grant");
    let hmac = format!("{}.{}.{}", b64(&json!({"alg": "HS256"})), parts[1], parts[2]);
    let reply = jwt_bearer(&server, None, &hmac, &[]).await;
    reply.assert_error(400, "invalid_grant");
    assert!(reply.json["error_description"].as_str().unwrap().contains("HS256"), "{}", reply.json);
    jwt_bearer(&server, None, "not-a-jwt", &[]).await.assert_error(400, "invalid_grant");
    let reply = server.post("/token", None, &form(&[("grant_type", JWT_BEARER)])).await;
    reply.assert_error(400, "invalid_request");

    // An app trusting the issuer: the app authenticates, the token acts for the subject
    // the JWT names (derived, so no other source's user can be named), with the app's grants.
    let runner = token_for(&api, "default", "ci-runner", &["--audience", &issuer, "--duration", "10m"]);
    let (id, secret) = server.creds("ci-deployer");
    let reply = jwt_bearer(&server, Some((&id, &secret)), &runner, &[("resource", INVENTORY)]).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let access = verify_jwt(&server, reply.json["access_token"].as_str().unwrap(), INVENTORY).await;
    assert_eq!(access["client_id"], id.as_str());
    assert_eq!(access["scope"], "inventory:read");
    let input =
        format!("inbound-trusted-issuer-subject\0default\0{SA_ISSUER}\0system:serviceaccount:default:ci-runner");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
    assert_eq!(access["sub"], base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()));
    assert!(access.get("kubernetes.io").is_none(), "an app's token, not a workload's");

    // An app that does not trust the issuer, or is not allowed the grant; a wrong secret.
    let (other_id, other_secret) = server.creds("other-app");
    jwt_bearer(&server, Some((&other_id, &other_secret)), &runner, &[]).await.assert_error(400, "unauthorized_client");
    jwt_bearer(&server, Some((&id, "wrong")), &runner, &[]).await.assert_error(401, "invalid_client");
    // The app's maximum lifetime (15m) refuses an hour-long assertion.
    let long_runner = token_for(&api, "default", "ci-runner", &["--audience", &issuer, "--duration", "1h"]);
    let reply = jwt_bearer(&server, Some((&id, &secret)), &long_runner, &[]).await;
    reply.assert_error(400, "invalid_grant");
    assert!(reply.json["error_description"].as_str().unwrap().contains("more than the 900 s"), "{}", reply.json);

    // Workload identity federation: an app naming the ServiceAccount authenticates with its
    // token as client_assertion (and client_id), no secret or key of its own.
    let reporter = server.client_id("billing-reporter");
    let as_app = |assertion: &str, client_id: Option<&str>| {
        let mut pairs = vec![
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion),
        ];
        pairs.extend(client_id.map(|id| ("client_id", id)));
        let (server, body) = (&server, form(&pairs));
        async move { server.post("/token", None, &body).await }
    };
    let reply = as_app(&token, Some(&reporter)).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let claims = verify_jwt(&server, reply.json["access_token"].as_str().unwrap(), INVENTORY).await;
    assert_eq!(
        (claims["client_id"].as_str(), claims["sub"].as_str()),
        (Some(reporter.as_str()), Some(reporter.as_str()))
    );
    // Another ServiceAccount's token, or no client_id: not this app.
    as_app(&runner, Some(&reporter)).await.assert_error(401, "invalid_client");
    as_app(&token, None).await.assert_error(401, "invalid_client");
    // An app that names no ServiceAccount is not authenticated by one.
    as_app(&token, Some(&other_id)).await.assert_error(401, "invalid_client");

    // Token exchange (RFC 8693) with JWT subject tokens. A ServiceAccount token, checked
    // offline: the token acts for the workload, capped by the workload's own grants.
    let exchange = |app: (&str, &str), subject: &str| {
        let body =
            form(&[("grant_type", TOKEN_EXCHANGE), ("subject_token", subject), ("subject_token_type", JWT_TYPE)]);
        let (server, id, secret) = (&server, app.0.to_string(), app.1.to_string());
        async move { server.post("/token", Some((&id, &secret)), &body).await }
    };
    let reply = exchange((&other_id, &other_secret), &token).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let delegated = verify_jwt(&server, reply.json["access_token"].as_str().unwrap(), INVENTORY).await;
    assert_eq!(delegated["sub"], "system:serviceaccount:default:billing-worker");
    assert_eq!(delegated["client_id"], other_id.as_str());
    assert_eq!(delegated["act"], json!({"sub": other_id}));
    assert_eq!(delegated["kubernetes.io"]["serviceaccount"]["uid"], uid.as_str());
    // A workload with no grant of its own lends nothing.
    exchange((&other_id, &other_secret), &runner).await.assert_error(400, "invalid_scope");
    // A forged one is an unusable subject token (RFC 8693 §2.2.2).
    let reply = exchange((&other_id, &other_secret), &forged(&token, dir.path())).await;
    reply.assert_error(400, "invalid_request");
    assert!(reply.json["error_description"].as_str().unwrap().starts_with("subject_token:"), "{}", reply.json);
    // A JWT of an issuer the app does not trust, that is no ServiceAccount token either.
    let stranger = crate::support::keys::signing_key("stranger");
    let now = crate::support::keys::now();
    let foreign = stranger.sign(
        stranger.header("JWT"),
        &json!({"iss": "https://stranger.example.com", "sub": "x", "aud": issuer, "iat": now, "exp": now + 60}),
    );
    let reply = exchange((&other_id, &other_secret), &foreign).await;
    reply.assert_error(400, "invalid_request");
    assert!(reply.json["error_description"].as_str().unwrap().contains("not one of this app's trustedIssuers"));
    // A trusted issuer's JWT: the same subject as the JWT bearer grant gives.
    let reply = exchange((&id, &secret), &runner).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let delegated = verify_jwt(&server, reply.json["access_token"].as_str().unwrap(), INVENTORY).await;
    assert_eq!(delegated["sub"], access["sub"]);
    assert_eq!(delegated["act"], json!({"sub": id}));
}
