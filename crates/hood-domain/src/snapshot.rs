//! A node's data directory kept in the object store (design §5): taken on
//! demand, on a schedule, restored onto the node or onto the new host of a
//! migration, and deleted with the node.

use crate::{NodeId, Timestamp};
use serde::{Deserialize, Serialize};

/// Where a snapshot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotState {
    /// Being packed on the node's host, or its chunks being sent.
    Uploading,
    /// Every chunk and the manifest are stored: it can be restored.
    Complete,
    /// Given up (`error` says why); its chunks are deleted.
    Failed,
}

impl SnapshotState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uploading => "uploading",
            Self::Complete => "complete",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "uploading" => Self::Uploading,
            "complete" => Self::Complete,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// One snapshot of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    pub node_id: NodeId,
    /// Unique per node; letters, digits, `-` and `_`.
    pub name: String,
    pub state: SnapshotState,
    /// Why it was taken: `manual`, `scheduled`.
    pub reason: String,
    /// The node's head height when it was taken (a restore starts there).
    pub head_height: Option<i64>,
    pub files: i64,
    pub raw_bytes: i64,
    pub compressed_bytes: i64,
    pub chunks_total: i64,
    /// Chunks stored so far (upload progress).
    pub chunks_done: i64,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

/// The object-store prefix of a node's snapshots (all of them: what a
/// termination deletes).
pub fn node_prefix(node: NodeId) -> String {
    format!("snapshots/{node}")
}

/// The object-store prefix of one snapshot.
pub fn snapshot_prefix(node: NodeId, name: &str) -> String {
    format!("snapshots/{node}/{name}")
}
