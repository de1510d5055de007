//! What telemetry costs per request: one keep-alive request through the
//! connection machine with telemetry off, metrics only (the default), records
//! for upload, records plus the JSON access log line, and tracing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_core::config::{CompiledConfig, Snapshot};
use portcullis_core::http::Limits;
use portcullis_core::proxy::*;
use portcullis_core::telemetry::access_log::{AccessLog, LogFormat, LogLevel};
use portcullis_core::telemetry::TelemetrySettings;

#[path = "../tests/support/sink.rs"]
mod sink;
use sink::Sink;

struct Fixed(Arc<CompiledConfig>);

impl ConfigSource for Fixed {
    fn current(&self) -> Option<Arc<CompiledConfig>> {
        Some(self.0.clone())
    }
}

const CONFIG: &str = r#"{"revision": 1, "apis": [{"id": "items", "path": "items",
  "serviceUrl": "http://backend.internal:8080/v1", "subscriptionRequired": false,
  "operations": [{"id": "get-item", "method": "GET", "urlTemplate": "/{id}"}]}]}"#;

const REQUEST: &[u8] = b"GET /items/42?full=true HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: bench/1.0\r\nAccept: application/json\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"id\":42,\"name\":\"an item\"}\n";

fn conn(telemetry: Arc<Sink>) -> ProxyConn {
    let snapshot = Snapshot::from_json(CONFIG.as_bytes()).expect("parses");
    let config = Arc::new(CompiledConfig::compile(snapshot).expect("compiles"));
    let settings = Arc::new(ConnSettings {
        limits: Limits::default(),
        timeouts: Timeouts::default(),
        proto: "http",
        config: Arc::new(Fixed(config)),
        policy: PolicyEnv::new("bench".into(), Some((Instant::now(), 0)), [3; 32]),
        telemetry,
        allow_underscores_in_headers: false,
        https_port: None,
    });
    ProxyConn::new(
        settings,
        "192.0.2.1",
        portcullis_core::proxy::IdSeq::default(),
        Instant::now(),
    )
}

fn one_request(conn: &mut ProxyConn, now: Instant) -> usize {
    conn.handle_client_data(REQUEST, now);
    while conn.poll_event().is_some() {}
    conn.handle_upstream_connected(true, now);
    let sent = conn.upstream_pending().len();
    conn.upstream_written(sent, now);
    conn.handle_upstream_data(RESPONSE, now);
    let answered = conn.client_pending().len();
    conn.client_written(answered, now);
    while conn.poll_event().is_some() {}
    answered
}

fn telemetry_cost(c: &mut Criterion) {
    let json = AccessLog {
        format: LogFormat::Json,
        level: LogLevel::All,
    };
    let variants = [
        (
            "off",
            TelemetrySettings {
                metrics: false,
                ..TelemetrySettings::default()
            },
        ),
        ("metrics", TelemetrySettings::default()),
        (
            "metrics_and_records",
            TelemetrySettings {
                upload: true,
                ..TelemetrySettings::default()
            },
        ),
        (
            "metrics_records_json_log",
            TelemetrySettings {
                access_log: json,
                ..TelemetrySettings::default()
            },
        ),
        (
            "metrics_records_tracing",
            TelemetrySettings {
                tracing: true,
                ..TelemetrySettings::default()
            },
        ),
    ];
    let mut g = c.benchmark_group("telemetry_request");
    for (name, settings) in variants {
        let log = settings.access_log;
        let telemetry = Arc::new(Sink::new(settings));
        let mut conn = conn(telemetry.clone());
        let mut records = Vec::new();
        let mut line = String::new();
        g.bench_function(name, |b| {
            b.iter(|| {
                let n = one_request(&mut conn, Instant::now());
                // What the adapter's telemetry task does with each record.
                records.append(&mut telemetry.take_records());
                for r in records.drain(..) {
                    line.clear();
                    log.write_line(&r, &mut line);
                    black_box(&line);
                }
                black_box(n)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = telemetry_cost
}
criterion_main!(benches);
