//! `quota` (per subscription, with per-API and per-operation quotas) and
//! `quota-by-key`: compiled configs and their decisions over a [`QuotaTable`]
//! (one [`QuotaStore`](super::counters::QuotaStore), or the shards of the
//! driver's store).
//!
//! Run-time order for the pipeline:
//! 1. inbound: `Quota::counters`, or `QuotaByKey::resolve`, and ask the store
//!    (`StoreOp::Quota`, whose meaning is [`decide`]: what
//!    `check_and_count_call` / `QuotaByKey::check` do on a local table); an
//!    exceeded outcome becomes `failure()` (403).
//! 2. after the response: count bandwidth (request plus response bytes) and,
//!    for `quota-by-key` whose increment is deferred (`defers_increment()`),
//!    the calls if `should_increment(ctx)` (`StoreOp::QuotaAdd`, [`add`]). APIM counts a key only
//!    once per request even if several policies name it: the pipeline counts a
//!    `quota-by-key` key at the first policy naming it; a later one only checks
//!    (`pipeline/quota_once.rs`).

// `Failure` carries the prepared response by value; it is the pipeline's type.

use std::time::Duration;

use super::attrs;
use super::context::{ApiInfo, Context, OperationInfo};
use super::counters::{
    format_timespan, CounterKey, QuotaAnchor, QuotaDecision, QuotaKind, QuotaLimits, QuotaTable,
};
use super::error::{Failure, PolicyError};
use super::param::{eval_text, json_error_response, Param};
use super::rate_limit::Target;
use super::xml::Element;
use crate::expr::Template;

/// APIM's `first-period-start` default, 0001-01-01T00:00:00Z, in Unix seconds.
pub const DEFAULT_FIRST_PERIOD_START: i64 = -62_135_596_800;

/// Calls and/or kilobytes per renewal period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSpec {
    /// Calls per period.
    pub calls: Option<u64>,
    /// Kilobytes per period.
    pub kilobytes: Option<u64>,
    /// Period in seconds; 0 = never renews.
    pub period_secs: u64,
}

impl QuotaSpec {
    fn from_element(el: &Element, inherited_period: Option<u64>) -> Result<Self, PolicyError> {
        let calls = attrs::parsed(el, "calls")?;
        let kilobytes = attrs::parsed(el, "bandwidth")?;
        if calls.is_none() && kilobytes.is_none() {
            return Err(PolicyError::at(
                el,
                "either 'calls', 'bandwidth', or both must be specified",
            ));
        }
        let period_secs = match (attrs::parsed(el, "renewal-period")?, inherited_period) {
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => {
                return Err(PolicyError::at(
                    el,
                    "attribute 'renewal-period' is required",
                ))
            }
        };
        Ok(QuotaSpec {
            calls,
            kilobytes,
            period_secs,
        })
    }

    /// The store's limits with periods starting at `anchor`.
    pub fn limits(&self, anchor: QuotaAnchor) -> QuotaLimits {
        QuotaLimits {
            calls: self.calls,
            kilobytes: self.kilobytes,
            period_secs: self.period_secs,
            anchor,
        }
    }
}

/// A per-operation quota inside `<api>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationQuota {
    /// Which operation.
    pub target: Target,
    /// Its quota.
    pub spec: QuotaSpec,
}

/// A per-API quota, with per-operation quotas inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiQuota {
    /// Which API.
    pub target: Target,
    /// Its quota.
    pub spec: QuotaSpec,
    /// Quotas of its operations.
    pub operations: Vec<OperationQuota>,
}

/// One quota counter that applies to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaCounter {
    /// The key in the store.
    pub key: CounterKey,
    /// Its limits.
    pub limits: QuotaLimits,
}

/// What a quota policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaOutcome {
    /// Within quota.
    Allowed {
        /// Calls left in the tightest counter, if calls are limited.
        remaining_calls: Option<u64>,
        /// Bytes left in the tightest counter, if bandwidth is limited.
        remaining_bytes: Option<u64>,
    },
    /// Out of quota.
    Exceeded {
        /// Which limit.
        kind: QuotaKind,
        /// Until the period renews; `None` if it never does.
        retry_after: Option<Duration>,
    },
}

