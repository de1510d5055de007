//! Analytics store tests on real SQLite files in temporary directories.

use portcullis_core::telemetry::batch::Batch;
use portcullis_core::telemetry::record::{CacheStatus, RequestRecord};
use tempfile::TempDir;

use super::*;

/// 2023-11-14T22:13:20Z in milliseconds.
const NOW: i64 = 1_700_000_000_000;
const MIN: i64 = 60_000;

fn open() -> (TempDir, AnalyticsStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = AnalyticsStore::open(&dir.path().join("data"), 30).unwrap();
    (dir, store)
}

fn record(ts: i64, api: &str, status: u16, total_ms: u64) -> RequestRecord {
    RequestRecord {
        timestamp_ms: ts,
        request_id: format!("req-{ts}-{status}-{total_ms}"),
        gateway: "claimed-by-body".into(),
        instance: "i1".into(),
        api: api.into(),
        operation: "get".into(),
        product: Some("starter".into()),
        subscription: Some("sub1".into()),
        method: "GET".into(),
        path: format!("/{api}/x"),
        status,
        client_ip: "127.0.0.1".into(),
        bytes_in: 100,
        bytes_out: 1000,
        total_us: total_ms * 1000,
        backend_us: total_ms * 800,
        gateway_us: total_ms * 200,
        cache: CacheStatus::None,
        error: None,
        weight: 1,
        trace_id: None,
        span_id: None,
        parent_span_id: None,
    }
}

fn batch(id: &str, dropped: u64, records: Vec<RequestRecord>) -> Batch {
    Batch {
        id: id.into(),
        instance: "i1".into(),
        dropped,
        records,
    }
}

fn all(from_ms: i64, to_ms: i64) -> RecordQuery {
    RecordQuery {
        from_ms,
        to_ms,
        filters: Filters::default(),
        skip: 0,
        top: 1000,
    }
}

fn summary(store: &AnalyticsStore, group_by: Option<GroupBy>, bucket_ms: i64) -> RequestSummary {
    store
        .summary(&RequestQuery {
            from_ms: NOW - 60 * MIN,
            to_ms: NOW + MIN,
            bucket_ms,
            group_by,
            filters: Filters::default(),
        })
        .unwrap()
}

#[test]
fn a_batch_is_stored_once_with_the_authenticated_gateway() {
    let (_dir, mut store) = open();
    let b = batch(
        "i1-1",
        2,
        vec![
            record(NOW - MIN, "echo", 200, 5),
            record(NOW, "echo", 502, 9),
        ],
    );
    let first = store.ingest("gw1", &b, NOW).unwrap();
    assert_eq!(
        first,
        Ingested {
            stored: true,
            duplicate: false,
            records: 2,
            expired: 0
        }
    );
    let again = store.ingest("gw1", &b, NOW + 1000).unwrap();
    assert!(again.duplicate && !again.stored, "{again:?}");
    assert_eq!(store.record_count().unwrap(), 2);
    assert_eq!(store.batch_count().unwrap(), 1);
    // The same batch id from another gateway is another batch.
    assert!(store.ingest("gw2", &b, NOW).unwrap().stored);
    assert_eq!(store.record_count().unwrap(), 4);

    let (records, count) = store.records(&all(0, NOW + MIN)).unwrap();
    assert_eq!(count, 4);
    assert!(records.iter().all(|r| r.gateway != "claimed-by-body"));
    assert_eq!(records[0].timestamp_ms, NOW, "newest first");
    // Read back in the wire form, gateway replaced.
    let mut expected = record(NOW, "echo", 502, 9);
    expected.gateway = "gw2".into();
    assert_eq!(records[0], expected);
    // Dropped counted once per stored batch.
    assert_eq!(store.dropped(NOW - MIN, NOW + MIN, None).unwrap(), 4);
    assert_eq!(store.dropped(NOW - MIN, NOW + MIN, Some("gw1")).unwrap(), 2);
}

