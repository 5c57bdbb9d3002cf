//! The JWT bearer grant (RFC 7523 §2.1): a JWT someone else signed, exchanged for an
//! access token.
//!
//! Two kinds of request, told apart by whether the client authenticates:
//!
//! - **A workload, without client credentials**, presents its Kubernetes ServiceAccount
//!   token (a projected token whose audience is this server). The token names the
//!   ServiceAccount; the `ClientGrant`s whose subject is that ServiceAccount decide scopes,
//!   audience and tenant exactly as for client_credentials; the access token's `sub` and
//!   `client_id` are the ServiceAccount's Kubernetes username
//!   (`system:serviceaccount:NAMESPACE:NAME`) and its `kubernetes.io` claim names the
//!   ServiceAccount and Pod with their UIDs. How ServiceAccount tokens are validated is the
//!   operator's choice ([`ServiceAccountTokens`]): TokenReview against the local cluster, or
//!   offline against an issuer's keys.
//! - **An app, authenticating as itself**, presents a JWT from one of its
//!   `trustedIssuers` (a CI system's OIDC token, an enterprise IdP's assertion). The token
//!   acts for the user the JWT names; the app's `ClientGrant`s decide what it may carry,
//!   narrowed by the roles the user holds. No consent screen is involved, so only what a
//!   resource's owner granted the app in YAML can be issued: a trusted issuer vouches for
//!   *who* the user is, never for *what* the app may do.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{
    AuthorizationServer, OAuthError,
    assertion::{
        self, AssertionError, Expectations, IssuerKeys, KeySource, Reach, TokenReviewer, Unverified, check_claims,
    },
    client_credentials::{self, Request},
    params::Params,
    token::{Issue, Issued, Recipient},
};
use crate::api::{GrantType, TokenFormat, TrustedIssuer};
use crate::catalog::{Catalog, Client, GrantRule};
use crate::protocol::paths;
use crate::tokens::claims::{KubernetesClaims, KubernetesObject};

/// Kubernetes usernames of ServiceAccounts: `system:serviceaccount:NAMESPACE:NAME`.
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
/// Longest validity of a trusted issuer's JWT when the app sets none.
pub const DEFAULT_MAX_ASSERTION_LIFETIME: i64 = 3600;

/// How ServiceAccount tokens are validated: the operator's configuration, never a
/// namespace's (README "Workload identity").
pub enum ServiceAccountValidation {
    /// The local cluster vouches for its tokens (TokenReview): a token of a deleted Pod or
    /// ServiceAccount stops working at once.
    TokenReview(Arc<dyn TokenReviewer>),
    /// Offline, against `issuer`'s keys (another cluster, or `inbound serve`): a deleted
    /// ServiceAccount's token works until it expires, so its validity is capped.
    Keys { issuer: String, source: KeySource },
}

/// ServiceAccount tokens this server accepts.
pub struct ServiceAccountTokens {
    pub validation: ServiceAccountValidation,
    /// The token's `aud` must name one of these (default: this server's issuer). A token
    /// for the API server itself is therefore refused.
    pub audiences: Vec<String>,
    /// Longest validity accepted by the offline validator, seconds.
    pub max_lifetime: i64,
    /// Lifetime of the access tokens issued to ServiceAccounts.
    pub access_token_lifetime: std::time::Duration,
}

/// The network and configuration behind this grant, given to the core by the runtime.
pub struct Assertions {
    pub keys: Arc<dyn IssuerKeys>,
    pub service_accounts: Option<ServiceAccountTokens>,
    /// Whether apps' trusted issuers may be fetched from private addresses.
    pub app_issuers_reach: Reach,
}

/// An assertion problem as the grant's error (RFC 7523 §3.1: `invalid_grant`).
fn refused(e: AssertionError) -> OAuthError {
    OAuthError::invalid_grant(e.to_string())
}

