//! Setting up a gateway's proxy, the same on every runtime: the settings every
//! client connection shares, and which OpenID configuration URLs the key set
//! refresher must follow. The adapter binds, spawns and reads the clocks.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::settings::{ConfigSource, ConnSettings, PolicyEnv};
use crate::options::{ConfigOrigin, GatewayOptions};
use crate::telemetry::{Telemetry, TelemetrySettings, DEFAULT_QUEUE_CAPACITY};

/// The settings every client connection of a gateway shares. `now` and `wall`
/// are the same moment on the monotonic and the wall clock (the policies' time
/// anchor); `secret` is random bytes from the OS; `instance` is the sync
/// agent's instance id in connected mode.
#[allow(clippy::too_many_arguments)]
pub fn gateway_conn_settings(
    options: &GatewayOptions,
    config: Arc<dyn ConfigSource>,
    gateway_id: &str,
    instance: Option<&str>,
    now: Instant,
    wall: SystemTime,
    secret: [u8; 32],
) -> ConnSettings {
    ConnSettings {
        limits: options.limits,
        timeouts: options.timeouts,
        proto: "http",
        config,
        policy: PolicyEnv::new(gateway_id.into(), Some((now, unix_millis(wall))), secret),
        telemetry: Arc::new(Telemetry::new(telemetry_settings(
            options, gateway_id, instance,
        ))),
        allow_underscores_in_headers: options.allow_underscores_in_headers,
        not_ready_log: Default::default(),
    }
}

/// What the gateway does with its requests' telemetry, from its options.
pub fn telemetry_settings(
    options: &GatewayOptions,
    gateway_id: &str,
    instance: Option<&str>,
) -> TelemetrySettings {
    let t = &options.telemetry;
    // Nowhere to upload to without a management plane.
    let upload = t.upload && matches!(options.origin, ConfigOrigin::Managed(_));
    let instance = instance.unwrap_or("local");
    TelemetrySettings {
        gateway: gateway_id.into(),
        instance: instance.into(),
        access_log: t.access_log,
        metrics: t.metrics,
        upload,
        tracing: t.otlp_endpoint.is_some(),
        queue_capacity: DEFAULT_QUEUE_CAPACITY,
    }
}

/// Milliseconds since the Unix epoch (0 before it, saturating far after it).
pub fn unix_millis(wall: SystemTime) -> i64 {
    wall.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Follows the configuration in force for the key set refresher: the OpenID
/// configuration URLs, once per new revision.
#[derive(Debug, Default)]
pub struct OpenIdUrls {
    seen: Option<u64>,
}

impl OpenIdUrls {
    /// The URLs of the configuration in force if its revision is new since the
    /// last call; `None` when nothing changed (or nothing is loaded yet).
    pub fn poll_changed(&mut self, config: &dyn ConfigSource) -> Option<Vec<String>> {
        let current = config.current()?;
        if self.seen == Some(current.revision()) {
            return None;
        }
        self.seen = Some(current.revision());
        Some(current.openid_urls())
    }
}
