//! APIM access restriction (check-header, ip-filter, rate limits, quotas),
//! CORS, and products and subscriptions, tested where they are decided: the
//! connection machine driven in memory (`common::memory`) in front of scripted
//! in-memory backends, with a shared-state store answered in memory. Each test
//! checks what the client sees (status, headers, body) and what the backends
//! received. The clock is an input: windows are exact and need no sleeping.
//! `limit-concurrency` (requests in flight at once, held by the backend) is
//! in `decisions_concurrency`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::memory::*;
use common::policy_docs::{
    assert_apim_error, cfg, inbound, papi, policies, response_values, subscription, INVALID_KEY,
    KEY_A, KEY_A2, KEY_B, LAST_ERROR_HEADER, MISSING_KEY,
};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Access restriction
// ---------------------------------------------------------------------------

#[test]
fn check_header_rejects_missing_and_unlisted_values() {
    let backend = MemBackend::echo();
    let policy = inbound(
        r#"<check-header name="X-Client" failed-check-httpcode="403" failed-check-error-message="Unknown client" ignore-case="true">
             <value>alpha</value>
             <value>beta</value>
           </check-header>"#,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));

    let r = get_with(&gw, "/api/x", &[]);
    assert_apim_error(&r, 403, "Unknown client");
    let r = get_with(&gw, "/api/x", &[("X-Client", "gamma")]);
    assert_apim_error(&r, 403, "Unknown client");
    assert!(
        backend.requests().is_empty(),
        "rejected requests reached the backend"
    );

    let r = get_with(&gw, "/api/x", &[("X-Client", "BETA")]);
    assert_eq!(r.status, 200, "{r:?}");
    let req = backend.only_request();
    assert_eq!(req.header("x-client").as_deref(), Some("BETA"));
    gw.stop();
}

#[test]
fn ip_filter_allows_and_forbids_loopback() {
    let backend = MemBackend::echo();
    let with_error = |p: &str| policies(p, "", "", LAST_ERROR_HEADER);
    let allow = with_error(r#"<ip-filter action="allow"><address>127.0.0.1</address></ip-filter>"#);
    let allow_other = with_error(
        r#"<ip-filter action="allow"><address-range from="10.0.0.1" to="10.0.0.255" /></ip-filter>"#,
    );
    let forbid = with_error(
        r#"<ip-filter action="forbid"><address-range from="127.0.0.0" to="127.255.255.255" /></ip-filter>"#,
    );
    let gw = MemGateway::start(&cfg(vec![
        papi("allow", "allow", backend.addr, &allow),
        papi("other", "other", backend.addr, &allow_other),
        papi("forbid", "forbid", backend.addr, &forbid),
    ]));

    let r = get_with(&gw, "/allow/x", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(backend.only_request().target(), "/x");

    // APIM answers a plain 403; the reason is in context.LastError.
    let r = get_with(&gw, "/other/x", &[]);
    assert_apim_error(&r, 403, "Forbidden");
    assert_eq!(
        r.header("x-error").as_deref(),
        Some("CallerIpNotAllowed: Caller IP address 127.0.0.1 is not allowed. Access denied.")
    );
    let r = get_with(&gw, "/forbid/x", &[]);
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
    gw.stop();
}

#[test]
fn rate_limit_per_subscription() {
    let backend = MemBackend::echo();
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
    let gw = MemGateway::start(&doc);
    let key = "Ocp-Apim-Subscription-Key";

    let r = get_with(&gw, "/api/1", &[(key, KEY_A)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-remaining").as_deref(), Some("1"), "{r:?}");
    assert_eq!(r.header("x-total").as_deref(), Some("2"), "{r:?}");
    let r = get_with(&gw, "/api/2", &[(key, KEY_A)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-remaining").as_deref(), Some("0"), "{r:?}");

    // The third call in the window is refused, with the wait in both places.
    let r = get_with(&gw, "/api/3", &[(key, KEY_A)]);
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
    let r = get_with(&gw, "/api/4", &[(key, "a-secondary-key-0123456789")]);
    assert_eq!(r.status, 429, "{r:?}");

    // Another subscription has its own counter.
    let r = get_with(&gw, "/api/5", &[(key, KEY_B)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-remaining").as_deref(), Some("1"), "{r:?}");

    let targets: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    assert_eq!(targets, ["/1", "/2", "/5"]);
    gw.stop();
}

#[test]
fn rate_limit_by_key_counts_only_what_the_condition_selects() {
    let backend = status_backend();
    // Only failed calls count, per client header.
    let policy = inbound(
        r#"<rate-limit-by-key calls="2" renewal-period="120"
              counter-key="@(context.Request.Headers.GetValueOrDefault(&quot;X-Client&quot;, &quot;anonymous&quot;))"
              increment-condition="@(context.Response.StatusCode &gt;= 400)"
              remaining-calls-header-name="X-Remaining" />"#,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let alice = [("X-Client", "alice")];

    for _ in 0..3 {
        let r = get_with(&gw, "/api/fine", &alice);
        assert_eq!(r.status, 200, "successes are not counted: {r:?}");
    }
    for _ in 0..2 {
        let r = get_with(&gw, "/api/status/500", &alice);
        assert_eq!(r.status, 500, "{r:?}");
    }
    let r = get_with(&gw, "/api/fine", &alice);
    assert_eq!(r.status, 429, "two failures used up alice's calls: {r:?}");
    assert!(r.has("retry-after"), "{r:?}");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("Rate limit is exceeded. Try again in "));

    // Another key is counted apart.
    let r = get_with(&gw, "/api/fine", &[("X-Client", "bob")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(backend.requests().len(), 6);
    gw.stop();
}

#[test]
fn quota_per_subscription() {
    let backend = MemBackend::echo();
    let policy = inbound(r#"<quota calls="2" renewal-period="3600" />"#);
    let mut a = papi("q", "api", backend.addr, &policy);
    a["subscriptionRequired"] = json!(true);
    let mut doc = cfg(vec![a]);
    doc["subscriptions"] = json!([
        subscription("a", "/apis", KEY_A, "active"),
        subscription("b", "/apis", KEY_B, "active"),
    ]);
    let gw = MemGateway::start(&doc);
    let key = "Ocp-Apim-Subscription-Key";

    for i in 0..2 {
        let r = get_with(&gw, &format!("/api/{i}"), &[(key, KEY_A)]);
        assert_eq!(r.status, 200, "{r:?}");
    }
    let r = get_with(&gw, "/api/over", &[(key, KEY_A)]);
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
    let r = get_with(&gw, "/api/b", &[(key, KEY_B)]);
    assert_eq!(
        r.status, 200,
        "another subscription has its own quota: {r:?}"
    );
    assert_eq!(backend.requests().len(), 3);
    gw.stop();
}

#[test]
fn quota_by_key() {
    let backend = MemBackend::echo();
    let policy = inbound(
        r#"<quota-by-key calls="1" renewal-period="3600" counter-key="@(context.Request.Headers.GetValueOrDefault(&quot;X-Tenant&quot;, &quot;&quot;))" />"#,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));

    let r = get_with(&gw, "/api/1", &[("X-Tenant", "t1")]);
    assert_eq!(r.status, 200, "{r:?}");
    let r = get_with(&gw, "/api/2", &[("X-Tenant", "t1")]);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.has("retry-after"), "{r:?}");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("Out of call volume quota."));
    let r = get_with(&gw, "/api/3", &[("X-Tenant", "t2")]);
    assert_eq!(r.status, 200, "{r:?}");
    let targets: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    assert_eq!(targets, ["/1", "/3"]);
    gw.stop();
}

// ---------------------------------------------------------------------------
// cors
// ---------------------------------------------------------------------------

#[test]
fn cors_preflight_and_actual_request() {
    let backend = MemBackend::echo();
    let policy = inbound(
        r#"<cors allow-credentials="false">
             <allowed-origins><origin>https://app.example</origin></allowed-origins>
             <allowed-methods preflight-result-max-age="300"><method>GET</method><method>PUT</method></allowed-methods>
             <allowed-headers><header>X-Custom</header></allowed-headers>
             <expose-headers><header>X-Path</header></expose-headers>
           </cors>"#,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));

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
    );
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

    let r = get_with(&gw, "/api/items", &[("Origin", "https://app.example")]);
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
    let r = get_with(&gw, "/api/items", &[("Origin", "https://evil.example")]);
    assert!(!r.has("access-control-allow-origin"), "{r:?}");
    gw.stop();
}

/// The second corpus's `cors.xml` at API scope, on an API with GET and PUT
/// operations (no OPTIONS operation) that needs a subscription key.
fn cors_corpus_config(backend: SocketAddr) -> Value {
    let mut orders = papi(
        "orders",
        "orders",
        backend,
        include_str!("../core/tests/apim-corpus-2/cors.xml"),
    );
    orders["subscriptionRequired"] = json!(true);
    orders["operations"] = json!([
        {"id": "list", "method": "GET", "urlTemplate": "/items"},
        {"id": "put", "method": "PUT", "urlTemplate": "/items/{id}"},
    ]);
    let mut plain = papi("plain", "plain", backend, "");
    plain["operations"] = json!([{"id": "put", "method": "PUT", "urlTemplate": "/items/{id}"}]);
    let mut doc = cfg(vec![orders, plain]);
    doc["subscriptions"] = json!([subscription("all", "/apis", KEY_A, "active")]);
    doc
}

fn preflight(gw: &MemGateway, path: &str, origin: &str, method: &str) -> common::Response {
    call(
        gw,
        "OPTIONS",
        path,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
            ("Access-Control-Request-Headers", "authorization,if-match"),
        ],
        b"",
    )
}

#[test]
fn cors_answers_a_preflight_for_an_api_without_an_options_operation() {
    let backend = MemBackend::echo();
    let gw = MemGateway::start(&cors_corpus_config(backend.addr));

    // No OPTIONS operation, no subscription key, no Authorization: only cors runs
    // (the check-header before it would refuse), and it answers.
    let r = preflight(
        &gw,
        "/orders/items/42",
        "https://orders.contoso.example",
        "PUT",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://orders.contoso.example")
    );
    assert_eq!(
        r.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(
        r.header("access-control-allow-methods").as_deref(),
        Some("PUT")
    );
    let allowed = response_values(&r, "access-control-allow-headers");
    assert!(
        allowed.iter().any(|h| h.eq_ignore_ascii_case("if-match")),
        "{allowed:?}"
    );
    assert_eq!(r.header("access-control-max-age").as_deref(), Some("600"));

    // An origin the policy does not allow: the empty 200 of
    // terminate-unmatched-request, no CORS headers.
    let r = preflight(&gw, "/orders/items/42", "https://evil.example", "PUT");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!r.has("access-control-allow-origin"), "{r:?}");
    assert!(r.body.is_empty(), "{r:?}");

    // An API without a cors policy: the preflight is not answered.
    let r = preflight(
        &gw,
        "/plain/items/1",
        "https://orders.contoso.example",
        "PUT",
    );
    assert_eq!(r.status, 404, "{r:?}");
    assert!(
        backend.requests().is_empty(),
        "preflights never reach the backend"
    );

    // The actual request runs every policy: the key and the Authorization check.
    let r = call(
        &gw,
        "PUT",
        "/orders/items/42",
        &[
            ("Origin", "https://orders.contoso.example"),
            ("Ocp-Apim-Subscription-Key", KEY_A),
        ],
        b"{}",
    );
    assert_apim_error(&r, 401, "Missing credentials");
    let r = call(
        &gw,
        "PUT",
        "/orders/items/42",
        &[
            ("Origin", "https://orders.contoso.example"),
            ("Ocp-Apim-Subscription-Key", KEY_A),
            ("Authorization", "Bearer x"),
        ],
        b"{}",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let exposed = response_values(&r, "access-control-expose-headers");
    assert!(
        exposed.iter().any(|h| h.eq_ignore_ascii_case("ETag")),
        "{exposed:?}"
    );
    let req = backend.only_request();
    assert_eq!(req.header("x-forwarded-api").as_deref(), Some("orders"));
    gw.stop();
}

#[test]
fn a_global_cors_answers_preflights_and_an_options_operation_takes_its_own() {
    let backend = MemBackend::echo();
    let mut custom = papi(
        "custom",
        "custom",
        backend.addr,
        &inbound(
            r#"<set-header name="X-Custom-Preflight" exists-action="override"><value>yes</value></set-header>"#,
        ),
    );
    custom["operations"] = json!([
        {"id": "get", "method": "GET", "urlTemplate": "/x"},
        {"id": "options", "method": "OPTIONS", "urlTemplate": "/x"},
    ]);
    let mut plain = papi("plain", "plain", backend.addr, "");
    plain["operations"] = json!([{"id": "get", "method": "GET", "urlTemplate": "/x"}]);
    let mut doc = cfg(vec![plain, custom]);
    doc["policy"] = json!(inbound(
        r#"<cors><allowed-origins><origin>*</origin></allowed-origins><allowed-headers><header>*</header></allowed-headers></cors>"#
    ));
    let gw = MemGateway::start(&doc);

    // The global scope's cors answers for an API without policies of its own.
    let r = preflight(&gw, "/plain/x", "https://any.example", "GET");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert!(backend.requests().is_empty());

    // An OPTIONS operation runs as any request (APIM: custom preflight logic).
    let r = preflight(&gw, "/custom/x", "https://any.example", "GET");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        backend
            .only_request()
            .header("x-custom-preflight")
            .as_deref(),
        Some("yes")
    );
    gw.stop();
}

#[test]
fn a_key_named_by_two_quota_policies_is_counted_once_per_request() {
    let backend = MemBackend::echo();
    let mut api = papi(
        "exports",
        "exports",
        backend.addr,
        &inbound(
            r#"<quota-by-key calls="5" renewal-period="3600" counter-key="@(context.Request.Headers.GetValueOrDefault("X-Tenant", "anonymous"))" />"#,
        ),
    );
    api["operations"] = json!([
        {"id": "export", "method": "GET", "urlTemplate": "/export",
         "policy": include_str!("../core/tests/apim-corpus-2/quota.xml")},
        {"id": "list", "method": "GET", "urlTemplate": "/list"},
    ]);
    let gw = MemGateway::start(&cfg(vec![api]));
    let tenant = [("X-Tenant", "t1")];

    // One counter for the key: three exports count 3 (not 6), the fourth
    // passes the API's 5 and is refused by the operation's 3.
    for i in 1..=3 {
        let r = get_with(&gw, "/exports/export", &tenant);
        assert_eq!(r.status, 200, "export {i}: {r:?}");
    }
    let r = get_with(&gw, "/exports/export", &tenant);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("Out of call volume quota."));
    // The refused export counted at API scope (the first policy counted it);
    // the same counter now holds 4: one more list call fits the API's 5.
    assert_eq!(get_with(&gw, "/exports/list", &tenant).status, 200);
    assert_eq!(get_with(&gw, "/exports/list", &tenant).status, 403);
    // Another key has its own counter.
    assert_eq!(
        get_with(&gw, "/exports/export", &[("X-Tenant", "t2")]).status,
        200
    );
    assert_eq!(backend.requests().len(), 5);
    gw.stop();
}

// ---------------------------------------------------------------------------
// Products and subscriptions
// ---------------------------------------------------------------------------

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

#[test]
fn product_scoped_key_opens_only_the_products_apis() {
    let backend = MemBackend::echo();
    let gw = MemGateway::start(&product_config(backend.addr));
    let key = "Ocp-Apim-Subscription-Key";

    let r = get_with(&gw, "/in/x", &[(key, KEY_A)]);
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    let req = backend.only_request();
    assert_eq!(req.header("x-product").as_deref(), Some("Starter"));
    assert_eq!(req.header("x-subscription").as_deref(), Some("p-sub"));

    let r = get_with(&gw, "/out/x", &[(key, KEY_A)]);
    assert_apim_error(&r, 401, INVALID_KEY);
    let r = get_with(&gw, "/out/x", &[]);
    assert_apim_error(&r, 401, MISSING_KEY);

    // An all-APIs key opens both, without the product's policies.
    let r = get_with(&gw, "/out/y", &[(key, KEY_B)]);
    assert_eq!(r.status, 200, "{r:?}");
    let r = get_with(&gw, "/in/y", &[(key, KEY_B)]);
    assert_eq!(r.status, 200, "{r:?}");
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[2].header("x-product"), None);
    gw.stop();
}

#[test]
fn suspended_subscription_is_refused() {
    let backend = MemBackend::echo();
    let gw = MemGateway::start(&product_config(backend.addr));
    let r = get_with(&gw, "/out/x", &[("Ocp-Apim-Subscription-Key", KEY_A2)]);
    assert_apim_error(&r, 401, INVALID_KEY);
    let r = get_with(&gw, &format!("/in/x?subscription-key={KEY_A2}"), &[]);
    assert_apim_error(&r, 401, INVALID_KEY);
    assert!(backend.requests().is_empty());
    gw.stop();
}

#[test]
fn subscription_key_in_header_or_query_is_not_forwarded() {
    let backend = MemBackend::echo();
    let gw = MemGateway::start(&product_config(backend.addr));

    // `in` runs the product's policies, `out` has none: both strip the key.
    for api in ["in", "out"] {
        let key = if api == "in" { KEY_A } else { KEY_B };
        let r = get_with(
            &gw,
            &format!("/{api}/h?a=1"),
            &[("Ocp-Apim-Subscription-Key", key)],
        );
        assert_eq!(r.status, 200, "{r:?}");
        let r = get_with(
            &gw,
            &format!("/{api}/q?a=1&subscription-key={key}&b=2"),
            &[],
        );
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
    gw.stop();
}

#[test]
fn open_product_lets_its_apis_be_called_without_a_key() {
    let backend = MemBackend::echo();
    let mut open = papi("open", "open", backend.addr, "");
    open["subscriptionRequired"] = json!(true);
    let mut closed = papi("closed", "closed", backend.addr, "");
    closed["subscriptionRequired"] = json!(true);
    let mut doc = cfg(vec![open, closed]);
    doc["products"] = json!([{
        "id": "free", "displayName": "Free tier", "apis": ["open"], "subscriptionRequired": false,
        "policy": inbound(r#"<set-header name="X-Product" exists-action="override"><value>@(context.Product.Id)</value></set-header>"#)
    }]);
    let gw = MemGateway::start(&doc);
    let r = get_with(&gw, "/open/x", &[]);
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(
        backend.only_request().header("x-product").as_deref(),
        Some("free")
    );
    let r = get_with(&gw, "/closed/x", &[]);
    assert_apim_error(&r, 401, MISSING_KEY);
    gw.stop();
}

#[test]
fn rate_limit_window_renews_on_the_clock() {
    // Time is an input here: the window is checked to the second, no sleeping.
    let backend = MemBackend::echo();
    let policy = inbound(r#"<rate-limit-by-key calls="1" renewal-period="60" counter-key="k" />"#);
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    assert_eq!(get_with(&gw, "/api/1", &[]).status, 200);
    let r = get_with(&gw, "/api/2", &[]);
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.header("retry-after").as_deref(), Some("60"), "{r:?}");
    gw.advance(Duration::from_secs(59));
    let r = get_with(&gw, "/api/3", &[]);
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.header("retry-after").as_deref(), Some("1"), "{r:?}");
    gw.advance(Duration::from_secs(1));
    assert_eq!(get_with(&gw, "/api/4", &[]).status, 200);
    let targets: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    assert_eq!(targets, ["/1", "/4"]);
}
