//! What one object, or an unreachable API server, must never do to the fleet: keep replicas
//! from starting. Against a real kube-apiserver + etcd and the `inbound operator` binary
//! with the chart's RBAC.

use std::time::{Duration, Instant};

use oauth2::reqwest;
use serde_json::Value;

use crate::operator::{APPS_NS, Cluster, Operator, install_chart_identity, secret};
use crate::support::api_server::{ApiServer, eventually, ready_condition};
use crate::support::server::reply;

/// The condition of `type_` in an object's status.
fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

/// Objects the API server admitted before the CRDs had their bounds (an upgrade from an
/// older release, or a CRD edited by hand): one ConsentPolicy with a `u32` of 5000000000, one
/// InboundApp with a client type that does not exist. A typed list of either kind fails as a
/// whole; the operator must start anyway, serve everything else, and report these two on
/// their own; fixed, an object is served like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_object_the_types_cannot_read_never_stops_the_fleet() {
    let api = ApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    api.install_crds("crds/inbound.dev.yaml");

    // The bounds hold for new objects.
    let poison_policy = "apiVersion: inbound.dev/v1alpha1\nkind: ConsentPolicy\nmetadata: {name: poison}\nspec:\n  registration:\n    limits: {maxClients: 5000000000}\n";
    let poison_app = "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {name: poison}\nspec: {displayName: Poison, clientType: sideways, grantTypes: [client_credentials]}\n";
    for (manifest, refusal) in [
        (poison_policy, "spec.registration.limits.maxClients: Invalid value: 5000000000"),
        (poison_app, "spec.clientType: Unsupported value: \"sideways\""),
    ] {
        let file = dir.path().join("object.yaml");
        std::fs::write(&file, manifest).unwrap();
        let (ok, _, stderr) = api.kubectl(&["apply", "-n", APPS_NS, "-f", file.to_str().unwrap()]);
        assert!(!ok && stderr.contains(refusal), "admitted, or refused for another reason:\n{stderr}");
    }

    // The same objects, admitted under schemas without those bounds; then the real CRDs again.
    for crd in ["consentpolicies.inbound.dev", "inboundapps.inbound.dev"] {
        let open = r#"[{"op": "replace", "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec", "value": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}]"#;
        api.kubectl_ok(&["patch", "crd", crd, "--type", "json", "-p", open]);
    }
    eventually("the open schemas admit the poison", Duration::from_secs(20), || {
        let file = dir.path().join("poison.yaml");
        std::fs::write(&file, format!("{poison_policy}---\n{poison_app}")).unwrap();
        api.kubectl(&["apply", "-n", APPS_NS, "-f", file.to_str().unwrap()]).0.then_some(())
    })
    .await;
    api.kubectl_ok(&["replace", "-f", "crds/inbound.dev.yaml"]);
    api.wait_for_crds();
    api.kubectl_ok(&["apply", "-n", APPS_NS, "-f", "examples/cluster/"]);

    // A replica starting now is ready well before any patience for unlistable kinds runs out.
    let kubeconfig = install_chart_identity(&api, dir.path());
    let started = Instant::now();
    let mut op = Operator::start(&kubeconfig, &dir.path().join("data"), "replica-a", dir.path());
    op.wait_ready().await;
    assert!(started.elapsed() < Duration::from_secs(30), "ready only after {:?}", started.elapsed());

    // Everything else is served.
    eventually("inventory-sync Ready", Duration::from_secs(20), || {
        let app = api.get_json(&["inboundapp", "inventory-sync", "-n", APPS_NS])?;
        (ready_condition(&app)?["status"] == "True").then_some(())
    })
    .await;
    let (_, creds) =
        eventually("the credentials Secret", Duration::from_secs(10), || secret(&api, "inventory-sync-credentials"))
            .await;
    let token = eventually_token(&op, &creds).await;
    assert_eq!(token.status, 200, "{}", token.json);

    // The two are reported on their own, naming the field: a Warning event (once), and the
    // log. Their status cannot be written here: an API server without CRD validation
    // ratcheting (before 1.28; this one is 1.20) validates the whole stored object on a
    // status write, and these no longer pass their schema. With ratcheting the same pass
    // writes Ready=False, Stalled=True, reason InvalidSpec.
    for (kind, field) in [("ConsentPolicy", "spec.registration.limits.maxClients"), ("InboundApp", "spec.clientType")] {
        let event = eventually(&format!("{kind}/poison reported"), Duration::from_secs(20), || {
            let events = api.get_json(&[
                "events",
                "-n",
                APPS_NS,
                "--field-selector",
                &format!("involvedObject.name=poison,involvedObject.kind={kind}"),
            ])?;
            events["items"].as_array()?.iter().find(|e| e["reason"] == "InvalidSpec").cloned()
        })
        .await;
        let note = event["message"].as_str().or(event["note"].as_str()).unwrap_or_default();
        assert!(note.starts_with(&format!("cannot be read: {field}: ")), "{event}");
        assert_eq!(event["type"], "Warning");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = api.get_json(&["events", "-n", APPS_NS, "--field-selector", "involvedObject.name=poison"]).unwrap();
    for item in events["items"].as_array().unwrap() {
        assert!(
            item["count"].as_i64().unwrap_or(1) <= 1 && item["series"].is_null(),
            "reported more than once: {item}"
        );
    }
    assert!(op.log().contains("cannot be read, nor its status written"), "{}", op.log());
    // The poison app has no client: nothing was issued for it.
    assert!(api.get_json(&["secret", "poison-credentials", "-n", APPS_NS]).is_none());
    // Fixed by its author, the policy is served like any other.
    api.kubectl_ok(&[
        "patch",
        "consentpolicy",
        "poison",
        "-n",
        APPS_NS,
        "--type",
        "merge",
        "-p",
        r#"{"spec": {"registration": {"limits": {"maxClients": 50}}}}"#,
    ]);
    eventually("the fixed policy is Ready", Duration::from_secs(20), || {
        let object = api.get_json(&["consentpolicy", "poison", "-n", APPS_NS])?;
        let stalled = condition(&object, "Stalled")?;
        (ready_condition(&object)?["status"] == "True" && stalled["status"] == "False").then_some(())
    })
    .await;
}

