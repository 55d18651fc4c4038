//! Wiring of the edge role: part of `hood up` (port 8545) and
//! `hood serve --role edge` in cluster mode.

use anyhow::{Context, Result};
use hood_bus::EventBus;
use hood_chains::ChainCatalog;
use hood_edge::{EdgeConfig, EdgeDeps, EdgeHandle};
use hood_store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, Clone, clap::Args)]
pub struct EdgeArgs {
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
    /// Largest request body, bytes.
    #[arg(long, env = "HOOD_EDGE_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub edge_max_body_bytes: usize,
}

impl EdgeArgs {
    pub fn config(&self) -> Result<EdgeConfig> {
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
            domain: self.edge_domain.clone(),
            max_batch: self.edge_max_batch,
            max_body_bytes: self.edge_max_body_bytes.max(1024),
            ..EdgeConfig::default()
        };
        config.pools.external = external;
        Ok(config)
    }
}

/// Starts one edge replica writing usage straight into the store.
pub async fn start(
    args: &EdgeArgs,
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    chains: &ChainCatalog,
) -> Result<EdgeHandle> {
    let config = args.config()?;
    let listener = tokio::net::TcpListener::bind(args.edge_addr)
        .await
        .with_context(|| format!("binding the edge to {}", args.edge_addr))?;
    let chains: BTreeSet<String> = chains.iter().map(|c| c.name.clone()).collect();
    let deps = EdgeDeps {
        usage: Arc::new(hood_edge::meter::StoreWriter(store.clone())),
        limiter: Arc::new(hood_edge::limit::LocalLimiter::default()),
        store,
        bus,
        chains,
    };
    hood_edge::start(config, deps, listener)
        .await
        .context("starting the edge")
}
