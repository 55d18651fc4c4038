//! Node snapshots: take one, list them, restore one (design §5). The work
//! is the orchestrator's `snapshot-node` and `restore-node` runs; this is
//! what a caller may ask and what it is told.

use crate::error::{AppError, AppResult};
use crate::nodes::{workflow_with_input, NodeAccepted, NodeService};
use hood_domain::lifecycle::NodeState;
use hood_domain::machine::StateMachine;
use hood_domain::node_workflows::{
    restore_id, snapshot_id, SnapshotNodeInput, RESTORE_NODE, SNAPSHOT_NODE,
};
use hood_domain::snapshot::{NodeSnapshot, SnapshotState};
use hood_domain::validate::FieldError;
use hood_domain::workload::valid_snapshot_name;
use hood_domain::{NodeId, OrgId};
use hood_store::snapshot::SnapshotStore;
use hood_store::workflow::WorkflowStore;
use std::sync::Arc;

/// A snapshot being taken.
#[derive(Debug, Clone)]
pub struct SnapshotAccepted {
    pub node_id: NodeId,
    pub name: String,
    pub workflow_id: String,
}

/// Scheduled backups: a snapshot of every healthy node each `every_s`,
/// the newest `keep` of them kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSchedule {
    pub every_s: i64,
    pub keep: i64,
}

/// What one pass of the schedule did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleReport {
    /// Snapshots started (one per node still without this slot's).
    pub started: usize,
    /// Scheduled snapshots deleted by retention.
    pub deleted: usize,
    /// Nodes whose snapshot or deletion failed (logged; next pass retries).
    pub failed: usize,
}

/// The reason of scheduled snapshots, and the prefix of their names.
pub const SCHEDULED: &str = "scheduled";

/// The name of the scheduled snapshot of the slot `now_s` falls in: every
/// replica, and every pass within the slot, names the same snapshot.
pub fn scheduled_name(now_s: i64, every_s: i64) -> String {
    let every = every_s.max(1);
    format!("{SCHEDULED}-{}", now_s - now_s.rem_euclid(every))
}

/// The snapshot use cases.
#[derive(Clone)]
pub struct SnapshotService {
    nodes: NodeService,
    snapshots: Arc<dyn SnapshotStore>,
    workflows: Arc<dyn WorkflowStore>,
}

fn encode(input: &SnapshotNodeInput) -> AppResult<serde_json::Value> {
    serde_json::to_value(input)
        .map_err(|e| AppError::Internal(format!("encoding workflow input: {e}")))
}

fn serving(state: NodeState) -> bool {
    matches!(
        state,
        NodeState::Healthy | NodeState::Degraded | NodeState::Syncing
    )
}

impl SnapshotService {
    pub fn new(
        nodes: NodeService,
        snapshots: Arc<dyn SnapshotStore>,
        workflows: Arc<dyn WorkflowStore>,
    ) -> Self {
        Self {
            nodes,
            snapshots,
            workflows,
        }
    }

    /// Takes a snapshot of a serving node (`snapshot-node`): named `name`,
    /// or `manual-{unix ms}`. 409 unless the node serves or when the name
    /// is taken; the same name asked again while its run works finds it.
    pub async fn take(
        &self,
        org: OrgId,
        id: NodeId,
        name: Option<String>,
        reason: &str,
    ) -> AppResult<SnapshotAccepted> {
        let node = self.nodes.get(org, id).await?;
        let now = self.nodes.now();
        let name = name.unwrap_or_else(|| format!("{reason}-{}", now.millis()));
        if !valid_snapshot_name(&name) {
            return Err(AppError::Invalid(vec![FieldError::new(
                "name",
                "must be 1 to 128 letters, digits, `-` or `_`",
            )]));
        }
        if !serving(node.state) {
            return Err(AppError::Conflict(format!(
                "node is {}: only a serving node is snapshotted",
                node.state.as_str()
            )));
        }
        let run_id = snapshot_id(node.id, &name);
        // Asked again while its run works: that run. Once it ended (or
        // without one), the name is taken.
        let running = self
            .workflows
            .get_workflow(&run_id)
            .await?
            .is_some_and(|run| !run.state.is_terminal());
        if !running && self.snapshots.get_snapshot(node.id, &name).await?.is_some() {
            return Err(AppError::Conflict(format!(
                "node {} already has a snapshot named `{name}`",
                node.id
            )));
        }
        let input = SnapshotNodeInput {
            node_id: node.id,
            name: name.clone(),
            reason: reason.to_owned(),
        };
        let workflow = workflow_with_input(SNAPSHOT_NODE, run_id, encode(&input)?, now)?;
        let (run, created) = self.workflows.create_workflow(&workflow).await?;
        if created {
            tracing::info!(node_id = %node.id, snapshot = %name, workflow_id = %run.id, "snapshot requested");
            self.nodes.wake();
        }
        Ok(SnapshotAccepted {
            node_id: node.id,
            name,
            workflow_id: run.id,
        })
    }

