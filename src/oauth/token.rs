//! The token endpoint (RFC 6749 §3.2) and token minting.

use std::sync::Arc;

use serde::Serialize;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{
    AuthorizationServer, ErrorCode, OAuthError, client_credentials, params::Params, pkce, server::store_error,
};
use crate::api::{CIBA, DEVICE_CODE, GrantType, JWT_BEARER, TOKEN_EXCHANGE, TokenFormat};
use crate::audit::{Event, FamilyRevocation};
use crate::catalog::{Catalog, Client};
use crate::protocol::paths;
use crate::protocol::scope::OPENID;
use crate::secrets::{random_token, token_digest};
use crate::store::{CodeRedemption, DecoupledDecision, DecoupledPoll, RefreshToken, Rotation, UserGrant, UserRecord};
use crate::tokens::{AccessTokenClaims, Actor, Audience, IdTokenClaims, claims::KubernetesClaims};

/// Successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    /// Always present, so clients learn when the server narrowed the request (RFC 6749 §3.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// RFC 8693 §2.2.1: the type of the token issued by a token exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

/// What an access token is issued for.
#[derive(Default)]
pub struct Issue {
    pub sub: String,
    pub audience: Vec<String>,
    pub scopes: Vec<String>,
    pub tenant: Option<String>,
    pub roles: Option<Vec<String>>,
    /// The ServiceAccount a workload token is issued to.
    pub kubernetes: Option<KubernetesClaims>,
    /// Who acts for `sub` (token exchange).
    pub act: Option<Actor>,
}

/// Whom an access token is issued to (`client_id`) and how: an app's settings, or the
/// server's defaults for a ServiceAccount.
pub struct Recipient<'a> {
    pub client_id: &'a str,
    /// `client_namespace`: the namespace the recipient belongs to.
    pub namespace: &'a str,
    pub lifetime: std::time::Duration,
    pub format: TokenFormat,
}

impl<'a> From<&'a Client> for Recipient<'a> {
    fn from(client: &'a Client) -> Self {
        Recipient {
            client_id: &client.client_id,
            namespace: &client.key.namespace,
            lifetime: client.access_token_lifetime,
            format: client.spec.tokens.format,
        }
    }
}

/// A token response and the claims of the access token in it (what the audit records).
pub(super) type Issued = (TokenResponse, AccessTokenClaims);

