//! OpenID Connect RP-Initiated Logout 1.0: an app sends the browser to the
//! `end_session_endpoint` with `id_token_hint`, `client_id`, `post_logout_redirect_uri`
//! and `state`; the user confirms; the session ends in the store; the browser goes back to
//! the app only to a URI the app registered (`spec.postLogoutRedirectUris`), exactly.
//!
//! The confirmation (§2: "the OP SHOULD ask the End-User whether to log out") keeps a
//! cross-site link from signing users out; its form carries a CSRF token bound to the
//! session.

use std::sync::Arc;

use serde::Deserialize;

use super::{AuthorizationServer, OAuthError, front_channel::Refusal, params::Params, server::store_error};
use crate::catalog::{Catalog, Client};
use crate::protocol::redirect;
use crate::secrets::token_digest;

/// What a logout request asks, validated.
#[derive(Debug)]
pub struct LogoutRequest {
    pub id_token_hint: Option<String>,
    /// The app, from `client_id` or the hint's audience.
    pub client: Option<Arc<Client>>,
    /// Registered for that app (checked).
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

/// What the browser sees next.
#[derive(Debug)]
pub enum LogoutStep {
    /// Ask the user; the form re-sends the request with `csrf`.
    Confirm { request: LogoutRequest, csrf: String },
    /// Signed out: back to the app, or a page saying so.
    Done { redirect: Option<String> },
}

#[derive(Deserialize)]
struct HintClaims {
    aud: serde_json::Value,
}

fn page(description: &str) -> Refusal {
    Refusal::BadRequest(OAuthError::invalid_request(description))
}

impl AuthorizationServer {
    /// §2: checks the request's parameters. Nothing here redirects: a hint from another
    /// issuer, a client it does not name, or an unregistered redirect is refused on a page.
    pub fn logout_request(&self, catalog: &Catalog, params: &Params) -> Result<LogoutRequest, Refusal> {
        let hint = params.get("id_token_hint").filter(|h| !h.is_empty());
        let hinted: Option<Vec<String>> = match hint {
            None => None,
            Some(token) => {
                let claims: HintClaims = self
                    .keys
                    .load()
                    .verify_id_token_hint(token, &self.issuer)
                    .map_err(|_| page("id_token_hint is not an ID token issued by this server"))?;
                Some(match claims.aud {
                    serde_json::Value::String(a) => vec![a],
                    serde_json::Value::Array(a) => a.into_iter().filter_map(|v| v.as_str().map(String::from)).collect(),
                    _ => vec![],
                })
            }
        };
        let client_id = match (params.get("client_id"), &hinted) {
            (Some(id), Some(aud)) if !aud.iter().any(|a| a == id) => {
                return Err(page("client_id is not the audience of id_token_hint"));
            }
            (Some(id), _) => Some(id.to_string()),
            (None, Some(aud)) => aud.first().cloned(),
            (None, None) => None,
        };
        let client = client_id.as_deref().and_then(|id| catalog.client(id));
        if client_id.is_some() && client.is_none() {
            return Err(page("unknown client_id"));
        }
        let post_logout_redirect_uri = match params.get("post_logout_redirect_uri") {
            None => None,
            Some(uri) => {
                let Some(client) = &client else {
                    return Err(page("post_logout_redirect_uri needs client_id or id_token_hint to say whose it is"));
                };
                // §3: exactly one of the app's registered post-logout redirect URIs.
                if !redirect::is_registered(&client.spec.post_logout_redirect_uris, uri) {
                    return Err(page("post_logout_redirect_uri is not registered for this app"));
                }
                Some(uri.to_string())
            }
        };
        Ok(LogoutRequest {
            id_token_hint: hint.map(str::to_string),
            client,
            post_logout_redirect_uri,
            state: params.get("state").map(str::to_string),
        })
    }

    /// The logout request arrived: ask the signed-in user to confirm (or, without a session,
    /// there is nothing to end).
    pub async fn logout(
        &self,
        catalog: &Catalog,
        params: &Params,
        session_value: Option<&str>,
        now: i64,
    ) -> Result<LogoutStep, Refusal> {
        let request = self.logout_request(catalog, params)?;
        match (self.session(session_value, now).await?, session_value) {
            (Some(_), Some(value)) => Ok(LogoutStep::Confirm { request, csrf: self.account_csrf(value) }),
            _ => Ok(LogoutStep::Done { redirect: done_redirect(&request) }),
        }
    }

    /// The user confirmed: the session is deleted from the store.
    pub async fn confirm_logout(
        &self,
        catalog: &Catalog,
        params: &Params,
        session_value: Option<&str>,
        now: i64,
    ) -> Result<LogoutStep, Refusal> {
        let request = self.logout_request(catalog, params)?;
        if let Some(value) = session_value {
            if !self.account_csrf_matches(value, params.get("csrf").unwrap_or("")) {
                return Err(Refusal::Forbidden(OAuthError::invalid_request(
                    "this sign-out form was not issued to this browser",
                )));
            }
            let session = self.session(Some(value), now).await?;
            self.store.delete_session(&token_digest(value)).await.map_err(|e| Refusal::Failed(store_error(e)))?;
            let client_id = request.client.as_ref().map(|c| c.client_id.clone());
            tracing::info!(client_id = client_id.as_deref(), "user signed out");
            if let Some(session) = session {
                self.audit.emit(crate::audit::Event::Logout { subject: session.subject, client_id });
            }
        }
        Ok(LogoutStep::Done { redirect: done_redirect(&request) })
    }
}

/// §3: the registered URI with `state` added, when the app asked for one.
fn done_redirect(request: &LogoutRequest) -> Option<String> {
    let uri = request.post_logout_redirect_uri.as_deref()?;
    let mut url = url::Url::parse(uri).ok()?;
    if let Some(state) = &request.state {
        url.query_pairs_mut().append_pair("state", state);
    }
    Some(url.to_string())
}
