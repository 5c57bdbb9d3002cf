//! The front channel of the authorization-code flow (RFC 6749 §4.1.1–§4.1.2, OAuth 2.1
//! §4.1, OpenID Connect Core §3.1.2): authorization request → login → consent → code, plus
//! what a signed-in user sees of their grants (the account page) and UserInfo (OIDC Core
//! §5.3).
//!
//! Each method takes the catalog snapshot and `now`, persists what the flow needs (pending
//! requests, sessions, consents, codes) and returns the next [`Step`] for the browser.
//! Handlers render steps as pages, cookies and redirects; they never decide.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{
    AuthorizationServer, ErrorCode, OAuthError,
    authorize::{AuthorizationRequest, AuthorizeError, Decoupled, error_redirect_url, redirect_url, validate},
    clients::UnusableClient,
    consent::{self, ConsentPlan, DurationChoice, Grants, ScopeItem, tenant_subject},
    login_guard,
    params::Params,
    server::store_error,
    token::CODE_LIFETIME,
};
use crate::api::ScopeKind;
use crate::audit::{Event, Revoker};
use crate::catalog::{Catalog, Client, UpstreamProvider};
use crate::identity::Identity;
use crate::protocol::{
    redirect,
    scope::{OPENID, is_builtin},
};
use crate::secrets::{random_token, token_digest};
use crate::store::{AuthorizationCode, Consent, DecoupledDecision, Session, UserRecord};

/// How long a user may take on the login and consent pages.
pub(super) const PENDING_LIFETIME: i64 = 600;

/// What the browser is shown or sent to next.
#[derive(Debug)]
pub enum Step {
    /// The user must sign in.
    Login(LoginForm),
    /// The user must decide about these scopes.
    Consent(ConsentForm),
    /// A 303 to the client's redirect URI (code or error), registered at this moment.
    Redirect(String),
    /// Sign in at an upstream identity provider: the handler builds its URL (discovery is
    /// network) and sets the browser-binding cookie.
    Upstream(UpstreamRedirect),
    /// The device code page (RFC 8628 §3.3) again: the code was wrong or expired.
    DeviceCode { user_code: String },
    /// The user decided on a decoupled request: its client learns it at its next poll (and,
    /// in CIBA ping mode, from the notification the handler sends to `notify`).
    Decided {
        client: Arc<Client>,
        approved: bool,
        reason: Option<String>,
        backchannel: bool,
        notify: Option<crate::store::ClientNotification>,
    },
}

/// Where the browser goes to sign in upstream, and what binds the callback to it.
#[derive(Debug)]
pub struct UpstreamRedirect {
    pub provider: Arc<UpstreamProvider>,
    /// The OAuth `state` sent upstream: the id of the pending request.
    pub state: String,
    pub nonce: String,
    /// PKCE S256 challenge of the verifier kept with the pending request.
    pub code_challenge: String,
    pub login_hint: Option<String>,
    /// `prompt=login` and `max_age` of the client's request, for the upstream: a fresh
    /// sign-in here must be one there too.
    pub fresh_login: bool,
    pub max_age: Option<i64>,
    /// The browser-binding cookie's value (only its digest is stored): the callback must
    /// come back in the browser that left, or anyone could complete a sign-in started by
    /// someone else (login CSRF, RFC 9700 §4.7).
    pub binding: String,
}

/// An upstream sign-in in progress, kept with its pending request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpstreamAttempt {
    /// The IdentityProvider, as its source name (`namespace/name`).
    pub provider: String,
    pub nonce: String,
    pub code_verifier: String,
    /// Hex SHA-256 of the browser-binding cookie.
    binding_digest: String,
    /// When the attempt (and its pending request) expires.
    #[serde(default)]
    pub(super) expires_at: i64,
    /// Application-hosted login: who the application said signed in, and the digest of the
    /// verifier the browser must bring back.
    #[serde(default)]
    pub(super) accepted: Option<AcceptedLogin>,
}

/// An application's acceptance of a login challenge.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct AcceptedLogin {
    pub(super) identity: Identity,
    pub(super) verifier_digest: String,
}

/// A choice on the login page.
#[derive(Debug, Serialize)]
pub struct ProviderChoice {
    pub name: String,
    pub display_name: String,
}

/// A request refused on a page, never redirected: the client or the redirect URI cannot be
/// trusted (RFC 6749 §4.1.2.1, RFC 9700 §4.1), or the form was not ours.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A malformed or untrustworthy request (400).
    #[error("{0}")]
    BadRequest(OAuthError),
    /// A form this server did not issue to this browser, or that expired (403).
    #[error("{0}")]
    Forbidden(OAuthError),
    /// Storage trouble (`temporarily_unavailable` or `server_error`).
    #[error("{0}")]
    Failed(OAuthError),
}

impl Refusal {
    pub fn error(&self) -> &OAuthError {
        match self {
            Refusal::BadRequest(e) | Refusal::Forbidden(e) | Refusal::Failed(e) => e,
        }
    }
}

fn failed(e: crate::store::StoreError) -> Refusal {
    Refusal::Failed(store_error(e))
}

/// The login page's form.
#[derive(Debug)]
pub struct LoginForm {
    /// The app asking; None when signing in to the account page.
    pub client: Option<Arc<Client>>,
    pub request_id: String,
    pub csrf: String,
    /// The previous attempt had wrong credentials.
    pub failed: bool,
    /// Offer the password form (there are development users).
    pub password: bool,
    /// Upstream identity providers to offer.
    pub providers: Vec<ProviderChoice>,
}

/// The consent page's form.
#[derive(Debug)]
pub struct ConsentForm {
    pub client: Arc<Client>,
    pub request_id: String,
    pub csrf: String,
    pub items: Vec<ScopeItem>,
    pub durations: Vec<DurationChoice>,
    pub username: String,
    /// The identity source the user signed in with (its display name).
    pub signed_in_with: Option<String>,
    pub tenant: Option<String>,
    /// The user administers `tenant`: the page offers to grant for every member.
    pub tenant_admin: bool,
    /// The request comes from a device (RFC 8628): the page warns against codes from
    /// others (§5.4, remote phishing).
    pub device: bool,
    /// CIBA: the message the app shows beside its request, for the user to compare.
    pub binding_message: Option<String>,
    /// Scopes the user, or their tenant, granted this app before (incremental consent).
    pub already: Vec<String>,
}

/// A login session just created: the cookie value (never stored, only its digest).
#[derive(Debug)]
pub struct NewSession {
    pub value: String,
    pub max_age: i64,
}

/// The user's answer on the consent page.
#[derive(Debug, Default)]
pub struct ConsentDecision {
    pub approve: bool,
    /// The optional scopes left checked.
    pub scopes: Vec<String>,
    /// The chosen duration in seconds, as submitted.
    pub duration: Option<String>,
    /// A tenant administrator grants for every member of the tenant.
    pub for_tenant: bool,
}