impl AuthorizationServer {
    /// RFC 7523 §2.1. See the module documentation for the two kinds of request.
    pub(super) async fn jwt_bearer(
        &self,
        catalog: &Catalog,
        authorization: Option<&str>,
        params: &Params,
        now: i64,
    ) -> Result<Issued, OAuthError> {
        let assertion = params.require("assertion")?;
        let request = Request::from_params(params);
        // RFC 7523 §3.1: client authentication is optional for this grant; without it the
        // assertion itself must identify the subject, which only ServiceAccount tokens do.
        if !super::client_auth::identifies_client(authorization, params) {
            return self.service_account_grant(catalog, assertion, &request, now).await;
        }
        let client = self.authenticate_for(catalog, authorization, params, GrantType::JwtBearer, now).await?;
        self.trusted_issuer_grant(catalog, &client, assertion, &request, now).await
    }

    /// The audiences an assertion may name for this server: its issuer and its token
    /// endpoint (RFC 7523 §3 item 3).
    fn own_audiences(&self) -> Vec<String> {
        vec![self.issuer.clone(), format!("{}{}", self.issuer, paths::TOKEN)]
    }

    /// Validates a Kubernetes ServiceAccount token by the operator's choice of validator.
    pub(super) async fn verify_service_account_token(
        &self,
        assertion: &str,
        now: i64,
    ) -> Result<(&ServiceAccountTokens, VerifiedServiceAccount), OAuthError> {
        let Some(accounts) = &self.assertions.service_accounts else {
            return Err(OAuthError::invalid_grant(
                "this server accepts no ServiceAccount tokens (no ServiceAccount issuer is configured); \
                 other assertions need the client to authenticate",
            ));
        };
        let unverified = Unverified::parse(assertion).map_err(refused)?;
        let Some((namespace, name)) = unverified.str("sub").and_then(service_account_of) else {
            return Err(OAuthError::invalid_grant(
                "the assertion is not a Kubernetes ServiceAccount token (sub is not system:serviceaccount:NAMESPACE:NAME); \
                 other assertions need the client to authenticate",
            ));
        };
        let (namespace, name) = (namespace.to_string(), name.to_string());
        let expires_at = unverified.claims.get("exp").and_then(Value::as_i64).unwrap_or_default();
        // Cheap refusals first, so that junk never costs a TokenReview or a key fetch.
        if !unverified.audiences().iter().any(|a| accounts.audiences.iter().any(|e| e == a)) {
            return Err(refused(AssertionError::Audience(accounts.audiences.join(", "))));
        }
        assertion::check_times(&unverified.claims, i64::MAX / 2, now).map_err(refused)?;
        let kubernetes = match &accounts.validation {
            ServiceAccountValidation::TokenReview(reviewer) => {
                let reviewed = reviewer.review(assertion, &accounts.audiences).await.map_err(|detail| {
                    tracing::warn!(%detail, "TokenReview failed");
                    OAuthError::temporarily_unavailable()
                })?;
                let Some(reviewed) = reviewed else {
                    return Err(OAuthError::invalid_grant(
                        "the Kubernetes API server does not accept this ServiceAccount token for this server's audience \
                         (expired, or its Pod or ServiceAccount was deleted)",
                    ));
                };
                if (reviewed.namespace.as_str(), reviewed.name.as_str()) != (namespace.as_str(), name.as_str()) {
                    return Err(OAuthError::invalid_grant(
                        "the reviewed ServiceAccount is not the one the token names",
                    ));
                }
                KubernetesClaims {
                    namespace: reviewed.namespace,
                    serviceaccount: KubernetesObject { name: reviewed.name, uid: reviewed.uid },
                    pod: reviewed.pod.map(|(name, uid)| KubernetesObject { name, uid }),
                }
            }
            ServiceAccountValidation::Keys { issuer, source } => {
                let expect = Expectations {
                    issuer,
                    audiences: &accounts.audiences,
                    algorithms: assertion::DEFAULT_ALGORITHMS,
                    max_lifetime: accounts.max_lifetime,
                };
                let claims = self.verify_with(source, Reach::Any, assertion, &unverified, &expect, now).await?;
                kubernetes_claims(&claims, &namespace, &name)
            }
        };
        let key = crate::api::ObjectKey { namespace: namespace.clone(), name: name.clone() };
        let username = format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}");
        Ok((accounts, VerifiedServiceAccount { username, key, kubernetes, expires_at }))
    }

    async fn service_account_grant(
        &self,
        catalog: &Catalog,
        assertion: &str,
        request: &Request<'_>,
        now: i64,
    ) -> Result<Issued, OAuthError> {
        let (accounts, account) = self.verify_service_account_token(assertion, now).await?;
        let VerifiedServiceAccount { username, key, kubernetes, .. } = account;
        let (namespace, name) = (&key.namespace, &key.name);
        let entitlement =
            client_credentials::entitlement(catalog, catalog.grants_for_service_account(&key), request, now).map_err(
                |e| e.or_unauthorized(&format!("no active ClientGrant authorizes ServiceAccount {namespace}/{name}")),
            )?;
        tracing::info!(
            service_account = %username,
            service_account_uid = %kubernetes.serviceaccount.uid,
            pod = kubernetes.pod.as_ref().map(|p| p.name.as_str()).unwrap_or(""),
            pod_uid = kubernetes.pod.as_ref().map(|p| p.uid.as_str()).unwrap_or(""),
            scope = %entitlement.scopes.join(" "),
            "access token issued to a ServiceAccount"
        );
        let issue = Issue {
            sub: username.clone(),
            audience: entitlement.audience,
            scopes: entitlement.scopes,
            tenant: entitlement.tenant,
            kubernetes: Some(kubernetes),
            ..Issue::default()
        };
        let recipient = Recipient {
            client_id: &username,
            namespace,
            lifetime: accounts.access_token_lifetime,
            format: TokenFormat::Jwt,
        };
        self.mint(recipient, issue, now).await
    }

    /// Verifies a JWT from one of `client`'s trusted issuers (and reads its UserInfo when
    /// the issuer has one), and finds the user it names.
    pub(super) async fn verify_trusted_assertion<'c>(
        &self,
        catalog: &Catalog,
        client: &'c Client,
        assertion: &str,
        now: i64,
    ) -> Result<TrustedAssertion<'c>, OAuthError> {
        let unverified = Unverified::parse(assertion).map_err(refused)?;
        let identity_assertion = assertion::is_identity_assertion(&unverified.header);
        if !identity_assertion {
            assertion::check_grant_type_header(&unverified.header).map_err(refused)?;
        }
        let iss = unverified.str("iss").ok_or_else(|| refused(AssertionError::Missing("iss")))?;
        let Some(trusted) = client.spec.trusted_issuers.iter().find(|t| t.issuer == iss) else {
            return Err(OAuthError::invalid_grant(format!("the issuer {iss:?} is not trusted by this app")));
        };
        let algorithms = assertion::parse_algorithms(&trusted.algorithms).map_err(OAuthError::invalid_grant)?;
        // An ID-JAG names the authorization server it is for by its issuer identifier,
        // nothing else (ID-JAG draft §3: `aud`).
        let audiences = if identity_assertion {
            vec![self.issuer.clone()]
        } else {
            let mut audiences = self.own_audiences();
            audiences.extend(trusted.audiences.iter().cloned());
            audiences
        };
        let max_lifetime = trusted
            .max_lifetime
            .as_ref()
            .and_then(|d| d.parse().ok())
            .map_or(DEFAULT_MAX_ASSERTION_LIFETIME, |d: std::time::Duration| d.as_secs() as i64);
        let expect =
            Expectations { issuer: &trusted.issuer, audiences: &audiences, algorithms: &algorithms, max_lifetime };
        let source = key_source(trusted)?;
        let reach = self.assertions.app_issuers_reach;
        let mut claims = self.verify_with(&source, reach, assertion, &unverified, &expect, now).await?;
        if let Some(userinfo) = &trusted.userinfo_uri {
            let extra = self.assertions.keys.userinfo(userinfo, assertion, reach).await.map_err(|detail| {
                OAuthError::invalid_grant(format!("the issuer's UserInfo cannot be read: {detail}"))
            })?;
            // OpenID Connect Core §5.3.2: UserInfo about another subject is not about this user.
            if extra.get("sub") != claims.get("sub") {
                return Err(OAuthError::invalid_grant("UserInfo names another subject than the assertion"));
            }
            for (name, value) in extra {
                claims.entry(name).or_insert(value);
            }
        }
        let user = assertion_user(catalog, client, trusted, &claims)?;
        Ok(TrustedAssertion { trusted, user, claims, identity_assertion })
    }

    async fn trusted_issuer_grant(
        &self,
        catalog: &Catalog,
        client: &Client,
        assertion: &str,
        request: &Request<'_>,
        now: i64,
    ) -> Result<Issued, OAuthError> {
        let TrustedAssertion { trusted, user, claims, identity_assertion, .. } =
            self.verify_trusted_assertion(catalog, client, assertion, now).await?;
        let id_jag = identity_assertion
            .then(|| IdentityAssertionGrant::from_claims(&claims, &client.client_id, request))
            .transpose()?;
        let narrowed;
        let request = match &id_jag {
            Some(grant) => {
                narrowed = [grant.resource.clone()];
                &Request { scope: grant.scope.as_deref(), resources: &narrowed, tenant: request.tenant }
            }
            None => request,
        };
        let grants = catalog.grants_for_app(&client.key);
        let entitlement = client_credentials::entitlement(catalog, grants, request, now)
            .map_err(|e| e.or_unauthorized("no active ClientGrant authorizes this app"))?;
        if let Some(grant) = &id_jag {
            // ID-JAG draft §4.3 (and RFC 7523 §3 item 7): single use, on every replica, spent
            // only by a request that would succeed.
            let key = crate::secrets::token_digest(&format!("id-jag\0{}\0{}", trusted.issuer, grant.jti));
            let fresh = self
                .store
                .use_assertion_jti(&key, grant.expires_at + assertion::LEEWAY, now)
                .await
                .map_err(super::server::store_error)?;
            if !fresh {
                return Err(OAuthError::invalid_grant("the ID-JAG's jti was already used (a replay)"));
            }
        }
        // A scope that requires roles goes only to a user holding them.
        let scopes = entitlement.scopes.into_iter().filter(|s| roles_allow(catalog, grants, s, &user.roles)).collect();
        tracing::info!(client_id = %client.client_id, issuer = %trusted.issuer, sub = %user.subject,
            id_jag = identity_assertion, "access token issued for a trusted issuer's assertion");
        let issue = Issue {
            sub: user.subject,
            audience: entitlement.audience,
            scopes,
            tenant: entitlement.tenant.or(user.tenant),
            roles: Some(user.roles),
            ..Issue::default()
        };
        self.mint(client.into(), issue, now).await
    }

    /// Finds the key the assertion names and verifies it.
    async fn verify_with(
        &self,
        source: &KeySource,
        reach: Reach,
        assertion: &str,
        unverified: &Unverified,
        expect: &Expectations<'_>,
        now: i64,
    ) -> Result<Map<String, Value>, OAuthError> {
        // The algorithm is checked before any fetch: a token signed with `none` or HMAC
        // costs nothing.
        assertion::check_algorithm(&unverified.header, expect.algorithms).map_err(refused)?;
        // Claims first, unverified, for the same reason; checked again after the signature.
        check_claims(&unverified.claims, expect, now).map_err(refused)?;
        let kid = unverified.header.kid.as_deref();
        let key = match source {
            KeySource::Inline(set) => assertion::inline_key(set, kid),
            _ => {
                let kid = kid.ok_or_else(|| refused(AssertionError::NoKeyId))?;
                self.assertions.keys.key(source, kid, reach).await.map_err(|detail| {
                    tracing::warn!(%detail, "cannot fetch an issuer's keys");
                    refused(AssertionError::KeysUnavailable(detail))
                })?
            }
        }
        .ok_or_else(|| refused(AssertionError::UnknownKey))?;
        assertion::verify(assertion, &key, expect, now).map_err(refused)
    }
}