/// Seconds an authorization code lives (OAuth 2.1 §4.1.2: short; ≤ 60 s here).
pub const CODE_LIFETIME: i64 = 60;

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
        let (response, claims) = match grant_type {
            "client_credentials" => {
                let client = self.authenticate_client(catalog, authorization, params, paths::TOKEN, now).await?;
                let request = client_credentials::Request::from_params(params);
                let entitlement = client_credentials::decide(catalog, &client, &request, now)?;
                // RFC 9068 §2.2: with no resource owner, `sub` identifies the client.
                let issue = Issue {
                    sub: client.client_id.clone(),
                    audience: entitlement.audience,
                    scopes: entitlement.scopes,
                    tenant: entitlement.tenant,
                    ..Issue::default()
                };
                self.mint((&*client).into(), issue, now).await?
            }
            JWT_BEARER => self.jwt_bearer(catalog, authorization, params, now).await?,
            TOKEN_EXCHANGE => self.token_exchange(catalog, authorization, params, now).await?,
            DEVICE_CODE => self.device_code_grant(catalog, authorization, params, now).await?,
            CIBA => self.ciba_grant(catalog, authorization, params, now).await?,
            "authorization_code" => self.authorization_code(catalog, authorization, params, now).await?,
            "refresh_token" => self.refresh_token(catalog, authorization, params, now).await?,
            other => {
                return Err(OAuthError::new(
                    super::ErrorCode::UnsupportedGrantType,
                    format!("grant type {other:?} is not supported by this server"),
                ));
            }
        };
        self.audit.emit(Event::TokenIssued {
            grant_type: grant_type.to_string(),
            client_id: claims.client_id,
            client_namespace: claims.client_namespace.unwrap_or_default(),
            subject: claims.sub,
            tenant: claims.tenant,
            scopes: crate::protocol::scope::parse_scope(claims.scope.as_deref().unwrap_or("")).unwrap_or_default(),
            audience: claims.aud.to_list(),
            jti: claims.jti,
            // JWTs have three parts; opaque references are one random token.
            token_format: if response.access_token.contains('.') { "jwt" } else { "opaque" },
            expires_at: claims.exp,
            refresh_token: response.refresh_token.is_some(),
            id_token: response.id_token.is_some(),
        });
        Ok(response)
    }

    /// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.5) and the replay rule of §4.1.2.
    async fn authorization_code(
        &self,
        catalog: &Catalog,
        authorization: Option<&str>,
        params: &Params,
        now: i64,
    ) -> Result<Issued, OAuthError> {
        let client = self.authenticate_for(catalog, authorization, params, GrantType::AuthorizationCode, now).await?;
        let code = params.require("code")?;
        let redirect_uri = params.get("redirect_uri");
        let verifier = params.require("code_verifier")?;
        let digest = token_digest(code);
        let code = match self.store.redeem_code(&digest, now).await.map_err(store_error)? {
            CodeRedemption::Fresh(code) => *code,
            CodeRedemption::Unknown => {
                return Err(OAuthError::invalid_grant("the authorization code is invalid or expired"));
            }
            CodeRedemption::Replayed { family_id, access_token } => {
                // RFC 6749 §4.1.2: a code used twice revokes what it issued.
                tracing::warn!(client_id = %client.client_id, "authorization code replayed; revoking its tokens");
                if let Some(family_id) = family_id {
                    self.store.revoke_family(&family_id).await.map_err(store_error)?;
                    self.family_revoked(&client.client_id, family_id, FamilyRevocation::CodeReplayed);
                }
                if let Some((jti, exp)) = access_token {
                    self.store.revoke(&jti, exp).await.map_err(store_error)?;
                    self.revocations.insert(jti, exp);
                }
                return Err(OAuthError::invalid_grant(
                    "the authorization code was already used; tokens issued from it are revoked",
                ));
            }
        };
        if code.client_id != client.client_id {
            return Err(OAuthError::invalid_grant("the authorization code was issued to another client"));
        }
        match redirect_uri {
            None if code.redirect_uri_given => {
                return Err(OAuthError::invalid_request("redirect_uri is required: the authorization request had one"));
            }
            Some(uri) if uri != code.redirect_uri => {
                return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
            }
            _ => {}
        }
        pkce::verify(verifier, &code.code_challenge)?;
        let grant = UserGrant {
            client_id: code.client_id,
            subject: code.subject,
            auth_time: code.auth_time,
            scopes: code.scopes,
            resources: code.resources,
            tenant: code.tenant,
            consent_id: code.consent_id,
            tenant_consent_id: code.tenant_consent_id,
        };
        let (issued, family_id) = self.user_tokens(catalog, &client, grant, code.nonce, params, now).await?;
        self.store
            .bind_code_issuance(&digest, family_id.as_deref(), (&issued.1.jti, issued.1.exp))
            .await
            .map_err(store_error)?;
        Ok(issued)
    }

    /// One poll of a decoupled request (RFC 8628 §3.5, CIBA Core §11): the same answers for
    /// a device code and an auth_req_id (`what` names it in descriptions); the tokens once.
    pub(super) async fn redeem_decoupled(
        &self,
        catalog: &Catalog,
        client: &Client,
        digest: &[u8; 32],
        what: &str,
        params: &Params,
        now: i64,
    ) -> Result<Issued, OAuthError> {
        match self.store.poll_decoupled_request(digest, now).await.map_err(store_error)? {
            DecoupledPoll::Pending => Err(OAuthError::new(
                ErrorCode::AuthorizationPending,
                "the user has not decided yet; poll again after the interval",
            )),
            DecoupledPoll::SlowDown { interval } => Err(OAuthError::new(
                ErrorCode::SlowDown,
                format!("polling too fast: wait {interval} seconds between requests"),
            )),
            DecoupledPoll::Expired => Err(OAuthError::new(
                ErrorCode::ExpiredToken,
                format!("the {what} is unknown, expired or already used; start a new request"),
            )),
            DecoupledPoll::Decided(DecoupledDecision::Denied) => {
                Err(OAuthError::access_denied("the user denied the request"))
            }
            DecoupledPoll::Decided(DecoupledDecision::Approved(grant)) => {
                if grant.client_id != client.client_id {
                    tracing::warn!(client_id = %client.client_id, what, "presented by another client; spent");
                    return Err(OAuthError::invalid_grant(format!("the {what} was issued to another client")));
                }
                Ok(self.user_tokens(catalog, client, grant, None, params, now).await?.0)
            }
        }
    }

    /// The tokens for what a user granted `client` (a redeemed code, an approved device
    /// request): an access token for the grant's resources (narrowed by `resource`, RFC 8707
    /// §2.2), a refresh token when the client may refresh (its family rests on the grant's
    /// consents), an ID token for `openid`. Also the new refresh family's id.
    pub(super) async fn user_tokens(
        &self,
        catalog: &Catalog,
        client: &Client,
        grant: UserGrant,
        nonce: Option<String>,
        params: &Params,
        now: i64,
    ) -> Result<(Issued, Option<String>), OAuthError> {
        let consent = self.store.consent(&grant.consent_id, now).await.map_err(store_error)?;
        let tenant_consent = match &grant.tenant_consent_id {
            Some(id) => self.store.consent(id, now).await.map_err(store_error)?.map(Some),
            None => Some(None),
        };
        let user = self.store.user(&grant.subject).await.map_err(store_error)?;
        let (Some(consent), Some(_), Some(user)) = (consent, tenant_consent, user) else {
            return Err(OAuthError::invalid_grant("a consent or the user behind this grant no longer exists"));
        };
        let family_id = client.allows_grant(GrantType::RefreshToken).then(|| random_token(16));
        let refresh = family_id.as_ref().map(|family_id| RefreshToken {
            family_id: family_id.clone(),
            client_id: client.client_id.clone(),
            subject: user.subject.clone(),
            consent_id: consent.id.clone(),
            tenant_consent_id: grant.tenant_consent_id.clone(),
            scopes: grant.scopes.clone(),
            resources: grant.resources.clone(),
            tenant: grant.tenant.clone(),
            auth_time: grant.auth_time,
            expires_at: now + client.refresh_token_lifetime.as_secs() as i64,
        });
        let audience = narrowed_resources(params.resources(), &grant.resources)?;
        let issue = user_issue(catalog, client, &user, &grant.scopes, &audience, grant.tenant.clone());
        let (mut response, claims) = self.mint(client.into(), issue, now).await?;
        if let Some(refresh) = refresh {
            let value = random_token(32);
            self.store.put_refresh_token(&token_digest(&value), &refresh).await.map_err(store_error)?;
            response.refresh_token = Some(value);
        }
        if grant.scopes.iter().any(|s| s == OPENID) {
            response.id_token =
                Some(self.id_token(client, &user.subject, grant.auth_time, nonce, &response.access_token, now));
        }
        Ok(((response, claims), family_id))
    }

    /// RFC 6749 §6 with rotation and reuse detection (OAuth 2.1 §4.3.1). The request is
    /// checked against the presented token before it is spent: a refused request (a scope
    /// beyond the grant, a resource it was not issued for) leaves the grant intact.
    async fn refresh_token(
        &self,
        catalog: &Catalog,
        authorization: Option<&str>,
        params: &Params,
        now: i64,
    ) -> Result<Issued, OAuthError> {
        // Public clients present only client_id; confidential ones must authenticate.
        let client = self.authenticate_for(catalog, authorization, params, GrantType::RefreshToken, now).await?;
        let presented = token_digest(params.require("refresh_token")?);
        let requested = params.get("scope").map(crate::protocol::scope::parse_scope).transpose()?;
        // The token and its user in one read (a round trip less than one each).
        let checked = match self.store.live_refresh_token_with_user(&presented, now).await.map_err(store_error)? {
            Some((live, user)) => {
                Some(self.check_refresh(catalog, &client, &live, user, requested.as_deref(), params).await?)
            }
            None => None,
        };
        let next = random_token(32);
        let expires_at = now + client.refresh_token_lifetime.as_secs() as i64;
        // Spent atomically: of concurrent rotations one wins, the others are reuse.
        let old = match self
            .store
            .rotate_refresh_token(&presented, &token_digest(&next), expires_at, now)
            .await
            .map_err(store_error)?
        {
            Rotation::Rotated(old) => old,
            Rotation::Invalid => {
                return Err(OAuthError::invalid_grant("the refresh token is invalid, expired or revoked"));
            }
            Rotation::Reused { family_id } => {
                tracing::warn!(client_id = %client.client_id, "refresh token reused; its family is revoked");
                self.audit.emit(Event::RefreshTokenReused {
                    client_id: client.client_id.clone(),
                    family_id: family_id.clone(),
                });
                self.family_revoked(&client.client_id, family_id, FamilyRevocation::RefreshTokenReused);
                return Err(OAuthError::invalid_grant(
                    "the refresh token was already used; all tokens of its grant are revoked",
                ));
            }
        };
        let (user, scopes, audience) = match checked {
            Some(checked) => checked,
            // Became spendable between the read and the rotation (not a state a token
            // returns to); checked now.
            None => {
                let user = self.store.user(&old.subject).await.map_err(store_error)?;
                self.check_refresh(catalog, &client, &old, user, requested.as_deref(), params).await?
            }
        };
        self.audit.emit(Event::RefreshTokenRotated {
            client_id: client.client_id.clone(),
            subject: user.subject.clone(),
            family_id: old.family_id.clone(),
        });
        let issue = user_issue(catalog, &client, &user, &scopes, &audience, old.tenant.clone());
        let (mut response, claims) = self.mint((&*client).into(), issue, now).await?;
        response.refresh_token = Some(next);
        if scopes.iter().any(|s| s == OPENID) {
            response.id_token =
                Some(self.id_token(&client, &user.subject, old.auth_time, None, &response.access_token, now));
        }
        Ok((response, claims))
    }

    /// Records that a refresh-token family was ended (the store already did it).
    pub(super) fn family_revoked(&self, client_id: &str, family_id: String, reason: FamilyRevocation) {
        self.audit.emit(Event::TokenFamilyRevoked { client_id: client_id.to_string(), family_id, reason });
    }

    /// What a refresh request may get from `token`: its user (`user`, as the store has
    /// them), the scopes (at most the token's, RFC 6749 §6) and the audience (one of its
    /// resources, RFC 8707 §2.2). A token presented by another client, or whose user is
    /// gone, ends its family.
    async fn check_refresh(
        &self,
        catalog: &Catalog,
        client: &Client,
        token: &RefreshToken,
        user: Option<UserRecord>,
        requested: Option<&[String]>,
        params: &Params,
    ) -> Result<(UserRecord, Vec<String>, Vec<String>), OAuthError> {
        if token.client_id != client.client_id {
            // A token presented by another client was stolen: end the family.
            self.store.revoke_family(&token.family_id).await.map_err(store_error)?;
            self.family_revoked(&token.client_id, token.family_id.clone(), FamilyRevocation::PresentedByAnotherClient);
            return Err(OAuthError::invalid_grant("the refresh token was issued to another client"));
        }
        let Some(user) = user.filter(|user| user.subject == token.subject) else {
            self.store.revoke_family(&token.family_id).await.map_err(store_error)?;
            self.family_revoked(&token.client_id, token.family_id.clone(), FamilyRevocation::UserGone);
            return Err(OAuthError::invalid_grant("the user behind this refresh token no longer exists"));
        };
        // A grant made in a tenant lasts as long as the membership (as the identity source
        // said at the user's last login).
        if let Some(tenant) = token.tenant.as_deref().filter(|t| !user.member_of(t)) {
            self.store.revoke_family(&token.family_id).await.map_err(store_error)?;
            self.family_revoked(&token.client_id, token.family_id.clone(), FamilyRevocation::LeftTenant);
            return Err(OAuthError::invalid_grant(format!("the user no longer belongs to the tenant {tenant}")));
        }
        // Consents only ever grow (incremental consent merges), so the token's own scopes
        // are the ceiling.
        let scopes = match requested {
            None => token.scopes.clone(),
            Some(requested) => {
                if let Some(extra) = requested.iter().find(|s| !token.scopes.contains(s)) {
                    return Err(OAuthError::invalid_scope(format!("scope {extra} exceeds the original grant")));
                }
                requested.to_vec()
            }
        };
        // The grant narrows with the user's roles and the app's allowed scopes as they are
        // now (the response's `scope` says what was issued, RFC 6749 §5.1).
        let scopes: Vec<String> = scopes
            .into_iter()
            .filter(|s| super::consent::entitled(catalog, client, &user, token.tenant.as_deref(), s))
            .collect();
        // The refresh token keeps the resources of the grant; an access token may be narrowed
        // to one of them (RFC 8707 §2.2).
        let audience = narrowed_resources(params.resources(), &token.resources)?;
        Ok((user, scopes, audience))
    }

    /// Authenticates the client (public clients by `client_id` alone) and checks it may
    /// use `grant`.
    pub(super) async fn authenticate_for(
        &self,
        catalog: &Catalog,
        authorization: Option<&str>,
        params: &Params,
        grant: GrantType,
        now: i64,
    ) -> Result<Arc<Client>, OAuthError> {
        let client = self.authenticate_client(catalog, authorization, params, paths::TOKEN, now).await?;
        if !client.allows_grant(grant) {
            return Err(OAuthError::unauthorized_client(format!(
                "this client is not allowed to use the {} grant",
                grant.as_str()
            )));
        }
        Ok(client)
    }

    /// OpenID Connect Core §2 ID token, with `at_hash` (§3.1.3.6) for the access token.
    fn id_token(
        &self,
        client: &Client,
        subject: &str,
        auth_time: i64,
        nonce: Option<String>,
        access_token: &str,
        now: i64,
    ) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
        let claims = IdTokenClaims {
            iss: self.issuer.clone(),
            sub: subject.to_string(),
            aud: client.client_id.clone(),
            exp: now + client.id_token_lifetime.as_secs() as i64,
            iat: now,
            auth_time,
            nonce,
            at_hash: URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]),
        };
        self.keys.load().sign_id_token(&claims, client.spec.tokens.id_token_signing_alg)
    }

    /// Issues an access token in the client's format: a signed JWT, or an opaque reference
    /// whose claims are durably stored before the token is returned.
    pub async fn mint(
        &self,
        recipient: Recipient<'_>,
        issue: Issue,
        now: i64,
    ) -> Result<(TokenResponse, AccessTokenClaims), OAuthError> {
        let lifetime = recipient.lifetime.as_secs();
        let scope = (!issue.scopes.is_empty()).then(|| issue.scopes.join(" "));
        let audience = if issue.audience.is_empty() { vec![self.default_audience.clone()] } else { issue.audience };
        let claims = AccessTokenClaims {
            iss: self.issuer.clone(),
            sub: issue.sub,
            aud: Audience::from_list(audience),
            exp: now + lifetime as i64,
            iat: now,
            jti: random_token(16),
            client_id: recipient.client_id.to_string(),
            client_namespace: Some(recipient.namespace.to_string()),
            scope: scope.clone(),
            tenant: issue.tenant,
            roles: issue.roles,
            kubernetes: issue.kubernetes.map(Box::new),
            act: issue.act.map(Box::new),
        };
        let access_token = match recipient.format {
            TokenFormat::Jwt => self.keys.load().sign_access_token(&claims),
            TokenFormat::Opaque => {
                let token = random_token(32);
                self.store.put_opaque_token(&token_digest(&token), &claims).await.map_err(store_error)?;
                token
            }
        };
        let response = TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: lifetime,
            scope,
            refresh_token: None,
            id_token: None,
            issued_token_type: None,
        };
        Ok((response, claims))
    }

    /// Finds the claims of an access token this server issued, whatever its format, if it
    /// is currently active: signature and expiry valid, not revoked, client still declared.
    pub async fn active_claims(
        &self,
        catalog: &Catalog,
        token: &str,
        now: i64,
    ) -> Result<Option<Arc<AccessTokenClaims>>, OAuthError> {
        let jwt = token.bytes().filter(|b| *b == b'.').count() == 2;
        // Bounded work for any input: no token we issue is longer.
        if token.len() > if jwt { 8192 } else { 512 } {
            return Ok(None);
        }
        // A token's claims never change once it is genuine (its signature verified, or its
        // row found): they are memoized by digest, and only what can change (expiry,
        // revocation, the client) is checked below on every request. The store holds opaque
        // tokens' rows until they expire, so a memoized row is never one the store lost.
        let digest = token_digest(token);
        let claims = match self.verified.get(&digest) {
            Some(claims) => claims,
            None => {
                let found = if jwt {
                    self.keys.load().verify_access_token::<AccessTokenClaims>(token, &self.issuer).ok()
                } else {
                    self.store.opaque_token(&digest).await.map_err(store_error)?
                };
                let Some(found) = found else { return Ok(None) };
                let found = Arc::new(found);
                self.verified.insert(digest, found.clone());
                found
            }
        };
        if claims.exp <= now || self.revocations.is_revoked(&claims.jti) {
            return Ok(None);
        }
        // The client must still exist (declared, or self-registered and not deleted/reaped).
        let _ = self.resolve_client(catalog, &claims.client_id, now).await;
        let active = catalog.client(&claims.client_id).is_some();
        Ok(active.then_some(claims))
    }
}

