//! Backend TLS per backend entity (`backends[].tls`) and the
//! `authentication-certificate` policy, end to end: real TLS backends
//! (tokio-rustls) with private CAs, self-signed and misnamed certificates,
//! version and suite limits and client certificate checks, reached through a
//! gateway configured by its standalone file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{runtimes, Gateway, Runtime};
use portcullis_driver::options::GatewayOptions;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::version::TLS12;
use tokio_rustls::rustls::{HandshakeKind, RootCertStore, ServerConfig, SupportedProtocolVersion};
use tokio_rustls::TlsAcceptor;

/// A certificate authority signing certificates for the tests.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    der: CertificateDer<'static>,
}

/// A certificate with its key, as DER for rustls and PEM for the snapshot.
struct Leaf {
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    cert_pem: String,
    key_pem: String,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("ca cert");
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn issue(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        leaf(cert, key)
    }
}

fn leaf(cert: rcgen::Certificate, key: KeyPair) -> Leaf {
    Leaf {
        der: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn self_signed(names: &[&str]) -> Leaf {
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("params");
    let cert = params.self_signed(&key).expect("cert");
    leaf(cert, key)
}

/// SHA-1 of a certificate, uppercase hex (.NET's `Thumbprint`).
fn thumbprint(der: &CertificateDer<'_>) -> String {
    portcullis_core::cert::ClientCertificate::from_der_chain(vec![der.to_vec()])
        .expect("parse")
        .thumbprint
}

/// What a TLS backend saw of one handshake that completed.
#[derive(Debug, Clone)]
struct Seen {
    sni: Option<String>,
    resumed: bool,
    suite: String,
    client_cert: Option<String>,
}

/// How a test TLS backend shakes hands.
struct BackendSpec<'a> {
    leaf: &'a Leaf,
    versions: &'a [&'static SupportedProtocolVersion],
    /// Only these suites (IANA names); empty: all of ring's.
    suites: &'a [&'a str],
    /// Require a client certificate from this CA.
    client_ca: Option<&'a Ca>,
    /// Close after each response (so the next request needs a new connection).
    close: bool,
}

impl<'a> BackendSpec<'a> {
    fn new(leaf: &'a Leaf) -> Self {
        BackendSpec {
            leaf,
            versions: tokio_rustls::rustls::ALL_VERSIONS,
            suites: &[],
            client_ca: None,
            close: false,
        }
    }
}

/// A TLS backend answering every request with its path; its port and what
/// it saw of every completed handshake.
struct TlsBackend {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    targets: Arc<Mutex<Vec<String>>>,
}

impl TlsBackend {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The targets of the requests answered, in order.
    fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

async fn tls_backend(spec: BackendSpec<'_>) -> TlsBackend {
    let mut provider = tokio_rustls::rustls::crypto::ring::default_provider();
    if !spec.suites.is_empty() {
        provider
            .cipher_suites
            .retain(|s| spec.suites.contains(&s.suite().as_str().unwrap_or("")));
    }
    let builder = ServerConfig::builder_with_provider(Arc::new(provider.clone()))
        .with_protocol_versions(spec.versions)
        .expect("versions");
    let builder = match spec.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.der.clone()).expect("client ca");
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(provider))
                    .build()
                    .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(vec![spec.leaf.der.clone()], spec.leaf.key.clone_key())
        .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let targets = Arc::new(Mutex::new(Vec::new()));
    let close = spec.close;
    let log = seen.clone();
    let answered = targets.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let log = log.clone();
            let answered = answered.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                {
                    let (_, conn) = tls.get_ref();
                    log.lock().unwrap().push(Seen {
                        sni: conn.server_name().map(str::to_owned),
                        resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
                        suite: conn
                            .negotiated_cipher_suite()
                            .and_then(|s| s.suite().as_str())
                            .unwrap_or("")
                            .to_owned(),
                        client_cert: conn
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(thumbprint),
                    });
                }
                serve_requests(&mut tls, close, &answered).await;
            });
        }
    });
    TlsBackend {
        port,
        seen,
        targets,
    }
}

