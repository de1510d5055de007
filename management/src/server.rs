//! The management plane service: opens the store, sets up admin auth and TLS, and
//! serves the HTTP API until shut down.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::{Listener, ListenerExt};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::http::{self, AppState};
use crate::openapi_import::fetch::FetchPolicy;
use crate::store::{AnalyticsStore, Store, StoreError};
use crate::tls::{self, TlsError, TlsMode};

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for requests in flight before closing their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of a management plane.
#[derive(Debug, Clone)]
pub struct ManagementOptions {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Data directory: the SQLite database, and `tls/` for `--self-signed`.
    pub data_dir: PathBuf,
    /// Admin token from the environment or command line; `None` uses (or creates) a stored one.
    pub admin_token: Option<String>,
    /// Plain HTTP, or HTTPS from files or a generated self-signed certificate.
    pub tls: TlsMode,
    /// How often gateways send heartbeats; an instance is offline after three missed.
    pub heartbeat_interval: Duration,
    /// The longest a configuration long-poll (`?wait=`) is held.
    pub max_wait: Duration,
    /// How many days telemetry records (and batch ids) are kept; at least 1.
    pub analytics_retention_days: u32,
    /// Whether OpenAPI documents may be fetched from loopback, private, link-local
    /// and other non-public addresses (`import-url`); off, for labs only.
    pub fetch_private_addresses: bool,
    /// The file holding the key that seals certificates' private keys
    /// (`None`: `<data_dir>/certificate-keys.kek`); made on the first upload.
    pub key_encryption_key_file: Option<PathBuf>,
}

impl ManagementOptions {
    /// Plain HTTP on `listen` with `data_dir`, a stored admin token and default intervals.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        ManagementOptions {
            listen,
            data_dir: data_dir.into(),
            admin_token: None,
            tls: TlsMode::Plain,
            heartbeat_interval: Duration::from_secs(60),
            max_wait: Duration::from_secs(60),
            analytics_retention_days: crate::store::analytics::DEFAULT_RETENTION_DAYS,
            fetch_private_addresses: false,
            key_encryption_key_file: None,
        }
    }
}

/// Why the management plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// The store could not be opened, migrated or set up.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// TLS could not be set up.
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory could not be created or examined.
    #[error("data directory {}: {source}", path.display())]
    DataDir {
        /// The data directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A setup task panicked or was cancelled.
    #[error("setup task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The configuration signing key could not be made or read.
    #[error("{0}")]
    SigningKey(#[from] crate::signing::SigningKeyError),
}

/// What the management plane takes from its surroundings besides the listener: the
/// wall clock, where blocking work (SQLite, TLS setup) runs, and randomness.
#[derive(Debug, Clone, Copy)]
pub struct Environment {
    /// Now, in Unix seconds.
    pub clock: fn() -> u64,
    /// Runs blocking work on the calling task instead of blocking threads: for a
    /// deterministic, single-threaded simulation.
    pub inline_blocking: bool,
    /// `Some`: keys and tokens come from a stream seeded with this, on the thread
    /// the store runs on (a simulation's); `None`: the OS random source.
    pub seed: Option<u64>,
}

impl Environment {
    /// Production: the system clock, blocking threads, the OS random source.
    pub fn os() -> Environment {
        Environment {
            clock: crate::http::clock::now_unix,
            inline_blocking: false,
            seed: None,
        }
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, ManagementError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if self.inline_blocking {
            Ok(f())
        } else {
            Ok(tokio::task::spawn_blocking(f).await?)
        }
    }
}

impl Default for Environment {
    fn default() -> Self {
        Environment::os()
    }
}

/// A running management plane.
pub struct Management {
    local_addr: SocketAddr,
    base_url: String,
    signing_key: portcullis_core::sync::signature::PublicKey,
    created_admin_token: Option<String>,
    ca_path: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    prune: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("base_url", &self.base_url)
            .field("ca_path", &self.ca_path)
            .finish_non_exhaustive()
    }
}

