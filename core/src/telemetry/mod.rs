//! Telemetry: the record of each request, metrics aggregated from them, their
//! Prometheus and access-log forms, and the batches uploaded for analytics.

pub mod batch;
pub mod record;
