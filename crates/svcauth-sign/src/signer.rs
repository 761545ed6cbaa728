//! The [`Signer`]: which destination gets which token, and the cache.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, Method};
use svcauth_core::{RequestBinding, SharedClock, system_clock};
use svcauth_jwks::KeyRing;

use crate::cache::{Fresh, Slot, TokenCache};
use crate::error::{ConfigError, SignError};
use crate::metrics::{Counters, SignerMetrics};
use crate::route::{Destination, Resolver, Router};
use crate::source::self_signed::SelfSigned;
use crate::source::{OnBehalfOf, Token, TokenRequest, TokenSource};
use crate::txn::TxnPropagation;

/// Default refresh point: 80% of a token's lifetime.
pub(crate) const DEFAULT_REFRESH_AT: f64 = 0.8;
/// Default safety margin: a token with less than this left is not used.
pub(crate) const DEFAULT_SAFETY_MARGIN: Duration = Duration::from_secs(30);
/// Default number of audiences (and delegations) cached.
pub const DEFAULT_MAX_AUDIENCES: usize = 1024;
/// Default largest body hashed for a bound request: 1 MiB.
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

struct Inner {
    router: Router,
    source: Arc<dyn TokenSource>,
    cache: TokenCache,
    refresh_at: f64,
    safety_margin: u64,
    max_body_bytes: usize,
    clock: SharedClock,
    counters: Counters,
    txn: Option<TxnPropagation>,
}

/// Gets tokens for outbound requests: decides the audience of each
/// destination, caches tokens per audience, and refreshes them ahead of
/// expiry. Cheap to clone; the layers and the reqwest integrations share it.
///
/// See the crate docs for an example.
#[derive(Clone)]
pub struct Signer {
    inner: Arc<Inner>,
}

/// Builds a [`Signer`].
#[must_use]
pub struct SignerBuilder {
    source: Arc<dyn TokenSource>,
    routes: Vec<(String, String, bool)>,
    allowed: Vec<(String, String)>,
    resolver: Option<Resolver>,
    refuse_without_audience: bool,
    allow_insecure_http: bool,
    refresh_at: f64,
    safety_margin: Duration,
    max_audiences: usize,
    max_body_bytes: usize,
    clock: SharedClock,
    txn: Option<(String, Vec<String>)>,
}

impl SignerBuilder {
    /// Requests to `origin` (`scheme://host[:port]`) get tokens for `audience`.
    pub fn audience(mut self, origin: &str, audience: &str) -> Self {
        self.routes
            .push((origin.to_owned(), audience.to_owned(), false));
        self
    }

    /// Requests to `origin` get a fresh token per request, bound to the
    /// method, URL, query and body (`htm`, `htu`, `query_sha256`,
    /// `body_sha256`).
    pub fn bound_audience(mut self, origin: &str, audience: &str) -> Self {
        self.routes
            .push((origin.to_owned(), audience.to_owned(), true));
        self
    }

    /// Lets requests to `origin` carry a token for `audience` when the
    /// request names it ([`TargetAudience`](crate::TargetAudience)), without making it the
    /// origin's default: for a forward proxy, or one origin serving
    /// several audiences. Any other explicit audience is refused there.
    pub fn allow_audience_at(mut self, origin: &str, audience: &str) -> Self {
        self.allowed.push((origin.to_owned(), audience.to_owned()));
        self
    }

