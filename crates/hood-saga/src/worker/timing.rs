//! Durations as the store's millisecond timestamps.

use hood_domain::Timestamp;
use std::time::Duration;

pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(super) fn after(at: Timestamp, d: Duration) -> Timestamp {
    at.plus_millis(millis(d))
}
