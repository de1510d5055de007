use std::time::Duration;

use proptest::prelude::*;

use super::*;

const P10: Duration = Duration::from_secs(10);

fn key(s: &str) -> CounterKey {
    CounterKey::new("test", s)
}

fn at(t0: Duration, ms: u64) -> Duration {
    t0 + Duration::from_millis(ms)
}

const P60: Duration = Duration::from_secs(60);

fn limited(d: RateDecision) -> Duration {
    match d {
        RateDecision::Limited { retry_after } => retry_after,
        d => panic!("expected Limited, got {d:?}"),
    }
}

#[test]
fn allows_up_to_the_limit_then_limits() {
    let mut rl = RateLimiter::<Duration>::new(100, 1);
    let t0 = Duration::from_secs(1_000);
    for i in 0..10 {
        assert_eq!(
            rl.check_and_add(&key("a"), 10, P10, 1, t0),
            RateDecision::Allowed { remaining: 9 - i }
        );
    }
    // All ten are in the first bucket (from t0): it slides out one period later.
    assert_eq!(limited(rl.check_and_add(&key("a"), 10, P10, 1, t0)), P10);
    // Another key is independent.
    assert!(matches!(
        rl.check_and_add(&key("b"), 10, P10, 1, t0),
        RateDecision::Allowed { remaining: 9 }
    ));
}

#[test]
fn a_burst_never_announces_more_than_the_period() {
    // <rate-limit calls="5" renewal-period="60">: five calls at t=0, a sixth at
    // t=1 s. The two-window approximation said 72 s (and refused at 60 s).
    let mut rl = RateLimiter::<Duration>::new(100, 1);
    let t0 = Duration::from_secs(1_000);
    for _ in 0..5 {
        assert!(matches!(
            rl.check_and_add(&key("a"), 5, P60, 1, t0),
            RateDecision::Allowed { .. }
        ));
    }
    let wait = limited(rl.check_and_add(&key("a"), 5, P60, 1, at(t0, 1_000)));
    assert_eq!(wait, Duration::from_secs(59));
    assert_eq!(retry_after_secs(wait), 59);
    // Just before, still refused; at the announced time, admitted.
    limited(rl.check(&key("a"), 5, P60, at(t0, 59_999)));
    assert_eq!(
        rl.check_and_add(&key("a"), 5, P60, 1, at(t0, 60_000)),
        RateDecision::Allowed { remaining: 4 }
    );
}

#[test]
fn sliding_window_across_buckets() {
    // 60 s in 12 buckets of 5 s from the first call at t0.
    let mut rl = RateLimiter::<Duration>::new(100, 1);
    let t0 = Duration::from_secs(1_000);
    rl.add(&key("a"), 3, P60, t0);
    rl.add(&key("a"), 2, P60, at(t0, 20_000));
    // At 30 s the window holds all five; one more needs the first bucket (3
    // calls) gone, which happens at 60 s.
    assert_eq!(
        limited(rl.check(&key("a"), 5, P60, at(t0, 30_000))),
        Duration::from_secs(30)
    );
    // Four more need both buckets gone: the second (20..25 s) leaves at 80 s.
    assert_eq!(
        limited(rl.check_cost(&key("a"), 5, P60, 4, at(t0, 30_000))),
        Duration::from_secs(50)
    );
    // The last moment of the first bucket's life: a millisecond to go.
    assert_eq!(
        limited(rl.check(&key("a"), 5, P60, at(t0, 59_999))),
        Duration::from_millis(1)
    );
    assert_eq!(
        rl.check(&key("a"), 5, P60, at(t0, 60_000)),
        RateDecision::Allowed { remaining: 3 }
    );
    assert_eq!(
        limited(rl.check_cost(&key("a"), 5, P60, 4, at(t0, 60_000))),
        Duration::from_secs(20)
    );
    // Calls late in a bucket count from the bucket's start: 2 calls at 62 s
    // are in the 60..65 s bucket and leave at 120 s.
    for _ in 0..2 {
        assert!(matches!(
            rl.check_and_add(&key("a"), 5, P60, 1, at(t0, 62_000)),
            RateDecision::Allowed { .. }
        ));
    }
    assert_eq!(
        rl.check(&key("a"), 5, P60, at(t0, 62_000)),
        RateDecision::Allowed { remaining: 1 }
    );
    assert_eq!(
        rl.check(&key("a"), 5, P60, at(t0, 80_000)),
        RateDecision::Allowed { remaining: 3 }
    );
    assert_eq!(
        limited(rl.check_cost(&key("a"), 5, P60, 4, at(t0, 80_000))),
        Duration::from_secs(40)
    );
    // Two periods later everything has slid out.
    assert_eq!(
        rl.check(&key("a"), 5, P60, at(t0, 200_000)),
        RateDecision::Allowed { remaining: 5 }
    );
    // A clock reading older than the newest bucket is not a panic, and counts
    // as in that bucket.
    rl.add(&key("a"), 5, P60, at(t0, 200_000));
    let wait = limited(rl.check(&key("a"), 5, P60, t0));
    assert!(wait <= P60, "{wait:?}");
}

