//! Node snapshots: take one, list them, restore one (design §5). The work
//! is the orchestrator's `snapshot-node` and `restore-node` runs; this is
//! what a caller may ask and what it is told.

use crate::error::{AppError, AppResult};
use crate::nodes::{workflow_with_input, NodeAccepted, NodeService};
use hood_domain::lifecycle::NodeState;
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
    /// is taken; the same name asked again while its run exists finds it.
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
        if !serving(node.state) || node.host_id.is_none() {
            return Err(AppError::Conflict(format!(
                "node is {}: only a serving node is snapshotted",
                node.state.as_str()
            )));
        }
        let run_id = snapshot_id(node.id, &name);
        if self.snapshots.get_snapshot(node.id, &name).await?.is_some()
            && self.workflows.get_workflow(&run_id).await?.is_none()
        {
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
        if !serving(node.state) || node.host_id.is_none() {
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
