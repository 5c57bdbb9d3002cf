//! The leader's pass over every object: validate (done by the snapshot) → build (desired
//! Secret and status) → apply (server-side apply under one field manager) → report (status,
//! events). Objects are reconciled one by one and an error on one never stops the others:
//! it is logged and retried on the next pass.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, Patch, PatchParams},
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::cache::{Caches, Undecodable};
use super::credentials::{self, Endpoints, IssueReason, Plan};
use super::snapshot::{self, Validated};
use super::status::{self, CREDENTIALS_ISSUED, Desired, Reason, Status, Verdict};
use crate::api::{ClientGrant, Condition, IdentityProvider, InboundApp, InboundAppStatus, ObjectKey};
use crate::catalog::UpstreamProvider;
use crate::catalog::manifest::Object;
use crate::metrics::ReconcileFailureLabels;
use crate::protocol::paths;
use crate::secrets::{ClientSecret, SecretHasher};
use crate::store::{ClientIdClaim, Store, StoreError};

/// The one field manager of everything inbound writes.
pub const FIELD_MANAGER: &str = "inbound";
/// On InboundApps: their consents and refresh tokens live outside Kubernetes (the store)
/// and must be revoked when the app is deleted.
pub const FINALIZER: &str = "inbound.dev/cleanup";
/// `inbound.dev/paused: "true"` on any inbound object: the controller writes nothing for it
/// (no Secret issued, repaired or rotated, no store change, no status, no event) until the
/// annotation goes, while it is still served as it stands. For restores and migrations,
/// when the store, the Secrets and the objects come back in an order the controller must
/// not act on. Deletion is still honoured.
pub const PAUSED_ANNOTATION: &str = "inbound.dev/paused";

