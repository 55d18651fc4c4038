//! Prepaid credits: enabling them, top-ups, the per-window accrual with
//! ledger holds, and the cut-off when the next hold cannot be placed (see
//! [`hood_domain::billing::credits`] for the rules).
//!
//! Every transfer id is derived from the organization and the window, so a
//! pass repeated after a crash finds its transfers recorded (`exists`, or
//! a hold already posted) and charges nothing twice.

use super::close::UnitsFrom;
use super::BillingService;
use crate::error::{AppError, AppResult};
use crate::ledger::Viewer;
use hood_domain::billing::credits::{
    allocation_charge, excess_id, hold_id, next_hold_amount, settle_id, threshold_crossed,
    window_charge, ActiveSpan, CreditAccount, CreditState, Hold, DEFAULT_WINDOW_MS, HOLD_WINDOWS,
};
use hood_domain::billing::posting::{account_id, minor_exponent, payment_id, transfer_code};
use hood_domain::billing::{Currency, Payment, PaymentState, RateCard};
use hood_domain::ledger::{AccountCode, CreateTransferResult as R, NewTransfer, TransferFlags};
use hood_domain::{AccountId, OrgId, Timestamp, TransferId};
use hood_store::billing::PaymentOutcome;

/// Windows one pass charges at most per organization (a billing role that
/// was down catches up over a few passes).
const MAX_WINDOWS_PER_PASS: usize = 60;

/// A request to run an organization on prepaid credits.
#[derive(Debug, Clone, Default)]
pub struct EnableCredits {
    /// Default: the newest rate card.
    pub rate_card_version: Option<u32>,
    /// Default [`DEFAULT_WINDOW_MS`].
    pub window_ms: Option<i64>,
    /// Warn below these balances (minor units).
    pub low_balance_minor: Vec<u64>,
}

/// An organization's credits as the API shows them.
#[derive(Debug, Clone)]
pub struct CreditsView {
    pub account: CreditAccount,
    /// The ledger account holding the balance (its transfers are the
    /// balance's history).
    pub ledger_account: AccountId,
    pub currency: Currency,
    /// What may still be spent: credits minus posted and held debits, in
    /// the ledger's units (micro-dollars for USD)…
    pub available_units: u64,
    /// …and in whole minor units (rounded down).
    pub available_minor: u64,
    /// Reserved by the current hold.
    pub held_units: u64,
    /// Spent so far.
    pub spent_units: u64,
    pub ledger_scale: u8,
}

/// What one accrual pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccrualReport {
    pub windows: usize,
    /// Organizations cut off / resumed by this pass.
    pub stopped: usize,
    pub resumed: usize,
    /// Nodes asked to suspend, resume, terminate (grace ran out).
    pub nodes_suspended: usize,
    pub nodes_resumed: usize,
    pub nodes_terminated: usize,
    /// Allocations released because their organization was cut off.
    pub allocations_released: usize,
}

/// How long an organization is cut off before its nodes are stopped: the
/// edge (refreshing its stops every 2 s) refuses RPC first, so callers see
/// 402 with the reason rather than a node gone away, and a top-up right
/// after the cut-off restarts nothing.
pub const SUSPEND_NODES_AFTER_MS: i64 = 10_000;

/// Metadata key naming the organization a Stripe checkout tops up.
pub const CREDITS_METADATA_KEY: &str = "hood_credits_org_id";

fn exhausted_key(org: OrgId) -> String {
    format!("billing:credits-exhausted:{org}")
}

fn low_balance_key(org: OrgId) -> String {
    format!("billing:credits-low:{org}")
}

struct Books {
    ledger: u32,
    scale: u8,
    credits: AccountId,
    revenue: AccountId,
}

impl BillingService {
    async fn books(&self, org: OrgId, card: &RateCard) -> AppResult<Books> {
        let ledger = self.ledger_of(&card.currency).await?;
        Ok(Books {
            ledger: ledger.id,
            scale: ledger.scale,
            credits: account_id(AccountCode::PrepaidCredits, ledger.id, Some(org)),
            revenue: account_id(AccountCode::Revenue, ledger.id, None),
        })
    }

