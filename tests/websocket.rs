//! WebSocket APIs over real sockets, on both runtimes: a real WebSocket
//! client (tungstenite, blocking, on its own thread) through the gateway to a
//! real WebSocket echo backend (tungstenite too). The handshake runs the
//! onHandshake policies of the second corpus (subscription key, rate limit,
//! headers); then frames of every size go both ways; idle tunnels close; the
//! gateway's limit answers 503; a backend refusing the upgrade is answered as
//! it answered; shutdown closes open tunnels.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::policy_docs::{subscription, KEY_A, KEY_B};
use common::*;
use serde_json::{json, Value};
use tokio_rustls::rustls;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::server::{ErrorResponse, Request, Response as ServerResponse};
use tungstenite::{Error as WsError, HandshakeError, Message, WebSocket};

/// The onHandshake policy document of the second corpus.
const ON_HANDSHAKE: &str = include_str!("../core/tests/apim-corpus-2/websocket-onhandshake.xml");

/// A WebSocket echo backend: every text or binary message comes back as it
/// was; each handshake's request head is kept. `refuse`: every handshake is
/// answered 403 instead.
struct EchoBackend {
    addr: SocketAddr,
    handshakes: Arc<Mutex<Vec<Request>>>,
}

impl EchoBackend {
    fn start(refuse: bool) -> EchoBackend {
        Self::start_with(refuse, None)
    }

    /// With `tls`, a `wss://` backend.
    fn start_with(refuse: bool, tls: Option<Arc<rustls::ServerConfig>>) -> EchoBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let seen = handshakes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let seen = seen.clone();
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    Some(config) => {
                        let conn = rustls::ServerConnection::new(config).unwrap();
                        echo(rustls::StreamOwned::new(conn, stream), &seen, refuse)
                    }
                    None => echo(stream, &seen, refuse),
                });
            }
        });
        EchoBackend { addr, handshakes }
    }

    fn handshakes(&self) -> Vec<Request> {
        self.handshakes.lock().unwrap().clone()
    }
}

