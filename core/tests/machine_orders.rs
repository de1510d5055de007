//! The machine contract under random event orders: the sync agent, the
//! telemetry uploader and the OTLP exporter driven by a random driver that answers what they asked
//! for in any order, late, twice, or not at all (a lost answer is answered by
//! a failure, as the driver's timeout would), lets time jump, and sometimes
//! sends an answer nobody asked for. After every step each machine's
//! `check_invariants` must hold, and the driver must never see two of the same
//! request outstanding.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use portcullis_core::machine::Machine;
use portcullis_core::sync::backoff::Jitter;
use portcullis_core::sync::*;
use portcullis_core::telemetry::otlp_exporter::{self, ExportResult, ExportSettings, OtlpExporter};
use portcullis_core::telemetry::record::RequestRecord;
use portcullis_core::telemetry::uploader::{self, UploadResult, UploadSettings, Uploader};
use proptest::prelude::*;

fn snapshot(revision: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"revision": {revision}, "apis": [{{"id": "a", "path": "a", "serviceUrl": "http://127.0.0.1:9/r{revision}"}}]}}"#
    ))
}

/// What the random driver does next.
#[derive(Debug, Clone)]
enum SyncStep {
    /// Time passes (milliseconds), then due deadlines fire.
    Advance(u64),
    /// Answers the oldest outstanding fetch: 0 snapshot, 1 not modified,
    /// 2 transport failure, 3 refused token, 4 a snapshot that does not compile.
    AnswerFetch(u8),
    /// Answers the outstanding heartbeat (ok or not).
    AnswerHeartbeat(bool),
    /// Answers the oldest outstanding save (ok or not).
    AnswerSave(bool),
    /// Answers the backup load: 0 no file, 1 the last saved file, 2 garbage.
    AnswerLoad(u8),
    /// An answer nobody asked for.
    Stray(u8),
}

fn sync_step() -> impl Strategy<Value = SyncStep> {
    prop_oneof![
        (0u64..120_000).prop_map(SyncStep::Advance),
        (0u8..5).prop_map(SyncStep::AnswerFetch),
        any::<bool>().prop_map(SyncStep::AnswerHeartbeat),
        any::<bool>().prop_map(SyncStep::AnswerSave),
        (0u8..3).prop_map(SyncStep::AnswerLoad),
        (0u8..4).prop_map(SyncStep::Stray),
    ]
}

/// The requests the driver holds for the agent.
#[derive(Default)]
struct Outstanding {
    fetches: usize,
    heartbeats: usize,
    saves: VecDeque<Vec<u8>>,
    load: bool,
    saved: Option<Vec<u8>>,
    applied: Vec<u64>,
}

