//! Billing's use cases (design §8): the price book, subscriptions, period
//! close and invoices ([`close`]), payments and their ledger postings
//! ([`payments`]).
//!
//! Money moves only as ledger transfers with derived ids
//! ([`hood_domain::billing::posting`]): an issued invoice debits the
//! organization's receivable and credits revenue; a payment debits cash and
//! credits the receivable. Posting happens right after the store commits
//! and again from the billing role's loop until the ledger confirms it, so
//! a crash between the two loses nothing and a retry charges nothing twice.

pub mod budget;
pub mod checkouts;
pub mod close;
pub mod corrections;
pub mod credits;
pub mod dunning;
pub mod payments;
pub mod reconcile;
pub mod refunds;
pub mod runner;

use crate::error::{AppError, AppResult};
use crate::ledger::LedgerService;
use hood_clock::Clock;
use hood_domain::billing::posting::account_id;
use hood_domain::billing::{
    ContractTerms, Currency, Invoice, Payment, RateCard, Subscription, DEFAULT_GRACE_MS,
};
use hood_domain::ledger::{AccountCode, AccountFlags, Ledger, NewAccount};
use hood_domain::lifecycle::SubscriptionState;
use hood_domain::machine::StateMachine;
use hood_domain::validate::FieldError;
use hood_domain::{InvoiceId, OrgId, SubscriptionId};
use hood_payments::PaymentProvider;
use hood_store::billing::{BillingStore, InvoiceQuery, StoredRateCard};
use hood_store::credits::CreditStore;
use hood_store::meter::MeterStore;
use hood_store::node::NodeStore;
use hood_store::uptime::UptimeStore;
use hood_store::usage::UsageStore;
use hood_store::StoreError;
use std::sync::Arc;
use time::Date;
use uuid::Uuid;

pub use budget::BudgetReport;
pub use close::CloseReport;
pub use credits::{CreditsView, EnableCredits};
pub use payments::{StripeWebhookConfig, WebhookOutcome};
pub use reconcile::{Reconciliation, ReconciliationItem};
pub use refunds::{CreditRefund, RefundRecorded};
pub use runner::{BillingRunner, RunnerTiming};

/// Invoices per page when the caller does not say, and at most.
pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 1_000;

/// The stores billing reads and writes, each the narrow trait it uses.
#[derive(Clone)]
pub struct BillingStores {
    pub billing: Arc<dyn BillingStore>,
    pub meters: Arc<dyn MeterStore>,
    pub usage: Arc<dyn UsageStore>,
    pub uptime: Arc<dyn UptimeStore>,
    pub nodes: Arc<dyn NodeStore>,
    pub credits: Arc<dyn CreditStore>,
}

/// A new subscription.
#[derive(Debug, Clone)]
pub struct CreateSubscription {
    pub terms: ContractTerms,
    pub currency: Currency,
    pub start_date: Date,
    /// Default: the newest rate card.
    pub rate_card_version: Option<u32>,
    /// Default [`DEFAULT_GRACE_MS`].
    pub grace_ms: Option<i64>,
    /// Monthly budget (alerts at 50, 80, 100 %)…
    pub budget_minor: Option<u64>,
    /// …and stop metered spending when it is reached.
    pub budget_hard_cap: bool,
    /// Start waiting for the first payment instead of active.
    pub pending_payment: bool,
}

/// The billing use cases.
#[derive(Clone)]
pub struct BillingService {
    stores: BillingStores,
    ledger: LedgerService,
    clock: Arc<dyn Clock>,
    provider: Option<Arc<dyn PaymentProvider>>,
    webhook: Option<StripeWebhookConfig>,
    /// How long an issued invoice may stay unpaid.
    payment_terms_ms: i64,
    /// How long an organization cut off for exhausted credits keeps its
    /// (suspended) nodes before they are terminated.
    credits_grace_ms: i64,
    /// Terminates an expired subscription's nodes, suspends and resumes
    /// the nodes of an organization on credits.
    node_service: Option<crate::NodeService>,
    /// Allocations charged per minute from prepaid credits, and released
    /// when they run out.
    allocation_service: Option<crate::AllocationService>,
    /// Where operators' refunds are recorded with their reason.
    audit: Option<Arc<dyn hood_store::audit::AuditStore>>,
}

