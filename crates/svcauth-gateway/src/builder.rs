//! [`GatewayBuilder`]: the configuration of a [`Gateway`], each default set
//! and explained here.

use std::fmt;
use std::time::Duration;

use svcauth_core::{SharedClock, system_clock};
use svcauth_jwks::KeySource;

use crate::cache::SwapCache;
use crate::error::ConfigError;
use crate::gateway::{Gateway, Inner, Mode};
use crate::headers::IDENTITY_HEADERS;
use crate::limiter::{ClientLimiter, MissLimiter};
use crate::metrics::Counters;

/// How long a swap is reused at most, whatever the token's own expiry:
/// 5 minutes. This is also how long a token revoked at the authorization
/// server keeps working at the edge.
pub(crate) const DEFAULT_MAX_TTL: Duration = Duration::from_secs(300);
/// How long an inactive or unknown reference token is remembered: 30 s.
pub(crate) const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// How long an authorization-server failure is shared by the requests for
/// the same token (and announced in `Retry-After`): 2 s.
pub(crate) const DEFAULT_FAILURE_TTL: Duration = Duration::from_secs(2);
/// Entries kept at most (positive and negative): 100,000.
pub(crate) const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// Cache misses allowed per second, sustained: 50.
pub(crate) const DEFAULT_MISS_RATE: u32 = 50;
/// Cache misses allowed at once above the sustained rate: 100.
pub(crate) const DEFAULT_MISS_BURST: u32 = 100;
/// An exchanged JWT stops being forwarded this long before its `exp` (or a
/// quarter of its lifetime, if less), so it never arrives expired.
pub(crate) const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// The longest reference token looked at: 4 KiB.
pub(crate) const MAX_TOKEN_BYTES: usize = 4096;
/// The shortest: no authorization server issues reference tokens shorter
/// than 8 characters, so shorter ones are junk, refused without asking.
pub(crate) const MIN_TOKEN_BYTES: usize = 8;
/// Cache misses allowed per second to one client (by address), sustained: 5.
pub(crate) const DEFAULT_CLIENT_MISS_RATE: u32 = 5;
/// Cache misses allowed at once to one client above that rate: 20.
pub(crate) const DEFAULT_CLIENT_MISS_BURST: u32 = 20;

/// Configuration of a [`Gateway`]; every setting has a safe default.
#[must_use]
pub struct GatewayBuilder {
    mode: Mode,
    max_ttl: Duration,
    negative_ttl: Duration,
    failure_ttl: Duration,
    max_entries: usize,
    miss_rate: u32,
    miss_burst: u32,
    pass_through_jwts: bool,
    strip: Vec<String>,
    client_miss: Option<(u32, u32)>,
    client_header: Option<String>,
    clock: SharedClock,
    txn: Option<crate::txn::TransactionTokenService>,
}

impl GatewayBuilder {
    pub(crate) fn new(mode: Mode) -> Self {
        GatewayBuilder {
            mode,
            max_ttl: DEFAULT_MAX_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            failure_ttl: DEFAULT_FAILURE_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
            miss_rate: DEFAULT_MISS_RATE,
            miss_burst: DEFAULT_MISS_BURST,
            pass_through_jwts: false,
            strip: IDENTITY_HEADERS.iter().map(|h| (*h).to_owned()).collect(),
            client_miss: Some((DEFAULT_CLIENT_MISS_RATE, DEFAULT_CLIENT_MISS_BURST)),
            client_header: None,
            clock: system_clock(),
            txn: None,
        }
    }

    /// Mints a Transaction Token for every request let in, from what the
    /// swap said of the user (`sub`, `scope`, chosen claims as `tctx`) and
    /// of the request (`rctx`: `req_ip`, `req_method`, `req_path`, and
    /// with introspection the token's `client_id`), and forwards it in the `Txn-Token` header. A token
    /// with no subject or no scope is refused (403): the draft never lets
    /// an unknown scope pass as unconstrained.
    pub fn txn_token_service(mut self, service: crate::txn::TransactionTokenService) -> Self {
        self.txn = Some(service);
        self
    }

    /// The longest a swap is reused (default 5 minutes): the
    /// bound on how long a token revoked at the authorization server still
    /// works here.
    pub fn max_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// How long an inactive or unknown token is remembered (default
    /// 30 s).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// How long an authorization-server failure is shared by requests for
    /// the same token, and the `Retry-After` announced (default
    /// 2 s).
    pub fn failure_ttl(mut self, ttl: Duration) -> Self {
        self.failure_ttl = ttl;
        self
    }