/// What an Identity Assertion JWT Authorization Grant (ID-JAG,
/// draft-ietf-oauth-identity-assertion-authz-grant; MCP "Enterprise-Managed
/// Authorization") asks for, once its signature and times are checked.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct IdentityAssertionGrant {
    /// The one resource the token is for (`resource` claim).
    pub resource: String,
    /// Requested ∩ asserted scopes, space-delimited; `None`: what the grants give.
    pub scope: Option<String>,
    pub jti: String,
    pub expires_at: i64,
}

impl IdentityAssertionGrant {
    /// The ID-JAG's own rules (§4.3): issued for the authenticated client, for one resource
    /// (a `resource` parameter may only repeat it), single-use `jti`, and scopes never
    /// beyond what the enterprise IdP asserted. What the app may get at that resource is
    /// still its ClientGrants' to say: the IdP's word is about the user, and a trusted
    /// issuer is declared by the app's own namespace.
    pub fn from_claims(
        claims: &Map<String, Value>,
        client_id: &str,
        request: &Request<'_>,
    ) -> Result<IdentityAssertionGrant, OAuthError> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
        match text("client_id") {
            None => return Err(OAuthError::invalid_grant("the ID-JAG lacks the client_id claim")),
            Some(named) if named != client_id => {
                return Err(OAuthError::invalid_grant("the ID-JAG was issued for another client (client_id)"));
            }
            Some(_) => {}
        }
        let jti = text("jti").ok_or_else(|| OAuthError::invalid_grant("the ID-JAG lacks the jti claim"))?;
        let resource =
            text("resource").ok_or_else(|| OAuthError::invalid_grant("the ID-JAG lacks the resource claim"))?;
        if let Some(other) = request.resources.iter().find(|r| !crate::protocol::resource::same_resource(r, resource)) {
            return Err(OAuthError::invalid_target(format!(
                "resource {other} is not the ID-JAG's resource {resource}"
            )));
        }
        let asserted = text("scope").map(crate::protocol::scope::parse_scope).transpose()?;
        let requested = request.scope.map(crate::protocol::scope::parse_scope).transpose()?;
        let scope = match (asserted, requested) {
            (Some(asserted), Some(requested)) => {
                let both: Vec<String> = requested.into_iter().filter(|s| asserted.contains(s)).collect();
                if both.is_empty() {
                    return Err(OAuthError::invalid_scope("none of the requested scopes is asserted by the ID-JAG"));
                }
                Some(both.join(" "))
            }
            (Some(asserted), None) => Some(asserted.join(" ")),
            (None, requested) => requested.map(|r| r.join(" ")),
        };
        let expires_at = claims.get("exp").and_then(Value::as_i64).unwrap_or_default();
        Ok(IdentityAssertionGrant { resource: resource.to_string(), scope, jti: jti.to_string(), expires_at })
    }
}

