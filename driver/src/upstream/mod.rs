//! Backend connections: plain or TLS streams over the runtime's TCP, opening
//! them, and the idle pool shared by every task of a gateway.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};
use futures_rustls::client::TlsStream;
use futures_rustls::rustls::RootCertStore;
use futures_rustls::TlsConnector;
use portcullis_core::config::{Scheme, ServiceUrl};
use portcullis_core::http::UpstreamTls;
use portcullis_core::pool::PoolLimits;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::runtime::{Runtime, Stream};
use crate::stop::Stop;

pub mod pool;
pub mod stream;
pub mod tls;

use pool::{PooledConn, SharedPool};
use stream::PollStream;
use tls::TlsConfigs;

/// A connection to a backend, over TCP or TLS.
pub enum UpstreamStream<S> {
    /// `http://` backends.
    Plain(S),
    /// `https://` backends (boxed: the TLS session is large and only some have one).
    Tls(Box<TlsStream<S>>),
}

impl<S: Stream> UpstreamStream<S> {
    fn net(&mut self) -> &mut S {
        match self {
            UpstreamStream::Plain(s) => s,
            UpstreamStream::Tls(s) => s.get_mut().0,
        }
    }
}

impl<S: Stream> PollStream for UpstreamStream<S> {
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    /// Nothing to do for plain TCP.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            UpstreamStream::Plain(_) => Poll::Ready(Ok(())),
            UpstreamStream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self {
            UpstreamStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            UpstreamStream::Plain(s) => Pin::new(s).poll_close(cx),
            UpstreamStream::Tls(s) => Pin::new(&mut **s).poll_close(cx),
        }
    }
}

/// A backend connection on runtime `R` and the pool key it belongs to.
pub type UpstreamConn<R> = PooledConn<UpstreamStream<<R as Runtime>::Stream>>;

/// Why the TLS client configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA file could not be read or holds no certificate.
    #[error("cannot use CA certificates from {path}: {reason}")]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Opens backend connections on the runtime, with TLS for `https://` backends.
#[derive(Clone)]
pub struct Connector<R> {
    tls: Arc<TlsConfigs>,
    rt: R,
}

impl<R: Runtime> Connector<R> {
    /// A connector on `rt` trusting the Mozilla root CAs and, if given, the PEM
    /// certificates in `extra_ca` (for backends with a private CA).
    pub fn new(rt: R, extra_ca: Option<&Path>) -> Result<Self, TlsSetupError> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = extra_ca {
            let fail = |reason: String| TlsSetupError::CaFile {
                path: path.to_owned(),
                reason,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| fail(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail(e.to_string()))?;
            if certs.is_empty() {
                return Err(fail("no certificate in the file".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| fail(e.to_string()))?;
            }
        }
        let tls = TlsConfigs::new(roots).map_err(|reason| TlsSetupError::CaFile {
            path: Default::default(),
            reason,
        })?;
        Ok(Connector {
            tls: Arc::new(tls),
            rt,
        })
    }

    /// The runtime connections are opened on.
    pub fn runtime(&self) -> &R {
        &self.rt
    }

    /// Opens a new connection to the backend of `service`, with TLS as `tls`
    /// says (`None`: the defaults) for `https://`; it belongs to pool `key`.
    pub async fn connect(
        &self,
        service: &ServiceUrl,
        tls: Option<&UpstreamTls>,
        key: Arc<str>,
    ) -> io::Result<UpstreamConn<R>> {
        let tls_setup = match service.scheme {
            Scheme::Http => None,
            Scheme::Https => {
                let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
                let name = tls::server_name(tls, &service.host).map_err(invalid)?;
                let config = self.tls.config(tls).map_err(invalid)?;
                Some((name, config))
            }
        };
        let tcp = self.rt.connect(service.host.as_str(), service.port).await?;
        tcp.set_nodelay();
        let stream = match tls_setup {
            None => UpstreamStream::Plain(tcp),
            Some((name, config)) => {
                let connector = TlsConnector::from(config);
                UpstreamStream::Tls(Box::new(connector.connect(name, tcp).await?))
            }
        };
        Ok(UpstreamConn::<R> { key, stream })
    }
}

impl<R: Runtime> Connector<R> {
    /// Opens a TCP connection to `host:port`, with TLS (the default client
    /// settings: the Mozilla roots and `--upstream-ca`) when `tls` is set: how
    /// the gateway reaches services of its own, such as its Redis store.
    pub async fn open(
        &self,
        host: &str,
        port: u16,
        tls: bool,
    ) -> io::Result<UpstreamStream<R::Stream>> {
        let tcp = self.rt.connect(host, port).await?;
        tcp.set_nodelay();
        if !tls {
            return Ok(UpstreamStream::Plain(tcp));
        }
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        let name = tls::server_name(None, host).map_err(invalid)?;
        let config = self.tls.config(None).map_err(invalid)?;
        let connector = TlsConnector::from(config);
        Ok(UpstreamStream::Tls(Box::new(
            connector.connect(name, tcp).await?,
        )))
    }
}

/// Backend connections shared by all client connections: the idle pool and the
/// connector for new ones.
pub struct Upstreams<R: Runtime> {
    pool: SharedPool<UpstreamStream<R::Stream>>,
    limits: PoolLimits,
    connector: Connector<R>,
}

impl<R: Runtime> Upstreams<R> {
    /// An empty pool with these limits, opening connections with `connector`.
    pub fn new(limits: PoolLimits, connector: Connector<R>) -> Self {
        Upstreams {
            pool: SharedPool::new(limits),
            limits,
            connector,
        }
    }

    /// An empty pool with the same limits and connector: a thread-per-core
    /// worker's own, so its backend connections stay on its thread's runtime.
    pub fn empty_like(&self) -> Self {
        Upstreams::new(self.limits, self.connector.clone())
    }

    /// The runtime connections are opened on.
    pub fn runtime(&self) -> &R {
        self.connector.runtime()
    }

    /// Opens a new connection to the backend of `service` with TLS as `tls`
    /// says, for pool `key` (see [`Connector::connect`]).
    pub async fn connect(
        &self,
        service: &ServiceUrl,
        tls: Option<&UpstreamTls>,
        key: Arc<str>,
    ) -> io::Result<UpstreamConn<R>> {
        self.connector.connect(service, tls, key).await
    }

    /// An idle connection to `key` that is still open, if any.
    pub fn checkout(&self, key: &Arc<str>, now: Instant) -> Option<UpstreamConn<R>> {
        self.pool
            .checkout(key, now, |stream| stream.net().still_open())
    }

    /// Gives a clean connection back for reuse (closed when the pool is full).
    pub fn checkin(&self, conn: UpstreamConn<R>, now: Instant) {
        self.pool.checkin(conn, now);
    }

    /// Closes connections idle for too long (what `reap` does, once).
    pub fn close_expired(&self, now: Instant) {
        self.pool.close_expired(now);
    }

    /// Closes connections idle for too long, until `stop`.
    pub async fn reap(self: Arc<Self>, stop: Stop) {
        let rt = self.runtime().clone();
        loop {
            let wake = self
                .pool
                .poll_timeout()
                .unwrap_or_else(|| rt.now() + Duration::from_secs(1));
            let timer = rt.timer(wake);
            if crate::runtime::until_stopped(&stop, timer).await.is_none() {
                return;
            }
            self.close_expired(rt.now());
        }
    }
}
