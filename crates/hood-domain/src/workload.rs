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
    /// Copy a stopped node's data directory aside under a name.
    pub const SNAPSHOT_DATA: &str = "snapshot_data";
    /// Replace a stopped node's data directory with a named copy.
    pub const RESTORE_DATA: &str = "restore_data";
    /// Sample every collector and the sync probe of a workload once, now,
    /// and answer the fresh [`WorkloadObservation`] (an upgrade's checks).
    pub const OBSERVE_WORKLOAD: &str = "observe_workload";
    /// Pack a stopped node's data directory into a local archive of
    /// checksummed chunks ([`DataSnapshotRef`] → [`PackedSnapshot`]).
    pub const PACK_SNAPSHOT: &str = "pack_snapshot";
    /// Send a packed archive's chunks the control plane lacks, then its
    /// manifest ([`DataSnapshotRef`] → [`UploadedSnapshot`]); resumable.
    pub const UPLOAD_SNAPSHOT: &str = "upload_snapshot";
    /// Replace a node's data directory (stopped, or not started on this
    /// host yet) with a snapshot from the control plane
    /// ([`DataSnapshotRef`] → [`RestoredSnapshot`]).
    pub const RESTORE_SNAPSHOT: &str = "restore_snapshot";
    /// Run an allocation's sandbox ([`AllocationTask`] →
    /// [`StartedAllocation`]); idempotent.
    pub const START_ALLOCATION: &str = "start_allocation";
    /// Stop an allocation's sandbox and remove it ([`AllocationRef`]);
    /// stopping one that is not there succeeds.
    pub const STOP_ALLOCATION: &str = "stop_allocation";
    /// The last lines an allocation's sandbox wrote
    /// ([`AllocationLogsRequest`] → [`AllocationLogs`]).
    pub const TAIL_ALLOCATION_LOGS: &str = "tail_allocation_logs";
    /// Extend the leases of allocations running on the host
    /// ([`AllocationLeases`]); signed.
    pub const RENEW_ALLOCATION_LEASES: &str = "renew_allocation_leases";
    /// Signed: start a shell on a PTY inside an allocation's sandbox and
    /// dial the gateway's `Terminal` stream for it.
    pub const OPEN_TERMINAL: &str = "open_terminal";
    /// A node's process logs with cursors to follow them
    /// ([`NodeLogsRequest`] → [`NodeLogs`]).
    pub const FOLLOW_NODE_LOGS: &str = "follow_node_logs";
}

/// What the agent runs for an allocation: its placement on this host and
/// its command, in a sandbox of its own (PID, mount, network, UTS and IPC
/// namespaces; pinned to its cores; its memory limited by a cgroup where
/// the host offers one; only its GPUs visible).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationTask {
    pub allocation_id: crate::AllocationId,
    /// Core numbers the sandbox is pinned to.
    pub cores: Vec<u32>,
    pub memory_mib: u64,
    /// Whole GPUs by index (the sandbox's `CUDA_VISIBLE_DEVICES`; empty
    /// hides every GPU).
    #[serde(default)]
    pub gpus: Vec<u32>,
    /// MIG slices placed for it: each must become a MIG instance on its
    /// GPU at its placement before the sandbox may start.
    #[serde(default)]
    pub mig: Vec<MigSlice>,
    /// argv; empty runs an idle sandbox.
    #[serde(default)]
    pub command: Vec<String>,
    /// Unix ms until which the sandbox may run unless the control plane
    /// renews the lease: a host cut off from it stops the sandbox then.
    /// `None`: no lease.
    #[serde(default)]
    pub lease_until_ms: Option<i64>,
    /// Run as a container on the host's engine instead of a bare sandbox
    /// (the allocation named an image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerTask>,
}

/// An allocation's container: the image and how to run it. Its cores,
/// memory and command are the allocation's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerTask {
    /// An image reference in the host's store (`hood/app:1`).
    pub image: String,
    /// Where to load the image from when the host lacks it: an image
    /// archive (OCI layout or `docker save`) in the artifact store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArtifactRef>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Container ports published on the host's address (TCP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    #[serde(default)]
    pub restart: ContainerRestart,
}