/// `(namespace, name)` of a ServiceAccount's Kubernetes username.
pub(super) fn service_account_of(username: &str) -> Option<(&str, &str)> {
    let (namespace, name) = username.strip_prefix(SERVICE_ACCOUNT_PREFIX)?.split_once(':')?;
    let valid = |s: &str| !s.is_empty() && s.len() <= 253 && !s.contains(':');
    (valid(namespace) && valid(name)).then_some((namespace, name))
}

/// The `kubernetes.io` claim of a verified ServiceAccount token, checked against its `sub`.
fn kubernetes_claims(claims: &Map<String, Value>, namespace: &str, name: &str) -> KubernetesClaims {
    let k8s = claims.get("kubernetes.io");
    let text = |path: &[&str]| path.iter().try_fold(k8s?, |v, p| v.get(*p)).and_then(Value::as_str).map(str::to_string);
    let sa_uid = text(&["serviceaccount", "uid"]).unwrap_or_default();
    let pod = text(&["pod", "name"])
        .map(|pod| KubernetesObject { name: pod, uid: text(&["pod", "uid"]).unwrap_or_default() });
    KubernetesClaims {
        namespace: namespace.to_string(),
        serviceaccount: KubernetesObject { name: name.to_string(), uid: sa_uid },
        pod,
    }
}