impl Outstanding {
    fn drain(&mut self, agent: &mut SyncAgent) {
        while let Some(out) = Machine::poll_output(agent) {
            match out {
                Output::LoadBackup => {
                    assert!(!self.load, "a second backup load");
                    self.load = true;
                }
                Output::Fetch { .. } => {
                    self.fetches += 1;
                    assert_eq!(self.fetches, 1, "two fetches outstanding");
                }
                Output::Heartbeat(_) => {
                    self.heartbeats += 1;
                    assert_eq!(self.heartbeats, 1, "two heartbeats outstanding");
                }
                Output::SaveBackup(file) => {
                    self.saves.push_back(file);
                    assert_eq!(self.saves.len(), 1, "two backup writes outstanding");
                }
                Output::Apply(config) => self.applied.push(config.revision()),
                Output::Event(_) => {}
            }
        }
        agent.check_invariants();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_sync_agent_keeps_its_invariants_in_any_order(
        backup in any::<bool>(),
        steps in proptest::collection::vec(sync_step(), 1..80),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut settings = SyncSettings::new("instance-1", "host-1");
        settings.timing.backoff.jitter = Jitter::None;
        if backup {
            settings.backup = Some(BackupSettings {
                key: BackupKey::from_bytes([7; 32]),
                gateway_id: "gw-1".into(),
                nonce_seed: [1; 12],
            });
        }
        let mut agent = SyncAgent::new(settings, 1, t0);
        let mut held = Outstanding::default();
        held.drain(&mut agent);
        let mut revision = 1;
        for step in steps {
            match step {
                SyncStep::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    if agent.poll_timeout().is_some_and(|at| at <= now) {
                        Machine::handle_timeout(&mut agent, now);
                    }
                }
                SyncStep::AnswerFetch(kind) if held.fetches > 0 => {
                    held.fetches -= 1;
                    let result = match kind {
                        0 => {
                            revision += 1;
                            FetchResult::Snapshot(snapshot(revision))
                        }
                        1 => FetchResult::NotModified,
                        2 => FetchResult::Transport("connection refused".into()),
                        3 => FetchResult::Unauthorized("expired".into()),
                        _ => FetchResult::Snapshot(Bytes::from_static(b"{\"revision\": 999, \"policy\": \"<nope\"}")),
                    };
                    agent.handle_fetch(result, now);
                }
                SyncStep::AnswerHeartbeat(ok) if held.heartbeats > 0 => {
                    held.heartbeats -= 1;
                    agent.handle_heartbeat_done(if ok { Ok(()) } else { Err("down".into()) }, now);
                }
                SyncStep::AnswerSave(ok) if !held.saves.is_empty() => {
                    let file = held.saves.pop_front();
                    if ok {
                        held.saved = file;
                    }
                    agent.handle_backup_saved(if ok { Ok(()) } else { Err("disk full".into()) }, now);
                }
                SyncStep::AnswerLoad(kind) if held.load => {
                    held.load = false;
                    let saved = held.saved.clone();
                    let file: Result<Option<&[u8]>, String> = match kind {
                        0 => Ok(None),
                        1 => Ok(saved.as_deref()),
                        _ => Ok(Some(b"not a backup".as_slice())),
                    };
                    agent.handle_backup_loaded(file, now);
                }
                SyncStep::Stray(kind) => match kind {
                    0 => agent.handle_fetch(FetchResult::NotModified, now),
                    1 => agent.handle_heartbeat_done(Ok(()), now),
                    2 => agent.handle_backup_saved(Ok(()), now),
                    _ => agent.handle_backup_loaded(Ok(None), now),
                },
                // An answer to nothing outstanding: the driver has none to give.
                _ => continue,
            }
            // A stray answer may have been taken for the real one: the driver
            // then never gets to give the real one, which the agent must survive.
            if let SyncStep::Stray(kind) = step {
                match kind {
                    0 => held.fetches = 0,
                    1 => held.heartbeats = 0,
                    2 => { held.saves.pop_front(); }
                    _ => held.load = false,
                }
            }
            held.drain(&mut agent);
            // Never silent: with nothing outstanding, a deadline is set (a
            // snapshot fetched during the start-up load waits for that load).
            prop_assert!(held.fetches > 0 || held.load || agent.poll_timeout().is_some());
            // Nothing that does not compile is ever applied.
            prop_assert!(!held.applied.contains(&999));
        }
    }
}

fn record(n: u64) -> RequestRecord {
    serde_json::from_value(serde_json::json!({
        "timestampMs": n, "requestId": format!("req-{n}"), "gateway": "g", "instance": "i",
        "method": "GET", "path": "/x", "status": 200, "clientIp": "::1",
        "bytesIn": 0, "bytesOut": 0, "totalUs": 0, "backendUs": 0, "gatewayUs": 0
    }))
    .expect("a record")
}

#[derive(Debug, Clone)]
enum UploadStep {
    Records(u8),
    Advance(u64),
    /// Answers the upload in flight: 0 stored, 1 refused, 2 failed.
    Answer(u8),
    Stray(u64),
    Flush,
}

fn upload_step() -> impl Strategy<Value = UploadStep> {
    prop_oneof![
        (1u8..40).prop_map(UploadStep::Records),
        (0u64..60_000).prop_map(UploadStep::Advance),
        (0u8..3).prop_map(UploadStep::Answer),
        (0u64..20).prop_map(UploadStep::Stray),
        Just(UploadStep::Flush),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_uploader_keeps_its_invariants_and_accounts_for_every_record(
        buffer_bytes in 1_000u64..20_000,
        steps in proptest::collection::vec(upload_step(), 1..120),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let settings = UploadSettings {
            batch_records: 10,
            buffer_bytes,
            ..UploadSettings::default()
        };
        let mut up = Uploader::new("inst", settings, 7);
        let mut in_flight: Option<u64> = None;
        let mut next = 0u64;
        for step in steps {
            match step {
                UploadStep::Records(n) => {
                    up.handle_records((next..next + u64::from(n)).map(record).collect(), now);
                    next += u64::from(n);
                }
                UploadStep::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    if up.poll_timeout().is_some_and(|at| at <= now) {
                        Machine::handle_timeout(&mut up, now);
                    }
                }
                UploadStep::Answer(kind) => {
                    if let Some(seq) = in_flight.take() {
                        let result = match kind {
                            0 => UploadResult::Stored,
                            1 => UploadResult::Refused("bad".into()),
                            _ => UploadResult::Failed("down".into()),
                        };
                        up.handle_result(seq, result, now);
                    }
                }
                UploadStep::Stray(seq) => {
                    if in_flight != Some(seq) {
                        up.handle_result(seq, UploadResult::Stored, now);
                    }
                }
                UploadStep::Flush => up.flush(),
            }
            while let Some(out) = Machine::poll_output(&mut up) {
                if let uploader::Output::Upload { seq, .. } = out {
                    prop_assert!(in_flight.is_none(), "a second upload while {in_flight:?} flies");
                    in_flight = Some(seq);
                }
            }
            up.check_invariants();
        }
    }
}

