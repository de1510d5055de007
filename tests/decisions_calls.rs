//! Calls and backend failures under policies, decided in memory
//! (`common::memory`): `send-request` (new and copy mode, failures,
//! timeouts), `wait`, and what `forward-request` makes of a backend that is
//! unreachable or too slow. Call-out targets are scripted in-memory backends
//! reached by the driver's own call-out client; the test says what they
//! answer and reads what they were sent. Time is the harness's clock. What
//! needs sockets (`send-one-way-request` as a task of its own on each
//! runtime) stays in `policies_flow`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::memory::*;
use common::ok;
use common::policy_docs::{cfg, inbound, op, own_backend, papi, policies, LAST_ERROR_HEADER};
use common::Reply;
use serde_json::json;

#[test]
fn forward_request_timeout_goes_to_on_error() {
    let backend = MemBackend::start(|r| {
        if r.target().starts_with("/slow") {
            Reply::Hang
        } else {
            Reply::Send(ok("text/plain", b"fast"))
        }
    });
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
    let gw = MemGateway::start(&cfg(vec![a]));

    let r = get_with(&gw, "/api/slow/handled", &[]);
    assert_eq!(r.status, 504, "{r:?} {}", r.body_str());
    assert_eq!(
        r.header("x-error").as_deref(),
        Some("forward-request:Timeout")
    );

    let r = get_with(&gw, "/api/slow/plain", &[]);
    assert_eq!(r.status, 504, "{r:?}");

    let r = get_with(&gw, "/api/slow/replaced", &[]);
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.body_str(), "try later");

    let r = get_with(&gw, "/api/fast", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "fast");
    gw.stop();
}

#[test]
fn unreachable_backend_goes_to_on_error() {
    let dead = closed_port();
    let policy = policies("", "", "", LAST_ERROR_HEADER);
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", dead, &policy)]));
    let r = get_with(&gw, "/api/x", &[]);
    assert_eq!(r.status, 502, "{r:?} {}", r.body_str());
    let error = r.header("x-error").unwrap_or_default();
    assert!(error.starts_with("BackendConnectionFailure: "), "{r:?}");
    gw.stop();
}

#[test]
fn wait_for_calls_then_use_their_answers() {
    let backend = MemBackend::echo();
    let other = MemBackend::start(|r| Reply::Send(ok("text/plain", r.target().as_bytes())));
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
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = get_with(&gw, "/api/x", &[]);
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(
        backend.only_request().header("x-both").as_deref(),
        Some("/one+/two")
    );
    let mut seen: Vec<String> = other.requests().iter().map(|r| r.target()).collect();
    seen.sort();
    assert_eq!(seen, ["/one", "/two"]);
    gw.stop();
}