/// Where a trusted issuer's keys come from.
fn key_source(trusted: &TrustedIssuer) -> Result<KeySource, OAuthError> {
    Ok(match (&trusted.jwks, &trusted.jwks_uri) {
        (Some(set), _) => KeySource::Inline(Arc::new(
            crate::protocol::jwk::parse_public_jwk_set(set).map_err(OAuthError::invalid_grant)?,
        )),
        (None, Some(uri)) => KeySource::JwksUri(uri.clone()),
        (None, None) => KeySource::Discovery { issuer: trusted.issuer.clone() },
    })
}

/// Who a trusted issuer's assertion is about.
pub(super) struct AssertedUser {
    pub subject: String,
    pub roles: Vec<String>,
    pub tenant: Option<String>,
    /// The value of the issuer's login claim.
    pub login: String,
    /// Whether the issuer is also an `IdentityProvider`, so that `subject` is who signs in
    /// through it; otherwise the subject is derived and nobody signs in as it.
    pub signs_in: bool,
}

/// A verified JWT of a trusted issuer.
pub(super) struct TrustedAssertion<'c> {
    pub trusted: &'c TrustedIssuer,
    pub user: AssertedUser,
    /// The JWT's claims, completed from UserInfo.
    pub claims: Map<String, Value>,
    /// Whether it is an ID-JAG (`typ: oauth-id-jag+jwt`).
    pub identity_assertion: bool,
}

