//! Client-initiated backchannel authentication (OpenID Connect CIBA Core 1.0) with a real
//! SMTP server receiving the approval email and a real Chromium following its link: poll
//! and ping modes, denial, single-use links, the hinted user only, no user enumeration, the
//! §13 errors, a relay that is down (nothing stored), and two replicas on PostgreSQL.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth2::reqwest;
use serde_json::Value;

use crate::support::browser::Browser;
use crate::support::server::{QUICKSTART, Reply, TestServer, form};
use crate::support::smtp::SmtpServer;

const CIBA: &str = "urn:openid:params:grant-type:ciba";

/// The quickstart sending email through `smtp`, with two CIBA apps: `ciba-agent` (poll) and
/// `ciba-pinger` (ping, notifying `notify`).
async fn server(smtp: &SmtpServer, notify: &str, store: Option<String>) -> TestServer {
    let port = smtp.port();
    let server = crate::support::server::start_server_configured(QUICKSTART, move |options| {
        options.smtp = Some(inbound::mail::SmtpOptions {
            host: "127.0.0.1".into(),
            port,
            tls: inbound::mail::SmtpTls::None,
            from: "Billing <no-reply@billing.example.com>".into(),
            username: None,
            password_file: None,
            ca_file: None,
            timeout: Duration::from_secs(5),
        });
        options.store = store;
    })
    .await;
    server
        .edit(
            "ciba.yaml",
            &format!(
                r#"apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {{name: ciba-agent, namespace: default}}
spec:
  displayName: Billing Assistant
  clientType: confidential
  grantTypes: ["{CIBA}", refresh_token]
  allowedScopes: [openid, billing:read]
  allowedResources: ["https://billing.example.com"]
  ciba: {{pollInterval: 1s, linkLifetime: 2m}}
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {{name: ciba-pinger, namespace: default}}
spec:
  displayName: Billing Pinger
  clientType: confidential
  grantTypes: ["{CIBA}"]
  allowedScopes: [openid]
  ciba: {{deliveryMode: ping, clientNotificationEndpoint: "{notify}"}}
"#
            ),
        )
        .await;
    server
}

async fn authenticate(server: &TestServer, app: &str, fields: &[(&str, &str)]) -> Reply {
    server.post_as(app, "/bc-authorize", &form(fields)).await
}

async fn poll(server: &TestServer, app: &str, auth_req_id: &str) -> Reply {
    server.post_as(app, "/token", &form(&[("grant_type", CIBA), ("auth_req_id", auth_req_id)])).await
}

/// The approval link of the email that just arrived for `to` (the `count`-th in all).
async fn link_in_email(smtp: &SmtpServer, count: usize, to: &str) -> String {
    let received = smtp.wait_for(count, Duration::from_secs(10)).await;
    let email = received.last().unwrap();
    assert!(email.to.contains(to), "to {}", email.to);
    let text = email.text.clone().expect("a text part");
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("http"))
        .unwrap_or_else(|| panic!("no link in {text}"))
        .to_string()
}

/// Signs alice in on the link's page (if asked) and approves or denies.
async fn decide(browser: &Browser, link: &str, approve: bool) {
    browser.goto(link).await;
    let page = browser.source().await;
    if page.contains("name=\"password\"") {
        browser.type_into("input[name=username]", "alice").await;
        browser.type_into("input[name=password]", "wonderland").await;
        browser.click("button[type=submit]").await;
    }
    browser.wait_for_text("wants to access your account").await;
    browser.click(if approve { "button[value=approve]" } else { "button[value=deny]" }).await;
    browser.wait_for_text(if approve { "Allowed" } else { "Not connected" }).await;
}

