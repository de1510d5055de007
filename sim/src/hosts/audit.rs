//! The auditor: near the end of a run, in the quiet final quarter, it reads every
//! request record the management plane stored through the analytics API
//! (`GET /analytics/records`, paged with `nextLink`) and the drops the gateways
//! reported (`GET /analytics/requests`), for invariant 6.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::management::ADMIN_TOKEN;
use super::{http, EPOCH_UNIX, MANAGEMENT, MANAGEMENT_PORT};
use crate::invariants::TelemetryFacts;
use crate::trace::{Event, Trace};

/// Records per page (the API's largest page).
const PAGE: usize = 1000;

/// How long one whole read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Whole reads tried before giving up.
const ATTEMPTS: usize = 5;

/// What the auditor found: `None` until it has read.
pub type AuditSlot = Arc<Mutex<Option<Result<TelemetryFacts, String>>>>;

/// At `read_at` (simulated time since the start), reads the records stamped
/// before `to` into `slot`, and says in the trace what it found.
pub async fn auditor(
    read_at: Duration,
    to: Duration,
    trace: Trace,
    slot: AuditSlot,
) -> turmoil::Result {
    tokio::time::sleep(read_at.saturating_sub(turmoil::sim_elapsed().unwrap_or_default())).await;
    let mut error = String::new();
    let mut found = None;
    for _ in 0..ATTEMPTS {
        match tokio::time::timeout(READ_TIMEOUT, read(to)).await {
            Ok(Ok(facts)) => {
                found = Some(facts);
                break;
            }
            Ok(Err(e)) => error = e,
            Err(_) => error = format!("no answer within {READ_TIMEOUT:?}"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let result = match found {
        Some(facts) => {
            trace.now(Event::TelemetryRead {
                to_ms: facts.to_ms,
                records: facts.stored.values().map(|&c| c as usize).sum(),
                distinct: facts.stored.len(),
                dropped: facts.dropped,
            });
            Ok(facts)
        }
        None => {
            trace.now(Event::TelemetryUnreadable(error.clone()));
            Err(error)
        }
    };
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
    std::future::pending::<()>().await;
    Ok(())
}

/// GET `path` on the management plane with the admin token: the JSON body.
async fn get(path: &str) -> Result<serde_json::Value, String> {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (status, _, body) = http(
        MANAGEMENT,
        MANAGEMENT_PORT,
        "GET",
        path,
        &[("Authorization", &auth)],
        b"",
    )
    .await
    .map_err(|e| format!("GET {path}: {e}"))?;
    if status != 200 {
        return Err(format!(
            "GET {path}: {status} {}",
            String::from_utf8_lossy(&body)
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("GET {path}: {e}"))
}

/// One whole read: every page of records stamped in `[start, to)`, then the
/// drops reported so far.
async fn read(to: Duration) -> Result<TelemetryFacts, String> {
    let from_unix_ms = EPOCH_UNIX * 1000;
    let to_unix_ms = from_unix_ms + to.as_millis() as u64;
    let mut next = Some(format!(
        "/analytics/records?from={from_unix_ms}&to={to_unix_ms}&top={PAGE}"
    ));
    let mut stored: BTreeMap<String, u32> = BTreeMap::new();
    let mut seen = 0u64;
    let mut total = None;
    while let Some(link) = next.take() {
        let page = get(&link).await?;
        let count = page["count"]
            .as_u64()
            .ok_or_else(|| format!("GET {link}: no count"))?;
        // The range ends well in the past: no record joins it while we page, so
        // the pages do not shift (checked).
        if *total.get_or_insert(count) != count {
            return Err(format!(
                "the record count changed while paging ({total:?} then {count})"
            ));
        }
        let records = page["value"]
            .as_array()
            .ok_or_else(|| format!("GET {link}: no value"))?;
        for record in records {
            let path = record["path"]
                .as_str()
                .ok_or_else(|| format!("GET {link}: a record without a path"))?;
            *stored.entry(path.to_owned()).or_default() += 1;
            seen += 1;
        }
        next = page["nextLink"].as_str().map(str::to_owned);
    }
    if Some(seen) != total.or(Some(0)) {
        return Err(format!("read {seen} records of {total:?}"));
    }
    let summary = get(&format!(
        "/analytics/requests?from={from_unix_ms}&bucket=86400"
    ))
    .await?;
    let dropped = summary["dropped"]
        .as_u64()
        .ok_or("GET /analytics/requests: no dropped")?;
    Ok(TelemetryFacts {
        to_ms: to.as_millis() as u64,
        stored,
        dropped,
    })
}
