//! `inbound serve`: the standalone server on a folder of manifests.
//!
//! State lives in a data directory: `state.db` (SQLite), `keys.json` (signing keys and the
//! secret-hashing key, 0600) and `credentials/<namespace>/<secret name>/` holding
//! `client_id`, `client_secret`, `issuer` and `token_url` as one file each: the same keys,
//! laid out the same way, as the Kubernetes Secret the operator writes and a Pod mounts.

mod provision;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::catalog::{Catalog, Defaults, folder};
use crate::clock::now;
use crate::http::{AppState, router, server};
use crate::metrics::Metrics;
use crate::oauth::{AuthorizationServer, ServerParts};
use crate::secrets::SecretHasher;
use crate::store::Store;
use crate::tokens::{KeySet, RevocationList};

pub use provision::{AppCredentials, credentials_dir};

/// How to run the standalone server.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Folder (or files) of manifests.
    pub config: Vec<PathBuf>,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Public issuer URL; `http://<listen address>` when unset.
    pub issuer: Option<String>,
    pub default_audience: Option<String>,
    pub access_token_lifetime: Duration,
    /// How often the folder is checked for edits.
    pub reload_interval: Duration,
    /// Folder of templates overriding the built-in pages (same file names).
    pub templates: Option<PathBuf>,
    /// `postgres://...` for a shared PostgreSQL store; None for SQLite in the data dir.
    pub store: Option<String>,
    /// How often revocations are synced and expired rows purged.
    pub maintenance_interval: Duration,
    /// Proxies (Ingress, load balancer) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::http::client_ip::Cidr>,
}

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    pub issuer: String,
    pub data_dir: PathBuf,
    /// Credentials of the apps in the first configuration, in (namespace, name) order.
    pub apps: Vec<AppCredentials>,
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, stops background work.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

