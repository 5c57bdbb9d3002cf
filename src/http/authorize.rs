//! The user-facing flow: /authorize, /login, /consent, /account/apps, /userinfo.
//!
//! Handlers stay thin: validation and consent decisions live in `oauth::authorize` and
//! `oauth::consent`; here is only the sequencing of pages, cookies and redirects.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{
    AppState,
    pages::{see_other, session_cookie_value},
};
use crate::catalog::{Catalog, Client, User};
use crate::clock::now;
use crate::oauth::{
    ErrorCode, OAuthError,
    authorize::{AuthorizationRequest, AuthorizeError, error_redirect_url, redirect_url, validate},
    consent::{self, ConsentPlan, DurationChoice, ScopeItem},
    params::Params,
    token::{CODE_LIFETIME, store_error},
};
use crate::protocol::scope::OPENID;
use crate::secrets::{random_token, token_digest};
use crate::store::{AuthorizationCode, Consent, Session};

/// How long a login session lasts.
const SESSION_LIFETIME: i64 = 8 * 3600;
/// How long a user may take on the login and consent pages.
const PENDING_LIFETIME: i64 = 600;

/// An authorization in progress between pages, kept server-side under a random id.
#[derive(Serialize, Deserialize)]
struct Pending {
    /// None when the login is for the account page.
    request: Option<AuthorizationRequest>,
    csrf: String,
    subject: Option<String>,
    auth_time: Option<i64>,
    items: Vec<ScopeItem>,
    durations: Vec<DurationChoice>,
    tenant: Option<String>,
}

type Result<T> = std::result::Result<T, Response>;

fn internal(state: &AppState, e: OAuthError) -> Response {
    state.pages.error(StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &e)
}

pub async fn authorize_get(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(params) => authorize(&state, &headers, &params).await,
        Err(e) => state.pages.error(StatusCode::BAD_REQUEST, &e),
    }
}

pub async fn authorize_post(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    match Params::parse(&body) {
        Ok(params) => authorize(&state, &headers, &params).await,
        Err(e) => state.pages.error(StatusCode::BAD_REQUEST, &e),
    }
}

