//! The `inbound` command line: clap types, and how their values become the runtime's
//! options. Flags are typed where they are declared (durations, CIDR blocks, the output
//! format), so a bad value is refused by clap with the flag's name, before anything starts.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::admin::{ClientFilter, ClientSummary};
use crate::api::{DurationError, DurationString, ObjectKey};
use crate::catalog::validate::Trust;
use crate::http::client_ip::Cidr;
use crate::mail::{SmtpOptions, SmtpTls};
use crate::runtime::{
    operator::{OperatorOptions, Role},
    serve::ServeOptions,
};

#[derive(Parser)]
#[command(name = "inbound", version, about = "Kubernetes-native OAuth 2.1 / OpenID Connect provider for inbound apps")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve OAuth from a folder of manifests, with embedded storage (the quickstart).
    Serve(Box<ServeArgs>),
    /// Run in a Kubernetes cluster: watch the custom resources, serve OAuth from them, and
    /// (on the elected leader) write credentials Secrets, signing keys, status and events.
    Operator(Box<OperatorArgs>),
    /// List or delete self-registered clients (Dynamic Client Registration) in the store.
    Clients {
        #[command(subcommand)]
        action: Box<ClientsAction>,
    },
    /// List or revoke users' consents in the store (the clients stay).
    Consents {
        #[command(subcommand)]
        action: Box<ConsentsAction>,
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
    /// Fetch a running server's OpenID Connect discovery document and check it (the chart's
    /// `helm test`): exits non-zero unless it answers with a document naming `--issuer`.
    Discover {
        /// Where the server is reached (e.g. its Service: http://inbound.inbound-system.svc).
        url: String,
        /// The issuer the document must name (default: any).
        #[arg(long)]
        issuer: Option<String>,
    },
}

