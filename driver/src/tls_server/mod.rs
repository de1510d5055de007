//! TLS at the edge: the HTTPS listener's rustls server (ring, TLS 1.2 and
//! 1.3 only, ALPN `http/1.1`), its certificates chosen by SNI, session
//! resumption, and the bounded handshake every accepted connection goes
//! through before the connection pump sees its bytes (`peeked`: plain HTTP
//! gets a 400), and renewed certificate files swapped in (`watch`). Written
//! once over any runtime's [`Stream`].

use std::io;
use std::sync::Arc;
use std::time::Instant;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::rustls::crypto::{ring as ring_provider, CryptoProvider};
use futures_rustls::rustls::server::ServerSessionMemoryCache;
use futures_rustls::rustls::{self, HandshakeKind, ServerConfig};
use futures_rustls::server::TlsStream;
use futures_rustls::TlsAcceptor;
use portcullis_core::telemetry::prometheus::TlsFailure;

use crate::options::CertificateFiles;
use crate::runtime::{timeout_at, until_stopped, Runtime, Stream};
use crate::stop::Stop;

pub mod certs;
pub mod peeked;
pub mod watch;

pub use certs::{CertError, CertResolver, CertSet, ServedCert};
pub use peeked::Peeked;

/// Sessions kept for TLS 1.2 clients that resume by session id (tickets need
/// no server memory); about 200 bytes each.
const SESSION_CACHE_ENTRIES: usize = 16 * 1024;

/// Why the HTTPS listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerTlsError {
    /// A certificate or key could not be used.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// The blocking task loading the certificates did not finish.
    #[error("loading the certificates failed: {0}")]
    Load(String),
    /// No certificate was given.
    #[error("the HTTPS listener needs at least one certificate (--tls-cert and --tls-key)")]
    NoCertificate,
    /// rustls refused the configuration (or the ticket keys could not be made).
    #[error("TLS server configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider of the HTTPS listener (ring, with its default suites:
/// AES-GCM and ChaCha20-Poly1305 with ECDHE only, so no CBC, RC4, 3DES or
/// static RSA key exchange is ever offered).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring_provider::default_provider())
}

/// Loads the certificate files (the first is the default). Blocking file IO:
/// run it from [`Runtime::blocking`].
pub fn load_certificates(files: &[CertificateFiles]) -> Result<Vec<ServedCert>, CertError> {
    let provider = provider();
    files
        .iter()
        .map(|f| ServedCert::load(&f.cert, &f.key, &provider))
        .collect()
}

/// The HTTPS listener's TLS server, shared by all its connections: one rustls
/// configuration, so one session cache and one ticketer (ring's, whose key
/// rotates every six hours and still accepts tickets of the previous key) for
/// the whole process.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    resolver: Arc<CertResolver>,
}

/// A handshake that finished: the TLS stream and whether the session was
/// resumed.
pub struct Handshaken<S> {
    /// The stream the connection pump reads and writes.
    pub stream: TlsStream<Peeked<S>>,
    /// Resumed from a ticket or the session cache.
    pub resumed: bool,
}

impl ServerTls {
    /// A server serving `certs` (the first is the default for clients without
    /// SNI or with a name no certificate has).
    pub fn new(certs: &[ServedCert]) -> Result<Self, ServerTlsError> {
        if certs.is_empty() {
            return Err(ServerTlsError::NoCertificate);
        }
        let resolver = Arc::new(CertResolver::new(CertSet::new(certs)));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
        config.ticketer = ring_provider::Ticketer::new()?;
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            resolver,
        })
    }

    /// The certificate resolver: [`CertResolver::replace`] serves a new set
    /// from the next handshake on, without touching open connections.
    pub fn resolver(&self) -> &Arc<CertResolver> {
        &self.resolver
    }

    /// Runs the server side of the handshake on `tcp` until `deadline` (the
    /// header timeout: a client that stalls its handshake is treated like one
    /// that stalls its request head) or `stop`. Plain HTTP gets a 400.
    pub async fn handshake<R: Runtime>(
        &self,
        rt: &R,
        tcp: R::Stream,
        deadline: Instant,
        stop: &Stop,
    ) -> Result<Handshaken<R::Stream>, TlsFailure> {
        let accept = timeout_at(rt, deadline, self.accept(tcp));
        match until_stopped(stop, accept).await {
            None => Err(TlsFailure::Closed),
            Some(None) => Err(TlsFailure::Timeout),
            Some(Some(Err(e))) => Err(e),
            Some(Some(Ok(stream))) => {
                let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
                Ok(Handshaken { stream, resumed })
            }
        }
    }
}

impl ServerTls {
    /// Reads the first byte, then runs the handshake or answers plain HTTP.
    async fn accept<S: Stream>(&self, mut tcp: S) -> Result<TlsStream<Peeked<S>>, TlsFailure> {
        let mut first = [0u8; 1];
        match tcp.read(&mut first).await {
            Ok(1) => {}
            Ok(_) => return Err(TlsFailure::Closed),
            Err(e) => return Err(failure(&e)),
        }
        if first[0] != peeked::HANDSHAKE_RECORD {
            // Best effort: the client learns why, then the connection closes.
            if tcp.write_all(peeked::PLAIN_HTTP_ANSWER).await.is_ok() {
                let _ = tcp.close().await;
            }
            return Err(TlsFailure::NotTls);
        }
        self.acceptor
            .accept(Peeked::new(first[0], tcp))
            .await
            .map_err(|e| failure(&e))
    }
}

/// What a failed handshake's error says, as `/metrics` counts it.
fn failure(e: &io::Error) -> TlsFailure {
    use rustls::Error as E;
    match e.get_ref().and_then(|inner| inner.downcast_ref::<E>()) {
        Some(E::PeerIncompatible(_) | E::NoApplicationProtocol) => TlsFailure::Incompatible,
        Some(E::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) => TlsFailure::NotTls,
        Some(_) => TlsFailure::Other,
        None => match e.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => TlsFailure::Closed,
            _ => TlsFailure::Other,
        },
    }
}
