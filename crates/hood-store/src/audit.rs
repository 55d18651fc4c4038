//! The audit log, read side. Rows are written by the store methods that
//! make the changes they record, in the same transaction
//! (`datastore::audit::insert_audit`); nothing updates or deletes them
//! (the schema's triggers refuse it).

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::audit::{AuditContext, AuditEntry};
use hood_domain::{OrgId, Timestamp};

/// Which rows to read; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub org_id: Option<OrgId>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub request_id: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Rows written before this row (ids are UUIDv7): the next page.
    pub before: Option<uuid::Uuid>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// An action that changes nothing stored but must be on the record (a
/// terminal session into an allocation): what [`AuditStore::append_audit`]
/// writes.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub org_id: Option<OrgId>,
    /// `{resource}.{verb}`, e.g. `allocation.terminal.open`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub after: Option<serde_json::Value>,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Rows matching `filter`, newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>>;

    /// Appends one row for an action that has no stored change of its own
    /// to ride with. Changes to stored rows are audited by the store
    /// methods that make them, in their transaction, not through this.
    async fn append_audit(
        &self,
        ctx: &AuditContext,
        at: Timestamp,
        event: AuditEvent,
    ) -> StoreResult<()>;
}
