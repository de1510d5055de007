//! The Redis store answers as the in-process store does: the same operations,
//! run against both (a real `redis-server`, started here), give the same
//! decisions and the same remaining counts. Only `Retry-After` may differ
//! within a rate window's bucket: in process a window starts at its key's first
//! call, on Redis at the Unix epoch (so every replica agrees).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::redis::RedisServer;
use portcullis_core::config::store::{RedisUrl, StoreSettings, StoreUrl};
use portcullis_core::policy::counters::{CounterKey, QuotaAnchor, QuotaLimits};
use portcullis_core::policy::quota::{QuotaCounter, QuotaOutcome};
use portcullis_core::policy::rate_limit::{Limit, RateCounter, RateOutcome};
use portcullis_core::policy::store::{
    CachingType, StoreAnswer, StoreOp, StoreRequest, StoreResult,
};
use portcullis_driver::store::redis::client::Client;
use portcullis_driver::store::redis::{Leases, RedisStore};
use portcullis_driver::store::stats::StoreStats;
use portcullis_driver::store::InProcessStore;
use portcullis_driver::upstream::Connector;
use portcullis_runtime_tokio::TokioRuntime;

fn rate(key: &str, calls: u64, secs: u64) -> RateCounter {
    RateCounter {
        key: CounterKey::new("parity", key),
        limit: Limit {
            calls,
            period: Duration::from_secs(secs),
        },
    }
}

fn quota(key: &str, calls: Option<u64>, kb: Option<u64>, anchor: QuotaAnchor) -> QuotaCounter {
    QuotaCounter {
        key: CounterKey::new("parity-q", key),
        limits: QuotaLimits {
            calls,
            kilobytes: kb,
            period_secs: 3600,
            anchor,
        },
    }
}

fn request(op: StoreOp) -> StoreRequest {
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    StoreRequest {
        ops: std::iter::once(op).collect(),
        now: Instant::now(),
        now_unix,
    }
}

fn one(answer: StoreAnswer) -> StoreResult {
    match answer {
        StoreAnswer::Done(mut r) => r.remove(0),
        other => panic!("the store did not answer: {other:?}"),
    }
}

/// A decision without its `Retry-After`.
fn decision(r: &StoreResult) -> String {
    match r {
        StoreResult::Rate(RateOutcome::Allowed { remaining, total }) => {
            format!("allowed {remaining}/{total}")
        }
        StoreResult::Rate(RateOutcome::Limited { total, .. }) => format!("limited /{total}"),
        StoreResult::Quota(QuotaOutcome::Allowed {
            remaining_calls,
            remaining_bytes,
        }) => format!("allowed {remaining_calls:?} {remaining_bytes:?}"),
        StoreResult::Quota(QuotaOutcome::Exceeded { kind, .. }) => format!("exceeded {kind:?}"),
        StoreResult::Value(v) => format!("value {:?}", v.as_ref().map(|c| c.value.clone())),
        other => format!("{other:?}"),
    }
}

async fn redis_store(redis: &RedisServer) -> RedisStore<TokioRuntime> {
    let url = RedisUrl::parse(&redis.url()).expect("the harness's URL");
    let settings = StoreSettings {
        url: StoreUrl::Redis(url.clone()),
        timeout_ms: 2_000,
        ..StoreSettings::default()
    };
    let rt = TokioRuntime;
    let connector = Connector::new(rt, None).expect("connector");
    let client = Client::new(
        rt,
        connector,
        url,
        "parity".into(),
        Duration::from_millis(2_000),
    );
    let stats = Arc::new(StoreStats::new(Arc::new(Instant::now)));
    RedisStore::new(client, settings, "parity-gw", "i1".into(), stats)
}

