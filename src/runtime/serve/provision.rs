//! Credentials for the apps of a folder: client ids from stable UIDs, client secrets
//! generated once and written to the data directory, only their hashes kept.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::Context;

use crate::api::{ClientType, ObjectKey, namespace_of};
use crate::catalog::{
    Catalog, ClientRecord, Defaults,
    manifest::{Manifest, Object},
};
use crate::clock::now;
use crate::private_file::{create_private, write_private};
use crate::protocol::paths;
use crate::secrets::{ClientSecret, SecretHasher};
use crate::store::{ClientIdClaim, Store};

/// What the startup banner tells about one app.
#[derive(Clone, Debug)]
pub struct AppCredentials {
    pub key: ObjectKey,
    pub client_id: String,
    pub confidential: bool,
    /// Folder holding `client_id`, `client_secret`, `issuer`, `token_url`.
    pub dir: PathBuf,
}

/// Everything provisioning produced for one configuration.
pub struct Provisioned {
    pub records: HashMap<ObjectKey, ClientRecord>,
    /// Subject identifiers of DevelopmentUsers.
    pub subjects: HashMap<ObjectKey, String>,
    pub apps: Vec<AppCredentials>,
}

impl Provisioned {
    pub fn catalog(&self, manifests: &[Manifest], defaults: &Defaults) -> Catalog {
        Catalog::build(manifests, &self.records, &self.subjects, defaults)
    }
}

pub struct Provisioner {
    pub store: Arc<dyn Store>,
    pub hasher: SecretHasher,
    pub data_dir: PathBuf,
    pub issuer: String,
    pub audit: Arc<crate::audit::Audit>,
}

/// `<data dir>/credentials/<namespace>/<secret name>`; the secret name defaults to
/// `<app name>-credentials`, as the operator names the Secret.
pub fn credentials_dir(
    data_dir: &Path,
    manifest_namespace: &str,
    app_name: &str,
    secret_name: Option<&str>,
) -> PathBuf {
    let secret = secret_name.map(str::to_string).unwrap_or_else(|| format!("{app_name}-credentials"));
    data_dir.join("credentials").join(manifest_namespace).join(secret)
}

/// The client id of a folder's app: its declared `spec.clientId`, claimed as in a cluster
/// (two apps of the folder cannot share one, and an app keeps the one it was first given),
/// else a UID the store keeps for it.
pub async fn client_id_for(store: &dyn Store, app: &crate::api::InboundApp, key: &ObjectKey) -> anyhow::Result<String> {
    Ok(match (&app.spec.client_id, &app.metadata.uid) {
        (Some(declared), _) => match store.claim_client_id(declared, key, now()).await? {
            ClientIdClaim::Held => declared.clone(),
            ClientIdClaim::TakenBy(holder) => {
                anyhow::bail!("InboundApp {key}: spec.clientId {declared} is held by InboundApp {holder}")
            }
            ClientIdClaim::AppHolds(held) => anyhow::bail!(
                "InboundApp {key}: spec.clientId is immutable: this app holds client id {held}; restore that value"
            ),
        },
        (None, Some(uid)) => uid.clone(),
        (None, None) => store.object_uid("InboundApp", key).await?,
    })
}

