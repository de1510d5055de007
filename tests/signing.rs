//! End to end: the management plane signs every configuration snapshot with its
//! Ed25519 key, publishes the public key, and keeps the key across restarts.
//! A gateway given the key refuses snapshots not signed with it; a gateway
//! without one pins the key on first use and then does the same.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::managed::{http_call, ManagementProcess};
use common::*;
use portcullis_core::sync::signature::PublicKey;

fn printed(mgmt: &ManagementProcess, name: &str) -> String {
    let prefix = format!("{name}=");
    mgmt.log
        .lock()
        .unwrap()
        .iter()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("{name} not printed"))
}

#[tokio::test]
async fn snapshots_are_signed_with_the_published_key() {
    let data = tempfile::tempdir().unwrap();
    let mut mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let key = PublicKey::from_base64(&printed(&mgmt, "MANAGEMENT_SIGNING_KEY")).unwrap();
    assert_eq!(
        printed(&mgmt, "MANAGEMENT_SIGNING_KEY_FINGERPRINT"),
        key.fingerprint()
    );
    // Published, without credentials.
    let published = http_call(mgmt.addr, "GET", "/signing-key", &[], "").await;
    assert_eq!(published.status, 200, "{}", published.body_str());
    let published = published.json();
    assert_eq!(published["publicKey"], key.to_base64());
    assert_eq!(published["fingerprint"], key.fingerprint());
    assert_eq!(published["algorithm"], "Ed25519");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.path().join("signing-key.pk8"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The snapshot verifies; a changed byte does not.
    let token = mgmt.gateway_with_token("gw-1", &[]).await;
    let config = http_call(
        mgmt.addr,
        "GET",
        "/gateways/gw-1/configuration",
        &[("Authorization", &token)],
        "",
    )
    .await;
    assert_eq!(config.status, 200, "{}", config.body_str());
    let signature = config.header("portcullis-signature").expect("signed");
    assert_eq!(key.verify(&config.body, Some(&signature)), Ok(()));
    // The key travels beside the signature, for trust on first use.
    assert_eq!(
        config.header("portcullis-signing-key").as_deref(),
        Some(key.to_base64().as_str())
    );
    let mut flipped = config.body.to_vec();
    flipped[2] ^= 1;
    assert!(key.verify(&flipped, Some(&signature)).is_err());

    // The same key after a restart.
    let addr = mgmt.addr;
    mgmt.kill().await;
    let mgmt = ManagementProcess::start(addr, data.path(), &[]).await;
    assert_eq!(printed(&mgmt, "MANAGEMENT_SIGNING_KEY"), key.to_base64());
}

/// An outbound policy that stamps responses with `X-Version: {version}`.
fn versioned_policy(version: u32) -> String {
    format!(
        "<policies>\n  <inbound><base /></inbound>\n  <backend><base /></backend>\n  <outbound>\n    <base />\n    <set-header name=\"X-Version\" exists-action=\"override\"><value>{version}</value></set-header>\n  </outbound>\n  <on-error><base /></on-error>\n</policies>"
    )
}

fn version_is(v: &'static str) -> impl Fn(&Response) -> bool {
    move |r| r.status == 200 && r.header("x-version").as_deref() == Some(v)
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[runtimes]
async fn a_snapshot_signed_with_another_key_is_refused(rt: Runtime) {
    another_plane_is_refused(rt, true).await;
}

#[runtimes]
async fn without_a_key_the_first_planes_key_is_pinned_and_another_refused(rt: Runtime) {
    another_plane_is_refused(rt, false).await;
}

/// A gateway that trusts the first plane's key (`configured`: given with
/// `--management-public-key`; else pinned on first use) refuses a second plane
/// at the same URL with another key, and keeps serving what it had.
async fn another_plane_is_refused(rt: Runtime, configured: bool) {
    use common::managed::ManagedGateway;
    use std::time::Duration;

    let backend = Backend::echo().await;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut mgmt = ManagementProcess::start(any_port(), &data, &[]).await;
    let api = api("echo", "echo", &format!("http://{}", backend.addr));
    mgmt.ok("PUT", "/apis/echo", Some(&api.to_string()), 201)
        .await;
    let put = |mgmt: &ManagementProcess, v: u32| {
        let xml = versioned_policy(v);
        let addr = mgmt.addr;
        async move {
            let r = common::managed::admin_call(addr, "PUT", "/apis/echo/policy", Some(&xml), &[])
                .await;
            assert!(r.status == 200 || r.status == 201, "{}", r.body_str());
        }
    };
    put(&mgmt, 1).await;
    let token = mgmt.gateway_with_token("gw-1", &["echo"]).await;
    let key = printed(&mgmt, "MANAGEMENT_SIGNING_KEY");
    let mut gw_args = vec!["--heartbeat-interval", "1"];
    if configured {
        gw_args.extend(["--management-public-key", key.as_str()]);
    }
    let gw = ManagedGateway::start(rt, &mgmt.url, &token, &gw_args).await;
    gw.ready().await;
    let fingerprint = PublicKey::from_base64(&key).unwrap().fingerprint();
    let first_use = format!("trusting the management signing key {fingerprint} on first use");
    if configured {
        assert!(!gw.log_text().contains("on first use"), "{}", gw.log_text());
    } else {
        within("the gateway logs the key it pins", async {
            while !gw.log_text().contains(&first_use) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
    assert!(version_is("1")(&gw.get("/echo/x").await));
    put(&mgmt, 2).await;
    gw.wait_for("/echo/x", "a signed change is applied", version_is("2"))
        .await;

    // Another plane at the same URL, with the same store but another signing key.
    let addr = mgmt.addr;
    mgmt.kill().await;
    let other = root.path().join("other");
    copy_dir(&data, &other);
    std::fs::remove_file(other.join("signing-key.pk8")).unwrap();
    let impostor = ManagementProcess::start(addr, &other, &[]).await;
    assert_ne!(printed(&impostor, "MANAGEMENT_SIGNING_KEY"), key);
    put(&impostor, 3).await;
    within("the gateway logs the refusal", async {
        let refusal = format!("does not verify under management key {fingerprint}");
        while !gw.log_text().contains(&refusal) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // The configuration in force stays, and the heartbeat says why.
    for _ in 0..10 {
        assert!(version_is("2")(&gw.get("/echo/x").await));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    within("the heartbeat reports the refused snapshot", async {
        loop {
            let status = impostor.ok("GET", "/gateways/gw-1/status", None, 200).await;
            let errors = status["instances"][0]["compileErrors"].to_string();
            if errors.contains("signature") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// Runs `portcullis management --data <data> <flag>`; its success and stdout.
fn management_cmd(data: &std::path::Path, flag: &str) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("management")
        .arg("--data")
        .arg(data)
        .arg(flag)
        .env_clear()
        .envs(clean_env())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn line_value(text: &str, name: &str) -> String {
    let prefix = format!("{name}=");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("{name} not printed: {text}"))
}

#[runtimes]
async fn a_rotation_signs_with_both_keys_and_a_pinned_gateway_follows(rt: Runtime) {
    use common::managed::ManagedGateway;
    use std::time::Duration;

    let backend = Backend::echo().await;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut mgmt = ManagementProcess::start(any_port(), &data, &[]).await;
    let api = api("echo", "echo", &format!("http://{}", backend.addr));
    mgmt.ok("PUT", "/apis/echo", Some(&api.to_string()), 201)
        .await;
    let put = |addr, v: u32| {
        let xml = versioned_policy(v);
        async move {
            let r = common::managed::admin_call(addr, "PUT", "/apis/echo/policy", Some(&xml), &[])
                .await;
            assert!(r.status == 200 || r.status == 201, "{}", r.body_str());
        }
    };
    put(mgmt.addr, 1).await;
    let token = mgmt.gateway_with_token("gw-1", &["echo"]).await;
    let old = PublicKey::from_base64(&printed(&mgmt, "MANAGEMENT_SIGNING_KEY")).unwrap();
    // Pinned on first use.
    let gw = ManagedGateway::start(rt, &mgmt.url, &token, &["--heartbeat-interval", "1"]).await;
    gw.ready().await;
    assert!(version_is("1")(&gw.get("/echo/x").await));

    // Refused while the plane holds the directory.
    let (ok, text) = management_cmd(&data, "--rotate-signing-key");
    assert!(!ok, "{text}");
    let addr = mgmt.addr;
    mgmt.kill().await;
    let (ok, text) = management_cmd(&data, "--rotate-signing-key");
    assert!(ok, "{text}");
    let new = PublicKey::from_base64(&line_value(&text, "MANAGEMENT_SIGNING_KEY")).unwrap();
    assert_eq!(
        line_value(&text, "PREVIOUS_SIGNING_KEY_FINGERPRINT"),
        old.fingerprint()
    );
    assert_ne!(new, old);

    // The overlap: both signatures, both keys published.
    let mut mgmt = ManagementProcess::start(addr, &data, &[]).await;
    let config = http_call(
        addr,
        "GET",
        "/gateways/gw-1/configuration",
        &[("Authorization", &token)],
        "",
    )
    .await;
    let signature = config.header("portcullis-signature").expect("signed");
    assert_eq!(signature.matches("ed25519=").count(), 2, "{signature}");
    assert_eq!(new.verify(&config.body, Some(&signature)), Ok(()));
    assert_eq!(old.verify(&config.body, Some(&signature)), Ok(()));
    let published = http_call(addr, "GET", "/signing-key", &[], "").await.json();
    assert_eq!(published["fingerprint"], new.fingerprint());
    assert_eq!(published["previous"]["fingerprint"], old.fingerprint());
    // The pinned gateway follows the old key's endorsement of the new one.
    put(addr, 2).await;
    gw.wait_for(
        "/echo/x",
        "the overlap's snapshot is applied",
        version_is("2"),
    )
    .await;
    let moved = format!("trusting the management signing key {}", new.fingerprint());
    within("the gateway logs the new pin", async {
        while !gw.log_text().contains(&moved) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // The overlap ends: the new key alone, still applied.
    mgmt.kill().await;
    let (ok, text) = management_cmd(&data, "--end-signing-key-overlap");
    assert!(ok, "{text}");
    assert_eq!(
        line_value(&text, "REMOVED_SIGNING_KEY_FINGERPRINT"),
        old.fingerprint()
    );
    let (ok, text) = management_cmd(&data, "--end-signing-key-overlap");
    assert!(!ok && text.contains("no signing key rotation"), "{text}");
    let mgmt = ManagementProcess::start(addr, &data, &[]).await;
    let published = http_call(addr, "GET", "/signing-key", &[], "").await.json();
    assert!(published.get("previous").is_none(), "{published}");
    put(mgmt.addr, 3).await;
    gw.wait_for(
        "/echo/x",
        "the new key's snapshot is applied",
        version_is("3"),
    )
    .await;
}

#[runtimes]
async fn the_pin_survives_a_restart_through_the_backup(rt: Runtime) {
    use common::managed::ManagedGateway;
    use std::time::Duration;
    const BACKUP_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    let backend = Backend::echo().await;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let backups = root.path().join("backups");
    let backup_dir = backups.display().to_string();
    let gw_args = [
        "--backup-dir",
        backup_dir.as_str(),
        "--backup-key",
        BACKUP_KEY,
        "--heartbeat-interval",
        "1",
    ];
    let mut mgmt = ManagementProcess::start(any_port(), &data, &[]).await;
    let api = api("echo", "echo", &format!("http://{}", backend.addr));
    mgmt.ok("PUT", "/apis/echo", Some(&api.to_string()), 201)
        .await;
    let xml = versioned_policy(1);
    let r =
        common::managed::admin_call(mgmt.addr, "PUT", "/apis/echo/policy", Some(&xml), &[]).await;
    assert!(r.status == 200 || r.status == 201, "{}", r.body_str());
    let token = mgmt.gateway_with_token("gw-1", &["echo"]).await;
    let key = PublicKey::from_base64(&printed(&mgmt, "MANAGEMENT_SIGNING_KEY")).unwrap();
    let mut gw = ManagedGateway::start(rt, &mgmt.url, &token, &gw_args).await;
    gw.ready().await;
    let file = backups.join("config.backup");
    within("the gateway writes its backup", async {
        while !file.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    gw.kill().await;

    // Another plane at the same URL; the gateway restarts from its backup.
    let addr = mgmt.addr;
    mgmt.kill().await;
    let other = root.path().join("other");
    copy_dir(&data, &other);
    std::fs::remove_file(other.join("signing-key.pk8")).unwrap();
    let impostor = ManagementProcess::start(addr, &other, &[]).await;
    let xml = versioned_policy(2);
    let r = common::managed::admin_call(addr, "PUT", "/apis/echo/policy", Some(&xml), &[]).await;
    assert!(r.status == 200 || r.status == 201, "{}", r.body_str());
    let gw = ManagedGateway::start(rt, &impostor.url, &token, &gw_args).await;
    gw.ready().await;
    let refusal = format!("does not verify under management key {}", key.fingerprint());
    within("the restarted gateway refuses the other plane", async {
        while !gw.log_text().contains(&refusal) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let log = gw.log_text();
    assert!(
        log.contains(&format!(
            "trusting the management signing key {}, pinned in the configuration backup",
            key.fingerprint()
        )),
        "{log}"
    );
    assert!(!log.contains("on first use"), "{log}");
    for _ in 0..10 {
        assert!(version_is("1")(&gw.get("/echo/x").await));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(gw);

    // A gateway told to trust the other plane's key refuses the backup.
    let other_key = printed(&impostor, "MANAGEMENT_SIGNING_KEY");
    let mut args = gw_args.to_vec();
    args.extend(["--management-public-key", other_key.as_str()]);
    let gw = ManagedGateway::start(rt, &impostor.url, &token, &args).await;
    within("the backup is refused naming both keys", async {
        loop {
            let log = gw.log_text();
            if log.contains("remove the backup file") && log.contains(&key.fingerprint()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