/// Flags `serve` and `operator` share, with the same meaning and default in both.
/// (`--listen`, `--issuer` and `--data-dir` are per mode: their defaults differ.)
#[derive(Args)]
pub struct ServerArgs {
    /// Serve `/healthz`, `/readyz` and `/metrics` on this address too, and `/metrics` no
    /// longer on the public listener (e.g. `0.0.0.0:9090`, the chart's `metrics` port).
    #[arg(long, env = "INBOUND_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// On SIGTERM, how long to keep serving while reporting not ready, before closing the
    /// listener: the time load balancers and Service endpoints need to stop sending (e.g.
    /// `5s`; default none).
    #[arg(long, env = "INBOUND_SHUTDOWN_DELAY", value_parser = duration)]
    pub shutdown_delay: Option<Duration>,
    /// Write the audit trail (one JSON line per security-relevant act) to standard output.
    #[arg(long, env = "INBOUND_AUDIT_STDOUT", default_value_t = true, action = clap::ArgAction::Set)]
    pub audit_stdout: bool,
    /// Also append the audit trail to this file (created 0600; never truncated).
    #[arg(long, env = "INBOUND_AUDIT_FILE")]
    pub audit_file: Option<PathBuf>,
    /// The diagnostic log's format on standard error: `text` or `json` (one object per line).
    #[arg(long, env = "INBOUND_LOG_FORMAT", value_enum, default_value_t = crate::runtime::LogFormat::Text)]
    pub log_format: crate::runtime::LogFormat,
    /// Audience of tokens whose grant names no resource (default: the issuer).
    #[arg(long, env = "INBOUND_DEFAULT_AUDIENCE")]
    pub default_audience: Option<String>,
    /// Access token lifetime when the app does not set one.
    #[arg(long, env = "INBOUND_ACCESS_TOKEN_LIFETIME", default_value = "15m", value_parser = duration)]
    pub access_token_lifetime: Duration,
    /// How long a user's sign-in lasts (apps may ask for less: `spec.tokens.sessionLifetime`).
    #[arg(long, env = "INBOUND_SESSION_LIFETIME", default_value = "8h", value_parser = duration)]
    pub session_lifetime: Duration,
    /// Product name on the login, consent and account pages (your application's name).
    #[arg(long, env = "INBOUND_BRAND_NAME", default_value = "inbound")]
    pub brand_name: String,
    /// https (or data:image/) URL of the logo on those pages.
    #[arg(long, env = "INBOUND_BRAND_LOGO")]
    pub brand_logo: Option<String>,
    /// Primary colour of those pages, #rrggbb.
    #[arg(long, env = "INBOUND_BRAND_COLOR", default_value = "#2454d6")]
    pub brand_color: String,
    /// Folder of templates overriding the built-in login, consent, error and account pages.
    #[arg(long, env = "INBOUND_TEMPLATES")]
    pub templates: Option<PathBuf>,
    /// Runtime state store: `postgres://user:pass@host/db` (several replicas share it; required
    /// for more than one); default: embedded SQLite in the data directory.
    #[arg(long, env = "INBOUND_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// Proxies (CIDR blocks or addresses, comma-separated) whose X-Forwarded-For is believed
    /// when limiting registrations per source address (in a cluster: the Ingress controller's
    /// Pod range).
    #[arg(long, env = "INBOUND_TRUSTED_PROXIES", value_delimiter = ',', value_parser = trusted_proxy)]
    pub trusted_proxies: Vec<Option<Cidr>>,
    /// The one ConsentPolicy allowed to enable self-registration, as NAMESPACE/NAME. Default:
    /// in a cluster, the oldest such policy in the operator's namespace; in a folder, the
    /// first. Any other policy enabling it is refused (InvalidSpec).
    #[arg(long, env = "INBOUND_REGISTRATION_POLICY", value_parser = registration_policy)]
    pub registration_policy: Option<PolicyName>,
    /// Pins a resource URI (token audience) to the namespace that owns it, as URI=NAMESPACE
    /// (repeat the flag; comma-separated in the variable). Without a pin, the namespace whose
    /// Scope declared the resource first owns it.
    #[arg(long = "resource-owner", env = "INBOUND_RESOURCE_OWNERS", value_delimiter = ',', value_parser = resource_owner)]
    pub resource_owners: Vec<Option<(String, String)>>,
    /// Accept Kubernetes ServiceAccount tokens of this issuer (`iss`) in the JWT bearer
    /// grant, validated offline against its keys (another cluster, or `inbound serve`). In a
    /// cluster without it, the local API server reviews them (TokenReview).
    #[arg(long, env = "INBOUND_SERVICE_ACCOUNT_ISSUER")]
    pub service_account_issuer: Option<String>,
    /// The keys of --service-account-issuer: a JWKS file or URL (default: its discovery
    /// document's jwks_uri).
    #[arg(long, env = "INBOUND_SERVICE_ACCOUNT_JWKS")]
    pub service_account_jwks: Option<String>,
    /// Audiences a ServiceAccount token may carry instead of the issuer (repeat the flag;
    /// comma-separated in the variable).
    #[arg(long = "service-account-audience", env = "INBOUND_SERVICE_ACCOUNT_AUDIENCES", value_delimiter = ',')]
    pub service_account_audiences: Vec<String>,
    /// Longest validity of a ServiceAccount token validated offline (its deletion cannot be
    /// seen there).
    #[arg(long, env = "INBOUND_SERVICE_ACCOUNT_MAX_LIFETIME", default_value = "10m", value_parser = duration)]
    pub service_account_max_lifetime: Duration,
    /// Let apps' trusted issuers be fetched from private addresses (loopback, cluster
    /// networks). Off by default: any namespace can declare a trusted issuer URL.
    #[arg(long, env = "INBOUND_ALLOW_PRIVATE_ISSUERS")]
    pub allow_private_issuers: bool,
    #[command(flatten)]
    pub smtp: SmtpArgs,
}

/// The SMTP relay email is sent through (CIBA approval links). Without `--smtp-host` no
/// email is sent; the other `--smtp-*` flags then are refused rather than ignored.
#[derive(Args)]
pub struct SmtpArgs {
    /// SMTP relay to send email through (host name, checked against its TLS certificate, or
    /// IP address). Unset: no email (CIBA by email is unavailable).
    // No `requires = "smtp_from"`: an empty INBOUND_SMTP_HOST (a blank chart value) is no
    // relay, yet clap counts it as given; a missing From is refused at start instead.
    #[arg(long, env = "INBOUND_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// The relay's port (587: submission with STARTTLS; 465: implicit TLS).
    #[arg(long, env = "INBOUND_SMTP_PORT", default_value_t = SmtpOptions::DEFAULT_PORT)]
    pub smtp_port: u16,
    /// How the connection is secured: `starttls` (required, never opportunistic), `tls`
    /// (implicit TLS), or `none` (only to a loopback host, e.g. a relay sidecar).
    #[arg(long, env = "INBOUND_SMTP_TLS", default_value = "starttls", value_parser = smtp_tls)]
    pub smtp_tls: SmtpTls,
    /// The From address of every email, e.g. `Example <noreply@example.com>`.
    #[arg(long, env = "INBOUND_SMTP_FROM", requires = "smtp_host")]
    pub smtp_from: Option<String>,
    /// SMTP AUTH user name (with --smtp-password-file).
    #[arg(long, env = "INBOUND_SMTP_USERNAME", requires = "smtp_host", requires = "smtp_password_file")]
    pub smtp_username: Option<String>,
    /// File holding the SMTP password (e.g. a mounted Secret key; read once at start,
    /// surrounding whitespace trimmed). The password itself is never a flag or a variable:
    /// those show in `ps`, `/proc/PID/environ` and `kubectl describe`.
    #[arg(long, env = "INBOUND_SMTP_PASSWORD_FILE", requires = "smtp_username")]
    pub smtp_password_file: Option<PathBuf>,
    /// PEM certificates trusted for the relay besides the system roots (a private CA).
    #[arg(long, env = "INBOUND_SMTP_CA_FILE", requires = "smtp_host")]
    pub smtp_ca_file: Option<PathBuf>,
    /// Longest wait for the relay: each SMTP command, and each email as a whole.
    #[arg(long, env = "INBOUND_SMTP_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub smtp_timeout: Duration,
}

