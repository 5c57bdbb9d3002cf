//! The audit trail (README "Audit events"): one record per security-relevant act, with the
//! request id the caller was given and the source address; never a secret. Driven through
//! the real server on the quickstart, as a user and clients would.

use serde_json::{Value, json};

use crate::support::flows::{MCP_RESOURCE, REDIRECT, authorize_url, exchange, pkce, server_with_registration};
use crate::support::server::{TestServer, form, reply};
use crate::support::user_agent::Agent;

/// Every record the server has emitted so far.
async fn records(server: &TestServer) -> Vec<Value> {
    let text = server.audit_trail();
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

/// The records of `event` whose fields include `fields`.
fn find<'a>(records: &'a [Value], event: &str, fields: &Value) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["event"] == event)
        .filter(|r| fields.as_object().unwrap().iter().all(|(k, v)| &r[k] == v))
        .collect()
}

#[track_caller]
fn one<'a>(records: &'a [Value], event: &str, fields: Value) -> &'a Value {
    let found = find(records, event, &fields);
    assert_eq!(found.len(), 1, "expected one {event} with {fields}, got {found:#?}\nall: {records:#?}");
    found[0]
}

fn jti(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_security_relevant_act_is_recorded_without_a_secret() {
    let server = server_with_registration(MCP_RESOURCE, "").await;
    // Every secret the test sees; none may appear in the trail.
    let mut secrets: Vec<String> = vec!["wonderland".into(), "not-alices-password".into()];

    // Startup: the confidential apps' first secrets.
    let (agent_id, agent_secret) = server.creds("billing-agent");
    secrets.push(agent_secret.clone());
    let trail = records(&server).await;
    let issued = one(&trail, "client_secret_issued", json!({"app": "default/billing-agent"}));
    assert_eq!(issued["client_id"], agent_id.as_str());
    assert_eq!(issued["reason"], "first");
    assert_eq!(issued["version"], 1);
    assert_eq!(issued["outcome"], "success");
    assert!(issued.get("request_id").is_none(), "not in a request");

    // client_credentials: issued, with the request id the client was given.
    let token = server.token("billing-agent", "&resource=https%3A%2F%2Fbilling.example.com").await;
    assert_eq!(token.status, 200, "{}", token.json);
    let access = token.json["access_token"].as_str().unwrap().to_string();
    secrets.push(access.clone());
    let request_id = token.headers["x-request-id"].to_str().unwrap().to_string();
    let trail = records(&server).await;
    let issued = one(&trail, "token_issued", json!({"grant_type": "client_credentials", "jti": jti(&access)}));
    assert_eq!(issued["client_id"], agent_id.as_str());
    assert_eq!(issued["client_namespace"], "default");
    assert_eq!(issued["subject"], agent_id.as_str());
    assert_eq!(issued["audience"], json!(["https://billing.example.com"]));
    assert_eq!(issued["token_format"], "jwt");
    assert_eq!(issued["request_id"], request_id.as_str());
    assert_eq!(issued["source_address"], "127.0.0.1");
    assert!(issued["time"].as_str().unwrap().parse::<jiff::Timestamp>().is_ok(), "{issued}");
    // Refused: the code, and who claimed to ask.
    let refused = server.post("/token", Some((&agent_id, "wrong-secret")), "grant_type=client_credentials").await;
    refused.assert_error(401, "invalid_client");
    let trail = records(&server).await;
    let record = one(&trail, "token_refused", json!({"error": "invalid_client"}));
    assert_eq!(record["client_id"], agent_id.as_str());
    assert_eq!(record["grant_type"], "client_credentials");
    assert_eq!(record["outcome"], "failure");
    assert_eq!(record["request_id"], refused.headers["x-request-id"].to_str().unwrap());
    // Opaque tokens too.
    let opaque = server.token("reporting-job", "").await;
    assert_eq!(opaque.status, 200, "{}", opaque.json);
    secrets.push(opaque.json["access_token"].as_str().unwrap().to_string());
    secrets.push(server.creds("reporting-job").1);
    let trail = records(&server).await;
    let reporting = server.client_id("reporting-job");
    assert_eq!(one(&trail, "token_issued", json!({"client_id": reporting}))["token_format"], "opaque");

    // Introspection and revocation.
    let described = server.introspect("billing-agent", &access).await;
    assert_eq!(described["active"], true);
    let trail = records(&server).await;
    let record = one(&trail, "introspection", json!({"jti": jti(&access)}));
    assert_eq!((record["caller"].as_str(), record["active"].as_bool()), (Some(agent_id.as_str()), Some(true)));
    let revoked = server.post_as("billing-agent", "/revoke", &form(&[("token", &access)])).await;
    assert_eq!(revoked.status, 200);
    let trail = records(&server).await;
    assert_eq!(one(&trail, "revocation", json!({"jti": jti(&access)}))["revoked"], "access_token");

    // A user: a wrong password, then signing in; consent; the code exchanged.
    let cli = server.client_id("billing-cli");
    let (challenge, verifier) = pkce();
    let mut agent = Agent::new();
    let url = authorize_url(&server, &cli, "openid billing:read", &challenge, "");
    let page = agent.get(&url).await;
    let wrong = agent.login(&server.base, &page, "alice", "not-alices-password").await;
    assert_eq!(wrong.status, 401, "the form again");
    let trail = records(&server).await;
    let failed = one(&trail, "login_failed", json!({"username": "alice"}));
    assert_eq!((failed["reason"].as_str(), failed["outcome"].as_str()), (Some("wrong_credentials"), Some("failure")));
    assert_eq!(failed["source_address"], "127.0.0.1");
    let page = agent.login(&server.base, &wrong, "alice", "wonderland").await;
    let page = agent.approve(&server.base, &page, &[]).await;
    let code = page.redirect_param("code").expect("a code");
    secrets.push(code.clone());
    secrets.push(verifier.clone());
    secrets.push(agent.cookie.clone().unwrap().split_once('=').unwrap().1.to_string());
    let tokens = exchange(&server, &cli, &code, &verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    let refresh = tokens.json["refresh_token"].as_str().unwrap().to_string();
    for field in ["access_token", "refresh_token", "id_token"] {
        secrets.push(tokens.json[field].as_str().unwrap().to_string());
    }
    let trail = records(&server).await;
    let login = one(&trail, "login_succeeded", json!({"username": "alice"}));
    let subject = login["subject"].as_str().unwrap().to_string();
    let consent = one(&trail, "consent_granted", json!({"client_id": cli, "subject": subject}));
    assert_eq!(consent["scopes"], json!(["billing:read"]));
    assert_eq!(consent["granted_by"], subject.as_str());
    let consent_id = consent["consent_id"].as_str().unwrap().to_string();
    let issued = one(&trail, "token_issued", json!({"grant_type": "authorization_code"}));
    assert_eq!((issued["refresh_token"].as_bool(), issued["id_token"].as_bool()), (Some(true), Some(true)));
    assert_eq!(issued["subject"], subject.as_str());

    // Refresh: rotated; the spent token again: reuse, the family revoked, refused.
    let refresh_form =
        |token: &str| form(&[("grant_type", "refresh_token"), ("client_id", &cli), ("refresh_token", token)]);
    let rotated = server.post("/token", None, &refresh_form(&refresh)).await;
    assert_eq!(rotated.status, 200, "{}", rotated.json);
    secrets.push(rotated.json["refresh_token"].as_str().unwrap().to_string());
    secrets.push(rotated.json["access_token"].as_str().unwrap().to_string());
    let reused = server.post("/token", None, &refresh_form(&refresh)).await;
    reused.assert_error(400, "invalid_grant");
    let trail = records(&server).await;
    let rotation = one(&trail, "refresh_token_rotated", json!({"client_id": cli}));
    let family = rotation["family_id"].clone();
    one(&trail, "refresh_token_reused", json!({"family_id": family}));
    one(&trail, "token_family_revoked", json!({"family_id": family, "reason": "refresh_token_reused"}));
    one(&trail, "token_refused", json!({"grant_type": "refresh_token", "error": "invalid_grant"}));

    // Consent revoked by the user (account API), then a denial, then signing out.
    let revoke = agent
        .http
        .delete(server.url(&format!("/account/api/apps/{consent_id}")))
        .header("cookie", agent.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    let page = agent.get(&authorize_url(&server, &cli, "openid billing:read", &challenge, "")).await;
    let denied = agent.deny(&server.base, &page).await;
    assert_eq!(denied.redirect_param("error").as_deref(), Some("access_denied"));
    let page = agent.get(&server.url("/logout")).await;
    let done = agent.post(&server.url("/logout"), &[("confirm", "yes"), ("csrf", &page.field("csrf"))]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let trail = records(&server).await;
    let revoked = one(&trail, "consent_revoked", json!({"consent_id": consent_id}));
    assert_eq!((revoked["revoked_by"].as_str(), revoked["subject"].as_str()), (Some("user"), Some(subject.as_str())));
    one(&trail, "consent_denied", json!({"client_id": cli, "subject": subject}));
    one(&trail, "logout", json!({"subject": subject}));

    // Self-registration: registered, updated, deleted by itself; a refused one.
    let body = json!({
        "client_name": "Audited MCP client",
        "redirect_uris": [REDIRECT.replace(":45321", "")],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        "scope": "billing:read",
    });
    let post = |body: Value| {
        let request = server.http.post(server.url("/register")).header("content-type", "application/json");
        async move { reply(request.body(body.to_string()).send().await.unwrap()).await }
    };
    let created = post(body.clone()).await;
    assert_eq!(created.status, 201, "{}", created.json);
    let registered = created.json["client_id"].as_str().unwrap().to_string();
    let management = created.json["registration_access_token"].as_str().unwrap().to_string();
    secrets.push(management.clone());
    let uri = created.json["registration_client_uri"].as_str().unwrap().to_string();
    let mut update = body.clone();
    update["client_id"] = json!(registered);
    update["client_name"] = json!("Audited MCP client (renamed)");
    let updated = server.http.put(&uri).bearer_auth(&management).json(&update).send().await.unwrap();
    assert_eq!(updated.status(), 200);
    let deleted = server.http.delete(&uri).bearer_auth(&management).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let mut bad = body.clone();
    bad["redirect_uris"] = json!(["https://evil.com/cb"]);
    assert_eq!(post(bad).await.status, 400);
    let trail = records(&server).await;
    let record = one(&trail, "client_registered", json!({"client_id": registered}));
    assert_eq!(
        (record["kind"].as_str(), record["client_name"].as_str()),
        (Some("registered"), Some("Audited MCP client"))
    );
    one(&trail, "client_updated", json!({"client_id": registered}));
    assert_eq!(one(&trail, "client_deleted", json!({"client_id": registered}))["deleted_by"], "client");
    one(&trail, "client_registration_refused", json!({"error": "invalid_redirect_uri"}));

    // Every record has the common fields; and no secret, code or token is anywhere.
    let text = server.audit_trail();
    for record in &trail {
        for field in ["version", "time", "event", "outcome"] {
            assert!(record.get(field).is_some(), "{field} missing: {record}");
        }
    }
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret is in the audit trail: {secret}");
    }
    server.running.stop().await;
}
