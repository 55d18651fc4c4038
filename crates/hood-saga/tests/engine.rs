//! Engine behaviour on both backends: happy path, retries with backoff,
//! compensation, stuck runs and operator actions, deduplication, unknown
//! versions, durable timers across restarts, signals and child workflows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{engine, start, wait, App, TestDb, LEDGER, STEPS};
use hood_saga::{SagaError, StartWorkflow, StepKind, StepState, WorkflowState};
use hood_store::workflow::{ExecutionEvent, NewWorkflow};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

async fn happy_path(db: &TestDb) {
    let app = App::new();
    let eng = engine(db, &app).await;
    let worker = eng.spawn_worker(db.worker("w"));
    start(&eng, "provision-node-1", LEDGER, json!({ "node": 1 })).await;
    let wf = wait(&eng, "provision-node-1").await;
    assert_eq!(wf.state, WorkflowState::Completed);
    assert_eq!(
        wf.output,
        Some(
            json!({ "step": 4, "previous": { "step": 3, "previous": { "step": 2, "previous": { "step": 1, "previous": { "step": 0, "previous": null } } } } })
        )
    );
    assert_eq!(wf.lease_owner, None);
    assert_eq!(wf.next_run_at, None);
    assert_eq!(wf.attempts, 1, "claimed once");
    assert_eq!(app.effects_of("provision-node-1").len(), STEPS);
    let detail = eng.get("provision-node-1").await.unwrap().unwrap();
    assert!(detail
        .steps
        .iter()
        .all(|s| s.state == StepState::Succeeded && s.attempt == 1));
    let log = db
        .store
        .list_step_executions(Some("provision-node-1"))
        .await
        .unwrap();
    assert_eq!(log.len(), 2 * STEPS);
    assert!(log
        .iter()
        .all(|e| e.owner == "w" && e.kind == StepKind::Action));
    worker.shutdown().await;
}

async fn retry_then_success_with_backoff(db: &TestDb) {
    let app = App::new();
    app.flaky.lock().unwrap().insert("flaky/s2".into(), 2);
    let eng = engine(db, &app).await;
    let worker = eng.spawn_worker(db.worker("w"));
    start(&eng, "flaky", LEDGER, json!({})).await;
    let wf = wait(&eng, "flaky").await;
    assert_eq!(wf.state, WorkflowState::Completed);
    let s2 = &db.store.list_steps("flaky").await.unwrap()[2];
    assert_eq!((s2.state, s2.attempt), (StepState::Succeeded, 3));
    assert_eq!(s2.error.as_deref(), Some("transient trouble"));
    // Backoff 100 ms then 200 ms, measured between the attempts' starts.
    let starts: Vec<_> = db
        .store
        .list_step_executions(Some("flaky"))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.step_index == 2 && e.event == ExecutionEvent::Start)
        .collect();
    assert_eq!(
        starts.iter().map(|e| e.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(starts[1].at.millis() - starts[0].at.millis() >= 100);
    assert!(starts[2].at.millis() - starts[1].at.millis() >= 200);
    assert!(wf.attempts >= 3, "the worker was freed during each backoff");
    worker.shutdown().await;
}

async fn exhausted_retries_compensate(db: &TestDb) {
    let app = App::new();
    app.flaky.lock().unwrap().insert("tired/s2".into(), 99);
    let eng = engine(db, &app).await;
    let worker = eng.spawn_worker(db.worker("w"));
    start(&eng, "tired", LEDGER, json!({})).await;
    let wf = wait(&eng, "tired").await;
    assert_eq!(wf.state, WorkflowState::Failed);
    assert_eq!(
        wf.error.as_deref(),
        Some("step `s2` failed after 3 attempts: transient trouble")
    );
    assert_eq!(app.undone_of("tired"), vec!["s1", "s0"]);
    assert!(app.effects_of("tired").is_empty());
    worker.shutdown().await;
}

async fn permanent_failure_compensates_in_reverse(db: &TestDb) {
    let app = App::new();
    let eng = engine(db, &app).await;
    let worker = eng.spawn_worker(db.worker("w"));
    start(&eng, "doomed", LEDGER, json!({ "fail_at": 3 })).await;
    let wf = wait(&eng, "doomed").await;
    assert_eq!(wf.state, WorkflowState::Failed);
    assert_eq!(
        wf.error.as_deref(),
        Some("step `s3` failed: planned failure")
    );
    assert_eq!(app.undone_of("doomed"), vec!["s2", "s1", "s0"]);
    assert!(app.effects_of("doomed").is_empty());
    let states: Vec<_> = db
        .store
        .list_steps("doomed")
        .await
        .unwrap()
        .iter()
        .map(|s| s.state)
        .collect();
    assert_eq!(
        states,
        vec![
            StepState::Compensated,
            StepState::Compensated,
            StepState::Compensated,
            StepState::Failed
        ],
        "step 4 never started"
    );
    // The permanent failure was not retried.
    let execs = app.executions_of("doomed");
    assert_eq!(execs.iter().filter(|e| *e == "s3/action").count(), 1);
    // Undos ran in reverse order (the log says so too).
    let undo_starts: Vec<_> = db
        .store
        .list_step_executions(Some("doomed"))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == StepKind::Undo && e.event == ExecutionEvent::Start)
        .map(|e| e.step_index)
        .collect();
    assert_eq!(undo_starts, vec![2, 1, 0]);
    worker.shutdown().await;
}

