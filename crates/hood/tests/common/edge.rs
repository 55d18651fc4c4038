//! Fixtures of the edge tests.

use hood_domain::rpc::{KeyScope, RpcKey};
use hood_domain::{OrgId, RpcKeyId};
use hood_store::Store;
use std::sync::Arc;

/// Stores an RPC key straight into the database (as the API would);
/// returns it and its token.
pub async fn insert_key(
    store: &Arc<dyn Store>,
    org: OrgId,
    plan: &str,
    scope: KeyScope,
) -> (RpcKey, String) {
    let generated = hood_identity::api_keys::generate_rpc_key();
    let key = RpcKey {
        id: RpcKeyId::from_uuid(uuid::Uuid::now_v7()),
        org_id: org,
        name: format!("test-{plan}"),
        prefix: generated.prefix.clone(),
        secret_hash: generated.secret_hash.clone(),
        plan: plan.into(),
        scope,
        created_at: super::now(),
        updated_at: super::now(),
        revoked_at: None,
        version: 1,
    };
    store.create_rpc_key(&key).await.expect("create rpc key");
    (key, generated.token)
}

/// A fast local JSON-RPC upstream: answers every call with block 0x10.
pub async fn fast_upstream() -> String {
    use serde_json::{json, Value};
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(|body: axum::body::Bytes| async move {
            let answer =
                |call: &Value| json!({"jsonrpc": "2.0", "id": call["id"], "result": "0x10"});
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let out = match &v {
                Value::Array(calls) => Value::Array(calls.iter().map(answer).collect()),
                call => answer(call),
            };
            axum::Json(out)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/")
}

/// A port free right now on loopback (`host:port`).
pub fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("address").to_string()
}

/// Counters of a [`Load`].
#[derive(Default)]
pub struct LoadCounts {
    pub sent: std::sync::atomic::AtomicU64,
    /// A whole response arrived.
    pub answered: std::sync::atomic::AtomicU64,
    pub non_200: std::sync::atomic::AtomicU64,
    /// No whole response: refused connections, and calls cut off by a
    /// killed server.
    pub failed: std::sync::atomic::AtomicU64,
}

/// `total` `eth_blockNumber` calls from `workers` concurrent clients over
/// `urls` (round robin), each with at most one call in flight.
pub struct Load {
    pub counts: Arc<LoadCounts>,
    pub workers: usize,
    pub total: u64,
    handles: Vec<tokio::task::JoinHandle<()>>,
    started: std::time::Instant,
}

impl Load {
    /// The request count of the metering load tests:
    /// `HOOD_EDGE_LOAD_REQUESTS` or 100,000.
    pub fn total_from_env() -> u64 {
        std::env::var("HOOD_EDGE_LOAD_REQUESTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000)
    }

    pub fn start(urls: Vec<String>, total: u64, workers: usize) -> Load {
        use std::sync::atomic::Ordering;
        let counts = Arc::new(LoadCounts::default());
        let http = reqwest::Client::new();
        let body = axum::body::Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":[]}"#,
        );
        let handles = (0..workers)
            .map(|w| {
                let (http, urls, counts, body) =
                    (http.clone(), urls.clone(), counts.clone(), body.clone());
                tokio::spawn(async move {
                    let mut n = w;
                    while counts.sent.fetch_add(1, Ordering::Relaxed) < total {
                        n += 1;
                        let url = &urls[n % urls.len()];
                        let sent = http
                            .post(url)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await;
                        let answered = match sent {
                            Ok(r) => {
                                let ok = r.status() == 200;
                                r.bytes().await.ok().map(|_| ok)
                            }
                            Err(_) => None,
                        };
                        match answered {
                            Some(ok) => {
                                counts.answered.fetch_add(1, Ordering::Relaxed);
                                if !ok {
                                    counts.non_200.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            None => {
                                counts.failed.fetch_add(1, Ordering::Relaxed);
                                // A server being restarted: do not spin.
                                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            counts,
            workers,
            total,
            handles,
            started: std::time::Instant::now(),
        }
    }

    pub fn sent(&self) -> u64 {
        self.counts.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn wait_until_sent(&self, n: u64) {
        while self.sent() < n {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Waits for every worker; returns the calls answered.
    pub async fn finish(self) -> u64 {
        use std::sync::atomic::Ordering;
        for h in self.handles {
            h.await.expect("load worker");
        }
        let elapsed = self.started.elapsed();
        let answered = self.counts.answered.load(Ordering::Relaxed);
        eprintln!(
            "{answered} answered ({} not 200), {} failed in {elapsed:?} ({:.0}/s)",
            self.counts.non_200.load(Ordering::Relaxed),
            self.counts.failed.load(Ordering::Relaxed),
            answered as f64 / elapsed.as_secs_f64()
        );
        answered
    }
}

/// Waits until the key's stored usage events reach `answered`, allowing at
/// most `cut_off` more: calls the edge served and spooled whose answers a
/// SIGKILL cut off before they left (each load worker had at most one in
/// flight). Fails on fewer (lost usage) or more. Returns the stored count
/// once it has stopped moving.
pub async fn settle_usage(
    store: &Arc<dyn Store>,
    key: RpcKeyId,
    answered: u64,
    cut_off: u64,
) -> u64 {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = None;
    loop {
        let stored = store.count_usage_events(key).await.expect("count usage") as u64;
        assert!(
            stored <= answered + cut_off,
            "{stored} events for {answered} answers (at most {cut_off} cut off)"
        );
        if stored >= answered && last == Some(stored) {
            return stored;
        }
        assert!(
            Instant::now() < deadline,
            "only {stored} of {answered} usage events stored"
        );
        last = Some(stored);
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}
