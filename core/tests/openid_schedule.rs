//! The OpenID key-set refresh schedule driven by hand: due sources handed out
//! once, backoff after a failure, the next fetch after a success.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use portcullis_core::callout::openid::{RefreshPolicy, RefreshSchedule};
use portcullis_core::machine::Machine;
#[test]
fn the_schedule_gives_due_sources_once_and_backs_off() {
    let t0 = Instant::now();
    let policy = RefreshPolicy::default();
    let mut schedule = RefreshSchedule::new(policy);
    assert_eq!(schedule.poll_output(), None, "no time yet, nothing due");
    schedule.set_sources(["a", "b", "a"], t0);
    schedule.check_invariants();
    assert_eq!(schedule.sources().collect::<Vec<_>>(), ["a", "b"]);
    let due: Vec<String> = std::iter::from_fn(|| schedule.poll_output()).collect();
    assert_eq!(due, ["a", "b"]);
    // In flight: no timer until a result comes back.
    assert_eq!(Machine::poll_timeout(&schedule), None);
    assert!(schedule.handle_success("a", t0));
    assert_eq!(schedule.handle_failure("b", t0), Some(policy.min_backoff));
    assert!(!schedule.handle_success("b", t0), "no longer in flight");
    assert_eq!(
        Machine::poll_timeout(&schedule),
        Some(t0 + policy.min_backoff)
    );
    assert_eq!(schedule.poll_output(), None);
    schedule.handle_timeout(t0 + policy.min_backoff);
    assert_eq!(schedule.poll_output().as_deref(), Some("b"));
    assert_eq!(schedule.poll_output(), None);
    assert_eq!(
        schedule.poll_due(t0 + policy.interval).as_deref(),
        Some("a")
    );
}
