//! How a gateway is started: plain data both adapters take, so the binary builds
//! one set of options whichever runtime it picks. Nothing here does IO: paths and
//! addresses are only carried to the adapter that opens them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use portcullis_core::http::Limits;
use portcullis_core::pool::PoolLimits;
use portcullis_core::proxy::Timeouts;
use portcullis_core::sync::{BackupKey, SyncTiming};
use portcullis_core::telemetry::access_log::AccessLog;
use portcullis_core::telemetry::uploader::DEFAULT_BUFFER_BYTES;

/// The largest configuration snapshot accepted from the management plane.
pub const MAX_SNAPSHOT_BYTES: u64 = 64 * 1024 * 1024;

/// Where a gateway's configuration comes from.
#[derive(Debug, Clone)]
pub enum ConfigOrigin {
    /// A local JSON file, watched for changes.
    File(PathBuf),
    /// The management plane (connected mode), with an optional backup.
    Managed(Box<ManagedOptions>),
}

/// How a gateway is started.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Address for API traffic (HTTP).
    pub listen: SocketAddr,
    /// The HTTPS listener, if any (it needs a certificate).
    pub https: Option<HttpsOptions>,
    /// Address for `/healthz` and `/readyz`, if any.
    pub ops_listen: Option<SocketAddr>,
    /// Where the configuration comes from.
    pub origin: ConfigOrigin,
    /// How often the configuration file is checked for changes.
    pub reload_interval: Duration,
    /// Request size limits.
    pub limits: Limits,
    /// Connection timeouts.
    pub timeouts: Timeouts,
    /// Backend connection pool limits.
    pub pool: PoolLimits,
    /// How long a shutdown waits for requests in flight before it gives up on them.
    pub shutdown_grace: Duration,
    /// PEM file of CA certificates trusted for `https://` backends, besides the
    /// Mozilla roots.
    pub upstream_ca: Option<PathBuf>,
    /// Where Entra ID's OpenID configurations (`validate-azure-ad-token`) are
    /// fetched from instead of `https://login.microsoftonline.com` (`None`: from there).
    pub entra_authority: Option<String>,
    /// This gateway's id (`context.Deployment.GatewayId`); empty in connected mode:
    /// the id the token is for.
    pub gateway_id: String,
    /// Access log, trace export and telemetry upload.
    pub telemetry: TelemetryOptions,
    /// Forward request header and trailer fields whose names contain `_`
    /// (dropped by default, as nginx's `underscores_in_headers off`).
    pub allow_underscores_in_headers: bool,
    /// The shared-state store from the gateway's own flag: wins over the
    /// management plane's setting (`None`: that setting, else in process).
    pub store: Option<portcullis_core::config::store::StoreSettings>,
    /// Most WebSocket tunnels open at once across the gateway; a handshake
    /// over the limit is answered 503 without reaching the backend.
    pub max_websockets: usize,
    /// Bind the HTTP listener with `SO_REUSEPORT`, so [`crate::Gateway::worker`]s
    /// on other threads can bind the same address (thread-per-core).
    pub reuse_port: bool,
}

/// The default of [`GatewayOptions::max_websockets`].
pub const DEFAULT_MAX_WEBSOCKETS: usize = 1000;

/// APIM's HTTPS port, where the HTTPS listener listens by default.
pub const DEFAULT_HTTPS_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8081);

/// The HTTPS listener: where, and with which certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsOptions {
    /// Address for API traffic over HTTPS.
    pub listen: SocketAddr,
    /// The certificates, chosen by SNI (exact name, then wildcard, then the
    /// first, which is the default).
    pub certificates: Vec<CertificateFiles>,
    /// The port clients reach the HTTPS listener on when it differs from the
    /// bound one (behind a load balancer or a container port mapping): the
    /// port of `httpsRedirect` locations.
    pub public_port: Option<u16>,
}

impl HttpsOptions {
    /// On [`DEFAULT_HTTPS_LISTEN`] with `certificates`.
    pub fn new(certificates: Vec<CertificateFiles>) -> Self {
        HttpsOptions {
            listen: DEFAULT_HTTPS_LISTEN,
            certificates,
            public_port: None,
        }
    }
}

/// A PEM certificate chain (leaf first) and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// The chain.
    pub cert: PathBuf,
    /// The key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// What a gateway does with the telemetry of its requests (metrics are always