impl Management {
    /// Sets up TLS, binds, opens the store (migrating it) and its admin token, and serves.
    pub async fn start(options: ManagementOptions) -> Result<Management, ManagementError> {
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| ManagementError::Bind {
                    addr: options.listen,
                    source,
                })?;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        Management::start_on(listener, options, Environment::os()).await
    }

    /// Like [`Management::start`], serving connections from `listener` (bound by
    /// the caller: `options.listen` is not used), in `env`.
    pub async fn start_on<L>(
        listener: L,
        options: ManagementOptions,
        env: Environment,
    ) -> Result<Management, ManagementError>
    where
        L: Listener<Addr = SocketAddr>,
    {
        let mode = options.tls.clone();
        let data_dir = options.data_dir.clone();
        // Before anything is written there (TLS files, the databases).
        let dir = options.data_dir.clone();
        env.blocking(move || crate::data_dir::prepare(&dir))
            .await?
            .map_err(|source| ManagementError::DataDir {
                path: options.data_dir.clone(),
                source,
            })?;
        let server_tls = env
            .blocking(move || tls::server_tls(&mode, &data_dir))
            .await??;
        let (acceptor, ca_path) = match server_tls {
            Some(t) => (Some(TlsAcceptor::from(t.config)), t.ca_path),
            None => (None, None),
        };

        let local_addr = listener
            .local_addr()
            .map_err(|source| ManagementError::Bind {
                addr: options.listen,
                source,
            })?;

        // The store last: an admin token it creates is only printed if the start
        // succeeds, so nothing that can still fail comes after it.
        let data_dir = options.data_dir.clone();
        let kek_file = options.key_encryption_key_file.clone();
        let admin_token = options.admin_token.clone();
        if env.seed.is_some() {
            crate::store::seed_random_on_this_thread(env.seed);
        }
        let now = (env.clock)();
        let retention_days = options.analytics_retention_days;
        let (store, analytics, created_admin_token, signing) = env
            .blocking(move || {
                let mut store = Store::open_with_kek(&data_dir, kek_file.as_deref())?;
                // After the store: its exclusive lock on the data directory is held.
                let analytics = AnalyticsStore::open(&data_dir, retention_days)?;
                let signing = crate::signing::SigningKey::load_or_create(&data_dir)?;
                let created = store.ensure_admin_token(admin_token.as_deref(), now)?;
                Ok::<_, ManagementError>((store, analytics, created, signing))
            })
            .await??;
        let signing = Arc::new(signing);
        tracing::info!(
            fingerprint = %signing.public_key().fingerprint(),
            "configuration snapshots are signed with this key"
        );

        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = Arc::new(
            AppState::new(
                store,
                analytics,
                shutdown_rx.clone(),
                options.heartbeat_interval,
                options.max_wait,
            )
            .in_environment(&env)
            .with_tls(acceptor.is_some())
            .with_signing_key(Arc::clone(&signing)),
        );
        let prune = tokio::spawn(http::prune_analytics(Arc::clone(&state)));
        // The document fetch policy travels as an extension: only `import-url` reads it.
        let fetch_policy = FetchPolicy {
            private_addresses: options.fetch_private_addresses,
        };
        let app = http::router(state).layer(axum::Extension(fetch_policy));
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://{}", display_addr(local_addr));
        tracing::info!(%base_url, "management plane listening");
        if let Some(warning) = cleartext_warning(local_addr, acceptor.is_some()) {
            tracing::warn!(listen = %local_addr, "{warning}");
        }
        let task = tokio::spawn(serve(listener, acceptor, app, shutdown_rx));
        Ok(Management {
            local_addr,
            base_url,
            signing_key: signing.public_key().clone(),
            created_admin_token,
            ca_path,
            shutdown,
            task: Some(task),
            prune: Some(prune),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http(s)://host:port`, with a loopback address when listening on all interfaces.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The public key gateways verify configuration snapshots with.
    pub fn signing_key(&self) -> &portcullis_core::sync::signature::PublicKey {
        &self.signing_key
    }

    /// The admin token created by this start (print it once), if one was created.
    pub fn created_admin_token(&self) -> Option<&str> {
        self.created_admin_token.as_deref()
    }

    /// The CA certificate clients should trust, in the self-signed mode.
    pub fn ca_path(&self) -> Option<&Path> {
        self.ca_path.as_deref()
    }

    /// Stops accepting, lets requests in flight finish (long-polls end at once) and
    /// waits for the server to stop.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        for task in [self.task.take(), self.prune.take()].into_iter().flatten() {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "management task failed");
            }
        }
    }
}

impl Drop for Management {
    fn drop(&mut self) {
        // Dropped without `shutdown`: still stop serving.
        self.shutdown.send_replace(true);
    }
}

/// What to warn when the management plane serves plain HTTP on `addr` and other
/// machines may reach it (any address but loopback, `0.0.0.0` included); `None`
/// with TLS or on loopback (a TLS-terminating proxy in front is fine there).
fn cleartext_warning(addr: SocketAddr, tls: bool) -> Option<String> {
    (!tls && !portcullis_core::config::is_loopback_ip(addr.ip())).then(|| {
        format!(
            "the management plane serves plain HTTP on {addr}, which other machines can \
             reach: configuration snapshots (with subscription keys and secret named \
             values), gateway and admin tokens, and console and portal passwords and \
             sessions cross the network unencrypted. Serve HTTPS with --tls-cert FILE \
             --tls-key FILE (or --self-signed for trials), or listen on 127.0.0.1 behind \
             a TLS-terminating proxy"
        )
    })
}

/// The host part of the base URL for `addr`.
fn display_addr(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port()).to_string()
}

/// The accept loop: one task per connection (TLS handshake included), HTTP/1.1 and
/// HTTP/2, graceful shutdown.
async fn serve<L: Listener>(
    mut listener: L,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // Accept errors (out of file descriptors and the like) are waited out
            // by the listener.
            (io, _peer) = listener.accept() => {
                let conn = connection(io, acceptor.clone(), app.clone(), graceful.watcher());
                connections.spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "management connection ended");
                    }
                });
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the drain timeout; closing them");
    }
    connections.shutdown().await;
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn connection<I>(
    tcp: I,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<(), BoxError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let builder = auto::Builder::new(TokioExecutor::new());
    match acceptor {
        None => {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            watcher.watch(conn.into_owned()).await
        }
        Some(acceptor) => {
            let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                .await
                .map_err(|_| "TLS handshake timed out")??;
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            watcher.watch(conn.into_owned()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_warned_about_off_loopback_only() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        for reachable in ["0.0.0.0:8090", "[::]:8090", "192.0.2.1:8090", "10.1.2.3:80"] {
            let warning = cleartext_warning(addr(reachable), false)
                .unwrap_or_else(|| panic!("{reachable}: no warning"));
            assert!(warning.contains(reachable), "{warning}");
            assert!(warning.contains("--tls-cert"), "{warning}");
            assert!(warning.contains("--self-signed"), "{warning}");
            assert_eq!(
                cleartext_warning(addr(reachable), true),
                None,
                "{reachable} with TLS"
            );
        }
        for local in ["127.0.0.1:8090", "127.1.2.3:8090", "[::1]:8090"] {
            assert_eq!(cleartext_warning(addr(local), false), None, "{local}");
        }
    }
}
