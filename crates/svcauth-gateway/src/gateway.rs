//! [`Gateway`]: the swap of one reference token, with its configuration
//! ([`GatewayBuilder`]), its cache and its limits. The tower layer
//! ([`crate::PhantomTokenLayer`]) is a thin shell around [`Gateway::swap`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::HeaderValue;
use svcauth_core::{SharedClock, system_clock};
use svcauth_jwks::KeySource;
use svcauth_sign::{OnBehalfOf, SignError, StsClient, TokenExchange, TokenRequest, TokenSource};

use crate::cache::{Digest, Outcome, SwapCache};
use crate::error::{ConfigError, SwapError};
use crate::introspection::{self, Introspected};
use crate::metrics::{Counters, GatewayMetrics};

/// How long a swap is reused at most, whatever the token's own expiry:
/// 5 minutes. This is also how long a token revoked at the authorization
/// server keeps working at the edge.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(300);
/// How long an inactive or unknown reference token is remembered: 30 s.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// How long an authorization-server failure is shared by the requests for
/// the same token (and announced in `Retry-After`): 2 s.
pub const DEFAULT_FAILURE_TTL: Duration = Duration::from_secs(2);
/// Entries kept at most (positive and negative): 100,000.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// Cache misses allowed per second, sustained: 50.
pub const DEFAULT_MISS_RATE: u32 = 50;
/// Cache misses allowed at once above the sustained rate: 100.
pub const DEFAULT_MISS_BURST: u32 = 100;
/// An exchanged JWT stops being forwarded this long before its `exp` (or a
/// quarter of its lifetime, if less), so it never arrives expired.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// The longest reference token looked at: 4 KiB.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// The shortest: no authorization server issues reference tokens shorter
/// than 8 characters, so shorter ones are junk, refused without asking.
pub const MIN_TOKEN_BYTES: usize = 8;
/// Cache misses allowed per second to one client (by address), sustained: 5.
pub const DEFAULT_CLIENT_MISS_RATE: u32 = 5;
/// Cache misses allowed at once to one client above that rate: 20.
pub const DEFAULT_CLIENT_MISS_BURST: u32 = 20;

/// Headers a client could use to claim an identity that internal services
/// might believe. They are removed from every request before it is
/// forwarded; [`GatewayBuilder::strip_header`] adds more.
///
/// Names are compared case-insensitively with `_` read as `-`, because CGI,
/// WSGI, PHP and Rack turn `X_Forwarded_User` into the same variable as
/// `X-Forwarded-User`. A name ending in `*` is a prefix: every header that
/// starts with it goes.
pub const IDENTITY_HEADERS: &[&str] = &[
    // oauth2-proxy, and proxies that copy its names.
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-forwarded-access-token",
    "x-auth-request-*",
    // Web servers, API gateways, Apache and friends.
    "x-authenticated-user",
    "x-authenticated-userid",
    "x-authenticated-groups",
    "x-authenticated-scope",
    "x-remote-user",
    "x-remote-group",
    "remote-user",
    "x-user",
    "x-user-id",
    "x-user-email",
    "x-userinfo",
    "x-client-id",
    "x-consumer-*",
    "x-credential-identifier",
    "x-jwt-assertion",
    "x-jwt-payload",
    "x-id-token",
    "x-access-token",
    "x-introspection",
    "x-webauth-user",
    "x-ssl-client-*",
    // AWS ALB, Google IAP, Cloudflare Access, Azure App Service / Easy Auth.
    "x-amzn-oidc-*",
    "x-goog-authenticated-user-*",
    "x-goog-iap-jwt-assertion",
    "cf-access-*",
    "cf-access-jwt-assertion",
    "x-ms-client-principal*",
    "x-ms-token-*",
    // Credentials for a proxy are never the upstream's business.
    "proxy-authorization",
];

/// Whether the header `name` is named by `pattern` (from
/// [`IDENTITY_HEADERS`] or [`GatewayBuilder::strip_header`]): ASCII case
/// ignored, `_` read as `-`, a trailing `*` matching any rest.
pub(crate) fn header_matches(pattern: &str, name: &str) -> bool {
    let normal = |b: u8| match b {
        b'_' => b'-',
        b => b.to_ascii_lowercase(),
    };
    let (pattern, prefix) = match pattern.strip_suffix('*') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    if prefix {
        n.len() >= p.len() && p.iter().zip(n).all(|(a, b)| normal(*a) == normal(*b))
    } else {
        n.len() == p.len() && p.iter().zip(n).all(|(a, b)| normal(*a) == normal(*b))
    }
}

