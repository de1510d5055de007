//! References policies make, checked by the management plane over real sockets:
//! a policy naming a backend, fragment or named value that does not exist is
//! refused (and `validate` says why, with the line), and deleting one that a
//! policy still names is 409 naming the policy, until the policy goes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod client;

use client::{start_with, Client, Harness};
use hyper::Method;
use serde_json::{json, Value};

/// A management plane with API `echo` (operation `get`) and product `p`.
async fn setup() -> Harness {
    let h = start_with(|_| {}).await;
    let api = json!({
        "path": "echo", "serviceUrl": "http://127.0.0.1:9/",
        "operations": [{"id": "get", "method": "GET", "urlTemplate": "/items"}]
    });
    let r = h.admin.put_json("/apis/echo", &api).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = h
        .admin
        .put_json("/products/p", &json!({"displayName": "P"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    h
}

/// A document whose inbound section has `<base />` on line 3 and `policy` on line 4.
fn doc(policy: &str) -> String {
    format!("<policies>\n  <inbound>\n    <base />\n    {policy}\n  </inbound>\n</policies>")
}

/// Asserts a 400 invalid-policy problem at line `line` with `reason`.
fn assert_invalid(r: &client::Resp, line: u64, element: &str, reason: &str) {
    let p = r.problem(400);
    assert_eq!(
        p["type"], "https://portcullis.dev/problems/invalid-policy",
        "{p}"
    );
    assert_eq!(p["policy"]["line"], line, "{p}");
    assert_eq!(p["policy"]["element"], element, "{p}");
    assert_eq!(p["policy"]["reason"], reason, "{p}");
    let detail = p["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(reason), "{detail}");
}

/// POSTs `xml` to `path`'s `/validate` and returns the body.
async fn validate(a: &Client, path: &str, xml: &str) -> Value {
    let r = a
        .send(
            Method::POST,
            &format!("{path}/validate"),
            &[("content-type", "application/xml")],
            Some(xml.as_bytes().to_vec()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Asserts a 409 problem whose detail contains `needle`.
fn assert_conflict(r: &client::Resp, needle: &str) {
    let p = r.problem(409);
    let detail = p["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(needle), "{detail}");
}

#[tokio::test]
async fn a_missing_backend_is_refused_and_a_used_one_cannot_be_deleted() {
    let h = setup().await;
    let a = &h.admin;
    let ghost = doc(r#"<set-backend-service backend-id="ghost" />"#);
    let reason = "backend 'ghost' does not exist";
    // Every scope refuses it; nothing is stored.
    for path in [
        "/policy",
        "/products/p/policy",
        "/apis/echo/policy",
        "/apis/echo/operations/get/policy",
    ] {
        let r = a.put_xml(path, &ghost).await;
        assert_invalid(&r, 4, "set-backend-service", reason);
        let v = validate(a, path, &ghost).await;
        assert_eq!(v["valid"], false, "{path}: {v}");
        assert_eq!(v["errors"][0]["line"], 4, "{v}");
        assert_eq!(v["errors"][0]["element"], "set-backend-service", "{v}");
        assert_eq!(v["errors"][0]["message"], reason, "{v}");
        assert_eq!(a.get(path).await.status, 404, "{path}");
    }
    // An inline policy on an API or product is the same document.
    let inline = json!({
        "path": "other", "serviceUrl": "http://127.0.0.1:9/", "policy": ghost
    });
    assert_invalid(
        &a.put_json("/apis/other", &inline).await,
        4,
        "set-backend-service",
        reason,
    );
    let product = json!({"displayName": "Q", "policy": ghost});
    assert_invalid(
        &a.put_json("/products/q", &product).await,
        4,
        "set-backend-service",
        reason,
    );

    // With the backend, the same document is valid and stored.
    let r = a
        .put_json("/backends/b1", &json!({"url": "http://127.0.0.1:10/"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let good = doc(r#"<set-backend-service backend-id="b1" />"#);
    let v = validate(a, "/apis/echo/policy", &good).await;
    assert_eq!(v["valid"], true, "{v}");
    let r = a.put_xml("/apis/echo/policy", &good).await;
    assert_eq!(r.status, 201, "{}", r.text());

    // The policy still names it: 409 naming the policy, element and line.
    let r = a.delete("/backends/b1").await;
    assert_conflict(
        &r,
        "backend 'b1' is still used by the policy of api 'echo' (set-backend-service, line 4)",
    );
    assert_eq!(a.get("/backends/b1").await.status, 200);

    let r = a.delete("/apis/echo/policy").await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = a.delete("/backends/b1").await;
    assert_eq!(r.status, 204, "{}", r.text());
}

#[tokio::test]
async fn a_backend_named_inside_a_fragment_is_checked_too() {
    let h = setup().await;
    let a = &h.admin;
    let frag =
        json!({"value": "<fragment>\n  <set-backend-service backend-id=\"ghost\" />\n</fragment>"});
    let r = a.put_json("/policy-fragments/route", &frag).await;
    assert_invalid(
        &r,
        2,
        "set-backend-service",
        "backend 'ghost' does not exist",
    );
    assert_eq!(a.get("/policy-fragments/route").await.status, 404);

    let r = a
        .put_json("/backends/b1", &json!({"url": "http://127.0.0.1:10/"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let frag =
        json!({"value": "<fragment>\n  <set-backend-service backend-id=\"b1\" />\n</fragment>"});
    let r = a.put_json("/policy-fragments/route", &frag).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = a.delete("/backends/b1").await;
    assert_conflict(
        &r,
        "backend 'b1' is still used by policy fragment 'route' (set-backend-service, line 2)",
    );
    assert_eq!(a.delete("/policy-fragments/route").await.status, 204);
    assert_eq!(a.delete("/backends/b1").await.status, 204);
}

#[tokio::test]
async fn a_missing_fragment_is_refused_and_a_used_one_cannot_be_deleted() {
    let h = setup().await;
    let a = &h.admin;
    let include = doc(r#"<include-fragment fragment-id="headers" />"#);
    let reason = "policy fragment 'headers' is not defined";
    let r = a.put_xml("/apis/echo/policy", &include).await;
    assert_invalid(&r, 4, "include-fragment", reason);
    let v = validate(a, "/apis/echo/policy", &include).await;
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["errors"][0]["line"], 4, "{v}");
    assert_eq!(v["errors"][0]["message"], reason, "{v}");

    let frag = json!({"value": "<fragment><set-header name=\"X-A\" exists-action=\"override\"><value>a</value></set-header></fragment>"});
    let r = a.put_json("/policy-fragments/headers", &frag).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = validate(a, "/apis/echo/policy", &include).await;
    assert_eq!(v["valid"], true, "{v}");
    let r = a
        .put_xml("/apis/echo/operations/get/policy", &include)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Another fragment including it is a referrer too.
    let outer =
        json!({"value": "<fragment>\n<include-fragment fragment-id=\"headers\" />\n</fragment>"});
    let r = a.put_json("/policy-fragments/outer", &outer).await;
    assert_eq!(r.status, 201, "{}", r.text());

    let r = a.delete("/policy-fragments/headers").await;
    assert_conflict(
        &r,
        "policy fragment 'headers' is still used by the policy of api 'echo' operation 'get' (include-fragment, line 4), policy fragment 'outer' (include-fragment, line 2)",
    );
    assert_eq!(a.delete("/policy-fragments/outer").await.status, 204);
    let r = a.delete("/apis/echo/operations/get/policy").await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = a.delete("/policy-fragments/headers").await;
    assert_eq!(r.status, 204, "{}", r.text());
}

#[tokio::test]
async fn a_missing_named_value_is_refused_and_a_used_one_cannot_be_deleted() {
    let h = setup().await;
    let a = &h.admin;
    let limit = doc(r#"<rate-limit calls="{{calls}}" renewal-period="60" />"#);
    let reason = "named value 'calls' is not defined";
    let r = a.put_xml("/products/p/policy", &limit).await;
    assert_invalid(&r, 4, "rate-limit", reason);
    let v = validate(a, "/products/p/policy", &limit).await;
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["errors"][0]["line"], 4, "{v}");
    assert_eq!(v["errors"][0]["message"], reason, "{v}");

    let r = a
        .put_json("/named-values/calls", &json!({"value": "5"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = a.put_xml("/products/p/policy", &limit).await;
    assert_eq!(r.status, 201, "{}", r.text());

    let r = a.delete("/named-values/calls").await;
    assert_conflict(
        &r,
        "named value 'calls' is still used by the policy of product 'p' (rate-limit, line 4)",
    );
    let r = a.delete("/products/p/policy").await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = a.delete("/named-values/calls").await;
    assert_eq!(r.status, 204, "{}", r.text());
}

#[tokio::test]
async fn a_delete_names_every_referrer_and_no_secret_value() {
    let h = setup().await;
    let a = &h.admin;
    // A backend named through a secret named value that does not exist: the
    // refusal does not show the value.
    let r = a
        .put_json(
            "/named-values/route",
            &json!({"value": "s3cr3t-route", "secret": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let frag =
        json!({"value": "<fragment><set-backend-service backend-id=\"{{route}}\" /></fragment>"});
    let r = a.put_json("/policy-fragments/route", &frag).await;
    let p = r.problem(400);
    assert!(!p.to_string().contains("s3cr3t"), "{p}");
    assert_eq!(p["policy"]["reason"], "backend '***' does not exist", "{p}");

    // A backend an API names by backendId and a policy names by backend-id.
    let r = a
        .put_json("/backends/b1", &json!({"url": "http://127.0.0.1:10/"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let api = json!({"path": "by-id", "backendId": "b1"});
    assert_eq!(a.put_json("/apis/by-id", &api).await.status, 201);
    let policy = doc(r#"<set-backend-service backend-id="b1" />"#);
    assert_eq!(a.put_xml("/policy", &policy).await.status, 201);
    let r = a.delete("/backends/b1").await;
    assert_conflict(
        &r,
        "backend 'b1' is still used by api 'by-id', the policy of the global scope (set-backend-service, line 4)",
    );
}
