//! The gateway: listeners, connection tasks, configuration reload and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::proxy::setup::OpenIdUrls;
use portcullis_core::proxy::ConnSettings;
use portcullis_driver::config_file as config_watch;
use portcullis_driver::jwks::key_sets;
use portcullis_driver::options::{ConfigOrigin, GatewayOptions};
use portcullis_driver::setup::gateway_conn_settings;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::callout::Callouts;
use crate::config_file::{load_config_bytes, watch_file, ConfigError, SharedConfig};
use crate::env::{Environment, Listener};
use crate::jwks::{JwksOptions, JwksRefresher};
use crate::sync::{Sync, SyncSetupError};
use crate::upstream::{Connector, TlsSetupError, Upstreams};
use portcullis_core::sync::SyncStatus;
use tokio::sync::watch;

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

/// A running gateway.
pub struct Gateway {
    addr: SocketAddr,
    ops_addr: Option<SocketAddr>,
    config: Arc<SharedConfig>,
    stop: CancellationToken,
    tracker: TaskTracker,
    /// The accept loop: shutdown waits for it, so the port is closed when it returns.
    accept: tokio::task::JoinHandle<()>,
    grace: Duration,
    sync: Option<watch::Receiver<SyncStatus>>,
    telemetry: Option<crate::telemetry::TelemetryTask>,
}

impl Gateway {
    /// Loads the configuration, binds the listeners and starts serving.
    ///
    /// A configuration that does not load is an error at start: a gateway never
    /// serves an empty configuration.
    pub async fn start(options: GatewayOptions) -> Result<Gateway, GatewayError> {
        Gateway::start_in(options, Environment::os()).await
    }

    /// Like [`Gateway::start`], with the network, disk, clock, randomness and
    /// blocking work of `env` (a simulation's).
    pub async fn start_in(
        options: GatewayOptions,
        env: Environment,
    ) -> Result<Gateway, GatewayError> {
        let env = Arc::new(env);
        #[cfg(feature = "sabotage")]
        if env.sabotage != crate::env::Sabotage::default() {
            // The marker CI looks for in the release binary, which must not
            // hold it (.ci/run): keep the words "fault switches on".
            tracing::warn!(sabotage = ?env.sabotage, "portcullis fault switches on: this gateway breaks invariants on purpose (simulation only)");
        }
        // A local file must load now; in connected mode nothing is served until the
        // sync agent applies a configuration (from the backup or a fetch).
        let (config, file, sync) = match &options.origin {
            ConfigOrigin::File(path) => {
                let (initial, loaded) = load_config_bytes(path)?;
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
                Some(Sync::prepare(managed, &env)?),
            ),
        };
        let config = Arc::new(config);
        let gateway_id = options.effective_gateway_id(sync.as_ref().map(|s| s.gateway_id()));
        let listener = bind(&env, options.listen).await?;
        let addr = listener.local_addr().map_err(|source| GatewayError::Bind {
            addr: options.listen,
            source,
        })?;
        let ops = match options.ops_listen {
            Some(ops) => Some(bind(&env, ops).await?),
            None => None,
        };
        let ops_addr = ops.as_ref().and_then(|l| l.local_addr().ok());

        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let settings = Arc::new(gateway_conn_settings(
            &options,
            config.clone(),
            &gateway_id,
            sync.as_ref().map(|s| s.instance_id()),
            crate::now(),
            (env.wall_clock)(),
            env.random_bytes().ok_or(GatewayError::Random)?,
        ));
        let connector = Connector::on(env.net.clone(), options.upstream_ca.as_deref())?;
        let callouts = Callouts::with_connector(connector.clone());
        let pool = Arc::new(Upstreams::new(options.pool, connector));
        tokio::spawn({
            let callouts = callouts.clone();
            let stop = stop.clone();
            async move { callouts.reap(stop).await }
        });

        tokio::spawn(pool.clone().reap(stop.clone()));
        if let Some((path, loaded)) = file {
            tokio::spawn(watch_file(
                path,
                config.clone(),
                loaded,
                options.reload_interval,
                stop.clone(),
            ));
        }
        let management = sync.as_ref().map(|s| s.management());
        if let Some((endpoint, _)) = &management {
            settings
                .telemetry
                .attach_token(endpoint.credential().clone());
        }
        let telemetry_task = crate::telemetry::spawn(
            &options,
            &env,
            settings.telemetry.clone(),
            management,
            callouts.clone(),
        );
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
        tokio::spawn(follow_openid_urls(
            config.clone(),
            jwks,
            options.reload_interval,
            stop.clone(),
        ));
        if let Some(ops) = ops {
            tokio::spawn(crate::ops::serve(
                ops,
                config.clone(),
                settings.telemetry.clone(),
                stop.clone(),
            ));
        }
        let accept = tokio::spawn(accept_loop(
            listener,
            settings,
            pool,
            callouts,
            stop.clone(),
            tracker.clone(),
        ));
        tracing::info!(%addr, ops = ?ops_addr, "gateway listening");
        Ok(Gateway {
            addr,
            ops_addr,
            config,
            stop,
            tracker,
            accept,
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

    /// The content identity (revision, store, digest) of the configuration in force.
    pub fn content(&self) -> Option<portcullis_core::sync::ContentId> {
        self.config.content()
    }

    /// The sync agent's state in connected mode (connectivity, applied revision,
    /// backup, compile errors); `None` for a local configuration file.
    pub fn sync_status(&self) -> Option<SyncStatus> {
        self.sync.as_ref().map(|rx| rx.borrow().clone())
    }

    /// Stops accepting, lets requests in flight finish (up to the grace period), and
    /// returns when every connection is closed.
    pub async fn shutdown(self) {
        self.stop.cancel();
        // The listener is gone once the accept loop has ended (an error here is a
        // panic in it, and then it is gone too).
        let _ = self.accept.await;
        self.tracker.close();
        if tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .is_err()
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
    stop: CancellationToken,
) {
    let mut urls = OpenIdUrls::default();
    loop {
        if let Some(changed) = urls.poll_changed(&*config) {
            jwks.set_urls(changed);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

async fn bind(env: &Environment, addr: SocketAddr) -> Result<Box<dyn Listener>, GatewayError> {
    env.net
        .bind(addr)
        .await
        .map_err(|source| GatewayError::Bind { addr, source })
}

async fn accept_loop(
    listener: Box<dyn Listener>,
    settings: Arc<ConnSettings>,
    pool: Arc<Upstreams>,
    callouts: Callouts,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                stream.set_nodelay();
                tracker.spawn(crate::connection::serve(
                    stream,
                    peer,
                    settings.clone(),
                    pool.clone(),
                    callouts.clone(),
                    stop.clone(),
                ));
            }
            Err(err) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
