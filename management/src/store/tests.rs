//! Store tests on real SQLite files in temporary directories.

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

#[test]
fn crud_of_every_kind() {
    let (_dir, mut store) = open();
    assert_eq!(store.revision(), 0);
    seed(&mut store);
    for kind in Kind::ALL {
        let (items, total) = store.list(kind, 0, 100).unwrap();
        assert!(total > 0, "{kind:?}");
        assert_eq!(items.len(), total);
        for item in items {
            let got = store.get(kind, &item.id).unwrap();
            assert_eq!(got, item);
        }
    }
    let api = store.get(Kind::Api, "a1").unwrap();
    assert_eq!(api.body["id"], "a1");
    assert_eq!(api.body["displayName"], "Echo");
    // Defaults are written out.
    assert_eq!(api.body["subscriptionRequired"], true);
    let gw = store.get(Kind::Gateway, "g1").unwrap();
    assert_eq!(gw.body["location"]["countryOrRegion"], "DE");
    assert_eq!(
        store.get(Kind::NamedValue, "env").unwrap().body["name"],
        "env"
    );

    // Replace: 200, not 201, and the new body wins.
    let w = must_put(
        &mut store,
        Kind::Backend,
        "be",
        json!({"url": "http://127.0.0.1:9002/"}),
    );
    assert!(!w.created);
    assert_eq!(w.entity.body["url"], "http://127.0.0.1:9002/");
    assert_eq!(w.entity.version, store.revision());
    assert_eq!(
        store.get(Kind::Backend, "be").unwrap().body["url"],
        "http://127.0.0.1:9002/"
    );

    // Delete everything, referrers first.
    let order = [
        (Kind::Gateway, "g1"),
        (Kind::Subscription, "s-all"),
        (Kind::Subscription, "s-a1"),
        (Kind::Subscription, "s-a2"),
        (Kind::Subscription, "s-p1"),
        (Kind::Subscription, "s-p2"),
        (Kind::User, "u1"),
        (Kind::Product, "p1"),
        (Kind::Product, "p2"),
        (Kind::Api, "a1"),
        (Kind::Api, "a2"),
        (Kind::Backend, "be"),
        (Kind::Fragment, "frag"),
        (Kind::NamedValue, "env"),
        (Kind::NamedValue, "password"),
    ];
    for (kind, id) in order {
        store
            .delete(kind, id, Precondition::NONE, "tester", T0)
            .unwrap_or_else(|e| panic!("delete {kind:?} {id}: {e}"));
        assert!(matches!(store.get(kind, id), Err(StoreError::NotFound(_))));
    }
    for kind in Kind::ALL {
        assert_eq!(store.list(kind, 0, 10).unwrap().1, 0);
    }
    assert!(matches!(
        store.delete(Kind::Api, "a1", Precondition::NONE, "tester", T0),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn bodies_are_checked() {
    let (_dir, mut store) = open();
    let unknown_field = put(
        &mut store,
        Kind::Backend,
        "b",
        json!({"url": "http://x/", "colour": 1}),
    );
    match unknown_field {
        Err(StoreError::Invalid(msg)) => assert!(msg.contains("colour"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        put(
            &mut store,
            Kind::Backend,
            "b",
            json!({"id": "c", "url": "http://x/"})
        ),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        put(
            &mut store,
            Kind::Backend,
            "b c",
            json!({"url": "http://x/"})
        ),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        put(&mut store, Kind::Backend, "b", json!(["not an object"])),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        put(
            &mut store,
            Kind::User,
            "u",
            json!({"email": "nobody", "firstName": "a", "lastName": "b"})
        ),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        put(&mut store, Kind::NamedValue, "n", json!({"secret": true})),
        Err(StoreError::Invalid(_))
    ));
    // Snapshot-level validation by the core's compiler.
    match put(&mut store, Kind::Backend, "b", json!({"url": "ftp://x/"})) {
        Err(StoreError::Config(e)) => assert!(matches!(*e, ConfigError::Backend { .. }), "{e}"),
        other => panic!("{other:?}"),
    }
    match put(&mut store, Kind::Product, "p", json!({"apis": ["nope"]})) {
        Err(StoreError::Config(e)) => assert!(e.to_string().contains("nope"), "{e}"),
        other => panic!("{other:?}"),
    }
    match put(
        &mut store,
        Kind::Subscription,
        "s",
        json!({"scope": "/products/nope"}),
    ) {
        Err(StoreError::Config(e)) => assert!(e.to_string().contains("scope"), "{e}"),
        other => panic!("{other:?}"),
    }
    // References the compiler does not see.
    must_put(&mut store, Kind::Api, "a", api_body("a"));
    assert!(matches!(
        put(&mut store, Kind::Gateway, "g", json!({"location": {"name": "x"}, "apis": ["a", "zz"]})),
        Err(StoreError::Invalid(m)) if m.contains("zz")
    ));
    assert!(matches!(
        put(&mut store, Kind::Subscription, "s", json!({"scope": "/apis", "ownerId": "ghost"})),
        Err(StoreError::Invalid(m)) if m.contains("ghost")
    ));
    // One accepted write (the API); nothing else was stored.
    assert_eq!(store.revision(), 1);
    assert_eq!(store.audit(0, 100).unwrap().1, 1);
}

#[test]
fn revision_is_monotonic_and_every_change_is_audited() {
    let (dir, mut store) = open();
    let mut last = store.revision();
    must_put(&mut store, Kind::Api, "a", api_body("a"));
    assert_eq!(store.revision(), last + 1);
    last = store.revision();
    must_put(&mut store, Kind::Api, "a", api_body("b"));
    assert_eq!(store.revision(), last + 1);
    store
        .put_policy(
            &PolicyScope::Api("a".into()),
            GOOD_POLICY,
            Precondition::NONE,
            "alice",
            T0 + 5,
        )
        .unwrap();
    store
        .delete(Kind::Api, "a", Precondition::NONE, "bob", T0 + 9)
        .unwrap();
    assert_eq!(store.revision(), 4);

    let (entries, total) = store.audit(0, 10).unwrap();
    assert_eq!(total, 4);
    let revisions: Vec<u64> = entries.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, [4, 3, 2, 1]);
    assert_eq!(entries[0].actor, "bob");
    assert_eq!(entries[0].action, "delete");
    assert_eq!(entries[0].resource, "/apis/a");
    assert_eq!(entries[0].at_unix, T0 + 9);
    assert_eq!(entries[1].actor, "alice");
    assert_eq!(entries[1].resource, "/apis/a/policy");
    assert_eq!(entries[1].action, "create");
    assert_eq!(entries[2].action, "replace");
    assert_eq!(entries[3].action, "create");
    // The API body is in the detail, its policy only as a size.
    let detail = entries[2].detail.as_deref().unwrap();
    assert!(detail.contains("\"path\":\"b\""), "{detail}");

    let (page, total) = store.audit(1, 2).unwrap();
    assert_eq!(total, 4);
    assert_eq!(page.iter().map(|e| e.revision).collect::<Vec<_>>(), [3, 2]);

    let store = reopen(&dir, store);
    assert_eq!(store.revision(), 4);
    assert_eq!(store.audit(0, 10).unwrap().0, entries);
}

#[test]
fn preconditions() {
    let (_dir, mut store) = open();
    let create_only = Precondition {
        if_match: None,
        if_none_match_any: true,
    };
    let w = store
        .put(Kind::Api, "a", api_body("a"), create_only, "t", T0)
        .unwrap();
    assert!(w.created);
    let v1 = w.entity.version;
    assert!(matches!(
        store.put(Kind::Api, "a", api_body("a"), create_only, "t", T0),
        Err(StoreError::PreconditionFailed(_))
    ));
    let at = |v| Precondition {
        if_match: Some(IfMatch::Version(v)),
        if_none_match_any: false,
    };
    let w = store
        .put(Kind::Api, "a", api_body("b"), at(v1), "t", T0)
        .unwrap();
    let v2 = w.entity.version;
    assert!(v2 > v1);
    assert_eq!(store.get(Kind::Api, "a").unwrap().version, v2);
    // Stale writes are refused.
    assert!(matches!(
        store.put(Kind::Api, "a", api_body("c"), at(v1), "t", T0),
        Err(StoreError::PreconditionFailed(_))
    ));
    assert!(matches!(
        store.delete(Kind::Api, "a", at(v1), "t", T0),
        Err(StoreError::PreconditionFailed(_))
    ));
    // If-Match on something that does not exist.
    let any = Precondition {
        if_match: Some(IfMatch::Any),
        if_none_match_any: false,
    };
    assert!(matches!(
        store.put(Kind::Api, "new", api_body("n"), any, "t", T0),
        Err(StoreError::PreconditionFailed(_))
    ));
    store
        .put(Kind::Api, "a", api_body("d"), any, "t", T0)
        .unwrap();
    let v3 = store.get(Kind::Api, "a").unwrap().version;
    // Actions honour If-Match too.
    must_put(
        &mut store,
        Kind::Subscription,
        "s",
        json!({"scope": "/apis/a"}),
    );
    let sv = store.get(Kind::Subscription, "s").unwrap().version;
    assert!(matches!(
        store.set_subscription_state("s", SubscriptionState::Suspended, at(sv - 1), "t", T0),
        Err(StoreError::PreconditionFailed(_))
    ));
    assert!(matches!(
        store.regenerate_subscription_key("s", KeyType::Primary, at(sv + 7), "t", T0),
        Err(StoreError::PreconditionFailed(_))
    ));
    store
        .set_subscription_state("s", SubscriptionState::Suspended, at(sv), "t", T0)
        .unwrap();
    // Policies: the ETag is the owner's version.
    let doc = store
        .put_policy(&PolicyScope::Api("a".into()), GOOD_POLICY, at(v3), "t", T0)
        .map(|_| ());
    assert!(
        matches!(doc, Err(StoreError::PreconditionFailed(_))),
        "no policy yet"
    );
    let (doc, created) = store
        .put_policy(
            &PolicyScope::Api("a".into()),
            GOOD_POLICY,
            create_only,
            "t",
            T0,
        )
        .unwrap();
    assert!(created);
    assert_eq!(doc.version, store.get(Kind::Api, "a").unwrap().version);
    assert!(matches!(
        store.delete_policy(&PolicyScope::Api("a".into()), at(v3), "t", T0),
        Err(StoreError::PreconditionFailed(_))
    ));
    store
        .delete_policy(&PolicyScope::Api("a".into()), at(doc.version), "t", T0)
        .unwrap();
}

#[test]
fn lists_paginate_by_id() {
    let (_dir, mut store) = open();
    for i in [3, 1, 4, 0, 2] {
        must_put(
            &mut store,
            Kind::Backend,
            &format!("b{i}"),
            json!({"url": "http://127.0.0.1:1/"}),
        );
    }
    let ids = |items: Vec<Entity>| items.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let (page, total) = store.list(Kind::Backend, 1, 2).unwrap();
    assert_eq!(total, 5);
    assert_eq!(ids(page), ["b1", "b2"]);
    let (page, total) = store.list(Kind::Backend, 4, 100).unwrap();
    assert_eq!((ids(page), total), (vec!["b4".to_owned()], 5));
    let (page, total) = store.list(Kind::Backend, 10, 100).unwrap();
    assert_eq!((page.len(), total), (0, 5));
    assert_eq!(store.list(Kind::Api, 0, 10).unwrap(), (vec![], 0));
}

#[test]
fn secrets_are_redacted() {
    let (_dir, mut store) = open();
    must_put(&mut store, Kind::Api, "a", api_body("a"));
    // Create shows generated keys once.
    let w = must_put(
        &mut store,
        Kind::Subscription,
        "s",
        json!({"scope": "/apis/a"}),
    );
    let primary = w.entity.body["primaryKey"].as_str().unwrap().to_owned();
    let secondary = w.entity.body["secondaryKey"].as_str().unwrap().to_owned();
    assert_eq!(primary.len(), 64);
    assert_ne!(primary, secondary);
    assert_eq!(w.entity.body["state"], "active");
    let got = store.get(Kind::Subscription, "s").unwrap();
    assert!(got.body.get("primaryKey").is_none());
    assert!(got.body.get("secondaryKey").is_none());
    assert!(store.list(Kind::Subscription, 0, 10).unwrap().0[0]
        .body
        .get("primaryKey")
        .is_none());
    let keys = store.subscription_secrets("s").unwrap();
    assert_eq!(
        (keys.primary_key.as_str(), keys.secondary_key.as_str()),
        (primary.as_str(), secondary.as_str())
    );
    assert!(!format!("{keys:?}").contains(&primary));
    // Replace without keys keeps them; a replace response shows none.
    let w = must_put(
        &mut store,
        Kind::Subscription,
        "s",
        json!({"scope": "/apis", "displayName": "renamed"}),
    );
    assert!(w.entity.body.get("primaryKey").is_none());
    assert_eq!(store.subscription_secrets("s").unwrap(), keys);
    // Given keys are used.
    let given = "0123456789abcdef0123";
    must_put(
        &mut store,
        Kind::Subscription,
        "s2",
        json!({"scope": "/apis", "primaryKey": given, "secondaryKey": "fedcba9876543210fedc"}),
    );
    assert_eq!(store.subscription_secrets("s2").unwrap().primary_key, given);

    // A secret named value: shown at create, null afterwards everywhere.
    let w = must_put(
        &mut store,
        Kind::NamedValue,
        "pw",
        json!({"value": "hunter2-hunter2", "secret": true}),
    );
    assert_eq!(w.entity.body["value"], "hunter2-hunter2");
    assert_eq!(
        store.get(Kind::NamedValue, "pw").unwrap().body["value"],
        Value::Null
    );
    assert_eq!(
        store.list(Kind::NamedValue, 0, 10).unwrap().0[0].body["value"],
        Value::Null
    );
    // A GET-modify-PUT round trip (value null) keeps the value.
    let w = must_put(
        &mut store,
        Kind::NamedValue,
        "pw",
        json!({"value": null, "secret": true}),
    );
    assert_eq!(w.entity.body["value"], Value::Null);
    must_put(
        &mut store,
        Kind::NamedValue,
        "plain",
        json!({"value": "visible"}),
    );
    assert_eq!(
        store.get(Kind::NamedValue, "plain").unwrap().body["value"],
        "visible"
    );

    // Nothing secret in the audit log.
    let (entries, _) = store.audit(0, 100).unwrap();
    for e in &entries {
        let text = format!("{e:?}");
        assert!(!text.contains(&primary), "{text}");
        assert!(!text.contains(&secondary), "{text}");
        assert!(!text.contains(given), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
    // The gateways still get the real values.
    must_put(
        &mut store,
        Kind::Gateway,
        "g",
        json!({"location": {"name": "x"}, "apis": ["a"]}),
    );
    let config = store.gateway_config("g").unwrap();
    let snapshot = Snapshot::from_json(&config.json).unwrap();
    let pw = snapshot
        .named_values
        .iter()
        .find(|n| n.name == "pw")
        .unwrap();
    assert_eq!(pw.value, "hunter2-hunter2");
    assert!(snapshot
        .subscriptions
        .iter()
        .any(|s| s.id == "s" && s.primary_key == primary));
}

#[test]
fn a_bad_policy_is_rejected_and_nothing_is_stored() {
    let (dir, mut store) = open();
    must_put(&mut store, Kind::Api, "a", api_body("a"));
    let before = store.revision();
    let scope = PolicyScope::Operation("a".into(), "get".into());
    let err = store
        .put_policy(&scope, BAD_POLICY, Precondition::NONE, "t", T0)
        .unwrap_err();
    match err {
        StoreError::Config(e) => match *e {
            ConfigError::Policy { owner, error } => {
                assert!(owner.contains("`a`") && owner.contains("`get`"), "{owner}");
                assert_eq!(error.policy, "rate-limit");
                assert_eq!(error.pos.line, 4);
                assert!(error.pos.column > 1);
                assert!(!error.message.is_empty());
            }
            other => panic!("{other}"),
        },
        other => panic!("{other:?}"),
    }
    assert_eq!(store.revision(), before);
    assert!(matches!(
        store.get_policy(&scope),
        Err(StoreError::NotFound(_))
    ));
    // The same policy inline in an API body.
    let mut body = api_body("a");
    body["policy"] = json!(BAD_POLICY);
    assert!(matches!(
        put(&mut store, Kind::Api, "a", body),
        Err(StoreError::Config(_))
    ));
    // And as the global policy, and in a fragment.
    assert!(matches!(
        store.put_policy(
            &PolicyScope::Global,
            "<policies><inbound><nope /></inbound></policies>",
            Precondition::NONE,
            "t",
            T0
        ),
        Err(StoreError::Config(_))
    ));
    // An unused fragment is checked on its own, with the position in the fragment.
    let fragment = "<fragment>\n  <rate-limit calls=\"x\" renewal-period=\"1\" />\n</fragment>";
    match put(
        &mut store,
        Kind::Fragment,
        "f",
        json!({ "value": fragment }),
    ) {
        Err(StoreError::Config(e)) => match *e {
            ConfigError::Policy { owner, error } => {
                assert!(
                    owner.contains("fragment") && owner.contains("`f`"),
                    "{owner}"
                );
                assert_eq!(error.policy, "rate-limit");
                assert_eq!((error.pos.line, error.pos.column), (2, 3));
            }
            other => panic!("{other}"),
        },
        other => panic!("{other:?}"),
    }
    match put(
        &mut store,
        Kind::Fragment,
        "f",
        json!({ "value": "<fragment><unclosed></fragment>" }),
    ) {
        Err(StoreError::Config(e)) => assert!(matches!(*e, ConfigError::Policy { .. }), "{e}"),
        other => panic!("{other:?}"),
    }
    match put(
        &mut store,
        Kind::Fragment,
        "f",
        json!({ "value": "<policies />" }),
    ) {
        Err(StoreError::Config(e)) => assert!(e.to_string().contains("fragment"), "{e}"),
        other => panic!("{other:?}"),
    }
    // A fragment meant for the backend section only is fine.
    must_put(
        &mut store,
        Kind::Fragment,
        "backend-only",
        json!({"value": "<fragment><forward-request timeout=\"10\" /></fragment>"}),
    );
    store
        .delete(Kind::Fragment, "backend-only", Precondition::NONE, "t", T0)
        .unwrap();
    let before = store.revision();
    assert!(matches!(
        store.put_policy(
            &PolicyScope::Api("a".into()),
            r#"<policies><inbound><include-fragment fragment-id="missing" /></inbound></policies>"#,
            Precondition::NONE,
            "t",
            T0
        ),
        Err(StoreError::Config(_))
    ));
    assert_eq!(store.revision(), before);
    assert_eq!(store.audit(0, 100).unwrap().1 as u64, before);
    let store = reopen(&dir, store);
    assert_eq!(store.revision(), before);
    assert!(store
        .get(Kind::Api, "a")
        .unwrap()
        .body
        .get("policy")
        .unwrap()
        .is_null());
}

#[test]
fn policies_at_every_scope() {
    let (dir, mut store) = open();
    seed(&mut store);
    let scopes = [
        PolicyScope::Global,
        PolicyScope::Product("p1".into()),
        PolicyScope::Api("a1".into()),
        PolicyScope::Operation("a1".into(), "post".into()),
    ];
    for scope in &scopes {
        assert!(matches!(
            store.get_policy(scope),
            Err(StoreError::NotFound(_))
        ));
        let (doc, created) = store
            .put_policy(scope, GOOD_POLICY, Precondition::NONE, "t", T0)
            .unwrap();
        assert!(created);
        assert_eq!(doc.version, store.revision());
        assert_eq!(store.get_policy(scope).unwrap(), doc);
        let (doc2, created) = store
            .put_policy(scope, GOOD_POLICY, Precondition::NONE, "t", T0)
            .unwrap();
        assert!(!created);
        assert!(doc2.version > doc.version);
    }
    // A policy put is visible in the owner's body, and the owner's ETag moved.
    let a1 = store.get(Kind::Api, "a1").unwrap();
    assert_eq!(a1.body["policy"], GOOD_POLICY);
    assert_eq!(a1.body["operations"][1]["policy"], GOOD_POLICY);
    assert_eq!(a1.body["operations"][0]["policy"], Value::Null);
    let config = store.gateway_config("g1").unwrap();
    let snapshot = Snapshot::from_json(&config.json).unwrap();
    assert_eq!(snapshot.policy.as_deref(), Some(GOOD_POLICY));
    assert_eq!(snapshot.products[0].policy.as_deref(), Some(GOOD_POLICY));

    let mut store = reopen(&dir, store);
    for scope in &scopes {
        assert_eq!(store.get_policy(scope).unwrap().xml, GOOD_POLICY);
        store
            .delete_policy(scope, Precondition::NONE, "t", T0)
            .unwrap();
        assert!(matches!(
            store.get_policy(scope),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.delete_policy(scope, Precondition::NONE, "t", T0),
            Err(StoreError::NotFound(_))
        ));
    }
    // Unknown owners.
    for scope in [
        PolicyScope::Product("nope".into()),
        PolicyScope::Api("nope".into()),
        PolicyScope::Operation("a1".into(), "nope".into()),
    ] {
        assert!(matches!(
            store.get_policy(&scope),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.put_policy(&scope, GOOD_POLICY, Precondition::NONE, "t", T0),
            Err(StoreError::NotFound(_))
        ));
    }
}

#[test]
fn referenced_entities_cannot_be_deleted() {
    let (_dir, mut store) = open();
    seed(&mut store);
    store
        .put_policy(
            &PolicyScope::Api("a2".into()),
            r#"<policies><inbound><base /><include-fragment fragment-id="frag" /><set-header name="X-Pw" exists-action="override"><value>{{password}}</value></set-header></inbound></policies>"#,
            Precondition::NONE,
            "t",
            T0,
        )
        .unwrap();
    let before = store.revision();
    let conflict = |store: &mut Store, kind, id: &str, expect: &[&str]| match store.delete(
        kind,
        id,
        Precondition::NONE,
        "t",
        T0,
    ) {
        Err(StoreError::Conflict(msg)) => {
            for e in expect {
                assert!(msg.contains(e), "{msg} lacks {e}");
            }
        }
        other => panic!("{kind:?} {id}: {other:?}"),
    };
    conflict(
        &mut store,
        Kind::Api,
        "a1",
        &["product 'p1'", "gateway 'g1'", "subscription 's-a1'"],
    );
    conflict(&mut store, Kind::Product, "p2", &["subscription 's-p2'"]);
    conflict(&mut store, Kind::Backend, "be", &["api 'a2'"]);
    conflict(&mut store, Kind::User, "u1", &["subscription 's-all'"]);
    conflict(&mut store, Kind::Fragment, "frag", &["frag"]);
    conflict(&mut store, Kind::NamedValue, "password", &["password"]);
    // env is used by the fragment.
    conflict(&mut store, Kind::NamedValue, "env", &["env"]);
    assert_eq!(store.revision(), before);
    // Unreferenced ones go.
    store
        .delete(Kind::Subscription, "s-p2", Precondition::NONE, "t", T0)
        .unwrap();
    store
        .delete(Kind::Product, "p2", Precondition::NONE, "t", T0)
        .unwrap();
    assert_compiles(&store);
}

#[test]
fn gateway_snapshot_has_exactly_what_the_gateway_serves() {
    let (_dir, mut store) = open();
    seed(&mut store);
    store
        .put_policy(
            &PolicyScope::Global,
            GOOD_POLICY,
            Precondition::NONE,
            "t",
            T0,
        )
        .unwrap();
    let config = store.gateway_config("g1").unwrap();
    assert_eq!(config.revision, store.revision());
    let snapshot = Snapshot::from_json(&config.json).unwrap();
    assert_eq!(snapshot.revision, store.revision());
    let ids = |v: Vec<String>| v;
    assert_eq!(
        ids(snapshot.apis.iter().map(|a| a.id.clone()).collect()),
        ["a1"]
    );
    assert_eq!(snapshot.products.len(), 1, "p2 has no API left");
    assert_eq!(snapshot.products[0].id, "p1");
    assert_eq!(snapshot.products[0].apis, ["a1"]);
    assert_eq!(snapshot.products[0].display_name, "Starter");
    let mut subs: Vec<&str> = snapshot
        .subscriptions
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    subs.sort_unstable();
    assert_eq!(subs, ["s-a1", "s-all", "s-p1"]);
    assert_eq!(snapshot.backends.len(), 1);
    assert_eq!(snapshot.named_values.len(), 2);
    assert_eq!(snapshot.fragments.len(), 1);
    assert_eq!(snapshot.policy.as_deref(), Some(GOOD_POLICY));
    let compiled = CompiledConfig::compile(snapshot).unwrap();
    assert_eq!(compiled.revision(), store.revision());

    // Same revision, same document; a change makes a new one.
    assert_eq!(store.gateway_config("g1").unwrap(), config);
    must_put(
        &mut store,
        Kind::Gateway,
        "g1",
        json!({"location": {"name": "Berlin"}, "apis": ["a1", "a2"]}),
    );
    let config2 = store.gateway_config("g1").unwrap();
    assert_eq!(config2.revision, config.revision + 1);
    let snapshot = Snapshot::from_json(&config2.json).unwrap();
    assert_eq!(snapshot.apis.len(), 2);
    assert_eq!(snapshot.products.len(), 2);
    assert_eq!(snapshot.subscriptions.len(), 5);
    CompiledConfig::compile(snapshot).unwrap();

    // A gateway with no APIs gets the shared parts only, and that compiles.
    must_put(
        &mut store,
        Kind::Gateway,
        "empty",
        json!({"location": {"name": "x"}}),
    );
    let snapshot = Snapshot::from_json(&store.gateway_config("empty").unwrap().json).unwrap();
    assert!(snapshot.apis.is_empty() && snapshot.products.is_empty());
    assert_eq!(
        snapshot
            .subscriptions
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        ["s-all"]
    );
    CompiledConfig::compile(snapshot).unwrap();
    assert!(matches!(
        store.gateway_config("nope"),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn gateway_tokens() {
    let (_dir, mut store) = open();
    seed(&mut store);
    must_put(
        &mut store,
        Kind::Gateway,
        "g2",
        json!({"location": {"name": "x"}}),
    );
    let keys = store.gateway_keys("g1").unwrap();
    assert_eq!(keys.primary.len(), 64);
    assert_ne!(keys.primary, keys.secondary);
    assert_ne!(store.gateway_keys("g2").unwrap(), keys);
    // Gateway keys are not in the gateway's body.
    let body = store.get(Kind::Gateway, "g1").unwrap().body.to_string();
    assert!(!body.contains(&keys.primary) && !body.contains(&keys.secondary));

    let token = store
        .gateway_token("g1", KeyType::Primary, None, T0)
        .unwrap();
    assert_eq!(token.expiry_unix, T0 + 30 * DAY);
    assert!(token.value.starts_with("GatewayKey g1&"));
    store
        .verify_gateway_token(&token.value, "g1", T0 + 1)
        .unwrap();
    // Without the scheme prefix too.
    let bare = token.value.trim_start_matches("GatewayKey ");
    store.verify_gateway_token(bare, "g1", T0 + 1).unwrap();
    // Expired.
    assert!(matches!(
        store.verify_gateway_token(&token.value, "g1", T0 + 30 * DAY),
        Err(StoreError::Unauthorized(_))
    ));
    // For another gateway.
    assert!(matches!(
        store.verify_gateway_token(&token.value, "g2", T0 + 1),
        Err(StoreError::Unauthorized(_))
    ));
    // Forged: signed with a key that is not the gateway's, or a later expiry.
    let forged = token::sign("g1", T0 + DAY, b"not the key");
    assert!(matches!(
        store.verify_gateway_token(&forged, "g1", T0 + 1),
        Err(StoreError::Unauthorized(_))
    ));
    let extended = token.value.replace(
        &token.expiry_unix.to_string(),
        &(token.expiry_unix + 1).to_string(),
    );
    assert!(matches!(
        store.verify_gateway_token(&extended, "g1", T0 + 1),
        Err(StoreError::Unauthorized(_))
    ));
    for garbage in ["", "Bearer abc", "GatewayKey g1", "GatewayKey g1&x&y"] {
        assert!(matches!(
            store.verify_gateway_token(garbage, "g1", T0),
            Err(StoreError::Unauthorized(_))
        ));
    }
    // Unknown gateway.
    let ghost = token::sign("ghost", T0 + DAY, b"k");
    assert!(matches!(
        store.verify_gateway_token(&ghost, "ghost", T0),
        Err(StoreError::NotFound(_))
    ));
    // Expiry rules.
    let expiry = store
        .gateway_token("g1", KeyType::Secondary, Some(T0 + 3600), T0)
        .unwrap();
    assert_eq!(expiry.expiry_unix, T0 + 3600);
    assert!(matches!(
        store.gateway_token("g1", KeyType::Primary, Some(T0 + 30 * DAY + 1), T0),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.gateway_token("g1", KeyType::Primary, Some(T0), T0),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.gateway_token("nope", KeyType::Primary, None, T0),
        Err(StoreError::NotFound(_))
    ));

    // Regenerating the primary key kills its tokens, not the secondary's.
    let secondary = store
        .gateway_token("g1", KeyType::Secondary, None, T0)
        .unwrap();
    let rev = store.revision();
    let new_keys = store
        .regenerate_gateway_key("g1", KeyType::Primary, Precondition::NONE, "t", T0)
        .unwrap();
    assert_eq!(store.revision(), rev + 1);
    assert_ne!(new_keys.primary, keys.primary);
    assert_eq!(new_keys.secondary, keys.secondary);
    assert!(matches!(
        store.verify_gateway_token(&token.value, "g1", T0 + 1),
        Err(StoreError::Unauthorized(_))
    ));
    store
        .verify_gateway_token(&secondary.value, "g1", T0 + 1)
        .unwrap();
    let fresh = store
        .gateway_token("g1", KeyType::Primary, None, T0)
        .unwrap();
    store
        .verify_gateway_token(&fresh.value, "g1", T0 + 1)
        .unwrap();
    let (entries, _) = store.audit(0, 1).unwrap();
    assert_eq!(entries[0].action, "regenerate-primary-key");
    assert_eq!(entries[0].resource, "/gateways/g1");
    assert!(!format!("{entries:?}").contains(&new_keys.primary));

    // Deleting a gateway removes its keys.
    store
        .delete(Kind::Gateway, "g2", Precondition::NONE, "t", T0)
        .unwrap();
    assert!(matches!(
        store.gateway_keys("g2"),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn heartbeats_and_status() {
    let (dir, mut store) = open();
    seed(&mut store);
    let rev = store.revision();
    store
        .record_heartbeat("g1", &heartbeat("i-2", Some(rev)), T0)
        .unwrap();
    store
        .record_heartbeat("g1", &heartbeat("i-1", None), T0 + 100)
        .unwrap();
    assert_eq!(store.revision(), rev, "heartbeats do not bump the revision");
    assert_eq!(store.audit(0, 1000).unwrap().1 as u64, rev);

    let status = store.gateway_status("g1", T0 + 150).unwrap();
    assert_eq!(status.gateway_id, "g1");
    let ids: Vec<&str> = status
        .instances
        .iter()
        .map(|i| i.heartbeat.instance_id.as_str())
        .collect();
    assert_eq!(ids, ["i-1", "i-2"]);
    assert!(status.instances.iter().all(|i| i.online));
    assert_eq!(status.instances[1].heartbeat.applied_revision, Some(rev));
    assert_eq!(status.instances[1].heartbeat.health, "healthy");
    assert_eq!(status.instances[1].last_heartbeat_unix, T0);

    // i-2 missed three heartbeats: offline; i-1 still within 180 s.
    let status = store.gateway_status("g1", T0 + 181).unwrap();
    assert!(status.instances[0].online);
    assert!(!status.instances[1].online);
    // It comes back.
    store
        .record_heartbeat("g1", &heartbeat("i-2", Some(rev)), T0 + 200)
        .unwrap();
    let status = store.gateway_status("g1", T0 + 290).unwrap();
    assert!(status.instances[1].online);
    assert_eq!(status.instances[1].last_heartbeat_unix, T0 + 200);
    assert!(!status.instances[0].online, "i-1's last was at T0+100");

    // Durable, and instances silent for a week are forgotten.
    let mut store = reopen(&dir, store);
    assert_eq!(
        store
            .gateway_status("g1", T0 + 260)
            .unwrap()
            .instances
            .len(),
        2
    );
    store
        .record_heartbeat(
            "g1",
            &heartbeat("i-3", None),
            T0 + 150 + INSTANCE_RETENTION_SECS,
        )
        .unwrap();
    let status = store
        .gateway_status("g1", T0 + 150 + INSTANCE_RETENTION_SECS)
        .unwrap();
    let ids: Vec<&str> = status
        .instances
        .iter()
        .map(|i| i.heartbeat.instance_id.as_str())
        .collect();
    assert_eq!(ids, ["i-2", "i-3"]);

    assert!(matches!(
        store.record_heartbeat("nope", &heartbeat("i", None), T0),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.record_heartbeat("g1", &heartbeat("", None), T0),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.gateway_status("nope", T0),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn subscription_actions() {
    let (_dir, mut store) = open();
    seed(&mut store);
    let before = store.subscription_secrets("s-a1").unwrap();
    let after = store
        .regenerate_subscription_key("s-a1", KeyType::Secondary, Precondition::NONE, "t", T0)
        .unwrap();
    assert_eq!(after.primary_key, before.primary_key);
    assert_ne!(after.secondary_key, before.secondary_key);
    assert_eq!(store.subscription_secrets("s-a1").unwrap(), after);
    let after2 = store
        .regenerate_subscription_key("s-a1", KeyType::Primary, Precondition::NONE, "t", T0)
        .unwrap();
    assert_ne!(after2.primary_key, before.primary_key);
    // The old keys are gone from what gateways get.
    let json = store.gateway_config("g1").unwrap().json;
    let text = String::from_utf8_lossy(&json);
    assert!(!text.contains(&before.primary_key) && !text.contains(&before.secondary_key));
    assert!(text.contains(&after2.primary_key));

    let e = store
        .set_subscription_state(
            "s-a1",
            SubscriptionState::Suspended,
            Precondition::NONE,
            "t",
            T0,
        )
        .unwrap();
    assert_eq!(e.body["state"], "suspended");
    assert!(e.body.get("primaryKey").is_none());
    assert_eq!(e.version, store.revision());
    let e = store
        .set_subscription_state(
            "s-a1",
            SubscriptionState::Active,
            Precondition::NONE,
            "t",
            T0,
        )
        .unwrap();
    assert_eq!(e.body["state"], "active");
    store
        .set_subscription_state(
            "s-a1",
            SubscriptionState::Cancelled,
            Precondition::NONE,
            "t",
            T0,
        )
        .unwrap();
    let snapshot = Snapshot::from_json(&store.gateway_config("g1").unwrap().json).unwrap();
    let sub = snapshot
        .subscriptions
        .iter()
        .find(|s| s.id == "s-a1")
        .unwrap();
    assert_eq!(sub.state, SubscriptionState::Cancelled);
    assert!(matches!(
        store.set_subscription_state(
            "s-a1",
            SubscriptionState::Active,
            Precondition::NONE,
            "t",
            T0
        ),
        Err(StoreError::Conflict(_))
    ));
    let actions: Vec<String> = store
        .audit(0, 5)
        .unwrap()
        .0
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions[..5],
        [
            "cancel",
            "activate",
            "suspend",
            "regenerate-primary-key",
            "regenerate-secondary-key"
        ]
    );
    assert!(matches!(
        store.subscription_secrets("nope"),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.regenerate_subscription_key("nope", KeyType::Primary, Precondition::NONE, "t", T0),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn reopening_keeps_everything() {
    let (dir, mut store) = open();
    seed(&mut store);
    store
        .put_policy(
            &PolicyScope::Global,
            GOOD_POLICY,
            Precondition::NONE,
            "t",
            T0,
        )
        .unwrap();
    store
        .put_policy(
            &PolicyScope::Operation("a1".into(), "get".into()),
            GOOD_POLICY,
            Precondition::NONE,
            "t",
            T0,
        )
        .unwrap();
    let token = store.ensure_admin_token(None, T0).unwrap().unwrap();
    let mut before = Vec::new();
    for kind in Kind::ALL {
        before.push(store.list(kind, 0, 1000).unwrap());
    }
    let revision = store.revision();
    let keys = store.gateway_keys("g1").unwrap();
    let secrets = store.subscription_secrets("s-all").unwrap();
    let config = store.gateway_config("g1").unwrap();
    let audit = store.audit(0, 1000).unwrap();
    let policy = store.get_policy(&PolicyScope::Global).unwrap();

    let mut store = reopen(&dir, store);
    assert_eq!(store.revision(), revision);
    for (kind, expected) in Kind::ALL.into_iter().zip(&before) {
        assert_eq!(&store.list(kind, 0, 1000).unwrap(), expected, "{kind:?}");
    }
    assert_eq!(store.gateway_keys("g1").unwrap(), keys);
    assert_eq!(store.subscription_secrets("s-all").unwrap(), secrets);
    assert_eq!(store.gateway_config("g1").unwrap(), config);
    assert_eq!(store.audit(0, 1000).unwrap(), audit);
    assert_eq!(store.get_policy(&PolicyScope::Global).unwrap(), policy);
    assert!(store.check_admin_token(&token));
    assert_eq!(store.ensure_admin_token(None, T0).unwrap(), None);
    assert!(store.check_admin_token(&token));
    // And it goes on from there.
    must_put(
        &mut store,
        Kind::Backend,
        "b2",
        json!({"url": "http://127.0.0.1:1/"}),
    );
    assert_eq!(store.revision(), revision + 1);
    assert_compiles(&store);
}

#[test]
fn migrations_are_idempotent() {
    let (dir, mut store) = open();
    assert_eq!(db::schema_version(&store.conn).unwrap(), MIGRATIONS_LEN);
    must_put(
        &mut store,
        Kind::Backend,
        "b",
        json!({"url": "http://127.0.0.1:1/"}),
    );
    db::migrate(&mut store.conn).unwrap();
    db::migrate(&mut store.conn).unwrap();
    assert_eq!(db::schema_version(&store.conn).unwrap(), MIGRATIONS_LEN);
    let store = reopen(&dir, store);
    let store = reopen(&dir, store);
    assert_eq!(db::schema_version(&store.conn).unwrap(), MIGRATIONS_LEN);
    assert_eq!(store.revision(), 1);
    assert!(store.get(Kind::Backend, "b").is_ok());
    drop(store);

    // A database from a newer build is refused rather than misread.
    let path = dir.path().join("data").join(db::FILE_NAME);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    match Store::open(&dir.path().join("data")) {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("99"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

const MIGRATIONS_LEN: i64 = db::MIGRATIONS.len() as i64;

#[test]
fn the_data_directory_is_created_and_durable_settings_are_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("a").join("b");
    let store = Store::open(&data).unwrap();
    assert!(data.join(db::FILE_NAME).is_file());
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = store
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "FULL");
    let fk: i64 = store
        .conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
}

#[test]
fn admin_tokens() {
    let (dir, mut store) = open();
    assert!(
        !store.check_admin_token(""),
        "nothing is accepted before setup"
    );
    let token = store
        .ensure_admin_token(None, T0)
        .unwrap()
        .expect("created");
    assert_eq!(token.len(), 64);
    assert!(store.check_admin_token(&token));
    assert!(!store.check_admin_token(&token[1..]));
    assert!(!store.check_admin_token(""));
    assert_eq!(store.ensure_admin_token(None, T0).unwrap(), None);
    assert!(store.check_admin_token(&token));
    // Only the digest is stored.
    let stored: Vec<u8> = store
        .conn
        .query_row("SELECT digest FROM admin_tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored.len(), 32);
    assert!(!String::from_utf8_lossy(&stored).contains(&token));

    // From the environment: that one only.
    let mut store = reopen(&dir, store);
    let env = "environment-token-0123";
    assert_eq!(store.ensure_admin_token(Some(env), T0).unwrap(), None);
    assert!(store.check_admin_token(env));
    assert!(!store.check_admin_token(&token));
    assert!(matches!(
        store.ensure_admin_token(Some("short"), T0),
        Err(StoreError::Invalid(_))
    ));
    // Without it again, the stored one is back.
    let mut store = reopen(&dir, store);
    assert_eq!(store.ensure_admin_token(None, T0).unwrap(), None);
    assert!(store.check_admin_token(&token));
    assert!(!store.check_admin_token(env));
}

#[test]
fn kinds_map_to_collections() {
    for kind in Kind::ALL {
        assert_eq!(Kind::from_collection(kind.collection()), Some(kind));
    }
    assert_eq!(
        Kind::from_collection("named-values"),
        Some(Kind::NamedValue)
    );
    assert_eq!(
        Kind::from_collection("policy-fragments"),
        Some(Kind::Fragment)
    );
    assert_eq!(Kind::from_collection("nope"), None);
}

#[test]
fn one_store_per_data_directory() {
    fn send<T: Send>() {}
    send::<Store>();
    let (dir, store) = open();
    let started = std::time::Instant::now();
    match Store::open(&dir.path().join("data")) {
        Err(StoreError::Io(e)) => assert!(e.to_string().contains("in use"), "{e}"),
        other => panic!("a second store on the same directory must be refused: {other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    drop(store);
    Store::open(&dir.path().join("data")).unwrap();
}

/// Set in the child process of [`a_killed_process_loses_no_accepted_write`].
const CRASH_CHILD: &str = "PORTCULLIS_STORE_CRASH_CHILD";

#[test]
fn a_killed_process_loses_no_accepted_write() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    if let Ok(dir) = std::env::var(CRASH_CHILD) {
        // The child: write until killed, reporting each accepted write (straight to
        // stdout, past the test harness's capture).
        let mut store = Store::open(Path::new(&dir)).unwrap();
        for i in 0..10_000 {
            let body = json!({"url": format!("http://127.0.0.1:{}/", 1000 + i)});
            must_put(&mut store, Kind::Backend, &format!("b{i}"), body);
            let mut out = std::io::stdout().lock();
            writeln!(out, "accepted {i}").unwrap();
            out.flush().unwrap();
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "store::tests::a_killed_process_loses_no_accepted_write",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD, &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut accepted = 0;
    let mut killed = false;
    // Reads to the end: lines the child wrote before it died still count.
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("accepted ") {
            accepted = n.parse::<u64>().unwrap() + 1;
            if accepted >= 40 && !killed {
                // SIGKILL: no destructor, no orderly close of the database.
                child.kill().unwrap();
                killed = true;
            }
        }
    }
    child.wait().unwrap();
    assert!(accepted >= 40, "the child stopped early");
    let store = Store::open(&data).unwrap();
    // Every acknowledged write is there; at most the one in flight may be too.
    assert!(
        store.revision() >= accepted,
        "{} < {accepted}",
        store.revision()
    );
    assert!(store.revision() <= accepted + 1);
    for i in 0..accepted {
        let b = store.get(Kind::Backend, &format!("b{i}")).unwrap();
        assert_eq!(b.body["url"], format!("http://127.0.0.1:{}/", 1000 + i));
    }
    let (_, total) = store.list(Kind::Backend, 0, 0).unwrap();
    assert_eq!(total as u64, store.revision());
    assert_eq!(store.audit(0, 0).unwrap().1 as u64, store.revision());
}

/// Write and fetch costs at 1,000 APIs × 10 operations with policies; run with
/// `cargo test --release -p portcullis-management -- --ignored --nocapture thousand`.
#[test]
#[ignore]
fn thousand_apis() {
    use std::time::Instant;
    let (_dir, mut store) = open();
    let api_policy = GOOD_POLICY;
    let op_policy = r#"<policies><inbound><base /><set-header name="X-Op" exists-action="override"><value>@(context.Request.Method)</value></set-header></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>"#;
    let started = Instant::now();
    let mut slowest = std::time::Duration::ZERO;
    let mut ids = Vec::new();
    for i in 0..1000 {
        let ops: Vec<Value> = (0..10)
            .map(|o| json!({"id": format!("op{o}"), "method": "GET", "urlTemplate": format!("/r{o}"), "policy": op_policy}))
            .collect();
        let body = json!({"path": format!("api{i}"), "serviceUrl": "http://127.0.0.1:9000/", "operations": ops, "policy": api_policy});
        let t = Instant::now();
        must_put(&mut store, Kind::Api, &format!("api{i}"), body);
        slowest = slowest.max(t.elapsed());
        ids.push(format!("api{i}"));
    }
    println!(
        "seeded 1,000 APIs in {:?}, slowest write {slowest:?}",
        started.elapsed()
    );
    let t = Instant::now();
    must_put(
        &mut store,
        Kind::Gateway,
        "g",
        json!({"location": {"name": "x"}, "apis": ids}),
    );
    println!("gateway write: {:?}", t.elapsed());
    let t = Instant::now();
    must_put(
        &mut store,
        Kind::Api,
        "api500",
        json!({"path": "api500", "serviceUrl": "http://127.0.0.1:9001/"}),
    );
    println!("API replace at 1,000: {:?}", t.elapsed());
    let t = Instant::now();
    must_put(&mut store, Kind::NamedValue, "nv", json!({"value": "x"}));
    println!("named value write (every document): {:?}", t.elapsed());
    let t = Instant::now();
    let config = store.gateway_config("g").unwrap();
    println!(
        "snapshot build: {:?}, {} bytes",
        t.elapsed(),
        config.json.len()
    );
    let t = Instant::now();
    store.gateway_config("g").unwrap();
    println!("snapshot cached: {:?}", t.elapsed());
    let t = Instant::now();
    assert_compiles(&store);
    println!("full compile: {:?}", t.elapsed());
}

/// The invariant every write keeps: the whole stored configuration, every document
/// included, compiles.
fn assert_compiles(store: &Store) {
    CompiledConfig::compile(store.state.full_snapshot()).unwrap();
}

#[test]
fn named_value_changes_recheck_every_document() {
    let (_dir, mut store) = open();
    must_put(&mut store, Kind::NamedValue, "limit", json!({"value": "5"}));
    must_put(&mut store, Kind::Api, "a", api_body("a"));
    must_put(&mut store, Kind::Api, "b", api_body("b"));
    let policy = GOOD_POLICY.replace(r#"calls="5""#, r#"calls="{{limit}}""#);
    let scope = PolicyScope::Operation("a".into(), "get".into());
    store
        .put_policy(&scope, &policy, Precondition::NONE, "t", T0)
        .unwrap();
    // Changing another API does not touch a's documents, and is accepted.
    must_put(&mut store, Kind::Api, "b", api_body("bb"));
    // A value that breaks a's operation policy is refused, naming it.
    match put(
        &mut store,
        Kind::NamedValue,
        "limit",
        json!({"value": "lots"}),
    ) {
        Err(StoreError::Config(e)) => assert!(e.to_string().contains("`get`"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.get(Kind::NamedValue, "limit").unwrap().body["value"],
        "5"
    );
    assert_compiles(&store);
}
