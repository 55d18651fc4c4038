//! [`IncidentStore`] for [`SqlStore`], and the incident writes the health
//! cycle makes on its own transaction ([`insert_incident_on`],
//! [`update_incident_on`]).

use super::outbox::insert_event;
use super::SqlStore;
use crate::codec::events;
use crate::db::{query, query_as, Tx};
use crate::health::IncidentChange;
use crate::incident::{Incident, IncidentFilter, IncidentStore};
use crate::model::incident::{IncidentRow, INCIDENT_COLUMNS};
use crate::model::{all, one};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::lifecycle::IncidentState;
use hood_domain::machine::StateMachine as _;
use hood_domain::{IncidentId, OrgId, Timestamp};

/// Unlimited or out-of-range limits of incident and delivery lists.
pub(crate) fn list_limit(limit: i64) -> i64 {
    if limit <= 0 {
        100
    } else {
        limit.min(1000)
    }
}

/// An incident, row-locked until the transaction ends.
async fn lock_incident(tx: &mut Tx<'_>, id: IncidentId) -> StoreResult<Option<Incident>> {
    let row = query_as::<IncidentRow>(format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1{}",
        tx.backend().for_update()
    ))
    .bind(id.to_string())
    .fetch_optional(tx)
    .await?;
    one(row)
}

/// Opens `i` unless an unresolved incident has its key (a no-op then);
/// returns whether it did.
pub(crate) async fn insert_incident_on(tx: &mut Tx<'_>, i: &Incident) -> StoreResult<bool> {
    // `DO NOTHING` with no target covers the partial unique index on
    // unresolved keys in both dialects: a second open is a no-op.
    let inserted = query(format!(
        "INSERT INTO incidents ({INCIDENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
         $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) ON CONFLICT DO NOTHING"
    ))
    .bind(i.id.to_string())
    .bind(i.org_id.to_string())
    .bind(&i.dedupe_key)
    .bind(i.category.as_str())
    .bind(i.severity.as_str())
    .bind(i.state.as_str())
    .bind(i.node_id.map(|n| n.to_string()))
    .bind(&i.chain)
    .bind(&i.title)
    .bind(&i.detail)
    .bind(i.root_id.map(|r| r.to_string()))
    .bind(i.escalation_level)
    .bind(i.escalated_at.map(Timestamp::millis))
    .bind(i.clear_cycles)
    .bind(i.opened_at.millis())
    .bind(i.acknowledged_at.map(Timestamp::millis))
    .bind(&i.acknowledged_by)
    .bind(i.resolved_at.map(Timestamp::millis))
    .bind(i.updated_at.millis())
    .execute(&mut *tx)
    .await?;
    if inserted != 1 {
        return Ok(false);
    }
    insert_event(tx, &events::incident("incident.opened", i)).await?;
    Ok(true)
}

