//! The load test of `make bench-load` (issue 17): minutes of mixed traffic at a fixed rate
//! well under capacity against one server or several replicas, driven by `benches/load.sh`.
//! Not a throughput benchmark: the point is what a steady day looks like — no errors, the
//! latency tail, memory that stays flat and store rows that the purge keeps bounded.
//!
//! Open loop: every operation has its own timer and each request is *started* on its tick,
//! whether or not earlier ones have finished (a closed loop — the next request when the last
//! one answered — slows down with the server and so hides exactly the queueing a slow
//! moment causes). Latency is measured from the tick the request was scheduled for, not
//! from when it was sent, so a stalled driver or server shows in the tail instead of
//! silently lowering the rate (no coordinated omission).
//!
//! Operations (rates per second, environment, defaults in parentheses):
//! - `RATE_CC_JWT` (150): client_credentials, ES256 JWT access tokens (client_secret_basic).
//! - `RATE_CC_OPAQUE` (80): client_credentials, opaque tokens (client_secret_post, a row each).
//! - `RATE_INTROSPECT` (100): introspection by the resource server, alternately of a recent
//!   JWT and a recent opaque token, at another replica than the one that issued it;
//!   `active` must be true.
//! - `RATE_LOGIN` (2): the authorization code flow with PKCE S256 as a browser does it: GET
//!   /authorize (login page), POST /login with the password (argon2: tens of ms of CPU, so
//!   kept at a low rate), POST /consent when the page asks, then the code exchanged at
//!   another replica. Each flow is a new browser (no session cookie) from its own address.
//! - `RATE_REFRESH` (20): refresh-token rotation of the chains the code flows opened, each
//!   rotation using the newest refresh token, at another replica than the last one.
//! - `RATE_REGISTER` (1): dynamic client registration (RFC 7591), from distinct addresses.
//!
//! Other environment: `LOAD_TARGETS` (comma-separated base URLs, the replicas),
//! `LOAD_DATA_DIR` (where `inbound serve` wrote the app credentials), `LOAD_STORE` (a SQLite
//! file path or a `postgres://` URL: row counts), `LOAD_PIDS` (`name=pid,...`: RSS),
//! `DURATION` (seconds, default 300), `LOAD_LABEL` (the title), `LOAD_CHAINS` (refresh
//! chains kept, default 200).
//!
//! Exit status 1 on any failed request; on runs of at least 180 s, also when RSS grows more
//! than 20% after the first minute or a table keeps growing in the second half.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    future::Future,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::{RequestBuilder, StatusCode, header::HeaderMap};
use serde_json::Value;

/// The redirect URI the load apps register (loopback, as a CLI's).
const REDIRECT: &str = "http://127.0.0.1/callback";
const RESOURCE: &str = "https://billing.example.com";
/// Opaque tokens of the load config live 30 s: only younger ones are introspected.
const INTROSPECT_MAX_AGE: Duration = Duration::from_secs(15);
/// Store tables counted (every table the purge or the reaper keeps bounded, and the rest).
const TABLES: &[&str] = &[
    "opaque_tokens",
    "authorization_codes",
    "pending_requests",
    "sessions",
    "refresh_tokens",
    "refresh_families",
    "consents",
    "registered_clients",
    "client_tombstones",
    "revocations",
    "client_secrets",
    "users",
];
const OPS: &[&str] = &[
    "client_credentials (JWT)",
    "client_credentials (opaque)",
    "introspect (JWT)",
    "introspect (opaque)",
    "GET /authorize (login page)",
    "POST /login (argon2)",
    "POST /consent",
    "code exchange (other replica)",
    "code flow, whole",
    "refresh rotation (other replica)",
    "register (RFC 7591)",
];

