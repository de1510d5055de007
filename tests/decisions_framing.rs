//! Proxying decisions in memory (`common::memory`): bodies and their framing
//! in both directions, keep-alive and backend connection reuse, pipelining,
//! Expect: 100-continue, and what backend errors become, asserted on the exact
//! bytes the gateway writes. What only sockets show (large bodies streamed,
//! backpressure, half-close, the orderly close after a local answer, the ops
//! listener) stays in `proxy.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::Method;
use common::memory::*;
use common::{api, base_block, config, config_for, get, ok, post, response, Closed, Reply};
use serde_json::json;

#[test]
fn chunked_request_body_reaches_backend_as_valid_chunked() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let big = base_block(70_000);
    let mut c = gw.client();
    let mut req =
        b"POST /api/chunks HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    // Chunk extensions, a large chunk, uppercase hex and a trailer.
    req.extend_from_slice(b"5;ext=1\r\nhello\r\n");
    req.extend_from_slice(format!("{:X}\r\n", big.len()).as_bytes());
    req.extend_from_slice(&big);
    req.extend_from_slice(b"\r\n1\r\n!\r\n0\r\nX-Trailer: done\r\n\r\n");
    c.send(&req);
    let r = c.response();
    assert_eq!(r.status, 200, "{r:?}");
    let mut expected = b"hello".to_vec();
    expected.extend_from_slice(&big);
    expected.push(b'!');
    assert_eq!(r.body.len(), expected.len());
    assert!(r.body == expected, "echoed body differs");

    // The backend parsed the body with a strict chunked decoder.
    let got = backend.only_request();
    assert!(
        got.complete,
        "backend did not receive a complete chunked body"
    );
    assert_eq!(got.headers("transfer-encoding"), vec!["chunked".to_owned()]);
    assert_eq!(got.header("content-length"), None);
    assert!(got.body == expected, "backend body differs");
    let trailers = got
        .trailers
        .clone()
        .map(|t| String::from_utf8_lossy(&t).into_owned());
    assert_eq!(trailers.as_deref(), Some("X-Trailer: done\r\n"));
    // The wire bytes end with the last chunk and the trailer.
    let raw = backend.raw_bytes();
    assert!(
        raw.ends_with(b"\r\n0\r\nX-Trailer: done\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&raw[raw.len().saturating_sub(64)..])
    );
    gw.stop();
}

#[test]
fn chunked_response_is_relayed_with_trailers() {
    let backend = MemBackend::start(|_| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n6;name=val\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n"
                .to_vec(),
        )
    });
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c.roundtrip(get("/api/stream"));
    assert_eq!(r.status, 200);
    assert!(r.is_chunked(), "{r:?}");
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.body_str(), "hello world");
    let trailers = r.trailers.map(|t| String::from_utf8_lossy(&t).into_owned());
    assert_eq!(trailers.as_deref(), Some("X-Checksum: 42\r\n"));
    // Still usable: the connection is kept alive.
    let r = c.roundtrip(get("/api/again"));
    assert_eq!(r.body_str(), "hello world");
    assert_eq!(backend.connections(), 1, "upstream connection reused");
    gw.stop();
}

#[test]
fn close_delimited_response_becomes_chunked_for_http11() {
    let backend = MemBackend::start(|_| {
        Reply::SendAndClose(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the very end".to_vec(),
        )
    });
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    for _ in 0..2 {
        let r = c.roundtrip(get("/api/old"));
        assert_eq!(r.status, 200);
        assert!(r.is_chunked(), "expected chunked re-framing: {r:?}");
        assert!(!r.says_close(), "client connection can stay open: {r:?}");
        assert_eq!(r.body_str(), "until the very end");
    }
    // Each close-delimited response used up its backend connection.
    assert_eq!(backend.connections(), 2);
    gw.stop();
}

#[test]
fn close_delimited_response_to_http10_client() {
    let backend = MemBackend::start(|_| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nold \r\n6\r\nclient\r\n0\r\n\r\n"
                .to_vec(),
        )
    });
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    c.send(b"GET /api/x HTTP/1.0\r\nHost: gateway.test\r\n\r\n");
    let head = c.read_head(&Method::GET);
    let raw = String::from_utf8_lossy(&head.raw).to_lowercase();
    assert_eq!(head.status, 200);
    assert!(
        !raw.contains("transfer-encoding"),
        "no chunked for 1.0: {raw}"
    );
    assert!(raw.contains("connection: close"), "{raw}");
    let (how, body) = c.read_to_end();
    assert_eq!(how, Closed::Eof);
    assert_eq!(body, b"old client");
    // The backend's connection was fine (chunked), so it is reused.
    let mut c = gw.client();
    assert_eq!(c.roundtrip(get("/api/y")).body_str(), "old client");
    assert_eq!(backend.connections(), 1);
    gw.stop();
}