impl From<QuotaDecision> for QuotaOutcome {
    fn from(d: QuotaDecision) -> Self {
        match d {
            QuotaDecision::Allowed {
                remaining_calls,
                remaining_bytes,
            } => QuotaOutcome::Allowed {
                remaining_calls,
                remaining_bytes,
            },
            QuotaDecision::Exceeded { kind, retry_after } => {
                QuotaOutcome::Exceeded { kind, retry_after }
            }
        }
    }
}

/// The 403 APIM sends when a quota runs out (`QuotaExceeded`), with `Retry-After`.
pub fn quota_failure(outcome: &QuotaOutcome) -> Failure {
    let (kind, retry_after) = match outcome {
        QuotaOutcome::Exceeded { kind, retry_after } => (*kind, *retry_after),
        QuotaOutcome::Allowed { .. } => (QuotaKind::Calls, None),
    };
    let what = match kind {
        QuotaKind::Calls => "Out of call volume quota.",
        QuotaKind::Bandwidth => "Out of bandwidth quota.",
    };
    let message = match retry_after {
        Some(d) => format!(
            "{what} Quota will be replenished in {}.",
            format_timespan(d)
        ),
        None => what.to_string(),
    };
    // APIM's reason phrase for this 403 is "Quota Exceeded".
    let mut response = json_error_response(403, "Quota Exceeded", &message);
    if let Some(d) = retry_after {
        response
            .headers
            .append("Retry-After", d.as_secs().to_string());
    }
    Failure {
        reason: "QuotaExceeded".into(),
        message,
        response: Some(Box::new(response)),
    }
}

/// `<quota>`: per-subscription call and bandwidth quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// The subscription-wide quota.
    pub spec: QuotaSpec,
    /// Per-API quotas.
    pub apis: Vec<ApiQuota>,
}

impl Quota {
    /// Compiles `<quota>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["calls", "bandwidth", "renewal-period"])?;
        attrs::only_children(el, &["api"])?;
        let spec = QuotaSpec::from_element(el, None)?;
        let mut apis = Vec::new();
        for api in el.children_named("api") {
            attrs::only(api, &["name", "calls", "bandwidth", "renewal-period"])?;
            attrs::only_children(api, &["operation"])?;
            // APIM's examples leave renewal-period off the children: inherit it.
            let api_spec = QuotaSpec::from_element(api, Some(spec.period_secs))?;
            let mut operations = Vec::new();
            for op in api.children_named("operation") {
                attrs::only(op, &["name", "calls", "bandwidth", "renewal-period"])?;
                operations.push(OperationQuota {
                    target: Target::from_element(op)?,
                    spec: QuotaSpec::from_element(op, Some(api_spec.period_secs))?,
                });
            }
            apis.push(ApiQuota {
                target: Target::from_element(api)?,
                spec: api_spec,
                operations,
            });
        }
        Ok(Quota { spec, apis })
    }

    /// The counters for a request. `scope` names where the policy sits;
    /// `subscription_start` aligns periods to the subscription's creation (APIM's
    /// rule) when known, else they start at the first counted call.
    pub fn counters(
        &self,
        scope: &str,
        subscription_id: &str,
        subscription_start: Option<i64>,
        api: &ApiInfo,
        op: &OperationInfo,
    ) -> Vec<QuotaCounter> {
        let anchor = subscription_start.map_or(QuotaAnchor::FirstUse, QuotaAnchor::At);
        let mut out = vec![QuotaCounter {
            key: CounterKey::from_parts(&["quota", scope, subscription_id]),
            limits: self.spec.limits(anchor),
        }];
        for a in self
            .apis
            .iter()
            .filter(|a| a.target.matches(&api.id, &api.name))
        {
            out.push(QuotaCounter {
                key: CounterKey::from_parts(&["quota", scope, subscription_id, &api.id]),
                limits: a.spec.limits(anchor),
            });
            for o in a
                .operations
                .iter()
                .filter(|o| o.target.matches(&op.id, &op.name))
            {
                out.push(QuotaCounter {
                    key: CounterKey::from_parts(&[
                        "quota",
                        scope,
                        subscription_id,
                        &api.id,
                        &op.id,
                    ]),
                    limits: o.spec.limits(anchor),
                });
            }
        }
        out
    }

    /// The 403 for an exceeded outcome.
    pub fn failure(&self, outcome: &QuotaOutcome) -> Failure {
        quota_failure(outcome)
    }
}

/// Checks every counter; if none is exhausted, counts one call in each.
pub fn check_and_count_call(
    store: &mut impl QuotaTable,
    counters: &[QuotaCounter],
    now_unix: i64,
) -> QuotaOutcome {
    decide(store, counters, Some(1), now_unix)
}