impl SmtpArgs {
    /// The relay's options; none without a host (an empty `INBOUND_SMTP_HOST` included).
    fn options(&self) -> Option<SmtpOptions> {
        let host = self.smtp_host.as_deref().map(str::trim).filter(|h| !h.is_empty())?;
        Some(SmtpOptions {
            host: host.to_string(),
            port: self.smtp_port,
            tls: self.smtp_tls,
            from: self.smtp_from.clone().unwrap_or_default(),
            username: self.smtp_username.clone().filter(|u| !u.is_empty()),
            password_file: self.smtp_password_file.clone().filter(|p| !p.as_os_str().is_empty()),
            timeout: self.smtp_timeout,
            ca_file: self.smtp_ca_file.clone().filter(|p| !p.as_os_str().is_empty()),
        })
    }
}

/// `--registration-policy`: a policy's NAMESPACE/NAME, or nothing (an empty chart value).
#[derive(Clone, Debug)]
pub struct PolicyName(Option<ObjectKey>);

impl ServerArgs {
    /// The pages' branding (checked when the pages are built).
    fn branding(&self) -> crate::http::pages::Branding {
        crate::http::pages::Branding {
            product_name: self.brand_name.clone(),
            logo_uri: self.brand_logo.clone(),
            primary_color: self.brand_color.clone(),
        }
    }

    /// An empty `INBOUND_STORE` (a chart value left blank) means the default store.
    fn audit(&self) -> crate::audit::AuditOptions {
        crate::audit::AuditOptions { stdout: self.audit_stdout, file: self.audit_file.clone(), held: false }
    }

    fn store(&self) -> Option<String> {
        self.store.clone().filter(|s| !s.is_empty())
    }

    /// Empty entries dropped, so `INBOUND_TRUSTED_PROXIES=""` is none.
    fn trusted_proxies(&self) -> Vec<Cidr> {
        self.trusted_proxies.iter().flatten().copied().collect()
    }

    /// Workload identity: which ServiceAccount tokens and issuers are accepted.
    fn workload(&self) -> crate::runtime::workload::WorkloadIdentity {
        crate::runtime::workload::WorkloadIdentity {
            service_account_issuer: self.service_account_issuer.clone().filter(|s| !s.is_empty()),
            service_account_jwks: self.service_account_jwks.clone().filter(|s| !s.is_empty()),
            service_account_audiences: self.service_account_audiences.clone(),
            service_account_max_lifetime: Some(self.service_account_max_lifetime),
            allow_private_issuers: self.allow_private_issuers,
        }
    }

    /// The trust decisions of this deployment; `operator_namespace` in a cluster.
    fn trust(&self, operator_namespace: Option<String>) -> Trust {
        Trust {
            operator_namespace,
            registration_policy: self.registration_policy.clone().and_then(|p| p.0),
            resource_owners: self.resource_owners.iter().flatten().cloned().collect(),
        }
    }
}

