//! The token endpoint (RFC 6749 §3.2) and token minting.

use std::sync::Arc;

use serde::Serialize;

use super::{
    OAuthError,
    client_auth::{authenticate, presented_client},
    client_credentials,
    params::Params,
};
use crate::api::TokenFormat;
use crate::catalog::{Catalog, Client};
use crate::secrets::{SecretHasher, random_token, token_digest};
use crate::store::{Store, StoreError};
use crate::tokens::{AccessTokenClaims, Audience, KeySet, RevocationList, VerifiedTokens};

/// What every endpoint of the core needs besides the catalog snapshot: who we are, how we
/// sign, where runtime state lives.
pub struct AuthorizationServer {
    /// Issuer identifier (`iss`), no trailing slash.
    pub issuer: String,
    /// Audience of tokens whose grants name no resource.
    pub default_audience: String,
    pub keys: Arc<KeySet>,
    pub hasher: SecretHasher,
    pub store: Arc<dyn Store>,
    pub revocations: Arc<RevocationList>,
    /// JWTs whose signature already verified (introspection hot path).
    pub verified: VerifiedTokens,
}

/// Successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    /// Always present, so clients learn when the server narrowed the request (RFC 6749 §3.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Storage failures become `temporarily_unavailable` (retry) or `server_error`.
pub fn store_error(e: StoreError) -> OAuthError {
    match e {
        StoreError::Unavailable(detail) => {
            tracing::warn!(%detail, "store unavailable");
            OAuthError::temporarily_unavailable()
        }
        StoreError::Corrupt(detail) => {
            tracing::error!(%detail, "store data corrupt");
            OAuthError::server_error()
        }
    }
}

impl AuthorizationServer {
    /// Handles one token request. `authorization` is the raw `Authorization` header.
    pub async fn token(
        &self,
        catalog: &Catalog,
        authorization: Option<&str>,
        params: &Params,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let grant_type = params.require("grant_type")?;
        match grant_type {
            "client_credentials" => {
                let client = authenticate(
                    catalog,
                    &self.hasher,
                    &presented_client(authorization, params)?,
                )?;
                let request = client_credentials::Request {
                    scope: params.get("scope"),
                    resources: params.resources(),
                    tenant: params.get("tenant"),
                };
                let entitlement = client_credentials::decide(catalog, &client, &request, now)?;
                let audience = if entitlement.audience.is_empty() {
                    vec![self.default_audience.clone()]
                } else {
                    entitlement.audience
                };
                // RFC 9068 §2.2: with no resource owner, `sub` identifies the client.
                let sub = client.client_id.clone();
                self.mint(
                    &client,
                    sub,
                    audience,
                    entitlement.scopes,
                    entitlement.tenant,
                    now,
                )
                .await
            }
            other => Err(OAuthError::new(
                super::ErrorCode::UnsupportedGrantType,
                format!("grant type {other:?} is not supported by this server"),
            )),
        }
    }

    /// Issues an access token in the client's format: a signed JWT, or an opaque reference
    /// whose claims are durably stored before the token is returned.
    pub async fn mint(
        &self,
        client: &Client,
        sub: String,
        audience: Vec<String>,
        scopes: Vec<String>,
        tenant: Option<String>,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let lifetime = client.access_token_lifetime.as_secs();
        let scope = (!scopes.is_empty()).then(|| scopes.join(" "));
        let claims = AccessTokenClaims {
            iss: self.issuer.clone(),
            sub,
            aud: Audience::from_list(audience),
            exp: now + lifetime as i64,
            iat: now,
            jti: random_token(16),
            client_id: client.client_id.clone(),
            scope: scope.clone(),
            tenant,
        };
        let access_token = match client.spec.tokens.format {
            TokenFormat::Jwt => self.keys.sign_access_token(&claims),
            TokenFormat::Opaque => {
                let token = random_token(32);
                self.store
                    .put_opaque_token(&token_digest(&token), &claims)
                    .await
                    .map_err(store_error)?;
                token
            }
        };
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: lifetime,
            scope,
        })
    }

    /// Finds the claims of an access token this server issued, whatever its format, if it
    /// is currently active: signature and expiry valid, not revoked, client still declared.
    pub async fn active_claims(
        &self,
        catalog: &Catalog,
        token: &str,
        now: i64,
    ) -> Result<Option<AccessTokenClaims>, OAuthError> {
        let claims = if token.bytes().filter(|b| *b == b'.').count() == 2 {
            if token.len() > 8192 {
                return Ok(None);
            }
            let digest = token_digest(token);
            match self.verified.get(&digest) {
                Some(claims) => (*claims).clone(),
                None => match self.keys.verify::<AccessTokenClaims>(token, &self.issuer) {
                    Ok(claims) => {
                        self.verified.insert(digest, Arc::new(claims.clone()));
                        claims
                    }
                    Err(_) => return Ok(None),
                },
            }
        } else {
            if token.len() > 512 {
                return Ok(None);
            }
            match self
                .store
                .opaque_token(&token_digest(token))
                .await
                .map_err(store_error)?
            {
                Some(claims) => claims,
                None => return Ok(None),
            }
        };
        let active = claims.exp > now
            && !self.revocations.is_revoked(&claims.jti)
            && catalog.client(&claims.client_id).is_some();
        Ok(active.then_some(claims))
    }
}
