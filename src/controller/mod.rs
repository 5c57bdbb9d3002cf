//! `inbound operator`: the token server fed by Kubernetes watch caches, plus the controller
//! that the elected leader runs.
//!
//! ```text
//! watch caches ──▶ snapshot loop (every replica) ──▶ validate ──▶ catalog (served)
//!                                │ leader only
//!                                └──▶ reconcile: Secrets, status, events, finalizers
//! signing-keys Secret ──▶ key set (every replica); rotation (leader only)
//! Lease ──▶ who leads
//! ```

pub mod admin_auth;
pub mod cache;
pub mod credentials;
pub mod lease;
pub mod reconcile;
pub mod signing_keys;
pub mod snapshot;
pub mod status;

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use arc_swap::ArcSwap;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    runtime::{WatchStreamExt, watcher},
};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::api::ObjectKey;
use crate::catalog::{Catalog, ClientRecord, Defaults, manifest::Object};
use crate::clock::now;
use crate::http::{AppState, router, server};
use crate::metrics::Metrics;
use crate::oauth::{AuthorizationServer, ServerParts};
use crate::secrets::SecretHasher;
use crate::store::Store;
use crate::tokens::{KeySet, RevocationList, RotationPolicy, VerifiedTokens};

/// How to run the operator.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    pub listen: SocketAddr,
    /// Public issuer URL (what clients reach through the Service or Ingress).
    pub issuer: String,
    /// The operator's own namespace: the Lease and the signing-keys Secret live there.
    pub namespace: String,
    /// Namespaces watched for resources; empty for all.
    pub watch_namespaces: Vec<String>,
    /// Holds the SQLite store when no PostgreSQL URL is given.
    pub data_dir: PathBuf,
    pub store: Option<String>,
    pub signing_keys_secret: String,
    pub lease_name: String,
    /// This replica's name (the Pod name).
    pub identity: String,
    pub lease_duration: Duration,
    pub key_rotation_interval: Duration,
    pub key_publish_ahead: Duration,
    pub default_audience: Option<String>,
    pub access_token_lifetime: Duration,
    /// Default overlap of a rotated client secret.
    pub secret_rotation_overlap: Duration,
    /// Full re-check of every object even without watch events (rotation schedules, expiry).
    pub resync_interval: Duration,
    pub maintenance_interval: Duration,
    pub templates: Option<PathBuf>,
    /// Proxies (Ingress, load balancer) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::http::client_ip::Cidr>,
}

/// A started operator.
pub struct Running {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    watches: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops serving and background work; releases the lease if held.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        for task in self.watches.drain(..) {
            task.abort();
        }
    }
}