/// How often revocations are synced, unused registered clients reaped and expired rows
/// purged (both modes).
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Args)]
pub struct ServeArgs {
    /// Folder of manifests (InboundApp, Scope, ClientGrant, ConsentPolicy); watched for edits.
    #[arg(long, env = "INBOUND_CONFIG")]
    pub config: PathBuf,
    /// Where state lives: SQLite database, signing keys, app credentials.
    #[arg(long, env = "INBOUND_DATA_DIR", default_value = ".inbound")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "INBOUND_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Public issuer URL (default: http://<listen address>).
    #[arg(long, env = "INBOUND_ISSUER")]
    pub issuer: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

impl ServeArgs {
    pub fn options(self) -> ServeOptions {
        ServeOptions {
            config: vec![self.config],
            data_dir: self.data_dir,
            listen: self.listen,
            metrics_listen: self.server.metrics_listen,
            issuer: self.issuer,
            default_audience: self.server.default_audience.clone(),
            access_token_lifetime: self.server.access_token_lifetime,
            session_lifetime: self.server.session_lifetime,
            reload_interval: Duration::from_secs(1),
            templates: self.server.templates.clone(),
            branding: self.server.branding(),
            store: self.server.store(),
            maintenance_interval: MAINTENANCE_INTERVAL,
            trusted_proxies: self.server.trusted_proxies(),
            trust: self.server.trust(None),
            workload: self.server.workload(),
            smtp: self.server.smtp.options(),
            // The banner is printed first (main releases the trail after it).
            audit: crate::audit::AuditOptions { held: true, ..self.server.audit() },
        }
    }
}

#[derive(Args)]
pub struct OperatorArgs {
    /// Address to listen on (OAuth endpoints, /healthz, /readyz, /metrics).
    #[arg(long, env = "INBOUND_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Public issuer URL, as clients reach the Service (e.g. https://auth.example.com).
    #[arg(long, env = "INBOUND_ISSUER")]
    pub issuer: String,
    /// The server as workloads in the cluster reach it (e.g. its Service,
    /// http://inbound.inbound-system.svc): credentials Secrets then carry
    /// `in_cluster_token_url` beside the public URLs.
    #[arg(long, env = "INBOUND_IN_CLUSTER_URL")]
    pub in_cluster_url: Option<String>,
    /// What this process does: `all`, or one half of a split deployment (`server`: serves
    /// OAuth, reads only the four kinds and the signing keys, needs --store postgres://;
    /// `controller`: leads and writes Secrets, status, events and keys, serves the admin API).
    #[arg(long, env = "INBOUND_ROLE", value_enum, default_value_t = Role::All)]
    pub role: Role,
    /// Address of the admin API (`/admin/clients`), apart from the public listener; the
    /// default is reachable only from inside the Pod (`kubectl port-forward`).
    #[arg(long, env = "INBOUND_ADMIN_LISTEN", default_value = "127.0.0.1:8081")]
    pub admin_listen: SocketAddr,
    /// The audience admin API tokens must be bound to (`kubectl create token SA --audience
    /// ...`); default: the issuer followed by `/admin`.
    #[arg(long, env = "INBOUND_ADMIN_AUDIENCE")]
    pub admin_audience: Option<String>,
    /// The operator's namespace (holds the leader Lease and the signing-keys Secret);
    /// default: the namespace of the Pod's ServiceAccount.
    #[arg(long, env = "INBOUND_NAMESPACE")]
    pub namespace: Option<String>,
    /// Namespaces to watch, comma-separated; empty: all namespaces.
    #[arg(long, env = "INBOUND_WATCH_NAMESPACES", value_delimiter = ',', default_value = "")]
    pub watch_namespaces: Vec<String>,
    /// Where the embedded SQLite store lives (a volume) when --store is not set.
    #[arg(long, env = "INBOUND_DATA_DIR", default_value = "/var/lib/inbound")]
    pub data_dir: PathBuf,
    /// Name of the Secret holding the signing keys, in the operator's namespace.
    #[arg(long, env = "INBOUND_SIGNING_KEYS_SECRET", default_value = "inbound-signing-keys")]
    pub signing_keys_secret: String,
    /// Name of the leader-election Lease, in the operator's namespace.
    #[arg(long, env = "INBOUND_LEASE_NAME", default_value = "inbound-leader")]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: the host name, i.e. the Pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// How long a leader holds the Lease without renewing it.
    #[arg(long, env = "INBOUND_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    pub lease_duration: Duration,
    /// How long a signing key signs before its successor takes over.
    #[arg(long, env = "INBOUND_KEY_ROTATION_INTERVAL", default_value = "30d", value_parser = duration)]
    pub key_rotation_interval: Duration,
    /// How long a successor key is published before it signs (> the JWKS cache lifetime of
    /// verifiers).
    #[arg(long, env = "INBOUND_KEY_PUBLISH_AHEAD", default_value = "24h", value_parser = duration)]
    pub key_publish_ahead: Duration,
    /// After a client secret rotation, how long the previous secret still works (apps can
    /// override it with spec.secretRotationOverlap).
    #[arg(long, env = "INBOUND_SECRET_ROTATION_OVERLAP", default_value = "24h", value_parser = duration)]
    pub secret_rotation_overlap: Duration,
    /// Full re-check of every resource even without changes.
    #[arg(long, env = "INBOUND_RESYNC_INTERVAL", default_value = "30s", value_parser = duration)]
    pub resync_interval: Duration,
    #[command(flatten)]
    pub server: ServerArgs,
}

impl OperatorArgs {
    /// The options, with the namespace and identity a Pod provides filled in.
    pub fn options(self) -> Result<OperatorOptions, String> {
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
        let admin_audience = self
            .admin_audience
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| format!("{}/admin", self.issuer.trim_end_matches('/')));
        Ok(OperatorOptions {
            role: self.role,
            listen: self.listen,
            metrics_listen: self.server.metrics_listen,
            admin_listen: self.admin_listen,
            admin_audience,
            issuer: self.issuer,
            in_cluster_url: self.in_cluster_url.map(|url| url.trim_end_matches('/').to_string()),
            watch_namespaces: self
                .watch_namespaces
                .into_iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect(),
            data_dir: self.data_dir,
            store: self.server.store(),
            signing_keys_secret: self.signing_keys_secret,
            lease_name: self.lease_name,
            identity,
            lease_duration: self.lease_duration,
            key_rotation_interval: self.key_rotation_interval,
            key_publish_ahead: self.key_publish_ahead,
            default_audience: self.server.default_audience.clone(),
            access_token_lifetime: self.server.access_token_lifetime,
            session_lifetime: self.server.session_lifetime,
            secret_rotation_overlap: self.secret_rotation_overlap,
            resync_interval: self.resync_interval,
            maintenance_interval: MAINTENANCE_INTERVAL,
            templates: self.server.templates.clone(),
            branding: self.server.branding(),
            trusted_proxies: self.server.trusted_proxies(),
            trust: self.server.trust(Some(namespace.clone())),
            workload: self.server.workload(),
            smtp: self.server.smtp.options(),
            audit: self.server.audit(),
            namespace,
        })
    }
}

