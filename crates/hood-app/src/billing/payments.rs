//! Payments: recorded by an operator (`local`) or reported by Stripe's
//! webhooks, checkouts opened through the provider, and every invoice and
//! payment posted to the ledger.
//!
//! A webhook is verified on the raw body before anything is parsed, acted
//! on idempotently (a payment per provider reference), and only then
//! recorded as handled: a crash between the two makes Stripe's redelivery
//! do the (idempotent) work again instead of losing it. An event that
//! refers to a payment Hood has not seen yet (a refund overtaking its
//! checkout) answers "unavailable", so Stripe delivers it again later.

use super::BillingService;
use crate::error::{AppError, AppResult};
use hood_domain::billing::posting::{
    account_id, invoice_transfer_id, ledger_amount, payment_id, payment_transfer_id,
    refund_transfer_id, transfer_code, void_transfer_id,
};
use hood_domain::billing::{Currency, Invoice, Payment, PaymentState};
use hood_domain::ledger::{AccountCode, NewTransfer, TransferFlags};
use hood_domain::lifecycle::{InvoiceState, SubscriptionState};
use hood_domain::{AccountId, InvoiceId, OrgId, TransferId};
use hood_payments::stripe_signature::{self, DEFAULT_TOLERANCE_SECS};
use hood_payments::{CheckoutRequest, CheckoutSessionEvent, EventKind, PaymentStatus};
use hood_store::billing::{Checkout, PaymentOutcome};
use std::collections::BTreeMap;

/// How Stripe's webhooks are checked.
#[derive(Clone)]
pub struct StripeWebhookConfig {
    /// `whsec_…`: never logged.
    pub secret: String,
    /// Seconds a signature stays valid (Stripe's libraries: 300).
    pub tolerance_secs: i64,
}

impl std::fmt::Debug for StripeWebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeWebhookConfig")
            .field("secret", &"<redacted>")
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

impl StripeWebhookConfig {
    pub fn new(secret: String) -> Self {
        Self {
            secret,
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
        }
    }
}

/// What a webhook delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Acted on now.
    Handled { event: String, kind: String },
    /// The event id was handled before: nothing changed.
    Duplicate { event: String },
    /// A type billing does not act on (acknowledged).
    Ignored { event: String, kind: String },
}

/// Metadata key that names Hood's invoice on a Stripe object.
pub const INVOICE_METADATA_KEY: &str = "hood_invoice_id";

impl BillingService {
    /// Records a payment a billing operator received outside any provider
    /// (a bank transfer): `reference` is the bank's, one payment per
    /// reference.
    pub async fn record_local_payment(
        &self,
        invoice: InvoiceId,
        reference: &str,
        amount_minor: Option<u64>,
    ) -> AppResult<Payment> {
        let reference = reference.trim();
        if reference.is_empty() || reference.len() > 200 {
            return Err(super::invalid("reference", "1 to 200 characters"));
        }
        let inv = self.invoice(None, invoice).await?;
        if !matches!(inv.state, InvoiceState::Issued | InvoiceState::Paid) {
            return Err(AppError::Conflict(format!(
                "invoice is {}: only an issued invoice takes payments",
                inv.state
            )));
        }
        let amount = match amount_minor {
            Some(a) => a,
            None => self.amount_due(&inv).await?,
        };
        self.settle("local", reference, &inv, amount, &inv.currency.clone())
            .await
    }

    /// Stores a succeeded payment of `inv` (idempotent by provider
    /// reference), posts it, and brings the subscription back to active.
    async fn settle(
        &self,
        provider: &str,
        reference: &str,
        inv: &Invoice,
        amount_minor: u64,
        currency: &Currency,
    ) -> AppResult<Payment> {
        if currency != &inv.currency {
            return Err(super::invalid(
                "currency",
                format!(
                    "the invoice is in {}, the payment in {currency}",
                    inv.currency
                ),
            ));
        }
        let now = self.clock.now();
        let payment = Payment {
            id: payment_id(provider, reference),
            invoice_id: Some(inv.id),
            org_id: inv.org_id,
            provider: provider.to_owned(),
            reference: reference.to_owned(),
            amount_minor,
            currency: currency.clone(),
            state: PaymentState::Succeeded,
            detail: None,
            created_at: now,
            updated_at: now,
            posted_at: None,
        };
        let outcome = self.store().record_payment(&payment).await?;
        let stored = self
            .store()
            .get_payment(payment.id)
            .await?
            .ok_or(AppError::NotFound("payment"))?;
        if let PaymentOutcome::Recorded { settled } = outcome {
            tracing::info!(
                payment = %stored.id, invoice = %inv.id, provider, amount_minor, settled,
                "payment recorded"
            );
        }
        if let Err(e) = self.post_payment(&stored).await {
            tracing::warn!(payment = %stored.id, error = %e, "ledger posting deferred");
        }
        let sub = self.subscription(None, inv.subscription_id).await?;
        if matches!(
            sub.state,
            SubscriptionState::Grace | SubscriptionState::PendingPayment
        ) {
            self.move_subscription(sub.id, SubscriptionState::Active, None)
                .await?;
        }
        Ok(stored)
    }

