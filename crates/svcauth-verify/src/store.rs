//! Replay and revocation state: traits, and bounded in-memory implementations
//! for a single process. `svcauth-redis` shares them across replicas.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use svcauth_core::SharedClock;

use crate::claims::VerifiedClaims;
use crate::error::{ErrorKind, VerifyError};
use crate::facade::StoreOutcome;

/// A boxed future, as the store traits return.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store did not answer. The verifier fails closed (503) unless the store
/// is configured otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token state store unavailable: {0}")]
pub struct StoreError(pub String);

/// Remembers the ids of bound tokens so that each is accepted once.
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `id` until `expires_at` (seconds since the Unix epoch) and
    /// answers whether this was its first use. Must be atomic: of concurrent
    /// calls with the same id, exactly one answers `true`.
    fn first_use<'a>(&'a self, id: &'a str, expires_at: u64) -> StoreFuture<'a, bool>;
}

/// Answers whether a verified token is revoked.
pub trait RevocationStore: Send + Sync + 'static {
    /// Whether the token is revoked: by its `jti`, or by its issuer's key.
    fn is_revoked<'a>(&'a self, token: RevocationQuery<'a>) -> StoreFuture<'a, bool>;

    /// For a store that holds the whole deny-list in this process (in
    /// memory, or a mirror of a shared one): its [`RevocationGeneration`].
    /// The verifier then re-checks a cached verification only when the
    /// generation has moved since, so a cache hit asks the store nothing;
    /// and while the copy is stale it asks [`is_revoked`](Self::is_revoked)
    /// on every request, which applies the store's failure policy. `None`
    /// (the default): the store is asked on every request, cache hit or not.
    fn generation(&self) -> Option<Arc<RevocationGeneration>> {
        None
    }
}

/// How current a deny-list held in this process is: a generation that
/// moves whenever a revocation is learnt, and until when (clock time, ms)
/// the copy may be trusted without hearing from its source.
///
/// ```
/// use svcauth_verify::RevocationGeneration;
///
/// let mirror = RevocationGeneration::stale();
/// assert_eq!(mirror.current(1_000), None); // never synchronised: not trusted
/// mirror.confirm_until(2_000); // the source answered; trusted for a while
/// let seen = mirror.current(1_500).unwrap();
/// mirror.advance(); // a revocation arrived
/// assert_ne!(mirror.current(1_500), Some(seen));
/// assert_eq!(mirror.current(2_001), None); // not heard from the source since
/// ```
#[derive(Debug)]
pub struct RevocationGeneration {
    generation: AtomicU64,
    fresh_until_ms: AtomicU64,
}

impl RevocationGeneration {
    /// A copy that is the deny-list itself (a store in this process):
    /// always current.
    pub fn always_fresh() -> Self {
        RevocationGeneration {
            generation: AtomicU64::new(0),
            fresh_until_ms: AtomicU64::new(u64::MAX),
        }
    }

    /// A copy not synchronised yet: not trusted until
    /// [`confirm_until`](Self::confirm_until).
    pub fn stale() -> Self {
        RevocationGeneration {
            generation: AtomicU64::new(0),
            fresh_until_ms: AtomicU64::new(0),
        }
    }

    /// The generation, if the copy is current at `now_ms`.
    #[inline]
    pub fn current(&self, now_ms: u64) -> Option<u64> {
        let generation = self.generation.load(Ordering::Acquire);
        (now_ms <= self.fresh_until_ms.load(Ordering::Acquire)).then_some(generation)
    }

    /// A revocation was added to the copy (call after adding it): every
    /// cached verification is checked again.
    pub fn advance(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The copy holds every revocation made before a moment whose clock
    /// time plus the staleness bound is `until_ms`.
    pub fn confirm_until(&self, until_ms: u64) {
        self.fresh_until_ms.store(until_ms, Ordering::Release);
    }
}

/// Where the deny-list stands for one request, read once: what a cached
/// verification needs before it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Revocations {
    /// No revocation store.
    Unchecked,
    /// A store without a local copy: asked after every cache hit.
    Ask,
    /// A current local copy at this generation.
    At(u64),
    /// A local copy too stale to trust: asked, and its policy applies.
    Stale,
}

impl Revocations {
    /// Whether a verification checked at generation `checked` may be used
    /// (after asking the store, if [`ask`](Self::ask) says so).
    #[inline]
    pub(crate) fn covers(self, checked: u64) -> bool {
        match self {
            Revocations::At(generation) => generation == checked,
            Revocations::Unchecked | Revocations::Ask | Revocations::Stale => true,
        }
    }

