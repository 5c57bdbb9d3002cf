//! Paths of the endpoints, relative to the issuer: one list for the router, the metadata
//! documents, the controller's status and the banner.

pub const OIDC_DISCOVERY: &str = "/.well-known/openid-configuration";
pub const OAUTH_METADATA: &str = "/.well-known/oauth-authorization-server";
pub const JWKS: &str = "/jwks";
pub const TOKEN: &str = "/token";
pub const INTROSPECT: &str = "/introspect";
pub const REVOKE: &str = "/revoke";
pub const AUTHORIZE: &str = "/authorize";
pub const USERINFO: &str = "/userinfo";
pub const LOGIN: &str = "/login";
/// Where upstream identity providers send the browser back (the redirect URI to register
/// there: the issuer followed by this path).
pub const LOGIN_CALLBACK: &str = "/login/callback";
/// Application-hosted login: the application accepts a login challenge (back channel).
pub const LOGIN_ACCEPT: &str = "/login/accept";
pub const CONSENT: &str = "/consent";
/// OpenID Connect RP-Initiated Logout: the `end_session_endpoint`.
pub const END_SESSION: &str = "/logout";
pub const ACCOUNT: &str = "/account/apps";
pub const ACCOUNT_REVOKE: &str = "/account/apps/{id}/revoke";
pub const ACCOUNT_API: &str = "/account/api/apps";
pub const ACCOUNT_API_ONE: &str = "/account/api/apps/{id}";
/// The account page's form setting or removing the user's CIBA user code.
pub const ACCOUNT_USER_CODE: &str = "/account/user-code";
/// The same for the account API (`PUT` with `{"user_code": ...}`, `DELETE`).
pub const ACCOUNT_API_USER_CODE: &str = "/account/api/user-code";
/// RFC 7591 registration and RFC 7592 management.
pub const REGISTER: &str = "/register";
pub const REGISTER_ONE: &str = "/register/{client_id}";
pub const ADMIN_CLIENTS: &str = "/admin/clients";
pub const ADMIN_CLIENT: &str = "/admin/clients/{client_id}";
pub const ADMIN_CONSENTS: &str = "/admin/consents";
pub const ADMIN_CONSENT: &str = "/admin/consents/{consent_id}";
pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";
/// RFC 8628 §3.1: where a device asks for a device code.
pub const DEVICE_AUTHORIZATION: &str = "/device_authorization";
/// RFC 8628 §3.3: where the user enters the code (`verification_uri`).
pub const DEVICE: &str = "/device";
/// OpenID Connect CIBA Core §7: the backchannel authentication endpoint.
pub const BACKCHANNEL_AUTHENTICATION: &str = "/bc-authorize";
/// Where a CIBA approval link leads (`?token=`).
pub const CIBA_APPROVE: &str = "/ciba";

/// Every routed path, as metric label values.
pub const ALL: &[&str] = &[
    OIDC_DISCOVERY,
    OAUTH_METADATA,
    JWKS,
    TOKEN,
    INTROSPECT,
    REVOKE,
    AUTHORIZE,
    USERINFO,
    LOGIN,
    LOGIN_CALLBACK,
    LOGIN_ACCEPT,
    CONSENT,
    END_SESSION,
    ACCOUNT,
    ACCOUNT_REVOKE,
    ACCOUNT_API,
    ACCOUNT_API_ONE,
    ACCOUNT_USER_CODE,
    ACCOUNT_API_USER_CODE,
    REGISTER,
    REGISTER_ONE,
    ADMIN_CLIENTS,
    ADMIN_CLIENT,
    ADMIN_CONSENTS,
    ADMIN_CONSENT,
    DEVICE_AUTHORIZATION,
    DEVICE,
    BACKCHANNEL_AUTHENTICATION,
    CIBA_APPROVE,
    HEALTHZ,
    READYZ,
    METRICS,
];
