//! `ConsentPolicy`: how consent works for the apps it selects.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, DurationString};

/// How consent works for the apps it selects: mandatory and optional scopes, consent
/// durations, first-party apps.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "inbound.dev",
    version = "v1alpha1",
    kind = "ConsentPolicy",
    namespaced,
    status = "ConsentPolicyStatus",
    shortname = "ipolicy",
    category = "inbound",
    doc = "How consent and self-registration work for the inbound apps it selects.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Message",
        type_ = "string",
        priority = "1",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ConsentPolicySpec {
    /// Which apps of this namespace the policy applies to; empty selects all of them.
    #[serde(default)]
    pub app_selector: AppSelector,
    /// Consent rules.
    #[serde(default)]
    pub consent: ConsentSettings,
    /// Self-registration: Dynamic Client Registration (RFC 7591) and Client ID Metadata
    /// Documents. At most one ConsentPolicy (cluster-wide) may enable it; the clients it
    /// admits live in the store, never in etcd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<RegistrationSettings>,
}

/// How clients register themselves (MCP clients, AI agents).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationSettings {
    /// Enables `POST /register` (RFC 7591) and its management endpoints (RFC 7592).
    #[serde(default)]
    pub dynamic: bool,
    /// Scopes self-registered clients may request; `mandatory` ones are part of every
    /// consent they ask for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_scopes: Vec<ApprovedScope>,
    /// What a registration without `scope` gets: `allow` (tokens carry no scopes) or
    /// `reject` (`invalid_client_metadata`).
    #[serde(default)]
    pub empty_scope: EmptyScope,
    /// Redirect URIs a self-registered client may use: exact URLs or patterns with `*`
    /// inside one host label or one path segment (never across the scheme or host).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uri_patterns: Vec<String>,
    /// Resources (RFC 8707 resource indicators, e.g. an MCP server's canonical URL) these
    /// clients may obtain tokens for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Registration limits.
    #[serde(default)]
    pub limits: RegistrationLimits,
    /// Clients unused for this long are deleted with their consents and tokens (they get
    /// `invalid_client` and register again). Default `30d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reap_after: Option<DurationString>,
    /// Client ID Metadata Documents: an https `client_id` naming a JSON document.
    #[serde(default)]
    pub client_id_metadata_documents: MetadataDocumentSettings,
}

/// A scope self-registered clients may request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovedScope {
    pub scope: String,
    /// Always part of the consent, whether requested or not.
    #[serde(default)]
    pub mandatory: bool,
}

/// Handling of registrations without `scope`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum EmptyScope {
    /// The client is registered; its tokens carry no scopes (mandatory scopes aside).
    #[default]
    Allow,
    /// The registration is refused with `invalid_client_metadata`.
    Reject,
}

/// Bounds on self-registration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationLimits {
    /// Registered clients at most (identical public registrations count once).
    #[serde(default = "default_max_clients")]
    #[schemars(range(max = 10_000_000))]
    pub max_clients: u32,
    /// New registrations per hour from one source address.
    #[serde(default = "default_per_source")]
    #[schemars(range(max = 1_000_000))]
    pub per_source_per_hour: u32,
    /// New registrations per hour in total.
    #[serde(default = "default_total")]
    #[schemars(range(max = 1_000_000))]
    pub total_per_hour: u32,
}

fn default_max_clients() -> u32 {
    10_000
}
fn default_per_source() -> u32 {
    20
}
fn default_total() -> u32 {
    1_000
}

impl Default for RegistrationLimits {
    fn default() -> Self {
        RegistrationLimits {
            max_clients: default_max_clients(),
            per_source_per_hour: default_per_source(),
            total_per_hour: default_total(),
        }
    }
}

/// Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetadataDocumentSettings {
    #[serde(default)]
    pub enabled: bool,
    /// Hosts whose documents are accepted: `app.example.com` or `*.example.com`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_domains: Vec<String>,
    /// Allows documents on private, loopback and link-local addresses (and plain http on
    /// loopback). Off by default: a client id must not make the server fetch internal URLs.
    #[serde(default)]
    pub allow_private_addresses: bool,
}

/// Selects InboundApps by name or by label.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppSelector {
    /// InboundApp names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Labels an InboundApp must carry, all of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// Consent rules of a policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsentSettings {
    /// Scopes the user cannot uncheck (each must be declared by a Scope).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mandatory_scopes: Vec<String>,
    /// Durations the user may choose from for a consent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub durations: Vec<DurationString>,
    /// Duration preselected on the consent screen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_duration: Option<DurationString>,
    /// Upper bound of any consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<DurationString>,
    /// Tenant-admin consent: a user holding one of these roles in a tenant (a role of the
    /// user's, or one of their `tenantRoles` there) may grant the app's scopes for every
    /// member of that tenant, and is the only one who can grant `level: tenant` scopes.
    /// Empty: nobody can, and tenant-level scopes are never granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenant_admin_roles: Vec<String>,
}

/// Observed state of a ConsentPolicy; written only by inbound.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsentPolicyStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
