//! An injectable clock, so that every time-dependent rule can be tested
//! without sleeping.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A source of wall-clock time.
///
/// Token lifetimes, key-set ages and cooldowns are all read through a `Clock`,
/// so tests can move time with [`ManualClock`] instead of sleeping.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The time elapsed since the Unix epoch.
    fn now(&self) -> Duration;

    /// Whole seconds since the Unix epoch, the unit of JWT `NumericDate`.
    fn now_secs(&self) -> u64 {
        self.now().as_secs()
    }
}

/// The system's wall clock.
///
/// On Linux it reads `CLOCK_REALTIME_COARSE`: the time of the kernel's last
/// tick (1 to 4 ms old), read in about 2 ns instead of about 30 ns for
/// [`std::time::SystemTime::now`]. Every rule that reads it counts in whole seconds
/// (JWT `NumericDate`) or in seconds of cooldown and refresh, so a tick of
/// staleness changes nothing; the cached paths read the clock on every
/// request, where the 30 ns were the largest single cost. Elsewhere it is
/// [`std::time::SystemTime::now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn now(&self) -> Duration {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        match (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
            (Ok(secs), Ok(nanos)) => Duration::new(secs, nanos),
            _ => Duration::ZERO,
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn now(&self) -> Duration {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }
}

/// A clock that only moves when told to. Clones share the same time.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use svcauth_core::{Clock, ManualClock};
///
/// let clock = ManualClock::at_secs(1_700_000_000);
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(clock.now_secs(), 1_700_000_030);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `secs` seconds after the Unix epoch.
    pub fn at_secs(secs: u64) -> Self {
        ManualClock {
            millis: Arc::new(AtomicU64::new(secs.saturating_mul(1000))),
        }
    }

    /// A clock standing at the current system time.
    pub fn starting_now() -> Self {
        let now = SystemClock.now();
        ManualClock {
            millis: Arc::new(AtomicU64::new(now.as_millis() as u64)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.millis
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// Sets the clock to `secs` seconds after the Unix epoch.
    pub fn set_secs(&self, secs: u64) {
        self.millis
            .store(secs.saturating_mul(1000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

/// A shared, dynamically typed clock, as held by caches and verifiers.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock as a [`SharedClock`].
pub fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod system_clock_tests {
    use super::*;

    #[test]
    fn system_clock_agrees_with_the_precise_clock_within_a_tick() {
        for _ in 0..100 {
            let before = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            let coarse = SystemClock.now();
            let after = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            // The coarse clock may lag by one kernel tick (at most 10 ms even
            // at HZ=100), and is never ahead of a later precise reading.
            assert!(coarse <= after, "{coarse:?} > {after:?}");
            assert!(before - coarse.min(before) < Duration::from_millis(10));
            assert!(coarse.as_secs() > 1_700_000_000);
        }
    }
}
