//! Wiring of the edge role: part of `hood up` (port 8545) and
//! `hood serve --role edge` in cluster mode.

use anyhow::{Context, Result};
use hood_bus::EventBus;
use hood_chains::ChainCatalog;
use hood_domain::rpc::{CuPricing, Plan, PlanCatalog};
use hood_edge::{EdgeConfig, EdgeDeps, EdgeHandle};
use hood_store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, clap::Args)]
pub struct EdgeArgs {
    /// Plans, overriding or adding to the defaults: `name=cu_per_minute[:burst]`,
    /// comma-separated (defaults: free=1000, basic=10000, pro=100000,
    /// enterprise=1000000 compute units per minute, burst one minute).
    #[arg(long, env = "HOOD_EDGE_PLANS", value_delimiter = ',')]
    pub edge_plans: Vec<String>,
    /// Compute-unit prices overriding the defaults: `method=cu,…`.
    #[arg(long, env = "HOOD_EDGE_PRICES", value_delimiter = ',')]
    pub edge_prices: Vec<String>,
    /// Public JSON-RPC edge listen address.
    #[arg(long, env = "HOOD_EDGE_ADDR", default_value = "127.0.0.1:8545")]
    pub edge_addr: SocketAddr,
    /// Serve `{chain}.{domain}/v1/{key}` as well as `/{chain}/v1/{key}`.
    #[arg(long, env = "HOOD_EDGE_DOMAIN")]
    pub edge_domain: Option<String>,
    /// External upstreams: `chain=url,chain=url2,…` (credentials in a URL
    /// are sent as basic auth and never logged).
    #[arg(
        long,
        env = "HOOD_EDGE_UPSTREAMS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub edge_upstreams: Vec<String>,
    /// Most calls in one JSON-RPC batch.
    #[arg(long, env = "HOOD_EDGE_MAX_BATCH", default_value_t = 100)]
    pub edge_max_batch: usize,
    /// Redis for cluster-wide rate limits (`redis://host:port/db`); without
    /// it each replica limits on its own.
    #[arg(long, env = "HOOD_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of the limiter's Redis keys.
    #[arg(long, env = "HOOD_REDIS_PREFIX", default_value = "hood:limit")]
    pub redis_prefix: String,
    /// Largest request body, bytes.
    #[arg(long, env = "HOOD_EDGE_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub edge_max_body_bytes: usize,
    /// The usage spool: every answered call's usage event is written here
    /// before the answer leaves and shipped from here, so a crash loses
    /// none. One directory per edge replica (default `$HOOD_HOME/edge-spool`).
    #[arg(long, env = "HOOD_EDGE_SPOOL_DIR")]
    pub edge_spool_dir: Option<PathBuf>,
}

impl EdgeArgs {
    /// The edge's settings; `home` is `$HOOD_HOME`, where the usage spool
    /// lives unless `--edge-spool-dir` says otherwise.
    pub fn config(&self, home: &Path) -> Result<EdgeConfig> {
        let mut external: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pair in &self.edge_upstreams {
            let (chain, url) = pair.split_once('=').with_context(|| {
                format!(
                    "HOOD_EDGE_UPSTREAMS entry for `{}` is not chain=url",
                    pair.split('=').next().unwrap_or_default()
                )
            })?;
            external
                .entry(chain.trim().to_owned())
                .or_default()
                .push(url.trim().to_owned());
        }
        anyhow::ensure!(
            self.edge_max_batch > 0,
            "HOOD_EDGE_MAX_BATCH must be at least 1"
        );
        let mut config = EdgeConfig {
            plans: plans(&self.edge_plans)?,
            pricing: prices(&self.edge_prices)?,
            domain: self.edge_domain.clone(),
            max_batch: self.edge_max_batch,
            max_body_bytes: self.edge_max_body_bytes.max(1024),
            ..EdgeConfig::default()
        };
        config.meter.spool_dir = Some(
            self.edge_spool_dir
                .clone()
                .unwrap_or_else(|| home.join("edge-spool")),
        );
        config.pools.external = external;
        Ok(config)
    }
}

/// Where usage events go: the store (embedded) or the bus (cluster).
pub enum UsageSink {
    Store,
    Bus,
}

