//! Federated sign-in: `inbound` as the relying party of a real upstream OpenID Provider
//! (npm `oidc-provider`), driven through a real headless Chromium.

use base64::Engine;
use serde_json::{Value, json};

use crate::support::browser::{Browser, callback_server, query};
use crate::support::flows::pkce;
use crate::support::server::{QUICKSTART, TestServer, form, start_server};
use crate::support::upstream::Upstream;
use crate::support::user_agent::Agent;

const UPSTREAM_SECRET: &str = "upstream-client-secret";

fn alice(groups: &[&str]) -> Value {
    json!({"alice": {"email": "alice@acme.test", "email_verified": true, "name": "Alice Upstream", "groups": groups}})
}

/// The IdentityProvider of these tests: UserInfo on (the upstream keeps scope claims out of
/// the ID token), `groups` mapped to roles through a table, a fixed tenant, and the
/// `acme.test` email domain for home-realm discovery.
fn identity_provider(issuer: &str, secret_file: &str) -> String {
    format!(
        r#"apiVersion: inbound.dev/v1alpha1
kind: IdentityProvider
metadata: {{name: acme-sso, namespace: default}}
spec:
  displayName: Acme SSO
  oidc:
    issuer: {issuer}
    clientId: inbound
    clientSecret: {{file: {secret_file}}}
    scopes: [openid, email, profile, groups]
    userinfo: true
  claims:
    tenant: {{value: acme}}
    roles:
      claim: groups
      values:
        billing-admins: [billing-admin]
    attributes: {{email: email, name: name}}
  emailDomains: [acme.test]
"#
    )
}