/// client_credentials until the catalog serves the app (its secret reaches the store first).
async fn eventually_token(op: &Operator, creds: &(String, String)) -> crate::support::server::Reply {
    let started = Instant::now();
    loop {
        let reply = op.token(creds).await;
        if reply.status == 200 || started.elapsed() > Duration::from_secs(15) {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A replica restarted while the API server is unreachable answers its probes at once
/// (alive, not ready), and serves the signing keys it last saw from its data directory, so
/// resource servers keep verifying tokens; it never exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_without_the_api_server_serves_its_last_keys() {
    let cluster = Cluster::start();
    let dir = &cluster.dir;
    let data_dir = cluster.data_dir();
    let first = cluster.operator("replica-a", &[]).await;
    let published = first.jwks().await;
    drop(first);
    let kept = data_dir.join("signing-keys.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the kept keys are private");
    }

    // The same replica, its API server gone (a port nothing listens on).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let unreachable = dir.path().join("kubeconfig-unreachable");
    std::fs::write(
        &unreachable,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster: {{server: \"https://{dead}\", insecure-skip-tls-verify: true}}\nusers:\n- name: inbound\n  user: {{token: \"x\"}}\ncontexts:\n- name: gone\n  context: {{cluster: gone, user: inbound, namespace: inbound-system}}\ncurrent-context: gone\n"
        ),
    )
    .unwrap();
    let restarted = Operator::start(&unreachable, &data_dir, "replica-a", dir.path());
    let http = reqwest::Client::new();
    let alive = eventually_async(&http, &format!("{}/healthz", restarted.base), Duration::from_secs(5)).await;
    assert_eq!(alive, 200, "{}", restarted.log());
    let ready = http.get(format!("{}/readyz", restarted.base)).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready without its configuration");
    let starting = reply(http.post(format!("{}/token", restarted.base)).send().await.unwrap()).await;
    starting.assert_error(503, "temporarily_unavailable");

    // After the patience for the Secret (4 lease durations), the kept keys are served.
    let started = Instant::now();
    let served = loop {
        let jwks = reply(http.get(format!("{}/jwks", restarted.base)).send().await.unwrap()).await;
        if jwks.status == 200 {
            break jwks.json;
        }
        assert!(started.elapsed() < Duration::from_secs(40), "no keys served:\n{}", restarted.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(served, published, "the keys it last saw");
    assert!(restarted.log().contains("serving the last keys this replica saw"), "{}", restarted.log());
    let ready = http.get(format!("{}/readyz", restarted.base)).send().await.unwrap();
    assert_eq!(ready.status(), 503, "still not ready: no configuration was listed");
    // Its watches fail and restart, and say so.
    let started = Instant::now();
    loop {
        let text = http.get(format!("{}/metrics", restarted.base)).send().await.unwrap().text().await.unwrap();
        let scrape = crate::metrics::parse(&text);
        let restarts = |kind| crate::metrics::value(&scrape, "inbound_watch_restarts_total", &[("kind", kind)]);
        if ["InboundApp", "SigningKeys"].iter().all(|kind| restarts(kind).is_some_and(|n| n > 0.0)) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no watch restart counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The status of GET `url` once it answers at all.
async fn eventually_async(http: &reqwest::Client, url: &str, timeout: Duration) -> u16 {
    let started = Instant::now();
    loop {
        if let Ok(response) = http.get(url).send().await {
            return response.status().as_u16();
        }
        assert!(started.elapsed() < timeout, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `spec.clientId` in a cluster: the first app to claim an id holds it; another namespace
/// naming the same id is refused; the field cannot change; and a backup restored as
/// Velero restores it (new UIDs, the Secret owned by a UID that no longer exists) keeps the
/// client id and the very secret partners hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_client_id_survives_delete_restore_and_is_never_taken() {
    let cluster = Cluster::start();
    let (api, dir) = (&cluster.api, &cluster.dir);
    let op = cluster.operator("replica-a", &[]).await;
    api.kubectl_ok(&["apply", "-n", APPS_NS, "-f", "examples/cluster/"]);
    let app = |ns: &str, id: &str| {
        format!(
            "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {{name: partner, namespace: {ns}}}\nspec: {{clientId: {id}, displayName: Partner, grantTypes: [client_credentials], allowedResources: ['https://inventory.example.com']}}\n"
        )
    };
    let grant = "apiVersion: inbound.dev/v1alpha1\nkind: ClientGrant\nmetadata: {name: partner}\nspec:\n  subject: {kind: InboundApp, name: partner}\n  scopes: [inventory:read]\n  resources: ['https://inventory.example.com']\n";
    api.apply(APPS_NS, &format!("{}---\n{grant}", app(APPS_NS, "acme-partner")));
    let ready = |ns: &'static str| {
        let api = &api;
        move || {
            let object = api.get_json(&["inboundapp", "partner", "-n", ns])?;
            (ready_condition(&object)?["status"] == "True").then_some(object)
        }
    };
    let object = eventually("partner Ready", Duration::from_secs(20), ready(APPS_NS)).await;
    assert_eq!(object["status"]["clientId"], "acme-partner");
    let (secret_before, creds) =
        eventually("partner credentials", Duration::from_secs(10), || secret(api, "partner-credentials")).await;
    assert_eq!(creds.0, "acme-partner");
    let token = eventually_token(&op, &creds).await;
    assert_eq!(token.status, 200, "{}", token.json);

    // Another namespace cannot take it by naming it.
    api.kubectl_ok(&["create", "namespace", "team-b"]);
    api.apply("team-b", &app("team-b", "acme-partner"));
    let taken = eventually("team-b's partner is refused", Duration::from_secs(20), || {
        let object = api.get_json(&["inboundapp", "partner", "-n", "team-b"])?;
        (ready_condition(&object)?["status"] == "False").then_some(object)
    })
    .await;
    let ready_b = ready_condition(&taken).unwrap();
    assert_eq!(ready_b["reason"], "ClientIdTaken", "{ready_b}");
    assert!(ready_b["message"].as_str().unwrap().contains("held by InboundApp default/partner"), "{ready_b}");
    assert_eq!(condition(&taken, "Stalled").unwrap()["status"], "True");
    assert!(taken["status"]["clientId"].is_null(), "no client id shown for a refused claim");
    // Argo CD reads the real output right.
    let (health, message) = crate::argocd::health_of(&taken);
    assert_eq!(health, "Degraded", "{message}");
    assert!(message.starts_with("ClientIdTaken: client id acme-partner is held by"), "{message}");
    assert_eq!(crate::argocd::health_of(&object).0, "Healthy");
    // So does Flux, with the expressions of config/flux.
    assert_eq!(crate::flux::health_of(&taken), "Failed");
    assert_eq!(crate::flux::health_of(&object), "Current");
    assert!(api.get_json(&["secret", "partner-credentials", "-n", "team-b"]).is_none(), "nothing issued");
    assert_eq!(op.token(&creds).await.status, 200, "the holder is untouched");
    // Deleting the refused app takes nothing of the holder's with it: a consent a user gave
    // the holder (written to the operator's store as the consent screen would) stays.
    let store = inbound::store::open(None, &cluster.data_dir().join("state.db")).await.unwrap();
    let now = inbound::clock::now();
    let consent = inbound::store::Consent {
        id: "consent-of-the-holder".into(),
        client_id: "acme-partner".into(),
        subject: "user-1".into(),
        tenant: None,
        granted_by: "user-1".into(),
        scopes: vec!["inventory:read".into()],
        created_at: now,
        expires_at: now + 3600,
    };
    store.save_consent(&consent).await.unwrap();
    api.kubectl_ok(&["delete", "inboundapp", "partner", "-n", "team-b", "--timeout", "30s"]);
    assert!(store.consent(&consent.id, now).await.unwrap().is_some(), "the holder's consent was revoked");
    // The trail says what was revoked, under which client id: the pretender's own UID.
    let deleted = op.audited("app_deleted", |r| r["app"] == "team-b/partner").await;
    assert_ne!(deleted["client_id"], "acme-partner", "{deleted}");
    assert_eq!(deleted["consents_revoked"], 0, "{deleted}");
    let issued = op.audited("client_secret_issued", |r| r["client_id"] == "acme-partner").await;
    assert_eq!((issued["app"].as_str(), issued["reason"].as_str()), (Some("default/partner"), Some("first")));
    assert_eq!(op.token(&creds).await.status, 200, "the holder's secret outlives a deleted pretender");

    // The field is immutable.
    api.apply(APPS_NS, &app(APPS_NS, "acme-renamed"));
    let changed = eventually("the rename is refused", Duration::from_secs(20), || {
        let object = api.get_json(&["inboundapp", "partner", "-n", APPS_NS])?;
        let ready = ready_condition(&object)?;
        (ready["reason"] == "InvalidSpec").then(|| ready.clone())
    })
    .await;
    assert!(
        changed["message"].as_str().unwrap().contains("immutable: this app holds client id acme-partner"),
        "{changed}"
    );
    api.apply(APPS_NS, &app(APPS_NS, "acme-partner"));
    eventually("restored value Ready", Duration::from_secs(20), ready(APPS_NS)).await;
    // So is the client type (this API server predates CEL rules: the controller refuses).
    api.apply(
        APPS_NS,
        &app(APPS_NS, "acme-partner").replace("displayName: Partner,", "displayName: Partner, clientType: public,"),
    );
    let flipped = eventually("the flip to public is refused", Duration::from_secs(20), || {
        let object = api.get_json(&["inboundapp", "partner", "-n", APPS_NS])?;
        let ready = ready_condition(&object)?;
        (ready["reason"] == "InvalidSpec").then(|| object.clone())
    })
    .await;
    let message = ready_condition(&flipped).unwrap()["message"].as_str().unwrap().to_string();
    assert_eq!(crate::argocd::health_of(&flipped).0, "Degraded");
    assert_eq!(crate::flux::health_of(&flipped), "Failed");
    assert!(message.starts_with("spec.clientType: is immutable: this app is confidential"), "{message}");
    assert_eq!(flipped["status"]["secretName"], "partner-credentials", "the record of what it was is kept");
    assert_eq!(op.token(&creds).await.status, 401, "not served while refused");
    api.apply(APPS_NS, &app(APPS_NS, "acme-partner"));
    eventually("confidential again, Ready", Duration::from_secs(20), ready(APPS_NS)).await;

    // Backup (the Secret as Velero keeps it), then the app deleted while paused: its grants
    // stay in the store.
    api.kubectl_ok(&["annotate", "inboundapp", "partner", "-n", APPS_NS, "inbound.dev/paused=true"]);
    api.kubectl_ok(&["delete", "inboundapp", "partner", "-n", APPS_NS, "--timeout", "30s"]);
    // No garbage collector runs beside this API server: delete the Secret as it would.
    api.kubectl_ok(&["delete", "secret", "partner-credentials", "-n", APPS_NS]);

    // Restore: the Secret first (owner reference to the UID that is gone), then the app,
    // which asks to adopt it.
    let mut restored = secret_before.clone();
    for field in ["uid", "resourceVersion", "creationTimestamp", "managedFields"] {
        restored["metadata"].as_object_mut().unwrap().remove(field);
    }
    let file = dir.path().join("restored-secret.json");
    std::fs::write(&file, restored.to_string()).unwrap();
    api.kubectl_ok(&["create", "-f", file.to_str().unwrap()]);
    let adopting = app(APPS_NS, "acme-partner").replace(
        "metadata: {name: partner, ",
        "metadata: {annotations: {inbound.dev/adopt-secret: 'true'}, name: partner, ",
    );
    api.apply(APPS_NS, &adopting);
    let object = eventually("restored partner Ready", Duration::from_secs(20), ready(APPS_NS)).await;
    assert_eq!(object["status"]["clientId"], "acme-partner");
    let new_uid = object["metadata"]["uid"].as_str().unwrap().to_string();
    assert_ne!(Some(new_uid.as_str()), secret_before["metadata"]["ownerReferences"][0]["uid"].as_str());
    let (after, creds_after) = eventually("the Secret is adopted", Duration::from_secs(20), || {
        let (secret, creds) = secret(api, "partner-credentials")?;
        (secret["metadata"]["ownerReferences"][0]["uid"] == new_uid.as_str()).then_some((secret, creds))
    })
    .await;
    assert_eq!(after["metadata"]["ownerReferences"].as_array().unwrap().len(), 1, "one controller");
    assert_eq!(creds_after, creds, "the partner's credentials are the ones it had");
    assert_eq!(op.token(&creds).await.status, 200, "and they still work");
    assert!(api.events(APPS_NS, "partner").contains("SecretAdopted"), "{}", api.events(APPS_NS, "partner"));
}

/// The credentials Secret as the app's template says (labels, annotations, key names, the
/// URLs a workload needs, the in-cluster token URL); a rename moves the same credentials
/// and deletes the old Secret; rotation times are in status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credentials_secret_follows_its_template_and_moves_on_a_rename() {
    let cluster = Cluster::start();
    let api = &cluster.api;
    let in_cluster = "http://inbound.inbound-system.svc:80";
    let op = cluster.operator("replica-a", &["--in-cluster-url", in_cluster]).await;
    api.kubectl_ok(&["apply", "-n", APPS_NS, "-f", "examples/cluster/"]);
    let app = |secret: &str| {
        format!(
            "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {{name: env-app}}\nspec:\n  displayName: Env app\n  grantTypes: [client_credentials]\n  allowedResources: ['https://inventory.example.com']\n  credentialsSecret:\n    name: {secret}\n    labels: {{team: payments}}\n    annotations: {{example.com/reflect: 'true'}}\n    keys: {{clientId: CLIENT_ID, clientSecret: CLIENT_SECRET}}\n---\napiVersion: inbound.dev/v1alpha1\nkind: ClientGrant\nmetadata: {{name: env-app}}\nspec:\n  subject: {{kind: InboundApp, name: env-app}}\n  scopes: [inventory:read]\n  resources: ['https://inventory.example.com']\n"
        )
    };
    api.apply(APPS_NS, &app("env-app-a"));
    let field = |secret: &Value, key: &str| {
        use base64::Engine;
        let b64 = secret["data"][key].as_str()?;
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?).ok()
    };
    let first = eventually("the templated Secret", Duration::from_secs(20), || {
        api.get_json(&["secret", "env-app-a", "-n", APPS_NS]).filter(|s| field(s, "CLIENT_SECRET").is_some())
    })
    .await;
    assert_eq!(first["metadata"]["labels"]["team"], "payments");
    assert_eq!(first["metadata"]["labels"]["app.kubernetes.io/managed-by"], "inbound");
    assert_eq!(first["metadata"]["annotations"]["example.com/reflect"], "true");
    assert!(first["data"].get("client_secret").is_none(), "the template names the keys");
    let creds = (field(&first, "CLIENT_ID").unwrap(), field(&first, "CLIENT_SECRET").unwrap());
    assert_eq!(field(&first, "discovery_url").unwrap(), format!("{}/.well-known/openid-configuration", op.base));
    assert_eq!(field(&first, "jwks_uri").unwrap(), format!("{}/jwks", op.base));
    assert_eq!(field(&first, "in_cluster_token_url").unwrap(), format!("{in_cluster}/token"));
    assert_eq!(eventually_token(&op, &creds).await.status, 200);
    let object = api.get_json(&["inboundapp", "env-app", "-n", APPS_NS]).unwrap();
    let issued_at = object["status"]["secretIssuedAt"].as_str().expect("secretIssuedAt").to_string();
    assert!(issued_at.parse::<jiff::Timestamp>().is_ok(), "{issued_at}");

    // Renamed: the same secret under the new name, the old Secret gone.
    api.apply(APPS_NS, &app("env-app-b"));
    let moved = eventually("the Secret moved", Duration::from_secs(20), || {
        let moved = api.get_json(&["secret", "env-app-b", "-n", APPS_NS])?;
        api.get_json(&["secret", "env-app-a", "-n", APPS_NS]).is_none().then_some(moved)
    })
    .await;
    assert_eq!(field(&moved, "CLIENT_SECRET").unwrap(), creds.1, "moved, not reissued");
    assert_eq!(op.token(&creds).await.status, 200);
    assert!(api.events(APPS_NS, "env-app").contains("SecretMoved"), "{}", api.events(APPS_NS, "env-app"));
    // A renamed key: the same secret under the new key, the old key gone; and back.
    for (from, to) in [("CLIENT_SECRET", "OAUTH_CLIENT_SECRET"), ("OAUTH_CLIENT_SECRET", "CLIENT_SECRET")] {
        let rekeyed = app("env-app-b").replace("clientSecret: CLIENT_SECRET", &format!("clientSecret: {to}"));
        api.apply(APPS_NS, &rekeyed);
        let secret = eventually(&format!("the secret under {to}"), Duration::from_secs(20), || {
            let secret = api.get_json(&["secret", "env-app-b", "-n", APPS_NS])?;
            (secret["data"].get(from).is_none() && field(&secret, to).is_some()).then_some(secret)
        })
        .await;
        assert_eq!(field(&secret, to).unwrap(), creds.1, "the key moved, the secret was not reissued");
        assert_eq!(op.token(&creds).await.status, 200);
    }

    // A user-login app while no identity source exists: waiting, not broken (Argo CD:
    // Progressing, kstatus: InProgress), its credentials issued all the same.
    api.apply(
        APPS_NS,
        "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {name: portal}\nspec: {displayName: Portal, grantTypes: [authorization_code], redirectUris: ['https://portal.example.com/cb']}\n",
    );
    let portal = eventually("portal waits for an identity source", Duration::from_secs(20), || {
        let object = api.get_json(&["inboundapp", "portal", "-n", APPS_NS])?;
        (ready_condition(&object)?["reason"] == "NoIdentitySource").then_some(object)
    })
    .await;
    assert_eq!(ready_condition(&portal).unwrap()["status"], "False");
    assert_eq!(condition(&portal, "Reconciling").unwrap()["status"], "True");
    assert_eq!(condition(&portal, "Stalled").unwrap()["status"], "False");
    assert_eq!(condition(&portal, "CredentialsIssued").unwrap()["status"], "True");
    let (health, message) = crate::argocd::health_of(&portal);
    assert_eq!(health, "Progressing", "{message}");
    assert_eq!(crate::flux::health_of(&portal), "InProgress");

    // A grant past its expiry says so (it grants nothing), and Argo CD shows it degraded.
    api.apply(
        APPS_NS,
        "apiVersion: inbound.dev/v1alpha1\nkind: ClientGrant\nmetadata: {name: old-grant}\nspec:\n  subject: {kind: InboundApp, name: env-app}\n  scopes: [inventory:write]\n  resources: ['https://inventory.example.com']\n  expiresAt: '2020-01-01T00:00:00Z'\n",
    );
    let expired = eventually("the old grant is Expired", Duration::from_secs(20), || {
        let object = api.get_json(&["clientgrant", "old-grant", "-n", APPS_NS])?;
        (ready_condition(&object)?["reason"] == "Expired").then_some(object)
    })
    .await;
    assert_eq!(condition(&expired, "Stalled").unwrap()["status"], "True");
    assert_eq!(crate::argocd::health_of(&expired).0, "Degraded");
    assert_eq!(crate::flux::health_of(&expired), "Failed");
    let refused =
        op.post("/token", Some((&creds.0, &creds.1)), "grant_type=client_credentials&scope=inventory%3Awrite").await;
    assert_eq!(refused.status, 400, "an expired grant grants nothing: {}", refused.json);

    // A rotation records until when the previous secret works.
    api.kubectl_ok(&["annotate", "inboundapp", "env-app", "-n", APPS_NS, "inbound.dev/rotate-secret=1"]);
    let rotated = eventually("the rotation in status", Duration::from_secs(20), || {
        let object = api.get_json(&["inboundapp", "env-app", "-n", APPS_NS])?;
        object["status"]["previousSecretValidUntil"].as_str().map(str::to_string).map(|until| (object, until))
    })
    .await;
    let (object, until) = rotated;
    assert!(until.parse::<jiff::Timestamp>().unwrap() > jiff::Timestamp::now(), "{until}");
    assert_ne!(object["status"]["secretIssuedAt"].as_str(), Some(issued_at.as_str()));
    assert_eq!(op.token(&creds).await.status, 200, "the previous secret works for the overlap");
}
