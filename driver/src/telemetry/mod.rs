//! The telemetry task: access log, span export and uploads.

pub mod pump;
