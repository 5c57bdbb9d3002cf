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

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use arc_swap::ArcSwap;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    runtime::{WatchStreamExt, watcher},
};
use tokio::sync::watch;

use super::{Assembly, Running, Tasks, Upkeep};
use crate::catalog::{Catalog, Defaults};
use crate::controller::{admin_auth, cache, lease, reconcile, signing_keys, snapshot};
use crate::http::{AppState, client_ip::Cidr};
use crate::secrets::SecretHasher;
use crate::tokens::{KeySet, RotationPolicy, VerifiedTokens};

/// What one operator process does. A cluster many teams share runs the two halves apart
/// (chart `split.enabled`), so that the Pods parsing internet traffic hold no Secret access.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Both halves in one process (one Pod with SQLite, or replicas on PostgreSQL).
    #[default]
    All,
    /// Serves OAuth from the watched objects and the shared store: reads the four kinds and
    /// the signing-keys Secret; never leads, writes nothing to Kubernetes.
    Server,
    /// Leads and writes: credentials Secrets, signing keys, status, events, the admin API;
    /// serves no OAuth (only health and metrics), so it need not be exposed.
    Controller,
}

impl Role {
    fn serves_oauth(self) -> bool {
        self != Role::Controller
    }

    fn controls(self) -> bool {
        self != Role::Server
    }
}

/// How to run the operator.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    pub role: Role,
    /// Where the audit trail goes.
    pub audit: crate::audit::AuditOptions,
    pub listen: SocketAddr,
    /// Health and metrics on a listener of their own (`/metrics` then leaves the public one).
    pub metrics_listen: Option<SocketAddr>,
    /// The admin API's own listener (never the public one).
    pub admin_listen: SocketAddr,
    /// What admin API tokens must be bound to (TokenReview `audiences`).
    pub admin_audience: String,
    /// Public issuer URL (what clients reach through the Service or Ingress).
    pub issuer: String,
    /// The server as workloads in the cluster reach it (its Service), written into the
    /// credentials Secrets beside the public URLs.
    pub in_cluster_url: Option<String>,
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
    pub session_lifetime: Duration,
    /// Default overlap of a rotated client secret.
    pub secret_rotation_overlap: Duration,
    /// Full re-check of every object even without watch events (rotation schedules, expiry).
    pub resync_interval: Duration,
    pub maintenance_interval: Duration,
    pub templates: Option<PathBuf>,
    /// Product name, logo and colour of the pages.
    pub branding: crate::http::pages::Branding,
    /// Proxies (Ingress, load balancer) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Who owns which resource, which policy enables self-registration (README "Who can
    /// mint what").
    pub trust: crate::catalog::validate::Trust,
    /// Which ServiceAccount tokens and issuers' JWTs are accepted (JWT bearer grant).
    pub workload: super::workload::WorkloadIdentity,
    /// The SMTP relay email is sent through (CIBA approval links); none: no email.
    pub smtp: Option<crate::mail::SmtpOptions>,
}

