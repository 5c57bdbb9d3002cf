//! The `inbound` command line.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use inbound::{
    api::{DurationString, crds_yaml},
    catalog::folder,
    controller::OperatorOptions,
    serve::{Running, ServeOptions, start},
};

#[derive(Parser)]
#[command(name = "inbound", version, about = "Kubernetes-native OAuth 2.1 / OpenID Connect provider for inbound apps")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve OAuth from a folder of manifests, with embedded storage (the quickstart).
    Serve {
        /// Folder of manifests (InboundApp, Scope, ClientGrant, ConsentPolicy); watched for edits.
        #[arg(long, env = "INBOUND_CONFIG")]
        config: PathBuf,
        /// Where state lives: SQLite database, signing keys, app credentials.
        #[arg(long, env = "INBOUND_DATA_DIR", default_value = ".inbound")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, env = "INBOUND_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Public issuer URL (default: http://<listen address>).
        #[arg(long, env = "INBOUND_ISSUER")]
        issuer: Option<String>,
        /// Audience of tokens whose grant names no resource (default: the issuer).
        #[arg(long, env = "INBOUND_DEFAULT_AUDIENCE")]
        default_audience: Option<String>,
        /// Access token lifetime when the app does not set one.
        #[arg(long, env = "INBOUND_ACCESS_TOKEN_LIFETIME", default_value = "15m")]
        access_token_lifetime: String,
        /// Folder of templates overriding the built-in login, consent, error and account pages.
        #[arg(long, env = "INBOUND_TEMPLATES")]
        templates: Option<PathBuf>,
        /// Runtime state store: `postgres://user:pass@host/db` (several replicas share it);
        /// default: embedded SQLite in the data directory.
        #[arg(long, env = "INBOUND_STORE", hide_env_values = true)]
        store: Option<String>,
        /// Proxies (CIDR blocks or addresses, comma-separated) whose X-Forwarded-For is
        /// believed when limiting registrations per source address.
        #[arg(long, env = "INBOUND_TRUSTED_PROXIES", value_delimiter = ',')]
        trusted_proxies: Vec<String>,
    },
    /// Run in a Kubernetes cluster: watch the custom resources, serve OAuth from them, and
    /// (on the elected leader) write credentials Secrets, signing keys, status and events.
    Operator(Box<OperatorArgs>),
    /// List or delete self-registered clients (Dynamic Client Registration) in the store.
    Clients {
        #[command(subcommand)]
        action: ClientsAction,
    },
    /// Read a password from standard input and print its argon2 hash (for DevelopmentUser).
    HashPassword,
    /// Validate manifests offline; exits non-zero on any problem.
    Check {
        /// Files or folders of manifests.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the CustomResourceDefinitions.
    Crds,
    /// Print the RFC 9728 protected-resource metadata of every resource the manifests
    /// declare, as one JSON object keyed by resource (for resource servers to serve at
    /// `/.well-known/oauth-protected-resource{path}`).
    ResourceMetadata {
        /// Files or folders of manifests.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The issuer clients reach (the authorization server named in the metadata).
        #[arg(long, env = "INBOUND_ISSUER")]
        issuer: String,
    },
}

