//! End-to-end tests of the management API over real sockets: `Management::start` on
//! 127.0.0.1:0 with a temporary data directory, driven by a small HTTP client.

mod client;

use std::time::{Duration, Instant};

use client::{options, start_with, Client, Harness, Resp};
use portcullis_management::{Management, TlsMode};
use serde_json::{json, Value};

async fn start() -> Harness {
    start_with(|_| {}).await
}

fn api(id: &str, path: &str) -> Value {
    json!({
        "id": id,
        "path": path,
        "serviceUrl": "http://127.0.0.1:9/",
        "operations": [{ "id": "get", "method": "GET", "urlTemplate": "/*" }],
    })
}

async fn revision(admin: &Client) -> u64 {
    let r = admin.get("/revision").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["revision"].as_u64().expect("revision")
}

#[tokio::test]
async fn admin_token_is_required_everywhere_but_openapi_and_healthz() {
    let h = start().await;
    let anonymous = h.admin.anonymous();
    for path in [
        "/apis",
        "/revision",
        "/audit",
        "/policy",
        "/gateways/x/status",
        "/analytics/requests",
        "/analytics/records",
    ] {
        let r = anonymous.get(path).await;
        r.problem(401);
        assert!(r
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")));
        h.admin
            .with_authorization("Bearer wrong-token")
            .get(path)
            .await
            .problem(401);
        h.admin
            .with_authorization("Basic YWRtaW46YWRtaW4=")
            .get(path)
            .await
            .problem(401);
    }
    assert_eq!(h.admin.get("/apis").await.status, 200);
    assert_eq!(anonymous.get("/openapi.json").await.status, 200);
    assert_eq!(anonymous.get("/healthz").await.status, 200);
    // Writes too.
    let r = anonymous
        .put_json("/backends/b", &json!({"url": "http://x/"}))
        .await;
    r.problem(401);
    assert_eq!(revision(&h.admin).await, 0, "nothing written");
}

#[tokio::test]
async fn admin_token_survives_a_restart_and_can_come_from_the_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = Management::start(options(dir.path())).await.expect("start");
    let token = first.created_admin_token().expect("created").to_owned();
    first.shutdown().await;

    let second = Management::start(options(dir.path()))
        .await
        .expect("restart");
    assert_eq!(second.created_admin_token(), None, "printed only once");
    let client = Client::new(second.local_addr());
    assert_eq!(client.admin(&token).get("/apis").await.status, 200);
    second.shutdown().await;

    let mut from_env = options(dir.path());
    from_env.admin_token = Some("env-token-0123456789abcdef".to_owned());
    let third = Management::start(from_env)
        .await
        .expect("restart with a token");
    assert_eq!(third.created_admin_token(), None);
    let client = Client::new(third.local_addr());
    assert_eq!(
        client
            .admin("env-token-0123456789abcdef")
            .get("/apis")
            .await
            .status,
        200
    );
    client.admin(&token).get("/apis").await.problem(401);
    third.shutdown().await;
}