    /// Whether the store must be asked about a cached verification: it keeps
    /// no local copy, or its copy is stale and its failure policy decides.
    #[inline]
    pub(crate) fn ask(self) -> bool {
        matches!(self, Revocations::Ask | Revocations::Stale)
    }

    /// The generation a new cache entry records.
    pub(crate) fn stamp(self) -> u64 {
        match self {
            Revocations::At(generation) => generation,
            _ => u64::MAX,
        }
    }
}

/// What a revocation check can look at.
#[derive(Debug, Clone, Copy)]
pub struct RevocationQuery<'a> {
    /// The issuer.
    pub iss: &'a str,
    /// The token id, if any.
    pub jti: Option<&'a str>,
    /// The signing key's id, if any.
    pub kid: Option<&'a str>,
    /// The token's expiry.
    pub exp: u64,
}

#[derive(Debug, Default)]
struct Seen {
    ids: HashMap<String, u64>,
    /// The second of the last sweep: entries expire in whole seconds, so a
    /// second sweep in the same second frees nothing, and a full store must
    /// not scan every id on every request.
    swept_at: u64,
}

/// A bounded in-memory [`ReplayStore`] for one process.
///
/// Entries expire with their tokens. When full of unexpired entries it
/// refuses new ids (the verifier answers 503) rather than forget one: a
/// forgotten id could be replayed.
#[derive(Debug)]
pub struct MemoryReplayStore {
    seen: Mutex<Seen>,
    capacity: usize,
    clock: SharedClock,
}

impl MemoryReplayStore {
    /// A store for at most `capacity` live ids.
    pub fn new(capacity: usize, clock: SharedClock) -> Self {
        MemoryReplayStore {
            seen: Mutex::new(Seen::default()),
            capacity,
            clock,
        }
    }

    /// Number of ids held.
    pub fn len(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ids
            .len()
    }

    /// Whether no id is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReplayStore for MemoryReplayStore {
    fn first_use<'a>(&'a self, id: &'a str, expires_at: u64) -> StoreFuture<'a, bool> {
        let now = self.clock.now_secs();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let result = if seen.ids.get(id).is_some_and(|exp| *exp >= now) {
            Ok(false)
        } else {
            if seen.ids.len() >= self.capacity && seen.swept_at != now {
                seen.ids.retain(|_, exp| *exp >= now);
                seen.swept_at = now;
            }
            if seen.ids.len() >= self.capacity {
                Err(StoreError("replay store is full".into()))
            } else {
                seen.ids.insert(id.to_owned(), expires_at);
                Ok(true)
            }
        };
        Box::pin(std::future::ready(result))
    }
}

/// An in-memory [`RevocationStore`]: deny-lists of token ids (kept until the
/// token would expire anyway) and of signing keys.
#[derive(Debug)]
pub struct MemoryRevocationStore {
    jtis: RwLock<HashMap<String, u64>>,
    keys: RwLock<HashSet<(String, String)>>,
    generation: Arc<RevocationGeneration>,
    clock: SharedClock,
}

impl MemoryRevocationStore {
    /// An empty deny-list.
    pub fn new(clock: SharedClock) -> Self {
        MemoryRevocationStore {
            jtis: RwLock::new(HashMap::new()),
            keys: RwLock::new(HashSet::new()),
            generation: Arc::new(RevocationGeneration::always_fresh()),
            clock,
        }
    }

    /// Revokes the token `jti` until `until` (its `exp`).
    pub fn revoke_jti(&self, jti: &str, until: u64) {
        let now = self.clock.now_secs();
        let mut jtis = self.jtis.write().unwrap_or_else(PoisonError::into_inner);
        jtis.retain(|_, exp| *exp >= now);
        jtis.insert(jti.to_owned(), until);
        drop(jtis);
        self.generation.advance();
    }

    /// Revokes every token of `iss` signed with key `kid`.
    pub fn revoke_key(&self, iss: &str, kid: &str) {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((iss.to_owned(), kid.to_owned()));
        self.generation.advance();
    }
}

impl RevocationStore for MemoryRevocationStore {
    fn is_revoked<'a>(&'a self, token: RevocationQuery<'a>) -> StoreFuture<'a, bool> {
        let by_jti = token.jti.is_some_and(|jti| {
            self.jtis
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(jti)
        });
        let by_key = token.kid.is_some_and(|kid| {
            self.keys
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&(token.iss.to_owned(), kid.to_owned()))
        });
        Box::pin(std::future::ready(Ok(by_jti || by_key)))
    }

    fn generation(&self) -> Option<Arc<RevocationGeneration>> {
        Some(self.generation.clone())
    }
}