#[test]
fn a_failed_call_in_wait_is_named_by_its_own_send_request() {
    let backend = MemBackend::echo();
    let other = MemBackend::start(|r| Reply::Send(ok("text/plain", r.target().as_bytes())));
    let dead = closed_port();
    let policy = policies(
        &format!(
            r#"<wait for="all">
                 <send-request mode="new" response-variable-name="one" timeout="20">
                   <set-url>http://{o}/one</set-url>
                 </send-request>
                 <send-request mode="new" response-variable-name="two" timeout="20" id="second">
                   <set-url>http://{dead}/two</set-url>
                 </send-request>
               </wait>"#,
            o = other.addr
        ),
        "",
        "",
        r#"<set-header name="X-Error" exists-action="override"><value>@(context.LastError.Source + ":" + context.LastError.Reason + ":" + context.Variables.ContainsKey("one"))</value></set-header>"#,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = get_with(&gw, "/api/x", &[]);
    assert_eq!(
        r.header("x-error").as_deref(),
        Some("send-request:ConnectionFailure:True"),
        "{r:?} {}",
        r.body_str()
    );
    assert!(backend.requests().is_empty());
    gw.stop();
}

#[test]
fn send_request_response_used_in_a_header() {
    let backend = MemBackend::echo();
    let tokens = MemBackend::start(|_| Reply::Send(ok("text/plain", b"token-123")));
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
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = get_with(&gw, "/api/data", &[("X-User", "ada")]);
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
    gw.stop();
}

#[test]
fn send_request_failure_goes_to_on_error_unless_ignored() {
    let backend = MemBackend::echo();
    let dead = closed_port();
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
    let gw = MemGateway::start(&cfg(vec![a]));
    let r = get_with(&gw, "/api/strict", &[]);
    assert!(r.status >= 500, "{r:?}");
    assert_eq!(r.header("x-error").as_deref(), Some("send-request"));
    let r = get_with(&gw, "/api/lenient", &[]);
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(
        backend.only_request().header("x-null").as_deref(),
        Some("True")
    );
    gw.stop();
}

#[test]
fn send_request_copy_mode_sends_the_current_request() {
    let backend = MemBackend::echo();
    let mirror = MemBackend::start(|_| Reply::Send(ok("text/plain", b"mirrored")));
    let policy = inbound(&format!(
        r#"<send-request mode="copy" response-variable-name="m" timeout="20">
             <set-url>http://{}/mirror</set-url>
             <set-header name="X-Mirror" exists-action="override"><value>1</value></set-header>
           </send-request>
           <set-header name="X-Mirror-Said" exists-action="override"><value>@(((IResponse)context.Variables["m"]).Body.As&lt;string&gt;())</value></set-header>"#,
        mirror.addr
    ));
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = call(&gw, "POST", "/api/orig", &[("X-Client", "c1")], b"payload");
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(r.body_str(), "payload");
    let copy = mirror.only_request();
    assert_eq!(copy.method(), "POST");
    assert_eq!(copy.target(), "/mirror");
    assert_eq!(copy.body, b"payload");
    assert_eq!(copy.header("x-client").as_deref(), Some("c1"));
    assert_eq!(copy.header("x-mirror").as_deref(), Some("1"));
    let orig = backend.only_request();
    assert_eq!(orig.body, b"payload");
    assert_eq!(
        orig.header("x-mirror"),
        None,
        "the copy's headers stay in the copy"
    );
    assert_eq!(orig.header("x-mirror-said").as_deref(), Some("mirrored"));
    gw.stop();
}

#[test]
fn send_request_timeout_goes_to_on_error() {
    let backend = MemBackend::echo();
    let slow = MemBackend::start(|_| Reply::Hang);
    let policy = policies(
        &format!(
            r#"<send-request mode="new" response-variable-name="r" timeout="1"><set-url>http://{}/slow</set-url></send-request>"#,
            slow.addr
        ),
        "",
        "",
        LAST_ERROR_HEADER,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = get_with(&gw, "/api/x", &[]);
    assert!(r.status >= 500, "{r:?}");
    let error = r.header("x-error").unwrap_or_default();
    assert!(error.starts_with("Timeout"), "{r:?}");
    assert!(backend.requests().is_empty());
    gw.stop();
}

#[test]
fn send_one_way_request_is_sent_and_not_waited_for() {
    // The target never answers: the request goes on at once, the call is made
    // with what the policy set, and the client's answer does not wait for it.
    let backend = MemBackend::echo();
    let audit = MemBackend::start(|_| Reply::Hang);
    let policy = inbound(&format!(
        r#"<send-one-way-request mode="new">
             <set-url>@("http://{}/audit?of=" + context.Request.Url.Path)</set-url>
             <set-method>PUT</set-method>
             <set-header name="X-Audit" exists-action="override"><value>1</value></set-header>
             <set-body>seen</set-body>
           </send-one-way-request>"#,
        audit.addr
    ));
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let before = gw.clock().now();
    let r = get_with(&gw, "/api/audited", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(gw.clock().now(), before, "nobody waited for the call");
    assert_eq!(backend.only_request().target(), "/audited");
    let got = audit.only_request();
    assert_eq!(got.method(), "PUT");
    assert_eq!(got.target(), "/audit?of=/audited");
    assert_eq!(got.header("x-audit").as_deref(), Some("1"));
    assert_eq!(got.body, b"seen");
    gw.stop();
}
