//! Telemetry: the upload endpoint gateways call with their token, the admin analytics
//! API, and the periodic retention prune.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_core::telemetry::batch::{Batch, MAX_BATCH_BYTES};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::auth::require_gateway;
use super::body::{check_media_type_of, read_limited};
use super::pagination::{Page, DEFAULT_TOP, MAX_TOP};
use super::problem::Problem;
use super::Shared;
use crate::store::analytics::{
    BucketStats, Filters, GroupBy, Percentiles, RecordQuery, RequestQuery, MAX_BUCKETS,
};
use crate::store::StoreError;

/// How often records past the retention are pruned.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Records deleted per prune transaction (the analytics lock is released between them).
const PRUNE_STEP: usize = 10_000;

/// The default range of `/analytics/requests`: the last hour.
const DEFAULT_SUMMARY_RANGE_MS: i64 = 3600 * 1000;

/// The default bucket: one minute.
const DEFAULT_BUCKET_SECS: i64 = 60;

/// `POST /gateways/{id}/telemetry` (gateway token).
pub fn gateway_routes() -> Router<Shared> {
    Router::new().route("/gateways/{id}/telemetry", post(upload))
}

/// `GET /analytics/requests` and `GET /analytics/records` (admin token).
pub fn admin_routes() -> Router<Shared> {
    Router::new()
        .route("/analytics/requests", get(requests))
        .route("/analytics/records", get(records))
}

fn invalid_batch(detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-batch",
        "Invalid telemetry batch",
        detail,
    )
}

async fn upload(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    // The token first: nothing is read from a caller that is not the gateway, so
    // an unauthenticated body costs nothing (the connection is closed unread).
    require_gateway(&state, &headers, &id).await?;
    check_media_type_of(&headers, "a JSON telemetry batch", |m| {
        m == "application/json" || m.ends_with("+json")
    })?;
    let bytes = read_limited(&headers, body, MAX_BATCH_BYTES).await?;
    let batch = Batch::from_json(&bytes).map_err(|e| invalid_batch(e.to_string()))?;
    let now_ms = state.now_ms();
    let ingested = state
        .analytics(move |a| match a.ingest(&id, &batch, now_ms) {
            // What the store refuses in a batch is the batch's fault: 400, naming why.
            Err(StoreError::Invalid(why)) => Ok(Err(why)),
            other => other.map(Ok),
        })
        .await?
        .map_err(invalid_batch)?;
    let body = if ingested.duplicate {
        json!({ "stored": false, "duplicate": true })
    } else {
        json!({
            "stored": true,
            "duplicate": false,
            "records": ingested.records,
            "expired": ingested.expired,
        })
    };
    Ok(Json(body).into_response())
}

/// Query parameters once decoded: `(name, value)`, names unique.
struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes the query, refusing unknown and repeated names.
    fn parse(query: Option<&str>, known: &[&str]) -> Result<Params, Problem> {
        let mut out: Vec<(String, String)> = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name)?;
            let value = percent_decode(value)?;
            if !known.contains(&name.as_str()) {
                return Err(Problem::invalid(format!(
                    "unknown parameter `{name}`; this endpoint takes {}",
                    known.join(", ")
                )));
            }
            if out.iter().any(|(n, _)| *n == name) {
                return Err(Problem::invalid(format!("`{name}` is given twice")));
            }
            out.push((name, value));
        }
        Ok(Params(out))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn time(&self, name: &str) -> Result<Option<i64>, Problem> {
        self.get(name).map(|v| parse_time(name, v)).transpose()
    }

    fn count(&self, names: &[&str]) -> Result<Option<usize>, Problem> {
        for name in names {
            if let Some(v) = self.get(name) {
                return v.parse().map(Some).map_err(|_| {
                    Problem::invalid(format!(
                        "`{name}` must be a non-negative integer, not `{v}`"
                    ))
                });
            }
        }
        Ok(None)
    }

    fn filters(&self) -> Filters {
        let take = |name: &str| self.get(name).map(str::to_owned);
        Filters {
            api: take("api"),
            operation: take("operation"),
            product: take("product"),
            subscription: take("subscription"),
            gateway: take("gateway"),
        }
    }
}

const FILTERS: [&str; 5] = ["api", "operation", "product", "subscription", "gateway"];