async fn failing_undo_gets_stuck_until_an_operator_retries(db: &TestDb) {
    let app = App::new();
    app.undo_broken.store(true, Ordering::SeqCst);
    let eng = engine(db, &app).await;
    let worker = eng.spawn_worker(db.worker("w"));
    start(&eng, "wedged", ("stuck", 1), json!({})).await;
    let wf = wait(&eng, "wedged").await;
    assert_eq!(wf.state, WorkflowState::Stuck);
    assert_eq!(wf.error.as_deref(), Some("step `explode` failed: exploded"));
    assert_eq!(wf.waiting_for.as_deref(), Some("operator"));
    let steps = db.store.list_steps("wedged").await.unwrap();
    assert_eq!(steps[0].state, StepState::UndoFailed);
    assert_eq!(steps[0].undo_error.as_deref(), Some("provider API down"));
    assert_eq!(steps[0].undo_attempt, 2, "the undo was retried per policy");
    let stuck = eng.list_stuck().await.unwrap();
    assert_eq!(
        stuck.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        vec!["wedged"]
    );
    // Not claimed again by itself.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        db.store
            .get_workflow("wedged")
            .await
            .unwrap()
            .unwrap()
            .state,
        WorkflowState::Stuck
    );

    app.undo_broken.store(false, Ordering::SeqCst);
    eng.retry("wedged").await.unwrap();
    let wf = wait(&eng, "wedged").await;
    assert_eq!(wf.state, WorkflowState::Failed);
    assert_eq!(wf.error.as_deref(), Some("step `explode` failed: exploded"));
    assert!(app.effects_of("wedged").is_empty());
    assert!(matches!(
        eng.retry("wedged").await,
        Err(SagaError::NotStuck { .. })
    ));
    worker.shutdown().await;
}

async fn abandoning_a_stuck_run(db: &TestDb) {
    let app = App::new();
    app.undo_broken.store(true, Ordering::SeqCst);
    let eng = engine(db, &app).await;
    let worker = eng.spawn_worker(db.worker("w"));
    start(&eng, "hopeless", ("stuck", 1), json!({})).await;
    assert_eq!(wait(&eng, "hopeless").await.state, WorkflowState::Stuck);
    let wf = eng.abandon("hopeless", "deleted by hand").await.unwrap();
    assert_eq!(wf.state, WorkflowState::Abandoned);
    assert!(wf.error.unwrap().contains("deleted by hand"));
    assert_eq!(
        app.effects_of("hopeless").len(),
        1,
        "left behind, on record"
    );
    assert!(matches!(
        eng.abandon("hopeless", "again").await,
        Err(SagaError::NotStuck { .. })
    ));
    worker.shutdown().await;
}

