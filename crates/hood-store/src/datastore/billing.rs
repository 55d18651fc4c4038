//! [`BillingStore`] for [`SqlStore`].

use super::incident::{insert_incident_on, update_incident_on};
use super::lease::check_fence;
use super::SqlStore;
use crate::billing::{
    BillingStore, Checkout, InvoiceQuery, IssueOutcome, NewCreditNote, PaymentOutcome,
    StoredRateCard,
};
use crate::codec::{format_date, parse_date, parse_json, parse_state, write_error};
use crate::db::{query, query_as, Tx};
use crate::health::IncidentChange;
use crate::incident::Incident;
use crate::lease::Lease;
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::billing::budget::BudgetStatus;
use hood_domain::billing::posting::invoice_number;
use hood_domain::billing::{
    CreditNote, Currency, Invoice, Payment, PaymentState, Period, RateCard, Subscription,
};
use hood_domain::health::IncidentCategory;
use hood_domain::lifecycle::{IncidentState, InvoiceState};
use hood_domain::machine::StateMachine;
use hood_domain::{
    CreditNoteId, IncidentId, InvoiceId, OrgId, PaymentId, SubscriptionId, Timestamp,
};
use time::Date;

pub(super) fn to_i64(what: &str, v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} out of range")))
}

pub(super) fn to_u64(what: &str, v: i64) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} is negative")))
}

fn to_u32(what: &str, v: i64) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} out of range")))
}

fn json(what: &str, v: &impl serde::Serialize) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(super) fn parse_id<T: std::str::FromStr>(column: &str, v: &str) -> StoreResult<T> {
    v.parse()
        .map_err(|_| StoreError::Corrupt(format!("{column}: `{v}` is not an id")))
}

pub(super) fn parse_currency(v: &str) -> StoreResult<Currency> {
    v.parse()
        .map_err(|e| StoreError::Corrupt(format!("currency: {e}")))
}

#[derive(sqlx::FromRow)]
struct RateCardRow {
    card: String,
    created_at: i64,
    used_at: Option<i64>,
}

impl TryFrom<RateCardRow> for StoredRateCard {
    type Error = StoreError;
    fn try_from(r: RateCardRow) -> StoreResult<Self> {
        Ok(StoredRateCard {
            card: parse_json("card", &r.card)?,
            created_at: Timestamp::from_millis(r.created_at),
            used_at: r.used_at.map(Timestamp::from_millis),
        })
    }
}

const SUBSCRIPTION_COLUMNS: &str = "id, org_id, terms, currency, start_date, rate_card_version, \
     grace_ms, budget_minor, state, state_since, grace_until, reason, billed_through, created_at, \
     version, budget_hard_cap";

#[derive(sqlx::FromRow)]
struct SubscriptionRow {
    id: String,
    org_id: String,
    terms: String,
    currency: String,
    start_date: String,
    rate_card_version: i64,
    grace_ms: i64,
    budget_minor: Option<i64>,
    state: String,
    state_since: i64,
    grace_until: Option<i64>,
    reason: Option<String>,
    billed_through: Option<String>,
    created_at: i64,
    version: i64,
    budget_hard_cap: bool,
}

impl TryFrom<SubscriptionRow> for Subscription {
    type Error = StoreError;
    fn try_from(r: SubscriptionRow) -> StoreResult<Self> {
        Ok(Subscription {
            id: parse_id("id", &r.id)?,
            org_id: parse_id("org_id", &r.org_id)?,
            terms: parse_json("terms", &r.terms)?,
            currency: parse_currency(&r.currency)?,
            start_date: parse_date("start_date", &r.start_date)?,
            rate_card_version: to_u32("rate_card_version", r.rate_card_version)?,
            grace_ms: r.grace_ms,
            budget_minor: r
                .budget_minor
                .map(|b| to_u64("budget_minor", b))
                .transpose()?,
            budget_hard_cap: r.budget_hard_cap,
            state: parse_state("state", &r.state)?,
            state_since: Timestamp::from_millis(r.state_since),
            grace_until: r.grace_until.map(Timestamp::from_millis),
            reason: r.reason,
            billed_through: r
                .billed_through
                .map(|d| parse_date("billed_through", &d))
                .transpose()?,
            created_at: Timestamp::from_millis(r.created_at),
            version: r.version,
        })
    }
}

