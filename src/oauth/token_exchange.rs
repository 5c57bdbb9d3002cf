//! Token exchange (RFC 8693): delegation.
//!
//! An app holding a token of a user (or of a workload) exchanges it, authenticating as
//! itself, for an access token that acts for that user at another resource. The answer's
//! `act` claim names the app (or the actor its `actor_token` proves), above the actors
//! the subject token already named (§4.1), so a resource server sees the whole chain.
//!
//! Who may exchange what is declared, never assumed: only a *delegation grant* (a
//! `ClientGrant` with `spec.tokenExchange`, written in the resource owner's namespace)
//! lets an app exchange tokens, for the scopes and resources it lists. Even then the new
//! token carries no scope beyond the subject token's and what its user consented to for
//! the client it was issued to, never outlives it, and keeps its user, tenant and roles. The subject token
//! must concern the app: issued to it, or sent to a resource it serves
//! (`spec.resourceServer`, the on-behalf-of case). No refresh token is issued (§2.2.1
//! makes it optional): a delegated token lives no longer than the token it came from.
//!
//! Errors follow §2.2.2: an unusable subject or actor token is `invalid_request`, a
//! resource or audience not granted `invalid_target`.

use serde_json::{Map, Value};

use super::{
    AuthorizationServer, ErrorCode, OAuthError,
    assertion::Unverified,
    client_credentials::{self, Request},
    jwt_bearer::{TrustedAssertion, VerifiedServiceAccount, roles_allow},
    params::Params,
    server::store_error,
    token::{Issue, Issued, Recipient},
};
use crate::api::{GrantType, SubjectTokenType, TokenFormat};
use crate::catalog::{Catalog, Client};
use crate::protocol::{resource, scope::parse_scope};
use crate::tokens::{Actor, claims::KubernetesClaims};

/// RFC 8693 §3 token type identifiers.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// Longest chain of actors a token may name: each exchange adds one, and tokens must stay
/// small enough for HTTP headers.
pub const MAX_ACTORS: usize = 5;

/// What a verified subject (or actor) token says.
struct Party {
    sub: String,
    kind: SubjectTokenType,
    /// The new token's ceiling: the scopes the token carries (and, for a user's token, the
    /// user's consent to its client). `None` for JWTs of trusted issuers, which carry no
    /// grant of ours (the delegation grant and the user's roles decide).
    scopes: Option<Vec<String>>,
    tenant: Option<String>,
    roles: Option<Vec<String>>,
    kubernetes: Option<KubernetesClaims>,
    /// The actors the token already names.
    act: Option<Actor>,
    /// RFC 8693 §4.4 `may_act` of a trusted issuer's JWT: who it lets act.
    may_act: Option<Value>,
    expires_at: i64,
}

/// Which side of the exchange a token is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Subject,
    Actor,
}

/// RFC 8693 §2.2.2: problems with the presented tokens are `invalid_request`.
fn unusable(e: OAuthError) -> OAuthError {
    if e.code == ErrorCode::InvalidGrant { OAuthError::invalid_request(e.description) } else { e }
}

