//! `rate-limit` (per subscription, with per-API and per-operation limits) and
//! `rate-limit-by-key`: compiled configs and their decisions over a
//! [`RateTable`] (one [`RateLimiter`](super::counters::RateLimiter), or the
//! shards of the driver's store).
//!
//! Run-time order for the pipeline:
//! 1. inbound: build the counters (`RateLimit::counters`) or resolve the key
//!    (`RateLimitByKey::resolve`), and ask the store (`StoreOp::Rate`, whose
//!    meaning is [`decide`]: what `apply`/`check` do on a local table); a
//!    limited outcome becomes `failure()` (429); an allowed one sets
//!    `variables()`.
//! 2. end of outbound: for `rate-limit-by-key` whose increment is deferred
//!    (`defers_increment()`: an `increment-condition` or an expression
//!    `increment-count`), evaluate `should_increment(ctx)` against the final
//!    response and count (`StoreOp::RateAdd`, [`add_calls`]; `increment` on a
//!    local table). Add `response_headers()` to the response.

// `Failure` carries the prepared response by value; it is the pipeline's type.

use std::time::Duration;

use super::attrs;
use super::context::{ApiInfo, Context, OperationInfo};
use super::counters::{retry_after_secs, CounterKey, Moment, RateDecision, RateTable};
use super::error::{Failure, PolicyError};
use super::param::{json_error_response, with_text, Param};
use super::xml::Element;
use crate::expr::{Template, Value};

/// APIM's longest rate-limit window, in seconds.
pub const MAX_RENEWAL_PERIOD: u64 = 300;

/// Where the outcome is reported: header and variable names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitOutputs {
    /// Header carrying the retry interval on a 429 (default `Retry-After`).
    pub retry_after_header_name: String,
    /// Variable receiving the retry interval in seconds on a 429.
    pub retry_after_variable_name: Option<String>,
    /// Response header carrying the calls left.
    pub remaining_calls_header_name: Option<String>,
    /// Variable receiving the calls left.
    pub remaining_calls_variable_name: Option<String>,
    /// Response header carrying the configured `calls`.
    pub total_calls_header_name: Option<String>,
}

impl RateLimitOutputs {
    fn from_element(el: &Element) -> Result<Self, PolicyError> {
        let name = |a: &str| attrs::output_name(el, a);
        Ok(RateLimitOutputs {
            retry_after_header_name: name("retry-after-header-name")?
                .unwrap_or_else(|| "Retry-After".into()),
            retry_after_variable_name: name("retry-after-variable-name")?,
            remaining_calls_header_name: name("remaining-calls-header-name")?,
            remaining_calls_variable_name: name("remaining-calls-variable-name")?,
            total_calls_header_name: name("total-calls-header-name")?,
        })
    }

    /// The 429 APIM sends: `Retry-After` (or the configured header) and its JSON body.
    pub fn failure(&self, outcome: &RateOutcome) -> Failure {
        let secs = match outcome {
            RateOutcome::Limited { retry_after, .. } => retry_after_secs(*retry_after),
            RateOutcome::Allowed { .. } => 1,
        };
        let body = format!("Rate limit is exceeded. Try again in {secs} seconds.");
        let mut response = json_error_response(429, "Too Many Requests", &body);
        response
            .headers
            .append(self.retry_after_header_name.clone(), secs.to_string());
        Failure {
            reason: "RateLimitExceeded".into(),
            message: "Rate limit is exceeded".into(),
            response: Some(Box::new(response)),
        }
    }

    /// Variables to set after the policy ran (remaining calls, or retry interval).
    pub fn variables(&self, outcome: &RateOutcome) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        match outcome {
            RateOutcome::Allowed { remaining, .. } => {
                if let Some(v) = &self.remaining_calls_variable_name {
                    out.push((v.clone(), int(*remaining)));
                }
            }
            RateOutcome::Limited { retry_after, .. } => {
                if let Some(v) = &self.retry_after_variable_name {
                    out.push((v.clone(), int(retry_after_secs(*retry_after))));
                }
                if let Some(v) = &self.remaining_calls_variable_name {
                    out.push((v.clone(), Value::Int(0)));
                }
            }
        }
        out
    }

    /// Headers to add to the response the client gets (remaining and total calls).
    pub fn response_headers(&self, outcome: &RateOutcome) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let (remaining, total) = match outcome {
            RateOutcome::Allowed { remaining, total } => (*remaining, *total),
            RateOutcome::Limited { total, .. } => (0, *total),
        };
        if let Some(h) = &self.remaining_calls_header_name {
            out.push((h.clone(), remaining.to_string()));
        }
        if let Some(h) = &self.total_calls_header_name {
            out.push((h.clone(), total.to_string()));
        }
        out
    }
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// What a rate-limit policy decided for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateOutcome {
    /// Within the limit.
    Allowed {
        /// Calls left (the smallest over the counters that apply).
        remaining: u64,
        /// The configured `calls` of the tightest counter.
        total: u64,
    },
    /// Over the limit.
    Limited {
        /// Until the call would fit.
        retry_after: Duration,
        /// The configured `calls` of the counter that refused.
        total: u64,
    },
}