#[tokio::test]
async fn crud_with_etags_and_preconditions() {
    let h = start().await;
    let a = &h.admin;
    let created = a
        .put_json("/backends/b1", &json!({"url": "http://127.0.0.1:9/"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let etag = created.etag();
    assert_eq!(etag, format!("\"{}\"", revision(a).await));
    assert_eq!(created.json()["url"], "http://127.0.0.1:9/");

    let got = a.get("/backends/b1").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.etag(), etag);
    assert_eq!(got.json()["id"], "b1");
    let not_modified = a
        .get_with("/backends/b1", &[("if-none-match", &etag)])
        .await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.etag(), etag);

    // Create-only on an existing entity, and a stale If-Match: 412, nothing changes.
    let body = json!({"url": "http://127.0.0.1:10/"});
    a.put_json_with("/backends/b1", &body, &[("if-none-match", "*")])
        .await
        .problem(412);
    a.put_json_with("/backends/b1", &body, &[("if-match", "\"999\"")])
        .await
        .problem(412);
    assert_eq!(
        a.get("/backends/b1").await.json()["url"],
        "http://127.0.0.1:9/"
    );

    let replaced = a
        .put_json_with("/backends/b1", &body, &[("if-match", &etag)])
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    let etag2 = replaced.etag();
    assert_ne!(etag2, etag);
    // The old ETag is stale now.
    a.put_json_with("/backends/b1", &body, &[("if-match", &etag)])
        .await
        .problem(412);
    a.delete_with("/backends/b1", &[("if-match", &etag)])
        .await
        .problem(412);
    let deleted = a.delete_with("/backends/b1", &[("if-match", &etag2)]).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    let gone = a.get("/backends/b1").await.problem(404);
    assert!(gone["type"]
        .as_str()
        .is_some_and(|t| t.ends_with("/not-found")));
    a.delete("/backends/b1").await.problem(404);
    // If-Match on a missing entity, and If-None-Match: * creating it.
    a.put_json_with("/backends/b1", &body, &[("if-match", "*")])
        .await
        .problem(412);
    let recreated = a
        .put_json_with("/backends/b1", &body, &[("if-none-match", "*")])
        .await;
    assert_eq!(recreated.status, 201);

    // Bad JSON and a body id that contradicts the URL: 400 problem+json.
    let r = a
        .send(
            hyper::Method::PUT,
            "/backends/b2",
            &[("content-type", "application/json")],
            Some(b"{\"url\": ".to_vec()),
        )
        .await
        .problem(400);
    assert!(
        r["detail"].as_str().is_some_and(|d| d.contains("line 1")),
        "{r}"
    );
    a.put_json("/backends/b2", &json!({"id": "other", "url": "http://x/"}))
        .await
        .problem(400);

    // Every change is in the audit log, newest first, with the actor.
    let audit = a.get("/audit").await.json();
    let entries = audit["value"].as_array().expect("entries");
    assert_eq!(audit["count"], 4);
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["create", "delete", "replace", "create"]);
    assert_eq!(entries[0]["resource"], "/backends/b1");
    assert_eq!(entries[0]["actor"], "admin");
    assert!(entries[0]["at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let revisions: Vec<u64> = entries
        .iter()
        .map(|e| e["revision"].as_u64().expect("rev"))
        .collect();
    assert!(revisions.windows(2).all(|w| w[0] > w[1]), "{revisions:?}");
}

#[tokio::test]
async fn lists_paginate() {
    let h = start().await;
    let a = &h.admin;
    for i in 0..5 {
        let r = a
            .put_json(
                &format!("/backends/b{i}"),
                &json!({"url": "http://127.0.0.1:9/"}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let mut seen = Vec::new();
    let mut next = Some("/backends?top=2".to_owned());
    let mut pages = 0;
    while let Some(link) = next {
        let page = a.get(&link).await.json();
        assert_eq!(page["count"], 5);
        for item in page["value"].as_array().expect("value") {
            seen.push(item["id"].as_str().expect("id").to_owned());
        }
        next = page["nextLink"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["b0", "b1", "b2", "b3", "b4"]);
    let page = a.get("/backends?skip=4").await.json();
    assert_eq!(page["value"].as_array().map(Vec::len), Some(1));
    assert!(page.get("nextLink").is_none());
    let page = a.get("/backends").await.json();
    assert_eq!(page["value"].as_array().map(Vec::len), Some(5));
    a.get("/backends?top=many").await.problem(400);
    let audit = a.get("/audit?top=2").await.json();
    assert_eq!(audit["count"], 5);
    assert_eq!(audit["nextLink"], "/audit?skip=2&top=2");
}

#[tokio::test]
async fn a_bad_policy_is_refused_with_its_line_and_reason_and_nothing_is_stored() {
    let h = start().await;
    let a = &h.admin;
    assert_eq!(
        a.put_json("/apis/echo", &api("echo", "echo")).await.status,
        201
    );
    let before = revision(a).await;

    let bad =
        "<policies>\n  <inbound>\n    <base />\n    <no-such-policy />\n  </inbound>\n</policies>";
    let r = a.put_xml("/apis/echo/policy", bad).await.problem(400);
    assert!(
        r["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/invalid-policy")),
        "{r}"
    );
    let policy = &r["policy"];
    assert!(
        policy["owner"]
            .as_str()
            .is_some_and(|o| o.starts_with("api") && o.contains("echo")),
        "{r}"
    );
    assert_eq!(policy["element"], "no-such-policy", "{r}");
    assert_eq!(policy["line"], 4, "{r}");
    assert_eq!(policy["column"], 5, "{r}");
    assert!(
        policy["reason"].as_str().is_some_and(|s| !s.is_empty()),
        "{r}"
    );
    a.get("/apis/echo/policy").await.problem(404);

    // The same document inline in the API body: refused, the API unchanged.
    let mut with_policy = api("echo", "echo");
    with_policy["policy"] = json!(bad);
    let r = a.put_json("/apis/echo", &with_policy).await.problem(400);
    assert_eq!(r["policy"]["line"], 4, "{r}");
    // A new API with a bad policy is not created at all.
    let mut other = api("other", "other");
    other["operations"][0]["policy"] = json!(bad);
    let r = a.put_json("/apis/other", &other).await.problem(400);
    assert!(
        r["policy"]["owner"]
            .as_str()
            .is_some_and(|o| o.contains("operation")),
        "{r}"
    );
    a.get("/apis/other").await.problem(404);
    // A configuration error that is not a policy one: detail is the ConfigError.
    let r = a
        .put_json("/apis/dup", &api("dup", "echo"))
        .await
        .problem(400);
    assert!(
        r["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/invalid-configuration")),
        "{r}"
    );
    assert!(r.get("policy").is_none());
    assert_eq!(revision(a).await, before, "nothing stored");

    // Good documents at every scope, as XML.
    let good = "<policies><inbound><base /></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>";
    let r = a.put_xml("/policy", good).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = a.put_xml("/apis/echo/policy", good).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = a.put_xml("/apis/echo/operations/get/policy", good).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let etag = r.etag();
    let r = a.put_xml("/apis/echo/operations/get/policy", good).await;
    assert_eq!(r.status, 200, "replaced");
    let got = a.get("/apis/echo/operations/get/policy").await;
    assert_eq!(got.status, 200);
    assert!(got
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/xml")));
    assert_eq!(got.text(), good);
    assert_ne!(got.etag(), etag);
    a.get("/apis/echo/operations/nope/policy")
        .await
        .problem(404);
    // Not XML: 415.
    let r = a
        .send(
            hyper::Method::PUT,
            "/policy",
            &[("content-type", "application/json")],
            Some(b"{}".to_vec()),
        )
        .await;
    r.problem(415);
    let deleted = a.delete("/apis/echo/operations/get/policy").await;
    assert_eq!(deleted.status, 204);
    a.get("/apis/echo/operations/get/policy").await.problem(404);
}

#[tokio::test]
async fn referenced_entities_cannot_be_deleted() {
    let h = start().await;
    let a = &h.admin;
    assert_eq!(
        a.put_json("/apis/echo", &api("echo", "echo")).await.status,
        201
    );
    let r = a
        .put_json(
            "/products/starter",
            &json!({"displayName": "Starter", "apis": ["echo"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = a
        .put_json(
            "/subscriptions/s1",
            &json!({"displayName": "S1", "scope": "/products/starter"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = a.delete("/apis/echo").await.problem(409);
    assert!(r["type"].as_str().is_some_and(|t| t.ends_with("/conflict")));
    a.delete("/products/starter").await.problem(409);
    assert_eq!(a.get("/apis/echo").await.status, 200, "still there");
    assert_eq!(a.delete("/subscriptions/s1").await.status, 204);
    assert_eq!(a.delete("/products/starter").await.status, 204);
    assert_eq!(a.delete("/apis/echo").await.status, 204);
}

#[tokio::test]
async fn secret_named_values_are_never_shown_after_creation() {
    let h = start().await;
    let a = &h.admin;
    let created = a
        .put_json(
            "/named-values/password",
            &json!({"value": "hunter2-secret", "secret": true}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let plain = a
        .put_json(
            "/named-values/greeting",
            &json!({"value": "hello", "secret": false}),
        )
        .await;
    assert_eq!(plain.status, 201);

    let got = a.get("/named-values/password").await.json();
    assert_eq!(got["value"], Value::Null);
    assert_eq!(got["secret"], true);
    assert_eq!(
        a.get("/named-values/greeting").await.json()["value"],
        "hello"
    );
    let list = a.get("/named-values").await;
    assert!(!list.text().contains("hunter2-secret"), "{}", list.text());
    // Replacing without a value keeps the secret; the response still hides it.
    let replaced = a
        .put_json("/named-values/password", &json!({"secret": true}))
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    assert_eq!(replaced.json()["value"], Value::Null);
    let audit = a.get("/audit").await;
    assert!(!audit.text().contains("hunter2-secret"), "{}", audit.text());
}

#[tokio::test]
async fn subscription_keys_are_generated_shown_once_and_rotated() {
    let h = start().await;
    let a = &h.admin;
    assert_eq!(
        a.put_json("/apis/echo", &api("echo", "echo")).await.status,
        201
    );
    let user = json!({"email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace"});
    let r = a.put_json("/users/u1", &user).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["state"], "active");
    let created = a
        .put_json(
            "/subscriptions/s1",
            &json!({"displayName": "S1", "scope": "/apis/echo", "ownerId": "u1"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let body = created.json();
    let primary = body["primaryKey"]
        .as_str()
        .expect("primary key shown at create")
        .to_owned();
    let secondary = body["secondaryKey"]
        .as_str()
        .expect("secondary key")
        .to_owned();
    for key in [&primary, &secondary] {
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_ne!(primary, secondary);

    let got = a.get("/subscriptions/s1").await.json();
    assert!(
        got.get("primaryKey").is_none() && got.get("secondaryKey").is_none(),
        "{got}"
    );
    assert_eq!(got["state"], "active");
    assert!(!a.get("/subscriptions").await.text().contains(&primary));

    let secrets = a.post("/subscriptions/s1/secrets", None).await;
    assert_eq!(secrets.status, 200, "{}", secrets.text());
    assert_eq!(
        secrets.json(),
        json!({"primaryKey": primary, "secondaryKey": secondary})
    );

    let rotated = a
        .post("/subscriptions/s1/regenerate-primary-key", None)
        .await
        .json();
    assert_ne!(rotated["primaryKey"], primary.as_str());
    assert_eq!(rotated["secondaryKey"], secondary.as_str());
    let rotated2 = a
        .post("/subscriptions/s1/regenerate-secondary-key", None)
        .await
        .json();
    assert_eq!(rotated2["primaryKey"], rotated["primaryKey"]);
    assert_ne!(rotated2["secondaryKey"], secondary.as_str());

    let suspended = a.post("/subscriptions/s1/suspend", None).await;
    assert_eq!(suspended.status, 200, "{}", suspended.text());
    assert_eq!(suspended.json()["state"], "suspended");
    let etag = suspended.etag();
    a.post_with("/subscriptions/s1/activate", None, &[("if-match", "\"1\"")])
        .await
        .problem(412);
    let active = a
        .post_with("/subscriptions/s1/activate", None, &[("if-match", &etag)])
        .await;
    assert_eq!(active.json()["state"], "active");
    let cancelled = a.post("/subscriptions/s1/cancel", None).await;
    assert_eq!(cancelled.json()["state"], "cancelled");
    assert_eq!(
        a.get("/subscriptions/s1").await.json()["state"],
        "cancelled"
    );
    a.post("/subscriptions/nope/suspend", None)
        .await
        .problem(404);
    a.post("/subscriptions/nope/secrets", None)
        .await
        .problem(404);
}

/// An API, a gateway serving it and the gateway's token.
async fn gateway_setup(a: &Client) -> (Client, String) {
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

#[tokio::test]
async fn openapi_document_covers_every_route() {
    let h = start().await;
    let anonymous = h.admin.anonymous();
    let r = anonymous.get("/openapi.json").await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().expect("paths");
    let expected = [
        "/apis",
        "/apis/{id}",
        "/products",
        "/products/{id}",
        "/subscriptions",
        "/subscriptions/{id}",
        "/users",
        "/users/{id}",
        "/backends",
        "/backends/{id}",
        "/named-values",
        "/named-values/{id}",
        "/policy-fragments",
        "/policy-fragments/{id}",
        "/gateways",
        "/gateways/{id}",
        "/policy",
        "/products/{id}/policy",
        "/apis/{id}/policy",
        "/apis/{id}/operations/{opId}/policy",
        "/policy/validate",
        "/products/{id}/policy/validate",
        "/apis/{id}/policy/validate",
        "/apis/{id}/operations/{opId}/policy/validate",
        "/apis/{id}/openapi",
        "/apis/{id}/openapi/import-url",
        "/subscriptions/{id}/secrets",
        "/subscriptions/{id}/regenerate-primary-key",
        "/subscriptions/{id}/regenerate-secondary-key",
        "/subscriptions/{id}/suspend",
        "/subscriptions/{id}/activate",
        "/subscriptions/{id}/cancel",
        "/gateways/{id}/keys",
        "/gateways/{id}/regenerate-key",
        "/gateways/{id}/token",
        "/gateways/{id}/token/renew",
        "/gateways/{id}/status",
        "/gateways/{id}/configuration",
        "/gateways/{id}/heartbeat",
        "/gateways/{id}/telemetry",
        "/analytics/requests",
        "/analytics/records",
        "/revision",
        "/audit",
        "/openapi.json",
        "/healthz",
    ];
    for path in expected {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert_eq!(paths.len(), expected.len());
    // Every documented path and method is routed: the server answers neither 405 nor
    // "no such route" (an unknown entity's 404 is fine).
    for (path, item) in paths {
        let concrete = path.replace("{id}", "nope").replace("{opId}", "nope");
        for method in item.as_object().expect("item").keys() {
            let method: hyper::Method = method.to_uppercase().parse().expect("method");
            let body = (method == hyper::Method::PUT || method == hyper::Method::POST)
                .then(|| b"{}".to_vec());
            let r = h.admin.send(method.clone(), &concrete, &[], body).await;
            assert_ne!(r.status, 405, "{method} {concrete}");
            if r.status == 404 {
                let problem = r.problem(404);
                assert!(
                    !problem["type"]
                        .as_str()
                        .unwrap_or("")
                        .ends_with("/no-such-route"),
                    "{method} {concrete} is not routed"
                );
            }
        }
    }
    // And what is not documented is not routed.
    let r = h.admin.get("/nothing-here").await.problem(404);
    assert!(r["type"]
        .as_str()
        .is_some_and(|t| t.ends_with("/no-such-route")));
    h.admin
        .send(hyper::Method::PATCH, "/apis/x", &[], None)
        .await
        .problem(405);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let h = start().await;
    let big = vec![b' '; portcullis_management::http::MAX_BODY + 1];
    let r = h
        .admin
        .send(
            hyper::Method::PUT,
            "/backends/b",
            &[("content-type", "application/json")],
            Some(big),
        )
        .await;
    r.problem(413);
}

#[tokio::test]
async fn self_signed_tls_serves_to_a_client_trusting_the_generated_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut opts = options(dir.path());
    opts.tls = TlsMode::SelfSigned;
    let m = Management::start(opts.clone())
        .await
        .expect("start with TLS");
    assert!(
        m.base_url().starts_with("https://127.0.0.1:"),
        "{}",
        m.base_url()
    );
    let ca_path = m.ca_path().expect("CA path reported").to_owned();
    assert!(ca_path.starts_with(dir.path().join("data").join("tls")));
    let ca = std::fs::read(&ca_path).expect("CA file");
    let token = m.created_admin_token().expect("token").to_owned();
    let client = Client::tls(m.local_addr(), &ca).admin(&token);
    let r = client.get("/healthz").await;
    assert_eq!(r.status, 200);
    assert_eq!(client.get("/apis").await.status, 200);
    // Plain HTTP to the TLS port and a client that does not trust the CA both fail.
    assert!(Client::new(m.local_addr())
        .try_send(hyper::Method::GET, "/healthz", &[], None)
        .await
        .map(|r| r.status != 200)
        .unwrap_or(true));
    let other_ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("other CA")
        .cert
        .pem();
    assert!(Client::tls(m.local_addr(), other_ca.as_bytes())
        .try_send(hyper::Method::GET, "/healthz", &[], None)
        .await
        .is_err());
    m.shutdown().await;

    // The next run reuses the certificate.
    let m = Management::start(opts).await.expect("restart with TLS");
    assert_eq!(
        std::fs::read(m.ca_path().expect("CA")).expect("CA file"),
        ca
    );
    let client = Client::tls(m.local_addr(), &ca).admin(&token);
    assert_eq!(client.get("/apis").await.status, 200);
    m.shutdown().await;

    // A certificate and key given as files (here: the generated ones).
    let tls_dir = dir.path().join("data").join("tls");
    let other = tempfile::tempdir().expect("temp dir");
    let mut opts = options(other.path());
    opts.tls = TlsMode::Files {
        cert: tls_dir.join("server.pem"),
        key: tls_dir.join("server-key.pem"),
    };
    let m = Management::start(opts).await.expect("start with TLS files");
    assert_eq!(m.ca_path(), None);
    assert!(m.base_url().starts_with("https://"));
    assert_eq!(
        Client::tls(m.local_addr(), &ca)
            .get("/healthz")
            .await
            .status,
        200
    );
    m.shutdown().await;
    // A start that fails (here: on TLS) creates no admin token that nobody saw.
    let third = tempfile::tempdir().expect("temp dir");
    let mut opts = options(third.path());
    opts.tls = TlsMode::Files {
        cert: tls_dir.join("missing.pem"),
        key: tls_dir.join("server-key.pem"),
    };
    let err = Management::start(opts)
        .await
        .expect_err("missing certificate");
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let m = Management::start(options(third.path()))
        .await
        .expect("plain start");
    assert!(
        m.created_admin_token().is_some(),
        "the token is printed by the start that works"
    );
    m.shutdown().await;
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// RFC 3339 for now + `secs` (negative: in the past).
fn rfc3339_in(secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs);
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

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

const PETS_YAML: &str = "\
openapi: 3.0.3
info:
  title: Pets
  version: '1'
servers:
  - url: http://127.0.0.1:9/v1
paths:
  /pets:
    get:
      operationId: listPets
      summary: List pets
      responses:
        200:
          description: ok
          content:
            application/json:
              example: [{ id: 1 }]
    post:
      summary: Add a pet
      responses: { '201': { description: created } }
  /pets/{petId}:
    get:
      operationId: getPet
      parameters:
        - { name: petId, in: path, required: true, schema: { type: integer } }
      responses: { default: { description: ok } }
";

async fn put_document(admin: &Client, path: &str, content_type: &str, body: &str) -> Resp {
    admin
        .send(
            hyper::Method::PUT,
            path,
            &[("content-type", content_type)],
            Some(body.as_bytes().to_vec()),
        )
        .await
}

#[tokio::test]
async fn openapi_import_keeps_policies_and_exports_round_trip() {
    let h = start().await;
    let a = &h.admin;
    let before = revision(a).await;
    let r = put_document(
        a,
        "/apis/pets/openapi?path=pets",
        "application/yaml",
        PETS_YAML,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.header("etag").is_some());
    assert_eq!(revision(a).await, before + 1);
    let api = a.get("/apis/pets").await.json();
    assert_eq!(api["displayName"], "Pets");
    assert_eq!(api["path"], "pets");
    assert_eq!(api["serviceUrl"], "http://127.0.0.1:9/v1");
    let ops: Vec<(String, String, String)> = api["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap_or("").to_owned(),
                o["method"].as_str().unwrap_or("").to_owned(),
                o["urlTemplate"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("listPets".into(), "GET".into(), "/pets".into()),
            ("post-pets".into(), "POST".into(), "/pets".into()),
            ("getPet".into(), "GET".into(), "/pets/{petId}".into()),
        ]
    );
    let audit = a.get("/audit").await.json();
    assert_eq!(audit["value"][0]["action"], "import");
    assert_eq!(audit["value"][0]["resource"], "/apis/pets");

    // Policies of the API and of operations that keep their id survive a re-import
    // (in JSON this time), as do other settings.
    let good = "<policies><inbound><base /></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>";
    assert_eq!(
        a.put_xml("/apis/pets/operations/listPets/policy", good)
            .await
            .status,
        201
    );
    assert_eq!(a.put_xml("/apis/pets/policy", good).await.status, 201);
    let mut doc: Value = json!({
        "openapi": "3.1.0",
        "info": { "title": "Pets v2" },
        "paths": {
            "/pets": { "get": { "operationId": "listPets", "summary": "All pets" } },
            "/owners": { "get": { "operationId": "listOwners" } },
        },
    });
    let r = put_document(
        a,
        "/apis/pets/openapi",
        "application/json",
        &doc.to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let api = a.get("/apis/pets").await.json();
    assert_eq!(api["displayName"], "Pets v2");
    assert_eq!(api["serviceUrl"], "http://127.0.0.1:9/v1", "upstream kept");
    assert_eq!(api["operations"].as_array().map(Vec::len), Some(2));
    assert_eq!(api["operations"][0]["displayName"], "All pets");
    assert!(api["operations"][0]["policy"].is_string(), "{api}");
    assert!(api["policy"].is_string());
    assert_eq!(
        a.get("/apis/pets/operations/listPets/policy").await.status,
        200
    );

    // Export: the stored document, brought up to date, in JSON and YAML.
    let r = put_document(a, "/apis/pets/openapi?path=pets", "text/yaml", PETS_YAML).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let exported = a.get("/apis/pets/openapi").await;
    assert_eq!(exported.status, 200);
    let out = exported.json();
    assert_eq!(out["servers"][0]["url"], "/pets");
    assert_eq!(out["paths"]["/pets"]["get"]["operationId"], "listPets");
    assert_eq!(
        out["paths"]["/pets"]["get"]["responses"]["200"]["content"]["application/json"]["example"]
            [0]["id"],
        1
    );
    let yaml = a.get("/apis/pets/openapi?format=yaml").await;
    assert_eq!(yaml.status, 200);
    assert_eq!(yaml.header("content-type"), Some("application/yaml"));
    assert!(
        yaml.text().contains("operationId: getPet"),
        "{}",
        yaml.text()
    );
    a.get("/apis/pets/openapi?format=xml").await.problem(400);

    // The export imports into another API with the same operations.
    let r = put_document(
        a,
        "/apis/copy/openapi?path=copy&serviceUrl=http://127.0.0.1:9/",
        "application/json",
        &out.to_string(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let copy = a.get("/apis/copy").await.json();
    let pets = a.get("/apis/pets").await.json();
    let strip = |v: &Value| {
        v["operations"]
            .as_array()
            .expect("ops")
            .iter()
            .map(|o| {
                (
                    o["id"].clone(),
                    o["method"].clone(),
                    o["urlTemplate"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&copy), strip(&pets));

    // An API that was never imported exports a generated document.
    assert_eq!(
        a.put_json("/apis/echo", &self::api("echo", "echo"))
            .await
            .status,
        201
    );
    let out = a.get("/apis/echo/openapi").await.json();
    assert_eq!(out["openapi"], "3.0.3");
    assert_eq!(out["servers"][0]["url"], "/echo");
    a.get("/apis/none/openapi").await.problem(404);

    // Nothing is written for bad documents.
    let at = revision(a).await;
    let r = put_document(
        a,
        "/apis/pets/openapi",
        "application/yaml",
        "openapi: 3.0.0\npaths:\n  /a: [unclosed\n",
    )
    .await;
    let problem = r.problem(400);
    assert!(
        problem["document"]["line"].as_u64().is_some_and(|l| l >= 3),
        "{problem}"
    );
    assert!(
        problem["document"]["column"].as_u64().is_some(),
        "{problem}"
    );
    doc["paths"]["/pets"]["get"] = json!({ "responses": [] });
    let r = put_document(
        a,
        "/apis/pets/openapi",
        "application/json",
        &doc.to_string(),
    )
    .await;
    assert_eq!(
        r.problem(400)["document"]["pointer"],
        "/paths/~1pets/get/responses"
    );
    // A new API needs its path.
    put_document(a, "/apis/new/openapi", "application/yaml", PETS_YAML)
        .await
        .problem(400);
    put_document(
        a,
        "/apis/new/openapi?path=new",
        "application/xml",
        PETS_YAML,
    )
    .await
    .problem(415);
    assert_eq!(revision(a).await, at);
    h.management.shutdown().await;
}
