//! Helpers of the shared-store suites (`store_redis_*`): gateway binaries on one
//! Redis, requests to any of them, and their store metrics.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::Method;
use serde_json::Value;

use super::policy_docs::request;
use super::redis::RedisServer;
use super::{fetch, Client, GatewayProcess, Response, Runtime, WAIT};

/// Starts `n` gateway binaries on `rt` serving `doc`, each with `args`.
pub async fn gateways(rt: Runtime, doc: &Value, n: usize, args: &[String]) -> Vec<GatewayProcess> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(GatewayProcess::start(rt, doc, &args).await);
    }
    out
}

/// `--store <redis url>` and a store call timeout generous enough that a busy
/// test machine never turns a slow answer into a failure (the suites that are
/// about failures set their own), plus `extra`.
pub fn redis_args(redis: &RedisServer, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--store".to_owned(),
        redis.url(),
        "--store-timeout-ms".to_owned(),
        "5000".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// One request to `addr` on a new connection; the complete response.
pub async fn call_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut c = Client::connect(addr).await;
    c.send(request(method, path, headers, body)).await;
    c.response_to(&Method::from_bytes(method.as_bytes()).unwrap())
        .await
}

/// `GET path` with these headers to `addr` on a new connection.
pub async fn get_at(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    call_at(addr, "GET", path, headers, b"").await
}

/// The sum of every sample of metric `name` (all label sets) on the ops
/// listener's `/metrics`; 0 when absent.
pub async fn metric_sum(ops: SocketAddr, name: &str) -> f64 {
    let text = fetch(ops, "/metrics").await.body_str();
    metric_sum_in(&text, name)
}

/// As [`metric_sum`], over an exposition text already fetched.
pub fn metric_sum_in(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            // `name value` or `name{labels} value`, not `name_suffix ...`.
            let rest = if let Some(r) = rest.strip_prefix('{') {
                &r[r.find('}')? + 1..]
            } else {
                rest
            };
            if !rest.starts_with(' ') {
                return None;
            }
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

/// Waits until `metric_sum(ops, name)` is at least `min`; returns it.
pub async fn wait_metric_at_least(ops: SocketAddr, name: &str, min: f64) -> f64 {
    let mut last = 0.0;
    let reached = tokio::time::timeout(WAIT, async {
        loop {
            last = metric_sum(ops, name).await;
            if last >= min {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "{name} stayed at {last}, below {min}; /metrics:\n{}",
        fetch(ops, "/metrics").await.body_str()
    );
    last
}

/// Waits until Redis has a key for which `pred` holds; returns the keys.
pub async fn wait_keys(
    redis: &RedisServer,
    what: &str,
    pred: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut keys = Vec::new();
    let reached = tokio::time::timeout(WAIT, async {
        loop {
            keys = redis.keys();
            if pred(&keys) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(reached.is_ok(), "{what}: Redis keys are {keys:?}");
    keys
}

/// `Retry-After` in whole seconds; panics if absent or not a number.
pub fn retry_after(r: &Response) -> u64 {
    r.header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {r:?}"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is not seconds: {r:?}"))
}
