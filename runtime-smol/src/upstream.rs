//! Backend connections: plain or TLS streams, opening them, and the shared idle pool.

use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_rustls::client::TlsStream;
use futures_rustls::rustls::{ClientConfig, RootCertStore};
use futures_rustls::TlsConnector;
use portcullis_core::config::{Scheme, ServiceUrl};
use portcullis_core::pool::PoolLimits;
use portcullis_driver::upstream::pool::{PooledConn, SharedPool};
use portcullis_driver::upstream::stream::PollStream;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use smol::io::{AsyncRead, AsyncWrite};
use smol::Async;

use crate::stop::Stop;

/// A connection to a backend, over TCP or TLS.
pub(crate) enum UpstreamStream {
    /// `http://` backends.
    Plain(Async<TcpStream>),
    /// `https://` backends (boxed: the TLS session is large and only some have one).
    Tls(Box<TlsStream<Async<TcpStream>>>),
}

impl UpstreamStream {
    fn tcp(&self) -> &Async<TcpStream> {
        match self {
            UpstreamStream::Plain(s) => s,
            UpstreamStream::Tls(s) => s.get_ref().0,
        }
    }
}

impl PollStream for UpstreamStream {
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
}

/// A backend connection and the pool key it belongs to.
pub(crate) type UpstreamConn = PooledConn<UpstreamStream>;

/// Opens backend connections, with TLS for `https://` backends.
#[derive(Clone)]
pub(crate) struct Connector {
    tls: TlsConnector,
}

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

impl Connector {
    /// A connector trusting the Mozilla root CAs and, if given, the PEM certificates in
    /// `extra_ca` (for backends with a private CA).
    pub fn new(extra_ca: Option<&Path>) -> Result<Self, TlsSetupError> {
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
        let provider = Arc::new(futures_rustls::rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::CaFile {
                path: Default::default(),
                reason: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Connector {
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Opens a new connection to the backend of `service`.
    pub async fn connect(&self, service: &ServiceUrl) -> io::Result<UpstreamConn> {
        let tcp = connect_tcp(&service.host, service.port).await?;
        tcp.get_ref().set_nodelay(true)?;
        let stream = match service.scheme {
            Scheme::Http => UpstreamStream::Plain(tcp),
            Scheme::Https => {
                let name = ServerName::try_from(service.host.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                UpstreamStream::Tls(Box::new(self.tls.connect(name, tcp).await?))
            }
        };
        Ok(UpstreamConn {
            key: service.pool_key.clone(),
            stream,
        })
    }
}

/// Resolves `host` and connects to the first address that answers.
async fn connect_tcp(host: &str, port: u16) -> io::Result<Async<TcpStream>> {
    let addrs = smol::net::resolve((host, port)).await?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"));
    for addr in addrs {
        match Async::<TcpStream>::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(err) => last = err,
        }
    }
    Err(last)
}

/// Whether an idle backend connection can still be used: a backend that closed it
/// (or sent anything at all, a TLS close_notify included) makes a peek return.
fn still_open(tcp: &Async<TcpStream>) -> bool {
    let mut probe = [0u8; 1];
    matches!(tcp.get_ref().peek(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Backend connections shared by all client connections: the idle pool and the
/// connector for new ones.
pub(crate) struct Upstreams {
    pool: SharedPool<UpstreamStream>,
    connector: Connector,
}

impl Upstreams {
    pub fn new(limits: PoolLimits, connector: Connector) -> Self {
        Upstreams {
            pool: SharedPool::new(limits),
            connector,
        }
    }

    /// Opens a new connection to the backend of `service`.
    pub async fn connect(&self, service: &ServiceUrl) -> io::Result<UpstreamConn> {
        self.connector.connect(service).await
    }

    /// An idle connection to `key` that is still open, if any.
    pub fn checkout(&self, key: &Arc<str>, now: Instant) -> Option<UpstreamConn> {
        self.pool
            .checkout(key, now, |stream| still_open(stream.tcp()))
    }

    /// Gives a clean connection back for reuse (closed when the pool is full).
    pub fn checkin(&self, conn: UpstreamConn, now: Instant) {
        self.pool.checkin(conn, now);
    }

    /// Closes connections idle for too long (what `reap` does, once).
    pub fn close_expired(&self, now: Instant) {
        self.pool.close_expired(now);
    }

    /// Closes connections idle for too long, until `stop`.
    pub async fn reap(self: Arc<Self>, stop: Stop) {
        loop {
            let next = self.pool.poll_timeout();
            let wake = next.unwrap_or_else(|| crate::now() + Duration::from_secs(1));
            let stopped = smol::future::or(
                async {
                    stop.cancelled().await;
                    true
                },
                async {
                    smol::Timer::at(wake).await;
                    false
                },
            )
            .await;
            if stopped {
                return;
            }
            self.close_expired(crate::now());
        }
    }
}