#[test]
fn buckets_of_periods_not_divisible_by_the_bucket_count() {
    // 10 s in 12 buckets: edges at ceil(k * 10 s / 12), e.g. 833_333_334 ns.
    let mut rl = RateLimiter::<Duration>::new(100, 1);
    let t0 = Duration::from_secs(1_000);
    rl.add(&key("a"), 10, P10, t0);
    assert_eq!(
        limited(rl.check(&key("a"), 10, P10, at(t0, 5_000))),
        Duration::from_secs(5)
    );
    rl.add(&key("a"), 1, P10, at(t0, 5_000));
    // The 11th call sits in bucket 6 (5_000_000_000 ns onwards); once bucket 0
    // leaves at 10 s it still fills the window for a cost of 10 until bucket 6
    // leaves at 15 s.
    assert_eq!(
        limited(rl.check_cost(&key("a"), 10, P10, 10, at(t0, 9_000))),
        Duration::from_secs(6)
    );
    // Bucket 1 ends at ceil(10 s / 12) = 833_333_334 ns; bucket 13 at 10 s + that.
    rl.add(&key("b"), 1, P10, t0);
    rl.add(&key("b"), 1, P10, t0 + Duration::from_nanos(833_333_334));
    let wait = limited(rl.check_cost(&key("b"), 2, P10, 2, at(t0, 10_000)));
    assert_eq!(wait, Duration::from_nanos(833_333_334));
}

#[test]
fn check_does_not_count_and_costs_are_honoured() {
    let mut rl = RateLimiter::<Duration>::new(100, 1);
    let t0 = Duration::from_secs(1_000);
    for _ in 0..20 {
        assert_eq!(
            rl.check(&key("a"), 3, P10, t0),
            RateDecision::Allowed { remaining: 3 }
        );
    }
    assert!(rl.is_empty(), "checks alone store nothing");
    assert_eq!(
        rl.check_and_add(&key("a"), 3, P10, 2, t0),
        RateDecision::Allowed { remaining: 1 }
    );
    assert!(matches!(
        rl.check_and_add(&key("a"), 3, P10, 2, t0),
        RateDecision::Limited { .. }
    ));
    assert_eq!(
        rl.check_and_add(&key("a"), 3, P10, 1, t0),
        RateDecision::Allowed { remaining: 0 }
    );
    // A cost above the limit never fits: the answer is the whole period.
    assert_eq!(limited(rl.check_cost(&key("z"), 3, P10, 4, t0)), P10);
    assert_eq!(limited(rl.check_cost(&key("a"), 3, P10, 4, t0)), P10);
    // A zero limit limits everything.
    assert_eq!(limited(rl.check(&key("y"), 0, P10, t0)), P10);
}

#[test]
fn huge_counts_saturate_conservatively() {
    let mut rl = RateLimiter::<Duration>::new(100, 1);
    let t0 = Duration::from_secs(1_000);
    rl.add(&key("a"), u64::MAX, P10, t0);
    rl.add(&key("a"), 7, P10, t0);
    // A saturated bucket outweighs any limit, until it slides out.
    assert_eq!(limited(rl.check(&key("a"), u64::MAX, P10, t0)), P10);
    assert_eq!(
        limited(rl.check(&key("a"), u64::MAX, P10, at(t0, 4_000))),
        Duration::from_secs(6)
    );
    assert_eq!(
        rl.check(&key("a"), u64::MAX, P10, at(t0, 10_000)),
        RateDecision::Allowed {
            remaining: u64::MAX
        }
    );
    // Below saturation, counts are exact.
    rl.add(&key("b"), u64::from(u32::MAX) - 1, P10, t0);
    assert_eq!(
        rl.check(&key("b"), u64::MAX, P10, t0),
        RateDecision::Allowed {
            remaining: u64::MAX - (u64::from(u32::MAX) - 1)
        }
    );
}

