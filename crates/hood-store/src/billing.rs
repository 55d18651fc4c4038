//! Billing's records: the price book, subscriptions, invoices, payments
//! and the Stripe events already handled.
//!
//! Exactly one invoice per subscription and period is the store's rule
//! (a unique key), not the caller's care: two billing replicas, or a close
//! re-run after a crash, find the invoice that exists. An invoice's number
//! is taken from its year's counter in the transaction that issues it, so
//! numbers have no gaps.

use crate::lease::Lease;
use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::billing::budget::BudgetStatus;
use hood_domain::billing::{CreditNote, Invoice, Payment, RateCard, Subscription};
use hood_domain::lifecycle::InvoiceState;
use hood_domain::{CreditNoteId, InvoiceId, OrgId, PaymentId, SubscriptionId, Timestamp};
use time::Date;

/// A rate card as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRateCard {
    pub card: RateCard,
    pub created_at: Timestamp,
    /// When an issued invoice first priced with it; immutable since.
    pub used_at: Option<Timestamp>,
}

/// What issuing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    /// Issued now, with this number.
    Issued(Invoice),
    /// The period already had an invoice (kept as it was).
    Exists(Invoice),
}

/// Invoices to list, newest period first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceQuery {
    pub org_id: Option<OrgId>,
    pub subscription_id: Option<SubscriptionId>,
    pub state: Option<InvoiceState>,
    pub limit: i64,
}

/// A credit note asked for: the store numbers it and checks it against
/// the invoice in the transaction that stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCreditNote {
    pub id: CreditNoteId,
    pub invoice_id: InvoiceId,
    pub amount_minor: u64,
    pub reason: String,
    pub created_at: Timestamp,
}

/// Where a hosted checkout stands with the payment provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutState {
    /// Not taken by the provider yet (it was down): retried with backoff.
    Pending,
    /// The provider made the session: send the customer to its URL.
    Open,
    /// The provider refused it, or stayed down past the retry window.
    Failed,
}

impl CheckoutState {
    pub const fn as_str(self) -> &'static str {
        match self {
            CheckoutState::Pending => "pending",
            CheckoutState::Open => "open",
            CheckoutState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Open, Self::Failed]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// A hosted checkout asked of the payment provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkout {
    /// The provider's idempotency key: the same request is the same row.
    pub idempotency_key: String,
    pub org_id: OrgId,
    /// `None`: a credit top-up.
    pub invoice_id: Option<InvoiceId>,
    /// The provider request, sent again as it was.
    pub request: serde_json::Value,
    pub state: CheckoutState,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub session_id: Option<String>,
    pub url: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What recording a payment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Stored now; `settled` when it marked its invoice paid.
    Recorded { settled: bool },
    /// A payment with this provider reference exists (a redelivery).
    Duplicate,
}

#[async_trait]
pub trait BillingStore: Send + Sync {
    /// Stores a new version; `Conflict("rate card version")` if it exists.
    async fn insert_rate_card(&self, card: &RateCard, now: Timestamp) -> StoreResult<()>;
    async fn get_rate_card(&self, version: u32) -> StoreResult<Option<StoredRateCard>>;
    /// Every version, newest first.
    async fn list_rate_cards(&self) -> StoreResult<Vec<StoredRateCard>>;

    /// `Conflict("live subscription")` when the organization has one in a
    /// live state; `NotFound("rate card")` for an unknown version.
    async fn insert_subscription(&self, s: &Subscription) -> StoreResult<()>;
    async fn get_subscription(
        &self,
        org: Option<OrgId>,
        id: SubscriptionId,
    ) -> StoreResult<Option<Subscription>>;
    /// Newest first; all organizations when `org` is `None`.
    async fn list_subscriptions(&self, org: Option<OrgId>) -> StoreResult<Vec<Subscription>>;
    /// Writes `s` if its stored version is still `s.version - 1`; `false`
    /// when another writer moved it first.
    async fn update_subscription(&self, s: &Subscription) -> StoreResult<bool>;
    /// Subscriptions with a period ending on or before `through` not yet
    /// invoiced (billing ones; terminal ones until their last period).
    async fn subscriptions_due(&self, through: Date) -> StoreResult<Vec<Subscription>>;

    /// Stores `invoice` issued: numbered from its year's counter, its rate
    /// card marked used, its subscription's `billed_through` moved to the
    /// period's end, all in one transaction; fenced by `lease` when given.
    /// The period's existing invoice, if any, is answered instead.
    async fn issue_invoice(
        &self,
        invoice: &Invoice,
        lease: Option<&Lease>,
        now: Timestamp,
    ) -> StoreResult<IssueOutcome>;
    async fn get_invoice(&self, org: Option<OrgId>, id: InvoiceId) -> StoreResult<Option<Invoice>>;
    async fn list_invoices(&self, q: &InvoiceQuery) -> StoreResult<Vec<Invoice>>;
    /// Issued, paid or void invoices whose ledger transfer is not
    /// confirmed, oldest first.
    async fn invoices_to_post(&self, limit: i64) -> StoreResult<Vec<Invoice>>;
    async fn mark_invoice_posted(&self, id: InvoiceId, at: Timestamp) -> StoreResult<()>;