/// A verified ServiceAccount token.
pub(super) struct VerifiedServiceAccount {
    /// `system:serviceaccount:NAMESPACE:NAME`.
    pub username: String,
    pub key: crate::api::ObjectKey,
    pub kubernetes: KubernetesClaims,
    /// The token's `exp`.
    pub expires_at: i64,
}

/// The user an assertion names. When the issuer is also an `IdentityProvider` (an identity
/// source the operator chose) and its keys come from the issuer itself, it is the same user
/// as signing in through it, mapped the same way. Otherwise the subject is derived from
/// the app's namespace, the issuer and the login claim, so that an issuer declared in one
/// namespace can never name a user of another source or another namespace's issuer.
fn assertion_user(
    catalog: &Catalog,
    client: &Client,
    trusted: &TrustedIssuer,
    claims: &Map<String, Value>,
) -> Result<AssertedUser, OAuthError> {
    let login_claim = trusted.login_claim.as_deref().unwrap_or("sub");
    let login = claims.get(login_claim).and_then(crate::identity::upstream::claim_text).filter(|s| !s.is_empty());
    let login = login.ok_or_else(|| {
        OAuthError::invalid_grant(format!("the assertion (and UserInfo) lack the login claim {login_claim:?}"))
    })?;
    let same_keys = trusted.jwks.is_none() && trusted.jwks_uri.is_none();
    let provider = catalog.identity_providers().iter().find(|p| {
        same_keys
            && p.spec
                .oidc
                .as_ref()
                .is_some_and(|o| o.issuer.trim_end_matches('/') == trusted.issuer.trim_end_matches('/'))
    });
    if let Some(provider) = provider {
        let identity = crate::identity::upstream::map_claims(provider, claims)
            .map_err(|e| OAuthError::invalid_grant(e.to_string()))?;
        // A user of one tenant acts in it; of several, in none (an assertion names no tenant).
        let user = super::front_channel::user_record(identity);
        let tenant = user.sole_tenant().map(str::to_string);
        let roles = user.roles_in(tenant.as_deref());
        return Ok(AssertedUser { roles, subject: user.subject, tenant, login, signs_in: true });
    }
    let input = format!("inbound-trusted-issuer-subject\0{}\0{}\0{login}", client.key.namespace, trusted.issuer);
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
    use base64::Engine;
    let subject = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.as_ref());
    Ok(AssertedUser { subject, roles: vec![], tenant: None, login, signs_in: false })
}

