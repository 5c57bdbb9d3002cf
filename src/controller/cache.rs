//! Watch caches (kube-runtime reflectors) of the inbound.dev kinds and of the Secrets inbound owns.
//!
//! Every event wakes the snapshot loop. While the API server is unreachable the watchers
//! retry with backoff and the stores keep their last contents, so serving continues from the
//! last known configuration.
//!
//! Objects are decoded one by one ([`Watched`]): a typed list fails as a whole when one item
//! does not fit the types (an object stored before a schema bound existed, or by a newer
//! version), and one author of one object must not keep every replica from starting.

use std::{borrow::Cow, fmt::Debug, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Api, Client, Resource,
    runtime::{WatchStreamExt, reflector, watcher},
};
use prometheus_client::metrics::{counter::Counter, family::Family};
use serde::de::DeserializeOwned;
use tokio::{sync::Notify, task::JoinHandle};

use super::credentials::{MANAGED_BY, MANAGED_BY_LABEL};
use super::snapshot::Objects;
use crate::api::{ClientGrant, Condition, ConsentPolicy, IdentityProvider, InboundApp, ObjectKey, Scope};
use crate::metrics::KindLabels;

/// How long the first listing of the watched kinds may take before the server starts
/// serving with the kinds that did list: a kind that cannot be listed (its CRD missing, a
/// permission withdrawn) must not keep every replica out of service. The kinds that did not
/// list are served as empty, which refuses rather than allows (no grant, no scope, no app),
/// and are named in the log on every pass until they list.
pub const SYNC_PATIENCE: Duration = Duration::from_secs(60);

/// A watched object its kind's types cannot read.
#[derive(Clone, Debug)]
pub struct Undecodable {
    /// Its kind, as the API addresses it.
    pub resource: kube::core::ApiResource,
    pub key: ObjectKey,
    /// What does not decode, with the field path.
    pub error: String,
    pub metadata: kube::core::ObjectMeta,
    /// Its status conditions as stored.
    pub conditions: Vec<crate::api::Condition>,
}

impl Undecodable {
    /// `Kind namespace/name`, as problems and logs name objects.
    pub fn display_name(&self) -> String {
        format!("{} {}", self.resource.kind, self.key)
    }
}

/// One watched object of kind `K`, decoded on its own.
#[derive(Clone, Debug)]
pub struct Watched<K> {
    metadata: ObjectMeta,
    /// The typed object, or why it does not decode (with the path of the offending field).
    pub decoded: Result<K, String>,
    /// The status conditions as stored, read without the rest of the object (what the
    /// controller compares its report of an undecodable object against).
    pub conditions: Vec<Condition>,
}

impl<K> Resource for Watched<K>
where
    K: Resource<DynamicType = ()>,
{
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<'de, K: DeserializeOwned> serde::Deserialize<'de> for Watched<K> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        // Metadata is the API server's (always well-formed); without it there is no object.
        let metadata: ObjectMeta = serde_json::from_value(value.get("metadata").cloned().unwrap_or_default())
            .map_err(|e| D::Error::custom(format!("metadata: {e}")))?;
        let decoded = serde_path_to_error::deserialize::<_, K>(&value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path.is_empty() || path == "." { inner.to_string() } else { format!("{path}: {inner}") }
        });
        let conditions = value
            .pointer("/status/conditions")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default();
        Ok(Watched { metadata, decoded, conditions })
    }
}

/// The stores of one kind: one per watched namespace, or one for all namespaces.
pub struct KindCache<K: Resource<DynamicType = ()> + Clone + 'static> {
    stores: Vec<reflector::Store<Watched<K>>>,
}

impl<K> KindCache<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn start(
        client: &Client,
        namespaces: &[String],
        config: watcher::Config,
        changed: &Arc<Notify>,
        restarts: &Counter,
        tasks: &mut Vec<JoinHandle<()>>,
    ) -> Self
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        let apis: Vec<Api<Watched<K>>> = if namespaces.is_empty() {
            vec![Api::all(client.clone())]
        } else {
            namespaces.iter().map(|ns| Api::namespaced(client.clone(), ns)).collect()
        };
        let mut stores = Vec::new();
        for api in apis {
            let (reader, writer) = reflector::store();
            let stream = reflector(writer, watcher(api, config.clone()).default_backoff());
            let (changed, restarts) = (changed.clone(), restarts.clone());
            tasks.push(tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    if let Err(e) = event {
                        // The watcher lists or watches again after a backoff: a restart.
                        restarts.inc();
                        tracing::warn!(kind = %K::kind(&Default::default()), error = %e, "watch failed; retrying");
                    }
                    changed.notify_one();
                }
            }));
            stores.push(reader);
        }
        KindCache { stores }
    }

    /// A cache that watches nothing (what a process without the permission does not read).
    fn empty() -> Self {
        KindCache { stores: Vec::new() }
    }

    /// Every cached object that decodes, cloned.
    pub fn objects(&self) -> Vec<K> {
        self.stores.iter().flat_map(|s| s.state()).filter_map(|o| o.decoded.clone().ok()).collect()
    }

    /// Every cached object that does not decode: left out of everything, reported on its own.
    pub fn undecodable(&self) -> Vec<Undecodable> {
        let resource = kube::core::ApiResource::erase::<K>(&());
        self.stores
            .iter()
            .flat_map(|s| s.state())
            .filter_map(|o| {
                let error = o.decoded.as_ref().err()?;
                Some(Undecodable {
                    resource: resource.clone(),
                    key: ObjectKey::of(&o.metadata),
                    error: error.clone(),
                    metadata: o.metadata.clone(),
                    conditions: o.conditions.clone(),
                })
            })
            .collect()
    }

    /// The cached object `namespace/name`, if it decodes.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let key = reflector::ObjectRef::new(name).within(namespace);
        let watched = self.stores.iter().find_map(|s| s.get(&key))?;
        watched.decoded.clone().ok().map(Arc::new)
    }

    /// Whether this process watches the kind at all.
    fn watches(&self) -> bool {
        !self.stores.is_empty()
    }

    /// Whether every store has listed its objects once.
    fn synced(&self) -> bool {
        use futures::FutureExt;
        self.stores.iter().all(|s| s.wait_until_ready().now_or_never().is_some())
    }

    async fn wait_until_ready(&self) {
        for store in &self.stores {
            let _ = store.wait_until_ready().await;
        }
    }
}

