//! APIM policies end to end, policy scopes (base order, fragments, named values, on-error) and configuration errors: a real gateway (in-process, loopback
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
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Scopes
// ---------------------------------------------------------------------------

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