// The callback's error type is tungstenite's (a whole HTTP response).
#[allow(clippy::result_large_err)]
fn echo<S: std::io::Read + std::io::Write>(stream: S, seen: &Mutex<Vec<Request>>, refuse: bool) {
    let callback = |req: &Request, resp: ServerResponse| {
        seen.lock().unwrap().push(req.clone());
        if refuse {
            let mut no = ErrorResponse::new(Some("no sockets today".into()));
            *no.status_mut() = tungstenite::http::StatusCode::FORBIDDEN;
            return Err(no);
        }
        Ok(resp)
    };
    let Ok(mut ws) = tungstenite::accept_hdr(stream, callback) else {
        return;
    };
    loop {
        match ws.read() {
            Ok(msg @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(msg).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// The WebSocket API `chat` at `/chat` in front of `backend`, keys required,
/// its onHandshake operation with the corpus document.
fn chat_config(backend: SocketAddr) -> Value {
    json!({
        "revision": 1,
        "apis": [{
            "id": "chat",
            "displayName": "Chat",
            "type": "websocket",
            "path": "chat",
            "serviceUrl": format!("ws://{backend}/feed"),
            "subscriptionRequired": true,
            "operations": [{
                "id": "onHandshake", "method": "GET", "urlTemplate": "/",
                "policy": ON_HANDSHAKE
            }]
        }],
        "backends": [],
        "namedValues": [],
        "products": [],
        "subscriptions": [
            subscription("alice", "/apis/chat", KEY_A, "active"),
            subscription("bob", "/apis/chat", KEY_B, "active"),
        ]
    })
}

type Socket = WebSocket<TcpStream>;

/// Opens a WebSocket to `gw` at `path_and_query` with `key` in the APIM
/// header: the socket, or the handshake's HTTP status when it was refused.
async fn open(gw: SocketAddr, path_and_query: &str, key: Option<&str>) -> Result<Socket, u16> {
    let url = format!("ws://{gw}{path_and_query}");
    let key = key.map(str::to_owned);
    let result = tokio::task::spawn_blocking(move || {
        let mut req = url.into_client_request().unwrap();
        if let Some(key) = key {
            req.headers_mut()
                .insert("Ocp-Apim-Subscription-Key", key.parse().unwrap());
        }
        req.headers_mut()
            .insert("Authorization", "Bearer secret".parse().unwrap());
        let stream = TcpStream::connect(gw).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        match tungstenite::client(req, stream) {
            Ok((ws, resp)) => {
                assert_eq!(resp.status(), 101);
                Ok(ws)
            }
            Err(HandshakeError::Failure(WsError::Http(resp))) => Err(resp.status().as_u16()),
            Err(e) => panic!("handshake failed: {e}"),
        }
    });
    within("websocket handshake", result).await.unwrap()
}

/// Sends each message and reads its echo, on a blocking thread.
async fn echo_all(mut ws: Socket, messages: Vec<Message>) -> Socket {
    let run = tokio::task::spawn_blocking(move || {
        for msg in messages {
            ws.send(msg.clone()).unwrap();
            let back = ws.read().unwrap();
            assert_eq!(back, msg, "the echo of a {}-byte message", msg.len());
        }
        ws
    });
    within("echo", run).await.unwrap()
}

/// Reads until the connection ends; `true` if it ended (not a read timeout).
async fn ended(mut ws: Socket) -> bool {
    let run = tokio::task::spawn_blocking(move || loop {
        match ws.read() {
            Ok(_) => continue,
            Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    });
    within("tunnel end", run).await.unwrap()
}

#[runtimes]
async fn echo_through_the_gateway_with_a_subscription_key(rt: Runtime) {
    let backend = EchoBackend::start(false);
    let gw = TestGateway::start(rt, &chat_config(backend.addr)).await;
    let ws = open(gw.addr, "/chat?room=rust", Some(KEY_A)).await.unwrap();
    // Frames of every length encoding (7-bit, 16-bit, 64-bit), both ways.
    let mut messages = vec![Message::text(""), Message::text("hello")];
    for size in [1usize, 125, 126, 65_535, 65_536, 300_000] {
        let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        messages.push(Message::binary(bytes));
    }
    messages.push(Message::text("é".repeat(40_000)));
    let mut ws = echo_all(ws, messages).await;
    // The handshake went on with its policies' work, without the key.
    let seen = backend.handshakes();
    assert_eq!(seen.len(), 1);
    let h = &seen[0];
    assert_eq!(h.uri().path(), "/feed");
    assert_eq!(h.uri().query(), Some("room=rust"));
    let header = |name: &str| {
        h.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(header("x-subscription-name").as_deref(), Some("alice"));
    assert_eq!(header("x-chat-room").as_deref(), Some("rust"));
    assert_eq!(header("authorization"), None);
    assert_eq!(header("ocp-apim-subscription-key"), None);
    assert!(header("x-forwarded-for").is_some());
    // A closing handshake goes through and ends the connection.
    let closed = tokio::task::spawn_blocking(move || {
        ws.close(None).unwrap();
        loop {
            match ws.read() {
                Ok(_) => continue,
                Err(WsError::ConnectionClosed) => return true,
                Err(e) => panic!("after close: {e}"),
            }
        }
    });
    assert!(within("close", closed).await.unwrap());
    gw.stop().await;
}

#[runtimes]
async fn the_handshake_is_rate_limited_and_keyed(rt: Runtime) {
    let backend = EchoBackend::start(false);
    let gw = TestGateway::start(rt, &chat_config(backend.addr)).await;
    // No key, a wrong key: 401, and nothing reaches the backend.
    assert_eq!(open(gw.addr, "/chat", None).await.err(), Some(401));
    assert_eq!(
        open(gw.addr, "/chat", Some("wrong-key")).await.err(),
        Some(401)
    );
    assert!(backend.handshakes().is_empty());
    // Three handshakes a minute per subscription: the fourth gets 429.
    let mut open_sockets = Vec::new();
    for _ in 0..3 {
        open_sockets.push(open(gw.addr, "/chat", Some(KEY_A)).await.unwrap());
    }
    assert_eq!(open(gw.addr, "/chat", Some(KEY_A)).await.err(), Some(429));
    // Another subscription has its own count; the key may be in the query.
    let query = format!("/chat?subscription-key={KEY_B}");
    let ws = open(gw.addr, &query, None).await.unwrap();
    let ws = echo_all(ws, vec![Message::text("still here")]).await;
    assert_eq!(backend.handshakes().len(), 4);
    drop((ws, open_sockets));
    gw.stop().await;
}

#[runtimes]
async fn a_backend_refusing_the_upgrade_is_answered_as_it_answered(rt: Runtime) {
    let backend = EchoBackend::start(true);
    let gw = TestGateway::start(rt, &chat_config(backend.addr)).await;
    assert_eq!(open(gw.addr, "/chat", Some(KEY_A)).await.err(), Some(403));
    gw.stop().await;
}

#[runtimes]
async fn an_idle_tunnel_is_closed(rt: Runtime) {
    let backend = EchoBackend::start(false);
    let gw = TestGateway::start_with(rt, &chat_config(backend.addr), |o| {
        o.timeouts.tunnel_idle = Duration::from_millis(600);
    })
    .await;
    let ws = open(gw.addr, "/chat", Some(KEY_A)).await.unwrap();
    // Traffic keeps it open past the idle time.
    let mut ws = ws;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        ws = echo_all(ws, vec![Message::text("tick")]).await;
    }
    let started = std::time::Instant::now();
    assert!(ended(ws).await, "the idle tunnel is closed");
    assert!(started.elapsed() < Duration::from_secs(10));
    gw.stop().await;
}

#[runtimes]
async fn the_gateway_limits_open_websockets(rt: Runtime) {
    let backend = EchoBackend::start(false);
    let gw = TestGateway::start_with(rt, &chat_config(backend.addr), |o| {
        o.max_websockets = 1;
    })
    .await;
    let ws = open(gw.addr, "/chat", Some(KEY_A)).await.unwrap();
    let ws = echo_all(ws, vec![Message::text("one")]).await;
    // A second one at once: 503, without reaching the backend.
    assert_eq!(open(gw.addr, "/chat", Some(KEY_B)).await.err(), Some(503));
    assert_eq!(backend.handshakes().len(), 1);
    // Once the first is closed its room is free again.
    let closed = tokio::task::spawn_blocking(move || {
        let mut ws = ws;
        ws.close(None).unwrap();
        while ws.read().is_ok() {}
    });
    within("close", closed).await.unwrap();
    let mut reopened = None;
    for _ in 0..50 {
        match open(gw.addr, "/chat", Some(KEY_B)).await {
            Ok(ws) => {
                reopened = Some(ws);
                break;
            }
            Err(503) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(status) => panic!("reopening: {status}"),
        }
    }
    let ws = reopened.expect("room again after the first closed");
    echo_all(ws, vec![Message::text("two")]).await;
    gw.stop().await;
}

#[runtimes]
async fn shutdown_closes_open_tunnels(rt: Runtime) {
    let backend = EchoBackend::start(false);
    let gw = TestGateway::start(rt, &chat_config(backend.addr)).await;
    let ws = open(gw.addr, "/chat", Some(KEY_A)).await.unwrap();
    let ws = echo_all(ws, vec![Message::text("before")]).await;
    let started = std::time::Instant::now();
    gw.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an open tunnel does not hold the shutdown for its grace period"
    );
    assert!(ended(ws).await, "the tunnel is closed");
}

/// A CA's PEM and a `localhost` server configuration it signed.
fn tls_backend_config() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
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
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    (ca_cert.pem(), Arc::new(config))
}

#[runtimes]
async fn a_wss_backend_is_reached_over_tls(rt: Runtime) {
    let (ca_pem, tls) = tls_backend_config();
    let backend = EchoBackend::start_with(false, Some(tls));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let mut doc = chat_config(backend.addr);
    doc["apis"][0]["serviceUrl"] = json!(format!("wss://localhost:{}/feed", backend.addr.port()));
    let gw = TestGateway::start_with(rt, &doc, |o| o.upstream_ca = Some(ca_file)).await;
    let ws = open(gw.addr, "/chat", Some(KEY_A)).await.unwrap();
    let big: Vec<u8> = (0..100_000).map(|i| (i % 253) as u8).collect();
    echo_all(ws, vec![Message::text("over tls"), Message::binary(big)]).await;
    assert_eq!(backend.handshakes()[0].uri().path(), "/feed");
    gw.stop().await;
}

/// A raw backend: answers the first handshake with a 101, then writes
/// `total` bytes as fast as the gateway takes them, with a write timeout;
/// reports how many it wrote before the first timeout (all of them if none).
fn flooding_backend(total: usize) -> (SocketAddr, std::sync::mpsc::Receiver<usize>) {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            head.extend_from_slice(&buf[..n]);
        }
        s.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        )
        .unwrap();
        s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut written = 0;
        let mut reported = false;
        while written < total {
            match s.write(&chunk[..chunk.len().min(total - written)]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if !reported {
                        tx.send(written).unwrap();
                        reported = true;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    if !reported {
                        tx.send(written).unwrap();
                        reported = true;
                    }
                }
                Err(e) => panic!("backend write: {e}"),
            }
        }
        if !reported {
            tx.send(written).unwrap();
        }
    });
    (addr, rx)
}

