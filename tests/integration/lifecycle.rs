//! Configuration reloads, restarts, and the binary as a user runs it.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::server::{QUICKSTART, start_on, start_server};

const GRANTS_WITHOUT_REFUND: &str = r#"
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: billing-agent-billing, namespace: default}
spec:
  subject: {kind: InboundApp, name: billing-agent}
  scopes: [billing:read]
  resources: ["https://billing.example.com"]
  tenants: [acme]
"#;

#[tokio::test]
async fn edits_are_live_and_invalid_edits_keep_the_last_good_catalog() {
    let server = start_server(QUICKSTART).await;
    assert_eq!(server.token("billing-agent", "").await.json["scope"], "billing:read billing:refund");

    server.edit("grants.yaml", GRANTS_WITHOUT_REFUND).await;
    assert_eq!(server.token("billing-agent", "").await.json["scope"], "billing:read");
    server.token("reporting-job", "").await.assert_error(400, "unauthorized_client");

    // An invalid edit: a grant naming an app that does not exist. Nothing changes.
    let before = server.running.state.catalog.load_full();
    std::fs::write(
        server.config_dir.join("grants.yaml"),
        GRANTS_WITHOUT_REFUND.replace("name: billing-agent}", "name: ghost}"),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(std::sync::Arc::ptr_eq(&before, &server.running.state.catalog.load_full()), "last good catalog kept");
    assert_eq!(server.token("billing-agent", "").await.json["scope"], "billing:read");
    server.running.stop().await;
}

#[tokio::test]
async fn expired_or_deleted_grants_and_deleted_apps_stop_at_once() {
    let server = start_server(QUICKSTART).await;
    let token = server.token("billing-agent", "").await.json["access_token"].as_str().unwrap().to_string();

    server
        .edit(
            "grants.yaml",
            &GRANTS_WITHOUT_REFUND.replace("tenants: [acme]", "tenants: [acme]\n  expiresAt: \"2020-01-01T00:00:00Z\""),
        )
        .await;
    server.token("billing-agent", "").await.assert_error(400, "unauthorized_client");

    // Delete the app (and its grant): its tokens are no longer issued nor active.
    let apps = std::fs::read_to_string(server.config_dir.join("apps.yaml")).unwrap();
    let reporting_only =
        apps.split("\n---\n").filter(|doc| !doc.contains("name: billing-agent")).collect::<Vec<_>>().join("\n---\n");
    std::fs::write(server.config_dir.join("grants.yaml"), "").unwrap();
    server.edit("apps.yaml", &reporting_only).await;
    assert_eq!(server.introspect("reporting-job", &token).await["active"], false);
    let (id, secret) = server.creds("billing-agent");
    server
        .post("/token", Some((&id, &secret)), "grant_type=client_credentials")
        .await
        .assert_error(401, "invalid_client");
    server.running.stop().await;
}

#[tokio::test]
async fn state_survives_a_restart() {
    let issuer = Some("https://auth.example.test");
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let first = start_on(std::path::Path::new(QUICKSTART), &data_dir, issuer).await;
    let (id, secret) = first.creds("billing-agent");
    let token = first.token("billing-agent", "").await.json["access_token"].as_str().unwrap().to_string();
    let opaque = first.token("reporting-job", "").await.json["access_token"].as_str().unwrap().to_string();
    let jwks = first.get("/jwks").await.json;
    first.running.stop().await;

    let second = start_on(std::path::Path::new(QUICKSTART), &data_dir, issuer).await;
    assert_eq!(second.creds("billing-agent"), (id.clone(), secret.clone()), "same client id and secret");
    assert_eq!(second.get("/jwks").await.json, jwks, "same signing key");
    assert_eq!(second.token("billing-agent", "").await.status, 200);
    // Tokens issued before the restart are still active.
    assert_eq!(second.introspect("reporting-job", &opaque).await["active"], true);
    assert_eq!(second.introspect("billing-agent", &token).await["active"], true);
    second.running.stop().await;
}

#[tokio::test]
async fn a_lost_credentials_file_gets_a_new_secret_and_the_old_one_stops_working() {
    let first = start_server(QUICKSTART).await;
    let (id, old_secret) = first.creds("billing-agent");
    let data_dir = first.data_dir.clone();
    let keep = tempfile::tempdir().unwrap();
    crate::support::server::copy_dir(&first.config_dir, keep.path());
    first.running.stop().await;
    std::fs::remove_file(data_dir.join("credentials/default/billing-agent-credentials/client_secret")).unwrap();

    let second = start_on(keep.path(), &data_dir, None).await;
    let (same_id, new_secret) = second.creds("billing-agent");
    assert_eq!(same_id, id);
    assert_ne!(new_secret, old_secret);
    second
        .post("/token", Some((&id, &old_secret)), "grant_type=client_credentials")
        .await
        .assert_error(401, "invalid_client");
    assert_eq!(second.post("/token", Some((&id, &new_secret)), "grant_type=client_credentials").await.status, 200);
    second.running.stop().await;
}

/// Runs `inbound serve` as the README does, runs the curl commands it prints, and checks
/// that no secret or token reaches the logs.
#[test]
fn the_binary_prints_working_commands_and_never_logs_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_inbound"))
        .args(["serve", "--config", QUICKSTART, "--listen", "127.0.0.1:0"])
        .current_dir(tmp.path())
        .env("INBOUND_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    let started = Instant::now();
    while !banner.contains("/introspect") {
        assert!(started.elapsed() < Duration::from_secs(20), "banner not printed: {banner}");
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        banner.push_str(&line);
    }
    let command_after = |label: &str| -> String {
        let pos = banner.find(label).unwrap_or_else(|| panic!("{label} missing from:\n{banner}"));
        banner[pos..].lines().nth(1).unwrap().trim().to_string()
    };
    // Derived from the folder: its public app, its users (passwords are only hashes there).
    assert!(
        banner.contains(
            "sign in as a user (default/billing-cli, authorization code + PKCE; DevelopmentUser alice or bob):"
        ),
        "{banner}"
    );
    assert!(banner.contains("get a token (default/billing-agent, client_credentials):"), "{banner}");
    let get_token = command_after("get a token");
    let introspect = command_after("introspect it:");
    let script = format!("set -e\n{get_token}\necho \"$TOKEN\"\n{introspect}\n");
    let output = Command::new("sh").arg("-c").arg(&script).current_dir(tmp.path()).output().unwrap();
    let stdout_text = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{script}\n{stdout_text}");
    let mut lines = stdout_text.lines();
    let token = lines.next().unwrap().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {stdout_text}");
    let introspection: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(introspection["active"], true);

    // The user flow the banner prints: open the URL, log in, consent, exchange the code.
    let open = banner.lines().find_map(|l| l.trim().strip_prefix("open ")).expect("an authorization URL").to_string();
    let exchange = command_after("exchange the code:");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let base = open.split("/authorize").next().unwrap().to_string();
    let code = runtime.block_on(async {
        let mut agent = crate::support::user_agent::Agent::new();
        let login = agent.get(&open).await;
        let consent = agent.login(&base, &login, "alice", "wonderland").await;
        let done = agent.approve(&base, &consent, &["profile", "email"]).await;
        done.redirect_param("code").expect("a code")
    });
    let output = Command::new("sh").arg("-c").arg(exchange.replace("PASTE_CODE", &code)).output().unwrap();
    let tokens: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for field in ["access_token", "id_token", "refresh_token"] {
        assert!(tokens[field].is_string(), "{field} missing: {tokens}");
    }

    // The device flow the banner prints: start, approve at /device, fetch the tokens.
    let start = command_after("device flow (default/billing-cli");
    let output = Command::new("sh").arg("-c").arg(&start).output().unwrap();
    let started: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let user_code = started["user_code"].as_str().unwrap_or_else(|| panic!("{start}: {started}")).to_string();
    runtime.block_on(async {
        let mut agent = crate::support::user_agent::Agent::new();
        let login = agent.post(&format!("{base}/device"), &[("user_code", &user_code)]).await;
        let consent = agent.login(&base, &login, "alice", "wonderland").await;
        let done = agent.approve(&base, &consent, &[]).await;
        assert!(done.body.contains("Device connected"), "{}", done.body);
    });
    let fetch =
        command_after("then fetch the tokens:").replace("PASTE_DEVICE_CODE", started["device_code"].as_str().unwrap());
    let output = Command::new("sh").arg("-c").arg(&fetch).output().unwrap();
    let tokens: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(tokens["access_token"].is_string() && tokens["refresh_token"].is_string(), "{fetch}: {tokens}");

    // A failed attempt with a wrong secret must not log it either.
    let issuer = banner.lines().find_map(|l| l.trim().strip_prefix("issuer")).unwrap().trim().to_string();
    let wrong = Command::new("curl")
        .args([
            "-s",
            "-u",
            "someone:Sup3rS3cretGuess",
            "-d",
            "grant_type=client_credentials",
            &format!("{issuer}/token"),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("invalid_client"));

    // Stopped as Kubernetes or Ctrl-C stops it: the audit writer flushes what it holds
    // (records reach the sinks in batches a few milliseconds apart; SIGKILL may lose the last).
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let mut logs = String::new();
    child.stderr.take().unwrap().read_to_string(&mut logs).unwrap();
    // After the banner, standard output is the audit trail: JSON lines only.
    let mut trail = String::new();
    stdout.read_to_string(&mut trail).unwrap();
    child.wait().unwrap();
    for line in trail.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(record["version"], 1, "{record}");
    }
    for event in ["client_secret_issued", "token_issued", "introspection", "login_succeeded", "token_refused"] {
        assert!(trail.contains(&format!("\"event\":\"{event}\"")), "{event} missing from the trail:\n{trail}");
    }
    logs.push_str(&trail);
    let secret_file = tmp.path().join(".inbound/credentials/default/billing-agent-credentials/client_secret");
    let secret = std::fs::read_to_string(secret_file).unwrap();
    assert!(logs.contains("client secret issued"), "logs were captured:\n{logs}");
    assert!(!logs.contains("request refused") || logs.contains("invalid_client"));
    for leaked in [
        secret.as_str(),
        token.as_str(),
        "Sup3rS3cretGuess",
        "wonderland",
        code.as_str(),
        tokens["refresh_token"].as_str().unwrap(),
        tokens["access_token"].as_str().unwrap(),
    ] {
        assert!(!logs.contains(leaked), "a secret or token reached the logs or the audit trail:\n{logs}");
    }
    assert!(!banner.contains(&secret), "the banner points to the secret file, never prints it");
}
