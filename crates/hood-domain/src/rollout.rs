//! Rollout planning (design §5): which nodes go in which batch, and what a
//! rollout does next given where its nodes stand. Pure: the rollout
//! workflow reads its nodes' states, asks [`next_step`], and does it; the
//! same inputs always give the same answer, so a replay after a crash
//! decides what the first run decided.

use crate::lifecycle::rollout::{RolloutNodeState, RolloutState};
use crate::{NodeId, RolloutId, Timestamp};
use serde::{Deserialize, Serialize};

/// A version of one of a chain's binaries a node runs: what an upgrade
/// installs and what a node is pinned to afterwards (its profile's version
/// until then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftwareTarget {
    /// Profile binary (`anvil`, `reth`, …).
    pub binary: String,
    /// Artifact name in the artifact store.
    pub artifact: String,
    pub version: String,
    /// Whether the data written by this version may not open with the one
    /// before (a revert then restores the snapshot taken before it).
    #[serde(default)]
    pub forward_only: bool,
}

/// A node's binary pinned to a version other than its profile's (what an
/// upgrade installed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedBinary {
    pub binary: String,
    pub artifact: String,
    pub version: String,
}

/// What a rollout changes on each node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutKind {
    /// Another version of a binary (`upgrade-node` per node; reverted when
    /// the failure budget is spent).
    #[default]
    Upgrade,
    /// The chain's current recipe applied (`reconfigure-node` per node).
    /// Not reverted: the catalog holds only the current recipe, so a spent
    /// budget stops the rollout as failed with the rest untouched.
    Reconfigure,
}

impl RolloutKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Upgrade => "upgrade",
            Self::Reconfigure => "reconfigure",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "upgrade" => Some(Self::Upgrade),
            "reconfigure" => Some(Self::Reconfigure),
            _ => None,
        }
    }
}

/// A rollout as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: RolloutId,
    /// The manifest it came from (`chains/upgrades/{chain}/{id}.yaml`), or
    /// `None` for an explicit binary and version.
    pub upgrade_id: Option<String>,
    pub kind: RolloutKind,
    pub chain: String,
    /// Targets were the chain's nodes of this type (all types when `None`).
    pub node_type: Option<String>,
    /// Targets were the nodes whose labels match this selector
    /// ([`crate::label::Selector`]; all when `None`).
    pub selector: Option<String>,
    /// Version the targets run now (per the manifest or the profile).
    pub from_version: String,
    pub target: SoftwareTarget,
    pub policy: RolloutPolicy,
    /// Seconds an upgraded node must stay healthy before it counts.
    pub soak_s: u32,
    pub verify_timeout_s: u32,
    pub state: RolloutState,
    /// Batches an operator approved (the first needs none).
    pub approved_through: u32,
    /// Why it reverted, failed or was aborted.
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One target node of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutNode {
    pub rollout_id: RolloutId,
    pub node_id: NodeId,
    /// Batch index (0 is the canary when there is one) and place in it.
    pub batch: u32,
    pub position: u32,
    pub state: RolloutNodeState,
    /// The version it ran when targeted: what a revert puts back.
    pub from_version: String,
    /// Healthy until then and it counts as upgraded.
    pub soak_until: Option<Timestamp>,
    pub error: Option<String>,
    pub updated_at: Timestamp,
}

/// The batches of stored rollout nodes, in order (for [`next_step`]).
pub fn batches_of(nodes: &[RolloutNode]) -> (Vec<Vec<NodeId>>, Vec<Vec<RolloutNodeState>>) {
    let mut sorted: Vec<&RolloutNode> = nodes.iter().collect();
    sorted.sort_by_key(|n| (n.batch, n.position));
    let mut batches: Vec<Vec<NodeId>> = Vec::new();
    let mut states: Vec<Vec<RolloutNodeState>> = Vec::new();
    for n in sorted {
        let i = usize::try_from(n.batch).unwrap_or(usize::MAX);
        while batches.len() <= i {
            batches.push(Vec::new());
            states.push(Vec::new());
        }
        batches[i].push(n.node_id);
        states[i].push(n.state);
    }
    (batches, states)
}

/// How large the batches after the canary are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchSize {
    /// This many nodes.
    Count(u32),
    /// This share of all targets, rounded up (at least one node).
    Percent(u8),
}

/// How a rollout moves through its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutPolicy {
    /// Nodes in the first batch (0: no canary).
    pub canary: u32,
    pub batch: BatchSize,
    /// Nodes out of service at once: caps every batch.
    pub max_unavailable: u32,
    /// Failed nodes tolerated; one more and the rollout reverts.
    pub failure_budget: u32,
    /// Wait for an operator's approval before each batch after the first.
    pub require_approval: bool,
}

