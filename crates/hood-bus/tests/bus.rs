//! One conformance suite for every [`EventBus`]: each test body runs against
//! the in-process bus and against NATS JetStream (`HOOD_TEST_NATS_URL`; a
//! loud skip when unset, a failure under CI).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use hood_bus::{BusError, BusEvent, Delivery, EventBus, InProcessBus, NatsBus, NatsOptions};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{timeout, Instant};

/// Long enough that nothing in a test is redelivered by the ack wait unless
/// the test means it.
const LONG_ACK_WAIT: Duration = Duration::from_secs(30);
/// How long to wait for a delivery that must come.
const ARRIVE: Duration = Duration::from_secs(5);
/// How long to listen for a delivery that must not come.
const QUIET: Duration = Duration::from_millis(800);

/// Makes buses for one test. NATS: a stream and subject prefix of its own,
/// deleted when the fixture drops (even when the test panicked).
enum Fixture {
    InProcess,
    Nats(hood_testkit::NatsStream),
}

impl Fixture {
    fn nats(test: &str) -> Option<Self> {
        hood_testkit::NatsStream::unique(test).map(Fixture::Nats)
    }

    /// The bus under test. Call once per test: in-process buses share
    /// nothing with each other.
    async fn bus(&self, ack_wait: Duration) -> Arc<dyn EventBus> {
        match self {
            Fixture::InProcess => Arc::new(InProcessBus::with_ack_wait(ack_wait)),
            Fixture::Nats(nats) => {
                let mut options = NatsOptions::new(nats.stream.clone());
                options.subject_prefix = nats.prefix.clone();
                options.ack_wait = ack_wait;
                Arc::new(NatsBus::connect_with(&nats.url, options).await.unwrap())
            }
        }
    }
}

macro_rules! bus_conformance {
    ($($name:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Fixture::InProcess).await;
                }
            )*
        }

        mod nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(fixture) = super::Fixture::nats(concat!("nats::", stringify!($name))) else {
                        return;
                    };
                    super::$name(&fixture).await;
                }
            )*
        }
    };
}

fn event(subject: &str) -> BusEvent {
    BusEvent {
        id: uuid::Uuid::now_v7().to_string(),
        subject: subject.to_owned(),
        aggregate_type: "thing".to_owned(),
        aggregate_id: uuid::Uuid::new_v4().to_string(),
        payload: serde_json::json!({ "subject": subject, "n": [1, 2, 3] }),
        created_at_ms: 1_700_000_000_123,
    }
}

fn subjects(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

async fn recv(sub: &mut Box<dyn hood_bus::Subscription>) -> Delivery {
    timeout(ARRIVE, sub.next())
        .await
        .expect("no delivery arrived in time")
        .expect("subscription failed")
}

async fn assert_quiet(sub: &mut Box<dyn hood_bus::Subscription>) {
    if let Ok(d) = timeout(QUIET, sub.next()).await {
        panic!("unexpected delivery: {d:?}");
    }
}

/// Receives and acks until the subscription stays quiet; returns subjects.
async fn drain(sub: &mut Box<dyn hood_bus::Subscription>) -> Vec<String> {
    let mut got = Vec::new();
    while let Ok(d) = timeout(QUIET, sub.next()).await {
        let d = d.expect("subscription failed");
        got.push(d.event.subject.clone());
        d.ack().await.unwrap();
    }
    got.sort();
    got
}

async fn round_trip(fx: &Fixture) {
    let bus = fx.bus(LONG_ACK_WAIT).await;
    let mut sub = bus
        .subscribe("reader", &subjects(&["incident.opened"]))
        .await
        .unwrap();
    let sent = event("incident.opened");
    bus.publish(&sent).await.unwrap();
    let d = recv(&mut sub).await;
    assert_eq!(d.event, sent, "every field survives the trip");
    assert_eq!(d.attempt, 1);
    d.ack().await.unwrap();
    assert_quiet(&mut sub).await;
}

async fn wildcard_filters(fx: &Fixture) {
    let bus = fx.bus(LONG_ACK_WAIT).await;
    let mut star = bus.subscribe("star", &subjects(&["node.*"])).await.unwrap();
    let mut tail = bus.subscribe("tail", &subjects(&["node.>"])).await.unwrap();
    let mut exact = bus
        .subscribe("exact", &subjects(&["node.created"]))
        .await
        .unwrap();
    let mut several = bus
        .subscribe("several", &subjects(&["incident.opened", "node.*.failed"]))
        .await
        .unwrap();
    let mut everything = bus
        .subscribe("everything", &subjects(&[">"]))
        .await
        .unwrap();
    for s in [
        "node.created",
        "node.x.failed",
        "node.x.y.z",
        "incident.opened",
        "incident.closed",
        "other",
    ] {
        bus.publish(&event(s)).await.unwrap();
    }
    assert_eq!(drain(&mut star).await, ["node.created"]);
    assert_eq!(
        drain(&mut tail).await,
        ["node.created", "node.x.failed", "node.x.y.z"]
    );
    assert_eq!(drain(&mut exact).await, ["node.created"]);
    assert_eq!(
        drain(&mut several).await,
        ["incident.opened", "node.x.failed"]
    );
    assert_eq!(drain(&mut everything).await.len(), 6);
}

async fn one_consumer_shares_work(fx: &Fixture) {
    let bus = fx.bus(LONG_ACK_WAIT).await;
    let filter = subjects(&["work.>"]);
    let a = bus.subscribe("workers", &filter).await.unwrap();
    let b = bus.subscribe("workers", &filter).await.unwrap();
    let mut sent = BTreeSet::new();
    for i in 0..30 {
        let e = event(&format!("work.item{i}"));
        sent.insert(e.id.clone());
        bus.publish(&e).await.unwrap();
    }
    let take = |mut sub: Box<dyn hood_bus::Subscription>| {
        tokio::spawn(async move {
            let mut ids = Vec::new();
            while let Ok(d) = timeout(Duration::from_millis(1500), sub.next()).await {
                let d = d.unwrap();
                ids.push(d.event.id.clone());
                // Slow enough that both subscribers get a chance.
                tokio::time::sleep(Duration::from_millis(5)).await;
                d.ack().await.unwrap();
            }
            ids
        })
    };
    let (a, b) = (take(a), take(b));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut all = a.clone();
    all.extend(b.iter().cloned());
    let distinct: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "an event went to both subscribers"
    );
    assert_eq!(distinct, sent, "every event reached one of them");
}