/// An authorization in progress between pages, kept server-side under a random id.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Pending {
    /// None when the login is for the account page.
    request: Option<AuthorizationRequest>,
    csrf: String,
    subject: Option<String>,
    auth_time: Option<i64>,
    items: Vec<ScopeItem>,
    durations: Vec<DurationChoice>,
    tenant: Option<String>,
    #[serde(default)]
    tenant_admin: bool,
    #[serde(default)]
    pub(super) upstream: Option<UpstreamAttempt>,
}

/// A submitted form's pending authorization, taken (one use) after its CSRF token matched.
/// Only [`AuthorizationServer::take_pending`] makes one.
#[derive(Debug)]
pub struct PendingAuthorization(pub(super) Pending);

/// An app the user has granted access, for the account page.
#[derive(Debug)]
pub struct ConnectedApp {
    pub consent: Consent,
    pub app_name: String,
}

/// OpenID Connect Core §3.1.2.1: an existing session satisfies the request unless
/// `prompt=login` asks for a fresh login or the authentication is older than `max_age`
/// seconds, or than the app's own session lifetime.
pub fn session_satisfies(request: &AuthorizationRequest, client: &Client, session: &Session, now: i64) -> bool {
    let age = now - session.auth_time;
    !request.prompts("login")
        && request.max_age.is_none_or(|max| age <= max)
        && age <= client.session_lifetime.as_secs() as i64
}

/// The tenant the user acts in: the one asked for, which must be one of the user's (never
/// a free string: a token's `tenant` is a membership the identity source vouched for);
/// else the only one of the user's tenants the app may act in. Tenants the app is not
/// allowed in (`allowedTenants`) are refused.
pub fn choose_tenant(asked: Option<&str>, user: &UserRecord, client: &Client) -> Result<Option<String>, OAuthError> {
    let allowed =
        |t: &str| client.spec.allowed_tenants.is_empty() || client.spec.allowed_tenants.iter().any(|a| a == t);
    match asked {
        Some(asked) if !user.member_of(asked) => {
            Err(OAuthError::access_denied(format!("the user does not belong to the tenant {asked}")))
        }
        Some(asked) if !allowed(asked) => {
            Err(OAuthError::access_denied(format!("this app may not act in the tenant {asked}")))
        }
        Some(asked) => Ok(Some(asked.to_string())),
        None => {
            let usable: Vec<&String> = user.tenants.iter().filter(|t| allowed(t)).collect();
            match usable.as_slice() {
                [only] => Ok(Some(only.to_string())),
                [] if !user.tenants.is_empty() && !client.spec.allowed_tenants.is_empty() => {
                    Err(OAuthError::access_denied("this app may not act in any of the tenants the user belongs to"))
                }
                // No tenant, or several: the request names one with `tenant`, or acts in none.
                _ => Ok(None),
            }
        }
    }
}

/// Incremental consent: a new grant adds to an active consent (same id) and never shortens
/// it; without one, a new consent is made for `subject` (a user, or a tenant: see
/// [`tenant_subject`]), recorded as granted by `granted_by`.
#[allow(clippy::too_many_arguments)]
pub fn merge_consent(
    existing: Option<Consent>,
    client_id: &str,
    subject: &str,
    granted_by: &str,
    tenant: Option<String>,
    scopes: Vec<String>,
    seconds: i64,
    now: i64,
) -> Consent {
    match existing {
        Some(mut consent) => {
            for s in scopes {
                if !consent.scopes.contains(&s) {
                    consent.scopes.push(s);
                }
            }
            consent.expires_at = consent.expires_at.max(now + seconds);
            consent
        }
        None => Consent {
            id: random_token(16),
            client_id: client_id.to_string(),
            subject: subject.to_string(),
            tenant,
            granted_by: granted_by.to_string(),
            scopes,
            created_at: now,
            expires_at: now + seconds,
        },
    }
}

/// OpenID Connect Core §5.4: the claims released for the granted scopes: `sub` always, and
/// for each granted `userInfo` Scope declared in the app's namespace, the attribute it names
/// when the user has it. Nothing else.
pub fn released_claims(
    catalog: &Catalog,
    namespace: &str,
    user: &UserRecord,
    scopes: &[&str],
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    out.insert("sub".into(), user.subject.clone().into());
    for s in scopes {
        let Some(spec) = catalog.scope(namespace, s) else { continue };
        if spec.kind != ScopeKind::UserInfo {
            continue;
        }
        if let Some(attribute) = &spec.user_attribute
            && let Some(value) = user.attributes.get(attribute)
        {
            out.insert(attribute.clone(), value.clone().into());
        }
    }
    out
}

impl AuthorizationServer {
    /// RFC 6749 §4.1.1: an authorization request from the browser, with the session the
    /// request carries (`session_value`, the cookie), if any.
    pub async fn authorize(
        &self,
        catalog: &Catalog,
        params: &Params,
        session_value: Option<&str>,
        now: i64,
    ) -> Result<Step, Refusal> {
        if let Some(client_id) = params.get("client_id") {
            match self.resolve_client(catalog, client_id, now).await {
                Ok(()) | Err(UnusableClient::Unknown) => {}
                // A metadata document that cannot be used: say why, on a page (never a redirect).
                Err(reason) => return Err(Refusal::BadRequest(OAuthError::invalid_request(reason.to_string()))),
            }
        }
        let (client, request) = match validate(catalog, params) {
            Ok(valid) => valid,
            Err(AuthorizeError::Page(e)) => return Err(Refusal::BadRequest(e)),
            // RFC 9700 §4.11.2: a self-registered client's redirect URI was chosen by whoever
            // registered it (within the policy's patterns); before a user has authenticated,
            // redirecting its errors would let anyone bounce browsers off this issuer.
            Err(AuthorizeError::Redirect { error, .. })
                if params.get("client_id").is_some_and(|id| !catalog.is_declared(id)) =>
            {
                return Err(Refusal::BadRequest(error));
            }
            Err(AuthorizeError::Redirect { redirect_uri, state, error }) => {
                tracing::info!(error = error.code.as_str(), description = %error.description, "authorization request refused");
                return Ok(Step::Redirect(error_redirect_url(&redirect_uri, &self.issuer, state.as_deref(), &error)));
            }
        };
        self.proceed(catalog, client, request, session_value, now).await
    }

