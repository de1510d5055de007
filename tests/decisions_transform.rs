//! APIM transformation policies (headers, query, URI, method, body, backend,
//! variables), tested where they are decided: the connection machine driven in
//! memory (`common::memory`) in front of scripted in-memory backends. Each test
//! checks what the client sees (status, headers, body) and what the backends
//! received. One run each: no socket, no runtime, no clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::memory::*;
use common::policy_docs::{cfg, inbound, op, outbound, papi, policies, response_values, values};
use common::{ok, response, Reply};
use serde_json::json;

// ---------------------------------------------------------------------------
// Transformation
// ---------------------------------------------------------------------------

#[test]
fn set_header_on_the_request() {
    let backend = MemBackend::echo();
    let policy = inbound(
        r#"<set-header name="X-Over" exists-action="override"><value>new</value></set-header>
           <set-header name="X-Skip" exists-action="skip"><value>ignored</value></set-header>
           <set-header name="X-Absent" exists-action="skip"><value>added</value></set-header>
           <set-header name="X-App" exists-action="append"><value>two</value></set-header>
           <set-header name="X-Del" exists-action="delete" />
           <set-header name="X-Multi" exists-action="override"><value>m1</value><value>m2</value></set-header>
           <set-header name="X-Expr" exists-action="override"><value>@(context.Request.Method + " " + context.Request.Url.Path)</value></set-header>"#,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = get_with(
        &gw,
        "/api/things",
        &[
            ("X-Over", "old"),
            ("X-Skip", "keep"),
            ("X-App", "one"),
            ("X-Del", "gone"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let req = backend.only_request();
    assert_eq!(req.headers("x-over"), ["new"]);
    assert_eq!(req.headers("x-skip"), ["keep"]);
    assert_eq!(req.headers("x-absent"), ["added"]);
    assert_eq!(values(req.headers("x-app")), ["one", "two"]);
    assert!(req.headers("x-del").is_empty(), "{}", req.raw_head());
    assert_eq!(values(req.headers("x-multi")), ["m1", "m2"]);
    assert_eq!(req.header("x-expr").as_deref(), Some("GET /things"));
    gw.stop();
}

#[test]
fn set_header_on_the_response() {
    let backend = MemBackend::start(|_| {
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
    });
    let policy = outbound(
        r#"<set-header name="X-Powered-By" exists-action="delete" />
           <set-header name="X-Keep" exists-action="skip"><value>replaced</value></set-header>
           <set-header name="X-List" exists-action="append"><value>b</value></set-header>
           <set-header name="X-Added" exists-action="override"><value>@(context.Response.StatusCode.ToString())</value></set-header>
           <set-header name="Content-Type" exists-action="override"><value>text/x-changed</value></set-header>"#,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = get_with(&gw, "/api/x", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "body");
    assert!(!r.has("x-powered-by"), "{r:?}");
    assert_eq!(r.header("x-keep").as_deref(), Some("kept"));
    assert_eq!(response_values(&r, "x-list"), ["a", "b"]);
    assert_eq!(r.header("x-added").as_deref(), Some("200"));
    assert_eq!(r.header("content-type").as_deref(), Some("text/x-changed"));
    assert_eq!(r.header("content-length").as_deref(), Some("4"));
    gw.stop();
}

#[test]
fn set_query_parameter() {
    let backend = MemBackend::echo();
    let policy = inbound(
        r#"<set-query-parameter name="over" exists-action="override"><value>new</value></set-query-parameter>
           <set-query-parameter name="skip" exists-action="skip"><value>ignored</value></set-query-parameter>
           <set-query-parameter name="app" exists-action="append"><value>2</value></set-query-parameter>
           <set-query-parameter name="del" exists-action="delete" />
           <set-query-parameter name="added" exists-action="override"><value>@(context.Request.Url.Query.GetValueOrDefault("over", "none"))</value></set-query-parameter>"#,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = get_with(&gw, "/api/q?over=old&skip=keep&app=1&del=x&other=y", &[]);
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
    gw.stop();
}

#[test]
fn rewrite_uri_with_template_parameters() {
    let backend = MemBackend::echo();
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
    let gw = MemGateway::start(&cfg(vec![a]));

    let r = get_with(&gw, "/users/users/42?verbose=1", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let r = get_with(&gw, "/users/orders/7?verbose=1", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let targets: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    assert_eq!(
        targets,
        [
            "/base/v2/accounts/42/profile?src=gw&verbose=1",
            "/base/orders?id=7"
        ]
    );
    gw.stop();
}

#[test]
fn set_method() {
    let backend = MemBackend::echo();
    let policy = inbound("<set-method>PUT</set-method>");
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = call(&gw, "POST", "/api/doc", &[], b"payload");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "payload");
    let req = backend.only_request();
    assert_eq!(req.method(), "PUT");
    assert_eq!(req.body, b"payload");
    gw.stop();
}

#[test]
fn set_body_on_the_request_literal_and_expression() {
    let backend = MemBackend::echo();
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
    let gw = MemGateway::start(&cfg(vec![a]));

    let r = call(&gw, "POST", "/api/literal", &[], b"original");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), r#"{"replaced": true}"#);
    let r = call(&gw, "POST", "/api/expr", &[], b"shout");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "SHOUT!");
    let r = get_with(&gw, "/api/from-nothing", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "made for GET");

    let reqs = backend.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].body, br#"{"replaced": true}"#);
    assert_eq!(reqs[0].header("content-length").as_deref(), Some("18"));
    assert_eq!(reqs[1].body, b"SHOUT!");
    assert_eq!(reqs[1].header("content-length").as_deref(), Some("6"));
    assert_eq!(reqs[2].body, b"made for GET");
    gw.stop();
}

#[test]
fn set_body_on_the_response() {
    let backend = MemBackend::start(|r| {
        Reply::Send(ok(
            "text/plain",
            if r.target() == "/lit" { b"a" } else { b"inner" },
        ))
    });
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
    let gw = MemGateway::start(&cfg(vec![a]));
    let r = get_with(&gw, "/api/lit", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "constant");
    assert_eq!(r.header("content-length").as_deref(), Some("8"));
    let r = get_with(&gw, "/api/expr", &[]);
    assert_eq!(r.body_str(), "[inner]");
    assert_eq!(r.header("content-length").as_deref(), Some("7"));
    gw.stop();
}

#[test]
fn find_and_replace_in_request_and_response() {
    let backend = MemBackend::echo();
    let policy = policies(
        r#"<find-and-replace from="cat" to="dog" />"#,
        "",
        r#"<find-and-replace from="dog" to="wolf" />"#,
        "",
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = call(&gw, "POST", "/api/x", &[], b"cat and cat");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(backend.only_request().body, b"dog and dog");
    assert_eq!(r.body_str(), "wolf and wolf");
    gw.stop();
}

#[test]
fn set_backend_service_sends_to_another_backend() {
    let first = MemBackend::echo();
    let second = MemBackend::echo();
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
    let gw = MemGateway::start(&doc);

    let r = get_with(&gw, "/api/moved/here?q=1", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let r = get_with(&gw, "/api/by-id", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let r = get_with(&gw, "/api/stays", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let on_second: Vec<String> = second.requests().iter().map(|r| r.target()).collect();
    assert_eq!(on_second, ["/elsewhere/moved/here?q=1", "/named/by-id"]);
    assert_eq!(first.only_request().target(), "/stays");
    gw.stop();
}

#[test]
fn set_variable_then_used_in_a_header() {
    let backend = MemBackend::echo();
    let policy = inbound(
        r#"<set-variable name="who" value="@(context.Request.Headers.GetValueOrDefault(&quot;X-User&quot;, &quot;nobody&quot;))" />
           <set-variable name="n" value="@(41 + 1)" />
           <set-header name="X-Greeting" exists-action="override"><value>@("hello " + (string)context.Variables["who"] + " " + context.Variables["n"])</value></set-header>
           <set-header name="X-Has" exists-action="override"><value>@(context.Variables.ContainsKey("who").ToString())</value></set-header>"#,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = get_with(&gw, "/api/x", &[("X-User", "ada")]);
    assert_eq!(r.status, 200, "{r:?}");
    let req = backend.only_request();
    assert_eq!(req.header("x-greeting").as_deref(), Some("hello ada 42"));
    assert_eq!(req.header("x-has").as_deref(), Some("True"));
    gw.stop();
}
