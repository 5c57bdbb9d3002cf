//! Introspection (RFC 7662) and revocation (RFC 7009).

use crate::support::server::{QUICKSTART, form, start_server};

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
    let opaque = server
        .post(
            "/token",
            None,
            &form(&[("grant_type", "client_credentials"), ("client_id", &rid), ("client_secret", &rsecret)]),
        )
        .await
        .json["access_token"]
        .as_str()
        .unwrap()
        .to_string();

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

    let revoked = server
        .post("/revoke", None, &form(&[("token", &opaque), ("client_id", &rid), ("client_secret", &rsecret)]))
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(server.introspect("billing-agent", &opaque).await["active"], false);

    // Unknown tokens: nothing to do, still 200 (RFC 7009 §2.2). Unauthenticated: 401.
    assert_eq!(server.post("/revoke", Some((&id, &secret)), "token=nonsense").await.status, 200);
    server.post("/revoke", None, "token=nonsense").await.assert_error(401, "invalid_client");
    server.post("/revoke", Some((&id, &secret)), "").await.assert_error(400, "invalid_request");
    server.running.stop().await;
}
