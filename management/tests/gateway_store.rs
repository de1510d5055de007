//! End-to-end tests of a gateway's shared-state store setting on the management
//! plane over real sockets: set on the gateway entity, shown with its password
//! as `***` (answers, lists, audit), kept on a GET-modify-PUT round trip to the
//! same server, sealed in the data directory across a restart, carried in the
//! clear only in the gateway's snapshot; bad settings are 400s naming the
//! field; the instances' `stateStore` heartbeats show in the status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_common;
#[allow(dead_code)]
mod client;

use api_common::{api, revision, start};
use client::{options, Client};
use portcullis_core::config::store::{Counting, OnFailure, StoreUrl};
use portcullis_core::config::Snapshot;
use portcullis_management::Management;
use serde_json::{json, Value};

const SECRET: &str = "s3cret-Pw-8c1f";

fn gateway(store: Option<Value>) -> Value {
    let mut body = json!({"location": {"name": "Lab"}, "apis": ["echo"]});
    if let Some(store) = store {
        body["store"] = store;
    }
    body
}

/// The gateway's snapshot, read as core reads it, with its ETag.
async fn snapshot(gateway: &Client) -> (Snapshot, String) {
    let r = gateway.get("/gateways/gw1/configuration").await;
    assert_eq!(r.status, 200, "{}", r.text());
    (
        Snapshot::from_json(&r.body).expect("a core Snapshot"),
        r.etag(),
    )
}

/// A token for gw1, and a client that sends it.
async fn token(admin: &Client) -> (Client, String) {
    let t = admin
        .post("/gateways/gw1/token", Some(&json!({"keyType": "primary"})))
        .await;
    assert_eq!(t.status, 200, "{}", t.text());
    let value = t.json()["value"].as_str().expect("token").to_owned();
    (admin.with_authorization(&value), value)
}

/// Every byte of every file under `dir`, as text (lossy).
fn all_files(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.push_str(&all_files(&path));
        } else {
            out.push_str(&String::from_utf8_lossy(
                &std::fs::read(&path).expect("read"),
            ));
        }
    }
    out
}

#[tokio::test]
async fn the_password_reaches_only_the_snapshot_and_survives_round_trips_and_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let m = Management::start(options(dir.path())).await.expect("start");
    let admin_token = m.created_admin_token().expect("token").to_owned();
    let a = Client::new(m.local_addr()).admin(&admin_token);
    assert_eq!(
        a.put_json("/apis/echo", &api("echo", "echo")).await.status,
        201
    );

    // Absent: the snapshot says nothing (the gateway runs `local` unless its flag says otherwise).
    let created = a.put_json("/gateways/gw1", &gateway(None)).await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert!(created.json().get("store").is_none());
    let (gw, gateway_token) = token(&a).await;
    let (snap, _) = snapshot(&gw).await;
    assert_eq!(snap.store, None);

    // Set: the answer, GET, the list and the audit log show `***`.
    let url = format!("redis://app:{SECRET}@cache.internal:6380/2");
    let before = revision(&a).await;
    let store =
        json!({"url": url, "counting": "approximate", "onFailure": "closed", "timeoutMs": 50});
    let put = a.put_json("/gateways/gw1", &gateway(Some(store))).await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert!(
        revision(&a).await > before,
        "a changed store bumps the revision"
    );
    let redacted = "redis://app:***@cache.internal:6380/2";
    let shown = put.json();
    assert_eq!(shown["store"]["url"], redacted, "{shown}");
    assert_eq!(shown["store"]["counting"], "approximate");
    assert_eq!(shown["store"]["onFailure"], "closed");
    assert_eq!(shown["store"]["timeoutMs"], 50);
    assert_eq!(shown["store"]["syncIntervalMs"], 200, "defaults filled in");
    for (what, text) in [
        ("the answer", put.text()),
        ("GET", a.get("/gateways/gw1").await.text()),
        ("the list", a.get("/gateways").await.text()),
        ("the audit log", a.get("/audit").await.text()),
    ] {
        assert!(!text.contains(SECRET), "{what} shows the password: {text}");
        assert!(
            !text.contains("sealed"),
            "{what} shows the sealed password: {text}"
        );
        assert!(
            text.contains(redacted),
            "{what} does not show the store: {text}"
        );
    }

    // The snapshot carries it in the clear, and it is new content.
    let (snap, etag) = snapshot(&gw).await;
    let settings = snap.store.clone().expect("the snapshot carries the store");
    assert_eq!(settings.url.to_string(), url);
    assert_eq!(settings.counting, Counting::Approximate);
    assert_eq!(settings.on_failure, OnFailure::Closed);
    assert_eq!(settings.timeout_ms, 50);

    // GET-modify-PUT: the `***` sent back keeps the password.
    let mut body = a.get("/gateways/gw1").await.json();
    body["store"]["counting"] = json!("exact");
    body["description"] = json!("edited");
    let r = a.put_json("/gateways/gw1", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (snap, etag2) = snapshot(&gw).await;
    assert_ne!(etag, etag2, "the gateway fetches the change");
    let settings = snap.store.clone().expect("store");
    assert_eq!(settings.url.to_string(), url, "password kept");
    assert_eq!(settings.counting, Counting::Exact);

    // `***` to another server is refused: the stored password goes nowhere new.
    let mut moved = body.clone();
    moved["store"]["url"] = json!("redis://app:***@evil.example:6380/2");
    let problem = a.put_json("/gateways/gw1", &moved).await.problem(400);
    let detail = problem["detail"].as_str().expect("detail");
    assert!(
        detail.contains("store.url") && detail.contains("send the password"),
        "{detail}"
    );
    assert_eq!(snapshot(&gw).await.1, etag2, "nothing stored");

    // Survives a restart: sealed in the data directory, never in the clear.
    m.shutdown().await;
    let files = all_files(dir.path());
    assert!(
        !files.contains(SECRET),
        "the password is in the data directory in the clear"
    );
    assert!(files.contains("sealedStorePassword"), "stored sealed");
    let m = Management::start(options(dir.path()))
        .await
        .expect("restart");
    let a = Client::new(m.local_addr()).admin(&admin_token);
    let gw = Client::new(m.local_addr()).with_authorization(&gateway_token);
    let (snap, _) = snapshot(&gw).await;
    assert_eq!(
        snap.store.expect("store").url.to_string(),
        url,
        "unsealed at open"
    );
    assert!(!a.get("/gateways/gw1").await.text().contains(SECRET));

    // A new password replaces it; `local` and no password need no sealing.
    let new = "redis://app:n3w-0ne@cache.internal:6380/2";
    let r = a
        .put_json("/gateways/gw1", &gateway(Some(json!({"url": new}))))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        snapshot(&gw).await.0.store.expect("store").url.to_string(),
        new
    );
    let r = a
        .put_json("/gateways/gw1", &gateway(Some(json!({"url": "local"}))))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["store"]["url"], "local");
    assert_eq!(
        snapshot(&gw).await.0.store.expect("store").url,
        StoreUrl::Local
    );
    // Left out of a PUT: gone (PUT replaces the whole gateway).
    let r = a.put_json("/gateways/gw1", &gateway(None)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(snapshot(&gw).await.0.store, None);
    m.shutdown().await;
}