/// All watch caches of the operator.
pub struct Caches {
    pub apps: KindCache<InboundApp>,
    pub scopes: KindCache<Scope>,
    pub grants: KindCache<ClientGrant>,
    pub policies: KindCache<ConsentPolicy>,
    pub providers: KindCache<IdentityProvider>,
    /// Secrets labelled as managed by inbound (credentials); empty when not watched (the
    /// serving role may not read Secrets).
    pub secrets: KindCache<Secret>,
    pub changed: Arc<Notify>,
}

impl Caches {
    /// `secrets`: whether the credentials Secrets are watched too (only the controller,
    /// which writes them, needs them). Each failure of a watch stream is counted in
    /// `restarts` under its kind.
    pub fn start(
        client: &Client,
        namespaces: &[String],
        secrets: bool,
        restarts: &Family<KindLabels, Counter>,
        tasks: &mut Vec<JoinHandle<()>>,
    ) -> Caches {
        let changed = Arc::new(Notify::new());
        let all = watcher::Config::default();
        let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
        let restarts_of = |kind| restarts.get_or_create(&KindLabels { kind }).clone();
        Caches {
            apps: KindCache::start(client, namespaces, all.clone(), &changed, &restarts_of("InboundApp"), tasks),
            scopes: KindCache::start(client, namespaces, all.clone(), &changed, &restarts_of("Scope"), tasks),
            grants: KindCache::start(client, namespaces, all.clone(), &changed, &restarts_of("ClientGrant"), tasks),
            policies: KindCache::start(client, namespaces, all.clone(), &changed, &restarts_of("ConsentPolicy"), tasks),
            providers: KindCache::start(client, namespaces, all, &changed, &restarts_of("IdentityProvider"), tasks),
            secrets: if secrets {
                KindCache::start(client, namespaces, owned, &changed, &restarts_of("Secret"), tasks)
            } else {
                KindCache::empty()
            },
            changed,
        }
    }

    /// Resolves once every cache has listed its objects, or, after `patience`
    /// ([`SYNC_PATIENCE`]), once at least one has: then the API server answers and the kinds
    /// that do not list are a configuration problem of their own. While none lists (the API
    /// server is unreachable) there is nothing to serve, and it keeps waiting.
    pub async fn wait_until_ready(&self, patience: Duration) {
        let all = async {
            self.apps.wait_until_ready().await;
            self.scopes.wait_until_ready().await;
            self.grants.wait_until_ready().await;
            self.policies.wait_until_ready().await;
            self.providers.wait_until_ready().await;
            self.secrets.wait_until_ready().await;
        };
        tokio::pin!(all);
        if tokio::time::timeout(patience, &mut all).await.is_ok() {
            return;
        }
        loop {
            let listed = self.listed();
            if listed.iter().any(|(_, synced)| *synced) {
                let unsynced = self.unsynced();
                tracing::error!(
                    kinds = ?unsynced,
                    "these kinds could not be listed (CRD installed? RBAC?); serving without them"
                );
                return;
            }
            tokio::select! {
                () = &mut all => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// The watched kinds, each with whether its first listing completed.
    fn listed(&self) -> Vec<(&'static str, bool)> {
        [
            ("InboundApp", self.apps.watches(), self.apps.synced()),
            ("Scope", self.scopes.watches(), self.scopes.synced()),
            ("ClientGrant", self.grants.watches(), self.grants.synced()),
            ("ConsentPolicy", self.policies.watches(), self.policies.synced()),
            ("IdentityProvider", self.providers.watches(), self.providers.synced()),
            ("Secret", self.secrets.watches(), self.secrets.synced()),
        ]
        .into_iter()
        .filter_map(|(kind, watched, synced)| watched.then_some((kind, synced)))
        .collect()
    }

    /// The watched kinds whose first listing has not completed.
    pub fn unsynced(&self) -> Vec<&'static str> {
        self.listed().into_iter().filter_map(|(kind, synced)| (!synced).then_some(kind)).collect()
    }

    /// The objects of every kind that do not decode.
    pub fn undecodable(&self) -> Vec<Undecodable> {
        let mut undecodable = self.apps.undecodable();
        undecodable.extend(self.scopes.undecodable());
        undecodable.extend(self.grants.undecodable());
        undecodable.extend(self.policies.undecodable());
        undecodable.extend(self.providers.undecodable());
        undecodable
    }

    pub fn objects(&self) -> Objects {
        Objects {
            apps: self.apps.objects(),
            scopes: self.scopes.objects(),
            grants: self.grants.objects(),
            policies: self.policies.objects(),
            providers: self.providers.objects(),
        }
    }
}
