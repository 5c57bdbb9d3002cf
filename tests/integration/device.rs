//! The device authorization grant (RFC 8628): the quickstart's CLI app as a device, driven
//! by the `oauth2` crate's device-code client; the user approving at `/device` through real
//! form submissions and a real Chromium; polling errors, expiry, single issuance, throttled
//! guessing; and two replicas on one PostgreSQL (started at one, polled at the other).

use std::time::Duration;

use oauth2::{
    AuthType, ClientId, DeviceAuthorizationUrl, Scope, StandardDeviceAuthorizationResponse, TokenResponse, TokenUrl,
    basic::BasicClient,
};
use serde_json::Value;

use crate::support::server::{QUICKSTART, TestServer, form, start_server_with};
use crate::support::user_agent::{Agent, Page};

const BILLING: &str = "https://billing.example.com";

/// The quickstart with the CLI polling every second, its device codes living `lifetime`.
async fn quickstart(lifetime: &str, store: Option<String>) -> TestServer {
    let lifetime = lifetime.to_string();
    start_server_with(QUICKSTART, store, Duration::from_secs(5), move |dir| {
        let apps = dir.join("apps.yaml");
        let text = std::fs::read_to_string(&apps).unwrap().replacen(
            "    accessTokenLifetime: 10m\n    refreshTokenLifetime: 30d\n",
            &format!(
                "    accessTokenLifetime: 10m\n    refreshTokenLifetime: 30d\n    devicePollInterval: 1s\n    deviceCodeLifetime: {lifetime}\n"
            ),
            1,
        );
        std::fs::write(apps, text).unwrap();
    })
    .await
}

