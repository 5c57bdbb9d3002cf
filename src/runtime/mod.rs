//! Running a server: what `inbound serve` and `inbound operator` have in common.
//!
//! ```text
//! serve    (folder, data dir)  ─┐                       ┌─▶ HTTP server (router)
//!                               ├─▶ assemble AppState ──┼─▶ maintenance loop
//! operator (watch caches, Lease)┘                       └─▶ mode's own loops (reload | snapshot, keys)
//! ```
//!
//! The two modes differ only in where the configuration, the keys and the credentials come
//! from ([`serve`], [`operator`]); the state the handlers share, the issuer rules, shutdown
//! and the background upkeep of the store are built here, once.

pub mod operator;
pub mod serve;
pub mod workload;

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::admin::AdminAuthorizer;
use crate::catalog::Catalog;
use crate::clock::now;
use crate::http::{AppState, client_ip::Cidr, router, server};
use crate::mail::{Mailer, SmtpMailer, SmtpOptions};
use crate::metrics::{Metrics, OperationLabels};
use crate::oauth::{AuthorizationServer, ServerParts};
use crate::secrets::SecretHasher;
use crate::store::{Instrumented, Store, StoreObserver};
use crate::tokens::{KeySet, RevocationList, VerifiedTokens};

/// A started server, in either mode.
pub struct Running {
    pub addr: SocketAddr,
    /// The issuer identifier (`iss`), no trailing slash.
    pub issuer: String,
    /// Where the embedded SQLite store lives (and, for `serve`, keys and credentials).
    pub data_dir: PathBuf,
    pub state: Arc<AppState>,
    tasks: Tasks,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, stops background work (the operator
    /// releases its Lease if it holds it).
    pub async fn stop(self) {
        let Tasks { shutdown, tasks, watches } = self.tasks;
        let _ = shutdown.send(true);
        for task in tasks {
            let _ = task.await;
        }
        // Watch streams never end on their own.
        for task in watches {
            task.abort();
        }
        // Every record of what happened before the stop is written out.
        self.state.server.audit().close();
    }

    /// Serves until SIGTERM or Ctrl-C, then stops. With a `drain` delay it first reports
    /// not ready and keeps serving that long, so that no request is sent to a closed port
    /// while endpoints and load balancers catch up (a second signal stops at once).
    pub async fn until_shutdown_signal(self, drain: Option<Duration>) {
        shutdown_signal().await;
        if let Some(drain) = drain {
            tracing::info!(drain = ?drain, "shutting down: not ready, still serving");
            self.state.draining.store(true, std::sync::atomic::Ordering::Relaxed);
            tokio::select! {
                () = tokio::time::sleep(drain) => {}
                () = shutdown_signal() => {}
            }
        }
        tracing::info!("shutting down");
        self.stop().await;
    }
}

/// Background work of one server: stopped together by [`Running::stop`].
struct Tasks {
    shutdown: watch::Sender<bool>,
    /// Tasks that end when told to stop; awaited.
    tasks: Vec<JoinHandle<()>>,
    /// Watch streams; aborted.
    watches: Vec<JoinHandle<()>>,
}

impl Tasks {
    fn new() -> Tasks {
        Tasks { shutdown: watch::channel(false).0, tasks: Vec::new(), watches: Vec::new() }
    }

    /// Completes once the server is told to stop.
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.shutdown.subscribe();
        async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }
    }

    /// The stop flag itself, for loops that wait on it more than once.
    fn stop_flag(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }

    /// The HTTP server and the maintenance loop: what every mode runs; with a `metrics`
    /// listener, health and metrics are served there (and `/metrics` not on the public one).
    fn serve_and_maintain(
        &mut self,
        listener: TcpListener,
        metrics: Option<TcpListener>,
        state: &Arc<AppState>,
        upkeep: Upkeep,
    ) {
        let public_metrics = metrics.is_none();
        if let Some(metrics) = metrics {
            self.spawn(server::serve(metrics, crate::http::health_router(state.clone()), self.stopped()));
        }
        self.spawn(server::serve(listener, router(state.clone(), public_metrics), self.stopped()));
        self.spawn(maintain(upkeep, state.clone(), self.stopped()));
    }

    /// Only health and metrics (the controller role, which serves no OAuth).
    fn serve_health_and_maintain(&mut self, listener: TcpListener, state: &Arc<AppState>, upkeep: Upkeep) {
        self.spawn(server::serve(listener, crate::http::health_router(state.clone()), self.stopped()));
        self.spawn(maintain(upkeep, state.clone(), self.stopped()));
    }

    /// The admin API on its own listener (operator mode).
    fn serve_admin(&mut self, listener: TcpListener, state: &Arc<AppState>) {
        self.spawn(server::serve(listener, crate::http::admin_router(state.clone()), self.stopped()));
    }
}

