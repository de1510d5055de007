//! The analytics queries: requests per group and time bucket with exact weighted
//! percentiles, and raw records newest first.

use std::collections::BTreeMap;

use portcullis_core::telemetry::record::RequestRecord;
use rusqlite::types::Value;

use super::{record_from_row, to_u64, AnalyticsStore};
use crate::store::StoreError;

/// The most time buckets one query may span (per group).
pub const MAX_BUCKETS: i64 = 10_000;

/// The most records one summary query may aggregate: percentiles are exact, so every
/// matching record's times are held in memory while it runs.
pub const MAX_QUERY_RECORDS: u64 = 2_000_000;

/// Exact-match filters; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// The API's id.
    pub api: Option<String>,
    /// The operation's id.
    pub operation: Option<String>,
    /// The product's id.
    pub product: Option<String>,
    /// The subscription's id.
    pub subscription: Option<String>,
    /// The gateway's id.
    pub gateway: Option<String>,
}

/// What a summary is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The API's id.
    Api,
    /// The operation: operation ids are unique only within their API, so the key is
    /// `<api>/<operation>`.
    Operation,
    /// The product's id (none for requests without one).
    Product,
    /// The subscription's id (none for requests without one).
    Subscription,
    /// The gateway's id.
    Gateway,
}

impl GroupBy {
    /// Parses a `groupBy` value.
    pub fn parse(text: &str) -> Option<GroupBy> {
        Some(match text {
            "api" => GroupBy::Api,
            "operation" => GroupBy::Operation,
            "product" => GroupBy::Product,
            "subscription" => GroupBy::Subscription,
            "gateway" => GroupBy::Gateway,
            _ => return None,
        })
    }

    /// The `groupBy` value.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Api => "api",
            GroupBy::Operation => "operation",
            GroupBy::Product => "product",
            GroupBy::Subscription => "subscription",
            GroupBy::Gateway => "gateway",
        }
    }

    /// The SQL expression of the group key (fixed text, never the caller's).
    fn column(self) -> &'static str {
        match self {
            GroupBy::Operation => "api || '/' || operation",
            other => other.as_str(),
        }
    }
}

/// A summary query: `[from_ms, to_ms)` in buckets of `bucket_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestQuery {
    /// Start, inclusive, Unix milliseconds.
    pub from_ms: i64,
    /// End, exclusive, Unix milliseconds.
    pub to_ms: i64,
    /// Bucket width in milliseconds; buckets start at multiples of it (Unix epoch).
    pub bucket_ms: i64,
    /// How records are grouped; `None`: one group of all.
    pub group_by: Option<GroupBy>,
    /// Which records count.
    pub filters: Filters,
}

/// A raw-records query: `[from_ms, to_ms)`, newest first, a page of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordQuery {
    /// Start, inclusive, Unix milliseconds.
    pub from_ms: i64,
    /// End, exclusive, Unix milliseconds.
    pub to_ms: i64,
    /// Which records.
    pub filters: Filters,
    /// How many to skip.
    pub skip: usize,
    /// How many to return at most.
    pub top: usize,
}

/// p50, p95 and p99 of a time, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// The requests of one group in one time bucket (counts weighted by `weight`).
#[derive(Debug, Clone, PartialEq)]
pub struct BucketStats {
    /// Start of the bucket, Unix milliseconds.
    pub start_ms: i64,
    /// Requests (sum of the records' weights).
    pub requests: u64,
    /// Requests with status 5xx or 0 (no response).
    pub errors: u64,
    /// Requests with status 4xx.
    pub client_errors: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// Total time.
    pub total_ms: Percentiles,
    /// Time waiting for the backend.
    pub backend_ms: Percentiles,
    /// Time spent in the gateway.
    pub gateway_ms: Percentiles,
}

/// One group's buckets, oldest first; buckets without requests are left out.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSeries {
    /// The group's key; `None` for records without one (no product, no
    /// subscription) and for the single group of an ungrouped query.
    pub key: Option<String>,
    /// The non-empty buckets, oldest first.
    pub buckets: Vec<BucketStats>,
}

