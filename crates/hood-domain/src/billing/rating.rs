//! Rating: a period's meter readings, a contract and a rate card version
//! turned into invoice lines that add up to the total exactly.
//!
//! - A reading is one meter's quantity for one combination of dimensions
//!   (compute units for chain `ethereum` × method class `trace`, node-hours
//!   for chain × node type, …).
//! - The rate card's most specific matching rule prices it: a rule matches
//!   when each of its dimensions equals the reading's (`*` matches any);
//!   more matched dimensions win, then the earlier rule. A reading no rule
//!   prices is an error, never silently free.
//! - FIXED bills its fee only; METERED its usage only; HYBRID its fee and
//!   the usage beyond the allowance the fee includes, spent per meter over
//!   the readings in their order (callers sort them, so the same readings
//!   always rate the same).

use super::meter::{Aggregation, Reading};
use super::period::Period;
use super::price::{Currency, Price, PriceError, Priced};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RatingError {
    #[error("rate card {version} prices no `{meter}` reading with {dimensions:?}")]
    NoPrice {
        version: u32,
        meter: String,
        dimensions: BTreeMap<String, String>,
    },
    #[error("rate card {version}, rule {rule}: {source}")]
    Price {
        version: u32,
        rule: usize,
        source: PriceError,
    },
    #[error("the contract is in {contract} but the rate card in {card}")]
    CurrencyMismatch { contract: Currency, card: Currency },
    #[error("the invoice total does not fit in 64-bit minor units")]
    Overflow,
    #[error("meter `{0}` is defined but no rule prices it")]
    UnpricedMeter(String),
}

/// How a contract charges (design §8; seed 002 §12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ContractTerms {
    /// A fee per period; usage is not billed.
    Fixed { fee_minor: u64 },
    /// Usage only.
    Metered,
    /// A fee that includes `included` units per meter; usage beyond is
    /// billed at the card's rates.
    Hybrid {
        fee_minor: u64,
        #[serde(default)]
        included: BTreeMap<String, u64>,
    },
}

/// One rule of a rate card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceRule {
    pub meter: String,
    /// Dimension → value the reading must have (`*`: any value).
    #[serde(default)]
    pub matches: BTreeMap<String, String>,
    pub price: Price,
}

/// A version of the price book. Immutable once an invoice used it: a
/// change is a new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateCard {
    pub version: u32,
    pub currency: Currency,
    pub rules: Vec<PriceRule>,
    /// How each ingested meter the rules name is read (the built-in
    /// meters, [`super::builtin`], need no definition). A meter without
    /// one is summed over all its events.
    #[serde(default)]
    pub meters: BTreeMap<String, MeterDefinition>,
}

/// How an ingested meter's events become readings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterDefinition {
    pub aggregation: Aggregation,
    /// The dimensions readings are grouped by (and priced on).
    #[serde(default)]
    pub group_by: Vec<String>,
}

impl Default for MeterDefinition {
    fn default() -> Self {
        Self {
            aggregation: Aggregation::Sum,
            group_by: Vec::new(),
        }
    }
}

impl RateCard {
    /// The meters its rules price, each once, in name order.
    pub fn meters_priced(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.rules.iter().map(|r| r.meter.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// How `meter` is read under this card.
    pub fn meter_definition(&self, meter: &str) -> MeterDefinition {
        self.meters.get(meter).cloned().unwrap_or_default()
    }

    /// Checks every rule's price and that each definition names a meter a
    /// rule prices.
    pub fn validate(&self) -> Result<(), RatingError> {
        for (rule, r) in self.rules.iter().enumerate() {
            r.price.validate().map_err(|source| RatingError::Price {
                version: self.version,
                rule,
                source,
            })?;
        }
        let priced = self.meters_priced();
        if let Some(name) = self.meters.keys().find(|m| !priced.contains(&m.as_str())) {
            return Err(RatingError::UnpricedMeter(name.clone()));
        }
        Ok(())
    }

    /// The index of the most specific rule that prices `reading`.
    pub fn rule_for(&self, reading: &Reading) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.meter != reading.meter {
                continue;
            }
            let mut exact = 0;
            let matches = rule.matches.iter().all(|(k, v)| {
                if v == "*" {
                    return true;
                }
                let hit = reading.dimensions.get(k) == Some(v);
                exact += usize::from(hit);
                hit
            });
            if matches && best.is_none_or(|(_, e)| exact > e) {
                best = Some((i, exact));
            }
        }
        best.map(|(i, _)| i)
    }
}