/// An API or operation named by id (preferred, as APIM does) or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Matched against the id.
    Id(String),
    /// Matched against the display name.
    Name(String),
}

impl Target {
    pub(crate) fn from_element(el: &Element) -> Result<Self, PolicyError> {
        match (el.attr("id"), el.attr("name")) {
            (Some(id), _) if !id.trim().is_empty() => Ok(Target::Id(id.trim().to_string())),
            (_, Some(name)) if !name.trim().is_empty() => Ok(Target::Name(name.trim().to_string())),
            _ => Err(PolicyError::at(
                el,
                format!("<{}> needs a 'name' or an 'id'", el.name),
            )),
        }
    }

    /// Whether this names the entity with `id` and `name`.
    pub fn matches(&self, id: &str, name: &str) -> bool {
        match self {
            Target::Id(t) => t == id,
            Target::Name(t) => t == name,
        }
    }

    /// The identity used in counter keys: the id when known.
    fn key_part<'a>(&'a self, id: &'a str) -> &'a str {
        match self {
            Target::Id(t) => t,
            Target::Name(_) => id,
        }
    }
}

/// `calls` per `renewal-period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Calls allowed in the window.
    pub calls: u64,
    /// Window length.
    pub period: Duration,
}

fn literal_limit(el: &Element) -> Result<Limit, PolicyError> {
    let calls: u64 = attrs::parsed(el, "calls")?
        .ok_or_else(|| PolicyError::at(el, "attribute 'calls' is required"))?;
    let period: u64 = attrs::parsed(el, "renewal-period")?
        .ok_or_else(|| PolicyError::at(el, "attribute 'renewal-period' is required"))?;
    check_period(el, period)?;
    Ok(Limit {
        calls,
        period: Duration::from_secs(period),
    })
}

fn check_period(el: &Element, period: u64) -> Result<(), PolicyError> {
    if period == 0 || period > MAX_RENEWAL_PERIOD {
        return Err(PolicyError::at(
            el,
            format!("renewal-period must be from 1 to {MAX_RENEWAL_PERIOD} seconds, not {period}"),
        ));
    }
    Ok(())
}

/// A per-operation limit inside `<api>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationLimit {
    /// Which operation.
    pub target: Target,
    /// Its limit.
    pub limit: Limit,
}

/// A per-API limit, with per-operation limits inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiLimit {
    /// Which API.
    pub target: Target,
    /// Its limit.
    pub limit: Limit,
    /// Limits of its operations.
    pub operations: Vec<OperationLimit>,
}

/// One counter that applies to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateCounter {
    /// The key in the limiter.
    pub key: CounterKey,
    /// Its limit.
    pub limit: Limit,
}

/// `<rate-limit>`: per-subscription call rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// The subscription-wide limit.
    pub limit: Limit,
    /// Per-API limits.
    pub apis: Vec<ApiLimit>,
    /// Header and variable names.
    pub outputs: RateLimitOutputs,
}