/// The verifier's use of its stores: the deny-list after every check, and
/// single use of bound tokens and workload proofs.
impl crate::verifier::Verifier {
    /// Where the deny-list stands at `now`, for the cached verifications
    /// of one request.
    #[inline]
    pub(crate) fn revocations(&self, now: std::time::Duration) -> Revocations {
        let inner = self.inner();
        match (&inner.revocation, &inner.revocation_generation) {
            (None, _) => Revocations::Unchecked,
            (Some(_), None) => Revocations::Ask,
            (Some(_), Some(copy)) => match copy.current(now.as_millis() as u64) {
                Some(generation) => Revocations::At(generation),
                None => Revocations::Stale,
            },
        }
    }

    pub(crate) async fn check_revocation(
        &self,
        claims: &VerifiedClaims,
    ) -> Result<(), VerifyError> {
        let Some(store) = &self.inner().revocation else {
            return Ok(());
        };
        let query = RevocationQuery {
            iss: claims.iss(),
            jti: claims.jti(),
            kid: claims.kid(),
            exp: claims.expires_at(),
        };
        let start = std::time::Instant::now();
        let answer = store.is_revoked(query).await;
        let outcome = StoreOutcome::of(answer.as_ref().map(|revoked| !revoked));
        self.inner()
            .metrics
            .facade
            .revocation(outcome, start.elapsed());
        match answer {
            Ok(false) => Ok(()),
            Ok(true) => Err(ErrorKind::Revoked.into()),
            Err(error) => {
                tracing::warn!(%error, "revocation store unavailable");
                Err(ErrorKind::StoreUnavailable.into())
            }
        }
    }

    /// Accepts a bound token once.
    pub(crate) async fn check_replay(&self, claims: &VerifiedClaims) -> Result<(), VerifyError> {
        if self.inner().replay.is_none() {
            return Ok(());
        }
        let jti = claims.jti().ok_or(ErrorKind::MissingJti)?;
        let id = format!("{}\n{jti}", claims.iss());
        // Kept a second past the last second the token can be accepted in,
        // so that a store reading its clock mid-second cannot free the id
        // while the token is still acceptable.
        let until = claims
            .expires_at()
            .saturating_add(self.inner().policy.leeway)
            .saturating_add(1);
        self.first_use(&id, until, ErrorKind::Replayed).await
    }

    /// Records `id` in the replay store until `until`; `replayed` when it
    /// was there already. Without a store (the `danger_` option), accepts.
    pub(crate) async fn first_use(
        &self,
        id: &str,
        until: u64,
        replayed: ErrorKind,
    ) -> Result<(), VerifyError> {
        let Some(store) = &self.inner().replay else {
            return Ok(());
        };
        let start = std::time::Instant::now();
        let answer = store.first_use(id, until).await;
        let outcome = StoreOutcome::of(answer.as_ref().map(|first| *first));
        self.inner().metrics.facade.replay(outcome, start.elapsed());
        match answer {
            Ok(true) => Ok(()),
            Ok(false) => Err(replayed.into()),
            Err(error) => {
                tracing::warn!(%error, "replay store unavailable");
                Err(ErrorKind::StoreUnavailable.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use svcauth_core::ManualClock;

    use super::*;

    #[tokio::test]
    async fn a_full_replay_store_refuses_until_entries_expire() {
        let clock = ManualClock::at_secs(1_000);
        let store = MemoryReplayStore::new(2, Arc::new(clock.clone()));
        assert_eq!(store.first_use("a", 1_010).await, Ok(true));
        assert_eq!(store.first_use("a", 1_010).await, Ok(false));
        assert_eq!(store.first_use("b", 1_020).await, Ok(true));
        // Full of live ids: a new one is refused, never let through.
        assert!(store.first_use("c", 1_030).await.is_err());
        assert!(store.first_use("d", 1_030).await.is_err());
        // Once "a" has expired, the next second's sweep makes room.
        clock.advance(Duration::from_secs(11));
        assert_eq!(store.first_use("c", 1_030).await, Ok(true));
        assert_eq!(store.len(), 2);
        assert_eq!(store.first_use("b", 1_020).await, Ok(false));
    }
}
