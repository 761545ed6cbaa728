//! The signer's counters: [`SignerMetrics`], and a striped counter for the
//! one every request increments.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of the signer's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SignerMetrics {
    /// Tokens minted or fetched from the source.
    pub mints: u64,
    /// Requests served from the token cache.
    pub cache_hits: u64,
    /// Background refreshes that failed (the cached token stayed in use).
    pub refresh_failures: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) mints: AtomicU64,
    pub(crate) cache_hits: StripedCounter,
    pub(crate) refresh_failures: AtomicU64,
}

/// A counter every request increments: one cache line per thread stripe, so
/// threads counting at once do not contend for one line.
#[derive(Default)]
pub(crate) struct StripedCounter([PaddedCounter; 8]);

#[derive(Default)]
#[repr(align(128))]
struct PaddedCounter(AtomicU64);

impl StripedCounter {
    pub(crate) fn add(&self) {
        use std::cell::Cell;
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        thread_local!(static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) });
        let stripe = STRIPE.with(|s| {
            if s.get() == usize::MAX {
                s.set(NEXT.fetch_add(1, Ordering::Relaxed) % 8);
            }
            s.get()
        });
        self.0[stripe].0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn sum(&self) -> u64 {
        self.0.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

impl Counters {
    /// A snapshot.
    pub(crate) fn snapshot(&self) -> SignerMetrics {
        SignerMetrics {
            mints: self.mints.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.sum(),
            refresh_failures: self.refresh_failures.load(Ordering::Relaxed),
        }
    }
}
