//! End-to-end tests of the management API over real sockets, gateways: keys, tokens and configuration, long polls, heartbeats and instance status:
//! `Management::start` on 127.0.0.1:0 with a temporary data directory, driven
//! by a small HTTP client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_common;
#[allow(dead_code)]
mod client;

use std::time::{Duration, Instant};

use api_common::{api, gateway_setup, now_unix, revision, rfc3339_in, start};
use client::{options, Client, Resp};
use portcullis_management::Management;
use serde_json::json;

#[tokio::test]
async fn gateway_keys_tokens_and_configuration() {
    let h = start().await;
    let a = &h.admin;
    let (gateway, token) = gateway_setup(a).await;
    assert!(token.starts_with("GatewayKey gw1&"), "{token}");

    let keys = a.post("/gateways/gw1/keys", None).await.json();
    let primary = keys["primary"].as_str().expect("primary").to_owned();
    assert!(keys["secondary"].is_string());

    // Token expiry: default 30 days, explicit within 30 days, else 400.
    let t = a.post("/gateways/gw1/token", None).await.json();
    let expiry = t["expiry"].as_str().expect("expiry");
    assert!(expiry.ends_with('Z'), "{expiry}");
    let soon = a
        .post(
            "/gateways/gw1/token",
            Some(&json!({"keyType": "secondary", "expiry": rfc3339_in(3600)})),
        )
        .await;
    assert_eq!(soon.status, 200, "{}", soon.text());
    a.post(
        "/gateways/gw1/token",
        Some(&json!({"expiry": rfc3339_in(31 * 24 * 3600)})),
    )
    .await
    .problem(400);
    a.post(
        "/gateways/gw1/token",
        Some(&json!({"expiry": rfc3339_in(-60)})),
    )
    .await
    .problem(400);
    a.post("/gateways/gw1/token", Some(&json!({"expiry": "next week"})))
        .await
        .problem(400);

    // The configuration: exactly what gw1 serves, revision as ETag.
    let config = gateway.get("/gateways/gw1/configuration").await;
    assert_eq!(config.status, 200, "{}", config.text());
    assert_eq!(config.header("content-type"), Some("application/json"));
    let snapshot = config.json();
    let rev = revision(a).await;
    assert_eq!(snapshot["revision"], rev);
    // The ETag names the content: revision and digest.
    let digest = snapshot["digest"].as_str().expect("digest").to_owned();
    assert_eq!(digest.len(), 64);
    assert!(snapshot["storeId"].is_string(), "{snapshot}");
    assert_eq!(config.etag(), format!("\"{rev}-{digest}\""));
    // The revision alone (what a restored store could share) is not enough.
    let bare = gateway
        .get_with(
            "/gateways/gw1/configuration",
            &[("if-none-match", &format!("\"{rev}\""))],
        )
        .await;
    assert_eq!(bare.status, 200);
    assert_eq!(snapshot["apis"][0]["id"], "echo");
    portcullis_core::config::Snapshot::from_json(&config.body).expect("a core Snapshot");
    let etag = config.etag();
    let not_modified = gateway
        .get_with("/gateways/gw1/configuration", &[("if-none-match", &etag)])
        .await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.etag(), etag);
    let stale = gateway
        .get_with("/gateways/gw1/configuration", &[("if-none-match", "\"0\"")])
        .await;
    assert_eq!(stale.status, 200);

    // Refused tokens: none, forged, expired, another gateway's, the admin's; unknown gateway 404.
    gateway
        .anonymous()
        .get("/gateways/gw1/configuration")
        .await
        .problem(401);
    let forged = format!("{}x", &token[..token.len() - 4]) + "AAA=";
    gateway
        .with_authorization(&forged)
        .get("/gateways/gw1/configuration")
        .await
        .problem(401);
    let expired = portcullis_core::sync::token::sign("gw1", now_unix() - 10, primary.as_bytes());
    gateway
        .with_authorization(&expired)
        .get("/gateways/gw1/configuration")
        .await
        .problem(401);
    let r = a
        .put_json(
            "/gateways/gw2",
            &json!({"location": {"name": "Other"}, "apis": []}),
        )
        .await;
    assert_eq!(r.status, 201);
    let other = a.post("/gateways/gw2/token", None).await.json()["value"]
        .as_str()
        .expect("token")
        .to_owned();
    gateway
        .with_authorization(&other)
        .get("/gateways/gw1/configuration")
        .await
        .problem(401);
    a.get("/gateways/gw1/configuration").await.problem(401);
    // A token for a gateway that does not exist (signed with any key): 404.
    let unknown = portcullis_core::sync::token::sign("nope", now_unix() + 60, b"any key");
    gateway
        .with_authorization(&unknown)
        .get("/gateways/nope/configuration")
        .await
        .problem(404);
    let gw2 = gateway
        .with_authorization(&other)
        .get("/gateways/gw2/configuration")
        .await;
    assert_eq!(gw2.status, 200);
    assert_eq!(gw2.json()["apis"], json!([]), "gw2 serves no API");

    // Regenerating the primary key invalidates tokens signed with it.
    let r = a
        .post(
            "/gateways/gw1/regenerate-key",
            Some(&json!({"keyType": "primary"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_ne!(r.json()["primary"], primary.as_str());
    gateway
        .get("/gateways/gw1/configuration")
        .await
        .problem(401);
    a.post(
        "/gateways/gw1/regenerate-key",
        Some(&json!({"keyType": "tertiary"})),
    )
    .await
    .problem(400);
}

#[tokio::test]
async fn long_poll_returns_within_a_second_of_a_write() {
    let h = start().await;
    let a = &h.admin;
    let (gateway, _) = gateway_setup(a).await;
    let etag = gateway.get("/gateways/gw1/configuration").await.etag();

    let poller = gateway.clone();
    let tag = etag.clone();
    let poll = tokio::spawn(async move {
        let r = poller
            .get_with(
                "/gateways/gw1/configuration?wait=30",
                &[("if-none-match", &tag)],
            )
            .await;
        (r, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!poll.is_finished(), "the long-poll waits");
    let mut changed = api("echo", "echo");
    changed["displayName"] = json!("Echo v2");
    assert_eq!(a.put_json("/apis/echo", &changed).await.status, 200);
    let written = Instant::now();
    let (r, returned): (Resp, Instant) = poll.await.expect("poll task");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        returned.saturating_duration_since(written) < Duration::from_secs(1),
        "returned {:?} after the write",
        returned.saturating_duration_since(written)
    );
    assert_ne!(r.etag(), etag);
    assert_eq!(r.json()["apis"][0]["displayName"], "Echo v2");

    // Nothing changes: 304 once the wait is over.
    let current = r.etag();
    let started = Instant::now();
    let r = gateway
        .get_with(
            "/gateways/gw1/configuration?wait=1",
            &[("if-none-match", &current)],
        )
        .await;
    assert_eq!(r.status, 304);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    gateway
        .get("/gateways/gw1/configuration?wait=later")
        .await
        .problem(400);
}

#[tokio::test]
async fn shutdown_ends_a_waiting_long_poll() {
    let h = start().await;
    let (gateway, _) = gateway_setup(&h.admin).await;
    let etag = gateway.get("/gateways/gw1/configuration").await.etag();
    let poll = tokio::spawn(async move {
        gateway
            .try_send(
                hyper::Method::GET,
                "/gateways/gw1/configuration?wait=60",
                &[("if-none-match", &etag)],
                None,
            )
            .await
            .map(|r| (r.status, r.header("retry-after").map(str::to_owned)))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    h.management.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // 503 with `Retry-After: 0`, not 304: a gateway tells a restart from a
    // server that ignores `wait`, and long polls again once the plane is back.
    let answer = poll.await.expect("poll task").expect("answered");
    assert_eq!(answer, (503, Some("0".to_owned())));
}

#[tokio::test]
async fn heartbeats_show_in_the_status() {
    let h = start().await;
    let a = &h.admin;
    let (gateway, _) = gateway_setup(a).await;
    let beat = json!({
        "instanceId": "i-1", "hostname": "edge-1", "version": "0.1.0", "appliedRevision": 3,
        "uptimeSeconds": 42, "health": "healthy", "connectivity": "connected",
        "compileErrors": [], "backup": "saved", "someFutureField": true,
    });
    let r = gateway.post("/gateways/gw1/heartbeat", Some(&beat)).await;
    assert_eq!(r.status, 204, "{}", r.text());
    gateway
        .anonymous()
        .post("/gateways/gw1/heartbeat", Some(&beat))
        .await
        .problem(401);
    gateway
        .post("/gateways/gw1/heartbeat", Some(&json!({"hostname": "x"})))
        .await
        .problem(400);

    let status = a.get("/gateways/gw1/status").await;
    assert_eq!(status.status, 200, "{}", status.text());
    let status = status.json();
    assert_eq!(status["gatewayId"], "gw1");
    let instance = &status["instances"][0];
    assert_eq!(instance["instanceId"], "i-1");
    assert_eq!(instance["hostname"], "edge-1");
    assert_eq!(instance["appliedRevision"], 3);
    assert_eq!(instance["health"], "healthy");
    assert_eq!(instance["backup"], "saved");
    assert_eq!(instance["online"], true);
    assert!(instance["lastHeartbeat"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(instance.get("someFutureField").is_none());
    // Gateways may not read their own status with their token.
    gateway.get("/gateways/gw1/status").await.problem(401);
    a.get("/gateways/nope/status").await.problem(404);
}

#[tokio::test]
async fn an_instance_is_offline_after_three_missed_heartbeats() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut opts = options(dir.path());
    opts.heartbeat_interval = Duration::from_secs(1);
    let m = Management::start(opts).await.expect("start");
    let a = Client::new(m.local_addr()).admin(m.created_admin_token().expect("token"));
    let (gateway, _) = gateway_setup(&a).await;
    let beat = json!({"instanceId": "i-1", "hostname": "edge-1"});
    let r = gateway.post("/gateways/gw1/heartbeat", Some(&beat)).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        a.get("/gateways/gw1/status").await.json()["instances"][0]["online"],
        true
    );
    // Three 1 s intervals missed (whole seconds are stored: wait past the 4th).
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let status = a.get("/gateways/gw1/status").await.json();
    assert_eq!(status["instances"][0]["online"], false, "{status}");
    // A new heartbeat brings it back.
    let r = gateway.post("/gateways/gw1/heartbeat", Some(&beat)).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        a.get("/gateways/gw1/status").await.json()["instances"][0]["online"],
        true
    );
    m.shutdown().await;
}
