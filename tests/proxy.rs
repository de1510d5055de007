//! Proxying over real sockets: bodies in both directions, keep-alive and
//! pipelining, Expect: 100-continue, local answers on a live connection and
//! backend errors. Routing and header decisions are tested in memory, in
//! `decisions_proxy`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::Method;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[runtimes]
async fn post_with_content_length_body(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let body = base_block(100_000);
    let mut c = gw.client().await;
    c.send(post("/api/upload", &body)).await;
    let r = c.response().await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-length"), Some(body.len().to_string()));
    assert_eq!(r.body, body);
    let req = backend.only_request();
    assert_eq!(req.method(), "POST");
    assert!(req.complete);
    assert_eq!(req.body, body);
    assert_eq!(req.headers("content-length"), vec![body.len().to_string()]);
    assert_eq!(req.header("transfer-encoding"), None);
    assert_eq!(
        req.header("content-type").as_deref(),
        Some("application/octet-stream")
    );
    gw.stop().await;
}

#[runtimes]
async fn chunked_request_body_reaches_backend_as_valid_chunked(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let big = base_block(70_000);
    let mut c = gw.client().await;
    let mut req =
        b"POST /api/chunks HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    // Chunk extensions, a large chunk, uppercase hex and a trailer.
    req.extend_from_slice(b"5;ext=1\r\nhello\r\n");
    req.extend_from_slice(format!("{:X}\r\n", big.len()).as_bytes());
    req.extend_from_slice(&big);
    req.extend_from_slice(b"\r\n1\r\n!\r\n0\r\nX-Trailer: done\r\n\r\n");
    c.send(&req).await;
    let r = c.response().await;
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
    gw.stop().await;
}

#[runtimes]
async fn chunked_response_is_relayed_with_trailers(rt: Runtime) {
    let backend = Backend::start(|_| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n6;name=val\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n"
                .to_vec(),
        )
    })
    .await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    let r = c.roundtrip(get("/api/stream")).await;
    assert_eq!(r.status, 200);
    assert!(r.is_chunked(), "{r:?}");
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.body_str(), "hello world");
    let trailers = r.trailers.map(|t| String::from_utf8_lossy(&t).into_owned());
    assert_eq!(trailers.as_deref(), Some("X-Checksum: 42\r\n"));
    // Still usable: the connection is kept alive.
    let r = c.roundtrip(get("/api/again")).await;
    assert_eq!(r.body_str(), "hello world");
    assert_eq!(backend.connections(), 1, "upstream connection reused");
    gw.stop().await;
}

#[runtimes]
async fn close_delimited_response_becomes_chunked_for_http11(rt: Runtime) {
    let backend = Backend::start(|_| {
        Reply::SendAndClose(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the very end".to_vec(),
        )
    })
    .await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    for _ in 0..2 {
        let r = c.roundtrip(get("/api/old")).await;
        assert_eq!(r.status, 200);
        assert!(r.is_chunked(), "expected chunked re-framing: {r:?}");
        assert!(!r.says_close(), "client connection can stay open: {r:?}");
        assert_eq!(r.body_str(), "until the very end");
    }
    // Each close-delimited response used up its backend connection.
    assert_eq!(backend.connections(), 2);
    gw.stop().await;
}

#[runtimes]
async fn close_delimited_response_to_http10_client(rt: Runtime) {
    let backend = Backend::start(|_| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nold \r\n6\r\nclient\r\n0\r\n\r\n"
                .to_vec(),
        )
    })
    .await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    c.send(b"GET /api/x HTTP/1.0\r\nHost: gateway.test\r\n\r\n")
        .await;
    let head = c.read_head(&Method::GET).await;
    let raw = String::from_utf8_lossy(&head.raw).to_lowercase();
    assert_eq!(head.status, 200);
    assert!(
        !raw.contains("transfer-encoding"),
        "no chunked for 1.0: {raw}"
    );
    assert!(raw.contains("connection: close"), "{raw}");
    let (how, body) = c.read_to_end().await;
    assert_eq!(how, Closed::Eof);
    assert_eq!(body, b"old client");
    // The backend's connection was fine (chunked), so it is reused.
    let mut c = gw.client().await;
    assert_eq!(c.roundtrip(get("/api/y")).await.body_str(), "old client");
    assert_eq!(backend.connections(), 1);
    gw.stop().await;
}

#[runtimes]
async fn http10_keep_alive_client(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    for i in 0..3 {
        let r = c
            .roundtrip(format!(
                "GET /api/{i} HTTP/1.0\r\nHost: gateway.test\r\nConnection: keep-alive\r\n\r\n"
            ))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("connection").as_deref(),
            Some("keep-alive"),
            "{r:?}"
        );
        assert_eq!(r.header("x-path"), Some(format!("/{i}")));
    }
    gw.stop().await;
}

