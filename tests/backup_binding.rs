//! End to end: a backup file is bound to the gateway that wrote it. Gateway B's
//! file copied into gateway A's backup directory (same backup key) is refused,
//! never served, and never overwritten.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::managed::{ManagedGateway, ManagementProcess};
use common::*;

const BACKUP_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn backup_args(dir: &Path) -> Vec<String> {
    vec![
        "--backup-dir".into(),
        dir.display().to_string(),
        "--backup-key".into(),
        BACKUP_KEY.into(),
    ]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

async fn wait_file(path: &Path) {
    within("the gateway writes its backup", async {
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[runtimes]
async fn another_gateways_backup_is_refused_and_kept(rt: Runtime) {
    let backend = Backend::echo().await;
    let data = tempfile::tempdir().unwrap();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let api = api("echo", "echo", &format!("http://{}", backend.addr));
    mgmt.ok("PUT", "/apis/echo", Some(&api.to_string()), 201)
        .await;
    let token_a = mgmt.gateway_with_token("gw-a", &["echo"]).await;
    let token_b = mgmt.gateway_with_token("gw-b", &["echo"]).await;

    // Gateway B writes its backup.
    let mut b =
        ManagedGateway::start(rt, &mgmt.url, &token_b, &args(&backup_args(dir_b.path()))).await;
    b.ready().await;
    let file_b = dir_b.path().join("config.backup");
    wait_file(&file_b).await;
    b.kill().await;
    let theirs = std::fs::read(&file_b).unwrap();

    // Copied into A's directory; A starts during an outage.
    let file_a = dir_a.path().join("config.backup");
    std::fs::write(&file_a, &theirs).unwrap();
    let addr = mgmt.addr;
    mgmt.kill().await;
    let mut a = ManagedGateway::start(
        rt,
        &format!("http://{addr}"),
        &token_a,
        &args(&backup_args(dir_a.path())),
    )
    .await;
    within("gateway A logs the refusal", async {
        while !a.log_text().contains("belongs to gateway `gw-b`") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let log = a.log_text();
    assert!(log.contains("`gw-a`"), "{log}");
    for _ in 0..10 {
        assert_eq!(a.readyz().await, 503, "log: {}", a.log_text());
        assert_eq!(a.get("/echo/x").await.status, 503);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The management plane is back: A serves from it, but leaves B's file alone.
    let mgmt = ManagementProcess::start(addr, data.path(), &[]).await;
    a.ready().await;
    a.wait_for("/echo/x", "gateway A serves", |r| r.status == 200)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        std::fs::read(&file_a).unwrap(),
        theirs,
        "B's file is not overwritten"
    );
    // Its heartbeat says why it keeps no backup.
    within("the heartbeat reports the refused backup", async {
        loop {
            let status = mgmt.ok("GET", "/gateways/gw-a/status", None, 200).await;
            if status["instances"][0]["backup"]
                .as_str()
                .is_some_and(|b| b.contains("gw-b"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    a.kill().await;

    // Once an operator removes it, A writes its own.
    std::fs::remove_file(&file_a).unwrap();
    let a = ManagedGateway::start(rt, &mgmt.url, &token_a, &args(&backup_args(dir_a.path()))).await;
    a.ready().await;
    wait_file(&file_a).await;
    assert_ne!(std::fs::read(&file_a).unwrap(), theirs);
}