#[derive(Debug, Clone)]
enum ExportStep {
    /// Records arrive; bit `i` of the mask: record `i` has a span.
    Records(u8, u16),
    Advance(u64),
    /// Answers the export in flight (ok or failed).
    Answer(bool),
    Stray(u64),
}

fn export_step() -> impl Strategy<Value = ExportStep> {
    prop_oneof![
        ((1u8..16), any::<u16>()).prop_map(|(n, m)| ExportStep::Records(n, m)),
        (0u64..3_000).prop_map(ExportStep::Advance),
        any::<bool>().prop_map(ExportStep::Answer),
        (0u64..20).prop_map(ExportStep::Stray),
    ]
}

fn traced(n: u64, with_span: bool) -> RequestRecord {
    let mut r = record(n);
    if with_span {
        r.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        r.span_id = Some(format!("{:016x}", n + 1));
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_otlp_exporter_keeps_its_invariants_and_accounts_for_every_span(
        per_export in 1usize..8,
        waiting in 8usize..24,
        steps in proptest::collection::vec(export_step(), 1..120),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let settings = ExportSettings { per_export, waiting, ..ExportSettings::default() };
        let mut x = OtlpExporter::new("g", "i", settings);
        let mut in_flight: Option<u64> = None;
        let (mut next, mut given, mut exported, mut failed) = (0u64, 0u64, 0u64, 0u64);
        for step in steps {
            match step {
                ExportStep::Records(n, mask) => {
                    let records: Vec<RequestRecord> = (0..u64::from(n))
                        .map(|i| traced(next + i, mask & (1 << i) != 0))
                        .collect();
                    given += records.iter().filter(|r| r.span_id.is_some()).count() as u64;
                    next += u64::from(n);
                    x.handle_spans(&records, now);
                }
                ExportStep::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    if x.poll_timeout().is_some_and(|at| at <= now) {
                        Machine::handle_timeout(&mut x, now);
                    }
                }
                ExportStep::Answer(ok) => {
                    if let Some(seq) = in_flight.take() {
                        let result = if ok {
                            ExportResult::Exported
                        } else {
                            failed += 1;
                            ExportResult::Failed("down".into())
                        };
                        x.handle_export_result(seq, result, now);
                    }
                }
                ExportStep::Stray(seq) => {
                    if in_flight != Some(seq) {
                        x.handle_export_result(seq, ExportResult::Failed("stray".into()), now);
                    }
                }
            }
            while let Some(out) = Machine::poll_output(&mut x) {
                match out {
                    otlp_exporter::Output::Export { seq, spans, .. } => {
                        prop_assert!(in_flight.is_none(), "a second export while {in_flight:?} flies");
                        prop_assert!(spans as usize <= per_export);
                        in_flight = Some(seq);
                        exported += spans;
                    }
                    otlp_exporter::Output::Dropped { failures, .. } => {
                        prop_assert_eq!(failures % 100, 1, "only every hundredth failure is reported");
                    }
                }
            }
            x.check_invariants();
            // Every span is waiting, handed out in an export, or counted as dropped.
            prop_assert_eq!(given, x.waiting() as u64 + exported + x.overflowed());
            prop_assert_eq!(x.failures(), x.overflowed() + failed);
            // Never silent: spans waiting with nothing in flight have a deadline.
            prop_assert!(in_flight.is_some() || x.waiting() == 0 || x.poll_timeout().is_some());
        }
    }
}