#[test]
fn a_new_period_keeps_the_counts() {
    let mut rl = RateLimiter::<Duration>::new(100, 1);
    let t0 = Duration::from_secs(1_000);
    rl.add(&key("a"), 2, P60, t0);
    rl.add(&key("a"), 3, P60, at(t0, 30_000));
    // The policy now says 12 s: each bucket keeps its age in buckets (the 2
    // calls 6 buckets back, the 3 in the newest), buckets are now 1 s from 31 s.
    assert_eq!(
        rl.check(&key("a"), 5, Duration::from_secs(12), at(t0, 31_000)),
        RateDecision::Limited {
            retry_after: Duration::from_secs(6)
        }
    );
    assert_eq!(
        rl.check(&key("a"), 5, Duration::from_secs(12), at(t0, 37_000)),
        RateDecision::Allowed { remaining: 2 }
    );
    assert_eq!(
        rl.check(&key("a"), 5, Duration::from_secs(12), at(t0, 43_000)),
        RateDecision::Allowed { remaining: 5 }
    );
}

#[test]
fn memory_per_key_is_small() {
    assert_eq!(std::mem::size_of::<Buckets<std::time::Instant>>(), 88);
    assert_eq!(std::mem::size_of::<Buckets<Duration>>(), 88);
}

/// One step of a random call sequence.
#[derive(Debug, Clone)]
struct Step {
    /// Time since the previous step, in thousandths of the period.
    advance: u32,
    /// Extra nanoseconds, to land off bucket edges.
    jitter: u32,
    cost: u64,
    /// After a refusal, wait the announced time and check again.
    probe: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop_oneof![3 => Just(0u32), 2 => 0u32..200, 1 => 0u32..2_500],
        prop_oneof![Just(0u32), any::<u32>()],
        0u64..5,
        any::<bool>(),
    )
        .prop_map(|(advance, jitter, cost, probe)| Step {
            advance,
            jitter,
            cost,
            probe,
        })
}

fn period() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(P10),
        Just(P60),
        Just(Duration::from_secs(1)),
        Just(Duration::from_secs(7)),
        (1_000_000u64..=300_000_000_000).prop_map(Duration::from_nanos),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// For random call sequences: (1) at most `limit` admitted calls in any
    /// `BUCKETS` consecutive buckets (aligned to the first admitted call);
    /// (2) after `Limited { retry_after }`, a check `retry_after` later is
    /// `Allowed` (and one nanosecond earlier still `Limited`: the wait is
    /// exact); (3) `retry_after <= period`. Admissions also match a model.
    #[test]
    fn bucketed_window_bounds_calls_and_retry_after_is_honest(
        period in period(),
        limit in 0u64..8,
        steps in prop::collection::vec(step(), 1..120),
    ) {
        let mut rl = RateLimiter::<Duration>::new(16, 7);
        let k = key("k");
        let p = period.as_nanos();
        let n = BUCKETS as u128;
        let mut now = Duration::from_secs(1_000);
        let mut origin: Option<Duration> = None;
        // (bucket, cost) of admitted calls.
        let mut admitted: Vec<(u128, u64)> = Vec::new();
        let bucket = |origin: Duration, t: Duration| (t - origin).as_nanos() * n / p;
        let in_window = |admitted: &[(u128, u64)], b: u128| -> u64 {
            admitted
                .iter()
                .filter(|(a, _)| *a <= b && *a + n > b)
                .map(|(_, c)| c)
                .sum()
        };
        for s in steps {
            now += period * s.advance / 1_000 + Duration::from_nanos(u64::from(s.jitter) % 1_000_000);
            let used = origin.map_or(0, |o| in_window(&admitted, bucket(o, now)));
            match rl.check_and_add(&k, limit, period, s.cost, now) {
                RateDecision::Allowed { remaining } => {
                    prop_assert!(used + s.cost <= limit, "admitted past the model");
                    prop_assert_eq!(remaining, limit - used - s.cost);
                    if s.cost > 0 {
                        let o = *origin.get_or_insert(now);
                        admitted.push((bucket(o, now), s.cost));
                    }
                }
                RateDecision::Limited { retry_after } => {
                    prop_assert!(used + s.cost > limit, "refused within the model");
                    prop_assert!(retry_after <= period, "{:?} > {:?}", retry_after, period);
                    if s.cost > limit {
                        prop_assert_eq!(retry_after, period);
                    } else if s.probe {
                        prop_assert!(retry_after > Duration::ZERO);
                        let before = now + retry_after - Duration::from_nanos(1);
                        let is_limited = matches!(
                            rl.check_cost(&k, limit, period, s.cost, before),
                            RateDecision::Limited { .. }
                        );
                        prop_assert!(is_limited, "admitted before the announced time");
                        now += retry_after;
                        let d = rl.check_cost(&k, limit, period, s.cost, now);
                        let is_allowed = matches!(d, RateDecision::Allowed { .. });
                        prop_assert!(is_allowed, "{:?} after waiting {:?}", d, retry_after);
                    }
                }
            }
        }
        // (1) every run of BUCKETS buckets ending at an admission holds <= limit
        // (any other run is within one of those).
        for &(b, _) in &admitted {
            prop_assert!(in_window(&admitted, b) <= limit);
        }
    }
}

