//! Generic Cell Rate Algorithm (GCRA) as a pure function.
//!
//! GCRA is a token bucket stored as a single number: the *theoretical arrival
//! time* (TAT), the instant at which the bucket would be full again. One
//! value per key (IP, API key × chain, ...) is all the state, which makes it
//! cheap to keep in memory, in SQL or in Redis, and to update with one
//! compare-and-set. Used for login throttling (20/min per IP) and for the RPC
//! edge's compute-unit limits, where a request's `cost` is its weight.
//!
//! # Units
//!
//! - `now` is Unix **milliseconds** (like [`crate::Timestamp`]).
//! - The stored TAT is Unix **nanoseconds** (`tat_ns`). A finer unit than
//!   `now` is deliberate: an emission interval such as 1000 ms / 3 is not a
//!   whole number of milliseconds, and rounding it to milliseconds on every
//!   request would drift (e.g. 330 CU/s would enforce 250 CU/s). In
//!   nanoseconds the interval is rounded *up* by under 1 ns, so the enforced
//!   rate never exceeds the nominal one and falls short by under one part in
//!   a million for any rate up to 1000/s. An `i64` of nanoseconds lasts until
//!   the year 2262.
//! - Treat `tat_ns` as opaque: store it and pass it back. To expire stored
//!   state use [`idle_at_ms`].
//! - `retry_after_ms` is rounded up, so waiting exactly that long suffices.
//!
//! Requests arrive on a millisecond clock, so with `burst = 1` (no slack)
//! each gap is effectively rounded up to whole milliseconds; any burst of 2
//! or more absorbs that and the long-run rate is the nominal one.

use std::cmp::max;

const NANOS_PER_MS: i128 = 1_000_000;

/// A rate limit: `per_period` units per `period_ms`, with up to `burst` units
/// admitted at once (the bucket size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub per_period: u64,
    pub period_ms: u64,
    pub burst: u64,
}

/// A quota that cannot describe a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("quota rate must be positive (per_period > 0)")]
    ZeroRate,
    #[error("quota period must be positive (period_ms > 0)")]
    ZeroPeriod,
    #[error("quota burst must be at least 1")]
    ZeroBurst,
}

impl Quota {
    /// A validated quota.
    pub const fn new(per_period: u64, period_ms: u64, burst: u64) -> Result<Self, QuotaError> {
        let q = Self {
            per_period,
            period_ms,
            burst,
        };
        match q.problem() {
            Some(e) => Err(e),
            None => Ok(q),
        }
    }

    /// `n` per second, burst `n`.
    pub const fn per_second(n: u64) -> Self {
        Self {
            per_period: n,
            period_ms: 1_000,
            burst: n,
        }
    }

    /// `n` per minute, burst `n` (a full minute's worth may arrive at once).
    pub const fn per_minute(n: u64) -> Self {
        Self {
            per_period: n,
            period_ms: 60_000,
            burst: n,
        }
    }

    /// The same rate with a different burst.
    pub const fn with_burst(self, burst: u64) -> Self {
        Self { burst, ..self }
    }

    /// What makes this quota unusable, if anything.
    pub const fn problem(&self) -> Option<QuotaError> {
        if self.per_period == 0 {
            Some(QuotaError::ZeroRate)
        } else if self.period_ms == 0 {
            Some(QuotaError::ZeroPeriod)
        } else if self.burst == 0 {
            Some(QuotaError::ZeroBurst)
        } else {
            None
        }
    }

    pub const fn is_valid(&self) -> bool {
        self.problem().is_none()
    }

    /// Nanoseconds between unit-cost arrivals at the sustained rate, rounded
    /// up (never admits faster than nominal). `u128::MAX` for a zero rate;
    /// `0` for a zero period (such a quota is invalid and [`check`] refuses
    /// it anyway). At least 1 for every valid quota.
    pub const fn emission_interval_ns(&self) -> u128 {
        if self.per_period == 0 {
            return u128::MAX;
        }
        let period_ns = self.period_ms as u128 * NANOS_PER_MS as u128;
        period_ns.div_ceil(self.per_period as u128)
    }
}

