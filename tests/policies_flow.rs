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
