//! Starting a real server on a copy of a manifest folder, and talking to it.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use inbound::runtime::{
    Running,
    serve::{ServeOptions, start},
};
use oauth2::reqwest;
use serde_json::Value;

pub const QUICKSTART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart");

pub struct TestServer {
    pub running: Running,
    pub base: String,
    pub config_dir: PathBuf,
    pub data_dir: PathBuf,
    /// The PostgreSQL store, when not the data directory's SQLite.
    pub store_url: Option<String>,
    pub http: reqwest::Client,
    _tmp: Option<tempfile::TempDir>,
}

/// A server on a private copy of `source` (so tests may edit it) and a fresh data dir.
pub async fn start_server(source: &str) -> TestServer {
    start_server_with(source, None, Duration::from_secs(5), |_| {}).await
}

/// Like [`start_server`], with a store URL, a maintenance interval, and a hook to edit the
/// configuration copy before the server reads it.
pub async fn start_server_with(
    source: &str,
    store: Option<String>,
    maintenance_interval: Duration,
    prepare: impl FnOnce(&Path),
) -> TestServer {
    let tmp = tempfile::tempdir().unwrap();
    let config_dir = tmp.path().join("config");
    copy_dir(Path::new(source), &config_dir);
    prepare(&config_dir);
    let data_dir = tmp.path().join("data");
    let mut server = start_with_options(&config_dir, &data_dir, None, store, maintenance_interval).await;
    server._tmp = Some(tmp);
    server
}

/// Like [`start_server`], with the serve options adjusted by `configure` (flags a test needs).
pub async fn start_server_configured(source: &str, configure: impl FnOnce(&mut ServeOptions)) -> TestServer {
    let tmp = tempfile::tempdir().unwrap();
    let config_dir = tmp.path().join("config");
    copy_dir(Path::new(source), &config_dir);
    let data_dir = tmp.path().join("data");
    let mut server = start_configured(&config_dir, &data_dir, None, None, Duration::from_secs(5), configure).await;
    server._tmp = Some(tmp);
    server
}

/// A second replica of `of`: the same folders, the same PostgreSQL store and the same
/// issuer (as two Pods behind one Service, mounting one configuration and its keys), on its
/// own port.
pub async fn start_replica(of: &TestServer) -> TestServer {
    let store = of.store_url.clone().expect("replicas share a PostgreSQL store");
    let issuer = of.running.state.server.issuer().to_string();
    start_with_options(&of.config_dir, &of.data_dir, Some(&issuer), Some(store), Duration::from_secs(5)).await
}

/// A server on existing folders (for restarts).
pub async fn start_on(config_dir: &Path, data_dir: &Path, issuer: Option<&str>) -> TestServer {
    start_with_options(config_dir, data_dir, issuer, None, Duration::from_secs(5)).await
}

async fn start_with_options(
    config_dir: &Path,
    data_dir: &Path,
    issuer: Option<&str>,
    store: Option<String>,
    maintenance_interval: Duration,
) -> TestServer {
    start_configured(config_dir, data_dir, issuer, store, maintenance_interval, |_| {}).await
}

/// The options the tests serve a folder with (loopback, a random port, fast reloads).
pub fn serve_options(config_dir: &Path, data_dir: &Path) -> ServeOptions {
    ServeOptions {
        config: vec![config_dir.to_path_buf()],
        data_dir: data_dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        issuer: None,
        default_audience: None,
        access_token_lifetime: Duration::from_secs(900),
        session_lifetime: Duration::from_secs(8 * 3600),
        branding: Default::default(),
        reload_interval: Duration::from_millis(200),
        templates: None,
        store: None,
        maintenance_interval: Duration::from_secs(5),
        trusted_proxies: Vec::new(),
        trust: Default::default(),
        workload: Default::default(),
        smtp: None,
        // The test harness does not capture raw standard output: the trail goes to a file
        // in the data directory, where tests read it.
        audit: inbound::audit::AuditOptions { stdout: false, file: Some(data_dir.join(AUDIT_FILE)), held: false },
    }
}

/// The audit trail of a test server, in its data directory.
pub const AUDIT_FILE: &str = "audit.jsonl";

impl TestServer {
    /// The audit trail, once every record emitted so far has reached the file (the writer
    /// batches records a few milliseconds apart).
    pub fn audit_trail(&self) -> String {
        let audit = self.running.state.server.audit();
        assert!(audit.wait_until_written(Duration::from_secs(10)), "the audit writer fell 10 s behind");
        std::fs::read_to_string(self.data_dir.join(AUDIT_FILE)).unwrap_or_default()
    }
}

