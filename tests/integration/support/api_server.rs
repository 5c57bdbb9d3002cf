//! A real kube-apiserver + etcd on loopback (binaries provisioned and cached by
//! scripts/k8s-test-env.sh, which `make test` runs), driven with kubectl.

use serde_json::Value;
use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const TOKEN: &str = "inbound-test-admin-token";

/// A throwaway etcd + kube-apiserver on loopback ports, killed on drop.
pub struct ApiServer {
    pub url: String,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn k8s_dir() -> PathBuf {
    std::env::var_os("INBOUND_K8S_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/inbound/k8s"))
}

impl ApiServer {
    /// Starts etcd + kube-apiserver, retrying on fresh ports: a port picked as free can be
    /// taken by a concurrently starting test before our process binds it.
    pub fn start() -> ApiServer {
        let mut last = String::new();
        for _ in 0..3 {
            match ApiServer::try_start() {
                Ok(server) => return server,
                Err(e) => last = e,
            }
        }
        panic!("kube-apiserver did not start: {last}");
    }

    fn try_start() -> Result<ApiServer, String> {
        let bin = k8s_dir();
        for b in ["etcd", "kube-apiserver"] {
            assert!(
                bin.join(b).exists(),
                "{} missing: run scripts/k8s-test-env.sh (`make test` does)",
                bin.join(b).display()
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (etcd_port, peer_port, api_port) = (free_port(), free_port(), free_port());
        std::fs::write(d.join("tokens.csv"), format!("{TOKEN},admin,admin,system:masters\n")).unwrap();
        let ok = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(d.join("sa.key"))
            .arg("2048")
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success());
        let ok = Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(d.join("sa.key"))
            .arg("-out")
            .arg(d.join("sa.pub"))
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success());
        let log = |name: &str| std::fs::File::create(d.join(name)).unwrap();
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let etcd = Command::new(bin.join("etcd"))
            .arg("--data-dir")
            .arg(d.join("etcd"))
            .args(["--listen-client-urls", &etcd_url, "--advertise-client-urls", &etcd_url])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer_port}")])
            .stdout(log("etcd.log"))
            .stderr(log("etcd.err"))
            .spawn()
            .unwrap();
        let apiserver = Command::new(bin.join("kube-apiserver"))
            .args(["--etcd-servers", &etcd_url, "--bind-address", "127.0.0.1"])
            .args(["--secure-port", &api_port.to_string()])
            .arg("--cert-dir")
            .arg(d.join("certs"))
            .arg("--token-auth-file")
            .arg(d.join("tokens.csv"))
            .args(["--authorization-mode", "RBAC"])
            .args(["--service-account-issuer", "https://kubernetes.default.svc"])
            .arg("--service-account-key-file")
            .arg(d.join("sa.pub"))
            .arg("--service-account-signing-key-file")
            .arg(d.join("sa.key"))
            .args(["--service-cluster-ip-range", "10.0.0.0/24", "--advertise-address", "127.0.0.1"])
            .args(["--disable-admission-plugins", "ServiceAccount"])
            .stdout(log("apiserver.log"))
            .stderr(log("apiserver.err"))
            .spawn()
            .unwrap();
        let mut server =
            ApiServer { url: format!("https://127.0.0.1:{api_port}"), children: vec![etcd, apiserver], _dir: dir };
        let started = Instant::now();
        loop {
            let out = server.kubectl(&["get", "--raw", "/readyz"]);
            if out.0 && out.1.trim() == "ok" {
                return Ok(server);
            }
            // A child that exited (e.g. its port was taken) will never become ready.
            if server.children.iter_mut().any(|c| c.try_wait().ok().flatten().is_some()) {
                return Err("etcd or kube-apiserver exited".into());
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!("not ready after 60 s: {}", out.2));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Runs kubectl against this server: (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("kubectl")
            .args(["--server", &self.url, "--token", TOKEN, "--insecure-skip-tls-verify"])
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[track_caller]
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.kubectl(args);
        assert!(ok, "kubectl {args:?} failed:\n{stderr}");
        stdout
    }

    /// Applies `crds` (a file of CRDs, relative to the repository) and waits until the API
    /// server serves every `inbound.dev` kind.
    #[track_caller]
    pub fn install_crds(&self, crds: &str) {
        self.kubectl_ok(&["apply", "-f", crds]);
        self.wait_for_crds();
    }

    /// Waits until the API server serves every `inbound.dev` kind (CRDs applied by other
    /// means, e.g. the Helm chart).
    #[track_caller]
    pub fn wait_for_crds(&self) {
        for crd in CRDS {
            self.kubectl_ok(&["wait", "--for", "condition=established", "--timeout", "30s", &format!("crd/{crd}")]);
        }
    }

    /// `kubectl get ARGS -o json`, if the object exists.
    pub fn get_json(&self, args: &[&str]) -> Option<Value> {
        let (ok, stdout, _) = self.kubectl(&[&["get"], args, &["-o", "json"]].concat());
        if ok { serde_json::from_str(&stdout).ok() } else { None }
    }

    /// Applies a manifest given as text in `namespace`.
    #[track_caller]
    pub fn apply(&self, namespace: &str, yaml: &str) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), yaml).unwrap();
        self.kubectl_ok(&["apply", "-n", namespace, "-f", file.path().to_str().unwrap()]);
    }

    /// The events of `object` in `namespace`, as kubectl prints them.
    pub fn events(&self, namespace: &str, object: &str) -> String {
        self.kubectl(&["get", "events", "-n", namespace, "--field-selector", &format!("involvedObject.name={object}")])
            .1
    }
}

/// The CustomResourceDefinitions of `crds/inbound.dev.yaml`.
pub const CRDS: [&str; 5] = [
    "inboundapps.inbound.dev",
    "scopes.inbound.dev",
    "clientgrants.inbound.dev",
    "consentpolicies.inbound.dev",
    "identityproviders.inbound.dev",
];

/// The `Ready` condition of an object's status.
pub fn ready_condition(object: &Value) -> Option<&Value> {
    object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")
}

/// Polls `probe` until it returns Some, or fails with `what` after `timeout`.
pub async fn eventually<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
