//! The cache of successful verifications: the fast path.
//!
//! Signers reuse a token for minutes, so a service sees the same token again
//! and again. A hit costs one hash of the token, one lock-free map read and
//! a few integer comparisons: no JSON, no signature. Only tokens that passed
//! every check enter, so an attacker cannot fill the map with junk.

use std::sync::Arc;

use crate::claims::VerifiedClaims;

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
}

impl VerifiedCache {
    pub(crate) fn new(capacity: usize) -> Self {
        VerifiedCache {
            map: papaya::HashMap::builder()
                .hasher(foldhash::fast::RandomState::default())
                .capacity(capacity.min(4096))
                .build(),
            capacity,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The entry for `token`, if any (validity is the caller's to check).
    pub(crate) fn get(&self, token: &str) -> Option<Arc<Entry>> {
        if !self.enabled() {
            return None;
        }
        self.map.pin().get(token).cloned()
    }

    pub(crate) fn remove(&self, token: &str) {
        self.map.pin().remove(token);
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
