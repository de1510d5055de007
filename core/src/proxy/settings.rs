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
    /// Identity, time and ids for policies.
    pub policy: PolicyEnv,
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

/// What policies need from the gateway besides the configuration: its identity,
/// wall-clock time and request ids, all derived from inputs.
#[derive(Debug)]
pub struct PolicyEnv {
    /// `context.Deployment.GatewayId`.
    pub gateway_id: Arc<str>,
    /// `context.Deployment.Region`.
    pub region: Arc<str>,
    /// A monotonic instant and the Unix time in milliseconds at that instant, so
    /// `DateTime.UtcNow` is computed from `now` without reading a clock.
    pub wall_anchor: Option<(std::time::Instant, i64)>,
    /// Seed of request ids (the adapter picks it at random at start).
    pub id_seed: u64,
    /// Counters and key sets shared by every connection of the gateway.
    pub state: Arc<crate::policy::state::PolicyState>,
    ids: std::sync::atomic::AtomicU64,
}

impl Default for PolicyEnv {
    fn default() -> Self {
        PolicyEnv::new("portcullis".into(), None, 0)
    }
}

impl PolicyEnv {
    /// An environment for gateway `gateway_id`.
    pub fn new(
        gateway_id: Arc<str>,
        wall_anchor: Option<(std::time::Instant, i64)>,
        id_seed: u64,
    ) -> Self {
        PolicyEnv {
            gateway_id,
            region: "".into(),
            wall_anchor,
            id_seed,
            state: Arc::new(crate::policy::state::PolicyState::new(
                u128::from(id_seed) << 64 | u128::from(!id_seed),
            )),
            ids: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Unix time in milliseconds at `now`.
    pub fn unix_ms(&self, now: std::time::Instant) -> i64 {
        match self.wall_anchor {
            Some((at, ms)) => {
                if now >= at {
                    ms.saturating_add(
                        i64::try_from(now.duration_since(at).as_millis()).unwrap_or(i64::MAX),
                    )
                } else {
                    ms.saturating_sub(
                        i64::try_from(at.duration_since(now).as_millis()).unwrap_or(i64::MAX),
                    )
                }
            }
            None => 0,
        }
    }

    /// A new request id, formatted as a GUID and unique within this gateway run.
    pub fn next_request_id(&self) -> String {
        let n = self.ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let a = splitmix64(self.id_seed ^ n);
        let b = splitmix64(a ^ n.rotate_left(32));
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            (b >> 48) & 0x3fff | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
