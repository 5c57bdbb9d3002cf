//! Handlers of the front channel: /authorize, /login, /consent, the account page and its
//! JSON API, /userinfo.
//!
//! Every decision is the core's (`oauth::front_channel`); here are only forms, cookies,
//! templates and redirects.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json,
    body::Bytes,
    extract::{ConnectInfo, Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::{AppState, HttpError, pages::see_other};
use crate::catalog::{Client, ClientOrigin};
use crate::clock::now;
use crate::identity::upstream::{AuthenticationRequest, Callback};
use crate::oauth::{
    ErrorCode, OAuthError,
    front_channel::{ConnectedApp, ConsentDecision, Refusal, Step, password_offered},
    params::Params,
};
use crate::oauth::{application_login::accepted_identity, logout::LogoutStep};
use crate::protocol::paths;

type Result<T> = std::result::Result<T, HttpError>;

/// What a page shows of an app.
#[derive(Serialize)]
struct AppView {
    name: String,
    description: Option<String>,
    logo_uri: Option<String>,
    /// Where a self-registered client comes from, so the user can judge it: the host of its
    /// metadata document, or that it registered itself.
    origin: Option<String>,
    /// For a self-registered client, what identifies it: its client id and the hosts it may
    /// send the user back to, and whether all of them are this computer (a local program the
    /// user must have started: anyone can register one that looks like a known app).
    client_id: Option<String>,
    redirect_hosts: Vec<String>,
    local_only: bool,
    tos_uri: Option<String>,
    policy_uri: Option<String>,
}

fn app_view(client: &Client) -> AppView {
    let declared = client.origin == ClientOrigin::Declared;
    let redirects: Vec<url::Url> = client.spec.redirect_uris.iter().filter_map(|u| url::Url::parse(u).ok()).collect();
    let mut redirect_hosts: Vec<String> = redirects
        .iter()
        .map(|u| u.host_str().map(str::to_string).unwrap_or_else(|| format!("{}:", u.scheme())))
        .collect();
    redirect_hosts.dedup();
    AppView {
        client_id: (!declared).then(|| client.client_id.clone()),
        redirect_hosts: if declared { vec![] } else { redirect_hosts },
        local_only: !declared
            && !redirects.is_empty()
            && redirects.iter().all(crate::protocol::loopback::is_loopback_host),
        name: client.spec.display_name.clone(),
        description: client.spec.description.clone(),
        // A self-registered client's logo is whatever it chose to send: not shown, so that an
        // unverified client cannot borrow a trusted brand's look (its name is shown with a
        // note saying where it comes from).
        logo_uri: (client.origin == ClientOrigin::Declared).then(|| client.spec.logo_uri.clone()).flatten(),
        tos_uri: client.spec.tos_uri.clone(),
        policy_uri: client.spec.policy_uri.clone(),
        origin: match &client.origin {
            ClientOrigin::Declared => None,
            ClientOrigin::Registered => Some("registered itself; not verified by this site".into()),
            ClientOrigin::MetadataDocument { host } => Some(format!("from {host}")),
        },
    }
}

/// How long a browser may take to sign in upstream (the binding cookie's lifetime).
const UPSTREAM_COOKIE_MAX_AGE: i64 = 600;

/// Renders a step of the flow; going upstream needs the provider's discovery (network).
async fn respond(state: &AppState, step: Step) -> Result<Response> {
    if let Step::Decided { notify: Some(notification), .. } = &step {
        state.notifier.send(notification.clone());
    }
    let Step::Upstream(redirect) = step else { return Ok(render(state, step)) };
    if let Some(application) = &redirect.provider.spec.application {
        // Application-hosted login: the challenge is the pending request's id.
        let mut url = url::Url::parse(&application.login_url).map_err(|_| {
            HttpError::from(Refusal::Failed(OAuthError::new(ErrorCode::ServerError, "the login URL is not a URL")))
        })?;
        url.query_pairs_mut().append_pair("login_challenge", &redirect.state);
        let mut response = see_other(url.as_str());
        response
            .headers_mut()
            .append(header::SET_COOKIE, state.pages.upstream_cookie(&redirect.binding, UPSTREAM_COOKIE_MAX_AGE));
        return Ok(response);
    }
    let redirect_uri = format!("{}{}", state.server.issuer(), paths::LOGIN_CALLBACK);
    let request = AuthenticationRequest {
        redirect_uri: &redirect_uri,
        state: &redirect.state,
        nonce: &redirect.nonce,
        code_challenge: &redirect.code_challenge,
        login_hint: redirect.login_hint.as_deref(),
        fresh_login: redirect.fresh_login,
        max_age: redirect.max_age,
    };
    let url = state.upstreams.authentication_url(&redirect.provider, &request).await.map_err(|e| {
        tracing::warn!(provider = %redirect.provider.source(), error = %e, "cannot send the browser to the identity provider");
        HttpError::from(Refusal::Failed(OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            format!("signing in with {} is not possible right now; try again later", redirect.provider.spec.display_name),
        )))
    })?;
    let mut response = see_other(&url);
    response
        .headers_mut()
        .append(header::SET_COOKIE, state.pages.upstream_cookie(&redirect.binding, UPSTREAM_COOKIE_MAX_AGE));
    Ok(response)
}

