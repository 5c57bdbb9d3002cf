//! Token exchange (RFC 8693) in `inbound serve`: an agent holding a user's token obtains
//! one for another resource, a resource server acts downstream for the same user, and the
//! `act` chain records both, checked with an independent JWT library against the JWKS.
//! (ServiceAccount and trusted-issuer subject tokens: `workload_identity`; in a cluster:
//! `operator::workloads_trade_service_account_tokens`.)

use std::{path::Path, time::Duration};

use serde_json::json;

use crate::support::flows::{REDIRECT, authorize_url, code_for, pkce, verify_jwt};
use crate::support::server::{QUICKSTART, Reply, TestServer, form, start_server_with};
use crate::support::user_agent::Agent;

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const BILLING: &str = "https://billing.example.com";
const LEDGER: &str = "https://ledger.example.com";

/// Beside the quickstart: a ledger API, an agent users sign in to, and the delegation
/// grants the billing namespace's owner wrote for them.
const DELEGATION: &str = r#"apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: ledger-read, namespace: default}
spec: {scope: "ledger:read", description: Read the ledger, resource: "https://ledger.example.com"}
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: shopping-agent, namespace: default}
spec:
  displayName: Shopping Agent
  grantTypes: [authorization_code, "urn:ietf:params:oauth:grant-type:token-exchange"]
  redirectUris: ["http://127.0.0.1/callback"]
  allowedScopes: [billing:read, ledger:read]
  allowedResources: ["https://billing.example.com", "https://ledger.example.com"]
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: ledger-api, namespace: default}
spec:
  displayName: Ledger API
  grantTypes: ["urn:ietf:params:oauth:grant-type:token-exchange"]
  resourceServer: {resources: ["https://ledger.example.com"]}
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: nosy-app, namespace: default}
spec:
  displayName: Nosy
  grantTypes: ["urn:ietf:params:oauth:grant-type:token-exchange"]
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: agent-reads-the-ledger-for-users, namespace: default}
spec:
  subject: {kind: InboundApp, name: shopping-agent}
  scopes: [ledger:read]
  resources: ["https://ledger.example.com"]
  tokenExchange: {}
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: ledger-reads-billing-for-users, namespace: default}
spec:
  subject: {kind: InboundApp, name: ledger-api}
  # alice consented to billing:read only: billing:refund never reaches her delegated tokens.
  scopes: [billing:read, billing:refund]
  resources: ["https://billing.example.com"]
  tokenExchange: {subjectTokenTypes: [AccessToken]}
"#;

async fn exchange(server: &TestServer, app: &str, pairs: &[(&str, &str)]) -> Reply {
    let mut body = vec![("grant_type", TOKEN_EXCHANGE)];
    body.extend_from_slice(pairs);
    server.post_as(app, "/token", &form(&body)).await
}

