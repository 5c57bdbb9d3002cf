//! Several replicas on one PostgreSQL: two real `inbound serve` processes sharing the store
//! (and, as replicas share a Secret, the signing keys); the database restarted under load;
//! expired state purged in the background.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::flows::{code_for, pkce};
use crate::support::postgres::Postgres;
use crate::support::server::{QUICKSTART, form, start_server_with};
use crate::support::user_agent::Agent;

const ISSUER: &str = "http://inbound.test";
const REDIRECT: &str = "http://127.0.0.1:45321/callback";

struct Replica {
    child: Child,
    base: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replica_of(config: &std::path::Path, data_dir: &std::path::Path, store: &str) -> Replica {
    let child = Command::new(env!("CARGO_BIN_EXE_inbound"))
        .args(["serve", "--listen", "127.0.0.1:0", "--issuer", ISSUER, "--store", store])
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Owned by the guard from here on: killed and reaped whatever happens.
    let mut replica = Replica { child, base: String::new() };
    let mut stdout = BufReader::new(replica.child.stdout.take().unwrap());
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(30), "replica did not start");
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "replica exited");
        if let Some(addr) = line.trim().strip_prefix("listening ") {
            replica.base = format!("http://{}", addr.trim());
            // Keep draining stdout so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in stdout.lines() {});
            return replica;
        }
    }
}

async fn post(http: &oauth2::reqwest::Client, url: String, body: String) -> (u16, serde_json::Value) {
    let response =
        http.post(url).header("content-type", "application/x-www-form-urlencoded").body(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or_default())
}

