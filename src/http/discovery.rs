//! Authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0) and the JWKS.

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

use super::{AppState, paths};

/// One document served at both well-known paths, so the two can never disagree.
pub fn metadata_document(state: &AppState) -> serde_json::Value {
    let issuer = &state.server.issuer;
    let auth_methods = ["client_secret_basic", "client_secret_post"];
    serde_json::json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}{}", paths::TOKEN),
        "jwks_uri": format!("{issuer}{}", paths::JWKS),
        "introspection_endpoint": format!("{issuer}{}", paths::INTROSPECT),
        "revocation_endpoint": format!("{issuer}{}", paths::REVOKE),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": state.catalog.load().scope_names(),
        // RFC 9068 access tokens and RFC 8707 resource indicators.
        "access_token_signing_alg_values_supported": ["ES256"],
        "resource_indicators_supported": true,
    })
}

fn cacheable(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

pub async fn metadata(State(state): State<Arc<AppState>>) -> Response {
    cacheable(Json(metadata_document(&state)).into_response())
}

pub async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    let mut response = cacheable(Json(state.server.keys.jwks()).into_response());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    response
}
