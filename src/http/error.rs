//! The one error type of the HTTP layer.
//!
//! An [`HttpError`] carries what the client is told (an OAuth error: `error` and
//! `error_description`, safe to show) apart from what the log gets (the internal detail),
//! the way dropshot separates external and internal messages. Every domain error converts
//! into it with `From`, so handlers use `?` and every refusal is rendered alike: JSON with
//! `Cache-Control: no-store` (RFC 6749 §5.2, RFC 7591 §3.2.2, RFC 6750 §3), or, on the
//! front channel, an error page (never a redirect to an unverified URI).

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::admin::AdminDenied;
use crate::oauth::{
    ErrorCode, OAuthError, clients::RegisterError, front_channel::Refusal, register::RegistrationError,
};
use crate::store::RegistrationLimit;

/// How the error reaches the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Render {
    Json,
    /// An HTML error page: rendered by `pages::render_error_page` (which holds the
    /// templates) from the [`ErrorPage`] extension this response carries.
    Page,
}

/// An error response; see the module documentation. Boxed: errors are the cold path, and
/// handlers return `Result<Response, HttpError>` everywhere.
#[derive(Debug)]
pub struct HttpError(Box<Parts>);

#[derive(Debug)]
struct Parts {
    status: StatusCode,
    /// What the client is told.
    external: OAuthError,
    /// What only the log is told.
    internal: Option<String>,
    render: Render,
    headers: HeaderMap,
}

/// The error a page must show, handed from [`HttpError`] to the page renderer.
#[derive(Clone, Debug)]
pub struct ErrorPage(pub OAuthError);

impl HttpError {
    /// A JSON error with the status its code implies (RFC 6749 §5.2).
    pub fn new(error: OAuthError) -> HttpError {
        let status = StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        HttpError(Box::new(Parts {
            status,
            external: error,
            internal: None,
            render: Render::Json,
            headers: HeaderMap::new(),
        }))
    }

    /// The response's status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    pub fn with_status(mut self, status: StatusCode) -> HttpError {
        self.0.status = status;
        self
    }

    /// Detail for the log, never sent.
    pub fn internal(mut self, detail: impl Into<String>) -> HttpError {
        self.0.internal = Some(detail.into());
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> HttpError {
        self.0.headers.insert(name, value);
        self
    }

    /// Shown as an HTML page instead of JSON.
    pub fn page(mut self) -> HttpError {
        self.0.render = Render::Page;
        self
    }

    /// RFC 6750 §3: a protected resource's refusal with its `WWW-Authenticate` challenge.
    pub fn bearer_challenge(error: OAuthError) -> HttpError {
        let value = format!("Bearer error=\"{}\", error_description=\"{}\"", error.code.as_str(), error.description);
        let value = HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer"));
        HttpError::new(error).with_header(header::WWW_AUTHENTICATE, value)
    }

    pub fn error(&self) -> &OAuthError {
        &self.0.external
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let Parts { status, external, internal, render, headers } = *self.0;
        if let Some(detail) = &internal {
            tracing::warn!(error = external.code.as_str(), %detail, "request failed");
        }
        let mut response = match render {
            Render::Json => super::response::no_store_json(
                status,
                &ErrorBody { error: external.code.as_str(), error_description: &external.description },
            ),
            Render::Page => {
                let mut response = status.into_response();
                response.extensions_mut().insert(ErrorPage(external.clone()));
                response
            }
        };
        // RFC 6749 §5.2: a failed client authentication is 401 with a challenge.
        if external.code == ErrorCode::InvalidClient && !headers.contains_key(header::WWW_AUTHENTICATE) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"inbound\", charset=\"UTF-8\""),
            );
        }
        response.headers_mut().extend(headers);
        response
    }
}

impl From<OAuthError> for HttpError {
    fn from(error: OAuthError) -> HttpError {
        HttpError::new(error)
    }
}

/// Front-channel refusals are pages (RFC 6749 §4.1.2.1: never redirected).
impl From<Refusal> for HttpError {
    fn from(refusal: Refusal) -> HttpError {
        let status = match &refusal {
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::Failed(e) => {
                StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        };
        let error = refusal.error().clone();
        if !matches!(refusal, Refusal::Failed(_)) {
            tracing::info!(error = error.code.as_str(), description = %error.description, "request refused (not redirected)");
        }
        HttpError::new(error).with_status(status).page()
    }
}

/// RFC 7591 §3.2.2 and RFC 7592 §2.
impl From<RegisterError> for HttpError {
    fn from(e: RegisterError) -> HttpError {
        match e {
            RegisterError::Invalid(RegistrationError { code, description }) => {
                tracing::info!(error = code.as_str(), %description, "registration refused");
                HttpError::new(OAuthError::new(code, description))
            }
            RegisterError::Disabled => {
                HttpError::new(OAuthError::invalid_request("dynamic client registration is not enabled"))
                    .with_status(StatusCode::NOT_FOUND)
            }
            RegisterError::Limited(RegistrationLimit::MaxClients) => HttpError::new(OAuthError::access_denied(
                "this server has reached its limit of registered clients; contact its operator",
            ))
            .with_status(StatusCode::FORBIDDEN),
            RegisterError::Limited(limit) => {
                let what = match limit {
                    RegistrationLimit::PerSource => "too many registrations from this address",
                    _ => "too many registrations",
                };
                HttpError::new(OAuthError::new(ErrorCode::TemporarilyUnavailable, format!("{what}; retry later")))
                    .with_status(StatusCode::TOO_MANY_REQUESTS)
                    .with_header(header::RETRY_AFTER, HeaderValue::from_static("3600"))
            }
            // RFC 7592 §2.1/§2.4: a bad token, or a client that no longer exists, is 401.
            RegisterError::InvalidToken => HttpError::new(OAuthError::new(
                ErrorCode::InvalidToken,
                "the registration access token is missing or invalid, or the client no longer exists",
            ))
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\"")),
            RegisterError::Store(e) => HttpError::new(OAuthError::temporarily_unavailable()).internal(e.to_string()),
        }
    }
}

/// Callers of the admin API are Kubernetes users (TokenReview + SubjectAccessReview).
impl From<AdminDenied> for HttpError {
    fn from(e: AdminDenied) -> HttpError {
        let realm = HeaderValue::from_static("Bearer realm=\"inbound-admin\"");
        match e {
            AdminDenied::Unauthenticated => {
                HttpError::new(OAuthError::new(ErrorCode::InvalidToken, "the bearer token does not authenticate"))
                    .with_header(header::WWW_AUTHENTICATE, realm)
            }
            e @ AdminDenied::Forbidden(..) => {
                HttpError::new(OAuthError::access_denied(e.to_string())).with_status(StatusCode::FORBIDDEN)
            }
            AdminDenied::Unavailable(detail) => HttpError::new(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "cannot check the caller; retry later",
            ))
            .internal(detail),
            // RFC 6585 §4.
            e @ AdminDenied::Throttled => {
                HttpError::new(OAuthError::new(ErrorCode::TemporarilyUnavailable, e.to_string()))
                    .with_status(StatusCode::TOO_MANY_REQUESTS)
                    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            }
        }
    }
}
