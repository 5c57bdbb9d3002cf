//! The leader's pass over every object: validate (done by the snapshot) → build (desired
//! Secret and status) → apply (server-side apply under one field manager) → report (status,
//! events). Objects are reconciled one by one and an error on one never stops the others:
//! it is logged and retried on the next pass.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::cache::Caches;
use super::credentials::{self, Endpoints, IssueReason, Plan};
use super::snapshot::Validated;
use super::status::{self, CREDENTIALS_ISSUED, Desired};
use crate::api::{Condition, IdentityProvider, InboundApp, InboundAppStatus, ObjectKey};
use crate::catalog::UpstreamProvider;
use crate::protocol::paths;
use crate::secrets::{ClientSecret, SecretHasher};
use crate::store::{Store, StoreError};

/// The one field manager of everything inbound writes.
pub const FIELD_MANAGER: &str = "inbound";
/// On InboundApps: their consents and refresh tokens live outside Kubernetes (the store)
/// and must be revoked when the app is deleted.
pub const FINALIZER: &str = "inbound.dev/cleanup";

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Whether an IdentityProvider can be used now: its discovery document, keys and client
/// secret (the runtime checks them over the network; the controller reports the answer).
#[async_trait::async_trait]
pub trait ProviderCheck: Send + Sync {
    async fn check(&self, provider: &UpstreamProvider) -> Result<(), String>;
}

/// How long a successful check stands, and a failed one, before the provider is checked
/// again (a change of its spec checks at once).
const PROVIDER_CHECK_TTL: Duration = Duration::from_secs(300);
const PROVIDER_RETRY: Duration = Duration::from_secs(5);

/// A check's answer: for which generation, when, and what it found.
type ProviderChecked = (Option<i64>, Instant, Result<(), String>);

pub struct Reconciler {
    pub client: kube::Client,
    /// Checks IdentityProviders; results kept per object and generation.
    pub providers: Arc<dyn ProviderCheck>,
    provider_checks: std::sync::Mutex<HashMap<ObjectKey, ProviderChecked>>,
    pub recorder: Recorder,
    pub store: Arc<dyn Store>,
    pub hasher: SecretHasher,
    pub issuer: String,
    /// How long a previous client secret works after a rotation, when the app says nothing.
    pub default_overlap: Duration,
}

impl Reconciler {
    pub fn new(
        client: kube::Client,
        identity: &str,
        store: Arc<dyn Store>,
        hasher: SecretHasher,
        issuer: String,
        default_overlap: Duration,
        providers: Arc<dyn ProviderCheck>,
    ) -> Reconciler {
        let reporter = Reporter { controller: "inbound".into(), instance: Some(identity.to_string()) };
        Reconciler {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            providers,
            provider_checks: Default::default(),
            store,
            hasher,
            issuer,
            default_overlap,
        }
    }

    pub async fn reconcile_all(&self, caches: &Caches, validated: &Validated) {
        for app in caches.apps.objects() {
            let name = format!("InboundApp {}/{}", app.namespace().unwrap_or_default(), app.name_any());
            let result = if app.metadata.deletion_timestamp.is_some() {
                self.finalize_app(&app, caches).await
            } else {
                self.reconcile_app(&app, caches, validated).await
            };
            if let Err(e) = result {
                tracing::warn!(object = %name, error = %e, "reconcile failed; retrying on the next pass");
            }
        }
        for scope in caches.scopes.objects() {
            self.reconcile_plain(&scope, "Scope", validated).await;
        }
        for grant in caches.grants.objects() {
            self.reconcile_plain(&grant, "ClientGrant", validated).await;
        }
        for policy in caches.policies.objects() {
            self.reconcile_plain(&policy, "ConsentPolicy", validated).await;
        }
        for provider in caches.providers.objects() {
            self.reconcile_provider(&provider, validated).await;
        }
    }

