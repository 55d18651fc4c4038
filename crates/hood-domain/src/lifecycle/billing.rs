//! Billing lifecycles: subscriptions (design §8; seed 000 "subscription
//! cleanup: expiration, grace period, pending payment TTL"), capacity
//! allocations (seed 004 GPUaaS) and two-phase ledger transfers
//! (design §8, TigerBeetle's pending → post | void with timeout).

use crate::machine::state_machine;

state_machine! {
    /// A customer's subscription. Expiry (and cancellation, once effective)
    /// terminates the subscription's nodes and deletes their keys and backups.
    pub enum SubscriptionState: "subscription" {
        /// Created, waiting for the first payment (has a TTL; nothing is
        /// provisioned yet).
        PendingPayment = "pending_payment",
        /// Paid up; nodes run.
        Active = "active",
        /// The paid period ended without renewal; nodes keep running for the
        /// grace period so a late payment loses nothing.
        Grace = "grace",
        /// Ran out: the payment TTL or the grace period lapsed. Terminal.
        Expired = "expired",
        /// Ended by the customer or an operator. Terminal.
        Cancelled = "cancelled",
    }
    initial: [PendingPayment],
    terminal: [Expired, Cancelled],
    transitions: {
        PendingPayment => [Active, Expired, Cancelled],
        // Renewal while active is not a transition (active stays active);
        // there is no direct active -> expired: expiry always passes through
        // grace, even a zero-length one, so the warning path is uniform.
        Active => [Grace, Cancelled],
        Grace => [Active, Expired, Cancelled],
        Expired => [],
        Cancelled => [],
    }
}

state_machine! {
    /// An allocation of host capacity (a GPU/CPU slice) to a customer (seed
    /// 004: API returns `status=requested`, the provisioning worker sets
    /// `active`, the billing worker force-releases at zero credit).
    ///
    /// Force-release is not a separate state: it is a release with a reason
    /// (user, admin, credit depleted) recorded on the allocation. The
    /// teardown path is the same, and so is the end state.
    pub enum AllocationState: "allocation" {
        /// Accepted, slot(s) reserved in the same transaction; the
        /// provisioning event is in the outbox.
        Requested = "requested",
        /// The host agent is building the slice.
        Provisioning = "provisioning",
        /// Running and accruing charges per minute.
        Active = "active",
        /// Being torn down (user release, admin force-release, credits
        /// depleted); accrual has stopped. Retried until done.
        Releasing = "releasing",
        /// Torn down; slots freed. Terminal.
        Released = "released",
        /// Could not be provisioned (compensated), or the host was lost under
        /// it; slots freed, no further accrual. Terminal.
        Failed = "failed",
    }
    initial: [Requested],
    terminal: [Released, Failed],
    transitions: {
        // A release of a requested allocation still goes through releasing:
        // the provisioning event may already be on its way to a worker.
        Requested => [Provisioning, Releasing, Failed],
        Provisioning => [Active, Releasing, Failed],
        Active => [Releasing, Failed],
        // No releasing -> failed: giving up on teardown would leak capacity
        // that is no longer billed; the release workflow retries (and goes
        // `stuck` for an operator) instead.
        Releasing => [Released],
        Released => [],
        Failed => [],
    }
}

state_machine! {
    /// A ledger transfer. Single-phase transfers are created `posted`;
    /// two-phase ones are created `pending` (reserving the amount against
    /// must-not-exceed limits) and then posted, voided or left to expire.
    /// Transfers are immutable: each phase change is recorded as its own
    /// transfer row in the ledger, and this state summarizes the pair.
    pub enum TransferState: "transfer" {
        /// Amount reserved; awaiting post or void before its timeout.
        Pending = "pending",
        /// Amount moved. Terminal.
        Posted = "posted",
        /// Reservation released by request. Terminal.
        Voided = "voided",
        /// Reservation released by its timeout. Terminal.
        Expired = "expired",
    }
    initial: [Pending, Posted],
    terminal: [Posted, Voided, Expired],
    transitions: {
        Pending => [Posted, Voided, Expired],
        Posted => [],
        Voided => [],
        Expired => [],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::StateMachine;

    #[test]
    fn payment_during_grace_reactivates() {
        assert!(SubscriptionState::Grace.can_transition_to(SubscriptionState::Active));
        assert!(!SubscriptionState::Active.can_transition_to(SubscriptionState::Expired));
        assert!(SubscriptionState::Expired.is_terminal());
        assert!(SubscriptionState::Cancelled.is_terminal());
    }

    #[test]
    fn live_allocations_can_always_be_released() {
        for &s in AllocationState::ALL {
            if !s.is_terminal() && s != AllocationState::Releasing {
                assert!(s.can_transition_to(AllocationState::Releasing), "{s}");
            }
        }
        let exits: Vec<_> = AllocationState::Releasing.successors().collect();
        assert_eq!(exits, vec![AllocationState::Released]);
    }

    #[test]
    fn single_phase_transfers_start_posted() {
        assert!(TransferState::Posted.is_initial());
        assert!(TransferState::Posted.is_terminal());
        assert!(!TransferState::Voided.is_initial());
        assert!(!TransferState::Posted.can_transition_to(TransferState::Voided));
    }
}
