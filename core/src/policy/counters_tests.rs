use std::time::Duration;

use super::*;

const P10: Duration = Duration::from_secs(10);

fn key(s: &str) -> CounterKey {
    CounterKey::new("test", s)
}

fn at(t0: Duration, ms: u64) -> Duration {
    t0 + Duration::from_millis(ms)
}

#[test]
fn allows_up_to_the_limit_then_limits() {
    let rl = RateLimiter::<Duration>::new(100, 1);
    let t0 = Duration::from_secs(1_000);
    for i in 0..10 {
        assert_eq!(
            rl.check_and_add(&key("a"), 10, P10, 1, t0),
            RateDecision::Allowed { remaining: 9 - i }
        );
    }
    match rl.check_and_add(&key("a"), 10, P10, 1, t0) {
        RateDecision::Limited { retry_after } => {
            // Window started at t0: wait 10 s for the roll, then 1 s for a tenth to slide out.
            assert_eq!(retry_after, Duration::from_secs(11));
        }
        d => panic!("{d:?}"),
    }
    // Another key is independent.
    assert!(matches!(
        rl.check_and_add(&key("b"), 10, P10, 1, t0),
        RateDecision::Allowed { remaining: 9 }
    ));
}

#[test]
fn sliding_window_across_boundaries() {
    let rl = RateLimiter::<Duration>::new(100, 1);
    let t0 = Duration::from_secs(1_000);
    for _ in 0..10 {
        rl.add(&key("a"), 1, P10, t0);
    }
    // Mid-window: the current window is full.
    match rl.check(&key("a"), 10, P10, at(t0, 5_000)) {
        RateDecision::Limited { retry_after } => assert_eq!(retry_after, Duration::from_secs(6)),
        d => panic!("{d:?}"),
    }
    // At the boundary the previous window still counts fully.
    match rl.check(&key("a"), 10, P10, at(t0, 10_000)) {
        RateDecision::Limited { retry_after } => assert_eq!(retry_after, Duration::from_secs(1)),
        d => panic!("{d:?}"),
    }
    // Just before the retry time: 10 * 0.91 = 9.1 > 9.
    assert!(matches!(
        rl.check(&key("a"), 10, P10, at(t0, 10_900)),
        RateDecision::Limited { .. }
    ));
    // At retry time: 10 * 0.9 = 9, one more fits.
    assert_eq!(
        rl.check(&key("a"), 10, P10, at(t0, 11_000)),
        RateDecision::Allowed { remaining: 1 }
    );
    // Half-way through the next window half the old calls remain.
    assert_eq!(
        rl.check(&key("a"), 10, P10, at(t0, 15_000)),
        RateDecision::Allowed { remaining: 5 }
    );
    for _ in 0..5 {
        assert!(matches!(
            rl.check_and_add(&key("a"), 10, P10, 1, at(t0, 15_000)),
            RateDecision::Allowed { .. }
        ));
    }
    assert!(matches!(
        rl.check_and_add(&key("a"), 10, P10, 1, at(t0, 15_000)),
        RateDecision::Limited { .. }
    ));
    // Two periods later everything has slid out.
    assert_eq!(
        rl.check(&key("a"), 10, P10, at(t0, 30_000)),
        RateDecision::Allowed { remaining: 10 }
    );
    // A clock reading older than the window start is not a panic.
    assert!(matches!(
        rl.check(&key("a"), 10, P10, t0),
        RateDecision::Allowed { .. }
    ));
}

#[test]
fn check_does_not_count_and_costs_are_honoured() {
    let rl = RateLimiter::<Duration>::new(100, 1);
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
    // A cost above the limit never fits.
    match rl.check_cost(&key("z"), 3, P10, 4, t0) {
        RateDecision::Limited { retry_after } => assert_eq!(retry_after, P10 * 2),
        d => panic!("{d:?}"),
    }
    // A zero limit limits everything.
    assert!(matches!(
        rl.check(&key("y"), 0, P10, t0),
        RateDecision::Limited { .. }
    ));
}

#[test]
fn a_flood_of_keys_never_exceeds_the_bound() {
    let rl = RateLimiter::<Duration>::new(1_000, 42);
    assert_eq!(rl.max_keys(), 1_000);
    let t0 = Duration::from_secs(1_000);
    for i in 0..50_000u32 {
        rl.add(&key(&i.to_string()), 1, P10, at(t0, u64::from(i % 7)));
        if i % 97 == 0 {
            assert!(rl.len() <= 1_000, "{} keys after {i}", rl.len());
        }
    }
    assert!(rl.len() <= 1_000);
    let qs = QuotaStore::new(500, 42);
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
    let tiny = RateLimiter::<Duration>::new(3, 0);
    for i in 0..100 {
        tiny.add(&key(&i.to_string()), 1, P10, t0);
        assert!(tiny.len() <= 3);
    }
}

#[test]
fn an_active_key_survives_a_flood() {
    let rl = RateLimiter::<Duration>::new(64, 9);
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
    let rl = RateLimiter::<Duration>::new(10_000, 3);
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
    let qs = QuotaStore::default();
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
    let qs = QuotaStore::default();
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
    let qs = QuotaStore::default();
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