    /// Stores a payment unless its provider reference exists; a succeeded
    /// payment for an issued invoice marks it paid, in the same
    /// transaction.
    async fn record_payment(&self, p: &Payment) -> StoreResult<PaymentOutcome>;
    async fn get_payment(&self, id: PaymentId) -> StoreResult<Option<Payment>>;
    async fn find_payment(&self, provider: &str, reference: &str) -> StoreResult<Option<Payment>>;
    /// Marks a succeeded payment refunded; `false` if it was not succeeded.
    async fn refund_payment(&self, id: PaymentId, now: Timestamp) -> StoreResult<bool>;
    /// Payments of an invoice or of an organization, newest first.
    async fn list_payments(
        &self,
        org: Option<OrgId>,
        invoice: Option<InvoiceId>,
    ) -> StoreResult<Vec<Payment>>;
    /// Succeeded or refunded payments whose ledger transfers are not
    /// confirmed, oldest first.
    async fn payments_to_post(&self, limit: i64) -> StoreResult<Vec<Payment>>;
    async fn mark_payment_posted(&self, id: PaymentId, at: Timestamp) -> StoreResult<()>;

    /// Opens a `billing` incident of `org` under the de-duplication `key`
    /// unless one is unresolved (outbox `incident.opened`: the
    /// organization's channels are notified). Returns whether it opened.
    async fn raise_billing_alert(
        &self,
        org: OrgId,
        key: &str,
        title: &str,
        detail: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Resolves the unresolved `billing` incident of `key`, if any.
    async fn clear_billing_alert(&self, org: OrgId, key: &str, now: Timestamp)
        -> StoreResult<bool>;
    /// Voids an issued, unpaid, uncredited invoice (its number stays) and
    /// un-posts it, so the poster writes the reversal. `NotFound` for an
    /// unknown invoice; `Correction` naming the rule it breaks.
    async fn void_invoice(
        &self,
        id: InvoiceId,
        reason: &str,
        now: Timestamp,
    ) -> StoreResult<Invoice>;
    /// Stores a credit note: checked against the invoice's total and its
    /// earlier notes, numbered from its year's counter, in one transaction
    /// (concurrent notes cannot together exceed the invoice). A note whose
    /// id exists is returned as it is (a retried request). An issued
    /// invoice credited in full is settled (`paid`).
    async fn issue_credit_note(&self, note: &NewCreditNote) -> StoreResult<CreditNote>;
    /// Credit notes, newest first.
    async fn list_credit_notes(
        &self,
        org: Option<OrgId>,
        invoice: Option<InvoiceId>,
    ) -> StoreResult<Vec<CreditNote>>;
    async fn credit_notes_to_post(&self, limit: i64) -> StoreResult<Vec<CreditNote>>;
    async fn mark_credit_note_posted(&self, id: CreditNoteId, at: Timestamp) -> StoreResult<()>;

    /// Stores a checkout unless its key exists; returns the stored one
    /// (the new row, or the earlier request's).
    async fn create_checkout(&self, c: &Checkout) -> StoreResult<Checkout>;
    /// Writes a checkout's state, attempts and session.
    async fn update_checkout(&self, c: &Checkout) -> StoreResult<()>;
    async fn get_checkout(&self, key: &str) -> StoreResult<Option<Checkout>>;
    /// Pending checkouts whose next attempt is due by `now`, oldest first.
    async fn due_checkouts(&self, now: Timestamp, limit: i64) -> StoreResult<Vec<Checkout>>;

    /// Writes the latest budget measurement of a subscription (replacing
    /// the previous one).
    async fn put_budget_status(
        &self,
        subscription: SubscriptionId,
        org: OrgId,
        status: &BudgetStatus,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// The latest budget measurement of a subscription.
    async fn get_budget_status(
        &self,
        subscription: SubscriptionId,
    ) -> StoreResult<Option<BudgetStatus>>;
    /// Whether a Stripe event id was recorded as handled.
    async fn stripe_event_seen(&self, id: &str) -> StoreResult<bool>;
    /// Records a Stripe event id; `false` when it was handled before.
    async fn record_stripe_event(
        &self,
        id: &str,
        kind: &str,
        created: i64,
        now: Timestamp,
    ) -> StoreResult<bool>;
}
