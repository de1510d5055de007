//! Approximate counting: rate limits and quotas decided in process from the
//! shared counts as last synced, plus this replica's own calls since; a task
//! sends those calls to Redis in one batch every `syncIntervalMs` and reads
//! the shared counts back.
//!
//! The hot path makes no round trip, except a key's first decision, which goes
//! to Redis as in exact mode (so a replica starts from the shared count, not
//! from zero). The price is overshoot: between two syncs every replica admits
//! against the count it last saw, so together N replicas can admit, beyond the
//! limit, at most what the other N - 1 admit in one sync interval (and never
//! more than N - 1 times the limit). While Redis cannot be reached the
//! replicas keep deciding on their own counts and catch up when it answers.
//!
//! Invariants:
//! - an entry's `pending` calls (and bytes) are counted here and not yet in
//!   Redis; a sync subtracts exactly what it sent, so calls counted during the
//!   sync are kept for the next one;
//! - a decision's time is Redis's clock estimated from the last reply (the
//!   Redis time then plus the monotonic time since), so the windows roll as
//!   Redis rolls them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use portcullis_core::policy::counters::{QuotaLimits, QuotaUsage, RateDecision, RateWindow};
use portcullis_core::policy::quota::QuotaCounter;
use portcullis_core::policy::rate_limit::RateCounter;
use portcullis_core::policy::shared_counters::{quota_outcome, rate_cost, rate_outcome};
use portcullis_core::policy::store::{StoreOp, StoreResult};

/// A key unused this long after its window or period is dropped from memory.
const IDLE: Duration = Duration::from_secs(120);

struct RateEntry {
    key: Bytes,
    limit: u64,
    period: Duration,
    /// The shared window as last read.
    window: RateWindow,
    /// Calls counted here since.
    pending: u64,
    last_used: Instant,
}

struct QuotaEntry {
    key: Bytes,
    limits: QuotaLimits,
    usage: QuotaUsage,
    pending_calls: u64,
    pending_bytes: u64,
    last_used: Instant,
}

#[derive(Default)]
struct Tables {
    rates: HashMap<Bytes, RateEntry>,
    quotas: HashMap<Bytes, QuotaEntry>,
    /// Redis's clock (ms since the epoch) at a local instant.
    clock: Option<(Instant, u64)>,
}

/// The replica's approximate counters.
#[derive(Default)]
pub struct Approx {
    tables: Mutex<Tables>,
}

/// One counter to send and read back in a sync.
pub enum SyncItem {
    /// A rate window: its key, limit, period and the calls to add.
    Rate(Bytes, u64, Duration, u64),
    /// A quota period: its key, limits and the calls and bytes to add.
    Quota(Bytes, QuotaLimits, u64, u64),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Tables {
    fn redis_now(&self, now: Instant) -> Option<Duration> {
        let (at, ms) = self.clock?;
        Some(Duration::from_millis(ms) + now.saturating_duration_since(at))
    }
}

impl Approx {
    /// Answers `op` in process if every counter it names is known; `keys` are
    /// its counters' Redis keys. `None`: it must go to Redis (a first use).
    pub fn answer(&self, op: &StoreOp, keys: &[Bytes], now: Instant) -> Option<StoreResult> {
        let mut t = lock(&self.tables);
        let redis_now = t.redis_now(now)?;
        let now_unix = i64::try_from(redis_now.as_secs()).unwrap_or(i64::MAX);
        match op {
            StoreOp::Rate { counters, add } => {
                if !keys.iter().all(|k| t.rates.contains_key(k)) {
                    return None;
                }
                let cost = rate_cost(counters, *add);
                let mut windows = Vec::with_capacity(counters.len());
                let mut admitted = true;
                for (c, k) in counters.iter().zip(keys) {
                    let e = t.rates.get_mut(k)?;
                    e.last_used = now;
                    let mut w = e.window;
                    w.roll(c.limit.period, redis_now);
                    w.add(e.pending);
                    if let RateDecision::Limited { .. } =
                        w.decide(c.limit.calls, c.limit.period, cost, redis_now)
                    {
                        admitted = false;
                    }
                    windows.push(w);
                }
                if let (true, Some(n)) = (admitted, add) {
                    for ((c, k), w) in counters.iter().zip(keys).zip(&mut windows) {
                        if let Some(e) = t.rates.get_mut(k) {
                            e.pending = e.pending.saturating_add(*n);
                            e.limit = c.limit.calls;
                        }
                        w.add(*n);
                    }
                }
                Some(StoreResult::Rate(rate_outcome(
                    counters, *add, admitted, &windows, redis_now,
                )))
            }
            StoreOp::RateAdd { calls, counters } => {
                // A deferred count never waits: unknown keys start empty here.
                for (c, k) in counters.iter().zip(keys) {
                    let e = t.rates.entry(k.clone()).or_insert_with(|| RateEntry {
                        key: k.clone(),
                        limit: c.limit.calls,
                        period: c.limit.period,
                        window: RateWindow::default(),
                        pending: 0,
                        last_used: now,
                    });
                    e.pending = e.pending.saturating_add(*calls);
                    e.last_used = now;
                }
                Some(StoreResult::Done)
            }
            StoreOp::Quota { counters, add } => {
                if !keys.iter().all(|k| t.quotas.contains_key(k)) {
                    return None;
                }
                let mut usages = Vec::with_capacity(counters.len());
                let mut admitted = true;
                for (c, k) in counters.iter().zip(keys) {
                    let e = t.quotas.get_mut(k)?;
                    e.last_used = now;
                    let mut u = e.usage;
                    u.roll(&c.limits, now_unix);
                    u.calls = u.calls.saturating_add(e.pending_calls);
                    u.bytes = u.bytes.saturating_add(e.pending_bytes);
                    if !matches!(
                        u.decide(&c.limits, now_unix),
                        portcullis_core::policy::counters::QuotaDecision::Allowed { .. }
                    ) {
                        admitted = false;
                    }
                    usages.push(u);
                }
                if let (true, Some(n)) = (admitted, add) {
                    for (k, u) in keys.iter().zip(&mut usages) {
                        if let Some(e) = t.quotas.get_mut(k) {
                            e.pending_calls = e.pending_calls.saturating_add(*n);
                        }
                        u.calls = u.calls.saturating_add(*n);
                    }
                }
                Some(StoreResult::Quota(quota_outcome(
                    counters, *add, admitted, &usages, now_unix,
                )))
            }
            StoreOp::QuotaAdd {
                counters,
                calls,
                bytes,
            } => {
                for (c, k) in counters.iter().zip(keys) {
                    let e = t.quotas.entry(k.clone()).or_insert_with(|| QuotaEntry {
                        key: k.clone(),
                        limits: c.limits,
                        usage: QuotaUsage::new(&c.limits, now_unix),
                        pending_calls: 0,
                        pending_bytes: 0,
                        last_used: now,
                    });
                    e.pending_calls = e.pending_calls.saturating_add(*calls);
                    e.pending_bytes = e.pending_bytes.saturating_add(*bytes);
                    e.last_used = now;
                }
                Some(StoreResult::Done)
            }
            _ => None,
        }
    }

