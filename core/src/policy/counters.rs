//! The rate-limit and quota counters: bounded in keys, driven by the caller's
//! clock, single-threaded. The driver's store shards them behind locks so
//! every connection shares them (see `policy::store`); [`RateTable`] and
//! [`QuotaTable`] are how the policies' decisions reach the table holding a key.
//!
//! Rate limits use a bucketed sliding window: the period split into a fixed
//! number of buckets ([`BUCKETS`]), the window being the buckets within
//! `(now - period, now]`, so each key costs a small fixed amount of memory
//! (88 bytes of counters with `Instant`) however high the limit, and the
//! announced `Retry-After` is exact at bucket granularity and never longer
//! than the period. Quotas use fixed windows.
//!
//! Memory bound: each store holds at most `max_keys` keys. Entries whose
//! windows have passed are dropped when met, a few more are swept from the
//! least recently used end on each insert, and when the store is full the least
//! recently used key is evicted. LRU is chosen over refusing new keys because
//! refusing would let a flood of made-up keys lock legitimate new clients out;
//! evicting an idle key only forgets counts nobody is using, and an active key
//! is touched on each request so a flood must cycle `max_keys` keys faster
//! than that client's request interval to reset it.
//!
//! Invariants (checked by `check_invariants` in debug builds):
//! - a table never holds more than its `max_keys` keys;
//! - a rate window's buckets cover `(now - period, now]` of the newest call
//!   seen, older buckets are zero;
//! - a quota's counts belong to the period starting at its `start`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::lru::{Lru, SeededState};

/// A monotonic time reading: `Instant` in production; tests use a `Duration`
/// since an arbitrary origin because `core/` never reads the clock, tests included.
pub trait Moment: Copy + Send + 'static {
    /// Time from `earlier` to `self`, zero if `earlier` is later.
    fn since(self, earlier: Self) -> Duration;
    /// `self + d`, if representable.
    fn plus(self, d: Duration) -> Option<Self>;
}

impl Moment for Instant {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
    fn plus(self, d: Duration) -> Option<Self> {
        self.checked_add(d)
    }
}

impl Moment for Duration {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_sub(earlier)
    }
    fn plus(self, d: Duration) -> Option<Self> {
        self.checked_add(d)
    }
}

/// Default largest number of keys per store.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Expired entries examined at the LRU end per insert: keeps sweeping amortised.
const SWEEP_PER_INSERT: usize = 2;

/// A counter's identity: the policy scope and the key, kept as a string so
/// distinct keys never share a counter (a hash could collide). Shared, so the
/// copies a store request and the tables keep cost no allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterKey(Arc<str>);

/// Room on the stack for joining a key's parts: most keys fit, and then a key
/// costs one allocation (its `Arc`).
type KeyBuf = smallvec::SmallVec<[u8; 256]>;

impl CounterKey {
    /// The counter for `key` within `scope` (e.g. `rate-limit-by-key`). `scope`
    /// must not contain NUL; it is the separator that keeps pairs distinct.
    pub fn new(scope: &str, key: &str) -> Self {
        let mut s = KeyBuf::with_capacity(scope.len() + 1 + key.len());
        s.extend_from_slice(scope.as_bytes());
        s.push(0);
        s.extend_from_slice(key.as_bytes());
        CounterKey(joined(&s))
    }

