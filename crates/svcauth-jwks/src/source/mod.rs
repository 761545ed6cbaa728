//! Where a verifier gets an issuer's public keys: a remote JWKS cache, or a
//! static set distributed out of band. One type, [`KeySource`], so the
//! verifier does not care which.

mod builder;
mod facade;
mod file;
mod http;
pub(crate) mod remote;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;
use svcauth_core::{Algorithm, SharedClock, system_clock};

use crate::SvidKind;

pub use builder::RemoteBuilder;
pub use http::client_builder as http_client_builder;

use crate::error::{FetchError, KeyError};
use crate::key_set::{DEFAULT_MAX_JWKS_BYTES, KeySet, VerifyingKey};

/// The answer of a key lookup.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum KeyLookup {
    /// The key for the token.
    Found(Arc<VerifyingKey>),
    /// The set is loaded but has no key for this `kid` (a verifier answers 401).
    UnknownKid,
    /// No key set was ever loaded: the issuer has not been reachable yet
    /// (a verifier answers 503, not 401).
    NotLoaded,
    /// The last good set is older than the maximum staleness and the issuer
    /// is still unreachable: fail closed (a verifier answers 503).
    Expired,
}

impl KeyLookup {
    /// The key, if found.
    pub fn key(&self) -> Option<&Arc<VerifyingKey>> {
        match self {
            KeyLookup::Found(key) => Some(key),
            _ => None,
        }
    }
}

/// One consistent view of a source's keys.
pub(crate) struct Snapshot {
    pub(crate) keys: Arc<KeySet>,
    pub(crate) loaded: bool,
    /// Clock time of the last successful fetch or revalidation.
    pub(crate) fetched_at: Duration,
    /// Clock time until which the set is fresh (Cache-Control, clamped).
    pub(crate) fresh_until: Duration,
    pub(crate) etag: Option<String>,
    /// Bumped whenever the keys change.
    pub(crate) generation: u64,
}

/// The public keys of one trusted issuer: cheap to [`Clone`], shared by every
/// verifier of the process, lock-free to read.
///
/// A lookup is one atomic load of the current [`KeySet`] and a hash lookup:
/// no lock, no await, no allocation. A remote source refreshes in the
/// background and swaps a new set in whole; see [`RemoteBuilder`] for its
/// rules (Cache-Control, single flight on unknown kids, cooldown,
/// stale-if-error, ETag).
///
/// # Example
///
/// ```
/// use svcauth_core::Algorithm;
/// use svcauth_jwks::{KeyLookup, KeySet, KeySource, SigningKey};
///
/// let key = SigningKey::generate(Algorithm::ES256).unwrap();
/// let jwks = serde_json::json!({ "keys": [key.public_jwk()] }).to_string();
/// let source = KeySource::fixed(KeySet::from_jwks(jwks.as_bytes(), 65536).unwrap());
///
/// let KeyLookup::Found(found) = source.lookup(Some(key.kid())) else { panic!() };
/// let signature = key.sign(b"header.claims").unwrap();
/// assert!(found.verify(Algorithm::ES256, b"header.claims", &signature).is_ok());
/// assert!(matches!(source.lookup(Some("other")), KeyLookup::UnknownKid));
/// ```
///
/// A remote source (needs a Tokio runtime):
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use svcauth_jwks::KeySource;
///
/// let source = KeySource::discover("https://issuer.example")?.build()?;
/// source.refresh().await?; // optional: load before serving traffic
/// println!("{:?}", source.stats());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KeySource {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where the keys come from, for logs and stats.
    origin: String,
    state: ArcSwap<Snapshot>,
    /// `state`'s generation, readable with one atomic load: the
    /// verification cache checks it on every hit.
    generation: AtomicU64,
    clock: SharedClock,
    remote: Option<remote::Remote>,
}