/// What the handlers share: the OAuth core and the serving state around it. Each mode
/// brings where its keys, store, catalog and admin authorization come from.
struct Assembly {
    issuer: String,
    default_audience: Option<String>,
    keys: Arc<ArcSwap<KeySet>>,
    hasher: SecretHasher,
    store: Arc<dyn Store>,
    revocations: Arc<RevocationList>,
    verified: Arc<VerifiedTokens>,
    catalog: Arc<ArcSwap<Catalog>>,
    templates: Option<PathBuf>,
    admin: Option<Arc<dyn AdminAuthorizer>>,
    trusted_proxies: Vec<Cidr>,
    /// The pages' product name, logo and colour.
    branding: crate::http::pages::Branding,
    /// Where IdentityProvider client secrets are read (files and env, or Kubernetes Secrets).
    secrets: Arc<dyn crate::identity::upstream::SecretResolver>,
    /// Issuers' keys and the ServiceAccount token validation (JWT bearer grant).
    assertions: crate::oauth::jwt_bearer::Assertions,
    audit: Arc<crate::audit::Audit>,
    /// Made before the store is opened, which reports to it ([`open_store`]).
    metrics: Metrics,
    /// Email through the configured SMTP relay ([`mailer`]); none without one.
    mailer: Option<Arc<dyn Mailer>>,
}

/// Counts what the audit trail records: tokens issued, sign-ins.
fn count_audited(metrics: &Metrics, audit: &crate::audit::Audit) {
    use crate::audit::Event;
    use crate::metrics::{LoginLabels, TokenLabels};
    let (tokens, logins) = (metrics.tokens_issued.clone(), metrics.logins.clone());
    audit.observe(Box::new(move |event| match event {
        Event::TokenIssued { grant_type, client_namespace, .. } => {
            let labels = TokenLabels { grant_type: grant_type.clone(), client_namespace: client_namespace.clone() };
            tokens.get_or_create(&labels).inc();
        }
        Event::LoginSucceeded { .. } => {
            logins.get_or_create(&LoginLabels { outcome: "success" }).inc();
        }
        Event::LoginFailed { reason, .. } => {
            // A fixed set of label values: an upstream's own error text is not one.
            let outcome = match reason.as_str() {
                "wrong_credentials" => "wrong_credentials",
                "throttled" => "throttled",
                "cancelled" => "cancelled",
                _ => "upstream_error",
            };
            logins.get_or_create(&LoginLabels { outcome }).inc();
        }
        _ => {}
    }));
}

