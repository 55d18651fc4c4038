//! Feeding users' notifications: one durable consumer (shared by every
//! replica that runs it, each event handled by one of them) turns the
//! events a feed shows into items for every user of their organization.

use crate::{EventBus, Subscription};
use hood_domain::feed::{feed_event, FEED_SUBJECTS};
use hood_domain::Timestamp;
use hood_store::feed::FeedStore;
use std::sync::Arc;
use std::time::Duration;

/// The durable consumer's name.
pub const FEED_CONSUMER: &str = "notification-feed";

/// Fans events out into feeds until the task is dropped. Delivery is at
/// least once; the store adds an event once per user.
pub async fn follow_feed_events(store: Arc<dyn FeedStore>, bus: Arc<dyn EventBus>) {
    let subjects: Vec<String> = FEED_SUBJECTS.iter().map(|s| (*s).to_owned()).collect();
    let mut subscription: Box<dyn Subscription> = loop {
        match bus.subscribe(FEED_CONSUMER, &subjects).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to feed events; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    loop {
        let delivery = match subscription.next().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "feed events: bus receive failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let event = &delivery.event;
        let item = feed_event(
            &event.id,
            &event.subject,
            &event.payload,
            Timestamp::from_millis(event.created_at_ms),
        );
        let stored = match &item {
            Some(item) => store.fan_out(item).await.map(|_| ()),
            None => Ok(()),
        };
        match stored {
            Ok(()) => {
                if let Err(e) = delivery.ack().await {
                    tracing::warn!(error = %e, "feed ack failed; the event comes again (harmless)");
                }
            }
            Err(e) => {
                tracing::warn!(event = %event.id, error = %e, "could not feed an event; redelivering");
                let _ = delivery.nack(Duration::from_secs(1)).await;
            }
        }
    }
}
