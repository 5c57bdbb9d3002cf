//! Prometheus metrics: requests by endpoint, grant type and outcome; latency by endpoint;
//! tokens issued and sign-ins (counted from the audit trail, so a metric never disagrees
//! with the record); the operator's reconcile passes, failures by kind and error category,
//! leadership, watch restarts and signing-key age; store latency, errors and pool use.
//!
//! This module only declares the series; the runtime feeds them. The store sits below it in
//! the layering and reports through an observer trait the runtime implements; the controller
//! and the HTTP layer are handed the families they count into.

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileFailureLabels {
    /// One of [`RECONCILE_KINDS`].
    pub kind: &'static str,
    /// One of [`RECONCILE_ERRORS`].
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// A store method's name (a fixed set: the store's `OPERATIONS`).
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `idle` or `in_use`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlgLabels {
    /// `ES256` (access tokens) or `RS256` (ID tokens): each list of keys rotates on its own.
    pub alg: &'static str,
}

/// The kinds a reconcile failure is counted under.
pub const RECONCILE_KINDS: &[&str] =
    &["InboundApp", "Scope", "ClientGrant", "ConsentPolicy", "IdentityProvider", "other"];

/// Why a reconcile failed, as the controller classifies its errors: the API server refused
/// for lack of permission (`forbidden`), because someone wrote meanwhile (`conflict`,
/// retried), or because it rejected what was written (`rejected`); it answered with another
/// error (`kubernetes_api`) or not at all (`kubernetes_unreachable`); the store failed
/// (`store`); anything else (`other`).
pub const RECONCILE_ERRORS: &[&str] =
    &["forbidden", "conflict", "rejected", "kubernetes_api", "kubernetes_unreachable", "store", "other"];

/// The watch streams whose restarts are counted: the five kinds, the credentials Secrets,
/// and the signing-keys Secret (`SigningKeys`).
pub const WATCHED_KINDS: &[&str] =
    &["InboundApp", "Scope", "ClientGrant", "ConsentPolicy", "IdentityProvider", "Secret", "SigningKeys"];

type HistogramFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;
pub type OperationHistograms = Family<OperationLabels, Histogram, fn() -> Histogram>;

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
    /// whose reconcile failed (retried at the next pass) by kind and error category.
    pub reconcile_runs: Counter,
    pub reconcile_duration: Histogram,
    pub reconcile_failures: Family<ReconcileFailureLabels, Counter>,
    /// Watch streams that failed and restart (after a backoff), by watched kind.
    pub watch_restarts: Family<KindLabels, Counter>,
    /// Age of the key that signs now.
    pub signing_key_age: Family<AlgLabels, Gauge>,
    /// When its successor is due to take over; empty where nothing rotates keys (`inbound
    /// serve`), so that no alert reads a schedule that does not exist.
    pub signing_key_next_rotation: Family<AlgLabels, Gauge>,
    /// Every store call's duration and the calls that failed, by operation.
    pub store_query_duration: OperationHistograms,
    pub store_errors: Family<OperationLabels, Counter>,
    /// The store's connection pool: open connections by state, and its limit.
    pub store_pool_connections: Family<PoolLabels, Gauge>,
    pub store_pool_max_connections: Gauge,
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
        let reconcile_failures = Family::<ReconcileFailureLabels, Counter>::default();
        registry.register(
            "reconcile_failures",
            "Objects whose reconcile failed (retried at the next pass), by kind and error category",
            reconcile_failures.clone(),
        );
        let watch_restarts = Family::<KindLabels, Counter>::default();
        registry.register(
            "watch_restarts",
            "Kubernetes watch streams that failed and restart, by watched kind",
            watch_restarts.clone(),
        );
        let signing_key_age = Family::<AlgLabels, Gauge>::default();
        registry.register(
            "signing_key_age_seconds",
            "Seconds since the key that signs now was generated, by algorithm",
            signing_key_age.clone(),
        );
        let signing_key_next_rotation = Family::<AlgLabels, Gauge>::default();
        registry.register(
            "signing_key_next_rotation_timestamp_seconds",
            "When the signing key's successor is due to take over (Unix seconds), by algorithm",
            signing_key_next_rotation.clone(),
        );
        let store_query_duration: OperationHistograms = Family::new_with_constructor(latency_histogram);
        registry.register(
            "store_query_duration_seconds",
            "Duration of store calls (queries and transactions), by operation",
            store_query_duration.clone(),
        );
        let store_errors = Family::<OperationLabels, Counter>::default();
        registry.register("store_errors", "Store calls that failed, by operation", store_errors.clone());
        let store_pool_connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "store_pool_connections",
            "Open connections of the store's pool, idle or in use",
            store_pool_connections.clone(),
        );
        let store_pool_max_connections = Gauge::default();
        registry.register(
            "store_pool_max_connections",
            "The most connections the store's pool opens",
            store_pool_max_connections.clone(),
        );
        // Every label value of the fixed sets starts at 0: the series exist before the first
        // event (rate() and alerts see them), and a dashboard never shows "no data".
        for outcome in ["success", "wrong_credentials", "throttled", "cancelled", "upstream_error"] {
            let _ = logins.get_or_create(&LoginLabels { outcome });
        }
        for &kind in RECONCILE_KINDS {
            for &error in RECONCILE_ERRORS {
                let _ = reconcile_failures.get_or_create(&ReconcileFailureLabels { kind, error });
            }
        }
        for &kind in WATCHED_KINDS {
            let _ = watch_restarts.get_or_create(&KindLabels { kind });
        }
        for state in ["idle", "in_use"] {
            let _ = store_pool_connections.get_or_create(&PoolLabels { state });
        }
        // The store's operations are pre-initialised by whoever knows them (the runtime,
        // from the store's list), in `store_errors` only: a histogram per operation that a
        // mode never calls would add some twenty empty series each.
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
            watch_restarts,
            signing_key_age,
            signing_key_next_rotation,
            store_query_duration,
            store_errors,
            store_pool_connections,
            store_pool_max_connections,
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
