//! Bounded per-thread copies of hot cache entries, for svcauth's caches.
//!
//! A cache shared by all threads hands out values whose reference counts
//! every thread then increments and decrements: the same cache line, written
//! by all cores on every hit. Keeping a thread's own copy of a hot entry makes
//! a repeat hit touch only memory that thread writes. This type is the
//! per-thread side; each cache declares its own `thread_local!` of it and
//! re-validates a copy on every hit.
//!
//! Support for svcauth's own crates; not meant as a general-purpose cache.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

type Map<V> = HashMap<Box<[u8]>, V, TailHash>;

/// Bytes of a key that are hashed: its last 32.
const TAIL: usize = 32;

/// Hashes only the tail of each key. A token's tail is its signature,
/// different for every token, and hashing 300 bytes on every hit cost more
/// than the rest of the lookup; equality still compares whole keys. Keys
/// here are verified tokens and configured audiences, not attacker-chosen
/// strings, and a map holds at most a few hundred.
#[derive(Default, Clone, Debug)]
struct TailHash(foldhash::fast::RandomState);

impl BuildHasher for TailHash {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

struct TailHasher(foldhash::fast::FoldHasher<'static>);

impl Hasher for TailHasher {
    fn finish(&self) -> u64 {
        self.0.finish()
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.write(&bytes[bytes.len().saturating_sub(TAIL)..]);
    }

    fn write_u8(&mut self, i: u8) {
        self.0.write_u8(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.0.write_usize(i);
    }
}

/// One thread's copies, per owner (a cache instance), by string (or byte) key. Bounded:
/// an owner that reaches its entry limit, or a thread that reaches its owner
/// limit, starts over rather than evicting one by one.
#[derive(Debug)]
pub struct PerThread<V> {
    owners: Vec<(u64, Map<V>)>,
}

impl<V> Default for PerThread<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> PerThread<V> {
    /// No copies (usable in a `const` thread-local initialiser).
    pub const fn new() -> Self {
        PerThread { owners: Vec::new() }
    }

    /// A fresh owner id, unique in the process.
    pub fn new_owner() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// The copy of `key` for `owner`, if any.
    pub fn get(&self, owner: u64, key: &(impl AsRef<[u8]> + ?Sized)) -> Option<&V> {
        let (_, map) = self.owners.iter().find(|(id, _)| *id == owner)?;
        map.get(key.as_ref())
    }

    /// Keeps `value` for `owner` and `key`, within `per_owner` entries and
    /// `max_owners` owners.
    pub fn insert(
        &mut self,
        owner: u64,
        key: &(impl AsRef<[u8]> + ?Sized),
        value: V,
        per_owner: usize,
        max_owners: usize,
    ) {
        let index = match self.owners.iter().position(|(id, _)| *id == owner) {
            Some(index) => index,
            None => {
                if self.owners.len() >= max_owners {
                    self.owners.clear();
                }
                self.owners.push((owner, Map::default()));
                self.owners.len() - 1
            }
        };
        let map = &mut self.owners[index].1;
        if map.len() >= per_owner {
            map.clear();
        }
        map.insert(key.as_ref().into(), value);
    }

    /// Drops the copy of `key` for `owner`.
    pub fn remove(&mut self, owner: u64, key: &(impl AsRef<[u8]> + ?Sized)) {
        if let Some((_, map)) = self.owners.iter_mut().find(|(id, _)| *id == owner) {
            map.remove(key.as_ref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_per_owner_and_bounded() {
        let (a, b) = (PerThread::<u32>::new_owner(), PerThread::<u32>::new_owner());
        let mut copies = PerThread::new();
        copies.insert(a, "k", 1, 2, 2);
        copies.insert(b, "k", 2, 2, 2);
        assert_eq!(
            (copies.get(a, "k"), copies.get(b, "k")),
            (Some(&1), Some(&2))
        );
        copies.insert(a, "l", 3, 2, 2);
        copies.insert(a, "m", 4, 2, 2); // a reaches 2 entries: starts over
        assert_eq!((copies.get(a, "k"), copies.get(a, "m")), (None, Some(&4)));
        copies.remove(b, "k");
        assert_eq!(copies.get(b, "k"), None);
        copies.insert(PerThread::<u32>::new_owner(), "k", 5, 2, 2); // a third owner: starts over
        assert_eq!(copies.get(a, "m"), None);
    }

    #[test]
    fn keys_with_the_same_tail_stay_distinct() {
        let owner = PerThread::<u32>::new_owner();
        let mut copies = PerThread::new();
        let tail = "x".repeat(40);
        let (k1, k2) = (format!("a{tail}"), format!("b{tail}"));
        copies.insert(owner, &k1, 1, 10, 10);
        copies.insert(owner, &k2, 2, 10, 10);
        assert_eq!(copies.get(owner, &k1), Some(&1));
        assert_eq!(copies.get(owner, &k2), Some(&2));
        assert_eq!(copies.get(owner, &tail), None);
    }
}
