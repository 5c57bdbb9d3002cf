//! Metadata, JWKS, health and metrics.

use crate::support::server::{QUICKSTART, start_server};

#[tokio::test]
async fn oidc_discovery_and_rfc8414_metadata_agree() {
    let server = start_server(QUICKSTART).await;
    let oidc = server.get("/.well-known/openid-configuration").await;
    let oauth = server.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(oidc.status, 200);
    assert_eq!(oidc.json, oauth.json);
    let m = &oidc.json;
    assert_eq!(m["issuer"], server.base.as_str());
    for (field, path) in [
        ("token_endpoint", "/token"),
        ("jwks_uri", "/jwks"),
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
        ("device_authorization_endpoint", "/device_authorization"),
        ("backchannel_authentication_endpoint", "/bc-authorize"),
    ] {
        assert_eq!(m[field], format!("{}{path}", server.base), "{field}");
    }
    assert_eq!(
        m["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:openid:params:grant-type:ciba"
        ])
    );
    assert_eq!(
        m["authorization_grant_profiles_supported"],
        serde_json::json!(["urn:ietf:params:oauth:grant-profile:id-jag"])
    );
    // Only the built-ins and the scopes marked `advertised`: the quickstart's permissions
    // (billing:*, reports:export) are not published.
    assert_eq!(m["scopes_supported"], serde_json::json!(["openid", "offline_access", "email", "profile"]));
    assert_eq!(m["authorization_endpoint"], format!("{}/authorize", server.base));
    assert_eq!(m["userinfo_endpoint"], format!("{}/userinfo", server.base));
    assert_eq!(m["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    assert_eq!(m["id_token_signing_alg_values_supported"], serde_json::json!(["RS256", "ES256"]));

    let jwks = server.get("/jwks").await;
    assert_eq!(jwks.headers["content-type"], "application/jwk-set+json");
    let keys = jwks.json["keys"].as_array().unwrap();
    let rsa = keys.iter().find(|k| k["kty"] == "RSA").expect("an RS256 key for ID tokens");
    assert_eq!(rsa["alg"], "RS256");
    let ec = keys.iter().find(|k| k["kty"] == "EC").expect("an ES256 key for access tokens");
    assert_eq!((ec["crv"].as_str(), ec["alg"].as_str()), (Some("P-256"), Some("ES256")));
    for key in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key.get(private).is_none(), "never the private part");
        }
    }
    server.running.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = start_server(QUICKSTART).await;
    assert_eq!(server.get("/healthz").await.status, 200);
    assert_eq!(server.get("/readyz").await.status, 200);
    server.token("billing-agent", "").await;
    server.post("/token", Some(("nobody", "x")), "grant_type=client_credentials").await;
    let text = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        text.contains(
            r#"inbound_oauth_requests_total{endpoint="token",grant_type="client_credentials",outcome="success"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"inbound_oauth_requests_total{endpoint="token",grant_type="client_credentials",outcome="invalid_client"} 1"#), "{text}");
    assert!(text.contains(r#"inbound_http_request_duration_seconds_count{endpoint="/token"} 2"#), "{text}");
    server.running.stop().await;
}
