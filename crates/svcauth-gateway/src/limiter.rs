//! The miss limiters: token buckets over the questions the gateway asks the
//! authorization server, one overall and one per client.

/// A token bucket over misses. Only misses reach it (a question to the
/// authorization server follows, which costs far more), so a short mutex is
/// fine here: it is never on the cache-hit path.
pub(crate) struct MissLimiter {
    /// Milli-tokens available, and when (ms) they were counted.
    state: std::sync::Mutex<(u64, u64)>,
    rate_per_s: u64,
    burst_milli: u64,
}

impl MissLimiter {
    pub(crate) fn new(rate: u32, burst: u32, now_ms: u64) -> Self {
        let burst_milli = u64::from(burst) * 1000;
        MissLimiter {
            state: std::sync::Mutex::new((burst_milli, now_ms)),
            rate_per_s: u64::from(rate),
            burst_milli,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_acquire(&self, now_ms: u64) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, at) = *state;
        // rate per second = rate milli-tokens per millisecond.
        let refill = now_ms.saturating_sub(at).saturating_mul(self.rate_per_s);
        let tokens = tokens.saturating_add(refill).min(self.burst_milli);
        let (left, granted) = if tokens >= 1000 {
            (tokens - 1000, true)
        } else {
            (tokens, false)
        };
        *state = (left, now_ms.max(at));
        granted
    }
}

/// One [`MissLimiter`] per client, for misses only (like the overall one,
/// never on the cache-hit path). At most [`MAX_CLIENTS`] are remembered;
/// when full, the map starts over, which can only give clients a fresh
/// burst: the overall limiter still bounds what reaches the server.
pub(crate) struct ClientLimiter {
    buckets: std::sync::Mutex<std::collections::HashMap<Box<str>, MissLimiter>>,
    rate: u32,
    burst: u32,
}

/// Clients remembered by the per-client limiter.
const MAX_CLIENTS: usize = 65_536;

impl ClientLimiter {
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        ClientLimiter {
            buckets: std::sync::Mutex::new(std::collections::HashMap::new()),
            rate,
            burst,
        }
    }

    pub(crate) fn try_acquire(&self, client: &str, now_ms: u64) -> bool {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !buckets.contains_key(client) && buckets.len() >= MAX_CLIENTS {
            buckets.clear();
        }
        buckets
            .entry(client.into())
            .or_insert_with(|| MissLimiter::new(self.rate, self.burst, now_ms))
            .try_acquire(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_has_its_own_miss_budget() {
        let limiter = ClientLimiter::new(1, 2);
        assert!(limiter.try_acquire("192.0.2.1", 1_000));
        assert!(limiter.try_acquire("192.0.2.1", 1_000));
        assert!(
            !limiter.try_acquire("192.0.2.1", 1_000),
            "its burst is spent"
        );
        assert!(
            limiter.try_acquire("192.0.2.2", 1_000),
            "another client is not"
        );
        assert!(limiter.try_acquire("192.0.2.1", 2_000), "refilled at 1/s");
    }

    #[test]
    fn the_miss_limiter_allows_the_burst_then_the_rate() {
        let limiter = MissLimiter::new(5, 3, 1_000);
        let granted = (0..10).filter(|_| limiter.try_acquire(1_000)).count();
        assert_eq!(granted, 3, "the burst");
        assert!(!limiter.try_acquire(1_100), "100 ms refill half a token");
        assert!(limiter.try_acquire(1_200), "200 ms refill one at 5/s");
        assert!(!limiter.try_acquire(1_200));
        // A long pause refills to the burst, not beyond.
        let granted = (0..10).filter(|_| limiter.try_acquire(60_000)).count();
        assert_eq!(granted, 3);
        // A clock that steps back grants nothing extra.
        assert!(!limiter.try_acquire(50_000));
    }
}
