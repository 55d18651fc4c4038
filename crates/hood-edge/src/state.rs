//! What every request handler of one edge replica shares, HTTP and
//! WebSocket alike.

use crate::cache::ResponseCache;
use crate::keys::KeyCache;
use crate::limit::Limiter;
use crate::meter::Meter;
use crate::metrics::EdgeMetrics;
use crate::settings::WsSettings;
use crate::upstream::Pools;
use axum::http::HeaderMap;
use hood_domain::rpc::{CuPricing, PlanCatalog};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Finality depth of a chain with none configured.
pub const DEFAULT_FINALITY_DEPTH: u64 = 64;

/// The shared state of the request handlers.
pub struct Edge {
    pub keys: Arc<KeyCache>,
    /// Organizations cut off for want of prepaid credits.
    pub stops: Arc<crate::stops::SpendingStops>,
    pub pools: Arc<Pools>,
    pub limiter: Arc<dyn Limiter>,
    pub meter: Meter,
    pub plans: PlanCatalog,
    pub pricing: CuPricing,
    /// Chains the edge serves (catalog + configured external upstreams).
    pub chains: BTreeSet<String>,
    pub domain: Option<String>,
    pub max_batch: usize,
    /// WebSocket sessions: limits, shutdown signal, open-session tracking.
    pub ws: WsSettings,
    pub cache: Arc<ResponseCache>,
    pub metrics: Arc<EdgeMetrics>,
    /// Blocks behind the best head that count as final, per chain.
    pub finality_depth: HashMap<String, u64>,
}

impl Edge {
    /// The chain named by the `Host` header (host routing).
    pub(crate) fn chain_from_host(&self, headers: &HeaderMap) -> Option<String> {
        let host = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let host = host.split(':').next().unwrap_or_default();
        let chain = match &self.domain {
            Some(domain) => host
                .strip_suffix(domain.as_str())
                .and_then(|c| c.strip_suffix('.')),
            None => host.split('.').next(),
        };
        chain.filter(|c| !c.is_empty()).map(str::to_owned)
    }

    /// The chain's highest final block: the best head of its pool minus
    /// its finality depth (`None` while no head is known).
    pub(crate) fn finalized_height(&self, chain: &str) -> Option<u64> {
        let depth = self
            .finality_depth
            .get(chain)
            .copied()
            .unwrap_or(DEFAULT_FINALITY_DEPTH);
        self.pools
            .chain(chain)
            .map(|p| p.best_head())
            .filter(|h| *h > 0)
            .map(|h| h.saturating_sub(depth))
    }
}
