//! End to end over real processes: a gateway started with a 24-second token
//! renews it on its own through `POST /gateways/{id}/token/renew`, keeps syncing
//! past the old token's expiry, shows the token on `/metrics` and in the
//! management status, and starts again from the renewed token it kept next to
//! its backup once the operator's token has expired.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::managed::{ManagedGateway, ManagementProcess};
use common::*;

const BACKUP_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// The first token's lifetime: renewed after about two thirds of it (16 s).
const LIFETIME_SECS: u64 = 24;

fn versioned_policy(version: u32) -> String {
    format!(
        "<policies>\n  <inbound><base /></inbound>\n  <backend><base /></backend>\n  <outbound>\n    <base />\n    <set-header name=\"X-Version\" exists-action=\"override\"><value>{version}</value></set-header>\n  </outbound>\n  <on-error><base /></on-error>\n</policies>"
    )
}

fn version_is(v: &'static str) -> impl Fn(&Response) -> bool {
    move |r| r.status == 200 && r.header("x-version").as_deref() == Some(v)
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// `unix` as RFC 3339 (UTC), for the token's `expiry`.
fn rfc3339(unix: u64) -> String {
    // Howard Hinnant's civil-from-days.
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

async fn put_policy(mgmt: &ManagementProcess, version: u32) {
    let r = mgmt
        .call("PUT", "/apis/echo/policy", Some(&versioned_policy(version)))
        .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.body_str());
}

/// The value of the unlabelled sample `name` in the gateway's `/metrics`.
async fn metric(gw: &ManagedGateway, name: &str) -> Option<u64> {
    let r = fetch(gw.ops_addr, "/metrics").await;
    let text = r.body_str().to_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls `check` every 100 ms for up to `secs`.
async fn eventually<F, Fut>(what: &str, secs: u64, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if check().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn backup_args(dir: &Path) -> Vec<String> {
    vec![
        "--backup-dir".into(),
        dir.display().to_string(),
        "--backup-key".into(),
        BACKUP_KEY.into(),
        "--heartbeat-interval".into(),
        "1".into(),
    ]
}

#[runtimes]
async fn a_short_token_is_renewed_and_syncing_goes_on_past_its_expiry(rt: Runtime) {
    let backend = Backend::echo().await;
    let data = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let api = api("echo", "echo", &format!("http://{}", backend.addr));
    mgmt.ok("PUT", "/apis/echo", Some(&api.to_string()), 201)
        .await;
    put_policy(&mgmt, 1).await;
    mgmt.gateway_with_token("gw-1", &["echo"]).await;
    let expiry = now_unix() + LIFETIME_SECS;
    let body = format!(r#"{{"expiry": "{}"}}"#, rfc3339(expiry));
    let short = mgmt
        .ok("POST", "/gateways/gw-1/token", Some(&body), 200)
        .await["value"]
        .as_str()
        .expect("token")
        .to_owned();
    assert!(short.contains(&format!("&{expiry}&")), "{short}");

    let extra = backup_args(backup.path());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut gw = ManagedGateway::start(rt, &mgmt.url, &short, &extra).await;
    gw.ready().await;
    gw.wait_for("/echo/a", "policy 1 is served", version_is("1"))
        .await;
    assert_eq!(
        metric(&gw, "portcullis_gateway_token_expiry_seconds").await,
        Some(expiry)
    );

    // Renewed well before expiry, on its own.
    eventually("the token is renewed", LIFETIME_SECS, || async {
        metric(&gw, "portcullis_gateway_token_renewals_total").await == Some(1)
    })
    .await;
    assert!(
        now_unix() < expiry,
        "renewed only at {} (expiry {expiry})",
        now_unix()
    );
    let renewed_expiry = metric(&gw, "portcullis_gateway_token_expiry_seconds")
        .await
        .expect("expiry gauge");
    assert!(renewed_expiry > expiry + 29 * 24 * 3600, "{renewed_expiry}");
    // The renewed token is counted when it is in use; it is kept on disk just
    // after (a separate write), so wait for the file rather than race it.
    let kept = backup.path().join("token.backup");
    eventually("the renewed token is kept", 10, || {
        let kept = kept.clone();
        async move { kept.is_file() }
    })
    .await;

    // Past the old token's expiry, a change still reaches the gateway.
    let wait = expiry.saturating_sub(now_unix()) + 2;
    tokio::time::sleep(Duration::from_secs(wait)).await;
    put_policy(&mgmt, 2).await;
    gw.wait_for(
        "/echo/a",
        "policy 2 is served after the old token expired",
        version_is("2"),
    )
    .await;
    // Heartbeats (sent with the renewed token) carry its expiry.
    eventually("the status shows the renewed token", 10, || async {
        let status = mgmt.ok("GET", "/gateways/gw-1/status", None, 200).await;
        let instance = &status["instances"][0];
        instance["tokenExpiry"].as_u64() == Some(renewed_expiry)
            && instance["tokenExpired"] == false
            && instance["connectivity"] == "connected"
    })
    .await;
    let text = fetch(gw.ops_addr, "/metrics").await.body_str().to_owned();
    assert!(
        text.contains("portcullis_gateway_token_refusals_total{reason=\"expired\"} 0"),
        "{text}"
    );
    let log = gw.log_text();
    for line in [
        "the gateway token expires in under an hour",
        "the gateway token was renewed",
    ] {
        assert!(log.contains(line), "{line}: {log}");
    }
    gw.kill().await;

    // Restarted with the operator's token, long expired: it starts from the
    // renewed token kept next to the backup and keeps syncing.
    let mut again = ManagedGateway::start(rt, &mgmt.url, &short, &extra).await;
    again.ready().await;
    put_policy(&mgmt, 3).await;
    again
        .wait_for(
            "/echo/a",
            "policy 3 reaches the restarted gateway",
            version_is("3"),
        )
        .await;
    assert_eq!(
        metric(&again, "portcullis_gateway_token_expiry_seconds").await,
        Some(renewed_expiry)
    );
    assert!(
        again
            .log_text()
            .contains("renewed gateway token kept next to the backup"),
        "{}",
        again.log_text()
    );
    again.kill().await;
}
