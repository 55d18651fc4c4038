//! Payloads of the agent commands that run a node's workload. The
//! orchestrator builds them from the chain profile; the agent executes
//! them. Pure data: both ends share one definition.
//!
//! Templates (`{{rpc_port}}`, `{{data_dir}}`, …) are expanded by the agent,
//! which owns the host's directories and allocates its ports.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Command kinds understood by the agent.
pub mod kinds {
    /// Install artifacts, write files and key material, start processes.
    pub const START_WORKLOAD: &str = "start_workload";
    /// Stop processes, keep data.
    pub const STOP_WORKLOAD: &str = "stop_workload";
    /// Stop processes and delete the workload's files (keys wiped).
    pub const REMOVE_WORKLOAD: &str = "remove_workload";
    /// Ask the workload's node whether it is synced and at which head.
    pub const PROBE_SYNC: &str = "probe_sync";
    /// Last lines of a process's log.
    pub const TAIL_LOGS: &str = "tail_logs";
}

/// An artifact to fetch from the control plane's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    pub name: String,
    pub version: String,
    /// Hex SHA-256 the bytes must have; the agent refuses anything else.
    pub sha256: String,
    /// Executable inside an archive; `None` when the artifact is the executable.
    pub entrypoint: Option<String>,
}

/// One supervised process of a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessPlan {
    pub name: String,
    pub artifact: ArtifactRef,
    /// Argument templates.
    pub args: Vec<String>,
    /// Environment templates.
    pub env: BTreeMap<String, String>,
    /// `SIGTERM`, `SIGINT` or `SIGQUIT`.
    pub stop_signal: String,
    pub stop_timeout_s: u32,
}

/// A file rendered before start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePlan {
    /// Path template, under `{{data_dir}}`, `{{config_dir}}` or `{{secrets_dir}}`.
    pub path: String,
    /// Octal mode (`0644`).
    pub mode: String,
    pub content: String,
}

/// Key material sealed under the node's data key. The agent fetches the
/// data key over mTLS, opens the material in memory and writes it (0600)
/// under the secrets directory only while the workload runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPlan {
    pub kind: String,
    /// Path template, under `{{secrets_dir}}`.
    pub path: String,
    /// Base64 of the ciphertext (AES-256-GCM under the data key).
    pub ciphertext_b64: String,
    /// Written as lowercase hex (`hex`) or raw bytes (`raw`).
    pub encoding: String,
}

/// `start_workload`: everything needed to run one node on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadPlan {
    /// Workload id on the host (the node id).
    pub workload_id: String,
    pub node_id: String,
    pub node_name: String,
    /// Ports to allocate by name (`rpc`, `p2p`, …); exposed as `{{name_port}}`.
    pub ports: Vec<String>,
    pub processes: Vec<ProcessPlan>,
    pub files: Vec<FilePlan>,
    pub keys: Vec<KeyPlan>,
    /// JSON-RPC probes for `probe_sync` (port name and methods).
    pub sync: Option<SyncProbe>,
}

/// How to ask the node whether it is synced, EVM style.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncProbe {
    /// Port whose JSON-RPC answers the probes.
    pub port: String,
    /// Method whose result is `false` when synced (`eth_syncing`).
    pub syncing_method: String,
    /// Method returning the head as a hex quantity (`eth_blockNumber`).
    pub head_method: String,
}

/// The agent's answer to `start_workload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadStarted {
    pub workload_id: String,
    /// Allocated ports by name.
    pub ports: BTreeMap<String, u16>,
    /// `http://ADDR:PORT` of the `rpc` port, when there is one.
    pub rpc_endpoint: Option<String>,
}

/// `stop_workload`, `remove_workload`, `probe_sync`, `tail_logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadRef {
    pub workload_id: String,
    /// `tail_logs`: how many lines; `remove_workload`: ignored.
    #[serde(default)]
    pub lines: Option<u32>,
}

/// The agent's answer to `probe_sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    pub synced: bool,
    pub head: Option<i64>,
}
