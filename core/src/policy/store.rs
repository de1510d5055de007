//! The shared-state protocol: how a request's policies reach state that every
//! connection shares (rate and quota counters, `limit-concurrency` slots, the
//! built-in cache, OpenID key sets).
//!
//! The pipeline never touches shared state itself. It asks for it as a step
//! (`Step::Store`, a [`StoreRequest`]), the way it asks for a call-out, and is
//! resumed with a [`StoreAnswer`]; writes nobody waits for (deferred counting,
//! cache writes, giving a slot back) go out as one-way requests. The driver
//! answers from an in-process store (`portcullis-driver`'s `store` module, the
//! tables below behind sharded locks); a remote store (Redis) answers the same
//! requests over the network. The protocol is shaped for that:
//!
//! - a request is a batch of operations answered together, one result per
//!   operation in order, so a remote store answers it in one round trip;
//! - counter operations carry their window (period) and so their time to live,
//!   cache writes their own time to live;
//! - a store that cannot answer says so for the whole batch
//!   ([`StoreAnswer::Unavailable`]), and each policy has a rule for that case.
//!
//! When the store is unavailable (see [`StoreAnswer::Unavailable`]):
//!
//! | policy | behaviour |
//! | --- | --- |
//! | `rate-limit`, `rate-limit-by-key` | fail open: the call is allowed, remaining = the configured calls |
//! | `quota`, `quota-by-key` | fail open: the call is allowed, remaining = the configured amounts |
//! | `limit-concurrency` | fail open: the request enters without a slot (none is given back) |
//! | any of those, store answers `Refused` (fail closed) | 503 with `Retry-After: 1` |
//! | `cache-lookup`, `cache-lookup-value` | a miss |
//! | `cache-store`, `*-value` writes, deferred counting | lost (one-way) |
//! | `validate-jwt` with `<openid-config>` | no OpenID keys: fail closed, only inline keys validate |
//!
//! The store logs the reason (with a warning) where it gives that answer; the
//! pipeline only applies the rule. Failing open is what operators expect of
//! APIM's throttling when its counter store is unreachable: an outage of the
//! store must not become an outage of every API.
//!
//! The semantics of every operation are written once, in [`execute`], over
//! [`StoreTables`]: the single-threaded tables of this crate, reached by key.
//! [`LocalStore`] is the one-table implementation (tests, benchmarks, a host
//! with one thread); the driver's in-process store shards the same tables.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smallvec::SmallVec;

use super::cache_store::CacheStore;
use super::concurrency::ConcurrencyLimiter;
use super::counters::{CounterKey, QuotaStore, QuotaTable, RateLimiter, RateTable};
use super::jwt::{KeySets, KeySetsSnapshot};
use super::quota::{self, QuotaCounter, QuotaOutcome};
use super::rate_limit::{self, RateCounter, RateOutcome};
pub use super::response_cache::CachingType;

/// A batch's operations: one inline (what the pipeline waits for is one
/// operation), more on the heap.
pub type StoreOps = SmallVec<[StoreOp; 1]>;

/// A batch's results, one per operation, in their order.
pub type StoreResults = SmallVec<[StoreResult; 1]>;

/// A batch of operations on shared state, answered together.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreRequest {
    /// The operations, answered in this order.
    pub ops: StoreOps,
    /// The monotonic time the operations happen at (rate windows, cache TTLs).
    pub now: Instant,
    /// The Unix time, in seconds, they happen at (quota periods).
    pub now_unix: i64,
}