    /// The counter for several parts, e.g. scope, subscription, API and operation.
    pub fn from_parts(parts: &[&str]) -> Self {
        let mut s = KeyBuf::new();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                s.push(0);
            }
            // Length-prefix every part but the last so NULs inside cannot alias.
            if i + 1 < parts.len() {
                push_decimal(&mut s, p.len());
                s.push(b':');
            }
            s.extend_from_slice(p.as_bytes());
        }
        CounterKey(joined(&s))
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `s` as a shared string (always UTF-8: it is made of `str`s and ASCII).
fn joined(s: &[u8]) -> Arc<str> {
    match std::str::from_utf8(s) {
        Ok(text) => Arc::from(text),
        Err(_) => Arc::from(String::from_utf8_lossy(s)),
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut KeyBuf, n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// An entry that knows when it no longer holds anything worth keeping.
trait Expiring<N> {
    fn expired(&self, now: N) -> bool;
}

/// Keyed entries in one LRU map with a key bound.
struct Bounded<E> {
    map: Lru<CounterKey, E>,
    max_keys: usize,
}

impl<E> Bounded<E> {
    fn new(max_keys: usize, seed: u128) -> Self {
        Bounded {
            map: Lru::new(SeededState::new(seed)),
            max_keys: max_keys.max(1),
        }
    }

    fn check_invariants(&self) {
        debug_assert!(self.map.len() <= self.max_keys, "key bound exceeded");
    }
}

/// Makes room for one more key in `map`: drops expired entries from the LRU
/// end, then the least recently used one if still full.
fn make_room<E: Expiring<N>, N: Copy>(map: &mut Lru<CounterKey, E>, per_shard: usize, now: N) {
    for _ in 0..SWEEP_PER_INSERT {
        match map.peek_lru() {
            Some((_, e)) if e.expired(now) => {
                map.pop_lru();
            }
            _ => break,
        }
    }
    while map.len() >= per_shard {
        if map.pop_lru().is_none() {
            break;
        }
    }
}

fn purge<E: Expiring<N>, N: Copy>(s: &mut Bounded<E>, now: N) -> usize {
    s.map.retain(|_, e| !e.expired(now))
}

/// Where the rate windows live: one [`RateLimiter`], or the shards of a
/// shared store (the shard holding `key`).
pub trait RateTable<T> {
    /// Runs `f` on the limiter holding `key`.
    fn with_rate<R>(&mut self, key: &CounterKey, f: impl FnOnce(&mut RateLimiter<T>) -> R) -> R;
}

impl<T: Moment> RateTable<T> for RateLimiter<T> {
    fn with_rate<R>(&mut self, _key: &CounterKey, f: impl FnOnce(&mut RateLimiter<T>) -> R) -> R {
        f(self)
    }
}

/// Where the quota periods live: one [`QuotaStore`], or the shards of a
/// shared store (the shard holding `key`).
pub trait QuotaTable {
    /// Runs `f` on the store holding `key`.
    fn with_quota<R>(&mut self, key: &CounterKey, f: impl FnOnce(&mut QuotaStore) -> R) -> R;
}

impl QuotaTable for QuotaStore {
    fn with_quota<R>(&mut self, _key: &CounterKey, f: impl FnOnce(&mut QuotaStore) -> R) -> R {
        f(self)
    }
}

// ---------------------------------------------------------------------------
// Rate limits

/// A rate-limit decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// The call may proceed; `remaining` calls are left in the sliding window.
    Allowed {
        /// Calls still allowed (after this one, for `check_and_add`).
        remaining: u64,
    },
    /// Over the limit: try again after `retry_after`.
    Limited {
        /// When enough of the window has slid past for the call to fit.
        retry_after: Duration,
    },
}

/// Buckets per period.
///
/// Twelve, because:
/// - it divides 60, and so every whole number of minutes (and 12 s, 24 s, 36 s,
///   ...): APIM renewal periods are usually such, which puts bucket edges on
///   whole seconds from the key's first call (5 s for `renewal-period="60"`),
///   so the whole-second `Retry-After` loses nothing to rounding;
/// - the window moves in steps of 1/12 of the period (8.3 %): `Retry-After` is
///   exact at that granularity, and a real-time burst can exceed the limit
///   only across the one bucket that has just slid out (see [`Buckets`]);
/// - 12 `u32` counts are 48 bytes, keeping an entry at 88 bytes. Sixteen
///   would tighten the step to 6.25 % for 16 more bytes per key, and land on
///   whole seconds for fewer common periods (60 s gives 3.75 s buckets).
const BUCKETS: usize = 12;
const BUCKETS_U64: u64 = BUCKETS as u64;
const BUCKETS_U128: u128 = BUCKETS as u128;

/// A bucket holding this many calls counts as holding more than any limit.
const SATURATED: u32 = u32::MAX;

/// A bucketed sliding window of one key: the period split into [`BUCKETS`]
/// buckets of calls, aligned to `origin`. Bucket `i` covers the nanoseconds
/// `ceil(i * period / BUCKETS) .. ceil((i + 1) * period / BUCKETS)` after
/// `origin` (exact integers, whatever the period). The window at a moment in
/// bucket `c` is buckets `c - BUCKETS + 1 ..= c`: `(now - period, now]` at
/// bucket granularity.
///
/// Guarantees (without `add`s beyond the limit): every run of `BUCKETS`
/// consecutive buckets holds at most `limit` admitted calls, so every
/// real-time interval within `BUCKETS` buckets (any interval up to
/// `period - period / BUCKETS` long, give or take the nanosecond of rounding)
/// does. An interval of a whole period can also hold the calls of the oldest,
/// partly slid out, bucket: up to twice the limit in the worst case, the price
/// of a wait that never exceeds the period. `retry_after` is the time until
/// enough of the oldest buckets slide out: exact at bucket granularity (one
/// nanosecond earlier is still refused) and never more than the period.
///
/// Memory: 88 bytes with `Instant` (`origin` 16, `period` 16, `head` 8, the
/// ring of 12 `u32` counts 48; the two-window version was 48), inline in the
/// LRU slot: no heap allocation. With the slot's key and links that is 120
/// bytes a key (was 80), plus the hash map's entry and the key's text, as
/// before. Counts saturate at `u32::MAX`, which then counts as more than any
/// limit (only limits that high can tell).
#[derive(Debug, Clone, Copy)]
struct Buckets<T> {
    /// Where bucket 0 starts: the key's first counted call, or the last
    /// change of period.
    origin: T,
    period: Duration,
    /// Index of the newest bucket; bucket `i` lives at slot `i % BUCKETS`.
    head: u64,
    /// Calls per bucket, for buckets `head - BUCKETS + 1 ..= head`.
    counts: [u32; BUCKETS],
}

/// A count as summed: a saturated bucket outweighs any `u64` limit.
fn weight(c: u32) -> u128 {
    if c == SATURATED {
        u128::from(u64::MAX) + 1
    } else {
        u128::from(c)
    }
}

impl<T: Moment> Buckets<T> {
    fn new(now: T, period: Duration) -> Self {
        Buckets {
            origin: now,
            period,
            head: 0,
            counts: [0; BUCKETS],
        }
    }

    /// Nanoseconds from `origin` to `now` (zero if `now` is earlier).
    fn elapsed(&self, now: T) -> u128 {
        now.since(self.origin).as_nanos()
    }

    /// The bucket containing `now`.
    fn index_at(&self, now: T) -> u64 {
        let i = self.elapsed(now) * BUCKETS_U128 / self.period.as_nanos();
        u64::try_from(i).unwrap_or(u64::MAX)
    }

    /// Where bucket `i` starts, in nanoseconds from `origin`.
    fn bucket_start(&self, i: u64) -> u128 {
        (u128::from(i) * self.period.as_nanos()).div_ceil(BUCKETS_U128)
    }

    /// The slot of the bucket `age` buckets older than the newest.
    fn slot_of_age(&self, age: usize) -> usize {
        (self.slot(self.head) + BUCKETS - age) % BUCKETS
    }

    fn slot(&self, i: u64) -> usize {
        // The remainder is below BUCKETS: the cast is lossless.
        (i % BUCKETS_U64) as usize
    }

    /// Moves the window forward to the bucket containing `now`, emptying the
    /// buckets that slid out. A `now` older than the newest bucket (threads
    /// may pass one slightly older than one already seen) counts as in it.
    fn roll(&mut self, now: T, period: Duration) {
        let cur = self.index_at(now);
        if cur > self.head {
            let advance = cur - self.head;
            if advance >= BUCKETS_U64 {
                self.counts = [0; BUCKETS];
            } else {
                for i in self.head + 1..=cur {
                    let s = self.slot(i);
                    self.counts[s] = 0;
                }
            }
            self.head = cur;
        }
        if period != self.period {
            // The policy changed: keep each bucket's count and age (in
            // buckets), adopt the new length from a new origin at `now`.
            let s = self.slot(self.head);
            self.counts.rotate_left(s);
            self.head = 0;
            self.origin = now;
            self.period = period;
        }
    }

    /// Calls in the window (after `roll`); above `u64::MAX` if one bucket saturated.
    fn total(&self) -> u128 {
        self.counts.iter().map(|&c| weight(c)).sum()
    }

    /// Counts `n` calls in the newest bucket.
    fn add(&mut self, n: u64) {
        let s = self.slot(self.head);
        let c = u64::from(self.counts[s]).saturating_add(n);
        self.counts[s] = u32::try_from(c).unwrap_or(SATURATED);
    }

    /// Whether `cost` more calls fit under `limit`.
    fn fits(&self, limit: u64, cost: u64) -> bool {
        self.total() + u128::from(cost) <= u128::from(limit)
    }

    /// Calls left under `limit`.
    fn remaining(&self, limit: u64) -> u64 {
        let left = u128::from(limit).saturating_sub(self.total());
        u64::try_from(left).unwrap_or(0)
    }

    /// How long until `cost` calls fit, assuming no other calls meanwhile: until
    /// the oldest buckets whose counts must go have slid out. At most the period
    /// (when the newest bucket must go too). A `cost` above `limit` never fits:
    /// the answer is then the whole period, the longest wait this limiter ever
    /// announces, so such a client is at least not invited to retry at once.
    fn retry_after(&self, limit: u64, cost: u64, now: T) -> Duration {
        let Some(need) = limit.checked_sub(cost) else {
            return self.period;
        };
        let need = u128::from(need);
        let mut left = self.total();
        // Buckets to slide out, oldest first.
        let mut k = 0;
        while left > need && k < BUCKETS {
            left -= weight(self.counts[self.slot_of_age(BUCKETS - 1 - k)]);
            k += 1;
        }
        let fits_at = self.bucket_start(self.head + k as u64);
        // From the start of the newest bucket at the earliest, so a stale `now`
        // cannot stretch the wait past the period.
        let from = self.elapsed(now).max(self.bucket_start(self.head));
        let wait = u64::try_from(fits_at.saturating_sub(from)).unwrap_or(u64::MAX);
        Duration::from_nanos(wait).min(self.period)
    }

    /// The window is empty and stays so without new calls.
    fn empty_at(&self, now: T) -> bool {
        self.counts.iter().all(|&c| c == 0)
            || self.index_at(now) >= self.head.saturating_add(BUCKETS_U64)
    }
}

impl<T: Moment> Expiring<T> for Buckets<T> {
    fn expired(&self, now: T) -> bool {
        self.empty_at(now)
    }
}

/// Sliding-window rate limiter of one thread, or one shard of a shared store
/// (`T` is the clock reading type: `Instant` outside tests).
pub struct RateLimiter<T = Instant> {
    map: Bounded<Buckets<T>>,
}

impl<T> std::fmt::Debug for RateLimiter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("keys", &self.map.map.len())
            .field("max_keys", &self.map.max_keys)
            .finish()
    }
}