/// Answers requests (without bodies) on one connection with their targets,
/// noting them in `answered`.
async fn serve_requests<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    tls: &mut S,
    close: bool,
    answered: &Mutex<Vec<String>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let target = head.split(' ').nth(1).unwrap_or("").to_owned();
        answered.lock().unwrap().push(target.clone());
        let body = format!("{{\"target\":\"{target}\"}}");
        let connection = if close { "close" } else { "keep-alive" };
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
            body.len()
        );
        if tls.write_all(response.as_bytes()).await.is_err() {
            return;
        }
        if close {
            let _ = tls.shutdown().await;
            return;
        }
    }
}

/// An API at `/{id}` on backend entity `backend`, with an optional policy.
fn api(id: &str, backend: &str, policy: Option<&str>) -> Value {
    let mut api = json!({
        "id": id, "path": id, "backendId": backend, "subscriptionRequired": false,
        "operations": [{"id": "any", "method": "*", "urlTemplate": "/*"}],
    });
    if let Some(p) = policy {
        api["policy"] = json!(p);
    }
    api
}

/// A backend entity at `https://{host}:{port}` with `tls`.
fn backend(id: &str, host: &str, port: u16, tls: Value) -> Value {
    json!({"id": id, "url": format!("https://{host}:{port}"), "tls": tls})
}

/// Starts a gateway on `rt` with this snapshot (and `--backend-ca`, if given).
async fn gateway(
    rt: Runtime,
    dir: &tempfile::TempDir,
    snapshot: Value,
    backend_ca: Option<&str>,
) -> Gateway {
    let path = dir.path().join("gateway.json");
    std::fs::write(&path, snapshot.to_string()).expect("write config");
    let mut options = GatewayOptions::new(path);
    options.listen = "127.0.0.1:0".parse().expect("addr");
    options.ops_listen = None;
    // Quick to see a rewritten file (the revision tests).
    options.reload_interval = Duration::from_millis(50);
    if let Some(pem) = backend_ca {
        let ca = dir.path().join("backend-ca.pem");
        std::fs::write(&ca, pem).expect("write ca");
        options.upstream_ca = Some(ca);
    }
    Gateway::start(rt, options)
        .await
        .unwrap_or_else(|e| panic!("gateway starts: {e}"))
}

/// GETs `path` on a new connection; the status and the body.
async fn get(gateway: &Gateway, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(gateway.local_addr())
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_owned())
}