/// One operation on shared state.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOp {
    /// Sliding-window rate counters of one policy. Without `add`: whether one
    /// more call fits in each, counting nothing. With `add: Some(n)`: all or
    /// nothing, if one call fits in every counter, `n` calls are counted in
    /// each. Answered with [`StoreResult::Rate`]. A counter lives for its
    /// period after its last call (its time to live).
    Rate {
        /// The counters, each with its limit and period.
        counters: Vec<RateCounter>,
        /// Calls to count when all fit.
        add: Option<u64>,
    },
    /// Counts `calls` calls in each counter unconditionally (a deferred
    /// increment). One-way: answered with [`StoreResult::Done`].
    RateAdd {
        /// The counters.
        counters: Vec<RateCounter>,
        /// Calls to count.
        calls: u64,
    },
    /// Fixed-period quota counters of one policy. Without `add`: whether the
    /// period has room left in each. With `add: Some(n)`: all or nothing, if
    /// every counter has room, `n` calls are counted in each. Answered with
    /// [`StoreResult::Quota`]; a counter lives until its period ends.
    Quota {
        /// The counters, each with its limits.
        counters: Vec<QuotaCounter>,
        /// Calls to count when all have room.
        add: Option<u64>,
    },
    /// Counts calls and bytes in each counter unconditionally (deferred
    /// increments, bandwidth). One-way: answered with [`StoreResult::Done`].
    QuotaAdd {
        /// The counters.
        counters: Vec<QuotaCounter>,
        /// Calls to count.
        calls: u64,
        /// Bytes to count.
        bytes: u64,
    },
    /// Takes a `limit-concurrency` slot under `key` if fewer than `max` are
    /// taken. Answered with [`StoreResult::Acquired`].
    Acquire {
        /// The concurrency key.
        key: String,
        /// Slots the key has.
        max: u64,
    },
    /// Gives back a slot taken with `Acquire`. One-way.
    Release {
        /// The concurrency key.
        key: String,
    },
    /// The cached value under `key`. Answered with [`StoreResult::Value`].
    CacheGet {
        /// The cache key.
        key: String,
        /// Which cache (`caching-type`).
        caching: CachingType,
    },
    /// Stores `value` under `key` for `ttl`. One-way.
    CachePut {
        /// The cache key.
        key: String,
        /// The value.
        value: Bytes,
        /// Its time to live.
        ttl: Duration,
        /// Which cache (`caching-type`).
        caching: CachingType,
    },
    /// Removes `key` from the cache. One-way.
    CacheRemove {
        /// The cache key.
        key: String,
        /// Which cache (`caching-type`).
        caching: CachingType,
    },
    /// The OpenID key sets as they are now. Answered with
    /// [`StoreResult::KeySets`].
    KeySets,
}

impl StoreOp {
    /// Whether the op changes state only, so nobody needs its answer.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            StoreOp::RateAdd { .. }
                | StoreOp::QuotaAdd { .. }
                | StoreOp::Release { .. }
                | StoreOp::CachePut { .. }
                | StoreOp::CacheRemove { .. }
        )
    }
}

/// The result of one operation.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreResult {
    /// The decision over a `Rate` op's counters.
    Rate(RateOutcome),
    /// The decision over a `Quota` op's counters.
    Quota(QuotaOutcome),
    /// Whether `Acquire` took a slot.
    Acquired(bool),
    /// A `CacheGet`'s value, `None` when absent or expired.
    Value(Option<Cached>),
    /// The key sets of a `KeySets` op.
    KeySets(Arc<KeySetsSnapshot>),
    /// A write was applied.
    Done,
}

/// A value found in a cache, with the time it has left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// The value as stored.
    pub value: Bytes,
    /// Until it expires (a hit's `max-age`).
    pub ttl_left: Duration,
}

/// The answer to a [`StoreRequest`].
#[derive(Debug, Clone, PartialEq)]
pub enum StoreAnswer {
    /// One result per operation, in the request's order.
    Done(StoreResults),
    /// The store could not answer (unreachable, timed out): no operation is
    /// known to have happened. The reason is for the log. Limits fail open.
    Unavailable(String),
    /// As `Unavailable`, on a gateway set to fail closed: limits refuse the
    /// request (503 with `Retry-After`) instead of letting it through.
    Refused(String),
}

/// The tables a store keeps, reached by key: one of each in a [`LocalStore`],
/// the shard holding the key in the driver's store.
pub trait StoreTables: RateTable<Instant> + QuotaTable {
    /// Runs `f` on the concurrency slots holding `key`.
    fn with_slots<R>(&mut self, key: &str, f: impl FnOnce(&mut ConcurrencyLimiter) -> R) -> R;
    /// Runs `f` on the cache holding `key`.
    fn with_cache<R>(&mut self, key: &str, f: impl FnOnce(&mut CacheStore) -> R) -> R;
    /// The key sets as they are now.
    fn key_sets(&mut self) -> Arc<KeySetsSnapshot>;
}

