//! `https://` backends: the gateway speaks TLS to them and verifies their certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::{runtimes, Gateway, Runtime};
use portcullis_driver::options::GatewayOptions;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// A CA, and a certificate for `localhost` it signed.
struct Pki {
    ca_pem: String,
    leaf_der: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");
    Pki {
        ca_pem: ca_cert.pem(),
        leaf_der: leaf.der().clone(),
        leaf_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

/// A TLS backend answering every request with its path; returns its port.
async fn tls_backend(pki: &Pki) -> u16 {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![pki.leaf_der.clone()], pki.leaf_key.clone_key())
        .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                // One request per connection is enough here; keep-alive is tested
                // over plain TCP.
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let target = head.split(' ').nth(1).unwrap_or("").to_owned();
                let body = format!("{{\"tls\":true,\"target\":\"{target}\"}}");
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

async fn start_gateway(
    rt: Runtime,
    dir: &tempfile::TempDir,
    port: u16,
    ca: Option<PathBuf>,
) -> Gateway {
    let config = format!(
        r#"{{"revision":1,"apis":[{{"id":"t","path":"t","serviceUrl":"https://localhost:{port}/base",
        "subscriptionRequired":false,"operations":[{{"id":"any","method":"*","urlTemplate":"/*"}}]}}]}}"#
    );
    let path = dir.path().join("gateway.json");
    std::fs::write(&path, config).expect("write config");
    let mut options = GatewayOptions::new(path);
    options.listen = "127.0.0.1:0".parse().expect("addr");
    options.ops_listen = None;
    options.upstream_ca = ca;
    Gateway::start(rt, options)
        .await
        .unwrap_or_else(|e| panic!("gateway starts: {e}"))
}

async fn get(gateway: &Gateway, path: &str) -> String {
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
    String::from_utf8_lossy(&response).into_owned()
}

#[runtimes(flavor = "current_thread")]
async fn https_backend_is_reached_over_verified_tls(rt: Runtime) {
    let pki = pki();
    let port = tls_backend(&pki).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("write ca");
    let gateway = start_gateway(rt, &dir, port, Some(ca)).await;
    let response = get(&gateway, "/t/items/1?x=2").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains(r#""target":"/base/items/1?x=2""#),
        "{response}"
    );
    gateway.shutdown().await;
}

#[runtimes(flavor = "current_thread")]
async fn https_backend_with_an_untrusted_certificate_gets_502(rt: Runtime) {
    let pki = pki();
    let port = tls_backend(&pki).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = start_gateway(rt, &dir, port, None).await;
    let response = get(&gateway, "/t/items/1").await;
    assert!(response.starts_with("HTTP/1.1 502"), "{response}");
    gateway.shutdown().await;
}
