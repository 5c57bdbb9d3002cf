//! The Helm chart charts/inbound, rendered and linted by Helm's own template engine
//! (scripts/helm.py, run with the venv scripts/helm-env.sh creates; `make test` does), and
//! its objects applied to a real kube-apiserver.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::api_server::ApiServer;

const CHART: &str = "charts/inbound";
const RELEASE: &str = "inbound";
const NAMESPACE: &str = "inbound-system";
const ISSUER: &str = "https://auth.example.com";

fn python() -> PathBuf {
    let venv = std::env::var_os("INBOUND_HELM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/inbound/helm-venv"));
    let python = venv.join("bin/python");
    assert!(python.exists(), "{} missing: run scripts/helm-env.sh (`make test` does)", python.display());
    python
}

/// Runs scripts/helm.py: (success, stdout, stderr).
fn helm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(python())
        .arg("scripts/helm.py")
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

/// The chart rendered with these values (and extra helm.py flags): the YAML stream, or the
/// engine's error.
pub(crate) fn render_with(values: &Value, extra: &[&str]) -> Result<String, String> {
    let values = values.to_string();
    let mut args = vec!["render", CHART, "--set-json", &values, "--name", RELEASE, "--namespace", NAMESPACE];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = helm(&args);
    if ok { Ok(stdout) } else { Err(stderr) }
}

#[track_caller]
fn render(values: Value) -> Vec<Value> {
    match render_with(&values, &[]) {
        Ok(stream) => objects(&stream),
        Err(e) => panic!("render with {values} failed:\n{e}"),
    }
}

#[track_caller]
fn render_err(values: Value) -> String {
    match render_with(&values, &[]) {
        Ok(stream) => panic!("render with {values} succeeded:\n{stream}"),
        Err(e) => e,
    }
}

