//! The gateway: listeners, connection tasks, configuration reload and graceful
//! shutdown, on any [`Runtime`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::proxy::setup::OpenIdUrls;
use portcullis_core::sync::{ContentId, SyncStatus};

use crate::callout::{Callouts, OneWayCalls};
use crate::config_file::{self, load_config_bytes, watch_file, ConfigFileError};
use crate::conn::Shared;
use crate::jwks::{key_sets, JwksOptions, JwksRefresher};
use crate::nudge::Nudge;
use crate::options::{ConfigOrigin, GatewayOptions};
use crate::runtime::{random_bytes, sleep, timeout, until_stopped, Listener, Runtime};
use crate::setup::{gateway_conn_settings, telemetry_settings};
use crate::shared_config::{free_retired, SharedConfig};
use crate::stop::{Stop, TaskToken, Tracker};
use crate::store::redis::client::Client as RedisClient;
use crate::store::stats::StoreStats;
use crate::store::InProcessStore;
use crate::sync::{Sync, SyncSetupError};
use crate::telemetry::Hub;
use crate::telemetry::TelemetryTask;
use crate::tls_server::{watch, CertError, ServerTls, ServerTlsError};
use crate::upstream::{Connector, TlsSetupError, Upstreams};
use portcullis_core::config::store::{StoreSettings, StoreUrl};
use portcullis_core::config::CompiledConfig;
use portcullis_core::proxy::ConfigSource;
use portcullis_core::proxy::ConnSettings;

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration file could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigFileError),
    /// The TLS client for `https://` backends could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    /// The HTTPS listener's certificates or TLS server could not be set up.
    #[error("HTTPS listener: {0}")]
    ServerTls(#[from] ServerTlsError),
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

/// A running gateway on runtime `R`.
pub struct Gateway<R: Runtime> {
    rt: R,
    addr: SocketAddr,
    https: Option<(SocketAddr, ServerTls)>,
    ops_addr: Option<SocketAddr>,
    config: Arc<SharedConfig>,
    stop: Stop,
    tracker: Tracker,
    /// The accept loop: shutdown waits for it, so the port is closed when it returns.
    accept: Tracker,
    grace: Duration,
    sync: Option<Arc<Mutex<SyncStatus>>>,
    telemetry: Option<TelemetryTask>,
    /// The HTTP listener's connections' shared state, which workers copy.
    shared: Arc<Shared<R>>,
    /// Workers handed out so far (each numbers its connections apart).
    workers: AtomicU64,
    /// Tells the file watchers to check now ([`Gateway::reload`]).
    nudge: Nudge,
}

impl<R: Runtime + Default> Gateway<R> {
    /// Loads the configuration, binds the listeners and starts serving.
    ///
    /// A configuration that does not load is an error at start: a gateway never
    /// serves an empty configuration.
    pub async fn start(options: GatewayOptions) -> Result<Self, GatewayError> {
        Gateway::start_on(options, R::default()).await
    }
}

impl<R: Runtime> Gateway<R> {
    /// Like [`Gateway::start`], on `rt` (a simulation's, say).
    pub async fn start_on(options: GatewayOptions, rt: R) -> Result<Self, GatewayError> {
        #[cfg(feature = "sabotage")]
        if rt.sabotage() != crate::sabotage::Sabotage::default() {
            // The marker CI looks for in the release binary, which must not
            // hold it (.ci/run): keep the words "fault switches on".
            tracing::warn!(sabotage = ?rt.sabotage(), "portcullis fault switches on: this gateway breaks invariants on purpose (simulation only)");
        }
        // A local file must load now; in connected mode nothing is served until the
        // sync agent applies a configuration (from the backup or a fetch).
        let (config, file, sync) = match &options.origin {
            ConfigOrigin::File(path) => {
                let target = path.clone();
                let (initial, loaded) = rt
                    .blocking(move || load_config_bytes(&target))
                    .await
                    .map_err(|e| ConfigFileError::Read {
                        path: path.clone(),
                        source: std::io::Error::other(e),
                    })??;
                config_file::log_loaded(path, initial.revision());
                (
                    SharedConfig::new(Some(initial)),
                    Some((path.clone(), loaded)),
                    None,
                )
            }
            ConfigOrigin::Managed(managed) => (
                SharedConfig::new(None),
                None,
                Some(Sync::prepare(managed, &rt).await?),
            ),
        };
        let config = Arc::new(config);
        let gateway_id = options.effective_gateway_id(sync.as_ref().map(|s| s.gateway_id()));
        let listener = if options.reuse_port {
            rt.bind_reuse_port(options.listen)
                .await
                .map_err(|source| GatewayError::Bind {
                    addr: options.listen,
                    source,
                })?
        } else {
            bind(&rt, options.listen).await?
        };
        let addr = listener.local_addr().map_err(|source| GatewayError::Bind {
            addr: options.listen,
            source,
        })?;
        let https = match &options.https {
            Some(https) => {
                let files = https.certificates.clone();
                let (content, certs) = rt
                    .blocking(move || {
                        let content = watch::read_files(&files)?;
                        let certs = watch::parse(&files, &content)?;
                        Ok::<_, CertError>((content, certs))
                    })
                    .await
                    .map_err(ServerTlsError::Load)?
                    .map_err(ServerTlsError::from)?;
                let tls = ServerTls::new(&certs, Some(config.clone()))?;
                let listener = bind(&rt, https.listen).await?;
                let addr = listener.local_addr().map_err(|source| GatewayError::Bind {
                    addr: https.listen,
                    source,
                })?;
                Some((listener, addr, tls, content))
            }
            None => None,
        };
        let ops = match options.ops_listen {
            Some(ops) => Some(bind(&rt, ops).await?),
            None => None,
        };
        let ops_addr = ops.as_ref().and_then(|l| l.local_addr().ok());

        let stop = Stop::new();
        let tracker = Tracker::new();
        let hub = Arc::new(Hub::new(telemetry_settings(
            &options,
            &gateway_id,
            sync.as_ref().map(|s| s.instance_id()),
        )));
        if https.is_some() {
            hub.attach_tls();
        }
        let mut settings = gateway_conn_settings(
            &options,
            config.clone(),
            &gateway_id,
            hub.clone(),
            rt.now(),
            rt.wall_clock(),
            random_bytes(&rt).ok_or(GatewayError::Random)?,
        );
        // Where `httpsRedirect` sends plain HTTP: the port clients know the
        // HTTPS listener by (a load balancer's), else the one it is bound to.
        settings.https_port = https.as_ref().map(|(_, addr, ..)| {
            options
                .https
                .as_ref()
                .and_then(|h| h.public_port)
                .unwrap_or(addr.port())
        });
        let settings = Arc::new(settings);
        // The policies' shared state: in process, and in Redis when the store
        // setting names one (counters, slots, the external cache).
        let stats = {
            let clock = rt.clone();
            Arc::new(StoreStats::new(Arc::new(move || clock.now())))
        };
        hub.attach_store(stats.clone());
        let store = Arc::new(InProcessStore::new(settings.policy.store_seed).with_stats(stats));
        let connector = Connector::new(rt.clone(), options.upstream_ca.as_deref())?;
        let instance = match sync.as_ref() {
            Some(s) => s.instance_id().to_owned(),
            None => random_bytes::<_, 8>(&rt)
                .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
                .unwrap_or_else(|| "gateway".into()),
        };
        let follower = Arc::new(Mutex::new(StoreFollower {
            rt: rt.clone(),
            store: store.clone(),
            flag: options.store.clone(),
            gateway_id: gateway_id.clone(),
            instance,
            connector: connector.clone(),
            current: None,
        }));
        // In force before the first request, and with every configuration
        // right as it is put in force: limits must not count locally meanwhile.
        lock_follower(&follower).follow(config.current().as_deref(), true);
        config.on_apply({
            let follower = follower.clone();
            Box::new(move |c| lock_follower(&follower).follow(Some(c), false))
        });
        rt.spawn({
            let stop = stop.clone();
            let store = store.clone();
            async move {
                stop.cancelled().await;
                store.set_remote(None);
            }
        });
        let callouts = Callouts::with_connector(connector.clone())
            .with_entra_authority(options.entra_authority.as_deref());
        let pool = Arc::new(Upstreams::new(options.pool, connector));
        rt.spawn({
            let callouts = callouts.clone();
            let stop = stop.clone();
            async move { callouts.reap(stop).await }
        });
        rt.spawn(pool.clone().reap(stop.clone()));
        rt.spawn(free_retired(rt.clone(), config.clone(), stop.clone()));
        let mut nudge = Nudge::default();
        if let Some((path, loaded)) = file {
            rt.spawn(watch_file(
                rt.clone(),
                path,
                config.clone(),
                loaded,
                options.reload_interval,
                nudge.watcher(),
                stop.clone(),
            ));
        }
        let management = sync.as_ref().map(|s| s.management());
        if let Some(sync) = &sync {
            hub.attach_token(sync.credential().clone());
        }
        let telemetry =
            crate::telemetry::spawn(&options, &rt, hub.clone(), management, callouts.clone()).await;
        if let Some(url) = options.telemetry.otlp_endpoint.clone() {
            rt.spawn(crate::telemetry::otlp_metrics::export_loop(
                rt.clone(),
                hub.clone(),
                callouts.clone(),
                url,
                options.telemetry.otlp_metrics_interval,
                stop.clone(),
            ));
        }
        let sync = sync.map(|sync| {
            sync.with_store_stats(store.stats().clone())
                .spawn(config.clone(), stop.clone())
        });
        // validate-jwt's <openid-config> key sets: fetched and refreshed in the
        // background, handed to the core's shared key store.
        let jwks = {
            let store = store.clone();
            JwksRefresher::spawn(
                callouts.clone(),
                JwksOptions::default(),
                move |url, fetched| key_sets::store_key_set(&*store, url, &fetched),
            )
        };
        rt.spawn(follow_openid_urls(
            rt.clone(),
            config.clone(),
            jwks,
            options.reload_interval,
            stop.clone(),
        ));
        if let Some(ops) = ops {
            rt.spawn(crate::ops::serve(
                rt.clone(),
                ops,
                config.clone(),
                hub.clone(),
                stop.clone(),
            ));
        }
        let https_settings = Arc::new(ConnSettings {
            proto: "https",
            ..(*settings).clone()
        });
        let shared = Arc::new(Shared {
            settings,
            store,
            pool,
            callouts,
            one_way: OneWayCalls::default(),
            not_ready_log: Default::default(),
            conns: Default::default(),
            tunnels: Arc::new(crate::conn::tunnels::TunnelLimit::new(
                options.max_websockets,
            )),
        });
        let gateway_shared = shared.clone();
        let accept = Tracker::new();
        let https = https.map(|(listener, addr, tls, content)| {
            if let Some(files) = options.https.as_ref().map(|h| h.certificates.clone()) {
                rt.spawn(watch::watch_certificates(
                    rt.clone(),
                    files,
                    content,
                    tls.resolver().clone(),
                    options.reload_interval,
                    nudge.watcher(),
                    stop.clone(),
                ));
            }
            rt.spawn(crate::tls_server::follow_config(
                rt.clone(),
                tls.clone(),
                options.reload_interval,
                stop.clone(),
            ));
            let per_conn = Arc::new(TlsListener {
                tls: tls.clone(),
                settings: https_settings,
                hub: hub.clone(),
            });
            let (conn_rt, conn_shared, conn_stop) = (rt.clone(), shared.clone(), stop.clone());
            // Each handshake runs in the connection's own task, bounded by the
            // header timeout, so a slow or silent client never holds up the
            // next accept.
            let serve = move |stream, peer| {
                handshake_then_serve(
                    conn_rt.clone(),
                    stream,
                    peer,
                    per_conn.clone(),
                    conn_shared.clone(),
                    conn_stop.clone(),
                )
            };
            rt.spawn(accept_loop(
                rt.clone(),
                listener,
                serve,
                stop.clone(),
                tracker.token(),
                accept.token(),
            ));
            (addr, tls)
        });
        let https_addr = https.as_ref().map(|(addr, _)| *addr);
        let (conn_rt, conn_stop) = (rt.clone(), stop.clone());
        let serve = move |stream, peer| {
            crate::conn::serve(
                conn_rt.clone(),
                stream,
                peer,
                shared.settings.clone(),
                None,
                shared.clone(),
                conn_stop.clone(),
            )
        };
        rt.spawn(accept_loop(
            rt.clone(),
            listener,
            serve,
            stop.clone(),
            tracker.token(),
            accept.token(),
        ));
        match rt.log_name() {
            Some(runtime) => {
                tracing::info!(%addr, https = ?https_addr, ops = ?ops_addr, runtime, "gateway listening")
            }
            None => {
                tracing::info!(%addr, https = ?https_addr, ops = ?ops_addr, "gateway listening")
            }
        }
        Ok(Gateway {
            rt,
            addr,
            https,
            ops_addr,
            config,
            stop,
            tracker,
            accept,
            grace: options.shutdown_grace,
            sync,
            telemetry,
            shared: gateway_shared,
            workers: AtomicU64::new(0),
            nudge,
        })
    }

    /// One more thread's share of the HTTP listener (thread-per-core): run
    /// [`GatewayWorker::run`] on that thread's own runtime. It binds the
    /// gateway's address again (the gateway must have been started with
    /// `reuse_port`), so the kernel spreads new connections between the
    /// listeners, and it keeps its own backend pool so a backend connection
    /// stays on the thread that opened it. Everything else (configuration,
    /// policy state, call-outs, telemetry, sync, the operations endpoints, the
    /// HTTPS listener) stays the gateway's, on the gateway's runtime.
    pub fn worker(&self) -> GatewayWorker<R> {
        let index = self.workers.fetch_add(1, Ordering::Relaxed) + 1;
        let shared = &self.shared;
        let shared = Arc::new(Shared {
            settings: shared.settings.clone(),
            store: shared.store.clone(),
            pool: Arc::new(shared.pool.empty_like()),
            callouts: shared.callouts.clone(),
            one_way: shared.one_way.clone(),
            not_ready_log: Default::default(),
            // Connection numbers (and so request ids) distinct across workers.
            conns: AtomicU64::new(index << 40),
            tunnels: shared.tunnels.clone(),
        });
        GatewayWorker {
            addr: self.addr,
            shared,
            stop: self.stop.clone(),
            conns: self.tracker.token(),
            accept: self.accept.token(),
            grace: self.grace,
        }
    }

    /// Reads the configuration file (file mode) and the TLS certificate files
    /// again now rather than at the next reload interval (what SIGHUP does);
    /// `false` if there is nothing to read (connected mode without HTTPS).
    pub fn reload(&self) -> bool {
        self.nudge.send()
    }

    /// The address API traffic is served on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address API traffic is served on over HTTPS, if enabled.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().map(|(addr, _)| *addr)
    }

    /// The HTTPS listener's TLS server, if enabled: its certificate resolver
    /// swaps the served certificates without dropping connections.
    pub fn server_tls(&self) -> Option<&ServerTls> {
        self.https.as_ref().map(|(_, tls)| tls)
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
    pub fn content(&self) -> Option<ContentId> {
        self.config.content()
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
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        // The listener is gone once the accept loop has ended.
        std::mem::take(&mut self.accept).wait().await;
        let tracker = std::mem::take(&mut self.tracker);
        if timeout(&self.rt, self.grace, tracker.wait())
            .await
            .is_none()
        {
            tracing::warn!("shutdown grace period over; dropping connections still open");
        }
        // After the connections: their last records are logged and kept.
        if let Some(t) = self.telemetry.take() {
            t.finish().await;
        }
    }
}

/// A thread-per-core gateway's listener on another thread (see
/// [`Gateway::worker`]), not bound yet.
pub struct GatewayWorker<R: Runtime> {
    addr: SocketAddr,
    shared: Arc<Shared<R>>,
    stop: Stop,
    /// Held until this worker's connections are done, so the gateway's
    /// shutdown waits for them too.
    conns: Option<TaskToken>,
    /// Held until this worker's listener is closed.
    accept: Option<TaskToken>,
    grace: Duration,
}

/// A [`GatewayWorker`] whose listener is bound: [`BoundWorker::serve`] it.
pub struct BoundWorker<R: Runtime> {
    rt: R,
    worker: GatewayWorker<R>,
    listener: R::Listener,
}

impl<R: Runtime> GatewayWorker<R> {
    /// Binds the gateway's address with `SO_REUSEPORT` on `rt`, the calling
    /// thread's runtime (a listener belongs to the runtime it was bound on).
    pub async fn bind(self, rt: R) -> Result<BoundWorker<R>, GatewayError> {
        let addr = self.addr;
        let listener = rt
            .bind_reuse_port(addr)
            .await
            .map_err(|source| GatewayError::Bind { addr, source })?;
        Ok(BoundWorker {
            rt,
            worker: self,
            listener,
        })
    }
}

impl<R: Runtime> BoundWorker<R> {
    /// Serves the listener until the gateway shuts down, then lets this
    /// thread's connections finish (up to the grace period); the number of
    /// connections it accepted.
    pub async fn serve(self) -> u64 {
        let BoundWorker {
            rt,
            worker,
            listener,
        } = self;
        let GatewayWorker {
            shared,
            stop,
            conns,
            accept,
            grace,
            ..
        } = worker;
        let first = shared.conns.load(Ordering::Relaxed);
        rt.spawn(shared.pool.clone().reap(stop.clone()));
        // This thread's connections: its runtime must keep running until they end.
        let local = Tracker::new();
        let (conn_rt, conn_stop, conn_shared) = (rt.clone(), stop.clone(), shared.clone());
        let serve = move |stream, peer| {
            crate::conn::serve(
                conn_rt.clone(),
                stream,
                peer,
                conn_shared.settings.clone(),
                None,
                conn_shared.clone(),
                conn_stop.clone(),
            )
        };
        rt.spawn(accept_loop(
            rt.clone(),
            listener,
            serve,
            stop.clone(),
            local.token(),
            accept,
        ));
        stop.cancelled().await;
        if timeout(&rt, grace, local.wait()).await.is_none() {
            tracing::warn!("shutdown grace period over; dropping connections still open");
        }
        drop(conns);
        shared.conns.load(Ordering::Relaxed) - first
    }
}

/// Puts the store setting in force: the gateway's flag, else the one of the
/// configuration in force (the management plane's gateway entity), else in
/// process. A changed setting takes effect for the next request; counts kept
/// so far stay where they were.
struct StoreFollower<R: Runtime> {
    rt: R,
    store: Arc<InProcessStore>,
    flag: Option<StoreSettings>,
    gateway_id: String,
    instance: String,
    connector: Connector<R>,
    /// The setting in force (`None`: in process).
    current: Option<StoreSettings>,
}

fn lock_follower<R: Runtime>(
    m: &Mutex<StoreFollower<R>>,
) -> std::sync::MutexGuard<'_, StoreFollower<R>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<R: Runtime> StoreFollower<R> {
    /// Puts in force the store `config` asks for (the flag wins).
    fn follow(&mut self, config: Option<&CompiledConfig>, first: bool) {
        let wanted = self
            .flag
            .clone()
            .or_else(|| config.and_then(|c| c.snapshot().store.clone()))
            .filter(StoreSettings::is_shared);
        if !first && wanted == self.current {
            return;
        }
        self.store.stats().set_settings(wanted.as_ref());
        match &wanted {
            Some(settings) => {
                if let StoreUrl::Redis(url) = &settings.url {
                    tracing::info!(
                        target = %url.display_redacted(),
                        counting = ?settings.counting,
                        on_failure = ?settings.on_failure,
                        "shared-state store: Redis (limits and the external cache shared by every replica)"
                    );
                    let client = RedisClient::new(
                        self.rt.clone(),
                        self.connector.clone(),
                        url.clone(),
                        format!("portcullis:{}:{}", self.gateway_id, self.instance),
                        Duration::from_millis(settings.timeout_ms),
                    );
                    self.store.set_remote(Some(crate::store::redis::remote(
                        client,
                        settings.clone(),
                        &self.gateway_id,
                        self.instance.clone(),
                        self.store.stats().clone(),
                    )));
                }
            }
            None => {
                if !first {
                    tracing::info!("shared-state store: in process (this replica counts alone)");
                }
                self.store.set_remote(None);
            }
        }
        self.current = wanted;
    }
}

