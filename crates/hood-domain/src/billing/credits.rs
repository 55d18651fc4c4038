//! Prepaid credits (seed 004: per-minute accrual, force-release; design
//! §8): an organization's balance lives on a ledger account flagged
//! `debits_must_not_exceed_credits`, so it can never go below zero.
//!
//! Each accrual window (a minute by default) works ahead: a *hold* (a
//! pending transfer with a timeout) reserves what the next window is
//! expected to cost; at the window's end the hold is posted with what the
//! window actually cost (voided when it cost nothing), and any excess is
//! taken with a balancing debit, which takes at most what is left. When
//! the next hold cannot be placed, the organization is cut off: its RPC
//! keys answer 402 until a top-up lets a hold be placed again.
//!
//! Window prices come from the rate card's rules, first tier, without
//! included units (prepaid usage is paid from the first unit), computed in
//! the ledger's units (micro-dollars for USD) and rounded half up once per
//! reading, so sub-cent usage is charged, not lost to rounding.

use super::meter::Reading;
use super::posting::minor_exponent;
use super::rating::{Line, LineSource, RateCard, RatingError};
use crate::{OrgId, Timestamp, TransferId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Default accrual window.
pub const DEFAULT_WINDOW_MS: i64 = 60_000;
/// A hold outlives its window by this many windows before the ledger
/// voids it by itself (a billing role that stopped does not keep money
/// reserved for ever).
pub const HOLD_WINDOWS: i64 = 3;

/// Whether an organization on credits may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditState {
    Active,
    /// Cut off: the next hold could not be placed.
    Stopped,
}

impl CreditState {
    pub const fn as_str(self) -> &'static str {
        match self {
            CreditState::Active => "active",
            CreditState::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(CreditState::Active),
            "stopped" => Some(CreditState::Stopped),
            _ => None,
        }
    }
}

/// The hold reserving the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub transfer_id: TransferId,
    /// Ledger units reserved.
    pub amount: u64,
    /// The end of the window it reserves.
    pub window_end: Timestamp,
}

/// An organization running on prepaid credits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditAccount {
    pub org_id: OrgId,
    pub rate_card_version: u32,
    pub window_ms: i64,
    /// Balances (minor units) below which the organization is warned, once
    /// per crossing.
    pub low_balance_minor: Vec<u64>,
    pub state: CreditState,
    /// Why it is stopped.
    pub reason: Option<String>,
    pub state_since: Timestamp,
    /// Every window before this instant has been charged.
    pub accrued_through: Timestamp,
    pub hold: Option<Hold>,
    /// The lowest threshold already warned about (reset by a top-up).
    pub warned_below: Option<u64>,
    pub created_at: Timestamp,
    pub version: i64,
}

fn derive(parts: &[&str]) -> TransferId {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6372_6564_6974_732d_6964_732d_7631_0001);
    TransferId::from_uuid(Uuid::new_v5(&NAMESPACE, parts.join("/").as_bytes()))
}

/// The hold for the window of `org` ending at `window_end`.
pub fn hold_id(org: OrgId, window_end: Timestamp) -> TransferId {
    derive(&["hold", &org.to_string(), &window_end.millis().to_string()])
}

/// The transfer that settles (posts or voids) a hold.
pub fn settle_id(hold: TransferId) -> TransferId {
    derive(&["settle", &hold.to_string()])
}

/// The balancing debit of what a window cost beyond its hold.
pub fn excess_id(org: OrgId, window_end: Timestamp) -> TransferId {
    derive(&["excess", &org.to_string(), &window_end.millis().to_string()])
}

/// What `readings` of one window cost, in units of a ledger of `scale`:
/// each reading at its rule's first-tier rate, rounded half up once.
pub fn window_charge(card: &RateCard, readings: &[Reading], scale: u8) -> Result<u64, RatingError> {
    let shift = scale.saturating_sub(minor_exponent(&card.currency));
    let factor = 10u128.pow(u32::from(shift));
    let mut total: u128 = 0;
    for reading in readings {
        let Some(rule) = card.rule_for(reading) else {
            return Err(RatingError::NoPrice {
                version: card.version,
                meter: reading.meter.clone(),
                dimensions: reading.dimensions.clone(),
            });
        };
        let Some(tier) = card.rules[rule].price.tiers.first() else {
            continue;
        };
        let per = u128::from(tier.rate.per.max(1));
        let exact = u128::from(reading.quantity) * u128::from(tier.rate.amount_minor) * factor;
        total += (exact + per / 2) / per;
    }
    u64::try_from(total)
        .ok()
        .filter(|t| *t <= crate::ledger::AMOUNT_MAX)
        .ok_or(RatingError::Overflow)
}

/// One allocation's billable time: active from `from` until `until`
/// (still active when `None`), at its SKU's price per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveSpan {
    pub price_per_minute_minor: u64,
    pub from: Timestamp,
    pub until: Option<Timestamp>,
}

