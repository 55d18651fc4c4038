//! Fixtures of the health tests: a webhook receiver that verifies
//! signatures, polling helpers and fast health intervals.

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SECRET: &str = "webhook-secret-for-tests-0123456789";

/// One request the local webhook receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: String,
    pub delivery: String,
    pub body: Value,
    pub signature_ok: bool,
}

pub async fn webhook_receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let header = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
                let signature_ok = hood_notify::verify_webhook_signature(
                    SECRET,
                    &header("hood-signature"),
                    &body,
                    now,
                    300,
                );
                sink.lock().unwrap().push(Received {
                    event: header("hood-event"),
                    delivery: header("hood-delivery"),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    signature_ok,
                });
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), got)
}

pub async fn get_json(http: &reqwest::Client, url: &str, key: &str) -> Value {
    http.get(url)
        .bearer_auth(key)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

pub async fn wait_for<F>(what: &str, within: Duration, mut check: F) -> Value
where
    F: AsyncFnMut() -> Option<Value>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(started.elapsed() < within, "{what} not within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn transitions(events: &Value) -> Vec<String> {
    events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["to_state"].as_str().map(str::to_owned))
        .collect()
}

/// Intervals shortened so a whole outage plays out in seconds. The heartbeat
/// timeout leaves room for two late beats: on a loaded 2-core machine a
/// healthy agent can be a second late, and that must not read as an outage.
pub fn fast_health_env() -> Vec<(&'static str, String)> {
    vec![
        ("HOOD_HEARTBEAT_INTERVAL_MS", "1000".into()),
        ("HOOD_HEARTBEAT_TIMEOUT_MS", "3500".into()),
        ("HOOD_HEALTH_INTERVAL_MS", "1000".into()),
        ("HOOD_MIGRATION_GRACE_MS", "2000".into()),
        ("HOOD_UPTIME_INTERVAL_MS", "1000".into()),
        ("HOOD_NOTIFY_BACKOFF_MS", "200".into()),
        // The webhook receivers listen on loopback, which notifications
        // refuse to reach unless the operator allows it.
        ("HOOD_NOTIFY_ALLOW_NETWORKS", "127.0.0.0/8".into()),
    ]
}

/// Creates an ethereum-anvil node through the API and waits (up to
/// `within`) until it is healthy; returns its id and its view.
pub async fn create_healthy_node(
    http: &reqwest::Client,
    api: &str,
    key: &str,
    name: &str,
    within: Duration,
) -> (String, Value) {
    let r = http
        .post(format!("{api}/api/v1/nodes"))
        .bearer_auth(key)
        .json(&serde_json::json!({"chain": "ethereum-anvil", "name": name}))
        .send()
        .await
        .expect("create node");
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.expect("json")["node"]["id"]
        .as_str()
        .expect("node id")
        .to_owned();
    let node_url = format!("{api}/api/v1/nodes/{id}");
    let node = wait_for("healthy", within, async || {
        let n = get_json(http, &node_url, key).await;
        assert_ne!(n["state"], "failed", "{n}");
        (n["state"] == "healthy").then_some(n)
    })
    .await;
    (id, node)
}

/// One JSON-RPC call to a node's endpoint; its `result` (the call must
/// not fail).
pub async fn node_rpc(
    http: &reqwest::Client,
    endpoint: &str,
    method: &str,
    params: Value,
) -> Value {
    let r: Value = http
        .post(endpoint)
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .expect("node rpc")
        .json()
        .await
        .expect("node rpc answer");
    assert!(r.get("error").is_none(), "{method}: {r}");
    r["result"].clone()
}

/// A node's head height (`eth_blockNumber`).
pub async fn node_head(http: &reqwest::Client, endpoint: &str) -> i64 {
    let hex = node_rpc(http, endpoint, "eth_blockNumber", Value::Array(vec![])).await;
    i64::from_str_radix(
        hex.as_str().expect("a quantity").trim_start_matches("0x"),
        16,
    )
    .expect("a hex quantity")
}

/// Waits until the node at `node_url` is healthy on a host other than
/// `old_host` (it migrated), failing if it fails; returns the node.
pub async fn healthy_elsewhere(
    http: &reqwest::Client,
    node_url: &str,
    key: &str,
    old_host: &str,
    within: Duration,
) -> Value {
    wait_for("healthy on a new host", within, async || {
        let n = get_json(http, node_url, key).await;
        assert_ne!(n["state"], "failed", "{n}");
        (n["state"] == "healthy" && n["host_id"].as_str() != Some(old_host)).then_some(n)
    })
    .await
}