#[test]
fn a_batch_and_its_records_are_one_transaction() {
    let (dir, mut store) = open();
    // A record that cannot be stored refuses the whole batch.
    let mut bad = record(NOW, "echo", 200, 1);
    bad.bytes_in = u64::MAX;
    let b = batch("i1-7", 0, vec![record(NOW, "echo", 200, 1), bad]);
    let err = store.ingest("gw1", &b, NOW).unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(store.batch_count().unwrap(), 0);
    assert_eq!(store.record_count().unwrap(), 0);

    // A failure in the middle of the inserts (a trigger stands in for a crash or a
    // full disk) rolls the batch row back too, and the retry then stores it.
    store
        .conn
        .execute_batch(
            "CREATE TEMP TRIGGER fail_second AFTER INSERT ON requests
             WHEN (SELECT COUNT(*) FROM requests) >= 2
             BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        )
        .unwrap();
    let good = batch(
        "i1-8",
        1,
        vec![record(NOW, "echo", 200, 1), record(NOW, "echo", 200, 2)],
    );
    assert!(matches!(
        store.ingest("gw1", &good, NOW),
        Err(StoreError::Sqlite(_))
    ));
    assert_eq!(
        store.batch_count().unwrap(),
        0,
        "no batch id without its records"
    );
    assert_eq!(store.record_count().unwrap(), 0, "no half batch");
    store
        .conn
        .execute_batch("DROP TRIGGER fail_second")
        .unwrap();
    assert!(store.ingest("gw1", &good, NOW).unwrap().stored);

    // Survives a reopen.
    drop(store);
    let store = AnalyticsStore::open(&dir.path().join("data"), 30).unwrap();
    assert_eq!(store.batch_count().unwrap(), 1);
    assert_eq!(store.record_count().unwrap(), 2);
}

#[test]
fn bad_records_are_refused_with_the_reason() {
    let (_dir, mut store) = open();
    let mut r = record(NOW, "echo", 200, 1);
    r.weight = 0;
    let err = store
        .ingest("gw1", &batch("b", 0, vec![r]), NOW)
        .unwrap_err();
    assert!(err.to_string().contains("record 0: weight"), "{err}");
    let mut r = record(NOW, "echo", 200, 1);
    r.timestamp_ms = -1;
    let err = store
        .ingest(
            "gw1",
            &batch("b", 0, vec![record(NOW, "echo", 200, 1), r]),
            NOW,
        )
        .unwrap_err();
    assert!(err.to_string().contains("record 1: timestampMs"), "{err}");
    assert_eq!(store.batch_count().unwrap(), 0);
}

#[test]
fn retention_prunes_records_and_batch_ids_with_an_injected_now() {
    let (_dir, mut store) = open();
    let day = DAY_MS;
    // Batch a: records 41 and 10 days old at NOW; batch b: 2 days old.
    let a = batch(
        "a",
        1,
        vec![
            record(NOW - 41 * day, "echo", 200, 1),
            record(NOW - 10 * day, "echo", 200, 1),
        ],
    );
    let ingested = store.ingest("gw1", &a, NOW - 10 * day).unwrap();
    // 31 days old is already past the retention (30 days) when it arrives.
    assert_eq!((ingested.records, ingested.expired), (1, 1));
    let b = batch("b", 0, vec![record(NOW - 2 * day, "echo", 200, 1)]);
    store.ingest("gw1", &b, NOW - 2 * day).unwrap();

    // At NOW nothing is older than 30 days.
    assert_eq!(store.prune(NOW, 1000).unwrap(), Pruned::default());
    // 21 days later batch a's record is 31 days old: it and batch a's id go.
    let later = NOW + 21 * day;
    assert_eq!(
        store.prune(later, 1000).unwrap(),
        Pruned {
            records: 1,
            batches: 1
        }
    );
    assert_eq!(store.record_count().unwrap(), 1);
    assert_eq!(store.batch_count().unwrap(), 1);
    // A retry of batch a now stores nothing: its records are past the retention.
    let retry = store.ingest("gw1", &a, later).unwrap();
    assert_eq!((retry.records, retry.expired), (0, 2));
    assert_eq!(store.record_count().unwrap(), 1);
    // A batch id stays as long as its newest record, even one stamped ahead of the
    // receipt time by a gateway whose clock runs fast.
    let ahead = batch("c", 0, vec![record(later + 5 * day, "echo", 200, 1)]);
    store.ingest("gw1", &ahead, later).unwrap();
    let much_later = later + 32 * day;
    store.prune(much_later, 1000).unwrap();
    assert!(store.ingest("gw1", &ahead, much_later).unwrap().duplicate);
    // In steps of `limit`.
    let (_dir2, mut store) = open();
    let many: Vec<_> = (0..5).map(|i| record(NOW + i, "echo", 200, 1)).collect();
    store.ingest("gw1", &batch("m", 0, many), NOW).unwrap();
    let at = NOW + 31 * day;
    assert_eq!(store.prune(at, 2).unwrap().records, 2);
    assert_eq!(store.prune(at, 2).unwrap().records, 2);
    assert_eq!(store.prune(at, 2).unwrap().records, 1);
    assert_eq!(store.prune(at, 2).unwrap(), Pruned::default());
    assert_eq!(store.record_count().unwrap(), 0);
    assert_eq!(store.batch_count().unwrap(), 0);
}

