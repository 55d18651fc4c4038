//! Allocation leases on the host: each sandbox runs only as long as the
//! control plane has vouched for it (seed 004: an allocation on a host cut
//! off from the control plane stops when its lease runs out). The control
//! plane grants a lease with `start_allocation` and extends it with signed
//! `renew_allocation_leases`; the agent's enforcer stops every sandbox
//! whose lease ran out, whether or not the control plane is reachable.
//!
//! Leases only ever grow (a replayed older renewal changes nothing) and
//! are kept in a file, so an agent restarted while cut off still enforces
//! them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Leases by sandbox workload id, until Unix ms.
pub struct Leases {
    path: PathBuf,
    until: Mutex<BTreeMap<String, i64>>,
}

impl Leases {
    /// The leases kept in `path` (none when it does not exist or cannot be
    /// read: a sandbox without a lease is not stopped by this enforcer).
    pub fn load(path: PathBuf) -> Self {
        let until = match hood_files::read_json::<BTreeMap<String, i64>>(&path) {
            Ok(found) => found.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e,
                    "allocation leases unreadable; starting without");
                BTreeMap::new()
            }
        };
        Self {
            path,
            until: Mutex::new(until),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<String, i64>) -> (R, bool)) -> R {
        let mut map = self
            .until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (result, changed) = f(&mut map);
        if changed {
            if let Err(e) = hood_files::write_json_private(&self.path, &*map) {
                tracing::warn!(path = %self.path.display(), error = %e,
                    "could not keep allocation leases on disk");
            }
        }
        result
    }

    /// Grants or extends `workload`'s lease to `until_ms` (never shortens).
    pub fn extend(&self, workload: &str, until_ms: i64) {
        self.with(|m| {
            let entry = m.entry(workload.to_owned()).or_insert(i64::MIN);
            let grew = until_ms > *entry;
            if grew {
                *entry = until_ms;
            }
            ((), grew)
        });
    }

    /// Extends only a lease that exists (a renewal for a sandbox this host
    /// no longer runs grants nothing); whether it did.
    pub fn renew(&self, workload: &str, until_ms: i64) -> bool {
        self.with(|m| match m.get_mut(workload) {
            Some(current) => {
                let grew = until_ms > *current;
                if grew {
                    *current = until_ms;
                }
                (true, grew)
            }
            None => (false, false),
        })
    }

    pub fn forget(&self, workload: &str) {
        self.with(|m| ((), m.remove(workload).is_some()));
    }

    pub fn until(&self, workload: &str) -> Option<i64> {
        self.with(|m| (m.get(workload).copied(), false))
    }

    /// Takes out the leases that ran out by `now_ms` and returns their
    /// workloads (each is stopped once).
    pub fn take_expired(&self, now_ms: i64) -> Vec<String> {
        self.with(|m| {
            let expired: Vec<String> = m
                .iter()
                .filter(|(_, until)| **until <= now_ms)
                .map(|(w, _)| w.clone())
                .collect();
            for w in &expired {
                m.remove(w);
            }
            let changed = !expired.is_empty();
            (expired, changed)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn leases_only_grow_survive_a_restart_and_expire_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.json");
        let leases = Leases::load(path.clone());
        leases.extend("alloc-a", 1_000);
        leases.extend("alloc-b", 5_000);
        // An older renewal (a replay) changes nothing; a newer one extends.
        assert!(leases.renew("alloc-a", 500));
        assert_eq!(leases.until("alloc-a"), Some(1_000));
        assert!(leases.renew("alloc-a", 2_000));
        assert_eq!(leases.until("alloc-a"), Some(2_000));
        // No lease, no renewal.
        assert!(!leases.renew("alloc-gone", 9_000));
        assert_eq!(leases.until("alloc-gone"), None);

        // A restarted agent finds them.
        let again = Leases::load(path.clone());
        assert_eq!(again.until("alloc-a"), Some(2_000));
        assert!(again.take_expired(1_999).is_empty());
        assert_eq!(again.take_expired(2_000), vec!["alloc-a".to_owned()]);
        assert!(again.take_expired(2_000).is_empty(), "once");
        again.forget("alloc-b");
        assert!(Leases::load(path).take_expired(i64::MAX).is_empty());
    }
}
