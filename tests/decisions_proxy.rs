//! Proxying decisions, tested where they are made: routing, local answers
//! (404, 400, status probe, missing keys), which headers are forwarded and how,
//! how requests are framed for the backend. The connection machine is driven in
//! memory (`common::memory`) in front of scripted in-memory backends; bodies,
//! keep-alive, pipelining and backend failures are in `decisions_framing`;
//! what only real sockets show (bodies streamed, backpressure, half-closes)
//! stays in `proxy`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::Method;
use common::memory::*;
use common::{api, config, get, ok, post, Reply};
use serde_json::json;

#[test]
fn get_is_forwarded_with_path_and_query() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c.roundtrip(get("/api/items/42?x=1&y=two"));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.raw_head().starts_with(b"HTTP/1.1 200 "), "{r:?}");
    assert_eq!(r.header("x-path").as_deref(), Some("/items/42?x=1&y=two"));
    let req = backend.only_request();
    assert_eq!(req.method(), "GET");
    assert_eq!(req.target(), "/items/42?x=1&y=two");
    assert!(req
        .raw_head()
        .starts_with("GET /items/42?x=1&y=two HTTP/1.1\r\n"));
    assert_eq!(req.header("content-length"), None);
    assert_eq!(req.header("transfer-encoding"), None);
    gw.stop();
}

#[test]
fn service_url_base_path_is_prefixed() {
    let backend = MemBackend::echo();
    let doc = config(
        1,
        vec![api(
            "users",
            "/users/v1/",
            &format!("http://{}/base/path", backend.addr),
        )],
    );
    let gw = MemGateway::start(&doc);
    let mut c = gw.client();
    let r = c.roundtrip(get("/users/v1/list?page=2"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(backend.only_request().target(), "/base/path/list?page=2");
    gw.stop();
}

#[test]
fn hop_by_hop_headers_dropped_and_forwarded_headers_added() {
    let backend = MemBackend::start(|_| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nConnection: X-Resp-Hop\r\nX-Resp-Hop: secret\r\nKeep-Alive: timeout=5\r\n\
              Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nTrailer: X-T\r\nX-End-To-End: kept\r\n\
              Content-Length: 2\r\n\r\nok"
                .to_vec(),
        )
    });
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c.roundtrip(
        "GET /api/h HTTP/1.1\r\n\
             Host: example.test:8080\r\n\
             Connection: keep-alive, X-Custom-Hop\r\n\
             X-Custom-Hop: private\r\n\
             Keep-Alive: timeout=5\r\n\
             TE: trailers\r\n\
             Trailer: X-Foo\r\n\
             Upgrade: websocket\r\n\
             Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
             Proxy-Connection: keep-alive\r\n\
             X-Forwarded-For: 203.0.113.7\r\n\
             X-Forwarded-Proto: gopher\r\n\
             X-Forwarded-Host: spoofed.test\r\n\
             Authorization: Bearer abc\r\n\
             X-End-To-End: kept\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "ok");
    // Response side.
    for name in [
        "x-resp-hop",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "trailer",
    ] {
        assert!(!r.has(name), "response header {name} was forwarded: {r:?}");
    }
    assert!(
        r.head
            .header_pairs()
            .all(|(n, v)| !n.eq_ignore_ascii_case(b"connection") || v == b"close"),
        "{r:?}"
    );
    assert_eq!(r.header("x-end-to-end").as_deref(), Some("kept"));

    // Request side.
    let req = backend.only_request();
    for name in [
        "connection",
        "x-custom-hop",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(
            req.header(name).is_none(),
            "request header {name} was forwarded:\n{}",
            req.raw_head()
        );
    }
    assert_eq!(req.headers("host"), vec!["example.test:8080".to_owned()]);
    assert_eq!(req.header("authorization").as_deref(), Some("Bearer abc"));
    assert_eq!(req.header("x-end-to-end").as_deref(), Some("kept"));
    assert_eq!(
        req.headers("x-forwarded-for"),
        vec!["203.0.113.7, 127.0.0.1".to_owned()]
    );
    assert_eq!(req.headers("x-forwarded-proto"), vec!["http".to_owned()]);
    assert_eq!(
        req.headers("x-forwarded-host"),
        vec!["example.test:8080".to_owned()]
    );
    gw.stop();
}

