//! The in-process shared-state store: answers the policies' store requests
//! (`portcullis_core::policy::store`) from the core's single-threaded tables,
//! sharded behind mutexes so connections on different worker threads rarely
//! meet.
//!
//! [`InProcessStore`] is one per gateway; with no remote store every replica
//! counts alone with it. A remote store ([`Remote`], Redis in [`redis`]) is
//! what shares counts between replicas: when one is set, the counters, the
//! `limit-concurrency` slots and the external cache (`caching-type`
//! `external`, and `prefer-external`) go to it, and the rest (the internal
//! cache, OpenID key sets) stays here. [`StoreSession`] is one per client
//! connection: it answers that connection's requests and remembers the
//! `limit-concurrency` slots it holds, so a connection that ends mid-request
//! (the client went away, the task was cancelled) still gives them back.
//!
//! Invariants:
//! - every key lives in exactly one shard, picked from the high bits of its
//!   seeded hash (the shard's own map uses the low bits);
//! - the rate and quota tables together hold at most their `max_keys`
//!   (the bound is split exactly over the shards); the cache's shards each
//!   hold at most their share of the byte budget;
//! - a lock is held only while one operation runs on one shard, never across
//!   an await or while taking another lock, so there is no lock order to keep;
//! - a session's held slots are exactly those it acquired and has not yet
//!   released; dropping the session releases them.

pub mod redis;
pub mod stats;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use arc_swap::ArcSwapOption;

use crate::conn::events::ConnStore;
use portcullis_core::policy::cache_store::CacheStore;
use portcullis_core::policy::concurrency::ConcurrencyLimiter;
use portcullis_core::policy::counters::{
    CounterKey, QuotaStore, QuotaTable, RateLimiter, RateTable, DEFAULT_MAX_KEYS,
};
use portcullis_core::policy::jwt::{JwtError, KeySetSink, KeySets, KeySetsSnapshot};
use portcullis_core::policy::lru::SeededState;
use portcullis_core::policy::store::{
    execute, CachingType, StoreAnswer, StoreOp, StoreOps, StoreRequest, StoreResult, StoreResults,
    StoreTables, DEFAULT_CACHE_BYTES,
};

use self::redis::Leases;
use self::stats::StoreStats;

/// A store other replicas share (Redis): answers the operations
/// [`goes_remote`] sends it.
pub trait Remote: Send + Sync + 'static {
    /// Answers `request`; `leases` are the calling connection's slots.
    fn answer<'a>(
        &'a self,
        request: StoreRequest,
        leases: &'a mut Leases,
    ) -> Pin<Box<dyn Future<Output = StoreAnswer> + Send + 'a>>;

    /// Gives back the slots of a connection that ended holding them.
    fn release_all(&self, leases: Leases);
}

/// Whether `op` goes to the remote store when there is one: counters, slots,
/// and the external cache.
pub fn goes_remote(op: &StoreOp) -> bool {
    match op {
        StoreOp::CacheGet { caching, .. }
        | StoreOp::CachePut { caching, .. }
        | StoreOp::CacheRemove { caching, .. } => *caching != CachingType::Internal,
        StoreOp::KeySets => false,
        _ => true,
    }
}

fn external_only(op: &StoreOp) -> bool {
    matches!(
        op,
        StoreOp::CacheGet {
            caching: CachingType::External,
            ..
        } | StoreOp::CachePut {
            caching: CachingType::External,
            ..
        } | StoreOp::CacheRemove {
            caching: CachingType::External,
            ..
        }
    )
}

/// Shards per table.
const SHARDS: usize = 16;

/// Tables of one kind, each behind its own lock.
struct Sharded<T> {
    shards: Vec<Mutex<T>>,
    state: SeededState,
}

impl<T> Sharded<T> {
    fn new(n: usize, state: SeededState, make: impl Fn(usize) -> T) -> Self {
        Sharded {
            shards: (0..n.max(1)).map(|i| Mutex::new(make(i))).collect(),
            state,
        }
    }

    /// The shard of `key`, locked.
    fn lock<K: std::hash::Hash + ?Sized>(&self, key: &K) -> MutexGuard<'_, T> {
        let h = self.state.hash_one_of(key);
        // High bits pick the shard; the map inside uses the low bits.
        let i = ((h >> 32) as usize) % self.shards.len();
        // A panic elsewhere while holding the lock leaves the table usable:
        // every operation leaves it consistent before it can panic.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sum(&self, f: impl Fn(&T) -> usize) -> usize {
        self.shards
            .iter()
            .map(|s| f(&s.lock().unwrap_or_else(|e| e.into_inner())))
            .sum()
    }
}

