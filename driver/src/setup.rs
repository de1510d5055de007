//! Setting up a gateway from its options: the settings every client connection
//! shares and the sync agent's start, the same on every runtime.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use portcullis_core::proxy::setup::unix_millis;
use portcullis_core::proxy::{ConfigSource, ConnSettings, PolicyEnv};
use portcullis_core::sync::{AgentSetup, BackupSettings, SyncSettings};
use portcullis_core::telemetry::metrics::SeriesLimits;
use portcullis_core::telemetry::{RecordSink, TelemetrySettings, DEFAULT_QUEUE_CAPACITY};

use crate::options::{ConfigOrigin, GatewayOptions, ManagedOptions};

/// The settings every client connection of a gateway shares. `now` and `wall`
/// are the same moment on the monotonic and the wall clock (the policies' time
/// anchor); `secret` is random bytes from the OS; `telemetry` is where
/// finished requests go (the gateway's [`crate::telemetry::Hub`]).
#[allow(clippy::too_many_arguments)]
pub fn gateway_conn_settings(
    options: &GatewayOptions,
    config: Arc<dyn ConfigSource>,
    gateway_id: &str,
    telemetry: Arc<dyn RecordSink>,
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
        telemetry,
        allow_underscores_in_headers: options.allow_underscores_in_headers,
        // The gateway corrects it to the bound port when the listener's is 0.
        https_port: options
            .https
            .as_ref()
            .map(|h| h.public_port.unwrap_or(h.listen.port())),
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
        metric_series: SeriesLimits {
            operation_labels: t.metrics_operation_labels,
            max_series: t.metrics_max_series,
        },
    }
}

/// Settings for a connected gateway from its options and 32 random bytes the
/// adapter drew from the OS (the jitter seed, the backup nonces' seed and, when
/// none is given, the instance id come from them). `hostname` is asked only
/// when the options name none.
pub fn agent_setup(
    options: &ManagedOptions,
    random: [u8; 32],
    hostname: impl FnOnce() -> String,
) -> AgentSetup {
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&random[..8]);
    let mut nonce_seed = [0u8; 12];
    nonce_seed.copy_from_slice(&random[8..20]);
    let instance_id = if options.instance_id.is_empty() {
        random[20..28].iter().map(|b| format!("{b:02x}")).collect()
    } else {
        options.instance_id.clone()
    };
    let hostname = if options.hostname.is_empty() {
        hostname()
    } else {
        options.hostname.clone()
    };
    let mut settings = SyncSettings::new(instance_id, hostname);
    settings.timing = options.timing;
    settings.management_keys = options.management_public_keys.clone();
    // A token that does not parse stops the gateway before the agent runs
    // (the endpoint refuses it); an empty id then binds nothing real.
    let gateway_id = portcullis_core::sync::token::parse(&options.token)
        .map(|t| t.gateway_id.to_owned())
        .unwrap_or_default();
    settings.backup = options.backup.as_ref().map(|b| BackupSettings {
        key: b.key.clone(),
        gateway_id,
        nonce_seed,
    });
    AgentSetup {
        settings,
        seed: u64::from_le_bytes(seed),
    }
}
