//! Telemetry: the record of each request, metrics aggregated from them, their
//! Prometheus and access-log forms, and the batches uploaded for analytics.
//!
//! [`Telemetry`] is shared by every connection of a gateway. A connection's
//! machine reports each finished request to it: the metrics count every
//! request; a record is built only when something consumes records (the access
//! log or the upload) and the API's sampling keeps the request. Records wait
//! in a bounded queue that the adapter drains ([`Telemetry::poll_records`]).

pub mod access_log;
pub mod batch;
pub mod buffer_file;
pub mod histogram;
pub mod metrics;
pub mod otlp;
pub mod prometheus;
pub mod record;
pub mod trace_context;
pub mod uploader;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use access_log::AccessLog;
use metrics::{Metrics, Observation};
use prometheus::GatewayGauges;
use record::RequestRecord;

use crate::config::ApiTelemetry;

/// Records waiting for the adapter, at most, by default.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;

/// What the gateway does with telemetry.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// The gateway's id, in records.
    pub gateway: Arc<str>,
    /// This process' instance id, in records and batch ids.
    pub instance: Arc<str>,
    /// The access log.
    pub access_log: AccessLog,
    /// Whether requests are counted in the metrics (`/metrics`).
    pub metrics: bool,
    /// Whether records are uploaded to the management plane.
    pub upload: bool,
    /// Whether requests get a span (W3C `traceparent` to the backend, spans
    /// exported over OTLP).
    pub tracing: bool,
    /// Most records waiting in memory; more are dropped and counted.
    pub queue_capacity: usize,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            gateway: "portcullis".into(),
            instance: "local".into(),
            access_log: AccessLog::default(),
            metrics: true,
            upload: false,
            tracing: false,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    records: VecDeque<RequestRecord>,
    waker: Option<Waker>,
}

/// The gateway's telemetry hub; see the module documentation.
#[derive(Debug, Default)]
pub struct Telemetry {
    settings: TelemetrySettings,
    metrics: Metrics,
    queue: Mutex<Queue>,
    seen: AtomicU64,
    dropped_queue: AtomicU64,
    dropped_buffer: AtomicU64,
    /// The gateway token in use (connected mode), for its gauges.
    token: std::sync::OnceLock<Arc<crate::sync::credential::Credential>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere leaves plain data behind: keep counting.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether request `n` (counting from 0) is kept at `percent` percent, and the
/// weight of a kept one. Deterministic and exact over any 100 requests.
pub fn sampled(n: u64, percent: u8) -> Option<u32> {
    let p = u64::from(percent.min(100));
    if p == 0 {
        return None;
    }
    if (n % 100) * p % 100 < p {
        Some(((100 + p / 2) / p) as u32)
    } else {
        None
    }
}

impl Telemetry {
    /// A hub with `settings`.
    pub fn new(settings: TelemetrySettings) -> Self {
        Telemetry {
            settings,
            ..Telemetry::default()
        }
    }

    /// Shows the gateway token's expiry and refusals in `/metrics` (connected
    /// mode; the first credential attached stays).
    pub fn attach_token(&self, credential: Arc<crate::sync::credential::Credential>) {
        let _ = self.token.set(credential);
    }

    /// The settings.
    pub fn settings(&self) -> &TelemetrySettings {
        &self.settings
    }

    /// Whether anything consumes request records.
    pub fn wants_records(&self) -> bool {
        self.settings.upload || self.settings.tracing || self.settings.access_log.enabled()
    }

    /// The aggregated metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Reports a finished request: counts it, and queues its record (built by
    /// `build` with its weight) when records are wanted and `api`'s settings
    /// keep it.
    pub fn finish(
        &self,
        observation: &Observation<'_>,
        api: Option<&ApiTelemetry>,
        build: impl FnOnce(u32) -> RequestRecord,
    ) {
        if self.settings.metrics {
            self.metrics.observe(observation);
        }
        if !self.wants_records() {
            return;
        }
        let (enabled, percent) = api.map_or((true, 100), |t| (t.enabled, t.sampling_percentage));
        if !enabled {
            return;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        let Some(weight) = sampled(n, percent) else {
            return;
        };
        let record = build(weight);
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
        prometheus::render(
            &self.metrics.snapshot(),
            &GatewayGauges {
                revision,
                ready: revision.is_some(),
                dropped_queue: self.dropped_queue.load(Ordering::Relaxed),
                dropped_buffer: self.dropped_buffer.load(Ordering::Relaxed),
                token: self.token.get().map(|c| c.gauges()),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    #[test]
    fn sampling_keeps_the_exact_share_with_weights() {
        for percent in [0u8, 1, 10, 25, 33, 50, 99, 100] {
            let kept: Vec<u32> = (0..1000).filter_map(|n| sampled(n, percent)).collect();
            assert_eq!(kept.len(), usize::from(percent) * 10, "{percent}%");
            if let Some(w) = kept.first() {
                assert_eq!(*w, ((100 + u32::from(percent) / 2) / u32::from(percent)));
            }
        }
        assert_eq!(sampled(0, 200), Some(1), "above 100 is 100");
    }

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
        let t = Telemetry::new(TelemetrySettings {
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
            t.finish(&Observation::default(), None, |_| record(i));
        }
        assert!(flag.0.load(Ordering::SeqCst), "the consumer was woken");
        assert_eq!(t.queue_drops(), 2);
        assert!(t.poll_records(&mut cx, 2, &mut out).is_ready());
        assert!(t.poll_records(&mut cx, 2, &mut out).is_ready());
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].request_id, "r0");
        let text = t.render_metrics(Some(9));
        assert!(text.contains("portcullis_requests_total{api=\"\",operation=\"\",product=\"\",status_class=\"other\"} 5"));
        assert!(text.contains("reason=\"queue\"} 2"));
    }

    #[test]
    fn without_consumers_no_record_is_built_and_disabled_apis_are_skipped() {
        let t = Telemetry::default();
        t.finish(&Observation::default(), None, |_| {
            panic!("built a record nobody wants")
        });
        let t = Telemetry::new(TelemetrySettings {
            upload: true,
            ..TelemetrySettings::default()
        });
        let off = ApiTelemetry {
            enabled: false,
            sampling_percentage: 100,
        };
        t.finish(&Observation::default(), Some(&off), |_| {
            panic!("API has telemetry off")
        });
        assert_eq!(
            t.metrics().snapshot()[0].classes[5].requests,
            1,
            "still counted"
        );
    }
}
