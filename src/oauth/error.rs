//! OAuth error codes (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 8707 §2, RFC 6750 §3.1, RFC 7591
//! §3.2.2, OpenID Connect Core §3.1.2.6) and their HTTP statuses.

use std::fmt;

/// Registered OAuth error codes this server returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    /// RFC 8707 §2: the requested resource is invalid, unknown or not allowed.
    InvalidTarget,
    /// RFC 7009 §2.2.1.
    UnsupportedTokenType,
    ServerError,
    TemporarilyUnavailable,
    /// RFC 6749 §4.1.2.1 authorization errors.
    AccessDenied,
    UnsupportedResponseType,
    /// OpenID Connect Core §3.1.2.6 (`prompt=none`).
    LoginRequired,
    ConsentRequired,
    /// RFC 6750 §3.1 (protected resources such as /userinfo).
    InvalidToken,
    InsufficientScope,
    /// RFC 7591 §3.2.2 registration errors.
    InvalidRedirectUri,
    InvalidClientMetadata,
    /// A path names nothing (the account and admin APIs).
    NotFound,
    /// RFC 8628 §3.5 device polling.
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
    /// OpenID Connect CIBA Core §13.
    UnknownUserId,
    InvalidBindingMessage,
    ExpiredLoginHintToken,
    MissingUserCode,
    InvalidUserCode,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::UnknownUserId => "unknown_user_id",
            ErrorCode::InvalidBindingMessage => "invalid_binding_message",
            ErrorCode::ExpiredLoginHintToken => "expired_login_hint_token",
            ErrorCode::MissingUserCode => "missing_user_code",
            ErrorCode::InvalidUserCode => "invalid_user_code",
        }
    }

    /// RFC 6749 §5.2: 400 for everything but failed client authentication (401); server
    /// trouble is 500/503 so that clients and load balancers retry correctly.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            ErrorCode::InsufficientScope => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error response: a code and a description safe to show the client (it never
/// contains a secret or a token).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> OAuthError {
        OAuthError { code, description: description.into() }
    }

    /// The same error, its description saying which parameter it is about.
    pub fn prefixed(self, parameter: &str) -> OAuthError {
        OAuthError { description: format!("{parameter}: {}", self.description), ..self }
    }

    pub fn invalid_request(d: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidClient, d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::UnauthorizedClient, d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidScope, d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidGrant, d)
    }
    pub fn access_denied(d: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::AccessDenied, d)
    }
    pub fn invalid_target(d: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidTarget, d)
    }
    /// Internal failures: the detail goes to the log, the client gets a generic text.
    pub fn server_error() -> OAuthError {
        OAuthError::new(ErrorCode::ServerError, "internal error; see server logs")
    }
    pub fn temporarily_unavailable() -> OAuthError {
        OAuthError::new(ErrorCode::TemporarilyUnavailable, "storage is unavailable; retry later")
    }
}

/// RFC 6749 §3.3: a scope outside the grammar is `invalid_scope`.
impl From<crate::protocol::scope::MalformedScope> for OAuthError {
    fn from(e: crate::protocol::scope::MalformedScope) -> OAuthError {
        OAuthError::invalid_scope(e.to_string())
    }
}
