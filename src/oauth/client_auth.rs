//! Client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3, OAuth 2.1 §2.4).

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::STANDARD};

use super::{OAuthError, params::Params};
use crate::api::AuthMethod;
use crate::catalog::{Catalog, Client};
use crate::secrets::{ClientSecret, SecretHasher};

/// How the client presented itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented {
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// `client_id` + `client_secret` in the body (`client_secret_post`).
    Post,
    /// `client_id` alone: a public client (`none`).
    IdOnly,
}

/// The identity a request claims, before verification.
#[derive(Debug)]
pub struct PresentedClient {
    pub client_id: String,
    pub secret: Option<ClientSecret>,
    pub method: Presented,
}

/// Extracts the client's claimed identity from the `Authorization` header and the body.
pub fn presented_client(authorization: Option<&str>, params: &Params) -> Result<PresentedClient, OAuthError> {
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    if let Some(header) = authorization {
        let (scheme, credentials) = header.trim().split_once(' ').unwrap_or((header, ""));
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(OAuthError::invalid_client("unsupported authentication scheme; use HTTP Basic"));
        }
        // RFC 6749 §2.3: a client MUST NOT use more than one authentication method.
        if body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "client credentials sent both in the Authorization header and in the body",
            ));
        }
        let (id, secret) = decode_basic(credentials.trim())?;
        if body_id.is_some_and(|b| b != id) {
            return Err(OAuthError::invalid_request("client_id does not match the Authorization header"));
        }
        return Ok(PresentedClient {
            client_id: id,
            secret: Some(ClientSecret::from_presented(secret)),
            method: Presented::Basic,
        });
    }
    let Some(client_id) = body_id else {
        return Err(OAuthError::invalid_client("client authentication is required"));
    };
    Ok(PresentedClient {
        client_id: client_id.to_string(),
        secret: body_secret.map(|s| ClientSecret::from_presented(s.to_string())),
        method: if body_secret.is_some() { Presented::Post } else { Presented::IdOnly },
    })
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined with `:` and base64ed.
fn decode_basic(credentials: &str) -> Result<(String, String), OAuthError> {
    let malformed = || OAuthError::invalid_client("malformed HTTP Basic credentials");
    let raw = STANDARD.decode(credentials).map_err(|_| malformed())?;
    let raw = String::from_utf8(raw).map_err(|_| malformed())?;
    let (id, secret) = raw.split_once(':').ok_or_else(malformed)?;
    let id = form_decode(id).ok_or_else(malformed)?;
    let secret = form_decode(secret).ok_or_else(malformed)?;
    if id.is_empty() {
        return Err(malformed());
    }
    Ok((id, secret))
}

fn form_decode(s: &str) -> Option<String> {
    let plus_decoded = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_decoded).decode_utf8().ok().map(|c| c.into_owned())
}

/// The one description for every failed authentication, so that responses do not tell
/// an attacker whether a client id exists.
const AUTH_FAILED: &str = "client authentication failed";

/// Verifies the presented client against the catalog. Public clients authenticate with
/// `client_id` alone; confidential ones must use their registered method and a current secret.
pub fn authenticate(
    catalog: &Catalog,
    hasher: &SecretHasher,
    presented: &PresentedClient,
) -> Result<Arc<Client>, OAuthError> {
    let client = catalog.client(&presented.client_id).ok_or_else(|| OAuthError::invalid_client(AUTH_FAILED))?;
    let registered = client.spec.auth_method();
    let used = match presented.method {
        Presented::Basic => AuthMethod::ClientSecretBasic,
        Presented::Post => AuthMethod::ClientSecretPost,
        Presented::IdOnly => AuthMethod::None,
    };
    if used != registered {
        // The detail is for the operator's log only: telling the caller would reveal that
        // the client exists and how it authenticates.
        tracing::info!(
            client_id = %presented.client_id,
            registered = registered.as_str(),
            used = used.as_str(),
            "client used another authentication method than it is registered for"
        );
        return Err(OAuthError::invalid_client(AUTH_FAILED));
    }
    if registered == AuthMethod::None {
        return Ok(client.clone());
    }
    let secret = presented.secret.as_ref().ok_or_else(|| OAuthError::invalid_client(AUTH_FAILED))?;
    if hasher.verify(secret.expose(), &client.secret_hashes) {
        Ok(client.clone())
    } else {
        Err(OAuthError::invalid_client(AUTH_FAILED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(body: &str) -> Params {
        Params::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn basic_is_form_decoded() {
        // id "a b", secret "x:y%" encoded per RFC 6749 §2.3.1.
        let header = format!("Basic {}", STANDARD.encode("a+b:x%3Ay%25"));
        let p = presented_client(Some(&header), &params("")).unwrap();
        assert_eq!(p.client_id, "a b");
        assert_eq!(p.secret.unwrap().expose(), "x:y%");
        assert_eq!(p.method, Presented::Basic);
    }

    #[test]
    fn two_methods_is_invalid_request() {
        let header = format!("Basic {}", STANDARD.encode("a:b"));
        let err = presented_client(Some(&header), &params("client_secret=b")).unwrap_err();
        assert_eq!(err.code, super::super::ErrorCode::InvalidRequest);
    }

    #[test]
    fn malformed_basic_is_invalid_client() {
        for header in ["Basic !!!", "Basic Zm9v", "Bearer abc"] {
            let err = presented_client(Some(header), &params("")).unwrap_err();
            assert_eq!(err.code, super::super::ErrorCode::InvalidClient, "{header}");
        }
    }

    #[test]
    fn no_client_is_invalid_client() {
        let err = presented_client(None, &params("grant_type=client_credentials")).unwrap_err();
        assert_eq!(err.code, super::super::ErrorCode::InvalidClient);
    }
}
