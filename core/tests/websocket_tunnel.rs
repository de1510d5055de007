//! WebSocket APIs in the connection machine: the handshake goes to the
//! backend with its Upgrade, a `101` turns the connection into a tunnel that
//! relays bytes both ways whatever the cuts, each side's close is passed on as
//! a half-close, and the tunnel ends when both sides closed or it idles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use portcullis_core::config::{CompiledConfig, Snapshot};
use portcullis_core::http::Limits;
use portcullis_core::machine::Machine;
use portcullis_core::proxy::*;
use proptest::prelude::*;

struct Fixed(Arc<CompiledConfig>);

impl ConfigSource for Fixed {
    fn current(&self) -> Option<Arc<CompiledConfig>> {
        Some(self.0.clone())
    }
}

const CONFIG: &str = r#"{
  "revision": 1,
  "apis": [{
    "id": "chat", "type": "websocket", "path": "chat",
    "serviceUrl": "ws://backend.test:9000/socket",
    "subscriptionRequired": false,
    "operations": [{"id": "onHandshake", "method": "GET", "urlTemplate": "/"}]
  }, {
    "id": "plain", "path": "plain",
    "serviceUrl": "http://backend.test:9001",
    "subscriptionRequired": false,
    "operations": [{"id": "get", "method": "GET", "urlTemplate": "/"}]
  }],
  "backends": [], "namedValues": []
}"#;

#[path = "support/sink.rs"]
mod sink;

fn conn(now: Instant) -> ProxyConn {
    conn_with(now, portcullis_core::telemetry::discard())
}

fn conn_with(
    now: Instant,
    telemetry: Arc<dyn portcullis_core::telemetry::RecordSink>,
) -> ProxyConn {
    let snapshot = Snapshot::from_json(CONFIG.as_bytes()).expect("parses");
    let config = Arc::new(CompiledConfig::compile(snapshot).expect("compiles"));
    let settings = Arc::new(ConnSettings {
        limits: Limits::default(),
        timeouts: Timeouts::default(),
        proto: "http",
        config: Arc::new(Fixed(config)),
        policy: PolicyEnv::default(),
        telemetry,
        allow_underscores_in_headers: false,
        https_port: None,
    });
    ProxyConn::new(settings, "192.0.2.7", IdSeq::default(), now)
}

const HANDSHAKE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

const SWITCH: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

const SWITCHED: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\
    Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nConnection: Upgrade\r\n\
    Upgrade: websocket\r\n\r\n";

/// Everything the machine did, as a driver with instant sockets sees it.
#[derive(Default)]
struct Seen {
    backend: Vec<u8>,
    client: Vec<u8>,
    connects: Vec<bool>,
    releases: Vec<bool>,
    closed: bool,
    upstream_shut: bool,
    client_shut: bool,
}

