//! The cache of successful verifications: the fast path.
//!
//! Signers reuse a token for minutes, so a service sees the same token again
//! and again. A hit costs one hash of the token, one lock-free map read and
//! a few integer comparisons: no JSON, no signature. Only tokens that passed
//! every check enter, so an attacker cannot fill the map with junk.

use std::cell::RefCell;
use std::sync::Arc;

use svcauth_core::__private::BoundedMap;
use svcauth_core::__private::PerThread;

use crate::claims::VerifiedClaims;
use crate::store::Revocations;
use crate::txn::TxnTokenClaims;
use crate::verifier::Verifier;

/// Entries each thread keeps of each verifier's cache.
const LOCAL_CAPACITY: usize = 256;
/// Verifiers a thread keeps entries for before it starts over.
const LOCAL_VERIFIERS: usize = 16;

thread_local! {
    /// Per-thread copies of hot entries, by cache id. A hit here touches no
    /// cache line another thread writes: the entry and its claims are this
    /// thread's own allocations, so their reference counts are not contended.
    static LOCAL: RefCell<PerThread<Entry>> = const { RefCell::new(PerThread::new()) };
    /// The same for Txn-Tokens.
    static LOCAL_TXN: RefCell<PerThread<Entry<TxnTokenClaims>>> = const { RefCell::new(PerThread::new()) };
}

/// What a cache holds: verified claims of one kind of token, with the
/// per-thread copies of their kind.
pub(crate) trait Cached: Clone + Send + Sync + 'static {
    /// Runs `f` on this thread's copies (the static itself, so that the
    /// thread-local access inlines as it would written out).
    fn with_local<R>(f: impl FnOnce(&RefCell<PerThread<Entry<Self>>>) -> R) -> R;
}

impl Cached for VerifiedClaims {
    #[inline]
    fn with_local<R>(f: impl FnOnce(&RefCell<PerThread<Entry<Self>>>) -> R) -> R {
        LOCAL.with(f)
    }
}

impl Cached for TxnTokenClaims {
    #[inline]
    fn with_local<R>(f: impl FnOnce(&RefCell<PerThread<Entry<Self>>>) -> R) -> R {
        LOCAL_TXN.with(f)
    }
}

pub(crate) struct Entry<C = VerifiedClaims> {
    pub(crate) claims: Arc<C>,
    /// Earliest acceptable time (`nbf` less leeway), seconds.
    pub(crate) valid_from: u64,
    /// Latest acceptable time (`exp` plus leeway), seconds.
    pub(crate) valid_until: u64,
    /// Index of the issuer, and its key-set generation when verified.
    pub(crate) issuer: usize,
    pub(crate) generation: u64,
    /// The deny-list's generation when checked (`Revocations::stamp`).
    pub(crate) revocations: u64,
}

impl<C> Clone for Entry<C> {
    fn clone(&self) -> Self {
        Entry {
            claims: self.claims.clone(),
            ..*self
        }
    }
}

pub(crate) struct VerifiedCache<C: Cached = VerifiedClaims> {
    map: BoundedMap<Box<str>, Arc<Entry<C>>>,
    id: u64,
}

impl<C: Cached> VerifiedCache<C> {
    pub(crate) fn new(capacity: usize) -> Self {
        VerifiedCache {
            map: BoundedMap::new(capacity),
            id: PerThread::<Entry<C>>::new_owner(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.map.capacity() > 0
    }

    /// The claims of `token` if an entry for it passes `fresh`: this
    /// thread's copy, else the shared entry, then copied for this thread. A
    /// copy that fails `fresh` is dropped (the shared entry may have been
    /// renewed since).
    ///
    /// `token` is the raw header bytes: a thread's copy matches only a token
    /// verified before, so a match needs no UTF-8 check; the shared map is
    /// looked up only with valid UTF-8.
    pub(crate) fn hit(&self, token: &[u8], fresh: impl Fn(&Entry<C>) -> bool) -> Option<Arc<C>> {
        if !self.enabled() {
            return None;
        }
        let local = C::with_local(|l| {
            let copies = l.borrow();
            let entry = copies.get(self.id, token)?;
            Some(fresh(entry).then(|| entry.claims.clone()))
        });
        match local {
            Some(Some(claims)) => return Some(claims),
            Some(None) => C::with_local(|l| l.borrow_mut().remove(self.id, token)),
            None => {}
        }
        let shared = self.map.get(std::str::from_utf8(token).ok()?)?;
        if !fresh(&shared) {
            return None;
        }
        let copy = Entry {
            claims: Arc::new(C::clone(&shared.claims)),
            ..Entry::clone(&shared)
        };
        let claims = copy.claims.clone();
        C::with_local(|l| {
            l.borrow_mut()
                .insert(self.id, token, copy, LOCAL_CAPACITY, LOCAL_VERIFIERS)
        });
        Some(claims)
    }

    pub(crate) fn insert(&self, token: &str, entry: Entry<C>, now: u64) {
        // When full, the entries still valid are the ones worth keeping.
        self.map
            .insert(token.into(), Arc::new(entry), |e| e.valid_until >= now);
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// The fast path of the [`Verifier`]: a lookup in its cache.
impl Verifier {
    /// The fast path: a token verified before, still valid, under the same
    /// key set and deny-list generation (a revocation store that keeps the
    /// deny-list in this process is not asked again). No await, no lock,
    /// no JSON, no signature.
    pub fn cached(&self, token: &str) -> Option<Arc<VerifiedClaims>> {
        self.cached_bytes(token.as_bytes())
    }

    /// [`cached`](Verifier::cached) for the raw bytes of a header: only a
    /// token verified before can match, so they need no validation first.
    pub(crate) fn cached_bytes(&self, token: &[u8]) -> Option<Arc<VerifiedClaims>> {
        self.cached_at(token).map(|(claims, _)| claims)
    }

    /// [`cached_bytes`](Self::cached_bytes), and the time (seconds) it
    /// was checked at, for the request's other checks.
    pub(crate) fn cached_at(&self, token: &[u8]) -> Option<(Arc<VerifiedClaims>, u64)> {
        let facade = &self.inner().metrics.facade;
        let sample = facade.sample_hit();
        let (claims, issuer, revocations, now) = self.cache_hit(token)?;
        if revocations.ask() {
            return None;
        }
        self.inner().metrics.accepted(true, issuer);
        if let Some(start) = sample {
            facade.duration(true, start.elapsed());
        }
        tracing::trace!(
            iss = claims.iss(),
            sub = claims.sub(),
            "token accepted from cache"
        );
        Some((claims, now))
    }

    /// A cached verification still good now (time, key set, deny-list),
    /// and the index of its issuer. A revocation store without a local copy
    /// of the deny-list is still to be asked.
    pub(crate) fn cache_hit(
        &self,
        token: &[u8],
    ) -> Option<(Arc<VerifiedClaims>, usize, Revocations, u64)> {
        let clock = self.inner().clock.now();
        let (now, revocations) = (clock.as_secs(), self.revocations(clock));
        let issuer = std::cell::Cell::new(0);
        let claims = self.inner().cache.hit(token, |entry| {
            issuer.set(entry.issuer);
            now >= entry.valid_from
                && now <= entry.valid_until
                && self.inner().issuers[entry.issuer].generation() == entry.generation
                && revocations.covers(entry.revocations)
        })?;
        Some((claims, issuer.get(), revocations, now))
    }
}