#[test]
fn http10_keep_alive_client() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    for i in 0..3 {
        let r = c.roundtrip(format!(
            "GET /api/{i} HTTP/1.0\r\nHost: gateway.test\r\nConnection: keep-alive\r\n\r\n"
        ));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("connection").as_deref(),
            Some("keep-alive"),
            "{r:?}"
        );
        assert_eq!(r.header("x-path"), Some(format!("/{i}")));
    }
    gw.stop();
}

#[test]
fn keep_alive_client_and_upstream_reuse() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    for i in 0..10 {
        let r = if i % 2 == 0 {
            c.roundtrip(get(&format!("/api/get/{i}")))
        } else {
            c.roundtrip(post(
                &format!("/api/post/{i}"),
                format!("body {i}").as_bytes(),
            ))
        };
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        assert!(!r.says_close());
        if i % 2 == 1 {
            assert_eq!(r.body_str(), format!("body {i}"));
        }
    }
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 10);
    assert!(reqs.iter().all(|r| r.conn == 0));
    assert_eq!(
        backend.connections(),
        1,
        "one backend connection for 10 requests"
    );
    gw.stop();
}

#[test]
fn upstream_connection_is_reused_across_client_connections() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    for i in 0..5 {
        let mut c = gw.client();
        let r = c.roundtrip(get(&format!("/api/{i}")));
        assert_eq!(r.status, 200);
    }
    assert_eq!(backend.requests().len(), 5);
    assert_eq!(backend.connections(), 1);
    gw.stop();
}

#[test]
fn backend_connection_close_is_not_reused() {
    let backend = MemBackend::start(|_| {
        Reply::SendAndClose(response(200, &[("Connection", "close")], b"bye"))
    });
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    for _ in 0..3 {
        let r = c.roundtrip(get("/api/x"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body_str(), "bye");
        // The backend's Connection: close concerns the backend hop only.
        assert!(!r.says_close(), "{r:?}");
    }
    assert_eq!(backend.connections(), 3);
    gw.stop();
}

#[test]
fn backend_closing_idle_connections_silently_is_survived() {
    // The backend closes each connection after answering without saying so; the
    // gateway must not fail the next request on the dead pooled connection.
    let backend = MemBackend::start(|_| Reply::SendAndClose(ok("text/plain", b"fine")));
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    for i in 0..4 {
        backend.wait_closed(i);
        // GETs could be retried on a fresh connection; a POST could not.
        let r = if i % 2 == 0 {
            c.roundtrip(get("/api/x"))
        } else {
            c.roundtrip(post("/api/x", b"payload"))
        };
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        assert_eq!(r.body_str(), "fine");
    }
    assert_eq!(backend.requests().len(), 4);
    assert_eq!(backend.connections(), 4);
    gw.stop();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let mut batch = Vec::new();
    batch.extend_from_slice(get("/api/one").as_bytes());
    batch.extend_from_slice(&post("/api/two", b"second body"));
    batch.extend_from_slice(
        b"POST /api/three HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nthird\r\n0\r\n\r\n",
    );
    batch.extend_from_slice(b"HEAD /api/four HTTP/1.1\r\nHost: gateway.test\r\n\r\n");
    batch.extend_from_slice(get("/api/five").as_bytes());
    c.send(&batch);
    let r1 = c.response();
    let r2 = c.response();
    let r3 = c.response();
    let r4 = c.response_to(&Method::HEAD);
    let r5 = c.response();
    assert_eq!(r1.header("x-path").as_deref(), Some("/one"));
    assert_eq!(r2.header("x-path").as_deref(), Some("/two"));
    assert_eq!(r2.body_str(), "second body");
    assert_eq!(r3.header("x-path").as_deref(), Some("/three"));
    assert_eq!(r3.body_str(), "third");
    assert_eq!(r4.header("x-path").as_deref(), Some("/four"));
    assert!(r4.body.is_empty());
    assert_eq!(r5.header("x-path").as_deref(), Some("/five"));
    for r in [&r1, &r2, &r3, &r4, &r5] {
        assert_eq!(r.status, 200);
    }
    let order: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    assert_eq!(order, ["/one", "/two", "/three", "/four", "/five"]);
    gw.stop();
}

#[test]
fn expect_100_continue() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    c.send(
        b"PUT /api/doc HTTP/1.1\r\nHost: gateway.test\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n",
    )
    ;
    // The body is only sent after the interim response, as a real client does.
    let interim = c.read_exact_bytes(25);
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.send(b"hello world");
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "hello world");
    let req = backend.only_request();
    assert_eq!(req.body, b"hello world");
    assert_eq!(req.header("expect"), None, "Expect is not forwarded");
    // The connection stays usable.
    let r = c.roundtrip(get("/api/next"));
    assert_eq!(r.status, 200);
    gw.stop();
}

#[test]
fn unsupported_expectation_gets_417() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c.roundtrip(b"GET /api/x HTTP/1.1\r\nHost: gateway.test\r\nExpect: tea\r\n\r\n");
    assert_eq!(r.status, 417);
    c.expect_closed();
    assert_eq!(backend.connections(), 0);
    gw.stop();
}