/// Keeps the key set refresher's list of OpenID configuration URLs in step
/// with the configuration in force.
async fn follow_openid_urls<R: Runtime>(
    rt: R,
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
        if until_stopped(&stop, sleep(&rt, every)).await.is_none() {
            return;
        }
    }
}

async fn bind<R: Runtime>(rt: &R, addr: SocketAddr) -> Result<R::Listener, GatewayError> {
    rt.bind(addr)
        .await
        .map_err(|source| GatewayError::Bind { addr, source })
}

/// An accept loop: each accepted connection runs `serve` in a task of its
/// own (tracked, so shutdown waits for it) until `stop`; the port is closed
/// before shutdown hears the loop has ended. Plain HTTP and HTTPS share it.
async fn accept_loop<R, F, Fut>(
    rt: R,
    listener: R::Listener,
    serve: F,
    stop: Stop,
    tracker: Option<crate::stop::TaskToken>,
    running: Option<crate::stop::TaskToken>,
) where
    R: Runtime,
    F: Fn(R::Stream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let Some(accepted) = until_stopped(&stop, listener.accept()).await else {
            break;
        };
        match accepted {
            Ok((stream, peer)) => {
                // TCP_NODELAY: the runtime's listener sees to it (tokio's once on
                // the listening socket, which accepted sockets inherit).
                let token = tracker.clone();
                // Boxed once here: the connection's future is several
                // kilobytes, and moving it by value into the task costs a
                // copy per move (callgrind showed ~2,000 instructions per
                // connection in memcpy).
                let serve = Box::pin(serve(stream, peer));
                rt.spawn(async move {
                    let _token = token;
                    serve.await;
                });
            }
            Err(err) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %err, "accept failed");
                sleep(&rt, Duration::from_millis(20)).await;
            }
        }
    }
    drop(listener);
    drop(running);
}

