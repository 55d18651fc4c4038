//! Rows of incidents.

use crate::codec::{self, opt_ts};
use crate::StoreError;
use hood_domain::health::{IncidentCategory, Severity};
use hood_domain::incident::Incident;
use hood_domain::Timestamp;

pub(crate) const INCIDENT_COLUMNS: &str = "id, org_id, dedupe_key, category, severity, state, \
     node_id, chain, title, detail, root_id, escalation_level, escalated_at, clear_cycles, \
     opened_at, acknowledged_at, acknowledged_by, resolved_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct IncidentRow {
    id: String,
    org_id: String,
    dedupe_key: String,
    category: String,
    severity: String,
    state: String,
    node_id: Option<String>,
    chain: Option<String>,
    title: String,
    detail: String,
    root_id: Option<String>,
    escalation_level: i64,
    escalated_at: Option<i64>,
    clear_cycles: i64,
    opened_at: i64,
    acknowledged_at: Option<i64>,
    acknowledged_by: Option<String>,
    resolved_at: Option<i64>,
    updated_at: i64,
}

impl TryFrom<IncidentRow> for Incident {
    type Error = StoreError;
    fn try_from(r: IncidentRow) -> Result<Self, StoreError> {
        Ok(Incident {
            id: codec::parse_id("incidents.id", &r.id)?,
            org_id: codec::parse_id("incidents.org_id", &r.org_id)?,
            dedupe_key: r.dedupe_key,
            category: codec::parse_name(
                "incidents.category",
                &r.category,
                IncidentCategory::parse,
            )?,
            severity: codec::parse_name("incidents.severity", &r.severity, Severity::parse)?,
            state: codec::parse_state("incidents.state", &r.state)?,
            node_id: codec::parse_opt_id("incidents.node_id", r.node_id.as_deref())?,
            chain: r.chain,
            title: r.title,
            detail: r.detail,
            root_id: codec::parse_opt_id("incidents.root_id", r.root_id.as_deref())?,
            escalation_level: r.escalation_level,
            escalated_at: opt_ts(r.escalated_at),
            clear_cycles: r.clear_cycles,
            opened_at: Timestamp(r.opened_at),
            acknowledged_at: opt_ts(r.acknowledged_at),
            acknowledged_by: r.acknowledged_by,
            resolved_at: opt_ts(r.resolved_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}
