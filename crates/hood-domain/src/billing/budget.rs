//! Monthly budgets: what a subscription has cost so far in its current
//! period against the budget its organization set, the alerts that go out
//! as it fills, and the hard cap that stops metered spending at 100 %.
//!
//! Spend is the open period rated as it would be invoiced now (fee
//! included), so the figure the alert names is the invoice's.

use crate::billing::Period;
use serde::{Deserialize, Serialize};

/// Percentages of the budget at which the organization is told, once each
/// per period.
pub const ALERT_PERCENTS: [u8; 3] = [50, 80, 100];

/// Where a subscription's current period stands against its budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetStatus {
    /// The period the figures are for.
    pub period: Period,
    pub budget_minor: u64,
    /// The period rated so far, minor units.
    pub spent_minor: u64,
    /// The highest alert already sent this period.
    pub alerted_percent: Option<u8>,
    /// The hard cap is reached: metered spending (RPC) is refused until
    /// the next period, a larger budget, or the cap lifted.
    pub capped: bool,
}

/// The highest alert threshold `spent` has reached, if any.
pub fn reached_percent(spent_minor: u64, budget_minor: u64) -> Option<u8> {
    ALERT_PERCENTS.iter().rev().copied().find(|&p| {
        // spent / budget >= p / 100, in integers (u128: no overflow).
        u128::from(spent_minor) * 100 >= u128::from(budget_minor) * u128::from(p)
    })
}

/// What a new measurement changes: the alert to send now (a threshold
/// higher than any sent this period) and the new status. A new period
/// starts over; a raised budget may uncap.
pub fn next_status(
    previous: Option<&BudgetStatus>,
    period: Period,
    budget_minor: u64,
    spent_minor: u64,
    hard_cap: bool,
) -> (Option<u8>, BudgetStatus) {
    let already = previous
        .filter(|p| p.period == period)
        .and_then(|p| p.alerted_percent);
    let reached = reached_percent(spent_minor, budget_minor);
    let alert = reached.filter(|r| already.is_none_or(|a| *r > a));
    let status = BudgetStatus {
        period,
        budget_minor,
        spent_minor,
        // A budget raised under what was told: what was told then is
        // counted as told at the level now reached.
        alerted_percent: alert.or(match (already, reached) {
            (Some(a), Some(r)) => Some(a.min(r)),
            _ => None,
        }),
        capped: hard_cap && reached == Some(100),
    };
    (alert, status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn period(m: u8) -> Period {
        let months = [
            date!(2026 - 01 - 01),
            date!(2026 - 02 - 01),
            date!(2026 - 03 - 01),
            date!(2026 - 04 - 01),
        ];
        let i = usize::from(m - 1);
        Period {
            start: months[i],
            end: months[i + 1],
        }
    }

    #[test]
    fn thresholds_are_exact_in_integers() {
        assert_eq!(reached_percent(0, 1_000), None);
        assert_eq!(reached_percent(499, 1_000), None);
        assert_eq!(reached_percent(500, 1_000), Some(50));
        assert_eq!(reached_percent(799, 1_000), Some(50));
        assert_eq!(reached_percent(800, 1_000), Some(80));
        assert_eq!(reached_percent(1_000, 1_000), Some(100));
        assert_eq!(reached_percent(u64::MAX, u64::MAX), Some(100));
        // A zero budget is spent from the start.
        assert_eq!(reached_percent(0, 0), Some(100));
    }

    #[test]
    fn each_threshold_alerts_once_per_period() {
        let p = period(1);
        let (a, s) = next_status(None, p, 1_000, 100, false);
        assert_eq!((a, s.alerted_percent), (None, None));
        let (a, s) = next_status(Some(&s), p, 1_000, 600, false);
        assert_eq!(a, Some(50));
        let (a, s) = next_status(Some(&s), p, 1_000, 700, false);
        assert_eq!(a, None, "50 % is not told twice");
        assert_eq!(s.alerted_percent, Some(50));
        // Straight past 80 to 100: one alert, the highest.
        let (a, s) = next_status(Some(&s), p, 1_000, 1_200, true);
        assert_eq!(a, Some(100));
        assert!(s.capped);
        // The next period starts over.
        let (a, s) = next_status(Some(&s), period(2), 1_000, 10, true);
        assert_eq!((a, s.alerted_percent, s.capped), (None, None, false));
    }

    #[test]
    fn only_a_hard_cap_caps_and_a_raised_budget_lifts_it() {
        let p = period(3);
        let (_, soft) = next_status(None, p, 1_000, 1_000, false);
        assert!(!soft.capped);
        let (_, hard) = next_status(None, p, 1_000, 1_000, true);
        assert!(hard.capped);
        let (a, raised) = next_status(Some(&hard), p, 5_000, 1_000, true);
        assert_eq!(a, None);
        assert!(!raised.capped);
        // Below every threshold now: the next crossing alerts again.
        assert_eq!(raised.alerted_percent, None);
        let (a, _) = next_status(Some(&raised), p, 5_000, 2_600, true);
        assert_eq!(a, Some(50));
        // Raised only to 50 % of the new budget: 50 % counts as told.
        let (a, half) = next_status(Some(&hard), p, 2_000, 1_000, true);
        assert_eq!(
            (a, half.alerted_percent, half.capped),
            (None, Some(50), false)
        );
    }
}
