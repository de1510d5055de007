//! `limit-concurrency` decided in memory (`common::memory`): a backend answer
//! held by the test keeps a request in flight while a second one is refused;
//! slots are given back after a failure and when a client leaves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::memory::*;
use common::policy_docs::{assert_apim_error, cfg, own_backend, papi, policies};
use common::{get, ok, Reply};
use tokio::sync::Notify;

#[test]
fn limit_concurrency_slot_is_released_after_a_failure() {
    let backend = MemBackend::start(|r| {
        if r.target() == "/hang" {
            Reply::Hang
        } else {
            Reply::Send(ok("text/plain", b"fine"))
        }
    });
    let policy = own_backend(
        "",
        r#"<limit-concurrency key="one" max-count="1"><forward-request timeout="1" /></limit-concurrency>"#,
        "",
        "",
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = get_with(&gw, "/api/hang", &[]);
    assert_eq!(r.status, 504, "{r:?}");
    let r = get_with(&gw, "/api/ok", &[]);
    assert_eq!(r.status, 200, "the slot was given back: {r:?}");
    // And after a client that went away in the middle.
    {
        let mut c = gw.client();
        c.send(get("/api/hang"));
        c.pump();
        assert_eq!(backend.requests().len(), 3);
        // In flight, it holds the slot.
        let r = get_with(&gw, "/api/ok", &[]);
        assert_apim_error(&r, 429, "Too many concurrent requests.");
    }
    let r = get_with(&gw, "/api/ok", &[]);
    assert_eq!(
        r.status, 200,
        "the slot is given back after the client left: {r:?}"
    );
    gw.stop();
}

#[test]
fn limit_concurrency_refuses_a_second_request_in_flight() {
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let backend = MemBackend::start(move |r| {
        let body = ok("text/plain", r.target().as_bytes());
        if r.target() == "/slow" {
            Reply::AfterGate(g.clone(), body)
        } else {
            Reply::Send(body)
        }
    });
    let policy = policies(
        "",
        r#"<limit-concurrency key="@(&quot;everyone&quot;)" max-count="1"><forward-request timeout="60" /></limit-concurrency>"#,
        "",
        "",
    );
    // The API's backend section replaces the default forward (no <base />).
    let policy = policy.replacen("<backend>\n<base />", "<backend>", 1);
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));

    let mut first = gw.client();
    first.send(get("/api/slow"));
    first.pump();
    assert_eq!(backend.requests().len(), 1);

    // While the first is held by the backend, a second one is refused.
    let r = get_with(&gw, "/api/fast", &[]);
    assert_apim_error(&r, 429, "Too many concurrent requests.");
    assert_eq!(backend.requests().len(), 1);

    gate.notify_one();
    let r = first.response();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "/slow");

    // The slot is free again.
    let r = get_with(&gw, "/api/fast", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "/fast");
    gw.stop();
}

#[test]
fn limit_concurrency_counts_every_request_in_flight() {
    // Two slots: two requests held by the backend at once, a third refused;
    // once the answers are released both complete and the slots are free.
    let backend = MemBackend::start(|r| Reply::Send(ok("text/plain", r.target().as_bytes())));
    let policy = own_backend(
        "",
        r#"<limit-concurrency key="two" max-count="2"><forward-request timeout="60" /></limit-concurrency>"#,
        "",
        "",
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    backend.hold();
    let mut first = gw.client();
    first.send(get("/api/one"));
    first.pump();
    let mut second = gw.client();
    second.send(get("/api/two"));
    second.pump();
    assert_eq!(backend.requests().len(), 2);
    assert_eq!(backend.held(), 2);
    let r = get_with(&gw, "/api/three", &[]);
    assert_apim_error(&r, 429, "Too many concurrent requests.");
    assert_eq!(backend.requests().len(), 2, "the refused one never left");

    backend.release();
    let r = second.response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "/two"));
    let r = first.response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "/one"));
    // Both slots are free again, while the two connections stay open.
    let mut third = gw.client();
    let mut fourth = gw.client();
    backend.hold();
    third.send(get("/api/3"));
    third.pump();
    fourth.send(get("/api/4"));
    fourth.pump();
    assert_eq!(backend.held(), 2);
    backend.release();
    assert_eq!(third.response().status, 200);
    assert_eq!(fourth.response().status, 200);
    gw.stop();
}
