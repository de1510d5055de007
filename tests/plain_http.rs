//! End to end over real processes: the warnings about plain HTTP between gateways
//! and the management plane (snapshots carry subscription keys and secret named
//! values). A gateway warns at start and on every reconnect when its management
//! URL is `http://` to another machine; `portcullis management` warns when it
//! serves plain HTTP on an address other machines can reach. Neither warns on
//! loopback. Actual traffic stays on loopback: the TEST-NET address below is only
//! ever tried, never reached.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::managed::{ManagedGateway, ManagementProcess};
use common::*;

/// What the gateway's warning says.
const GATEWAY_WARNING: &str = "is plain HTTP to another machine";
/// What the management plane's warning says.
const MANAGEMENT_WARNING: &str = "serves plain HTTP on";

fn text(log: &Arc<Mutex<Vec<String>>>) -> String {
    log.lock().unwrap().join("\n")
}

/// Lines of the log containing `needle`.
fn lines_with(log: &Arc<Mutex<Vec<String>>>, needle: &str) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

/// Waits until `n` lines of the log contain `needle`.
async fn wait_lines(log: &Arc<Mutex<Vec<String>>>, needle: &str, n: usize) {
    let found = tokio::time::timeout(WAIT, async {
        while lines_with(log, needle).len() < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "not {n} log lines with {needle:?} within {WAIT:?}; log: {}",
        text(log)
    );
}

/// A token for gateway `gw-1` the gateway can read (signed with any key: these
/// gateways never reach a management plane that would check it).
fn unverified_token() -> String {
    portcullis_core::sync::token::sign("gw-1", 4_000_000_000, b"any key")
}

#[runtimes]
async fn a_gateway_warns_about_plain_http_to_another_machine(rt: Runtime) {
    // RFC 5737 TEST-NET-1: not routed, so nothing is ever reached.
    let url = "http://192.0.2.1:8090";
    let mut gw = ManagedGateway::start(rt, url, &unverified_token(), &[]).await;
    wait_lines(&gw.log, GATEWAY_WARNING, 1).await;
    let line = lines_with(&gw.log, GATEWAY_WARNING).remove(0);
    for needle in [
        "\"WARN\"",
        url,
        "subscription keys",
        "https://",
        "--tls-cert",
        "--self-signed",
    ] {
        assert!(line.contains(needle), "{needle:?} in {line}");
    }
    assert!(line.contains("\"reconnected\":false"), "{line}");
    gw.kill().await;
}

#[runtimes]
async fn a_gateway_on_loopback_does_not_warn(rt: Runtime) {
    let data = tempfile::tempdir().unwrap();
    let mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let token = mgmt.gateway_with_token("gw-1", &[]).await;
    assert!(mgmt.url.starts_with("http://127.0.0.1:"), "{}", mgmt.url);
    let mut gw = ManagedGateway::start(rt, &mgmt.url, &token, &[]).await;
    gw.ready().await;
    // Logged after the start (where the warning would be), on the same stream.
    wait_lines(&gw.log, "applied from the management plane", 1).await;
    assert!(
        lines_with(&gw.log, GATEWAY_WARNING).is_empty(),
        "{}",
        gw.log_text()
    );
    gw.kill().await;
}

/// A name other than `localhost` that resolves to loopback only (this machine's
/// host name, usually, from /etc/hosts), if there is one: a management URL with
/// it is plain HTTP to what may be another machine, yet the traffic stays local.
fn loopback_alias() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() || name == "localhost" || name.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let addrs: Vec<SocketAddr> = (name.as_str(), 0).to_socket_addrs().ok()?.collect();
    let all_loopback = !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback());
    all_loopback.then_some(name)
}

#[runtimes]
async fn a_gateway_warns_again_when_it_reconnects(rt: Runtime) {
    let Some(alias) = loopback_alias() else {
        eprintln!(
            "SKIPPED: this machine's host name does not resolve to loopback only, so a \
             reconnect over plain HTTP to a non-loopback name cannot be made locally"
        );
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut mgmt = ManagementProcess::start(listen, data.path(), &[]).await;
    let token = mgmt.gateway_with_token("gw-1", &[]).await;
    let url = format!("http://{alias}:{}", mgmt.addr.port());
    let mut gw = ManagedGateway::start(rt, &url, &token, &[]).await;
    gw.ready().await;
    wait_lines(&gw.log, GATEWAY_WARNING, 1).await;

    // An outage, then the management plane back where the gateway looks for it.
    mgmt.kill().await;
    wait_lines(&gw.log, "connectivity to the management plane lost", 1).await;
    let _back = ManagementProcess::start(mgmt.addr, data.path(), &[]).await;
    wait_lines(&gw.log, "connectivity to the management plane restored", 1).await;
    wait_lines(&gw.log, GATEWAY_WARNING, 2).await;
    let warnings = lines_with(&gw.log, GATEWAY_WARNING);
    assert!(
        warnings[0].contains("\"reconnected\":false"),
        "{warnings:?}"
    );
    assert!(warnings[1].contains("\"reconnected\":true"), "{warnings:?}");
    assert!(warnings[1].contains(&url), "{warnings:?}");
    gw.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_plane_warns_about_plain_http_off_loopback() {
    let data = tempfile::tempdir().unwrap();
    // All interfaces: reachable from other machines (the tests call it on loopback).
    let all: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let mut mgmt = ManagementProcess::start(all, data.path(), &[]).await;
    wait_lines(&mgmt.log, MANAGEMENT_WARNING, 1).await;
    let line = lines_with(&mgmt.log, MANAGEMENT_WARNING).remove(0);
    for needle in [
        "\"WARN\"",
        "0.0.0.0:",
        "subscription keys",
        "--tls-cert",
        "--self-signed",
    ] {
        assert!(line.contains(needle), "{needle:?} in {line}");
    }
    mgmt.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_plane_does_not_warn_on_loopback_or_with_tls() {
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let all: SocketAddr = "0.0.0.0:0".parse().unwrap();
    for (listen, args) in [(loopback, &[][..]), (all, &["--self-signed"][..])] {
        let data = tempfile::tempdir().unwrap();
        let mgmt = ManagementProcess::start(listen, data.path(), args).await;
        // Stopped gracefully, it logs its shutdown last on the stream the warning
        // would be on (after the start, where the warning would come).
        let pid = mgmt.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success());
        wait_lines(&mgmt.log, "shutting down the management plane", 1).await;
        assert!(
            lines_with(&mgmt.log, MANAGEMENT_WARNING).is_empty(),
            "{listen} {args:?}: {}",
            text(&mgmt.log)
        );
    }
}