impl<T: Moment> Default for RateLimiter<T> {
    fn default() -> Self {
        RateLimiter::new(DEFAULT_MAX_KEYS, 0)
    }
}

fn sane_period(period: Duration) -> Duration {
    // A zero period would divide by zero; config checks make it at least 1 s.
    period.max(Duration::from_millis(1))
}

impl<T: Moment> RateLimiter<T> {
    /// A limiter holding at most `max_keys` keys, hashing with `seed` (random
    /// bytes from the runtime, so clients cannot aim keys at one bucket).
    pub fn new(max_keys: usize, seed: u128) -> Self {
        RateLimiter {
            map: Bounded::new(max_keys, seed),
        }
    }

    /// Whether one more call fits under `limit` calls per `period`, without counting it.
    pub fn check(
        &mut self,
        key: &CounterKey,
        limit: u64,
        period: Duration,
        now: T,
    ) -> RateDecision {
        self.check_cost(key, limit, period, 1, now)
    }

    /// Whether `cost` more calls fit, without counting them.
    pub fn check_cost(
        &mut self,
        key: &CounterKey,
        limit: u64,
        period: Duration,
        cost: u64,
        now: T,
    ) -> RateDecision {
        let period = sane_period(period);
        let w = match self.map.map.get_mut(key) {
            Some(w) => {
                w.roll(now, period);
                *w
            }
            None => Buckets::new(now, period),
        };
        decide(&w, limit, cost, now)
    }