impl ActiveSpan {
    /// How many milliseconds of `[t0, t1)` it was active.
    pub fn overlap_ms(&self, t0: Timestamp, t1: Timestamp) -> i64 {
        let start = self.from.max(t0);
        let end = self.until.map_or(t1, |u| u.min(t1));
        (end.millis() - start.millis()).max(0)
    }
}

/// What allocations' active time in `[t0, t1)` costs, in units of a
/// ledger of `scale` for a currency with `minor_exponent` decimals: each
/// span's price per minute pro rata to the millisecond, summed exactly and
/// rounded half up once, so a minute split across windows costs the
/// minute (to one unit).
pub fn allocation_charge(
    spans: &[ActiveSpan],
    t0: Timestamp,
    t1: Timestamp,
    scale: u8,
    minor_exponent: u8,
) -> Result<u64, RatingError> {
    let factor = 10u128.pow(u32::from(scale.saturating_sub(minor_exponent)));
    let mut exact: u128 = 0;
    for span in spans {
        // overlap_ms is never negative.
        let ms = u128::try_from(span.overlap_ms(t0, t1)).unwrap_or(0);
        exact = u128::from(span.price_per_minute_minor)
            .checked_mul(factor)
            .and_then(|x| x.checked_mul(ms))
            .and_then(|x| x.checked_add(exact))
            .ok_or(RatingError::Overflow)?;
    }
    u64::try_from((exact + 30_000) / 60_000)
        .ok()
        .filter(|t| *t <= crate::ledger::AMOUNT_MAX)
        .ok_or(RatingError::Overflow)
}

/// The invoice lines of allocations' active time in `[t0, t1)` for an
/// organization that pays after the fact: one line per SKU and price (in
/// name order), each priced like [`allocation_charge`] (pro rata to the
/// millisecond, rounded half up once per line) in minor units of a
/// currency with `minor_exponent` decimals; nothing to bill, no line.
pub fn allocation_lines(
    spans: &[(String, ActiveSpan)],
    t0: Timestamp,
    t1: Timestamp,
    minor_exponent: u8,
    rate_card_version: u32,
) -> Result<Vec<Line>, RatingError> {
    let mut groups: BTreeMap<(&str, u64), Vec<ActiveSpan>> = BTreeMap::new();
    for (sku, span) in spans {
        groups
            .entry((sku.as_str(), span.price_per_minute_minor))
            .or_default()
            .push(*span);
    }
    let mut lines = Vec::new();
    for ((sku, price_per_minute_minor), spans) in groups {
        let ms: i64 = spans.iter().map(|s| s.overlap_ms(t0, t1)).sum();
        let amount_minor = allocation_charge(&spans, t0, t1, minor_exponent, minor_exponent)?;
        if ms <= 0 {
            continue;
        }
        lines.push(Line {
            source: LineSource::Allocations {
                sku: sku.to_owned(),
                price_per_minute_minor,
                seconds: u64::try_from(ms / 1000).unwrap_or(0),
            },
            rate_card_version,
            amount_minor,
        });
    }
    Ok(lines)
}

/// The hold for the next window: what this one cost, at least one unit
/// (an account with nothing left cannot hold even that, so it is cut off).
pub fn next_hold_amount(last_window: u64) -> u64 {
    last_window.max(1)
}

