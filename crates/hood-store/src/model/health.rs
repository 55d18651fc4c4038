//! Rows of the health evaluation: the snapshot join, workload reports,
//! chain heads and leader leases.

use crate::codec::{self, opt_ts};
use crate::health::{HealthSnapshot, NodeHealth, WorkloadReport};
use crate::model::node::{NodeRow, NODE_COLUMNS};
use crate::model::qualified;
use crate::StoreError;
use hood_domain::health::ChainHeadTrack;
use hood_domain::node::Node;

/// The snapshot select list: a node (`n`), its counters (`h`, prefixed
/// `h_`) and its host (`ho`).
pub(crate) fn snapshot_columns() -> String {
    format!(
        "{}, h.consecutive_misses AS h_misses, h.down_since AS h_down_since, \
         h.down_version AS h_down_version, h.last_migration_at AS h_last_migration_at, \
         h.last_head AS h_last_head, h.head_changed_at AS h_head_changed_at, \
         h.policy_firing AS h_policy_firing, ho.state AS host_state, \
         ho.last_seen_at AS host_last_seen",
        qualified("n", NODE_COLUMNS)
    )
}

/// One node of the snapshot join; the `node_health` and host columns are
/// NULL when the node has none.
#[derive(sqlx::FromRow)]
pub(crate) struct SnapshotRow {
    #[sqlx(flatten)]
    node: NodeRow,
    h_misses: Option<i64>,
    h_down_since: Option<i64>,
    h_down_version: Option<i64>,
    h_last_migration_at: Option<i64>,
    h_last_head: Option<i64>,
    h_head_changed_at: Option<i64>,
    h_policy_firing: Option<String>,
    host_state: Option<String>,
    host_last_seen: Option<i64>,
}

impl SnapshotRow {
    /// The snapshot, with the workload report `workload` finds for its node
    /// (reports are aggregated per node separately).
    pub(crate) fn into_snapshot(
        self,
        workload: impl FnOnce(&Node) -> Option<WorkloadReport>,
    ) -> Result<HealthSnapshot, StoreError> {
        let r = self;
        let health = match r.h_misses {
            None => None,
            Some(misses) => {
                let firing = r.h_policy_firing.ok_or_else(|| {
                    StoreError::Corrupt("node_health.policy_firing is NULL".into())
                })?;
                Some(NodeHealth {
                    consecutive_misses: u32::try_from(misses.max(0)).unwrap_or(u32::MAX),
                    down_since: opt_ts(r.h_down_since),
                    down_version: r.h_down_version,
                    last_migration_at: opt_ts(r.h_last_migration_at),
                    last_head: r.h_last_head,
                    head_changed_at: opt_ts(r.h_head_changed_at),
                    policy_firing: codec::parse_json("node_health.policy_firing", &firing)?,
                })
            }
        };
        let node = Node::try_from(r.node)?;
        Ok(HealthSnapshot {
            workload: workload(&node),
            node,
            health,
            host_state: codec::parse_opt_state("hosts.state", r.host_state.as_deref())?,
            host_last_seen: opt_ts(r.host_last_seen),
        })
    }
}

/// One runtime workload report of a host, for the snapshot's per-node
/// aggregation.
#[derive(sqlx::FromRow)]
pub(crate) struct HostWorkloadRow {
    pub(crate) host_id: String,
    pub(crate) workload_id: String,
    pub(crate) state: String,
    pub(crate) updated_at: i64,
    pub(crate) observation: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ChainHeadRow {
    pub(crate) chain: String,
    best_head: i64,
    advanced_at: i64,
}

impl ChainHeadRow {
    pub(crate) fn into_entry(self) -> (String, ChainHeadTrack) {
        (
            self.chain,
            ChainHeadTrack {
                best_head: self.best_head,
                advanced_at_ms: self.advanced_at,
            },
        )
    }
}

/// The current holder of a leader lease.
#[derive(sqlx::FromRow)]
pub(crate) struct LeaseRow {
    pub(crate) holder: String,
    pub(crate) generation: i64,
    pub(crate) expires_at: i64,
}
