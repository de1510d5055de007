//! End to end: the management data directory is owner-only, and a loosened one
//! is warned about at start.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::managed::ManagementProcess;
use common::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every directory and file under `dir`, with its mode.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    let mut found = vec![(dir.display().to_string(), mode(dir))];
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(modes(&path));
        } else {
            found.push((path.display().to_string(), mode(&path)));
        }
    }
    found
}

#[tokio::test]
async fn the_data_directory_is_owner_only_and_loosening_is_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut mgmt = ManagementProcess::start(any_port(), &data, &["--self-signed"]).await;
    // Writes reach the database (and its WAL) before the modes are looked at.
    let mut plain = ManagementProcess::start(any_port(), &tmp.path().join("plain"), &[]).await;
    plain
        .ok(
            "PUT",
            "/named-values/secret",
            Some(r#"{"value": "s3cret", "secret": true}"#),
            201,
        )
        .await;

    for dir in [&data, &tmp.path().join("plain")] {
        let found = modes(dir);
        for name in ["portcullis.db", "analytics.db"] {
            assert!(found.iter().any(|(p, _)| p.ends_with(name)), "{found:?}");
        }
        for (path, mode) in &found {
            let want = if Path::new(path).is_dir() {
                0o700
            } else {
                0o600
            };
            assert_eq!(*mode, want, "{path}: {mode:o}");
        }
    }
    let found = modes(&data);
    for name in ["tls", "ca.pem", "ca-key.pem"] {
        assert!(found.iter().any(|(p, _)| p.ends_with(name)), "{found:?}");
    }
    assert!(!mgmt
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("readable by others")));
    plain.terminate().await;

    // Loosened: the next start says what, how loose, and how to fix it, and starts.
    mgmt.terminate().await;
    let db = data.join("portcullis.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let again = ManagementProcess::start(any_port(), &data, &["--self-signed"]).await;
    let log = again.log.lock().unwrap().join("\n");
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("readable by others"))
        .collect();
    assert_eq!(warnings.len(), 2, "{log}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&format!("chmod 600 {}", db.display()))
                && w.contains("\"mode\":\"644\"")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&format!("chmod 700 {}", data.display()))
                && w.contains("\"mode\":\"755\"")),
        "{warnings:?}"
    );
    // Left as the operator set them.
    assert_eq!(mode(&db), 0o644);
}
