//! Introspection (RFC 7662) and revocation (RFC 7009).

use std::time::{Duration, Instant};

use crate::support::server::{QUICKSTART, TestServer, form, start_replica, start_server, start_server_with};

#[tokio::test]
async fn introspection_requires_client_auth_and_hides_inactive_tokens() {
    let server = start_server(QUICKSTART).await;
    let token = server.token("billing-agent", "").await.json["access_token"].as_str().unwrap().to_string();
    let (id, secret) = server.creds("billing-agent");

    server.post("/introspect", None, &form(&[("token", &token)])).await.assert_error(401, "invalid_client");
    server
        .post("/introspect", Some((&id, "wrong")), &form(&[("token", &token)]))
        .await
        .assert_error(401, "invalid_client");
    server.post("/introspect", Some((&id, &secret)), "").await.assert_error(400, "invalid_request");

    // The resource server of the token's audience may introspect (RFC 7662 §2.1)...
    let info = server.introspect("billing-api", &token).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["client_id"], id.as_str());
    assert_eq!(info["client_namespace"], "default");
    assert_eq!(info["tenant"], "acme");
    assert_eq!(info["token_type"], "Bearer");
    // ...and the token's own client; any other confidential client learns nothing (§4).
    assert_eq!(server.introspect("billing-agent", &token).await["active"], true);
    assert_eq!(
        server.introspect("reporting-job", &token).await,
        serde_json::json!({"active": false}),
        "a client that serves no resource of the token read its claims"
    );

    for bad in ["garbage", "a.b.c", &format!("{token}x"), &"x".repeat(2000)] {
        let info = server.introspect("billing-agent", bad).await;
        assert_eq!(info, serde_json::json!({"active": false}), "{bad}");
    }
    server.running.stop().await;
}

#[tokio::test]
async fn revocation_of_jwt_and_opaque_tokens() {
    let server = start_server(QUICKSTART).await;
    let jwt = server.token("billing-agent", "").await.json["access_token"].as_str().unwrap().to_string();
    let (id, secret) = server.creds("billing-agent");
    let (rid, rsecret) = server.creds("reporting-job");
    let opaque = opaque_token(&server).await;

    // Only the client a token was issued to may revoke it.
    let other =
        server.post("/revoke", None, &form(&[("token", &jwt), ("client_id", &rid), ("client_secret", &rsecret)])).await;
    other.assert_error(400, "unauthorized_client");
    assert_eq!(server.introspect("billing-agent", &jwt).await["active"], true);

    let revoked = server
        .post("/revoke", Some((&id, &secret)), &form(&[("token", &jwt), ("token_type_hint", "access_token")]))
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(revoked.headers["cache-control"], "no-store");
    assert_eq!(server.introspect("billing-agent", &jwt).await["active"], false);

    // Introspected first, so that the answer after revocation comes from the memo of
    // known tokens: revocation must still win.
    assert_eq!(server.introspect("reporting-job", &opaque).await["active"], true);
    let revoked = server
        .post("/revoke", None, &form(&[("token", &opaque), ("client_id", &rid), ("client_secret", &rsecret)]))
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(server.introspect("reporting-job", &opaque).await["active"], false);

    // Unknown tokens: nothing to do, still 200 (RFC 7009 §2.2). Unauthenticated: 401.
    assert_eq!(server.post("/revoke", Some((&id, &secret)), "token=nonsense").await.status, 200);
    server.post("/revoke", None, "token=nonsense").await.assert_error(401, "invalid_client");
    server.post("/revoke", Some((&id, &secret)), "").await.assert_error(400, "invalid_request");
    server.running.stop().await;
}

/// Two replicas on one PostgreSQL. Each memoizes the tokens it has introspected; a
/// revocation at one is honoured at once there, and at the other within one maintenance
/// pass (the documented propagation time), for JWTs and opaque tokens alike.
#[tokio::test]
async fn revocation_reaches_every_replica_within_one_maintenance_pass() {
    const PASS: Duration = Duration::from_secs(1);
    let pg = crate::support::postgres::Postgres::start();
    let one = start_server_with(QUICKSTART, Some(pg.url()), PASS, |_| {}).await;
    let two = start_replica(&one).await;
    let jwt = one.token("billing-agent", "").await.json["access_token"].as_str().unwrap().to_string();
    let opaque = opaque_token(&one).await;
    // Memoized at both replicas, by being introspected there.
    for server in [&one, &two] {
        let info = server.introspect("billing-agent", &jwt).await;
        assert_eq!(info["active"], true, "{} {info}", server.base);
        let info = server.introspect("reporting-job", &opaque).await;
        assert_eq!(info["active"], true, "{info}");
        assert_eq!(info["client_id"], one.creds("reporting-job").0.as_str());
        assert!(info["exp"].as_i64().unwrap() > info["iat"].as_i64().unwrap(), "{info}");
    }
    let (id, secret) = one.creds("billing-agent");
    let (rid, rsecret) = one.creds("reporting-job");
    assert_eq!(one.post("/revoke", Some((&id, &secret)), &form(&[("token", &jwt)])).await.status, 200);
    let revoked =
        one.post("/revoke", None, &form(&[("token", &opaque), ("client_id", &rid), ("client_secret", &rsecret)])).await;
    assert_eq!(revoked.status, 200, "{}", revoked.json);
    assert_eq!(one.introspect("billing-agent", &jwt).await["active"], false);
    assert_eq!(one.introspect("reporting-job", &opaque).await["active"], false);
    // The second replica's pass runs every 5 s (start_replica): it must have caught up
    // within one pass, plus slack for a loaded machine.
    let revoked_at = Instant::now();
    loop {
        let jwt_active = two.introspect("billing-agent", &jwt).await["active"] == true;
        let opaque_active = two.introspect("reporting-job", &opaque).await["active"] == true;
        if !jwt_active && !opaque_active {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5) + Duration::from_secs(3),
            "still active at the other replica after a maintenance pass (jwt {jwt_active}, opaque {opaque_active})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    two.running.stop().await;
    one.running.stop().await;
}

async fn opaque_token(server: &TestServer) -> String {
    let (id, secret) = server.creds("reporting-job");
    let issued = server
        .post(
            "/token",
            None,
            &form(&[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret)]),
        )
        .await;
    assert_eq!(issued.status, 200, "{}", issued.json);
    let token = issued.json["access_token"].as_str().unwrap().to_string();
    assert_eq!(token.matches('.').count(), 0, "reporting-job's tokens are opaque");
    token
}
