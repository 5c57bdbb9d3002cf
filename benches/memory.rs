//! Server memory per live token (issue #17), against a running `inbound serve`: its RSS
//! before and after it issued N opaque access tokens, after it introspected each of them
//! once (which memoizes their rows), and after it issued N refresh tokens (authorization-code
//! exchanges, each opening a grant family; the codes are seeded in the store as /authorize
//! would record them). oidc-provider, which keeps tokens in its own heap, grows ~113 MiB
//! per 100k. Driven by `benches/memory.sh`.
//!
//! Environment: INBOUND_BENCH_BASE (server URL), INBOUND_BENCH_PID (its process),
//! INBOUND_BENCH_STORE (its store: a PostgreSQL URL or the SQLite file), INBOUND_BENCH_OPAQUE
//! (HTTP Basic credentials of an app issuing opaque tokens), INBOUND_BENCH_CLIENT_ID (a public
//! client with authorization_code + refresh_token), INBOUND_BENCH_TOKENS (default 100000),
//! INBOUND_BENCH_CONCURRENCY (default 16).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use inbound::secrets::{random_token, token_digest};
use inbound::store::{AuthorizationCode, Store};
use oauth2::reqwest;

#[path = "support/seed.rs"]
mod seed;
use seed::now;

fn env(name: &str, default: Option<&str>) -> String {
    std::env::var(name).ok().or(default.map(str::to_string)).unwrap_or_else(|| panic!("{name} is required"))
}

