//! The pipeline resumed with the store's answers: what each policy makes of
//! a result, and of `Unavailable` (see `policy::store` for the rules).

use std::sync::Arc;

use super::super::concurrency;
use super::super::context::Context;
use super::super::error::Failure;
use super::super::param::json_error_response;
use super::super::quota::{Quota, QuotaByKey, QuotaCounter, QuotaOutcome, ResolvedQuotaKey};
use super::super::rate_limit::{RateLimit, RateLimitByKey, RateOutcome, ResolvedRateKey};
use super::super::response_cache::decode_response;
use super::super::store::{Cached, StoreAnswer, StoreResult, StoreResults};
use super::{Deferred, Pipeline, SectionKind, Waiting};
use crate::expr::Value;

/// What a pending store request was for: what its answer resumes.
#[derive(Debug)]
pub(super) enum Asked {
    /// `rate-limit`.
    Rate(Arc<RateLimit>),
    /// `rate-limit-by-key`.
    RateByKey(Arc<RateLimitByKey>, ResolvedRateKey),
    /// `quota`.
    Quota(Arc<Quota>, Vec<QuotaCounter>),
    /// `quota-by-key`.
    QuotaByKey(Arc<QuotaByKey>, ResolvedQuotaKey),
    /// `limit-concurrency`'s slot.
    Slot { level: u8, slot: u16, key: String },
    /// `cache-lookup`.
    CacheResponse,
    /// `cache-lookup-value`.
    CacheValue,
    /// `validate-jwt`'s OpenID key sets; the policy runs again with them.
    KeySets,
    /// `llm-token-limit`: its per-minute and quota counters, in one request.
    LlmTokens(
        Arc<super::super::llm::LlmTokenLimit>,
        super::super::llm::ResolvedTokenLimit,
    ),
}

impl Pipeline {
    /// The store answered the request of the last `Step::Store`.
    pub fn store_done(&mut self, ctx: &mut Context, answer: StoreAnswer) {
        self.take_store_answer(ctx, answer);
        crate::machine::debug_check(self);
    }

    fn take_store_answer(&mut self, ctx: &mut Context, answer: StoreAnswer) {
        let Waiting::Store { origin } = self.waiting else {
            return;
        };
        self.waiting = Waiting::Nothing;
        let Some(asked) = self.asked.take() else {
            return;
        };
        // Every request the pipeline waits for has one operation, but
        // llm-token-limit's (its two counters).
        let (mut results, closed) = match answer {
            StoreAnswer::Done(results) => (results.into_iter(), false),
            StoreAnswer::Unavailable(_) => (StoreResults::new().into_iter(), false),
            StoreAnswer::Refused(_) => (StoreResults::new().into_iter(), true),
        };
        let result = if matches!(asked, Asked::LlmTokens(..)) {
            None
        } else {
            results.next()
        };
        let failure = match asked {
            // Fail closed: the limits that could not be checked refuse.
            Asked::Rate(_)
            | Asked::RateByKey(..)
            | Asked::Quota(..)
            | Asked::QuotaByKey(..)
            | Asked::LlmTokens(..)
            | Asked::Slot { .. }
                if closed =>
            {
                Some(store_unavailable())
            }
            Asked::Rate(r) => {
                let outcome = match result {
                    Some(StoreResult::Rate(o)) => o,
                    _ => fail_open_rate(r.limit.calls),
                };
                self.rate_outputs(&r.outputs, &outcome, ctx);
                matches!(outcome, RateOutcome::Limited { .. }).then(|| r.failure(&outcome))
            }
            Asked::RateByKey(r, resolved) => {
                let outcome = match result {
                    Some(StoreResult::Rate(o)) => o,
                    _ => fail_open_rate(resolved.limit.calls),
                };
                self.rate_outputs(&r.outputs, &outcome, ctx);
                if let RateOutcome::Limited { .. } = outcome {
                    Some(r.failure(&outcome))
                } else {
                    if r.defers_increment() {
                        self.deferred.push(Deferred::Rate(r, resolved));
                    }
                    None
                }
            }
            Asked::Quota(q, counters) => {
                let outcome = match result {
                    Some(StoreResult::Quota(o)) => o,
                    _ => fail_open_quota(&counters),
                };
                if let QuotaOutcome::Exceeded { .. } = outcome {
                    Some(q.failure(&outcome))
                } else {
                    self.deferred.push(Deferred::QuotaBytes(counters));
                    None
                }
            }
            Asked::QuotaByKey(q, resolved) => {
                let outcome = match result {
                    Some(StoreResult::Quota(o)) => o,
                    _ => fail_open_quota(std::slice::from_ref(&resolved.counter())),
                };
                if let QuotaOutcome::Exceeded { .. } = outcome {
                    Some(q.failure(&outcome))
                } else {
                    // A repeat counts nothing: the first policy naming the key does.
                    if !resolved.repeat {
                        self.deferred.push(Deferred::QuotaByKey(q, resolved));
                    }
                    None
                }
            }
            Asked::LlmTokens(l, resolved) => match l.admit(&resolved, results, ctx) {
                Ok(d) => {
                    self.deferred.push(Deferred::Llm(Box::new(d)));
                    None
                }
                Err(f) => Some(f),
            },
            Asked::Slot { level, slot, key } => match result {
                Some(StoreResult::Acquired(true)) => {
                    self.permits.push((level, slot, key));
                    None
                }
                Some(StoreResult::Acquired(false)) => Some(concurrency::failure()),
                // Unavailable: the request goes in without a slot.
                _ => None,
            },
            Asked::CacheResponse => {
                let found = match result {
                    Some(StoreResult::Value(v)) => v,
                    _ => None,
                };
                self.cache_found(ctx, found);
                None
            }
            Asked::CacheValue => {
                let found = match result {
                    Some(StoreResult::Value(v)) => v,
                    _ => None,
                };
                self.value_found(ctx, found);
                None
            }
            Asked::KeySets => {
                // Unavailable: no OpenID keys (only the policy's own validate).
                self.key_sets = Some(match result {
                    Some(StoreResult::KeySets(k)) => k,
                    _ => Arc::default(),
                });
                None
            }
        };
        if let Some(failure) = failure {
            let (level, idx) = origin;
            if let Some(doc) = self.chain.docs[usize::from(level)].clone() {
                // The step is returned by the next `run`.
                self.fail_in(ctx, failure, &doc, idx);
            }
        }
    }