/// Drains events and pending bytes (and honours shutdown requests).
fn drain(conn: &mut ProxyConn, seen: &mut Seen, now: Instant) {
    loop {
        let mut progressed = false;
        while let Some(event) = conn.poll_event() {
            progressed = true;
            match event {
                Event::ConnectUpstream { target, fresh } => {
                    assert_eq!(
                        fresh,
                        target.is_tunnel(),
                        "a handshake never takes a pooled connection"
                    );
                    seen.connects.push(target.is_tunnel());
                    conn.handle_upstream_connected(false, now);
                }
                Event::ReleaseUpstream { reuse } => seen.releases.push(reuse),
                Event::CloseClient { .. } => seen.closed = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        let up = conn.upstream_pending().to_vec();
        if !up.is_empty() {
            seen.backend.extend_from_slice(&up);
            conn.upstream_written(up.len(), now);
            progressed = true;
        }
        let down = conn.client_pending().to_vec();
        if !down.is_empty() {
            seen.client.extend_from_slice(&down);
            conn.client_written(down.len(), now);
            progressed = true;
        }
        if conn.wants_upstream_shutdown() {
            seen.upstream_shut = true;
            conn.upstream_shut_down(now);
            progressed = true;
        }
        if conn.wants_client_shutdown() {
            seen.client_shut = true;
            conn.client_shut_down(now);
            progressed = true;
        }
        conn.check_invariants();
        if !progressed {
            return;
        }
    }
}

/// The backend's view of the forwarded handshake head.
fn forwarded_head(seen: &Seen) -> String {
    let end = seen
        .backend
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    String::from_utf8_lossy(&seen.backend[..end]).into_owned()
}

/// Cuts `bytes` into pieces whose sizes cycle through `cuts`.
fn pieces(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let (mut at, mut i) = (0, 0);
    while at < bytes.len() {
        let n = cuts[i % cuts.len()].min(bytes.len() - at);
        out.push(bytes[at..at + n].to_vec());
        at += n;
        i += 1;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_tunnel_relays_any_split_both_ways(
        to_backend in proptest::collection::vec(any::<u8>(), 0..3000),
        to_client in proptest::collection::vec(any::<u8>(), 0..3000),
        client_cuts in proptest::collection::vec(1usize..300, 1..6),
        backend_cuts in proptest::collection::vec(1usize..300, 1..6),
        client_closes_first in any::<bool>(),
    ) {
        let now = Instant::now();
        let mut conn = conn(now);
        let mut seen = Seen::default();
        for piece in pieces(HANDSHAKE, &client_cuts) {
            conn.handle_client_data(&piece, now);
            drain(&mut conn, &mut seen, now);
        }
        prop_assert_eq!(&seen.connects, &vec![true]);
        let head = forwarded_head(&seen);
        prop_assert!(head.starts_with("GET /socket HTTP/1.1\r\n"), "{}", head);
        prop_assert!(head.contains("\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"), "{}", head);
        prop_assert!(head.contains("\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"), "{}", head);
        seen.backend.clear();
        // The backend's 101 and its first frames may come in one read.
        let mut backend_bytes = SWITCH.to_vec();
        backend_bytes.extend_from_slice(&to_client);
        let mut from_backend: std::collections::VecDeque<_> = pieces(&backend_bytes, &backend_cuts).into();
        let mut from_client: std::collections::VecDeque<_> = pieces(&to_backend, &client_cuts).into();
        let mut client_sending = false;
        while !from_backend.is_empty() || !from_client.is_empty() {
            if let Some(piece) = from_backend.pop_front() {
                prop_assert!(conn.wants_upstream_read());
                conn.handle_upstream_data(&piece, now);
                drain(&mut conn, &mut seen, now);
                client_sending = seen.client.len() >= SWITCHED.len();
            }
            if client_sending {
                if let Some(piece) = from_client.pop_front() {
                    prop_assert!(conn.wants_client_read());
                    conn.handle_client_data(&piece, now);
                    drain(&mut conn, &mut seen, now);
                }
            }
        }
        prop_assert_eq!(&seen.client[..SWITCHED.len()], SWITCHED);
        prop_assert_eq!(&seen.client[SWITCHED.len()..], &to_client[..]);
        prop_assert_eq!(&seen.backend, &to_backend);
        prop_assert!(!seen.closed);
        // Each side's close goes to the other as a half-close; the tunnel
        // ends when both have closed.
        if client_closes_first {
            conn.handle_client_data(&[], now);
            drain(&mut conn, &mut seen, now);
            prop_assert!(seen.upstream_shut && !seen.client_shut && !seen.closed);
            prop_assert!(conn.wants_upstream_read(), "the backend may still answer");
            conn.handle_upstream_data(b"late", now);
            drain(&mut conn, &mut seen, now);
            prop_assert!(seen.client.ends_with(b"late"));
            conn.handle_upstream_data(&[], now);
        } else {
            conn.handle_upstream_data(&[], now);
            drain(&mut conn, &mut seen, now);
            prop_assert!(seen.client_shut && !seen.upstream_shut && !seen.closed);
            prop_assert!(conn.wants_client_read(), "the client may still send");
            conn.handle_client_data(b"late", now);
            drain(&mut conn, &mut seen, now);
            prop_assert!(seen.backend.ends_with(b"late"));
            conn.handle_client_data(&[], now);
        }
        drain(&mut conn, &mut seen, now);
        prop_assert!(seen.closed && seen.client_shut && seen.upstream_shut);
        prop_assert_eq!(&seen.releases, &vec![false], "a tunnel's backend connection is never pooled");
    }
}

/// Runs the handshake and the backend's 101; the machine is then a tunnel.
fn tunnel(now: Instant) -> (ProxyConn, Seen) {
    let mut conn = conn(now);
    let mut seen = Seen::default();
    conn.handle_client_data(HANDSHAKE, now);
    drain(&mut conn, &mut seen, now);
    conn.handle_upstream_data(SWITCH, now);
    drain(&mut conn, &mut seen, now);
    assert_eq!(seen.client, SWITCHED);
    (conn, seen)
}

#[test]
fn an_idle_tunnel_closes_and_traffic_keeps_it_open() {
    let start = Instant::now();
    let (mut conn, mut seen) = tunnel(start);
    let idle = Timeouts::default().tunnel_idle;
    assert_eq!(conn.poll_timeout(), Some(start + idle));
    let later = start + idle / 2;
    conn.handle_upstream_data(b"ping", later);
    drain(&mut conn, &mut seen, later);
    assert_eq!(conn.poll_timeout(), Some(later + idle));
    conn.handle_timeout(start + idle);
    drain(&mut conn, &mut seen, start + idle);
    assert!(!seen.closed, "moved half-way: still open");
    conn.handle_timeout(later + idle);
    drain(&mut conn, &mut seen, later + idle);
    assert!(seen.closed);
    assert_eq!(seen.releases, vec![false]);
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn shutdown_ends_a_tunnel() {
    let now = Instant::now();
    let (mut conn, mut seen) = tunnel(now);
    conn.begin_shutdown();
    drain(&mut conn, &mut seen, now);
    assert!(seen.closed);
    assert_eq!(seen.releases, vec![false]);
}

#[test]
fn a_backend_failure_ends_a_tunnel() {
    let now = Instant::now();
    let (mut conn, mut seen) = tunnel(now);
    conn.handle_upstream_failed(UpstreamFailure::Io, now);
    drain(&mut conn, &mut seen, now);
    assert!(seen.closed);
}

#[test]
fn a_refused_upgrade_is_an_ordinary_response() {
    let now = Instant::now();
    let mut conn = conn(now);
    let mut seen = Seen::default();
    conn.handle_client_data(HANDSHAKE, now);
    drain(&mut conn, &mut seen, now);
    conn.handle_upstream_data(
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno",
        now,
    );
    drain(&mut conn, &mut seen, now);
    let text = String::from_utf8_lossy(&seen.client);
    assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nno"), "{text}");
    assert!(!seen.closed, "the connection stays an HTTP one");
    // The backend did not switch: its connection is a plain HTTP one again.
    assert_eq!(seen.releases, vec![true]);
    // The next request is plain HTTP again.
    seen.client.clear();
    conn.handle_client_data(b"GET /plain HTTP/1.1\r\nHost: gw\r\n\r\n", now);
    drain(&mut conn, &mut seen, now);
    assert_eq!(seen.connects, vec![true, false]);
}

#[test]
fn the_gateway_limit_answers_503() {
    let now = Instant::now();
    let mut conn = conn(now);
    conn.handle_client_data(HANDSHAKE, now);
    let Some(Event::ConnectUpstream { target, .. }) = conn.poll_event() else {
        panic!("expected a connect")
    };
    assert!(target.is_tunnel());
    conn.handle_upstream_failed(UpstreamFailure::TunnelLimit, now);
    let mut seen = Seen::default();
    drain(&mut conn, &mut seen, now);
    let text = String::from_utf8_lossy(&seen.client);
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
}

#[test]
fn bad_handshakes_get_400_or_426() {
    let now = Instant::now();
    let cases: [(&[u8], &str); 2] = [
        (
            b"GET /chat HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n",
            "HTTP/1.1 400 ",
        ),
        (
            b"GET /chat HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
            "HTTP/1.1 426 ",
        ),
    ];
    for (request, status) in cases {
        let mut conn = conn(now);
        let mut seen = Seen::default();
        conn.handle_client_data(request, now);
        drain(&mut conn, &mut seen, now);
        let text = String::from_utf8_lossy(&seen.client);
        assert!(text.starts_with(status), "{text}");
        assert!(seen.connects.is_empty(), "nothing reaches the backend");
        assert!(seen.closed);
    }
    let mut conn = conn(now);
    let mut seen = Seen::default();
    conn.handle_client_data(&HANDSHAKE.to_vec()[..].replace_version(), now);
    drain(&mut conn, &mut seen, now);
    assert!(String::from_utf8_lossy(&seen.client).contains("Sec-WebSocket-Version: 13\r\n"));
}

trait ReplaceVersion {
    fn replace_version(&self) -> Vec<u8>;
}

impl ReplaceVersion for [u8] {
    fn replace_version(&self) -> Vec<u8> {
        String::from_utf8_lossy(self)
            .replace("Version: 13", "Version: 7")
            .into_bytes()
    }
}

#[test]
fn an_upgrade_on_an_http_api_is_not_forwarded() {
    let now = Instant::now();
    let mut conn = conn(now);
    let mut seen = Seen::default();
    let request = String::from_utf8_lossy(HANDSHAKE).replace("/chat", "/plain");
    conn.handle_client_data(request.as_bytes(), now);
    drain(&mut conn, &mut seen, now);
    assert_eq!(seen.connects, vec![false]);
    let head = forwarded_head(&seen);
    assert!(!head.to_ascii_lowercase().contains("upgrade"), "{head}");
    // A backend switching anyway is a backend bug.
    conn.handle_upstream_data(SWITCH, now);
    drain(&mut conn, &mut seen, now);
    assert!(String::from_utf8_lossy(&seen.client).starts_with("HTTP/1.1 502 "));
}

#[test]
fn the_handshake_is_one_record_with_every_byte_relayed() {
    let start = Instant::now();
    let sink = Arc::new(sink::Sink::new(
        portcullis_core::telemetry::TelemetrySettings {
            upload: true,
            ..Default::default()
        },
    ));
    let mut conn = conn_with(start, sink.clone());
    let mut seen = Seen::default();
    conn.handle_client_data(HANDSHAKE, start);
    drain(&mut conn, &mut seen, start);
    conn.handle_upstream_data(SWITCH, start);
    drain(&mut conn, &mut seen, start);
    assert!(
        sink.take_records().is_empty(),
        "reported when the tunnel ends"
    );
    let later = start + std::time::Duration::from_secs(5);
    conn.handle_client_data(&[0x81, 0x82, 1, 2, 3, 4, 5, 6], later);
    conn.handle_upstream_data(&[0x81, 0x02, b'h', b'i'], later);
    conn.handle_client_data(&[], later);
    conn.handle_upstream_data(&[], later);
    drain(&mut conn, &mut seen, later);
    assert!(seen.closed);
    let records = sink.take_records();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(
        (r.api.as_str(), r.operation.as_str()),
        ("chat", "onHandshake")
    );
    assert_eq!(r.status, 101);
    assert_eq!(r.bytes_in, HANDSHAKE.len() as u64 + 8);
    assert_eq!(r.bytes_out, SWITCHED.len() as u64 + 4);
    assert_eq!(r.total_us, 5_000_000, "the tunnel's whole life");
    assert_eq!(r.error, None);
}

#[test]
fn no_tunnel_begins_while_the_gateway_stops() {
    let now = Instant::now();
    let mut conn = conn(now);
    let mut seen = Seen::default();
    conn.handle_client_data(HANDSHAKE, now);
    drain(&mut conn, &mut seen, now);
    conn.begin_shutdown();
    conn.handle_upstream_data(SWITCH, now);
    drain(&mut conn, &mut seen, now);
    let text = String::from_utf8_lossy(&seen.client);
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    assert!(seen.closed);
    assert_eq!(seen.releases, vec![false]);
}
