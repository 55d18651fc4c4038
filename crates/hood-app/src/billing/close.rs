//! Period close: each subscription's ended periods read from the meters,
//! rated under the subscription's terms and rate card, and issued as one
//! invoice per period, with late usage of earlier periods as adjustment
//! lines.
//!
//! Readings come from exact sources only: compute units from the edge's
//! daily usage rollups (maintained in the transaction that stores the
//! events, and periods start at midnight UTC, so a period is whole days),
//! node time from each node's state log, ingested meters from their
//! de-duplicated events. The same stored data always gives the same
//! invoice.

use super::BillingService;
use crate::error::{AppError, AppResult};
use hood_domain::billing::builtin::{
    billable_millis, compute_unit_readings, node_time_readings, NODE_SECONDS, RPC_COMPUTE_UNITS,
};
use hood_domain::billing::credits::allocation_lines;
use hood_domain::billing::posting::minor_exponent;
use hood_domain::billing::{
    adjustment, aggregate, monthly_period, rate_period, Invoice, LineSource, Period, RateCard,
    Reading, Subscription,
};
use hood_domain::lifecycle::{InvoiceState, SubscriptionState};
use hood_domain::rpc::Granularity;
use hood_domain::{InvoiceId, OrgId, SubscriptionId, Timestamp};
use hood_store::billing::IssueOutcome;
use hood_store::lease::Lease;
use hood_store::usage::UsageQuery;
use std::collections::BTreeMap;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// How many earlier invoices of a subscription a close looks at for late
/// usage. Events later than this many periods are not billed (and show
/// in reconciliation).
pub const LATE_USAGE_PERIODS: i64 = 3;

/// What one close did.
#[derive(Debug, Clone, Default)]
pub struct CloseReport {
    /// Invoices issued by this close.
    pub issued: Vec<Invoice>,
    /// Periods that already had their invoice (a re-run, another replica).
    pub existing: usize,
    /// Subscriptions that could not be closed, with why (they are tried
    /// again at the next close; the others are not held back).
    pub failed: Vec<(SubscriptionId, String)>,
}

/// Where compute units are read from: the daily rollups (a period of
/// whole days) or the raw events (any window, e.g. a credit minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnitsFrom {
    DailyRollups,
    Events,
}

/// Midnight UTC starting `day`.
pub(crate) fn day_start(day: Date) -> Timestamp {
    Timestamp::from_millis(day.midnight().assume_utc().unix_timestamp() * 1000)
}

/// The UTC day of an instant.
pub(crate) fn day_of(at: Timestamp) -> AppResult<Date> {
    OffsetDateTime::from_unix_timestamp(at.millis().div_euclid(1000))
        .map(|t| t.date())
        .map_err(|e| AppError::Internal(format!("instant out of range: {e}")))
}

impl BillingService {
    /// Closes every period that ended by `as_of` (default: now) and has no
    /// invoice yet. Safe to run any number of times, by any number of
    /// replicas: each period gets exactly one invoice. `lease` fences the
    /// writes of a leader-gated loop.
    pub async fn close_periods(
        &self,
        as_of: Option<Timestamp>,
        lease: Option<&Lease>,
    ) -> AppResult<CloseReport> {
        let as_of = as_of.unwrap_or_else(|| self.clock.now());
        let today = day_of(as_of)?;
        let mut report = CloseReport::default();
        for sub in self.store().subscriptions_due(today).await? {
            match self.close_subscription(&sub, today, lease).await {
                Ok((issued, existing)) => {
                    report.issued.extend(issued);
                    report.existing += existing;
                }
                Err(AppError::Store(hood_store::StoreError::Fenced(lease))) => {
                    // Another replica leads now; it closes the rest.
                    return Err(AppError::Unavailable(format!("lease `{lease}` lost")));
                }
                Err(e) => {
                    tracing::warn!(subscription = %sub.id, error = %e, "period close failed");
                    report.failed.push((sub.id, e.to_string()));
                }
            }
        }
        for invoice in &report.issued {
            // Best effort now; the billing loop retries until confirmed.
            if let Err(e) = self.post_invoice(invoice).await {
                tracing::warn!(invoice = %invoice.id, error = %e, "ledger posting deferred");
            }
        }
        Ok(report)
    }

    /// The periods of `sub` to close by `today`, oldest first.
    fn periods_due(sub: &Subscription, today: Date) -> AppResult<Vec<Period>> {
        // A terminal subscription's last period is the one it ended in.
        let ended = matches!(
            sub.state,
            SubscriptionState::Cancelled | SubscriptionState::Expired
        )
        .then(|| day_of(sub.state_since))
        .transpose()?;
        let mut from = sub.billed_through.unwrap_or(sub.start_date);
        let mut due = Vec::new();
        while due.len() < 120 {
            let period = monthly_period(sub.start_date, from)
                .map_err(|e| AppError::Internal(e.to_string()))?;
            if period.end > today || ended.is_some_and(|end| period.start >= end) {
                break;
            }
            due.push(period);
            from = period.end;
        }
        Ok(due)
    }