/// What an invoice line is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LineSource {
    /// The contract's fee for the period.
    Fee,
    /// A reading, priced by a rule of the rate card.
    Usage {
        reading: Reading,
        rule: usize,
        priced: Priced,
    },
    /// Usage of an earlier, already invoiced period that arrived after it
    /// closed: what those readings cost now (`readings`) beyond what was
    /// billed for it (`billed`), under that period's terms and rate card.
    /// The earlier invoice stays as issued.
    Adjustment {
        period: Period,
        billed: Vec<Reading>,
        readings: Vec<Reading>,
    },
    /// Allocations' active time in the period, of one SKU at the price
    /// they were made at (postpaid: an organization on prepaid credits
    /// pays it from them, minute by minute, instead).
    Allocations {
        sku: String,
        price_per_minute_minor: u64,
        /// Whole seconds active, summed over the allocations.
        seconds: u64,
    },
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub source: LineSource,
    pub rate_card_version: u32,
    pub amount_minor: u64,
}

/// A rated period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rated {
    pub currency: Currency,
    pub lines: Vec<Line>,
    pub total_minor: u64,
}

/// Rates one period. `currency`: the contract's.
pub fn rate_period(
    terms: &ContractTerms,
    currency: &Currency,
    card: &RateCard,
    readings: &[Reading],
) -> Result<Rated, RatingError> {
    if &card.currency != currency {
        return Err(RatingError::CurrencyMismatch {
            contract: currency.clone(),
            card: card.currency.clone(),
        });
    }
    let mut lines = Vec::new();
    let (fee, bill_usage, mut allowance) = match terms {
        ContractTerms::Fixed { fee_minor } => (Some(*fee_minor), false, BTreeMap::new()),
        ContractTerms::Metered => (None, true, BTreeMap::new()),
        ContractTerms::Hybrid {
            fee_minor,
            included,
        } => (Some(*fee_minor), true, included.clone()),
    };
    if let Some(fee) = fee {
        lines.push(Line {
            source: LineSource::Fee,
            rate_card_version: card.version,
            amount_minor: fee,
        });
    }
    if bill_usage {
        for reading in readings {
            let Some(rule) = card.rule_for(reading) else {
                return Err(RatingError::NoPrice {
                    version: card.version,
                    meter: reading.meter.clone(),
                    dimensions: reading.dimensions.clone(),
                });
            };
            let left = allowance.get(&reading.meter).copied().unwrap_or(0);
            let priced = card.rules[rule]
                .price
                .price(reading.quantity, left)
                .map_err(|source| RatingError::Price {
                    version: card.version,
                    rule,
                    source,
                })?;
            // The contract's allowance is spent before the rule's own
            // included units (see `Price::price`).
            let spent = priced.included.min(left);
            if let Some(a) = allowance.get_mut(&reading.meter) {
                *a -= spent;
            }
            lines.push(Line {
                amount_minor: priced.amount_minor,
                source: LineSource::Usage {
                    reading: reading.clone(),
                    rule,
                    priced,
                },
                rate_card_version: card.version,
            });
        }
    }
    let total = lines
        .iter()
        .try_fold(0u64, |sum, l| sum.checked_add(l.amount_minor))
        .ok_or(RatingError::Overflow)?;
    Ok(Rated {
        currency: currency.clone(),
        lines,
        total_minor: total,
    })
}

