//! The remote JWKS cache: fetching and storing over the source's snapshot,
//! single flight, cooldown, backoff, and the background refresher. The
//! configuration is in `builder.rs`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use url::Url;

use super::builder::{Format, Location, RemoteBuilder};
use super::facade::Facade;
use super::file;
use super::http::{self, Fetched};
use super::{Inner, KeySource, Snapshot};
use crate::error::{ConfigError, FetchError, JwksError};
use crate::key_set::KeySet;

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

pub(super) struct Remote {
    pub(super) config: RemoteBuilder,
    client: reqwest::Client,
    fetch_lock: tokio::sync::Mutex<()>,
    /// Completed fetch attempts: a waiter that sees it move knows a fetch
    /// finished while it waited, and does not fetch again.
    attempts: AtomicU64,
    /// Clock time (ms) the last fetch started; 0 before the first.
    last_attempt_ms: AtomicU64,
    consecutive_failures: AtomicU32,
    successes: AtomicU64,
    failures: AtomicU64,
    not_modified: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// The `jwks_uri` found by discovery, until a fetch fails.
    discovered: Mutex<Option<Url>>,
    refresher_started: AtomicBool,
    /// The same events for the application's `metrics` recorder.
    pub(super) facade: Facade,
}

impl Remote {
    /// The remote part of a source built from `config`.
    pub(super) fn new(config: RemoteBuilder) -> Result<Self, ConfigError> {
        Ok(Remote {
            client: match &config.http_client {
                Some(client) => client.clone(),
                None => http::client(config.timeout, config.proxy.as_ref())
                    .map_err(|_| ConfigError::Invalid("the proxy URL is not usable"))?,
            },
            fetch_lock: tokio::sync::Mutex::new(()),
            attempts: AtomicU64::new(0),
            last_attempt_ms: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            not_modified: AtomicU64::new(0),
            last_error: Mutex::new(None),
            discovered: Mutex::new(None),
            refresher_started: AtomicBool::new(false),
            facade: Facade::new(match &config.location {
                Location::Jwks(url) => url.as_str(),
                Location::Discovery { issuer, .. } => issuer,
                Location::File(path) => path.to_str().unwrap_or("file"),
            }),
            config,
        })
    }

    /// Whether a demand fetch (unknown kid, nothing loaded) may start now.
    /// Whether a fetch holds the single-flight lock right now.
    pub(super) fn fetch_in_flight(&self) -> bool {
        self.fetch_lock.try_lock().is_err()
    }

    pub(super) fn may_fetch(&self, now: Duration, loaded: bool) -> bool {
        let last = self.last_attempt_ms.load(Ordering::Acquire);
        if last == 0 {
            return true;
        }
        let failures = self.consecutive_failures.load(Ordering::Acquire);
        let gap = if !loaded && failures > 0 {
            backoff(failures, 0.0).min(self.config.cooldown)
        } else {
            self.config.cooldown
        };
        now.as_millis() as u64 >= last.saturating_add(gap.as_millis() as u64)
    }

