//! `chains/upgrades/{chain}/{upgrade_id}.yaml`: a targeted binary upgrade,
//! executed by the agent as an ordered list of actions, each with the
//! compensation that undoes it, and rolled out across nodes in batches.

use serde::{Deserialize, Serialize};

use crate::profile::{ArtifactSource, Verify};

/// A parsed upgrade manifest. Its id is the file stem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upgrade {
    /// What changes and why.
    pub description: String,
    /// Profile binary being replaced.
    pub binary: String,
    /// Version nodes must be running to take this upgrade.
    pub from_version: String,
    /// The new artifact.
    pub to: UpgradeTarget,
    /// Node types this applies to; empty means all.
    #[serde(default)]
    pub node_types: Vec<String>,
    /// Whether the old version still reads the data directory once the new
    /// one has written it: `compatible` (a revert swaps the binary back) or
    /// `forward_only` (a revert restores the snapshot taken before the first
    /// start, so the manifest must take one).
    pub state: StateCompatibility,
    /// CEL over the node's observations (the chain's collectors, `sync`,
    /// `node`), each true for the node to be upgraded…
    #[serde(default)]
    pub pre_checks: Vec<UpgradeCheck>,
    /// …and after it, for the upgrade to count as done (else it reverts).
    #[serde(default)]
    pub post_checks: Vec<UpgradeCheck>,
    /// Actions in execution order; compensations run in reverse on failure.
    pub actions: Vec<UpgradeAction>,
    /// How nodes are batched.
    pub rollout: RolloutPolicy,
}

/// What a revert can rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateCompatibility {
    /// Data written by the new version opens with the old one.
    Compatible,
    /// It may not: rollback is data-aware (restore the snapshot).
    ForwardOnly,
}

/// A named CEL condition over a node's observations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeCheck {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// True when the check passes.
    pub expression: String,
}

/// The artifact an upgrade installs; same rules as a profile binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeTarget {
    /// New version.
    pub version: String,
    /// Artifact name in the store.
    pub artifact: String,
    /// SHA-256 of the artifact (see [`Verify`]).
    #[serde(default)]
    pub sha256: Option<String>,
    /// How the checksum is established.
    #[serde(default)]
    pub verify: Verify,
    /// Executable's path inside an archive artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// Upstream origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ArtifactSource>,
}

/// One step of the on-host upgrade sequence.
///
/// `process` limits `stop`/`start` to one process (a multi-process node keeps
/// the others running; the compensation applies to the same process) and is
/// required by `migrate_config`; `add_args`/`remove_args` only apply to
/// `migrate_config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeAction {
    /// What to do.
    pub action: ActionKind,
    /// Action timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    /// How to undo this action when a later one fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensation: Option<Compensation>,
    /// Process `stop`/`start` act on (default: all) or whose arguments
    /// `migrate_config` edits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// Arguments `migrate_config` appends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_args: Vec<String>,
    /// Arguments `migrate_config` removes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_args: Vec<String>,
}

/// Upgrade action primitives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Fetch and verify the new artifact (before any downtime).
    DownloadBinary,
    /// Stop the node's processes.
    Stop,
    /// Install the new binary, keeping the old one for rollback.
    SwapBinary,
    /// Adjust process arguments for the new version.
    MigrateConfig,
    /// Start the node's processes.
    Start,
    /// Wait until the runtime health check passes.
    WaitHealthy,
    /// Check that the running binary reports the target version.
    VerifyVersion,
    /// Copy the data directory aside (while stopped), so a revert can put
    /// it back: required by a `forward_only` upgrade before its first start.
    SnapshotData,
}

/// Undo operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compensation {
    /// Nothing to undo.
    None,
    /// Start the processes again.
    Start,
    /// Stop the processes.
    Stop,
    /// Remove the downloaded artifact.
    DeleteDownload,
    /// Put the previous binary back.
    RestoreBinary,
    /// Put the previous arguments back.
    RestoreConfig,
    /// Put the data directory back as the snapshot has it.
    RestoreSnapshot,
}

/// Rollout batching across the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPolicy {
    /// Nodes upgraded in parallel per batch (at least 1).
    pub batch_size: u32,
    /// Size of a first, smaller batch; absent = no canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<u32>,
    /// Seconds to wait between batches.
    #[serde(default)]
    pub pause_between_batches_s: u32,
    /// Failed nodes tolerated before the rollout stops.
    #[serde(default)]
    pub max_failed_nodes: u32,
    /// Pause for an operator's approval after the canary batch.
    #[serde(default)]
    pub require_approval: bool,
}
