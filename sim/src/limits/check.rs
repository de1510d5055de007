//! The shared-limits invariants, checked on a run's trace.
//!
//! 8. Exact counting holds across replicas: for each counter key, the
//!    requests the store admitted (200 from the backend with `X-Remaining`
//!    below the limit; a fail-open admission announces the whole limit and is
//!    not the store's) never number more than `calls` within one window of
//!    the limit (see [`Facts::window_ms`]). Approximate counting is held to
//!    its documented worst case instead, the limit once per replica
//!    ([`Facts::bound`]). A request is placed in a window
//!    only when it was both sent and answered within it (its decision, at
//!    Redis, happened in between), so the check is sound whatever the network
//!    did. Windows that hold a restart of Redis are not checked: it came back
//!    empty, its counts lost.
//! 9. The failure rule holds: failing open, no request fails or is refused
//!    because of the store (no 503, no missing answer, ever); failing closed,
//!    nothing is admitted without the store (no 200 announcing the whole
//!    limit).
//! 10. The store recovers: requests sent from [`Facts::recover_bound_ms`]
//!     after the last repair on are every one decided by the store (a 200
//!     below the limit or a 429).

use std::collections::BTreeMap;

use portcullis_core::config::store::OnFailure;

use crate::invariants::{Invariant, Violation};
use crate::trace::Event;

/// What the checks need besides the trace.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `calls` of the limit.
    pub calls: u64,
    /// Most admissions by the store a window may hold: `calls` in exact
    /// counting.
    pub bound: u64,
    /// The length of the windows checked: any interval this long holds at
    /// most `calls` admissions by the store.
    pub window_ms: u64,
    /// The failure rule.
    pub on_failure: OnFailure,
    /// When every fault was healed for good.
    pub final_repair_ms: u64,
    /// How long after that the gateways may take to use Redis again.
    pub recover_bound_ms: u64,
}

/// Examples shown in a violation's detail.
const EXAMPLES: usize = 5;

/// A request as a violation shows it: gateway, number, sent at, status,
/// calls left.
type Shown = (usize, u64, u64, Option<u16>, Option<u64>);

/// One request the store admitted: sent, answered.
#[derive(Debug, Clone, Copy)]
struct Admitted {
    gw: usize,
    n: u64,
    sent_ms: u64,
    answered_ms: u64,
}