/// Renders a step of the flow that needs no network.
fn render(state: &AppState, step: Step) -> Response {
    match step {
        Step::Redirect(location) => see_other(&location),
        Step::Upstream(_) => unreachable!("respond() sends the browser upstream"),
        Step::Login(form) => state.pages.render(
            if form.failed { StatusCode::UNAUTHORIZED } else { StatusCode::OK },
            "login.html",
            minijinja::context! {
                app => form.client.as_deref().map(app_view), request_id => form.request_id, csrf => form.csrf,
                error => form.failed.then_some("Wrong username or password."),
                password => form.password, providers => form.providers,
            },
        ),
        Step::DeviceCode { user_code } => state.pages.render(
            StatusCode::BAD_REQUEST,
            "device.html",
            minijinja::context! { user_code => user_code, failed => true, decided => false },
        ),
        Step::Decided { client, approved, reason, backchannel, .. } => state.pages.render(
            StatusCode::OK,
            "device.html",
            minijinja::context! {
                decided => true, approved => approved, reason => reason, backchannel => backchannel, app => app_view(&client)
            },
        ),
        Step::Consent(form) => state.pages.render(
            StatusCode::OK,
            "consent.html",
            minijinja::context! {
                app => app_view(&form.client), request_id => form.request_id, csrf => form.csrf, items => form.items,
                durations => form.durations, username => form.username, tenant => form.tenant, already => form.already,
                signed_in_with => form.signed_in_with, tenant_admin => form.tenant_admin, device => form.device,
                binding_message => form.binding_message,
            },
        ),
    }
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

/// Parameters of a front-channel request: a malformed one is shown on a page.
fn params(raw: &[u8]) -> Result<Params> {
    Params::parse(raw).map_err(|e| HttpError::from(Refusal::BadRequest(e)))
}

pub async fn authorize_get(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let params = params(query.unwrap_or_default().as_bytes())?;
    authorize(&state, peer, &headers, &params).await
}

pub async fn authorize_post(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    authorize(&state, peer, &headers, &params(&body)?).await
}

/// Browsers without a live session may make the server keep a pending request (the login
/// page's): within the bound of `oauth::pending_budget`, else 429 with Retry-After.
async fn admit_unauthenticated(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> Result<()> {
    let value = state.pages.session_value(headers);
    if value.is_some() && state.server.session(value, now()).await?.is_some() {
        return Ok(());
    }
    let source =
        super::client_ip::limit_source(super::client_ip::client_ip(peer.ip(), headers, &state.trusted_proxies));
    state.server.admit_unauthenticated(&source, now()).map_err(|wait| {
        tracing::warn!(source, "too many sign-in pages for one source; refused");
        HttpError::new(OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            format!("too many sign-in attempts from your network; try again in {wait} seconds"),
        ))
        .with_status(StatusCode::TOO_MANY_REQUESTS)
        .with_header(header::RETRY_AFTER, HeaderValue::from(wait))
        .page()
    })
}

/// A CIBA approval link from an email: sign in (as the user it was sent to) and decide.
pub async fn ciba_approve(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let params = params(query.unwrap_or_default().as_bytes())?;
    admit_unauthenticated(&state, peer, &headers).await?;
    let catalog = state.catalog.load_full();
    let token = params.get("token").unwrap_or("");
    let step = state.server.backchannel_start(&catalog, token, state.pages.session_value(&headers), now()).await?;
    respond(&state, step).await
}

/// RFC 8628 §3.3: where the user enters the code their device shows (`verification_uri`),
/// prefilled from `verification_uri_complete`. Nothing is kept until the code is submitted.
pub async fn device_get(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Result<Response> {
    let params = params(query.unwrap_or_default().as_bytes())?;
    let user_code: String = params.get("user_code").unwrap_or("").chars().take(16).collect();
    Ok(state.pages.render(
        StatusCode::OK,
        "device.html",
        minijinja::context! { user_code => user_code, failed => false, decided => false },
    ))
}

/// The code was submitted: wrong codes are throttled per source (RFC 8628 §5.1) before the
/// store is asked; a right one continues to sign-in and consent.
pub async fn device_post(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    same_origin(&state, &headers)?;
    let source =
        super::client_ip::limit_source(super::client_ip::client_ip(peer.ip(), &headers, &state.trusted_proxies));
    if let Some(wait) = state.server.user_code_retry_after(&source, now()) {
        tracing::warn!(source, "too many wrong user codes; throttled");
        return Err(HttpError::new(OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            format!("too many wrong codes; try again in {wait} seconds"),
        ))
        .with_status(StatusCode::TOO_MANY_REQUESTS)
        .with_header(header::RETRY_AFTER, HeaderValue::from(wait))
        .page());
    }
    admit_unauthenticated(&state, peer, &headers).await?;
    let form = Form::parse(&body);
    let catalog = state.catalog.load_full();
    let typed = form.get("user_code").unwrap_or("");
    let step = state.server.device_start(&catalog, typed, &source, state.pages.session_value(&headers), now()).await?;
    respond(&state, step).await
}

async fn authorize(state: &AppState, peer: SocketAddr, headers: &HeaderMap, params: &Params) -> Result<Response> {
    admit_unauthenticated(state, peer, headers).await?;
    let catalog = state.catalog.load_full();
    let step = state.server.authorize(&catalog, params, state.pages.session_value(headers), now()).await?;
    respond(state, step).await
}

/// Login CSRF and clickjacking-by-form (RFC 9700 §4.7, Fetch Metadata): the pages' forms
/// post to their own origin, so a form submission the browser marks as coming from another
/// site, or whose `Origin` names another origin, is refused. Clients that send neither header
/// (non-browser agents) are let through: the forms' single-use CSRF tokens still apply.
fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<()> {
    let refused = || {
        HttpError::from(Refusal::Forbidden(OAuthError::invalid_request(
            "this form was submitted from another site; start again from the app",
        )))
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site").is_some_and(|site| site != "same-origin" && site != "none") {
        tracing::warn!(site = header("sec-fetch-site"), "cross-site form submission refused");
        return Err(refused());
    }
    // Our pages send `Referrer-Policy: no-referrer`, so browsers say `Origin: null` on
    // their own forms: only a real other origin is evidence (Sec-Fetch-Site decides above).
    if let Some(origin) = header("origin").filter(|o| *o != "null") {
        let ours = url::Url::parse(state.server.issuer()).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
        if origin != ours {
            tracing::warn!(origin, "form submission from another origin refused");
            return Err(refused());
        }
    }
    Ok(())
}

pub async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    same_origin(&state, &headers)?;
    let form = Form::parse(&body);
    let catalog = state.catalog.load_full();
    let username = form.get("username").unwrap_or("").to_string();
    let source =
        super::client_ip::limit_source(super::client_ip::client_ip(peer.ip(), &headers, &state.trusted_proxies));
    if form.get("provider").is_none() {
        if !password_offered(&catalog) {
            return Err(Refusal::BadRequest(OAuthError::invalid_request(
                "signing in with a password is not offered here",
            ))
            .into());
        }
        // Checked before the form is spent, so that a throttled user keeps nothing worse
        // than a page asking them to wait.
        if let Some(wait) = state.server.password_retry_after(&source, &username, now()) {
            return Err(HttpError::new(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                format!("too many failed sign-ins; try again in {wait} seconds"),
            ))
            .with_status(StatusCode::TOO_MANY_REQUESTS)
            .with_header(header::RETRY_AFTER, HeaderValue::from(wait))
            .page());
        }
    }
    let pending = state.server.take_pending(form.get("request_id"), form.get("csrf"), now()).await?;
    if let Some(provider) = form.get("provider") {
        let step = state.server.choose_provider(&catalog, pending, provider, now()).await?;
        return respond(&state, step).await;
    }
    let (identity, verify_catalog) = (state.identity.clone(), catalog.clone());
    let password = form.get("password").unwrap_or("").to_string();
    let checked_username = username.clone();
    let Some(user) =
        state.password_work(move || identity.authenticate(&verify_catalog, &checked_username, &password)).await
    else {
        return Err(busy().page());
    };
    state.server.password_checked(&source, &username, user.is_some(), now());
    let (step, session) = state.server.login(&catalog, pending, user, now()).await?;
    let mut response = respond(&state, step).await?;
    if let Some(session) = session {
        response.headers_mut().append(header::SET_COOKIE, state.pages.session_cookie(&session.value, session.max_age));
    }
    Ok(response)
}