#[tokio::test]
async fn bad_store_settings_are_400s_that_name_the_field() {
    let h = start().await;
    let a = &h.admin;
    assert_eq!(
        a.put_json("/apis/echo", &api("echo", "echo")).await.status,
        201
    );
    let cases = [
        (
            json!({"url": "http://cache:6379"}),
            "store.url: must be 'local' or start with redis://",
        ),
        (
            json!({"url": "redis://cache:0"}),
            "store.url: the port must be 1 to 65535",
        ),
        (
            json!({"url": "redis://cache/x"}),
            "store.url: the path must be a database number",
        ),
        (
            json!({"url": "redis://cache?db=1"}),
            "store.url: query parameters are not supported",
        ),
        (json!({"url": 6379}), "store.url: invalid type"),
        (
            json!({"counting": "fast"}),
            "store.counting: unknown variant `fast`",
        ),
        (
            json!({"onFailure": "maybe"}),
            "store.onFailure: unknown variant `maybe`",
        ),
        (
            json!({"timeoutMs": 0}),
            "store.timeoutMs must be 1 to 60000, not 0",
        ),
        (json!({"timeoutMs": -1}), "store.timeoutMs: invalid value"),
        (
            json!({"syncIntervalMs": 5}),
            "store.syncIntervalMs must be 10 to 60000, not 5",
        ),
        (
            json!({"keyPrefix": "a b"}),
            "store.keyPrefix must be 1 to 200 characters",
        ),
        (
            json!({"maxEntryBytes": 0}),
            "store.maxEntryBytes must be 1 to 536870912, not 0",
        ),
        (
            json!({"colour": "red"}),
            "store.colour: unknown field `colour`",
        ),
        (json!("redis://cache"), "store must be an object"),
        // Nothing stored whose password `***` could stand for.
        (
            json!({"url": "redis://:***@cache"}),
            "store.url: the password `***` stands for the stored one",
        ),
    ];
    for (store, expected) in cases {
        let r = a
            .put_json("/gateways/gw1", &gateway(Some(store.clone())))
            .await;
        let problem = r.problem(400);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        let detail = problem["detail"].as_str().expect("detail");
        assert!(
            detail.starts_with("gateway `gw1`: ") && detail.contains(expected),
            "{store}: {detail}"
        );
    }
    a.get("/gateways/gw1").await.problem(404);
    assert_eq!(revision(a).await, 1, "nothing stored");
    // The same checks on a replace.
    assert_eq!(
        a.put_json("/gateways/gw1", &gateway(None)).await.status,
        201
    );
    let r = a
        .put_json("/gateways/gw1", &gateway(Some(json!({"timeoutMs": 70000}))))
        .await;
    assert!(r.problem(400)["detail"]
        .as_str()
        .expect("detail")
        .contains("store.timeoutMs"));
    assert!(a.get("/gateways/gw1").await.json().get("store").is_none());
}

