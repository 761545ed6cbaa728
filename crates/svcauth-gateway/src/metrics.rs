//! Counters of the gateway, for dashboards and tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) negative_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) client_rate_limited: AtomicU64,
    pub(crate) server_errors: AtomicU64,
    pub(crate) jwts_refused: AtomicU64,
    pub(crate) jwts_passed: AtomicU64,
    latency_us_total: AtomicU64,
    latency_us_max: AtomicU64,
}

impl Counters {
    pub(crate) fn record_latency(&self, latency: Duration) {
        let us = latency.as_micros() as u64;
        self.latency_us_total.fetch_add(us, Ordering::Relaxed);
        self.latency_us_max.fetch_max(us, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, entries: usize) -> GatewayMetrics {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        GatewayMetrics {
            hits: load(&self.hits),
            negative_hits: load(&self.negative_hits),
            misses: load(&self.misses),
            rate_limited: load(&self.rate_limited),
            client_rate_limited: load(&self.client_rate_limited),
            server_errors: load(&self.server_errors),
            jwts_refused: load(&self.jwts_refused),
            jwts_passed: load(&self.jwts_passed),
            exchange_latency_total: Duration::from_micros(load(&self.latency_us_total)),
            exchange_latency_max: Duration::from_micros(load(&self.latency_us_max)),
            entries,
        }
    }
}

/// What the gateway has done since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayMetrics {
    /// Requests answered from a cached swap (including those that waited
    /// for a swap in flight).
    pub hits: u64,
    /// Requests answered from a cached "inactive".
    pub negative_hits: u64,
    /// Questions asked of the authorization server (exchanges or
    /// introspections).
    pub misses: u64,
    /// Misses refused by the rate limit (nothing asked).
    pub rate_limited: u64,
    /// Misses refused by a client's own budget (nothing asked, 429).
    pub client_rate_limited: u64,
    /// Questions that failed on the server's side (503s).
    pub server_errors: u64,
    /// JWTs presented at the edge and refused.
    pub jwts_refused: u64,
    /// JWTs presented at the edge and passed through.
    pub jwts_passed: u64,
    /// Time spent asking, summed over all misses.
    pub exchange_latency_total: Duration,
    /// The slowest question.
    pub exchange_latency_max: Duration,
    /// Cache entries now (positive and negative).
    pub entries: usize,
}

impl GatewayMetrics {
    /// Mean time of one question to the authorization server.
    pub fn exchange_latency_mean(&self) -> Option<Duration> {
        let nanos = self.exchange_latency_total.as_nanos() / u128::from(self.misses.max(1));
        (self.misses > 0).then(|| Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)))
    }
}
