//! The internal cache of `cache-store`/`cache-lookup` and the `*-value`
//! policies: bounded in bytes, least recently used entries evicted first,
//! entries expiring after their TTL from the caller's `now`. Single-threaded:
//! the driver's store shards it behind locks (one budget share per shard).
//!
//! Each entry costs its key (held twice: map and list), its value and a fixed
//! overhead for the bookkeeping. One entry can use at most the budget; larger
//! ones are not stored.
//!
//! Invariants (checked by `check_invariants` in debug builds): `bytes` is the
//! sum of the entries' sizes and never exceeds the budget.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::counters::Moment;
use super::lru::{Lru, SeededState};

/// Bytes of bookkeeping counted per entry on top of key and value.
pub const ENTRY_OVERHEAD: usize = 96;

struct Entry<T> {
    value: Bytes,
    expires: T,
    size: usize,
}

impl<T: Moment> Entry<T> {
    fn expired(&self, now: T) -> bool {
        self.expires.since(now).is_zero()
    }
}

/// A byte-bounded LRU cache with TTLs (`T` is the clock reading type:
/// `Instant` outside tests).
pub struct CacheStore<T = Instant> {
    lru: Lru<Box<str>, Entry<T>>,
    bytes: usize,
    budget: usize,
}

impl<T> std::fmt::Debug for CacheStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheStore")
            .field("entries", &self.lru.len())
            .field("bytes", &self.bytes)
            .field("budget", &self.budget)
            .finish()
    }
}

/// What an entry with this key and value costs.
pub fn entry_size(key: &str, value: &[u8]) -> usize {
    2 * key.len() + value.len() + ENTRY_OVERHEAD
}

impl<T: Moment> CacheStore<T> {
    /// A cache using at most `max_bytes`, hashing with `seed` (random bytes from
    /// the runtime).
    pub fn new(max_bytes: usize, seed: u128) -> Self {
        CacheStore {
            lru: Lru::new(SeededState::new(seed)),
            bytes: 0,
            budget: max_bytes,
        }
    }

    fn check_invariants(&self) {
        debug_assert!(self.bytes <= self.budget, "cache over its budget");
    }

    fn drop_entry(&mut self, key: &str) -> bool {
        match self.lru.remove(key) {
            Some(e) => {
                self.bytes -= e.size;
                true
            }
            None => false,
        }
    }

    /// The value under `key`, unless absent or expired (an expired entry is dropped).
    pub fn get(&mut self, key: &str, now: T) -> Option<Bytes> {
        let expired = self.lru.peek(key)?.expired(now);
        if expired {
            self.drop_entry(key);
            return None;
        }
        self.lru.get_mut(key).map(|e| e.value.clone())
    }

    /// The value under `key` with the time it has left.
    pub fn get_with_ttl(&mut self, key: &str, now: T) -> Option<(Bytes, Duration)> {
        let left = self.lru.peek(key)?.expires.since(now);
        if left.is_zero() {
            self.drop_entry(key);
            return None;
        }
        self.lru.get_mut(key).map(|e| (e.value.clone(), left))
    }

    /// Stores `value` under `key` for `ttl`, evicting expired and then least
    /// recently used entries to make room. Returns false (and drops any old
    /// value) if the entry is larger than the budget or `ttl` is zero.
    pub fn put(&mut self, key: &str, value: Bytes, ttl: Duration, now: T) -> bool {
        let size = entry_size(key, &value);
        self.drop_entry(key);
        let Some(expires) = now.plus(ttl) else {
            return false;
        };
        if ttl.is_zero() || size > self.budget {
            return false;
        }
        // The coldest entries go first; expired ones are usually among them.
        while self.bytes + size > self.budget {
            let Some((_, e)) = self.lru.pop_lru() else {
                break;
            };
            self.bytes -= e.size;
        }
        self.bytes += size;
        self.lru.insert(
            key.into(),
            Entry {
                value,
                expires,
                size,
            },
        );
        self.check_invariants();
        true
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        self.drop_entry(key)
    }

    /// Number of entries (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.lru.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes accounted to entries.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The byte budget.
    pub fn max_bytes(&self) -> usize {
        self.budget
    }

    /// Drops expired entries; returns how many.
    pub fn purge_expired(&mut self, now: T) -> usize {
        let mut freed = 0;
        let n = self.lru.retain(|_, e| {
            let keep = !e.expired(now);
            if !keep {
                freed += e.size;
            }
            keep
        });
        self.bytes -= freed;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::from_secs(1_000);
    const MIN: Duration = Duration::from_secs(60);

    fn cache(max: usize) -> CacheStore<Duration> {
        CacheStore::new(max, 11)
    }

    #[test]
    fn get_put_remove_and_ttl() {
        let mut c = cache(1 << 20);
        assert!(c.put("a", Bytes::from_static(b"one"), MIN, T0));
        assert_eq!(c.get("a", T0), Some(Bytes::from_static(b"one")));
        let (_, left) = c
            .get_with_ttl("a", T0 + Duration::from_secs(20))
            .expect("hit");
        assert_eq!(left, Duration::from_secs(40));
        assert_eq!(
            c.get("a", T0 + MIN - Duration::from_nanos(1)).as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(c.get("a", T0 + MIN), None, "expired at its TTL");
        assert!(c.is_empty(), "expired entry dropped on read");
        assert_eq!(c.bytes(), 0);
        assert!(c.put("b", Bytes::from_static(b"two"), MIN, T0));
        assert!(c.put("b", Bytes::from_static(b"2"), MIN, T0), "replace");
        assert_eq!(c.bytes(), entry_size("b", b"2"));
        assert!(c.remove("b"));
        assert!(!c.remove("b"));
        assert!(!c.put("z", Bytes::from_static(b"x"), Duration::ZERO, T0));
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        // The budget fits three 1000-byte entries.
        let per = entry_size("k00", &[0; 1000]);
        let mut c = cache(per * 3 + 10);
        let keys: Vec<String> = (0..4).map(|i| format!("k{i:02}")).collect();
        for k in &keys[..3] {
            assert!(c.put(k, Bytes::from(vec![1; 1000]), MIN, T0));
        }
        // Touch the first so the second is the coldest.
        assert!(c.get(&keys[0], T0).is_some());
        assert!(c.put(&keys[3], Bytes::from(vec![2; 1000]), MIN, T0));
        assert!(c.get(&keys[1], T0).is_none(), "coldest evicted");
        assert!(c.get(&keys[0], T0).is_some());
        assert!(c.get(&keys[2], T0).is_some());
        assert!(c.get(&keys[3], T0).is_some());
        assert!(c.bytes() <= c.max_bytes());
        // Too big for the budget: refused, and the old value is gone.
        assert!(!c.put(&keys[0], Bytes::from(vec![0; per * 4]), MIN, T0));
        assert!(c.get(&keys[0], T0).is_none());
    }

    #[test]
    fn a_flood_stays_within_the_budget() {
        let mut c = cache(64 * 1024);
        for i in 0..20_000 {
            c.put(&format!("key-{i}"), Bytes::from(vec![0; i % 700]), MIN, T0);
            assert!(c.bytes() <= c.max_bytes());
        }
        assert!(c.len() > 10);
        let n = c.len();
        assert_eq!(c.purge_expired(T0 + MIN), n);
        assert!(c.is_empty());
        assert_eq!(c.bytes(), 0);
    }
}