/// What a swap does with an active reference token.
#[derive(Clone)]
enum Mode {
    /// RFC 8693 token exchange for a JWT addressed to `audience`, forwarded.
    Exchange {
        source: TokenExchange,
        audience: String,
    },
    /// RFC 7662 introspection; the claims go into the request's extensions
    /// and no token is forwarded. With `jwt`, answers must be RFC 9701 JWTs
    /// signed by that issuer's keys.
    Introspection {
        sts: StsClient,
        endpoint: String,
        jwt: Option<(String, KeySource)>,
        audience: Option<String>,
    },
}

/// The result of a successful swap.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Swapped {
    /// The `Authorization` value to forward: `Bearer <internal JWT>`.
    Jwt(HeaderValue),
    /// What introspection said of the token (validation-only mode).
    Introspected(Introspected),
}

/// The phantom-token swap, shared by every clone (an `Arc` inside).
///
/// * Token exchange ([`Gateway::token_exchange`]): an active reference
///   token becomes a JWT for the internal audience (`sub` = the token's
///   subject, `act` = the gateway), which replaces the `Authorization`
///   header.
/// * Introspection ([`Gateway::introspection`]): validation only; the
///   claims go into the request's extensions as [`Introspected`].
///
/// Swaps are cached under a SHA-256 of the reference token (the token is
/// never stored, nor logged), until the earlier of the JWT's `exp` (less
/// [`EXPIRY_MARGIN`]) and [`max_ttl`](GatewayBuilder::max_ttl): revocation
/// at the authorization server takes effect at the edge within that time.
/// Inactive tokens are cached as negative results; misses are single-flight
/// per token and rate-limited overall.
///
/// See the crate docs for an example.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    mode: Mode,
    cache: SwapCache,
    max_ttl: Duration,
    negative_ttl: Duration,
    failure_ttl: Duration,
    limiter: MissLimiter,
    pass_through_jwts: bool,
    strip: Arc<[String]>,
    client_limiter: Option<ClientLimiter>,
    client_header: Option<http::HeaderName>,
    clock: SharedClock,
    counters: Counters,
}

impl Gateway {
    /// A gateway that exchanges reference tokens at `sts` (RFC 8693) for
    /// JWTs addressed to `audience`, the internal audience.
    pub fn token_exchange(sts: StsClient, audience: &str) -> GatewayBuilder {
        GatewayBuilder::new(Mode::Exchange {
            source: TokenExchange::new(sts),
            audience: audience.to_owned(),
        })
    }

    /// A validation-only gateway: reference tokens are checked by RFC 7662
    /// introspection at `endpoint` (https, or http to loopback), the
    /// gateway authenticated as `sts`'s client.
    pub fn introspection(sts: StsClient, endpoint: &str) -> GatewayBuilder {
        GatewayBuilder::new(Mode::Introspection {
            sts,
            endpoint: endpoint.to_owned(),
            jwt: None,
            audience: None,
        })
    }

    /// The counters since start.
    pub fn metrics(&self) -> GatewayMetrics {
        self.inner.counters.snapshot(self.inner.cache.len())
    }