/// `%XX` decoding (a `+` stays a `+`: it is part of RFC 3339 offsets).
fn percent_decode(text: &str) -> Result<String, Problem> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Problem::invalid(format!("bad percent-encoding in `{text}`")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Problem::invalid(format!("`{text}` is not UTF-8")))
}

/// Percent-encodes all but unreserved characters, for links.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A time parameter: Unix milliseconds, or an RFC 3339 date-time.
fn parse_time(name: &str, value: &str) -> Result<i64, Problem> {
    let bad = || {
        Problem::invalid(format!(
            "`{name}` must be an RFC 3339 date-time or Unix milliseconds, not `{value}`"
        ))
    };
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().map_err(|_| bad());
    }
    let t = OffsetDateTime::parse(value, &Rfc3339).map_err(|_| bad())?;
    let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
    i64::try_from(ms).ok().filter(|ms| *ms >= 0).ok_or_else(bad)
}

/// Unix milliseconds as RFC 3339 in UTC (fractions only when there are some).
fn rfc3339_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `from` and `to` with their defaults: `to` now (the end of the current second),
/// `from` `default_range_ms` before it (or 0).
fn range(
    params: &Params,
    now_ms: i64,
    default_range_ms: Option<i64>,
) -> Result<(i64, i64), Problem> {
    let to = params.time("to")?.unwrap_or(now_ms);
    let from = params
        .time("from")?
        .unwrap_or_else(|| default_range_ms.map_or(0, |r| to.saturating_sub(r).max(0)));
    if from >= to {
        return Err(Problem::invalid(format!(
            "`from` ({}) must be before `to` ({})",
            rfc3339_ms(from),
            rfc3339_ms(to)
        )));
    }
    Ok((from, to))
}