#[test]
fn a_flood_of_keys_never_exceeds_the_bound() {
    let mut rl = RateLimiter::<Duration>::new(1_000, 42);
    assert_eq!(rl.max_keys(), 1_000);
    let t0 = Duration::from_secs(1_000);
    for i in 0..50_000u32 {
        rl.add(&key(&i.to_string()), 1, P10, at(t0, u64::from(i % 7)));
        if i % 97 == 0 {
            assert!(rl.len() <= 1_000, "{} keys after {i}", rl.len());
        }
    }
    assert!(rl.len() <= 1_000);
    let mut qs = QuotaStore::new(500, 42);
    for i in 0..20_000i64 {
        let limits = QuotaLimits {
            calls: Some(10),
            kilobytes: None,
            period_secs: 3600,
            anchor: QuotaAnchor::FirstUse,
        };
        qs.check_and_add_calls(&key(&i.to_string()), &limits, 1, 1_000 + i % 3);
        qs.add_bytes(&key(&i.to_string()), &limits, 10, 1_000);
        assert!(qs.len() <= 500);
    }
    // Tiny bounds use fewer shards but still hold.
    let mut tiny = RateLimiter::<Duration>::new(3, 0);
    for i in 0..100 {
        tiny.add(&key(&i.to_string()), 1, P10, t0);
        assert!(tiny.len() <= 3);
    }
}

#[test]
fn an_active_key_survives_a_flood() {
    let mut rl = RateLimiter::<Duration>::new(64, 9);
    let t0 = Duration::from_secs(1_000);
    let active = key("active");
    for i in 0..5_000u32 {
        rl.add(&key(&format!("flood-{i}")), 1, P10, t0);
        // The active client calls between every flood key.
        if i % 2 == 0 {
            rl.add(&active, 1, P10, t0);
        }
    }
    assert_eq!(
        rl.check(&active, 10_000, P10, t0),
        RateDecision::Allowed {
            remaining: 10_000 - 2_500
        }
    );
}

#[test]
fn expired_entries_are_swept() {
    let mut rl = RateLimiter::<Duration>::new(10_000, 3);
    let t0 = Duration::from_secs(1_000);
    let p = Duration::from_secs(1);
    for i in 0..1_000 {
        rl.add(&key(&format!("old-{i}")), 1, p, t0);
    }
    assert_eq!(rl.len(), 1_000);
    // New inserts after the old windows passed sweep old ones as they go.
    for i in 0..1_000 {
        rl.add(&key(&format!("new-{i}")), 1, p, at(t0, 3_000));
    }
    assert!(rl.len() < 1_500, "{}", rl.len());
    let purged = rl.purge_expired(at(t0, 3_000));
    assert_eq!(rl.len(), 1_000, "purged {purged}");
    assert_eq!(rl.purge_expired(at(t0, 10_000)), 1_000);
    assert!(rl.is_empty());
}

fn calls(n: u64, period: u64, anchor: QuotaAnchor) -> QuotaLimits {
    QuotaLimits {
        calls: Some(n),
        kilobytes: None,
        period_secs: period,
        anchor,
    }
}