pub(super) const INVOICE_COLUMNS: &str =
    "id, subscription_id, org_id, period_start, period_end, state, \
     number, currency, total_minor, rate_card_version, lines, readings, created_at, issued_at, \
     paid_at, voided_at, posted_at, void_reason";

#[derive(sqlx::FromRow)]
pub(super) struct InvoiceRow {
    id: String,
    subscription_id: String,
    org_id: String,
    period_start: String,
    period_end: String,
    state: String,
    number: Option<String>,
    currency: String,
    total_minor: i64,
    rate_card_version: i64,
    lines: String,
    readings: String,
    created_at: i64,
    issued_at: Option<i64>,
    paid_at: Option<i64>,
    voided_at: Option<i64>,
    posted_at: Option<i64>,
    void_reason: Option<String>,
}

impl TryFrom<InvoiceRow> for Invoice {
    type Error = StoreError;
    fn try_from(r: InvoiceRow) -> StoreResult<Self> {
        Ok(Invoice {
            id: parse_id("id", &r.id)?,
            subscription_id: parse_id("subscription_id", &r.subscription_id)?,
            org_id: parse_id("org_id", &r.org_id)?,
            period: Period {
                start: parse_date("period_start", &r.period_start)?,
                end: parse_date("period_end", &r.period_end)?,
            },
            state: parse_state("state", &r.state)?,
            number: r.number,
            currency: parse_currency(&r.currency)?,
            total_minor: to_u64("total_minor", r.total_minor)?,
            rate_card_version: to_u32("rate_card_version", r.rate_card_version)?,
            lines: parse_json("lines", &r.lines)?,
            readings: parse_json("readings", &r.readings)?,
            created_at: Timestamp::from_millis(r.created_at),
            issued_at: r.issued_at.map(Timestamp::from_millis),
            paid_at: r.paid_at.map(Timestamp::from_millis),
            voided_at: r.voided_at.map(Timestamp::from_millis),
            void_reason: r.void_reason,
            posted_at: r.posted_at.map(Timestamp::from_millis),
        })
    }
}

const PAYMENT_COLUMNS: &str = "id, invoice_id, org_id, provider, reference, amount_minor, \
     currency, state, detail, created_at, updated_at, posted_at";

#[derive(sqlx::FromRow)]
struct PaymentRow {
    id: String,
    invoice_id: Option<String>,
    org_id: String,
    provider: String,
    reference: String,
    amount_minor: i64,
    currency: String,
    state: String,
    detail: Option<String>,
    created_at: i64,
    updated_at: i64,
    posted_at: Option<i64>,
}

impl TryFrom<PaymentRow> for Payment {
    type Error = StoreError;
    fn try_from(r: PaymentRow) -> StoreResult<Self> {
        Ok(Payment {
            id: parse_id("id", &r.id)?,
            invoice_id: r
                .invoice_id
                .map(|i| parse_id("invoice_id", &i))
                .transpose()?,
            org_id: parse_id("org_id", &r.org_id)?,
            provider: r.provider,
            reference: r.reference,
            amount_minor: to_u64("amount_minor", r.amount_minor)?,
            currency: parse_currency(&r.currency)?,
            state: PaymentState::parse(&r.state).ok_or_else(|| {
                StoreError::Corrupt(format!("state: unknown payment state `{}`", r.state))
            })?,
            detail: r.detail,
            created_at: Timestamp::from_millis(r.created_at),
            updated_at: Timestamp::from_millis(r.updated_at),
            posted_at: r.posted_at.map(Timestamp::from_millis),
        })
    }
}