    async fn close_subscription(
        &self,
        sub: &Subscription,
        today: Date,
        lease: Option<&Lease>,
    ) -> AppResult<(Vec<Invoice>, usize)> {
        let mut issued = Vec::new();
        let mut existing = 0;
        for period in Self::periods_due(sub, today)? {
            let invoice = self.rate_invoice(sub, period).await?;
            match self
                .store()
                .issue_invoice(&invoice, lease, self.clock.now())
                .await?
            {
                IssueOutcome::Issued(inv) => {
                    tracing::info!(
                        invoice = %inv.id,
                        number = inv.number.as_deref().unwrap_or(""),
                        org = %inv.org_id,
                        total_minor = inv.total_minor,
                        "invoice issued"
                    );
                    issued.push(inv);
                }
                IssueOutcome::Exists(_) => existing += 1,
            }
        }
        Ok((issued, existing))
    }

    /// The invoice of one period, not yet stored: its usage rated, plus
    /// adjustments for late usage of earlier periods.
    async fn rate_invoice(&self, sub: &Subscription, period: Period) -> AppResult<Invoice> {
        let card = self.card(sub.rate_card_version).await?;
        let readings = self.invoiced_readings(sub.org_id, &card, period).await?;
        let rated = rate_period(&sub.terms, &sub.currency, &card, &readings)
            .map_err(|e| AppError::Conflict(format!("period {}: {e}", period.start)))?;
        let mut lines = rated.lines;
        lines.extend(self.postpaid_allocations(sub, period, card.version).await?);
        lines.extend(self.late_usage(sub, period).await?);
        let total_minor = lines
            .iter()
            .try_fold(0u64, |sum, l| sum.checked_add(l.amount_minor))
            .ok_or_else(|| AppError::Conflict("invoice total overflows".into()))?;
        let now = self.clock.now();
        Ok(Invoice {
            id: InvoiceId::from_uuid(Uuid::now_v7()),
            subscription_id: sub.id,
            org_id: sub.org_id,
            period,
            state: InvoiceState::Draft,
            number: None,
            currency: sub.currency.clone(),
            total_minor,
            rate_card_version: card.version,
            lines,
            readings,
            created_at: now,
            issued_at: Some(now),
            paid_at: None,
            voided_at: None,
            void_reason: None,
            posted_at: None,
        })
    }

    /// The period's allocation time at each allocation's own price, for an
    /// organization that is not on prepaid credits (those pay it from
    /// their credits, minute by minute, and see no such line).
    async fn postpaid_allocations(
        &self,
        sub: &Subscription,
        period: Period,
        rate_card_version: u32,
    ) -> AppResult<Vec<hood_domain::billing::Line>> {
        let Some(allocations) = &self.allocation_service else {
            return Ok(Vec::new());
        };
        if self
            .stores
            .credits
            .get_credit_account(sub.org_id)
            .await?
            .is_some()
        {
            return Ok(Vec::new());
        }
        let (from, to) = (day_start(period.start), day_start(period.end));
        let mut spans = Vec::new();
        for (currency, sku, span) in allocations.active_spans(sub.org_id, from, to).await? {
            if currency != sub.currency {
                return Err(AppError::Conflict(format!(
                    "period {}: an allocation of {sku} is priced in {currency} but the \
                     subscription bills in {}",
                    period.start, sub.currency
                )));
            }
            spans.push((sku, span));
        }
        allocation_lines(
            &spans,
            from,
            to,
            minor_exponent(&sub.currency),
            rate_card_version,
        )
        .map_err(|e| AppError::Conflict(format!("period {}: {e}", period.start)))
    }

    async fn card(&self, version: u32) -> AppResult<RateCard> {
        Ok(self
            .store()
            .get_rate_card(version)
            .await?
            .ok_or(AppError::NotFound("rate card"))?
            .card)
    }

    /// Adjustment lines for usage of the last few invoiced periods (before
    /// `period`) that arrived after they closed.
    async fn late_usage(
        &self,
        sub: &Subscription,
        period: Period,
    ) -> AppResult<Vec<hood_domain::billing::Line>> {
        let earlier: Vec<Invoice> = self
            .invoices(Some(sub.org_id), Some(sub.id), Some(64))
            .await?
            .into_iter()
            .filter(|i| i.period.start < period.start && i.state != InvoiceState::Void)
            .collect();
        // What each period has been billed for so far: its own readings,
        // or those of the latest adjustment made for it since.
        let mut billed: BTreeMap<Date, Vec<Reading>> = BTreeMap::new();
        for inv in earlier.iter().rev() {
            billed.insert(inv.period.start, inv.readings.clone());
            for line in &inv.lines {
                if let LineSource::Adjustment {
                    period, readings, ..
                } = &line.source
                {
                    billed.insert(period.start, readings.clone());
                }
            }
        }
        let recent = earlier
            .iter()
            .take(usize::try_from(LATE_USAGE_PERIODS).unwrap_or(3));
        let mut lines = Vec::new();
        for inv in recent {
            let card = self.card(inv.rate_card_version).await?;
            let now = self
                .invoiced_readings(sub.org_id, &card, inv.period)
                .await?;
            let before = billed.get(&inv.period.start).cloned().unwrap_or_default();
            if let Some(line) =
                adjustment(&sub.terms, &sub.currency, &card, inv.period, &before, &now)
                    .map_err(|e| AppError::Conflict(format!("period {}: {e}", inv.period.start)))?
            {
                lines.push(line);
            }
        }
        // Oldest period first, like the invoices they correct.
        lines.reverse();
        Ok(lines)
    }

