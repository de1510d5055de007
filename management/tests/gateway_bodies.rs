//! End-to-end tests of the bodies of the gateway endpoints (heartbeat, telemetry)
//! over real sockets: the token is checked before any of the body is read, and a
//! body over the endpoint's limit gets 413 whether it declares its length or is
//! streamed chunked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod client;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use client::{start_with, Client, Harness, Resp};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use portcullis_management::http::{MAX_HEARTBEAT_BYTES, MAX_TELEMETRY_BYTES};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a refusal may take: it comes without waiting for the body, so a
/// server that waited for the (never sent) body would miss this by far.
const PROMPT: Duration = Duration::from_secs(5);

/// A declared body far over every limit, never sent.
const HUGE: u64 = 1 << 30;

const HEARTBEAT: &str = "/gateways/gw1/heartbeat";
const TELEMETRY: &str = "/gateways/gw1/telemetry";

/// A management plane with gateway `gw1` and a token for it.
async fn setup() -> (Harness, String) {
    let h = start_with(|_| {}).await;
    let a = &h.admin;
    let r = a
        .put_json("/gateways/gw1", &json!({"location": {"name": "Lab"}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let token = a.post("/gateways/gw1/token", None).await;
    assert_eq!(token.status, 200, "{}", token.text());
    let token = token.json()["value"]
        .as_str()
        .expect("token value")
        .to_owned();
    (h, token)
}

fn heartbeat() -> serde_json::Value {
    json!({
        "instanceId": "i-1", "hostname": "edge-1", "version": "0.1.0", "appliedRevision": null,
        "uptimeSeconds": 1, "health": "notReady", "connectivity": "starting",
    })
}

/// The head of a POST to `path` with `authorization` (if any) and `framing`
/// (`Content-Length: N` or `Transfer-Encoding: chunked`).
fn head(addr: SocketAddr, path: &str, authorization: Option<&str>, framing: &str) -> String {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{framing}\r\n"
    );
    if let Some(value) = authorization {
        head.push_str(&format!("Authorization: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Reads one response (head, then a `Content-Length` body) from `stream`.
async fn read_response(stream: &mut TcpStream) -> Resp {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await.expect("read the response");
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    let mut headers = HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').expect("header line");
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
            HeaderValue::from_str(value.trim()).expect("header value"),
        );
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.expect("read the body");
        assert!(n > 0, "closed in the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    Resp {
        status,
        headers,
        body: Bytes::copy_from_slice(&buf[head_end..head_end + length]),
    }
}

/// Sends a head declaring `declared` body bytes and only `sent` of them (in the
/// same write, so the server's first read takes them all), and reads the answer.
async fn declared(
    addr: SocketAddr,
    path: &str,
    authorization: Option<&str>,
    declared: u64,
    sent: usize,
) -> Resp {
    tokio::time::timeout(PROMPT, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut request = head(
            addr,
            path,
            authorization,
            &format!("Content-Length: {declared}"),
        )
        .into_bytes();
        request.resize(request.len() + sent, b' ');
        stream.write_all(&request).await.expect("send");
        read_response(&mut stream).await
    })
    .await
    .unwrap_or_else(|_| panic!("{path}: no answer within {PROMPT:?}: the body was waited for"))
}

/// Streams `body` chunked in 16 KiB chunks, the last one a single byte so that
/// the chunk crossing the limit arrives whole, without the final empty chunk when
/// the body is over `limit` (the server stops reading there: bytes it never read
/// could turn its close into a reset that loses the answer), and reads the answer.
async fn chunked(
    addr: SocketAddr,
    path: &str,
    authorization: &str,
    body: &[u8],
    limit: usize,
) -> Resp {
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let head = head(
            addr,
            path,
            Some(authorization),
            "Transfer-Encoding: chunked",
        );
        stream.write_all(head.as_bytes()).await.expect("send head");
        let (most, last) = body.split_at(body.len().saturating_sub(1));
        for piece in most.chunks(16 * 1024).chain([last]) {
            if piece.is_empty() {
                continue;
            }
            let mut frame = format!("{:x}\r\n", piece.len()).into_bytes();
            frame.extend_from_slice(piece);
            frame.extend_from_slice(b"\r\n");
            stream.write_all(&frame).await.expect("send a chunk");
        }
        if body.len() <= limit {
            stream.write_all(b"0\r\n\r\n").await.expect("end the body");
        }
        read_response(&mut stream).await
    })
    .await
    .unwrap_or_else(|_| panic!("{path}: no answer to a chunked body"))
}

#[tokio::test]
async fn the_gateway_token_is_checked_before_the_body_is_read() {
    let (h, token) = setup().await;
    let addr = h.management.local_addr();
    let in_an_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    // Signed with another key: forged.
    let forged = portcullis_core::sync::token::sign("gw1", in_an_hour, b"not the key");
    for path in [HEARTBEAT, TELEMETRY] {
        // A gigabyte declared, a kilobyte sent: the refusal does not wait for more.
        for authorization in [None, Some("GatewayKey nope"), Some(forged.as_str())] {
            let r = declared(addr, path, authorization, HUGE, 1024).await;
            r.problem(401);
            assert_eq!(r.header("www-authenticate"), Some("GatewayKey"), "{path}");
        }
        // With the right token the declared length alone is refused: nothing read.
        let p = declared(addr, path, Some(&token), HUGE, 0)
            .await
            .problem(413);
        assert!(
            p["detail"].as_str().is_some_and(|d| d.contains("bytes")),
            "{p}"
        );
    }
    // Just over each limit, declared: 413 as well.
    declared(
        addr,
        HEARTBEAT,
        Some(&token),
        MAX_HEARTBEAT_BYTES as u64 + 1,
        0,
    )
    .await
    .problem(413);
    declared(
        addr,
        TELEMETRY,
        Some(&token),
        MAX_TELEMETRY_BYTES as u64 + 1,
        0,
    )
    .await
    .problem(413);
}

#[tokio::test]
async fn bodies_streamed_past_the_limit_get_413() {
    let (h, token) = setup().await;
    let addr = h.management.local_addr();
    for (path, limit) in [
        (HEARTBEAT, MAX_HEARTBEAT_BYTES),
        (TELEMETRY, MAX_TELEMETRY_BYTES),
    ] {
        let over = vec![b' '; limit + 1];
        let p = chunked(addr, path, &token, &over, limit).await.problem(413);
        assert!(
            p["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&limit.to_string())),
            "{path}: {p}"
        );
    }
    // A heartbeat streamed chunked within the limit is recorded.
    let beat = heartbeat().to_string();
    let r = chunked(
        addr,
        HEARTBEAT,
        &token,
        beat.as_bytes(),
        MAX_HEARTBEAT_BYTES,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
}

#[tokio::test]
async fn a_normal_heartbeat_is_still_recorded() {
    let (h, token) = setup().await;
    let gateway = Client::new(h.management.local_addr()).with_authorization(&token);
    let r = gateway.post(HEARTBEAT, Some(&heartbeat())).await;
    assert_eq!(r.status, 204, "{}", r.text());
    // Padded with whitespace to exactly the limit: still a heartbeat.
    let mut padded = heartbeat().to_string().into_bytes();
    padded.resize(MAX_HEARTBEAT_BYTES, b' ');
    let r = gateway
        .send(
            hyper::Method::POST,
            HEARTBEAT,
            &[("content-type", "application/json")],
            Some(padded),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let status = h.admin.get("/gateways/gw1/status").await.json();
    assert_eq!(status["instances"][0]["instanceId"], "i-1", "{status}");
}
