//! `https://` backends through futures-rustls: the smol gateway speaks TLS to them
//! and verifies their certificate against the configured CA.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use futures_rustls::rustls::ServerConfig;
use futures_rustls::TlsAcceptor;
use portcullis_runtime_smol::{Gateway, GatewayOptions};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::Async;
use support::*;

/// A CA (PEM), and a certificate and key for `localhost` it signed.
fn pki() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    (
        ca_cert.pem(),
        leaf.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
}

/// A TLS backend answering every request with its target; returns its port.
fn tls_backend(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> u16 {
    let provider = Arc::new(futures_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = Async::<TcpListener>::bind(any_port()).unwrap();
    let port = listener.get_ref().local_addr().unwrap().port();
    smol::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            smol::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = BytesMut::new();
                let mut chunk = [0u8; 4096];
                loop {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        let _ = buf.split_to(end + 4);
                        let target = head.split(' ').nth(1).unwrap_or("").to_owned();
                        let out = response(200, &[], target.as_bytes());
                        if tls.write_all(&out).await.is_err() || tls.flush().await.is_err() {
                            return;
                        }
                        continue;
                    }
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            })
            .detach();
        }
    })
    .detach();
    port
}

#[test]
fn proxies_to_an_https_backend_signed_by_the_configured_ca() {
    smol::block_on(async {
        let (ca_pem, cert, key) = pki();
        let port = tls_backend(cert, key);
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_pem).unwrap();
        let path = dir.path().join("gateway.json");
        let doc = serde_json::json!({
            "revision": 1,
            "apis": [{
                "id": "api", "path": "api",
                "serviceUrl": format!("https://localhost:{port}/secure"),
                "subscriptionRequired": false,
                "operations": [{"id": "any", "method": "*", "urlTemplate": "/*"}]
            }]
        });
        write_atomically(&path, doc.to_string().as_bytes());

        let start = |trust: bool| {
            let mut options = GatewayOptions::new(path.clone());
            options.listen = any_port();
            options.ops_listen = None;
            options.shutdown_grace = Duration::from_secs(2);
            if trust {
                options.upstream_ca = Some(ca.clone());
            }
            Gateway::start(options)
        };
        let gw = within("start", start(true)).await.expect("starts");
        let mut c = Client::connect(gw.local_addr()).await;
        for _ in 0..3 {
            let a = c.get("/api/x").await;
            assert_eq!((a.status, a.body_str().as_str()), (200, "/secure/x"));
        }
        within("shutdown", gw.shutdown()).await;

        // Without the CA the certificate is not trusted: no request reaches it.
        let gw = within("start", start(false)).await.expect("starts");
        let a = get(gw.local_addr(), "/api/x").await;
        assert!(a.status >= 500, "{}", a.status);
        within("shutdown", gw.shutdown()).await;
    })
}
