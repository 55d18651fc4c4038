//! Subscriptions (design §8; seed 000 payment service: subscriptions end in
//! termination; seed 002 §5 billing flow).
//!
//! Decisions:
//! - A subscription starts `pending_payment` (a contract whose first payment
//!   has not arrived) or straight `active` (a contract that bills in arrears,
//!   or a fee the operator waived); the service decides which.
//! - A failed or missing payment moves `active` into `grace`; a payment
//!   during grace returns it to `active`. Grace running out is `expired`:
//!   terminal, and the subscription's nodes are terminated and their keys
//!   and backups deleted.
//! - `cancelled` is the organization's (or an operator's) choice, from any
//!   live state; also terminal. Cancelling ends billing; it does not delete
//!   anything by itself.

use crate::machine::state_machine;

state_machine! {
    /// The state of one subscription.
    pub enum SubscriptionState: "subscription" {
        /// Waiting for the first payment.
        PendingPayment = "pending_payment",
        /// Paid up; service runs.
        Active = "active",
        /// A payment failed or is overdue; service runs until the grace
        /// period ends.
        Grace = "grace",
        /// Grace ran out: service is terminated. Terminal.
        Expired = "expired",
        /// Ended by choice. Terminal.
        Cancelled = "cancelled",
    }
    initial: [PendingPayment, Active],
    terminal: [Expired, Cancelled],
    transitions: {
        PendingPayment => [Active, Expired, Cancelled],
        Active => [Grace, Cancelled],
        Grace => [Active, Expired, Cancelled],
        Expired => [],
        Cancelled => [],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::StateMachine;

    #[test]
    fn the_payment_path() {
        use SubscriptionState::*;
        assert!(PendingPayment.can_transition_to(Active));
        assert!(Active.can_transition_to(Grace));
        assert!(
            Grace.can_transition_to(Active),
            "a late payment restores service"
        );
        assert!(Grace.can_transition_to(Expired));
        assert!(
            !Active.can_transition_to(Expired),
            "expiry only after grace"
        );
        assert!(!Expired.can_transition_to(Active), "expiry is final");
    }

    #[test]
    fn every_live_state_can_be_cancelled() {
        for &s in SubscriptionState::ALL {
            if !s.is_terminal() {
                assert!(s.can_transition_to(SubscriptionState::Cancelled), "{s}");
            }
        }
    }
}
