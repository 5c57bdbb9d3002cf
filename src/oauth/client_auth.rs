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
    /// `client_assertion` (`private_key_jwt`, RFC 7523 §2.2).
    Assertion,
}

/// RFC 7523 §2.2: the `client_assertion_type` of a JWT client assertion.
pub const JWT_CLIENT_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The identity a request claims, before verification.
#[derive(Debug)]
pub struct PresentedClient {
    pub client_id: String,
    pub secret: Option<ClientSecret>,
    pub method: Presented,
    /// The `client_assertion` JWT, for [`Presented::Assertion`].
    pub assertion: Option<String>,
}

/// Extracts the client's claimed identity from the `Authorization` header and the body.
pub fn presented_client(authorization: Option<&str>, params: &Params) -> Result<PresentedClient, OAuthError> {
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    let assertion_type = params.get("client_assertion_type");
    let assertion = params.get("client_assertion");
    if assertion_type.is_some() || assertion.is_some() {
        // RFC 6749 §2.3: a client MUST NOT use more than one authentication method.
        if authorization.is_some() || body_secret.is_some() {
            return Err(OAuthError::invalid_request("a client assertion and another client authentication were sent"));
        }
        let (Some(assertion_type), Some(assertion)) = (assertion_type, assertion) else {
            return Err(OAuthError::invalid_request("client_assertion and client_assertion_type go together"));
        };
        if assertion_type != JWT_CLIENT_ASSERTION {
            return Err(OAuthError::invalid_client(format!("client_assertion_type must be {JWT_CLIENT_ASSERTION}")));
        }
        // OpenID Connect Core §9: `client_id` is optional; the assertion's `sub` names it.
        let sub = super::assertion::Unverified::parse(assertion)
            .ok()
            .and_then(|a| a.str("sub").map(str::to_string))
            .ok_or_else(|| OAuthError::invalid_client(AUTH_FAILED))?;
        // A ServiceAccount token names the workload, not the app: `client_id` says which
        // app it authenticates (RFC 7521 §4.2), and the app must name that ServiceAccount.
        let client_id = if super::jwt_bearer::service_account_of(&sub).is_some() {
            body_id.ok_or_else(|| {
                OAuthError::invalid_client("client_id is required with a ServiceAccount token as client_assertion")
            })?
        } else {
            if body_id.is_some_and(|id| id != sub) {
                return Err(OAuthError::invalid_client(AUTH_FAILED));
            }
            &sub
        };
        return Ok(PresentedClient {
            client_id: client_id.to_string(),
            secret: None,
            method: Presented::Assertion,
            assertion: Some(assertion.to_string()),
        });
    }
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
            assertion: None,
        });
    }
    let Some(client_id) = body_id else {
        return Err(OAuthError::invalid_client("client authentication is required"));
    };
    Ok(PresentedClient {
        client_id: client_id.to_string(),
        secret: body_secret.map(|s| ClientSecret::from_presented(s.to_string())),
        method: if body_secret.is_some() { Presented::Post } else { Presented::IdOnly },
        assertion: None,
    })
}

/// Whether the request identifies a client at all (any authentication method).
pub fn identifies_client(authorization: Option<&str>, params: &Params) -> bool {
    authorization.is_some() || params.get("client_id").is_some() || params.get("client_assertion").is_some()
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
    if !s.contains(['+', '%']) {
        return Some(s.to_string());
    }
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
        Presented::Assertion => AuthMethod::PrivateKeyJwt,
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
    if registered == AuthMethod::PrivateKeyJwt {
        // The signature needs the client's keys, which may be fetched:
        // `AuthorizationServer::authenticate_client` verifies assertions.
        return Err(OAuthError::invalid_client(AUTH_FAILED));
    }
    let secret = presented.secret.as_ref().ok_or_else(|| OAuthError::invalid_client(AUTH_FAILED))?;
    if hasher.verify(secret.expose(), &client.secret_hashes) {
        Ok(client.clone())
    } else {
        Err(OAuthError::invalid_client(AUTH_FAILED))
    }
}

/// Longest validity of a client assertion: they are made for one request.
const MAX_CLIENT_ASSERTION_LIFETIME: i64 = 600;

impl super::AuthorizationServer {
    /// Authenticates the client of a request at `endpoint` (a path: `/token`, `/introspect`,
    /// `/revoke`), whatever method it uses, and resolves self-registered clients first.
    pub(crate) async fn authenticate_client(
        &self,
        catalog: &Catalog,
        authorization: Option<&str>,
        params: &Params,
        endpoint: &str,
        now: i64,
    ) -> Result<Arc<Client>, OAuthError> {
        let presented = presented_client(authorization, params)?;
        // A self-registered client becomes findable through `catalog.client()`; declared
        // ones are found at once. What makes it unusable is told as `invalid_client` below.
        let _ = self.resolve_client(catalog, &presented.client_id, now).await;
        let Some(assertion) = presented.assertion.as_deref() else {
            return authenticate(catalog, &self.hasher, &presented);
        };
        let client = catalog.client(&presented.client_id).ok_or_else(|| OAuthError::invalid_client(AUTH_FAILED))?;
        if client.spec.auth_method() != AuthMethod::PrivateKeyJwt {
            tracing::info!(client_id = %client.client_id, "client sent an assertion but is not registered for private_key_jwt");
            return Err(OAuthError::invalid_client(AUTH_FAILED));
        }
        if client.spec.service_account_name.is_some()
            && super::assertion::Unverified::parse(assertion)
                .ok()
                .and_then(|a| a.str("sub").and_then(super::jwt_bearer::service_account_of).map(|_| ()))
                .is_some()
        {
            return self.authenticate_workload(&client, assertion, now).await;
        }
        match self.verify_client_assertion(&client, assertion, endpoint, now).await? {
            Ok(()) => Ok(client),
            Err(reason) => {
                // The reason is for the operator's log: the caller learns only that it failed.
                tracing::info!(client_id = %client.client_id, %reason, "client assertion refused");
                Err(OAuthError::invalid_client(AUTH_FAILED))
            }
        }
    }

