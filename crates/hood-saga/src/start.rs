//! A request to start a run, and what starting it did.

use crate::SagaError;
use hood_store::workflow::WorkflowRecord;

/// A run to start.
#[derive(Debug, Clone, PartialEq)]
pub struct StartWorkflow {
    /// Deterministic id (`migrate-node-{id}-{version}`): starting the same
    /// id again returns the existing run instead of a second one.
    pub id: String,
    pub name: String,
    pub version: i64,
    pub input: serde_json::Value,
    /// Set by [`crate::StepContext::start_child`].
    pub parent_id: Option<String>,
}

impl StartWorkflow {
    /// A top-level run of `name@version` with any serialisable input.
    pub fn new(
        id: impl Into<String>,
        workflow: (&str, i64),
        input: impl serde::Serialize,
    ) -> Result<Self, SagaError> {
        Ok(Self {
            id: id.into(),
            name: workflow.0.to_owned(),
            version: workflow.1,
            input: serde_json::to_value(input)
                .map_err(|e| SagaError::InvalidInput(e.to_string()))?,
            parent_id: None,
        })
    }
}

/// The result of [`Engine::start`].
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub workflow: WorkflowRecord,
    /// False when the id already existed (deduplicated).
    pub created: bool,
}
