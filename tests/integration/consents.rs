//! Consent administration (README "Consents"): an administrator lists and revokes users'
//! consents without deleting the client — `inbound consents` on the store of `inbound serve`,
//! and `/admin/consents` in a cluster under Kubernetes RBAC (in `operator.rs`).

use std::path::Path;

use serde_json::Value;

use crate::support::flows::{authorize_url, code_for, exchange, pkce};
use crate::support::server::{QUICKSTART, form, start_server};
use crate::support::user_agent::Agent;

/// The `sub` of an ID token (unverified: the test only needs whom it names).
fn subject_of(id_token: &str) -> String {
    use base64::Engine;
    let payload = id_token.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["sub"].as_str().unwrap().to_string()
}

fn inbound_consents(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    crate::support::server::inbound_command("consents", data_dir, args)
}

#[tokio::test]
async fn an_administrator_revokes_consents_and_the_client_stays() {
    let server = start_server(QUICKSTART).await;
    let cli = server.client_id("billing-cli");
    // alice and bob consent to the CLI.
    let (mut refresh, mut subjects) = (Vec::new(), Vec::new());
    for (user, password) in [("alice", "wonderland"), ("bob", "builder")] {
        let (challenge, verifier) = pkce();
        let url = authorize_url(&server, &cli, "openid billing:read", &challenge, "");
        let code = code_for(&server.base, &mut Agent::new(), &url, (user, password), &[]).await;
        let tokens = exchange(&server, &cli, &code, &verifier).await;
        assert_eq!(tokens.status, 200, "{}", tokens.json);
        refresh.push(tokens.json["refresh_token"].as_str().unwrap().to_string());
        subjects.push(subject_of(tokens.json["id_token"].as_str().unwrap()));
    }
    let (ok, out, err) = inbound_consents(&server.data_dir, &["list", "--output", "json", "--client-id", &cli]);
    assert!(ok, "{err}");
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.len(), 2, "{out}");
    assert!(listed.iter().all(|c| c["scopes"] == serde_json::json!(["billing:read"])), "{out}");
    assert!(listed.iter().all(|c| c["granted_by"] == c["subject"]), "each user granted their own: {out}");
    let alice = subjects[0].clone();
    assert!(listed.iter().any(|c| c["subject"] == alice.as_str()), "{out}");
    let (ok, table, _) = inbound_consents(&server.data_dir, &["list", "--scope", "billing:read"]);
    assert!(ok && table.starts_with("CONSENT ID") && table.lines().count() == 3, "{table}");

    // Revoking needs a filter; a dry run changes nothing.
    let (ok, _, err) = inbound_consents(&server.data_dir, &["revoke"]);
    assert!(!ok && err.contains("give at least one filter"), "{err}");
    let (ok, out, _) = inbound_consents(&server.data_dir, &["revoke", "--subject", &alice, "--dry-run"]);
    assert!(ok && out.contains("would revoke"), "{out}");
    let audit = server.data_dir.join("cli-audit.jsonl");
    let audit_arg = audit.to_str().unwrap();
    let (ok, out, err) =
        inbound_consents(&server.data_dir, &["revoke", "--subject", &alice, "--audit-file", audit_arg]);
    assert!(ok && out.contains("revoked "), "{out}{err}");

    // alice's grant is gone (her refresh token with it); bob's and the client stay.
    let refresh_with =
        |token: &str| form(&[("grant_type", "refresh_token"), ("client_id", &cli), ("refresh_token", token)]);
    server.post("/token", None, &refresh_with(&refresh[0])).await.assert_error(400, "invalid_grant");
    assert_eq!(server.post("/token", None, &refresh_with(&refresh[1])).await.status, 200, "bob's grant stays");
    let (_, out, _) = inbound_consents(&server.data_dir, &["list", "--output", "json"]);
    assert_eq!(serde_json::from_str::<Vec<Value>>(&out).unwrap().len(), 1, "{out}");
    let (challenge, _) = pkce();
    let mut agent = Agent::new();
    let page = agent.get(&authorize_url(&server, &cli, "openid billing:read", &challenge, "")).await;
    let page = agent.login(&server.base, &page, "alice", "wonderland").await;
    assert!(page.body.contains("action=\"/consent\""), "alice is asked again: {}", page.body);

    // The revocation is in the audit trail, as an administrator's.
    let record: Value = serde_json::from_str(std::fs::read_to_string(&audit).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!((record["event"].as_str(), record["revoked_by"].as_str()), (Some("consent_revoked"), Some("admin")));
    assert_eq!(record["subject"], alice.as_str());
    server.running.stop().await;
}
