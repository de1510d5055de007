//! `llm-token-limit` and `llm-emit-token-metric` for any OpenAI-compatible
//! backend: token counts from the response's `usage`, a prompt estimate from
//! the request before forwarding.
//!
//! Run-time order for the pipeline:
//! 1. inbound, `llm-token-limit`: resolve the key and the estimate
//!    ([`LlmTokenLimit::resolve`]) and ask the store once
//!    ([`LlmTokenLimit::store_ops`]: the tokens-per-minute window as a
//!    `Rate` counter of 60 s, the quota as a `Quota` counter; the same
//!    operations and Redis scripts as `rate-limit-by-key` and `quota-by-key`).
//!    [`LlmTokenLimit::admit`] makes the answers a 429 with `Retry-After`
//!    (per-minute limit), a 403 (quota), or an admission whose counting waits
//!    for the response ([`LlmDeferred`]).
//! 2. inbound, `llm-emit-token-metric`: the dimensions are resolved at once,
//!    the samples wait for the response ([`LlmDeferred`]).
//! 3. end of outbound ([`LlmDeferred::on_response`]): the tokens the response
//!    reports ([`usage`]) are counted (store writes), the consumed and
//!    remaining tokens set on the response, the metric samples emitted.
//!
//! The estimate ([`estimate_prompt_tokens`]) is the text of the request's
//! prompt (`messages[].content`, `prompt`, `input`) at 4 characters a token
//! plus 3 tokens a message and 3 for the reply's priming: OpenAI's rule of
//! thumb, not a tokenizer.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;

use super::attrs;
use super::context::{Context, Response};
use super::counters::{retry_after_secs, CounterKey, QuotaAnchor, QuotaLimits};
use super::emit_metric::{namespace, Dimension, MetricSample};
use super::error::{Failure, PolicyError};
use super::param::{eval_text, json_error_response, Param};
use super::quota::{QuotaCounter, QuotaOutcome};
use super::rate_limit::{Limit, RateCounter, RateOutcome};
use super::store::{StoreOp, StoreResult};
use super::xml::Element;
use crate::expr::{Template, Value};

/// Tokens a request or response used, as its `usage` says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// `prompt_tokens` (`input_tokens` in the Responses API).
    pub prompt: u64,
    /// `completion_tokens` (`output_tokens`).
    pub completion: u64,
    /// `total_tokens` (prompt and completion when absent).
    pub total: u64,
}

fn usage_of(v: &Json) -> Option<Usage> {
    let u = v.get("usage")?.as_object()?;
    let n = |names: &[&str]| names.iter().find_map(|k| u.get(*k).and_then(Json::as_u64));
    let prompt = n(&["prompt_tokens", "input_tokens"]).unwrap_or(0);
    let completion = n(&["completion_tokens", "output_tokens"]).unwrap_or(0);
    let total = n(&["total_tokens"]).unwrap_or(prompt + completion);
    Some(Usage {
        prompt,
        completion,
        total,
    })
}

/// The `usage` of an OpenAI-compatible response: of its JSON body, or of a
/// streamed (`text/event-stream`) body the last event that has one (sent
/// when the request asks `stream_options: {"include_usage": true}`). `None`
/// when it reports none.
pub fn usage(response: &Response) -> Option<Usage> {
    let body = response.body.as_ref()?;
    if let Ok(v) = serde_json::from_slice::<Json>(body) {
        return usage_of(&v);
    }
    let text = std::str::from_utf8(body).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data:"))
        .find_map(|d| {
            serde_json::from_str::<Json>(d.trim())
                .ok()
                .and_then(|v| usage_of(&v))
        })
}

/// The completion tokens of a streamed body without `usage`: the text of
/// its `choices[].delta.content` at 4 characters a token.
fn streamed_completion_estimate(response: &Response) -> u64 {
    let Some(text) = response
        .body
        .as_ref()
        .and_then(|b| std::str::from_utf8(b).ok())
    else {
        return 0;
    };
    let chars: usize = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Json>(d.trim()).ok())
        .filter_map(|v| v.get("choices").and_then(Json::as_array).cloned())
        .flatten()
        .filter_map(|c| {
            c.pointer("/delta/content")
                .and_then(Json::as_str)
                .map(|s| s.chars().count())
        })
        .sum();
    tokens_for_chars(chars)
}

