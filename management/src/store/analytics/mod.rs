//! Telemetry storage: request records uploaded by gateways in batches, kept for the
//! analytics retention, and the queries of the analytics API.
//!
//! It lives in its own SQLite file, `<dir>/analytics.db`, with its own connection
//! (and, in the HTTP layer, its own mutex), apart from the configuration store in
//! `portcullis.db`:
//!
//! - a telemetry upload (up to 1,000 rows and an fsync) or a long analytics query
//!   never holds the lock that configuration writes, configuration polls and token
//!   checks take, so configuration stays as fast as before;
//! - telemetry never touches the revision counter or the audit log;
//! - the configuration store opens its file in exclusive locking mode, so a second
//!   connection to `portcullis.db` is not possible anyway.
//!
//! A batch's row in `batches` and its records in `requests` are written in one
//! transaction; `(gateway_id, batch_id)` is the primary key of `batches`, so a batch
//! retried by a gateway is recognised and its records are not stored twice.
//!
//! Time is an argument (`now_ms`, Unix milliseconds) so tests control it.

use std::path::Path;
use std::time::Duration;

use portcullis_core::telemetry::batch::Batch;
use portcullis_core::telemetry::record::{CacheStatus, ErrorInfo, RequestRecord};
use rusqlite::{params, Connection, TransactionBehavior};

use super::StoreError;

mod query;
#[cfg(test)]
mod tests;

pub use query::{
    percentile, BucketStats, Filters, GroupBy, GroupSeries, Percentiles, RecordQuery, RequestQuery,
    RequestSummary, MAX_BUCKETS, MAX_QUERY_RECORDS,
};

/// The analytics database file inside the data directory.
pub const FILE_NAME: &str = "analytics.db";

/// The default analytics retention, in days.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// Schema migrations of `analytics.db`; `PRAGMA user_version` is how many have been
/// applied. Append only: never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: batches and request records.
    "CREATE TABLE batches (
         gateway_id TEXT NOT NULL,
         batch_id TEXT NOT NULL,
         instance TEXT NOT NULL,
         received_ms INTEGER NOT NULL,
         keep_ms INTEGER NOT NULL,
         dropped INTEGER NOT NULL,
         records INTEGER NOT NULL,
         PRIMARY KEY (gateway_id, batch_id)
     ) STRICT;
     CREATE INDEX batches_received ON batches (received_ms);
     CREATE INDEX batches_keep ON batches (keep_ms);
     CREATE TABLE requests (
         id INTEGER PRIMARY KEY,
         ts_ms INTEGER NOT NULL,
         request_id TEXT NOT NULL,
         gateway TEXT NOT NULL,
         instance TEXT NOT NULL,
         api TEXT NOT NULL,
         operation TEXT NOT NULL,
         product TEXT,
         subscription TEXT,
         method TEXT NOT NULL,
         path TEXT NOT NULL,
         status INTEGER NOT NULL,
         client_ip TEXT NOT NULL,
         bytes_in INTEGER NOT NULL,
         bytes_out INTEGER NOT NULL,
         total_us INTEGER NOT NULL,
         backend_us INTEGER NOT NULL,
         gateway_us INTEGER NOT NULL,
         cache TEXT NOT NULL,
         error_source TEXT,
         error_reason TEXT,
         weight INTEGER NOT NULL,
         trace_id TEXT,
         span_id TEXT,
         parent_span_id TEXT
     ) STRICT;
     CREATE INDEX requests_ts ON requests (ts_ms);
     CREATE INDEX requests_api_ts ON requests (api, ts_ms);",
];

/// What storing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    /// True when the batch was new and is now stored.
    pub stored: bool,
    /// True when the batch id was already stored: nothing was written.
    pub duplicate: bool,
    /// Records stored.
    pub records: usize,
    /// Records not stored because they are older than the retention.
    pub expired: usize,
}

/// What a prune step removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Request records removed.
    pub records: usize,
    /// Batch ids removed.
    pub batches: usize,
}

/// The telemetry store of one data directory.
pub struct AnalyticsStore {
    conn: Connection,
    retention_ms: i64,
}

impl std::fmt::Debug for AnalyticsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsStore")
            .field("retention_ms", &self.retention_ms)
            .finish_non_exhaustive()
    }
}

