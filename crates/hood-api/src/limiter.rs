//! In-memory keyed rate limiter over the domain's GCRA.

use hood_domain::gcra::{self, Decision, Quota};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// Per-key GCRA state. Entries whose theoretical arrival time has passed
/// carry no information and are pruned, so memory stays bounded by the keys
/// active within one period.
pub struct KeyedLimiter<K> {
    quota: Quota,
    /// Theoretical arrival time per key, in nanoseconds.
    tats: Mutex<HashMap<K, i64>>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn per_minute(n: u64) -> Self {
        Self {
            quota: Quota::per_minute(n.max(1)),
            tats: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one unit for `key` at `now_ms`, or says how long to wait.
    pub fn check(&self, key: &K, now_ms: i64) -> Result<(), u64> {
        // A poisoned lock only means another request panicked mid-update;
        // the map is still a valid map, so keep using it.
        let mut tats = self.tats.lock().unwrap_or_else(|p| p.into_inner());
        if tats.len() > 10_000 {
            let now_ns = now_ms.saturating_mul(1_000_000);
            tats.retain(|_, tat_ns| *tat_ns > now_ns);
        }
        match gcra::check(&self.quota, tats.get(key).copied(), now_ms, 1) {
            Decision::Allow { tat_ns, .. } => {
                tats.insert(key.clone(), tat_ns);
                Ok(())
            }
            Decision::Deny { retry_after_ms } => Err(retry_after_ms),
            // A unit cost never exceeds a burst of at least one.
            Decision::TooLarge => Err(60_000),
        }
    }
}
