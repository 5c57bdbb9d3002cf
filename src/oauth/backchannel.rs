//! Client-initiated backchannel authentication (OpenID Connect CIBA Core 1.0): an app that
//! authenticates as itself names a user (§7.1); the user is reached out of band — an email
//! with a single-use link to an approval page, where they sign in (any identity source) and
//! decide on the usual consent screen — while the app polls the token endpoint (poll mode)
//! or waits to be told (ping mode, §10.2).
//!
//! **No user enumeration.** A `login_hint` naming nobody (or a user without an email
//! address) is answered exactly like one naming a user: an `auth_req_id` that simply never
//! gets approved and ends in `expired_token`. Only an `id_token_hint` whose user is gone gets
//! `unknown_user_id`: the app already knows that subject from its own ID token. What remains
//! is timing (an email is sent for real users) and a failing mail relay, which answers
//! `temporarily_unavailable` only when there was someone to write to.
//!
//! State is a [`DecoupledRequest`] in the store (every replica can start, show, decide and
//! answer); the link's token is kept only as a digest, the decision handed to one poll.

use serde::Serialize;

use super::{
    AuthorizationServer, ErrorCode, OAuthError, authorize::requested_access, front_channel::hex, params::Params,
    server::store_error, token::Issued,
};
use crate::api::{CibaDeliveryMode, GrantType};
use crate::catalog::{Catalog, Client};
use crate::protocol::{paths, scope::OPENID};
use crate::secrets::{random_token, token_digest};
use crate::store::{ClientNotification, DecoupledRequest, UserRecord};

/// How long a request (and its link) waits by default (`spec.ciba.linkLifetime`).
pub const DEFAULT_LINK_LIFETIME: i64 = 180;
/// The default polling interval (`spec.ciba.pollInterval`).
pub const DEFAULT_POLL_INTERVAL: i64 = 5;
/// The longest `binding_message` (§7.1 asks for something short enough to show on both the
/// app's screen and the user's).
pub const MAX_BINDING_MESSAGE: usize = 64;
/// The longest `client_notification_token` (§7.1 says at most 1024 characters).
pub const MAX_NOTIFICATION_TOKEN: usize = 1024;

/// The successful backchannel authentication response (§7.3).
#[derive(Debug, Serialize)]
pub struct BackchannelResponse {
    pub auth_req_id: String,
    pub expires_in: i64,
    /// Poll mode's least interval; absent in ping mode (the app waits to be told, §7.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
}

/// A checked request, not yet recorded: the handler sends `email` (rendered by the pages'
/// templates) and only then records it, so that a mail relay that is down leaves nothing
/// stored and the app gets a clear error.
#[derive(Debug)]
pub struct BackchannelStart {
    pub response: BackchannelResponse,
    pub email: Option<ApprovalEmail>,
    digest: [u8; 32],
    code: String,
    record: DecoupledRequest,
    interval: i64,
}

/// The email the user gets (rendered by the pages' templates, which may be overridden).
#[derive(Debug, Clone)]
pub struct ApprovalEmail {
    pub to: String,
    pub app_name: String,
    pub binding_message: Option<String>,
    pub link: String,
    pub expires_in: i64,
}

/// The app's CIBA lifetime and interval, in seconds.
pub fn timing(client: &Client) -> (i64, i64) {
    let seconds = |d: Option<&crate::api::DurationString>, default: i64| {
        d.and_then(|d| d.parse().ok()).map(|d: std::time::Duration| d.as_secs() as i64).unwrap_or(default)
    };
    let ciba = client.spec.ciba.as_ref();
    (
        seconds(ciba.and_then(|c| c.link_lifetime.as_ref()), DEFAULT_LINK_LIFETIME).max(1),
        seconds(ciba.and_then(|c| c.poll_interval.as_ref()), DEFAULT_POLL_INTERVAL).max(1),
    )
}

/// §7.1 `binding_message`: short, printable text (escaped on every page and in the email).
pub fn check_binding_message(message: Option<&str>) -> Result<Option<String>, OAuthError> {
    match message {
        None => Ok(None),
        Some(m) if m.is_empty() || m.chars().count() > MAX_BINDING_MESSAGE || m.chars().any(char::is_control) => {
            Err(OAuthError::new(
                ErrorCode::InvalidBindingMessage,
                format!("binding_message must be 1 to {MAX_BINDING_MESSAGE} characters without control characters"),
            ))
        }
        Some(m) => Ok(Some(m.to_string())),
    }
}

