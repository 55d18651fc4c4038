//! Allocations' sandboxes: the allocation's command in its own PID, mount,
//! network, UTS and IPC namespaces (`unshare`), pinned to its cores
//! (`taskset`), its memory limited by a cgroup where the host has a
//! writable hierarchy, and only its GPUs visible. The process runtime
//! supervises it like any workload (logs, stop, recovery).
//!
//! The chain of programs (`sh` → `taskset` → `unshare` → `sh`, the
//! sandbox's PID 1 → the command) passes the command as argv all the way
//! (`"$@"`), so no argument is ever parsed by a shell.

use hood_agent::CommandError;
use hood_domain::workload::AllocationTask;
use hood_runtime::{RestartMode, RestartPolicy, StopSignal, WorkloadId, WorkloadSpec};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Joins the sandbox's cgroups, then runs the rest of its arguments.
pub(crate) const ENTER_CGROUPS: &str =
    r#"for f in $HOOD_CGROUP_PROCS; do echo $$ > "$f" || exit 97; done; exec "$@""#;
/// Inside the namespaces: the sandbox's PID 1. Names the host, brings up
/// loopback, runs the rest as its child and passes SIGTERM/SIGINT on (a
/// namespace's PID 1 ignores signals it has no handler for, and `unshare`
/// ignores them while it waits), then exits with the child's status.
const INSIDE: &str = concat!(
    r#"hostname "$HOOD_SANDBOX_HOSTNAME" || exit 98; ip link set lo up 2>/dev/null; "#,
    r#""$@" & child=$!; trap 'kill -TERM "$child" 2>/dev/null' TERM INT; "#,
    r#"wait "$child"; status=$?; "#,
    r#"while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done; exit "$status""#,
);
/// An allocation without a command idles until released.
const IDLE: &[&str] = &["sleep", "infinity"];

/// The runtime spec of `task`'s sandbox; `cgroup_procs` are the
/// `cgroup.procs` files it joins before anything else runs.
pub fn spec(task: &AllocationTask, cgroup_procs: &[PathBuf]) -> Result<WorkloadSpec, CommandError> {
    if task.cores.is_empty() {
        return Err(CommandError("an allocation needs at least one core".into()));
    }
    // Started without them, the sandbox would see no GPU at all while its
    // slices are paid for: refused, so the allocation fails (never
    // active, never charged) and its placement is freed.
    if !task.mig.is_empty() {
        let slices: Vec<String> = task
            .mig
            .iter()
            .map(|m| format!("{} on GPU {} at slot {}", m.profile, m.gpu, m.start))
            .collect();
        return Err(CommandError(format!(
            "MIG slices ({}) cannot be provided: this agent does not create MIG instances yet",
            slices.join(", ")
        )));
    }
    let id = WorkloadId::new(task.workload_id()).map_err(|e| CommandError(e.to_string()))?;
    let cores: Vec<String> = task.cores.iter().map(u32::to_string).collect();
    let command: Vec<String> = if task.command.is_empty() {
        IDLE.iter().map(|s| (*s).to_owned()).collect()
    } else {
        task.command.clone()
    };
    let mut args: Vec<String> = [
        "-c",
        ENTER_CGROUPS,
        "hood-sandbox",
        "taskset",
        "--cpu-list",
        &cores.join(","),
        "unshare",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "--net",
        "--uts",
        "--ipc",
        "--",
        "/bin/sh",
        "-c",
        INSIDE,
        "hood-sandbox-init",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(command);
    let mut spec = WorkloadSpec::new(id, "/bin/sh");
    spec.args = args;
    spec.env
        .insert("HOOD_ALLOCATION_ID".into(), task.allocation_id.to_string());
    spec.env
        .insert("HOOD_SANDBOX_HOSTNAME".into(), task.hostname());
    // Empty hides every GPU from CUDA.
    spec.env.insert(
        "CUDA_VISIBLE_DEVICES".into(),
        task.gpus
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
    );
    spec.env.insert(
        "HOOD_CGROUP_PROCS".into(),
        cgroup_procs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
    );
    // The allocation's command ending ends it: the control plane decides
    // what happens next, not a restart loop.
    spec.restart = RestartPolicy {
        mode: RestartMode::Never,
        ..RestartPolicy::default()
    };
    spec.stop_signal = StopSignal::Term;
    spec.stop_grace = Duration::from_secs(10);
    Ok(spec)
}

/// How much CPU each sandbox used between two reports: the CPU time of
/// its process tree (what exited counts in its reaper) over the wall time
/// between samples, in cores. What the control plane's idle policy reads.
#[derive(Default)]
pub struct CpuMeter {
    last: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, u64)>>,
}

