//! The authorization endpoint (RFC 6749 §4.1.1, OAuth 2.1 §4.1): request validation and
//! where each error goes.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{ErrorCode, OAuthError, params::Params, pkce};
use crate::api::GrantType;
use crate::catalog::{Catalog, Client};
use crate::protocol::{redirect, scope};

/// A validated authorization request, carried through login and consent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// Whether the request named the redirect URI (then the token request must repeat it,
    /// OAuth 2.1 §4.1.3).
    #[serde(default)]
    pub redirect_uri_given: bool,
    pub state: Option<String>,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    /// `prompt` values (OpenID Connect Core §3.1.2.1): `none`, `login`, `consent`.
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub code_challenge: String,
    pub resources: Vec<String>,
    pub tenant: Option<String>,
    /// OpenID Connect Core §3.1.2.1 `login_hint`: selects an identity provider by email
    /// domain and is passed on to it. Bounded like every parameter.
    #[serde(default)]
    pub login_hint: Option<String>,
    /// A request decided away from its client (a device authorization, a CIBA request): the
    /// decision is recorded for the polling client instead of redirecting anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoupled: Option<Decoupled>,
}

/// What the pages carry of a decoupled request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decoupled {
    /// Its key in the store: a device's user code, or the digest of a CIBA approval link.
    pub code: String,
    /// CIBA: the only user who may decide (the one the client named).
    #[serde(default)]
    pub subject: Option<String>,
    /// CIBA: shown beside the request so the user can match it with the app's screen.
    #[serde(default)]
    pub binding_message: Option<String>,
    /// CIBA ping mode: told once the user decided.
    #[serde(default)]
    pub notification: Option<crate::store::ClientNotification>,
    /// A CIBA request (the client asked on the back channel), not a device.
    #[serde(default)]
    pub backchannel: bool,
}

impl AuthorizationRequest {
    pub fn prompts(&self, value: &str) -> bool {
        self.prompt.iter().any(|p| p == value)
    }
}

/// Where an authorization error is reported.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or the redirect URI cannot be trusted: shown on a page, NEVER redirected
    /// (RFC 6749 §4.1.2.1, RFC 9700 §4.1).
    Page(OAuthError),
    /// Everything else goes back to the client's redirect URI.
    Redirect { redirect_uri: String, state: Option<String>, error: OAuthError },
}

/// Validates an authorization request against the catalog.
pub fn validate(catalog: &Catalog, params: &Params) -> Result<(Arc<Client>, AuthorizationRequest), AuthorizeError> {
    let page = |e: OAuthError| AuthorizeError::Page(e);
    let client_id = params.require("client_id").map_err(page)?;
    let client = catalog
        .client(client_id)
        .ok_or_else(|| page(OAuthError::invalid_request(format!("unknown client_id {client_id:?}"))))?;
    // OAuth 2.1 §2.3.2: redirect_uri may be omitted only when exactly one is registered.
    let redirect_uri = match params.get("redirect_uri") {
        Some(uri) if redirect::is_registered(&client.spec.redirect_uris, uri) => uri.to_string(),
        Some(uri) => {
            return Err(page(OAuthError::invalid_request(format!(
                "redirect_uri {uri:?} is not registered for this client"
            ))));
        }
        None if client.spec.redirect_uris.len() == 1 => client.spec.redirect_uris[0].clone(),
        None => return Err(page(OAuthError::invalid_request("redirect_uri is required"))),
    };
    let state = params.get("state").map(str::to_string);
    let fail = |error: OAuthError| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
    };

    match params.get("response_type") {
        Some("code") => {}
        None => return Err(fail(OAuthError::invalid_request("response_type is required"))),
        Some(other) => {
            return Err(fail(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                format!("response_type {other:?} is not supported; use code"),
            )));
        }
    }
    // OAuth 2.0 Multiple Response Type Encoding Practices §2.1: the code is returned in
    // the query; other modes (fragment, form_post) are not implemented and must not be
    // silently ignored.
    match params.get("response_mode") {
        None | Some("query") => {}
        Some(other) => {
            return Err(fail(OAuthError::invalid_request(format!(
                "response_mode {other:?} is not supported; use query"
            ))));
        }
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(fail(OAuthError::unauthorized_client(
            "this client is not allowed to use the authorization_code grant",
        )));
    }
    // PKCE is required for every client (OAuth 2.1 §4.1.1), S256 only.
    let code_challenge = params
        .get("code_challenge")
        .ok_or_else(|| fail(OAuthError::invalid_request("code_challenge is required (PKCE, S256)")))?;
    pkce::check_challenge(code_challenge, params.get("code_challenge_method")).map_err(fail)?;

    let Access { scopes, resources, tenant } = requested_access(catalog, &client, params).map_err(fail)?;
    let prompt: Vec<String> =
        params.get("prompt").unwrap_or("").split(' ').filter(|p| !p.is_empty()).map(str::to_string).collect();
    for p in &prompt {
        if !matches!(p.as_str(), "none" | "login" | "consent") {
            return Err(fail(OAuthError::invalid_request(format!("prompt value {p:?} is not supported"))));
        }
    }
    if prompt.len() > 1 && prompt.iter().any(|p| p == "none") {
        return Err(fail(OAuthError::invalid_request("prompt=none cannot be combined with other values")));
    }
    let max_age = match params.get("max_age") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| fail(OAuthError::invalid_request("max_age must be a non-negative integer")))?,
        ),
    };
    Ok((
        client.clone(),
        AuthorizationRequest {
            client_id: client.client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            redirect_uri_given: params.get("redirect_uri").is_some(),
            state: state.clone(),
            scopes,
            nonce: params.get("nonce").map(str::to_string),
            prompt,
            max_age,
            code_challenge: code_challenge.to_string(),
            resources,
            tenant,
            login_hint: params.get("login_hint").filter(|h| !h.is_empty() && h.len() <= 256).map(str::to_string),
            decoupled: None,
        },
    ))
}

