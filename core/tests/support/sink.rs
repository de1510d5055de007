//! A record sink for core's tests and benches: what the driver's hub keeps
//! (metrics under a lock, the records), without its queue or waker. Included
//! with `#[path]` by each test or bench that needs it.

#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

use portcullis_core::telemetry::metrics::{Metrics, Observation};
use portcullis_core::telemetry::prometheus::{self, GatewayGauges};
use portcullis_core::telemetry::record::RequestRecord;
use portcullis_core::telemetry::{RecordSink, TelemetrySettings};

/// Keeps the metrics and every record it is given.
#[derive(Debug, Default)]
pub struct Sink {
    settings: TelemetrySettings,
    metrics: Mutex<Metrics>,
    seen: Mutex<u64>,
    records: Mutex<Vec<RequestRecord>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sink {
    /// A sink with `settings`.
    pub fn new(settings: TelemetrySettings) -> Self {
        Sink {
            metrics: Mutex::new(Metrics::new(settings.metric_series)),
            settings,
            ..Sink::default()
        }
    }

    /// The records given so far, taken.
    pub fn take_records(&self) -> Vec<RequestRecord> {
        std::mem::take(&mut *lock(&self.records))
    }

    /// The Prometheus exposition, as the hub renders it.
    pub fn render_metrics(&self, revision: Option<u64>) -> String {
        prometheus::render(
            &lock(&self.metrics).snapshot(),
            &GatewayGauges {
                revision,
                ready: revision.is_some(),
                ..GatewayGauges::default()
            },
        )
    }
}

impl RecordSink for Sink {
    fn settings(&self) -> &TelemetrySettings {
        &self.settings
    }

    fn observe(&self, observation: &Observation<'_>, sample: bool) -> u64 {
        if self.settings.metrics {
            lock(&self.metrics).observe(observation);
        }
        let mut seen = lock(&self.seen);
        *seen += u64::from(sample);
        *seen - u64::from(sample)
    }

    fn record(&self, record: RequestRecord) {
        lock(&self.records).push(record);
    }
}
