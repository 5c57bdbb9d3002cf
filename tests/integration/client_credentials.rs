//! The client credentials grant, end to end, with the `oauth2` crate as the client.

use oauth2::{
    AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl, basic::BasicClient,
    basic::BasicErrorResponseType,
};

use crate::support::flows::verify_jwt;
use crate::support::server::{QUICKSTART, TestServer, form, start_server};

fn oauth2_client(
    server: &TestServer,
    app: &str,
    auth: AuthType,
) -> oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
> {
    let (id, secret) = server.creds(app);
    BasicClient::new(ClientId::new(id))
        .set_client_secret(ClientSecret::new(secret))
        .set_token_uri(TokenUrl::new(server.url("/token")).unwrap())
        .set_auth_type(auth)
}

#[tokio::test]
async fn basic_auth_gets_a_verifiable_rfc9068_jwt() {
    let server = start_server(QUICKSTART).await;
    let client = oauth2_client(&server, "billing-agent", AuthType::BasicAuth);
    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new("billing:read".into()))
        .request_async(&server.http)
        .await
        .expect("token issued");
    assert_eq!(token.scopes().unwrap()[0].as_str(), "billing:read");
    assert_eq!(token.expires_in().unwrap().as_secs(), 600, "app's accessTokenLifetime");
    let claims = verify_jwt(&server, token.access_token().secret(), "https://billing.example.com").await;
    let (client_id, _) = server.creds("billing-agent");
    assert_eq!(claims["sub"], client_id.as_str());
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(claims["scope"], "billing:read");
    assert_eq!(claims["tenant"], "acme", "the grant's only tenant is implied");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600);
    assert!(claims["jti"].as_str().unwrap().len() >= 16);
    server.running.stop().await;
}

#[tokio::test]
async fn no_scope_means_every_granted_scope_and_resource_sets_audience() {
    let server = start_server(QUICKSTART).await;
    let reply = server.token("billing-agent", "&resource=https%3A%2F%2Fbilling.example.com&tenant=acme").await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["scope"], "billing:read billing:refund");
    assert_eq!(reply.json["token_type"], "Bearer");
    assert_eq!(reply.headers["cache-control"], "no-store");
    let claims = verify_jwt(&server, reply.json["access_token"].as_str().unwrap(), "https://billing.example.com").await;
    assert_eq!(claims["aud"], "https://billing.example.com");
    server.running.stop().await;
}

#[tokio::test]
async fn post_auth_gets_an_opaque_token_readable_by_introspection() {
    let server = start_server(QUICKSTART).await;
    let client = oauth2_client(&server, "reporting-job", AuthType::RequestBody);
    let token = client.exchange_client_credentials().request_async(&server.http).await.expect("token issued");
    let access_token = token.access_token().secret();
    assert!(!access_token.contains('.'), "opaque, not a JWT");
    let info = server.introspect("reporting-job", access_token).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["scope"], "reports:export");
    assert_eq!(info["aud"], server.base.as_str(), "no resource granted: the default audience");
    server.running.stop().await;
}

#[tokio::test]
async fn oauth2_crate_sees_rfc_error_codes() {
    let server = start_server(QUICKSTART).await;
    // billing-agent is registered for client_secret_basic: the body method is refused.
    let client = oauth2_client(&server, "billing-agent", AuthType::RequestBody);
    match client.exchange_client_credentials().request_async(&server.http).await {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidClient)
        }
        other => panic!("expected invalid_client, got {other:?}"),
    }
    let client = oauth2_client(&server, "billing-agent", AuthType::BasicAuth);
    match client
        .exchange_client_credentials()
        .add_scope(Scope::new("reports:export".into()))
        .request_async(&server.http)
        .await
    {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidScope)
        }
        other => panic!("expected invalid_scope, got {other:?}"),
    }
    server.running.stop().await;
}