/// Every password check is taken ([`AppState::password_work`]): 503, try again in a moment.
fn busy() -> HttpError {
    HttpError::new(OAuthError::new(
        ErrorCode::TemporarilyUnavailable,
        "the server is busy checking other passwords; try again in a moment",
    ))
    .with_status(StatusCode::SERVICE_UNAVAILABLE)
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

/// OpenID Connect Core §3.1.2.5/§3.1.2.6: the upstream identity provider sends the browser
/// back with a code (or an error) and our `state`.
pub async fn login_callback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let params = params(query.unwrap_or_default().as_bytes())?;
    let catalog = state.catalog.load_full();
    let binding = state.pages.upstream_value(&headers);
    let (pending, provider, attempt) =
        state.server.take_upstream(&catalog, params.get("state"), binding, now()).await?;
    let outcome = match (params.get("error"), params.get("code")) {
        (Some(error), _) => Err((error == "access_denied", format!("the identity provider answered {error}"))),
        (None, _) if provider.spec.application.is_some() => {
            accepted_identity(&attempt, params.get("login_verifier")).map_err(|reason| (false, reason))
        }
        (None, None) => Err((false, "the identity provider sent no code".to_string())),
        (None, Some(code)) => {
            let redirect_uri = format!("{}{}", state.server.issuer(), paths::LOGIN_CALLBACK);
            let callback = Callback {
                code,
                iss: params.get("iss"),
                redirect_uri: &redirect_uri,
                code_verifier: &attempt.code_verifier,
                nonce: &attempt.nonce,
            };
            state.upstreams.complete(&provider, &callback, now()).await.map_err(|e| {
                tracing::warn!(provider = %provider.source(), error = %e, "upstream sign-in failed");
                (false, e.to_string())
            })
        }
    };
    let mut response = match outcome {
        Ok(identity) => {
            let (step, session) = state.server.login(&catalog, pending, Some(identity), now()).await?;
            let mut response = respond(&state, step).await?;
            if let Some(session) = session {
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, state.pages.session_cookie(&session.value, session.max_age));
            }
            response
        }
        Err((cancelled, reason)) => {
            let step = state.server.upstream_failed(&catalog, pending, &provider, cancelled, &reason, now()).await?;
            respond(&state, step).await?
        }
    };
    // The binding is spent.
    response.headers_mut().append(header::SET_COOKIE, state.pages.upstream_cookie("", 0));
    Ok(response)
}

