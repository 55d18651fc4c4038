//! Invoices (design §8): drafted at period close, issued (numbered and
//! immutable from then on), then paid or voided.
//!
//! Decisions:
//! - Only a draft can change; issuing fixes its lines, total and number.
//! - A paid invoice is final; a correction is a credit note, not a void.
//! - Voiding an issued invoice keeps its number (numbers never have gaps)
//!   and reverses its ledger transfer.

use crate::machine::state_machine;

state_machine! {
    /// The state of one invoice.
    pub enum InvoiceState: "invoice" {
        /// Being prepared; no number yet.
        Draft = "draft",
        /// Numbered, immutable, posted to the ledger, awaiting payment.
        Issued = "issued",
        /// Settled. Terminal.
        Paid = "paid",
        /// Cancelled after issue (or a draft discarded). Terminal.
        Void = "void",
    }
    initial: [Draft],
    terminal: [Paid, Void],
    transitions: {
        Draft => [Issued, Void],
        Issued => [Paid, Void],
        Paid => [],
        Void => [],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::StateMachine;

    #[test]
    fn an_invoice_is_paid_or_voided_only_after_issue() {
        use InvoiceState::*;
        assert!(Draft.can_transition_to(Issued));
        assert!(!Draft.can_transition_to(Paid), "a draft owes nothing yet");
        assert!(Issued.can_transition_to(Paid));
        assert!(
            !Paid.can_transition_to(Void),
            "corrections are credit notes"
        );
        assert!(!Issued.can_transition_to(Draft), "issued is immutable");
    }
}