/// Checks invariants 8 to 10; the violations, in time order.
pub fn check(events: &[(u64, Event)], facts: &Facts) -> Vec<Violation> {
    let mut out = Vec::new();
    let crashes: Vec<u64> = events
        .iter()
        .filter(|(_, e)| matches!(e, Event::RedisCrashed))
        .map(|(ms, _)| *ms)
        .collect();
    let mut admitted: BTreeMap<usize, Vec<Admitted>> = BTreeMap::new();
    let mut rule_broken: Vec<Shown> = Vec::new();
    let mut not_recovered: Vec<Shown> = Vec::new();
    let recovered_from = facts.final_repair_ms + facts.recover_bound_ms;
    for (ms, event) in events {
        let Event::LimitAnswer {
            gw,
            key,
            n,
            sent_ms,
            status,
            remaining,
        } = event
        else {
            continue;
        };
        // A 200 without the header counts as the store's: the strict reading.
        let by_store = remaining.is_none_or(|r| r < facts.calls);
        if *status == Some(200) && by_store {
            admitted.entry(*key).or_default().push(Admitted {
                gw: *gw,
                n: *n,
                sent_ms: *sent_ms,
                answered_ms: *ms,
            });
        }
        let decided = matches!(status, Some(429)) || (*status == Some(200) && by_store);
        let broken = match facts.on_failure {
            OnFailure::Open => !matches!(status, Some(200) | Some(429)),
            OnFailure::Closed => *status == Some(200) && !by_store,
        };
        if broken {
            rule_broken.push((*gw, *n, *sent_ms, *status, *remaining));
        }
        if *sent_ms >= recovered_from && !decided {
            not_recovered.push((*gw, *n, *sent_ms, *status, *remaining));
        }
    }
    for (key, list) in &admitted {
        if let Some((at, count, examples)) = overfull(list, facts.window_ms, facts.bound, &crashes)
        {
            out.push(Violation {
                invariant: Invariant::SharedLimit,
                at_ms: at,
                detail: format!(
                    "key k{key}: the store admitted {count} requests within {} ms (limit {}, at most {} allowed): {}",
                    facts.window_ms,
                    facts.calls,
                    facts.bound,
                    examples.join(", ")
                ),
            });
        }
    }
    let describe = |list: &[Shown]| -> String {
        list.iter()
            .take(EXAMPLES)
            .map(|(gw, n, sent, status, remaining)| {
                format!(
                    "c{gw}-{n} sent at {:.3}s: {status:?}, remaining {remaining:?}",
                    *sent as f64 / 1000.0
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(first) = rule_broken.first() {
        out.push(Violation {
            invariant: Invariant::FailureRule,
            at_ms: first.2,
            detail: format!(
                "{} requests broke the fail-{} rule: {}",
                rule_broken.len(),
                match facts.on_failure {
                    OnFailure::Open => "open",
                    OnFailure::Closed => "closed",
                },
                describe(&rule_broken)
            ),
        });
    }
    if let Some(first) = not_recovered.first() {
        out.push(Violation {
            invariant: Invariant::StoreRecovers,
            at_ms: first.2,
            detail: format!(
                "{} requests sent {} ms after the last repair or later were not decided by the store: {}",
                not_recovered.len(),
                facts.recover_bound_ms,
                describe(&not_recovered)
            ),
        });
    }
    out.sort_by_key(|v| v.at_ms);
    out
}

/// The first window of `window_ms` (not holding a crash) in which more than
/// `calls` of `list` were both sent and answered: its start, the count, and
/// examples.
fn overfull(
    list: &[Admitted],
    window_ms: u64,
    calls: u64,
    crashes: &[u64],
) -> Option<(u64, usize, Vec<String>)> {
    let mut by_sent: Vec<Admitted> = list.to_vec();
    by_sent.sort_by_key(|a| (a.sent_ms, a.answered_ms));
    // Every window worth checking starts at some request's sending.
    for (i, first) in by_sent.iter().enumerate() {
        let start = first.sent_ms;
        let end = start + window_ms;
        if crashes.iter().any(|&c| c >= start && c <= end) {
            continue;
        }
        let inside: Vec<&Admitted> = by_sent[i..]
            .iter()
            .take_while(|a| a.sent_ms <= end)
            .filter(|a| a.answered_ms <= end)
            .collect();
        if inside.len() as u64 > calls {
            let examples = inside
                .iter()
                .take(calls as usize + 1)
                .map(|a| {
                    format!(
                        "c{}-{} ({:.3}s..{:.3}s)",
                        a.gw,
                        a.n,
                        a.sent_ms as f64 / 1000.0,
                        a.answered_ms as f64 / 1000.0
                    )
                })
                .collect();
            return Some((start, inside.len(), examples));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(on_failure: OnFailure) -> Facts {
        Facts {
            calls: 2,
            bound: 2,
            window_ms: 1000,
            on_failure,
            final_repair_ms: 10_000,
            recover_bound_ms: 1_000,
        }
    }

    /// An answer at `at` to a request sent 100 ms before.
    fn answer(at: u64, n: u64, status: Option<u16>, remaining: Option<u64>) -> (u64, Event) {
        (
            at,
            Event::LimitAnswer {
                gw: (n % 3) as usize,
                key: 0,
                n,
                sent_ms: at - 100,
                status,
                remaining,
            },
        )
    }

    fn invariants(v: &[Violation]) -> Vec<Invariant> {
        v.iter().map(|v| v.invariant).collect()
    }

    #[test]
    fn more_than_the_limit_in_a_window_is_caught_unless_redis_restarted_in_it() {
        let f = facts(OnFailure::Open);
        let two = [
            answer(200, 0, Some(200), Some(1)),
            answer(500, 1, Some(200), Some(0)),
        ];
        assert!(check(&two, &f).is_empty());
        let mut three = two.to_vec();
        three.push(answer(1000, 2, Some(200), Some(0)));
        assert_eq!(invariants(&check(&three, &f)), [Invariant::SharedLimit]);
        // The third one's decision may have been after the window: no proof.
        let mut late = two.to_vec();
        late.push(answer(1200, 2, Some(200), Some(0)));
        assert!(check(&late, &f).is_empty());
        // A fail-open admission (the whole limit left) is not the store's.
        let mut open = two.to_vec();
        open.push(answer(1000, 2, Some(200), Some(2)));
        assert!(check(&open, &f).is_empty());
        // Redis came back empty within the window.
        let mut restarted = three.clone();
        restarted.insert(1, (400, Event::RedisCrashed));
        assert!(check(&restarted, &f).is_empty());
    }

    #[test]
    fn each_failure_rule_is_checked() {
        let refused = [answer(200, 0, Some(503), None)];
        assert_eq!(
            invariants(&check(&refused, &facts(OnFailure::Open))),
            [Invariant::FailureRule]
        );
        assert!(check(&refused, &facts(OnFailure::Closed)).is_empty());
        let unanswered = [answer(200, 0, None, None)];
        assert_eq!(
            invariants(&check(&unanswered, &facts(OnFailure::Open))),
            [Invariant::FailureRule]
        );
        let without_store = [answer(200, 0, Some(200), Some(2))];
        assert_eq!(
            invariants(&check(&without_store, &facts(OnFailure::Closed))),
            [Invariant::FailureRule]
        );
        assert!(check(&without_store, &facts(OnFailure::Open)).is_empty());
    }

    #[test]
    fn the_store_must_decide_again_after_the_last_repair() {
        let f = facts(OnFailure::Closed);
        let within_bound = [answer(10_900, 0, Some(503), None)];
        assert!(check(&within_bound, &f).is_empty());
        let after = [answer(11_200, 0, Some(503), None)];
        assert_eq!(invariants(&check(&after, &f)), [Invariant::StoreRecovers]);
        let decided = [
            answer(11_200, 0, Some(429), Some(0)),
            answer(11_300, 1, Some(200), Some(1)),
        ];
        assert!(check(&decided, &f).is_empty());
        let open = facts(OnFailure::Open);
        let failed_open = [answer(11_200, 0, Some(200), Some(2))];
        assert_eq!(
            invariants(&check(&failed_open, &open)),
            [Invariant::StoreRecovers]
        );
    }
}
