//! `inbound serve`: the standalone server on a folder of manifests.
//!
//! State lives in a data directory: `state.db` (SQLite), `keys.json` (signing keys and the
//! secret-hashing key, 0600) and `credentials/<namespace>/<secret name>/` holding
//! `client_id`, `client_secret`, `issuer` and `token_url` as one file each: the same keys,
//! laid out the same way, as the Kubernetes Secret the operator writes and a Pod mounts.

mod banner;
mod provision;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::Context;
use arc_swap::ArcSwap;

use super::{Assembly, Running, Tasks, Upkeep};
use crate::catalog::{Catalog, Defaults, folder};
use crate::clock::now;
use crate::http::client_ip::Cidr;
use crate::secrets::SecretHasher;
use crate::tokens::KeySet;

pub use banner::Banner;

/// The apps a manifest folder declares, as the client listing shows them, with the client
/// ids the store holds for them (`inbound clients list --config DIR`).
pub async fn declared_clients(
    config: &[PathBuf],
    store: &dyn crate::store::Store,
) -> anyhow::Result<Vec<crate::admin::ClientSummary>> {
    let manifests = folder::load(config, &Default::default()).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        anyhow::anyhow!("the configuration is invalid:\n  {}", lines.join("\n  "))
    })?;
    let mut out = Vec::new();
    for m in &manifests {
        if let crate::catalog::manifest::Object::App(app) = &m.object {
            let key = crate::api::ObjectKey::of(&app.metadata);
            let client_id = provision::client_id_for(store, app, &key).await?;
            out.push(crate::admin::ClientSummary::declared(&key, &client_id, &app.spec));
        }
    }
    out.sort_by(|a, b| a.app.cmp(&b.app));
    Ok(out)
}
pub use provision::{AppCredentials, credentials_dir};

/// How to run the standalone server.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Folder (or files) of manifests.
    pub config: Vec<PathBuf>,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Health and metrics on a listener of their own (`/metrics` then leaves the public one).
    pub metrics_listen: Option<SocketAddr>,
    /// Public issuer URL; `http://<listen address>` when unset.
    pub issuer: Option<String>,
    pub default_audience: Option<String>,
    pub access_token_lifetime: Duration,
    pub session_lifetime: Duration,
    /// How often the folder is checked for edits.
    pub reload_interval: Duration,
    /// Folder of templates overriding the built-in pages (same file names).
    pub templates: Option<PathBuf>,
    /// Product name, logo and colour of the pages.
    pub branding: crate::http::pages::Branding,
    /// `postgres://...` for a shared PostgreSQL store; None for SQLite in the data dir.
    pub store: Option<String>,
    /// How often revocations are synced and expired rows purged.
    pub maintenance_interval: Duration,
    /// Proxies (Ingress, load balancer) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Who owns which resource, which policy enables self-registration (README "Who can
    /// mint what").
    pub trust: crate::catalog::validate::Trust,
    /// Which ServiceAccount tokens and issuers' JWTs are accepted (JWT bearer grant).
    pub workload: super::workload::WorkloadIdentity,
    /// The SMTP relay email is sent through (CIBA approval links); none: no email.
    pub smtp: Option<crate::mail::SmtpOptions>,
    /// Where the audit trail goes.
    pub audit: crate::audit::AuditOptions,
}

/// A started folder server and what its startup banner tells a human.
pub struct Started {
    pub running: Running,
    pub banner: Banner,
}