/// Joins the election, loads the keys (waiting for a leader to create them), binds and
/// starts serving; the catalog fills, and readiness turns true, once the watch caches
/// have synced.
pub async fn start(options: OperatorOptions) -> anyhow::Result<Running> {
    let issuer = super::checked_issuer(&options.issuer)?;
    // Before anything waits on the cluster: a wrong mail configuration fails the start.
    let mailer = super::mailer(options.smtp.as_ref())?;
    let client = kube::Client::try_default().await.context("cannot configure the Kubernetes client")?;
    // Bound before anything waits on the API server: a taken port fails at once, and probes
    // are answered (alive, not ready) however long the keys take.
    let (listener, addr) = super::bind(options.listen).await?;
    let metrics = match options.metrics_listen {
        Some(listen) => Some(super::bind(listen).await?.0),
        None => None,
    };
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("cannot create data directory {}", options.data_dir.display()))?;
    let mut tasks = Tasks::new();

    // Who leads.
    if options.role == Role::Server && options.store.is_none() {
        anyhow::bail!("--role server shares the controller's store: give --store postgres://...");
    }
    let (leader_tx, leader) = watch::channel(false);
    if options.role.controls() {
        let lease_config = lease::LeaseConfig {
            namespace: options.namespace.clone(),
            name: options.lease_name.clone(),
            identity: options.identity.clone(),
            duration: options.lease_duration,
        };
        tasks.spawn(lease::run(client.clone(), lease_config, leader_tx, tasks.stopped()));
    } else {
        // Never leads; the sender lives as long as the process so that waiting on it waits.
        let stopped = tasks.stopped();
        tasks.spawn(async move {
            let _never_leads = leader_tx;
            stopped.await
        });
    }

    // Keys: one document in a Secret, shared by every replica.
    let key_secrets: Api<Secret> = Api::namespaced(client.clone(), &options.namespace);
    let key_cache = options.data_dir.join(signing_keys::CACHE_FILE);
    let document = {
        let (loaded, until_loaded) = tokio::sync::oneshot::channel::<()>();
        let starting = crate::http::server::serve_on(
            &listener,
            crate::http::starting_router("waiting for the signing keys"),
            async {
                let _ = until_loaded.await;
            },
        );
        let loading = async {
            let patience = options.lease_duration * 4;
            let document =
                signing_keys::load(&key_secrets, &options.signing_keys_secret, &leader, patience, &key_cache).await;
            let _ = loaded.send(());
            document
        };
        tokio::join!(starting, loading).1
    };
    let key_set = KeySet::from_document(&document).map_err(|e| anyhow::anyhow!("signing keys: {e}"))?;
    let hasher = SecretHasher::new(key_set.secret_hash_key());
    let keys = Arc::new(ArcSwap::from_pointee(key_set));

    // Made before the store, whose calls it times; the `metrics` listener is another thing.
    let series = crate::metrics::Metrics::default();
    let (store, revocations) = super::open_store(options.store.as_deref(), &options.data_dir, &series).await?;
    let audit = Arc::new(crate::audit::Audit::open(&options.audit)?);
    let verified = Arc::new(VerifiedTokens::default());
    let catalog = Arc::new(ArcSwap::from_pointee(Catalog::default()));
    let state = super::assemble(Assembly {
        issuer: issuer.clone(),
        default_audience: options.default_audience.clone(),
        keys: keys.clone(),
        hasher: hasher.clone(),
        store: store.clone(),
        revocations: revocations.clone(),
        verified: verified.clone(),
        catalog: catalog.clone(),
        templates: options.templates.clone(),
        branding: options.branding.clone(),
        admin: options.role.controls().then(|| {
            Arc::new(admin_auth::KubernetesAdmin::new(client.clone(), options.admin_audience.clone()))
                as Arc<dyn crate::admin::AdminAuthorizer>
        }),
        trusted_proxies: options.trusted_proxies.clone(),
        secrets: Arc::new(KubernetesSecrets { client: client.clone() }),
        assertions: options.workload.assertions(
            &issuer,
            Some(Arc::new(super::workload::KubernetesTokenReviewer::new(client.clone()))),
            options.access_token_lifetime,
        )?,
        audit: audit.clone(),
        metrics: series,
        mailer,
    })?;
    let upkeep = Upkeep {
        store: store.clone(),
        revocations,
        catalog: catalog.clone(),
        interval: options.maintenance_interval,
        keys: keys.clone(),
        // Every replica reports the schedule the leader applies (the replicas share their
        // options), whichever leads.
        rotation: Some(key_rotation(&options)),
    };
    if options.role.serves_oauth() {
        tasks.serve_and_maintain(listener, metrics, &state, upkeep);
    } else {
        // Health and metrics only; on the metrics listener too when there is one.
        if let Some(metrics) = metrics {
            tasks.spawn(crate::http::server::serve(
                metrics,
                crate::http::health_router(state.clone()),
                tasks.stopped(),
            ));
        }
        tasks.serve_health_and_maintain(listener, &state, upkeep);
    }
    if options.role.controls() {
        let (admin_listener, admin_addr) = super::bind(options.admin_listen).await?;
        tracing::info!(%admin_addr, audience = %options.admin_audience, "admin API listening");
        tasks.serve_admin(admin_listener, &state);
    }

    // Every replica follows the keys Secret; the leader rotates it.
    let restarts = &state.metrics.watch_restarts;
    tasks.watches.push(tokio::spawn(follow_keys(
        key_secrets.clone(),
        options.signing_keys_secret.clone(),
        keys,
        verified,
        key_cache,
        restarts.get_or_create(&crate::metrics::KindLabels { kind: "SigningKeys" }).clone(),
    )));
    let caches = Arc::new(cache::Caches::start(
        &client,
        &options.watch_namespaces,
        options.role.controls(),
        restarts,
        &mut tasks.watches,
    ));
    let defaults = Defaults {
        access_token_lifetime: options.access_token_lifetime,
        session_lifetime: options.session_lifetime,
        ..Defaults::default()
    };
    tasks.spawn(rotate_keys(
        key_secrets,
        options.clone(),
        leader.clone(),
        catalog.clone(),
        defaults.clone(),
        audit.clone(),
        tasks.stopped(),
    ));
    let mut reconciler = reconcile::Reconciler::new(
        client,
        &options.identity,
        store.clone(),
        hasher,
        issuer.clone(),
        options.secret_rotation_overlap,
        Arc::new(UpstreamCheck(state.upstreams.clone())),
    );
    reconciler.in_cluster_url = options.in_cluster_url.clone();
    reconciler.audit = audit;
    reconciler.failures = state.metrics.reconcile_failures.clone();
    tasks.spawn(snapshot_loop(SnapshotLoop {
        caches,
        store,
        catalog,
        defaults,
        state: state.clone(),
        leader,
        reconciler,
        resync: options.resync_interval,
        trust: options.trust.clone(),
        stop: tasks.stop_flag(),
    }));
    Ok(Running { addr, issuer, data_dir: options.data_dir, state, tasks })
}