    /// A valid request (an authorization request, a device authorization the user entered
    /// the code of): continue as the signed-in user, or sign in first.
    async fn proceed(
        &self,
        catalog: &Catalog,
        client: Arc<Client>,
        request: AuthorizationRequest,
        session_value: Option<&str>,
        now: i64,
    ) -> Result<Step, Refusal> {
        match self.session(session_value, now).await? {
            Some(s) if session_satisfies(&request, &client, &s, now) => {
                self.continue_as(catalog, &client, request, &s.subject, s.auth_time, now).await
            }
            // OIDC Core §3.1.2.6: prompt=none must not show a page; but nothing is redirected
            // for a self-registered client before a user has authenticated (above).
            _ if request.prompts("none") && !catalog.is_declared(&client.client_id) => {
                Err(Refusal::BadRequest(OAuthError::new(ErrorCode::LoginRequired, "the user is not logged in")))
            }
            _ if request.prompts("none") => {
                self.redirect_error(catalog, &request, ErrorCode::LoginRequired, "the user is not logged in", now).await
            }
            _ => match home_realm(catalog, &request) {
                Some(provider) => self.upstream_step(provider.clone(), Some(request), now).await,
                None => self.login_form(catalog, Some(client), Some(request), false, now).await.map(Step::Login),
            },
        }
    }

    /// RFC 8628 §3.3: the user entered a user code at `/device` (from `source`). A live one
    /// continues as an authorization request of its app (sign-in, consent); a wrong one
    /// shows the page again and counts against the source.
    pub async fn device_start(
        &self,
        catalog: &Catalog,
        typed: &str,
        source: &str,
        session_value: Option<&str>,
        now: i64,
    ) -> Result<Step, Refusal> {
        let Some((user_code, device)) = self.device_request(typed, source, now).await.map_err(Refusal::Failed)? else {
            return Ok(Step::DeviceCode { user_code: typed.chars().take(16).collect() });
        };
        let _ = self.resolve_client(catalog, &device.client_id, now).await;
        let Some(client) = catalog.client(&device.client_id) else {
            return Err(Refusal::BadRequest(OAuthError::invalid_request("the app of this code no longer exists")));
        };
        let request = AuthorizationRequest {
            client_id: client.client_id.clone(),
            redirect_uri: String::new(),
            redirect_uri_given: false,
            state: None,
            scopes: device.scopes,
            nonce: None,
            // Each decoupled request is confirmed on the consent screen, even for an app the
            // user allowed before: the user must see what is being connected (RFC 8628 §5.4,
            // CIBA §7.1's binding message), and a link opened by mistake approves nothing.
            prompt: vec!["consent".into()],
            max_age: None,
            code_challenge: String::new(),
            resources: device.resources,
            tenant: device.tenant,
            login_hint: None,
            decoupled: Some(Decoupled {
                code: user_code,
                subject: None,
                binding_message: None,
                notification: None,
                backchannel: false,
            }),
        };
        self.proceed(catalog, client, request, session_value, now).await
    }

    /// A CIBA approval link was opened: its live, undecided request continues as an
    /// authorization request of its app, for the user it was sent to.
    pub async fn backchannel_start(
        &self,
        catalog: &Catalog,
        token: &str,
        session_value: Option<&str>,
        now: i64,
    ) -> Result<Step, Refusal> {
        let gone = || {
            Refusal::Forbidden(OAuthError::invalid_request(
                "this link has expired or was already used: ask the app to start again",
            ))
        };
        if token.is_empty() || token.len() > 128 {
            return Err(gone());
        }
        let Some((code, found)) = self.backchannel_request(token, now).await.map_err(Refusal::Failed)? else {
            return Err(gone());
        };
        let _ = self.resolve_client(catalog, &found.client_id, now).await;
        let Some(client) = catalog.client(&found.client_id) else {
            return Err(Refusal::BadRequest(OAuthError::invalid_request("the app of this request no longer exists")));
        };
        let request = AuthorizationRequest {
            client_id: client.client_id.clone(),
            redirect_uri: String::new(),
            redirect_uri_given: false,
            state: None,
            scopes: found.scopes,
            nonce: None,
            // Each decoupled request is confirmed on the consent screen, even for an app the
            // user allowed before: the user must see what is being connected (RFC 8628 §5.4,
            // CIBA §7.1's binding message), and a link opened by mistake approves nothing.
            prompt: vec!["consent".into()],
            max_age: None,
            code_challenge: String::new(),
            resources: found.resources,
            tenant: found.tenant,
            login_hint: None,
            decoupled: Some(Decoupled {
                code,
                subject: found.subject,
                binding_message: found.binding_message,
                notification: found.notification,
                backchannel: true,
            }),
        };
        self.proceed(catalog, client, request, session_value, now).await
    }

    /// The session a cookie value names, if it is live.
    pub async fn session(&self, session_value: Option<&str>, now: i64) -> Result<Option<Session>, Refusal> {
        let Some(value) = session_value else { return Ok(None) };
        self.store.session(&token_digest(value), now).await.map_err(failed)
    }

    /// The record of a user who signed in before.
    pub async fn user(&self, subject: &str) -> Result<Option<UserRecord>, Refusal> {
        self.store.user(subject).await.map_err(failed)
    }

    /// A login form, for an authorization request or (without one) the account page.
    pub async fn login_form(
        &self,
        catalog: &Catalog,
        client: Option<Arc<Client>>,
        request: Option<AuthorizationRequest>,
        failed_before: bool,
        now: i64,
    ) -> Result<LoginForm, Refusal> {
        let pending = Pending { request, csrf: random_token(24), ..Pending::default() };
        let request_id = self.save_pending(&pending, now).await?;
        let providers = catalog
            .identity_providers()
            .iter()
            .map(|p| ProviderChoice { name: p.source(), display_name: p.spec.display_name.clone() })
            .collect();
        Ok(LoginForm {
            client,
            request_id,
            csrf: pending.csrf,
            failed: failed_before,
            password: password_offered(catalog),
            providers,
        })
    }

    /// The login page's "Continue with ..." was chosen: the browser goes upstream.
    pub async fn choose_provider(
        &self,
        catalog: &Catalog,
        pending: PendingAuthorization,
        name: &str,
        now: i64,
    ) -> Result<Step, Refusal> {
        let Some(provider) = catalog.identity_provider(name) else {
            return Err(Refusal::BadRequest(OAuthError::invalid_request("no such identity provider")));
        };
        self.upstream_step(provider.clone(), pending.0.request, now).await
    }

    /// Keeps the request with a fresh upstream attempt and sends the browser upstream.
    async fn upstream_step(
        &self,
        provider: Arc<UpstreamProvider>,
        request: Option<AuthorizationRequest>,
        now: i64,
    ) -> Result<Step, Refusal> {
        let (nonce, code_verifier, binding) = (random_token(24), random_token(32), random_token(24));
        let login_hint = request.as_ref().and_then(|r| r.login_hint.clone());
        let fresh_login = request.as_ref().is_some_and(|r| r.prompts("login"));
        let max_age = request.as_ref().and_then(|r| r.max_age);
        let pending = Pending {
            request,
            csrf: random_token(24),
            upstream: Some(UpstreamAttempt {
                provider: provider.source(),
                nonce: nonce.clone(),
                code_verifier: code_verifier.clone(),
                binding_digest: hex(&token_digest(&binding)),
                expires_at: now + PENDING_LIFETIME,
                accepted: None,
            }),
            ..Pending::default()
        };
        let state = self.save_pending(&pending, now).await?;
        tracing::info!(provider = %provider.source(), "sign-in sent to the upstream identity provider");
        Ok(Step::Upstream(UpstreamRedirect {
            provider,
            state,
            nonce,
            code_challenge: super::pkce::challenge_s256(&code_verifier),
            login_hint,
            fresh_login,
            max_age,
            binding,
        }))
    }