async fn invoice_of_period(
    tx: &mut Tx<'_>,
    subscription: SubscriptionId,
    start: Date,
) -> StoreResult<Option<Invoice>> {
    query_as::<InvoiceRow>(format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE subscription_id = $1 AND period_start = $2"
    ))
    .bind(subscription.to_string())
    .bind(format_date(start))
    .fetch_optional(&mut *tx)
    .await?
    .map(Invoice::try_from)
    .transpose()
}

/// The next number of `year`, taken in the caller's transaction (the
/// counter's row lock serialises issuers; a rollback returns the number).
async fn next_invoice_number(tx: &mut Tx<'_>, year: i32) -> StoreResult<String> {
    query("INSERT INTO invoice_numbers (year, last) VALUES ($1, 0) ON CONFLICT (year) DO NOTHING")
        .bind(i64::from(year))
        .execute(&mut *tx)
        .await?;
    query("UPDATE invoice_numbers SET last = last + 1 WHERE year = $1")
        .bind(i64::from(year))
        .execute(&mut *tx)
        .await?;
    let last: (i64,) = query_as("SELECT last FROM invoice_numbers WHERE year = $1")
        .bind(i64::from(year))
        .fetch_one(&mut *tx)
        .await?;
    Ok(invoice_number(year, to_u64("invoice number", last.0)?))
}

