//! `inbound operator` against a real kube-apiserver + etcd, run as a user runs it: the
//! binary, with the ServiceAccount and least-privilege RBAC of the Helm chart (rendered by
//! Helm's engine), the CRDs from `crds/`, and `examples/cluster/` applied with kubectl.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use oauth2::reqwest;
use serde_json::{Value, json};

use crate::support::api_server::{ApiServer, eventually, ready_condition};
use crate::support::server::{Reply, form, reply};

const NS: &str = "inbound-system";
pub(crate) const APPS_NS: &str = "default";

/// One `inbound operator` process.
pub(crate) struct Operator {
    child: Child,
    pub(crate) base: String,
    /// The admin API's listener.
    admin: String,
    log: PathBuf,
    /// Its audit trail (`--audit-file`).
    audit: PathBuf,
}

impl Operator {
    pub(crate) fn start(kubeconfig: &Path, data_dir: &Path, identity: &str, log_dir: &Path) -> Operator {
        Operator::start_with(kubeconfig, data_dir, identity, log_dir, &[])
    }

    pub(crate) fn start_with(
        kubeconfig: &Path,
        data_dir: &Path,
        identity: &str,
        log_dir: &Path,
        extra: &[&str],
    ) -> Operator {
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (port, admin_port) = (free(), free());
        let base = format!("http://127.0.0.1:{port}");
        let log = log_dir.join(format!("{identity}.log"));
        let audit = log_dir.join(format!("{identity}.audit.jsonl"));
        let child = Command::new(env!("CARGO_BIN_EXE_inbound"))
            .arg("operator")
            .args(["--listen", &format!("127.0.0.1:{port}"), "--issuer", &base, "--namespace", NS])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--identity", identity, "--lease-duration", "3s", "--resync-interval", "1s"])
            .args(["--signing-keys-secret", "inbound-signing-keys", "--lease-name", "inbound-leader"])
            .arg("--audit-file")
            .arg(&audit)
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("INBOUND_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Operator { child, base, admin: format!("http://127.0.0.1:{admin_port}"), log, audit }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The audit records this replica wrote (`--audit-file`), of `event`.
    pub(crate) fn audit(&self, event: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.audit).unwrap_or_default();
        let records = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")));
        records.filter(|r| r["event"] == event).collect()
    }

    /// Waits for a record of `event` matching `check`.
    pub(crate) async fn audited(&self, event: &str, check: impl Fn(&Value) -> bool) -> Value {
        eventually(&format!("an audit record {event}"), Duration::from_secs(15), || {
            self.audit(event).into_iter().find(|r| check(r))
        })
        .await
    }

    pub(crate) async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("operator exited ({status}):\n{}", self.log());
            }
            assert!(started.elapsed() < Duration::from_secs(60), "operator not ready:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(crate) async fn post(&self, path: &str, basic: Option<(&str, &str)>, body: &str) -> Reply {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string());
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        reply(request.send().await.unwrap()).await
    }

    pub(crate) async fn token(&self, creds: &(String, String)) -> Reply {
        self.post("/token", Some((&creds.0, &creds.1)), "grant_type=client_credentials&scope=inventory%3Aread").await
    }

