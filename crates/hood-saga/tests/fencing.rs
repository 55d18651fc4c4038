//! Multi-worker safety on PostgreSQL: two workers (separate pools, owners
//! and engines, as two processes would have) share 50 runs; the execution
//! log proves that no step ever ran twice at once and every run completed
//! exactly once. And a worker whose lease was stolen cannot write.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{engine, start, App, TestDb};
use hood_saga::{StepKind, WorkflowState};
use hood_store::workflow::{ExecutionEvent, StepExecution, WorkflowFilter};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Checks that, per (run, step, action/undo), executions never overlap:
/// in log order each start is followed by its own finish (same lease)
/// before the next start, and times agree.
fn assert_no_overlap(log: &[StepExecution]) {
    let mut per_step: BTreeMap<(String, i64, StepKind), Vec<&StepExecution>> = BTreeMap::new();
    for e in log {
        per_step
            .entry((e.workflow_id.clone(), e.step_index, e.kind))
            .or_default()
            .push(e);
    }
    for (key, events) in per_step {
        assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
        let mut open: Option<&StepExecution> = None;
        let mut last_finish = None;
        for e in events {
            match (e.event, open) {
                (ExecutionEvent::Start, None) => {
                    if let Some(f) = last_finish {
                        assert!(e.at >= f, "{key:?}: started before the previous finished");
                    }
                    open = Some(e);
                }
                (ExecutionEvent::Finish, Some(s)) => {
                    assert_eq!(
                        (s.owner.as_str(), s.generation),
                        (e.owner.as_str(), e.generation),
                        "{key:?}: finish of another execution"
                    );
                    assert!(e.at >= s.at);
                    last_finish = Some(e.at);
                    open = None;
                }
                (ExecutionEvent::Start, Some(s)) => {
                    panic!("{key:?}: overlapping executions {s:?} and {e:?}")
                }
                (ExecutionEvent::Finish, None) => panic!("{key:?}: finish without start {e:?}"),
            }
        }
        assert!(open.is_none(), "{key:?}: an execution never finished");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_share_fifty_runs_without_overlap() {
    let Some(db) = TestDb::postgres("saga::two_workers_share_fifty_runs").await else {
        return;
    };
    let app = App::new();
    let a = engine(&db, &app).await;
    let b = engine(&db, &app).await;
    let cfg = |owner: &str| {
        hood_saga::WorkerConfig::cluster()
            .owner(owner)
            .lease_ttl(Duration::from_secs(5))
            .poll_interval(Duration::from_millis(50))
            .max_concurrent(8)
    };
    let wa = a.spawn_worker(cfg("worker-a"));
    let wb = b.spawn_worker(cfg("worker-b"));
    const RUNS: usize = 50;
    for i in 0..RUNS {
        // Alternate the engine that starts each run: both get woken.
        let eng = if i % 2 == 0 { &a } else { &b };
        start(eng, &format!("fleet-{i:02}"), ("blocking", 1), json!({})).await;
    }
    for i in 0..RUNS {
        let wf = a
            .wait(&format!("fleet-{i:02}"), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(wf.state, WorkflowState::Completed, "{}", wf.id);
    }
    wa.shutdown().await;
    wb.shutdown().await;

    let log = db.store.list_step_executions(None).await.unwrap();
    assert_no_overlap(&log);
    // No crash, no expiry: every step started once and succeeded once.
    assert_eq!(log.len(), RUNS * 3 * 2);
    assert!(log
        .iter()
        .filter(|e| e.event == ExecutionEvent::Finish)
        .all(|e| e.outcome.as_deref() == Some("succeeded")));
    let owners: BTreeSet<_> = log.iter().map(|e| e.owner.as_str()).collect();
    assert_eq!(
        owners,
        BTreeSet::from(["worker-a", "worker-b"]),
        "both worked"
    );
    // Each run completed exactly once: one effect per step, one execution.
    for i in 0..RUNS {
        let id = format!("fleet-{i:02}");
        assert_eq!(app.effects_of(&id).len(), 3);
        assert_eq!(app.executions_of(&id), vec!["b0", "b1", "b2"], "{id}");
    }
    let done = db
        .store
        .list_workflows(&WorkflowFilter {
            state: Some(WorkflowState::Completed),
            ..WorkflowFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(done.len(), RUNS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_whose_lease_was_stolen_cannot_write() {
    let Some(db) = TestDb::postgres("saga::stolen_lease").await else {
        return;
    };
    let app = App::new();
    app.block_first.store(true, Ordering::SeqCst);
    let a = engine(&db, &app).await;
    let b = engine(&db, &app).await;
    // A long lease (renewed only every 20 s): the steal below is what ends it.
    let wa = a.spawn_worker(
        hood_saga::WorkerConfig::cluster()
            .owner("slow")
            .lease_ttl(Duration::from_secs(60))
            .max_concurrent(1),
    );
    start(&a, "contested", ("blocking", 1), json!({})).await;
    tokio::time::timeout(Duration::from_secs(10), app.started.notified())
        .await
        .unwrap();
    // The slow worker is inside step 0. Its lease "expires" behind its back
    // (a partition, a long pause) and another worker takes the run over.
    db.exec("UPDATE workflows SET lease_expires_at = 0 WHERE id = 'contested'")
        .await;
    let wb = b.spawn_worker(
        hood_saga::WorkerConfig::cluster()
            .owner("fast")
            .poll_interval(Duration::from_millis(50)),
    );
    let wf = b.wait("contested", Duration::from_secs(30)).await.unwrap();
    assert_eq!(wf.state, WorkflowState::Completed);
    assert_eq!(wf.lease_generation, 2);

    // Now the slow worker's step returns: its journal write is fenced out.
    app.gate.notify_one();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let rejected = loop {
        let log = db
            .store
            .list_step_executions(Some("contested"))
            .await
            .unwrap();
        if let Some(e) = log
            .iter()
            .find(|e| e.outcome.as_deref() == Some("lease_lost"))
        {
            break e.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no fenced-out write: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((rejected.owner.as_str(), rejected.generation), ("slow", 1));
    assert_eq!(rejected.step_index, 0);

    // The journal is entirely the new holder's, and the slow worker stopped
    // at once: it never started step 1.
    let steps = db.store.list_steps("contested").await.unwrap();
    assert!(steps.iter().all(|s| s.generation == 2));
    let log = db
        .store
        .list_step_executions(Some("contested"))
        .await
        .unwrap();
    let slow: Vec<_> = log
        .iter()
        .filter(|e| e.owner == "slow")
        .map(|e| (e.step_index, e.event))
        .collect();
    assert_eq!(
        slow,
        vec![(0, ExecutionEvent::Start), (0, ExecutionEvent::Finish)]
    );
    let wf = db.store.get_workflow("contested").await.unwrap().unwrap();
    assert_eq!(wf.state, WorkflowState::Completed);
    assert_eq!(wf.output, Some(json!(2)));
    wa.shutdown().await;
    wb.shutdown().await;
}
