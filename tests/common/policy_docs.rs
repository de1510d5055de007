//! Helpers of the policy suites: policy documents, APIs that carry them, raw
//! requests on fresh connections, APIM's error bodies, base64 for keys.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::Method;
use serde_json::{json, Value};

use super::{api, config, response, Backend, Reply, Response, TestGateway};

/// A policy document whose four sections start with `<base />`, followed by
/// the given policies.
pub fn policies(inbound: &str, backend: &str, outbound: &str, on_error: &str) -> String {
    format!(
        "<policies>\n<inbound>\n<base />\n{inbound}\n</inbound>\n<backend>\n<base />\n{backend}\n</backend>\n<outbound>\n<base />\n{outbound}\n</outbound>\n<on-error>\n<base />\n{on_error}\n</on-error>\n</policies>"
    )
}

/// A document with these inbound policies.
pub fn inbound(p: &str) -> String {
    policies(p, "", "", "")
}

/// A document with these outbound policies.
pub fn outbound(p: &str) -> String {
    policies("", "", p, "")
}

/// API `id` at `/{path}` in front of `backend` (any method and path), with an
/// API-scope policy document (none when empty) and no subscription needed.
pub fn papi(id: &str, path: &str, backend: SocketAddr, policy: &str) -> Value {
    let mut a = api(id, path, &format!("http://{backend}"));
    if !policy.is_empty() {
        a["policy"] = json!(policy);
    }
    a
}

/// A configuration with these APIs.
pub fn cfg(apis: Vec<Value>) -> Value {
    config(1, apis)
}

/// The request bytes: `method path`, `Host`, the headers, and a Content-Length
/// body when there is one (or the method usually has one).
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: gateway.test\r\n");
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

/// One request on a new connection; the complete response.
pub async fn call(
    gw: &TestGateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut c = gw.client().await;
    c.send(request(method, path, headers, body)).await;
    c.response_to(&Method::from_bytes(method.as_bytes()).unwrap())
        .await
}

/// `GET path` with these headers on a new connection.
pub async fn get_with(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> Response {
    call(gw, "GET", path, headers, b"").await
}

/// Asserts `r` is APIM's JSON error with this status and message.
pub fn assert_apim_error(r: &Response, status: u16, message: &str) {
    assert_eq!(r.status, status, "{r:?} {}", r.body_str());
    assert_eq!(
        r.json(),
        json!({ "statusCode": status, "message": message }),
        "{r:?}"
    );
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// URL-safe base64 without padding (JWK `k`).
pub fn base64url(bytes: &[u8]) -> String {
    base64(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// On-error policy exposing `context.LastError` as `X-Error: Reason: Message`.
pub const LAST_ERROR_HEADER: &str = r#"<set-header name="X-Error" exists-action="override"><value>@(context.LastError.Reason + ": " + context.LastError.Message)</value></set-header>"#;

/// Unix time now, in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Every value of a header field: all field lines, split at commas, trimmed.
pub fn values(lines: Vec<String>) -> Vec<String> {
    lines
        .iter()
        .flat_map(|l| l.split(','))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Every value of header `name` in a response.
pub fn response_values(r: &Response, name: &str) -> Vec<String> {
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
pub async fn status_backend() -> Backend {
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

/// Subscription keys the suites give out.
pub const KEY_A: &str = "sub-a-primary-key-0123456789";
pub const KEY_A2: &str = "sub-a-secondary-key-0123456789";
pub const KEY_B: &str = "sub-b-primary-key-0123456789";

/// A subscription with generated keys.
pub fn subscription(id: &str, scope: &str, primary: &str, state: &str) -> Value {
    json!({
        "id": id,
        "scope": scope,
        "primaryKey": primary,
        "secondaryKey": format!("{id}-secondary-key-0123456789"),
        "state": state,
    })
}

/// An operation `id` (`method` `template`) with this policy document, if any.
pub fn op(id: &str, method: &str, template: &str, policy: &str) -> Value {
    let mut o = json!({ "id": id, "method": method, "urlTemplate": template });
    if !policy.is_empty() {
        o["policy"] = json!(policy);
    }
    o
}

/// A document whose backend section is only `backend` (no `<base />`).
pub fn own_backend(inbound: &str, backend: &str, outbound: &str, on_error: &str) -> String {
    policies(inbound, backend, outbound, on_error).replacen("<backend>\n<base />", "<backend>", 1)
}

/// A set-header policy appending `value` to `X-Order` (request or response).
pub fn mark(value: &str) -> String {
    format!(
        r#"<set-header name="X-Order" exists-action="append"><value>{value}</value></set-header>"#
    )
}

/// The same mark on the way in and out: inbound `{before}<base/>{after}`.
pub fn scope_doc(name: &str) -> String {
    format!(
        "<policies><inbound>{}<base />{}</inbound><backend><base /></backend><outbound><base />{}</outbound><on-error><base /></on-error></policies>",
        mark(&format!("{name}-before")),
        mark(&format!("{name}-after")),
        mark(name)
    )
}

/// APIM's message for a request without a subscription key.
pub const MISSING_KEY: &str = "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.";
/// APIM's message for a request with a key that opens nothing.
pub const INVALID_KEY: &str = "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.";

/// The HS256 secret the JWT suites sign their tokens with.
pub const JWT_SECRET: &[u8] = b"portcullis-end-to-end-secret-0123456789";

/// An HS256 token with these claims, signed with `secret`, naming `kid`.
pub fn mint(claims: &serde_json::Value, secret: &[u8], kid: Option<&str>) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("mint token")
}