/// Loads the configuration, provisions credentials, binds and starts serving.
/// Fails (before binding) if the configuration is invalid.
pub async fn start(options: ServeOptions) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("cannot create data directory {}", options.data_dir.display()))?;
    #[cfg(unix)]
    {
        // Keys, state and credentials: readable by the server's user only.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&options.data_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    // Taken before reading, so an edit made while starting is still noticed.
    let loaded_fingerprint = folder::fingerprint(&options.config);
    let manifests = folder::load(&options.config).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        anyhow::anyhow!("the configuration is invalid:\n  {}", lines.join("\n  "))
    })?;

    let listener =
        TcpListener::bind(options.listen).await.with_context(|| format!("cannot listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    let issuer = match &options.issuer {
        Some(issuer) => {
            let url = url::Url::parse(issuer).with_context(|| format!("--issuer {issuer:?} is not a URL"))?;
            // RFC 8414 §2: https, no query or fragment (http is tolerated for development).
            anyhow::ensure!(
                matches!(url.scheme(), "https" | "http") && url.query().is_none() && url.fragment().is_none(),
                "--issuer must be an http(s) URL without query or fragment"
            );
            issuer.trim_end_matches('/').to_string()
        }
        None if addr.ip().is_unspecified() => {
            // 0.0.0.0 is not an address clients can reach: name the issuer explicitly.
            tracing::warn!(
                "listening on all interfaces without --issuer; tokens name http://127.0.0.1:{} as issuer",
                addr.port()
            );
            format!("http://127.0.0.1:{}", addr.port())
        }
        None => format!("http://{addr}"),
    };

    let keys = Arc::new(ArcSwap::from_pointee(KeySet::load_or_create(&options.data_dir.join("keys.json"), now())?));
    let store: Arc<dyn Store> =
        crate::store::open(options.store.as_deref(), &options.data_dir.join("state.db")).await?;
    let revocations = Arc::new(RevocationList::default());
    revocations.merge(store.revocations_since(0).await?);
    let hasher = SecretHasher::new(keys.load().secret_hash_key());
    let provisioner = provision::Provisioner {
        store: store.clone(),
        hasher: hasher.clone(),
        data_dir: options.data_dir.clone(),
        issuer: issuer.clone(),
    };
    let defaults = Defaults { access_token_lifetime: options.access_token_lifetime, ..Defaults::default() };
    let provisioned = provisioner.provision(&manifests).await?;
    let apps = provisioned.apps.clone();
    let catalog = Arc::new(ArcSwap::from_pointee(provisioned.catalog(&manifests, &defaults)));

    let state = Arc::new(AppState {
        server: AuthorizationServer::new(ServerParts {
            default_audience: options.default_audience.clone().unwrap_or_else(|| issuer.clone()),
            issuer: issuer.clone(),
            keys,
            hasher,
            store: store.clone(),
            revocations: revocations.clone(),
            verified: Default::default(),
            metadata_documents: Arc::new(
                crate::cimd::CimdFetcher::new()
                    .context("cannot build the HTTP client for client metadata documents")?,
            ),
        }),
        catalog: catalog.clone(),
        metrics: Metrics::default(),
        pages: crate::http::pages::Pages::new(options.templates.clone(), !is_loopback_http(&issuer))?,
        identity: Arc::new(crate::identity::StaticUsers),
        ready: Default::default(),
        admin: None,
        trusted_proxies: options.trusted_proxies.clone(),
    });
    state.ready.store(true, Ordering::Relaxed);

    let (shutdown, shutdown_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let catalog_for_upkeep = catalog.clone();
    let tasks = vec![
        tokio::spawn(server::serve(listener, router(state.clone()), stopped(shutdown_rx.clone()))),
        tokio::spawn(watch_folder(
            options.config.clone(),
            loaded_fingerprint,
            options.reload_interval,
            provisioner,
            defaults,
            catalog,
            stopped(shutdown_rx.clone()),
        )),
        tokio::spawn(maintain(
            store,
            revocations,
            catalog_for_upkeep,
            options.maintenance_interval,
            stopped(shutdown_rx),
        )),
    ];

    Ok(Running { addr, issuer, data_dir: options.data_dir, apps, state, shutdown, tasks })
}

/// Plain http on a loopback address: the only case where cookies may lack `Secure`.
fn is_loopback_http(issuer: &str) -> bool {
    url::Url::parse(issuer).is_ok_and(|u| u.scheme() == "http" && crate::protocol::loopback::is_loopback_host(&u))
}

/// Polls the folder; on a change, validates and swaps in a new snapshot. An invalid edit is
/// logged exactly as `inbound check` prints it and the last good snapshot keeps serving.
async fn watch_folder(
    paths: Vec<PathBuf>,
    loaded_fingerprint: u64,
    interval: Duration,
    provisioner: provision::Provisioner,
    defaults: Defaults,
    catalog: Arc<ArcSwap<Catalog>>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut last = loaded_fingerprint;
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = &mut stop => return,
        }
        let current = folder::fingerprint(&paths);
        if current == last {
            continue;
        }
        last = current;
        let manifests = match folder::load(&paths) {
            Ok(m) => m,
            Err(problems) => {
                for problem in &problems {
                    tracing::warn!(%problem, "invalid configuration");
                }
                tracing::warn!(
                    problems = problems.len(),
                    "configuration change rejected; still serving the previous configuration"
                );
                continue;
            }
        };
        match provisioner.provision(&manifests).await {
            Ok(provisioned) => {
                let next = provisioned.catalog(&manifests, &defaults).with_dynamic(catalog.load().dynamic().clone());
                tracing::info!(apps = next.clients().count(), "configuration reloaded");
                catalog.store(Arc::new(next));
            }
            Err(e) => {
                // Retry on the next tick: the folder did not change, but provisioning must.
                last = 0;
                tracing::warn!(error = %e, "configuration change not applied; still serving the previous configuration");
            }
        }
    }
}

/// Background upkeep: pull revocations written by other processes, purge expired rows in
/// bounded batches.
pub(crate) async fn maintain(
    store: Arc<dyn Store>,
    revocations: Arc<RevocationList>,
    catalog: Arc<ArcSwap<Catalog>>,
    interval: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = &mut stop => return,
        }
        match store.revocations_since(revocations.last_seq()).await {
            Ok(entries) => revocations.merge(entries),
            Err(e) => tracing::warn!(error = %e, "cannot sync revocations"),
        }
        let now = now();
        revocations.purge(now);
        // Bounded batches, repeated while there is a backlog, so that one pass never holds
        // long locks and a burst of expiries is still cleared within a few intervals.
        reap_registered_clients(store.as_ref(), &catalog.load(), now).await;
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
async fn reap_registered_clients(store: &dyn Store, catalog: &Catalog, now: i64) {
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
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot reap registered clients"),
    }
}
