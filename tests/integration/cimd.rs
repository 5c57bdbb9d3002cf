//! Client ID Metadata Document fetching against a real HTTP server on 127.0.0.1: caching
//! per headers, every refusal (redirect, size, timeout, mismatch, shared secret), and the
//! SSRF and domain guards refusing before any request is made.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use inbound::cimd::{CimdError, CimdFetcher, CimdPolicy};

#[derive(Default)]
struct Hits {
    total: AtomicUsize,
    client: AtomicUsize,
    no_store: AtomicUsize,
    flaky: AtomicUsize,
}

struct Docs {
    base: String,
    hits: Arc<Hits>,
}

impl Docs {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn total(&self) -> usize {
        self.hits.total.load(Ordering::SeqCst)
    }
}

fn document(client_id: &str, extra: serde_json::Value) -> String {
    let mut doc = serde_json::json!({
        "client_id": client_id,
        "client_name": "Test Agent",
        "client_uri": "https://agent.example.com",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    if let (Some(doc), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
        doc.extend(extra.clone());
    }
    doc.to_string()
}

fn json(cache_control: Option<&'static str>, body: String) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    if let Some(value) = cache_control {
        headers.insert(header::CACHE_CONTROL, value.parse().unwrap());
    }
    (headers, body).into_response()
}

/// Serves the documents on 127.0.0.1 and counts every request.
async fn serve_documents() -> Docs {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(Hits::default());
    type S = State<(Arc<Hits>, String)>;
    let router = Router::new()
        .route(
            "/client.json",
            get(|State((hits, base)): S| async move {
                hits.client.fetch_add(1, Ordering::SeqCst);
                json(Some("public, max-age=60"), document(&format!("{base}/client.json"), serde_json::json!({})))
            }),
        )
        .route(
            "/no-store.json",
            get(|State((hits, base)): S| async move {
                hits.no_store.fetch_add(1, Ordering::SeqCst);
                json(Some("no-store"), document(&format!("{base}/no-store.json"), serde_json::json!({})))
            }),
        )
        .route(
            "/mismatch.json",
            get(|| async { json(None, document("https://other.example.com/client.json", serde_json::json!({}))) }),
        )
        .route(
            "/redirect.json",
            get(|State((_, base)): S| async move {
                (StatusCode::FOUND, [(header::LOCATION, format!("{base}/client.json"))]).into_response()
            }),
        )
        .route(
            "/big.json",
            get(|State((_, base)): S| async move {
                let padding = "x".repeat(10 * 1024);
                json(None, document(&format!("{base}/big.json"), serde_json::json!({ "padding": padding })))
            }),
        )
        .route(
            "/slow.json",
            get(|State((_, base)): S| async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                json(None, document(&format!("{base}/slow.json"), serde_json::json!({})))
            }),
        )
        .route(
            "/secret.json",
            get(|State((_, base)): S| async move {
                let extra = serde_json::json!({ "token_endpoint_auth_method": "client_secret_basic" });
                json(None, document(&format!("{base}/secret.json"), extra))
            }),
        )
        .route("/missing.json", get(|| async { StatusCode::NOT_FOUND }))
        // Valid once (max-age=1), then the host misbehaves as real ones have: an HTML page.
        .route(
            "/flaky.json",
            get(|State((hits, base)): S| async move {
                if hits.flaky.fetch_add(1, Ordering::SeqCst) == 0 {
                    json(Some("max-age=1"), document(&format!("{base}/flaky.json"), serde_json::json!({})))
                } else {
                    ([(header::CONTENT_TYPE, "text/html")], "<html>challenge</html>").into_response()
                }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&hits),
            |State(hits): State<Arc<Hits>>, request: axum::extract::Request, next: axum::middleware::Next| async move {
                hits.total.fetch_add(1, Ordering::SeqCst);
                next.run(request).await
            },
        ))
        .with_state((Arc::clone(&hits), base.clone()));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Docs { base, hits }
}

fn loopback_policy() -> CimdPolicy {
    CimdPolicy { allowed_domains: vec!["127.0.0.1".into()], allow_private_addresses: true }
}

#[tokio::test]
async fn valid_document_is_fetched_and_cached_per_max_age() {
    let docs = serve_documents().await;
    let fetcher = CimdFetcher::new().unwrap();
    let client_id = docs.url("/client.json");

    let doc = fetcher.fetch(&client_id, &loopback_policy()).await.unwrap();
    assert_eq!(doc.client_id, client_id);
    assert_eq!(doc.client_name.as_deref(), Some("Test Agent"));
    assert_eq!(doc.redirect_uris, ["http://127.0.0.1/callback"]);
    assert_eq!(doc.grant_types, ["authorization_code", "refresh_token"]);
    assert_eq!(doc.token_endpoint_auth_method.as_deref(), Some("none"));

    let again = fetcher.fetch(&client_id, &loopback_policy()).await.unwrap();
    assert_eq!(again, doc);
    let clone = fetcher.clone();
    clone.fetch(&client_id, &loopback_policy()).await.unwrap();
    assert_eq!(docs.hits.client.load(Ordering::SeqCst), 1, "max-age=60: later fetches come from the cache");

    fetcher.forget(&client_id);
    fetcher.fetch(&client_id, &loopback_policy()).await.unwrap();
    assert_eq!(docs.hits.client.load(Ordering::SeqCst), 2, "forget drops the cached copy");
}