struct SnapshotLoop {
    caches: Arc<cache::Caches>,
    store: Arc<dyn crate::store::Store>,
    catalog: Arc<ArcSwap<Catalog>>,
    defaults: Defaults,
    state: Arc<AppState>,
    leader: watch::Receiver<bool>,
    reconciler: reconcile::Reconciler,
    resync: Duration,
    trust: crate::catalog::validate::Trust,
    stop: watch::Receiver<bool>,
}

/// Rebuilds the served catalog on every change (and every `resync`); the leader then
/// reconciles. Runs on every replica, so each serves what the API server holds within
/// moments of a change.
async fn snapshot_loop(mut l: SnapshotLoop) {
    tokio::select! {
        () = l.caches.wait_until_ready(cache::SYNC_PATIENCE) => {}
        _ = l.stop.wait_for(|s| *s) => return,
    }
    tracing::info!("watch caches synced");
    let mut leader = l.leader.clone();
    loop {
        let unsynced = l.caches.unsynced();
        if !unsynced.is_empty() {
            tracing::warn!(kinds = ?unsynced, "still cannot list these kinds; serving without them");
        }
        let objects = l.caches.objects();
        let validated = snapshot::validate_objects(&objects, &l.trust);
        match snapshot::client_records(&validated, l.store.as_ref()).await {
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
        let leads = *l.leader.borrow();
        l.state.metrics.leader.set(i64::from(leads));
        if leads {
            let started = std::time::Instant::now();
            l.reconciler.reconcile_all(&l.caches, &validated).await;
            l.state.metrics.reconcile_runs.inc();
            l.state.metrics.reconcile_duration.observe(started.elapsed().as_secs_f64());
        }
        // A grant that expires is reported at its expiry, not at the next resync.
        let now = crate::clock::now();
        let until_expiry = objects
            .grants
            .iter()
            .filter_map(reconcile::grant_expiry)
            .filter(|at| *at > now)
            .min()
            .map(|at| Duration::from_secs((at - now) as u64 + 1));
        let wait = until_expiry.map_or(l.resync, |d| d.min(l.resync));
        tokio::select! {
            () = l.caches.changed.notified() => {}
            _ = leader.changed() => {}
            () = tokio::time::sleep(wait) => {}
            _ = l.stop.wait_for(|s| *s) => return,
        }
        // Coalesce bursts (an apply of many objects) into one pass.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Swaps the key set whenever the signing-keys Secret changes, and keeps a copy at `cache`.
async fn follow_keys(
    api: Api<Secret>,
    name: String,
    keys: Arc<ArcSwap<KeySet>>,
    verified: Arc<VerifiedTokens>,
    cache: PathBuf,
    restarts: prometheus_client::metrics::counter::Counter,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
    let mut last: Option<Vec<u8>> = None;
    while let Some(event) = stream.next().await {
        let secret = match event {
            Ok(secret) => secret,
            Err(e) => {
                // The watcher lists or watches again after a backoff: a restart.
                restarts.inc();
                tracing::warn!(error = %e, "watching the signing keys failed; retrying");
                continue;
            }
        };
        let bytes = secret.data.as_ref().and_then(|d| d.get(signing_keys::KEYS_ENTRY)).map(|b| b.0.clone());
        if bytes.is_none() || bytes == last {
            continue;
        }
        match signing_keys::document(&secret).and_then(|doc| {
            let set = KeySet::from_document(&doc).map_err(|e| signing_keys::KeysError::Invalid(name.clone(), e))?;
            Ok((doc, set))
        }) {
            Ok((doc, set)) => {
                if set.secret_hash_key() != keys.load().secret_hash_key() {
                    // Client secrets are hashed with this key; changing it would lock every
                    // client out. It is generated once and never rotated.
                    tracing::error!("the secret-hashing key in the signing keys Secret changed; ignoring the update");
                    continue;
                }
                tracing::info!(active = set.active_kid(), "signing keys updated");
                signing_keys::remember(&cache, &doc);
                keys.store(Arc::new(set));
                // A retired key's tokens must no longer verify from the memo.
                verified.clear();
                last = bytes;
            }
            Err(e) => tracing::error!(error = %e, "ignoring invalid signing keys"),
        }
    }
}

/// When keys are replaced, from the options: one computation for the leader that rotates
/// and for the metrics every replica reports. A successor is never published ahead for more
/// than half the interval, or it would be generated before its predecessor took over.
fn key_rotation(options: &OperatorOptions) -> super::KeyRotation {
    let interval = options.key_rotation_interval.as_secs() as i64;
    super::KeyRotation { interval, publish_ahead: (options.key_publish_ahead.as_secs() as i64).min(interval / 2) }
}

/// Leader only: applies the key rotation schedule.
async fn rotate_keys(
    api: Api<Secret>,
    options: OperatorOptions,
    leader: watch::Receiver<bool>,
    catalog: Arc<ArcSwap<Catalog>>,
    defaults: Defaults,
    audit: Arc<crate::audit::Audit>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let rotation = key_rotation(&options);
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
            interval: rotation.interval,
            publish_ahead: rotation.publish_ahead,
            retain: longest.as_secs() as i64 + 60,
        };
        if let Err(e) = signing_keys::rotate(&api, &options.signing_keys_secret, &policy, &audit).await {
            tracing::warn!(error = %e, "cannot rotate signing keys");
        }
    }
}

/// IdentityProvider client secrets from Kubernetes Secrets, read in the IdentityProvider's
/// namespace (validation admits IdentityProviders only in the operator's namespace).
struct KubernetesSecrets {
    client: kube::Client,
}

#[async_trait::async_trait]
impl crate::identity::upstream::SecretResolver for KubernetesSecrets {
    async fn resolve(&self, namespace: &str, source: &crate::api::SecretSource) -> Result<String, String> {
        let Some(reference) = &source.secret_key_ref else {
            if let Some(var) = &source.env {
                return std::env::var(var).map_err(|_| format!("environment variable {var} is not set"));
            }
            return Err("in a cluster, name the client secret with secretKeyRef (or env)".into());
        };
        let api: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(self.client.clone(), namespace);
        let secret = api
            .get_opt(&reference.name)
            .await
            .map_err(|e| format!("cannot read Secret {namespace}/{}: {e}", reference.name))?
            .ok_or_else(|| format!("Secret {namespace}/{} does not exist", reference.name))?;
        let bytes = secret
            .data
            .and_then(|mut d| d.remove(&reference.key))
            .ok_or_else(|| format!("Secret {namespace}/{} has no key {:?}", reference.name, reference.key))?;
        String::from_utf8(bytes.0).map(|s| s.trim().to_string()).map_err(|_| "the secret is not UTF-8 text".into())
    }
}

/// The controller's readiness check of IdentityProviders, over the same relying-party
/// client that signs users in.
struct UpstreamCheck(Arc<crate::identity::upstream::Upstreams>);

#[async_trait::async_trait]
impl reconcile::ProviderCheck for UpstreamCheck {
    async fn check(&self, provider: &crate::catalog::UpstreamProvider) -> Result<(), String> {
        self.0.check(provider).await.map_err(|e| e.to_string())
    }
}
