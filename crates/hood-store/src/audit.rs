//! The audit log, read side. Rows are written by the store methods that
//! make the changes they record, in the same transaction
//! (`datastore::audit::insert_audit`); nothing updates or deletes them
//! (the schema's triggers refuse it).

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::audit::AuditEntry;
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

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Rows matching `filter`, newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>>;
}
