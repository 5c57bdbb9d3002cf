//! Token introspection (RFC 7662) and revocation (RFC 7009).

use serde::Serialize;

use super::{
    OAuthError,
    params::Params,
    server::{AuthorizationServer, store_error},
};
use crate::audit::{Event, FamilyRevocation};
use crate::catalog::{Catalog, Client, ClientOrigin};
use crate::secrets::token_digest;
use crate::store::RefreshToken;
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_namespace: Option<String>,
    /// `Bearer` for access tokens; absent for refresh tokens (RFC 7662 §2.2 names only
    /// access token types).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    pub exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    pub iss: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// RFC 8693 §4.1: the actor of a delegated token, for the resource server's policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<crate::tokens::Actor>,
}

impl From<AccessTokenClaims> for ActiveClaims {
    fn from(c: AccessTokenClaims) -> Self {
        ActiveClaims {
            scope: c.scope,
            client_id: c.client_id,
            client_namespace: c.client_namespace,
            token_type: Some("Bearer"),
            exp: c.exp,
            iat: Some(c.iat),
            sub: c.sub,
            aud: Some(c.aud),
            iss: c.iss,
            jti: Some(c.jti),
            tenant: c.tenant,
            roles: c.roles,
            act: c.act,
        }
    }
}

/// Who may read an access token's claims (RFC 7662 §2.1: the server decides which protected
/// resources may query it; §4: to anyone else the token is `active: false`). The token's
/// own client may; so may an app declared as the resource server (`spec.resourceServer`) of
/// a resource in the token's audience. Self-registered clients (anyone can register one)
/// only ever see their own tokens.
fn may_introspect(caller: &Client, claims: &AccessTokenClaims) -> bool {
    if claims.client_id == caller.client_id {
        return true;
    }
    if caller.origin != ClientOrigin::Declared {
        return false;
    }
    let Some(server) = &caller.spec.resource_server else { return false };
    claims.aud.to_list().iter().any(|aud| crate::protocol::resource::find(&server.resources, aud).is_some())
}

impl AuthorizationServer {
    /// The live refresh token `token` names, if it is one (bounded work for any input).
    async fn live_refresh_token(&self, token: &str, now: i64) -> Result<Option<RefreshToken>, OAuthError> {
        if token.len() > 512 {
            return Ok(None);
        }
        self.store.live_refresh_token(&token_digest(token), now).await.map_err(store_error)
    }

    /// RFC 7662: the caller must authenticate as a confidential client.
    pub async fn introspect(
        &self,
        catalog: &Catalog,
        authorization: Option<&str>,
        params: &Params,
        now: i64,
    ) -> Result<Introspection, OAuthError> {
        self.resolve_presented(catalog, authorization, params, now).await;
        let caller =
            self.authenticate_client(catalog, authorization, params, crate::protocol::paths::INTROSPECT, now).await?;
        if !caller.is_confidential() {
            return Err(OAuthError::invalid_client("introspection requires a confidential client"));
        }
        let token = params.require("token")?;
        let answer = self.describe(catalog, &caller, token, now).await?;
        let described = answer.claims.as_ref();
        self.audit.emit(Event::Introspection {
            caller: Some(caller.client_id.clone()),
            active: answer.active,
            jti: described.and_then(|c| c.jti.clone()),
            token_client_id: described.map(|c| c.client_id.clone()),
            error: None,
        });
        Ok(answer)
    }

    /// What `caller` may learn about `token`.
    async fn describe(
        &self,
        catalog: &Catalog,
        caller: &Client,
        token: &str,
        now: i64,
    ) -> Result<Introspection, OAuthError> {
        // token_type_hint is only a hint (RFC 7662 §2.1); every token type is searched.
        if let Some(claims) = self.active_claims(catalog, token, now).await? {
            if !may_introspect(caller, &claims) {
                return Ok(Introspection::default());
            }
            return Ok(Introspection { active: true, claims: Some(claims.into()) });
        }
        // A refresh token is described only to the client it was issued to.
        Ok(match self.live_refresh_token(token, now).await? {
            Some(refresh) if refresh.client_id == caller.client_id => Introspection {
                active: true,
                claims: Some(ActiveClaims {
                    scope: (!refresh.scopes.is_empty()).then(|| refresh.scopes.join(" ")),
                    client_id: refresh.client_id,
                    client_namespace: None,
                    token_type: None,
                    exp: refresh.expires_at,
                    iat: None,
                    sub: refresh.subject,
                    aud: None,
                    iss: self.issuer.clone(),
                    jti: None,
                    tenant: refresh.tenant,
                    roles: None,
                    act: None,
                }),
            },
            _ => Introspection::default(),
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
        let caller =
            self.authenticate_client(catalog, authorization, params, crate::protocol::paths::REVOKE, now).await?;
        let token = params.require("token")?;
        let Some(claims) = self.active_claims(catalog, token, now).await? else {
            // RFC 7009 §2: refresh tokens MUST be revocable. Revoking one ends its family
            // (every refresh token of the grant). Access tokens already issued from it stay
            // valid until they expire (minutes); they are not tracked per grant.
            if let Some(refresh) = self.live_refresh_token(token, now).await? {
                if refresh.client_id != caller.client_id {
                    return Err(OAuthError::unauthorized_client("the token was not issued to this client"));
                }
                self.store.revoke_family(&refresh.family_id).await.map_err(store_error)?;
                tracing::info!(client_id = %caller.client_id, "refresh token revoked with its family");
                self.audit.emit(Event::Revocation {
                    caller: Some(caller.client_id.clone()),
                    revoked: "refresh_token",
                    jti: None,
                    family_id: Some(refresh.family_id.clone()),
                    error: None,
                });
                self.audit.emit(Event::TokenFamilyRevoked {
                    client_id: caller.client_id.clone(),
                    family_id: refresh.family_id,
                    reason: FamilyRevocation::Revoked,
                });
                return Ok(());
            }
            self.audit.emit(Event::Revocation {
                caller: Some(caller.client_id.clone()),
                revoked: "none",
                jti: None,
                family_id: None,
                error: None,
            });
            return Ok(());
        };
        if claims.client_id != caller.client_id {
            return Err(OAuthError::unauthorized_client("the token was not issued to this client"));
        }
        // Durable first: a revocation that only lived in memory would be lost on restart.
        self.store.revoke(&claims.jti, claims.exp).await.map_err(store_error)?;
        self.audit.emit(Event::Revocation {
            caller: Some(caller.client_id.clone()),
            revoked: "access_token",
            jti: Some(claims.jti.clone()),
            family_id: None,
            error: None,
        });
        self.revocations.insert(claims.jti, claims.exp);
        Ok(())
    }
}