#[async_trait]
impl BillingStore for SqlStore {
    async fn insert_rate_card(&self, card: &RateCard, now: Timestamp) -> StoreResult<()> {
        query(
            "INSERT INTO rate_cards (version, currency, card, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(i64::from(card.version))
        .bind(card.currency.as_str())
        .bind(json("card", card)?)
        .bind(now.millis())
        .execute(&self.pool)
        .await
        .map_err(|e| write_error(e, "rate card"))?;
        Ok(())
    }

    async fn get_rate_card(&self, version: u32) -> StoreResult<Option<StoredRateCard>> {
        query_as::<RateCardRow>(
            "SELECT card, created_at, used_at FROM rate_cards WHERE version = $1",
        )
        .bind(i64::from(version))
        .fetch_optional(&self.pool)
        .await?
        .map(StoredRateCard::try_from)
        .transpose()
    }

    async fn list_rate_cards(&self) -> StoreResult<Vec<StoredRateCard>> {
        query_as::<RateCardRow>(
            "SELECT card, created_at, used_at FROM rate_cards ORDER BY version DESC",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(StoredRateCard::try_from)
        .collect()
    }

    async fn insert_subscription(&self, s: &Subscription) -> StoreResult<()> {
        query(format!(
            "INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ))
        .bind(s.id.to_string())
        .bind(s.org_id.to_string())
        .bind(json("terms", &s.terms)?)
        .bind(s.currency.as_str())
        .bind(format_date(s.start_date))
        .bind(i64::from(s.rate_card_version))
        .bind(s.grace_ms)
        .bind(
            s.budget_minor
                .map(|b| to_i64("budget_minor", b))
                .transpose()?,
        )
        .bind(s.state.as_str())
        .bind(s.state_since.millis())
        .bind(s.grace_until.map(Timestamp::millis))
        .bind(s.reason.clone())
        .bind(s.billed_through.map(format_date))
        .bind(s.created_at.millis())
        .bind(s.version)
        .bind(s.budget_hard_cap)
        .execute(&self.pool)
        .await
        .map_err(|e| write_error(e, "subscription"))?;
        Ok(())
    }

    async fn get_subscription(
        &self,
        org: Option<OrgId>,
        id: SubscriptionId,
    ) -> StoreResult<Option<Subscription>> {
        let found = query_as::<SubscriptionRow>(format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(Subscription::try_from)
        .transpose()?;
        Ok(found.filter(|s| org.is_none_or(|o| s.org_id == o)))
    }

    async fn list_subscriptions(&self, org: Option<OrgId>) -> StoreResult<Vec<Subscription>> {
        let rows = match org {
            Some(org) => {
                query_as::<SubscriptionRow>(format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE org_id = $1 \
                     ORDER BY created_at DESC, id"
                ))
                .bind(org.to_string())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                query_as::<SubscriptionRow>(format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions ORDER BY created_at DESC, id"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter().map(Subscription::try_from).collect()
    }

    async fn update_subscription(&self, s: &Subscription) -> StoreResult<bool> {
        let changed = query(
            "UPDATE subscriptions SET terms = $1, rate_card_version = $2, grace_ms = $3, \
             budget_minor = $4, state = $5, state_since = $6, grace_until = $7, reason = $8, \
             version = $9, budget_hard_cap = $12 WHERE id = $10 AND version = $11",
        )
        .bind(json("terms", &s.terms)?)
        .bind(i64::from(s.rate_card_version))
        .bind(s.grace_ms)
        .bind(
            s.budget_minor
                .map(|b| to_i64("budget_minor", b))
                .transpose()?,
        )
        .bind(s.state.as_str())
        .bind(s.state_since.millis())
        .bind(s.grace_until.map(Timestamp::millis))
        .bind(s.reason.clone())
        .bind(s.version)
        .bind(s.id.to_string())
        .bind(s.version - 1)
        .bind(s.budget_hard_cap)
        .execute(&self.pool)
        .await
        .map_err(|e| write_error(e, "subscription"))?;
        Ok(changed == 1)
    }

    async fn subscriptions_due(&self, through: Date) -> StoreResult<Vec<Subscription>> {
        // Candidates only: whether a whole period has ended is the
        // domain's calendar arithmetic, done by the caller. A terminal
        // subscription stays a candidate until its last period is billed
        // (`billed_through` at or past the day it ended).
        query_as::<SubscriptionRow>(format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions \
             WHERE start_date < $1 AND (billed_through IS NULL OR billed_through < $1) \
             ORDER BY id"
        ))
        .bind(format_date(through))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Subscription::try_from)
        .collect()
    }

    async fn issue_invoice(
        &self,
        invoice: &Invoice,
        lease: Option<&Lease>,
        now: Timestamp,
    ) -> StoreResult<IssueOutcome> {
        let mut tx = self.pool.begin_write().await?;
        if let Some(lease) = lease {
            check_fence(&mut tx, lease, now).await?;
        }
        if let Some(existing) =
            invoice_of_period(&mut tx, invoice.subscription_id, invoice.period.start).await?
        {
            tx.rollback().await?;
            return Ok(IssueOutcome::Exists(existing));
        }
        let issued_at = invoice.issued_at.unwrap_or(now);
        let year = time::OffsetDateTime::from_unix_timestamp(issued_at.secs())
            .map_err(|e| StoreError::Corrupt(format!("issued_at: {e}")))?
            .year();
        let number = next_invoice_number(&mut tx, year).await?;
        let mut stored = invoice.clone();
        stored.state = InvoiceState::Draft.transition(InvoiceState::Issued)?;
        stored.number = Some(number);
        stored.issued_at = Some(issued_at);
        query(format!(
            "INSERT INTO invoices ({INVOICE_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ))
        .bind(stored.id.to_string())
        .bind(stored.subscription_id.to_string())
        .bind(stored.org_id.to_string())
        .bind(format_date(stored.period.start))
        .bind(format_date(stored.period.end))
        .bind(stored.state.as_str())
        .bind(stored.number.clone())
        .bind(stored.currency.as_str())
        .bind(to_i64("total_minor", stored.total_minor)?)
        .bind(i64::from(stored.rate_card_version))
        .bind(json("lines", &stored.lines)?)
        .bind(json("readings", &stored.readings)?)
        .bind(stored.created_at.millis())
        .bind(stored.issued_at.map(Timestamp::millis))
        .bind(stored.paid_at.map(Timestamp::millis))
        .bind(stored.voided_at.map(Timestamp::millis))
        .bind(stored.posted_at.map(Timestamp::millis))
        .bind(stored.void_reason.clone())
        .execute(&mut tx)
        .await
        .map_err(|e| write_error(e, "subscription or rate card"))?;
        // Every rate card a line priced with becomes immutable.
        let mut versions: Vec<u32> = stored.lines.iter().map(|l| l.rate_card_version).collect();
        versions.push(stored.rate_card_version);
        versions.sort_unstable();
        versions.dedup();
        for v in versions {
            query("UPDATE rate_cards SET used_at = $1 WHERE version = $2 AND used_at IS NULL")
                .bind(issued_at.millis())
                .bind(i64::from(v))
                .execute(&mut tx)
                .await?;
        }
        query(
            "UPDATE subscriptions SET billed_through = $1 \
             WHERE id = $2 AND (billed_through IS NULL OR billed_through < $1)",
        )
        .bind(format_date(stored.period.end))
        .bind(stored.subscription_id.to_string())
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(IssueOutcome::Issued(stored))
    }

    async fn get_invoice(&self, org: Option<OrgId>, id: InvoiceId) -> StoreResult<Option<Invoice>> {
        let found = query_as::<InvoiceRow>(format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(Invoice::try_from)
        .transpose()?;
        Ok(found.filter(|i| org.is_none_or(|o| i.org_id == o)))
    }

    async fn list_invoices(&self, q: &InvoiceQuery) -> StoreResult<Vec<Invoice>> {
        // Filters are optional; an absent one binds NULL and matches all.
        query_as::<InvoiceRow>(format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices \
             WHERE ($1 IS NULL OR org_id = $1) AND ($2 IS NULL OR subscription_id = $2) \
             AND ($3 IS NULL OR state = $3) \
             ORDER BY period_start DESC, created_at DESC, id LIMIT $4"
        ))
        .bind(q.org_id.map(|o| o.to_string()))
        .bind(q.subscription_id.map(|s| s.to_string()))
        .bind(q.state.map(|s| s.as_str().to_owned()))
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Invoice::try_from)
        .collect()
    }

    async fn invoices_to_post(&self, limit: i64) -> StoreResult<Vec<Invoice>> {
        query_as::<InvoiceRow>(format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices \
             WHERE posted_at IS NULL AND state <> 'draft' ORDER BY issued_at, id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Invoice::try_from)
        .collect()
    }

    async fn mark_invoice_posted(&self, id: InvoiceId, at: Timestamp) -> StoreResult<()> {
        query("UPDATE invoices SET posted_at = $1 WHERE id = $2 AND posted_at IS NULL")
            .bind(at.millis())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn record_payment(&self, p: &Payment) -> StoreResult<PaymentOutcome> {
        let mut tx = self.pool.begin_write().await?;
        let inserted = query(format!(
            "INSERT INTO payments ({PAYMENT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (provider, reference) DO NOTHING"
        ))
        .bind(p.id.to_string())
        .bind(p.invoice_id.map(|i| i.to_string()))
        .bind(p.org_id.to_string())
        .bind(p.provider.as_str())
        .bind(p.reference.as_str())
        .bind(to_i64("amount_minor", p.amount_minor)?)
        .bind(p.currency.as_str())
        .bind(p.state.as_str())
        .bind(p.detail.clone())
        .bind(p.created_at.millis())
        .bind(p.updated_at.millis())
        .bind(p.posted_at.map(Timestamp::millis))
        .execute(&mut tx)
        .await
        .map_err(|e| write_error(e, "invoice"))?;
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(PaymentOutcome::Duplicate);
        }
        let mut settled = false;
        if let (Some(invoice), PaymentState::Succeeded) = (p.invoice_id, p.state) {
            settled = query(
                "UPDATE invoices SET state = 'paid', paid_at = $1 WHERE id = $2 AND state = 'issued'",
            )
            .bind(p.created_at.millis())
            .bind(invoice.to_string())
            .execute(&mut tx)
            .await?
                == 1;
        }
        tx.commit().await?;
        Ok(PaymentOutcome::Recorded { settled })
    }

    async fn get_payment(&self, id: PaymentId) -> StoreResult<Option<Payment>> {
        query_as::<PaymentRow>(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(Payment::try_from)
        .transpose()
    }

    async fn find_payment(&self, provider: &str, reference: &str) -> StoreResult<Option<Payment>> {
        query_as::<PaymentRow>(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE provider = $1 AND reference = $2"
        ))
        .bind(provider)
        .bind(reference)
        .fetch_optional(&self.pool)
        .await?
        .map(Payment::try_from)
        .transpose()
    }

    async fn refund_payment(&self, id: PaymentId, now: Timestamp) -> StoreResult<bool> {
        // Un-posting it makes the poster write the refund's transfer.
        let changed = query(
            "UPDATE payments SET state = 'refunded', updated_at = $1, posted_at = NULL \
             WHERE id = $2 AND state = 'succeeded'",
        )
        .bind(now.millis())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(changed == 1)
    }

    async fn list_payments(
        &self,
        org: Option<OrgId>,
        invoice: Option<InvoiceId>,
    ) -> StoreResult<Vec<Payment>> {
        query_as::<PaymentRow>(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments \
             WHERE ($1 IS NULL OR org_id = $1) AND ($2 IS NULL OR invoice_id = $2) \
             ORDER BY created_at DESC, id"
        ))
        .bind(org.map(|o| o.to_string()))
        .bind(invoice.map(|i| i.to_string()))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Payment::try_from)
        .collect()
    }

    async fn payments_to_post(&self, limit: i64) -> StoreResult<Vec<Payment>> {
        query_as::<PaymentRow>(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments \
             WHERE posted_at IS NULL AND state IN ('succeeded', 'refunded') \
             ORDER BY created_at, id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Payment::try_from)
        .collect()
    }

    async fn mark_payment_posted(&self, id: PaymentId, at: Timestamp) -> StoreResult<()> {
        query("UPDATE payments SET posted_at = $1 WHERE id = $2 AND posted_at IS NULL")
            .bind(at.millis())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn raise_billing_alert(
        &self,
        org: OrgId,
        key: &str,
        title: &str,
        detail: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let incident = Incident {
            id: IncidentId::from_uuid(uuid::Uuid::now_v7()),
            org_id: org,
            dedupe_key: key.to_owned(),
            category: IncidentCategory::Billing,
            severity: IncidentCategory::Billing.severity(),
            state: IncidentState::Open,
            node_id: None,
            chain: None,
            title: title.to_owned(),
            detail: detail.to_owned(),
            root_id: None,
            escalation_level: 0,
            escalated_at: None,
            clear_cycles: 0,
            opened_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            updated_at: now,
        };
        let mut tx = self.pool.begin_write().await?;
        let opened = insert_incident_on(&mut tx, &incident).await?;
        tx.commit().await?;
        Ok(opened)
    }

    async fn clear_billing_alert(
        &self,
        org: OrgId,
        key: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin_write().await?;
        let open: Option<(String, String)> = query_as(
            "SELECT id, state FROM incidents WHERE org_id = $1 AND dedupe_key = $2 \
             AND category = 'billing' AND state <> 'resolved'",
        )
        .bind(org.to_string())
        .bind(key)
        .fetch_optional(&mut tx)
        .await?;
        let Some((id, state)) = open else {
            tx.rollback().await?;
            return Ok(false);
        };
        let id: IncidentId = parse_id("incidents.id", &id)?;
        let state: IncidentState = parse_state("incidents.state", &state)?;
        let change = IncidentChange {
            state: Some(IncidentState::Resolved),
            ..IncidentChange::default()
        };
        let resolved = update_incident_on(&mut tx, id, state, &change, now).await?;
        tx.commit().await?;
        Ok(resolved)
    }

    async fn void_invoice(
        &self,
        id: InvoiceId,
        reason: &str,
        now: Timestamp,
    ) -> StoreResult<Invoice> {
        self.void_invoice_impl(id, reason, now).await
    }

    async fn issue_credit_note(&self, note: &NewCreditNote) -> StoreResult<CreditNote> {
        self.issue_credit_note_impl(note).await
    }

    async fn list_credit_notes(
        &self,
        org: Option<OrgId>,
        invoice: Option<InvoiceId>,
    ) -> StoreResult<Vec<CreditNote>> {
        self.list_credit_notes_impl(org, invoice).await
    }

    async fn credit_notes_to_post(&self, limit: i64) -> StoreResult<Vec<CreditNote>> {
        self.credit_notes_to_post_impl(limit).await
    }

    async fn mark_credit_note_posted(&self, id: CreditNoteId, at: Timestamp) -> StoreResult<()> {
        self.mark_credit_note_posted_impl(id, at).await
    }

    async fn create_checkout(&self, c: &Checkout) -> StoreResult<Checkout> {
        self.create_checkout_impl(c).await
    }

    async fn update_checkout(&self, c: &Checkout) -> StoreResult<()> {
        self.update_checkout_impl(c).await
    }

    async fn get_checkout(&self, key: &str) -> StoreResult<Option<Checkout>> {
        self.get_checkout_impl(key).await
    }

    async fn due_checkouts(&self, now: Timestamp, limit: i64) -> StoreResult<Vec<Checkout>> {
        self.due_checkouts_impl(now, limit).await
    }

    async fn put_budget_status(
        &self,
        subscription: SubscriptionId,
        org: OrgId,
        status: &BudgetStatus,
        now: Timestamp,
    ) -> StoreResult<()> {
        query(
            "INSERT INTO subscription_budgets (subscription_id, org_id, period_start, period_end, \
             budget_minor, spent_minor, alerted_percent, capped, measured_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (subscription_id) DO UPDATE SET period_start = excluded.period_start, \
             period_end = excluded.period_end, budget_minor = excluded.budget_minor, \
             spent_minor = excluded.spent_minor, alerted_percent = excluded.alerted_percent, \
             capped = excluded.capped, measured_at = excluded.measured_at",
        )
        .bind(subscription.to_string())
        .bind(org.to_string())
        .bind(format_date(status.period.start))
        .bind(format_date(status.period.end))
        .bind(to_i64("budget_minor", status.budget_minor)?)
        .bind(to_i64("spent_minor", status.spent_minor)?)
        .bind(status.alerted_percent.map(i64::from))
        .bind(status.capped)
        .bind(now.millis())
        .execute(&self.pool)
        .await
        .map_err(|e| write_error(e, "subscription budget"))?;
        Ok(())
    }

    async fn get_budget_status(
        &self,
        subscription: SubscriptionId,
    ) -> StoreResult<Option<BudgetStatus>> {
        let row: Option<(String, String, i64, i64, Option<i64>, bool)> = query_as(
            "SELECT period_start, period_end, budget_minor, spent_minor, alerted_percent, capped \
             FROM subscription_budgets WHERE subscription_id = $1",
        )
        .bind(subscription.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(start, end, budget, spent, alerted, capped)| {
            Ok(BudgetStatus {
                period: Period {
                    start: parse_date("period_start", &start)?,
                    end: parse_date("period_end", &end)?,
                },
                budget_minor: to_u64("budget_minor", budget)?,
                spent_minor: to_u64("spent_minor", spent)?,
                alerted_percent: alerted
                    .map(|a| {
                        u8::try_from(a).map_err(|_| StoreError::Corrupt("alerted_percent".into()))
                    })
                    .transpose()?,
                capped,
            })
        })
        .transpose()
    }

    async fn stripe_event_seen(&self, id: &str) -> StoreResult<bool> {
        let found: Option<(String,)> = query_as("SELECT id FROM stripe_events WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    async fn record_stripe_event(
        &self,
        id: &str,
        kind: &str,
        created: i64,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let inserted = query(
            "INSERT INTO stripe_events (id, type, created, received_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(kind)
        .bind(created)
        .bind(now.millis())
        .execute(&self.pool)
        .await?;
        Ok(inserted == 1)
    }
}