    /// Counts `count` calls (APIM's increment, possibly after the response).
    pub fn add(&mut self, key: &CounterKey, count: u64, period: Duration, now: T) {
        if count == 0 {
            return;
        }
        let period = sane_period(period);
        let Bounded { map, max_keys } = &mut self.map;
        if let Some(w) = map.get_mut(key) {
            w.roll(now, period);
            w.add(count);
            return;
        }
        make_room(map, *max_keys, now);
        let mut w = Buckets::new(now, period);
        w.add(count);
        map.insert(key.clone(), w);
        self.map.check_invariants();
    }

    /// Checks that `count` calls fit and counts them if so, atomically.
    pub fn check_and_add(
        &mut self,
        key: &CounterKey,
        limit: u64,
        period: Duration,
        count: u64,
        now: T,
    ) -> RateDecision {
        let period = sane_period(period);
        let Bounded { map, max_keys } = &mut self.map;
        if let Some(w) = map.get_mut(key) {
            w.roll(now, period);
            let d = decide(w, limit, count, now);
            if let RateDecision::Allowed { .. } = d {
                w.add(count);
                return RateDecision::Allowed {
                    remaining: w.remaining(limit),
                };
            }
            return d;
        }
        let mut w = Buckets::new(now, period);
        let d = decide(&w, limit, count, now);
        if let RateDecision::Allowed { .. } = d {
            if count > 0 {
                make_room(map, *max_keys, now);
                w.add(count);
                map.insert(key.clone(), w);
                self.map.check_invariants();
            }
            return RateDecision::Allowed {
                remaining: w.remaining(limit),
            };
        }
        d
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.map.map.len()
    }

