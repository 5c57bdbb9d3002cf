//! `/admin/clients`: list and delete self-registered clients (operator mode). Every request
//! is authorized by the configured [`AdminAuthorizer`](crate::admin::AdminAuthorizer).

use std::sync::Arc;

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{AppState, response::no_store_json};
use crate::clock::now;

/// Helpers return the finished error response to send; axum's `Response` is large, and this
/// is the cold path.
type Result<T> = std::result::Result<T, Box<Response>>;
use crate::admin::{AdminDenied, ClientFilter, ClientSummary};

fn error(status: StatusCode, code: &str, description: &str) -> Box<Response> {
    let mut response = no_store_json(status, &json!({ "error": code, "error_description": description }));
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"inbound-admin\""));
    }
    Box::new(response)
}

/// Authorizes the caller for `verb`; the response to send otherwise.
async fn caller(state: &AppState, headers: &HeaderMap, verb: &str) -> Result<String> {
    let Some(authorizer) = &state.admin else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "the admin API is not enabled (operator mode only)",
        ));
    };
    let Some(token) = super::bearer_token(headers) else {
        return Err(error(StatusCode::UNAUTHORIZED, "invalid_token", "a Kubernetes bearer token is required"));
    };
    let namespace = state
        .catalog
        .load()
        .registration_policy()
        .and_then(|p| p.metadata.namespace.clone())
        .unwrap_or_else(|| "default".into());
    match authorizer.authorize(token, verb, &namespace).await {
        Ok(user) => Ok(user),
        Err(AdminDenied::Unauthenticated) => {
            Err(error(StatusCode::UNAUTHORIZED, "invalid_token", "the bearer token does not authenticate"))
        }
        Err(e @ AdminDenied::Forbidden(..)) => Err(error(StatusCode::FORBIDDEN, "access_denied", &e.to_string())),
        Err(AdminDenied::Unavailable(detail)) => {
            tracing::warn!(%detail, "admin API: cannot review the caller");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "cannot check the caller; retry later",
            ))
        }
    }
}

fn filter(query: Option<String>) -> Result<ClientFilter> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    ClientFilter::from_query(&pairs, now()).map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_request", &e))
}

async fn selected(state: &AppState, filter: &ClientFilter) -> Result<Vec<crate::store::RegisteredClient>> {
    match state.server.store.registered_clients().await {
        Ok(all) => Ok(all.into_iter().filter(|c| filter.matches(c)).collect()),
        Err(e) => {
            tracing::warn!(error = %e, "admin API: store unavailable");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "storage is unavailable; retry later",
            ))
        }
    }
}

pub async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let result = async {
        caller(&state, &headers, "list").await?;
        let filter = filter(query)?;
        let clients = selected(&state, &filter).await?;
        let summaries: Vec<ClientSummary> = clients.iter().map(Into::into).collect();
        Ok::<_, Box<Response>>(no_store_json(StatusCode::OK, &json!({ "clients": summaries })))
    };
    result.await.unwrap_or_else(|r| *r)
}

/// `DELETE /admin/clients?filters` (at least one filter) or `DELETE /admin/clients/{id}`.
pub async fn delete_matching(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let user = caller(&state, &headers, "delete").await?;
        let filter = filter(query)?;
        if filter.is_empty() {
            return Err(error(StatusCode::BAD_REQUEST, "invalid_request", "give at least one filter"));
        }
        let clients = selected(&state, &filter).await?;
        let deleted = delete(&state, &user, clients.iter().map(|c| c.client_id.as_str())).await?;
        Ok(no_store_json(StatusCode::OK, &json!({ "deleted": deleted })))
    };
    result.await.unwrap_or_else(|r| *r)
}

pub async fn delete_one(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Response {
    let result = async {
        let user = caller(&state, &headers, "delete").await?;
        let deleted = delete(&state, &user, std::iter::once(client_id.as_str())).await?;
        if deleted.is_empty() {
            return Err(error(StatusCode::NOT_FOUND, "invalid_request", "no such registered client"));
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    result.await.unwrap_or_else(|r| *r)
}

async fn delete<'a>(state: &AppState, user: &str, ids: impl Iterator<Item = &'a str>) -> Result<Vec<String>> {
    let catalog = state.catalog.load();
    let mut deleted = Vec::new();
    for id in ids {
        match state.server.store.delete_registered_client(id, now()).await {
            Ok(true) => {
                catalog.dynamic().remove(id);
                tracing::info!(client_id = id, by = user, "registered client deleted through the admin API");
                deleted.push(id.to_string());
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "admin API: store unavailable");
                return Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "storage is unavailable; retry later",
                ));
            }
        }
    }
    Ok(deleted)
}
