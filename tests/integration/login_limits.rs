//! Password sign-in under abuse: failed attempts are throttled per address and username
//! with back-off (429 + Retry-After), password checks are bounded (503 + Retry-After when
//! all cores are busy), forms from other sites are refused, and the right password works
//! again once the back-off has passed.

use std::time::Duration;

use oauth2::reqwest;

use crate::support::server::{QUICKSTART, TestServer, start_server};
use crate::support::user_agent::{Agent, Page};

/// A fresh login form (the account page's), in its own browser.
async fn login_form(server: &TestServer) -> (Agent, Page) {
    let mut agent = Agent::new();
    let page = agent.get(&server.url("/account/apps")).await;
    assert!(page.body.contains("name=\"password\""), "{}", page.body);
    (agent, page)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_wrong_passwords_are_throttled_and_the_right_one_works_after_the_back_off() {
    let server = start_server(QUICKSTART).await;
    let mut forms = Vec::new();
    for _ in 0..50 {
        forms.push(login_form(&server).await);
    }
    let base = server.base.clone();
    let attempts = forms.into_iter().map(|(mut agent, page)| {
        let base = base.clone();
        tokio::spawn(async move {
            let page = agent.login(&base, &page, "alice", "not-her-password").await;
            let retry_after = page.headers.get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            (page.status, retry_after, page.body.contains("not-her-password"))
        })
    });
    let mut statuses = Vec::new();
    for attempt in attempts {
        let (status, retry_after, echoed) = attempt.await.unwrap();
        assert!(!echoed, "the password is never echoed");
        if matches!(status, 429 | 503) {
            assert!(retry_after.is_some(), "{status} without Retry-After");
        }
        statuses.push(status);
    }
    assert!(statuses.iter().all(|s| matches!(s, 401 | 429 | 503)), "{statuses:?}");
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert!(throttled >= 30, "most attempts are throttled, not checked: {statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 401).count() <= 12, "{statuses:?}");
    assert_eq!(server.get("/healthz").await.status, 200, "still serving");

    // The right password: throttled while the back-off runs, then accepted.
    let mut waited = Duration::ZERO;
    loop {
        let (mut agent, page) = login_form(&server).await;
        let page = agent.login(&server.base, &page, "alice", "wonderland").await;
        if page.status == 303 {
            break;
        }
        assert_eq!(page.status, 429, "{}", page.body);
        let wait: u64 = page.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(wait <= 64, "the back-off after a dozen failures is short: {wait}");
        waited += Duration::from_secs(wait);
        assert!(waited < Duration::from_secs(120), "never let in");
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    server.running.stop().await;
}

/// Submits a fresh login form with alice's right password and these request headers.
async fn sign_in_with_headers(server: &TestServer, headers: &[(&str, &str)]) -> reqwest::Response {
    let (agent, page) = login_form(server).await;
    let body = crate::support::server::form(&[
        ("request_id", &page.field("request_id")),
        ("csrf", &page.field("csrf")),
        ("username", "alice"),
        ("password", "wonderland"),
    ]);
    let mut request =
        agent.http.post(server.url("/login")).header("content-type", "application/x-www-form-urlencoded").body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn sign_in_forms_from_another_site_are_refused() {
    let server = start_server(QUICKSTART).await;
    for (header, value) in [("sec-fetch-site", "cross-site"), ("origin", "https://evil.example.net")] {
        let response = sign_in_with_headers(&server, &[(header, value)]).await;
        assert_eq!(response.status(), 403, "{header}: {value}");
        assert!(response.headers().get("set-cookie").is_none(), "no session for a cross-site form");
    }
    // The same form from its own origin signs in.
    let base = server.base.clone();
    let response = sign_in_with_headers(&server, &[("origin", &base), ("sec-fetch-site", "same-origin")]).await;
    assert_eq!(response.status(), 303);
    server.running.stop().await;
}

#[tokio::test]
async fn unauthenticated_sign_in_pages_cannot_fill_the_store() {
    let server = start_server(QUICKSTART).await;
    let cli = server.client_id("billing-cli");
    let (challenge, _) = crate::support::flows::pkce();
    let url = crate::support::flows::authorize_url(&server, &cli, "openid billing:read", &challenge, "");
    let mut statuses = Vec::new();
    for _ in 0..100 {
        let page = Agent::new().get(&url).await;
        if page.status == 429 {
            assert!(page.headers.get("retry-after").is_some());
        }
        statuses.push(page.status);
    }
    let shown = statuses.iter().filter(|s| **s == 200).count();
    assert!((60..=62).contains(&shown), "a burst of 60 login pages per source (plus refill): {statuses:?}");
    assert!(statuses.iter().all(|s| matches!(s, 200 | 429)), "{statuses:?}");
    let rows = server.store().await.count_rows("pending_requests").await.unwrap();
    assert_eq!(rows as usize, shown, "refused requests stored nothing");
    server.running.stop().await;
}
