//! APIM policies end to end, what needs real sockets: a `send-one-way-request`
//! made in a task of its own on each runtime (flow decisions and caching are
//! tested in memory, in `decisions_flow`; `send-request`, `wait` and
//! forward-request failures in `decisions_calls`): a real gateway (in-process, loopback
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

use common::policy_docs::*;
use common::*;

use std::sync::Arc;
use tokio::sync::Notify;

#[runtimes]
async fn send_one_way_request_reaches_the_other_server(rt: Runtime) {
    let backend = Backend::echo().await;
    let audit = Backend::start(|_| Reply::Send(response(204, &[], b""))).await;
    let policy = inbound(&format!(
        r#"<send-one-way-request mode="new">
             <set-url>http://{}/audit</set-url>
             <set-method>POST</set-method>
             <set-header name="Content-Type" exists-action="override"><value>text/plain</value></set-header>
             <set-body>@(context.Request.Method + " " + context.Request.OriginalUrl.Path)</set-body>
           </send-one-way-request>"#,
        audit.addr
    ));
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/audited", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(backend.only_request().target(), "/audited");
    audit.wait_requests(1).await;
    let got = audit.only_request();
    assert_eq!(got.method(), "POST");
    assert_eq!(got.target(), "/audit");
    assert_eq!(got.body, b"GET /api/audited");
    gw.stop().await;
}

/// The second corpus's `wait.xml` (two pricing replicas asked at once) with
/// `for` set to `mode`, in front of `backend`, the replicas `primary` and
/// `secondary`.
fn wait_config(
    mode: &str,
    backend: std::net::SocketAddr,
    primary: std::net::SocketAddr,
    secondary: std::net::SocketAddr,
) -> serde_json::Value {
    let policy = include_str!("../core/tests/apim-corpus-2/wait.xml")
        .replace(r#"<wait for="any">"#, &format!(r#"<wait for="{mode}">"#));
    let mut doc = cfg(vec![papi("a", "api", backend, &policy)]);
    doc["namedValues"] = serde_json::json!([
        {"name": "pricing-primary", "value": format!("http://{primary}")},
        {"name": "pricing-secondary", "value": format!("http://{secondary}")},
    ]);
    doc
}

/// Two held pricing replicas: each answers its price once its gate opens.
async fn held_replicas() -> (Backend, Arc<Notify>, Backend, Arc<Notify>) {
    let (ga, gb) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let a = ga.clone();
    let primary =
        Backend::start(move |_| Reply::AfterGate(a.clone(), ok("text/plain", b"10.00"))).await;
    let b = gb.clone();
    let secondary =
        Backend::start(move |_| Reply::AfterGate(b.clone(), ok("text/plain", b"10.01"))).await;
    (primary, ga, secondary, gb)
}

#[runtimes]
async fn wait_for_any_has_both_calls_in_flight_and_goes_on_at_the_first_answer(rt: Runtime) {
    let backend = Backend::echo().await;
    let (primary, primary_gate, secondary, secondary_gate) = held_replicas().await;
    let doc = wait_config("any", backend.addr, primary.addr, secondary.addr);
    let gw = TestGateway::start(rt, &doc).await;
    let mut c = gw.client().await;
    c.send(get("/api/quote")).await;
    // Both calls are in flight while neither has answered.
    primary.wait_requests(1).await;
    secondary.wait_requests(1).await;
    assert!(backend.requests().is_empty());
    // The secondary answers first: the request goes on with it, the primary
    // still held (its call is cancelled).
    secondary_gate.notify_one();
    let r = c.response().await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        backend.only_request().header("x-price").as_deref(),
        Some("10.01")
    );
    primary_gate.notify_one();
    gw.stop().await;
}

#[runtimes]
async fn wait_for_all_has_both_calls_in_flight_and_goes_on_when_both_answered(rt: Runtime) {
    let backend = Backend::echo().await;
    let (primary, primary_gate, secondary, secondary_gate) = held_replicas().await;
    let doc = wait_config("all", backend.addr, primary.addr, secondary.addr);
    let gw = TestGateway::start(rt, &doc).await;
    let mut c = gw.client().await;
    c.send(get("/api/quote")).await;
    primary.wait_requests(1).await;
    secondary.wait_requests(1).await;
    // One answer is not enough for "all".
    secondary_gate.notify_one();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        backend.requests().is_empty(),
        "went on before both answered"
    );
    primary_gate.notify_one();
    let r = c.response().await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        backend.only_request().header("x-price").as_deref(),
        Some("10.00")
    );
    gw.stop().await;
}
