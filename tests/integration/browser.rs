//! The login, consent and account pages in a real headless Chromium, driven through
//! chromedriver's W3C WebDriver API (Debian's `chromium` and `chromium-driver`).

use crate::support::browser::{Browser, callback_server, query};
use crate::support::flows::pkce;
use crate::support::server::{QUICKSTART, form, start_server};

#[tokio::test]
async fn login_consent_deny_and_revoke_in_a_real_browser() {
    let server = start_server(QUICKSTART).await;
    let (redirect, callback) = callback_server().await;
    let cli =
        std::fs::read_to_string(server.data_dir.join("credentials/default/billing-cli-credentials/client_id")).unwrap();
    let authorize = |challenge: &str, extra: &str| {
        format!(
            "{}/authorize?{}{extra}",
            server.base,
            form(&[
                ("response_type", "code"),
                ("client_id", &cli),
                ("redirect_uri", &redirect),
                ("scope", "openid profile email billing:read billing:refund"),
                ("state", "browser"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ])
        )
    };
    let browser = Browser::start().await;

    // Log in.
    let (challenge, verifier) = pkce();
    browser.goto(&authorize(&challenge, "")).await;
    browser.type_into("input[name=username]", "alice").await;
    browser.type_into("input[name=password]", "wonderland").await;
    browser.click("button[type=submit]").await;

    // The consent page: app, scopes, mandatory scope locked; keep a screenshot.
    let page = browser.wait_for_text("Read invoices and payment history").await;
    assert!(page.contains("Billing CLI"), "{page}");
    let artifact = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("consent.png");
    browser.screenshot(&artifact).await;
    println!("consent page screenshot: {}", artifact.display());
    assert!(browser.is_selected("input[name=scope][value=profile]").await);
    browser.click("input[name=scope][value=profile]").await; // uncheck an optional scope
    assert!(!browser.is_selected("input[name=scope][value=profile]").await);
    browser.click("button[value=approve]").await;

    // Landed on the redirect URI with a code; the unchecked scope was not granted.
    let landed = browser.wait_for_url(&redirect).await;
    assert_eq!(query(&landed, "state").as_deref(), Some("browser"));
    assert_eq!(query(&landed, "iss").as_deref(), Some(server.base.as_str()));
    let code = query(&landed, "code").expect("a code");
    let tokens = server
        .post(
            "/token",
            None,
            &form(&[
                ("grant_type", "authorization_code"),
                ("client_id", &cli),
                ("code", &code),
                ("redirect_uri", &redirect),
                ("code_verifier", &verifier),
            ]),
        )
        .await;
    assert_eq!(tokens.json["scope"], "openid email billing:read billing:refund", "{}", tokens.json);

    // Deny (prompt=consent forces the page although consent exists).
    let (challenge, _) = pkce();
    browser.goto(&authorize(&challenge, "&prompt=consent")).await;
    browser.click("button[value=deny]").await;
    let denied = browser.wait_for_url(&redirect).await;
    assert_eq!(query(&denied, "error").as_deref(), Some("access_denied"));

    // Revoke from the account page.
    browser.goto(&format!("{}/account/apps", server.base)).await;
    assert!(browser.source().await.contains("Billing CLI"));
    browser.click("form[action$='/revoke'] button").await;
    browser.wait_for_text("No app has access").await;
    let refresh = tokens.json["refresh_token"].as_str().unwrap();
    server
        .post(
            "/token",
            None,
            &form(&[("grant_type", "refresh_token"), ("client_id", &cli), ("refresh_token", refresh)]),
        )
        .await
        .assert_error(400, "invalid_grant");

    browser.quit().await;
    callback.abort();
    server.running.stop().await;
}
