//! [`RemoteBuilder`]: the configuration of a remote key source, each
//! default set and explained here. Fetching and storing are in `remote.rs`.

use std::path::PathBuf;
use std::time::Duration;

use svcauth_core::{SharedClock, system_clock};
use url::Url;

use super::http;
use super::remote::Remote;
use super::{KeySet, KeySource};
use crate::SvidKind;
use crate::error::ConfigError;
use crate::key_set::DEFAULT_MAX_JWKS_BYTES;

/// Freshness when the issuer sends no `Cache-Control: max-age`: 5 minutes.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The shortest freshness honoured: 60 s, whatever `max-age` says.
pub(crate) const MIN_TTL: Duration = Duration::from_secs(60);
/// The longest freshness honoured: 24 h, whatever `max-age` says.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Minimum time between fetches caused by unknown kids: 30 s.
pub(crate) const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);
/// How long the last good set is used while the issuer is down: 24 h.
pub(crate) const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(24 * 3600);
/// Fetch timeout: 5 s.
pub(crate) const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a watched bundle file is read again: every 2 s.
const FILE_POLL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub(super) enum Location {
    Jwks(Url),
    Discovery {
        issuer: String,
        url: Url,
    },
    /// A file, read again every poll interval: a SPIFFE bundle delivered by
    /// an agent or mounted from a ConfigMap.
    File(PathBuf),
}

/// What the fetched document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Jwks,
    SpiffeBundle(SvidKind),
}

/// Configuration of a remote key source. Start from [`KeySource::remote`] or
/// [`KeySource::discover`]; every setting has a safe default.
///
/// * Freshness: `Cache-Control: max-age` of the response (a SPIFFE
///   bundle's `spiffe_refresh_hint` instead, when it has one), clamped to
///   60 s..=24 h, 5 minutes when absent. A watched bundle file is read
///   again every 2 s, whatever its hint. The background
///   refresher fetches a little ahead of expiry, with jitter, and revalidates
///   with `If-None-Match` when the issuer sent an `ETag`.
/// * Unknown kid: one fetch in flight per source (single flight), and none
///   until [`cooldown`](RemoteBuilder::cooldown) has passed since the last
///   fetch, successful or not.
/// * Failure: the last good set stays in use up to
///   [`max_staleness`](RemoteBuilder::max_staleness), then lookups fail
///   closed; retries back off exponentially with jitter from 1 s to 1 min.
/// * Transport: 5 s, documents capped at 64 KiB,
///   redirects only within the same origin, `http://` only to loopback hosts
///   unless [`danger_allow_insecure_http`](RemoteBuilder::danger_allow_insecure_http).
#[derive(Debug, Clone)]
#[must_use]
pub struct RemoteBuilder {
    pub(super) location: Location,
    pub(super) format: Format,
    pub(super) default_ttl: Duration,
    pub(super) min_ttl: Duration,
    pub(super) max_ttl: Duration,
    pub(super) cooldown: Duration,
    pub(super) max_staleness: Duration,
    pub(super) timeout: Duration,
    pub(super) max_bytes: usize,
    pub(super) allow_insecure_http: bool,
    pub(super) background: bool,
    pub(super) clock: SharedClock,
    pub(super) proxy: Option<Url>,
    pub(super) jwks_uri_origins: Vec<url::Origin>,
    pub(super) http_client: Option<reqwest::Client>,
}

fn parse_url(text: &str) -> Result<Url, ConfigError> {
    Url::parse(text).map_err(|_| ConfigError::InvalidUrl(text.chars().take(200).collect()))
}

impl RemoteBuilder {
    pub(super) fn jwks(url: &str) -> Result<Self, ConfigError> {
        Ok(Self::new(Location::Jwks(parse_url(url)?)))
    }

    pub(super) fn discovery(issuer: &str) -> Result<Self, ConfigError> {
        let base = issuer.trim_end_matches('/');
        let url = parse_url(&format!("{base}/.well-known/openid-configuration"))?;
        Ok(Self::new(Location::Discovery {
            issuer: issuer.to_owned(),
            url,
        }))
    }

    pub(super) fn spiffe_bundle(url: &str, kind: SvidKind) -> Result<Self, ConfigError> {
        let mut builder = Self::new(Location::Jwks(parse_url(url)?));
        builder.format = Format::SpiffeBundle(kind);
        Ok(builder)
    }

    pub(super) fn spiffe_bundle_file(path: PathBuf, kind: SvidKind) -> Self {
        let mut builder = Self::new(Location::File(path));
        builder.format = Format::SpiffeBundle(kind);
        builder.default_ttl = FILE_POLL;
        builder.min_ttl = Duration::from_secs(1);
        builder
    }

