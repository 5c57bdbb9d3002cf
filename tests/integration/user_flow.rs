//! User-delegated access: authorization code + PKCE, login, consent, refresh, OpenID
//! Connect, driven by the `openidconnect` crate and real form submissions.

use openidconnect::{
    AccessTokenHash, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
    core::{CoreClient, CoreProviderMetadata, CoreResponseType},
};

use crate::support::flows::{REDIRECT, authorize_url, code_for, exchange, pkce};
use crate::support::server::{QUICKSTART, form, start_server};
use crate::support::user_agent::Agent;

#[tokio::test]
async fn openidconnect_crate_full_flow_with_a_confidential_client() {
    let server = start_server(QUICKSTART).await;
    let http = server.http.clone();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(server.base.clone()).unwrap(), &http)
        .await
        .expect("discovery");
    let (id, secret) = server.creds("partner-portal");
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(id.clone()), Some(ClientSecret::new(secret)))
            .set_redirect_uri(RedirectUrl::new(REDIRECT.to_string()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("billing:read".into()))
        .add_extra_param("resource", "https://billing.example.com")
        .set_pkce_challenge(challenge)
        .url();

    let mut agent = Agent::new();
    let login = agent.get(url.as_str()).await;
    assert!(login.body.contains("Partner Portal"), "{}", login.body);
    let consent = agent.login(&server.base, &login, "alice", "wonderland").await;
    assert!(consent.body.contains("Your email address") && consent.body.contains("Read invoices"), "{}", consent.body);
    let done = agent.approve(&server.base, &consent, &["profile", "email"]).await;
    assert_eq!(done.redirect_param("state").as_deref(), Some(state.secret().as_str()));
    let code = done.redirect_param("code").unwrap();

    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = token.id_token().expect("an id_token for scope openid");
    let verifier = client.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).expect("id_token validates (RS256, iss, aud, nonce, exp)");
    let expected = AccessTokenHash::from_token(
        token.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected), "at_hash");
    assert!(claims.auth_time().is_some());

    // The access token is for the requested resource and carries the user's roles and tenant.
    let access =
        crate::support::flows::verify_jwt(&server, token.access_token().secret(), "https://billing.example.com").await;
    assert_eq!(access["sub"], claims.subject().as_str());
    assert_eq!(access["scope"], "openid profile email billing:read");
    assert_eq!(access["roles"], serde_json::json!(["billing-admin"]));
    assert_eq!(access["tenant"], "acme");

    let info: openidconnect::core::CoreUserInfoClaims = client
        .user_info(token.access_token().clone(), Some(claims.subject().clone()))
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.email().map(|e| e.as_str()), Some("alice@acme.example"));
    assert_eq!(info.name().and_then(|n| n.get(None)).map(|n| n.as_str()), Some("Alice Liddell"));

    // Refresh: rotation, down-scoping allowed, up-scoping refused.
    let refresh = token.refresh_token().expect("refresh token").clone();
    let refreshed = client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .add_scope(Scope::new("openid".into()))
        .add_scope(Scope::new("billing:read".into()))
        .request_async(&http)
        .await
        .expect("refresh");
    assert_eq!(refreshed.scopes().unwrap().iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["openid", "billing:read"]);
    let next = refreshed.refresh_token().expect("rotated").clone();
    assert_ne!(next.secret(), refresh.secret());
    let up = client
        .exchange_refresh_token(&next)
        .unwrap()
        .add_scope(Scope::new("billing:refund".into()))
        .request_async(&http)
        .await;
    assert!(up.is_err(), "up-scoping refused");
    server.running.stop().await;
}