#[test]
fn nearest_rank_percentiles_weighted() {
    let mut v: Vec<(u64, u64)> = (1..=100).map(|x| (x, 1)).collect();
    assert_eq!(percentile(&mut v, 50), 50);
    assert_eq!(percentile(&mut v, 95), 95);
    assert_eq!(percentile(&mut v, 99), 99);
    assert_eq!(percentile(&mut v, 100), 100);
    // Unsorted, with weights: 10 stands for 9 requests, 1000 for 1.
    let mut v = vec![(1000, 1), (10, 9)];
    assert_eq!(percentile(&mut v, 50), 10);
    assert_eq!(percentile(&mut v, 90), 10);
    assert_eq!(percentile(&mut v, 95), 1000);
    // Nearest rank on few values: ceil(p/100 * n).
    let mut v = vec![(3, 1), (1, 1), (2, 1)];
    assert_eq!(percentile(&mut v, 50), 2);
    assert_eq!(percentile(&mut v, 1), 1);
    assert_eq!(percentile(&mut v, 99), 3);
    assert_eq!(percentile(&mut [], 50), 0);
    // Huge weights do not overflow.
    let mut v = vec![(1, u64::MAX), (2, u64::MAX)];
    assert_eq!(percentile(&mut v, 50), 1);
    assert_eq!(percentile(&mut v, 51), 2);
}