async fn start_device(server: &TestServer, base: &str, scope: &str) -> Value {
    let cli = server.client_id("billing-cli");
    let reply = crate::support::server::reply(
        server
            .http
            .post(format!("{base}/device_authorization"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("client_id", &cli), ("scope", scope), ("resource", BILLING)]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    reply.json
}

async fn poll(server: &TestServer, base: &str, device_code: &str) -> crate::support::server::Reply {
    let cli = server.client_id("billing-cli");
    let body = form(&[
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", &cli),
        ("device_code", device_code),
    ]);
    crate::support::server::reply(
        server
            .http
            .post(format!("{base}/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The user, in a browser of their own, enters `user_code` at `base`/device and signs in;
/// returns the consent page.
async fn enter_code(agent: &mut Agent, base: &str, user_code: &str) -> Page {
    let page = agent.get(&format!("{base}/device?user_code={user_code}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&format!("value=\"{user_code}\"")), "prefilled: {}", page.body);
    let login =
        agent.post(&format!("{base}/device"), &[("user_code", &user_code.to_lowercase().replace('-', ""))]).await;
    let consent = agent.login(base, &login, "alice", "wonderland").await;
    assert!(consent.body.contains("Billing CLI"), "{}", consent.body);
    assert!(consent.body.contains("id=\"device-warning\""), "the page warns about codes from others: {}", consent.body);
    consent
}

#[tokio::test]
async fn the_oauth2_crate_gets_tokens_once_the_user_approves_at_the_device_page() {
    let server = quickstart("10m", None).await;
    let metadata = server.get("/.well-known/openid-configuration").await.json;
    assert_eq!(metadata["device_authorization_endpoint"], server.url("/device_authorization"));
    assert!(
        metadata["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "urn:ietf:params:oauth:grant-type:device_code")
    );
    let client = BasicClient::new(ClientId::new(server.client_id("billing-cli")))
        .set_auth_type(AuthType::RequestBody)
        .set_device_authorization_url(DeviceAuthorizationUrl::new(server.url("/device_authorization")).unwrap())
        .set_token_uri(TokenUrl::new(server.url("/token")).unwrap());
    let details: StandardDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scope(Scope::new("openid".into()))
        .add_scope(Scope::new("billing:read".into()))
        .add_extra_param("resource", BILLING)
        .request_async(&server.http)
        .await
        .expect("device authorization");
    let user_code = details.user_code().secret().clone();
    assert!(
        user_code.len() == 9
            && user_code.chars().enumerate().all(|(i, c)| if i == 4 {
                c == '-'
            } else {
                "BCDFGHJKLMNPQRSTVWXZ".contains(c)
            }),
        "{user_code}"
    );
    assert_eq!(details.verification_uri().as_str(), server.url("/device"));
    let complete = details.verification_uri_complete().expect("verification_uri_complete").secret().clone();
    assert_eq!(complete, format!("{}?user_code={user_code}", server.url("/device")));
    assert_eq!((details.expires_in().as_secs(), details.interval().as_secs()), (600, 1));

    // The user approves on another device while the crate polls (pending until then).
    let base = server.base.clone();
    let approve = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut agent = Agent::new();
        let consent = enter_code(&mut agent, &base, &user_code).await;
        let done = agent.approve(&base, &consent, &[]).await;
        assert_eq!(done.status, 200, "{}", done.body);
        assert!(done.body.contains("Device connected"), "{}", done.body);
    });
    let token = client
        .exchange_device_access_token(&details)
        .request_async(&server.http, tokio::time::sleep, Some(Duration::from_secs(30)))
        .await
        .expect("tokens once approved");
    approve.await.unwrap();
    assert_eq!(token.scopes().unwrap().iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["openid", "billing:read"]);
    assert!(token.refresh_token().is_some(), "the CLI may refresh");
    let claims = crate::support::flows::verify_jwt(&server, token.access_token().secret(), BILLING).await;
    assert_eq!(
        (claims["client_id"].as_str(), claims["tenant"].as_str()),
        (Some(server.client_id("billing-cli").as_str()), Some("acme"))
    );
    assert_eq!(claims["roles"], serde_json::json!(["billing-admin"]), "alice's");

    // Issued once: the device code is spent.
    let again = poll(&server, &server.base, details.device_code().secret()).await;
    again.assert_error(400, "expired_token");
    // The audit trail names the grant.
    let trail = server.audit_trail();
    assert!(trail.contains("\"grant_type\":\"urn:ietf:params:oauth:grant-type:device_code\""), "{trail}");
    assert!(!trail.contains(details.device_code().secret()), "no device code in the audit trail");
    server.running.stop().await;
}

#[tokio::test]
async fn polling_errors_denial_expiry_and_throttled_guessing() {
    let server = quickstart("3s", None).await;
    let base = server.base.clone();

    // RFC 8628 §3.5: pending, then slow_down (5 s more) for polling faster than the interval.
    let started = start_device(&server, &base, "openid billing:read").await;
    let device_code = started["device_code"].as_str().unwrap();
    poll(&server, &base, device_code).await.assert_error(400, "authorization_pending");
    let fast = poll(&server, &base, device_code).await;
    fast.assert_error(400, "slow_down");
    assert!(fast.json["error_description"].as_str().unwrap().contains("6 seconds"), "{}", fast.json);

    // Denied: the device learns at its next poll, once.
    let denied = start_device(&server, &base, "openid").await;
    let mut agent = Agent::new();
    let consent = enter_code(&mut agent, &base, denied["user_code"].as_str().unwrap()).await;
    let page = agent.deny(&base, &consent).await;
    assert!(page.body.contains("Not connected"), "{}", page.body);
    poll(&server, &base, denied["device_code"].as_str().unwrap()).await.assert_error(400, "access_denied");
    poll(&server, &base, denied["device_code"].as_str().unwrap()).await.assert_error(400, "expired_token");

    // Expired (3 s here): the poll says so and the page no longer takes the code.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    poll(&server, &base, device_code).await.assert_error(400, "expired_token");
    let late = agent.post(&format!("{base}/device"), &[("user_code", started["user_code"].as_str().unwrap())]).await;
    assert_eq!(late.status, 400);
    assert!(late.body.contains("id=\"device-error\""), "{}", late.body);

    // Bad requests get their RFC error codes.
    let unknown =
        server.post("/device_authorization", None, &form(&[("client_id", "nobody"), ("scope", "openid")])).await;
    unknown.assert_error(401, "invalid_client");
    let (agent_id, agent_secret) = server.creds("billing-agent");
    let not_allowed = server
        .post("/device_authorization", Some((&agent_id, &agent_secret)), &form(&[("scope", "billing:read")]))
        .await;
    not_allowed.assert_error(400, "unauthorized_client");
    let cli = server.client_id("billing-cli");
    server
        .post("/device_authorization", None, &form(&[("client_id", &cli), ("scope", "billing:delete")]))
        .await
        .assert_error(400, "invalid_scope");
    poll(&server, &base, "not-a-device-code").await.assert_error(400, "expired_token");

    // RFC 8628 §5.1: wrong codes from one source are throttled; then even a right one waits.
    let live = start_device(&server, &base, "openid").await;
    let mut guesser = Agent::new();
    for _ in 0..inbound::oauth::login_guard::FREE_FAILURES {
        let wrong = guesser.post(&format!("{base}/device"), &[("user_code", "BBBB-BBBB")]).await;
        assert_eq!(wrong.status, 400, "{}", wrong.body);
    }
    let _ = guesser.post(&format!("{base}/device"), &[("user_code", "CCCC-CCCC")]).await;
    let locked = guesser.post(&format!("{base}/device"), &[("user_code", live["user_code"].as_str().unwrap())]).await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    server.running.stop().await;
}

/// Two replicas on one PostgreSQL: the device starts at one, the user approves through a
/// real Chromium at the other, and the device polls the first.
#[tokio::test]
async fn replicas_share_decoupled_requests_and_chromium_approves() {
    let pg = crate::support::postgres::Postgres::start();
    let one = quickstart("10m", Some(pg.url())).await;
    let two = crate::support::server::start_replica(&one).await;
    let started = start_device(&one, &one.base, "openid billing:read").await;
    let device_code = started["device_code"].as_str().unwrap().to_string();
    poll(&one, &two.base, &device_code).await.assert_error(400, "authorization_pending");

    let browser = crate::support::browser::Browser::start().await;
    let complete = started["verification_uri_complete"].as_str().unwrap().replace(&one.base, &two.base);
    browser.goto(&complete).await;
    browser.wait_for_text("Connect a device").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("Sign in").await;
    browser.type_into("input[name=username]", "alice").await;
    browser.type_into("input[name=password]", "wonderland").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("You are connecting a device").await;
    browser.click("button[value=approve]").await;
    browser.wait_for_text("Device connected").await;
    browser.quit().await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tokens = poll(&one, &one.base, &device_code).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert_eq!(tokens.json["scope"], "openid billing:read");
    assert!(tokens.json["id_token"].is_string() && tokens.json["refresh_token"].is_string());
    poll(&one, &two.base, &device_code).await.assert_error(400, "expired_token");
    two.running.stop().await;
    one.running.stop().await;
}
