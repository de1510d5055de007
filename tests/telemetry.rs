//! End to end over real processes: requests through a gateway show in its
//! Prometheus `/metrics`, its access log and the management plane's analytics;
//! requests served while the management plane is down (and across a gateway
//! restart) reach analytics after it is back, each exactly once.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use common::managed::{ManagedGateway, ManagementProcess};
use common::*;
use serde_json::Value;

const BACKUP_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// API `echo` in front of `backend`, served by gateway `gw-1`; its token.
async fn seeded(mgmt: &ManagementProcess, backend: &Backend) -> String {
    let api = api("echo", "echo", &format!("http://{}", backend.addr));
    mgmt.ok("PUT", "/apis/echo", Some(&api.to_string()), 201)
        .await;
    mgmt.gateway_with_token("gw-1", &["echo"]).await
}

/// The records analytics holds for API `echo`, by request id (every page).
async fn stored_request_ids(mgmt: &ManagementProcess) -> Vec<String> {
    let mut ids = Vec::new();
    let mut path = "/analytics/records?from=0&api=echo&top=1000".to_string();
    loop {
        let page = mgmt.ok("GET", &path, None, 200).await;
        for r in page["value"].as_array().cloned().unwrap_or_default() {
            ids.push(r["requestId"].as_str().unwrap_or_default().to_string());
        }
        match page["nextLink"].as_str() {
            Some(next) => {
                // nextLink is absolute or rooted; keep the path and query.
                let rooted = next.find("/analytics").map_or(next, |i| &next[i..]);
                path = rooted.to_string();
            }
            None => return ids,
        }
    }
}