fn env(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

fn rate(name: &str, default: f64) -> f64 {
    env(name, &default.to_string()).parse().unwrap_or_else(|_| panic!("{name} is not a number"))
}

#[derive(Clone)]
struct Client {
    id: String,
    secret: Option<String>,
}

impl Client {
    fn read(data_dir: &std::path::Path, app: &str) -> Client {
        let dir = data_dir.join(format!("credentials/default/{app}-credentials"));
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok().map(|s| s.trim().to_string());
        Client {
            id: read("client_id").unwrap_or_else(|| panic!("no client_id for {app} in {dir:?}")),
            secret: read("client_secret"),
        }
    }

    /// client_secret_basic for confidential clients, client_id in the form for public ones.
    fn authenticate(&self, request: RequestBuilder, fields: &mut Vec<(&'static str, String)>) -> RequestBuilder {
        match &self.secret {
            Some(secret) => request.basic_auth(&self.id, Some(secret)),
            None => {
                fields.push(("client_id", self.id.clone()));
                request
            }
        }
    }
}

#[derive(Default)]
struct OpStats {
    latencies_us: Vec<u64>,
    errors: u64,
    skipped: u64,
}

struct Chain {
    client: usize,
    refresh: String,
    replica: usize,
}

struct Shared {
    targets: Vec<String>,
    http: reqwest::Client,
    cc_jwt: Client,
    cc_opaque: Client,
    resource_server: Client,
    /// The code-flow clients: a public CLI and a confidential web app.
    code_clients: [Client; 2],
    stats: Mutex<HashMap<&'static str, OpStats>>,
    first_errors: Mutex<Vec<String>>,
    jwts: Mutex<VecDeque<(String, usize, Instant)>>,
    opaques: Mutex<VecDeque<(String, usize, Instant)>>,
    chains: Mutex<VecDeque<Chain>>,
    max_chains: usize,
    in_flight: AtomicUsize,
    seed: AtomicU64,
}

impl Shared {
    fn record(&self, op: &'static str, since: Instant, ok: bool) {
        let mut stats = self.stats.lock().unwrap();
        let entry = stats.entry(op).or_default();
        entry.latencies_us.push(since.elapsed().as_micros() as u64);
        if !ok {
            entry.errors += 1;
        }
    }

    fn skip(&self, op: &'static str) {
        self.stats.lock().unwrap().entry(op).or_default().skipped += 1;
    }

    /// Keeps the first few failures to print (status and body; never a request, so never a
    /// secret or a token).
    fn failure(&self, op: &'static str, what: String) {
        let mut errors = self.first_errors.lock().unwrap();
        // A few of each operation: one flood must not hide another kind of failure.
        let of_op = errors.iter().filter(|e| e.starts_with(&format!("{op}:"))).count();
        if of_op < 3 && errors.len() < 20 {
            let mut what = what;
            what.truncate(600);
            errors.push(format!("{op}: {what}"));
        }
    }

    /// Sends `request` and records it under `op`, measured from `since`: Some(parts) when the
    /// status is `expected`, else an error (kept with its body) and None.
    async fn call(
        &self,
        op: &'static str,
        since: Instant,
        request: RequestBuilder,
        expected: &[u16],
    ) -> Option<(StatusCode, HeaderMap, String)> {
        let outcome = async {
            let response = request.send().await.map_err(|e| format!("request failed: {}", chain(&e)))?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.text().await.map_err(|e| format!("reading the body failed: {}", chain(&e)))?;
            if expected.contains(&status.as_u16()) {
                Ok((status, headers, body))
            } else {
                Err(format!("status {status}, body {body}"))
            }
        }
        .await;
        self.record(op, since, outcome.is_ok());
        match outcome {
            Ok(parts) => Some(parts),
            Err(what) => {
                self.failure(op, what);
                None
            }
        }
    }

    /// Like [`Shared::call`] for JSON answers with the fields `required`.
    async fn call_json(
        &self,
        op: &'static str,
        since: Instant,
        request: RequestBuilder,
        expected: u16,
        required: &[&str],
    ) -> Option<Value> {
        let response = request.send().await;
        let outcome = async {
            let response = response.map_err(|e| format!("request failed: {}", chain(&e)))?;
            let status = response.status();
            let body = response.text().await.map_err(|e| format!("reading the body failed: {}", chain(&e)))?;
            if status.as_u16() != expected {
                return Err(format!("status {status}, body {body}"));
            }
            let json: Value = serde_json::from_str(&body).map_err(|_| format!("status {status}, not JSON: {body}"))?;
            match required.iter().find(|f| json[**f].is_null()) {
                Some(missing) => Err(format!("status {status}, no {missing} in the answer")),
                None => Ok(json),
            }
        }
        .await;
        self.record(op, since, outcome.is_ok());
        match outcome {
            Ok(json) => Some(json),
            Err(what) => {
                self.failure(op, what);
                None
            }
        }
    }

    /// xorshift64*: picks and random strings, no crate needed.
    fn random(&self) -> u64 {
        let mut x = self.seed.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn random_string(&self) -> String {
        (0..4).map(|_| format!("{:016x}", self.random())).collect()
    }

    fn other(&self, replica: usize) -> usize {
        (replica + 1) % self.targets.len()
    }
}

/// An error with its causes (reqwest's own message does not say timeout or reset).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn form(fields: &[(&str, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields.iter().map(|(k, v)| (*k, v))).finish()
}

fn form_post(http: &reqwest::Client, url: String, fields: &[(&str, String)]) -> RequestBuilder {
    http.post(url).header("content-type", "application/x-www-form-urlencoded").body(form(fields))
}

/// A synthetic client address per flow (the servers trust X-Forwarded-For from loopback):
/// per-address limits are for abuse, and real users come from many addresses.
fn address(n: u64) -> String {
    format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, (n & 255).max(1))
}

/// Value of the hidden input `name` as a browser submits it.
fn field(body: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker)? + marker.len();
    let end = body[start..].find('"')?;
    Some(
        body[start..start + end]
            .replace("&#x2f;", "/")
            .replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// The consent page's preselected duration.
fn default_duration(body: &str) -> Option<String> {
    let end = body.find("\" selected>")?;
    let start = body[..end].rfind("value=\"")? + "value=\"".len();
    Some(body[start..end].to_string())
}

/// The `name=value` pairs of every Set-Cookie, as a browser would send them back.
fn cookies(jar: &mut BTreeMap<String, String>, headers: &HeaderMap) {
    for set in headers.get_all("set-cookie") {
        if let Some((name, value)) = set.to_str().ok().and_then(|s| s.split(';').next()).and_then(|p| p.split_once('='))
        {
            jar.insert(name.trim().to_string(), value.trim().to_string());
        }
    }
}

fn cookie_header(jar: &BTreeMap<String, String>) -> String {
    jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
}

async fn client_credentials(s: Arc<Shared>, since: Instant, n: u64, opaque: bool) {
    let r = n as usize % s.targets.len();
    let url = format!("{}/token", s.targets[r]);
    let mut fields = vec![
        ("grant_type", "client_credentials".to_string()),
        ("scope", "billing:read".to_string()),
        ("resource", RESOURCE.to_string()),
    ];
    let (op, request) = if opaque {
        // client_secret_post, as this app is declared.
        fields.push(("client_id", s.cc_opaque.id.clone()));
        fields.push(("client_secret", s.cc_opaque.secret.clone().unwrap_or_default()));
        ("client_credentials (opaque)", form_post(&s.http, url, &fields))
    } else {
        let request = form_post(&s.http, url, &fields);
        ("client_credentials (JWT)", s.cc_jwt.authenticate(request, &mut Vec::new()))
    };
    if let Some(json) = s.call_json(op, since, request, 200, &["access_token"]).await {
        let token = json["access_token"].as_str().unwrap_or_default().to_string();
        let pool = if opaque { &s.opaques } else { &s.jwts };
        let mut pool = pool.lock().unwrap();
        pool.push_back((token, r, Instant::now()));
        if pool.len() > 200 {
            pool.pop_front();
        }
    }
}

async fn introspect(s: Arc<Shared>, since: Instant, n: u64) {
    let opaque = n % 2 == 1;
    let op = if opaque { "introspect (opaque)" } else { "introspect (JWT)" };
    let picked = {
        let pool = if opaque { s.opaques.lock().unwrap() } else { s.jwts.lock().unwrap() };
        let fresh: Vec<_> = pool.iter().filter(|(_, _, at)| at.elapsed() < INTROSPECT_MAX_AGE).collect();
        (!fresh.is_empty()).then(|| fresh[s.random() as usize % fresh.len()].clone())
    };
    let Some((token, issued_at, _)) = picked else { return s.skip(op) };
    let url = format!("{}/introspect", s.targets[s.other(issued_at)]);
    let request = s.resource_server.authenticate(form_post(&s.http, url, &[("token", token)]), &mut Vec::new());
    if let Some(json) = s.call_json(op, since, request, 200, &["active"]).await
        && json["active"] != Value::Bool(true)
    {
        // Counted as a success by call_json; a live token reported inactive is an error.
        let mut stats = s.stats.lock().unwrap();
        stats.entry(op).or_default().errors += 1;
        drop(stats);
        s.failure(op, format!("a {}-second-old token is inactive: {json}", INTROSPECT_MAX_AGE.as_secs()));
    }
}

/// One browser signing a user in: the login page, the password, consent when asked, the
/// code; then the code exchanged at another replica. Records each step and the whole.
async fn code_flow(s: Arc<Shared>, since: Instant, n: u64) {
    let ok = code_flow_steps(&s, n).await;
    s.record("code flow, whole", since, ok);
}

async fn code_flow_steps(s: &Shared, n: u64) -> bool {
    let r = n as usize % s.targets.len();
    let base = &s.targets[r];
    let which = (n % 2) as usize;
    let client = &s.code_clients[which];
    let (user, password) = if (n / 2).is_multiple_of(2) { ("alice", "wonderland") } else { ("bob", "builder") };
    let from = address(n);
    let verifier = s.random_string();
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()));
    let state = s.random_string();
    let query = form(&[
        ("response_type", "code".to_string()),
        ("client_id", client.id.clone()),
        ("redirect_uri", REDIRECT.to_string()),
        ("scope", "openid profile billing:read".to_string()),
        ("state", state.clone()),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256".to_string()),
    ]);
    let mut jar = BTreeMap::new();
    let browser = |request: RequestBuilder, jar: &BTreeMap<String, String>| {
        let request = request.header("x-forwarded-for", &from).header("sec-fetch-site", "same-origin");
        if jar.is_empty() { request } else { request.header("cookie", cookie_header(jar)) }
    };

    let started = Instant::now();
    let request = browser(s.http.get(format!("{base}/authorize?{query}")), &jar);
    let Some((_, headers, page)) = s.call("GET /authorize (login page)", started, request, &[200]).await else {
        return false;
    };
    cookies(&mut jar, &headers);
    let (Some(request_id), Some(csrf)) = (field(&page, "request_id"), field(&page, "csrf")) else {
        s.failure("GET /authorize (login page)", "no login form in the page".to_string());
        return false;
    };
    let started = Instant::now();
    let fields = [
        ("request_id", request_id),
        ("csrf", csrf),
        ("username", user.to_string()),
        ("password", password.to_string()),
    ];
    let request = browser(form_post(&s.http, format!("{base}/login"), &fields), &jar);
    let Some((mut status, mut headers, page)) = s.call("POST /login (argon2)", started, request, &[200, 303]).await
    else {
        return false;
    };
    cookies(&mut jar, &headers);
    if status == StatusCode::OK {
        // The consent page (the first time this user meets this app): approve with the
        // preselected duration and the mandatory scopes.
        let (Some(request_id), Some(csrf), Some(duration)) =
            (field(&page, "request_id"), field(&page, "csrf"), default_duration(&page))
        else {
            s.failure("POST /login (argon2)", format!("200 without a consent form: {page}"));
            return false;
        };
        let started = Instant::now();
        let fields =
            [("request_id", request_id), ("csrf", csrf), ("decision", "approve".to_string()), ("duration", duration)];
        let request = browser(form_post(&s.http, format!("{base}/consent"), &fields), &jar);
        let Some(answer) = s.call("POST /consent", started, request, &[303]).await else { return false };
        (status, headers, _) = answer;
    }
    debug_assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers.get("location").and_then(|l| l.to_str().ok()).and_then(|l| url::Url::parse(l).ok());
    let param = |name: &str| {
        location.as_ref().and_then(|l| l.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()))
    };
    let (Some(code), Some(_iss)) = (param("code"), param("iss")) else {
        s.failure("code flow, whole", format!("no code and iss in the redirect: {:?}", param("error")));
        return false;
    };
    if param("state").as_deref() != Some(state.as_str()) {
        s.failure("code flow, whole", "state not returned".to_string());
        return false;
    }

    // The code exchanged at the other replica: codes live in the shared store.
    let exchanged_at = s.other(r);
    let mut fields = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code),
        ("redirect_uri", REDIRECT.to_string()),
        ("code_verifier", verifier),
    ];
    let request = s.http.post(format!("{}/token", s.targets[exchanged_at]));
    let request = client.authenticate(request, &mut fields);
    let request = request.header("content-type", "application/x-www-form-urlencoded").body(form(&fields));
    let required = ["access_token", "refresh_token", "id_token"];
    let Some(tokens) = s.call_json("code exchange (other replica)", Instant::now(), request, 200, &required).await
    else {
        return false;
    };
    let mut chains = s.chains.lock().unwrap();
    chains.push_back(Chain {
        client: which,
        refresh: tokens["refresh_token"].as_str().unwrap_or_default().to_string(),
        replica: exchanged_at,
    });
    // Chains beyond the pool are dropped: their families expire in the store (what a user who
    // stops using an app leaves behind).
    while chains.len() > s.max_chains {
        chains.pop_front();
    }
    true
}

