//! Live updates as a cluster runs them: the outbox relay publishes a node's
//! state change on NATS JetStream, the console's watch wakes, and the open
//! event stream carries the new state within seconds (its own periodic
//! re-read is 30 s away, so only the bus can have woken it).

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod support;

use futures::StreamExt;
use hood_bus::{EventBus, NatsBus, NatsOptions, OutboxRelay, RelayConfig};
use hood_domain::lifecycle::{ApplicationHealth, NodeState, SyncStatus};
use hood_domain::node::Node;
use hood_domain::NodeId;
use hood_store::node::NodeChange;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{set_cookie, sign_in, start};

#[tokio::test(flavor = "multi_thread")]
async fn a_node_state_change_reaches_the_page_over_nats() {
    let Some(nats) = hood_testkit::NatsStream::unique("console_live_over_nats") else {
        return;
    };
    let mut options = NatsOptions::new(nats.stream.clone());
    options.subject_prefix = nats.prefix.clone();
    let bus: Arc<dyn EventBus> = Arc::new(NatsBus::connect_with(&nats.url, options).await.unwrap());
    let dir = tempfile::tempdir().expect("tempdir");
    let f = start(&dir, 900, Some(bus.clone())).await;
    let relay = OutboxRelay::new(
        f.store.clone(),
        bus,
        RelayConfig {
            batch: 100,
            idle_poll: Duration::from_millis(50),
        },
    )
    .spawn();

    let now = hood_api::clock::now();
    let node = Node {
        id: NodeId::from_uuid(uuid::Uuid::now_v7()),
        org_id: f.org.id,
        name: "live-node".into(),
        chain: "ethereum-anvil".into(),
        node_type: "dev".into(),
        provider: "local".into(),
        region: "local".into(),
        state: NodeState::Provisioning,
        sync_status: SyncStatus::Unknown,
        app_health: ApplicationHealth::Unknown,
        host_id: None,
        rpc_endpoint: None,
        head_height: None,
        binary_version: None,
        failure_reason: None,
        version: 0,
        created_at: now,
        updated_at: now,
    };
    f.store.create_node(&node).await.unwrap();

    let signed_in = sign_in(&f.base).await;
    let cookies = format!(
        "hood_access={}; hood_refresh={}",
        set_cookie(&signed_in, "hood_access").unwrap(),
        set_cookie(&signed_in, "hood_refresh").unwrap()
    );
    let stream = reqwest::Client::new()
        .get(format!(
            "{}/console/live?since={}",
            f.base,
            hood_api::clock::now().millis()
        ))
        .header("cookie", cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = stream.bytes_stream();
    let mut seen = String::new();
    let read_until = |needle: &'static str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        (needle, deadline)
    };

    // The stream says hello, with the bus on.
    let (needle, deadline) = read_until(r#""bus":true"#);
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, body.next())
            .await
            .expect("hello in time");
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }

    // The node moves; the page hears of it through NATS.
    let moved_at = Instant::now();
    f.store
        .update_node(
            node.id,
            0,
            &NodeChange {
                state: Some(NodeState::Syncing),
                message: "started".into(),
                ..NodeChange::default()
            },
            hood_api::clock::now(),
        )
        .await
        .unwrap();
    let (needle, deadline) = read_until(r#""state":"syncing""#);
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, body.next())
            .await
            .unwrap_or_else(|_| panic!("no live update within 10 s; the stream said: {seen}"));
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }
    eprintln!("state change -> page over NATS in {:?}", moved_at.elapsed());
    assert!(seen.contains("event: node"), "{seen}");
    assert!(seen.contains(&node.id.to_string()));
    relay.shutdown().await;
}