impl CpuMeter {
    /// Cores used by `workload` (whose supervised process is `pid`) since
    /// the last sample; `None` on the first sample or when the samples are
    /// too close to tell.
    pub fn sample(&self, workload: &str, pid: u32) -> Option<f64> {
        let ticks = hood_runtime::proc::tree_cpu_ticks(i32::try_from(pid).ok()?);
        let now = std::time::Instant::now();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous = last.insert(workload.to_owned(), (now, ticks));
        let (at, before) = previous?;
        let wall = now.duration_since(at).as_secs_f64();
        if wall < 0.2 {
            // Keep the older sample as the base of the next.
            last.insert(workload.to_owned(), (at, before));
            return None;
        }
        let seconds =
            ticks.saturating_sub(before) as f64 / hood_runtime::proc::TICKS_PER_SECOND as f64;
        Some(seconds / wall)
    }

    /// Forgets sandboxes that are no longer running.
    pub fn retain(&self, running: &std::collections::HashSet<String>) {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|w, _| running.contains(w));
    }
}

/// Where cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Where an allocation's cgroup is, in either layout (v2, then v1's
/// `memory` controller).
fn cgroup_dirs(root: &Path, workload: &str) -> [PathBuf; 2] {
    [
        root.join("hood").join(workload),
        root.join("memory").join("hood").join(workload),
    ]
}

/// The allocation's memory cgroup under `root` (v2 when `root` is a
/// unified hierarchy, else v1's `memory` controller), limited to
/// `memory_mib`. `None` when the host offers no writable hierarchy: the
/// sandbox then runs without a memory limit, and says so.
pub fn memory_cgroup(root: &Path, workload: &str, memory_mib: u64) -> Option<PathBuf> {
    let bytes = memory_mib.saturating_mul(1024 * 1024).to_string();
    let (dir, limit_file) = if root.join("cgroup.controllers").exists() {
        (root.join("hood").join(workload), "memory.max")
    } else {
        (
            root.join("memory").join("hood").join(workload),
            "memory.limit_in_bytes",
        )
    };
    let made =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(limit_file), &bytes));
    match made {
        Ok(()) => Some(dir),
        Err(e) => {
            tracing::warn!(workload, dir = %dir.display(), error = %e,
                "no memory cgroup for the sandbox: it runs without a memory limit");
            let _ = std::fs::remove_dir(&dir);
            None
        }
    }
}

/// The `cgroup.procs` files of the allocation's cgroups that exist (what a
/// process joining the sandbox later, a terminal's shell, joins).
pub fn existing_cgroup_procs(root: &Path, workload: &str) -> Vec<PathBuf> {
    cgroup_dirs(root, workload)
        .into_iter()
        .map(|dir| dir.join("cgroup.procs"))
        .filter(|procs| procs.exists())
        .collect()
}

/// The default hierarchy root.
pub fn cgroup_root() -> &'static Path {
    Path::new(CGROUP_ROOT)
}

