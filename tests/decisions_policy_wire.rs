//! Policies and the wire, decided in memory (`common::memory`): keep-alive
//! and pipelining with policies that answer locally, rewrite or read bodies;
//! chunked and `Expect: 100-continue` bodies collected for policies; HEAD and
//! HTTP/1.0 requests under policies. Large streamed bodies and reloads stay on
//! sockets, in `policies_wire`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::Method;
use common::memory::*;
use common::policy_docs::{cfg, inbound, mark, op, outbound, papi, policies, values};
use common::{chunked, get, ok, post, Reply};
use serde_json::json;

#[test]
fn policy_requests_share_a_keep_alive_connection() {
    let backend = MemBackend::echo();
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
    let gw = MemGateway::start(&cfg(vec![a]));
    let mut c = gw.client();
    for round in 0..2 {
        let r = c.roundtrip(get("/api/plain"));
        assert_eq!(r.status, 200, "{r:?}");
        assert!(!r.says_close(), "{r:?}");
        let r = c.roundtrip(post("/api/upper", b"quiet"));
        assert_eq!(r.body_str(), "QUIET", "round {round}: {r:?}");
        assert!(!r.says_close(), "{r:?}");
        let r = c.roundtrip(get("/api/local"));
        assert_eq!(r.body_str(), "local");
        assert!(!r.says_close(), "{r:?}");
        let r = c.roundtrip(post("/api/wrapped-not", b"streamed"));
        assert_eq!(r.body_str(), "streamed");
        let r = c.roundtrip(get("/api/wrapped"));
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body_str(), "()");
        assert!(!r.says_close(), "{r:?}");
    }
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 8);
    assert!(reqs.iter().all(|r| r.complete));
    assert!(reqs.iter().all(|r| values(r.headers("x-order")) == ["api"]));
    assert_eq!(reqs[1].body, b"QUIET");
    gw.stop();
}

#[test]
fn pipelined_requests_with_policies_are_answered_in_order() {
    let backend = MemBackend::echo();
    let policy = policies(
        r#"<choose><when condition="@(context.Request.Url.Path.EndsWith(&quot;/local&quot;))">
             <return-response><set-status code="202" reason="Accepted" /><set-body>local</set-body></return-response>
           </when></choose>"#,
        "",
        r#"<set-header name="X-Seen" exists-action="override"><value>@(context.Request.Url.Path)</value></set-header>"#,
        "",
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let mut c = gw.client();
    let mut batch = Vec::new();
    for p in ["/api/1", "/api/local", "/api/3"] {
        batch.extend_from_slice(get(p).as_bytes());
    }
    batch.extend_from_slice(&post("/api/5", b"body"));
    c.send(&batch);
    let r = c.response();
    assert_eq!((r.status, r.header("x-seen")), (200, Some("/1".into())));
    let r = c.response();
    assert_eq!((r.status, r.body_str().as_str()), (202, "local"));
    let r = c.response();
    assert_eq!((r.status, r.header("x-seen")), (200, Some("/3".into())));
    let r = c.response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "body"));
    let targets: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    assert_eq!(targets, ["/1", "/3", "/5"]);
    gw.stop();
}

#[test]
fn chunked_and_expect_continue_bodies_are_collected_for_policies() {
    let backend = MemBackend::echo();
    let policy = inbound(
        r#"<set-body>@(context.Request.Body.As&lt;string&gt;().Replace("-", ""))</set-body>"#,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));

    let mut c = gw.client();
    let mut req =
        b"POST /api/c HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    req.extend_from_slice(&chunked(&[b"a-b-", b"c-d"]));
    let r = c.roundtrip(&req);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "abcd");

    // Expect: 100-continue: the gateway asks for the body itself.
    c.send(
        b"POST /api/e HTTP/1.1\r\nHost: gateway.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    ;
    let interim = c.read_head(&Method::POST);
    assert_eq!(interim.status, 100);
    c.send(b"x-y-z");
    let r = c.response_to(&Method::POST);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "xyz");

    let reqs = backend.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, b"abcd");
    assert_eq!(reqs[0].header("content-length").as_deref(), Some("4"));
    assert_eq!(reqs[0].header("transfer-encoding"), None);
    assert_eq!(reqs[1].body, b"xyz");
    assert_eq!(reqs[1].header("expect"), None);
    gw.stop();
}

#[test]
fn head_and_http10_requests_with_policies() {
    let backend = MemBackend::start(|_| Reply::Send(ok("text/plain", b"hello")));
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
    let gw = MemGateway::start(&cfg(vec![a]));

    for path in ["/api/x", "/api/local"] {
        let mut c = gw.client();
        c.send(format!(
            "HEAD {path} HTTP/1.1\r\nHost: gateway.test\r\n\r\n"
        ));
        let r = c.response_to(&Method::HEAD);
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body.is_empty());
        // The connection is still in step: the next answer parses.
        let r = c.roundtrip(get(path));
        assert_eq!(r.status, 200, "{r:?}");
        assert!(!r.body.is_empty());
    }

    for (path, body) in [("/api/x", "hello"), ("/api/local", "made here")] {
        let mut c = gw.client();
        c.send(format!("GET {path} HTTP/1.0\r\nHost: gateway.test\r\n\r\n"));
        let head = c.read_head(&Method::GET);
        assert_eq!(head.status, 200);
        let raw = String::from_utf8_lossy(&head.raw).to_lowercase();
        assert!(!raw.contains("transfer-encoding"), "{raw}");
        // Content-Length or close-delimited: either way the body ends at the close.
        let (_, got) = c.read_to_end();
        assert_eq!(String::from_utf8_lossy(&got), body, "{raw}");
    }
    gw.stop();
}
