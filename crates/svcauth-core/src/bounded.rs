//! [`BoundedMap`]: the shared map behind svcauth's caches (verifications,
//! minted tokens, swapped reference tokens). Lock-free reads; a bound on the
//! number of entries; nothing is ever removed from a live map.
//!
//! Why nothing is removed: papaya 0.2.5, kept at a bound by removing entries
//! (`remove` or `retain`) while new keys keep arriving, hangs in `insert`
//! after about 3.6 times its capacity in distinct keys. The thread loops in
//! `help_copy` and allocates without end (24 GiB in under two minutes, then
//! the OOM killer). The benchmarks' 1,000,000-token run found it. So instead,
//! a full map is replaced: a new map receives the entries worth keeping (at
//! most 7/8 of the bound) and is swapped in atomically, and readers of the old
//! one finish undisturbed. Overwriting a key (papaya's in-place update) is
//! safe and is how a stale entry gets replaced.
//!
//! Support for svcauth's own crates; not meant as a general-purpose cache.

use std::hash::Hash;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
pub use papaya::Equivalent;
use papaya::Operation;

type Map<K, V> = papaya::HashMap<K, V, foldhash::fast::RandomState>;

/// Entries allocated up front, whatever the bound.
const PREALLOCATED: usize = 1024;

/// A concurrent map of at most `capacity` entries (plus one insert in flight
/// per thread while a full map is being replaced).
///
/// # Example
///
/// ```
/// use svcauth_core::__private::BoundedMap;
///
/// let map: BoundedMap<u64, u64> = BoundedMap::new(8);
/// for i in 0..1000 {
///     map.insert(i, i * 2, |_| true);
/// }
/// assert!(map.len() <= 8);
/// assert_eq!(map.get(&999), Some(1998));
/// ```
pub struct BoundedMap<K, V> {
    current: ArcSwap<Map<K, V>>,
    capacity: usize,
    /// Held while a full map is replaced.
    replacing: Mutex<()>,
}

