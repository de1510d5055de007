//! `Callouts::perform` against real servers on loopback: plain and TLS, keep-alive,
//! body framings, timeouts, refused connections and bad responses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use portcullis_core::callout::{CalloutFailureKind, CalloutLimits, CalloutRequest};
use portcullis_runtime_tokio::{CalloutFailure, Callouts};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// What the test server does with one request.
enum Action {
    /// Write these bytes and wait for the next request.
    Respond(Vec<u8>),
    /// Write these bytes and close.
    RespondAndClose(Vec<u8>),
    /// Close without answering.
    Close,
    /// Never answer (the connection stays open until the client goes).
    Hang,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: Vec<u8>,
    /// Index of the request on its connection (0 = first).
    index: usize,
}

type Handler = dyn Fn(&Seen) -> Action + Send + Sync;

/// A test server: its address, how many connections it accepted, what it saw.
struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(tls: Option<TlsAcceptor>, handler: Arc<Handler>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = Server {
        addr,
        accepted: accepted.clone(),
        seen: seen.clone(),
    };
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            let seen = seen.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            connection(stream, handler, seen).await;
                        }
                    }
                    None => connection(tcp, handler, seen).await,
                }
            });
        }
    });
    server
}

async fn plain(handler: impl Fn(&Seen) -> Action + Send + Sync + 'static) -> Server {
    serve(None, Arc::new(handler)).await
}

/// Reads requests (head plus Content-Length body) and acts on each.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    handler: Arc<Handler>,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut index = 0;
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        let request = Seen { head, body, index };
        index += 1;
        seen.lock().unwrap().push(request.clone());
        match handler(&request) {
            Action::Respond(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Action::RespondAndClose(bytes) => {
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
                return;
            }
            Action::Close => return,
            Action::Hang => {
                // Until the client closes.
                while let Ok(n) = stream.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                }
                return;
            }
        }
    }
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Test: yes\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn get(url: String) -> CalloutRequest {
    CalloutRequest::get(url, Duration::from_secs(10))
}

fn callouts() -> Callouts {
    Callouts::new(None).unwrap()
}

#[tokio::test]
async fn plain_get_with_content_length() {
    let server = plain(|_| Action::Respond(ok("hello"))).await;
    let mut req = get(server.url("http", "/a/b?x=1 2"));
    req.headers.push(("X-Caller".into(), "test".into()));
    let response = callouts().perform(req).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.reason, "OK");
    assert_eq!(response.headers.get("x-test"), Some("yes"));
    assert_eq!(response.body.as_deref(), Some(&b"hello"[..]));
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let head = &seen[0].head;
    assert!(head.starts_with("GET /a/b?x=1%202 HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nHost: {}\r\n", server.addr)),
        "{head}"
    );
    assert!(head.contains("\r\nX-Caller: test\r\n"), "{head}");
    assert!(head.contains("\r\nConnection: keep-alive\r\n"), "{head}");
}

