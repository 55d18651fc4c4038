// Included into `sqlite.rs` and `postgres.rs` (see `repo_common.rs`).

use hood_domain::{ChannelId, DeliveryId};

mod health_sql {
    use super::{Backend, BACKEND};

    /// Locks the rows read so a concurrent writer waits (SQLite's
    /// `BEGIN IMMEDIATE` already serialises writers).
    pub(super) const FOR_UPDATE: &str = match BACKEND {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };

    /// Lets concurrent senders pass over each other's deliveries.
    pub(super) const SKIP_LOCKED: &str = match BACKEND {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };

    pub(super) const INCIDENT_COLUMNS: &str = "id, org_id, dedupe_key, category, severity, state, \
         node_id, chain, title, detail, root_id, escalation_level, escalated_at, clear_cycles, \
         opened_at, acknowledged_at, acknowledged_by, resolved_at, updated_at";

    pub(super) const CHANNEL_COLUMNS: &str =
        "id, org_id, name, kind, sealed_config, redacted_config, enabled, created_at, updated_at";

    pub(super) const DELIVERY_COLUMNS: &str = "id, channel_id, incident_id, event, escalation_level, \
         state, attempts, next_attempt_at, last_error, created_at, delivered_at";
}

mod health_rows {
    use super::{col, opt_ts, DbRow};
    use crate::codec;
    use crate::health::{Delivery, DeliveryState, Incident, NodeHealth, NotificationChannel};
    use crate::{StoreError, StoreResult};
    use hood_domain::health::{IncidentCategory, Severity};
    use hood_domain::Timestamp;

    pub(super) fn incident(row: &DbRow) -> StoreResult<Incident> {
        let category: String = col(row, "category")?;
        let severity: String = col(row, "severity")?;
        let node: Option<String> = col(row, "node_id")?;
        let root: Option<String> = col(row, "root_id")?;
        Ok(Incident {
            id: codec::parse_id("incidents.id", &col::<String>(row, "id")?)?,
            org_id: codec::parse_id("incidents.org_id", &col::<String>(row, "org_id")?)?,
            dedupe_key: col(row, "dedupe_key")?,
            category: IncidentCategory::parse(&category)
                .ok_or_else(|| StoreError::Corrupt(format!("incidents.category `{category}`")))?,
            severity: Severity::parse(&severity)
                .ok_or_else(|| StoreError::Corrupt(format!("incidents.severity `{severity}`")))?,
            state: codec::parse_state("incidents.state", &col::<String>(row, "state")?)?,
            node_id: node.map(|n| codec::parse_id("incidents.node_id", &n)).transpose()?,
            chain: col(row, "chain")?,
            title: col(row, "title")?,
            detail: col(row, "detail")?,
            root_id: root.map(|r| codec::parse_id("incidents.root_id", &r)).transpose()?,
            escalation_level: col(row, "escalation_level")?,
            escalated_at: opt_ts(col(row, "escalated_at")?),
            clear_cycles: col(row, "clear_cycles")?,
            opened_at: Timestamp(col(row, "opened_at")?),
            acknowledged_at: opt_ts(col(row, "acknowledged_at")?),
            acknowledged_by: col(row, "acknowledged_by")?,
            resolved_at: opt_ts(col(row, "resolved_at")?),
            updated_at: Timestamp(col(row, "updated_at")?),
        })
    }

    /// The `node_health` columns of the snapshot join (prefixed `h_`).
    pub(super) fn node_health(row: &DbRow) -> StoreResult<Option<NodeHealth>> {
        let misses: Option<i64> = col(row, "h_misses")?;
        let Some(misses) = misses else {
            return Ok(None);
        };
        let firing: String = col(row, "h_policy_firing")?;
        Ok(Some(NodeHealth {
            consecutive_misses: u32::try_from(misses.max(0)).unwrap_or(u32::MAX),
            down_since: opt_ts(col(row, "h_down_since")?),
            down_version: col(row, "h_down_version")?,
            last_migration_at: opt_ts(col(row, "h_last_migration_at")?),
            last_head: col(row, "h_last_head")?,
            head_changed_at: opt_ts(col(row, "h_head_changed_at")?),
            policy_firing: serde_json::from_str(&firing)
                .map_err(|e| StoreError::Corrupt(format!("node_health.policy_firing: {e}")))?,
        }))
    }