#[test]
fn quota_calls_in_fixed_windows_from_first_use() {
    let mut qs = QuotaStore::default();
    let l = calls(3, 300, QuotaAnchor::FirstUse);
    let k = key("sub");
    for i in 0..3 {
        assert_eq!(
            qs.check_and_add_calls(&k, &l, 1, 1_000 + i),
            QuotaDecision::Allowed {
                remaining_calls: Some(2 - i as u64),
                remaining_bytes: None
            }
        );
    }
    assert_eq!(
        qs.check(&k, &l, 1_100),
        QuotaDecision::Exceeded {
            kind: QuotaKind::Calls,
            retry_after: Some(Duration::from_secs(200))
        }
    );
    // The last second of the period is still in it.
    assert!(matches!(
        qs.check(&k, &l, 1_299),
        QuotaDecision::Exceeded { .. }
    ));
    // The next period starts 300 s after first use.
    assert!(matches!(
        qs.check_and_add_calls(&k, &l, 1, 1_300),
        QuotaDecision::Allowed {
            remaining_calls: Some(2),
            ..
        }
    ));
    // Periods keep their phase: 1_300 + 300 = 1_600 is the next boundary.
    qs.add_calls(&k, &l, 5, 1_599);
    assert_eq!(
        qs.check(&k, &l, 1_599),
        QuotaDecision::Exceeded {
            kind: QuotaKind::Calls,
            retry_after: Some(Duration::from_secs(1))
        }
    );
    assert!(matches!(
        qs.check(&k, &l, 1_600),
        QuotaDecision::Allowed { .. }
    ));
}

#[test]
fn quota_aligned_to_an_anchor() {
    // APIM: renewal-period 600 aligned to midnight, exceeded at 00:41:36,
    // says Retry-After 504 ("00:08:24").
    let mut qs = QuotaStore::default();
    let l = calls(1, 600, QuotaAnchor::At(0));
    let k = key("ip");
    assert!(matches!(
        qs.check_and_add_calls(&k, &l, 1, 2_400),
        QuotaDecision::Allowed { .. }
    ));
    match qs.check(&k, &l, 2_496) {
        QuotaDecision::Exceeded {
            kind: QuotaKind::Calls,
            retry_after: Some(d),
        } => {
            assert_eq!(d, Duration::from_secs(504));
            assert_eq!(format_timespan(d), "00:08:24");
        }
        d => panic!("{d:?}"),
    }
    // Before the anchor, the first period is the one starting at it.
    let later = calls(1, 600, QuotaAnchor::At(10_000));
    assert!(matches!(
        qs.check(&key("x"), &later, 5_000),
        QuotaDecision::Allowed { .. }
    ));
}

#[test]
fn quota_bandwidth_and_infinite_period() {
    let mut qs = QuotaStore::default();
    let l = QuotaLimits {
        calls: Some(100),
        kilobytes: Some(1),
        period_secs: 0,
        anchor: QuotaAnchor::FirstUse,
    };
    let k = key("bw");
    qs.add_calls(&k, &l, 1, 0);
    qs.add_bytes(&k, &l, 1_000, 0);
    assert_eq!(
        qs.check(&k, &l, 0),
        QuotaDecision::Allowed {
            remaining_calls: Some(99),
            remaining_bytes: Some(24)
        }
    );
    qs.add_bytes(&k, &l, 24, 10);
    assert_eq!(
        qs.check(&k, &l, 1_000_000),
        QuotaDecision::Exceeded {
            kind: QuotaKind::Bandwidth,
            retry_after: None
        }
    );
    assert_eq!(
        qs.purge_expired(i64::MAX),
        0,
        "infinite periods never expire"
    );
}

#[test]
fn counter_keys_do_not_alias() {
    assert_ne!(
        CounterKey::from_parts(&["a\0b", "c"]),
        CounterKey::from_parts(&["a", "b\0c"])
    );
    assert_ne!(CounterKey::new("s", "k"), CounterKey::new("sk", ""));
    assert_eq!(CounterKey::new("s", "k"), CounterKey::new("s", "k"));
}

#[test]
fn timespans_and_retry_seconds() {
    assert_eq!(format_timespan(Duration::from_secs(0)), "00:00:00");
    assert_eq!(format_timespan(Duration::from_secs(3_661)), "01:01:01");
    assert_eq!(format_timespan(Duration::from_secs(90_061)), "1.01:01:01");
    assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
    assert_eq!(retry_after_secs(Duration::from_millis(5_001)), 6);
    assert_eq!(retry_after_secs(Duration::ZERO), 1);
}