impl RateLimit {
    /// Compiles `<rate-limit>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &[
                "calls",
                "renewal-period",
                "retry-after-header-name",
                "retry-after-variable-name",
                "remaining-calls-header-name",
                "remaining-calls-variable-name",
                "total-calls-header-name",
            ],
        )?;
        attrs::only_children(el, &["api"])?;
        let mut apis = Vec::new();
        for api in el.children_named("api") {
            attrs::only(api, &["name", "calls", "renewal-period"])?;
            attrs::only_children(api, &["operation"])?;
            let mut operations = Vec::new();
            for op in api.children_named("operation") {
                attrs::only(op, &["name", "calls", "renewal-period"])?;
                operations.push(OperationLimit {
                    target: Target::from_element(op)?,
                    limit: literal_limit(op)?,
                });
            }
            apis.push(ApiLimit {
                target: Target::from_element(api)?,
                limit: literal_limit(api)?,
                operations,
            });
        }
        Ok(RateLimit {
            limit: literal_limit(el)?,
            apis,
            outputs: RateLimitOutputs::from_element(el)?,
        })
    }

    /// The counters for a request of `subscription_id` to `api`/`op`. `scope`
    /// names where the policy sits (e.g. `product:starter`), so the same
    /// subscription under two policies keeps two counters.
    pub fn counters(
        &self,
        scope: &str,
        subscription_id: &str,
        api: &ApiInfo,
        op: &OperationInfo,
    ) -> Vec<RateCounter> {
        let mut out = vec![RateCounter {
            key: CounterKey::from_parts(&["rate-limit", scope, subscription_id]),
            limit: self.limit,
        }];
        for a in self
            .apis
            .iter()
            .filter(|a| a.target.matches(&api.id, &api.name))
        {
            let api_part = a.target.key_part(&api.id);
            out.push(RateCounter {
                key: CounterKey::from_parts(&["rate-limit", scope, subscription_id, api_part]),
                limit: a.limit,
            });
            for o in a
                .operations
                .iter()
                .filter(|o| o.target.matches(&op.id, &op.name))
            {
                out.push(RateCounter {
                    key: CounterKey::from_parts(&[
                        "rate-limit",
                        scope,
                        subscription_id,
                        api_part,
                        o.target.key_part(&op.id),
                    ]),
                    limit: o.limit,
                });
            }
        }
        out
    }

    /// Checks every counter and, if all allow, counts the call in each.
    pub fn apply<T: Moment>(
        &self,
        limiter: &mut impl RateTable<T>,
        counters: &[RateCounter],
        now: T,
    ) -> RateOutcome {
        decide(limiter, counters, Some(1), now)
    }

    /// The 429 for a limited outcome.
    pub fn failure(&self, outcome: &RateOutcome) -> Failure {
        self.outputs.failure(outcome)
    }
}

/// What a rate-limit store operation decides over `counters`.
///
/// Without `add`: whether one more call fits in each, counting nothing. With
/// `add: Some(n)`: all or nothing, if one call fits in every counter, `n` are
/// counted in each (one counter: checked and counted at once). The limits are
/// applied independently, as APIM does for product, API and operation: the
/// outcome is the longest wait among the counters that refuse, else the
/// fewest calls left.
pub fn decide<T: Moment>(
    table: &mut impl RateTable<T>,
    counters: &[RateCounter],
    add: Option<u64>,
    now: T,
) -> RateOutcome {
    let outcome = |d: RateDecision, total: u64| match d {
        RateDecision::Allowed { remaining } => RateOutcome::Allowed { remaining, total },
        RateDecision::Limited { retry_after } => RateOutcome::Limited { retry_after, total },
    };
    if let ([c], Some(n)) = (counters, add) {
        let d = table.with_rate(&c.key, |l| {
            l.check_and_add(&c.key, c.limit.calls, c.limit.period, n, now)
        });
        return outcome(d, c.limit.calls);
    }
    let mut worst: Option<(Duration, u64)> = None;
    let mut best: Option<(u64, u64)> = None;
    for c in counters {
        match table.with_rate(&c.key, |l| {
            l.check(&c.key, c.limit.calls, c.limit.period, now)
        }) {
            RateDecision::Limited { retry_after } => {
                if worst.is_none_or(|(r, _)| retry_after > r) {
                    worst = Some((retry_after, c.limit.calls));
                }
            }
            RateDecision::Allowed { remaining } => {
                if best.is_none_or(|(r, _)| remaining < r) {
                    best = Some((remaining, c.limit.calls));
                }
            }
        }
    }
    if let Some((retry_after, total)) = worst {
        return RateOutcome::Limited { retry_after, total };
    }
    let Some(n) = add else {
        let (remaining, total) = best.unwrap_or((0, 0));
        return RateOutcome::Allowed { remaining, total };
    };
    let mut best: Option<(u64, u64)> = None;
    for c in counters {
        // Another thread may have filled a counter since the check; the call
        // was admitted on the check, so it is counted regardless.
        let d = table.with_rate(&c.key, |l| {
            l.add(&c.key, n, c.limit.period, now);
            l.check_cost(&c.key, c.limit.calls, c.limit.period, 0, now)
        });
        if let RateDecision::Allowed { remaining } = d {
            if best.is_none_or(|(r, _)| remaining < r) {
                best = Some((remaining, c.limit.calls));
            }
        }
    }
    let (remaining, total) = best.unwrap_or((0, 0));
    RateOutcome::Allowed { remaining, total }
}

/// Counts `calls` calls in every counter, whatever their limits (a deferred
/// increment).
pub fn add_calls<T: Moment>(
    table: &mut impl RateTable<T>,
    counters: &[RateCounter],
    calls: u64,
    now: T,
) {
    for c in counters {
        table.with_rate(&c.key, |l| l.add(&c.key, calls, c.limit.period, now));
    }
}

