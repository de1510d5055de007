//! `portcullis`: the self-hosted API gateway's one binary.

mod bootstrap;
mod demo;
mod healthcheck;
mod management_cmd;
mod sample_backend;
mod seed;
mod store_args;
mod thread_per_core;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use portcullis_core::sync::signature::{parse_keys, PublicKey};
use portcullis_core::telemetry::access_log::{
    AccessLog, LogFormat as AccessLogFormat, LogLevel, UnknownSetting,
};
use portcullis_driver::options::{CertificateFiles, ConfigOrigin, HttpsOptions, TelemetryOptions};
use portcullis_runtime_tokio::{BackupKey, BackupOptions, Gateway, GatewayOptions, ManagedOptions};

/// Portcullis: a self-hosted API gateway.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "PORTCULLIS_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Log filter (tracing's EnvFilter syntax, e.g. `info` or `portcullis=debug`).
    #[arg(long, global = true, default_value = "info", env = "PORTCULLIS_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a gateway: connected to a management plane (`--management-url`), or
    /// serving the configuration in a local file (`--config`, reloaded on change).
    // Boxed: the gateway's options are most of the enum's size.
    Gateway(Box<GatewayArgs>),
    /// Run the management plane: the REST API gateways are configured from, the
    /// configuration endpoint they sync with, and their status.
    Management(management_cmd::ManagementArgs),
    /// Run the whole product on loopback: a management plane, a gateway connected
    /// to it and a sample backend, seeded with a sample API; prints how to call it.
    Demo(Box<DemoArgs>),
    /// Run the sample backend alone (the one `demo` uses).
    SampleBackend {
        /// Address to listen on.
        #[arg(
            long,
            default_value = "127.0.0.1:8000",
            env = "PORTCULLIS_SAMPLE_LISTEN"
        )]
        listen: SocketAddr,
    },
    /// Seed a management plane with the sample configuration, create gateways
    /// and write their tokens to files (Compose's one-shot `init` service).
    Bootstrap(bootstrap::BootstrapArgs),
    /// GET a URL (default: the gateway's probe path) and exit 0 on a 2xx: the
    /// container image's HEALTHCHECK, which has no shell or curl to run.
    Healthcheck(healthcheck::HealthcheckArgs),
}

/// The IO runtimes a gateway can run on.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Runtime {
    /// tokio, the production runtime.
    Tokio,
    /// smol: the same gateway on smol's executor, sockets, timers and files.
    Smol,
}

/// Options of `portcullis gateway`.
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("origin")
        .required(true)
        .args(["config", "management_url"])
))]
struct GatewayArgs {
    /// IO runtime.
    #[arg(long, value_enum, default_value = "tokio", env = "PORTCULLIS_RUNTIME")]
    runtime: Runtime,
    /// Tokio only: one single-threaded runtime per worker thread, each with its
    /// own listener on the HTTP address (SO_REUSEPORT) and its own backend
    /// pool, instead of one work-stealing runtime shared by all workers.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", env = "PORTCULLIS_THREAD_PER_CORE")]
    thread_per_core: bool,
    /// Configuration file (JSON); see examples/gateway.json. Either this or
    /// `--management-url`.
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    managed: ManagedArgs,
    /// Address for API traffic over HTTP.
    #[arg(long, default_value = "0.0.0.0:8080", env = "PORTCULLIS_LISTEN")]
    listen: SocketAddr,
    /// Address for /healthz, /readyz and /metrics (Prometheus).
    #[arg(long, default_value = "0.0.0.0:9090", env = "PORTCULLIS_OPS_LISTEN")]
    ops_listen: SocketAddr,
    #[command(flatten)]
    https: HttpsArgs,
    #[command(flatten)]
    tuning: Tuning,
}

