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
use std::sync::atomic::{AtomicU64, Ordering};

type Map<V> = HashMap<Box<str>, V, foldhash::fast::RandomState>;

/// One thread's copies, per owner (a cache instance), by string key. Bounded:
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
    pub fn get(&self, owner: u64, key: &str) -> Option<&V> {
        let (_, map) = self.owners.iter().find(|(id, _)| *id == owner)?;
        map.get(key)
    }

    /// Keeps `value` for `owner` and `key`, within `per_owner` entries and
    /// `max_owners` owners.
    pub fn insert(&mut self, owner: u64, key: &str, value: V, per_owner: usize, max_owners: usize) {
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
        map.insert(key.into(), value);
    }

    /// Drops the copy of `key` for `owner`.
    pub fn remove(&mut self, owner: u64, key: &str) {
        if let Some((_, map)) = self.owners.iter_mut().find(|(id, _)| *id == owner) {
            map.remove(key);
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
}