#[runtimes]
async fn keep_alive_client_and_upstream_reuse(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    for i in 0..10 {
        let r = if i % 2 == 0 {
            c.roundtrip(get(&format!("/api/get/{i}"))).await
        } else {
            c.roundtrip(post(
                &format!("/api/post/{i}"),
                format!("body {i}").as_bytes(),
            ))
            .await
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
    gw.stop().await;
}

#[runtimes]
async fn upstream_connection_is_reused_across_client_connections(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    for i in 0..5 {
        let mut c = gw.client().await;
        let r = c.roundtrip(get(&format!("/api/{i}"))).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(backend.requests().len(), 5);
    assert_eq!(backend.connections(), 1);
    gw.stop().await;
}

#[runtimes]
async fn backend_connection_close_is_not_reused(rt: Runtime) {
    let backend =
        Backend::start(|_| Reply::SendAndClose(response(200, &[("Connection", "close")], b"bye")))
            .await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    for _ in 0..3 {
        let r = c.roundtrip(get("/api/x")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body_str(), "bye");
        // The backend's Connection: close concerns the backend hop only.
        assert!(!r.says_close(), "{r:?}");
    }
    assert_eq!(backend.connections(), 3);
    gw.stop().await;
}

#[runtimes]
async fn backend_closing_idle_connections_silently_is_survived(rt: Runtime) {
    // The backend closes each connection after answering without saying so; the
    // gateway must not fail the next request on the dead pooled connection.
    let backend = Backend::start(|_| Reply::SendAndClose(ok("text/plain", b"fine"))).await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    for i in 0..4 {
        backend.wait_closed(i).await;
        // GETs could be retried on a fresh connection; a POST could not.
        let r = if i % 2 == 0 {
            c.roundtrip(get("/api/x")).await
        } else {
            c.roundtrip(post("/api/x", b"payload")).await
        };
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        assert_eq!(r.body_str(), "fine");
    }
    assert_eq!(backend.requests().len(), 4);
    assert_eq!(backend.connections(), 4);
    gw.stop().await;
}

#[runtimes]
async fn pipelined_requests_are_answered_in_order(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    let mut batch = Vec::new();
    batch.extend_from_slice(get("/api/one").as_bytes());
    batch.extend_from_slice(&post("/api/two", b"second body"));
    batch.extend_from_slice(
        b"POST /api/three HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nthird\r\n0\r\n\r\n",
    );
    batch.extend_from_slice(b"HEAD /api/four HTTP/1.1\r\nHost: gateway.test\r\n\r\n");
    batch.extend_from_slice(get("/api/five").as_bytes());
    c.send(&batch).await;
    let r1 = c.response().await;
    let r2 = c.response().await;
    let r3 = c.response().await;
    let r4 = c.response_to(&Method::HEAD).await;
    let r5 = c.response().await;
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
    gw.stop().await;
}

#[runtimes]
async fn expect_100_continue(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    c.send(
        b"PUT /api/doc HTTP/1.1\r\nHost: gateway.test\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n",
    )
    .await;
    // The body is only sent after the interim response, as a real client does.
    let interim = c.read_exact_bytes(25).await;
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.send(b"hello world").await;
    let r = c.response().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "hello world");
    let req = backend.only_request();
    assert_eq!(req.body, b"hello world");
    assert_eq!(req.header("expect"), None, "Expect is not forwarded");
    // The connection stays usable.
    let r = c.roundtrip(get("/api/next")).await;
    assert_eq!(r.status, 200);
    gw.stop().await;
}

#[runtimes]
async fn unsupported_expectation_gets_417(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    let r = c
        .roundtrip(b"GET /api/x HTTP/1.1\r\nHost: gateway.test\r\nExpect: tea\r\n\r\n")
        .await;
    assert_eq!(r.status, 417);
    c.expect_closed().await;
    assert_eq!(backend.connections(), 0);
    gw.stop().await;
}

#[runtimes]
async fn ops_endpoints(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let r = fetch(gw.ops_addr, "/healthz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "ok\n");
    let r = fetch(gw.ops_addr, "/readyz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "ready\n");
    let r = fetch(gw.ops_addr, "/nope").await;
    assert_eq!(r.status, 404);
    // The ops paths are not served on the API port.
    let mut c = gw.client().await;
    assert_eq!(c.roundtrip(get("/healthz")).await.status, 404);
    gw.stop().await;
}

#[runtimes]
async fn bad_gateway_when_the_backend_is_down(rt: Runtime) {
    let down = closed_port().await;
    let gw = TestGateway::start(rt, &config_for(down)).await;
    let mut c = gw.client().await;
    let r = c.roundtrip(get("/api/x")).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(r.json()["statusCode"], 502);
    // A GET without body leaves the client connection usable.
    let r = c.roundtrip(get("/api/y")).await;
    assert_eq!(r.status, 502);
    gw.stop().await;
}

#[runtimes]
async fn bad_gateway_when_the_backend_drops_the_request(rt: Runtime) {
    let backend = Backend::start(|_| Reply::Drop).await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    let r = c.roundtrip(get("/api/x")).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(r.json()["statusCode"], 502);
    gw.stop().await;
}

#[runtimes]
async fn bad_gateway_on_an_invalid_backend_response(rt: Runtime) {
    let backend =
        Backend::start(|_| Reply::Send(b"HTTP/1.1 200 OK\r\nX: \x01\r\n\r\n".to_vec())).await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    let r = c.roundtrip(get("/api/x")).await;
    assert_eq!(r.status, 502, "{r:?}");
    gw.stop().await;
}

#[runtimes]
async fn gateway_timeout_when_the_backend_never_answers(rt: Runtime) {
    let backend = Backend::start(|_| Reply::Hang).await;
    let mut a = api("api", "api", &format!("http://{}", backend.addr));
    a["timeoutSeconds"] = json!(1);
    let gw = TestGateway::start(rt, &config(1, vec![a])).await;
    let mut c = gw.client().await;
    let r = c.roundtrip(get("/api/slow")).await;
    assert_eq!(r.status, 504, "{r:?}");
    assert_eq!(r.json()["statusCode"], 504);
    // The backend connection is given up, not returned to the pool.
    backend.wait_closed(1).await;
    // The client connection is still good for the next request.
    let r = c.roundtrip(get("/api/slow")).await;
    assert_eq!(r.status, 504);
    drop(c);
    gw.stop().await;
}

#[runtimes]
async fn truncated_backend_body_closes_the_client_connection(rt: Runtime) {
    let backend = Backend::start(|_| {
        Reply::SendAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten!!".to_vec())
    })
    .await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    c.send(get("/api/x")).await;
    let head = c.read_head(&Method::GET).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(&b"100"[..]));
    let (_how, rest) = c.read_to_end().await;
    assert_eq!(
        rest, b"only ten!!",
        "the client sees the truncation as a close"
    );
    gw.stop().await;
}

#[runtimes]
async fn head_204_and_304_have_no_body(rt: Runtime) {
    let backend = Backend::start(|r| match r.target().as_str() {
        "/head" => Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n".to_vec()),
        "/204" => Reply::Send(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n".to_vec()),
        "/304" => Reply::Send(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n".to_vec()),
        _ => Reply::Send(ok("text/plain", b"after")),
    })
    .await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    c.send(b"HEAD /api/head HTTP/1.1\r\nHost: g\r\n\r\n").await;
    let r = c.response_to(&Method::HEAD).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length").as_deref(), Some("1234"));
    let r = c.roundtrip(get("/api/204")).await;
    assert_eq!(r.status, 204);
    assert!(
        !r.has("content-length") && !r.has("transfer-encoding"),
        "{r:?}"
    );
    let r = c.roundtrip(get("/api/304")).await;
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag").as_deref(), Some("\"v1\""));
    // Nothing stray was left on the connection.
    let r = c.roundtrip(get("/api/after")).await;
    assert_eq!(r.body_str(), "after");
    assert_eq!(backend.connections(), 1);
    gw.stop().await;
}

#[runtimes]
async fn backend_answering_before_the_body_ends(rt: Runtime) {
    // A backend may answer early (e.g. 403) without reading the upload: the answer
    // reaches the client, and since the rest of the body can no longer be told apart
    // from a next request, the client connection is closed afterwards.
    let listener = tokio::net::TcpListener::bind(any_port()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let backend = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "gateway closed before sending the head");
            seen.extend_from_slice(&buf[..n]);
        }
        s.write_all(&response(403, &[], b"no")).await.unwrap();
        // Keep the connection until the gateway gives it up.
        while s.read(&mut buf).await.unwrap_or(0) > 0 {}
    });
    let gw = TestGateway::start(rt, &config_for(addr)).await;
    let mut c = gw.client().await;
    // Only 5 of the 1000 declared bytes are sent.
    c.send(b"POST /api/x HTTP/1.1\r\nHost: g\r\nContent-Length: 1000\r\n\r\nhello")
        .await;
    let r = c.response().await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body_str(), "no");
    c.expect_closed().await;
    // The backend connection was not kept either.
    within("backend connection closed", backend).await.unwrap();
    gw.stop().await;
}

