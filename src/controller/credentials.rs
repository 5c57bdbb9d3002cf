//! The credentials Secret of a confidential InboundApp: what it must contain, and what to do
//! about the one that exists. Pure: the reconciler fetches, this decides, the reconciler
//! applies.
//!
//! The store holds the hashes of the secrets that authenticate (the source of truth); the
//! Secret carries the plaintext to workloads. A Secret whose `client_secret` is not the
//! current secret (edited, emptied, deleted) therefore never authenticates anyone: a new
//! secret is issued and written back.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};

use crate::api::{API_VERSION, InboundApp};
use crate::secrets::{SecretHash, SecretHasher};

/// Label on every Secret inbound writes; the operator watches Secrets by it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "inbound";
/// Label naming the InboundApp a Secret belongs to.
pub const APP_LABEL: &str = "inbound.dev/app";
/// Set on an InboundApp (any new value) to rotate its client secret.
pub const ROTATE_ANNOTATION: &str = "inbound.dev/rotate-secret";
/// `inbound.dev/adopt-secret: "true"` on an InboundApp: a Secret under its credentials name
/// that it does not own (one restored from a backup, whose owner reference names the UID
/// the app had before) becomes its own: owner reference rewritten, its secret kept when the
/// store still accepts it. Explicit, because a Secret of another owner is otherwise never
/// touched.
pub const ADOPT_ANNOTATION: &str = "inbound.dev/adopt-secret";
/// Set on the Secret: the rotation request last honoured.
pub const ROTATED_FOR_ANNOTATION: &str = "inbound.dev/rotated-for";

/// The Secret name of an app: `spec.credentialsSecret.name`, else `<app>-credentials`.
pub fn secret_name(app: &InboundApp) -> String {
    app.spec
        .credentials_secret
        .as_ref()
        .map(|s| s.name.clone())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("{}-credentials", app.metadata.name.as_deref().unwrap_or_default()))
}

/// The key names of an app's Secret: its template's, else the defaults.
pub struct KeyNames {
    pub client_id: String,
    pub client_secret: String,
    pub issuer: String,
    pub token_url: String,
    pub discovery_url: String,
    pub jwks_uri: String,
    pub in_cluster_token_url: String,
}

pub fn key_names(app: &InboundApp) -> KeyNames {
    let keys = app.spec.credentials_secret.as_ref().map(|s| s.keys.clone()).unwrap_or_default();
    let name = |chosen: Option<String>, default: &str| chosen.unwrap_or_else(|| default.to_string());
    KeyNames {
        client_id: name(keys.client_id, "client_id"),
        client_secret: name(keys.client_secret, "client_secret"),
        issuer: name(keys.issuer, "issuer"),
        token_url: name(keys.token_url, "token_url"),
        discovery_url: name(keys.discovery_url, "discovery_url"),
        jwks_uri: name(keys.jwks_uri, "jwks_uri"),
        in_cluster_token_url: name(keys.in_cluster_token_url, "in_cluster_token_url"),
    }
}

/// The client secret a Secret holds for `app` (under its configured key).
pub fn client_secret(app: &InboundApp, secret: &Secret) -> Option<String> {
    data(secret, &key_names(app).client_secret)
}

/// The client secret a Secret holds for `app` when the store's current hash is known: under
/// its configured key or, after `spec.credentialsSecret.keys.clientSecret` was renamed,
/// under whichever key still holds the value that hashes to it. A renamed key moves the
/// same secret to the new key; it never issues a new one.
pub fn held_secret(
    app: &InboundApp,
    secret: &Secret,
    current_hash: Option<&SecretHash>,
    hasher: &SecretHasher,
) -> Option<String> {
    let configured = client_secret(app, secret);
    if configured.is_some() {
        return configured;
    }
    let current = current_hash?;
    let data = secret.data.as_ref()?;
    data.values()
        .filter_map(|v| std::str::from_utf8(&v.0).ok())
        .find(|p| !p.is_empty() && hasher.hash(p) == *current)
        .map(str::to_string)
}

