//! Size limits and the statuses they produce, decided in memory
//! (`common::memory`): 431 for heads, 413 for bodies, 408 for a stalled body
//! (on the harness's clock), 502 for an oversized backend head. On real
//! sockets (`limits.rs`): the deadlines that need the driver's timers to fire.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::memory::*;
use common::{chunked, config_for, get, post, Reply};

/// A GET whose head carries `extra` header lines.
fn get_with_headers(path: &str, extra: &[String]) -> Vec<u8> {
    let mut r = format!("GET {path} HTTP/1.1\r\nHost: gateway.test\r\n");
    for h in extra {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

#[test]
fn head_over_32_kib_gets_431() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let big = format!("X-Big: {}", "a".repeat(40 * 1024));
    c.send_lossy(get_with_headers("/api/x", &[big]));
    let r = c.response();
    assert_eq!(r.status, 431, "{r:?}");
    assert_eq!(r.json()["statusCode"], 431);
    assert!(r.says_close());
    c.expect_closed();
    drop(c);
    assert_eq!(backend.connections(), 0);

    // Many medium fields adding up to more than 32 KiB.
    let mut c = gw.client();
    let fields: Vec<String> = (0..50)
        .map(|i| format!("X-F{i}: {}", "b".repeat(1000)))
        .collect();
    c.send_lossy(get_with_headers("/api/x", &fields));
    assert_eq!(c.response().status, 431);
    c.expect_closed();
    drop(c);
    gw.stop();
    assert_eq!(backend.connections(), 0);
}

#[test]
fn head_under_32_kib_is_accepted() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let value = "a".repeat(30 * 1024);
    let r = c.roundtrip(get_with_headers("/api/x", &[format!("X-Big: {value}")]));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(backend.only_request().header("x-big"), Some(value));
    gw.stop();
}

#[test]
fn over_100_header_fields_gets_431() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    // Host + 100 = 101 fields.
    let fields: Vec<String> = (0..100).map(|i| format!("X-H{i}: {i}")).collect();
    let mut c = gw.client();
    c.send_lossy(get_with_headers("/api/x", &fields));
    let r = c.response();
    assert_eq!(r.status, 431, "{r:?}");
    assert!(r.says_close());
    c.expect_closed();
    drop(c);
    assert_eq!(backend.connections(), 0);

    // Host + 99 = 100 fields is fine.
    let mut c = gw.client();
    let r = c.roundtrip(get_with_headers("/api/x", &fields[..99]));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        backend.only_request().header("x-h98").as_deref(),
        Some("98")
    );
    gw.stop();
}

fn gateway_with_body_limit(backend: &MemBackend, max: u64) -> MemGateway {
    MemGateway::start_with(&config_for(backend.addr), |o| {
        o.limits.max_body_bytes = Some(max);
    })
}

#[test]
fn declared_content_length_over_the_limit_gets_413() {
    let backend = MemBackend::echo();
    let gw = gateway_with_body_limit(&backend, 1000);

    let mut c = gw.client();
    c.send_lossy(post("/api/up", &[b'x'; 1001]));
    let r = c.response();
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.json()["statusCode"], 413);
    assert!(r.says_close());
    c.expect_closed();
    drop(c);
    assert_eq!(
        backend.connections(),
        0,
        "rejected before contacting the backend"
    );

    // With Expect: 100-continue the client is told before it sends the body.
    let mut c = gw.client();
    c.send(b"POST /api/up HTTP/1.1\r\nHost: g\r\nExpect: 100-continue\r\nContent-Length: 5000000\r\n\r\n")
        ;
    let r = c.response_to(&axum::http::Method::POST);
    assert_eq!(r.status, 413, "{r:?}");
    let written = c.written();
    assert!(
        written.starts_with(b"HTTP/1.1 413 "),
        "no 100 Continue for a body that is refused: {:?}",
        String::from_utf8_lossy(&written)
    );
    drop(c);

    // At the limit is fine.
    let mut c = gw.client();
    let r = c.roundtrip(post("/api/up", &[b'y'; 1000]));
    assert_eq!(r.status, 200);
    assert_eq!(backend.only_request().body.len(), 1000);
    gw.stop();
}

#[test]
fn chunked_body_over_the_limit_gets_413() {
    let backend = MemBackend::echo();
    let gw = gateway_with_body_limit(&backend, 1000);

    let mut c = gw.client();
    let mut req =
        b"POST /api/up HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(&chunked(&[&[b'a'; 600], &[b'b'; 600]]));
    c.send_lossy(&req);
    let r = c.response();
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.says_close());
    c.expect_closed();
    drop(c);

    // At the limit, in several chunks, is fine.
    let mut c = gw.client();
    let mut req =
        b"POST /api/up HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(&chunked(&[&[b'a'; 500], &[b'b'; 500]]));
    let r = c.roundtrip(&req);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body.len(), 1000);
    drop(c);
    gw.stop();
    let complete: Vec<_> = backend
        .requests()
        .into_iter()
        .filter(|r| r.complete)
        .collect();
    assert_eq!(
        complete.len(),
        1,
        "only the request within the limit got through"
    );
    assert_eq!(complete[0].body.len(), 1000);
}

#[test]
fn oversized_backend_response_head_gets_502() {
    let backend = MemBackend::start(|_| {
        let mut r = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..80 {
            r.extend_from_slice(format!("X-Cookie-{i}: {}\r\n", "c".repeat(1000)).as_bytes());
        }
        r.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        Reply::Send(r)
    });
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c.roundtrip(get("/api/x"));
    assert_eq!(r.status, 502, "{r:?}");
    gw.stop();
}

#[test]
fn large_backend_response_head_within_64_kib_is_relayed() {
    // Backends get more room than clients (large cookies): 40 KiB passes.
    let backend = MemBackend::start(|_| {
        let mut r = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..40 {
            r.extend_from_slice(format!("X-Cookie-{i}: {}\r\n", "c".repeat(1000)).as_bytes());
        }
        r.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
        Reply::Send(r)
    });
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c.roundtrip(get("/api/x"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-cookie-39").map(|v| v.len()), Some(1000));
    assert_eq!(r.body_str(), "ok");
    gw.stop();
}

#[test]
fn stalled_request_body_gets_408() {
    let backend = MemBackend::echo();
    let gw = MemGateway::start_with(&config_for(backend.addr), |o| {
        o.timeouts.body_idle = Duration::from_secs(1);
    });
    let mut c = gw.client();
    // 5 of 10 bytes, then nothing.
    c.send(b"POST /api/x HTTP/1.1\r\nHost: g\r\nContent-Length: 10\r\n\r\nhello");
    let r = c.response();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(r.says_close());
    c.expect_closed();
    drop(c);
    gw.stop();
    assert!(backend.requests().iter().all(|r| !r.complete));
    // The backend got the head and the 5 bytes, and saw the request cut short
    // when the gateway gave up its connection.
    let cut = backend.only_request();
    assert_eq!(cut.body, b"hello");
    assert_eq!(backend.closed_connections(), 1);
}
