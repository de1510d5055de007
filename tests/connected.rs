//! End to end over real processes: `portcullis management`, gateways connected to
//! it, and fail static across management outages and gateway restarts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::managed::{ManagedGateway, ManagementProcess};
use common::*;
use serde_json::json;

const BACKUP_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const OTHER_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

/// An outbound policy that stamps responses with `X-Version: {version}`.
fn versioned_policy(version: u32) -> String {
    format!(
        "<policies>\n  <inbound><base /></inbound>\n  <backend><base /></backend>\n  <outbound>\n    <base />\n    <set-header name=\"X-Version\" exists-action=\"override\"><value>{version}</value></set-header>\n  </outbound>\n  <on-error><base /></on-error>\n</policies>"
    )
}

async fn put_policy(mgmt: &ManagementProcess, path: &str, xml: &str) {
    let r = mgmt.call("PUT", path, Some(xml)).await;
    assert!(
        r.status == 200 || r.status == 201,
        "PUT {path}: {} {}",
        r.status,
        r.body_str()
    );
}

/// A management plane with API `echo` (in front of `backend`) and gateway `gw-1`
/// serving it; returns the gateway token.
async fn seeded(mgmt: &ManagementProcess, backend: &Backend) -> String {
    let api = api("echo", "echo", &format!("http://{}", backend.addr));
    mgmt.ok("PUT", "/apis/echo", Some(&api.to_string()), 201)
        .await;
    put_policy(mgmt, "/apis/echo/policy", &versioned_policy(1)).await;
    mgmt.gateway_with_token("gw-1", &["echo"]).await
}