/// True when `secret` is controlled by the app with this UID.
pub fn owned_by(secret: &Secret, app_uid: &str) -> bool {
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == app_uid && r.kind == "InboundApp" && r.controller == Some(true))
}

/// Why a new secret is issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IssueReason {
    /// The app never had one.
    First,
    /// The user asked (annotation value).
    Rotation,
    /// The Secret is gone or no longer holds the current secret.
    Lost(String),
}

/// What to do about an app's credentials Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The Secret exists and belongs to someone else: never adopted.
    Conflict(String),
    /// Everything is as it should be.
    Keep,
    /// The secret is current but other fields drifted: write it again, same secret.
    Repair,
    /// Issue a new secret.
    Issue(IssueReason),
    /// `spec.credentialsSecret.name` changed: the Secret of the old name (named here) holds
    /// the current secret; write it under the new name, then delete the old one.
    Move(String),
    /// The store has no secret for the app (its data was lost, e.g. an emptyDir store after a
    /// restart) but our own Secret holds one: keep it, rather than changing every workload's
    /// credentials, and record its hash.
    Adopt,
}

/// The connection information written beside the secret.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub issuer: String,
    pub token_url: String,
    pub discovery_url: String,
    pub jwks_uri: String,
    /// The token endpoint as workloads in the cluster reach it (the Service), when known.
    pub in_cluster_token_url: Option<String>,
}

/// Decides, given the app, the Secret found under its name (if any), another Secret the app
/// owns under a previous name (if any), and the newest secret hash the store accepts for it
/// (if any).
pub fn plan(
    app: &InboundApp,
    existing: Option<&Secret>,
    previous: Option<&Secret>,
    current_hash: Option<&SecretHash>,
    hasher: &SecretHasher,
    endpoints: &Endpoints,
) -> Plan {
    let uid = app.metadata.uid.as_deref().unwrap_or_default();
    let Some(secret) = existing else {
        // A rename: the old Secret still holds the secret that authenticates.
        if let (Some(old), Some(current)) = (previous, current_hash)
            && owned_by(old, uid)
            && held_secret(app, old, Some(current), hasher)
                .is_some_and(|p| !p.is_empty() && hasher.hash(&p) == *current)
        {
            return Plan::Move(old.metadata.name.clone().unwrap_or_default());
        }
        return Plan::Issue(match current_hash {
            None => IssueReason::First,
            Some(_) => IssueReason::Lost("the Secret was deleted".into()),
        });
    };
    if !owned_by(secret, uid) && !adoption_requested(app) {
        let ns = secret.metadata.namespace.as_deref().unwrap_or_default();
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        return Plan::Conflict(format!(
            "Secret {ns}/{name} exists and is not owned by this InboundApp; delete it or set spec.credentialsSecret.name"
        ));
    }
    let plaintext = held_secret(app, secret, current_hash, hasher);
    match (plaintext, current_hash) {
        (Some(p), None) if !p.is_empty() => return Plan::Adopt,
        (_, None) => return Plan::Issue(IssueReason::First),
        (Some(p), Some(current)) if !p.is_empty() && hasher.hash(&p) == *current => {}
        (None, Some(_)) => return Plan::Issue(IssueReason::Lost("client_secret was removed from the Secret".into())),
        (Some(_), Some(_)) => {
            return Plan::Issue(IssueReason::Lost("client_secret in the Secret was changed".into()));
        }
    }
    if rotation_requested(app, secret).is_some() {
        return Plan::Issue(IssueReason::Rotation);
    }
    let plaintext = held_secret(app, secret, current_hash, hasher).unwrap_or_default();
    let desired = desired_secret(app, &plaintext, endpoints, rotated_for(secret).as_deref());
    if drifted(secret, &desired) { Plan::Repair } else { Plan::Keep }
}