    /// Whether no keys are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys this limiter holds.
    pub fn max_keys(&self) -> usize {
        self.map.max_keys
    }

    /// Drops every key whose windows have passed; returns how many went.
    pub fn purge_expired(&mut self, now: T) -> usize {
        purge(&mut self.map, now)
    }
}

fn decide<T: Moment>(w: &Buckets<T>, limit: u64, cost: u64, now: T) -> RateDecision {
    if w.fits(limit, cost) {
        RateDecision::Allowed {
            remaining: w.remaining(limit),
        }
    } else {
        RateDecision::Limited {
            retry_after: w.retry_after(limit, cost, now),
        }
    }
}

// ---------------------------------------------------------------------------
// Quotas

/// Where a key's quota periods start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaAnchor {
    /// Periods start at the key's first counted use (then every period after).
    FirstUse,
    /// Periods are aligned to this Unix time (APIM's `first-period-start`,
    /// or a subscription's start).
    At(i64),
}

/// A quota's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaLimits {
    /// Calls per period, if limited.
    pub calls: Option<u64>,
    /// Kilobytes (1024 bytes) per period, if limited.
    pub kilobytes: Option<u64>,
    /// Period in seconds; 0 means one period that never ends.
    pub period_secs: u64,
    /// Where periods start.
    pub anchor: QuotaAnchor,
}

/// Which quota ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// The call count.
    Calls,
    /// The bandwidth.
    Bandwidth,
}

