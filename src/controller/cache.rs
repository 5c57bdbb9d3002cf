//! Watch caches (kube-runtime reflectors) of the inbound.dev kinds and of the Secrets inbound owns.
//!
//! Every event wakes the snapshot loop. While the API server is unreachable the watchers
//! retry with backoff and the stores keep their last contents, so serving continues from the
//! last known configuration.

use std::{fmt::Debug, sync::Arc};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, Resource,
    runtime::{WatchStreamExt, reflector, watcher},
};
use serde::de::DeserializeOwned;
use tokio::{sync::Notify, task::JoinHandle};

use super::credentials::{MANAGED_BY, MANAGED_BY_LABEL};
use super::snapshot::Objects;
use crate::api::{ClientGrant, ConsentPolicy, IdentityProvider, InboundApp, Scope};

/// The stores of one kind: one per watched namespace, or one for all namespaces.
pub struct KindCache<K: Resource + Clone + 'static>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    stores: Vec<reflector::Store<K>>,
}

impl<K> KindCache<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Default,
{
    fn start(
        client: &Client,
        namespaces: &[String],
        config: watcher::Config,
        changed: &Arc<Notify>,
        tasks: &mut Vec<JoinHandle<()>>,
    ) -> Self
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        let apis: Vec<Api<K>> = if namespaces.is_empty() {
            vec![Api::all(client.clone())]
        } else {
            namespaces.iter().map(|ns| Api::namespaced(client.clone(), ns)).collect()
        };
        let mut stores = Vec::new();
        for api in apis {
            let (reader, writer) = reflector::store();
            let stream = reflector(writer, watcher(api, config.clone()).default_backoff());
            let changed = changed.clone();
            tasks.push(tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    if let Err(e) = event {
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

    /// Every cached object, cloned.
    pub fn objects(&self) -> Vec<K> {
        self.stores.iter().flat_map(|s| s.state()).map(|o| (*o).clone()).collect()
    }

    /// The cached object `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let key = reflector::ObjectRef::new(name).within(namespace);
        self.stores.iter().find_map(|s| s.get(&key))
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
    /// which writes them, needs them).
    pub fn start(client: &Client, namespaces: &[String], secrets: bool, tasks: &mut Vec<JoinHandle<()>>) -> Caches {
        let changed = Arc::new(Notify::new());
        let all = watcher::Config::default();
        let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
        Caches {
            apps: KindCache::start(client, namespaces, all.clone(), &changed, tasks),
            scopes: KindCache::start(client, namespaces, all.clone(), &changed, tasks),
            grants: KindCache::start(client, namespaces, all.clone(), &changed, tasks),
            policies: KindCache::start(client, namespaces, all.clone(), &changed, tasks),
            providers: KindCache::start(client, namespaces, all, &changed, tasks),
            secrets: if secrets {
                KindCache::start(client, namespaces, owned, &changed, tasks)
            } else {
                KindCache::empty()
            },
            changed,
        }
    }

    /// Resolves once every cache has listed its objects.
    pub async fn wait_until_ready(&self) {
        self.apps.wait_until_ready().await;
        self.scopes.wait_until_ready().await;
        self.grants.wait_until_ready().await;
        self.policies.wait_until_ready().await;
        self.providers.wait_until_ready().await;
        self.secrets.wait_until_ready().await;
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
