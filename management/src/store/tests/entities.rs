//! Store tests: CRUD, body checks, the revision and audit, preconditions, pagination, secrets.

use super::*;

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
fn websocket_apis_get_their_handshake_and_are_checked() {
    let (_dir, mut store) = open();
    let body =
        json!({"type": "websocket", "path": "chat", "serviceUrl": "wss://chat.example/feed"});
    must_put(&mut store, Kind::Api, "chat", body);
    let api = store.get(Kind::Api, "chat").unwrap();
    assert_eq!(api.body["type"], "websocket");
    assert_eq!(
        api.body["operations"],
        json!([{"id": "onHandshake", "displayName": "onHandshake", "description": "",
                "method": "GET", "urlTemplate": "/", "policy": null}])
    );
    // The snapshot carries the type to gateways.
    must_put(
        &mut store,
        Kind::Gateway,
        "g",
        json!({"location": {"name": "x"}, "apis": ["chat"]}),
    );
    let config = store.gateway_config("g").unwrap();
    let snapshot = Snapshot::from_json(&config.json).unwrap();
    assert!(snapshot
        .apis
        .iter()
        .any(|a| a.id == "chat" && a.api_type == portcullis_core::config::ApiType::Websocket));
    // An http backend for a websocket API, and a ws backend for an http one,
    // are refused with the reason.
    let wrong = json!({"type": "websocket", "path": "c2", "serviceUrl": "http://x/"});
    match put(&mut store, Kind::Api, "c2", wrong) {
        Err(StoreError::Config(e)) => assert!(e.to_string().contains("ws:// or wss://"), "{e}"),
        other => panic!("{other:?}"),
    }
    let wrong = json!({"path": "c3", "serviceUrl": "ws://x/",
                       "operations": [{"id": "g", "method": "GET", "urlTemplate": "/"}]});
    match put(&mut store, Kind::Api, "c3", wrong) {
        Err(StoreError::Config(e)) => assert!(e.to_string().contains("type websocket"), "{e}"),
        other => panic!("{other:?}"),
    }
}

/// An import's OpenAPI document in the gateway's snapshot (`Api::openapi`),
/// kept across a restart, gone with the API; a contract that does not compile
/// is refused.
#[test]
fn imported_documents_reach_the_snapshot() {
    let (dir, mut store) = open();
    let document = json!({
        "openapi": "3.0.3",
        "info": {"title": "Items", "version": "1"},
        "paths": {"/items": {"get": {"responses": {"200": {
            "description": "ok",
            "content": {"application/json": {"example": {"n": 1}}}
        }}}}}
    });
    let build = |current: Option<&Api>| -> Result<Api, StoreError> {
        let mut body = api_body("items");
        body["id"] = json!("items");
        let mut api: Api = serde_json::from_value(body).unwrap();
        if let Some(c) = current {
            api.path = c.path.clone();
        }
        // A validation policy needs the contract: a document that gives none
        // is then refused (without one, the API would just have no contract).
        api.policy = Some(
            r#"<policies><inbound><base /><validate-parameters specified-parameter-action="prevent" unspecified-parameter-action="ignore" /></inbound></policies>"#
                .to_owned(),
        );
        Ok(api)
    };
    store
        .import_api(
            "items",
            build,
            document.to_string(),
            Precondition::NONE,
            "tester",
            T0,
        )
        .unwrap();
    must_put(
        &mut store,
        Kind::Gateway,
        "g",
        json!({"location": {"name": "lab"}, "apis": ["items"]}),
    );
    let snapshot = |store: &Store| {
        let config = store.gateway_config("g").unwrap();
        Snapshot::from_json(&config.json).unwrap()
    };
    assert_eq!(snapshot(&store).apis[0].openapi.as_ref(), Some(&document));
    let mut store = reopen(&dir, store);
    assert_eq!(snapshot(&store).apis[0].openapi.as_ref(), Some(&document));
    // The stored API itself does not carry it (GET /apis/items is unchanged).
    let (api, _) = store.api_with_document("items").unwrap();
    assert!(api.openapi.is_none());

    let mut broken = document.clone();
    broken["paths"]["/items"]["get"]["parameters"] =
        json!([{"$ref": "#/components/parameters/Nope"}]);
    let err = store
        .import_api(
            "items",
            build,
            broken.to_string(),
            Precondition::NONE,
            "tester",
            T0,
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("/paths/~1items/get/parameters/0/$ref"),
        "{err}"
    );
    assert_eq!(snapshot(&store).apis[0].openapi.as_ref(), Some(&document));

    must_put(
        &mut store,
        Kind::Gateway,
        "g",
        json!({"location": {"name": "lab"}, "apis": []}),
    );
    store
        .delete(Kind::Api, "items", Precondition::NONE, "tester", T0)
        .unwrap();
    assert!(store.state.api_documents.is_empty());
}
