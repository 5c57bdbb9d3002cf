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
//! **User codes.** An app with `spec.ciba.requireUserCode` must pass the user's
//! `user_code` (§7.1), a secret the user set on their account page (kept as an argon2
//! hash). A user who is unknown, or who set no code, fails exactly like a wrong code (a
//! dummy hash is checked, so the time taken is the same); wrong codes are throttled per
//! user like passwords ([`super::login_guard`]), and no email goes out before the code
//! matched.
//!
//! **Login hint tokens.** A `login_hint_token` is a JWT of one of the app's
//! `trustedIssuers` (verified as for the JWT bearer grant). When that issuer is also an
//! `IdentityProvider` it names the user it signs in; otherwise its login claim is looked up
//! like a `login_hint`. It gives an app no more than `login_hint` does: a trusted issuer
//! is declared by the app's own namespace.
//!
//! State is a [`DecoupledRequest`] in the store (every replica can start, show, decide and
//! answer); the link's token is kept only as a digest, the decision handed to one poll.

use serde::Serialize;

use super::{
    AuthorizationServer, ErrorCode, OAuthError,
    assertion::{self, AssertionError, Unverified},
    authorize::requested_access,
    front_channel::hex,
    params::Params,
    server::store_error,
    token::Issued,
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
/// The shortest and longest user code a user may set (and an app may send).
pub const MIN_USER_CODE: usize = 6;
pub const MAX_USER_CODE: usize = 64;

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
    user_code: UserCode,
}

/// Where a request stands with its `user_code`.
#[derive(Debug)]
enum UserCode {
    /// The app does not require one.
    NotRequired,
    /// To be checked against the user's hash (argon2: [`BackchannelStart::check_user_code`]
    /// runs on a blocking thread). `throttle_key` is the user's key in the throttle.
    Unchecked {
        hash: Option<String>,
        given: String,
        throttle_key: String,
    },
    Checked {
        matched: bool,
        throttle_key: String,
    },
}

impl BackchannelStart {
    /// Whether [`check_user_code`](Self::check_user_code) must run before the request goes on.
    pub fn needs_user_code_check(&self) -> bool {
        matches!(self.user_code, UserCode::Unchecked { .. })
    }

    /// Compares the request's `user_code` with the user's. Blocking (argon2 is deliberately
    /// slow): call from a blocking thread, then [`AuthorizationServer::user_code_checked`].
    pub fn check_user_code(&mut self) {
        if let UserCode::Unchecked { hash, given, throttle_key } = &mut self.user_code {
            let matched = crate::identity::verify_secret(hash.as_deref(), given);
            self.user_code = UserCode::Checked { matched, throttle_key: std::mem::take(throttle_key) };
        }
    }
}

/// A user code as a user may set it: 6 to 64 characters, no control characters.
pub fn check_user_code_format(code: &str) -> Result<(), OAuthError> {
    let length = code.chars().count();
    if !(MIN_USER_CODE..=MAX_USER_CODE).contains(&length) || code.chars().any(char::is_control) {
        return Err(OAuthError::invalid_request(format!(
            "a user code has {MIN_USER_CODE} to {MAX_USER_CODE} characters without control characters"
        )));
    }
    Ok(())
}

/// Who a request's hint names, and under which key wrong user codes for them are throttled
/// (the subject, or the hint itself when it names nobody: both are throttled alike).
struct Hinted {
    user: Option<UserRecord>,
    throttle_key: String,
}