fn objects(stream: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(stream)
        .map(|doc| Value::deserialize(doc).expect("the rendered stream is YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn kinds<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[track_caller]
fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = kinds(objects, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = kinds(objects, kind).into_iter().filter(|o| o["metadata"]["name"] == name).collect();
    assert_eq!(found.len(), 1, "expected one {kind} {name}, found {}", found.len());
    found[0]
}

fn env<'a>(deployment: &'a Value, name: &str) -> Option<&'a Value> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
}

#[track_caller]
fn env_value(deployment: &Value, name: &str) -> String {
    env(deployment, name).unwrap_or_else(|| panic!("env {name} missing"))["value"].as_str().unwrap().to_string()
}

fn base() -> Value {
    json!({ "issuer": ISSUER })
}

fn postgres(replicas: u32) -> Value {
    json!({
        "issuer": ISSUER,
        "replicaCount": replicas,
        "store": { "type": "postgres", "postgres": { "existingSecret": "inbound-postgres" } },
        "serviceMonitor": { "enabled": false },
    })
}

/// An authenticated relay, its password in a Secret.
fn smtp() -> Value {
    json!({
        "issuer": ISSUER,
        "smtp": {
            "host": "smtp.example.com",
            "port": 465,
            "tls": "tls",
            "from": "Example <noreply@example.com>",
            "username": "inbound",
            "passwordSecret": { "name": "inbound-smtp", "key": "smtp-password" },
        },
    })
}

/// The documents of crds/inbound.dev.yaml.
fn generated_crds() -> Vec<Value> {
    objects(&std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/inbound.dev.yaml")).unwrap())
}

#[test]
fn chart_passes_strict_lint() {
    // helm.py lints strictly (warnings fail) unless given --no-strict.
    let values = base().to_string();
    let (ok, stdout, stderr) = helm(&["lint", CHART, "--set-json", &values]);
    assert!(ok, "lint failed:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("[WARNING]") && !stdout.contains("[ERROR]"), "{stdout}");
    assert!(stdout.contains("1 chart(s) linted, 0 chart(s) failed"), "{stdout}");
    // Email through an authenticated relay.
    let values = smtp().to_string();
    let (ok, stdout, stderr) = helm(&["lint", CHART, "--set-json", &values]);
    assert!(ok && !stdout.contains("[WARNING]"), "lint with smtp failed:\n{stdout}\n{stderr}");
    // Postgres with several replicas, for the oldest Kubernetes the chart supports.
    let values = postgres(3).to_string();
    let (ok, stdout, stderr) = helm(&["lint", CHART, "--set-json", &values, "--kube-version", "v1.20.0"]);
    assert!(ok, "lint failed:\n{stdout}\n{stderr}");
}

#[test]
fn default_render_is_a_restricted_single_replica_operator() {
    let objects = render(base());
    for kind in ["Deployment", "Service", "ServiceAccount", "Role", "RoleBinding"] {
        one(&objects, kind);
    }
    let names = |kind: &str| -> Vec<String> {
        kinds(&objects, kind).iter().map(|o| o["metadata"]["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(
        names("ClusterRole"),
        ["inbound", "inbound-reviews", "inbound-view", "inbound-clients-admin", "inbound-consents-admin"]
    );
    // Reading the kinds is aggregated into `view`; writing them into nothing by default.
    let role = |name: &str| kinds(&objects, "ClusterRole").into_iter().find(|r| r["metadata"]["name"] == name).unwrap();
    assert_eq!(role("inbound-view")["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"], "true");
    for admin in ["inbound-clients-admin", "inbound-consents-admin"] {
        assert!(role(admin)["metadata"]["labels"].get("rbac.authorization.k8s.io/aggregate-to-admin").is_none());
    }
    // `helm test`: discovery through the Service, as the issuer.
    let test = one(&objects, "Pod");
    assert_eq!(test["metadata"]["annotations"]["helm.sh/hook"], "test");
    assert_eq!(test["spec"]["containers"][0]["command"], json!(["inbound", "discover"]));
    assert_eq!(
        test["spec"]["containers"][0]["args"],
        json!([format!("http://inbound.{NAMESPACE}.svc:80"), "--issuer", ISSUER])
    );
    assert_eq!(names("ClusterRoleBinding"), ["inbound", "inbound-reviews"]);
    assert_eq!(kinds(&objects, "CustomResourceDefinition").len(), 5);
    for kind in ["PodDisruptionBudget", "ServiceMonitor", "PersistentVolumeClaim"] {
        assert!(kinds(&objects, kind).is_empty(), "{kind} rendered by default");
    }
    for object in &objects {
        let namespaced = !["ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"]
            .contains(&object["kind"].as_str().unwrap());
        if namespaced {
            assert_eq!(object["metadata"]["namespace"], NAMESPACE, "{}", object["kind"]);
        }
        assert_eq!(object["metadata"]["labels"]["app.kubernetes.io/instance"], RELEASE);
        assert_eq!(object["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm");
    }

    let deployment = one(&objects, "Deployment");
    assert_eq!(deployment["metadata"]["name"], "inbound");
    assert_eq!(deployment["spec"]["replicas"], 1);
    // One SQLite writer at a time.
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "inbound");
    assert_eq!(
        pod["securityContext"],
        json!({
            "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
            "seccompProfile": { "type": "RuntimeDefault" },
        })
    );
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "ghcr.io/inbound-dev/inbound:0.1.0");
    assert_eq!(container["command"], json!(["inbound", "operator"]));
    assert_eq!(
        container["ports"],
        json!([
            { "name": "http", "containerPort": 8080, "protocol": "TCP" },
            { "name": "metrics", "containerPort": 9090, "protocol": "TCP" },
        ])
    );
    assert_eq!(env_value(deployment, "INBOUND_METRICS_LISTEN"), "0.0.0.0:9090");
    assert_eq!(
        container["securityContext"],
        json!({
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "capabilities": { "drop": ["ALL"] },
        })
    );
    assert_eq!(container["startupProbe"]["httpGet"], json!({ "path": "/healthz", "port": "http" }));
    assert_eq!(container["livenessProbe"]["httpGet"], json!({ "path": "/healthz", "port": "http" }));
    assert_eq!(env_value(deployment, "INBOUND_SHUTDOWN_DELAY"), "5s");
    assert!(pod.get("topologySpreadConstraints").is_none(), "one replica: nothing to spread");
    assert_eq!(container["readinessProbe"]["httpGet"], json!({ "path": "/readyz", "port": "http" }));
    assert!(container["resources"]["requests"]["memory"].is_string());

    assert_eq!(env_value(deployment, "INBOUND_LISTEN"), "0.0.0.0:8080");
    assert_eq!(env_value(deployment, "INBOUND_ISSUER"), ISSUER);
    assert_eq!(env_value(deployment, "INBOUND_WATCH_NAMESPACES"), "");
    assert_eq!(env_value(deployment, "INBOUND_TRUSTED_PROXIES"), "");
    assert_eq!(env_value(deployment, "INBOUND_DATA_DIR"), "/var/lib/inbound");
    assert_eq!(env_value(deployment, "INBOUND_SIGNING_KEYS_SECRET"), "inbound-signing-keys");
    assert_eq!(env_value(deployment, "INBOUND_LEASE_NAME"), "inbound-leader");
    assert_eq!(env_value(deployment, "INBOUND_KEY_ROTATION_INTERVAL"), "30d");
    assert_eq!(env_value(deployment, "INBOUND_LOG"), "info");
    for (name, field) in [("INBOUND_NAMESPACE", "metadata.namespace"), ("POD_NAME", "metadata.name")] {
        assert_eq!(env(deployment, name).unwrap()["valueFrom"]["fieldRef"]["fieldPath"], field, "{name}");
    }
    assert!(env(deployment, "INBOUND_STORE").is_none(), "sqlite needs no store URL");

    // A writable /tmp and data directory on a read-only root filesystem.
    let mounts = &container["volumeMounts"];
    assert_eq!(
        *mounts,
        json!([{ "name": "tmp", "mountPath": "/tmp" }, { "name": "data", "mountPath": "/var/lib/inbound" }])
    );
    assert_eq!(pod["volumes"], json!([{ "name": "tmp", "emptyDir": {} }, { "name": "data", "emptyDir": {} }]));

    let service = one(&objects, "Service");
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(
        service["spec"]["ports"],
        json!([
            { "name": "http", "port": 80, "targetPort": "http", "protocol": "TCP" },
            { "name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP" },
        ])
    );
    assert_eq!(service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"]);

    // Least privilege, exactly.
    let rules = &named(&objects, "ClusterRole", "inbound")["rules"];
    assert_eq!(
        *rules,
        json!([
            // Only apps get a (finalizer) patch; of the other kinds only status is written.
            { "apiGroups": ["inbound.dev"], "resources": ["inboundapps"], "verbs": ["get", "list", "watch", "patch"] },
            { "apiGroups": ["inbound.dev"], "resources": ["scopes", "clientgrants", "consentpolicies", "identityproviders"],
              "verbs": ["get", "list", "watch"] },
            { "apiGroups": ["inbound.dev"],
              "resources": ["inboundapps/status", "scopes/status", "clientgrants/status", "consentpolicies/status", "identityproviders/status"],
              "verbs": ["patch"] },
            { "apiGroups": ["inbound.dev"], "resources": ["inboundapps/finalizers"], "verbs": ["update"] },
            // Apply creates (the API server checks create for an apply that creates).
            { "apiGroups": [""], "resources": ["secrets"],
              "verbs": ["get", "list", "watch", "create", "patch", "delete"] },
            { "apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"] },
        ])
    );
    assert_eq!(
        named(&objects, "ClusterRole", "inbound-reviews")["rules"],
        json!([
            { "apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"] },
            { "apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"] },
        ])
    );
    assert_eq!(
        named(&objects, "ClusterRole", "inbound-clients-admin")["rules"],
        json!([
            { "apiGroups": ["inbound.dev"], "resources": ["registeredclients"], "verbs": ["list", "delete", "update"] },
            { "apiGroups": ["inbound.dev"], "resources": ["inboundapps"], "verbs": ["list"] },
        ])
    );
    assert_eq!(
        named(&objects, "ClusterRole", "inbound-consents-admin")["rules"],
        json!([{ "apiGroups": ["inbound.dev"], "resources": ["consents"], "verbs": ["list", "delete"] }])
    );
    let binding = named(&objects, "ClusterRoleBinding", "inbound");
    assert_eq!(binding["roleRef"]["name"], "inbound");
    assert_eq!(binding["subjects"], json!([{ "kind": "ServiceAccount", "name": "inbound", "namespace": NAMESPACE }]));
    let role = one(&objects, "Role");
    assert_eq!(
        role["rules"],
        json!([
            { "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"] },
            { "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["inbound-leader"],
              "verbs": ["get", "update", "patch"] },
            { "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["inbound-signing-keys"],
              "verbs": ["update"] },
        ])
    );
    assert_eq!(one(&objects, "RoleBinding")["roleRef"]["name"], role["metadata"]["name"]);

    // The CRDs are the generated ones, plus the chart's labels and the keep policy (and,
    // from Kubernetes 1.25, the immutability rules below).
    let objects = objects_with(&base(), &["--kube-version", "v1.24.0"]);
    let rendered: Vec<Value> = kinds(&objects, "CustomResourceDefinition").into_iter().cloned().collect();
    for crd in &rendered {
        assert_eq!(crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
    }
    let stripped: Vec<Value> = rendered
        .into_iter()
        .map(|mut crd| {
            let metadata = crd["metadata"].as_object_mut().unwrap();
            metadata.remove("labels");
            metadata.remove("annotations");
            crd
        })
        .collect();
    assert_eq!(stripped, generated_crds());
}

#[test]
fn several_replicas_need_postgres_from_a_secret() {
    let e = render_err(json!({ "issuer": ISSUER, "replicaCount": 2 }));
    assert!(e.contains("replicaCount 2 needs store.type=postgres"), "{e}");
    assert!(e.contains("SQLite store serves a single replica"), "{e}");

    let e = render_err(json!({ "issuer": ISSUER, "store": { "type": "postgres" } }));
    assert!(e.contains("store.type=postgres requires store.postgres.existingSecret"), "{e}");

    let objects = render(postgres(2));
    let deployment = one(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert!(deployment["spec"]["strategy"].is_null(), "postgres replicas roll");
    // Replicas on one node fail together: spread over nodes unless told otherwise.
    let spread = &deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(spread["whenUnsatisfiable"], "ScheduleAnyway");
    assert_eq!(spread["labelSelector"]["matchLabels"], deployment["spec"]["selector"]["matchLabels"]);
    let store = env(deployment, "INBOUND_STORE").expect("INBOUND_STORE");
    assert!(store.get("value").is_none(), "the URL is never a plain value: {store}");
    assert_eq!(store["valueFrom"]["secretKeyRef"], json!({ "name": "inbound-postgres", "key": "url" }));

    let pdb = one(&objects, "PodDisruptionBudget");
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], deployment["spec"]["selector"]["matchLabels"]);

    // Offline rendering knows only group versions (policy/v1beta1 among them), so the PDB API
    // follows the Kubernetes version, or the kinds a cluster (or --api-versions) reports.
    let old = objects_with(&postgres(2), &["--kube-version", "v1.20.0"]);
    assert_eq!(one(&old, "PodDisruptionBudget")["apiVersion"], "policy/v1beta1");
    let discovered = objects_with(&postgres(2), &["--api-versions", "policy/v1beta1/PodDisruptionBudget"]);
    assert_eq!(one(&discovered, "PodDisruptionBudget")["apiVersion"], "policy/v1beta1");
    let discovered =
        objects_with(&postgres(2), &["--kube-version", "v1.20.0", "--api-versions", "policy/v1/PodDisruptionBudget"]);
    assert_eq!(one(&discovered, "PodDisruptionBudget")["apiVersion"], "policy/v1");

    // A single replica gets a PDB only on request; minAvailable replaces maxUnavailable.
    let objects = render(json!({ "issuer": ISSUER, "podDisruptionBudget": { "enabled": true, "minAvailable": 1 } }));
    assert_eq!(one(&objects, "PodDisruptionBudget")["spec"], {
        let mut spec = json!({ "minAvailable": 1 });
        spec["selector"] = one(&objects, "Deployment")["spec"]["selector"].clone();
        spec
    });
}

#[track_caller]
fn objects_with(values: &Value, extra: &[&str]) -> Vec<Value> {
    objects(&render_with(values, extra).unwrap_or_else(|e| panic!("render failed:\n{e}")))
}

/// split.enabled: the Deployment the Service selects runs `--role server` as its own
/// read-only ServiceAccount; the controller Deployment, which nothing selects, keeps the
/// writing identity. Refused without PostgreSQL.
#[test]
fn split_separates_the_serving_pods_from_the_writer() {
    let mut values = postgres(3);
    values["split"] = json!({ "enabled": true, "controller": { "replicaCount": 2 } });
    let objects = render(values);
    let server = named(&objects, "Deployment", "inbound");
    let controller = named(&objects, "Deployment", "inbound-controller");
    assert_eq!(server["spec"]["replicas"], 3);
    assert_eq!(controller["spec"]["replicas"], 2);
    assert_eq!(env_value(server, "INBOUND_ROLE"), "server");
    assert_eq!(env_value(controller, "INBOUND_ROLE"), "controller");
    assert_eq!(server["spec"]["template"]["spec"]["serviceAccountName"], "inbound-server");
    assert_eq!(controller["spec"]["template"]["spec"]["serviceAccountName"], "inbound");
    let service = one(&objects, "Service");
    assert_eq!(service["spec"]["selector"], server["spec"]["selector"]["matchLabels"]);
    assert_eq!(service["spec"]["selector"]["inbound.dev/role"], "server");
    assert_eq!(controller["spec"]["selector"]["matchLabels"]["inbound.dev/role"], "controller");
    assert_eq!(
        named(&objects, "ClusterRole", "inbound-server")["rules"],
        json!([{ "apiGroups": ["inbound.dev"], "resources": ["inboundapps", "scopes", "clientgrants", "consentpolicies", "identityproviders"],
                 "verbs": ["get", "list", "watch"] }])
    );
    assert_eq!(
        named(&objects, "Role", "inbound-server-keys")["rules"],
        json!([{ "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["inbound-signing-keys"],
                 "verbs": ["get", "list", "watch"] }])
    );
    // Nothing else is bound to the serving identity.
    let bound_to_server: Vec<String> = objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRoleBinding" || o["kind"] == "RoleBinding")
        .filter(|o| o["subjects"].as_array().is_some_and(|s| s.iter().any(|s| s["name"] == "inbound-server")))
        .map(|o| o["roleRef"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bound_to_server, ["inbound-server", "inbound-server-tokenreviews", "inbound-server-keys"]);

    let e = render_err(json!({ "issuer": ISSUER, "split": { "enabled": true } }));
    assert!(e.contains("split.enabled needs store.type=postgres"), "{e}");
}

#[test]
fn options_toggles_and_refusals() {
    // crds.install=false renders no CRD; crds.keep=false drops the annotation.
    let objects = render(json!({ "issuer": ISSUER, "crds": { "install": false } }));
    assert!(kinds(&objects, "CustomResourceDefinition").is_empty());
    one(&objects, "Deployment");
    let objects = render(json!({ "issuer": ISSUER, "crds": { "keep": false } }));
    for crd in kinds(&objects, "CustomResourceDefinition") {
        assert!(crd["metadata"].get("annotations").is_none(), "{}", crd["metadata"]);
    }

    // The issuer is required, with an explanation.
    let e = render_err(json!({}));
    assert!(e.contains("issuer is required: set it to the public URL of the authorization server"), "{e}");

    // values.schema.json: types, enums, minimums, URL shape, no unknown keys.
    for (values, expected) in [
        (json!({ "issuer": ISSUER, "replicaCount": "two" }), "/replicaCount"),
        (json!({ "issuer": ISSUER, "replicaCount": 0 }), "/replicaCount"),
        (json!({ "issuer": "auth.example.com" }), "/issuer"),
        (json!({ "issuer": ISSUER, "store": { "type": "mysql" } }), "/store/type"),
        (json!({ "issuer": ISSUER, "replicas": 2 }), "replicas"),
        (json!({ "issuer": ISSUER, "service": { "port": 70000 } }), "/service/port"),
        (json!({ "issuer": ISSUER, "keys": { "rotationInterval": "monthly" } }), "/keys/rotationInterval"),
        // Durations exactly as the binary parses them: no milliseconds.
        (json!({ "issuer": ISSUER, "keys": { "rotationInterval": "500ms" } }), "/keys/rotationInterval"),
        (json!({ "issuer": ISSUER, "shutdownDelay": "500ms" }), "/shutdownDelay"),
        (json!({ "issuer": ISSUER, "image": { "digest": "latest" } }), "/image/digest"),
        (json!({ "issuer": ISSUER, "watchNamespaces": "team-a" }), "/watchNamespaces"),
    ] {
        let e = render_err(values.clone());
        assert!(e.contains("values don't meet the specifications of the schema"), "{values}: {e}");
        assert!(e.contains(expected), "{values}: {e}");
    }

    // Everything optional at once.
    let objects = render(json!({
        "issuer": ISSUER,
        "image": { "tag": "0.2.0", "pullPolicy": "Always" },
        "imagePullSecrets": [{ "name": "regcred" }],
        "watchNamespaces": ["team-a", "team-b"],
        "logLevel": "inbound=debug,info",
        "keys": { "rotationInterval": "12h" },
        "persistence": { "enabled": true, "size": "2Gi", "storageClass": "fast" },
        "serviceMonitor": { "enabled": true, "labels": { "release": "prometheus" } },
        "extraEnv": [{ "name": "INBOUND_ACCESS_TOKEN_LIFETIME", "value": "10m" }],
        "podAnnotations": { "example.com/team": "identity" },
        "nodeSelector": { "kubernetes.io/os": "linux" },
        "tolerations": [{ "key": "dedicated", "operator": "Exists" }],
        "topologySpreadConstraints": [
            { "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway" },
        ],
    }));
    let deployment = one(&objects, "Deployment");
    let pod = &deployment["spec"]["template"];
    assert_eq!(pod["spec"]["containers"][0]["image"], "ghcr.io/inbound-dev/inbound:0.2.0");
    assert_eq!(pod["spec"]["imagePullSecrets"], json!([{ "name": "regcred" }]));
    assert_eq!(pod["metadata"]["annotations"]["example.com/team"], "identity");
    assert_eq!(pod["spec"]["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["spec"]["tolerations"][0]["key"], "dedicated");
    assert_eq!(
        pod["spec"]["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(env_value(deployment, "INBOUND_WATCH_NAMESPACES"), "team-a,team-b");
    assert_eq!(env_value(deployment, "INBOUND_LOG"), "inbound=debug,info");
    assert_eq!(env_value(deployment, "INBOUND_KEY_ROTATION_INTERVAL"), "12h");
    assert_eq!(env_value(deployment, "INBOUND_ACCESS_TOKEN_LIFETIME"), "10m");
    let claim = one(&objects, "PersistentVolumeClaim");
    assert_eq!(claim["spec"]["storageClassName"], "fast");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "2Gi");
    assert_eq!(
        pod["spec"]["volumes"][1],
        json!({ "name": "data", "persistentVolumeClaim": { "claimName": "inbound-data" } })
    );
    let monitor = one(&objects, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    // Watching namespaces binds the ClusterRole there (and in the release namespace, which
    // holds the signing keys) instead of cluster-wide.
    let cluster_wide: Vec<&str> =
        kinds(&objects, "ClusterRoleBinding").iter().map(|b| b["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(cluster_wide, ["inbound-reviews"], "only the cluster-scoped reviews are bound cluster-wide");
    let mut bound: Vec<&str> = kinds(&objects, "RoleBinding")
        .into_iter()
        .filter(|b| b["roleRef"]["kind"] == "ClusterRole")
        .map(|b| b["metadata"]["namespace"].as_str().unwrap())
        .collect();
    bound.sort();
    assert_eq!(bound, ["inbound-system", "team-a", "team-b"]);

    // Exposure, pinning and subchart use.
    let objects = render(json!({
        "issuer": "https://auth.example.com/tenant-a",
        "global": { "imageRegistry": "registry.example.com" },
        "sessionLifetime": "1h30m",
        "image": { "digest": format!("sha256:{}", "a".repeat(64)) },
        "extraArgs": ["--access-token-lifetime", "10m"],
        "ingress": { "enabled": true, "className": "nginx", "tlsSecretName": "auth-tls" },
        "httpRoute": { "enabled": true, "parentRefs": [{ "name": "public", "namespace": "gateways" }] },
        "networkPolicy": { "enabled": true, "from": [{ "namespaceSelector": { "matchLabels": { "name": "ingress" } } }] },
        "rbac": { "aggregateToEdit": true },
    }));
    let container = &one(&objects, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], format!("ghcr.io/inbound-dev/inbound@sha256:{}", "a".repeat(64)));
    assert_eq!(container["args"], json!(["--access-token-lifetime", "10m"]));
    let ingress = one(&objects, "Ingress");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["spec"]["rules"][0]["host"], "auth.example.com");
    assert_eq!(ingress["spec"]["rules"][0]["http"]["paths"][0]["path"], "/tenant-a");
    assert_eq!(ingress["spec"]["tls"][0], json!({ "hosts": ["auth.example.com"], "secretName": "auth-tls" }));
    let route = one(&objects, "HTTPRoute");
    assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(route["spec"]["hostnames"], json!(["auth.example.com"]));
    assert_eq!(route["spec"]["rules"][0]["matches"][0]["path"]["value"], "/tenant-a");
    assert_eq!(route["spec"]["rules"][0]["backendRefs"][0], json!({ "name": "inbound", "port": 80 }));
    let policy = one(&objects, "NetworkPolicy");
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], "http");
    assert_eq!(policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["name"], "ingress");
    let edit = kinds(&objects, "ClusterRole").into_iter().find(|r| r["metadata"]["name"] == "inbound-edit").unwrap();
    assert_eq!(edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"], "true");
    let e = render_err(json!({ "issuer": ISSUER, "httpRoute": { "enabled": true } }));
    assert!(e.contains("httpRoute.enabled needs httpRoute.parentRefs"), "{e}");

    // Immutable fields: CEL rules where the API server has them (1.25+), none before (1.20
    // rejects CRDs that carry them; the controller refuses the change there).
    let rules = |version: &str| {
        let objects = objects_with(&base(), &["--kube-version", version]);
        let app = kinds(&objects, "CustomResourceDefinition")
            .into_iter()
            .find(|c| c["spec"]["names"]["kind"] == "InboundApp")
            .unwrap()
            .clone();
        app["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
            .clone()
    };
    assert!(rules("v1.20.0").is_null());
    let cel = rules("v1.29.0");
    let messages: Vec<&str> = cel.as_array().unwrap().iter().map(|r| r["message"].as_str().unwrap()).collect();
    assert_eq!(messages, ["clientType is immutable: create a new app instead", "clientId is immutable once set"]);

    // rbac.create=false leaves RBAC to the cluster admin.
    let objects = render(json!({ "issuer": ISSUER, "rbac": { "create": false } }));
    for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        assert!(kinds(&objects, kind).is_empty(), "{kind}");
    }
}

#[test]
fn smtp_values_become_the_relay_variables_and_a_mounted_password() {
    let objects = render(smtp());
    let deployment = one(&objects, "Deployment");
    for (name, value) in [
        ("INBOUND_SMTP_HOST", "smtp.example.com"),
        ("INBOUND_SMTP_PORT", "465"),
        ("INBOUND_SMTP_TLS", "tls"),
        ("INBOUND_SMTP_FROM", "Example <noreply@example.com>"),
        ("INBOUND_SMTP_USERNAME", "inbound"),
        ("INBOUND_SMTP_PASSWORD_FILE", "/etc/inbound/smtp/password"),
    ] {
        assert_eq!(env_value(deployment, name), value, "{name}");
    }
    let pod = &deployment["spec"]["template"]["spec"];
    // The password is a file from the Secret, never a variable.
    let variables = pod["containers"][0]["env"].to_string();
    assert!(!variables.contains("inbound-smtp"), "{variables}");
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "smtp-password").expect("a volume");
    assert_eq!(
        volume["secret"],
        json!({ "secretName": "inbound-smtp", "defaultMode": 0o440, "items": [{ "key": "smtp-password", "path": "password" }] })
    );
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    let mount = mounts.iter().find(|m| m["name"] == "smtp-password").expect("a mount");
    assert_eq!(mount["mountPath"], "/etc/inbound/smtp");
    assert_eq!(mount["readOnly"], true);

    // Without authentication: no password file, no volume.
    let objects =
        render(json!({ "issuer": ISSUER, "smtp": { "host": "smtp.example.com", "from": "noreply@example.com" } }));
    let deployment = one(&objects, "Deployment");
    assert_eq!(env_value(deployment, "INBOUND_SMTP_PORT"), "587");
    assert_eq!(env_value(deployment, "INBOUND_SMTP_TLS"), "starttls");
    assert!(
        env(deployment, "INBOUND_SMTP_USERNAME").is_none() && env(deployment, "INBOUND_SMTP_PASSWORD_FILE").is_none()
    );
    assert!(!deployment.to_string().contains("smtp-password"));

    // Without a host: no email, nothing about it in the Pod.
    let deployment = render(base()).into_iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert!(!deployment.to_string().contains("SMTP") && !deployment.to_string().contains("smtp"), "{deployment}");

    // Half a configuration is refused with the reason; the schema refuses unknown TLS modes.
    for (smtp, expected) in [
        (json!({ "host": "smtp.example.com" }), "smtp.host needs smtp.from"),
        (json!({ "from": "noreply@example.com" }), "need smtp.host"),
        (
            json!({ "host": "h", "from": "a@example.com", "username": "u" }),
            "smtp.username needs smtp.passwordSecret.name",
        ),
        (
            json!({ "host": "h", "from": "a@example.com", "passwordSecret": { "name": "s" } }),
            "smtp.passwordSecret needs smtp.username",
        ),
        (json!({ "host": "h", "from": "a@example.com", "tls": "ssl" }), "/smtp/tls"),
        (json!({ "host": "h", "from": "a@example.com", "port": 0 }), "/smtp/port"),
        (json!({ "host": "h", "from": "a@example.com", "password": "hunter2" }), "password"),
    ] {
        let e = render_err(json!({ "issuer": ISSUER, "smtp": smtp }));
        assert!(e.contains(expected), "{smtp}: {e}");
    }
}

#[test]
fn bundled_crds_are_the_generated_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated = std::fs::read(root.join("crds/inbound.dev.yaml")).unwrap();
    let bundled = std::fs::read(root.join("charts/inbound/files/crds.yaml")).unwrap();
    assert!(
        generated == bundled,
        "charts/inbound/files/crds.yaml differs: cp crds/inbound.dev.yaml charts/inbound/files/crds.yaml"
    );
}

#[test]
fn rendered_chart_applies_to_a_real_api_server() {
    let api = ApiServer::start();
    // Render for the server's version, as `helm install` would.
    let version: Value = serde_json::from_str(&api.kubectl_ok(&["version", "-o", "json"])).unwrap();
    let server_version = version["serverVersion"]["gitVersion"].as_str().unwrap().to_string();
    let stream = render_with(&postgres(2), &["--kube-version", &server_version]).unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &stream).unwrap();

    api.kubectl_ok(&["create", "namespace", NAMESPACE]);
    let applied = api.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "helm-test",
        "-f",
        file.path().to_str().unwrap(),
    ]);
    for object in [
        "customresourcedefinition.apiextensions.k8s.io/inboundapps.inbound.dev",
        "deployment.apps/inbound",
        "service/inbound",
        "serviceaccount/inbound",
        "clusterrole.rbac.authorization.k8s.io/inbound",
        "clusterrolebinding.rbac.authorization.k8s.io/inbound",
        "role.rbac.authorization.k8s.io/inbound-leader-election",
        "rolebinding.rbac.authorization.k8s.io/inbound-leader-election",
        "poddisruptionbudget.policy/inbound",
    ] {
        assert!(applied.contains(&format!("{object} serverside-applied")), "{object} missing:\n{applied}");
    }
    api.wait_for_crds();
    let keep = api.kubectl_ok(&[
        "get",
        "crd",
        "inboundapps.inbound.dev",
        "-o",
        "jsonpath={.metadata.annotations.helm\\.sh/resource-policy}",
    ]);
    assert_eq!(keep, "keep");

    let n = ["-n", NAMESPACE];
    let get = |args: &[&str]| api.kubectl_ok(&[&["get"], args, &n[..]].concat());
    let deployment: Value = serde_json::from_str(&get(&["deployment", "inbound", "-o", "json"])).unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(env(&deployment, "INBOUND_STORE").unwrap()["valueFrom"]["secretKeyRef"]["name"], "inbound-postgres");
    get(&["service", "inbound"]);
    get(&["serviceaccount", "inbound"]);
    get(&["poddisruptionbudget", "inbound"]);
    api.kubectl_ok(&["get", "clusterrole", "inbound"]);
    api.kubectl_ok(&["get", "clusterrolebinding", "inbound"]);

    // The RBAC authorizer grants the operator's ServiceAccount exactly what it needs.
    let subject = format!("system:serviceaccount:{NAMESPACE}:inbound");
    let can = |args: &[&str]| {
        let (_, stdout, stderr) = api.kubectl(&[&["auth", "can-i", "--as", &subject], args].concat());
        match stdout.trim() {
            "yes" => true,
            "no" => false,
            other => panic!("kubectl auth can-i {args:?}: {other} {stderr}"),
        }
    };
    // RoleBindings take effect asynchronously in the authorizer's cache.
    let started = Instant::now();
    while !can(&["watch", "inboundapps.inbound.dev", "-A"]) {
        assert!(started.elapsed() < Duration::from_secs(30), "the ClusterRoleBinding never took effect");
        std::thread::sleep(Duration::from_millis(250));
    }
    for (args, expected) in [
        (&["patch", "inboundapps.inbound.dev", "-n", "team-a"][..], true),
        (&["patch", "inboundapps.inbound.dev", "--subresource", "status", "-n", "team-a"], true),
        (&["update", "inboundapps.inbound.dev", "--subresource", "finalizers", "-n", "team-a"], true),
        (&["delete", "secrets", "-n", "team-a"], true),
        (&["create", "events.events.k8s.io", "-n", "team-a"], true),
        (&["patch", "events.events.k8s.io", "-n", "team-a"], true),
        (&["create", "secrets", "-n", "team-a"], true),
        // Core events are not what kube-runtime's recorder writes.
        (&["create", "events", "-n", "team-a"], false),
        (&["get", "inboundapps.inbound.dev", "--subresource", "status", "-n", "team-a"], false),
        (&["create", "leases.coordination.k8s.io", "-n", NAMESPACE], true),
        (&["update", "leases.coordination.k8s.io/inbound-leader", "-n", NAMESPACE], true),
        (&["create", "tokenreviews.authentication.k8s.io"], true),
        (&["create", "subjectaccessreviews.authorization.k8s.io"], true),
        // Not granted.
        (&["create", "inboundapps.inbound.dev", "-n", "team-a"], false),
        (&["update", "scopes.inbound.dev", "-n", "team-a"], false),
        (&["update", "inboundapps.inbound.dev", "--subresource", "status", "-n", "team-a"], false),
        (&["update", "secrets", "-n", "team-a"], false),
        (&["delete", "inboundapps.inbound.dev", "-n", "team-a"], false),
        (&["delete", "events", "-n", "team-a"], false),
        (&["get", "configmaps", "-n", "team-a"], false),
        (&["create", "pods", "-n", NAMESPACE], false),
        (&["update", "leases.coordination.k8s.io/someone-else", "-n", NAMESPACE], false),
        (&["create", "leases.coordination.k8s.io", "-n", "team-a"], false),
    ] {
        assert_eq!(can(args), expected, "can-i {args:?}");
    }
}