    /// The upstream sent the browser back with `state`: the pending request it names, if
    /// the browser is the one that left (its binding cookie). One use.
    pub async fn take_upstream(
        &self,
        catalog: &Catalog,
        state: Option<&str>,
        binding: Option<&str>,
        now: i64,
    ) -> Result<(PendingAuthorization, Arc<UpstreamProvider>, UpstreamAttempt), Refusal> {
        let invalid = || {
            Refusal::Forbidden(OAuthError::invalid_request(
                "this sign-in has expired or was started in another browser; start again from the app",
            ))
        };
        let id = state.ok_or_else(invalid)?;
        let json = self.store.pending(id, now).await.map_err(failed)?;
        let mut pending: Pending = json.and_then(|j| serde_json::from_str(&j).ok()).ok_or_else(invalid)?;
        let attempt = pending.upstream.take().ok_or_else(invalid)?;
        let presented = hex(&token_digest(binding.unwrap_or("")));
        if !bool::from(presented.as_bytes().ct_eq(attempt.binding_digest.as_bytes())) {
            tracing::warn!("upstream callback without the browser binding of its sign-in");
            return Err(invalid());
        }
        self.store.delete_pending(id).await.map_err(failed)?;
        let Some(provider) = catalog.identity_provider(&attempt.provider).cloned() else {
            return Err(Refusal::BadRequest(OAuthError::invalid_request("the identity provider no longer exists")));
        };
        Ok((PendingAuthorization(pending), provider, attempt))
    }

    /// The upstream answered with an error, or its answer could not be used. A user who
    /// cancelled there (`access_denied`) goes back to the app with `access_denied`; any other
    /// failure is shown on a page (the app can do nothing about it, the user may retry).
    pub async fn upstream_failed(
        &self,
        catalog: &Catalog,
        pending: PendingAuthorization,
        provider: &UpstreamProvider,
        cancelled: bool,
        reason: &str,
        now: i64,
    ) -> Result<Step, Refusal> {
        let source = provider.source();
        tracing::info!(provider = %source, cancelled, reason, "sign-in at the upstream identity provider failed");
        self.audit.emit(Event::LoginFailed {
            identity_source: source.to_string(),
            username: None,
            reason: if cancelled { "cancelled".into() } else { reason.to_string() },
        });
        let description = format!("signing in with {} did not succeed: {reason}", provider.spec.display_name);
        match pending.0.request {
            Some(request) if cancelled => {
                self.redirect_error(catalog, &request, ErrorCode::AccessDenied, &description, now).await
            }
            _ => Err(Refusal::Forbidden(OAuthError::access_denied(description))),
        }
    }

    /// Loads the pending authorization a form names and checks its CSRF token; one use per
    /// form.
    pub async fn take_pending(
        &self,
        request_id: Option<&str>,
        csrf: Option<&str>,
        now: i64,
    ) -> Result<PendingAuthorization, Refusal> {
        let invalid = || {
            Refusal::Forbidden(OAuthError::invalid_request(
                "this form has expired or was not issued by this server; start again from the app",
            ))
        };
        let id = request_id.ok_or_else(invalid)?;
        let json = self.store.pending(id, now).await.map_err(failed)?;
        let pending: Pending = json.and_then(|j| serde_json::from_str(&j).ok()).ok_or_else(invalid)?;
        if !bool::from(csrf.unwrap_or("").as_bytes().ct_eq(pending.csrf.as_bytes())) {
            tracing::warn!("form submitted without a valid CSRF token");
            return Err(invalid());
        }
        self.store.delete_pending(id).await.map_err(failed)?;
        Ok(PendingAuthorization(pending))
    }

    /// Seconds before a password sign-in from `source` for `username` may be tried (after
    /// too many failures); None when it may be now.
    pub fn password_retry_after(&self, source: &str, username: &str, now: i64) -> Option<i64> {
        let wait = self.failed_logins.lock().expect("lock").retry_after(&login_guard::keys(source, username), now);
        if wait.is_some() {
            self.audit.emit(Event::LoginFailed {
                identity_source: crate::identity::DEVELOPMENT_SOURCE.into(),
                username: Some(username.to_string()),
                reason: "throttled".into(),
            });
        }
        wait
    }

    /// Admits a request from `source` that may make the server keep a pending request
    /// before anyone has authenticated (`pending_budget`); else the seconds to wait.
    pub fn admit_unauthenticated(&self, source: &str, now: i64) -> Result<(), i64> {
        self.pending_budget.lock().expect("lock").admit(source, now)
    }

    /// Records a password check's outcome: failures count toward the throttle and are logged
    /// with the username and the address (never the password).
    pub fn password_checked(&self, source: &str, username: &str, ok: bool, now: i64) {
        let keys = login_guard::keys(source, username);
        let mut table = self.failed_logins.lock().expect("lock");
        if ok {
            table.succeeded(&keys[1]);
        } else {
            table.failed(&keys, now);
            tracing::warn!(username, source, "sign-in failed: wrong username or password");
            self.audit.emit(Event::LoginFailed {
                identity_source: crate::identity::DEVELOPMENT_SOURCE.into(),
                username: Some(username.to_string()),
                reason: "wrong_credentials".into(),
            });
        }
    }

    /// The login form was submitted; `identity` is who the identity source authenticated
    /// (None for wrong credentials). On success the user's record is refreshed, a session
    /// starts and the flow continues.
    pub async fn login(
        &self,
        catalog: &Catalog,
        pending: PendingAuthorization,
        identity: Option<Identity>,
        now: i64,
    ) -> Result<(Step, Option<NewSession>), Refusal> {
        let PendingAuthorization(pending) = pending;
        if let Some(request) = &pending.request {
            let _ = self.resolve_client(catalog, &request.client_id, now).await;
        }
        let client = pending.request.as_ref().and_then(|r| catalog.client(&r.client_id));
        let Some(identity) = identity else {
            tracing::info!("login failed");
            let form = self.login_form(catalog, client, pending.request, true, now).await?;
            return Ok((Step::Login(form), None));
        };
        let user = self.store.record_login(&user_record(identity), now).await.map_err(failed)?;
        let value = random_token(32);
        let session = Session { subject: user.subject.clone(), auth_time: now };
        let lifetime = catalog.defaults().session_lifetime.as_secs() as i64;
        self.store.put_session(&token_digest(&value), &session, now + lifetime).await.map_err(failed)?;
        tracing::info!(subject = %user.subject, source = %user.source, "user logged in");
        self.audit.emit(Event::LoginSucceeded {
            identity_source: user.source.clone(),
            username: Some(user.username.clone()),
            subject: user.subject.clone(),
        });
        let new_session = Some(NewSession { value, max_age: lifetime });
        match (pending.request, client) {
            (Some(request), Some(client)) => {
                Ok((self.continue_as(catalog, &client, request, &user.subject, now, now).await?, new_session))
            }
            _ => Ok((Step::Redirect(crate::protocol::paths::ACCOUNT.to_string()), new_session)),
        }
    }

