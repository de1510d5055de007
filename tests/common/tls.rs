//! TLS helpers for the HTTPS listener's tests: a private CA that signs
//! certificates written to PEM files (what `--tls-cert`/`--tls-key` take), and
//! a rustls client that trusts it and tells what the handshake was.

use std::path::Path;
use std::sync::Arc;

use portcullis_driver::options::CertificateFiles;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, HandshakeKind, ProtocolVersion, RootCertStore,
    SignatureScheme,
};
use tokio_rustls::TlsConnector;

use super::within;

/// A CA that signs server certificates into PEM files.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (DER), for clients' trust stores.
    pub der: CertificateDer<'static>,
    /// The CA certificate (PEM).
    pub pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("ca cert");
        TestCa {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `names` (DNS names or IP addresses) written to
    /// `dir/{file}.crt` and `dir/{file}.key`; returns the files and the leaf's DER.
    pub fn issue(
        &self,
        dir: &Path,
        file: &str,
        names: &[&str],
    ) -> (CertificateFiles, CertificateDer<'static>) {
        let key = KeyPair::generate().expect("leaf key");
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        let files = CertificateFiles {
            cert: dir.join(format!("{file}.crt")),
            key: dir.join(format!("{file}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write cert");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        (files, cert.der().clone())
    }

    /// A client configuration trusting this CA only, with `versions`.
    pub fn client(&self, versions: &[&'static rustls::SupportedProtocolVersion]) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).expect("trust the CA");
        let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Each configuration keeps its own sessions, so a test sees resumption
        // only from its own earlier connections.
        config.resumption = Resumption::in_memory_sessions(64);
        config
    }
}

/// A client configuration trusting the PEM CA certificates in `ca_file` only.
pub fn client_trusting(ca_file: &Path) -> ClientConfig {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).expect("read the CA file") {
        roots
            .add(cert.expect("a PEM certificate"))
            .expect("trust it");
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// A client configuration that accepts any certificate, to see which one the
/// server chose for a name the certificate may not even have.
pub fn any_cert_client() -> ClientConfig {
    let provider = Arc::new(ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// A server certificate verifier that takes any certificate but checks the
/// handshake signature with this provider's algorithms.
#[derive(Debug)]
pub struct AcceptAny(pub Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What an HTTPS exchange showed.
#[derive(Debug)]
pub struct HttpsAnswer {
    pub status: u16,
    /// The response head, lowercased names: `name: value` lines.
    pub head: String,
    pub body: String,
    /// The handshake was resumed.
    pub resumed: bool,
    /// The leaf certificate the server presented.
    pub leaf: CertificateDer<'static>,
    pub version: ProtocolVersion,
    pub alpn: Option<Vec<u8>>,
}

impl HttpsAnswer {
    /// The value of response header `name`.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Sends `GET path` (with `Connection: close`) over TLS to `addr`, naming
/// `server_name` (a DNS name is sent as SNI; an IP address sends none), and
/// reads the whole answer.
pub async fn https_get(
    addr: std::net::SocketAddr,
    config: &Arc<ClientConfig>,
    server_name: &str,
    path: &str,
) -> HttpsAnswer {
    let tcp = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect to the HTTPS port");
    let name = ServerName::try_from(server_name.to_owned()).expect("server name");
    let mut tls = within(
        "TLS handshake",
        TlsConnector::from(config.clone()).connect(name, tcp),
    )
    .await
    .expect("TLS handshake");
    let (resumed, leaf, version, alpn) = {
        let conn = tls.get_ref().1;
        (
            conn.handshake_kind() == Some(HandshakeKind::Resumed),
            conn.peer_certificates().expect("a certificate")[0].clone(),
            conn.protocol_version().expect("a version"),
            conn.alpn_protocol().map(<[u8]>::to_vec),
        )
    };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n");
    within("write request", tls.write_all(request.as_bytes()))
        .await
        .expect("write the request");
    let mut raw = Vec::new();
    // The gateway ends with close_notify: a cut connection would be an error.
    within("read answer", tls.read_to_end(&mut raw))
        .await
        .expect("the answer, then close_notify");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    HttpsAnswer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
        resumed,
        leaf,
        version,
        alpn,
    }
}

/// Whether the gateway turns down a handshake for `name` with `config`: at
/// the handshake, or (TLS 1.3, where the client finishes first) on the first
/// read of `GET path`, which a served handshake answers 200.
pub async fn refused(
    https: std::net::SocketAddr,
    config: &Arc<ClientConfig>,
    name: &str,
    path: &str,
) -> bool {
    let tcp = TcpStream::connect(https).await.unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let connect = TlsConnector::from(config.clone()).connect(name, tcp);
    match within("the handshake ends", connect).await {
        Err(_) => true,
        Ok(mut tls) => {
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            if tls.write_all(request.as_bytes()).await.is_err() {
                return true;
            }
            let mut out = Vec::new();
            within("the answer", tls.read_to_end(&mut out))
                .await
                .is_err()
                || !out.starts_with(b"HTTP/1.1 200 ")
        }
    }
}

/// Waits until the gateway's metric line `series` shows `want` (a failed
/// handshake is counted just after its connection closes, so the client may
/// see the close first).
pub async fn wait_metric(gw: &super::TestGateway, series: &str, want: u64) {
    let mut last = None;
    let reached = tokio::time::timeout(super::WAIT, async {
        loop {
            let text = super::fetch(gw.ops_addr, "/metrics").await.body_str();
            last = text
                .lines()
                .find_map(|l| l.strip_prefix(series)?.trim().parse::<u64>().ok());
            if last == Some(want) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(reached.is_ok(), "{series} is {last:?}, not {want}");
}
