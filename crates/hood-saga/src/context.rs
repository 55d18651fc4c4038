//! What an action or undo sees: the run, its input, earlier outputs, the
//! attempt, its durable timer and signals, the application's services, and
//! helpers to start and await child workflows.

use crate::outcome::{StepError, StepOutcome};
use crate::start::{StartWorkflow, Started};
use crate::SagaError;
use async_trait::async_trait;
use hood_domain::lifecycle::WorkflowState;
use hood_domain::machine::StateMachine;
use hood_domain::Timestamp;
use hood_store::workflow::{SignalRecord, StepKind, WorkflowDetail, WorkflowRecord};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A child workflow to start (idempotently, by its deterministic id).
#[derive(Debug, Clone, PartialEq)]
pub struct ChildSpec {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub input: serde_json::Value,
}

impl ChildSpec {
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        version: i64,
        input: serde_json::Value,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            version,
            input,
        }
    }
}

/// What a running step may ask of the engine that runs it: start runs,
/// read them, signal them. The engine implements it; steps see it through
/// [`StepContext::runs`].
#[async_trait]
pub trait Runs: Send + Sync {
    /// Creates the run (or finds it: same id, same definition).
    async fn start(&self, request: StartWorkflow) -> Result<Started, SagaError>;
    /// A run with its step journal.
    async fn get(&self, id: &str) -> Result<Option<WorkflowDetail>, SagaError>;
    /// Delivers a signal (durably) and wakes the run if it is parked.
    async fn signal(
        &self,
        workflow_id: &str,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<(), SagaError>;
}

/// The context of one execution of an action or undo. Cheap to clone.
pub struct StepContext<C> {
    /// The run's deterministic id: derive the ids of what the step creates
    /// from it, so a re-run finds instead of duplicates.
    pub workflow_id: String,
    pub workflow_name: String,
    pub version: i64,
    pub step_name: String,
    pub step_index: usize,
    pub kind: StepKind,
    /// 1-based attempt of this action (or undo); a re-run after a crash
    /// keeps the number of the interrupted attempt.
    pub attempt: u32,
    /// When this execution started (engine clock).
    pub now: Timestamp,
    /// The durable timer this step set when it last returned
    /// [`StepOutcome::SleepUntil`] or waited with a deadline.
    pub timer: Option<Timestamp>,
    /// For an undo: the output its action journaled.
    pub output: Option<serde_json::Value>,
    /// The application's services (provider clients, stores, the agent
    /// gateway…), shared by every step.
    pub app: Arc<C>,
    pub(crate) input: Arc<serde_json::Value>,
    pub(crate) outputs: Arc<BTreeMap<String, serde_json::Value>>,
    pub(crate) signals: Arc<Vec<SignalRecord>>,
    pub(crate) taken: Arc<Mutex<Vec<String>>>,
    pub(crate) runs: Arc<dyn Runs>,
}

impl<C> Clone for StepContext<C> {
    fn clone(&self) -> Self {
        Self {
            workflow_id: self.workflow_id.clone(),
            workflow_name: self.workflow_name.clone(),
            version: self.version,
            step_name: self.step_name.clone(),
            step_index: self.step_index,
            kind: self.kind,
            attempt: self.attempt,
            now: self.now,
            timer: self.timer,
            output: self.output.clone(),
            app: Arc::clone(&self.app),
            input: Arc::clone(&self.input),
            outputs: Arc::clone(&self.outputs),
            signals: Arc::clone(&self.signals),
            taken: Arc::clone(&self.taken),
            runs: Arc::clone(&self.runs),
        }
    }
}

impl<C: Send + Sync + 'static> StepContext<C> {
    /// The workflow's input.
    pub fn input(&self) -> &serde_json::Value {
        &self.input
    }

    /// The input as `T`; a mismatch is permanent (retrying cannot fix it).
    pub fn input_as<T: DeserializeOwned>(&self) -> Result<T, StepError> {
        serde_json::from_value(self.input.as_ref().clone())
            .map_err(|e| StepError::permanent(format!("workflow input: {e}")))
    }

    /// The output of an earlier, succeeded step.
    pub fn output_of(&self, step: &str) -> Option<&serde_json::Value> {
        self.outputs.get(step)
    }

    /// The output of an earlier step as `T`; missing or mismatched is
    /// permanent.
    pub fn output_as<T: DeserializeOwned>(&self, step: &str) -> Result<T, StepError> {
        let v = self
            .outputs
            .get(step)
            .ok_or_else(|| StepError::permanent(format!("no output of step `{step}`")))?;
        serde_json::from_value(v.clone())
            .map_err(|e| StepError::permanent(format!("output of step `{step}`: {e}")))
    }

