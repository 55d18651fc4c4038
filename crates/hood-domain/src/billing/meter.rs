//! Meters: events, checked on the way in, and their aggregation into
//! readings (design §8: SUM / COUNT / MAX / LATEST over de-duplicated
//! events, by dimension).
//!
//! An event is a quantity of one meter at one instant, with dimensions
//! (`chain`, `method_class`, `gpu`, …) and an id its producer chooses: the
//! same id twice is the same event (the store keeps the first). A meter's
//! readings for a period group its events by the dimensions asked for.

use crate::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest event id, meter name, dimension name or value.
pub const MAX_NAME_LEN: usize = 200;
/// Most dimensions on one event.
pub const MAX_DIMENSIONS: usize = 16;

/// How a meter's events become one number per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// The quantities added up (compute units, bytes).
    Sum,
    /// How many events (requests).
    Count,
    /// The largest quantity (peak concurrency).
    Max,
    /// The quantity of the latest event (a gauge: storage in use); ties on
    /// the instant go to the greater id, so the answer never depends on
    /// arrival order.
    Latest,
}

impl Aggregation {
    pub const ALL: [Aggregation; 4] = [
        Aggregation::Sum,
        Aggregation::Count,
        Aggregation::Max,
        Aggregation::Latest,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Aggregation::Sum => "sum",
            Aggregation::Count => "count",
            Aggregation::Max => "max",
            Aggregation::Latest => "latest",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// One meter's quantity for one combination of dimensions in a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    pub meter: String,
    pub dimensions: BTreeMap<String, String>,
    pub quantity: u64,
}

/// One metered event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterEvent {
    /// The producer's id; the de-duplication key within an organization.
    pub id: String,
    pub meter: String,
    pub dimensions: BTreeMap<String, String>,
    pub quantity: u64,
    pub at: Timestamp,
}

/// Why an event is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeterEventError {
    #[error("`{field}` must be 1 to {MAX_NAME_LEN} printable characters without spaces")]
    BadName { field: &'static str },
    #[error("at most {MAX_DIMENSIONS} dimensions")]
    TooManyDimensions,
    #[error("a quantity is at most {}", i64::MAX)]
    QuantityTooLarge,
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_LEN && s.chars().all(|c| c.is_ascii_graphic())
}

impl MeterEvent {
    /// Checks ids, names, dimensions and that the quantity fits the
    /// store's signed 64-bit integers.
    pub fn validate(&self) -> Result<(), MeterEventError> {
        if i64::try_from(self.quantity).is_err() {
            return Err(MeterEventError::QuantityTooLarge);
        }
        if !name_ok(&self.id) {
            return Err(MeterEventError::BadName { field: "id" });
        }
        if !name_ok(&self.meter) {
            return Err(MeterEventError::BadName { field: "meter" });
        }
        if self.dimensions.len() > MAX_DIMENSIONS {
            return Err(MeterEventError::TooManyDimensions);
        }
        for (k, v) in &self.dimensions {
            if !name_ok(k) {
                return Err(MeterEventError::BadName {
                    field: "dimension name",
                });
            }
            if !name_ok(v) {
                return Err(MeterEventError::BadName {
                    field: "dimension value",
                });
            }
        }
        Ok(())
    }
}

/// A group's running value and, for LATEST, the (instant, id) it came
/// from.
type GroupValue = (u64, Option<(Timestamp, String)>);

