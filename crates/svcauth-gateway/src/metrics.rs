//! Counters of the gateway, for dashboards and tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Something the gateway counts.
#[derive(Clone, Copy)]
pub(crate) enum Event {
    Hit,
    NegativeHit,
    Miss,
    RateLimited,
    ClientRateLimited,
    ServerError,
    JwtRefused,
    JwtPassed,
}

impl Event {
    const ALL: [Event; 8] = [
        Event::Hit,
        Event::NegativeHit,
        Event::Miss,
        Event::RateLimited,
        Event::ClientRateLimited,
        Event::ServerError,
        Event::JwtRefused,
        Event::JwtPassed,
    ];

    /// The `event` label of `svcauth_gateway_events_total`.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn as_str(self) -> &'static str {
        match self {
            Event::Hit => "hit",
            Event::NegativeHit => "negative_hit",
            Event::Miss => "miss",
            Event::RateLimited => "rate_limited",
            Event::ClientRateLimited => "client_rate_limited",
            Event::ServerError => "server_error",
            Event::JwtRefused => "jwt_refused",
            Event::JwtPassed => "jwt_passed",
        }
    }
}

/// The gateway's counters, and the same through the `metrics` facade
/// (feature `metrics`): `svcauth_gateway_events_total{event}` and
/// `svcauth_gateway_exchange_duration_seconds`, registered when the gateway
/// is built.
pub(crate) struct Counters {
    events: [AtomicU64; Event::ALL.len()],
    latency_us_total: AtomicU64,
    latency_us_max: AtomicU64,
    #[cfg(feature = "metrics")]
    facade: ([metrics::Counter; Event::ALL.len()], metrics::Histogram),
}

impl Counters {
    pub(crate) fn new() -> Self {
        Counters {
            events: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_us_total: AtomicU64::new(0),
            latency_us_max: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            facade: (
                Event::ALL.map(
                    |e| metrics::counter!("svcauth_gateway_events_total", "event" => e.as_str()),
                ),
                metrics::histogram!("svcauth_gateway_exchange_duration_seconds"),
            ),
        }
    }

    pub(crate) fn count(&self, event: Event) {
        self.events[event as usize].fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.facade.0[event as usize].increment(1);
    }

    pub(crate) fn record_latency(&self, latency: Duration) {
        let us = latency.as_micros() as u64;
        self.latency_us_total.fetch_add(us, Ordering::Relaxed);
        self.latency_us_max.fetch_max(us, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.facade.1.record(latency);
    }

    pub(crate) fn snapshot(&self, entries: usize) -> GatewayMetrics {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let event = |e: Event| load(&self.events[e as usize]);
        GatewayMetrics {
            hits: event(Event::Hit),
            negative_hits: event(Event::NegativeHit),
            misses: event(Event::Miss),
            rate_limited: event(Event::RateLimited),
            client_rate_limited: event(Event::ClientRateLimited),
            server_errors: event(Event::ServerError),
            jwts_refused: event(Event::JwtRefused),
            jwts_passed: event(Event::JwtPassed),
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