    /// The consent form was submitted by the browser holding `session_value`.
    pub async fn consent(
        &self,
        catalog: &Catalog,
        pending: PendingAuthorization,
        session_value: Option<&str>,
        decision: ConsentDecision,
        now: i64,
    ) -> Result<Step, Refusal> {
        let PendingAuthorization(pending) = pending;
        let (Some(request), Some(subject), Some(auth_time)) = (pending.request, pending.subject, pending.auth_time)
        else {
            return Err(Refusal::BadRequest(OAuthError::invalid_request("not a consent form")));
        };
        // The form must be submitted by the session that was shown it.
        match self.session(session_value, now).await? {
            Some(s) if s.subject == subject => {}
            _ => {
                return Err(Refusal::Forbidden(OAuthError::access_denied(
                    "the session that opened this form has ended",
                )));
            }
        }
        if !decision.approve {
            tracing::info!(client_id = %request.client_id, "user denied consent");
            self.audit.emit(Event::ConsentDenied { client_id: request.client_id.clone(), subject: subject.clone() });
            return self
                .redirect_error(catalog, &request, ErrorCode::AccessDenied, "the user denied the request", now)
                .await;
        }
        let granted = match consent::granted(&pending.items, &decision.scopes) {
            Ok(g) => g,
            Err(e) => return self.redirect_error(catalog, &request, e.code, &e.description, now).await,
        };
        let seconds = decision.duration.as_deref().and_then(|d| d.parse::<i64>().ok());
        let Some(seconds) = seconds.filter(|s| pending.durations.iter().any(|d| d.seconds == *s)) else {
            return Err(Refusal::BadRequest(OAuthError::invalid_request("choose one of the offered durations")));
        };
        let _ = self.resolve_client(catalog, &request.client_id, now).await;
        let user = self.store.user(&subject).await.map_err(failed)?;
        let (Some(client), Some(user)) = (catalog.client(&request.client_id), user) else {
            return self
                .redirect_error(catalog, &request, ErrorCode::AccessDenied, "the app or the user no longer exists", now)
                .await;
        };
        let tenant = pending.tenant;
        let mut grants = self.grants(&client, &subject, tenant.as_deref(), now).await?;
        // Tenant-level scopes are always the tenant's; an administrator who grants for every
        // member puts the rest there too. Administration is checked again on the record as
        // it is now, not as it was when the form was shown.
        let for_tenant = decision.for_tenant
            && pending.tenant_admin
            && consent::is_tenant_admin(catalog, &client, &user, tenant.as_deref());
        let (for_everyone, for_user): (Vec<String>, Vec<String>) = granted
            .into_iter()
            .partition(|s| for_tenant || pending.items.iter().any(|i| i.scope == *s && i.tenant_level));
        if let Some(t) = tenant.as_deref().filter(|_| !for_everyone.is_empty()) {
            let consent = merge_consent(
                grants.tenant.take(),
                &client.client_id,
                &tenant_subject(t),
                &subject,
                tenant.clone(),
                for_everyone,
                seconds,
                now,
            );
            self.store.save_consent(&consent).await.map_err(failed)?;
            tracing::info!(client_id = %client.client_id, tenant = t, scopes = ?consent.scopes, "consent granted for the tenant");
            self.consent_granted(&consent);
            grants.tenant = Some(consent);
        }
        // The user's own consent takes the rest (and is renewed for the chosen duration);
        // a code needs some consent to rest on, even one of no scopes beyond the built-in.
        if !for_user.is_empty() || grants.own.is_some() || grants.tenant.is_none() {
            let consent = merge_consent(
                grants.own.take(),
                &client.client_id,
                &subject,
                &subject,
                tenant.clone(),
                for_user,
                seconds,
                now,
            );
            self.store.save_consent(&consent).await.map_err(failed)?;
            tracing::info!(client_id = %client.client_id, scopes = ?consent.scopes, "consent granted");
            self.consent_granted(&consent);
            grants.own = Some(consent);
        }
        self.issue_code(catalog, &client, &request, &user, auth_time, &grants, tenant, now).await
    }

    /// The active consents a user's authorization for `client` in `tenant` rests on.
    async fn grants(&self, client: &Client, subject: &str, tenant: Option<&str>, now: i64) -> Result<Grants, Refusal> {
        let own = self.store.active_consent(&client.client_id, subject, tenant, now).await.map_err(failed)?;
        let tenant = match tenant {
            Some(t) => {
                self.store.active_consent(&client.client_id, &tenant_subject(t), Some(t), now).await.map_err(failed)?
            }
            None => None,
        };
        Ok(Grants { own, tenant })
    }

    /// The user is known: consent (or not), then the code.
    async fn continue_as(
        &self,
        catalog: &Catalog,
        client: &Arc<Client>,
        request: AuthorizationRequest,
        subject: &str,
        auth_time: i64,
        now: i64,
    ) -> Result<Step, Refusal> {
        let Some(user) = self.store.user(subject).await.map_err(failed)? else {
            return self.login_form(catalog, Some(client.clone()), Some(request), false, now).await.map(Step::Login);
        };
        // CIBA: the client named the user; someone else signed in on this browser decides
        // nothing (and the request stays open for the right user).
        if let Some(expected) = request.decoupled.as_ref().and_then(|d| d.subject.as_deref())
            && expected != subject
        {
            return Err(Refusal::Forbidden(OAuthError::access_denied(
                "this request is for another user: sign out, open the link again and sign in as the user it was sent to",
            )));
        }
        let tenant = match choose_tenant(request.tenant.as_deref(), &user, client) {
            Ok(tenant) => tenant,
            Err(e) => return self.redirect_error(catalog, &request, e.code, &e.description, now).await,
        };
        let mut grants = self.grants(client, subject, tenant.as_deref(), now).await?;
        let force = request.prompts("consent");
        match consent::plan(catalog, client, &user, tenant.as_deref(), &request.scopes, &grants, force) {
            ConsentPlan::Covered => {
                self.issue_code(catalog, client, &request, &user, auth_time, &grants, tenant, now).await
            }
            ConsentPlan::Automatic { scopes, seconds } => {
                let consent = merge_consent(
                    grants.own.take(),
                    &client.client_id,
                    subject,
                    subject,
                    tenant.clone(),
                    scopes,
                    seconds,
                    now,
                );
                self.store.save_consent(&consent).await.map_err(failed)?;
                self.consent_granted(&consent);
                grants.own = Some(consent);
                self.issue_code(catalog, client, &request, &user, auth_time, &grants, tenant, now).await
            }
            // OIDC Core §3.1.2.6: prompt=none and consent is needed.
            ConsentPlan::Ask { .. } if request.prompts("none") => {
                let description = "the user has not consented to this request";
                self.redirect_error(catalog, &request, ErrorCode::ConsentRequired, description, now).await
            }
            ConsentPlan::Ask { items, durations } => {
                let already = grants.scopes();
                let decoupled = request.decoupled.clone();
                let tenant_admin = consent::is_tenant_admin(catalog, client, &user, tenant.as_deref());
                let pending = Pending {
                    request: Some(request),
                    csrf: random_token(24),
                    subject: Some(subject.to_string()),
                    auth_time: Some(auth_time),
                    items,
                    durations,
                    tenant,
                    tenant_admin,
                    upstream: None,
                };
                let request_id = self.save_pending(&pending, now).await?;
                Ok(Step::Consent(ConsentForm {
                    client: client.clone(),
                    request_id,
                    csrf: pending.csrf,
                    items: pending.items,
                    durations: pending.durations,
                    username: user.username.clone(),
                    signed_in_with: signed_in_with(catalog, &user),
                    tenant: pending.tenant,
                    tenant_admin,
                    device: decoupled.as_ref().is_some_and(|d| !d.backchannel),
                    binding_message: decoupled.and_then(|d| d.binding_message),
                    already,
                }))
            }
        }
    }

