//! Cluster mode's bus: NATS JetStream.
//!
//! One stream (file storage) holds every event under `{prefix}.>`; the bus
//! adds the prefix on publish and strips it on receipt, so callers use plain
//! subjects. Each event id travels as `Nats-Msg-Id`, which JetStream
//! de-duplicates within the stream's duplicate window. Consumers are durable
//! pull consumers with explicit acks: subscribers of one name share one
//! consumer, so each event goes to one of them.

use crate::{
    subject_matches, validate_subject, validate_subscription, validate_watch, Acker, BusError,
    BusEvent, Delivery, EventBus, Subscription, Watch,
};
use async_nats::jetstream::{self, consumer, stream, AckKind};
use async_trait::async_trait;
use futures::StreamExt as _;
use std::time::Duration;

/// Settings of the JetStream stream and its consumers.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Stream name (no `.`, `*`, `>` or whitespace).
    pub stream: String,
    /// First subject token on the wire; the stream captures `{prefix}.>`.
    /// Two streams on one server cannot share subjects, so tests use their
    /// own prefix.
    pub subject_prefix: String,
    /// How long a delivery may stay unacked before JetStream redelivers it.
    pub ack_wait: Duration,
    /// Publishes of one event id within this window are stored once.
    pub duplicate_window: Duration,
    /// How long the stream keeps an event (consumers that fall further
    /// behind lose it). Bounds the stream's disk use.
    pub max_age: Duration,
    /// Messages a subscriber pulls ahead. Each one's ack wait runs from
    /// the pull, and those a dropped subscriber had pulled wait out the ack
    /// wait before another gets them, so keep this small.
    pub pull_batch: usize,
}

impl NatsOptions {
    pub fn new(stream: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            subject_prefix: "hood".to_owned(),
            ack_wait: Duration::from_secs(30),
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(7 * 24 * 3600),
            pull_batch: 10,
        }
    }
}

/// An [`EventBus`] on NATS JetStream.
#[derive(Clone)]
pub struct NatsBus {
    js: jetstream::Context,
    options: NatsOptions,
    /// JetStream 2.10+ filters one consumer by several subjects; older
    /// servers get an unfiltered consumer and we filter here.
    multi_filter: bool,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// `nats://user:***@host`; a lone userinfo part is a token: `nats://***@host`.
/// A comma-separated list of servers is redacted server by server.
fn redact_url(url: &str) -> String {
    url.split(',')
        .map(redact_one_url)
        .collect::<Vec<_>>()
        .join(",")
}

fn redact_one_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(url.len());
    match url[scheme_end..authority_end].rfind('@') {
        Some(at) => {
            let at = scheme_end + at;
            let user = match url[scheme_end..at].split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_owned(),
            };
            format!("{}{user}{}", &url[..scheme_end], &url[at..])
        }
        None => url.to_owned(),
    }
}

/// Removes the userinfo of every URL in `url` from `text` (error messages
/// of the client may echo the address it was given).
fn scrub(text: &str, url: &str) -> String {
    let mut out = text.to_owned();
    for part in url.split(',') {
        let part = part.trim();
        if let Some(scheme_end) = part.find("://").map(|i| i + 3) {
            if let Some(at) = part[scheme_end..].rfind('@') {
                let userinfo = &part[scheme_end..scheme_end + at];
                if !userinfo.is_empty() {
                    out = out.replace(userinfo, "***");
                }
            }
        }
    }
    out
}

/// `(major, minor)` of a server version like `2.10.7`.
fn version_at_least(version: &str, major: u64, minor: u64) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse::<u64>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(ma), Some(mi)) => (ma, mi) >= (major, minor),
        _ => false,
    }
}

impl NatsBus {
    /// Connects with [`NatsOptions::new`]`(stream)`.
    pub async fn connect(url: &str, stream: &str) -> Result<Self, BusError> {
        Self::connect_with(url, NatsOptions::new(stream)).await
    }

    /// Connects to `url` (credentials may be in it; they never appear in an
    /// error) and creates or updates the stream.
    pub async fn connect_with(url: &str, options: NatsOptions) -> Result<Self, BusError> {
        let connection_error = |reason: String| BusError::Connection {
            url: redact_url(url),
            reason: scrub(&reason, url),
        };
        if options.subject_prefix.is_empty() || validate_subject(&options.subject_prefix).is_err() {
            return Err(BusError::Invalid {
                what: "subject prefix",
                value: options.subject_prefix.clone(),
            });
        }
        let client = async_nats::ConnectOptions::new()
            .name("hood")
            .connect(url)
            .await
            .map_err(|e| connection_error(e.to_string()))?;
        let version = client.server_info().version;
        let multi_filter = version_at_least(&version, 2, 10);
        let js = jetstream::new(client);
        let config = stream::Config {
            name: options.stream.clone(),
            subjects: vec![format!("{}.>", options.subject_prefix)],
            storage: stream::StorageType::File,
            duplicate_window: options.duplicate_window,
            max_age: options.max_age,
            ..Default::default()
        };
        js.create_or_update_stream(config)
            .await
            .map_err(|e| connection_error(format!("stream {}: {e}", options.stream)))?;
        tracing::debug!(url = %redact_url(url), stream = %options.stream, server_version = %version, "connected to NATS JetStream");
        Ok(Self {
            js,
            options,
            multi_filter,
        })
    }

