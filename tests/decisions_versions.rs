//! API versions and revisions, tested where they are decided (routing at
//! admission): a version set's Segment, Header and Query schemes, the default
//! version, `;rev=N` for revisions, and what the backend receives (the version
//! segment and `;rev=N` are the API's path, not forwarded; a version header or
//! query parameter is forwarded as sent, as APIM does).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::api;
use common::memory::*;
use serde_json::{json, Value};

/// API `id` at `path` whose upstream base path is `/<id>`, so the backend's
/// request line says which API forwarded it.
fn versioned(backend: &MemBackend, id: &str, path: &str, fields: Value) -> Value {
    let mut a = api(id, path, &format!("http://{}/{id}", backend.addr));
    for (k, v) in fields.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

fn snapshot(sets: Value, apis: Vec<Value>) -> Value {
    json!({"revision": 1, "versionSets": sets, "apis": apis})
}

/// The path and query the backend received last.
fn last(backend: &MemBackend) -> String {
    let reqs = backend.requests();
    let head = &reqs.last().expect("a request").head;
    String::from_utf8_lossy(head.path_and_query()).into_owned()
}

fn three_versions(backend: &MemBackend, set: Value) -> Value {
    let v = |id: &str, version: &str| {
        versioned(
            backend,
            id,
            "orders",
            json!({"apiVersionSetId": "orders", "apiVersion": version}),
        )
    };
    snapshot(
        json!([set]),
        vec![v("v1", "v1"), v("v2", "v2"), v("v3", "v3")],
    )
}

#[test]
fn segment_scheme_routes_by_path_segment_and_the_default_takes_the_rest() {
    let backend = MemBackend::echo();
    let set = json!({"id": "orders", "versioningScheme": "Segment", "defaultVersion": "v1"});
    let gw = MemGateway::start(&three_versions(&backend, set));
    let r = get_with(&gw, "/orders/v2/items/7?x=1", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(last(&backend), "/v2/items/7?x=1");
    get_with(&gw, "/orders/v3/items", &[]);
    assert_eq!(last(&backend), "/v3/items");
    // No version segment: the default version, the whole rest forwarded.
    get_with(&gw, "/orders/items", &[]);
    assert_eq!(last(&backend), "/v1/items");
}

#[test]
fn header_scheme_routes_by_the_sets_header_and_forwards_it() {
    let backend = MemBackend::echo();
    let set =
        json!({"id": "orders", "versioningScheme": "Header", "versionHeaderName": "Api-Version"});
    let gw = MemGateway::start(&three_versions(&backend, set));
    let r = get_with(&gw, "/orders/items", &[("api-version", "v2")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(last(&backend), "/v2/items");
    let head = &backend.requests()[0].head;
    assert_eq!(head.header("api-version"), Some(&b"v2"[..]));
    // No default and no original: a request naming no version, or an unknown one, is 404.
    assert_eq!(get_with(&gw, "/orders/items", &[]).status, 404);
    assert_eq!(
        get_with(&gw, "/orders/items", &[("Api-Version", "v9")]).status,
        404
    );
    assert_eq!(backend.requests().len(), 1);
}

#[test]
fn query_scheme_routes_by_the_sets_parameter_and_the_original_takes_requests_without_one() {
    let backend = MemBackend::echo();
    let v = |id: &str, version: Option<&str>| {
        let mut fields = json!({"apiVersionSetId": "orders"});
        if let Some(version) = version {
            fields["apiVersion"] = json!(version);
        }
        versioned(&backend, id, "orders", fields)
    };
    let set =
        json!({"id": "orders", "versioningScheme": "Query", "versionQueryName": "api-version"});
    let doc = snapshot(
        json!([set]),
        vec![v("original", None), v("v2024", Some("2024-01-01"))],
    );
    let gw = MemGateway::start(&doc);
    let r = get_with(&gw, "/orders/items?a=1&api-version=2024-01-01", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(last(&backend), "/v2024/items?a=1&api-version=2024-01-01");
    get_with(&gw, "/orders/items?a=1", &[]);
    assert_eq!(last(&backend), "/original/items?a=1");
    assert_eq!(
        get_with(&gw, "/orders/items?api-version=2020-01-01", &[]).status,
        404
    );
}

#[test]
fn revisions_are_reached_with_rev_and_the_current_one_at_the_plain_path() {
    let backend = MemBackend::echo();
    let doc = snapshot(
        json!([]),
        vec![
            versioned(&backend, "orders", "orders", json!({"apiRevision": 3})),
            versioned(
                &backend,
                "orders-rev4",
                "orders",
                json!({"apiRevision": 4, "isCurrent": false, "apiRevisionOf": "orders"}),
            ),
        ],
    );
    let gw = MemGateway::start(&doc);
    let r = get_with(&gw, "/orders/items", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(last(&backend), "/orders/items");
    get_with(&gw, "/orders;rev=4/items?q=1", &[]);
    assert_eq!(last(&backend), "/orders-rev4/items?q=1");
    get_with(&gw, "/orders;rev=3/items", &[]);
    assert_eq!(last(&backend), "/orders/items");
    assert_eq!(get_with(&gw, "/orders;rev=5/items", &[]).status, 404);
}

#[test]
fn a_subscription_to_an_api_opens_its_revisions() {
    let backend = MemBackend::echo();
    let mut current = versioned(
        &backend,
        "orders",
        "orders",
        json!({"subscriptionRequired": true}),
    );
    current["subscriptionRequired"] = json!(true);
    let mut rev2 = versioned(
        &backend,
        "orders-rev2",
        "orders",
        json!({"apiRevision": 2, "isCurrent": false, "apiRevisionOf": "orders"}),
    );
    rev2["subscriptionRequired"] = json!(true);
    let mut doc = snapshot(json!([]), vec![current, rev2]);
    doc["subscriptions"] = json!([{"id": "s", "scope": "/apis/orders", "primaryKey": "key-0123456789abcdef", "secondaryKey": "key-fedcba9876543210"}]);
    let gw = MemGateway::start(&doc);
    let key = [("Ocp-Apim-Subscription-Key", "key-0123456789abcdef")];
    assert_eq!(get_with(&gw, "/orders;rev=2/x", &key).status, 200);
    assert_eq!(last(&backend), "/orders-rev2/x");
    assert_eq!(get_with(&gw, "/orders;rev=2/x", &[]).status, 401);
}
