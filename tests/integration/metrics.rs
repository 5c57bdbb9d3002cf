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

    let declared: BTreeSet<&str> = scrape.docs.keys().map(String::as_str).collect();
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
        for series in &named {
            assert!(declared.contains(family(series)), "{file} queries {series}, which the server does not export");
        }
    }
    server.running.stop().await;
}
