//! Billing periods: monthly, anchored to the contract's start date.
//!
//! A period starts on the anchor's day of the month; in a month too short
//! for that day it starts on the month's last day (an anchor on 31 January
//! gives periods starting 28 or 29 February, then 31 March). Periods are
//! half-open `[start, end)` in UTC days and tile time without gaps.

use serde::{Deserialize, Serialize};
use time::{Date, Month};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("{day} is before the contract's start {anchor}")]
    BeforeAnchor { anchor: Date, day: Date },
    #[error("the period is beyond the calendar's range")]
    OutOfRange,
}

/// `[start, end)` in UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Period {
    pub start: Date,
    pub end: Date,
}

impl Period {
    pub fn contains(&self, day: Date) -> bool {
        self.start <= day && day < self.end
    }
}

/// The anchor moved `months` months on, its day clamped to the month.
fn add_months(anchor: Date, months: i64) -> Result<Date, PeriodError> {
    let index = i64::from(anchor.year()) * 12 + i64::from(u8::from(anchor.month())) - 1 + months;
    let year = i32::try_from(index.div_euclid(12)).map_err(|_| PeriodError::OutOfRange)?;
    let month_number =
        u8::try_from(index.rem_euclid(12) + 1).map_err(|_| PeriodError::OutOfRange)?;
    let month = Month::try_from(month_number).map_err(|_| PeriodError::OutOfRange)?;
    let day = anchor.day().min(month.length(year));
    Date::from_calendar_date(year, month, day).map_err(|_| PeriodError::OutOfRange)
}

/// The monthly period of a contract anchored at `anchor` that contains
/// `day`.
pub fn monthly_period(anchor: Date, day: Date) -> Result<Period, PeriodError> {
    if day < anchor {
        return Err(PeriodError::BeforeAnchor { anchor, day });
    }
    let mut months = (i64::from(day.year()) - i64::from(anchor.year())) * 12
        + i64::from(u8::from(day.month()))
        - i64::from(u8::from(anchor.month()));
    if add_months(anchor, months)? > day {
        months -= 1;
    }
    Ok(Period {
        start: add_months(anchor, months)?,
        end: add_months(anchor, months + 1)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::date;

    #[test]
    fn periods_start_on_the_anchor_day_clamped_to_short_months() {
        let anchor = date!(2026 - 01 - 31);
        let p = monthly_period(anchor, date!(2026 - 02 - 10)).unwrap();
        assert_eq!(
            (p.start, p.end),
            (date!(2026 - 01 - 31), date!(2026 - 02 - 28))
        );
        let p = monthly_period(anchor, date!(2026 - 02 - 28)).unwrap();
        assert_eq!(
            (p.start, p.end),
            (date!(2026 - 02 - 28), date!(2026 - 03 - 31))
        );
        let p = monthly_period(anchor, date!(2028 - 02 - 29)).unwrap();
        assert_eq!(p.start, date!(2028 - 02 - 29), "a leap year's February");
        let p = monthly_period(date!(2026 - 12 - 03), date!(2027 - 01 - 02)).unwrap();
        assert_eq!(
            (p.start, p.end),
            (date!(2026 - 12 - 03), date!(2027 - 01 - 03))
        );
        assert!(monthly_period(anchor, date!(2026 - 01 - 30)).is_err());
    }

    proptest! {
        /// Every day after the anchor is in exactly the period that contains
        /// it, and consecutive periods meet.
        #[test]
        fn periods_tile_time(anchor_days in 0i64..20_000, offset in 0i64..3_000) {
            let base = date!(2000 - 01 - 01);
            let anchor = base + time::Duration::days(anchor_days);
            let day = anchor + time::Duration::days(offset);
            let p = monthly_period(anchor, day).unwrap();
            prop_assert!(p.contains(day));
            let next = monthly_period(anchor, p.end).unwrap();
            prop_assert_eq!(next.start, p.end);
            prop_assert!(p.end > p.start);
        }
    }
}