    pub(super) fn channel(row: &DbRow) -> StoreResult<NotificationChannel> {
        let redacted: String = col(row, "redacted_config")?;
        Ok(NotificationChannel {
            id: codec::parse_id("notification_channels.id", &col::<String>(row, "id")?)?,
            org_id: codec::parse_id("notification_channels.org_id", &col::<String>(row, "org_id")?)?,
            name: col(row, "name")?,
            kind: col(row, "kind")?,
            sealed_config: col(row, "sealed_config")?,
            redacted_config: serde_json::from_str(&redacted)
                .map_err(|e| StoreError::Corrupt(format!("notification_channels.redacted_config: {e}")))?,
            enabled: col(row, "enabled")?,
            created_at: Timestamp(col(row, "created_at")?),
            updated_at: Timestamp(col(row, "updated_at")?),
        })
    }

    pub(super) fn delivery(row: &DbRow) -> StoreResult<Delivery> {
        let state: String = col(row, "state")?;
        Ok(Delivery {
            id: codec::parse_id("notification_deliveries.id", &col::<String>(row, "id")?)?,
            channel_id: codec::parse_id("notification_deliveries.channel_id", &col::<String>(row, "channel_id")?)?,
            incident_id: codec::parse_id("notification_deliveries.incident_id", &col::<String>(row, "incident_id")?)?,
            event: col(row, "event")?,
            escalation_level: col(row, "escalation_level")?,
            state: DeliveryState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("notification_deliveries.state `{state}`")))?,
            attempts: col(row, "attempts")?,
            next_attempt_at: Timestamp(col(row, "next_attempt_at")?),
            last_error: col(row, "last_error")?,
            created_at: Timestamp(col(row, "created_at")?),
            delivered_at: opt_ts(col(row, "delivered_at")?),
        })
    }
}

fn incident_payload(i: &crate::health::Incident) -> serde_json::Value {
    serde_json::json!({
        "incident_id": i.id.to_string(),
        "org_id": i.org_id.to_string(),
        "category": i.category.as_str(),
        "severity": i.severity.as_str(),
        "state": i.state.as_str(),
        "node_id": i.node_id.map(|n| n.to_string()),
        "chain": i.chain,
        "escalation_level": i.escalation_level,
    })
}

async fn insert_incident_event(conn: &mut DbConn, subject: &str, i: &crate::health::Incident) -> StoreResult<()> {
    insert_event(
        conn,
        &DomainEvent {
            subject: subject.into(),
            aggregate_type: "incident".into(),
            aggregate_id: i.id.to_string(),
            payload: incident_payload(i),
        },
    )
    .await?;
    Ok(())
}

/// Checks, on the caller's transaction, that `lease` is still held and
/// unexpired; on PostgreSQL the row lock also makes a concurrent takeover
/// wait until this transaction ends.
async fn check_fence(conn: &mut DbConn, lease: &crate::health::Lease, now: Timestamp) -> StoreResult<()> {
    let held = sqlx::query(
        "UPDATE leader_leases SET expires_at = expires_at \
         WHERE name = $1 AND holder = $2 AND generation = $3 AND expires_at > $4",
    )
    .bind(&lease.name)
    .bind(&lease.holder)
    .bind(lease.generation)
    .bind(now.millis())
    .execute(&mut *conn)
    .await?;
    if held.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::Fenced(lease.name.clone()))
    }
}

