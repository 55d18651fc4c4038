//! Incidents: what the health role opens when a condition holds, keeps at
//! most once per de-duplication key while unresolved, escalates, mutes
//! under a chain-wide root and resolves after enough clear cycles (the
//! rules are in [`crate::health`], the lifecycle in
//! [`crate::lifecycle::IncidentState`]).

use crate::health::{IncidentCategory, Severity};
use crate::lifecycle::IncidentState;
use crate::{IncidentId, NodeId, OrgId, Timestamp};

/// An incident as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub id: IncidentId,
    pub org_id: OrgId,
    /// At most one unresolved incident per key (`node_down:{node}`, …).
    pub dedupe_key: String,
    pub category: IncidentCategory,
    pub severity: Severity,
    pub state: IncidentState,
    pub node_id: Option<NodeId>,
    pub chain: Option<String>,
    pub title: String,
    pub detail: String,
    /// The chain-wide incident that mutes this one.
    pub root_id: Option<IncidentId>,
    pub escalation_level: i64,
    pub escalated_at: Option<Timestamp>,
    /// Consecutive evaluations without the condition (hysteresis).
    pub clear_cycles: i64,
    pub opened_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}