pub async fn consent(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Result<Response> {
    same_origin(&state, &headers)?;
    let form = Form::parse(&body);
    let pending = state.server.take_pending(form.get("request_id"), form.get("csrf"), now()).await?;
    let decision = ConsentDecision {
        approve: form.get("decision") == Some("approve"),
        scopes: form.all("scope"),
        duration: form.get("duration").map(str::to_string),
        for_tenant: form.get("for_tenant") == Some("yes"),
    };
    let catalog = state.catalog.load_full();
    let step = state.server.consent(&catalog, pending, state.pages.session_value(&headers), decision, now()).await?;
    respond(&state, step).await
}

/// Application-hosted login: the application accepts a login challenge (JSON body, its
/// InboundApp's client credentials with HTTP Basic) and learns where to send the browser.
pub async fn login_accept(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Result<Response> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let catalog = state.catalog.load_full();
    match state.server.accept_login(&catalog, authorization, &body, now()).await {
        Ok(redirect_to) => {
            Ok(super::response::no_store_json(StatusCode::OK, &serde_json::json!({ "redirect_to": redirect_to })))
        }
        Err(e) if e.code == ErrorCode::UnauthorizedClient => Err(HttpError::new(e).with_status(StatusCode::FORBIDDEN)),
        Err(e) => Err(e.into()),
    }
}

/// OpenID Connect RP-Initiated Logout §2 (GET): the confirmation page.
pub async fn logout_get(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let params = params(query.unwrap_or_default().as_bytes())?;
    logout(&state, &headers, &params).await
}

/// The same request as a form POST (§2 allows both), or the confirmation submitted.
pub async fn logout_post(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Result<Response> {
    same_origin(&state, &headers)?;
    logout(&state, &headers, &params(&body)?).await
}

async fn logout(state: &AppState, headers: &HeaderMap, params: &Params) -> Result<Response> {
    let catalog = state.catalog.load_full();
    let session = state.pages.session_value(headers);
    let step = if params.get("confirm") == Some("yes") {
        state.server.confirm_logout(&catalog, params, session, now()).await?
    } else {
        state.server.logout(&catalog, params, session, now()).await?
    };
    Ok(match step {
        LogoutStep::Confirm { request, csrf } => state.pages.render(
            StatusCode::OK,
            "logout.html",
            minijinja::context! {
                app => request.client.as_deref().map(app_view), csrf => csrf, confirm => true,
                id_token_hint => request.id_token_hint,
                client_id => request.client.as_ref().map(|c| c.client_id.clone()),
                post_logout_redirect_uri => request.post_logout_redirect_uri, state => request.state,
            },
        ),
        LogoutStep::Done { redirect } => {
            let mut response = match redirect {
                Some(location) => see_other(&location),
                None => state.pages.render(StatusCode::OK, "logout.html", minijinja::context! { confirm => false }),
            };
            // The cookie goes with the session.
            response.headers_mut().append(header::SET_COOKIE, state.pages.session_cookie("", 0));
            response
        }
    })
}

/// A connected app as the account page and its API show it.
#[derive(Serialize)]
pub struct ConnectedAppView {
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

impl From<ConnectedApp> for ConnectedAppView {
    fn from(app: ConnectedApp) -> ConnectedAppView {
        let c = app.consent;
        ConnectedAppView {
            app_name: app.app_name,
            id: c.id,
            client_id: c.client_id,
            scopes: c.scopes,
            tenant: c.tenant,
            created_at: rfc3339(c.created_at),
            expires_at: rfc3339(c.expires_at),
        }
    }
}

async fn connected_apps(state: &AppState, subject: &str) -> Result<Vec<ConnectedAppView>> {
    let apps = state.server.connected_apps(&state.catalog.load(), subject, now()).await?;
    Ok(apps.into_iter().map(Into::into).collect())
}

pub async fn account(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response> {
    let value = state.pages.session_value(&headers);
    let Some(session) = state.server.session(value, now()).await? else {
        admit_unauthenticated(&state, peer, &headers).await?;
        let form = state.server.login_form(&state.catalog.load(), None, None, false, now()).await?;
        return Ok(render(&state, Step::Login(form)));
    };
    let apps = connected_apps(&state, &session.subject).await?;
    let user = state.server.user(&session.subject).await?;
    let username = user.as_ref().map(|u| u.username.clone()).unwrap_or_default();
    let signed_in_with =
        user.as_ref().and_then(|u| crate::oauth::front_channel::signed_in_with(&state.catalog.load(), u));
    let csrf = state.server.account_csrf(value.unwrap_or(""));
    let has_user_code = state.server.has_backchannel_user_code(&session.subject).await?;
    Ok(state.pages.render(
        StatusCode::OK,
        "account.html",
        minijinja::context! {
            consents => apps, username => username, csrf => csrf, signed_in_with => signed_in_with,
            has_user_code => has_user_code,
            min_user_code => crate::oauth::backchannel::MIN_USER_CODE,
            max_user_code => crate::oauth::backchannel::MAX_USER_CODE,
        },
    ))
}

/// Sets (`Some`) or removes the signed-in user's CIBA user code: the format is checked,
/// then the code hashed like a password.
async fn change_user_code(state: &AppState, subject: &str, code: Option<&str>) -> std::result::Result<(), Refusal> {
    let hash = match code {
        None => None,
        Some(code) => {
            crate::oauth::backchannel::check_user_code_format(code).map_err(Refusal::BadRequest)?;
            let code = code.to_string();
            let hash = state.password_work(move || crate::identity::hash_password(&code)).await;
            Some(hash.ok_or_else(|| Refusal::Failed(OAuthError::temporarily_unavailable()))?)
        }
    };
    state.server.set_backchannel_user_code(subject, hash.as_deref()).await
}

/// A form posted from the account page: same origin, signed in (else None: back to the
/// page) and carrying the page's CSRF token. The signed-in subject and the form.
async fn account_form(state: &AppState, headers: &HeaderMap, body: &Bytes) -> Result<Option<(String, Form)>> {
    same_origin(state, headers)?;
    let value = state.pages.session_value(headers);
    let Some(session) = state.server.session(value, now()).await? else { return Ok(None) };
    let form = Form::parse(body);
    if !state.server.account_csrf_matches(value.unwrap_or(""), form.get("csrf").unwrap_or("")) {
        return Err(Refusal::Forbidden(OAuthError::invalid_request("missing or invalid CSRF token")).into());
    }
    Ok(Some((session.subject, form)))
}

/// The account page's user code form: `user_code` sets it, `remove` removes it.
pub async fn account_user_code(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let Some((subject, form)) = account_form(&state, &headers, &body).await? else {
        return Ok(see_other(paths::ACCOUNT));
    };
    let code = if form.get("remove").is_some() { None } else { Some(form.get("user_code").unwrap_or("")) };
    change_user_code(&state, &subject, code).await?;
    Ok(see_other(paths::ACCOUNT))
}

#[derive(serde::Deserialize)]
pub struct UserCodeBody {
    user_code: String,
}

/// `PUT` with a JSON body cannot be sent cross-site without a CORS preflight we never
/// grant: no CSRF token needed (as for `DELETE`).
pub async fn account_api_set_user_code(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let session = state.server.session(state.pages.session_value(&headers), now()).await.map_err(json)?;
    let session = session.ok_or_else(no_session)?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        return Err(HttpError::new(OAuthError::invalid_request("send the user code as application/json")));
    }
    let body: UserCodeBody = serde_json::from_slice(&body)
        .map_err(|_| HttpError::new(OAuthError::invalid_request("the body must be {\"user_code\": \"...\"}")))?;
    change_user_code(&state, &session.subject, Some(&body.user_code)).await.map_err(json)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn account_api_remove_user_code(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response> {
    let session = state.server.session(state.pages.session_value(&headers), now()).await.map_err(json)?;
    let session = session.ok_or_else(no_session)?;
    change_user_code(&state, &session.subject, None).await.map_err(json)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn account_revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let Some((subject, _)) = account_form(&state, &headers, &body).await? else {
        return Ok(see_other(paths::ACCOUNT));
    };
    state.server.revoke_consent(&id, &subject, now()).await?;
    Ok(see_other(paths::ACCOUNT))
}

/// The JSON API's errors are JSON, like the rest of the API.
fn json(refusal: Refusal) -> HttpError {
    HttpError::new(refusal.error().clone())
}

fn no_session() -> HttpError {
    HttpError::new(OAuthError::new(ErrorCode::LoginRequired, "no session"))
}

/// JSON API of the account page, for the same logged-in user.
pub async fn account_api_list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response> {
    let session = state.server.session(state.pages.session_value(&headers), now()).await.map_err(json)?;
    let session = session.ok_or_else(no_session)?;
    let apps = state.server.connected_apps(&state.catalog.load(), &session.subject, now()).await.map_err(json)?;
    let apps: Vec<ConnectedAppView> = apps.into_iter().map(Into::into).collect();
    Ok(Json(serde_json::json!({ "apps": apps })).into_response())
}

/// `DELETE` cannot be sent cross-site without a CORS preflight we never grant, and the
/// session cookie is `SameSite=Lax`: no CSRF token needed here.
pub async fn account_api_revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response> {
    let session = state.server.session(state.pages.session_value(&headers), now()).await.map_err(json)?;
    let session = session.ok_or_else(no_session)?;
    if state.server.revoke_consent(&id, &session.subject, now()).await.map_err(json)? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(HttpError::new(OAuthError::new(ErrorCode::NotFound, "no such active consent")))
    }
}

/// OpenID Connect Core §5.3 UserInfo, GET or POST, bearer token (RFC 6750 §2.1, §2.2).
pub async fn userinfo(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Result<Response> {
    let bearer = super::bearer_token(&headers)
        .map(str::to_string)
        .or_else(|| Form::parse(&body).get("access_token").map(str::to_string));
    let Some(token) = bearer else {
        // RFC 6750 §3.1: no credentials, no error code.
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Ok(response);
    };
    match state.server.userinfo(&state.catalog.load(), &token, now()).await {
        Ok(claims) => Ok(super::response::no_store_json(StatusCode::OK, &claims)),
        Err(e) if matches!(e.code, ErrorCode::InvalidToken | ErrorCode::InsufficientScope) => {
            Err(HttpError::bearer_challenge(e))
        }
        Err(e) => Err(e.into()),
    }
}
