//! Proxying over real sockets: bodies in both directions, keep-alive and
//! pipelining, Expect: 100-continue, local answers on a live connection and
//! backend errors. Routing and header decisions are tested in memory, in
//! `decisions_proxy`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
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