/// Whether the app asks to adopt the Secret under its credentials name.
pub fn adoption_requested(app: &InboundApp) -> bool {
    app.metadata.annotations.as_ref().and_then(|a| a.get(ADOPT_ANNOTATION)).is_some_and(|v| v.trim() == "true")
}

/// The rotation request not yet honoured, if any.
pub fn rotation_requested(app: &InboundApp, secret: &Secret) -> Option<String> {
    let requested = app.metadata.annotations.as_ref()?.get(ROTATE_ANNOTATION)?.trim();
    (!requested.is_empty() && rotated_for(secret).as_deref() != Some(requested)).then(|| requested.to_string())
}

/// The rotation request the Secret records as honoured.
pub fn rotated_for(secret: &Secret) -> Option<String> {
    secret.metadata.annotations.as_ref()?.get(ROTATED_FOR_ANNOTATION).cloned()
}

/// The app's current rotation request (recorded when a secret is issued, so that issuing
/// the first secret of an annotated app does not immediately rotate it).
pub fn rotation_request(app: &InboundApp) -> Option<String> {
    let value = app.metadata.annotations.as_ref()?.get(ROTATE_ANNOTATION)?.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// A UTF-8 entry of a Secret.
pub fn data(secret: &Secret, key: &str) -> Option<String> {
    secret.data.as_ref()?.get(key).and_then(|v| String::from_utf8(v.0.clone()).ok())
}

/// The Secret as inbound writes it (server-side apply: exactly the fields it owns).
pub fn desired_secret(app: &InboundApp, plaintext: &str, endpoints: &Endpoints, rotated_for: Option<&str>) -> Secret {
    let app_name = app.metadata.name.clone().unwrap_or_default();
    let uid = app.metadata.uid.clone().unwrap_or_default();
    let client_id = app.client_id().unwrap_or_default().to_string();
    let keys = key_names(app);
    let mut entries = vec![
        (keys.client_id, client_id.as_str()),
        (keys.client_secret, plaintext),
        (keys.issuer, endpoints.issuer.as_str()),
        (keys.token_url, endpoints.token_url.as_str()),
        (keys.discovery_url, endpoints.discovery_url.as_str()),
        (keys.jwks_uri, endpoints.jwks_uri.as_str()),
    ];
    if let Some(url) = &endpoints.in_cluster_token_url {
        entries.push((keys.in_cluster_token_url, url.as_str()));
    }
    let template = app.spec.credentials_secret.clone().unwrap_or_default();
    // The template's labels and annotations, then inbound's own (which it finds Secrets by).
    let mut labels = template.labels;
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
    labels.insert(APP_LABEL.to_string(), app_name.clone());
    let mut annotations = template.annotations;
    if let Some(v) = rotated_for {
        annotations.insert(ROTATED_FOR_ANNOTATION.to_string(), v.to_string());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(app)),
            namespace: app.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: API_VERSION.to_string(),
                kind: "InboundApp".to_string(),
                name: app_name,
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        type_: Some(template.type_.unwrap_or_else(|| "Opaque".to_string())),
        data: Some(entries.into_iter().map(|(k, v)| (k, ByteString(v.as_bytes().to_vec()))).collect()),
        ..Default::default()
    }
}

