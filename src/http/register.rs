//! `/register` (RFC 7591) and `/register/{client_id}` (RFC 7592): thin handlers over
//! `AuthorizationServer::register` and friends.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    body::Bytes,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::Value;

use super::{AppState, HttpError, response::no_store_json};
use crate::clock::now;
use crate::oauth::{ErrorCode, OAuthError};

type Result<T> = std::result::Result<T, HttpError>;

/// The JSON body of a registration request (RFC 7591 §3.1: `application/json`).
fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<Value> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    let invalid = |d: &str| HttpError::new(OAuthError::new(ErrorCode::InvalidClientMetadata, d));
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(invalid("the body must be application/json"));
    }
    serde_json::from_slice(body).map_err(|_| invalid("the body is not valid JSON"))
}

/// Every refused registration request is counted.
fn refused(state: &AppState, e: impl Into<HttpError>) -> HttpError {
    state.metrics.observe_oauth("register", "none", "error");
    e.into()
}

pub async fn register(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let catalog = state.catalog.load();
    let value = json_body(&headers, &body).map_err(|e| refused(&state, e))?;
    let ip = super::client_ip::client_ip(peer.ip(), &headers, &state.trusted_proxies);
    let source = super::client_ip::limit_source(ip);
    let response = state.server.register(&catalog, &value, &source, now()).await.map_err(|e| refused(&state, e))?;
    state.metrics.observe_oauth("register", "none", "success");
    Ok(no_store_json(StatusCode::CREATED, &response))
}

pub async fn read(
    State(state): State<Arc<AppState>>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let response = state
        .server
        .read_registration(&client_id, super::bearer_token(&headers))
        .await
        .map_err(|e| refused(&state, e))?;
    Ok(no_store_json(StatusCode::OK, &response))
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let catalog = state.catalog.load();
    let value = json_body(&headers, &body).map_err(|e| refused(&state, e))?;
    let response = state
        .server
        .update_registration(&catalog, &client_id, super::bearer_token(&headers), &value)
        .await
        .map_err(|e| refused(&state, e))?;
    Ok(no_store_json(StatusCode::OK, &response))
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let catalog = state.catalog.load();
    state
        .server
        .delete_registration(&catalog, &client_id, super::bearer_token(&headers), now())
        .await
        .map_err(|e| refused(&state, e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