    /// Stores a single-use code bound to client, redirect URI, PKCE challenge and nonce
    /// (OAuth 2.1 §4.1.2), and sends the browser back with it.
    #[allow(clippy::too_many_arguments)]
    async fn issue_code(
        &self,
        catalog: &Catalog,
        client: &Client,
        request: &AuthorizationRequest,
        user: &UserRecord,
        auth_time: i64,
        grants: &Grants,
        tenant: Option<String>,
        now: i64,
    ) -> Result<Step, Refusal> {
        // What the user still holds the roles for and the app may still ask for: a consent
        // given earlier does not outlive either (checked at every covered authorization).
        let scopes: Vec<String> = request
            .scopes
            .iter()
            .filter(|s| {
                is_builtin(s)
                    || (grants.covers(catalog, client, s)
                        && consent::entitled(catalog, client, user, tenant.as_deref(), s))
            })
            .cloned()
            .collect();
        let Some((consent_id, tenant_consent_id)) = grants.consent_ids(&scopes) else {
            return Err(Refusal::Failed(OAuthError::new(ErrorCode::ServerError, "no consent recorded for this code")));
        };
        if let Some(decoupled) = &request.decoupled {
            let grant = crate::store::UserGrant {
                client_id: client.client_id.clone(),
                subject: user.subject.clone(),
                auth_time,
                scopes,
                resources: request.resources.clone(),
                tenant,
                consent_id,
                tenant_consent_id,
            };
            return self.decide(catalog, client, decoupled, DecoupledDecision::Approved(grant), None, now).await;
        }
        if !still_registered(catalog, request) {
            return Err(Refusal::BadRequest(OAuthError::invalid_request(
                "the redirect URI is no longer registered for this app",
            )));
        }
        let code = random_token(32);
        let record = AuthorizationCode {
            client_id: client.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            redirect_uri_given: request.redirect_uri_given,
            code_challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            scopes,
            resources: request.resources.clone(),
            tenant,
            subject: user.subject.clone(),
            auth_time,
            consent_id,
            tenant_consent_id,
            expires_at: now + CODE_LIFETIME,
        };
        self.store.put_code(&token_digest(&code), &record).await.map_err(failed)?;
        let mut params = vec![("code", code.as_str())];
        if let Some(s) = &request.state {
            params.push(("state", s));
        }
        Ok(Step::Redirect(redirect_url(&request.redirect_uri, &self.issuer, &params)))
    }

    /// Records the user's decision for the client polling (a device, a CIBA client).
    async fn decide(
        &self,
        catalog: &Catalog,
        client: &Client,
        decoupled: &Decoupled,
        decision: DecoupledDecision,
        reason: Option<String>,
        now: i64,
    ) -> Result<Step, Refusal> {
        let approved = matches!(decision, DecoupledDecision::Approved(_));
        let recorded = self.store.decide_decoupled_request(&decoupled.code, &decision, now).await.map_err(failed)?;
        let client = catalog
            .client(&client.client_id)
            .ok_or_else(|| Refusal::BadRequest(OAuthError::invalid_request("the app of this code no longer exists")))?;
        let backchannel = decoupled.backchannel;
        if !recorded {
            let reason = if backchannel {
                "the request expired or was already decided: ask the app to start again"
            } else {
                "the code expired or was already used: start again on the device"
            };
            return Ok(Step::Decided {
                client,
                approved: false,
                reason: Some(reason.into()),
                backchannel,
                notify: None,
            });
        }
        tracing::info!(client_id = %client.client_id, approved, backchannel, "decoupled authorization decided");
        Ok(Step::Decided { client, approved, reason, backchannel, notify: decoupled.notification.clone() })
    }

    /// An error for the client, redirected only while its redirect URI is still registered
    /// (a device authorization is denied instead: its device learns at its next poll).
    async fn redirect_error(
        &self,
        catalog: &Catalog,
        request: &AuthorizationRequest,
        code: ErrorCode,
        description: &str,
        now: i64,
    ) -> Result<Step, Refusal> {
        if let Some(decoupled) = &request.decoupled {
            let Some(client) = catalog.client(&request.client_id) else {
                return Err(Refusal::BadRequest(OAuthError::new(code, description)));
            };
            let reason = Some(description.to_string());
            return self.decide(catalog, &client, decoupled, DecoupledDecision::Denied, reason, now).await;
        }
        let error = OAuthError::new(code, description);
        if !still_registered(catalog, request) {
            return Err(Refusal::BadRequest(error));
        }
        Ok(Step::Redirect(error_redirect_url(&request.redirect_uri, &self.issuer, request.state.as_deref(), &error)))
    }

    async fn save_pending(&self, pending: &Pending, now: i64) -> Result<String, Refusal> {
        let id = random_token(24);
        let json = serde_json::to_string(pending).expect("pending serializes");
        self.store.put_pending(&id, &json, now + PENDING_LIFETIME).await.map_err(failed)?;
        Ok(id)
    }

    fn consent_granted(&self, consent: &Consent) {
        self.audit.emit(Event::ConsentGranted {
            consent_id: consent.id.clone(),
            client_id: consent.client_id.clone(),
            subject: consent.subject.clone(),
            tenant: consent.tenant.clone(),
            scopes: consent.scopes.clone(),
            granted_by: consent.granted_by.clone(),
            expires_at: Some(consent.expires_at),
        });
    }

