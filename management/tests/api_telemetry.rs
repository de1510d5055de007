//! End-to-end tests of the management API over real sockets, telemetry ingest, analytics queries and per-API telemetry settings:
//! `Management::start` on 127.0.0.1:0 with a temporary data directory, driven
//! by a small HTTP client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_common;
#[allow(dead_code)]
mod client;

use api_common::{gateway_setup, now_unix, revision, rfc3339_in, start};
use client::Client;
use serde_json::{json, Value};

/// A request record as a gateway uploads it.
fn telemetry_record(ts_ms: u64, api: &str, status: u16, total_ms: u64, sub: &str) -> Value {
    json!({
        "timestampMs": ts_ms,
        "requestId": format!("r-{ts_ms}-{status}-{total_ms}"),
        "gateway": "claimed-by-the-body",
        "instance": "i-1",
        "api": api,
        "operation": "get",
        "product": "starter",
        "subscription": sub,
        "method": "GET",
        "path": format!("/{api}/x"),
        "status": status,
        "clientIp": "127.0.0.1",
        "bytesIn": 100,
        "bytesOut": 1000,
        "totalUs": total_ms * 1000,
        "backendUs": total_ms * 600,
        "gatewayUs": total_ms * 400,
    })
}

async fn audit_count(admin: &Client) -> u64 {
    admin.get("/audit").await.json()["count"]
        .as_u64()
        .expect("count")
}

