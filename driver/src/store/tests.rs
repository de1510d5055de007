use std::time::Duration;

use bytes::Bytes;
use portcullis_core::policy::rate_limit::{Limit, RateCounter, RateOutcome};
use portcullis_core::policy::store::{Cached, CachingType};

use super::*;

fn rate(key: &str, calls: u64) -> StoreOp {
    StoreOp::Rate {
        counters: vec![RateCounter {
            key: CounterKey::new("t", key),
            limit: Limit {
                calls,
                period: Duration::from_secs(60),
            },
        }],
        add: Some(1),
    }
}

fn request(ops: Vec<StoreOp>, now: Instant) -> StoreRequest {
    StoreRequest {
        ops: ops.into(),
        now,
        now_unix: 1_000,
    }
}

fn results(answer: StoreAnswer) -> Vec<StoreResult> {
    match answer {
        StoreAnswer::Done(r) => r.into_vec(),
        StoreAnswer::Unavailable(why) | StoreAnswer::Refused(why) => panic!("unavailable: {why}"),
    }
}

#[test]
fn threads_share_the_counts_exactly() {
    let store = Arc::new(InProcessStore::new(3));
    let now = Instant::now();
    let allowed: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let store = Arc::clone(&store);
                s.spawn(move || {
                    let mut ok = 0;
                    for _ in 0..100 {
                        let r = results(store.answer(&request(vec![rate("shared", 150)], now)));
                        if matches!(r[0], StoreResult::Rate(RateOutcome::Allowed { .. })) {
                            ok += 1;
                        }
                    }
                    ok
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    assert_eq!(allowed, 150, "no call over the limit, none lost");
}

#[test]
fn the_key_bound_holds_across_shards() {
    for max in [1, 3, 16, 17, 1000] {
        let store = InProcessStore::with_limits(9, max, 1 << 20);
        let now = Instant::now();
        for i in 0..3 * max + 50 {
            store.answer(&request(vec![rate(&format!("k{i}"), 10)], now));
        }
        assert!(
            store.rate_keys() <= max,
            "bound {max}: {}",
            store.rate_keys()
        );
    }
}

#[test]
fn a_session_gives_back_what_it_holds_when_dropped() {
    let store = Arc::new(InProcessStore::default());
    let now = Instant::now();
    let acquire = |key: &str| StoreOp::Acquire {
        key: key.into(),
        max: 1,
    };
    let mut s1 = store.session();
    let r = results(s1.answer(&request(vec![acquire("a"), acquire("b")], now)));
    assert_eq!(
        r,
        [StoreResult::Acquired(true), StoreResult::Acquired(true)]
    );
    let mut s2 = store.session();
    let r = results(s2.answer(&request(vec![acquire("a")], now)));
    assert_eq!(
        r,
        [StoreResult::Acquired(false)],
        "a refused slot is not held"
    );
    assert_eq!(s2.held_slots(), 0);
    s1.answer(&request(vec![StoreOp::Release { key: "a".into() }], now));
    assert_eq!(s1.held_slots(), 1);
    drop(s1);
    assert_eq!(store.slot_keys(), 0, "the connection's last slot went back");
    let r = results(s2.answer(&request(vec![acquire("b")], now)));
    assert_eq!(r, [StoreResult::Acquired(true)]);
}

#[test]
fn cache_and_key_sets_round_trip() {
    let store = InProcessStore::default();
    let now = Instant::now();
    let put = StoreOp::CachePut {
        key: "k".into(),
        value: Bytes::from_static(b"v"),
        ttl: Duration::from_secs(1),
        caching: CachingType::Internal,
    };
    let get = StoreOp::CacheGet {
        key: "k".into(),
        caching: CachingType::Internal,
    };
    let r = results(store.answer(&request(vec![put, get.clone()], now)));
    let hit = Cached {
        value: Bytes::from_static(b"v"),
        ttl_left: Duration::from_secs(1),
    };
    assert_eq!(r[1], StoreResult::Value(Some(hit)));
    let later = now + Duration::from_secs(1);
    let r = results(store.answer(&request(vec![get], later)));
    assert_eq!(r[0], StoreResult::Value(None), "expired at its TTL");
    assert_eq!(store.cache_bytes(), 0);

    let jwks = br#"{"keys":[{"kty":"oct","kid":"k1","k":"c2VjcmV0"}]}"#;
    let before = store.key_sets();
    assert!(before.get("https://idp/.well-known").is_none());
    let n = store.install_key_set("https://idp/.well-known", None, jwks);
    assert!(n.is_ok());
    assert!(store.key_sets().get("https://idp/.well-known").is_some());
    assert!(
        before.get("https://idp/.well-known").is_none(),
        "a snapshot never changes"
    );
    let urls = vec!["https://idp/.well-known".to_string()];
    assert_eq!(store.claim_key_refresh(&urls, now), urls);
    assert!(store.claim_key_refresh(&urls, now).is_empty(), "throttled");
}

#[test]
fn a_release_of_a_slot_not_held_here_frees_nothing() {
    let store = Arc::new(InProcessStore::default());
    let now = Instant::now();
    let acquire = || StoreOp::Acquire {
        key: "k".into(),
        max: 1,
    };
    let mut a = store.session();
    let mut b = store.session();
    let mut c = store.session();
    let r = results(a.answer(&request(vec![acquire()], now)));
    assert_eq!(r[0], StoreResult::Acquired(true));
    // B never took the slot (say it took it in a remote store since turned off).
    let r = results(b.answer(&request(vec![StoreOp::Release { key: "k".into() }], now)));
    assert_eq!(r[0], StoreResult::Done);
    let r = results(c.answer(&request(vec![acquire()], now)));
    assert_eq!(
        r[0],
        StoreResult::Acquired(false),
        "A still holds the only slot"
    );
    drop(a);
    let r = results(c.answer(&request(vec![acquire()], now)));
    assert_eq!(r[0], StoreResult::Acquired(true));
}