/// `<rate-limit-by-key>`: call rate per arbitrary key.
#[derive(Debug, Clone)]
pub struct RateLimitByKey {
    /// Calls allowed per window.
    pub calls: Param<u64>,
    /// Window length in seconds.
    pub renewal_period: Param<u64>,
    /// The key (usually an expression).
    pub counter_key: Template,
    /// Whether a request counts, evaluated after the response.
    pub increment_condition: Option<Param<bool>>,
    /// How much a request counts.
    pub increment_count: Param<u64>,
    /// Header and variable names.
    pub outputs: RateLimitOutputs,
}

/// A `rate-limit-by-key` evaluated for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRateKey {
    /// The counter.
    pub key: CounterKey,
    /// Its limit.
    pub limit: Limit,
    /// How much this request counts.
    pub count: u64,
}

impl ResolvedRateKey {
    /// The counter this key counts in.
    pub fn counter(&self) -> RateCounter {
        RateCounter {
            key: self.key.clone(),
            limit: self.limit,
        }
    }
}

impl RateLimitByKey {
    /// Compiles `<rate-limit-by-key>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &[
                "calls",
                "renewal-period",
                "counter-key",
                "increment-condition",
                "increment-count",
                "retry-after-header-name",
                "retry-after-variable-name",
                "remaining-calls-header-name",
                "remaining-calls-variable-name",
                "total-calls-header-name",
            ],
        )?;
        attrs::only_children(el, &[])?;
        let renewal_period = Param::required(el, "renewal-period")?;
        if let Param::Lit(p) = renewal_period {
            check_period(el, p)?;
        }
        Ok(RateLimitByKey {
            calls: Param::required(el, "calls")?,
            renewal_period,
            counter_key: attrs::required_template(el, "counter-key")?,
            increment_condition: Param::attr(el, "increment-condition")?,
            increment_count: Param::attr_or(el, "increment-count", 1)?,
            outputs: RateLimitOutputs::from_element(el)?,
        })
    }

    /// Whether counting waits for the end of outbound (APIM defers it when the
    /// condition or the count is an expression).
    pub fn defers_increment(&self) -> bool {
        self.increment_condition
            .as_ref()
            .is_some_and(Param::is_expr)
            || self.increment_count.is_expr()
    }

    /// Evaluates the key and numbers for this request.
    pub fn resolve(&self, ctx: &Context) -> Result<ResolvedRateKey, Failure> {
        let period = self
            .renewal_period
            .resolve(ctx)?
            .clamp(1, MAX_RENEWAL_PERIOD);
        Ok(ResolvedRateKey {
            key: with_text(&self.counter_key, ctx, |key| {
                CounterKey::new("rate-limit-by-key", key)
            })?,
            limit: Limit {
                calls: self.calls.resolve(ctx)?,
                period: Duration::from_secs(period),
            },
            count: self.increment_count.resolve(ctx)?,
        })
    }

    /// What the inbound decision counts: `r.count` at once, unless counting
    /// is deferred or never happens (see [`decide`]).
    pub fn inbound_add(&self, r: &ResolvedRateKey) -> Option<u64> {
        // A literal `increment-condition="false"` never counts.
        let never = matches!(self.increment_condition, Some(Param::Lit(false)));
        (!(self.defers_increment() || never)).then_some(r.count)
    }

    /// Inbound decision: checks, and counts at once unless counting is deferred.
    pub fn check<T: Moment>(
        &self,
        limiter: &mut impl RateTable<T>,
        r: &ResolvedRateKey,
        now: T,
    ) -> RateOutcome {
        decide(limiter, &[r.counter()], self.inbound_add(r), now)
    }

    /// Whether this request counts (the increment condition against the final
    /// context; true without one).
    pub fn should_increment(&self, ctx: &Context) -> Result<bool, Failure> {
        match &self.increment_condition {
            None => Ok(true),
            Some(p) => p.resolve(ctx),
        }
    }

    /// The deferred count, at the end of outbound (only when `defers_increment`).
    pub fn increment<T: Moment>(
        &self,
        limiter: &mut impl RateTable<T>,
        r: &ResolvedRateKey,
        now: T,
    ) {
        add_calls(limiter, &[r.counter()], r.count, now);
    }

    /// The 429 for a limited outcome.
    pub fn failure(&self, outcome: &RateOutcome) -> Failure {
        self.outputs.failure(outcome)
    }
}

#[cfg(test)]
#[path = "rate_limit_tests.rs"]
mod tests;
