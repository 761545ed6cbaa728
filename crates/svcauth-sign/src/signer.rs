//! The [`Signer`]: which destination gets which token, and the cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Extensions, HeaderValue, Method};
use svcauth_core::__private::PerThread;
use svcauth_core::{RequestBinding, SharedClock, system_clock};
use svcauth_jwks::KeyRing;

use crate::cache::{Cached, Fresh, Slot, TokenCache};
use crate::error::{ConfigError, SignError};
use crate::source::self_signed::SelfSigned;
use crate::source::{OnBehalfOf, Token, TokenRequest, TokenSource};

/// Default refresh point: 80% of a token's lifetime.
pub const DEFAULT_REFRESH_AT: f64 = 0.8;
/// Default safety margin: a token with less than this left is not used.
pub const DEFAULT_SAFETY_MARGIN: Duration = Duration::from_secs(30);
/// Default number of audiences (and delegations) cached.
pub const DEFAULT_MAX_AUDIENCES: usize = 1024;
/// Default largest body hashed for a bound request: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// A request extension naming the audience of this one request, ahead of
/// the signer's destination map.
///
/// The audience must still belong to the destination: its origin must be
/// mapped to it ([`SignerBuilder::audience`], or the resolver), or allowed
/// to receive it ([`SignerBuilder::allow_audience_at`]). Otherwise the
/// request fails with [`SignError::AudienceNotAllowed`] and nothing is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetAudience(pub String);

/// A request extension: bind (or with `false`, do not bind) this request's
/// token to the request, whatever the destination's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindRequest(pub bool);

/// The destination of a request, as the signer sees it.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The host, without brackets for IPv6.
    pub host: &'a str,
    /// The port, explicit or the scheme's default.
    pub port: u16,
    /// The path (for binding, and for a resolver that routes by path).
    pub path: &'a str,
    /// The query as sent, without the `?` (for binding).
    pub query: Option<&'a str>,
}

impl Destination<'_> {
    /// `scheme://host:port`, for messages.
    pub fn origin(&self) -> String {
        format!(
            "{}://{}:{}",
            self.scheme.to_ascii_lowercase(),
            self.host.to_ascii_lowercase(),
            self.port
        )
    }

    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.to_owned()
        };
        format!("{host}:{}", self.port)
    }

    fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// What to do for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Send it without a token.
    Skip,
    /// Attach a token for `audience`, bound to the request or not.
    Token { audience: Arc<str>, bind: bool },
}

#[derive(Debug, Clone)]
struct Route {
    scheme: String,
    host: String,
    port: u16,
    audience: Arc<str>,
    bind: bool,
    /// Further audiences this origin may receive when a request names them
    /// ([`TargetAudience`]); never chosen by default.
    also: Vec<Arc<str>>,
}

impl Route {
    fn matches(&self, d: &Destination<'_>) -> bool {
        self.port == d.port
            && self.scheme.eq_ignore_ascii_case(d.scheme)
            && self.host.eq_ignore_ascii_case(d.host)
    }
}

/// Destination routes, found by a hash of (scheme, host, port) computed
/// without allocating: this lookup runs on every request.
#[derive(Debug, Default)]
struct Routes {
    hasher: foldhash::fast::FixedState,
    buckets: HashMap<u64, Vec<Route>, std::hash::BuildHasherDefault<IdentityHasher>>,
}