    /// Opens a hosted checkout for an issued invoice (Stripe Checkout; the
    /// invoice id is the idempotency key, so asking twice answers the same
    /// session).
    pub async fn checkout(
        &self,
        org: Option<OrgId>,
        invoice: InvoiceId,
        success_url: String,
        cancel_url: String,
    ) -> AppResult<Checkout> {
        let inv = self.invoice(org, invoice).await?;
        if inv.state != InvoiceState::Issued {
            return Err(AppError::Conflict(format!(
                "invoice is {}: only an issued invoice can be paid",
                inv.state
            )));
        }
        // What is owed after credit notes; a note changes the amount, so it
        // is part of the idempotency key (Stripe refuses a key reused with
        // other parameters).
        let due = self.amount_due(&inv).await?;
        let request = CheckoutRequest {
            idempotency_key: format!("hood-invoice-{}-{due}", inv.id),
            amount_minor: due,
            currency: inv.currency.to_string(),
            description: format!(
                "Invoice {} ({} to {})",
                inv.number.as_deref().unwrap_or("draft"),
                inv.period.start,
                inv.period.end
            ),
            client_reference_id: inv.id.to_string(),
            metadata: BTreeMap::from([(INVOICE_METADATA_KEY.to_owned(), inv.id.to_string())]),
            success_url,
            cancel_url,
        };
        self.open_checkout(inv.org_id, Some(inv.id), &request).await
    }

    /// Handles one Stripe webhook delivery: `payload` exactly as received,
    /// `signature` the `Stripe-Signature` header.
    pub async fn stripe_webhook(
        &self,
        payload: &[u8],
        signature: &str,
    ) -> AppResult<WebhookOutcome> {
        let config = self.webhook.as_ref().ok_or_else(|| {
            AppError::Unavailable(
                "Stripe webhooks are not configured (set HOOD_STRIPE_WEBHOOK_SECRET)".into(),
            )
        })?;
        let now = self.clock.now();
        stripe_signature::verify(
            payload,
            signature,
            &config.secret,
            now.secs(),
            config.tolerance_secs,
        )
        .map_err(|e| super::invalid("Stripe-Signature", e.to_string()))?;
        let event = hood_payments::stripe_event::parse(payload)
            .map_err(|e| super::invalid("body", e.to_string()))?;
        let kind = event.kind.type_name().to_owned();
        if self.seen_stripe_event(&event.id).await? {
            return Ok(WebhookOutcome::Duplicate { event: event.id });
        }
        let acted = match &event.kind {
            EventKind::CheckoutSessionCompleted(session)
            | EventKind::CheckoutSessionAsyncPaymentSucceeded(session) => {
                self.checkout_paid(session).await?
            }
            EventKind::InvoicePaid(paid) => {
                let inv = self.invoice_named(&paid.metadata).await?;
                self.settle(
                    "stripe",
                    &paid.invoice_id,
                    &inv,
                    paid.amount_paid,
                    &currency(&paid.currency)?,
                )
                .await?;
                true
            }
            EventKind::PaymentFailed(failed) => {
                let inv = self.invoice_named(&failed.metadata).await?;
                self.payment_failed(&inv, failed.failure_message.clone())
                    .await?;
                true
            }
            EventKind::ChargeRefunded(refund) => {
                let inv = self.invoice_named(&refund.metadata).await?;
                self.refunded(&inv, refund.amount, refund.amount_refunded)
                    .await?;
                true
            }
            EventKind::Other(_) => false,
        };
        self.store()
            .record_stripe_event(&event.id, &kind, event.created, now)
            .await?;
        Ok(if acted {
            tracing::info!(event = %event.id, kind = %kind, "stripe event handled");
            WebhookOutcome::Handled {
                event: event.id,
                kind,
            }
        } else {
            WebhookOutcome::Ignored {
                event: event.id,
                kind,
            }
        })
    }

