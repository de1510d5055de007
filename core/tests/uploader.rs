//! The telemetry uploader driven by hand with a fake clock: batching, the
//! bounded buffer, retries with the same batch id, restore after a restart,
//! and the accounting that makes every record stored once or counted dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use portcullis_core::telemetry::batch::{Batch, MAX_BATCH_BYTES, MAX_BATCH_RECORDS};
use portcullis_core::telemetry::record::RequestRecord;
use portcullis_core::telemetry::uploader::{Output, UploadResult, UploadSettings, Uploader};

fn record(n: u64) -> RequestRecord {
    serde_json::from_value(serde_json::json!({
        "timestampMs": n, "requestId": format!("req-{n}"), "gateway": "g", "instance": "i",
        "method": "GET", "path": "/x", "status": 200, "clientIp": "::1",
        "bytesIn": 0, "bytesOut": 0, "totalUs": 0, "backendUs": 0, "gatewayUs": 0
    }))
    .expect("a record")
}

fn drain(u: &mut Uploader) -> Vec<Output> {
    std::iter::from_fn(|| u.poll_output()).collect()
}

fn settings() -> UploadSettings {
    UploadSettings {
        batch_records: 10,
        ..UploadSettings::default()
    }
}

#[test]
fn records_wait_for_the_flush_then_go_in_one_batch() {
    let t0 = Instant::now();
    let mut u = Uploader::new("inst", settings(), 1);
    u.handle_records((0..3).map(record).collect(), t0);
    assert!(drain(&mut u).is_empty(), "nothing before the flush");
    assert_eq!(u.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    u.handle_timeout(t0 + Duration::from_secs(5));
    let out = drain(&mut u);
    let [Output::Save { seq: 0, bytes }, Output::Upload {
        seq: 0,
        bytes: sent,
        ..
    }] = out.as_slice()
    else {
        panic!("{out:?}");
    };
    assert_eq!(bytes, sent);
    let batch = Batch::from_json(bytes).expect("a batch");
    assert_eq!(batch.id, "inst-0");
    assert_eq!(batch.records.len(), 3);
    u.handle_result(0, UploadResult::Stored, t0 + Duration::from_secs(6));
    assert_eq!(drain(&mut u), vec![Output::Remove { seq: 0 }]);
    assert_eq!(u.backlog(), (0, 0));
    assert_eq!(u.poll_timeout(), None);
}

#[test]
fn a_full_batch_closes_at_once_and_one_upload_is_in_flight_at_a_time() {
    let t0 = Instant::now();
    let mut u = Uploader::new("inst", settings(), 1);
    u.handle_records((0..25).map(record).collect(), t0);
    let out = drain(&mut u);
    let saves = out
        .iter()
        .filter(|o| matches!(o, Output::Save { .. }))
        .count();
    let uploads: Vec<u64> = out
        .iter()
        .filter_map(|o| match o {
            Output::Upload { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(saves, 2);
    assert_eq!(uploads, vec![0]);
    assert_eq!(u.open_records(), 5);
    u.handle_result(0, UploadResult::Stored, t0);
    let out = drain(&mut u);
    assert!(out.contains(&Output::Remove { seq: 0 }));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Upload { seq: 1, .. })));
}

/// Records with paths as long as a head allows would make a batch of 1000 larger
/// than the management plane accepts: such a batch is split, every part within
/// the limit, every record in exactly one part, the drops reported once.
#[test]
fn a_batch_over_the_size_limit_is_split() {
    let t0 = Instant::now();
    let mut u = Uploader::new(
        "inst",
        UploadSettings {
            batch_records: MAX_BATCH_RECORDS,
            ..UploadSettings::default()
        },
        1,
    );
    u.count_dropped(3);
    let long_path = format!("/{}", "p".repeat(30 * 1024));
    let records: Vec<RequestRecord> = (0..MAX_BATCH_RECORDS as u64)
        .map(|n| {
            let mut r = record(n);
            r.path = long_path.clone();
            r
        })
        .collect();
    u.handle_records(records, t0);
    let mut seen = Vec::new();
    let mut dropped = 0;
    let mut seqs = Vec::new();
    for out in drain(&mut u) {
        if let Output::Save { seq, bytes } = out {
            assert!(
                bytes.len() <= MAX_BATCH_BYTES,
                "batch {seq}: {}",
                bytes.len()
            );
            let batch = Batch::from_json(&bytes).expect("a batch");
            assert_eq!(batch.id, format!("inst-{seq}"));
            dropped += batch.dropped;
            seen.extend(batch.records.iter().map(|r| r.timestamp_ms));
            seqs.push(seq);
        }
    }
    assert!(
        seqs.len() >= 8,
        "30 MiB of records in 4 MiB batches: {seqs:?}"
    );
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(seen, (0..MAX_BATCH_RECORDS as i64).collect::<Vec<_>>());
    assert_eq!(dropped, 3);
}

#[test]
fn failures_back_off_and_the_retry_sends_the_same_batch() {
    let t0 = Instant::now();
    let mut u = Uploader::new("inst", settings(), 1);
    u.handle_records((0..10).map(record).collect(), t0);
    let first = drain(&mut u);
    let Some(Output::Upload { bytes, .. }) = first.last() else {
        panic!("{first:?}")
    };
    u.handle_result(0, UploadResult::Failed("refused".into()), t0);
    assert!(drain(&mut u).is_empty(), "no retry before the backoff");
    let at = u.poll_timeout().expect("a retry time");
    assert!(
        at > t0 && at <= t0 + Duration::from_secs(1),
        "{:?}",
        at - t0
    );
    u.handle_timeout(at);
    let again = drain(&mut u);
    assert_eq!(
        again,
        vec![Output::Upload {
            seq: 0,
            bytes: bytes.clone(),
            timeout: Duration::from_secs(30)
        }]
    );
}

#[test]
fn a_full_buffer_drops_the_oldest_and_the_next_batch_reports_it() {
    let t0 = Instant::now();
    let one_batch = Batch {
        id: "inst-0".into(),
        instance: "inst".into(),
        dropped: 0,
        records: (0..10).map(record).collect(),
    }
    .to_json()
    .len() as u64;
    let mut u = Uploader::new(
        "inst",
        UploadSettings {
            buffer_bytes: one_batch * 3,
            ..settings()
        },
        1,
    );
    u.handle_records((0..10).map(record).collect(), t0);
    drain(&mut u);
    u.handle_result(0, UploadResult::Failed("down".into()), t0);
    // Four more batches while the first is retried: the buffer holds three.
    u.handle_records((10..50).map(record).collect(), t0);
    let out = drain(&mut u);
    let removed: Vec<u64> = out
        .iter()
        .filter_map(|o| match o {
            Output::Remove { seq } => Some(*seq),
            _ => None,
        })
        .collect();
    // The first batch waits for its retry, so it is the oldest and goes first.
    assert!(
        removed.len() >= 2 && removed.windows(2).all(|w| w[0] < w[1]),
        "{removed:?}"
    );
    assert_eq!(removed[0], 0);
    assert!(!removed.contains(&4), "the newest stays");
    let dropped: u64 = out
        .iter()
        .filter_map(|o| match o {
            Output::Dropped { records, .. } => Some(*records),
            _ => None,
        })
        .sum();
    assert_eq!(dropped, 10 * removed.len() as u64);
    u.handle_records((50..51).map(record).collect(), t0);
    u.handle_timeout(t0 + Duration::from_secs(5));
    let later = drain(&mut u);
    // The drops are reported by the batches closed after them, still waiting.
    let reported: u64 = out
        .iter()
        .chain(&later)
        .filter_map(|o| match o {
            Output::Save { seq, bytes } if !removed.contains(seq) => {
                Batch::from_json(bytes).ok().map(|b| b.dropped)
            }
            _ => None,
        })
        .sum();
    assert_eq!(reported, dropped);
}

#[test]
fn batches_left_by_a_previous_run_go_first_with_their_ids() {
    let t0 = Instant::now();
    let old = Batch {
        id: "old-7".into(),
        instance: "old".into(),
        dropped: 2,
        records: vec![record(1)],
    };
    let mut u = Uploader::new("new", settings(), 1);
    u.restore(vec![
        (7, Bytes::from(old.to_json())),
        (3, Bytes::from_static(b"{torn")),
    ]);
    u.handle_records(vec![record(2)], t0);
    u.handle_timeout(t0 + Duration::from_secs(5));
    let out = drain(&mut u);
    assert!(
        out.contains(&Output::Remove { seq: 3 }),
        "the torn file goes"
    );
    assert!(out.contains(&Output::Upload {
        seq: 7,
        bytes: Bytes::from(old.to_json()),
        timeout: Duration::from_secs(30)
    }));
    let new_seq = out.iter().find_map(|o| match o {
        Output::Save { seq, .. } => Some(*seq),
        _ => None,
    });
    assert_eq!(new_seq, Some(8), "numbering goes on after the files found");
}

#[test]
fn a_refused_batch_is_dropped_and_counted() {
    let t0 = Instant::now();
    let mut u = Uploader::new("inst", settings(), 1);
    u.handle_records((0..10).map(record).collect(), t0);
    drain(&mut u);
    u.handle_result(0, UploadResult::Refused("bad".into()), t0);
    let out = drain(&mut u);
    assert!(out.contains(&Output::Remove { seq: 0 }));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Dropped { records: 10, .. })));
}