impl AuthorizationServer {
    /// RFC 8693 §2.1. See the module documentation.
    pub(super) async fn token_exchange(
        &self,
        catalog: &Catalog,
        authorization: Option<&str>,
        params: &Params,
        now: i64,
    ) -> Result<Issued, OAuthError> {
        let client = self.authenticate_for(catalog, authorization, params, GrantType::TokenExchange, now).await?;
        // Refused by default, before any token is looked at.
        if catalog.delegation_grants_for_app(&client.key).is_empty() {
            return Err(OAuthError::unauthorized_client(
                "no ClientGrant with spec.tokenExchange names this app: it may not exchange tokens",
            ));
        }
        let subject_token = params.require("subject_token")?;
        let subject_token_type = params.require("subject_token_type")?;
        let (format, issued_token_type) = requested_token_type(params.get("requested_token_type"), &client)?;
        let subject = self
            .party(catalog, &client, subject_token, subject_token_type, Role::Subject, now)
            .await
            .map_err(|e| unusable(e).prefixed("subject_token"))?;
        let actor = match (params.get("actor_token"), params.get("actor_token_type")) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(OAuthError::invalid_request("actor_token_type is required with actor_token"));
            }
            (None, Some(_)) => {
                return Err(OAuthError::invalid_request("actor_token_type is given without actor_token"));
            }
            (Some(token), Some(kind)) => Some(
                self.party(catalog, &client, token, kind, Role::Actor, now)
                    .await
                    .map_err(|e| unusable(e).prefixed("actor_token"))?,
            ),
        };
        let act = actor_chain(&client, &subject, actor.as_ref())?;

        // The delegation grants of this app that accept this kind of subject token.
        let grants: Vec<_> = catalog
            .delegation_grants_for_app(&client.key)
            .iter()
            .filter(|g| g.token_exchange.as_ref().is_some_and(|t| t.accepts(subject.kind)))
            .filter(|g| subject.tenant.as_ref().is_none_or(|t| g.tenants.is_empty() || g.tenants.contains(t)))
            .cloned()
            .collect();
        let tenant = match (&subject.tenant, params.get("tenant")) {
            (Some(acting), Some(asked)) if acting != asked => {
                return Err(OAuthError::invalid_request(format!(
                    "the subject token acts in tenant {acting}; a delegated token cannot change tenant"
                )));
            }
            (Some(_), _) => None,
            (None, asked) => asked,
        };
        if let (Some(requested), Some(ceiling)) = (params.get("scope"), &subject.scopes) {
            // Delegation narrows or keeps, never widens (§1.1).
            if let Some(extra) = parse_scope(requested)?.iter().find(|s| !ceiling.contains(s)) {
                return Err(OAuthError::invalid_scope(format!(
                    "scope {extra} exceeds what the subject token (and its user's consent) carries"
                )));
            }
        }
        // RFC 8693 §2.1: `audience` names target services as `resource` does; here both
        // name the resources a grant gives.
        let targets: Vec<String> = params.resources().iter().chain(params.audiences()).cloned().collect();
        let request = Request { scope: params.get("scope"), resources: &targets, tenant };
        let entitlement = client_credentials::entitlement(catalog, &grants, &request, now).map_err(|e| {
            e.or_unauthorized(&format!(
                "no active ClientGrant with spec.tokenExchange lets this app exchange {} subject tokens{}",
                match subject.kind {
                    SubjectTokenType::AccessToken => "access_token",
                    SubjectTokenType::Jwt => "jwt",
                },
                subject.tenant.as_ref().map(|t| format!(" of tenant {t}")).unwrap_or_default()
            ))
        })?;
        let scopes: Vec<String> = entitlement
            .scopes
            .into_iter()
            .filter(|s| subject.scopes.as_ref().is_none_or(|ceiling| ceiling.contains(s)))
            .filter(|s| subject.roles.as_ref().is_none_or(|roles| roles_allow(catalog, &grants, s, roles)))
            .collect();
        if scopes.is_empty() {
            return Err(OAuthError::invalid_scope(
                "none of the scopes this exchange is granted is carried by the subject token (or allowed to its user)",
            ));
        }
        // Never outlive the subject token (nor the actor's).
        let ends = subject.expires_at.min(actor.as_ref().map_or(i64::MAX, |a| a.expires_at));
        let lifetime = client.access_token_lifetime.as_secs().min(ends.saturating_sub(now).max(0) as u64);
        if lifetime == 0 {
            return Err(OAuthError::invalid_request("the subject_token expires now"));
        }
        tracing::info!(
            client_id = %client.client_id,
            sub = %subject.sub,
            actor = %act.sub,
            actors = act.depth(),
            scope = %scopes.join(" "),
            "access token issued by token exchange"
        );
        let issue = Issue {
            sub: subject.sub,
            audience: entitlement.audience,
            scopes,
            tenant: subject.tenant.or(entitlement.tenant),
            roles: subject.roles,
            kubernetes: subject.kubernetes,
            act: Some(act),
        };
        let recipient = Recipient {
            client_id: &client.client_id,
            namespace: &client.key.namespace,
            lifetime: std::time::Duration::from_secs(lifetime),
            format,
        };
        let (mut response, claims) = self.mint(recipient, issue, now).await?;
        response.issued_token_type = Some(issued_token_type);
        Ok((response, claims))
    }

    /// Verifies a subject or actor token of type `kind` and says what it is about.
    async fn party(
        &self,
        catalog: &Catalog,
        client: &Client,
        token: &str,
        kind: &str,
        role: Role,
        now: i64,
    ) -> Result<Party, OAuthError> {
        match kind {
            ACCESS_TOKEN_TYPE => self.access_token_party(catalog, client, token, role, now).await,
            JWT_TOKEN_TYPE => {
                let unverified = Unverified::parse(token).map_err(|e| OAuthError::invalid_request(e.to_string()))?;
                match unverified.str("iss") {
                    // This server's JWT access tokens are access tokens whatever the client
                    // calls them.
                    Some(iss) if iss == self.issuer => self.access_token_party(catalog, client, token, role, now).await,
                    Some(iss) if client.spec.trusted_issuers.iter().any(|t| t.issuer == iss) => {
                        let TrustedAssertion { user, claims, identity_assertion, .. } =
                            self.verify_trusted_assertion(catalog, client, token, now).await?;
                        if identity_assertion {
                            return Err(OAuthError::invalid_request(
                                "an ID-JAG is presented as the assertion of the JWT bearer grant, not exchanged",
                            ));
                        }
                        Ok(Party {
                            sub: user.subject,
                            kind: SubjectTokenType::Jwt,
                            scopes: None,
                            tenant: user.tenant,
                            roles: Some(user.roles),
                            kubernetes: None,
                            act: None,
                            may_act: claims.get("may_act").cloned(),
                            expires_at: expiry(&claims),
                        })
                    }
                    iss if unverified.str("sub").and_then(super::jwt_bearer::service_account_of).is_none() => {
                        Err(OAuthError::invalid_request(format!(
                            "the JWT's issuer {} is not one of this app's trustedIssuers, and it is not a \
                             Kubernetes ServiceAccount token",
                            iss.unwrap_or("(none)")
                        )))
                    }
                    _ => {
                        let (_, account) = self.verify_service_account_token(token, now).await?;
                        let VerifiedServiceAccount { username, key, kubernetes, expires_at } = account;
                        // A workload's delegate gets no more than the workload could itself.
                        let scopes = catalog
                            .grants_for_service_account(&key)
                            .iter()
                            .filter(|g| g.is_active(now))
                            .flat_map(|g| g.scopes.iter().cloned())
                            .collect();
                        Ok(Party {
                            sub: username,
                            kind: SubjectTokenType::Jwt,
                            scopes: Some(scopes),
                            tenant: None,
                            roles: None,
                            kubernetes: Some(kubernetes),
                            act: None,
                            may_act: None,
                            expires_at,
                        })
                    }
                }
            }
            other => Err(OAuthError::invalid_request(format!(
                "token type {other:?} is not supported here (use {ACCESS_TOKEN_TYPE} or {JWT_TOKEN_TYPE})"
            ))),
        }
    }

    /// An access token this server issued. As a subject it must concern `client`: issued
    /// to it, or sent to a resource it serves. As an actor it must be `client`'s own.
    async fn access_token_party(
        &self,
        catalog: &Catalog,
        client: &Client,
        token: &str,
        role: Role,
        now: i64,
    ) -> Result<Party, OAuthError> {
        let Some(claims) = self.active_claims(catalog, token, now).await? else {
            return Err(OAuthError::invalid_request("not an active access token of this server"));
        };
        let claims = std::sync::Arc::unwrap_or_clone(claims);
        let issued_to_client = claims.client_id == client.client_id;
        let sent_to_client = client.spec.resource_server.as_ref().is_some_and(|served| {
            claims.aud.to_list().iter().any(|aud| resource::find(&served.resources, aud).is_some())
        });
        match role {
            Role::Subject if !issued_to_client && !sent_to_client => {
                return Err(OAuthError::invalid_request(
                    "neither issued to this client nor sent to a resource it serves (spec.resourceServer)",
                ));
            }
            Role::Actor if !issued_to_client => {
                return Err(OAuthError::invalid_request(
                    "an access token as actor_token must have been issued to this client",
                ));
            }
            _ => {}
        }
        let mut scopes = claims.scope.as_deref().map(parse_scope).transpose()?.unwrap_or_default();
        // A user's token carries only the scopes of its audience; what the user consented
        // to for that client covers the other resources too (RFC 8707 §2.2: one grant, an
        // access token per resource).
        // So does what an administrator of the token's tenant consented to for every member.
        if claims.roles.is_some() {
            let tenant = claims.tenant.as_deref();
            let mut subjects = vec![claims.sub.clone()];
            subjects.extend(tenant.map(super::consent::tenant_subject));
            for subject in subjects {
                let consent =
                    self.store.active_consent(&claims.client_id, &subject, tenant, now).await.map_err(store_error)?;
                for s in consent.map(|c| c.scopes).unwrap_or_default() {
                    if !scopes.contains(&s) {
                        scopes.push(s);
                    }
                }
            }
        }
        Ok(Party {
            sub: claims.sub,
            kind: SubjectTokenType::AccessToken,
            scopes: Some(scopes),
            tenant: claims.tenant,
            roles: claims.roles,
            kubernetes: claims.kubernetes.map(|k| *k),
            act: claims.act.map(|a| *a),
            may_act: None,
            expires_at: claims.exp,
        })
    }
}