/// A summary query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSummary {
    /// Records the gateways reported dropped (buffer full) in batches received in the
    /// range (only the `gateway` filter applies: dropped records have no API).
    pub dropped: u64,
    /// The groups, by key (none first).
    pub groups: Vec<GroupSeries>,
}

/// The nearest-rank percentile `p` (in percent, 1..=100) of `(value, weight)` pairs:
/// the smallest value whose cumulative weight reaches `ceil(p / 100 * total weight)`,
/// as if each value were there `weight` times. Sorts `values` by value; 0 when there
/// are none.
pub fn percentile(values: &mut [(u64, u64)], p: u32) -> u64 {
    values.sort_unstable_by_key(|&(v, _)| v);
    percentile_sorted(values, p)
}

fn percentile_sorted(values: &[(u64, u64)], p: u32) -> u64 {
    let total: u128 = values.iter().map(|&(_, w)| u128::from(w)).sum();
    if total == 0 {
        return 0;
    }
    // The rank in 1..=total, in integers: exact.
    let rank = (u128::from(p.min(100)) * total)
        .div_ceil(100)
        .clamp(1, total);
    let mut seen = 0u128;
    for &(value, weight) in values {
        seen += u128::from(weight);
        if seen >= rank {
            return value;
        }
    }
    values.last().map_or(0, |&(v, _)| v)
}

/// The records' times and counters of one bucket while a query runs.
#[derive(Default)]
struct Acc {
    requests: u64,
    errors: u64,
    client_errors: u64,
    bytes_in: u64,
    bytes_out: u64,
    total: Vec<(u64, u64)>,
    backend: Vec<(u64, u64)>,
    gateway: Vec<(u64, u64)>,
}

impl Acc {
    fn finish(mut self, start_ms: i64) -> BucketStats {
        BucketStats {
            start_ms,
            requests: self.requests,
            errors: self.errors,
            client_errors: self.client_errors,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            total_ms: percentiles(&mut self.total),
            backend_ms: percentiles(&mut self.backend),
            gateway_ms: percentiles(&mut self.gateway),
        }
    }
}

fn percentiles(values: &mut [(u64, u64)]) -> Percentiles {
    values.sort_unstable_by_key(|&(v, _)| v);
    let ms = |us: u64| us as f64 / 1000.0;
    Percentiles {
        p50: ms(percentile_sorted(values, 50)),
        p95: ms(percentile_sorted(values, 95)),
        p99: ms(percentile_sorted(values, 99)),
    }
}

/// `WHERE` conditions and their parameters for a range and filters.
fn conditions(from_ms: i64, to_ms: i64, filters: &Filters) -> (String, Vec<Value>) {
    let mut sql = String::from("ts_ms >= ?1 AND ts_ms < ?2");
    let mut args = vec![Value::Integer(from_ms), Value::Integer(to_ms)];
    for (column, value) in [
        ("api", &filters.api),
        ("operation", &filters.operation),
        ("product", &filters.product),
        ("subscription", &filters.subscription),
        ("gateway", &filters.gateway),
    ] {
        if let Some(value) = value {
            args.push(Value::Text(value.clone()));
            sql.push_str(&format!(" AND {column} = ?{}", args.len()));
        }
    }
    (sql, args)
}