async fn upsert_node_health(
    conn: &mut DbConn,
    node: hood_domain::NodeId,
    h: &crate::health::NodeHealth,
    now: Timestamp,
) -> StoreResult<()> {
    let firing = serde_json::to_string(&h.policy_firing)
        .map_err(|e| StoreError::Corrupt(format!("policy_firing: {e}")))?;
    sqlx::query(
        "INSERT INTO node_health (node_id, consecutive_misses, down_since, down_version, \
         last_migration_at, last_head, head_changed_at, policy_firing, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (node_id) DO UPDATE SET consecutive_misses = excluded.consecutive_misses, \
         down_since = excluded.down_since, down_version = excluded.down_version, \
         last_migration_at = excluded.last_migration_at, last_head = excluded.last_head, \
         head_changed_at = excluded.head_changed_at, policy_firing = excluded.policy_firing, \
         updated_at = excluded.updated_at",
    )
    .bind(node.to_string())
    .bind(i64::from(h.consecutive_misses))
    .bind(h.down_since.map(Timestamp::millis))
    .bind(h.down_version)
    .bind(h.last_migration_at.map(Timestamp::millis))
    .bind(h.last_head)
    .bind(h.head_changed_at.map(Timestamp::millis))
    .bind(firing)
    .bind(now.millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn load_incident_on(conn: &mut DbConn, id: hood_domain::IncidentId, lock: bool) -> StoreResult<Option<crate::health::Incident>> {
    let sql = format!(
        "SELECT {} FROM incidents WHERE id = $1{}",
        health_sql::INCIDENT_COLUMNS,
        if lock { health_sql::FOR_UPDATE } else { "" }
    );
    let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&mut *conn).await?;
    row.as_ref().map(health_rows::incident).transpose()
}

/// Applies an incident change if it is still in `expected`; returns whether
/// it did. Every state change goes through the incident machine.
async fn update_incident_on(
    conn: &mut DbConn,
    id: hood_domain::IncidentId,
    expected: hood_domain::lifecycle::IncidentState,
    change: &crate::health::IncidentChange,
    now: Timestamp,
) -> StoreResult<bool> {
    use hood_domain::lifecycle::IncidentState;
    use hood_domain::machine::StateMachine;
    let Some(mut inc) = load_incident_on(conn, id, true).await? else {
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
    let escalated = change.escalation_level.is_some_and(|l| l > inc.escalation_level);
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
    sqlx::query(
        "UPDATE incidents SET state = $1, resolved_at = $2, escalation_level = $3, escalated_at = $4, \
         clear_cycles = $5, root_id = $6, detail = $7, updated_at = $8 WHERE id = $9 AND state = $10",
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
    .execute(&mut *conn)
    .await?;
    if inc.state != from {
        let subject = match inc.state {
            IncidentState::Resolved => "incident.resolved",
            IncidentState::Muted => "incident.muted",
            IncidentState::Open | IncidentState::Acknowledged if from == IncidentState::Muted => "incident.unmuted",
            IncidentState::Acknowledged => "incident.acknowledged",
            IncidentState::Open => "incident.reopened",
        };
        insert_incident_event(conn, subject, &inc).await?;
    }
    if escalated && inc.state == IncidentState::Open {
        insert_incident_event(conn, "incident.escalated", &inc).await?;
    }
    Ok(true)
}

async fn insert_incident_on(conn: &mut DbConn, i: &crate::health::Incident) -> StoreResult<bool> {
    // `DO NOTHING` with no target covers the partial unique index on
    // unresolved keys in both dialects: a second open is a no-op.
    let inserted = sqlx::query(&format!(
        "INSERT INTO incidents ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $18, $19) ON CONFLICT DO NOTHING",
        health_sql::INCIDENT_COLUMNS
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
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() != 1 {
        return Ok(false);
    }
    insert_incident_event(conn, "incident.opened", i).await?;
    Ok(true)
}

#[async_trait]
impl crate::health::HealthStore for StoreImpl {
    async fn acquire_leader_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now: Timestamp,
    ) -> StoreResult<Option<crate::health::Lease>> {
        use crate::health::Lease;
        let expires = Timestamp(now.millis() + ttl_ms);
        let mut tx = begin_write(&self.pool).await?;
        let row = sqlx::query(&format!(
            "SELECT holder, generation, expires_at FROM leader_leases WHERE name = $1{}",
            health_sql::FOR_UPDATE
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let generation = match row {
            None => {
                let inserted = sqlx::query(
                    "INSERT INTO leader_leases (name, holder, generation, acquired_at, expires_at) \
                     VALUES ($1, $2, 1, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(name)
                .bind(holder)
                .bind(now.millis())
                .bind(expires.millis())
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() != 1 {
                    return Ok(None);
                }
                1
            }
            Some(row) => {
                let current: String = col(&row, "holder")?;
                let generation: i64 = col(&row, "generation")?;
                let expires_at: i64 = col(&row, "expires_at")?;
                let live = expires_at > now.millis();
                if current == holder && live {
                    sqlx::query("UPDATE leader_leases SET expires_at = $1 WHERE name = $2 AND generation = $3")
                        .bind(expires.millis())
                        .bind(name)
                        .bind(generation)
                        .execute(&mut *tx)
                        .await?;
                    generation
                } else if live {
                    return Ok(None);
                } else {
                    // Expired: whoever takes it (even its old holder, whose
                    // writes since expiry were fenced) starts a new generation.
                    let taken = sqlx::query(
                        "UPDATE leader_leases SET holder = $1, generation = $2, acquired_at = $3, \
                         expires_at = $4 WHERE name = $5 AND generation = $6",
                    )
                    .bind(holder)
                    .bind(generation + 1)
                    .bind(now.millis())
                    .bind(expires.millis())
                    .bind(name)
                    .bind(generation)
                    .execute(&mut *tx)
                    .await?;
                    if taken.rows_affected() != 1 {
                        return Ok(None);
                    }
                    generation + 1
                }
            }
        };
        tx.commit().await?;
        Ok(Some(Lease {
            name: name.into(),
            holder: holder.into(),
            generation,
            expires_at: expires,
        }))
    }

    async fn release_leader_lease(&self, lease: &crate::health::Lease) -> StoreResult<()> {
        sqlx::query(
            "UPDATE leader_leases SET expires_at = 0 WHERE name = $1 AND holder = $2 AND generation = $3",
        )
        .bind(&lease.name)
        .bind(&lease.holder)
        .bind(lease.generation)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn health_snapshot(&self) -> StoreResult<Vec<crate::health::HealthSnapshot>> {
        use crate::health::{HealthSnapshot, WorkloadReport};
        use std::collections::HashMap;
        let node_cols: Vec<String> = node_rows::NODE_COLUMNS
            .split(", ")
            .map(|c| format!("n.{}", c.trim()))
            .collect();
        let sql = format!(
            "SELECT {}, h.consecutive_misses AS h_misses, h.down_since AS h_down_since, \
             h.down_version AS h_down_version, h.last_migration_at AS h_last_migration_at, \
             h.last_head AS h_last_head, h.head_changed_at AS h_head_changed_at, \
             h.policy_firing AS h_policy_firing, ho.state AS host_state, \
             ho.last_seen_at AS host_last_seen \
             FROM nodes n \
             LEFT JOIN node_health h ON h.node_id = n.id \
             LEFT JOIN hosts ho ON ho.id = n.host_id \
             WHERE n.state NOT IN ('terminated', 'failed') ORDER BY n.id",
            node_cols.join(", ")
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        // A node's workload is one runtime workload per process, reported
        // as `{node_id}-{process}`: the node runs when all of them do.
        let reports = sqlx::query(
            // Each report once (a join with nodes would repeat it for every
            // node on its host).
            "SELECT w.host_id, w.workload_id, w.state, w.updated_at, w.observation FROM host_workloads w \
             WHERE w.host_id IN (SELECT n.host_id FROM nodes n \
             WHERE n.host_id IS NOT NULL AND n.state NOT IN ('terminated', 'failed'))",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut by_node: HashMap<(String, String), WorkloadReport> = HashMap::new();
        for r in &reports {
            let host: String = col(r, "host_id")?;
            let workload: String = col(r, "workload_id")?;
            let node = match workload.get(..36) {
                Some(prefix) if workload.len() == 36 || workload.as_bytes().get(36) == Some(&b'-') => prefix.to_owned(),
                _ => continue,
            };
            let state: String = col(r, "state")?;
            let updated_at = Timestamp(col(r, "updated_at")?);
            let obs: String = col(r, "observation")?;
            // A report the agent garbled is no observation, not a reason to
            // stop judging every node.
            let observation: serde_json::Value = serde_json::from_str(&obs).unwrap_or(serde_json::Value::Null);
            let alive = |s: &str| matches!(s, "running" | "starting" | "restarting");
            by_node
                .entry((host, node))
                .and_modify(|agg| {
                    if !alive(&state) {
                        agg.state.clone_from(&state);
                    }
                    agg.updated_at = Timestamp(agg.updated_at.millis().min(updated_at.millis()));
                    if agg.observation.is_null() {
                        agg.observation = observation.clone();
                    }
                })
                .or_insert(WorkloadReport { state, updated_at, observation });
        }
        rows.iter()
            .map(|row| {
                let host_state: Option<String> = col(row, "host_state")?;
                let node = node_rows::node(row)?;
                let workload = node
                    .host_id
                    .and_then(|h| by_node.remove(&(h.to_string(), node.id.to_string())));
                Ok(HealthSnapshot {
                    health: health_rows::node_health(row)?,
                    host_state: host_state.map(|s| codec::parse_state("hosts.state", &s)).transpose()?,
                    host_last_seen: opt_ts(col(row, "host_last_seen")?),
                    workload,
                    node,
                })
            })
            .collect()
    }

    async fn chain_heads(&self) -> StoreResult<std::collections::BTreeMap<String, hood_domain::health::ChainHeadTrack>> {
        let rows = sqlx::query("SELECT chain, best_head, advanced_at FROM chain_heads")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    col::<String>(r, "chain")?,
                    hood_domain::health::ChainHeadTrack {
                        best_head: col(r, "best_head")?,
                        advanced_at_ms: col(r, "advanced_at")?,
                    },
                ))
            })
            .collect()
    }

    async fn unresolved_incidents(&self) -> StoreResult<Vec<crate::health::Incident>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM incidents WHERE state <> 'resolved' ORDER BY opened_at, id",
            health_sql::INCIDENT_COLUMNS
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(health_rows::incident).collect()
    }

    async fn apply_health(
        &self,
        lease: &crate::health::Lease,
        writes: &[crate::health::HealthWrite],
        now: Timestamp,
    ) -> StoreResult<crate::health::ApplyReport> {
        use crate::health::{ApplyReport, HealthWrite};
        let mut report = ApplyReport::default();
        let mut tx = begin_write(&self.pool).await?;
        check_fence(&mut tx, lease, now).await?;
        for write in writes {
            match write {
                HealthWrite::Node {
                    node_id,
                    expected_version,
                    change,
                    health,
                } => {
                    if let Some(change) = change {
                        match update_node_on(&mut tx, *node_id, *expected_version, change, now).await {
                            Ok(_) => report.nodes_changed += 1,
                            Err(StoreError::Conflict(_) | StoreError::NotFound(_) | StoreError::InvalidTransition(_)) => {
                                report.stale_nodes.push(*node_id);
                                continue;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    upsert_node_health(&mut tx, *node_id, health, now).await?;
                }
                HealthWrite::ChainHead { chain, track } => {
                    sqlx::query(
                        "INSERT INTO chain_heads (chain, best_head, advanced_at, updated_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (chain) DO UPDATE SET best_head = excluded.best_head, \
                         advanced_at = excluded.advanced_at, updated_at = excluded.updated_at",
                    )
                    .bind(chain)
                    .bind(track.best_head)
                    .bind(track.advanced_at_ms)
                    .bind(now.millis())
                    .execute(&mut *tx)
                    .await?;
                }
                HealthWrite::OpenIncident(incident) => {
                    if insert_incident_on(&mut tx, incident).await? {
                        report.incidents_opened += 1;
                    }
                }
                HealthWrite::UpdateIncident { id, expected_state, change } => {
                    if update_incident_on(&mut tx, *id, *expected_state, change, now).await? {
                        report.incidents_updated += 1;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(report)
    }

    async fn list_incidents(
        &self,
        org: OrgId,
        filter: &crate::health::IncidentFilter,
    ) -> StoreResult<Vec<crate::health::Incident>> {
        let limit = if filter.limit <= 0 { 100 } else { filter.limit.min(1000) };
        let rows = sqlx::query(&format!(
            "SELECT {} FROM incidents WHERE org_id = $1 AND ($2 IS NULL OR state = $2) \
             AND ($3 IS NULL OR node_id = $3) AND ($4 = 0 OR state <> 'resolved') \
             ORDER BY opened_at DESC, id DESC LIMIT $5",
            health_sql::INCIDENT_COLUMNS
        ))
        .bind(org.to_string())
        .bind(filter.state.map(|s| s.as_str()))
        .bind(filter.node_id.map(|n| n.to_string()))
        .bind(i64::from(filter.active))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(health_rows::incident).collect()
    }

    async fn get_incident(
        &self,
        org: Option<OrgId>,
        id: hood_domain::IncidentId,
    ) -> StoreResult<Option<crate::health::Incident>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM incidents WHERE id = $1 AND ($2 IS NULL OR org_id = $2)",
            health_sql::INCIDENT_COLUMNS
        ))
        .bind(id.to_string())
        .bind(org.map(|o| o.to_string()))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(health_rows::incident).transpose()
    }

    async fn acknowledge_incident(
        &self,
        org: OrgId,
        id: hood_domain::IncidentId,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<crate::health::Incident> {
        use hood_domain::lifecycle::IncidentState;
        use hood_domain::machine::StateMachine;
        let mut tx = begin_write(&self.pool).await?;
        let Some(mut inc) = load_incident_on(&mut tx, id, true).await? else {
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
        sqlx::query(
            "UPDATE incidents SET state = $1, acknowledged_at = $2, acknowledged_by = $3, updated_at = $4 \
             WHERE id = $5",
        )
        .bind(inc.state.as_str())
        .bind(now.millis())
        .bind(by)
        .bind(now.millis())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        insert_incident_event(&mut tx, "incident.acknowledged", &inc).await?;
        tx.commit().await?;
        Ok(inc)
    }

    async fn create_channel(&self, ch: &crate::health::NotificationChannel) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO notification_channels ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            health_sql::CHANNEL_COLUMNS
        ))
        .bind(ch.id.to_string())
        .bind(ch.org_id.to_string())
        .bind(&ch.name)
        .bind(&ch.kind)
        .bind(&ch.sealed_config)
        .bind(ch.redacted_config.to_string())
        .bind(ch.enabled)
        .bind(ch.created_at.millis())
        .bind(ch.updated_at.millis())
        .execute(&self.pool)
        .await
        .map_err(|e| match codec::write_error(e, "org") {
            // The (org_id, name) key, as PostgreSQL and SQLite name it.
            StoreError::Conflict(f)
                if f == "notification_channels_org_name_key"
                    || f == "notification_channels.org_id, notification_channels.name" =>
            {
                StoreError::Conflict("name".into())
            }
            other => other,
        })?;
        Ok(())
    }

    async fn list_channels(&self, org: OrgId) -> StoreResult<Vec<crate::health::NotificationChannel>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM notification_channels WHERE org_id = $1 AND enabled = $2 ORDER BY created_at, id",
            health_sql::CHANNEL_COLUMNS
        ))
        .bind(org.to_string())
        .bind(true)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(health_rows::channel).collect()
    }

    async fn get_channel(
        &self,
        org: OrgId,
        id: ChannelId,
    ) -> StoreResult<Option<crate::health::NotificationChannel>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM notification_channels WHERE id = $1 AND org_id = $2 AND enabled = $3",
            health_sql::CHANNEL_COLUMNS
        ))
        .bind(id.to_string())
        .bind(org.to_string())
        .bind(true)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(health_rows::channel).transpose()
    }

    async fn delete_channel(&self, org: OrgId, id: ChannelId, now: Timestamp) -> StoreResult<bool> {
        let mut tx = begin_write(&self.pool).await?;
        // Kept disabled (deliveries reference it) with its secrets erased and
        // its name freed for reuse.
        let done = sqlx::query(
            "UPDATE notification_channels SET enabled = $1, sealed_config = $2, name = $3, updated_at = $4 \
             WHERE id = $5 AND org_id = $6 AND enabled = $7",
        )
        .bind(false)
        .bind(Vec::<u8>::new())
        .bind(format!("deleted-{id}"))
        .bind(now.millis())
        .bind(id.to_string())
        .bind(org.to_string())
        .bind(true)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            // Not this org's channel (or already deleted): touch nothing.
            return Ok(false);
        }
        sqlx::query(
            "UPDATE notification_deliveries SET state = 'failed', last_error = 'channel deleted', claimed_until = NULL \
             WHERE channel_id = $1 AND state = 'pending'",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn enqueue_deliveries(
        &self,
        incident: hood_domain::IncidentId,
        event: &str,
        level: i64,
        now: Timestamp,
    ) -> StoreResult<usize> {
        let mut tx = begin_write(&self.pool).await?;
        let channels = sqlx::query(
            "SELECT c.id FROM notification_channels c JOIN incidents i ON i.org_id = c.org_id \
             WHERE i.id = $1 AND c.enabled = $2 ORDER BY c.id",
        )
        .bind(incident.to_string())
        .bind(true)
        .fetch_all(&mut *tx)
        .await?;
        let mut created = 0;
        for row in &channels {
            let channel: String = col(row, "id")?;
            let id = DeliveryId::from_uuid(uuid::Uuid::now_v7());
            let done = sqlx::query(
                "INSERT INTO notification_deliveries (id, channel_id, incident_id, event, escalation_level, \
                 state, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id.to_string())
            .bind(channel)
            .bind(incident.to_string())
            .bind(event)
            .bind(level)
            .bind(now.millis())
            .execute(&mut *tx)
            .await?;
            created += usize::try_from(done.rows_affected()).unwrap_or(0);
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn claim_deliveries(
        &self,
        limit: i64,
        lease_ms: i64,
        now: Timestamp,
    ) -> StoreResult<Vec<crate::health::DueDelivery>> {
        use crate::health::DueDelivery;
        let mut tx = begin_write(&self.pool).await?;
        let rows = sqlx::query(&format!(
            "SELECT {} FROM notification_deliveries WHERE state = 'pending' AND next_attempt_at <= $1 \
             AND (claimed_until IS NULL OR claimed_until <= $1) ORDER BY next_attempt_at LIMIT $2{}",
            health_sql::DELIVERY_COLUMNS,
            health_sql::SKIP_LOCKED
        ))
        .bind(now.millis())
        .bind(limit.max(1))
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let delivery = health_rows::delivery(row)?;
            sqlx::query("UPDATE notification_deliveries SET claimed_until = $1 WHERE id = $2")
                .bind(now.millis() + lease_ms)
                .bind(delivery.id.to_string())
                .execute(&mut *tx)
                .await?;
            let channel = sqlx::query(&format!(
                "SELECT {} FROM notification_channels WHERE id = $1",
                health_sql::CHANNEL_COLUMNS
            ))
            .bind(delivery.channel_id.to_string())
            .fetch_one(&mut *tx)
            .await?;
            let Some(incident) = load_incident_on(&mut tx, delivery.incident_id, false).await? else {
                return Err(StoreError::Corrupt(format!("delivery {} has no incident", delivery.id)));
            };
            out.push(DueDelivery {
                delivery,
                channel: health_rows::channel(&channel)?,
                incident,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn finish_delivery(
        &self,
        id: DeliveryId,
        outcome: &crate::health::AttemptOutcome,
        now: Timestamp,
    ) -> StoreResult<()> {
        use crate::health::AttemptOutcome;
        let mut tx = begin_write(&self.pool).await?;
        let row = sqlx::query(&format!(
            "SELECT attempts, state FROM notification_deliveries WHERE id = $1{}",
            health_sql::FOR_UPDATE
        ))
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound("delivery"));
        };
        // Already settled (its channel was deleted, or a sender whose claim
        // had lapsed reports after another delivered it): a late outcome
        // must not bring it back to pending or count it again.
        if col::<String>(&row, "state")? != "pending" {
            return Ok(());
        }
        let attempt: i64 = col::<i64>(&row, "attempts")? + 1;
        let (state, next, error, delivered_at) = match outcome {
            AttemptOutcome::Delivered => ("delivered", now, None, Some(now.millis())),
            AttemptOutcome::Retry { next_attempt_at, error } => ("pending", *next_attempt_at, Some(error.as_str()), None),
            AttemptOutcome::Failed { error } => ("failed", now, Some(error.as_str()), None),
        };
        sqlx::query(
            "UPDATE notification_deliveries SET state = $1, attempts = $2, next_attempt_at = $3, \
             last_error = $4, delivered_at = $5, claimed_until = NULL WHERE id = $6",
        )
        .bind(state)
        .bind(attempt)
        .bind(next.millis())
        .bind(error)
        .bind(delivered_at)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO notification_attempts (delivery_id, attempt, at, ok, error) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.to_string())
        .bind(attempt)
        .bind(now.millis())
        .bind(matches!(outcome, AttemptOutcome::Delivered))
        .bind(error)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_deliveries(
        &self,
        org: OrgId,
        incident: Option<hood_domain::IncidentId>,
        limit: i64,
    ) -> StoreResult<Vec<crate::health::Delivery>> {
        let cols: Vec<String> = health_sql::DELIVERY_COLUMNS
            .split(", ")
            .map(|c| format!("d.{}", c.trim()))
            .collect();
        let rows = sqlx::query(&format!(
            "SELECT {} FROM notification_deliveries d JOIN incidents i ON i.id = d.incident_id \
             WHERE i.org_id = $1 AND ($2 IS NULL OR d.incident_id = $2) \
             ORDER BY d.created_at DESC, d.id DESC LIMIT $3",
            cols.join(", ")
        ))
        .bind(org.to_string())
        .bind(incident.map(|i| i.to_string()))
        .bind(if limit <= 0 { 100 } else { limit.min(1000) })
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(health_rows::delivery).collect()
    }

    async fn delivery_attempts(&self, id: DeliveryId) -> StoreResult<Vec<crate::health::DeliveryAttempt>> {
        let rows = sqlx::query(
            "SELECT attempt, at, ok, error FROM notification_attempts WHERE delivery_id = $1 ORDER BY attempt",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::health::DeliveryAttempt {
                    attempt: col(r, "attempt")?,
                    at: Timestamp(col(r, "at")?),
                    ok: col(r, "ok")?,
                    error: col(r, "error")?,
                })
            })
            .collect()
    }

    async fn uptime_cursors(&self) -> StoreResult<Vec<crate::health::UptimeCursor>> {
        let rows = sqlx::query(
            "SELECT n.id, n.created_at, (SELECT max(u.hour_start) FROM node_uptime_hourly u WHERE u.node_id = n.id) AS last_hour \
             FROM nodes n WHERE n.state NOT IN ('terminated', 'failed') ORDER BY n.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::health::UptimeCursor {
                    node_id: codec::parse_id("nodes.id", &col::<String>(r, "id")?)?,
                    created_at: Timestamp(col(r, "created_at")?),
                    last_hour: col(r, "last_hour")?,
                })
            })
            .collect()
    }

    async fn node_state_log(
        &self,
        node: hood_domain::NodeId,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<crate::health::StateLog> {
        use hood_domain::lifecycle::NodeState;
        let before = sqlx::query(
            "SELECT to_state FROM node_events WHERE node_id = $1 AND to_state IS NOT NULL AND at <= $2 \
             ORDER BY at DESC, seq DESC LIMIT 1",
        )
        .bind(node.to_string())
        .bind(from.millis())
        .fetch_optional(&self.pool)
        .await?;
        let state_at_start = match before {
            Some(r) => Some(codec::parse_state::<NodeState>("node_events.to_state", &col::<String>(&r, "to_state")?)?),
            None => None,
        };
        let rows = sqlx::query(
            "SELECT at, to_state FROM node_events WHERE node_id = $1 AND to_state IS NOT NULL \
             AND at > $2 AND at < $3 ORDER BY at, seq",
        )
        .bind(node.to_string())
        .bind(from.millis())
        .bind(to.millis())
        .fetch_all(&self.pool)
        .await?;
        let changes = rows
            .iter()
            .map(|r| {
                Ok((
                    col::<i64>(r, "at")?,
                    codec::parse_state::<NodeState>("node_events.to_state", &col::<String>(r, "to_state")?)?,
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(crate::health::StateLog { state_at_start, changes })
    }

    async fn put_uptime_buckets(
        &self,
        lease: &crate::health::Lease,
        node: hood_domain::NodeId,
        buckets: &[hood_domain::health::UptimeBucket],
    ) -> StoreResult<()> {
        let now = Timestamp(codec::now_ms());
        let mut tx = begin_write(&self.pool).await?;
        check_fence(&mut tx, lease, now).await?;
        for b in buckets {
            sqlx::query(
                "INSERT INTO node_uptime_hourly (node_id, hour_start, up_ms, syncing_ms, down_ms, maintenance_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (node_id, hour_start) DO UPDATE SET \
                 up_ms = excluded.up_ms, syncing_ms = excluded.syncing_ms, down_ms = excluded.down_ms, \
                 maintenance_ms = excluded.maintenance_ms",
            )
            .bind(node.to_string())
            .bind(b.hour_start_ms)
            .bind(b.up_ms)
            .bind(b.syncing_ms)
            .bind(b.down_ms)
            .bind(b.maintenance_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn uptime_buckets(
        &self,
        node: hood_domain::NodeId,
        from_hour: i64,
        to_hour: i64,
    ) -> StoreResult<Vec<hood_domain::health::UptimeBucket>> {
        let rows = sqlx::query(
            "SELECT hour_start, up_ms, syncing_ms, down_ms, maintenance_ms FROM node_uptime_hourly \
             WHERE node_id = $1 AND hour_start >= $2 AND hour_start < $3 ORDER BY hour_start",
        )
        .bind(node.to_string())
        .bind(from_hour)
        .bind(to_hour)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(hood_domain::health::UptimeBucket {
                    hour_start_ms: col(r, "hour_start")?,
                    up_ms: col(r, "up_ms")?,
                    syncing_ms: col(r, "syncing_ms")?,
                    down_ms: col(r, "down_ms")?,
                    maintenance_ms: col(r, "maintenance_ms")?,
                })
            })
            .collect()
    }

    async fn delete_expired_enrollment_tokens(&self, before: Timestamp) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM enrollment_tokens WHERE used_at IS NULL AND expires_at < $1")
            .bind(before.millis())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
