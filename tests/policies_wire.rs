//! APIM policies end to end, policies and the wire: keep-alive, pipelining,
//! framing, bodies, reloads, timeouts (what policies decide from the backend's
//! answers is tested in memory, in `decisions_backend`): a real gateway (in-process, loopback
//! sockets) in front of recording test backends, configured with policy
//! documents at the global, product, API and operation scopes. Each test checks
//! what the client sees (status, headers, body) and what the backends received.
//!
//! Nothing here depends on timing: rate limits and quotas use periods of a minute
//! or more, slow backends are held by gates the test opens, and every wait has the
//! generous hang guard of `common::within`. The suite's shared helpers are in
//! `common::policy_docs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::http::Method;
use common::policy_docs::*;
use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Policies and the wire: keep-alive, framing, reloads
// ---------------------------------------------------------------------------

#[runtimes]
async fn policy_requests_share_a_keep_alive_connection(rt: Runtime) {
    let backend = Backend::echo().await;
    let mut a = papi("a", "api", backend.addr, &inbound(&mark("api")));
    a["operations"] = json!([
        op(
            "upper",
            "POST",
            "/upper",
            &inbound(
                r#"<set-body>@(context.Request.Body.As&lt;string&gt;().ToUpper())</set-body>"#
            )
        ),
        op(
            "local",
            "GET",
            "/local",
            &inbound(
                r#"<return-response><set-status code="200" reason="OK" /><set-body>local</set-body></return-response>"#
            )
        ),
        op(
            "wrapped",
            "GET",
            "/wrapped",
            &outbound(
                r#"<set-body>@("(" + context.Response.Body.As&lt;string&gt;() + ")")</set-body>"#
            )
        ),
        op("plain", "*", "/*", ""),
    ]);
    let gw = TestGateway::start(rt, &cfg(vec![a])).await;
    let mut c = gw.client().await;
    for round in 0..2 {
        let r = c.roundtrip(get("/api/plain")).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(!r.says_close(), "{r:?}");
        let r = c.roundtrip(post("/api/upper", b"quiet")).await;
        assert_eq!(r.body_str(), "QUIET", "round {round}: {r:?}");
        assert!(!r.says_close(), "{r:?}");
        let r = c.roundtrip(get("/api/local")).await;
        assert_eq!(r.body_str(), "local");
        assert!(!r.says_close(), "{r:?}");
        let r = c.roundtrip(post("/api/wrapped-not", b"streamed")).await;
        assert_eq!(r.body_str(), "streamed");
        let r = c.roundtrip(get("/api/wrapped")).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body_str(), "()");
        assert!(!r.says_close(), "{r:?}");
    }
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 8);
    assert!(reqs.iter().all(|r| r.complete));
    assert!(reqs.iter().all(|r| values(r.headers("x-order")) == ["api"]));
    assert_eq!(reqs[1].body, b"QUIET");
    gw.stop().await;
}

#[runtimes]
async fn pipelined_requests_with_policies_are_answered_in_order(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = policies(
        r#"<choose><when condition="@(context.Request.Url.Path.EndsWith(&quot;/local&quot;))">
             <return-response><set-status code="202" reason="Accepted" /><set-body>local</set-body></return-response>
           </when></choose>"#,
        "",
        r#"<set-header name="X-Seen" exists-action="override"><value>@(context.Request.Url.Path)</value></set-header>"#,
        "",
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let mut c = gw.client().await;
    let mut batch = Vec::new();
    for p in ["/api/1", "/api/local", "/api/3"] {
        batch.extend_from_slice(get(p).as_bytes());
    }
    batch.extend_from_slice(&post("/api/5", b"body"));
    c.send(&batch).await;
    let r = c.response().await;
    assert_eq!((r.status, r.header("x-seen")), (200, Some("/1".into())));
    let r = c.response().await;
    assert_eq!((r.status, r.body_str().as_str()), (202, "local"));
    let r = c.response().await;
    assert_eq!((r.status, r.header("x-seen")), (200, Some("/3".into())));
    let r = c.response().await;
    assert_eq!((r.status, r.body_str().as_str()), (200, "body"));
    let targets: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    assert_eq!(targets, ["/1", "/3", "/5"]);
    gw.stop().await;
}

#[runtimes]
async fn chunked_and_expect_continue_bodies_are_collected_for_policies(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound(
        r#"<set-body>@(context.Request.Body.As&lt;string&gt;().Replace("-", ""))</set-body>"#,
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;

    let mut c = gw.client().await;
    let mut req =
        b"POST /api/c HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    req.extend_from_slice(&chunked(&[b"a-b-", b"c-d"]));
    let r = c.roundtrip(&req).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "abcd");

    // Expect: 100-continue: the gateway asks for the body itself.
    c.send(
        b"POST /api/e HTTP/1.1\r\nHost: gateway.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .await;
    let interim = c.read_head(&Method::POST).await;
    assert_eq!(interim.status, 100);
    c.send(b"x-y-z").await;
    let r = c.response_to(&Method::POST).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "xyz");

    let reqs = backend.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, b"abcd");
    assert_eq!(reqs[0].header("content-length").as_deref(), Some("4"));
    assert_eq!(reqs[0].header("transfer-encoding"), None);
    assert_eq!(reqs[1].body, b"xyz");
    assert_eq!(reqs[1].header("expect"), None);
    gw.stop().await;
}