    /// Whether JWTs at the edge go through unchanged (else they are refused).
    pub fn passes_through_jwts(&self) -> bool {
        self.inner.pass_through_jwts
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Whether a request header is one a client could forge an identity
    /// with ([`IDENTITY_HEADERS`], [`GatewayBuilder::strip_header`]).
    pub(crate) fn strips(&self, name: &str) -> bool {
        self.inner.strip.iter().any(|p| header_matches(p, name))
    }

    /// The header a trusted proxy in front puts the client's address in.
    pub(crate) fn client_header(&self) -> Option<&http::HeaderName> {
        self.inner.client_header.as_ref()
    }

    fn now_ms(&self) -> u64 {
        self.inner.clock.now().as_millis() as u64
    }

    /// Swaps one reference token: from the cache, or by asking the
    /// authorization server once however many requests carry the token.
    pub async fn swap(&self, reference: &str) -> Result<Swapped, SwapError> {
        self.swap_for(reference, None).await
    }

    /// [`swap`](Gateway::swap) for a request from `client` (its address, as
    /// the layer finds it): a cache miss first takes from that client's own
    /// budget ([`GatewayBuilder::client_miss_rate_limit`]), so that one
    /// client sending junk cannot spend everyone's share of questions to
    /// the authorization server.
    pub async fn swap_for(
        &self,
        reference: &str,
        client: Option<&str>,
    ) -> Result<Swapped, SwapError> {
        if reference.len() > MAX_TOKEN_BYTES || reference.len() < MIN_TOKEN_BYTES {
            return Err(SwapError::Malformed);
        }
        let digest = Digest::of(reference);
        let inner = &self.inner;
        // The cache never hands out a slot whose answer has expired at `now`.
        let slot = inner.cache.slot(digest, self.now_ms());
        if let Some(outcome) = slot.get() {
            return self.answer(outcome, true);
        }
        if let (Some(limiter), Some(client)) = (&inner.client_limiter, client)
            && !limiter.try_acquire(client, self.now_ms())
        {
            inner
                .counters
                .client_rate_limited
                .fetch_add(1, Ordering::Relaxed);
            return Err(SwapError::ClientRateLimited);
        }
        let mut resolved_here = false;
        let outcome = slot
            .get_or_init(|| {
                resolved_here = true;
                self.resolve(reference)
            })
            .await;
        self.answer(outcome, !resolved_here)
    }

    fn answer(&self, outcome: &Outcome, hit: bool) -> Result<Swapped, SwapError> {
        let counters = &self.inner.counters;
        match outcome {
            Outcome::Active { swapped, .. } => {
                if hit {
                    counters.hits.fetch_add(1, Ordering::Relaxed);
                }
                Ok(swapped.clone())
            }
            Outcome::Inactive { .. } => {
                if hit {
                    counters.negative_hits.fetch_add(1, Ordering::Relaxed);
                }
                Err(SwapError::Inactive)
            }
            Outcome::Unavailable { retry_after, .. } => Err(SwapError::Unavailable {
                retry_after: *retry_after,
            }),
            Outcome::Limited => Err(SwapError::RateLimited),
        }
    }

    /// Asks the authorization server, within the miss rate limit.
    async fn resolve(&self, reference: &str) -> Outcome {
        let inner = &self.inner;
        let now = self.now_ms();
        if !inner.limiter.try_acquire(now) {
            inner.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Outcome::Limited;
        }
        inner.counters.misses.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!(
            "svcauth.gateway.swap",
            mode = self.mode_name(),
            outcome = tracing::field::Empty,
            latency_us = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = tracing::Instrument::instrument(self.ask(reference), span.clone()).await;
        let latency = started.elapsed();
        inner.counters.record_latency(latency);
        let now = self.now_ms();
        let max_until = now + inner.max_ttl.as_millis() as u64;
        let outcome = match result {
            Ok((swapped, expires_at_ms)) => Outcome::Active {
                swapped,
                until: expires_at_ms.min(max_until),
            },
            Err(SwapError::Inactive) => Outcome::Inactive {
                until: now + inner.negative_ttl.as_millis() as u64,
            },
            Err(error) => {
                inner.counters.server_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "authorization server unavailable for a swap");
                Outcome::Unavailable {
                    until: now + inner.failure_ttl.as_millis() as u64,
                    retry_after: inner.failure_ttl.as_secs().max(1),
                }
            }
        };
        span.record("outcome", outcome.name());
        span.record("latency_us", latency.as_micros() as u64);
        tracing::debug!(parent: &span, "swap done");
        outcome
    }

    fn mode_name(&self) -> &'static str {
        match self.inner.mode {
            Mode::Exchange { .. } => "token_exchange",
            Mode::Introspection { .. } => "introspection",
        }
    }

    /// One question to the authorization server: the swap and until when
    /// it may be reused (ms since the epoch), or why not.
    async fn ask(&self, reference: &str) -> Result<(Swapped, u64), SwapError> {
        let now = self.now_ms();
        match &self.inner.mode {
            Mode::Exchange { source, audience } => {
                let subject = OnBehalfOf::SubjectToken(reference.to_owned());
                let request = TokenRequest {
                    audience,
                    binding: None,
                    on_behalf_of: Some(&subject),
                };
                let token = source.token(request).await.map_err(from_sign_error)?;
                let expires_ms = token.expires_at().saturating_mul(1000);
                let lifetime = expires_ms.saturating_sub(now);
                let margin = (EXPIRY_MARGIN.as_millis() as u64).min(lifetime / 4);
                if lifetime == 0 {
                    return Err(SwapError::Server(
                        "the exchanged token is already expired".into(),
                    ));
                }
                Ok((
                    Swapped::Jwt(token.header_value().clone()),
                    expires_ms - margin,
                ))
            }
            Mode::Introspection {
                sts,
                endpoint,
                jwt,
                audience,
            } => {
                let response = introspection::ask(sts, endpoint, reference, jwt.is_some())
                    .await
                    .map_err(from_sign_error)?;
                let claims = introspection::read(
                    response,
                    jwt.as_ref(),
                    sts,
                    audience.as_deref(),
                    now / 1000,
                )
                .await?;
                let until = claims
                    .expires_at()
                    .map_or(u64::MAX, |exp| exp.saturating_mul(1000));
                Ok((Swapped::Introspected(claims), until))
            }
        }
    }
}

