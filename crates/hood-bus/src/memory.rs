//! The in-process bus of embedded mode (`hood up`): one queue per consumer
//! group, in memory. "Durable" here means: once `publish` returns, every
//! consumer group that matches holds the event, so the relay may mark the
//! row published. Nothing survives the process, and nothing needs to: the
//! process is the whole installation.

use crate::{
    validate_subject, validate_subscription, validate_watch, Acker, BusError, BusEvent, Delivery,
    EventBus, Subscription, Watch,
};
use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Same defaults as the NATS bus, so both behave alike.
const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// An [`EventBus`] inside this process. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

struct Inner {
    ack_wait: Duration,
    duplicate_window: Duration,
    state: Mutex<State>,
    /// Every published event, for watchers (bounded: a slow watcher is
    /// told it lagged rather than holding memory).
    watchers: tokio::sync::broadcast::Sender<Arc<BusEvent>>,
}

/// Events a watcher may fall behind by before it is told it lagged.
const WATCH_BUFFER: usize = 4_096;

#[derive(Default)]
struct State {
    groups: HashMap<String, GroupEntry>,
    /// Ids published within the duplicate window, oldest first.
    recent: VecDeque<(Instant, String)>,
    recent_ids: HashMap<String, Instant>,
}

struct GroupEntry {
    /// The last subscribe's filters win, as with JetStream create-or-update.
    filters: Vec<String>,
    group: Arc<Group>,
}

/// One consumer group: a queue its subscribers take turns receiving from.
/// The group owns both ends, so queued events outlive every subscriber.
struct Group {
    tx: mpsc::UnboundedSender<Queued>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
}

struct Queued {
    event: Arc<BusEvent>,
    /// Deliveries so far.
    delivered: u64,
}

impl Group {
    fn enqueue(&self, event: Arc<BusEvent>, delivered: u64) {
        // The receiver lives in `self`, so sending cannot fail.
        if self.tx.send(Queued { event, delivered }).is_err() {
            tracing::error!("in-process bus: consumer queue closed");
        }
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::with_ack_wait(DEFAULT_ACK_WAIT)
    }

    /// A bus whose deliveries are redelivered when not settled within
    /// `ack_wait` (a stuck handler must not hold an event forever).
    pub fn with_ack_wait(ack_wait: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                ack_wait,
                duplicate_window: DEFAULT_DUPLICATE_WINDOW,
                state: Mutex::new(State::default()),
                watchers: tokio::sync::broadcast::channel(WATCH_BUFFER).0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; recover from poisoning
        // rather than propagate a panic.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, event: &BusEvent) -> Result<(), BusError> {
        validate_subject(&event.subject)?;
        let now = Instant::now();
        let window = self.inner.duplicate_window;
        let mut state = self.state();
        while let Some((at, _)) = state.recent.front() {
            if now.duration_since(*at) < window {
                break;
            }
            if let Some((_, id)) = state.recent.pop_front() {
                state.recent_ids.remove(&id);
            }
        }
        if state.recent_ids.contains_key(&event.id) {
            tracing::debug!(event_id = %event.id, subject = %event.subject, "in-process bus: duplicate publish ignored");
            return Ok(());
        }
        state.recent_ids.insert(event.id.clone(), now);
        state.recent.push_back((now, event.id.clone()));
        let event = Arc::new(event.clone());
        for entry in state.groups.values() {
            if entry
                .filters
                .iter()
                .any(|f| crate::subject_matches(f, &event.subject))
            {
                entry.group.enqueue(event.clone(), 0);
            }
        }
        // No watcher is not an error.
        let _ = self.inner.watchers.send(event);
        Ok(())
    }

    async fn watch(&self, subjects: &[String]) -> Result<Box<dyn Watch>, BusError> {
        let filters = validate_watch(subjects)?;
        Ok(Box::new(InProcessWatch {
            filters,
            rx: self.inner.watchers.subscribe(),
        }))
    }

