//! Helpers of the management API suites (`api_*.rs`): a started management
//! plane, a minimal API, the revision, a gateway with its token, and times.

// Each suite uses a different subset of these helpers.
#![allow(dead_code)]

use serde_json::{json, Value};

use crate::client::{start_with, Client, Harness};

/// A management plane on a temporary data directory, default options.
pub async fn start() -> Harness {
    start_with(|_| {}).await
}

/// API `id` at `/{path}` with one operation (any path).
pub fn api(id: &str, path: &str) -> Value {
    json!({
        "id": id,
        "path": path,
        "serviceUrl": "http://127.0.0.1:9/",
        "operations": [{ "id": "get", "method": "GET", "urlTemplate": "/*" }],
    })
}

/// The store's revision.
pub async fn revision(admin: &Client) -> u64 {
    let r = admin.get("/revision").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["revision"].as_u64().expect("revision")
}

/// An API, a gateway serving it and the gateway's token.
pub async fn gateway_setup(a: &Client) -> (Client, String) {
    assert_eq!(
        a.put_json("/apis/echo", &api("echo", "echo")).await.status,
        201
    );
    let gw = a
        .put_json(
            "/gateways/gw1",
            &json!({"description": "edge", "location": {"name": "Lab", "city": "Berlin"}, "apis": ["echo"]}),
        )
        .await;
    assert_eq!(gw.status, 201, "{}", gw.text());
    let token = a
        .post("/gateways/gw1/token", Some(&json!({"keyType": "primary"})))
        .await;
    assert_eq!(token.status, 200, "{}", token.text());
    let value = token.json()["value"].as_str().expect("token").to_owned();
    (a.with_authorization(&value), value)
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// RFC 3339 for now + `secs` (negative: in the past).
pub fn rfc3339_in(secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs);
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}