    fn wire_subject(&self, subject: &str) -> String {
        format!("{}.{subject}", self.options.subject_prefix)
    }
}

#[async_trait]
impl EventBus for NatsBus {
    async fn publish(&self, event: &BusEvent) -> Result<(), BusError> {
        validate_subject(&event.subject)?;
        let error = |reason: String| BusError::Publish {
            id: event.id.clone(),
            subject: event.subject.clone(),
            reason,
        };
        let body = serde_json::to_vec(event).map_err(|e| error(e.to_string()))?;
        let message = jetstream::message::PublishMessage::build()
            .payload(body.into())
            .message_id(&event.id);
        let ack = self
            .js
            .send_publish(self.wire_subject(&event.subject), message)
            .await
            .map_err(|e| match e.kind() {
                jetstream::context::PublishErrorKind::MaxPayloadExceeded => BusError::Invalid {
                    what: "event (larger than the server's max payload)",
                    value: event.id.clone(),
                },
                _ => error(e.to_string()),
            })?
            .await
            .map_err(|e| error(e.to_string()))?;
        if ack.duplicate {
            tracing::debug!(event_id = %event.id, subject = %event.subject, "NATS: duplicate publish ignored by JetStream");
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        consumer_name: &str,
        subjects: &[String],
    ) -> Result<Box<dyn Subscription>, BusError> {
        let filters = validate_subscription(consumer_name, subjects)?;
        let error = |reason: String| BusError::Subscribe {
            consumer: consumer_name.to_owned(),
            reason,
        };
        let wire: Vec<String> = filters.iter().map(|f| self.wire_subject(f)).collect();
        let mut config = consumer::pull::Config {
            durable_name: Some(consumer_name.to_owned()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.options.ack_wait,
            deliver_policy: consumer::DeliverPolicy::New,
            ..Default::default()
        };
        match wire.as_slice() {
            [one] => config.filter_subject = one.clone(),
            _ if self.multi_filter => config.filter_subjects = wire.clone(),
            // Unfiltered: `next` acks and skips what matches no filter.
            _ => {}
        }
        let stream = self
            .js
            .get_stream_no_info(&self.options.stream)
            .await
            .map_err(|e| error(e.to_string()))?;
        let consumer = stream
            .create_consumer(config)
            .await
            .map_err(|e| error(e.to_string()))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.options.pull_batch.max(1))
            .messages()
            .await
            .map_err(|e| error(e.to_string()))?;
        Ok(Box::new(NatsSubscription {
            consumer: consumer_name.to_owned(),
            prefix: format!("{}.", self.options.subject_prefix),
            filters,
            messages,
        }))
    }

    async fn watch(&self, subjects: &[String]) -> Result<Box<dyn Watch>, BusError> {
        let filters = validate_watch(subjects)?;
        // JetStream publishes are plain NATS messages on the wire subject,
        // so a core subscription sees each one as it is stored.
        let client = self.js.client();
        let mut streams = Vec::with_capacity(filters.len());
        for filter in &filters {
            let subscriber = client
                .subscribe(self.wire_subject(filter))
                .await
                .map_err(|e| BusError::Subscribe {
                    consumer: "watch".to_owned(),
                    reason: e.to_string(),
                })?;
            streams.push(subscriber);
        }
        Ok(Box::new(NatsWatch {
            prefix: format!("{}.", self.options.subject_prefix),
            messages: futures::stream::select_all(streams),
        }))
    }

    fn kind(&self) -> &'static str {
        "nats"
    }
}

struct NatsWatch {
    /// `{subject_prefix}.`
    prefix: String,
    messages: futures::stream::SelectAll<async_nats::Subscriber>,
}

#[async_trait]
impl Watch for NatsWatch {
    async fn next(&mut self) -> Result<BusEvent, BusError> {
        let Some(message) = self.messages.next().await else {
            return Err(BusError::Subscribe {
                consumer: "watch".to_owned(),
                reason: "subscription ended".to_owned(),
            });
        };
        let wire_subject = message.subject.to_string();
        let subject = wire_subject
            .strip_prefix(&self.prefix)
            .unwrap_or(&wire_subject);
        serde_json::from_slice(&message.payload).map_err(|e| BusError::Decode {
            subject: subject.to_owned(),
            reason: e.to_string(),
        })
    }
}

