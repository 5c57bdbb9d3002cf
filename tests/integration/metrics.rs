//! Metrics (README "Metrics"): after a flow, the exposition parsed with a real Prometheus
//! parser carries the documented series; every series the shipped alerts
//! (config/prometheus/rules.yaml) and dashboard (config/grafana/inbound.json) query is one
//! the server declares. The operator's own series are checked on a real API server in
//! `operator.rs`.

use std::collections::BTreeSet;

use crate::support::flows::{authorize_url, pkce};
use crate::support::server::{QUICKSTART, TestServer, start_server};
use crate::support::user_agent::Agent;

pub(crate) fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text")
}

/// The value of `metric` with exactly these labels (among others), if exported.
pub(crate) fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.samples.iter().find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))).map(
        |s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        },
    )
}

/// A metric family's name, as declared by `# HELP` (without `_total`, `_bucket`...).
fn family(series: &str) -> &str {
    ["_total", "_bucket", "_count", "_sum"].iter().find_map(|s| series.strip_suffix(s)).unwrap_or(series)
}

/// Every `inbound_*` series an expression file names.
fn series_in(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices("inbound_") {
        let name: String = text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        // Alert names and annotations say "inbound" in prose; series are lowercase with `_`.
        if name.len() > "inbound_".len() && name.chars().all(|c| !c.is_ascii_uppercase()) {
            found.insert(name);
        }
    }
    found
}

/// Series the files query that only the operator exports (nothing rotates keys in folder
/// mode); `operator.rs` checks that an operator does ([`assert_declared`]).
pub(crate) const OPERATOR_ONLY: &[&str] = &["inbound_signing_key_next_rotation_timestamp_seconds"];

/// Each of `series` is declared in `scrape`.
pub(crate) fn assert_declared(scrape: &prometheus_parse::Scrape, series: &[&str]) {
    for name in series {
        assert!(scrape.docs.contains_key(family(name)), "{name} is not exported");
    }
}

/// The shipped alerts and dashboard parse as what they are, and every series they query
/// (but `except`, which they must query) is declared in `scrape`.
fn assert_alerts_and_dashboard_query_only_exported_series(scrape: &prometheus_parse::Scrape, except: &[&str]) {
    let declared: BTreeSet<&str> = scrape.docs.keys().map(String::as_str).collect();
    let mut queried = BTreeSet::new();
    for file in ["config/prometheus/rules.yaml", "config/grafana/inbound.json"] {
        let text = std::fs::read_to_string(file).unwrap();
        // Both parse as what they are.
        if file.ends_with(".json") {
            let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert!(dashboard["panels"].as_array().is_some_and(|p| !p.is_empty()));
        } else {
            let rule: serde_norway::Value = serde_norway::from_str(&text).unwrap();
            assert_eq!(rule["kind"].as_str(), Some("PrometheusRule"));
        }
        let named = series_in(&text);
        assert!(named.len() >= 5, "{file}: {named:?}");
        for series in named.iter().filter(|s| !except.contains(&s.as_str())) {
            assert!(declared.contains(family(series)), "{file} queries {series}, which the server does not export");
        }
        queried.extend(named);
    }
    for series in except {
        assert!(queried.contains(*series), "{series} is excepted but queried by neither file");
    }
}

async fn scrape(server: &TestServer) -> prometheus_parse::Scrape {
    parse(&server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap())
}

#[tokio::test]
async fn documented_series_are_exported_after_a_flow_and_the_alerts_name_only_real_ones() {
    let server = start_server(QUICKSTART).await;
    assert_eq!(server.token("billing-agent", "").await.status, 200);
    server.post("/token", Some(("nobody", "x")), "grant_type=client_credentials").await;
    let (challenge, _) = pkce();
    let url = authorize_url(&server, &server.client_id("billing-cli"), "openid billing:read", &challenge, "");
    let mut agent = Agent::new();
    let page = agent.get(&url).await;
    let page = agent.login(&server.base, &page, "alice", "not-her-password").await;
    agent.login(&server.base, &page, "alice", "wonderland").await;
    // The maintenance loop copies the audit writer's counts every second.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let scrape = scrape(&server).await;
    let token = [("grant_type", "client_credentials"), ("client_namespace", "default")];
    assert_eq!(value(&scrape, "inbound_tokens_issued_total", &token), Some(1.0));
    assert_eq!(value(&scrape, "inbound_logins_total", &[("outcome", "success")]), Some(1.0));
    assert_eq!(value(&scrape, "inbound_logins_total", &[("outcome", "wrong_credentials")]), Some(1.0));
    let refused = [("endpoint", "token"), ("outcome", "invalid_client")];
    assert_eq!(value(&scrape, "inbound_oauth_requests_total", &refused), Some(1.0));
    assert_eq!(value(&scrape, "inbound_store_up", &[]), Some(1.0));
    assert_eq!(value(&scrape, "inbound_leader", &[]), Some(0.0), "folder mode has no Lease");
    assert!(value(&scrape, "inbound_audit_records_total", &[]).is_some_and(|n| n >= 5.0), "{:?}", scrape.samples);
    assert_eq!(value(&scrape, "inbound_audit_failures_total", &[]), Some(0.0));

    // Every store call is timed under its method's name: the one successful sign-in
    // recorded its user once, and the health check pings every second.
    let calls = |operation| value(&scrape, "inbound_store_query_duration_seconds_count", &[("operation", operation)]);
    assert_eq!(calls("record_login"), Some(1.0), "{:?}", scrape.samples);
    assert!(calls("ping").is_some_and(|n| n >= 1.0));
    let record_login = [("operation", "record_login")];
    assert!(value(&scrape, "inbound_store_query_duration_seconds_sum", &record_login).is_some_and(|s| s > 0.0));
    // Errors exist for every operation from the start, called or not.
    assert_eq!(value(&scrape, "inbound_store_errors_total", &record_login), Some(0.0));
    assert_eq!(value(&scrape, "inbound_store_errors_total", &[("operation", "redeem_code")]), Some(0.0));
    // The pool has opened connections, within its limit.
    let max = value(&scrape, "inbound_store_pool_max_connections", &[]).unwrap();
    let open = ["idle", "in_use"]
        .map(|state| value(&scrape, "inbound_store_pool_connections", &[("state", state)]).unwrap())
        .iter()
        .sum::<f64>();
    assert!(max > 0.0 && open > 0.0 && open <= max, "{open} of {max}");
    // The quickstart's keys were made at this start; nothing rotates them in folder mode.
    for alg in ["ES256", "RS256"] {
        let age = value(&scrape, "inbound_signing_key_age_seconds", &[("alg", alg)]);
        assert!(age.is_some_and(|age| (0.0..60.0).contains(&age)), "{alg}: {age:?}");
    }
    assert_eq!(value(&scrape, "inbound_signing_key_next_rotation_timestamp_seconds", &[]), None);
    assert_eq!(value(&scrape, "inbound_watch_restarts_total", &[("kind", "InboundApp")]), Some(0.0));
    let failures = [("kind", "InboundApp"), ("error", "kubernetes_unreachable")];
    assert_eq!(value(&scrape, "inbound_reconcile_failures_total", &failures), Some(0.0));

    assert_alerts_and_dashboard_query_only_exported_series(&scrape, OPERATOR_ONLY);
    server.running.stop().await;
}
