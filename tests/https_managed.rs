//! TLS at the edge through a real management plane, end to end, on both
//! runtimes: a `portcullis management` process holds the certificates, CA
//! certificates, custom hostnames and backends; a connected gateway in this
//! process (HTTPS listener without certificate files) takes all of them from
//! its snapshots. Certificate swaps without dropped connections, fail static
//! from the sealed backup, client certificates against an uploaded CA and its
//! CRL, a backend behind a private CA, and `protocols`/`httpsRedirect`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../core/tests/support/client_pki.rs"]
mod client_pki;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::managed::ManagementProcess;
use common::policy_docs::{base64, inbound, unix_now};
use common::tls::{any_cert_client, https_get, refused, TestCa};
use common::*;
use portcullis_core::cert::ClientCertificate;
use portcullis_core::sync::backoff::{BackoffPolicy, Jitter};
use portcullis_core::sync::{BackupKey, SyncTiming};
use portcullis_driver::options::{BackupOptions, HttpsOptions, ManagedOptions};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::ResolvesClientCert;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::version::{TLS12, TLS13};
use tokio_rustls::rustls::{self, ClientConfig, ServerConfig, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const BACKUP_KEY: [u8; 32] = [7; 32];

// ---------------------------------------------------------------------------
// The management plane and the connected gateway
// ---------------------------------------------------------------------------

/// Quick sync for tests: long polls see a change at once; failures retry soon.
fn timing() -> SyncTiming {
    SyncTiming {
        poll_interval: Duration::from_secs(1),
        long_poll_wait: Duration::from_secs(30),
        long_poll_retry: Duration::from_secs(600),
        request_timeout: Duration::from_secs(2),
        heartbeat_interval: Duration::from_millis(500),
        backoff: BackoffPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(300),
            jitter: Jitter::Equal,
        },
    }
}

/// A connected gateway in this process with an HTTPS listener that has no
/// certificate files: every certificate comes from the snapshot's hostnames.
struct Edge {
    gateway: Gateway,
    http: SocketAddr,
    https: SocketAddr,
}

impl Edge {
    async fn start(rt: Runtime, url: &str, token: &str, backup: Option<&Path>) -> Edge {
        let mut managed = ManagedOptions::new(url, token);
        managed.instance_id = "edge-test".into();
        managed.hostname = "test-host".into();
        managed.timing = timing();
        managed.backup = backup.map(|dir| BackupOptions {
            dir: dir.to_owned(),
            key: BackupKey::from_bytes(BACKUP_KEY),
        });
        let mut options = GatewayOptions::managed(managed);
        options.listen = any_port();
        options.ops_listen = Some(any_port());
        options.shutdown_grace = Duration::from_secs(2);
        options.https = Some(HttpsOptions {
            listen: any_port(),
            certificates: vec![],
            public_port: None,
        });
        let gateway = within("gateway start", Gateway::start(rt, options))
            .await
            .unwrap_or_else(|e| panic!("gateway starts: {e}"));
        let http = gateway.local_addr();
        let https = gateway.https_addr().expect("an HTTPS listener");
        Edge {
            gateway,
            http,
            https,
        }
    }

