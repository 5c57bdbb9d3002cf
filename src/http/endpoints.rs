//! Token, device authorization, introspection and revocation handlers: parse, call the
//! core, render, count.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    body::Bytes,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{AppState, HttpError, response};
use crate::api::{CIBA, DEVICE_CODE, JWT_BEARER, TOKEN_EXCHANGE};
use crate::audit::Event;
use crate::clock::now;
use crate::oauth::{ErrorCode, OAuthError, params::Params};

/// The `Authorization` header, if present and readable.
fn authorization(headers: &HeaderMap) -> Result<Option<&str>, OAuthError> {
    match headers.get_all(header::AUTHORIZATION).iter().count() {
        0 => Ok(None),
        1 => headers[header::AUTHORIZATION]
            .to_str()
            .map(Some)
            .map_err(|_| OAuthError::invalid_request("the Authorization header is not valid text")),
        _ => Err(OAuthError::invalid_request("more than one Authorization header")),
    }
}

/// Parses an `application/x-www-form-urlencoded` body (RFC 6749 §3.2).
fn form(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    Params::parse(body)
}

/// Label value for a grant type, from a fixed set (user input never becomes a label).
fn grant_label(params: Option<&Params>) -> &'static str {
    match params.and_then(|p| p.get("grant_type")) {
        None => "none",
        Some("client_credentials") => "client_credentials",
        Some("authorization_code") => "authorization_code",
        Some("refresh_token") => "refresh_token",
        Some(JWT_BEARER) => JWT_BEARER,
        Some(TOKEN_EXCHANGE) => TOKEN_EXCHANGE,
        Some(DEVICE_CODE) => DEVICE_CODE,
        Some(CIBA) => CIBA,
        Some(_) => "other",
    }
}

fn finish<T>(
    state: &AppState,
    endpoint: &'static str,
    grant: &'static str,
    request: (&HeaderMap, Option<&Params>),
    result: Result<T, OAuthError>,
    ok: impl FnOnce(T) -> Response,
) -> Response {
    match result {
        Ok(value) => {
            state.metrics.observe_oauth(endpoint, grant, "success");
            ok(value)
        }
        // RFC 8628 §3.5: a device polls until its user decides; each wait is not a refusal.
        Err(error) if error.code == ErrorCode::AuthorizationPending => {
            state.metrics.observe_oauth(endpoint, grant, error.code.as_str());
            tracing::debug!(endpoint, "device authorization pending");
            HttpError::new(error).into_response()
        }
        Err(error) => {
            state.metrics.observe_oauth(endpoint, grant, error.code.as_str());
            let claimed = claimed_client(request.0, request.1);
            let client_id = claimed.as_deref();
            // Descriptions are written to be safe to show; they never hold a secret or token.
            tracing::info!(endpoint, grant_type = grant, client_id, error = error.code.as_str(), description = %error.description, "request refused");
            state.server.audit().emit(refusal(endpoint, grant, client_id, &error));
            HttpError::new(error).into_response()
        }
    }
}

/// The audit record of a refused token, introspection or revocation request (the flows
/// record what succeeds).
fn refusal(endpoint: &str, grant: &str, client_id: Option<&str>, error: &OAuthError) -> Event {
    let (caller, code) = (client_id.map(str::to_string), error.code.as_str().to_string());
    match endpoint {
        "introspect" => {
            Event::Introspection { caller, active: false, jti: None, token_client_id: None, error: Some(code) }
        }
        "revoke" => Event::Revocation { caller, revoked: "none", jti: None, family_id: None, error: Some(code) },
        _ => Event::TokenRefused { grant_type: grant.to_string(), client_id: caller, error: code },
    }
}

/// The client id a request claims (Basic credentials, a client assertion or the form), for
/// logs and the audit trail only: never the secret, and not yet authenticated.
fn claimed_client(headers: &HeaderMap, params: Option<&Params>) -> Option<String> {
    let params = params?;
    let authorization = authorization(headers).ok()?;
    crate::oauth::client_auth::presented_client(authorization, params).ok().map(|p| p.client_id)
}

pub async fn token(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let params = form(&headers, &body);
    let grant = grant_label(params.as_ref().ok());
    let result = match (&params, authorization(&headers)) {
        (Ok(params), Ok(auth)) => state.server.token(&state.catalog.load(), auth, params, now()).await,
        (Err(e), _) => Err(e.clone()),
        (_, Err(e)) => Err(e),
    };
    finish(&state, "token", grant, (&headers, params.as_ref().ok()), result, |body| {
        response::no_store_json(StatusCode::OK, &body)
    })
}