impl AnalyticsStore {
    /// Requests per group and time bucket, with exact weighted percentiles.
    /// [`StoreError::Invalid`] when the range is empty, the bucket not positive, the
    /// range spans more than [`MAX_BUCKETS`] buckets, or more than
    /// [`MAX_QUERY_RECORDS`] records match.
    pub fn summary(&self, q: &RequestQuery) -> Result<RequestSummary, StoreError> {
        if q.bucket_ms <= 0 {
            return Err(StoreError::Invalid("bucket must be positive".to_owned()));
        }
        if q.to_ms <= q.from_ms {
            return Err(StoreError::Invalid("`from` must be before `to`".to_owned()));
        }
        let first = q.from_ms.div_euclid(q.bucket_ms);
        let last = (q.to_ms - 1).div_euclid(q.bucket_ms);
        let buckets = last - first + 1;
        if buckets > MAX_BUCKETS {
            return Err(StoreError::Invalid(format!(
                "the range spans {buckets} buckets, more than {MAX_BUCKETS}: use a larger bucket or a shorter range"
            )));
        }
        let (cond, args) = conditions(q.from_ms, q.to_ms, &q.filters);
        let count: i64 = self.conn.query_row(
            &format!("SELECT COUNT(*) FROM requests WHERE {cond}"),
            rusqlite::params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        if to_u64(count)? > MAX_QUERY_RECORDS {
            return Err(StoreError::Invalid(format!(
                "{count} records match, more than {MAX_QUERY_RECORDS}: use a shorter range or filters"
            )));
        }
        let key = q.group_by.map_or("NULL", GroupBy::column);
        let mut stmt = self.conn.prepare(&format!(
            "SELECT ts_ms, {key}, status, weight, bytes_in, bytes_out, total_us, backend_us,
                    gateway_us
             FROM requests WHERE {cond}"
        ))?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
        let mut accs: BTreeMap<(Option<String>, i64), Acc> = BTreeMap::new();
        while let Some(row) = rows.next()? {
            let ts: i64 = row.get(0)?;
            let group: Option<String> = row.get(1)?;
            let status: i64 = row.get(2)?;
            let weight = to_u64(row.get(3)?)?;
            let unsigned = |i: usize| -> Result<u64, StoreError> { to_u64(row.get(i)?) };
            let bucket = ts.div_euclid(q.bucket_ms) * q.bucket_ms;
            let acc = accs.entry((group, bucket)).or_default();
            acc.requests = acc.requests.saturating_add(weight);
            if status == 0 || status >= 500 {
                acc.errors = acc.errors.saturating_add(weight);
            } else if (400..500).contains(&status) {
                acc.client_errors = acc.client_errors.saturating_add(weight);
            }
            acc.bytes_in = acc
                .bytes_in
                .saturating_add(unsigned(4)?.saturating_mul(weight));
            acc.bytes_out = acc
                .bytes_out
                .saturating_add(unsigned(5)?.saturating_mul(weight));
            acc.total.push((unsigned(6)?, weight));
            acc.backend.push((unsigned(7)?, weight));
            acc.gateway.push((unsigned(8)?, weight));
        }
        let mut groups: Vec<GroupSeries> = Vec::new();
        for ((key, start), acc) in accs {
            let stats = acc.finish(start);
            match groups.last_mut() {
                Some(g) if g.key == key => g.buckets.push(stats),
                _ => groups.push(GroupSeries {
                    key,
                    buckets: vec![stats],
                }),
            }
        }
        let dropped = self.dropped(q.from_ms, q.to_ms, q.filters.gateway.as_deref())?;
        Ok(RequestSummary { dropped, groups })
    }

    /// Records dropped by gateways in batches received in `[from_ms, to_ms)`.
    pub fn dropped(
        &self,
        from_ms: i64,
        to_ms: i64,
        gateway: Option<&str>,
    ) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT COALESCE(SUM(dropped), 0) FROM batches
             WHERE received_ms >= ?1 AND received_ms < ?2
               AND (?3 IS NULL OR gateway_id = ?3)",
            rusqlite::params![from_ms, to_ms, gateway],
            |r| r.get(0),
        )?;
        to_u64(n)
    }

    /// A page of raw records, newest first, and how many match in all.
    pub fn records(&self, q: &RecordQuery) -> Result<(Vec<RequestRecord>, usize), StoreError> {
        let (cond, mut args) = conditions(q.from_ms, q.to_ms, &q.filters);
        let count: i64 = self.conn.query_row(
            &format!("SELECT COUNT(*) FROM requests WHERE {cond}"),
            rusqlite::params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        args.push(Value::Integer(i64::try_from(q.top).unwrap_or(i64::MAX)));
        let limit = args.len();
        args.push(Value::Integer(i64::try_from(q.skip).unwrap_or(i64::MAX)));
        let offset = args.len();
        let mut stmt = self.conn.prepare(&format!(
            "SELECT * FROM requests WHERE {cond}
             ORDER BY ts_ms DESC, id DESC LIMIT ?{limit} OFFSET ?{offset}"
        ))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), record_from_row)?;
        let records = rows.collect::<Result<Vec<_>, _>>()?;
        Ok((records, usize::try_from(count).unwrap_or(0)))
    }
}
