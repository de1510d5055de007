//! End to end: a management database restored from an older copy and changed
//! again until its revision is back where a gateway was. The gateway must not
//! mistake the new content for what it holds because the revision matches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::managed::{ManagedGateway, ManagementProcess};
use common::*;

const BACKUP_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// An outbound policy that stamps responses with `X-Version: {version}`.
fn versioned_policy(version: u32) -> String {
    format!(
        "<policies>\n  <inbound><base /></inbound>\n  <backend><base /></backend>\n  <outbound>\n    <base />\n    <set-header name=\"X-Version\" exists-action=\"override\"><value>{version}</value></set-header>\n  </outbound>\n  <on-error><base /></on-error>\n</policies>"
    )
}

fn version_is(v: &'static str) -> impl Fn(&Response) -> bool {
    move |r| r.status == 200 && r.header("x-version").as_deref() == Some(v)
}

async fn put_policy(mgmt: &ManagementProcess, xml: &str) {
    let r = mgmt.call("PUT", "/apis/echo/policy", Some(xml)).await;
    assert!(
        r.status == 200 || r.status == 201,
        "{} {}",
        r.status,
        r.body_str()
    );
}

/// Copies the files of `from` (the database, its WAL, anything else) into `to`,
/// replacing what is there: a restore of a copy taken while the plane was stopped.
fn copy_dir(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `GET /gateways/gw-1/status` and the instance in it for which `check` holds
/// (instances of earlier starts stay listed).
async fn status_where(
    mgmt: &ManagementProcess,
    what: &str,
    check: impl Fn(&serde_json::Value, &serde_json::Value) -> bool,
) -> (serde_json::Value, serde_json::Value) {
    within(what, async {
        loop {
            let status = mgmt.ok("GET", "/gateways/gw-1/status", None, 200).await;
            let instances = status["instances"].as_array().cloned().unwrap_or_default();
            if let Some(instance) = instances.into_iter().find(|i| check(&status, i)) {
                return (status, instance);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

#[runtimes]
async fn a_restored_store_at_the_same_revision_is_not_mistaken_for_the_old_one(rt: Runtime) {
    let backend = Backend::echo().await;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let saved = root.path().join("saved");
    let backup = tempfile::tempdir().unwrap();

    let mut mgmt = ManagementProcess::start(any_port(), &data, &[]).await;
    let api = api("echo", "echo", &format!("http://{}", backend.addr));
    mgmt.ok("PUT", "/apis/echo", Some(&api.to_string()), 201)
        .await;
    put_policy(&mgmt, &versioned_policy(1)).await;
    let token = mgmt.gateway_with_token("gw-1", &["echo"]).await;
    let old_revision = mgmt.revision().await;

    // The operator's copy, taken while the plane is stopped.
    let addr = mgmt.addr;
    mgmt.kill().await;
    copy_dir(&data, &saved);
    let mut mgmt = ManagementProcess::start(addr, &data, &[]).await;

    // The gateway follows two more changes, and backs up the last.
    let gw_args = [
        "--backup-dir",
        backup.path().to_str().unwrap(),
        "--backup-key",
        BACKUP_KEY,
        "--heartbeat-interval",
        "1",
    ];
    let mut gw = ManagedGateway::start(rt, &mgmt.url, &token, &gw_args).await;
    gw.ready().await;
    put_policy(&mgmt, &versioned_policy(2)).await;
    put_policy(&mgmt, &versioned_policy(3)).await;
    gw.wait_for("/echo/x", "version 3 is served", version_is("3"))
        .await;
    let gateway_revision = mgmt.revision().await;
    assert_eq!(gateway_revision, old_revision + 2);
    let (before, _) = status_where(&mgmt, "the gateway reports version 3", |s, i| {
        i["appliedRevision"] == gateway_revision
            && i["contentMatches"] == true
            && s["storeId"].is_string()
    })
    .await;
    assert!(backup.path().join("config.backup").exists());
    gw.kill().await;
    mgmt.kill().await;

    // Restore the older copy and make other changes, back to the same revision.
    copy_dir(&saved, &data);
    let mgmt = ManagementProcess::start(addr, &data, &[]).await;
    assert_eq!(mgmt.revision().await, old_revision);
    put_policy(&mgmt, &versioned_policy(8)).await;
    put_policy(&mgmt, &versioned_policy(9)).await;
    assert_eq!(mgmt.revision().await, gateway_revision);

    // The gateway starts from its backup (revision equal, content not) and
    // converges to the restored store's content.
    let gw = ManagedGateway::start(rt, &mgmt.url, &token, &gw_args).await;
    gw.ready().await;
    gw.wait_for(
        "/echo/x",
        "the restored store's content is served",
        version_is("9"),
    )
    .await;
    let (after, instance) = status_where(&mgmt, "the gateway reports the new content", |_, i| {
        i["contentMatches"] == true
    })
    .await;
    // The restored copy keeps its identity; the digest tells the contents apart.
    assert_eq!(after["storeId"], before["storeId"]);
    assert_eq!(after["currentRevision"], before["currentRevision"]);
    assert_ne!(after["currentDigest"], before["currentDigest"]);
    assert_eq!(instance["appliedDigest"], after["currentDigest"]);
    assert_eq!(instance["appliedRevision"], gateway_revision);
    drop(gw);

    // A new store identity (the runbook's step after a restore): the same content
    // at the same revision is fetched again under the new identity.
    let mut mgmt = mgmt;
    mgmt.kill().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("management")
        .arg("--data")
        .arg(&data)
        .arg("--new-store-identity")
        .env_clear()
        .envs(clean_env())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("STORE_ID="))
        .expect("STORE_ID= printed")
        .to_owned();
    assert!(stdout.contains(&format!(
        "PREVIOUS_STORE_ID={}",
        before["storeId"].as_str().unwrap()
    )));
    let mgmt = ManagementProcess::start(addr, &data, &[]).await;
    let gw = ManagedGateway::start(rt, &mgmt.url, &token, &gw_args).await;
    gw.ready().await;
    let (renewed, _) = status_where(&mgmt, "the gateway holds the new identity", |_, i| {
        i["storeId"] == new_id.as_str() && i["contentMatches"] == true
    })
    .await;
    assert_eq!(renewed["storeId"], new_id.as_str());
    assert!(version_is("9")(&gw.get("/echo/x").await));
}