    pub(super) fn counters(&self) -> (u64, u64, u64, u64, Option<String>) {
        (
            self.attempts.load(Ordering::Acquire),
            self.successes.load(Ordering::Acquire),
            self.failures.load(Ordering::Acquire),
            self.not_modified.load(Ordering::Acquire),
            self.last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }

    /// Starts the background refresher once, if configured and inside a runtime.
    pub(super) fn ensure_refresher(&self, source: &KeySource) {
        if !self.config.background || self.refresher_started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.refresher_started.swap(true, Ordering::AcqRel) {
            return;
        }
        handle.spawn(refresher(Arc::downgrade(&source.inner)));
    }

    /// The document's URL; `None` for a file.
    async fn jwks_url(&self) -> Result<Option<Url>, FetchError> {
        let (issuer, discovery_url) = match &self.config.location {
            Location::Jwks(url) => return Ok(Some(url.clone())),
            Location::Discovery { issuer, url } => (issuer, url),
            Location::File(_) => return Ok(None),
        };
        if let Some(url) = self
            .discovered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok(Some(url));
        }
        let bad = |message: String| FetchError::Discovery {
            url: discovery_url.to_string(),
            message,
        };
        let body = match http::get(
            &self.client,
            discovery_url,
            None,
            self.config.max_bytes,
            self.config.timeout,
        )
        .await?
        {
            Fetched::Body { body, .. } => body,
            Fetched::NotModified { .. } => return Err(bad("unexpected 304".into())),
        };
        let jwks_uri = discovered_jwks_uri(
            &body,
            issuer,
            discovery_url,
            self.config.allow_insecure_http,
            &self.config.jwks_uri_origins,
        )?;
        tracing::debug!(issuer = %issuer, jwks_uri = %jwks_uri, "OpenID discovery done");
        *self
            .discovered
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(jwks_uri.clone());
        Ok(Some(jwks_uri))
    }

    /// The document, over HTTP or from the watched file, and where it came
    /// from (for errors and logs).
    async fn get(&self, etag: Option<&str>) -> Result<(String, Fetched), FetchError> {
        if let Location::File(path) = &self.config.location {
            let fetched = file::read(path, etag, self.config.max_bytes).await?;
            return Ok((format!("file:{}", path.display()), fetched));
        }
        let url = self
            .jwks_url()
            .await?
            .ok_or_else(|| FetchError::InsecureUrl(String::from("no URL")))?;
        tracing::debug!(url = %url, revalidate = etag.is_some(), "fetching JWKS");
        let fetched = http::get(
            &self.client,
            &url,
            etag,
            self.config.max_bytes,
            self.config.timeout,
        )
        .await?;
        Ok((url.to_string(), fetched))
    }

    fn ttl(&self, max_age: Option<Duration>) -> Duration {
        max_age
            .unwrap_or(self.config.default_ttl)
            .clamp(self.config.min_ttl, self.config.max_ttl)
    }
}

/// Exponential backoff for the n-th consecutive failure, 1 s to 1 min,
/// spread by `jitter` (a fraction in 0..1 of up to a fifth of the delay).
fn backoff(failures: u32, jitter: f64) -> Duration {
    let exp = BACKOFF_MIN.saturating_mul(1 << failures.saturating_sub(1).min(10));
    let base = exp.min(BACKOFF_MAX);
    base.mul_f64(1.0 - 0.2 * jitter.clamp(0.0, 1.0))
}

/// A random fraction in 0..1, for jitter.
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

/// Fetch and store: the remote part of a key source, over the source's
/// snapshot.
impl Remote {
    /// One fetch, shared by concurrent callers. `forced` skips the cooldown.
    pub(super) async fn fetch(&self, source: &KeySource, forced: bool) -> Result<(), FetchError> {
        let remote = self;
        let seen = remote.attempts.load(Ordering::Acquire);
        let _single_flight = remote.fetch_lock.lock().await;
        if remote.attempts.load(Ordering::Acquire) != seen {
            return Ok(()); // another caller fetched while we waited
        }
        let now = source.inner.clock.now();
        if !forced && !remote.may_fetch(now, source.is_loaded()) {
            return Ok(());
        }
        remote
            .last_attempt_ms
            .store((now.as_millis() as u64).max(1), Ordering::Release);
        let result = self.fetch_and_swap(source).await;
        remote.attempts.fetch_add(1, Ordering::AcqRel);
        match &result {
            Ok(()) => {
                remote.successes.fetch_add(1, Ordering::AcqRel);
                remote.consecutive_failures.store(0, Ordering::Release);
                *remote
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
            }
            Err(error) => {
                remote.failures.fetch_add(1, Ordering::AcqRel);
                remote.facade.failed(source.inner.state.load().loaded);
                remote.consecutive_failures.fetch_add(1, Ordering::AcqRel);
                *remote
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
                *remote
                    .discovered
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                if source.inner.state.load().loaded {
                    tracing::warn!(origin = %source.inner.origin, %error, "JWKS fetch failed; keeping the last good key set");
                } else {
                    tracing::warn!(origin = %source.inner.origin, %error, "JWKS fetch failed; no keys yet, will retry");
                }
            }
        }
        result
    }

