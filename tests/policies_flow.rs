//! APIM policies end to end, what needs real sockets: forward-request timeouts,
//! unreachable backends, calls to other services (flow decisions and caching
//! are tested in memory, in `decisions_flow`): a real gateway (in-process, loopback
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
use serde_json::json;

// ---------------------------------------------------------------------------
// Flow
// ---------------------------------------------------------------------------

#[runtimes]
async fn forward_request_timeout_goes_to_on_error(rt: Runtime) {
    let backend = Backend::start(|r| {
        if r.target().starts_with("/slow") {
            Reply::Hang
        } else {
            Reply::Send(ok("text/plain", b"fast"))
        }
    })
    .await;
    let mut a = papi("a", "api", backend.addr, "");
    a["operations"] = json!([
        op(
            "handled",
            "GET",
            "/slow/handled",
            &own_backend(
                "",
                r#"<forward-request timeout="1" />"#,
                "",
                r#"<set-header name="X-Error" exists-action="override"><value>@(context.LastError.Source + ":" + context.LastError.Reason)</value></set-header>"#
            )
        ),
        op(
            "plain",
            "GET",
            "/slow/plain",
            &own_backend("", r#"<forward-request timeout="1" />"#, "", "")
        ),
        op(
            "replaced",
            "GET",
            "/slow/replaced",
            &own_backend(
                "",
                r#"<forward-request timeout="1" />"#,
                "",
                r#"<return-response><set-status code="503" reason="Later" /><set-body>try later</set-body></return-response>"#
            )
        ),
        op(
            "fast",
            "GET",
            "/fast",
            &own_backend("", r#"<forward-request timeout="1" />"#, "", "")
        ),
    ]);
    let gw = TestGateway::start(rt, &cfg(vec![a])).await;

    let r = get_with(&gw, "/api/slow/handled", &[]).await;
    assert_eq!(r.status, 504, "{r:?} {}", r.body_str());
    assert_eq!(
        r.header("x-error").as_deref(),
        Some("forward-request:Timeout")
    );

    let r = get_with(&gw, "/api/slow/plain", &[]).await;
    assert_eq!(r.status, 504, "{r:?}");

    let r = get_with(&gw, "/api/slow/replaced", &[]).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.body_str(), "try later");

    let r = get_with(&gw, "/api/fast", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "fast");
    gw.stop().await;
}

#[runtimes]
async fn unreachable_backend_goes_to_on_error(rt: Runtime) {
    let dead = closed_port().await;
    let policy = policies("", "", "", LAST_ERROR_HEADER);
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", dead, &policy)])).await;
    let r = get_with(&gw, "/api/x", &[]).await;
    assert_eq!(r.status, 502, "{r:?} {}", r.body_str());
    let error = r.header("x-error").unwrap_or_default();
    assert!(error.starts_with("BackendConnectionFailure: "), "{r:?}");
    gw.stop().await;
}

#[runtimes]
async fn wait_for_calls_then_use_their_answers(rt: Runtime) {
    let backend = Backend::echo().await;
    let other = Backend::start(|r| Reply::Send(ok("text/plain", r.target().as_bytes()))).await;
    let policy = inbound(&format!(
        r#"<wait for="all">
             <send-request mode="new" response-variable-name="one" timeout="20">
               <set-url>http://{o}/one</set-url>
             </send-request>
             <send-request mode="new" response-variable-name="two" timeout="20">
               <set-url>http://{o}/two</set-url>
             </send-request>
           </wait>
           <set-header name="X-Both" exists-action="override"><value>@(((IResponse)context.Variables["one"]).Body.As&lt;string&gt;() + "+" + ((IResponse)context.Variables["two"]).Body.As&lt;string&gt;())</value></set-header>"#,
        o = other.addr
    ));
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/x", &[]).await;
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(
        backend.only_request().header("x-both").as_deref(),
        Some("/one+/two")
    );
    let mut seen: Vec<String> = other.requests().iter().map(|r| r.target()).collect();
    seen.sort();
    assert_eq!(seen, ["/one", "/two"]);
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// Calls to other services
// ---------------------------------------------------------------------------

#[runtimes]
async fn send_request_response_used_in_a_header(rt: Runtime) {
    let backend = Backend::echo().await;
    let tokens = Backend::start(|_| Reply::Send(ok("text/plain", b"token-123"))).await;
    let policy = inbound(&format!(
        r#"<send-request mode="new" response-variable-name="r" timeout="20" ignore-error="false">
             <set-url>http://{}/issue?for=@(context.Request.Url.Path)</set-url>
             <set-method>POST</set-method>
             <set-header name="X-Caller" exists-action="override"><value>gateway</value></set-header>
             <set-body>@("user=" + context.Request.Headers.GetValueOrDefault("X-User", "?"))</set-body>
           </send-request>
           <set-header name="X-Token" exists-action="override"><value>@(((IResponse)context.Variables["r"]).Body.As&lt;string&gt;())</value></set-header>
           <set-header name="X-Token-Status" exists-action="override"><value>@(((IResponse)context.Variables["r"]).StatusCode.ToString())</value></set-header>"#,
        tokens.addr
    ));
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/data", &[("X-User", "ada")]).await;
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    let req = backend.only_request();
    assert_eq!(req.header("x-token").as_deref(), Some("token-123"));
    assert_eq!(req.header("x-token-status").as_deref(), Some("200"));
    let call = tokens.only_request();
    assert_eq!(call.method(), "POST");
    assert_eq!(call.header("x-caller").as_deref(), Some("gateway"));
    assert_eq!(call.body, b"user=ada");
    assert!(
        call.target().starts_with("/issue?for="),
        "{}",
        call.target()
    );
    gw.stop().await;
}

#[runtimes]
async fn send_request_failure_goes_to_on_error_unless_ignored(rt: Runtime) {
    let backend = Backend::echo().await;
    let dead = closed_port().await;
    let mut a = papi("a", "api", backend.addr, "");
    a["operations"] = json!([
        op(
            "strict",
            "GET",
            "/strict",
            &policies(
                &format!(
                    r#"<send-request mode="new" response-variable-name="r" timeout="10"><set-url>http://{dead}/x</set-url></send-request>"#
                ),
                "",
                "",
                r#"<set-header name="X-Error" exists-action="override"><value>@(context.LastError.Source)</value></set-header>"#
            )
        ),
        op(
            "lenient",
            "GET",
            "/lenient",
            &inbound(&format!(
                r#"<send-request mode="new" response-variable-name="r" timeout="10" ignore-error="true"><set-url>http://{dead}/x</set-url></send-request>
                   <set-header name="X-Null" exists-action="override"><value>@((context.Variables["r"] == null).ToString())</value></set-header>"#
            ))
        ),
    ]);
    let gw = TestGateway::start(rt, &cfg(vec![a])).await;
    let r = get_with(&gw, "/api/strict", &[]).await;
    assert!(r.status >= 500, "{r:?}");
    assert_eq!(r.header("x-error").as_deref(), Some("send-request"));
    let r = get_with(&gw, "/api/lenient", &[]).await;
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(
        backend.only_request().header("x-null").as_deref(),
        Some("True")
    );
    gw.stop().await;
}

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
