//! The internal cache of `cache-store`/`cache-lookup` and the `*-value`
//! policies: bounded in bytes, least recently used entries evicted first,
//! entries expiring after their TTL from the caller's `now`.
//!
//! Each entry costs its key (held twice: map and list), its value and a fixed
//! overhead for the bookkeeping. The byte budget is split evenly over the
//! shards, so one entry can use at most a shard's share; larger ones are not stored.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::counters::Moment;
use super::lru::{Lru, SeededState};

/// Bytes of bookkeeping counted per entry on top of key and value.
pub const ENTRY_OVERHEAD: usize = 96;

const SHARDS: usize = 16;

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

struct Shard<T> {
    lru: Lru<Box<str>, Entry<T>>,
    bytes: usize,
}

impl<T: Moment> Shard<T> {
    fn remove(&mut self, key: &str) -> bool {
        match self.lru.remove(key) {
            Some(e) => {
                self.bytes -= e.size;
                true
            }
            None => false,
        }
    }
}

/// A byte-bounded LRU cache with TTLs, shared by every connection (`T` is the
/// clock reading type: `Instant` outside tests).
pub struct CacheStore<T = Instant> {
    shards: Vec<Mutex<Shard<T>>>,
    shard_budget: usize,
    state: SeededState,
}

/// What an entry with this key and value costs.
pub fn entry_size(key: &str, value: &[u8]) -> usize {
    2 * key.len() + value.len() + ENTRY_OVERHEAD
}

impl<T: Moment> CacheStore<T> {
    /// A cache using at most `max_bytes`, hashing with `seed` (random bytes from
    /// the runtime).
    pub fn new(max_bytes: usize, seed: u128) -> Self {
        let state = SeededState::new(seed);
        CacheStore {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        lru: Lru::new(state),
                        bytes: 0,
                    })
                })
                .collect(),
            shard_budget: max_bytes / SHARDS,
            state,
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard<T>> {
        let i = ((self.state.hash_one_of(key) >> 32) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value under `key`, unless absent or expired (an expired entry is dropped).
    pub fn get(&self, key: &str, now: T) -> Option<Bytes> {
        let mut shard = self.shard(key);
        let expired = shard.lru.peek(key)?.expired(now);
        if expired {
            shard.remove(key);
            return None;
        }
        shard.lru.get_mut(key).map(|e| e.value.clone())
    }

    /// The value under `key` with the time it has left.
    pub fn get_with_ttl(&self, key: &str, now: T) -> Option<(Bytes, Duration)> {
        let mut shard = self.shard(key);
        let left = shard.lru.peek(key)?.expires.since(now);
        if left.is_zero() {
            shard.remove(key);
            return None;
        }
        shard.lru.get_mut(key).map(|e| (e.value.clone(), left))
    }

    /// Stores `value` under `key` for `ttl`, evicting expired and then least
    /// recently used entries to make room. Returns false (and drops any old
    /// value) if the entry is larger than a shard's budget or `ttl` is zero.
    pub fn put(&self, key: &str, value: Bytes, ttl: Duration, now: T) -> bool {
        let size = entry_size(key, &value);
        let mut shard = self.shard(key);
        shard.remove(key);
        let Some(expires) = now.plus(ttl) else {
            return false;
        };
        if ttl.is_zero() || size > self.shard_budget {
            return false;
        }
        // The coldest entries go first; expired ones are usually among them.
        while shard.bytes + size > self.shard_budget {
            let Some((_, e)) = shard.lru.pop_lru() else {
                break;
            };
            shard.bytes -= e.size;
        }
        shard.bytes += size;
        shard.lru.insert(
            key.into(),
            Entry {
                value,
                expires,
                size,
            },
        );
        true
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&self, key: &str) -> bool {
        self.shard(key).remove(key)
    }

    /// Number of entries (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).lru.len())
            .sum()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes accounted to entries.
    pub fn bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).bytes)
            .sum()
    }

    /// The byte budget (a multiple of the shard count).
    pub fn max_bytes(&self) -> usize {
        self.shard_budget * SHARDS
    }

    /// Drops expired entries; returns how many.
    pub fn purge_expired(&self, now: T) -> usize {
        let mut n = 0;
        for s in &self.shards {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            let mut freed = 0;
            n += s.lru.retain(|_, e| {
                let keep = !e.expired(now);
                if !keep {
                    freed += e.size;
                }
                keep
            });
            s.bytes -= freed;
        }
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
        let c = cache(1 << 20);
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
        // One shard's budget fits three 1000-byte entries.
        let per = entry_size("k00", &[0; 1000]);
        let c = cache(per * 3 * 16 + 16 * 10);
        // Find keys in one shard so the budget bites.
        let first_shard = |k: &str| (c.state.hash_one_of(k) >> 32) as usize % SHARDS;
        let target = first_shard("k00");
        let keys: Vec<String> = (0..1000)
            .map(|i| format!("k{i:02}"))
            .filter(|k| k.len() == 3 && first_shard(k) == target)
            .take(4)
            .collect();
        assert_eq!(keys.len(), 4);
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
        // Too big for a shard: refused, and the old value is gone.
        assert!(!c.put(&keys[0], Bytes::from(vec![0; per * 4]), MIN, T0));
        assert!(c.get(&keys[0], T0).is_none());
    }

    #[test]
    fn a_flood_stays_within_the_budget() {
        let c = cache(64 * 1024);
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