/// kept and served at `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryOptions {
    /// Count requests in `/metrics` (off only to measure what telemetry costs).
    pub metrics: bool,
    /// Request series per operation too (else per API and product).
    pub metrics_operation_labels: bool,
    /// Most label sets with a request series of their own in `/metrics`;
    /// further ones fold into the `(other)` series.
    pub metrics_max_series: usize,
    /// Access log lines on stdout.
    pub access_log: AccessLog,
    /// OTLP/HTTP collector base URL (spans go to `{url}/v1/traces`); `None`: no
    /// tracing.
    pub otlp_endpoint: Option<String>,
    /// How often custom metrics go to `{otlp_endpoint}/v1/metrics`.
    pub otlp_metrics_interval: Duration,
    /// Upload request records to the management plane (connected mode only).
    pub upload: bool,
    /// Where batches wait for upload; `None`: the backup directory's
    /// `telemetry/` when there is a backup, else memory only.
    pub buffer_dir: Option<PathBuf>,
    /// Most bytes of batches waiting for upload.
    pub buffer_bytes: u64,
}

impl Default for TelemetryOptions {
    fn default() -> Self {
        TelemetryOptions {
            metrics: true,
            metrics_operation_labels: false,
            metrics_max_series: portcullis_core::telemetry::metrics::DEFAULT_MAX_SERIES,
            access_log: AccessLog::default(),
            otlp_endpoint: None,
            otlp_metrics_interval: Duration::from_secs(60),
            upload: true,
            buffer_dir: None,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
        }
    }
}

impl GatewayOptions {
    /// Options with the defaults for everything but the configuration file.
    pub fn new(config_path: PathBuf) -> Self {
        GatewayOptions::with_origin(ConfigOrigin::File(config_path))
    }

    /// Options for connected mode: the configuration comes from the management
    /// plane; the gateway id from the token.
    pub fn managed(managed: ManagedOptions) -> Self {
        let mut options = GatewayOptions::with_origin(ConfigOrigin::Managed(Box::new(managed)));
        options.gateway_id = String::new();
        options
    }

    fn with_origin(origin: ConfigOrigin) -> Self {
        GatewayOptions {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            https: None,
            ops_listen: Some(SocketAddr::from(([0, 0, 0, 0], 9090))),
            origin,
            reload_interval: Duration::from_secs(1),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            pool: PoolLimits::default(),
            shutdown_grace: Duration::from_secs(30),
            upstream_ca: None,
            entra_authority: None,
            gateway_id: "portcullis".into(),
            telemetry: TelemetryOptions::default(),
            allow_underscores_in_headers: false,
            store: None,
            max_websockets: DEFAULT_MAX_WEBSOCKETS,
            reuse_port: false,
        }
    }

    /// The gateway id policies see: the one set, or in connected mode (none set)
    /// the one the token is for.
    pub fn effective_gateway_id(&self, token_gateway_id: Option<&str>) -> String {
        match token_gateway_id {
            Some(id) if self.gateway_id.is_empty() => id.to_owned(),
            _ => self.gateway_id.clone(),
        }
    }
}

/// Where a connected gateway keeps its configuration backup.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The directory (created if missing).
    pub dir: PathBuf,
    /// The key the file is encrypted under.
    pub key: BackupKey,
}

/// How a gateway connects to its management plane. `Debug` does not show the
/// token's signature.
#[derive(Clone)]
pub struct ManagedOptions {
    /// The management plane's URL, e.g. `https://mgmt.example:8443`.
    pub url: String,
    /// The gateway token (`GatewayKey <id>&<expiry>&<signature>`); the gateway id
    /// comes from it.
    pub token: String,
    /// The configuration backup, if one is kept.
    pub backup: Option<BackupOptions>,
    /// PEM file of CA certificates trusted for the management plane, besides the
    /// Mozilla roots.
    pub ca: Option<PathBuf>,
    /// This process in heartbeats; empty: random at start.
    pub instance_id: String,
    /// The host in heartbeats; empty: the system's host name.
    pub hostname: String,
    /// Poll, long poll, heartbeat and backoff timing.
    pub timing: SyncTiming,
    /// The management plane's signing keys: snapshots not signed with one of
    /// them are refused. Empty: the gateway pins the plane's key on first use.
    pub management_public_keys: Vec<portcullis_core::sync::signature::PublicKey>,
}

impl std::fmt::Debug for ManagedOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The id and expiry are not secret; the signature is.
        let token = match self.token.rsplit_once('&') {
            Some((public, _)) => format!("{public}&…"),
            None => "…".to_owned(),
        };
        f.debug_struct("ManagedOptions")
            .field("url", &self.url)
            .field("token", &token)
            .field("backup", &self.backup)
            .field("ca", &self.ca)
            .field("instance_id", &self.instance_id)
            .field("hostname", &self.hostname)
            .field("timing", &self.timing)
            .finish()
    }
}

impl ManagedOptions {
    /// Options with default timing, no backup and no extra CA.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        ManagedOptions {
            url: url.into(),
            token: token.into(),
            backup: None,
            ca: None,
            instance_id: String::new(),
            hostname: String::new(),
            timing: SyncTiming::default(),
            management_public_keys: Vec::new(),
        }
    }
}
