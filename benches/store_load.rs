//! PostgreSQL-mode load: authorization-code exchanges and refresh rotations per second
//! against a running `inbound serve --store postgres://...`, with p50/p99, and the bytes of
//! table + index per active refresh token. Driven by `benches/bench-postgres.sh`.
//!
//! Environment: INBOUND_BENCH_BASE (server URL), INBOUND_BENCH_STORE (PostgreSQL URL),
//! INBOUND_BENCH_CLIENT_ID (a public client with authorization_code + refresh_token),
//! INBOUND_BENCH_SECONDS (per phase, default 10), INBOUND_BENCH_CONCURRENCY (default 32).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use inbound::secrets::{random_token, token_digest};
use inbound::store::{AuthorizationCode, RefreshToken, Store};
use oauth2::reqwest;

#[path = "support/seed.rs"]
mod seed;
use seed::now;

fn env(name: &str, default: Option<&str>) -> String {
    std::env::var(name).ok().or(default.map(str::to_string)).unwrap_or_else(|| panic!("{name} is required"))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(name: &str, latencies: &mut [Duration], errors: usize, elapsed: Duration) {
    latencies.sort();
    println!(
        "| {name} | {:.0} | {:.2} | {:.2} | {errors} |",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(latencies, 0.5),
        percentile(latencies, 0.99)
    );
}

async fn post(http: &reqwest::Client, url: &str, body: String) -> Option<serde_json::Value> {
    let response =
        http.post(url).header("content-type", "application/x-www-form-urlencoded").body(body).send().await.ok()?;
    if !response.status().is_success() {
        // The first refusal is shown (an OAuth error body: no secret in it), so that a run
        // of errors says why.
        static SHOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let status = response.status();
        if !SHOWN.swap(true, std::sync::atomic::Ordering::Relaxed) {
            eprintln!("first refusal: {status} {}", response.text().await.unwrap_or_default());
        }
        return None;
    }
    serde_json::from_slice(&response.bytes().await.ok()?).ok()
}

/// A refresh token opening a new family, valid for a day.
fn new_family(client_id: &str, subject: &str, consent_id: &str) -> RefreshToken {
    RefreshToken {
        family_id: random_token(16),
        client_id: client_id.to_string(),
        subject: subject.to_string(),
        consent_id: consent_id.to_string(),
        tenant_consent_id: None,
        scopes: vec!["billing:read".into()],
        resources: vec![],
        tenant: Some("acme".into()),
        auth_time: now(),
        expires_at: now() + 86_400,
    }
}

#[tokio::main]
async fn main() {
    let base = env("INBOUND_BENCH_BASE", None);
    let store_url = env("INBOUND_BENCH_STORE", None);
    let client_id = env("INBOUND_BENCH_CLIENT_ID", None);
    let seconds: u64 = env("INBOUND_BENCH_SECONDS", Some("10")).parse().unwrap();
    let concurrency: usize = env("INBOUND_BENCH_CONCURRENCY", Some("32")).parse().unwrap();
    let store: Arc<dyn Store> = inbound::store::open(Some(&store_url), std::path::Path::new("unused")).await.unwrap();
    let (subject, consent) = seed::alice_consented_to(store.as_ref(), &client_id).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .pool_idle_timeout(std::time::Duration::from_secs(5)) // under the server's 10 s idle close
        .build()
        .unwrap();
    let token_url = format!("{base}/token");
    println!("| operation ({concurrency} concurrent) | per second | p50 ms | p99 ms | errors |\n|---|---|---|---|---|");

    // Phase 1: authorization-code exchange (codes seeded in the store, as /authorize would).
    let verifier = random_token(32);
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()));
    let (code_client, code_subject, code_consent, code_challenge) =
        (client_id.clone(), subject.clone(), consent.id.clone(), challenge.clone());
    let code_for = move |code: &str| {
        let record = AuthorizationCode {
            client_id: code_client.clone(),
            redirect_uri: "http://127.0.0.1/callback".into(),
            redirect_uri_given: true,
            code_challenge: code_challenge.clone(),
            nonce: None,
            scopes: vec!["billing:read".into()],
            resources: vec![],
            tenant: Some("acme".into()),
            subject: code_subject.clone(),
            auth_time: now(),
            consent_id: code_consent.clone(),
            tenant_consent_id: None,
            expires_at: now() + 600,
        };
        (token_digest(code), record)
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, url, store, client_id, verifier) =
            (http.clone(), token_url.clone(), store.clone(), client_id.clone(), verifier.clone());
        let code_for = code_for.clone();
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                let code = random_token(32);
                let (digest, record) = code_for(&code);
                store.put_code(&digest, &record).await.unwrap();
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs([
                        ("grant_type", "authorization_code"),
                        ("client_id", &client_id),
                        ("code", &code),
                        ("redirect_uri", "http://127.0.0.1/callback"),
                        ("code_verifier", &verifier),
                    ])
                    .finish();
                let t = Instant::now();
                match post(&http, &url, body).await {
                    Some(_) => latencies.push(t.elapsed()),
                    None => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    report("authorization_code exchange", &mut latencies, errors, started.elapsed());

    // Phase 2: refresh rotation, each worker following its own chain.
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let first = random_token(32);
        let token = new_family(&client_id, &subject, &consent.id);
        store.put_refresh_token(&token_digest(&first), &token).await.unwrap();
        let (http, url, client_id) = (http.clone(), token_url.clone(), client_id.clone());
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors, mut current) = (Vec::new(), 0usize, first);
            while Instant::now() < deadline {
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs([
                        ("grant_type", "refresh_token"),
                        ("client_id", &client_id),
                        ("refresh_token", &current),
                    ])
                    .finish();
                let t = Instant::now();
                match post(&http, &url, body).await {
                    Some(json) => {
                        latencies.push(t.elapsed());
                        current = json["refresh_token"].as_str().unwrap().to_string();
                    }
                    None => {
                        errors += 1;
                        break;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    report("refresh_token rotation", &mut latencies, errors, started.elapsed());

    // Phase 3: storage per active refresh token (table + indexes), over 100k new tokens.
    let size = |store: Arc<dyn Store>| async move {
        store.storage_bytes(&["refresh_tokens", "refresh_families"]).await.unwrap()
    };
    let before = size(store.clone()).await;
    let n = 100_000;
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (store, client_id, subject, consent_id) =
            (store.clone(), client_id.clone(), subject.clone(), consent.id.clone());
        tasks.push(tokio::spawn(async move {
            for _ in (w..n).step_by(16) {
                let token = new_family(&client_id, &subject, &consent_id);
                store.put_refresh_token(&token_digest(&random_token(32)), &token).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = size(store.clone()).await;
    println!(
        "\nrefresh tokens: {} bytes of table + index per active token ({n} tokens, {:.1} MiB)",
        (after - before) / n as i64,
        (after - before) as f64 / 1_048_576.0
    );
}