/// The HTTPS listener (on when a certificate is given).
#[derive(Debug, clap::Args)]
struct HttpsArgs {
    /// Address for API traffic over HTTPS [default: 0.0.0.0:8081]. The HTTPS
    /// listener opens when --tls-cert is given, or when this is set: then
    /// the certificates may all come from the configuration's custom
    /// hostnames (the management plane's /gateways/{id}/hostnames, or the
    /// file's "hostnames").
    #[arg(long, env = "PORTCULLIS_HTTPS_LISTEN")]
    https_listen: Option<SocketAddr>,
    /// PEM certificate chain (leaf first) to serve HTTPS with; repeat it (or
    /// separate files with commas in the variable) for several hosts: the
    /// certificate is chosen by SNI from its subjectAltName names (exact, then
    /// wildcard), and the first one is the default.
    #[arg(long, env = "PORTCULLIS_TLS_CERT", value_delimiter = ',')]
    tls_cert: Vec<PathBuf>,
    /// PEM private key of each --tls-cert, in the same order.
    #[arg(long, env = "PORTCULLIS_TLS_KEY", value_delimiter = ',')]
    tls_key: Vec<PathBuf>,
    /// The port clients reach the HTTPS listener on, when a load balancer or a
    /// port mapping puts it elsewhere (default: --https-listen's port): APIs
    /// with httpsRedirect send plain HTTP requests there.
    #[arg(long, env = "PORTCULLIS_HTTPS_PUBLIC_PORT")]
    https_public_port: Option<u16>,
}

impl HttpsArgs {
    /// The HTTPS listener's options; `None` without a certificate.
    fn options(self) -> anyhow::Result<Option<HttpsOptions>> {
        if self.tls_cert.len() != self.tls_key.len() {
            anyhow::bail!(
                "give one --tls-key per --tls-cert (got {} certificates and {} keys)",
                self.tls_cert.len(),
                self.tls_key.len()
            );
        }
        if self.tls_cert.is_empty() && self.https_listen.is_none() {
            return Ok(None);
        }
        let certificates = self
            .tls_cert
            .into_iter()
            .zip(self.tls_key)
            .map(|(cert, key)| CertificateFiles { cert, key })
            .collect();
        Ok(Some(HttpsOptions {
            listen: self
                .https_listen
                .unwrap_or(portcullis_driver::options::DEFAULT_HTTPS_LISTEN),
            certificates,
            public_port: self.https_public_port,
        }))
    }
}

/// Connected mode: the management plane, the token and the backup.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("gateway_token").args(["token", "token_file"])))]
struct ManagedArgs {
    /// The management plane's URL (e.g. https://mgmt.example:8443); the gateway
    /// fetches its configuration there and sends heartbeats.
    #[arg(long, env = "PORTCULLIS_MANAGEMENT_URL", requires = "gateway_token")]
    management_url: Option<String>,
    /// Gateway token (`GatewayKey <id>&<expiry>&<signature>`, from POST
    /// /gateways/{id}/token); the gateway id is taken from it.
    #[arg(
        long,
        env = "PORTCULLIS_GATEWAY_TOKEN",
        hide_env_values = true,
        requires = "management_url"
    )]
    token: Option<String>,
    /// File holding the gateway token (e.g. a mounted Secret, or the file
    /// `portcullis bootstrap` writes); read once at start. Instead of `--token`.
    #[arg(
        long,
        env = "PORTCULLIS_GATEWAY_TOKEN_FILE",
        requires = "management_url"
    )]
    token_file: Option<PathBuf>,
    /// Directory for the encrypted configuration backup: each applied
    /// configuration is saved there, and a gateway started while the management
    /// plane is unreachable serves from it.
    #[arg(
        long,
        env = "PORTCULLIS_BACKUP_DIR",
        requires = "backup_key",
        requires = "management_url"
    )]
    backup_dir: Option<PathBuf>,
    /// Key the backup is encrypted with (AES-256-GCM): 32 bytes as 64 hex
    /// characters or base64 (e.g. `openssl rand -hex 32`).
    #[arg(
        long,
        env = "PORTCULLIS_BACKUP_KEY",
        hide_env_values = true,
        requires = "backup_dir",
        value_parser = parse_backup_key
    )]
    backup_key: Option<BackupKey>,
    /// PEM file of CA certificates trusted for the management plane's HTTPS
    /// certificate, besides the Mozilla roots.
    #[arg(long, env = "PORTCULLIS_CA", requires = "management_url")]
    ca: Option<PathBuf>,
    /// Seconds between configuration polls when long polls are not possible
    /// (changes normally arrive at once by long poll) [default: 10].
    #[arg(long, env = "PORTCULLIS_POLL_INTERVAL", requires = "management_url")]
    poll_interval: Option<u64>,
    /// Seconds between heartbeats to the management plane (give the management
    /// plane the same `--heartbeat-interval`) [default: 60].
    #[arg(
        long,
        env = "PORTCULLIS_HEARTBEAT_INTERVAL",
        requires = "management_url",
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    heartbeat_interval: Option<u64>,
    /// The management plane's public signing key (base64, as it prints in
    /// `MANAGEMENT_SIGNING_KEY=`), or several separated by commas during a key
    /// rotation: snapshots not signed with one of them are refused and the
    /// configuration in force stays. Without it the gateway pins the plane's
    /// key on first use.
    #[arg(
        long,
        env = "PORTCULLIS_MANAGEMENT_PUBLIC_KEY",
        requires = "management_url",
        value_parser = parse_public_keys
    )]
    management_public_key: Option<PublicKeys>,
}

