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
