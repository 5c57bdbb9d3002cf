//! `InboundApp`: one OAuth client.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, DurationString};

/// An OAuth 2.1 / OpenID Connect client of this authorization server: a partner app, an
/// AI agent, a CLI or a workload.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "inbound.dev",
    version = "v1alpha1",
    kind = "InboundApp",
    namespaced,
    status = "InboundAppStatus",
    shortname = "iapp",
    category = "inbound",
    doc = "An OAuth client (inbound app) of the inbound authorization server.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Client ID", type_ = "string", json_path = ".status.clientId"),
    printcolumn(name = "Secret", type_ = "string", json_path = ".status.secretName"),
    printcolumn(name = "Consents", type_ = "integer", json_path = ".status.activeConsents"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Message",
        type_ = "string",
        priority = "1",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct InboundAppSpec {
    /// The client id, when it must survive what changes the object's UID (the default
    /// client id): a delete and re-create, an Argo CD replace, a restore from backup, a
    /// move. Claimed in the store the first time the controller sees it (the first claim
    /// wins, recorded for this namespace/name; another object never takes it by naming
    /// itself alike). Immutable. 3 to 128 characters of letters, digits, `.`, `_`, `~`,
    /// `-`; never a UUID (UIDs and registered clients' ids are UUIDs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 128), regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._~-]*$"))]
    pub client_id: Option<String>,
    /// Name shown to users on the consent screen.
    #[schemars(length(min = 1, max = 200))]
    pub display_name: String,
    /// What the app does, shown on the consent screen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// https URL of the app's logo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// https URL of the app's terms of service, linked on the consent page (RFC 7591 `tos_uri`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    /// https URL of the app's privacy policy, linked on the consent page (RFC 7591 `policy_uri`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    /// Free-form labels for search and filtering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `confidential` clients hold a secret; `public` clients (CLIs, SPAs, native apps) do not.
    #[serde(default)]
    pub client_type: ClientType,
    /// OAuth grant types the app may use (none for an app that is only a resource server).
    #[serde(default)]
    pub grant_types: Vec<GrantType>,
    /// Exact redirect URIs (https, or http on a loopback address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// Where the browser may be sent after signing out (OpenID Connect RP-Initiated Logout
    /// §3, `post_logout_redirect_uri`), matched exactly like redirect URIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// How the app authenticates at the token endpoint. Defaults to `client_secret_basic`
    /// for confidential clients and `none` for public clients; `private_key_jwt` signs with
    /// the key published as `jwks` or `jwksUri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<AuthMethod>,
    /// The app's public keys for `private_key_jwt`: the JWK set document as JSON (what a
    /// `jwks_uri` serves), public keys only (RFC 7591 `jwks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub jwks: Option<String>,
    /// Where the app publishes its public keys for `private_key_jwt` (RFC 7591 `jwks_uri`;
    /// https, fetched through the same address guard as metadata documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// A ServiceAccount of this app's namespace whose tokens authenticate the app, for
    /// `private_key_jwt` without keys of its own (workload identity federation): the Pod
    /// sends its projected token (audience: inbound's issuer) as `client_assertion`, with
    /// `client_id`. Checked as ServiceAccount tokens are (TokenReview in a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Scopes (by scope string) that users may grant to this app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_scopes: Vec<String>,
    /// Resources (RFC 8707 resource indicators, i.e. token audiences) this app may ask for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_resources: Vec<String>,
    /// Tenants this app may act in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_tenants: Vec<String>,
    /// Token lifetimes and format.
    #[serde(default)]
    pub tokens: TokenSettings,
    /// A first-party app: users are not asked to consent, but the consent is still recorded
    /// (and can be revoked like any other).
    #[serde(default)]
    pub first_party: bool,
    /// Where the credentials are written: a Secret (operator) or a folder under the data
    /// directory (`inbound serve`). Defaults to `<app name>-credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<CredentialsSecretRef>,
    /// The app is the resource server (RFC 7662's protected resource) of these resources: it
    /// may introspect tokens whose audience names one of them. Each must be owned by the
    /// app's namespace. Without it, an app introspects only its own tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_server: Option<ResourceServer>,
    /// After a secret rotation (set the annotation `inbound.dev/rotate-secret` to a new
    /// value), how long the previous client secret keeps working. Default `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_rotation_overlap: Option<DurationString>,
    /// Issuers whose JWTs this app may exchange for access tokens acting for the user they
    /// name (the JWT bearer grant, RFC 7523 §2.1): a CI system's OIDC tokens, another
    /// cloud's workload identity, an enterprise IdP. The app authenticates as itself; the
    /// scopes come from its ClientGrants (see the README, "Workload identity"). They also
    /// sign the `login_hint_token`s of its CIBA requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// Client-initiated backchannel authentication (with the `urn:openid:params:grant-type:ciba`
    /// grant): how the user is reached and how the app learns the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciba: Option<CibaSettings>,
}

/// How an app's backchannel authentication requests (OpenID Connect CIBA Core 1.0) work.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CibaSettings {
    /// `poll` (default: the app polls the token endpoint) or `ping` (the server calls
    /// `clientNotificationEndpoint` once the user decided, then the app fetches the tokens).
    #[serde(default)]
    pub delivery_mode: CibaDeliveryMode,
    /// Where ping notifications go: an https URL, called exactly as written (http only on a
    /// loopback address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_notification_endpoint: Option<String>,
    /// How long the approval link (and the request) lives. Default `3m`, at most `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_lifetime: Option<DurationString>,
    /// The least time between polls (`interval`). Default `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<DurationString>,
    /// Every request must carry the user's `user_code` (CIBA §7.1; the registration
    /// metadata `backchannel_user_code_parameter`): a secret the user sets on their account
    /// page, so that an app (or whoever holds its credentials) cannot start a sign-in for a
    /// user who is not in front of it. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_user_code: bool,
}