#[derive(serde::Deserialize)]
struct HintClaims {
    sub: String,
    aud: serde_json::Value,
}

impl AuthorizationServer {
    /// §7.1–§7.3: an app asks to authenticate a user on the back channel.
    pub async fn backchannel_authentication(
        &self,
        catalog: &Catalog,
        authorization: Option<&str>,
        params: &Params,
        now: i64,
    ) -> Result<BackchannelStart, OAuthError> {
        let client = self.authenticate_for(catalog, authorization, params, GrantType::Ciba, now).await?;
        // §7.1: the back channel is for clients that authenticate.
        if !client.is_confidential() {
            return Err(OAuthError::new(ErrorCode::InvalidClient, "client authentication is required for CIBA"));
        }
        let settings = client.spec.ciba.clone().unwrap_or_default();
        let access = requested_access(catalog, &client, params)?;
        if !access.scopes.iter().any(|s| s == OPENID) {
            return Err(OAuthError::invalid_scope("a backchannel authentication request must include scope openid"));
        }
        let binding_message = check_binding_message(params.get("binding_message"))?;
        if params.get("user_code").is_some() {
            return Err(OAuthError::invalid_request(
                "user_code is not supported here (backchannel_user_code_parameter_supported is false)",
            ));
        }
        let (lifetime, interval) = timing(&client);
        let expires_in = match params.get("requested_expiry") {
            None => lifetime,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| OAuthError::invalid_request("requested_expiry must be a positive integer"))?
                .min(lifetime),
        };
        let notification_token = params.get("client_notification_token");
        let ping = settings.delivery_mode == CibaDeliveryMode::Ping;
        let notification_token = match (ping, notification_token) {
            (true, None) => {
                return Err(OAuthError::invalid_request("client_notification_token is required in ping mode"));
            }
            (true, Some(t)) if t.is_empty() || t.len() > MAX_NOTIFICATION_TOKEN => {
                return Err(OAuthError::invalid_request("client_notification_token must be 1 to 1024 characters"));
            }
            (true, Some(t)) => Some(t.to_string()),
            (false, _) => None,
        };
        let user = self.hinted_user(catalog, &client, params).await?;
        let auth_req_id = random_token(32);
        let link = random_token(32);
        let email = user.as_ref().and_then(|u| u.attributes.get("email").map(|to| (u, to.clone())));
        if user.is_some() && email.is_none() {
            tracing::warn!(client_id = %client.client_id, "CIBA: the hinted user has no email address; unreachable");
        }
        let notification = match (notification_token, &settings.client_notification_endpoint) {
            (Some(token), Some(endpoint)) => {
                Some(ClientNotification { endpoint: endpoint.clone(), token, auth_req_id: auth_req_id.clone() })
            }
            _ => None,
        };
        let record = DecoupledRequest {
            client_id: client.client_id.clone(),
            scopes: access.scopes,
            resources: access.resources,
            tenant: access.tenant,
            expires_at: now + expires_in,
            // Nobody can decide a request for a user who was not reached (its link is
            // never sent); the subject says so even to a guessed link.
            subject: Some(
                email
                    .as_ref()
                    .map(|(u, _)| u.subject.clone())
                    .unwrap_or_else(|| format!("unreached:{}", random_token(16))),
            ),
            binding_message: binding_message.clone(),
            notification,
        };
        let approval = email.map(|(_, to)| ApprovalEmail {
            to,
            app_name: client.spec.display_name.clone(),
            binding_message,
            link: format!("{}{}?token={link}", self.issuer, paths::CIBA_APPROVE),
            expires_in,
        });
        let digest = token_digest(&auth_req_id);
        let response = BackchannelResponse { auth_req_id, expires_in, interval: (!ping).then_some(interval) };
        Ok(BackchannelStart { response, email: approval, digest, code: hex(&token_digest(&link)), record, interval })
    }

    /// Records a started request (after its email went out): from now on it can be
    /// approved, and polled on every replica.
    pub async fn record_backchannel(
        &self,
        start: BackchannelStart,
        now: i64,
    ) -> Result<BackchannelResponse, OAuthError> {
        let BackchannelStart { response, email, digest, code, record, interval } = start;
        let stored =
            self.store.put_decoupled_request(&digest, &code, &record, interval, now).await.map_err(store_error)?;
        if !stored {
            return Err(OAuthError::new(ErrorCode::ServerError, "the request could not be recorded; try again"));
        }
        tracing::info!(client_id = %record.client_id, reached = email.is_some(), "backchannel authentication started");
        Ok(response)
    }

    /// The user a request names: exactly one of `login_hint`, `id_token_hint`,
    /// `login_hint_token` (§7.1). None for a login hint naming nobody (see the module's
    /// note on enumeration).
    async fn hinted_user(
        &self,
        catalog: &Catalog,
        client: &Client,
        params: &Params,
    ) -> Result<Option<UserRecord>, OAuthError> {
        let hints = ["login_hint", "id_token_hint", "login_hint_token"];
        let given: Vec<&str> = hints.into_iter().filter(|h| params.get(h).is_some_and(|v| !v.is_empty())).collect();
        match given.as_slice() {
            ["login_hint"] => {
                let hint = params.get("login_hint").unwrap_or("");
                if hint.len() > 256 {
                    return Err(OAuthError::invalid_request("login_hint is too long"));
                }
                let mut users = self.store.users_by_login(hint).await.map_err(store_error)?;
                // Development users (folder mode) are known before their first sign-in.
                for user in catalog.development_users_by_login(hint) {
                    if !users.iter().any(|u| u.subject == user.subject) {
                        users.push(super::front_channel::user_record(crate::identity::Identity::from(user.as_ref())));
                    }
                }
                // Two users answering to one hint: reaching either could be the wrong person.
                Ok(if users.len() == 1 { users.pop() } else { None })
            }
            ["id_token_hint"] => {
                let token = params.get("id_token_hint").unwrap_or("");
                let claims: HintClaims = self.keys.load().verify_id_token_hint(token, &self.issuer).map_err(|_| {
                    OAuthError::invalid_request("id_token_hint is not an ID token issued by this server")
                })?;
                let audience_ok = match &claims.aud {
                    serde_json::Value::String(a) => *a == client.client_id,
                    serde_json::Value::Array(a) => a.iter().any(|v| v.as_str() == Some(&client.client_id)),
                    _ => false,
                };
                if !audience_ok {
                    return Err(OAuthError::invalid_request("id_token_hint was issued to another client"));
                }
                match self.store.user(&claims.sub).await.map_err(store_error)? {
                    Some(user) => Ok(Some(user)),
                    None => {
                        Err(OAuthError::new(ErrorCode::UnknownUserId, "the user of id_token_hint no longer exists"))
                    }
                }
            }
            ["login_hint_token"] => Err(OAuthError::invalid_request(
                "login_hint_token is not supported here; name the user with login_hint or id_token_hint",
            )),
            [] => Err(OAuthError::invalid_request("give one of login_hint, id_token_hint, login_hint_token")),
            _ => Err(OAuthError::invalid_request("give only one of login_hint, id_token_hint, login_hint_token")),
        }
    }

    /// §10.1–§11: the app polls (or, in ping mode, fetches once told) with its auth_req_id.
    pub(super) async fn ciba_grant(
        &self,
        catalog: &Catalog,
        authorization: Option<&str>,
        params: &Params,
        now: i64,
    ) -> Result<Issued, OAuthError> {
        let client = self.authenticate_for(catalog, authorization, params, GrantType::Ciba, now).await?;
        let digest = token_digest(params.require("auth_req_id")?);
        self.redeem_decoupled(catalog, &client, &digest, "auth_req_id", params, now).await
    }

    /// The request a link names, if it is live and undecided: its key and what it asks.
    pub async fn backchannel_request(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<(String, DecoupledRequest)>, OAuthError> {
        let code = hex(&token_digest(token));
        let found = self.store.decoupled_request(&code, now).await.map_err(store_error)?;
        Ok(found.map(|r| (code, r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_messages_are_short_printable_text() {
        assert_eq!(check_binding_message(None).unwrap(), None);
        assert_eq!(check_binding_message(Some("BLUE-42")).unwrap().as_deref(), Some("BLUE-42"));
        assert_eq!(check_binding_message(Some(&"é".repeat(64))).unwrap().map(|m| m.chars().count()), Some(64));
        for bad in ["", "line\nbreak", "tab\there", &"x".repeat(65)] {
            assert_eq!(check_binding_message(Some(bad)).unwrap_err().code, ErrorCode::InvalidBindingMessage, "{bad:?}");
        }
    }
}
