//! `Scope`: one permission or user-information scope.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// A scope an app can be granted: a permission on the application's API, or the release of
/// one user attribute.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "inbound.dev",
    version = "v1alpha1",
    kind = "Scope",
    namespaced,
    status = "ScopeStatus",
    shortname = "iscope",
    category = "inbound",
    doc = "A permission or user-information scope of the inbound authorization server.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Scope", type_ = "string", json_path = ".spec.scope"),
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Message",
        type_ = "string",
        priority = "1",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ScopeSpec {
    /// The scope string as it appears in requests and tokens, e.g. `billing:read`.
    #[schemars(length(min = 1, max = 256))]
    pub scope: String,
    /// Shown to the user on the consent screen.
    #[schemars(length(min = 1))]
    pub description: String,
    /// `permission` (default) or `userInfo`.
    #[serde(default)]
    pub kind: ScopeKind,
    /// Roles a user must hold to grant this scope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_roles: Vec<String>,
    /// For `userInfo` scopes: the user attribute released (e.g. `email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_attribute: Option<String>,
    /// The resource (token audience) this scope belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// `user` (default): each user grants it for themselves (or a tenant administrator for
    /// every member). `tenant`: access to the tenant's data, granted only by an
    /// administrator of the tenant (`ConsentPolicy.spec.consent.tenantAdminRoles`) for the
    /// whole tenant; tokens carry it only in that tenant.
    #[serde(default)]
    pub level: ScopeLevel,
    /// Mandatory scopes cannot be unchecked on the consent screen.
    #[serde(default)]
    pub mandatory: bool,
    /// Listed in the discovery document's `scopes_supported`. Off by default: in a cluster
    /// many teams share, the metadata would otherwise publish every team's permissions
    /// (RFC 8414 §2 lets a server leave supported scopes out).
    #[serde(default)]
    pub advertised: bool,
}

/// What a scope grants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ScopeKind {
    #[default]
    Permission,
    UserInfo,
}

/// Who grants a scope: each user, or a tenant's administrator for the whole tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ScopeLevel {
    #[default]
    User,
    Tenant,
}

/// Observed state of a Scope; written only by inbound.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScopeStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
