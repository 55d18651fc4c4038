//! Rollouts (design §5; HoodCloud seed 000: RolloutWorkflow,
//! UpgradeNodeWorkflow): a fleet moved to a new version in batches, each
//! gated on the health of what it upgraded.
//!
//! Decisions:
//! - Pausing and resuming happen between batches; a batch in flight
//!   finishes (its nodes are mid-upgrade, in `maintenance`).
//! - Spending the failure budget reverts every node the rollout upgraded,
//!   automatically: `reverting`, then `reverted`, or `failed` when a revert
//!   itself fails (an operator's turn).
//! - Aborting stops before the next batch and reverts nothing: the operator
//!   chose to keep what is done.
//! - A rollout that cannot revert (a recipe change: the catalog holds only
//!   the current recipe) stops as `failed` when its budget is spent.

use crate::machine::state_machine;

state_machine! {
    /// The state of one rollout.
    pub enum RolloutState: "rollout" {
        /// Created; targets resolved, batches planned; not started.
        Pending = "pending",
        /// Upgrading a batch, or soaking it.
        Running = "running",
        /// Stopped between batches by an operator; `resume` goes on.
        Paused = "paused",
        /// Stopped between batches until an operator approves the next.
        AwaitingApproval = "awaiting_approval",
        /// Every batch upgraded and healthy. Terminal.
        Completed = "completed",
        /// The failure budget is spent: putting every upgraded node back.
        Reverting = "reverting",
        /// Every upgraded node is back on its previous version. Terminal.
        Reverted = "reverted",
        /// Stopped by an operator; what was done stays. Terminal.
        Aborted = "aborted",
        /// A revert could not finish, or a recipe rollout spent its
        /// failure budget; an operator must look. Terminal.
        Failed = "failed",
    }
    initial: [Pending],
    terminal: [Completed, Reverted, Aborted, Failed],
    transitions: {
        Pending => [Running, Aborted],
        Running => [Paused, AwaitingApproval, Completed, Reverting, Aborted, Failed],
        Paused => [Running, Reverting, Aborted, Failed],
        AwaitingApproval => [Running, Paused, Reverting, Aborted, Failed],
        Reverting => [Reverted, Failed],
        Completed => [],
        Reverted => [],
        Aborted => [],
        Failed => [],
    }
}

state_machine! {
    /// Where one node of a rollout stands.
    pub enum RolloutNodeState: "rollout_node" {
        /// In a batch not started yet.
        Waiting = "waiting",
        /// Its `upgrade-node` run is under way.
        Upgrading = "upgrading",
        /// Upgraded; healthy, synced and policy-clean for the soak period
        /// is still being watched.
        Soaking = "soaking",
        /// Upgraded and soaked. Counts as done.
        Upgraded = "upgraded",
        /// Its upgrade failed (and compensated itself back): spends budget.
        Failed = "failed",
        /// Being put back on the previous version (the rollout reverts).
        Reverting = "reverting",
        /// Back on the previous version.
        Reverted = "reverted",
        /// Not touched: the rollout ended before its batch.
        Skipped = "skipped",
    }
    initial: [Waiting],
    terminal: [Reverted, Skipped],
    transitions: {
        Waiting => [Upgrading, Skipped],
        Upgrading => [Soaking, Failed],
        // Unhealthy during the soak: a failure like any other. A rollout
        // that reverts takes back a soaking node too.
        Soaking => [Upgraded, Failed, Reverting],
        Upgraded => [Reverting],
        Failed => [Reverting],
        Reverting => [Reverted, Failed],
        Reverted => [],
        Skipped => [],
    }
}

impl RolloutState {
    /// Whether an operator may change it (pause, resume, approve, abort).
    pub const fn is_live(self) -> bool {
        matches!(
            self,
            Self::Pending | Self::Running | Self::Paused | Self::AwaitingApproval
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::StateMachine;

    #[test]
    fn a_rollout_ends_completed_reverted_aborted_or_failed() {
        use RolloutState::*;
        for &s in RolloutState::ALL {
            let terminal = matches!(s, Completed | Reverted | Aborted | Failed);
            assert_eq!(s.is_terminal(), terminal, "{s}");
            assert_eq!(s.is_live(), !terminal && s != Reverting, "{s}");
        }
        // Every live state can be aborted; a revert cannot be.
        for &s in RolloutState::ALL {
            if s.is_live() {
                assert!(s.can_transition_to(Aborted), "{s}");
            }
        }
        assert!(!Reverting.can_transition_to(Aborted));
        // Nothing completes without running.
        assert!(!Paused.can_transition_to(Completed));
        assert!(!Pending.can_transition_to(Completed));
    }

    #[test]
    fn a_node_counts_once_and_is_reverted_only_after_it_moved() {
        use RolloutNodeState::*;
        assert!(
            !Waiting.can_transition_to(Reverting),
            "untouched: nothing to revert"
        );
        assert!(Upgraded.can_transition_to(Reverting));
        assert!(Failed.can_transition_to(Reverting));
        // Never upgraded twice: no way back to upgrading.
        for &s in RolloutNodeState::ALL {
            assert!(!s.can_transition_to(Upgrading) || s == Waiting, "{s}");
        }
    }
}
