//! An MCP server protected by inbound, as the MCP authorization spec (2025-11-25) wants
//! it: a small streamable-HTTP MCP server using the project's resource-server layer
//! (`inbound::resource_server`), Client ID Metadata Documents served from loopback, and
//! the official MCP Python SDK as the client (tests/mcp/mcp_client.py).

use std::{path::PathBuf, process::Command, time::Duration};

use axum::{Extension, Json, Router, http::StatusCode, response::IntoResponse, routing::get};
use inbound::resource_server::{ProtectedResource, Refusal, TokenClaims};
use oauth2::reqwest;
use serde_json::{Value, json};

use crate::support::flows::{authorize_and_exchange, registration_policy};
use crate::support::server::{QUICKSTART, TestServer, reply, start_server_with};
use crate::support::user_agent::Agent;

/// A running MCP server on loopback.
pub struct McpServer {
    pub base: String,
    pub url: String,
}

impl McpServer {
    pub fn client_metadata_url(&self) -> String {
        format!("{}/client.json", self.base)
    }
}

/// Binds the MCP server's port first: the policy must name its URL as a resource.
pub async fn bind() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

pub fn serve_mcp(listener: tokio::net::TcpListener, base: &str, issuer: &str) -> McpServer {
    let url = format!("{base}/mcp");
    let resource = ProtectedResource::with_scopes(&url, issuer, &["billing:read", "billing:refund"]);
    let handler_resource = resource.clone();
    let metadata_url = format!("{base}/client.json");
    let document = json!({
        "client_id": metadata_url,
        "client_name": "Loopback MCP Client",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    // A document whose redirect URI no approved pattern allows.
    let unapproved = json!({
        "client_id": format!("{base}/unapproved-client.json"),
        "client_name": "Unapproved Redirects",
        "redirect_uris": ["https://evil.example.net/steal"],
    });
    let app = Router::new()
        .route(
            "/mcp",
            axum::routing::post(move |claims: Extension<TokenClaims>, body: Json<Value>| {
                let resource = handler_resource.clone();
                async move { mcp(&resource, &claims.0, body.0) }
            })
            .get(|| async { StatusCode::METHOD_NOT_ALLOWED }),
        )
        .layer(resource.clone().require(&["billing:read"]))
        .merge(resource.metadata_router())
        .route(
            "/client.json",
            get(move || {
                let document = document.clone();
                async move { ([("cache-control", "max-age=60")], Json(document)) }
            }),
        )
        .route(
            "/unapproved-client.json",
            get(move || {
                let document = unapproved.clone();
                async move { Json(document) }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    McpServer { base: base.to_string(), url }
}

/// JSON-RPC over streamable HTTP, answered with `application/json` (no SSE needed).
fn mcp(resource: &ProtectedResource, claims: &TokenClaims, body: Value) -> axum::response::Response {
    let Some(id) = body.get("id").cloned() else {
        return StatusCode::ACCEPTED.into_response(); // a notification
    };
    let method = body["method"].as_str().unwrap_or_default();
    let result = match method {
        "initialize" => json!({
            "protocolVersion": body["params"]["protocolVersion"].as_str().unwrap_or("2025-11-25"),
            "capabilities": { "tools": { "listChanged": false } },
            "serverInfo": { "name": "billing-mcp", "version": "1.0.0" },
        }),
        "ping" => json!({}),
        "tools/list" => json!({ "tools": [
            { "name": "list_invoices", "description": "List invoices", "inputSchema": { "type": "object", "properties": {} } },
            { "name": "refund", "description": "Refund an invoice (needs billing:refund)",
              "inputSchema": { "type": "object", "properties": { "invoice": { "type": "string" } } } },
        ]}),
        "tools/call" => match body["params"]["name"].as_str() {
            Some("list_invoices") => {
                json!({ "content": [{ "type": "text", "text": format!("3 invoices for {}", claims.sub) }] })
            }
            Some("refund") => {
                if !claims.scopes().any(|s| s == "billing:refund") {
                    // Step-up: the client must come back with billing:refund.
                    let mut wanted: Vec<String> = claims.scopes().map(str::to_string).collect();
                    wanted.push("billing:refund".into());
                    return resource.challenge(&Refusal::InsufficientScope(wanted), &["billing:refund".into()]);
                }
                json!({ "content": [{ "type": "text", "text": "refund issued" }] })
            }
            _ => {
                return Json(
                    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32602, "message": "unknown tool" } }),
                )
                .into_response();
            }
        },
        _ => {
            return Json(
                json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32601, "message": "method not found" } }),
            )
            .into_response();
        }
    };
    Json(json!({ "jsonrpc": "2.0", "id": id, "result": result })).into_response()
}