/// When the host's engine restarts a container whose command ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContainerRestart {
    /// Never: its end ends the allocation.
    #[default]
    Never,
    /// After a non-zero exit, a few times.
    OnFailure,
    /// Always, until stopped.
    UnlessStopped,
}

/// One MIG slice of an allocation: the GPU, the profile (`1g.18gb`) and
/// the first of its placement slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigSlice {
    pub gpu: u32,
    pub profile: String,
    pub start: u8,
}

impl AllocationTask {
    /// The sandbox's workload id on the host.
    pub fn workload_id(&self) -> String {
        allocation_workload_id(self.allocation_id)
    }

    /// The sandbox's host name: `alloc-` and the id's last 12 hex digits
    /// (the random part of a UUIDv7).
    pub fn hostname(&self) -> String {
        let simple = self.allocation_id.0.simple().to_string();
        format!("alloc-{}", &simple[simple.len() - 12..])
    }
}

/// The workload id of an allocation's sandbox.
pub fn allocation_workload_id(id: crate::AllocationId) -> String {
    format!("alloc-{id}")
}

/// Names an allocation on its host (`stop_allocation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRef {
    pub allocation_id: crate::AllocationId,
}

/// A terminal session into an allocation's sandbox (`open_terminal`): the
/// shell joins the sandbox's namespaces, cgroups and cores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalTask {
    pub allocation_id: crate::AllocationId,
    /// The hub's session the agent's stream names.
    pub session_id: uuid::Uuid,
    /// The allocation's cores (the shell is pinned to them too).
    pub cores: Vec<u32>,
    pub cols: u16,
    pub rows: u16,
    /// What runs on the terminal (argv); empty: an interactive shell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

/// One allocation's lease, until Unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationLease {
    pub allocation_id: crate::AllocationId,
    pub until_ms: i64,
}

/// The leases a host's allocations are renewed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationLeases {
    pub leases: Vec<AllocationLease>,
}

/// Where a follower of a log has read up to: the live log file it read
/// (its inode: a rotation is noticed) and the byte offset just after the
/// last whole line it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCursor {
    pub file: u64,
    pub offset: u64,
}

/// Asks for a node's process logs: the last `lines` of each, or for the
/// processes in `after` the lines written since their cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLogsRequest {
    pub workload_id: String,
    pub lines: u32,
    #[serde(default)]
    pub after: BTreeMap<String, LogCursor>,
}

/// One process's lines and where to go on from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessLogs {
    pub lines: Vec<String>,
    pub cursor: LogCursor,
}

/// A node's process logs, by process name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLogs {
    pub processes: BTreeMap<String, ProcessLogs>,
}

/// Asks for an allocation's output: the last `lines` lines, or with
/// `after` the lines written since that cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationLogsRequest {
    pub allocation_id: crate::AllocationId,
    pub lines: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<LogCursor>,
}

/// The last lines an allocation's sandbox wrote (stdout and stderr, in
/// order), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationLogs {
    pub allocation_id: crate::AllocationId,
    pub lines: Vec<String>,
    /// Where to go on from to follow the log (absent when the host's
    /// runtime cannot follow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<LogCursor>,
}

/// What `start_allocation` set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedAllocation {
    pub workload_id: String,
    pub pid: Option<u32>,
    pub hostname: String,
    /// Whether a memory cgroup limits the sandbox (hosts without a
    /// writable cgroup hierarchy run it without one).
    pub memory_limited: bool,
    /// A container's published ports: container port → host port.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<u16, u16>,
}

/// A snapshot name: 1 to 128 letters, digits, `-` and `_` (it becomes a
/// file and an object name).
pub fn valid_snapshot_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
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
    /// The chain's observation collectors, sampled by the agent and reported
    /// in every heartbeat. Default empty: plans sent by an older control
    /// plane (and records an older agent wrote) still parse.
    #[serde(default)]
    pub collectors: Vec<CollectorPlan>,
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
    /// Method returning the peer count as a hex quantity (`net_peerCount`);
    /// `None` when the chain profile does not ask for it.
    #[serde(default)]
    pub peers_method: Option<String>,
}

