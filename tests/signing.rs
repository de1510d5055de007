//! End to end: the management plane signs every configuration snapshot with its
//! Ed25519 key, publishes the public key, and keeps the key across restarts.
//! (Gateways do not check signatures yet.)

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
    let mut flipped = config.body.to_vec();
    flipped[2] ^= 1;
    assert!(key.verify(&flipped, Some(&signature)).is_err());

    // The same key after a restart.
    let addr = mgmt.addr;
    mgmt.kill().await;
    let mgmt = ManagementProcess::start(addr, data.path(), &[]).await;
    assert_eq!(printed(&mgmt, "MANAGEMENT_SIGNING_KEY"), key.to_base64());
}
