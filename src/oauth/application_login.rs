//! Application-hosted login (an `IdentityProvider` with `spec.application`, as Hydra's
//! login provider and the hosted product's self-hosted flow): the browser is sent to the
//! application's login page with a one-time `login_challenge`; the application signs the
//! user in its own way and accepts the challenge over the back channel, authenticated as
//! the InboundApp the IdentityProvider names; the answer is the URL to send the browser
//! back to, carrying a verifier that only the accepted challenge knows.
//!
//! Why client credentials and not a Kubernetes token: the same call works in folder mode
//! and in a cluster, costs no API-server round trip per login, and the IdentityProvider
//! names exactly one app allowed to speak for its users (a scope any app could be granted
//! would make every holder an identity provider).
//!
//! A challenge is the id of the pending authorization: single-use (accepting takes it
//! atomically), short-lived (the pending request's 10 minutes), and bound to the browser
//! that left (the callback also needs that browser's binding cookie).

use std::collections::BTreeMap;

use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{
    AuthorizationServer, ErrorCode, OAuthError,
    client_auth::{authenticate, presented_client},
    front_channel::{AcceptedLogin, Pending, UpstreamAttempt, hex},
    params::Params,
    server::store_error,
};
use crate::catalog::Catalog;
use crate::identity::{Identity, upstream::subject_for};
use crate::protocol::paths;
use crate::secrets::{random_token, token_digest};

/// Most roles and attributes an acceptance may carry, and their lengths.
const MAX_ROLES: usize = 64;
const MAX_ATTRIBUTES: usize = 64;
const MAX_VALUE: usize = 1024;

/// The application's answer to a login challenge (`POST /login/accept`, JSON).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginAcceptance {
    pub login_challenge: String,
    /// The user's identifier in the application (stable; `inbound`'s `sub` derives from it).
    pub subject: String,
    /// What pages call the user (default: the subject).
    #[serde(default)]
    pub username: Option<String>,
    /// The tenants the user belongs to.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Roles held only in one tenant (tenant → roles), on top of `roles`.
    #[serde(default)]
    pub tenant_roles: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Attributes released by userInfo Scopes (`email`, `name`...).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

fn invalid(description: impl Into<String>) -> OAuthError {
    OAuthError::invalid_request(description)
}

fn check_bounds(a: &LoginAcceptance) -> Result<(), OAuthError> {
    let long = |s: &str| s.is_empty() || s.len() > MAX_VALUE;
    if long(&a.subject) {
        return Err(invalid("subject must be 1 to 1024 characters"));
    }
    if a.roles.len() > MAX_ROLES || a.roles.iter().any(|r| long(r)) {
        return Err(invalid("at most 64 roles of 1 to 1024 characters"));
    }
    if a.attributes.len() > MAX_ATTRIBUTES || a.attributes.iter().any(|(k, v)| long(k) || v.len() > MAX_VALUE) {
        return Err(invalid("at most 64 attributes, names and values of at most 1024 characters"));
    }
    if a.username.as_deref().is_some_and(long) {
        return Err(invalid("username must be 1 to 1024 characters"));
    }
    if a.tenants.len() > MAX_ROLES || a.tenants.iter().any(|t| long(t)) {
        return Err(invalid("at most 64 tenants of 1 to 1024 characters"));
    }
    if a.tenant_roles.len() > MAX_ROLES
        || a.tenant_roles
            .iter()
            .any(|(t, roles)| !a.tenants.contains(t) || roles.len() > MAX_ROLES || roles.iter().any(|r| long(r)))
    {
        return Err(invalid(
            "tenant_roles names only the user's tenants, each with at most 64 roles of 1 to 1024 characters",
        ));
    }
    Ok(())
}

impl AuthorizationServer {
    /// The application accepts a login challenge: returns where to send the browser.
    /// Errors: `invalid_client` (authentication), `unauthorized_client` (not the app this
    /// IdentityProvider names), `invalid_request` (unknown, expired or used challenge;
    /// malformed body).
    pub async fn accept_login(
        &self,
        catalog: &Catalog,
        authorization: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<String, OAuthError> {
        let client = authenticate(catalog, &self.hasher, &presented_client(authorization, &Params::default())?)?;
        let acceptance: LoginAcceptance = serde_json::from_slice(body)
            .map_err(|e| invalid(format!("the body must be a JSON login acceptance: {e}")))?;
        check_bounds(&acceptance)?;
        let gone = || invalid("the login challenge is unknown, expired or already used");
        let challenge = acceptance.login_challenge.as_str();
        // Who may accept is checked before the challenge is spent: another app that learnt
        // a challenge must not be able to burn it.
        let read = self.store.pending(challenge, now).await.map_err(store_error)?.ok_or_else(gone)?;
        let pending: Pending = serde_json::from_str(&read).map_err(|_| gone())?;
        let attempt = pending.upstream.as_ref().ok_or_else(gone)?;
        let provider = catalog.identity_provider(&attempt.provider).ok_or_else(gone)?;
        let Some(application) = &provider.spec.application else { return Err(gone()) };
        if client.key.namespace != provider.key.namespace || client.key.name != application.client {
            tracing::warn!(client_id = %client.client_id, provider = %provider.source(), "login challenge accepted by the wrong app; refused");
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not accept logins for this identity provider",
            ));
        }
        // Spent now: of two acceptances, one wins.
        let taken = self.store.take_pending(challenge, now).await.map_err(store_error)?.ok_or_else(gone)?;
        let mut pending: Pending = serde_json::from_str(&taken).map_err(|_| gone())?;
        let attempt: &mut UpstreamAttempt = pending.upstream.as_mut().ok_or_else(gone)?;
        if attempt.accepted.is_some() {
            return Err(gone());
        }
        let verifier = random_token(32);
        let username = acceptance.username.clone().unwrap_or_else(|| acceptance.subject.clone());
        attempt.accepted = Some(AcceptedLogin {
            identity: Identity {
                source: provider.source(),
                subject: subject_for(&provider.key, &acceptance.subject),
                username,
                tenants: acceptance.tenants,
                tenant_roles: acceptance.tenant_roles,
                roles: acceptance.roles,
                attributes: acceptance.attributes,
            },
            verifier_digest: hex(&token_digest(&verifier)),
        });
        let expires_at = attempt.expires_at;
        let json = serde_json::to_string(&pending).expect("pending serializes");
        self.store.put_pending(challenge, &json, expires_at).await.map_err(store_error)?;
        tracing::info!(provider = %provider.source(), "login challenge accepted by the application");
        let mut back = url::Url::parse(&format!("{}{}", self.issuer, paths::LOGIN_CALLBACK)).expect("issuer is a URL");
        back.query_pairs_mut().append_pair("state", challenge).append_pair("login_verifier", &verifier);
        Ok(back.into())
    }
}

/// The user an application accepted, if the browser brought the accepted challenge's
/// verifier back.
pub fn accepted_identity(attempt: &UpstreamAttempt, verifier: Option<&str>) -> Result<Identity, String> {
    let Some(accepted) = &attempt.accepted else {
        return Err("the application has not accepted this sign-in".into());
    };
    let presented = hex(&token_digest(verifier.unwrap_or("")));
    if !bool::from(presented.as_bytes().ct_eq(accepted.verifier_digest.as_bytes())) {
        return Err("the sign-in verifier does not match".into());
    }
    Ok(accepted.identity.clone())
}
