//! Durable agent commands (design §4; seed 000 "Command queue delivery"):
//! `queued → dispatched → acked → succeeded | failed | expired`, idempotent by
//! command id, surviving a gateway restart.

use crate::machine::state_machine;

state_machine! {
    /// Delivery and outcome of one command sent to a host's agent.
    pub enum CommandState: "command" {
        /// Stored, waiting for the agent's stream (the agent may be offline).
        Queued = "queued",
        /// Written to the agent's stream; no acknowledgement yet.
        Dispatched = "dispatched",
        /// The agent has acknowledged receipt and owns execution.
        Acked = "acked",
        /// The agent reported success. Terminal.
        Succeeded = "succeeded",
        /// The agent reported failure, or rejected the command outright
        /// (bad signature, unknown type). Terminal.
        Failed = "failed",
        /// The deadline passed first. Terminal. From `acked` the outcome is
        /// unknown: callers must treat it as "maybe ran" and re-check state
        /// before retrying (commands are idempotent by id, so a retry with
        /// the same id is safe).
        Expired = "expired",
    }
    initial: [Queued],
    terminal: [Succeeded, Failed, Expired],
    transitions: {
        Queued => [Dispatched, Expired],
        // dispatched -> queued: the stream or the gateway died before the ack;
        // the command is redelivered (same id, so the agent de-duplicates).
        // dispatched -> succeeded/failed: a result implies receipt; a fast
        // command may report before its ack is recorded, and a real outcome
        // must never be discarded for a missing ack.
        Dispatched => [Acked, Queued, Succeeded, Failed, Expired],
        // No acked -> queued: after the ack the agent owns the command and
        // reports its progress on reconnect; redelivery would only duplicate.
        Acked => [Succeeded, Failed, Expired],
        Succeeded => [],
        Failed => [],
        Expired => [],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::StateMachine;
    use CommandState::*;

    #[test]
    fn unacknowledged_commands_are_redelivered_acknowledged_ones_are_not() {
        assert!(Dispatched.can_transition_to(Queued));
        assert!(!Acked.can_transition_to(Queued));
        assert!(!Acked.can_transition_to(Dispatched));
    }

    #[test]
    fn every_live_command_can_expire() {
        for &s in CommandState::ALL {
            if !s.is_terminal() {
                assert!(s.can_transition_to(Expired), "{s}");
            }
        }
    }

    #[test]
    fn outcomes_are_final() {
        assert_eq!(CommandState::TERMINAL, &[Succeeded, Failed, Expired]);
        assert!(!Queued.can_transition_to(Succeeded));
    }
}