    fn new(location: Location) -> Self {
        RemoteBuilder {
            location,
            format: Format::Jwks,
            default_ttl: DEFAULT_TTL,
            min_ttl: MIN_TTL,
            max_ttl: MAX_TTL,
            cooldown: DEFAULT_COOLDOWN,
            max_staleness: DEFAULT_MAX_STALENESS,
            timeout: DEFAULT_FETCH_TIMEOUT,
            max_bytes: DEFAULT_MAX_JWKS_BYTES,
            allow_insecure_http: false,
            background: true,
            clock: system_clock(),
            proxy: None,
            jwks_uri_origins: Vec::new(),
            http_client: None,
        }
    }

    /// Fetches through this HTTP proxy. Without it no proxy is used at all:
    /// `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` are ignored, because a
    /// proxy that serves the key set chooses which tokens are accepted.
    pub fn proxy(mut self, url: &str) -> Result<Self, ConfigError> {
        self.proxy = Some(parse_url(url)?);
        Ok(self)
    }

    /// Fetches with `client`: your roots (a private CA), a client
    /// certificate for mTLS, a proxy, extra headers. Start from
    /// [`http_client_builder`](crate::http_client_builder), which has this
    /// crate's rules (redirects only within the origin, no proxy from the
    /// environment), and add yours. Whatever the client, every fetch keeps
    /// this source's timeout, size cap and https-or-loopback rule, and an
    /// answer that comes from another origin after a redirect is refused.
    /// A proxy goes on the client; [`proxy`](Self::proxy) with it is an error.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Discovery: also accept a `jwks_uri` on `origin`
    /// (`scheme://host[:port]`). By default the `jwks_uri` must share the
    /// issuer's origin; some providers publish keys elsewhere (Google's are
    /// on `https://www.googleapis.com`).
    pub fn allow_jwks_uri_origin(mut self, origin: &str) -> Result<Self, ConfigError> {
        self.jwks_uri_origins.push(parse_url(origin)?.origin());
        Ok(self)
    }

    /// Freshness when the issuer sends no `max-age` (default 5 min); for a
    /// watched bundle file, how often it is read again (default 2 s).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Bounds applied to the issuer's `max-age` (default 60 s to 24 h).
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_ttl = min;
        self.max_ttl = max;
        self
    }

    /// Minimum time between fetches caused by unknown kids (default 30 s).
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// How long the last good set is used while fetches fail (default 24 h).
    pub fn max_staleness(mut self, max_staleness: Duration) -> Self {
        self.max_staleness = max_staleness;
        self
    }

    /// Timeout of one HTTP fetch, connection included (default 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest document accepted (default 64 KiB).
    pub fn max_document_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Whether a background task refreshes the set ahead of expiry (default
    /// on, when built inside a Tokio runtime). Off, the set is fetched only on
    /// demand: a lookup that finds nothing, or [`KeySource::refresh`].
    pub fn background_refresh(mut self, on: bool) -> Self {
        self.background = on;
        self
    }

    /// The clock for freshness, cooldown and staleness (tests use
    /// [`svcauth_core::ManualClock`]).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// DANGER: allows plain `http://` to any host. Anyone on the network path
    /// can then substitute their own keys and mint tokens you will accept.
    /// Only for closed test networks.
    pub fn danger_allow_insecure_http(mut self) -> Self {
        self.allow_insecure_http = true;
        self
    }

    /// Builds the source. Nothing is fetched yet: the first lookup (or
    /// [`KeySource::refresh`], or the background task, which starts at once
    /// when built inside a Tokio runtime) loads the set.
    pub fn build(self) -> Result<KeySource, ConfigError> {
        if self.min_ttl > self.max_ttl || self.default_ttl.is_zero() {
            return Err(ConfigError::Invalid("TTL bounds are inverted or zero"));
        }
        if self.timeout.is_zero() || self.max_bytes == 0 {
            return Err(ConfigError::Invalid(
                "timeout and document size must be positive",
            ));
        }
        let origin = match &self.location {
            Location::Jwks(url) | Location::Discovery { url, .. } => {
                if !http::url_allowed(url, self.allow_insecure_http) {
                    return Err(ConfigError::InsecureUrl(url.to_string()));
                }
                url.to_string()
            }
            Location::File(path) => format!("file:{}", path.display()),
        };
        if self.http_client.is_some() && self.proxy.is_some() {
            return Err(ConfigError::Invalid(
                "set the proxy on the HTTP client given to http_client",
            ));
        }
        let clock = self.clock.clone();
        let remote = Remote::new(self)?;
        let source = KeySource::from_parts(origin, KeySet::empty(), Some(remote), clock);
        if let Some(remote) = &source.inner.remote {
            remote.ensure_refresher(&source);
        }
        Ok(source)
    }
}