/// The outcome of one [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted. Store `tat_ns` (nanoseconds; see the module docs) as the
    /// key's new state. `remaining` is how many more unit-cost requests
    /// would be admitted at this same instant.
    Allow { tat_ns: i64, remaining: u64 },
    /// Refused for now; nothing to store. The same request is admitted after
    /// `retry_after_ms` (if nothing else is admitted on the key meanwhile).
    Deny { retry_after_ms: u64 },
    /// Can never be admitted, so waiting does not help: `cost > burst`, or
    /// the quota is invalid (fail closed). Reject it outright (e.g. a batch
    /// too large for the plan) instead of asking the client to retry.
    TooLarge,
}

impl Decision {
    pub const fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }
}

/// Decides whether a request of `cost` units may pass now, given the key's
/// stored TAT (`None` for a key never seen or whose state expired).
///
/// Virtual-scheduling GCRA with weights: with emission interval `T` and
/// tolerance `τ = burst·T`, the request moves the TAT to
/// `max(tat, now) + cost·T` and is admitted iff that is at most `now + τ`.
/// Hence at most `burst` units pass at one instant, and over any window `W`
/// at most `rate·W + burst` units pass. A `cost` of 0 is a probe: always
/// admitted, it reports `remaining` without consuming anything.
pub fn check(quota: &Quota, stored_tat_ns: Option<i64>, now_ms: i64, cost: u64) -> Decision {
    let now = i128::from(now_ms) * NANOS_PER_MS;
    let tat = stored_tat_ns.map_or(now, |t| max(i128::from(t), now));
    if !quota.is_valid() {
        return if cost == 0 {
            Decision::Allow {
                tat_ns: clamp_i64(tat),
                remaining: 0,
            }
        } else {
            Decision::TooLarge
        };
    }
    if cost > quota.burst {
        return Decision::TooLarge;
    }
    // Valid quota: 1 <= t <= u64::MAX * 10^6, so it fits an i128.
    let t = i128::try_from(quota.emission_interval_ns()).unwrap_or(i128::MAX);
    let tau = i128::from(quota.burst).saturating_mul(t);
    let new_tat = tat.saturating_add(i128::from(cost).saturating_mul(t));
    let allow_at = new_tat.saturating_sub(tau);
    if allow_at > now {
        let wait_ns = allow_at - now;
        let wait_ms = wait_ns.div_euclid(NANOS_PER_MS) + i128::from(wait_ns % NANOS_PER_MS != 0);
        return Decision::Deny {
            retry_after_ms: u64::try_from(wait_ms).unwrap_or(u64::MAX),
        };
    }
    let headroom = now.saturating_add(tau).saturating_sub(new_tat);
    let remaining = u64::try_from(max(headroom, 0) / t).unwrap_or(u64::MAX);
    Decision::Allow {
        tat_ns: clamp_i64(new_tat),
        remaining,
    }
}

/// Gives back `cost` units a [`check`] admitted but that were not used
/// (the call never reached an upstream): the TAT moves back by
/// `cost·T`, never before `now` (a bucket is never fuller than full).
/// Returns the TAT to store, or `None` when nothing is stored (no state is
/// no debt) or nothing changes.
pub fn refund(quota: &Quota, stored_tat_ns: Option<i64>, now_ms: i64, cost: u64) -> Option<i64> {
    let stored = i128::from(stored_tat_ns?);
    let now = i128::from(now_ms) * NANOS_PER_MS;
    if !quota.is_valid() || cost == 0 || stored <= now {
        return None;
    }
    let t = i128::try_from(quota.emission_interval_ns()).unwrap_or(i128::MAX);
    let back = stored.saturating_sub(i128::from(cost).saturating_mul(t));
    Some(clamp_i64(max(back, now)))
}