/// Applies `request` to `tables`: what every operation means, written once for
/// every store that keeps its state in this crate's tables.
pub fn execute<S: StoreTables>(tables: &mut S, request: &StoreRequest) -> StoreResults {
    let now = request.now;
    let now_unix = request.now_unix;
    request
        .ops
        .iter()
        .map(|op| match op {
            StoreOp::Rate { counters, add } => {
                StoreResult::Rate(rate_limit::decide(tables, counters, *add, now))
            }
            StoreOp::RateAdd { counters, calls } => {
                rate_limit::add_calls(tables, counters, *calls, now);
                StoreResult::Done
            }
            StoreOp::Quota { counters, add } => {
                StoreResult::Quota(quota::decide(tables, counters, *add, now_unix))
            }
            StoreOp::QuotaAdd {
                counters,
                calls,
                bytes,
            } => {
                quota::add(tables, counters, *calls, *bytes, now_unix);
                StoreResult::Done
            }
            StoreOp::Acquire { key, max } => {
                StoreResult::Acquired(tables.with_slots(key, |s| s.try_acquire(key, *max)))
            }
            StoreOp::Release { key } => {
                tables.with_slots(key, |s| s.release(key));
                StoreResult::Done
            }
            StoreOp::CacheGet { key, .. } => StoreResult::Value(
                tables
                    .with_cache(key, |c| c.get_with_ttl(key, now))
                    .map(|(value, ttl_left)| Cached { value, ttl_left }),
            ),
            StoreOp::CachePut {
                key, value, ttl, ..
            } => {
                tables.with_cache(key, |c| c.put(key, value.clone(), *ttl, now));
                StoreResult::Done
            }
            StoreOp::CacheRemove { key, .. } => {
                tables.with_cache(key, |c| c.remove(key));
                StoreResult::Done
            }
            StoreOp::KeySets => StoreResult::KeySets(tables.key_sets()),
        })
        .collect()
}

/// Bytes the built-in cache may hold by default.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// A store of one table of each kind, for one thread: what tests, benchmarks
/// and single-threaded hosts answer store requests with.
///
/// Invariants: those of its tables (see their modules); it adds none.
#[derive(Debug)]
pub struct LocalStore {
    /// `rate-limit` and `rate-limit-by-key` windows.
    pub rates: RateLimiter<Instant>,
    /// `quota` and `quota-by-key` periods.
    pub quotas: QuotaStore,
    /// `limit-concurrency` slots.
    pub slots: ConcurrencyLimiter,
    /// The built-in cache of the `cache-*` policies.
    pub cache: CacheStore<Instant>,
    /// OpenID key sets.
    pub key_sets: KeySets,
}

impl LocalStore {
    /// Empty tables hashing with `seed`.
    pub fn new(seed: u128) -> Self {
        LocalStore {
            rates: RateLimiter::new(super::counters::DEFAULT_MAX_KEYS, seed),
            quotas: QuotaStore::new(super::counters::DEFAULT_MAX_KEYS, seed.rotate_left(17)),
            slots: ConcurrencyLimiter::new(seed.rotate_left(41)),
            cache: CacheStore::new(DEFAULT_CACHE_BYTES, seed.rotate_left(77)),
            key_sets: KeySets::new(),
        }
    }

    /// Answers `request`.
    pub fn answer(&mut self, request: &StoreRequest) -> StoreAnswer {
        StoreAnswer::Done(execute(self, request))
    }
}

impl Default for LocalStore {
    fn default() -> Self {
        LocalStore::new(0x5eed)
    }
}

impl RateTable<Instant> for LocalStore {
    fn with_rate<R>(
        &mut self,
        _key: &CounterKey,
        f: impl FnOnce(&mut RateLimiter<Instant>) -> R,
    ) -> R {
        f(&mut self.rates)
    }
}

impl QuotaTable for LocalStore {
    fn with_quota<R>(&mut self, _key: &CounterKey, f: impl FnOnce(&mut QuotaStore) -> R) -> R {
        f(&mut self.quotas)
    }
}

impl StoreTables for LocalStore {
    fn with_slots<R>(&mut self, _key: &str, f: impl FnOnce(&mut ConcurrencyLimiter) -> R) -> R {
        f(&mut self.slots)
    }

    fn with_cache<R>(&mut self, _key: &str, f: impl FnOnce(&mut CacheStore) -> R) -> R {
        f(&mut self.cache)
    }

    fn key_sets(&mut self) -> Arc<KeySetsSnapshot> {
        self.key_sets.snapshot()
    }
}
