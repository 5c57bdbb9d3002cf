//! `/register` (RFC 7591) and `/register/{client_id}` (RFC 7592): thin handlers over
//! `AuthorizationServer::register` and friends.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    body::Bytes,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{AppState, response::no_store_json};
use crate::clock::now;
use crate::oauth::clients::RegisterError;
use crate::store::RegistrationLimit;

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    no_store_json(status, &json!({ "error": code, "error_description": description }))
}

fn failure(state: &AppState, e: RegisterError) -> Response {
    state.metrics.observe_oauth("register", "none", "error");
    match e {
        RegisterError::Invalid(e) => {
            tracing::info!(error = e.code, description = %e.description, "registration refused");
            error(StatusCode::BAD_REQUEST, e.code, &e.description)
        }
        RegisterError::Disabled => {
            error(StatusCode::NOT_FOUND, "invalid_request", "dynamic client registration is not enabled")
        }
        RegisterError::Limited(RegistrationLimit::MaxClients) => error(
            StatusCode::FORBIDDEN,
            "access_denied",
            "this server has reached its limit of registered clients; contact its operator",
        ),
        RegisterError::Limited(limit) => {
            let what = match limit {
                RegistrationLimit::PerSource => "too many registrations from this address",
                _ => "too many registrations",
            };
            let mut response =
                error(StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable", &format!("{what}; retry later"));
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("3600"));
            response
        }
        // RFC 7592 §2.1/§2.4: a bad token, or a client that no longer exists, is 401.
        RegisterError::InvalidToken => {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the registration access token is missing or invalid, or the client no longer exists",
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
            response
        }
        RegisterError::Store(e) => {
            tracing::warn!(error = %e, "registration: store unavailable");
            error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "storage is unavailable; retry later")
        }
    }
}

/// The JSON body of a registration request (RFC 7591 §3.1: `application/json`).
fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, RegisterError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    let invalid = |d: &str| crate::oauth::register::RegistrationError {
        code: "invalid_client_metadata",
        description: d.to_string(),
    };
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(invalid("the body must be application/json").into());
    }
    serde_json::from_slice(body).map_err(|_| invalid("the body is not valid JSON").into())
}

pub async fn register(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let catalog = state.catalog.load();
    let result = match json_body(&headers, &body) {
        Ok(value) => {
            let source = super::client_ip::client_ip(peer.ip(), &headers, &state.trusted_proxies);
            state.server.register(&catalog, &value, &source.to_string(), now()).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(response) => {
            state.metrics.observe_oauth("register", "none", "success");
            no_store_json(StatusCode::CREATED, &response)
        }
        Err(e) => failure(&state, e),
    }
}

pub async fn read(State(state): State<Arc<AppState>>, Path(client_id): Path<String>, headers: HeaderMap) -> Response {
    match state.server.read_registration(&client_id, super::bearer_token(&headers)).await {
        Ok(response) => no_store_json(StatusCode::OK, &response),
        Err(e) => failure(&state, e),
    }
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let catalog = state.catalog.load();
    let result = match json_body(&headers, &body) {
        Ok(value) => {
            state.server.update_registration(&catalog, &client_id, super::bearer_token(&headers), &value).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(response) => no_store_json(StatusCode::OK, &response),
        Err(e) => failure(&state, e),
    }
}

pub async fn delete(State(state): State<Arc<AppState>>, Path(client_id): Path<String>, headers: HeaderMap) -> Response {
    let catalog = state.catalog.load();
    match state.server.delete_registration(&catalog, &client_id, super::bearer_token(&headers), now()).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failure(&state, e),
    }
}