async fn authorize(state: &AppState, headers: &HeaderMap, params: &Params) -> Response {
    let catalog = state.catalog.load_full();
    if let Some(client_id) = params.get("client_id")
        && let Err(reason) = state.server.resolve_client(&catalog, client_id).await
        && reason != "unknown client"
    {
        // A metadata document that cannot be used: say why, on a page (never a redirect).
        let error = OAuthError::invalid_request(reason);
        tracing::info!(description = %error.description, "authorization request refused (not redirected)");
        return state.pages.error(StatusCode::BAD_REQUEST, &error);
    }
    let (client, request) = match validate(&catalog, params) {
        Ok(valid) => valid,
        Err(AuthorizeError::Page(e)) => {
            tracing::info!(error = e.code.as_str(), description = %e.description, "authorization request refused (not redirected)");
            return state.pages.error(StatusCode::BAD_REQUEST, &e);
        }
        Err(AuthorizeError::Redirect { redirect_uri, state: s, error }) => {
            tracing::info!(error = error.code.as_str(), description = %error.description, "authorization request refused");
            return see_other(&error_redirect_url(&redirect_uri, &state.server.issuer, s.as_deref(), &error));
        }
    };
    let session = match current_session(state, headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = now();
    let fresh_enough = |s: &Session| request.max_age.is_none_or(|max| now - s.auth_time <= max);
    match session {
        Some(s) if !request.prompts("login") && fresh_enough(&s) => {
            continue_as(state, &catalog, &client, request, &s.subject, s.auth_time).await
        }
        _ if request.prompts("none") => {
            redirect_error(state, &request, ErrorCode::LoginRequired, "the user is not logged in")
        }
        _ => login_page(state, Some(&client), Some(request), None).await,
    }
}

async fn current_session(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>> {
    let Some(value) = session_cookie_value(headers) else { return Ok(None) };
    state.server.store.session(&token_digest(value), now()).await.map_err(|e| internal(state, store_error(e)))
}

/// The redirect URI was validated when the request arrived; the configuration may have
/// changed while the user was on the login or consent page.
fn still_registered(state: &AppState, request: &AuthorizationRequest) -> bool {
    state
        .catalog
        .load()
        .client(&request.client_id)
        .is_some_and(|c| crate::protocol::redirect::is_registered(&c.spec.redirect_uris, &request.redirect_uri))
}

fn redirect_error(state: &AppState, request: &AuthorizationRequest, code: ErrorCode, description: &str) -> Response {
    let error = OAuthError::new(code, description);
    if !still_registered(state, request) {
        return state.pages.error(StatusCode::BAD_REQUEST, &error);
    }
    see_other(&error_redirect_url(&request.redirect_uri, &state.server.issuer, request.state.as_deref(), &error))
}

#[derive(Serialize)]
struct AppView {
    name: String,
    description: Option<String>,
    logo_uri: Option<String>,
    /// Where a self-registered client comes from, so the user can judge it: the host of its
    /// metadata document, or that it registered itself.
    origin: Option<String>,
}

fn app_view(client: &Client) -> AppView {
    AppView {
        name: client.spec.display_name.clone(),
        description: client.spec.description.clone(),
        // A self-registered client's logo is whatever it chose to send: not shown, so that an
        // unverified client cannot borrow a trusted brand's look (its name is shown with a
        // note saying where it comes from).
        logo_uri: (client.origin == crate::catalog::ClientOrigin::Declared)
            .then(|| client.spec.logo_uri.clone())
            .flatten(),
        origin: match &client.origin {
            crate::catalog::ClientOrigin::Declared => None,
            crate::catalog::ClientOrigin::Registered => Some("registered itself; not verified by this site".into()),
            crate::catalog::ClientOrigin::MetadataDocument { host } => Some(format!("from {host}")),
        },
    }
}

async fn save_pending(state: &AppState, pending: &Pending) -> Result<String> {
    let id = random_token(24);
    let json = serde_json::to_string(pending).expect("pending serializes");
    state
        .server
        .store
        .put_pending(&id, &json, now() + PENDING_LIFETIME)
        .await
        .map_err(|e| internal(state, store_error(e)))?;
    Ok(id)
}

async fn login_page(
    state: &AppState,
    client: Option<&Client>,
    request: Option<AuthorizationRequest>,
    error: Option<&str>,
) -> Response {
    let pending = Pending {
        request,
        csrf: random_token(24),
        subject: None,
        auth_time: None,
        items: vec![],
        durations: vec![],
        tenant: None,
    };
    let id = match save_pending(state, &pending).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let status = if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    state.pages.render(
        status,
        "login.html",
        minijinja::context! { app => client.map(app_view), request_id => id, csrf => pending.csrf, error => error },
    )
}

/// The user is known: consent (or not), then the code.
async fn continue_as(
    state: &AppState,
    catalog: &Catalog,
    client: &Client,
    request: AuthorizationRequest,
    subject: &str,
    auth_time: i64,
) -> Response {
    let Some(user) = catalog.user(subject).cloned() else {
        return login_page(state, Some(client), Some(request), None).await;
    };
    let tenant = match (&request.tenant, &user.tenant) {
        (Some(asked), Some(own)) if asked != own => {
            return redirect_error(
                state,
                &request,
                ErrorCode::AccessDenied,
                "the user does not belong to the requested tenant",
            );
        }
        (Some(asked), _) => Some(asked.clone()),
        (None, own) => own.clone(),
    };
    let now = now();
    let existing = match state.server.store.active_consent(&client.client_id, subject, tenant.as_deref(), now).await {
        Ok(c) => c,
        Err(e) => return internal(state, store_error(e)),
    };
    match consent::plan(catalog, client, &user, &request.scopes, existing.clone(), request.prompts("consent")) {
        ConsentPlan::Covered(consent) => issue_code(state, client, &request, &user, auth_time, &consent).await,
        ConsentPlan::Automatic { scopes, seconds } => {
            match record_consent(state, client, &user, tenant, existing, scopes, seconds).await {
                Ok(consent) => issue_code(state, client, &request, &user, auth_time, &consent).await,
                Err(r) => r,
            }
        }
        ConsentPlan::Ask { .. } if request.prompts("none") => {
            redirect_error(state, &request, ErrorCode::ConsentRequired, "the user has not consented to this request")
        }
        ConsentPlan::Ask { items, durations } => {
            let already = existing.map(|c| c.scopes).unwrap_or_default();
            let pending = Pending {
                request: Some(request),
                csrf: random_token(24),
                subject: Some(subject.to_string()),
                auth_time: Some(auth_time),
                items,
                durations,
                tenant: tenant.clone(),
            };
            let id = match save_pending(state, &pending).await {
                Ok(id) => id,
                Err(r) => return r,
            };
            state.pages.render(
                StatusCode::OK,
                "consent.html",
                minijinja::context! {
                    app => app_view(client), request_id => id, csrf => pending.csrf, items => pending.items,
                    durations => pending.durations, username => user.username, tenant => tenant, already => already,
                },
            )
        }
    }
}

/// Creates or extends (incremental consent) the user's consent for the app.
async fn record_consent(
    state: &AppState,
    client: &Client,
    user: &User,
    tenant: Option<String>,
    existing: Option<Consent>,
    scopes: Vec<String>,
    seconds: i64,
) -> Result<Consent> {
    let now = now();
    let consent = match existing {
        Some(mut consent) => {
            for s in scopes {
                if !consent.scopes.contains(&s) {
                    consent.scopes.push(s);
                }
            }
            consent.expires_at = consent.expires_at.max(now + seconds);
            consent
        }
        None => Consent {
            id: random_token(16),
            client_id: client.client_id.clone(),
            subject: user.subject.clone(),
            tenant,
            granted_by: user.subject.clone(),
            scopes,
            created_at: now,
            expires_at: now + seconds,
        },
    };
    state.server.store.save_consent(&consent).await.map_err(|e| internal(state, store_error(e)))?;
    Ok(consent)
}

/// Stores a single-use code bound to client, redirect URI, PKCE challenge and nonce, and
/// sends the browser back with it.
async fn issue_code(
    state: &AppState,
    client: &Client,
    request: &AuthorizationRequest,
    user: &User,
    auth_time: i64,
    consent: &Consent,
) -> Response {
    if !still_registered(state, request) {
        return state.pages.error(
            StatusCode::BAD_REQUEST,
            &OAuthError::invalid_request("the redirect URI is no longer registered for this app"),
        );
    }
    let scopes: Vec<String> =
        request.scopes.iter().filter(|s| *s == OPENID || consent.scopes.contains(s)).cloned().collect();
    let code = random_token(32);
    let record = AuthorizationCode {
        client_id: client.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        redirect_uri_given: request.redirect_uri_given,
        code_challenge: request.code_challenge.clone(),
        nonce: request.nonce.clone(),
        scopes,
        resources: request.resources.clone(),
        tenant: consent.tenant.clone(),
        subject: user.subject.clone(),
        auth_time,
        consent_id: consent.id.clone(),
        expires_at: now() + CODE_LIFETIME,
    };
    if let Err(e) = state.server.store.put_code(&token_digest(&code), &record).await {
        return internal(state, store_error(e));
    }
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &request.state {
        params.push(("state", s));
    }
    see_other(&redirect_url(&request.redirect_uri, &state.server.issuer, &params))
}

/// Form fields, with `scope` allowed to repeat (one per checkbox).
struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form { fields: url::form_urlencoded::parse(body).into_owned().collect() }
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.fields.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}

/// Loads a pending authorization and checks the form's CSRF token against it.
async fn take_pending(state: &AppState, form: &Form) -> Result<(String, Pending)> {
    let invalid = || {
        state.pages.error(
            StatusCode::FORBIDDEN,
            &OAuthError::invalid_request(
                "this form has expired or was not issued by this server; start again from the app",
            ),
        )
    };
    let id = form.get("request_id").ok_or_else(invalid)?.to_string();
    let json = state.server.store.pending(&id, now()).await.map_err(|e| internal(state, store_error(e)))?;
    let pending: Pending = json.and_then(|j| serde_json::from_str(&j).ok()).ok_or_else(invalid)?;
    let presented = form.get("csrf").unwrap_or("");
    if !bool::from(presented.as_bytes().ct_eq(pending.csrf.as_bytes())) {
        tracing::warn!("form submitted without a valid CSRF token");
        return Err(invalid());
    }
    // One use per form.
    state.server.store.delete_pending(&id).await.map_err(|e| internal(state, store_error(e)))?;
    Ok((id, pending))
}

pub async fn login(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let (_, pending) = match take_pending(&state, &form).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let catalog = state.catalog.load_full();
    if let Some(request) = &pending.request {
        let _ = state.server.resolve_client(&catalog, &request.client_id).await;
    }
    let client = pending.request.as_ref().and_then(|r| catalog.client(&r.client_id));
    let username = form.get("username").unwrap_or("").to_string();
    let password = form.get("password").unwrap_or("").to_string();
    let identity = state.identity.clone();
    let verify_catalog = catalog.clone();
    let user = tokio::task::spawn_blocking(move || identity.authenticate(&verify_catalog, &username, &password))
        .await
        .ok()
        .flatten();
    let Some(user) = user else {
        tracing::info!("login failed");
        return login_page(&state, client.as_deref(), pending.request, Some("Wrong username or password.")).await;
    };
    let now = now();
    let session_value = random_token(32);
    let session = Session { subject: user.subject.clone(), auth_time: now };
    if let Err(e) =
        state.server.store.put_session(&token_digest(&session_value), &session, now + SESSION_LIFETIME).await
    {
        return internal(&state, store_error(e));
    }
    tracing::info!(subject = %user.subject, "user logged in");
    let mut response = match (pending.request, client) {
        (Some(request), Some(client)) => continue_as(&state, &catalog, &client, request, &user.subject, now).await,
        _ => see_other("/account/apps"),
    };
    response.headers_mut().append(header::SET_COOKIE, state.pages.session_cookie(&session_value, SESSION_LIFETIME));
    response
}

pub async fn consent(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let (_, pending) = match take_pending(&state, &form).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (Some(request), Some(subject), Some(auth_time)) = (pending.request, pending.subject, pending.auth_time) else {
        return state.pages.error(StatusCode::BAD_REQUEST, &OAuthError::invalid_request("not a consent form"));
    };
    // The form must be submitted by the session that was shown it.
    match current_session(&state, &headers).await {
        Ok(Some(s)) if s.subject == subject => {}
        Ok(_) => {
            return state.pages.error(
                StatusCode::FORBIDDEN,
                &OAuthError::access_denied("the session that opened this form has ended"),
            );
        }
        Err(r) => return r,
    }
    if form.get("decision") != Some("approve") {
        tracing::info!(client_id = %request.client_id, "user denied consent");
        return redirect_error(&state, &request, ErrorCode::AccessDenied, "the user denied the request");
    }
    let granted = match consent::granted(&pending.items, &form.all("scope")) {
        Ok(g) => g,
        Err(e) => return redirect_error(&state, &request, e.code, &e.description),
    };
    let seconds = form.get("duration").and_then(|d| d.parse::<i64>().ok());
    let Some(seconds) = seconds.filter(|s| pending.durations.iter().any(|d| d.seconds == *s)) else {
        return state
            .pages
            .error(StatusCode::BAD_REQUEST, &OAuthError::invalid_request("choose one of the offered durations"));
    };
    let catalog = state.catalog.load_full();
    let _ = state.server.resolve_client(&catalog, &request.client_id).await;
    let (Some(client), Some(user)) = (catalog.client(&request.client_id), catalog.user(&subject).cloned()) else {
        return redirect_error(&state, &request, ErrorCode::AccessDenied, "the app or the user no longer exists");
    };
    let now = now();
    let existing =
        match state.server.store.active_consent(&client.client_id, &subject, pending.tenant.as_deref(), now).await {
            Ok(c) => c,
            Err(e) => return internal(&state, store_error(e)),
        };
    match record_consent(&state, &client, &user, pending.tenant, existing, granted, seconds).await {
        Ok(consent) => {
            tracing::info!(client_id = %client.client_id, scopes = ?consent.scopes, "consent granted");
            issue_code(&state, &client, &request, &user, auth_time, &consent).await
        }
        Err(r) => r,
    }
}

/// CSRF token of the account page: bound to the session, stateless.
fn account_csrf(state: &AppState, session_value: &str) -> String {
    let tag = state.server.hasher.hash(&format!("account-csrf:{session_value}"));
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, tag.0)
}

