//! Prometheus metrics of the edge. Label values are chains the edge serves,
//! usage statuses and upstream ids (`node:<uuid>`, `external:<chain>:<n>`):
//! never a key, a path or an upstream URL, and never a value a client can
//! choose freely (an unknown chain is counted as `-`).

use crate::upstream::Pools;
use hood_domain::rpc::UsageStatus;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    chain: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChainLabels {
    chain: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    chain: String,
    upstream: String,
}

fn latency_histogram() -> Histogram {
    // 0.1 ms … ~3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

/// The handles of one chain, resolved once: the hot path then touches
/// atomics only, never allocating a label set.
struct ChainHandles {
    calls: Vec<(&'static str, Counter)>,
    compute_units: Counter,
    latency: Histogram,
}

pub struct EdgeMetrics {
    registry: Registry,
    chains: std::sync::RwLock<std::collections::HashMap<String, std::sync::Arc<ChainHandles>>>,
    calls: Family<CallLabels, Counter>,
    compute_units: Family<ChainLabels, Counter>,
    latency: Family<ChainLabels, Histogram, fn() -> Histogram>,
    rejected_keys: Counter,
    upstream_head: Family<UpstreamLabels, Gauge>,
    upstream_available: Family<UpstreamLabels, Gauge>,
    cache_hits: Gauge,
    cache_misses: Gauge,
}

impl Default for EdgeMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hood_edge");
        let m = Self {
            calls: Family::default(),
            compute_units: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            rejected_keys: Counter::default(),
            upstream_head: Family::default(),
            upstream_available: Family::default(),
            cache_hits: Gauge::default(),
            cache_misses: Gauge::default(),
            registry: Registry::default(),
            chains: std::sync::RwLock::default(),
        };
        registry.register(
            "calls",
            "JSON-RPC calls answered, by chain and usage status",
            m.calls.clone(),
        );
        registry.register(
            "compute_units",
            "Compute units metered",
            m.compute_units.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer an HTTP request",
            m.latency.clone(),
        );
        registry.register(
            "rejected_keys",
            "Requests refused for an unknown or revoked key",
            m.rejected_keys.clone(),
        );
        registry.register(
            "upstream_head",
            "Latest head seen per upstream",
            m.upstream_head.clone(),
        );
        registry.register(
            "upstream_available",
            "1 when an upstream's breaker is closed",
            m.upstream_available.clone(),
        );
        registry.register(
            "cache_hits",
            "Answers served from the cache",
            m.cache_hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Cacheable calls not in the cache",
            m.cache_misses.clone(),
        );
        Self { registry, ..m }
    }
}

impl EdgeMetrics {
    fn handles(&self, chain: &str) -> std::sync::Arc<ChainHandles> {
        if let Some(h) = self
            .chains
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(chain)
        {
            return h.clone();
        }
        let labels = ChainLabels {
            chain: chain.to_owned(),
        };
        let handles = std::sync::Arc::new(ChainHandles {
            calls: UsageStatus::ALL
                .iter()
                .map(|s| {
                    let counter = self
                        .calls
                        .get_or_create(&CallLabels {
                            chain: chain.to_owned(),
                            status: s.as_str(),
                        })
                        .clone();
                    (s.as_str(), counter)
                })
                .collect(),
            compute_units: self.compute_units.get_or_create(&labels).clone(),
            latency: self.latency.get_or_create(&labels).clone(),
        });
        self.chains
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(chain.to_owned())
            .or_insert(handles)
            .clone()
    }

    pub fn call(&self, chain: &str, status: UsageStatus, cu: u32) {
        let h = self.handles(chain);
        if let Some((_, c)) = h.calls.iter().find(|(s, _)| *s == status.as_str()) {
            c.inc();
        }
        if cu > 0 {
            h.compute_units.inc_by(u64::from(cu));
        }
    }

    pub fn answered(&self, chain: &str, seconds: f64) {
        self.handles(chain).latency.observe(seconds);
    }

    pub fn rejected_key(&self) {
        self.rejected_keys.inc();
    }

    /// The text exposition, with upstream and cache gauges read now.
    pub fn render(&self, pools: &Pools, cache: (u64, u64)) -> String {
        for (chain, upstream, head, available) in pools.snapshot() {
            let labels = UpstreamLabels { chain, upstream };
            self.upstream_head
                .get_or_create(&labels)
                .set(i64::try_from(head).unwrap_or(i64::MAX));
            self.upstream_available
                .get_or_create(&labels)
                .set(i64::from(available));
        }
        self.cache_hits
            .set(i64::try_from(cache.0).unwrap_or(i64::MAX));
        self.cache_misses
            .set(i64::try_from(cache.1).unwrap_or(i64::MAX));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding edge metrics failed");
        }
        out
    }
}