impl Routes {
    fn hash(&self, scheme: &str, host: &str, port: u16) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = self.hasher.build_hasher();
        for part in [scheme, host] {
            for chunk in part.as_bytes().chunks(8) {
                let mut word = [0u8; 8];
                for (w, b) in word.iter_mut().zip(chunk) {
                    *w = b.to_ascii_lowercase();
                }
                h.write_u64(u64::from_le_bytes(word));
            }
            h.write_u8(0xff);
        }
        h.write_u16(port);
        h.finish()
    }

    fn insert(&mut self, route: Route) {
        let key = self.hash(&route.scheme, &route.host, route.port);
        let bucket = self.buckets.entry(key).or_default();
        bucket.retain(|r| {
            !(r.port == route.port && r.scheme == route.scheme && r.host == route.host)
        });
        bucket.push(route);
    }

    fn get_mut(&mut self, scheme: &str, host: &str, port: u16) -> Option<&mut Route> {
        let key = self.hash(scheme, host, port);
        self.buckets
            .get_mut(&key)?
            .iter_mut()
            .find(|r| r.port == port && r.scheme == scheme && r.host == host)
    }

    fn get(&self, d: &Destination<'_>) -> Option<&Route> {
        self.buckets
            .get(&self.hash(d.scheme, d.host, d.port))?
            .iter()
            .find(|r| r.matches(d))
    }

    fn origins(&self) -> Vec<String> {
        self.buckets
            .values()
            .flatten()
            .map(|r| format!("{}://{}:{}", r.scheme, r.host, r.port))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

/// The keys of [`Routes`] are already hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Resolver = Arc<dyn Fn(&Destination<'_>) -> Option<String> + Send + Sync>;

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
struct Counters {
    mints: AtomicU64,
    cache_hits: StripedCounter,
    refresh_failures: AtomicU64,
}

/// A counter every request increments: one cache line per thread stripe, so
/// threads counting at once do not contend for one line.
#[derive(Default)]
struct StripedCounter([PaddedCounter; 8]);

#[derive(Default)]
#[repr(align(128))]
struct PaddedCounter(AtomicU64);

impl StripedCounter {
    fn add(&self) {
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

    fn sum(&self) -> u64 {
        self.0.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

/// A thread's memo of one destination's plan, by authority.
struct PlanMemo {
    scheme: Box<str>,
    plan: Plan,
}

thread_local! {
    static PLANS: std::cell::RefCell<PerThread<PlanMemo>> = const { std::cell::RefCell::new(PerThread::new()) };
}

struct Inner {
    /// Tells this signer's per-thread memos apart from other signers'.
    id: u64,
    source: Arc<dyn TokenSource>,
    cache: TokenCache,
    routes: Routes,
    resolver: Option<Resolver>,
    refuse_without_audience: bool,
    allow_insecure_http: bool,
    refresh_at: f64,
    safety_margin: u64,
    max_body_bytes: usize,
    clock: SharedClock,
    counters: Counters,
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
    /// request names it ([`TargetAudience`]), without making it the
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
        let mut routes = Routes::default();
        for (origin, audience, bind) in self.routes {
            let (scheme, host, port) = parse_origin(&origin)?;
            routes.insert(Route {
                scheme,
                host,
                port,
                audience: audience.into(),
                bind,
                also: Vec::new(),
            });
        }
        for (origin, audience) in self.allowed {
            let (scheme, host, port) = parse_origin(&origin)?;
            let audience: Arc<str> = audience.into();
            match routes.get_mut(&scheme, &host, port) {
                Some(route) => route.also.push(audience),
                // Allowed, but no default: requests that name no audience
                // go out as they would to an unmapped origin.
                None => routes.insert(Route {
                    scheme,
                    host,
                    port,
                    audience: Arc::from(""),
                    bind: false,
                    also: vec![audience],
                }),
            }
        }
        Ok(Signer {
            inner: Arc::new(Inner {
                id: PerThread::<PlanMemo>::new_owner(),
                source: self.source,
                cache: TokenCache::new(self.max_audiences),
                routes,
                resolver: self.resolver,
                refuse_without_audience: self.refuse_without_audience,
                allow_insecure_http: self.allow_insecure_http,
                refresh_at: self.refresh_at,
                safety_margin: self.safety_margin.as_millis() as u64,
                max_body_bytes: self.max_body_bytes,
                clock: self.clock,
                counters: Counters::default(),
            }),
        })
    }
}

/// `scheme://host[:port]` into lower-case scheme and host and an explicit port.
fn parse_origin(origin: &str) -> Result<(String, String, u16), ConfigError> {
    let url = url::Url::parse(origin).map_err(|_| ConfigError::Origin(origin.to_owned()))?;
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Err(ConfigError::Origin(origin.to_owned()));
    };
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err(ConfigError::Origin(origin.to_owned()));
    }
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    Ok((url.scheme().to_owned(), host, port))
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
        }
    }

    /// A signer minting self-signed tokens as `issuer` with `ring` (5-minute
    /// lifetime; see [`SelfSigned`] for other settings).
    pub fn self_signed(issuer: &str, ring: KeyRing) -> Result<SignerBuilder, ConfigError> {
        Ok(Self::builder(SelfSigned::new(issuer, ring)?))
    }

    /// The counters so far.
    pub fn metrics(&self) -> SignerMetrics {
        let c = &self.inner.counters;
        SignerMetrics {
            mints: c.mints.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.sum(),
            refresh_failures: c.refresh_failures.load(Ordering::Relaxed),
        }
    }

    /// Forgets every cached token, so the next call to each audience gets a
    /// new one. Useful right after a key rotation, to sign with the new key
    /// at once (tokens signed with the retired key stay valid while it is
    /// published, so this is never required for correctness).
    pub fn clear_cache(&self) {
        self.inner.cache.clear();
    }

    /// Number of audiences (and delegations) in the token cache.
    pub fn cached_audiences(&self) -> usize {
        self.inner.cache.len()
    }

    pub(crate) fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes
    }

    /// [`plan`](Signer::plan) for a request URI, memoised per thread by
    /// (scheme, authority): the answer depends on nothing else unless the
    /// request carries per-request options, which skip the memo, or the
    /// answer came from the resolver, which may look at the path. Errors
    /// are never memoised.
    pub(crate) fn plan_uri<'u>(
        &self,
        uri: &'u http::Uri,
        extensions: &Extensions,
        destination: impl Fn(&'u http::Uri) -> Result<Destination<'u>, SignError>,
    ) -> Result<Plan, SignError> {
        let per_request = extensions.get::<TargetAudience>().is_some()
            || extensions.get::<BindRequest>().is_some();
        let (Some(scheme), Some(authority), false) =
            (uri.scheme_str(), uri.authority(), per_request)
        else {
            return self.plan(&destination(uri)?, Some(extensions));
        };
        let authority = authority.as_str();
        let id = self.inner.id;
        let memo = PLANS.with(|p| {
            let p = p.borrow();
            let memo = p.get(id, authority)?;
            (&*memo.scheme == scheme).then(|| memo.plan.clone())
        });
        if let Some(plan) = memo {
            return Ok(plan);
        }
        let destination = destination(uri)?;
        let plan = self.plan(&destination, Some(extensions))?;
        if self.inner.resolver.is_some() && self.inner.routes.get(&destination).is_none() {
            return Ok(plan);
        }
        // This thread's own copy of the audience, so its reference count is
        // not shared with other threads.
        let copy = match &plan {
            Plan::Skip => Plan::Skip,
            Plan::Token { audience, bind } => Plan::Token {
                audience: Arc::from(&**audience),
                bind: *bind,
            },
        };
        let memo = PlanMemo {
            scheme: scheme.into(),
            plan: copy,
        };
        PLANS.with(|p| p.borrow_mut().insert(id, authority, memo, 64, 16));
        Ok(plan)
    }

    /// Decides what a request to `destination` gets.
    pub(crate) fn plan(
        &self,
        destination: &Destination<'_>,
        extensions: Option<&Extensions>,
    ) -> Result<Plan, SignError> {
        let inner = &*self.inner;
        let explicit = extensions.and_then(|e| e.get::<TargetAudience>());
        let bind_override = extensions.and_then(|e| e.get::<BindRequest>()).map(|b| b.0);
        let mapped = inner.routes.get(destination);
        let route: Option<(Arc<str>, bool)> = match (explicit, mapped) {
            (Some(TargetAudience(audience)), Some(route))
                if *route.audience == **audience
                    || route.also.iter().any(|a| **a == **audience) =>
            {
                let bind = *route.audience == **audience && route.bind;
                Some((audience.as_str().into(), bind))
            }
            (Some(TargetAudience(audience)), None)
                if inner
                    .resolver
                    .as_ref()
                    .and_then(|r| r(destination))
                    .is_some_and(|a| a == *audience) =>
            {
                Some((audience.as_str().into(), false))
            }
            (Some(TargetAudience(audience)), _) => {
                return Err(SignError::AudienceNotAllowed {
                    audience: audience.clone(),
                    origin: destination.origin(),
                });
            }
            (None, Some(route)) if !route.audience.is_empty() => {
                Some((route.audience.clone(), route.bind))
            }
            (None, Some(_)) => None,
            (None, None) => inner
                .resolver
                .as_ref()
                .and_then(|r| r(destination))
                .map(|a| (a.into(), false)),
        };
        let Some((audience, bind)) = route else {
            if inner.refuse_without_audience {
                return Err(SignError::NoAudience(destination.origin()));
            }
            tracing::debug!(origin = %destination.origin(), "no audience for destination; sending without a token");
            return Ok(Plan::Skip);
        };
        let plain = !destination.scheme.eq_ignore_ascii_case("https");
        if plain && !destination.is_loopback() && !inner.allow_insecure_http {
            if inner.refuse_without_audience {
                return Err(SignError::InsecureDestination(destination.origin()));
            }
            tracing::warn!(origin = %destination.origin(), "plain http to a non-loopback host; sending without a token");
            return Ok(Plan::Skip);
        }
        Ok(Plan::Token {
            audience,
            bind: bind_override.unwrap_or(bind),
        })
    }

    /// The `Authorization` value for a planned request, from the cache when
    /// possible. `body` is needed only when `bind` is set.
    pub(crate) async fn authorization(
        &self,
        audience: &str,
        bind: Option<(&Method, &Destination<'_>, &[u8])>,
        on_behalf_of: Option<&OnBehalfOf>,
    ) -> Result<HeaderValue, SignError> {
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
                let token = self.inner.source.token(request).await?;
                self.inner.counters.mints.fetch_add(1, Ordering::Relaxed);
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
        self.inner.counters.cache_hits.add();
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
                self.inner.counters.cache_hits.add();
                return Ok(token);
            }
            Fresh::Refresh(token) => {
                self.inner.counters.cache_hits.add();
                self.refresh_in_background(&slot);
                return Ok(token);
            }
            Fresh::No => {}
        }
        let _single_flight = slot.mint.lock().await;
        if let Fresh::Yes(token) | Fresh::Refresh(token) = slot.fresh(self.now_ms()) {
            self.inner.counters.cache_hits.add();
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
        let token = tracing::Instrument::instrument(self.inner.source.token(request), span).await?;
        self.inner.counters.mints.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let expires = token.expires_at().saturating_mul(1000);
        let lifetime = expires.saturating_sub(now);
        let margin = self.inner.safety_margin.min(lifetime / 4);
        // Refresh at 80% of the lifetime, less up to 5% of jitter so that
        // replicas and audiences do not all refresh at once.
        let refresh_at = now + (lifetime as f64 * (self.inner.refresh_at - 0.05 * jitter())) as u64;
        slot.current.store(Some(Arc::new(Cached {
            token: token.clone(),
            refresh_at,
            usable_until: expires - margin,
        })));
        slot.failures.store(0, Ordering::Relaxed);
        Ok(token)
    }

    /// Starts one background refresh for the slot, unless one is running or
    /// a recent failure asks to wait.
    fn refresh_in_background(&self, slot: &Arc<Slot>) {
        if self.now_ms() < slot.next_attempt.load(Ordering::Relaxed)
            || slot.refreshing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            slot.refreshing.store(false, Ordering::Release);
            return;
        };
        let (signer, slot) = (self.clone(), slot.clone());
        runtime.spawn(async move {
            let result = {
                let _single_flight = slot.mint.lock().await;
                signer.mint_into(&slot).await
            };
            if let Err(error) = result {
                let failures = slot.failures.fetch_add(1, Ordering::Relaxed) + 1;
                let backoff = 1000u64 << failures.min(5);
                slot.next_attempt.store(signer.now_ms() + backoff, Ordering::Relaxed);
                signer.inner.counters.refresh_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(aud = %slot.audience, %error, "token refresh failed; the current token stays in use");
            }
            slot.refreshing.store(false, Ordering::Release);
        });
    }

    fn now_ms(&self) -> u64 {
        self.inner.clock.now().as_millis() as u64
    }
}

fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = aws_lc_rs::rand::fill(&mut b);
    f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX)
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("routes", &self.inner.routes.origins())
            .field("cached_audiences", &self.inner.cache.len())
            .finish_non_exhaustive()
    }
}