    /// Ready once the spec is valid (and trusted: the operator's namespace) and the
    /// upstream answered discovery and JWKS with the client secret readable.
    async fn reconcile_provider(&self, provider: &IdentityProvider, validated: &Validated) {
        if provider.metadata.deletion_timestamp.is_some() {
            return;
        }
        let key = ObjectKey::of(&provider.metadata);
        let object_name = format!("IdentityProvider {}/{}", key.namespace, key.name);
        let desired = match validated.message(&object_name) {
            Some(message) => Desired::not_ready("InvalidSpec", message),
            None => {
                let upstream = UpstreamProvider { key: key.clone(), spec: provider.spec.clone() };
                match (&provider.spec.oidc, &provider.spec.application) {
                    (Some(oidc), _) => match self.check_provider(&upstream, provider.metadata.generation).await {
                        Ok(()) => Desired::ready(
                            "Discovered",
                            format!("{} answered discovery and JWKS; users can sign in", oidc.issuer),
                        ),
                        Err(reason) => Desired::not_ready("UpstreamUnavailable", reason),
                    },
                    (None, Some(application)) => Desired::ready(
                        "Valid",
                        format!(
                            "users sign in at {}, accepted by InboundApp {}",
                            application.login_url, application.client
                        ),
                    ),
                    (None, None) => Desired::not_ready("InvalidSpec", "no identity source"),
                }
            }
        };
        let current = provider.conditions();
        let conditions = status::conditions(current, &[desired], provider.metadata.generation, &now_rfc3339());
        let result = async {
            self.report_invalid(provider, current, &conditions).await;
            let (before, after) = (status::ready(current), status::ready(&conditions));
            if let Some(after) = after
                && after.reason == "UpstreamUnavailable"
                && before.is_none_or(|b| b.reason != after.reason || b.message != after.message)
            {
                self.event(provider, EventType::Warning, "UpstreamUnavailable", &after.message).await;
            }
            if current == conditions.as_slice() && provider.observed_generation() == provider.metadata.generation {
                return Ok(());
            }
            let status =
                serde_json::json!({ "conditions": conditions, "observedGeneration": provider.metadata.generation });
            self.apply_status(provider, status).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(object = %object_name, error = %e, "cannot write status; retrying on the next pass");
        }
    }

    async fn check_provider(&self, provider: &UpstreamProvider, generation: Option<i64>) -> Result<(), String> {
        if let Some((checked_generation, at, result)) = self.provider_checks.lock().expect("lock").get(&provider.key)
            && *checked_generation == generation
            && at.elapsed() < if result.is_ok() { PROVIDER_CHECK_TTL } else { PROVIDER_RETRY }
        {
            return result.clone();
        }
        let result = self.providers.check(provider).await;
        if let Err(reason) = &result {
            tracing::warn!(provider = %provider.source(), reason, "identity provider not usable");
        }
        self.provider_checks
            .lock()
            .expect("lock")
            .insert(provider.key.clone(), (generation, Instant::now(), result.clone()));
        result
    }

    /// Scopes, grants and policies: only a Ready condition.
    async fn reconcile_plain<K>(&self, object: &K, kind: &str, validated: &Validated)
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + Serialize
            + DeserializeOwned
            + std::fmt::Debug,
        K: HasConditions,
    {
        if object.meta().deletion_timestamp.is_some() {
            return;
        }
        let object_name = format!("{kind} {}/{}", object.namespace().unwrap_or_default(), object.name_any());
        let desired = match validated.message(&object_name) {
            Some(message) => vec![Desired::not_ready("InvalidSpec", message)],
            None => vec![Desired::ready("Valid", format!("{kind} is served"))],
        };
        let current = object.conditions();
        let conditions = status::conditions(current, &desired, object.meta().generation, &now_rfc3339());
        let result = async {
            self.report_invalid(object, current, &conditions).await;
            if current == conditions.as_slice() && object.observed_generation() == object.meta().generation {
                return Ok(());
            }
            let status =
                serde_json::json!({ "conditions": conditions, "observedGeneration": object.meta().generation });
            self.apply_status(object, status).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(object = %object_name, error = %e, "cannot write status; retrying on the next pass");
        }
    }

    async fn reconcile_app(
        &self,
        app: &InboundApp,
        caches: &Caches,
        validated: &Validated,
    ) -> Result<(), ReconcileError> {
        self.ensure_finalizer(app).await?;
        let ns = app.namespace().unwrap_or_default();
        let object_name = format!("InboundApp {ns}/{}", app.name_any());
        let client_id = app.metadata.uid.clone().unwrap_or_default();
        let current = app.status.clone().unwrap_or_default();
        let confidential = app.spec.client_type == crate::api::ClientType::Confidential;
        let mut status = InboundAppStatus {
            client_id: Some(client_id.clone()),
            issuer: Some(self.issuer.clone()),
            discovery_url: Some(format!("{}{}", self.issuer, paths::OIDC_DISCOVERY)),
            authorize_url: Some(format!("{}{}", self.issuer, paths::AUTHORIZE)),
            token_url: Some(format!("{}{}", self.issuer, paths::TOKEN)),
            secret_name: confidential.then(|| credentials::secret_name(app)),
            observed_generation: app.metadata.generation,
            conditions: Vec::new(),
        };
        let desired = if let Some(message) = validated.message(&object_name) {
            vec![Desired::not_ready("InvalidSpec", message)]
        } else if !confidential {
            vec![Desired::ready("Ready", format!("public client {client_id} is served"))]
        } else {
            self.reconcile_credentials(app, caches, &current.conditions).await
        };
        status.conditions = status::conditions(&current.conditions, &desired, app.metadata.generation, &now_rfc3339());
        self.report_invalid(app, &current.conditions, &status.conditions).await;
        if status == current {
            return Ok(());
        }
        let status = serde_json::to_value(&status).expect("status serializes");
        self.apply_status(app, status).await
    }

