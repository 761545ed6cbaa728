//! An injectable clock, so that every time-dependent rule can be tested
//! without sleeping.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
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
