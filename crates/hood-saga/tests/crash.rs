//! Crash injection at every step, on both backends: a worker is killed
//! (nothing journaled after the kill) before or after a step's effect, a
//! fresh engine and worker resume from the journal, and the final outcome
//! and the effects in the world must equal those of a crash-free run.
//! Also "repeat every step": each step crashes once after its effect, so
//! every action (and undo) runs twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{run_with_crashes, App, CrashPoint, TestDb, STEPS};
use hood_saga::{StepKind, StepState, WorkflowState};
use hood_store::workflow::ExecutionEvent;
use serde_json::json;

fn action(workflow: &str, step: usize, after_effect: bool) -> CrashPoint {
    CrashPoint {
        workflow: workflow.into(),
        step,
        undo: false,
        after_effect,
    }
}

fn undo(workflow: &str, step: usize, after_effect: bool) -> CrashPoint {
    CrashPoint {
        workflow: workflow.into(),
        step,
        undo: true,
        after_effect,
    }
}

fn count(execs: &[String], what: &str) -> usize {
    execs.iter().filter(|e| *e == what).count()
}

/// The journal and execution log of a run that crashed at `crashed`
/// (action of that step) show exactly one extra start, by the crashed
/// lease, and every step succeeded once.
async fn check_journal_after_action_crash(db: &TestDb, id: &str, crashed: Option<usize>) {
    let steps = db.store.list_steps(id).await.unwrap();
    assert_eq!(steps.len(), STEPS);
    assert!(steps.iter().all(|s| s.state == StepState::Succeeded));
    assert!(
        steps.iter().all(|s| s.attempt == 1),
        "a crash does not use up a retry"
    );
    let log = db.store.list_step_executions(Some(id)).await.unwrap();
    for i in 0..STEPS {
        let of_step: Vec<_> = log
            .iter()
            .filter(|e| e.step_index == i as i64 && e.kind == StepKind::Action)
            .collect();
        let starts = of_step
            .iter()
            .filter(|e| e.event == ExecutionEvent::Start)
            .count();
        let finishes: Vec<_> = of_step
            .iter()
            .filter(|e| e.event == ExecutionEvent::Finish)
            .collect();
        assert_eq!(starts, if crashed == Some(i) { 2 } else { 1 }, "step {i}");
        assert_eq!(finishes.len(), 1, "step {i} journaled once");
        assert_eq!(finishes[0].outcome.as_deref(), Some("succeeded"));
    }
    if let Some(c) = crashed {
        let gens: Vec<_> = log
            .iter()
            .filter(|e| e.step_index == c as i64)
            .map(|e| (e.event, e.generation))
            .collect();
        assert!(
            gens[0].1 < gens[1].1,
            "the re-run holds a newer lease: {gens:?}"
        );
    }
}

async fn crash_at_every_step_matches_a_crash_free_run(db: &TestDb) {
    let app = App::new();
    let clean = run_with_crashes(db, &app, "clean", json!({}), vec![]).await;
    assert_eq!(clean.state, WorkflowState::Completed);
    assert_eq!(clean.output.as_ref().unwrap()["step"], json!(STEPS - 1));
    let expected_effects = app.effects_of("clean");
    assert_eq!(expected_effects.len(), STEPS);
    check_journal_after_action_crash(db, "clean", None).await;

    for step in 0..STEPS {
        for after_effect in [false, true] {
            let id = format!(
                "crash-{step}-{}",
                if after_effect { "after" } else { "before" }
            );
            let wf = run_with_crashes(
                db,
                &app,
                &id,
                json!({}),
                vec![action(&id, step, after_effect)],
            )
            .await;
            assert_eq!(wf.state, WorkflowState::Completed, "{id}");
            assert_eq!(wf.output, clean.output, "{id}");
            assert_eq!(app.effects_of(&id), expected_effects, "{id}");
            let execs = app.executions_of(&id);
            for i in 0..STEPS {
                let expected = if i == step { 2 } else { 1 };
                assert_eq!(
                    count(&execs, &format!("s{i}/action")),
                    expected,
                    "{id} s{i}"
                );
            }
            check_journal_after_action_crash(db, &id, Some(step)).await;
            assert!(wf.attempts >= 2, "{id} was claimed again after the crash");
        }
    }
}