async fn deterministic_ids_create_one_run(db: &TestDb) {
    let app = App::new();
    let eng = engine(db, &app).await;
    let id = "migrate-node-7-3";
    let first = eng
        .start(StartWorkflow::new(id, LEDGER, json!({ "n": 1 })).unwrap())
        .await
        .unwrap();
    let second = eng
        .start(StartWorkflow::new(id, LEDGER, json!({ "n": 2 })).unwrap())
        .await
        .unwrap();
    assert!(first.created);
    assert!(!second.created);
    assert_eq!(
        second.workflow.input,
        json!({ "n": 1 }),
        "the first start wins"
    );
    assert!(matches!(
        eng.start(StartWorkflow::new(id, ("stuck", 1), json!({})).unwrap())
            .await,
        Err(SagaError::IdConflict(_))
    ));
    let worker = eng.spawn_worker(db.worker("w"));
    assert_eq!(wait(&eng, id).await.state, WorkflowState::Completed);
    // Starting again after completion still finds the one run.
    let third = eng
        .start(StartWorkflow::new(id, LEDGER, json!({})).unwrap())
        .await
        .unwrap();
    assert!(!third.created);
    assert_eq!(third.workflow.state, WorkflowState::Completed);
    let execs = app.executions_of(id);
    assert_eq!(execs.iter().filter(|e| *e == "s0/action").count(), 1);
    let all = eng.list(&Default::default()).await.unwrap();
    assert_eq!(all.len(), 1);
    worker.shutdown().await;
}

async fn unknown_versions_are_refused(db: &TestDb) {
    let app = App::new();
    let eng = engine(db, &app).await;
    assert!(matches!(
        eng.start(StartWorkflow::new("x", ("ledger", 2), json!({})).unwrap())
            .await,
        Err(SagaError::UnknownDefinition { version: 2, .. })
    ));
    // Journaled by a newer binary: this one must not touch it.
    db.store
        .create_workflow(&NewWorkflow {
            id: "from-the-future".into(),
            name: "ledger".into(),
            version: 2,
            input: json!({}),
            parent_id: None,
            created_at: hood_clock::now(),
        })
        .await
        .unwrap();
    start(&eng, "known", LEDGER, json!({})).await;
    let worker = eng.spawn_worker(db.worker("w"));
    assert_eq!(wait(&eng, "known").await.state, WorkflowState::Completed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let future = db
        .store
        .get_workflow("from-the-future")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(future.state, WorkflowState::Pending);
    assert_eq!(future.lease_generation, 0, "never claimed");
    assert!(db
        .store
        .list_steps("from-the-future")
        .await
        .unwrap()
        .is_empty());
    assert!(app.executions_of("from-the-future").is_empty());

    // Where no other binary could run it, it is failed with a clear error.
    assert_eq!(eng.refuse_unknown().await.unwrap(), vec!["from-the-future"]);
    let future = db
        .store
        .get_workflow("from-the-future")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(future.state, WorkflowState::Failed);
    assert_eq!(
        future.error.as_deref(),
        Some("unknown workflow definition ledger v2: refused, not replayed")
    );
    worker.shutdown().await;
}

async fn durable_timer_survives_a_restart(db: &TestDb) {
    let app = App::new();
    let eng = engine(db, &app).await;
    let worker = eng.spawn_worker(db.worker("first"));
    let started = hood_clock::now();
    start(&eng, "napper", ("sleeper", 1), json!({ "sleep_ms": 1500 })).await;
    let parked = eng
        .wait_until("napper", Duration::from_secs(10), |wf| {
            wf.state == WorkflowState::Waiting
        })
        .await
        .unwrap();
    assert_eq!(parked.waiting_for.as_deref(), Some("timer"));
    assert_eq!(
        parked.lease_owner, None,
        "the worker is freed while it sleeps"
    );
    let wake_at = parked.next_run_at.unwrap();
    assert!(wake_at.millis() >= started.millis() + 1500);
    let nap = &db.store.list_steps("napper").await.unwrap()[1];
    assert_eq!(
        (nap.state, nap.wake_at),
        (StepState::Pending, Some(wake_at))
    );
    // The process dies while the run sleeps.
    worker.kill().await;

    let eng = engine(db, &app).await;
    let worker = eng.spawn_worker(db.worker("second"));
    let wf = wait(&eng, "napper").await;
    assert_eq!(wf.state, WorkflowState::Completed);
    let steps = db.store.list_steps("napper").await.unwrap();
    let woke = steps[1].output.as_ref().unwrap();
    assert_eq!(
        woke["timer"],
        json!(wake_at),
        "same deadline after the restart"
    );
    assert!(woke["woke_at"].as_i64().unwrap() >= wake_at.millis());
    assert!(steps[2].output.as_ref().unwrap().as_i64().unwrap() >= wake_at.millis());
    let execs = app.executions_of("napper");
    assert_eq!(execs, vec!["before", "nap", "nap", "after"]);
    worker.shutdown().await;
}

async fn pause_and_resume(db: &TestDb) {
    let app = App::new();
    let eng = engine(db, &app).await;
    let worker = eng.spawn_worker(db.worker("w"));
    start(&eng, "pausable", ("gated", 1), json!({ "signal": "go" })).await;
    let wf = eng
        .wait_until("pausable", Duration::from_secs(10), |wf| {
            wf.state == WorkflowState::Waiting
        })
        .await
        .unwrap();
    assert_eq!(wf.waiting_for.as_deref(), Some("signal:go"));
    eng.pause("pausable").await.unwrap();
    let wf = eng
        .wait_until("pausable", Duration::from_secs(10), |wf| {
            wf.state == WorkflowState::Paused
        })
        .await
        .unwrap();
    assert_eq!(wf.next_run_at, None);
    // What the step waits for arrives, but a paused run does not move.
    eng.signal("pausable", "go", json!({ "by": "ops" }))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let wf = db.store.get_workflow("pausable").await.unwrap().unwrap();
    assert_eq!(wf.state, WorkflowState::Paused);
    assert!(!app.effects_of("pausable").contains_key("go"));

    eng.resume("pausable").await.unwrap();
    let wf = wait(&eng, "pausable").await;
    assert_eq!(wf.state, WorkflowState::Completed);
    assert_eq!(wf.output, Some(json!({ "approved_with": { "by": "ops" } })));
    assert!(db
        .store
        .pending_signals("pausable")
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        eng.pause("pausable").await,
        Err(SagaError::Finished(_))
    ));
    worker.shutdown().await;
}