/// The quickstart with an upstream provider added (the upstream knows inbound's callback).
async fn federated(secret_in_file: &str, accounts: Value) -> (TestServer, Upstream) {
    let server = start_server(QUICKSTART).await;
    let upstream = Upstream::start(&server.url("/login/callback"), UPSTREAM_SECRET, accounts, true);
    std::fs::write(server.config_dir.join("acme-sso.secret"), format!("{secret_in_file}\n")).unwrap();
    server.edit("identity.yaml", &identity_provider(&upstream.issuer, "acme-sso.secret")).await;
    (server, upstream)
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn exchange(server: &TestServer, cli: &str, code: &str, redirect: &str, verifier: &str) -> Value {
    let reply = server
        .post(
            "/token",
            None,
            &form(&[
                ("grant_type", "authorization_code"),
                ("client_id", cli),
                ("code", code),
                ("redirect_uri", redirect),
                ("code_verifier", verifier),
            ]),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    reply.json
}

#[tokio::test]
async fn users_sign_in_through_an_upstream_openid_provider_and_lose_scopes_with_their_groups() {
    let (server, upstream) = federated(UPSTREAM_SECRET, alice(&["billing-admins", "staff"])).await;
    let (redirect, callback) = callback_server().await;
    let cli = server.client_id("billing-cli");
    let authorize = |challenge: &str, extra: &str| {
        format!(
            "{}/authorize?{}{extra}",
            server.base,
            form(&[
                ("response_type", "code"),
                ("client_id", &cli),
                ("redirect_uri", &redirect),
                ("scope", "openid profile email billing:read billing:refund offline_access"),
                ("state", "federated"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ])
        )
    };
    let browser = Browser::start().await;

    // The login page offers the provider beside the development users' password form.
    let (challenge, _) = pkce();
    browser.goto(&authorize(&challenge, "")).await;
    let login = browser.wait_for_text("Continue with Acme SSO").await;
    assert!(login.contains("name=\"password\""), "development users still sign in with a password:\n{login}");

    // Home-realm discovery: an acme.test login_hint goes straight upstream, hint forwarded.
    let (challenge, verifier) = pkce();
    browser.goto(&authorize(&challenge, "&login_hint=alice%40acme.test")).await;
    let at_upstream = browser.wait_for_url(&upstream.issuer).await;
    assert!(!at_upstream.contains("/authorize"), "{at_upstream}");
    crate::support::upstream::sign_in_and_authorize(&browser, "alice").await;

    // Back at inbound's consent page, as the upstream user; billing:refund is grantable
    // because the upstream group maps to the role.
    let page = browser.wait_for_text("Issue refunds").await;
    assert!(page.contains("alice@acme.test"), "the user is named by the mapped username:\n{page}");
    assert!(!page.contains("which you do not have"), "{page}");
    assert!(page.contains("with <span id=\"signed-in-with\">Acme SSO</span>"), "the page names the source:\n{page}");
    let artifact = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("federated-consent.png");
    browser.screenshot(&artifact).await;
    println!("consent page screenshot: {}", artifact.display());
    browser.click("input[name=scope][value=billing\\:refund]").await;
    if !browser.is_selected("input[name=scope][value=billing\\:refund]").await {
        browser.click("input[name=scope][value=billing\\:refund]").await;
    }
    browser.click("button[value=approve]").await;
    let landed = browser.wait_for_url(&redirect).await;
    assert_eq!(query(&landed, "state").as_deref(), Some("federated"));
    let tokens = exchange(&server, &cli, &query(&landed, "code").unwrap(), &redirect, &verifier).await;
    let scope = tokens["scope"].as_str().unwrap();
    assert!(scope.contains("billing:refund") && scope.contains("offline_access"), "{tokens}");
    let access = claims_of(tokens["access_token"].as_str().unwrap());
    let subject = inbound::identity::upstream::subject_for(
        &inbound::api::ObjectKey { namespace: "default".into(), name: "acme-sso".into() },
        "alice",
    );
    assert_eq!(access["sub"], subject.as_str(), "sub is derived from the provider and the upstream sub");
    assert_eq!(access["tenant"], "acme");
    assert_eq!(access["roles"], json!(["billing-admin"]), "only mapped groups become roles: {access}");
    let id_token = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["sub"], subject.as_str());

    // UserInfo releases the mapped attributes the granted scopes name.
    let userinfo = server
        .http
        .get(server.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let userinfo: Value = userinfo.json().await.unwrap();
    assert_eq!(userinfo, json!({"sub": subject, "email": "alice@acme.test", "name": "Alice Upstream"}));

    // The user record is in the store, with the source that signed them in.
    let record = server.store().await.user(&subject).await.unwrap().expect("a user record");
    assert_eq!(
        (record.source.as_str(), record.roles.as_slice()),
        ("default/acme-sso", &["billing-admin".to_string()][..])
    );

    // Upstream, alice leaves the billing-admins group. At her next sign-in her record loses
    // the role; the covered consent no longer yields billing:refund, and neither does the
    // refresh token issued before.
    upstream.set_accounts(alice(&["staff"]));
    let (challenge, verifier) = pkce();
    browser.goto(&authorize(&challenge, "&login_hint=alice%40acme.test&prompt=login")).await;
    // prompt=login is passed on: the upstream asks again although its session is live.
    browser.wait_for_url(&upstream.issuer).await;
    browser.wait_for_text("Sign-in").await;
    browser.type_into("input[name=login]", "alice").await;
    browser.type_into("input[name=password]", "any").await;
    browser.click("button[type=submit]").await;
    let landed = browser.wait_for_url(&redirect).await;
    let again = exchange(&server, &cli, &query(&landed, "code").expect("a code"), &redirect, &verifier).await;
    assert!(!again["scope"].as_str().unwrap().contains("billing:refund"), "{again}");
    assert!(again["scope"].as_str().unwrap().contains("billing:read"), "{again}");
    let refreshed = server
        .post(
            "/token",
            None,
            &form(&[
                ("grant_type", "refresh_token"),
                ("client_id", &cli),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ]),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.json);
    let scope = refreshed.json["scope"].as_str().unwrap();
    assert!(!scope.contains("billing:refund") && scope.contains("billing:read"), "the grant narrowed: {scope}");
    assert_eq!(claims_of(refreshed.json["access_token"].as_str().unwrap())["roles"], json!([]));

    browser.quit().await;
    callback.abort();
    server.running.stop().await;
}

/// The redirect to the upstream, as a user agent that does not follow it sees it.
async fn start_upstream_sign_in(server: &TestServer, agent: &mut Agent, redirect: &str) -> (String, String) {
    let (challenge, _) = pkce();
    let url = format!(
        "{}/authorize?{}",
        server.base,
        form(&[
            ("response_type", "code"),
            ("client_id", &server.client_id("billing-cli")),
            ("redirect_uri", redirect),
            ("scope", "openid billing:read"),
            ("state", "s1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("login_hint", "bob@acme.test"),
        ])
    );
    let page = agent.get(&url).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location.clone().unwrap();
    let cookie = page.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("inbound_upstream=")
            && cookie.contains("HttpOnly")
            && cookie.contains("Path=/login/callback"),
        "{cookie}"
    );
    let state = query(&location, "state").expect("state sent upstream");
    for p in ["nonce", "code_challenge"] {
        assert!(query(&location, p).is_some_and(|v| v.len() >= 32), "{p} in {location}");
    }
    assert_eq!(query(&location, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(query(&location, "login_hint").as_deref(), Some("bob@acme.test"));
    assert_eq!(query(&location, "redirect_uri"), Some(server.url("/login/callback")));
    (location, state)
}

#[tokio::test]
async fn upstream_callbacks_are_bound_to_their_browser_and_errors_never_leave_for_unregistered_places() {
    let (server, _upstream) = federated(UPSTREAM_SECRET, alice(&[])).await;
    let redirect = "http://127.0.0.1:45321/callback";

    // A callback without the browser binding (someone else's state, login CSRF) is refused
    // on a page and spends nothing.
    let mut agent = Agent::new();
    let (_, state) = start_upstream_sign_in(&server, &mut agent, redirect).await;
    let mut stranger = Agent::new();
    let page = stranger.get(&server.url(&format!("/login/callback?state={state}&code=x"))).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.location.is_none());
    let page = stranger.get(&server.url("/login/callback?state=unknown&code=x")).await;
    assert_eq!(page.status, 403);

    // The user cancels at the upstream: access_denied goes back to the app, with its state.
    let page = agent.get(&server.url(&format!("/login/callback?state={state}&error=access_denied"))).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(page.location.as_deref().unwrap().starts_with(redirect), "{:?}", page.location);
    assert_eq!(page.redirect_param("error").as_deref(), Some("access_denied"));
    assert_eq!(page.redirect_param("state").as_deref(), Some("s1"));
    // Single use: the same state again is refused.
    let page = agent.get(&server.url(&format!("/login/callback?state={state}&error=access_denied"))).await;
    assert_eq!(page.status, 403);

    // A code the upstream never issued: a page saying sign-in failed, no redirect.
    let mut agent = Agent::new();
    let (_, state) = start_upstream_sign_in(&server, &mut agent, redirect).await;
    let page = agent.get(&server.url(&format!("/login/callback?state={state}&code=forged"))).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.location.is_none());
    assert!(page.body.contains("Acme SSO"), "{}", page.body);
    assert!(!page.body.contains(UPSTREAM_SECRET));

    server.running.stop().await;
}

/// The upstream's ID tokens as JWT bearer assertions (RFC 7523) of an app trusting that
/// issuer: keys from its discovery document, fetched from the real provider. The issuer is
/// also the IdentityProvider `acme-sso`, so the token acts for the same user as signing in
/// through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_id_tokens_are_assertions_for_the_same_user() {
    let server = crate::support::server::start_server_configured(QUICKSTART, |options| {
        // The upstream listens on loopback http.
        options.workload.allow_private_issuers = true;
    })
    .await;
    let (redirect, callback) = callback_server().await;
    let ci_client = json!({
        "client_id": "ci-client", "client_secret": "ci-secret", "redirect_uris": [redirect],
        "grant_types": ["authorization_code"], "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    });
    let upstream = Upstream::start_with_clients(
        &server.url("/login/callback"),
        UPSTREAM_SECRET,
        alice(&["staff"]),
        false,
        &[ci_client],
    );
    std::fs::write(server.config_dir.join("acme-sso.secret"), format!("{UPSTREAM_SECRET}\n")).unwrap();
    server.edit("identity.yaml", &identity_provider(&upstream.issuer, "acme-sso.secret")).await;
    let app = |audience: &str| {
        format!(
            r#"apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {{name: sso-agent, namespace: default}}
spec:
  displayName: SSO agent
  grantTypes: ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
  trustedIssuers:
    - issuer: {issuer}
      audiences: ["{audience}"]
      loginClaim: email
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {{name: sso-agent, namespace: default}}
spec:
  subject: {{kind: InboundApp, name: sso-agent}}
  scopes: [billing:read]
  resources: ["https://billing.example.com"]
"#,
            issuer = upstream.issuer
        )
    };
    server.edit("assertions.yaml", &app("ci-client")).await;

    // alice signs in at the upstream as the CI client's user; the client gets her ID token.
    let (challenge, verifier) = pkce();
    let browser = Browser::start().await;
    browser
        .goto(&format!(
            "{}/auth?{}",
            upstream.issuer,
            form(&[
                ("response_type", "code"),
                ("client_id", "ci-client"),
                ("redirect_uri", &redirect),
                ("scope", "openid email"),
                ("state", "ci"),
                ("nonce", "n-0123456789"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
        ))
        .await;
    browser.wait_for_text("Sign-in").await;
    crate::support::upstream::sign_in_and_authorize(&browser, "alice").await;
    let landed = browser.wait_for_url(&redirect).await;
    browser.quit().await;
    callback.abort();
    let tokens: Value = server
        .http
        .post(format!("{}/token", upstream.issuer))
        .basic_auth("ci-client", Some("ci-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &query(&landed, "code").expect("a code")),
            ("redirect_uri", &redirect),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().unwrap_or_else(|| panic!("no ID token: {tokens}")).to_string();

    let (id, secret) = server.creds("sso-agent");
    let present = |assertion: String| {
        let (server, id, secret) = (&server, id.clone(), secret.clone());
        let body = form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)]);
        async move { server.post("/token", Some((&id, &secret)), &body).await }
    };
    let reply = present(id_token.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let access = claims_of(reply.json["access_token"].as_str().unwrap());
    let subject = inbound::identity::upstream::subject_for(
        &inbound::api::ObjectKey { namespace: "default".into(), name: "acme-sso".into() },
        "alice",
    );
    assert_eq!(access["sub"], subject.as_str(), "the same user as signing in through acme-sso");
    assert_eq!(access["tenant"], "acme");
    assert_eq!(access["scope"], "billing:read");
    assert_eq!(access["client_id"], id.as_str());

    // An ID token is for its client: an app that does not accept that audience refuses it.
    server.edit("assertions.yaml", &app("someone-else")).await;
    let reply = present(id_token).await;
    reply.assert_error(400, "invalid_grant");
    assert!(reply.json["error_description"].as_str().unwrap().contains("aud"), "{}", reply.json);
}