/// Whether `roles` satisfy what the Scope behind `scope` requires, in the namespace of a
/// grant that gives it.
pub(super) fn roles_allow(catalog: &Catalog, grants: &[Arc<GrantRule>], scope: &str, roles: &[String]) -> bool {
    grants.iter().filter(|g| g.scopes.iter().any(|s| s == scope)).any(|g| {
        catalog.scope(&g.key.namespace, scope).is_some_and(|spec| spec.required_roles.iter().all(|r| roles.contains(r)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_jag(extra: Value) -> Map<String, Value> {
        let mut claims = serde_json::json!({
            "iss": "https://idp.example.com", "sub": "u1", "aud": "https://auth.example.com",
            "client_id": "c1", "jti": "j1", "exp": 1000, "resource": "https://mcp.example.com/mcp",
            "scope": "a b",
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims.as_object().unwrap().clone()
    }

    #[test]
    fn identity_assertion_grants() {
        let none = Request::default();
        let grant = IdentityAssertionGrant::from_claims(&id_jag(serde_json::json!({})), "c1", &none).unwrap();
        assert_eq!(grant.resource, "https://mcp.example.com/mcp");
        assert_eq!(grant.scope.as_deref(), Some("a b"));
        assert_eq!((grant.jti.as_str(), grant.expires_at), ("j1", 1000));

        // Requested ∩ asserted, in the request's order.
        let asked = Request { scope: Some("b c"), ..Request::default() };
        let grant = IdentityAssertionGrant::from_claims(&id_jag(serde_json::json!({})), "c1", &asked).unwrap();
        assert_eq!(grant.scope.as_deref(), Some("b"));
        let disjoint = Request { scope: Some("c"), ..Request::default() };
        let err = IdentityAssertionGrant::from_claims(&id_jag(serde_json::json!({})), "c1", &disjoint).unwrap_err();
        assert_eq!(err.code, crate::oauth::ErrorCode::InvalidScope);

        // Another client's, or lacking what the profile requires.
        for (extra, says) in [
            (serde_json::json!({"client_id": "c2"}), "another client"),
            (serde_json::json!({"client_id": null}), "client_id"),
            (serde_json::json!({"jti": null}), "jti"),
            (serde_json::json!({"resource": null}), "resource"),
        ] {
            let err = IdentityAssertionGrant::from_claims(&id_jag(extra), "c1", &none).unwrap_err();
            assert_eq!(err.code, crate::oauth::ErrorCode::InvalidGrant);
            assert!(err.description.contains(says), "{says}: {}", err.description);
        }
        // A resource parameter may only repeat the asserted one.
        let other = ["https://other.example.com".to_string()];
        let request = Request { resources: &other, ..Request::default() };
        let err = IdentityAssertionGrant::from_claims(&id_jag(serde_json::json!({})), "c1", &request).unwrap_err();
        assert_eq!(err.code, crate::oauth::ErrorCode::InvalidTarget);
    }

    #[test]
    fn service_account_usernames() {
        assert_eq!(
            service_account_of("system:serviceaccount:payments:billing-worker"),
            Some(("payments", "billing-worker"))
        );
        for bad in
            ["system:serviceaccount:payments", "system:serviceaccount::x", "system:serviceaccount:a:b:c", "alice"]
        {
            assert_eq!(service_account_of(bad), None, "{bad}");
        }
    }
}
