//! APIM policies end to end, what needs requests truly in flight at once
//! (`limit-concurrency`): a real gateway (in-process, loopback
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

use std::sync::Arc;

use common::policy_docs::*;
use common::*;
use tokio::sync::Notify;

// ---------------------------------------------------------------------------
// Access restriction
// ---------------------------------------------------------------------------
#[runtimes]
async fn limit_concurrency_refuses_a_second_request_in_flight(rt: Runtime) {
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let backend = Backend::start(move |r| {
        let body = ok("text/plain", r.target().as_bytes());
        if r.target() == "/slow" {
            Reply::AfterGate(g.clone(), body)
        } else {
            Reply::Send(body)
        }
    })
    .await;
    let policy = policies(
        "",
        r#"<limit-concurrency key="@(&quot;everyone&quot;)" max-count="1"><forward-request timeout="60" /></limit-concurrency>"#,
        "",
        "",
    );
    // The API's backend section replaces the default forward (no <base />).
    let policy = policy.replacen("<backend>\n<base />", "<backend>", 1);
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;

    let mut first = gw.client().await;
    first.send(get("/api/slow")).await;
    backend.wait_requests(1).await;

    // While the first is held by the backend, a second one is refused.
    let r = get_with(&gw, "/api/fast", &[]).await;
    assert_apim_error(&r, 429, "Too many concurrent requests.");
    assert_eq!(backend.requests().len(), 1);

    gate.notify_one();
    let r = first.response().await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "/slow");

    // The slot is free again.
    let r = get_with(&gw, "/api/fast", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "/fast");
    gw.stop().await;
}
