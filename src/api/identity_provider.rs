//! `IdentityProvider`: where end users sign in — an upstream OpenID Provider that `inbound`
//! is a relying party of (Entra ID, Okta, Google, Keycloak, Dex, Auth0...).
//!
//! Deciding who users are is cluster-wide trust: an IdentityProvider is honoured only in
//! the operator's namespace (or the one its configuration names), and the Secret holding
//! its client secret is read only there.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// An identity source for end-user sign-in.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "inbound.dev",
    version = "v1alpha1",
    kind = "IdentityProvider",
    namespaced,
    status = "IdentityProviderStatus",
    shortname = "idp",
    category = "inbound",
    doc = "Where end users of inbound sign in: an upstream OpenID Provider or the application's own login page.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Display Name", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "Issuer", type_ = "string", json_path = ".spec.oidc.issuer"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Message",
        type_ = "string",
        priority = "1",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderSpec {
    /// Shown on the login page: "Continue with <displayName>".
    #[schemars(length(min = 1, max = 100))]
    pub display_name: String,
    /// An upstream OpenID Provider (OpenID Connect Core, authorization code flow). Exactly
    /// one of `oidc` and `application`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcProvider>,
    /// The application's own login page (application-hosted login): the browser goes there
    /// with a one-time `login_challenge`, and the application accepts it over the back
    /// channel (`POST /login/accept`) as the InboundApp named here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<ApplicationLogin>,
    /// How the upstream's claims become the user's subject, name, tenant, roles and
    /// attributes.
    #[serde(default)]
    pub claims: ClaimMapping,
    /// Home-realm discovery: a `login_hint` with an email address in one of these domains
    /// (exact, or `*.example.com`) goes straight to this provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_domains: Vec<String>,
    /// Home-realm discovery: an authorization request for one of these tenants goes
    /// straight to this provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
}

/// The upstream OpenID Provider and `inbound`'s client registration there.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcProvider {
    /// The issuer identifier; its `/.well-known/openid-configuration` must name exactly
    /// this issuer (OpenID Connect Discovery §4.3).
    pub issuer: String,
    /// `inbound`'s client id at the upstream.
    pub client_id: String,
    /// `inbound`'s client secret at the upstream (sent with `client_secret_basic`). Without
    /// one, `inbound` is a public client there (PKCE only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretSource>,
    /// Scopes requested from the upstream; `openid` is always sent.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Also read the upstream's UserInfo endpoint (for providers that keep claims such as
    /// `groups` out of the ID token).
    #[serde(default)]
    pub userinfo: bool,
    /// ID token signature algorithms accepted (default: RS256, ES256, PS256). `none` and
    /// symmetric algorithms are never accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_token_signing_algs: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}

/// Application-hosted login.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationLogin {
    /// The application's login page; `login_challenge=...` is added to its query.
    pub login_url: String,
    /// The InboundApp (in this namespace, confidential) whose client credentials accept
    /// challenges: only it may say who signed in through this provider.
    pub client: String,
}

/// Where a secret value comes from: a key of a Kubernetes Secret in the same namespace (a
/// cluster), or a file or environment variable (`inbound serve`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretSource {
    /// A key of a Secret in the IdentityProvider's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// A file (folder mode), relative to the configuration folder; surrounding whitespace
    /// is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// An environment variable of the server process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

/// A key of a Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// How upstream claims map to `inbound`'s user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimMapping {
    /// The claim that identifies the user at the upstream (default `sub`; `oid` for Entra
    /// ID). `inbound`'s own `sub` is derived from it and the provider, so users of two
    /// providers never collide.
    #[serde(default = "default_subject_claim")]
    pub subject: String,
    /// The claim shown as the user's name on pages (default: `preferred_username`, else
    /// `email`, else the subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The user's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantMapping>,
    /// The user's roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<RoleMapping>,
    /// User attributes (released by userInfo Scopes) by the claim they come from, e.g.
    /// `email: email`, `name: name`. Default: `email`, `email_verified`, `name`.
    #[serde(default = "default_attributes")]
    pub attributes: BTreeMap<String, String>,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            subject: default_subject_claim(),
            username: None,
            tenant: None,
            roles: None,
            attributes: default_attributes(),
        }
    }
}

fn default_subject_claim() -> String {
    "sub".into()
}

fn default_attributes() -> BTreeMap<String, String> {
    ["email", "email_verified", "name"].map(|a| (a.to_string(), a.to_string())).into()
}

/// Where the user's tenants come from: a claim holding one tenant (e.g. Entra ID's `tid`)
/// or a list of them (e.g. `organizations`), or one fixed value for every user of this
/// provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A claim holding the user's roles per tenant, as an object from tenant to a role or a
    /// list of roles (e.g. `{"acme": ["admin"], "globex": "viewer"}`). Only tenants the user
    /// belongs to count; `roles.values` maps these values too when it is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles_claim: Option<String>,
}

/// Roles from a claim holding a string or a list of strings (e.g. `groups`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleMapping {
    pub claim: String,
    /// Upstream value → the roles it gives. When set, values not listed give no role (a
    /// group named like a role at the upstream does not become one here); when empty, each
    /// value is a role as is.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, Vec<String>>,
}

/// Observed state of an IdentityProvider; written only by inbound.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