#[tokio::test]
async fn redis_decides_as_the_in_process_store() {
    let redis = RedisServer::start();
    let remote = redis_store(&redis).await;
    let local = Arc::new(InProcessStore::default());
    let mut session = local.session();
    let mut leases = Leases::new();
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);

    let mut ops = Vec::new();
    // A single counter counting 2 calls at once, until it refuses.
    for _ in 0..4 {
        ops.push(StoreOp::Rate {
            counters: vec![rate("single", 5, 60)],
            add: Some(2),
        });
    }
    // Several counters (subscription, API): all or nothing; a check counts nothing.
    for _ in 0..4 {
        ops.push(StoreOp::Rate {
            counters: vec![rate("sub", 10, 60), rate("api", 3, 60)],
            add: Some(1),
        });
    }
    ops.push(StoreOp::Rate {
        counters: vec![rate("sub", 10, 60)],
        add: None,
    });
    // A deferred count, then a decision that sees it.
    ops.push(StoreOp::RateAdd {
        counters: vec![rate("deferred", 3, 60)],
        calls: 3,
    });
    ops.push(StoreOp::Rate {
        counters: vec![rate("deferred", 3, 60)],
        add: Some(1),
    });
    // Quotas: calls at first use, bandwidth from a fixed start, both exceeded.
    for _ in 0..3 {
        ops.push(StoreOp::Quota {
            counters: vec![quota("calls", Some(2), None, QuotaAnchor::FirstUse)],
            add: Some(1),
        });
    }
    let anchored = quota("bytes", None, Some(1), QuotaAnchor::At(now_unix - 10));
    ops.push(StoreOp::Quota {
        counters: vec![anchored.clone()],
        add: Some(1),
    });
    ops.push(StoreOp::QuotaAdd {
        counters: vec![anchored.clone()],
        calls: 0,
        bytes: 1_500,
    });
    ops.push(StoreOp::Quota {
        counters: vec![anchored],
        add: Some(1),
    });
    // Concurrency slots, given back.
    for _ in 0..3 {
        ops.push(StoreOp::Acquire {
            key: "slots".into(),
            max: 2,
        });
    }
    ops.push(StoreOp::Release {
        key: "slots".into(),
    });
    ops.push(StoreOp::Acquire {
        key: "slots".into(),
        max: 2,
    });
    // The cache: put, get, remove, get (prefer-external: Redis when there is one).
    let caching = CachingType::PreferExternal;
    ops.push(StoreOp::CachePut {
        key: "k".into(),
        value: Bytes::from_static(b"v"),
        ttl: Duration::from_secs(30),
        caching,
    });
    ops.push(StoreOp::CacheGet {
        key: "k".into(),
        caching,
    });
    ops.push(StoreOp::CacheRemove {
        key: "k".into(),
        caching,
    });
    ops.push(StoreOp::CacheGet {
        key: "k".into(),
        caching,
    });

    for (i, op) in ops.into_iter().enumerate() {
        let want = one(session.answer(&request(op.clone())));
        let got = one(remote.answer(&request(op.clone()), &mut leases).await);
        assert_eq!(decision(&got), decision(&want), "op {i}: {op:?}");
        if let (
            StoreResult::Rate(RateOutcome::Limited { retry_after: r, .. }),
            StoreResult::Rate(RateOutcome::Limited { .. }),
        ) = (&got, &want)
        {
            assert!(
                *r > Duration::ZERO && *r <= Duration::from_secs(60),
                "op {i}: Retry-After {r:?} within the period"
            );
        }
    }
}

#[tokio::test]
async fn a_cache_hit_carries_the_entry_s_remaining_life() {
    let redis = RedisServer::start();
    let remote = redis_store(&redis).await;
    let mut leases = Leases::new();
    let put = StoreOp::CachePut {
        key: "ttl".into(),
        value: Bytes::from_static(b"body"),
        ttl: Duration::from_secs(60),
        caching: CachingType::External,
    };
    one(remote.answer(&request(put), &mut leases).await);
    let get = StoreOp::CacheGet {
        key: "ttl".into(),
        caching: CachingType::External,
    };
    let StoreResult::Value(Some(hit)) = one(remote.answer(&request(get), &mut leases).await) else {
        panic!("a miss right after the put");
    };
    assert_eq!(hit.value, Bytes::from_static(b"body"));
    assert!(
        hit.ttl_left > Duration::from_secs(50) && hit.ttl_left <= Duration::from_secs(60),
        "{:?}",
        hit.ttl_left
    );
    // Under the gateway's prefix, in the cache's namespace.
    assert!(redis
        .keys()
        .iter()
        .any(|k| k.starts_with("portcullis:parity-gw:c:")));
}
