//! The OTLP span exporter machine driven by hand: batching by time and size,
//! one export in flight, failures counted and reported sparingly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use portcullis_core::http::Response;
use portcullis_core::telemetry::otlp_exporter::*;
use portcullis_core::telemetry::record::RequestRecord;
fn span(n: u64) -> RequestRecord {
    let mut r: RequestRecord = serde_json::from_value(serde_json::json!({
        "timestampMs": n, "requestId": format!("r{n}"), "gateway": "g", "instance": "i",
        "method": "GET", "path": "/", "status": 200, "clientIp": "::1",
        "bytesIn": 0, "bytesOut": 0, "totalUs": 0, "backendUs": 0, "gatewayUs": 0
    }))
    .unwrap();
    r.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    r.span_id = Some(format!("{n:016x}"));
    r
}

fn exports(x: &mut OtlpExporter) -> Vec<(u64, u64)> {
    std::iter::from_fn(|| x.poll_output())
        .filter_map(|o| match o {
            Output::Export { seq, spans, .. } => Some((seq, spans)),
            Output::Dropped { .. } => None,
        })
        .collect()
}

#[test]
fn spans_wait_a_second_then_go_in_one_export() {
    let t0 = Instant::now();
    let mut x = OtlpExporter::new("g", "i", ExportSettings::default());
    let mut untraced = span(9);
    untraced.span_id = None;
    x.handle_spans(&[span(1), untraced, span(2)], t0);
    assert_eq!(exports(&mut x), vec![]);
    assert_eq!(x.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    x.handle_timeout(t0 + Duration::from_millis(999));
    assert_eq!(exports(&mut x), vec![]);
    x.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(exports(&mut x), vec![(0, 2)]);
    assert_eq!(x.poll_timeout(), None, "nothing waits");
}

#[test]
fn a_full_batch_goes_at_once_and_the_rest_waits_for_the_result() {
    let t0 = Instant::now();
    let settings = ExportSettings {
        per_export: 4,
        waiting: 10,
        ..ExportSettings::default()
    };
    let mut x = OtlpExporter::new("g", "i", settings);
    x.handle_spans(&(1..=10).map(span).collect::<Vec<_>>(), t0);
    assert_eq!(exports(&mut x), vec![(0, 4)]);
    assert_eq!(x.waiting(), 6);
    assert_eq!(x.poll_timeout(), None, "no timer while an export flies");
    x.handle_export_result(7, ExportResult::Exported, t0);
    assert_eq!(exports(&mut x), vec![], "a stray result is ignored");
    x.handle_export_result(0, ExportResult::Failed("down".into()), t0);
    let out: Vec<Output> = std::iter::from_fn(|| x.poll_output()).collect();
    assert!(matches!(&out[0], Output::Dropped { failures: 1, reason } if reason == "down"));
    assert!(matches!(
        &out[1],
        Output::Export {
            seq: 1,
            spans: 4,
            ..
        }
    ));
    assert_eq!(x.waiting(), 2);
    x.handle_spans(&(11..=20).map(span).collect::<Vec<_>>(), t0);
    assert_eq!((x.waiting(), x.overflowed(), x.failures()), (10, 2, 3));
    x.handle_export_result(1, ExportResult::Failed("down".into()), t0);
    assert_eq!(
        exports(&mut x),
        vec![(2, 4)],
        "the fourth failure is not reported"
    );
    x.handle_export_result(2, ExportResult::Exported, t0);
    assert_eq!(exports(&mut x), vec![(3, 4)]);
    x.handle_export_result(3, ExportResult::Exported, t0);
    assert_eq!(exports(&mut x), vec![]);
    assert_eq!(x.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    x.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(exports(&mut x), vec![(4, 2)]);
}

#[test]
fn collector_answers() {
    let answer = |status| Response {
        status,
        ..Response::default()
    };
    assert_eq!(export_result(&answer(204)), ExportResult::Exported);
    assert_eq!(
        export_result(&answer(503)),
        ExportResult::Failed("collector answered 503".into())
    );
}