    /// Issues, repairs or rotates the credentials Secret; returns the conditions to report.
    async fn reconcile_credentials(&self, app: &InboundApp, caches: &Caches, current: &[Condition]) -> Vec<Desired> {
        match self.credentials(app, caches, current).await {
            Ok(conditions) => conditions,
            Err(e) => {
                tracing::warn!(app = %app.name_any(), error = %e, "cannot issue credentials");
                vec![
                    Desired::not_ready("CredentialsPending", format!("cannot issue credentials yet: {e}")),
                    Desired {
                        type_: CREDENTIALS_ISSUED,
                        status: false,
                        reason: "Pending".into(),
                        message: e.to_string(),
                    },
                ]
            }
        }
    }

    async fn credentials(
        &self,
        app: &InboundApp,
        caches: &Caches,
        current: &[Condition],
    ) -> Result<Vec<Desired>, ReconcileError> {
        let ns = app.namespace().unwrap_or_default();
        let secret_name = credentials::secret_name(app);
        let client_id = app.metadata.uid.clone().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        // The cache only holds Secrets labelled as ours: look for an unlabelled one (someone
        // else's) before writing under that name.
        let existing = match caches.secrets.get(&ns, &secret_name) {
            Some(secret) => Some((*secret).clone()),
            None => secrets.get_opt(&secret_name).await?,
        };
        let now = now_seconds();
        let hashes = self.store.client_secret_hashes(&client_id, now).await?;
        let endpoints =
            Endpoints { issuer: self.issuer.clone(), token_url: format!("{}{}", self.issuer, paths::TOKEN) };
        let plan = credentials::plan(app, existing.as_ref(), hashes.first(), &self.hasher, &endpoints);
        let issued_reason = current
            .iter()
            .find(|c| c.type_ == CREDENTIALS_ISSUED && c.status == "True")
            .map(|c| (c.reason.clone(), c.message.clone()))
            .unwrap_or_else(|| ("Issued".into(), format!("Secret {secret_name} holds the credentials")));
        let (reason, message) = match plan {
            Plan::Conflict(message) => {
                if status::ready(current).is_none_or(|c| c.reason != "SecretConflict") {
                    self.event(app, EventType::Warning, "SecretConflict", &message).await;
                }
                return Ok(vec![
                    Desired::not_ready("SecretConflict", message.clone()),
                    Desired { type_: CREDENTIALS_ISSUED, status: false, reason: "SecretConflict".into(), message },
                ]);
            }
            Plan::Keep => issued_reason,
            Plan::Adopt => {
                let plaintext =
                    existing.as_ref().and_then(|s| credentials::data(s, "client_secret")).unwrap_or_default();
                self.store.rotate_client_secret(&client_id, &self.hasher.hash(&plaintext), now, now).await?;
                tracing::warn!(app = %app.name_any(), "the store had no client secret for this app; kept the one in its Secret");
                issued_reason
            }
            Plan::Repair => {
                let plaintext =
                    existing.as_ref().and_then(|s| credentials::data(s, "client_secret")).unwrap_or_default();
                let rotated_for = existing.as_ref().and_then(credentials::rotated_for);
                let desired = credentials::desired_secret(app, &plaintext, &endpoints, rotated_for.as_deref());
                self.apply_secret(&secrets, &desired).await?;
                let note = format!("Secret {secret_name} was changed; restored");
                self.event(app, EventType::Normal, "SecretRestored", &note).await;
                issued_reason
            }
            Plan::Issue(why) => {
                let overlap = app
                    .spec
                    .secret_rotation_overlap
                    .as_ref()
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(self.default_overlap);
                let secret = ClientSecret::generate();
                let desired = credentials::desired_secret(
                    app,
                    secret.expose(),
                    &endpoints,
                    credentials::rotation_request(app).as_deref(),
                );
                // The Secret first: when the store starts accepting the new secret, its
                // plaintext is already where workloads read it.
                self.apply_secret(&secrets, &desired).await?;
                let previous_until = match why {
                    IssueReason::First => now,
                    _ => now + overlap.as_secs() as i64,
                };
                self.store
                    .rotate_client_secret(&client_id, &self.hasher.hash(secret.expose()), now, previous_until)
                    .await?;
                let until = jiff::Timestamp::from_second(previous_until).map(|t| t.to_string()).unwrap_or_default();
                match why {
                    IssueReason::First => {
                        let note = format!("client secret written to Secret {secret_name}");
                        self.event(app, EventType::Normal, "CredentialsIssued", &note).await;
                        ("Issued".into(), format!("Secret {secret_name} holds the credentials"))
                    }
                    IssueReason::Rotation => {
                        let note =
                            format!("new client secret in Secret {secret_name}; the previous one works until {until}");
                        self.event(app, EventType::Normal, "SecretRotated", &note).await;
                        ("Rotated".into(), note)
                    }
                    IssueReason::Lost(cause) => {
                        let note = format!(
                            "{cause}: new client secret in Secret {secret_name}; the previous one works until {until}"
                        );
                        self.event(app, EventType::Warning, "SecretRestored", &note).await;
                        ("Reissued".into(), note)
                    }
                }
            }
        };
        Ok(vec![
            Desired::ready("Ready", format!("client {client_id} is served; credentials in Secret {secret_name}")),
            Desired { type_: CREDENTIALS_ISSUED, status: true, reason, message },
        ])
    }