/// A snapshot of a key source's state, for health endpoints and tests.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct KeySourceStats {
    /// The URL fetched (JWKS or discovery), or how the static set was given.
    pub origin: String,
    /// Whether a key set has ever been loaded.
    pub loaded: bool,
    /// Usable keys in the current set.
    pub key_count: usize,
    /// Their kids, sorted.
    pub kids: Vec<String>,
    /// Keys of the last document that were skipped, as `kid: reason`.
    pub skipped: Vec<String>,
    /// Changes whenever the set changes.
    pub generation: u64,
    /// HTTP fetch attempts (JWKS and discovery).
    pub fetches: u64,
    /// Fetches that produced a set (200 or 304).
    pub successes: u64,
    /// Fetches that failed.
    pub failures: u64,
    /// Fetches answered `304 Not Modified`.
    pub not_modified: u64,
    /// Seconds since the set was last fetched or revalidated.
    pub age_secs: Option<u64>,
    /// Seconds the set stays fresh for, from its fetch (clamped max-age).
    pub ttl_secs: Option<u64>,
    /// The last fetch error, cleared by the next success.
    pub last_error: Option<String>,
    /// Whether lookups fail closed because the set is too stale.
    pub expired: bool,
    /// The `spiffe_sequence` of the SPIFFE bundle in use.
    pub spiffe_sequence: Option<u64>,
}

impl KeySource {
    /// A remote source for a JWKS URL. See [`RemoteBuilder`].
    pub fn remote(jwks_url: &str) -> Result<RemoteBuilder, crate::ConfigError> {
        RemoteBuilder::jwks(jwks_url)
    }

    /// A remote source found by OpenID Connect discovery from `issuer`: its
    /// `/.well-known/openid-configuration` must name `issuer` exactly, and its
    /// `jwks_uri` is then fetched. See [`RemoteBuilder`].
    pub fn discover(issuer: &str) -> Result<RemoteBuilder, crate::ConfigError> {
        RemoteBuilder::discovery(issuer)
    }

    /// A remote source for a SPIFFE trust bundle endpoint (SPIFFE
    /// Federation's `https_web` profile, or any HTTPS URL serving a bundle):
    /// the keys for SVIDs of `kind`, refreshed at the bundle's
    /// `spiffe_refresh_hint`. A bundle whose `spiffe_sequence` is lower than
    /// the one in use is refused, like a failed fetch; a bundle with no key
    /// of `kind` is applied, and then every such SVID of the trust domain
    /// is refused. Everything else is as for [`KeySource::remote`].
    pub fn spiffe_bundle(url: &str, kind: SvidKind) -> Result<RemoteBuilder, crate::ConfigError> {
        RemoteBuilder::spiffe_bundle(url, kind)
    }

    /// A SPIFFE trust bundle in a file, watched: read again every 2 s
    /// ([`RemoteBuilder::default_ttl`] sets another interval), and swapped
    /// in when its bytes change. A file that goes missing or is broken
    /// keeps the last good bundle in use, up to the maximum staleness, as a
    /// failing endpoint does; the bundle rules are those of
    /// [`KeySource::spiffe_bundle`].
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use svcauth_core::Algorithm;
    /// use svcauth_jwks::{KeyLookup, KeySource, SigningKey, SvidKind};
    ///
    /// let key = SigningKey::generate(Algorithm::ES256).unwrap();
    /// let mut jwk = serde_json::to_value(key.public_jwk()).unwrap();
    /// jwk["use"] = "jwt-svid".into();
    /// let path = std::env::temp_dir().join(format!("bundle-{}.json", std::process::id()));
    /// std::fs::write(&path, serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
    ///
    /// let source = KeySource::spiffe_bundle_file(&path, SvidKind::Jwt).build().unwrap();
    /// source.refresh().await.unwrap();
    /// assert!(matches!(source.lookup(Some(key.kid())), KeyLookup::Found(_)));
    /// # std::fs::remove_file(&path).unwrap();
    /// # }
    /// ```
    pub fn spiffe_bundle_file(path: impl AsRef<Path>, kind: SvidKind) -> RemoteBuilder {
        RemoteBuilder::spiffe_bundle_file(path.as_ref().to_path_buf(), kind)
    }

    /// A static source that never fetches.
    pub fn fixed(keys: KeySet) -> Self {
        Self::from_parts(String::from("static"), keys, None, system_clock())
    }