/// Starts one edge replica.
pub async fn start(
    args: &EdgeArgs,
    home: &Path,
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    chains: &ChainCatalog,
    sink: UsageSink,
) -> Result<EdgeHandle> {
    let config = args.config(home)?;
    let listener = crate::listen::bind(args.edge_addr, crate::listen::EDGE).await?;
    let chains: BTreeSet<String> = chains.iter().map(|c| c.name.clone()).collect();
    let deps = EdgeDeps {
        usage: match sink {
            UsageSink::Store => Arc::new(hood_edge::meter::StoreWriter(store.clone())),
            UsageSink::Bus => Arc::new(hood_edge::meter::BusWriter(bus.clone())),
        },
        limiter: match &args.redis_url {
            Some(url) => Arc::new(
                hood_edge::limit::RedisLimiter::connect(url, &args.redis_prefix)
                    .await
                    .context("connecting to Redis for rate limits")?,
            ),
            None => Arc::new(hood_edge::limit::LocalLimiter::default()),
        },
        store,
        bus,
        chains,
    };
    hood_edge::start(config, deps, listener)
        .await
        .context("starting the edge")
}

/// The plan catalog: the defaults with `name=cu_per_minute[:burst]`
/// entries replacing or adding plans.
pub fn plans(entries: &[String]) -> Result<PlanCatalog> {
    let mut plans: Vec<Plan> = PlanCatalog::defaults().plans().to_vec();
    for entry in entries.iter().filter(|e| !e.trim().is_empty()) {
        let (name, rate) = entry.split_once('=').with_context(|| {
            format!("HOOD_EDGE_PLANS entry `{entry}` is not name=cu_per_minute[:burst]")
        })?;
        let (rate, burst) = match rate.split_once(':') {
            Some((r, b)) => (r, Some(b)),
            None => (rate, None),
        };
        let number = |v: &str| {
            v.trim().parse::<u64>().with_context(|| {
                format!("HOOD_EDGE_PLANS entry `{entry}`: `{v}` is not a whole number")
            })
        };
        let cu_per_minute = number(rate)?;
        let plan = Plan {
            name: name.trim().to_owned(),
            cu_per_minute,
            burst_cu: burst.map(number).transpose()?.unwrap_or(cu_per_minute),
        };
        match plans.iter_mut().find(|p| p.name == plan.name) {
            Some(p) => *p = plan,
            None => plans.push(plan),
        }
    }
    PlanCatalog::from_plans(plans).context("HOOD_EDGE_PLANS")
}

/// The price table: the defaults with `method=cu` overrides.
pub fn prices(entries: &[String]) -> Result<CuPricing> {
    let mut exact = BTreeMap::new();
    for entry in entries.iter().filter(|e| !e.trim().is_empty()) {
        let (method, cu) = entry
            .split_once('=')
            .with_context(|| format!("HOOD_EDGE_PRICES entry `{entry}` is not method=cu"))?;
        let cu: u32 = cu
            .trim()
            .parse()
            .with_context(|| format!("HOOD_EDGE_PRICES entry `{entry}`: not a whole number"))?;
        exact.insert(method.trim().to_owned(), cu);
    }
    CuPricing::defaults()
        .with_overrides(exact)
        .context("HOOD_EDGE_PRICES")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plans_override_and_extend_the_defaults() {
        let p = plans(&["free=500".into(), "bulk=90000:1000".into()]).unwrap();
        assert_eq!(p.get("free").unwrap().cu_per_minute, 500);
        assert_eq!(p.get("free").unwrap().burst_cu, 500);
        assert_eq!(p.get("bulk").unwrap().burst_cu, 1000);
        assert_eq!(p.get("pro").unwrap().cu_per_minute, 100_000);
        for bad in ["free", "free=x", "free=0", "Bad Name=10", "free=10:y"] {
            assert!(plans(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn prices_override_the_defaults() {
        let p = prices(&["eth_call=40".into()]).unwrap();
        assert_eq!(p.price("eth_call"), 40);
        assert_eq!(p.price("eth_blockNumber"), 10);
        assert!(prices(&["eth_call".into()]).is_err());
        assert!(prices(&["eth_call=-1".into()]).is_err());
    }
}