    /// Runs `org` on prepaid credits from now on.
    pub async fn enable_credits(&self, org: OrgId, req: EnableCredits) -> AppResult<CreditAccount> {
        let card = match req.rate_card_version {
            Some(v) => {
                self.store()
                    .get_rate_card(v)
                    .await?
                    .ok_or_else(|| {
                        super::invalid("rate_card_version", format!("no rate card version {v}"))
                    })?
                    .card
            }
            None => {
                self.rate_cards()
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        super::invalid(
                            "rate_card_version",
                            "no rate card exists yet: create one first",
                        )
                    })?
                    .card
            }
        };
        let window_ms = req.window_ms.unwrap_or(DEFAULT_WINDOW_MS);
        if !(1_000..=3_600_000).contains(&window_ms) {
            return Err(super::invalid(
                "window_seconds",
                "an accrual window is 1 to 3600 seconds",
            ));
        }
        let ledger = self.ledger_of(&card.currency).await?;
        self.ensure_accounts(ledger.id, org).await?;
        let now = self.clock.now();
        let account = CreditAccount {
            org_id: org,
            rate_card_version: card.version,
            window_ms,
            low_balance_minor: req.low_balance_minor,
            // Nothing is held yet: the first pass places the first hold,
            // and cuts off an organization that has no credits.
            state: CreditState::Active,
            reason: None,
            state_since: now,
            accrued_through: now,
            hold: None,
            warned_below: None,
            created_at: now,
            version: 1,
        };
        self.stores
            .credits
            .insert_credit_account(&account)
            .await
            .map_err(|e| match e {
                hood_store::StoreError::Conflict(_) => {
                    AppError::Conflict("the organization runs on credits already".into())
                }
                other => other.into(),
            })?;
        tracing::info!(org = %org, window_ms, "prepaid credits enabled");
        // The first hold now: an organization without credits is cut off
        // from the start.
        self.resume_credits(org).await?;
        self.credit_account(org).await
    }

    pub(crate) async fn credit_account(&self, org: OrgId) -> AppResult<CreditAccount> {
        self.stores
            .credits
            .get_credit_account(org)
            .await?
            .ok_or(AppError::NotFound("credit account"))
    }

    /// The organization's credits: balance, hold, state.
    pub async fn credits(&self, org: OrgId) -> AppResult<CreditsView> {
        let account = self.credit_account(org).await?;
        let card = self.rate_card(account.rate_card_version).await?.card;
        let books = self.books(org, &card).await?;
        let ledger_account = self
            .ledger
            .get_account(Viewer::Platform, books.credits)
            .await?;
        let used = ledger_account
            .debits_posted
            .saturating_add(ledger_account.debits_pending);
        let available_units = ledger_account.credits_posted.saturating_sub(used);
        let unit = 10u64.pow(u32::from(
            books.scale.saturating_sub(minor_exponent(&card.currency)),
        ));
        Ok(CreditsView {
            ledger_account: books.credits,
            available_minor: available_units / unit,
            available_units,
            held_units: ledger_account.debits_pending,
            spent_units: ledger_account.debits_posted,
            currency: card.currency,
            ledger_scale: books.scale,
            account,
        })
    }

    /// Adds credits paid through `provider` (`local`: a billing operator
    /// recorded it; `stripe`: a checkout). Idempotent by reference; a
    /// stopped organization is resumed at once if the new balance covers
    /// a hold.
    pub async fn top_up(
        &self,
        org: OrgId,
        provider: &str,
        reference: &str,
        amount_minor: u64,
    ) -> AppResult<Payment> {
        let reference = reference.trim();
        if reference.is_empty() || reference.len() > 200 {
            return Err(super::invalid("reference", "1 to 200 characters"));
        }
        if amount_minor == 0 {
            return Err(super::invalid("amount_minor", "a top-up is at least 1"));
        }
        let account = self.credit_account(org).await?;
        let card = self.rate_card(account.rate_card_version).await?.card;
        let now = self.clock.now();
        let payment = Payment {
            id: payment_id(provider, reference),
            invoice_id: None,
            org_id: org,
            provider: provider.to_owned(),
            reference: reference.to_owned(),
            amount_minor,
            currency: card.currency.clone(),
            state: PaymentState::Succeeded,
            detail: Some("credit top-up".into()),
            created_at: now,
            updated_at: now,
            posted_at: None,
        };
        if let PaymentOutcome::Recorded { .. } = self.store().record_payment(&payment).await? {
            tracing::info!(org = %org, provider, amount_minor, "credit top-up recorded");
        }
        let stored = self
            .store()
            .get_payment(payment.id)
            .await?
            .ok_or(AppError::NotFound("payment"))?;
        if stored.org_id != org {
            return Err(AppError::Conflict(
                "this reference paid for another organization".into(),
            ));
        }
        // Posted now (the loop retries if this fails): the credit must be
        // in the ledger before a hold can use it.
        self.post_payment(&stored).await?;
        self.credits_added(org).await?;
        Ok(stored)
    }

    /// After credits were added (a top-up, a refund): a cut-off
    /// organization resumes at once if the balance covers a hold, and its
    /// nodes with it.
    pub(crate) async fn credits_added(&self, org: OrgId) -> AppResult<()> {
        self.resume_credits(org).await?;
        let account = self.credit_account(org).await?;
        self.enforce_on_nodes(&account, &mut AccrualReport::default())
            .await
    }

    /// Nothing when `org` is not on prepaid credits; else 402 unless it is
    /// active and what is left covers one minute at `per_minute_minor`
    /// (what the running allocations need is already held).
    pub async fn require_prepaid_minute(
        &self,
        org: OrgId,
        per_minute_minor: u64,
        currency: &Currency,
    ) -> AppResult<()> {
        if self.stores.credits.get_credit_account(org).await?.is_none() {
            return Ok(());
        }
        let view = self.credits(org).await?;
        if view.account.state == CreditState::Stopped {
            return Err(AppError::PaymentRequired(format!(
                "the organization's prepaid credits are exhausted ({}); top up first",
                view.account.reason.as_deref().unwrap_or("no credit left")
            )));
        }
        if view.currency != *currency {
            return Err(AppError::Conflict(format!(
                "this is priced in {currency} but the organization's credits are in {}",
                view.currency
            )));
        }
        let unit = 10u64.pow(u32::from(
            view.ledger_scale.saturating_sub(minor_exponent(currency)),
        ));
        let minute = per_minute_minor.saturating_mul(unit);
        if view.available_units < minute {
            return Err(AppError::PaymentRequired(format!(
                "a first minute costs {per_minute_minor} minor units of {currency}; {} are \
                 left in prepaid credits: top up first",
                view.available_minor
            )));
        }
        Ok(())
    }

    /// Opens a hosted checkout (Stripe) that tops up `org`'s credits when
    /// paid; `request_key` makes a retry answer the same session.
    pub async fn credits_checkout(
        &self,
        org: OrgId,
        amount_minor: u64,
        request_key: &str,
        success_url: String,
        cancel_url: String,
    ) -> AppResult<hood_store::billing::Checkout> {
        if amount_minor == 0 {
            return Err(super::invalid("amount_minor", "a top-up is at least 1"));
        }
        let account = self.credit_account(org).await?;
        let card = self.rate_card(account.rate_card_version).await?.card;
        let request = hood_payments::CheckoutRequest {
            idempotency_key: format!("hood-credits-{org}-{request_key}"),
            amount_minor,
            currency: card.currency.to_string(),
            description: "Prepaid credits".into(),
            client_reference_id: org.to_string(),
            metadata: std::collections::BTreeMap::from([(
                CREDITS_METADATA_KEY.to_owned(),
                org.to_string(),
            )]),
            success_url,
            cancel_url,
        };
        self.open_checkout(org, None, &request).await
    }

    /// Places the current window's hold for a stopped organization; on
    /// success it is active again (and the warnings start over).
    async fn resume_credits(&self, org: OrgId) -> AppResult<bool> {
        let mut account = self.credit_account(org).await?;
        if account.warned_below.take().is_some() {
            self.clear_alert(org, &low_balance_key(org)).await;
        }
        if account.state == CreditState::Active && account.hold.is_some() {
            account.version += 1;
            self.stores.credits.update_credit_account(&account).await?;
            return Ok(false);
        }
        let card = self.rate_card(account.rate_card_version).await?.card;
        let books = self.books(org, &card).await?;
        let window_end = account.accrued_through.plus_millis(account.window_ms);
        let resumed = self.place_hold(&mut account, &books, window_end, 1).await?;
        account.version += 1;
        self.stores.credits.update_credit_account(&account).await?;
        Ok(resumed)
    }

    /// Charges every ended window of every organization on credits.
    pub async fn accrue_credits(&self) -> AppResult<AccrualReport> {
        let mut report = AccrualReport::default();
        for account in self.stores.credits.list_credit_accounts().await? {
            let org = account.org_id;
            let account = match self.accrue_account(account, &mut report).await {
                Ok(account) => account,
                Err(e) => {
                    tracing::warn!(org = %org, error = %e, "credit accrual failed; retrying next pass");
                    continue;
                }
            };
            if let Err(e) = self.enforce_on_allocations(&account, &mut report).await {
                tracing::warn!(org = %org, error = %e, "releasing allocations failed; retrying next pass");
            }
            if let Err(e) = self.enforce_on_nodes(&account, &mut report).await {
                tracing::warn!(org = %org, error = %e, "suspending or resuming nodes failed; retrying next pass");
            }
        }
        // Allocation budgets cap any organization, on credits or not.
        if let Some(allocations) = &self.allocation_service {
            match allocations.enforce_budgets().await {
                Ok(n) => report.allocations_released += n,
                Err(e) => {
                    tracing::warn!(error = %e, "enforcing allocation budgets failed; retrying next pass")
                }
            }
        }
        Ok(report)
    }

    /// Charges the account's ended windows; returns it as it now stands.
    async fn accrue_account(
        &self,
        mut account: CreditAccount,
        report: &mut AccrualReport,
    ) -> AppResult<CreditAccount> {
        let card = self.rate_card(account.rate_card_version).await?.card;
        let books = self.books(account.org_id, &card).await?;
        let now = self.clock.now();
        for _ in 0..MAX_WINDOWS_PER_PASS {
            let t0 = account.accrued_through;
            let t1 = t0.plus_millis(account.window_ms);
            if t1 > now {
                break;
            }
            let readings = self
                .readings_between(account.org_id, &card, t0, t1, UnitsFrom::Events)
                .await?;
            let usage = window_charge(&card, &readings, books.scale)
                .map_err(|e| AppError::Conflict(e.to_string()))?;
            let (minutes, run_rate) = self
                .allocation_charges(&account, &card.currency, books.scale, t0, t1)
                .await?;
            let charge = usage.saturating_add(minutes);
            self.settle_window(&account, &books, t1, charge).await?;
            let was = account.state;
            let next_end = t1.plus_millis(account.window_ms);
            // The next window holds at least what the allocations running
            // now will cost in it: an organization that cannot cover their
            // next minute is cut off now, not a window later.
            self.place_hold(&mut account, &books, next_end, charge.max(run_rate))
                .await?;
            match (was, account.state) {
                (CreditState::Active, CreditState::Stopped) => report.stopped += 1,
                (CreditState::Stopped, CreditState::Active) => report.resumed += 1,
                _ => {}
            }
            account.accrued_through = t1;
            report.windows += 1;
            self.warn_low_balance(&mut account, &books, &card.currency)
                .await?;
            account.version += 1;
            if !self.stores.credits.update_credit_account(&account).await? {
                // Changed meanwhile (a top-up): the next pass goes on.
                return self.credit_account(account.org_id).await;
            }
        }
        Ok(account)
    }

    /// What the organization's allocations cost in `[t0, t1)`, and what
    /// those still active at `t1` will cost over a whole window (the run
    /// rate the next hold must cover), in ledger units.
    async fn allocation_charges(
        &self,
        account: &CreditAccount,
        currency: &Currency,
        scale: u8,
        t0: Timestamp,
        t1: Timestamp,
    ) -> AppResult<(u64, u64)> {
        let Some(allocations) = &self.allocation_service else {
            return Ok((0, 0));
        };
        let spans = allocations.active_spans(account.org_id, t0, t1).await?;
        if let Some((other, _, _)) = spans.iter().find(|(c, _, _)| c != currency) {
            return Err(AppError::Conflict(format!(
                "an allocation is priced in {other} but the organization's credits are in \
                 {currency}"
            )));
        }
        let exponent = minor_exponent(currency);
        let spans: Vec<ActiveSpan> = spans.into_iter().map(|(_, _, s)| s).collect();
        let charged = allocation_charge(&spans, t0, t1, scale, exponent)
            .map_err(|e| AppError::Conflict(e.to_string()))?;
        let next_end = t1.plus_millis(account.window_ms);
        let running: Vec<ActiveSpan> = spans
            .iter()
            .filter(|s| s.until.is_none())
            .map(|s| ActiveSpan { from: t1, ..*s })
            .collect();
        let run_rate = allocation_charge(&running, t1, next_end, scale, exponent)
            .map_err(|e| AppError::Conflict(e.to_string()))?;
        Ok((charged, run_rate))
    }

    /// A cut-off organization's allocations are released at once: they
    /// stop running within the billing pass that found the credits short,
    /// so the balance never pays for a minute it could not hold.
    async fn enforce_on_allocations(
        &self,
        account: &CreditAccount,
        report: &mut AccrualReport,
    ) -> AppResult<()> {
        let Some(allocations) = &self.allocation_service else {
            return Ok(());
        };
        if account.state != CreditState::Stopped {
            return Ok(());
        }
        let reason = account
            .reason
            .clone()
            .unwrap_or_else(|| "prepaid credits exhausted".into());
        report.allocations_released += allocations
            .release_for_credits(account.org_id, &reason)
            .await?;
        Ok(())
    }

    /// Brings the organization's nodes in line with its credits: a cut-off
    /// organization's serving nodes are suspended, and terminated once the
    /// grace ran out; an active one's suspended nodes are started again.
    /// Asked on every pass, so a request lost to a crash or a race with a
    /// workflow is asked again (each request finds its run by id).
    async fn enforce_on_nodes(
        &self,
        account: &CreditAccount,
        report: &mut AccrualReport,
    ) -> AppResult<()> {
        let Some(service) = &self.node_service else {
            return Ok(());
        };
        let org = account.org_id;
        if account.state == CreditState::Stopped
            && account.state_since.plus_millis(self.credits_grace_ms) <= self.clock.now()
        {
            let n = self.terminate_nodes_of(org).await?;
            if n > 0 {
                tracing::warn!(org = %org, nodes = n, "credits grace ran out: terminating nodes");
            }
            report.nodes_terminated += n;
            return Ok(());
        }
        if account.state == CreditState::Stopped
            && account.state_since.plus_millis(SUSPEND_NODES_AFTER_MS) > self.clock.now()
        {
            return Ok(());
        }
        for node in self.stores.nodes.list_nodes(Some(org)).await? {
            let asked = match account.state {
                CreditState::Stopped => service.suspend(org, node.id).await?,
                CreditState::Active => service.resume(org, node.id).await?,
            };
            if asked.is_some() {
                match account.state {
                    CreditState::Stopped => report.nodes_suspended += 1,
                    CreditState::Active => report.nodes_resumed += 1,
                }
            }
        }
        Ok(())
    }

    async fn transfer_result(&self, t: NewTransfer) -> AppResult<R> {
        self.ledger
            .create_transfers(std::slice::from_ref(&t))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| AppError::Internal("ledger answered no result".into()))
    }

    fn usage_transfer(books: &Books, id: TransferId, amount: u64, flags: u16) -> NewTransfer {
        NewTransfer {
            id,
            debit_account_id: Some(books.credits),
            credit_account_id: Some(books.revenue),
            amount,
            pending_id: None,
            user_data_128: 0,
            user_data_64: 0,
            user_data_32: 0,
            timeout: 0,
            ledger: books.ledger,
            code: transfer_code::CREDIT_USAGE,
            flags: TransferFlags(flags),
        }
    }

    /// Charges the window ending at `window_end`: its hold posted with what
    /// it cost (voided when nothing), the rest taken by a balancing debit
    /// (at most what is left: the balance never goes below zero).
    async fn settle_window(
        &self,
        account: &CreditAccount,
        books: &Books,
        window_end: Timestamp,
        charge: u64,
    ) -> AppResult<()> {
        let mut remaining = charge;
        if let Some(hold) = account.hold {
            let covers = hold.window_end == window_end;
            let take = if covers { charge.min(hold.amount) } else { 0 };
            let mut settle = Self::usage_transfer(books, settle_id(hold.transfer_id), take, 0);
            settle.pending_id = Some(hold.transfer_id);
            // Posting 0 would post the whole hold: void it instead.
            settle.flags = TransferFlags(if take == 0 {
                TransferFlags::VOID_PENDING_TRANSFER
            } else {
                TransferFlags::POST_PENDING_TRANSFER
            });
            match self.transfer_result(settle).await? {
                r if r.is_recorded() => remaining -= take,
                R::PendingTransferAlreadyPosted | R::PendingTransferAlreadyVoided => {
                    remaining -= take
                }
                // Timed out (the billing role was away): charge it all below.
                R::PendingTransferExpired | R::PendingTransferNotFound => {}
                other => {
                    return Err(AppError::Internal(format!(
                        "settling hold {}: {other}",
                        hold.transfer_id
                    )))
                }
            }
        }
        if remaining > 0 {
            let excess = Self::usage_transfer(
                books,
                excess_id(account.org_id, window_end),
                remaining,
                TransferFlags::BALANCING_DEBIT,
            );
            let r = self.transfer_result(excess).await?;
            if !r.is_recorded() {
                return Err(AppError::Internal(format!(
                    "charging a window's excess: {r}"
                )));
            }
        }
        Ok(())
    }

    /// Reserves the window ending at `window_end`; cuts the organization
    /// off when the ledger refuses, resumes it when the ledger accepts.
    /// Returns whether it resumed.
    async fn place_hold(
        &self,
        account: &mut CreditAccount,
        books: &Books,
        window_end: Timestamp,
        last_charge: u64,
    ) -> AppResult<bool> {
        let amount = next_hold_amount(last_charge);
        let id = hold_id(account.org_id, window_end);
        let mut hold = Self::usage_transfer(books, id, amount, TransferFlags::PENDING);
        hold.timeout =
            u32::try_from((HOLD_WINDOWS * account.window_ms / 1000).max(1)).unwrap_or(u32::MAX);
        let now = self.clock.now();
        match self.transfer_result(hold).await? {
            r if r.is_recorded() => {
                account.hold = Some(Hold {
                    transfer_id: id,
                    amount,
                    window_end,
                });
                if account.state == CreditState::Stopped {
                    account.state = CreditState::Active;
                    account.reason = None;
                    account.state_since = now;
                    tracing::info!(org = %account.org_id, "credits resumed");
                    self.clear_alert(account.org_id, &exhausted_key(account.org_id))
                        .await;
                    return Ok(true);
                }
                Ok(false)
            }
            R::ExceedsCredits => {
                account.hold = None;
                if account.state == CreditState::Active {
                    account.state = CreditState::Stopped;
                    account.reason = Some(format!(
                        "prepaid credits exhausted: the next {} s need {amount} ledger units; top up to resume",
                        account.window_ms / 1000
                    ));
                    account.state_since = now;
                    tracing::warn!(org = %account.org_id, "credits exhausted: organization cut off");
                    self.alert(
                        account.org_id,
                        &exhausted_key(account.org_id),
                        "Prepaid credits exhausted",
                        account.reason.as_deref().unwrap_or_default(),
                    )
                    .await;
                }
                Ok(false)
            }
            other => Err(AppError::Internal(format!(
                "placing a credit hold: {other}"
            ))),
        }
    }

    async fn warn_low_balance(
        &self,
        account: &mut CreditAccount,
        books: &Books,
        currency: &Currency,
    ) -> AppResult<()> {
        if account.low_balance_minor.is_empty() {
            return Ok(());
        }
        let a = self
            .ledger
            .get_account(Viewer::Platform, books.credits)
            .await?;
        let available = a
            .credits_posted
            .saturating_sub(a.debits_posted.saturating_add(a.debits_pending));
        let unit = 10u64.pow(u32::from(
            books.scale.saturating_sub(minor_exponent(currency)),
        ));
        let balance_minor = available / unit;
        if let Some(t) = threshold_crossed(
            &account.low_balance_minor,
            account.warned_below,
            balance_minor,
        ) {
            tracing::warn!(
                org = %account.org_id, threshold_minor = t, balance_minor,
                "prepaid credits below a low-balance threshold"
            );
            account.warned_below = Some(t);
            self.alert(
                account.org_id,
                &low_balance_key(account.org_id),
                "Prepaid credits running low",
                &format!(
                    "The balance is {} minor units of {currency}, below the warning at {t}.",
                    balance_minor
                ),
            )
            .await;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl crate::allocations::PrepaidGate for BillingService {
    async fn require_prepaid_minute(
        &self,
        org: OrgId,
        per_minute_minor: u64,
        currency: &Currency,
    ) -> AppResult<()> {
        BillingService::require_prepaid_minute(self, org, per_minute_minor, currency).await
    }
}