fn tokens_for_chars(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

fn text_chars(v: &Json) -> usize {
    match v {
        Json::String(s) => s.chars().count(),
        // Content parts: `[{"type": "text", "text": "..."}]`.
        Json::Array(items) => items
            .iter()
            .map(|i| match i {
                Json::Object(o) => o.get("text").map_or(0, text_chars),
                other => text_chars(other),
            })
            .sum(),
        _ => 0,
    }
}

/// The prompt tokens of an OpenAI-compatible request body, estimated (see
/// the module documentation); 0 without a body.
pub fn estimate_prompt_tokens(body: &[u8]) -> u64 {
    if body.is_empty() {
        return 0;
    }
    let Ok(v) = serde_json::from_slice::<Json>(body) else {
        return tokens_for_chars(String::from_utf8_lossy(body).chars().count());
    };
    let mut tokens = 0;
    if let Some(messages) = v.get("messages").and_then(Json::as_array) {
        for m in messages {
            tokens += 3 + tokens_for_chars(m.get("content").map_or(0, text_chars));
        }
        tokens += 3;
    }
    for field in ["prompt", "input"] {
        match v.get(field) {
            Some(Json::Array(items)) => {
                for i in items {
                    let chars = match i {
                        Json::Object(o) => o.get("content").map_or(0, text_chars),
                        other => text_chars(other),
                    };
                    tokens += tokens_for_chars(chars);
                }
            }
            Some(other) => tokens += tokens_for_chars(text_chars(other)),
            None => {}
        }
    }
    tokens
}

/// `token-quota-period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    /// Every hour, on the hour (UTC).
    Hourly,
    /// Every day, at midnight UTC.
    Daily,
    /// Every week, from Monday midnight UTC.
    Weekly,
    /// Every 30 days from the key's first use.
    Monthly,
    /// Every 365 days from the key's first use.
    Yearly,
}

impl QuotaPeriod {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "hourly" => QuotaPeriod::Hourly,
            "daily" => QuotaPeriod::Daily,
            "weekly" => QuotaPeriod::Weekly,
            "monthly" => QuotaPeriod::Monthly,
            "yearly" => QuotaPeriod::Yearly,
            _ => return None,
        })
    }

    /// The quota counter's period and where periods start.
    fn limits(self, tokens: u64) -> QuotaLimits {
        // 1970-01-05 was a Monday.
        const MONDAY: i64 = 4 * 86_400;
        let (period_secs, anchor) = match self {
            QuotaPeriod::Hourly => (3_600, QuotaAnchor::At(0)),
            QuotaPeriod::Daily => (86_400, QuotaAnchor::At(0)),
            QuotaPeriod::Weekly => (7 * 86_400, QuotaAnchor::At(MONDAY)),
            QuotaPeriod::Monthly => (30 * 86_400, QuotaAnchor::FirstUse),
            QuotaPeriod::Yearly => (365 * 86_400, QuotaAnchor::FirstUse),
        };
        QuotaLimits {
            calls: Some(tokens),
            kilobytes: None,
            period_secs,
            anchor,
        }
    }
}

/// `<llm-token-limit>`.
#[derive(Debug, Clone)]
pub struct LlmTokenLimit {
    /// The key (one counter per value, whatever the scope).
    pub counter_key: Template,
    /// Prompt and completion tokens per minute, if limited.
    pub tokens_per_minute: Option<Param<u64>>,
    /// Tokens per quota period, if limited.
    pub token_quota: Option<Param<u64>>,
    /// The quota's period.
    pub token_quota_period: QuotaPeriod,
    /// Count the prompt's estimate before forwarding.
    pub estimate_prompt_tokens: bool,
    /// Header carrying the retry interval on a 429/403 (default `Retry-After`).
    pub retry_after_header_name: String,
    /// Variable receiving the retry interval in seconds.
    pub retry_after_variable_name: Option<String>,
    /// Response header with the tokens left this minute.
    pub remaining_tokens_header_name: Option<String>,
    /// Variable with the tokens left this minute.
    pub remaining_tokens_variable_name: Option<String>,
    /// Response header with the tokens left in the quota.
    pub remaining_quota_tokens_header_name: Option<String>,
    /// Variable with the tokens left in the quota.
    pub remaining_quota_tokens_variable_name: Option<String>,
    /// Response header with the tokens the request used.
    pub tokens_consumed_header_name: Option<String>,
    /// Variable with the tokens the request used.
    pub tokens_consumed_variable_name: Option<String>,
}

/// An `llm-token-limit` evaluated for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTokenLimit {
    /// The per-minute counter, if limited.
    pub rate: Option<RateCounter>,
    /// The quota counter, if limited.
    pub quota: Option<QuotaCounter>,
    /// The prompt's estimate (0 unless estimating).
    pub estimate: u64,
}

