//! Prometheus metrics of the HTTP services.
//!
//! Labels use the matched route template (`/api/v1/orgs/{id}`), never the
//! raw path, so that ids and secrets never become label values and the
//! series count stays bounded.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~4 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// The metric registry and the handles the middleware updates.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    logins: Family<LoginLabels, Counter>,
    api_key_reads: Counter,
    credential_events_followed: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    outcome: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hood");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests served", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        registry.register("logins", "Login attempts by outcome", logins.clone());
        let api_key_reads = Counter::default();
        registry.register(
            "api_key_reads",
            "API keys' standing read from the store (the cache missed)",
            api_key_reads.clone(),
        );
        let credential_events_followed = Gauge::default();
        registry.register(
            "credential_events_followed",
            "1 while credential changes are heard over the bus (cached keys kept 30 s), 0 while not (re-read each second)",
            credential_events_followed.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            logins,
            api_key_reads,
            credential_events_followed,
        }
    }
}

impl Metrics {
    /// Text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("could not encode metrics");
        }
        out
    }

    /// Counts a read of an API key's standing from the store.
    pub fn api_key_read(&self) {
        self.api_key_reads.inc();
    }

    /// Whether credential changes are heard now (set at each scrape).
    pub fn set_credential_events_followed(&self, followed: bool) {
        self.credential_events_followed.set(i64::from(followed));
    }

    /// Counts a login attempt: `ok`, `bad_credentials`, `rate_limited`.
    pub fn login(&self, outcome: &'static str) {
        self.logins.get_or_create(&LoginLabels { outcome }).inc();
    }
}

/// Middleware recording count and latency of every request.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    metrics
        .latency
        .get_or_create(&RouteLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    resp
}