    /// Entries kept at most (default 100,000).
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max;
        self
    }

    /// Cache misses (questions to the authorization server) allowed per
    /// second, and at once above that (defaults 50,
    /// 100). A miss over the limit is answered 503 with
    /// `Retry-After` and asks nothing.
    pub fn miss_rate_limit(mut self, per_second: u32, burst: u32) -> Self {
        self.miss_rate = per_second;
        self.miss_burst = burst;
        self
    }

    /// Lets a JWT presented at the edge through unchanged, to be checked by
    /// the verifying layer behind. By default it is refused with 401: a
    /// client outside should hold only reference tokens.
    pub fn pass_through_jwts(mut self) -> Self {
        self.pass_through_jwts = true;
        self
    }

    /// Also removes `name` from requests before forwarding (on top of
    /// [`IDENTITY_HEADERS`]; `_` matches `-`, a trailing `*` any rest).
    pub fn strip_header(mut self, name: &str) -> Self {
        self.strip.push(name.to_ascii_lowercase());
        self
    }

    /// Cache misses allowed per second to one client, and at once above
    /// that (defaults 5,
    /// 20). A client over its budget gets 429
    /// with `Retry-After` and takes nothing from the overall
    /// [`miss_rate_limit`](Self::miss_rate_limit). The client is the peer
    /// address (`axum`'s `ConnectInfo`, or a [`crate::ClientAddr`] extension),
    /// or the header named by [`client_address_header`](Self::client_address_header).
    pub fn client_miss_rate_limit(mut self, per_second: u32, burst: u32) -> Self {
        self.client_miss = Some((per_second, burst));
        self
    }

    /// No per-client budget: only the overall miss rate limit applies.
    pub fn no_client_miss_rate_limit(mut self) -> Self {
        self.client_miss = None;
        self
    }

    /// Behind a trusted reverse proxy: the client is the last address in
    /// this header (`x-forwarded-for`, `x-real-ip`), which the proxy sets.
    /// Only when every request comes through that proxy: otherwise a client
    /// picks its own address.
    pub fn client_address_header(mut self, name: &str) -> Self {
        self.client_header = Some(name.to_ascii_lowercase());
        self
    }

    /// Introspection mode: accept only tokens whose answer names `audience`
    /// in `aud` (RFC 7662 §2.2), so that a token the same authorization
    /// server issued for another API is refused here. Without it, any
    /// active access token of the server passes.
    pub fn introspection_audience(mut self, audience: &str) -> Self {
        if let Mode::Introspection { audience: aud, .. } = &mut self.mode {
            *aud = Some(audience.to_owned());
        }
        self
    }

    /// Introspection mode: ask for RFC 9701 JWT answers and accept only
    /// those signed by `issuer`'s keys, addressed to this client.
    pub fn jwt_introspection_responses(mut self, issuer: &str, keys: KeySource) -> Self {
        if let Mode::Introspection { jwt, .. } = &mut self.mode {
            *jwt = Some((issuer.to_owned(), keys));
        }
        self
    }

    /// The clock for cache lifetimes and the rate limit (tests use
    /// [`svcauth_core::ManualClock`]).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the gateway.
    pub fn build(self) -> Result<Gateway, ConfigError> {
        if let Mode::Exchange { audience, .. } = &self.mode
            && audience.trim().is_empty()
        {
            return Err(ConfigError::Invalid("the internal audience is empty"));
        }
        if self.max_ttl.is_zero() {
            return Err(ConfigError::Invalid("max_ttl must be positive"));
        }
        if self.max_entries == 0 {
            return Err(ConfigError::Invalid("max_entries must be positive"));
        }
        if self.miss_rate == 0 || self.miss_burst == 0 {
            return Err(ConfigError::Invalid("the miss rate limit must be positive"));
        }
        for name in &self.strip {
            http::HeaderName::try_from(name.trim_end_matches('*'))
                .map_err(|_| ConfigError::HeaderName(name.clone()))?;
        }
        let client_header = self
            .client_header
            .as_deref()
            .map(|name| {
                http::HeaderName::try_from(name).map_err(|_| ConfigError::HeaderName(name.into()))
            })
            .transpose()?;
        if self
            .client_miss
            .is_some_and(|(rate, burst)| rate == 0 || burst == 0)
        {
            return Err(ConfigError::Invalid(
                "the per-client miss rate limit must be positive",
            ));
        }
        let now_ms = self.clock.now().as_millis() as u64;
        Ok(Gateway::from_inner(Inner {
            mode: self.mode,
            cache: SwapCache::new(self.max_entries),
            max_ttl: self.max_ttl,
            negative_ttl: self.negative_ttl,
            failure_ttl: self.failure_ttl,
            limiter: MissLimiter::new(self.miss_rate, self.miss_burst, now_ms),
            pass_through_jwts: self.pass_through_jwts,
            strip: self.strip.into(),
            client_limiter: self
                .client_miss
                .map(|(rate, burst)| ClientLimiter::new(rate, burst)),
            client_header,
            clock: self.clock,
            counters: Counters::new(),
            txn: self.txn,
        }))
    }
}

impl fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("max_ttl", &self.max_ttl)
            .field("negative_ttl", &self.negative_ttl)
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}
