//! Rendering of OAuth results: JSON, `Cache-Control: no-store`, RFC 6749 §5.2 errors.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::oauth::{ErrorCode, OAuthError};

/// A JSON body that must never be cached (RFC 6749 §5.1).
pub fn no_store_json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).expect("response serializes");
    let mut response = (status, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// RFC 6749 §5.2 error response. A 401 carries a `WWW-Authenticate` challenge, as HTTP
/// requires and as §5.2 demands when the client used HTTP Basic.
pub fn oauth_error(error: &OAuthError) -> Response {
    let status = StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response =
        no_store_json(status, &ErrorBody { error: error.code.as_str(), error_description: &error.description });
    if error.code == ErrorCode::InvalidClient {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"inbound\", charset=\"UTF-8\""));
    }
    response
}

/// A handler panicked: answer 500 with an OAuth-shaped body, keep serving.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    oauth_error(&OAuthError::server_error())
}
