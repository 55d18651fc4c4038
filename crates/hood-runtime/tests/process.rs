#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `process` adapter against real processes (`/bin/sh` scripts).
//!
//! Every test owns a temporary root; its guard SIGKILLs every process that
//! carries that root in `HOOD_WORKLOAD_DIR` when the test ends, pass or fail.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hood_runtime::proc;
use hood_runtime::{
    LogLimits, ProcessRuntime, ProcessRuntimeConfig, RestartMode, RestartPolicy, RuntimeError,
    RuntimeEvent, RuntimeEventKind, StopSignal, WorkloadFile, WorkloadId, WorkloadRuntime,
    WorkloadSpec, WorkloadState, WorkloadStatus, WORKLOAD_DIR_ENV,
};
use tokio::sync::broadcast;

struct Env {
    rt: ProcessRuntime,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self::with_limits(LogLimits::default())
    }

    fn with_limits(log_limits: LogLimits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rt = ProcessRuntime::new(ProcessRuntimeConfig {
            root: dir.path().to_path_buf(),
            log_limits,
        })
        .unwrap();
        Self {
            root: rt.root().to_path_buf(),
            rt,
            _dir: dir,
        }
    }

    /// Live processes belonging to any workload of this test.
    fn processes(&self) -> Vec<i32> {
        marked_under(&self.root)
    }
}

fn marked_under(root: &std::path::Path) -> Vec<i32> {
    let root = root.to_string_lossy().into_owned();
    proc::processes_with_env(WORKLOAD_DIR_ENV, |v| v.starts_with(&root))
}

impl Drop for Env {
    fn drop(&mut self) {
        let root = self.root.clone();
        proc::kill_all_sync(|| marked_under(&root));
    }
}

fn id(s: &str) -> WorkloadId {
    WorkloadId::new(s).unwrap()
}

fn sh(name: &str, script: &str) -> WorkloadSpec {
    let mut s = WorkloadSpec::new(id(name), "/bin/sh");
    s.args = vec!["-c".into(), script.into()];
    s.stop_grace = Duration::from_secs(2);
    s.restart = policy(RestartMode::Never, 0, 100, 100);
    s
}

fn policy(mode: RestartMode, max: u32, initial_ms: u64, max_ms: u64) -> RestartPolicy {
    RestartPolicy {
        mode,
        max_restarts_in_window: max,
        window: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(initial_ms),
        backoff_max: Duration::from_millis(max_ms),
    }
}

fn alive(pid: i32) -> bool {
    proc::read_stat(pid).is_some_and(|s| s.is_live())
}

fn pid_of(s: &WorkloadStatus) -> i32 {
    i32::try_from(s.pid.expect("a pid")).unwrap()
}

