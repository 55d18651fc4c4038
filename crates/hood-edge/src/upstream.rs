//! Upstream pools, one per chain: the managed nodes of the chain that are
//! `healthy` (re-read from the store every second) plus configured external
//! URLs. Each upstream has its head tracked by probing and a circuit
//! breaker; a lagging or broken upstream is skipped. Calls are retried on
//! another upstream after a connection error or a 5xx, except those the
//! domain's retry rule ([`hood_domain::rpc::may_resend`]: never a
//! transaction submission) forbids once they may have reached an upstream.

use bytes::Bytes;
use hood_store::edge::EdgeStore;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Circuit breaker settings.
#[derive(Debug, Clone, Copy)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// How long an open breaker refuses calls before one trial.
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            failures: 3,
            open_for: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Default)]
struct Breaker {
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

/// One upstream endpoint.
#[derive(Debug)]
pub struct Upstream {
    /// `node:<uuid>` or `external:<chain>:<n>`.
    pub id: String,
    /// Without credentials (sent as basic auth instead, never logged).
    url: String,
    /// `url` parsed once, not per request (`None`: invalid, every call fails).
    parsed: Option<reqwest::Url>,
    basic_auth: Option<(String, Option<String>)>,
    /// `scheme://host:port/…`, safe to log.
    pub display: String,
    /// Latest head seen by the prober (0 = unknown).
    head: AtomicU64,
    breaker: Mutex<Breaker>,
}

impl Upstream {
    pub fn new(id: String, raw_url: &str) -> Self {
        let (url, basic_auth) = split_credentials(raw_url);
        Self {
            id,
            display: mask_url(&url),
            parsed: reqwest::Url::parse(&url).ok(),
            url,
            basic_auth,
            head: AtomicU64::new(0),
            breaker: Mutex::new(Breaker::default()),
        }
    }

    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Relaxed)
    }

    fn available(&self, now: Instant) -> bool {
        let b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        b.open_until.is_none_or(|until| now >= until)
    }

    fn succeeded(&self) {
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        if b.open_until.is_some() {
            tracing::info!(upstream = %self.display, "circuit closed");
        }
        *b = Breaker::default();
    }

    fn failed(&self, policy: &BreakerPolicy) {
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        b.consecutive_failures += 1;
        if b.consecutive_failures >= policy.failures {
            if b.open_until.is_none() {
                tracing::warn!(upstream = %self.display, failures = b.consecutive_failures, "circuit opened");
            }
            b.open_until = Some(Instant::now() + policy.open_for);
        }
    }

    /// The `Authorization` header value for the credentials that were in
    /// the configured URL (basic auth), if any. Never log it.
    pub(crate) fn authorization(&self) -> Option<String> {
        use base64::Engine as _;
        let (user, pass) = self.basic_auth.as_ref()?;
        let pair = format!("{user}:{}", pass.as_deref().unwrap_or_default());
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }

    /// The WebSocket URL of this upstream (same host and path).
    pub fn ws_url(&self) -> String {
        if let Some(rest) = self.url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.url.clone()
        }
    }
}

/// Moves `user:pass@` out of a URL.
fn split_credentials(raw: &str) -> (String, Option<(String, Option<String>)>) {
    let Some(scheme_end) = raw.find("://").map(|i| i + 3) else {
        return (raw.to_owned(), None);
    };
    let authority_end = raw[scheme_end..]
        .find('/')
        .map_or(raw.len(), |i| scheme_end + i);
    match raw[scheme_end..authority_end].rfind('@') {
        Some(at) => {
            let creds = &raw[scheme_end..scheme_end + at];
            let url = format!("{}{}", &raw[..scheme_end], &raw[scheme_end + at + 1..]);
            let (user, pass) = match creds.split_once(':') {
                Some((u, p)) => (u.to_owned(), Some(p.to_owned())),
                None => (creds.to_owned(), None),
            };
            (url, Some((user, pass)))
        }
        None => (raw.to_owned(), None),
    }
}

/// `scheme://host:port` plus `/…` when there is a path (which may carry a
/// provider's key).
pub fn mask_url(url: &str) -> String {
    let (url, _) = split_credentials(url);
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return "<invalid url>".to_owned();
    };
    match url[scheme_end..].find('/') {
        Some(i) if url.len() > scheme_end + i + 1 => format!("{}/…", &url[..scheme_end + i]),
        _ => url.trim_end_matches('/').to_owned(),
    }
}

/// Why one attempt on one upstream failed.
#[derive(Debug)]
pub enum SendError {
    InvalidUrl,
    Http(reqwest::Error),
}