async fn requests(
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let mut known = vec!["from", "to", "bucket", "groupBy"];
    known.extend(FILTERS);
    let params = Params::parse(query.as_deref(), &known)?;
    let (from_ms, to_ms) = range(&params, state.now_ms_ceil(), Some(DEFAULT_SUMMARY_RANGE_MS))?;
    let bucket_secs = match params.get("bucket") {
        None => DEFAULT_BUCKET_SECS,
        Some(v) => v.parse::<i64>().ok().filter(|s| *s > 0).ok_or_else(|| {
            Problem::invalid(format!(
                "`bucket` must be a positive whole number of seconds, not `{v}`"
            ))
        })?,
    };
    let bucket_ms = bucket_secs
        .checked_mul(1000)
        .ok_or_else(|| Problem::invalid("`bucket` is too large"))?;
    let buckets = (to_ms - 1).div_euclid(bucket_ms) - from_ms.div_euclid(bucket_ms) + 1;
    if buckets > MAX_BUCKETS {
        return Err(Problem::invalid(format!(
            "`bucket`: the range spans {buckets} buckets of {bucket_secs} s, more than {MAX_BUCKETS}; use a larger bucket or a shorter range"
        )));
    }
    let group_by = params
        .get("groupBy")
        .map(|v| {
            GroupBy::parse(v).ok_or_else(|| {
                Problem::invalid(format!(
                    "`groupBy` must be one of api, operation, product, subscription, gateway, not `{v}`"
                ))
            })
        })
        .transpose()?;
    let q = RequestQuery {
        from_ms,
        to_ms,
        bucket_ms,
        group_by,
        filters: params.filters(),
    };
    let summary = state.analytics(move |a| a.summary(&q)).await?;
    let groups: Vec<Value> = summary
        .groups
        .into_iter()
        .map(|g| {
            json!({
                "key": g.key,
                "buckets": g.buckets.iter().map(bucket_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({
        "from": rfc3339_ms(from_ms),
        "to": rfc3339_ms(to_ms),
        "bucketSeconds": bucket_secs,
        "groupBy": group_by.map(GroupBy::as_str),
        "dropped": summary.dropped,
        "groups": groups,
    }))
    .into_response())
}

fn percentiles_json(p: &Percentiles) -> Value {
    json!({ "p50": p.p50, "p95": p.p95, "p99": p.p99 })
}

fn bucket_json(b: &BucketStats) -> Value {
    json!({
        "start": rfc3339_ms(b.start_ms),
        "requests": b.requests,
        "errors": b.errors,
        "clientErrors": b.client_errors,
        "bytesIn": b.bytes_in,
        "bytesOut": b.bytes_out,
        "totalMs": percentiles_json(&b.total_ms),
        "backendMs": percentiles_json(&b.backend_ms),
        "gatewayMs": percentiles_json(&b.gateway_ms),
    })
}

async fn records(
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let mut known = vec!["from", "to", "top", "$top", "limit", "skip", "$skip"];
    known.extend(FILTERS);
    let params = Params::parse(query.as_deref(), &known)?;
    let (from_ms, to_ms) = range(&params, state.now_ms_ceil(), None)?;
    let top = params
        .count(&["top", "$top", "limit"])?
        .unwrap_or(DEFAULT_TOP)
        .min(MAX_TOP);
    let skip = params.count(&["skip", "$skip"])?.unwrap_or(0);
    let filters = params.filters();
    // The next page's link pins the range, so records arriving meanwhile do not
    // shift the pages.
    let mut link = format!("/analytics/records?from={from_ms}&to={to_ms}");
    for name in FILTERS {
        if let Some(v) = params.get(name) {
            link.push_str(&format!("&{name}={}", percent_encode(v)));
        }
    }
    let q = RecordQuery {
        from_ms,
        to_ms,
        filters,
        skip,
        top,
    };
    let (records, count) = state.analytics(move |a| a.records(&q)).await?;
    let next_skip = skip.saturating_add(records.len());
    let next_link = (!records.is_empty() && next_skip < count)
        .then(|| format!("{link}&skip={next_skip}&top={top}"));
    Ok(Json(Page {
        value: records,
        count,
        next_link,
    })
    .into_response())
}

/// Prunes records past the retention every [`PRUNE_INTERVAL`] (first at once) until
/// shutdown.
pub async fn prune_periodically(state: Shared) {
    let mut shutdown = state.shutdown.clone();
    let mut tick = tokio::time::interval(PRUNE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
                continue;
            }
        }
        if *shutdown.borrow() {
            return;
        }
        prune_now(&state).await;
    }
}

/// Prunes in steps until nothing past the retention is left.
async fn prune_now(state: &Shared) {
    let now_ms = state.now_ms();
    let (mut records, mut batches) = (0usize, 0usize);
    loop {
        match state.analytics(move |a| a.prune(now_ms, PRUNE_STEP)).await {
            Ok(p) => {
                records += p.records;
                batches += p.batches;
                if (p.records < PRUNE_STEP && p.batches < PRUNE_STEP) || *state.shutdown.borrow() {
                    break;
                }
            }
            Err(problem) => {
                tracing::warn!(error = %problem.detail, "analytics prune failed");
                return;
            }
        }
    }
    if records > 0 || batches > 0 {
        tracing::info!(records, batches, "pruned analytics past the retention");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_unix_ms() {
        assert_eq!(
            parse_time("from", "1700000000123").ok(),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            parse_time("from", "2023-11-14T22:13:20.123Z").ok(),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            parse_time("from", "2023-11-14T23:13:20+01:00").ok(),
            Some(1_700_000_000_000)
        );
        assert!(parse_time("from", "yesterday").is_err());
        assert!(parse_time("from", "-5").is_err());
        assert!(parse_time("from", "").is_err());
        assert_eq!(rfc3339_ms(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_ms(1_700_000_000_500), "2023-11-14T22:13:20.5Z");
    }

    #[test]
    fn params_decode_and_refuse_unknown_or_repeated() {
        let p = Params::parse(
            Some("api=a%2Fb&from=2023-11-14T23:13:20+01:00"),
            &["api", "from"],
        )
        .expect("parses");
        assert_eq!(p.get("api"), Some("a/b"));
        assert_eq!(p.time("from").ok().flatten(), Some(1_700_000_000_000));
        assert!(Params::parse(Some("apx=1"), &["api"]).is_err());
        assert!(Params::parse(Some("api=1&api=2"), &["api"]).is_err());
        assert!(Params::parse(Some("api=%zz"), &["api"]).is_err());
        assert_eq!(percent_encode("a/b c"), "a%2Fb%20c");
    }
}
