//! Billing's records: subscriptions, invoices and payments as stored.

use super::meter::Reading;
use super::period::Period;
use super::price::Currency;
use super::rating::{ContractTerms, Line};
use crate::lifecycle::{InvoiceState, SubscriptionState};
use crate::{InvoiceId, OrgId, PaymentId, SubscriptionId, Timestamp};
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
    /// When the ledger confirmed the invoice's transfer.
    pub posted_at: Option<Timestamp>,
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