/// Rotates the least recently rotated chain with its newest refresh token, at the other
/// replica. A chain is out of the pool while its rotation is in flight: two concurrent
/// rotations of one token are reuse, which (rightly) revokes the family.
async fn refresh(s: Arc<Shared>, since: Instant, _n: u64) {
    let op = "refresh rotation (other replica)";
    let Some(chain) = s.chains.lock().unwrap().pop_front() else { return s.skip(op) };
    let client = &s.code_clients[chain.client];
    let at = s.other(chain.replica);
    let mut fields = vec![("grant_type", "refresh_token".to_string()), ("refresh_token", chain.refresh)];
    let request = client.authenticate(s.http.post(format!("{}/token", s.targets[at])), &mut fields);
    let request = request.header("content-type", "application/x-www-form-urlencoded").body(form(&fields));
    if let Some(tokens) = s.call_json(op, since, request, 200, &["access_token", "refresh_token"]).await {
        let next = tokens["refresh_token"].as_str().unwrap_or_default().to_string();
        s.chains.lock().unwrap().push_back(Chain { client: chain.client, refresh: next, replica: at });
    }
}

async fn register(s: Arc<Shared>, since: Instant, n: u64) {
    let base = &s.targets[n as usize % s.targets.len()];
    // Distinct names: identical public registrations would count once.
    let metadata = serde_json::json!({
        "client_name": format!("load client {n}"),
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        "scope": "billing:read",
    });
    let request = s
        .http
        .post(format!("{base}/register"))
        .header("content-type", "application/json")
        .header("x-forwarded-for", address(1_000_000 + n))
        .body(metadata.to_string());
    s.call_json("register (RFC 7591)", since, request, 201, &["client_id"]).await;
}