#[tokio::test]
async fn connections_are_kept_alive_and_reused() {
    let server = plain(|seen| Action::Respond(ok(&seen.index.to_string()))).await;
    let callouts = callouts();
    for i in 0..3 {
        let response = callouts
            .perform(get(server.url("http", "/")))
            .await
            .unwrap();
        assert_eq!(response.body.as_deref(), Some(i.to_string().as_bytes()));
    }
    assert_eq!(server.accepted(), 1);
    // Clones share the pool.
    let clone = callouts.clone();
    clone.perform(get(server.url("http", "/"))).await.unwrap();
    assert_eq!(server.accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_from_spawned_tasks() {
    let server = plain(|seen| Action::Respond(ok(seen.head.split(' ').nth(1).unwrap_or("")))).await;
    let callouts = callouts();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let callouts = callouts.clone();
        let url = server.url("http", &format!("/{i}"));
        // `perform` is Send: it can run on any task.
        tasks.push(tokio::spawn(
            async move { callouts.perform(get(url)).await },
        ));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let response = task.await.unwrap().unwrap();
        assert_eq!(response.body.as_deref(), Some(format!("/{i}").as_bytes()));
    }
    assert!(server.accepted() <= 16);
    // Idle connections went back to the pool: more calls open nothing new.
    let before = server.accepted();
    for _ in 0..4 {
        callouts
            .perform(get(server.url("http", "/")))
            .await
            .unwrap();
    }
    assert_eq!(server.accepted(), before);
}

#[tokio::test]
async fn post_with_body_and_chunked_response() {
    let server = plain(|seen| {
        let mut out = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for piece in seen.body.chunks(3) {
            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        Action::Respond(out)
    })
    .await;
    let req = CalloutRequest {
        method: "POST".into(),
        url: server.url("http", "/echo"),
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: Bytes::from_static(b"the request body"),
        timeout: Duration::from_secs(10),
    };
    let callouts = callouts();
    let response = callouts.perform(req).await.unwrap();
    assert_eq!(response.status, 201);
    assert_eq!(response.body.as_deref(), Some(&b"the request body"[..]));
    assert_eq!(response.headers.get("transfer-encoding"), None);
    let seen = server.seen();
    assert!(seen[0].head.contains("\r\nContent-Length: 16\r\n"));
    assert_eq!(seen[0].body, b"the request body");
    // The chunked response left the connection reusable.
    callouts
        .perform(get(server.url("http", "/")))
        .await
        .unwrap();
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn close_delimited_response() {
    let server = plain(|_| {
        Action::RespondAndClose(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end".to_vec(),
        )
    })
    .await;
    let callouts = callouts();
    let response = callouts
        .perform(get(server.url("http", "/")))
        .await
        .unwrap();
    assert_eq!(response.body.as_deref(), Some(&b"to the end"[..]));
    // Not pooled: the next call opens a new connection.
    callouts
        .perform(get(server.url("http", "/")))
        .await
        .unwrap();
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn pooled_connection_closed_by_the_server_is_replaced() {
    // Each connection answers one request (saying keep-alive), then closes on the
    // next one without answering: the pooled connection looks open until used.
    let server = plain(|seen| {
        if seen.index == 0 {
            Action::Respond(ok("first"))
        } else {
            Action::Close
        }
    })
    .await;
    let callouts = callouts();
    for _ in 0..3 {
        let response = callouts
            .perform(get(server.url("http", "/")))
            .await
            .unwrap();
        assert_eq!(response.body.as_deref(), Some(&b"first"[..]));
    }
    assert_eq!(server.accepted(), 3);
    // A POST is not repeated: it fails rather than risk doing it twice.
    let post = CalloutRequest {
        method: "POST".into(),
        body: Bytes::from_static(b"x"),
        ..get(server.url("http", "/"))
    };
    let err = callouts.perform(post).await.unwrap_err();
    assert_eq!(err.kind(), CalloutFailureKind::Connection, "{err}");
}

#[tokio::test]
async fn timeout() {
    let server = plain(|_| Action::Hang).await;
    let req = CalloutRequest {
        timeout: Duration::from_millis(300),
        ..get(server.url("http", "/slow"))
    };
    let started = std::time::Instant::now();
    let err = callouts().perform(req).await.unwrap_err();
    assert!(matches!(err, CalloutFailure::Timeout(_)), "{err}");
    assert_eq!(err.kind(), CalloutFailureKind::Timeout);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test]
async fn connection_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = callouts()
        .perform(get(format!("http://{addr}/")))
        .await
        .unwrap_err();
    assert!(matches!(err, CalloutFailure::Connect { .. }), "{err}");
    assert_eq!(err.kind(), CalloutFailureKind::Connect);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn closed_without_response() {
    let server = plain(|_| Action::Close).await;
    let err = callouts()
        .perform(get(server.url("http", "/")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CalloutFailureKind::Connection, "{err}");
}

#[tokio::test]
async fn truncated_response() {
    let server = plain(|_| {
        Action::RespondAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec())
    })
    .await;
    let err = callouts()
        .perform(get(server.url("http", "/")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CalloutFailureKind::Connection, "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[tokio::test]
async fn garbage_response() {
    let server = plain(|_| Action::Respond(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec())).await;
    let err = callouts()
        .perform(get(server.url("http", "/")))
        .await
        .unwrap_err();
    assert!(matches!(err, CalloutFailure::Response { .. }), "{err}");
    assert_eq!(err.kind(), CalloutFailureKind::Protocol);
}

#[tokio::test]
async fn oversized_response() {
    let server = plain(|_| Action::Respond(ok(&"x".repeat(2000)))).await;
    let callouts = callouts().with_limits(CalloutLimits {
        max_body_bytes: 1000,
        ..CalloutLimits::default()
    });
    let err = callouts
        .perform(get(server.url("http", "/")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CalloutFailureKind::Protocol);
    assert!(err.to_string().contains("larger than 1000"), "{err}");
}

#[tokio::test]
async fn invalid_request() {
    let callouts = callouts();
    for url in ["ftp://127.0.0.1/", "not a url", "http://u@127.0.0.1/"] {
        let err = callouts.perform(get(url.into())).await.unwrap_err();
        assert!(matches!(err, CalloutFailure::InvalidRequest(_)), "{err}");
        assert_eq!(err.kind(), CalloutFailureKind::InvalidRequest);
    }
    let mut req = get("http://127.0.0.1:1/".into());
    req.headers.push(("X".into(), "a\r\nB: c".into()));
    let err = callouts.perform(req).await.unwrap_err();
    assert_eq!(err.kind(), CalloutFailureKind::InvalidRequest);
}

// ---- TLS ----

/// A CA (PEM) and a TLS acceptor with a certificate for 127.0.0.1 it signed.
fn pki() -> (String, TlsAcceptor) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(leaf.der().to_vec())], key)
        .unwrap();
    (ca_cert.pem(), TlsAcceptor::from(Arc::new(config)))
}

#[tokio::test]
async fn https_with_an_extra_ca() {
    let (ca_pem, acceptor) = pki();
    let server = serve(
        Some(acceptor),
        Arc::new(|seen: &Seen| Action::Respond(ok(&format!("tls {}", seen.index)))),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let callouts = Callouts::new(Some(&ca)).unwrap();
    for i in 0..2 {
        let response = callouts
            .perform(get(server.url("https", "/secure")))
            .await
            .unwrap();
        assert_eq!(
            response.body.as_deref(),
            Some(format!("tls {i}").as_bytes())
        );
    }
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn https_with_an_untrusted_certificate_fails_to_connect() {
    let (_, acceptor) = pki();
    let server = serve(
        Some(acceptor),
        Arc::new(|_: &Seen| Action::Respond(ok("no"))),
    )
    .await;
    let err = callouts()
        .perform(get(server.url("https", "/")))
        .await
        .unwrap_err();
    assert!(matches!(err, CalloutFailure::Connect { .. }), "{err}");
    assert_eq!(err.kind(), CalloutFailureKind::Connect);
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn https_close_delimited_response() {
    let (ca_pem, acceptor) = pki();
    let server = serve(
        Some(acceptor),
        Arc::new(|_: &Seen| {
            Action::RespondAndClose(b"HTTP/1.1 200 OK\r\n\r\nuntil close".to_vec())
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let response = Callouts::new(Some(&ca))
        .unwrap()
        .perform(get(server.url("https", "/")))
        .await
        .unwrap();
    assert_eq!(response.body.as_deref(), Some(&b"until close"[..]));
}