/// Applies an incident change if it is still in `expected`; returns whether
/// it did. Every state change goes through the incident machine.
pub(crate) async fn update_incident_on(
    tx: &mut Tx<'_>,
    id: IncidentId,
    expected: IncidentState,
    change: &IncidentChange,
    now: Timestamp,
) -> StoreResult<bool> {
    let Some(mut inc) = lock_incident(tx, id).await? else {
        return Ok(false);
    };
    if inc.state != expected {
        return Ok(false);
    }
    let from = inc.state;
    if let Some(to) = change.state {
        if to != from {
            inc.state = from.transition(to)?;
            if to == IncidentState::Resolved {
                inc.resolved_at = Some(now);
            }
        }
    }
    let escalated = change
        .escalation_level
        .is_some_and(|l| l > inc.escalation_level);
    if let Some(l) = change.escalation_level {
        inc.escalation_level = l;
        if escalated {
            inc.escalated_at = Some(now);
        }
    }
    if let Some(c) = change.clear_cycles {
        inc.clear_cycles = c;
    }
    if let Some(r) = change.root_id {
        inc.root_id = r;
    }
    if let Some(d) = &change.detail {
        inc.detail.clone_from(d);
    }
    inc.updated_at = now;
    query(
        "UPDATE incidents SET state = $1, resolved_at = $2, escalation_level = $3, \
         escalated_at = $4, clear_cycles = $5, root_id = $6, detail = $7, updated_at = $8 \
         WHERE id = $9 AND state = $10",
    )
    .bind(inc.state.as_str())
    .bind(inc.resolved_at.map(Timestamp::millis))
    .bind(inc.escalation_level)
    .bind(inc.escalated_at.map(Timestamp::millis))
    .bind(inc.clear_cycles)
    .bind(inc.root_id.map(|r| r.to_string()))
    .bind(&inc.detail)
    .bind(now.millis())
    .bind(id.to_string())
    .bind(from.as_str())
    .execute(&mut *tx)
    .await?;
    if inc.state != from {
        let subject = match inc.state {
            IncidentState::Resolved => "incident.resolved",
            IncidentState::Muted => "incident.muted",
            IncidentState::Open | IncidentState::Acknowledged if from == IncidentState::Muted => {
                "incident.unmuted"
            }
            IncidentState::Acknowledged => "incident.acknowledged",
            IncidentState::Open => "incident.reopened",
        };
        insert_event(tx, &events::incident(subject, &inc)).await?;
    }
    if escalated && inc.state == IncidentState::Open {
        insert_event(tx, &events::incident("incident.escalated", &inc)).await?;
    }
    Ok(true)
}

#[async_trait]
impl IncidentStore for SqlStore {
    async fn list_incidents(
        &self,
        org: OrgId,
        filter: &IncidentFilter,
    ) -> StoreResult<Vec<Incident>> {
        let rows = query_as::<IncidentRow>(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE org_id = $1 \
             AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR node_id = $3) \
             AND ($4 = 0 OR state <> 'resolved') \
             ORDER BY opened_at DESC, id DESC LIMIT $5"
        ))
        .bind(org.to_string())
        .bind(filter.state.map(IncidentState::as_str))
        .bind(filter.node_id.map(|n| n.to_string()))
        .bind(i64::from(filter.active))
        .bind(list_limit(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn get_incident(
        &self,
        org: Option<OrgId>,
        id: IncidentId,
    ) -> StoreResult<Option<Incident>> {
        let row = query_as::<IncidentRow>(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1 AND ($2 IS NULL OR org_id = $2)"
        ))
        .bind(id.to_string())
        .bind(org.map(|o| o.to_string()))
        .fetch_optional(&self.pool)
        .await?;
        one(row)
    }

    async fn acknowledge_incident(
        &self,
        org: OrgId,
        id: IncidentId,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<Incident> {
        let mut tx = self.pool.begin_write().await?;
        let Some(mut inc) = lock_incident(&mut tx, id).await? else {
            return Err(StoreError::NotFound("incident"));
        };
        if inc.org_id != org {
            return Err(StoreError::NotFound("incident"));
        }
        if inc.acknowledged_at.is_some() {
            return Ok(inc);
        }
        let from = inc.state;
        // A muted incident stays muted; acknowledging it is remembered and
        // decides where it goes when unmuted.
        if from == IncidentState::Open {
            inc.state = from.transition(IncidentState::Acknowledged)?;
        } else if from == IncidentState::Resolved {
            from.transition(IncidentState::Acknowledged)?;
        }
        inc.acknowledged_at = Some(now);
        inc.acknowledged_by = Some(by.to_owned());
        inc.updated_at = now;
        query(
            "UPDATE incidents SET state = $1, acknowledged_at = $2, acknowledged_by = $3, \
             updated_at = $4 WHERE id = $5",
        )
        .bind(inc.state.as_str())
        .bind(now.millis())
        .bind(by)
        .bind(now.millis())
        .bind(id.to_string())
        .execute(&mut tx)
        .await?;
        insert_event(&mut tx, &events::incident("incident.acknowledged", &inc)).await?;
        tx.commit().await?;
        Ok(inc)
    }
}