#[tokio::test]
async fn public_client_pkce_consent_reuse_and_refresh_reuse_detection() {
    let server = start_server(QUICKSTART).await;
    let cli = server.client_id("billing-cli");
    let mut agent = Agent::new();
    let (challenge, verifier) = pkce();
    let code = code_for(
        &server.base,
        &mut agent,
        &authorize_url(&server, &cli, "openid billing:read", &challenge, ""),
        ("alice", "wonderland"),
        &[],
    )
    .await;

    // Wrong verifier, then the right one: a failed attempt does not make the code reusable.
    let (_, other_verifier) = pkce();
    exchange(&server, &cli, &code, &other_verifier).await.assert_error(400, "invalid_grant");
    let (challenge2, verifier2) = pkce();
    let code2 = code_for(
        &server.base,
        &mut agent,
        &authorize_url(&server, &cli, "openid billing:read", &challenge2, ""),
        ("alice", "wonderland"),
        &[],
    )
    .await;
    let first = exchange(&server, &cli, &code2, &verifier2).await;
    assert_eq!(first.status, 200, "{}", first.json);
    let _ = verifier;

    // The second authorize skipped the consent screen (consent covers it) and login (session).
    let access = first.json["access_token"].as_str().unwrap().to_string();
    let refresh = first.json["refresh_token"].as_str().unwrap().to_string();

    // Code replay: refused, and everything issued from the code is revoked.
    exchange(&server, &cli, &code2, &verifier2).await.assert_error(400, "invalid_grant");
    assert_eq!(server.introspect("partner-portal", &access).await["active"], false);
    let refreshed = server
        .post(
            "/token",
            None,
            &form(&[("grant_type", "refresh_token"), ("client_id", &cli), ("refresh_token", &refresh)]),
        )
        .await;
    refreshed.assert_error(400, "invalid_grant");

    // The token request must repeat the redirect URI the authorization request named.
    for (redirect, error) in [(None, "invalid_request"), (Some("http://127.0.0.1:1/callback"), "invalid_grant")] {
        let (challenge, verifier) = pkce();
        let code = code_for(
            &server.base,
            &mut agent,
            &authorize_url(&server, &cli, "openid", &challenge, ""),
            ("alice", "wonderland"),
            &[],
        )
        .await;
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("client_id", cli.as_str()),
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        if let Some(r) = redirect {
            fields.push(("redirect_uri", r));
        }
        server.post("/token", None, &form(&fields)).await.assert_error(400, error);
    }

    // Refresh reuse detection on a fresh grant.
    let (challenge3, verifier3) = pkce();
    let code3 = code_for(
        &server.base,
        &mut agent,
        &authorize_url(&server, &cli, "openid billing:read", &challenge3, ""),
        ("alice", "wonderland"),
        &[],
    )
    .await;
    let tokens = exchange(&server, &cli, &code3, &verifier3).await;
    let r1 = tokens.json["refresh_token"].as_str().unwrap().to_string();
    let rotated = server
        .post("/token", None, &form(&[("grant_type", "refresh_token"), ("client_id", &cli), ("refresh_token", &r1)]))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.json);
    let r2 = rotated.json["refresh_token"].as_str().unwrap().to_string();
    server
        .post("/token", None, &form(&[("grant_type", "refresh_token"), ("client_id", &cli), ("refresh_token", &r1)]))
        .await
        .assert_error(400, "invalid_grant");
    // The whole family is gone: the legitimate successor no longer works either.
    server
        .post("/token", None, &form(&[("grant_type", "refresh_token"), ("client_id", &cli), ("refresh_token", &r2)]))
        .await
        .assert_error(400, "invalid_grant");
    server.running.stop().await;
}