    /// A `cache-lookup` finished (`None`: not found).
    fn cache_found(&mut self, ctx: &mut Context, found: Option<Cached>) {
        let Some((mut resp, ttl_left)) = found
            .as_ref()
            .and_then(|c| decode_response(&c.value).map(|r| (r, c.ttl_left)))
        else {
            return;
        };
        if let Some((lookup, _)) = &self.lookup {
            // The downstream header promises the entry's remaining life.
            if let Ok(Some(cc)) = lookup.downstream_cache_control(ctx, ttl_left) {
                resp.headers.set("Cache-Control", cc);
            }
        }
        ctx.response = Some(resp);
        self.cache_hit = true;
        // A hit skips the backend; outbound still runs, as in APIM.
        self.enter(SectionKind::Outbound);
    }

    /// A `cache-lookup-value` finished (`None`: not found).
    fn value_found(&mut self, ctx: &mut Context, found: Option<Cached>) {
        let Some((var, default)) = self.value_lookup.take() else {
            return;
        };
        let value = match found {
            Some(c) => Value::Str(String::from_utf8_lossy(&c.value).as_ref().into()),
            None => match default {
                Some(t) => t.eval(ctx).unwrap_or(Value::Null),
                None => Value::Null,
            },
        };
        ctx.variables.insert(var, value);
    }
}

/// A rate limit's outcome when the store cannot answer: allowed (fail open),
/// the whole limit left.
fn fail_open_rate(calls: u64) -> RateOutcome {
    RateOutcome::Allowed {
        remaining: calls,
        total: calls,
    }
}

/// A quota's outcome when the store cannot answer: allowed (fail open), the
/// tightest configured amounts left.
fn fail_open_quota(counters: &[QuotaCounter]) -> QuotaOutcome {
    let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    counters.iter().fold(
        QuotaOutcome::Allowed {
            remaining_calls: None,
            remaining_bytes: None,
        },
        |acc, c| match acc {
            QuotaOutcome::Allowed {
                remaining_calls,
                remaining_bytes,
            } => QuotaOutcome::Allowed {
                remaining_calls: min(remaining_calls, c.limits.calls),
                remaining_bytes: min(
                    remaining_bytes,
                    c.limits.kilobytes.map(|kb| kb.saturating_mul(1024)),
                ),
            },
            other => other,
        },
    )
}

/// What a limit answers when the store cannot check it and the gateway fails
/// closed: 503 with `Retry-After: 1`, in APIM's error shape.
fn store_unavailable() -> Failure {
    let mut response = json_error_response(
        503,
        "Service Unavailable",
        "The limit cannot be checked: the shared-state store is unavailable. Try again in 1 seconds.",
    );
    response.headers.append("Retry-After", "1");
    Failure {
        reason: "StoreUnavailable".into(),
        message: "The shared-state store is unavailable".into(),
        response: Some(Box::new(response)),
    }
}
