//! Compute-unit limits: the domain's GCRA per bucket (key × chain), with the
//! state kept in this process ([`LocalLimiter`], the default) or shared by
//! every edge replica (a Redis-backed limiter, when configured).

use async_trait::async_trait;
use hood_domain::gcra::{self, Decision, Quota};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

/// A limiter failure (only shared limiters can fail).
#[derive(Debug, thiserror::Error)]
#[error("rate limiter unavailable: {0}")]
pub struct LimitError(pub String);

/// Admits `cost` units on `bucket` under `quota`, or says how long to wait.
#[async_trait]
pub trait Limiter: Send + Sync {
    async fn acquire(
        &self,
        bucket: &str,
        cost: u64,
        quota: &Quota,
        now_ms: i64,
    ) -> Result<Decision, LimitError>;
    /// Gives back `cost` units an admission took but did not use (the call
    /// found no upstream). Best effort: a refund that cannot be stored only
    /// leaves the bucket as charged.
    async fn refund(&self, bucket: &str, cost: u64, quota: &Quota, now_ms: i64);
    /// `"local"` or `"redis"`.
    fn kind(&self) -> &'static str;
}

/// GCRA state in memory, sharded so concurrent requests on different keys
/// rarely meet on a lock.
pub struct LocalLimiter {
    shards: Vec<Mutex<HashMap<String, i64>>>,
    hasher: std::collections::hash_map::RandomState,
    /// A shard prunes idle buckets when it grows past this.
    prune_at: usize,
}

const SHARDS: usize = 64;
/// A shard prunes idle buckets when it grows past this.
const PRUNE_AT: usize = 4_096;

impl Default for LocalLimiter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            prune_at: PRUNE_AT,
        }
    }
}

impl LocalLimiter {
    /// The decision, synchronously (the local limiter never waits).
    pub fn decide(&self, bucket: &str, cost: u64, quota: &Quota, now_ms: i64) -> Decision {
        let shard = &self.shards[(self.hasher.hash_one(bucket) as usize) % SHARDS];
        // A poisoned shard only means a panic elsewhere mid-update; the map
        // itself is intact.
        let mut tats = shard.lock().unwrap_or_else(|p| p.into_inner());
        if tats.len() > self.prune_at {
            tats.retain(|_, tat| gcra::idle_at_ms(*tat) > now_ms);
        }
        let decision = gcra::check(quota, tats.get(bucket).copied(), now_ms, cost);
        if let Decision::Allow { tat_ns, .. } = decision {
            match tats.get_mut(bucket) {
                Some(tat) => *tat = tat_ns,
                None => {
                    tats.insert(bucket.to_owned(), tat_ns);
                }
            }
        }
        decision
    }

    /// [`Limiter::refund`], synchronously.
    pub fn give_back(&self, bucket: &str, cost: u64, quota: &Quota, now_ms: i64) {
        let shard = &self.shards[(self.hasher.hash_one(bucket) as usize) % SHARDS];
        // As in `decide`: a poisoned shard's map is intact.
        let mut tats = shard.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tat) = tats.get_mut(bucket) {
            if let Some(back) = gcra::refund(quota, Some(*tat), now_ms, cost) {
                *tat = back;
            }
        }
    }
}

#[async_trait]
impl Limiter for LocalLimiter {
    async fn acquire(
        &self,
        bucket: &str,
        cost: u64,
        quota: &Quota,
        now_ms: i64,
    ) -> Result<Decision, LimitError> {
        Ok(self.decide(bucket, cost, quota, now_ms))
    }