/// Why a policy or a plan is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no node matches the rollout's targets")]
    NoTargets,
    #[error("max_unavailable must be at least 1")]
    NothingMayBeUnavailable,
    #[error("a batch of 0 nodes never finishes: batch must be at least 1 (or 1 %)")]
    EmptyBatch,
    #[error("batch percent must be 1 to 100, not {0}")]
    Percent(u8),
    #[error("the canary ({canary}) must not exceed max_unavailable ({max})")]
    CanaryTooLarge { canary: u32, max: u32 },
    #[error("node {0} is targeted twice")]
    Duplicate(NodeId),
}

/// The batches, in order: the canary (if any), then batches of the policy's
/// size, never more than `max_unavailable`. Targets keep the caller's order
/// (give it a stable one: by node id), so a replay plans the same batches.
pub fn plan_batches(
    targets: &[NodeId],
    policy: &RolloutPolicy,
) -> Result<Vec<Vec<NodeId>>, PlanError> {
    if targets.is_empty() {
        return Err(PlanError::NoTargets);
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = targets.iter().find(|n| !seen.insert(**n)) {
        return Err(PlanError::Duplicate(*dup));
    }
    if policy.max_unavailable == 0 {
        return Err(PlanError::NothingMayBeUnavailable);
    }
    if policy.canary > policy.max_unavailable {
        return Err(PlanError::CanaryTooLarge {
            canary: policy.canary,
            max: policy.max_unavailable,
        });
    }
    let total = targets.len();
    let size = match policy.batch {
        BatchSize::Count(0) | BatchSize::Percent(0) => return Err(PlanError::EmptyBatch),
        BatchSize::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
        BatchSize::Percent(p) if p > 100 => return Err(PlanError::Percent(p)),
        BatchSize::Percent(p) => (total * usize::from(p)).div_ceil(100).max(1),
    };
    let size = size.min(usize::try_from(policy.max_unavailable).unwrap_or(usize::MAX));
    let canary = usize::try_from(policy.canary)
        .unwrap_or(usize::MAX)
        .min(total);
    let mut batches = Vec::new();
    if canary > 0 {
        batches.push(targets[..canary].to_vec());
    }
    batches.extend(targets[canary..].chunks(size).map(<[NodeId]>::to_vec));
    Ok(batches)
}

/// What the rollout does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Start `upgrade-node` for every node of batch `index`.
    StartBatch(usize),
    /// The batch in flight is not done (upgrading or soaking): wait.
    Wait,
    /// Batch `index` is next but needs an operator's approval first.
    AwaitApproval(usize),
    /// Every batch is upgraded.
    Complete,
    /// The failure budget is spent: revert these nodes (every node the
    /// rollout upgraded, or whose upgrade failed), in this order.
    Revert(Vec<NodeId>),
}