fn authorize_url(base: &str, client_id: &str, challenge: &str) -> String {
    format!(
        "{base}/authorize?{}",
        form(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("scope", "openid billing:read"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ])
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_codes_refresh_families_and_consents() {
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    // Both replicas start at the same moment on an empty database: they must agree on
    // object UIDs and on one client secret per app.
    let url = pg.url();
    // The quickstart plus a policy enabling self-registration.
    let config = data.path().join("config");
    crate::support::server::copy_dir(std::path::Path::new(QUICKSTART), &config);
    std::fs::write(
        config.join("registration.yaml"),
        crate::support::flows::registration_policy("https://mcp.example.com/mcp", ""),
    )
    .unwrap();
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| replica_of(&config, data.path(), &url));
        let b = scope.spawn(|| replica_of(&config, data.path(), &url));
        (a.join().unwrap(), b.join().unwrap())
    });
    let secret_dir = data.path().join("credentials/default/billing-agent-credentials");
    let id = std::fs::read_to_string(secret_dir.join("client_id")).unwrap();
    let secret = std::fs::read_to_string(secret_dir.join("client_secret")).unwrap();
    let cli =
        std::fs::read_to_string(data.path().join("credentials/default/billing-cli-credentials/client_id")).unwrap();
    let http = oauth2::reqwest::Client::new();
    for replica in [&a, &b] {
        let response = http
            .post(format!("{}/token", replica.base))
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "the one secret works at {}", replica.base);
    }
    let mut agent = Agent::new();

    let exchange = |base: &str, code: &str, verifier: &str| {
        let body = form(&[
            ("grant_type", "authorization_code"),
            ("client_id", &cli),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ]);
        post(&http, format!("{base}/token"), body)
    };

    // A code issued by A is redeemed at B.
    let (challenge, verifier) = pkce();
    let code =
        code_for(&a.base, &mut agent, &authorize_url(&a.base, &cli, &challenge), ("alice", "wonderland"), &[]).await;
    let (status, tokens) = exchange(&b.base, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");

    // A code redeemed at both replicas at once: exactly one succeeds.
    for _ in 0..5 {
        let (challenge, verifier) = pkce();
        let code =
            code_for(&a.base, &mut agent, &authorize_url(&a.base, &cli, &challenge), ("alice", "wonderland"), &[])
                .await;
        let (ra, rb) = tokio::join!(exchange(&a.base, &code, &verifier), exchange(&b.base, &code, &verifier));
        let wins = [ra.0, rb.0].iter().filter(|s| **s == 200).count();
        assert_eq!(wins, 1, "{ra:?} {rb:?}");
    }

    // A refresh token used at both at once: one rotation, and the reuse revokes the family.
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let body = form(&[("grant_type", "refresh_token"), ("client_id", &cli), ("refresh_token", &refresh)]);
    let (ra, rb) = tokio::join!(
        post(&http, format!("{}/token", a.base), body.clone()),
        post(&http, format!("{}/token", b.base), body.clone())
    );
    let winner = [&ra, &rb].into_iter().find(|r| r.0 == 200).expect("one rotation succeeds");
    assert_eq!([ra.0, rb.0].iter().filter(|s| **s == 200).count(), 1, "{ra:?} {rb:?}");
    let successor = winner.1["refresh_token"].as_str().unwrap();
    let body = form(&[("grant_type", "refresh_token"), ("client_id", &cli), ("refresh_token", successor)]);
    let (status, error) = post(&http, format!("{}/token", a.base), body).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_grant")), "family revoked by the reuse");

    // Consent revoked at A: refresh fails at B at once.
    let (challenge, verifier) = pkce();
    let code =
        code_for(&a.base, &mut agent, &authorize_url(&a.base, &cli, &challenge), ("alice", "wonderland"), &[]).await;
    let (_, fresh) = exchange(&a.base, &code, &verifier).await;
    let apps = agent.get(&format!("{}/account/api/apps", a.base)).await;
    let id =
        serde_json::from_str::<serde_json::Value>(&apps.body).unwrap()["apps"][0]["id"].as_str().unwrap().to_string();
    let deleted = agent
        .http
        .delete(format!("{}/account/api/apps/{id}", a.base))
        .header("cookie", agent.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let body = form(&[
        ("grant_type", "refresh_token"),
        ("client_id", &cli),
        ("refresh_token", fresh["refresh_token"].as_str().unwrap()),
    ]);
    let (status, _) = post(&http, format!("{}/token", b.base), body).await;
    assert_eq!(status, 400);

    // A client registered (RFC 7591) at A is usable at B: a code from A, redeemed at B.
    let registered = http
        .post(format!("{}/register", a.base))
        .header("content-type", "application/json")
        .body(
            serde_json::json!({
                "client_name": "Replicated", "redirect_uris": ["http://127.0.0.1/callback"],
                "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none",
                "scope": "billing:read"
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let registered: serde_json::Value = serde_json::from_slice(&registered.bytes().await.unwrap()).unwrap();
    let dcr = registered["client_id"].as_str().unwrap().to_string();
    let (challenge, verifier) = pkce();
    let url = format!(
        "{}/authorize?{}",
        a.base,
        form(&[
            ("response_type", "code"),
            ("client_id", &dcr),
            ("redirect_uri", REDIRECT),
            ("scope", "billing:read"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
    );
    let code = code_for(&a.base, &mut agent, &url, ("alice", "wonderland"), &[]).await;
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("client_id", &dcr),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &verifier),
    ]);
    let (status, tokens) = post(&http, format!("{}/token", b.base), body).await;
    assert_eq!(status, 200, "{tokens}");
    // Managed at B with the token A issued.
    let read = http
        .get(format!("{}/register/{dcr}", b.base))
        .bearer_auth(registered["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_restart_fails_with_503_then_recovers_without_losing_state() {
    let pg = Postgres::start();
    let server = start_server_with(QUICKSTART, Some(pg.url()), Duration::from_secs(5), |_| {}).await;
    let cli =
        std::fs::read_to_string(server.data_dir.join("credentials/default/billing-cli-credentials/client_id")).unwrap();
    let mut agent = Agent::new();
    let (challenge, verifier) = pkce();
    let code = code_for(
        &server.base,
        &mut agent,
        &crate::support::flows::authorize_url(&server, &cli, "openid billing:read", &challenge, ""),
        ("alice", "wonderland"),
        &[],
    )
    .await;
    let tokens = crate::support::flows::exchange(&server, &cli, &code, &verifier).await;
    let refresh = tokens.json["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(server.token("reporting-job", "").await.status, 200);

    pg.stop_server();
    // State that needs the database: 503 temporarily_unavailable, quickly.
    let started = Instant::now();
    server.token("reporting-job", "").await.assert_error(503, "temporarily_unavailable");
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast while the database is down");
    // Readiness is local: the outage of the shared store must not take every replica out of
    // the Service; the metric says it.
    assert_eq!(server.get("/readyz").await.status, 200);
    let store_down = async {
        for _ in 0..50 {
            let metrics = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
            if metrics.contains("inbound_store_up 0") {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(store_down.await, "inbound_store_up reports the outage");
    // The failed calls are counted by operation: the refused token's, and the health check's.
    let text = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let scrape = crate::metrics::parse(&text);
    let errors = |operation| crate::metrics::value(&scrape, "inbound_store_errors_total", &[("operation", operation)]);
    assert!(errors("ping").is_some_and(|n| n >= 1.0), "{text}");
    assert!(errors("put_opaque_token").is_some_and(|n| n >= 1.0), "{text}");
    // Self-contained JWT access tokens are still issued.
    assert_eq!(server.token("billing-agent", "").await.status, 200);

    pg.start_server();
    let started = Instant::now();
    loop {
        let reply = server.token("reporting-job", "").await;
        if reply.status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "did not recover: {}", reply.json);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(server.get("/readyz").await.status, 200);
    // The refresh family and consent committed before the restart are intact.
    let refreshed = server
        .post(
            "/token",
            None,
            &form(&[("grant_type", "refresh_token"), ("client_id", &cli), ("refresh_token", &refresh)]),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.json);
    server.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_rows_are_purged_in_the_background_under_steady_load() {
    let pg = Postgres::start();
    // Opaque tokens that live one second; the background pass runs every 200 ms.
    let server = start_server_with(QUICKSTART, Some(pg.url()), Duration::from_millis(200), |dir| {
        let apps = std::fs::read_to_string(dir.join("apps.yaml")).unwrap();
        std::fs::write(
            dir.join("apps.yaml"),
            apps.replace("    accessTokenLifetime: 5m\n", "    accessTokenLifetime: 1s\n"),
        )
        .unwrap();
    })
    .await;
    let store = server.store().await;
    let mut issued = 0;
    let mut max_rows = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        for _ in 0..20 {
            assert_eq!(server.token("reporting-job", "").await.status, 200);
            issued += 1;
        }
        max_rows = max_rows.max(store.count_rows("opaque_tokens").await.unwrap());
    }
    // Live rows stay around one token lifetime's worth, not the total issued.
    assert!(issued > 2 * max_rows, "rows grew with the load: {max_rows} rows for {issued} tokens");
    let drained = Instant::now();
    while store.count_rows("opaque_tokens").await.unwrap() > 0 {
        assert!(drained.elapsed() < Duration::from_secs(10), "expired tokens were not purged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.running.stop().await;
}
