//! Backend connections: plain or TLS streams, opening them, and the shared idle pool.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use portcullis_core::config::{Scheme, ServiceUrl};
use portcullis_core::pool::PoolLimits;
use portcullis_driver::upstream::pool::{PooledConn, SharedPool};
use portcullis_driver::upstream::stream::PollStream;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::env::{Net, NetStream, TokioNet};

/// A connection to a backend, over TCP or TLS.
pub(crate) enum UpstreamStream {
    /// `http://` backends.
    Plain(NetStream),
    /// `https://` backends (boxed: the TLS session is large and only some have one).
    Tls(Box<TlsStream<NetStream>>),
}

impl UpstreamStream {
    fn net(&mut self) -> &mut NetStream {
        match self {
            UpstreamStream::Plain(s) => s,
            UpstreamStream::Tls(s) => s.get_mut().0,
        }
    }
}

impl PollStream for UpstreamStream {
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    /// Nothing to do for plain TCP.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self {
            UpstreamStream::Plain(_) => Poll::Ready(Ok(())),
            UpstreamStream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        match self {
            UpstreamStream::Plain(s) => crate::connection::poll_read_net(s, cx, buf),
            UpstreamStream::Tls(s) => {
                let mut rb = ReadBuf::new(buf);
                std::task::ready!(Pin::new(&mut **s).poll_read(cx, &mut rb))?;
                Poll::Ready(Ok(rb.filled().len()))
            }
        }
    }
}

/// A backend connection and the pool key it belongs to.
pub(crate) type UpstreamConn = PooledConn<UpstreamStream>;

/// Opens backend connections, with TLS for `https://` backends.
#[derive(Clone)]
pub(crate) struct Connector {
    tls: TlsConnector,
    net: Arc<dyn Net>,
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
        Connector::on(Arc::new(TokioNet), extra_ca)
    }

    /// Like [`Connector::new`], opening connections on `net`.
    pub fn on(net: Arc<dyn Net>, extra_ca: Option<&Path>) -> Result<Self, TlsSetupError> {
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
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
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
            net,
        })
    }

    /// Opens a new connection to the backend of `service`.
    pub async fn connect(&self, service: &ServiceUrl) -> std::io::Result<UpstreamConn> {
        let tcp = self
            .net
            .connect(service.host.as_str(), service.port)
            .await?;
        tcp.set_nodelay();
        let stream = match service.scheme {
            Scheme::Http => UpstreamStream::Plain(tcp),
            Scheme::Https => {
                let name = ServerName::try_from(service.host.clone())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                UpstreamStream::Tls(Box::new(self.tls.connect(name, tcp).await?))
            }
        };
        Ok(UpstreamConn {
            key: service.pool_key.clone(),
            stream,
        })
    }
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
    pub async fn connect(&self, service: &ServiceUrl) -> std::io::Result<UpstreamConn> {
        self.connector.connect(service).await
    }

    /// An idle connection to `key` that is still open, if any.
    pub fn checkout(&self, key: &Arc<str>, now: Instant) -> Option<UpstreamConn> {
        self.pool
            .checkout(key, now, |stream| stream.net().still_open())
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
    pub async fn reap(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let next = self.pool.poll_timeout();
            let wake = next
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(1));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(wake) => {}
            }
            self.close_expired(crate::now());
        }
    }
}