pub async fn start(options: OperatorOptions) -> anyhow::Result<Running> {
    let issuer = options.issuer.trim_end_matches('/').to_string();
    let issuer_url = url::Url::parse(&issuer).with_context(|| format!("--issuer {issuer:?} is not a URL"))?;
    anyhow::ensure!(
        matches!(issuer_url.scheme(), "https" | "http")
            && issuer_url.query().is_none()
            && issuer_url.fragment().is_none(),
        "--issuer must be an http(s) URL without query or fragment"
    );
    let client = kube::Client::try_default().await.context("cannot configure the Kubernetes client")?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut tasks = Vec::new();
    let mut watches = Vec::new();

    // Who leads.
    let (leader_tx, leader) = watch::channel(false);
    let lease_config = lease::LeaseConfig {
        namespace: options.namespace.clone(),
        name: options.lease_name.clone(),
        identity: options.identity.clone(),
        duration: options.lease_duration,
    };
    tasks.push(tokio::spawn(lease::run(client.clone(), lease_config, leader_tx, stopped(shutdown_rx.clone()))));

    // Keys: one document in a Secret, shared by every replica.
    let key_secrets: Api<Secret> = Api::namespaced(client.clone(), &options.namespace);
    let document = tokio::time::timeout(
        options.lease_duration * 4,
        signing_keys::load_or_create(&key_secrets, &options.signing_keys_secret, &leader),
    )
    .await
    .context("no signing keys: no leader created them in time")?
    .with_context(|| format!("cannot load the signing keys Secret {}", options.signing_keys_secret))?;
    let key_set = KeySet::from_document(&document).map_err(|e| anyhow::anyhow!("signing keys: {e}"))?;
    let hasher = SecretHasher::new(key_set.secret_hash_key());
    let keys = Arc::new(ArcSwap::from_pointee(key_set));

    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("cannot create data directory {}", options.data_dir.display()))?;
    let store: Arc<dyn Store> =
        crate::store::open(options.store.as_deref(), &options.data_dir.join("state.db")).await?;
    let revocations = Arc::new(RevocationList::default());
    revocations.merge(store.revocations_since(0).await?);
    let verified = Arc::new(VerifiedTokens::default());
    let catalog = Arc::new(ArcSwap::from_pointee(Catalog::default()));
    let listener =
        TcpListener::bind(options.listen).await.with_context(|| format!("cannot listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(AppState {
        server: AuthorizationServer::new(ServerParts {
            default_audience: options.default_audience.clone().unwrap_or_else(|| issuer.clone()),
            issuer: issuer.clone(),
            keys: keys.clone(),
            hasher: hasher.clone(),
            store: store.clone(),
            revocations: revocations.clone(),
            verified: verified.clone(),
            metadata_documents: Arc::new(
                crate::cimd::CimdFetcher::new()
                    .context("cannot build the HTTP client for client metadata documents")?,
            ),
        }),
        catalog: catalog.clone(),
        metrics: Metrics::default(),
        pages: crate::http::pages::Pages::new(options.templates.clone(), issuer_url.scheme() == "https")?,
        identity: Arc::new(crate::identity::StaticUsers),
        ready: Default::default(),
        admin: Some(Arc::new(admin_auth::KubernetesAdmin { client: client.clone() })),
        trusted_proxies: options.trusted_proxies.clone(),
    });
    tasks.push(tokio::spawn(server::serve(listener, router(state.clone()), stopped(shutdown_rx.clone()))));

    // Every replica follows the keys Secret; the leader rotates it.
    watches.push(tokio::spawn(follow_keys(key_secrets.clone(), options.signing_keys_secret.clone(), keys, verified)));
    let caches = Arc::new(cache::Caches::start(&client, &options.watch_namespaces, &mut watches));
    let defaults = Defaults { access_token_lifetime: options.access_token_lifetime, ..Defaults::default() };
    tasks.push(tokio::spawn(rotate_keys(
        key_secrets,
        options.clone(),
        leader.clone(),
        catalog.clone(),
        defaults.clone(),
        stopped(shutdown_rx.clone()),
    )));
    let reconciler = reconcile::Reconciler::new(
        client.clone(),
        &options.identity,
        store.clone(),
        hasher,
        issuer.clone(),
        options.secret_rotation_overlap,
    );
    tasks.push(tokio::spawn(snapshot_loop(SnapshotLoop {
        caches,
        store: store.clone(),
        catalog,
        defaults,
        state: state.clone(),
        leader,
        reconciler,
        resync: options.resync_interval,
        stop: shutdown_rx.clone(),
    })));
    tasks.push(tokio::spawn(crate::serve::maintain(
        store,
        revocations,
        state.catalog.clone(),
        options.maintenance_interval,
        stopped(shutdown_rx),
    )));
    Ok(Running { addr, state, shutdown, tasks, watches })
}

struct SnapshotLoop {
    caches: Arc<cache::Caches>,
    store: Arc<dyn Store>,
    catalog: Arc<ArcSwap<Catalog>>,
    defaults: Defaults,
    state: Arc<AppState>,
    leader: watch::Receiver<bool>,
    reconciler: reconcile::Reconciler,
    resync: Duration,
    stop: watch::Receiver<bool>,
}

