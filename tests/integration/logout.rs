//! OpenID Connect RP-Initiated Logout 1.0 against the real server: the session ends in the
//! store, the browser goes back only to a registered URI, and a hint from elsewhere is
//! refused.

use crate::support::flows::{authorize_url, code_for, exchange, pkce};
use crate::support::server::{QUICKSTART, TestServer, form, start_server};
use crate::support::user_agent::{Agent, Page};

async fn signed_in(server: &TestServer, agent: &mut Agent) -> String {
    let cli = server.client_id("billing-cli");
    let (challenge, verifier) = pkce();
    let url = authorize_url(server, &cli, "openid billing:read", &challenge, "");
    let code = code_for(&server.base, agent, &url, ("alice", "wonderland"), &[]).await;
    let tokens = exchange(server, &cli, &code, &verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    tokens.json["id_token"].as_str().unwrap().to_string()
}

fn logout_url(server: &TestServer, pairs: &[(&str, &str)]) -> String {
    format!("{}/logout?{}", server.base, form(pairs))
}

#[track_caller]
fn refused_on_a_page(page: &Page, what: &str) {
    assert_eq!(page.status, 400, "{what}: {}", page.body);
    assert!(page.location.is_none(), "{what}: redirected to {:?}", page.location);
    assert!(page.body.contains("invalid_request"), "{what}: {}", page.body);
}

#[tokio::test]
async fn logout_ends_the_session_and_returns_only_to_registered_uris() {
    let server = start_server(QUICKSTART).await;
    let discovery = server.get("/.well-known/openid-configuration").await;
    assert_eq!(discovery.json["end_session_endpoint"], server.url("/logout"));
    let mut agent = Agent::new();
    let id_token = signed_in(&server, &mut agent).await;
    let store = server.store().await;
    assert_eq!(store.count_rows("sessions").await.unwrap(), 1);

    // Not registered for the app: a page, no redirect, and the session stays.
    let page = agent
        .get(&logout_url(
            &server,
            &[("id_token_hint", &id_token), ("post_logout_redirect_uri", "https://evil.example.net/")],
        ))
        .await;
    refused_on_a_page(&page, "unregistered post_logout_redirect_uri");
    // Without saying whose it is, no redirect either.
    let page =
        agent.get(&logout_url(&server, &[("post_logout_redirect_uri", "http://127.0.0.1:5000/signed-out")])).await;
    refused_on_a_page(&page, "post_logout_redirect_uri without client");

    // An ID token of another issuer is not a hint.
    let other = start_server(QUICKSTART).await;
    let foreign = signed_in(&other, &mut Agent::new()).await;
    let page = agent.get(&logout_url(&server, &[("id_token_hint", &foreign)])).await;
    refused_on_a_page(&page, "id_token_hint from another issuer");
    other.running.stop().await;
    assert_eq!(store.count_rows("sessions").await.unwrap(), 1, "nothing refused ended the session");

    // The app's request: a confirmation page (a cross-site link alone signs nobody out)...
    let back = "http://127.0.0.1:5000/signed-out";
    let page = agent
        .get(&logout_url(
            &server,
            &[("id_token_hint", &id_token), ("post_logout_redirect_uri", back), ("state", "bye")],
        ))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Billing CLI") && page.body.contains("action=\"/logout\""), "{}", page.body);
    // ...whose form must come from this browser's session.
    let mut forged = vec![("confirm", "yes".to_string()), ("csrf", "forged".to_string())];
    forged.push(("id_token_hint", id_token.clone()));
    let fields: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = agent.post(&server.url("/logout"), &fields).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(store.count_rows("sessions").await.unwrap(), 1);

    let fields: Vec<(String, String)> =
        ["csrf", "confirm", "id_token_hint", "client_id", "post_logout_redirect_uri", "state"]
            .iter()
            .filter(|f| page.body.contains(&format!("name=\"{f}\"")))
            .map(|f| (f.to_string(), page.field(f)))
            .collect();
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let done = agent.post(&server.url("/logout"), &fields).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some(format!("{back}?state=bye").as_str()));
    let cookie = done.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("inbound_session=;") && cookie.contains("Max-Age=0"), "{cookie}");
    assert_eq!(store.count_rows("sessions").await.unwrap(), 0, "the session is gone from the store");

    // Signed out for real: the next authorization asks to sign in again.
    let cli = server.client_id("billing-cli");
    let (challenge, _) = pkce();
    let page = agent.get(&authorize_url(&server, &cli, "openid billing:read", &challenge, "")).await;
    assert!(page.body.contains("name=\"password\""), "{}", page.body);
    server.running.stop().await;
}