/// RFC 8628 §3.1–§3.2. Each request keeps a row in the store before anyone has signed in,
/// so requests per source are bounded like the sign-in pages' (429 with Retry-After).
pub async fn device_authorization(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let source =
        super::client_ip::limit_source(super::client_ip::client_ip(peer.ip(), &headers, &state.trusted_proxies));
    if let Err(wait) = state.server.admit_unauthenticated(&source, now()) {
        tracing::warn!(source, "too many device authorizations for one source; refused");
        return HttpError::new(OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            format!("too many requests from your network; try again in {wait} seconds"),
        ))
        .with_status(StatusCode::TOO_MANY_REQUESTS)
        .with_header(header::RETRY_AFTER, HeaderValue::from(wait))
        .into_response();
    }
    let params = form(&headers, &body);
    let result = match (&params, authorization(&headers)) {
        (Ok(params), Ok(auth)) => state.server.device_authorization(&state.catalog.load(), auth, params, now()).await,
        (Err(e), _) => Err(e.clone()),
        (_, Err(e)) => Err(e),
    };
    finish(&state, "device_authorization", DEVICE_CODE, (&headers, params.as_ref().ok()), result, |body| {
        response::no_store_json(StatusCode::OK, &body)
    })
}

/// OpenID Connect CIBA Core §7: the app (authenticated) names a user. The user's email goes
/// out before the request is recorded: a relay that is down leaves nothing behind.
pub async fn backchannel_authentication(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = form(&headers, &body);
    let result = match (&params, authorization(&headers)) {
        (Ok(params), Ok(auth)) => start_backchannel(&state, auth, params).await,
        (Err(e), _) => Err(e.clone()),
        (_, Err(e)) => Err(e),
    };
    finish(&state, "backchannel_authentication", CIBA, (&headers, params.as_ref().ok()), result, |body| {
        response::no_store_json(StatusCode::OK, &body)
    })
}

async fn start_backchannel(
    state: &AppState,
    authorization: Option<&str>,
    params: &Params,
) -> Result<crate::oauth::backchannel::BackchannelResponse, OAuthError> {
    let Some(mailer) = &state.mailer else {
        return Err(OAuthError::new(
            ErrorCode::ServerError,
            "this server sends no email (start it with --smtp-host): users cannot be reached for CIBA",
        ));
    };
    let mut started =
        state.server.backchannel_authentication(&state.catalog.load(), authorization, params, now()).await?;
    if started.needs_user_code_check() {
        started = state
            .password_work(move || {
                started.check_user_code();
                started
            })
            .await
            .ok_or_else(|| OAuthError::new(ErrorCode::TemporarilyUnavailable, "the server is busy; try again"))?;
        started = state.server.user_code_checked(started, now())?;
    }
    if let Some(approval) = &started.email {
        let email = state.pages.approval_email(approval).map_err(|e| {
            tracing::error!(error = %e, "the CIBA email template cannot be rendered");
            OAuthError::new(ErrorCode::ServerError, "the approval email cannot be written")
        })?;
        mailer.send(&email).await.map_err(|e| {
            tracing::warn!(error = %e, "the CIBA approval email could not be sent");
            OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the user could not be reached (email delivery failed); try again later",
            )
        })?;
    }
    state.server.record_backchannel(started, now()).await
}

pub async fn introspect(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let params = form(&headers, &body);
    let result = match (&params, authorization(&headers)) {
        (Ok(params), Ok(auth)) => state.server.introspect(&state.catalog.load(), auth, params, now()).await,
        (Err(e), _) => Err(e.clone()),
        (_, Err(e)) => Err(e),
    };
    finish(&state, "introspect", "none", (&headers, params.as_ref().ok()), result, |body| {
        response::no_store_json(StatusCode::OK, &body)
    })
}

pub async fn revoke(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let params = form(&headers, &body);
    let result = match (&params, authorization(&headers)) {
        (Ok(params), Ok(auth)) => state.server.revoke(&state.catalog.load(), auth, params, now()).await,
        (Err(e), _) => Err(e.clone()),
        (_, Err(e)) => Err(e),
    };
    finish(&state, "revoke", "none", (&headers, params.as_ref().ok()), result, |()| {
        response::no_store_json(StatusCode::OK, &serde_json::json!({}))
    })
}