/// Counter shards for a bound of `max_keys`: fewer shards than [`SHARDS`] for
/// tiny bounds, the remainder one key each to the first shards, so the total
/// bound is exact.
fn counter_shards<T>(max_keys: usize, seed: u128, make: impl Fn(usize, u128) -> T) -> Sharded<T> {
    let max_keys = max_keys.max(1);
    let n = SHARDS.min(max_keys);
    let cap = |i: usize| max_keys / n + usize::from(i < max_keys % n);
    Sharded::new(n, SeededState::new(seed), |i| make(cap(i), seed))
}

/// The gateway's shared state, in process.
pub struct InProcessStore {
    rates: Sharded<RateLimiter<Instant>>,
    quotas: Sharded<QuotaStore>,
    slots: Sharded<ConcurrencyLimiter>,
    cache: Sharded<CacheStore<Instant>>,
    /// Read on every `validate-jwt` with OpenID keys, written when a key set
    /// is fetched: readers only clone the current snapshot.
    key_sets: RwLock<KeySets>,
    /// The remote store in force, if any (the gateway's store setting).
    remote: ArcSwapOption<Box<dyn Remote>>,
    /// Latency, failures and health of the remote store.
    stats: Arc<StoreStats>,
}

impl std::fmt::Debug for InProcessStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessStore")
            .field("rate_keys", &self.rate_keys())
            .field("cache_bytes", &self.cache_bytes())
            .finish_non_exhaustive()
    }
}

impl Default for InProcessStore {
    fn default() -> Self {
        InProcessStore::new(0x5eed)
    }
}

impl InProcessStore {
    /// Empty tables; `seed` keys their hashing (the runtime draws it at random,
    /// so clients cannot aim keys at one shard).
    pub fn new(seed: u128) -> Self {
        InProcessStore::with_limits(seed, DEFAULT_MAX_KEYS, DEFAULT_CACHE_BYTES)
    }

    /// Empty tables holding at most `max_keys` rate keys and as many quota
    /// keys, and `cache_bytes` of cache.
    pub fn with_limits(seed: u128, max_keys: usize, cache_bytes: usize) -> Self {
        let quota_seed = seed.rotate_left(17);
        let slot_state = SeededState::new(seed.rotate_left(41));
        let cache_seed = seed.rotate_left(77);
        InProcessStore {
            rates: counter_shards(max_keys, seed, RateLimiter::new),
            quotas: counter_shards(max_keys, quota_seed, QuotaStore::new),
            slots: Sharded::new(SHARDS, slot_state, |_| {
                ConcurrencyLimiter::new(seed.rotate_left(41))
            }),
            cache: Sharded::new(SHARDS, SeededState::new(cache_seed), |_| {
                CacheStore::new(cache_bytes / SHARDS, cache_seed)
            }),
            key_sets: RwLock::new(KeySets::new()),
            remote: ArcSwapOption::empty(),
            stats: Arc::new(StoreStats::new(Arc::new(Instant::now))),
        }
    }

    /// The same store reporting into `stats` (whose clock is the runtime's).
    pub fn with_stats(mut self, stats: Arc<StoreStats>) -> Self {
        self.stats = stats;
        self
    }

    /// The store's counters and health.
    pub fn stats(&self) -> &Arc<StoreStats> {
        &self.stats
    }

    /// Sends counters, slots and the external cache to `remote` from now on
    /// (`None`: everything in process again).
    pub fn set_remote(&self, remote: Option<Box<dyn Remote>>) {
        self.remote.store(remote.map(Arc::new));
    }

    /// Whether a remote store is in force.
    pub fn has_remote(&self) -> bool {
        self.remote.load().is_some()
    }

    /// Answers `request`: the in-process store always can.
    pub fn answer(&self, request: &StoreRequest) -> StoreAnswer {
        StoreAnswer::Done(execute(&mut Tables(self), request))
    }

    /// A handle for one client connection.
    pub fn session(self: &Arc<Self>) -> StoreSession {
        StoreSession {
            store: Arc::clone(self),
            held: HashMap::new(),
            leases: Leases::new(),
        }
    }

    /// Of `urls`, those a token naming an unknown key may have fetched again
    /// at `now` (see `KeySets::claim_refresh`).
    pub fn claim_key_refresh(&self, urls: &[String], now: Instant) -> Vec<String> {
        self.key_sets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .claim_refresh(urls, now)
    }

