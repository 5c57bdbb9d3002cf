//! The generated CRDs and the example manifests against a real kube-apiserver + etcd
//! (provisioned and cached by scripts/k8s-test-env.sh, which `make test` runs).

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
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn crds_install_and_examples_apply_to_a_real_api_server() {
    let api = ApiServer::start();
    api.kubectl_ok(&["apply", "-f", "crds/inbound.dev.yaml"]);
    for crd in ["inboundapps", "scopes", "clientgrants", "consentpolicies"] {
        api.kubectl_ok(&[
            "wait",
            "--for",
            "condition=established",
            "--timeout",
            "30s",
            &format!("crd/{crd}.inbound.dev"),
        ]);
    }
    // The quickstart's resources are ordinary Kubernetes manifests (users.yaml holds
    // DevelopmentUsers, which exist only for `inbound serve`).
    let applied = api.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "test",
        "-f",
        "examples/quickstart/apps.yaml",
        "-f",
        "examples/quickstart/scopes.yaml",
        "-f",
        "examples/quickstart/grants.yaml",
        "-f",
        "examples/quickstart/policy.yaml",
    ]);
    assert!(applied.contains("inboundapp.inbound.dev/billing-agent serverside-applied"), "{applied}");

    // Category, short name and printer columns.
    let all = api.kubectl_ok(&["get", "inbound", "-n", "default"]);
    for name in
        ["billing-agent", "reporting-job", "billing-read", "billing-agent-billing", "consentpolicy.inbound.dev/default"]
    {
        assert!(all.contains(name), "{name} missing from `kubectl get inbound`:\n{all}");
    }
    let apps = api.kubectl_ok(&["get", "iapp", "-n", "default", "-o", "wide"]);
    let header = apps.lines().next().unwrap();
    for column in ["NAME", "READY", "CLIENT ID", "SECRET", "AGE", "MESSAGE"] {
        assert!(header.contains(column), "{column} missing from {header}");
    }
    // The API server publishes CRD schemas to its OpenAPI document asynchronously.
    let started = Instant::now();
    let explain = loop {
        let (ok, stdout, stderr) = api.kubectl(&["explain", "inboundapp.spec.tokenEndpointAuthMethod"]);
        if ok {
            break stdout;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "kubectl explain: {stderr}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(explain.contains("How the app authenticates at the token endpoint"), "{explain}");

    // The schema is enforced by the API server, not only by `inbound check`.
    let bad = "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {name: bad, namespace: default}\nspec: {displayName: Bad, grantTypes: [password]}\n";
    let path = std::env::temp_dir().join(format!("inbound-bad-{}.yaml", std::process::id()));
    std::fs::write(&path, bad).unwrap();
    let (ok, _, stderr) = api.kubectl(&["apply", "-f", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert!(!ok && stderr.contains("grantTypes"), "invalid enum accepted: {stderr}");
}