    /// A fallback for destinations not in the map. It sees the whole
    /// [`Destination`], path included, and is asked on every request to a
    /// destination the map does not name (its answers are not memoised).
    pub fn resolve_with(
        mut self,
        resolver: impl Fn(&Destination<'_>) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// Requests with no audience (or to plain-http non-loopback hosts) fail
    /// with [`SignError::NoAudience`] / [`SignError::InsecureDestination`]
    /// instead of going out without a token.
    pub fn refuse_without_audience(mut self) -> Self {
        self.refuse_without_audience = true;
        self
    }

    /// DANGER: sends tokens over plain http to any host, where anyone on the
    /// path can read and reuse them until they expire.
    pub fn danger_allow_insecure_http(mut self) -> Self {
        self.allow_insecure_http = true;
        self
    }

    /// The fraction of a token's lifetime after which it is refreshed in the
    /// background (default 0.8).
    pub fn refresh_at(mut self, fraction: f64) -> Self {
        self.refresh_at = fraction;
        self
    }

    /// A token with less than this left is never used (default 30 s).
    pub fn safety_margin(mut self, margin: Duration) -> Self {
        self.safety_margin = margin;
        self
    }

    /// How many audiences (and delegations) are cached (default 1024).
    pub fn max_audiences(mut self, max: usize) -> Self {
        self.max_audiences = max;
        self
    }

    /// Largest body hashed for a bound request (default 1 MiB).
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// The clock.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Passes the Txn-Token of the request being handled (made current by
    /// `svcauth-verify`, or a [`TxnToken`](svcauth_core::txn::TxnToken) in
    /// the outbound request's extensions) on to calls to `origins`, the
    /// trust domain `trust_domain`'s services, byte for byte; never to any
    /// other origin, and a request carrying a `Txn-Token` elsewhere fails
    /// with [`SignError::TxnTokenOutsideTrustDomain`]. Origins are https, or
    /// http to loopback (unless the `danger_` option).
    ///
    /// With reqwest, build the client with [`Signer::redirect_policy`] (or
    /// no redirects): reqwest's own policy carries the header along on a
    /// redirect to another host.
    pub fn propagate_txn_tokens<'a>(
        mut self,
        trust_domain: &str,
        origins: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let origins = origins.into_iter().map(str::to_owned).collect();
        self.txn = Some((trust_domain.to_owned(), origins));
        self
    }

    /// Builds the signer.
    pub fn build(self) -> Result<Signer, ConfigError> {
        if !(0.1..=0.95).contains(&self.refresh_at) {
            return Err(ConfigError::Invalid(
                "refresh_at must be between 0.1 and 0.95",
            ));
        }
        if self.max_audiences == 0 {
            return Err(ConfigError::Invalid("max_audiences must be positive"));
        }
        let router = Router::new(
            self.routes,
            self.allowed,
            self.resolver,
            self.refuse_without_audience,
            self.allow_insecure_http,
        )?;
        let txn = match &self.txn {
            Some((domain, origins)) => Some(TxnPropagation::new(
                domain,
                origins.iter().map(String::as_str),
                self.allow_insecure_http,
            )?),
            None => None,
        };
        let counters = Counters::new(self.source.name());
        Ok(Signer {
            inner: Arc::new(Inner {
                router,
                source: self.source,
                cache: TokenCache::new(self.max_audiences),
                refresh_at: self.refresh_at,
                safety_margin: self.safety_margin.as_millis() as u64,
                max_body_bytes: self.max_body_bytes,
                clock: self.clock,
                counters,
                txn,
            }),
        })
    }
}

impl Signer {
    /// A signer over any token source.
    pub fn builder(source: impl TokenSource) -> SignerBuilder {
        SignerBuilder {
            source: Arc::new(source),
            routes: Vec::new(),
            allowed: Vec::new(),
            resolver: None,
            refuse_without_audience: false,
            allow_insecure_http: false,
            refresh_at: DEFAULT_REFRESH_AT,
            safety_margin: DEFAULT_SAFETY_MARGIN,
            max_audiences: DEFAULT_MAX_AUDIENCES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            clock: system_clock(),
            txn: None,
        }
    }

    /// A signer minting self-signed tokens as `issuer` with `ring` (5-minute
    /// lifetime; see [`SelfSigned`] for other settings).
    pub fn self_signed(issuer: &str, ring: KeyRing) -> Result<SignerBuilder, ConfigError> {
        Ok(Self::builder(SelfSigned::new(issuer, ring)?))
    }

    /// The counters so far.
    pub fn metrics(&self) -> SignerMetrics {
        self.inner.counters.snapshot()
    }

    /// Where the request goes and which token it gets.
    pub(crate) fn txn_propagation(&self) -> Option<&TxnPropagation> {
        self.inner.txn.as_ref()
    }

    pub(crate) fn router(&self) -> &Router {
        &self.inner.router
    }

    /// Forgets every cached token, so the next call to each audience gets a
    /// new one. Useful right after a key rotation, to sign with the new key
    /// at once (tokens signed with the retired key stay valid while it is
    /// published, so this is never required for correctness).
    pub fn clear_cache(&self) {
        self.inner.cache.clear();
    }

    /// Has every cached token replaced in the background, while it keeps
    /// being handed out until its replacement arrives: after a key rotation,
    /// when minting is slow (a key in an HSM or a KMS, an STS), this signs
    /// with the new key without putting a signature on any request's path,
    /// as [`clear_cache`](Signer::clear_cache) would.
    pub fn renew_cache(&self) {
        self.inner.cache.renew(self.now_ms());
    }

    /// Number of audiences (and delegations) in the token cache.
    pub fn cached_audiences(&self) -> usize {
        self.inner.cache.len()
    }

    pub(crate) fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes
    }

