//! Hood's event bus, behind one trait, and the outbox relay that feeds it.
//!
//! * [`EventBus`]: publish with de-duplication by event id; durable named
//!   consumers over NATS-style subject filters, shared between subscribers,
//!   at-least-once with explicit ack/nack. Two implementations:
//!   [`InProcessBus`] (`hood up`) and [`NatsBus`] (cluster mode, JetStream).
//! * [`OutboxRelay`]: moves committed outbox rows onto the bus, so the
//!   database stays the source of truth: a row is marked published only
//!   after the bus accepted it.
//!
//! Delivery is at least once end to end (a relay that crashes between
//! publishing and marking publishes again; de-duplication hides that only
//! within its window), so consumers must be idempotent on `event.id`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

mod credentials;
mod feed;
mod memory;
mod nats;
mod relay;

pub use credentials::follow_credential_events;
pub use feed::{follow_feed_events, FEED_CONSUMER};
pub use memory::InProcessBus;
pub use nats::{NatsBus, NatsOptions};
pub use relay::{OutboxRelay, RelayConfig, RelayError, RelayHandle, RelayWaker};

/// One event on the bus: an outbox row as consumers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusEvent {
    /// The outbox event id (UUID text); the de-duplication key.
    pub id: String,
    /// Dotted subject without the wire prefix, e.g. `identity.org.created`.
    pub subject: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub payload: serde_json::Value,
    pub created_at_ms: i64,
}

impl From<&hood_store::OutboxRecord> for BusEvent {
    fn from(record: &hood_store::OutboxRecord) -> Self {
        Self {
            id: record.id.to_string(),
            subject: record.event.subject.clone(),
            aggregate_type: record.event.aggregate_type.clone(),
            aggregate_id: record.event.aggregate_id.clone(),
            payload: record.event.payload.clone(),
            created_at_ms: record.created_at.millis(),
        }
    }
}

/// Bus failures. Messages name subjects, consumers and event ids, never a
/// credential (URLs are redacted).
#[derive(thiserror::Error, Debug)]
pub enum BusError {
    #[error("cannot connect to the event bus at {url}: {reason}")]
    Connection { url: String, reason: String },
    #[error("publishing event {id} on `{subject}` failed: {reason}")]
    Publish {
        id: String,
        subject: String,
        reason: String,
    },
    #[error("subscription of consumer `{consumer}` failed: {reason}")]
    Subscribe { consumer: String, reason: String },
    #[error("undecodable message on `{subject}`: {reason}")]
    Decode { subject: String, reason: String },
    #[error("acknowledging a delivery failed: {0}")]
    Ack(String),
    /// A subject, filter, consumer name or event the bus can never accept:
    /// retrying does not help.
    #[error("invalid {what}: {value}")]
    Invalid { what: &'static str, value: String },
}

impl BusError {
    /// True when retrying the same call cannot succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, BusError::Invalid { .. })
    }
}

/// A message bus with durable, shared, at-least-once consumers.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Durable once Ok. Publishing the same `id` twice delivers it once
    /// (de-duplication by message id; JetStream: the `Nats-Msg-Id` header
    /// within the stream's duplicate window).
    async fn publish(&self, event: &BusEvent) -> Result<(), BusError>;
    /// A durable named consumer over `subjects` (NATS wildcards `*` and
    /// `>`), created at its first subscribe; it receives events published
    /// from then on. Several subscribers with the same consumer name share
    /// the work: each event goes to one of them. A delivery not acked in
    /// time, nacked, or dropped unacked is redelivered. Subscribers of one
    /// consumer should pass the same subjects.
    async fn subscribe(
        &self,
        consumer: &str,
        subjects: &[String],
    ) -> Result<Box<dyn Subscription>, BusError>;
    /// A non-durable fan-out view: every watcher receives every matching
    /// event published while it watches. No acks, no redelivery, no
    /// history; for caches that each replica must invalidate, which repair
    /// anything missed (e.g. across a reconnect) with a periodic resync.
    async fn watch(&self, subjects: &[String]) -> Result<Box<dyn Watch>, BusError>;
    /// `"in-process"` or `"nats"`.
    fn kind(&self) -> &'static str;
}