    async fn ensure_finalizer(&self, app: &InboundApp) -> Result<(), ReconcileError> {
        if app.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        let mut finalizers = app.finalizers().to_vec();
        finalizers.push(FINALIZER.to_string());
        self.patch_finalizers(app, finalizers).await
    }

    /// The app is being deleted: revoke what it was granted, delete its Secret (the garbage
    /// collector would too; doing it here makes it immediate), then let it go.
    async fn finalize_app(&self, app: &InboundApp, caches: &Caches) -> Result<(), ReconcileError> {
        if !app.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        let ns = app.namespace().unwrap_or_default();
        let client_id = app.metadata.uid.clone().unwrap_or_default();
        let revoked = self.store.forget_client(&client_id, now_seconds()).await?;
        let secret_name = credentials::secret_name(app);
        if let Some(secret) = caches.secrets.get(&ns, &secret_name)
            && credentials::owned_by(&secret, &client_id)
        {
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
            match secrets.delete(&secret_name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        tracing::info!(app = %format!("{ns}/{}", app.name_any()), consents_revoked = revoked, "app deleted: credentials revoked");
        let finalizers = app.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
        match self.patch_finalizers(app, finalizers).await {
            Err(ReconcileError::Api(kube::Error::Api(e))) if e.code == 404 => Ok(()),
            other => other,
        }
    }

    /// A merge patch carrying the resourceVersion read: fails (409) if the list changed
    /// meanwhile, so another controller's finalizer is never dropped.
    async fn patch_finalizers(&self, app: &InboundApp, finalizers: Vec<String>) -> Result<(), ReconcileError> {
        let api: Api<InboundApp> = Api::namespaced(self.client.clone(), &app.namespace().unwrap_or_default());
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": app.resource_version(), "finalizers": finalizers }
        });
        api.patch(&app.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
        Ok(())
    }

    async fn apply_secret(&self, api: &Api<Secret>, secret: &Secret) -> Result<(), ReconcileError> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(secret)).await?;
        Ok(())
    }

    async fn apply_status<K>(&self, object: &K, status: serde_json::Value) -> Result<(), ReconcileError>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &object.namespace().unwrap_or_default());
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        api.patch_status(&object.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
        Ok(())
    }

    /// A Warning event when an object becomes invalid or its problems change.
    async fn report_invalid<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        before: &[Condition],
        after: &[Condition],
    ) {
        let (Some(now), before) = (status::ready(after), status::ready(before)) else { return };
        if now.reason == "InvalidSpec" && before.is_none_or(|b| b.reason != now.reason || b.message != now.message) {
            self.event(object, EventType::Warning, "InvalidSpec", &now.message).await;
        }
    }

    async fn event<K: Resource<DynamicType = ()>>(&self, object: &K, type_: EventType, reason: &str, note: &str) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(reason, error = %e, "cannot publish event");
        }
    }
}

/// Status access shared by the kinds whose status is only conditions.
pub trait HasConditions {
    fn conditions(&self) -> &[Condition];
    fn observed_generation(&self) -> Option<i64>;
}

macro_rules! has_conditions {
    ($($kind:ty),*) => {$(
        impl HasConditions for $kind {
            fn conditions(&self) -> &[Condition] {
                self.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default()
            }
            fn observed_generation(&self) -> Option<i64> {
                self.status.as_ref().and_then(|s| s.observed_generation)
            }
        }
    )*};
}
has_conditions!(crate::api::Scope, crate::api::ClientGrant, crate::api::ConsentPolicy, crate::api::IdentityProvider);

fn now_seconds() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// RFC 3339 at second precision (metav1.Time).
fn now_rfc3339() -> String {
    jiff::Timestamp::from_second(now_seconds()).expect("now").to_string()
}