#[test]
fn bad_gateway_when_the_backend_is_down() {
    let down = closed_port();
    let gw = MemGateway::start(&config_for(down));
    let mut c = gw.client();
    let r = c.roundtrip(get("/api/x"));
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(r.json()["statusCode"], 502);
    // A GET without body leaves the client connection usable.
    let r = c.roundtrip(get("/api/y"));
    assert_eq!(r.status, 502);
    gw.stop();
}

#[test]
fn bad_gateway_when_the_backend_drops_the_request() {
    let backend = MemBackend::start(|_| Reply::Drop);
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c.roundtrip(get("/api/x"));
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(r.json()["statusCode"], 502);
    gw.stop();
}

#[test]
fn bad_gateway_on_an_invalid_backend_response() {
    let backend =
        MemBackend::start(|_| Reply::Send(b"HTTP/1.1 200 OK\r\nX: \x01\r\n\r\n".to_vec()));
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c.roundtrip(get("/api/x"));
    assert_eq!(r.status, 502, "{r:?}");
    gw.stop();
}

#[test]
fn gateway_timeout_when_the_backend_never_answers() {
    let backend = MemBackend::start(|_| Reply::Hang);
    let mut a = api("api", "api", &format!("http://{}", backend.addr));
    a["timeoutSeconds"] = json!(1);
    let gw = MemGateway::start(&config(1, vec![a]));
    let mut c = gw.client();
    let r = c.roundtrip(get("/api/slow"));
    assert_eq!(r.status, 504, "{r:?}");
    assert_eq!(r.json()["statusCode"], 504);
    // The backend connection is given up, not returned to the pool.
    backend.wait_closed(1);
    // The client connection is still good for the next request.
    let r = c.roundtrip(get("/api/slow"));
    assert_eq!(r.status, 504);
    drop(c);
    gw.stop();
}

#[test]
fn truncated_backend_body_closes_the_client_connection() {
    let backend = MemBackend::start(|_| {
        Reply::SendAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten!!".to_vec())
    });
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    c.send(get("/api/x"));
    let head = c.read_head(&Method::GET);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(&b"100"[..]));
    let (_how, rest) = c.read_to_end();
    assert_eq!(
        rest, b"only ten!!",
        "the client sees the truncation as a close"
    );
    gw.stop();
}

#[test]
fn head_204_and_304_have_no_body() {
    let backend = MemBackend::start(|r| match r.target().as_str() {
        "/head" => Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n".to_vec()),
        "/204" => Reply::Send(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n".to_vec()),
        "/304" => Reply::Send(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n".to_vec()),
        _ => Reply::Send(ok("text/plain", b"after")),
    });
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    c.send(b"HEAD /api/head HTTP/1.1\r\nHost: g\r\n\r\n");
    let r = c.response_to(&Method::HEAD);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length").as_deref(), Some("1234"));
    let r = c.roundtrip(get("/api/204"));
    assert_eq!(r.status, 204);
    assert!(
        !r.has("content-length") && !r.has("transfer-encoding"),
        "{r:?}"
    );
    let r = c.roundtrip(get("/api/304"));
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag").as_deref(), Some("\"v1\""));
    // Nothing stray was left on the connection.
    let r = c.roundtrip(get("/api/after"));
    assert_eq!(r.body_str(), "after");
    assert_eq!(backend.connections(), 1);
    gw.stop();
}

#[test]
fn pipelined_request_after_a_local_404_is_served() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let batch = format!(
        "{}{}{}",
        get("/nope"),
        get("/status-0123456789abcdef?probe=1"),
        get("/api/yes")
    );
    c.send(batch);
    assert_eq!(c.response().status, 404);
    assert_eq!(c.response().status, 200);
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-path").as_deref(), Some("/yes"));
    gw.stop();
}

#[test]
fn connection_close_from_the_client_is_honoured() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c.roundtrip(b"GET /api/x HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.says_close(), "{r:?}");
    c.expect_closed();
    // The backend connection is independent of the client's and stays pooled.
    let mut c = gw.client();
    assert_eq!(c.roundtrip(get("/api/y")).status, 200);
    assert_eq!(backend.connections(), 1);
    gw.stop();
}

#[test]
fn interim_responses_from_the_backend_are_not_relayed() {
    let backend = MemBackend::start(|_| {
        Reply::Send(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
              HTTP/1.1 100 Continue\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
                .to_vec(),
        )
    });
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    c.send(get("/api/x"));
    let head = c.read_head(&Method::GET);
    assert_eq!(
        head.status, 200,
        "first thing the client sees is the final answer"
    );
    let (body, _) = c.read_body(&head);
    assert_eq!(body, b"final");
    assert_eq!(c.roundtrip(get("/api/y")).body_str(), "final");
    gw.stop();
}

#[test]
fn switching_protocols_from_the_backend_is_a_502() {
    let backend = MemBackend::start(|_| {
        Reply::Send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".to_vec())
    });
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c.roundtrip(
        b"GET /api/ws HTTP/1.1\r\nHost: g\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(backend.only_request().header("upgrade"), None);
    gw.stop();
}
