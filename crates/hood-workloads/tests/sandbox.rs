//! An allocation's sandbox, for real on this machine: the command sees its
//! own host name, runs as PID 1 of its own PID namespace, sees only its
//! pinned cores and only a loopback interface, sits in its memory cgroup,
//! and is gone (with its cgroup) once removed. Needs root and `unshare`
//! (util-linux); elsewhere it says loudly that it was skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hood_domain::workload::AllocationTask;
use hood_domain::AllocationId;
use hood_runtime::{ProcessRuntime, ProcessRuntimeConfig, WorkloadId, WorkloadRuntime};
use hood_workloads::sandbox;
use std::time::{Duration, Instant};

fn can_sandbox() -> bool {
    std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--net", "--uts", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_isolates_pid_host_name_network_cores_and_memory() {
    if !can_sandbox() {
        eprintln!("SKIPPED the_sandbox_isolates…: this user cannot create namespaces (needs root and unshare)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(ProcessRuntimeConfig::new(dir.path().join("runtime"))).unwrap();
    let allocation_id = AllocationId::from_uuid(uuid::Uuid::now_v7());
    // Whatever happens, nothing of this sandbox outlives the test.
    let _guard = KillMatching(allocation_id.to_string());
    let task = AllocationTask {
        allocation_id,
        cores: vec![0],
        memory_mib: 256,
        gpus: vec![],
        command: vec![
            "sh".into(),
            "-c".into(),
            // What the sandbox sees, one fact per line; then it idles.
            format!(
                ": {allocation_id}; echo host=$(hostname); \
             echo init=$(tr '\\0' ' ' < /proc/1/cmdline | cut -c1-80); \
             grep Cpus_allowed_list /proc/self/status; \
             echo links=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' '); \
             echo procs=$(ls /proc | grep -c '^[0-9]'); \
             echo cgroup=$(grep -E 'memory' /proc/self/cgroup | head -1); \
             echo gpus=[$CUDA_VISIBLE_DEVICES]; \
             exec sleep 600"
            ),
        ],
        mig: vec![],
        lease_until_ms: None,
        container: None,
    };
    let workload = task.workload_id();
    let cgroup = sandbox::memory_cgroup(sandbox::cgroup_root(), &workload, task.memory_mib);
    let procs: Vec<_> = cgroup.iter().map(|d| d.join("cgroup.procs")).collect();
    let spec = sandbox::spec(&task, &procs).unwrap();
    let id = WorkloadId::new(workload.clone()).unwrap();
    let started = rt.start(spec).await.unwrap();
    assert!(started.pid.is_some());

    let deadline = Instant::now() + Duration::from_secs(20);
    let lines = loop {
        let lines = rt.tail_logs(&id, 50).await.unwrap();
        if lines.iter().any(|l| l.starts_with("gpus=")) {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "the sandbox said nothing: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let said = |key: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no `{key}` in {lines:?}"))
            .trim()
            .to_owned()
    };
    assert_eq!(said("host="), task.hostname());
    assert_ne!(said("host="), hostname_here(), "its own UTS namespace");
    assert!(
        said("init=").starts_with("/bin/sh -c hostname"),
        "PID 1 is the sandbox's own init: {lines:?}"
    );
    assert_eq!(said("Cpus_allowed_list:"), "0", "pinned to its core");
    assert_eq!(said("links="), "lo", "a network namespace of its own");
    let procs_seen: u32 = said("procs=").parse().unwrap();
    // Its init, its shell and the pipeline counting: a handful, where the
    // host has many.
    let host_procs = std::fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        })
        .count();
    assert!(
        procs_seen <= 6 && host_procs > 6,
        "sees only its own processes: {procs_seen} (the host: {host_procs})"
    );
    assert_eq!(said("gpus="), "[]", "no GPU visible");
    if let Some(dir) = &cgroup {
        assert!(
            said("cgroup=").contains(&workload),
            "in its memory cgroup: {lines:?}"
        );
        let limit = std::fs::read_to_string(
            ["memory.limit_in_bytes", "memory.max"]
                .iter()
                .map(|f| dir.join(f))
                .find(|p| p.exists())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(limit.trim(), (256u64 * 1024 * 1024).to_string());
    } else {
        eprintln!("NOTE: no writable cgroup hierarchy here: memory limit not checked");
    }

    // Removal ends every process of the sandbox and its cgroup, promptly:
    // SIGTERM reaches the command through the sandbox's init.
    let pid = started.pid.unwrap();
    let stopping = Instant::now();
    rt.remove(&id, true).await.unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "stopped by SIGTERM, not by the grace period's SIGKILL: {:?}",
        stopping.elapsed()
    );
    sandbox::remove_cgroup(sandbox::cgroup_root(), &workload);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the sandbox's process is gone"
    );
    let leftovers = std::process::Command::new("pgrep")
        .args(["-af", &allocation_id.to_string()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&leftovers.stdout).trim().is_empty(),
        "nothing of the sandbox runs on: {}",
        String::from_utf8_lossy(&leftovers.stdout)
    );
    if let Some(dir) = cgroup {
        assert!(!dir.exists(), "its cgroup is removed");
    }
}

/// Kills every process whose command line names the sandbox.
struct KillMatching(String);

impl Drop for KillMatching {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill")
            .args(["-9", "-f", &self.0])
            .status();
    }
}

fn hostname_here() -> String {
    String::from_utf8(
        std::process::Command::new("hostname")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned()
}