/// The instant (Unix ms) from which a stored TAT no longer affects any
/// decision: from then on `check` behaves exactly as for a fresh key, so the
/// state may be deleted (use it as a cache/Redis expiry).
pub const fn idle_at_ms(tat_ns: i64) -> i64 {
    tat_ns.div_euclid(NANOS_PER_MS as i64) + (tat_ns.rem_euclid(NANOS_PER_MS as i64) != 0) as i64
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds requests `(now_ms, cost)` through `check`, storing the TAT on
    /// every admission as a caller would. Returns each decision.
    fn run(quota: &Quota, start: Option<i64>, reqs: &[(i64, u64)]) -> (Option<i64>, Vec<Decision>) {
        let mut tat = start;
        let mut out = Vec::with_capacity(reqs.len());
        for &(now, cost) in reqs {
            let d = check(quota, tat, now, cost);
            if let Decision::Allow { tat_ns, .. } = d {
                tat = Some(tat_ns);
            }
            out.push(d);
        }
        (tat, out)
    }

    #[test]
    fn login_limit_twenty_per_minute() {
        let q = Quota::per_minute(20);
        let now = 1_700_000_000_000;
        let (tat, ds) = run(&q, None, &[(now, 1); 21]);
        assert!(ds[..20].iter().all(Decision::is_allowed));
        assert_eq!(
            ds[19],
            Decision::Allow {
                tat_ns: (now + 60_000) * 1_000_000,
                remaining: 0
            }
        );
        // One slot frees every 3 s.
        assert_eq!(
            ds[20],
            Decision::Deny {
                retry_after_ms: 3_000
            }
        );
        assert!(!check(&q, tat, now + 2_999, 1).is_allowed());
        assert!(check(&q, tat, now + 3_000, 1).is_allowed());
    }

    #[test]
    fn first_request_reports_remaining_burst() {
        let q = Quota::per_second(10).with_burst(5);
        assert_eq!(
            check(&q, None, 0, 1),
            Decision::Allow {
                tat_ns: 100_000_000,
                remaining: 4
            }
        );
        assert_eq!(
            check(&q, None, 0, 0),
            Decision::Allow {
                tat_ns: 0,
                remaining: 5
            }
        );
    }

    #[test]
    fn cost_above_burst_and_invalid_quotas_never_pass() {
        let q = Quota::per_second(100).with_burst(50);
        assert_eq!(check(&q, None, 0, 51), Decision::TooLarge);
        assert!(check(&q, None, 0, 50).is_allowed());
        for bad in [
            Quota {
                per_period: 0,
                period_ms: 1000,
                burst: 5,
            },
            Quota {
                per_period: 5,
                period_ms: 0,
                burst: 5,
            },
            Quota {
                per_period: 5,
                period_ms: 1000,
                burst: 0,
            },
        ] {
            assert!(Quota::new(bad.per_period, bad.period_ms, bad.burst).is_err());
            assert_eq!(check(&bad, None, 0, 1), Decision::TooLarge);
        }
        assert_eq!(Quota::new(20, 60_000, 20), Ok(Quota::per_minute(20)));
    }

    #[test]
    fn fractional_intervals_do_not_drift() {
        // 3 per second = 333.33 ms apart. Rounding the interval to whole ms
        // (334) would admit 10 780 in an hour; nanosecond TATs admit the
        // nominal 3 * 3600 plus the burst slack used at t = 0. (Burst 2: with
        // burst 1 the millisecond clock itself, not the TAT, quantizes each
        // gap up to whole ms.)
        let q = Quota::per_second(3).with_burst(2);
        let end = 3_600_000;
        let (mut tat, mut now, mut admitted) = (None, 0_i64, 0_u64);
        while now <= end {
            match check(&q, tat, now, 1) {
                Decision::Allow { tat_ns, .. } => {
                    admitted += 1;
                    tat = Some(tat_ns);
                }
                Decision::Deny { retry_after_ms } => now += retry_after_ms as i64,
                Decision::TooLarge => unreachable!(),
            }
        }
        assert_eq!(admitted, 10_801);
    }

    #[test]
    fn idle_at_rounds_up_and_matches_fresh_behaviour() {
        assert_eq!(idle_at_ms(3_000_000), 3);
        assert_eq!(idle_at_ms(3_000_001), 4);
        assert_eq!(idle_at_ms(-1), 0);
        let q = Quota::per_second(3).with_burst(2);
        let (tat, _) = run(&q, None, &[(0, 1), (0, 1)]);
        let Some(tat) = tat else {
            panic!("two requests within burst 2 must pass");
        };
        let idle = idle_at_ms(tat);
        assert_eq!(check(&q, Some(tat), idle, 2), check(&q, None, idle, 2));
        assert_ne!(
            check(&q, Some(tat), idle - 1, 2),
            check(&q, None, idle - 1, 2)
        );
    }

    #[test]
    fn a_refund_gives_back_what_was_taken_and_no_more() {
        let q = Quota::per_second(10).with_burst(5);
        let now = 1_000;
        let (tat, _) = run(&q, None, &[(now, 3)]);
        let Some(tat) = tat else {
            panic!("3 of 5 pass");
        };
        // 3 back: the bucket is full again, as if nothing happened.
        let back = refund(&q, Some(tat), now, 3);
        assert_eq!(back, Some(now * 1_000_000));
        assert_eq!(check(&q, back, now, 5), check(&q, None, now, 5));
        // More than was taken still stops at full.
        assert_eq!(refund(&q, Some(tat), now, 50), Some(now * 1_000_000));
        // Part of it: 1 unit (100 ms) back.
        assert_eq!(refund(&q, Some(tat), now, 1), Some(tat - 100_000_000));
        // Nothing stored, nothing owed, or already full: no write.
        assert_eq!(refund(&q, None, now, 1), None);
        assert_eq!(refund(&q, Some(tat), now, 0), None);
        assert_eq!(refund(&q, Some(tat), now + 1_000, 1), None);
    }

    fn quota() -> impl Strategy<Value = Quota> {
        (1u64..=1_000, 1u64..=120_000, 1u64..=64).prop_map(|(per_period, period_ms, burst)| Quota {
            per_period,
            period_ms,
            burst,
        })
    }

    /// A quota plus a request sequence with non-decreasing times; gaps are
    /// scaled to the emission interval so that both admits and denies occur.
    fn scenario() -> impl Strategy<Value = (Quota, Vec<(i64, u64)>)> {
        quota().prop_flat_map(|q| {
            let interval_ms = q.emission_interval_ns().div_ceil(1_000_000).max(1) as i64;
            let steps = prop::collection::vec((0..=interval_ms * 2, 1..=q.burst), 1..80);
            (Just(q), -1_000_000_000i64..1_000_000_000_000, steps).prop_map(|(q, t0, steps)| {
                let mut now = t0;
                let reqs = steps
                    .into_iter()
                    .map(|(gap, cost)| {
                        now += gap;
                        (now, cost)
                    })
                    .collect();
                (q, reqs)
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn at_most_burst_pass_at_one_instant(
            q in quota(),
            now in -1_000_000_000i64..1_000_000_000_000,
            offset in -10_000_000i64..10_000_000,
            fresh in any::<bool>(),
        ) {
            // Any prior state (a TAT in the past or ahead), then a flood.
            let start = if fresh { None } else { Some((now + offset) * 1_000_000) };
            let n = q.burst as usize + 10;
            let (_, ds) = run(&q, start, &vec![(now, 1); n]);
            let admitted = ds.iter().filter(|d| d.is_allowed()).count() as u64;
            prop_assert!(admitted <= q.burst);
            if fresh {
                prop_assert_eq!(admitted, q.burst);
            }
        }

        #[test]
        fn a_refunded_charge_leaves_no_trace(
            q in quota(),
            now in 0i64..1_000_000_000,
            offset in -10_000i64..10_000,
            cost in 1u64..=64,
            next in 0u64..=64,
        ) {
            let before = Some((now + offset) * 1_000_000);
            let Decision::Allow { tat_ns, .. } = check(&q, before, now, cost) else {
                return Ok(());
            };
            let after = refund(&q, Some(tat_ns), now, cost);
            prop_assert_eq!(check(&q, after, now, next), check(&q, before, now, next));
        }

        #[test]
        fn remaining_is_exact(q in quota(), now in 0i64..1_000_000_000, first in 1u64..=64) {
            let first = first.min(q.burst);
            let Decision::Allow { tat_ns, remaining } = check(&q, None, now, first) else {
                return Err(TestCaseError::fail("first request within burst must pass"));
            };
            prop_assert_eq!(remaining, q.burst - first);
            let (_, ds) = run(&q, Some(tat_ns), &vec![(now, 1); remaining as usize + 1]);
            prop_assert!(ds[..remaining as usize].iter().all(Decision::is_allowed));
            prop_assert!(!ds[remaining as usize].is_allowed());
        }

        #[test]
        fn spaced_at_the_emission_interval_all_pass(
            q in quota(),
            t0 in -1_000_000_000i64..1_000_000_000_000,
            n in 1usize..200,
        ) {
            // Times are whole ms, so the spacing is the interval rounded up.
            let interval_ms = q.emission_interval_ns().div_ceil(1_000_000) as i64;
            let reqs: Vec<_> = (0..n as i64).map(|i| (t0 + i * interval_ms, 1)).collect();
            let (_, ds) = run(&q, None, &reqs);
            prop_assert!(ds.iter().all(Decision::is_allowed));
        }

        #[test]
        fn waiting_retry_after_is_enough_and_necessary((q, reqs) in scenario()) {
            let mut tat = None;
            for &(now, cost) in &reqs {
                match check(&q, tat, now, cost) {
                    Decision::Allow { tat_ns, .. } => tat = Some(tat_ns),
                    Decision::Deny { retry_after_ms } => {
                        prop_assert!(retry_after_ms >= 1);
                        let later = now + retry_after_ms as i64;
                        prop_assert!(check(&q, tat, later, cost).is_allowed());
                        prop_assert!(!check(&q, tat, later - 1, cost).is_allowed());
                    }
                    Decision::TooLarge => prop_assert!(cost > q.burst),
                }
            }
        }

        #[test]
        fn never_more_than_rate_times_window_plus_burst((q, reqs) in scenario()) {
            let (_, ds) = run(&q, None, &reqs);
            let admitted: Vec<(i64, u64)> = reqs
                .iter()
                .zip(&ds)
                .filter(|(_, d)| d.is_allowed())
                .map(|(&r, _)| r)
                .collect();
            // Every window [a, b] between two admitted requests:
            // cost admitted * period <= per_period * (b - a) + burst * period.
            for i in 0..admitted.len() {
                let mut sum: u128 = 0;
                for &(b, cost) in &admitted[i..] {
                    sum += u128::from(cost);
                    let window = (b - admitted[i].0) as u128;
                    let limit = u128::from(q.per_period) * window
                        + u128::from(q.burst) * u128::from(q.period_ms);
                    prop_assert!(sum * u128::from(q.period_ms) <= limit);
                }
            }
        }

        #[test]
        fn oversized_requests_are_too_large_whatever_the_state(
            q in quota(),
            extra in 1u64..1_000,
            tat in proptest::option::of(any::<i64>()),
            now in any::<i64>(),
        ) {
            prop_assert_eq!(check(&q, tat, now, q.burst + extra), Decision::TooLarge);
        }

        #[test]
        fn probes_are_free(
            (q, reqs) in scenario(),
            probe_at in 0i64..1_000_000,
        ) {
            // A probe (cost 0) always passes, and storing its TAT changes
            // nothing that follows.
            let (tat, _) = run(&q, None, &reqs);
            let now = reqs.last().map_or(0, |r| r.0) + probe_at;
            let Decision::Allow { tat_ns, .. } = check(&q, tat, now, 0) else {
                return Err(TestCaseError::fail("probe refused"));
            };
            for cost in 1..=q.burst {
                prop_assert_eq!(check(&q, Some(tat_ns), now, cost), check(&q, tat, now, cost));
            }
        }
    }
}
