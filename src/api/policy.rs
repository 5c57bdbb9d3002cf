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
}

/// Observed state of a ConsentPolicy; written only by inbound.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsentPolicyStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