#[runtimes]
async fn a_client_that_does_not_read_holds_the_backend_back(rt: Runtime) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const TOTAL: usize = 256 * 1024 * 1024;
    let (backend, written) = flooding_backend(TOTAL);
    let mut doc = chat_config(backend);
    doc["apis"][0]["subscriptionRequired"] = json!(false);
    doc["apis"][0]["operations"][0]["policy"] = Value::Null;
    let gw = TestGateway::start(rt, &doc).await;
    let mut c = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    c.write_all(
        b"GET /chat HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    // The client reads nothing: the backend is held back by the gateway's
    // bounded buffers (plus the sockets' own), far short of what it has.
    let held_at = within(
        "backend blocked",
        tokio::task::spawn_blocking(move || written.recv_timeout(Duration::from_secs(25)).unwrap()),
    )
    .await
    .unwrap();
    assert!(
        held_at < TOTAL / 4,
        "the backend wrote {held_at} bytes unread"
    );
    // Reading again, everything arrives.
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let mut head_done = false;
    let mut pending = Vec::new();
    while got < TOTAL {
        let n = within("tunnel read", c.read(&mut buf)).await.unwrap();
        assert!(n > 0, "closed after {got} bytes");
        if head_done {
            got += n;
        } else {
            pending.extend_from_slice(&buf[..n]);
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                assert!(pending.starts_with(b"HTTP/1.1 101 "));
                got += pending.len() - end - 4;
                head_done = true;
            }
        }
    }
    assert_eq!(got, TOTAL);
    gw.stop().await;
}
