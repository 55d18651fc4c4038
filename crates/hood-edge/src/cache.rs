//! A finality-aware response cache. Whether a call may be cached is the
//! domain's rule ([`hood_domain::rpc::cacheability`]); this module adds the
//! chain's finalized height (best head minus a finality depth) and a
//! bounded store. Only successful, non-null results are kept, so an error
//! or a "not found yet" is never served from cache.

use hood_domain::rpc::{cacheability, Cacheability};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Cache key: chain, method and the params as canonical JSON text.
pub type CacheKey = (String, String, String);

pub struct ResponseCache {
    capacity: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<CacheKey, Value>,
    /// Insertion order, for eviction (oldest first).
    order: VecDeque<CacheKey>,
}

impl ResponseCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cache key of a call, if its answer may be cached now, given the
    /// chain's finalized height (`None` while unknown).
    pub fn key(
        &self,
        chain: &str,
        method: &str,
        params: &Value,
        finalized: Option<u64>,
    ) -> Option<CacheKey> {
        if self.capacity == 0 {
            return None;
        }
        let cacheable = match cacheability(method, params) {
            Cacheability::Never => false,
            Cacheability::Always => true,
            Cacheability::IfFinalized(block) => finalized.is_some_and(|f| block <= f),
        };
        cacheable.then(|| (chain.to_owned(), method.to_owned(), params.to_string()))
    }

    /// The cached result for `key`.
    pub fn get(&self, key: &CacheKey) -> Option<Value> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let hit = inner.entries.get(key).cloned();
        let counter = if hit.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// Keeps the result of a successful answer (`{"result": …}`, not null).
    pub fn put(&self, key: CacheKey, answer: &Value) {
        let Some(result) = answer.get("result").filter(|r| !r.is_null()) else {
            return;
        };
        if answer.get("error").is_some_and(|e| !e.is_null()) {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.entries.insert(key.clone(), result.clone()).is_none() {
            inner.order.push_back(key);
        }
        while inner.entries.len() > self.capacity {
            match inner.order.pop_front() {
                Some(old) => {
                    inner.entries.remove(&old);
                }
                None => break,
            }
        }
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn only_final_successful_answers_are_kept() {
        let cache = ResponseCache::new(2);
        let block = |n: &str| json!([n, false]);
        // Pending/latest data never gets a key.
        assert!(cache
            .key(
                "c",
                "eth_getBlockByNumber",
                &json!(["latest", false]),
                Some(100)
            )
            .is_none());
        // A pinned block: only once final.
        assert!(cache
            .key("c", "eth_getBlockByNumber", &block("0x50"), Some(64))
            .is_none());
        assert!(cache
            .key("c", "eth_getBlockByNumber", &block("0x50"), None)
            .is_none());
        let k = cache
            .key("c", "eth_getBlockByNumber", &block("0x10"), Some(64))
            .unwrap();
        assert_eq!(cache.get(&k), None);
        // Errors and nulls are not kept.
        cache.put(k.clone(), &json!({"id": 1, "error": {"code": -1}}));
        cache.put(k.clone(), &json!({"id": 1, "result": null}));
        assert_eq!(cache.get(&k), None);
        cache.put(k.clone(), &json!({"id": 1, "result": {"number": "0x10"}}));
        assert_eq!(cache.get(&k), Some(json!({"number": "0x10"})));
        // Chain constants are always cacheable.
        let id = cache.key("c", "eth_chainId", &json!([]), None).unwrap();
        cache.put(id.clone(), &json!({"result": "0x1"}));
        // Capacity 2: a third entry evicts the oldest.
        let other = cache
            .key("c", "eth_getBlockByNumber", &block("0x11"), Some(64))
            .unwrap();
        cache.put(other.clone(), &json!({"result": {"number": "0x11"}}));
        assert_eq!(cache.get(&k), None, "evicted");
        assert!(cache.get(&id).is_some() && cache.get(&other).is_some());
        assert_eq!(cache.stats().0, 3);
    }
}
