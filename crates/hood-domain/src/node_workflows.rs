//! The contracts of the node workflows: names, versions, run ids and input.
//!
//! The orchestrator registers the workflows under these names; the use
//! cases that start them (creating a node writes its provisioning run in
//! the same transaction) and the health role (a migration per outage) name
//! them by these ids. A run's id is derived from what it is about, so
//! asking twice finds the same run instead of starting a second.

use crate::rollout::SoftwareTarget;
use crate::{NodeId, RolloutId};
use serde::{Deserialize, Serialize};

/// `(name, version)` of a workflow definition. A journaled run of a version
/// the binary does not know is refused, never mis-replayed.
pub type Definition = (&'static str, i64);

/// v2 can seed the new node's data from a snapshot before its first start;
/// v1 runs still finish as they began.
pub const PROVISION_NODE: Definition = ("provision-node", 2);
pub const PROVISION_NODE_V1: Definition = ("provision-node", 1);
pub const TERMINATE_NODE: Definition = ("terminate-node", 1);
/// v2 restores the node's latest snapshot on the new host before the
/// first start (warm migration); v3 first pulls the data from the old host
/// when it still answers. Runs of v1 and v2 still finish as they began.
pub const MIGRATE_NODE: Definition = ("migrate-node", 3);
pub const MIGRATE_NODE_V2: Definition = ("migrate-node", 2);
pub const MIGRATE_NODE_V1: Definition = ("migrate-node", 1);
pub const SUSPEND_NODE: Definition = ("suspend-node", 1);
pub const RESUME_NODE: Definition = ("resume-node", 1);
pub const UPGRADE_NODE: Definition = ("upgrade-node", 1);
pub const ROLLOUT: Definition = ("rollout", 1);
pub const RECONFIGURE_NODE: Definition = ("reconfigure-node", 1);
pub const SNAPSHOT_NODE: Definition = ("snapshot-node", 1);
pub const RESTORE_NODE: Definition = ("restore-node", 1);

/// Signals every workflow understands (the saga engine handles them
/// between steps).
pub mod signals {
    /// Parks the run at the next step boundary until `resume`.
    pub const PAUSE: &str = "pause";
    /// Lets a paused run continue.
    pub const RESUME: &str = "resume";
    /// Stops the run at the next step boundary and compensates.
    pub const ABORT: &str = "abort";
    /// By convention, what an approval-gated step waits for.
    pub const APPROVE: &str = "approve";
    /// Signals handled by the engine rather than by steps.
    pub const CONTROL: [&str; 3] = [PAUSE, RESUME, ABORT];
}

/// The input of every node workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeWorkflowInput {
    pub node_id: NodeId,
}

/// A complete snapshot of another node (same organization and chain) a new
/// node starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSeed {
    pub node_id: NodeId,
    pub snapshot: String,
}

/// The input of `provision-node`: the node, and what its data starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionInput {
    pub node_id: NodeId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<SnapshotSeed>,
}

/// The one provisioning run of a node.
pub fn provision_id(node: NodeId) -> String {
    format!("provision-node-{node}")
}

/// The one termination run of a node.
pub fn terminate_id(node: NodeId) -> String {
    format!("terminate-node-{node}")
}

/// One migration per outage: the node version at which it was seen down.
pub fn migrate_id(node: NodeId, version: i64) -> String {
    format!("migrate-node-{node}-{version}")
}

/// One suspension per node version: asking again while the node has not
/// changed finds the same run.
pub fn suspend_id(node: NodeId, version: i64) -> String {
    format!("suspend-node-{node}-{version}")
}

/// One resumption per node version (the version of the suspended node).
pub fn resume_id(node: NodeId, version: i64) -> String {
    format!("resume-node-{node}-{version}")
}

/// One reconfiguration per node version: asking again before it changed
/// finds the same run.
pub fn reconfigure_id(node: NodeId, version: i64) -> String {
    format!("reconfigure-node-{node}-{version}")
}

/// One run per snapshot (names are unique per node).
pub fn snapshot_id(node: NodeId, name: &str) -> String {
    format!("snapshot-node-{node}-{name}")
}

/// One restore per snapshot and node version.
pub fn restore_id(node: NodeId, name: &str, version: i64) -> String {
    format!("restore-node-{node}-{name}-{version}")
}

/// The input of `snapshot-node` and `restore-node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotNodeInput {
    pub node_id: NodeId,
    /// The snapshot to take or to restore.
    pub name: String,
    /// Why it is taken (`manual`, `scheduled`); ignored by a restore.
    #[serde(default)]
    pub reason: String,
}

/// The one run of a rollout.
pub fn rollout_workflow_id(rollout: RolloutId) -> String {
    format!("rollout-{rollout}")
}

/// The one upgrade of `node` by `rollout`: a replay of the rollout finds
/// it instead of upgrading the node a second time.
pub fn upgrade_id(rollout: RolloutId, node: NodeId) -> String {
    format!("upgrade-node-{rollout}-{node}")
}

/// The one `reconfigure-node` run of `node` by a reconfigure `rollout`.
pub fn rollout_reconfigure_id(rollout: RolloutId, node: NodeId) -> String {
    format!("reconfigure-node-{rollout}-{node}")
}

/// The one revert of `node` by `rollout` (back to its previous version).
pub fn revert_id(rollout: RolloutId, node: NodeId) -> String {
    format!("revert-node-{rollout}-{node}")
}

/// The input of `upgrade-node`: one node moved to `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeNodeInput {
    pub node_id: NodeId,
    pub target: SoftwareTarget,
    /// The snapshot to put back instead of taking one: a revert of a
    /// `forward_only` upgrade restores the data its upgrade snapshotted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_snapshot: Option<String>,
    /// How long the new version has to serve and reach its old head.
    pub verify_timeout_s: u32,
    /// The manifest (`chains/upgrades/{chain}/{id}.yaml`) whose pre- and
    /// post-checks gate this upgrade; `None` for an explicit version and
    /// for a revert (going back is never held up by the way forward's
    /// checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_id: Option<String>,
}

/// The input of `rollout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutInput {
    pub rollout_id: RolloutId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_derived_from_the_node_and_distinct_per_kind() {
        let node = NodeId::from_uuid(uuid::Uuid::from_u128(7));
        let ids = [
            provision_id(node),
            terminate_id(node),
            migrate_id(node, 3),
            migrate_id(node, 4),
            suspend_id(node, 3),
            resume_id(node, 3),
            reconfigure_id(node, 3),
        ];
        for (i, a) in ids.iter().enumerate() {
            assert!(a.contains(&node.to_string()));
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(provision_id(node), provision_id(node));
    }

    #[test]
    fn input_round_trips_as_the_journal_stores_it() {
        let input = NodeWorkflowInput {
            node_id: NodeId::from_uuid(uuid::Uuid::from_u128(9)),
        };
        let json = serde_json::to_value(input).unwrap_or_default();
        assert_eq!(json["node_id"], input.node_id.to_string());
        let back: NodeWorkflowInput = serde_json::from_value(json).unwrap_or(NodeWorkflowInput {
            node_id: NodeId::from_uuid(uuid::Uuid::nil()),
        });
        assert_eq!(back, input);
    }
}