async fn distinct_consumers_each_get_everything(fx: &Fixture) {
    let bus = fx.bus(LONG_ACK_WAIT).await;
    let filter = subjects(&["audit.>"]);
    let mut billing = bus.subscribe("billing", &filter).await.unwrap();
    let mut health = bus.subscribe("health", &filter).await.unwrap();
    let mut sent = Vec::new();
    for i in 0..5 {
        let e = event(&format!("audit.e{i}"));
        sent.push(e.subject.clone());
        bus.publish(&e).await.unwrap();
    }
    assert_eq!(drain(&mut billing).await, sent);
    assert_eq!(drain(&mut health).await, sent);
}

async fn nack_redelivers_after_delay(fx: &Fixture) {
    let bus = fx.bus(LONG_ACK_WAIT).await;
    let mut sub = bus
        .subscribe("retrier", &subjects(&["job.run"]))
        .await
        .unwrap();
    let sent = event("job.run");
    bus.publish(&sent).await.unwrap();
    let first = recv(&mut sub).await;
    assert_eq!(first.attempt, 1);
    let delay = Duration::from_millis(400);
    let nacked_at = Instant::now();
    first.nack(delay).await.unwrap();
    let again = recv(&mut sub).await;
    assert!(
        nacked_at.elapsed() >= delay.mul_f64(0.75),
        "redelivered after {:?}, before the {delay:?} delay",
        nacked_at.elapsed()
    );
    assert_eq!(again.event.id, sent.id);
    assert_eq!(again.attempt, 2);
    again.ack().await.unwrap();
    assert_quiet(&mut sub).await;
}

async fn duplicate_id_is_delivered_once(fx: &Fixture) {
    let bus = fx.bus(LONG_ACK_WAIT).await;
    let mut sub = bus.subscribe("dedup", &subjects(&["x.y"])).await.unwrap();
    let sent = event("x.y");
    bus.publish(&sent).await.unwrap();
    bus.publish(&sent).await.unwrap();
    let other = event("x.y");
    bus.publish(&other).await.unwrap();
    let d = recv(&mut sub).await;
    assert_eq!(d.event.id, sent.id);
    d.ack().await.unwrap();
    let d = recv(&mut sub).await;
    assert_eq!(d.event.id, other.id, "the duplicate was delivered");
    d.ack().await.unwrap();
    assert_quiet(&mut sub).await;
}

async fn dropped_delivery_is_redelivered(fx: &Fixture) {
    let bus = fx.bus(LONG_ACK_WAIT).await;
    let mut sub = bus.subscribe("dropper", &subjects(&["d.>"])).await.unwrap();
    let sent = event("d.one");
    bus.publish(&sent).await.unwrap();
    let first = recv(&mut sub).await;
    drop(first);
    // Well within the 30 s ack wait: the drop itself asked for redelivery.
    let again = recv(&mut sub).await;
    assert_eq!(again.event.id, sent.id);
    assert_eq!(again.attempt, 2);
    again.ack().await.unwrap();
    assert_quiet(&mut sub).await;
}