/// The keys given with `--management-public-key`.
#[derive(Debug, Clone)]
struct PublicKeys(Vec<PublicKey>);

fn parse_public_keys(text: &str) -> Result<PublicKeys, String> {
    parse_keys(text).map(PublicKeys).map_err(|e| e.to_string())
}

fn parse_backup_key(text: &str) -> Result<BackupKey, String> {
    BackupKey::parse(text).map_err(|e| e.to_string())
}

/// Options of `portcullis demo`.
#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Address for the gateway (falls back to a free port if this one is taken).
    #[arg(long, default_value = "127.0.0.1:8080", env = "PORTCULLIS_LISTEN")]
    listen: SocketAddr,
    /// Address for the gateway's HTTPS, with a certificate from a generated
    /// local CA (falls back to a free port if this one is taken).
    #[arg(
        long,
        default_value = "127.0.0.1:8081",
        env = "PORTCULLIS_HTTPS_LISTEN"
    )]
    https_listen: SocketAddr,
    /// Address for the operations endpoints (falls back to a free port).
    #[arg(long, default_value = "127.0.0.1:9090", env = "PORTCULLIS_OPS_LISTEN")]
    ops_listen: SocketAddr,
    /// Address for the management plane (falls back to a free port).
    #[arg(
        long,
        default_value = "127.0.0.1:8090",
        env = "PORTCULLIS_MANAGEMENT_LISTEN"
    )]
    management_listen: SocketAddr,
    /// IO runtime of the demo's gateway (the management plane and the sample
    /// backend run on tokio either way).
    #[arg(long, value_enum, default_value = "tokio", env = "PORTCULLIS_RUNTIME")]
    runtime: Runtime,
    #[command(flatten)]
    tuning: Tuning,
}