/// What the HTTPS accept loop hands each connection besides the shared state.
struct TlsListener {
    tls: ServerTls,
    /// The connections' settings (scheme `https`).
    settings: Arc<ConnSettings>,
    /// Where handshakes are counted.
    hub: Arc<Hub>,
}

/// One HTTPS connection: the handshake (bounded by the header timeout), then
/// the same connection pump as plain HTTP over the TLS stream.
async fn handshake_then_serve<R: Runtime>(
    rt: R,
    stream: R::Stream,
    peer: SocketAddr,
    listener: Arc<TlsListener>,
    shared: Arc<Shared<R>>,
    stop: Stop,
) {
    let deadline = rt.now() + shared.settings.timeouts.header_read;
    match listener.tls.handshake(&rt, stream, deadline, &stop).await {
        Ok(done) => {
            listener.hub.count_handshake(done.resumed);
            let settings = listener.settings.clone();
            drop(listener);
            // Boxed: the TLS session is large, and the pump's future holds it.
            let client = Box::new(done.stream);
            let cert = done.client_certificate;
            crate::conn::serve(rt, client, peer, settings, cert, shared, stop).await;
        }
        Err(reason) => {
            listener.hub.count_handshake_failure(reason);
            tracing::debug!(%peer, reason = reason.as_str(), "TLS handshake failed");
        }
    }
}