/// Removes the allocation's cgroup (either layout) once its processes are
/// gone.
pub fn remove_cgroup(root: &Path, workload: &str) {
    for dir in cgroup_dirs(root, workload) {
        if let Err(e) = std::fs::remove_dir(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e,
                    "could not remove a sandbox cgroup");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hood_domain::AllocationId;

    fn task(command: &[&str]) -> AllocationTask {
        AllocationTask {
            allocation_id: "00000000-0000-0000-0000-000000000000"
                .parse::<AllocationId>()
                .unwrap(),
            cores: vec![2, 3],
            memory_mib: 512,
            gpus: vec![],
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            mig: vec![],
            lease_until_ms: None,
            container: None,
        }
    }

    #[test]
    fn the_command_travels_as_argv_after_the_sandbox_chain() {
        let s = spec(&task(&["echo", "a b; rm -rf /"]), &[]).unwrap();
        assert_eq!(s.executable, PathBuf::from("/bin/sh"));
        let tail = &s.args[s.args.len() - 2..];
        assert_eq!(tail, ["echo", "a b; rm -rf /"]);
        let pinned = s.args.iter().position(|a| a == "--cpu-list").unwrap();
        assert_eq!(s.args[pinned + 1], "2,3");
        for ns in [
            "--pid",
            "--net",
            "--uts",
            "--ipc",
            "--mount-proc",
            "--kill-child",
        ] {
            assert!(s.args.iter().any(|a| a == ns), "{ns}");
        }
        assert_eq!(s.env["CUDA_VISIBLE_DEVICES"], "");
        assert_eq!(s.env["HOOD_SANDBOX_HOSTNAME"], "alloc-000000000000");
        assert_eq!(s.restart.mode, RestartMode::Never);
    }

    #[test]
    fn no_command_idles_and_no_cores_is_refused() {
        let s = spec(&task(&[]), &[]).unwrap();
        assert_eq!(&s.args[s.args.len() - 2..], ["sleep", "infinity"]);
        let mut none = task(&[]);
        none.cores.clear();
        assert!(spec(&none, &[]).is_err());
    }

    #[test]
    fn mig_slices_are_refused_rather_than_run_without_a_gpu() {
        let mut t = task(&[]);
        t.mig = vec![hood_domain::workload::MigSlice {
            gpu: 0,
            profile: "1g.18gb".into(),
            start: 4,
        }];
        let e = spec(&t, &[]).unwrap_err();
        assert!(e.0.contains("1g.18gb on GPU 0 at slot 4"), "{}", e.0);
        // A task from before the field existed carries none.
        let old =
            serde_json::json!({"allocation_id": t.allocation_id, "cores": [1], "memory_mib": 64});
        let parsed: AllocationTask = serde_json::from_value(old).unwrap();
        assert!(parsed.mig.is_empty());
    }

    #[test]
    fn a_memory_cgroup_is_made_under_a_writable_root() {
        let root = tempfile::tempdir().unwrap();
        // v1 layout (no cgroup.controllers): the memory controller's dir.
        std::fs::create_dir(root.path().join("memory")).unwrap();
        let dir = memory_cgroup(root.path(), "alloc-x", 512).unwrap();
        assert_eq!(dir, root.path().join("memory/hood/alloc-x"));
        let limit = std::fs::read_to_string(dir.join("memory.limit_in_bytes")).unwrap();
        assert_eq!(limit, (512u64 * 1024 * 1024).to_string());
        // v2: memory.max under the unified root.
        std::fs::write(root.path().join("cgroup.controllers"), "memory").unwrap();
        let dir = memory_cgroup(root.path(), "alloc-y", 1).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.max")).unwrap(),
            "1048576"
        );
        // Not writable: none, and no error.
        assert!(memory_cgroup(Path::new("/proc/hood-no-such"), "alloc-z", 1).is_none());
        // Removal takes the (empty) directories of either layout.
        std::fs::remove_file(dir.join("memory.max")).unwrap();
        std::fs::remove_file(
            root.path()
                .join("memory/hood/alloc-x/memory.limit_in_bytes"),
        )
        .unwrap();
        remove_cgroup(root.path(), "alloc-y");
        remove_cgroup(root.path(), "alloc-x");
        assert!(!dir.exists());
        assert!(!root.path().join("memory/hood/alloc-x").exists());
    }
}