    /// Every earlier output, by step name.
    pub fn outputs(&self) -> &BTreeMap<String, serde_json::Value> {
        &self.outputs
    }

    /// Takes the oldest unconsumed signal named `name`. It is marked
    /// consumed only if this action then completes (`Done`), atomically
    /// with the step's journal entry; otherwise it stays for the next run.
    pub fn take_signal(&self, name: &str) -> Option<SignalRecord> {
        let mut taken = self
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let signal = self
            .signals
            .iter()
            .find(|s| s.name == name && !taken.contains(&s.id))?;
        taken.push(signal.id.clone());
        Some(signal.clone())
    }

    /// Durable sleep of `duration` from the step's first invocation:
    /// `Some(outcome)` to return while the sleep lasts, `None` once it is
    /// over. The deadline is journaled, so restarts neither shorten nor
    /// extend it.
    pub fn sleep_for(&self, duration: Duration) -> Option<StepOutcome> {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        self.sleep_until(self.timer.unwrap_or(self.now.plus_millis(millis)))
    }

    /// Durable sleep until `at` (see [`sleep_for`](Self::sleep_for)).
    pub fn sleep_until(&self, at: Timestamp) -> Option<StepOutcome> {
        (self.now < at).then_some(StepOutcome::SleepUntil(at))
    }

    /// The engine's runs, e.g. to read or start unrelated workflows or send
    /// signals.
    pub fn runs(&self) -> Arc<dyn Runs> {
        Arc::clone(&self.runs)
    }

    /// Starts a child of this run (idempotent by `spec.id`). Its parent is
    /// woken when it finishes.
    pub async fn start_child(&self, spec: ChildSpec) -> Result<WorkflowRecord, StepError> {
        let start = StartWorkflow {
            id: spec.id,
            name: spec.name,
            version: spec.version,
            input: spec.input,
            parent_id: Some(self.workflow_id.clone()),
        };
        match self.runs.start(start).await {
            Ok(started) => Ok(started.workflow),
            Err(e) if e.is_permanent() => Err(StepError::permanent(e)),
            Err(e) => Err(StepError::retryable(e)),
        }
    }

    /// Starts the child if needed and reports: `Done(output)` once it
    /// completed, [`StepOutcome::WaitForChildren`] while it runs, and a
    /// permanent error if it failed or was abandoned.
    pub async fn await_child(&self, spec: ChildSpec) -> Result<StepOutcome, StepError> {
        let outcome = self.await_children(vec![spec]).await?;
        Ok(match outcome {
            StepOutcome::Done(serde_json::Value::Array(mut outputs)) if outputs.len() == 1 => {
                StepOutcome::Done(outputs.remove(0))
            }
            other => other,
        })
    }

    /// [`await_child`](Self::await_child) for several children at once (a
    /// rollout batch): `Done([outputs in spec order])` when all completed.
    pub async fn await_children(&self, specs: Vec<ChildSpec>) -> Result<StepOutcome, StepError> {
        let mut outputs = Vec::with_capacity(specs.len());
        let mut running = Vec::new();
        for spec in specs {
            let id = spec.id.clone();
            let child = self.start_child(spec).await?;
            match child.state {
                WorkflowState::Completed => {
                    outputs.push(child.output.unwrap_or(serde_json::Value::Null));
                }
                s if s.is_terminal() => {
                    return Err(StepError::permanent(format!(
                        "child workflow {id} {s}: {}",
                        child.error.as_deref().unwrap_or("no error recorded")
                    )));
                }
                _ => running.push(id),
            }
        }
        if running.is_empty() {
            Ok(StepOutcome::Done(serde_json::Value::Array(outputs)))
        } else {
            Ok(StepOutcome::WaitForChildren(running))
        }
    }

    /// Sends a signal to any workflow (e.g. `abort` to a child from an
    /// undo). A finished target is not an error.
    pub async fn signal(
        &self,
        workflow_id: &str,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<(), StepError> {
        match self.runs.signal(workflow_id, name, payload).await {
            Ok(()) | Err(SagaError::Finished(_)) => Ok(()),
            Err(e) if e.is_permanent() => Err(StepError::permanent(e)),
            Err(e) => Err(StepError::retryable(e)),
        }
    }

    /// Ids of the signals taken by this execution.
    pub(crate) fn taken_signals(&self) -> Vec<String> {
        self.taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
