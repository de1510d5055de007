//! What policies make of the backend's answers and the request's key: empty
//! bodies, error statuses sent to on-error, redirects followed, the
//! bandwidth quota, custom subscription key names; tested where they are
//! decided: the connection machine driven in memory (`common::memory`) in
//! front of scripted in-memory backends. Keep-alive and pipelining under
//! policies are in `decisions_policy_wire`; what needs real sockets (streamed
//! bodies, reloads) stays in `policies_wire`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::memory::*;
use common::policy_docs::{
    assert_apim_error, cfg, inbound, mark, own_backend, papi, policies, subscription, KEY_A,
    LAST_ERROR_HEADER, MISSING_KEY,
};
use common::{get, ok, response, Reply};
use serde_json::json;

#[test]
fn custom_subscription_key_names_are_not_forwarded() {
    let backend = MemBackend::echo();
    let mut a = papi("a", "api", backend.addr, &inbound(&mark("api")));
    a["subscriptionRequired"] = json!(true);
    a["subscriptionKeyParameterNames"] = json!({ "header": "X-Api-Key", "query": "apikey" });
    let mut doc = cfg(vec![a]);
    doc["subscriptions"] = json!([subscription("s", "/apis/a", KEY_A, "active")]);
    let gw = MemGateway::start(&doc);
    let r = get_with(&gw, "/api/h", &[("X-Api-Key", KEY_A)]);
    assert_eq!(r.status, 200, "{r:?}");
    let r = get_with(&gw, &format!("/api/q?apikey={KEY_A}&z=1"), &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let r = get_with(&gw, "/api/h", &[("Ocp-Apim-Subscription-Key", KEY_A)]);
    assert_apim_error(&r, 401, MISSING_KEY);
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("x-api-key"), None);
    assert_eq!(reqs[1].target(), "/q?z=1");
    gw.stop();
}

#[test]
fn outbound_policy_reads_an_empty_backend_body() {
    // Content-Length: 0, and 204 without a body.
    let backend = MemBackend::start(|r| {
        let status = if r.target() == "/none" { 204 } else { 200 };
        Reply::Send(response(status, &[], b""))
    });
    let policy = policies(
        "",
        "",
        r#"<set-header name="X-Len" exists-action="override"><value>@(context.Response.Body.As&lt;string&gt;().Length.ToString())</value></set-header>"#,
        LAST_ERROR_HEADER,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let mut c = gw.client();
    for path in ["/api/empty", "/api/none", "/api/empty"] {
        let r = c.roundtrip(get(path));
        assert!(r.status == 200 || r.status == 204, "{path}: {r:?}");
        assert_eq!(r.header("x-error"), None, "{path}");
        assert_eq!(r.header("x-len").as_deref(), Some("0"), "{path}: {r:?}");
        assert!(r.body.is_empty());
    }
    assert_eq!(backend.connections(), 1, "the backend connection is reused");
    gw.stop();
}

#[test]
fn fail_on_error_status_code_goes_to_on_error() {
    let backend = status_backend();
    let policy = own_backend(
        "",
        r#"<forward-request fail-on-error-status-code="true" />"#,
        r#"<set-header name="X-Outbound" exists-action="override"><value>ran</value></set-header>"#,
        LAST_ERROR_HEADER,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = get_with(&gw, "/api/status/503", &[]);
    assert!(r.status >= 500, "{r:?}");
    let error = r.header("x-error").unwrap_or_default();
    assert!(error.starts_with("BackendErrorStatusCode: "), "{r:?}");
    assert!(!r.has("x-outbound"), "outbound is skipped: {r:?}");
    let r = get_with(&gw, "/api/fine", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-outbound").as_deref(), Some("ran"));
    assert_eq!(r.header("x-error"), None);
    gw.stop();
}

#[test]
fn forward_request_follows_redirects() {
    let backend = MemBackend::start(|r| {
        if r.target() == "/old" {
            Reply::Send(response(302, &[("Location", "/new")], b""))
        } else {
            Reply::Send(ok("text/plain", r.target().as_bytes()))
        }
    });
    let policy = own_backend("", r#"<forward-request follow-redirects="true" />"#, "", "");
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = get_with(&gw, "/api/old", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "/new");
    gw.stop();
}

#[test]
fn quota_bandwidth_runs_out() {
    let backend = MemBackend::start(|_| Reply::Send(ok("text/plain", &[b'x'; 3000])));
    // 2 KB per period: the first 3000-byte answer uses it up.
    let policy = inbound(r#"<quota bandwidth="2" renewal-period="3600" />"#);
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = get_with(&gw, "/api/1", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body.len(), 3000);
    let r = get_with(&gw, "/api/2", &[]);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.has("retry-after"), "{r:?}");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("Out of bandwidth quota."),
        "{}",
        r.body_str()
    );
    assert_eq!(backend.requests().len(), 1);
    gw.stop();
}
