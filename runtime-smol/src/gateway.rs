//! The gateway: listeners, connection tasks, configuration reload and graceful shutdown.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::proxy::setup::OpenIdUrls;
use portcullis_core::proxy::ConnSettings;
use portcullis_core::sync::SyncStatus;
use portcullis_driver::config_file as config_watch;
use portcullis_driver::jwks::key_sets;
use portcullis_driver::options::{ConfigOrigin, GatewayOptions};
use portcullis_driver::setup::gateway_conn_settings;
use smol::Async;

use crate::callout::Callouts;
use crate::config_file::{load_config_bytes, watch_file, ConfigError, SharedConfig};
use crate::jwks::{JwksOptions, JwksRefresher};
use crate::stop::{Stop, TaskToken, Tracker};
use crate::sync::{Sync, SyncSetupError};
use crate::upstream::{Connector, TlsSetupError, Upstreams};

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration file could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TLS client for `https://` backends could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    /// Connected mode could not be set up (URL, token, CA, backup directory).
    #[error(transparent)]
    Sync(#[from] SyncSetupError),
    /// The OS gave no random bytes.
    #[error("the operating system's random source failed")]
    Random,
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The IO error.
        source: std::io::Error,
    },
}

/// A running gateway; its tasks run on smol's global executor.
pub struct Gateway {
    addr: SocketAddr,
    ops_addr: Option<SocketAddr>,
    config: Arc<SharedConfig>,
    stop: Stop,
    tracker: Tracker,
    grace: Duration,
    sync: Option<Arc<Mutex<SyncStatus>>>,
    telemetry: Option<crate::telemetry::TelemetryTask>,
}

impl Gateway {
    /// Loads the configuration, binds the listeners and starts serving.
    ///
    /// A configuration that does not load is an error at start: a gateway never
    /// serves an empty configuration.
    pub async fn start(options: GatewayOptions) -> Result<Gateway, GatewayError> {
        // A local file must load now; in connected mode nothing is served until the
        // sync agent applies a configuration (from the backup or a fetch).
        let (config, file, sync) = match &options.origin {
            ConfigOrigin::File(path) => {
                let (initial, loaded) = load_config_bytes(path).await?;
                config_watch::log_loaded(path, initial.revision());
                (
                    SharedConfig::new(Some(initial)),
                    Some((path.clone(), loaded)),
                    None,
                )
            }
            ConfigOrigin::Managed(managed) => (
                SharedConfig::new(None),
                None,
                Some(Sync::prepare(managed).await?),
            ),
        };
        let config = Arc::new(config);
        let gateway_id = options.effective_gateway_id(sync.as_ref().map(|s| s.gateway_id()));
        let listener = bind(options.listen)?;
        let addr = listener
            .get_ref()
            .local_addr()
            .map_err(|source| GatewayError::Bind {
                addr: options.listen,
                source,
            })?;
        let ops = options.ops_listen.map(bind).transpose()?;
        let ops_addr = ops.as_ref().and_then(|l| l.get_ref().local_addr().ok());

        let stop = Stop::new();
        let tracker = Tracker::new();
        let settings = Arc::new(gateway_conn_settings(
            &options,
            config.clone(),
            &gateway_id,
            sync.as_ref().map(|s| s.instance_id()),
            crate::now(),
            std::time::SystemTime::now(),
            random_bytes().ok_or(GatewayError::Random)?,
        ));
        let connector = Connector::new(options.upstream_ca.as_deref())?;
        let callouts = Callouts::with_connector(connector.clone());
        let pool = Arc::new(Upstreams::new(options.pool, connector));
        smol::spawn({
            let callouts = callouts.clone();
            let stop = stop.clone();
            async move { callouts.reap(stop).await }
        })
        .detach();
        smol::spawn(pool.clone().reap(stop.clone())).detach();
        if let Some((path, loaded)) = file {
            smol::spawn(watch_file(
                path,
                config.clone(),
                loaded,
                options.reload_interval,
                stop.clone(),
            ))
            .detach();
        }
        let management = sync.as_ref().map(|s| s.management());
        if let Some((endpoint, _)) = &management {
            settings
                .telemetry
                .attach_token(endpoint.credential().clone());
        }
        let telemetry_task = crate::telemetry::spawn(
            &options,
            settings.telemetry.clone(),
            management,
            callouts.clone(),
        )
        .await;
        let sync = sync.map(|sync| sync.spawn(config.clone(), stop.clone()));
        // validate-jwt's <openid-config> key sets: fetched and refreshed in the
        // background, handed to the core's shared key store.
        let jwks = {
            let state = settings.policy.state.clone();
            JwksRefresher::spawn(
                callouts.clone(),
                JwksOptions::default(),
                move |url, fetched| key_sets::store_key_set(&state, url, &fetched),
            )
        };
        smol::spawn(follow_openid_urls(
            config.clone(),
            jwks,
            options.reload_interval,
            stop.clone(),
        ))
        .detach();
        if let Some(ops) = ops {
            smol::spawn(crate::ops::serve(
                ops,
                config.clone(),
                settings.telemetry.clone(),
                stop.clone(),
            ))
            .detach();
        }
        if let Some(token) = tracker.token() {
            smol::spawn(accept_loop(
                listener,
                settings,
                pool,
                callouts,
                stop.clone(),
                token,
            ))
            .detach();
        }
        tracing::info!(%addr, ops = ?ops_addr, runtime = "smol", "gateway listening");
        Ok(Gateway {
            addr,
            ops_addr,
            config,
            stop,
            tracker,
            grace: options.shutdown_grace,
            sync,
            telemetry: telemetry_task,
        })
    }