#[tokio::test]
async fn telemetry_is_stored_once_per_batch_and_summarised() {
    let h = start().await;
    let a = &h.admin;
    let (gw1, _) = gateway_setup(a).await;
    let r = a
        .put_json(
            "/gateways/gw2",
            &json!({"location": {"name": "Other"}, "apis": ["echo"]}),
        )
        .await;
    assert_eq!(r.status, 201);
    let gw2_token = a.post("/gateways/gw2/token", None).await.json()["value"]
        .as_str()
        .expect("token")
        .to_owned();
    let gw2 = a.with_authorization(&gw2_token);
    let rev = revision(a).await;
    let audits = audit_count(a).await;

    // Two one-minute buckets a few minutes ago.
    let b0 = (now_unix() * 1000 - 5 * 60_000) / 60_000 * 60_000;
    let b1 = b0 + 60_000;
    let mut records: Vec<Value> = (1..=10)
        .map(|ms| telemetry_record(b0 + ms, "echo", 200, ms, "sub1"))
        .collect();
    records.push(telemetry_record(b0 + 100, "echo", 404, 20, "sub1"));
    records.push(telemetry_record(b0 + 200, "echo", 503, 30, "sub1"));
    let mut sampled = telemetry_record(b1 + 1, "echo", 0, 40, "sub1");
    sampled["weight"] = json!(5);
    records.push(sampled);
    let batch = json!({"id": "i-1-1", "instance": "i-1", "dropped": 3, "records": records});

    let first = gw1.post("/gateways/gw1/telemetry", Some(&batch)).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(
        first.json(),
        json!({"stored": true, "duplicate": false, "records": 13, "expired": 0})
    );
    let retry = gw1.post("/gateways/gw1/telemetry", Some(&batch)).await;
    assert_eq!(retry.status, 200, "{}", retry.text());
    assert_eq!(retry.json(), json!({"stored": false, "duplicate": true}));
    // Telemetry is not configuration: no revision, no audit entry.
    assert_eq!(revision(a).await, rev);
    assert_eq!(audit_count(a).await, audits);

    // gw2's batch: same batch id (ids are per gateway), another subscription.
    let other = json!({"id": "i-1-1", "instance": "i-9", "records": [
        telemetry_record(b1 + 2, "echo", 200, 7, "sub2"),
    ]});
    let r = gw2.post("/gateways/gw2/telemetry", Some(&other)).await;
    assert_eq!(r.json()["stored"], true, "{}", r.text());

    // Per API, per minute.
    let to = now_unix() * 1000 + 60_000;
    let q = format!("/analytics/requests?from={b0}&to={to}&bucket=60&groupBy=api");
    let r = a.get(&q).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = r.json();
    assert_eq!(s["bucketSeconds"], 60);
    assert_eq!(s["groupBy"], "api");
    assert_eq!(s["dropped"], 3, "{s}");
    let groups = s["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1, "{s}");
    assert_eq!(groups[0]["key"], "echo");
    let buckets = groups[0]["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 2, "{s}");
    let first = &buckets[0];
    assert_eq!(first["requests"], 12, "counted once: {first}");
    assert_eq!(first["errors"], 1);
    assert_eq!(first["clientErrors"], 1);
    assert_eq!(first["bytesIn"], 1200);
    assert_eq!(first["bytesOut"], 12_000);
    // Totals 1..=10, 20, 30 ms: nearest rank of 12.
    assert_eq!(
        first["totalMs"],
        json!({"p50": 6.0, "p95": 30.0, "p99": 30.0})
    );
    assert_eq!(first["backendMs"]["p50"], 3.6);
    assert_eq!(first["gatewayMs"]["p95"], 12.0);
    let second = &buckets[1];
    assert_eq!(second["requests"], 6, "weight 5 and gw2's 1");
    assert_eq!(second["errors"], 5, "status 0 counts as an error");
    assert_eq!(second["totalMs"]["p50"], 40.0);
    let start = second["start"].as_str().expect("start");
    assert!(start.ends_with(":00Z"), "{start}");

    // RFC 3339 bounds, grouped by gateway: the stored gateway is the token's.
    let from = rfc3339_in(-3600);
    let r = a
        .get(&format!(
            "/analytics/requests?from={from}&bucket=3600&groupBy=gateway"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = r.json();
    let keys: Vec<&str> = s["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["key"].as_str().expect("key"))
        .collect();
    assert_eq!(keys, ["gw1", "gw2"], "{s}");
    let total = |g: &Value| -> u64 {
        g["buckets"]
            .as_array()
            .expect("buckets")
            .iter()
            .map(|b| b["requests"].as_u64().expect("requests"))
            .sum()
    };
    assert_eq!(total(&s["groups"][0]), 17);
    assert_eq!(total(&s["groups"][1]), 1);

    // By subscription, filtered to gw2: its dropped count only.
    let r = a
        .get(&format!(
            "/analytics/requests?from={b0}&to={to}&bucket=600&groupBy=subscription&gateway=gw2"
        ))
        .await;
    let s = r.json();
    assert_eq!(s["dropped"], 0);
    assert_eq!(s["groups"].as_array().expect("groups").len(), 1, "{s}");
    assert_eq!(s["groups"][0]["key"], "sub2");
    let r = a
        .get(&format!(
            "/analytics/requests?from={b0}&to={to}&bucket=600&groupBy=subscription"
        ))
        .await;
    let keys: Vec<Value> = r.json()["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["key"].clone())
        .collect();
    assert_eq!(keys, [json!("sub1"), json!("sub2")]);

    // Raw records, newest first, paged with the range kept in the link.
    let r = a
        .get(&format!("/analytics/records?from={b0}&to={to}&top=2"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.json();
    assert_eq!(page["count"], 14);
    let value = page["value"].as_array().expect("value");
    assert_eq!(value.len(), 2);
    assert_eq!(value[0]["timestampMs"], b1 + 2);
    assert_eq!(value[0]["gateway"], "gw2");
    assert_eq!(value[1]["gateway"], "gw1");
    assert_eq!(value[1]["weight"], 5);
    let next = page["nextLink"].as_str().expect("nextLink");
    assert_eq!(
        next,
        format!("/analytics/records?from={b0}&to={to}&skip=2&top=2")
    );
    let r = a.get(next).await.json();
    assert_eq!(r["value"].as_array().expect("value").len(), 2);
    let r = a
        .get(&format!(
            "/analytics/records?from={b0}&to={to}&subscription=sub2"
        ))
        .await
        .json();
    assert_eq!(r["count"], 1);
}

#[tokio::test]
async fn telemetry_uploads_are_refused_without_the_gateway_token_or_a_batch() {
    let h = start().await;
    let a = &h.admin;
    let (gw1, _) = gateway_setup(a).await;
    let r = a
        .put_json("/gateways/gw2", &json!({"location": {"name": "Other"}}))
        .await;
    assert_eq!(r.status, 201);
    let gw2_token = a.post("/gateways/gw2/token", None).await.json()["value"]
        .as_str()
        .expect("token")
        .to_owned();
    let ts = now_unix() * 1000;
    let batch = json!({"id": "b-1", "instance": "i-1", "records": [
        telemetry_record(ts, "echo", 200, 1, "sub1"),
    ]});
    let path = "/gateways/gw1/telemetry";
    // No token, another gateway's token, the admin token: 401, nothing stored.
    let r = gw1.anonymous().post(path, Some(&batch)).await;
    r.problem(401);
    assert_eq!(r.header("www-authenticate"), Some("GatewayKey"));
    gw1.with_authorization(&gw2_token)
        .post(path, Some(&batch))
        .await
        .problem(401);
    a.post(path, Some(&batch)).await.problem(401);
    let records = a.get("/analytics/records").await.json();
    assert_eq!(records["count"], 0, "{records}");
    // Gateways cannot read analytics.
    gw1.get("/analytics/requests").await.problem(401);
    gw1.get("/analytics/records").await.problem(401);

    // Bad batches: 400 naming why.
    let bad = |body: Value| {
        let gw1 = gw1.clone();
        async move { gw1.post(path, Some(&body)).await.problem(400) }
    };
    let p = bad(json!({"id": "", "instance": "i", "records": []})).await;
    assert!(
        p["detail"].as_str().unwrap_or("").contains("batch id"),
        "{p}"
    );
    let p = bad(json!({"id": "x", "instance": "i"})).await;
    assert!(
        p["detail"].as_str().unwrap_or("").contains("records"),
        "{p}"
    );
    let mut zero = telemetry_record(ts, "echo", 200, 1, "sub1");
    zero["weight"] = json!(0);
    let p = bad(json!({"id": "x", "instance": "i", "records": [zero]})).await;
    assert!(p["detail"].as_str().unwrap_or("").contains("weight"), "{p}");
    let many: Vec<Value> = (0..1001)
        .map(|i| telemetry_record(ts + i, "echo", 200, 1, "sub1"))
        .collect();
    let p = bad(json!({"id": "x", "instance": "i", "records": many})).await;
    assert!(p["detail"].as_str().unwrap_or("").contains("1000"), "{p}");
    let r = gw1
        .send(
            hyper::Method::POST,
            path,
            &[("content-type", "application/xml")],
            Some(b"<batch/>".to_vec()),
        )
        .await;
    r.problem(415);
    // Over core's MAX_BATCH_BYTES (and under the general body limit): 413.
    let big = vec![b' '; portcullis_core::telemetry::batch::MAX_BATCH_BYTES + 1];
    gw1.send(
        hyper::Method::POST,
        path,
        &[("content-type", "application/json")],
        Some(big),
    )
    .await
    .problem(413);
    // The batch id of a refused batch is not taken.
    let ok = gw1
        .post(
            path,
            Some(&json!({"id": "x", "instance": "i", "records": []})),
        )
        .await;
    assert_eq!(ok.json()["stored"], true, "{}", ok.text());
    // Unknown gateway: 404.
    let unknown = portcullis_core::sync::token::sign("nope", now_unix() + 60, b"any key");
    gw1.with_authorization(&unknown)
        .post("/gateways/nope/telemetry", Some(&batch))
        .await
        .problem(404);
}

#[tokio::test]
async fn analytics_parameters_are_checked() {
    let h = start().await;
    let a = &h.admin;
    for (query, named) in [
        ("bucket=0", "bucket"),
        ("bucket=often", "bucket"),
        ("groupBy=colour", "groupBy"),
        ("from=yesterday", "from"),
        ("to=2020-13-01T00:00:00Z", "to"),
        ("from=2000&to=1000", "from"),
        ("from=0&to=86400000&bucket=1", "bucket"),
        ("apii=echo", "apii"),
        ("api=a&api=b", "api"),
    ] {
        let p = a
            .get(&format!("/analytics/requests?{query}"))
            .await
            .problem(400);
        assert!(
            p["detail"]
                .as_str()
                .unwrap_or("")
                .contains(&format!("`{named}`")),
            "{query}: {p}"
        );
    }
    for (query, named) in [
        ("top=-1", "top"),
        ("limit=x", "limit"),
        ("bucket=60", "bucket"),
    ] {
        let p = a
            .get(&format!("/analytics/records?{query}"))
            .await
            .problem(400);
        assert!(
            p["detail"]
                .as_str()
                .unwrap_or("")
                .contains(&format!("`{named}`")),
            "{query}: {p}"
        );
    }
    // Defaults: the last hour in one-minute buckets; nothing stored yet.
    let r = a.get("/analytics/requests").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = r.json();
    assert_eq!(s["bucketSeconds"], 60);
    assert_eq!(s["groupBy"], Value::Null);
    assert_eq!(s["dropped"], 0);
    assert_eq!(s["groups"], json!([]));
    // 10,000 buckets are allowed.
    let r = a
        .get("/analytics/requests?from=0&to=10000000&bucket=1")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn api_telemetry_settings_are_checked_and_kept() {
    let h = start().await;
    let a = &h.admin;
    let api = |sampling: u32| {
        json!({"path": "quiet", "serviceUrl": "http://127.0.0.1:9/",
               "telemetry": {"enabled": true, "samplingPercentage": sampling}})
    };
    let refused = a.put_json("/apis/quiet", &api(150)).await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.text().contains("samplingPercentage"),
        "{}",
        refused.text()
    );
    let created = a.put_json("/apis/quiet", &api(25)).await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["telemetry"]["samplingPercentage"], 25);
}