/// A loopback endpoint recording the ping notifications it receives.
async fn notification_endpoint() -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let received: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let record = received.clone();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let record = record.clone();
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                record.lock().unwrap().push((auth, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

#[tokio::test]
async fn a_user_approves_by_email_and_the_app_polls_for_tokens() {
    let smtp = SmtpServer::start();
    let (notify, _) = notification_endpoint().await;
    let server = server(&smtp, &notify, None).await;
    let metadata = server.get("/.well-known/openid-configuration").await.json;
    assert_eq!(metadata["backchannel_authentication_endpoint"], server.url("/bc-authorize"));
    assert_eq!(metadata["backchannel_token_delivery_modes_supported"], serde_json::json!(["poll", "ping"]));

    let started = authenticate(
        &server,
        "ciba-agent",
        &[("scope", "openid billing:read"), ("login_hint", "alice@acme.example"), ("binding_message", "BLUE-42")],
    )
    .await;
    assert_eq!(started.status, 200, "{}", started.json);
    assert_eq!((started.json["expires_in"].as_i64(), started.json["interval"].as_i64()), (Some(120), Some(1)));
    let auth_req_id = started.json["auth_req_id"].as_str().unwrap().to_string();
    poll(&server, "ciba-agent", &auth_req_id).await.assert_error(400, "authorization_pending");
    poll(&server, "ciba-agent", &auth_req_id).await.assert_error(400, "slow_down");

    // The email: the app's name, the binding message, a link of this issuer.
    let received = smtp.wait_for(1, Duration::from_secs(10)).await;
    let email = &received[0];
    assert!(email.from.contains("no-reply@billing.example.com"), "{}", email.from);
    assert!(email.subject.contains("Billing Assistant"), "{}", email.subject);
    assert!(email.text.as_deref().unwrap().contains("BLUE-42"));
    assert!(email.html.as_deref().unwrap().contains("BLUE-42"));
    let link = link_in_email(&smtp, 1, "alice@acme.example").await;
    assert!(link.starts_with(&server.url("/ciba?token=")), "{link}");
    assert!(!link.contains(&auth_req_id), "the link is not the auth_req_id");

    let browser = Browser::start().await;
    browser.goto(&link).await;
    browser.type_into("input[name=username]", "alice").await;
    browser.type_into("input[name=password]", "wonderland").await;
    browser.click("button[type=submit]").await;
    let consent = browser.wait_for_text("BLUE-42").await;
    assert!(consent.contains("id=\"binding-message\""), "{consent}");
    browser.click("button[value=approve]").await;
    browser.wait_for_text("Allowed").await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tokens = poll(&server, "ciba-agent", &auth_req_id).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert_eq!(tokens.json["scope"], "openid billing:read");
    assert!(tokens.json["id_token"].is_string() && tokens.json["refresh_token"].is_string(), "{}", tokens.json);
    let claims = crate::support::flows::verify_jwt(
        &server,
        tokens.json["access_token"].as_str().unwrap(),
        "https://billing.example.com",
    )
    .await;
    assert_eq!(claims["roles"], serde_json::json!(["billing-admin"]), "alice's token");
    poll(&server, "ciba-agent", &auth_req_id).await.assert_error(400, "expired_token");

    // The link is single-use.
    browser.goto(&link).await;
    browser.wait_for_text("expired or was already used").await;

    // A denial reaches the poll; bob's request cannot be decided by alice's session.
    let denied = authenticate(&server, "ciba-agent", &[("scope", "openid"), ("login_hint", "alice")]).await;
    let denied_id = denied.json["auth_req_id"].as_str().unwrap().to_string();
    let link = link_in_email(&smtp, 2, "alice@acme.example").await;
    decide(&browser, &link, false).await;
    poll(&server, "ciba-agent", &denied_id).await.assert_error(400, "access_denied");
    let for_bob = authenticate(&server, "ciba-agent", &[("scope", "openid"), ("login_hint", "bob@acme.example")]).await;
    assert_eq!(for_bob.status, 200, "{}", for_bob.json);
    let link = link_in_email(&smtp, 3, "bob@acme.example").await;
    browser.goto(&link).await;
    browser.wait_for_text("this request is for another user").await;
    poll(&server, "ciba-agent", for_bob.json["auth_req_id"].as_str().unwrap())
        .await
        .assert_error(400, "authorization_pending");
    browser.quit().await;

    // No enumeration: an unknown user gets the same answer, and no email.
    let unknown =
        authenticate(&server, "ciba-agent", &[("scope", "openid"), ("login_hint", "nobody@acme.example")]).await;
    assert_eq!(unknown.status, 200, "{}", unknown.json);
    assert_eq!(
        unknown.json.as_object().unwrap().keys().collect::<Vec<_>>(),
        started.json.as_object().unwrap().keys().collect::<Vec<_>>()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.messages().len(), 3, "no email for nobody");
    poll(&server, "ciba-agent", unknown.json["auth_req_id"].as_str().unwrap())
        .await
        .assert_error(400, "authorization_pending");
    server.running.stop().await;
}

#[tokio::test]
async fn errors_follow_ciba_section_13_and_a_relay_that_is_down_stores_nothing() {
    let smtp = SmtpServer::start();
    let (notify, _) = notification_endpoint().await;
    let server = server(&smtp, &notify, None).await;
    let alice = ("login_hint", "alice@acme.example");
    let long = "x".repeat(65);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("scope", "billing:read"), alice], "invalid_scope"),
        (vec![("scope", "openid")], "invalid_request"),
        (vec![("scope", "openid"), alice, ("id_token_hint", "x.y.z")], "invalid_request"),
        (vec![("scope", "openid"), ("login_hint_token", "opaque")], "invalid_request"),
        (vec![("scope", "openid"), ("id_token_hint", "not-a-jwt")], "invalid_request"),
        (vec![("scope", "openid"), alice, ("binding_message", long.as_str())], "invalid_binding_message"),
        (vec![("scope", "openid"), alice, ("binding_message", "line\nbreak")], "invalid_binding_message"),
        (vec![("scope", "openid"), alice, ("user_code", "1234")], "invalid_request"),
        (vec![("scope", "openid"), alice, ("requested_expiry", "-5")], "invalid_request"),
    ];
    for (fields, error) in cases {
        authenticate(&server, "ciba-agent", &fields).await.assert_error(400, error);
    }
    // Ping mode needs the token to send back.
    authenticate(&server, "ciba-pinger", &[("scope", "openid"), alice]).await.assert_error(400, "invalid_request");
    // An app without the grant; a public client (no authentication) cannot name users.
    authenticate(&server, "billing-agent", &[("scope", "openid"), alice])
        .await
        .assert_error(400, "unauthorized_client");
    let cli = server.client_id("billing-cli");
    server
        .post("/bc-authorize", None, &form(&[("client_id", &cli), ("scope", "openid"), alice]))
        .await
        .assert_error(400, "unauthorized_client");
    assert!(smtp.messages().is_empty(), "no email for a refused request");

    // Expiry (requested_expiry shortens the app's link lifetime): the poll and the link both
    // say so.
    let short = authenticate(&server, "ciba-agent", &[("scope", "openid"), alice, ("requested_expiry", "1")]).await;
    assert_eq!((short.status, short.json["expires_in"].as_i64()), (200, Some(1)), "{}", short.json);
    let link = link_in_email(&smtp, 1, "alice@acme.example").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    poll(&server, "ciba-agent", short.json["auth_req_id"].as_str().unwrap()).await.assert_error(400, "expired_token");
    let mut agent = crate::support::user_agent::Agent::new();
    let expired = agent.get(&link).await;
    assert_eq!(expired.status, 403, "{}", expired.body);
    assert!(expired.body.contains("expired or was already used"), "{}", expired.body);

    // The relay is down: a clear error, and nothing stored.
    let store = server.store().await;
    let before = store.count_rows("decoupled_requests").await.unwrap();
    drop(smtp);
    let down = authenticate(&server, "ciba-agent", &[("scope", "openid"), alice]).await;
    down.assert_error(503, "temporarily_unavailable");
    assert_eq!(store.count_rows("decoupled_requests").await.unwrap(), before);
    server.running.stop().await;
}

