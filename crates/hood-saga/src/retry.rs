//! Retry policies with exponential backoff (seed 001's Temporal policies).

use hood_domain::backoff::Backoff;
use std::time::Duration;

/// How often a step's action (or undo) is attempted and how long to wait
/// between attempts. The wait is durable: it is journaled as the run's
/// `next_run_at`, so the worker is freed and a restart does not reset it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Wait after the first failed attempt.
    pub initial: Duration,
    /// Growth factor of the wait per further failure.
    pub multiplier: f64,
    /// Cap on the wait.
    pub max: Duration,
}

impl RetryPolicy {
    /// Ordinary activities: 3 attempts, 1 s, ×2, at most 1 min.
    pub const DEFAULT: Self = Self {
        max_attempts: 3,
        initial: Duration::from_secs(1),
        multiplier: 2.0,
        max: Duration::from_secs(60),
    };

    /// Infrastructure (provider API, provisioning): 3 attempts, 10 s, ×2,
    /// at most 2 min.
    pub const INFRASTRUCTURE: Self = Self {
        max_attempts: 3,
        initial: Duration::from_secs(10),
        multiplier: 2.0,
        max: Duration::from_secs(120),
    };

    /// Waiting for an agent to register or answer: 20 attempts, 5 s, ×1.5,
    /// at most 30 s.
    pub const WAIT_FOR_AGENT: Self = Self {
        max_attempts: 20,
        initial: Duration::from_secs(5),
        multiplier: 1.5,
        max: Duration::from_secs(30),
    };

    /// A single attempt.
    pub const NO_RETRY: Self = Self {
        max_attempts: 1,
        initial: Duration::ZERO,
        multiplier: 1.0,
        max: Duration::ZERO,
    };

    /// Any policy, e.g. the small ones tests use.
    pub const fn new(max_attempts: u32, initial: Duration, multiplier: f64, max: Duration) -> Self {
        Self {
            max_attempts,
            initial,
            multiplier,
            max,
        }
    }

    /// Whether attempt number `attempt` (1-based) may be followed by another.
    pub const fn retries_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// Wait after attempt number `attempt` (1-based) failed:
    /// `min(initial × multiplier^(attempt-1), max)` (a `max` below `initial`
    /// counts as `initial`). Never panics: odd
    /// multipliers (negative, NaN) count as 1, overflow saturates at `max`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        Backoff::exponential(self.initial, self.multiplier, self.max).delay(attempt)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_policy_matches_the_seed() {
        let p = RetryPolicy::DEFAULT;
        assert_eq!(p.backoff(1), Duration::from_secs(1));
        assert_eq!(p.backoff(2), Duration::from_secs(2));
        assert_eq!(p.backoff(3), Duration::from_secs(4));
        assert_eq!(p.backoff(10), Duration::from_secs(60));
        assert!(p.retries_after(2));
        assert!(!p.retries_after(3));
    }

    #[test]
    fn infrastructure_and_agent_policies() {
        let p = RetryPolicy::INFRASTRUCTURE;
        assert_eq!(p.backoff(1), Duration::from_secs(10));
        assert_eq!(p.backoff(4), Duration::from_secs(80));
        assert_eq!(p.backoff(5), Duration::from_secs(120));
        let a = RetryPolicy::WAIT_FOR_AGENT;
        assert_eq!(a.backoff(1), Duration::from_secs(5));
        assert_eq!(a.backoff(2), Duration::from_secs_f64(7.5));
        assert_eq!(a.backoff(20), Duration::from_secs(30));
        assert!(a.retries_after(19));
        assert!(!a.retries_after(20));
    }

    #[test]
    fn no_retry_and_odd_multipliers() {
        assert!(!RetryPolicy::NO_RETRY.retries_after(1));
        let p = RetryPolicy::new(
            5,
            Duration::from_millis(10),
            f64::NAN,
            Duration::from_secs(1),
        );
        assert_eq!(p.backoff(4), Duration::from_millis(10));
        let p = RetryPolicy::new(5, Duration::from_millis(10), -3.0, Duration::from_secs(1));
        assert_eq!(p.backoff(4), Duration::from_millis(10));
    }

    proptest! {
        #[test]
        fn backoff_is_monotone_and_capped(
            initial_ms in 0u64..100_000,
            max_ms in 0u64..1_000_000,
            multiplier in 0.5f64..4.0,
            attempt in 1u32..200,
        ) {
            let p = RetryPolicy::new(
                10,
                Duration::from_millis(initial_ms),
                multiplier,
                Duration::from_millis(max_ms),
            );
            let cap = p.max.max(p.initial);
            let a = p.backoff(attempt);
            let b = p.backoff(attempt + 1);
            prop_assert!(a <= cap);
            prop_assert!(a <= b);
            prop_assert!(p.backoff(1) == p.initial.min(cap));
        }
    }
}
