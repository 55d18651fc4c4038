//! Usage metering: every answered call yields one [`UsageEvent`], handed to
//! a background writer that stores them in batches. Stores de-duplicate by
//! request id, so a batch written twice (a retry after an ambiguous
//! failure) counts once; shutdown drains and flushes everything queued, so
//! a restart loses nothing.

use async_trait::async_trait;
use hood_bus::{BusEvent, EventBus};
use hood_domain::backoff::Backoff;
use hood_domain::rpc::UsageEvent;
use hood_store::usage::UsageStore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
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
#[derive(Debug, Clone, Copy)]
pub struct MeterConfig {
    pub batch: usize,
    pub flush_every: Duration,
    /// Backoff between retries of a failed write (doubling, capped at 5 s).
    pub retry_backoff: Duration,
}

impl Default for MeterConfig {
    fn default() -> Self {
        Self {
            batch: 2_000,
            flush_every: Duration::from_millis(200),
            retry_backoff: Duration::from_millis(100),
        }
    }
}

/// The sending half, cloned into every request handler.
#[derive(Clone)]
pub struct Meter {
    tx: mpsc::UnboundedSender<UsageEvent>,
    recorded: Arc<AtomicU64>,
}

impl Meter {
    /// Queues one event. Never blocks the request.
    pub fn record(&self, event: UsageEvent) {
        if self.tx.send(event).is_err() {
            // Only after shutdown began, when no request is answered.
            tracing::error!("usage event after the meter stopped");
            return;
        }
        self.recorded.fetch_add(1, Ordering::Relaxed);
    }

    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }
}

/// The background writer.
pub struct MeterTask {
    handle: JoinHandle<u64>,
    close: Arc<tokio::sync::Notify>,
}

impl MeterTask {
    /// Stops taking events, writes every event queued so far, and returns
    /// how many events were written in all. Call it once no request is
    /// being answered any more.
    pub async fn finish(self) -> u64 {
        self.close.notify_one();
        self.handle.await.unwrap_or(0)
    }
}

pub fn spawn(writer: Arc<dyn UsageWriter>, config: MeterConfig) -> (Meter, MeterTask) {
    let (tx, mut rx) = mpsc::unbounded_channel::<UsageEvent>();
    let close = Arc::new(tokio::sync::Notify::new());
    let closing = close.clone();
    let handle = tokio::spawn(async move {
        let mut written = 0u64;
        let mut batch: Vec<UsageEvent> = Vec::with_capacity(config.batch);
        let mut open = true;
        loop {
            // Wait for the first event, then gather for up to flush_every.
            let first = if open {
                tokio::select! {
                    e = rx.recv() => e,
                    () = closing.notified() => {
                        // Refuse new events; what is queued still drains.
                        rx.close();
                        open = false;
                        continue;
                    }
                }
            } else {
                rx.recv().await
            };
            let closed = first.is_none();
            if let Some(e) = first {
                batch.push(e);
                let deadline = tokio::time::Instant::now() + config.flush_every;
                while batch.len() < config.batch {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(e)) => batch.push(e),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            if !batch.is_empty() {
                write_with_retry(writer.as_ref(), &batch, config.retry_backoff).await;
                written += batch.len() as u64;
                batch.clear();
            }
            if closed {
                return written;
            }
        }
    });
    (
        Meter {
            tx,
            recorded: Arc::new(AtomicU64::new(0)),
        },
        MeterTask { handle, close },
    )
}

/// Retries until the batch is stored: usage is money, so it is never
/// dropped (the queue grows meanwhile; the error is logged).
async fn write_with_retry(writer: &dyn UsageWriter, batch: &[UsageEvent], first: Duration) {
    let backoff = Backoff::doubling(first, Duration::from_secs(5));
    let mut attempt = 0u32;
    loop {
        match writer.write(batch).await {
            Ok(()) => return,
            Err(e) => {
                attempt += 1;
                tracing::warn!(events = batch.len(), attempt, error = %e, "writing usage failed; retrying");
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

    #[tokio::test]
    async fn every_event_is_written_once_despite_failures_and_shutdown() {
        let flaky = Arc::new(Flaky {
            fail: Mutex::new(3),
            got: Mutex::new(vec![]),
        });
        let (meter, task) = spawn(
            flaky.clone(),
            MeterConfig {
                batch: 7,
                flush_every: Duration::from_millis(5),
                retry_backoff: Duration::from_millis(1),
            },
        );
        for i in 0..100 {
            meter.record(event(i));
        }
        assert_eq!(meter.recorded(), 100);
        // Finishing with a sender still alive drains what was queued.
        assert_eq!(task.finish().await, 100);
        meter.record(event(1000));
        assert_eq!(meter.recorded(), 100, "closed meters take nothing");
        assert_eq!(flaky.got.lock().unwrap().len(), 100);
    }
}