#[runtimes]
async fn many_pipelined_requests_with_responses_larger_than_the_buffers(rt: Runtime) {
    // 300 requests written at once, each answered with 2 KiB: the gateway must stop
    // reading while the client is not reading, and still answer all, in order.
    let backend = Backend::start(|r| {
        let target = r.target();
        let mut body = target.clone().into_bytes();
        body.resize(2048, b'.');
        Reply::Send(response(200, &[("X-Path", &target)], &body))
    })
    .await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    let batch: String = (0..300).map(|i| get(&format!("/api/{i}"))).collect();
    c.send(batch).await;
    for i in 0..300 {
        let r = c.response().await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-path"),
            Some(format!("/{i}")),
            "response {i} out of order"
        );
        assert_eq!(r.body.len(), 2048);
    }
    assert_eq!(backend.connections(), 1);
    gw.stop().await;
}

#[runtimes]
async fn pipelined_request_after_a_local_404_is_served(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    let batch = format!(
        "{}{}{}",
        get("/nope"),
        get("/status-0123456789abcdef?probe=1"),
        get("/api/yes")
    );
    c.send(batch).await;
    assert_eq!(c.response().await.status, 404);
    assert_eq!(c.response().await.status, 200);
    let r = c.response().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-path").as_deref(), Some("/yes"));
    gw.stop().await;
}

