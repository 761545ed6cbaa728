//! [`Gateway`]: the swap of one reference token, through its cache and
//! its limits. The configuration is in `builder.rs`; the tower layer
//! ([`crate::PhantomTokenLayer`]) is a thin shell around [`Gateway::swap`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use svcauth_core::SharedClock;
use svcauth_jwks::KeySource;
use svcauth_sign::{OnBehalfOf, SignError, StsClient, TokenExchange, TokenRequest, TokenSource};

use crate::builder::{EXPIRY_MARGIN, GatewayBuilder, MAX_TOKEN_BYTES, MIN_TOKEN_BYTES};
use crate::cache::{Digest, Outcome, SwapCache};
use crate::error::SwapError;
use crate::headers::header_matches;
use crate::introspection::{self, Introspected};
use crate::limiter::{ClientLimiter, MissLimiter};
use crate::metrics::{Counters, Event, GatewayMetrics};

/// What a swap does with an active reference token.
#[derive(Clone)]
pub(crate) enum Mode {
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
/// 10 s) and [`max_ttl`](GatewayBuilder::max_ttl): revocation
/// at the authorization server takes effect at the edge within that time.
/// Inactive tokens are cached as negative results; misses are single-flight
/// per token and rate-limited overall.
///
/// See the crate docs for an example.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) mode: Mode,
    pub(crate) cache: SwapCache,
    pub(crate) max_ttl: Duration,
    pub(crate) negative_ttl: Duration,
    pub(crate) failure_ttl: Duration,
    pub(crate) limiter: MissLimiter,
    pub(crate) pass_through_jwts: bool,
    pub(crate) strip: Arc<[String]>,
    pub(crate) client_limiter: Option<ClientLimiter>,
    pub(crate) client_header: Option<http::HeaderName>,
    pub(crate) clock: SharedClock,
    pub(crate) counters: Counters,
    pub(crate) txn: Option<crate::txn::TransactionTokenService>,
}

impl Gateway {
    pub(crate) fn from_inner(inner: Inner) -> Self {
        Gateway {
            inner: Arc::new(inner),
        }
    }

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

    /// The Transaction Token Service minting a Txn-Token per request, if any.
    pub fn txn_token_service(&self) -> Option<&crate::txn::TransactionTokenService> {
        self.inner.txn.as_ref()
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
        self.swap_keyed(reference, || client.map(str::to_owned))
            .await
    }

    /// [`swap_for`](Gateway::swap_for) with the client's key made by
    /// `client` only when it is needed: on a cache miss.
    pub(crate) async fn swap_keyed(
        &self,
        reference: &str,
        client: impl FnOnce() -> Option<String>,
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
        if let Some(limiter) = &inner.client_limiter
            && let Some(client) = client()
            && !limiter.try_acquire(&client, self.now_ms())
        {
            inner.counters.count(Event::ClientRateLimited);
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
                    counters.count(Event::Hit);
                }
                Ok(swapped.clone())
            }
            Outcome::Inactive { .. } => {
                if hit {
                    counters.count(Event::NegativeHit);
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
            inner.counters.count(Event::RateLimited);
            return Outcome::Limited;
        }
        inner.counters.count(Event::Miss);
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
                inner.counters.count(Event::ServerError);
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
                    sts.client_id(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
