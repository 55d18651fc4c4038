//! The node lifecycle and its two observation axes (design §6; HoodCloud
//! seeds 000/001: `internal/models/node.go`, `internal/health/machine.go`).
//!
//! [`NodeState`] is what the control plane *decides* about a node; the
//! [`SyncStatus`] and [`ApplicationHealth`] axes are what the agent *observes*.
//! They are deliberately separate: a node that is catching up reports
//! `sync_status = syncing` and stays reachable, so it is never `down` because
//! of syncing. Only missed heartbeats (3 consecutive, judged by the heartbeat
//! evaluator) make a node `down`.

use crate::machine::state_machine;

state_machine! {
    /// Where a managed node is in its life, as decided by the control plane.
    ///
    /// All moves go through the health machine (optimistic locking, one outbox
    /// event per transition, a state-log row that feeds uptime).
    pub enum NodeState: "node" {
        /// The provision workflow is creating the host, restoring keys and
        /// starting the client; the agent has not reported a running node yet.
        Provisioning = "provisioning",
        /// Running and reachable but behind the chain head (initial sync, or
        /// fell behind). Not down: syncing is progress, not an outage.
        Syncing = "syncing",
        /// Reachable, at the head, application checks pass.
        Healthy = "healthy",
        /// Reachable but application health is degraded or critical (peers
        /// low, RPC errors, disk pressure): serving, with a problem.
        Degraded = "degraded",
        /// Heartbeats missed (3 consecutive). After a grace period and outside
        /// the cooldown this triggers a migration workflow.
        Down = "down",
        /// The migration workflow is moving the node to a new host (new host,
        /// restore keys, start, wait for sync, retire the old host).
        Migrating = "migrating",
        /// Deliberately out of service for an upgrade or operator work;
        /// excluded from heartbeat judgement and from uptime.
        Maintenance = "maintenance",
        /// Stopped because its organization cannot pay (prepaid credits
        /// exhausted): the process is stopped, host, data and keys are kept.
        /// Not judged by heartbeats, not billable, not counted for uptime;
        /// a top-up resumes it, the end of the grace terminates it.
        Suspended = "suspended",
        /// The terminate workflow is stopping the node and deleting its host,
        /// keys and backups (user delete or subscription expiry).
        Terminating = "terminating",
        /// Gone; resources released. Terminal.
        Terminated = "terminated",
        /// Gave up: provisioning or migration failed and was compensated, an
        /// upgrade failed without a clean rollback, or teardown failed and
        /// needs an operator. Terminal: a failed node is replaced, not revived.
        Failed = "failed",
    }
    initial: [Provisioning],
    terminal: [Terminated, Failed],
    transitions: {
        // Synced at once (e.g. a dev chain or a snapshot at head) goes
        // straight to healthy. A provisioning node that never reports fails
        // its workflow (compensated) rather than going `down`: it was never up.
        Provisioning => [Syncing, Healthy, Failed, Terminating],
        Syncing => [Healthy, Degraded, Down, Migrating, Maintenance, Suspended, Terminating],
        // healthy -> syncing: fell behind the head and is catching up.
        Healthy => [Syncing, Degraded, Down, Migrating, Maintenance, Suspended, Terminating],
        Degraded => [Healthy, Syncing, Down, Migrating, Maintenance, Suspended, Terminating],
        // Recovered on its own (agent back): the first observation decides
        // which of healthy / syncing / degraded.
        Down => [Healthy, Syncing, Degraded, Migrating, Maintenance, Suspended, Terminating],
        // Success hands the node back to the health machine as syncing (or
        // healthy if already at head); a compensated failure leaves it down
        // (retried after the cooldown); an unrecoverable one fails it.
        Migrating => [Syncing, Healthy, Down, Failed, Terminating],
        // Upgrade done: back per observation. Host lost during maintenance:
        // down (then migration). Upgrade failed without rollback: failed
        // (seed 001: "workflow marks node failed/rolled_back"). No direct
        // maintenance -> migrating: a node leaves maintenance first.
        Maintenance => [Healthy, Syncing, Degraded, Down, Failed, Terminating],
        // Resumed: started again and handed back to the health machine as
        // syncing; the host died meanwhile: down (then migration, which
        // starts it on a new host).
        Suspended => [Syncing, Down, Terminating],
        Terminating => [Terminated, Failed],
        Terminated => [],
        Failed => [],
    }
}

impl NodeState {
    /// States the heartbeat evaluator judges: in these, 3 consecutive missed
    /// heartbeats move the node to `down`. Provisioning, migrating and
    /// maintenance are owned by a workflow (which has its own timeouts); down
    /// is already down; terminating and the terminal states are leaving.
    pub const fn is_heartbeat_evaluated(self) -> bool {
        matches!(self, Self::Syncing | Self::Healthy | Self::Degraded)
    }
}

