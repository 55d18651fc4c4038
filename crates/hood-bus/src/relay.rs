//! The outbox relay: committed outbox rows → the bus, oldest first.
//!
//! A row is marked published only after the bus accepted it, so a crash
//! loses nothing (it may publish a row twice, which the bus's de-duplication
//! absorbs within its window). On PostgreSQL several relays may run: each
//! locks its batch with `SKIP LOCKED`, so no row is published by two at once.

use crate::{BusError, BusEvent, EventBus};
use hood_domain::EventId;
use hood_store::{OutboxStore, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// First and largest pause after a failure; doubles in between.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows per batch (at least 1).
    pub batch: i64,
    /// Pause when the outbox is drained, unless woken earlier.
    pub idle_poll: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch: 256,
            idle_poll: Duration::from_millis(200),
        }
    }
}

#[derive(thiserror::Error, Debug)]
pub enum RelayError {
    #[error("outbox relay: store: {0}")]
    Store(#[from] StoreError),
    /// The bus refused an event; the rows before it were published and
    /// marked, it and the rest stay pending.
    #[error("outbox relay: published {published} event(s), then: {source}")]
    Bus {
        published: usize,
        #[source]
        source: BusError,
    },
}

/// Publishes the outbox to a bus. [`OutboxRelay::spawn`] runs it.
pub struct OutboxRelay {
    store: Arc<dyn OutboxStore>,
    bus: Arc<dyn EventBus>,
    config: RelayConfig,
    wake: Arc<Notify>,
}

impl OutboxRelay {
    pub fn new(store: Arc<dyn OutboxStore>, bus: Arc<dyn EventBus>, config: RelayConfig) -> Self {
        let config = RelayConfig {
            batch: config.batch.max(1),
            ..config
        };
        Self {
            store,
            bus,
            config,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Lets writers cut the idle pause short after they commit an event.
    pub fn waker(&self) -> RelayWaker {
        RelayWaker(self.wake.clone())
    }

    /// One batch: lock, publish in order until the first failure, mark what
    /// was published. Returns the number of rows done with.
    ///
    /// An event the bus can never accept ([`BusError::is_permanent`]) is
    /// logged as an error and marked published, so it cannot block the
    /// outbox forever.
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        let batch = self.store.outbox_lock_batch(self.config.batch).await?;
        let mut done: Vec<EventId> = Vec::with_capacity(batch.records().len());
        let mut failure = None;
        for record in batch.records() {
            let event = BusEvent::from(record);
            match self.bus.publish(&event).await {
                Ok(()) => done.push(record.id),
                Err(e) if e.is_permanent() => {
                    tracing::error!(
                        event_id = %event.id,
                        subject = %event.subject,
                        bus = self.bus.kind(),
                        error = %e,
                        "outbox relay: the bus can never accept this event; dropping it"
                    );
                    done.push(record.id);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let published = done.len();
        batch.finish(&done, now()).await?;
        match failure {
            None => Ok(published),
            Some(source) => Err(RelayError::Bus { published, source }),
        }
    }

    /// Runs the relay until [`RelayHandle::shutdown`] (or the handle is
    /// dropped). Failures are logged and retried with backoff.
    #[must_use = "dropping the handle stops the relay"]
    pub fn spawn(self) -> RelayHandle {
        let (stop, stopped) = watch::channel(false);
        let waker = self.waker();
        let task = tokio::spawn(self.run(stopped));
        RelayHandle { stop, task, waker }
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let bus = self.bus.kind();
        tracing::debug!(bus, batch = self.config.batch, "outbox relay started");
        let mut backoff = BACKOFF_MIN;
        loop {
            if *stop.borrow() {
                break;
            }
            let (pause, wakeable) = match self.relay_once().await {
                Ok(n) => {
                    backoff = BACKOFF_MIN;
                    if i64::try_from(n).unwrap_or(i64::MAX) >= self.config.batch {
                        // More may be waiting: no pause.
                        continue;
                    }
                    (self.config.idle_poll, true)
                }
                Err(e) => {
                    let pause = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    let published = match &e {
                        RelayError::Bus { published, .. } => *published,
                        RelayError::Store(_) => 0,
                    };
                    tracing::warn!(
                        bus,
                        error = %e,
                        published,
                        retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                        "outbox relay: batch failed; retrying"
                    );
                    (pause, false)
                }
            };
            tokio::select! {
                // A stop signal, or the handle dropped (Err).
                _ = stop.changed() => break,
                _ = tokio::time::sleep(pause) => {}
                _ = self.wake.notified(), if wakeable => {}
            }
        }
        tracing::debug!(bus, "outbox relay stopped");
    }
}

/// A running relay.
pub struct RelayHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    waker: RelayWaker,
}

impl RelayHandle {
    pub fn waker(&self) -> RelayWaker {
        self.waker.clone()
    }

    /// Stops the relay after its current batch and waits for it.
    pub async fn shutdown(self) {
        // Err only if the task already ended, which is what we want.
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "outbox relay task failed");
        }
    }
}

/// Nudges a relay to look at the outbox now instead of after its idle
/// pause. A wake while it is busy is remembered, not lost.
#[derive(Clone)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

impl std::fmt::Debug for RelayWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayWaker")
    }
}

use hood_clock::now;