#[tokio::test]
async fn authorization_errors_never_redirect_to_untrusted_uris() {
    let server = start_server(QUICKSTART).await;
    let cli = server.client_id("billing-cli");
    let (challenge, _) = pkce();
    let mut agent = Agent::new();

    // Client or redirect URI problems: an error page, no Location.
    for url in [
        authorize_url(&server, &cli, "openid", &challenge, "").replace("45321%2Fcallback", "45321%2Fevil"),
        authorize_url(&server, &cli, "openid", &challenge, "")
            .replace("http%3A%2F%2F127.0.0.1%3A45321", "http%3A%2F%2Fevil.example.com%3A45321"),
        authorize_url(&server, "no-such-client", "openid", &challenge, ""),
        format!("{}/authorize?response_type=code", server.base),
    ] {
        let page = agent.get(&url).await;
        assert_eq!(page.status, 400, "{url}");
        assert!(page.location.is_none(), "must not redirect: {url}");
        assert!(page.headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
        // The error is shown to the user on a page (rendered from HttpError), not as JSON.
        assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"), "{url}");
        assert!(page.body.contains("invalid_request"), "{url}: {}", page.body);
    }

    // Everything else: back to the redirect URI with error, state and iss.
    let cases = [
        (
            format!(
                "{}/authorize?{}",
                server.base,
                form(&[("response_type", "code"), ("client_id", &cli), ("redirect_uri", REDIRECT), ("state", "s")])
            ),
            "invalid_request",
        ),
        (
            authorize_url(&server, &cli, "openid", &challenge, "")
                .replace("code_challenge_method=S256", "code_challenge_method=plain"),
            "invalid_request",
        ),
        (
            authorize_url(&server, &cli, "openid", &challenge, "").replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (authorize_url(&server, &cli, "openid crm:write", &challenge, ""), "invalid_scope"),
        (
            authorize_url(&server, &cli, "openid", &challenge, "&resource=https%3A%2F%2Fother.example.com"),
            "invalid_target",
        ),
        (authorize_url(&server, &cli, "openid", &challenge, "&prompt=none"), "login_required"),
        // Only query responses are implemented; a client asking for another mode must not
        // get a code it would read from the wrong place.
        (authorize_url(&server, &cli, "openid", &challenge, "&response_mode=fragment"), "invalid_request"),
        (authorize_url(&server, &cli, "openid", &challenge, "&response_mode=form_post"), "invalid_request"),
    ];
    for (url, code) in cases {
        let page = agent.get(&url).await;
        assert_eq!(page.status, 303, "{url}: {}", page.body);
        assert!(page.location.as_deref().unwrap().starts_with("http://127.0.0.1:45321/callback?"));
        assert_eq!(page.redirect_param("error").as_deref(), Some(code), "{url}");
        assert_eq!(page.redirect_param("iss").as_deref(), Some(server.base.as_str()));
    }
    server.running.stop().await;
}

#[tokio::test]
async fn consent_rules_roles_deny_incremental_csrf_and_revocation() {
    let server = start_server(QUICKSTART).await;
    let cli = server.client_id("billing-cli");
    let mut bob = Agent::new();
    let (challenge, verifier) = pkce();
    let url = authorize_url(&server, &cli, "openid billing:read billing:refund", &challenge, "");
    let login = bob.get(&url).await;
    let consent = bob.login(&server.base, &login, "bob", "builder").await;
    // billing:refund requires billing-admin, which bob lacks: shown, not grantable, explained.
    assert!(consent.body.contains("Cannot be granted: requires the role billing-admin"), "{}", consent.body);
    // billing:read is mandatory per the ConsentPolicy: no checkbox to uncheck.
    assert!(!consent.body.contains("name=\"scope\" value=\"billing:read\" id="), "mandatory scope is not optional");
    // A declared app is vouched for by the platform: no self-registration warnings.
    assert!(!consent.body.contains("app-local-only") && !consent.body.contains("app-client-id"), "{}", consent.body);

    // A form without its CSRF token is refused.
    let forged = bob
        .post(
            &format!("{}/consent", server.base),
            &[("request_id", &consent.field("request_id")), ("decision", "approve")],
        )
        .await;
    assert_eq!(forged.status, 403);

    // The token request for billing:refund cannot be smuggled in by the form either.
    let (challenge, verifier2) = pkce();
    let page = bob.get(&authorize_url(&server, &cli, "openid billing:read billing:refund", &challenge, "")).await;
    let done = bob.approve(&server.base, &page, &["billing:refund"]).await;
    let code = done.redirect_param("code").unwrap();
    let tokens = exchange(&server, &cli, &code, &verifier2).await;
    assert_eq!(tokens.json["scope"], "openid billing:read", "{}", tokens.json);
    let _ = verifier;

    // Deny: access_denied to the client.
    let mut alice = Agent::new();
    let (challenge, _) = pkce();
    let login = alice.get(&authorize_url(&server, &cli, "openid billing:read", &challenge, "")).await;
    let consent = alice.login(&server.base, &login, "alice", "wonderland").await;
    let denied = alice.deny(&server.base, &consent).await;
    assert_eq!(denied.redirect_param("error").as_deref(), Some("access_denied"));

    // Incremental consent: grant billing:read, then ask for profile: only profile is asked.
    let (challenge, _) = pkce();
    let consent = alice.get(&authorize_url(&server, &cli, "openid billing:read", &challenge, "")).await;
    alice.approve(&server.base, &consent, &[]).await;
    let (challenge, verifier) = pkce();
    let more = alice.get(&authorize_url(&server, &cli, "openid billing:read profile", &challenge, "")).await;
    assert!(
        more.body.contains("Your name") && !more.body.contains("Read invoices and payment history"),
        "{}",
        more.body
    );
    let done = alice.approve(&server.base, &more, &["profile"]).await;
    let tokens = exchange(&server, &cli, &done.redirect_param("code").unwrap(), &verifier).await;
    assert_eq!(tokens.json["scope"], "openid billing:read profile");
    let refresh = tokens.json["refresh_token"].as_str().unwrap().to_string();

    // prompt=none with a session and a covering consent: a code, no page.
    let (challenge, _) = pkce();
    let silent = alice.get(&authorize_url(&server, &cli, "openid billing:read", &challenge, "&prompt=none")).await;
    assert!(silent.redirect_param("code").is_some(), "{:?}", silent.location);

    // The account page lists the consent; revoking it stops refresh at once.
    let account = alice.get(&format!("{}/account/apps", server.base)).await;
    assert!(account.body.contains("Billing CLI") && account.body.contains("profile"), "{}", account.body);
    let api = alice.get(&format!("{}/account/api/apps", server.base)).await;
    let apps: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    let consent_id = apps["apps"][0]["id"].as_str().unwrap().to_string();
    let no_csrf = alice.post(&format!("{}/account/apps/{consent_id}/revoke", server.base), &[]).await;
    assert_eq!(no_csrf.status, 403);
    let revoked = alice
        .post(&format!("{}/account/apps/{consent_id}/revoke", server.base), &[("csrf", &account.field("csrf"))])
        .await;
    assert_eq!(revoked.status, 303);
    server
        .post(
            "/token",
            None,
            &form(&[("grant_type", "refresh_token"), ("client_id", &cli), ("refresh_token", &refresh)]),
        )
        .await
        .assert_error(400, "invalid_grant");
    let after = alice.get(&format!("{}/account/apps", server.base)).await;
    assert!(after.body.contains("No app has access"), "{}", after.body);
    server.running.stop().await;
}

#[tokio::test]
async fn app_supplied_text_is_escaped_and_first_party_apps_skip_consent() {
    let server = start_server(QUICKSTART).await;
    let apps = std::fs::read_to_string(server.config_dir.join("apps.yaml")).unwrap();
    let hostile = apps
        .replace("displayName: Billing CLI", "displayName: \"<script>alert(1)</script>\"")
        .replace("description: Command-line access to your invoices.", "description: \"<img src=x onerror=alert(2)>\"");
    server.edit("apps.yaml", &hostile).await;
    let cli = server.client_id("billing-cli");
    let mut agent = Agent::new();
    let (challenge, _) = pkce();
    let login = agent.get(&authorize_url(&server, &cli, "openid billing:read", &challenge, "")).await;
    let consent = agent.login(&server.base, &login, "alice", "wonderland").await;
    assert!(
        !consent.body.contains("<script>alert(1)</script>") && !consent.body.contains("<img src=x"),
        "{}",
        consent.body
    );
    assert!(consent.body.contains("&lt;script&gt;alert(1)"), "{}", consent.body);
    assert!(consent.headers["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'"));

    // First-party: no consent page, but the consent is recorded.
    server
        .edit("apps.yaml", &hostile.replace("  clientType: public\n", "  clientType: public\n  firstParty: true\n"))
        .await;
    let (challenge, _) = pkce();
    let page = agent.get(&authorize_url(&server, &cli, "openid billing:read", &challenge, "")).await;
    assert!(page.redirect_param("code").is_some(), "{}", page.body);
    let listed = agent.get(&format!("{}/account/api/apps", server.base)).await;
    assert!(listed.body.contains("billing:read"), "{}", listed.body);
    server.running.stop().await;
}

#[tokio::test]
async fn wrong_password_and_userinfo_errors() {
    let server = start_server(QUICKSTART).await;
    let cli = server.client_id("billing-cli");
    let mut agent = Agent::new();
    let (challenge, _) = pkce();
    let login = agent.get(&authorize_url(&server, &cli, "openid", &challenge, "")).await;
    let again = agent.login(&server.base, &login, "alice", "wrong").await;
    assert_eq!(again.status, 401);
    assert!(again.body.contains("Wrong username or password"));
    assert!(agent.cookie.is_none(), "no session after a failed login");
    let unknown = agent.login(&server.base, &again, "mallory", "x").await;
    assert_eq!(unknown.status, 401);

    let no_token = server.http.get(server.url("/userinfo")).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    assert_eq!(no_token.headers()["www-authenticate"], "Bearer");
    let bad = server.http.get(server.url("/userinfo")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(bad.status(), 401);
    assert!(bad.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    // A client_credentials token has no openid scope: 403 insufficient_scope.
    let m2m = server.token("billing-agent", "").await.json["access_token"].as_str().unwrap().to_string();
    let forbidden = server.http.get(server.url("/userinfo")).bearer_auth(&m2m).send().await.unwrap();
    assert_eq!(forbidden.status(), 403);
    server.running.stop().await;
}

#[tokio::test]
async fn prompt_login_max_age_userinfo_post_and_es256_id_tokens() {
    let server = start_server(QUICKSTART).await;
    // The CLI signs ID tokens with ES256.
    let apps = std::fs::read_to_string(server.config_dir.join("apps.yaml")).unwrap();
    server
        .edit(
            "apps.yaml",
            &apps.replace(
                "    refreshTokenLifetime: 30d\n",
                "    refreshTokenLifetime: 30d\n    idTokenSigningAlg: ES256\n",
            ),
        )
        .await;
    let cli = server.client_id("billing-cli");
    let mut agent = Agent::new();
    let (challenge, verifier) = pkce();
    let code = code_for(
        &server.base,
        &mut agent,
        &authorize_url(&server, &cli, "openid email billing:read", &challenge, "&nonce=n-0S6"),
        ("alice", "wonderland"),
        &["email"],
    )
    .await;
    let tokens = exchange(&server, &cli, &code, &verifier).await;
    let id_token = tokens.json["id_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(server.get("/jwks").await.json).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[&cli]);
    validation.set_issuer(&[&server.base]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &validation).unwrap().claims;
    assert_eq!(claims["nonce"], "n-0S6");

    // POST /userinfo with the token in the body; only the granted userInfo claims.
    let access = tokens.json["access_token"].as_str().unwrap();
    let info = server.post("/userinfo", None, &form(&[("access_token", access)])).await;
    assert_eq!(info.status, 200);
    assert_eq!(info.json["email"], "alice@acme.example");
    assert!(info.json.get("name").is_none(), "profile was not granted: {}", info.json);
    assert_eq!(info.json["sub"], claims["sub"]);

    // A session exists: a plain authorize needs no login, prompt=login and max_age=0 force it.
    let (challenge, _) = pkce();
    let again = agent.get(&authorize_url(&server, &cli, "openid email billing:read", &challenge, "")).await;
    assert_eq!(again.status, 303, "session reused, consent covers it");
    for extra in ["&prompt=login", "&max_age=0"] {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let forced = agent.get(&authorize_url(&server, &cli, "openid email billing:read", &challenge, extra)).await;
        assert!(forced.body.contains("action=\"/login\""), "{extra}: {}", forced.body);
    }
    server.running.stop().await;
}

#[tokio::test]
async fn templates_can_be_overridden_from_a_folder() {
    let tmp = tempfile::tempdir().unwrap();
    crate::support::server::copy_dir(std::path::Path::new(QUICKSTART), &tmp.path().join("config"));
    let templates = tmp.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(
        templates.join("login.html"),
        "<p>ACME sign-in for {{ app.name }}</p><input type=\"hidden\" name=\"request_id\" value=\"{{ request_id }}\">",
    )
    .unwrap();
    let mut options = crate::support::server::serve_options(&tmp.path().join("config"), &tmp.path().join("data"));
    options.templates = Some(templates);
    let running = inbound::runtime::serve::start(options).await.unwrap().running;
    let base = format!("http://{}", running.addr);
    let cli =
        std::fs::read_to_string(tmp.path().join("data/credentials/default/billing-cli-credentials/client_id")).unwrap();
    let (challenge, _) = pkce();
    let url = format!(
        "{base}/authorize?{}",
        form(&[
            ("response_type", "code"),
            ("client_id", &cli),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256")
        ])
    );
    let page = Agent::new().get(&url).await;
    assert!(page.body.contains("ACME sign-in for Billing CLI"), "{}", page.body);
    assert!(page.headers.contains_key("content-security-policy"), "overridden pages keep the security headers");
    running.stop().await;
}

/// A refresh request the server refuses (scope beyond the grant, a resource it was not
/// issued for) must not spend the refresh token: the client keeps its grant.
#[tokio::test]
async fn a_refused_refresh_request_leaves_the_grant_intact() {
    let server = start_server(QUICKSTART).await;
    let cli = server.client_id("billing-cli");
    let mut agent = Agent::new();
    let (challenge, verifier) = pkce();
    let url = authorize_url(&server, &cli, "openid billing:read", &challenge, "");
    let code = code_for(&server.base, &mut agent, &url, ("alice", "wonderland"), &[]).await;
    let tokens = exchange(&server, &cli, &code, &verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    let refresh = tokens.json["refresh_token"].as_str().unwrap().to_string();
    let refresh_with = |extra: &[(&str, &str)]| {
        let mut pairs = vec![("grant_type", "refresh_token"), ("client_id", cli.as_str()), ("refresh_token", &refresh)];
        pairs.extend_from_slice(extra);
        form(&pairs)
    };
    server.post("/token", None, &refresh_with(&[("scope", "billing:refund")])).await.assert_error(400, "invalid_scope");
    server
        .post("/token", None, &refresh_with(&[("resource", "https://other.example.com")]))
        .await
        .assert_error(400, "invalid_target");
    let refreshed = server.post("/token", None, &refresh_with(&[("scope", "billing:read")])).await;
    assert_eq!(refreshed.status, 200, "the refused requests spent the grant: {}", refreshed.json);
    assert_eq!(refreshed.json["scope"], "billing:read");
}

/// RFC 7009 §2: refresh tokens can be revoked (with their whole family); only by the
/// client they were issued to. RFC 7662: a refresh token is described only to its client.
#[tokio::test]
async fn refresh_tokens_are_revocable_and_private_to_their_client() {
    let server = start_server(QUICKSTART).await;
    let cli = server.client_id("billing-cli");
    let mut agent = Agent::new();
    let (challenge, verifier) = pkce();
    let url = authorize_url(&server, &cli, "openid billing:read", &challenge, "");
    let code = code_for(&server.base, &mut agent, &url, ("alice", "wonderland"), &[]).await;
    let tokens = exchange(&server, &cli, &code, &verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    let refresh = tokens.json["refresh_token"].as_str().unwrap().to_string();

    // Another client learns nothing and revokes nothing.
    assert_eq!(server.introspect("partner-portal", &refresh).await, serde_json::json!({"active": false}));
    server
        .post_as("partner-portal", "/revoke", &form(&[("token", &refresh)]))
        .await
        .assert_error(400, "unauthorized_client");

    // Its own client revokes it; the grant is gone.
    let revoked = server
        .post("/revoke", None, &form(&[("token", &refresh), ("token_type_hint", "refresh_token"), ("client_id", &cli)]))
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.json);
    server
        .post(
            "/token",
            None,
            &form(&[("grant_type", "refresh_token"), ("client_id", &cli), ("refresh_token", &refresh)]),
        )
        .await
        .assert_error(400, "invalid_grant");
}

/// RFC 7662 §2.2: a live refresh token introspected by its own (confidential) client.
#[tokio::test]
async fn a_refresh_token_is_described_to_its_own_client() {
    let server = start_server(QUICKSTART).await;
    let portal = server.client_id("partner-portal");
    let mut agent = Agent::new();
    let (challenge, verifier) = pkce();
    let redirect = "http://127.0.0.1:40000/callback";
    let url = authorize_url(&server, &portal, "openid billing:read", &challenge, "")
        .replace(&form(&[("redirect_uri", REDIRECT)]), &form(&[("redirect_uri", redirect)]));
    let code = code_for(&server.base, &mut agent, &url, ("alice", "wonderland"), &[]).await;
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", redirect),
        ("code_verifier", &verifier),
    ]);
    let tokens = server.post_as("partner-portal", "/token", &body).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    let refresh = tokens.json["refresh_token"].as_str().unwrap();
    let described = server.introspect("partner-portal", refresh).await;
    assert_eq!(described["active"], true, "{described}");
    assert_eq!(described["client_id"], portal.as_str());
    assert_eq!(described["scope"], "openid billing:read");
    assert!(described["sub"].is_string() && described["exp"].as_i64().is_some(), "{described}");
    assert_eq!(described["iss"], server.base.as_str());
    // Another confidential client gets nothing.
    assert_eq!(server.introspect("billing-agent", refresh).await, serde_json::json!({"active": false}));
}

/// OpenID Connect Core §11: `offline_access` is accepted from a client allowed refresh
/// tokens (not asked on the consent screen: the grant itself is), and a `scope` with
/// surrounding spaces is read as its tokens.
#[tokio::test]
async fn offline_access_and_a_padded_scope_are_accepted() {
    let server = start_server(QUICKSTART).await;
    let cli = server.client_id("billing-cli");
    let mut agent = Agent::new();
    let (challenge, verifier) = pkce();
    let url = authorize_url(&server, &cli, " openid offline_access billing:read ", &challenge, "");
    let code = code_for(&server.base, &mut agent, &url, ("alice", "wonderland"), &[]).await;
    let tokens = exchange(&server, &cli, &code, &verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert!(tokens.json["refresh_token"].is_string());
    assert_eq!(tokens.json["scope"], "openid offline_access billing:read");
}
