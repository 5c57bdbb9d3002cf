//! Self-registration over real HTTP: Dynamic Client Registration (RFC 7591) and management
//! (RFC 7592), the policy's rules, dedupe, limits, reaping, Client ID Metadata Documents
//! with the SSRF guard, resource indicators, and the metadata that advertises them.

use std::{path::Path, time::Duration};

use oauth2::reqwest;
use serde_json::{Value, json};

use crate::support::flows::{MCP_RESOURCE, authorize_and_exchange, registration_policy, server_with_registration};
use crate::support::server::{QUICKSTART, Reply, TestServer, form, reply};
use crate::support::user_agent::Agent;

async fn register(server: &TestServer, body: &Value) -> Reply {
    let response = server
        .http
        .post(server.url("/register"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    reply(response).await
}

async fn manage(server: &TestServer, method: reqwest::Method, uri: &str, token: &str, body: Option<&Value>) -> Reply {
    let mut request = server.http.request(method, uri).bearer_auth(token);
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    reply(request.send().await.unwrap()).await
}

fn mcp_client(name: &str) -> Value {
    json!({
        "client_name": name,
        "redirect_uris": ["http://127.0.0.1:49152/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": "billing:read billing:refund",
    })
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn registration_is_advertised_only_when_enabled() {
    let plain = crate::support::server::start_server(QUICKSTART).await;
    let metadata = plain.get("/.well-known/oauth-authorization-server").await.json;
    assert!(metadata.get("registration_endpoint").is_none(), "{metadata}");
    let refused = register(&plain, &mcp_client("x")).await;
    assert_eq!(refused.status, 404);

    let server = server_with_registration(MCP_RESOURCE, "").await;
    for path in ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"] {
        let metadata = server.get(path).await.json;
        assert_eq!(metadata["registration_endpoint"], format!("{}/register", server.base), "{path}");
        assert_eq!(metadata["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(metadata["authorization_response_iss_parameter_supported"], true);
        assert!(metadata["token_endpoint_auth_methods_supported"].as_array().unwrap().contains(&json!("none")));
        assert!(metadata.get("client_id_metadata_document_supported").is_none(), "CIMD not enabled here");
        // What self-registered clients may ask for is advertised; other permissions are not.
        assert_eq!(
            metadata["scopes_supported"],
            json!(["openid", "offline_access", "billing:read", "billing:refund", "email", "profile"]),
            "{path}"
        );
    }
}

#[tokio::test]
async fn register_authorize_and_manage_a_public_mcp_client() {
    let server = server_with_registration(MCP_RESOURCE, "").await;
    let created = register(&server, &mcp_client("Claude")).await;
    assert_eq!(created.status, 201, "{}", created.json);
    assert_eq!(created.headers["cache-control"], "no-store");
    let client_id = created.json["client_id"].as_str().unwrap().to_string();
    assert!(created.json.get("client_secret").is_none(), "a public client gets no secret");
    let token = created.json["registration_access_token"].as_str().unwrap().to_string();
    let uri = created.json["registration_client_uri"].as_str().unwrap().to_string();
    assert_eq!(uri, format!("{}/register/{client_id}", server.base));
    assert_eq!(created.json["client_name"], "Claude");

    assert_eq!(manage(&server, reqwest::Method::GET, &uri, &token, None).await.status, 200);

    // Identical public registration: the same client, shared from now on. Nobody manages a
    // shared client: no token for the second registrant, and the first one's stops working
    // (it could rename the client, change its redirect URIs or delete everyone's consents).
    let again = register(&server, &mcp_client("Claude")).await;
    assert_eq!(again.status, 201, "{}", again.json);
    assert_eq!(again.json["client_id"], client_id.as_str());
    assert!(again.json.get("registration_access_token").is_none(), "{}", again.json);
    assert_eq!(manage(&server, reqwest::Method::GET, &uri, &token, None).await.status, 401, "shared: unmanaged");
    // Different metadata: a different client, managed by its registrant (RFC 7592 below).
    let other = register(&server, &mcp_client("Cursor")).await;
    assert_ne!(other.json["client_id"], client_id.as_str());
    let other_id = other.json["client_id"].as_str().unwrap().to_string();
    let other_token = other.json["registration_access_token"].as_str().unwrap().to_string();
    let other_uri = other.json["registration_client_uri"].as_str().unwrap().to_string();

    // The user flow with `resource`: the token's audience is exactly the resource, the
    // mandatory scope is always part of it.
    let tokens = authorize_and_exchange(&server, &client_id, "billing:refund", MCP_RESOURCE, &["billing:refund"]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    let access = claims(tokens.json["access_token"].as_str().unwrap());
    assert_eq!(access["aud"], MCP_RESOURCE);
    // The resource as some MCP clients spell it (host case): the same resource, carried in
    // its declared spelling.
    let shouted = authorize_and_exchange(&server, &client_id, "billing:read", "https://MCP.Example.com/mcp", &[]).await;
    assert_eq!(shouted.status, 200, "{}", shouted.json);
    assert_eq!(claims(shouted.json["access_token"].as_str().unwrap())["aud"], MCP_RESOURCE);
    let scopes: Vec<&str> = access["scope"].as_str().unwrap().split(' ').collect();
    assert!(scopes.contains(&"billing:read") && scopes.contains(&"billing:refund"), "{access}");
    // Refresh keeps the audience; a resource outside the grant is invalid_target.
    let refresh = tokens.json["refresh_token"].as_str().unwrap();
    let refreshed = server
        .post(
            "/token",
            None,
            &form(&[("grant_type", "refresh_token"), ("client_id", &client_id), ("refresh_token", refresh)]),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.json);
    assert_eq!(claims(refreshed.json["access_token"].as_str().unwrap())["aud"], MCP_RESOURCE);
    let next = refreshed.json["refresh_token"].as_str().unwrap();
    let wrong = server
        .post(
            "/token",
            None,
            &form(&[
                ("grant_type", "refresh_token"),
                ("client_id", &client_id),
                ("refresh_token", next),
                ("resource", "https://other.example.com"),
            ]),
        )
        .await;
    wrong.assert_error(400, "invalid_target");

    // RFC 7592: read, update, delete with the registration access token.
    let (client_id, token, uri) = (other_id, other_token, other_uri);
    let tokens = authorize_and_exchange(&server, &client_id, "billing:read", MCP_RESOURCE, &[]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    let read = manage(&server, reqwest::Method::GET, &uri, &token, None).await;
    assert_eq!(read.status, 200, "{}", read.json);
    assert_eq!(read.json["client_id"], client_id.as_str());
    assert!(read.json.get("registration_access_token").is_none());
    let wrong_token = manage(&server, reqwest::Method::GET, &uri, "not-the-token", None).await;
    assert_eq!(wrong_token.status, 401);
    assert_eq!(wrong_token.json["error"], "invalid_token");
    let mut update = mcp_client("Cursor (renamed)");
    update["client_id"] = json!(client_id);
    let updated = manage(&server, reqwest::Method::PUT, &uri, &token, Some(&update)).await;
    assert_eq!(updated.status, 200, "{}", updated.json);
    assert_eq!(updated.json["client_name"], "Cursor (renamed)");
    let mut bad = update.clone();
    bad["redirect_uris"] = json!(["https://evil.com/cb"]);
    let refused = manage(&server, reqwest::Method::PUT, &uri, &token, Some(&bad)).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json["error"], "invalid_redirect_uri");
    let deleted = manage(&server, reqwest::Method::DELETE, &uri, &token, None).await;
    assert_eq!(deleted.status, 204);
    // Gone: management answers 401, tokens are refused, the MCP client must re-register.
    assert_eq!(manage(&server, reqwest::Method::GET, &uri, &token, None).await.status, 401);
    let after = server
        .post(
            "/token",
            None,
            &form(&[
                ("grant_type", "refresh_token"),
                ("client_id", &client_id),
                ("refresh_token", tokens.json["refresh_token"].as_str().unwrap()),
            ]),
        )
        .await;
    after.assert_error(401, "invalid_client");
    let introspected = server.introspect("mcp/mcp-server", tokens.json["access_token"].as_str().unwrap()).await;
    assert_eq!(introspected, json!({"active": false}));
}

#[tokio::test]
async fn registration_errors_follow_rfc_7591() {
    let server = server_with_registration(MCP_RESOURCE, "").await;
    let cases = [
        (
            json!({"redirect_uris": ["https://evil.example.org/cb"], "token_endpoint_auth_method": "none"}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": ["https://app.example.com/oauth/cb#frag"]}), "invalid_redirect_uri"),
        (json!({"token_endpoint_auth_method": "none"}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["https://app.example.com/oauth/cb"], "scope": "billing:read admin"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://app.example.com/oauth/cb"], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://app.example.com/oauth/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (json!({"redirect_uris": "https://app.example.com/oauth/cb"}), "invalid_client_metadata"),
    ];
    for (body, code) in cases {
        let r = register(&server, &body).await;
        assert_eq!((r.status, r.json["error"].as_str()), (400, Some(code)), "{body}: {}", r.json);
        assert!(r.json["error_description"].as_str().is_some_and(|d| !d.is_empty()));
    }
    // Not JSON / wrong media type.
    let r = reply(
        server
            .http
            .post(server.url("/register"))
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, r.json["error"].as_str()), (400, Some("invalid_client_metadata")));
    let r = reply(
        server
            .http
            .post(server.url("/register"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("a=b")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 400);

    // A confidential registration gets a secret, once, which works at the token endpoint.
    let confidential = register(
        &server,
        &json!({"client_name": "Web", "redirect_uris": ["https://app.example.com/oauth/cb"], "scope": "billing:read"}),
    )
    .await;
    assert_eq!(confidential.status, 201, "{}", confidential.json);
    assert_eq!(confidential.json["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(confidential.json["client_secret_expires_at"], 0);
    let (id, secret) =
        (confidential.json["client_id"].as_str().unwrap(), confidential.json["client_secret"].as_str().unwrap());
    // Authenticated but not allowed client_credentials: unauthorized_client, not invalid_client.
    let r = server.post("/token", Some((id, secret)), "grant_type=client_credentials").await;
    r.assert_error(400, "unauthorized_client");
    let r = server.post("/token", Some((id, "wrong")), "grant_type=client_credentials").await;
    r.assert_error(401, "invalid_client");
    // Anyone can register a confidential client: it is never trusted to read other
    // clients' tokens through introspection (RFC 7662 §4: active:false, nothing else).
    let others = server.token("billing-agent", "").await.json["access_token"].as_str().unwrap().to_string();
    let r = server.post("/introspect", Some((id, secret)), &form(&[("token", &others)])).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json, json!({"active": false}), "a self-registered client read another client's token");
    let read = manage(
        &server,
        reqwest::Method::GET,
        confidential.json["registration_client_uri"].as_str().unwrap(),
        confidential.json["registration_access_token"].as_str().unwrap(),
        None,
    )
    .await;
    assert!(read.json.get("client_secret").is_none(), "the secret is returned once only");
}

#[tokio::test]
async fn registration_limits_and_reaping() {
    let extra = "    limits: {maxClients: 3, perSourcePerHour: 2, totalPerHour: 100}\n    reapAfter: 2s\n";
    let server = server_with_registration(MCP_RESOURCE, extra).await;
    assert_eq!(register(&server, &mcp_client("one")).await.status, 201);
    assert_eq!(register(&server, &mcp_client("two")).await.status, 201);
    // Dedupe hits do not count against the rate.
    assert_eq!(register(&server, &mcp_client("one")).await.status, 201);
    let limited = register(&server, &mcp_client("three")).await;
    assert_eq!(limited.status, 429, "{}", limited.json);
    assert_eq!(limited.headers["retry-after"], "3600");
    assert!(limited.json["error_description"].as_str().unwrap().contains("this address"));

    // Unused clients are reaped (with their consents and tokens) and get invalid_client.
    let created = register(&server, &mcp_client("one")).await;
    let client_id = created.json["client_id"].as_str().unwrap().to_string();
    let mut gone = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if server.store().await.registered_client(&client_id).await.unwrap().is_none() {
            gone = true;
            break;
        }
    }
    assert!(gone, "client not reaped");
    let r = server
        .post(
            "/token",
            None,
            &form(&[("grant_type", "refresh_token"), ("client_id", &client_id), ("refresh_token", "x")]),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r2 = server
        .post(
            "/token",
            None,
            &form(&[("grant_type", "refresh_token"), ("client_id", &client_id), ("refresh_token", "x")]),
        )
        .await;
    assert!(r.status == 401 || r2.status == 401, "{} {}", r.json, r2.json);
    r2.assert_error(401, "invalid_client");
    // Room again after reaping: the count limit is about live clients.
    assert!(server.store().await.registered_clients().await.unwrap().len() <= 3);
}

#[tokio::test]
async fn authorize_refuses_resources_the_client_may_not_use() {
    let server = server_with_registration(MCP_RESOURCE, "").await;
    let created = register(&server, &mcp_client("Claude")).await;
    let client_id = created.json["client_id"].as_str().unwrap();
    let url = format!(
        "{}/authorize?{}",
        server.base,
        form(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", "http://127.0.0.1:50000/callback"),
            ("state", "s"),
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "S256"),
            ("resource", "https://other.example.com"),
        ])
    );
    // A self-registered client's errors before login are shown on a page, not redirected
    // (its redirect URI is only pattern-approved: RFC 9700 §4.11.2).
    let page = Agent::new().get(&url).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.location.is_none());
    assert!(page.body.contains("invalid_target"), "{}", page.body);
    let silent = url.replace("resource=https%3A%2F%2Fother.example.com", "prompt=none");
    let page = Agent::new().get(&silent).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.location.is_none() && page.body.contains("login_required"), "{}", page.body);
    // An unregistered redirect URI is never redirected to.
    let evil = url.replace("127.0.0.1%3A50000%2Fcallback", "evil.example.com%2Fcb");
    let page = Agent::new().get(&evil.replace("resource=https%3A%2F%2Fother.example.com", "")).await;
    assert_eq!(page.status, 400);
    assert!(page.location.is_none());
}

fn inbound_clients(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    crate::support::server::inbound_command("clients", data_dir, args)
}

/// examples/mcp as the README runs it, and `inbound clients` on its store.
#[tokio::test]
async fn mcp_example_registration_and_the_clients_command() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/mcp");
    let server = crate::support::server::start_server(example).await;
    let metadata = server.get("/.well-known/oauth-authorization-server").await.json;
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    for name in ["Claude Desktop", "Cursor"] {
        let r = register(
            &server,
            &json!({"client_name": name, "redirect_uris": ["http://127.0.0.1:6274/callback"], "token_endpoint_auth_method": "none", "scope": "mcp:tools"}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.json);
    }
    let (ok, stdout, stderr) = inbound_clients(&server.data_dir, &["list", "--output", "json"]);
    assert!(ok, "{stderr}");
    let all: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2, "{stdout}");
    assert!(!stdout.contains("registration_token") && !stdout.contains("secret_hash"));
    let (ok, stdout, _) = inbound_clients(&server.data_dir, &["list", "--name-contains", "CURSOR"]);
    assert!(ok && stdout.contains("Cursor") && !stdout.contains("Claude"), "{stdout}");
    let (ok, stdout, _) = inbound_clients(&server.data_dir, &["list", "--output", "json", "--created-before", "1d"]);
    assert!(ok);
    assert_eq!(stdout.trim(), "[]", "nothing is older than a day");

    // Deleting needs a filter; --dry-run deletes nothing.
    let (ok, _, stderr) = inbound_clients(&server.data_dir, &["delete"]);
    assert!(!ok && stderr.contains("at least one filter"), "{stderr}");
    let (ok, stdout, _) = inbound_clients(&server.data_dir, &["delete", "--name-matches", "cur*", "--dry-run"]);
    assert!(ok && stdout.contains("would delete"), "{stdout}");
    assert_eq!(server.store().await.registered_clients().await.unwrap().len(), 2);
    let (ok, stdout, stderr) = inbound_clients(&server.data_dir, &["delete", "--name-matches", "cur*"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("deleted "), "{stdout}");
    let left = server.store().await.registered_clients().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].metadata["client_name"], "Claude Desktop");
    let (ok, _, stderr) = inbound_clients(&server.data_dir, &["list", "--created-after", "yesterday"]);
    assert!(!ok && stderr.contains("is not a time"), "{stderr}");
}

/// One listing (README "Clients"): the folder's declared apps beside the self-registered
/// clients, filtered by kind, tag and grant type; tags added and removed in bulk.
#[tokio::test]
async fn one_listing_of_declared_and_registered_clients_by_tag_and_grant_type() {
    let server = server_with_registration(MCP_RESOURCE, "").await;
    for name in ["Claude Desktop", "Claude Code", "Cursor"] {
        let body = json!({"client_name": name, "redirect_uris": ["http://127.0.0.1:6274/callback"],
            "token_endpoint_auth_method": "none", "scope": "billing:read"});
        assert_eq!(register(&server, &body).await.status, 201);
    }
    let config = server.config_dir.to_str().unwrap().to_string();
    let list = |args: &[&str]| -> Vec<Value> {
        let all = [&["list", "--output", "json", "--config", &config][..], args].concat();
        let (ok, stdout, stderr) = inbound_clients(&server.data_dir, &all);
        assert!(ok, "{stderr}");
        serde_json::from_str(&stdout).unwrap()
    };
    let ids = |listed: &[Value]| -> Vec<String> {
        listed.iter().map(|c| c["client_id"].as_str().unwrap().to_string()).collect()
    };

    let all = list(&[]);
    assert_eq!(all.len(), 6 + 3, "the quickstart's five apps, the MCP server's, three registrations");
    let agent = all.iter().find(|c| c["app"] == "default/billing-agent").expect("declared apps are listed");
    assert_eq!(agent["client_id"], server.client_id("billing-agent").as_str(), "the id the server uses");
    assert_eq!((agent["kind"].as_str(), agent["tags"].clone()), (Some("declared"), json!(["agent", "billing"])));
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains("secret_hash") && !text.contains("registration_token"), "{text}");
    let declared = list(&["--kind", "declared"]);
    assert!(declared.len() == 6 && declared.iter().all(|c| c["kind"] == "declared"), "{declared:?}");
    let machines = list(&["--grant-type", "client_credentials"]);
    let mut names: Vec<&str> = machines.iter().map(|c| c["app"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["default/billing-agent", "default/reporting-job"]);
    assert_eq!(ids(&list(&["--tag", "billing", "--tag", "agent"])), [server.client_id("billing-agent")]);

    // Tags on self-registered clients, in bulk; a filter is required, declared apps untouched.
    let (ok, _, stderr) = inbound_clients(&server.data_dir, &["tag", "--add", "ai"]);
    assert!(!ok && stderr.contains("at least one filter"), "{stderr}");
    let (ok, _, stderr) =
        inbound_clients(&server.data_dir, &["tag", "--add", "no spaces", "--name-contains", "claude"]);
    assert!(!ok && stderr.contains("letters, digits"), "{stderr}");
    let (ok, stdout, _) =
        inbound_clients(&server.data_dir, &["tag", "--add", "ai,anthropic", "--name-contains", "claude", "--dry-run"]);
    assert!(ok && stdout.matches("would tag").count() == 2, "{stdout}");
    assert!(list(&["--tag", "ai"]).is_empty(), "a dry run changes nothing");
    let (ok, stdout, stderr) =
        inbound_clients(&server.data_dir, &["tag", "--add", "ai,anthropic", "--name-contains", "claude"]);
    assert!(ok && stdout.matches("tagged ").count() == 2, "{stdout}{stderr}");
    let (ok, _, _) =
        inbound_clients(&server.data_dir, &["tag", "--add", "ai", "--remove", "anthropic", "--name", "Claude Code"]);
    assert!(ok);
    let ai = list(&["--tag", "ai", "--kind", "registered"]);
    let mut named: Vec<(&str, Value)> =
        ai.iter().map(|c| (c["client_name"].as_str().unwrap(), c["tags"].clone())).collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(named, [("Claude Code", json!(["ai"])), ("Claude Desktop", json!(["ai", "anthropic"]))]);
    assert_eq!(list(&["--tag", "anthropic"]).len(), 1);
    assert!(list(&["--tag", "ai", "--kind", "declared"]).is_empty());
    // Without --config, the store's clients only.
    let (ok, stdout, _) = inbound_clients(&server.data_dir, &["list", "--output", "json"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<Vec<Value>>(&stdout).unwrap().len(), 3);
    let (ok, table, _) = inbound_clients(&server.data_dir, &["list", "--config", &config, "--tag", "ai"]);
    assert!(
        ok && table.starts_with("CLIENT ID") && table.contains("KIND") && table.contains("ai,anthropic"),
        "{table}"
    );
}

#[test]
fn resource_metadata_command_emits_rfc_9728_documents() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_inbound"))
        .args(["resource-metadata", "examples/mcp", "--issuer", "https://auth.example.com/"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        all["http://127.0.0.1:3000/mcp"],
        json!({
            "resource": "http://127.0.0.1:3000/mcp",
            "authorization_servers": ["https://auth.example.com"],
            "scopes_supported": ["mcp:tools", "mcp:write"],
            "bearer_methods_supported": ["header"],
        })
    );
}

#[tokio::test]
async fn an_issuer_with_a_path_serves_metadata_at_the_path_suffixed_locations() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config");
    crate::support::server::copy_dir(Path::new(QUICKSTART), &config);
    let server =
        crate::support::server::start_on(&config, &tmp.path().join("data"), Some("https://auth.example.com/tenant-a"))
            .await;
    for path in [
        "/.well-known/oauth-authorization-server/tenant-a",
        "/.well-known/openid-configuration/tenant-a",
        "/tenant-a/.well-known/openid-configuration",
        "/.well-known/openid-configuration",
    ] {
        let r = server.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.json["issuer"], "https://auth.example.com/tenant-a", "{path}");
    }
}

/// Behind a trusted proxy, per-source limits apply to the client named by X-Forwarded-For
/// (right-most untrusted address); from anywhere else the header is ignored.
#[tokio::test]
async fn per_source_limits_follow_x_forwarded_for_only_from_trusted_proxies() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config");
    crate::support::server::copy_dir(Path::new(QUICKSTART), &config);
    let extra = "    limits: {perSourcePerHour: 1}\n";
    std::fs::write(config.join("registration.yaml"), registration_policy(MCP_RESOURCE, extra)).unwrap();
    let start = |trusted: &str| {
        let data_dir = tmp.path().join(format!("data-{}", trusted.len()));
        let mut options = crate::support::server::serve_options(&config, &data_dir);
        options.trusted_proxies = if trusted.is_empty() { vec![] } else { vec![trusted.parse().unwrap()] };
        async move { inbound::runtime::serve::start(options).await.map(|started| started.running) }
    };
    let http = reqwest::Client::new();
    let register_from = |base: String, forwarded: &'static str, name: &'static str| {
        let request = http
            .post(format!("{base}/register"))
            .header("content-type", "application/json")
            .header("x-forwarded-for", forwarded)
            .body(mcp_client(name).to_string());
        async move { request.send().await.unwrap().status().as_u16() }
    };

    // Loopback is the trusted proxy: two different clients behind it each get their own limit.
    let proxied = start("127.0.0.0/8").await.unwrap();
    let base = format!("http://{}", proxied.addr);
    assert_eq!(register_from(base.clone(), "198.51.100.1", "a").await, 201);
    assert_eq!(register_from(base.clone(), "203.0.113.9, 198.51.100.2", "b").await, 201);
    assert_eq!(register_from(base.clone(), "198.51.100.1", "c").await, 429, "same client again");
    assert_eq!(
        register_from(base.clone(), "6.6.6.6, 198.51.100.1", "d").await,
        429,
        "a forged left part changes nothing"
    );
    proxied.stop().await;

    // No trusted proxy: the header is the client's word and is ignored.
    let direct = start("").await.unwrap();
    let base = format!("http://{}", direct.addr);
    assert_eq!(register_from(base.clone(), "198.51.100.1", "a").await, 201);
    assert_eq!(register_from(base.clone(), "198.51.100.2", "b").await, 429);
    direct.stop().await;
}

/// The consent page tells the user a self-registered client is unverified and does not show
/// the logo it sent.
#[tokio::test]
async fn consent_page_marks_self_registered_clients_and_hides_their_logo() {
    let server = server_with_registration(MCP_RESOURCE, "").await;
    let mut body = mcp_client("Totally Official Bank");
    body["logo_uri"] = json!("https://bank-logos.example.net/official.png");
    let created = register(&server, &body).await;
    assert_eq!(created.status, 201, "{}", created.json);
    let client_id = created.json["client_id"].as_str().unwrap();
    let url = format!(
        "{}/authorize?{}",
        server.base,
        form(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", "http://127.0.0.1:50000/callback"),
            ("scope", "billing:read"),
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "S256"),
        ])
    );
    let mut agent = Agent::new();
    let login = agent.get(&url).await;
    let consent = agent.login(&server.base, &login, "alice", "wonderland").await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Totally Official Bank"));
    assert!(consent.body.contains("registered itself; not verified by this site"), "{}", consent.body);
    assert!(!consent.body.contains("bank-logos.example.net"), "an unverified client's logo is shown");
    // Who it is and where it sends the user: its client id and redirect hosts, and a warning
    // that an app returning only to this computer must be one the user started.
    assert!(consent.body.contains(&format!("<code id=\"app-client-id\">{client_id}</code>")), "{}", consent.body);
    assert!(consent.body.contains("<span id=\"app-redirect-hosts\">127.0.0.1</span>"), "{}", consent.body);
    assert!(consent.body.contains("id=\"app-local-only\""), "{}", consent.body);
}