    /// Waits until revision `revision` (or a later one) is in force.
    async fn reaches(&self, revision: u64) {
        within(&format!("the gateway reaches revision {revision}"), async {
            while self.gateway.revision().is_none_or(|r| r < revision) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }

    /// Waits until the management plane's current revision is in force.
    async fn follows(&self, mgmt: &ManagementProcess) {
        self.reaches(mgmt.revision().await).await;
    }

    /// `GET path` over plain HTTP with `Host: host`, on a new connection.
    async fn http_get(&self, host: &str, path: &str) -> Response {
        let mut c = Client::connect(self.http).await;
        c.roundtrip(format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ))
        .await
    }

    async fn stop(self) {
        within("gateway shutdown", self.gateway.shutdown()).await;
    }
}

/// A management plane with API `echo` (at `/echo`, in front of `backend`) and
/// gateway `gw-1` serving it; the gateway's token.
async fn plane(data: &Path, backend: SocketAddr) -> (ManagementProcess, String) {
    let mgmt = ManagementProcess::start(any_port(), data, &[]).await;
    let api = api("echo", "echo", &format!("http://{backend}"));
    mgmt.ok("PUT", "/apis/echo", Some(&api.to_string()), 201)
        .await;
    let token = mgmt.gateway_with_token("gw-1", &["echo"]).await;
    (mgmt, token)
}

/// A server certificate issued by `ca` for `names`, as the management plane
/// takes it (PEM chain and key) and as a client sees it (DER).
struct ServerCert {
    der: CertificateDer<'static>,
    upload: Value,
    key_pem: String,
}

impl ServerCert {
    /// The same certificate and key as a base64 PKCS#12 file sealed with
    /// `password`, with `ca` after the leaf.
    fn pfx_upload(&self, ca: &TestCa, password: &str) -> Value {
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
        let chain = [self.der.as_ref(), ca.der.as_ref()]
            .iter()
            .map(|der| p12_keystore::Certificate::from_der(der).unwrap())
            .collect::<Vec<_>>();
        let key = p12_keystore::PrivateKey::from_der(key.secret_der()).unwrap();
        let entry = p12_keystore::PrivateKeyChain::new(b"k1".as_slice(), key, chain);
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry("leaf", p12_keystore::KeyStoreEntry::PrivateKeyChain(entry));
        let bytes = store.writer(password).write().unwrap();
        json!({ "pfx": base64(&bytes), "password": password })
    }
}

fn server_cert(ca: &TestCa, dir: &Path, file: &str, names: &[&str]) -> ServerCert {
    let (files, der) = ca.issue(dir, file, names);
    let key_pem = std::fs::read_to_string(&files.key).unwrap();
    ServerCert {
        der,
        upload: json!({
            "certificatePem": std::fs::read_to_string(&files.cert).unwrap(),
            "privateKeyPem": key_pem,
        }),
        key_pem,
    }
}

/// PUTs certificate `id` and custom hostname `host` of gw-1 using it.
async fn bind_hostname(
    mgmt: &ManagementProcess,
    id: &str,
    cert: &ServerCert,
    host: &str,
    extra: Value,
) {
    mgmt.ok(
        "PUT",
        &format!("/certificates/{id}"),
        Some(&cert.upload.to_string()),
        201,
    )
    .await;
    let mut body = json!({ "certificateId": id });
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    mgmt.ok(
        "PUT",
        &format!("/gateways/gw-1/hostnames/{host}"),
        Some(&body.to_string()),
        201,
    )
    .await;
}

// ---------------------------------------------------------------------------
// TLS clients
// ---------------------------------------------------------------------------

/// A TLS connection to the gateway kept open across requests.
async fn open_tls(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    name: &str,
) -> TlsStream<TcpStream> {
    let tcp = within("connect", TcpStream::connect(addr)).await.unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    within(
        "TLS handshake",
        TlsConnector::from(config.clone()).connect(name, tcp),
    )
    .await
    .expect("TLS handshake")
}

/// One keep-alive request on an open TLS connection; the status and body
/// (the gateway's answers here all have a Content-Length).
async fn tls_roundtrip(tls: &mut TlsStream<TcpStream>, host: &str, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    within("write request", tls.write_all(request.as_bytes()))
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = within("read response head", tls.read(&mut chunk))
            .await
            .unwrap();
        assert!(n > 0, "closed before a response head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = within("read response body", tls.read(&mut chunk))
            .await
            .unwrap();
        assert!(n > 0, "closed in the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
    (status, body)
}

/// The leaf the server presented on `tls`.
fn leaf_of(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// Presents `key` (or nothing) when the server asks, and counts the asks.
#[derive(Debug)]
struct Presenter {
    key: Option<Arc<CertifiedKey>>,
    asked: AtomicUsize,
}

impl Presenter {
    fn new(cert: Option<&client_pki::Client>) -> Arc<Presenter> {
        let key = cert.map(|c| {
            let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap();
            let der = CertificateDer::from(c.der.clone());
            Arc::new(CertifiedKey::from_der(vec![der], key, &ring::default_provider()).unwrap())
        });
        Arc::new(Presenter {
            key,
            asked: AtomicUsize::new(0),
        })
    }

    fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }
}

impl ResolvesClientCert for Presenter {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A client trusting `ca` with `versions`, presenting what `presenter` has.
fn presenting_client(
    ca: &TestCa,
    versions: &[&'static rustls::SupportedProtocolVersion],
    presenter: &Arc<Presenter>,
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(presenter.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

// ---------------------------------------------------------------------------
// 1. A certificate change is served on the next handshake
// ---------------------------------------------------------------------------

#[runtimes]
async fn a_certificate_changed_on_the_plane_is_served_next_without_dropping_connections(
    rt: Runtime,
) {
    let backend = Backend::echo().await;
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let a = server_cert(&ca, root.path(), "a", &["api.example.test"]);
    let b = server_cert(&ca, root.path(), "b", &["api.example.test"]);
    let (mgmt, token) = plane(&root.path().join("data"), backend.addr).await;
    bind_hostname(&mgmt, "site", &a, "api.example.test", json!({})).await;

    let edge = Edge::start(rt, &mgmt.url, &token, None).await;
    edge.follows(&mgmt).await;
    let trusting = Arc::new(ca.client(&[&TLS13, &TLS12]));
    let mut open = open_tls(edge.https, &trusting, "api.example.test").await;
    assert!(leaf_of(&open) == a.der, "certificate A is served");
    let (status, _) = tls_roundtrip(&mut open, "api.example.test", "/echo/first").await;
    assert_eq!(status, 200);

    // The same id, another certificate (PKCS#12 this time): the next
    // handshake gets it.
    let pfx = b.pfx_upload(&ca, "s3cret!");
    let r = mgmt
        .call("PUT", "/certificates/site", Some(&pfx.to_string()))
        .await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    edge.follows(&mgmt).await;
    // A fresh client configuration: a resumed session would show the
    // certificate of the session it resumes.
    let r = https_get(
        edge.https,
        &Arc::new(ca.client(&[&TLS13, &TLS12])),
        "api.example.test",
        "/echo/second",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.leaf == b.der, "certificate B is served after the change");

    // The connection opened under A still serves requests, still under A.
    let (status, _) = tls_roundtrip(&mut open, "api.example.test", "/echo/third").await;
    assert_eq!(status, 200);
    assert!(leaf_of(&open) == a.der);
    let paths: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    assert_eq!(paths, ["/first", "/second", "/third"]);

    // In use by a hostname: the plane refuses to delete it.
    let r = mgmt.call("DELETE", "/certificates/site", None).await;
    assert_eq!(r.status, 409, "{}", r.body_str());
    assert!(
        r.body_str().contains("api.example.test"),
        "{}",
        r.body_str()
    );

    // Once no hostname uses it, it goes; its name is served no more, and the
    // open connection still is.
    mgmt.ok(
        "DELETE",
        "/gateways/gw-1/hostnames/api.example.test",
        None,
        204,
    )
    .await;
    mgmt.ok("DELETE", "/certificates/site", None, 204).await;
    edge.follows(&mgmt).await;
    let fresh = Arc::new(ca.client(&[&TLS13, &TLS12]));
    assert!(refused(edge.https, &fresh, "api.example.test", "/echo/x").await);
    let (status, _) = tls_roundtrip(&mut open, "api.example.test", "/echo/fourth").await;
    assert_eq!(status, 200);
    drop(open);
    edge.stop().await;
}

// ---------------------------------------------------------------------------
// 2. Fail static: the backup carries the certificates
// ---------------------------------------------------------------------------

#[runtimes]
async fn a_gateway_restarted_during_an_outage_serves_the_hostname_from_its_backup(rt: Runtime) {
    let backend = Backend::echo().await;
    let root = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let site = server_cert(&ca, root.path(), "site", &["api.example.test"]);
    let renewed = server_cert(&ca, root.path(), "renewed", &["api.example.test"]);
    let data = root.path().join("data");
    let (mut mgmt, token) = plane(&data, backend.addr).await;
    bind_hostname(&mgmt, "site", &site, "api.example.test", json!({})).await;
    let revision = mgmt.revision().await;

    let edge = Edge::start(rt, &mgmt.url, &token, Some(backup.path())).await;
    edge.reaches(revision).await;
    within("the backup is written", async {
        while !backup.path().join("config.backup").exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    edge.stop().await;

    // The plane goes away; a new gateway starts from the backup alone.
    let (url, addr) = (mgmt.url.clone(), mgmt.addr);
    mgmt.kill().await;
    let edge = Edge::start(rt, &url, &token, Some(backup.path())).await;
    edge.reaches(revision).await;
    let r = https_get(
        edge.https,
        &Arc::new(ca.client(&[&TLS13, &TLS12])),
        "api.example.test",
        "/echo/from-backup",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.leaf == site.der, "the backup's certificate is served");
    assert_eq!(
        backend
            .only_request()
            .header("x-forwarded-proto")
            .as_deref(),
        Some("https")
    );

    // The plane comes back where the gateway looks for it, and a renewed
    // certificate reaches the gateway that started without it.
    let mgmt = ManagementProcess::start(addr, &data, &[]).await;
    mgmt.ok(
        "PUT",
        "/certificates/site",
        Some(&renewed.upload.to_string()),
        200,
    )
    .await;
    edge.follows(&mgmt).await;
    let r = https_get(
        edge.https,
        &Arc::new(ca.client(&[&TLS13, &TLS12])),
        "api.example.test",
        "/echo/renewed",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.leaf == renewed.der, "the renewed certificate is served");
    edge.stop().await;
}

// ---------------------------------------------------------------------------
// 3. Client certificates against an uploaded CA and its CRL
// ---------------------------------------------------------------------------

const REVOKED_SERIAL: u64 = 66;
const DAY: i64 = 86_400;

#[runtimes]
async fn client_certificates_are_checked_against_the_uploaded_ca_and_crl(rt: Runtime) {
    let backend = Backend::echo().await;
    let root = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new();
    let site = server_cert(
        &server_ca,
        root.path(),
        "site",
        &["mtls.example.test", "plain.example.test"],
    );
    let now = i64::try_from(unix_now()).unwrap();
    let good = client_pki::around(now, -2 * DAY, 365 * DAY);
    let clients = client_pki::Ca::root("Managed Clients");
    let stranger = client_pki::Ca::root("Stranger");
    let alice = clients.client("alice", 1, good);
    let mallory = stranger.client("mallory", 2, good);
    let expired = clients.client("old", 3, client_pki::around(now, -3 * 365 * DAY, -DAY));
    let revoked = clients.client("revoked", REVOKED_SERIAL, good);
    let alice_thumbprint = ClientCertificate::from_der_chain(vec![alice.der.clone()])
        .unwrap()
        .thumbprint;

    let (mgmt, token) = plane(&root.path().join("data"), backend.addr).await;
    let crl = clients.crl_between(
        &[REVOKED_SERIAL],
        client_pki::around(now, -30 * DAY, 365 * DAY),
    );
    mgmt.ok(
        "PUT",
        "/ca-certificates/clients",
        Some(&json!({ "certificatePem": clients.pem, "crlPem": crl }).to_string()),
        201,
    )
    .await;
    let r = mgmt
        .call(
            "PUT",
            "/apis/echo/policy",
            Some(&inbound(
                r#"<validate-client-certificate /><set-header name="x-thumbprint" exists-action="override"><value>@(context.Request.Certificate.Thumbprint)</value></set-header>"#,
            )),
        )
        .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.body_str());
    bind_hostname(
        &mgmt,
        "site",
        &site,
        "mtls.example.test",
        json!({ "negotiateClientCertificate": true }),
    )
    .await;
    mgmt.ok(
        "PUT",
        "/gateways/gw-1/hostnames/plain.example.test",
        Some(&json!({ "certificateId": "site" }).to_string()),
        201,
    )
    .await;

    let edge = Edge::start(rt, &mgmt.url, &token, None).await;
    edge.follows(&mgmt).await;
    for versions in [&[&TLS13][..], &[&TLS12][..]] {
        // From the uploaded CA: passes.
        let presenter = Presenter::new(Some(&alice));
        let config = presenting_client(&server_ca, versions, &presenter);
        let r = https_get(edge.https, &config, "mtls.example.test", "/echo/x").await;
        assert_eq!(r.status, 200, "{versions:?}: {r:?}");
        assert_eq!(presenter.asked(), 1, "{versions:?}");
        let seen = backend.requests().pop().unwrap();
        assert_eq!(seen.header("x-thumbprint"), Some(alice_thumbprint.clone()));

        // Another CA's, an expired one and a revoked one: APIM's 403.
        for (who, cert) in [
            ("another CA's", &mallory),
            ("expired", &expired),
            ("revoked", &revoked),
        ] {
            let presenter = Presenter::new(Some(cert));
            let config = presenting_client(&server_ca, versions, &presenter);
            let r = https_get(edge.https, &config, "mtls.example.test", "/echo/x").await;
            assert_eq!(r.status, 403, "{versions:?} {who}: {r:?}");
            let body: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(
                body,
                json!({ "statusCode": 403, "message": "Invalid client certificate" }),
                "{versions:?} {who}"
            );
            assert_eq!(presenter.asked(), 1, "{versions:?} {who}");
        }

        // A hostname without negotiation never asks: no certificate, 403.
        let quiet = Presenter::new(Some(&alice));
        let config = presenting_client(&server_ca, versions, &quiet);
        let r = https_get(edge.https, &config, "plain.example.test", "/echo/x").await;
        assert_eq!(r.status, 403, "{versions:?}: {r:?}");
        assert_eq!(quiet.asked(), 0, "{versions:?}: never asked");
    }
    assert_eq!(backend.requests().len(), 2, "only alice got through");
    edge.stop().await;
}

// ---------------------------------------------------------------------------
// 4. A backend behind a private CA
// ---------------------------------------------------------------------------

/// A TLS backend on loopback with `cert`/`key` answering every request 200
/// with its target as the body; its port.
async fn tls_backend(cert_pem: &str, key_pem: &str) -> u16 {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end);
                    let target = head.split(' ').nth(1).unwrap_or("").to_owned();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{target}",
                        target.len()
                    );
                    if tls.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[runtimes]
async fn a_backend_behind_a_private_ca_is_reached_once_the_plane_names_the_ca(rt: Runtime) {
    let root = tempfile::tempdir().unwrap();
    let private = TestCa::new();
    let (files, _) = private.issue(root.path(), "backend", &["localhost"]);
    let port = tls_backend(
        &std::fs::read_to_string(&files.cert).unwrap(),
        &std::fs::read_to_string(&files.key).unwrap(),
    )
    .await;

    let mgmt = ManagementProcess::start(any_port(), &root.path().join("data"), &[]).await;
    let url = format!("https://localhost:{port}");
    mgmt.ok(
        "PUT",
        "/backends/private",
        Some(&json!({ "url": url }).to_string()),
        201,
    )
    .await;
    let mut api = api("private", "private", &url);
    api["serviceUrl"] = Value::Null;
    api["backendId"] = json!("private");
    mgmt.ok("PUT", "/apis/private", Some(&api.to_string()), 201)
        .await;
    let token = mgmt.gateway_with_token("gw-1", &["private"]).await;
    let edge = Edge::start(rt, &mgmt.url, &token, None).await;
    edge.follows(&mgmt).await;

    // The public roots do not know the private CA.
    let r = edge.http_get("api.example.test", "/private/items/1").await;
    assert_eq!(r.status, 502, "{}", r.body_str());

    // Uploaded and named by the backend entity: reached.
    mgmt.ok(
        "PUT",
        "/ca-certificates/private-root",
        Some(&json!({ "certificatePem": private.pem }).to_string()),
        201,
    )
    .await;
    let backend = json!({ "url": url, "tls": { "caCertificateIds": ["private-root"] } });
    mgmt.ok("PUT", "/backends/private", Some(&backend.to_string()), 200)
        .await;
    edge.follows(&mgmt).await;
    let r = edge.http_get("api.example.test", "/private/items/1").await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "/items/1");

    // And named no more: refused again.
    let backend = json!({ "url": url, "tls": { "caCertificateIds": [] } });
    mgmt.ok("PUT", "/backends/private", Some(&backend.to_string()), 200)
        .await;
    edge.follows(&mgmt).await;
    let r = edge.http_get("api.example.test", "/private/items/2").await;
    assert_eq!(r.status, 502, "{}", r.body_str());
    edge.stop().await;
}

// ---------------------------------------------------------------------------
// 5. protocols and httpsRedirect
// ---------------------------------------------------------------------------

#[runtimes]
async fn https_only_apis_answer_on_the_https_listener_and_redirect_when_asked(rt: Runtime) {
    let backend = Backend::echo().await;
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let site = server_cert(&ca, root.path(), "site", &["api.example.test"]);
    let mgmt = ManagementProcess::start(any_port(), &root.path().join("data"), &[]).await;
    let service = format!("http://{}", backend.addr);
    let mut secure = api("secure", "secure", &service);
    secure["protocols"] = json!(["https"]);
    mgmt.ok("PUT", "/apis/secure", Some(&secure.to_string()), 201)
        .await;
    let mut moved = api("moved", "moved", &service);
    moved["protocols"] = json!(["https"]);
    moved["httpsRedirect"] = json!(true);
    mgmt.ok("PUT", "/apis/moved", Some(&moved.to_string()), 201)
        .await;
    let token = mgmt.gateway_with_token("gw-1", &["secure", "moved"]).await;
    bind_hostname(
        &mgmt,
        "site",
        &site,
        "api.example.test",
        json!({ "defaultSslBinding": true }),
    )
    .await;
    let edge = Edge::start(rt, &mgmt.url, &token, None).await;
    edge.follows(&mgmt).await;

    // Over HTTPS: served.
    let any = Arc::new(any_cert_client());
    let r = https_get(edge.https, &any, "api.example.test", "/secure/x").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.leaf == site.der);
    // The default binding serves names no hostname has, too.
    let r = https_get(edge.https, &any, "elsewhere.test", "/secure/y").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.leaf == site.der);
    // Over HTTP: APIM's 404, the backend never asked.
    let r = edge.http_get("api.example.test", "/secure/x").await;
    assert_eq!(r.status, 404, "{}", r.body_str());
    assert_eq!(backend.requests().len(), 2);

    // With httpsRedirect: 301 to the same URL on the HTTPS listener's port.
    let host = format!("api.example.test:{}", edge.http.port());
    let r = edge.http_get(&host, "/moved/items/7?a=1").await;
    assert_eq!(r.status, 301, "{}", r.body_str());
    let location = r.header("location").expect("a Location");
    assert_eq!(
        location,
        format!(
            "https://api.example.test:{}/moved/items/7?a=1",
            edge.https.port()
        )
    );
    // Following it reaches the backend over HTTPS.
    let r = https_get(edge.https, &any, "api.example.test", "/moved/items/7?a=1").await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = backend.requests().pop().unwrap();
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(backend.requests().len(), 3);
    edge.stop().await;
}

// ---------------------------------------------------------------------------
// 6. A hostname's TLS settings from the plane, and resumption
// ---------------------------------------------------------------------------

/// A client trusting `ca` with `versions` and only `suites` (all when empty).
fn limited_client(
    ca: &TestCa,
    versions: &[&'static rustls::SupportedProtocolVersion],
    suites: &[rustls::CipherSuite],
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
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[runtimes]
async fn a_hostnames_version_and_suites_from_the_plane_limit_handshakes_and_sessions_resume(
    rt: Runtime,
) {
    use rustls::CipherSuite::{TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384};
    let backend = Backend::echo().await;
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let site = server_cert(
        &ca,
        root.path(),
        "site",
        &["modern.example.test", "open.example.test"],
    );
    let (mgmt, token) = plane(&root.path().join("data"), backend.addr).await;
    bind_hostname(&mgmt, "site", &site, "open.example.test", json!({})).await;
    let modern = json!({
        "certificateId": "site",
        "minTlsVersion": "1.3",
        "cipherSuites": ["TLS_AES_256_GCM_SHA384"],
    });
    mgmt.ok(
        "PUT",
        "/gateways/gw-1/hostnames/modern.example.test",
        Some(&modern.to_string()),
        201,
    )
    .await;
    let edge = Edge::start(rt, &mgmt.url, &token, None).await;
    edge.follows(&mgmt).await;

    let tls12 = limited_client(&ca, &[&TLS12], &[]);
    let aes128 = limited_client(&ca, &[&TLS13], &[TLS13_AES_128_GCM_SHA256]);
    let aes256 = limited_client(&ca, &[&TLS13], &[TLS13_AES_256_GCM_SHA384]);
    assert!(refused(edge.https, &tls12, "modern.example.test", "/echo/x").await);
    assert!(refused(edge.https, &aes128, "modern.example.test", "/echo/x").await);
    assert!(!refused(edge.https, &aes256, "modern.example.test", "/echo/x").await);
    // The other hostname keeps the defaults.
    assert!(!refused(edge.https, &tls12, "open.example.test", "/echo/x").await);
    assert!(!refused(edge.https, &aes128, "open.example.test", "/echo/x").await);

    // The second connection of a client resumes its session, on both versions.
    for versions in [&[&TLS13][..], &[&TLS12][..]] {
        let client = Arc::new(ca.client(versions));
        let first = https_get(edge.https, &client, "open.example.test", "/echo/a").await;
        let second = https_get(edge.https, &client, "open.example.test", "/echo/b").await;
        assert_eq!((first.status, first.resumed), (200, false), "{versions:?}");
        assert_eq!((second.status, second.resumed), (200, true), "{versions:?}");
    }
    edge.stop().await;
}
