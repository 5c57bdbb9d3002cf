//! The generated CRDs and the example manifests against a real kube-apiserver + etcd.

use std::time::{Duration, Instant};

use crate::support::api_server::ApiServer;

#[test]
fn crds_install_and_examples_apply_to_a_real_api_server() {
    let api = ApiServer::start();
    api.install_crds("crds/inbound.dev.yaml");
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
    // And examples/tenants (tenant-level scopes, tenant-admin consent) as the schema has them.
    let applied = api.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "test",
        "-n",
        "default",
        "-f",
        "examples/tenants/apps.yaml",
        "-f",
        "examples/tenants/scopes.yaml",
        "-f",
        "examples/tenants/policy.yaml",
    ]);
    assert!(applied.contains("scope.inbound.dev/directory-read serverside-applied"), "{applied}");
    let scope = api.kubectl_ok(&["get", "iscope", "directory-read", "-n", "default", "-o", "jsonpath={.spec.level}"]);
    assert_eq!(scope, "tenant", "the field survives the API server's pruning");
    let roles = api.kubectl_ok(&[
        "get",
        "ipolicy",
        "organisations",
        "-n",
        "default",
        "-o",
        "jsonpath={.spec.consent.tenantAdminRoles}",
    ]);
    assert_eq!(roles, r#"["org-admin"]"#);

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