/// inbound with registration and metadata documents enabled for `mcp_url`.
pub async fn inbound_for(mcp_url: &str, allow_private: bool) -> TestServer {
    let extra = format!(
        "    clientIdMetadataDocuments: {{enabled: true, allowedDomains: ['127.0.0.1'], allowPrivateAddresses: {allow_private}}}\n"
    );
    let policy = registration_policy(mcp_url, &extra);
    start_server_with(QUICKSTART, None, Duration::from_secs(5), move |dir: &std::path::Path| {
        std::fs::write(dir.join("registration.yaml"), policy).unwrap();
    })
    .await
}

#[tokio::test]
async fn resource_server_layer_challenges_and_accepts() {
    let (listener, base) = bind().await;
    let server = inbound_for(&format!("{base}/mcp"), true).await;
    let mcp = serve_mcp(listener, &base, &server.base);
    let http = reqwest::Client::new();

    // RFC 9728 metadata at the path-suffixed well-known location.
    let metadata =
        reply(http.get(format!("{base}/.well-known/oauth-protected-resource/mcp")).send().await.unwrap()).await;
    assert_eq!(metadata.json["resource"], mcp.url.as_str());
    assert_eq!(metadata.json["authorization_servers"], json!([server.base]));

    // No token: 401 with resource_metadata and scope.
    let call = |token: Option<String>| {
        let mut request = http.post(&mcp.url).json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send()
    };
    let response = call(None).await.unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\", scope=\"billing:read\"")
    );

    // A token for another audience (the quickstart's billing API) is invalid here.
    let other = server.token("billing-agent", "&scope=billing%3Aread").await;
    let response = call(other.json["access_token"].as_str().map(str::to_string)).await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"].to_str().unwrap().contains("error=\"invalid_token\""));

    // A CIMD client (its metadata document on loopback, allowed by the policy) gets a token
    // for the MCP server through login and consent; the consent page shows its host.
    let client_id = mcp.client_metadata_url();
    let tokens = authorize_and_exchange(&server, &client_id, "billing:read", &mcp.url, &[]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    let access = tokens.json["access_token"].as_str().unwrap().to_string();
    let response = call(Some(access.clone())).await.unwrap();
    assert_eq!(response.status(), 200);
    // Recorded in the store like a registered client (listed, deletable, reaped).
    let recorded = server.store().await.registered_client(&client_id).await.unwrap().unwrap();
    assert_eq!(recorded.source, "127.0.0.1");
    assert_eq!(recorded.metadata["client_name"], "Loopback MCP Client");

    // Insufficient scope: 403 naming what to ask for (step-up).
    let refund = http
        .post(&mcp.url)
        .bearer_auth(&access)
        .json(
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "refund", "arguments": {}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refund.status(), 403);
    let challenge = refund.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
    assert!(challenge.contains("scope=\"billing:read billing:refund\""), "{challenge}");

    // Step-up: the new authorization asks only for the new scope; the token has the union.
    let mut agent = Agent::new();
    let verifier = "another-verifier-long-enough-for-pkce-0123456789abcdef";
    let challenge_s256 = inbound::oauth::pkce::challenge_s256(verifier);
    let url = format!(
        "{}/authorize?{}",
        server.base,
        crate::support::server::form(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", "http://127.0.0.1:50001/callback"),
            ("scope", "billing:read billing:refund"),
            ("state", "up"),
            ("code_challenge", &challenge_s256),
            ("code_challenge_method", "S256"),
            ("resource", &mcp.url),
        ])
    );
    let login = agent.get(&url).await;
    let consent = agent.login(&server.base, &login, "alice", "wonderland").await;
    assert_eq!(consent.status, 200, "consent asked again for the new scope");
    assert!(consent.body.contains("from 127.0.0.1"), "the consent page shows the client's host:\n{}", consent.body);
    assert!(
        consent.body.contains("already allowed") || consent.body.contains("You already allowed"),
        "{}",
        consent.body
    );
    let done = agent.approve(&server.base, &consent, &["billing:refund"]).await;
    let code = done.redirect_param("code").unwrap();
    let tokens = server
        .post(
            "/token",
            None,
            &crate::support::server::form(&[
                ("grant_type", "authorization_code"),
                ("client_id", &client_id),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:50001/callback"),
                ("code_verifier", verifier),
                ("resource", &mcp.url),
            ]),
        )
        .await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert_eq!(tokens.json["scope"], "billing:read billing:refund");
    let refund = http
        .post(&mcp.url)
        .bearer_auth(tokens.json["access_token"].as_str().unwrap())
        .json(
            &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "refund", "arguments": {}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refund.status(), 200);
}