/// The audience when the request names no `resource` (RFC 8707 §2: the server may use a
/// default): the client's one allowed resource; with several, the client must choose
/// (`invalid_target`); with none, the server's default audience (an empty list).
fn default_resources(requested: Vec<String>, allowed: &[String]) -> Result<Vec<String>, OAuthError> {
    match (requested.is_empty(), allowed) {
        (false, _) | (true, []) => Ok(requested),
        (true, [only]) => Ok(vec![only.clone()]),
        (true, _) => Err(OAuthError::invalid_target(format!(
            "this client may ask for several resources ({}): name one with the resource parameter",
            allowed.join(", ")
        ))),
    }
}

/// The redirect back to the client: `redirect_uri` plus parameters, keeping any query the
/// registered URI has, and always the RFC 9207 `iss`.
pub fn redirect_url(redirect_uri: &str, issuer: &str, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(redirect_uri).expect("registered redirect URIs are absolute URLs");
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
        query.append_pair("iss", issuer);
    }
    url.to_string()
}

/// The error redirect of RFC 6749 §4.1.2.1.
pub fn error_redirect_url(redirect_uri: &str, issuer: &str, state: Option<&str>, error: &OAuthError) -> String {
    let mut params = vec![("error", error.code.as_str()), ("error_description", error.description.as_str())];
    if let Some(state) = state {
        params.push(("state", state));
    }
    redirect_url(redirect_uri, issuer, &params)
}

/// What a user-delegated request asks for (the authorization endpoint, the device
/// authorization endpoint): scopes the client may ask for, resources (RFC 8707 §2) it may
/// use in their declared spelling, and the tenant.
pub(super) struct Access {
    pub scopes: Vec<String>,
    pub resources: Vec<String>,
    pub tenant: Option<String>,
}

/// The checked [`Access`] of a request: `invalid_scope`, `invalid_target` or
/// `invalid_request` otherwise.
pub(super) fn requested_access(catalog: &Catalog, client: &Client, params: &Params) -> Result<Access, OAuthError> {
    let mut scopes = scope::parse_scope(params.get("scope").unwrap_or("")).map_err(OAuthError::from)?;
    // A self-registered client's consent always includes the policy's mandatory scopes.
    if client.origin != crate::catalog::ClientOrigin::Declared
        && let Some(registration) = catalog.policy_for(client).and_then(|p| p.spec.registration.as_ref())
    {
        for mandatory in crate::catalog::dynamic::mandatory_scopes(registration) {
            if !scopes.contains(&mandatory) {
                scopes.push(mandatory);
            }
        }
    }
    for s in &scopes {
        if s == scope::OFFLINE_ACCESS {
            if !client.allows_grant(GrantType::RefreshToken) {
                return Err(OAuthError::invalid_scope("offline_access needs the refresh_token grant"));
            }
            continue;
        }
        let declared = s == scope::OPENID || catalog.scope(&client.key.namespace, s).is_some();
        if !declared || !client.spec.allowed_scopes.contains(s) {
            return Err(OAuthError::invalid_scope(format!("scope {s} is not available to this client")));
        }
    }
    // RFC 8707 §2: each resource must be one the client may use; carried in its declared
    // spelling (`protocol::resource`).
    let mut resources: Vec<String> = Vec::new();
    for requested in params.resources() {
        let Some(declared) = crate::protocol::resource::find(&client.spec.allowed_resources, requested) else {
            return Err(OAuthError::invalid_target(format!("resource {requested} is not allowed for this client")));
        };
        if !resources.contains(declared) {
            resources.push(declared.clone());
        }
    }
    let resources = default_resources(resources, &client.spec.allowed_resources)?;
    // A scope declared for a resource is granted only with that resource in the audience.
    for s in &scopes {
        if let Some(resource) = catalog.scope(&client.key.namespace, s).and_then(|d| d.resource.as_deref())
            && crate::protocol::resource::find(&resources, resource).is_none()
        {
            return Err(OAuthError::invalid_scope(format!(
                "scope {s} is for resource {resource}: request it with resource={resource}"
            )));
        }
    }
    let tenant = params.get("tenant").map(str::to_string);
    if let Some(t) = &tenant
        && !client.spec.allowed_tenants.is_empty()
        && !client.spec.allowed_tenants.contains(t)
    {
        return Err(OAuthError::invalid_request(format!("tenant {t} is not allowed for this client")));
    }
    Ok(Access { scopes, resources, tenant })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_resource_the_single_allowed_resource_is_the_audience() {
        let one = ["https://api.example.com".to_string()];
        let two = ["https://a.example.com".to_string(), "https://b.example.com".to_string()];
        assert_eq!(default_resources(vec![], &one).unwrap(), one);
        assert_eq!(default_resources(vec![], &[]).unwrap(), Vec::<String>::new(), "the default audience");
        assert_eq!(default_resources(vec![two[1].clone()], &two).unwrap(), [two[1].clone()]);
        let error = default_resources(vec![], &two).unwrap_err();
        assert_eq!(error.code, super::super::ErrorCode::InvalidTarget, "RFC 8707 §2: the client must choose");
    }
}