/// Loads the configuration, provisions credentials, binds and starts serving.
/// Fails (before binding) if the configuration is invalid.
pub async fn start(options: ServeOptions) -> anyhow::Result<Started> {
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
    let manifests = folder::load(&options.config, &options.trust).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        anyhow::anyhow!("the configuration is invalid:\n  {}", lines.join("\n  "))
    })?;
    let configured_issuer = options.issuer.as_deref().map(super::checked_issuer).transpose()?;
    // Before binding: a wrong mail configuration fails the start, not the first email.
    let mailer = super::mailer(options.smtp.as_ref())?;

    let audit = Arc::new(crate::audit::Audit::open(&options.audit)?);
    let (listener, addr) = super::bind(options.listen).await?;
    let metrics = match options.metrics_listen {
        Some(listen) => Some(super::bind(listen).await?.0),
        None => None,
    };
    let issuer = match configured_issuer {
        Some(issuer) => issuer,
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
    // Made before the store, whose calls it times; the `metrics` listener is another thing.
    let series = crate::metrics::Metrics::default();
    let (store, revocations) = super::open_store(options.store.as_deref(), &options.data_dir, &series).await?;
    let hasher = SecretHasher::new(keys.load().secret_hash_key());
    let provisioner = provision::Provisioner {
        store: store.clone(),
        hasher: hasher.clone(),
        data_dir: options.data_dir.clone(),
        issuer: issuer.clone(),
        audit: audit.clone(),
    };
    let defaults = Defaults {
        access_token_lifetime: options.access_token_lifetime,
        session_lifetime: options.session_lifetime,
        ..Defaults::default()
    };
    let provisioned = provisioner.provision(&manifests).await?;
    let catalog = Arc::new(ArcSwap::from_pointee(provisioned.catalog(&manifests, &defaults)));

    let state = super::assemble(Assembly {
        issuer: issuer.clone(),
        default_audience: options.default_audience.clone(),
        keys: keys.clone(),
        hasher,
        store: store.clone(),
        revocations: revocations.clone(),
        verified: Default::default(),
        catalog: catalog.clone(),
        templates: options.templates.clone(),
        branding: options.branding.clone(),
        admin: None,
        trusted_proxies: options.trusted_proxies.clone(),
        secrets: Arc::new(crate::identity::upstream::LocalSecrets { base: secrets_base(&options.config) }),
        assertions: options.workload.assertions(&issuer, None, options.access_token_lifetime)?,
        audit: audit.clone(),
        metrics: series,
        mailer,
    })?;
    // The folder is loaded and the store answered: ready from the first request.
    state.ready.store(true, Ordering::Relaxed);

    let banner = Banner::new(&options.config, &issuer, addr, &options.data_dir, &provisioned, &catalog.load());
    let mut tasks = Tasks::new();
    // The key file is never rotated here (one document, written once by whichever process
    // created it): its age is reported, a next rotation is not.
    let upkeep = Upkeep {
        store,
        revocations,
        catalog: catalog.clone(),
        interval: options.maintenance_interval,
        keys,
        rotation: None,
    };
    tasks.serve_and_maintain(listener, metrics, &state, upkeep);
    tasks.spawn(watch_folder(
        Folder { paths: options.config.clone(), trust: options.trust.clone() },
        loaded_fingerprint,
        options.reload_interval,
        provisioner,
        defaults,
        catalog,
        tasks.stopped(),
    ));

    let running = Running { addr, issuer, data_dir: options.data_dir, state, tasks };
    Ok(Started { running, banner })
}

/// The manifests `inbound serve` follows, and the trust rules they are validated under.
struct Folder {
    paths: Vec<PathBuf>,
    trust: crate::catalog::validate::Trust,
}

/// Polls the folder; on a change, validates and swaps in a new snapshot. An invalid edit is
/// logged exactly as `inbound check` prints it and the last good snapshot keeps serving.
async fn watch_folder(
    Folder { paths, trust }: Folder,
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
        let manifests = match folder::load(&paths, &trust) {
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

/// Where `file:` client secrets of IdentityProviders are relative to: the (first)
/// configuration folder, or the folder of a configuration file.
fn secrets_base(config: &[PathBuf]) -> PathBuf {
    match config.first() {
        Some(path) if path.is_dir() => path.clone(),
        Some(path) => path.parent().map(PathBuf::from).unwrap_or_default(),
        None => PathBuf::from("."),
    }
}
