//! Connected mode: driving the core's sync agent and token renewal.

pub mod jobs;
pub mod renewal;