impl<K: Hash + Eq, V> std::fmt::Debug for BoundedMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedMap")
            .field("len", &self.current.load().len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

fn empty<K: Hash + Eq, V>(capacity: usize) -> Map<K, V> {
    papaya::HashMap::builder()
        .hasher(foldhash::fast::RandomState::default())
        .capacity(capacity.min(PREALLOCATED))
        .build()
}

impl<K, V> BoundedMap<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An empty map holding at most `capacity` entries. With 0 it holds
    /// nothing.
    pub fn new(capacity: usize) -> Self {
        BoundedMap {
            current: ArcSwap::from_pointee(empty(capacity)),
            capacity,
            replacing: Mutex::new(()),
        }
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.current.load().len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A clone of the value for `key`. No lock.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Equivalent<K> + Hash + ?Sized,
    {
        self.with(key, V::clone)
    }

    /// `f` applied to the value for `key`, without cloning it. No lock.
    pub fn with<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        Q: Equivalent<K> + Hash + ?Sized,
    {
        let map = self.current.load();
        map.pin().get(key).map(f)
    }

    /// Stores `value` under `key`, replacing any value there. When the map
    /// is full it is first replaced by one holding at most 7/8 of the bound,
    /// chosen among the entries for which `keep` is true.
    pub fn insert(&self, key: K, value: V, keep: impl Fn(&V) -> bool) {
        if self.capacity == 0 {
            return;
        }
        self.make_room(&keep);
        self.current.load().pin().insert(key, value);
    }

    /// The value for `key`, or `make()` stored and returned if there is none
    /// (or if `stale` says the one there must go). Room is made as in
    /// [`BoundedMap::insert`].
    pub fn get_or_insert_with(
        &self,
        key: K,
        make: impl Fn() -> V,
        stale: impl Fn(&V) -> bool,
        keep: impl Fn(&V) -> bool,
    ) -> V {
        if self.capacity == 0 {
            return make();
        }
        {
            let map = self.current.load();
            if let Some(v) = map.pin().get(&key)
                && !stale(v)
            {
                return v.clone();
            }
        }
        self.make_room(&keep);
        let map = self.current.load();
        let map = map.pin();
        let result = map.compute(key, |entry| match entry {
            Some((_, v)) if !stale(v) => Operation::Abort(v.clone()),
            _ => Operation::Insert(make()),
        });
        match result {
            papaya::Compute::Aborted(v) => v,
            papaya::Compute::Inserted(_, v) | papaya::Compute::Updated { new: (_, v), .. } => {
                v.clone()
            }
            // The closure never asks for a removal.
            papaya::Compute::Removed(_, v) => v.clone(),
        }
    }

    /// Calls `f` on every entry of the map as it is now (entries inserted
    /// meanwhile may or may not be seen).
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        let map = self.current.load();
        for (k, v) in map.pin().iter() {
            f(k, v);
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.current.store(Arc::new(empty(self.capacity)));
    }

    fn make_room(&self, keep: &dyn Fn(&V) -> bool) {
        if self.current.load().len() < self.capacity {
            return;
        }
        // Inserts into a full map wait here while one thread replaces it;
        // inserts follow a signature check or a mint, never a cache hit.
        let _replacing = self
            .replacing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = self.current.load_full();
        if old.len() < self.capacity {
            return;
        }
        let kept = self.capacity - self.capacity / 8 - 1;
        let fresh = empty(self.capacity);
        {
            let fresh = fresh.pin();
            for (k, v) in old.pin().iter().filter(|(_, v)| keep(v)).take(kept) {
                fresh.insert(k.clone(), v.clone());
            }
        }
        self.current.store(Arc::new(fresh));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn churn_far_beyond_the_bound_stays_bounded_and_finishes() {
        // The pattern that hung papaya with remove-based eviction: a bound
        // above the preallocated size (so the table has grown), and 20x the
        // bound in distinct keys (remove-based eviction hung at about 4x).
        let map: BoundedMap<Box<str>, u64> = BoundedMap::new(5000);
        for i in 0..100_000u64 {
            map.insert(format!("token-{i}").into(), i, |_| true);
            assert!(map.len() <= 5000);
        }
        assert_eq!(map.get("token-99999"), Some(99_999));
    }

    #[test]
    fn replacing_a_full_map_keeps_only_what_keep_allows() {
        let map: BoundedMap<u64, u64> = BoundedMap::new(100);
        for i in 0..100 {
            map.insert(i, i, |_| true);
        }
        // Full: the next insert keeps only even values.
        map.insert(1000, 1000, |v| v % 2 == 0);
        assert_eq!(map.get(&1), None);
        assert!(map.len() <= 51);
        assert_eq!(map.get(&1000), Some(1000));
    }

    #[test]
    fn get_or_insert_with_replaces_only_stale_values() {
        let map: BoundedMap<u64, u64> = BoundedMap::new(10);
        assert_eq!(map.get_or_insert_with(1, || 5, |_| false, |_| true), 5);
        assert_eq!(map.get_or_insert_with(1, || 6, |_| false, |_| true), 5);
        assert_eq!(map.get_or_insert_with(1, || 7, |v| *v == 5, |_| true), 7);
    }

    #[test]
    fn capacity_zero_holds_nothing_and_clear_empties() {
        let none: BoundedMap<u64, u64> = BoundedMap::new(0);
        none.insert(1, 1, |_| true);
        assert_eq!(none.get(&1), None);
        assert_eq!(none.get_or_insert_with(1, || 3, |_| false, |_| true), 3);
        let map: BoundedMap<u64, u64> = BoundedMap::new(10);
        map.insert(1, 1, |_| true);
        map.clear();
        assert!(map.is_empty());
    }

    #[test]
    fn concurrent_churn_stays_within_the_bound_plus_the_threads() {
        let map: Arc<BoundedMap<u64, u64>> = Arc::new(BoundedMap::new(500));
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let map = map.clone();
                s.spawn(move || {
                    for i in 0..50_000u64 {
                        map.insert(t * 1_000_000 + i, i, |_| true);
                        assert!(map.len() <= 500 + 4);
                    }
                });
            }
        });
    }
}
