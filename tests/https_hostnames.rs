//! The configuration's custom hostnames on the HTTPS listener, on both
//! runtimes, over real sockets: the certificate by SNI (exact, wildcard, the
//! default binding, else the certificate files), each hostname's lowest
//! version, cipher suites and client certificate negotiation, a reload of the
//! configuration file swapping them for the next handshake, and resumption
//! with a configuration per hostname.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::policy_docs::{inbound, papi};
use common::tls::{any_cert_client, https_get, refused, wait_metric, AcceptAny, TestCa};
use common::*;
use portcullis_core::cert::ClientCertificate;
use portcullis_core::config::reload::compile_json;
use portcullis_driver::options::{CertificateFiles, HttpsOptions};
use portcullis_driver::stop::Stop;
use portcullis_driver::tls_server::{load_certificates, ServerTls};
use portcullis_driver::SharedConfig;
use portcullis_runtime_tokio::TokioRuntime;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, ResolvesClientCert, Resumption,
    Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::version::{TLS12, TLS13};
use tokio_rustls::rustls::{
    self, CipherSuite, ClientConfig, NamedGroup, ProtocolVersion, SignatureScheme,
};
use tokio_rustls::TlsConnector;

/// A certificate issued by the test CA, as files (for `--tls-cert`) and as
/// the configuration's PEM.
struct Issued {
    id: String,
    der: CertificateDer<'static>,
    files: CertificateFiles,
    cert_pem: String,
    key_pem: String,
}

fn issue(ca: &TestCa, dir: &Path, id: &str, names: &[&str]) -> Issued {
    let (files, der) = ca.issue(dir, id, names);
    Issued {
        id: id.to_owned(),
        der,
        cert_pem: std::fs::read_to_string(&files.cert).unwrap(),
        key_pem: std::fs::read_to_string(&files.key).unwrap(),
        files,
    }
}

impl Issued {
    /// The configuration's `certificates` entry.
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "certificatePem": self.cert_pem,
            "privateKeyPem": self.key_pem,
        })
    }

    /// The chain and key, for a client presenting it.
    fn certified_key(&self) -> Arc<CertifiedKey> {
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
        let provider = ring::default_provider();
        Arc::new(CertifiedKey::from_der(vec![self.der.clone()], key, &provider).unwrap())
    }
}

/// A custom hostname served with certificate `cert`, with `extra` settings.
fn hostname(name: &str, cert: &str, extra: Value) -> Value {
    let mut h = json!({ "hostname": name, "certificateId": cert });
    if let (Some(h), Value::Object(extra)) = (h.as_object_mut(), extra) {
        h.extend(extra);
    }
    h
}

/// The usual configuration at `revision`, with certificates and hostnames.
fn doc(backend: SocketAddr, revision: u64, certs: &[&Issued], hostnames: Vec<Value>) -> Value {
    let mut doc = config(
        revision,
        vec![api("api", "api", &format!("http://{backend}"))],
    );
    doc["certificates"] = certs.iter().map(|c| c.json()).collect();
    doc["hostnames"] = Value::Array(hostnames);
    doc
}

/// A gateway serving `doc` with `file` as its certificate file.
async fn gateway(rt: Runtime, doc: &Value, file: &Issued) -> (TestGateway, SocketAddr) {
    let gw = TestGateway::start_with(rt, doc, |o| {
        o.https = Some(HttpsOptions {
            listen: any_port(),
            ..HttpsOptions::new(vec![file.files.clone()])
        });
        o.reload_interval = Duration::from_millis(50);
    })
    .await;
    let https = gw.gateway.https_addr().expect("an HTTPS listener");
    (gw, https)
}

