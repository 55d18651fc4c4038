//! [`HealthStore`] for [`SqlStore`]: the evaluation cycle's snapshot read
//! and its one fenced write.

use super::incident::{insert_incident_on, update_incident_on};
use super::lease::check_fence;
use super::node::update_node_on;
use super::SqlStore;
use crate::db::{query, query_as, Tx};
use crate::health::{
    ApplyReport, HealthSnapshot, HealthStore, HealthWrite, Incident, Lease, NodeHealth,
    WorkloadReport,
};
use crate::model::all;
use crate::model::health::{snapshot_columns, ChainHeadRow, HostWorkloadRow, SnapshotRow};
use crate::model::incident::{IncidentRow, INCIDENT_COLUMNS};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::health::ChainHeadTrack;
use hood_domain::{NodeId, Timestamp};
use std::collections::{BTreeMap, HashMap};

/// A runtime workload of a node is reported as `{node_id}-{process}` (or
/// just `{node_id}`): the node id it belongs to, if it names one.
fn workload_node(workload_id: &str) -> Option<&str> {
    let prefix = workload_id.get(..36)?;
    (workload_id.len() == 36 || workload_id.as_bytes().get(36) == Some(&b'-')).then_some(prefix)
}

/// A node's processes' reports folded into one: the node runs when all of
/// them do (the first one that does not names the state), as fresh as its
/// stalest report, with the first observation there is.
fn aggregate_workloads(rows: Vec<HostWorkloadRow>) -> HashMap<(String, String), WorkloadReport> {
    let alive = |s: &str| matches!(s, "running" | "starting" | "restarting");
    let mut by_node: HashMap<(String, String), WorkloadReport> = HashMap::new();
    for r in rows {
        let Some(node) = workload_node(&r.workload_id) else {
            continue;
        };
        let node = node.to_owned();
        let updated_at = Timestamp(r.updated_at);
        // A report the agent garbled is no observation, not a reason to
        // stop judging every node.
        let observation: serde_json::Value =
            serde_json::from_str(&r.observation).unwrap_or(serde_json::Value::Null);
        match by_node.entry((r.host_id, node)) {
            std::collections::hash_map::Entry::Occupied(mut agg) => {
                let agg = agg.get_mut();
                if !alive(&r.state) {
                    agg.state = r.state;
                }
                agg.updated_at = Timestamp(agg.updated_at.millis().min(updated_at.millis()));
                if agg.observation.is_null() {
                    agg.observation = observation;
                }
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(WorkloadReport {
                    state: r.state,
                    updated_at,
                    observation,
                });
            }
        }
    }
    by_node
}

/// Columns of one `node_health` row as [`upsert_node_healths`] binds them.
const NODE_HEALTH_WIDTH: usize = 9;