    /// The address API traffic is served on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the operations endpoints, if enabled.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops_addr
    }

    /// The revision of the configuration in force.
    pub fn revision(&self) -> Option<u64> {
        self.config.revision()
    }

    /// The sync agent's state in connected mode (connectivity, applied revision,
    /// backup, compile errors); `None` for a local configuration file.
    pub fn sync_status(&self) -> Option<SyncStatus> {
        self.sync
            .as_ref()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Stops accepting, lets requests in flight finish (up to the grace period), and
    /// returns when every connection is closed.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if crate::timeout(self.grace, self.tracker.wait())
            .await
            .is_none()
        {
            tracing::warn!("shutdown grace period over; dropping connections still open");
        }
        // After the connections: their last records are logged and kept.
        if let Some(t) = self.telemetry {
            t.finish().await;
        }
    }
}

/// Keeps the key set refresher's list of OpenID configuration URLs in step
/// with the configuration in force.
async fn follow_openid_urls(
    config: Arc<SharedConfig>,
    jwks: JwksRefresher,
    every: Duration,
    stop: Stop,
) {
    let mut urls = OpenIdUrls::default();
    loop {
        if let Some(changed) = urls.poll_changed(&*config) {
            jwks.set_urls(changed);
        }
        if crate::timeout(every, stop.cancelled()).await.is_some() {
            return;
        }
    }
}

fn bind(addr: SocketAddr) -> Result<Async<TcpListener>, GatewayError> {
    Async::<TcpListener>::bind(addr).map_err(|source| GatewayError::Bind { addr, source })
}

async fn accept_loop(
    listener: Async<TcpListener>,
    settings: Arc<ConnSettings>,
    pool: Arc<Upstreams>,
    callouts: Callouts,
    stop: Stop,
    token: TaskToken,
) {
    loop {
        let accepted = smol::future::or(async { Some(listener.accept().await) }, async {
            stop.cancelled().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok((stream, peer))) => {
                let _ = stream.get_ref().set_nodelay(true);
                let token = token.clone();
                let conn = crate::connection::serve(
                    stream,
                    peer,
                    settings.clone(),
                    pool.clone(),
                    callouts.clone(),
                    stop.clone(),
                );
                smol::spawn(async move {
                    let _token = token;
                    conn.await;
                })
                .detach();
            }
            Some(Err(err)) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %err, "accept failed");
                smol::Timer::after(Duration::from_millis(20)).await;
            }
        }
    }
    // The port closes before this task stops counting as running, so a finished
    // shutdown never leaves it accepting (parameters would drop in no useful order).
    drop(listener);
    drop(token);
}

/// Random bytes from the OS (for the policy environment's secret, seeds and
/// nonces: the adapter, unlike the core, may read OS randomness).
pub(crate) fn random_bytes<const N: usize>() -> Option<[u8; N]> {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut out).ok()?;
    Some(out)
}
