//! Money and prices: integers of minor units, rates as exact fractions,
//! graduated tiers, included units, and the one rounding rule.
//!
//! The rounding rule: a rate is "`amount_minor` per `per` units" (two cents
//! per 10,000 compute units is `Rate { amount_minor: 2, per: 10_000 }`), so
//! sub-cent prices need no decimals. A quantity's charge under one rate is
//! computed exactly in 128-bit integers and rounded **once, half up, to a
//! whole minor unit**, per tier. An invoice line's amount is the sum of its
//! tiers' rounded amounts, and an invoice's total the sum of its lines, so
//! lines always add up to the total exactly.

use serde::{Deserialize, Serialize};

/// Why a price cannot be used or a charge cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("a rate's `per` must be at least 1")]
    ZeroPer,
    #[error("tiers must rise strictly: tier {index} ends at {up_to}, not above the previous end")]
    TiersNotRising { index: usize, up_to: u64 },
    #[error("only the last tier may be open-ended (tier {index} has no end)")]
    OpenTierNotLast { index: usize },
    #[error("the last tier must be open-ended, so every quantity has a price")]
    LastTierBounded,
    #[error("a price needs at least one tier")]
    NoTiers,
    #[error("the charge does not fit in 64-bit minor units")]
    Overflow,
    #[error("`{0}` is not an ISO 4217 currency code (three capital letters)")]
    Currency(String),
}

/// An ISO 4217 currency code, e.g. `USD`. Amounts in it are minor units
/// (cents); the code says nothing about the exponent, which the ledger's
/// account records.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// US dollars, the currency of built-in example prices.
    pub fn usd() -> Self {
        Self("USD".to_owned())
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Currency {
    type Error = PriceError;
    fn try_from(code: String) -> Result<Self, PriceError> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(code))
        } else {
            Err(PriceError::Currency(code))
        }
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}

impl std::str::FromStr for Currency {
    type Err = PriceError;
    fn from_str(s: &str) -> Result<Self, PriceError> {
        Self::try_from(s.to_owned())
    }
}

/// `amount_minor` per `per` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub amount_minor: u64,
    pub per: u64,
}

impl Rate {
    /// The charge for `quantity` units, rounded half up to a minor unit.
    pub fn charge(self, quantity: u64) -> Result<u64, PriceError> {
        if self.per == 0 {
            return Err(PriceError::ZeroPer);
        }
        let exact = u128::from(quantity) * u128::from(self.amount_minor);
        let per = u128::from(self.per);
        // Half up: add half of the divisor before dividing.
        let rounded = (exact + per / 2) / per;
        u64::try_from(rounded).map_err(|_| PriceError::Overflow)
    }
}

/// One tier of a graduated price: units up to `up_to` (inclusive, counted
/// after the included units) cost `rate`; `None` is open-ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub up_to: Option<u64>,
    pub rate: Rate,
}

/// A graduated price: the first `included` units are free, then each tier
/// prices the units that fall in it (not the whole quantity at the tier it
/// reaches: that would be volume pricing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    #[serde(default)]
    pub included: u64,
    pub tiers: Vec<Tier>,
}

/// The part of a quantity one tier priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierCharge {
    /// Index of the tier in the price.
    pub tier: usize,
    pub quantity: u64,
    pub rate: Rate,
    pub amount_minor: u64,
}

/// A quantity priced: what was free, and each tier's part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Priced {
    pub quantity: u64,
    pub included: u64,
    pub tiers: Vec<TierCharge>,
    pub amount_minor: u64,
}

impl Price {
    /// One flat rate, nothing included.
    pub fn flat(rate: Rate) -> Self {
        Self {
            included: 0,
            tiers: vec![Tier { up_to: None, rate }],
        }
    }

    /// Checks the tiers: at least one, ends rising strictly, only the last
    /// open-ended, every `per` at least 1.
    pub fn validate(&self) -> Result<(), PriceError> {
        let Some(last) = self.tiers.last() else {
            return Err(PriceError::NoTiers);
        };
        if last.up_to.is_some() {
            return Err(PriceError::LastTierBounded);
        }
        let mut previous: Option<u64> = None;
        for (index, tier) in self.tiers.iter().enumerate() {
            if tier.rate.per == 0 {
                return Err(PriceError::ZeroPer);
            }
            match tier.up_to {
                None if index + 1 != self.tiers.len() => {
                    return Err(PriceError::OpenTierNotLast { index })
                }
                None => {}
                Some(up_to) => {
                    if previous.is_some_and(|p| up_to <= p) || up_to == 0 {
                        return Err(PriceError::TiersNotRising { index, up_to });
                    }
                    previous = Some(up_to);
                }
            }
        }
        Ok(())
    }