#[test]
fn host_is_the_backends_when_not_preserved() {
    let backend = MemBackend::echo();
    let mut a = api("api", "api", &format!("http://{}", backend.addr));
    a["preserveHostHeader"] = json!(false);
    let gw = MemGateway::start(&config(1, vec![a]));
    let mut c = gw.client();
    let r = c.roundtrip(get("/api/x"));
    assert_eq!(r.status, 200);
    let req = backend.only_request();
    assert_eq!(req.headers("host"), vec![backend.addr.to_string()]);
    assert_eq!(
        req.header("x-forwarded-host").as_deref(),
        Some("gateway.test")
    );
    assert_eq!(req.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    gw.stop();
}

#[test]
fn unknown_path_gets_apim_404_and_keeps_the_connection() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    for path in ["/nothing/here", "/", "/apix/y"] {
        let r = c.roundtrip(get(path));
        assert_eq!(r.status, 404, "{path}");
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{r:?}"
        );
        assert_eq!(
            r.body,
            br#"{"statusCode":404,"message":"Resource not found"}"#,
            "{}",
            r.body_str()
        );
        assert_eq!(
            r.json(),
            json!({"statusCode": 404, "message": "Resource not found"})
        );
    }
    // Still open, and the next request is proxied.
    let r = c.roundtrip(get("/api/found"));
    assert_eq!(r.status, 200);
    assert_eq!(backend.only_request().target(), "/found");
    gw.stop();
}

#[test]
fn operation_method_must_match() {
    let backend = MemBackend::echo();
    let mut a = api("api", "api", &format!("http://{}", backend.addr));
    a["operations"] = json!([{ "id": "get-user", "method": "GET", "urlTemplate": "/users/{id}" }]);
    let gw = MemGateway::start(&config(1, vec![a]));
    let mut c = gw.client();
    assert_eq!(c.roundtrip(get("/api/users/7")).status, 200);
    assert_eq!(
        c.roundtrip(b"DELETE /api/users/7 HTTP/1.1\r\nHost: g\r\n\r\n")
            .status,
        404
    );
    assert_eq!(c.roundtrip(get("/api/users/7/extra")).status, 404);
    assert_eq!(backend.requests().len(), 1);
    gw.stop();
}

#[test]
fn dot_segments_and_encoded_slashes_get_400() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    for path in ["/api/../admin", "/api/a/%2e%2e/b", "/api/a%2Fb"] {
        let mut c = gw.client();
        let r = c.roundtrip(get(path));
        assert_eq!(r.status, 400, "{path}: {r:?}");
        c.expect_closed();
    }
    assert_eq!(backend.connections(), 0);
    gw.stop();
}

#[test]
fn status_probe_is_answered_locally() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c.roundtrip(get("/status-0123456789abcdef"));
    assert_eq!(r.status, 200);
    assert!(r.raw_head().starts_with(b"HTTP/1.1 200 OK\r\n"), "{r:?}");
    // Keep-alive after the probe.
    let r = c.roundtrip(get("/status-0123456789abcdef"));
    assert_eq!(r.status, 200);
    assert_eq!(backend.connections(), 0);
    gw.stop();
}

#[test]
fn subscription_key_is_required_when_configured() {
    let backend = MemBackend::echo();
    let mut a = api("keyed", "keyed", &format!("http://{}", backend.addr));
    a["subscriptionRequired"] = json!(true);
    let mut doc = config(1, vec![a]);
    doc["subscriptions"] = json!([{
        "id": "s1",
        "scope": "/apis/keyed",
        "primaryKey": "primary-key-0123456789",
        "secondaryKey": "secondary-key-0123456789"
    }]);
    let gw = MemGateway::start(&doc);
    let mut c = gw.client();
    let r = c.roundtrip(get("/keyed/x"));
    assert_eq!(r.status, 401);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("missing subscription key"),
        "{}",
        r.body_str()
    );
    let r = c
        .roundtrip(b"GET /keyed/x HTTP/1.1\r\nHost: g\r\nOcp-Apim-Subscription-Key: wrong-key-0123456789\r\n\r\n")
        ;
    assert_eq!(r.status, 401);
    let r = c
        .roundtrip(b"GET /keyed/x HTTP/1.1\r\nHost: g\r\nOcp-Apim-Subscription-Key: primary-key-0123456789\r\n\r\n")
        ;
    assert_eq!(r.status, 200, "{r:?}");
    let r = c.roundtrip(get("/keyed/y?subscription-key=secondary-key-0123456789"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(backend.requests().len(), 2);
    gw.stop();
}

#[test]
fn absolute_form_target_sets_the_host() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c.roundtrip(
        b"GET http://other.test:8080/api/abs?q=1 HTTP/1.1\r\nHost: ignored.test\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let req = backend.only_request();
    assert_eq!(req.target(), "/abs?q=1", "origin form upstream");
    assert_eq!(req.headers("host"), vec!["other.test:8080".to_owned()]);
    gw.stop();
}

#[test]
fn several_x_forwarded_for_lines_are_joined() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c
        .roundtrip(
            b"GET /api/x HTTP/1.1\r\nHost: g\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2 , 10.0.0.3\r\n\r\n",
        )
        ;
    assert_eq!(r.status, 200);
    assert_eq!(
        backend.only_request().headers("x-forwarded-for"),
        vec!["10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1".to_owned()]
    );
    gw.stop();
}