/// CIBA token delivery modes this server implements (push is not: it would send tokens to
/// a URL rather than to the authenticated client).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CibaDeliveryMode {
    #[default]
    Poll,
    Ping,
}

/// An issuer whose JWTs an app accepts as authorization grants (RFC 7523 §3).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustedIssuer {
    /// The issuer identifier the JWTs carry as `iss` (compared exactly).
    #[schemars(length(min = 1))]
    pub issuer: String,
    /// Where its signing keys are published. Default: the `jwks_uri` of its discovery
    /// document (`<issuer>/.well-known/openid-configuration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Its signing keys, for an issuer whose keys cannot be fetched: the JWK set document
    /// as JSON, exactly what a `jwks_uri` serves (`{"keys": [...]}`; public keys only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub jwks: Option<String>,
    /// Signing algorithms accepted (default RS256, PS256, ES256, EdDSA; never `none` or HMAC).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<String>,
    /// Audiences accepted besides this server's issuer and token endpoint (RFC 7523 §3:
    /// the JWT's `aud` must name one of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// Called with the JWT as bearer token after it validated, to load attributes the JWT
    /// lacks (OpenID Connect UserInfo); its `sub` must equal the JWT's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_uri: Option<String>,
    /// The claim (of the JWT, or of UserInfo) holding the user's login id. Default `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_claim: Option<String>,
    /// Longest validity (`exp` - `iat`, or `exp` - now) accepted. Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime: Option<DurationString>,
}

/// What an app serves as a resource server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceServer {
    /// Resource URIs (token audiences) this app serves.
    pub resources: Vec<String>,
}

/// Confidential or public client (RFC 6749 §2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ClientType {
    #[default]
    Confidential,
    Public,
}

/// OAuth grant types, by their registered names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum GrantType {
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    #[serde(rename = "authorization_code")]
    AuthorizationCode,
    #[serde(rename = "refresh_token")]
    RefreshToken,
    /// RFC 7523 §2.1: a JWT from one of the app's `trustedIssuers` exchanged for an access
    /// token acting for the user it names.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:jwt-bearer")]
    JwtBearer,
    // RFC 8693: exchanges a token of a user (or workload) for one acting for them, as far
    // as a ClientGrant with `tokenExchange` allows. (A plain comment: a doc comment here
    // would replace the field's description in the CRD.)
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
    // RFC 8628: a device without a browser shows a code; the user approves on another
    // device at /device, while the app polls the token endpoint.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:device_code")]
    DeviceCode,
    // OpenID Connect CIBA Core 1.0: the app (authenticated) names a user; the user approves
    // out of band (a link by email) while the app polls the token endpoint.
    #[serde(rename = "urn:openid:params:grant-type:ciba")]
    Ciba,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::JwtBearer => JWT_BEARER,
            GrantType::TokenExchange => TOKEN_EXCHANGE,
            GrantType::DeviceCode => DEVICE_CODE,
            GrantType::Ciba => CIBA,
        }
    }

    /// Grants where a user signs in and consents (in a browser, on this device or another).
    pub fn signs_users_in(self) -> bool {
        matches!(self, GrantType::AuthorizationCode | GrantType::DeviceCode | GrantType::Ciba)
    }
}