async fn start_configured(
    config_dir: &Path,
    data_dir: &Path,
    issuer: Option<&str>,
    store: Option<String>,
    maintenance_interval: Duration,
    configure: impl FnOnce(&mut ServeOptions),
) -> TestServer {
    let mut options = serve_options(config_dir, data_dir);
    options.issuer = issuer.map(str::to_string);
    options.store = store.clone();
    options.maintenance_interval = maintenance_interval;
    configure(&mut options);
    let store = options.store.clone();
    let running = start(options).await.expect("server starts").running;
    let base = format!("http://{}", running.addr);
    // Under the server's 10 s idle keep-alive close: a test that waits between requests
    // must not send one on a connection the server is closing.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    TestServer {
        running,
        base,
        config_dir: config_dir.to_path_buf(),
        data_dir: data_dir.to_path_buf(),
        store_url: store,
        http,
        _tmp: None,
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// An HTTP response, decoded.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
}

impl Reply {
    /// Asserts an RFC 6749 §5.2 error: status, code, a description, no-store.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.json);
        assert_eq!(self.json["error"], code, "{}", self.json);
        assert!(self.json["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{}", self.json);
        assert_eq!(self.headers["cache-control"], "no-store");
        assert_eq!(self.headers["content-type"], "application/json");
    }
}

impl TestServer {
    /// `(client_id, client_secret)` from the app's credentials folder.
    /// The credentials of `app` (in namespace `default`) or `namespace/app`.
    pub fn creds(&self, app: &str) -> (String, String) {
        let (namespace, app) = app.split_once('/').unwrap_or(("default", app));
        let dir = self.data_dir.join("credentials").join(namespace).join(format!("{app}-credentials"));
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        (read("client_id"), read("client_secret"))
    }

    /// The client id of `app` (`namespace/app`, or in `default`): public apps too.
    pub fn client_id(&self, app: &str) -> String {
        let (namespace, app) = app.split_once('/').unwrap_or(("default", app));
        let path = self.data_dir.join("credentials").join(namespace).join(format!("{app}-credentials/client_id"));
        std::fs::read_to_string(path).unwrap()
    }

    /// The server's store, opened beside it (a second connection, as `inbound clients` does).
    pub async fn store(&self) -> std::sync::Arc<dyn inbound::store::Store> {
        inbound::store::open(self.store_url.as_deref(), &self.data_dir.join("state.db")).await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a form body as given (so tests can send malformed ones), with optional Basic.
    pub async fn post(&self, path: &str, basic: Option<(&str, &str)>, body: &str) -> Reply {
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string());
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        reply(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        reply(self.http.get(self.url(path)).send().await.unwrap()).await
    }

    /// POSTs as `app`, authenticating with the method the app is registered for.
    pub async fn post_as(&self, app: &str, path: &str, body: &str) -> Reply {
        let (id, secret) = self.creds(app);
        let method = self.running.state.catalog.load().client(&id).map(|c| c.spec.auth_method());
        if method == Some(inbound::api::AuthMethod::ClientSecretPost) {
            let auth = form(&[("client_id", &id), ("client_secret", &secret)]);
            self.post(path, None, &format!("{body}&{auth}")).await
        } else {
            self.post(path, Some((&id, &secret)), body).await
        }
    }

    /// A client_credentials token for an app.
    pub async fn token(&self, app: &str, extra: &str) -> Reply {
        self.post_as(app, "/token", &format!("grant_type=client_credentials{extra}")).await
    }

    pub async fn introspect(&self, caller: &str, token: &str) -> Value {
        let reply = self.post_as(caller, "/introspect", &form(&[("token", token)])).await;
        assert_eq!(reply.status, 200, "{}", reply.json);
        reply.json
    }

    /// Replaces a manifest file and waits until the server has swapped in a new catalog.
    pub async fn edit(&self, file: &str, content: &str) {
        let before = std::sync::Arc::as_ptr(&self.running.state.catalog.load_full());
        std::fs::write(self.config_dir.join(file), content).unwrap();
        // The server polls every 200 ms here; allow for a loaded CI machine.
        for _ in 0..250 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if std::sync::Arc::as_ptr(&self.running.state.catalog.load_full()) != before {
                return;
            }
        }
        panic!("edit of {file} was not picked up within 5 s");
    }
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, headers, json }
}

/// Form-encodes pairs.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Runs `inbound COMMAND ARGS --data-dir DIR` (the administration commands on a store):
/// (success, stdout, stderr).
pub fn inbound_command(command: &str, data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_inbound"))
        .arg(command)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