#[test]
fn summary_buckets_groups_and_percentiles() {
    let (_dir, mut store) = open();
    let bucket = |ts: i64| ts.div_euclid(MIN) * MIN;
    let b0 = bucket(NOW - 2 * MIN);
    let b1 = bucket(NOW);
    let mut records: Vec<_> = (1..=20)
        .map(|ms| record(b0 + 1000, "echo", 200, ms))
        .collect();
    records.push(record(b0 + 2000, "echo", 404, 50));
    records.push(record(b0 + 3000, "echo", 503, 70));
    let mut no_response = record(b0 + 4000, "echo", 0, 90);
    no_response.product = None;
    no_response.subscription = None;
    records.push(no_response);
    let mut sampled = record(b1 + 10, "other", 200, 7);
    sampled.weight = 10;
    sampled.subscription = Some("sub2".into());
    records.push(sampled);
    store
        .ingest("gw1", &batch("x", 3, records.clone()), NOW)
        .unwrap();
    store
        .ingest(
            "gw2",
            &batch("y", 0, vec![record(b1 + 20, "echo", 200, 3)]),
            NOW,
        )
        .unwrap();

    let s = summary(&store, Some(GroupBy::Api), MIN);
    assert_eq!(s.dropped, 3);
    assert_eq!(s.groups.len(), 2);
    let echo = &s.groups[0];
    assert_eq!(echo.key.as_deref(), Some("echo"));
    assert_eq!(echo.buckets.len(), 2, "empty buckets are left out");
    let first = &echo.buckets[0];
    assert_eq!(first.start_ms, b0);
    assert_eq!(first.requests, 23);
    assert_eq!(first.errors, 2, "503 and 0");
    assert_eq!(first.client_errors, 1);
    assert_eq!(first.bytes_in, 2300);
    assert_eq!(first.bytes_out, 23_000);
    // Totals 1..=20, 50, 70, 90 ms: nearest rank of 23 values.
    assert_eq!(first.total_ms.p50, 12.0);
    assert_eq!(first.total_ms.p95, 70.0);
    assert_eq!(first.total_ms.p99, 90.0);
    assert_eq!(first.backend_ms.p50, 9.6);
    assert_eq!(first.gateway_ms.p99, 18.0);
    assert_eq!(echo.buckets[1].start_ms, b1);
    assert_eq!(echo.buckets[1].requests, 1);
    let other = &s.groups[1];
    assert_eq!(other.key.as_deref(), Some("other"));
    assert_eq!(other.buckets[0].requests, 10, "weighted");
    assert_eq!(other.buckets[0].bytes_in, 1000, "weighted");

    // By gateway, one bucket over the whole hour.
    let s = summary(&store, Some(GroupBy::Gateway), 3600 * 1000);
    let keys: Vec<_> = s.groups.iter().map(|g| g.key.clone()).collect();
    assert_eq!(keys, [Some("gw1".to_owned()), Some("gw2".to_owned())]);
    let gw1: u64 = s.groups[0].buckets.iter().map(|b| b.requests).sum();
    assert_eq!(gw1, 33);
    // By subscription: requests without one are the group with no key, first.
    let s = summary(&store, Some(GroupBy::Subscription), 3600 * 1000);
    let keys: Vec<_> = s.groups.iter().map(|g| g.key.clone()).collect();
    assert_eq!(
        keys,
        [None, Some("sub1".to_owned()), Some("sub2".to_owned())]
    );
    // By operation: keyed by API too.
    let s = summary(&store, Some(GroupBy::Operation), 3600 * 1000);
    assert_eq!(s.groups[0].key.as_deref(), Some("echo/get"));
    // Ungrouped, filtered.
    let q = RequestQuery {
        from_ms: NOW - 60 * MIN,
        to_ms: NOW + MIN,
        bucket_ms: 3600 * 1000,
        group_by: None,
        filters: Filters {
            gateway: Some("gw2".into()),
            ..Filters::default()
        },
    };
    let s = store.summary(&q).unwrap();
    assert_eq!(s.dropped, 0);
    assert_eq!(s.groups.len(), 1);
    assert_eq!(s.groups[0].key, None);
    assert_eq!(s.groups[0].buckets[0].requests, 1);
}

#[test]
fn summary_refuses_bad_ranges() {
    let (_dir, store) = open();
    let q = |from_ms, to_ms, bucket_ms| RequestQuery {
        from_ms,
        to_ms,
        bucket_ms,
        group_by: None,
        filters: Filters::default(),
    };
    assert!(store.summary(&q(NOW, NOW, 1000)).is_err());
    assert!(store.summary(&q(NOW, NOW + 1, 0)).is_err());
    // 10,000 one-second buckets are fine, 10,001 are not.
    let aligned = NOW - NOW % 1000;
    assert!(store
        .summary(&q(aligned, aligned + MAX_BUCKETS * 1000, 1000))
        .is_ok());
    let err = store
        .summary(&q(aligned, aligned + MAX_BUCKETS * 1000 + 1, 1000))
        .unwrap_err();
    assert!(err.to_string().contains("buckets"), "{err}");
}

#[test]
fn records_page_newest_first_with_filters() {
    let (_dir, mut store) = open();
    let records: Vec<_> = (0..5)
        .map(|i| record(NOW + i, if i % 2 == 0 { "a" } else { "b" }, 200, 1))
        .collect();
    store.ingest("gw1", &batch("p", 0, records), NOW).unwrap();
    let mut q = all(NOW, NOW + 10);
    q.top = 2;
    q.skip = 1;
    let (page, count) = store.records(&q).unwrap();
    assert_eq!(count, 5);
    let ts: Vec<_> = page.iter().map(|r| r.timestamp_ms).collect();
    assert_eq!(ts, [NOW + 3, NOW + 2]);
    q.filters.api = Some("a".into());
    q.skip = 0;
    q.top = 10;
    let (page, count) = store.records(&q).unwrap();
    assert_eq!(count, 3);
    assert!(page.iter().all(|r| r.api == "a"));
    // The range's end is exclusive.
    let (_, count) = store.records(&all(NOW, NOW + 4)).unwrap();
    assert_eq!(count, 4);
}
