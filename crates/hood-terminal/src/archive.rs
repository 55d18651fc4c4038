//! Finished sessions into the object store (the asciicast file) and the
//! audit log (`allocation.terminal.close`, naming the file).

use crate::hub::{FinishedSession, SessionArchive};
use async_trait::async_trait;
use hood_domain::audit::AuditContext;
use hood_domain::Timestamp;
use hood_store::audit::{AuditEvent, AuditStore};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::json;
use std::sync::Arc;

/// Where a session's recording is kept in the object store.
pub fn recording_key(allocation_id: &str, session: uuid::Uuid) -> String {
    format!("terminal-recordings/{allocation_id}/{session}.cast")
}

/// Archives into an object store and the audit log.
pub struct ObjectArchive {
    objects: Arc<dyn ObjectStore>,
    audit: Arc<dyn AuditStore>,
}

impl ObjectArchive {
    pub fn new(objects: Arc<dyn ObjectStore>, audit: Arc<dyn AuditStore>) -> Self {
        Self { objects, audit }
    }
}

#[async_trait]
impl SessionArchive for ObjectArchive {
    async fn archive(&self, finished: FinishedSession) {
        let info = &finished.info;
        let key = recording_key(&info.allocation_id, info.id);
        let size = finished.cast.len();
        // A failed upload is retried a few times; the audit row says whether
        // the recording is there.
        let mut stored = false;
        for attempt in 0..3u32 {
            match self
                .objects
                .put(
                    &ObjectPath::from(key.as_str()),
                    finished.cast.clone().into(),
                )
                .await
            {
                Ok(_) => {
                    stored = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!(session = %info.id, attempt, error = %e,
                        "could not store a terminal recording");
                    tokio::time::sleep(std::time::Duration::from_millis(500 << attempt)).await;
                }
            }
        }
        let ctx = AuditContext {
            actor: info.actor.clone(),
            request_id: info.request_id.clone(),
            reason: Some(finished.ended.reason.clone()),
        };
        let event = AuditEvent {
            org_id: info.org_id,
            action: "allocation.terminal.close".into(),
            resource_type: "allocation".into(),
            resource_id: info.allocation_id.clone(),
            after: Some(json!({
                "session_id": info.id,
                "host_id": info.host_id,
                "opened_at_ms": info.opened_at_ms,
                "ended_at_ms": finished.ended_at_ms,
                "exit_code": finished.ended.code,
                "output_bytes": finished.output_bytes,
                "recording": stored.then_some(&key),
                "recording_bytes": size,
                "recording_truncated": finished.recording_truncated,
            })),
        };
        if let Err(e) = self
            .audit
            .append_audit(&ctx, Timestamp::from_millis(finished.ended_at_ms), event)
            .await
        {
            tracing::error!(session = %info.id, error = %e,
                "could not write the audit row of a terminal session");
        }
    }
}
