//! Conformance suite of the workflow journal (`WorkflowStore`), run against
//! SQLite and PostgreSQL by the `conformance!` macro.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use support::Harness;

use hood_domain::lifecycle::{StepState, WorkflowState};
use hood_domain::Timestamp;
use hood_store::workflow::{
    is_lease_lost, ClaimRequest, ExecutionEvent, Fence, NewSignal, NewWorkflow, StepEnd,
    StepFinish, StepKind, StepStart, WorkflowFilter, WorkflowRecord, WorkflowUpdate,
};
use hood_store::{Store, StoreError};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

const T0: Timestamp = Timestamp(1_700_000_000_000);
const TTL: i64 = 30_000;

fn defs() -> Vec<(String, i64)> {
    vec![("provision".into(), 1), ("child".into(), 1)]
}

fn new_wf(id: &str, name: &str, version: i64, at: Timestamp) -> NewWorkflow {
    NewWorkflow {
        id: id.into(),
        name: name.into(),
        version,
        input: json!({ "node": id }),
        parent_id: None,
        created_at: at,
    }
}

async fn claim(store: &dyn Store, owner: &str, at: Timestamp) -> Option<WorkflowRecord> {
    store
        .claim_workflow(&ClaimRequest {
            owner: owner.into(),
            now: at,
            lease_expires_at: at.plus_millis(TTL),
            definitions: defs(),
        })
        .await
        .unwrap()
}

/// Creates and claims one run; returns its fence.
async fn claimed(store: &dyn Store, id: &str, at: Timestamp) -> Fence {
    store
        .create_workflow(&new_wf(id, "provision", 1, at))
        .await
        .unwrap();
    let wf = claim(store, "w1", at).await.unwrap();
    assert_eq!(wf.id, id);
    wf.fence().unwrap()
}

async fn to_state(store: &dyn Store, fence: &Fence, to: WorkflowState, at: Timestamp) {
    store
        .update_workflow(fence, &WorkflowUpdate::to(to, at))
        .await
        .unwrap();
}

async fn start(store: &dyn Store, fence: &Fence, index: i64, kind: StepKind, attempt: i64) {
    store
        .start_step(
            fence,
            &StepStart {
                index,
                name: format!("step-{index}"),
                kind,
                attempt,
                now: T0,
            },
        )
        .await
        .unwrap();
}

fn end(index: i64, attempt: i64, finish: StepFinish) -> StepEnd {
    StepEnd {
        index,
        attempt,
        now: T0.plus_millis(5),
        finish,
        consume_signals: vec![],
    }
}

fn signal(wf: &str, name: &str, at: Timestamp) -> NewSignal {
    NewSignal {
        id: uuid::Uuid::now_v7().to_string(),
        workflow_id: wf.into(),
        name: name.into(),
        payload: json!({ "by": "test" }),
        created_at: at,
    }
}

fn park(at: Timestamp, wake_on: &[&str], children: &[&str]) -> WorkflowUpdate {
    WorkflowUpdate {
        release: true,
        waiting_for: Some("test".into()),
        wake_on_signals: wake_on.iter().map(|s| (*s).into()).collect(),
        wake_on_children: children.iter().map(|s| (*s).into()).collect(),
        ..WorkflowUpdate::to(WorkflowState::Waiting, at)
    }
}

// -- tests --

