//! The `edge` role: Hood's public JSON-RPC gateway.
//!
//! * [`keys`]: RPC keys verified against the store, cached, invalidated on
//!   every replica through the bus.
//! * [`limit`]: GCRA compute-unit limits per key × chain.
//! * [`jsonrpc`]: parsing and errors (single, batch, notifications).
//! * [`upstream`]: per-chain pools of healthy managed nodes and external
//!   URLs; head tracking, breaker, retries.
//! * [`cache`]: finality-aware answers.
//! * [`spool`]: a crash-safe append-only log in segment files.
//! * [`meter`]: one usage event per answered call, spooled before the
//!   answer leaves, shipped in batches.
//! * [`metrics`]: Prometheus, for this machine only.
//! * `settings`: WebSocket settings and open-session tracking.
//! * `state`: what every handler shares ([`EdgeConfig`] made live).
//! * `reply`: answers the edge writes itself.
//! * `admission`: the gate every call passes, HTTP and WebSocket alike:
//!   key, chain, client address, origin, plan, method scope, CU charged;
//!   refusals; usage recorded.
//! * `http`: the HTTP request path as stages (parse → admit → cache →
//!   forward → merge → respond).
//! * `ws`: JSON-RPC over WebSocket on the same paths (`eth_subscribe`),
//!   every pushed message metered.
//! * `server`: the routes, tying `http` and `ws` together.
//!
//! Each module imports only modules listed before it, so there is no
//! import cycle: the shared state knows no handler, admission knows
//! neither transport, and only the router knows both.

mod admission;
pub mod cache;
mod http;
pub mod jsonrpc;
pub mod keys;
pub mod limit;
pub mod meter;
pub mod metrics;
mod reply;
mod server;
mod settings;
pub mod spool;
mod state;
pub mod stops;
pub mod upstream;
mod ws;

use hood_bus::EventBus;
use hood_domain::rpc::{CuPricing, PlanCatalog};
use hood_store::Store;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Everything configurable about one edge replica.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    pub plans: PlanCatalog,
    pub pricing: CuPricing,
    /// `{chain}.{domain}` host routing; without it the first host label is
    /// the chain.
    pub domain: Option<String>,
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub pools: upstream::PoolConfig,
    pub meter: meter::MeterConfig,
    /// Backstop resync of the key cache from the store.
    pub key_resync_every: Duration,
    /// How often the set of organizations cut off for want of credits is
    /// re-read.
    pub credit_stops_every: Duration,
    /// How long an unknown key prefix is remembered.
    pub unknown_key_ttl: Duration,
    /// How long shutdown waits for in-flight requests (and open
    /// WebSockets to close).
    pub drain_timeout: Duration,
    /// Cached answers kept (0 turns the cache off).
    pub cache_entries: usize,
    /// Blocks behind the best head that count as final, per chain (others:
    /// [`state::DEFAULT_FINALITY_DEPTH`]).
    pub finality_depth: std::collections::HashMap<String, u64>,
    /// How often an open WebSocket re-reads its key (revocation reaches
    /// open sockets within this).
    pub ws_recheck_every: Duration,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            plans: PlanCatalog::defaults(),
            pricing: CuPricing::defaults(),
            domain: None,
            max_body_bytes: 1 << 20,
            max_batch: 100,
            pools: upstream::PoolConfig::default(),
            meter: meter::MeterConfig::default(),
            key_resync_every: Duration::from_secs(10),
            credit_stops_every: Duration::from_secs(2),
            unknown_key_ttl: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(10),
            cache_entries: 10_000,
            finality_depth: std::collections::HashMap::new(),
            ws_recheck_every: Duration::from_secs(1),
        }
    }
}

/// What the edge is wired to.
pub struct EdgeDeps {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn EventBus>,
    pub limiter: Arc<dyn limit::Limiter>,
    pub usage: Arc<dyn meter::UsageWriter>,
    /// Chains the edge answers for.
    pub chains: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("cannot build the upstream HTTP client: {0}")]
    Client(String),
    #[error("cannot build the upstream TLS configuration: {0}")]
    Tls(String),
    #[error("edge server failed: {0}")]
    Serve(String),
    #[error("cannot open the usage spool")]
    Spool(#[from] spool::SpoolError),
}

/// A running edge replica.
pub struct EdgeHandle {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    loops: Vec<JoinHandle<()>>,
    meter: meter::MeterTask,
    sessions: Arc<settings::Sessions>,
    drain_timeout: Duration,
}

impl EdgeHandle {
    /// WebSocket sessions open right now.
    pub fn websockets(&self) -> usize {
        self.sessions.open()
    }

    /// Stops accepting, lets in-flight requests finish, closes open
    /// WebSockets (1001), and writes every usage event still queued.
    /// Returns the events written in all.
    pub async fn shutdown(self) -> u64 {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        // Upgraded connections outlive the HTTP server: wait for their
        // sessions, which saw the stop signal, so their usage is written.
        if tokio::time::timeout(self.drain_timeout, self.sessions.idle())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.sessions.open(),
                "websockets still open after the drain timeout"
            );
        }
        for l in self.loops {
            l.abort();
        }
        self.meter.finish().await
    }
}

