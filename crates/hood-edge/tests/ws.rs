//! JSON-RPC over WebSocket through the edge, against a real anvil (a block
//! a second) and a real SQLite store: `newHeads` arrive and are metered one
//! event each, a `logs` subscription is accepted, refusals are answered by
//! the edge, a batch is answered in order, an unknown key is refused at the
//! handshake, a revoked key is cut off within the re-check period, a
//! subscription outrunning its plan is closed, an unreachable upstream
//! closes with 1011, and shutdown closes open sockets — and every answer
//! and every pushed message the clients received is exactly one usage
//! event.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

use futures::{SinkExt, StreamExt};
use hood_bus::InProcessBus;
use hood_domain::identity::Organization;
use hood_domain::rpc::{KeyScope, Plan, PlanCatalog, RpcKey};
use hood_domain::{OrgId, RpcKeyId, Timestamp};
use hood_edge::upstream::PoolConfig;
use hood_edge::{EdgeConfig, EdgeDeps};
use hood_store::Store;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

const CHAIN: &str = "ethereum-anvil";
/// A chain whose only upstream refuses connections.
const DEAD: &str = "ethereum-dead";

fn now() -> Timestamp {
    Timestamp::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn insert_key(store: &Arc<dyn Store>, org: OrgId, plan: &str) -> (RpcKey, String) {
    let generated = hood_identity::api_keys::generate_rpc_key();
    let key = RpcKey {
        id: RpcKeyId::from_uuid(uuid::Uuid::now_v7()),
        org_id: org,
        name: format!("ws-{plan}"),
        prefix: generated.prefix.clone(),
        secret_hash: generated.secret_hash.clone(),
        plan: plan.into(),
        scope: KeyScope {
            chains: vec![CHAIN.into(), DEAD.into()],
            denied_methods: vec!["eth_getBalance".into()],
            ..KeyScope::default()
        },
        created_at: now(),
        updated_at: now(),
        revoked_at: None,
        version: 1,
    };
    store.create_rpc_key(&key).await.unwrap();
    (key, generated.token)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client socket that counts what the edge must have metered: every
/// answer object and every pushed message received.
struct Client {
    ws: Socket,
    answers: u64,
    pushed: u64,
    /// Pushed messages per subscription id.
    by_subscription: BTreeMap<String, u64>,
}

impl Client {
    async fn open(edge: SocketAddr, chain: &str, token: &str) -> Client {
        let (ws, response) =
            tokio_tungstenite::connect_async(format!("ws://{edge}/{chain}/v1/{token}"))
                .await
                .unwrap();
        assert_eq!(response.status(), 101);
        Client {
            ws,
            answers: 0,
            pushed: 0,
            by_subscription: BTreeMap::new(),
        }
    }

    /// The next message, counting pushed ones; `Err` = a close frame.
    async fn next(&mut self) -> Result<Value, Option<CloseFrame>> {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a message within 10 s");
            match m {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if v["method"] == "eth_subscription" {
                        self.pushed += 1;
                        let sub = v["params"]["subscription"].as_str().unwrap().to_owned();
                        *self.by_subscription.entry(sub).or_default() += 1;
                    } else {
                        self.answers += v.as_array().map_or(1, |a| a.len() as u64);
                    }
                    return Ok(v);
                }
                Some(Ok(Message::Close(frame))) => return Err(frame),
                Some(Ok(Message::Pong(p))) => {
                    return Ok(json!({"pong": String::from_utf8_lossy(&p)}))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket failed: {e}"),
                None => return Err(None),
            }
        }
    }

    /// Sends `body` and returns the answer (pushed messages in between are
    /// counted and skipped).
    async fn call(&mut self, body: impl ToString) -> Value {
        self.ws.send(Message::text(body.to_string())).await.unwrap();
        loop {
            let v = self.next().await.expect("an answer, not a close");
            if v["method"] != "eth_subscription" {
                return v;
            }
        }
    }

    /// Reads until the edge closes the socket, answers the close and
    /// returns the edge's frame.
    async fn closed(&mut self) -> CloseFrame {
        let frame = loop {
            if let Err(frame) = self.next().await {
                break frame.expect("a close frame with a code");
            }
        };
        // Reading on sends the close reply, then ends.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
        frame
    }
}

fn call(id: impl Into<Value>, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id.into(), "method": method, "params": params})
}