async fn abort_compensates(db: &TestDb) {
    let app = App::new();
    let eng = engine(db, &app).await;
    let worker = eng.spawn_worker(db.worker("w"));
    start(&eng, "abortable", ("gated", 1), json!({})).await;
    eng.wait_until("abortable", Duration::from_secs(10), |wf| {
        wf.state == WorkflowState::Waiting
    })
    .await
    .unwrap();
    assert_eq!(app.effects_of("abortable").len(), 1);
    eng.abort("abortable").await.unwrap();
    let wf = wait(&eng, "abortable").await;
    assert_eq!(wf.state, WorkflowState::Failed);
    assert_eq!(wf.error.as_deref(), Some("aborted by signal"));
    assert_eq!(app.undone_of("abortable"), vec!["prepare"]);
    assert!(app.effects_of("abortable").is_empty());
    let steps = db.store.list_steps("abortable").await.unwrap();
    assert_eq!(steps[0].state, StepState::Compensated);
    assert_eq!(steps[1].state, StepState::Pending, "the gate never passed");
    worker.shutdown().await;

    // Aborted before it ever ran: failed, nothing to undo.
    let eng = engine(db, &app).await;
    start(&eng, "never-ran", ("gated", 1), json!({})).await;
    eng.abort("never-ran").await.unwrap();
    let worker = eng.spawn_worker(db.worker("w2"));
    let wf = wait(&eng, "never-ran").await;
    assert_eq!(wf.state, WorkflowState::Failed);
    assert!(db.store.list_steps("never-ran").await.unwrap().is_empty());
    worker.shutdown().await;
}