    async fn subscribe(
        &self,
        consumer: &str,
        subjects: &[String],
    ) -> Result<Box<dyn Subscription>, BusError> {
        let filters = validate_subscription(consumer, subjects)?;
        let mut state = self.state();
        let entry = state.groups.entry(consumer.to_owned()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            GroupEntry {
                filters: Vec::new(),
                group: Arc::new(Group {
                    tx,
                    rx: tokio::sync::Mutex::new(rx),
                }),
            }
        });
        entry.filters = filters;
        Ok(Box::new(InProcessSubscription {
            consumer: consumer.to_owned(),
            group: entry.group.clone(),
            ack_wait: self.inner.ack_wait,
        }))
    }

    fn kind(&self) -> &'static str {
        "in-process"
    }
}

struct InProcessWatch {
    filters: Vec<String>,
    rx: tokio::sync::broadcast::Receiver<Arc<BusEvent>>,
}

#[async_trait]
impl Watch for InProcessWatch {
    async fn next(&mut self) -> Result<BusEvent, BusError> {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match self.rx.recv().await {
                Ok(event) => {
                    if self
                        .filters
                        .iter()
                        .any(|f| crate::subject_matches(f, &event.subject))
                    {
                        return Ok((*event).clone());
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    return Err(BusError::Subscribe {
                        consumer: "watch".to_owned(),
                        reason: format!("watcher lagged; {missed} events missed"),
                    })
                }
                Err(RecvError::Closed) => {
                    return Err(BusError::Subscribe {
                        consumer: "watch".to_owned(),
                        reason: "bus closed".to_owned(),
                    })
                }
            }
        }
    }
}

struct InProcessSubscription {
    consumer: String,
    group: Arc<Group>,
    ack_wait: Duration,
}

#[async_trait]
impl Subscription for InProcessSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        // Subscribers of a group queue on this lock and take turns; `recv`
        // is cancel-safe, so a dropped `next` loses nothing.
        let queued = {
            let mut rx = self.group.rx.lock().await;
            rx.recv().await
        };
        let Some(Queued { event, delivered }) = queued else {
            return Err(BusError::Subscribe {
                consumer: self.consumer.clone(),
                reason: "consumer queue closed".to_owned(),
            });
        };
        let attempt = delivered + 1;
        let settle = Arc::new(Settle {
            state: AtomicU8::new(IN_FLIGHT),
            group: self.group.clone(),
            event: event.clone(),
            attempt,
        });
        let timer = {
            let settle = settle.clone();
            let ack_wait = self.ack_wait;
            tokio::spawn(async move {
                tokio::time::sleep(ack_wait).await;
                if settle.claim() {
                    tracing::debug!(event_id = %settle.event.id, attempt = settle.attempt, "in-process bus: ack wait expired, redelivering");
                    settle.requeue();
                }
            })
            .abort_handle()
        };
        Ok(Delivery::new(
            (*event).clone(),
            attempt,
            Box::new(InProcessAcker { settle, timer }),
        ))
    }
}

const IN_FLIGHT: u8 = 0;
const SETTLED: u8 = 1;

/// One in-flight delivery. Exactly one of ack, nack, drop and the ack-wait
/// timer wins `claim`; only the winner acts, so an event is requeued at
/// most once per delivery.
struct Settle {
    state: AtomicU8,
    group: Arc<Group>,
    event: Arc<BusEvent>,
    attempt: u64,
}

impl Settle {
    fn claim(&self) -> bool {
        self.state
            .compare_exchange(IN_FLIGHT, SETTLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn requeue(&self) {
        self.group.enqueue(self.event.clone(), self.attempt);
    }
}

struct InProcessAcker {
    settle: Arc<Settle>,
    timer: AbortHandle,
}

#[async_trait]
impl Acker for InProcessAcker {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        // After the ack wait expired the event is already queued again:
        // like JetStream, a late ack is accepted and changes nothing.
        if self.settle.claim() {
            self.timer.abort();
        }
        Ok(())
    }

    async fn nack(self: Box<Self>, delay: Duration) -> Result<(), BusError> {
        if !self.settle.claim() {
            return Ok(());
        }
        self.timer.abort();
        if delay.is_zero() {
            self.settle.requeue();
        } else {
            let settle = self.settle.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                settle.requeue();
            });
        }
        Ok(())
    }
}

impl Drop for InProcessAcker {
    fn drop(&mut self) {
        // After ack/nack `claim` fails and this is a no-op.
        if self.settle.claim() {
            self.timer.abort();
            self.settle.requeue();
        }
    }
}