    /// A static source from a JWKS file (bad keys skipped as in
    /// [`KeySet::from_jwks`]).
    pub fn from_jwks_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let keys = KeySet::from_jwks(&bytes, DEFAULT_MAX_JWKS_BYTES)?;
        Ok(Self::from_parts(
            format!("file:{}", path.display()),
            keys,
            None,
            system_clock(),
        ))
    }

    /// A static source from PEM public keys (`-----BEGIN PUBLIC KEY-----`),
    /// each with its kid (or `None` for its RFC 7638 thumbprint) and its
    /// algorithm (or `None` for the one its type implies).
    pub fn from_public_pems<'a>(
        keys: impl IntoIterator<Item = (&'a str, Option<&'a str>, Option<Algorithm>)>,
    ) -> Result<Self, KeyError> {
        let keys = keys
            .into_iter()
            .map(|(pem, kid, alg)| VerifyingKey::from_public_pem(pem, kid, alg))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::fixed(KeySet::from_keys(keys)?))
    }

    /// A static source from an environment variable holding either a JWKS
    /// document or one PEM public key.
    pub fn from_env(var: &str) -> Result<Self, KeyError> {
        let text = std::env::var(var).map_err(|_| KeyError::Env(var.to_owned()))?;
        let keys = if text.trim_start().starts_with("-----BEGIN") {
            KeySet::from_keys([VerifyingKey::from_public_pem(&text, None, None)?])?
        } else {
            KeySet::from_jwks(text.as_bytes(), DEFAULT_MAX_JWKS_BYTES)?
        };
        Ok(Self::from_parts(
            format!("env:{var}"),
            keys,
            None,
            system_clock(),
        ))
    }

    fn from_parts(
        origin: String,
        keys: KeySet,
        remote: Option<remote::Remote>,
        clock: SharedClock,
    ) -> Self {
        let loaded = remote.is_none();
        let now = clock.now();
        KeySource {
            inner: Arc::new(Inner {
                origin,
                state: ArcSwap::from_pointee(Snapshot {
                    keys: Arc::new(keys),
                    loaded,
                    fetched_at: now,
                    fresh_until: Duration::MAX,
                    etag: None,
                    generation: u64::from(loaded),
                }),
                generation: AtomicU64::new(u64::from(loaded)),
                clock,
                remote,
            }),
        }
    }

    /// Finds the key for `kid` in the current set, without any I/O.
    pub fn lookup(&self, kid: Option<&str>) -> KeyLookup {
        self.lookup_versioned(kid).0
    }

    /// [`lookup`](KeySource::lookup), with the [`generation`](KeySource::generation)
    /// of the very set the answer came from, so a cache of verifications can
    /// tie its entries to it.
    pub fn lookup_versioned(&self, kid: Option<&str>) -> (KeyLookup, u64) {
        let snapshot = self.inner.state.load();
        (self.lookup_in(&snapshot, kid), snapshot.generation)
    }

    fn lookup_in(&self, snapshot: &Snapshot, kid: Option<&str>) -> KeyLookup {
        if !snapshot.loaded {
            return KeyLookup::NotLoaded;
        }
        if let Some(remote) = &self.inner.remote {
            let limit = snapshot
                .fetched_at
                .saturating_add(remote.config.max_staleness);
            if self.inner.clock.now() > limit {
                return KeyLookup::Expired;
            }
        }
        match snapshot.keys.get(kid) {
            Some(key) => KeyLookup::Found(key.clone()),
            None => KeyLookup::UnknownKid,
        }
    }

    /// Finds the key for `kid`, fetching the issuer's set once if the kid is
    /// unknown or no set is loaded.
    ///
    /// Concurrent callers share one fetch (single flight), and after a fetch
    /// no other is made for an unknown kid until the cooldown has passed, so
    /// a flood of random kids costs the issuer at most one request per
    /// cooldown and costs each caller one atomic load. A static source never
    /// fetches.
    pub async fn resolve(&self, kid: Option<&str>) -> KeyLookup {
        self.resolve_versioned(kid).await.0
    }

    /// [`resolve`](KeySource::resolve), with the generation of the set the
    /// answer came from.
    ///
    /// Without a `kid`, a set of several keys has no answer and a fetch
    /// would not give one: that is an unknown kid at once. A set past its
    /// maximum staleness is reported at once too: the background refresher
    /// keeps trying, and making every request wait on a fetch to an issuer
    /// down for that long would only make them all slow.
    pub async fn resolve_versioned(&self, kid: Option<&str>) -> (KeyLookup, u64) {
        let first = self.lookup_versioned(kid);
        match (&first.0, kid) {
            (KeyLookup::Found(_) | KeyLookup::Expired, _) | (KeyLookup::UnknownKid, None) => {
                return first;
            }
            _ => {}
        }
        let Some(remote) = &self.inner.remote else {
            return first;
        };
        remote.ensure_refresher(self);
        // A fetch under way (the background refresher's first one, say) is
        // waited for, not reported as a miss: its answer may hold the kid.
        if !remote.may_fetch(self.inner.clock.now(), self.is_loaded()) && !remote.fetch_in_flight()
        {
            remote.facade.cooldown_refusal();
            return first;
        }
        if matches!(first.0, KeyLookup::UnknownKid) {
            remote.facade.unknown_kid_refetch();
        }
        let _ = remote.fetch(self, false).await;
        self.lookup_versioned(kid)
    }

    /// Fetches the set now (sharing a fetch already under way), whatever the
    /// cooldown. The result of a shared fetch is reported as `Ok`.
    pub async fn refresh(&self) -> Result<(), FetchError> {
        match &self.inner.remote {
            Some(remote) => {
                remote.ensure_refresher(self);
                remote.fetch(self, true).await
            }
            None => Ok(()),
        }
    }

    /// The current key set.
    pub fn keys(&self) -> Arc<KeySet> {
        self.inner.state.load().keys.clone()
    }

    /// A number that changes whenever the key set changes.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Whether a set has ever been loaded.
    pub fn is_loaded(&self) -> bool {
        self.inner.state.load().loaded
    }

    /// The state of the source, for health endpoints and tests.
    pub fn stats(&self) -> KeySourceStats {
        let snapshot = self.inner.state.load();
        let now = self.inner.clock.now();
        let (fetches, successes, failures, not_modified, last_error) = match &self.inner.remote {
            Some(r) => r.counters(),
            None => (0, 0, 0, 0, None),
        };
        let remote = self.inner.remote.as_ref();
        KeySourceStats {
            origin: self.inner.origin.clone(),
            loaded: snapshot.loaded,
            key_count: snapshot.keys.len(),
            kids: snapshot.keys.kids(),
            skipped: snapshot
                .keys
                .skipped()
                .iter()
                .map(|s| format!("{}: {}", s.kid.as_deref().unwrap_or("<no kid>"), s.reason))
                .collect(),
            generation: self.generation(),
            fetches,
            successes,
            failures,
            not_modified,
            age_secs: (snapshot.loaded && remote.is_some())
                .then(|| now.saturating_sub(snapshot.fetched_at).as_secs()),
            ttl_secs: (snapshot.loaded && remote.is_some()).then(|| {
                snapshot
                    .fresh_until
                    .saturating_sub(snapshot.fetched_at)
                    .as_secs()
            }),
            last_error,
            expired: matches!(self.lookup(None), KeyLookup::Expired),
            spiffe_sequence: snapshot.keys.spiffe_sequence(),
        }
    }

    /// Swaps in a new snapshot; `changed` keys get a new generation. Only
    /// the fetch path calls this, under the fetch lock, so the read of the
    /// previous generation cannot race another store.
    fn store(&self, mut snapshot: Snapshot, changed: bool) {
        let previous = self.inner.state.load().generation;
        snapshot.generation = previous + u64::from(changed);
        let generation = snapshot.generation;
        self.inner.state.store(Arc::new(snapshot));
        self.inner.generation.store(generation, Ordering::Release);
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.inner.state.load();
        f.debug_struct("KeySource")
            .field("origin", &self.inner.origin)
            .field("loaded", &snapshot.loaded)
            .field("kids", &snapshot.keys.kids())
            .finish()
    }
}
