//! What the shared-state store reports: call latency, failures by reason, its
//! health for the heartbeat, and rate-limited log lines.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_core::config::store::StoreSettings;
use portcullis_core::sync::heartbeat::StateStoreHealth;
use portcullis_core::telemetry::prometheus::{StoreGauges, STORE_BOUNDS_US, STORE_ERROR_REASONS};

/// Failure log lines at most this often (the rest are counted).
const LOG_EVERY: Duration = Duration::from_secs(1);

/// The store's counters, shared by every connection.
pub struct StoreStats {
    clock: Arc<dyn Fn() -> Instant + Send + Sync>,
    buckets: [AtomicU64; STORE_BOUNDS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
    errors: [AtomicU64; STORE_ERROR_REASONS.len()],
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Failures not logged since the last line, and when that was.
    log: Mutex<(Option<Instant>, u64)>,
    /// What the heartbeat says the store is.
    describe: Mutex<Option<(String, String, String)>>,
}

impl std::fmt::Debug for StoreStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreStats")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl StoreStats {
    /// Empty counters reading time from `clock` (the runtime's).
    pub fn new(clock: Arc<dyn Fn() -> Instant + Send + Sync>) -> Self {
        StoreStats {
            clock,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
            log: Mutex::new((None, 0)),
            describe: Mutex::new(None),
        }
    }

    /// The runtime's monotonic time.
    pub fn now(&self) -> Instant {
        (self.clock)()
    }

    /// The store in force is `settings` (`None`: in process).
    pub fn set_settings(&self, settings: Option<&StoreSettings>) {
        *lock(&self.describe) = settings.map(|s| {
            let target = match &s.url {
                portcullis_core::config::store::StoreUrl::Redis(r) => r.display_redacted(),
                portcullis_core::config::store::StoreUrl::Local => "local".to_owned(),
            };
            let counting = serde_json::to_value(s.counting)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let on_failure = serde_json::to_value(s.on_failure)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            (target, counting, on_failure)
        });
        self.healthy.store(true, Ordering::Relaxed);
    }

    /// A call answered after `took`.
    pub fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let i = STORE_BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.healthy.store(true, Ordering::Relaxed);
    }

    /// A call failed for `reason` (a metric label of [`STORE_ERROR_REASONS`]).
    pub fn failed(&self, reason: &str, detail: &str) {
        if let Some(i) = STORE_ERROR_REASONS.iter().position(|r| *r == reason) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
        if reason == "no_external_cache" {
            self.log_limited(|n| {
                tracing::warn!(
                    suppressed = n,
                    "caching-type=\"external\" but the gateway has no external cache (--store is local): a miss, nothing stored"
                )
            });
            return;
        }
        self.healthy.store(false, Ordering::Relaxed);
        *lock(&self.last_error) = Some(detail.to_owned());
        self.log_limited(|n| {
            tracing::warn!(
                reason,
                error = detail,
                suppressed = n,
                "shared-state store call failed"
            )
        });
    }

    /// A cache entry over the size limit was not stored.
    pub fn skipped_large(&self) {
        self.log_limited(|n| {
            tracing::debug!(suppressed = n, "cache entry over maxEntryBytes not stored")
        });
    }

    fn log_limited(&self, log: impl FnOnce(u64)) {
        let now = self.now();
        let mut g = lock(&self.log);
        match g.0 {
            Some(last) if now.saturating_duration_since(last) < LOG_EVERY => g.1 += 1,
            _ => {
                let n = g.1;
                *g = (Some(now), 0);
                drop(g);
                log(n);
            }
        }
    }

    /// The gauges `/metrics` shows.
    pub fn gauges(&self) -> StoreGauges {
        StoreGauges {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            count: self.count.load(Ordering::Relaxed),
            sum_us: self.sum_us.load(Ordering::Relaxed),
            errors: std::array::from_fn(|i| self.errors[i].load(Ordering::Relaxed)),
        }
    }

    /// What the heartbeat reports (`None` when the store is in process).
    pub fn health(&self) -> Option<StateStoreHealth> {
        let (target, counting, on_failure) = lock(&self.describe).clone()?;
        let g = self.gauges();
        Some(StateStoreHealth {
            target,
            counting,
            on_failure,
            healthy: self.healthy.load(Ordering::Relaxed),
            errors: g.errors.iter().take(3).sum(),
            last_error: lock(&self.last_error).clone(),
            p99_micros: g.quantile_us(0.99),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