    /// The CSRF token of the account page's forms: bound to the session, stateless.
    pub fn account_csrf(&self, session_value: &str) -> String {
        let tag = self.hasher.hash(&format!("account-csrf:{session_value}"));
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, tag.0)
    }

    /// Whether `presented` is the account-page CSRF token of `session_value` (constant time).
    pub fn account_csrf_matches(&self, session_value: &str, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.account_csrf(session_value).as_bytes()))
    }

    /// The apps `subject` has granted access (active consents, newest first).
    pub async fn connected_apps(
        &self,
        catalog: &Catalog,
        subject: &str,
        now: i64,
    ) -> Result<Vec<ConnectedApp>, Refusal> {
        let consents = self.store.consents_of(subject, now).await.map_err(failed)?;
        let mut apps = Vec::with_capacity(consents.len());
        for consent in consents {
            let _ = self.resolve_client(catalog, &consent.client_id, now).await;
            let app_name = catalog
                .client(&consent.client_id)
                .map(|a| a.spec.display_name.clone())
                .unwrap_or_else(|| consent.client_id.clone());
            apps.push(ConnectedApp { consent, app_name });
        }
        Ok(apps)
    }

    /// The user revokes one of their consents, with every refresh token family issued under
    /// it. False when the user has no such active consent.
    pub async fn revoke_consent(&self, id: &str, subject: &str, now: i64) -> Result<bool, Refusal> {
        let revoked = self.store.revoke_consent(id, subject, now).await.map_err(failed)?;
        if revoked {
            tracing::info!(consent = %id, "consent revoked by the user");
            self.audit.emit(Event::ConsentRevoked {
                consent_id: id.to_string(),
                subject: subject.to_string(),
                revoked_by: Revoker::User,
                actor: Some(subject.to_string()),
            });
        }
        Ok(revoked)
    }

    /// Whether the user set a CIBA user code (the account page says so, never the code).
    pub async fn has_backchannel_user_code(&self, subject: &str) -> Result<bool, Refusal> {
        Ok(self.store.backchannel_user_code(subject).await.map_err(failed)?.is_some())
    }

    /// Sets the user's CIBA user code to the argon2 hash of one that passed
    /// [`super::backchannel::check_user_code_format`], or (None) removes it.
    pub async fn set_backchannel_user_code(&self, subject: &str, hash: Option<&str>) -> Result<(), Refusal> {
        if !self.store.set_backchannel_user_code(subject, hash).await.map_err(failed)? {
            return Err(Refusal::BadRequest(OAuthError::invalid_request("this user has not signed in here")));
        }
        tracing::info!(subject, set = hash.is_some(), "the user changed their CIBA user code");
        Ok(())
    }

    /// OpenID Connect Core §5.3: the claims about the user behind `access_token`. Errors are
    /// RFC 6750 §3.1 `invalid_token` / `insufficient_scope`, or storage trouble.
    pub async fn userinfo(
        &self,
        catalog: &Catalog,
        access_token: &str,
        now: i64,
    ) -> Result<serde_json::Map<String, serde_json::Value>, OAuthError> {
        let Some(claims) = self.active_claims(catalog, access_token, now).await? else {
            return Err(OAuthError::new(ErrorCode::InvalidToken, "the access token is invalid or expired"));
        };
        let scopes: Vec<&str> = claims.scope.as_deref().unwrap_or("").split(' ').collect();
        if !scopes.contains(&OPENID) {
            return Err(OAuthError::new(ErrorCode::InsufficientScope, "the access token lacks the openid scope"));
        }
        let Some(user) = self.store.user(&claims.sub).await.map_err(store_error)? else {
            return Err(OAuthError::new(ErrorCode::InvalidToken, "the user no longer exists"));
        };
        let namespace = catalog.client(&claims.client_id).map(|c| c.key.namespace.clone()).unwrap_or_default();
        Ok(released_claims(catalog, &namespace, &user, &scopes))
    }
}

/// The display name of the identity source a user signed in with, if it is a provider.
pub fn signed_in_with(catalog: &Catalog, user: &UserRecord) -> Option<String> {
    catalog.identity_provider(&user.source).map(|p| p.spec.display_name.clone())
}

/// Whether a password can sign anyone in (development users exist).
pub fn password_offered(catalog: &Catalog) -> bool {
    !catalog.usernames().is_empty()
}