impl LlmTokenLimit {
    /// Compiles `<llm-token-limit>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &[
                "counter-key",
                "tokens-per-minute",
                "token-quota",
                "token-quota-period",
                "estimate-prompt-tokens",
                "retry-after-header-name",
                "retry-after-variable-name",
                "remaining-tokens-header-name",
                "remaining-tokens-variable-name",
                "remaining-quota-tokens-header-name",
                "remaining-quota-tokens-variable-name",
                "tokens-consumed-header-name",
                "tokens-consumed-variable-name",
            ],
        )?;
        attrs::only_children(el, &[])?;
        let tokens_per_minute = Param::attr(el, "tokens-per-minute")?;
        let token_quota: Option<Param<u64>> = Param::attr(el, "token-quota")?;
        let period = el.attr("token-quota-period");
        if tokens_per_minute.is_none() && token_quota.is_none() {
            return Err(PolicyError::at(
                el,
                "tokens-per-minute, token-quota (with token-quota-period), or both are required",
            ));
        }
        let token_quota_period = match (&token_quota, period) {
            (Some(_), None) => {
                return Err(PolicyError::at(
                    el,
                    "token-quota needs token-quota-period (Hourly, Daily, Weekly, Monthly or Yearly)",
                ))
            }
            (None, Some(_)) => {
                return Err(PolicyError::at(el, "token-quota-period needs token-quota"))
            }
            (_, Some(p)) => QuotaPeriod::parse(p).ok_or_else(|| {
                PolicyError::at(
                    el,
                    format!("token-quota-period must be Hourly, Daily, Weekly, Monthly or Yearly, not '{p}'"),
                )
            })?,
            (None, None) => QuotaPeriod::Hourly,
        };
        Ok(LlmTokenLimit {
            counter_key: attrs::required_template(el, "counter-key")?,
            tokens_per_minute,
            token_quota,
            token_quota_period,
            estimate_prompt_tokens: attrs::boolean(el, "estimate-prompt-tokens", false)?,
            retry_after_header_name: attrs::output_name(el, "retry-after-header-name")?
                .unwrap_or_else(|| "Retry-After".into()),
            retry_after_variable_name: attrs::output_name(el, "retry-after-variable-name")?,
            remaining_tokens_header_name: attrs::output_name(el, "remaining-tokens-header-name")?,
            remaining_tokens_variable_name: attrs::output_name(
                el,
                "remaining-tokens-variable-name",
            )?,
            remaining_quota_tokens_header_name: attrs::output_name(
                el,
                "remaining-quota-tokens-header-name",
            )?,
            remaining_quota_tokens_variable_name: attrs::output_name(
                el,
                "remaining-quota-tokens-variable-name",
            )?,
            tokens_consumed_header_name: attrs::output_name(el, "tokens-consumed-header-name")?,
            tokens_consumed_variable_name: attrs::output_name(el, "tokens-consumed-variable-name")?,
        })
    }

    /// Evaluates the key and limits, and estimates the prompt, for this request.
    pub fn resolve(&self, ctx: &Context) -> Result<ResolvedTokenLimit, Failure> {
        let key = eval_text(&self.counter_key, ctx)?;
        let rate = match &self.tokens_per_minute {
            Some(p) => Some(RateCounter {
                key: CounterKey::new("llm-token-limit", &key),
                limit: Limit {
                    calls: p.resolve(ctx)?,
                    period: Duration::from_secs(60),
                },
            }),
            None => None,
        };
        let quota = match &self.token_quota {
            Some(p) => Some(QuotaCounter {
                key: CounterKey::new("llm-token-quota", &key),
                limits: self.token_quota_period.limits(p.resolve(ctx)?),
            }),
            None => None,
        };
        let estimate = if self.estimate_prompt_tokens {
            estimate_prompt_tokens(ctx.request.body.as_deref().unwrap_or_default())
        } else {
            0
        };
        Ok(ResolvedTokenLimit {
            rate,
            quota,
            estimate,
        })
    }

    /// The store operations that decide admission, in this order: the
    /// per-minute window (counting the estimate when there is one, else
    /// checking that a token is left), then the quota (checked only).
    pub fn store_ops(&self, r: &ResolvedTokenLimit) -> Vec<StoreOp> {
        let mut ops = Vec::with_capacity(2);
        if let Some(c) = &r.rate {
            ops.push(StoreOp::Rate {
                counters: vec![c.clone()],
                add: (r.estimate > 0).then_some(r.estimate),
            });
        }
        if let Some(q) = &r.quota {
            ops.push(StoreOp::Quota {
                counters: vec![q.clone()],
                add: None,
            });
        }
        ops
    }

    /// Admission from the store's results (in [`store_ops`](Self::store_ops)'
    /// order; missing: the store could not answer and limits fail open).
    pub fn admit(
        self: &Arc<Self>,
        r: &ResolvedTokenLimit,
        mut results: impl Iterator<Item = StoreResult>,
        ctx: &mut Context,
    ) -> Result<LlmDeferred, Failure> {
        let mut remaining_tokens = None;
        if let Some(c) = &r.rate {
            match results.next() {
                Some(StoreResult::Rate(RateOutcome::Limited { retry_after, .. })) => {
                    let secs = retry_after_secs(retry_after);
                    self.set_var(ctx, &self.remaining_tokens_variable_name, 0);
                    return Err(self.refusal(
                        ctx,
                        429,
                        "Too Many Requests",
                        "TokenLimitExceeded",
                        format!("Token limit is exceeded. Try again in {secs} seconds."),
                        secs,
                    ));
                }
                Some(StoreResult::Rate(RateOutcome::Allowed { remaining, .. })) => {
                    remaining_tokens = Some(remaining)
                }
                _ => remaining_tokens = Some(c.limit.calls),
            }
        }
        let mut remaining_quota = None;
        if let Some(q) = &r.quota {
            match results.next() {
                Some(StoreResult::Quota(QuotaOutcome::Exceeded { retry_after, .. })) => {
                    let secs = retry_after.map_or(0, retry_after_secs);
                    self.set_var(ctx, &self.remaining_quota_tokens_variable_name, 0);
                    return Err(self.refusal(
                        ctx,
                        403,
                        "Forbidden",
                        "TokenQuotaExceeded",
                        format!("Token quota is exceeded. Try again in {secs} seconds."),
                        secs,
                    ));
                }
                Some(StoreResult::Quota(QuotaOutcome::Allowed {
                    remaining_calls, ..
                })) => remaining_quota = remaining_calls,
                _ => remaining_quota = q.limits.calls,
            }
        }
        if let Some(n) = remaining_tokens {
            self.set_var(ctx, &self.remaining_tokens_variable_name, n);
        }
        if let Some(n) = remaining_quota {
            self.set_var(ctx, &self.remaining_quota_tokens_variable_name, n);
        }
        Ok(LlmDeferred::Count {
            limit: Arc::clone(self),
            resolved: Box::new(r.clone()),
            remaining_tokens,
            remaining_quota,
        })
    }

    fn set_var(&self, ctx: &mut Context, name: &Option<String>, n: u64) {
        if let Some(v) = name {
            ctx.variables
                .insert(v.clone(), Value::Int(i64::try_from(n).unwrap_or(i64::MAX)));
        }
    }

    fn refusal(
        &self,
        ctx: &mut Context,
        status: u16,
        phrase: &str,
        reason: &str,
        message: String,
        secs: u64,
    ) -> Failure {
        let mut response = json_error_response(status, phrase, &message);
        if secs > 0 {
            response
                .headers
                .append(&self.retry_after_header_name, secs.to_string());
            self.set_var(ctx, &self.retry_after_variable_name, secs);
        }
        Failure {
            reason: reason.into(),
            message,
            response: Some(Box::new(response)),
        }
    }
}

