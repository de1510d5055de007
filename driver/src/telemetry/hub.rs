//! The gateway's telemetry hub, shared by every connection: the metrics under
//! a lock and the bounded queue of request records the telemetry pump drains.
//!
//! Core decides what is counted and sampled (`telemetry::report`); the hub
//! only keeps it, as the [`RecordSink`] every connection's settings hold.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use crate::sync::credential::Credential;
use portcullis_core::policy::emit_metric::MetricSample;
use portcullis_core::telemetry::custom_metrics::{Added, CustomMetrics};
use portcullis_core::telemetry::metrics::{Metrics, Observation, Snapshot};
use portcullis_core::telemetry::prometheus::{self, GatewayGauges, Page, TlsFailure, TlsGauges};
use portcullis_core::telemetry::record::RequestRecord;
use portcullis_core::telemetry::{RecordSink, TelemetrySettings};

#[derive(Debug, Default)]
struct Queue {
    records: VecDeque<RequestRecord>,
    waker: Option<Waker>,
}

/// The gateway's telemetry hub; see the module documentation.
#[derive(Debug, Default)]
pub struct Hub {
    settings: TelemetrySettings,
    metrics: Mutex<Metrics>,
    /// `emit-metric` and `llm-emit-token-metric` samples.
    custom: Mutex<CustomMetrics>,
    queue: Mutex<Queue>,
    /// Requests drawn in the sampling sequence so far.
    seen: AtomicU64,
    dropped_queue: AtomicU64,
    dropped_buffer: AtomicU64,
    /// The gateway token in use (connected mode), for its gauges.
    token: OnceLock<Arc<Credential>>,
    /// The HTTPS listener's handshake counts, once it is attached.
    tls: OnceLock<TlsCounters>,
    /// The shared-state store's counters, once attached.
    store: OnceLock<Arc<crate::store::stats::StoreStats>>,
}

