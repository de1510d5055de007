//! Store tests: policy documents: refused ones, every scope, references, named values.

use super::*;

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