    async fn seen_stripe_event(&self, id: &str) -> AppResult<bool> {
        // Recording happens after acting; here only a look.
        Ok(self.store().stripe_event_seen(id).await?)
    }

    /// The invoice a Stripe object names in its metadata.
    async fn invoice_named(&self, metadata: &BTreeMap<String, String>) -> AppResult<Invoice> {
        let id = metadata.get(INVOICE_METADATA_KEY).ok_or_else(|| {
            super::invalid(
                "body",
                format!("metadata.{INVOICE_METADATA_KEY} is missing"),
            )
        })?;
        let id: InvoiceId = id.parse().map_err(|_| {
            super::invalid(
                "body",
                format!("metadata.{INVOICE_METADATA_KEY} is not an id"),
            )
        })?;
        self.invoice(None, id).await
    }

    /// `checkout.session.*`: money arrived when the session says `paid`
    /// (a delayed method completes later with the async event).
    async fn checkout_paid(&self, session: &CheckoutSessionEvent) -> AppResult<bool> {
        if session.payment_status == PaymentStatus::Unpaid {
            return Ok(false);
        }
        if let Some(org) = session.metadata.get(super::credits::CREDITS_METADATA_KEY) {
            let org: OrgId = org
                .parse()
                .map_err(|_| super::invalid("body", "the credits organization is not an id"))?;
            self.top_up(org, "stripe", &session.session_id, session.amount_total)
                .await?;
            return Ok(true);
        }
        let inv = match &session.client_reference_id {
            Some(id) => {
                let id: InvoiceId = id.parse().map_err(|_| {
                    super::invalid("body", "client_reference_id is not an invoice id")
                })?;
                self.invoice(None, id).await?
            }
            None => self.invoice_named(&session.metadata).await?,
        };
        self.settle(
            "stripe",
            &session.session_id,
            &inv,
            session.amount_total,
            &currency(&session.currency)?,
        )
        .await?;
        Ok(true)
    }

    /// A failed attempt: the subscription enters grace (once; a second
    /// failure does not extend it).
    async fn payment_failed(&self, inv: &Invoice, message: Option<String>) -> AppResult<()> {
        let sub = self.subscription(None, inv.subscription_id).await?;
        if sub.state == SubscriptionState::Active {
            let reason = format!(
                "payment of invoice {} failed{}",
                inv.number.as_deref().unwrap_or(""),
                message.map(|m| format!(": {m}")).unwrap_or_default()
            );
            self.move_subscription(sub.id, SubscriptionState::Grace, Some(reason))
                .await?;
        }
        Ok(())
    }

    /// `charge.refunded`: a full refund reverses the invoice's Stripe
    /// payment; a partial one is left to reconciliation.
    async fn refunded(&self, inv: &Invoice, amount: u64, refunded: u64) -> AppResult<()> {
        if refunded < amount {
            tracing::info!(invoice = %inv.id, refunded, amount, "partial refund: left to reconciliation");
            return Ok(());
        }
        let payments = self.store().list_payments(None, Some(inv.id)).await?;
        let Some(payment) = payments
            .iter()
            .find(|p| p.provider == "stripe" && p.state == PaymentState::Succeeded)
        else {
            if payments.iter().any(|p| p.state == PaymentState::Refunded) {
                return Ok(());
            }
            return Err(AppError::Unavailable(
                "the refunded payment is not known yet; deliver again later".into(),
            ));
        };
        if self
            .store()
            .refund_payment(payment.id, self.clock.now())
            .await?
        {
            if let Some(p) = self.store().get_payment(payment.id).await? {
                if let Err(e) = self.post_payment(&p).await {
                    tracing::warn!(payment = %p.id, error = %e, "ledger posting deferred");
                }
            }
        }
        Ok(())
    }

    // --- ledger postings --------------------------------------------------

