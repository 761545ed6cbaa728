//! The signer's counters: [`SignerMetrics`], and a striped counter for the
//! one every request increments.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

pub(crate) struct Counters {
    mints: AtomicU64,
    cache_hits: StripedCounter,
    refresh_failures: AtomicU64,
    facade: Facade,
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
    /// Counters for a signer whose token source is called `source`.
    pub(crate) fn new(source: &'static str) -> Self {
        Counters {
            mints: AtomicU64::new(0),
            cache_hits: StripedCounter::default(),
            refresh_failures: AtomicU64::new(0),
            facade: Facade::new(source),
        }
    }

    /// A token from the source for `audience`, which took `took`.
    pub(crate) fn minted(&self, audience: &str, took: Duration) {
        self.mints.fetch_add(1, Ordering::Relaxed);
        self.facade.minted(audience, took);
    }

    /// A request served from the token cache.
    pub(crate) fn cache_hit(&self) {
        self.cache_hits.add();
        self.facade.cache_hit();
    }

    /// A background refresh for `audience` that failed.
    pub(crate) fn refresh_failed(&self, audience: &str) {
        self.refresh_failures.fetch_add(1, Ordering::Relaxed);
        self.facade.refresh_failed(audience);
    }

    /// A snapshot.
    pub(crate) fn snapshot(&self) -> SignerMetrics {
        SignerMetrics {
            mints: self.mints.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.sum(),
            refresh_failures: self.refresh_failures.load(Ordering::Relaxed),
        }
    }
}

/// The same events through the `metrics` facade (feature `metrics`, on by
/// default): `svcauth_tokens_minted_total{audience, source}`,
/// `svcauth_mint_duration_seconds{source}`,
/// `svcauth_token_refresh_failures_total{audience}` and
/// `svcauth_token_cache_hits_total`. Audiences are the ones the signer is
/// configured to mint for (the origin map, allowed audiences, the resolver's
/// answers), never a value a request chose alone.
#[cfg(feature = "metrics")]
struct Facade {
    source: &'static str,
    cache_hits: metrics::Counter,
    mint_seconds: metrics::Histogram,
}

#[cfg(feature = "metrics")]
impl Facade {
    fn new(source: &'static str) -> Self {
        Facade {
            source,
            cache_hits: metrics::counter!("svcauth_token_cache_hits_total"),
            mint_seconds: metrics::histogram!("svcauth_mint_duration_seconds", "source" => source),
        }
    }

    /// Registered at each mint (minutes apart per audience), because
    /// audiences appear as the signer meets them.
    fn minted(&self, audience: &str, took: Duration) {
        metrics::counter!("svcauth_tokens_minted_total",
            "audience" => audience.to_owned(), "source" => self.source)
        .increment(1);
        self.mint_seconds.record(took);
    }

    fn cache_hit(&self) {
        self.cache_hits.increment(1);
    }

    fn refresh_failed(&self, audience: &str) {
        metrics::counter!("svcauth_token_refresh_failures_total", "audience" => audience.to_owned())
            .increment(1);
    }
}

/// Without the feature: nothing is recorded.
#[cfg(not(feature = "metrics"))]
struct Facade;

#[cfg(not(feature = "metrics"))]
impl Facade {
    fn new(_: &'static str) -> Self {
        Facade
    }
    fn minted(&self, _: &str, _: Duration) {}
    fn cache_hit(&self) {}
    fn refresh_failed(&self, _: &str) {}
}