/// Rewrites the gateway's configuration file and waits for `revision` in force.
async fn reload(gw: &TestGateway, doc: &Value, revision: u64) {
    write_atomically(&gw.config_path, &serde_json::to_vec_pretty(doc).unwrap());
    within("the new revision is in force", async {
        while gw.gateway.revision() != Some(revision) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Presents `key` (or nothing) when the server asks, and counts the asks.
#[derive(Debug, Default)]
struct Presenter {
    key: Option<Arc<CertifiedKey>>,
    asked: AtomicUsize,
    /// The CA names the last request hinted.
    hints: Mutex<Vec<Vec<u8>>>,
}

impl Presenter {
    fn new(key: Option<Arc<CertifiedKey>>) -> Arc<Presenter> {
        Arc::new(Presenter {
            key,
            ..Presenter::default()
        })
    }

    fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }
}

impl ResolvesClientCert for Presenter {
    fn resolve(&self, hints: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        *self.hints.lock().unwrap() = hints.iter().map(|h| h.to_vec()).collect();
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A client trusting `ca`, with `versions`, only `suites` (all when empty),
/// presenting what `presenter` has.
fn client(
    ca: &TestCa,
    versions: &[&'static rustls::SupportedProtocolVersion],
    suites: &[CipherSuite],
    presenter: &Arc<Presenter>,
) -> Arc<ClientConfig> {
    let mut provider = ring::default_provider();
    if !suites.is_empty() {
        provider
            .cipher_suites
            .retain(|s| suites.contains(&s.suite()));
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(presenter.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = Resumption::in_memory_sessions(64);
    Arc::new(config)
}

#[runtimes]
async fn sni_picks_the_exact_then_the_wildcard_hostname_then_the_default_binding(rt: Runtime) {
    let backend = Backend::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let file = issue(&ca, dir.path(), "file", &["localhost"]);
    let exact = issue(&ca, dir.path(), "exact", &["api.example.com"]);
    let wild = issue(&ca, dir.path(), "wild", &["*.example.com"]);
    let fallback = issue(&ca, dir.path(), "fallback", &["default.test"]);
    let mut broken = issue(&ca, dir.path(), "broken", &["broken.test"]);
    broken.key_pem = fallback.key_pem.clone();
    let hostnames = vec![
        hostname("api.example.com", "exact", json!({})),
        hostname("*.example.com", "wild", json!({})),
        hostname("default.test", "fallback", json!({})),
        // Not served, and the others still are: a key of another
        // certificate. (A certificate the configuration lacks is refused
        // when the configuration loads.)
        hostname("broken.test", "broken", json!({})),
    ];
    let certs = [&exact, &wild, &fallback, &broken];
    let (gw, https) = gateway(rt, &doc(backend.addr, 1, &certs, hostnames.clone()), &file).await;
    // A fresh client each time: a resumed session would show the certificate
    // of the session it resumes.
    let any = || Arc::new(any_cert_client());
    // Without a default binding, a name no hostname has gets the files'.
    for (name, want) in [
        ("api.example.com", &exact),
        ("WEB.example.com", &wild),
        ("a.b.example.com", &file),
        ("default.test", &fallback),
        ("broken.test", &file),
        ("unknown.test", &file),
        ("127.0.0.1", &file),
    ] {
        let r = https_get(https, &any(), name, "/api/x").await;
        assert_eq!(r.status, 200, "{name}");
        assert!(
            r.leaf == want.der,
            "{name} got another certificate than {}",
            want.id
        );
    }

    // With one, it is served to every name no hostname has, and to clients
    // without SNI.
    let mut bound = hostnames.clone();
    bound[2] = hostname(
        "default.test",
        "fallback",
        json!({ "defaultSslBinding": true }),
    );
    reload(&gw, &doc(backend.addr, 2, &certs, bound), 2).await;
    for (name, want) in [
        ("api.example.com", &exact),
        ("web.example.com", &wild),
        ("a.b.example.com", &fallback),
        ("unknown.test", &fallback),
        ("127.0.0.1", &fallback),
        ("localhost", &fallback),
    ] {
        let r = https_get(https, &any(), name, "/api/x").await;
        assert_eq!(r.status, 200, "{name}");
        assert!(
            r.leaf == want.der,
            "{name} got another certificate than {}",
            want.id
        );
    }
    // And the chosen ones verify for their names.
    let trusting = Arc::new(ca.client(&[&TLS13, &TLS12]));
    for name in ["api.example.com", "web.example.com", "default.test"] {
        assert_eq!(
            https_get(https, &trusting, name, "/api/x").await.status,
            200
        );
    }

    // Without hostnames, the files serve every name again.
    reload(&gw, &doc(backend.addr, 3, &certs, vec![]), 3).await;
    let r = https_get(https, &any(), "api.example.com", "/api/x").await;
    assert!(r.leaf == file.der, "the files serve again");
    gw.stop().await;
}

#[runtimes]
async fn a_hostname_refuses_versions_and_suites_it_does_not_allow(rt: Runtime) {
    let backend = Backend::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let file = issue(&ca, dir.path(), "file", &["localhost"]);
    let modern = issue(
        &ca,
        dir.path(),
        "modern",
        &[
            "modern.example.com",
            "open.example.com",
            "narrow.example.com",
        ],
    );
    let hostnames = vec![
        hostname(
            "modern.example.com",
            "modern",
            json!({ "minTlsVersion": "1.3" }),
        ),
        hostname(
            "open.example.com",
            "modern",
            json!({ "minTlsVersion": "1.2" }),
        ),
        hostname(
            "narrow.example.com",
            "modern",
            json!({ "cipherSuites": ["tls_ecdhe_ecdsa_with_aes_256_gcm_sha384"] }),
        ),
    ];
    let (gw, https) = gateway(rt, &doc(backend.addr, 1, &[&modern], hostnames), &file).await;
    let none = Presenter::new(None);
    let tls12 = client(&ca, &[&TLS12], &[], &none);
    let tls13 = client(&ca, &[&TLS13], &[], &none);

    // Lowest version 1.3: a TLS 1.2 client is refused, a 1.3 one served.
    assert!(refused(https, &tls12, "modern.example.com", "/api/x").await);
    let r = https_get(https, &tls13, "modern.example.com", "/api/x").await;
    assert_eq!((r.status, r.version), (200, ProtocolVersion::TLSv1_3));
    // The same certificate under another hostname takes 1.2.
    let r = https_get(https, &tls12, "open.example.com", "/api/x").await;
    assert_eq!((r.status, r.version), (200, ProtocolVersion::TLSv1_2));

    // Suites: only the allowed one (a TLS 1.2 suite, so TLS 1.3 is off too).
    let other = client(
        &ca,
        &[&TLS12],
        &[CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256],
        &none,
    );
    assert!(refused(https, &other, "narrow.example.com", "/api/x").await);
    assert!(refused(https, &tls13, "narrow.example.com", "/api/x").await);
    let allowed = client(
        &ca,
        &[&TLS12, &TLS13],
        &[CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384],
        &none,
    );
    let r = https_get(https, &allowed, "narrow.example.com", "/api/x").await;
    assert_eq!((r.status, r.version), (200, ProtocolVersion::TLSv1_2));
    // The client offering only the other suite is served where all are allowed.
    let r = https_get(https, &other, "open.example.com", "/api/x").await;
    assert_eq!(r.status, 200);
    assert_eq!(none.asked(), 0, "no hostname here asks for a certificate");
    gw.stop().await;
}

#[runtimes]
async fn only_hostnames_that_negotiate_ask_for_a_client_certificate(rt: Runtime) {
    let backend = Backend::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let file = issue(&ca, dir.path(), "file", &["localhost"]);
    let site = issue(
        &ca,
        dir.path(),
        "site",
        &["mtls.example.com", "plain.example.com"],
    );
    // A client certificate from another CA: the handshake takes any chain.
    let other_ca = TestCa::new();
    let client_cert = issue(&other_ca, dir.path(), "client", &["client.test"]);
    let hostnames = vec![
        hostname(
            "mtls.example.com",
            "site",
            json!({ "negotiateClientCertificate": true }),
        ),
        hostname("plain.example.com", "site", json!({})),
    ];
    let mut config = doc(backend.addr, 1, &[&site], hostnames);
    config["caCertificates"] = json!([{ "id": "trusted", "certificatePem": ca.pem }]);
    let (gw, https) = gateway(rt, &config, &file).await;

    for versions in [&[&TLS13][..], &[&TLS12][..]] {
        let presenting = Presenter::new(Some(client_cert.certified_key()));
        let with_cert = client(&ca, versions, &[], &presenting);
        let r = https_get(https, &with_cert, "mtls.example.com", "/api/x").await;
        assert_eq!(r.status, 200, "{versions:?}");
        assert_eq!(presenting.asked(), 1, "{versions:?}: asked once");
        {
            // The CA's subject, as a DER Name (a SEQUENCE).
            let hints = presenting.hints.lock().unwrap();
            assert_eq!(
                hints.len(),
                1,
                "{versions:?}: the configuration's CA is hinted"
            );
            assert_eq!(hints[0][0], 0x30, "{versions:?}");
            assert!(
                hints[0].windows(22).any(|w| w == b"rcgen self signed cert"),
                "{versions:?}: {:?}",
                hints[0]
            );
        }
        // A client without a certificate proceeds too.
        let empty = Presenter::new(None);
        let without = client(&ca, versions, &[], &empty);
        let r = https_get(https, &without, "mtls.example.com", "/api/x").await;
        assert_eq!(r.status, 200, "{versions:?}");
        assert_eq!(empty.asked(), 1, "{versions:?}");
        // A hostname without negotiation never asks, nor do the files.
        let quiet = Presenter::new(Some(client_cert.certified_key()));
        let other = client(&ca, versions, &[], &quiet);
        let r = https_get(https, &other, "plain.example.com", "/api/x").await;
        assert_eq!(r.status, 200, "{versions:?}");
        let r = https_get(https, &other, "localhost", "/api/x").await;
        assert_eq!(r.status, 200, "{versions:?}");
        assert_eq!(quiet.asked(), 0, "{versions:?}: never asked");
    }
    assert_eq!(backend.requests().len(), 8);
    gw.stop().await;
}

#[runtimes]
async fn a_reloaded_configuration_swaps_certificates_for_the_next_handshake(rt: Runtime) {
    let backend = Backend::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let file = issue(&ca, dir.path(), "file", &["localhost"]);
    let first = issue(&ca, dir.path(), "first", &["api.example.com"]);
    let second = issue(&ca, dir.path(), "second", &["api.example.com"]);
    let hostnames = vec![hostname("api.example.com", "site", json!({}))];
    let as_site = |c: &Issued| Issued {
        id: "site".into(),
        der: c.der.clone(),
        files: c.files.clone(),
        cert_pem: c.cert_pem.clone(),
        key_pem: c.key_pem.clone(),
    };
    let (site1, site2) = (as_site(&first), as_site(&second));
    let (gw, https) = gateway(
        rt,
        &doc(backend.addr, 1, &[&site1], hostnames.clone()),
        &file,
    )
    .await;
    let trusting = Arc::new(ca.client(&[&TLS13, &TLS12]));
    let tcp = TcpStream::connect(https).await.unwrap();
    let mut open = TlsConnector::from(trusting.clone())
        .connect("api.example.com".try_into().unwrap(), tcp)
        .await
        .unwrap();
    assert!(open.get_ref().1.peer_certificates().unwrap()[0] == first.der);
    let built = server_tls_configs(&gw);

    // A revision that changes no hostname, certificate or CA builds nothing.
    let mut unrelated = doc(backend.addr, 2, &[&site1], hostnames.clone());
    unrelated["apis"][0]["displayName"] = json!("renamed");
    reload(&gw, &unrelated, 2).await;
    let r = https_get(
        https,
        &Arc::new(any_cert_client()),
        "api.example.com",
        "/api/x",
    )
    .await;
    assert!(r.leaf == first.der);
    assert!(
        Arc::ptr_eq(&built, &server_tls_configs(&gw)),
        "the hostnames' configurations were rebuilt for an unrelated revision"
    );

    // A new certificate is served from the next handshake on.
    reload(&gw, &doc(backend.addr, 3, &[&site2], hostnames), 3).await;
    let r = https_get(
        https,
        &Arc::new(any_cert_client()),
        "api.example.com",
        "/api/x",
    )
    .await;
    assert!(r.leaf == second.der, "the new certificate is served");
    // The connection opened before keeps working, keep-alive.
    for path in ["/api/one", "/api/two"] {
        open.write_all(get(path).as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = within("answer on the open connection", open.read(&mut buf))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    }
    drop(open);
    gw.stop().await;
}

/// The hostnames' configurations the gateway's HTTPS listener serves.
fn server_tls_configs(gw: &TestGateway) -> Arc<portcullis_driver::tls_server::HostnameConfigs> {
    match &gw.gateway {
        Gateway::Tokio(g) => g.server_tls().unwrap().hostname_configs(),
        Gateway::Smol(g) => g.server_tls().unwrap().hostname_configs(),
    }
}

#[runtimes]
async fn sessions_resume_per_hostname_and_never_across_hostnames(rt: Runtime) {
    let backend = Backend::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let file = issue(&ca, dir.path(), "file", &["localhost"]);
    let mtls = issue(&ca, dir.path(), "mtls", &["mtls.example.com"]);
    let plain = issue(&ca, dir.path(), "plain", &["plain.example.com"]);
    let hostnames = vec![
        hostname(
            "mtls.example.com",
            "mtls",
            json!({ "negotiateClientCertificate": true }),
        ),
        hostname("plain.example.com", "plain", json!({})),
    ];
    let (gw, https) = gateway(
        rt,
        &doc(backend.addr, 1, &[&mtls, &plain], hostnames),
        &file,
    )
    .await;
    let client_cert = issue(&ca, dir.path(), "client", &["client.test"]);
    for versions in [&[&TLS13][..], &[&TLS12][..]] {
        // Each hostname resumes its own sessions (and the files theirs).
        for name in ["mtls.example.com", "plain.example.com", "localhost"] {
            let presenter = Presenter::new(Some(client_cert.certified_key()));
            let config = client(&ca, versions, &[], &presenter);
            let first = https_get(https, &config, name, "/api/a").await;
            assert!(
                !first.resumed,
                "{name} {versions:?}: a full handshake first"
            );
            let second = https_get(https, &config, name, "/api/b").await;
            assert_eq!(second.status, 200);
            assert!(second.resumed, "{name} {versions:?}: the second resumes");
        }
        // A session of the hostname that asked for a certificate, offered
        // for the one that does not: a full handshake with the other's
        // certificate, not the first's settings.
        let presenter = Presenter::new(Some(client_cert.certified_key()));
        let sharing = sharing_client(versions, &presenter);
        let first = https_get(https, &sharing, "mtls.example.com", "/api/a").await;
        assert!(first.leaf == mtls.der && !first.resumed);
        let again = https_get(https, &sharing, "mtls.example.com", "/api/b").await;
        assert!(again.resumed, "{versions:?}: the store offers its session");
        let other = https_get(https, &sharing, "plain.example.com", "/api/c").await;
        assert_eq!(other.status, 200);
        assert!(
            !other.resumed,
            "{versions:?}: resumed under another hostname"
        );
        assert!(other.leaf == plain.der, "{versions:?}");
        assert_eq!(
            presenter.asked(),
            1,
            "{versions:?}: asked on the first handshake only"
        );
    }
    gw.stop().await;
}

/// A client that accepts any server certificate and offers its last session
/// whatever name it connects to, to try a session on another hostname.
fn sharing_client(
    versions: &[&'static rustls::SupportedProtocolVersion],
    presenter: &Arc<Presenter>,
) -> Arc<ClientConfig> {
    let provider = Arc::new(ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_client_cert_resolver(presenter.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = Resumption::store(Arc::new(OneName(ClientSessionMemoryCache::new(64))));
    Arc::new(config)
}

/// A session store that files every session under one name.
#[derive(Debug)]
struct OneName(ClientSessionMemoryCache);

fn one_name() -> ServerName<'static> {
    ServerName::try_from("shared.test").unwrap()
}

impl ClientSessionStore for OneName {
    fn set_kx_hint(&self, _: ServerName<'static>, group: NamedGroup) {
        self.0.set_kx_hint(one_name(), group);
    }

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        self.0.kx_hint(&one_name())
    }

    fn set_tls12_session(&self, _: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.0.set_tls12_session(one_name(), value);
    }

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.0.tls12_session(&one_name())
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {
        self.0.remove_tls12_session(&one_name());
    }

    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.0.insert_tls13_ticket(one_name(), value);
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.0.take_tls13_ticket(&one_name())
    }
}

/// The driver's TLS server alone, on tokio, with the configuration `doc` and
/// certificate file `file`: each accepted connection's handshake result is
/// sent on the channel.
async fn bare_server(
    doc: &Value,
    file: &Issued,
) -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Option<Arc<ClientCertificate>>>,
    Stop,
) {
    use portcullis_driver::{Listener, Runtime as _};
    let rt = TokioRuntime;
    let compiled = compile_json(&serde_json::to_vec(doc).unwrap()).unwrap();
    let source = Arc::new(SharedConfig::new(Some(compiled)));
    let certs = load_certificates(std::slice::from_ref(&file.files)).unwrap();
    let tls = ServerTls::new(&certs, Some(source)).unwrap();
    let listener = rt.bind(any_port()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = Stop::new();
    let stopping = stop.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let deadline = rt.now() + Duration::from_secs(10);
            match tls.handshake(&rt, stream, deadline, &stopping).await {
                Ok(mut done) => {
                    let _ = tx.send(done.client_certificate.take());
                    // Answers one request so the client sees a finished exchange.
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 4096];
                        let _ = smol::io::AsyncReadExt::read(&mut done.stream, &mut buf).await;
                        let answer =
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                        let _ = smol::io::AsyncWriteExt::write_all(&mut done.stream, answer).await;
                        let _ = smol::io::AsyncWriteExt::close(&mut done.stream).await;
                    });
                }
                Err(_) => {
                    let _ = tx.send(None);
                }
            }
        }
    });
    (addr, rx, stop)
}

#[tokio::test]
async fn the_handshake_hands_over_the_client_certificate_and_a_resumed_session_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let file = issue(&ca, dir.path(), "file", &["localhost"]);
    let site = issue(
        &ca,
        dir.path(),
        "site",
        &["mtls.example.com", "plain.example.com"],
    );
    let client_cert = issue(&TestCa::new(), dir.path(), "client", &["client.test"]);
    let hostnames = vec![
        hostname(
            "mtls.example.com",
            "site",
            json!({ "negotiateClientCertificate": true }),
        ),
        hostname("plain.example.com", "site", json!({})),
    ];
    let doc = doc(
        SocketAddr::from(([127, 0, 0, 1], 9)),
        1,
        &[&site],
        hostnames,
    );
    let (addr, mut handshakes, stop) = bare_server(&doc, &file).await;
    let want = ClientCertificate::from_der_chain(vec![client_cert.der.to_vec()]).unwrap();
    for versions in [&[&TLS13][..], &[&TLS12][..]] {
        let presenter = Presenter::new(Some(client_cert.certified_key()));
        let config = client(&ca, versions, &[], &presenter);
        for (name, resumed, sent) in [
            ("mtls.example.com", false, true),
            // The resumed session carries the certificate of the full one.
            ("mtls.example.com", true, true),
            ("plain.example.com", false, false),
        ] {
            let r = https_get(addr, &config, name, "/").await;
            assert_eq!((r.status, r.resumed), (200, resumed), "{name} {versions:?}");
            let got = within("the handshake", handshakes.recv()).await.unwrap();
            match sent {
                true => assert_eq!(got.as_deref(), Some(&want), "{name} {versions:?}"),
                false => assert!(got.is_none(), "{name} {versions:?}"),
            }
        }
        // A client with none: none.
        let empty = Presenter::new(None);
        let r = https_get(
            addr,
            &client(&ca, versions, &[], &empty),
            "mtls.example.com",
            "/",
        )
        .await;
        assert_eq!(r.status, 200);
        let got = within("the handshake", handshakes.recv()).await.unwrap();
        assert!(got.is_none(), "{versions:?}");
    }
    stop.cancel();
}

#[runtimes]
async fn with_hostnames_plain_http_gets_its_400_and_stalled_hellos_their_deadline(rt: Runtime) {
    let backend = Backend::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let file = issue(&ca, dir.path(), "file", &["localhost"]);
    let site = issue(&ca, dir.path(), "site", &["api.example.com"]);
    let hostnames = vec![hostname(
        "api.example.com",
        "site",
        json!({ "minTlsVersion": "1.3" }),
    )];
    let doc = doc(backend.addr, 1, &[&site], hostnames);
    let gw = TestGateway::start_with(rt, &doc, |o| {
        o.https = Some(HttpsOptions {
            listen: any_port(),
            ..HttpsOptions::new(vec![file.files.clone()])
        });
        o.timeouts.header_read = Duration::from_secs(1);
    })
    .await;
    let https = gw.gateway.https_addr().unwrap();
    // Plain HTTP: the 400 that says why.
    let mut plain = TcpStream::connect(https).await.unwrap();
    plain.write_all(get("/api/x").as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = within("the 400", plain.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    // A ClientHello that never completes: closed at the header timeout,
    // while others are served meanwhile.
    let mut stalled = TcpStream::connect(https).await.unwrap();
    stalled.write_all(&[0x16, 3, 1, 0, 200, 1]).await.unwrap();
    let none = Presenter::new(None);
    let r = https_get(
        https,
        &client(&ca, &[&TLS13], &[], &none),
        "api.example.com",
        "/api/x",
    )
    .await;
    assert_eq!(r.status, 200);
    let mut out = Vec::new();
    let _ = within("a stalled hello is closed", stalled.read_to_end(&mut out)).await;
    // A refused version is counted as incompatible.
    assert!(
        refused(
            https,
            &client(&ca, &[&TLS12], &[], &none),
            "api.example.com",
            "/api/x"
        )
        .await
    );
    for (series, want) in [
        (
            "portcullis_tls_handshake_failures_total{reason=\"not_tls\"}",
            1,
        ),
        (
            "portcullis_tls_handshake_failures_total{reason=\"timeout\"}",
            1,
        ),
        (
            "portcullis_tls_handshake_failures_total{reason=\"incompatible\"}",
            1,
        ),
        ("portcullis_tls_handshakes_total{kind=\"full\"}", 1),
    ] {
        wait_metric(&gw, series, want).await;
    }
    gw.stop().await;
}

#[runtimes]
async fn sessions_resume_across_revisions_but_not_into_client_certificate_negotiation(rt: Runtime) {
    let backend = Backend::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let file = issue(&ca, dir.path(), "file", &["localhost"]);
    let site = issue(&ca, dir.path(), "site", &["api.example.com"]);
    let client_cert = issue(&ca, dir.path(), "client", &["client.test"]);
    let plain = vec![hostname("api.example.com", "site", json!({}))];
    let asking = vec![hostname(
        "api.example.com",
        "site",
        json!({ "negotiateClientCertificate": true }),
    )];
    let (gw, https) = gateway(rt, &doc(backend.addr, 1, &[&site], plain.clone()), &file).await;
    let mut revision = 1;
    for versions in [&[&TLS13][..], &[&TLS12][..]] {
        let presenter = Presenter::new(Some(client_cert.certified_key()));
        let config = client(&ca, versions, &[], &presenter);
        let first = https_get(https, &config, "api.example.com", "/api/a").await;
        assert!(!first.resumed);
        // A revision that leaves the hostname as it was: sessions resume.
        revision += 1;
        let mut unrelated = doc(backend.addr, revision, &[&site], plain.clone());
        unrelated["apis"][0]["displayName"] = json!(format!("r{revision}"));
        reload(&gw, &unrelated, revision).await;
        let r = https_get(https, &config, "api.example.com", "/api/b").await;
        assert!(r.resumed, "{versions:?}: resumed across revisions");
        // Negotiation turned on: the session made without a certificate does
        // not resume; the client is asked.
        revision += 1;
        reload(
            &gw,
            &doc(backend.addr, revision, &[&site], asking.clone()),
            revision,
        )
        .await;
        let r = https_get(https, &config, "api.example.com", "/api/c").await;
        assert_eq!(r.status, 200);
        assert!(!r.resumed, "{versions:?}: resumed into negotiation");
        assert_eq!(presenter.asked(), 1, "{versions:?}");
        // Its new session resumes, with the certificate.
        let r = https_get(https, &config, "api.example.com", "/api/d").await;
        assert!(r.resumed, "{versions:?}");
        // Back to no negotiation for the next round.
        revision += 1;
        reload(
            &gw,
            &doc(backend.addr, revision, &[&site], plain.clone()),
            revision,
        )
        .await;
    }
    gw.stop().await;
}

#[runtimes]
async fn policies_see_the_handshakes_client_certificate(rt: Runtime) {
    let backend = Backend::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let file = issue(&ca, dir.path(), "file", &["localhost"]);
    let site = issue(
        &ca,
        dir.path(),
        "site",
        &["mtls.example.com", "plain.example.com"],
    );
    let clients = TestCa::new();
    let trusted = issue(&clients, dir.path(), "alice", &["alice.test"]);
    let stranger = issue(&TestCa::new(), dir.path(), "mallory", &["mallory.test"]);
    let c = "context.Request.Certificate";
    let policy = inbound(&format!(
        r#"<validate-client-certificate /><set-header name="x-thumbprint" exists-action="override"><value>@({c} == null ? "none" : {c}.Thumbprint)</value></set-header>"#
    ));
    let mut config = config(1, vec![papi("api", "api", backend.addr, &policy)]);
    config["certificates"] = json!([site.json()]);
    config["caCertificates"] = json!([{ "id": "clients", "certificatePem": clients.pem }]);
    config["hostnames"] = json!([
        hostname(
            "mtls.example.com",
            "site",
            json!({ "negotiateClientCertificate": true })
        ),
        hostname("plain.example.com", "site", json!({})),
    ]);
    let (gw, https) = gateway(rt, &config, &file).await;
    let thumbprint = ClientCertificate::from_der_chain(vec![trusted.der.to_vec()])
        .unwrap()
        .thumbprint;
    for versions in [&[&TLS13][..], &[&TLS12][..]] {
        let alice = Presenter::new(Some(trusted.certified_key()));
        let as_alice = client(&ca, versions, &[], &alice);
        // The certificate from the uploaded CA passes, on the full handshake
        // and on the resumed one.
        for resumed in [false, true] {
            let r = https_get(https, &as_alice, "mtls.example.com", "/api/x").await;
            assert_eq!((r.status, r.resumed), (200, resumed), "{versions:?}: {r:?}");
            let seen = backend.requests().pop().unwrap();
            assert_eq!(seen.header("x-thumbprint"), Some(thumbprint.clone()));
        }
        // Another CA's, none, or a hostname that never asked: 403.
        let mallory = Presenter::new(Some(stranger.certified_key()));
        let nobody = Presenter::new(None);
        for (presenter, name) in [
            (&mallory, "mtls.example.com"),
            (&nobody, "mtls.example.com"),
            (&alice, "plain.example.com"),
        ] {
            let config = client(&ca, versions, &[], presenter);
            let r = https_get(https, &config, name, "/api/x").await;
            assert_eq!(r.status, 403, "{versions:?} {name}: {r:?}");
        }
    }
    assert_eq!(backend.requests().len(), 4);
    gw.stop().await;
}