struct NatsSubscription {
    consumer: String,
    /// `{subject_prefix}.`
    prefix: String,
    filters: Vec<String>,
    messages: consumer::pull::Stream,
}

#[async_trait]
impl Subscription for NatsSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            let message = match self.messages.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    return Err(BusError::Subscribe {
                        consumer: self.consumer.clone(),
                        reason: e.to_string(),
                    })
                }
                None => {
                    return Err(BusError::Subscribe {
                        consumer: self.consumer.clone(),
                        reason: "message stream ended".to_owned(),
                    })
                }
            };
            let wire_subject = message.subject.to_string();
            let subject = wire_subject
                .strip_prefix(&self.prefix)
                .unwrap_or(&wire_subject)
                .to_owned();
            if !self.filters.iter().any(|f| subject_matches(f, &subject)) {
                // Only on an unfiltered consumer (servers before 2.10).
                settle_quietly(&message, AckKind::Ack).await;
                continue;
            }
            let attempt = message
                .info()
                .ok()
                .and_then(|info| u64::try_from(info.delivered).ok())
                .unwrap_or(1)
                .max(1);
            let event: BusEvent = match serde_json::from_slice(&message.payload) {
                Ok(event) => event,
                Err(e) => {
                    // It will never decode: stop its redelivery for good.
                    settle_quietly(&message, AckKind::Term).await;
                    return Err(BusError::Decode {
                        subject,
                        reason: e.to_string(),
                    });
                }
            };
            return Ok(Delivery::new(
                event,
                attempt,
                Box::new(NatsAcker {
                    message: Some(message),
                }),
            ));
        }
    }
}

async fn settle_quietly(message: &jetstream::Message, kind: AckKind) {
    if let Err(e) = message.ack_with(kind).await {
        tracing::warn!(error = %e, subject = %message.subject, "NATS: settling a skipped message failed; it will be redelivered");
    }
}

struct NatsAcker {
    /// `None` once settled.
    message: Option<jetstream::Message>,
}

fn nak(delay: Duration) -> AckKind {
    if delay.is_zero() {
        AckKind::Nak(None)
    } else {
        AckKind::Nak(Some(delay))
    }
}

#[async_trait]
impl Acker for NatsAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), BusError> {
        let Some(message) = self.message.take() else {
            return Ok(());
        };
        // Waits for the server's confirmation, so Ok means the ack counted.
        message
            .double_ack()
            .await
            .map_err(|e| BusError::Ack(e.to_string()))
    }

    async fn nack(mut self: Box<Self>, delay: Duration) -> Result<(), BusError> {
        let Some(message) = self.message.take() else {
            return Ok(());
        };
        message
            .ack_with(nak(delay))
            .await
            .map_err(|e| BusError::Ack(e.to_string()))
    }
}

impl Drop for NatsAcker {
    fn drop(&mut self) {
        let Some(message) = self.message.take() else {
            return;
        };
        // Ask for redelivery now rather than after the ack wait. Without a
        // runtime (or if this fails) the ack wait still redelivers it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                settle_quietly(&message, AckKind::Nak(None)).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("nats://u:secret@h:4222"), "nats://u:***@h:4222");
        assert_eq!(redact_url("nats://tok3n@h:4222"), "nats://***@h:4222");
        assert_eq!(redact_url("nats://h:4222"), "nats://h:4222");
        assert_eq!(redact_url("h:4222"), "h:4222");
        assert_eq!(
            redact_url("nats://a:x@h1:4222,nats://b:y@h2:4222"),
            "nats://a:***@h1:4222,nats://b:***@h2:4222"
        );
        let scrubbed = scrub(
            "failed nats://u:secret@h:4222 (u:secret)",
            "nats://u:secret@h:4222",
        );
        assert!(!scrubbed.contains("secret"), "{scrubbed}");
    }

    #[test]
    fn server_versions() {
        assert!(version_at_least("2.10.7", 2, 10));
        assert!(version_at_least("2.11.0-beta", 2, 10));
        assert!(version_at_least("v3.0.0", 2, 10));
        assert!(!version_at_least("2.9.10", 2, 10));
        assert!(!version_at_least("", 2, 10));
    }

    #[tokio::test]
    async fn connection_errors_name_no_credentials() {
        // Nothing listens on port 1: connecting fails at once.
        let err = NatsBus::connect("nats://hood:s3cret@127.0.0.1:1", "S")
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, BusError::Connection { .. }), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("127.0.0.1:1"), "{text}");
    }
}