/// The chart and the binary agree: every variable the Deployment sets is one `inbound
/// operator` reads (or INBOUND_LOG), and the rendered values parse (the process gets as far
/// as looking for a cluster).
#[test]
fn deployment_environment_is_what_the_binary_reads() {
    let mut values = smtp();
    values["trustedProxies"] = json!(["10.0.0.0/8"]);
    values["logLevel"] = json!("debug");
    let objects = render(values);
    let deployment = one(&objects, "Deployment");
    // The mounted Secret, stood in for by a file here (the mail settings are checked, and the
    // password read, before the process looks for a cluster).
    let secrets = tempfile::tempdir().unwrap();
    let password = secrets.path().join("password");
    std::fs::write(&password, "not-a-real-password\n").unwrap();
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_inbound")).args(["operator", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_inbound"));
    command.arg("operator").env_clear().env("KUBECONFIG", "/nonexistent/kubeconfig").env("HOME", "/nonexistent");
    for var in deployment["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap() {
        let name = var["name"].as_str().unwrap();
        assert!(
            name == "INBOUND_LOG" || help.contains(&format!("[env: {name}=")),
            "the chart sets {name}, which `inbound operator` does not read"
        );
        // Values from the downward API are stand-ins here.
        let mut value = var["value"].as_str().map(str::to_string).unwrap_or_else(|| "from-field".to_string());
        if name == "INBOUND_SMTP_PASSWORD_FILE" {
            value = password.display().to_string();
        }
        command.env(name, value);
    }
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot configure the Kubernetes client"), "arguments rejected:\n{stderr}");
}