/// RFC 9700 §4.11.2: a metadata document's redirect URIs must match the policy's approved
/// patterns, as a registration's must; otherwise the issuer would redirect anywhere.
#[tokio::test]
async fn metadata_document_redirect_uris_must_be_approved() {
    let (listener, base) = bind().await;
    let server = inbound_for(&format!("{base}/mcp"), true).await;
    let _mcp = serve_mcp(listener, &base, &server.base);
    let client_id = format!("{base}/unapproved-client.json");
    // Without PKCE, an error that would otherwise be redirected to the document's URI.
    let url = format!(
        "{}/authorize?{}",
        server.base,
        crate::support::server::form(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", "https://evil.example.net/steal"),
        ])
    );
    let page = Agent::new().get(&url).await;
    assert!(page.location.is_none(), "redirected to an unapproved URI: {:?}", page.location);
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("not an approved redirect URI"), "{}", page.body);
}

#[tokio::test]
async fn metadata_documents_on_private_addresses_are_refused_by_default() {
    let (listener, base) = bind().await;
    let server = inbound_for(&format!("{base}/mcp"), false).await;
    let mcp = serve_mcp(listener, &base, &server.base);
    let metadata = server.get("/.well-known/oauth-authorization-server").await.json;
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    let url = format!(
        "{}/authorize?{}",
        server.base,
        crate::support::server::form(&[
            ("response_type", "code"),
            ("client_id", &mcp.client_metadata_url()),
            ("redirect_uri", "http://127.0.0.1:50000/callback"),
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "S256"),
        ])
    );
    let page = Agent::new().get(&url).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.location.is_none(), "never redirected");
    assert!(page.body.contains("client metadata document"), "{}", page.body);
}

fn mcp_python() -> PathBuf {
    let venv = std::env::var_os("INBOUND_MCP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/inbound/mcp-venv"));
    let python = venv.join("bin/python");
    assert!(python.exists(), "{} missing: run scripts/mcp-env.sh (`make test` does)", python.display());
    python
}