/// An access token for `user`: scopes bound to a resource the audience does not name are
/// left out (the grant keeps them; a request naming that resource gets them).
fn user_issue(
    catalog: &Catalog,
    client: &Client,
    user: &UserRecord,
    scopes: &[String],
    audience: &[String],
    tenant: Option<String>,
) -> Issue {
    Issue {
        sub: user.subject.clone(),
        audience: audience.to_vec(),
        scopes: scopes
            .iter()
            .filter(|s| catalog.scope_fits_audience(&client.key.namespace, s, audience))
            .cloned()
            .collect(),
        roles: Some(user.roles_in(tenant.as_deref())),
        tenant,
        ..Issue::default()
    }
}

/// RFC 8707 §2.2: `resource` at the token endpoint selects among the resources the grant
/// was authorized for; anything else is `invalid_target`.
fn narrowed_resources(requested: &[String], granted: &[String]) -> Result<Vec<String>, OAuthError> {
    if requested.is_empty() {
        return Ok(granted.to_vec());
    }
    let mut narrowed: Vec<String> = Vec::new();
    for r in requested {
        let Some(declared) = crate::protocol::resource::find(granted, r) else {
            return Err(OAuthError::invalid_target(format!("resource {r} was not authorized for this grant")));
        };
        if !narrowed.contains(declared) {
            narrowed.push(declared.clone());
        }
    }
    Ok(narrowed)
}