    /// The key sets as they are now.
    pub fn key_sets(&self) -> Arc<KeySetsSnapshot> {
        self.key_sets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .snapshot()
    }

    /// Rate-limit keys held.
    pub fn rate_keys(&self) -> usize {
        self.rates.sum(RateLimiter::len)
    }

    /// Quota keys held.
    pub fn quota_keys(&self) -> usize {
        self.quotas.sum(QuotaStore::len)
    }

    /// Concurrency keys with slots taken.
    pub fn slot_keys(&self) -> usize {
        self.slots.sum(ConcurrencyLimiter::keys)
    }

    /// Bytes accounted to cache entries.
    pub fn cache_bytes(&self) -> usize {
        self.cache.sum(CacheStore::bytes)
    }

    /// Drops expired counters and cache entries; returns how many went.
    pub fn purge_expired(&self, now: Instant, now_unix: i64) -> usize {
        let rates: usize = self
            .rates
            .shards
            .iter()
            .map(|s| lock(s).purge_expired(now))
            .sum();
        let quotas: usize = self
            .quotas
            .shards
            .iter()
            .map(|s| lock(s).purge_expired(now_unix))
            .sum();
        let cache: usize = self
            .cache
            .shards
            .iter()
            .map(|s| lock(s).purge_expired(now))
            .sum();
        rates + quotas + cache
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl KeySetSink for InProcessStore {
    fn install_key_set(
        &self,
        url: &str,
        issuer: Option<String>,
        jwks: &[u8],
    ) -> Result<usize, JwtError> {
        self.key_sets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .install(url, issuer, jwks)
    }
}

/// The store's tables, reached shard by shard.
struct Tables<'a>(&'a InProcessStore);

impl RateTable<Instant> for Tables<'_> {
    fn with_rate<R>(
        &mut self,
        key: &CounterKey,
        f: impl FnOnce(&mut RateLimiter<Instant>) -> R,
    ) -> R {
        f(&mut self.0.rates.lock(key))
    }
}

impl QuotaTable for Tables<'_> {
    fn with_quota<R>(&mut self, key: &CounterKey, f: impl FnOnce(&mut QuotaStore) -> R) -> R {
        f(&mut self.0.quotas.lock(key))
    }
}

impl StoreTables for Tables<'_> {
    fn with_slots<R>(&mut self, key: &str, f: impl FnOnce(&mut ConcurrencyLimiter) -> R) -> R {
        f(&mut self.0.slots.lock(key))
    }

    fn with_cache<R>(&mut self, key: &str, f: impl FnOnce(&mut CacheStore) -> R) -> R {
        f(&mut self.0.cache.lock(key))
    }

    fn key_sets(&mut self) -> Arc<KeySetsSnapshot> {
        self.0.key_sets()
    }
}

/// One client connection's handle on the store.
pub struct StoreSession {
    store: Arc<InProcessStore>,
    /// Slots taken and not given back yet, by key.
    held: HashMap<String, u64>,
    /// Slots taken in the remote store, by key.
    leases: Leases,
}

impl std::fmt::Debug for StoreSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSession")
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

impl StoreSession {
    /// Whether the session holds no slot (in process or remote), so dropping
    /// it gives nothing back: an idle connection may then let it go.
    pub fn holds_nothing(&self) -> bool {
        self.held.is_empty() && self.leases.is_empty()
    }

    /// Answers `request` in process and keeps track of the slots it takes and
    /// gives back. Without a remote store, the external cache misses and
    /// stores nothing (counted): it is never served from the built-in cache.
    pub fn answer(&mut self, request: &StoreRequest) -> StoreAnswer {
        let skip = |op: &StoreOp| external_only(op) || self.not_held_here(op);
        if !request.ops.iter().any(skip) {
            return self.answer_local(request);
        }
        if request.ops.iter().any(external_only) {
            self.store
                .stats
                .failed("no_external_cache", "no external cache configured");
        }
        let skipped: SmallBools = request.ops.iter().map(skip).collect();
        let local = StoreRequest {
            ops: request
                .ops
                .iter()
                .zip(&skipped)
                .filter(|(_, s)| !**s)
                .map(|(op, _)| op.clone())
                .collect(),
            now: request.now,
            now_unix: request.now_unix,
        };
        let StoreAnswer::Done(mut local) = self.answer_local(&local) else {
            return StoreAnswer::Unavailable("in-process store".into());
        };
        let mut local = local.drain(..);
        let results = request
            .ops
            .iter()
            .zip(&skipped)
            .map(|(op, skipped)| match op {
                StoreOp::CacheGet { .. } if *skipped => StoreResult::Value(None),
                _ if *skipped => StoreResult::Done,
                _ => local.next().unwrap_or(StoreResult::Done),
            })
            .collect();
        StoreAnswer::Done(results)
    }

