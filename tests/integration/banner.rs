//! The startup banner of `inbound serve` on folders other than the quickstart: every
//! printed command works as printed, and nothing in it comes from anywhere but the folder.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;

use crate::support::user_agent::Agent;

/// Another namespace, a confidential app no grant authorizes, client_secret_post with a
/// custom Secret name and two tenants, a public app with a fixed `localhost` redirect.
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/banner");
const MCP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/mcp");

/// `inbound serve` on a folder, run as the README does (from a working directory of its own).
struct Serve {
    child: Child,
    banner: String,
    /// Standard output after the banner: the audit trail.
    stdout: mpsc::Receiver<String>,
}

impl Serve {
    fn start(config: &str, cwd: &Path) -> Serve {
        Serve::start_with(config, cwd, &[])
    }

    fn start_with(config: &str, cwd: &Path, extra: &[&str]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_inbound"))
            .args(["serve", "--config", config, "--listen", "127.0.0.1:0"])
            .args(extra)
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                if lines.send(line.unwrap()).is_err() {
                    return;
                }
            }
        });
        // The banner is printed at once after the start; it is complete when output stops
        // or the audit trail begins (JSON lines: the first start issues secrets).
        let mut banner = received.recv_timeout(Duration::from_secs(30)).expect("a banner") + "\n";
        let mut early = Vec::new();
        while let Ok(line) = received.recv_timeout(Duration::from_millis(1500)) {
            if line.starts_with('{') || !early.is_empty() {
                early.push(line);
                continue;
            }
            banner.push_str(&line);
            banner.push('\n');
        }
        assert!(!banner.contains('{'), "the banner comes before any audit record:\n{banner}");
        let (again, stdout) = mpsc::channel();
        for line in early {
            again.send(line).unwrap();
        }
        std::thread::spawn(move || {
            while let Ok(line) = received.recv() {
                if again.send(line).is_err() {
                    return;
                }
            }
        });
        Serve { child, banner, stdout }
    }

    /// The next audit record of `event` on standard output (each line must be one).
    fn record(&self, event: &str) -> Value {
        loop {
            let line =
                self.stdout.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no {event} record"));
            let record: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not an audit record ({e}): {line}"));
            if record["event"] == event {
                return record;
            }
        }
    }

    /// The line after the one starting with `label`.
    fn command_after(&self, label: &str) -> String {
        let pos = self.banner.find(label).unwrap_or_else(|| panic!("{label} missing from:\n{}", self.banner));
        self.banner[pos..].lines().nth(1).unwrap().trim().to_string()
    }

    fn value_of(&self, label: &str) -> String {
        let line = self.banner.lines().find_map(|l| l.trim().strip_prefix(label));
        line.unwrap_or_else(|| panic!("{label} missing from:\n{}", self.banner)).trim().to_string()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a printed command line (or several) with `sh`, as a user pasting it would.
fn sh(script: &str, cwd: &Path) -> String {
    let output = Command::new("sh").arg("-c").arg(script).current_dir(cwd).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{script}\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[test]
fn banner_on_another_folder_prints_only_what_the_folder_declares_and_it_works() {
    let tmp = tempfile::tempdir().unwrap();
    let serve = Serve::start(FIXTURE, tmp.path());
    let banner = &serve.banner;
    for made_up in ["billing", "alice", "bob", "wonderland", "9999", "default/"] {
        assert!(!banner.contains(made_up), "{made_up:?} is not in this folder:\n{banner}");
    }
    assert!(banner.contains(".inbound/credentials/notes/sync-creds/"), "the app's own Secret name:\n{banner}");
    assert!(!banner.contains("register "), "this folder enables no self-registration:\n{banner}");

    // client_credentials: the app a grant authorizes (not notes-admin, which none does), with
    // its registered auth method (client_secret_post) and one of its tenants.
    assert!(banner.contains("get a token (notes/notes-sync, client_credentials):"), "{banner}");
    let script = format!(
        "set -e\n{}\necho \"$TOKEN\"\n{}\n",
        serve.command_after("get a token"),
        serve.command_after("introspect it:")
    );
    let out = sh(&script, tmp.path());
    let mut lines = out.lines();
    assert_eq!(lines.next().unwrap().split('.').count(), 3, "a JWT:\n{out}");
    let introspection: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(introspection["active"], true, "{introspection}");
    assert_eq!(introspection["tenant"], "north", "{introspection}");
    assert_eq!(introspection["scope"], "notes:read", "{introspection}");
    // Standard output carries the audit trail after the banner, one JSON record per line.
    let issued = serve.record("token_issued");
    assert_eq!((issued["grant_type"].as_str(), issued["version"].as_u64()), (Some("client_credentials"), Some(1)));
    assert_eq!(serve.record("introspection")["active"], true);

    // Authorization code + PKCE: the public app's own loopback redirect, its scopes, the user
    // the folder declares.
    assert!(banner.contains("sign in as a user (notes/notes-cli, authorization code + PKCE; DevelopmentUser carol):"));
    let open = serve.value_of("open ");
    let url = url::Url::parse(&open).unwrap();
    let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert_eq!(param("redirect_uri").as_deref(), Some("http://localhost:7777/callback"));
    assert_eq!(param("scope").as_deref(), Some("openid notes:read notes:write"));
    let base = serve.value_of("issuer");
    let exchange = serve.command_after("exchange the code:");
    let code = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut agent = Agent::new();
        let login = agent.get(&open).await;
        assert_eq!(login.status, 200, "the login page, not an error:\n{}", login.body);
        let consent = agent.login(&base, &login, "carol", "pencil-and-paper").await;
        let done = agent.approve(&base, &consent, &["openid", "notes:read", "notes:write"]).await;
        assert!(done.location.as_deref().unwrap().starts_with("http://localhost:7777/callback?"));
        assert_eq!(done.redirect_param("state"), param("state"));
        done.redirect_param("code").expect("a code")
    });
    let tokens: Value = serde_json::from_str(&sh(&exchange.replace("PASTE_CODE", &code), tmp.path())).unwrap();
    for field in ["access_token", "id_token", "refresh_token"] {
        assert!(tokens[field].is_string(), "{field} missing: {tokens}");
    }
    assert_eq!(tokens["scope"], "openid notes:read notes:write", "{tokens}");
}

