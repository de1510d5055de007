//! The connection machine under random byte splits: the same pipelined
//! requests, and the same backend answers, cut into random pieces on both
//! sides, must always come out the same: every request reaches the backend
//! whole and in order, every response reaches the client whole and in order,
//! whatever the cuts. Driven in memory, as the driver would, with outputs
//! drained after every input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use portcullis_core::config::{CompiledConfig, Snapshot};
use portcullis_core::http::Limits;
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
    "id": "items", "displayName": "Items", "path": "items",
    "serviceUrl": "http://backend.test:9000",
    "subscriptionRequired": false,
    "operations": [
      {"id": "get", "displayName": "get", "method": "GET", "urlTemplate": "/*"},
      {"id": "post", "displayName": "post", "method": "POST", "urlTemplate": "/*"}
    ]
  }],
  "backends": [], "namedValues": []
}"#;

fn conn(now: Instant) -> ProxyConn {
    let snapshot = Snapshot::from_json(CONFIG.as_bytes()).expect("parses");
    let config = Arc::new(CompiledConfig::compile(snapshot).expect("compiles"));
    let settings = Arc::new(ConnSettings {
        limits: Limits::default(),
        timeouts: Timeouts::default(),
        proto: "http",
        config: Arc::new(Fixed(config)),
        policy: PolicyEnv::default(),
        telemetry: portcullis_core::telemetry::discard(),
        allow_underscores_in_headers: false,
        https_port: None,
    });
    ProxyConn::new(
        settings,
        "192.0.2.7",
        portcullis_core::proxy::IdSeq::default(),
        now,
    )
}

/// One request of the pipeline: a GET, or a POST with a body sent with a
/// length or chunked; the backend answers with a length or chunked.
#[derive(Debug, Clone)]
struct Exchange {
    body: Option<(Vec<u8>, bool)>,
    chunked_response: bool,
}

fn exchange() -> impl Strategy<Value = Exchange> {
    (
        proptest::option::of((
            proptest::collection::vec(b'a'..=b'z', 0..300),
            any::<bool>(),
        )),
        any::<bool>(),
    )
        .prop_map(|(body, chunked_response)| Exchange {
            body,
            chunked_response,
        })
}

