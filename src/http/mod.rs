//! HTTP: the axum router and thin handlers over the OAuth core.

mod admin;
pub mod client_ip;
mod discovery;
mod endpoints;
mod error;
mod front_channel;
mod health;
pub mod notify;
pub mod pages;
mod register;
mod response;
pub mod server;

pub use error::HttpError;

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{HeaderName, HeaderValue},
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};
use tower_http::{catch_panic::CatchPanicLayer, timeout::TimeoutLayer};

use crate::catalog::Catalog;
use crate::metrics::Metrics;
use crate::oauth::AuthorizationServer;
use crate::protocol::paths;

/// Largest accepted request body: OAuth requests are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything handlers share.
pub struct AppState {
    pub server: AuthorizationServer,
    /// The current configuration snapshot, swapped atomically on reload.
    pub catalog: Arc<ArcSwap<Catalog>>,
    pub metrics: Metrics,
    pub pages: pages::Pages,
    /// Who end users are (password login).
    pub identity: Arc<dyn crate::identity::PasswordSource>,
    /// Password checks running now: at most one per core (the rest get 503 at once).
    pub password_checks: Arc<tokio::sync::Semaphore>,
    /// Upstream identity providers: discovery, keys, the relying-party requests.
    pub upstreams: Arc<crate::identity::upstream::Upstreams>,
    /// Set once the first configuration is loaded and the store answers.
    pub ready: AtomicBool,
    /// Set on shutdown: readiness turns false while requests still drain.
    pub draining: AtomicBool,
    /// Who may use `/admin/clients` (operator mode); None disables the admin API.
    pub admin: Option<Arc<dyn crate::admin::AdminAuthorizer>>,
    /// Proxies whose `X-Forwarded-For` is believed (per-source limits).
    pub trusted_proxies: Vec<client_ip::Cidr>,
    /// CIBA ping notifications to apps.
    pub notifier: notify::ClientNotifier,
    /// Where CIBA approval emails go out (`--smtp-host`); None: CIBA is refused.
    pub mailer: Option<Arc<dyn crate::mail::Mailer>>,
    /// The metadata document of the current configuration, serialised once.
    pub rendered_metadata: discovery::Rendered<crate::catalog::Catalog>,
}

impl AppState {
    /// Runs deliberately slow password hashing (argon2) off the async threads, at most one
    /// per core at a time so that a flood queues no unbounded work. None: the server is busy
    /// (every permit taken) or the work panicked.
    pub async fn password_work<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let permit = self.password_checks.clone().try_acquire_owned().ok()?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .ok()
    }
}

/// The public router. `public_metrics`: whether `/metrics` is served here too (not when a
/// listener of its own serves it: operational detail stays off the issuer's address).
pub fn router(state: Arc<AppState>, public_metrics: bool) -> Router {
    // An issuer with a path (https://host/tenant): metadata also at the path-suffixed
    // well-known locations (RFC 8414 §3.1) that MCP clients and OpenID libraries try.
    let issuer_path =
        url::Url::parse(state.server.issuer()).map(|u| u.path().trim_end_matches('/').to_string()).unwrap_or_default();
    let mut routes = Router::new();
    if !issuer_path.is_empty() {
        for path in [
            format!("{}{issuer_path}", paths::OAUTH_METADATA),
            format!("{}{issuer_path}", paths::OIDC_DISCOVERY),
            format!("{issuer_path}{}", paths::OIDC_DISCOVERY),
            format!("{issuer_path}{}", paths::OAUTH_METADATA),
        ] {
            routes = routes.route(&path, get(discovery::metadata));
        }
    }
    let routes = routes
        .route(paths::OIDC_DISCOVERY, get(discovery::metadata))
        .route(paths::OAUTH_METADATA, get(discovery::metadata))
        .route(paths::JWKS, get(discovery::jwks))
        .route(paths::TOKEN, post(endpoints::token))
        .route(paths::DEVICE_AUTHORIZATION, post(endpoints::device_authorization))
        .route(paths::DEVICE, get(front_channel::device_get).post(front_channel::device_post))
        .route(paths::BACKCHANNEL_AUTHENTICATION, post(endpoints::backchannel_authentication))
        .route(paths::CIBA_APPROVE, get(front_channel::ciba_approve))
        .route(paths::INTROSPECT, post(endpoints::introspect))
        .route(paths::REVOKE, post(endpoints::revoke))
        .route(paths::AUTHORIZE, get(front_channel::authorize_get).post(front_channel::authorize_post))
        .route(paths::LOGIN, post(front_channel::login))
        .route(paths::LOGIN_CALLBACK, get(front_channel::login_callback))
        .route(paths::LOGIN_ACCEPT, post(front_channel::login_accept))
        .route(paths::CONSENT, post(front_channel::consent))
        .route(paths::END_SESSION, get(front_channel::logout_get).post(front_channel::logout_post))
        .route(paths::USERINFO, get(front_channel::userinfo).post(front_channel::userinfo))
        .route(paths::ACCOUNT, get(front_channel::account))
        .route(paths::ACCOUNT_REVOKE, post(front_channel::account_revoke))
        .route(paths::ACCOUNT_API, get(front_channel::account_api_list))
        .route(paths::ACCOUNT_API_ONE, axum::routing::delete(front_channel::account_api_revoke))
        .route(paths::ACCOUNT_USER_CODE, post(front_channel::account_user_code))
        .route(
            paths::ACCOUNT_API_USER_CODE,
            axum::routing::put(front_channel::account_api_set_user_code)
                .delete(front_channel::account_api_remove_user_code),
        )
        .route(paths::REGISTER, post(register::register))
        .route(paths::REGISTER_ONE, get(register::read).put(register::update).delete(register::delete))
        .route(paths::HEALTHZ, get(health::healthz))
        .route(paths::READYZ, get(health::readyz));
    let routes = if public_metrics { routes.route(paths::METRICS, get(health::metrics)) } else { routes };
    common_layers(routes, state)
}

