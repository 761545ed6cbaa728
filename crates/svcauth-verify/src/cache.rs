//! The cache of successful verifications: the fast path.
//!
//! Signers reuse a token for minutes, so a service sees the same token again
//! and again. A hit costs one hash of the token, one lock-free map read and
//! a few integer comparisons: no JSON, no signature. Only tokens that passed
//! every check enter, so an attacker cannot fill the map with junk.

use std::cell::RefCell;
use std::sync::Arc;

use svcauth_core::bounded::BoundedMap;
use svcauth_core::per_thread::PerThread;

use crate::claims::VerifiedClaims;

/// Entries each thread keeps of each verifier's cache.
const LOCAL_CAPACITY: usize = 256;
/// Verifiers a thread keeps entries for before it starts over.
const LOCAL_VERIFIERS: usize = 16;

thread_local! {
    /// Per-thread copies of hot entries, by cache id. A hit here touches no
    /// cache line another thread writes: the entry and its claims are this
    /// thread's own allocations, so their reference counts are not contended.
    static LOCAL: RefCell<PerThread<Arc<Entry>>> = const { RefCell::new(PerThread::new()) };
}

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) claims: Arc<VerifiedClaims>,
    /// Earliest acceptable time (`nbf` less leeway), seconds.
    pub(crate) valid_from: u64,
    /// Latest acceptable time (`exp` plus leeway), seconds.
    pub(crate) valid_until: u64,
    /// Index of the issuer, and its key-set generation when verified.
    pub(crate) issuer: usize,
    pub(crate) generation: u64,
}

pub(crate) struct VerifiedCache {
    map: BoundedMap<Box<str>, Arc<Entry>>,
    id: u64,
}

impl VerifiedCache {
    pub(crate) fn new(capacity: usize) -> Self {
        VerifiedCache {
            map: BoundedMap::new(capacity),
            id: PerThread::<Arc<Entry>>::new_owner(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.map.capacity() > 0
    }

    /// The entry for `token`, if any (validity is the caller's to check):
    /// this thread's copy, else the shared entry, copied for this thread.
    pub(crate) fn get(&self, token: &str) -> Option<Arc<Entry>> {
        if !self.enabled() {
            return None;
        }
        let local = LOCAL.with(|l| l.borrow().get(self.id, token).cloned());
        if local.is_some() {
            return local;
        }
        let shared = self.map.get(token)?;
        let copy = Arc::new(Entry {
            claims: Arc::new(VerifiedClaims::clone(&shared.claims)),
            ..Entry::clone(&shared)
        });
        LOCAL.with(|l| {
            l.borrow_mut().insert(
                self.id,
                token,
                copy.clone(),
                LOCAL_CAPACITY,
                LOCAL_VERIFIERS,
            )
        });
        Some(copy)
    }

    /// Forgets this thread's copy of `token`. The shared entry stays until
    /// a new verification overwrites it or room is made (see
    /// [`BoundedMap`] for why nothing is removed); every hit re-checks it.
    pub(crate) fn forget_local(&self, token: &str) {
        LOCAL.with(|l| l.borrow_mut().remove(self.id, token));
    }

    pub(crate) fn insert(&self, token: &str, entry: Entry, now: u64) {
        // When full, the entries still valid are the ones worth keeping.
        self.map
            .insert(token.into(), Arc::new(entry), |e| e.valid_until >= now);
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}
