//! The admin API (operator mode): `/admin/clients` lists and deletes self-registered
//! clients, `/admin/consents` lists and revokes consents. Every request is authorized by the
//! configured [`AdminAuthorizer`](crate::admin::AdminAuthorizer).

use std::sync::Arc;

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{AppState, HttpError, response::no_store_json};
use std::collections::BTreeSet;

use crate::admin::{
    AdminAuthorizer, AdminDenied, CONSENTS, ClientFilter, ClientSummary, ConsentFilter, ConsentSummary,
    REGISTERED_CLIENTS,
};
use crate::audit::Event;
use crate::clock::now;
use crate::oauth::{AdministeredConsent, ErrorCode, OAuthError};

type Result<T> = std::result::Result<T, HttpError>;

/// The caller's bearer token, once the admin API is enabled.
fn bearer<'a>(state: &'a AppState, headers: &'a HeaderMap) -> Result<(&'a dyn AdminAuthorizer, &'a str)> {
    let Some(authorizer) = &state.admin else {
        return Err(HttpError::new(OAuthError::invalid_request("the admin API is not enabled (operator mode only)"))
            .with_status(StatusCode::NOT_FOUND));
    };
    let Some(token) = super::bearer_token(headers) else {
        return Err(HttpError::new(OAuthError::new(ErrorCode::InvalidToken, "a Kubernetes bearer token is required"))
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"inbound-admin\"")));
    };
    Ok((authorizer.as_ref(), token))
}

/// Authorizes `verb` on the registered clients of each namespace in `namespaces` (the
/// namespaces of the policies that admitted them: permission follows the client, not
/// whichever policy enables registration today). Returns the caller's name and the
/// namespaces it may act in; with none, the first refusal.
async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    (verb, resource): (&str, &str),
    namespaces: BTreeSet<String>,
) -> Result<(String, BTreeSet<String>)> {
    let (authorizer, token) = bearer(state, headers)?;
    let mut allowed = BTreeSet::new();
    let mut caller = None;
    let mut refusal = None;
    for namespace in namespaces {
        match authorizer.authorize(token, verb, resource, &namespace).await {
            Ok(name) => {
                caller = Some(name);
                allowed.insert(namespace);
            }
            // Not authenticated, or the check itself failed: no other namespace will differ.
            Err(e @ (AdminDenied::Unauthenticated | AdminDenied::Unavailable(_) | AdminDenied::Throttled)) => {
                return Err(e.into());
            }
            Err(e) => refusal = refusal.or(Some(e)),
        }
    }
    match (caller, refusal) {
        (Some(caller), _) => Ok((caller, allowed)),
        (None, Some(refusal)) => Err(refusal.into()),
        (None, None) => Err(AdminDenied::Unauthenticated.into()),
    }
}

/// Where an empty answer is authorized: the registration policy's namespace (else the
/// operator's), so that an unauthorized caller is refused even when there is nothing to see.
fn home_namespace(state: &AppState) -> String {
    state.catalog.load().registration_policy().map(|p| p.key.namespace.clone()).unwrap_or_else(|| "default".into())
}

/// The query string's pairs, as the filters read them.
fn query_pairs(query: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect()
}

fn filter(query: Option<String>) -> Result<ClientFilter> {
    ClientFilter::from_query(&query_pairs(query), now()).map_err(|e| HttpError::new(OAuthError::invalid_request(e)))
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
    let filter = filter(query)?;
    let clients = selected(&state, &filter).await?;
    let mut namespaces: BTreeSet<String> = clients.iter().map(|c| c.policy.namespace.clone()).collect();
    namespaces.insert(home_namespace(&state));
    let (caller, allowed) = authorize(&state, &headers, ("list", REGISTERED_CLIENTS), namespaces).await?;
    let summaries: Vec<ClientSummary> =
        clients.iter().filter(|c| allowed.contains(&c.policy.namespace)).map(Into::into).collect();
    state.server.audit().emit(Event::AdminAction {
        action: "list_clients".into(),
        actor: Some(caller),
        count: summaries.len(),
    });
    Ok(no_store_json(StatusCode::OK, &json!({ "clients": summaries })))
}

/// `DELETE /admin/clients?filters` (at least one filter) or `DELETE /admin/clients/{id}`.
/// All or nothing: a caller not allowed for one of the matched clients deletes none.
pub async fn delete_matching(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let filter = filter(query)?;
    if filter.is_empty() {
        bearer(&state, &headers)?;
        return Err(HttpError::new(OAuthError::invalid_request("give at least one filter")));
    }
    let clients = selected(&state, &filter).await?;
    let user = authorize_all(&state, &headers, &clients).await?;
    let deleted = delete(&state, &user, clients.iter().map(|c| c.client_id.as_str())).await?;
    Ok(no_store_json(StatusCode::OK, &json!({ "deleted": deleted })))
}

