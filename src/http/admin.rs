//! `/admin/clients`: list and delete self-registered clients (operator mode). Every request
//! is authorized by the configured [`AdminAuthorizer`](crate::admin::AdminAuthorizer).

use std::sync::Arc;

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{AppState, HttpError, response::no_store_json};
use crate::admin::{ClientFilter, ClientSummary};
use crate::clock::now;
use crate::oauth::{ErrorCode, OAuthError};

type Result<T> = std::result::Result<T, HttpError>;

/// Authorizes the caller for `verb`; returns who it is.
async fn caller(state: &AppState, headers: &HeaderMap, verb: &str) -> Result<String> {
    let Some(authorizer) = &state.admin else {
        return Err(HttpError::new(OAuthError::invalid_request("the admin API is not enabled (operator mode only)"))
            .with_status(StatusCode::NOT_FOUND));
    };
    let Some(token) = super::bearer_token(headers) else {
        return Err(HttpError::new(OAuthError::new(ErrorCode::InvalidToken, "a Kubernetes bearer token is required"))
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"inbound-admin\"")));
    };
    let namespace =
        state.catalog.load().registration_policy().map(|p| p.key.namespace.clone()).unwrap_or_else(|| "default".into());
    Ok(authorizer.authorize(token, verb, &namespace).await?)
}

fn filter(query: Option<String>) -> Result<ClientFilter> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    ClientFilter::from_query(&pairs, now()).map_err(|e| HttpError::new(OAuthError::invalid_request(e)))
}

async fn selected(state: &AppState, filter: &ClientFilter) -> Result<Vec<crate::store::RegisteredClient>> {
    let all = state.server.registered_clients().await?;
    Ok(all.into_iter().filter(|c| filter.matches(c)).collect())
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    caller(&state, &headers, "list").await?;
    let filter = filter(query)?;
    let clients = selected(&state, &filter).await?;
    let summaries: Vec<ClientSummary> = clients.iter().map(Into::into).collect();
    Ok(no_store_json(StatusCode::OK, &json!({ "clients": summaries })))
}

/// `DELETE /admin/clients?filters` (at least one filter) or `DELETE /admin/clients/{id}`.
pub async fn delete_matching(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let user = caller(&state, &headers, "delete").await?;
    let filter = filter(query)?;
    if filter.is_empty() {
        return Err(HttpError::new(OAuthError::invalid_request("give at least one filter")));
    }
    let clients = selected(&state, &filter).await?;
    let deleted = delete(&state, &user, clients.iter().map(|c| c.client_id.as_str())).await?;
    Ok(no_store_json(StatusCode::OK, &json!({ "deleted": deleted })))
}

pub async fn delete_one(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Result<Response> {
    let user = caller(&state, &headers, "delete").await?;
    let deleted = delete(&state, &user, std::iter::once(client_id.as_str())).await?;
    if deleted.is_empty() {
        return Err(
            HttpError::new(OAuthError::invalid_request("no such registered client")).with_status(StatusCode::NOT_FOUND)
        );
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete<'a>(state: &AppState, user: &str, ids: impl Iterator<Item = &'a str>) -> Result<Vec<String>> {
    let catalog = state.catalog.load();
    let mut deleted = Vec::new();
    for id in ids {
        if state.server.delete_registered_client(id, now()).await? {
            catalog.dynamic().remove(id);
            tracing::info!(client_id = id, by = user, "registered client deleted through the admin API");
            deleted.push(id.to_string());
        }
    }
    Ok(deleted)
}
