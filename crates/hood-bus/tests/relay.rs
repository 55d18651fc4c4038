//! The outbox relay on SQLite and PostgreSQL (`HOOD_TEST_POSTGRES_URL`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use async_trait::async_trait;
use hood_bus::{
    BusError, BusEvent, EventBus, InProcessBus, OutboxRelay, RelayConfig, RelayError, Subscription,
};
use hood_domain::identity::Organization;
use hood_domain::{OrgId, Timestamp};
use hood_store::Store;
use hood_testkit::PgDatabase;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{timeout, Instant};

enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] PgDatabase),
}

/// A migrated store of one backend.
struct Db {
    /// Declared first so the pool closes before the database goes away.
    store: Arc<dyn Store>,
    url: String,
    _guard: Guard,
}

impl Db {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = hood_testkit::sqlite_url(&dir);
        let store = hood_store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        Self {
            store,
            url,
            _guard: Guard::Sqlite(dir),
        }
    }

    async fn postgres(test: &str) -> Option<Self> {
        let db = PgDatabase::create(test).await?;
        let url = db.url.clone();
        let store = hood_store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        Some(Self {
            store,
            url,
            _guard: Guard::Postgres(db),
        })
    }

    /// Writes `n` events (one org each); returns the ids of every pending
    /// row, oldest first (so: call it while no relay runs).
    async fn write_events(&self, n: usize) -> Vec<String> {
        for _ in 0..n {
            let slug = format!("o-{}", uuid::Uuid::new_v4().simple());
            let org = Organization {
                id: OrgId::from_uuid(uuid::Uuid::now_v7()),
                slug: slug.clone(),
                name: slug,
                created_at: Timestamp(1_700_000_000_000),
            };
            self.store.create_org(&org).await.unwrap();
        }
        self.pending().await
    }

    async fn pending(&self) -> Vec<String> {
        self.store
            .outbox_pending(i64::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id.to_string())
            .collect()
    }

    async fn wait_drained(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.pending().await.is_empty() {
            assert!(Instant::now() < deadline, "outbox not drained in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

macro_rules! relay_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Db::sqlite().await).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::Db::postgres(concat!("postgres::", stringify!($name))).await else {
                        return;
                    };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

/// A bus in front of the in-process bus that counts publishes per id
/// (before de-duplication, which would hide a double publish) and can be
/// told to fail.
#[derive(Default)]
struct Probe {
    inner: InProcessBus,
    publishes: Mutex<HashMap<String, usize>>,
    /// Id → publishes of it still to fail with a transient error.
    failing: Mutex<HashMap<String, usize>>,
    /// Ids refused for good.
    reject: Mutex<Vec<String>>,
    /// Per-publish pause, to make relays overlap.
    slow: Mutex<Option<Duration>>,
}

impl Probe {
    fn fail(&self, id: &str, times: usize) {
        self.failing.lock().unwrap().insert(id.to_owned(), times);
    }

    fn failures_left(&self, id: &str) -> usize {
        self.failing.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    fn count(&self, id: &str) -> usize {
        self.publishes.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

#[async_trait]
impl EventBus for Probe {
    async fn publish(&self, event: &BusEvent) -> Result<(), BusError> {
        let slow = *self.slow.lock().unwrap();
        if let Some(d) = slow {
            tokio::time::sleep(d).await;
        }
        if self.reject.lock().unwrap().contains(&event.id) {
            return Err(BusError::Invalid {
                what: "event",
                value: event.id.clone(),
            });
        }
        let failing = match self.failing.lock().unwrap().get_mut(&event.id) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        };
        if failing {
            return Err(BusError::Publish {
                id: event.id.clone(),
                subject: event.subject.clone(),
                reason: "injected failure".into(),
            });
        }
        *self
            .publishes
            .lock()
            .unwrap()
            .entry(event.id.clone())
            .or_default() += 1;
        self.inner.publish(event).await
    }

    async fn subscribe(
        &self,
        consumer: &str,
        subjects: &[String],
    ) -> Result<Box<dyn Subscription>, BusError> {
        self.inner.subscribe(consumer, subjects).await
    }

    async fn watch(&self, subjects: &[String]) -> Result<Box<dyn hood_bus::Watch>, BusError> {
        self.inner.watch(subjects).await
    }

    fn kind(&self) -> &'static str {
        "probe"
    }
}

async fn subscribe_all(bus: &dyn EventBus) -> Box<dyn Subscription> {
    bus.subscribe("all", &[">".to_owned()]).await.unwrap()
}

/// Receives until quiet; returns the ids in arrival order.
async fn received(sub: &mut Box<dyn Subscription>) -> Vec<String> {
    let mut ids = Vec::new();
    while let Ok(d) = timeout(Duration::from_millis(500), sub.next()).await {
        let d = d.unwrap();
        assert_eq!(d.event.subject, "identity.org.created");
        assert_eq!(d.event.aggregate_type, "org");
        ids.push(d.event.id.clone());
        d.ack().await.unwrap();
    }
    ids
}

fn config(batch: i64) -> RelayConfig {
    RelayConfig {
        batch,
        idle_poll: Duration::from_millis(50),
    }
}

async fn relay_once_publishes_each_row_once_in_order(db: &Db) {
    let bus = Arc::new(Probe::default());
    let mut sub = subscribe_all(&*bus).await;
    let ids = db.write_events(3).await;
    let relay = OutboxRelay::new(db.store.clone(), bus.clone(), RelayConfig::default());
    assert_eq!(relay.relay_once().await.unwrap(), 3);
    assert!(db.pending().await.is_empty(), "all marked published");
    assert_eq!(relay.relay_once().await.unwrap(), 0, "nothing left");
    assert_eq!(received(&mut sub).await, ids, "each once, in outbox order");
    assert!(ids.iter().all(|id| bus.count(id) == 1));
}

async fn spawned_relay_drains_more_than_a_batch(db: &Db) {
    let bus = Arc::new(Probe::default());
    let mut sub = subscribe_all(&*bus).await;
    let ids = db.write_events(7).await;
    let handle = OutboxRelay::new(db.store.clone(), bus.clone(), config(2)).spawn();
    db.wait_drained(Duration::from_secs(10)).await;
    // Written while the relay runs (it may publish them before
    // `write_events` reads the outbox back, so their ids come from the bus).
    db.write_events(2).await;
    db.wait_drained(Duration::from_secs(10)).await;
    handle.shutdown().await;
    let got = received(&mut sub).await;
    assert_eq!(got.len(), 9, "{got:?}");
    assert_eq!(got[..7], ids, "in outbox order");
    assert!(got.iter().all(|id| bus.count(id) == 1));
    assert!(!ids.contains(&got[7]) && !ids.contains(&got[8]) && got[7] != got[8]);

    // Stopped means stopped.
    db.write_events(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(db.pending().await.len(), 1);
}

async fn failed_publish_leaves_rows_pending_and_retries(db: &Db) {
    let bus = Arc::new(Probe::default());
    let mut sub = subscribe_all(&*bus).await;
    let ids = db.write_events(4).await;
    let relay = OutboxRelay::new(db.store.clone(), bus.clone(), RelayConfig::default());

    // The second publish fails: the first is marked, the rest stay, and
    // nothing after the failure is published out of order.
    bus.fail(&ids[1], 1);
    match relay.relay_once().await {
        Err(RelayError::Bus {
            published: 1,
            source,
        }) => {
            assert!(!source.is_permanent(), "{source}");
        }
        other => panic!("expected a bus failure after one publish, got {other:?}"),
    }
    assert_eq!(db.pending().await, ids[1..], "failed rows stay pending");
    assert_eq!(bus.count(&ids[2]), 0, "stopped at the first failure");

    // A spawned relay retries on its own through several failures.
    bus.fail(&ids[1], 3);
    let handle = relay.spawn();
    db.wait_drained(Duration::from_secs(15)).await;
    handle.shutdown().await;
    assert_eq!(bus.failures_left(&ids[1]), 0);
    assert_eq!(received(&mut sub).await, ids, "each once, in order");
    assert!(ids.iter().all(|id| bus.count(id) == 1));
}

async fn permanently_refused_event_does_not_block_the_outbox(db: &Db) {
    let bus = Arc::new(Probe::default());
    let mut sub = subscribe_all(&*bus).await;
    let ids = db.write_events(3).await;
    bus.reject.lock().unwrap().push(ids[0].clone());
    let relay = OutboxRelay::new(db.store.clone(), bus.clone(), RelayConfig::default());
    assert_eq!(relay.relay_once().await.unwrap(), 3);
    assert!(db.pending().await.is_empty());
    assert_eq!(received(&mut sub).await, ids[1..]);
}

async fn waker_cuts_the_idle_pause_short(db: &Db) {
    let bus = Arc::new(Probe::default());
    let mut sub = subscribe_all(&*bus).await;
    let relay = OutboxRelay::new(
        db.store.clone(),
        bus.clone(),
        RelayConfig {
            batch: 16,
            idle_poll: Duration::from_secs(3600),
        },
    );
    let handle = relay.spawn();
    // Let it find the outbox empty and go idle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids = db.write_events(1).await;
    handle.waker().wake();
    let d = timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a woken relay publishes at once")
        .unwrap();
    assert_eq!(d.event.id, ids[0]);
    d.ack().await.unwrap();
    handle.shutdown().await;
}

relay_tests!(
    relay_once_publishes_each_row_once_in_order,
    spawned_relay_drains_more_than_a_batch,
    failed_publish_leaves_rows_pending_and_retries,
    permanently_refused_event_does_not_block_the_outbox,
    waker_cuts_the_idle_pause_short,
);

/// Two relays, each with its own connection pool as two processes would
/// have, on one PostgreSQL database: every row is published exactly once
/// (counted before the bus's de-duplication, which would hide doubles).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_relays_publish_each_row_once() {
    let Some(db) = Db::postgres("postgres_two_relays_publish_each_row_once").await else {
        return;
    };
    let ids = db.write_events(120).await;
    let bus = Arc::new(Probe::default());
    *bus.slow.lock().unwrap() = Some(Duration::from_millis(2));
    let mut sub = subscribe_all(&*bus).await;
    let mut handles = Vec::new();
    let per_relay: Vec<Arc<Tagged>> = (0..2)
        .map(|_| {
            Arc::new(Tagged {
                probe: bus.clone(),
                published: AtomicUsize::new(0),
            })
        })
        .collect();
    for tagged in &per_relay {
        let store = hood_store::connect(&db.url).await.unwrap();
        handles.push(OutboxRelay::new(store, tagged.clone(), config(8)).spawn());
    }
    db.wait_drained(Duration::from_secs(30)).await;
    for h in handles {
        h.shutdown().await;
    }
    let counts = bus.publishes.lock().unwrap().clone();
    assert_eq!(counts.len(), ids.len());
    let doubles: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubles.is_empty(), "published more than once: {doubles:?}");
    let mut got = received(&mut sub).await;
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    // Both relays took part (each batch holds its 8 rows for ≥16 ms), or
    // this test would prove nothing.
    let shares: Vec<usize> = per_relay
        .iter()
        .map(|t| t.published.load(Ordering::SeqCst))
        .collect();
    assert!(shares.iter().all(|&n| n > 0), "{shares:?}");
    assert_eq!(shares.iter().sum::<usize>(), ids.len());
}

/// Counts what one relay published, then hands it to the shared probe.
struct Tagged {
    probe: Arc<Probe>,
    published: AtomicUsize,
}

#[async_trait]
impl EventBus for Tagged {
    async fn publish(&self, event: &BusEvent) -> Result<(), BusError> {
        self.probe.publish(event).await?;
        self.published.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn subscribe(
        &self,
        consumer: &str,
        subjects: &[String],
    ) -> Result<Box<dyn Subscription>, BusError> {
        self.probe.subscribe(consumer, subjects).await
    }

    async fn watch(&self, subjects: &[String]) -> Result<Box<dyn hood_bus::Watch>, BusError> {
        self.probe.watch(subjects).await
    }

    fn kind(&self) -> &'static str {
        "tagged"
    }
}