/// What a quota store operation decides over `counters`.
///
/// Without `add`: whether each period has room left, counting nothing. With
/// `add: Some(n)`: all or nothing, if every counter has room, `n` calls are
/// counted in each (one counter: checked and counted at once). The outcome is
/// the longest wait among the exhausted counters (a period that never renews
/// is the longest), else the least left.
pub fn decide(
    store: &mut impl QuotaTable,
    counters: &[QuotaCounter],
    add: Option<u64>,
    now_unix: i64,
) -> QuotaOutcome {
    if let ([c], Some(n)) = (counters, add) {
        return store
            .with_quota(&c.key, |s| {
                s.check_and_add_calls(&c.key, &c.limits, n, now_unix)
            })
            .into();
    }
    let wait = |r: Option<Duration>| r.unwrap_or(Duration::MAX);
    let mut worst: Option<(QuotaKind, Option<Duration>)> = None;
    let mut calls: Option<u64> = None;
    let mut bytes: Option<u64> = None;
    for c in counters {
        match store.with_quota(&c.key, |s| s.check(&c.key, &c.limits, now_unix)) {
            QuotaDecision::Exceeded { kind, retry_after } => {
                if worst.is_none_or(|(_, w)| wait(retry_after) > wait(w)) {
                    worst = Some((kind, retry_after));
                }
            }
            QuotaDecision::Allowed {
                remaining_calls,
                remaining_bytes,
            } => {
                calls = min_opt(calls, remaining_calls);
                bytes = min_opt(bytes, remaining_bytes);
            }
        }
    }
    if let Some((kind, retry_after)) = worst {
        return QuotaOutcome::Exceeded { kind, retry_after };
    }
    let Some(n) = add else {
        return QuotaOutcome::Allowed {
            remaining_calls: calls,
            remaining_bytes: bytes,
        };
    };
    let mut calls: Option<u64> = None;
    let mut bytes: Option<u64> = None;
    for c in counters {
        if let QuotaDecision::Allowed {
            remaining_calls,
            remaining_bytes,
        } = store.with_quota(&c.key, |s| {
            s.check_and_add_calls(&c.key, &c.limits, n, now_unix)
        }) {
            calls = min_opt(calls, remaining_calls);
            bytes = min_opt(bytes, remaining_bytes);
        }
    }
    QuotaOutcome::Allowed {
        remaining_calls: calls,
        remaining_bytes: bytes,
    }
}

/// Counts `calls` calls and `bytes` bytes in every counter, whatever their
/// limits (deferred increments and bandwidth, after the response).
pub fn add(
    store: &mut impl QuotaTable,
    counters: &[QuotaCounter],
    calls: u64,
    bytes: u64,
    now_unix: i64,
) {
    for c in counters {
        store.with_quota(&c.key, |s| s.add(&c.key, &c.limits, calls, bytes, now_unix));
    }
}

/// Counts `bytes` of bandwidth in every counter (after the response).
pub fn add_bytes(
    store: &mut impl QuotaTable,
    counters: &[QuotaCounter],
    bytes: u64,
    now_unix: i64,
) {
    add(store, counters, 0, bytes, now_unix);
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `<quota-by-key>`: call and bandwidth quota per arbitrary key.
#[derive(Debug, Clone)]
pub struct QuotaByKey {
    /// Calls, kilobytes and period.
    pub spec: QuotaSpec,
    /// The key (usually an expression).
    pub counter_key: Template,
    /// Whether a request counts, evaluated after the response.
    pub increment_condition: Option<Param<bool>>,
    /// How much a request counts.
    pub increment_count: Param<u64>,
    /// Unix second the periods are aligned to.
    pub first_period_start: i64,
}

/// A `quota-by-key` evaluated for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedQuotaKey {
    /// The counter.
    pub key: CounterKey,
    /// Its limits.
    pub limits: QuotaLimits,
    /// Calls this request counts for.
    pub count: u64,
    /// Another policy already named this key in this request: this one checks
    /// its limit but counts nothing (APIM counts a key once per request).
    pub repeat: bool,
}

impl ResolvedQuotaKey {
    /// The counter this key counts in.
    pub fn counter(&self) -> QuotaCounter {
        QuotaCounter {
            key: self.key.clone(),
            limits: self.limits,
        }
    }
}