/// Runs the SDK driver; returns its JSON summary.
pub async fn sdk_run(mcp_url: &str, storage: &std::path::Path, extra: &[&str]) -> Value {
    let mut command = Command::new(mcp_python());
    command
        .arg("tests/mcp/mcp_client.py")
        .args(["--server", mcp_url, "--username", "alice", "--password", "wonderland"])
        .arg("--storage")
        .arg(storage)
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // The driver talks to servers running on this test's runtime: run it off the runtime.
    let out = tokio::time::timeout(Duration::from_secs(90), tokio::task::spawn_blocking(move || command.output()))
        .await
        .expect("driver finished in time")
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "MCP SDK driver failed:\n{stderr}\n{stdout}");
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {stdout}\n{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_mcp_python_sdk_connects_registers_and_calls_tools() {
    let (listener, base) = bind().await;
    let server = inbound_for(&format!("{base}/mcp"), true).await;
    let mcp = serve_mcp(listener, &base, &server.base);
    let dir = tempfile::tempdir().unwrap();

    // Discovery → registration → PKCE with resource → login/consent → tool call.
    let storage = dir.path().join("dcr.json");
    let first = sdk_run(&mcp.url, &storage, &["--tool", "list_invoices"]).await;
    assert_eq!(first["registered"], true, "{first}");
    assert!(first["result"].as_str().unwrap().starts_with("3 invoices"), "{first}");
    let client_id = first["client_id"].as_str().unwrap().to_string();
    assert!(server.store().await.registered_client(&client_id).await.unwrap().is_some());

    // Second run: the registration is reused.
    let second = sdk_run(&mcp.url, &storage, &["--tool", "list_invoices"]).await;
    assert_eq!(second["registered"], false, "{second}");
    assert_eq!(second["client_id"], client_id.as_str());
    assert_eq!(server.store().await.registered_clients().await.unwrap().len(), 1);

    // Step-up: `refund` answers 403 insufficient_scope; the SDK authorizes again, the user is
    // asked only for billing:refund, and the new token carries both scopes.
    let stepped = sdk_run(&mcp.url, &storage, &["--tool", "refund", "--approve-scopes", "all"]).await;
    assert_eq!(stepped["result"], "refund issued", "{stepped}");
    assert_eq!(stepped["client_id"], client_id.as_str());
    let scopes: Vec<&str> = stepped["scopes"].as_str().unwrap().split(' ').collect();
    assert!(scopes.contains(&"billing:read") && scopes.contains(&"billing:refund"), "{stepped}");

    // A metadata-document client id works the same way, with no registration at all.
    let cimd_storage = dir.path().join("cimd.json");
    let cimd = sdk_run(
        &mcp.url,
        &cimd_storage,
        &["--client-metadata-url", &mcp.client_metadata_url(), "--tool", "list_invoices"],
    )
    .await;
    assert_eq!(cimd["client_id"], mcp.client_metadata_url().as_str(), "{cimd}");
    assert_eq!(cimd["registered"], false);
    assert!(cimd["result"].as_str().unwrap().starts_with("3 invoices"));
}

/// An administrator's deletion of a metadata-document client sticks: its document is not
/// fetched and recorded again on the next request, so its tokens stay dead.
#[tokio::test]
async fn a_deleted_metadata_document_client_stays_deleted() {
    let (listener, base) = bind().await;
    let server = inbound_for(&format!("{base}/mcp"), true).await;
    let mcp = serve_mcp(listener, &base, &server.base);
    let client_id = mcp.client_metadata_url();
    let tokens = authorize_and_exchange(&server, &client_id, "billing:read", &mcp.url, &[]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    let access = tokens.json["access_token"].as_str().unwrap().to_string();
    assert_eq!(server.introspect("mcp/mcp-server", &access).await["active"], true);

    // Deleted from the store as `inbound clients delete` does (another process).
    let now = jiff::Timestamp::now().as_second();
    assert!(server.store().await.delete_registered_client(&client_id, now).await.unwrap());
    // Past the server's 5 s cache of resolved clients, the token is inactive and stays so.
    let started = std::time::Instant::now();
    while server.introspect("mcp/mcp-server", &access).await["active"] == true {
        assert!(started.elapsed() < Duration::from_secs(10), "the deleted client's token is still active");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.introspect("mcp/mcp-server", &access).await, json!({"active": false}), "came back to life");
    assert!(server.store().await.registered_client(&client_id).await.unwrap().is_none(), "recorded again");
    let url = format!(
        "{}/authorize?{}",
        server.base,
        crate::support::server::form(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", "http://127.0.0.1:50000/callback"),
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "S256"),
        ])
    );
    let page = Agent::new().get(&url).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("deleted by an administrator"), "{}", page.body);
}