/// Rebuilds the served catalog on every change (and every `resync`); the leader then
/// reconciles. Runs on every replica, so each serves what the API server holds within
/// moments of a change.
async fn snapshot_loop(mut l: SnapshotLoop) {
    tokio::select! {
        () = l.caches.wait_until_ready() => {}
        _ = l.stop.wait_for(|s| *s) => return,
    }
    tracing::info!("watch caches synced");
    let mut leader = l.leader.clone();
    loop {
        let objects = l.caches.objects();
        let validated = snapshot::validate_objects(&objects);
        match records(&validated, l.store.as_ref()).await {
            Ok(records) => {
                let next = Catalog::build(&validated.manifests, &records, &HashMap::new(), &l.defaults)
                    .with_dynamic(l.catalog.load().dynamic().clone());
                l.catalog.store(Arc::new(next));
                if !l.state.ready.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::info!(apps = records.len(), "serving");
                }
            }
            // Keep serving the previous snapshot; the next event or resync retries.
            Err(e) => {
                tracing::warn!(error = %e, "cannot read client secrets; still serving the previous configuration")
            }
        }
        if *l.leader.borrow() {
            l.reconciler.reconcile_all(&l.caches, &validated).await;
        }
        tokio::select! {
            () = l.caches.changed.notified() => {}
            _ = leader.changed() => {}
            () = tokio::time::sleep(l.resync) => {}
            _ = l.stop.wait_for(|s| *s) => return,
        }
        // Coalesce bursts (an apply of many objects) into one pass.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Credentials of the valid apps: public apps need none; confidential apps are served once
/// the store holds a secret for them.
async fn records(
    validated: &snapshot::Validated,
    store: &dyn Store,
) -> Result<HashMap<ObjectKey, ClientRecord>, crate::store::StoreError> {
    let mut records = HashMap::new();
    for m in &validated.manifests {
        let Object::App(app) = &m.object else { continue };
        let Some(client_id) = app.metadata.uid.clone() else { continue };
        let key = ObjectKey::of(&app.metadata);
        let secret_hashes = if app.spec.client_type == crate::api::ClientType::Confidential {
            let hashes = store.client_secret_hashes(&client_id, now()).await?;
            if hashes.is_empty() {
                continue;
            }
            hashes
        } else {
            Vec::new()
        };
        records.insert(key, ClientRecord { client_id, secret_hashes });
    }
    Ok(records)
}

/// Swaps the key set whenever the signing-keys Secret changes.
async fn follow_keys(api: Api<Secret>, name: String, keys: Arc<ArcSwap<KeySet>>, verified: Arc<VerifiedTokens>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
    let mut last: Option<Vec<u8>> = None;
    while let Some(event) = stream.next().await {
        let secret = match event {
            Ok(secret) => secret,
            Err(e) => {
                tracing::warn!(error = %e, "watching the signing keys failed; retrying");
                continue;
            }
        };
        let bytes = secret.data.as_ref().and_then(|d| d.get(signing_keys::KEYS_ENTRY)).map(|b| b.0.clone());
        if bytes.is_none() || bytes == last {
            continue;
        }
        match signing_keys::document(&secret)
            .and_then(|doc| KeySet::from_document(&doc).map_err(|e| signing_keys::KeysError::Invalid(name.clone(), e)))
        {
            Ok(set) => {
                if set.secret_hash_key() != keys.load().secret_hash_key() {
                    // Client secrets are hashed with this key; changing it would lock every
                    // client out. It is generated once and never rotated.
                    tracing::error!("the secret-hashing key in the signing keys Secret changed; ignoring the update");
                    continue;
                }
                tracing::info!(active = set.active_kid(), "signing keys updated");
                keys.store(Arc::new(set));
                // A retired key's tokens must no longer verify from the memo.
                verified.clear();
                last = bytes;
            }
            Err(e) => tracing::error!(error = %e, "ignoring invalid signing keys"),
        }
    }
}

/// Leader only: applies the key rotation schedule.
async fn rotate_keys(
    api: Api<Secret>,
    options: OperatorOptions,
    leader: watch::Receiver<bool>,
    catalog: Arc<ArcSwap<Catalog>>,
    defaults: Defaults,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let interval = options.key_rotation_interval.as_secs() as i64;
    let check_every = (options.key_rotation_interval / 20).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::select! {
            () = tokio::time::sleep(check_every) => {}
            () = &mut stop => return,
        }
        if !*leader.borrow() {
            continue;
        }
        // A retired key stays published as long as the longest-lived token it may have signed.
        let longest = catalog
            .load()
            .clients()
            .flat_map(|c| [c.access_token_lifetime, c.id_token_lifetime])
            .chain([defaults.access_token_lifetime, defaults.id_token_lifetime])
            .max()
            .unwrap_or_default();
        let policy = RotationPolicy {
            interval,
            publish_ahead: (options.key_publish_ahead.as_secs() as i64).min(interval / 2),
            retain: longest.as_secs() as i64 + 60,
        };
        if let Err(e) = signing_keys::rotate(&api, &options.signing_keys_secret, &policy).await {
            tracing::warn!(error = %e, "cannot rotate signing keys");
        }
    }
}
