//! [`AllocationStore`] for [`SqlStore`].

use super::audit::{audit_value as value, insert_audit, Audited};
use super::billing::parse_id;
use super::outbox::insert_event;
use super::SqlStore;
use crate::allocation::{AllocationStore, Placed};
use crate::codec::{events, write_error};
use crate::db::{query, query_as, Tx};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::allocation::{Allocation, AllocationBudget, CapacitySource, HostInventory};
use hood_domain::audit::AuditContext;
use hood_domain::lifecycle::AllocationState;
use hood_domain::machine::StateMachine as _;
use hood_domain::placement::{place, HostCapacity, PlacementError, Reservation, Shape};
use hood_domain::{AllocationId, HostId, OrgId, Timestamp};

const COLUMNS: &str = "id, org_id, host_id, sku, price_per_minute_minor, currency, spec, state, reservation, idempotency_key, \
                       expires_at, error, active_since, active_until, created_at, updated_at, idle_since, ports";
/// States that hold no placement (`AllocationState::holds_placement`).
const ENDED: &str = "('released', 'failed')";

#[derive(sqlx::FromRow)]
struct AllocationRow {
    id: String,
    org_id: String,
    host_id: String,
    sku: String,
    price_per_minute_minor: i64,
    currency: String,
    spec: String,
    state: String,
    reservation: String,
    idempotency_key: Option<String>,
    expires_at: Option<i64>,
    error: Option<String>,
    active_since: Option<i64>,
    active_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
    idle_since: Option<i64>,
    ports: Option<String>,
}

impl TryFrom<AllocationRow> for Allocation {
    type Error = StoreError;
    fn try_from(r: AllocationRow) -> StoreResult<Self> {
        Ok(Allocation {
            id: parse_id("id", &r.id)?,
            org_id: parse_id("org_id", &r.org_id)?,
            host_id: parse_id("host_id", &r.host_id)?,
            sku: r.sku,
            price_per_minute_minor: u64::try_from(r.price_per_minute_minor).map_err(|_| {
                StoreError::Corrupt(format!("allocation price {}", r.price_per_minute_minor))
            })?,
            currency: r.currency.parse().map_err(|_| {
                StoreError::Corrupt(format!("allocation currency `{}`", r.currency))
            })?,
            spec: serde_json::from_str(&r.spec)
                .map_err(|e| StoreError::Corrupt(format!("allocation spec: {e}")))?,
            state: AllocationState::parse(&r.state)
                .ok_or_else(|| StoreError::Corrupt(format!("allocation state `{}`", r.state)))?,
            reservation: serde_json::from_str(&r.reservation)
                .map_err(|e| StoreError::Corrupt(format!("allocation reservation: {e}")))?,
            idempotency_key: r.idempotency_key,
            expires_at: r.expires_at.map(Timestamp::from_millis),
            error: r.error,
            active_since: r.active_since.map(Timestamp::from_millis),
            active_until: r.active_until.map(Timestamp::from_millis),
            idle_since: r.idle_since.map(Timestamp::from_millis),
            ports: r
                .ports
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("allocation ports: {e}")))?
                .unwrap_or_default(),
            created_at: Timestamp::from_millis(r.created_at),
            updated_at: Timestamp::from_millis(r.updated_at),
        })
    }
}

fn all(rows: Vec<AllocationRow>) -> StoreResult<Vec<Allocation>> {
    rows.into_iter().map(Allocation::try_from).collect()
}

