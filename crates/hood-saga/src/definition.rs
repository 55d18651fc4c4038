//! Workflow definitions: named, versioned sequences of steps, each an
//! action with an optional undo and a retry policy, and the registry the
//! engine looks them up in.

use crate::context::StepContext;
use crate::outcome::{StepError, StepOutcome};
use crate::retry::RetryPolicy;
use crate::SagaError;
use async_trait::async_trait;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// A step's forward action.
///
/// **Actions must be idempotent.** A step is journaled only after its
/// action returns, so when a worker dies in between (or loses its lease)
/// the action runs again, on this or another worker. Use deterministic ids
/// for what it creates (derived from [`StepContext::workflow_id`]) and
/// "create if absent" semantics. Async closures
/// `|ctx: StepContext<C>| async move { … }` implement this trait.
#[async_trait]
pub trait Action<C>: Send + Sync + 'static {
    async fn run(&self, ctx: StepContext<C>) -> Result<StepOutcome, StepError>;
}

/// A step's compensation, run in reverse step order when a later step fails
/// for good or the workflow is aborted. Like actions, undos must be
/// idempotent; they must also tolerate a resource that is already gone.
/// [`StepContext::output`] holds the action's journaled output.
#[async_trait]
pub trait Undo<C>: Send + Sync + 'static {
    async fn undo(&self, ctx: StepContext<C>) -> Result<(), StepError>;
}

#[async_trait]
impl<C, F, Fut> Action<C> for F
where
    C: Send + Sync + 'static,
    F: Fn(StepContext<C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<StepOutcome, StepError>> + Send + 'static,
{
    async fn run(&self, ctx: StepContext<C>) -> Result<StepOutcome, StepError> {
        (self)(ctx).await
    }
}

/// Adapts an async closure into an [`Undo`] (closures cannot implement both
/// traits unambiguously, so undo closures are wrapped by [`Step::undo`]).
struct UndoFn<F>(F);

#[async_trait]
impl<C, F, Fut> Undo<C> for UndoFn<F>
where
    C: Send + Sync + 'static,
    F: Fn(StepContext<C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), StepError>> + Send + 'static,
{
    async fn undo(&self, ctx: StepContext<C>) -> Result<(), StepError> {
        (self.0)(ctx).await
    }
}

/// One step of a workflow.
pub struct Step<C> {
    pub(crate) name: String,
    pub(crate) action: Arc<dyn Action<C>>,
    pub(crate) undo: Option<Arc<dyn Undo<C>>>,
    pub(crate) retry: RetryPolicy,
}

impl<C: Send + Sync + 'static> Step<C> {
    /// A step with [`RetryPolicy::DEFAULT`] and no undo.
    pub fn new(name: impl Into<String>, action: impl Action<C>) -> Self {
        Self {
            name: name.into(),
            action: Arc::new(action),
            undo: None,
            retry: RetryPolicy::DEFAULT,
        }
    }

    /// Adds an undo given as an async closure.
    pub fn undo<F, Fut>(self, undo: F) -> Self
    where
        F: Fn(StepContext<C>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), StepError>> + Send + 'static,
    {
        self.undo_with(UndoFn(undo))
    }

    /// Adds an undo given as an [`Undo`] implementation.
    pub fn undo_with(mut self, undo: impl Undo<C>) -> Self {
        self.undo = Some(Arc::new(undo));
        self
    }

    /// The policy for the action and the undo alike.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn policy(&self) -> RetryPolicy {
        self.retry
    }

    pub fn has_undo(&self) -> bool {
        self.undo.is_some()
    }
}

impl<C> fmt::Debug for Step<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("has_undo", &self.undo.is_some())
            .field("retry", &self.retry)
            .finish()
    }
}

/// A named, versioned sequence of steps.
///
/// The journal refers to steps by index, so a change to the steps of a
/// workflow that may have runs in flight must be a new `version`; old runs
/// keep running on the old definition as long as it stays registered.
pub struct Workflow<C> {
    pub(crate) name: String,
    pub(crate) version: i64,
    pub(crate) steps: Vec<Step<C>>,
}

impl<C: Send + Sync + 'static> Workflow<C> {
    pub fn new(name: impl Into<String>, version: i64) -> Self {
        Self {
            name: name.into(),
            version,
            steps: Vec::new(),
        }
    }

    /// Appends a step.
    pub fn step(mut self, step: Step<C>) -> Self {
        self.steps.push(step);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    pub fn steps(&self) -> &[Step<C>] {
        &self.steps
    }
}

impl<C> fmt::Debug for Workflow<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("steps", &self.steps)
            .finish()
    }
}

/// The workflow definitions a process knows, by `(name, version)`. A worker
/// claims only runs of these, so a run of a version this binary does not
/// know is left untouched (for a binary that does) instead of being
/// replayed against the wrong steps.
pub struct Registry<C> {
    defs: BTreeMap<(String, i64), Arc<Workflow<C>>>,
}

impl<C: Send + Sync + 'static> Registry<C> {
    pub fn new() -> Self {
        Self {
            defs: BTreeMap::new(),
        }
    }

    /// Adds a definition. Refuses a second definition of the same name and
    /// version, an empty name and duplicate step names (outputs are looked
    /// up by step name).
    pub fn register(&mut self, workflow: Workflow<C>) -> Result<(), SagaError> {
        let key = (workflow.name.clone(), workflow.version);
        if workflow.name.is_empty() {
            return Err(SagaError::InvalidDefinition(
                "workflow name is empty".into(),
            ));
        }
        let mut seen = HashSet::new();
        for step in &workflow.steps {
            if !seen.insert(step.name.as_str()) {
                return Err(SagaError::InvalidDefinition(format!(
                    "{} v{}: step name `{}` appears twice",
                    workflow.name, workflow.version, step.name
                )));
            }
        }
        if self.defs.contains_key(&key) {
            return Err(SagaError::InvalidDefinition(format!(
                "{} v{} is registered twice",
                workflow.name, workflow.version
            )));
        }
        self.defs.insert(key, Arc::new(workflow));
        Ok(())
    }

    /// Builder form of [`register`](Self::register).
    pub fn with(mut self, workflow: Workflow<C>) -> Result<Self, SagaError> {
        self.register(workflow)?;
        Ok(self)
    }

    pub fn get(&self, name: &str, version: i64) -> Option<&Arc<Workflow<C>>> {
        self.defs.get(&(name.to_owned(), version))
    }

    /// Every `(name, version)` known, for claims.
    pub fn keys(&self) -> Vec<(String, i64)> {
        self.defs.keys().cloned().collect()
    }
}

impl<C: Send + Sync + 'static> Default for Registry<C> {
    fn default() -> Self {
        Self::new()
    }
}
