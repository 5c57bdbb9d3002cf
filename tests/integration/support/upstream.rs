//! A real upstream OpenID Provider: npm `oidc-provider` (OpenID-certified), installed by
//! `scripts/oidc-provider-env.sh` into `~/.cache/inbound/oidc-provider` and started from
//! `tests/upstream/provider.mjs` on a free loopback port. Its login page is the package's
//! development interaction (an account name, no password); accounts live in a JSON file the
//! test may rewrite while it runs (the provider reads it at every lookup).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub struct Upstream {
    child: Child,
    log: PathBuf,
    pub issuer: String,
    accounts: PathBuf,
    _dir: tempfile::TempDir,
}

fn provider_dir() -> PathBuf {
    std::env::var_os("INBOUND_OIDC_PROVIDER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/inbound/oidc-provider"))
}

impl Upstream {
    /// Starts the provider with one confidential client `inbound` (secret `client_secret`)
    /// whose redirect URI is `redirect_uri`, and these accounts (`{"alice": {claims}}`).
    /// With `conform`, scope-requested claims go only to UserInfo (the provider's default,
    /// like many real IdPs); without, they are in the ID token.
    pub fn start(redirect_uri: &str, client_secret: &str, accounts: Value, conform: bool) -> Upstream {
        Upstream::start_with_clients(redirect_uri, client_secret, accounts, conform, &[])
    }

    /// [`Upstream::start`] with more clients (oidc-provider client metadata).
    pub fn start_with_clients(
        redirect_uri: &str,
        client_secret: &str,
        accounts: Value,
        conform: bool,
        extra_clients: &[Value],
    ) -> Upstream {
        let status = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oidc-provider-env.sh"))
            .status()
            .expect("bash");
        assert!(status.success(), "scripts/oidc-provider-env.sh failed (`make test-deps` installs oidc-provider)");
        let dir = tempfile::tempdir().unwrap();
        let accounts_file = dir.path().join("accounts.json");
        std::fs::write(&accounts_file, accounts.to_string()).unwrap();
        let mut clients = vec![json!({
            "client_id": "inbound",
            "client_secret": client_secret,
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        })];
        clients.extend_from_slice(extra_clients);
        let config = json!({
            "accounts": accounts_file,
            "conformIdTokenClaims": conform,
            "clients": clients,
        });
        let config_file = dir.path().join("config.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let mut child = Command::new("node")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream/provider.mjs"))
            .arg(&config_file)
            .env("OIDC_PROVIDER_DIR", provider_dir())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("provider.log")).unwrap())
            .spawn()
            .expect("node");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(issuer) = line.strip_prefix("listening ") {
                    let _ = tx.send(issuer.to_string());
                }
            }
        });
        let issuer = rx.recv_timeout(Duration::from_secs(30)).expect("oidc-provider did not start");
        Upstream { child, issuer, accounts: accounts_file, log: dir.path().join("provider.log"), _dir: dir }
    }

    /// Replaces the provider's accounts (e.g. a user's groups changed upstream).
    pub fn set_accounts(&self, accounts: Value) {
        std::fs::write(&self.accounts, accounts.to_string()).unwrap();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("oidc-provider log:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Signs `login` in on the upstream's development login page shown in `browser` (any
/// password works there) and approves the upstream's own consent screen.
pub async fn sign_in_and_authorize(browser: &crate::support::browser::Browser, login: &str) {
    browser.type_into("input[name=login]", login).await;
    browser.type_into("input[name=password]", "any").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("Authorize").await;
    browser.click("button[type=submit]").await;
}