async fn approve_gated_step(db: &TestDb) {
    let app = App::new();
    let eng = engine(db, &app).await;
    let worker = eng.spawn_worker(db.worker("w"));
    start(&eng, "gated-1", ("gated", 1), json!({})).await;
    let wf = eng
        .wait_until("gated-1", Duration::from_secs(10), |wf| {
            wf.state == WorkflowState::Waiting
        })
        .await
        .unwrap();
    assert_eq!(wf.waiting_for.as_deref(), Some("signal:approve"));
    assert_eq!(wf.next_run_at, None, "no deadline: parked until approved");
    // Other signals do not open the gate.
    eng.signal("gated-1", "nudge", json!(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        db.store
            .get_workflow("gated-1")
            .await
            .unwrap()
            .unwrap()
            .state,
        WorkflowState::Waiting
    );
    eng.approve("gated-1", json!({ "approver": "alice" }))
        .await
        .unwrap();
    let wf = wait(&eng, "gated-1").await;
    assert_eq!(wf.state, WorkflowState::Completed);
    assert_eq!(
        wf.output,
        Some(json!({ "approved_with": { "approver": "alice" } }))
    );
    let left: Vec<_> = db
        .store
        .pending_signals("gated-1")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(left, vec!["nudge"], "approve consumed with the step");

    // Approved before the gate is reached: passes straight through.
    start(&eng, "gated-2", ("gated", 1), json!({})).await;
    eng.approve("gated-2", json!("early")).await.unwrap();
    let wf = wait(&eng, "gated-2").await;
    assert_eq!(wf.output, Some(json!({ "approved_with": "early" })));
    worker.shutdown().await;
}

/// Approvals sent while the run is on its way to the gate race its
/// parking; none may be lost (a lost wake-up leaves the run parked with no
/// timer, which no poll would ever find).
async fn signals_racing_the_park_are_never_lost(db: &TestDb) {
    let app = App::new();
    let eng = engine(db, &app).await;
    let worker = eng.spawn_worker(db.worker("w"));
    const RUNS: usize = 30;
    for i in 0..RUNS {
        start(&eng, &format!("race-{i}"), ("gated", 1), json!({})).await;
    }
    for i in 0..RUNS {
        if i % 3 == 0 {
            tokio::time::sleep(Duration::from_millis(i as u64 % 7)).await;
        }
        eng.approve(&format!("race-{i}"), json!(i)).await.unwrap();
    }
    for i in 0..RUNS {
        let wf = eng
            .wait(&format!("race-{i}"), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(wf.state, WorkflowState::Completed);
        assert_eq!(wf.output, Some(json!({ "approved_with": i })));
    }
    worker.shutdown().await;
}

async fn child_completes_and_wakes_parent(db: &TestDb) {
    let app = App::new();
    let eng = engine(db, &app).await;
    // A long poll: only the in-process wake-ups can make this quick.
    let worker = eng.spawn_worker(db.worker("w").poll_interval(Duration::from_secs(30)));
    let begun = std::time::Instant::now();
    start(&eng, "rollout-1", ("parent", 1), json!({})).await;
    let wf = wait(&eng, "rollout-1").await;
    assert_eq!(wf.state, WorkflowState::Completed);
    assert!(
        begun.elapsed() < Duration::from_secs(10),
        "{:?}",
        begun.elapsed()
    );
    assert_eq!(
        wf.output,
        Some(json!({ "child_said": { "child": "rollout-1-child" } }))
    );
    let child = db
        .store
        .get_workflow("rollout-1-child")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(child.state, WorkflowState::Completed);
    assert_eq!(child.parent_id.as_deref(), Some("rollout-1"));
    // The parent waited (parked) and ran its step again once woken.
    assert_eq!(
        app.executions_of("rollout-1")
            .iter()
            .filter(|e| *e == "spawn")
            .count(),
        2
    );
    worker.shutdown().await;
}

async fn failed_child_fails_parent(db: &TestDb) {
    let app = App::new();
    let eng = engine(db, &app).await;
    let worker = eng.spawn_worker(db.worker("w"));
    start(
        &eng,
        "rollout-2",
        ("parent", 1),
        json!({ "child_fails": true }),
    )
    .await;
    let wf = wait(&eng, "rollout-2").await;
    assert_eq!(wf.state, WorkflowState::Failed);
    assert_eq!(
        wf.error.as_deref(),
        Some("step `spawn` failed: child workflow rollout-2-child failed: step `work` failed: child broke")
    );
    worker.shutdown().await;
}

async fn panicking_action_is_retried(db: &TestDb) {
    let app = App::new();
    let eng = engine(db, &app).await;
    let worker = eng.spawn_worker(db.worker("w"));
    start(&eng, "panicky", ("panicky", 1), json!({})).await;
    let wf = wait(&eng, "panicky").await;
    assert_eq!(wf.state, WorkflowState::Completed);
    assert_eq!(wf.output, Some(json!({ "attempt": 2 })));
    let s = &db.store.list_steps("panicky").await.unwrap()[0];
    assert_eq!(s.error.as_deref(), Some("panicked: index out of bounds"));
    worker.shutdown().await;
}

both_backends!(
    happy_path,
    retry_then_success_with_backoff,
    exhausted_retries_compensate,
    permanent_failure_compensates_in_reverse,
    failing_undo_gets_stuck_until_an_operator_retries,
    abandoning_a_stuck_run,
    deterministic_ids_create_one_run,
    unknown_versions_are_refused,
    durable_timer_survives_a_restart,
    pause_and_resume,
    abort_compensates,
    approve_gated_step,
    signals_racing_the_park_are_never_lost,
    child_completes_and_wakes_parent,
    failed_child_fails_parent,
    panicking_action_is_retried,
);