/// Limits and timeouts shared by `gateway` and `demo`.
#[derive(Debug, clap::Args)]
struct Tuning {
    /// Largest request body accepted, in bytes (413 beyond); unlimited when absent.
    #[arg(long, env = "PORTCULLIS_MAX_BODY_BYTES")]
    max_body_bytes: Option<u64>,
    /// Seconds a client may take to send a request head (408 beyond).
    #[arg(long, default_value_t = 30, env = "PORTCULLIS_HEADER_TIMEOUT")]
    header_timeout: u64,
    /// Seconds a keep-alive client connection may stay idle.
    #[arg(long, default_value_t = 60, env = "PORTCULLIS_IDLE_TIMEOUT")]
    idle_timeout: u64,
    /// Seconds to open a backend connection (504 beyond).
    #[arg(long, default_value_t = 5, env = "PORTCULLIS_CONNECT_TIMEOUT")]
    connect_timeout: u64,
    /// Seconds a body may stall in either direction.
    #[arg(long, default_value_t = 60, env = "PORTCULLIS_BODY_TIMEOUT")]
    body_timeout: u64,
    /// Seconds a WebSocket tunnel may go without a byte either way before it
    /// is closed.
    #[arg(long, default_value_t = 600, env = "PORTCULLIS_WEBSOCKET_IDLE_TIMEOUT")]
    websocket_idle_timeout: u64,
    /// Most WebSocket connections open at once; a handshake beyond gets 503.
    #[arg(long, default_value_t = 1000, env = "PORTCULLIS_MAX_WEBSOCKETS")]
    max_websockets: usize,
    /// Seconds an idle backend connection is kept for reuse.
    #[arg(long, default_value_t = 30, env = "PORTCULLIS_UPSTREAM_IDLE_TIMEOUT")]
    upstream_idle_timeout: u64,
    /// Most idle connections kept per backend.
    #[arg(long, default_value_t = 256, env = "PORTCULLIS_UPSTREAM_MAX_IDLE")]
    upstream_max_idle: usize,
    /// Seconds a shutdown waits for requests in flight.
    #[arg(long, default_value_t = 30, env = "PORTCULLIS_SHUTDOWN_GRACE")]
    shutdown_grace: u64,
    /// Milliseconds between checks of the configuration file for changes.
    #[arg(long, default_value_t = 1000, env = "PORTCULLIS_RELOAD_INTERVAL_MS")]
    reload_interval_ms: u64,
    /// PEM file of extra CA certificates trusted for https:// backends (and for
    /// policies' send-request and OpenID key set fetches).
    #[arg(long, env = "PORTCULLIS_UPSTREAM_CA")]
    upstream_ca: Option<PathBuf>,
    /// Base URL of Microsoft Entra ID's authority for `validate-azure-ad-token`:
    /// the tenant's OpenID configuration is fetched from
    /// {url}/{tenant}/v2.0/.well-known/openid-configuration (a proxy, a
    /// national cloud, or a local identity provider in tests).
    #[arg(
        long,
        default_value = "https://login.microsoftonline.com",
        env = "PORTCULLIS_ENTRA_AUTHORITY"
    )]
    entra_authority: String,
    /// This gateway's id, as policies see it (`context.Deployment.GatewayId`)
    /// [default: the token's gateway id, or `portcullis` with a local file].
    #[arg(long, env = "PORTCULLIS_GATEWAY_ID")]
    gateway_id: Option<String>,
    /// Forward request header fields whose names contain `_` (e.g. `X_Api_Key`),
    /// and such trailer fields. Off by default, as in nginx: CGI-style backends
    /// read `Transfer_Encoding` as Transfer-Encoding, so the gateway drops these
    /// fields before policies or the backend see them.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", env = "PORTCULLIS_ALLOW_UNDERSCORES_IN_HEADERS")]
    allow_underscores_in_headers: bool,
    /// Worker threads (default: the CPUs this process may run on).
    #[arg(long, env = "PORTCULLIS_WORKERS")]
    workers: Option<usize>,
    #[command(flatten)]
    telemetry: TelemetryArgs,
    #[command(flatten)]
    store: store_args::StoreArgs,
}

/// Access log, tracing and telemetry upload (metrics are always at /metrics).
#[derive(Debug, clap::Args)]
struct TelemetryArgs {
    /// Count requests in /metrics (turn off only to measure what telemetry costs).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "PORTCULLIS_METRICS")]
    metrics: bool,
    /// Label request metrics by operation too, not only by API and product
    /// (more series: mind --metrics-max-series).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", env = "PORTCULLIS_METRICS_OPERATION_LABELS")]
    metrics_operation_labels: bool,
    /// Most label sets (API, operation, product, status class) with request
    /// series of their own in /metrics; requests of further ones are counted in
    /// the "(other)" series and portcullis_metrics_series_folded_total.
    #[arg(long, default_value_t = portcullis_core::telemetry::metrics::DEFAULT_MAX_SERIES, env = "PORTCULLIS_METRICS_MAX_SERIES")]
    metrics_max_series: usize,
    /// Access log on stdout: `off`, `json` (one record per line) or `text`.
    #[arg(long, default_value = "off", env = "PORTCULLIS_ACCESS_LOG", value_parser = parse_log_format)]
    access_log: AccessLogFormat,
    /// Which requests the access log shows: `all` or `errors` (4xx, 5xx, failures).
    #[arg(long, default_value = "all", env = "PORTCULLIS_ACCESS_LOG_LEVEL", value_parser = parse_log_level)]
    access_log_level: LogLevel,
    /// OpenTelemetry collector (OTLP over HTTP) base URL, e.g.
    /// http://127.0.0.1:4318: each request gets a span, its traceparent goes to
    /// the backend, and spans are sent to {url}/v1/traces.
    #[arg(long, env = "PORTCULLIS_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Seconds between exports of custom metrics (emit-metric,
    /// llm-emit-token-metric) to {otlp-endpoint}/v1/metrics.
    #[arg(long, default_value_t = 60, env = "PORTCULLIS_OTLP_METRICS_INTERVAL")]
    otlp_metrics_interval: u64,
    /// Upload request records to the management plane for analytics (connected mode).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "PORTCULLIS_TELEMETRY_UPLOAD")]
    telemetry_upload: bool,
    /// Directory where record batches wait while the management plane is
    /// unreachable, encrypted with the backup key (so it needs --backup-key)
    /// [default: BACKUP_DIR/telemetry, or memory without a backup].
    #[arg(long, env = "PORTCULLIS_TELEMETRY_BUFFER_DIR")]
    telemetry_buffer_dir: Option<PathBuf>,
    /// Most bytes of batches kept waiting; beyond, the oldest are dropped and counted.
    #[arg(long, default_value_t = 64 * 1024 * 1024, env = "PORTCULLIS_TELEMETRY_BUFFER_BYTES")]
    telemetry_buffer_bytes: u64,
}