/// alice signs in to the agent and consents to billing:read and ledger:read; the access
/// token is for the billing API (so it carries billing:read only).
async fn user_token(server: &TestServer) -> String {
    let (challenge, verifier) = pkce();
    let agent_id = server.client_id("shopping-agent");
    let url = authorize_url(
        server,
        &agent_id,
        "billing:read ledger:read",
        &challenge,
        &format!("&resource={BILLING}&resource={LEDGER}"),
    );
    let code = code_for(&server.base, &mut Agent::new(), &url, ("alice", "wonderland"), &["ledger:read"]).await;
    let reply = server
        .post_as(
            "shopping-agent",
            "/token",
            &form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
                ("resource", BILLING),
            ]),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["scope"], "billing:read");
    reply.json["access_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_act_for_users_with_a_delegation_chain() {
    let server = start_server_with(QUICKSTART, None, Duration::from_millis(200), |dir: &Path| {
        std::fs::write(dir.join("delegation.yaml"), DELEGATION).unwrap();
    })
    .await;
    let metadata = server.get("/.well-known/oauth-authorization-server").await.json;
    assert!(metadata["grant_types_supported"].as_array().unwrap().iter().any(|g| g == TOKEN_EXCHANGE), "{metadata}");
    let agent_id = server.client_id("shopping-agent");
    let ledger_id = server.client_id("ledger-api");
    let user = user_token(&server).await;
    let alice = verify_jwt(&server, &user, BILLING).await["sub"].clone();

    // The agent exchanges alice's billing token for a ledger token: ledger:read comes from
    // her consent to the agent, the ledger from the delegation grant.
    let reply = exchange(
        &server,
        "shopping-agent",
        &[("subject_token", &user), ("subject_token_type", ACCESS_TOKEN), ("resource", LEDGER)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(reply.json["token_type"], "Bearer");
    assert_eq!(reply.json["scope"], "ledger:read");
    assert!(reply.json.get("refresh_token").is_none(), "{}", reply.json);
    let for_ledger = reply.json["access_token"].as_str().unwrap().to_string();
    let claims = verify_jwt(&server, &for_ledger, LEDGER).await;
    assert_eq!(claims["sub"], alice);
    assert_eq!(claims["client_id"], agent_id.as_str());
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["act"], json!({"sub": agent_id}));

    // The ledger API, receiving that token, reads billing for alice: a chain of two actors,
    // the current one outermost (RFC 8693 §4.1). `audience` works as `resource` does.
    let reply = exchange(
        &server,
        "ledger-api",
        &[
            ("subject_token", &for_ledger),
            ("subject_token_type", ACCESS_TOKEN),
            ("audience", BILLING),
            ("requested_token_type", JWT),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["issued_token_type"], JWT);
    assert_eq!(reply.json["scope"], "billing:read");
    let downstream = reply.json["access_token"].as_str().unwrap().to_string();
    let claims = verify_jwt(&server, &downstream, BILLING).await;
    assert_eq!(claims["sub"], alice);
    assert_eq!(claims["client_id"], ledger_id.as_str());
    assert_eq!(claims["act"], json!({"sub": ledger_id, "act": {"sub": agent_id}}));
    assert!(claims["exp"].as_i64() <= verify_jwt(&server, &for_ledger, LEDGER).await["exp"].as_i64());
    // The billing API's introspection shows the chain too.
    let introspected = server.introspect("billing-api", &downstream).await;
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["act"]["act"]["sub"], agent_id.as_str());

    // The ledger API may not take alice's billing token: it was neither issued to it nor
    // sent to the ledger.
    let reply =
        exchange(&server, "ledger-api", &[("subject_token", &user), ("subject_token_type", ACCESS_TOKEN)]).await;
    reply.assert_error(400, "invalid_request");
    assert!(reply.json["error_description"].as_str().unwrap().starts_with("subject_token: neither issued"));

    // Refused by default: an app allowed the grant type but without a delegation grant, and
    // an app not allowed the grant type at all.
    let reply = exchange(&server, "nosy-app", &[("subject_token", &user), ("subject_token_type", ACCESS_TOKEN)]).await;
    reply.assert_error(400, "unauthorized_client");
    assert!(reply.json["error_description"].as_str().unwrap().contains("tokenExchange"), "{}", reply.json);
    let reply =
        exchange(&server, "billing-agent", &[("subject_token", &user), ("subject_token_type", ACCESS_TOKEN)]).await;
    reply.assert_error(400, "unauthorized_client");

    // Never wider than the user's consent, never another resource than the grant's.
    let reply = exchange(
        &server,
        "shopping-agent",
        &[("subject_token", &user), ("subject_token_type", ACCESS_TOKEN), ("scope", "billing:refund")],
    )
    .await;
    reply.assert_error(400, "invalid_scope");
    let reply = exchange(
        &server,
        "shopping-agent",
        &[("subject_token", &user), ("subject_token_type", ACCESS_TOKEN), ("resource", "https://crm.example.com")],
    )
    .await;
    reply.assert_error(400, "invalid_target");

    // Malformed requests (RFC 8693 §2.2.2: invalid_request).
    for (pairs, says) in [
        (vec![("subject_token_type", ACCESS_TOKEN)], "subject_token"),
        (vec![("subject_token", user.as_str())], "subject_token_type"),
        (vec![("subject_token", "not-a-token"), ("subject_token_type", ACCESS_TOKEN)], "not an active access token"),
        (
            vec![("subject_token", user.as_str()), ("subject_token_type", "urn:ietf:params:oauth:token-type:saml2")],
            "saml2",
        ),
        (
            vec![
                ("subject_token", user.as_str()),
                ("subject_token_type", ACCESS_TOKEN),
                ("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token"),
            ],
            "requested_token_type",
        ),
        (
            vec![
                ("subject_token", user.as_str()),
                ("subject_token_type", ACCESS_TOKEN),
                ("actor_token", user.as_str()),
            ],
            "actor_token_type",
        ),
    ] {
        let reply = exchange(&server, "shopping-agent", &pairs).await;
        reply.assert_error(400, "invalid_request");
        assert!(reply.json["error_description"].as_str().unwrap().contains(says), "{says}: {}", reply.json);
    }
    // The client must authenticate.
    let reply = server
        .post(
            "/token",
            None,
            &form(&[
                ("grant_type", TOKEN_EXCHANGE),
                ("client_id", &agent_id),
                ("subject_token", &user),
                ("subject_token_type", ACCESS_TOKEN),
            ]),
        )
        .await;
    assert_eq!(reply.status, 401, "{}", reply.json);

    // An actor token issued to the agent names the actor; the agent stays on record.
    let reply = exchange(
        &server,
        "shopping-agent",
        &[
            ("subject_token", &user),
            ("subject_token_type", ACCESS_TOKEN),
            ("actor_token", &user),
            ("actor_token_type", ACCESS_TOKEN),
            ("resource", LEDGER),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let claims = verify_jwt(&server, reply.json["access_token"].as_str().unwrap(), LEDGER).await;
    assert_eq!(claims["act"], json!({"sub": alice, "client_id": agent_id}));
    // Another client's token cannot be an actor here.
    let reply = exchange(
        &server,
        "shopping-agent",
        &[
            ("subject_token", &user),
            ("subject_token_type", ACCESS_TOKEN),
            ("actor_token", &downstream),
            ("actor_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    reply.assert_error(400, "invalid_request");
    assert!(reply.json["error_description"].as_str().unwrap().starts_with("actor_token:"), "{}", reply.json);

    // A revoked subject token can no longer be exchanged.
    let revoked = server.post_as("shopping-agent", "/revoke", &form(&[("token", &user)])).await;
    assert_eq!(revoked.status, 200);
    let reply =
        exchange(&server, "shopping-agent", &[("subject_token", &user), ("subject_token_type", ACCESS_TOKEN)]).await;
    reply.assert_error(400, "invalid_request");
}