/// Starts `op` every 1/`rate` s from `start` until `end`, each in its own task (open loop);
/// `Burst` catches up missed ticks so the rate is kept even after a stall.
async fn ticker<F, Fut>(s: Arc<Shared>, rate: f64, start: tokio::time::Instant, end: Instant, op: F)
where
    F: Fn(Arc<Shared>, Instant, u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if rate <= 0.0 {
        return;
    }
    let mut interval = tokio::time::interval_at(start, Duration::from_secs_f64(1.0 / rate));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for n in 0.. {
        let scheduled = interval.tick().await.into_std();
        if scheduled >= end {
            break;
        }
        s.in_flight.fetch_add(1, Ordering::Relaxed);
        let task = op(s.clone(), scheduled, n);
        let s = s.clone();
        tokio::spawn(async move {
            task.await;
            s.in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

enum Counter {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Counter {
    async fn connect(store: &str) -> anyhow::Result<Counter> {
        Ok(if store.starts_with("postgres") {
            Counter::Postgres(sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(store).await?)
        } else {
            // Read-only beside the server (WAL: readers never block its writes).
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(store).read_only(true);
            Counter::Sqlite(sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(options).await?)
        })
    }

    async fn count(&self, table: &str) -> Option<i64> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        match self {
            Counter::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.ok(),
            Counter::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.ok(),
        }
    }

    async fn sample(&self) -> Vec<Option<i64>> {
        let mut counts = Vec::new();
        for table in TABLES {
            counts.push(self.count(table).await);
        }
        counts
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let targets: Vec<String> =
        env("LOAD_TARGETS", "").split(',').filter(|t| !t.is_empty()).map(str::to_string).collect();
    anyhow::ensure!(!targets.is_empty(), "LOAD_TARGETS is required");
    let data_dir = PathBuf::from(env("LOAD_DATA_DIR", ""));
    let store = env("LOAD_STORE", "");
    let seconds: u64 = env("DURATION", "300").parse()?;
    let duration = Duration::from_secs(seconds);
    let label = env("LOAD_LABEL", "load");
    let pids: Vec<(String, u32)> = env("LOAD_PIDS", "")
        .split(',')
        .filter_map(|p| p.split_once('=').and_then(|(name, pid)| Some((name.to_string(), pid.parse().ok()?))))
        .collect();
    let rates = [
        ("RATE_CC_JWT", rate("RATE_CC_JWT", 150.0)),
        ("RATE_CC_OPAQUE", rate("RATE_CC_OPAQUE", 80.0)),
        ("RATE_INTROSPECT", rate("RATE_INTROSPECT", 100.0)),
        ("RATE_LOGIN", rate("RATE_LOGIN", 2.0)),
        ("RATE_REFRESH", rate("RATE_REFRESH", 20.0)),
        ("RATE_REGISTER", rate("RATE_REGISTER", 1.0)),
    ];
    let r = |name: &str| rates.iter().find(|(n, _)| *n == name).unwrap().1;

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        // Below the server's 10 s idle close (src/http/server.rs HEADER_READ_TIMEOUT): a
        // request sent on a connection as the server closes it is reset (seen once in 107k).
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64 | 1;
    let shared = Arc::new(Shared {
        targets: targets.clone(),
        http,
        cc_jwt: Client::read(&data_dir, "load-cc-jwt"),
        cc_opaque: Client::read(&data_dir, "load-cc-opaque"),
        resource_server: Client::read(&data_dir, "billing-api"),
        code_clients: [Client::read(&data_dir, "load-cli"), Client::read(&data_dir, "load-portal")],
        stats: Default::default(),
        first_errors: Default::default(),
        jwts: Default::default(),
        opaques: Default::default(),
        chains: Default::default(),
        max_chains: env("LOAD_CHAINS", "200").parse()?,
        in_flight: AtomicUsize::new(0),
        seed: AtomicU64::new(seed),
    });
    let counter = Counter::connect(&store).await?;

    println!("\n## {label}: {seconds} s of mixed traffic against {} replica(s)\n", targets.len());
    let total: f64 = rates.iter().map(|(_, r)| r).sum::<f64>() + 3.0 * r("RATE_LOGIN");
    println!(
        "rates/s: client_credentials JWT {} + opaque {}, introspection {}, code flows {} (3 requests each), \
         refresh {}, registration {}: {total:.0} requests/s in all",
        r("RATE_CC_JWT"),
        r("RATE_CC_OPAQUE"),
        r("RATE_INTROSPECT"),
        r("RATE_LOGIN"),
        r("RATE_REFRESH"),
        r("RATE_REGISTER")
    );

    let mut row_samples: Vec<(u64, Vec<Option<i64>>)> = vec![(0, counter.sample().await)];
    let mut rss_samples: Vec<(u64, Vec<Option<f64>>, String)> =
        vec![(0, pids.iter().map(|(_, pid)| rss_mb(*pid)).collect(), load_average())];

    let begin = Instant::now();
    let start = tokio::time::Instant::from_std(begin);
    let end = begin + duration;
    let s = &shared;
    let mut tickers = tokio::task::JoinSet::new();
    tickers.spawn(ticker(s.clone(), r("RATE_CC_JWT"), start, end, |s, t, n| client_credentials(s, t, n, false)));
    tickers.spawn(ticker(s.clone(), r("RATE_CC_OPAQUE"), start, end, |s, t, n| client_credentials(s, t, n, true)));
    // Introspection and refresh start a little later, once there is something to use.
    let later = start + Duration::from_secs(2);
    tickers.spawn(ticker(s.clone(), r("RATE_INTROSPECT"), later, end, introspect));
    tickers.spawn(ticker(s.clone(), r("RATE_LOGIN"), start, end, code_flow));
    tickers.spawn(ticker(s.clone(), r("RATE_REFRESH"), later + Duration::from_secs(2), end, refresh));
    tickers.spawn(ticker(s.clone(), r("RATE_REGISTER"), start, end, register));

    // RSS every 10 s, rows every 30 s (and at the middle and the end), while the load runs.
    let mut tick = 0u64;
    while Instant::now() + Duration::from_secs(10) <= end + Duration::from_millis(500) {
        tokio::time::sleep_until(start + Duration::from_secs(10 * (tick + 1))).await;
        tick += 1;
        let t = 10 * tick;
        rss_samples.push((t, pids.iter().map(|(_, pid)| rss_mb(*pid)).collect(), load_average()));
        if t.is_multiple_of(30) || t == seconds / 2 / 10 * 10 {
            row_samples.push((t, counter.sample().await));
        }
    }
    while tickers.join_next().await.is_some() {}
    let drained = Instant::now();
    while shared.in_flight.load(Ordering::Relaxed) > 0 && drained.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = begin.elapsed();
    let end_t = elapsed.as_secs();
    if rss_samples.last().map(|(t, _, _)| *t) != Some(end_t) {
        rss_samples.push((end_t, pids.iter().map(|(_, pid)| rss_mb(*pid)).collect(), load_average()));
    }
    // The end: after the in-flight requests drained (replaces a sample of the same second).
    if row_samples.last().map(|(t, _)| *t) == Some(end_t) {
        row_samples.pop();
    }
    row_samples.push((end_t, counter.sample().await));

    // Per operation.
    let stats = std::mem::take(&mut *shared.stats.lock().unwrap());
    let mut failed = 0;
    println!("\n| operation | count | per s | errors | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    for op in OPS {
        let Some(stat) = stats.get(op) else { continue };
        let mut sorted = stat.latencies_us.clone();
        sorted.sort_unstable();
        failed += stat.errors;
        let skipped =
            if stat.skipped > 0 { format!(" ({} skipped: nothing to use yet)", stat.skipped) } else { String::new() };
        println!(
            "| {op} | {}{skipped} | {:.1} | {} | {:.2} | {:.2} | {:.2} |",
            sorted.len(),
            sorted.len() as f64 / duration.as_secs_f64(),
            stat.errors,
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.99),
            sorted.last().copied().unwrap_or(0) as f64 / 1000.0
        );
    }
    let requests: usize =
        stats.iter().filter(|(op, _)| **op != "code flow, whole").map(|(_, s)| s.latencies_us.len()).sum();
    println!(
        "\n{requests} requests in {:.1} s ({:.0}/s), {failed} errors",
        elapsed.as_secs_f64(),
        requests as f64 / duration.as_secs_f64()
    );
    let first = shared.first_errors.lock().unwrap();
    if !first.is_empty() {
        println!("\nfirst errors:");
        for e in first.iter() {
            println!("- {e}");
        }
    }

    // RSS.
    let mut verdicts = Vec::new();
    if !pids.is_empty() {
        let names: Vec<&str> = pids.iter().map(|(n, _)| n.as_str()).collect();
        // The machine's load average beside it: anything else running on these two cores
        // shows there, and in the latency tail.
        println!(
            "\nRSS (MB) every 10 s, and the machine's 1-minute load average:\n\n| t s | {} | load |\n|---|{}---|",
            names.join(" | "),
            "---|".repeat(names.len())
        );
        for (t, values, load) in &rss_samples {
            let cells: Vec<String> =
                values.iter().map(|v| v.map(|mb| format!("{mb:.1}")).unwrap_or_else(|| "gone".into())).collect();
            println!("| {t} | {} | {load} |", cells.join(" | "));
        }
        // After warm-up: the first minute (or half of a shorter run) fills pools and caches.
        let warm_t = 60.min(seconds / 2);
        let warm = rss_samples.iter().find(|(t, _, _)| *t >= warm_t).unwrap_or(&rss_samples[0]);
        let last = rss_samples.last().unwrap();
        for (i, name) in names.iter().enumerate() {
            if let (Some(a), Some(b)) = (warm.1[i], last.1[i]) {
                let growth = (b - a) / a * 100.0;
                println!("{name}: {a:.1} MB at {} s, {b:.1} MB at {} s ({growth:+.1}%)", warm.0, last.0);
                verdicts.push((format!("RSS of {name} grew {growth:+.1}% after warm-up"), growth > 20.0));
            } else {
                verdicts.push((format!("{name} is gone"), true));
            }
        }
    }

    // Store rows.
    println!("\nstore rows:\n\n| t s | {} |\n|---|{}", TABLES.join(" | "), "---|".repeat(TABLES.len()));
    for (t, counts) in &row_samples {
        let cells: Vec<String> =
            counts.iter().map(|c| c.map(|c| c.to_string()).unwrap_or_else(|| "?".into())).collect();
        println!("| {t} | {} |", cells.join(" | "));
    }
    // Bounded: in the second half nothing grows beyond what the first half reached (every
    // lifetime in the load config is at most a minute, plus one purge interval).
    let half = row_samples.iter().rev().find(|(t, _)| *t <= end_t / 2).unwrap_or(&row_samples[0]);
    let last = row_samples.last().unwrap();
    for (i, table) in TABLES.iter().enumerate() {
        if let (Some(mid), Some(end)) = (half.1[i], last.1[i])
            && end > mid + mid / 4 + 50
        {
            verdicts.push((format!("{table} grew from {mid} rows at {} s to {end}", half.0), true));
        }
    }

    let enforce = seconds >= 180;
    let bad = verdicts.iter().filter(|(_, bad)| *bad).count();
    if bad > 0 {
        println!();
        for (what, b) in &verdicts {
            if *b {
                println!("{}: {what}", if enforce { "FAIL" } else { "note (run too short to judge)" });
            }
        }
    }
    let ok = failed == 0 && (!enforce || bad == 0);
    println!("\n{label}: {}", if ok { "OK" } else { "FAILED" });
    std::process::exit(if ok { 0 } else { 1 });
}