/// Every changed node's counters in set-based statements: one multi-row
/// upsert per chunk of rows the dialect's bind limit allows (about 3,600 on
/// SQLite, 7,200 on PostgreSQL), not one statement per node. A node listed
/// twice keeps its last row (PostgreSQL refuses to update a row twice in
/// one statement).
async fn upsert_node_healths(
    tx: &mut Tx<'_>,
    rows: &[(NodeId, &NodeHealth)],
    now: Timestamp,
) -> StoreResult<()> {
    let mut last: HashMap<NodeId, usize> = HashMap::with_capacity(rows.len());
    for (i, (node, _)) in rows.iter().enumerate() {
        last.insert(*node, i);
    }
    let mut encoded = Vec::with_capacity(last.len());
    for (i, (node, h)) in rows.iter().enumerate() {
        if last.get(node) != Some(&i) {
            continue;
        }
        let firing = serde_json::to_string(&h.policy_firing)
            .map_err(|e| StoreError::Corrupt(format!("policy_firing: {e}")))?;
        encoded.push((node.to_string(), *h, firing));
    }
    let backend = tx.backend();
    for chunk in encoded.chunks(backend.rows_per_statement(NODE_HEALTH_WIDTH)) {
        let sql = format!(
            "INSERT INTO node_health (node_id, consecutive_misses, down_since, down_version, \
             last_migration_at, last_head, head_changed_at, policy_firing, updated_at) \
             VALUES {} \
             ON CONFLICT (node_id) DO UPDATE SET consecutive_misses = excluded.consecutive_misses, \
             down_since = excluded.down_since, down_version = excluded.down_version, \
             last_migration_at = excluded.last_migration_at, last_head = excluded.last_head, \
             head_changed_at = excluded.head_changed_at, policy_firing = excluded.policy_firing, \
             updated_at = excluded.updated_at",
            backend.values_list(chunk.len(), NODE_HEALTH_WIDTH)
        );
        // A handful of nodes changing is the steady state: that shape is
        // worth a prepared statement, the many shapes of big cycles are not.
        let mut q = query(sql).persistent(chunk.len() <= 2);
        for (node, h, firing) in chunk {
            q = q
                .bind(node.as_str())
                .bind(i64::from(h.consecutive_misses))
                .bind(h.down_since.map(Timestamp::millis))
                .bind(h.down_version)
                .bind(h.last_migration_at.map(Timestamp::millis))
                .bind(h.last_head)
                .bind(h.head_changed_at.map(Timestamp::millis))
                .bind(firing.as_str())
                .bind(now.millis());
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

async fn upsert_chain_head(
    tx: &mut Tx<'_>,
    chain: &str,
    track: &ChainHeadTrack,
    now: Timestamp,
) -> StoreResult<()> {
    query(
        "INSERT INTO chain_heads (chain, best_head, advanced_at, updated_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (chain) DO UPDATE SET best_head = excluded.best_head, \
         advanced_at = excluded.advanced_at, updated_at = excluded.updated_at",
    )
    .bind(chain)
    .bind(track.best_head)
    .bind(track.advanced_at_ms)
    .bind(now.millis())
    .execute(tx)
    .await?;
    Ok(())
}

#[async_trait]
impl HealthStore for SqlStore {
    async fn node_report(&self, node: NodeId) -> StoreResult<Option<WorkloadReport>> {
        let reports = query_as::<HostWorkloadRow>(
            "SELECT w.host_id, w.workload_id, w.state, w.updated_at, w.observation \
             FROM host_workloads w \
             WHERE w.host_id = (SELECT n.host_id FROM nodes n WHERE n.id = $1)",
        )
        .bind(node.to_string())
        .fetch_all(&self.pool)
        .await?;
        let id = node.to_string();
        Ok(aggregate_workloads(reports)
            .into_iter()
            .find_map(|((_, n), report)| (n == id).then_some(report)))
    }

    async fn node_snapshot(&self, node: NodeId) -> StoreResult<Option<HealthSnapshot>> {
        let row = query_as::<SnapshotRow>(format!(
            "SELECT {} FROM nodes n \
             LEFT JOIN node_health h ON h.node_id = n.id \
             LEFT JOIN hosts ho ON ho.id = n.host_id \
             WHERE n.id = $1",
            snapshot_columns()
        ))
        .bind(node.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let report = self.node_report(node).await?;
        row.into_snapshot(|_| report).map(Some)
    }

    async fn health_snapshot(&self) -> StoreResult<Vec<HealthSnapshot>> {
        let rows = query_as::<SnapshotRow>(format!(
            "SELECT {} FROM nodes n \
             LEFT JOIN node_health h ON h.node_id = n.id \
             LEFT JOIN hosts ho ON ho.id = n.host_id \
             WHERE n.state NOT IN ('terminated', 'failed') ORDER BY n.id",
            snapshot_columns()
        ))
        .fetch_all(&self.pool)
        .await?;
        // Each report once (a join with nodes would repeat it for every node
        // on its host).
        let reports = query_as::<HostWorkloadRow>(
            "SELECT w.host_id, w.workload_id, w.state, w.updated_at, w.observation \
             FROM host_workloads w \
             WHERE w.host_id IN (SELECT n.host_id FROM nodes n \
             WHERE n.host_id IS NOT NULL AND n.state NOT IN ('terminated', 'failed'))",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut by_node = aggregate_workloads(reports);
        rows.into_iter()
            .map(|row| {
                row.into_snapshot(|node| {
                    node.host_id
                        .and_then(|h| by_node.remove(&(h.to_string(), node.id.to_string())))
                })
            })
            .collect()
    }

    async fn chain_heads(&self) -> StoreResult<BTreeMap<String, ChainHeadTrack>> {
        let rows =
            query_as::<ChainHeadRow>("SELECT chain, best_head, advanced_at FROM chain_heads")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(ChainHeadRow::into_entry).collect())
    }

    async fn unresolved_incidents(&self) -> StoreResult<Vec<Incident>> {
        let rows = query_as::<IncidentRow>(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE state <> 'resolved' \
             ORDER BY opened_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn apply_health(
        &self,
        lease: &Lease,
        writes: &[HealthWrite],
        now: Timestamp,
    ) -> StoreResult<ApplyReport> {
        let mut report = ApplyReport::default();
        // Counters go in one set-based write after the node changes (a
        // node whose change went stale is skipped, as before).
        let mut counters: Vec<(NodeId, &NodeHealth)> = Vec::new();
        let mut tx = self.pool.begin_write().await?;
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
                        match update_node_on(&mut tx, *node_id, *expected_version, change, now)
                            .await
                        {
                            Ok(_) => report.nodes_changed += 1,
                            Err(
                                StoreError::Conflict(_)
                                | StoreError::NotFound(_)
                                | StoreError::InvalidTransition(_),
                            ) => {
                                report.stale_nodes.push(*node_id);
                                continue;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    counters.push((*node_id, health));
                }
                HealthWrite::ChainHead { chain, track } => {
                    upsert_chain_head(&mut tx, chain, track, now).await?;
                }
                HealthWrite::OpenIncident(incident) => {
                    if insert_incident_on(&mut tx, incident).await? {
                        report.incidents_opened += 1;
                    }
                }
                HealthWrite::UpdateIncident {
                    id,
                    expected_state,
                    change,
                } => {
                    if update_incident_on(&mut tx, *id, *expected_state, change, now).await? {
                        report.incidents_updated += 1;
                    }
                }
            }
        }
        upsert_node_healths(&mut tx, &counters, now).await?;
        tx.commit().await?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "0190b7a4-9a51-7c3e-8d6f-2a1b3c4d5e6f";

    fn report(workload: &str, state: &str, at: i64, observation: &str) -> HostWorkloadRow {
        HostWorkloadRow {
            host_id: "h".into(),
            workload_id: workload.into(),
            state: state.into(),
            updated_at: at,
            observation: observation.into(),
        }
    }

    #[test]
    fn workload_ids_name_their_node_only_as_a_whole_uuid_prefix() {
        assert_eq!(workload_node(NODE), Some(NODE));
        assert_eq!(workload_node(&format!("{NODE}-reth")), Some(NODE));
        assert_eq!(workload_node(&format!("{NODE}x")), None);
        assert_eq!(workload_node("short"), None);
    }

    #[test]
    fn a_node_runs_only_when_all_its_processes_do() {
        let by_node = aggregate_workloads(vec![
            report(&format!("{NODE}-a"), "running", 20, "{\"head\":1}"),
            report(&format!("{NODE}-b"), "failed", 10, "not json"),
            report("other", "running", 5, "{}"),
        ]);
        assert_eq!(by_node.len(), 1);
        let agg = &by_node[&("h".to_owned(), NODE.to_owned())];
        assert_eq!(agg.state, "failed");
        assert_eq!(agg.updated_at, Timestamp(10));
        assert_eq!(agg.observation, serde_json::json!({"head": 1}));
    }
}