#[runtimes]
async fn local_answer_to_a_request_with_a_body_is_readable_before_the_close(rt: Runtime) {
    // The body is not forwarded anywhere; the gateway answers, closes, and drains
    // so the client reads the 404 instead of a reset.
    let backend = Backend::echo().await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    c.send_lossy(post("/nope", &base_block(200_000))).await;
    let r = c.response().await;
    assert_eq!(r.status, 404);
    assert!(r.says_close(), "{r:?}");
    let (how, extra) = c.read_to_end().await;
    assert!(extra.is_empty());
    assert_eq!(how, Closed::Eof, "closed cleanly, not reset");
    drop(c);
    gw.stop().await;
    assert_eq!(backend.connections(), 0);
}

#[runtimes]
async fn connection_close_from_the_client_is_honoured(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    let r = c
        .roundtrip(b"GET /api/x HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(r.status, 200);
    assert!(r.says_close(), "{r:?}");
    c.expect_closed().await;
    // The backend connection is independent of the client's and stays pooled.
    let mut c = gw.client().await;
    assert_eq!(c.roundtrip(get("/api/y")).await.status, 200);
    assert_eq!(backend.connections(), 1);
    gw.stop().await;
}

#[runtimes]
async fn half_closed_client_still_gets_its_answer(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    c.send(get("/api/half")).await;
    tokio::io::AsyncWriteExt::shutdown(&mut c.stream)
        .await
        .unwrap();
    let r = c.response().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-path").as_deref(), Some("/half"));
    c.expect_closed().await;
    gw.stop().await;
}

#[runtimes]
async fn interim_responses_from_the_backend_are_not_relayed(rt: Runtime) {
    let backend = Backend::start(|_| {
        Reply::Send(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
              HTTP/1.1 100 Continue\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
                .to_vec(),
        )
    })
    .await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    c.send(get("/api/x")).await;
    let head = c.read_head(&Method::GET).await;
    assert_eq!(
        head.status, 200,
        "first thing the client sees is the final answer"
    );
    let (body, _) = c.read_body(&head).await;
    assert_eq!(body, b"final");
    assert_eq!(c.roundtrip(get("/api/y")).await.body_str(), "final");
    gw.stop().await;
}

#[runtimes]
async fn switching_protocols_from_the_backend_is_a_502(rt: Runtime) {
    let backend = Backend::start(|_| {
        Reply::Send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".to_vec())
    })
    .await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    let r = c
        .roundtrip(
            b"GET /api/ws HTTP/1.1\r\nHost: g\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        )
        .await;
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(backend.only_request().header("upgrade"), None);
    gw.stop().await;
}

#[runtimes]
async fn keep_alive_connection_works_after_its_buffers_were_released(rt: Runtime) {
    // After a second without a request the connection gives its buffers back; the
    // next request on it must not notice. (If the pause were shorter this would
    // still pass, just without exercising the release.)
    let backend = Backend::echo().await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    assert_eq!(
        c.roundtrip(post("/api/1", b"first")).await.body_str(),
        "first"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        c.roundtrip(post("/api/2", b"second")).await.body_str(),
        "second"
    );
    gw.stop().await;
}