async fn crash_during_compensation_matches_a_crash_free_run(db: &TestDb) {
    let app = App::new();
    let input = json!({ "fail_at": STEPS - 1 });
    let clean = run_with_crashes(db, &app, "clean", input.clone(), vec![]).await;
    assert_eq!(clean.state, WorkflowState::Failed);
    assert_eq!(
        clean.error.as_deref(),
        Some("step `s4` failed: planned failure")
    );
    let expected_undone = app.undone_of("clean");
    assert_eq!(
        expected_undone,
        vec!["s3", "s2", "s1", "s0"],
        "reverse order"
    );
    assert!(app.effects_of("clean").is_empty());

    let mut points = Vec::new();
    // Crashes in the forward run, including right before the failing step.
    for step in 0..STEPS {
        points.push((format!("a{step}-before"), action("", step, false)));
        if step < STEPS - 1 {
            points.push((format!("a{step}-after"), action("", step, true)));
        }
    }
    // Crashes in every undo, before and after its effect.
    for step in 0..STEPS - 1 {
        points.push((format!("u{step}-before"), undo("", step, false)));
        points.push((format!("u{step}-after"), undo("", step, true)));
    }
    for (name, mut point) in points {
        let id = format!("comp-{name}");
        point.workflow.clone_from(&id);
        let is_undo = point.undo;
        let step = point.step;
        let wf = run_with_crashes(db, &app, &id, input.clone(), vec![point]).await;
        assert_eq!(wf.state, WorkflowState::Failed, "{id}");
        assert_eq!(wf.error, clean.error, "{id}");
        assert!(app.effects_of(&id).is_empty(), "{id}: everything undone");
        assert_eq!(app.undone_of(&id), expected_undone, "{id}");
        let steps = db.store.list_steps(&id).await.unwrap();
        let states: Vec<_> = steps.iter().map(|s| s.state).collect();
        assert_eq!(
            states,
            vec![
                StepState::Compensated,
                StepState::Compensated,
                StepState::Compensated,
                StepState::Compensated,
                StepState::Failed
            ],
            "{id}"
        );
        let execs = app.executions_of(&id);
        let what = format!("s{step}/{}", if is_undo { "undo" } else { "action" });
        assert_eq!(
            count(&execs, &what),
            2,
            "{id}: the interrupted execution ran again"
        );
        for i in 0..STEPS - 1 {
            let undos = count(&execs, &format!("s{i}/undo"));
            assert_eq!(undos, if is_undo && i == step { 2 } else { 1 }, "{id} s{i}");
        }
    }
}

async fn repeating_every_step_gives_the_same_outcome(db: &TestDb) {
    let app = App::new();
    let clean = run_with_crashes(db, &app, "clean", json!({}), vec![]).await;

    // Every action crashes once right after its effect: each runs twice.
    let id = "repeat-forward";
    let crashes = (0..STEPS).map(|i| action(id, i, true)).collect();
    let wf = run_with_crashes(db, &app, id, json!({}), crashes).await;
    assert_eq!(wf.state, WorkflowState::Completed);
    assert_eq!(wf.output, clean.output);
    assert_eq!(app.effects_of(id), app.effects_of("clean"));
    let execs = app.executions_of(id);
    for i in 0..STEPS {
        assert_eq!(count(&execs, &format!("s{i}/action")), 2, "s{i}");
    }

    // The same on the way back: every action and every undo runs twice.
    let input = json!({ "fail_at": STEPS - 1 });
    let clean = run_with_crashes(db, &app, "clean-back", input.clone(), vec![]).await;
    let id = "repeat-back";
    let crashes = (0..STEPS - 1)
        .map(|i| action(id, i, true))
        .chain((0..STEPS - 1).rev().map(|i| undo(id, i, true)))
        .collect();
    let wf = run_with_crashes(db, &app, id, input, crashes).await;
    assert_eq!(wf.state, WorkflowState::Failed);
    assert_eq!(wf.error, clean.error);
    assert!(app.effects_of(id).is_empty());
    assert_eq!(app.undone_of(id), app.undone_of("clean-back"));
    let execs = app.executions_of(id);
    for i in 0..STEPS - 1 {
        assert_eq!(count(&execs, &format!("s{i}/action")), 2, "s{i}");
        assert_eq!(count(&execs, &format!("s{i}/undo")), 2, "s{i} undo");
    }
}

both_backends!(
    crash_at_every_step_matches_a_crash_free_run,
    crash_during_compensation_matches_a_crash_free_run,
    repeating_every_step_gives_the_same_outcome,
);