/// The JWT bearer grant's `grant_type` (RFC 7523 §2.1).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The CIBA grant's `grant_type` (OpenID Connect CIBA Core 1.0 §10.1).
pub const CIBA: &str = "urn:openid:params:grant-type:ciba";
/// The device authorization grant's `grant_type` (RFC 8628 §3.4).
pub const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The token exchange grant's `grant_type` (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// Token endpoint authentication methods (OAuth 2.0 Dynamic Client Registration names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AuthMethod {
    #[serde(rename = "client_secret_basic")]
    ClientSecretBasic,
    #[serde(rename = "client_secret_post")]
    ClientSecretPost,
    #[serde(rename = "none")]
    None,
    // A JWT signed with the app's private key (RFC 7523 §2.2, OpenID Connect Core §9): the
    // public keys are `spec.jwks` or `spec.jwksUri`. (A plain comment: a variant's doc
    // comment would make schemars describe the field by the enum's text.)
    #[serde(rename = "private_key_jwt")]
    PrivateKeyJwt,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::None => "none",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// Access token format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TokenFormat {
    /// A JWT per RFC 9068, verifiable offline against the JWKS.
    #[default]
    Jwt,
    /// A random reference; resource servers read it with introspection (RFC 7662).
    Opaque,
}

/// Token lifetimes and format of one app.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenSettings {
    /// Lifetime of access tokens; the server default (`--access-token-lifetime`) otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_lifetime: Option<DurationString>,
    /// `jwt` (default) or `opaque`.
    #[serde(default)]
    pub format: TokenFormat,
    /// Lifetime of refresh tokens (each rotation starts a new one); default `30d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_lifetime: Option<DurationString>,
    /// Lifetime of ID tokens; default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_lifetime: Option<DurationString>,
    /// ID token signing algorithm: `RS256` (default, as OpenID Connect requires) or `ES256`.
    #[serde(default)]
    pub id_token_signing_alg: IdTokenAlg,
    /// How old a user's sign-in may be for this app (an older one signs in again); at most
    /// the server's `--session-lifetime`, which applies otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_lifetime: Option<DurationString>,
    /// Device authorization grant (RFC 8628): how long a device code and its user code
    /// wait for the user's decision. Default `10m`, at most `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_code_lifetime: Option<DurationString>,
    /// How often the device may poll the token endpoint (RFC 8628 `interval`); a faster
    /// poll gets `slow_down` and 5 s more. Default `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_poll_interval: Option<DurationString>,
}

/// ID token signing algorithms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum IdTokenAlg {
    #[default]
    RS256,
    ES256,
}

/// The Secret holding an app's credentials, and how it is written (like cert-manager's
/// `secretTemplate`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Secret name, in the app's namespace (default `<app name>-credentials`). Renaming
    /// moves the same credentials to the new Secret and deletes the old one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Labels added to the Secret (inbound's own labels cannot be overridden).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Secret (e.g. for a reflector or an external-secrets push).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The Secret's `type` (default `Opaque`). A Secret's type cannot change: changing it
    /// here needs the Secret deleted, after which it is written again with the same secret.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Names of the keys written (defaults: `client_id`, `client_secret`, `issuer`,
    /// `token_url`, `discovery_url`, `jwks_uri`, and `in_cluster_token_url` when the
    /// operator knows its in-cluster URL).
    #[serde(default)]
    pub keys: CredentialsKeys,
}

/// Key names of the credentials Secret (e.g. `CLIENT_ID` for `envFrom`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsKeys {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_cluster_token_url: Option<String>,
}

/// Observed state of an InboundApp; written only by inbound.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboundAppStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The OAuth client_id, derived from the object's UID (stable, cannot be taken over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Name of the Secret holding client_id, client_secret, issuer and token_url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Issuer URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// OpenID discovery document URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_url: Option<String>,
    /// Authorization endpoint URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    /// Token endpoint URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// When the current client secret was issued (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub secret_issued_at: Option<String>,
    /// After a rotation: until when the previous client secret still authenticates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub previous_secret_valid_until: Option<String>,
    /// Users' consents to this app that are active (not revoked, not expired); refreshed on
    /// every reconcile pass (`--resync-interval`), not on each consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_consents: Option<u32>,
    /// The metadata.generation last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl InboundApp {
    /// The client id: `spec.clientId`, else the object's UID (None before the API server
    /// or the folder store assigned one).
    pub fn client_id(&self) -> Option<&str> {
        self.spec.client_id.as_deref().or(self.metadata.uid.as_deref())
    }
}

impl InboundAppSpec {
    /// The effective token endpoint auth method (explicit, or the client type's default).
    pub fn auth_method(&self) -> AuthMethod {
        self.token_endpoint_auth_method.unwrap_or(match self.client_type {
            ClientType::Confidential => AuthMethod::ClientSecretBasic,
            ClientType::Public => AuthMethod::None,
        })
    }
}