#[tokio::test]
async fn no_store_document_is_fetched_every_time() {
    let docs = serve_documents().await;
    let fetcher = CimdFetcher::new().unwrap();
    let client_id = docs.url("/no-store.json");
    for _ in 0..3 {
        fetcher.fetch(&client_id, &loopback_policy()).await.unwrap();
    }
    assert_eq!(docs.hits.no_store.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn bad_documents_and_responses_are_refused_and_not_cached() {
    let docs = serve_documents().await;
    let fetcher = CimdFetcher::new().unwrap();
    let policy = loopback_policy();
    let fetch = |path: &str| {
        let (fetcher, url, policy) = (fetcher.clone(), docs.url(path), policy.clone());
        async move { fetcher.fetch(&url, &policy).await }
    };

    assert_eq!(fetch("/mismatch.json").await, Err(CimdError::ClientIdMismatch));
    assert_eq!(fetch("/redirect.json").await, Err(CimdError::Redirect));
    assert_eq!(fetch("/big.json").await, Err(CimdError::TooLarge));
    assert_eq!(fetch("/missing.json").await, Err(CimdError::Status(404)));
    match fetch("/secret.json").await {
        Err(CimdError::Invalid(reason)) => assert!(reason.contains("token_endpoint_auth_method"), "{reason}"),
        other => panic!("client_secret_basic must be refused: {other:?}"),
    }
    assert_eq!(docs.hits.client.load(Ordering::SeqCst), 0, "the redirect was not followed");

    let before = docs.total();
    assert_eq!(fetch("/mismatch.json").await, Err(CimdError::ClientIdMismatch));
    assert_eq!(fetch("/redirect.json").await, Err(CimdError::Redirect));
    assert_eq!(docs.total(), before + 2, "errors are not cached");

    for error in [CimdError::ClientIdMismatch, CimdError::Redirect, CimdError::TooLarge, CimdError::Status(404)] {
        assert!(!error.to_string().contains("127.0.0.1"), "{error}");
    }
}

#[tokio::test]
async fn slow_endpoint_times_out_after_five_seconds() {
    let docs = serve_documents().await;
    let fetcher = CimdFetcher::new().unwrap();
    let started = Instant::now();
    let result = fetcher.fetch(&docs.url("/slow.json"), &loopback_policy()).await;
    let elapsed = started.elapsed();
    assert_eq!(result, Err(CimdError::Timeout));
    assert!(elapsed >= Duration::from_millis(4_500) && elapsed < Duration::from_secs(8), "{elapsed:?}");
}

#[tokio::test]
async fn ssrf_and_domain_guards_refuse_without_a_request() {
    let docs = serve_documents().await;
    let fetcher = CimdFetcher::new().unwrap();
    let port = docs.base.rsplit(':').next().unwrap();
    let strict =
        CimdPolicy { allowed_domains: vec!["127.0.0.1".into(), "localhost".into()], allow_private_addresses: false };

    // The loopback URL the permissive policy accepts is refused without allow_private_addresses.
    let client_id = docs.url("/client.json");
    let refused = fetcher.fetch(&client_id, &strict).await;
    assert_eq!(refused, Err(CimdError::ForbiddenAddress));
    // Same with https on the loopback literal, and with a name that resolves to loopback.
    for url in [format!("https://127.0.0.1:{port}/client.json"), format!("https://localhost:{port}/client.json")] {
        assert_eq!(fetcher.fetch(&url, &strict).await, Err(CimdError::ForbiddenAddress), "{url}");
    }
    let message = CimdError::ForbiddenAddress.to_string();
    assert!(!message.contains("127.0.0.1") && !message.contains(port), "{message}");

    // A host outside allowed_domains, even with private addresses allowed.
    let elsewhere = CimdPolicy { allowed_domains: vec!["*.example.com".into()], allow_private_addresses: true };
    assert_eq!(fetcher.fetch(&client_id, &elsewhere).await, Err(CimdError::DomainNotAllowed));
    let none = CimdPolicy { allowed_domains: vec![], allow_private_addresses: true };
    assert_eq!(fetcher.fetch(&client_id, &none).await, Err(CimdError::DomainNotAllowed));

    assert_eq!(docs.total(), 0, "no request reached the server");

    // A document cached under the permissive policy is not served to a strict one.
    fetcher.fetch(&client_id, &loopback_policy()).await.unwrap();
    assert_eq!(fetcher.fetch(&client_id, &strict).await, Err(CimdError::ForbiddenAddress));
    assert_eq!(docs.total(), 1);
}

/// A host that is briefly down (or answers HTML, a 404 or a challenge page) does not break
/// its clients at once: the last good copy is used for a bounded time after it expired.
#[tokio::test]
async fn a_briefly_failing_host_is_bridged_by_the_last_good_copy() {
    let docs = serve_documents().await;
    let fetcher = CimdFetcher::new().unwrap();
    let url = docs.url("/flaky.json");
    let first = fetcher.fetch(&url, &loopback_policy()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = fetcher.fetch(&url, &loopback_policy()).await.expect("the stale copy bridges the failure");
    assert_eq!(second.client_id, first.client_id);
    assert_eq!(docs.hits.flaky.load(Ordering::SeqCst), 2, "it was fetched again (and failed)");
}