/// True when `existing` lacks something `desired` sets (extra keys or labels added by
/// others are left alone).
fn drifted(existing: &Secret, desired: &Secret) -> bool {
    let contains = |have: &Option<BTreeMap<String, String>>, want: &Option<BTreeMap<String, String>>| {
        want.iter().flatten().all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
    };
    let data_ok = desired.data.iter().flatten().all(|(k, v)| existing.data.as_ref().and_then(|d| d.get(k)) == Some(v));
    !(data_ok
        && contains(&existing.metadata.labels, &desired.metadata.labels)
        && contains(&existing.metadata.annotations, &desired.metadata.annotations)
        && existing.metadata.owner_references == desired.metadata.owner_references)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(annotations: &[(&str, &str)]) -> InboundApp {
        let mut app: InboundApp = serde_json::from_value(serde_json::json!({
            "apiVersion": "inbound.dev/v1alpha1", "kind": "InboundApp",
            "metadata": {"name": "agent", "namespace": "ns", "uid": "uid-1"},
            "spec": {"displayName": "Agent", "grantTypes": ["client_credentials"]}
        }))
        .unwrap();
        app.metadata.annotations = Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        app
    }

    fn endpoints() -> Endpoints {
        Endpoints {
            issuer: "https://auth".into(),
            token_url: "https://auth/token".into(),
            discovery_url: "https://auth/.well-known/openid-configuration".into(),
            jwks_uri: "https://auth/jwks".into(),
            in_cluster_token_url: None,
        }
    }

    #[test]
    fn decisions() {
        let hasher = SecretHasher::new(b"k");
        let a = app(&[]);
        let current = hasher.hash("s3cret");
        assert_eq!(plan(&a, None, None, None, &hasher, &endpoints()), Plan::Issue(IssueReason::First));
        // Our Secret survives a lost store: adopted, not replaced.
        let kept = desired_secret(&a, "s3cret", &endpoints(), None);
        assert_eq!(plan(&a, Some(&kept), None, None, &hasher, &endpoints()), Plan::Adopt);
        assert!(matches!(
            plan(&a, None, None, Some(&current), &hasher, &endpoints()),
            Plan::Issue(IssueReason::Lost(_))
        ));

        let ours = desired_secret(&a, "s3cret", &endpoints(), None);
        assert_eq!(secret_name(&a), "agent-credentials");
        assert_eq!(plan(&a, Some(&ours), None, Some(&current), &hasher, &endpoints()), Plan::Keep);

        // Someone else's Secret under the same name is never adopted.
        let mut foreign = ours.clone();
        foreign.metadata.owner_references = None;
        assert!(matches!(plan(&a, Some(&foreign), None, Some(&current), &hasher, &endpoints()), Plan::Conflict(_)));
        // Unless the app asks for it (a restore): then its secret is kept, its owner fixed.
        let adopting = app(&[(ADOPT_ANNOTATION, "true")]);
        let mut restored = desired_secret(&adopting, "s3cret", &endpoints(), None);
        restored.metadata.owner_references.as_mut().unwrap()[0].uid = "uid-before-the-restore".into();
        assert_eq!(plan(&adopting, Some(&restored), None, Some(&current), &hasher, &endpoints()), Plan::Repair);
        assert!(matches!(plan(&a, Some(&restored), None, Some(&current), &hasher, &endpoints()), Plan::Conflict(_)));

        // A rename: the Secret of the old name holds the current secret: moved, not reissued.
        let mut renamed = app(&[]);
        renamed.spec.credentials_secret =
            Some(crate::api::CredentialsSecretRef { name: "agent-v2".into(), ..Default::default() });
        assert_eq!(
            plan(&renamed, None, Some(&ours), Some(&current), &hasher, &endpoints()),
            Plan::Move("agent-credentials".into())
        );
        let mut stale = ours.clone();
        stale.data.as_mut().unwrap().insert("client_secret".into(), ByteString(b"old".to_vec()));
        assert!(matches!(
            plan(&renamed, None, Some(&stale), Some(&current), &hasher, &endpoints()),
            Plan::Issue(IssueReason::Lost(_))
        ));
        assert!(matches!(plan(&renamed, None, Some(&foreign), Some(&current), &hasher, &endpoints()), Plan::Issue(_)));

        // The template: labels, annotations, type and key names; inbound's labels always.
        let mut templated = app(&[]);
        templated.spec.credentials_secret = Some(crate::api::CredentialsSecretRef {
            labels: [("team".to_string(), "payments".to_string())].into(),
            annotations: [("reflector.example.com/allow".to_string(), "true".to_string())].into(),
            type_: Some("example.com/oauth-client".into()),
            keys: crate::api::CredentialsKeys {
                client_id: Some("CLIENT_ID".into()),
                client_secret: Some("CLIENT_SECRET".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        let written = desired_secret(&templated, "s3cret", &endpoints(), None);
        let labels = written.metadata.labels.as_ref().unwrap();
        assert_eq!((labels["team"].as_str(), labels[MANAGED_BY_LABEL].as_str()), ("payments", MANAGED_BY));
        assert_eq!(written.metadata.annotations.as_ref().unwrap()["reflector.example.com/allow"], "true");
        assert_eq!(written.type_.as_deref(), Some("example.com/oauth-client"));
        assert_eq!(data(&written, "CLIENT_SECRET").as_deref(), Some("s3cret"));
        assert_eq!(data(&written, "CLIENT_ID").as_deref(), Some("uid-1"));
        assert_eq!(data(&written, "jwks_uri").as_deref(), Some("https://auth/jwks"));
        assert!(data(&written, "client_secret").is_none());
        assert_eq!(plan(&templated, Some(&written), None, Some(&current), &hasher, &endpoints()), Plan::Keep);
        // Renaming the secret's key moves the same secret to the new key (a repair).
        assert_eq!(plan(&templated, Some(&ours), None, Some(&current), &hasher, &endpoints()), Plan::Repair);
        assert_eq!(held_secret(&templated, &ours, Some(&current), &hasher).as_deref(), Some("s3cret"));
        assert_eq!(held_secret(&templated, &stale, Some(&current), &hasher), None, "only the value that authenticates");
        assert!(matches!(
            plan(&templated, Some(&stale), None, Some(&current), &hasher, &endpoints()),
            Plan::Issue(IssueReason::Lost(_))
        ));

        // A declared client id is what the Secret carries; the owner is still the UID.
        let mut declared = app(&[]);
        declared.spec.client_id = Some("acme-agent".into());
        let written = desired_secret(&declared, "s3cret", &endpoints(), None);
        assert_eq!(data(&written, "client_id").as_deref(), Some("acme-agent"));
        assert_eq!(written.metadata.owner_references.as_ref().unwrap()[0].uid, "uid-1");

        // Drift in a non-secret field: repaired with the same secret.
        let mut edited = ours.clone();
        edited.data.as_mut().unwrap().insert("client_id".into(), ByteString(b"other".to_vec()));
        assert_eq!(plan(&a, Some(&edited), None, Some(&current), &hasher, &endpoints()), Plan::Repair);
        let mut relabelled = ours.clone();
        relabelled.metadata.labels = None;
        assert_eq!(plan(&a, Some(&relabelled), None, Some(&current), &hasher, &endpoints()), Plan::Repair);
        // Extra keys someone added are not drift.
        let mut extra = ours.clone();
        extra.data.as_mut().unwrap().insert("note".into(), ByteString(b"x".to_vec()));
        assert_eq!(plan(&a, Some(&extra), None, Some(&current), &hasher, &endpoints()), Plan::Keep);

        // A changed secret never authenticates: a new one is issued.
        let mut changed = ours.clone();
        changed.data.as_mut().unwrap().insert("client_secret".into(), ByteString(b"guess".to_vec()));
        assert!(matches!(
            plan(&a, Some(&changed), None, Some(&current), &hasher, &endpoints()),
            Plan::Issue(IssueReason::Lost(_))
        ));

        // Rotation: requested once per annotation value.
        let rotate = app(&[(ROTATE_ANNOTATION, "2026-11-23")]);
        assert_eq!(
            plan(&rotate, Some(&ours), None, Some(&current), &hasher, &endpoints()),
            Plan::Issue(IssueReason::Rotation)
        );
        let honoured = desired_secret(&rotate, "s3cret", &endpoints(), Some("2026-11-23"));
        assert_eq!(plan(&rotate, Some(&honoured), None, Some(&current), &hasher, &endpoints()), Plan::Keep);
    }
}
