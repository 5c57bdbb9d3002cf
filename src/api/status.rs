//! Status conditions shared by every kind, in the shape of `metav1.Condition`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One observation of the state of a resource (Kubernetes `metav1.Condition` shape).
///
/// `lastTransitionTime` changes only when `status` flips, so that `kubectl describe` tells
/// how long a resource has been in its current state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready` or `CredentialsIssued`.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 316))]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[schemars(extend("enum" = ["True", "False", "Unknown"]))]
    pub status: String,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339 time of the last change of `status`.
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: String,
    /// CamelCase reason, e.g. `Valid`, `InvalidSpec`, `SecretConflict`.
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"))]
    pub reason: String,
    /// Human-readable message (may be empty); names the offending field when the spec is
    /// invalid.
    #[schemars(length(max = 32768))]
    pub message: String,
}