/// The one place the [`AuthorizationServer`] and the [`AppState`] are built.
fn assemble(a: Assembly) -> anyhow::Result<Arc<AppState>> {
    // Cookies lack `Secure` only where a browser would drop them otherwise: plain http on a
    // loopback address (development).
    let secure_cookies = !is_loopback_http(&a.issuer);
    let metrics = a.metrics;
    count_audited(&metrics, &a.audit);
    Ok(Arc::new(AppState {
        server: AuthorizationServer::new(ServerParts {
            default_audience: a.default_audience.unwrap_or_else(|| a.issuer.clone()),
            issuer: a.issuer,
            keys: a.keys,
            hasher: a.hasher,
            store: a.store,
            revocations: a.revocations,
            verified: a.verified,
            metadata_documents: Arc::new(
                crate::cimd::CimdFetcher::new()
                    .context("cannot build the HTTP client for client metadata documents")?,
            ),
            assertions: a.assertions,
            audit: a.audit,
        }),
        catalog: a.catalog,
        metrics,
        pages: crate::http::pages::Pages::new(a.templates, secure_cookies, a.branding)?,
        identity: Arc::new(crate::identity::StaticUsers),
        password_checks: Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        )),
        upstreams: Arc::new(
            crate::identity::upstream::Upstreams::new(a.secrets)
                .context("cannot build the HTTP client for upstream identity providers")?,
        ),
        ready: Default::default(),
        draining: Default::default(),
        admin: a.admin,
        trusted_proxies: a.trusted_proxies,
        notifier: crate::http::notify::ClientNotifier::new()
            .context("cannot build the HTTP client for CIBA notifications")?,
        mailer: a.mailer,
        rendered_metadata: Default::default(),
    }))
}

/// The mailer of the configured SMTP relay (none without one). Checked at start: an
/// invalid configuration (clear text to a remote host, an unreadable password file, a bad
/// From address) stops the process before it serves. The relay itself is not contacted
/// here: its outage must not keep OAuth from starting, and each email reports its own.
fn mailer(smtp: Option<&SmtpOptions>) -> anyhow::Result<Option<Arc<dyn Mailer>>> {
    let Some(options) = smtp else { return Ok(None) };
    let mailer = SmtpMailer::new(options).map_err(|e| anyhow::anyhow!("cannot send email (--smtp-*): {e}"))?;
    tracing::info!(
        relay = %format!("{}:{}", options.host, options.port),
        tls = %options.tls,
        from = %options.from,
        authenticated = options.username.is_some(),
        "email is sent through an SMTP relay"
    );
    Ok(Some(Arc::new(mailer)))
}

/// Plain http on a loopback address.
fn is_loopback_http(issuer: &str) -> bool {
    url::Url::parse(issuer).is_ok_and(|u| u.scheme() == "http" && crate::protocol::loopback::is_loopback_host(&u))
}

/// A configured `--issuer`, checked: RFC 8414 §2 wants https without query or fragment
/// (http is tolerated for development and in-cluster Services). Returned without a
/// trailing slash, the form `iss` carries.
fn checked_issuer(issuer: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(issuer).with_context(|| format!("--issuer {issuer:?} is not a URL"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "https" | "http") && url.query().is_none() && url.fragment().is_none(),
        "--issuer must be an http(s) URL without query or fragment"
    );
    Ok(issuer.trim_end_matches('/').to_string())
}

