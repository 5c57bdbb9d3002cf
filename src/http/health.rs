//! Liveness, readiness and metrics.

use std::sync::{Arc, atomic::Ordering};

use axum::{
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::AppState;

/// Alive as long as the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready once a configuration is loaded: local state only. The store is shared by every
/// replica, so its outage would drop them all from the Service at once, while what needs
/// no state (JWT grants, JWKS, discovery) still works; its health is the `store_up` metric,
/// and the body says it.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if !state.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "configuration not loaded").into_response();
    }
    if state.draining.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    if state.metrics.store_up.get() == 0 {
        "ready; the store is unavailable".into_response()
    } else {
        "ready".into_response()
    }
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut response = state.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