async fn create_is_idempotent_by_id(db: &Harness) {
    let store = db.migrated().await;
    let (wf, created) = store
        .create_workflow(&new_wf("provision-node-1", "provision", 1, T0))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(wf.state, WorkflowState::Pending);
    assert_eq!(wf.next_run_at, Some(T0));
    assert_eq!(wf.lease_generation, 0);
    assert_eq!(wf.input, json!({ "node": "provision-node-1" }));

    let (again, created) = store
        .create_workflow(&new_wf("provision-node-1", "provision", 1, T0.plus_secs(9)))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, wf);

    for other in [
        new_wf("provision-node-1", "terminate", 1, T0),
        new_wf("provision-node-1", "provision", 2, T0),
    ] {
        assert!(matches!(
            store.create_workflow(&other).await,
            Err(StoreError::Conflict(what)) if what == "workflow id"
        ));
    }
    let mut orphan = new_wf("child-x", "child", 1, T0);
    orphan.parent_id = Some("no-such-parent".into());
    assert!(matches!(
        store.create_workflow(&orphan).await,
        Err(StoreError::NotFound("parent workflow"))
    ));
    assert_eq!(
        store
            .list_workflows(&WorkflowFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn claims_take_due_runs_of_known_definitions(db: &Harness) {
    let store = db.migrated().await;
    store
        .create_workflow(&new_wf("late", "provision", 1, T0.plus_secs(60)))
        .await
        .unwrap();
    store
        .create_workflow(&new_wf("unknown-version", "provision", 9, T0))
        .await
        .unwrap();
    store
        .create_workflow(&new_wf("due", "provision", 1, T0))
        .await
        .unwrap();

    let wf = claim(store, "w1", T0).await.unwrap();
    assert_eq!(wf.id, "due");
    assert_eq!(wf.lease_owner.as_deref(), Some("w1"));
    assert_eq!(wf.lease_generation, 1);
    assert_eq!(wf.attempts, 1);
    assert_eq!(wf.lease_expires_at, Some(T0.plus_millis(TTL)));
    // Leased, not yet due, unknown: nothing more to claim.
    assert!(claim(store, "w2", T0).await.is_none());

    // Once the lease has expired another worker takes it over.
    let later = T0.plus_millis(TTL + 1);
    let wf = claim(store, "w2", later).await.unwrap();
    assert_eq!(wf.id, "due");
    assert_eq!(wf.lease_generation, 2);
    assert_eq!(wf.attempts, 2);

    store
        .renew_lease(&wf.fence().unwrap(), T0.plus_secs(86_400))
        .await
        .unwrap();
    let wf = claim(store, "w2", T0.plus_secs(61)).await.unwrap();
    assert_eq!(wf.id, "late");
    // The run of an unknown version is never claimed, only listed.
    let mut later_claims = Vec::new();
    while let Some(wf) = claim(store, "w3", T0.plus_secs(86_400 * 2)).await {
        later_claims.push(wf.id);
    }
    assert_eq!(later_claims, vec!["due".to_owned(), "late".to_owned()]);
    let unknown = store
        .get_workflow("unknown-version")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unknown.lease_generation, 0);
    assert_eq!(unknown.state, WorkflowState::Pending);

    // No definitions: claim nothing.
    let none = store
        .claim_workflow(&ClaimRequest {
            owner: "w4".into(),
            now: T0.plus_secs(7200),
            lease_expires_at: T0.plus_secs(7300),
            definitions: vec![],
        })
        .await
        .unwrap();
    assert!(none.is_none());
}

async fn fenced_writes_fail_once_the_lease_is_stolen(db: &Harness) {
    let store = db.migrated().await;
    let old = claimed(store, "wf", T0).await;
    to_state(store, &old, WorkflowState::Running, T0).await;
    start(store, &old, 0, StepKind::Action, 1).await;

    let later = T0.plus_millis(TTL + 1);
    let new = claim(store, "w2", later).await.unwrap().fence().unwrap();
    assert_eq!(new.generation, old.generation + 1);

    assert!(is_lease_lost(
        &store
            .renew_lease(&old, later.plus_secs(30))
            .await
            .unwrap_err()
    ));
    assert!(is_lease_lost(
        &store
            .update_workflow(&old, &WorkflowUpdate::to(WorkflowState::Completed, later))
            .await
            .unwrap_err()
    ));
    let start_err = store
        .start_step(
            &old,
            &StepStart {
                index: 1,
                name: "step-1".into(),
                kind: StepKind::Action,
                attempt: 1,
                now: later,
            },
        )
        .await
        .unwrap_err();
    assert!(is_lease_lost(&start_err));
    let finish_err = store
        .finish_step(&old, &end(0, 1, StepFinish::Succeeded { output: json!(1) }))
        .await
        .unwrap_err();
    assert!(is_lease_lost(&finish_err));
    assert!(is_lease_lost(
        &store.skip_undo(&old, 0, later).await.unwrap_err()
    ));
    assert!(is_lease_lost(
        &store
            .release_lease(&old, None, None, later)
            .await
            .unwrap_err()
    ));

    // The journal is untouched; the log keeps the rejected finish.
    let steps = store.list_steps("wf").await.unwrap();
    assert_eq!(steps[0].state, StepState::Running);
    let log = store.list_step_executions(Some("wf")).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].event, ExecutionEvent::Finish);
    assert_eq!(log[1].outcome.as_deref(), Some("lease_lost"));
    assert_eq!(log[1].generation, old.generation);

    // The new holder writes fine (re-running the interrupted step).
    store.renew_lease(&new, later.plus_secs(30)).await.unwrap();
    start(store, &new, 0, StepKind::Action, 1).await;
    store
        .finish_step(&new, &end(0, 1, StepFinish::Succeeded { output: json!(1) }))
        .await
        .unwrap();
    let steps = store.list_steps("wf").await.unwrap();
    assert_eq!(steps[0].state, StepState::Succeeded);
    assert_eq!(steps[0].generation, new.generation);
}

