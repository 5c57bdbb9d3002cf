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
    AdminAuthorizer, AdminDenied, CONSENTS, ClientFilter, ClientSummary, ConsentFilter, ConsentSummary, INBOUND_APPS,
    REGISTERED_CLIENTS, TagChange,
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

/// The self-registered clients `filter` selects.
async fn selected(state: &AppState, filter: &ClientFilter) -> Result<Vec<crate::store::RegisteredClient>> {
    let all = state.server.registered_clients().await?;
    Ok(all.into_iter().filter(|c| filter.matches(&ClientSummary::registered(c))).collect())
}

/// `GET /admin/clients?filters`: one listing of the declared apps the caller may `list`
/// InboundApps of (their namespace's RBAC, as `kubectl get iapp`) and the self-registered
/// clients it may `list` registeredclients of (the admitting policy's namespace).
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
    let catalog = state.catalog.load();
    let declared: Vec<ClientSummary> = catalog
        .clients()
        .filter(|c| c.origin == crate::catalog::ClientOrigin::Declared)
        .map(|c| ClientSummary::declared(&c.key, &c.client_id, &c.spec))
        .filter(|c| filter.matches(c))
        .collect();
    let namespaces: BTreeSet<String> = declared.iter().map(|c| c.namespace.clone()).collect();
    let may_see = if namespaces.is_empty() {
        BTreeSet::new()
    } else {
        match authorize(&state, &headers, ("list", INBOUND_APPS), namespaces).await {
            Ok((_, allowed)) => allowed,
            // Allowed no namespace of them: the listing holds the registered clients only.
            Err(e) if e.status() == StatusCode::FORBIDDEN => BTreeSet::new(),
            Err(e) => return Err(e),
        }
    };
    let mut summaries: Vec<ClientSummary> = declared.into_iter().filter(|c| may_see.contains(&c.namespace)).collect();
    summaries.extend(clients.iter().filter(|c| allowed.contains(&c.policy.namespace)).map(ClientSummary::registered));
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

/// `PATCH /admin/clients?filters` (at least one filter) with `{"add": [...], "remove":
/// [...]}`: changes the tags of the matching self-registered clients. All or nothing on
/// permission (`update` registeredclients in each admitting policy's namespace).
pub async fn tag_matching(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Result<Response> {
    let filter = filter(query)?;
    let change: TagChange = serde_json::from_slice(&body).map_err(|e| {
        HttpError::new(OAuthError::invalid_request(format!(
            "the body must be {{\"add\": [...], \"remove\": [...]}}: {e}"
        )))
    })?;
    change.check().map_err(|e| HttpError::new(OAuthError::invalid_request(e)))?;
    if filter.is_empty() {
        bearer(&state, &headers)?;
        return Err(HttpError::new(OAuthError::invalid_request("give at least one filter")));
    }
    let clients = selected(&state, &filter).await?;
    let namespaces = clients.iter().map(|c| c.policy.namespace.clone()).collect();
    let user = authorize_every(&state, &headers, ("update", REGISTERED_CLIENTS), namespaces).await?;
    let mut tagged = Vec::new();
    for c in &clients {
        let tags = change.apply(&c.tags).map_err(|e| HttpError::new(OAuthError::invalid_request(e)))?;
        if let Some(tags) = tags
            && state.server.set_registered_client_tags(&c.client_id, &tags).await?
        {
            tagged.push(json!({ "client_id": c.client_id, "tags": tags }));
        }
    }
    tracing::info!(count = tagged.len(), by = %user, "registered clients tagged through the admin API");
    state.server.audit().emit(Event::AdminAction {
        action: "tag_clients".into(),
        actor: Some(user),
        count: tagged.len(),
    });
    Ok(no_store_json(StatusCode::OK, &json!({ "tagged": tagged })))
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
