//! The one backoff rule: how long to wait after the n-th consecutive
//! failure. Every retry loop in Hood (saga steps, notification deliveries,
//! process restarts, agent reconnects, usage writes) asks this function, so
//! a policy reads the same everywhere and is tested once.
//!
//! Pure: callers that want jitter pass the random draw in.

use std::time::Duration;

/// Exponential backoff: `initial × multiplier^(failures − 1)`, capped at
/// `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Wait after the first failure.
    pub initial: Duration,
    /// Growth per further failure; anything below 1 (or not finite) counts
    /// as 1.
    pub multiplier: f64,
    /// Longest wait; a `max` below `initial` counts as `initial`.
    pub max: Duration,
}

impl Backoff {
    /// Any exponential policy.
    pub const fn exponential(initial: Duration, multiplier: f64, max: Duration) -> Self {
        Self {
            initial,
            multiplier,
            max,
        }
    }

    /// Doubling from `initial` up to `max`.
    pub const fn doubling(initial: Duration, max: Duration) -> Self {
        Self::exponential(initial, 2.0, max)
    }

    /// The same wait every time.
    pub const fn constant(wait: Duration) -> Self {
        Self::exponential(wait, 1.0, wait)
    }

    /// The wait after `failures` consecutive failures (1-based; 0 counts as
    /// 1). Never panics: overflow saturates at the cap.
    pub fn delay(&self, failures: u32) -> Duration {
        let cap = self.max.max(self.initial);
        let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let multiplier = if self.multiplier.is_finite() && self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let secs = self.initial.as_secs_f64() * multiplier.powi(exponent);
        if !secs.is_finite() || secs >= cap.as_secs_f64() {
            return cap;
        }
        Duration::from_secs_f64(secs).min(cap)
    }

    /// [`Self::delay`] with "equal jitter": half of the wait is fixed, the
    /// other half scaled by `unit`, a random draw in `[0, 1)` supplied by
    /// the caller (values outside are clamped). Spreads the retries of many
    /// clients that failed together without ever retrying at once.
    pub fn jittered(&self, failures: u32, unit: f64) -> Duration {
        let full = self.delay(failures);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let half = full / 2;
        half + (full - half).mul_f64(unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn doubles_from_initial_and_caps() {
        let b = Backoff::doubling(S(1), S(60));
        let waits: Vec<u64> = (1..=8).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.delay(0), S(1), "0 failures counts as the first");
        assert_eq!(b.delay(u32::MAX), S(60));
    }

    #[test]
    fn fractional_growth_is_kept() {
        // The seeds' "waiting for an agent" preset: 5 s, ×1.5, 30 s.
        let b = Backoff::exponential(S(5), 1.5, S(30));
        assert_eq!(b.delay(2), Duration::from_millis(7500));
        assert_eq!(b.delay(3), Duration::from_millis(11250));
        assert_eq!(b.delay(6), S(30));
    }

    #[test]
    fn odd_policies_do_not_panic() {
        assert_eq!(Backoff::exponential(S(2), f64::NAN, S(10)).delay(5), S(2));
        assert_eq!(Backoff::exponential(S(2), 0.5, S(10)).delay(5), S(2));
        assert_eq!(Backoff::exponential(S(5), 2.0, S(1)).delay(3), S(5));
        assert_eq!(Backoff::constant(S(3)).delay(100), S(3));
        assert_eq!(
            Backoff::doubling(Duration::ZERO, S(1)).delay(9),
            Duration::ZERO
        );
    }

    #[test]
    fn jitter_keeps_half_and_stays_in_bounds() {
        let b = Backoff::doubling(S(4), S(60));
        assert_eq!(b.jittered(1, 0.0), S(2));
        assert_eq!(b.jittered(1, 1.0), S(4));
        assert_eq!(b.jittered(1, 0.5), S(3));
        assert_eq!(b.jittered(1, -3.0), S(2));
        assert_eq!(b.jittered(1, f64::NAN), S(2));
    }

    proptest! {
        #[test]
        fn monotone_and_capped(initial_ms in 0u64..100_000, max_ms in 0u64..1_000_000,
                               m in 1.0f64..4.0, n in 1u32..200) {
            let b = Backoff::exponential(Duration::from_millis(initial_ms), m, Duration::from_millis(max_ms));
            let cap = b.max.max(b.initial);
            prop_assert!(b.delay(n) <= b.delay(n + 1));
            prop_assert!(b.delay(n) <= cap);
            prop_assert!(b.delay(n) >= b.initial.min(cap));
        }

        #[test]
        fn jitter_between_half_and_full(n in 1u32..50, unit in 0.0f64..1.0) {
            let b = Backoff::doubling(Duration::from_millis(250), Duration::from_secs(30));
            let j = b.jittered(n, unit);
            prop_assert!(j >= b.delay(n) / 2 && j <= b.delay(n));
        }
    }
}