/// A duration flag: `90s`, `15m`, `1h30m`, `30d` (the syntax of the resources' durations).
fn duration(value: &str) -> Result<Duration, DurationError> {
    DurationString::from(value).parse()
}

fn smtp_tls(value: &str) -> Result<SmtpTls, String> {
    value.parse()
}

fn registration_policy(value: &str) -> Result<PolicyName, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(PolicyName(None));
    }
    match value.split_once('/') {
        Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(PolicyName(Some(ObjectKey { namespace: namespace.into(), name: name.into() })))
        }
        _ => Err(format!("{value:?} is not NAMESPACE/NAME")),
    }
}

/// One `--resource-owner URI=NAMESPACE`; an empty entry is none.
fn resource_owner(value: &str) -> Result<Option<(String, String)>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    match value.rsplit_once('=') {
        Some((uri, namespace)) if url::Url::parse(uri).is_ok() && !namespace.is_empty() => {
            Ok(Some((uri.to_string(), namespace.to_string())))
        }
        _ => Err(format!("{value:?} is not URI=NAMESPACE (an absolute resource URI and a namespace)")),
    }
}

/// One `--trusted-proxies` entry; an empty one (`a,,b`, or the variable set but empty) is
/// no proxy.
fn trusted_proxy(value: &str) -> Result<Option<Cidr>, String> {
    if value.trim().is_empty() { Ok(None) } else { value.parse().map(Some) }
}

