//! Hood's one clock.
//!
//! The domain never reads time; everything above it asks a [`Clock`]. Code
//! that can be judged in tests takes an injected `Arc<dyn Clock>` (a
//! [`ManualClock`] there, the [`SystemClock`] in production); code that only
//! stamps records calls [`now`], which is the system clock.
//!
//! Where replicas share a database, leases and due times are judged by the
//! database's clock instead (see `hood-store`), so clock skew between
//! replicas cannot shorten a lease.

use hood_domain::Timestamp;
use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        now()
    }
}

/// The system clock as a shared trait object, the default of every
/// injectable clock.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// Now, by the system clock, as Unix milliseconds. A clock before 1970
/// reads as 0; one past the year 292 million saturates.
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_millis(ms)
}

/// A timestamp as the standard library's time (for APIs that want one,
/// such as an e-mail's `Date` header). Instants before 1970 map to 1970.
pub fn to_system_time(at: Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(at.millis()).unwrap_or(0))
}

/// Another clock (the shared database's) read through a measured offset
/// from a local one: `now()` is the local clock plus the offset last
/// measured by [`AlignedClock::align`]. Replicas that align to one
/// database agree on the time up to the measurement's round trip, so skew
/// between their own clocks cannot shorten or stretch a lease they judge.
#[derive(Debug)]
pub struct AlignedClock {
    local: Arc<dyn Clock>,
    offset_ms: AtomicI64,
}

impl AlignedClock {
    /// Starts unaligned (offset 0) over `local`.
    pub fn over(local: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self {
            local,
            offset_ms: AtomicI64::new(0),
        })
    }

    /// Records that the reference clock read `reference` at about the
    /// midpoint of a round trip that started at local time `sent`: the
    /// offset is taken against that midpoint.
    pub fn align(&self, reference: Timestamp, sent: Timestamp) {
        let received = self.local.now();
        let midpoint = sent.millis() + (received.millis() - sent.millis()) / 2;
        self.offset_ms.store(
            reference.millis().saturating_sub(midpoint),
            Ordering::SeqCst,
        );
    }

    /// The local clock's reading now (to pass as `sent` to [`Self::align`]).
    pub fn local_now(&self) -> Timestamp {
        self.local.now()
    }

    /// How far the reference clock is ahead of the local one, in ms.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }
}

impl Clock for AlignedClock {
    fn now(&self) -> Timestamp {
        self.local.now().plus_millis(self.offset_ms())
    }
}

/// A clock that moves only when told to: deterministic tests of timeouts,
/// leases and accruals.
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: AtomicI64,
}

impl ManualClock {
    pub fn at(start: Timestamp) -> Arc<Self> {
        Arc::new(Self {
            millis: AtomicI64::new(start.millis()),
        })
    }

    pub fn set(&self, to: Timestamp) {
        self.millis.store(to.millis(), Ordering::SeqCst);
    }

    /// Moves the clock forward (saturating) and returns the new time.
    pub fn advance(&self, by: Duration) -> Timestamp {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let previous = self
            .millis
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |ms| {
                Some(ms.saturating_add(by))
            })
            .unwrap_or_else(|ms| ms);
        Timestamp::from_millis(previous.saturating_add(by))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_after_2020_and_monotone_enough() {
        let a = SystemClock.now();
        let b = now();
        assert!(a.millis() > 1_577_836_800_000, "{a:?}");
        assert!(b >= a);
    }

    #[test]
    fn timestamps_convert_to_system_time() {
        let t = to_system_time(Timestamp::from_millis(1_500));
        assert_eq!(
            t.duration_since(UNIX_EPOCH).ok(),
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(to_system_time(Timestamp::from_millis(-5)), UNIX_EPOCH);
    }

    #[test]
    fn aligned_clocks_of_skewed_hosts_agree() {
        let reference = ManualClock::at(Timestamp::from_millis(1_000_000));
        let ahead = ManualClock::at(Timestamp::from_millis(1_000_000 + 3_600_000));
        let behind = ManualClock::at(Timestamp::from_millis(1_000_000 - 90_000));
        let a = AlignedClock::over(ahead.clone());
        let b = AlignedClock::over(behind.clone());
        for c in [&a, &b] {
            let sent = c.local_now();
            c.align(reference.now(), sent);
        }
        assert_eq!(a.now(), reference.now());
        assert_eq!(b.now(), reference.now());
        // Time passes everywhere at the same rate: they keep agreeing.
        for m in [&reference, &ahead, &behind] {
            m.advance(Duration::from_secs(7));
        }
        assert_eq!(a.now(), b.now());
        assert_eq!(a.offset_ms(), -3_600_000);
        // The reading is taken against the middle of the round trip.
        let c = AlignedClock::over(ManualClock::at(Timestamp::from_millis(10_000)));
        let sent = Timestamp::from_millis(9_000);
        c.align(Timestamp::from_millis(50_000), sent);
        assert_eq!(c.offset_ms(), 50_000 - 9_500);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at(Timestamp::from_millis(1_000));
        assert_eq!(c.now(), Timestamp::from_millis(1_000));
        assert_eq!(
            c.advance(Duration::from_secs(2)),
            Timestamp::from_millis(3_000)
        );
        assert_eq!(c.now(), Timestamp::from_millis(3_000));
        c.set(Timestamp::from_millis(i64::MAX - 1));
        assert_eq!(c.advance(Duration::from_secs(9)).millis(), i64::MAX);
        let shared: Arc<dyn Clock> = c;
        assert_eq!(shared.now().millis(), i64::MAX);
    }
}