#[derive(Serialize)]
pub struct ConnectedApp {
    id: String,
    client_id: String,
    app_name: String,
    scopes: Vec<String>,
    tenant: Option<String>,
    created_at: String,
    expires_at: String,
}

fn rfc3339(t: i64) -> String {
    jiff::Timestamp::from_second(t).map(|t| t.to_string()).unwrap_or_default()
}

async fn connected_apps(state: &AppState, subject: &str) -> Result<Vec<ConnectedApp>> {
    let catalog = state.catalog.load();
    let consents = state.server.store.consents_of(subject, now()).await.map_err(|e| internal(state, store_error(e)))?;
    for c in &consents {
        let _ = state.server.resolve_client(&catalog, &c.client_id).await;
    }
    Ok(consents
        .into_iter()
        .map(|c| ConnectedApp {
            app_name: catalog
                .client(&c.client_id)
                .map(|a| a.spec.display_name.clone())
                .unwrap_or_else(|| c.client_id.clone()),
            id: c.id,
            client_id: c.client_id,
            scopes: c.scopes,
            tenant: c.tenant,
            created_at: rfc3339(c.created_at),
            expires_at: rfc3339(c.expires_at),
        })
        .collect())
}

pub async fn account(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let session = match current_session(&state, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return login_page(&state, None, None, None).await,
        Err(r) => return r,
    };
    let apps = match connected_apps(&state, &session.subject).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let username = state.catalog.load().user(&session.subject).map(|u| u.username.clone()).unwrap_or_default();
    let csrf = account_csrf(&state, session_cookie_value(&headers).unwrap_or(""));
    state.pages.render(
        StatusCode::OK,
        "account.html",
        minijinja::context! { consents => apps, username => username, csrf => csrf },
    )
}