/// Handshake counts of the HTTPS listener, counted without a lock.
#[derive(Debug, Default)]
struct TlsCounters {
    full: AtomicU64,
    resumed: AtomicU64,
    failures: [AtomicU64; TlsFailure::ALL.len()],
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere leaves plain data behind: keep counting.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RecordSink for Hub {
    fn settings(&self) -> &TelemetrySettings {
        &self.settings
    }

    fn observe(&self, observation: &Observation<'_>, sample: bool) -> u64 {
        if self.settings.metrics {
            lock(&self.metrics).observe(observation);
        }
        if sample {
            self.seen.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        }
    }

    fn record(&self, record: RequestRecord) {
        let waker = {
            let mut q = lock(&self.queue);
            if q.records.len() >= self.settings.queue_capacity {
                self.dropped_queue.fetch_add(1, Ordering::Relaxed);
                return;
            }
            q.records.push_back(record);
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn emit_metric(&self, sample: &MetricSample) {
        if lock(&self.custom).add(sample) == Added::FirstDropped {
            tracing::warn!(
                namespace = %sample.namespace,
                name = %sample.name,
                "custom metric has too many dimension sets (or there are too many metrics): further new ones are dropped and counted in portcullis_custom_metric_dropped_total"
            );
        }
    }
}

impl Hub {
    /// A hub with `settings`.
    pub fn new(settings: TelemetrySettings) -> Self {
        Hub {
            metrics: Mutex::new(Metrics::new(settings.metric_series)),
            settings,
            ..Hub::default()
        }
    }

    /// Shows the gateway token's expiry and refusals in `/metrics` (connected
    /// mode; the first credential attached stays).
    pub fn attach_token(&self, credential: Arc<Credential>) {
        let _ = self.token.set(credential);
    }

    /// Shows the shared-state store's calls in `/metrics` (while it is remote).
    pub fn attach_store(&self, stats: Arc<crate::store::stats::StoreStats>) {
        let _ = self.store.set(stats);
    }

    /// Shows the HTTPS listener's handshake counts in `/metrics` (from zero).
    pub fn attach_tls(&self) {
        let _ = self.tls.set(TlsCounters::default());
    }

    /// Counts a completed handshake (`resumed`: from a ticket or the session cache).
    pub fn count_handshake(&self, resumed: bool) {
        if let Some(tls) = self.tls.get() {
            let n = if resumed { &tls.resumed } else { &tls.full };
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a failed handshake.
    pub fn count_handshake_failure(&self, reason: TlsFailure) {
        if let Some(tls) = self.tls.get() {
            tls.failures[reason.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A copy of the aggregated metrics.
    pub fn metrics(&self) -> Metrics {
        lock(&self.metrics).clone()
    }

    /// A copy of the custom metrics (`emit-metric`, `llm-emit-token-metric`).
    pub fn custom_metrics(&self) -> CustomMetrics {
        lock(&self.custom).clone()
    }

    /// Moves up to `max` queued records into `out`; pending (and woken when one
    /// arrives) while there are none.
    pub fn poll_records(
        &self,
        cx: &mut Context<'_>,
        max: usize,
        out: &mut Vec<RequestRecord>,
    ) -> Poll<()> {
        let mut q = lock(&self.queue);
        if q.records.is_empty() {
            q.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = q.records.len().min(max);
        out.extend(q.records.drain(..n));
        Poll::Ready(())
    }

    /// Counts records the upload buffer dropped because it was full.
    pub fn count_buffer_drops(&self, n: u64) {
        self.dropped_buffer.fetch_add(n, Ordering::Relaxed);
    }

    /// Records dropped because the in-memory queue was full, so far.
    pub fn queue_drops(&self) -> u64 {
        self.dropped_queue.load(Ordering::Relaxed)
    }

    /// The Prometheus exposition, with the gateway's revision and readiness.
    pub fn render_metrics(&self, revision: Option<u64>) -> String {
        self.render_metrics_chunks(revision).concat()
    }

    /// The Prometheus exposition in chunks of about [`Page::CHUNK`] bytes.
    /// Slow work for a big page: call it off the threads that serve traffic.
    pub fn render_metrics_chunks(&self, revision: Option<u64>) -> Vec<String> {
        let snapshot = self.metrics_snapshot();
        let mut page = Page::default();
        prometheus::render_into(
            &mut page,
            &snapshot,
            &GatewayGauges {
                revision,
                ready: revision.is_some(),
                dropped_queue: self.dropped_queue.load(Ordering::Relaxed),
                dropped_buffer: self.dropped_buffer.load(Ordering::Relaxed),
                token: self.token.get().map(|c| c.gauges()),
                tls: self.tls.get().map(|t| TlsGauges {
                    full: t.full.load(Ordering::Relaxed),
                    resumed: t.resumed.load(Ordering::Relaxed),
                    failures: std::array::from_fn(|i| t.failures[i].load(Ordering::Relaxed)),
                }),
                store: self.store.get().map(|s| s.gauges()),
            },
        );
        // Custom metrics are capped on their own (see `custom_metrics`); they
        // are copied under their lock as one piece and rendered without it.
        let mut custom = String::new();
        self.custom_metrics().render(&mut custom);
        let mut chunks = page.into_chunks();
        if !custom.is_empty() {
            chunks.push(custom);
        }
        chunks
    }

    /// A copy of the request metrics taken in steps of [`COPY_STEP`] series,
    /// the lock released between them: requests wait for one step at most.
    fn metrics_snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        while !lock(&self.metrics).copy_into(&mut snapshot, COPY_STEP) {}
        snapshot
    }
}

/// Series copied per hold of the metrics' lock (a few microseconds' worth).
const COPY_STEP: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::config::ApiTelemetry;
    use portcullis_core::telemetry::report;
    use std::task::Wake;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn record(i: u64) -> RequestRecord {
        serde_json::from_value(serde_json::json!({
            "timestampMs": i, "requestId": format!("r{i}"), "gateway": "g", "instance": "i",
            "method": "GET", "path": "/", "status": 200, "clientIp": "::1",
            "bytesIn": 0, "bytesOut": 0, "totalUs": 0, "backendUs": 0, "gatewayUs": 0
        }))
        .unwrap()
    }

    #[test]
    fn records_queue_wake_the_consumer_and_overflow_is_counted() {
        let t = Hub::new(TelemetrySettings {
            upload: true,
            queue_capacity: 3,
            ..TelemetrySettings::default()
        });
        let flag = Arc::new(Flag(Default::default()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut out = Vec::new();
        assert!(t.poll_records(&mut cx, 10, &mut out).is_pending());
        for i in 0..5 {
            report(&t, &Observation::default(), None, |_| record(i));
        }
        assert!(flag.0.load(Ordering::SeqCst), "the consumer was woken");
        assert_eq!(t.queue_drops(), 2);
        assert!(t.poll_records(&mut cx, 2, &mut out).is_ready());
        assert!(t.poll_records(&mut cx, 2, &mut out).is_ready());
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].request_id, "r0");
        let text = t.render_metrics(Some(9));
        assert!(text
            .contains("portcullis_requests_total{api=\"\",product=\"\",status_class=\"other\"} 5"));
        assert!(text.contains("reason=\"queue\"} 2"));
    }

    #[test]
    fn without_consumers_no_record_is_built_and_disabled_apis_are_skipped() {
        let t = Hub::default();
        report(&t, &Observation::default(), None, |_| {
            panic!("built a record nobody wants")
        });
        let t = Hub::new(TelemetrySettings {
            upload: true,
            ..TelemetrySettings::default()
        });
        let off = ApiTelemetry {
            enabled: false,
            sampling_percentage: 100,
        };
        report(&t, &Observation::default(), Some(&off), |_| {
            panic!("API has telemetry off")
        });
        assert_eq!(
            t.metrics().snapshot()[0].classes[5].requests,
            1,
            "still counted"
        );
        // Sampling counts only the requests it draws from.
        let half = ApiTelemetry {
            enabled: true,
            sampling_percentage: 50,
        };
        let mut kept = Vec::new();
        for i in 0..4 {
            report(&t, &Observation::default(), Some(&half), |w| {
                kept.push(w);
                record(i)
            });
        }
        assert_eq!(kept, vec![2, 2]);
        assert_eq!(t.metrics().snapshot()[0].classes[5].requests, 5);
    }
}