impl From<reqwest::Error> for SendError {
    fn from(e: reqwest::Error) -> Self {
        SendError::Http(e)
    }
}

impl SendError {
    fn is_connect(&self) -> bool {
        match self {
            // Nothing was sent: as safe to retry as a refused connection.
            SendError::InvalidUrl => true,
            SendError::Http(e) => e.is_connect(),
        }
    }

    fn is_timeout(&self) -> bool {
        matches!(self, SendError::Http(e) if e.is_timeout())
    }
}

/// Upstreams of one chain.
#[derive(Default)]
pub struct ChainPool {
    upstreams: RwLock<Vec<Arc<Upstream>>>,
    next: AtomicUsize,
}

impl ChainPool {
    pub fn upstreams(&self) -> Vec<Arc<Upstream>> {
        self.upstreams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Highest head of any upstream.
    pub fn best_head(&self) -> u64 {
        self.upstreams().iter().map(|u| u.head()).max().unwrap_or(0)
    }

    /// Upstreams to try, in order: round robin over those whose breaker is
    /// closed and that are within `lag_tolerance` of the best head.
    pub fn candidates(&self, lag_tolerance: u64) -> Vec<Arc<Upstream>> {
        let all = self.upstreams();
        if all.is_empty() {
            return all;
        }
        let now = Instant::now();
        let best = all.iter().map(|u| u.head()).max().unwrap_or(0);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = all.len();
        (0..n)
            .map(|i| all[(start + i) % n].clone())
            .filter(|u| u.available(now))
            // An unknown head (0) is only acceptable while no head is known.
            .filter(|u| {
                let h = u.head();
                (h == 0 && best == 0) || (h > 0 && h + lag_tolerance >= best)
            })
            .collect()
    }
}

/// Why a forwarded call got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no healthy upstream for chain `{0}`")]
    NoUpstream(String),
    /// Every attempt failed; the message names upstreams only by their
    /// masked URL.
    #[error("upstream failure: {0}")]
    Failed(String),
}

/// Settings of the pools.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// chain → external upstream URLs (may contain credentials).
    pub external: BTreeMap<String, Vec<String>>,
    pub lag_tolerance: u64,
    pub refresh_every: Duration,
    pub probe_every: Duration,
    pub request_timeout: Duration,
    pub max_attempts: usize,
    pub breaker: BreakerPolicy,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            external: BTreeMap::new(),
            lag_tolerance: 5,
            refresh_every: Duration::from_secs(1),
            probe_every: Duration::from_secs(1),
            request_timeout: Duration::from_secs(15),
            max_attempts: 3,
            breaker: BreakerPolicy::default(),
        }
    }
}

/// Every chain's pool.
pub struct Pools {
    config: PoolConfig,
    chains: RwLock<HashMap<String, Arc<ChainPool>>>,
    http: reqwest::Client,
}

