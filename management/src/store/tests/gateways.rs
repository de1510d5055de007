//! Store tests: gateways: their snapshot, tokens, heartbeats and status; subscription actions.

use super::*;

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