    /// Prices `quantity` units, also spending `extra_included` units of an
    /// allowance the contract grants (a HYBRID fee's included usage) before
    /// the price's own.
    pub fn price(&self, quantity: u64, extra_included: u64) -> Result<Priced, PriceError> {
        self.validate()?;
        let included = quantity.min(self.included.saturating_add(extra_included));
        let mut left = quantity - included;
        let mut start = 0u64;
        let mut tiers = Vec::new();
        let mut amount = 0u64;
        for (tier, t) in self.tiers.iter().enumerate() {
            if left == 0 {
                break;
            }
            let width = match t.up_to {
                Some(end) => end - start,
                None => u64::MAX,
            };
            let here = left.min(width);
            let charged = t.rate.charge(here)?;
            amount = amount.checked_add(charged).ok_or(PriceError::Overflow)?;
            tiers.push(TierCharge {
                tier,
                quantity: here,
                rate: t.rate,
                amount_minor: charged,
            });
            left -= here;
            if let Some(end) = t.up_to {
                start = end;
            }
        }
        Ok(Priced {
            quantity,
            included,
            tiers,
            amount_minor: amount,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rate(amount_minor: u64, per: u64) -> Rate {
        Rate { amount_minor, per }
    }

    #[test]
    fn sub_cent_rates_round_half_up_once() {
        // 2 cents per 10,000 units.
        let r = rate(2, 10_000);
        assert_eq!(r.charge(0).unwrap(), 0);
        assert_eq!(r.charge(2_499).unwrap(), 0, "0.4998 cents rounds down");
        assert_eq!(r.charge(2_500).unwrap(), 1, "0.5 cents rounds up");
        assert_eq!(r.charge(1_000_000).unwrap(), 200);
        assert_eq!(rate(1, 0).charge(1), Err(PriceError::ZeroPer));
        assert_eq!(rate(u64::MAX, 1).charge(2), Err(PriceError::Overflow));
    }

    #[test]
    fn graduated_tiers_price_each_slice_at_its_own_rate() {
        let p = Price {
            included: 100,
            tiers: vec![
                Tier {
                    up_to: Some(1_000),
                    rate: rate(10, 1),
                },
                Tier {
                    up_to: None,
                    rate: rate(5, 1),
                },
            ],
        };
        let priced = p.price(1_600, 0).unwrap();
        assert_eq!(priced.included, 100);
        assert_eq!(
            priced.tiers.iter().map(|t| t.quantity).collect::<Vec<_>>(),
            vec![1_000, 500]
        );
        assert_eq!(priced.amount_minor, 1_000 * 10 + 500 * 5);
        // A contract's allowance is spent before the price's own.
        let priced = p.price(1_600, 600).unwrap();
        assert_eq!(priced.included, 700);
        assert_eq!(priced.amount_minor, 900 * 10);
        assert_eq!(p.price(50, 0).unwrap().amount_minor, 0);
    }

    #[test]
    fn bad_tiers_are_refused() {
        let open = Tier {
            up_to: None,
            rate: rate(1, 1),
        };
        let to = |n| Tier {
            up_to: Some(n),
            rate: rate(1, 1),
        };
        let p = |tiers: Vec<Tier>| Price { included: 0, tiers };
        assert_eq!(p(vec![]).validate(), Err(PriceError::NoTiers));
        assert_eq!(p(vec![to(5)]).validate(), Err(PriceError::LastTierBounded));
        assert_eq!(
            p(vec![to(5), to(5), open]).validate(),
            Err(PriceError::TiersNotRising { index: 1, up_to: 5 })
        );
        assert_eq!(
            p(vec![open, open]).validate(),
            Err(PriceError::OpenTierNotLast { index: 0 })
        );
        assert!(p(vec![to(5), to(9), open]).validate().is_ok());
    }

    #[test]
    fn currencies_are_iso_codes() {
        assert_eq!("USD".parse::<Currency>().unwrap().as_str(), "USD");
        assert!("usd".parse::<Currency>().is_err());
        assert!("EURO".parse::<Currency>().is_err());
        assert!(serde_json::from_str::<Currency>("\"us\"").is_err());
    }

    proptest! {
        /// Tier slices add up to the quantity less what was included, and
        /// tier amounts to the total.
        #[test]
        fn slices_and_amounts_add_up(
            q in 0u64..10_000_000,
            included in 0u64..5_000,
            extra in 0u64..5_000,
            a in 1u64..1_000, b in 1u64..1_000,
            per in 1u64..100_000,
            end in 1u64..1_000_000,
        ) {
            let p = Price {
                included,
                tiers: vec![
                    Tier { up_to: Some(end), rate: Rate { amount_minor: a, per } },
                    Tier { up_to: None, rate: Rate { amount_minor: b, per } },
                ],
            };
            let priced = p.price(q, extra).unwrap();
            let sliced: u64 = priced.tiers.iter().map(|t| t.quantity).sum();
            prop_assert_eq!(sliced + priced.included, q);
            let summed: u64 = priced.tiers.iter().map(|t| t.amount_minor).sum();
            prop_assert_eq!(summed, priced.amount_minor);
        }

        /// More usage never costs less.
        #[test]
        fn price_is_monotonic(q in 0u64..1_000_000, more in 0u64..1_000_000, per in 1u64..10_000) {
            let p = Price {
                included: 10,
                tiers: vec![
                    Tier { up_to: Some(500), rate: Rate { amount_minor: 7, per } },
                    Tier { up_to: None, rate: Rate { amount_minor: 3, per } },
                ],
            };
            prop_assert!(p.price(q + more, 0).unwrap().amount_minor >= p.price(q, 0).unwrap().amount_minor);
        }
    }
}
