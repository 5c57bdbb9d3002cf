//! `DevelopmentUser`: a static end user for `inbound serve` (quickstart, development, tests).
//!
//! Not a CustomResource: in a cluster, users come from the application's own identity
//! provider. In a manifest folder it is written like the other kinds.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A user who can log in to `inbound serve`. The password is stored only as an argon2 hash
/// (`inbound hash-password` prints one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevelopmentUser {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    pub metadata: kube::core::ObjectMeta,
    pub spec: DevelopmentUserSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevelopmentUserSpec {
    /// Login name.
    pub username: String,
    /// argon2 PHC string, e.g. `$argon2id$v=19$m=19456,t=2,p=1$...`.
    pub password_hash: String,
    /// Roles, checked against `Scope.spec.requiredRoles` and carried in access tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The tenants the user belongs to. An authorization request's `tenant` must be one of
    /// them; a user of exactly one tenant acts in it without asking.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// Roles the user holds only in one tenant (tenant → roles), on top of `roles`, which
    /// hold in every tenant of the user.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tenant_roles: BTreeMap<String, Vec<String>>,
    /// Attributes released by userInfo scopes: `email`, `name`, `given_name`, ...
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}