#[tokio::test]
async fn heartbeats_state_store_shows_per_instance_in_the_status() {
    let h = start().await;
    let a = &h.admin;
    assert_eq!(
        a.put_json("/apis/echo", &api("echo", "echo")).await.status,
        201
    );
    assert_eq!(
        a.put_json("/gateways/gw1", &gateway(None)).await.status,
        201
    );
    let (gw, _) = token(a).await;
    let redis = json!({
        "instanceId": "i-redis", "hostname": "edge-1", "version": "0.1.0", "appliedRevision": 2,
        "uptimeSeconds": 5, "health": "degraded", "connectivity": "connected",
        "stateStore": {
            "target": "redis://:***@cache:6379/0", "counting": "exact", "onFailure": "closed",
            "healthy": false, "errors": 3, "lastError": "timed out after 100 ms", "p99Micros": 1500,
        },
    });
    let local = json!({"instanceId": "i-local", "hostname": "edge-2", "health": "healthy"});
    // A gateway that sent its password anyway: the status hides it.
    let leaky = json!({
        "instanceId": "i-leaky", "hostname": "edge-3",
        "stateStore": {"target": "redis://ops:leaked-pw@cache:6379/1", "counting": "approximate",
                       "onFailure": "open", "healthy": true, "errors": 0},
    });
    for beat in [&redis, &local, &leaky] {
        let r = gw.post("/gateways/gw1/heartbeat", Some(beat)).await;
        assert_eq!(r.status, 204, "{}", r.text());
    }
    let status = a.get("/gateways/gw1/status").await;
    assert_eq!(status.status, 200, "{}", status.text());
    assert!(!status.text().contains("leaked-pw"), "{}", status.text());
    let status = status.json();
    let instances = status["instances"].as_array().expect("instances");
    let by_id = |id: &str| {
        instances
            .iter()
            .find(|i| i["instanceId"] == id)
            .unwrap_or_else(|| panic!("{id} in {status}"))
    };
    assert_eq!(
        by_id("i-redis")["stateStore"],
        json!({
            "target": "redis://:***@cache:6379/0", "counting": "exact", "onFailure": "closed",
            "healthy": false, "errors": 3, "lastError": "timed out after 100 ms", "p99Micros": 1500,
        })
    );
    assert!(
        by_id("i-local").get("stateStore").is_none(),
        "in process: nothing to show"
    );
    let leaky = &by_id("i-leaky")["stateStore"];
    assert_eq!(leaky["target"], "redis://ops:***@cache:6379/1");
    assert_eq!(leaky["healthy"], true);
    assert_eq!(leaky["p99Micros"], 0);
    // A malformed stateStore is a bad heartbeat.
    gw.post(
        "/gateways/gw1/heartbeat",
        Some(&json!({"instanceId": "i-bad", "stateStore": {"target": 1}})),
    )
    .await
    .problem(400);
}

#[tokio::test]
async fn the_openapi_document_describes_the_store_and_its_health() {
    let h = start().await;
    let doc = h.admin.anonymous().get("/openapi.json").await.json();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["Gateway"]["properties"]["store"]["$ref"],
        "#/components/schemas/StoreSettings"
    );
    assert_eq!(
        schemas["Heartbeat"]["properties"]["stateStore"]["$ref"],
        "#/components/schemas/StateStoreHealth"
    );
    // Exactly core's fields, in both.
    let fields = |name: &str| {
        let mut keys: Vec<String> = schemas[name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}"))
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    let mut core_settings: Vec<String> =
        serde_json::to_value(portcullis_core::config::store::StoreSettings {
            key_prefix: Some("p:".into()),
            ..Default::default()
        })
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    core_settings.sort();
    assert_eq!(fields("StoreSettings"), core_settings);
    let mut core_health: Vec<String> =
        serde_json::to_value(portcullis_core::sync::heartbeat::StateStoreHealth {
            last_error: Some("x".into()),
            ..Default::default()
        })
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    core_health.sort();
    assert_eq!(fields("StateStoreHealth"), core_health);
}
