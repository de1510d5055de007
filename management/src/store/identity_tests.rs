//! The store's identity and the content identity of gateway snapshots.

use serde_json::json;

use super::{Kind, Precondition, Store};
use portcullis_core::config::Snapshot;
use portcullis_core::sync::content::digest_of;

fn put_backend(store: &mut Store, url: &str) {
    store
        .put(
            Kind::Backend,
            "be",
            json!({ "url": url }),
            Precondition::NONE,
            "tester",
            1,
        )
        .expect("backend");
}

fn gateway(store: &mut Store) {
    store
        .put(
            Kind::Gateway,
            "g1",
            json!({"description": "edge", "location": {"name": "Berlin", "countryOrRegion": "DE"}, "apis": []}),
            Precondition::NONE,
            "tester",
            1,
        )
        .expect("gateway");
}

#[test]
fn the_identity_is_made_once_and_kept_across_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let store = Store::open(&data).expect("open");
    let id = store.store_id().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    drop(store);
    let mut store = Store::open(&data).expect("reopen");
    assert_eq!(store.store_id(), id);
    let new = store.new_store_identity().expect("new identity");
    assert_ne!(new, id);
    drop(store);
    assert_eq!(Store::open(&data).expect("reopen").store_id(), new);
    let other = tempfile::tempdir().expect("tempdir");
    assert_ne!(Store::open(other.path()).expect("open").store_id(), new);
}

#[test]
fn snapshots_carry_the_store_and_a_digest_of_their_content() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path()).expect("open");
    gateway(&mut store);
    put_backend(&mut store, "http://127.0.0.1:9001/");
    let config = store.gateway_config("g1").expect("config");
    let snapshot = Snapshot::from_json(&config.json).expect("snapshot");
    assert_eq!(snapshot.store_id.as_deref(), Some(store.store_id()));
    assert_eq!(snapshot.digest, config.id.digest);
    assert_eq!(
        digest_of(&snapshot),
        config.id.digest.clone().expect("digest")
    );
    assert_eq!(
        config.etag(),
        format!(
            "\"{}-{}\"",
            config.revision,
            snapshot.digest.expect("digest")
        )
    );

    // Same revision, other content (as after a restore): another ETag.
    let revision = config.revision;
    let other_dir = tempfile::tempdir().expect("tempdir");
    let mut other = Store::open(other_dir.path()).expect("open");
    gateway(&mut other);
    put_backend(&mut other, "http://127.0.0.1:9002/");
    let other_config = other.gateway_config("g1").expect("config");
    assert_eq!(other_config.revision, revision);
    assert_ne!(other_config.etag(), config.etag());

    // A new identity changes the digest even with the content unchanged.
    let before = store.gateway_config("g1").expect("config");
    store.new_store_identity().expect("new identity");
    let after = store.gateway_config("g1").expect("config");
    assert_eq!(after.revision, before.revision);
    assert_ne!(after.etag(), before.etag());
}