    /// The one signing core every path shares (the http service, the
    /// reqwest service and `Signer::sign`, the middleware): the
    /// `Authorization` value for a planned request. A bound request gets a
    /// fresh token for its method, URL, query and `body`; any other the
    /// cached token (this thread's copy, the shared slot, or one mint per
    /// audience however many wait).
    pub(crate) async fn authorization(
        &self,
        audience: &str,
        bind: Option<(&Method, &Destination<'_>, &[u8])>,
        on_behalf_of: Option<&OnBehalfOf>,
    ) -> Result<HeaderValue, SignError> {
        if bind.is_none()
            && on_behalf_of.is_none()
            && let Some(value) = self.cached_authorization(audience)
        {
            return Ok(value);
        }
        match bind {
            Some((method, destination, body)) => {
                let target = match destination.query {
                    Some(query) => format!("{}?{query}", destination.path),
                    None => destination.path.to_owned(),
                };
                let binding = RequestBinding::for_parts(
                    method,
                    destination.scheme,
                    &destination.authority(),
                    &target,
                    body,
                )?;
                let request = TokenRequest {
                    audience,
                    binding: Some(&binding),
                    on_behalf_of,
                };
                let started = Instant::now();
                let token = self.inner.source.token(request).await?;
                self.inner.counters.minted(audience, started.elapsed());
                Ok(token.header_value().clone())
            }
            None => Ok(self
                .token_for(audience, on_behalf_of)
                .await?
                .header_value()
                .clone()),
        }
    }

    /// The cached `Authorization` value for the service's own token to
    /// `audience`, if one is fresh: no await, no lock, no allocation.
    pub fn cached_authorization(&self, audience: &str) -> Option<HeaderValue> {
        let now = self.now_ms();
        let cache = &self.inner.cache;
        let value = match cache.local(audience, now) {
            Some(value) => value,
            None => cache.with(audience, |slot| {
                let current = slot.current.load();
                let cached = current.as_ref()?;
                if now >= cached.usable_until {
                    return None;
                }
                if now >= cached.refresh_at {
                    self.refresh_in_background(slot);
                } else {
                    cache.keep_local(audience, cached.token.header_value(), cached.refresh_at);
                }
                Some(cached.token.header_value().clone())
            })?,
        };
        self.inner.counters.cache_hit();
        Some(value)
    }

    /// A token for `audience`, from the cache or freshly obtained (one
    /// source call per audience at a time, however many callers wait).
    pub async fn token(&self, audience: &str) -> Result<Token, SignError> {
        self.token_for(audience, None).await
    }

    /// A token for `audience` on behalf of someone, cached per delegation.
    pub async fn token_for(
        &self,
        audience: &str,
        on_behalf_of: Option<&OnBehalfOf>,
    ) -> Result<Token, SignError> {
        let now = self.now_ms();
        let slot = self.inner.cache.slot(audience, on_behalf_of, now);
        match slot.fresh(now) {
            Fresh::Yes(token) => {
                self.inner.counters.cache_hit();
                return Ok(token);
            }
            Fresh::Refresh(token) => {
                self.inner.counters.cache_hit();
                self.refresh_in_background(&slot);
                return Ok(token);
            }
            Fresh::No => {}
        }
        let _single_flight = slot.mint.lock().await;
        if let Fresh::Yes(token) | Fresh::Refresh(token) = slot.fresh(self.now_ms()) {
            self.inner.counters.cache_hit();
            return Ok(token);
        }
        self.mint_into(&slot).await
    }

    async fn mint_into(&self, slot: &Slot) -> Result<Token, SignError> {
        let request = TokenRequest {
            audience: &slot.audience,
            binding: None,
            on_behalf_of: slot.on_behalf_of.as_ref(),
        };
        let span = tracing::debug_span!("svcauth.mint", aud = %slot.audience);
        let started = Instant::now();
        let token = tracing::Instrument::instrument(self.inner.source.token(request), span).await?;
        self.inner
            .counters
            .minted(&slot.audience, started.elapsed());
        let inner = &self.inner;
        slot.store(&token, self.now_ms(), inner.refresh_at, inner.safety_margin);
        Ok(token)
    }

    /// Starts one background refresh for the slot, unless one is running or
    /// a recent failure asks to wait.
    fn refresh_in_background(&self, slot: &Arc<Slot>) {
        if !slot.start_refresh(self.now_ms()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            slot.finish_refresh(false, self.now_ms());
            return;
        };
        let (signer, slot) = (self.clone(), slot.clone());
        runtime.spawn(async move {
            let result = {
                let _single_flight = slot.mint.lock().await;
                signer.mint_into(&slot).await
            };
            if let Err(error) = &result {
                signer.inner.counters.refresh_failed(&slot.audience);
                tracing::warn!(aud = %slot.audience, %error, "token refresh failed; the current token stays in use");
            }
            slot.finish_refresh(result.is_err(), signer.now_ms());
        });
    }

    fn now_ms(&self) -> u64 {
        self.inner.clock.now().as_millis() as u64
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("routes", &self.inner.router.origins())
            .field("cached_audiences", &self.inner.cache.len())
            .finish_non_exhaustive()
    }
}
