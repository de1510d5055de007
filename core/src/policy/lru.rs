//! A least-recently-used map on a slab, and seeded hashing for maps whose keys
//! come from clients.
//!
//! The counter stores and the response cache keep attacker-influenced keys (IP
//! addresses, header values), so their maps hash with a secret seed the runtime
//! passes in (the core draws no randomness itself): with a public hash function
//! a client could pick keys that all land in one bucket and make every lookup
//! linear.

use std::borrow::Borrow;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

/// SipHash (std's `DefaultHasher`) prefixed with a 128-bit secret, so bucket
/// positions cannot be predicted without the seed.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeededState {
    k0: u64,
    k1: u64,
}

impl SeededState {
    /// A hasher family keyed by `seed` (pass random bytes from the runtime).
    pub fn new(seed: u128) -> Self {
        SeededState {
            k0: seed as u64,
            k1: (seed >> 64) as u64,
        }
    }

    /// The hash of one value.
    pub fn hash_one_of<T: Hash + ?Sized>(&self, value: &T) -> u64 {
        self.hash_one(value)
    }
}

impl BuildHasher for SeededState {
    type Hasher = DefaultHasher;

    fn build_hasher(&self) -> DefaultHasher {
        let mut h = DefaultHasher::new();
        h.write_u64(self.k0);
        h.write_u64(self.k1);
        h
    }
}

const NIL: usize = usize::MAX;

struct Slot<K, V> {
    entry: Option<(K, V)>,
    prev: usize,
    next: usize,
}

/// A map that remembers use order: `get_mut` and `insert` make an entry the most
/// recent; `pop_lru` removes the least recent. All operations are O(1); slots
/// are reused, so memory follows the largest number of live entries.
pub struct Lru<K, V> {
    map: HashMap<K, usize, SeededState>,
    slots: Vec<Slot<K, V>>,
    free: Vec<usize>,
    /// Most recently used.
    head: usize,
    /// Least recently used.
    tail: usize,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// An empty map hashing with `state`.
    pub fn new(state: SeededState) -> Self {
        Lru {
            map: HashMap::with_hasher(state),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.slots[i].prev, self.slots[i].next);
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next].prev = prev;
        }
        self.slots[i].prev = NIL;
        self.slots[i].next = NIL;
    }

    fn push_front(&mut self, i: usize) {
        self.slots[i].prev = NIL;
        self.slots[i].next = self.head;
        if self.head != NIL {
            self.slots[self.head].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    /// The value of `key`, made the most recently used.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = *self.map.get(key)?;
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
        self.slots[i].entry.as_mut().map(|(_, v)| v)
    }

    /// The value of `key` without changing the use order.
    pub fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = *self.map.get(key)?;
        self.slots[i].entry.as_ref().map(|(_, v)| v)
    }

    /// Inserts or replaces `key` as the most recently used; returns the old value.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some(&i) = self.map.get(&key) {
            self.unlink(i);
            self.push_front(i);
            let old = self.slots[i].entry.replace((key, value));
            return old.map(|(_, v)| v);
        }
        let slot = Slot {
            entry: Some((key.clone(), value)),
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.map.insert(key, i);
        self.push_front(i);
        None
    }

    /// Removes `key`.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.map.remove(key)?;
        self.unlink(i);
        self.free.push(i);
        self.slots[i].entry.take().map(|(_, v)| v)
    }

    /// The least recently used entry.
    pub fn peek_lru(&self) -> Option<(&K, &V)> {
        if self.tail == NIL {
            return None;
        }
        self.slots[self.tail].entry.as_ref().map(|(k, v)| (k, v))
    }

    /// Removes and returns the least recently used entry.
    pub fn pop_lru(&mut self) -> Option<(K, V)> {
        if self.tail == NIL {
            return None;
        }
        let i = self.tail;
        self.unlink(i);
        self.free.push(i);
        let (k, v) = self.slots[i].entry.take()?;
        self.map.remove(&k);
        Some((k, v))
    }

    /// Keeps only the entries for which `keep` is true; returns how many went.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) -> usize {
        let mut doomed = Vec::new();
        let mut i = self.tail;
        while i != NIL {
            if let Some((k, v)) = &self.slots[i].entry {
                if !keep(k, v) {
                    doomed.push(k.clone());
                }
            }
            i = self.slots[i].prev;
        }
        for k in &doomed {
            self.remove(k);
        }
        doomed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_reuse() {
        let mut m: Lru<String, u32> = Lru::new(SeededState::new(7));
        m.insert("a".into(), 1);
        m.insert("b".into(), 2);
        m.insert("c".into(), 3);
        assert_eq!(m.get_mut("a").copied(), Some(1));
        assert_eq!(m.pop_lru(), Some(("b".into(), 2)));
        assert_eq!(m.peek_lru().map(|(k, _)| k.as_str()), Some("c"));
        assert_eq!(m.insert("c".into(), 30), Some(3));
        assert_eq!(m.pop_lru(), Some(("a".into(), 1)));
        assert_eq!(m.remove("c"), Some(30));
        assert!(m.is_empty());
        assert_eq!(m.pop_lru(), None);
        for i in 0..10 {
            m.insert(i.to_string(), i);
        }
        assert_eq!(m.slots.len(), 10, "slots are reused");
        assert_eq!(m.retain(|_, v| v % 2 == 0), 5);
        assert_eq!(m.len(), 5);
        assert_eq!(m.pop_lru(), Some(("0".into(), 0)));
    }

    #[test]
    fn seeds_change_hashes() {
        let a = SeededState::new(1).hash_one_of("key");
        let b = SeededState::new(2).hash_one_of("key");
        assert_ne!(a, b);
        assert_eq!(a, SeededState::new(1).hash_one_of("key"));
    }
}