/// A provider's refusal as the caller sees it: worth a retry later (503)
/// or not (409).
pub(crate) fn provider_error(e: hood_payments::PaymentError) -> AppError {
    if e.is_retryable() {
        AppError::Unavailable(e.to_string())
    } else {
        AppError::Conflict(e.to_string())
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
    AppError::Invalid(vec![FieldError::new(field, message)])
}

impl BillingService {
    pub fn new(stores: BillingStores, ledger: LedgerService, clock: Arc<dyn Clock>) -> Self {
        Self {
            stores,
            ledger,
            clock,
            provider: None,
            webhook: None,
            payment_terms_ms: dunning::DEFAULT_PAYMENT_TERMS_MS,
            credits_grace_ms: hood_domain::billing::DEFAULT_GRACE_MS,
            node_service: None,
            allocation_service: None,
            audit: None,
        }
    }

    /// Records operators' refunds (with their reasons) in the audit log.
    pub fn with_audit(mut self, audit: Arc<dyn hood_store::audit::AuditStore>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Sets how long an issued invoice may stay unpaid before grace.
    pub fn with_payment_terms_ms(mut self, ms: i64) -> Self {
        self.payment_terms_ms = ms.max(0);
        self
    }

    /// Sets how long a cut-off organization's nodes stay suspended before
    /// they are terminated.
    pub fn with_credits_grace_ms(mut self, ms: i64) -> Self {
        self.credits_grace_ms = ms.max(0);
        self
    }

    /// Lets dunning terminate an expired subscription's nodes, and credits
    /// suspend and resume an organization's nodes.
    pub fn with_node_service(mut self, nodes: crate::NodeService) -> Self {
        self.node_service = Some(nodes);
        self
    }

    /// Charges allocations' active minutes to prepaid credits and releases
    /// them when an organization is cut off.
    pub fn with_allocation_service(mut self, allocations: crate::AllocationService) -> Self {
        self.allocation_service = Some(allocations);
        self
    }

    /// Attaches the payment provider checkouts go through (Stripe).
    pub fn with_provider(mut self, provider: Arc<dyn PaymentProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Accepts Stripe webhooks signed with this configuration's secret.
    pub fn with_stripe_webhook(mut self, config: StripeWebhookConfig) -> Self {
        self.webhook = Some(config);
        self
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn store(&self) -> &Arc<dyn BillingStore> {
        &self.stores.billing
    }

    // --- price book -------------------------------------------------------

    /// Stores a new rate card version (default: the newest plus one).
    pub async fn create_rate_card(&self, mut card: RateCard) -> AppResult<StoredRateCard> {
        if card.version == 0 {
            let newest = self.store().list_rate_cards().await?;
            card.version = newest.first().map_or(1, |c| c.card.version + 1);
        }
        card.validate()
            .map_err(|e| invalid("rules", e.to_string()))?;
        self.ledger_of(&card.currency).await?;
        let now = self.clock.now();
        self.store()
            .insert_rate_card(&card, now)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => AppError::Conflict(format!(
                    "rate card version {} exists and versions never change: create version {}",
                    card.version,
                    card.version + 1
                )),
                other => other.into(),
            })?;
        Ok(StoredRateCard {
            card,
            created_at: now,
            used_at: None,
        })
    }

    pub async fn rate_cards(&self) -> AppResult<Vec<StoredRateCard>> {
        Ok(self.store().list_rate_cards().await?)
    }

    pub async fn rate_card(&self, version: u32) -> AppResult<StoredRateCard> {
        self.store()
            .get_rate_card(version)
            .await?
            .ok_or(AppError::NotFound("rate card"))
    }

    /// The ledger that holds `currency` (its asset code).
    async fn ledger_of(&self, currency: &Currency) -> AppResult<Ledger> {
        self.ledger
            .ledgers()
            .await?
            .into_iter()
            .find(|l| l.asset == currency.as_str())
            .ok_or_else(|| {
                invalid(
                    "currency",
                    format!("no ledger holds {currency}: configure one before billing in it"),
                )
            })
    }

    /// Creates the accounts billing posts to on `ledger` (idempotent: the
    /// ids are derived, so an existing account is the ledger's `exists`).
    async fn ensure_accounts(&self, ledger: u32, org: OrgId) -> AppResult<()> {
        let account = |code: AccountCode, org: Option<OrgId>, flags: u16| NewAccount {
            id: account_id(code, ledger, org),
            ledger,
            code: code as u16,
            flags: AccountFlags(flags),
            org_id: org,
            user_data_128: 0,
            user_data_64: 0,
            user_data_32: 0,
        };
        let batch = [
            account(AccountCode::Cash, None, 0),
            account(AccountCode::Revenue, None, 0),
            account(AccountCode::Receivable, Some(org), 0),
            account(
                AccountCode::PrepaidCredits,
                Some(org),
                AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            ),
        ];
        for (item, result) in batch.iter().zip(self.ledger.create_accounts(&batch).await?) {
            if !result.is_recorded() {
                return Err(AppError::Internal(format!(
                    "ledger refused billing account {}: {result}",
                    item.id
                )));
            }
        }
        Ok(())
    }

    // --- subscriptions ----------------------------------------------------

    pub async fn create_subscription(
        &self,
        org: OrgId,
        req: CreateSubscription,
    ) -> AppResult<Subscription> {
        let card =
            match req.rate_card_version {
                Some(v) => self.store().get_rate_card(v).await?.ok_or_else(|| {
                    invalid("rate_card_version", format!("no rate card version {v}"))
                })?,
                None => self
                    .store()
                    .list_rate_cards()
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        invalid(
                        "rate_card_version",
                        "no rate card exists yet: create one first (hood billing rate-card create)",
                    )
                    })?,
            };
        if card.card.currency != req.currency {
            return Err(invalid(
                "currency",
                format!(
                    "the contract is in {} but rate card {} prices in {}",
                    req.currency, card.card.version, card.card.currency
                ),
            ));
        }
        let grace_ms = req.grace_ms.unwrap_or(DEFAULT_GRACE_MS);
        if grace_ms < 0 {
            return Err(invalid("grace_hours", "grace cannot be negative"));
        }
        if req.budget_hard_cap && req.budget_minor.is_none() {
            return Err(invalid(
                "budget_hard_cap",
                "a hard cap needs a budget (budget_minor)",
            ));
        }
        let ledger = self.ledger_of(&req.currency).await?;
        self.ensure_accounts(ledger.id, org).await?;
        let now = self.clock.now();
        let state = if req.pending_payment {
            SubscriptionState::PendingPayment
        } else {
            SubscriptionState::Active
        };
        let s = Subscription {
            id: SubscriptionId::from_uuid(Uuid::now_v7()),
            org_id: org,
            terms: req.terms,
            currency: req.currency,
            start_date: req.start_date,
            rate_card_version: card.card.version,
            grace_ms,
            budget_minor: req.budget_minor,
            budget_hard_cap: req.budget_hard_cap,
            state,
            state_since: now,
            grace_until: None,
            reason: None,
            billed_through: None,
            created_at: now,
            version: 1,
        };
        self.store()
            .insert_subscription(&s)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => AppError::Conflict(
                    "the organization has a live subscription: cancel it first".into(),
                ),
                other => other.into(),
            })?;
        tracing::info!(subscription = %s.id, org = %org, state = %s.state, "subscription created");
        Ok(s)
    }

    pub async fn subscriptions(&self, org: Option<OrgId>) -> AppResult<Vec<Subscription>> {
        Ok(self.store().list_subscriptions(org).await?)
    }

    pub async fn subscription(
        &self,
        org: Option<OrgId>,
        id: SubscriptionId,
    ) -> AppResult<Subscription> {
        self.store()
            .get_subscription(org, id)
            .await?
            .ok_or(AppError::NotFound("subscription"))
    }

    /// Moves a subscription through its state machine (optimistically:
    /// a concurrent change is retried against the fresh row).
    pub(crate) async fn move_subscription(
        &self,
        id: SubscriptionId,
        to: SubscriptionState,
        reason: Option<String>,
    ) -> AppResult<Subscription> {
        for _ in 0..5 {
            let mut s = self.subscription(None, id).await?;
            if s.state == to {
                return Ok(s);
            }
            s.state = s
                .state
                .transition(to)
                .map_err(|e| AppError::Conflict(format!("subscription is {}: {e}", s.state)))?;
            let now = self.clock.now();
            s.state_since = now;
            s.grace_until = (to == SubscriptionState::Grace).then(|| now.plus_millis(s.grace_ms));
            s.reason = reason.clone();
            s.version += 1;
            if self.store().update_subscription(&s).await? {
                tracing::info!(subscription = %id, state = %to, "subscription moved");
                self.announce_subscription(&s).await;
                return Ok(s);
            }
        }
        Err(AppError::Conflict(
            "the subscription keeps changing; try again".into(),
        ))
    }

    /// Tells the organization's channels (a `billing` incident, raised or
    /// cleared) where its subscription now stands. Best effort: billing
    /// goes on if the alert cannot be written, and says so in the log.
    async fn announce_subscription(&self, s: &Subscription) {
        let grace = format!("billing:grace:{}", s.id);
        let reason = s.reason.clone().unwrap_or_default();
        match s.state {
            SubscriptionState::Grace => {
                let until = s
                    .grace_until
                    .map(|t| {
                        format!(
                            " Service continues until {} (Unix ms) unless paid.",
                            t.millis()
                        )
                    })
                    .unwrap_or_default();
                self.alert(
                    s.org_id,
                    &grace,
                    "Subscription in grace",
                    &format!("{reason}.{until}"),
                )
                .await;
            }
            SubscriptionState::Expired => {
                self.clear_alert(s.org_id, &grace).await;
                self.alert(
                    s.org_id,
                    &format!("billing:expired:{}", s.id),
                    "Subscription expired",
                    &format!("{reason}: the organization's nodes are being terminated."),
                )
                .await;
            }
            SubscriptionState::Active | SubscriptionState::Cancelled => {
                self.clear_alert(s.org_id, &grace).await;
            }
            SubscriptionState::PendingPayment => {}
        }
    }

    pub(crate) async fn alert(&self, org: OrgId, key: &str, title: &str, detail: &str) {
        let now = self.clock.now();
        if let Err(e) = self
            .store()
            .raise_billing_alert(org, key, title, detail, now)
            .await
        {
            tracing::warn!(org = %org, key, error = %e, "billing alert not written");
        }
    }

    pub(crate) async fn clear_alert(&self, org: OrgId, key: &str) {
        let now = self.clock.now();
        if let Err(e) = self.store().clear_billing_alert(org, key, now).await {
            tracing::warn!(org = %org, key, error = %e, "billing alert not cleared");
        }
    }

    /// Sets (or removes, with `None`) a subscription's monthly budget; the
    /// next budget pass measures against it (a raised budget lifts a cap).
    pub async fn set_budget(
        &self,
        org: Option<OrgId>,
        id: SubscriptionId,
        budget_minor: Option<u64>,
        hard_cap: bool,
    ) -> AppResult<Subscription> {
        if hard_cap && budget_minor.is_none() {
            return Err(invalid(
                "budget_hard_cap",
                "a hard cap needs a budget (budget_minor)",
            ));
        }
        for _ in 0..5 {
            let mut s = self.subscription(org, id).await?;
            s.budget_minor = budget_minor;
            s.budget_hard_cap = hard_cap;
            s.version += 1;
            if self.store().update_subscription(&s).await? {
                tracing::info!(subscription = %id, ?budget_minor, hard_cap, "subscription budget set");
                return Ok(s);
            }
        }
        Err(AppError::Conflict(
            "the subscription kept changing; try again".into(),
        ))
    }

    /// Ends a subscription by choice; its last period is still invoiced.
    pub async fn cancel_subscription(
        &self,
        org: Option<OrgId>,
        id: SubscriptionId,
        reason: Option<String>,
    ) -> AppResult<Subscription> {
        self.subscription(org, id).await?;
        self.move_subscription(id, SubscriptionState::Cancelled, reason)
            .await
    }

    // --- invoices ---------------------------------------------------------

    pub async fn invoices(
        &self,
        org: Option<OrgId>,
        subscription: Option<SubscriptionId>,
        limit: Option<i64>,
    ) -> AppResult<Vec<Invoice>> {
        Ok(self
            .store()
            .list_invoices(&InvoiceQuery {
                org_id: org,
                subscription_id: subscription,
                state: None,
                limit: limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE),
            })
            .await?)
    }

    pub async fn invoice(&self, org: Option<OrgId>, id: InvoiceId) -> AppResult<Invoice> {
        self.store()
            .get_invoice(org, id)
            .await?
            .ok_or(AppError::NotFound("invoice"))
    }

    pub async fn invoice_payments(
        &self,
        org: Option<OrgId>,
        id: InvoiceId,
    ) -> AppResult<Vec<Payment>> {
        self.invoice(org, id).await?;
        Ok(self.store().list_payments(org, Some(id)).await?)
    }
}
