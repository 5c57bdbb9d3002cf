//! The `inbound` command line.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use inbound::{
    api::{DurationString, crds_yaml},
    catalog::folder,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => {
            print!("{}", crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Check { paths } => check(&paths),
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
        Command::Serve {
            config,
            data_dir,
            listen,
            issuer,
            default_audience,
            access_token_lifetime,
            templates,
            store,
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
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    };
    shutdown.await;
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