    async fn refund(&self, bucket: &str, cost: u64, quota: &Quota, now_ms: i64) {
        self.give_back(bucket, cost, quota, now_ms);
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}

/// GCRA state in Redis, shared by every edge replica: one limit per key ×
/// chain however many replicas serve it. The decision is the domain's
/// `gcra::check`, run here; Redis only stores the TAT and a Lua
/// compare-and-set makes each update atomic (a lost race re-reads and
/// decides again). If Redis is unreachable the replica falls back to its
/// own local limiter and says so, rather than refusing all traffic.
pub struct RedisLimiter {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    cas: redis::Script,
    fallback: LocalLimiter,
    /// One compare-and-set in flight per bucket from this replica, so
    /// contention on a hot key is between replicas, not between requests.
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Decisions taken locally because Redis failed.
    fallbacks: std::sync::atomic::AtomicU64,
}

/// Sets KEYS[1] to ARGV[2] (expiring at ARGV[3] ms) only if it still holds
/// ARGV[1] ('' = absent). Returns 1 on success, 0 if someone else won.
const CAS_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1
";

/// Compare-and-set attempts before a hot bucket is judged locally.
const CAS_ATTEMPTS: usize = 16;

impl RedisLimiter {
    /// Connects to `url` (`redis://host:port/db`); keys are `{prefix}:{bucket}`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, LimitError> {
        let client =
            redis::Client::open(url).map_err(|e| LimitError(redact(&e.to_string(), url)))?;
        // A slow Redis must not stall requests: short timeouts, then the
        // local fallback decides.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(std::time::Duration::from_secs(1))
            .set_connection_timeout(Some(std::time::Duration::from_secs(1)))
            .set_response_timeout(Some(std::time::Duration::from_millis(500)));
        let conn = redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| LimitError(redact(&e.to_string(), url)))?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            cas: redis::Script::new(CAS_SCRIPT),
            fallback: LocalLimiter::default(),
            in_flight: Mutex::new(HashMap::new()),
            fallbacks: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many decisions were taken locally because Redis failed (each
    /// may admit what the shared budget would not have).
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn bucket_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if locks.len() > PRUNE_AT {
            // Locks nobody holds or waits for can go.
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(key.to_owned()).or_default().clone()
    }

    async fn shared(
        &self,
        key: &str,
        cost: u64,
        quota: &Quota,
        now_ms: i64,
    ) -> Result<Decision, redis::RedisError> {
        let lock = self.bucket_lock(key);
        let _serialized = lock.lock().await;
        let mut conn = self.conn.clone();
        for _ in 0..CAS_ATTEMPTS {
            let current: Option<String> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
            let stored = current.as_deref().and_then(|v| v.parse::<i64>().ok());
            let decision = gcra::check(quota, stored, now_ms, cost);
            let Decision::Allow { tat_ns, .. } = decision else {
                return Ok(decision);
            };
            let expire_at = gcra::idle_at_ms(tat_ns).max(now_ms + 1);
            let won: i64 = self
                .cas
                .key(key)
                .arg(current.unwrap_or_default())
                .arg(tat_ns)
                .arg(expire_at)
                .invoke_async(&mut conn)
                .await?;
            if won == 1 {
                return Ok(decision);
            }
        }
        Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "rate limit bucket too contended",
        )))
    }

    /// The refund as a compare-and-set, like an admission.
    async fn give_back(
        &self,
        key: &str,
        cost: u64,
        quota: &Quota,
        now_ms: i64,
    ) -> Result<(), redis::RedisError> {
        let lock = self.bucket_lock(key);
        let _serialized = lock.lock().await;
        let mut conn = self.conn.clone();
        for _ in 0..CAS_ATTEMPTS {
            let current: Option<String> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
            let stored = current.as_deref().and_then(|v| v.parse::<i64>().ok());
            let Some(back) = gcra::refund(quota, stored, now_ms, cost) else {
                return Ok(());
            };
            let expire_at = gcra::idle_at_ms(back).max(now_ms + 1);
            let won: i64 = self
                .cas
                .key(key)
                .arg(current.unwrap_or_default())
                .arg(back)
                .arg(expire_at)
                .invoke_async(&mut conn)
                .await?;
            if won == 1 {
                return Ok(());
            }
        }
        Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "rate limit bucket too contended",
        )))
    }
}

/// Error texts of the redis client may quote the URL; never show its password.
fn redact(message: &str, url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => message.replace(&url[s + 3..at], "***"),
        _ => message.to_owned(),
    }
}

#[async_trait]
impl Limiter for RedisLimiter {
    async fn acquire(
        &self,
        bucket: &str,
        cost: u64,
        quota: &Quota,
        now_ms: i64,
    ) -> Result<Decision, LimitError> {
        let key = format!("{}:{bucket}", self.prefix);
        match self.shared(&key, cost, quota, now_ms).await {
            Ok(d) => Ok(d),
            Err(e) => {
                tracing::warn!(error = %e, "shared rate limiter unavailable; limiting locally");
                self.fallbacks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(self.fallback.decide(bucket, cost, quota, now_ms))
            }
        }
    }

    async fn refund(&self, bucket: &str, cost: u64, quota: &Quota, now_ms: i64) {
        // The local fallback may have admitted it; it only changes a
        // bucket it holds.
        self.fallback.give_back(bucket, cost, quota, now_ms);
        let key = format!("{}:{bucket}", self.prefix);
        if let Err(e) = self.give_back(&key, cost, quota, now_ms).await {
            tracing::warn!(error = %e, "shared rate limiter unavailable; refund dropped");
        }
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_costs_drain_the_bucket() {
        let l = LocalLimiter::default();
        let q = Quota::per_minute(100);
        let now = 1_700_000_000_000;
        assert!(l.decide("k:c", 60, &q, now).is_allowed());
        assert!(l.decide("k:c", 40, &q, now).is_allowed());
        assert!(matches!(
            l.decide("k:c", 10, &q, now),
            Decision::Deny { retry_after_ms } if retry_after_ms > 0
        ));
        // Another bucket is untouched.
        assert!(l.decide("k:other", 100, &q, now).is_allowed());
        // After the refill time the bucket admits again.
        assert!(l.decide("k:c", 10, &q, now + 6_000).is_allowed());
        assert_eq!(l.decide("k:c", 101, &q, now + 60_000), Decision::TooLarge);
    }

    #[test]
    fn idle_buckets_are_pruned() {
        let l = LocalLimiter {
            prune_at: 16,
            ..LocalLimiter::default()
        };
        let q = Quota::per_second(10);
        for i in 0..(SHARDS * 16 * 2) {
            let _ = l.decide(&format!("b{i}"), 1, &q, 1_000);
        }
        let before: usize = l.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        // Later traffic touches every shard, which drops the idle buckets.
        for i in 0..(SHARDS * 20) {
            let _ = l.decide(&format!("late{i}"), 1, &q, 100_000);
        }
        let idle_left: usize = l
            .shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap()
                    .keys()
                    .filter(|k| k.starts_with('b'))
                    .count()
            })
            .sum();
        assert!(
            idle_left < before / 10,
            "{before} idle buckets, {idle_left} left"
        );
    }
}