/// One collector the agent runs for a workload (from the chain's
/// `observation.yaml`). Its latest [`Sample`] is reported by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectorPlan {
    /// Collector name; the key of its sample and its CEL variable.
    pub name: String,
    /// Seconds between samples.
    pub interval_s: u32,
    /// Seconds one sample may take before it is recorded as an error.
    pub timeout_s: u32,
    /// What to query.
    pub source: CollectorSource,
}

/// What a collector queries. Ports are names from [`WorkloadPlan::ports`];
/// the agent always dials them on loopback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CollectorSource {
    /// A JSON-RPC call over HTTP POST; the sample's `result` is the
    /// response's `result`, a JSON-RPC error becomes `error`.
    JsonRpc {
        port: String,
        method: String,
        #[serde(default)]
        params: Vec<serde_json::Value>,
        /// URL path; `/` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// Template of a `user:password` cookie file for HTTP basic auth
        /// (bitcoind); read by the agent at each sample, never reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cookie_file: Option<String>,
    },
    /// An HTTP GET; the sample's `result` is `{status, body}` with the body
    /// parsed as JSON (or null).
    Http { port: String, path: String },
    /// A Prometheus text scrape; the sample's `result` maps metric name to
    /// value, summed over label sets.
    Prometheus { port: String, path: String },
    /// Host statistics of the node directory's filesystem and the machine.
    System,
}

/// What the agent reports about one workload in every heartbeat
/// (`host_workloads.observation`). The agent samples in the background;
/// the heartbeat only copies the latest values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadObservation {
    /// When the agent last updated it (ms since epoch).
    pub at_ms: i64,
    /// Latest sync probe; `None` when the plan has none.
    #[serde(default)]
    pub sync: Option<SyncSample>,
    /// Latest sample of each collector, by collector name.
    #[serde(default)]
    pub samples: BTreeMap<String, Sample>,
}

/// One round of the sync probe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncSample {
    /// When it was taken (ms since epoch).
    pub at_ms: i64,
    /// The node says it is catching up (`eth_syncing` not `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syncing: Option<bool>,
    /// Local head height.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<i64>,
    /// Since when (ms since epoch, the agent's clock) the agent has seen
    /// this head: the head's age travels with the report, so the health
    /// role need not store every block to know a head has stalled. Absent
    /// from agents that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_since_ms: Option<i64>,
    /// Connected peers, when the probe asks for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<i64>,
    /// What failed in this round (no secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SyncSample {
    /// This sample, stamped with since when its head has been seen, given
    /// the sample before it: the same head keeps the earlier stamp (or the
    /// earlier sample's time), a new head is seen from now, no head has no
    /// stamp (and the next head read is seen anew: a stall is then
    /// noticed one age later, never sooner).
    pub fn after(mut self, previous: Option<&SyncSample>) -> SyncSample {
        self.head_since_ms = match (self.head, previous) {
            (None, _) => None,
            (Some(head), Some(p)) if p.head == Some(head) => {
                Some(p.head_since_ms.unwrap_or(p.at_ms))
            }
            (Some(_), _) => Some(self.at_ms),
        };
        self
    }
}

/// The latest value of one collector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When it was taken (ms since epoch).
    pub at_ms: i64,
    /// The value (see [`CollectorSource`]); `None` when the sample failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why the sample failed: transport problems as text, JSON-RPC error
    /// objects as the JSON text `{"code":…,"message":…}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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

/// `stop_workload`, `remove_workload`, `probe_sync`, `tail_logs`,
/// `observe_workload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadRef {
    pub workload_id: String,
    /// `tail_logs`: how many lines; `remove_workload`: ignored.
    #[serde(default)]
    pub lines: Option<u32>,
}

/// `snapshot_data` and `restore_data`: a node's data directory copied
/// aside (before a `forward_only` upgrade) and put back (its revert).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSnapshotRef {
    pub workload_id: String,
    /// A name of letters, digits, `-` and `_`.
    pub snapshot: String,
}

/// What `snapshot_data` and `restore_data` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSnapshotDone {
    pub snapshot: String,
    pub files: u64,
    pub bytes: u64,
}