/// Waits until analytics holds `n` records of `echo`.
async fn wait_stored(mgmt: &ManagementProcess, n: usize) -> Vec<String> {
    within(&format!("{n} records reach analytics"), async {
        loop {
            let ids = stored_request_ids(mgmt).await;
            if ids.len() >= n {
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
}

async fn get_ok(gw: &ManagedGateway, n: usize) {
    for i in 0..n {
        let r = gw.get(&format!("/echo/item-{i}")).await;
        assert_eq!(r.status, 200, "{}", r.body_str());
    }
}

#[runtimes]
async fn requests_show_in_metrics_access_log_and_analytics(rt: Runtime) {
    let backend = Backend::echo().await;
    let data = tempfile::tempdir().unwrap();
    let mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let token = seeded(&mgmt, &backend).await;
    let gw = ManagedGateway::start(rt, &mgmt.url, &token, &["--access-log", "json"]).await;
    gw.ready().await;
    get_ok(&gw, 5).await;
    assert_eq!(gw.get("/nowhere").await.status, 404);

    let metrics = fetch(gw.ops_addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        metrics.header("content-type")
    );
    let text = metrics.body_str();
    assert!(
        text.contains(
            "portcullis_requests_total{api=\"echo\",operation=\"any\",product=\"\",status_class=\"2xx\"} 5\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("portcullis_requests_total{api=\"\",operation=\"\",product=\"\",status_class=\"4xx\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("portcullis_request_duration_seconds_bucket{api=\"echo\""));
    assert!(text.contains("portcullis_config_revision "));

    // The access log: one JSON line per request, on stdout.
    let lines = within("six access log lines", async {
        loop {
            let lines: Vec<Value> = gw
                .log_text()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v.get("requestId").is_some())
                .collect();
            if lines.len() >= 6 {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(lines.len(), 6);
    let first = &lines[0];
    assert_eq!(first["api"], "echo");
    assert_eq!(first["operation"], "any");
    assert_eq!(first["status"], 200);
    assert_eq!(first["path"], "/echo/item-0");
    assert_eq!(first["gateway"], "gw-1");
    assert!(first["totalUs"].as_u64().is_some());
    assert_eq!(lines[5]["status"], 404);
    assert_eq!(lines[5]["error"]["reason"], "NotFound");

    // Analytics: the five calls of `echo`, with latency percentiles.
    wait_stored(&mgmt, 5).await;
    let report = mgmt
        .ok(
            "GET",
            "/analytics/requests?bucket=3600&groupBy=api",
            None,
            200,
        )
        .await;
    let groups = report["groups"].as_array().cloned().unwrap_or_default();
    let echo = groups
        .iter()
        .find(|g| g["key"] == "echo")
        .unwrap_or_else(|| panic!("no echo group: {report}"));
    let requests: u64 = echo["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(requests, 5, "{report}");
    assert!(echo["buckets"][0]["totalMs"]["p99"].is_number(), "{report}");
}

/// The number of records in the upload batches waiting in `dir`.
fn buffered_records(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("batch-"))
                .filter_map(|e| std::fs::read(e.path()).ok())
                .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
                .map(|b| b["records"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0)
}

#[runtimes]
async fn requests_served_during_an_outage_reach_analytics_exactly_once(rt: Runtime) {
    let backend = Backend::echo().await;
    let data = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let mut mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let token = seeded(&mgmt, &backend).await;
    let gw_args = [
        "--backup-dir",
        backup.path().to_str().unwrap(),
        "--backup-key",
        BACKUP_KEY,
    ];
    let mut gw = ManagedGateway::start(rt, &mgmt.url, &token, &gw_args).await;
    gw.ready().await;
    get_ok(&gw, 3).await;
    wait_stored(&mgmt, 3).await;

    // The management plane goes away; the gateway serves on and keeps the
    // records in its buffer directory.
    mgmt.kill().await;
    get_ok(&gw, 20).await;
    let buffer = backup.path().join("telemetry");
    within("the outage's records are buffered on disk", async {
        while buffered_records(&buffer) < 20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    // A gateway crash loses nothing on disk: the restarted gateway serves from
    // its backup and uploads the batches it finds.
    gw.kill().await;
    let gw = ManagedGateway::start(rt, &mgmt.url, &token, &gw_args).await;
    gw.ready().await;
    get_ok(&gw, 10).await;

    let back = ManagementProcess::start(mgmt.addr, data.path(), &[]).await;
    let ids = wait_stored(&back, 33).await;
    // A little longer, in case a retried batch were stored twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ids_later = stored_request_ids(&back).await;
    assert_eq!(ids_later.len(), 33, "each request stored once");
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 33, "no request stored twice");
    let report = back
        .ok(
            "GET",
            "/analytics/requests?bucket=3600&groupBy=gateway",
            None,
            200,
        )
        .await;
    assert_eq!(report["dropped"], 0, "{report}");
    drop(gw);
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

#[runtimes]
async fn traces_continue_through_the_gateway_and_reach_the_collector(rt: Runtime) {
    let backend = Backend::echo().await;
    // An OTLP/HTTP collector: takes whatever is posted to /v1/traces.
    let collector = Backend::start(|_| Reply::Send(ok("application/x-protobuf", b""))).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.json");
    std::fs::write(&config, config_for(backend.addr).to_string()).unwrap();
    let collector_url = format!("http://{}", collector.addr);
    let (mut child, addr, _ops, _log) = spawn_gateway(
        rt,
        &[
            "--config",
            config.to_str().unwrap(),
            "--otlp-endpoint",
            &collector_url,
        ],
    )
    .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut client = Client::connect(addr).await;
    let r = client
        .roundtrip(format!(
            "GET /api/traced HTTP/1.1\r\nHost: gw\r\ntraceparent: 00-{trace_id}-00f067aa0ba902b7-01\r\n\r\n"
        ))
        .await;
    assert_eq!(r.status, 200);
    // The backend's parent is the gateway's span, in the client's trace.
    let sent = backend.only_request();
    let traceparent = sent.header("traceparent").expect("a traceparent");
    assert!(
        traceparent.starts_with(&format!("00-{trace_id}-")),
        "{traceparent}"
    );
    let gateway_span = &traceparent[36..52];
    assert_ne!(gateway_span, "00f067aa0ba902b7");
    assert_eq!(sent.headers("traceparent").len(), 1);

    // The span arrives at the collector within the export interval.
    within("the span is exported", collector.wait_requests(1)).await;
    let export = &collector.requests()[0];
    assert_eq!(export.method(), "POST");
    assert_eq!(export.target(), "/v1/traces");
    assert_eq!(
        export.header("content-type").as_deref(),
        Some("application/x-protobuf")
    );
    let body = &export.body;
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(&hex_bytes(trace_id)),
        "the trace id is in the export"
    );
    assert!(
        contains(&hex_bytes(gateway_span)),
        "the gateway's span id is in the export"
    );
    assert!(
        contains(&hex_bytes("00f067aa0ba902b7")),
        "its parent is the client's span"
    );
    assert!(contains(b"/api/traced"));
    let _ = child.start_kill();
}
