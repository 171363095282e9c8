//! A byte-bounded LRU map: the caches of directories, file metadata, whole
//! small files and decoded blocks all bound their memory by bytes, not by
//! entries, because one directory or block can be a thousand times another.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// Least-recently-used map holding at most `capacity` bytes of values (as
/// their inserter weighed them). A value larger than the whole capacity is
/// not kept.
#[derive(Debug)]
pub struct Lru<K, V> {
    capacity: usize,
    used: usize,
    tick: u64,
    map: HashMap<K, (V, usize, u64)>,
    order: BTreeMap<u64, K>,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    pub fn new(capacity: usize) -> Lru<K, V> {
        Lru {
            capacity,
            used: 0,
            tick: 0,
            map: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// The value, marked as just used.
    pub fn get(&mut self, k: &K) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        let (v, _, t) = self.map.get_mut(k)?;
        self.order.remove(t);
        *t = tick;
        self.order.insert(tick, k.clone());
        Some(v.clone())
    }

    /// Inserts (or replaces) `k`, weighing `bytes`, and evicts the least
    /// recently used values until the total fits.
    pub fn insert(&mut self, k: K, v: V, bytes: usize) {
        self.remove(&k);
        if bytes > self.capacity {
            return;
        }
        self.tick += 1;
        self.order.insert(self.tick, k.clone());
        self.map.insert(k, (v, bytes, self.tick));
        self.used += bytes;
        while self.used > self.capacity {
            let Some((_, old)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, b, _)) = self.map.remove(&old) {
                self.used -= b;
            }
        }
    }

    /// Whether `k` is held (without marking it used).
    pub fn contains(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        let (v, b, t) = self.map.remove(k)?;
        self.order.remove(&t);
        self.used -= b;
        Some(v)
    }

    /// Bytes held.
    pub fn used(&self) -> usize {
        self.used
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let mut l = Lru::new(10);
        l.insert(1, "a", 4);
        l.insert(2, "b", 4);
        assert_eq!(l.get(&1), Some("a"));
        l.insert(3, "c", 4);
        assert_eq!(l.get(&2), None, "2 was least recently used");
        assert_eq!((l.get(&1), l.get(&3)), (Some("a"), Some("c")));
        assert_eq!(l.used(), 8);
        l.insert(4, "too big", 11);
        assert_eq!((l.get(&4), l.len()), (None, 2));
        l.insert(1, "a2", 2);
        assert_eq!((l.get(&1), l.used()), (Some("a2"), 6));
        assert_eq!(l.remove(&3), Some("c"));
        assert_eq!(l.used(), 2);
    }
}
