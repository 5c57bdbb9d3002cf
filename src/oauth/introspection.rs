//! Token introspection (RFC 7662) and revocation (RFC 7009).

use serde::Serialize;

use super::{
    OAuthError,
    client_auth::{authenticate, presented_client},
    params::Params,
    server::{AuthorizationServer, store_error},
};
use crate::catalog::Catalog;
use crate::tokens::{AccessTokenClaims, Audience};

/// RFC 7662 §2.2 response. Inactive tokens yield only `{"active": false}`, whatever the
/// reason, so that introspection reveals nothing about tokens that do not work.
#[derive(Debug, Default, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ActiveClaims>,
}

#[derive(Debug, Serialize)]
pub struct ActiveClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub client_id: String,
    pub token_type: &'static str,
    pub exp: i64,
    pub iat: i64,
    pub sub: String,
    pub aud: Audience,
    pub iss: String,
    pub jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

impl From<AccessTokenClaims> for ActiveClaims {
    fn from(c: AccessTokenClaims) -> Self {
        ActiveClaims {
            scope: c.scope,
            client_id: c.client_id,
            token_type: "Bearer",
            exp: c.exp,
            iat: c.iat,
            sub: c.sub,
            aud: c.aud,
            iss: c.iss,
            jti: c.jti,
            tenant: c.tenant,
            roles: c.roles,
        }
    }
}

impl AuthorizationServer {
    /// RFC 7662: the caller must authenticate as a confidential client.
    pub async fn introspect(
        &self,
        catalog: &Catalog,
        authorization: Option<&str>,
        params: &Params,
        now: i64,
    ) -> Result<Introspection, OAuthError> {
        self.resolve_presented(catalog, authorization, params, now).await;
        let caller = authenticate(catalog, &self.hasher, &presented_client(authorization, params)?)?;
        if !caller.is_confidential() {
            return Err(OAuthError::invalid_client("introspection requires a confidential client"));
        }
        let token = params.require("token")?;
        // token_type_hint is only a hint (RFC 7662 §2.1); every token type is searched.
        Ok(match self.active_claims(catalog, token, now).await? {
            Some(claims) => Introspection { active: true, claims: Some(claims.into()) },
            None => Introspection::default(),
        })
    }

    /// RFC 7009 §2.1: the client may revoke only tokens issued to it. An unknown, invalid or
    /// expired token is answered with success (§2.2): there is nothing left to revoke.
    pub async fn revoke(
        &self,
        catalog: &Catalog,
        authorization: Option<&str>,
        params: &Params,
        now: i64,
    ) -> Result<(), OAuthError> {
        self.resolve_presented(catalog, authorization, params, now).await;
        let caller = authenticate(catalog, &self.hasher, &presented_client(authorization, params)?)?;
        let token = params.require("token")?;
        let Some(claims) = self.active_claims(catalog, token, now).await? else {
            return Ok(());
        };
        if claims.client_id != caller.client_id {
            return Err(OAuthError::unauthorized_client("the token was not issued to this client"));
        }
        // Durable first: a revocation that only lived in memory would be lost on restart.
        self.store.revoke(&claims.jti, claims.exp).await.map_err(store_error)?;
        self.revocations.insert(claims.jti, claims.exp);
        Ok(())
    }
}