/// The lowest threshold that `balance_minor` is now under and that was not
/// warned about yet.
pub fn threshold_crossed(
    thresholds: &[u64],
    warned_below: Option<u64>,
    balance_minor: u64,
) -> Option<u64> {
    thresholds
        .iter()
        .copied()
        .filter(|t| balance_minor < *t && warned_below.is_none_or(|w| *t < w))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(price: u64, from: i64, until: Option<i64>) -> ActiveSpan {
        ActiveSpan {
            price_per_minute_minor: price,
            from: Timestamp(from),
            until: until.map(Timestamp),
        }
    }

    #[test]
    fn allocation_minutes_are_charged_pro_rata_and_add_up_across_windows() {
        // 3 cents a minute on a micro-dollar ledger (scale 6, cents 2):
        // 30,000 units a minute.
        let running = [span(3, 0, None)];
        let charge = |spans: &[ActiveSpan], t0, t1| {
            allocation_charge(spans, Timestamp(t0), Timestamp(t1), 6, 2).unwrap()
        };
        assert_eq!(charge(&running, 0, 60_000), 30_000);
        // Active for 20 s of the window: a third.
        assert_eq!(charge(&[span(3, 40_000, None)], 0, 60_000), 10_000);
        assert_eq!(charge(&[span(3, 0, Some(20_000))], 0, 60_000), 10_000);
        // Not active in the window at all.
        assert_eq!(charge(&[span(3, 0, Some(60_000))], 60_000, 120_000), 0);
        assert_eq!(charge(&[span(3, 120_000, None)], 60_000, 120_000), 0);
        // Two allocations add; windows of any length add up to the whole.
        let two = [span(3, 0, None), span(1, 7_000, Some(100_000))];
        let whole = charge(&two, 0, 180_000);
        let parts: u64 = [(0, 33_333), (33_333, 100_001), (100_001, 180_000)]
            .iter()
            .map(|&(a, b)| charge(&two, a, b))
            .sum();
        assert!(whole.abs_diff(parts) <= 2, "{whole} vs {parts}");
        assert_eq!(whole, 90_000 + 15_500);
    }

    #[test]
    fn postpaid_allocation_lines_group_by_sku_and_price_and_bill_exactly() {
        let spans = vec![
            // 90 minutes of cpu.2c4g at 3 cents, in two allocations.
            ("cpu.2c4g".to_owned(), span(3, 0, Some(3_600_000))),
            ("cpu.2c4g".to_owned(), span(3, 5_400_000, None)),
            // The same SKU made after a price change: its own line.
            ("cpu.2c4g".to_owned(), span(4, 6_000_000, Some(6_030_000))),
            // Half a minute of a GPU slice at 1.99 a minute: 99.5 → 100.
            ("h200.1g.18gb".to_owned(), span(199, 0, Some(30_000))),
            // Outside the period: no line.
            ("cpu.8c32g".to_owned(), span(9, 7_200_000, None)),
        ];
        let lines = allocation_lines(&spans, Timestamp(0), Timestamp(7_200_000), 2, 7).unwrap();
        let got: Vec<(String, u64, u64, u64)> = lines
            .iter()
            .map(|l| match &l.source {
                LineSource::Allocations {
                    sku,
                    price_per_minute_minor,
                    seconds,
                } => (
                    sku.clone(),
                    *price_per_minute_minor,
                    *seconds,
                    l.amount_minor,
                ),
                other => panic!("not an allocation line: {other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                ("cpu.2c4g".to_owned(), 3, 5_400, 270),
                ("cpu.2c4g".to_owned(), 4, 30, 2),
                ("h200.1g.18gb".to_owned(), 199, 30, 100),
            ]
        );
        assert!(lines.iter().all(|l| l.rate_card_version == 7));
        assert!(allocation_lines(&[], Timestamp(0), Timestamp(1), 2, 1)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn allocation_charges_never_overflow_silently() {
        let huge = [span(u64::MAX, 0, None)];
        assert_eq!(
            allocation_charge(&huge, Timestamp(0), Timestamp(i64::MAX), 18, 0),
            Err(RatingError::Overflow)
        );
    }
    use crate::billing::price::{Price, Rate};
    use crate::billing::rating::PriceRule;
    use std::collections::BTreeMap;

    fn card() -> RateCard {
        RateCard {
            version: 1,
            currency: "USD".parse().unwrap(),
            rules: vec![
                PriceRule {
                    meter: "rpc.compute_units".into(),
                    matches: BTreeMap::new(),
                    price: Price::flat(Rate {
                        amount_minor: 2,
                        per: 10_000,
                    }),
                },
                PriceRule {
                    meter: "node.seconds".into(),
                    matches: BTreeMap::new(),
                    price: Price::flat(Rate {
                        amount_minor: 5,
                        per: 3_600,
                    }),
                },
            ],
            meters: BTreeMap::new(),
        }
    }

    fn r(meter: &str, quantity: u64) -> Reading {
        Reading {
            meter: meter.into(),
            dimensions: BTreeMap::new(),
            quantity,
        }
    }

    #[test]
    fn sub_cent_usage_is_charged_in_ledger_units() {
        // 1,000 CU at 2 cents per 10,000 = 0.2 cents = 2,000 micro-dollars;
        // a minute of a node at 5 cents an hour = 833.33… → 833.
        let c = window_charge(&card(), &[r("rpc.compute_units", 1_000)], 6).unwrap();
        assert_eq!(c, 2_000);
        let n = window_charge(&card(), &[r("node.seconds", 60)], 6).unwrap();
        assert_eq!(n, 833);
        // In cents it would have rounded to nothing.
        assert_eq!(
            window_charge(&card(), &[r("rpc.compute_units", 1_000)], 2).unwrap(),
            0
        );
        assert!(window_charge(&card(), &[r("gpu.minutes", 1)], 6).is_err());
    }

    #[test]
    fn ids_are_stable_per_window() {
        let org = OrgId::from_uuid(Uuid::from_u128(1));
        let t = Timestamp::from_millis(60_000);
        assert_eq!(hold_id(org, t), hold_id(org, t));
        assert_ne!(hold_id(org, t), hold_id(org, t.plus_millis(60_000)));
        assert_ne!(hold_id(org, t), excess_id(org, t));
        assert_ne!(settle_id(hold_id(org, t)), hold_id(org, t));
    }

    #[test]
    fn thresholds_warn_once_per_crossing() {
        let t = [1_000, 500, 100];
        assert_eq!(threshold_crossed(&t, None, 2_000), None);
        assert_eq!(threshold_crossed(&t, None, 900), Some(1_000));
        assert_eq!(
            threshold_crossed(&t, Some(1_000), 800),
            None,
            "already warned"
        );
        assert_eq!(
            threshold_crossed(&t, Some(1_000), 50),
            Some(100),
            "the lowest crossed"
        );
        assert_eq!(next_hold_amount(0), 1);
        assert_eq!(next_hold_amount(42), 42);
    }
}