fn user_code_throttle_key(who: &str) -> String {
    format!("ciba-user:{}", who.trim().to_lowercase())
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
        let given_user_code = params.get("user_code");
        match (settings.require_user_code, given_user_code) {
            (true, None | Some("")) => {
                return Err(OAuthError::new(
                    ErrorCode::MissingUserCode,
                    "this app's requests must carry the user's user_code",
                ));
            }
            // A code the app believes protects the user, but that nothing would check.
            (false, Some(_)) => {
                return Err(OAuthError::invalid_request(
                    "this app does not use user codes (spec.ciba.requireUserCode is false); leave user_code out",
                ));
            }
            _ => {}
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
        let Hinted { user, throttle_key } = self.hinted_user(catalog, &client, params, now).await?;
        let user_code = match given_user_code.filter(|_| settings.require_user_code) {
            None => UserCode::NotRequired,
            Some(given) => {
                let key = user_code_throttle_key(&throttle_key);
                if let Some(wait) =
                    self.failed_user_codes.lock().expect("lock").retry_after(std::slice::from_ref(&key), now)
                {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidUserCode,
                        format!("too many wrong user codes for this user; try again in {wait} seconds"),
                    ));
                }
                let hash = match &user {
                    Some(u) if given.chars().count() <= MAX_USER_CODE => {
                        self.store.backchannel_user_code(&u.subject).await.map_err(store_error)?
                    }
                    _ => None,
                };
                let given: String = given.chars().take(MAX_USER_CODE + 1).collect();
                UserCode::Unchecked { hash, given, throttle_key: key }
            }
        };
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
        Ok(BackchannelStart {
            response,
            email: approval,
            digest,
            code: hex(&token_digest(&link)),
            record,
            interval,
            user_code,
        })
    }

    /// After [`BackchannelStart::check_user_code`]: a wrong code (or none set, or nobody
    /// named) is `invalid_user_code` and counts toward the user's throttle; a right one
    /// clears it.
    pub fn user_code_checked(&self, start: BackchannelStart, now: i64) -> Result<BackchannelStart, OAuthError> {
        if let UserCode::Checked { matched, throttle_key } = &start.user_code {
            let mut throttle = self.failed_user_codes.lock().expect("lock");
            if *matched {
                throttle.succeeded(throttle_key);
            } else {
                throttle.failed(std::slice::from_ref(throttle_key), now);
                drop(throttle);
                tracing::warn!(client_id = %start.record.client_id, "CIBA: a wrong user code was sent");
                return Err(OAuthError::new(
                    ErrorCode::InvalidUserCode,
                    "the user_code is not this user's (or the user set none)",
                ));
            }
        }
        Ok(start)
    }

    /// Records a started request (after its email went out): from now on it can be
    /// approved, and polled on every replica.
    pub async fn record_backchannel(
        &self,
        start: BackchannelStart,
        now: i64,
    ) -> Result<BackchannelResponse, OAuthError> {
        let BackchannelStart { response, email, digest, code, record, interval, user_code } = start;
        // Fail closed: a request whose user code was never checked is not recorded.
        if !matches!(user_code, UserCode::NotRequired | UserCode::Checked { matched: true, .. }) {
            return Err(OAuthError::new(ErrorCode::ServerError, "the user code was not checked"));
        }
        let stored =
            self.store.put_decoupled_request(&digest, &code, &record, interval, now).await.map_err(store_error)?;
        if !stored {
            return Err(OAuthError::new(ErrorCode::ServerError, "the request could not be recorded; try again"));
        }
        tracing::info!(client_id = %record.client_id, reached = email.is_some(), "backchannel authentication started");
        Ok(response)
    }

    /// The user a request names: exactly one of `login_hint`, `id_token_hint`,
    /// `login_hint_token` (§7.1). No user for a hint naming nobody (see the module's note on
    /// enumeration).
    async fn hinted_user(
        &self,
        catalog: &Catalog,
        client: &Client,
        params: &Params,
        now: i64,
    ) -> Result<Hinted, OAuthError> {
        let hints = ["login_hint", "id_token_hint", "login_hint_token"];
        let given: Vec<&str> = hints.into_iter().filter(|h| params.get(h).is_some_and(|v| !v.is_empty())).collect();
        match given.as_slice() {
            ["login_hint"] => self.user_by_login(catalog, params.get("login_hint").unwrap_or("")).await,
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
                    Some(user) => Ok(Hinted { throttle_key: user.subject.clone(), user: Some(user) }),
                    None => {
                        Err(OAuthError::new(ErrorCode::UnknownUserId, "the user of id_token_hint no longer exists"))
                    }
                }
            }
            ["login_hint_token"] => {
                self.login_hint_token_user(catalog, client, params.get("login_hint_token").unwrap_or(""), now).await
            }
            [] => Err(OAuthError::invalid_request("give one of login_hint, id_token_hint, login_hint_token")),
            _ => Err(OAuthError::invalid_request("give only one of login_hint, id_token_hint, login_hint_token")),
        }
    }

    /// The one user whose login name or email address is `hint`.
    async fn user_by_login(&self, catalog: &Catalog, hint: &str) -> Result<Hinted, OAuthError> {
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
        let user = if users.len() == 1 { users.pop() } else { None };
        let throttle_key = user.as_ref().map_or_else(|| format!("hint:{hint}"), |u| u.subject.clone());
        Ok(Hinted { user, throttle_key })
    }

    /// §7.1 `login_hint_token`: a JWT of one of the app's trusted issuers naming the user.
    /// Errors are the backchannel endpoint's (§13): `expired_login_hint_token` for an
    /// expired one, `invalid_request` for any other fault.
    async fn login_hint_token_user(
        &self,
        catalog: &Catalog,
        client: &Client,
        token: &str,
        now: i64,
    ) -> Result<Hinted, OAuthError> {
        let invalid = |e: OAuthError| OAuthError::invalid_request(format!("login_hint_token: {}", e.description));
        // Expiry first, from the unverified claims: saying a forged token expired reveals
        // nothing, and an expired one costs no key fetch.
        let unverified = Unverified::parse(token).map_err(|e| invalid(OAuthError::invalid_request(e.to_string())))?;
        if let Err(AssertionError::Expired) = assertion::check_times(&unverified.claims, i64::MAX / 2, now) {
            return Err(OAuthError::new(ErrorCode::ExpiredLoginHintToken, "the login_hint_token has expired"));
        }
        let asserted = self.verify_trusted_assertion(catalog, client, token, now).await.map_err(invalid)?;
        if asserted.identity_assertion {
            return Err(OAuthError::invalid_request(
                "login_hint_token: an ID-JAG is an authorization grant for the token endpoint, not a login hint",
            ));
        }
        if asserted.user.signs_in {
            let user = self.store.user(&asserted.user.subject).await.map_err(store_error)?;
            return Ok(Hinted { user, throttle_key: asserted.user.subject });
        }
        self.user_by_login(catalog, &asserted.user.login).await
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

    #[test]
    fn user_codes_are_6_to_64_printable_characters() {
        for good in ["123456", "correct horse battery", &"ü".repeat(64)] {
            assert!(check_user_code_format(good).is_ok(), "{good:?}");
        }
        for bad in ["", "12345", "1234\n56", &"x".repeat(65)] {
            assert_eq!(check_user_code_format(bad).unwrap_err().code, ErrorCode::InvalidRequest, "{bad:?}");
        }
    }
}