    /// The readings of `period` a subscription's invoice bills: all of
    /// them, or, for an organization on prepaid credits, only those from
    /// before it went on credits (its rate-card usage since is paid from
    /// them, window by window; invoicing it too would bill it twice).
    async fn invoiced_readings(
        &self,
        org: OrgId,
        card: &RateCard,
        period: Period,
    ) -> AppResult<Vec<Reading>> {
        let (from, to) = (day_start(period.start), day_start(period.end));
        let prepaid_since = self
            .stores
            .credits
            .get_credit_account(org)
            .await?
            .map(|account| account.created_at);
        match prepaid_since {
            Some(since) if since <= from => Ok(Vec::new()),
            Some(since) if since < to => {
                self.readings_between(org, card, from, since, UnitsFrom::Events)
                    .await
            }
            _ => self.readings(org, card, period).await,
        }
    }

    /// Every reading the card prices for `org` in `period`, by meter name
    /// then dimensions.
    pub async fn readings(
        &self,
        org: OrgId,
        card: &RateCard,
        period: Period,
    ) -> AppResult<Vec<Reading>> {
        self.readings_between(
            org,
            card,
            day_start(period.start),
            day_start(period.end),
            UnitsFrom::DailyRollups,
        )
        .await
    }

    /// Every reading the card prices for `org` in `[from, to)`.
    pub(crate) async fn readings_between(
        &self,
        org: OrgId,
        card: &RateCard,
        from: Timestamp,
        to: Timestamp,
        units: UnitsFrom,
    ) -> AppResult<Vec<Reading>> {
        let mut readings = Vec::new();
        for meter in card.meters_priced() {
            match meter {
                RPC_COMPUTE_UNITS => {
                    let rows: Vec<(String, String, String, u64)> = match units {
                        UnitsFrom::DailyRollups => self
                            .stores
                            .usage
                            .usage_rollups(&UsageQuery {
                                org_id: org,
                                key_id: None,
                                chain: None,
                                from,
                                to,
                                granularity: Granularity::Day,
                            })
                            .await?
                            .into_iter()
                            .map(|r| {
                                let cu = u64::try_from(r.compute_units).unwrap_or(0);
                                (r.key_id.to_string(), r.chain, r.method, cu)
                            })
                            .collect(),
                        UnitsFrom::Events => self
                            .stores
                            .usage
                            .usage_event_units(org, from, to)
                            .await?
                            .into_iter()
                            .map(|(key, chain, method, cu)| {
                                (
                                    key.to_string(),
                                    chain,
                                    method,
                                    u64::try_from(cu).unwrap_or(0),
                                )
                            })
                            .collect(),
                    };
                    readings.extend(compute_unit_readings(rows.iter().map(
                        |(key, chain, method, cu)| {
                            (key.as_str(), chain.as_str(), method.as_str(), *cu)
                        },
                    )));
                }
                NODE_SECONDS => {
                    let nodes = self.stores.nodes.list_nodes(Some(org)).await?;
                    let mut times = Vec::with_capacity(nodes.len());
                    for node in &nodes {
                        let log = self.stores.uptime.node_state_log(node.id, from, to).await?;
                        let ms = billable_millis(
                            log.state_at_start,
                            &log.changes,
                            from.millis(),
                            to.millis(),
                        );
                        times.push((node.chain.as_str(), node.node_type.as_str(), ms));
                    }
                    readings.extend(node_time_readings(times));
                }
                ingested => {
                    let definition = card.meter_definition(ingested);
                    let events = self
                        .stores
                        .meters
                        .meter_events(org, ingested, from, to)
                        .await?;
                    readings.extend(aggregate(
                        ingested,
                        &events,
                        definition.aggregation,
                        &definition.group_by,
                    ));
                }
            }
        }
        Ok(readings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn days_and_instants_agree() {
        let d = date!(2026 - 03 - 01);
        assert_eq!(day_start(d), Timestamp::from_millis(1_772_323_200_000));
        assert_eq!(day_of(day_start(d)).unwrap(), d);
        assert_eq!(
            day_of(day_start(d).plus_millis(-1)).unwrap(),
            date!(2026 - 02 - 28)
        );
    }
}