    /// A `Release` of a slot this connection does not hold here (it was taken
    /// in the remote store, which the setting has since turned off): there is
    /// nothing to give back in process, and giving one back would free another
    /// connection's slot.
    fn not_held_here(&self, op: &StoreOp) -> bool {
        matches!(op, StoreOp::Release { key } if !self.held.contains_key(key))
    }

    /// Answers `request` with the remote store for what goes there.
    async fn answer_with(
        &mut self,
        remote: Arc<Box<dyn Remote>>,
        request: StoreRequest,
    ) -> StoreAnswer {
        // A slot goes back where it was taken.
        let to_remote: SmallBools = request
            .ops
            .iter()
            .map(|op| match op {
                StoreOp::Release { key } => !self.held.contains_key(key),
                op => goes_remote(op),
            })
            .collect();
        if to_remote.iter().all(|r| *r) {
            return remote.answer(request, &mut self.leases).await;
        }
        if !to_remote.iter().any(|r| *r) {
            return self.answer_local(&request);
        }
        let (mut there, mut here) = (StoreOps::new(), StoreOps::new());
        for (op, r) in request.ops.into_iter().zip(&to_remote) {
            if *r {
                there.push(op);
            } else {
                here.push(op);
            }
        }
        let local = StoreRequest {
            ops: here,
            now: request.now,
            now_unix: request.now_unix,
        };
        let far = StoreRequest {
            ops: there,
            now: request.now,
            now_unix: request.now_unix,
        };
        let StoreAnswer::Done(near) = self.answer_local(&local) else {
            return StoreAnswer::Unavailable("in-process store".into());
        };
        let far = match remote.answer(far, &mut self.leases).await {
            StoreAnswer::Done(r) => r,
            other => return other,
        };
        let (mut near, mut far) = (near.into_iter(), far.into_iter());
        let results: StoreResults = to_remote
            .iter()
            .map(|r| if *r { far.next() } else { near.next() }.unwrap_or(StoreResult::Done))
            .collect();
        StoreAnswer::Done(results)
    }

    fn answer_local(&mut self, request: &StoreRequest) -> StoreAnswer {
        let answer = self.store.answer(request);
        if let StoreAnswer::Done(results) = &answer {
            for (op, result) in request.ops.iter().zip(results) {
                match (op, result) {
                    (StoreOp::Acquire { key, .. }, StoreResult::Acquired(true)) => {
                        *self.held.entry(key.clone()).or_default() += 1;
                    }
                    (StoreOp::Release { key }, _) => {
                        if let Some(n) = self.held.get_mut(key) {
                            *n = n.saturating_sub(1);
                            if *n == 0 {
                                self.held.remove(key);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        answer
    }

    /// The gateway's store.
    pub fn store(&self) -> &Arc<InProcessStore> {
        &self.store
    }

    /// Slots this connection holds.
    pub fn held_slots(&self) -> u64 {
        self.held.values().sum()
    }
}

impl KeySetSink for StoreSession {
    fn install_key_set(
        &self,
        url: &str,
        issuer: Option<String>,
        jwks: &[u8],
    ) -> Result<usize, JwtError> {
        self.store.install_key_set(url, issuer, jwks)
    }
}

type SmallBools = smallvec::SmallVec<[bool; 4]>;

impl ConnStore for StoreSession {
    fn submit(&mut self, request: StoreRequest) -> impl Future<Output = StoreAnswer> {
        let remote = self.store.remote.load_full();
        async move {
            match remote {
                None => self.answer(&request),
                Some(remote) => self.answer_with(remote, request).await,
            }
        }
    }

    fn claim_key_refresh(&mut self, urls: &[String], now: Instant) -> Vec<String> {
        self.store.claim_key_refresh(urls, now)
    }
}

impl Drop for StoreSession {
    fn drop(&mut self) {
        if !self.leases.is_empty() {
            if let Some(remote) = self.store.remote.load_full() {
                remote.release_all(std::mem::take(&mut self.leases));
            }
        }
        let mut tables = Tables(&self.store);
        for (key, n) in self.held.drain() {
            tables.with_slots(&key, |s| {
                for _ in 0..n {
                    s.release(&key);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests;