/// How an authorization server's answer maps to the client's: the token is
/// inactive only when the server says so of the token (`invalid_grant`,
/// `invalid_token`); anything else (the gateway refused, a 5xx, no answer)
/// is the server's or the gateway's problem, a 503, never a 401.
fn from_sign_error(error: SignError) -> SwapError {
    match &error {
        SignError::TokenEndpoint {
            status: 400 | 401,
            error: Some(code),
        } if code == "invalid_grant" || code == "invalid_token" => SwapError::Inactive,
        _ => SwapError::Server(error.to_string()),
    }
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("mode", &self.mode_name())
            .field("max_ttl", &self.inner.max_ttl)
            .field("negative_ttl", &self.inner.negative_ttl)
            .field("pass_through_jwts", &self.inner.pass_through_jwts)
            .field("cached", &self.inner.cache.len())
            .finish_non_exhaustive()
    }
}

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
}

impl GatewayBuilder {
    fn new(mode: Mode) -> Self {
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
        }
    }

    /// The longest a swap is reused (default [`DEFAULT_MAX_TTL`]): the
    /// bound on how long a token revoked at the authorization server still
    /// works here.
    pub fn max_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// How long an inactive or unknown token is remembered (default
    /// [`DEFAULT_NEGATIVE_TTL`]).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// How long an authorization-server failure is shared by requests for
    /// the same token, and the `Retry-After` announced (default
    /// [`DEFAULT_FAILURE_TTL`]).
    pub fn failure_ttl(mut self, ttl: Duration) -> Self {
        self.failure_ttl = ttl;
        self
    }

    /// Entries kept at most (default [`DEFAULT_MAX_ENTRIES`]).
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max;
        self
    }

    /// Cache misses (questions to the authorization server) allowed per
    /// second, and at once above that (defaults [`DEFAULT_MISS_RATE`],
    /// [`DEFAULT_MISS_BURST`]). A miss over the limit is answered 503 with
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
    /// that (defaults [`DEFAULT_CLIENT_MISS_RATE`],
    /// [`DEFAULT_CLIENT_MISS_BURST`]). A client over its budget gets 429
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
        Ok(Gateway {
            inner: Arc::new(Inner {
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
                counters: Counters::default(),
            }),
        })
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

/// A token bucket over misses. Only misses reach it (a question to the
/// authorization server follows, which costs far more), so a short mutex is
/// fine here: it is never on the cache-hit path.
struct MissLimiter {
    /// Milli-tokens available, and when (ms) they were counted.
    state: std::sync::Mutex<(u64, u64)>,
    rate_per_s: u64,
    burst_milli: u64,
}

impl MissLimiter {
    fn new(rate: u32, burst: u32, now_ms: u64) -> Self {
        let burst_milli = u64::from(burst) * 1000;
        MissLimiter {
            state: std::sync::Mutex::new((burst_milli, now_ms)),
            rate_per_s: u64::from(rate),
            burst_milli,
        }
    }

    /// Takes one token if there is one.
    fn try_acquire(&self, now_ms: u64) -> bool {
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
struct ClientLimiter {
    buckets: std::sync::Mutex<std::collections::HashMap<Box<str>, MissLimiter>>,
    rate: u32,
    burst: u32,
}

/// Clients remembered by the per-client limiter.
const MAX_CLIENTS: usize = 65_536;

impl ClientLimiter {
    fn new(rate: u32, burst: u32) -> Self {
        ClientLimiter {
            buckets: std::sync::Mutex::new(std::collections::HashMap::new()),
            rate,
            burst,
        }
    }

    fn try_acquire(&self, client: &str, now_ms: u64) -> bool {
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
    fn identity_headers_match_any_spelling() {
        let g = |name: &str| IDENTITY_HEADERS.iter().any(|p| header_matches(p, name));
        for forged in [
            "x-forwarded-user",
            "X_Forwarded_User",
            "X-FORWARDED_groups",
            "x-auth-request-preferred-username",
            "x-amzn-oidc-identity",
            "x-amzn-oidc-data",
            "x-goog-authenticated-user-email",
            "cf-access-authenticated-user-email",
            "x-ms-client-principal-name",
            "x_ms_client_principal",
            "proxy-authorization",
        ] {
            assert!(g(forged), "{forged}");
        }
        for fine in [
            "accept",
            "x-forwarded-proto",
            "x-request-id",
            "x-user-agent",
            "x-users",
        ] {
            assert!(!g(fine), "{fine}");
        }
    }

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

    #[test]
    fn only_the_servers_word_on_the_token_makes_it_inactive() {
        let endpoint = |status, error: &str| SignError::TokenEndpoint {
            status,
            error: Some(error.to_owned()),
        };
        assert!(matches!(
            from_sign_error(endpoint(400, "invalid_grant")),
            SwapError::Inactive
        ));
        for refused_gateway in [
            endpoint(401, "invalid_client"),
            endpoint(400, "unauthorized_client"),
            endpoint(400, "invalid_target"),
            endpoint(500, "server_error"),
            SignError::Transport("connection refused".into()),
        ] {
            assert!(matches!(
                from_sign_error(refused_gateway),
                SwapError::Server(_)
            ));
        }
    }
}