#[derive(Subcommand)]
enum ClientsAction {
    /// List registered clients matching the filters (all without filters).
    List {
        #[command(flatten)]
        target: ClientsTarget,
        /// `table` or `json`.
        #[arg(long, default_value = "table")]
        output: String,
    },
    /// Delete the registered clients matching the filters, with their consents and tokens.
    Delete {
        #[command(flatten)]
        target: ClientsTarget,
        /// Only print what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Where the store is and which clients to select.
#[derive(clap::Args)]
struct ClientsTarget {
    /// Data directory of `inbound serve` (its state.db).
    #[arg(long, env = "INBOUND_DATA_DIR", default_value = ".inbound")]
    data_dir: PathBuf,
    /// PostgreSQL store URL (instead of the data directory's SQLite).
    #[arg(long, env = "INBOUND_STORE", hide_env_values = true)]
    store: Option<String>,
    /// Client id equals.
    #[arg(long)]
    id: Option<String>,
    /// Client id contains.
    #[arg(long)]
    id_contains: Option<String>,
    /// Client id is one of (comma-separated).
    #[arg(long, value_delimiter = ',')]
    id_in: Vec<String>,
    /// Client name equals.
    #[arg(long)]
    name: Option<String>,
    /// Client name contains (case-insensitive).
    #[arg(long)]
    name_contains: Option<String>,
    /// Client name matches a glob (`*`, `?`; case-insensitive).
    #[arg(long)]
    name_matches: Option<String>,
    /// Registered before (RFC 3339, YYYY-MM-DD, or an age such as 30d).
    #[arg(long)]
    created_before: Option<String>,
    #[arg(long)]
    created_after: Option<String>,
    /// Last used before (same formats).
    #[arg(long)]
    last_used_before: Option<String>,
    #[arg(long)]
    last_used_after: Option<String>,
}

impl ClientsTarget {
    fn filter(&self) -> Result<inbound::admin::ClientFilter, String> {
        let now = jiff::Timestamp::now().as_second();
        let time = |v: &Option<String>| v.as_deref().map(|v| inbound::admin::parse_time(v, now)).transpose();
        Ok(inbound::admin::ClientFilter {
            id_equals: self.id.clone(),
            id_contains: self.id_contains.clone(),
            id_in: self.id_in.clone(),
            name_equals: self.name.clone(),
            name_contains: self.name_contains.clone(),
            name_matches: self.name_matches.clone(),
            created_before: time(&self.created_before)?,
            created_after: time(&self.created_after)?,
            last_used_before: time(&self.last_used_before)?,
            last_used_after: time(&self.last_used_after)?,
        })
    }
}

async fn clients(action: ClientsAction) -> anyhow::Result<ExitCode> {
    let (target, list_output, dry_run, delete) = match &action {
        ClientsAction::List { target, output } => (target, Some(output.as_str()), false, false),
        ClientsAction::Delete { target, dry_run } => (target, None, *dry_run, true),
    };
    let filter = target.filter().map_err(|e| anyhow::anyhow!(e))?;
    if delete && filter.is_empty() {
        anyhow::bail!("refusing to delete every client: give at least one filter (e.g. --last-used-before 30d)");
    }
    let db = target.data_dir.join("state.db");
    if target.store.is_none() && !db.exists() {
        anyhow::bail!("no store at {} (use --data-dir or --store)", db.display());
    }
    let store = inbound::store::open(target.store.as_deref(), &db).await?;
    let selected: Vec<_> = store.registered_clients().await?.into_iter().filter(|c| filter.matches(c)).collect();
    let summaries: Vec<inbound::admin::ClientSummary> = selected.iter().map(Into::into).collect();
    match list_output {
        Some("json") => println!("{}", serde_json::to_string_pretty(&summaries)?),
        _ => {
            println!(
                "{:<38} {:<28} {:<20} {:<22} {:<22} REDIRECT URIS",
                "CLIENT ID", "NAME", "AUTH", "CREATED", "LAST USED"
            );
            for c in &summaries {
                println!(
                    "{:<38} {:<28} {:<20} {:<22} {:<22} {}",
                    c.client_id,
                    c.client_name.chars().take(28).collect::<String>(),
                    c.token_endpoint_auth_method,
                    c.created_at,
                    c.last_used_at,
                    c.redirect_uris.join(",")
                );
            }
        }
    }
    if delete {
        let now = jiff::Timestamp::now().as_second();
        for c in &selected {
            if dry_run {
                println!("would delete {}", c.client_id);
            } else if store.delete_registered_client(&c.client_id, now).await? {
                println!("deleted {}", c.client_id);
            }
        }
    }
    eprintln!("{} client(s)", selected.len());
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
struct OperatorArgs {
    /// Address to listen on (OAuth endpoints, /healthz, /readyz, /metrics).
    #[arg(long, env = "INBOUND_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Public issuer URL, as clients reach the Service (e.g. https://auth.example.com).
    #[arg(long, env = "INBOUND_ISSUER")]
    issuer: String,
    /// The operator's namespace (holds the leader Lease and the signing-keys Secret);
    /// default: the namespace of the Pod's ServiceAccount.
    #[arg(long, env = "INBOUND_NAMESPACE")]
    namespace: Option<String>,
    /// Namespaces to watch, comma-separated; empty: all namespaces.
    #[arg(long, env = "INBOUND_WATCH_NAMESPACES", value_delimiter = ',', default_value = "")]
    watch_namespaces: Vec<String>,
    /// Where the embedded SQLite store lives (a volume) when --store is not set.
    #[arg(long, env = "INBOUND_DATA_DIR", default_value = "/var/lib/inbound")]
    data_dir: PathBuf,
    /// Runtime state store: `postgres://...` (required for more than one replica).
    #[arg(long, env = "INBOUND_STORE", hide_env_values = true)]
    store: Option<String>,
    /// Name of the Secret holding the signing keys, in the operator's namespace.
    #[arg(long, env = "INBOUND_SIGNING_KEYS_SECRET", default_value = "inbound-signing-keys")]
    signing_keys_secret: String,
    /// Name of the leader-election Lease, in the operator's namespace.
    #[arg(long, env = "INBOUND_LEASE_NAME", default_value = "inbound-leader")]
    lease_name: String,
    /// This replica's identity in the Lease (default: the host name, i.e. the Pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// How long a leader holds the Lease without renewing it.
    #[arg(long, env = "INBOUND_LEASE_DURATION", default_value = "15s")]
    lease_duration: String,
    /// How long a signing key signs before its successor takes over.
    #[arg(long, env = "INBOUND_KEY_ROTATION_INTERVAL", default_value = "30d")]
    key_rotation_interval: String,
    /// How long a successor key is published before it signs (> the JWKS cache lifetime of
    /// verifiers).
    #[arg(long, env = "INBOUND_KEY_PUBLISH_AHEAD", default_value = "24h")]
    key_publish_ahead: String,
    /// After a client secret rotation, how long the previous secret still works (apps can
    /// override it with spec.secretRotationOverlap).
    #[arg(long, env = "INBOUND_SECRET_ROTATION_OVERLAP", default_value = "24h")]
    secret_rotation_overlap: String,
    /// Audience of tokens whose grant names no resource (default: the issuer).
    #[arg(long, env = "INBOUND_DEFAULT_AUDIENCE")]
    default_audience: Option<String>,
    /// Access token lifetime when the app does not set one.
    #[arg(long, env = "INBOUND_ACCESS_TOKEN_LIFETIME", default_value = "15m")]
    access_token_lifetime: String,
    /// Full re-check of every resource even without changes.
    #[arg(long, env = "INBOUND_RESYNC_INTERVAL", default_value = "30s")]
    resync_interval: String,
    /// Folder of templates overriding the built-in pages.
    #[arg(long, env = "INBOUND_TEMPLATES")]
    templates: Option<PathBuf>,
    /// Proxies (CIDR blocks or addresses, comma-separated) whose X-Forwarded-For is believed
    /// when limiting registrations per source address (the Ingress controller's Pod range).
    #[arg(long, env = "INBOUND_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<String>,
}

fn duration_arg(flag: &str, value: &str) -> Result<Duration, String> {
    DurationString(value.to_string()).parse().map_err(|e| format!("--{flag} {e}"))
}

impl OperatorArgs {
    fn options(self) -> Result<OperatorOptions, String> {
        const SA_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
        let namespace = match self.namespace.filter(|n| !n.is_empty()) {
            Some(ns) => ns,
            None => std::fs::read_to_string(SA_NAMESPACE)
                .map(|s| s.trim().to_string())
                .map_err(|_| "--namespace is required outside a Pod (no ServiceAccount namespace file)".to_string())?,
        };
        let identity = match self.identity.filter(|n| !n.is_empty()) {
            Some(id) => id,
            None => std::fs::read_to_string("/etc/hostname")
                .map(|s| s.trim().to_string())
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| format!("inbound-{}", std::process::id())),
        };
        Ok(OperatorOptions {
            listen: self.listen,
            issuer: self.issuer,
            namespace,
            watch_namespaces: self
                .watch_namespaces
                .into_iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect(),
            data_dir: self.data_dir,
            store: self.store.filter(|s| !s.is_empty()),
            signing_keys_secret: self.signing_keys_secret,
            lease_name: self.lease_name,
            identity,
            lease_duration: duration_arg("lease-duration", &self.lease_duration)?,
            key_rotation_interval: duration_arg("key-rotation-interval", &self.key_rotation_interval)?,
            key_publish_ahead: duration_arg("key-publish-ahead", &self.key_publish_ahead)?,
            default_audience: self.default_audience,
            access_token_lifetime: duration_arg("access-token-lifetime", &self.access_token_lifetime)?,
            secret_rotation_overlap: duration_arg("secret-rotation-overlap", &self.secret_rotation_overlap)?,
            resync_interval: duration_arg("resync-interval", &self.resync_interval)?,
            maintenance_interval: Duration::from_secs(5),
            templates: self.templates,
            trusted_proxies: parse_cidrs(&self.trusted_proxies)?,
        })
    }
}

/// `--trusted-proxies` values (empty entries ignored, so `INBOUND_TRUSTED_PROXIES=""` is none).
fn parse_cidrs(values: &[String]) -> Result<Vec<inbound::http::client_ip::Cidr>, String> {
    values
        .iter()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.parse().map_err(|e| format!("--trusted-proxies: {e}")))
        .collect()
}

async fn operator(options: OperatorOptions) -> anyhow::Result<()> {
    let running = inbound::controller::start(options).await?;
    tracing::info!(listening = %running.addr, issuer = %running.state.server.issuer(), "operator started");
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => {
            print!("{}", crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Check { paths } => check(&paths),
        Command::ResourceMetadata { paths, issuer } => match folder::load(&paths) {
            Ok(manifests) => {
                let all = inbound::resource_server::declared_metadata(&manifests, &issuer);
                println!("{}", serde_json::to_string_pretty(&all).expect("metadata serializes"));
                ExitCode::SUCCESS
            }
            Err(problems) => {
                for problem in &problems {
                    eprintln!("{problem}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Clients { action } => match runtime().block_on(clients(action)) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::HashPassword => {
            let mut password = String::new();
            if std::io::stdin().read_line(&mut password).is_err() || password.trim_end_matches(['\r', '\n']).is_empty()
            {
                eprintln!("error: type the password on standard input");
                return ExitCode::from(2);
            }
            println!("{}", inbound::identity::hash_password(password.trim_end_matches(['\r', '\n'])));
            ExitCode::SUCCESS
        }
        Command::Operator(args) => {
            init_tracing();
            let options = match args.options() {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            match runtime().block_on(operator(options)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve {
            config,
            data_dir,
            listen,
            issuer,
            default_audience,
            access_token_lifetime,
            templates,
            store,
            trusted_proxies,
        } => {
            init_tracing();
            let lifetime = match DurationString(access_token_lifetime).parse() {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("error: --access-token-lifetime {e}");
                    return ExitCode::from(2);
                }
            };
            let options = ServeOptions {
                config: vec![config],
                data_dir,
                listen,
                issuer,
                default_audience,
                access_token_lifetime: lifetime,
                reload_interval: Duration::from_secs(1),
                templates,
                store,
                maintenance_interval: Duration::from_secs(5),
                trusted_proxies: match parse_cidrs(&trusted_proxies) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            let runtime = runtime();
            match runtime.block_on(serve(options)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The async runtime. `INBOUND_WORKER_THREADS=1` gives a single-threaded runtime (one core,
/// no work stealing: the cheapest when the process is pinned to one CPU); otherwise a
/// multi-threaded runtime with that many workers (default: one per CPU).
fn runtime() -> tokio::runtime::Runtime {
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

fn check(paths: &[PathBuf]) -> ExitCode {
    match folder::load(paths) {
        Ok(manifests) => {
            println!("{} object(s) checked, no problems", manifests.len());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            eprintln!("{} problem(s)", problems.len());
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_env("INBOUND_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

async fn serve(options: ServeOptions) -> anyhow::Result<()> {
    let config = options.config[0].display().to_string();
    let running = start(options).await?;
    print_banner(&running, &config);
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

/// What a new user needs to make the first request: printed, not logged (it is for a human).
fn print_banner(running: &Running, config: &str) {
    let issuer = &running.issuer;
    println!("inbound is serving {config} (edits are picked up live)");
    println!("  issuer    {issuer}");
    println!("  listening {}", running.addr);
    println!("  discovery {issuer}/.well-known/openid-configuration");
    println!("  data dir  {} (state.db, keys.json, credentials/)", running.data_dir.display());
    println!();
    println!("apps:");
    for app in &running.apps {
        let kind = if app.confidential { "confidential" } else { "public" };
        println!("  {:<32} {kind:<12} client_id {}", app.key.to_string(), app.client_id);
        println!("  {:<32} credentials in {}/", "", app.dir.display());
    }
    let catalog = running.state.catalog.load();
    let m2m = running.apps.iter().find(|a| {
        catalog.client(&a.client_id).is_some_and(|c| c.allows_grant(inbound::api::GrantType::ClientCredentials))
    });
    let cli = running.apps.iter().find(|a| {
        catalog
            .client(&a.client_id)
            .is_some_and(|c| !c.is_confidential() && c.allows_grant(inbound::api::GrantType::AuthorizationCode))
    });
    if let Some(app) = cli {
        // A fresh PKCE pair for this run: the verifier stays in the printed command.
        let verifier = inbound::secrets::random_token(32);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
        let challenge = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, digest.as_ref());
        let redirect = "http://127.0.0.1:9999/callback";
        let url = format!(
            "{issuer}/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}&state=quickstart&code_challenge={challenge}&code_challenge_method=S256",
            app.client_id,
            url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>(),
            url::form_urlencoded::byte_serialize(b"openid profile email billing:read billing:refund")
                .collect::<String>(),
        );
        println!();
        println!("sign in as a user ({}, authorization code + PKCE; alice/wonderland or bob/builder):", app.key);
        println!("  open {url}");
        println!("  after consent the browser lands on {redirect}?code=...; exchange the code:");
        println!(
            "  curl -s -d grant_type=authorization_code -d client_id={} -d redirect_uri={redirect} -d code_verifier={verifier} -d code=PASTE_CODE {issuer}/token",
            app.client_id
        );
        println!("  connected apps and revocation: {issuer}/account/apps");
    }
    if let Some(app) = m2m {
        let dir = app.dir.display();
        println!();
        println!("get a token ({}, client_credentials):", app.key);
        println!(
            "  TOKEN=$(curl -s -u \"$(cat {dir}/client_id):$(cat {dir}/client_secret)\" -d grant_type=client_credentials {issuer}/token | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')"
        );
        println!("introspect it:");
        println!(
            "  curl -s -u \"$(cat {dir}/client_id):$(cat {dir}/client_secret)\" -d token=\"$TOKEN\" {issuer}/introspect"
        );
    }
}