impl QuotaByKey {
    /// Compiles `<quota-by-key>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &[
                "calls",
                "bandwidth",
                "renewal-period",
                "counter-key",
                "increment-condition",
                "increment-count",
                "first-period-start",
            ],
        )?;
        attrs::only_children(el, &[])?;
        let first_period_start = match el.attr("first-period-start") {
            None => DEFAULT_FIRST_PERIOD_START,
            Some(v) => parse_iso8601_utc(v).ok_or_else(|| {
                PolicyError::at(
                    el,
                    format!("first-period-start must be yyyy-MM-ddTHH:mm:ssZ, not '{v}'"),
                )
            })?,
        };
        Ok(QuotaByKey {
            spec: QuotaSpec::from_element(el, None)?,
            counter_key: attrs::required_template(el, "counter-key")?,
            increment_condition: Param::attr(el, "increment-condition")?,
            increment_count: Param::attr_or(el, "increment-count", 1)?,
            first_period_start,
        })
    }

    /// Whether counting waits for the end of outbound.
    pub fn defers_increment(&self) -> bool {
        self.increment_condition
            .as_ref()
            .is_some_and(Param::is_expr)
            || self.increment_count.is_expr()
    }

    /// Evaluates the key and count for this request.
    pub fn resolve(&self, ctx: &Context) -> Result<ResolvedQuotaKey, Failure> {
        Ok(ResolvedQuotaKey {
            key: CounterKey::new("quota-by-key", &eval_text(&self.counter_key, ctx)?),
            limits: self.spec.limits(QuotaAnchor::At(self.first_period_start)),
            count: self.increment_count.resolve(ctx)?,
            repeat: false,
        })
    }

    /// What the inbound decision counts: `r.count` at once, unless counting
    /// is deferred or never happens (see [`decide`]).
    pub fn inbound_add(&self, r: &ResolvedQuotaKey) -> Option<u64> {
        let never = matches!(self.increment_condition, Some(Param::Lit(false)));
        (!(self.defers_increment() || never)).then_some(r.count)
    }

    /// Inbound decision: checks, and counts at once unless counting is deferred.
    pub fn check(
        &self,
        store: &mut impl QuotaTable,
        r: &ResolvedQuotaKey,
        now_unix: i64,
    ) -> QuotaOutcome {
        decide(store, &[r.counter()], self.inbound_add(r), now_unix)
    }

    /// Whether this request counts (true without a condition).
    pub fn should_increment(&self, ctx: &Context) -> Result<bool, Failure> {
        match &self.increment_condition {
            None => Ok(true),
            Some(p) => p.resolve(ctx),
        }
    }

    /// The deferred call count, at the end of outbound.
    pub fn increment(&self, store: &mut impl QuotaTable, r: &ResolvedQuotaKey, now_unix: i64) {
        add(store, &[r.counter()], r.count, 0, now_unix);
    }

    /// Counts bandwidth after the response.
    pub fn add_bytes(
        &self,
        store: &mut impl QuotaTable,
        r: &ResolvedQuotaKey,
        bytes: u64,
        now_unix: i64,
    ) {
        add(store, &[r.counter()], 0, bytes, now_unix);
    }

    /// The 403 for an exceeded outcome.
    pub fn failure(&self, outcome: &QuotaOutcome) -> Failure {
        quota_failure(outcome)
    }
}

/// Parses `yyyy-MM-ddTHH:mm:ss[.fff][Z]` (UTC) to Unix seconds.
pub fn parse_iso8601_utc(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix('z'))
        .unwrap_or(s);
    let s = s.strip_suffix("+00:00").unwrap_or(s);
    let (date, time) = s.split_once(['T', 't', ' ']).unwrap_or((s, "00:00:00"));
    let mut d = date.split('-');
    let year: i64 = digits(d.next()?, 4)?;
    let month: i64 = digits(d.next()?, 2)?;
    let day: i64 = digits(d.next()?, 2)?;
    if d.next().is_some() {
        return None;
    }
    let time = time.split('.').next()?;
    let mut t = time.split(':');
    let h: i64 = digits(t.next()?, 2)?;
    let m: i64 = digits(t.next()?, 2)?;
    let sec: i64 = digits(t.next()?, 2)?;
    if t.next().is_some() || !(1..=12).contains(&month) || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

fn digits(s: &str, n: usize) -> Option<i64> {
    if s.len() != n || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;
