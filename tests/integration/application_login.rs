//! Application-hosted login: an IdentityProvider of type `application` sends the browser to
//! the application's own login page with a one-time challenge; the application (a small
//! axum app here, calling inbound over HTTP like any application would) accepts it with its
//! InboundApp's credentials and sends the browser back.

use serde_json::{Value, json};

use crate::support::flows::{authorize_url, exchange, pkce};
use crate::support::server::{QUICKSTART, TestServer, start_server};
use crate::support::user_agent::{Agent, Page};

const MANIFESTS: &str = "apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: acme-login, namespace: default}
spec:
  displayName: Acme login
  description: The application's own login page, accepting inbound's login challenges.
  clientType: confidential
  grantTypes: [client_credentials]
---
apiVersion: inbound.dev/v1alpha1
kind: IdentityProvider
metadata: {name: acme-app, namespace: default}
spec:
  displayName: Acme accounts
  application: {loginUrl: 'LOGIN_URL', client: acme-login}
";

/// The application: its login page "authenticates" the user (a real one would show a form)
/// and accepts the challenge with its client credentials; the browser is sent back.
async fn application(inbound: String, credentials: (String, String)) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/login",
        axum::routing::get(
            move |axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>| {
                let (inbound, credentials) = (inbound.clone(), credentials.clone());
                async move {
                    let accepted = accept(&inbound, &credentials, &q["login_challenge"]).await;
                    let location = accepted["redirect_to"].as_str().unwrap().to_string();
                    (axum::http::StatusCode::SEE_OTHER, [("location", location)])
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("{base}/login")
}

async fn accept_as(inbound: &str, credentials: &(String, String), challenge: &str) -> (u16, Value) {
    let body = json!({
        "login_challenge": challenge,
        "subject": "u-42",
        "username": "dana@acme.test",
        "tenants": ["acme"],
        "roles": ["billing-admin"],
        "attributes": {"email": "dana@acme.test", "name": "Dana"},
    });
    let response = reqwest::Client::new()
        .post(format!("{inbound}/login/accept"))
        .basic_auth(&credentials.0, Some(&credentials.1))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn accept(inbound: &str, credentials: &(String, String), challenge: &str) -> Value {
    let (status, json) = accept_as(inbound, credentials, challenge).await;
    assert_eq!(status, 200, "{json}");
    json
}

async fn with_application() -> (TestServer, String) {
    let server = start_server(QUICKSTART).await;
    // The app's credentials exist once its manifest is served; the login URL is known once
    // the application listens: two edits.
    server.edit("application.yaml", &MANIFESTS.replace("LOGIN_URL", "http://127.0.0.1:1/login")).await;
    let login_url = application(server.base.clone(), server.creds("acme-login")).await;
    server.edit("application.yaml", &MANIFESTS.replace("LOGIN_URL", &login_url)).await;
    (server, login_url)
}

/// Chooses the application on the login page; returns the redirect to its login URL.
async fn choose_application(server: &TestServer, agent: &mut Agent, challenge: &str) -> Page {
    let url = authorize_url(
        server,
        &server.client_id("billing-cli"),
        "openid email billing:read billing:refund",
        challenge,
        "",
    );
    let login = agent.get(&url).await;
    assert!(login.body.contains("Continue with Acme accounts"), "{}", login.body);
    let page = agent
        .post(
            &server.url("/login"),
            &[
                ("request_id", &login.field("request_id")),
                ("csrf", &login.field("csrf")),
                ("provider", "default/acme-app"),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    page
}

fn challenge_of(page: &Page) -> String {
    page.redirect_param("login_challenge").expect("a login_challenge")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_signs_users_in_through_its_own_login_page() {
    let (server, login_url) = with_application().await;
    let mut agent = Agent::new();
    let (code_challenge, verifier) = pkce();
    let page = choose_application(&server, &mut agent, &code_challenge).await;
    assert!(page.location.as_deref().unwrap().starts_with(&login_url), "{:?}", page.location);

    // The application's page accepts and sends the browser back; inbound asks for consent.
    let back = agent.get(page.location.as_deref().unwrap()).await;
    assert_eq!(back.status, 303);
    let consent = agent.get(back.location.as_deref().unwrap()).await;
    assert!(consent.body.contains("dana@acme.test") && consent.body.contains("Issue refunds"), "{}", consent.body);
    let done = agent.approve(&server.base, &consent, &["billing:refund", "email"]).await;
    let code = done.redirect_param("code").expect("a code");
    let tokens = exchange(&server, &server.client_id("billing-cli"), &code, &verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    let claims = crate::support::flows::verify_jwt(
        &server,
        tokens.json["access_token"].as_str().unwrap(),
        "https://billing.example.com",
    )
    .await;
    let key = inbound::api::ObjectKey { namespace: "default".into(), name: "acme-app".into() };
    assert_eq!(claims["sub"], inbound::identity::upstream::subject_for(&key, "u-42").as_str());
    assert_eq!((claims["tenant"].clone(), claims["roles"].clone()), (json!("acme"), json!(["billing-admin"])));
    assert!(claims["scope"].as_str().unwrap().contains("billing:refund"), "{claims}");
    server.running.stop().await;
}

#[tokio::test]
async fn challenges_are_single_use_short_lived_and_only_for_the_named_app() {
    let (server, _) = with_application().await;
    let app = server.creds("acme-login");
    let mut agent = Agent::new();
    let (code_challenge, _) = pkce();
    let page = choose_application(&server, &mut agent, &code_challenge).await;
    let challenge = challenge_of(&page);

    // Another app of the deployment cannot accept (and does not burn the challenge).
    let (status, json) = accept_as(&server.base, &server.creds("billing-agent"), &challenge).await;
    assert_eq!((status, json["error"].as_str()), (403, Some("unauthorized_client")), "{json}");
    let (status, json) = accept_as(&server.base, &("acme-login-id".into(), "wrong".into()), &challenge).await;
    assert_eq!((status, json["error"].as_str()), (401, Some("invalid_client")), "{json}");

    // Past its lifetime the challenge is gone (the core is asked with a later clock).
    let later = inbound::clock::now() + 601;
    let authorization = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{}:{}", app.0, app.1))
    );
    let body = json!({"login_challenge": challenge, "subject": "u-42"}).to_string();
    let catalog = server.running.state.catalog.load_full();
    let expired =
        server.running.state.server.accept_login(&catalog, Some(&authorization), body.as_bytes(), later).await;
    assert_eq!(expired.unwrap_err().code, inbound::oauth::ErrorCode::InvalidRequest);

    // The named app accepts once; a replay is refused.
    let accepted = accept(&server.base, &app, &challenge).await;
    let (status, json) = accept_as(&server.base, &app, &challenge).await;
    assert_eq!((status, json["error"].as_str()), (400, Some("invalid_request")), "{json}");

    // The way back needs the browser that left and the verifier the acceptance returned.
    let back = accepted["redirect_to"].as_str().unwrap();
    let wrong_verifier = back.replace("login_verifier=", "login_verifier=x");
    let refused = Agent::new().get(back).await;
    assert_eq!(refused.status, 403, "another browser: {}", refused.body);
    let page = agent.get(&wrong_verifier).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.location.is_none());
    // The failed attempt spent the challenge: even the right verifier is now refused.
    let page = agent.get(back).await;
    assert_eq!(page.status, 403, "{}", page.body);

    // An unknown challenge.
    let (status, _) = accept_as(&server.base, &app, "no-such-challenge").await;
    assert_eq!(status, 400);
    server.running.stop().await;
}

/// `examples/identity/login-app.py` as its comment says to run it: its own login form, then
/// the back-channel acceptance with the credentials folder inbound wrote for its app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_login_application_signs_a_user_in() {
    let server = start_server(QUICKSTART).await;
    let example = std::fs::read_to_string("examples/identity/application-login.yaml").unwrap();
    // Served in the folder's default namespace; the login URL is known once the app runs.
    server.edit("application.yaml", &example).await;
    let mut app = std::process::Command::new("python3")
        .arg("examples/identity/login-app.py")
        .env("INBOUND_ISSUER", &server.base)
        .env("INBOUND_CREDENTIALS", server.data_dir.join("credentials/default/acme-login-credentials"))
        .env("PORT", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(app.stdout.take().unwrap()), &mut line).unwrap();
    let login_url = line.trim().strip_prefix("listening ").expect("the app prints its URL").to_string();
    server.edit("application.yaml", &example.replace("https://app.acme.example/inbound-login", &login_url)).await;

    let mut agent = Agent::new();
    let (code_challenge, verifier) = pkce();
    let url = authorize_url(
        &server,
        &server.client_id("billing-cli"),
        "openid billing:read billing:refund",
        &code_challenge,
        "",
    );
    let login = agent.get(&url).await;
    let to_app = agent
        .post(
            &server.url("/login"),
            &[
                ("request_id", &login.field("request_id")),
                ("csrf", &login.field("csrf")),
                ("provider", "default/acme-accounts"),
            ],
        )
        .await;
    let form = agent.get(to_app.location.as_deref().unwrap()).await;
    assert!(form.body.contains("Sign in to Acme"), "{}", form.body);
    let wrong = agent
        .post(
            &login_url,
            &[("login_challenge", &form.field("login_challenge")), ("username", "dana"), ("password", "x")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let back = agent
        .post(
            &login_url,
            &[("login_challenge", &form.field("login_challenge")), ("username", "dana"), ("password", "wonderland")],
        )
        .await;
    assert_eq!(back.status, 303, "{}", back.body);
    let consent = agent.get(back.location.as_deref().unwrap()).await;
    assert!(consent.body.contains("dana@acme.example") && consent.body.contains("Acme accounts"), "{}", consent.body);
    let done = agent.approve(&server.base, &consent, &["billing:refund"]).await;
    let tokens =
        exchange(&server, &server.client_id("billing-cli"), &done.redirect_param("code").unwrap(), &verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert!(tokens.json["scope"].as_str().unwrap().contains("billing:refund"), "the app's role: {}", tokens.json);
    let _ = app.kill();
    let _ = app.wait();
    server.running.stop().await;
}
