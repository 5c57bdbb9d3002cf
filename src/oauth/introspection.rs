//! Token introspection (RFC 7662) and revocation (RFC 7009).

use std::{borrow::Cow, sync::Arc};

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
#[derive(Debug, Default)]
pub struct Introspection {
    described: Option<Described>,
}

/// The token an active answer describes, kept as found: the answer is serialized straight
/// from it (introspection is a resource server's hot path; no copy of the claims is made).
#[derive(Debug)]
enum Described {
    Access(Arc<AccessTokenClaims>),
    Refresh { token: Box<RefreshToken>, issuer: String },
}

impl Introspection {
    pub fn active(&self) -> bool {
        self.described.is_some()
    }

    fn jti(&self) -> Option<&str> {
        match &self.described {
            Some(Described::Access(claims)) => Some(&claims.jti),
            _ => None,
        }
    }

    fn client_id(&self) -> Option<&str> {
        match &self.described {
            Some(Described::Access(claims)) => Some(&claims.client_id),
            Some(Described::Refresh { token, .. }) => Some(&token.client_id),
            None => None,
        }
    }
}

impl Serialize for Introspection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.described {
            None => Inactive { active: false }.serialize(serializer),
            Some(Described::Access(c)) => ActiveClaims {
                active: true,
                scope: c.scope.as_deref().map(Cow::Borrowed),
                client_id: &c.client_id,
                client_namespace: c.client_namespace.as_deref(),
                token_type: Some("Bearer"),
                exp: c.exp,
                iat: Some(c.iat),
                sub: &c.sub,
                aud: Some(&c.aud),
                iss: &c.iss,
                jti: Some(&c.jti),
                tenant: c.tenant.as_deref(),
                roles: c.roles.as_deref(),
                act: c.act.as_deref(),
            }
            .serialize(serializer),
            Some(Described::Refresh { token, issuer }) => ActiveClaims {
                active: true,
                scope: (!token.scopes.is_empty()).then(|| Cow::Owned(token.scopes.join(" "))),
                client_id: &token.client_id,
                client_namespace: None,
                // RFC 7662 §2.2 names only access token types.
                token_type: None,
                exp: token.expires_at,
                iat: None,
                sub: &token.subject,
                aud: None,
                iss: issuer,
                jti: None,
                tenant: token.tenant.as_deref(),
                roles: None,
                act: None,
            }
            .serialize(serializer),
        }
    }
}

#[derive(Serialize)]
struct Inactive {
    active: bool,
}

#[derive(Serialize)]
struct ActiveClaims<'a> {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<Cow<'a, str>>,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_namespace: Option<&'a str>,
    /// `Bearer` for access tokens; absent for refresh tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a Audience>,
    iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<&'a [String]>,
    /// RFC 8693 §4.1: the actor of a delegated token, for the resource server's policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<&'a crate::tokens::Actor>,
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
        let caller =
            self.authenticate_client(catalog, authorization, params, crate::protocol::paths::INTROSPECT, now).await?;
        if !caller.is_confidential() {
            return Err(OAuthError::invalid_client("introspection requires a confidential client"));
        }
        let token = params.require("token")?;
        let answer = self.describe(catalog, &caller, token, now).await?;
        self.audit.emit(Event::Introspection {
            caller: Some(caller.client_id.clone()),
            active: answer.active(),
            jti: answer.jti().map(str::to_string),
            token_client_id: answer.client_id().map(str::to_string),
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
            return Ok(Introspection { described: Some(Described::Access(claims)) });
        }
        // A refresh token is described only to the client it was issued to.
        Ok(match self.live_refresh_token(token, now).await? {
            Some(token) if token.client_id == caller.client_id => Introspection {
                described: Some(Described::Refresh { token: Box::new(token), issuer: self.issuer.clone() }),
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
        self.revocations.insert(claims.jti.clone(), claims.exp);
        Ok(())
    }
}