/// Ping mode: the app is told at its endpoint (bearer = its client_notification_token),
/// then fetches the tokens; started at one replica, approved at another, fetched at the
/// first, on one PostgreSQL.
#[tokio::test]
async fn ping_mode_notifies_the_app_across_replicas() {
    let pg = crate::support::postgres::Postgres::start();
    let smtp = SmtpServer::start();
    let (notify, received) = notification_endpoint().await;
    let one = server(&smtp, &notify, Some(pg.url())).await;
    let two = crate::support::server::start_replica(&one).await;
    let started = authenticate(
        &one,
        "ciba-pinger",
        &[("scope", "openid"), ("login_hint", "alice"), ("client_notification_token", "app-chosen-secret-1")],
    )
    .await;
    assert_eq!(started.status, 200, "{}", started.json);
    assert!(started.json.get("interval").is_none(), "no interval in ping mode: {}", started.json);
    let auth_req_id = started.json["auth_req_id"].as_str().unwrap().to_string();
    let link = link_in_email(&smtp, 1, "alice@acme.example").await.replace(&one.base, &two.base);
    let browser = Browser::start().await;
    decide(&browser, &link, true).await;
    browser.quit().await;
    let started_wait = std::time::Instant::now();
    while received.lock().unwrap().is_empty() {
        assert!(started_wait.elapsed() < Duration::from_secs(10), "no ping notification");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (auth, body) = received.lock().unwrap()[0].clone();
    assert_eq!(auth, "Bearer app-chosen-secret-1");
    assert_eq!(body, serde_json::json!({ "auth_req_id": auth_req_id }));
    let tokens = poll(&one, "ciba-pinger", &auth_req_id).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert!(tokens.json["id_token"].is_string());
    poll(&two, "ciba-pinger", &auth_req_id).await.assert_error(400, "expired_token");
    two.running.stop().await;
    one.running.stop().await;
}

/// `requireUserCode`: the user's own code (set on the account page or its API, kept as a
/// hash) must come with every request; a user without one, or nobody, fails exactly like a
/// wrong code; wrong codes are throttled per user. A `login_hint_token` from one of the
/// app's trusted issuers names the user (`expired_login_hint_token` when it expired).
#[tokio::test]
async fn user_codes_and_login_hint_tokens() {
    let smtp = SmtpServer::start();
    let (notify, _) = notification_endpoint().await;
    let server = server(&smtp, &notify, None).await;
    let hr = crate::support::keys::signing_key("hr-1");
    let jwk = hr.jwk.to_string();
    server
        .edit(
            "ciba-guarded.yaml",
            &format!(
                r#"apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {{name: ciba-guarded, namespace: default}}
spec:
  displayName: Payroll Assistant
  clientType: confidential
  grantTypes: ["{CIBA}"]
  allowedScopes: [openid]
  ciba: {{requireUserCode: true}}
  trustedIssuers:
    - issuer: https://hr.example.com
      jwks: '{{"keys": [{jwk}]}}'
      loginClaim: email
"#
            ),
        )
        .await;
    let metadata = server.get("/.well-known/openid-configuration").await.json;
    assert_eq!(metadata["backchannel_user_code_parameter_supported"], true);
    let guarded = |fields: Vec<(&'static str, String)>| {
        let server = &server;
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            authenticate(server, "ciba-guarded", &fields).await
        }
    };
    let request = |hint: &str, code: Option<&str>| {
        let mut fields = vec![("scope", "openid".to_string()), ("login_hint", hint.to_string())];
        fields.extend(code.map(|c| ("user_code", c.to_string())));
        fields
    };

    guarded(request("alice", None)).await.assert_error(400, "missing_user_code");
    // Alice has set no code yet, and nobody@ is nobody: the same answer as a wrong code.
    let unset = guarded(request("alice", Some("blue-heron-42"))).await;
    unset.assert_error(400, "invalid_user_code");
    let nobody = guarded(request("nobody@acme.example", Some("blue-heron-42"))).await;
    nobody.assert_error(400, "invalid_user_code");
    assert_eq!(unset.json, nobody.json, "no user enumeration");

    // Alice sets her code on the account page.
    let mut alice = crate::support::user_agent::Agent::new();
    let login = alice.get(&server.url("/account/apps")).await;
    alice.login(&server.base, &login, "alice", "wonderland").await;
    let account = alice.get(&server.url("/account/apps")).await;
    assert!(account.body.contains("No code is set."), "{}", account.body);
    let csrf = account.field("csrf");
    let no_csrf = alice.post(&server.url("/account/user-code"), &[("user_code", "blue-heron-42")]).await;
    assert_eq!(no_csrf.status, 403);
    let too_short = alice.post(&server.url("/account/user-code"), &[("csrf", &csrf), ("user_code", "12345")]).await;
    assert_eq!(too_short.status, 400, "{}", too_short.body);
    let set = alice.post(&server.url("/account/user-code"), &[("csrf", &csrf), ("user_code", "blue-heron-42")]).await;
    assert_eq!(set.status, 303, "{}", set.body);
    let account = alice.get(&server.url("/account/apps")).await;
    assert!(account.body.contains("A code is set.") && !account.body.contains("blue-heron"), "{}", account.body);

    guarded(request("alice", Some("blue-heron-41"))).await.assert_error(400, "invalid_user_code");
    assert!(smtp.messages().is_empty(), "no email before the code matched");
    let started = guarded(request("alice", Some("blue-heron-42"))).await;
    assert_eq!(started.status, 200, "{}", started.json);
    link_in_email(&smtp, 1, "alice@acme.example").await;

    // Wrong codes are throttled per user: after five, even the right one waits.
    for _ in 0..6 {
        guarded(request("alice", Some("guess-000"))).await.assert_error(400, "invalid_user_code");
    }
    let throttled = guarded(request("alice", Some("blue-heron-42"))).await;
    throttled.assert_error(400, "invalid_user_code");
    assert!(throttled.json["error_description"].as_str().unwrap().contains("try again in"), "{}", throttled.json);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = guarded(request("alice", Some("blue-heron-42"))).await;
    assert_eq!(after.status, 200, "{}", after.json);

    // A login_hint_token of the app's trusted issuer, naming alice by email.
    let now = crate::support::keys::now();
    let hint_token = |key: &crate::support::keys::SigningKey, typ: &str, iat: i64, exp: i64| {
        let claims = serde_json::json!({"iss": "https://hr.example.com", "sub": "hr-7", "email": "alice@acme.example",
            "aud": server.url(""), "iat": iat, "exp": exp});
        key.sign(key.header(typ), &claims)
    };
    let with_token = |token: String| {
        vec![("scope", "openid".to_string()), ("login_hint_token", token), ("user_code", "blue-heron-42".to_string())]
    };
    let by_token = guarded(with_token(hint_token(&hr, "JWT", now, now + 60))).await;
    assert_eq!(by_token.status, 200, "{}", by_token.json);
    link_in_email(&smtp, 3, "alice@acme.example").await;
    guarded(with_token(hint_token(&hr, "JWT", now - 180, now - 120)))
        .await
        .assert_error(400, "expired_login_hint_token");
    let stranger = crate::support::keys::signing_key("hr-1");
    guarded(with_token(hint_token(&stranger, "JWT", now, now + 60))).await.assert_error(400, "invalid_request");
    guarded(with_token(hint_token(&hr, "oauth-id-jag+jwt", now, now + 60))).await.assert_error(400, "invalid_request");

    // The account API changes the code too; removed, nothing matches.
    let put = |content_type: &'static str, body: &'static str| {
        let cookie = alice.cookie.clone().unwrap();
        let url = server.url("/account/api/user-code");
        async move {
            reqwest::Client::new()
                .put(url)
                .header("cookie", cookie)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(put("text/plain", r#"{"user_code": "river-otter-7"}"#).await, 400);
    assert_eq!(put("application/json", r#"{"user_code": "1"}"#).await, 400);
    assert_eq!(put("application/json", r#"{"user_code": "river-otter-7"}"#).await, 204);
    guarded(request("alice", Some("blue-heron-42"))).await.assert_error(400, "invalid_user_code");
    assert_eq!(guarded(request("alice", Some("river-otter-7"))).await.status, 200);
    let removed = reqwest::Client::new()
        .delete(server.url("/account/api/user-code"))
        .header("cookie", alice.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status().as_u16(), 204);
    guarded(request("alice", Some("river-otter-7"))).await.assert_error(400, "invalid_user_code");
    let account = alice.get(&server.url("/account/apps")).await;
    assert!(account.body.contains("No code is set."), "{}", account.body);
    server.running.stop().await;
}