fn request_bytes(i: usize, ex: &Exchange) -> Vec<u8> {
    match &ex.body {
        None => format!("GET /items/{i} HTTP/1.1\r\nHost: gw\r\n\r\n").into_bytes(),
        Some((body, false)) => {
            let mut out = format!(
                "POST /items/{i} HTTP/1.1\r\nHost: gw\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            out.extend_from_slice(body);
            out
        }
        Some((body, true)) => {
            let mut out = format!(
                "POST /items/{i} HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            .into_bytes();
            for piece in body.chunks(37) {
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            out
        }
    }
}

fn response_body(i: usize, ex: &Exchange) -> Vec<u8> {
    let len = ex.body.as_ref().map_or(0, |(b, _)| b.len());
    format!("item {i} got {len} bytes").into_bytes()
}

fn response_bytes(i: usize, ex: &Exchange) -> Vec<u8> {
    let body = response_body(i, ex);
    if ex.chunked_response {
        let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for piece in body.chunks(5) {
            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    } else {
        let mut out =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        out.extend_from_slice(&body);
        out
    }
}

/// Decodes one request at the start of `buf` as the backend sees it: its path
/// and body, and how many bytes it took; `None` if it is not all there yet.
fn parse_request(buf: &[u8]) -> Option<(String, Vec<u8>, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head) = req.parse(buf).ok()? else {
        return None;
    };
    let path = req.path?.to_owned();
    let (body, used) = body_of(buf, head, req.headers)?;
    Some((path, body, used))
}

/// Decodes one response at the start of `buf` as the client sees it: its
/// status, body and length; `None` if it is not all there.
fn parse_response(buf: &[u8]) -> Option<(u16, Vec<u8>, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = res.parse(buf).ok()? else {
        return None;
    };
    let status = res.code?;
    let (body, used) = body_of(buf, head, res.headers)?;
    Some((status, body, used))
}

/// The body after a head of `head` bytes, framed by a length or chunked (no
/// trailers in this test), and where the message ends.
fn body_of(buf: &[u8], head: usize, headers: &[httparse::Header<'_>]) -> Option<(Vec<u8>, usize)> {
    let field = |name: &str| {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    if let Some(len) = field("content-length") {
        let len: usize = len.trim().parse().ok()?;
        let body = buf.get(head..head + len)?.to_vec();
        return Some((body, head + len));
    }
    if field("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        let mut at = head;
        let mut body = Vec::new();
        loop {
            let line_end = at + buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&buf[at..line_end]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                buf.get(at..at + 2)?;
                return Some((body, at + 2));
            }
            body.extend_from_slice(buf.get(at..at + size)?);
            at += size + 2;
            buf.get(..at)?;
        }
    }
    Some((Vec::new(), head))
}

/// Cuts `bytes` into pieces whose sizes cycle through `cuts`.
fn pieces(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
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
    fn any_byte_split_gives_the_same_exchanges(
        exchanges in proptest::collection::vec(exchange(), 1..6),
        client_cuts in proptest::collection::vec(1usize..80, 1..8),
        backend_cuts in proptest::collection::vec(1usize..80, 1..8),
    ) {
        let now = Instant::now();
        let mut conn = conn(now);
        let all: Vec<u8> = exchanges.iter().enumerate().flat_map(|(i, ex)| request_bytes(i, ex)).collect();
        let mut client_in: std::collections::VecDeque<Vec<u8>> = pieces(&all, &client_cuts).into();
        let mut backend_in = Vec::new();
        let mut backend_out: std::collections::VecDeque<Vec<u8>> = Default::default();
        let mut seen = Vec::new();
        let mut client_got = Vec::new();
        let mut connected = false;
        for _ in 0..100_000 {
            let mut progressed = false;
            if conn.wants_client_read() {
                if let Some(piece) = client_in.pop_front() {
                    conn.handle_client_data(&piece, now);
                    progressed = true;
                }
            }
            while let Some(event) = conn.poll_event() {
                progressed = true;
                match event {
                    Event::ConnectUpstream { .. } => {
                        conn.handle_upstream_connected(false, now);
                        connected = true;
                    }
                    Event::ReleaseUpstream { .. } => {
                        connected = false;
                        prop_assert!(backend_out.is_empty(), "released with an answer unread");
                        backend_in.clear();
                    }
                    other => prop_assert!(false, "unexpected {other:?}"),
                }
            }
            let up = conn.upstream_pending().to_vec();
            if !up.is_empty() {
                conn.upstream_written(up.len(), now);
                backend_in.extend_from_slice(&up);
                progressed = true;
            }
            while let Some((path, body, used)) = parse_request(&backend_in) {
                backend_in.drain(..used);
                let i = seen.len();
                prop_assert!(i < exchanges.len(), "more requests than were sent");
                prop_assert_eq!(&path, &format!("/{i}"));
                let sent = exchanges[i].body.as_ref().map(|(b, _)| b.clone()).unwrap_or_default();
                prop_assert_eq!(&body, &sent);
                seen.push(path);
                backend_out.extend(pieces(&response_bytes(i, &exchanges[i]), &backend_cuts));
            }
            if connected && conn.wants_upstream_read() {
                if let Some(piece) = backend_out.pop_front() {
                    conn.handle_upstream_data(&piece, now);
                    progressed = true;
                }
            }
            let out = conn.client_pending().to_vec();
            if !out.is_empty() {
                conn.client_written(out.len(), now);
                client_got.extend_from_slice(&out);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        prop_assert_eq!(seen.len(), exchanges.len(), "requests reaching the backend");
        // Every response, whole and in order.
        let mut rest = client_got.as_slice();
        for (i, ex) in exchanges.iter().enumerate() {
            let parsed = parse_response(rest);
            prop_assert!(parsed.is_some(), "response {i} incomplete: {:?}", String::from_utf8_lossy(rest));
            let Some((status, body, used)) = parsed else { break };
            prop_assert_eq!(status, 200);
            prop_assert_eq!(body, response_body(i, ex));
            rest = &rest[used..];
        }
        prop_assert!(rest.is_empty(), "bytes after the last response");
    }
}
