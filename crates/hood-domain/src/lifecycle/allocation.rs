//! Allocations: rented slices of a host (design §11; seed 004's
//! provisioning flow).
//!
//! Decisions:
//! - An allocation is created `requested` with its placement reserved in
//!   the same transaction; the provisioning worker moves it to
//!   `provisioning` when it dispatches the task to the host's agent, and
//!   to `active` when the agent's identity-bound result says it runs.
//! - Release (the owner, an operator's force-release, credits running out,
//!   the idle policy or the maximum duration) goes through `releasing`
//!   while the agent stops the sandbox; `released` frees the reservation.
//!   A release asked before the sandbox ran goes the same way, so the
//!   agent is always told to clean up what it may have started.
//! - `failed` (provisioning gave up) also frees the reservation. Both
//!   `released` and `failed` are terminal.

use crate::machine::{state_machine, StateMachine};

state_machine! {
    /// The state of one allocation.
    pub enum AllocationState: "allocation" {
        /// Placement reserved; waiting for the provisioning worker.
        Requested = "requested",
        /// The task is on its way to, or running on, the host's agent.
        Provisioning = "provisioning",
        /// Running; accruing its SKU's price every minute.
        Active = "active",
        /// Being stopped on the host.
        Releasing = "releasing",
        /// Stopped; its reservation is free again. Terminal.
        Released = "released",
        /// Provisioning gave up; its reservation is free again. Terminal.
        Failed = "failed",
    }
    initial: [Requested],
    terminal: [Released, Failed],
    transitions: {
        Requested => [Provisioning, Releasing, Failed],
        Provisioning => [Active, Releasing, Failed],
        Active => [Releasing],
        Releasing => [Released],
        Released => [],
        Failed => [],
    }
}

impl AllocationState {
    /// Whether the allocation holds its placement (a reservation that
    /// counts against the host's capacity).
    pub fn holds_placement(self) -> bool {
        !self.is_terminal()
    }

    /// Whether it is billed by the minute.
    pub fn accrues(self) -> bool {
        self == AllocationState::Active
    }

    /// The transitions a release takes from here: at once to `released`
    /// when nothing was dispatched to the host yet, else to `releasing`
    /// until the agent has stopped it; `None` when it is already on its
    /// way out or ended.
    pub fn release_path(self) -> Option<&'static [AllocationState]> {
        use AllocationState::*;
        match self {
            Requested => Some(&[Requested, Releasing, Released]),
            Provisioning => Some(&[Provisioning, Releasing]),
            Active => Some(&[Active, Releasing]),
            Releasing | Released | Failed => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_release_path_is_made_of_legal_transitions() {
        for state in AllocationState::ALL {
            let Some(path) = state.release_path() else {
                assert!(matches!(
                    state,
                    AllocationState::Releasing
                        | AllocationState::Released
                        | AllocationState::Failed
                ));
                continue;
            };
            assert_eq!(path[0], *state);
            for pair in path.windows(2) {
                assert!(pair[0].transition(pair[1]).is_ok(), "{pair:?}");
            }
            assert!(matches!(
                path.last(),
                Some(AllocationState::Releasing | AllocationState::Released)
            ));
        }
    }

    use super::*;

    #[test]
    fn the_provisioning_path_and_its_exits() {
        use AllocationState::*;
        assert!(Requested.can_transition_to(Provisioning));
        assert!(Provisioning.can_transition_to(Active));
        assert!(Active.can_transition_to(Releasing));
        assert!(Releasing.can_transition_to(Released));
        assert!(
            !Active.can_transition_to(Released),
            "release stops the sandbox first"
        );
        assert!(
            !Active.can_transition_to(Failed),
            "a running allocation is released, not failed"
        );
        assert!(!Released.can_transition_to(Active), "released is final");
    }

    #[test]
    fn only_live_allocations_hold_capacity_and_only_active_ones_accrue() {
        for &s in AllocationState::ALL {
            assert_eq!(s.holds_placement(), !s.is_terminal(), "{s}");
            assert_eq!(s.accrues(), s == AllocationState::Active, "{s}");
            if !s.is_terminal() && s != AllocationState::Releasing {
                assert!(
                    s.can_transition_to(AllocationState::Releasing),
                    "{s} can be released"
                );
            }
        }
    }
}