async fn usage(store: &Arc<dyn Store>, key: &RpcKey) -> u64 {
    store.count_usage_events(key.id).await.unwrap() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_subscriptions_are_gated_metered_and_cut_off() {
    let Some(anvil) = hood_testkit::anvil_bin("edge_websocket") else {
        return;
    };
    let port = free_port();
    let _anvil = tokio::process::Command::new(anvil)
        .args(["--port", &port.to_string(), "--block-time", "1", "--silent"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let anvil_url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let r = http
            .post(&anvil_url)
            .json(&call(1, "eth_blockNumber", json!([])))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "anvil did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn hood_store::Store> =
        hood_store::connect(&format!("sqlite://{}", dir.path().join("x.db").display()))
            .await
            .unwrap();
    store.migrate().await.unwrap();
    let org = Organization {
        id: OrgId::from_uuid(uuid::Uuid::now_v7()),
        slug: "ws".into(),
        name: "ws".into(),
        created_at: now(),
    };
    store.create_org(&org).await.unwrap();
    let (key, token) = insert_key(&store, org.id, "free").await;
    // Room for the subscription and a couple of heads, refilled at 1 CU/s.
    let (tiny_key, tiny_token) = insert_key(&store, org.id, "tiny").await;
    let (late_key, late_token) = insert_key(&store, org.id, "free").await;

    let mut plans = PlanCatalog::defaults().plans().to_vec();
    plans.push(Plan {
        name: "tiny".into(),
        cu_per_minute: 60,
        burst_cu: 30,
    });
    let config = EdgeConfig {
        plans: PlanCatalog::from_plans(plans).unwrap(),
        pools: PoolConfig {
            external: BTreeMap::from([
                (CHAIN.to_owned(), vec![anvil_url.clone()]),
                (
                    DEAD.to_owned(),
                    vec![format!("http://127.0.0.1:{}", free_port())],
                ),
            ]),
            ..PoolConfig::default()
        },
        ..EdgeConfig::default()
    };
    let deps = EdgeDeps {
        store: store.clone(),
        bus: Arc::new(InProcessBus::new()),
        limiter: Arc::new(hood_edge::limit::LocalLimiter::default()),
        usage: Arc::new(hood_edge::meter::StoreWriter(store.clone())),
        chains: BTreeSet::from([CHAIN.to_owned()]),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = hood_edge::start(config, deps, listener).await.unwrap();
    let edge = handle.addr;

    // -- refused handshakes --
    let bogus = hood_identity::api_keys::generate_rpc_key().token;
    match tokio_tungstenite::connect_async(format!("ws://{edge}/{CHAIN}/v1/{bogus}")).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], -32001, "{body}");
        }
        other => panic!("an unknown key must be refused before upgrading: {other:?}"),
    }
    // A plain GET is not a WebSocket: a JSON-RPC error, no upgrade.
    let r = http
        .get(format!("http://{edge}/{CHAIN}/v1/{token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32600, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("POST"));
    // HTTP still works on the same path.
    let r = http
        .post(format!("http://{edge}/{CHAIN}/v1/{token}"))
        .json(&call(1, "eth_chainId", json!([])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let http_answers = 1u64;

    // -- a live socket --
    let mut ws = Client::open(edge, CHAIN, &token).await;
    let heads = ws.call(call(1, "eth_subscribe", json!(["newHeads"]))).await;
    let heads_id = heads["result"]
        .as_str()
        .expect("a subscription id")
        .to_owned();
    assert_eq!(heads["id"], 1, "the client's id comes back: {heads}");
    let logs = ws
        .call(call("logs", "eth_subscribe", json!(["logs", {}])))
        .await;
    assert_eq!(logs["id"], "logs");
    assert!(
        logs["result"].is_string(),
        "logs subscription accepted: {logs}"
    );
    // A denied method: refused by the edge, naming it.
    let denied = ws
        .call(call(
            3,
            "eth_getBalance",
            json!(["0x0000000000000000000000000000000000000000", "latest"]),
        ))
        .await;
    assert_eq!(denied["id"], 3);
    assert_eq!(denied["error"]["code"], -32004, "{denied}");
    assert!(denied["error"]["message"]
        .as_str()
        .unwrap()
        .contains("eth_getBalance"));
    let number = ws.call(call("four", "eth_blockNumber", json!([]))).await;
    assert_eq!(number["id"], "four");
    assert!(
        number["result"].as_str().unwrap().starts_with("0x"),
        "{number}"
    );
    // A batch: answered as one array, in order, the refusal merged in.
    let batch = ws
        .call(json!([
            call(5, "eth_chainId", json!([])),
            call(
                6,
                "eth_getBalance",
                json!(["0x0000000000000000000000000000000000000000", "latest"])
            ),
            call(7, "eth_blockNumber", json!([])),
        ]))
        .await;
    let items = batch.as_array().unwrap_or_else(|| panic!("{batch}"));
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["id"], 5);
    assert_eq!(items[0]["result"], "0x7a69");
    assert_eq!(items[1]["id"], 6);
    assert_eq!(items[1]["error"]["code"], -32004);
    assert_eq!(items[2]["id"], 7);
    // Not JSON: a parse error, socket still open.
    let parse = ws.call("{nope").await;
    assert_eq!(parse["error"]["code"], -32700, "{parse}");
    // Pings are answered.
    ws.ws.send(Message::Ping("hi".into())).await.unwrap();
    loop {
        let v = ws.next().await.unwrap();
        if v["pong"] == "hi" {
            break;
        }
    }
    // New heads, one a second.
    let waited = Instant::now();
    while ws.by_subscription.get(&heads_id).copied().unwrap_or(0) < 2 {
        assert!(waited.elapsed() < Duration::from_secs(10), "no heads");
        let v = ws.next().await.unwrap();
        if v["params"]["subscription"] == heads_id.as_str() {
            assert!(v["params"]["result"]["number"].is_string(), "{v}");
        }
    }

    // -- a message over the HTTP body limit (1 MiB) closes with 1009 --
    let mut big = Client::open(edge, CHAIN, &token).await;
    let _ = big
        .ws
        .send(Message::text(format!("\"{}\"", "x".repeat(1 << 20))))
        .await;
    let frame = big.closed().await;
    assert_eq!(u16::from(frame.code), 1009, "{frame:?}");

    // -- unreachable upstream: 1011, no URL in the reason --
    let mut dead = Client::open(edge, DEAD, &token).await;
    let frame = dead.closed().await;
    assert_eq!(u16::from(frame.code), 1011, "{frame:?}");
    assert!(!frame.reason.as_str().contains("127.0.0.1"), "{frame:?}");
    assert!(frame.reason.as_str().contains(DEAD), "{frame:?}");

    // -- revocation: the socket is closed within the re-check period --
    assert!(store.revoke_rpc_key(org.id, key.id, now()).await.unwrap());
    let revoked = Instant::now();
    let frame = ws.closed().await;
    let took = revoked.elapsed();
    eprintln!("revocation closed the socket in {took:?}");
    assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
    assert_eq!(frame.reason.as_str(), "API key revoked");
    assert!(took < Duration::from_millis(2_500), "took {took:?}");
    match tokio_tungstenite::connect_async(format!("ws://{edge}/{CHAIN}/v1/{token}")).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("a revoked key must be refused: {other:?}"),
    }

    // -- a subscription that outruns its plan is closed, every message
    //    it received metered --
    let mut tiny = Client::open(edge, CHAIN, &tiny_token).await;
    let sub = tiny
        .call(call(1, "eth_subscribe", json!(["newHeads"])))
        .await;
    assert!(sub["result"].is_string(), "{sub}");
    let frame = tiny.closed().await;
    assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
    assert!(
        frame.reason.as_str().starts_with("rate limit exceeded") && frame.reason.contains("tiny"),
        "{frame:?}"
    );
    assert!(
        tiny.pushed >= 2,
        "the burst admitted some heads: {}",
        tiny.pushed
    );

    // -- shutdown closes open sockets with 1001 and writes their usage --
    let mut late = Client::open(edge, CHAIN, &late_token).await;
    late.call(call(1, "eth_subscribe", json!(["newHeads"])))
        .await;
    while late.pushed < 1 {
        late.next().await.unwrap();
    }
    let waited = Instant::now();
    while handle.websockets() != 1 {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "closed sessions linger"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reader = tokio::spawn(async move {
        let frame = late.closed().await;
        (late, frame)
    });
    handle.shutdown().await;
    let (late, frame) = reader.await.unwrap();
    assert_eq!(u16::from(frame.code), 1001, "{frame:?}");

    // -- one usage event per answer and per pushed message received --
    eprintln!(
        "main socket: {} answers, {} pushed; tiny: {} answers, {} pushed; late: {} answers, {} pushed",
        ws.answers, ws.pushed, tiny.answers, tiny.pushed, late.answers, late.pushed
    );
    assert_eq!(
        ws.answers, 8,
        "2 subscriptions, denied, blockNumber, batch of 3, parse error"
    );
    assert_eq!(
        usage(&store, &key).await,
        http_answers + ws.answers + ws.pushed
    );
    assert_eq!(usage(&store, &tiny_key).await, tiny.answers + tiny.pushed);
    assert_eq!(usage(&store, &late_key).await, late.answers + late.pushed);
}