/// The admin API (`/admin/clients`, `/admin/consents`, operator mode), served on a listener of its own: never
/// on the public issuer host, where it would invite cluster credentials and unauthenticated
/// load onto the API server.
pub fn admin_router(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route(paths::ADMIN_CLIENTS, get(admin::list).delete(admin::delete_matching).patch(admin::tag_matching))
        .route(paths::ADMIN_CLIENT, axum::routing::delete(admin::delete_one))
        .route(paths::ADMIN_CONSENTS, get(admin::list_consents).delete(admin::revoke_consents))
        .route(paths::ADMIN_CONSENT, axum::routing::delete(admin::revoke_consent))
        .route(paths::HEALTHZ, get(health::healthz));
    common_layers(routes, state)
}

/// What the listener answers before the server is assembled (an operator replica waiting
/// for its signing keys): alive, not ready, and `temporarily_unavailable` to everything else.
/// Binding first means a restarted replica answers its probes, instead of being killed as
/// dead, while the API server is unreachable.
pub fn starting_router(waiting_for: &'static str) -> Router {
    Router::new()
        .route(paths::HEALTHZ, get(health::healthz))
        .route(paths::READYZ, get(move || async move { (axum::http::StatusCode::SERVICE_UNAVAILABLE, waiting_for) }))
        .fallback(move || async move {
            use crate::oauth::{ErrorCode, OAuthError};
            HttpError::new(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                format!("the server is starting: {waiting_for}"),
            ))
        })
}

/// Health and metrics only: the listener of a process that serves no OAuth.
pub fn health_router(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route(paths::HEALTHZ, get(health::healthz))
        .route(paths::READYZ, get(health::readyz))
        .route(paths::METRICS, get(health::metrics));
    common_layers(routes, state)
}

/// What every listener's responses get: error pages, metrics, limits, headers, timeouts.
fn common_layers(routes: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    // One stack, applied once: `Router::layer` wraps every route's service in a boxed
    // service per call, and each box is cloned (allocated) on every request, so four
    // `.layer` calls cost four clones and four boxed futures a request. The same for the
    // middleware: one `from_fn` for all the per-request bookkeeping. Outermost first.
    let stack = tower::ServiceBuilder::new()
        .layer(CatchPanicLayer::custom(response::panic_response))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(30)))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), around_request));
    routes.layer(stack).with_state(state)
}

/// Around every request, outermost first: a request id (sent back as `X-Request-Id`) and
/// the source address, which every audit record emitted while handling it carries; the
/// error page of a refusal meant for a browser ([`pages::render_error_page`]); the request
/// count and latency per endpoint (the route pattern, never the raw path, so that scanners
/// cannot blow up label cardinality); `X-Content-Type-Options: nosniff`.
async fn around_request(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().map(|p| p.as_str());
    let endpoint: &'static str =
        matched.and_then(|m| paths::ALL.iter().copied().find(|p| *p == m)).unwrap_or("unmatched");
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let context = crate::audit::RequestContext {
        request_id: crate::audit::new_request_id(),
        source_address: client_ip::client_ip(peer, request.headers(), &state.trusted_proxies),
    };
    let id = HeaderValue::from_str(&context.request_id).expect("request ids are base64url");
    let started = Instant::now();
    let response = crate::audit::in_request(context, next.run(request)).await;
    let mut response = pages::render_error_page(&state, response);
    state.metrics.observe_http(endpoint, response.status().as_u16(), started.elapsed());
    let headers = response.headers_mut();
    headers.insert(HeaderName::from_static("x-request-id"), id);
    headers.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    response
}

/// The token of an `Authorization: Bearer` header, if any (RFC 6750 §2.1).
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    crate::protocol::bearer::token_of(value)
}