/// Binds the listen address (before anything is served, so a taken port fails the start).
async fn bind(listen: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Opens the store (`postgres://...`, or SQLite in the data directory), every call of it
/// timed into `metrics`, and loads the revocation list from it.
async fn open_store(
    store: Option<&str>,
    data_dir: &std::path::Path,
    metrics: &Metrics,
) -> anyhow::Result<(Arc<dyn Store>, Arc<RevocationList>)> {
    let opened = crate::store::open(store, &data_dir.join("state.db")).await?;
    let store: Arc<dyn Store> = Arc::new(Instrumented::new(opened, Arc::new(StoreMetrics::new(metrics))));
    let revocations = Arc::new(RevocationList::default());
    revocations.merge(store.revocations_since(0).await?);
    Ok((store, revocations))
}

/// Feeds the store's latency and error series from its [`Instrumented`] wrapper.
struct StoreMetrics {
    duration: crate::metrics::OperationHistograms,
    errors: prometheus_client::metrics::family::Family<OperationLabels, prometheus_client::metrics::counter::Counter>,
}

impl StoreMetrics {
    fn new(metrics: &Metrics) -> StoreMetrics {
        // Every operation's error count exists from the start, so that `rate()` and the
        // alert see a zero rather than nothing.
        for &operation in crate::store::OPERATIONS {
            let _ = metrics.store_errors.get_or_create(&OperationLabels { operation });
        }
        StoreMetrics { duration: metrics.store_query_duration.clone(), errors: metrics.store_errors.clone() }
    }
}

impl StoreObserver for StoreMetrics {
    fn observe(&self, operation: &'static str, elapsed: Duration, failed: bool) {
        let labels = OperationLabels { operation };
        self.duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
        if failed {
            self.errors.get_or_create(&labels).inc();
        }
    }
}

/// How often the store's health (`store_up`) is checked, and the pool and keys sampled.
const STORE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What the maintenance loop works on.
struct Upkeep {
    store: Arc<dyn Store>,
    revocations: Arc<RevocationList>,
    catalog: Arc<ArcSwap<Catalog>>,
    interval: Duration,
    /// The signing keys served, and the schedule they rotate on (None where nothing rotates
    /// them): sampled for their age and next rotation.
    keys: Arc<ArcSwap<KeySet>>,
    rotation: Option<KeyRotation>,
}

/// The part of the signing keys' rotation policy that says when a key is replaced, in
/// seconds (see [`crate::tokens::RotationPolicy`]).
#[derive(Clone, Copy, Debug)]
struct KeyRotation {
    interval: i64,
    publish_ahead: i64,
}

/// What is read rather than counted, sampled with the store's health: the connection pool's
/// use, the signing keys' age and when their successors take over.
fn sample(metrics: &Metrics, store: &dyn Store, keys: &KeySet, rotation: Option<KeyRotation>, now: i64) {
    use crate::metrics::{AlgLabels, PoolLabels};
    let pool = store.pool_stats();
    metrics.store_pool_connections.get_or_create(&PoolLabels { state: "idle" }).set(pool.idle.into());
    metrics.store_pool_connections.get_or_create(&PoolLabels { state: "in_use" }).set(pool.in_use.into());
    metrics.store_pool_max_connections.set(pool.max.into());
    for schedule in keys.schedules() {
        let alg = AlgLabels { alg: schedule.alg };
        // Another replica's clock may run ahead of this one's: never a negative age.
        metrics.signing_key_age.get_or_create(&alg).set((now - schedule.created_at).max(0));
        if let Some(KeyRotation { interval, publish_ahead }) = rotation {
            metrics.signing_key_next_rotation.get_or_create(&alg).set(schedule.next_rotation(interval, publish_ahead));
        }
    }
}

/// Background upkeep: pull revocations written by other processes, reap unused
/// self-registered clients, purge expired rows in bounded batches.
async fn maintain(upkeep: Upkeep, state: Arc<AppState>, stop: impl Future<Output = ()>) {
    let Upkeep { store, revocations, catalog, interval, keys, rotation } = upkeep;
    tokio::pin!(stop);
    // The store's health, checked often (readiness no longer asks it).
    let check = async {
        let mut last = None;
        loop {
            let up = state.server.ping().await.is_ok();
            state.metrics.store_up.set(i64::from(up));
            sample(&state.metrics, store.as_ref(), &keys.load(), rotation, now());
            let (written, failed) = state.server.audit().counts();
            let m = &state.metrics;
            m.audit_records.inc_by(written.saturating_sub(m.audit_records.get()));
            m.audit_failures.inc_by(failed.saturating_sub(m.audit_failures.get()));
            match (last, up) {
                (Some(true), false) | (None, false) => tracing::warn!("the store does not answer"),
                (Some(false), true) => tracing::info!("the store answers again"),
                _ => {}
            }
            last = Some(up);
            tokio::time::sleep(STORE_CHECK_INTERVAL).await;
        }
    };
    tokio::pin!(check);
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = &mut check => {}
            () = &mut stop => return,
        }
        match store.revocations_since(revocations.last_seq()).await {
            Ok(entries) => revocations.merge(entries),
            Err(e) => tracing::warn!(error = %e, "cannot sync revocations"),
        }
        let now = now();
        revocations.purge(now);
        state.server.forget_expired_tokens(now);
        reap_registered_clients(store.as_ref(), &catalog.load(), state.server.audit(), now).await;
        // Bounded batches, repeated while there is a backlog, so that one pass never holds
        // long locks and a burst of expiries is still cleared within a few intervals.
        for _ in 0..10 {
            match store.purge_expired(now, 1000).await {
                Ok(0) => break,
                Ok(n) => tracing::debug!(rows = n, "purged expired state"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot purge expired state");
                    break;
                }
            }
        }
    }
}