/// The receiving end of [`EventBus::watch`].
#[async_trait]
pub trait Watch: Send {
    /// The next matching event. An error (e.g. the watcher fell behind and
    /// missed events) does not end the watch: resync, then call again.
    async fn next(&mut self) -> Result<BusEvent, BusError>;
}

/// The receiving end of one subscriber.
#[async_trait]
pub trait Subscription: Send {
    /// Waits for the next delivery. An error does not end the subscription:
    /// calling `next` again continues.
    async fn next(&mut self) -> Result<Delivery, BusError>;
}

/// One delivery of an event. It must be acked or nacked; dropping it unacked
/// asks for redelivery at once.
pub struct Delivery {
    pub event: BusEvent,
    /// 1 for the first delivery, 2 for the first redelivery, …
    pub attempt: u64,
    acker: Box<dyn Acker>,
}

impl Delivery {
    pub(crate) fn new(event: BusEvent, attempt: u64, acker: Box<dyn Acker>) -> Self {
        Self {
            event,
            attempt,
            acker,
        }
    }

    /// Done with the event: it is not delivered to this consumer again.
    pub async fn ack(self) -> Result<(), BusError> {
        self.acker.ack().await
    }

    /// Not done: redeliver (to any subscriber of the consumer) after `delay`.
    pub async fn nack(self, delay: Duration) -> Result<(), BusError> {
        self.acker.nack(delay).await
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("event", &self.event)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// Settles one delivery. Implementations redeliver when dropped unsettled.
#[async_trait]
pub(crate) trait Acker: Send {
    async fn ack(self: Box<Self>) -> Result<(), BusError>;
    async fn nack(self: Box<Self>, delay: Duration) -> Result<(), BusError>;
}

/// Whether `subject` matches the NATS-style `filter`: tokens are separated
/// by `.`, `*` matches exactly one token, a final `>` one or more.
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    let mut filter_tokens = filter.split('.').peekable();
    while let Some(f) = filter_tokens.next() {
        if f == ">" && filter_tokens.peek().is_none() {
            return subject_tokens.next().is_some_and(|s| !s.is_empty());
        }
        match subject_tokens.next() {
            Some(s) if !s.is_empty() && (f == "*" || f == s) => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '.')
}

/// A concrete subject to publish on: non-empty tokens, no wildcards.
pub(crate) fn validate_subject(subject: &str) -> Result<(), BusError> {
    let ok = subject
        .split('.')
        .all(|t| valid_token(t) && !t.contains('*') && !t.contains('>'));
    if ok {
        Ok(())
    } else {
        Err(BusError::Invalid {
            what: "subject",
            value: subject.to_owned(),
        })
    }
}

/// A subscription filter: `*` and `>` only as whole tokens, `>` only last.
pub(crate) fn validate_filter(filter: &str) -> Result<(), BusError> {
    let tokens: Vec<&str> = filter.split('.').collect();
    let last = tokens.len() - 1;
    let ok = tokens.iter().enumerate().all(|(i, t)| {
        valid_token(t)
            && match *t {
                "*" => true,
                ">" => i == last,
                _ => !t.contains('*') && !t.contains('>'),
            }
    });
    if ok {
        Ok(())
    } else {
        Err(BusError::Invalid {
            what: "subject filter",
            value: filter.to_owned(),
        })
    }
}

/// Consumer names become JetStream durable names: keep them to a safe
/// alphabet on both buses so code that works embedded works clustered.
pub(crate) fn validate_consumer(name: &str) -> Result<(), BusError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(BusError::Invalid {
            what: "consumer name (expected [A-Za-z0-9_-]{1,128})",
            value: name.to_owned(),
        })
    }
}

