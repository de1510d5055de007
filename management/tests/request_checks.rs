//! End to end over a real socket: what the REST API refuses before it looks at an
//! entity: `.` and `..` as ids, bodies without a `Content-Type`, and bodies that
//! are not UTF-8 (each a problem+json answer).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod client;

use client::{start_with, Harness};
use hyper::Method;
use serde_json::json;

fn api_body() -> serde_json::Value {
    json!({"path": "a", "serviceUrl": "http://127.0.0.1:9", "operations": [
        {"id": "any", "method": "*", "urlTemplate": "/*"}
    ]})
}

/// A request: method, path, header fields, body.
type Case<'a> = (Method, &'a str, &'a [(&'a str, &'a str)], Option<Vec<u8>>);

async fn setup() -> Harness {
    let h = start_with(|_| {}).await;
    let r = h.admin.put_json("/apis/a", &api_body()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = h
        .admin
        .put_json("/gateways/g", &json!({"location": {"name": "Lab"}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    h
}

#[tokio::test]
async fn dot_and_dot_dot_are_never_ids() {
    let h = setup().await;
    let a = &h.admin;
    let json = [("content-type", "application/json")];
    let xml = [("content-type", "application/xml")];
    let body = serde_json::to_vec(&api_body()).expect("json");
    let cases: Vec<Case> = vec![
        (Method::PUT, "/apis/.", &json, Some(body.clone())),
        (Method::PUT, "/apis/..", &json, Some(body.clone())),
        (Method::PUT, "/apis/%2e%2E", &json, Some(body.clone())),
        (Method::GET, "/apis/..", &[], None),
        (Method::DELETE, "/apis/.", &[], None),
        (
            Method::PUT,
            "/named-values/..",
            &json,
            Some(br#"{"value": "v"}"#.to_vec()),
        ),
        (
            Method::PUT,
            "/gateways/.",
            &json,
            Some(br#"{"location": {"name": "x"}}"#.to_vec()),
        ),
        (
            Method::POST,
            "/gateways/../token",
            &json,
            Some(b"{}".to_vec()),
        ),
        (Method::GET, "/gateways/../status", &[], None),
        (
            Method::PUT,
            "/apis/a/operations/../policy",
            &xml,
            Some(b"<policies/>".to_vec()),
        ),
        (Method::GET, "/subscriptions/%2E", &[], None),
    ];
    for (method, path, headers, body) in cases {
        let r = a.send(method.clone(), path, headers, body).await;
        let problem = r.problem(400);
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("`.` or `..`")),
            "{method} {path}: {problem}"
        );
    }
    // Not before the admin check: an anonymous caller still gets 401.
    let r = a.anonymous().get("/apis/..").await;
    assert_eq!(r.status, 401, "{}", r.text());
    // Ids inside a body are held to the same rule (an operation's id is a segment
    // of its policy's URL).
    let mut bad = api_body();
    bad["operations"][0]["id"] = json!("..");
    let r = a.put_json("/apis/b", &bad).await;
    r.problem(400);
    // Dots inside an id are fine.
    let mut v2 = api_body();
    v2["path"] = json!("a-v2");
    let r = a.put_json("/apis/a.v2", &v2).await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test]
async fn a_body_without_content_type_is_refused_with_415() {
    let h = setup().await;
    let a = &h.admin;
    let mut b = api_body();
    b["path"] = json!("b");
    let body = serde_json::to_vec(&b).expect("json");
    let r = a
        .send(Method::PUT, "/apis/b", &[], Some(body.clone()))
        .await;
    let problem = r.problem(415);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Content-Type")),
        "{problem}"
    );
    assert_eq!(a.get("/apis/b").await.status, 404, "nothing stored");
    let r = a
        .send(
            Method::PUT,
            "/apis/a/policy",
            &[],
            Some(b"<policies/>".to_vec()),
        )
        .await;
    r.problem(415);
    let r = a
        .send(Method::POST, "/gateways/g/token", &[], Some(b"{}".to_vec()))
        .await;
    r.problem(415);
    let r = a
        .send(
            Method::PUT,
            "/apis/c/openapi",
            &[],
            Some(b"openapi: 3.0.0".to_vec()),
        )
        .await;
    r.problem(415);
    // A JSON type (with parameters, in any case) is what clients send: accepted.
    for content_type in ["application/json", "Application/JSON; charset=utf-8"] {
        let r = a
            .send(
                Method::PUT,
                "/apis/b",
                &[("content-type", content_type)],
                Some(body.clone()),
            )
            .await;
        assert!(
            r.status == 200 || r.status == 201,
            "{content_type}: {}",
            r.text()
        );
    }
    // No body needs no type: a token with the defaults.
    let r = a.send(Method::POST, "/gateways/g/token", &[], None).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn a_body_that_is_not_utf8_gets_a_problem() {
    let h = setup().await;
    let a = &h.admin;
    let json = [("content-type", "application/json")];
    let mut body =
        br#"{"path": "b", "serviceUrl": "http://127.0.0.1:9", "displayName": ""#.to_vec();
    body.extend_from_slice(b"\xff\xfe\"}");
    for (path, headers, body) in [
        ("/apis/b", &json[..], body.clone()),
        (
            "/apis/a/policy",
            &[("content-type", "application/xml")][..],
            b"<policies>\xff</policies>".to_vec(),
        ),
        (
            "/named-values/n",
            &json[..],
            b"{\"value\": \"\xc3\x28\"}".to_vec(),
        ),
        (
            "/apis/c/openapi",
            &json[..],
            b"{\"openapi\": \"3.0.0\", \"info\": {\"title\": \"\xff\"}}".to_vec(),
        ),
        (
            "/apis/c/openapi",
            &[("content-type", "application/yaml")][..],
            b"openapi: 3.0.0\ninfo:\n  title: \xff\n".to_vec(),
        ),
    ] {
        let r = a.send(Method::PUT, path, headers, Some(body)).await;
        let problem = r.problem(400);
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("not UTF-8")),
            "{path}: {problem}"
        );
    }
    let r = a
        .send(
            Method::POST,
            "/gateways/g/token",
            &json,
            Some(b"{\"keyType\": \"\xff\"}".to_vec()),
        )
        .await;
    r.problem(400);
    // Nor an id in the path that is not UTF-8 once percent-decoded.
    let r = a.get("/apis/%ff").await;
    r.problem(400);
}

#[tokio::test]
async fn a_heartbeat_needs_a_json_type_and_utf8() {
    let h = setup().await;
    let token = h.admin.post("/gateways/g/token", None).await.json()["value"]
        .as_str()
        .expect("token")
        .to_owned();
    let gateway = client::Client::new(h.management.local_addr()).with_authorization(&token);
    let beat = json!({
        "instanceId": "i-1", "hostname": "edge-1", "version": "0.1.0", "appliedRevision": null,
        "uptimeSeconds": 1, "health": "notReady", "connectivity": "starting",
    })
    .to_string()
    .into_bytes();
    let path = "/gateways/g/heartbeat";
    let r = gateway
        .send(Method::POST, path, &[], Some(beat.clone()))
        .await;
    r.problem(415);
    let mut bad = beat.clone();
    bad.splice(bad.len() - 1..bad.len() - 1, *b",\"x\":\"\xff\"");
    let r = gateway
        .send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            Some(bad),
        )
        .await;
    let problem = r.problem(400);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not UTF-8")),
        "{problem}"
    );
    // What gateways send is recorded.
    let r = gateway
        .send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            Some(beat),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
}