/// A quota decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaDecision {
    /// Within quota.
    Allowed {
        /// Calls left this period, if calls are limited.
        remaining_calls: Option<u64>,
        /// Bytes left this period, if bandwidth is limited.
        remaining_bytes: Option<u64>,
    },
    /// Out of quota.
    Exceeded {
        /// Which limit was hit.
        kind: QuotaKind,
        /// Until the period ends; `None` when the period never ends.
        retry_after: Option<Duration>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Usage {
    /// Unix second the current period started.
    start: i64,
    /// Period in seconds, 0 = never ends.
    period: u64,
    calls: u64,
    bytes: u64,
}

impl Usage {
    fn period_start(limits: &QuotaLimits, prior: Option<i64>, now: i64) -> i64 {
        let p = i64::try_from(limits.period_secs).unwrap_or(i64::MAX);
        let base = match limits.anchor {
            QuotaAnchor::At(t) => t,
            QuotaAnchor::FirstUse => prior.unwrap_or(now),
        };
        if p == 0 {
            return base;
        }
        if now < base {
            // Before the first period (or a clock step back): the first period.
            return base;
        }
        let k = (i128::from(now) - i128::from(base)).div_euclid(i128::from(p));
        i64::try_from(i128::from(base) + k * i128::from(p)).unwrap_or(now)
    }

    fn new(limits: &QuotaLimits, now: i64) -> Self {
        Usage {
            start: Self::period_start(limits, None, now),
            period: limits.period_secs,
            calls: 0,
            bytes: 0,
        }
    }

    /// Moves to the period containing `now`, forgetting the old counts.
    fn roll(&mut self, limits: &QuotaLimits, now: i64) {
        if limits.period_secs != self.period {
            self.period = limits.period_secs;
        }
        let start = Self::period_start(limits, Some(self.start), now);
        if start > self.start {
            self.start = start;
            self.calls = 0;
            self.bytes = 0;
        }
    }

    fn end(&self) -> Option<i64> {
        if self.period == 0 {
            return None;
        }
        self.start
            .checked_add(i64::try_from(self.period).unwrap_or(i64::MAX))
    }

    fn decide(&self, limits: &QuotaLimits, now: i64) -> QuotaDecision {
        let max_bytes = limits.kilobytes.map(|kb| kb.saturating_mul(1024));
        let kind = if limits.calls.is_some_and(|c| self.calls >= c) {
            Some(QuotaKind::Calls)
        } else if max_bytes.is_some_and(|b| self.bytes >= b) {
            Some(QuotaKind::Bandwidth)
        } else {
            None
        };
        match kind {
            Some(kind) => QuotaDecision::Exceeded {
                kind,
                retry_after: self.end().map(|end| {
                    Duration::from_secs(u64::try_from(end.saturating_sub(now)).unwrap_or(0).max(1))
                }),
            },
            None => QuotaDecision::Allowed {
                remaining_calls: limits.calls.map(|c| c.saturating_sub(self.calls)),
                remaining_bytes: max_bytes.map(|b| b.saturating_sub(self.bytes)),
            },
        }
    }
}

impl Expiring<i64> for Usage {
    fn expired(&self, now: i64) -> bool {
        self.end().is_some_and(|end| now >= end)
    }
}

/// Call and bandwidth quotas of one thread, or one shard of a shared store.
pub struct QuotaStore {
    map: Bounded<Usage>,
}

impl std::fmt::Debug for QuotaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaStore")
            .field("keys", &self.map.map.len())
            .field("max_keys", &self.map.max_keys)
            .finish()
    }
}

impl Default for QuotaStore {
    fn default() -> Self {
        QuotaStore::new(DEFAULT_MAX_KEYS, 0)
    }
}

impl QuotaStore {
    /// A store holding at most `max_keys` keys, hashing with `seed`.
    pub fn new(max_keys: usize, seed: u128) -> Self {
        QuotaStore {
            map: Bounded::new(max_keys, seed),
        }
    }

