//! End to end over real processes: what a connected gateway answers before it has
//! a configuration, and how it keeps long polling across management restarts.

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
