//! Prometheus metrics: requests by endpoint, grant type and outcome; latency by endpoint;
//! tokens issued and sign-ins (counted from the audit trail, so a metric never disagrees
//! with the record); the operator's reconcile passes, failures by kind, leadership.

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub grant_type: String,
    /// The namespace of the client's InboundApp (or of the policy that admitted it).
    pub client_namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabels {
    /// `success`, or why not (`wrong_credentials`, `throttled`, `cancelled`, `upstream_error`).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
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
    pub tokens_issued: Family<TokenLabels, Counter>,
    pub logins: Family<LoginLabels, Counter>,
    /// Audit records written, and records that could not be written.
    pub audit_records: Counter,
    pub audit_failures: Counter,
    /// 1 while this replica holds the Lease (operator mode).
    pub leader: Gauge,
    /// The leader's reconcile passes over every object, how long each took, and the objects
    /// whose reconcile failed (retried at the next pass) by kind.
    pub reconcile_runs: Counter,
    pub reconcile_duration: Histogram,
    pub reconcile_failures: Family<KindLabels, Counter>,
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
        let tokens_issued = Family::<TokenLabels, Counter>::default();
        registry.register(
            "tokens_issued",
            "Access tokens issued by grant type and client namespace",
            tokens_issued.clone(),
        );
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register("logins", "User sign-ins by outcome", logins.clone());
        let (audit_records, audit_failures) = (Counter::default(), Counter::default());
        registry.register("audit_records", "Audit records written", audit_records.clone());
        registry.register("audit_failures", "Audit records that could not be written", audit_failures.clone());
        let leader = Gauge::default();
        registry.register("leader", "Whether this replica holds the leader Lease (1) or not (0)", leader.clone());
        let reconcile_runs = Counter::default();
        registry.register("reconcile_runs", "Reconcile passes over every object (leader)", reconcile_runs.clone());
        // 1 ms .. ~65 s
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register("reconcile_duration_seconds", "Duration of a reconcile pass", reconcile_duration.clone());
        let reconcile_failures = Family::<KindLabels, Counter>::default();
        registry.register(
            "reconcile_failures",
            "Objects whose reconcile failed (retried at the next pass), by kind",
            reconcile_failures.clone(),
        );
        // Every label value of the fixed sets starts at 0: the series exist before the first
        // event (rate() and alerts see them), and a dashboard never shows "no data".
        for outcome in ["success", "wrong_credentials", "throttled", "cancelled", "upstream_error"] {
            let _ = logins.get_or_create(&LoginLabels { outcome });
        }
        for kind in ["InboundApp", "Scope", "ClientGrant", "ConsentPolicy", "IdentityProvider", "other"] {
            let _ = reconcile_failures.get_or_create(&KindLabels { kind });
        }
        Metrics {
            registry,
            oauth_requests,
            http_requests,
            http_latency,
            store_up,
            tokens_issued,
            logins,
            audit_records,
            audit_failures,
            leader,
            reconcile_runs,
            reconcile_duration,
            reconcile_failures,
        }
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