async fn unacked_delivery_is_redelivered_after_ack_wait(fx: &Fixture) {
    let bus = fx.bus(Duration::from_secs(1)).await;
    let mut sub = bus.subscribe("slow", &subjects(&["s.>"])).await.unwrap();
    let sent = event("s.one");
    bus.publish(&sent).await.unwrap();
    let held = recv(&mut sub).await;
    let again = recv(&mut sub).await;
    assert_eq!(again.event.id, sent.id);
    assert_eq!(again.attempt, 2);
    again.ack().await.unwrap();
    // The stale delivery settles without bringing the event back.
    let _ = held.ack().await;
    assert_quiet(&mut sub).await;
}

async fn invalid_names_are_refused(fx: &Fixture) {
    let bus = fx.bus(LONG_ACK_WAIT).await;
    for (consumer, filters) in [
        ("has.dot", subjects(&["a"])),
        ("", subjects(&["a"])),
        ("ok", subjects(&[])),
        ("ok", subjects(&["a.>.b"])),
        ("ok", subjects(&["a..b"])),
    ] {
        assert!(
            matches!(
                bus.subscribe(consumer, &filters).await,
                Err(BusError::Invalid { .. })
            ),
            "{consumer:?} {filters:?}"
        );
    }
    for s in ["a.*", "a.>", "", "a b"] {
        let err = bus.publish(&event(s)).await.unwrap_err();
        assert!(err.is_permanent(), "{s:?}: {err}");
    }
}

/// Several consumers and redeliveries at once keep per-consumer counts
/// exact (a smoke test of the pieces together).
async fn mixed_load_counts_are_exact(fx: &Fixture) {
    let bus = fx.bus(LONG_ACK_WAIT).await;
    let mut a = bus.subscribe("mix_a", &subjects(&["m.*"])).await.unwrap();
    let mut b = bus
        .subscribe("mix_b", &subjects(&["m.even"]))
        .await
        .unwrap();
    for i in 0..20 {
        let e = event(if i % 2 == 0 { "m.even" } else { "m.odd" });
        bus.publish(&e).await.unwrap();
    }
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut nacked = 0;
    while let Ok(d) = timeout(QUIET, a.next()).await {
        let d = d.unwrap();
        // Bounce every first delivery of an odd event once.
        if d.event.subject == "m.odd" && d.attempt == 1 {
            nacked += 1;
            d.nack(Duration::ZERO).await.unwrap();
            continue;
        }
        *counts.entry(d.event.id.clone()).or_default() += 1;
        d.ack().await.unwrap();
    }
    assert_eq!(nacked, 10);
    assert_eq!(counts.len(), 20);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert_eq!(drain(&mut b).await.len(), 10);
}

/// Every watcher sees every matching event; a durable consumer of the same
/// subject still gets its own copy.
async fn every_watcher_sees_every_event(fx: &Fixture) {
    let bus = fx.bus(LONG_ACK_WAIT).await;
    let filter = subjects(&["edge.rpc_key.*"]);
    let mut a = bus.watch(&filter).await.unwrap();
    let mut b = bus.watch(&filter).await.unwrap();
    let mut durable = bus.subscribe("keys", &filter).await.unwrap();
    let ignored = event("edge.usage.batch");
    let revoked = event("edge.rpc_key.revoked");
    bus.publish(&ignored).await.unwrap();
    bus.publish(&revoked).await.unwrap();
    for watcher in [&mut a, &mut b] {
        let got = timeout(ARRIVE, watcher.next())
            .await
            .expect("watch event in time")
            .expect("watch");
        assert_eq!(got, revoked, "the non-matching event is filtered out");
        assert!(
            timeout(QUIET, watcher.next()).await.is_err(),
            "nothing more"
        );
    }
    let d = recv(&mut durable).await;
    assert_eq!(d.event, revoked);
    d.ack().await.unwrap();
    assert!(bus.watch(&subjects(&["a..b"])).await.is_err());
}

bus_conformance!(
    every_watcher_sees_every_event,
    round_trip,
    wildcard_filters,
    one_consumer_shares_work,
    distinct_consumers_each_get_everything,
    nack_redelivers_after_delay,
    duplicate_id_is_delivered_once,
    dropped_delivery_is_redelivered,
    unacked_delivery_is_redelivered_after_ack_wait,
    invalid_names_are_refused,
    mixed_load_counts_are_exact,
);

#[test]
fn kinds() {
    assert_eq!(InProcessBus::new().kind(), "in-process");
}