/// Every record ends stored exactly once or counted in a stored batch's
/// `dropped`, through any pattern of failures and a small buffer.
#[test]
fn every_record_is_stored_once_or_counted_dropped() {
    for seed in 0..100u64 {
        let t0 = Instant::now();
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut u = Uploader::new(
            "inst",
            UploadSettings {
                buffer_bytes: 4_000,
                ..settings()
            },
            seed,
        );
        let mut now = t0;
        let mut fed = 0u64;
        let mut stored_ids = HashSet::new();
        let mut stored_records = HashSet::new();
        let mut dropped_reported = 0u64;
        let mut in_flight: Option<(u64, Bytes)> = None;
        for step in 0..400 {
            let n = next() % 7;
            u.handle_records((fed..fed + n).map(record).collect(), now);
            fed += n;
            now += Duration::from_millis(next() % 3000);
            u.handle_timeout(now);
            for out in drain(&mut u) {
                if let Output::Upload { seq, bytes, .. } = out {
                    in_flight = Some((seq, bytes));
                }
            }
            let outage = step < 250 && (step / 50) % 2 == 0;
            if let Some((seq, bytes)) = in_flight.take() {
                let result = if outage || next() % 4 == 0 {
                    UploadResult::Failed("down".into())
                } else {
                    let batch = Batch::from_json(&bytes).expect("a batch");
                    if stored_ids.insert(batch.id.clone()) {
                        dropped_reported += batch.dropped;
                        for r in batch.records {
                            assert!(stored_records.insert(r.request_id), "stored twice");
                        }
                    }
                    UploadResult::Stored
                };
                u.handle_result(seq, result, now);
            }
        }
        // Connectivity back for good: everything drains.
        u.flush();
        for _ in 0..10_000 {
            now += Duration::from_secs(61);
            u.handle_timeout(now);
            for out in drain(&mut u) {
                if let Output::Upload { seq, bytes, .. } = out {
                    let batch = Batch::from_json(&bytes).expect("a batch");
                    if stored_ids.insert(batch.id.clone()) {
                        dropped_reported += batch.dropped;
                        for r in batch.records {
                            assert!(stored_records.insert(r.request_id), "stored twice");
                        }
                    }
                    u.handle_result(seq, UploadResult::Stored, now);
                }
            }
            if u.backlog().0 == 0 && u.open_records() == 0 {
                break;
            }
        }
        assert_eq!(
            stored_records.len() as u64 + dropped_reported,
            fed,
            "seed {seed}: stored {} + dropped {dropped_reported} != fed {fed}",
            stored_records.len()
        );
    }
}