/// The adjustment line for a closed `period` whose readings grew from
/// `billed` to `readings` after it was invoiced: the difference of the two
/// ratings under the period's own terms and card (the fee cancels out).
/// `None` when the period would not cost more: an invoice is never lowered
/// by a later one (a lower amount is a credit note's business).
pub fn adjustment(
    terms: &ContractTerms,
    currency: &Currency,
    card: &RateCard,
    period: Period,
    billed: &[Reading],
    readings: &[Reading],
) -> Result<Option<Line>, RatingError> {
    if billed == readings {
        return Ok(None);
    }
    let before = rate_period(terms, currency, card, billed)?.total_minor;
    let after = rate_period(terms, currency, card, readings)?.total_minor;
    Ok((after > before).then(|| Line {
        source: LineSource::Adjustment {
            period,
            billed: billed.to_vec(),
            readings: readings.to_vec(),
        },
        rate_card_version: card.version,
        amount_minor: after - before,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::price::{Rate, Tier};
    use super::*;
    use proptest::prelude::*;

    fn usd() -> Currency {
        "USD".parse().unwrap()
    }

    fn dims(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn reading(meter: &str, pairs: &[(&str, &str)], quantity: u64) -> Reading {
        Reading {
            meter: meter.into(),
            dimensions: dims(pairs),
            quantity,
        }
    }

    /// Compute units: 2 cents per 10,000, trace calls 10 cents per 10,000;
    /// node-hours: 5 cents each, 3 cents beyond 100 hours.
    fn card() -> RateCard {
        RateCard {
            version: 3,
            currency: usd(),
            meters: BTreeMap::new(),
            rules: vec![
                PriceRule {
                    meter: "rpc_cu".into(),
                    matches: dims(&[("chain", "*")]),
                    price: Price::flat(Rate {
                        amount_minor: 2,
                        per: 10_000,
                    }),
                },
                PriceRule {
                    meter: "rpc_cu".into(),
                    matches: dims(&[("method_class", "trace")]),
                    price: Price::flat(Rate {
                        amount_minor: 10,
                        per: 10_000,
                    }),
                },
                PriceRule {
                    meter: "node_hours".into(),
                    matches: BTreeMap::new(),
                    price: Price {
                        included: 0,
                        tiers: vec![
                            Tier {
                                up_to: Some(100),
                                rate: Rate {
                                    amount_minor: 5,
                                    per: 1,
                                },
                            },
                            Tier {
                                up_to: None,
                                rate: Rate {
                                    amount_minor: 3,
                                    per: 1,
                                },
                            },
                        ],
                    },
                },
            ],
        }
    }

    #[test]
    fn the_most_specific_rule_prices_a_reading() {
        let c = card();
        let plain = reading(
            "rpc_cu",
            &[("chain", "ethereum"), ("method_class", "read")],
            1,
        );
        let trace = reading(
            "rpc_cu",
            &[("chain", "ethereum"), ("method_class", "trace")],
            1,
        );
        assert_eq!(c.rule_for(&plain), Some(0));
        assert_eq!(c.rule_for(&trace), Some(1));
        assert_eq!(c.rule_for(&reading("gpu_minutes", &[], 1)), None);
    }

    #[test]
    fn hybrid_bills_the_fee_and_usage_beyond_its_allowance() {
        let terms = ContractTerms::Hybrid {
            fee_minor: 4_900,
            included: [("rpc_cu".to_owned(), 1_000_000)].into_iter().collect(),
        };
        let readings = [
            reading(
                "rpc_cu",
                &[("chain", "base"), ("method_class", "read")],
                600_000,
            ),
            reading(
                "rpc_cu",
                &[("chain", "ethereum"), ("method_class", "read")],
                900_000,
            ),
            reading(
                "node_hours",
                &[("chain", "ethereum"), ("node_type", "full")],
                150,
            ),
        ];
        let rated = rate_period(&terms, &usd(), &card(), &readings).unwrap();
        let amounts: Vec<u64> = rated.lines.iter().map(|l| l.amount_minor).collect();
        // Fee; base all included; ethereum 500,000 beyond → 100 cents;
        // 100 h × 5 + 50 h × 3.
        assert_eq!(amounts, vec![4_900, 0, 100, 650]);
        assert_eq!(rated.total_minor, 5_650);
        assert!(rated.lines.iter().all(|l| l.rate_card_version == 3));
    }

    #[test]
    fn late_usage_is_billed_at_the_margin_and_never_lowers() {
        let terms = ContractTerms::Hybrid {
            fee_minor: 4_900,
            included: [("rpc_cu".to_owned(), 1_000_000)].into_iter().collect(),
        };
        let period = Period {
            start: time::macros::date!(2026 - 01 - 01),
            end: time::macros::date!(2026 - 02 - 01),
        };
        let eth = [("chain", "ethereum"), ("method_class", "read")];
        let billed = [reading("rpc_cu", &eth, 900_000)];
        // 200,000 late units: 100,000 still inside the allowance, 100,000
        // beyond it at 2 cents per 10,000.
        let now = [reading("rpc_cu", &eth, 1_100_000)];
        let line = adjustment(&terms, &usd(), &card(), period, &billed, &now)
            .unwrap()
            .expect("more usage costs more");
        assert_eq!(line.amount_minor, 20);
        assert!(matches!(line.source, LineSource::Adjustment { period: p, .. } if p == period));
        assert_eq!(
            adjustment(&terms, &usd(), &card(), period, &billed, &billed).unwrap(),
            None
        );
        assert_eq!(
            adjustment(&terms, &usd(), &card(), period, &now, &billed).unwrap(),
            None,
            "a later invoice never lowers an earlier one"
        );
    }

    #[test]
    fn a_card_validates_its_prices_and_meter_definitions() {
        let mut c = card();
        assert_eq!(c.validate(), Ok(()));
        c.meters.insert(
            "storage_bytes".into(),
            MeterDefinition {
                aggregation: Aggregation::Latest,
                group_by: vec![],
            },
        );
        assert_eq!(
            c.validate(),
            Err(RatingError::UnpricedMeter("storage_bytes".into()))
        );
        let mut c = card();
        c.rules[0].price.tiers.clear();
        assert!(matches!(
            c.validate(),
            Err(RatingError::Price { rule: 0, .. })
        ));
    }

    #[test]
    fn fixed_ignores_usage_and_metered_has_no_fee() {
        let readings = [reading("rpc_cu", &[("chain", "base")], 10_000)];
        let fixed = rate_period(
            &ContractTerms::Fixed { fee_minor: 999 },
            &usd(),
            &card(),
            &readings,
        )
        .unwrap();
        assert_eq!((fixed.lines.len(), fixed.total_minor), (1, 999));
        let metered = rate_period(&ContractTerms::Metered, &usd(), &card(), &readings).unwrap();
        assert_eq!((metered.lines.len(), metered.total_minor), (1, 2));
    }

    #[test]
    fn unpriced_usage_and_foreign_currency_are_errors() {
        let gpu = [reading("gpu_minutes", &[("gpu", "a100")], 5)];
        assert!(matches!(
            rate_period(&ContractTerms::Metered, &usd(), &card(), &gpu),
            Err(RatingError::NoPrice { version: 3, .. })
        ));
        let eur: Currency = "EUR".parse().unwrap();
        assert!(matches!(
            rate_period(&ContractTerms::Metered, &eur, &card(), &[]),
            Err(RatingError::CurrencyMismatch { .. })
        ));
    }

    proptest! {
        /// Whatever the readings, lines add up to the total exactly and an
        /// allowance is never spent twice.
        #[test]
        fn lines_add_up_to_the_total(
            quantities in proptest::collection::vec(0u64..5_000_000, 0..12),
            allowance in 0u64..3_000_000,
            fee in 0u64..100_000,
        ) {
            let readings: Vec<Reading> = quantities
                .iter()
                .enumerate()
                .map(|(i, q)| reading("rpc_cu", &[("chain", if i % 2 == 0 { "a" } else { "b" })], *q))
                .collect();
            let terms = ContractTerms::Hybrid {
                fee_minor: fee,
                included: [("rpc_cu".to_owned(), allowance)].into_iter().collect(),
            };
            let rated = rate_period(&terms, &usd(), &card(), &readings).unwrap();
            let sum: u64 = rated.lines.iter().map(|l| l.amount_minor).sum();
            prop_assert_eq!(sum, rated.total_minor);
            let included: u64 = rated.lines.iter().filter_map(|l| match &l.source {
                LineSource::Usage { priced, .. } => Some(priced.included),
                LineSource::Fee | LineSource::Adjustment { .. } | LineSource::Allocations { .. } => None,
            }).sum();
            let total_quantity: u64 = quantities.iter().sum();
            prop_assert_eq!(included, allowance.min(total_quantity));
        }
    }
}
