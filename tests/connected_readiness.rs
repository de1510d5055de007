//! End to end over real processes: what a connected gateway answers before it has
//! a configuration, and how it keeps long polling across management restarts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::managed::{ManagedGateway, ManagementProcess};
use common::*;

const PROBE: &str = "/status-0123456789abcdef";

/// A management plane with API `echo` (in front of `backend`) and gateway `gw-1`
/// serving it; returns the gateway token.
async fn seeded(mgmt: &ManagementProcess, backend: &Backend) -> String {
    let api = api("echo", "echo", &format!("http://{}", backend.addr));
    mgmt.ok("PUT", "/apis/echo", Some(&api.to_string()), 201)
        .await;
    mgmt.gateway_with_token("gw-1", &["echo"]).await
}

/// How many log lines contain `needle`.
fn count(gw: &ManagedGateway, needle: &str) -> usize {
    gw.log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

#[runtimes]
async fn the_probe_path_follows_readiness(rt: Runtime) {
    let backend = Backend::echo().await;
    let data = tempfile::tempdir().unwrap();
    let mut mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let token = seeded(&mgmt, &backend).await;
    mgmt.kill().await;

    // Management plane unreachable, no backup: nothing to serve, and the load
    // balancer's probe says so as `/readyz` does.
    let gw = ManagedGateway::start(rt, &mgmt.url, &token, &[]).await;
    for _ in 0..5 {
        assert_eq!(gw.readyz().await, 503, "log: {}", gw.log_text());
        assert_eq!(gw.get(PROBE).await.status, 503);
        assert_eq!(gw.get("/echo/x").await.status, 503);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Why callers get 503 is logged, once for these fifteen answers.
    assert_eq!(
        count(&gw, "answering 503: no configuration"),
        1,
        "log: {}",
        gw.log_text()
    );

    let _back = ManagementProcess::start(mgmt.addr, data.path(), &[]).await;
    gw.ready().await;
    let r = gw.get(PROBE).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(gw.get("/echo/x").await.status, 200);
}

/// An outbound policy that stamps responses with `X-Version: {version}`.
fn versioned_policy(version: u32) -> String {
    format!(
        "<policies>\n  <inbound><base /></inbound>\n  <backend><base /></backend>\n  <outbound>\n    <base />\n    <set-header name=\"X-Version\" exists-action=\"override\"><value>{version}</value></set-header>\n  </outbound>\n  <on-error><base /></on-error>\n</policies>"
    )
}

/// Puts the API's policy with `X-Version: {version}`, expecting `status`.
async fn put_policy(mgmt: &ManagementProcess, version: u32, status: u16) {
    let r = mgmt
        .call("PUT", "/apis/echo/policy", Some(&versioned_policy(version)))
        .await;
    assert_eq!(r.status, status, "{}", r.body_str());
}

fn version_is(v: &'static str) -> impl Fn(&Response) -> bool {
    move |r| r.status == 200 && r.header("x-version").as_deref() == Some(v)
}

#[runtimes]
async fn long_polling_survives_a_graceful_management_restart(rt: Runtime) {
    let backend = Backend::echo().await;
    let data = tempfile::tempdir().unwrap();
    let mut mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let token = seeded(&mgmt, &backend).await;
    put_policy(&mgmt, 1, 201).await;
    // Plain polls a minute apart: a change that arrives within the tests' 30 s
    // deadline came by long poll.
    let gw = ManagedGateway::start(rt, &mgmt.url, &token, &["--poll-interval", "60"]).await;
    gw.ready().await;
    gw.wait_for("/echo/x", "serves revision with version 1", version_is("1"))
        .await;
    // The gateway is in a long poll now (it starts one right after each answer).
    tokio::time::sleep(Duration::from_millis(300)).await;

    mgmt.terminate().await;
    let back = ManagementProcess::start(mgmt.addr, data.path(), &[]).await;
    within("the gateway reconnects", async {
        while count(&gw, "connectivity to the management plane restored") == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Reconnected with a plain fetch; the change made now only arrives in time
    // through the long poll that follows it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    put_policy(&back, 2, 200).await;
    gw.wait_for(
        "/echo/x",
        "the change arrives by long poll",
        version_is("2"),
    )
    .await;
    assert_eq!(
        count(&gw, "polling instead"),
        0,
        "long polling was given up: {}",
        gw.log_text()
    );
    // The long poll was ended cleanly by the shutdown, not cut.
    assert!(gw.log_text().contains("shutting down"), "{}", gw.log_text());
}