/// VmRSS and RssAnon of `pid`, in KiB.
fn rss(pid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server is running");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

struct Table {
    pid: String,
    tokens: usize,
    last: (u64, u64),
}

impl Table {
    fn row(&mut self, state: &str, per_token_step: bool) {
        let now = rss(&self.pid);
        let growth = |after: u64, before: u64| {
            let per_100k = (after as f64 - before as f64) / 1024.0 * 100_000.0 / self.tokens as f64;
            format!("{per_100k:+.1}")
        };
        let (rss_growth, anon_growth) = if per_token_step {
            (growth(now.0, self.last.0), growth(now.1, self.last.1))
        } else {
            ("".into(), "".into())
        };
        println!(
            "| {state} | {:.1} | {:.1} | {rss_growth} | {anon_growth} |",
            now.0 as f64 / 1024.0,
            now.1 as f64 / 1024.0
        );
        self.last = now;
    }
}

/// POSTs a form; the JSON answer, or the status and body of a refusal (which ends the run).
async fn post(http: &reqwest::Client, url: &str, basic: Option<&str>, body: String) -> serde_json::Value {
    let mut request = http.post(url).header("content-type", "application/x-www-form-urlencoded").body(body);
    if let Some(basic) = basic {
        request = request.header("authorization", format!("Basic {basic}"));
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let bytes = response.bytes().await.expect("a body");
    assert!(status.is_success(), "{url}: {status} {}", String::from_utf8_lossy(&bytes));
    serde_json::from_slice(&bytes).expect("JSON")
}

/// Runs `work(i)` for i in 0..n over `concurrency` tasks.
async fn spread<F, Fut>(n: usize, concurrency: usize, work: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let work = Arc::new(work);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, work) = (next.clone(), work.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    work(i).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a worker");
    }
}

#[tokio::main]
async fn main() {
    let base = env("INBOUND_BENCH_BASE", None);
    let pid = env("INBOUND_BENCH_PID", None);
    let store_url = env("INBOUND_BENCH_STORE", None);
    let opaque_basic = env("INBOUND_BENCH_OPAQUE", None);
    let client_id = env("INBOUND_BENCH_CLIENT_ID", None);
    let tokens: usize = env("INBOUND_BENCH_TOKENS", Some("100000")).parse().unwrap();
    let concurrency: usize = env("INBOUND_BENCH_CONCURRENCY", Some("16")).parse().unwrap();
    let store: Arc<dyn Store> = if store_url.starts_with("postgres") {
        inbound::store::open(Some(&store_url), std::path::Path::new("unused")).await.unwrap()
    } else {
        inbound::store::open(None, std::path::Path::new(&store_url)).await.unwrap()
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .pool_idle_timeout(std::time::Duration::from_secs(5)) // under the server's 10 s idle close
        .build()
        .unwrap();
    let (token_url, introspect_url) = (format!("{base}/token"), format!("{base}/introspect"));

    println!("| server state | RSS MB | RssAnon MB | RSS growth per 100k, MB | RssAnon growth per 100k, MB |");
    println!("|---|---|---|---|---|");
    let mut table = Table { pid: pid.clone(), tokens, last: rss(&pid) };
    // Warm-up: every code path of the phases below, allocator arenas, connection pools.
    for _ in 0..200 {
        let issued = post(&http, &token_url, Some(&opaque_basic), "grant_type=client_credentials".into()).await;
        let token = issued["access_token"].as_str().unwrap();
        post(&http, &introspect_url, Some(&opaque_basic), format!("token={token}")).await;
    }
    table.row("started, warmed up (200 opaque tokens)", false);

    // Phase 1: N opaque access tokens issued, then each introspected once.
    let issued = Arc::new(std::sync::Mutex::new(Vec::with_capacity(tokens)));
    {
        let (http, url, basic, issued) = (http.clone(), token_url.clone(), opaque_basic.clone(), issued.clone());
        spread(tokens, concurrency, move |_| {
            let (http, url, basic, issued) = (http.clone(), url.clone(), basic.clone(), issued.clone());
            async move {
                let answer = post(&http, &url, Some(&basic), "grant_type=client_credentials".into()).await;
                issued.lock().unwrap().push(answer["access_token"].as_str().unwrap().to_string());
            }
        })
        .await;
    }
    table.row(&format!("+ {tokens} opaque access tokens issued"), true);
    let issued = Arc::new(std::mem::take(&mut *issued.lock().unwrap()));
    {
        let (http, url, basic, issued) = (http.clone(), introspect_url.clone(), opaque_basic.clone(), issued.clone());
        spread(tokens, concurrency, move |i| {
            let (http, url, basic, issued) = (http.clone(), url.clone(), basic.clone(), issued.clone());
            async move {
                let answer = post(&http, &url, Some(&basic), format!("token={}", issued[i])).await;
                assert_eq!(answer["active"], true, "{answer}");
            }
        })
        .await;
    }
    table.row("+ each of them introspected once (memoized, within the memo's 16 MiB budget)", true);

    // Phase 2: N refresh tokens, each from an authorization-code exchange.
    let (subject, consent) = seed::alice_consented_to(store.as_ref(), &client_id).await;
    let verifier = Arc::new(random_token(32));
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()));
    let record = Arc::new(AuthorizationCode {
        client_id: client_id.clone(),
        redirect_uri: "http://127.0.0.1/callback".into(),
        redirect_uri_given: true,
        code_challenge: challenge,
        nonce: None,
        scopes: vec!["billing:read".into()],
        resources: vec![],
        tenant: Some("acme".into()),
        subject,
        auth_time: now(),
        consent_id: consent.id.clone(),
        tenant_consent_id: None,
        expires_at: now() + 3600,
    });
    {
        let (http, url, client_id) = (http.clone(), token_url.clone(), client_id.clone());
        spread(tokens, concurrency, move |_| {
            let (http, url, client_id, store, record, verifier) =
                (http.clone(), url.clone(), client_id.clone(), store.clone(), record.clone(), verifier.clone());
            async move {
                let code = random_token(32);
                store.put_code(&token_digest(&code), &record).await.unwrap();
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs([
                        ("grant_type", "authorization_code"),
                        ("client_id", client_id.as_str()),
                        ("code", code.as_str()),
                        ("redirect_uri", "http://127.0.0.1/callback"),
                        ("code_verifier", verifier.as_str()),
                    ])
                    .finish();
                let answer = post(&http, &url, None, body).await;
                assert!(answer["refresh_token"].is_string(), "{answer}");
            }
        })
        .await;
    }
    table.row(&format!("+ {tokens} refresh tokens issued (code exchanges)"), true);
}
