//! Billing's records: subscriptions, invoices, credit notes and payments
//! as stored, and the rules of correcting an issued invoice (void it while
//! unpaid and uncredited; otherwise credit notes, never more than its
//! total).

use super::meter::Reading;
use super::period::Period;
use super::price::Currency;
use super::rating::{ContractTerms, Line};
use crate::lifecycle::{InvoiceState, SubscriptionState};
use crate::{CreditNoteId, InvoiceId, OrgId, PaymentId, SubscriptionId, Timestamp};
use serde::{Deserialize, Serialize};
use time::Date;

/// Grace after a failed or missing payment, unless the contract says
/// otherwise (seed 000: 72 hours).
pub const DEFAULT_GRACE_MS: i64 = 72 * 3_600_000;

/// An organization's contract and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub org_id: OrgId,
    pub terms: ContractTerms,
    pub currency: Currency,
    /// Periods are anchored to this day.
    pub start_date: Date,
    pub rate_card_version: u32,
    pub grace_ms: i64,
    /// An optional monthly budget in minor units: alerts at 50, 80 and
    /// 100 % of it (see [`super::budget`])…
    pub budget_minor: Option<u64>,
    /// …and, when set, metered spending (RPC) refused once it is reached,
    /// until the next period.
    pub budget_hard_cap: bool,
    pub state: SubscriptionState,
    pub state_since: Timestamp,
    /// When grace runs out (set while `grace`).
    pub grace_until: Option<Timestamp>,
    /// Why it is in its state (a failed payment's message, a cancellation).
    pub reason: Option<String>,
    /// The end of the last period invoiced.
    pub billed_through: Option<Date>,
    pub created_at: Timestamp,
    /// Optimistic-locking version.
    pub version: i64,
}

impl Subscription {
    /// Whether its periods are invoiced (a terminal subscription's last
    /// period is still closed once; see the billing service).
    pub fn bills(&self) -> bool {
        matches!(
            self.state,
            SubscriptionState::Active
                | SubscriptionState::Grace
                | SubscriptionState::PendingPayment
        )
    }
}

/// An invoice for one period of one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub id: InvoiceId,
    pub subscription_id: SubscriptionId,
    pub org_id: OrgId,
    pub period: Period,
    pub state: InvoiceState,
    /// Set at issue: `YYYY-NNNNNN`, without gaps per year.
    pub number: Option<String>,
    pub currency: Currency,
    pub total_minor: u64,
    pub rate_card_version: u32,
    pub lines: Vec<Line>,
    /// The readings the period's usage lines were rated from: what a later
    /// adjustment compares against.
    pub readings: Vec<Reading>,
    pub created_at: Timestamp,
    pub issued_at: Option<Timestamp>,
    pub paid_at: Option<Timestamp>,
    pub voided_at: Option<Timestamp>,
    /// Why it was voided.
    pub void_reason: Option<String>,
    /// When the ledger confirmed the invoice's transfer.
    pub posted_at: Option<Timestamp>,
}

/// A correction of an issued (or paid) invoice: part or all of it taken
/// back, with its own number. The invoice itself never changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNote {
    pub id: CreditNoteId,
    pub invoice_id: InvoiceId,
    pub org_id: OrgId,
    /// `CN-YYYY-NNNNNN`, without gaps per year.
    pub number: String,
    pub currency: Currency,
    pub amount_minor: u64,
    pub reason: String,
    pub created_at: Timestamp,
    /// When the ledger confirmed its transfer.
    pub posted_at: Option<Timestamp>,
}

/// Why a correction is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorrectionError {
    #[error("only an issued, unpaid invoice can be voided; this one is {0} (a paid invoice is corrected by a credit note)")]
    VoidNotIssued(InvoiceState),
    #[error("the invoice has credit notes: credit the rest instead of voiding it")]
    VoidCredited,
    #[error("only an issued or paid invoice can be credited; this one is {0}")]
    CreditNotIssued(InvoiceState),
    #[error("a credit note is at least 1 minor unit")]
    CreditZero,
    #[error("{asked} minor units exceed what is left to credit ({left} of {total})")]
    CreditTooLarge { asked: u64, left: u64, total: u64 },
}

/// Whether an invoice may be voided.
pub fn check_void(state: InvoiceState, credited_minor: u64) -> Result<(), CorrectionError> {
    if state != InvoiceState::Issued {
        return Err(CorrectionError::VoidNotIssued(state));
    }
    if credited_minor > 0 {
        return Err(CorrectionError::VoidCredited);
    }
    Ok(())
}

/// Whether `amount` may be credited on an invoice of `total` already
/// credited by `credited`: never more than the invoice in all.
pub fn check_credit(
    state: InvoiceState,
    total_minor: u64,
    credited_minor: u64,
    amount_minor: u64,
) -> Result<(), CorrectionError> {
    if !matches!(state, InvoiceState::Issued | InvoiceState::Paid) {
        return Err(CorrectionError::CreditNotIssued(state));
    }
    if amount_minor == 0 {
        return Err(CorrectionError::CreditZero);
    }
    let left = total_minor.saturating_sub(credited_minor);
    if amount_minor > left {
        return Err(CorrectionError::CreditTooLarge {
            asked: amount_minor,
            left,
            total: total_minor,
        });
    }
    Ok(())
}

/// What is still owed on an invoice: its total less credit notes.
pub fn amount_due(total_minor: u64, credited_minor: u64) -> u64 {
    total_minor.saturating_sub(credited_minor)
}

/// What became of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    Succeeded,
    Failed,
    Refunded,
}

impl PaymentState {
    pub const fn as_str(self) -> &'static str {
        match self {
            PaymentState::Succeeded => "succeeded",
            PaymentState::Failed => "failed",
            PaymentState::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Succeeded, Self::Failed, Self::Refunded]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// A payment received (or a failed attempt) through a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: PaymentId,
    pub invoice_id: Option<InvoiceId>,
    pub org_id: OrgId,
    /// `local` or `stripe`.
    pub provider: String,
    /// The provider's id of it: one payment per reference.
    pub reference: String,
    pub amount_minor: u64,
    pub currency: Currency,
    pub state: PaymentState,
    pub detail: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When the ledger confirmed its transfer.
    pub posted_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unpaid_uncredited_invoice_is_voided() {
        assert_eq!(check_void(InvoiceState::Issued, 0), Ok(()));
        assert_eq!(
            check_void(InvoiceState::Issued, 1),
            Err(CorrectionError::VoidCredited)
        );
        for s in [InvoiceState::Paid, InvoiceState::Void, InvoiceState::Draft] {
            assert_eq!(check_void(s, 0), Err(CorrectionError::VoidNotIssued(s)));
        }
    }

    #[test]
    fn credit_notes_never_exceed_the_invoice() {
        assert_eq!(check_credit(InvoiceState::Issued, 100, 0, 100), Ok(()));
        assert_eq!(check_credit(InvoiceState::Paid, 100, 60, 40), Ok(()));
        assert_eq!(
            check_credit(InvoiceState::Paid, 100, 60, 41),
            Err(CorrectionError::CreditTooLarge {
                asked: 41,
                left: 40,
                total: 100
            })
        );
        assert_eq!(
            check_credit(InvoiceState::Issued, 100, 0, 0),
            Err(CorrectionError::CreditZero)
        );
        assert_eq!(
            check_credit(InvoiceState::Void, 100, 0, 1),
            Err(CorrectionError::CreditNotIssued(InvoiceState::Void))
        );
        assert_eq!(amount_due(100, 60), 40);
        assert_eq!(amount_due(100, 100), 0);
    }
}