    pub(crate) async fn jwks(&self) -> Value {
        reply(reqwest::get(format!("{}/jwks", self.base)).await.unwrap()).await.json
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        // A failing test shows what the operator said (its log lives in a temp dir).
        if std::thread::panicking() {
            eprintln!("--- operator log {} ---\n{}", self.log.display(), self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The app's credentials Secret as `(client_id, client_secret)` plus the whole object.
pub(crate) fn secret(api: &ApiServer, name: &str) -> Option<(Value, (String, String))> {
    let secret = api.get_json(&["secret", name, "-n", APPS_NS])?;
    let field = |k: &str| {
        use base64::Engine;
        let b64 = secret["data"][k].as_str()?;
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?).ok()
    };
    let creds = (field("client_id")?, field("client_secret")?);
    Some((secret, creds))
}

/// A real API server with the CRDs and the chart's ServiceAccount and RBAC installed: what
/// every operator test starts from.
pub(crate) struct Cluster {
    pub(crate) api: ApiServer,
    pub(crate) dir: tempfile::TempDir,
    /// Authenticates as the chart's ServiceAccount.
    pub(crate) kubeconfig: PathBuf,
}

impl Cluster {
    pub(crate) fn start() -> Cluster {
        let api = ApiServer::start();
        let dir = tempfile::tempdir().unwrap();
        api.install_crds("crds/inbound.dev.yaml");
        let kubeconfig = install_chart_identity(&api, dir.path());
        Cluster { api, dir, kubeconfig }
    }

    /// The data directory replicas share (one SQLite store).
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A replica with the chart's rights and `extra` flags, once ready.
    pub(crate) async fn operator(&self, identity: &str, extra: &[&str]) -> Operator {
        let mut op = Operator::start_with(&self.kubeconfig, &self.data_dir(), identity, self.dir.path(), extra);
        op.wait_ready().await;
        op
    }
}

/// The chart's ServiceAccount, RBAC and namespace in the API server; a kubeconfig that
/// authenticates as that ServiceAccount (so the operator runs with exactly the chart's
/// permissions).
pub(crate) fn install_chart_identity(api: &ApiServer, dir: &Path) -> PathBuf {
    let values = json!({ "issuer": "https://auth.example.com", "crds": { "install": false } });
    install_chart(api, dir, &values);
    kubeconfig_for(api, dir, "inbound")
}

/// The chart rendered with `values` and applied, in the operator's namespace.
fn install_chart(api: &ApiServer, dir: &Path, values: &Value) {
    let stream = crate::helm::render_with(values, &[]).unwrap_or_else(|e| panic!("chart render failed:\n{e}"));
    let rendered = dir.join("chart.yaml");
    std::fs::write(&rendered, stream).unwrap();
    api.kubectl_ok(&["create", "namespace", NS]);
    api.kubectl_ok(&["apply", "--server-side", "-f", rendered.to_str().unwrap()]);
}

/// A kubeconfig that authenticates as the ServiceAccount `NS/service_account`.
fn kubeconfig_for(api: &ApiServer, dir: &Path, service_account: &str) -> PathBuf {
    let token = api.kubectl_ok(&["create", "token", service_account, "-n", NS, "--duration", "1h"]);
    let kubeconfig = dir.join(format!("kubeconfig-{service_account}"));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster: {{server: \"{}\", insecure-skip-tls-verify: true}}\nusers:\n- name: inbound\n  user: {{token: \"{}\"}}\ncontexts:\n- name: test\n  context: {{cluster: test, user: inbound, namespace: {NS}}}\ncurrent-context: test\n",
            api.url,
            token.trim()
        ),
    )
    .unwrap();
    kubeconfig
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_reconciles_serves_and_fails_over() {
    let api = ApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    api.install_crds("crds/inbound.dev.yaml");
    let kubeconfig = install_chart_identity(&api, dir.path());
    // Two replicas share one store (a SQLite file here; PostgreSQL in production).
    let data_dir = dir.path().join("data");
    let mut a = Operator::start(&kubeconfig, &data_dir, "replica-a", dir.path());
    a.wait_ready().await;
    let mut b = Operator::start(&kubeconfig, &data_dir, "replica-b", dir.path());
    b.wait_ready().await;

    // The user's step: kubectl apply -f examples/cluster/
    api.kubectl_ok(&["apply", "-n", APPS_NS, "-f", "examples/cluster/"]);

    // Every resource becomes Ready, with the generation it observed.
    for (kind, name) in [
        ("inboundapp", "inventory-sync"),
        ("scope", "inventory-read"),
        ("scope", "inventory-write"),
        ("clientgrant", "inventory-sync"),
        ("consentpolicy", "default"),
    ] {
        eventually(&format!("{kind}/{name} Ready"), Duration::from_secs(20), || {
            let object = api.get_json(&[kind, name, "-n", APPS_NS])?;
            let ready = ready_condition(&object)?;
            (ready["status"] == "True" && ready["observedGeneration"] == object["metadata"]["generation"]).then_some(())
        })
        .await;
    }
    let listing = api.kubectl_ok(&["get", "inbound", "-n", APPS_NS]);
    assert!(listing.contains("inventory-sync-credentials"), "{listing}");

    // Status carries the connection information; the Secret the credentials.
    let app = api.get_json(&["inboundapp", "inventory-sync", "-n", APPS_NS]).unwrap();
    let uid = app["metadata"]["uid"].as_str().unwrap().to_string();
    let status = &app["status"];
    assert_eq!(status["clientId"], uid.as_str(), "client id is the UID: {status}");
    assert_eq!(status["secretName"], "inventory-sync-credentials");
    assert_eq!(status["tokenUrl"], format!("{}/token", a.base));
    assert_eq!(status["authorizeUrl"], format!("{}/authorize", a.base));
    assert_eq!(status["discoveryUrl"], format!("{}/.well-known/openid-configuration", a.base));
    assert!(
        app["metadata"]["finalizers"].as_array().is_some_and(|f| f.iter().any(|f| f == "inbound.dev/cleanup")),
        "{app:#}\n{}",
        a.log()
    );
    let (object, creds) =
        eventually("the credentials Secret", Duration::from_secs(10), || secret(&api, "inventory-sync-credentials"))
            .await;
    assert_eq!(creds.0, uid);
    assert!(creds.1.len() >= 32, "a high-entropy secret");
    assert_eq!(object["metadata"]["labels"]["app.kubernetes.io/managed-by"], "inbound");
    let owner = &object["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["uid"].as_str(), owner["controller"].as_bool()),
        (Some("InboundApp"), Some(uid.as_str()), Some(true))
    );
    let with_fields =
        api.get_json(&["secret", "inventory-sync-credentials", "-n", APPS_NS, "--show-managed-fields"]).unwrap();
    let managers: Vec<&str> = with_fields["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(managers, ["inbound"], "one field manager, server-side apply");
    assert!(api.events(APPS_NS, "inventory-sync").contains("CredentialsIssued"));

    // A workload: the Pod of examples/cluster/workload.yaml runs its command with the Secret
    // mounted as files. Here the same command runs with the Secret's keys in a folder.
    let mounted = dir.path().join("credentials");
    std::fs::create_dir_all(&mounted).unwrap();
    for key in ["client_id", "client_secret", "issuer", "token_url"] {
        let value = api.kubectl_ok(&[
            "get",
            "secret",
            "inventory-sync-credentials",
            "-n",
            APPS_NS,
            "-o",
            &format!("go-template={{{{index .data \"{key}\" | base64decode}}}}"),
        ]);
        std::fs::write(mounted.join(key), value).unwrap();
    }
    let pod: Value =
        serde_norway::from_str(&std::fs::read_to_string("examples/cluster/workload.yaml").unwrap()).unwrap();
    let command = pod["spec"]["containers"][0]["command"][2]
        .as_str()
        .unwrap()
        .replace("/credentials/", &format!("{}/", mounted.display()));
    let out = Command::new("sh").args(["-c", &command]).output().unwrap();
    let body: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("workload got no token: {out:?}"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "inventory:read");

    // Both replicas serve the watched catalog (b is not the leader and wrote nothing).
    for replica in [&a, &b] {
        let reply = replica.token(&creds).await;
        assert_eq!(reply.status, 200, "{}", reply.json);
    }

    // A change is live on every replica within 2 s: a new scope added to the grant.
    api.apply(APPS_NS, "apiVersion: inbound.dev/v1alpha1\nkind: Scope\nmetadata: {name: inventory-audit}\nspec: {scope: 'inventory:audit', description: Read the audit log}\n---\napiVersion: inbound.dev/v1alpha1\nkind: ClientGrant\nmetadata: {name: inventory-sync}\nspec:\n  subject: {kind: InboundApp, name: inventory-sync}\n  scopes: ['inventory:read', 'inventory:write', 'inventory:audit']\n  resources: ['https://inventory.example.com']\n",
    );
    let changed = Instant::now();
    for replica in [&a, &b] {
        loop {
            let reply = replica
                .post("/token", Some((&creds.0, &creds.1)), "grant_type=client_credentials&scope=inventory%3Aaudit")
                .await;
            if reply.status == 200 {
                break;
            }
            assert!(changed.elapsed() < Duration::from_secs(2), "change not live within 2 s: {}", reply.json);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Drift is repaired: an edited field is restored (same secret), a deleted Secret is
    // recreated (a new secret; the old one keeps working for the overlap).
    api.kubectl_ok(&[
        "patch",
        "secret",
        "inventory-sync-credentials",
        "-n",
        APPS_NS,
        "--type",
        "merge",
        "-p",
        r#"{"data":{"client_id":"b3RoZXI="}}"#,
    ]);
    eventually("client_id restored", Duration::from_secs(10), || {
        secret(&api, "inventory-sync-credentials").filter(|(_, c)| c.0 == uid && c.1 == creds.1)
    })
    .await;
    assert!(api.events(APPS_NS, "inventory-sync").contains("SecretRestored"));
    api.kubectl_ok(&["delete", "secret", "inventory-sync-credentials", "-n", APPS_NS]);
    let recreated = eventually("Secret recreated", Duration::from_secs(10), || {
        secret(&api, "inventory-sync-credentials").filter(|(_, c)| c.1 != creds.1)
    })
    .await
    .1;
    eventually("the new secret works", Duration::from_secs(5), || Some(())).await;
    let mut ok = false;
    for _ in 0..25 {
        if a.token(&recreated).await.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ok, "the recreated Secret's secret does not authenticate");
    assert_eq!(a.token(&creds).await.status, 200, "the previous secret works during the overlap");

    // Rotation by annotation, with a short overlap: the previous secret stops afterwards.
    api.kubectl_ok(&[
        "patch",
        "inboundapp",
        "inventory-sync",
        "-n",
        APPS_NS,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"secretRotationOverlap":"3s"}}"#,
    ]);
    api.kubectl_ok(&[
        "annotate",
        "--overwrite",
        "inboundapp",
        "inventory-sync",
        "-n",
        APPS_NS,
        "inbound.dev/rotate-secret=second",
    ]);
    let rotated = eventually("rotated secret", Duration::from_secs(10), || {
        secret(&api, "inventory-sync-credentials").filter(|(_, c)| c.1 != recreated.1).map(|(_, c)| c)
    })
    .await;
    let rotated_at = Instant::now();
    let mut new_ok = false;
    for _ in 0..25 {
        if b.token(&rotated).await.status == 200 {
            new_ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(new_ok, "rotated secret does not authenticate");
    if rotated_at.elapsed() < Duration::from_secs(2) {
        assert_eq!(b.token(&recreated).await.status, 200, "previous secret works during the overlap");
    }
    let mut stopped = false;
    for _ in 0..50 {
        if b.token(&recreated).await.status == 401 && a.token(&recreated).await.status == 401 {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(stopped, "the previous secret still works after the overlap");
    assert!(api.events(APPS_NS, "inventory-sync").contains("SecretRotated"));

    // An invalid resource: Ready=False naming the field, a Warning event, others unaffected.
    api.apply(APPS_NS, "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {name: broken}\nspec: {displayName: Broken, grantTypes: [authorization_code], clientType: public, redirectUris: ['http://evil.example/cb']}\n",
    );
    let message = eventually("broken app Ready=False", Duration::from_secs(10), || {
        let object = api.get_json(&["inboundapp", "broken", "-n", APPS_NS])?;
        let ready = ready_condition(&object)?;
        (ready["status"] == "False")
            .then(|| (ready["reason"].clone(), ready["message"].as_str().unwrap_or_default().to_string()))
    })
    .await;
    assert_eq!(message.0, "InvalidSpec");
    assert!(message.1.starts_with("spec.redirectUris[0]"), "{}", message.1);
    assert!(api.events(APPS_NS, "broken").contains("InvalidSpec"));
    let healthy = api.get_json(&["inboundapp", "inventory-sync", "-n", APPS_NS]).unwrap();
    assert_eq!(ready_condition(&healthy).unwrap()["status"], "True");

    // A Secret someone else owns is never adopted.
    api.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "taken-credentials",
        "-n",
        APPS_NS,
        "--from-literal=client_secret=mine",
    ]);
    api.apply(APPS_NS, "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {name: taken}\nspec: {displayName: Taken, grantTypes: [client_credentials]}\n",
    );
    eventually("SecretConflict", Duration::from_secs(10), || {
        let object = api.get_json(&["inboundapp", "taken", "-n", APPS_NS])?;
        (ready_condition(&object)?["reason"] == "SecretConflict").then_some(())
    })
    .await;
    let foreign = secret(&api, "taken-credentials");
    assert!(foreign.is_none(), "the foreign Secret was changed: {foreign:?}");

    // Same keys on both replicas.
    let jwks = a.jwks().await;
    assert_eq!(jwks, b.jwks().await);

    // Leader failover: kill the leader; the other takes over within a lease duration (3 s)
    // and reconciles (a new app gets its Secret).
    let lease = api.get_json(&["lease", "inbound-leader", "-n", NS]).unwrap();
    let holder = lease["spec"]["holderIdentity"].as_str().unwrap().to_string();
    let (mut leader, survivor) = if holder == "replica-a" { (a, b) } else { (b, a) };
    let token = survivor.token(&rotated).await.json["access_token"].as_str().unwrap().to_string();
    leader.child.kill().unwrap();
    leader.child.wait().unwrap();
    let killed = Instant::now();
    api.apply(APPS_NS, "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {name: after-failover}\nspec: {displayName: After, grantTypes: [client_credentials], resourceServer: {resources: ['https://inventory.example.com']}}\n---\napiVersion: inbound.dev/v1alpha1\nkind: ClientGrant\nmetadata: {name: after-failover}\nspec:\n  subject: {kind: InboundApp, name: after-failover}\n  scopes: ['inventory:read']\n  resources: ['https://inventory.example.com']\n",
    );
    eventually("the survivor leads and reconciles", Duration::from_secs(15), || {
        secret(&api, "after-failover-credentials").map(|_| ())
    })
    .await;
    assert!(killed.elapsed() < Duration::from_secs(12), "takeover took {:?}", killed.elapsed());
    let lease = api.get_json(&["lease", "inbound-leader", "-n", NS]).unwrap();
    assert_ne!(lease["spec"]["holderIdentity"].as_str(), Some(holder.as_str()));
    assert_eq!(survivor.jwks().await, jwks, "the new leader did not mint different keys");

    // Deleting the app: its Secret goes, its tokens are no longer issued nor introspected.
    let introspect = |t: &str| form(&[("token", t)]);
    let before = survivor.post("/introspect", Some((&rotated.0, &rotated.1)), &introspect(&token)).await;
    assert_eq!(before.json["active"], true, "{}", before.json);
    let after_creds = secret(&api, "after-failover-credentials").unwrap().1;
    api.kubectl_ok(&["delete", "inboundapp", "inventory-sync", "-n", APPS_NS, "--wait=false"]);
    eventually("app and Secret deleted", Duration::from_secs(15), || {
        (api.get_json(&["inboundapp", "inventory-sync", "-n", APPS_NS]).is_none()
            && secret(&api, "inventory-sync-credentials").is_none())
        .then_some(())
    })
    .await;
    let mut refused = false;
    for _ in 0..25 {
        let reply = survivor.token(&rotated).await;
        if reply.status == 401 {
            reply.assert_error(401, "invalid_client");
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(refused, "tokens still issued to a deleted app");
    // The inventory API's resource server asks about the old token: inactive (its client no
    // longer exists).
    let mut after_ok = false;
    for _ in 0..25 {
        let reply = survivor.post("/introspect", Some((&after_creds.0, &after_creds.1)), &introspect(&token)).await;
        if reply.status == 200 {
            assert_eq!(reply.json, json!({"active": false}));
            after_ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(after_ok, "the other app could not introspect");

    // The API server goes away: the survivor keeps serving from its caches.
    drop(api);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reply = survivor.token(&after_creds).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let log = survivor.log();
    for secret in [&creds.1, &recreated.1, &rotated.1, &after_creds.1] {
        assert!(!log.contains(secret.as_str()), "a client secret was logged");
    }
}

fn kids(jwks: &Value, alg: &str) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == alg)
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

fn token_kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

/// Signing keys rotate on schedule: the successor is in the JWKS before it signs, then
/// signs, and the predecessor stays published so its tokens still verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_rotate_with_publish_ahead() {
    let api = ApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    api.install_crds("crds/inbound.dev.yaml");
    let kubeconfig = install_chart_identity(&api, dir.path());
    let rotation = ["--key-rotation-interval", "8s", "--key-publish-ahead", "4s"];
    let mut op = Operator::start_with(&kubeconfig, &dir.path().join("data"), "replica-a", dir.path(), &rotation);
    op.wait_ready().await;
    api.apply(APPS_NS, "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {name: signer}\nspec: {displayName: Signer, grantTypes: [client_credentials]}\n---\napiVersion: inbound.dev/v1alpha1\nkind: ClientGrant\nmetadata: {name: signer}\nspec:\n  subject: {kind: InboundApp, name: signer}\n  scopes: []\n",
    );
    let creds = eventually("credentials", Duration::from_secs(15), || secret(&api, "signer-credentials")).await.1;
    let first_jwks = op.jwks().await;
    let first = kids(&first_jwks, "ES256");
    assert_eq!(first.len(), 1, "{first_jwks}");
    let mut token = String::new();
    for _ in 0..50 {
        let reply = op.post("/token", Some((&creds.0, &creds.1)), "grant_type=client_credentials").await;
        if reply.status == 200 {
            token = reply.json["access_token"].as_str().unwrap().to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(token_kid(&token), first[0]);
    let next_rotation = || async {
        let text = reqwest::get(format!("{}/metrics", op.base)).await.unwrap().text().await.unwrap();
        let scrape = crate::metrics::parse(&text);
        crate::metrics::value(&scrape, "inbound_signing_key_next_rotation_timestamp_seconds", &[("alg", "ES256")])
    };
    let first_due = next_rotation().await.expect("next rotation reported");

    // Published ahead: two keys, the old one still signing.
    let started = Instant::now();
    let successor = loop {
        let published = kids(&op.jwks().await, "ES256");
        if published.len() == 2 {
            let reply = op.post("/token", Some((&creds.0, &creds.1)), "grant_type=client_credentials").await;
            let signer = token_kid(reply.json["access_token"].as_str().unwrap());
            if signer == first[0] {
                break published.into_iter().find(|k| *k != first[0]).unwrap();
            }
            // Already switched between the two calls: the successor was still published first.
            break signer;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no successor key published");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Then it signs, and the predecessor stays published.
    let started = Instant::now();
    loop {
        let reply = op.post("/token", Some((&creds.0, &creds.1)), "grant_type=client_credentials").await;
        if token_kid(reply.json["access_token"].as_str().unwrap()) == successor {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the successor never signed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(kids(&op.jwks().await, "ES256").contains(&first[0]), "the predecessor was dropped too early");
    // The successor took over when the metric said; the next rotation is one interval on.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(first_due <= now, "rotated before the announced {first_due} (now {now})");
    let started = Instant::now();
    loop {
        let due = next_rotation().await.unwrap();
        if due >= first_due + 8.0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the next rotation stayed at {due}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let rotated = op.audited("signing_keys_rotated", |r| r["current"][0] == successor.as_str()).await;
    assert!(rotated["published"].as_array().unwrap().iter().any(|k| k == first[0].as_str()), "{rotated}");
    let introspected = op.post("/introspect", Some((&creds.0, &creds.1)), &form(&[("token", &token)])).await;
    assert_eq!(introspected.json["active"], true, "a token of the retired key no longer verifies");
    // The Secret is the source: its document names the same keys.
    let doc = api.kubectl_ok(&[
        "get",
        "secret",
        "inbound-signing-keys",
        "-n",
        NS,
        "-o",
        "go-template={{index .data \"keys.json\" | base64decode}}",
    ]);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["activeKid"], successor.as_str());

    // A restart on an empty data directory (the chart's default emptyDir): the keys come
    // back from their Secret, and the app's existing credentials are kept, not reissued.
    drop(op);
    let mut fresh = Operator::start_with(&kubeconfig, &dir.path().join("data-2"), "replica-b", dir.path(), &rotation);
    fresh.wait_ready().await;
    let mut served = false;
    for _ in 0..50 {
        if fresh.post("/token", Some((&creds.0, &creds.1)), "grant_type=client_credentials").await.status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(served, "the existing secret stopped working after a restart:\n{}", fresh.log());
    assert_eq!(secret(&api, "signer-credentials").unwrap().1, creds, "credentials were reissued");
    assert!(kids(&fresh.jwks().await, "ES256").contains(&successor));
}

/// Self-registration in a cluster: the registration policy comes from a ConsentPolicy in
/// the API server, the clients live in the store, and the admin API lets exactly those whom
/// RBAC allows list and delete them (TokenReview + SubjectAccessReview).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_manages_registered_clients_under_kubernetes_rbac() {
    let cluster = Cluster::start();
    let api = &cluster.api;
    let mut op = cluster.operator("replica-a", &[]).await;
    // The registration policy lives in the operator's namespace (a cluster-wide singleton):
    // examples/mcp's policy and Scopes, applied there as the README says.
    let hostile_policy = |name: &str| {
        format!(
            "apiVersion: inbound.dev/v1alpha1\nkind: ConsentPolicy\nmetadata: {{name: {name}}}\nspec:\n  registration: {{dynamic: true, redirectUriPatterns: ['http://127.0.0.1/callback']}}\n"
        )
    };
    api.apply(APPS_NS, &hostile_policy("aaa"));
    let early = refused(api, "consentpolicy", APPS_NS, "aaa").await;
    assert!(early["message"].as_str().unwrap().contains("only a ConsentPolicy in the operator's namespace"), "{early}");
    for file in ["examples/mcp/scopes.yaml", "examples/mcp/policy.yaml"] {
        api.kubectl_ok(&["apply", "-n", NS, "-f", file]);
    }
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let metadata =
            reply(http.get(format!("{}/.well-known/oauth-authorization-server", op.base)).send().await.unwrap()).await;
        if metadata.json.get("registration_endpoint").is_some() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "registration never enabled: {}", metadata.json);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let registered = reply(
        http.post(format!("{}/register", op.base))
            .header("content-type", "application/json")
            .body(json!({"client_name": "Agent in cluster", "redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none"}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(registered.status, 201, "{}", registered.json);
    let client_id = registered.json["client_id"].as_str().unwrap().to_string();

    // It took nothing over, and a second one in another namespace does not either: the
    // registered client keeps working, and so does its admin authority.
    api.kubectl_ok(&["create", "namespace", "zzz"]);
    api.apply("zzz", &hostile_policy("zzz"));
    let hostile = refused(api, "consentpolicy", "zzz", "zzz").await;
    assert_eq!(hostile["reason"], "InvalidSpec", "{hostile}");
    let hostile = api.get_json(&["consentpolicy", "aaa", "-n", APPS_NS]).unwrap();
    let hostile = ready_condition(&hostile).unwrap();
    assert_eq!(hostile["reason"], "InvalidSpec", "{hostile}");
    let message = hostile["message"].as_str().unwrap();
    assert!(
        message.contains("in the operator's namespace inbound-system; ConsentPolicy inbound-system/mcp-clients does"),
        "{message}"
    );
    let mcp = api.get_json(&["consentpolicy", "mcp-clients", "-n", NS]).unwrap();
    assert_eq!(ready_condition(&mcp).unwrap()["status"], "True", "{mcp}");
    let authorize = format!(
        "{}/authorize?response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&scope=mcp%3Atools",
        op.base
    );
    let page = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = page.get(&authorize).send().await.unwrap();
    assert_eq!(login.status(), 200, "the registered client stopped working: {}", login.text().await.unwrap());

    // Two ServiceAccounts: one bound to the chart's clients-admin role in the policy's
    // namespace (the operator's), one without. A binding in the hostile policy's namespace
    // would grant nothing.
    api.kubectl_ok(&["create", "serviceaccount", "ops", "-n", APPS_NS]);
    api.kubectl_ok(&["create", "serviceaccount", "nobody", "-n", APPS_NS]);
    api.kubectl_ok(&[
        "create",
        "rolebinding",
        "ops-clients",
        "-n",
        NS,
        "--clusterrole",
        "inbound-clients-admin",
        &format!("--serviceaccount={APPS_NS}:ops"),
    ]);
    // Tokens bound to the admin audience (the issuer + /admin), never API-server tokens.
    let audience = format!("{}/admin", op.base);
    let token =
        |sa: &str| api.kubectl_ok(&["create", "token", sa, "-n", APPS_NS, "--audience", &audience]).trim().to_string();
    let (ops, nobody) = (token("ops"), token("nobody"));
    let api_server_token = api.kubectl_ok(&["create", "token", "ops", "-n", APPS_NS]).trim().to_string();
    let list = |bearer: Option<String>, query: &str| {
        let mut request = http.get(format!("{}/admin/clients{query}", op.admin));
        if let Some(t) = bearer {
            request = request.bearer_auth(t);
        }
        async move { reply(request.send().await.unwrap()).await }
    };
    assert_eq!(list(None, "").await.status, 401);
    assert_eq!(list(Some("not-a-token".into()), "").await.status, 401);
    // The public listener has no admin API at all.
    let public = http.get(format!("{}/admin/clients", op.base)).bearer_auth(&ops).send().await.unwrap();
    assert_eq!(public.status(), 404, "the admin API is served on the public listener");
    let forbidden = list(Some(nobody.clone()), "").await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.json);
    assert!(forbidden.json["error_description"].as_str().unwrap().contains("system:serviceaccount:default:nobody"));
    // RBAC bindings reach the authorizer's cache asynchronously.
    let started = Instant::now();
    let listed = loop {
        let listed = list(Some(ops.clone()), "?name_contains=in%20cluster").await;
        if listed.status == 200 {
            break listed;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "ops never allowed: {}", listed.json);
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(listed.json["clients"][0]["client_id"], client_id.as_str(), "{}", listed.json);
    // The same ServiceAccount's token for the API server (no audience binding) is refused.
    let unbound = list(Some(api_server_token), "").await;
    assert_eq!(unbound.status, 401, "a token not bound to the admin audience was accepted: {}", unbound.json);
    assert!(listed.json["clients"][0].get("secret_hash").is_none());
    assert_eq!(list(Some(ops.clone()), "?name_contains=nothing").await.json["clients"], json!([]));
    let bad_filter = list(Some(ops.clone()), "?colour=blue").await;
    assert_eq!(bad_filter.status, 400);

    // Tags in bulk: `update` registeredclients; then the listing filters by them.
    let tag = |bearer: &str, query: &str, body: Value| {
        let request = http.patch(format!("{}/admin/clients{query}", op.admin)).bearer_auth(bearer).json(&body);
        async move { reply(request.send().await.unwrap()).await }
    };
    let by_name = "?name_contains=in%20cluster";
    assert_eq!(tag(&nobody, by_name, json!({"add": ["team-x"]})).await.status, 403);
    assert_eq!(tag(&ops, "", json!({"add": ["team-x"]})).await.status, 400, "a filter is required");
    assert_eq!(tag(&ops, by_name, json!({"add": ["not a tag"]})).await.status, 400);
    let tagged = tag(&ops, by_name, json!({"add": ["team-x", "beta"], "remove": ["beta"]})).await;
    assert_eq!(tagged.status, 200, "{}", tagged.json);
    assert_eq!(tagged.json["tagged"], json!([{"client_id": client_id, "tags": ["team-x"]}]));
    let by_tag = list(Some(ops.clone()), "?tag=team-x&grant_type=authorization_code").await;
    assert_eq!(by_tag.json["clients"][0]["client_id"], client_id.as_str(), "{}", by_tag.json);
    assert_eq!(by_tag.json["clients"][0]["kind"], "registered");
    assert_eq!(list(Some(ops.clone()), "?tag=team-y").await.json["clients"], json!([]));
    // Declared apps are in the same listing, only of namespaces where the caller may list
    // InboundApps: ops (bound in the operator's namespace) sees that namespace's app, not
    // the one in another namespace.
    let app = |name: &str| {
        format!(
            "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {{name: {name}}}\nspec: {{displayName: {name}, clientType: public, grantTypes: [authorization_code], redirectUris: ['http://127.0.0.1/cb'], tags: [ops]}}\n"
        )
    };
    api.apply(NS, &app("ops-visible"));
    api.apply(APPS_NS, &app("elsewhere"));
    for (ns, name) in [(NS, "ops-visible"), (APPS_NS, "elsewhere")] {
        let started = Instant::now();
        loop {
            let object = api.get_json(&["inboundapp", name, "-n", ns]);
            // Not Ready (no identity source in this cluster), but validated and given its id.
            if object.as_ref().is_some_and(|o| o["status"]["clientId"].is_string()) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{ns}/{name} never reconciled: {object:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // One snapshot round more, so that both are served before the listing is judged.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    let declared = loop {
        let listed = list(Some(ops.clone()), "?kind=declared&tag=ops").await;
        let names: Vec<String> =
            listed.json["clients"].as_array().unwrap().iter().map(|c| c["app"].as_str().unwrap().to_string()).collect();
        if !names.is_empty() {
            break names;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "declared apps never listed: {}", listed.json);
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(declared, [format!("{NS}/ops-visible")], "another namespace's app was shown");
    let forbidden = list(Some(nobody.clone()), "?kind=declared").await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.json);
    op.audited("admin_action", |r| r["action"] == "tag_clients").await; // tagging is recorded

    // Delete: refused to nobody, done for ops; the client is then unknown.
    let delete = |bearer: &str| {
        let request = http.delete(format!("{}/admin/clients/{client_id}", op.admin)).bearer_auth(bearer);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(delete(&nobody).await, 403);
    assert_eq!(delete(&ops).await, 204);
    assert_eq!(delete(&ops).await, 404);
    // Recorded with who did it (the Kubernetes user behind the token).
    let deleted = op.audited("client_deleted", |r| r["client_id"] == client_id.as_str()).await;
    assert_eq!(deleted["deleted_by"], "admin", "{deleted}");
    assert!(deleted["actor"].as_str().is_some_and(|a| a.starts_with("system:serviceaccount:")), "{deleted}");
    op.audited("admin_action", |r| r["action"] == "list_clients").await; // listing is recorded
    assert_eq!(list(Some(ops.clone()), "?kind=registered").await.json["clients"], json!([]));

    // A clean shutdown (SIGTERM, as Kubernetes stops a Pod) releases the lease: another
    // replica leads at its next round instead of waiting for the lease to expire.
    let _other = cluster.operator("replica-b", &[]).await;
    let holder = |api: &ApiServer| {
        api.get_json(&["lease", "inbound-leader", "-n", NS])
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    };
    assert_eq!(holder(api).as_deref(), Some("replica-a"));
    let term = Command::new("kill").args(["-TERM", &op.child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = op.child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status}\n{}", op.log());
    // Right after the exit, long before the lease (3 s) could expire, it is no longer held
    // by the stopped replica.
    assert_ne!(holder(api).as_deref(), Some("replica-a"), "the lease was not released");
    eventually("replica-b leads", Duration::from_secs(3), || {
        (holder(api).as_deref() == Some("replica-b")).then_some(())
    })
    .await;
}

/// A device authorization for `client_id` at `base`, once the served catalog knows the app.
async fn start_device_authorization(http: &reqwest::Client, base: &str, client_id: &str) -> Value {
    let started = Instant::now();
    loop {
        let r = reply(
            http.post(format!("{base}/device_authorization"))
                .form(&[("client_id", client_id), ("scope", "openid")])
                .send()
                .await
                .unwrap(),
        )
        .await;
        if r.status == 200 {
            return r.json;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no device authorization: {}", r.json);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The payload of a JWT, unverified (the tests check what a token carries).
fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Audiences have owners (README "Who can mint what"): team-a's Scopes claim the billing
/// API. team-b, with write access to inbound.dev in its own namespace only, tries to mint a
/// billing token for its agent: its own grant for billing, and its own Scope claiming it,
/// are InvalidSpec, and no token is issued. Once team-a grants team-b's agent, the token
/// carries exactly team-a's scope and says which namespace the client is from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_cannot_mint_tokens_for_another_namespaces_api() {
    const BILLING: &str = "https://billing.example.com";
    let cluster = Cluster::start();
    let api = &cluster.api;
    let op = cluster.operator("replica-a", &[]).await;
    for ns in ["team-a", "team-b"] {
        api.kubectl_ok(&["create", "namespace", ns]);
    }
    api.apply(
        "team-a",
        &format!(
            "apiVersion: inbound.dev/v1alpha1\nkind: Scope\nmetadata: {{name: refund}}\nspec: {{scope: 'billing:refund', description: Refund, resource: '{BILLING}'}}\n---\napiVersion: inbound.dev/v1alpha1\nkind: Scope\nmetadata: {{name: admin}}\nspec: {{scope: admin, description: Administer}}\n"
        ),
    );
    eventually("team-a's Scope is Ready", Duration::from_secs(15), || {
        let scope = api.get_json(&["scope", "refund", "-n", "team-a"])?;
        (ready_condition(&scope)?["status"] == "True").then_some(())
    })
    .await;
    api.apply(
        "team-b",
        &format!(
            "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {{name: agent}}\nspec: {{displayName: Agent, grantTypes: [client_credentials]}}\n---\napiVersion: inbound.dev/v1alpha1\nkind: Scope\nmetadata: {{name: refund}}\nspec: {{scope: 'billing:refund', description: Refund}}\n---\napiVersion: inbound.dev/v1alpha1\nkind: Scope\nmetadata: {{name: claim}}\nspec: {{scope: 'billing:everything', description: All of billing, resource: '{BILLING}/'}}\n---\napiVersion: inbound.dev/v1alpha1\nkind: Scope\nmetadata: {{name: admin}}\nspec: {{scope: admin, description: Administer team-b}}\n---\napiVersion: inbound.dev/v1alpha1\nkind: ClientGrant\nmetadata: {{name: self-service}}\nspec:\n  subject: {{kind: InboundApp, name: agent}}\n  scopes: ['billing:refund']\n  resources: ['{BILLING}']\n"
        ),
    );
    for (kind, name) in [("clientgrant", "self-service"), ("scope", "claim")] {
        let ready = refused(api, kind, "team-b", name).await;
        assert_eq!(ready["reason"], "InvalidSpec", "{ready}");
        let message = ready["message"].as_str().unwrap();
        assert!(message.contains("is owned by namespace team-a (declared first by Scope team-a/refund)"), "{message}");
    }
    // A scope string without a resource is one name in the default audience's tokens:
    // team-a holds `admin`, so team-b's is refused rather than served beside it.
    let admin = refused(api, "scope", "team-b", "admin").await;
    assert_eq!(admin["reason"], "InvalidSpec", "{admin}");
    assert!(admin["message"].as_str().unwrap().contains("declared first by Scope team-a/admin"), "{admin}");
    let creds = eventually("team-b's agent has credentials", Duration::from_secs(15), || {
        let secret = api.get_json(&["secret", "agent-credentials", "-n", "team-b"])?;
        let field = |k: &str| {
            use base64::Engine;
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(secret["data"][k].as_str()?).ok()?).ok()
        };
        Some((field("client_id")?, field("client_secret")?))
    })
    .await;
    let request = format!("grant_type=client_credentials&resource={}", urlencoding(BILLING));
    let denied = op.post("/token", Some((&creds.0, &creds.1)), &request).await;
    denied.assert_error(400, "unauthorized_client");

    // The owner grants team-b's agent its API: the token carries team-a's scope, and the
    // client's namespace for the resource server's own policy.
    api.apply(
        "team-a",
        &format!(
            "apiVersion: inbound.dev/v1alpha1\nkind: ClientGrant\nmetadata: {{name: team-b-agent}}\nspec:\n  subject: {{kind: InboundApp, name: agent, namespace: team-b}}\n  scopes: ['billing:refund']\n  resources: ['{BILLING}']\n"
        ),
    );
    let started = Instant::now();
    let granted = loop {
        let reply = op.post("/token", Some((&creds.0, &creds.1)), &request).await;
        if reply.status == 200 {
            break reply;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "team-a's grant never applied: {}", reply.json);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let claims = jwt_claims(granted.json["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], BILLING, "{claims}");
    assert_eq!(claims["scope"], "billing:refund", "{claims}");
    assert_eq!(claims["client_namespace"], "team-b", "{claims}");
    // team-b's own grant stays refused: nothing it declares reaches the billing audience.
    assert_eq!(refused(api, "clientgrant", "team-b", "self-service").await["reason"], "InvalidSpec");

    // Introspection is for resource servers: team-a's billing API reads the token; team-b
    // cannot declare itself billing's resource server, and its other apps learn nothing.
    api.apply(
        "team-a",
        &format!(
            "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {{name: billing-api}}\nspec: {{displayName: Billing API, resourceServer: {{resources: ['{BILLING}']}}}}\n"
        ),
    );
    api.apply(
        "team-b",
        &format!(
            "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {{name: fake-billing}}\nspec: {{displayName: Fake, resourceServer: {{resources: ['{BILLING}']}}}}\n---\napiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {{name: nosy}}\nspec: {{displayName: Nosy, grantTypes: [client_credentials]}}\n"
        ),
    );
    let fake = refused(api, "inboundapp", "team-b", "fake-billing").await;
    assert!(fake["message"].as_str().unwrap().contains("spec.resourceServer.resources[0]: resource"), "{fake}");
    let app_creds = |ns: &str, name: &str| {
        let (api, ns, name) = (&api, ns.to_string(), format!("{name}-credentials"));
        move || {
            let secret = api.get_json(&["secret", &name, "-n", &ns])?;
            let field = |k: &str| {
                use base64::Engine;
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(secret["data"][k].as_str()?).ok()?)
                    .ok()
            };
            Some((field("client_id")?, field("client_secret")?))
        }
    };
    let billing_api =
        eventually("billing-api credentials", Duration::from_secs(15), app_creds("team-a", "billing-api")).await;
    let nosy = eventually("nosy credentials", Duration::from_secs(15), app_creds("team-b", "nosy")).await;
    let token = granted.json["access_token"].as_str().unwrap();
    let introspect = format!("token={token}");
    let started = Instant::now();
    let read = loop {
        let reply = op.post("/introspect", Some((&billing_api.0, &billing_api.1)), &introspect).await;
        if reply.status == 200 && reply.json["active"] == true {
            break reply.json;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "billing-api never served: {}", reply.json);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(read["client_namespace"], "team-b", "{read}");
    assert_eq!(read["scope"], "billing:refund", "{read}");
    let started = Instant::now();
    loop {
        let reply = op.post("/introspect", Some((&nosy.0, &nosy.1)), &introspect).await;
        if reply.status == 200 {
            assert_eq!(reply.json, json!({"active": false}), "another client of team-b read the token");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "nosy never served: {}", reply.json);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Ready condition of an object once it is False.
async fn refused(api: &ApiServer, kind: &str, namespace: &str, name: &str) -> Value {
    eventually(&format!("{kind} {namespace}/{name} is refused"), Duration::from_secs(15), || {
        let object = api.get_json(&[kind, name, "-n", namespace])?;
        let ready = ready_condition(&object)?.clone();
        (ready["status"] == "False").then_some(ready)
    })
    .await
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Serving apart from writing (chart `split.enabled`): the Pods that parse internet traffic
/// run `--role server` under a ServiceAccount that may read the four kinds and the
/// signing-keys Secret and nothing else; the controller (`--role controller`) writes
/// Secrets, status and keys and serves no OAuth. `kubectl auth can-i` proves the rules on
/// the real API server, and both halves run with exactly those rights.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_serving_pods_hold_only_read_rights_and_still_serve() {
    let api = ApiServer::start();
    let pg = crate::support::postgres::Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    api.install_crds("crds/inbound.dev.yaml");
    let values = json!({
        "issuer": "https://auth.example.com",
        "crds": { "install": false },
        "split": { "enabled": true },
        "store": { "type": "postgres", "postgres": { "existingSecret": "inbound-postgres" } },
    });
    install_chart(&api, dir.path(), &values);
    let can = |who: &str, args: &[&str]| {
        let who = format!("system:serviceaccount:{NS}:{who}");
        let (ok, stdout, _) = api.kubectl(&[&["auth", "can-i"], args, &["--as", &who]].concat());
        ok && stdout.trim() == "yes"
    };
    for (allowed, args) in [
        (true, &["watch", "inboundapps.inbound.dev", "-A"][..]),
        (true, &["list", "consentpolicies.inbound.dev", "-n", "team-a"]),
        (true, &["get", "secret/inbound-signing-keys", "-n", NS]),
        (true, &["watch", "secret/inbound-signing-keys", "-n", NS]),
        (false, &["get", "secret/inventory-sync-credentials", "-n", "default"]),
        (false, &["list", "secrets", "-n", NS]),
        (false, &["create", "secrets", "-n", "default"]),
        (false, &["update", "secret/inbound-signing-keys", "-n", NS]),
        (false, &["patch", "inboundapps.inbound.dev", "-n", "default"]),
        (false, &["patch", "scopes.inbound.dev", "--subresource", "status", "-n", "default"]),
        (false, &["create", "events", "-n", "default"]),
        // TokenReview only: ServiceAccount tokens of the JWT bearer grant.
        (true, &["create", "tokenreviews.authentication.k8s.io"]),
        (false, &["create", "subjectaccessreviews.authorization.k8s.io"]),
        (false, &["update", "leases.coordination.k8s.io/inbound-leader", "-n", NS]),
    ] {
        assert_eq!(can("inbound-server", args), allowed, "server: can-i {args:?}");
    }
    for (allowed, args) in [
        (true, &["patch", "scopes.inbound.dev", "--subresource", "status", "-n", "default"][..]),
        (true, &["patch", "inboundapps.inbound.dev", "-n", "default"]),
        (true, &["create", "secrets", "-n", "default"]),
        (true, &["update", "secret/inbound-signing-keys", "-n", NS]),
        (true, &["create", "tokenreviews.authentication.k8s.io"]),
        // Status is all it writes of the other kinds; Secrets are applied, never replaced.
        (false, &["update", "scopes.inbound.dev", "-n", "default"]),
        (false, &["patch", "consentpolicies.inbound.dev", "-n", "default"]),
        (false, &["update", "secret/inventory-sync-credentials", "-n", "default"]),
    ] {
        assert_eq!(can("inbound", args), allowed, "controller: can-i {args:?}");
    }

    // Both halves, each with its own ServiceAccount's rights, on one PostgreSQL store.
    let store = pg.url();
    let controller_config = kubeconfig_for(&api, dir.path(), "inbound");
    let server_config = kubeconfig_for(&api, dir.path(), "inbound-server");
    let controller_args = ["--role", "controller", "--store", store.as_str()];
    let mut controller =
        Operator::start_with(&controller_config, &dir.path().join("c"), "controller-0", dir.path(), &controller_args);
    controller.wait_ready().await;
    let server_args = ["--role", "server", "--store", store.as_str()];
    let mut server = Operator::start_with(&server_config, &dir.path().join("s"), "server-0", dir.path(), &server_args);
    server.wait_ready().await;
    api.kubectl_ok(&["apply", "-n", APPS_NS, "-f", "examples/cluster/"]);
    let creds = eventually("the controller wrote the credentials", Duration::from_secs(20), || {
        secret(&api, "inventory-sync-credentials").map(|(_, creds)| creds)
    })
    .await;
    let started = Instant::now();
    loop {
        let reply = server.token(&creds).await;
        if reply.status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the server never served the app: {}\n{}",
            reply.json,
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The controller serves no OAuth; neither half logs a secret or a permission error.
    let refused = reqwest::Client::new().post(format!("{}/token", controller.base)).send().await.unwrap();
    assert_eq!(refused.status(), 404);
    for half in [&controller, &server] {
        let log = half.log();
        assert!(!log.contains(&creds.1), "a client secret was logged");
        assert!(!log.contains("forbidden"), "missing permission:\n{log}");
    }
}

/// An IdentityProvider for the upstream of these tests, its client secret in a Secret.
fn cluster_identity_provider(name: &str, issuer: &str, secret: &str) -> String {
    format!(
        "apiVersion: inbound.dev/v1alpha1
kind: IdentityProvider
metadata: {{name: {name}}}
spec:
  displayName: Acme SSO
  oidc:
    issuer: {issuer}
    clientId: inbound
    clientSecret: {{secretKeyRef: {{name: {secret}, key: client-secret}}}}
    scopes: [openid, email, profile, groups]
  claims:
    roles: {{claim: groups, values: {{billing-admins: [billing-admin]}}}}
"
    )
}

/// Federated sign-in in a cluster: an IdentityProvider in the operator's namespace goes
/// Ready once the upstream (a real `oidc-provider`) answered discovery and JWKS and accepted
/// inbound's client secret from a Kubernetes Secret; one anywhere else is refused; and the
/// official MCP SDK completes its flow with the user signing in upstream, their upstream
/// group giving the role a scope requires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_sign_in_through_an_identity_provider_declared_in_the_cluster() {
    let cluster = Cluster::start();
    let (api, dir) = (&cluster.api, &cluster.dir);
    // A real SMTP relay for CIBA's approval emails (plain SMTP is allowed on loopback only).
    let smtp = crate::support::smtp::SmtpServer::start();
    let smtp_port = smtp.port().to_string();
    let smtp_flags = [
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &smtp_port,
        "--smtp-tls",
        "none",
        "--smtp-from",
        "inbound@acme.test",
    ];
    let op = cluster.operator("replica-a", &smtp_flags).await;
    let accounts = json!({"alice": {"email": "alice@acme.test", "name": "Alice", "groups": ["billing-admins"]}});
    let upstream = crate::support::upstream::Upstream::start(
        &format!("{}/login/callback", op.base),
        "the-right-secret",
        accounts,
        false,
    );

    // Who users are is not any namespace's decision.
    api.apply(APPS_NS, &cluster_identity_provider("rogue", &upstream.issuer, "rogue-secret"));
    let rogue = refused(api, "identityprovider", APPS_NS, "rogue").await;
    assert_eq!(rogue["reason"], "InvalidSpec", "{rogue}");
    assert!(rogue["message"].as_str().unwrap().contains("only in the operator's namespace"), "{rogue}");

    // examples/identity/acme-sso.yaml as written, pointed at this upstream. A wrong client
    // secret first: Ready=False with the upstream's verdict (and an event).
    let example = std::fs::read_to_string("examples/identity/acme-sso.yaml")
        .unwrap()
        .replace("https://login.acme.example/realms/acme", &upstream.issuer);
    api.apply(NS, &example.replace("replace-with-the-client-secret", "a-wrong-secret"));
    let wrong = refused(api, "identityprovider", NS, "acme-sso").await;
    assert_eq!(wrong["reason"], "UpstreamUnavailable", "{wrong}");
    assert!(wrong["message"].as_str().unwrap().contains("invalid_client"), "{wrong}");
    assert!(!wrong["message"].as_str().unwrap().contains("a-wrong-secret"), "{wrong}");
    assert!(api.events(NS, "acme-sso").contains("UpstreamUnavailable"), "{}", api.events(NS, "acme-sso"));

    // The right one: Ready.
    api.apply(NS, &example.replace("replace-with-the-client-secret", "the-right-secret"));
    eventually("the IdentityProvider is Ready", Duration::from_secs(30), || {
        let idp = api.get_json(&["identityprovider", "acme-sso", "-n", NS])?;
        (ready_condition(&idp)?["status"] == "True").then_some(())
    })
    .await;
    let printed = api.kubectl_ok(&["get", "identityproviders", "-n", NS]);
    assert!(printed.contains("Acme SSO") && printed.contains(&upstream.issuer), "{printed}");

    // The device flow (RFC 8628) in the cluster: a CLI app of another namespace; the device
    // starts at the operator, the user enters the code at /device in a real Chromium and
    // signs in upstream (the only way to sign in here), and the device's poll gets tokens.
    api.apply(
        APPS_NS,
        "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {name: device-cli}\nspec: {displayName: Device CLI, clientType: public, grantTypes: ['urn:ietf:params:oauth:grant-type:device_code'], allowedScopes: [openid]}\n",
    );
    let cli = eventually("device-cli has a client id", Duration::from_secs(20), || {
        let app = api.get_json(&["inboundapp", "device-cli", "-n", APPS_NS])?;
        app["status"]["clientId"].as_str().map(str::to_string)
    })
    .await;
    let http = reqwest::Client::new();
    let started_device = start_device_authorization(&http, &op.base, &cli).await;
    let browser = crate::support::browser::Browser::start().await;
    browser.goto(started_device["verification_uri_complete"].as_str().unwrap()).await;
    browser.wait_for_text("Connect a device").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url(&upstream.issuer).await;
    crate::support::upstream::sign_in_and_authorize(&browser, "alice").await;
    browser.wait_for_text("You are connecting a device").await;
    browser.click("button[value=approve]").await;
    browser.wait_for_text("Device connected").await;
    browser.quit().await;
    let polled = reply(
        http.post(format!("{}/token", op.base))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", cli.as_str()),
                ("device_code", started_device["device_code"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(polled.status, 200, "{}\n{}", polled.json, op.log());
    let subject = inbound::identity::upstream::subject_for(
        &inbound::api::ObjectKey { namespace: NS.into(), name: "acme-sso".into() },
        "alice",
    );
    assert_eq!(jwt_claims(polled.json["access_token"].as_str().unwrap())["sub"], subject.as_str());

    // CIBA in the cluster: an agent (confidential, its Secret written by the operator) names
    // alice, known since her sign-in; she approves from the email, signing in upstream.
    api.apply(
        APPS_NS,
        "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {name: ciba-agent}\nspec: {displayName: Cluster Agent, clientType: confidential, grantTypes: ['urn:openid:params:grant-type:ciba'], allowedScopes: [openid], ciba: {pollInterval: 1s}}\n",
    );
    let (_, (agent_id, agent_secret)) =
        eventually("the agent's Secret", Duration::from_secs(20), || secret(api, "ciba-agent-credentials")).await;
    let started = Instant::now();
    let bc = loop {
        let r = reply(
            http.post(format!("{}/bc-authorize", op.base))
                .basic_auth(&agent_id, Some(&agent_secret))
                .form(&[("scope", "openid"), ("login_hint", "alice@acme.test"), ("binding_message", "CLUSTER-7")])
                .send()
                .await
                .unwrap(),
        )
        .await;
        if r.status == 200 {
            break r.json;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{}\n{}", r.json, op.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let email = smtp.wait_for(1, Duration::from_secs(10)).await.pop().unwrap();
    assert!(email.to.contains("alice@acme.test") && email.text.as_deref().unwrap().contains("CLUSTER-7"));
    let link = email.text.unwrap().lines().map(str::trim).find(|l| l.starts_with("http")).unwrap().to_string();
    let browser = crate::support::browser::Browser::start().await;
    browser.goto(&link).await;
    browser.wait_for_url(&upstream.issuer).await;
    crate::support::upstream::sign_in_and_authorize(&browser, "alice").await;
    browser.wait_for_text("CLUSTER-7").await;
    browser.click("button[value=approve]").await;
    browser.wait_for_text("Allowed").await;
    browser.quit().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tokens = reply(
        http.post(format!("{}/token", op.base))
            .basic_auth(&agent_id, Some(&agent_secret))
            .form(&[
                ("grant_type", "urn:openid:params:grant-type:ciba"),
                ("auth_req_id", bc["auth_req_id"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert_eq!(jwt_claims(tokens.json["access_token"].as_str().unwrap())["sub"], subject.as_str());

    // An MCP server in the cluster setup; its registration policy in the operator's namespace.
    let (listener, base) = crate::mcp::bind().await;
    let resource = format!("{base}/mcp");
    let mcp = crate::mcp::serve_mcp(listener, &base, &op.base);
    let policy = crate::support::flows::registration_policy(&resource, "")
        .replace("namespace: mcp", &format!("namespace: {NS}"));
    api.apply(NS, &policy);
    let http = reqwest::Client::new();
    let started = Instant::now();
    while reply(http.get(format!("{}/.well-known/oauth-authorization-server", op.base)).send().await.unwrap())
        .await
        .json
        .get("registration_endpoint")
        .is_none()
    {
        assert!(started.elapsed() < Duration::from_secs(15), "registration never enabled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // No development users in a cluster and one identity provider: /authorize goes straight
    // upstream; the step-up to billing:refund needs the role the upstream group maps to.
    let storage = dir.path().join("mcp.json");
    let run = crate::mcp::sdk_run(
        &mcp.url,
        &storage,
        &["--username", "alice", "--upstream", &upstream.issuer, "--tool", "refund", "--approve-scopes", "all"],
    )
    .await;
    assert_eq!(run["result"], "refund issued", "{run}\n{}", op.log());
    assert!(op.log().contains("user logged in"), "{}", op.log());
}

/// The workload of examples/cluster/workload-identity.yaml, end to end: a ServiceAccount
/// token from the API server (TokenRequest, audience = the issuer) traded for an access
/// token, checked by TokenReview; refused for the API server's audience, for the same name
/// in another namespace, and once the ServiceAccount is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_trade_service_account_tokens() {
    let cluster = Cluster::start();
    let (api, dir) = (&cluster.api, &cluster.dir);
    let operator = cluster.operator("replica-a", &[]).await;
    api.kubectl_ok(&["apply", "-n", APPS_NS, "-f", "examples/cluster/"]);
    eventually("clientgrant/billing-worker Ready", Duration::from_secs(20), || {
        let object = api.get_json(&["clientgrant", "billing-worker", "-n", APPS_NS])?;
        (ready_condition(&object)?["status"] == "True").then_some(())
    })
    .await;

    // The Pod's command, with the projected token in a folder and the Service's URL
    // pointing at this operator. Its audience is the chart's issuer; here the operator's.
    let pod: Value = serde_norway::Deserializer::from_str(
        &std::fs::read_to_string("examples/cluster/workload-identity.yaml").unwrap(),
    )
    .map(|d| serde::Deserialize::deserialize(d).unwrap())
    .find(|d: &Value| d["kind"] == "Pod")
    .unwrap();
    let projected = &pod["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(projected["audience"], "https://auth.example.com", "the chart's issuer");
    let token = api
        .kubectl_ok(&["create", "token", "billing-worker", "-n", APPS_NS, "--audience", &operator.base])
        .trim()
        .to_string();
    let mounted = dir.path().join("projected");
    std::fs::create_dir_all(&mounted).unwrap();
    std::fs::write(mounted.join("token"), &token).unwrap();
    let command = pod["spec"]["containers"][0]["command"][2]
        .as_str()
        .unwrap()
        .replace("/var/run/secrets/inbound/", &format!("{}/", mounted.display()));
    let out = Command::new("sh")
        .args(["-c", &command])
        .env("INBOUND_TOKEN_URL", format!("{}/token", operator.base))
        .output()
        .unwrap();
    let body: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("workload got no token: {out:?}\n{}", operator.log()));
    assert_eq!(body["scope"], "inventory:read");
    let claims = jwt_claims(body["access_token"].as_str().unwrap());
    let account = format!("system:serviceaccount:{APPS_NS}:billing-worker");
    assert_eq!(
        (claims["sub"].as_str(), claims["client_id"].as_str()),
        (Some(account.as_str()), Some(account.as_str()))
    );
    assert_eq!(claims["aud"], "https://inventory.example.com");
    let uid = api.kubectl_ok(&["get", "sa", "billing-worker", "-n", APPS_NS, "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["uid"], uid.as_str());

    let trade = |assertion: String| {
        let operator = &operator;
        async move {
            operator
                .post(
                    "/token",
                    None,
                    &form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)]),
                )
                .await
        }
    };
    // The API server's own audience: refused before any review.
    let for_api = api.kubectl_ok(&["create", "token", "billing-worker", "-n", APPS_NS]).trim().to_string();
    trade(for_api).await.assert_error(400, "invalid_grant");
    // The same ServiceAccount name in another namespace has no grant.
    api.kubectl_ok(&["create", "namespace", "elsewhere"]);
    api.kubectl_ok(&["create", "serviceaccount", "billing-worker", "-n", "elsewhere"]);
    let elsewhere = api
        .kubectl_ok(&["create", "token", "billing-worker", "-n", "elsewhere", "--audience", &operator.base])
        .trim()
        .to_string();
    trade(elsewhere).await.assert_error(400, "unauthorized_client");
    // Delegation (RFC 8693): an app whose delegation grant accepts JWT subject tokens
    // exchanges the workload's ServiceAccount token (checked by TokenReview) for a token
    // acting for the workload, with itself in `act`; never more than the workload's own
    // grants. An app without a delegation grant is refused.
    api.apply(
        APPS_NS,
        r#"apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: inventory-reports}
spec:
  displayName: Inventory Reports
  grantTypes: ["urn:ietf:params:oauth:grant-type:token-exchange"]
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: inventory-reports-for-workloads}
spec:
  subject: {kind: InboundApp, name: inventory-reports}
  scopes: [inventory:read, inventory:write]
  resources: ["https://inventory.example.com"]
  tokenExchange: {subjectTokenTypes: [Jwt]}
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: billing-reporter}
spec:
  displayName: Authenticated by its ServiceAccount
  grantTypes: [client_credentials]
  tokenEndpointAuthMethod: private_key_jwt
  serviceAccountName: billing-worker
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: billing-reporter}
spec:
  subject: {kind: InboundApp, name: billing-reporter}
  scopes: [inventory:read]
  resources: ["https://inventory.example.com"]
"#,
    );
    eventually("clientgrant/inventory-reports-for-workloads Ready", Duration::from_secs(20), || {
        let object = api.get_json(&["clientgrant", "inventory-reports-for-workloads", "-n", APPS_NS])?;
        (ready_condition(&object)?["status"] == "True").then_some(())
    })
    .await;
    let (_, (reports_id, reports_secret)) =
        eventually("inventory-reports credentials", Duration::from_secs(20), || {
            secret(api, "inventory-reports-credentials")
        })
        .await;
    let exchange = |app: (&str, &str), subject: &str| {
        let operator = &operator;
        let body = form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("subject_token", subject),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ]);
        let (id, secret) = (app.0.to_string(), app.1.to_string());
        async move { operator.post("/token", Some((&id, &secret)), &body).await }
    };
    // The Secret is written before the store accepts its secret: served moments later.
    let started = Instant::now();
    let reply = loop {
        let reply = exchange((&reports_id, &reports_secret), &token).await;
        if reply.status != 401 || started.elapsed() > Duration::from_secs(15) {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(reply.status, 200, "{}\n{}", reply.json, operator.log());
    assert_eq!(reply.json["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token");
    assert_eq!(reply.json["scope"], "inventory:read", "the workload's own grants cap the delegate");
    let delegated = jwt_claims(reply.json["access_token"].as_str().unwrap());
    assert_eq!(delegated["sub"], account.as_str());
    assert_eq!(delegated["client_id"], reports_id.as_str());
    assert_eq!(delegated["act"], json!({"sub": reports_id}));
    assert_eq!(delegated["kubernetes.io"]["serviceaccount"]["uid"], uid.as_str());
    let (_, sync) = secret(api, "inventory-sync-credentials").unwrap();
    exchange((&sync.0, &sync.1), &token).await.assert_error(400, "unauthorized_client");

    // Workload identity federation: the app naming the ServiceAccount authenticates with
    // the Pod's token (TokenReview) as client_assertion; another ServiceAccount's is refused.
    let (_, (reporter_id, _)) = eventually("billing-reporter credentials", Duration::from_secs(20), || {
        secret(api, "billing-reporter-credentials")
    })
    .await;
    let as_reporter = |assertion: &str| {
        let body = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &reporter_id),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion),
        ]);
        let operator = &operator;
        async move { operator.post("/token", None, &body).await }
    };
    let reply = as_reporter(&token).await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.json, operator.log());
    assert_eq!(jwt_claims(reply.json["access_token"].as_str().unwrap())["client_id"], reporter_id.as_str());
    api.kubectl_ok(&["create", "serviceaccount", "intruder", "-n", APPS_NS]);
    let intruder = api
        .kubectl_ok(&["create", "token", "intruder", "-n", APPS_NS, "--audience", &operator.base])
        .trim()
        .to_string();
    as_reporter(&intruder).await.assert_error(401, "invalid_client");

    // An enterprise IdP's identity assertion (ID-JAG) for an app trusting it, declared with
    // kubectl: its keys inline (a JSON string in the CRD), the token for the one resource.
    let idp = crate::support::keys::signing_key("corp-idp-1");
    let jwks = json!({"keys": [idp.jwk]}).to_string();
    api.apply(
        APPS_NS,
        &format!(
            r#"apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {{name: corp-agent}}
spec:
  displayName: Corporate agent
  grantTypes: ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
  trustedIssuers:
    - issuer: https://idp.corp.example
      jwks: '{jwks}'
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {{name: corp-agent}}
spec:
  subject: {{kind: InboundApp, name: corp-agent}}
  scopes: [inventory:read]
  resources: ["https://inventory.example.com"]
"#
        ),
    );
    let (_, (corp_id, corp_secret)) =
        eventually("corp-agent credentials", Duration::from_secs(20), || secret(api, "corp-agent-credentials")).await;
    eventually("clientgrant/corp-agent Ready", Duration::from_secs(20), || {
        let object = api.get_json(&["clientgrant", "corp-agent", "-n", APPS_NS])?;
        (ready_condition(&object)?["status"] == "True").then_some(())
    })
    .await;
    let now = crate::support::keys::now();
    let id_jag = idp.sign(
        idp.header("oauth-id-jag+jwt"),
        &json!({"iss": "https://idp.corp.example", "sub": "employee-9", "aud": operator.base, "client_id": corp_id,
                "jti": "cluster-1", "iat": now, "exp": now + 300, "resource": "https://inventory.example.com",
                "scope": "inventory:read"}),
    );
    let body = form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &id_jag)]);
    // The app's secret reaches the store in the pass that writes its Secret; the served
    // catalog takes it in the next one. Until then the client is unknown (and the jti not
    // spent: authentication comes first).
    let started = Instant::now();
    let reply = loop {
        let reply = operator.post("/token", Some((&corp_id, &corp_secret)), &body).await;
        if reply.json["error"] != "invalid_client" || started.elapsed() > Duration::from_secs(10) {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(reply.status, 200, "{}\n{}", reply.json, operator.log());
    let claims = jwt_claims(reply.json["access_token"].as_str().unwrap());
    assert_eq!(
        (claims["aud"].as_str(), claims["scope"].as_str()),
        (Some("https://inventory.example.com"), Some("inventory:read"))
    );
    // Single use on every replica (the store).
    operator.post("/token", Some((&corp_id, &corp_secret)), &body).await.assert_error(400, "invalid_grant");

    // Deleted: TokenReview stops vouching for the token (cached answers last 30 s).
    api.kubectl_ok(&["delete", "serviceaccount", "billing-worker", "-n", APPS_NS]);
    let deleted_at = Instant::now();
    loop {
        let reply = trade(token.clone()).await;
        if reply.status == 400 {
            reply.assert_error(400, "invalid_grant");
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.json);
        assert!(deleted_at.elapsed() < Duration::from_secs(60), "a deleted ServiceAccount's token still works");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `/admin/consents`: a consent given to an app is listed and revoked by whoever RBAC allows
/// `consents.inbound.dev` in the app's namespace (the chart's consents-admin role); the app
/// stays, and the trail names who revoked it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consents_are_administered_under_kubernetes_rbac() {
    let cluster = Cluster::start();
    let api = &cluster.api;
    let op = cluster.operator("replica-a", &[]).await;
    api.kubectl_ok(&["apply", "-n", APPS_NS, "-f", "examples/cluster/"]);
    let app = eventually("inventory-sync Ready", Duration::from_secs(20), || {
        let app = api.get_json(&["inboundapp", "inventory-sync", "-n", APPS_NS])?;
        (ready_condition(&app)?["status"] == "True").then_some(app)
    })
    .await;
    let client_id = app["status"]["clientId"].as_str().unwrap().to_string();
    // A user's consent to the app, as the consent screen writes it into the shared store.
    let store = inbound::store::open(None, &cluster.data_dir().join("state.db")).await.unwrap();
    let now = inbound::clock::now();
    let consent = inbound::store::Consent {
        id: "consent-to-inventory".into(),
        client_id: client_id.clone(),
        subject: "user-1".into(),
        tenant: Some("acme".into()),
        granted_by: "user-1".into(),
        scopes: vec!["inventory:read".into()],
        created_at: now,
        expires_at: now + 3600,
    };
    store.save_consent(&consent).await.unwrap();
    // `kubectl get inboundapps` counts it at the next pass.
    let consents = |app: &Value| app["status"]["activeConsents"].as_u64();
    assert_eq!(consents(&app), Some(0), "{app}");
    eventually("the consent counted", Duration::from_secs(15), || {
        let app = api.get_json(&["inboundapp", "inventory-sync", "-n", APPS_NS])?;
        (consents(&app) == Some(1)).then_some(())
    })
    .await;
    let table = api.kubectl_ok(&["get", "inboundapp", "inventory-sync", "-n", APPS_NS]);
    assert!(table.lines().next().unwrap().contains("CONSENTS"), "{table}");

    api.kubectl_ok(&["create", "serviceaccount", "support", "-n", APPS_NS]);
    api.kubectl_ok(&["create", "serviceaccount", "nobody", "-n", APPS_NS]);
    api.kubectl_ok(&[
        "create",
        "rolebinding",
        "support-consents",
        "-n",
        APPS_NS,
        "--clusterrole",
        "inbound-consents-admin",
        &format!("--serviceaccount={APPS_NS}:support"),
    ]);
    let audience = format!("{}/admin", op.base);
    let token =
        |sa: &str| api.kubectl_ok(&["create", "token", sa, "-n", APPS_NS, "--audience", &audience]).trim().to_string();
    let (support, nobody) = (token("support"), token("nobody"));
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String, bearer: &str| {
        let request = http.request(method, format!("{}{path}", op.admin)).bearer_auth(bearer);
        async move { reply(request.send().await.unwrap()).await }
    };
    let query = format!("/admin/consents?client_id={client_id}");
    let forbidden = call(reqwest::Method::GET, query.clone(), &nobody).await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.json);
    assert!(
        forbidden.json["error_description"].as_str().unwrap().contains("consents.inbound.dev"),
        "{}",
        forbidden.json
    );
    // RBAC bindings reach the authorizer's cache asynchronously.
    let started = Instant::now();
    let listed = loop {
        let listed = call(reqwest::Method::GET, query.clone(), &support).await;
        if listed.status == 200 {
            break listed;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "support never allowed: {}", listed.json);
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(listed.json["consents"][0]["id"], "consent-to-inventory", "{}", listed.json);
    assert_eq!(listed.json["consents"][0]["app"], "Inventory Sync", "{}", listed.json);
    assert_eq!(listed.json["consents"][0]["tenant"], "acme");
    assert_eq!(call(reqwest::Method::DELETE, query.clone(), &nobody).await.status, 403);
    assert!(store.consent(&consent.id, now).await.unwrap().is_some(), "a refused call revokes nothing");
    let unfiltered = call(reqwest::Method::DELETE, "/admin/consents".into(), &support).await;
    assert_eq!(unfiltered.status, 400, "{}", unfiltered.json);

    let revoked = call(reqwest::Method::DELETE, format!("{query}&tenant=acme"), &support).await;
    assert_eq!(revoked.status, 200, "{}", revoked.json);
    assert_eq!(revoked.json["revoked"], json!(["consent-to-inventory"]));
    assert!(store.consent(&consent.id, now).await.unwrap().is_none(), "revoked in the store");
    assert_eq!(
        call(reqwest::Method::DELETE, "/admin/consents/consent-to-inventory".into(), &support).await.status,
        404
    );
    assert_eq!(
        ready_condition(&api.get_json(&["inboundapp", "inventory-sync", "-n", APPS_NS]).unwrap()).unwrap()["status"],
        "True",
        "the app stays"
    );
    eventually("the revocation counted", Duration::from_secs(15), || {
        let app = api.get_json(&["inboundapp", "inventory-sync", "-n", APPS_NS])?;
        (consents(&app) == Some(0)).then_some(())
    })
    .await;
    let record = op.audited("consent_revoked", |r| r["consent_id"] == "consent-to-inventory").await;
    assert_eq!(record["revoked_by"], "admin");
    // The operator's own series (README "Metrics"): it leads, and reconciles.
    let text = reqwest::get(format!("{}/metrics", op.base)).await.unwrap().text().await.unwrap();
    let scrape = crate::metrics::parse(&text);
    use crate::metrics::value;
    assert_eq!(value(&scrape, "inbound_leader", &[]), Some(1.0), "{text}");
    assert!(value(&scrape, "inbound_reconcile_runs_total", &[]).is_some_and(|n| n > 0.0), "{text}");
    for error in ["forbidden", "conflict", "rejected", "kubernetes_api", "kubernetes_unreachable", "store", "other"] {
        let failed = [("kind", "InboundApp"), ("error", error)];
        assert_eq!(value(&scrape, "inbound_reconcile_failures_total", &failed), Some(0.0), "{error}");
    }
    // Every watch stream is counted; here nothing made one fail.
    for kind in ["InboundApp", "Scope", "ClientGrant", "ConsentPolicy", "IdentityProvider", "Secret", "SigningKeys"] {
        let restarts = value(&scrape, "inbound_watch_restarts_total", &[("kind", kind)]);
        assert!(restarts.is_some_and(|n| n >= 0.0), "{kind}: {text}");
    }
    // The keys the leader created at this start, their successors due in the default 30 days.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    for alg in ["ES256", "RS256"] {
        let age = value(&scrape, "inbound_signing_key_age_seconds", &[("alg", alg)]).unwrap();
        assert!((0.0..600.0).contains(&age), "{alg} age {age}");
        let next = value(&scrape, "inbound_signing_key_next_rotation_timestamp_seconds", &[("alg", alg)]).unwrap();
        assert!(next > now + 29.0 * 86_400.0 && next <= now + 30.0 * 86_400.0, "{alg} next rotation {next}, now {now}");
    }
    // The operator's store is timed too (the reconciler counts consents on every pass).
    let counted = [("operation", "active_consent_counts")];
    assert!(value(&scrape, "inbound_store_query_duration_seconds_count", &counted).is_some_and(|n| n > 0.0));
    // What the alerts and the dashboard query that folder mode does not export.
    crate::metrics::assert_declared(&scrape, crate::metrics::OPERATOR_ONLY);
    assert_eq!(record["actor"], format!("system:serviceaccount:{APPS_NS}:support"));
}
