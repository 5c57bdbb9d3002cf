//! Signing keys in a Secret of the operator's namespace (`keys.json`, the same document
//! `inbound serve` keeps in its data directory).
//!
//! The leader creates the Secret once (create is atomic: of two replicas racing, one wins and
//! both end up with its keys) and applies the rotation schedule with optimistic concurrency
//! (every update carries the resourceVersion it read). Every replica watches the Secret and
//! swaps its key set on change.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::{ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::api::{Api, PostParams};

use crate::tokens::{KeyDocument, RotationPolicy};

pub const KEYS_ENTRY: &str = "keys.json";

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error("Secret {0} has no valid {KEYS_ENTRY}: {1}")]
    Invalid(String, String),
}

/// The key document of a Secret.
pub fn document(secret: &Secret) -> Result<KeyDocument, KeysError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEYS_ENTRY))
        .ok_or_else(|| KeysError::Invalid(name.clone(), "missing".into()))?;
    KeyDocument::from_json(&bytes.0).map_err(|reason| KeysError::Invalid(name, reason))
}

fn secret(name: &str, doc: &KeyDocument, resource_version: Option<String>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(
                super::credentials::MANAGED_BY_LABEL.to_string(),
                super::credentials::MANAGED_BY.to_string(),
            )])),
            resource_version,
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(KEYS_ENTRY.to_string(), ByteString(doc.to_json()))])),
        ..Default::default()
    }
}

/// Reads the key document, creating it when absent and this replica leads; waits (polling)
/// while it is absent and another replica is expected to create it.
pub async fn load_or_create(
    api: &Api<Secret>,
    name: &str,
    leader: &tokio::sync::watch::Receiver<bool>,
) -> Result<KeyDocument, KeysError> {
    let mut waited = Duration::ZERO;
    loop {
        match api.get_opt(name).await {
            Ok(Some(existing)) => return document(&existing),
            Ok(None) if *leader.borrow() => {
                let doc = KeyDocument::generate(jiff::Timestamp::now().as_second());
                match api.create(&PostParams::default(), &secret(name, &doc, None)).await {
                    Ok(_) => {
                        tracing::info!(secret = name, "signing keys created");
                        return Ok(doc);
                    }
                    // Created meanwhile by another replica: read theirs.
                    Err(kube::Error::Api(e)) if e.code == 409 => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(None) => {}
            Err(e) if waited >= Duration::from_secs(30) => return Err(e.into()),
            Err(e) => tracing::warn!(error = %e, "cannot read the signing keys Secret; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        waited += Duration::from_millis(500);
    }
}

/// Where a replica keeps the last key document it read, in its data directory: a replica
/// restarted while the API server is unreachable serves (JWKS, discovery, and tokens once
/// its configuration lists) from it instead of never starting.
pub const CACHE_FILE: &str = "signing-keys.json";

/// The key document: from the Secret (created by the leader when absent), or, when the API
/// server does not give it within `patience`, the copy kept at `cache`. Without either it
/// keeps trying: the listener is already answering probes, so waiting is safe.
pub async fn load(
    api: &Api<Secret>,
    name: &str,
    leader: &tokio::sync::watch::Receiver<bool>,
    patience: Duration,
    cache: &Path,
) -> KeyDocument {
    loop {
        let failure = match tokio::time::timeout(patience, load_or_create(api, name, leader)).await {
            Ok(Ok(document)) => {
                remember(cache, &document);
                return document;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no leader created them in time".to_string(),
        };
        match recall(cache) {
            Some(document) => {
                tracing::warn!(
                    secret = name,
                    error = %failure,
                    cache = %cache.display(),
                    "cannot read the signing keys Secret; serving the last keys this replica saw"
                );
                return document;
            }
            None => tracing::warn!(secret = name, error = %failure, "no signing keys yet; retrying"),
        }
    }
}

/// Keeps `document` at `cache` (0600); a failure only costs the fallback.
pub fn remember(cache: &Path, document: &KeyDocument) {
    if let Err(e) = crate::private_file::write_private(cache, &document.to_json()) {
        tracing::warn!(cache = %cache.display(), error = %e, "cannot keep a copy of the signing keys");
    }
}

/// The document kept at `cache`, if there is a valid one.
fn recall(cache: &Path) -> Option<KeyDocument> {
    let bytes = std::fs::read(cache).ok()?;
    match KeyDocument::from_json(&bytes) {
        Ok(document) => Some(document),
        Err(e) => {
            tracing::warn!(cache = %cache.display(), error = %e, "ignoring the kept copy of the signing keys");
            None
        }
    }
}

/// Leader only: applies the schedule; when the Secret was updated, records it in the audit
/// trail and returns true.
pub async fn rotate(
    api: &Api<Secret>,
    name: &str,
    policy: &RotationPolicy,
    audit: &crate::audit::Audit,
) -> Result<bool, KeysError> {
    let Some(existing) = api.get_opt(name).await? else { return Ok(false) };
    let mut doc = document(&existing)?;
    if !doc.rotate(jiff::Timestamp::now().as_second(), policy) {
        return Ok(false);
    }
    let updated = secret(name, &doc, existing.metadata.resource_version.clone());
    match api.replace(name, &PostParams::default(), &updated).await {
        Ok(_) => {
            tracing::info!(secret = name, keys = ?doc.published_kids(), "signing keys rotated");
            audit.emit(crate::audit::Event::SigningKeysRotated {
                current: doc.active_kids(),
                published: doc.all_published_kids(),
            });
            Ok(true)
        }
        // Someone else wrote meanwhile: the next round starts from their version.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}