#[derive(Subcommand)]
pub enum ClientsAction {
    /// List the clients matching the filters (all without filters): self-registered ones
    /// from the store, and with --config the apps the folder declares.
    List {
        #[command(flatten)]
        target: ClientsTarget,
        /// The manifest folder of `inbound serve`: its InboundApps are listed too (kind
        /// `declared`).
        #[arg(long)]
        config: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Add or remove tags of the self-registered clients matching the filters (declared
    /// apps' tags are their spec.tags).
    Tag {
        #[command(flatten)]
        target: ClientsTarget,
        /// Tags to add (comma-separated or repeated).
        #[arg(long, value_delimiter = ',')]
        add: Vec<String>,
        /// Tags to remove.
        #[arg(long, value_delimiter = ',')]
        remove: Vec<String>,
        /// Only print what would change.
        #[arg(long)]
        dry_run: bool,
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

/// How `inbound clients list` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns, for reading.
    Table,
    /// The client summaries as a JSON array, for scripts.
    Json,
}

/// The store the administration commands work on.
#[derive(Args)]
pub struct StoreLocation {
    /// Data directory of `inbound serve` (its state.db).
    #[arg(long, env = "INBOUND_DATA_DIR", default_value = ".inbound")]
    pub data_dir: PathBuf,
    /// PostgreSQL store URL (instead of the data directory's SQLite).
    #[arg(long = "store", env = "INBOUND_STORE", hide_env_values = true)]
    pub url: Option<String>,
}

impl StoreLocation {
    /// Opens it; an SQLite file that does not exist is an error (not a new, empty store).
    pub async fn open(&self) -> anyhow::Result<std::sync::Arc<dyn crate::store::Store>> {
        let db = self.data_dir.join("state.db");
        if self.url.is_none() && !db.exists() {
            anyhow::bail!("no store at {} (use --data-dir or --store)", db.display());
        }
        Ok(crate::store::open(self.url.as_deref(), &db).await?)
    }
}

/// Where the store is and which clients to select.
#[derive(Args)]
pub struct ClientsTarget {
    #[command(flatten)]
    pub store: StoreLocation,
    /// Kind: declared, registered or metadata-document.
    #[arg(long, value_parser = crate::admin::CLIENT_KINDS)]
    pub kind: Option<String>,
    /// Carries this tag (repeat for several: all must be there).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// May use this grant type (e.g. client_credentials).
    #[arg(long)]
    pub grant_type: Option<String>,
    /// Client id equals.
    #[arg(long)]
    pub id: Option<String>,
    /// Client id contains.
    #[arg(long)]
    pub id_contains: Option<String>,
    /// Client id is one of (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub id_in: Vec<String>,
    /// Client name equals.
    #[arg(long)]
    pub name: Option<String>,
    /// Client name contains (case-insensitive).
    #[arg(long)]
    pub name_contains: Option<String>,
    /// Client name matches a glob (`*`, `?`; case-insensitive).
    #[arg(long)]
    pub name_matches: Option<String>,
    /// Registered before (RFC 3339, YYYY-MM-DD, or an age such as 30d).
    #[arg(long)]
    pub created_before: Option<String>,
    #[arg(long)]
    pub created_after: Option<String>,
    /// Last used before (same formats).
    #[arg(long)]
    pub last_used_before: Option<String>,
    #[arg(long)]
    pub last_used_after: Option<String>,
}

impl ClientsTarget {
    /// The filter; ages (`30d`) count back from `now`.
    pub fn filter(&self, now: i64) -> Result<ClientFilter, String> {
        let time = |v: &Option<String>| v.as_deref().map(|v| crate::admin::parse_time(v, now)).transpose();
        Ok(ClientFilter {
            kind: self.kind.clone(),
            tags: self.tags.clone(),
            grant_type: self.grant_type.clone(),
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

impl ClientsAction {
    /// Runs `inbound clients list|delete|tag` against the store.
    pub async fn run(self) -> anyhow::Result<()> {
        let now = crate::clock::now();
        let target = match &self {
            ClientsAction::List { target, .. }
            | ClientsAction::Delete { target, .. }
            | ClientsAction::Tag { target, .. } => target,
        };
        let filter = target.filter(now).map_err(|e| anyhow::anyhow!(e))?;
        let store = target.store.open().await?;
        let registered = store.registered_clients().await?;
        let selected = |filter: &ClientFilter| -> Vec<&crate::store::RegisteredClient> {
            registered.iter().filter(|c| filter.matches(&ClientSummary::registered(c))).collect()
        };
        match self {
            ClientsAction::List { config, output, .. } => {
                let mut listed = if config.is_empty() {
                    Vec::new()
                } else {
                    crate::runtime::serve::declared_clients(&config, store.as_ref()).await?
                };
                listed.retain(|c| filter.matches(c));
                listed.extend(selected(&filter).into_iter().map(ClientSummary::registered));
                match output {
                    Output::Json => println!("{}", serde_json::to_string_pretty(&listed)?),
                    Output::Table => print!("{}", crate::admin::table(&listed)),
                }
                eprintln!("{} client(s)", listed.len());
            }
            ClientsAction::Delete { dry_run, .. } => {
                if filter.is_empty() {
                    anyhow::bail!(
                        "refusing to delete every client: give at least one filter (e.g. --last-used-before 30d)"
                    );
                }
                let chosen = selected(&filter);
                let summaries: Vec<ClientSummary> = chosen.iter().map(|c| ClientSummary::registered(c)).collect();
                print!("{}", crate::admin::table(&summaries));
                for c in &chosen {
                    if dry_run {
                        println!("would delete {}", c.client_id);
                    } else if store.delete_registered_client(&c.client_id, now).await? {
                        println!("deleted {}", c.client_id);
                    }
                }
                eprintln!("{} client(s)", chosen.len());
            }
            ClientsAction::Tag { add, remove, dry_run, .. } => {
                let change = crate::admin::TagChange { add, remove };
                change.check().map_err(|e| anyhow::anyhow!(e))?;
                if filter.is_empty() {
                    anyhow::bail!("give at least one filter (e.g. --name-contains claude)");
                }
                let chosen = selected(&filter);
                for c in &chosen {
                    let Some(tags) = change.apply(&c.tags).map_err(|e| anyhow::anyhow!("{}: {e}", c.client_id))? else {
                        continue;
                    };
                    if dry_run {
                        println!("would tag {} [{}]", c.client_id, tags.join(","));
                    } else if store.set_registered_client_tags(&c.client_id, &tags).await? {
                        println!("tagged {} [{}]", c.client_id, tags.join(","));
                    }
                }
                eprintln!("{} client(s)", chosen.len());
            }
        }
        Ok(())
    }
}

#[derive(Subcommand)]
pub enum ConsentsAction {
    /// List active consents matching the filters (all without filters).
    List {
        #[command(flatten)]
        target: ConsentsTarget,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Revoke the active consents matching the filters, with every refresh token issued
    /// under them; the apps and clients stay (their users are asked again).
    Revoke {
        #[command(flatten)]
        target: ConsentsTarget,
        /// Only print what would be revoked.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Where the store is and which consents to select.
#[derive(Args)]
pub struct ConsentsTarget {
    #[command(flatten)]
    pub store: StoreLocation,
    /// Consent id equals.
    #[arg(long)]
    pub id: Option<String>,
    /// Given to this client id (the app's).
    #[arg(long)]
    pub client_id: Option<String>,
    /// Given by this user (subject).
    #[arg(long)]
    pub subject: Option<String>,
    /// In this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Grants this scope.
    #[arg(long)]
    pub scope: Option<String>,
    /// Granted by this user (a tenant administrator granting for the tenant, or the user).
    #[arg(long)]
    pub granted_by: Option<String>,
    /// Given before (RFC 3339, YYYY-MM-DD, or an age such as 30d).
    #[arg(long)]
    pub created_before: Option<String>,
    #[arg(long)]
    pub created_after: Option<String>,
    /// Expires before (same formats).
    #[arg(long)]
    pub expires_before: Option<String>,
    #[arg(long)]
    pub expires_after: Option<String>,
    /// Append an audit record of each revocation to this file (as the servers' --audit-file).
    #[arg(long, env = "INBOUND_AUDIT_FILE")]
    pub audit_file: Option<PathBuf>,
}

impl ConsentsTarget {
    /// The filter; ages (`30d`) count back from `now`.
    pub fn filter(&self, now: i64) -> Result<crate::admin::ConsentFilter, String> {
        let time = |v: &Option<String>| v.as_deref().map(|v| crate::admin::parse_time(v, now)).transpose();
        Ok(crate::admin::ConsentFilter {
            id: self.id.clone(),
            client_id: self.client_id.clone(),
            subject: self.subject.clone(),
            tenant: self.tenant.clone(),
            scope: self.scope.clone(),
            granted_by: self.granted_by.clone(),
            created_before: time(&self.created_before)?,
            created_after: time(&self.created_after)?,
            expires_before: time(&self.expires_before)?,
            expires_after: time(&self.expires_after)?,
        })
    }
}

impl ConsentsAction {
    /// Runs `inbound consents list|revoke` against the store.
    pub async fn run(self) -> anyhow::Result<()> {
        let now = crate::clock::now();
        let (target, output, dry_run, revoke) = match &self {
            ConsentsAction::List { target, output } => (target, *output, false, false),
            ConsentsAction::Revoke { target, dry_run } => (target, Output::Table, *dry_run, true),
        };
        let filter = target.filter(now).map_err(|e| anyhow::anyhow!(e))?;
        if revoke && filter.is_empty() {
            anyhow::bail!("refusing to revoke every consent: give at least one filter (e.g. --client-id ID)");
        }
        let store = target.store.open().await?;
        let selected: Vec<_> = store.active_consents(now).await?.into_iter().filter(|c| filter.matches(c)).collect();
        let summaries: Vec<_> = selected.iter().map(|c| crate::admin::ConsentSummary::of(c, String::new())).collect();
        match output {
            Output::Json => println!("{}", serde_json::to_string_pretty(&summaries)?),
            Output::Table => print!("{}", crate::admin::consent_table(&summaries)),
        }
        if revoke {
            let audit = crate::audit::Audit::open(&crate::audit::AuditOptions {
                stdout: false,
                file: target.audit_file.clone(),
                held: false,
            })?;
            let actor = std::env::var("USER").ok().map(|u| format!("cli:{u}"));
            for c in &selected {
                if dry_run {
                    println!("would revoke {}", c.id);
                } else if store.revoke_consent(&c.id, &c.subject, now).await? {
                    audit.emit(crate::audit::Event::ConsentRevoked {
                        consent_id: c.id.clone(),
                        subject: c.subject.clone(),
                        revoked_by: crate::audit::Revoker::Admin,
                        actor: actor.clone(),
                    });
                    println!("revoked {}", c.id);
                }
            }
            audit.close();
        }
        eprintln!("{} consent(s)", selected.len());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn typed_flags_refuse_bad_values_by_name() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|_| ()).map_err(|e| e.to_string());
        let err = parse(&["inbound", "serve", "--config", "x", "--access-token-lifetime", "15"]).unwrap_err();
        assert!(err.contains("--access-token-lifetime") && err.contains("must be a duration"), "{err}");
        let err = parse(&["inbound", "serve", "--config", "x", "--trusted-proxies", "10.0.0.0/99"]).unwrap_err();
        assert!(err.contains("--trusted-proxies") && err.contains("bad prefix length"), "{err}");
        let err = parse(&["inbound", "clients", "list", "--output", "yaml"]).unwrap_err();
        assert!(err.contains("--output"), "{err}");
    }

    #[test]
    fn serve_flags_become_options() {
        let cli = Cli::try_parse_from([
            "inbound",
            "serve",
            "--config",
            "examples/quickstart",
            "--access-token-lifetime",
            "1h30m",
            "--trusted-proxies",
            "10.0.0.0/8,,192.0.2.1",
            "--store",
            "",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve") };
        let options = args.options();
        assert_eq!(options.access_token_lifetime, Duration::from_secs(5400));
        assert_eq!(options.trusted_proxies.len(), 2);
        assert_eq!(options.store, None, "an empty store URL is the default store");
        assert_eq!(options.listen.to_string(), "127.0.0.1:8080");
        assert!(options.smtp.is_none(), "no relay, no email");
    }

    #[test]
    fn smtp_flags_become_options() {
        let cli = Cli::try_parse_from([
            "inbound",
            "serve",
            "--config",
            "x",
            "--smtp-host",
            "smtp.example.com",
            "--smtp-from",
            "Example <noreply@example.com>",
            "--smtp-username",
            "mailer",
            "--smtp-password-file",
            "/run/secrets/smtp",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve") };
        let smtp = args.options().smtp.expect("a relay");
        assert_eq!((smtp.host.as_str(), smtp.port, smtp.tls), ("smtp.example.com", 587, SmtpTls::StartTls));
        assert_eq!(smtp.from, "Example <noreply@example.com>");
        assert_eq!(smtp.username.as_deref(), Some("mailer"));
        assert_eq!(smtp.password_file, Some(PathBuf::from("/run/secrets/smtp")));
        assert_eq!(smtp.timeout, Duration::from_secs(10));

        let cli = Cli::try_parse_from([
            "inbound",
            "operator",
            "--issuer",
            "https://auth.example.com",
            "--namespace",
            "inbound-system",
            "--smtp-host",
            "localhost",
            "--smtp-port",
            "2525",
            "--smtp-tls",
            "none",
            "--smtp-from",
            "noreply@example.com",
            "--smtp-timeout",
            "3s",
        ])
        .unwrap();
        let Command::Operator(args) = cli.command else { panic!("operator") };
        let smtp = args.options().unwrap().smtp.expect("a relay");
        assert_eq!((smtp.port, smtp.tls, smtp.timeout), (2525, SmtpTls::None, Duration::from_secs(3)));
        assert_eq!((smtp.username, smtp.password_file), (None, None));

        // Half a configuration is refused by name, not ignored.
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|_| ()).map_err(|e| e.to_string());
        // A host without a From parses; the start refuses it (`SmtpMailer::new`).
        let cli =
            Cli::try_parse_from(["inbound", "serve", "--config", "x", "--smtp-host", "smtp.example.com"]).unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve") };
        assert_eq!(args.options().smtp.expect("a relay").from, "");
        let err = parse(&["inbound", "serve", "--config", "x", "--smtp-from", "a@example.com"]).unwrap_err();
        assert!(err.contains("--smtp-host"), "{err}");
        let mut with_host =
            vec!["inbound", "serve", "--config", "x", "--smtp-host", "h", "--smtp-from", "a@example.com"];
        with_host.extend(["--smtp-username", "mailer"]);
        let err = parse(&with_host).unwrap_err();
        assert!(err.contains("--smtp-password-file"), "{err}");
        let err = parse(&["inbound", "serve", "--config", "x", "--smtp-tls", "ssl"]).unwrap_err();
        assert!(err.contains("--smtp-tls") && err.contains("starttls, tls, none"), "{err}");
    }

    #[test]
    fn operator_flags_become_options() {
        let cli = Cli::try_parse_from([
            "inbound",
            "operator",
            "--issuer",
            "https://auth.example.com",
            "--namespace",
            "inbound-system",
            "--identity",
            "pod-0",
            "--watch-namespaces",
            "team-a, ,team-b",
        ])
        .unwrap();
        let Command::Operator(args) = cli.command else { panic!("operator") };
        let options = args.options().unwrap();
        assert_eq!(options.watch_namespaces, ["team-a", "team-b"]);
        assert_eq!(options.lease_duration, Duration::from_secs(15));
        assert_eq!(options.key_rotation_interval, Duration::from_secs(30 * 86_400));
        assert_eq!(options.access_token_lifetime, Duration::from_secs(900));
        assert_eq!(options.listen.to_string(), "0.0.0.0:8080");
    }
}