/// `requested_token_type` (RFC 8693 §2.1): an access token in the app's format, or a JWT.
fn requested_token_type(requested: Option<&str>, client: &Client) -> Result<(TokenFormat, &'static str), OAuthError> {
    match requested {
        None | Some(ACCESS_TOKEN_TYPE) => Ok((client.spec.tokens.format, ACCESS_TOKEN_TYPE)),
        Some(JWT_TOKEN_TYPE) => Ok((TokenFormat::Jwt, JWT_TOKEN_TYPE)),
        Some(other) => Err(OAuthError::invalid_request(format!(
            "requested_token_type {other:?} is not issued here (use {ACCESS_TOKEN_TYPE} or {JWT_TOKEN_TYPE})"
        ))),
    }
}

/// The new token's `act` (RFC 8693 §4.1): the actor (the `actor_token`'s party, else the
/// client itself), above the actors the subject token names.
fn actor_chain(client: &Client, subject: &Party, actor: Option<&Party>) -> Result<Actor, OAuthError> {
    let (sub, client_id) = match actor {
        // The actor token proves a party other than the client acts (the client remains on
        // record as who exchanged).
        Some(actor) => (actor.sub.clone(), (actor.sub != client.client_id).then(|| client.client_id.clone())),
        None => (client.client_id.clone(), None),
    };
    // §4.4: a subject token that says who may act for it is obeyed.
    if let Some(may_act) = &subject.may_act {
        let named = may_act.get("sub").and_then(Value::as_str);
        if named != Some(sub.as_str()) && named != Some(client.client_id.as_str()) {
            return Err(OAuthError::invalid_request("the subject_token's may_act does not name this actor"));
        }
    }
    let act = Actor { sub, client_id, act: subject.act.clone().map(Box::new) };
    if act.depth() > MAX_ACTORS {
        return Err(OAuthError::invalid_request(format!(
            "the subject_token has been delegated too often (at most {MAX_ACTORS} actors)"
        )));
    }
    Ok(act)
}

fn expiry(claims: &Map<String, Value>) -> i64 {
    claims.get("exp").and_then(Value::as_i64).unwrap_or_default()
}
