//! When `KeySets` lets an unknown key trigger a key-set refetch: at most
//! once per five minutes per configuration URL. Here, not in core/src,
//! because it needs an `Instant`, which only a clock reading makes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use portcullis_core::policy::jwt::{KeySets, UNKNOWN_KEY_REFRESH_INTERVAL};

#[test]
fn unknown_keys_refresh_at_most_every_five_minutes_per_url() {
    let mut ks = KeySets::new();
    let t0 = std::time::Instant::now();
    let (a, b) = ("https://a/c".to_owned(), "https://b/c".to_owned());
    // Not loaded yet: the refresher's fetch at start is what loads them.
    assert!(ks.claim_refresh(&[a.clone(), b.clone()], t0).is_empty());
    for url in [&a, &b] {
        ks.install(url, None, br#"{"keys":[]}"#).expect("install");
    }
    assert_eq!(
        ks.claim_refresh(&[a.clone(), a.clone()], t0),
        vec![a.clone()]
    );
    assert!(ks.claim_refresh(std::slice::from_ref(&a), t0).is_empty());
    assert_eq!(
        ks.claim_refresh(&[a.clone(), b.clone()], t0 + Duration::from_secs(299)),
        vec![b.clone()]
    );
    assert_eq!(
        ks.claim_refresh(&[a.clone(), b.clone()], t0 + UNKNOWN_KEY_REFRESH_INTERVAL),
        vec![a.clone()]
    );
}
