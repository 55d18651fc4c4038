//! The host lifecycle (design §4): a VM, bare-metal server or local sandbox
//! created by a provider, with an agent that enrolls and then dials out.

use crate::machine::state_machine;

state_machine! {
    /// Where a host is between "asked the provider" and "gone".
    pub enum HostState: "host" {
        /// Recorded; the provider has not been called yet.
        Requested = "requested",
        /// The provider is creating the machine.
        Provisioning = "provisioning",
        /// The machine exists; waiting for its agent to present the one-time
        /// enrollment token and obtain a certificate.
        Enrolling = "enrolling",
        /// Agent enrolled and connected; the host accepts workloads.
        Ready = "ready",
        /// No new workloads; existing ones are being moved off before the
        /// host is deleted (or the drain is cancelled).
        Draining = "draining",
        /// The agent's stream is gone and heartbeats are missing. Its nodes
        /// are judged by the node health machine; the host may come back.
        Unreachable = "unreachable",
        /// Fenced off by an operator or a rule (suspected compromise, repeated
        /// failures): no workloads scheduled, agent commands refused, kept for
        /// inspection until released or deleted.
        Quarantined = "quarantined",
        /// The provider is deleting the machine. Retried until done; never
        /// abandoned silently, since giving up would leak a paid machine.
        Deleting = "deleting",
        /// Deleted at the provider. Terminal.
        Deleted = "deleted",
        /// Never became usable: the provider refused, or the agent never
        /// enrolled, and the create workflow compensated (deleted whatever
        /// was made). Terminal.
        Failed = "failed",
    }
    initial: [Requested],
    terminal: [Deleted, Failed],
    transitions: {
        // Cancelling a host goes through deleting even when nothing may have
        // been created yet: the create call may be in flight, and deletion is
        // idempotent.
        Requested => [Provisioning, Failed, Deleting],
        Provisioning => [Enrolling, Failed, Deleting],
        Enrolling => [Ready, Failed, Deleting],
        // A ready host is drained before deletion so workloads move first.
        Ready => [Draining, Unreachable, Quarantined],
        Draining => [Ready, Unreachable, Quarantined, Deleting],
        // Unreachable hosts can be deleted directly: there is nothing to
        // drain through a dead agent (their nodes migrate via node health).
        Unreachable => [Ready, Draining, Quarantined, Deleting],
        Quarantined => [Ready, Draining, Deleting],
        Deleting => [Deleted],
        Deleted => [],
        Failed => [],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::StateMachine;

    #[test]
    fn ready_hosts_drain_before_deletion() {
        assert!(!HostState::Ready.can_transition_to(HostState::Deleting));
        assert!(HostState::Ready.can_transition_to(HostState::Draining));
        assert!(HostState::Draining.can_transition_to(HostState::Deleting));
    }

    #[test]
    fn deleting_only_ends_in_deleted() {
        let exits: Vec<_> = HostState::Deleting.successors().collect();
        assert_eq!(exits, vec![HostState::Deleted]);
        assert!(HostState::Deleted.is_terminal());
        assert!(HostState::Failed.is_terminal());
    }

    #[test]
    fn unreachable_host_can_come_back() {
        assert!(HostState::Ready.can_transition_to(HostState::Unreachable));
        assert!(HostState::Unreachable.can_transition_to(HostState::Ready));
    }
}
