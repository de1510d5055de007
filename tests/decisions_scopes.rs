//! APIM policy scopes (base order, fragments, named values, on-error), tested
//! where they are decided: the connection machine driven in memory
//! (`common::memory`) in front of scripted in-memory backends. Each test checks
//! what the client sees and what the backend received. Configuration errors
//! at start stay in `policies_scopes` (they start a real gateway).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::memory::*;
use common::policy_docs::{
    assert_apim_error, cfg, inbound, mark, op, papi, policies, response_values, scope_doc,
    subscription, values, KEY_A,
};
use serde_json::json;

// ---------------------------------------------------------------------------
// Scopes
// ---------------------------------------------------------------------------

#[test]
fn scopes_run_in_base_order() {
    let backend = MemBackend::echo();
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
    let gw = MemGateway::start(&doc);

    let r = get_with(&gw, "/api/x", &[("Ocp-Apim-Subscription-Key", KEY_A)]);
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
    gw.stop();
}

#[test]
fn a_section_without_base_does_not_inherit() {
    let backend = MemBackend::echo();
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
    let gw = MemGateway::start(&doc);

    let r = get_with(&gw, "/alone/x", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-global-out").as_deref(), Some("yes"));
    let r = get_with(&gw, "/inherits/x", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let reqs = backend.requests();
    assert_eq!(values(reqs[0].headers("x-order")), ["alone"]);
    assert_eq!(values(reqs[1].headers("x-order")), ["global", "inherits"]);
    gw.stop();
}

#[test]
fn include_fragment_and_named_values() {
    let backend = MemBackend::echo();
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
    let gw = MemGateway::start(&doc);
    let r = get_with(&gw, "/api/x", &[]);
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    let req = backend.only_request();
    assert_eq!(req.header("x-stamp").as_deref(), Some("from-fragment"));
    assert_eq!(req.header("x-env").as_deref(), Some("staging"));
    assert_eq!(req.header("x-secret-len").as_deref(), Some("10"));
    assert_eq!(req.target(), "/x?tenant=contoso");
    gw.stop();
}

#[test]
fn on_error_sees_last_error() {
    let backend = MemBackend::echo();
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
    let gw = MemGateway::start(&cfg(vec![a]));

    let r = get_with(&gw, "/api/checked", &[]);
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

    let r = get_with(&gw, "/api/thrown", &[]);
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(
        r.body_str(),
        "set-variable|ExpressionValueEvaluationFailure"
    );
    assert!(backend.requests().is_empty());
    gw.stop();
}
