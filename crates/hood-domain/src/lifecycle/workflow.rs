//! Durable workflows (sagas) and their steps (design §3; modelled on steno
//! and DBOS; seed 001 "compensation on failure").
//!
//! A workflow runs its steps forward; when a step fails for good, the steps
//! that succeeded are undone in reverse order. If an undo itself fails, the
//! workflow is `stuck` and waits for an operator.

use crate::machine::state_machine;

state_machine! {
    /// The state of one workflow run.
    pub enum WorkflowState: "workflow" {
        /// Created (deduplicated by its deterministic id), not yet claimed.
        Pending = "pending",
        /// A worker holds the lease and is executing steps forward.
        Running = "running",
        /// Parked on a durable timer (sleep until), a signal (approve) or
        /// child workflows; holds no lease.
        Waiting = "waiting",
        /// Paused by an operator signal; resumes to running.
        Paused = "paused",
        /// A step failed for good (or the workflow was aborted): undoing the
        /// completed steps in reverse order.
        Compensating = "compensating",
        /// Every step succeeded. Terminal.
        Completed = "completed",
        /// Failed and fully compensated (or refused/aborted before any step
        /// ran, so there was nothing to undo). Terminal.
        Failed = "failed",
        /// An undo failed after its retries: some effects may remain. Visible
        /// to operators, who retry the compensation or abandon the run.
        Stuck = "stuck",
        /// An operator gave up on a stuck run; leftover effects are theirs to
        /// clean up (recorded in the journal). Terminal.
        Abandoned = "abandoned",
    }
    initial: [Pending],
    terminal: [Completed, Failed, Abandoned],
    transitions: {
        // pending -> failed: unknown workflow version (refused, never
        // mis-replayed) or aborted before the first step.
        Pending => [Running, Failed],
        // running -> failed directly when no completed step needs undoing.
        Running => [Waiting, Paused, Compensating, Completed, Failed],
        // waiting -> compensating: abort signal or a wait deadline passed.
        Waiting => [Running, Paused, Compensating],
        Paused => [Running, Compensating],
        // Compensation is not pausable: it is already the way out.
        Compensating => [Failed, Stuck],
        // A stuck run retries its compensation, never runs forward again:
        // undos already applied would make a forward run inconsistent with
        // the journal, which unwinds strictly in reverse.
        Stuck => [Compensating, Abandoned],
        Completed => [],
        Failed => [],
        Abandoned => [],
    }
}

impl WorkflowState {
    /// A worker may claim the run and make progress (holds or may take a
    /// lease). Waiting and paused runs are woken by timers and signals;
    /// stuck ones only by an operator.
    pub const fn is_claimable(self) -> bool {
        matches!(self, Self::Pending | Self::Running | Self::Compensating)
    }
}

state_machine! {
    /// The state of one step of a workflow run, as journaled.
    pub enum StepState: "workflow_step" {
        /// Not started (or waiting for its backoff before another attempt).
        Pending = "pending",
        /// The action is executing.
        Running = "running",
        /// The action completed; its output is journaled. Not terminal: the
        /// step is undone if a later step fails.
        Succeeded = "succeeded",
        /// The action failed after its retries. Actions are atomic from the
        /// saga's view, so a failed action has no undo to run. Terminal.
        Failed = "failed",
        /// The undo is executing (with its own retries).
        Compensating = "compensating",
        /// The undo completed. Terminal.
        Compensated = "compensated",
        /// The undo failed after its retries; the workflow is stuck until an
        /// operator retries (back to compensating) or abandons it (the step
        /// stays here as the record of what was left behind).
        UndoFailed = "undo_failed",
    }
    initial: [Pending],
    terminal: [Failed, Compensated],
    transitions: {
        Pending => [Running],
        // running -> pending: an attempt failed with retries left; the step
        // waits out its backoff and is claimed again.
        Running => [Succeeded, Failed, Pending],
        Succeeded => [Compensating],
        Compensating => [Compensated, UndoFailed],
        UndoFailed => [Compensating],
        Failed => [],
        Compensated => [],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::StateMachine;

    #[test]
    fn stuck_is_left_only_by_retrying_compensation_or_abandoning() {
        let exits: Vec<_> = WorkflowState::Stuck.successors().collect();
        assert_eq!(
            exits,
            vec![WorkflowState::Compensating, WorkflowState::Abandoned]
        );
        assert!(!WorkflowState::Stuck.is_terminal());
    }

    #[test]
    fn only_compensation_gets_stuck() {
        for &s in WorkflowState::ALL {
            assert_eq!(
                s.can_transition_to(WorkflowState::Stuck),
                s == WorkflowState::Compensating,
                "{s}"
            );
        }
    }

    #[test]
    fn only_steps_that_succeeded_are_compensated() {
        for &s in StepState::ALL {
            assert_eq!(
                s.can_transition_to(StepState::Compensating),
                matches!(s, StepState::Succeeded | StepState::UndoFailed),
                "{s}"
            );
        }
    }

    #[test]
    fn claimable_states_are_not_terminal() {
        for &s in WorkflowState::ALL {
            if s.is_claimable() {
                assert!(!s.is_terminal(), "{s}");
            }
        }
    }
}