/// The resource-server layer re-reads the issuer's JWKS once it is stale (max-age): a key
/// the issuer no longer publishes stops being trusted.
#[tokio::test]
async fn the_resource_server_layer_drops_a_key_the_issuer_removed() {
    let server = crate::support::server::start_server(QUICKSTART).await;
    // The issuer's JWKS through a switch: published, then withdrawn, with max-age=1.
    let publish = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (listener, base) = bind().await;
    let (upstream, switch) = (server.url("/jwks"), publish.clone());
    let app = Router::new().route(
        "/jwks",
        get(move || {
            let (upstream, switch) = (upstream.clone(), switch.clone());
            async move {
                let keys = if switch.load(std::sync::atomic::Ordering::SeqCst) {
                    reqwest::get(&upstream).await.unwrap().json::<Value>().await.unwrap()
                } else {
                    json!({"keys": []})
                };
                ([("cache-control", "max-age=1")], Json(keys))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let resource =
        ProtectedResource::new("https://billing.example.com", &server.base).with_jwks_uri(&format!("{base}/jwks"));
    let token =
        server.token("billing-agent", "&scope=billing%3Aread").await.json["access_token"].as_str().unwrap().to_string();
    assert!(resource.check(Some(&token), &[]).await.is_ok(), "published key");
    publish.store(false, std::sync::atomic::Ordering::SeqCst);
    // Still fresh: no fetch, still trusted.
    assert!(resource.check(Some(&token), &[]).await.is_ok());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        resource.check(Some(&token), &[]).await.unwrap_err(),
        Refusal::InvalidToken("unknown signing key".into()),
        "a withdrawn key is trusted after its JWKS went stale"
    );
}

/// A metadata document is re-read when its cache lifetime ends; while its redirect URIs and
/// keys stay the same, nothing changes for its users. Once they change, the consents given
/// to the old document end (with their refresh tokens): every user is asked again.
#[tokio::test]
async fn a_metadata_document_that_changes_its_redirect_uris_asks_its_users_again() {
    let (listener, base) = bind().await;
    let server = inbound_for(&format!("{base}/mcp"), true).await;
    let client_id = format!("{base}/changing.json");
    let document = std::sync::Arc::new(std::sync::Mutex::new(json!({
        "client_id": client_id,
        "client_name": "Changing Client",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "token_endpoint_auth_method": "none",
    })));
    let served = document.clone();
    let app = Router::new().route(
        "/changing.json",
        get(move || {
            let document = served.lock().unwrap().clone();
            // One second: each resolution after the server's own short cache re-reads it.
            async move { ([("cache-control", "max-age=1")], Json(document)) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mcp_url = format!("{base}/mcp");
    let tokens = authorize_and_exchange(&server, &client_id, "billing:read", &mcp_url, &[]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    let mut refresh = tokens.json["refresh_token"].as_str().unwrap().to_string();
    let refresh_once = |token: String| {
        let server = &server;
        let client_id = client_id.clone();
        async move {
            server
                .post(
                    "/token",
                    None,
                    &crate::support::server::form(&[
                        ("grant_type", "refresh_token"),
                        ("client_id", &client_id),
                        ("refresh_token", &token),
                    ]),
                )
                .await
        }
    };
    // Re-read but unchanged (a new name only): the grant lives on.
    document.lock().unwrap()["client_name"] = json!("Renamed Client");
    tokio::time::sleep(Duration::from_secs(7)).await;
    let unchanged = refresh_once(refresh.clone()).await;
    assert_eq!(unchanged.status, 200, "an unchanged document ended the grant: {}", unchanged.json);
    refresh = unchanged.json["refresh_token"].as_str().unwrap().to_string();

    // A new redirect URI (one the policy allows): the consent ends once it is noticed.
    document.lock().unwrap()["redirect_uris"] =
        json!(["http://127.0.0.1/callback", "https://app.example.com/oauth/cb"]);
    let started = std::time::Instant::now();
    loop {
        let reply = refresh_once(refresh.clone()).await;
        if reply.status == 400 {
            reply.assert_error(400, "invalid_grant");
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.json);
        refresh = reply.json["refresh_token"].as_str().unwrap().to_string();
        assert!(started.elapsed() < Duration::from_secs(15), "the changed document kept its users' consents");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The user's consent to the client is gone: the next authorization asks again.
    let subject = {
        use base64::Engine;
        let payload = tokens.json["access_token"].as_str().unwrap().split('.').nth(1).unwrap().to_string();
        let claims: Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["sub"].as_str().unwrap().to_string()
    };
    let now = jiff::Timestamp::now().as_second();
    let consents = server.store().await.consents_of(&subject, now).await.unwrap();
    assert!(!consents.iter().any(|c| c.client_id == client_id), "the consent to the old document survived");
    let again = authorize_and_exchange(&server, &client_id, "billing:read", &mcp_url, &[]).await;
    assert_eq!(again.status, 200, "{}", again.json);
}