#[runtimes(flavor = "current_thread")]
async fn private_ca_is_trusted_only_where_the_backend_names_it(rt: Runtime) {
    let ca = Ca::new();
    let server = ca.issue(&["localhost"]);
    let b = tls_backend(BackendSpec::new(&server)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshot = json!({
        "revision": 1,
        "caCertificates": [{"id": "private", "certificatePem": ca.pem}],
        "backends": [
            backend("trusting", "localhost", b.port, json!({"caCertificateIds": ["private"]})),
            backend("public-roots", "localhost", b.port, json!({})),
        ],
        "apis": [api("trusting", "trusting", None), api("public", "public-roots", None)],
    });
    let gw = gateway(rt, &dir, snapshot, None).await;
    let (status, body) = get(&gw, "/trusting/items/1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, r#"{"target":"/items/1"}"#);
    let (status, _) = get(&gw, "/public/items/1").await;
    assert_eq!(status, 502, "the private CA is not among the public roots");
    gw.shutdown().await;
}

#[runtimes(flavor = "current_thread")]
async fn chain_and_name_checks_can_be_turned_off_one_at_a_time(rt: Runtime) {
    let ca = Ca::new();
    let unsigned = self_signed(&["localhost"]);
    let misnamed = ca.issue(&["elsewhere.example"]);
    let self_signed_backend = tls_backend(BackendSpec::new(&unsigned)).await;
    let misnamed_backend = tls_backend(BackendSpec::new(&misnamed)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, m) = (self_signed_backend.port, misnamed_backend.port);
    let snapshot = json!({
        "revision": 1,
        "caCertificates": [{"id": "private", "certificatePem": ca.pem}],
        "backends": [
            backend("any-chain", "localhost", s, json!({"validateCertificateChain": false})),
            backend("checked-chain", "localhost", s, json!({})),
            backend("any-name", "localhost", m,
                json!({"caCertificateIds": ["private"], "validateCertificateName": false})),
            backend("checked-name", "localhost", m, json!({"caCertificateIds": ["private"]})),
            // The chain is not checked, the name still is.
            backend("any-chain-checked-name", "localhost", m,
                json!({"validateCertificateChain": false})),
        ],
        "apis": [
            api("any-chain", "any-chain", None),
            api("checked-chain", "checked-chain", None),
            api("any-name", "any-name", None),
            api("checked-name", "checked-name", None),
            api("any-chain-checked-name", "any-chain-checked-name", None),
        ],
    });
    let gw = gateway(rt, &dir, snapshot, None).await;
    assert_eq!(get(&gw, "/any-chain/x").await.0, 200);
    assert_eq!(get(&gw, "/checked-chain/x").await.0, 502);
    assert_eq!(get(&gw, "/any-name/x").await.0, 200);
    assert_eq!(get(&gw, "/checked-name/x").await.0, 502);
    assert_eq!(get(&gw, "/any-chain-checked-name/x").await.0, 502);
    gw.shutdown().await;
}

#[runtimes(flavor = "current_thread")]
async fn server_name_overrides_sni_and_the_name_checked(rt: Runtime) {
    let ca = Ca::new();
    let server = ca.issue(&["backend.internal"]);
    let b = tls_backend(BackendSpec::new(&server)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshot = json!({
        "revision": 1,
        "caCertificates": [{"id": "private", "certificatePem": ca.pem}],
        "backends": [
            backend("renamed", "localhost", b.port,
                json!({"caCertificateIds": ["private"], "serverName": "backend.internal"})),
            backend("by-host", "localhost", b.port, json!({"caCertificateIds": ["private"]})),
        ],
        "apis": [api("renamed", "renamed", None), api("by-host", "by-host", None)],
    });
    let gw = gateway(rt, &dir, snapshot, None).await;
    assert_eq!(get(&gw, "/renamed/x").await.0, 200);
    assert_eq!(get(&gw, "/by-host/x").await.0, 502);
    let seen = b.seen();
    assert_eq!(seen[0].sni.as_deref(), Some("backend.internal"), "{seen:?}");
    gw.shutdown().await;
}

#[runtimes(flavor = "current_thread")]
async fn minimum_version_and_cipher_suites_limit_the_handshake(rt: Runtime) {
    let ca = Ca::new();
    let server = ca.issue(&["localhost"]);
    // TLS 1.2 only, one suite.
    let b = tls_backend(BackendSpec {
        versions: &[&TLS12],
        suites: &["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"],
        ..BackendSpec::new(&server)
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut backends = Vec::new();
    for (id, extra) in [
        ("tls12", json!({"minTlsVersion": "1.2"})),
        ("tls13", json!({"minTlsVersion": "1.3"})),
        (
            "other-suite",
            json!({"cipherSuites": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]}),
        ),
        (
            "same-suite",
            json!({"cipherSuites": ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]}),
        ),
    ] {
        let mut tls = json!({"caCertificateIds": ["private"]});
        for (k, v) in extra.as_object().expect("object") {
            tls[k] = v.clone();
        }
        backends.push(backend(id, "localhost", b.port, tls));
    }
    let snapshot = json!({
        "revision": 1,
        "caCertificates": [{"id": "private", "certificatePem": ca.pem}],
        "backends": backends,
        "apis": [
            api("tls12", "tls12", None),
            api("tls13", "tls13", None),
            api("other-suite", "other-suite", None),
            api("same-suite", "same-suite", None),
        ],
    });
    let gw = gateway(rt, &dir, snapshot, None).await;
    assert_eq!(get(&gw, "/tls12/x").await.0, 200);
    assert_eq!(get(&gw, "/tls13/x").await.0, 502, "a 1.2-only backend");
    assert_eq!(get(&gw, "/other-suite/x").await.0, 502);
    assert_eq!(get(&gw, "/same-suite/x").await.0, 200);
    let suites: Vec<String> = b.seen().into_iter().map(|s| s.suite).collect();
    assert_eq!(
        suites,
        [
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
        ]
    );
    gw.shutdown().await;
}

/// A backend requiring a client certificate from `client_ca`, and a snapshot
/// with the certificate `client` and the backend entities `mtls` (presents it)
/// and `plain` (presents nothing), plus `apis`.
fn mtls_snapshot(ca: &Ca, client: &Leaf, port: u16, apis: Vec<Value>) -> Value {
    json!({
        "revision": 1,
        "caCertificates": [{"id": "private", "certificatePem": ca.pem}],
        "certificates": [{"id": "client", "certificatePem": client.cert_pem,
                          "privateKeyPem": client.key_pem}],
        "backends": [
            backend("mtls", "localhost", port,
                json!({"caCertificateIds": ["private"], "clientCertificateId": "client"})),
            backend("plain", "localhost", port, json!({"caCertificateIds": ["private"]})),
        ],
        "apis": apis,
    })
}

#[runtimes(flavor = "current_thread")]
async fn client_certificate_from_the_backend_entity_or_the_policy(rt: Runtime) {
    let ca = Ca::new();
    let client_ca = Ca::new();
    let server = ca.issue(&["localhost"]);
    let client = client_ca.issue(&["gateway.client"]);
    // A new connection per request, so every request shows its handshake
    // (the entity's settings and the policy's come to the same content, so
    // they would share pooled connections).
    let b = tls_backend(BackendSpec {
        client_ca: Some(&client_ca),
        close: true,
        ..BackendSpec::new(&server)
    })
    .await;
    let thumb = thumbprint(&client.der);
    let by_id = r#"<policies><inbound><authentication-certificate certificate-id="client" /></inbound>
        <backend><forward-request /></backend><outbound /><on-error /></policies>"#;
    // Thumbprints match whatever their case.
    let by_thumbprint = format!(
        r#"<policies><inbound><authentication-certificate thumbprint="{}" /></inbound>
        <backend><forward-request /></backend><outbound /><on-error /></policies>"#,
        thumb.to_lowercase()
    );
    let apis = vec![
        api("entity", "mtls", None),
        api("none", "plain", None),
        api("by-id", "plain", Some(by_id)),
        api("by-thumbprint", "plain", Some(&by_thumbprint)),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = gateway(rt, &dir, mtls_snapshot(&ca, &client, b.port, apis), None).await;
    assert_eq!(get(&gw, "/entity/x").await.0, 200);
    assert_eq!(get(&gw, "/none/x").await.0, 502, "no certificate presented");
    assert_eq!(get(&gw, "/by-id/x").await.0, 200);
    assert_eq!(get(&gw, "/by-thumbprint/x").await.0, 200);
    let presented: Vec<Option<String>> = b.seen().into_iter().map(|s| s.client_cert).collect();
    assert_eq!(
        presented,
        [Some(thumb.clone()), Some(thumb.clone()), Some(thumb)],
        "the handshakes that completed presented the certificate"
    );
    gw.shutdown().await;
}

#[runtimes(flavor = "current_thread")]
async fn a_pooled_connection_with_a_certificate_serves_no_request_without_one(rt: Runtime) {
    let ca = Ca::new();
    let client_ca = Ca::new();
    let server = ca.issue(&["localhost"]);
    let client = client_ca.issue(&["gateway.client"]);
    // Keeps connections open: the gateway pools them.
    let b = tls_backend(BackendSpec {
        client_ca: Some(&client_ca),
        ..BackendSpec::new(&server)
    })
    .await;
    let apis = vec![api("entity", "mtls", None), api("none", "plain", None)];
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = gateway(rt, &dir, mtls_snapshot(&ca, &client, b.port, apis), None).await;
    assert_eq!(get(&gw, "/entity/x").await.0, 200);
    // Same host and port, other TLS settings: not the pooled connection.
    assert_eq!(get(&gw, "/none/x").await.0, 502);
    // The pooled connection still serves its own settings.
    assert_eq!(get(&gw, "/entity/y").await.0, 200);
    assert_eq!(b.seen().len(), 1, "one handshake completed: {:?}", b.seen());
    gw.shutdown().await;
}

#[runtimes(flavor = "current_thread")]
async fn send_request_presents_the_policy_certificate(rt: Runtime) {
    let ca = Ca::new();
    let client_ca = Ca::new();
    let server = ca.issue(&["localhost"]);
    let client = client_ca.issue(&["gateway.client"]);
    let b = tls_backend(BackendSpec {
        client_ca: Some(&client_ca),
        ..BackendSpec::new(&server)
    })
    .await;
    let call = |certificate: &str| {
        format!(
            r#"<policies><inbound>
              <send-request mode="new" response-variable-name="r" timeout="10">
                <set-url>https://localhost:{}/called</set-url>
                {certificate}
              </send-request>
              <return-response>
                <set-status code="200" reason="OK" />
                <set-body>@(((IResponse)context.Variables["r"]).Body.As&lt;string&gt;())</set-body>
              </return-response>
            </inbound><backend><forward-request /></backend><outbound /><on-error /></policies>"#,
            b.port
        )
    };
    let with = call(r#"<authentication-certificate certificate-id="client" />"#);
    let without = call("");
    let one_way = format!(
        r#"<policies><inbound>
          <send-one-way-request mode="new">
            <set-url>https://localhost:{}/one-way</set-url>
            <authentication-certificate certificate-id="client" />
          </send-one-way-request>
          <return-response><set-status code="202" reason="Accepted" /></return-response>
        </inbound><backend><forward-request /></backend><outbound /><on-error /></policies>"#,
        b.port
    );
    let apis = vec![
        api("with", "plain", Some(&with)),
        api("without", "plain", Some(&without)),
        api("one-way", "plain", Some(&one_way)),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    // Call-outs are not routed to backend entities: they trust `--backend-ca`.
    let gw = gateway(
        rt,
        &dir,
        mtls_snapshot(&ca, &client, b.port, apis),
        Some(&ca.pem),
    )
    .await;
    let (status, body) = get(&gw, "/with/x").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, r#"{"target":"/called"}"#);
    let (status, body) = get(&gw, "/without/x").await;
    assert_eq!(status, 500, "the call without a certificate fails: {body}");
    let presented: Vec<Option<String>> = b.seen().into_iter().map(|s| s.client_cert).collect();
    assert_eq!(presented, [Some(thumbprint(&client.der))]);

    // Nobody waits for a one-way call: wait for the backend to answer it. It
    // requires a certificate, and every handshake it saw presented this one.
    assert_eq!(get(&gw, "/one-way/x").await.0, 202);
    common::within("the one-way call", async {
        while !b.targets().contains(&"/one-way".to_string()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(b.targets(), ["/called", "/one-way"]);
    assert!(b
        .seen()
        .iter()
        .all(|s| s.client_cert == Some(thumbprint(&client.der))));
    gw.shutdown().await;
}

#[runtimes(flavor = "current_thread")]
async fn a_second_connection_to_a_tls_backend_resumes_the_session(rt: Runtime) {
    let ca = Ca::new();
    let server = ca.issue(&["localhost"]);
    // Closes after every response, so each request needs a new connection.
    let b = tls_backend(BackendSpec {
        close: true,
        ..BackendSpec::new(&server)
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshot = json!({
        "revision": 1,
        "caCertificates": [{"id": "private", "certificatePem": ca.pem}],
        "backends": [backend("b", "localhost", b.port, json!({"caCertificateIds": ["private"]}))],
        "apis": [api("b", "b", None)],
    });
    let gw = gateway(rt, &dir, snapshot, None).await;
    assert_eq!(get(&gw, "/b/one").await.0, 200);
    assert_eq!(get(&gw, "/b/two").await.0, 200);
    let resumed: Vec<bool> = b.seen().into_iter().map(|s| s.resumed).collect();
    assert_eq!(resumed, [false, true]);
    gw.shutdown().await;
}

#[runtimes(flavor = "current_thread")]
async fn a_new_revision_changes_a_backends_tls_from_the_next_request(rt: Runtime) {
    let ca = Ca::new();
    let other = Ca::new();
    let server = ca.issue(&["localhost"]);
    // Keeps connections open: a pooled one made under one revision's
    // settings must not serve another's.
    let b = tls_backend(BackendSpec::new(&server)).await;
    let snapshot = |revision: u64, trusted: &str| {
        json!({
            "revision": revision,
            "caCertificates": [
                {"id": "private", "certificatePem": ca.pem},
                {"id": "other", "certificatePem": other.pem},
            ],
            "backends": [backend("b", "localhost", b.port, json!({"caCertificateIds": [trusted]}))],
            "apis": [api("b", "b", None)],
        })
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = gateway(rt, &dir, snapshot(1, "other"), None).await;
    let path = dir.path().join("gateway.json");
    assert_eq!(get(&gw, "/b/x").await.0, 502);
    for (revision, trusted, status) in [(2, "private", 200), (3, "other", 502)] {
        common::write_atomically(&path, snapshot(revision, trusted).to_string().as_bytes());
        common::within("the new revision", async {
            while gw.revision() != Some(revision) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert_eq!(get(&gw, "/b/x").await.0, status, "revision {revision}");
    }
    gw.shutdown().await;
}