pub async fn account_revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let session = match current_session(&state, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return see_other("/account/apps"),
        Err(r) => return r,
    };
    let form = Form::parse(&body);
    let expected = account_csrf(&state, session_cookie_value(&headers).unwrap_or(""));
    if !bool::from(form.get("csrf").unwrap_or("").as_bytes().ct_eq(expected.as_bytes())) {
        return state.pages.error(StatusCode::FORBIDDEN, &OAuthError::invalid_request("missing or invalid CSRF token"));
    }
    match state.server.store.revoke_consent(&id, &session.subject, now()).await {
        Ok(_) => {
            tracing::info!(consent = %id, "consent revoked by the user");
            see_other("/account/apps")
        }
        Err(e) => internal(&state, store_error(e)),
    }
}

/// JSON API of the account page, for the same logged-in user.
pub async fn account_api_list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match current_session(&state, &headers).await {
        Ok(Some(s)) => match connected_apps(&state, &s.subject).await {
            Ok(apps) => Json(serde_json::json!({ "apps": apps })).into_response(),
            Err(r) => r,
        },
        Ok(None) => super::response::oauth_error(&OAuthError::new(ErrorCode::LoginRequired, "no session")),
        Err(r) => r,
    }
}

/// `DELETE` cannot be sent cross-site without a CORS preflight we never grant, and the
/// session cookie is `SameSite=Lax`: no CSRF token needed here.
pub async fn account_api_revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match current_session(&state, &headers).await {
        Ok(Some(s)) => match state.server.store.revoke_consent(&id, &s.subject, now()).await {
            Ok(true) => StatusCode::NO_CONTENT.into_response(),
            Ok(false) => (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({"error": "not_found", "error_description": "no such active consent"})),
            )
                .into_response(),
            Err(e) => super::response::oauth_error(&store_error(e)),
        },
        Ok(None) => super::response::oauth_error(&OAuthError::new(ErrorCode::LoginRequired, "no session")),
        Err(r) => r,
    }
}

