//! Following credential changes: the one loop that keeps every replica's
//! credential caches (`hood_identity::credential_cache`) honest.

use crate::EventBus;
use hood_domain::OrgId;
use hood_identity::credential_cache::CredentialEvictor;
use hood_store::service_account::CREDENTIAL_EVENTS;
use std::sync::Arc;
use std::time::Duration;

/// Follows [`CREDENTIAL_EVENTS`] on `bus` for `caches` until the task is
/// dropped: each event evicts its organization's entries from every cache;
/// while the watch is down, the caches re-read standings every
/// `hood_identity::credential_cache::UNWATCHED_TTL` instead.
pub async fn follow_credential_events(
    caches: Vec<Arc<dyn CredentialEvictor>>,
    bus: Arc<dyn EventBus>,
) {
    let subjects: Vec<String> = CREDENTIAL_EVENTS.iter().map(|s| (*s).to_owned()).collect();
    let reset = |watching: bool| caches.iter().for_each(|c| c.reset(watching));
    loop {
        match bus.watch(&subjects).await {
            Ok(mut watch) => {
                // Whatever changed before the watch began is forgotten too.
                reset(true);
                loop {
                    match watch.next().await {
                        Ok(event) => match event_org(&event.payload) {
                            Some(org) => caches.iter().for_each(|c| c.evict_org(org)),
                            // Not an event of the expected shape: forget all.
                            None => reset(true),
                        },
                        Err(e) => {
                            // Events may have been missed: start over.
                            tracing::warn!(error = %e, "credential watch interrupted; forgetting cached credentials");
                            reset(true);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch credential changes; re-reading credentials each second");
                reset(false);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn event_org(payload: &serde_json::Value) -> Option<OrgId> {
    payload.get("org_id")?.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BusEvent, InProcessBus};
    use std::sync::Mutex;

    /// Records what the follower asked of it.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl CredentialEvictor for Recorder {
        fn evict_org(&self, org: OrgId) {
            self.0.lock().unwrap().push(format!("evict {org}"));
        }
        fn reset(&self, watching: bool) {
            self.0.lock().unwrap().push(format!("reset {watching}"));
        }
    }

    fn event(subject: &str, payload: serde_json::Value) -> BusEvent {
        BusEvent {
            id: uuid::Uuid::new_v4().to_string(),
            subject: subject.into(),
            aggregate_type: "test".into(),
            aggregate_id: "x".into(),
            payload,
            created_at_ms: 0,
        }
    }

    #[tokio::test]
    async fn every_cache_evicts_the_organization_an_event_names() {
        let bus = Arc::new(InProcessBus::new());
        let (a, b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        let follower = tokio::spawn(follow_credential_events(
            vec![a.clone(), b.clone()],
            bus.clone(),
        ));
        let started = || a.0.lock().unwrap().first().cloned();
        while started().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let org = OrgId::from_uuid(uuid::Uuid::new_v4());
        bus.publish(&event(
            "identity.api_key.revoked",
            serde_json::json!({"org_id": org.to_string()}),
        ))
        .await
        .unwrap();
        // Not a credential event: ignored.
        bus.publish(&event(
            "node.created",
            serde_json::json!({"org_id": org.to_string()}),
        ))
        .await
        .unwrap();
        bus.publish(&event(
            "identity.user.updated",
            serde_json::json!({"id": "?"}),
        ))
        .await
        .unwrap();
        let want = vec![
            "reset true".to_owned(),
            format!("evict {org}"),
            "reset true".to_owned(),
        ];
        for _ in 0..200 {
            if a.0.lock().unwrap().len() >= want.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        follower.abort();
        assert_eq!(*a.0.lock().unwrap(), want);
        assert_eq!(*b.0.lock().unwrap(), want);
    }
}