fn parse_log_format(text: &str) -> Result<AccessLogFormat, String> {
    text.parse().map_err(|e: UnknownSetting| e.to_string())
}

fn parse_log_level(text: &str) -> Result<LogLevel, String> {
    text.parse().map_err(|e: UnknownSetting| e.to_string())
}

impl Tuning {
    fn apply(&self, options: &mut GatewayOptions) {
        options.limits.max_body_bytes = self.max_body_bytes;
        options.timeouts.header_read = Duration::from_secs(self.header_timeout);
        options.timeouts.idle = Duration::from_secs(self.idle_timeout);
        options.timeouts.connect = Duration::from_secs(self.connect_timeout);
        options.timeouts.body_idle = Duration::from_secs(self.body_timeout);
        options.timeouts.tunnel_idle = Duration::from_secs(self.websocket_idle_timeout);
        options.max_websockets = self.max_websockets;
        options.pool.idle_timeout = Duration::from_secs(self.upstream_idle_timeout);
        options.pool.max_idle_per_backend = self.upstream_max_idle;
        options.shutdown_grace = Duration::from_secs(self.shutdown_grace);
        options.reload_interval = Duration::from_millis(self.reload_interval_ms.max(10));
        options.upstream_ca = self.upstream_ca.clone();
        options.entra_authority = Some(self.entra_authority.clone());
        options.allow_underscores_in_headers = self.allow_underscores_in_headers;
        if let Some(id) = &self.gateway_id {
            options.gateway_id = id.clone();
        }
        let t = &self.telemetry;
        options.telemetry = TelemetryOptions {
            metrics: t.metrics,
            metrics_operation_labels: t.metrics_operation_labels,
            metrics_max_series: t.metrics_max_series,
            access_log: AccessLog {
                format: t.access_log,
                level: t.access_log_level,
            },
            otlp_endpoint: t.otlp_endpoint.clone(),
            otlp_metrics_interval: Duration::from_secs(t.otlp_metrics_interval.max(1)),
            upload: t.telemetry_upload,
            buffer_dir: t.telemetry_buffer_dir.clone(),
            buffer_bytes: t.telemetry_buffer_bytes,
        };
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log)?;
    // A gateway on smol runs on smol's executor: no tokio runtime is built.
    let command = match cli.command {
        Command::Gateway(args) if matches!(args.runtime, Runtime::Smol) => {
            return run_smol_gateway(*args)
        }
        Command::Gateway(args) if args.thread_per_core => {
            let workers = args.tuning.workers.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            });
            return thread_per_core::run(gateway_options(*args)?, workers);
        }
        // No runtime: one blocking GET.
        Command::Healthcheck(args) => return healthcheck::run(args),
        command => command,
    };
    let workers = match &command {
        Command::Gateway(args) => args.tuning.workers,
        Command::Demo(args) => args.tuning.workers,
        Command::Management(_) => None,
        Command::SampleBackend { .. } | Command::Bootstrap(_) | Command::Healthcheck(_) => Some(1),
    };
    let workers = workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    // One worker: a current-thread runtime spares the cross-thread wakeups and
    // atomics of the work-stealing scheduler on every request.
    let mut builder = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        match command {
            Command::Gateway(args) => run_gateway(*args).await,
            Command::Demo(args) => demo::run(*args).await,
            Command::Management(args) => management_cmd::run(args).await,
            Command::Bootstrap(args) => bootstrap::run(args).await,
            Command::Healthcheck(args) => healthcheck::run(args),
            Command::SampleBackend { listen } => {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                let signal = ShutdownSignal::install()?;
                println!("SAMPLE_BACKEND_URL=http://{}", listener.local_addr()?);
                sample_backend::serve(listener, signal.recv()).await
            }
        }
    })
}