state_machine! {
    /// Sync progress as observed by the agent (eth_syncing and head lag,
    /// getHealth slot lag, catching_up, initialblockdownload). An observation
    /// axis, separate from [`NodeState`]: any value may follow any other.
    pub enum SyncStatus: "sync_status" {
        /// No observation yet, or the agent stopped reporting.
        Unknown = "unknown",
        /// Catching up (initial sync or far behind).
        Syncing = "syncing",
        /// At (or within tolerance of) the chain head.
        Synced = "synced",
        /// Was synced, now behind the head by more than the profile allows.
        Lagging = "lagging",
    }
    initial: [Unknown],
    terminal: [],
    transitions: {
        Unknown => [Syncing, Synced, Lagging],
        Syncing => [Unknown, Synced, Lagging],
        Synced => [Unknown, Syncing, Lagging],
        Lagging => [Unknown, Syncing, Synced],
    }
}

state_machine! {
    /// Application health as judged by the chain profile's policies (CEL over
    /// collected observations). An observation axis: any value may follow any
    /// other; hysteresis, if any, is the evaluator's job.
    pub enum ApplicationHealth: "application_health" {
        /// No observation yet, or the agent stopped reporting.
        Unknown = "unknown",
        /// Every policy passes.
        Ok = "ok",
        /// A warning-level policy fails; the node still serves.
        Degraded = "degraded",
        /// A critical policy fails; the node is not fit to serve.
        Critical = "critical",
    }
    initial: [Unknown],
    terminal: [],
    transitions: {
        Unknown => [Ok, Degraded, Critical],
        Ok => [Unknown, Degraded, Critical],
        Degraded => [Unknown, Ok, Critical],
        Critical => [Unknown, Ok, Degraded],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::StateMachine;

    #[test]
    fn terminated_and_failed_are_terminal_and_nothing_else_is() {
        for &s in NodeState::ALL {
            let expected = matches!(s, NodeState::Terminated | NodeState::Failed);
            assert_eq!(s.is_terminal(), expected, "{s}");
        }
    }

    #[test]
    fn syncing_is_not_down() {
        // Syncing and down are different states; the sync axis has no "down"
        // at all. A syncing node becomes down only through the heartbeat
        // evaluator (missed heartbeats), which is an ordinary transition.
        assert_ne!(NodeState::Syncing, NodeState::Down);
        assert!(SyncStatus::ALL.iter().all(|s| s.as_str() != "down"));
        assert!(NodeState::Syncing.is_heartbeat_evaluated());
        assert!(NodeState::Syncing.can_transition_to(NodeState::Down));
    }

    #[test]
    fn every_heartbeat_evaluated_state_can_go_down_and_recover() {
        for &s in NodeState::ALL {
            if s.is_heartbeat_evaluated() {
                assert!(s.can_transition_to(NodeState::Down), "{s}");
                assert!(NodeState::Down.can_transition_to(s), "{s}");
            }
        }
        assert!(!NodeState::Maintenance.is_heartbeat_evaluated());
        assert!(!NodeState::Provisioning.is_heartbeat_evaluated());
    }

    #[test]
    fn key_node_rules() {
        use NodeState::*;
        // Down triggers migration; migration may fall back to down.
        assert!(Down.can_transition_to(Migrating));
        assert!(Migrating.can_transition_to(Down));
        // A provisioning node that never came up fails, it is not "down".
        assert!(!Provisioning.can_transition_to(Down));
        assert!(Provisioning.can_transition_to(Failed));
        // Leaving is one-way: no resurrection from terminating.
        for &s in NodeState::ALL {
            if s != Terminated && s != Failed {
                assert!(!Terminating.can_transition_to(s), "{s}");
            }
        }
        // Every live state can be terminated (user delete, expiry).
        for &s in NodeState::ALL {
            if !s.is_terminal() && s != Terminating {
                assert!(s.can_transition_to(Terminating), "{s}");
            }
        }
        // Maintenance is left before migrating.
        assert!(!Maintenance.can_transition_to(Migrating));
        // A suspended node is left alone by the heartbeat evaluator, comes
        // back only through a start (syncing), and every serving state can
        // be suspended.
        assert!(!Suspended.is_heartbeat_evaluated());
        assert!(Suspended.can_transition_to(Syncing));
        assert!(!Suspended.can_transition_to(Healthy));
        for &s in NodeState::ALL {
            if s.is_heartbeat_evaluated() || s == Down {
                assert!(s.can_transition_to(Suspended), "{s}");
            }
        }
    }

    #[test]
    fn observation_axes_are_any_to_any() {
        fn any_to_any<M: StateMachine>() {
            for &a in M::ALL {
                for &b in M::ALL {
                    assert_eq!(a.can_transition_to(b), a != b, "{a:?} -> {b:?}");
                }
            }
        }
        any_to_any::<SyncStatus>();
        any_to_any::<ApplicationHealth>();
    }
}