/// Whether an object is paused ([`PAUSED_ANNOTATION`]).
pub fn paused(meta: &kube::core::ObjectMeta) -> bool {
    meta.annotations.as_ref().and_then(|a| a.get(PAUSED_ANNOTATION)).is_some_and(|v| v.trim() == "true")
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl ReconcileError {
    /// The failure's category as a metric label (one of [`crate::metrics::RECONCILE_ERRORS`]):
    /// what someone paged needs first is whether to fix RBAC, the objects, the API server's
    /// reachability or the database.
    pub fn category(&self) -> &'static str {
        match self {
            ReconcileError::Api(kube::Error::Api(status)) => match status.code {
                401 | 403 => "forbidden",
                // Optimistic concurrency: another writer won; the next pass starts from theirs.
                409 => "conflict",
                400 | 422 => "rejected",
                _ => "kubernetes_api",
            },
            ReconcileError::Api(
                kube::Error::HyperError(_)
                | kube::Error::Service(_)
                | kube::Error::ReadEvents(_)
                | kube::Error::HttpError(_)
                | kube::Error::RustlsTls(_),
            ) => "kubernetes_unreachable",
            ReconcileError::Api(_) => "other",
            ReconcileError::Store(_) => "store",
        }
    }
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
    /// The problem last reported for each undecodable object, by UID.
    reported_undecodable: std::sync::Mutex<HashMap<String, String>>,
    /// Secrets issued and apps deleted are recorded here (nowhere unless set).
    pub audit: Arc<crate::audit::Audit>,
    /// Objects whose reconcile failed, by kind and error category (the server's metrics,
    /// when set).
    pub failures: prometheus_client::metrics::family::Family<
        ReconcileFailureLabels,
        prometheus_client::metrics::counter::Counter,
    >,
    pub recorder: Recorder,
    pub store: Arc<dyn Store>,
    pub hasher: SecretHasher,
    pub issuer: String,
    /// How long a previous client secret works after a rotation, when the app says nothing.
    pub default_overlap: Duration,
    /// The issuer as workloads in the cluster reach it (the Service), for the Secrets.
    pub in_cluster_url: Option<String>,
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
            reported_undecodable: Default::default(),
            store,
            hasher,
            issuer,
            default_overlap,
            in_cluster_url: None,
            audit: Arc::new(crate::audit::Audit::disabled()),
            failures: Default::default(),
        }
    }

    pub async fn reconcile_all(&self, caches: &Caches, validated: &Validated) {
        // Once per pass, not per consent: what `kubectl get inboundapps` shows.
        let consents = match self.store.active_consent_counts(now_seconds()).await {
            Ok(counts) => Some(counts),
            Err(e) => {
                tracing::warn!(error = %e, "cannot count consents; the apps' counts stay as they were");
                None
            }
        };
        for app in caches.apps.objects() {
            let name = format!("InboundApp {}/{}", app.namespace().unwrap_or_default(), app.name_any());
            let result = if app.metadata.deletion_timestamp.is_some() {
                self.finalize_app(&app, caches).await
            } else if paused(&app.metadata) {
                Ok(())
            } else {
                self.reconcile_app(&app, caches, validated, consents.as_ref()).await
            };
            if let Err(e) = result {
                self.failed("InboundApp", &e);
                tracing::warn!(object = %name, error = %e, "reconcile failed; retrying on the next pass");
            }
        }
        for scope in caches.scopes.objects().into_iter().filter(|o| !paused(&o.metadata)) {
            let verdict = plain_verdict(&scope, "Scope", validated);
            self.reconcile_plain(&scope, "Scope", verdict).await;
        }
        let now = now_seconds();
        for grant in caches.grants.objects().into_iter().filter(|o| !paused(&o.metadata)) {
            let verdict = grant_verdict(&grant, validated, now);
            self.reconcile_plain(&grant, "ClientGrant", verdict).await;
        }
        for policy in caches.policies.objects().into_iter().filter(|o| !paused(&o.metadata)) {
            let verdict = plain_verdict(&policy, "ConsentPolicy", validated);
            self.reconcile_plain(&policy, "ConsentPolicy", verdict).await;
        }
        for provider in caches.providers.objects().into_iter().filter(|o| !paused(&o.metadata)) {
            self.reconcile_provider(&provider, validated).await;
        }
        // Paused ones too: a paused app being deleted is still let go (its grants kept).
        let undecodable = caches.undecodable();
        for object in &undecodable {
            if let Err(e) = self.reconcile_undecodable(object).await {
                self.failed(kind_label(&object.resource.kind), &e);
                tracing::warn!(object = %object.display_name(), error = %e, "reconcile failed; retrying on the next pass");
            }
        }
        // What was reported about objects since fixed or deleted is forgotten: a later
        // breakage of the same object is reported again, and the map stays bounded.
        let present: HashSet<&str> = undecodable.iter().filter_map(|o| o.metadata.uid.as_deref()).collect();
        self.reported_undecodable.lock().expect("lock").retain(|uid, _| present.contains(uid.as_str()));
    }

    /// An object the types cannot read: reported as InvalidSpec on its own (nothing else
    /// sees it); an InboundApp among them is still let go when deleted.
    async fn reconcile_undecodable(&self, object: &Undecodable) -> Result<(), ReconcileError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &object.key.namespace, &object.resource);
        if object.metadata.deletion_timestamp.is_some() {
            let finalizers = object.metadata.finalizers.clone().unwrap_or_default();
            if object.resource.kind == "InboundApp" && finalizers.iter().any(|f| f == FINALIZER) {
                if !paused(&object.metadata) {
                    self.forget_deleted_app(&object.metadata).await?;
                }
                let remaining: Vec<String> = finalizers.into_iter().filter(|f| f != FINALIZER).collect();
                let patch = serde_json::json!({
                    "metadata": { "resourceVersion": object.metadata.resource_version, "finalizers": remaining }
                });
                match api.patch(&object.key.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(());
        }
        if paused(&object.metadata) {
            return Ok(());
        }
        let message = format!("cannot be read: {}", object.error);
        let verdict = Verdict::Stalled(Reason::InvalidSpec, message.clone());
        let generation = object.metadata.generation;
        let conditions = status::conditions(&object.conditions, &verdict.conditions(), generation, &now_rfc3339());
        if status::owned(&object.conditions) == conditions {
            return Ok(());
        }
        // Reported once per object and problem: the status write below may be refused (see
        // there), and the event must not repeat on every pass.
        let uid = object.metadata.uid.clone().unwrap_or_default();
        let reported = self.reported_undecodable.lock().expect("lock").get(&uid) == Some(&message);
        if !reported && status::ready(&object.conditions).is_none_or(|c| c.message != message) {
            let reference = ObjectReference {
                api_version: Some(object.resource.api_version.clone()),
                kind: Some(object.resource.kind.clone()),
                name: Some(object.key.name.clone()),
                namespace: Some(object.key.namespace.clone()),
                uid: object.metadata.uid.clone(),
                resource_version: object.metadata.resource_version.clone(),
                ..Default::default()
            };
            self.publish(&reference, EventType::Warning, Reason::InvalidSpec.as_str(), &message).await;
        }
        let patch = serde_json::json!({
            "apiVersion": object.resource.api_version,
            "kind": object.resource.kind,
            "status": { "conditions": conditions, "observedGeneration": generation },
        });
        self.reported_undecodable.lock().expect("lock").insert(uid, message);
        match api
            .patch_status(&object.key.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
            .await
        {
            Ok(_) => Ok(()),
            // An API server without CRD validation ratcheting (before 1.28) validates the
            // whole stored object on a status write, and this one no longer passes its
            // schema: the event and the log are all the report it can get.
            Err(kube::Error::Api(e)) if e.code == 422 => {
                tracing::warn!(object = %object.display_name(), error = %object.error, "cannot be read, nor its status written; fix or delete it");
                Ok(())
            }
            Err(e) => Err(e.into()),
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
        let verdict = match validated.message(&object_name) {
            Some(message) => Verdict::Stalled(Reason::InvalidSpec, message),
            None => {
                let upstream = UpstreamProvider { key: key.clone(), spec: provider.spec.clone() };
                match (&provider.spec.oidc, &provider.spec.application) {
                    (Some(oidc), _) => match self.check_provider(&upstream, provider.metadata.generation).await {
                        Ok(()) => Verdict::Ready(
                            Reason::Discovered,
                            format!("{} answered discovery and JWKS; users can sign in", oidc.issuer),
                        ),
                        Err(reason) => Verdict::Waiting(Reason::UpstreamUnavailable, reason),
                    },
                    (None, Some(application)) => Verdict::Ready(
                        Reason::Valid,
                        format!(
                            "users sign in at {}, accepted by InboundApp {}",
                            application.login_url, application.client
                        ),
                    ),
                    (None, None) => Verdict::Stalled(Reason::InvalidSpec, "no identity source".into()),
                }
            }
        };
        let current = provider.conditions();
        let conditions =
            status::conditions(current, &verdict.conditions(), provider.metadata.generation, &now_rfc3339());
        let result = async {
            self.report_invalid(provider, current, &conditions).await;
            let (before, after) = (status::ready(current), status::ready(&conditions));
            if let Some(after) = after
                && after.reason == Reason::UpstreamUnavailable.as_str()
                && before.is_none_or(|b| b.reason != after.reason || b.message != after.message)
            {
                self.event(provider, EventType::Warning, Reason::UpstreamUnavailable.as_str(), &after.message).await;
            }
            if status::owned(current) == conditions && provider.observed_generation() == provider.metadata.generation {
                return Ok(());
            }
            let status =
                serde_json::json!({ "conditions": conditions, "observedGeneration": provider.metadata.generation });
            self.apply_status(provider, status).await
        }
        .await;
        if let Err(e) = result {
            self.failed("IdentityProvider", &e);
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

    /// Scopes, grants and policies: only the summary conditions.
    async fn reconcile_plain<K>(&self, object: &K, kind: &str, verdict: Verdict)
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
        let current = object.conditions();
        let conditions = status::conditions(current, &verdict.conditions(), object.meta().generation, &now_rfc3339());
        let result = async {
            self.report_invalid(object, current, &conditions).await;
            if status::owned(current) == conditions && object.observed_generation() == object.meta().generation {
                return Ok(());
            }
            let status =
                serde_json::json!({ "conditions": conditions, "observedGeneration": object.meta().generation });
            self.apply_status(object, status).await
        }
        .await;
        if let Err(e) = result {
            self.failed(kind_label(kind), &e);
            tracing::warn!(object = %object_name, error = %e, "cannot write status; retrying on the next pass");
        }
    }

    async fn reconcile_app(
        &self,
        app: &InboundApp,
        caches: &Caches,
        validated: &Validated,
        consents: Option<&HashMap<String, u32>>,
    ) -> Result<(), ReconcileError> {
        self.ensure_finalizer(app).await?;
        let ns = app.namespace().unwrap_or_default();
        let object_name = format!("InboundApp {ns}/{}", app.name_any());
        let client_id = app.client_id().unwrap_or_default().to_string();
        let current = app.status.clone().unwrap_or_default();
        let invalid = validated.message(&object_name);
        let refused = match (&invalid, &app.spec.client_id) {
            (None, Some(id)) => self.claim_client_id(app, id).await?,
            _ => None,
        };
        let confidential = app.spec.client_type == crate::api::ClientType::Confidential;
        let mut status = InboundAppStatus {
            client_id: refused.is_none().then(|| client_id.clone()),
            issuer: Some(self.issuer.clone()),
            discovery_url: Some(format!("{}{}", self.issuer, paths::OIDC_DISCOVERY)),
            authorize_url: Some(format!("{}{}", self.issuer, paths::AUTHORIZE)),
            token_url: Some(format!("{}{}", self.issuer, paths::TOKEN)),
            secret_name: confidential.then(|| credentials::secret_name(app)),
            observed_generation: app.metadata.generation,
            conditions: Vec::new(),
            // Kept as they were unless this pass issues a secret.
            secret_issued_at: current.secret_issued_at.clone(),
            previous_secret_valid_until: current.previous_secret_valid_until.clone(),
            active_consents: match consents {
                Some(counts) if refused.is_none() => Some(counts.get(&client_id).copied().unwrap_or(0)),
                Some(_) => None,
                None => current.active_consents,
            },
        };
        if snapshot::client_type_changed(app).is_some() {
            // What the status says the app was is the record of it: kept until the change
            // is undone.
            status.secret_name = current.secret_name.clone();
        }
        let (verdict, credentials) = if let Some(message) = invalid {
            (Verdict::Stalled(Reason::InvalidSpec, message), None)
        } else if let Some(verdict) = refused {
            (verdict, None)
        } else if !confidential {
            (Verdict::Ready(Reason::Valid, format!("public client {client_id} is served")), None)
        } else {
            let mut times = SecretTimes {
                issued_at: current.secret_issued_at.clone(),
                previous_valid_until: current.previous_secret_valid_until.clone(),
            };
            let (verdict, issued) = self.reconcile_credentials(app, caches, &current.conditions, &mut times).await;
            status.secret_issued_at = times.issued_at;
            status.previous_secret_valid_until = times.previous_valid_until;
            (verdict, Some(issued))
        };
        let verdict = match verdict {
            Verdict::Ready(..) if signs_users_in(app) && !has_identity_source(validated) => Verdict::Waiting(
                Reason::NoIdentitySource,
                "no IdentityProvider is ready in the cluster: nobody can sign in to this app yet".into(),
            ),
            other => other,
        };
        let mut desired = verdict.conditions();
        desired.extend(credentials);
        status.conditions = status::conditions(&current.conditions, &desired, app.metadata.generation, &now_rfc3339());
        self.report_invalid(app, &current.conditions, &status.conditions).await;
        let before = InboundAppStatus { conditions: status::owned(&current.conditions), ..current.clone() };
        if status == before {
            return Ok(());
        }
        let status = serde_json::to_value(&status).expect("status serializes");
        self.apply_status(app, status).await
    }

    /// Claims the app's declared client id; the verdict when it cannot have it.
    async fn claim_client_id(&self, app: &InboundApp, id: &str) -> Result<Option<Verdict>, ReconcileError> {
        let key = ObjectKey::of(&app.metadata);
        Ok(match self.store.claim_client_id(id, &key, now_seconds()).await? {
            ClientIdClaim::Held => None,
            ClientIdClaim::TakenBy(holder) => Some(Verdict::Stalled(
                Reason::ClientIdTaken,
                format!("client id {id} is held by InboundApp {holder}, which claimed it first; choose another"),
            )),
            ClientIdClaim::AppHolds(held) => Some(Verdict::Stalled(
                Reason::InvalidSpec,
                format!("spec.clientId: is immutable: this app holds client id {held}; restore that value"),
            )),
        })
    }

    /// Issues, repairs or rotates the credentials Secret; returns the verdict and the
    /// CredentialsIssued condition.
    async fn reconcile_credentials(
        &self,
        app: &InboundApp,
        caches: &Caches,
        current: &[Condition],
        times: &mut SecretTimes,
    ) -> (Verdict, Desired) {
        match self.credentials(app, caches, current, times).await {
            Ok(outcome) => outcome,
            // The store or the API server failed us: says nothing about the app. Unknown,
            // and retried on the next pass.
            Err(e) => {
                tracing::warn!(app = %app.name_any(), error = %e, "cannot issue credentials");
                (
                    Verdict::Retrying(Reason::CredentialsPending, format!("cannot issue credentials yet: {e}")),
                    Desired {
                        type_: CREDENTIALS_ISSUED,
                        status: Status::Unknown,
                        reason: Reason::Pending,
                        message: e.to_string(),
                    },
                )
            }
        }
    }

    async fn credentials(
        &self,
        app: &InboundApp,
        caches: &Caches,
        current: &[Condition],
        times: &mut SecretTimes,
    ) -> Result<(Verdict, Desired), ReconcileError> {
        let ns = app.namespace().unwrap_or_default();
        let secret_name = credentials::secret_name(app);
        let client_id = app.client_id().unwrap_or_default().to_string();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        // The cache only holds Secrets labelled as ours: look for an unlabelled one (someone
        // else's) before writing under that name.
        let mut existing = match caches.secrets.get(&ns, &secret_name) {
            Some(secret) => Some((*secret).clone()),
            None => secrets.get_opt(&secret_name).await?,
        };
        let uid = app.metadata.uid.as_deref().unwrap_or_default();
        if let Some(secret) = existing.as_mut()
            && !credentials::owned_by(secret, uid)
            && credentials::adoption_requested(app)
        {
            // Its old owner references go first: an apply would add ours beside them, and an
            // object has at most one controller. The resourceVersion makes this fail rather
            // than drop an owner someone set meanwhile.
            let patch = serde_json::json!({
                "metadata": { "resourceVersion": secret.metadata.resource_version, "ownerReferences": null }
            });
            secrets.patch(&secret_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            secret.metadata.owner_references = None;
            let note = format!("Secret {secret_name} adopted (inbound.dev/adopt-secret)");
            self.event(app, EventType::Normal, "SecretAdopted", &note).await;
        }
        let now = now_seconds();
        let hashes = self.store.client_secret_hashes(&client_id, now).await?;
        let endpoints = Endpoints {
            issuer: self.issuer.clone(),
            token_url: format!("{}{}", self.issuer, paths::TOKEN),
            discovery_url: format!("{}{}", self.issuer, paths::OIDC_DISCOVERY),
            jwks_uri: format!("{}{}", self.issuer, paths::JWKS),
            in_cluster_token_url: self.in_cluster_url.as_ref().map(|url| format!("{url}{}", paths::TOKEN)),
        };
        // A Secret of this app under another name: where the credentials were before a rename.
        let previous = existing.is_none().then(|| {
            caches.secrets.objects().into_iter().find(|s| {
                s.metadata.namespace.as_deref() == Some(ns.as_str())
                    && s.metadata.name.as_deref() != Some(secret_name.as_str())
                    && credentials::owned_by(s, uid)
            })
        });
        let previous = previous.flatten();
        let plan =
            credentials::plan(app, existing.as_ref(), previous.as_ref(), hashes.first(), &self.hasher, &endpoints);
        let issued_reason = current
            .iter()
            .find(|c| c.type_ == CREDENTIALS_ISSUED && c.status == "True")
            .and_then(|c| Some((Reason::parse(&c.reason)?, c.message.clone())))
            .unwrap_or_else(|| (Reason::Issued, format!("Secret {secret_name} holds the credentials")));
        let (reason, message) = match plan {
            Plan::Conflict(message) => {
                if !status::ready_because(current, Reason::SecretConflict) {
                    self.event(app, EventType::Warning, Reason::SecretConflict.as_str(), &message).await;
                }
                return Ok((
                    Verdict::Stalled(Reason::SecretConflict, message.clone()),
                    Desired {
                        type_: CREDENTIALS_ISSUED,
                        status: Status::False,
                        reason: Reason::SecretConflict,
                        message,
                    },
                ));
            }
            Plan::Keep => issued_reason,
            Plan::Adopt => {
                let plaintext = existing.as_ref().and_then(|s| credentials::client_secret(app, s)).unwrap_or_default();
                self.store.rotate_client_secret(&client_id, &self.hasher.hash(&plaintext), now, now).await?;
                tracing::warn!(app = %app.name_any(), "the store had no client secret for this app; kept the one in its Secret");
                issued_reason
            }
            Plan::Move(old_name) => {
                let old = previous.as_ref().expect("a move has a previous Secret");
                let plaintext = credentials::held_secret(app, old, hashes.first(), &self.hasher).unwrap_or_default();
                let rotated_for = credentials::rotated_for(old);
                let desired = credentials::desired_secret(app, &plaintext, &endpoints, rotated_for.as_deref());
                // The new Secret first: workloads reading either name never find neither.
                self.apply_secret(&secrets, &desired).await?;
                match secrets.delete(&old_name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
                let note =
                    format!("credentials moved from Secret {old_name} to {secret_name}; the old Secret is deleted");
                self.event(app, EventType::Normal, "SecretMoved", &note).await;
                (Reason::Issued, format!("Secret {secret_name} holds the credentials"))
            }
            Plan::Repair => {
                let plaintext = existing
                    .as_ref()
                    .and_then(|s| credentials::held_secret(app, s, hashes.first(), &self.hasher))
                    .unwrap_or_default();
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
                times.issued_at = Some(now_rfc3339());
                times.previous_valid_until = (previous_until > now).then(|| until.clone());
                self.audit.emit(crate::audit::Event::ClientSecretIssued {
                    app: format!("{ns}/{}", app.name_any()),
                    client_id: client_id.clone(),
                    reason: match &why {
                        IssueReason::First => "first".into(),
                        IssueReason::Rotation => "rotation".into(),
                        IssueReason::Lost(_) => "lost".into(),
                    },
                    previous_valid_until: (previous_until > now).then_some(previous_until),
                });
                match why {
                    IssueReason::First => {
                        let note = format!("client secret written to Secret {secret_name}");
                        self.event(app, EventType::Normal, "CredentialsIssued", &note).await;
                        (Reason::Issued, format!("Secret {secret_name} holds the credentials"))
                    }
                    IssueReason::Rotation => {
                        let note =
                            format!("new client secret in Secret {secret_name}; the previous one works until {until}");
                        self.event(app, EventType::Normal, "SecretRotated", &note).await;
                        (Reason::Rotated, note)
                    }
                    IssueReason::Lost(cause) => {
                        let note = format!(
                            "{cause}: new client secret in Secret {secret_name}; the previous one works until {until}"
                        );
                        self.event(app, EventType::Warning, "SecretRestored", &note).await;
                        (Reason::Reissued, note)
                    }
                }
            }
        };
        Ok((
            Verdict::Ready(Reason::Valid, format!("client {client_id} is served; credentials in Secret {secret_name}")),
            Desired { type_: CREDENTIALS_ISSUED, status: Status::True, reason, message },
        ))
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
        let finalizers = app.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
        if paused(&app.metadata) {
            // Deleted while paused (a move, a restore): its consents, refresh tokens, secret
            // hashes and client id claim stay, for the object that comes back under the same
            // name.
            tracing::info!(app = %format!("{ns}/{}", app.name_any()), "paused app deleted: its grants are kept");
            return match self.patch_finalizers(app, finalizers).await {
                Err(ReconcileError::Api(kube::Error::Api(e))) if e.code == 404 => Ok(()),
                other => other,
            };
        }
        let revoked = self.forget_deleted_app(&app.metadata).await?;
        let secret_name = credentials::secret_name(app);
        if let Some(secret) = caches.secrets.get(&ns, &secret_name)
            && credentials::owned_by(&secret, app.metadata.uid.as_deref().unwrap_or_default())
        {
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
            match secrets.delete(&secret_name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        tracing::info!(app = %format!("{ns}/{}", app.name_any()), consents_revoked = revoked, "app deleted: credentials revoked");
        match self.patch_finalizers(app, finalizers).await {
            Err(ReconcileError::Api(kube::Error::Api(e))) if e.code == 404 => Ok(()),
            other => other,
        }
    }

    /// Revokes what a deleted app was granted, under the client id it really had: the id
    /// it held a claim on, else its UID. Never the id it merely named: an app refused as
    /// `ClientIdTaken` and then deleted must not take the holder's grants with it.
    async fn forget_deleted_app(&self, metadata: &kube::core::ObjectMeta) -> Result<u64, ReconcileError> {
        let key = ObjectKey::of(metadata);
        let released = self.store.release_client_id(&key).await?;
        let client_id = released.or_else(|| metadata.uid.clone()).unwrap_or_default();
        let consents_revoked = self.store.forget_client(&client_id, now_seconds()).await?;
        self.audit.emit(crate::audit::Event::AppDeleted { app: key.to_string(), client_id, consents_revoked });
        Ok(consents_revoked)
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

    /// A Warning event when an object becomes invalid or expired, or its problems change.
    async fn report_invalid<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        before: &[Condition],
        after: &[Condition],
    ) {
        let (Some(now), before) = (status::ready(after), status::ready(before)) else { return };
        let reported = [Reason::InvalidSpec.as_str(), Reason::Expired.as_str()];
        if reported.contains(&now.reason.as_str())
            && before.is_none_or(|b| b.reason != now.reason || b.message != now.message)
        {
            self.event(object, EventType::Warning, &now.reason, &now.message).await;
        }
    }

    async fn event<K: Resource<DynamicType = ()>>(&self, object: &K, type_: EventType, reason: &str, note: &str) {
        self.publish(&object.object_ref(&()), type_, reason, note).await;
    }

    fn failed(&self, kind: &'static str, error: &ReconcileError) {
        self.failures.get_or_create(&ReconcileFailureLabels { kind, error: error.category() }).inc();
    }

    async fn publish(&self, reference: &ObjectReference, type_: EventType, reason: &str, note: &str) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, reference).await {
            tracing::warn!(reason, error = %e, "cannot publish event");
        }
    }
}

/// A kind as a metric label: one of a fixed set.
fn kind_label(kind: &str) -> &'static str {
    match kind {
        "InboundApp" => "InboundApp",
        "Scope" => "Scope",
        "ClientGrant" => "ClientGrant",
        "ConsentPolicy" => "ConsentPolicy",
        "IdentityProvider" => "IdentityProvider",
        _ => "other",
    }
}

/// The rotation times the app's status reports.
struct SecretTimes {
    issued_at: Option<String>,
    previous_valid_until: Option<String>,
}

/// Scopes and policies: served when valid.
fn plain_verdict<K: Resource<DynamicType = ()>>(object: &K, kind: &str, validated: &Validated) -> Verdict {
    let object_name = format!("{kind} {}", ObjectKey::of(object.meta()));
    match validated.message(&object_name) {
        Some(message) => Verdict::Stalled(Reason::InvalidSpec, message),
        None => Verdict::Ready(Reason::Valid, format!("{kind} is served")),
    }
}

/// A valid grant past its `expiresAt` grants nothing (the token endpoint checks the time
/// itself); it says so until someone extends or deletes it.
fn grant_verdict(grant: &ClientGrant, validated: &Validated, now: i64) -> Verdict {
    let verdict = plain_verdict(grant, "ClientGrant", validated);
    match (&verdict, grant_expiry(grant)) {
        (Verdict::Ready(..), Some(at)) if at <= now => Verdict::Stalled(
            Reason::Expired,
            format!(
                "expired at {}: grants nothing; extend spec.expiresAt or delete it",
                grant.spec.expires_at.as_deref().unwrap_or_default()
            ),
        ),
        _ => verdict,
    }
}

/// A grant's `expiresAt` in seconds, when it has a readable one.
pub fn grant_expiry(grant: &ClientGrant) -> Option<i64> {
    let at = grant.spec.expires_at.as_deref()?.parse::<jiff::Timestamp>().ok()?;
    Some(at.as_second())
}

/// Apps whose users sign in (what needs an identity source).
fn signs_users_in(app: &InboundApp) -> bool {
    app.spec.grant_types.iter().any(|g| g.signs_users_in())
}

/// Whether the served configuration has an identity source users can sign in through.
fn has_identity_source(validated: &Validated) -> bool {
    validated.manifests.iter().any(|m| matches!(m.object, Object::Provider(_)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::manifest::parse_file;

    fn grant(expires_at: &str) -> (ClientGrant, Validated) {
        let yaml = format!(
            "apiVersion: inbound.dev/v1alpha1\nkind: ClientGrant\nmetadata: {{name: g, namespace: ns}}\nspec: {{subject: {{kind: ServiceAccount, name: w}}, scopes: [], expiresAt: '{expires_at}'}}\n"
        );
        let (manifests, problems) = parse_file("g.yaml", &yaml);
        assert!(problems.is_empty(), "{problems:?}");
        let Object::Grant(grant) = manifests[0].object.clone() else { unreachable!() };
        (*grant, Validated::default())
    }

    #[test]
    fn an_expired_grant_is_stalled_from_its_expiry_on() {
        let (g, validated) = grant("2020-01-01T00:00:00Z");
        let at = grant_expiry(&g).unwrap();
        assert!(matches!(grant_verdict(&g, &validated, at - 1), Verdict::Ready(Reason::Valid, _)));
        match grant_verdict(&g, &validated, at) {
            Verdict::Stalled(Reason::Expired, message) => {
                assert!(message.starts_with("expired at 2020-01-01T00:00:00Z"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn paused_only_when_the_annotation_says_true() {
        let mut meta = kube::core::ObjectMeta::default();
        assert!(!paused(&meta));
        for (value, expected) in [("true", true), (" true ", true), ("false", false), ("", false)] {
            meta.annotations = Some([(PAUSED_ANNOTATION.to_string(), value.to_string())].into());
            assert_eq!(paused(&meta), expected, "{value:?}");
        }
    }

    #[test]
    fn failures_fall_into_the_fixed_error_categories() {
        let api =
            |code| ReconcileError::Api(kube::Error::Api(kube::core::Status::failure("x", "y").with_code(code).boxed()));
        let cases = [
            (api(403), "forbidden"),
            (api(409), "conflict"),
            (api(422), "rejected"),
            (api(500), "kubernetes_api"),
            (ReconcileError::Api(kube::Error::ReadEvents(std::io::Error::other("reset"))), "kubernetes_unreachable"),
            (ReconcileError::Api(kube::Error::LinesCodecMaxLineLengthExceeded), "other"),
            (ReconcileError::Store(StoreError::Unavailable("down".into())), "store"),
        ];
        for (error, category) in cases {
            assert_eq!(error.category(), category, "{error}");
            assert!(crate::metrics::RECONCILE_ERRORS.contains(&category), "{category} is not pre-initialised");
        }
    }
}
