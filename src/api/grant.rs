//! `ClientGrant`: what a subject may obtain without a user.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// Scopes, resources and tenants a subject (an InboundApp, or a Kubernetes ServiceAccount)
/// may obtain without a user: checked by client_credentials and ServiceAccount-token
/// exchange.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "inbound.dev",
    version = "v1alpha1",
    kind = "ClientGrant",
    namespaced,
    status = "ClientGrantStatus",
    shortname = "igrant",
    category = "inbound",
    doc = "What an app or ServiceAccount may obtain from inbound without a user.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Subject", type_ = "string", json_path = ".spec.subject.name"),
    printcolumn(name = "Expires", type_ = "string", json_path = ".spec.expiresAt"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Message",
        type_ = "string",
        priority = "1",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClientGrantSpec {
    /// Who receives the grant.
    pub subject: GrantSubject,
    /// Scope strings granted (each must be declared by a Scope in this namespace).
    pub scopes: Vec<String>,
    /// Resources (token audiences, RFC 8707) the subject may obtain tokens for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Tenants the subject may act in; the token carries the one requested.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// RFC 3339 time after which the grant no longer applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub expires_at: Option<String>,
    /// Makes this a delegation grant: the app (the subject) may exchange the tokens of the
    /// users (or workloads) it serves for tokens acting for them (RFC 8693), carrying at
    /// most these scopes and resources, never more than the presented token (and its user's
    /// consent) allows. A
    /// delegation grant gives nothing to client_credentials: acting for a user and acting
    /// as oneself are granted separately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_exchange: Option<TokenExchange>,
}

/// Which subject tokens a delegation grant accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenExchange {
    /// `AccessToken`: access tokens inbound issued to the app, or sent to a resource it
    /// serves (`spec.resourceServer`). `Jwt`: JWTs from the app's `trustedIssuers`, and
    /// ServiceAccount tokens. Default `[AccessToken]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_token_types: Vec<SubjectTokenType>,
}

impl TokenExchange {
    /// Whether subject tokens of `kind` may be exchanged under this grant.
    pub fn accepts(&self, kind: SubjectTokenType) -> bool {
        if self.subject_token_types.is_empty() {
            return kind == SubjectTokenType::AccessToken;
        }
        self.subject_token_types.contains(&kind)
    }
}

/// Kinds of subject tokens (RFC 8693 §3 token types, as inbound accepts them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SubjectTokenType {
    AccessToken,
    Jwt,
}

/// The subject of a grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantSubject {
    /// `InboundApp` or `ServiceAccount`.
    pub kind: SubjectKind,
    /// Name of the InboundApp or ServiceAccount.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the subject; defaults to the grant's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Kinds of grant subjects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SubjectKind {
    InboundApp,
    ServiceAccount,
}

/// Observed state of a ClientGrant; written only by inbound.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientGrantStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
