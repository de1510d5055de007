//! End to end over real processes: requests through a gateway show in its
//! Prometheus `/metrics`, its access log and the management plane's analytics;
//! requests served while the management plane is down (and across a gateway
//! restart) reach analytics after it is back, each exactly once; the batches
//! waiting on disk meanwhile are encrypted, and a tampered one is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use common::managed::{ManagedGateway, ManagementProcess};
use common::*;
use portcullis_core::sync::BackupKey;
use portcullis_core::telemetry::buffer_file::{self, BatchKey};
use portcullis_driver::telemetry::pump::{batch_file_name, batch_file_seq, rejected_name};
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
    let gw = ManagedGateway::start(
        rt,
        &mgmt.url,
        &token,
        &["--access-log", "json", "--metrics-operation-labels"],
    )
    .await;
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
    assert!(
        text.contains("portcullis_metrics_series_folded_total 0\n"),
        "{text}"
    );

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

/// The upload batches waiting in `dir`, by number: the raw file, and the batch
/// JSON it decrypts to with [`BACKUP_KEY`].
fn buffered_batches(dir: &Path) -> Vec<(u64, Vec<u8>, Value)> {
    let key = BatchKey::derive(&BackupKey::parse(BACKUP_KEY).unwrap());
    let mut batches: Vec<(u64, Vec<u8>, Value)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let seq = batch_file_seq(&e.file_name().to_string_lossy())?;
                    let file = std::fs::read(e.path()).ok()?;
                    let json = buffer_file::open(&file, seq, &key).ok()?;
                    Some((seq, file, serde_json::from_slice(&json).ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    batches.sort_by_key(|(seq, _, _)| *seq);
    batches
}

/// The number of records in the upload batches waiting in `dir`.
fn buffered_records(dir: &Path) -> usize {
    buffered_batches(dir)
        .iter()
        .map(|(_, _, b)| b["records"].as_array().map_or(0, Vec::len))
        .sum()
}

/// Waits until the batches in `dir` hold `n` records.
async fn wait_buffered(dir: &Path, n: usize) {
    within(&format!("{n} records buffered on disk"), async {
        while buffered_records(dir) < n {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// The request ids in batch JSON `batch`.
fn request_ids(batch: &Value) -> Vec<String> {
    batch["records"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .filter_map(|r| r["requestId"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
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
    wait_buffered(&buffer, 20).await;
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

/// A gateway with a backup whose management plane went away after it applied
/// its configuration, its records buffered on disk: the path of every request
/// and the client's address are nowhere in the buffer's files in the clear.
#[runtimes]
async fn buffered_batches_are_encrypted_at_rest(rt: Runtime) {
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
    let gw = ManagedGateway::start(rt, &mgmt.url, &token, &gw_args).await;
    gw.ready().await;
    mgmt.kill().await;
    const SECRET: &str = "customer-4711-statement";
    for i in 0..12 {
        let r = gw.get(&format!("/echo/{SECRET}?n={i}")).await;
        assert_eq!(r.status, 200, "{}", r.body_str());
    }
    let buffer = backup.path().join("telemetry");
    wait_buffered(&buffer, 12).await;

    let batches = buffered_batches(&buffer);
    assert!(!batches.is_empty());
    // Decrypted, the batches hold the requests; on disk, nothing of them shows.
    let plain: String = batches.iter().map(|(_, _, b)| b.to_string()).collect();
    assert!(
        plain.contains(SECRET) && plain.contains("127.0.0.1"),
        "{plain}"
    );
    let mut files = 0;
    for entry in std::fs::read_dir(&buffer).unwrap().filter_map(Result::ok) {
        let raw = std::fs::read(entry.path()).unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        files += 1;
        assert!(raw.starts_with(b"PCLSTLMB"), "{name} is not sealed");
        for needle in [SECRET, "127.0.0.1", "/echo/", "requestId", "echo"] {
            assert!(
                !raw.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{name} holds {needle:?} in the clear"
            );
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = entry.metadata().unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name} is readable by others");
        }
    }
    assert_eq!(
        files,
        batches.len(),
        "only sealed batch files in the buffer"
    );
    drop(gw);
}

/// Batch files altered while the gateway was down (a flipped byte; a flipped
/// byte with the checksum recomputed), and a plaintext batch as an earlier
/// version wrote it, are refused with a message, set aside and never uploaded;
/// the other batches are.
#[runtimes]
async fn a_tampered_or_plaintext_buffer_file_is_refused_and_not_uploaded(rt: Runtime) {
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
    mgmt.kill().await;
    // Three rounds of requests, each waiting for its batch: three batch files.
    let buffer = backup.path().join("telemetry");
    let mut total = 0;
    for n in [6, 8, 5] {
        get_ok(&gw, n).await;
        total += n;
        wait_buffered(&buffer, total).await;
    }
    gw.kill().await;

    let batches = buffered_batches(&buffer);
    assert_eq!(batches.len(), 3, "one batch file per round");
    let mut refused_ids = request_ids(&batches[0].2);
    refused_ids.extend(request_ids(&batches[1].2));
    // A flipped byte (damage, or a careless tamperer)...
    let damaged_name = batch_file_name(batches[0].0);
    let mut damaged = batches[0].1.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x20;
    std::fs::write(buffer.join(&damaged_name), &damaged).unwrap();
    // ...and a flipped byte with the (unkeyed) checksum made to match.
    let tampered_name = batch_file_name(batches[1].0);
    let mut tampered = batches[1].1.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x20;
    let end = tampered.len() - 32;
    let sum = ring::digest::digest(&ring::digest::SHA256, &tampered[..end]);
    tampered[end..].copy_from_slice(sum.as_ref());
    std::fs::write(buffer.join(&tampered_name), &tampered).unwrap();
    // The first batch in the clear, as an earlier version left it (another
    // number and id, so only its refusal keeps it out of analytics).
    let mut old = batches[0].2.clone();
    old["id"] = Value::from("left-by-an-earlier-version");
    let plaintext_name = batch_file_name(batches[2].0 + 1000);
    std::fs::write(buffer.join(&plaintext_name), old.to_string()).unwrap();

    let back = ManagementProcess::start(mgmt.addr, data.path(), &[]).await;
    let gw = ManagedGateway::start(rt, &back.url, &token, &gw_args).await;
    gw.ready().await;
    let expected = total - refused_ids.len();
    let ids = wait_stored(&back, expected).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ids_later = stored_request_ids(&back).await;
    assert_eq!(ids_later.len(), expected, "only the intact batches stored");
    for id in &refused_ids {
        assert!(
            !ids.contains(id) && !ids_later.contains(id),
            "{id} uploaded"
        );
    }
    let log = gw.log_text();
    assert!(
        log.contains("telemetry batch refused and not uploaded: telemetry batch file damaged: checksum mismatch"),
        "{log}"
    );
    assert!(
        log.contains("telemetry batch refused and not uploaded: telemetry batch file does not decrypt: wrong backup key, or the file was tampered with"),
        "{log}"
    );
    assert!(
        log.contains("telemetry batch refused and not uploaded: not an encrypted telemetry batch (plaintext from an earlier version"),
        "{log}"
    );
    for name in [&damaged_name, &tampered_name, &plaintext_name] {
        assert!(!buffer.join(name).exists(), "{name} still a batch file");
        assert!(
            buffer.join(rejected_name(name)).exists(),
            "{name} not set aside"
        );
    }
    drop(gw);
}

/// A telemetry buffer directory without a backup key would hold client data in
/// the clear: the gateway refuses to start with one, and writes nothing there.
#[runtimes]
async fn a_buffer_directory_without_a_backup_key_is_refused(rt: Runtime) {
    let buffer = tempfile::tempdir().unwrap();
    let dir = buffer.path().join("telemetry");
    let out = within(
        "portcullis gateway with a buffer directory but no backup key",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["gateway", "--runtime", rt.name()])
            .args(["--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0"])
            .args(["--management-url", "http://127.0.0.1:9", "--token", "t"])
            .arg("--telemetry-buffer-dir")
            .arg(&dir)
            .env_clear()
            .envs(clean_env())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--telemetry-buffer-dir needs --backup-dir and --backup-key"),
        "{stderr}"
    );
    assert!(!dir.exists());
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