    /// Whether another call fits in the current period (counts nothing).
    pub fn check(
        &mut self,
        key: &CounterKey,
        limits: &QuotaLimits,
        now_unix: i64,
    ) -> QuotaDecision {
        match self.map.map.get_mut(key) {
            Some(u) => {
                u.roll(limits, now_unix);
                u.decide(limits, now_unix)
            }
            None => Usage::new(limits, now_unix).decide(limits, now_unix),
        }
    }

    /// Counts `calls` calls and `bytes` bytes.
    pub fn add(
        &mut self,
        key: &CounterKey,
        limits: &QuotaLimits,
        calls: u64,
        bytes: u64,
        now: i64,
    ) {
        if calls == 0 && bytes == 0 {
            return;
        }
        let Bounded { map, max_keys } = &mut self.map;
        if let Some(u) = map.get_mut(key) {
            u.roll(limits, now);
            u.calls = u.calls.saturating_add(calls);
            u.bytes = u.bytes.saturating_add(bytes);
            return;
        }
        make_room(map, *max_keys, now);
        let mut u = Usage::new(limits, now);
        u.calls = calls;
        u.bytes = bytes;
        map.insert(key.clone(), u);
        self.map.check_invariants();
    }

    /// Counts `n` calls.
    pub fn add_calls(&mut self, key: &CounterKey, limits: &QuotaLimits, n: u64, now_unix: i64) {
        self.add(key, limits, n, 0, now_unix);
    }

    /// Counts `n` bytes of bandwidth.
    pub fn add_bytes(&mut self, key: &CounterKey, limits: &QuotaLimits, n: u64, now_unix: i64) {
        self.add(key, limits, 0, n, now_unix);
    }

    /// Checks and, when within quota, counts `calls` calls, atomically.
    pub fn check_and_add_calls(
        &mut self,
        key: &CounterKey,
        limits: &QuotaLimits,
        calls: u64,
        now_unix: i64,
    ) -> QuotaDecision {
        let Bounded { map, max_keys } = &mut self.map;
        if let Some(u) = map.get_mut(key) {
            u.roll(limits, now_unix);
            let d = u.decide(limits, now_unix);
            if let QuotaDecision::Allowed { .. } = d {
                u.calls = u.calls.saturating_add(calls);
                return u.decide_after(limits);
            }
            return d;
        }
        let mut u = Usage::new(limits, now_unix);
        let d = u.decide(limits, now_unix);
        if let QuotaDecision::Allowed { .. } = d {
            u.calls = calls;
            if calls > 0 {
                make_room(map, *max_keys, now_unix);
                map.insert(key.clone(), u);
                self.map.check_invariants();
            }
            return u.decide_after(limits);
        }
        d
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.map.map.len()
    }

    /// Whether no keys are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys this store holds.
    pub fn max_keys(&self) -> usize {
        self.map.max_keys
    }

    /// Drops every key whose period has ended; returns how many went.
    pub fn purge_expired(&mut self, now_unix: i64) -> usize {
        purge(&mut self.map, now_unix)
    }
}

impl Usage {
    /// The remaining amounts after counting (never "exceeded": the call that
    /// used the last unit was allowed).
    fn decide_after(&self, limits: &QuotaLimits) -> QuotaDecision {
        QuotaDecision::Allowed {
            remaining_calls: limits.calls.map(|c| c.saturating_sub(self.calls)),
            remaining_bytes: limits
                .kilobytes
                .map(|kb| kb.saturating_mul(1024).saturating_sub(self.bytes)),
        }
    }
}

/// A duration as .NET's `TimeSpan.ToString()` writes it: `hh:mm:ss`, with
/// `d.` in front past a day (APIM's quota message uses it).
pub fn format_timespan(d: Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, sec) = (s / 86_400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    if days > 0 {
        format!("{days}.{h:02}:{m:02}:{sec:02}")
    } else {
        format!("{h:02}:{m:02}:{sec:02}")
    }
}