use hood_clock::now;

/// Starts an edge replica on `listener`.
pub async fn start(
    config: EdgeConfig,
    deps: EdgeDeps,
    listener: tokio::net::TcpListener,
) -> Result<EdgeHandle, EdgeError> {
    let addr = listener
        .local_addr()
        .map_err(|e| EdgeError::Serve(e.to_string()))?;
    let keys = Arc::new(keys::KeyCache::new(
        deps.store.clone(),
        config.unknown_key_ttl,
    ));
    let pools = Arc::new(
        upstream::Pools::new(config.pools.clone()).map_err(|e| EdgeError::Client(e.to_string()))?,
    );
    if let Err(e) = pools.refresh(deps.store.as_ref()).await {
        tracing::warn!(error = %e, "reading upstream nodes failed");
    }
    pools.probe_all().await;
    let (meter, meter_task) = meter::spawn(deps.usage.clone(), config.meter.clone())?;
    let mut chains = deps.chains.clone();
    chains.extend(config.pools.external.keys().cloned());
    let (stop, stopped) = watch::channel(false);
    let ws = settings::WsSettings::new(
        config.max_body_bytes,
        config.ws_recheck_every,
        config.pools.request_timeout,
        stopped.clone(),
    )
    .map_err(|e| EdgeError::Tls(e.to_string()))?;
    let sessions = ws.sessions.clone();
    let stops = Arc::new(stops::SpendingStops::default());
    if let Err(e) = stops.refresh(deps.store.as_ref()).await {
        tracing::warn!(error = %e, "reading credit stops failed");
    }
    let edge = Arc::new(state::Edge {
        keys: keys.clone(),
        stops: stops.clone(),
        pools: pools.clone(),
        limiter: deps.limiter.clone(),
        meter,
        plans: config.plans.clone(),
        pricing: config.pricing.clone(),
        chains,
        domain: config.domain.clone(),
        max_batch: config.max_batch,
        cache: Arc::new(cache::ResponseCache::new(config.cache_entries)),
        metrics: Arc::new(metrics::EdgeMetrics::default()),
        finality_depth: config.finality_depth.clone(),
        ws,
    });
    let mut loops = Vec::new();

    // Key changes from the bus: evict at once on every replica.
    {
        let keys = keys.clone();
        let bus = deps.bus.clone();
        loops.push(tokio::spawn(async move {
            loop {
                match bus.watch(&[keys::KEY_EVENTS.to_owned()]).await {
                    Ok(mut watch) => loop {
                        match watch.next().await {
                            Ok(event) => keys.apply_event(&event.payload),
                            Err(e) => {
                                // Missed events: start over from the store.
                                tracing::warn!(error = %e, "key watch interrupted; clearing the key cache");
                                keys.clear();
                            }
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot watch key changes; retrying");
                        keys.clear();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }));
    }
    // Backstop: re-read recently changed keys.
    {
        let keys = keys.clone();
        let every = config.key_resync_every;
        loops.push(tokio::spawn(async move {
            let mut since = now();
            loop {
                tokio::time::sleep(every).await;
                let started = now();
                // Overlap the windows so a change committed during the last
                // read is not missed.
                match keys.resync(since.plus_millis(-2_000)).await {
                    Ok(_) => since = started,
                    Err(e) => tracing::warn!(error = %e, "key resync failed"),
                }
            }
        }));
    }
    // Organizations cut off for want of credits.
    {
        let store = deps.store.clone();
        let every = config.credit_stops_every;
        loops.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = stops.refresh(store.as_ref()).await {
                    tracing::warn!(error = %e, "reading credit stops failed");
                }
            }
        }));
    }
    // Pool membership and head probes.
    {
        let pools = pools.clone();
        let store = deps.store.clone();
        let refresh = config.pools.refresh_every;
        loops.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(refresh).await;
                if let Err(e) = pools.refresh(store.as_ref()).await {
                    tracing::warn!(error = %e, "reading upstream nodes failed");
                }
                pools.probe_all().await;
            }
        }));
    }

    let app = server::router(edge, config.max_body_bytes);
    let drain = config.drain_timeout;
    let server = tokio::spawn(async move {
        let mut stopped = stopped;
        let mut stopped_again = stopped.clone();
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|s| *s).await;
        });
        let forced = async move {
            let _ = stopped_again.wait_for(|s| *s).await;
            tokio::time::sleep(drain).await;
        };
        tokio::select! {
            r = serve => if let Err(e) = r { tracing::error!(error = %e, "edge server failed") },
            () = forced => tracing::warn!("edge drain timed out; closing open connections"),
        }
    });
    tracing::info!(%addr, "edge serving");
    Ok(EdgeHandle {
        addr,
        stop,
        server,
        loops,
        meter: meter_task,
        sessions,
        drain_timeout: config.drain_timeout,
    })
}
