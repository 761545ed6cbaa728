//! The swap cache: one slot per reference token, keyed by its SHA-256.
//!
//! A slot is a `OnceCell`: the first request for a token resolves it, the
//! requests that arrive meanwhile wait for that answer (single flight), and
//! later ones read it with no lock (the bounded map, then the cell). An
//! expired slot is replaced, never mutated.

use std::sync::Arc;

use svcauth_core::__private::BoundedMap;
use tokio::sync::OnceCell;

use crate::gateway::Swapped;

/// SHA-256 of a reference token: the only form in which it is kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Digest([u8; 32]);

impl Digest {
    pub(crate) fn of(token: &str) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Digest(bytes)
    }
}

/// What the authorization server said of a token, and until when (ms since
/// the epoch) the answer is reused.
#[derive(Debug)]
pub(crate) enum Outcome {
    Active {
        swapped: Swapped,
        until: u64,
    },
    Inactive {
        until: u64,
    },
    Unavailable {
        until: u64,
        retry_after: u64,
    },
    /// The miss rate limit said no; not reused.
    Limited,
}

impl Outcome {
    pub(crate) fn expired(&self, now: u64) -> bool {
        match self {
            Outcome::Active { until, .. }
            | Outcome::Inactive { until }
            | Outcome::Unavailable { until, .. } => now >= *until,
            Outcome::Limited => true,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Outcome::Active { .. } => "active",
            Outcome::Inactive { .. } => "inactive",
            Outcome::Unavailable { .. } => "unavailable",
            Outcome::Limited => "rate_limited",
        }
    }

    fn until(&self) -> u64 {
        match self {
            Outcome::Active { until, .. }
            | Outcome::Inactive { until }
            | Outcome::Unavailable { until, .. } => *until,
            Outcome::Limited => 0,
        }
    }
}

pub(crate) type Slot = Arc<OnceCell<Outcome>>;

pub(crate) struct SwapCache {
    map: BoundedMap<Digest, Slot>,
}

impl SwapCache {
    pub(crate) fn new(capacity: usize) -> Self {
        SwapCache {
            map: BoundedMap::new(capacity),
        }
    }

    /// The slot of `digest`: the one stored, unless its answer has expired,
    /// else a new empty one stored in its place.
    pub(crate) fn slot(&self, digest: Digest, now: u64) -> Slot {
        self.map.get_or_insert_with(
            digest,
            || Arc::new(OnceCell::new()),
            |slot| slot.get().is_some_and(|o| o.expired(now)),
            // When full: drop what has expired (pending slots stay).
            |slot| slot.get().is_none_or(|o| o.until() > now),
        )
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}