/// `<llm-emit-token-metric namespace><dimension .../></llm-emit-token-metric>`.
#[derive(Debug, Clone)]
pub struct LlmEmitTokenMetric {
    /// The metrics' namespace.
    pub namespace: String,
    /// Their dimensions.
    pub dimensions: Vec<Dimension>,
}

/// The metric names APIM emits, in this order: total, prompt, completion.
pub const TOKEN_METRICS: [&str; 3] = ["Total Tokens", "Prompt Tokens", "Completion Tokens"];

impl LlmEmitTokenMetric {
    /// Compiles `<llm-emit-token-metric>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["namespace"])?;
        attrs::only_children(el, &["dimension"])?;
        let dimensions = Dimension::compile_all(el)?;
        if dimensions.is_empty() {
            return Err(PolicyError::at(el, "at least one <dimension> is required"));
        }
        Ok(LlmEmitTokenMetric {
            namespace: namespace(el)?,
            dimensions,
        })
    }

    /// Resolves the dimensions now; the samples wait for the response.
    pub fn defer(&self, ctx: &Context) -> Result<LlmDeferred, Failure> {
        let mut dimensions = Vec::with_capacity(self.dimensions.len());
        for d in &self.dimensions {
            dimensions.push(d.resolve(ctx)?);
        }
        Ok(LlmDeferred::Metric {
            namespace: self.namespace.clone(),
            dimensions,
            estimate: estimate_prompt_tokens(ctx.request.body.as_deref().unwrap_or_default()),
        })
    }
}

