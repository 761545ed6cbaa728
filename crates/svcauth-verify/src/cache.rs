//! The cache of successful verifications: the fast path.
//!
//! Signers reuse a token for minutes, so a service sees the same token again
//! and again. A hit costs one hash of the token, one lock-free map read and
//! a few integer comparisons: no JSON, no signature. Only tokens that passed
//! every check enter, so an attacker cannot fill the map with junk.

use std::cell::RefCell;
use std::sync::Arc;

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

type Map = papaya::HashMap<Box<str>, Arc<Entry>, foldhash::fast::RandomState>;

pub(crate) struct VerifiedCache {
    map: Map,
    capacity: usize,
    id: u64,
}

impl VerifiedCache {
    pub(crate) fn new(capacity: usize) -> Self {
        VerifiedCache {
            map: papaya::HashMap::builder()
                .hasher(foldhash::fast::RandomState::default())
                .capacity(capacity.min(4096))
                .build(),
            capacity,
            id: PerThread::<Arc<Entry>>::new_owner(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.capacity > 0
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
        let shared = self.map.pin().get(token).cloned()?;
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

    /// Forgets `token` here and in this thread's copies (other threads'
    /// copies check their own validity on every hit).
    pub(crate) fn remove(&self, token: &str) {
        self.map.pin().remove(token);
        LOCAL.with(|l| l.borrow_mut().remove(self.id, token));
    }

    pub(crate) fn insert(&self, token: &str, entry: Entry, now: u64) {
        if !self.enabled() {
            return;
        }
        let map = self.map.pin();
        if map.len() >= self.capacity {
            // Drop what has expired; if that is not enough, drop an eighth of
            // the entries, so the scan runs once per capacity/8 inserts.
            map.retain(|_, e| e.valid_until >= now);
            if map.len() >= self.capacity {
                let excess = map.len() + 1 - self.capacity + self.capacity / 8;
                let victims: Vec<Box<str>> = map.keys().take(excess).cloned().collect();
                for key in victims {
                    map.remove(&key);
                }
            }
        }
        map.insert(token.into(), Arc::new(entry));
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}