impl AnalyticsStore {
    /// Opens (creating if needed) `<dir>/analytics.db`, migrates it, and keeps records
    /// for `retention_days` (at least 1).
    pub fn open(dir: &Path, retention_days: u32) -> Result<AnalyticsStore, StoreError> {
        if retention_days == 0 {
            return Err(StoreError::Invalid(
                "the analytics retention must be at least 1 day".to_owned(),
            ));
        }
        crate::data_dir::create_private_dir(dir)?;
        let path = dir.join(FILE_NAME);
        crate::data_dir::precreate_private_file(&path)?;
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "cannot switch {} to WAL mode (it is in {mode} mode)",
                path.display()
            )));
        }
        // FULL: an acknowledged batch is on disk; the gateway will not send it again.
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut conn)?;
        tracing::info!(path = %path.display(), retention_days, "analytics store opened");
        Ok(AnalyticsStore {
            conn,
            retention_ms: i64::from(retention_days) * DAY_MS,
        })
    }

    /// How long records are kept, in milliseconds.
    pub fn retention_ms(&self) -> i64 {
        self.retention_ms
    }

    /// Stores a batch uploaded by gateway `gateway_id` (authenticated by the caller),
    /// once: a batch id this gateway already uploaded is acknowledged as a duplicate
    /// and nothing is written. The batch row and its records go in one transaction.
    /// Every record is stored with `gateway_id` as its gateway, whatever the body
    /// says; records older than the retention are left out (they would be pruned at
    /// once).
    pub fn ingest(
        &mut self,
        gateway_id: &str,
        batch: &Batch,
        now_ms: i64,
    ) -> Result<Ingested, StoreError> {
        check_batch(batch)?;
        let cutoff = now_ms.saturating_sub(self.retention_ms);
        let keep: Vec<&RequestRecord> = batch
            .records
            .iter()
            .filter(|r| r.timestamp_ms >= cutoff)
            .collect();
        // The batch id is kept as long as any of its records (a record stamped by a
        // gateway whose clock is ahead outlives the receipt time).
        let keep_ms = keep.iter().map(|r| r.timestamp_ms).fold(now_ms, i64::max);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let inserted = tx.execute(
            "INSERT INTO batches (gateway_id, batch_id, instance, received_ms, keep_ms, dropped, records)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (gateway_id, batch_id) DO NOTHING",
            params![
                gateway_id,
                batch.id,
                batch.instance,
                now_ms,
                keep_ms,
                to_i64(batch.dropped, "dropped")?,
                to_i64(keep.len() as u64, "records")?,
            ],
        )?;
        if inserted == 0 {
            // Dropping the transaction rolls it back: nothing was written anyway.
            tracing::debug!(gateway = gateway_id, batch = %batch.id, "duplicate telemetry batch");
            return Ok(Ingested {
                stored: false,
                duplicate: true,
                records: 0,
                expired: 0,
            });
        }
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO requests (ts_ms, request_id, gateway, instance, api, operation,
                     product, subscription, method, path, status, client_ip, bytes_in,
                     bytes_out, total_us, backend_us, gateway_us, cache, error_source,
                     error_reason, weight, trace_id, span_id, parent_span_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                     ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)",
            )?;
            for r in &keep {
                let instance = if r.instance.is_empty() {
                    batch.instance.as_str()
                } else {
                    r.instance.as_str()
                };
                insert.execute(params![
                    r.timestamp_ms,
                    r.request_id,
                    gateway_id,
                    instance,
                    r.api,
                    r.operation,
                    r.product,
                    r.subscription,
                    r.method,
                    r.path,
                    r.status,
                    r.client_ip,
                    to_i64(r.bytes_in, "bytesIn")?,
                    to_i64(r.bytes_out, "bytesOut")?,
                    to_i64(r.total_us, "totalUs")?,
                    to_i64(r.backend_us, "backendUs")?,
                    to_i64(r.gateway_us, "gatewayUs")?,
                    r.cache.as_str(),
                    r.error.as_ref().map(|e| e.source.as_str()),
                    r.error.as_ref().map(|e| e.reason.as_str()),
                    r.weight,
                    r.trace_id,
                    r.span_id,
                    r.parent_span_id,
                ])?;
            }
        }
        tx.commit()?;
        let expired = batch.records.len() - keep.len();
        tracing::debug!(
            gateway = gateway_id,
            batch = %batch.id,
            records = keep.len(),
            expired,
            dropped = batch.dropped,
            "telemetry batch stored"
        );
        Ok(Ingested {
            stored: true,
            duplicate: false,
            records: keep.len(),
            expired,
        })
    }

    /// Removes at most `limit` records older than the retention, and the batch ids
    /// none of whose records can still be stored (their `keep_ms` is older than the
    /// retention), in one transaction. Call it again while it removes `limit` records.
    pub fn prune(&mut self, now_ms: i64, limit: usize) -> Result<Pruned, StoreError> {
        let cutoff = now_ms.saturating_sub(self.retention_ms);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let records = tx.execute(
            "DELETE FROM requests WHERE id IN
                 (SELECT id FROM requests WHERE ts_ms < ?1 ORDER BY ts_ms LIMIT ?2)",
            params![cutoff, limit],
        )?;
        let batches = tx.execute(
            "DELETE FROM batches WHERE rowid IN
                 (SELECT rowid FROM batches WHERE keep_ms < ?1 ORDER BY keep_ms LIMIT ?2)",
            params![cutoff, limit],
        )?;
        tx.commit()?;
        Ok(Pruned { records, batches })
    }

    /// How many batch ids are stored (for tests and diagnostics).
    pub fn batch_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM batches", [], |r| r.get(0))?;
        to_u64(n)
    }

    /// How many request records are stored (for tests and diagnostics).
    pub fn record_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM requests", [], |r| r.get(0))?;
        to_u64(n)
    }
}

