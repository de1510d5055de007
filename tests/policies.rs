//! APIM policies end to end: a real gateway (in-process, loopback sockets) in
//! front of recording test backends, configured with policy documents at the
//! global, product, API and operation scopes. Each test checks what the client
//! sees (status, headers, body) and what the backends received.
//!
//! Nothing here depends on timing: rate limits and quotas use periods of a minute
//! or more, slow backends are held by gates the test opens, and every wait has the
//! generous hang guard of `common::within`.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use common::policy_docs::*;
use common::*;
use serde_json::{json, Value};
use tokio::sync::Notify;

// ---------------------------------------------------------------------------
// Helpers (the shared ones are in common::policy_docs)
// ---------------------------------------------------------------------------

/// Every value of a header field: all field lines, split at commas, trimmed.
fn values(lines: Vec<String>) -> Vec<String> {
    lines
        .iter()
        .flat_map(|l| l.split(','))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Every value of header `name` in a response.
fn response_values(r: &Response, name: &str) -> Vec<String> {
    values(
        r.head
            .header_pairs()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect(),
    )
}

/// A backend answering `/status/NNN...` with status NNN and anything else with
/// 200; the body is the path it received.
async fn status_backend() -> Backend {
    Backend::start(|r| {
        let target = r.target();
        let status = target
            .strip_prefix("/status/")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or(200);
        Reply::Send(response(
            status,
            &[("Content-Type", "text/plain")],
            target.as_bytes(),
        ))
    })
    .await
}

const KEY_A: &str = "sub-a-primary-key-0123456789";
const KEY_A2: &str = "sub-a-secondary-key-0123456789";
const KEY_B: &str = "sub-b-primary-key-0123456789";

/// A subscription with generated keys.
fn subscription(id: &str, scope: &str, primary: &str, state: &str) -> Value {
    json!({
        "id": id,
        "scope": scope,
        "primaryKey": primary,
        "secondaryKey": format!("{id}-secondary-key-0123456789"),
        "state": state,
    })
}

// ---------------------------------------------------------------------------
// Access restriction
// ---------------------------------------------------------------------------

#[runtimes]
async fn check_header_rejects_missing_and_unlisted_values(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound(
        r#"<check-header name="X-Client" failed-check-httpcode="403" failed-check-error-message="Unknown client" ignore-case="true">
             <value>alpha</value>
             <value>beta</value>
           </check-header>"#,
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;

    let r = get_with(&gw, "/api/x", &[]).await;
    assert_apim_error(&r, 403, "Unknown client");
    let r = get_with(&gw, "/api/x", &[("X-Client", "gamma")]).await;
    assert_apim_error(&r, 403, "Unknown client");
    assert!(
        backend.requests().is_empty(),
        "rejected requests reached the backend"
    );

    let r = get_with(&gw, "/api/x", &[("X-Client", "BETA")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let req = backend.only_request();
    assert_eq!(req.header("x-client").as_deref(), Some("BETA"));
    gw.stop().await;
}

#[runtimes]
async fn ip_filter_allows_and_forbids_loopback(rt: Runtime) {
    let backend = Backend::echo().await;
    let with_error = |p: &str| policies(p, "", "", LAST_ERROR_HEADER);
    let allow = with_error(r#"<ip-filter action="allow"><address>127.0.0.1</address></ip-filter>"#);
    let allow_other = with_error(
        r#"<ip-filter action="allow"><address-range from="10.0.0.1" to="10.0.0.255" /></ip-filter>"#,
    );
    let forbid = with_error(
        r#"<ip-filter action="forbid"><address-range from="127.0.0.0" to="127.255.255.255" /></ip-filter>"#,
    );
    let gw = TestGateway::start(
        rt,
        &cfg(vec![
            papi("allow", "allow", backend.addr, &allow),
            papi("other", "other", backend.addr, &allow_other),
            papi("forbid", "forbid", backend.addr, &forbid),
        ]),
    )
    .await;

    let r = get_with(&gw, "/allow/x", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(backend.only_request().target(), "/x");

    // APIM answers a plain 403; the reason is in context.LastError.
    let r = get_with(&gw, "/other/x", &[]).await;
    assert_apim_error(&r, 403, "Forbidden");
    assert_eq!(
        r.header("x-error").as_deref(),
        Some("CallerIpNotAllowed: Caller IP address 127.0.0.1 is not allowed. Access denied.")
    );
    let r = get_with(&gw, "/forbid/x", &[]).await;
    assert_apim_error(&r, 403, "Forbidden");
    assert_eq!(
        r.header("x-error").as_deref(),
        Some("CallerIpBlocked: Caller IP address is blocked. Access denied.")
    );
    assert_eq!(
        backend.requests().len(),
        1,
        "forbidden calls reached the backend"
    );
    gw.stop().await;
}

#[runtimes]
async fn rate_limit_per_subscription(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound(
        r#"<rate-limit calls="2" renewal-period="90" remaining-calls-header-name="X-Remaining" total-calls-header-name="X-Total" />"#,
    );
    let mut a = papi("limited", "api", backend.addr, &policy);
    a["subscriptionRequired"] = json!(true);
    let mut doc = cfg(vec![a]);
    doc["subscriptions"] = json!([
        subscription("a", "/apis", KEY_A, "active"),
        subscription("b", "/apis/limited", KEY_B, "active"),
    ]);
    let gw = TestGateway::start(rt, &doc).await;
    let key = "Ocp-Apim-Subscription-Key";

    let r = get_with(&gw, "/api/1", &[(key, KEY_A)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-remaining").as_deref(), Some("1"), "{r:?}");
    assert_eq!(r.header("x-total").as_deref(), Some("2"), "{r:?}");
    let r = get_with(&gw, "/api/2", &[(key, KEY_A)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-remaining").as_deref(), Some("0"), "{r:?}");

    // The third call in the window is refused, with the wait in both places.
    let r = get_with(&gw, "/api/3", &[(key, KEY_A)]).await;
    assert_eq!(r.status, 429, "{r:?}");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After is seconds");
    assert!((1..=90).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        r.json(),
        json!({
            "statusCode": 429,
            "message": format!("Rate limit is exceeded. Try again in {retry} seconds.")
        })
    );
    // The secondary key is the same subscription: also limited.
    let r = get_with(&gw, "/api/4", &[(key, "a-secondary-key-0123456789")]).await;
    assert_eq!(r.status, 429, "{r:?}");

    // Another subscription has its own counter.
    let r = get_with(&gw, "/api/5", &[(key, KEY_B)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-remaining").as_deref(), Some("1"), "{r:?}");

    let targets: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    assert_eq!(targets, ["/1", "/2", "/5"]);
    gw.stop().await;
}

#[runtimes]
async fn rate_limit_by_key_counts_only_what_the_condition_selects(rt: Runtime) {
    let backend = status_backend().await;
    // Only failed calls count, per client header.
    let policy = inbound(
        r#"<rate-limit-by-key calls="2" renewal-period="120"
              counter-key="@(context.Request.Headers.GetValueOrDefault(&quot;X-Client&quot;, &quot;anonymous&quot;))"
              increment-condition="@(context.Response.StatusCode &gt;= 400)"
              remaining-calls-header-name="X-Remaining" />"#,
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let alice = [("X-Client", "alice")];

    for _ in 0..3 {
        let r = get_with(&gw, "/api/fine", &alice).await;
        assert_eq!(r.status, 200, "successes are not counted: {r:?}");
    }
    for _ in 0..2 {
        let r = get_with(&gw, "/api/status/500", &alice).await;
        assert_eq!(r.status, 500, "{r:?}");
    }
    let r = get_with(&gw, "/api/fine", &alice).await;
    assert_eq!(r.status, 429, "two failures used up alice's calls: {r:?}");
    assert!(r.has("retry-after"), "{r:?}");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("Rate limit is exceeded. Try again in "));

    // Another key is counted apart.
    let r = get_with(&gw, "/api/fine", &[("X-Client", "bob")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(backend.requests().len(), 6);
    gw.stop().await;
}

#[runtimes]
async fn quota_per_subscription(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound(r#"<quota calls="2" renewal-period="3600" />"#);
    let mut a = papi("q", "api", backend.addr, &policy);
    a["subscriptionRequired"] = json!(true);
    let mut doc = cfg(vec![a]);
    doc["subscriptions"] = json!([
        subscription("a", "/apis", KEY_A, "active"),
        subscription("b", "/apis", KEY_B, "active"),
    ]);
    let gw = TestGateway::start(rt, &doc).await;
    let key = "Ocp-Apim-Subscription-Key";

    for i in 0..2 {
        let r = get_with(&gw, &format!("/api/{i}"), &[(key, KEY_A)]).await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let r = get_with(&gw, "/api/over", &[(key, KEY_A)]).await;
    assert_eq!(r.status, 403, "{r:?}");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "Retry-After {retry}");
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("Out of call volume quota. Quota will be replenished in "),
        "{message}"
    );
    let r = get_with(&gw, "/api/b", &[(key, KEY_B)]).await;
    assert_eq!(
        r.status, 200,
        "another subscription has its own quota: {r:?}"
    );
    assert_eq!(backend.requests().len(), 3);
    gw.stop().await;
}

#[runtimes]
async fn quota_by_key(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound(
        r#"<quota-by-key calls="1" renewal-period="3600" counter-key="@(context.Request.Headers.GetValueOrDefault(&quot;X-Tenant&quot;, &quot;&quot;))" />"#,
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;

    let r = get_with(&gw, "/api/1", &[("X-Tenant", "t1")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = get_with(&gw, "/api/2", &[("X-Tenant", "t1")]).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.has("retry-after"), "{r:?}");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("Out of call volume quota."));
    let r = get_with(&gw, "/api/3", &[("X-Tenant", "t2")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let targets: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    assert_eq!(targets, ["/1", "/3"]);
    gw.stop().await;
}

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

// ---------------------------------------------------------------------------
// cors
// ---------------------------------------------------------------------------

#[runtimes]
async fn cors_preflight_and_actual_request(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound(
        r#"<cors allow-credentials="false">
             <allowed-origins><origin>https://app.example</origin></allowed-origins>
             <allowed-methods preflight-result-max-age="300"><method>GET</method><method>PUT</method></allowed-methods>
             <allowed-headers><header>X-Custom</header></allowed-headers>
             <expose-headers><header>X-Path</header></expose-headers>
           </cors>"#,
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;

    let r = call(
        &gw,
        "OPTIONS",
        "/api/items",
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "X-Custom"),
        ],
        b"",
    )
    .await;
    assert!(r.status == 200 || r.status == 204, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://app.example"),
        "{r:?}"
    );
    let methods = response_values(&r, "access-control-allow-methods");
    assert!(methods.iter().any(|m| m == "PUT"), "{methods:?}");
    let allowed = response_values(&r, "access-control-allow-headers");
    assert!(
        allowed.iter().any(|h| h.eq_ignore_ascii_case("X-Custom")),
        "{allowed:?}"
    );
    assert_eq!(r.header("access-control-max-age").as_deref(), Some("300"));
    assert!(
        backend.requests().is_empty(),
        "the gateway answers preflights"
    );

    let r = get_with(&gw, "/api/items", &[("Origin", "https://app.example")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://app.example"),
        "{r:?}"
    );
    let exposed = response_values(&r, "access-control-expose-headers");
    assert!(
        exposed.iter().any(|h| h.eq_ignore_ascii_case("X-Path")),
        "{exposed:?}"
    );
    assert_eq!(backend.only_request().target(), "/items");

    // Another origin gets no CORS headers.
    let r = get_with(&gw, "/api/items", &[("Origin", "https://evil.example")]).await;
    assert!(!r.has("access-control-allow-origin"), "{r:?}");
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// Transformation
// ---------------------------------------------------------------------------

#[runtimes]
async fn set_header_on_the_request(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound(
        r#"<set-header name="X-Over" exists-action="override"><value>new</value></set-header>
           <set-header name="X-Skip" exists-action="skip"><value>ignored</value></set-header>
           <set-header name="X-Absent" exists-action="skip"><value>added</value></set-header>
           <set-header name="X-App" exists-action="append"><value>two</value></set-header>
           <set-header name="X-Del" exists-action="delete" />
           <set-header name="X-Multi" exists-action="override"><value>m1</value><value>m2</value></set-header>
           <set-header name="X-Expr" exists-action="override"><value>@(context.Request.Method + " " + context.Request.Url.Path)</value></set-header>"#,
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(
        &gw,
        "/api/things",
        &[
            ("X-Over", "old"),
            ("X-Skip", "keep"),
            ("X-App", "one"),
            ("X-Del", "gone"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let req = backend.only_request();
    assert_eq!(req.headers("x-over"), ["new"]);
    assert_eq!(req.headers("x-skip"), ["keep"]);
    assert_eq!(req.headers("x-absent"), ["added"]);
    assert_eq!(values(req.headers("x-app")), ["one", "two"]);
    assert!(req.headers("x-del").is_empty(), "{}", req.raw_head());
    assert_eq!(values(req.headers("x-multi")), ["m1", "m2"]);
    assert_eq!(req.header("x-expr").as_deref(), Some("GET /things"));
    gw.stop().await;
}

#[runtimes]
async fn set_header_on_the_response(rt: Runtime) {
    let backend = Backend::start(|_| {
        Reply::Send(response(
            200,
            &[
                ("Content-Type", "text/plain"),
                ("X-Powered-By", "backend"),
                ("X-Keep", "kept"),
                ("X-List", "a"),
            ],
            b"body",
        ))
    })
    .await;
    let policy = outbound(
        r#"<set-header name="X-Powered-By" exists-action="delete" />
           <set-header name="X-Keep" exists-action="skip"><value>replaced</value></set-header>
           <set-header name="X-List" exists-action="append"><value>b</value></set-header>
           <set-header name="X-Added" exists-action="override"><value>@(context.Response.StatusCode.ToString())</value></set-header>
           <set-header name="Content-Type" exists-action="override"><value>text/x-changed</value></set-header>"#,
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/x", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "body");
    assert!(!r.has("x-powered-by"), "{r:?}");
    assert_eq!(r.header("x-keep").as_deref(), Some("kept"));
    assert_eq!(response_values(&r, "x-list"), ["a", "b"]);
    assert_eq!(r.header("x-added").as_deref(), Some("200"));
    assert_eq!(r.header("content-type").as_deref(), Some("text/x-changed"));
    assert_eq!(r.header("content-length").as_deref(), Some("4"));
    gw.stop().await;
}

#[runtimes]
async fn set_query_parameter(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound(
        r#"<set-query-parameter name="over" exists-action="override"><value>new</value></set-query-parameter>
           <set-query-parameter name="skip" exists-action="skip"><value>ignored</value></set-query-parameter>
           <set-query-parameter name="app" exists-action="append"><value>2</value></set-query-parameter>
           <set-query-parameter name="del" exists-action="delete" />
           <set-query-parameter name="added" exists-action="override"><value>@(context.Request.Url.Query.GetValueOrDefault("over", "none"))</value></set-query-parameter>"#,
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/q?over=old&skip=keep&app=1&del=x&other=y", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let target = backend.only_request().target();
    let (path, query) = target.split_once('?').expect("a query");
    assert_eq!(path, "/q");
    let mut params: Vec<&str> = query.split('&').collect();
    params.sort_unstable();
    assert_eq!(
        params,
        [
            "added=new",
            "app=1",
            "app=2",
            "other=y",
            "over=new",
            "skip=keep"
        ],
        "{target}"
    );
    gw.stop().await;
}

fn op(id: &str, method: &str, template: &str, policy: &str) -> Value {
    let mut o = json!({ "id": id, "method": method, "urlTemplate": template });
    if !policy.is_empty() {
        o["policy"] = json!(policy);
    }
    o
}

#[runtimes]
async fn rewrite_uri_with_template_parameters(rt: Runtime) {
    let backend = Backend::echo().await;
    let mut a = papi("users", "users", backend.addr, "");
    a["serviceUrl"] = json!(format!("http://{}/base", backend.addr));
    a["operations"] = json!([
        op(
            "get-user",
            "GET",
            "/users/{id}",
            &inbound(r#"<rewrite-uri template="/v2/accounts/{id}/profile?src=gw" />"#),
        ),
        op(
            "get-order",
            "GET",
            "/orders/{order}",
            &inbound(
                r#"<rewrite-uri template="/orders?id={order}" copy-unmatched-params="false" />"#,
            ),
        ),
    ]);
    let gw = TestGateway::start(rt, &cfg(vec![a])).await;

    let r = get_with(&gw, "/users/users/42?verbose=1", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = get_with(&gw, "/users/orders/7?verbose=1", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let targets: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    assert_eq!(
        targets,
        [
            "/base/v2/accounts/42/profile?src=gw&verbose=1",
            "/base/orders?id=7"
        ]
    );
    gw.stop().await;
}

#[runtimes]
async fn set_method(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound("<set-method>PUT</set-method>");
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = call(&gw, "POST", "/api/doc", &[], b"payload").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "payload");
    let req = backend.only_request();
    assert_eq!(req.method(), "PUT");
    assert_eq!(req.body, b"payload");
    gw.stop().await;
}

#[runtimes]
async fn set_body_on_the_request_literal_and_expression(rt: Runtime) {
    let backend = Backend::echo().await;
    let mut a = papi("a", "api", backend.addr, "");
    a["operations"] = json!([
        op(
            "literal",
            "POST",
            "/literal",
            &inbound(r#"<set-body>{"replaced": true}</set-body>"#)
        ),
        op(
            "expr",
            "POST",
            "/expr",
            &inbound(
                r#"<set-body>@(context.Request.Body.As&lt;string&gt;().ToUpper() + "!")</set-body>"#
            )
        ),
        op(
            "empty",
            "GET",
            "/from-nothing",
            &inbound(r#"<set-body>@("made for " + context.Request.Method)</set-body>"#)
        ),
    ]);
    let gw = TestGateway::start(rt, &cfg(vec![a])).await;

    let r = call(&gw, "POST", "/api/literal", &[], b"original").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), r#"{"replaced": true}"#);
    let r = call(&gw, "POST", "/api/expr", &[], b"shout").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "SHOUT!");
    let r = get_with(&gw, "/api/from-nothing", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "made for GET");

    let reqs = backend.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].body, br#"{"replaced": true}"#);
    assert_eq!(reqs[0].header("content-length").as_deref(), Some("18"));
    assert_eq!(reqs[1].body, b"SHOUT!");
    assert_eq!(reqs[1].header("content-length").as_deref(), Some("6"));
    assert_eq!(reqs[2].body, b"made for GET");
    gw.stop().await;
}

#[runtimes]
async fn set_body_on_the_response(rt: Runtime) {
    let backend = Backend::start(|r| {
        Reply::Send(ok(
            "text/plain",
            if r.target() == "/lit" { b"a" } else { b"inner" },
        ))
    })
    .await;
    let mut a = papi("a", "api", backend.addr, "");
    a["operations"] = json!([
        op(
            "lit",
            "GET",
            "/lit",
            &outbound("<set-body>constant</set-body>")
        ),
        op(
            "expr",
            "GET",
            "/expr",
            &outbound(
                r#"<set-body>@("[" + context.Response.Body.As&lt;string&gt;() + "]")</set-body>"#
            )
        ),
    ]);
    let gw = TestGateway::start(rt, &cfg(vec![a])).await;
    let r = get_with(&gw, "/api/lit", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "constant");
    assert_eq!(r.header("content-length").as_deref(), Some("8"));
    let r = get_with(&gw, "/api/expr", &[]).await;
    assert_eq!(r.body_str(), "[inner]");
    assert_eq!(r.header("content-length").as_deref(), Some("7"));
    gw.stop().await;
}

#[runtimes]
async fn find_and_replace_in_request_and_response(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = policies(
        r#"<find-and-replace from="cat" to="dog" />"#,
        "",
        r#"<find-and-replace from="dog" to="wolf" />"#,
        "",
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = call(&gw, "POST", "/api/x", &[], b"cat and cat").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(backend.only_request().body, b"dog and dog");
    assert_eq!(r.body_str(), "wolf and wolf");
    gw.stop().await;
}

#[runtimes]
async fn set_backend_service_sends_to_another_backend(rt: Runtime) {
    let first = Backend::echo().await;
    let second = Backend::echo().await;
    let mut a = papi("a", "api", first.addr, "");
    a["operations"] = json!([
        op(
            "moved",
            "GET",
            "/moved/*",
            &inbound(&format!(
                r#"<set-backend-service base-url="http://{}/elsewhere" />"#,
                second.addr
            ))
        ),
        op(
            "by-id",
            "GET",
            "/by-id",
            &inbound(r#"<set-backend-service backend-id="second" />"#)
        ),
        op("stays", "GET", "/stays", ""),
    ]);
    let mut doc = cfg(vec![a]);
    doc["backends"] = json!([{ "id": "second", "url": format!("http://{}/named", second.addr) }]);
    let gw = TestGateway::start(rt, &doc).await;

    let r = get_with(&gw, "/api/moved/here?q=1", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = get_with(&gw, "/api/by-id", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = get_with(&gw, "/api/stays", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let on_second: Vec<String> = second.requests().iter().map(|r| r.target()).collect();
    assert_eq!(on_second, ["/elsewhere/moved/here?q=1", "/named/by-id"]);
    assert_eq!(first.only_request().target(), "/stays");
    gw.stop().await;
}

#[runtimes]
async fn set_variable_then_used_in_a_header(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound(
        r#"<set-variable name="who" value="@(context.Request.Headers.GetValueOrDefault(&quot;X-User&quot;, &quot;nobody&quot;))" />
           <set-variable name="n" value="@(41 + 1)" />
           <set-header name="X-Greeting" exists-action="override"><value>@("hello " + (string)context.Variables["who"] + " " + context.Variables["n"])</value></set-header>
           <set-header name="X-Has" exists-action="override"><value>@(context.Variables.ContainsKey("who").ToString())</value></set-header>"#,
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/x", &[("X-User", "ada")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let req = backend.only_request();
    assert_eq!(req.header("x-greeting").as_deref(), Some("hello ada 42"));
    assert_eq!(req.header("x-has").as_deref(), Some("True"));
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// Flow
// ---------------------------------------------------------------------------

#[runtimes]
async fn choose_when_otherwise(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound(
        r#"<choose>
             <when condition="@(context.Request.Headers.GetValueOrDefault(&quot;X-Tier&quot;, &quot;&quot;) == &quot;gold&quot;)">
               <set-header name="X-Branch" exists-action="override"><value>gold</value></set-header>
             </when>
             <when condition="@(context.Request.Url.Query.ContainsKey(&quot;silver&quot;))">
               <set-header name="X-Branch" exists-action="override"><value>silver</value></set-header>
             </when>
             <otherwise>
               <set-header name="X-Branch" exists-action="override"><value>other</value></set-header>
             </otherwise>
           </choose>"#,
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    get_with(&gw, "/api/1", &[("X-Tier", "gold")]).await;
    get_with(&gw, "/api/2?silver", &[("X-Tier", "bronze")]).await;
    get_with(&gw, "/api/3", &[]).await;
    // Gold wins over silver: the first true condition is taken.
    get_with(&gw, "/api/4?silver=1", &[("X-Tier", "gold")]).await;
    let branches: Vec<String> = backend
        .requests()
        .iter()
        .map(|r| r.header("x-branch").unwrap_or_default())
        .collect();
    assert_eq!(branches, ["gold", "silver", "other", "gold"]);
    gw.stop().await;
}

#[runtimes]
async fn return_response_skips_the_backend(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound(
        r#"<return-response>
             <set-status code="418" reason="I'm a teapot" />
             <set-header name="X-Short" exists-action="override"><value>stout</value></set-header>
             <set-header name="Content-Type" exists-action="override"><value>application/json</value></set-header>
             <set-body>@("{\"path\":\"" + context.Request.Url.Path + "\"}")</set-body>
           </return-response>
           <set-header name="X-Never" exists-action="override"><value>ran</value></set-header>"#,
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/pot", &[]).await;
    assert_eq!(r.status, 418, "{r:?}");
    assert!(
        r.raw_head().starts_with(b"HTTP/1.1 418 I'm a teapot\r\n"),
        "{r:?}"
    );
    assert_eq!(r.header("x-short").as_deref(), Some("stout"));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.json(), json!({ "path": "/pot" }));
    assert!(!r.has("x-never"));
    assert!(backend.requests().is_empty());
    gw.stop().await;
}

#[runtimes]
async fn set_status_on_the_response(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = outbound(r#"<set-status code="201" reason="Made" />"#);
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = call(&gw, "POST", "/api/new", &[], b"thing").await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(r.raw_head().starts_with(b"HTTP/1.1 201 Made\r\n"), "{r:?}");
    assert_eq!(r.body_str(), "thing");
    assert_eq!(backend.only_request().body, b"thing");
    gw.stop().await;
}

#[runtimes]
async fn mock_response_skips_the_backend(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound(r#"<mock-response status-code="202" content-type="application/json" />"#);
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/mocked", &[]).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(backend.requests().is_empty());
    gw.stop().await;
}

/// A document whose backend section is only `backend` (no `<base />`).
fn own_backend(inbound: &str, backend: &str, outbound: &str, on_error: &str) -> String {
    policies(inbound, backend, outbound, on_error).replacen("<backend>\n<base />", "<backend>", 1)
}

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
async fn retry_until_the_backend_succeeds(rt: Runtime) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    // Fails twice, then succeeds, then fails twice again...
    let backend = Backend::start(move |r| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        if n % 3 < 2 {
            Reply::Send(response(500, &[], format!("fail {n}").as_bytes()))
        } else {
            Reply::Send(ok(
                "text/plain",
                format!("ok {n} {}", r.target()).as_bytes(),
            ))
        }
    })
    .await;
    let mut a = papi("a", "api", backend.addr, "");
    a["operations"] = json!([
        op(
            "enough",
            "POST",
            "/enough",
            &own_backend(
                "",
                r#"<retry condition="@(context.Response.StatusCode &gt;= 500)" count="3" interval="1">
                     <forward-request />
                   </retry>"#,
                "",
                ""
            )
        ),
        op(
            "too-few",
            "POST",
            "/too-few",
            &own_backend(
                "",
                r#"<retry condition="@(context.Response.StatusCode &gt;= 500)" count="1" interval="0" first-fast-retry="true">
                     <forward-request />
                   </retry>"#,
                "",
                ""
            )
        ),
    ]);
    let gw = TestGateway::start(rt, &cfg(vec![a])).await;

    let r = call(&gw, "POST", "/api/enough", &[], b"body").await;
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(r.body_str(), "ok 2 /enough");
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 3);
    assert!(
        reqs.iter().all(|r| r.body == b"body"),
        "every attempt has the body"
    );

    // One retry is not enough for two failures: the last answer is the client's.
    let r = call(&gw, "POST", "/api/too-few", &[], b"again").await;
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(r.body_str(), "fail 4");
    assert_eq!(backend.requests().len(), 5);
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

#[runtimes]
async fn trace_does_not_change_the_exchange(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = policies(
        r#"<trace source="e2e" severity="information"><message>@("inbound " + context.Request.Url.Path)</message><metadata name="k" value="v" /></trace>"#,
        "",
        r#"<trace source="e2e" severity="error"><message>outbound</message></trace>"#,
        "",
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = call(&gw, "POST", "/api/traced", &[], b"data").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "data");
    assert_eq!(backend.only_request().target(), "/traced");
    gw.stop().await;
}

#[runtimes]
async fn authentication_basic(rt: Runtime) {
    let backend = Backend::echo().await;
    let mut doc = cfg(vec![papi(
        "a",
        "api",
        backend.addr,
        &inbound(r#"<authentication-basic username="svc" password="{{svc-password}}" />"#),
    )]);
    doc["namedValues"] = json!([{ "name": "svc-password", "value": "s3cret:pw", "secret": true }]);
    let gw = TestGateway::start(rt, &doc).await;
    let r = get_with(&gw, "/api/x", &[("Authorization", "Bearer client-token")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        backend.only_request().headers("authorization"),
        [format!("Basic {}", base64(b"svc:s3cret:pw"))]
    );
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

// ---------------------------------------------------------------------------
// Caching
// ---------------------------------------------------------------------------

#[runtimes]
async fn cache_lookup_and_store_responses(rt: Runtime) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let backend = Backend::start(move |r| {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::Send(response(
            200,
            &[("Content-Type", "text/plain"), ("X-Served", &n.to_string())],
            format!("response {n} for {}", r.target()).as_bytes(),
        ))
    })
    .await;
    let policy = policies(
        r#"<cache-lookup vary-by-developer="false" vary-by-developer-groups="false" downstream-caching-type="none">
             <vary-by-query-parameter>q</vary-by-query-parameter>
           </cache-lookup>"#,
        "",
        r#"<cache-store duration="60" />"#,
        "",
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;

    let r1 = get_with(&gw, "/api/item?q=1", &[]).await;
    assert_eq!(r1.status, 200, "{r1:?}");
    assert_eq!(r1.body_str(), "response 1 for /item?q=1");
    let r2 = get_with(&gw, "/api/item?q=1", &[]).await;
    assert_eq!(r2.status, 200, "{r2:?}");
    assert_eq!(
        r2.body_str(),
        "response 1 for /item?q=1",
        "served from the cache"
    );
    assert_eq!(r2.header("x-served").as_deref(), Some("1"));
    assert_eq!(
        backend.requests().len(),
        1,
        "the second GET did not reach the backend"
    );

    // A different value of a vary-by parameter is another entry.
    let r3 = get_with(&gw, "/api/item?q=2", &[]).await;
    assert_eq!(r3.body_str(), "response 2 for /item?q=2");
    // Parameters not varied by do not split the cache.
    let r4 = get_with(&gw, "/api/item?q=1&other=x", &[]).await;
    assert_eq!(r4.body_str(), "response 1 for /item?q=1");
    // POST is not cached.
    let r5 = call(&gw, "POST", "/api/item?q=1", &[], b"x").await;
    assert_eq!(r5.body_str(), "response 3 for /item?q=1");
    assert_eq!(backend.requests().len(), 3);
    gw.stop().await;
}

#[runtimes]
async fn cache_store_lookup_and_remove_values(rt: Runtime) {
    let backend = Backend::echo().await;
    let mut a = papi("a", "api", backend.addr, "");
    a["operations"] = json!([
        op(
            "put",
            "PUT",
            "/values/{name}",
            &inbound(
                r#"<cache-store-value key="@(&quot;v-&quot; + context.Request.MatchedParameters[&quot;name&quot;])" value="@(context.Request.Body.As&lt;string&gt;())" duration="60" />
                   <return-response><set-status code="204" reason="No Content" /></return-response>"#
            )
        ),
        op(
            "get",
            "GET",
            "/values/{name}",
            &inbound(
                r#"<cache-lookup-value key="@(&quot;v-&quot; + context.Request.MatchedParameters[&quot;name&quot;])" default-value="(none)" variable-name="found" />
                   <return-response>
                     <set-status code="200" reason="OK" />
                     <set-body>@((string)context.Variables["found"])</set-body>
                   </return-response>"#
            )
        ),
        op(
            "delete",
            "DELETE",
            "/values/{name}",
            &inbound(
                r#"<cache-remove-value key="@(&quot;v-&quot; + context.Request.MatchedParameters[&quot;name&quot;])" />
                   <return-response><set-status code="204" reason="No Content" /></return-response>"#
            )
        ),
    ]);
    let gw = TestGateway::start(rt, &cfg(vec![a])).await;

    let r = get_with(&gw, "/api/values/colour", &[]).await;
    assert_eq!((r.status, r.body_str().as_str()), (200, "(none)"), "{r:?}");
    let r = call(&gw, "PUT", "/api/values/colour", &[], b"blue").await;
    assert_eq!(r.status, 204, "{r:?} {}", r.body_str());
    let r = get_with(&gw, "/api/values/colour", &[]).await;
    assert_eq!((r.status, r.body_str().as_str()), (200, "blue"), "{r:?}");
    let r = get_with(&gw, "/api/values/size", &[]).await;
    assert_eq!(r.body_str(), "(none)", "another key");
    let r = call(&gw, "DELETE", "/api/values/colour", &[], b"").await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = get_with(&gw, "/api/values/colour", &[]).await;
    assert_eq!(r.body_str(), "(none)", "removed");
    assert!(backend.requests().is_empty());
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// Scopes
// ---------------------------------------------------------------------------

/// A set-header policy appending `value` to `X-Order` (request or response).
fn mark(value: &str) -> String {
    format!(
        r#"<set-header name="X-Order" exists-action="append"><value>{value}</value></set-header>"#
    )
}

/// The same mark on the way in and out: inbound `{before}<base/>{after}`.
fn scope_doc(name: &str) -> String {
    format!(
        "<policies><inbound>{}<base />{}</inbound><backend><base /></backend><outbound><base />{}</outbound><on-error><base /></on-error></policies>",
        mark(&format!("{name}-before")),
        mark(&format!("{name}-after")),
        mark(name)
    )
}

#[runtimes]
async fn scopes_run_in_base_order(rt: Runtime) {
    let backend = Backend::echo().await;
    let mut a = papi("a", "api", backend.addr, &scope_doc("api"));
    a["subscriptionRequired"] = json!(true);
    a["operations"] = json!([op("op", "*", "/*", &scope_doc("operation"))]);
    let mut doc = cfg(vec![a]);
    doc["policy"] = json!(scope_doc("global"));
    doc["products"] = json!([{
        "id": "p", "displayName": "Product P", "apis": ["a"], "subscriptionRequired": true,
        "policy": scope_doc("product")
    }]);
    doc["subscriptions"] = json!([subscription("s", "/products/p", KEY_A, "active")]);
    let gw = TestGateway::start(rt, &doc).await;

    let r = get_with(&gw, "/api/x", &[("Ocp-Apim-Subscription-Key", KEY_A)]).await;
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(
        values(backend.only_request().headers("x-order")),
        [
            "operation-before",
            "api-before",
            "product-before",
            "global-before",
            "global-after",
            "product-after",
            "api-after",
            "operation-after",
        ]
    );
    // Outbound: <base /> first in every scope, so the outermost runs first.
    assert_eq!(
        response_values(&r, "x-order"),
        ["global", "product", "api", "operation"]
    );
    gw.stop().await;
}

#[runtimes]
async fn a_section_without_base_does_not_inherit(rt: Runtime) {
    let backend = Backend::echo().await;
    let global = policies(
        &mark("global"),
        "",
        r#"<set-header name="X-Global-Out" exists-action="override"><value>yes</value></set-header>"#,
        "",
    );
    // API `alone` replaces the inbound section; outbound still inherits.
    let alone = format!(
        "<policies><inbound>{}</inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>",
        mark("alone")
    );
    let mut doc = cfg(vec![
        papi("alone", "alone", backend.addr, &alone),
        papi(
            "inherits",
            "inherits",
            backend.addr,
            &inbound(&mark("inherits")),
        ),
    ]);
    doc["policy"] = json!(global);
    let gw = TestGateway::start(rt, &doc).await;

    let r = get_with(&gw, "/alone/x", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-global-out").as_deref(), Some("yes"));
    let r = get_with(&gw, "/inherits/x", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let reqs = backend.requests();
    assert_eq!(values(reqs[0].headers("x-order")), ["alone"]);
    assert_eq!(values(reqs[1].headers("x-order")), ["global", "inherits"]);
    gw.stop().await;
}

#[runtimes]
async fn include_fragment_and_named_values(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound(
        r#"<include-fragment fragment-id="stamp" />
           <set-header name="X-Env" exists-action="override"><value>{{environment}}</value></set-header>
           <set-header name="X-Secret-Len" exists-action="override"><value>@("{{api-secret}}".Length.ToString())</value></set-header>"#,
    );
    let mut doc = cfg(vec![papi("a", "api", backend.addr, &policy)]);
    doc["fragments"] = json!([{
        "id": "stamp",
        "policy": r#"<fragment>
            <set-header name="X-Stamp" exists-action="override"><value>from-fragment</value></set-header>
            <set-query-parameter name="tenant" exists-action="override"><value>{{tenant}}</value></set-query-parameter>
        </fragment>"#
    }]);
    doc["namedValues"] = json!([
        { "name": "environment", "value": "staging" },
        { "name": "tenant", "value": "contoso" },
        { "name": "api-secret", "value": "0123456789", "secret": true },
    ]);
    let gw = TestGateway::start(rt, &doc).await;
    let r = get_with(&gw, "/api/x", &[]).await;
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    let req = backend.only_request();
    assert_eq!(req.header("x-stamp").as_deref(), Some("from-fragment"));
    assert_eq!(req.header("x-env").as_deref(), Some("staging"));
    assert_eq!(req.header("x-secret-len").as_deref(), Some("10"));
    assert_eq!(req.target(), "/x?tenant=contoso");
    gw.stop().await;
}

#[runtimes]
async fn on_error_sees_last_error(rt: Runtime) {
    let backend = Backend::echo().await;
    let mut a = papi("a", "api", backend.addr, "");
    a["operations"] = json!([
        op(
            "checked",
            "GET",
            "/checked",
            &policies(
                r#"<check-header name="X-Needed" failed-check-httpcode="400" failed-check-error-message="X-Needed is missing" />
                   <set-header name="X-Not-Reached" exists-action="override"><value>1</value></set-header>"#,
                "",
                "",
                r#"<set-header name="X-Error-Reason" exists-action="override"><value>@(context.LastError.Reason)</value></set-header>
                   <set-header name="X-Error-Source" exists-action="override"><value>@(context.LastError.Source)</value></set-header>
                   <set-header name="X-Error-Section" exists-action="override"><value>@(context.LastError.Section)</value></set-header>
                   <set-header name="X-Error-Message" exists-action="override"><value>@(context.LastError.Message)</value></set-header>"#
            )
        ),
        op(
            "thrown",
            "GET",
            "/thrown",
            &policies(
                r#"<set-variable name="boom" value="@(int.Parse(&quot;not a number&quot;))" />"#,
                "",
                "",
                r#"<return-response>
                     <set-status code="502" reason="Bad Gateway" />
                     <set-body>@(context.LastError.Source + "|" + context.LastError.Reason)</set-body>
                   </return-response>"#
            )
        ),
    ]);
    let gw = TestGateway::start(rt, &cfg(vec![a])).await;

    let r = get_with(&gw, "/api/checked", &[]).await;
    assert_apim_error(&r, 400, "X-Needed is missing");
    assert_eq!(
        r.header("x-error-reason").as_deref(),
        Some("HeaderNotFound")
    );
    assert_eq!(r.header("x-error-source").as_deref(), Some("check-header"));
    assert_eq!(r.header("x-error-section").as_deref(), Some("inbound"));
    assert_eq!(
        r.header("x-error-message").as_deref(),
        Some("X-Needed is missing")
    );

    let r = get_with(&gw, "/api/thrown", &[]).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(
        r.body_str(),
        "set-variable|ExpressionValueEvaluationFailure"
    );
    assert!(backend.requests().is_empty());
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// Products and subscriptions
// ---------------------------------------------------------------------------

const MISSING_KEY: &str = "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.";
const INVALID_KEY: &str = "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.";

/// APIs `in` (in product `p`) and `out` (in no product), both needing a key;
/// subscriptions: `p-sub` (product p), `all` (every API), `held` (suspended).
fn product_config(backend: SocketAddr) -> Value {
    let mut inside = papi("in", "in", backend, "");
    inside["subscriptionRequired"] = json!(true);
    let mut outside = papi("out", "out", backend, "");
    outside["subscriptionRequired"] = json!(true);
    let mut doc = cfg(vec![inside, outside]);
    doc["products"] = json!([{
        "id": "p", "displayName": "Starter", "apis": ["in"], "subscriptionRequired": true,
        "policy": inbound(r#"<set-header name="X-Product" exists-action="override"><value>@(context.Product.Name)</value></set-header>
                             <set-header name="X-Subscription" exists-action="override"><value>@(context.Subscription.Id)</value></set-header>"#)
    }]);
    doc["subscriptions"] = json!([
        subscription("p-sub", "/products/p", KEY_A, "active"),
        subscription("all", "/apis", KEY_B, "active"),
        subscription("held", "/apis", KEY_A2, "suspended"),
    ]);
    doc
}

#[runtimes]
async fn product_scoped_key_opens_only_the_products_apis(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::start(rt, &product_config(backend.addr)).await;
    let key = "Ocp-Apim-Subscription-Key";

    let r = get_with(&gw, "/in/x", &[(key, KEY_A)]).await;
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    let req = backend.only_request();
    assert_eq!(req.header("x-product").as_deref(), Some("Starter"));
    assert_eq!(req.header("x-subscription").as_deref(), Some("p-sub"));

    let r = get_with(&gw, "/out/x", &[(key, KEY_A)]).await;
    assert_apim_error(&r, 401, INVALID_KEY);
    let r = get_with(&gw, "/out/x", &[]).await;
    assert_apim_error(&r, 401, MISSING_KEY);

    // An all-APIs key opens both, without the product's policies.
    let r = get_with(&gw, "/out/y", &[(key, KEY_B)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = get_with(&gw, "/in/y", &[(key, KEY_B)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[2].header("x-product"), None);
    gw.stop().await;
}

#[runtimes]
async fn suspended_subscription_is_refused(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::start(rt, &product_config(backend.addr)).await;
    let r = get_with(&gw, "/out/x", &[("Ocp-Apim-Subscription-Key", KEY_A2)]).await;
    assert_apim_error(&r, 401, INVALID_KEY);
    let r = get_with(&gw, &format!("/in/x?subscription-key={KEY_A2}"), &[]).await;
    assert_apim_error(&r, 401, INVALID_KEY);
    assert!(backend.requests().is_empty());
    gw.stop().await;
}

#[runtimes]
async fn subscription_key_in_header_or_query_is_not_forwarded(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::start(rt, &product_config(backend.addr)).await;

    // `in` runs the product's policies, `out` has none: both strip the key.
    for api in ["in", "out"] {
        let key = if api == "in" { KEY_A } else { KEY_B };
        let r = get_with(
            &gw,
            &format!("/{api}/h?a=1"),
            &[("Ocp-Apim-Subscription-Key", key)],
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        let r = get_with(
            &gw,
            &format!("/{api}/q?a=1&subscription-key={key}&b=2"),
            &[],
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 4);
    for (i, req) in reqs.iter().enumerate() {
        assert_eq!(
            req.header("ocp-apim-subscription-key"),
            None,
            "key header forwarded: {}",
            req.raw_head()
        );
        assert!(
            !req.target().contains("subscription-key"),
            "key parameter forwarded: {}",
            req.target()
        );
        let expected = if i % 2 == 0 { "/h?a=1" } else { "/q?a=1&b=2" };
        assert_eq!(req.target(), expected);
        let raw = req.raw_head();
        assert!(!raw.contains(KEY_A) && !raw.contains(KEY_B), "{raw}");
    }
    gw.stop().await;
}

#[runtimes]
async fn open_product_lets_its_apis_be_called_without_a_key(rt: Runtime) {
    let backend = Backend::echo().await;
    let mut open = papi("open", "open", backend.addr, "");
    open["subscriptionRequired"] = json!(true);
    let mut closed = papi("closed", "closed", backend.addr, "");
    closed["subscriptionRequired"] = json!(true);
    let mut doc = cfg(vec![open, closed]);
    doc["products"] = json!([{
        "id": "free", "displayName": "Free tier", "apis": ["open"], "subscriptionRequired": false,
        "policy": inbound(r#"<set-header name="X-Product" exists-action="override"><value>@(context.Product.Id)</value></set-header>"#)
    }]);
    let gw = TestGateway::start(rt, &doc).await;
    let r = get_with(&gw, "/open/x", &[]).await;
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(
        backend.only_request().header("x-product").as_deref(),
        Some("free")
    );
    let r = get_with(&gw, "/closed/x", &[]).await;
    assert_apim_error(&r, 401, MISSING_KEY);
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// Configuration errors
// ---------------------------------------------------------------------------

/// Starts a gateway on `doc` and returns its start error.
async fn start_error(rt: Runtime, doc: &Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.json");
    write_atomically(&path, &serde_json::to_vec_pretty(doc).unwrap());
    let mut options = GatewayOptions::new(path);
    options.listen = any_port();
    options.ops_listen = None;
    match within("gateway start", Gateway::start(rt, options)).await {
        Ok(gw) => {
            gw.shutdown().await;
            panic!("a gateway started with an invalid policy");
        }
        // The message names the document, the line and the reason.
        Err(e) => e.to_string(),
    }
}

#[runtimes]
async fn bad_policy_is_rejected_at_start_with_line_and_reason(rt: Runtime) {
    let backend = closed_port().await;
    // Line 4: an unknown exists-action.
    let bad_attr = "<policies>\n  <inbound>\n    <base />\n    <set-header name=\"X\" exists-action=\"sometimes\"><value>1</value></set-header>\n  </inbound>\n</policies>";
    let e = start_error(rt, &cfg(vec![papi("a", "api", backend, bad_attr)])).await;
    assert!(e.contains("api `a`"), "{e}");
    assert!(e.contains("line 4"), "{e}");
    assert!(e.contains("<set-header>"), "{e}");
    assert!(e.contains("sometimes"), "{e}");

    // Line 3 of the global document: a policy that does not exist.
    let unknown =
        "<policies>\n  <inbound>\n    <teleport to=\"mars\" />\n  </inbound>\n</policies>";
    let mut doc = cfg(vec![papi("a", "api", backend, "")]);
    doc["policy"] = json!(unknown);
    let e = start_error(rt, &doc).await;
    assert!(e.contains("global"), "{e}");
    assert!(e.contains("line 3"), "{e}");
    assert!(e.contains("teleport"), "{e}");

    // A policy in a section where APIM does not allow it (operation scope).
    let mut a = papi("a", "api", backend, "");
    a["operations"] = json!([op(
        "o",
        "GET",
        "/",
        "<policies>\n<inbound />\n<outbound>\n<rate-limit calls=\"1\" renewal-period=\"60\" />\n</outbound>\n</policies>"
    )]);
    let e = start_error(rt, &cfg(vec![a])).await;
    assert!(e.contains("operation `o`"), "{e}");
    assert!(e.contains("line 4"), "{e}");
    assert!(e.contains("<rate-limit>"), "{e}");

    // Malformed XML and an expression that does not compile.
    let e = start_error(
        rt,
        &cfg(vec![papi(
            "a",
            "api",
            backend,
            "<policies>\n<inbound>\n</policies>",
        )]),
    )
    .await;
    assert!(e.contains("api `a`") && e.contains("line"), "{e}");
    let bad_expr = "<policies>\n<inbound>\n<set-header name=\"X\"><value>@(context.Nope(</value></set-header>\n</inbound>\n</policies>";
    let e = start_error(rt, &cfg(vec![papi("a", "api", backend, bad_expr)])).await;
    assert!(e.contains("line 3") && e.contains("<value>"), "{e}");

    // A fragment that is not defined.
    let missing = "<policies>\n<inbound>\n<include-fragment fragment-id=\"nowhere\" />\n</inbound>\n</policies>";
    let e = start_error(rt, &cfg(vec![papi("a", "api", backend, missing)])).await;
    assert!(e.contains("line 3") && e.contains("nowhere"), "{e}");
}

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
async fn limit_concurrency_slot_is_released_after_a_failure(rt: Runtime) {
    let backend = Backend::start(|r| {
        if r.target() == "/hang" {
            Reply::Hang
        } else {
            Reply::Send(ok("text/plain", b"fine"))
        }
    })
    .await;
    let policy = own_backend(
        "",
        r#"<limit-concurrency key="one" max-count="1"><forward-request timeout="1" /></limit-concurrency>"#,
        "",
        "",
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/hang", &[]).await;
    assert_eq!(r.status, 504, "{r:?}");
    let r = get_with(&gw, "/api/ok", &[]).await;
    assert_eq!(r.status, 200, "the slot was given back: {r:?}");
    // And after a client that went away in the middle.
    {
        let mut c = gw.client().await;
        c.send(get("/api/hang")).await;
        backend.wait_requests(3).await;
    }
    let r = within("the slot is given back after the client left", async {
        loop {
            let r = get_with(&gw, "/api/ok", &[]).await;
            if r.status != 429 {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    gw.stop().await;
}

#[runtimes]
async fn send_request_copy_mode_sends_the_current_request(rt: Runtime) {
    let backend = Backend::echo().await;
    let mirror = Backend::start(|_| Reply::Send(ok("text/plain", b"mirrored"))).await;
    let policy = inbound(&format!(
        r#"<send-request mode="copy" response-variable-name="m" timeout="20">
             <set-url>http://{}/mirror</set-url>
             <set-header name="X-Mirror" exists-action="override"><value>1</value></set-header>
           </send-request>
           <set-header name="X-Mirror-Said" exists-action="override"><value>@(((IResponse)context.Variables["m"]).Body.As&lt;string&gt;())</value></set-header>"#,
        mirror.addr
    ));
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = call(&gw, "POST", "/api/orig", &[("X-Client", "c1")], b"payload").await;
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
    gw.stop().await;
}

#[runtimes]
async fn custom_subscription_key_names_are_not_forwarded(rt: Runtime) {
    let backend = Backend::echo().await;
    let mut a = papi("a", "api", backend.addr, &inbound(&mark("api")));
    a["subscriptionRequired"] = json!(true);
    a["subscriptionKeyParameterNames"] = json!({ "header": "X-Api-Key", "query": "apikey" });
    let mut doc = cfg(vec![a]);
    doc["subscriptions"] = json!([subscription("s", "/apis/a", KEY_A, "active")]);
    let gw = TestGateway::start(rt, &doc).await;
    let r = get_with(&gw, "/api/h", &[("X-Api-Key", KEY_A)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = get_with(&gw, &format!("/api/q?apikey={KEY_A}&z=1"), &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = get_with(&gw, "/api/h", &[("Ocp-Apim-Subscription-Key", KEY_A)]).await;
    assert_apim_error(&r, 401, MISSING_KEY);
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("x-api-key"), None);
    assert_eq!(reqs[1].target(), "/q?z=1");
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

#[runtimes]
async fn outbound_policy_reads_an_empty_backend_body(rt: Runtime) {
    // Content-Length: 0, and 204 without a body.
    let backend = Backend::start(|r| {
        let status = if r.target() == "/none" { 204 } else { 200 };
        Reply::Send(response(status, &[], b""))
    })
    .await;
    let policy = policies(
        "",
        "",
        r#"<set-header name="X-Len" exists-action="override"><value>@(context.Response.Body.As&lt;string&gt;().Length.ToString())</value></set-header>"#,
        LAST_ERROR_HEADER,
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let mut c = gw.client().await;
    for path in ["/api/empty", "/api/none", "/api/empty"] {
        let r = c.roundtrip(get(path)).await;
        assert!(r.status == 200 || r.status == 204, "{path}: {r:?}");
        assert_eq!(r.header("x-error"), None, "{path}");
        assert_eq!(r.header("x-len").as_deref(), Some("0"), "{path}: {r:?}");
        assert!(r.body.is_empty());
    }
    assert_eq!(backend.connections(), 1, "the backend connection is reused");
    gw.stop().await;
}

#[runtimes]
async fn fail_on_error_status_code_goes_to_on_error(rt: Runtime) {
    let backend = status_backend().await;
    let policy = own_backend(
        "",
        r#"<forward-request fail-on-error-status-code="true" />"#,
        r#"<set-header name="X-Outbound" exists-action="override"><value>ran</value></set-header>"#,
        LAST_ERROR_HEADER,
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/status/503", &[]).await;
    assert!(r.status >= 500, "{r:?}");
    let error = r.header("x-error").unwrap_or_default();
    assert!(error.starts_with("BackendErrorStatusCode: "), "{r:?}");
    assert!(!r.has("x-outbound"), "outbound is skipped: {r:?}");
    let r = get_with(&gw, "/api/fine", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-outbound").as_deref(), Some("ran"));
    assert_eq!(r.header("x-error"), None);
    gw.stop().await;
}

#[runtimes]
async fn forward_request_follows_redirects(rt: Runtime) {
    let backend = Backend::start(|r| {
        if r.target() == "/old" {
            Reply::Send(response(302, &[("Location", "/new")], b""))
        } else {
            Reply::Send(ok("text/plain", r.target().as_bytes()))
        }
    })
    .await;
    let policy = own_backend("", r#"<forward-request follow-redirects="true" />"#, "", "");
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/old", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "/new");
    gw.stop().await;
}

#[runtimes]
async fn quota_bandwidth_runs_out(rt: Runtime) {
    let backend = Backend::start(|_| Reply::Send(ok("text/plain", &[b'x'; 3000]))).await;
    // 2 KB per period: the first 3000-byte answer uses it up.
    let policy = inbound(r#"<quota bandwidth="2" renewal-period="3600" />"#);
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/1", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body.len(), 3000);
    let r = get_with(&gw, "/api/2", &[]).await;
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
    gw.stop().await;
}

#[runtimes]
async fn send_request_timeout_goes_to_on_error(rt: Runtime) {
    let backend = Backend::echo().await;
    let slow = Backend::start(|_| Reply::Hang).await;
    let policy = policies(
        &format!(
            r#"<send-request mode="new" response-variable-name="r" timeout="1"><set-url>http://{}/slow</set-url></send-request>"#,
            slow.addr
        ),
        "",
        "",
        LAST_ERROR_HEADER,
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/x", &[]).await;
    assert!(r.status >= 500, "{r:?}");
    let error = r.header("x-error").unwrap_or_default();
    assert!(error.starts_with("Timeout"), "{r:?}");
    assert!(backend.requests().is_empty());
    gw.stop().await;
}