/// Whole seconds, rounded up, at least 1: what `Retry-After` says.
pub fn retry_after_secs(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

#[cfg(test)]
#[path = "counters_tests.rs"]
mod tests;

// ---------------------------------------------------------------------------
// Counters kept by a shared store
//
// A shared store (Redis) keeps the same windows and periods, decided by a
// script next to the data; these types read what it returns, so the outcome
// (remaining calls, `Retry-After`) is computed by the code above, the same on
// every replica. Windows there are aligned to the Unix epoch (all replicas
// agree on the buckets) and the store's own clock is the time.

/// Buckets per rate window, in process and in a shared store.
pub const RATE_BUCKETS: usize = BUCKETS;

/// A rate window as a shared store returns it: bucket `head` is the newest,
/// bucket `i` covers `[ceil(i * period / 12), ceil((i + 1) * period / 12))`
/// after the Unix epoch, and `counts[i % 12]` holds its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateWindow {
    /// Index of the newest bucket.
    pub head: u64,
    /// Calls per bucket, by slot (`index % 12`).
    pub counts: [u32; BUCKETS],
}

impl RateWindow {
    fn buckets(&self, period: Duration) -> Buckets<Duration> {
        Buckets {
            origin: Duration::ZERO,
            period: sane_period(period),
            head: self.head,
            counts: self.counts,
        }
    }

    /// The index of the bucket holding `now` (time since the Unix epoch).
    pub fn index_at(period: Duration, now: Duration) -> u64 {
        Buckets::new(Duration::ZERO, sane_period(period)).index_at(now)
    }

    /// Moves the window to `now`, emptying the buckets that slid out.
    pub fn roll(&mut self, period: Duration, now: Duration) {
        let mut b = self.buckets(period);
        b.roll(now, b.period);
        self.head = b.head;
        self.counts = b.counts;
    }

    /// Counts `n` calls in the newest bucket.
    pub fn add(&mut self, n: u64) {
        let mut b = self.buckets(Duration::from_secs(1));
        b.add(n);
        self.counts = b.counts;
    }

    /// Calls in the window.
    pub fn total(&self) -> u64 {
        u64::try_from(self.buckets(Duration::from_secs(1)).total()).unwrap_or(u64::MAX)
    }

    /// Whether `cost` more calls fit under `limit` at `now`, as the local
    /// limiter decides (the window is taken as rolled to `now`).
    pub fn decide(&self, limit: u64, period: Duration, cost: u64, now: Duration) -> RateDecision {
        decide(&self.buckets(period), limit, cost, now)
    }
}

/// A quota period as a shared store returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaUsage {
    /// Unix second the period started.
    pub start: i64,
    /// Calls counted in it.
    pub calls: u64,
    /// Bytes counted in it.
    pub bytes: u64,
}

impl QuotaUsage {
    fn usage(&self, limits: &QuotaLimits) -> Usage {
        Usage {
            start: self.start,
            period: limits.period_secs,
            calls: self.calls,
            bytes: self.bytes,
        }
    }

    /// A fresh period for a key first used at `now`.
    pub fn new(limits: &QuotaLimits, now: i64) -> Self {
        QuotaUsage {
            start: Usage::period_start(limits, None, now),
            calls: 0,
            bytes: 0,
        }
    }

    /// Moves to the period holding `now`, forgetting old counts.
    pub fn roll(&mut self, limits: &QuotaLimits, now: i64) {
        let mut u = self.usage(limits);
        u.roll(limits, now);
        *self = QuotaUsage {
            start: u.start,
            calls: u.calls,
            bytes: u.bytes,
        };
    }

    /// Whether the period has room, as the local store decides.
    pub fn decide(&self, limits: &QuotaLimits, now: i64) -> QuotaDecision {
        self.usage(limits).decide(limits, now)
    }

    /// What is left after calls were counted (an admitted call's answer).
    pub fn decide_after(&self, limits: &QuotaLimits) -> QuotaDecision {
        self.usage(limits).decide_after(limits)
    }
}
