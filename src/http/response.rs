//! Rendering of OAuth results: JSON with `Cache-Control: no-store` (errors: `error.rs`).

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// A JSON body that must never be cached (RFC 6749 §5.1).
pub fn no_store_json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    // A token response is ~900 bytes: one allocation instead of serde_json's 128-byte
    // start doubled three times.
    let mut bytes = Vec::with_capacity(1024);
    serde_json::to_writer(&mut bytes, body).expect("response serializes");
    let mut response = (status, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// A handler panicked: answer 500 with an OAuth-shaped body, keep serving.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    super::HttpError::new(crate::oauth::OAuthError::server_error()).into_response()
}
