//! Store tests on real SQLite files in temporary directories: the shared
//! fixtures here, the tests by topic in the submodules.

use portcullis_core::config::{CompiledConfig, ConfigError, Snapshot, SubscriptionState};
use portcullis_core::sync::token;
use std::path::Path;

use serde_json::{json, Value};
use tempfile::TempDir;

use super::*;

const T0: u64 = 1_700_000_000;
const DAY: u64 = 24 * 3600;

fn open() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data")).unwrap();
    (dir, store)
}

fn reopen(dir: &TempDir, store: Store) -> Store {
    drop(store);
    Store::open(&dir.path().join("data")).unwrap()
}

fn api_body(path: &str) -> Value {
    json!({
        "displayName": "Echo",
        "path": path,
        "serviceUrl": "http://127.0.0.1:9000/",
        "operations": [
            {"id": "get", "method": "GET", "urlTemplate": "/items"},
            {"id": "post", "method": "POST", "urlTemplate": "/items"}
        ]
    })
}

const GOOD_POLICY: &str = r#"<policies>
  <inbound>
    <base />
    <rate-limit calls="5" renewal-period="60" />
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"#;

const BAD_POLICY: &str = r#"<policies>
  <inbound>
    <base />
    <rate-limit calls="many" renewal-period="60" />
  </inbound>
</policies>"#;

fn put(store: &mut Store, kind: Kind, id: &str, body: Value) -> Result<Written, StoreError> {
    store.put(kind, id, body, Precondition::NONE, "tester", T0)
}

fn must_put(store: &mut Store, kind: Kind, id: &str, body: Value) -> Written {
    put(store, kind, id, body).unwrap_or_else(|e| panic!("put {kind:?} {id}: {e}"))
}

/// One entity of every kind, each referring to the ones before it.
fn seed(store: &mut Store) {
    must_put(
        store,
        Kind::Backend,
        "be",
        json!({"url": "http://127.0.0.1:9001/"}),
    );
    must_put(store, Kind::Api, "a1", api_body("one"));
    must_put(
        store,
        Kind::Api,
        "a2",
        json!({"path": "two", "backendId": "be", "operations": [
            {"id": "any", "method": "*", "urlTemplate": "/*"}
        ]}),
    );
    must_put(
        store,
        Kind::Product,
        "p1",
        json!({"displayName": "Starter", "apis": ["a1", "a2"]}),
    );
    must_put(store, Kind::Product, "p2", json!({"apis": ["a2"]}));
    must_put(
        store,
        Kind::User,
        "u1",
        json!({"email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace"}),
    );
    must_put(
        store,
        Kind::Subscription,
        "s-all",
        json!({"displayName": "All", "scope": "/apis", "ownerId": "/users/u1"}),
    );
    must_put(
        store,
        Kind::Subscription,
        "s-a1",
        json!({"scope": "/apis/a1"}),
    );
    must_put(
        store,
        Kind::Subscription,
        "s-a2",
        json!({"scope": "/apis/a2"}),
    );
    must_put(
        store,
        Kind::Subscription,
        "s-p1",
        json!({"scope": "/products/p1"}),
    );
    must_put(
        store,
        Kind::Subscription,
        "s-p2",
        json!({"scope": "/products/p2"}),
    );
    must_put(store, Kind::NamedValue, "env", json!({"value": "prod"}));
    must_put(
        store,
        Kind::NamedValue,
        "password",
        json!({"value": "s3cr3t-value", "secret": true}),
    );
    must_put(
        store,
        Kind::Fragment,
        "frag",
        json!({"description": "tag", "value":
            r#"<fragment><set-header name="X-Env" exists-action="override"><value>{{env}}</value></set-header></fragment>"#}),
    );
    must_put(
        store,
        Kind::Gateway,
        "g1",
        json!({"description": "edge", "location": {"name": "Berlin", "countryOrRegion": "DE"},
               "apis": ["a1"]}),
    );
}

fn heartbeat(instance: &str, revision: Option<u64>) -> Heartbeat {
    serde_json::from_value(json!({
        "instanceId": instance,
        "hostname": "host-1",
        "version": "0.1.0",
        "appliedRevision": revision,
        "uptimeSeconds": 12,
        "health": "healthy",
        "connectivity": "connected",
        "compileErrors": [],
        "backup": "saved",
        "someFutureField": 1
    }))
    .unwrap()
}

/// The invariant every write keeps: the whole stored configuration, every document
/// included, compiles.
fn assert_compiles(store: &Store) {
    CompiledConfig::compile(store.state.full_snapshot()).unwrap();
}

mod durability;
mod entities;
mod gateways;
mod policies;
