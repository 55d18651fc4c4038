//! Managed nodes: the record the control plane keeps for each customer
//! node, and its event history.

use crate::lifecycle::{ApplicationHealth, NodeState, SyncStatus};
use crate::{HostId, NodeId, OrgId, Timestamp};
use serde::{Deserialize, Serialize};

/// A managed blockchain node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: NodeId,
    pub org_id: OrgId,
    /// Unique per organization; a slug.
    pub name: String,
    /// Chain profile name (`chains/{chain}`).
    pub chain: String,
    /// Node type of the profile (`full`, `archive`, `dev`, …).
    pub node_type: String,
    /// Host provider (`local`, `hetzner`, …).
    pub provider: String,
    pub region: String,
    pub state: NodeState,
    pub sync_status: SyncStatus,
    pub app_health: ApplicationHealth,
    /// Where it runs now; `None` before placement and after teardown.
    pub host_id: Option<HostId>,
    /// JSON-RPC endpoint of the running client.
    pub rpc_endpoint: Option<String>,
    /// Latest observed chain head.
    pub head_height: Option<i64>,
    /// Version of the client binary running.
    pub binary_version: Option<String>,
    /// Why the node is `failed` (or why the last workflow failed).
    pub failure_reason: Option<String>,
    /// Optimistic-locking version: every write names the version it read.
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One entry of a node's history (state changes and workflow milestones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEvent {
    pub node_id: NodeId,
    /// Monotonic per store; orders the history.
    pub seq: i64,
    pub at: Timestamp,
    /// `created`, `state_changed`, `placed`, `progress`, `observed`, …
    pub kind: String,
    pub from_state: Option<NodeState>,
    pub to_state: Option<NodeState>,
    pub message: String,
}

/// A node's key material at rest: the material is encrypted under a
/// per-node data key, and that data key is sealed under the installation's
/// master key (envelope encryption). Plaintext never reaches the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeKeyMaterial {
    pub node_id: NodeId,
    /// What the material is (`p2p_nodekey`, …).
    pub kind: String,
    /// Data key sealed under the master key (AES-256-GCM).
    pub sealed_data_key: Vec<u8>,
    /// Key material sealed under the data key (AES-256-GCM).
    pub ciphertext: Vec<u8>,
    /// Public fingerprint (SHA-256 hex of the material), safe to show.
    pub fingerprint: String,
    pub created_at: Timestamp,
}
