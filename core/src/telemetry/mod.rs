//! Telemetry: the record of each request, metrics aggregated from them, their
//! Prometheus and access-log forms, and the batches uploaded for analytics.
//!
//! A connection's machine reports each finished request to a [`RecordSink`]
//! (the driver's hub, shared by every connection of a gateway) through
//! [`report`]: the metrics count every request; a record is built only when
//! something consumes records (the access log, spans or the upload) and the
//! API's sampling keeps the request. Core keeps the pure parts: the record,
//! sampling, the metrics as a single-threaded value ([`metrics::Metrics`]),
//! their Prometheus form, the uploader and the OTLP exporter machines.

pub mod access_log;
pub mod batch;
pub mod buffer_file;
pub mod custom_metrics;
pub mod histogram;
pub mod metrics;
pub mod otlp;
pub mod otlp_exporter;
pub mod otlp_metrics;
pub mod prometheus;
pub mod record;
pub mod trace_context;
pub mod uploader;

use std::sync::Arc;

use access_log::AccessLog;
use metrics::Observation;
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
    /// Which label sets the request metrics keep apart.
    pub metric_series: metrics::SeriesLimits,
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
            metric_series: metrics::SeriesLimits::default(),
        }
    }
}

/// Where a connection reports its finished requests; the driver implements it
/// with the gateway's shared hub (metrics under a lock, a queue of records).
///
/// Two calls per request at most: [`observe`](Self::observe) for every one,
/// [`record`](Self::record) for those sampling keeps. What is counted and
/// sampled is decided in core ([`report`]); the sink only keeps it.
pub trait RecordSink: Send + Sync {
    /// The gateway's telemetry settings (records are built with them).
    fn settings(&self) -> &TelemetrySettings;

    /// Whether anything consumes request records.
    fn wants_records(&self) -> bool {
        self.settings().wants_records()
    }

    /// Counts a finished request in the metrics (when they are on) and, when
    /// `sample`, returns its number in the gateway's sampling sequence (from 0;
    /// unspecified otherwise).
    fn observe(&self, observation: &Observation<'_>, sample: bool) -> u64;

    /// Takes a record sampling kept (queued for the access log, spans and
    /// upload; dropped and counted when the queue is full).
    fn record(&self, record: RequestRecord);

    /// Keeps a custom metric sample (`emit-metric`, `llm-emit-token-metric`);
    /// a sink without custom metrics drops it.
    fn emit_metric(&self, sample: &crate::policy::emit_metric::MetricSample) {
        let _ = sample;
    }
}

impl TelemetrySettings {
    /// Whether anything consumes request records.
    pub fn wants_records(&self) -> bool {
        self.upload || self.tracing || self.access_log.enabled()
    }
}

/// Reports a finished request to `sink`: counts it, and hands it the record
/// (built by `build` with its weight) when records are wanted and `api`'s
/// settings keep it.
pub fn report(
    sink: &dyn RecordSink,
    observation: &Observation<'_>,
    api: Option<&ApiTelemetry>,
    build: impl FnOnce(u32) -> RequestRecord,
) {
    let (enabled, percent) = api.map_or((true, 100), |t| (t.enabled, t.sampling_percentage));
    let sample = enabled && sink.settings().wants_records();
    let n = sink.observe(observation, sample);
    if !sample {
        return;
    }
    if let Some(weight) = sampled(n, percent) {
        sink.record(build(weight));
    }
}

/// A sink that keeps nothing, with telemetry off: for connections whose
/// requests nobody counts (tests, tools).
#[derive(Debug)]
pub struct Discard(TelemetrySettings);

impl Default for Discard {
    fn default() -> Self {
        Discard(TelemetrySettings {
            metrics: false,
            ..TelemetrySettings::default()
        })
    }
}

impl RecordSink for Discard {
    fn settings(&self) -> &TelemetrySettings {
        &self.0
    }

    fn observe(&self, _: &Observation<'_>, _: bool) -> u64 {
        0
    }

    fn record(&self, _: RequestRecord) {}
}

/// A [`Discard`] sink, shared.
pub fn discard() -> Arc<dyn RecordSink> {
    Arc::new(Discard::default())
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
