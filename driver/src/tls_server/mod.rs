//! TLS at the edge: the HTTPS listener's rustls server (ring, TLS 1.2 and
//! 1.3 only, ALPN `http/1.1`), its certificates chosen by SNI, session
//! resumption, and the bounded handshake every accepted connection goes
//! through before the connection pump sees its bytes (`peeked`: plain HTTP
//! gets a 400), and renewed certificate files swapped in (`watch`). The
//! configuration's custom hostnames (`hostnames`) each get a rustls
//! configuration of their own, chosen by SNI from the ClientHello; the
//! certificate files stay the fallback. Written once over any runtime's
//! [`Stream`].

use std::io;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::rustls::crypto::{ring as ring_provider, CryptoProvider};
use futures_rustls::rustls::server::danger::ClientCertVerifier;
use futures_rustls::rustls::server::{
    Acceptor, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use futures_rustls::rustls::{self, HandshakeKind, ServerConfig, SupportedProtocolVersion};
use futures_rustls::server::TlsStream;
use futures_rustls::{LazyConfigAcceptor, TlsAcceptor};
use portcullis_core::cert::ClientCertificate;
use portcullis_core::config::CompiledConfig;
use portcullis_core::proxy::ConfigSource;
use portcullis_core::telemetry::prometheus::TlsFailure;

use crate::options::CertificateFiles;
use crate::runtime::{timeout_at, until_stopped, Runtime, Stream};
use crate::shared_config::SharedConfig;
use crate::stop::Stop;

pub mod certs;
pub mod client_auth;
pub mod hostnames;
pub mod names;
pub mod peeked;
pub mod suites;
pub mod watch;

pub use certs::{CertError, CertResolver, CertSet, ServedCert};
pub use hostnames::HostnameConfigs;
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
    /// No certificate was given and no configuration can bring one.
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

/// What the rustls configurations of the listener share: one session cache
/// and one ticketer (ring's, whose key rotates every six hours and still
/// accepts tickets of the previous key) for the whole process, so sessions
/// resume across hostnames' configurations and revisions (rustls still
/// refuses to resume a session under another SNI name). Hostnames that ask
/// for client certificates have a cache and ticketer of their own: a session
/// made where none was asked for (before a revision turned negotiation on,
/// say) cannot resume there, so the client is asked on its next handshake
/// instead of resuming without a certificate until its session lapses.
pub struct Common {
    /// ring, with all its suites.
    pub provider: Arc<CryptoProvider>,
    ticketer: Arc<dyn ProducesTickets>,
    sessions: Arc<dyn StoresServerSessions>,
    /// Made with the first hostname that negotiates (a cache preallocates).
    asking: OnceLock<Resumption>,
}

/// Where sessions are kept for resumption.
type Resumption = (Arc<dyn ProducesTickets>, Arc<dyn StoresServerSessions>);

impl Common {
    fn new() -> Result<Self, rustls::Error> {
        let (ticketer, sessions) = resumption()?;
        Ok(Common {
            provider: provider(),
            ticketer,
            sessions,
            asking: OnceLock::new(),
        })
    }

    /// A configuration with the listener's settings: `versions` (of TLS 1.2
    /// and 1.3), ALPN `http/1.1`, the shared cache and ticketer; client
    /// certificates asked for only with a `verifier`.
    pub fn config(
        &self,
        provider: Arc<CryptoProvider>,
        versions: &[&'static SupportedProtocolVersion],
        verifier: Option<Arc<dyn ClientCertVerifier>>,
        resolver: Arc<dyn ResolvesServerCert>,
    ) -> Result<ServerConfig, rustls::Error> {
        let (ticketer, sessions) = match verifier {
            Some(_) => self.asking()?,
            None => (self.ticketer.clone(), self.sessions.clone()),
        };
        let builder =
            ServerConfig::builder_with_provider(provider).with_protocol_versions(versions)?;
        let mut config = match verifier {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        }
        .with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.session_storage = sessions;
        config.ticketer = ticketer;
        Ok(config)
    }

    /// The cache and ticketer of the hostnames that ask for certificates.
    fn asking(&self) -> Result<Resumption, rustls::Error> {
        if let Some(made) = self.asking.get() {
            return Ok(made.clone());
        }
        // Two builds racing: the first set wins, both use it.
        let _ = self.asking.set(resumption()?);
        self.asking.get().cloned().ok_or(rustls::Error::General(
            "no session cache for client certificates".into(),
        ))
    }
}

/// A ticketer and a session cache.
fn resumption() -> Result<Resumption, rustls::Error> {
    Ok((
        ring_provider::Ticketer::new()?,
        ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES),
    ))
}

/// The HTTPS listener's TLS server, shared by all its connections: the
/// certificate files' configuration, and the custom hostnames' ones of the
/// configuration in force.
#[derive(Clone)]
pub struct ServerTls {
    inner: Arc<Inner>,
}

struct Inner {
    common: Common,
    /// The certificate files' configuration: every handshake when the
    /// configuration has no custom hostname, else the ones no hostname takes.
    files: TlsAcceptor,
    files_config: Arc<ServerConfig>,
    resolver: Arc<CertResolver>,
    /// Where the custom hostnames come from (none: files only).
    source: Option<Arc<SharedConfig>>,
    hostnames: ArcSwap<Served>,
    /// Held while the hostnames are rebuilt, so concurrent handshakes after a
    /// new revision build them once (the others wait for that build).
    rebuilding: Mutex<()>,
}

/// The hostnames' configurations and the compiled configuration they are
/// for.
struct Served {
    /// Compared by address: a new configuration is a new allocation, and the
    /// `Weak` keeps this one's address from being reused.
    from: Weak<CompiledConfig>,
    configs: Arc<HostnameConfigs>,
}

/// A handshake that finished: the TLS stream and whether the session was
/// resumed.
pub struct Handshaken<S> {
    /// The stream the connection pump reads and writes.
    pub stream: TlsStream<Peeked<S>>,
    /// Resumed from a ticket or the session cache.
    pub resumed: bool,
    /// The certificate chain the client sent (hostnames that negotiate client
    /// certificates only), or the one of the session it resumed.
    pub client_certificate: Option<Arc<ClientCertificate>>,
}

impl ServerTls {
    /// A server serving `certs` (the first is the default for clients without
    /// SNI or with a name no certificate has), and the custom hostnames of the
    /// configuration in `source`, from the next handshake after it changes.
    pub fn new(
        certs: &[ServedCert],
        source: Option<Arc<SharedConfig>>,
    ) -> Result<Self, ServerTlsError> {
        // Without files, every certificate comes from the configuration's
        // custom hostnames (a handshake no hostname takes fails); with neither
        // there is nothing to serve.
        if certs.is_empty() && source.is_none() {
            return Err(ServerTlsError::NoCertificate);
        }
        let common = Common::new()?;
        let resolver = Arc::new(CertResolver::new(CertSet::new(certs)));
        let files_config = Arc::new(common.config(
            common.provider.clone(),
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            None,
            resolver.clone(),
        )?);
        let tls = ServerTls {
            inner: Arc::new(Inner {
                common,
                files: TlsAcceptor::from(files_config.clone()),
                files_config,
                resolver,
                source,
                hostnames: ArcSwap::from_pointee(Served {
                    from: Weak::new(),
                    configs: Arc::default(),
                }),
                rebuilding: Mutex::new(()),
            }),
        };
        tls.refresh();
        Ok(tls)
    }

    /// The certificate files' resolver: [`CertResolver::replace`] serves a new
    /// set from the next handshake on, without touching open connections.
    pub fn resolver(&self) -> &Arc<CertResolver> {
        &self.inner.resolver
    }

    /// The custom hostnames' configurations in force (the same `Arc` until
    /// hostnames, their certificates or the CAs hinted change).
    pub fn hostname_configs(&self) -> Arc<HostnameConfigs> {
        self.inner.hostnames.load().configs.clone()
    }

    /// Whether the custom hostnames are the ones of the configuration in force.
    fn is_current(&self) -> bool {
        let inner = &*self.inner;
        let Some(source) = &inner.source else {
            return true;
        };
        match source.current() {
            None => true,
            Some(current) => inner.hostnames.load().from.as_ptr() == Arc::as_ptr(&current),
        }
    }

    /// Brings the custom hostnames in line with the configuration in force:
    /// nothing when it is the one they were made for, a pointer swap when a
    /// new revision left hostnames, certificates and CAs as they were, else a
    /// rebuild. Cheap when nothing changed: every handshake calls it.
    pub fn refresh(&self) {
        if self.is_current() {
            return;
        }
        let inner = &*self.inner;
        let Some(current) = inner.source.as_ref().and_then(|s| s.current()) else {
            return;
        };
        // A handshake that comes while the follower builds waits for it (a
        // few milliseconds, once per change), so it gets the new set.
        let _building = inner.rebuilding.lock().unwrap_or_else(|e| e.into_inner());
        let served = inner.hostnames.load_full();
        if served.from.as_ptr() == Arc::as_ptr(&current) {
            return;
        }
        let configs = if served.configs.same_source(current.snapshot()) {
            served.configs.clone()
        } else {
            let built = HostnameConfigs::build(current.snapshot(), &inner.common);
            tracing::info!(
                revision = current.revision(),
                hostnames = current.snapshot().hostnames.len(),
                "serving the configuration's custom hostnames"
            );
            Arc::new(built)
        };
        inner.hostnames.store(Arc::new(Served {
            from: Arc::downgrade(&current),
            configs,
        }));
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
                let conn = stream.get_ref().1;
                let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
                let client_certificate = conn.peer_certificates().and_then(client_certificate);
                Ok(Handshaken {
                    stream,
                    resumed,
                    client_certificate,
                })
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
        let tcp = Peeked::new(first[0], tcp);
        self.refresh();
        let hostnames = self.inner.hostnames.load().configs.clone();
        if hostnames.is_empty() {
            // No custom hostname: the files' configuration, without reading
            // the ClientHello first (the cost measured in BENCHMARKS.md).
            return self.inner.files.accept(tcp).await.map_err(|e| failure(&e));
        }
        let start = LazyConfigAcceptor::new(Acceptor::default(), tcp)
            .await
            .map_err(|e| failure(&e))?;
        let config = hostnames
            .choose(start.client_hello().server_name())
            .unwrap_or(&self.inner.files_config)
            .clone();
        start.into_stream(config).await.map_err(|e| failure(&e))
    }
}

/// The client's certificate as policies read it; a chain that does not parse
/// is as good as none (logged: the handshake's signature check passed, so the
/// client holds its key, but nothing can be read from it).
fn client_certificate(
    chain: &[rustls_pki_types::CertificateDer<'static>],
) -> Option<Arc<ClientCertificate>> {
    if chain.is_empty() {
        return None;
    }
    match ClientCertificate::from_der_chain(chain.iter().map(|c| c.to_vec()).collect()) {
        Ok(cert) => Some(Arc::new(cert)),
        Err(e) => {
            tracing::debug!(error = %e, "client certificate unreadable; treated as none");
            None
        }
    }
}

/// Keeps the custom hostnames in line with the configuration in force every
/// `every` until `stop`, so a new revision's are built (and their problems
/// logged) off the async threads, without waiting for a handshake to do it.
pub async fn follow_config<R: Runtime>(rt: R, tls: ServerTls, every: Duration, stop: Stop) {
    loop {
        if !tls.is_current() {
            let tls = tls.clone();
            if let Err(e) = rt.blocking(move || tls.refresh()).await {
                tracing::warn!(error = %e, "building the custom hostnames' TLS configurations failed");
            }
        }
        if until_stopped(&stop, crate::runtime::sleep(&rt, every))
            .await
            .is_none()
        {
            return;
        }
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
