//! Settings shared by every connection of a listener.

use std::sync::Arc;
use std::time::Duration;

use crate::config::CompiledConfig;
use crate::http::Limits;

/// Where a connection finds the configuration in force when a request arrives.
///
/// The adapter implements it (e.g. over an atomically swapped pointer) so a reload
/// takes effect for the next request while requests in flight keep the old one.
pub trait ConfigSource: Send + Sync {
    /// The configuration to route the next request with, or `None` when none is loaded.
    fn current(&self) -> Option<Arc<CompiledConfig>>;
}

/// Timeouts applied by the connection state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the first byte of a request head to its end (slow clients get 408).
    pub header_read: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle: Duration,
    /// Opening a backend connection (504 when exceeded).
    pub connect: Duration,
    /// Longest pause while a body streams in either direction.
    pub body_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            connect: Duration::from_secs(5),
            body_idle: Duration::from_secs(60),
        }
    }
}

/// Settings of one listener, shared by its connections.
pub struct ConnSettings {
    /// Message size limits for client requests.
    pub limits: Limits,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Scheme clients use on this listener (`http` or `https`), for X-Forwarded-Proto.
    pub proto: &'static str,
    /// Where the configuration comes from.
    pub config: Arc<dyn ConfigSource>,
}

impl std::fmt::Debug for ConnSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnSettings")
            .field("limits", &self.limits)
            .field("timeouts", &self.timeouts)
            .field("proto", &self.proto)
            .finish_non_exhaustive()
    }
}