fn init_logging(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("invalid log filter {filter:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

async fn run_gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let signal = ShutdownSignal::install()?;
    let mut hup = HupSignal::install()?;
    let options = gateway_options(args)?;
    let managed = matches!(options.origin, ConfigOrigin::Managed(_));
    let gateway = Gateway::start(options).await?;
    until_stopped(signal, &mut hup, || gateway.reload(), managed).await;
    tracing::info!("shutting down: finishing requests in flight");
    gateway.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// `portcullis gateway --runtime smol`: the smol adapter on its executor, run
/// by this thread (which also drives async-io's reactor) and `--workers` - 1
/// more threads (`SMOL_THREADS` in all, if set), stopped by SIGTERM or SIGINT;
/// SIGHUP reloads.
fn run_smol_gateway(args: GatewayArgs) -> anyhow::Result<()> {
    if args.thread_per_core {
        anyhow::bail!("--thread-per-core is for the tokio runtime only");
    }
    let threads = portcullis_runtime_smol::threads_from_env().unwrap_or_else(|| {
        args.tuning.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    });
    use async_signal::Signal;
    use smol::stream::StreamExt;
    let mut signals = async_signal::Signals::new([Signal::Term, Signal::Int, Signal::Hup])
        .context("installing the SIGTERM, SIGINT and SIGHUP handlers")?;
    let options = gateway_options(args)?;
    let managed = matches!(options.origin, ConfigOrigin::Managed(_));
    portcullis_runtime_smol::block_on(threads.max(1), async move {
        let gateway = portcullis_runtime_smol::Gateway::start(options).await?;
        while let Some(Ok(Signal::Hup)) = signals.next().await {
            on_hup(gateway.reload(), managed);
        }
        tracing::info!("shutting down: finishing requests in flight");
        gateway.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// The gateway's options from the command line; the same for both runtimes.
fn gateway_options(args: GatewayArgs) -> anyhow::Result<GatewayOptions> {
    let managed = args.managed;
    let mut options = match (args.config, managed.management_url) {
        (Some(path), _) => GatewayOptions::new(path),
        (None, Some(url)) => {
            let token = match (managed.token, managed.token_file) {
                (Some(token), _) => token,
                (None, Some(path)) => read_token_file(&path)?,
                // clap requires one of the two with a management URL.
                (None, None) => anyhow::bail!("give --token or --token-file"),
            };
            let mut sync = ManagedOptions::new(url, token);
            sync.ca = managed.ca;
            let keys = managed
                .management_public_key
                .map(|k| k.0)
                .unwrap_or_default();
            for key in &keys {
                tracing::info!(
                    fingerprint = %key.fingerprint(),
                    "snapshots signed with this management key are accepted"
                );
            }
            sync.management_public_keys = keys;
            sync.backup = match (managed.backup_dir, managed.backup_key) {
                (Some(dir), Some(key)) => Some(BackupOptions { dir, key }),
                _ => None,
            };
            if let Some(secs) = managed.poll_interval {
                sync.timing.poll_interval = Duration::from_secs(secs.max(1));
            }
            if let Some(secs) = managed.heartbeat_interval {
                sync.timing.heartbeat_interval = Duration::from_secs(secs);
            }
            GatewayOptions::managed(sync)
        }
        // clap requires one of the two.
        (None, None) => anyhow::bail!("give --config FILE or --management-url URL"),
    };
    options.listen = args.listen;
    options.ops_listen = Some(args.ops_listen);
    options.https = args.https.options()?;
    args.tuning.apply(&mut options);
    options.store = args.tuning.store.settings()?;
    let has_backup = matches!(&options.origin, ConfigOrigin::Managed(m) if m.backup.is_some());
    if options.telemetry.buffer_dir.is_some() && !has_backup {
        // Buffered batches hold client addresses and paths: they are written
        // encrypted with the backup key, or not at all.
        anyhow::bail!(
            "--telemetry-buffer-dir needs --backup-dir and --backup-key: buffered telemetry is encrypted with the backup key"
        );
    }
    Ok(options)
}

/// The token in `path`, without the line end a file usually has.
fn read_token_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the gateway token from {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        anyhow::bail!("the gateway token file {} is empty", path.display());
    }
    Ok(token.to_owned())
}

/// Logs what a SIGHUP does (`nudged`: whether any file watcher was told).
/// Answers each SIGHUP with `reload` until SIGTERM or SIGINT arrives (the
/// tokio gateways' signal loop).
async fn until_stopped(
    signal: ShutdownSignal,
    hup: &mut HupSignal,
    reload: impl Fn() -> bool,
    managed: bool,
) {
    let stop = signal.recv();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = hup.recv() => on_hup(reload(), managed),
        }
    }
}

fn on_hup(nudged: bool, managed: bool) {
    match (managed, nudged) {
        (false, _) => tracing::info!(
            "SIGHUP: reading the configuration file and the TLS certificate files again"
        ),
        (true, true) => tracing::info!(
            "SIGHUP: reading the TLS certificate files again; the configuration comes from the management plane"
        ),
        (true, false) => tracing::info!(
            "SIGHUP: nothing to reload; the configuration comes from the management plane"
        ),
    }
}

/// SIGHUP (reload), listened for from the moment this is made, so one that
/// arrives while the gateway starts is not fatal (its default action).
struct HupSignal {
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl HupSignal {
    /// Installs the handler.
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(HupSignal {
                hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(HupSignal {})
    }

    /// Resolves at the next SIGHUP (never where there is none).
    async fn recv(&mut self) {
        #[cfg(unix)]
        if self.hup.recv().await.is_some() {
            return;
        }
        std::future::pending::<()>().await
    }
}

/// SIGTERM and SIGINT (Ctrl-C), listened for from the moment this is made, so a
/// signal that arrives while the gateway starts is not lost (or fatal).
pub(crate) struct ShutdownSignal {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    /// Installs the handlers.
    pub(crate) fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(ShutdownSignal {
                term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
                int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignal {})
    }

    /// Resolves when either signal arrives.
    pub(crate) async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_management_keys_are_taken_comma_separated() {
        let (a, b) = (
            PublicKey::from_bytes([1; 32]),
            PublicKey::from_bytes([2; 32]),
        );
        let both = format!("{}, {}", a.to_base64(), b.to_base64());
        assert_eq!(
            parse_public_keys(&both).map(|k| k.0),
            Ok(vec![a.clone(), b])
        );
        assert_eq!(parse_public_keys(&a.to_base64()).map(|k| k.0), Ok(vec![a]));
        assert!(parse_public_keys("AAAA").is_err());
        assert!(parse_public_keys("").is_err());
    }

    #[test]
    fn the_token_comes_from_the_option_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("edge-1.token");
        std::fs::write(&file, "GatewayKey edge-1&1&sig\n").unwrap();
        let base = ["portcullis", "gateway", "--management-url", "http://m:8090"];
        let parse = |extra: &[&str]| {
            Cli::try_parse_from(base.iter().chain(extra)).map(|cli| match cli.command {
                Command::Gateway(args) => *args,
                other => panic!("{other:?}"),
            })
        };
        let file_arg = file.to_str().unwrap();
        let options = gateway_options(parse(&["--token-file", file_arg]).unwrap()).unwrap();
        match options.origin {
            ConfigOrigin::Managed(m) => assert_eq!(m.token, "GatewayKey edge-1&1&sig"),
            other => panic!("{other:?}"),
        }
        assert!(parse(&[]).is_err(), "a token or a token file is required");
        assert!(parse(&["--token", "t", "--token-file", file_arg]).is_err());
        std::fs::write(&file, "\n").unwrap();
        assert!(gateway_options(parse(&["--token-file", file_arg]).unwrap()).is_err());
    }
}
