//! The shared-limits scenario: replicas sharing one Redis keep an exact limit
//! through partitions, latency and Redis restarts, follow their failure rule,
//! and decide with Redis again after the last repair; and the checks catch
//! replicas that count alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use portcullis_core::config::store::{Counting, OnFailure};
use portcullis_sim::invariants::Invariant;
use portcullis_sim::limits::plan::StoreFault;
use portcullis_sim::limits::{check, facts, run, LimitsOptions};

fn options() -> LimitsOptions {
    LimitsOptions {
        duration: Duration::from_secs(180),
        counting: Some(Counting::Exact),
        ..LimitsOptions::default()
    }
}

#[test]
fn replicas_sharing_redis_keep_the_limit_and_their_failure_rule() {
    // Seed 3 fails closed, seed 4 open; both restart Redis, partition a
    // gateway from it and slow a link.
    for (seed, rule) in [(3, OnFailure::Closed), (4, OnFailure::Open)] {
        let outcome = run(seed, &options()).unwrap();
        assert!(
            outcome.violations.is_empty(),
            "seed {seed}: {:#?}",
            outcome.violations
        );
        let plan = &outcome.plan;
        assert_eq!(plan.on_failure, rule, "seed {seed}");
        for kind in ["Partition", "Latency", "RedisDown"] {
            assert!(
                plan.windows
                    .iter()
                    .any(|w| format!("{:?}", w.fault).starts_with(kind)),
                "seed {seed} has a {kind}: {:?}",
                plan.windows
            );
        }
        assert!(outcome.admitted > 300, "seed {seed}: traffic went through");
        assert!(outcome.limited > 0, "seed {seed}: the limit bit");
        assert_eq!(outcome.failed, 0, "seed {seed}: every request was answered");
        match rule {
            OnFailure::Closed => assert!(outcome.refused > 0, "seed {seed}: it failed closed"),
            OnFailure::Open => assert_eq!(outcome.refused, 0, "seed {seed}: it failed open"),
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_limits_trace() {
    let a = run(7, &options()).unwrap();
    let b = run(7, &options()).unwrap();
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.trace.len(), b.trace.len());
    let c = run(8, &options()).unwrap();
    assert_ne!(a.trace_hash, c.trace_hash, "another seed, another run");
}

#[test]
fn replicas_counting_alone_break_invariant_8() {
    let outcome = run(
        0,
        &LimitsOptions {
            local_store: true,
            ..options()
        },
    )
    .unwrap();
    assert!(
        outcome
            .violations
            .iter()
            .any(|v| v.invariant == Invariant::SharedLimit),
        "{:#?}",
        outcome.violations
    );
}

#[test]
fn black_holes_are_drawn_only_when_asked_for() {
    let black_hole = |w: &portcullis_sim::limits::plan::StoreWindow| {
        matches!(
            w.fault,
            StoreFault::BlackHole { .. } | StoreFault::Loss { .. }
        )
    };
    let plan = |seed, black_holes| {
        portcullis_sim::limits::plan::LimitsPlan::new(
            seed,
            Duration::from_secs(180),
            None,
            None,
            black_holes,
        )
    };
    assert!((0..50).all(|seed| !plan(seed, false).windows.iter().any(black_hole)));
    assert!((0..50).any(|seed| plan(seed, true).windows.iter().any(black_hole)));
}

#[test]
fn approximate_counting_stays_within_its_bound_and_its_rule() {
    for seed in [3, 4] {
        let outcome = run(
            seed,
            &LimitsOptions {
                counting: Some(Counting::Approximate),
                ..options()
            },
        )
        .unwrap();
        assert!(
            outcome.violations.is_empty(),
            "seed {seed}: {:#?}",
            outcome.violations
        );
        assert!(outcome.limited > 0, "seed {seed}: the limit bit");
    }
}

#[test]
fn approximate_counting_overshoots_the_exact_bound() {
    // Invariant 8 held to exact counting's bound catches the overshoot
    // approximate counting allows (what replicas admit between two syncs).
    for seed in 0..6 {
        let outcome = run(
            seed,
            &LimitsOptions {
                counting: Some(Counting::Approximate),
                ..options()
            },
        )
        .unwrap();
        let exact = check::Facts {
            bound: outcome.plan.calls,
            ..facts(&outcome.plan)
        };
        if check::check(&outcome.trace, &exact)
            .iter()
            .any(|v| v.invariant == Invariant::SharedLimit)
        {
            return;
        }
    }
    panic!("approximate counting never went over the limit in seeds 0..6");
}