async fn step_journal_follows_the_state_machine(db: &Harness) {
    let store = db.migrated().await;
    let f = claimed(store, "wf", T0).await;
    // Steps start only while running.
    assert!(store
        .start_step(
            &f,
            &StepStart {
                index: 0,
                name: "step-0".into(),
                kind: StepKind::Action,
                attempt: 1,
                now: T0
            }
        )
        .await
        .is_err());
    to_state(store, &f, WorkflowState::Running, T0).await;

    start(store, &f, 0, StepKind::Action, 1).await;
    store
        .finish_step(
            &f,
            &end(
                0,
                1,
                StepFinish::Succeeded {
                    output: json!({"host": "h-1"}),
                },
            ),
        )
        .await
        .unwrap();

    start(store, &f, 1, StepKind::Action, 1).await;
    store
        .finish_step(
            &f,
            &end(
                1,
                1,
                StepFinish::Retry {
                    error: "timeout".into(),
                    next_attempt: 2,
                },
            ),
        )
        .await
        .unwrap();
    let s1 = &store.list_steps("wf").await.unwrap()[1];
    assert_eq!(
        (s1.state, s1.attempt, s1.error.as_deref()),
        (StepState::Pending, 2, Some("timeout"))
    );
    start(store, &f, 1, StepKind::Action, 2).await;
    store
        .finish_step(
            &f,
            &end(
                1,
                2,
                StepFinish::Failed {
                    error: "refused".into(),
                },
            ),
        )
        .await
        .unwrap();
    // failed -> succeeded is not in the table.
    assert!(matches!(
        store
            .finish_step(&f, &end(1, 2, StepFinish::Succeeded { output: json!(0) }))
            .await,
        Err(StoreError::InvalidTransition(_))
    ));
    // Undo only while compensating.
    assert!(store
        .start_step(
            &f,
            &StepStart {
                index: 0,
                name: "step-0".into(),
                kind: StepKind::Undo,
                attempt: 1,
                now: T0
            }
        )
        .await
        .is_err());
    let wf = store
        .update_workflow(
            &f,
            &WorkflowUpdate {
                error: Some("step-1 refused".into()),
                ..WorkflowUpdate::to(WorkflowState::Compensating, T0)
            },
        )
        .await
        .unwrap();
    assert_eq!(wf.error.as_deref(), Some("step-1 refused"));
    // running -> completed is allowed, compensating -> completed is not.
    assert!(matches!(
        store
            .update_workflow(&f, &WorkflowUpdate::to(WorkflowState::Completed, T0))
            .await,
        Err(StoreError::InvalidTransition(_))
    ));
    // The failed step has no undo; undoing it is refused.
    assert!(matches!(
        store
            .start_step(
                &f,
                &StepStart {
                    index: 1,
                    name: "step-1".into(),
                    kind: StepKind::Undo,
                    attempt: 1,
                    now: T0
                }
            )
            .await,
        Err(StoreError::InvalidTransition(_))
    ));
    start(store, &f, 0, StepKind::Undo, 1).await;
    store
        .finish_step(
            &f,
            &end(
                0,
                1,
                StepFinish::UndoRetry {
                    error: "busy".into(),
                    next_attempt: 2,
                },
            ),
        )
        .await
        .unwrap();
    start(store, &f, 0, StepKind::Undo, 2).await;
    store
        .finish_step(&f, &end(0, 2, StepFinish::Compensated))
        .await
        .unwrap();
    let wf = store
        .update_workflow(
            &f,
            &WorkflowUpdate {
                release: true,
                ..WorkflowUpdate::to(WorkflowState::Failed, T0.plus_secs(1))
            },
        )
        .await
        .unwrap();
    assert_eq!(wf.state, WorkflowState::Failed);
    assert_eq!(wf.error.as_deref(), Some("step-1 refused"));
    assert_eq!(wf.next_run_at, None);
    assert_eq!(wf.lease_owner, None);

    let detail = store.get_workflow_detail("wf").await.unwrap().unwrap();
    let states: Vec<_> = detail.steps.iter().map(|s| s.state).collect();
    assert_eq!(states, vec![StepState::Compensated, StepState::Failed]);
    assert_eq!(detail.steps[0].output, Some(json!({"host": "h-1"})));
    assert_eq!(detail.steps[0].undo_attempt, 2);
    assert_eq!(detail.steps[0].undo_error.as_deref(), Some("busy"));

    let log = store.list_step_executions(Some("wf")).await.unwrap();
    let summary: Vec<_> = log
        .iter()
        .map(|e| {
            (
                e.step_index,
                e.kind,
                e.event,
                e.attempt,
                e.outcome.clone().unwrap_or_default(),
            )
        })
        .collect();
    use ExecutionEvent::{Finish, Start};
    use StepKind::{Action, Undo};
    assert_eq!(
        summary,
        vec![
            (0, Action, Start, 1, String::new()),
            (0, Action, Finish, 1, "succeeded".into()),
            (1, Action, Start, 1, String::new()),
            (1, Action, Finish, 1, "retry".into()),
            (1, Action, Start, 2, String::new()),
            (1, Action, Finish, 2, "failed".into()),
            (0, Undo, Start, 1, String::new()),
            (0, Undo, Finish, 1, "undo_retry".into()),
            (0, Undo, Start, 2, String::new()),
            (0, Undo, Finish, 2, "compensated".into()),
        ]
    );
    assert!(log.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(log.iter().all(|e| e.owner == "w1" && e.generation == 1));
}

async fn an_interrupted_step_is_started_again(db: &Harness) {
    let store = db.migrated().await;
    let f1 = claimed(store, "wf", T0).await;
    to_state(store, &f1, WorkflowState::Running, T0).await;
    start(store, &f1, 0, StepKind::Action, 1).await;
    // Crash: no finish. The next claim re-runs the step.
    let f2 = claim(store, "w2", T0.plus_millis(TTL + 1))
        .await
        .unwrap()
        .fence()
        .unwrap();
    start(store, &f2, 0, StepKind::Action, 1).await;
    store
        .finish_step(
            &f2,
            &end(
                0,
                1,
                StepFinish::Suspended {
                    wake_at: Some(T0.plus_secs(99)),
                },
            ),
        )
        .await
        .unwrap();
    let s = &store.list_steps("wf").await.unwrap()[0];
    assert_eq!(s.state, StepState::Pending);
    assert_eq!(s.wake_at, Some(T0.plus_secs(99)));
    assert_eq!(s.attempt, 1);
    let log = store.list_step_executions(Some("wf")).await.unwrap();
    let gens: Vec<_> = log.iter().map(|e| (e.event, e.generation)).collect();
    assert_eq!(
        gens,
        vec![
            (ExecutionEvent::Start, 1),
            (ExecutionEvent::Start, 2),
            (ExecutionEvent::Finish, 2)
        ]
    );
}

async fn signals_wake_parked_runs(db: &Harness) {
    let store = db.migrated().await;
    let f = claimed(store, "wf", T0).await;
    to_state(store, &f, WorkflowState::Running, T0).await;
    start(store, &f, 0, StepKind::Action, 1).await;
    store
        .finish_step(&f, &end(0, 1, StepFinish::Suspended { wake_at: None }))
        .await
        .unwrap();
    let wf = store
        .update_workflow(&f, &park(T0, &["approve"], &[]))
        .await
        .unwrap();
    assert_eq!(wf.state, WorkflowState::Waiting);
    assert_eq!(wf.next_run_at, None);
    assert_eq!(wf.lease_owner, None);
    assert_eq!(wf.waiting_for.as_deref(), Some("test"));
    assert!(claim(store, "w2", T0.plus_secs(3600)).await.is_none());

    let at = T0.plus_secs(10);
    store
        .send_signal(&signal("wf", "approve", at))
        .await
        .unwrap();
    let wf = store.get_workflow("wf").await.unwrap().unwrap();
    assert_eq!(wf.next_run_at, Some(at));
    let pending = store.pending_signals("wf").await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].payload, json!({ "by": "test" }));

    // The woken run is claimed; the step consumes the signal on success.
    let f2 = claim(store, "w2", at).await.unwrap().fence().unwrap();
    to_state(store, &f2, WorkflowState::Running, at).await;
    start(store, &f2, 0, StepKind::Action, 1).await;
    let mut e = end(
        0,
        1,
        StepFinish::Succeeded {
            output: json!("approved"),
        },
    );
    e.consume_signals = vec![pending[0].id.clone()];
    assert_eq!(store.finish_step(&f2, &e).await.unwrap(), 0);
    assert!(store.pending_signals("wf").await.unwrap().is_empty());
    let all = store.list_signals("wf").await.unwrap();
    assert_eq!(all[0].consumed_at, Some(e.now));

    // Signals to unknown or finished runs are refused.
    assert!(matches!(
        store.send_signal(&signal("nope", "approve", at)).await,
        Err(StoreError::NotFound("workflow"))
    ));
    store
        .update_workflow(
            &f2,
            &WorkflowUpdate {
                release: true,
                ..WorkflowUpdate::to(WorkflowState::Completed, at)
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        store.send_signal(&signal("wf", "approve", at)).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn parking_never_loses_a_signal_that_already_arrived(db: &Harness) {
    let store = db.migrated().await;
    let f = claimed(store, "wf", T0).await;
    to_state(store, &f, WorkflowState::Running, T0).await;
    // Sent while the worker holds the run: nothing to wake yet.
    store.send_signal(&signal("wf", "go", T0)).await.unwrap();
    store.send_signal(&signal("wf", "other", T0)).await.unwrap();
    let wf = store
        .update_workflow(&f, &park(T0.plus_secs(1), &["go"], &[]))
        .await
        .unwrap();
    assert_eq!(wf.next_run_at, Some(T0.plus_secs(1)), "due at once");

    // A signal the run does not wait for leaves it parked; consuming in the
    // same change does not count as pending.
    let f = claim(store, "w1", T0.plus_secs(2))
        .await
        .unwrap()
        .fence()
        .unwrap();
    to_state(store, &f, WorkflowState::Running, T0.plus_secs(2)).await;
    let go = store.pending_signals("wf").await.unwrap()[0].id.clone();
    let mut update = park(T0.plus_secs(3), &["go"], &[]);
    update.consume_signals = vec![go];
    let wf = store.update_workflow(&f, &update).await.unwrap();
    assert_eq!(wf.next_run_at, None);
    let names: Vec<_> = store
        .pending_signals("wf")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec!["other".to_owned()]);
}

async fn a_finishing_child_wakes_its_waiting_parent(db: &Harness) {
    let store = db.migrated().await;
    let parent = claimed(store, "parent", T0).await;
    to_state(store, &parent, WorkflowState::Running, T0).await;
    let mut child = new_wf("parent-child-1", "child", 1, T0);
    child.parent_id = Some("parent".into());
    store.create_workflow(&child).await.unwrap();
    let wf = store
        .update_workflow(&parent, &park(T0, &[], &["parent-child-1"]))
        .await
        .unwrap();
    assert_eq!(wf.next_run_at, None);

    let c = claim(store, "w2", T0).await.unwrap();
    assert_eq!(c.id, "parent-child-1");
    let cf = c.fence().unwrap();
    to_state(store, &cf, WorkflowState::Running, T0).await;
    let done_at = T0.plus_secs(5);
    let c = store
        .update_workflow(
            &cf,
            &WorkflowUpdate {
                output: Some(json!({"upgraded": true})),
                release: true,
                ..WorkflowUpdate::to(WorkflowState::Completed, done_at)
            },
        )
        .await
        .unwrap();
    assert_eq!(c.output, Some(json!({"upgraded": true})));
    let p = store.get_workflow("parent").await.unwrap().unwrap();
    assert_eq!(p.next_run_at, Some(done_at));

    // Parking on a child that has already finished is due at once.
    let pf = claim(store, "w1", done_at).await.unwrap().fence().unwrap();
    let p = store
        .update_workflow(&pf, &park(done_at.plus_secs(1), &[], &["parent-child-1"]))
        .await
        .unwrap();
    assert_eq!(p.next_run_at, Some(done_at.plus_secs(1)));

    let kids = store
        .list_workflows(&WorkflowFilter {
            parent_id: Some("parent".into()),
            ..WorkflowFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(kids.len(), 1);
    assert_eq!(kids[0].parent_id.as_deref(), Some("parent"));
}

/// Drives a run to `stuck` through the journal: step 0 succeeded, step 1
/// failed, the undo of step 0 failed.
async fn make_stuck(store: &dyn Store, id: &str) {
    let f = claimed(store, id, T0).await;
    to_state(store, &f, WorkflowState::Running, T0).await;
    start(store, &f, 0, StepKind::Action, 1).await;
    store
        .finish_step(&f, &end(0, 1, StepFinish::Succeeded { output: json!(0) }))
        .await
        .unwrap();
    start(store, &f, 1, StepKind::Action, 1).await;
    store
        .finish_step(
            &f,
            &end(
                1,
                1,
                StepFinish::Failed {
                    error: "boom".into(),
                },
            ),
        )
        .await
        .unwrap();
    store
        .update_workflow(
            &f,
            &WorkflowUpdate {
                error: Some("step-1: boom".into()),
                ..WorkflowUpdate::to(WorkflowState::Compensating, T0)
            },
        )
        .await
        .unwrap();
    start(store, &f, 0, StepKind::Undo, 1).await;
    store
        .finish_step(
            &f,
            &end(
                0,
                1,
                StepFinish::UndoFailed {
                    error: "still there".into(),
                },
            ),
        )
        .await
        .unwrap();
    let wf = store
        .update_workflow(
            &f,
            &WorkflowUpdate {
                release: true,
                next_run_at: Some(T0),
                ..WorkflowUpdate::to(WorkflowState::Stuck, T0)
            },
        )
        .await
        .unwrap();
    assert_eq!(wf.state, WorkflowState::Stuck);
    assert_eq!(wf.next_run_at, None, "stuck runs are never due");
}

async fn operators_retry_or_abandon_stuck_runs(db: &Harness) {
    let store = db.migrated().await;
    make_stuck(store, "a").await;
    assert!(claim(store, "w9", T0.plus_secs(86_400)).await.is_none());
    let stuck = store
        .list_workflows(&WorkflowFilter {
            state: Some(WorkflowState::Stuck),
            ..WorkflowFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(stuck.len(), 1);

    let at = T0.plus_secs(100);
    let wf = store.retry_stuck("a", at).await.unwrap();
    assert_eq!(wf.state, WorkflowState::Compensating);
    assert_eq!(wf.next_run_at, Some(at));
    let s0 = &store.list_steps("a").await.unwrap()[0];
    assert_eq!((s0.state, s0.undo_attempt), (StepState::Compensating, 1));
    assert!(matches!(
        store.retry_stuck("a", at).await,
        Err(StoreError::InvalidTransition(_))
    ));
    assert!(matches!(
        store.abandon_stuck("a", "x", at).await,
        Err(StoreError::InvalidTransition(_))
    ));
    assert!(matches!(
        store.retry_stuck("nope", at).await,
        Err(StoreError::NotFound("workflow"))
    ));
    // The retried compensation is claimable and can finish.
    let f = claim(store, "w2", at).await.unwrap().fence().unwrap();
    start(store, &f, 0, StepKind::Undo, 1).await;
    store
        .finish_step(&f, &end(0, 1, StepFinish::Compensated))
        .await
        .unwrap();

    make_stuck(store, "b").await;
    let wf = store
        .abandon_stuck("b", "cleaned up by hand", at)
        .await
        .unwrap();
    assert_eq!(wf.state, WorkflowState::Abandoned);
    assert_eq!(
        wf.error.as_deref(),
        Some("step-1: boom (abandoned by operator: cleaned up by hand)")
    );
    assert_eq!(
        store.list_steps("b").await.unwrap()[0].state,
        StepState::UndoFailed
    );
}

async fn only_pending_unleased_runs_can_be_refused(db: &Harness) {
    let store = db.migrated().await;
    store
        .create_workflow(&new_wf("old", "provision", 7, T0))
        .await
        .unwrap();
    let wf = store
        .refuse_workflow("old", "unknown workflow definition provision v7", T0)
        .await
        .unwrap();
    assert_eq!(wf.state, WorkflowState::Failed);
    assert_eq!(
        wf.error.as_deref(),
        Some("unknown workflow definition provision v7")
    );
    let f = claimed(store, "running", T0).await;
    assert!(is_lease_lost(
        &store.refuse_workflow("running", "x", T0).await.unwrap_err()
    ));
    to_state(store, &f, WorkflowState::Running, T0).await;
    store.release_lease(&f, Some(T0), None, T0).await.unwrap();
    assert!(matches!(
        store.refuse_workflow("running", "x", T0).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn list_filters_and_timers(db: &Harness) {
    let store = db.migrated().await;
    for (i, name) in ["provision", "provision", "child"].iter().enumerate() {
        store
            .create_workflow(&new_wf(&format!("w{i}"), name, 1, T0.plus_secs(i as i64)))
            .await
            .unwrap();
    }
    let by_name = store
        .list_workflows(&WorkflowFilter {
            name: Some("provision".into()),
            ..WorkflowFilter::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = by_name.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, vec!["w1", "w0"], "newest first");
    let limited = store
        .list_workflows(&WorkflowFilter {
            limit: Some(1),
            ..WorkflowFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(limited[0].id, "w2");
    let pending = store
        .list_workflows(&WorkflowFilter {
            state: Some(WorkflowState::Pending),
            name: Some("child".into()),
            ..WorkflowFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);

    assert_eq!(store.next_due_at(&defs()).await.unwrap(), Some(T0));
    assert_eq!(store.next_due_at(&[]).await.unwrap(), None);
    let wf = claim(store, "w1", T0).await.unwrap();
    assert_eq!(wf.id, "w0");
    // w0 is leased until T0+TTL; w1 is due at T0+1s.
    assert_eq!(
        store.next_due_at(&defs()).await.unwrap(),
        Some(T0.plus_secs(1))
    );
    assert_eq!(store.clear_leases(T0).await.unwrap(), 1);
    assert_eq!(store.next_due_at(&defs()).await.unwrap(), Some(T0));
    let again = claim(store, "w2", T0).await.unwrap();
    assert_eq!((again.id.as_str(), again.lease_generation), ("w0", 2));
}

async fn concurrent_claimers_never_share_a_run(db: &Harness) {
    db.migrated().await;
    let store = &db.store;
    const RUNS: usize = 40;
    for i in 0..RUNS {
        store
            .create_workflow(&new_wf(&format!("run-{i:02}"), "provision", 1, T0))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..6 {
        let store: Arc<dyn Store> = if w % 2 == 0 {
            Arc::clone(store)
        } else {
            db.reopen().await
        };
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(wf) = claim(&*store, &format!("w{w}"), T0).await {
                got.push(wf.id);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), RUNS, "every run claimed exactly once: {all:?}");
    assert_eq!(unique.len(), RUNS);
}

conformance!(
    create_is_idempotent_by_id,
    claims_take_due_runs_of_known_definitions,
    fenced_writes_fail_once_the_lease_is_stolen,
    step_journal_follows_the_state_machine,
    an_interrupted_step_is_started_again,
    signals_wake_parked_runs,
    parking_never_loses_a_signal_that_already_arrived,
    a_finishing_child_wakes_its_waiting_parent,
    operators_retry_or_abandon_stuck_runs,
    only_pending_unleased_runs_can_be_refused,
    list_filters_and_timers,
    concurrent_claimers_never_share_a_run,
);