/// What `pack_snapshot` wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedSnapshot {
    pub snapshot: String,
    pub files: u64,
    pub raw_bytes: u64,
    pub compressed_bytes: u64,
    pub chunks: u32,
}

/// What `upload_snapshot` sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedSnapshot {
    pub snapshot: String,
    /// Chunks sent by this command…
    pub sent: u32,
    /// …and those the control plane held already (an earlier attempt).
    pub skipped: u32,
    pub bytes_sent: u64,
    /// Times the upload was interrupted and resumed by this command.
    #[serde(default)]
    pub interruptions: u32,
}

/// What `restore_snapshot` put in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredSnapshot {
    pub snapshot: String,
    pub files: u64,
    pub raw_bytes: u64,
}

/// The agent's answer to `probe_sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    pub synced: bool,
    pub head: Option<i64>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_head_keeps_the_time_it_was_first_seen() {
        let sample = |at_ms, head| SyncSample {
            at_ms,
            head,
            ..SyncSample::default()
        };
        let first = sample(1_000, Some(7)).after(None);
        assert_eq!(first.head_since_ms, Some(1_000));
        let same = sample(2_000, Some(7)).after(Some(&first));
        assert_eq!(same.head_since_ms, Some(1_000));
        let again = sample(3_000, Some(7)).after(Some(&same));
        assert_eq!(again.head_since_ms, Some(1_000), "still the first sighting");
        let moved = sample(4_000, Some(8)).after(Some(&again));
        assert_eq!(moved.head_since_ms, Some(4_000));
        // An agent that predates the stamp: its last sample already had
        // the head.
        let old = sample(5_000, Some(8));
        assert_eq!(
            sample(6_000, Some(8)).after(Some(&old)).head_since_ms,
            Some(5_000)
        );
        let failed = sample(7_000, None).after(Some(&moved));
        assert_eq!(failed.head_since_ms, None);
        // After a failed round the head is seen anew.
        assert_eq!(
            sample(8_000, Some(8)).after(Some(&failed)).head_since_ms,
            Some(8_000)
        );
    }

    #[test]
    fn plans_without_observation_fields_still_parse() {
        let old = serde_json::json!({
            "workload_id": "w", "node_id": "n", "node_name": "x", "ports": ["rpc"],
            "processes": [], "files": [], "keys": [],
            "sync": {"port": "rpc", "syncing_method": "eth_syncing", "head_method": "eth_blockNumber"}
        });
        let plan: WorkloadPlan = serde_json::from_value(old).unwrap();
        assert!(plan.collectors.is_empty());
        assert_eq!(plan.sync.unwrap().peers_method, None);
    }

    #[test]
    fn collector_sources_are_tagged() {
        let c = CollectorPlan {
            name: "chain_id".into(),
            interval_s: 60,
            timeout_s: 5,
            source: CollectorSource::JsonRpc {
                port: "rpc".into(),
                method: "eth_chainId".into(),
                params: vec![],
                path: None,
                cookie_file: None,
            },
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["source"]["kind"], "json_rpc");
        assert_eq!(serde_json::from_value::<CollectorPlan>(v).unwrap(), c);
        let sys: CollectorSource =
            serde_json::from_value(serde_json::json!({"kind": "system"})).unwrap();
        assert_eq!(sys, CollectorSource::System);
    }

    #[test]
    fn observation_omits_absent_values() {
        let mut obs = WorkloadObservation {
            at_ms: 5,
            sync: Some(SyncSample {
                at_ms: 4,
                head: Some(16),
                ..SyncSample::default()
            }),
            ..WorkloadObservation::default()
        };
        obs.samples.insert(
            "block_number".into(),
            Sample {
                at_ms: 3,
                result: None,
                error: Some("boom".into()),
            },
        );
        let v = serde_json::to_value(&obs).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "at_ms": 5,
                "sync": {"at_ms": 4, "head": 16},
                "samples": {"block_number": {"at_ms": 3, "error": "boom"}}
            })
        );
        assert_eq!(
            serde_json::from_value::<WorkloadObservation>(v).unwrap(),
            obs
        );
    }
}