#[tokio::test]
async fn every_token_endpoint_error() {
    let server = start_server(QUICKSTART).await;
    let (id, secret) = server.creds("billing-agent");
    let basic = Some((id.as_str(), secret.as_str()));
    let cc = "grant_type=client_credentials";

    server.post("/token", basic, "").await.assert_error(400, "invalid_request");
    server.post("/token", basic, &format!("{cc}&{cc}")).await.assert_error(400, "invalid_request");
    server
        .post("/token", basic, &format!("{cc}&scope=billing:read&scope=billing:read"))
        .await
        .assert_error(400, "invalid_request");
    server
        .post("/token", basic, "grant_type=password&username=a&password=b")
        .await
        .assert_error(400, "unsupported_grant_type");
    server.post("/token", basic, &format!("{cc}&scope=billing:nope")).await.assert_error(400, "invalid_scope");
    server.post("/token", basic, &format!("{cc}&scope=reports:export")).await.assert_error(400, "invalid_scope");
    server.post("/token", basic, &format!("{cc}&scope=bad%22scope")).await.assert_error(400, "invalid_scope");
    server
        .post("/token", basic, &format!("{cc}&{}", form(&[("resource", "https://crm.example.com")])))
        .await
        .assert_error(400, "invalid_target");
    server.post("/token", basic, &format!("{cc}&tenant=globex")).await.assert_error(400, "invalid_request");

    // Client authentication failures: 401 with a challenge, one description for all.
    for reply in [
        server.post("/token", Some((&id, "wrong")), cc).await,
        server.post("/token", Some(("no-such-client", "x")), cc).await,
        server.post("/token", None, cc).await,
        server.post("/token", None, &format!("{cc}&client_id={id}&client_secret=wrong")).await,
    ] {
        reply.assert_error(401, "invalid_client");
        assert!(reply.headers["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    }
    let wrong = server.post("/token", Some((&id, "wrong")), cc).await;
    let unknown = server.post("/token", Some(("no-such-client", "x")), cc).await;
    assert_eq!(wrong.json["error_description"], unknown.json["error_description"], "no client enumeration");

    // Two authentication methods at once (RFC 6749 §2.3).
    server.post("/token", basic, &format!("{cc}&client_secret={secret}")).await.assert_error(400, "invalid_request");

    // Not a form.
    let reply = crate::support::server::reply(
        server
            .http
            .post(server.url("/token"))
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.assert_error(400, "invalid_request");
    server.running.stop().await;
}

#[tokio::test]
async fn oversized_requests_are_refused_and_garbage_never_breaks_the_server() {
    let server = start_server(QUICKSTART).await;
    let big_body = format!("grant_type=client_credentials&x={}", "a".repeat(100 * 1024));
    assert_eq!(server.post("/token", None, &big_body).await.status, 413);
    let response = server.http.get(server.url("/healthz")).header("x-big", "b".repeat(20 * 1024)).send().await;
    assert!(response.is_err() || response.unwrap().status().as_u16() == 431, "oversized header refused");

    let garbage: [&[u8]; 6] =
        [b"%%%", b"\xff\xfe\x00", b"grant_type", b"=&=&=", b"grant_type=client_credentials&resource=%ZZ", b"a=%00"];
    for body in garbage {
        let status = server
            .http
            .post(server.url("/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", "Basic !!")
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_client_error(), "{status}");
    }
    assert_eq!(server.get("/healthz").await.status, 200);
    server.running.stop().await;
}

/// A failed client authentication says the same whatever failed, so that it does not reveal
/// which client ids exist or how they authenticate.
#[tokio::test]
async fn client_authentication_failures_are_indistinguishable() {
    let server = start_server(QUICKSTART).await;
    let (id, secret) = server.creds("billing-agent");
    let body = |client_id: &str, client_secret: &str| {
        form(&[("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", client_secret)])
    };
    // A known client with the wrong method (it is registered for client_secret_basic), a
    // known client with a wrong secret, an unknown client.
    let wrong_method = server.post("/token", None, &body(&id, &secret)).await;
    let wrong_secret = server.post("/token", Some((&id, "not-the-secret")), &body_without_secret()).await;
    let unknown = server.post("/token", None, &body("no-such-client", "x")).await;
    for reply in [&wrong_method, &wrong_secret, &unknown] {
        reply.assert_error(401, "invalid_client");
    }
    assert_eq!(wrong_method.json, unknown.json, "the method a client uses is not revealed");
    assert_eq!(wrong_secret.json, unknown.json);
}

fn body_without_secret() -> String {
    form(&[("grant_type", "client_credentials")])
}

/// RFC 8707 resources as clients in the field send them: an origin with a trailing slash,
/// the host in another case. The token carries the declared spelling; another path is
/// another resource.
#[tokio::test]
async fn resources_match_in_any_host_case_and_with_an_origins_slash() {
    let server = start_server(QUICKSTART).await;
    for requested in ["https://billing.example.com/", "https://BILLING.example.com"] {
        let reply = server.token("billing-agent", &format!("&{}", form(&[("resource", requested)]))).await;
        assert_eq!(reply.status, 200, "{requested}: {}", reply.json);
        let claims =
            verify_jwt(&server, reply.json["access_token"].as_str().unwrap(), "https://billing.example.com").await;
        assert_eq!(claims["aud"], "https://billing.example.com", "the declared spelling");
    }
    let reply =
        server.token("billing-agent", &format!("&{}", form(&[("resource", "https://billing.example.com/v2")]))).await;
    reply.assert_error(400, "invalid_target");
}

/// `spec.clientId` in folder mode: the declared id is the client id (credentials folder,
/// tokens), claimed in the store so a restart keeps it and the app cannot silently change it.
#[tokio::test]
async fn a_declared_client_id_is_the_client_id_and_is_kept() {
    let declare = |dir: &std::path::Path, id: &str| {
        let path = dir.join("apps.yaml");
        let apps = std::fs::read_to_string(&path).unwrap();
        let declared = match apps.find("clientId: ") {
            // Already declared: replace the value.
            Some(at) => {
                let end = at + apps[at..].find('\n').unwrap();
                format!("{}clientId: {id}{}", &apps[..at], &apps[end..])
            }
            None => apps.replacen("spec:\n", &format!("spec:\n  clientId: {id}\n"), 1),
        };
        assert_ne!(declared, apps);
        std::fs::write(&path, declared).unwrap();
    };
    let server =
        crate::support::server::start_server_with(QUICKSTART, None, std::time::Duration::from_secs(5), |dir| {
            declare(dir, "acme-billing-agent")
        })
        .await;
    let (id, _) = server.creds("billing-agent");
    assert_eq!(id, "acme-billing-agent");
    let reply = server.token("billing-agent", "&scope=billing%3Aread").await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let claims = verify_jwt(&server, reply.json["access_token"].as_str().unwrap(), "https://billing.example.com").await;
    assert_eq!((claims["client_id"].as_str(), claims["sub"].as_str()), (Some(id.as_str()), Some(id.as_str())));
    let (config_dir, data_dir) = (server.config_dir.clone(), server.data_dir.clone());
    server.running.stop().await;

    // Restarted: the same id, the same secret.
    let again = crate::support::server::start_on(&config_dir, &data_dir, None).await;
    assert_eq!(again.token("billing-agent", "&scope=billing%3Aread").await.status, 200);
    again.running.stop().await;

    // Changed: refused, naming the id the app holds.
    declare(&config_dir, "acme-renamed");
    let refused = inbound::runtime::serve::start(crate::support::server::serve_options(&config_dir, &data_dir)).await;
    let error = format!("{:#}", refused.err().expect("a changed client id is refused"));
    assert!(error.contains("spec.clientId is immutable: this app holds client id acme-billing-agent"), "{error}");
}
