//! Incidents as the API reads and acknowledges them. The health role opens,
//! escalates and resolves them through
//! [`HealthStore::apply_health`](crate::health::HealthStore::apply_health).

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::lifecycle::IncidentState;
use hood_domain::{IncidentId, NodeId, OrgId, Timestamp};

pub use hood_domain::incident::Incident;

/// Which incidents [`IncidentStore::list_incidents`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentFilter {
    pub state: Option<IncidentState>,
    pub node_id: Option<NodeId>,
    /// Only unresolved ones.
    pub active: bool,
    pub limit: i64,
}

/// Reading and acknowledging an organization's incidents.
#[async_trait]
pub trait IncidentStore: Send + Sync {
    async fn list_incidents(
        &self,
        org: OrgId,
        filter: &IncidentFilter,
    ) -> StoreResult<Vec<Incident>>;
    async fn get_incident(
        &self,
        org: Option<OrgId>,
        id: IncidentId,
    ) -> StoreResult<Option<Incident>>;
    /// Acknowledges an open or muted incident (stops escalation); outbox
    /// `incident.acknowledged`. Acknowledging twice is a no-op.
    async fn acknowledge_incident(
        &self,
        org: OrgId,
        id: IncidentId,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<Incident>;
}