/// Decides the next step from each planned node's state (`states[i][j]` is
/// node `j` of batch `i`) and how many batches an operator approved.
pub fn next_step(
    batches: &[Vec<NodeId>],
    states: &[Vec<RolloutNodeState>],
    policy: &RolloutPolicy,
    approved_through: usize,
) -> NextStep {
    use RolloutNodeState as S;
    let failed = states.iter().flatten().filter(|s| **s == S::Failed).count();
    if failed > usize::try_from(policy.failure_budget).unwrap_or(usize::MAX) {
        let touched = batches
            .iter()
            .zip(states)
            .flat_map(|(b, s)| b.iter().zip(s))
            .filter(|(_, s)| matches!(s, S::Upgraded | S::Soaking | S::Failed))
            .map(|(n, _)| *n)
            .collect();
        return NextStep::Revert(touched);
    }
    for (i, batch_states) in states.iter().enumerate().take(batches.len()) {
        if batch_states
            .iter()
            .any(|s| matches!(s, S::Upgrading | S::Soaking))
        {
            return NextStep::Wait;
        }
        // A batch partly started (a crash between starting its nodes'
        // upgrades) is started again: starting is idempotent per node.
        if batch_states.contains(&S::Waiting) {
            let untouched = batch_states.iter().all(|s| *s == S::Waiting);
            if untouched && i > 0 && policy.require_approval && approved_through < i {
                return NextStep::AwaitApproval(i);
            }
            return NextStep::StartBatch(i);
        }
    }
    NextStep::Complete
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn nodes(n: u128) -> Vec<NodeId> {
        (1..=n)
            .map(|i| NodeId::from_uuid(Uuid::from_u128(i)))
            .collect()
    }

    fn policy(canary: u32, batch: BatchSize, max_unavailable: u32) -> RolloutPolicy {
        RolloutPolicy {
            canary,
            batch,
            max_unavailable,
            failure_budget: 0,
            require_approval: false,
        }
    }

    fn sizes(b: &[Vec<NodeId>]) -> Vec<usize> {
        b.iter().map(Vec::len).collect()
    }

    #[test]
    fn six_nodes_a_canary_and_batches_of_two() {
        let t = nodes(6);
        let b = plan_batches(&t, &policy(1, BatchSize::Count(5), 2)).unwrap();
        assert_eq!(sizes(&b), [1, 2, 2, 1], "max_unavailable caps the batch");
        assert_eq!(b.concat(), t, "every target once, in order");
        let b = plan_batches(&t, &policy(0, BatchSize::Percent(50), 10)).unwrap();
        assert_eq!(sizes(&b), [3, 3]);
        let b = plan_batches(&t, &policy(0, BatchSize::Percent(1), 10)).unwrap();
        assert_eq!(
            sizes(&b),
            [1; 6],
            "a percent rounds up to at least one node"
        );
        // A canary larger than the fleet is the whole fleet.
        let b = plan_batches(&nodes(2), &policy(3, BatchSize::Count(1), 3)).unwrap();
        assert_eq!(sizes(&b), [2]);
    }

    #[test]
    fn impossible_plans_are_refused() {
        let t = nodes(3);
        assert_eq!(
            plan_batches(&[], &policy(1, BatchSize::Count(1), 1)),
            Err(PlanError::NoTargets)
        );
        assert_eq!(
            plan_batches(&t, &policy(0, BatchSize::Count(1), 0)),
            Err(PlanError::NothingMayBeUnavailable)
        );
        assert_eq!(
            plan_batches(&t, &policy(0, BatchSize::Count(0), 1)),
            Err(PlanError::EmptyBatch)
        );
        assert_eq!(
            plan_batches(&t, &policy(0, BatchSize::Percent(101), 1)),
            Err(PlanError::Percent(101))
        );
        assert_eq!(
            plan_batches(&t, &policy(3, BatchSize::Count(1), 2)),
            Err(PlanError::CanaryTooLarge { canary: 3, max: 2 })
        );
        let dup = vec![t[0], t[1], t[0]];
        assert_eq!(
            plan_batches(&dup, &policy(0, BatchSize::Count(1), 1)),
            Err(PlanError::Duplicate(t[0]))
        );
    }

    #[test]
    fn batches_go_one_after_another_behind_their_gates() {
        use RolloutNodeState::*;
        let t = nodes(3);
        let mut p = policy(1, BatchSize::Count(2), 2);
        p.require_approval = true;
        let b = plan_batches(&t, &p).unwrap();
        let st = |a: &[RolloutNodeState], c: &[RolloutNodeState]| vec![a.to_vec(), c.to_vec()];
        assert_eq!(
            next_step(&b, &st(&[Waiting], &[Waiting, Waiting]), &p, 0),
            NextStep::StartBatch(0)
        );
        assert_eq!(
            next_step(&b, &st(&[Soaking], &[Waiting, Waiting]), &p, 0),
            NextStep::Wait
        );
        assert_eq!(
            next_step(&b, &st(&[Upgraded], &[Waiting, Waiting]), &p, 0),
            NextStep::AwaitApproval(1)
        );
        assert_eq!(
            next_step(&b, &st(&[Upgraded], &[Waiting, Waiting]), &p, 1),
            NextStep::StartBatch(1)
        );
        assert_eq!(
            next_step(&b, &st(&[Upgraded], &[Upgrading, Soaking]), &p, 1),
            NextStep::Wait
        );
        assert_eq!(
            next_step(&b, &st(&[Upgraded], &[Upgraded, Upgraded]), &p, 1),
            NextStep::Complete
        );
        // A batch a crash left half started is finished starting.
        assert_eq!(
            next_step(&b, &st(&[Upgraded], &[Upgraded, Waiting]), &p, 1),
            NextStep::StartBatch(1)
        );
    }

    #[test]
    fn a_spent_budget_reverts_what_was_touched_and_nothing_else() {
        use RolloutNodeState::*;
        let t = nodes(5);
        let mut p = policy(1, BatchSize::Count(2), 2);
        let b = plan_batches(&t, &p).unwrap();
        // The canary fails: budget 0 is spent; only the canary is touched.
        let states = vec![vec![Failed], vec![Waiting, Waiting], vec![Waiting, Waiting]];
        assert_eq!(next_step(&b, &states, &p, 0), NextStep::Revert(vec![t[0]]));
        // With a budget of one the rollout goes on past one failure…
        p.failure_budget = 1;
        assert_eq!(next_step(&b, &states, &p, 0), NextStep::StartBatch(1));
        // …and reverts at the second, taking back every upgraded node.
        let states = vec![vec![Failed], vec![Upgraded, Failed], vec![Waiting, Waiting]];
        assert_eq!(
            next_step(&b, &states, &p, 0),
            NextStep::Revert(vec![t[0], t[1], t[2]])
        );
    }
}