/// What an LLM policy does once the response is known.
#[derive(Debug, Clone)]
pub enum LlmDeferred {
    /// `llm-token-limit`: count the tokens used.
    Count {
        /// The policy.
        limit: Arc<LlmTokenLimit>,
        /// Its counters for this request.
        resolved: Box<ResolvedTokenLimit>,
        /// Tokens left this minute at admission (the estimate counted).
        remaining_tokens: Option<u64>,
        /// Tokens left in the quota at admission.
        remaining_quota: Option<u64>,
    },
    /// `llm-emit-token-metric`: emit the samples.
    Metric {
        /// The metrics' namespace.
        namespace: String,
        /// The dimensions, resolved at the policy.
        dimensions: Vec<(String, String)>,
        /// The prompt's estimate, for streamed responses without `usage`.
        estimate: u64,
    },
}

/// The tokens of the response in `ctx`: its `usage`, else (a stream without
/// it, an error) the prompt's estimate and the streamed completion's.
fn tokens_used(ctx: &Context, estimate: u64) -> Usage {
    let Some(resp) = ctx.response.as_ref() else {
        return Usage::default();
    };
    usage(resp).unwrap_or_else(|| {
        let completion = streamed_completion_estimate(resp);
        let prompt = if completion > 0 || (200..300).contains(&resp.status) {
            estimate
        } else {
            0
        };
        Usage {
            prompt,
            completion,
            total: prompt + completion,
        }
    })
}

impl LlmDeferred {
    /// At the end of outbound: the store writes to make and the samples to
    /// emit; headers and variables set on `ctx`.
    pub fn on_response(
        self,
        ctx: &mut Context,
        writes: &mut Vec<StoreOp>,
        metrics: &mut Vec<MetricSample>,
    ) {
        match self {
            LlmDeferred::Count {
                limit,
                resolved,
                remaining_tokens,
                remaining_quota,
            } => {
                let used = tokens_used(ctx, resolved.estimate).total;
                if let Some(c) = &resolved.rate {
                    // The estimate was counted at admission.
                    let more = used.saturating_sub(resolved.estimate);
                    if more > 0 {
                        writes.push(StoreOp::RateAdd {
                            counters: vec![c.clone()],
                            calls: more,
                        });
                    }
                }
                if let (Some(q), true) = (&resolved.quota, used > 0) {
                    writes.push(StoreOp::QuotaAdd {
                        counters: vec![q.clone()],
                        calls: used,
                        bytes: 0,
                    });
                }
                let left_tokens = remaining_tokens
                    .map(|r| r.saturating_sub(used.saturating_sub(resolved.estimate)));
                let left_quota = remaining_quota.map(|r| r.saturating_sub(used));
                limit.set_var(ctx, &limit.tokens_consumed_variable_name, used);
                if let Some(n) = left_tokens {
                    limit.set_var(ctx, &limit.remaining_tokens_variable_name, n);
                }
                if let Some(n) = left_quota {
                    limit.set_var(ctx, &limit.remaining_quota_tokens_variable_name, n);
                }
                if let Some(resp) = ctx.response.as_mut() {
                    let headers = [
                        (&limit.tokens_consumed_header_name, Some(used)),
                        (&limit.remaining_tokens_header_name, left_tokens),
                        (&limit.remaining_quota_tokens_header_name, left_quota),
                    ];
                    for (name, value) in headers {
                        if let (Some(h), Some(v)) = (name, value) {
                            resp.headers.set(h, v.to_string());
                        }
                    }
                }
            }
            LlmDeferred::Metric {
                namespace,
                dimensions,
                estimate,
            } => {
                let u = tokens_used(ctx, estimate);
                if u.total == 0 {
                    return;
                }
                for (name, value) in TOKEN_METRICS.iter().zip([u.total, u.prompt, u.completion]) {
                    metrics.push(MetricSample {
                        namespace: namespace.clone(),
                        name: (*name).to_string(),
                        value: value as f64,
                        dimensions: dimensions.clone(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "llm_tests.rs"]
mod tests;
