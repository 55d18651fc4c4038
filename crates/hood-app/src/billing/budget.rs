//! Monthly budgets (see [`hood_domain::billing::budget`]): each pass rates
//! every live subscription's open period as it would be invoiced now,
//! tells the organization at 50, 80 and 100 % of its budget, and under a
//! hard cap stops its metered spending (the edge's 402) until the next
//! period or a raised budget.

use super::close::{day_of, day_start, UnitsFrom};
use super::BillingService;
use crate::error::{AppError, AppResult};
use hood_domain::billing::budget::{next_status, BudgetStatus};
use hood_domain::billing::{monthly_period, rate_period, Subscription};
use hood_domain::{OrgId, SubscriptionId};

/// What one budget pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetReport {
    pub measured: usize,
    pub alerts: usize,
    /// Subscriptions capped by this pass / lifted by it.
    pub capped: usize,
    pub lifted: usize,
}

fn budget_key(sub: SubscriptionId) -> String {
    format!("billing:budget:{sub}")
}

impl BillingService {
    /// Measures every subscription with a budget.
    pub async fn check_budgets(&self) -> AppResult<BudgetReport> {
        let mut report = BudgetReport::default();
        for sub in self.store().list_subscriptions(None).await? {
            if let Err(e) = self.check_budget(&sub, &mut report).await {
                tracing::warn!(subscription = %sub.id, error = %e, "budget check failed; retrying next pass");
            }
        }
        Ok(report)
    }

    /// The latest measurement of a subscription's budget.
    pub async fn budget(
        &self,
        org: Option<OrgId>,
        id: SubscriptionId,
    ) -> AppResult<Option<BudgetStatus>> {
        self.subscription(org, id).await?;
        Ok(self.store().get_budget_status(id).await?)
    }

    async fn check_budget(&self, sub: &Subscription, report: &mut BudgetReport) -> AppResult<()> {
        let previous = self.store().get_budget_status(sub.id).await?;
        let now = self.clock.now();
        let Some(budget) = sub.budget_minor.filter(|_| sub.bills()) else {
            // No budget (any more), or the subscription ended: lift a cap
            // it left behind.
            if let Some(mut p) = previous.filter(|p| p.capped) {
                p.capped = false;
                self.store()
                    .put_budget_status(sub.id, sub.org_id, &p, now)
                    .await?;
                self.clear_alert(sub.org_id, &budget_key(sub.id)).await;
                report.lifted += 1;
            }
            return Ok(());
        };
        let period = monthly_period(sub.start_date, day_of(now)?)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let card = self.rate_card(sub.rate_card_version).await?.card;
        let readings = self
            .readings_between(
                sub.org_id,
                &card,
                day_start(period.start),
                now,
                UnitsFrom::Events,
            )
            .await?;
        let spent = rate_period(&sub.terms, &sub.currency, &card, &readings)
            .map_err(|e| AppError::Conflict(e.to_string()))?
            .total_minor;
        let (alert, status) = next_status(
            previous.as_ref(),
            period,
            budget,
            spent,
            sub.budget_hard_cap,
        );
        self.store()
            .put_budget_status(sub.id, sub.org_id, &status, now)
            .await?;
        report.measured += 1;
        let was_capped = previous.as_ref().is_some_and(|p| p.capped);
        match (was_capped, status.capped) {
            (false, true) => {
                report.capped += 1;
                tracing::warn!(subscription = %sub.id, org = %sub.org_id, budget, spent, "budget reached: spending stopped (hard cap)");
            }
            (true, false) => {
                report.lifted += 1;
                tracing::info!(subscription = %sub.id, org = %sub.org_id, "budget cap lifted");
            }
            _ => {}
        }
        let key = budget_key(sub.id);
        if let Some(percent) = alert {
            report.alerts += 1;
            // One open budget incident per subscription: the higher
            // threshold replaces the lower (each notifies the channels).
            self.clear_alert(sub.org_id, &key).await;
            let cap = if status.capped {
                " Metered spending (RPC) is stopped until the next period or a larger budget."
            } else {
                ""
            };
            self.alert(
                sub.org_id,
                &key,
                &format!("Budget {percent} % reached"),
                &format!(
                    "The period from {} has cost {spent} of the {budget} minor units of {} budgeted.{cap}",
                    period.start, sub.currency
                ),
            )
            .await;
        } else if status.alerted_percent.is_none()
            && previous.is_some_and(|p| p.alerted_percent.is_some())
        {
            // A new period, or a raised budget: nothing to warn about.
            self.clear_alert(sub.org_id, &key).await;
        }
        Ok(())
    }
}