fn encode<T: serde::Serialize>(what: &str, v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

async fn by_key(tx: &mut Tx<'_>, org: OrgId, key: &str) -> StoreResult<Option<Allocation>> {
    query_as::<AllocationRow>(format!(
        "SELECT {COLUMNS} FROM allocations WHERE org_id = $1 AND idempotency_key = $2"
    ))
    .bind(org.to_string())
    .bind(key)
    .fetch_optional(&mut *tx)
    .await?
    .map(Allocation::try_from)
    .transpose()
}

/// The host's capacity, its row locked until the transaction ends.
async fn lock_capacity(tx: &mut Tx<'_>, host: HostId) -> StoreResult<Option<HostCapacity>> {
    let row: Option<(String,)> = query_as(format!(
        "SELECT capacity FROM host_capacity WHERE host_id = $1{}",
        tx.backend().for_update()
    ))
    .bind(host.to_string())
    .fetch_optional(&mut *tx)
    .await?;
    row.map(|(c,)| {
        serde_json::from_str(&c).map_err(|e| StoreError::Corrupt(format!("host capacity: {e}")))
    })
    .transpose()
}

const INVENTORY: &str = "SELECT source, capacity, updated_at FROM host_capacity WHERE host_id = $1";

fn inventory_from(
    host: HostId,
    (source, capacity, updated_at): (String, String, i64),
) -> StoreResult<HostInventory> {
    Ok(HostInventory {
        host_id: host,
        source: CapacitySource::parse(&source)
            .ok_or_else(|| StoreError::Corrupt(format!("capacity source `{source}`")))?,
        capacity: serde_json::from_str(&capacity)
            .map_err(|e| StoreError::Corrupt(format!("host capacity: {e}")))?,
        updated_at: Timestamp::from_millis(updated_at),
    })
}

async fn inventory(tx: &mut Tx<'_>, host: HostId) -> StoreResult<Option<HostInventory>> {
    let row: Option<(String, String, i64)> = query_as(INVENTORY)
        .bind(host.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    row.map(|r| inventory_from(host, r)).transpose()
}

async fn live_on(tx: &mut Tx<'_>, host: HostId) -> StoreResult<Vec<Reservation>> {
    let rows: Vec<(String,)> = query_as(format!(
        "SELECT reservation FROM allocations WHERE host_id = $1 AND state NOT IN {ENDED}"
    ))
    .bind(host.to_string())
    .fetch_all(&mut *tx)
    .await?;
    rows.into_iter()
        .map(|(r,)| {
            serde_json::from_str(&r)
                .map_err(|e| StoreError::Corrupt(format!("allocation reservation: {e}")))
        })
        .collect()
}

#[async_trait]
impl AllocationStore for SqlStore {
    async fn set_host_capacity(
        &self,
        host: HostId,
        source: CapacitySource,
        capacity: &HostCapacity,
        at: Timestamp,
        audit: Option<&AuditContext>,
    ) -> StoreResult<bool> {
        // A report never replaces what an operator declared.
        let guard = match source {
            CapacitySource::Declared => "",
            CapacitySource::Reported => " WHERE host_capacity.source <> 'declared'",
        };
        let mut tx = self.pool.begin_write().await?;
        let before = match audit {
            Some(_) => inventory(&mut tx, host).await?,
            None => None,
        };
        let done = query(format!(
            "INSERT INTO host_capacity (host_id, source, capacity, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (host_id) DO UPDATE SET \
             source = excluded.source, capacity = excluded.capacity, \
             updated_at = excluded.updated_at{guard}"
        ))
        .bind(host.to_string())
        .bind(source.as_str())
        .bind(encode("host capacity", capacity)?)
        .bind(at.millis())
        .execute(&mut tx)
        .await
        .map_err(|e| write_error(e, "host capacity"))?;
        if let (Some(ctx), true) = (audit, done == 1) {
            let after = HostInventory {
                host_id: host,
                source,
                capacity: capacity.clone(),
                updated_at: at,
            };
            insert_audit(
                &mut tx,
                ctx,
                at,
                Audited {
                    org_id: None,
                    action: "host.capacity.declare",
                    resource_type: "host",
                    resource_id: host.to_string(),
                    before: before.map(|b| value(&b)).transpose()?,
                    after: Some(value(&after)?),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(done == 1)
    }

    async fn host_inventory(&self, host: HostId) -> StoreResult<Option<HostInventory>> {
        let row: Option<(String, String, i64)> = query_as(INVENTORY)
            .bind(host.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| inventory_from(host, r)).transpose()
    }

    async fn create_allocation(
        &self,
        draft: &Allocation,
        shape: &Shape,
        candidates: &[HostId],
        audit: &AuditContext,
    ) -> StoreResult<Placed> {
        let mut tx = self.pool.begin_write().await?;
        if let Some(key) = &draft.idempotency_key {
            if let Some(existing) = by_key(&mut tx, draft.org_id, key).await? {
                return Ok(Placed::Existing(existing));
            }
        }
        let mut refusal = PlacementError::Insufficient {
            resource: "hosts with a known capacity",
            wanted: 1,
            free: 0,
        };
        for &host in candidates {
            let Some(capacity) = lock_capacity(&mut tx, host).await? else {
                continue;
            };
            let live = live_on(&mut tx, host).await?;
            let reservation = match place(&capacity, &live, shape) {
                Ok(r) => r,
                Err(e) => {
                    refusal = e;
                    continue;
                }
            };
            let allocation = Allocation {
                host_id: host,
                state: AllocationState::Requested,
                reservation,
                ..draft.clone()
            };
            query(format!(
                "INSERT INTO allocations ({COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
            ))
            .bind(allocation.id.to_string())
            .bind(allocation.org_id.to_string())
            .bind(host.to_string())
            .bind(&allocation.sku)
            .bind(
                i64::try_from(allocation.price_per_minute_minor)
                    .map_err(|_| StoreError::Corrupt("an allocation price beyond i64".into()))?,
            )
            .bind(allocation.currency.as_str())
            .bind(encode("allocation spec", &allocation.spec)?)
            .bind(allocation.state.as_str())
            .bind(encode("allocation reservation", &allocation.reservation)?)
            .bind(allocation.idempotency_key.clone())
            .bind(allocation.expires_at.map(Timestamp::millis))
            .bind(allocation.error.clone())
            .bind(allocation.active_since.map(Timestamp::millis))
            .bind(allocation.active_until.map(Timestamp::millis))
            .bind(allocation.created_at.millis())
            .bind(allocation.updated_at.millis())
            .bind(allocation.idle_since.map(Timestamp::millis))
            .bind(
                (!allocation.ports.is_empty())
                    .then(|| encode("allocation ports", &allocation.ports))
                    .transpose()?,
            )
            .execute(&mut tx)
            .await
            .map_err(|e| write_error(e, "allocation"))?;
            insert_event(
                &mut tx,
                &events::allocation("allocation.requested", &allocation),
            )
            .await?;
            insert_audit(
                &mut tx,
                audit,
                allocation.created_at,
                Audited {
                    org_id: Some(allocation.org_id),
                    action: "allocation.create",
                    resource_type: "allocation",
                    resource_id: allocation.id.to_string(),
                    before: None,
                    after: Some(value(&allocation)?),
                },
            )
            .await?;
            tx.commit().await?;
            return Ok(Placed::Created(allocation));
        }
        Ok(Placed::NoRoom(refusal))
    }

    async fn get_allocation(
        &self,
        org: OrgId,
        id: AllocationId,
    ) -> StoreResult<Option<Allocation>> {
        query_as::<AllocationRow>(format!(
            "SELECT {COLUMNS} FROM allocations WHERE org_id = $1 AND id = $2"
        ))
        .bind(org.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(Allocation::try_from)
        .transpose()
    }

    async fn find_allocation(&self, id: AllocationId) -> StoreResult<Option<Allocation>> {
        query_as::<AllocationRow>(format!("SELECT {COLUMNS} FROM allocations WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .map(Allocation::try_from)
            .transpose()
    }

    async fn list_allocations(&self, org: OrgId) -> StoreResult<Vec<Allocation>> {
        all(query_as::<AllocationRow>(format!(
            "SELECT {COLUMNS} FROM allocations WHERE org_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?)
    }

    async fn allocations_in_states(
        &self,
        states: &[AllocationState],
        limit: i64,
    ) -> StoreResult<Vec<Allocation>> {
        if states.is_empty() {
            return Ok(vec![]);
        }
        let list: Vec<String> = (0..states.len()).map(|i| format!("${}", i + 2)).collect();
        let mut q = query_as::<AllocationRow>(format!(
            "SELECT {COLUMNS} FROM allocations WHERE state IN ({}) \
             ORDER BY updated_at, id LIMIT $1",
            list.join(", ")
        ))
        .bind(limit);
        for s in states {
            q = q.bind(s.as_str());
        }
        all(q.fetch_all(&self.pool).await?)
    }

    async fn expired_allocations(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<Allocation>> {
        all(query_as::<AllocationRow>(format!(
            "SELECT {COLUMNS} FROM allocations WHERE expires_at IS NOT NULL \
             AND state NOT IN ('releasing', 'released', 'failed') AND expires_at <= $1 \
             ORDER BY expires_at, id LIMIT $2"
        ))
        .bind(now.millis())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn live_allocations(&self, host: HostId) -> StoreResult<Vec<Allocation>> {
        all(query_as::<AllocationRow>(format!(
            "SELECT {COLUMNS} FROM allocations WHERE host_id = $1 AND state NOT IN {ENDED} \
             ORDER BY created_at, id"
        ))
        .bind(host.to_string())
        .fetch_all(&self.pool)
        .await?)
    }

    async fn org_live_allocations(&self, org: OrgId) -> StoreResult<Vec<Allocation>> {
        all(query_as::<AllocationRow>(format!(
            "SELECT {COLUMNS} FROM allocations WHERE org_id = $1 AND state NOT IN {ENDED} \
             ORDER BY created_at, id"
        ))
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?)
    }

    async fn allocations_active_between(
        &self,
        org: OrgId,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<Allocation>> {
        all(query_as::<AllocationRow>(format!(
            "SELECT {COLUMNS} FROM allocations WHERE org_id = $1 AND active_since IS NOT NULL \
             AND active_since < $3 AND (active_until IS NULL OR active_until > $2) \
             ORDER BY active_since, id"
        ))
        .bind(org.to_string())
        .bind(from.millis())
        .bind(to.millis())
        .fetch_all(&self.pool)
        .await?)
    }

    async fn transition_allocation(
        &self,
        id: AllocationId,
        path: &[AllocationState],
        at: Timestamp,
        action: &str,
        error: Option<&str>,
        audit: &AuditContext,
    ) -> StoreResult<Option<Allocation>> {
        let Some((&from, steps)) = path.split_first() else {
            return Err(StoreError::Corrupt("an empty allocation transition".into()));
        };
        let mut state = from;
        for &to in steps {
            state.transition(to)?;
            state = to;
        }
        let mut tx = self.pool.begin_write().await?;
        let row = query_as::<AllocationRow>(format!(
            "SELECT {COLUMNS} FROM allocations WHERE id = $1 AND state = $2{}",
            tx.backend().for_update()
        ))
        .bind(id.to_string())
        .bind(from.as_str())
        .fetch_optional(&mut tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let before = Allocation::try_from(row)?;
        let mut after = before.clone();
        after.updated_at = at;
        if let Some(e) = error {
            after.error = Some(e.to_owned());
        }
        // Billing's clock: entering `active` starts it, leaving stops it.
        for &to in steps {
            if to.accrues() && after.active_since.is_none() {
                after.active_since = Some(at);
            } else if !to.accrues() && after.active_since.is_some() && after.active_until.is_none()
            {
                after.active_until = Some(at);
            }
        }
        query(
            "UPDATE allocations SET state = $2, updated_at = $3, error = $4, active_since = $5, \
             active_until = $6 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(state.as_str())
        .bind(at.millis())
        .bind(after.error.clone())
        .bind(after.active_since.map(Timestamp::millis))
        .bind(after.active_until.map(Timestamp::millis))
        .execute(&mut tx)
        .await
        .map_err(|e| write_error(e, "allocation"))?;
        for &to in steps {
            after.state = to;
            insert_event(
                &mut tx,
                &events::allocation(&format!("allocation.{}", to.as_str()), &after),
            )
            .await?;
            // A container's allocation: its start and its end are the
            // container's (an end only after a start).
            if let Some(container) = after.spec.container_id {
                let verb = match to {
                    AllocationState::Active => Some("started"),
                    AllocationState::Released | AllocationState::Failed
                        if after.active_since.is_some() =>
                    {
                        Some("stopped")
                    }
                    _ => None,
                };
                if let Some(verb) = verb {
                    insert_event(&mut tx, &events::container(container, verb, &after)).await?;
                }
            }
        }
        insert_audit(
            &mut tx,
            audit,
            at,
            Audited {
                org_id: Some(before.org_id),
                action,
                resource_type: "allocation",
                resource_id: id.to_string(),
                before: Some(value(&before)?),
                after: Some(value(&after)?),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some(after))
    }

    async fn set_allocation_idle_since(
        &self,
        id: AllocationId,
        since: Option<Timestamp>,
    ) -> StoreResult<bool> {
        let done =
            query("UPDATE allocations SET idle_since = $2 WHERE id = $1 AND state = 'active'")
                .bind(id.to_string())
                .bind(since.map(Timestamp::millis))
                .execute(&self.pool)
                .await
                .map_err(|e| write_error(e, "allocation"))?;
        Ok(done == 1)
    }

    async fn set_allocation_ports(
        &self,
        id: AllocationId,
        ports: &std::collections::BTreeMap<u16, u16>,
    ) -> StoreResult<bool> {
        let done = query(format!(
            "UPDATE allocations SET ports = $2 WHERE id = $1 AND state NOT IN {ENDED}"
        ))
        .bind(id.to_string())
        .bind(encode("allocation ports", ports)?)
        .execute(&self.pool)
        .await
        .map_err(|e| write_error(e, "allocation"))?;
        Ok(done == 1)
    }

    async fn set_allocation_budget(
        &self,
        org: OrgId,
        budget: Option<&AllocationBudget>,
        at: Timestamp,
        audit: &AuditContext,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        let before = query_as::<BudgetRow>(format!(
            "SELECT {BUDGET_COLUMNS} FROM allocation_budgets WHERE org_id = $1{}",
            tx.backend().for_update()
        ))
        .bind(org.to_string())
        .fetch_optional(&mut tx)
        .await?
        .map(AllocationBudget::try_from)
        .transpose()?;
        let action = match budget {
            Some(b) => {
                let limit = i64::try_from(b.monthly_limit_minor)
                    .map_err(|_| StoreError::Corrupt("budget beyond i64".into()))?;
                query(
                    "INSERT INTO allocation_budgets (org_id, monthly_limit_minor, currency, \
                     updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (org_id) DO UPDATE SET \
                     monthly_limit_minor = excluded.monthly_limit_minor, \
                     currency = excluded.currency, updated_at = excluded.updated_at",
                )
                .bind(org.to_string())
                .bind(limit)
                .bind(b.currency.as_str())
                .bind(at.millis())
                .execute(&mut tx)
                .await
                .map_err(|e| write_error(e, "allocation budget"))?;
                "allocation.budget.set"
            }
            None => {
                if before.is_none() {
                    return Ok(());
                }
                query("DELETE FROM allocation_budgets WHERE org_id = $1")
                    .bind(org.to_string())
                    .execute(&mut tx)
                    .await
                    .map_err(|e| write_error(e, "allocation budget"))?;
                "allocation.budget.remove"
            }
        };
        insert_audit(
            &mut tx,
            audit,
            at,
            Audited {
                org_id: Some(org),
                action,
                resource_type: "allocation_budget",
                resource_id: org.to_string(),
                before: before.as_ref().map(value).transpose()?,
                after: budget.map(value).transpose()?,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn allocation_budget(&self, org: OrgId) -> StoreResult<Option<AllocationBudget>> {
        query_as::<BudgetRow>(format!(
            "SELECT {BUDGET_COLUMNS} FROM allocation_budgets WHERE org_id = $1"
        ))
        .bind(org.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(AllocationBudget::try_from)
        .transpose()
    }

    async fn allocation_budgets(&self) -> StoreResult<Vec<AllocationBudget>> {
        query_as::<BudgetRow>(format!(
            "SELECT {BUDGET_COLUMNS} FROM allocation_budgets ORDER BY org_id"
        ))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(AllocationBudget::try_from)
        .collect()
    }
}

const BUDGET_COLUMNS: &str = "org_id, monthly_limit_minor, currency, updated_at";

#[derive(sqlx::FromRow)]
struct BudgetRow {
    org_id: String,
    monthly_limit_minor: i64,
    currency: String,
    updated_at: i64,
}

impl TryFrom<BudgetRow> for AllocationBudget {
    type Error = StoreError;
    fn try_from(r: BudgetRow) -> StoreResult<Self> {
        Ok(AllocationBudget {
            org_id: parse_id("org_id", &r.org_id)?,
            monthly_limit_minor: u64::try_from(r.monthly_limit_minor)
                .map_err(|_| StoreError::Corrupt("a negative allocation budget".into()))?,
            currency: r
                .currency
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("allocation budget currency: {e}")))?,
            updated_at: Timestamp::from_millis(r.updated_at),
        })
    }
}