    async fn fetch_and_swap(&self, source: &KeySource) -> Result<(), FetchError> {
        let remote = self;
        let old = source.inner.state.load_full();
        let etag = old.loaded.then_some(old.etag.as_deref()).flatten();
        let (url, fetched) = remote.get(etag).await?;
        let now = source.inner.clock.now();
        match fetched {
            Fetched::NotModified { max_age } => {
                remote.not_modified.fetch_add(1, Ordering::AcqRel);
                remote.facade.fetched(None, now.as_secs_f64());
                let ttl = remote.ttl(max_age);
                tracing::debug!(url = %url, ttl_secs = ttl.as_secs(), "JWKS not modified");
                source.store(
                    Snapshot {
                        keys: old.keys.clone(),
                        loaded: true,
                        fetched_at: now,
                        fresh_until: now + ttl,
                        etag: old.etag.clone(),
                        generation: 0,
                    },
                    false,
                );
            }
            Fetched::Body {
                body,
                max_age,
                etag,
            } => {
                let keys = remote
                    .parse(&body, old.loaded.then_some(&*old.keys))
                    .map_err(|error| FetchError::Jwks {
                        url: url.clone(),
                        error,
                    })?;
                remote.facade.fetched(Some(keys.len()), now.as_secs_f64());
                let hint = match remote.config.location {
                    Location::File(_) => None,
                    _ => keys.spiffe_refresh_hint(),
                };
                let ttl = remote.ttl(hint.or(max_age));
                let changed = !old.loaded || !old.keys.same_keys(&keys);
                if changed {
                    tracing::info!(url = %url, kids = ?keys.kids(), ttl_secs = ttl.as_secs(), "JWKS key set swapped in");
                } else {
                    tracing::debug!(url = %url, ttl_secs = ttl.as_secs(), "JWKS unchanged");
                }
                // Same keys under a new bundle sequence: the set is stored
                // (its sequence is what the next bundle is held to), the
                // generation, and with it the verification cache, stays.
                let renumbered = keys.spiffe_sequence() != old.keys.spiffe_sequence();
                source.store(
                    Snapshot {
                        keys: if changed || renumbered {
                            Arc::new(keys)
                        } else {
                            old.keys.clone()
                        },
                        loaded: true,
                        fetched_at: now,
                        fresh_until: now + ttl,
                        etag,
                        generation: 0,
                    },
                    changed,
                );
            }
        }
        Ok(())
    }

    /// The keys of a fetched document, held to the rules of its format
    /// against `current`, the set in use.
    fn parse(&self, body: &[u8], current: Option<&KeySet>) -> Result<KeySet, JwksError> {
        let max_bytes = self.config.max_bytes;
        match self.config.format {
            Format::Jwks => {
                let keys = KeySet::from_jwks(body, max_bytes)?;
                if keys.is_empty() && !keys.skipped().is_empty() {
                    // Keys that are all unusable: the issuer is broken (or the
                    // document hostile); keep serving the last good set rather
                    // than lock everyone out. A well-formed empty set
                    // (`{"keys":[]}`) is different: the issuer says it trusts
                    // no key any more (withdrawing a leaked one), and as with a
                    // SPIFFE bundle, an empty set is applied and trusts nothing.
                    return Err(JwksError::NotJson("the set has no usable key".into()));
                }
                Ok(keys)
            }
            // A bundle with no usable key is applied: the bundle format says
            // every SVID of the trust domain is then invalid (§4.1.3). One
            // older than the bundle in use is not.
            Format::SpiffeBundle(kind) => {
                let keys = KeySet::from_spiffe_bundle(body, max_bytes, kind)?;
                let current = current.and_then(KeySet::spiffe_sequence);
                match (current, keys.spiffe_sequence()) {
                    (Some(current), Some(received)) if received < current => {
                        Err(JwksError::SequenceRegressed { current, received })
                    }
                    _ => Ok(keys),
                }
            }
        }
    }