/// OpenID Connect Core §5.3 UserInfo, GET or POST, bearer token (RFC 6750).
pub async fn userinfo(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let bearer = super::bearer_token(&headers)
        .map(str::to_string)
        .or_else(|| Form::parse(&body).get("access_token").map(str::to_string));
    let challenge = |code: ErrorCode, description: &str| {
        let error = OAuthError::new(code, description);
        let mut response = super::response::oauth_error(&error);
        let value = format!("Bearer error=\"{}\", error_description=\"{}\"", code.as_str(), description);
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer")),
        );
        response
    };
    let Some(token) = bearer else {
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    let catalog = state.catalog.load();
    let claims = match state.server.active_claims(&catalog, &token, now()).await {
        Ok(Some(c)) => c,
        Ok(None) => return challenge(ErrorCode::InvalidToken, "the access token is invalid or expired"),
        Err(e) => return super::response::oauth_error(&e),
    };
    let scopes: Vec<&str> = claims.scope.as_deref().unwrap_or("").split(' ').collect();
    if !scopes.contains(&OPENID) {
        return challenge(ErrorCode::InsufficientScope, "the access token lacks the openid scope");
    }
    let Some(user) = catalog.user(&claims.sub) else {
        return challenge(ErrorCode::InvalidToken, "the user no longer exists");
    };
    let namespace = catalog.client(&claims.client_id).map(|c| c.key.namespace.clone()).unwrap_or_default();
    let mut out = serde_json::Map::new();
    out.insert("sub".into(), user.subject.clone().into());
    // Exactly the attributes of the granted userInfo scopes.
    for s in scopes {
        let Some(spec) = catalog.scope(&namespace, s) else { continue };
        if spec.kind != crate::api::ScopeKind::UserInfo {
            continue;
        }
        if let Some(attribute) = &spec.user_attribute
            && let Some(value) = user.attributes.get(attribute)
        {
            out.insert(attribute.clone(), value.clone().into());
        }
    }
    super::response::no_store_json(StatusCode::OK, &out)
}