impl Provisioner {
    /// Ensures every app has a client id and, if confidential, a secret whose plaintext is
    /// in its credentials folder and whose hash is in the store.
    pub async fn provision(&self, manifests: &[Manifest]) -> anyhow::Result<Provisioned> {
        let mut records = HashMap::new();
        let mut subjects = HashMap::new();
        let mut apps = Vec::new();
        for m in manifests {
            if let Object::User(user) = &m.object {
                let key = ObjectKey::of(&user.metadata);
                let subject = self.store.object_uid("DevelopmentUser", &key).await?;
                subjects.insert(key, subject);
                continue;
            }
            let Object::App(app) = &m.object else {
                continue;
            };
            let ns = namespace_of(&app.metadata);
            let name = app.metadata.name.clone().unwrap_or_default();
            let key = ObjectKey { namespace: ns.to_string(), name: name.clone() };
            let client_id = client_id_for(self.store.as_ref(), app, &key).await?;
            let dir = credentials_dir(
                &self.data_dir,
                ns,
                &name,
                app.spec.credentials_secret.as_ref().map(|s| s.name.as_str()).filter(|n| !n.is_empty()),
            );
            let confidential = app.spec.client_type == ClientType::Confidential;
            let secret_hashes =
                if confidential { self.ensure_secret(&key, &client_id, &dir).await? } else { Vec::new() };
            write_file(&dir.join("client_id"), &client_id)?;
            write_file(&dir.join("issuer"), &self.issuer)?;
            write_file(&dir.join("token_url"), &format!("{}{}", self.issuer, paths::TOKEN))?;
            records.insert(key.clone(), ClientRecord { client_id: client_id.clone(), secret_hashes });
            apps.push(AppCredentials { key, client_id, confidential, dir });
        }
        apps.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Provisioned { records, subjects, apps })
    }

    async fn ensure_secret(
        &self,
        key: &ObjectKey,
        client_id: &str,
        dir: &Path,
    ) -> anyhow::Result<Vec<crate::secrets::SecretHash>> {
        let stored = self.store.client_secret_hashes(client_id, now()).await?;
        let on_disk = std::fs::read_to_string(dir.join("client_secret")).ok();
        let on_disk_hash = on_disk.as_deref().map(|secret| self.hasher.hash(secret.trim_end()));
        if let Some(hash) = on_disk_hash
            && stored.contains(&hash)
        {
            return Ok(stored);
        }
        if stored.is_empty() {
            // First issuance. Replicas sharing this data directory and the store may be
            // doing the same right now: the credentials file is the arbiter (created only
            // if absent, before the store learns the hash), so everyone ends up with the
            // plaintext and the hash of one secret.
            let secret = match on_disk {
                Some(secret) => secret.trim_end().to_string(),
                None => {
                    let candidate = ClientSecret::generate();
                    let path = dir.join("client_secret");
                    ensure_private_dir(dir)?;
                    if create_private(&path, candidate.expose().as_bytes())
                        .with_context(|| format!("cannot write {}", path.display()))?
                    {
                        candidate.expose().to_string()
                    } else {
                        std::fs::read_to_string(&path)?.trim_end().to_string()
                    }
                }
            };
            let hash = self.hasher.hash(&secret);
            if self.store.add_first_client_secret(client_id, &hash, now()).await? {
                tracing::info!(app = %key, "client secret issued");
                self.issued(key, client_id, "first");
                return Ok(vec![hash]);
            }
            let stored = self.store.client_secret_hashes(client_id, now()).await?;
            if !stored.contains(&hash) {
                tracing::warn!(app = %key, "another process issued a different secret; this data directory's credentials file does not match it");
            }
            return Ok(stored);
        }
        // The credentials file is missing or no longer matches: issue a new secret.
        let secret = ClientSecret::generate();
        let hash = self.hasher.hash(secret.expose());
        write_file(&dir.join("client_secret"), secret.expose())?;
        self.store.set_client_secret(client_id, &hash, now()).await?;
        tracing::warn!(app = %key, "client secret replaced: the credentials file was missing or did not match");
        self.issued(key, client_id, "lost");
        Ok(vec![hash])
    }

    fn issued(&self, key: &ObjectKey, client_id: &str, reason: &str) {
        self.audit.emit(crate::audit::Event::ClientSecretIssued {
            app: key.to_string(),
            client_id: client_id.to_string(),
            reason: reason.to_string(),
            previous_valid_until: None,
        });
    }
}

/// Creates a credentials folder readable only by the server's user (0700).
fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes one credentials file (0600), creating its folder (0700).
fn write_file(path: &Path, content: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        ensure_private_dir(parent)?;
    }
    if std::fs::read_to_string(path).is_ok_and(|current| current == content) {
        return Ok(());
    }
    write_private(path, content.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}