    /// Redis answered a key's first rate decision: its windows as they are now
    /// (what Redis counted included).
    pub fn learn_rate(
        &self,
        counters: &[RateCounter],
        keys: &[Bytes],
        windows: &[RateWindow],
        redis_ms: u64,
        now: Instant,
    ) {
        let mut t = lock(&self.tables);
        t.clock = Some((now, redis_ms));
        for ((c, k), w) in counters.iter().zip(keys).zip(windows) {
            let e = t.rates.entry(k.clone()).or_insert_with(|| RateEntry {
                key: k.clone(),
                limit: c.limit.calls,
                period: c.limit.period,
                window: *w,
                pending: 0,
                last_used: now,
            });
            e.window = *w;
            e.last_used = now;
        }
    }

    /// Redis answered a key's first quota decision.
    pub fn learn_quota(
        &self,
        counters: &[QuotaCounter],
        keys: &[Bytes],
        usages: &[QuotaUsage],
        redis_unix: i64,
        now: Instant,
    ) {
        let mut t = lock(&self.tables);
        if t.clock.is_none() {
            let ms = u64::try_from(redis_unix).unwrap_or(0).saturating_mul(1000);
            t.clock = Some((now, ms));
        }
        for ((c, k), u) in counters.iter().zip(keys).zip(usages) {
            let e = t.quotas.entry(k.clone()).or_insert_with(|| QuotaEntry {
                key: k.clone(),
                limits: c.limits,
                usage: *u,
                pending_calls: 0,
                pending_bytes: 0,
                last_used: now,
            });
            e.usage = *u;
            e.last_used = now;
        }
    }

    /// What the next sync sends: every counter with pending calls and every
    /// one used within its window (to read the shared count), after dropping
    /// those idle for long.
    pub fn to_sync(&self, now: Instant) -> Vec<SyncItem> {
        let mut t = lock(&self.tables);
        t.rates.retain(|_, e| {
            e.pending > 0 || now.saturating_duration_since(e.last_used) < e.period.max(IDLE)
        });
        t.quotas.retain(|_, e| {
            e.pending_calls > 0
                || e.pending_bytes > 0
                || now.saturating_duration_since(e.last_used) < IDLE
        });
        let rates = t
            .rates
            .values()
            .map(|e| SyncItem::Rate(e.key.clone(), e.limit, e.period, e.pending));
        let quotas = t
            .quotas
            .values()
            .map(|e| SyncItem::Quota(e.key.clone(), e.limits, e.pending_calls, e.pending_bytes));
        rates.chain(quotas).collect()
    }

    /// A sync's answers: `sent` counted in Redis, which now holds these counts.
    pub fn synced_rate(
        &self,
        key: &Bytes,
        sent: u64,
        window: RateWindow,
        redis_ms: u64,
        now: Instant,
    ) {
        let mut t = lock(&self.tables);
        t.clock = Some((now, redis_ms));
        if let Some(e) = t.rates.get_mut(key) {
            e.pending = e.pending.saturating_sub(sent);
            e.window = window;
        }
    }

    /// As [`synced_rate`](Self::synced_rate), for a quota period.
    pub fn synced_quota(&self, key: &Bytes, calls: u64, bytes: u64, usage: QuotaUsage) {
        let mut t = lock(&self.tables);
        if let Some(e) = t.quotas.get_mut(key) {
            e.pending_calls = e.pending_calls.saturating_sub(calls);
            e.pending_bytes = e.pending_bytes.saturating_sub(bytes);
            e.usage = usage;
        }
    }
}
