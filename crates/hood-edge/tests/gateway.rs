//! The edge in process, on a real SQLite store and the in-process bus, in
//! front of local upstreams that count what reaches them: JSON-RPC edge
//! cases, the finality-aware cache, retries and laggard skipping, body and
//! batch limits.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use axum::body::Bytes;
use hood_bus::InProcessBus;
use hood_domain::identity::Organization;
use hood_domain::rpc::{KeyScope, RpcKey};
use hood_domain::{OrgId, RpcKeyId, Timestamp};
use hood_edge::upstream::PoolConfig;
use hood_edge::{EdgeConfig, EdgeDeps, EdgeHandle};
use hood_store::Store;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A local upstream at head `head` that records every method it is asked.
struct Upstream {
    url: String,
    calls: Arc<Mutex<Vec<String>>>,
    status: Arc<AtomicU64>,
}

async fn upstream(head: u64) -> Upstream {
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let status = Arc::new(AtomicU64::new(200));
    let (seen, code) = (calls.clone(), status.clone());
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |body: Bytes| {
            let (seen, code) = (seen.clone(), code.clone());
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap();
                let answer = |call: &Value| {
                    let method = call["method"].as_str().unwrap().to_owned();
                    let result = match method.as_str() {
                        "eth_blockNumber" => json!(format!("0x{head:x}")),
                        "eth_chainId" => json!("0x7a69"),
                        "eth_getBlockByNumber" => json!({"number": call["params"][0]}),
                        "eth_sendRawTransaction" => json!("0xabc"),
                        _ => json!(null),
                    };
                    if method != "eth_blockNumber" {
                        seen.lock().unwrap().push(method);
                    }
                    json!({"jsonrpc": "2.0", "id": call["id"], "result": result})
                };
                let out = match &v {
                    Value::Array(calls) => Value::Array(calls.iter().map(answer).collect()),
                    call => answer(call),
                };
                let status =
                    axum::http::StatusCode::from_u16(code.load(Ordering::Relaxed) as u16).unwrap();
                (status, axum::Json(out))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Upstream { url, calls, status }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    edge: EdgeHandle,
    org: OrgId,
}

fn now() -> Timestamp {
    Timestamp::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

async fn fixture(upstreams: &[&str], tweak: impl FnOnce(&mut EdgeConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn hood_store::Store> = hood_store::connect(&hood_testkit::sqlite_url(&dir))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let org = Organization {
        id: OrgId::from_uuid(uuid::Uuid::now_v7()),
        slug: "acme".into(),
        name: "Acme".into(),
        created_at: now(),
    };
    store.create_org(&org).await.unwrap();
    let mut external = BTreeMap::new();
    external.insert(
        "testchain".to_owned(),
        upstreams.iter().map(|u| (*u).to_owned()).collect(),
    );
    let mut config = EdgeConfig {
        pools: PoolConfig {
            external,
            probe_every: Duration::from_millis(100),
            refresh_every: Duration::from_millis(100),
            ..PoolConfig::default()
        },
        ..EdgeConfig::default()
    };
    tweak(&mut config);
    let deps = EdgeDeps {
        store: store.clone(),
        bus: Arc::new(InProcessBus::new()),
        limiter: Arc::new(hood_edge::limit::LocalLimiter::default()),
        usage: Arc::new(hood_edge::meter::StoreWriter(store.clone())),
        chains: ["testchain".to_owned()].into_iter().collect(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let edge = hood_edge::start(config, deps, listener).await.unwrap();
    Fixture {
        _dir: dir,
        store,
        edge,
        org: org.id,
    }
}

impl Fixture {
    async fn key(&self, plan: &str) -> (RpcKey, String) {
        self.key_with(plan, KeyScope::default()).await
    }

    async fn key_with(&self, plan: &str, scope: KeyScope) -> (RpcKey, String) {
        let generated = hood_identity::api_keys::generate_rpc_key();
        let key = RpcKey {
            id: RpcKeyId::from_uuid(uuid::Uuid::now_v7()),
            org_id: self.org,
            name: "k".into(),
            prefix: generated.prefix.clone(),
            secret_hash: generated.secret_hash.clone(),
            plan: plan.into(),
            scope,
            created_at: now(),
            updated_at: now(),
            revoked_at: None,
            version: 1,
        };
        self.store.create_rpc_key(&key).await.unwrap();
        (key, generated.token)
    }

    fn url(&self, token: &str) -> String {
        format!("http://{}/testchain/v1/{token}", self.edge.addr)
    }
}

async fn post(url: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn call(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_serves_only_final_data() {
    let up = upstream(200).await;
    let fx = fixture(&[&up.url], |_| {}).await;
    let (key, token) = fx.key("pro").await;
    let url = fx.url(&token);
    let block = |n: &str| call(1, "eth_getBlockByNumber", json!([n, false]));
    for _ in 0..3 {
        let (status, body) = post(&url, block("0x10").to_string()).await;
        assert_eq!(status, 200);
        assert_eq!(body["result"]["number"], "0x10");
        // 200 - 64 = 136: block 0xa0 (160) is not final yet.
        post(&url, block("0xa0").to_string()).await;
        post(&url, block("latest").to_string()).await;
        post(&url, call(2, "eth_chainId", json!([])).to_string()).await;
    }
    let seen = up.calls.lock().unwrap().clone();
    let count = |m: &str| seen.iter().filter(|s| *s == m).count();
    assert_eq!(count("eth_chainId"), 1, "{seen:?}");
    // Final block once, the unfinal one and `latest` every time.
    assert_eq!(count("eth_getBlockByNumber"), 1 + 3 + 3, "{seen:?}");
    let metrics = reqwest::get(format!("http://{}/metrics", fx.edge.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"hood_edge_calls_total{chain="testchain",status="ok"} 12"#),
        "{metrics}"
    );
    assert!(metrics.contains("hood_edge_cache_hits 4"), "{metrics}");
    assert!(metrics.contains("hood_edge_upstream_head{"), "{metrics}");
    assert!(!metrics.contains(&token) && !metrics.contains(&up.url));
    fx.edge.shutdown().await;
    // Cached answers are answered calls too: all 12 metered.
    assert_eq!(fx.store.count_usage_events(key.id).await.unwrap(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_rpc_edge_cases() {
    let up = upstream(10).await;
    let fx = fixture(&[&up.url], |c| {
        c.max_batch = 3;
        c.max_body_bytes = 4096;
    })
    .await;
    let (key, token) = fx.key("pro").await;
    let url = fx.url(&token);
    // Batch over the cap: one invalid-request error.
    let big: Vec<Value> = (0..4).map(|i| call(i, "eth_chainId", json!([]))).collect();
    let (status, body) = post(&url, Value::Array(big).to_string()).await;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(-32600))
    );
    // Empty batch.
    let (status, body) = post(&url, "[]").await;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(-32600))
    );
    // A mixed batch: a bad item answered in place, the rest forwarded.
    let (status, body) = post(
        &url,
        json!([call(1, "eth_blockNumber", json!([])), {"jsonrpc": "2.0", "id": 2}, 7]).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let items = body.as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["result"], "0xa");
    assert_eq!(items[1]["id"], 2);
    assert_eq!(items[1]["error"]["code"], -32600);
    assert_eq!(items[2]["error"]["code"], -32600);
    // A notification is forwarded and answered with nothing.
    let r = reqwest::Client::new()
        .post(&url)
        .body(json!({"jsonrpc": "2.0", "method": "eth_chainId"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Too large a body.
    let r = reqwest::Client::new()
        .post(&url)
        .body(vec![b' '; 8192])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Unknown chain.
    let (status, _) = post(
        &format!("http://{}/nochain/v1/{token}", fx.edge.addr),
        call(1, "eth_chainId", json!([])).to_string(),
    )
    .await;
    assert_eq!(status, 404);
    fx.edge.shutdown().await;
    // 2 refusals + 3 items + 1 notification + unknown chain; the 413 is
    // refused before the key is read.
    assert_eq!(fx.store.count_usage_events(key.id).await.unwrap(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_broken_and_lagging_upstreams_are_avoided() {
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", l.local_addr().unwrap())
    };
    let good = upstream(100).await;
    let laggard = upstream(50).await;
    let broken = upstream(100).await;
    broken.status.store(502, Ordering::Relaxed);
    let fx = fixture(&[&refused, &good.url, &laggard.url, &broken.url], |_| {}).await;
    let (_, token) = fx.key("pro").await;
    let url = fx.url(&token);
    for i in 0..20 {
        let (status, body) = post(
            &url,
            call(i, "eth_getBalance", json!(["0x0", "latest"])).to_string(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(
        laggard.calls.lock().unwrap().is_empty(),
        "a laggard 50 blocks behind is never used"
    );
    assert_eq!(
        good.calls.lock().unwrap().len(),
        20,
        "every call ends on the good one"
    );
    // A transaction is never retried after a 5xx (it may have gone out).
    let (status, _) = post(
        &url,
        call(1, "eth_sendRawTransaction", json!(["0x00"])).to_string(),
    )
    .await;
    let sent_to_broken = broken
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|m| *m == "eth_sendRawTransaction")
        .count();
    let sent_to_good = good
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|m| *m == "eth_sendRawTransaction")
        .count();
    assert_eq!(sent_to_broken + sent_to_good, 1, "sent exactly once");
    assert_eq!(status, if sent_to_good == 1 { 200 } else { 502 });
    fx.edge.shutdown().await;
}

/// The edge asks the domain's retry rule (`hood_domain::rpc::may_resend`)
/// before sending a body again: on two failing upstreams a read is tried on
/// both, a submission of any chain (and any batch holding one) on one only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_are_never_resent_to_another_upstream() {
    let a = upstream(100).await;
    let b = upstream(100).await;
    a.status.store(502, Ordering::Relaxed);
    b.status.store(502, Ordering::Relaxed);
    // Breakers that never open keep both upstreams candidates.
    let fx = fixture(&[&a.url, &b.url], |c| c.pools.breaker.failures = u32::MAX).await;
    let (_, token) = fx.key("pro").await;
    let url = fx.url(&token);
    let sent = |method: &str| {
        [&a, &b]
            .iter()
            .map(|u| {
                u.calls
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|m| *m == method)
                    .count()
            })
            .sum::<usize>()
    };
    let (status, _) = post(
        &url,
        call(1, "eth_getBalance", json!(["0x0", "latest"])).to_string(),
    )
    .await;
    assert_eq!(status, 502);
    assert_eq!(sent("eth_getBalance"), 2, "a read is retried elsewhere");
    for method in [
        "eth_sendRawTransaction",
        "sendTransaction",
        "broadcast_tx_sync",
    ] {
        let (status, _) = post(&url, call(2, method, json!(["0x00"])).to_string()).await;
        assert_eq!(status, 502, "{method}");
        assert_eq!(sent(method), 1, "{method} is sent once");
    }
    let batch = json!([
        call(3, "eth_getCode", json!(["0x0", "latest"])),
        call(4, "sendTransaction", json!(["AQ=="])),
    ]);
    let (status, body) = post(&url, batch.to_string()).await;
    assert_eq!(status, 200, "a batch carries the failure per call: {body}");
    assert_eq!(body[0]["error"]["code"], -32603);
    assert_eq!(
        sent("eth_getCode"),
        1,
        "a batch holding a submission is sent once"
    );
    assert_eq!(sent("sendTransaction"), 2);
    fx.edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_routing_and_network_scopes() {
    let up = upstream(10).await;
    let fx = fixture(&[&up.url], |c| c.domain = Some("rpc.example".into())).await;
    let (_, token) = fx.key("pro").await;
    let client = reqwest::Client::new();
    let body = call(1, "eth_blockNumber", json!([])).to_string();
    // {chain}.{domain}/v1/{key}
    let r = client
        .post(format!("http://{}/v1/{token}", fx.edge.addr))
        .header("host", "testchain.rpc.example")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["result"], "0xa");
    let r = client
        .post(format!("http://{}/v1/{token}", fx.edge.addr))
        .header("host", "testchain.elsewhere.example")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "a host outside the domain names no chain");
    // HTTP/2 (cleartext, prior knowledge) on the same port.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2
        .post(fx.url(&token))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);

    // IP allow-list: loopback is not in 10/8.
    let (_, fenced) = fx
        .key_with(
            "pro",
            KeyScope {
                ip_allow: vec!["10.0.0.0/8".into()],
                ..KeyScope::default()
            },
        )
        .await;
    let (status, body_out) = post(&fx.url(&fenced), body.clone()).await;
    assert_eq!(status, 403, "{body_out}");
    let (_, local) = fx
        .key_with(
            "pro",
            KeyScope {
                ip_allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
                ..KeyScope::default()
            },
        )
        .await;
    assert_eq!(post(&fx.url(&local), body.clone()).await.0, 200);

    // Origin allow-list: a browser from elsewhere is refused.
    let (_, web) = fx
        .key_with(
            "pro",
            KeyScope {
                origin_allow: vec!["https://app.example".into()],
                ..KeyScope::default()
            },
        )
        .await;
    let with_origin = |origin: &'static str| {
        client
            .post(fx.url(&web))
            .header("origin", origin)
            .body(body.clone())
            .send()
    };
    assert_eq!(
        with_origin("https://evil.example").await.unwrap().status(),
        403
    );
    assert_eq!(
        with_origin("https://app.example").await.unwrap().status(),
        200
    );
    fx.edge.shutdown().await;
}

/// A call that finds no upstream is neither billed nor counted against the
/// key's limit: the budget it took goes back. On the free plan (1,000 CU a
/// minute, `eth_getBalance` 19 CU) a hundred such calls in a row, and
/// batches of them, never meet the limit; without the refund the 53rd
/// would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_find_no_upstream_give_their_budget_back() {
    let fx = fixture(&[], |_| {}).await;
    let (_, token) = fx.key("free").await;
    let url = fx.url(&token);
    for i in 0..100 {
        let (status, body) = post(
            &url,
            call(i, "eth_getBalance", json!(["0x0", "latest"])).to_string(),
        )
        .await;
        assert_eq!(status, 503, "call {i}: {body}");
        assert_eq!(body["error"]["code"], -32002, "call {i}: {body}");
    }
    for b in 0..5 {
        let batch: Vec<Value> = (0..10)
            .map(|i| call(i, "eth_getBalance", json!(["0x0", "latest"])))
            .collect();
        let (status, body) = post(&url, Value::Array(batch).to_string()).await;
        assert_eq!(status, 200, "batch {b}: {body}");
        for answer in body.as_array().unwrap() {
            assert_eq!(answer["error"]["code"], -32002, "batch {b}: {body}");
        }
    }
    fx.edge.shutdown().await;
}