    /// Workload identity federation: the app's `spec.serviceAccountName`, in its namespace,
    /// presents its ServiceAccount token. The token is checked as the JWT bearer grant
    /// checks ServiceAccount tokens (audience, TokenReview or the issuer's keys, lifetime).
    /// No single-use `jti`: a projected token is reused until the kubelet renews it.
    async fn authenticate_workload(
        &self,
        client: &Arc<Client>,
        token: &str,
        now: i64,
    ) -> Result<Arc<Client>, OAuthError> {
        let reason = match self.verify_service_account_token(token, now).await {
            Ok((_, account)) => {
                let named = client.spec.service_account_name.as_deref();
                if account.key.namespace == client.key.namespace && Some(account.key.name.as_str()) == named {
                    return Ok(client.clone());
                }
                format!("{} is not the app's ServiceAccount", account.username)
            }
            Err(e) if e.code == super::ErrorCode::TemporarilyUnavailable => return Err(e),
            Err(e) => e.description,
        };
        tracing::info!(client_id = %client.client_id, %reason, "ServiceAccount token refused as client assertion");
        Err(OAuthError::invalid_client(AUTH_FAILED))
    }

    /// RFC 7523 §3 for client authentication, with draft-ietf-oauth-rfc7523bis: `iss` and
    /// `sub` are the client; `aud` is one value, this issuer or the exact endpoint (an
    /// assertion for the token endpoint is refused at another one); `typ` absent, `JWT` or
    /// `client-authentication+jwt`; `exp` near; `jti` used once.
    async fn verify_client_assertion(
        &self,
        client: &Client,
        assertion: &str,
        endpoint: &str,
        now: i64,
    ) -> Result<Result<(), String>, OAuthError> {
        Ok(match self.check_client_assertion(client, assertion, endpoint, now).await {
            Err(reason) => Err(reason),
            Ok(jti_digest_and_exp) => {
                let (digest, exp) = jti_digest_and_exp;
                // Single use (RFC 7523 §3 item 7), per client, until it expires anyway.
                let fresh = self
                    .store
                    .use_assertion_jti(&digest, exp + super::assertion::LEEWAY, now)
                    .await
                    .map_err(super::server::store_error)?;
                if fresh { Ok(()) } else { Err("the assertion's jti was already used (a replay)".into()) }
            }
        })
    }

    /// Every check of [`Self::verify_client_assertion`] but the jti's use: the digest of
    /// (client_id, jti) and `exp`.
    async fn check_client_assertion(
        &self,
        client: &Client,
        assertion: &str,
        endpoint: &str,
        now: i64,
    ) -> Result<([u8; 32], i64), String> {
        use super::assertion::{self, Expectations, KeySource, Unverified};
        let unverified = Unverified::parse(assertion).map_err(|e| e.to_string())?;
        match unverified.header.typ.as_deref() {
            None => {}
            Some(t) if t.eq_ignore_ascii_case("JWT") || t.eq_ignore_ascii_case("client-authentication+jwt") => {}
            Some(other) => return Err(format!("typ {other:?} is not a client assertion")),
        }
        let audiences = vec![self.issuer.clone(), format!("{}{endpoint}", self.issuer)];
        if unverified.audiences().len() != 1 {
            return Err("aud must be a single value".into());
        }
        let expect = Expectations {
            issuer: &client.client_id,
            audiences: &audiences,
            algorithms: assertion::DEFAULT_ALGORITHMS,
            max_lifetime: MAX_CLIENT_ASSERTION_LIFETIME,
        };
        assertion::check_algorithm(&unverified.header, expect.algorithms).map_err(|e| e.to_string())?;
        assertion::check_claims(&unverified.claims, &expect, now).map_err(|e| e.to_string())?;
        if unverified.str("sub") != Some(client.client_id.as_str()) {
            return Err("sub is not the client_id".into());
        }
        let jti = unverified.str("jti").filter(|j| !j.is_empty()).ok_or("the jti claim is missing")?.to_string();
        let kid = unverified.header.kid.as_deref();
        let key = match (&client.spec.jwks, &client.spec.jwks_uri) {
            (Some(set), _) => {
                let set = crate::protocol::jwk::parse_public_jwk_set(set)?;
                assertion::inline_key(&set, kid)
            }
            (None, Some(uri)) => {
                let kid = kid.ok_or("the header has no kid")?;
                let source = KeySource::JwksUri(uri.clone());
                self.assertions.keys.key(&source, kid, self.assertions.app_issuers_reach).await?
            }
            (None, None) => None,
        }
        .ok_or("signed by a key the client does not publish")?;
        let claims = assertion::verify(assertion, &key, &expect, now).map_err(|e| e.to_string())?;
        let exp = claims.get("exp").and_then(serde_json::Value::as_i64).unwrap_or(now);
        Ok((crate::secrets::token_digest(&format!("{}\0{jti}", client.client_id)), exp))
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
