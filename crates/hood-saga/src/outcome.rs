//! What a step returns: the next move it asks of the engine, or why it
//! failed (retryable or permanent).

use hood_domain::Timestamp;
use std::fmt;

/// What an action asks the engine to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// The step is done; the value is journaled as its output.
    Done(serde_json::Value),
    /// Run this step's action again at (or after) this instant. The timer
    /// is durable and the worker is freed meanwhile; the next invocation
    /// sees it as [`StepContext::timer`].
    SleepUntil(Timestamp),
    /// Run this step's action again when a signal of this name arrives
    /// (read it with [`StepContext::take_signal`]) or at `deadline`, which
    /// the next invocation sees as [`StepContext::timer`] and may turn into
    /// an error.
    WaitForSignal {
        name: String,
        deadline: Option<Timestamp>,
    },
    /// Run this step's action again when any of these workflows (children)
    /// has finished. See [`StepContext::await_children`]. A step that is
    /// waiting has not succeeded, so an abort meanwhile does not undo it:
    /// start children in a step of their own, with an undo that aborts
    /// them, when they must not outlive a failed parent.
    WaitForChildren(Vec<String>),
}

impl StepOutcome {
    /// `Done` with any serialisable output.
    pub fn done(output: impl serde::Serialize) -> Result<Self, StepError> {
        serde_json::to_value(output)
            .map(Self::Done)
            .map_err(|e| StepError::permanent(format!("step output is not JSON: {e}")))
    }

    /// Waits for signal `name` without a deadline.
    pub fn wait_for_signal(name: impl Into<String>) -> Self {
        Self::WaitForSignal {
            name: name.into(),
            deadline: None,
        }
    }
}

impl From<serde_json::Value> for StepOutcome {
    fn from(v: serde_json::Value) -> Self {
        Self::Done(v)
    }
}

/// Why an action or undo failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Worth another attempt (timeouts, unavailable dependencies): retried
    /// per the step's [`RetryPolicy`], then treated as permanent.
    #[error("{0}")]
    Retryable(String),
    /// Retrying cannot help (bad input, refused by a provider): the
    /// workflow compensates at once (an undo failing this way leaves the
    /// workflow stuck).
    #[error("{0}")]
    Permanent(String),
}

impl StepError {
    pub fn retryable(msg: impl fmt::Display) -> Self {
        Self::Retryable(msg.to_string())
    }

    pub fn permanent(msg: impl fmt::Display) -> Self {
        Self::Permanent(msg.to_string())
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Retryable(m) | Self::Permanent(m) => m,
        }
    }
}
