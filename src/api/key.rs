//! Names of namespaced objects, the way the API server keys them.

/// Identifies a namespaced object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// The key of an object (`default` namespace when it names none, as kubectl does).
    pub fn of(meta: &kube::core::ObjectMeta) -> ObjectKey {
        ObjectKey { namespace: namespace_of(meta).to_string(), name: meta.name.clone().unwrap_or_default() }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The namespace of an object, `default` when it names none (as kubectl applies it).
pub fn namespace_of(meta: &kube::core::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}