#[test]
fn head_response_with_chunked_header_has_no_body() {
    let backend = MemBackend::start(|r| {
        if r.method() == "HEAD" {
            Reply::Send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec())
        } else {
            Reply::Send(ok("text/plain", b"next"))
        }
    });
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    c.send(b"HEAD /api/x HTTP/1.1\r\nHost: g\r\n\r\n");
    let r = c.response_to(&Method::HEAD);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(c.roundtrip(get("/api/y")).body_str(), "next");
    assert_eq!(backend.connections(), 1);
    gw.stop();
}

#[test]
fn get_with_a_body_is_forwarded_with_its_length() {
    // A body on a GET is still a body (no "CL.0" desync): it is forwarded with its
    // Content-Length, and what it contains is never read as a second request.
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let inner = get("/api/inner");
    let r = c.roundtrip(format!(
        "GET /api/outer HTTP/1.1\r\nHost: g\r\nContent-Length: {}\r\n\r\n{inner}",
        inner.len()
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), inner);
    let req = backend.only_request();
    assert_eq!(req.target(), "/outer");
    assert_eq!(req.header("content-length"), Some(inner.len().to_string()));
    assert_eq!(req.body, inner.as_bytes());
    gw.stop();
}

#[test]
fn post_with_an_empty_body_keeps_content_length_zero() {
    // RFC 9110 8.6: a POST normally carries Content-Length even when it is 0, and
    // many servers answer 411 Length Required without it.
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c.roundtrip(post("/api/empty", b""));
    assert_eq!(r.status, 200);
    let req = backend.only_request();
    assert_eq!(
        req.header("content-length").as_deref(),
        Some("0"),
        "the backend got a POST without Content-Length:\n{}",
        req.raw_head()
    );
    gw.stop();
}

#[test]
fn api_root_and_query_only_paths() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c.roundtrip(get("/api/?a=1"));
    assert_eq!(r.status, 200, "{r:?}");
    let r = c.roundtrip(get("/api/x/?b=2"));
    assert_eq!(r.status, 200, "{r:?}");
    let targets: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    assert_eq!(targets, ["/?a=1", "/x/?b=2"]);
    gw.stop();
}

#[test]
fn longest_prefix_and_hostnames_pick_the_api() {
    let a = MemBackend::echo();
    let b = MemBackend::echo();
    let h = MemBackend::echo();
    let mut host_api = api("host-api", "shop", &format!("http://{}", h.addr));
    host_api["hostnames"] = json!(["shop.example.test"]);
    let doc = config(
        1,
        vec![
            api("root", "", &format!("http://{}", a.addr)),
            api("shop", "shop", &format!("http://{}", b.addr)),
            host_api,
        ],
    );
    let gw = MemGateway::start(&doc);
    let mut c = gw.client();
    assert_eq!(c.roundtrip(get("/anything")).status, 200);
    assert_eq!(c.roundtrip(get("/shop/cart")).status, 200);
    assert_eq!(c.roundtrip(get("/shopping")).status, 200);
    let r = c.roundtrip(b"GET /shop/cart HTTP/1.1\r\nHost: shop.example.test:8080\r\n\r\n");
    assert_eq!(r.status, 200);
    let targets =
        |b: &MemBackend| -> Vec<String> { b.requests().iter().map(|r| r.target()).collect() };
    assert_eq!(targets(&a), ["/anything", "/shopping"]);
    assert_eq!(targets(&b), ["/cart"]);
    assert_eq!(targets(&h), ["/cart"]);
    gw.stop();
}
