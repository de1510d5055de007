//! The HTTPS listener (TLS at the edge), on both runtimes, over real sockets:
//! requests through it, the scheme the core and the backend see, SNI's
//! certificate choice and its swap, refused versions and suites, session
//! resumption, and clients that never finish a handshake.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::policy_docs::{inbound, papi};
use common::tls::{any_cert_client, https_get, wait_metric, TestCa};
use common::*;
use portcullis_driver::options::{CertificateFiles, HttpsOptions};
use portcullis_driver::tls_server::{load_certificates, CertSet};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::version::{TLS12, TLS13};
use tokio_rustls::rustls::ProtocolVersion;

/// A gateway serving `doc` over HTTP and HTTPS with `certs` (the first is the
/// default), with `tweak` applied.
async fn https_gateway(
    rt: Runtime,
    doc: &Value,
    certs: Vec<CertificateFiles>,
    tweak: impl FnOnce(&mut GatewayOptions),
) -> (TestGateway, SocketAddr) {
    let gw = TestGateway::start_with(rt, doc, |o| {
        o.https = Some(HttpsOptions {
            listen: any_port(),
            certificates: certs,
            public_port: None,
        });
        tweak(o);
    })
    .await;
    let https = gw.gateway.https_addr().expect("an HTTPS listener");
    (gw, https)
}

#[runtimes]
async fn https_requests_reach_the_backend_and_see_the_https_scheme(rt: Runtime) {
    let backend = Backend::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (files, _) = ca.issue(dir.path(), "local", &["localhost", "127.0.0.1"]);
    // The scheme the client used, as policies read it.
    let policy = inbound(
        r#"<set-header name="x-original-scheme" exists-action="override"><value>@(context.Request.OriginalUrl.Scheme)</value></set-header>"#,
    );
    let mut secure = papi("secure", "secure", backend.addr, &policy);
    secure["protocols"] = json!(["https"]);
    let both = papi("both", "both", backend.addr, &policy);
    let doc = config(1, vec![secure, both]);
    let (gw, https) = https_gateway(rt, &doc, vec![files], |_| {}).await;
    let client = Arc::new(ca.client(&[&TLS13, &TLS12]));

    let r = https_get(https, &client, "localhost", "/secure/hello").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.version, ProtocolVersion::TLSv1_3);
    assert_eq!(r.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let seen = backend.only_request();
    assert_eq!(seen.target(), "/hello");
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(seen.header("x-original-scheme").as_deref(), Some("https"));

    // An https-only API does not exist on the HTTP listener: the same 404 as
    // a path no API has, as APIM answers.
    let mut c = gw.client().await;
    let on_http = c.roundtrip(get("/secure/hello")).await;
    let nowhere = c.roundtrip(get("/nothing/here")).await;
    assert_eq!(on_http.status, 404);
    assert_eq!(on_http.body_str(), nowhere.body_str());
    assert_eq!(
        backend.requests().len(),
        1,
        "the backend saw only the HTTPS call"
    );

    // An API on both schemes tells them apart.
    let r = c.roundtrip(get("/both/x")).await;
    assert_eq!(r.status, 200);
    let r = https_get(https, &client, "127.0.0.1", "/both/y").await;
    assert_eq!(r.status, 200);
    let seen = backend.requests();
    let scheme = |i: usize| {
        (
            seen[i].header("x-forwarded-proto"),
            seen[i].header("x-original-scheme"),
        )
    };
    assert_eq!(scheme(1), (Some("http".into()), Some("http".into())));
    assert_eq!(scheme(2), (Some("https".into()), Some("https".into())));
    wait_metric(&gw, "portcullis_tls_handshakes_total{kind=\"full\"}", 2).await;
    gw.stop().await;
}