    pub(crate) async fn transfer(
        &self,
        id: TransferId,
        debit: AccountId,
        credit: AccountId,
        amount: u64,
        ledger: u32,
        code: u16,
    ) -> AppResult<()> {
        let t = NewTransfer {
            id,
            debit_account_id: Some(debit),
            credit_account_id: Some(credit),
            amount,
            pending_id: None,
            user_data_128: 0,
            user_data_64: 0,
            user_data_32: 0,
            timeout: 0,
            ledger,
            code,
            flags: TransferFlags::default(),
        };
        let results = self
            .ledger
            .create_transfers(std::slice::from_ref(&t))
            .await?;
        match results.first() {
            Some(r) if r.is_recorded() => Ok(()),
            Some(r) => Err(AppError::Internal(format!(
                "ledger refused transfer {id}: {r}"
            ))),
            None => Err(AppError::Internal("ledger answered no result".into())),
        }
    }

    pub(crate) async fn units(
        &self,
        amount_minor: u64,
        currency: &Currency,
    ) -> AppResult<(u32, u64)> {
        let ledger = self.ledger_of(currency).await?;
        let amount = ledger_amount(amount_minor, currency, ledger.scale).ok_or_else(|| {
            AppError::Internal(format!(
                "{amount_minor} minor units of {currency} do not fit ledger {} (scale {})",
                ledger.id, ledger.scale
            ))
        })?;
        Ok((ledger.id, amount))
    }

    /// Posts an issued invoice (receivable ← revenue) and, if void, its
    /// reversal; then marks it posted.
    pub(crate) async fn post_invoice(&self, inv: &Invoice) -> AppResult<()> {
        let (ledger, amount) = self.units(inv.total_minor, &inv.currency).await?;
        let receivable = account_id(AccountCode::Receivable, ledger, Some(inv.org_id));
        let revenue = account_id(AccountCode::Revenue, ledger, None);
        self.transfer(
            invoice_transfer_id(inv.id),
            receivable,
            revenue,
            amount,
            ledger,
            transfer_code::INVOICE,
        )
        .await?;
        if inv.state == InvoiceState::Void {
            self.transfer(
                void_transfer_id(inv.id),
                revenue,
                receivable,
                amount,
                ledger,
                transfer_code::VOID,
            )
            .await?;
        }
        self.store()
            .mark_invoice_posted(inv.id, self.clock.now())
            .await?;
        Ok(())
    }

    /// Posts a payment (cash ← the receivable it pays, or ← prepaid
    /// credits for a top-up) and, if refunded, its reversal; then marks it
    /// posted.
    pub(crate) async fn post_payment(&self, p: &Payment) -> AppResult<()> {
        if p.state == PaymentState::Failed {
            return Ok(());
        }
        let (ledger, amount) = self.units(p.amount_minor, &p.currency).await?;
        let (paid, code) = match p.invoice_id {
            Some(_) => (
                account_id(AccountCode::Receivable, ledger, Some(p.org_id)),
                transfer_code::PAYMENT,
            ),
            None => (
                account_id(AccountCode::PrepaidCredits, ledger, Some(p.org_id)),
                transfer_code::CREDIT_TOP_UP,
            ),
        };
        let cash = account_id(AccountCode::Cash, ledger, None);
        self.transfer(payment_transfer_id(p.id), cash, paid, amount, ledger, code)
            .await?;
        if p.state == PaymentState::Refunded {
            self.transfer(
                refund_transfer_id(p.id),
                paid,
                cash,
                amount,
                ledger,
                transfer_code::REFUND,
            )
            .await?;
        }
        self.store()
            .mark_payment_posted(p.id, self.clock.now())
            .await?;
        Ok(())
    }

    /// Posts what the ledger has not confirmed yet (the billing loop's
    /// retry); returns how many records were posted.
    pub async fn post_pending(&self, limit: i64) -> AppResult<usize> {
        let mut posted = 0;
        for inv in self.store().invoices_to_post(limit).await? {
            self.post_invoice(&inv).await?;
            posted += 1;
        }
        for p in self.store().payments_to_post(limit).await? {
            self.post_payment(&p).await?;
            posted += 1;
        }
        for note in self.store().credit_notes_to_post(limit).await? {
            self.post_credit_note(&note).await?;
            posted += 1;
        }
        Ok(posted)
    }
}

fn currency(code: &str) -> AppResult<Currency> {
    code.to_ascii_uppercase()
        .parse()
        .map_err(|e: hood_domain::billing::PriceError| super::invalid("currency", e.to_string()))
}
