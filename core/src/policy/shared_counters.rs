//! The outcome of a rate-limit or quota decision taken by a shared store.
//!
//! A shared store (Redis) decides next to its data, in one atomic step: it
//! rolls each counter to its own clock, checks that one more call fits in
//! every counter (all or nothing, as [`rate_limit::decide`] and
//! [`quota::decide`] do in process) and counts the call. It answers with the
//! counters as they are after that step; this module turns them into the
//! policy's outcome with the in-process code's arithmetic, so `remaining` and
//! `Retry-After` mean the same whichever store answered.
//!
//! [`rate_limit::decide`]: super::rate_limit::decide
//! [`quota::decide`]: super::quota::decide

use std::time::Duration;

use super::counters::{QuotaDecision, QuotaUsage, RateDecision, RateWindow};
use super::quota::{QuotaCounter, QuotaOutcome};
use super::rate_limit::{RateCounter, RateOutcome};

/// The calls one decision checks for: `n` when one counter counts `n` calls
/// at once (the in-process `check_and_add`), else one.
pub fn rate_cost(counters: &[RateCounter], add: Option<u64>) -> u64 {
    match (counters, add) {
        ([_], Some(n)) => n,
        _ => 1,
    }
}

/// The outcome of a `StoreOp::Rate` over `counters`, from the store's windows
/// (`windows[i]` is `counters[i]`'s, after the step) and whether it admitted
/// the call, at `now` (time since the Unix epoch, the store's clock).
pub fn rate_outcome(
    counters: &[RateCounter],
    add: Option<u64>,
    admitted: bool,
    windows: &[RateWindow],
    now: Duration,
) -> RateOutcome {
    let cost = rate_cost(counters, add);
    let pairs = counters.iter().zip(windows);
    if !admitted {
        let mut worst: Option<(Duration, u64)> = None;
        for (c, w) in pairs {
            if let RateDecision::Limited { retry_after } =
                w.decide(c.limit.calls, c.limit.period, cost, now)
            {
                if worst.is_none_or(|(r, _)| retry_after > r) {
                    worst = Some((retry_after, c.limit.calls));
                }
            }
        }
        let (retry_after, total) = worst.unwrap_or_else(|| {
            // Refused, yet every window has room: the store's view moved on.
            // Wait one bucket of the first counter.
            let c = counters.first();
            (
                c.map_or(Duration::from_secs(1), |c| c.limit.period / 12),
                c.map_or(0, |c| c.limit.calls),
            )
        });
        return RateOutcome::Limited { retry_after, total };
    }
    let mut best: Option<(u64, u64)> = None;
    for (c, w) in pairs {
        let remaining = match add {
            // Counted: what is left after the call.
            Some(_) => c.limit.calls.saturating_sub(w.total()),
            // A check: what is left before it, as the in-process check says.
            None => match w.decide(c.limit.calls, c.limit.period, 1, now) {
                RateDecision::Allowed { remaining } => remaining,
                RateDecision::Limited { .. } => 0,
            },
        };
        if best.is_none_or(|(r, _)| remaining < r) {
            best = Some((remaining, c.limit.calls));
        }
    }
    let (remaining, total) = best.unwrap_or((0, 0));
    RateOutcome::Allowed { remaining, total }
}

/// The outcome of a `StoreOp::Quota` over `counters`, from the store's periods
/// (`usages[i]` is `counters[i]`'s, after the step) and whether it admitted
/// the call, at `now_unix` (the store's clock).
pub fn quota_outcome(
    counters: &[QuotaCounter],
    add: Option<u64>,
    admitted: bool,
    usages: &[QuotaUsage],
    now_unix: i64,
) -> QuotaOutcome {
    let pairs = counters.iter().zip(usages);
    if !admitted {
        let wait = |r: Option<Duration>| r.unwrap_or(Duration::MAX);
        let mut worst = None;
        for (c, u) in pairs {
            if let QuotaDecision::Exceeded { kind, retry_after } = u.decide(&c.limits, now_unix) {
                if worst.is_none_or(|(_, w)| wait(retry_after) > wait(w)) {
                    worst = Some((kind, retry_after));
                }
            }
        }
        let (kind, retry_after) = worst.unwrap_or((
            super::counters::QuotaKind::Calls,
            Some(Duration::from_secs(1)),
        ));
        return QuotaOutcome::Exceeded { kind, retry_after };
    }
    let mut calls: Option<u64> = None;
    let mut bytes: Option<u64> = None;
    for (c, u) in pairs {
        let d = match add {
            Some(_) => u.decide_after(&c.limits),
            None => u.decide(&c.limits, now_unix),
        };
        if let QuotaDecision::Allowed {
            remaining_calls,
            remaining_bytes,
        } = d
        {
            calls = min_opt(calls, remaining_calls);
            bytes = min_opt(bytes, remaining_bytes);
        }
    }
    QuotaOutcome::Allowed {
        remaining_calls: calls,
        remaining_bytes: bytes,
    }
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::counters::{CounterKey, QuotaAnchor, QuotaLimits, RateLimiter, RateTable};
    use crate::policy::rate_limit::{self, Limit};

    fn counter(calls: u64, secs: u64) -> RateCounter {
        RateCounter {
            key: CounterKey::new("t", "k"),
            limit: Limit {
                calls,
                period: Duration::from_secs(secs),
            },
        }
    }

    /// A shared window driven step by step gives the in-process limiter's
    /// answers, for the same calls at the same times (both aligned to zero).
    #[test]
    fn a_shared_window_answers_as_the_local_limiter() {
        let c = [counter(5, 60)];
        let mut local: RateLimiter<Duration> = RateLimiter::new(16, 1);
        let mut shared = RateWindow::default();
        // The local limiter's origin is its first call: start at zero.
        for step in 0..40u64 {
            let now = Duration::from_millis(step * 2_300);
            let want = rate_limit::decide(&mut local, &c, Some(1), now);
            shared.roll(c[0].limit.period, now);
            let admitted = matches!(
                shared.decide(5, c[0].limit.period, 1, now),
                RateDecision::Allowed { .. }
            );
            if admitted {
                shared.add(1);
            }
            let got = rate_outcome(&c, Some(1), admitted, &[shared], now);
            assert_eq!(got, want, "step {step}");
        }
        let _ = local.with_rate(&c[0].key, |l| format!("{l:?}"));
    }

    #[test]
    fn quota_outcomes_follow_the_usage() {
        let limits = QuotaLimits {
            calls: Some(2),
            kilobytes: None,
            period_secs: 60,
            anchor: QuotaAnchor::At(0),
        };
        let c = [QuotaCounter {
            key: CounterKey::new("q", "k"),
            limits,
        }];
        let u = QuotaUsage {
            start: 60,
            calls: 2,
            bytes: 0,
        };
        assert_eq!(
            quota_outcome(&c, Some(1), false, &[u], 90),
            QuotaOutcome::Exceeded {
                kind: crate::policy::counters::QuotaKind::Calls,
                retry_after: Some(Duration::from_secs(30))
            }
        );
        let u = QuotaUsage { calls: 1, ..u };
        assert_eq!(
            quota_outcome(&c, Some(1), true, &[u], 90),
            QuotaOutcome::Allowed {
                remaining_calls: Some(1),
                remaining_bytes: None
            }
        );
    }
}
