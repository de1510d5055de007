//! The shared-limits scenario: replicas sharing one Redis keep an exact limit
//! through faults, follow their failure rule, and recover; and the checks
//! catch replicas that count alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use portcullis_core::config::store::OnFailure;
use portcullis_sim::invariants::Invariant;
use portcullis_sim::limits::{run, LimitsOptions};

fn options(on_failure: Option<OnFailure>) -> LimitsOptions {
    LimitsOptions {
        duration: Duration::from_secs(180),
        on_failure,
        ..LimitsOptions::default()
    }
}

#[test]
fn replicas_sharing_redis_keep_the_limit_and_their_failure_rule() {
    for (seed, rule) in [
        (0, OnFailure::Open),
        (1, OnFailure::Closed),
        (2, OnFailure::Closed),
    ] {
        let outcome = run(seed, &options(Some(rule))).unwrap();
        assert!(
            outcome.violations.is_empty(),
            "seed {seed} ({rule:?}): {:#?}",
            outcome.violations
        );
        assert!(outcome.admitted > 100, "seed {seed}: traffic went through");
        assert!(outcome.limited > 100, "seed {seed}: the limit bit");
        assert!(
            !outcome.plan.windows.is_empty(),
            "seed {seed}: faults happened"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_limits_trace() {
    let a = run(3, &options(None)).unwrap();
    let b = run(3, &options(None)).unwrap();
    assert_eq!(a.trace_hash, b.trace_hash);
    let c = run(4, &options(None)).unwrap();
    assert_ne!(a.trace_hash, c.trace_hash, "another seed, another run");
}

#[test]
fn replicas_counting_alone_break_invariant_8() {
    let outcome = run(
        0,
        &LimitsOptions {
            local_store: true,
            ..options(None)
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
