//! Usage metering: every answered call yields one [`UsageEvent`], appended
//! to a crash-safe spool before the answer leaves and shipped from there in
//! batches by a background task. Stores de-duplicate by request id, so a
//! batch written twice (a retry after an ambiguous failure, a segment
//! shipped again after a crash) counts once; shutdown ships everything
//! taken, and a SIGKILL loses nothing the spool holds.

use crate::spool::{Sealed, Segment, SegmentEnd, Spool, SpoolError};
use async_trait::async_trait;
use hood_bus::{BusEvent, EventBus};
use hood_domain::backoff::Backoff;
use hood_domain::rpc::UsageEvent;
use hood_store::usage::UsageStore;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Where batches of usage events go.
#[async_trait]
pub trait UsageWriter: Send + Sync {
    /// Durable once Ok. Must be idempotent per request id.
    async fn write(&self, batch: &[UsageEvent]) -> Result<(), String>;
}

/// Embedded mode: straight into the store (events + rollups, one
/// transaction per batch).
pub struct StoreWriter(pub Arc<dyn UsageStore>);

#[async_trait]
impl UsageWriter for StoreWriter {
    async fn write(&self, batch: &[UsageEvent]) -> Result<(), String> {
        self.0
            .record_usage(batch)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Subject of usage batches on the bus (cluster mode).
pub const USAGE_SUBJECT: &str = "edge.usage.recorded";
/// The shared durable consumer that stores usage batches.
pub const USAGE_CONSUMER: &str = "edge-usage-ingest";
/// Events per bus message: well under NATS's default 1 MiB payload limit.
const EVENTS_PER_MESSAGE: usize = 500;

/// Cluster mode: onto the bus (JetStream, durable once acknowledged), from
/// which [`run_ingest`] stores them. The edge's answers never wait for the
/// database, and a database outage only delays ingestion.
pub struct BusWriter(pub Arc<dyn EventBus>);

#[async_trait]
impl UsageWriter for BusWriter {
    async fn write(&self, batch: &[UsageEvent]) -> Result<(), String> {
        for chunk in batch.chunks(EVENTS_PER_MESSAGE) {
            // The message id is derived from the first request id, so a
            // retried chunk is de-duplicated by the bus as well.
            let first = chunk.first().map(|e| e.request_id.as_str()).unwrap_or("");
            let event = BusEvent {
                id: format!("usage-{first}-{}", chunk.len()),
                subject: USAGE_SUBJECT.to_owned(),
                aggregate_type: "usage_batch".to_owned(),
                aggregate_id: first.to_owned(),
                payload: serde_json::json!({ "events": chunk }),
                created_at_ms: chunk.first().map(|e| e.at.millis()).unwrap_or(0),
            };
            self.0.publish(&event).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Stores usage batches from the bus until `stop` turns true. Storing is
/// idempotent by request id, so redeliveries never count twice.
pub async fn run_ingest(
    bus: Arc<dyn EventBus>,
    store: Arc<dyn UsageStore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let mut subscription = match bus
            .subscribe(USAGE_CONSUMER, &[USAGE_SUBJECT.to_owned()])
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to usage batches; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        };
        loop {
            let delivery = tokio::select! {
                d = subscription.next() => d,
                _ = stop.wait_for(|s| *s) => return,
            };
            let delivery = match delivery {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "usage subscription error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let events: Vec<UsageEvent> = match delivery
                .event
                .payload
                .get("events")
                .cloned()
                .map(serde_json::from_value)
            {
                Some(Ok(events)) => events,
                _ => {
                    // Redelivering an undecodable batch cannot help.
                    tracing::error!(event_id = %delivery.event.id, "undecodable usage batch dropped");
                    let _ = delivery.ack().await;
                    continue;
                }
            };
            match store.record_usage(&events).await {
                Ok(_) => {
                    if let Err(e) = delivery.ack().await {
                        tracing::warn!(error = %e, "acking a usage batch failed; it will be redelivered");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "storing usage failed; retrying");
                    let _ = delivery.nack(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Batching settings.
#[derive(Debug, Clone)]
pub struct MeterConfig {
    pub batch: usize,
    pub flush_every: Duration,
    /// Backoff between retries of a failed write (doubling, capped at 5 s).
    pub retry_backoff: Duration,
    /// The crash-safe spool every event is appended to before its call is
    /// answered ([`crate::spool`]). Without one, events wait in memory and
    /// a crash loses what was not yet written (tests and benchmarks that
    /// measure the bare path).
    pub spool_dir: Option<PathBuf>,
}

impl Default for MeterConfig {
    fn default() -> Self {
        Self {
            batch: 2_000,
            flush_every: Duration::from_millis(200),
            retry_backoff: Duration::from_millis(100),
            spool_dir: None,
        }
    }
}

/// What the request handlers and the shipper share.
struct Shared {
    spool: Option<Spool>,
    /// Events without a spool, or whose append failed (a full disk): still
    /// shipped, just not crash-safe.
    memory: Mutex<Vec<UsageEvent>>,
    recorded: AtomicU64,
    closed: AtomicBool,
    /// Wakes the shipper early when a batch is ready.
    ready: Notify,
    batch: u64,
}

/// The sending half, cloned into every request handler.
#[derive(Clone)]
pub struct Meter {
    shared: Arc<Shared>,
}

impl Meter {
    /// Takes one event: appended to the spool (one write, no waiting on the
    /// disk) before the call's answer leaves, so a crash after the answer
    /// cannot lose it. Never blocks on the store.
    pub fn record(&self, event: UsageEvent) {
        let shared = &self.shared;
        if shared.closed.load(Ordering::Acquire) {
            // Only after shutdown began, when no request is answered.
            tracing::error!("usage event after the meter stopped");
            return;
        }
        let in_memory = match &shared.spool {
            Some(spool) => match spool.append_with(|buf| {
                serde_json::to_writer(&mut *buf, &event).map_err(|e| e.to_string())
            }) {
                Ok(records) => {
                    if records % shared.batch == 0 {
                        shared.ready.notify_one();
                    }
                    None
                }
                Err(error) => {
                    tracing::error!(%error, "appending usage to the spool failed; keeping it in memory");
                    Some(event)
                }
            },
            None => Some(event),
        };
        if let Some(event) = in_memory {
            let mut memory = shared.memory.lock().unwrap_or_else(|p| p.into_inner());
            memory.push(event);
            if memory.len() as u64 >= shared.batch {
                shared.ready.notify_one();
            }
        }
        shared.recorded.fetch_add(1, Ordering::Relaxed);
    }

    pub fn recorded(&self) -> u64 {
        self.shared.recorded.load(Ordering::Relaxed)
    }
}

/// The background shipper.
pub struct MeterTask {
    handle: JoinHandle<u64>,
    shared: Arc<Shared>,
    close: Arc<Notify>,
}

impl MeterTask {
    /// Stops taking events, writes every event taken so far, and returns
    /// how many events were written in all. Call it once no request is
    /// being answered any more. With a spool, events the writer still
    /// refuses after a few attempts stay in the spool for the next start
    /// instead of holding the shutdown.
    pub async fn finish(self) -> u64 {
        self.shared.closed.store(true, Ordering::Release);
        self.close.notify_one();
        self.handle.await.unwrap_or(0)
    }
}

/// Opens the spool (if configured) and starts the shipper; segments an
/// earlier process left are shipped first.
pub fn spawn(
    writer: Arc<dyn UsageWriter>,
    config: MeterConfig,
) -> Result<(Meter, MeterTask), SpoolError> {
    let (spool, left) = match &config.spool_dir {
        Some(dir) => {
            let (spool, left) = Spool::open(dir)?;
            if !left.is_empty() {
                tracing::info!(segments = left.len(), dir = %dir.display(), "shipping usage an earlier run spooled");
            }
            (Some(spool), left)
        }
        None => (None, Vec::new()),
    };
    let shared = Arc::new(Shared {
        spool,
        memory: Mutex::new(Vec::new()),
        recorded: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        ready: Notify::new(),
        batch: config.batch.max(1) as u64,
    });
    let close = Arc::new(Notify::new());
    let handle = tokio::spawn(ship(shared.clone(), writer, config, left, close.clone()));
    Ok((
        Meter {
            shared: shared.clone(),
        },
        MeterTask {
            handle,
            shared,
            close,
        },
    ))
}

async fn ship(
    shared: Arc<Shared>,
    writer: Arc<dyn UsageWriter>,
    config: MeterConfig,
    mut sealed: Vec<Sealed>,
    close: Arc<Notify>,
) -> u64 {
    let mut shipper = Shipper {
        writer,
        config,
        written: 0,
    };
    loop {
        let closing = shared.closed.load(Ordering::Acquire);
        if !closing {
            tokio::select! {
                () = tokio::time::sleep(shipper.config.flush_every) => {}
                () = shared.ready.notified() => {}
                () = close.notified() => {}
            }
        }
        // Read once per round: the last round seals after every append.
        let closing = shared.closed.load(Ordering::Acquire);
        let memory = std::mem::take(&mut *shared.memory.lock().unwrap_or_else(|p| p.into_inner()));
        if !memory.is_empty() {
            // Not crash-safe anyway: retried until written, also at shutdown.
            for chunk in memory.chunks(shipper.config.batch.max(1)) {
                write_with_retry(
                    shipper.writer.as_ref(),
                    chunk,
                    shipper.config.retry_backoff,
                    None,
                )
                .await;
                shipper.written += chunk.len() as u64;
            }
        }
        if let Some(spool) = &shared.spool {
            match spool.seal() {
                Ok(Some(s)) => sealed.push(s),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "sealing the usage spool failed; retrying"),
            }
            while let Some(segment) = sealed.first().cloned() {
                match shipper.segment(spool, &segment, &shared.closed).await {
                    Ok(()) => {
                        sealed.remove(0);
                    }
                    Err(error) => {
                        tracing::warn!(%error, segment = %segment.path.display(), "shipping spooled usage stopped; it stays in the spool");
                        break;
                    }
                }
            }
        }
        if closing {
            return shipper.written;
        }
    }
}

struct Shipper {
    writer: Arc<dyn UsageWriter>,
    config: MeterConfig,
    written: u64,
}

/// Attempts at a write once shutdown began: after these, spooled events
/// wait for the next start rather than hold the shutdown.
const ATTEMPTS_WHEN_CLOSING: u32 = 5;

impl Shipper {
    /// Ships one sealed segment in batches, then removes it.
    async fn segment(
        &mut self,
        spool: &Spool,
        sealed: &Sealed,
        closing: &AtomicBool,
    ) -> Result<(), String> {
        let mut reader = {
            let sealed = sealed.clone();
            tokio::task::spawn_blocking(move || Segment::open(&sealed))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?
        };
        let batch = self.config.batch.max(1);
        loop {
            // Read a batch off the disk without holding a runtime thread.
            let (back, events, undecodable) = tokio::task::spawn_blocking(move || {
                let mut events = Vec::with_capacity(batch);
                let mut undecodable = 0u64;
                while events.len() < batch {
                    match reader.next_record() {
                        Ok(Some(bytes)) => match serde_json::from_slice::<UsageEvent>(&bytes) {
                            Ok(e) => events.push(e),
                            Err(_) => undecodable += 1,
                        },
                        Ok(None) => break,
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Ok((reader, events, undecodable))
            })
            .await
            .map_err(|e| e.to_string())??;
            reader = back;
            if undecodable > 0 {
                tracing::error!(undecodable, segment = %sealed.path.display(), "spooled usage records that are not usage events skipped");
            }
            if !events.is_empty() {
                let limit = Some((closing, ATTEMPTS_WHEN_CLOSING));
                if !write_with_retry(
                    self.writer.as_ref(),
                    &events,
                    self.config.retry_backoff,
                    limit,
                )
                .await
                {
                    return Err("the usage writer keeps failing".to_owned());
                }
                self.written += events.len() as u64;
            }
            if let Some(end) = reader.end() {
                match end {
                    SegmentEnd::Clean => {}
                    SegmentEnd::TornTail => {
                        tracing::warn!(segment = %sealed.path.display(), "spooled usage ends in a record cut short by a crash (never answered); ignored")
                    }
                    SegmentEnd::Damaged { offset } => {
                        let aside = spool.set_aside(sealed).map_err(|e| e.to_string())?;
                        tracing::error!(offset, segment = %aside.display(), "spooled usage damaged on disk; what follows the damage is not shipped and the segment is set aside");
                        return Ok(());
                    }
                }
                return spool.remove(sealed).map_err(|e| e.to_string());
            }
        }
    }
}

/// Writes a batch, retrying with backoff: usage is money, so it is never
/// dropped. `limit` (a spool to fall back on) gives up after that many
/// attempts once its flag (shutdown) is set; returns whether the batch was
/// written.
async fn write_with_retry(
    writer: &dyn UsageWriter,
    batch: &[UsageEvent],
    first: Duration,
    limit: Option<(&AtomicBool, u32)>,
) -> bool {
    let backoff = Backoff::doubling(first, Duration::from_secs(5));
    let mut attempt = 0u32;
    loop {
        match writer.write(batch).await {
            Ok(()) => return true,
            Err(e) => {
                attempt += 1;
                tracing::warn!(events = batch.len(), attempt, error = %e, "writing usage failed; retrying");
                if limit.is_some_and(|(closing, l)| closing.load(Ordering::Acquire) && attempt >= l)
                {
                    return false;
                }
                tokio::time::sleep(backoff.delay(attempt)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hood_domain::rpc::UsageStatus;
    use hood_domain::{OrgId, RpcKeyId, Timestamp};
    use std::sync::Mutex;

    /// Fails the first `fail` writes, then keeps what it gets.
    struct Flaky {
        fail: Mutex<u32>,
        got: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl UsageWriter for Flaky {
        async fn write(&self, batch: &[UsageEvent]) -> Result<(), String> {
            {
                let mut f = self.fail.lock().unwrap();
                if *f > 0 {
                    *f -= 1;
                    return Err("injected".into());
                }
            }
            let mut got = self.got.lock().unwrap();
            for e in batch {
                if !got.contains(&e.request_id) {
                    got.push(e.request_id.clone());
                }
            }
            Ok(())
        }
    }

    fn event(i: u32) -> UsageEvent {
        UsageEvent {
            request_id: format!("req-{i}"),
            org_id: OrgId::from_uuid(uuid::Uuid::new_v4()),
            key_id: RpcKeyId::from_uuid(uuid::Uuid::new_v4()),
            chain: "c".into(),
            method: "eth_blockNumber".into(),
            compute_units: 10,
            status: UsageStatus::Ok,
            http_status: 200,
            latency_us: 5,
            at: Timestamp::from_millis(1),
        }
    }

    fn config(batch: usize, spool_dir: Option<PathBuf>) -> MeterConfig {
        MeterConfig {
            batch,
            flush_every: Duration::from_millis(5),
            retry_backoff: Duration::from_millis(1),
            spool_dir,
        }
    }

    fn flaky(fail: u32) -> Arc<Flaky> {
        Arc::new(Flaky {
            fail: Mutex::new(fail),
            got: Mutex::new(vec![]),
        })
    }

    #[tokio::test]
    async fn every_event_is_written_once_despite_failures_and_shutdown() {
        let spool = tempfile::tempdir().unwrap();
        for dir in [None, Some(spool.path().to_owned())] {
            let flaky = flaky(3);
            let (meter, task) = spawn(flaky.clone(), config(7, dir.clone())).unwrap();
            for i in 0..100 {
                meter.record(event(i));
            }
            assert_eq!(meter.recorded(), 100);
            // Finishing with a sender still alive ships what was taken.
            assert_eq!(task.finish().await, 100, "spool {dir:?}");
            meter.record(event(1000));
            assert_eq!(meter.recorded(), 100, "closed meters take nothing");
            assert_eq!(flaky.got.lock().unwrap().len(), 100);
        }
        let left: Vec<_> = std::fs::read_dir(spool.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".seg"))
            .collect();
        assert_eq!(
            left.len(),
            1,
            "only the empty active segment stays: {left:?}"
        );
    }

    #[tokio::test]
    async fn spooled_events_outlive_a_killed_shipper_and_ship_at_the_next_start() {
        let spool = tempfile::tempdir().unwrap();
        // A writer that never succeeds, and a shipper that dies with the
        // process (aborted, not finished).
        let down = flaky(u32::MAX);
        let (meter, task) =
            spawn(down.clone(), config(1000, Some(spool.path().to_owned()))).unwrap();
        for i in 0..250 {
            meter.record(event(i));
        }
        let MeterTask { handle, shared, .. } = task;
        handle.abort();
        let _ = handle.await;
        // The spool closes (its lock freed) with the last handle, as at
        // the death of the process.
        drop((meter, shared));
        assert!(down.got.lock().unwrap().is_empty());

        let up = flaky(0);
        let (meter, task) = spawn(up.clone(), config(100, Some(spool.path().to_owned()))).unwrap();
        meter.record(event(250));
        assert_eq!(task.finish().await, 251);
        let mut got = up.got.lock().unwrap().clone();
        got.sort();
        let mut want: Vec<String> = (0..=250).map(|i| format!("req-{i}")).collect();
        want.sort();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_writer_down_at_shutdown_leaves_the_events_in_the_spool() {
        let spool = tempfile::tempdir().unwrap();
        let down = flaky(u32::MAX);
        let (meter, task) = spawn(down, config(10, Some(spool.path().to_owned()))).unwrap();
        for i in 0..30 {
            meter.record(event(i));
        }
        // Returns instead of retrying forever; nothing was written.
        assert_eq!(task.finish().await, 0);
        drop(meter);
        let up = flaky(1);
        let (_meter, task) = spawn(up.clone(), config(10, Some(spool.path().to_owned()))).unwrap();
        assert_eq!(task.finish().await, 30);
        assert_eq!(up.got.lock().unwrap().len(), 30);
    }

    #[tokio::test]
    async fn two_meters_cannot_share_a_spool() {
        let spool = tempfile::tempdir().unwrap();
        let (_meter, _task) = spawn(flaky(0), config(10, Some(spool.path().to_owned()))).unwrap();
        assert!(matches!(
            spawn(flaky(0), config(10, Some(spool.path().to_owned()))),
            Err(SpoolError::Busy(_))
        ));
    }
}
