//! The store step's in-process answer (`LocalStore` via `execute`): a batch
//! answered in order. Here, not in core/src, because the tables take an
//! `Instant`, which only a clock reading makes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use portcullis_core::policy::counters::CounterKey;
use portcullis_core::policy::counters::QuotaAnchor;
use portcullis_core::policy::counters::QuotaLimits;
use portcullis_core::policy::quota::{QuotaCounter, QuotaOutcome};
use portcullis_core::policy::rate_limit::Limit;
use portcullis_core::policy::rate_limit::{RateCounter, RateOutcome};
use portcullis_core::policy::store::*;

fn rate(key: &str, calls: u64) -> RateCounter {
    RateCounter {
        key: CounterKey::new("t", key),
        limit: Limit {
            calls,
            period: Duration::from_secs(60),
        },
    }
}

#[test]
fn a_batch_is_answered_in_order() {
    let mut s = LocalStore::default();
    let now = Instant::now();
    let req = StoreRequest {
        ops: smallvec::smallvec![
            StoreOp::Rate {
                counters: vec![rate("a", 1)],
                add: Some(1),
            },
            StoreOp::Rate {
                counters: vec![rate("a", 1)],
                add: Some(1),
            },
            StoreOp::Acquire {
                key: "k".into(),
                max: 1,
            },
            StoreOp::Acquire {
                key: "k".into(),
                max: 1,
            },
            StoreOp::Release { key: "k".into() },
            StoreOp::CachePut {
                key: "c".into(),
                value: Bytes::from_static(b"v"),
                ttl: Duration::from_secs(5),
                caching: CachingType::Internal,
            },
            StoreOp::CacheGet {
                key: "c".into(),
                caching: CachingType::Internal,
            },
            StoreOp::Quota {
                counters: vec![QuotaCounter {
                    key: CounterKey::new("q", "a"),
                    limits: QuotaLimits {
                        calls: Some(1),
                        kilobytes: None,
                        period_secs: 60,
                        anchor: QuotaAnchor::FirstUse,
                    },
                }],
                add: Some(1),
            },
        ],
        now,
        now_unix: 1_000,
    };
    let StoreAnswer::Done(results) = s.answer(&req) else {
        panic!("a local store always answers");
    };
    assert_eq!(results.len(), req.ops.len());
    assert!(matches!(
        results[0],
        StoreResult::Rate(RateOutcome::Allowed { remaining: 0, .. })
    ));
    assert!(matches!(
        results[1],
        StoreResult::Rate(RateOutcome::Limited { .. })
    ));
    assert_eq!(results[2], StoreResult::Acquired(true));
    assert_eq!(results[3], StoreResult::Acquired(false));
    assert_eq!(results[4], StoreResult::Done);
    assert_eq!(
        results[6],
        StoreResult::Value(Some(Cached {
            value: Bytes::from_static(b"v"),
            ttl_left: Duration::from_secs(5),
        }))
    );
    assert!(matches!(
        results[7],
        StoreResult::Quota(QuotaOutcome::Allowed { .. })
    ));
    assert_eq!(s.slots.in_flight("k"), 0);
    assert!(req.ops[4].is_write() && !req.ops[2].is_write());
}