#[runtimes]
async fn sni_picks_the_exact_then_the_wildcard_then_the_default_certificate(rt: Runtime) {
    let backend = Backend::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (default, default_der) = ca.issue(dir.path(), "default", &["localhost", "127.0.0.1"]);
    let (wild, wild_der) = ca.issue(dir.path(), "wild", &["*.example.com"]);
    let (exact, exact_der) = ca.issue(dir.path(), "exact", &["api.example.com"]);
    let (gw, https) = https_gateway(
        rt,
        &config_for(backend.addr),
        vec![default.clone(), wild, exact],
        |_| {},
    )
    .await;
    let any = Arc::new(any_cert_client());
    for (name, want) in [
        ("api.example.com", &exact_der),
        ("web.example.com", &wild_der),
        // A wildcard covers one label only.
        ("a.b.example.com", &default_der),
        ("unknown.test", &default_der),
        // No SNI at all.
        ("127.0.0.1", &default_der),
    ] {
        let r = https_get(https, &any, name, "/api/x").await;
        assert_eq!(r.status, 200, "{name}");
        assert!(r.leaf == *want, "{name} got another certificate");
    }
    // And the chosen ones verify against the CA for their names.
    let trusting = Arc::new(ca.client(&[&TLS13, &TLS12]));
    for name in ["api.example.com", "web.example.com", "localhost"] {
        assert_eq!(
            https_get(https, &trusting, name, "/api/x").await.status,
            200
        );
    }

    // A new certificate set is served from the next handshake on; a
    // connection opened before keeps working.
    let tcp = TcpStream::connect(https).await.unwrap();
    let mut open = tokio_rustls::TlsConnector::from(trusting.clone())
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (renewed, renewed_der) = ca.issue(dir.path(), "renewed", &["localhost", "127.0.0.1"]);
    let certs = load_certificates(&[renewed]).unwrap();
    match &gw.gateway {
        Gateway::Tokio(g) => g
            .server_tls()
            .unwrap()
            .resolver()
            .replace(CertSet::new(&certs)),
        Gateway::Smol(g) => g
            .server_tls()
            .unwrap()
            .resolver()
            .replace(CertSet::new(&certs)),
    }
    // A fresh client: a resumed session would show the certificate of the
    // session it resumes.
    let any = Arc::new(any_cert_client());
    let r = https_get(https, &any, "localhost", "/api/x").await;
    assert!(r.leaf == renewed_der, "the new default is served");
    let r = https_get(https, &any, "api.example.com", "/api/x").await;
    assert!(r.leaf == renewed_der, "the old set is gone");
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

/// A ClientHello offering `version` (no supported_versions extension, as TLS
/// 1.0, 1.1 and 1.2 clients send) and only `suites`, with the extensions such
/// clients send.
fn client_hello(version: [u8; 2], suites: &[u16]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version);
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&u16::try_from(suites.len() * 2).unwrap().to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]);
    let extensions: &[u8] = &[
        // supported_groups: x25519, secp256r1
        0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17,
        // ec_point_formats: uncompressed
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00,
        // signature_algorithms: rsa_pkcs1_sha256, ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x01, 0x04, 0x03, 0x08, 0x04,
    ];
    body.extend_from_slice(&u16::try_from(extensions.len()).unwrap().to_be_bytes());
    body.extend_from_slice(extensions);
    let mut handshake = vec![1];
    handshake.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 3, 1];
    record.extend_from_slice(&u16::try_from(handshake.len()).unwrap().to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// Sends `hello` and returns everything the server wrote before closing.
async fn answer_to(https: SocketAddr, hello: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(https).await.unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut out = Vec::new();
    // A reset after the alert is a close too.
    let _ = within("the server closes", tcp.read_to_end(&mut out)).await;
    out
}

/// The description of the fatal alert record `bytes` start with.
fn fatal_alert(bytes: &[u8]) -> u8 {
    assert!(
        bytes.len() >= 7 && bytes[0] == 0x15 && bytes[5] == 2,
        "not a fatal alert: {bytes:?}"
    );
    bytes[6]
}

#[runtimes]
async fn tls_1_0_and_1_1_and_weak_suites_are_refused(rt: Runtime) {
    let backend = Backend::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (files, _) = ca.issue(dir.path(), "local", &["localhost"]);
    let (gw, https) = https_gateway(rt, &config_for(backend.addr), vec![files], |_| {}).await;
    // Modern suites, old versions: protocol_version (70).
    let modern = [0xc02b, 0xc02f, 0xc009, 0xc013, 0x002f];
    for version in [[3, 1], [3, 2]] {
        let out = answer_to(https, &client_hello(version, &modern)).await;
        assert_eq!(fatal_alert(&out), 70, "version {version:?}");
    }
    // As TLS 1.0 and 1.1 clients (openssl's among them) send it, without
    // signature_algorithms: refused before the version is looked at, with
    // handshake_failure (40).
    for version in [[3, 1], [3, 2]] {
        let mut hello = client_hello(version, &modern);
        // Drop the last extension (signature_algorithms, 12 bytes) and fix
        // the three lengths that count it.
        hello.truncate(hello.len() - 12);
        for (at, width) in [(3usize, 2usize), (6, 3)] {
            let mut n = 0usize;
            for b in &hello[at..at + width] {
                n = n << 8 | usize::from(*b);
            }
            n -= 12;
            for i in 0..width {
                hello[at + width - 1 - i] = (n >> (8 * i)) as u8;
            }
        }
        let ext_len_at = hello.len() - 16 - 2;
        hello[ext_len_at..ext_len_at + 2].copy_from_slice(&16u16.to_be_bytes());
        let out = answer_to(https, &hello).await;
        assert_eq!(fatal_alert(&out), 40, "version {version:?}");
    }
    // TLS 1.2 with only CBC, static-RSA and 3DES suites (for ECDSA and RSA
    // keys alike): handshake_failure (40).
    let weak = [
        0xc009, 0xc00a, 0xc023, 0xc024, 0xc013, 0xc014, 0x002f, 0x0035, 0x000a, 0x009c,
    ];
    let out = answer_to(https, &client_hello([3, 3], &weak)).await;
    assert_eq!(fatal_alert(&out), 40);
    // The same hello with a modern suite gets a ServerHello.
    let mut tcp = TcpStream::connect(https).await.unwrap();
    tcp.write_all(&client_hello([3, 3], &[0xc009, 0xc02b]))
        .await
        .unwrap();
    let mut first = [0u8; 1];
    within("a ServerHello", tcp.read_exact(&mut first))
        .await
        .unwrap();
    assert_eq!(first[0], 0x16, "a handshake record");
    drop(tcp);
    wait_metric(
        &gw,
        "portcullis_tls_handshake_failures_total{reason=\"incompatible\"}",
        5,
    )
    .await;
    assert_eq!(backend.requests().len(), 0);
    gw.stop().await;
}

#[runtimes]
async fn sessions_resume_with_tls_1_3_tickets_and_tls_1_2(rt: Runtime) {
    let backend = Backend::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (files, _) = ca.issue(dir.path(), "local", &["localhost"]);
    let (gw, https) = https_gateway(rt, &config_for(backend.addr), vec![files], |_| {}).await;
    for (versions, want) in [
        (&[&TLS13][..], ProtocolVersion::TLSv1_3),
        (&[&TLS12][..], ProtocolVersion::TLSv1_2),
    ] {
        let client = Arc::new(ca.client(versions));
        let first = https_get(https, &client, "localhost", "/api/a").await;
        assert_eq!((first.status, first.version), (200, want));
        assert!(
            !first.resumed,
            "{want:?}: a first connection is a full handshake"
        );
        let second = https_get(https, &client, "localhost", "/api/b").await;
        assert_eq!(second.status, 200);
        assert!(second.resumed, "{want:?}: the second connection resumes");
    }
    wait_metric(&gw, "portcullis_tls_handshakes_total{kind=\"full\"}", 2).await;
    wait_metric(&gw, "portcullis_tls_handshakes_total{kind=\"resumed\"}", 2).await;
    gw.stop().await;
}

#[runtimes]
async fn plain_http_and_stalled_handshakes_are_closed_without_holding_others_up(rt: Runtime) {
    let backend = Backend::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (files, _) = ca.issue(dir.path(), "local", &["localhost"]);
    let (gw, https) = https_gateway(rt, &config_for(backend.addr), vec![files], |o| {
        o.timeouts.header_read = Duration::from_secs(1);
    })
    .await;
    // Plain HTTP to the HTTPS port: a 400 that says so, then a close.
    let out = answer_to(https, get("/api/x").as_bytes()).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert!(text.ends_with("sent to an HTTPS port\n"), "{text}");
    assert_eq!(backend.requests().len(), 0);

    // Clients that connect and say nothing, or half a hello.
    let mut silent = TcpStream::connect(https).await.unwrap();
    let mut half = TcpStream::connect(https).await.unwrap();
    let hello = client_hello([3, 3], &[0xc02b]);
    half.write_all(&hello[..hello.len() / 2]).await.unwrap();
    // Meanwhile others are served.
    let client = Arc::new(ca.client(&[&TLS13, &TLS12]));
    assert_eq!(
        https_get(https, &client, "localhost", "/api/x")
            .await
            .status,
        200
    );
    // The header timeout closes the stalled ones.
    for stalled in [&mut silent, &mut half] {
        let mut out = Vec::new();
        let _ = within(
            "a stalled handshake is closed",
            stalled.read_to_end(&mut out),
        )
        .await;
    }
    wait_metric(
        &gw,
        "portcullis_tls_handshake_failures_total{reason=\"not_tls\"}",
        1,
    )
    .await;
    wait_metric(
        &gw,
        "portcullis_tls_handshake_failures_total{reason=\"timeout\"}",
        2,
    )
    .await;
    gw.stop().await;
}

#[runtimes]
async fn the_binary_serves_https_with_tls_cert_and_key(rt: Runtime) {
    let backend = Backend::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (files, _) = ca.issue(dir.path(), "local", &["localhost"]);
    let (cert, key) = (
        files.cert.display().to_string(),
        files.key.display().to_string(),
    );
    let gw = GatewayProcess::start(
        rt,
        &config_for(backend.addr),
        &[
            "--https-listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    )
    .await;
    let https = https_addr_from_log(&gw.log_text());
    let client = Arc::new(ca.client(&[&TLS13, &TLS12]));
    let r = https_get(https, &client, "localhost", "/api/x").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        backend
            .only_request()
            .header("x-forwarded-proto")
            .as_deref(),
        Some("https")
    );
}

/// The HTTPS address from the binary's "gateway listening" log line (`https`
/// is logged as `Some(addr)`).
fn https_addr_from_log(log: &str) -> SocketAddr {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| {
            let fields = v.get("fields")?;
            (fields.get("message")?.as_str()? == "gateway listening").then_some(())?;
            let https = fields.get("https")?.as_str()?;
            https.strip_prefix("Some(")?.strip_suffix(')')?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no HTTPS address in the log: {log}"))
}

#[runtimes]
async fn a_key_that_is_not_the_certificates_stops_the_start(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (one, _) = ca.issue(dir.path(), "one", &["localhost"]);
    let (other, _) = ca.issue(dir.path(), "other", &["localhost"]);
    let config_path = dir.path().join("gateway.json");
    write_atomically(
        &config_path,
        &serde_json::to_vec(&config(1, vec![])).unwrap(),
    );
    let mut options = GatewayOptions::new(config_path);
    options.listen = any_port();
    options.ops_listen = None;
    options.https = Some(HttpsOptions {
        listen: any_port(),
        certificates: vec![CertificateFiles {
            cert: one.cert.clone(),
            key: other.key,
        }],
        public_port: None,
    });
    let err = match Gateway::start(rt, options).await {
        Ok(_) => panic!("a gateway started with a key of another certificate"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("HTTPS listener") && err.contains("one.crt"),
        "{err}"
    );
}

#[runtimes]
async fn renewed_certificate_files_are_served_without_a_restart(rt: Runtime) {
    let backend = Backend::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (files, first_der) = ca.issue(dir.path(), "site", &["localhost"]);
    let (gw, https) = https_gateway(rt, &config_for(backend.addr), vec![files.clone()], |o| {
        o.reload_interval = Duration::from_millis(50);
    })
    .await;
    let trusting = Arc::new(ca.client(&[&TLS13, &TLS12]));
    let tcp = TcpStream::connect(https).await.unwrap();
    let mut open = tokio_rustls::TlsConnector::from(trusting)
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();

    // A broken renewal is refused: the certificate in force stays.
    std::fs::write(&files.cert, "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = https_get(https, &Arc::new(any_cert_client()), "localhost", "/api/x").await;
    assert_eq!(r.status, 200);
    assert!(r.leaf == first_der, "the certificate in force stays");

    // A good one is served from the next handshakes on.
    let (_, renewed_der) = ca.issue(dir.path(), "site", &["localhost"]);
    within("the renewed certificate is served", async {
        loop {
            let r = https_get(https, &Arc::new(any_cert_client()), "localhost", "/api/x").await;
            if r.leaf == renewed_der {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // The connection opened before still works.
    open.write_all(get("/api/still").as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = within("answer on the open connection", open.read(&mut buf))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 "));
    drop(open);
    gw.stop().await;
}

#[tokio::test]
async fn the_binary_wants_one_key_per_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (one, _) = ca.issue(dir.path(), "one", &["localhost"]);
    let (two, _) = ca.issue(dir.path(), "two", &["example.com"]);
    let config_path = dir.path().join("gateway.json");
    write_atomically(
        &config_path,
        &serde_json::to_vec(&config(1, vec![])).unwrap(),
    );
    let out = within(
        "the binary exits",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("gateway")
            .arg("--config")
            .arg(&config_path)
            .args(["--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0"])
            .args(["--https-listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(&one.cert)
            .arg("--tls-cert")
            .arg(&two.cert)
            .arg("--tls-key")
            .arg(&one.key)
            .env_clear()
            .envs(clean_env())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("one --tls-key per --tls-cert (got 2 certificates and 1 keys)"),
        "{stderr}"
    );
}