    /// One pass of the backup schedule: starts this slot's snapshot of
    /// every healthy node that lacks it, then deletes scheduled snapshots
    /// beyond the newest `keep` per node (and failed ones older than a
    /// day). Idempotent: replicas and repeated passes start nothing twice.
    pub async fn run_schedule(&self, schedule: BackupSchedule) -> AppResult<ScheduleReport> {
        let now = self.nodes.now();
        let name = scheduled_name(now.millis() / 1000, schedule.every_s);
        let mut report = ScheduleReport::default();
        for (org, node) in self.snapshots.healthy_nodes_without_snapshot(&name).await? {
            match self.take(org, node, Some(name.clone()), SCHEDULED).await {
                Ok(_) => report.started += 1,
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(node_id = %node, snapshot = %name, error = %e, "scheduled snapshot not started");
                }
            }
        }
        let day_ago = now.plus_millis(-86_400_000);
        let expired = self
            .snapshots
            .expired_snapshots(SCHEDULED, schedule.keep.max(1), day_ago)
            .await?;
        if expired.is_empty() {
            return Ok(report);
        }
        let operations = self.nodes.operations()?;
        for s in expired {
            match operations.delete_snapshot(s.node_id, &s.name).await {
                Ok(()) => {
                    report.deleted += 1;
                    tracing::info!(node_id = %s.node_id, snapshot = %s.name, "scheduled snapshot deleted by retention");
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(node_id = %s.node_id, snapshot = %s.name, error = %e, "scheduled snapshot not deleted");
                }
            }
        }
        Ok(report)
    }

    /// A node's snapshots, newest first.
    pub async fn list(&self, org: OrgId, id: NodeId) -> AppResult<Vec<NodeSnapshot>> {
        let node = self.nodes.get(org, id).await?;
        Ok(self.snapshots.list_snapshots(node.id).await?)
    }

    /// Replaces a serving node's data with one of its complete snapshots
    /// (`restore-node`). 404 for an unknown snapshot, 409 for one not
    /// complete or a node not serving.
    pub async fn restore(&self, org: OrgId, id: NodeId, name: &str) -> AppResult<NodeAccepted> {
        let node = self.nodes.get(org, id).await?;
        let snapshot = self
            .snapshots
            .get_snapshot(node.id, name)
            .await?
            .ok_or(AppError::NotFound("snapshot"))?;
        if snapshot.state != SnapshotState::Complete {
            return Err(AppError::Conflict(format!(
                "snapshot `{name}` is {}: only a complete snapshot is restored",
                snapshot.state.as_str()
            )));
        }
        if !serving(node.state) {
            return Err(AppError::Conflict(format!(
                "node is {}: only a serving node is restored",
                node.state.as_str()
            )));
        }
        let input = SnapshotNodeInput {
            node_id: node.id,
            name: name.to_owned(),
            reason: String::new(),
        };
        let workflow = workflow_with_input(
            RESTORE_NODE,
            restore_id(node.id, name, node.version),
            encode(&input)?,
            self.nodes.now(),
        )?;
        let (run, created) = self.workflows.create_workflow(&workflow).await?;
        if created {
            tracing::info!(node_id = %node.id, snapshot = %name, workflow_id = %run.id, "restore requested");
            self.nodes.wake();
        }
        Ok(NodeAccepted {
            node,
            workflow_id: run.id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_names_one_snapshot() {
        assert_eq!(scheduled_name(3_600, 3_600), "scheduled-3600");
        assert_eq!(scheduled_name(7_199, 3_600), "scheduled-3600");
        assert_eq!(scheduled_name(7_200, 3_600), "scheduled-7200");
        assert_eq!(
            scheduled_name(5, 0),
            "scheduled-5",
            "a zero period is one second"
        );
        assert!(valid_snapshot_name(&scheduled_name(1_767_225_600, 86_400)));
    }
}