/// Validated filters of one watch call.
pub(crate) fn validate_watch(subjects: &[String]) -> Result<Vec<String>, BusError> {
    validate_subscription("watch", subjects)
}

/// Validated, de-duplicated filters of one subscribe call.
pub(crate) fn validate_subscription(
    consumer: &str,
    subjects: &[String],
) -> Result<Vec<String>, BusError> {
    validate_consumer(consumer)?;
    if subjects.is_empty() {
        return Err(BusError::Invalid {
            what: "subject filter list",
            value: "(empty)".to_owned(),
        });
    }
    let mut filters: Vec<String> = Vec::with_capacity(subjects.len());
    for s in subjects {
        validate_filter(s)?;
        if !filters.contains(s) {
            filters.push(s.clone());
        }
    }
    Ok(filters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_matching_follows_nats() {
        assert!(subject_matches("a.b", "a.b"));
        assert!(!subject_matches("a.b", "a.c"));
        assert!(!subject_matches("a.b", "a.b.c"));
        assert!(!subject_matches("a.b.c", "a.b"));
        assert!(subject_matches("a.*", "a.b"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(!subject_matches("a.*", "a"));
        assert!(subject_matches("*.b", "a.b"));
        assert!(subject_matches("a.>", "a.b"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(!subject_matches("a.>", "b.c"));
        assert!(subject_matches(">", "a"));
        assert!(subject_matches(">", "a.b.c"));
        assert!(subject_matches("a.*.c.>", "a.x.c.d.e"));
        assert!(!subject_matches("a.*.c.>", "a.x.d.d"));
        // `>` in the middle is a literal token, as in NATS.
        assert!(!subject_matches("a.>.c", "a.b.c"));
        assert!(!subject_matches("a.b", "a..b"));
    }

    #[test]
    fn validation() {
        assert!(validate_subject("identity.org.created").is_ok());
        assert!(validate_subject("a.*").is_err());
        assert!(validate_subject("a.>").is_err());
        assert!(validate_subject("a..b").is_err());
        assert!(validate_subject("").is_err());
        assert!(validate_subject("a b").is_err());
        assert!(validate_filter("a.*.c").is_ok());
        assert!(validate_filter("a.>").is_ok());
        assert!(validate_filter(">").is_ok());
        assert!(validate_filter("a.>.c").is_err());
        assert!(validate_filter("a*.b").is_err());
        assert!(validate_filter("a.").is_err());
        assert!(validate_consumer("incident-worker_1").is_ok());
        assert!(validate_consumer("a.b").is_err());
        assert!(validate_consumer("").is_err());
        assert!(validate_subscription("c", &[]).is_err());
        assert_eq!(
            validate_subscription("c", &["a".into(), "b".into(), "a".into()]).unwrap(),
            vec!["a".to_owned(), "b".to_owned()]
        );
    }

    #[test]
    fn event_from_outbox_record() {
        let id = hood_domain::EventId::from_uuid(
            "0190d3f0-0000-7000-8000-000000000001".parse().unwrap(),
        );
        let record = hood_store::OutboxRecord {
            id,
            seq: 7,
            event: hood_domain::event::DomainEvent {
                subject: "identity.org.created".into(),
                aggregate_type: "org".into(),
                aggregate_id: "x".into(),
                payload: serde_json::json!({"slug": "acme"}),
            },
            created_at: hood_domain::Timestamp(42),
            published_at: None,
        };
        let e = BusEvent::from(&record);
        assert_eq!(e.id, id.to_string());
        assert_eq!(e.subject, "identity.org.created");
        assert_eq!(e.aggregate_type, "org");
        assert_eq!(e.aggregate_id, "x");
        assert_eq!(e.payload["slug"], "acme");
        assert_eq!(e.created_at_ms, 42);
    }
}