impl Pools {
    pub fn new(config: PoolConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()?;
        let pools = Self {
            config,
            chains: RwLock::new(HashMap::new()),
            http,
        };
        pools.apply_membership(&[]);
        Ok(pools)
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    pub fn chain(&self, chain: &str) -> Option<Arc<ChainPool>> {
        self.chains
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(chain)
            .cloned()
    }

    /// Replaces the managed members (node id, chain, endpoint); external
    /// upstreams always stay. Known upstreams keep their head and breaker.
    pub fn apply_membership(&self, managed: &[(String, String, String)]) {
        let mut wanted: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (chain, urls) in &self.config.external {
            for (i, url) in urls.iter().enumerate() {
                wanted
                    .entry(chain.clone())
                    .or_default()
                    .push((format!("external:{chain}:{i}"), url.clone()));
            }
        }
        for (node, chain, url) in managed {
            wanted
                .entry(chain.clone())
                .or_default()
                .push((format!("node:{node}"), url.clone()));
        }
        let mut chains = self.chains.write().unwrap_or_else(|p| p.into_inner());
        for (chain, pool) in chains.iter() {
            if !wanted.contains_key(chain) {
                pool.upstreams
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
            }
        }
        for (chain, members) in wanted {
            let pool = chains.entry(chain.clone()).or_default().clone();
            let mut current = pool.upstreams.write().unwrap_or_else(|p| p.into_inner());
            let before: HashMap<String, Arc<Upstream>> =
                current.iter().map(|u| (u.id.clone(), u.clone())).collect();
            let next: Vec<Arc<Upstream>> = members
                .into_iter()
                .map(|(id, url)| {
                    before
                        .get(&id)
                        .cloned()
                        .unwrap_or_else(|| Arc::new(Upstream::new(id, &url)))
                })
                .collect();
            for u in &next {
                if !before.contains_key(&u.id) {
                    tracing::info!(chain = %chain, upstream = %u.display, id = %u.id, "upstream joined");
                }
            }
            for id in before.keys() {
                if !next.iter().any(|u| &u.id == id) {
                    tracing::info!(chain = %chain, id = %id, "upstream left");
                }
            }
            *current = next;
        }
    }

    /// (chain, upstream id, head, breaker closed) of every upstream.
    pub fn snapshot(&self) -> Vec<(String, String, u64, bool)> {
        let now = Instant::now();
        let chains = self.chains.read().unwrap_or_else(|p| p.into_inner());
        chains
            .iter()
            .flat_map(|(chain, pool)| {
                pool.upstreams()
                    .into_iter()
                    .map(|u| (chain.clone(), u.id.clone(), u.head(), u.available(now)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Reads the healthy managed nodes from the store.
    pub async fn refresh(&self, store: &dyn EdgeStore) -> Result<(), hood_store::StoreError> {
        let nodes = store.serving_nodes().await?;
        let managed: Vec<(String, String, String)> = nodes
            .into_iter()
            .map(|n| (n.node_id.to_string(), n.chain, n.rpc_endpoint))
            .collect();
        self.apply_membership(&managed);
        Ok(())
    }

    /// Probes every upstream's head once (concurrently).
    pub async fn probe_all(&self) {
        let all: Vec<Arc<Upstream>> = {
            let chains = self.chains.read().unwrap_or_else(|p| p.into_inner());
            chains.values().flat_map(|p| p.upstreams()).collect()
        };
        let probes = all.into_iter().map(|u| async move {
            let body = Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#,
            );
            match self.send(&u, body).await {
                Ok((status, bytes)) if status < 500 => {
                    let head = hood_jsonrpc::parse_answer(&bytes)
                        .ok()
                        .and_then(|v| hood_jsonrpc::quantity(&v));
                    match head {
                        Some(h) => {
                            u.head.store(h, Ordering::Relaxed);
                            u.succeeded();
                        }
                        None => u.failed(&self.config.breaker),
                    }
                }
                _ => u.failed(&self.config.breaker),
            }
        });
        futures::future::join_all(probes).await;
    }

    async fn send(&self, upstream: &Upstream, body: Bytes) -> Result<(u16, Bytes), SendError> {
        let mut request = self
            .http
            .post(match &upstream.parsed {
                Some(url) => url.clone(),
                None => return Err(SendError::InvalidUrl),
            })
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some((user, pass)) = &upstream.basic_auth {
            request = request.basic_auth(user, pass.as_ref());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok((status, bytes))
    }

    /// Sends a JSON-RPC body to the chain's upstreams until one answers.
    /// Without `may_resend` (the body holds a call the domain's retry rule
    /// forbids resending) it is retried only when the connection was never
    /// made, so a transaction is never sent twice.
    pub async fn forward(
        &self,
        chain: &str,
        body: Bytes,
        may_resend: bool,
    ) -> Result<Bytes, ForwardError> {
        let pool = self
            .chain(chain)
            .ok_or_else(|| ForwardError::NoUpstream(chain.to_owned()))?;
        let candidates = pool.candidates(self.config.lag_tolerance);
        if candidates.is_empty() {
            return Err(ForwardError::NoUpstream(chain.to_owned()));
        }
        let mut last = String::new();
        for upstream in candidates.iter().take(self.config.max_attempts.max(1)) {
            match self.send(upstream, body.clone()).await {
                Ok((status, bytes)) if status < 500 => {
                    upstream.succeeded();
                    return Ok(bytes);
                }
                Ok((status, _)) => {
                    upstream.failed(&self.config.breaker);
                    last = format!("{} answered HTTP {status}", upstream.display);
                    tracing::debug!(upstream = %upstream.display, status, "upstream 5xx");
                    if !may_resend {
                        break;
                    }
                }
                Err(e) => {
                    upstream.failed(&self.config.breaker);
                    let never_sent = e.is_connect();
                    last = format!(
                        "{}: {}",
                        upstream.display,
                        if e.is_timeout() {
                            "timed out"
                        } else if never_sent {
                            "connection refused"
                        } else {
                            "connection failed"
                        }
                    );
                    tracing::debug!(upstream = %upstream.display, error = %last, "upstream error");
                    if !may_resend && !never_sent {
                        break;
                    }
                }
            }
        }
        Err(ForwardError::Failed(last))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn credentials_leave_the_url() {
        let (url, auth) = split_credentials("https://user:pa55@rpc.example:8545/v3/abc");
        assert_eq!(url, "https://rpc.example:8545/v3/abc");
        assert_eq!(auth, Some(("user".into(), Some("pa55".into()))));
        assert_eq!(
            mask_url("https://user:pa55@rpc.example:8545/v3/abc"),
            "https://rpc.example:8545/…"
        );
        assert_eq!(mask_url("http://127.0.0.1:9/"), "http://127.0.0.1:9");
        let (url, auth) = split_credentials("http://127.0.0.1:9");
        assert_eq!((url.as_str(), auth), ("http://127.0.0.1:9", None));
    }

    #[test]
    fn websocket_url_and_credentials() {
        let u = Upstream::new("x".into(), "https://user:pa55@rpc.example/v3/abc");
        assert_eq!(u.ws_url(), "wss://rpc.example/v3/abc");
        // base64("user:pa55")
        assert_eq!(u.authorization().as_deref(), Some("Basic dXNlcjpwYTU1"));
        let u = Upstream::new("y".into(), "http://127.0.0.1:8545");
        assert_eq!(u.ws_url(), "ws://127.0.0.1:8545");
        assert_eq!(u.authorization(), None);
    }

    #[test]
    fn candidates_skip_laggards_and_open_breakers() {
        let pools = Pools::new(PoolConfig::default()).unwrap();
        pools.apply_membership(&[
            ("a".into(), "c".into(), "http://127.0.0.1:1".into()),
            ("b".into(), "c".into(), "http://127.0.0.1:2".into()),
            ("l".into(), "c".into(), "http://127.0.0.1:3".into()),
        ]);
        let pool = pools.chain("c").unwrap();
        let ups = pool.upstreams();
        assert_eq!(ups.len(), 3);
        // Before any probe every upstream is a candidate.
        assert_eq!(pool.candidates(5).len(), 3);
        ups[0].head.store(100, Ordering::Relaxed);
        ups[1].head.store(98, Ordering::Relaxed);
        ups[2].head.store(90, Ordering::Relaxed);
        let ids: Vec<String> = pool.candidates(5).iter().map(|u| u.id.clone()).collect();
        assert_eq!(ids.len(), 2);
        assert!(
            !ids.contains(&"node:l".to_owned()),
            "the laggard is skipped"
        );
        let policy = BreakerPolicy::default();
        for _ in 0..policy.failures {
            ups[0].failed(&policy);
        }
        let ids: Vec<String> = pool.candidates(5).iter().map(|u| u.id.clone()).collect();
        assert_eq!(ids, vec!["node:b".to_owned()], "open breaker skipped");
        ups[0].succeeded();
        assert_eq!(pool.candidates(5).len(), 2);
        // Membership changes keep the state of those that stay.
        pools.apply_membership(&[("a".into(), "c".into(), "http://127.0.0.1:1".into())]);
        assert_eq!(pool.upstreams().len(), 1);
        assert_eq!(pool.upstreams()[0].head(), 100);
    }

    #[tokio::test]
    async fn connection_errors_are_retried_elsewhere_but_not_for_writes() {
        // One port that refuses, one tiny upstream that answers.
        let refused = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ok_addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(|| async { r#"{"jsonrpc":"2.0","id":1,"result":"0x10"}"# }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let pools = Pools::new(PoolConfig::default()).unwrap();
        pools.apply_membership(&[
            ("dead".into(), "c".into(), format!("http://{refused}/")),
            ("live".into(), "c".into(), format!("http://{ok_addr}/")),
        ]);
        for _ in 0..4 {
            let out = pools
                .forward("c", Bytes::from_static(b"{}"), true)
                .await
                .unwrap();
            assert!(String::from_utf8_lossy(&out).contains("0x10"));
        }
        // A refused connection never carried the transaction: retry is safe.
        let out = pools.forward("c", Bytes::from_static(b"{}"), false).await;
        assert!(out.is_ok());
        pools.probe_all().await;
        let pool = pools.chain("c").unwrap();
        let live = pool
            .upstreams()
            .into_iter()
            .find(|u| u.id == "node:live")
            .unwrap();
        assert_eq!(live.head(), 16);
        assert!(matches!(
            pools.forward("nope", Bytes::new(), true).await,
            Err(ForwardError::NoUpstream(_))
        ));
    }
}