pub async fn delete_one(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Result<Response> {
    let filter = ClientFilter { id_equals: Some(client_id.clone()), ..ClientFilter::default() };
    let clients = selected(&state, &filter).await?;
    let user = authorize_all(&state, &headers, &clients).await?;
    let deleted = delete(&state, &user, clients.iter().map(|c| c.client_id.as_str())).await?;
    if deleted.is_empty() {
        return Err(
            HttpError::new(OAuthError::invalid_request("no such registered client")).with_status(StatusCode::NOT_FOUND)
        );
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `delete` on the namespace of every client in `clients` (or, with none, the home
/// namespace: the caller learns nothing about what exists without permission).
async fn authorize_all(
    state: &AppState,
    headers: &HeaderMap,
    clients: &[crate::store::RegisteredClient],
) -> Result<String> {
    let namespaces: BTreeSet<String> = clients.iter().map(|c| c.policy.namespace.clone()).collect();
    authorize_every(state, headers, ("delete", REGISTERED_CLIENTS), namespaces).await
}

/// `verb` on `resource` in every one of `namespaces` (or, with none, the home namespace:
/// the caller learns nothing about what exists without permission); all or nothing.
async fn authorize_every(
    state: &AppState,
    headers: &HeaderMap,
    (verb, resource): (&str, &str),
    mut namespaces: BTreeSet<String>,
) -> Result<String> {
    if namespaces.is_empty() {
        namespaces.insert(home_namespace(state));
    }
    let wanted = namespaces.len();
    let (user, allowed) = authorize(state, headers, (verb, resource), namespaces.clone()).await?;
    if allowed.len() < wanted {
        let denied = namespaces.difference(&allowed).next().cloned().unwrap_or_default();
        return Err(AdminDenied::Forbidden(user, verb.into(), resource.into(), denied).into());
    }
    Ok(user)
}

async fn delete<'a>(state: &AppState, user: &str, ids: impl Iterator<Item = &'a str>) -> Result<Vec<String>> {
    let catalog = state.catalog.load();
    let mut deleted = Vec::new();
    for id in ids {
        if state.server.delete_registered_client(id, Some(user), now()).await? {
            catalog.dynamic().remove(id);
            tracing::info!(client_id = id, by = user, "registered client deleted through the admin API");
            deleted.push(id.to_string());
        }
    }
    Ok(deleted)
}

/// The namespace a consent is administered in: its app's; for a client that no longer
/// exists, the home namespace (its consent is then only a record).
fn consent_namespace(state: &AppState, consent: &AdministeredConsent) -> String {
    consent.namespace.clone().unwrap_or_else(|| home_namespace(state))
}

fn consent_filter(query: Option<String>) -> Result<ConsentFilter> {
    ConsentFilter::from_query(&query_pairs(query), now()).map_err(|e| HttpError::new(OAuthError::invalid_request(e)))
}

async fn selected_consents(state: &AppState, filter: &ConsentFilter) -> Result<Vec<AdministeredConsent>> {
    Ok(state.server.consents(&state.catalog.load(), |c| filter.matches(c), now()).await?)
}

/// `GET /admin/consents?filters`: the active consents of the namespaces the caller may
/// `list` consents in.
pub async fn list_consents(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let filter = consent_filter(query)?;
    let consents = selected_consents(&state, &filter).await?;
    let mut namespaces: BTreeSet<String> = consents.iter().map(|c| consent_namespace(&state, c)).collect();
    namespaces.insert(home_namespace(&state));
    let (caller, allowed) = authorize(&state, &headers, ("list", CONSENTS), namespaces).await?;
    let summaries: Vec<ConsentSummary> = consents
        .iter()
        .filter(|c| allowed.contains(&consent_namespace(&state, c)))
        .map(|c| ConsentSummary::of(&c.consent, c.app.clone()))
        .collect();
    state.server.audit().emit(Event::AdminAction {
        action: "list_consents".into(),
        actor: Some(caller),
        count: summaries.len(),
    });
    Ok(no_store_json(StatusCode::OK, &json!({ "consents": summaries })))
}

/// `DELETE /admin/consents?filters` (at least one filter): revokes the matching consents,
/// with their refresh tokens, without touching the clients. All or nothing on permission.
pub async fn revoke_consents(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let filter = consent_filter(query)?;
    if filter.is_empty() {
        bearer(&state, &headers)?;
        return Err(HttpError::new(OAuthError::invalid_request("give at least one filter")));
    }
    let revoked = revoke_selected(&state, &headers, &filter).await?;
    Ok(no_store_json(StatusCode::OK, &json!({ "revoked": revoked })))
}

/// `DELETE /admin/consents/{id}`.
pub async fn revoke_consent(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response> {
    let filter = ConsentFilter { id: Some(id), ..ConsentFilter::default() };
    if revoke_selected(&state, &headers, &filter).await?.is_empty() {
        return Err(
            HttpError::new(OAuthError::invalid_request("no such active consent")).with_status(StatusCode::NOT_FOUND)
        );
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn revoke_selected(state: &AppState, headers: &HeaderMap, filter: &ConsentFilter) -> Result<Vec<String>> {
    let consents = selected_consents(state, filter).await?;
    let namespaces = consents.iter().map(|c| consent_namespace(state, c)).collect();
    let user = authorize_every(state, headers, ("delete", CONSENTS), namespaces).await?;
    let mut revoked = Vec::new();
    for c in &consents {
        if state.server.revoke_consent_as_admin(&c.consent, Some(&user), now()).await? {
            revoked.push(c.consent.id.clone());
        }
    }
    Ok(revoked)
}