/// What the store refuses in a batch that `Batch::from_json` accepted.
fn check_batch(batch: &Batch) -> Result<(), StoreError> {
    for (i, r) in batch.records.iter().enumerate() {
        if r.timestamp_ms < 0 {
            return Err(StoreError::Invalid(format!(
                "record {i}: timestampMs must not be negative"
            )));
        }
        if r.weight == 0 {
            return Err(StoreError::Invalid(format!(
                "record {i}: weight must be at least 1"
            )));
        }
        for (name, value) in [
            ("bytesIn", r.bytes_in),
            ("bytesOut", r.bytes_out),
            ("totalUs", r.total_us),
            ("backendUs", r.backend_us),
            ("gatewayUs", r.gateway_us),
        ] {
            if i64::try_from(value).is_err() {
                return Err(StoreError::Invalid(format!(
                    "record {i}: {name} is too large"
                )));
            }
        }
    }
    if i64::try_from(batch.dropped).is_err() {
        return Err(StoreError::Invalid("dropped is too large".to_owned()));
    }
    Ok(())
}

/// Applies the migrations not applied yet, in one transaction.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let applied = usize::try_from(applied).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "{FILE_NAME} has schema version {applied}, newer than this build's {}",
            MIGRATIONS.len()
        )));
    }
    if applied == MIGRATIONS.len() {
        return Ok(());
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tracing::info!(version = index + 1, "applying analytics migration");
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    tx.commit()?;
    Ok(())
}

fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Invalid(format!("{what} is too large")))
}

fn to_u64(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative number {value}")))
}

/// A stored record read back in its wire form.
fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RequestRecord> {
    let cache: String = row.get("cache")?;
    let source: Option<String> = row.get("error_source")?;
    let reason: Option<String> = row.get("error_reason")?;
    let unsigned = |name: &str| -> rusqlite::Result<u64> {
        let v: i64 = row.get(name)?;
        Ok(u64::try_from(v).unwrap_or(0))
    };
    Ok(RequestRecord {
        timestamp_ms: row.get("ts_ms")?,
        request_id: row.get("request_id")?,
        gateway: row.get("gateway")?,
        instance: row.get("instance")?,
        api: row.get("api")?,
        operation: row.get("operation")?,
        product: row.get("product")?,
        subscription: row.get("subscription")?,
        method: row.get("method")?,
        path: row.get("path")?,
        status: row.get("status")?,
        client_ip: row.get("client_ip")?,
        bytes_in: unsigned("bytes_in")?,
        bytes_out: unsigned("bytes_out")?,
        total_us: unsigned("total_us")?,
        backend_us: unsigned("backend_us")?,
        gateway_us: unsigned("gateway_us")?,
        cache: match cache.as_str() {
            "hit" => CacheStatus::Hit,
            "miss" => CacheStatus::Miss,
            _ => CacheStatus::None,
        },
        error: match (source, reason) {
            (Some(source), Some(reason)) => Some(ErrorInfo { source, reason }),
            _ => None,
        },
        weight: row.get("weight")?,
        trace_id: row.get("trace_id")?,
        span_id: row.get("span_id")?,
        parent_span_id: row.get("parent_span_id")?,
    })
}
