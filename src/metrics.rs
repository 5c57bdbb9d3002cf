//! Prometheus metrics: requests by endpoint, grant type and outcome; latency by endpoint.

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OAuthLabels {
    pub endpoint: &'static str,
    pub grant_type: &'static str,
    /// `success` or the OAuth error code.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub endpoint: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: &'static str,
}

type HistogramFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

/// The server's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    pub oauth_requests: Family<OAuthLabels, Counter>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_latency: HistogramFamily,
    /// 1 while the last check of the store succeeded. Readiness does not depend on it: a
    /// database outage must not take every replica out of the Service at once, while JWT
    /// grants and JWKS still work.
    pub store_up: Gauge,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("inbound");
        let oauth_requests = Family::<OAuthLabels, Counter>::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "oauth_requests",
            "OAuth requests by endpoint, grant type and outcome (success or error code)",
            oauth_requests.clone(),
        );
        registry.register("http_requests", "HTTP requests by endpoint and status", http_requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency by endpoint", http_latency.clone());
        let store_up = Gauge::default();
        registry.register("store_up", "Whether the last check of the store succeeded (1) or not (0)", store_up.clone());
        Metrics { registry, oauth_requests, http_requests, http_latency, store_up }
    }
}

impl Metrics {
    pub fn observe_http(&self, endpoint: &'static str, status: u16, elapsed: Duration) {
        self.http_requests.get_or_create(&HttpLabels { endpoint, status }).inc();
        self.http_latency.get_or_create(&EndpointLabels { endpoint }).observe(elapsed.as_secs_f64());
    }

    pub fn observe_oauth(&self, endpoint: &'static str, grant_type: &'static str, outcome: &'static str) {
        self.oauth_requests.get_or_create(&OAuthLabels { endpoint, grant_type, outcome }).inc();
    }

    /// OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}
