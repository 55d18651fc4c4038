//! Notifications: a bus consumer turns incident events into durable
//! deliveries (one per channel, event and escalation level, however often
//! the bus redelivers), and a sender works them off with retries. Every
//! delivery is claimed and sent on its own, so a failing channel never
//! holds up another. Neither part is leader-gated: replicas share the
//! consumer and claim deliveries with `SKIP LOCKED`.

use crate::config::DeliveryPolicy;
use hood_bus::{EventBus, Subscription};
use hood_clock::Clock;
use hood_domain::lifecycle::IncidentState;
use hood_domain::{IncidentId, Timestamp};
use hood_identity::master_key::MasterKey;
use hood_notify::{ChannelConfig, Notification, Notifier};
use hood_store::health::{AttemptOutcome, DueDelivery};
use hood_store::incident::IncidentStore;
use hood_store::notification::NotificationStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Durable consumer name shared by every health replica.
pub const NOTIFY_CONSUMER: &str = "health-notifier";

/// Incident events that notify.
const NOTIFYING: &[&str] = &["incident.opened", "incident.escalated", "incident.resolved"];

/// Associated data binding a sealed channel config to its channel.
pub fn channel_aad(channel: &hood_domain::ChannelId) -> Vec<u8> {
    format!("notification-channel:{channel}").into_bytes()
}

/// Dispatches incident events to channels.
#[derive(Clone)]
pub struct NotificationDispatcher {
    store: Arc<dyn NotificationStore>,
    incidents: Arc<dyn IncidentStore>,
    clock: Arc<dyn Clock>,
    master: MasterKey,
    notifier: Notifier,
    policy: DeliveryPolicy,
}

impl NotificationDispatcher {
    pub fn new(
        store: Arc<dyn NotificationStore>,
        incidents: Arc<dyn IncidentStore>,
        master: MasterKey,
        notifier: Notifier,
        policy: DeliveryPolicy,
    ) -> Self {
        Self {
            store,
            incidents,
            clock: hood_clock::system(),
            master,
            notifier,
            policy,
        }
    }

    /// Judges claims and retry times by `clock` (the database's, where
    /// replicas share one).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Consumes incident events until `stop`; each becomes deliveries.
    pub async fn consume(self, bus: Arc<dyn EventBus>, mut stop: watch::Receiver<bool>) {
        let subjects: Vec<String> = NOTIFYING.iter().map(|s| (*s).to_owned()).collect();
        let mut sub: Box<dyn Subscription> = loop {
            match bus.subscribe(NOTIFY_CONSUMER, &subjects).await {
                Ok(s) => break s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot subscribe to incident events; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
        };
        loop {
            let delivery = tokio::select! {
                d = sub.next() => d,
                _ = stop.changed() => return,
            };
            let delivery = match delivery {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "bus receive failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            match self.enqueue(&delivery.event).await {
                Ok(()) => {
                    if let Err(e) = delivery.ack().await {
                        tracing::warn!(error = %e, "ack failed; the event will be redelivered (harmless)");
                    }
                }
                Err(e) => {
                    tracing::warn!(event = %delivery.event.id, error = %e, "could not record deliveries; redelivering");
                    let _ = delivery.nack(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Records the deliveries an incident event calls for.
    async fn enqueue(&self, event: &hood_bus::BusEvent) -> Result<(), hood_store::StoreError> {
        let Ok(id) = event.aggregate_id.parse::<IncidentId>() else {
            tracing::warn!(event = %event.id, "incident event without an incident id; dropped");
            return Ok(());
        };
        let Some(incident) = self.incidents.get_incident(None, id).await? else {
            return Ok(());
        };
        // Muted incidents are covered by their root's notification.
        if event.subject == "incident.opened" && incident.state == IncidentState::Muted {
            return Ok(());
        }
        let level = event
            .payload
            .get("escalation_level")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(incident.escalation_level);
        let n = self
            .store
            .enqueue_deliveries(id, &event.subject, level, self.clock.now())
            .await?;
        tracing::debug!(incident_id = %id, event = %event.subject, deliveries = n, "deliveries recorded");
        Ok(())
    }

    /// Sends due deliveries until `stop`.
    pub async fn send_loop(self, mut stop: watch::Receiver<bool>) {
        loop {
            let sent = self.send_due().await;
            if sent == 0 {
                tokio::select! {
                    _ = tokio::time::sleep(self.policy.poll) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }

    /// Claims and sends one batch; returns how many were attempted.
    pub async fn send_due(&self) -> usize {
        let now = self.clock.now();
        let lease_ms = i64::try_from(self.policy.claim_lease.as_millis()).unwrap_or(60_000);
        let due = match self.store.claim_deliveries(32, lease_ms, now).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim deliveries");
                return 0;
            }
        };
        let count = due.len();
        futures::future::join_all(due.into_iter().map(|d| self.send_one(d))).await;
        count
    }

    async fn send_one(&self, due: DueDelivery) {
        let DueDelivery {
            delivery,
            channel,
            incident,
        } = due;
        let outcome = match self
            .master
            .open(&channel.sealed_config, &channel_aad(&channel.id))
            .map_err(|e| e.to_string())
            .and_then(|plain| {
                serde_json::from_slice::<ChannelConfig>(&plain).map_err(|e| e.to_string())
            }) {
            Err(e) => AttemptOutcome::Failed {
                error: format!("channel configuration unreadable: {e}"),
            },
            Ok(config) => {
                let n = Notification {
                    delivery_id: delivery.id.to_string(),
                    event: delivery.event.clone(),
                    incident_id: incident.id.to_string(),
                    org_id: incident.org_id.to_string(),
                    category: incident.category.as_str().to_owned(),
                    severity: incident.severity.as_str().to_owned(),
                    title: incident.title.clone(),
                    detail: incident.detail.clone(),
                    node_id: incident.node_id.map(|n| n.to_string()),
                    chain: incident.chain.clone(),
                    escalation_level: delivery.escalation_level,
                    occurred_at_ms: delivery.created_at.millis(),
                };
                match self.notifier.send(&config, &n).await {
                    Ok(()) => AttemptOutcome::Delivered,
                    Err(e) => {
                        let attempt = delivery.attempts + 1;
                        if e.is_retryable() && attempt < self.policy.max_attempts {
                            let wait = e
                                .retry_after()
                                .unwrap_or_else(|| self.policy.backoff(attempt))
                                .min(self.policy.max_backoff);
                            let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                            AttemptOutcome::Retry {
                                next_attempt_at: Timestamp(
                                    self.clock.now().millis().saturating_add(wait_ms),
                                ),
                                error: e.to_string(),
                            }
                        } else {
                            AttemptOutcome::Failed {
                                error: e.to_string(),
                            }
                        }
                    }
                }
            }
        };
        tracing::info!(
            delivery_id = %delivery.id,
            channel = %channel.kind,
            incident_id = %incident.id,
            event = %delivery.event,
            outcome = match &outcome { AttemptOutcome::Delivered => "delivered", AttemptOutcome::Retry { .. } => "retry", AttemptOutcome::Failed { .. } => "failed" },
            "notification attempt"
        );
        if let Err(e) = self
            .store
            .finish_delivery(delivery.id, &outcome, self.clock.now())
            .await
        {
            tracing::warn!(delivery_id = %delivery.id, error = %e, "could not record delivery outcome; it will be retried after its claim lapses");
        }
    }
}