/// The readings of one meter: its events (of that meter) grouped by the
/// dimensions in `group_by` (an event without one groups under `""`),
/// aggregated, in the groups' order. Events of other meters are ignored.
pub fn aggregate(
    meter: &str,
    events: &[MeterEvent],
    aggregation: Aggregation,
    group_by: &[String],
) -> Vec<Reading> {
    let mut groups: BTreeMap<BTreeMap<String, String>, GroupValue> = BTreeMap::new();
    for e in events.iter().filter(|e| e.meter == meter) {
        let key: BTreeMap<String, String> = group_by
            .iter()
            .map(|d| (d.clone(), e.dimensions.get(d).cloned().unwrap_or_default()))
            .collect();
        let (value, latest) = groups.entry(key).or_insert((0, None));
        match aggregation {
            Aggregation::Sum => *value = value.saturating_add(e.quantity),
            Aggregation::Count => *value += 1,
            Aggregation::Max => *value = (*value).max(e.quantity),
            Aggregation::Latest => {
                let newer = latest
                    .as_ref()
                    .is_none_or(|(at, id)| (e.at, &e.id) > (*at, id));
                if newer {
                    *value = e.quantity;
                    *latest = Some((e.at, e.id.clone()));
                }
            }
        }
    }
    groups
        .into_iter()
        .map(|(dimensions, (quantity, _))| Reading {
            meter: meter.to_owned(),
            dimensions,
            quantity,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(id: &str, chain: &str, quantity: u64, at: i64) -> MeterEvent {
        MeterEvent {
            id: id.into(),
            meter: "storage_bytes".into(),
            dimensions: [("chain".to_owned(), chain.to_owned())]
                .into_iter()
                .collect(),
            quantity,
            at: Timestamp::from_millis(at),
        }
    }

    #[test]
    fn each_aggregation() {
        let events = [
            ev("a", "eth", 5, 10),
            ev("b", "eth", 9, 30),
            ev("c", "eth", 2, 20),
            ev("d", "base", 7, 5),
        ];
        let by_chain = ["chain".to_owned()];
        let q = |a| {
            aggregate("storage_bytes", &events, a, &by_chain)
                .into_iter()
                .map(|r| (r.dimensions["chain"].clone(), r.quantity))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            q(Aggregation::Sum),
            vec![("base".into(), 7), ("eth".into(), 16)]
        );
        assert_eq!(
            q(Aggregation::Count),
            vec![("base".into(), 1), ("eth".into(), 3)]
        );
        assert_eq!(
            q(Aggregation::Max),
            vec![("base".into(), 7), ("eth".into(), 9)]
        );
        assert_eq!(
            q(Aggregation::Latest),
            vec![("base".into(), 7), ("eth".into(), 9)]
        );
        // No grouping: one reading; other meters are ignored.
        let all = aggregate("storage_bytes", &events, Aggregation::Sum, &[]);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].quantity, 23);
        assert!(aggregate("other", &events, Aggregation::Sum, &[]).is_empty());
    }

    #[test]
    fn events_are_checked() {
        let mut e = ev("a", "eth", 1, 0);
        assert!(e.validate().is_ok());
        e.id = "has space".into();
        assert_eq!(e.validate(), Err(MeterEventError::BadName { field: "id" }));
        e.id = "x".repeat(MAX_NAME_LEN + 1);
        assert!(e.validate().is_err());
        let mut e = ev("a", "", 1, 0);
        assert!(e.validate().is_err(), "an empty dimension value");
        e.dimensions = (0..=MAX_DIMENSIONS)
            .map(|i| (format!("d{i}"), "v".into()))
            .collect();
        assert_eq!(e.validate(), Err(MeterEventError::TooManyDimensions));
        let mut e = ev("a", "eth", u64::MAX, 0);
        assert_eq!(e.validate(), Err(MeterEventError::QuantityTooLarge));
        e.quantity = i64::MAX as u64;
        assert!(e.validate().is_ok());
        assert_eq!(Aggregation::parse("latest"), Some(Aggregation::Latest));
        assert_eq!(Aggregation::parse("avg"), None);
    }

    proptest! {
        /// LATEST does not depend on the order events arrive in.
        #[test]
        fn latest_ignores_arrival_order(
            mut events in proptest::collection::vec((0u64..100, 0i64..50), 1..20),
            seed in 0usize..1000,
        ) {
            let make = |v: &[(u64, i64)]| -> Vec<MeterEvent> {
                v.iter().enumerate().map(|(i, (q, at))| ev(&format!("e{i:03}"), "eth", *q, *at)).collect()
            };
            let first = make(&events);
            let forward = aggregate("storage_bytes", &first, Aggregation::Latest, &[]);
            let mut shuffled = first.clone();
            let n = shuffled.len();
            shuffled.rotate_left(seed % n);
            shuffled.reverse();
            let backward = aggregate("storage_bytes", &shuffled, Aggregation::Latest, &[]);
            prop_assert_eq!(forward, backward);
            events.clear();
        }
    }
}