#[runtimes]
async fn large_bodies_stream_past_header_only_policies(rt: Runtime) {
    let block = base_block(64 * 1024);
    let body: Vec<u8> = block
        .iter()
        .cycle()
        .take(3 * 1024 * 1024 + 7)
        .copied()
        .collect();
    let expected = body.clone();
    let backend = Backend::start(move |r| {
        if r.method() == "GET" {
            let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for piece in body.chunks(100_000) {
                out.extend_from_slice(&chunked(&[piece])[..]);
                // chunked() ends each call with the last chunk: drop it but for the end.
                out.truncate(out.len() - 5);
            }
            out.extend_from_slice(b"0\r\n\r\n");
            Reply::Send(out)
        } else {
            Reply::Send(ok("text/plain", format!("{}", r.body.len()).as_bytes()))
        }
    })
    .await;
    let policy = policies(
        &mark("in"),
        "",
        r#"<set-header name="X-Out" exists-action="override"><value>@(context.Response.StatusCode.ToString())</value></set-header>"#,
        "",
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let mut c = gw.client().await;
    let r = c.roundtrip(get("/api/big")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-out").as_deref(), Some("200"));
    assert_eq!(r.body.len(), expected.len());
    assert!(r.body == expected, "streamed body differs");

    let upload = base_block(2 * 1024 * 1024);
    let r = c.roundtrip(post("/api/up", &upload)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), upload.len().to_string());
    let got = &backend.requests()[1];
    assert!(got.body == upload, "uploaded body differs");
    assert_eq!(values(got.headers("x-order")), ["in"]);
    gw.stop().await;
}

#[runtimes]
async fn head_and_http10_requests_with_policies(rt: Runtime) {
    let backend = Backend::start(|_| Reply::Send(ok("text/plain", b"hello"))).await;
    let policy = outbound(
        r#"<set-header name="X-Out" exists-action="override"><value>yes</value></set-header>"#,
    );
    let mut a = papi("a", "api", backend.addr, &policy);
    a["operations"] = json!([
        op(
            "local",
            "*",
            "/local",
            &inbound(
                r#"<return-response><set-status code="200" reason="OK" /><set-body>made here</set-body></return-response>"#
            )
        ),
        op("any", "*", "/*", ""),
    ]);
    let gw = TestGateway::start(rt, &cfg(vec![a])).await;

    for path in ["/api/x", "/api/local"] {
        let mut c = gw.client().await;
        c.send(format!(
            "HEAD {path} HTTP/1.1\r\nHost: gateway.test\r\n\r\n"
        ))
        .await;
        let r = c.response_to(&Method::HEAD).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body.is_empty());
        // The connection is still in step: the next answer parses.
        let r = c.roundtrip(get(path)).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(!r.body.is_empty());
    }

    for (path, body) in [("/api/x", "hello"), ("/api/local", "made here")] {
        let mut c = gw.client().await;
        c.send(format!("GET {path} HTTP/1.0\r\nHost: gateway.test\r\n\r\n"))
            .await;
        let head = c.read_head(&Method::GET).await;
        assert_eq!(head.status, 200);
        let raw = String::from_utf8_lossy(&head.raw).to_lowercase();
        assert!(!raw.contains("transfer-encoding"), "{raw}");
        // Content-Length or close-delimited: either way the body ends at the close.
        let (_, got) = c.read_to_end().await;
        assert_eq!(String::from_utf8_lossy(&got), body, "{raw}");
    }
    gw.stop().await;
}

#[runtimes]
async fn reload_puts_new_policies_in_force_and_keeps_them_on_a_bad_one(rt: Runtime) {
    let backend = Backend::echo().await;
    let doc_with = |revision: u64, policy: &str| {
        let mut d = config(revision, vec![papi("a", "api", backend.addr, policy)]);
        // Sizes differ per revision so the watcher cannot miss a change.
        d["apis"][0]["description"] = json!("r".repeat(revision as usize));
        serde_json::to_vec_pretty(&d).unwrap()
    };
    let v = |value: &str| {
        inbound(&format!(
            r#"<set-header name="X-Version" exists-action="override"><value>{value}</value></set-header>"#
        ))
    };
    let doc: Value = serde_json::from_slice(&doc_with(1, &v("one"))).unwrap();
    let gw =
        TestGateway::start_with(rt, &doc, |o| o.reload_interval = Duration::from_millis(50)).await;
    let version = |gw: &TestGateway| {
        let gw_addr = gw.addr;
        async move {
            let mut c = Client::connect(gw_addr).await;
            c.roundtrip(get("/api/v")).await;
        }
    };
    version(&gw).await;
    assert_eq!(
        backend.requests()[0].header("x-version").as_deref(),
        Some("one")
    );

    // A bad policy is rejected: revision 1 stays.
    write_atomically(
        &gw.config_path,
        &doc_with(2, "<policies><inbound><nope /></inbound></policies>"),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gw.gateway.revision(), Some(1));
    version(&gw).await;
    assert_eq!(
        backend
            .requests()
            .last()
            .unwrap()
            .header("x-version")
            .as_deref(),
        Some("one")
    );

    // A good one is put in force.
    write_atomically(&gw.config_path, &doc_with(3, &v("three")));
    within("revision 3 is in force", async {
        while gw.gateway.revision() != Some(3) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    version(&gw).await;
    assert_eq!(
        backend
            .requests()
            .last()
            .unwrap()
            .header("x-version")
            .as_deref(),
        Some("three")
    );
    gw.stop().await;
}