#[test]
fn banner_on_a_folder_without_apps_omits_the_app_examples() {
    let tmp = tempfile::tempdir().unwrap();
    let serve = Serve::start(MCP, tmp.path());
    let banner = &serve.banner;
    for absent in ["apps:", "sign in as a user", "get a token", "billing"] {
        assert!(!banner.contains(absent), "{absent:?} printed for a folder without apps:\n{banner}");
    }
    // What it does print is what the server says about itself.
    let discovery = serve.value_of("discovery");
    let metadata: Value = serde_json::from_str(&sh(&format!("curl -s {discovery}"), tmp.path())).unwrap();
    let register = serve.value_of("register");
    let (endpoint, why) = register.split_once(' ').unwrap();
    assert_eq!(metadata["registration_endpoint"], endpoint, "{banner}");
    assert_eq!(why, "(self-registration, ConsentPolicy default/mcp-clients)");
}

/// `--shutdown-delay`: on SIGTERM the server reports not ready at once and keeps serving for
/// the delay (endpoints and load balancers catch up), then exits. `--metrics-listen` takes
/// `/metrics` off the public listener. And `inbound discover` against it, as the chart's
/// `helm test` runs it.
#[test]
fn sigterm_drains_for_the_shutdown_delay() {
    let cwd = tempfile::tempdir().unwrap();
    let quickstart = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart");
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let mut serve =
        Serve::start_with(quickstart, cwd.path(), &["--shutdown-delay", "3s", "--metrics-listen", &metrics_listen]);
    let base = serve.value_of("issuer");
    let status = |path: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("{base}{path}")])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(status("/readyz"), "200");
    // Metrics on their own listener, not on the issuer's.
    assert_eq!(status("/metrics"), "404");
    let metrics = Command::new("curl").args(["-s", &format!("http://{metrics_listen}/metrics")]).output().unwrap();
    assert!(String::from_utf8_lossy(&metrics.stdout).contains("inbound_http_requests"), "no metrics there");
    // `inbound discover`, what the chart's `helm test` runs, checks the document's issuer.
    let discover = |issuer: &str| {
        Command::new(env!("CARGO_BIN_EXE_inbound")).args(["discover", &base, "--issuer", issuer]).output().unwrap()
    };
    let found = discover(&base);
    assert!(found.status.success(), "{}", String::from_utf8_lossy(&found.stderr));
    assert!(String::from_utf8_lossy(&found.stdout).contains(&format!("issuer {base}")));
    let wrong = discover("https://auth.example.com");
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("not https://auth.example.com"));
    let term = Command::new("kill").args(["-TERM", &serve.child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let signalled = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(status("/readyz"), "503", "not ready while draining");
    assert_eq!(status("/healthz"), "200", "still alive");
    assert_eq!(status("/.well-known/openid-configuration"), "200", "still serving");
    let exit = loop {
        if let Some(exit) = serve.child.try_wait().unwrap() {
            break exit;
        }
        assert!(signalled.elapsed() < Duration::from_secs(20), "never exited");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "{exit}");
    assert!(signalled.elapsed() >= Duration::from_secs(3), "exited before the delay: {:?}", signalled.elapsed());
}

/// `--log-format json`: the diagnostic log on standard error is one JSON object per line.
#[test]
fn the_diagnostic_log_can_be_json_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_inbound"))
        .args(["serve", "--config", FIXTURE, "--listen", "127.0.0.1:0", "--log-format", "json"])
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let record: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(record["level"], "INFO", "{record}");
    assert!(record["message"].as_str().is_some_and(|m| !m.is_empty()), "{record}");
    assert!(record["timestamp"].is_string(), "{record}");
}