/// Deletes self-registered clients unused for the policy's `reapAfter` (default 30 days),
/// with their consents and tokens; they get `invalid_client` and register again.
async fn reap_registered_clients(store: &dyn Store, catalog: &Catalog, audit: &crate::audit::Audit, now: i64) {
    let Some(policy) = catalog.registration_policy() else { return };
    let reap_after = policy
        .spec
        .registration
        .as_ref()
        .and_then(|r| r.reap_after.as_ref())
        .and_then(|d| d.parse().ok())
        .unwrap_or(Duration::from_secs(30 * 86_400));
    match store.reap_registered_clients(&policy.key, now - reap_after.as_secs() as i64, 100).await {
        Ok(reaped) if !reaped.is_empty() => {
            for id in &reaped {
                catalog.dynamic().remove(id);
            }
            tracing::info!(clients = reaped.len(), "reaped unused registered clients");
            audit.emit(crate::audit::Event::ClientsReaped { client_ids: reaped });
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot reap registered clients"),
    }
}

/// `inbound discover`: the discovery document at `url`, checked; a one-line summary.
pub async fn discover(url: &str, issuer: Option<&str>) -> anyhow::Result<String> {
    use anyhow::Context;
    let location = format!("{}{}", url.trim_end_matches('/'), crate::protocol::paths::OIDC_DISCOVERY);
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?;
    let response = http.get(&location).send().await.with_context(|| format!("cannot reach {location}"))?;
    anyhow::ensure!(response.status().is_success(), "{location} answered {}", response.status());
    let document: serde_json::Value =
        response.json().await.with_context(|| format!("{location} is not a JSON document"))?;
    let named = document["issuer"].as_str().with_context(|| format!("{location} names no issuer"))?;
    if let Some(expected) = issuer {
        anyhow::ensure!(named == expected.trim_end_matches('/'), "{location} names issuer {named}, not {expected}");
    }
    for endpoint in ["token_endpoint", "jwks_uri"] {
        anyhow::ensure!(document[endpoint].is_string(), "{location} has no {endpoint}");
    }
    Ok(format!("{location}: issuer {named}, token endpoint {}", document["token_endpoint"].as_str().unwrap_or("")))
}

/// Completes on SIGTERM (Kubernetes stopping the Pod) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The async runtime. `INBOUND_WORKER_THREADS=1` gives a single-threaded runtime (one core,
/// no work stealing: the cheapest when the process is pinned to one CPU); otherwise a
/// multi-threaded runtime with that many workers (default: one per CPU).
pub fn async_runtime() -> tokio::runtime::Runtime {
    let workers = std::env::var("INBOUND_WORKER_THREADS").ok().and_then(|v| v.parse::<usize>().ok());
    let mut builder = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if let Some(n) = workers.filter(|n| *n > 1) {
        builder.worker_threads(n);
    }
    builder.enable_all().build().expect("tokio runtime")
}

/// Logs to standard error, filtered by `INBOUND_LOG` (tracing filter syntax; default `info`).
/// The diagnostic log's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The diagnostic log, on standard error (standard output is the audit trail's).
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_env("INBOUND_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_rules() {
        assert_eq!(checked_issuer("https://auth.example.com/").unwrap(), "https://auth.example.com");
        assert_eq!(checked_issuer("https://auth.example.com/tenant-a").unwrap(), "https://auth.example.com/tenant-a");
        for bad in ["auth.example.com", "ftp://auth.example.com", "https://a.example/?x=1", "https://a.example/#f"] {
            assert!(checked_issuer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secure_cookies_except_plain_http_on_loopback() {
        assert!(is_loopback_http("http://127.0.0.1:8080"));
        assert!(is_loopback_http("http://[::1]:8080"));
        assert!(!is_loopback_http("https://127.0.0.1:8443"));
        assert!(!is_loopback_http("http://auth.example.com"));
    }
}
