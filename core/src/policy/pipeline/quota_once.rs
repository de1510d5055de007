//! A `quota-by-key` key is counted once per request, however many policies
//! name it (APIM: "if multiple policies would increment the same key value, it
//! is incremented only once per request"; one counter per key value for all the
//! scopes the policy is configured at). The first policy to name a key counts
//! it; a later one checks its own limit against the counter as it is, which
//! already holds this request's calls when the first counted them at once, and
//! counts nothing after the response either.

use super::super::quota::{QuotaByKey, QuotaCounter, ResolvedQuotaKey};
use crate::policy::counters::CounterKey;

/// The keys counted so far in this request, with the calls counted inbound.
pub(super) type CountedKeys = Vec<(CounterKey, u64)>;

/// The counter `q` asks the store about and the calls to count with it, given
/// the keys `counted` before it; marks `r` as a repeat when its key was.
pub(super) fn counted_once(
    counted: &mut CountedKeys,
    q: &QuotaByKey,
    r: &mut ResolvedQuotaKey,
) -> (QuotaCounter, Option<u64>) {
    if let Some((_, already)) = counted.iter().find(|(k, _)| *k == r.key) {
        r.repeat = true;
        let mut counter = r.counter();
        // The counter includes this request's `already` calls: the limit is
        // reached only past `calls`, not at it (check-only answers "full" at the limit).
        counter.limits.calls = counter.limits.calls.map(|c| c.saturating_add(*already));
        return (counter, None);
    }
    let add = q.inbound_add(r);
    counted.push((r.key.clone(), add.unwrap_or(0)));
    (r.counter(), add)
}
