//! The audit log: one append-only row per mutation (design §11, seed 004's
//! "allocation + outbox + audit in one transaction"). Written by the store
//! in the transaction of the change it records, so a change and its audit
//! row exist together or not at all.

use crate::{OrgId, Timestamp};
use serde::{Deserialize, Serialize};

/// Who asked for a change, and through which request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditContext {
    /// `user:{id}`, `key:{id}` (an API key, acting for its user) or
    /// `system:{role}` (a role acting on its own: accrual, a worker).
    pub actor: String,
    /// The HTTP request's `x-request-id`, when a request caused it.
    pub request_id: Option<String>,
    /// Why, when the actor gave a reason (an operator's force-release).
    pub reason: Option<String>,
}

impl AuditContext {
    /// A change a role makes on its own (no request).
    pub fn system(role: &str) -> Self {
        Self {
            actor: format!("system:{role}"),
            request_id: None,
            reason: None,
        }
    }

    /// The same context, giving `reason`.
    pub fn with_reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// A UUIDv7: sorts by time of writing.
    pub id: uuid::Uuid,
    pub at: Timestamp,
    /// The organization whose resource changed; `None` for platform-wide
    /// resources (a host's declared capacity).
    pub org_id: Option<OrgId>,
    pub actor: String,
    /// `{resource}.{verb}`: `allocation.create`, `allocation.release`,
    /// `host.capacity.declare` …
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    /// The resource before and after the change (`None` when it did not
    /// exist before, or no longer exists after).
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub request_id: Option<String>,
    pub reason: Option<String>,
}