    /// How long the background refresher waits before its next fetch.
    fn next_refresh_delay(&self, source: &KeySource) -> Duration {
        let remote = self;
        let failures = remote.consecutive_failures.load(Ordering::Acquire);
        if failures > 0 {
            return backoff(failures, jitter());
        }
        let snapshot = source.inner.state.load();
        if !snapshot.loaded {
            return Duration::ZERO;
        }
        // Refresh ahead of expiry: 10% of the TTL early, plus up to another
        // 10% of jitter, so replicas do not all fetch at the same instant.
        let ttl = snapshot.fresh_until.saturating_sub(snapshot.fetched_at);
        let lead = ttl.mul_f64(0.1 + 0.1 * jitter());
        snapshot
            .fresh_until
            .saturating_sub(lead)
            .saturating_sub(source.inner.clock.now())
            .max(BACKOFF_MIN)
    }
}

async fn refresher(weak: Weak<Inner>) {
    loop {
        let delay = {
            let Some(inner) = weak.upgrade() else { return };
            let source = KeySource { inner };
            let Some(remote) = &source.inner.remote else {
                return;
            };
            remote.next_refresh_delay(&source)
        };
        tokio::time::sleep(delay).await;
        let Some(inner) = weak.upgrade() else { return };
        let source = KeySource { inner };
        if let Some(remote) = &source.inner.remote {
            let _ = remote.fetch(&source, true).await;
        }
    }
}

/// The `jwks_uri` of an OpenID discovery document `body` fetched from
/// `discovery_url` for `issuer`: the document must name exactly that
/// issuer, and the `jwks_uri` must be https (or http to loopback, or any
/// http with `allow_insecure_http`) on the discovery document's origin or
/// one of `extra_origins`.
pub(crate) fn discovered_jwks_uri(
    body: &[u8],
    issuer: &str,
    discovery_url: &Url,
    allow_insecure_http: bool,
    extra_origins: &[url::Origin],
) -> Result<Url, FetchError> {
    let bad = |message: String| FetchError::Discovery {
        url: discovery_url.to_string(),
        message,
    };
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("not JSON: {e}")))?;
    let found = doc.get("issuer").and_then(|v| v.as_str()).unwrap_or("");
    if found != issuer {
        return Err(FetchError::IssuerMismatch {
            expected: issuer.to_owned(),
            found: found.chars().take(200).collect(),
        });
    }
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad("no jwks_uri".into()))?;
    let jwks_uri = Url::parse(jwks_uri).map_err(|_| bad("jwks_uri is not a URL".into()))?;
    if !http::url_allowed(&jwks_uri, allow_insecure_http) {
        return Err(FetchError::InsecureUrl(jwks_uri.to_string()));
    }
    let origin = jwks_uri.origin();
    if origin != discovery_url.origin() && !extra_origins.contains(&origin) {
        return Err(FetchError::JwksUriOrigin {
            jwks_uri: jwks_uri.as_str().chars().take(200).collect(),
        });
    }
    Ok(jwks_uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_one_minute() {
        assert_eq!(backoff(1, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(2, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(6, 0.0), Duration::from_secs(32));
        assert_eq!(backoff(7, 0.0), Duration::from_secs(60));
        assert_eq!(backoff(40, 0.0), Duration::from_secs(60));
        assert_eq!(backoff(7, 1.0), Duration::from_secs(48));
    }
}