fn backup_args(dir: &Path, key: &'static str) -> Vec<String> {
    vec![
        "--backup-dir".into(),
        dir.display().to_string(),
        "--backup-key".into(),
        key.into(),
    ]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The backup files a gateway wrote in `dir`.
fn backup_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| n == "config.backup"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

async fn wait_backup(dir: &Path) -> PathBuf {
    within("the gateway writes its backup", async {
        loop {
            if let Some(file) = backup_files(dir).into_iter().next() {
                return file;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// The gateway's `/readyz` stays 503 (and API requests 503) for a while.
async fn stays_not_ready(gw: &ManagedGateway) {
    for _ in 0..10 {
        assert_eq!(gw.readyz().await, 503, "log: {}", gw.log_text());
        assert_eq!(gw.get("/echo/x").await.status, 503);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn version_is(v: &'static str) -> impl Fn(&Response) -> bool {
    move |r| r.status == 200 && r.header("x-version").as_deref() == Some(v)
}

#[runtimes]
async fn configured_through_the_api_served_by_the_gateway(rt: Runtime) {
    let backend = Backend::echo().await;
    let data = tempfile::tempdir().unwrap();
    let mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let token = seeded(&mgmt, &backend).await;
    // A poll interval far beyond the test's patience: changes can only arrive by
    // long poll.
    let gw = ManagedGateway::start(rt, &mgmt.url, &token, &["--poll-interval", "3600"]).await;
    gw.ready().await;
    let r = gw.get("/echo/hello").await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.header("x-path").as_deref(), Some("/hello"));
    assert_eq!(r.header("x-version").as_deref(), Some("1"));

    // A policy change reaches the gateway through the long poll.
    put_policy(&mgmt, "/apis/echo/policy", &versioned_policy(2)).await;
    gw.wait_for("/echo/hello", "the new policy is served", version_is("2"))
        .await;

    // A bad policy is refused with its line and reason; nothing changes.
    let before = mgmt.revision().await;
    let bad = "<policies>\n  <inbound>\n    <base />\n    <rate-limit calls=\"many\" renewal-period=\"60\" />\n  </inbound>\n</policies>";
    let r = mgmt.call("PUT", "/apis/echo/policy", Some(bad)).await;
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    let problem = r.json();
    assert_eq!(problem["policy"]["line"], 4, "{problem}");
    assert_eq!(problem["policy"]["element"], "rate-limit", "{problem}");
    assert_eq!(mgmt.revision().await, before);
    assert!(version_is("2")(&gw.get("/echo/hello").await));

    // A new API assigned to the gateway is routed.
    let late = api("late", "late", &format!("http://{}", backend.addr));
    mgmt.ok("PUT", "/apis/late", Some(&late.to_string()), 201)
        .await;
    mgmt.ok(
        "PUT",
        "/gateways/gw-1",
        Some(&json!({"location": {"name": "test lab"}, "apis": ["echo", "late"]}).to_string()),
        200,
    )
    .await;
    gw.wait_for("/late/x", "the new API is routed", |r| r.status == 200)
        .await;

    // The gateway reports in.
    let status = within("the gateway's heartbeat is recorded", async {
        loop {
            let s = mgmt.ok("GET", "/gateways/gw-1/status", None, 200).await;
            if s["instances"].as_array().is_some_and(|i| !i.is_empty()) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let instance = &status["instances"][0];
    assert_eq!(instance["online"], true, "{status}");
    assert!(instance["appliedRevision"].as_u64().is_some(), "{status}");
    assert_eq!(instance["health"], "healthy", "{status}");
}

/// Runs keep-alive GETs on `clients` connections until `stop`, counting answers
/// that are not 200 and connections that broke.
fn load(
    gw_addr: std::net::SocketAddr,
    clients: usize,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|i| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                let mut c = Client::connect(gw_addr).await;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r = c.roundtrip(get(&format!("/echo/{i}/{n}"))).await;
                    if r.status == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
            })
        })
        .collect()
}

#[runtimes]
async fn fail_static_through_an_outage_and_gateway_restarts(rt: Runtime) {
    let backend = Backend::echo().await;
    let data = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let mut mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let token = seeded(&mgmt, &backend).await;
    let with_backup = backup_args(backup.path(), BACKUP_KEY);
    let mut first = ManagedGateway::start(rt, &mgmt.url, &token, &args(&with_backup)).await;
    first.ready().await;
    wait_backup(backup.path()).await;

    // Kill the management plane while requests run: none fails.
    let (stop, ok, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let tasks = load(first.addr, 4, stop.clone(), ok.clone(), failed.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    mgmt.kill().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a load connection broke");
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) > 0);
    assert!(version_is("1")(&first.get("/echo/still").await));

    // Restart during the outage with the backup: serves at once.
    first.kill().await;
    let restarted = ManagedGateway::start(rt, &mgmt.url, &token, &args(&with_backup)).await;
    restarted.ready().await;
    assert!(version_is("1")(&restarted.get("/echo/from-backup").await));

    // Without a backup: not ready, and never an empty configuration.
    let bare = ManagedGateway::start(rt, &mgmt.url, &token, &[]).await;
    stays_not_ready(&bare).await;

    // Changes made meanwhile (an admin reaches the management plane's store through
    // another instance the gateways do not know about).
    let side = ManagementProcess::start(any_port(), data.path(), &[]).await;
    put_policy(&side, "/apis/echo/policy", &versioned_policy(3)).await;
    let late = api("late", "late", &format!("http://{}", backend.addr));
    side.ok("PUT", "/apis/late", Some(&late.to_string()), 201)
        .await;
    side.ok(
        "PUT",
        "/gateways/gw-1",
        Some(&json!({"location": {"name": "test lab"}, "apis": ["echo", "late"]}).to_string()),
        200,
    )
    .await;
    let latest = side.revision().await;
    let mut side = side;
    side.kill().await;

    // The management plane comes back where the gateways look for it: both converge.
    let back = ManagementProcess::start(mgmt.addr, data.path(), &[]).await;
    for gw in [&restarted, &bare] {
        gw.ready().await;
        gw.wait_for(
            "/echo/x",
            "converges to the policy changed meanwhile",
            version_is("3"),
        )
        .await;
        gw.wait_for("/late/x", "converges to the API added meanwhile", |r| {
            r.status == 200
        })
        .await;
    }
    within("both instances report the latest revision", async {
        loop {
            let s = back.ok("GET", "/gateways/gw-1/status", None, 200).await;
            let instances = s["instances"].as_array().cloned().unwrap_or_default();
            let current = instances
                .iter()
                .filter(|i| i["online"] == true && i["appliedRevision"].as_u64() == Some(latest))
                .count();
            if current >= 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[runtimes]
async fn a_damaged_backup_is_detected_and_never_served(rt: Runtime) {
    let backend = Backend::echo().await;
    let data = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let mut mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let token = seeded(&mgmt, &backend).await;
    let with_backup = backup_args(backup.path(), BACKUP_KEY);
    let mut gw = ManagedGateway::start(rt, &mgmt.url, &token, &args(&with_backup)).await;
    gw.ready().await;
    let file = wait_backup(backup.path()).await;
    gw.kill().await;
    mgmt.kill().await;
    let good = std::fs::read(&file).unwrap();

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let truncated = good[..good.len() - 7].to_vec();
    let cases: [(&str, Vec<u8>, &'static str); 3] = [
        ("a flipped byte", flipped, BACKUP_KEY),
        ("a truncated file", truncated, BACKUP_KEY),
        ("the wrong key", good.clone(), OTHER_KEY),
    ];
    for (what, bytes, key) in cases {
        std::fs::write(&file, &bytes).unwrap();
        let mut gw = ManagedGateway::start(
            rt,
            &mgmt.url,
            &token,
            &args(&backup_args(backup.path(), key)),
        )
        .await;
        stays_not_ready(&gw).await;
        let log = gw.log_text().to_lowercase();
        assert!(
            log.contains("backup") && (log.contains("\"error\"") || log.contains("\"warn\"")),
            "{what}: the rejected backup is reported; log: {log}"
        );
        gw.kill().await;
    }

    // With the management plane back, a gateway on the damaged backup recovers
    // and writes a good one.
    std::fs::write(&file, truncated_copy(&good)).unwrap();
    let _back = ManagementProcess::start(mgmt.addr, data.path(), &[]).await;
    let gw = ManagedGateway::start(rt, &mgmt.url, &token, &args(&with_backup)).await;
    gw.ready().await;
    gw.wait_for("/echo/x", "served after recovery", version_is("1"))
        .await;
    within("a good backup is written again", async {
        loop {
            if std::fs::read(&file).is_ok_and(|b| b.len() >= good.len() - 64) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

fn truncated_copy(good: &[u8]) -> Vec<u8> {
    good[..good.len() / 3].to_vec()
}

#[runtimes]
async fn tokens_that_do_not_verify_are_refused(rt: Runtime) {
    let backend = Backend::echo().await;
    let data = tempfile::tempdir().unwrap();
    let mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let token = seeded(&mgmt, &backend).await;
    // Regenerating the primary key invalidates tokens signed with it.
    mgmt.ok(
        "POST",
        "/gateways/gw-1/regenerate-key",
        Some(r#"{"keyType":"primary"}"#),
        200,
    )
    .await;
    let forged = format!("{}x", token.trim_end_matches('='));
    for bad in [token.as_str(), forged.as_str(), "GatewayKey gw-1&1&AAAA"] {
        let gw = ManagedGateway::start(rt, &mgmt.url, bad, &[]).await;
        stays_not_ready(&gw).await;
        let log = gw.log_text();
        assert!(
            log.contains("\"ERROR\"") && log.contains("refused the gateway token"),
            "the refusal is logged: {log}"
        );
    }
    // A fresh token works.
    let fresh = mgmt
        .ok("POST", "/gateways/gw-1/token", Some("{}"), 200)
        .await;
    let gw = ManagedGateway::start(rt, &mgmt.url, fresh["value"].as_str().unwrap(), &[]).await;
    gw.ready().await;
}

#[runtimes]
async fn https_management_plane_with_a_self_signed_certificate(rt: Runtime) {
    let backend = Backend::echo().await;
    let data = tempfile::tempdir().unwrap();
    // The test's admin client speaks plain HTTP: seed through a plain instance
    // first, then serve the same store over HTTPS.
    let mut plain = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let token = seeded(&plain, &backend).await;
    plain.kill().await;
    let mgmt = ManagementProcess::start(any_port(), data.path(), &["--self-signed"]).await;
    assert!(mgmt.url.starts_with("https://"), "{}", mgmt.url);
    let ca: String = mgmt
        .log
        .lock()
        .unwrap()
        .iter()
        .find_map(|l| l.strip_prefix("MANAGEMENT_CA=").map(str::to_owned))
        .expect("the CA path is printed");
    assert!(Path::new(&ca).is_file());
    let gw = ManagedGateway::start(rt, &mgmt.url, &token, &["--ca", &ca]).await;
    gw.ready().await;
    assert!(version_is("1")(&gw.get("/echo/tls").await));
    // Without the CA the gateway does not trust it.
    let untrusting = ManagedGateway::start(rt, &mgmt.url, &token, &[]).await;
    stays_not_ready(&untrusting).await;
}