/// Home-realm discovery: the identity provider a request goes to without the login page —
/// the one serving its tenant, else the one serving its `login_hint`'s email domain, else
/// the only way to sign in at all.
pub fn home_realm<'a>(catalog: &'a Catalog, request: &AuthorizationRequest) -> Option<&'a Arc<UpstreamProvider>> {
    let providers = catalog.identity_providers();
    if let Some(tenant) = &request.tenant
        && let Some(p) = providers.iter().find(|p| p.spec.tenants.contains(tenant))
    {
        return Some(p);
    }
    let domain = request.login_hint.as_deref().and_then(|h| h.rsplit_once('@')).map(|(_, d)| d.to_ascii_lowercase());
    if let Some(domain) = domain
        && let Some(p) = providers.iter().find(|p| {
            p.spec.email_domains.iter().any(|pattern| crate::protocol::pattern::domain_matches(pattern, &domain))
        })
    {
        return Some(p);
    }
    match providers {
        [only] if !password_offered(catalog) => Some(only),
        _ => None,
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the store records of a login.
pub(super) fn user_record(identity: Identity) -> UserRecord {
    UserRecord {
        subject: identity.subject,
        source: identity.source,
        username: identity.username,
        tenants: identity.tenants,
        tenant_roles: identity.tenant_roles,
        roles: identity.roles,
        attributes: identity.attributes,
        first_login_at: 0,
        last_login_at: 0,
    }
}

/// The redirect URI was validated when the request arrived; the configuration may have
/// changed while the user was on the login or consent page.
fn still_registered(catalog: &Catalog, request: &AuthorizationRequest) -> bool {
    catalog
        .client(&request.client_id)
        .is_some_and(|c| redirect::is_registered(&c.spec.redirect_uris, &request.redirect_uri))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::catalog::{Defaults, manifest::parse_file};

    const NOW: i64 = 1_700_000_000;

    fn user(tenants: &[&str]) -> UserRecord {
        UserRecord {
            subject: "sub-alice".into(),
            username: "alice".into(),
            source: "development".into(),
            first_login_at: NOW,
            last_login_at: NOW,
            roles: vec![],
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            tenant_roles: BTreeMap::new(),
            attributes: BTreeMap::from([
                ("name".to_string(), "Alice".to_string()),
                ("email".to_string(), "alice@example.com".to_string()),
                ("phone".to_string(), "+1".to_string()),
            ]),
        }
    }

    fn request(prompt: &[&str], max_age: Option<i64>) -> AuthorizationRequest {
        AuthorizationRequest {
            client_id: "c".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            redirect_uri_given: true,
            state: None,
            scopes: vec![],
            nonce: None,
            prompt: prompt.iter().map(|p| p.to_string()).collect(),
            max_age,
            code_challenge: "x".repeat(43),
            resources: vec![],
            tenant: None,
            login_hint: None,
            decoupled: None,
        }
    }

    #[test]
    fn session_freshness_follows_prompt_and_max_age() {
        // OIDC Core §3.1.2.1.
        let (manifests, _) = parse_file(
            "t.yaml",
            "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {name: a}\nspec: {displayName: A, clientType: public, grantTypes: [authorization_code], redirectUris: ['http://127.0.0.1/cb'], tokens: {sessionLifetime: 1h}}\n",
        );
        let key = crate::api::ObjectKey { namespace: "default".into(), name: "a".into() };
        let records =
            HashMap::from([(key, crate::catalog::ClientRecord { client_id: "c".into(), secret_hashes: vec![] })]);
        let catalog = Catalog::build(&manifests, &records, &HashMap::new(), &Defaults::default());
        let client = catalog.client("c").unwrap();
        let session = Session { subject: "s".into(), auth_time: NOW - 100 };
        assert!(session_satisfies(&request(&[], None), &client, &session, NOW));
        assert!(session_satisfies(&request(&[], Some(100)), &client, &session, NOW), "exactly max_age old is fresh");
        assert!(!session_satisfies(&request(&[], Some(99)), &client, &session, NOW), "older than max_age");
        let fresh = Session { auth_time: NOW, ..session.clone() };
        assert!(session_satisfies(&request(&[], Some(0)), &client, &fresh, NOW));
        assert!(!session_satisfies(&request(&["login"], None), &client, &session, NOW), "prompt=login forces a login");
        assert!(session_satisfies(&request(&["consent"], None), &client, &session, NOW));
        let old = Session { auth_time: NOW - 3601, ..session.clone() };
        assert!(!session_satisfies(&request(&[], None), &client, &old, NOW), "older than the app's sessionLifetime");
    }

    /// An app (client id `c`) allowed in `allowed_tenants`.
    fn app(allowed_tenants: &str) -> Catalog {
        let yaml = format!(
            "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {{name: a}}\nspec: {{displayName: A, clientType: public, grantTypes: [authorization_code], redirectUris: ['http://127.0.0.1/cb'], allowedTenants: [{allowed_tenants}]}}\n"
        );
        let (manifests, problems) = parse_file("t.yaml", &yaml);
        assert!(problems.is_empty(), "{problems:?}");
        let key = crate::api::ObjectKey { namespace: "default".into(), name: "a".into() };
        let records =
            HashMap::from([(key, crate::catalog::ClientRecord { client_id: "c".into(), secret_hashes: vec![] })]);
        Catalog::build(&manifests, &records, &HashMap::new(), &Defaults::default())
    }

    #[test]
    fn the_tenant_is_a_membership_never_a_free_string() {
        let any = app("");
        let c = any.client("c").unwrap();
        assert_eq!(choose_tenant(None, &user(&["acme"]), &c).unwrap().as_deref(), Some("acme"), "the only one");
        assert_eq!(choose_tenant(Some("acme"), &user(&["acme"]), &c).unwrap().as_deref(), Some("acme"));
        assert_eq!(choose_tenant(Some("globex"), &user(&["acme"]), &c).unwrap_err().code, ErrorCode::AccessDenied);
        assert_eq!(
            choose_tenant(Some("globex"), &user(&[]), &c).unwrap_err().code,
            ErrorCode::AccessDenied,
            "a user of no tenant cannot name one"
        );
        assert_eq!(choose_tenant(None, &user(&[]), &c).unwrap(), None);
        let both = user(&["acme", "globex"]);
        assert_eq!(choose_tenant(None, &both, &c).unwrap(), None, "several: the request names one, or none");
        assert_eq!(choose_tenant(Some("globex"), &both, &c).unwrap().as_deref(), Some("globex"));
        let only_globex = app("globex");
        let c = only_globex.client("c").unwrap();
        assert_eq!(
            choose_tenant(None, &both, &c).unwrap().as_deref(),
            Some("globex"),
            "the only one the app may act in"
        );
        assert_eq!(choose_tenant(Some("acme"), &both, &c).unwrap_err().code, ErrorCode::AccessDenied);
        assert_eq!(choose_tenant(None, &user(&["acme"]), &c).unwrap_err().code, ErrorCode::AccessDenied);
    }

    #[test]
    fn incremental_consent_adds_scopes_and_never_shortens() {
        let first =
            merge_consent(None, "c", "sub-alice", "sub-alice", Some("acme".into()), vec!["a".into()], 3600, NOW);
        assert_eq!((first.scopes.as_slice(), first.expires_at), (&["a".to_string()][..], NOW + 3600));
        assert_eq!((first.subject.as_str(), first.granted_by.as_str()), ("sub-alice", "sub-alice"));
        let id = first.id.clone();
        let second = merge_consent(Some(first), "c", "x", "x", None, vec!["b".into(), "a".into()], 60, NOW + 10);
        assert_eq!(second.id, id, "the same consent grows");
        assert_eq!(second.scopes, ["a", "b"]);
        assert_eq!(second.expires_at, NOW + 3600, "a shorter second grant does not shorten the first");
        assert_eq!((second.tenant.as_deref(), second.subject.as_str()), (Some("acme"), "sub-alice"));
        let third = merge_consent(Some(second), "c", "x", "x", None, vec![], 7200, NOW + 10);
        assert_eq!(third.expires_at, NOW + 10 + 7200, "a longer grant extends it");
    }

    #[test]
    fn userinfo_releases_exactly_the_granted_user_info_scopes() {
        // OIDC Core §5.4: only what the granted scopes name.
        let (manifests, problems) = parse_file(
            "t.yaml",
            r#"
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: profile}
spec: {scope: profile, description: Name, kind: userInfo, userAttribute: name}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: email}
spec: {scope: email, description: Email, kind: userInfo, userAttribute: email}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: billing}
spec: {scope: "billing:read", description: Read, userAttribute: phone}
---
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: phone, namespace: other}
spec: {scope: phone, description: Phone, kind: userInfo, userAttribute: phone}
"#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let catalog = Catalog::build(&manifests, &HashMap::new(), &HashMap::new(), &Defaults::default());
        let alice = user(&[]);
        let claims = released_claims(&catalog, "default", &alice, &["openid", "profile"]);
        assert_eq!(serde_json::Value::Object(claims), serde_json::json!({"sub": "sub-alice", "name": "Alice"}));
        let claims = released_claims(&catalog, "default", &alice, &["openid", "email", "billing:read", "phone"]);
        assert_eq!(
            serde_json::Value::Object(claims),
            serde_json::json!({"sub": "sub-alice", "email": "alice@example.com"}),
            "a permission scope releases nothing, nor does a userInfo scope of another namespace"
        );
        let claims = released_claims(&catalog, "default", &alice, &["openid"]);
        assert_eq!(serde_json::Value::Object(claims), serde_json::json!({"sub": "sub-alice"}));
    }
}