async fn eventually<F: FnMut() -> bool>(what: &str, timeout: Duration, mut f: F) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_state(rt: &ProcessRuntime, w: &WorkloadId, state: WorkloadState) -> WorkloadStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = rt.status(w).await.unwrap().unwrap();
        if s.state == state {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {state:?}, last {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Events up to and including the next `Failed` (the status may say
/// `failed` a moment before the event is sent).
async fn until_failed(
    rx: &mut broadcast::Receiver<RuntimeEvent>,
    w: &WorkloadId,
) -> Vec<RuntimeEventKind> {
    let mut v = Vec::new();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a failed event")
            .unwrap();
        if &e.id != w {
            continue;
        }
        let done = matches!(e.kind, RuntimeEventKind::Failed { .. });
        v.push(e.kind);
        if done {
            return v;
        }
    }
}

fn drain(rx: &mut broadcast::Receiver<RuntimeEvent>) -> Vec<RuntimeEventKind> {
    let mut v = Vec::new();
    while let Ok(e) = rx.try_recv() {
        v.push(e.kind);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_then_stop_kills_grandchildren() {
    let env = Env::new();
    let w = id("tree");
    let s = env
        .rt
        .start(sh("tree", "sleep 1000 & sleep 1000 & wait"))
        .await
        .unwrap();
    assert_eq!(s.state, WorkloadState::Running);
    let pid = pid_of(&s);
    // The shell and both sleeps share the child's own process group.
    eventually(
        "three processes in the group",
        Duration::from_secs(5),
        || proc::group_members(pid).len() == 3,
    )
    .await;
    assert_ne!(
        proc::read_stat(pid).unwrap().pgrp,
        proc::read_stat(i32::try_from(std::process::id()).unwrap())
            .unwrap()
            .pgrp,
        "the workload must not share the agent's process group"
    );

    let stopped = env.rt.stop(&w, None).await.unwrap();
    assert_eq!(stopped.state, WorkloadState::Stopped);
    assert_eq!(stopped.pid, None);
    assert!(proc::group_members(pid).is_empty());
    assert!(env.processes().is_empty(), "left: {:?}", env.processes());
    // Stopping again is a no-op.
    assert_eq!(
        env.rt.stop(&w, None).await.unwrap().state,
        WorkloadState::Stopped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_descendants_that_left_the_group() {
    let env = Env::new();
    let w = id("escape");
    let s = env
        .rt
        .start(sh(
            "escape",
            r#"setsid sleep 1000 & echo $! > "$HOOD_DATA_DIR/escaped.pid"; sleep 1000"#,
        ))
        .await
        .unwrap();
    let pid = pid_of(&s);
    let file = env.rt.data_dir(&w).join("escaped.pid");
    eventually("escaped pid file", Duration::from_secs(5), || {
        fs::read_to_string(&file).is_ok_and(|t| t.ends_with('\n'))
    })
    .await;
    let escaped: i32 = fs::read_to_string(&file).unwrap().trim().parse().unwrap();
    eventually("setsid to take effect", Duration::from_secs(5), || {
        proc::read_stat(escaped).is_some_and(|s| s.pgrp == escaped)
    })
    .await;
    assert_ne!(proc::read_stat(escaped).unwrap().pgrp, pid);

    env.rt.stop(&w, None).await.unwrap();
    assert!(!alive(escaped), "escaped process survived stop");
    assert!(!alive(pid));
    assert!(env.processes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_backs_off_counts_restarts_and_gives_up() {
    let env = Env::new();
    let w = id("crashy");
    let mut rx = env.rt.subscribe();
    let mut spec = sh("crashy", "echo run; exit 3");
    spec.restart = policy(RestartMode::OnFailure, 3, 100, 400);
    let t0 = Instant::now();
    env.rt.start(spec).await.unwrap();
    let s = wait_state(&env.rt, &w, WorkloadState::Failed).await;
    let elapsed = t0.elapsed();

    assert_eq!(s.restarts, 3);
    assert_eq!(s.last_exit.unwrap().code, Some(3));
    assert!(
        s.last_error.as_deref().unwrap().contains("gave up"),
        "{s:?}"
    );
    assert_eq!(s.pid, None);
    // 100 + 200 + 400 ms of backoff at least.
    assert!(elapsed >= Duration::from_millis(700), "{elapsed:?}");

    let events = until_failed(&mut rx, &w).await;
    let delays: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            RuntimeEventKind::Restarting { delay_ms, .. } => Some(*delay_ms),
            _ => None,
        })
        .collect();
    assert_eq!(delays, vec![100, 200, 400]);
    let starts = events
        .iter()
        .filter(|e| matches!(e, RuntimeEventKind::Started { .. }))
        .count();
    assert_eq!(starts, 4);
    assert!(matches!(
        events.last(),
        Some(RuntimeEventKind::Failed { .. })
    ));

    let runs = env
        .rt
        .tail_logs(&w, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l == "run")
        .count();
    assert_eq!(runs, 4);
    // A failed workload can be started again, with a fresh restart budget.
    let again = env.rt.start(sh("crashy", "sleep 1000")).await.unwrap();
    assert_eq!(again.state, WorkloadState::Running);
    assert_eq!(again.restarts, 0);
    env.rt.stop(&w, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_modes_decide_which_exits_restart() {
    let env = Env::new();

    // on_failure + clean exit: stopped, no restart.
    let mut s = sh("clean", "exit 0");
    s.restart = policy(RestartMode::OnFailure, 5, 50, 50);
    env.rt.start(s).await.unwrap();
    let st = wait_state(&env.rt, &id("clean"), WorkloadState::Stopped).await;
    assert_eq!((st.restarts, st.last_exit.unwrap().code), (0, Some(0)));

    // never + failure: failed at once.
    let s = sh("never", "exit 1");
    env.rt.start(s).await.unwrap();
    let st = wait_state(&env.rt, &id("never"), WorkloadState::Failed).await;
    assert_eq!(st.restarts, 0);
    assert!(st.last_error.unwrap().contains("code 1"));

    // always + clean exits: restarted until the budget runs out.
    let mut s = sh("always", "exit 0");
    s.restart = policy(RestartMode::Always, 2, 20, 40);
    env.rt.start(s).await.unwrap();
    let st = wait_state(&env.rt, &id("always"), WorkloadState::Failed).await;
    assert_eq!(st.restarts, 2);

    // A run longer than backoff_max resets the backoff.
    let mut rx = env.rt.subscribe();
    let mut s = sh("steady", "sleep 0.2; exit 1");
    s.restart = policy(RestartMode::OnFailure, 3, 50, 100);
    env.rt.start(s).await.unwrap();
    wait_state(&env.rt, &id("steady"), WorkloadState::Failed).await;
    let delays: Vec<u64> = until_failed(&mut rx, &id("steady"))
        .await
        .into_iter()
        .filter_map(|e| match e {
            RuntimeEventKind::Restarting { delay_ms, .. } => Some(delay_ms),
            _ => None,
        })
        .collect();
    assert_eq!(delays, vec![50, 50, 50]);
    assert!(env.processes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_process_is_restarted_and_counted() {
    let env = Env::new();
    let w = id("victim");
    let mut s = sh("victim", "sleep 1000");
    s.restart = policy(RestartMode::Always, 5, 50, 1000);
    let first = env.rt.start(s).await.unwrap();
    let pid1 = pid_of(&first);
    proc::signal_pids(&[pid1], nix::sys::signal::Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    let st = loop {
        let st = env.rt.status(&w).await.unwrap().unwrap();
        if st.state == WorkloadState::Running && st.pid != first.pid {
            break st;
        }
        assert!(Instant::now() < deadline, "not restarted: {st:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        st.restarts,
        1,
        "{st:?} {:?}",
        env.rt.tail_logs(&w, 20).await
    );
    assert_eq!(st.last_exit.unwrap().signal, Some(9));
    assert!(alive(pid_of(&st)));
    env.rt.stop(&w, None).await.unwrap();
    assert!(env.processes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_escalates_to_sigkill_after_grace_and_honours_stop_signal() {
    let env = Env::new();
    let stubborn = id("stubborn");
    let s = sh("stubborn", "trap '' TERM; while :; do sleep 0.05; done");
    let pid = pid_of(&env.rt.start(s).await.unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await; // let the trap install
    let t0 = Instant::now();
    let st = env
        .rt
        .stop(&stubborn, Some(Duration::from_millis(300)))
        .await
        .unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(st.last_exit.unwrap().signal, Some(9));
    assert!(!alive(pid));

    let polite = id("polite");
    let mut s = sh(
        "polite",
        r#"trap 'echo got-int > "$HOOD_DATA_DIR/int"; exit 0' INT; while :; do sleep 0.05; done"#,
    );
    s.stop_signal = StopSignal::Int;
    env.rt.start(s).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let st = env.rt.stop(&polite, None).await.unwrap();
    assert_eq!(st.last_exit.unwrap().code, Some(0));
    assert_eq!(
        fs::read_to_string(env.rt.data_dir(&polite).join("int")).unwrap(),
        "got-int\n"
    );
    assert!(env.processes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_captured_rotated_and_tailed() {
    let env = Env::with_limits(LogLimits {
        max_bytes: 2000,
        keep: 2,
    });
    let w = id("chatty");
    let script = r#"i=0; while [ $i -lt 500 ]; do echo "line $i"; i=$((i+1)); done; sleep 0.2; echo to-stderr >&2; sleep 1000"#;
    env.rt.start(sh("chatty", script)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = env.rt.tail_logs(&w, 1).await.unwrap();
        if t == vec!["to-stderr".to_owned()] {
            break;
        }
        assert!(Instant::now() < deadline, "last line {t:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tail = env.rt.tail_logs(&w, 6).await.unwrap();
    let want: Vec<String> = (495..500)
        .map(|i| format!("line {i}"))
        .chain(["to-stderr".to_owned()])
        .collect();
    assert_eq!(tail, want);

    let logs = env.rt.workload_dir(&w).join("logs");
    assert!(logs.join("output.log.1").exists());
    assert!(logs.join("output.log.2").exists());
    assert!(!logs.join("output.log.3").exists());
    for f in ["output.log", "output.log.1", "output.log.2"] {
        assert!(fs::metadata(logs.join(f)).unwrap().len() <= 2000);
    }
    // More lines than the live file holds come from the rotations, in order.
    let many = env.rt.tail_logs(&w, 300).await.unwrap();
    assert_eq!(many.len(), 300);
    assert_eq!(many[0], "line 201");
    assert_eq!(many[298], "line 499");
    assert_eq!(many[299], "to-stderr");
    env.rt.stop(&w, None).await.unwrap();
    assert!(matches!(
        env.rt.tail_logs(&id("nope"), 1).await,
        Err(RuntimeError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_is_idempotent_and_a_changed_spec_restarts() {
    let env = Env::new();
    let w = id("idem");
    let mut rx = env.rt.subscribe();
    let a = env.rt.start(sh("idem", "sleep 1000")).await.unwrap();
    let b = env.rt.start(sh("idem", "sleep 1000")).await.unwrap();
    assert_eq!(a.pid, b.pid);
    assert_eq!(b.restarts, 0);
    let started = drain(&mut rx)
        .into_iter()
        .filter(|e| matches!(e, RuntimeEventKind::Started { .. }))
        .count();
    assert_eq!(started, 1);

    let c = env.rt.start(sh("idem", "sleep 999")).await.unwrap();
    assert_ne!(c.pid, a.pid);
    assert!(!alive(pid_of(&a)));
    assert!(alive(pid_of(&c)));
    assert_eq!(env.rt.list().await.unwrap().len(), 1);
    env.rt.stop(&w, None).await.unwrap();
    assert!(env.processes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_written_and_secrets_are_private_and_wiped() {
    let env = Env::new();
    let w = id("keyed");
    let mut s = sh("keyed", "sleep 1000");
    s.files = vec![
        WorkloadFile::new("conf/app.toml", "port = 8545\n", 0o640),
        WorkloadFile {
            mode: 0o644, // a secret is 0600 whatever the spec says
            ..WorkloadFile::secret("secrets/validator.key", "TOPSECRETKEY")
        },
    ];
    env.rt.start(s.clone()).await.unwrap();
    let data = env.rt.data_dir(&w);
    let key = data.join("secrets/validator.key");
    let conf = data.join("conf/app.toml");
    assert_eq!(fs::read_to_string(&key).unwrap(), "TOPSECRETKEY");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o640
    );
    // The persisted spec holds no secret, in any encoding.
    let spec_json = fs::read_to_string(env.rt.workload_dir(&w).join("spec.json")).unwrap();
    assert!(!spec_json.contains("TOPSECRETKEY"));
    assert!(!spec_json.contains(&hex_of("TOPSECRETKEY")));

    env.rt.stop(&w, None).await.unwrap();
    assert!(!key.exists(), "secret must be wiped on stop");
    assert!(conf.exists());

    env.rt.start(s).await.unwrap();
    assert!(key.exists(), "secret is written again on start");
    env.rt.remove(&w, false).await.unwrap();
    assert!(!key.exists());
    assert!(conf.exists(), "data survives remove without wipe");
    assert!(!env.rt.workload_dir(&w).join("spec.json").exists());
    assert!(env.rt.status(&w).await.unwrap().is_none());
    env.rt.remove(&w, true).await.unwrap();
    assert!(!env.rt.workload_dir(&w).exists());
    env.rt.remove(&w, true).await.unwrap(); // idempotent
    assert!(env.processes().is_empty());
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_and_unknown_ids_are_clear_errors() {
    let env = Env::new();
    let missing = WorkloadSpec::new(id("ghost"), "/nonexistent/binary");
    match env.rt.start(missing).await {
        Err(RuntimeError::Spawn { reason, .. }) => assert!(reason.contains("/nonexistent")),
        other => panic!("expected a spawn error, got {other:?}"),
    }
    let st = env.rt.status(&id("ghost")).await.unwrap().unwrap();
    assert_eq!(st.state, WorkloadState::Failed);

    let mut bad = sh("bad", "true");
    bad.files.push(WorkloadFile::new("../escape", "x", 0o644));
    assert!(matches!(
        env.rt.start(bad).await,
        Err(RuntimeError::InvalidSpec { .. })
    ));
    assert!(matches!(
        env.rt.stop(&id("nope"), None).await,
        Err(RuntimeError::NotFound(_))
    ));
    env.rt.remove(&id("nope"), true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_and_working_dir_reach_the_process() {
    let env = Env::new();
    let w = id("envy");
    let mut s = sh("envy", r#"echo "$GREETING from $(pwd)"; sleep 1000"#);
    s.env = BTreeMap::from([("GREETING".into(), "hello".into())]);
    s.working_dir = Some("work".into());
    env.rt.start(s).await.unwrap();
    let want = format!("hello from {}", env.rt.data_dir(&w).join("work").display());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !env.rt.tail_logs(&w, 5).await.unwrap().contains(&want) {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.rt.stop(&w, None).await.unwrap();
}

/// Runs the "old agent" on its own tokio runtime, then drops that runtime
/// without stopping anything: the closest an in-process test gets to the
/// agent dying. Its children keep running, orphaned.
fn run_old_agent(
    root: PathBuf,
    specs: Vec<WorkloadSpec>,
    stop: Vec<&'static str>,
) -> Vec<WorkloadStatus> {
    std::thread::spawn(move || {
        let tokio_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let out = tokio_rt.block_on(async {
            let rt = ProcessRuntime::new(ProcessRuntimeConfig::new(root)).unwrap();
            let mut out = Vec::new();
            for s in specs {
                out.push(rt.start(s).await.unwrap());
            }
            for w in stop {
                rt.stop(&id(w), None).await.unwrap();
            }
            out
        });
        drop(tokio_rt);
        out
    })
    .join()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_after_agent_crash_restarts_desired_workloads_and_kills_orphans() {
    let env = Env::new();
    let mut keyed = sh("keyed", "sleep 1000 & sleep 1000");
    keyed.files = vec![WorkloadFile::secret("k", "KEY")];
    let mut lost = sh("lost-key", "sleep 1000");
    lost.files = vec![WorkloadFile::secret("k", "KEY2")];
    let before = run_old_agent(
        env.root.clone(),
        vec![
            sh("node", "sleep 1000 & sleep 1000"),
            keyed,
            lost,
            sh("parked", "sleep 1000"),
        ],
        vec!["parked"],
    );
    let old_node = pid_of(&before[0]);
    let old_keyed = pid_of(&before[1]);
    assert!(alive(old_node), "the orphan should outlive its agent");
    eventually("orphan's children", Duration::from_secs(5), || {
        proc::group_members(old_node).len() == 3
    })
    .await;
    // Key material of one workload disappears while the agent is down.
    fs::remove_file(env.root.join("workloads/lost-key/data/k")).unwrap();

    let rt = ProcessRuntime::new(ProcessRuntimeConfig::new(env.root.clone())).unwrap();
    let recovered = rt.recover().await.unwrap();
    assert_eq!(recovered.len(), 4);
    assert!(
        !alive(old_node) && !alive(old_keyed),
        "orphans must be killed"
    );
    assert!(proc::group_members(old_node).is_empty());

    let node = rt.status(&id("node")).await.unwrap().unwrap();
    assert_eq!(node.state, WorkloadState::Running);
    assert_ne!(node.pid, before[0].pid);
    assert!(alive(pid_of(&node)));

    // Intact key material on disk is reused.
    let k = rt.status(&id("keyed")).await.unwrap().unwrap();
    assert_eq!(k.state, WorkloadState::Running);
    // Missing key material is a clear failure, not a start without keys.
    let l = rt.status(&id("lost-key")).await.unwrap().unwrap();
    assert_eq!(l.state, WorkloadState::Failed);
    assert!(l.last_error.unwrap().contains("key material"));
    // Stopped before the crash: stays stopped.
    let p = rt.status(&id("parked")).await.unwrap().unwrap();
    assert_eq!(p.state, WorkloadState::Stopped);
    assert_eq!(p.pid, None);

    // The control plane re-sends the same spec: no restart.
    let mut keyed = sh("keyed", "sleep 1000 & sleep 1000");
    keyed.files = vec![WorkloadFile::secret("k", "KEY")];
    assert_eq!(rt.start(keyed).await.unwrap().pid, k.pid);

    // Graceful shutdown stops everything but keeps it desired, so the next
    // recover brings it back.
    rt.shutdown().await;
    assert!(env.processes().is_empty());
    assert!(matches!(
        rt.start(sh("late", "true")).await,
        Err(RuntimeError::ShutDown)
    ));
    let rt2 = ProcessRuntime::new(ProcessRuntimeConfig::new(env.root.clone())).unwrap();
    rt2.recover().await.unwrap();
    assert_eq!(
        rt2.status(&id("node")).await.unwrap().unwrap().state,
        WorkloadState::Running
    );
    // Secrets were wiped by shutdown, so a restart needs them resent.
    assert_eq!(
        rt2.status(&id("keyed")).await.unwrap().unwrap().state,
        WorkloadState::Failed
    );
    rt2.shutdown().await;
    assert!(env.processes().is_empty());
}
