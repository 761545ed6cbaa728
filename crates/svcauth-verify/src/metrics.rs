//! Counters by outcome and reason, cheap enough for every request.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::error::ErrorKind;
use crate::facade::Facade;

const STRIPES: usize = 8;
const SLOTS: usize = 2 + ErrorKind::ALL.len();
/// Accepted after a full verification; `accepted` is this plus the hits,
/// so that a cache hit costs one atomic add, not two.
const ACCEPTED_FRESH: usize = 0;
const CACHE_HITS: usize = 1;

/// Counters striped over cache lines, so that threads counting at once do
/// not fight over one line.
#[repr(align(128))]
struct Stripe([AtomicU64; SLOTS]);

pub(crate) struct Metrics {
    stripes: [Stripe; STRIPES],
    /// The same outcomes for the application's `metrics` recorder.
    pub(crate) facade: Facade,
}

fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static MINE: Cell<usize> = const { Cell::new(usize::MAX) });
    MINE.with(|mine| {
        if mine.get() == usize::MAX {
            mine.set(NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES);
        }
        mine.get()
    })
}

impl Metrics {
    /// Counters for a verifier trusting `issuers` (in the verifier's order).
    pub(crate) fn new(issuers: &[&str]) -> Self {
        Metrics {
            stripes: std::array::from_fn(|_| Stripe(std::array::from_fn(|_| AtomicU64::new(0)))),
            facade: Facade::new(issuers),
        }
    }

    fn add(&self, slot: usize) {
        self.stripes[stripe()].0[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// A token accepted, from the cache or not, of the `issuer`-th issuer.
    pub(crate) fn accepted(&self, cache_hit: bool, issuer: usize) {
        self.add(if cache_hit {
            CACHE_HITS
        } else {
            ACCEPTED_FRESH
        });
        self.facade.accepted(cache_hit, issuer);
    }

    pub(crate) fn rejected(&self, kind: ErrorKind) {
        if let Some(i) = ErrorKind::ALL.iter().position(|k| *k == kind) {
            self.add(2 + i);
            self.facade.rejected(i);
        }
    }

    fn sum(&self, slot: usize) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0[slot].load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn snapshot(&self) -> VerifierMetrics {
        VerifierMetrics {
            accepted: self.sum(ACCEPTED_FRESH) + self.sum(CACHE_HITS),
            cache_hits: self.sum(CACHE_HITS),
            rejected: ErrorKind::ALL
                .iter()
                .enumerate()
                .map(|(i, k)| (k.as_str(), self.sum(2 + i)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

/// Counts of verification outcomes since the verifier was built.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct VerifierMetrics {
    /// Tokens accepted (cache hits included).
    pub accepted: u64,
    /// Tokens accepted from the verification cache.
    pub cache_hits: u64,
    /// Rejections by [`ErrorKind::as_str`] reason.
    pub rejected: BTreeMap<&'static str, u64>,
}

/// When each rejection reason was last logged at `info`, and how many
/// rejections for it went unlogged since.
pub(crate) struct RejectionLog {
    last: [std::sync::atomic::AtomicU64; ErrorKind::ALL.len()],
    unlogged: [std::sync::atomic::AtomicU64; ErrorKind::ALL.len()],
}

impl Default for RejectionLog {
    fn default() -> Self {
        RejectionLog {
            last: std::array::from_fn(|_| Default::default()),
            unlogged: std::array::from_fn(|_| Default::default()),
        }
    }
}

impl RejectionLog {
    /// `Some(unlogged since the last line)` if `kind` may be logged at
    /// `now` (seconds), else `None` (and the rejection is counted).
    pub(crate) fn due(&self, kind: ErrorKind, now: u64) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let i = ErrorKind::ALL.iter().position(|k| *k == kind)?;
        let last = self.last[i].load(Relaxed);
        if now > last
            && self.last[i]
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            Some(self.unlogged[i].swap(0, Relaxed))
        } else {
            self.unlogged[i].fetch_add(1, Relaxed);
            None
        }
    }
}
