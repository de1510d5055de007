//! What limits do when the shared Redis fails, on real processes and both
//! runtimes: killed (connections refused) or frozen (SIGSTOP: connections
//! open, nothing answered, so only the store timeout ends the wait). Failing
//! open lets requests through, logs and counts the errors; failing closed
//! answers 503 with `Retry-After: 1`; no request hangs; Redis back on the same
//! port brings the limits back without restarting the gateways. And the
//! counts outlive a gateway's restart, because they live in Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::policy_docs::{cfg, inbound, papi};
use common::redis::RedisServer;
use common::store::{get_at, metric_sum, retry_after, wait_keys, wait_metric_at_least};
use common::*;
use serde_json::Value;

/// API `limited` at `/api` (rate-limit-by-key, `calls` per minute, per
/// `X-Client`) and `free` at `/free` (no limits), both in front of `backend`.
fn doc(backend: &Backend, calls: u32) -> Value {
    let policy = inbound(&format!(
        r#"<rate-limit-by-key calls="{calls}" renewal-period="60"
              counter-key="@(context.Request.Headers.GetValueOrDefault(&quot;X-Client&quot;, &quot;anonymous&quot;))"
              remaining-calls-header-name="X-Remaining" />"#
    ));
    cfg(vec![
        papi("limited", "api", backend.addr, &policy),
        papi("free", "free", backend.addr, ""),
    ])
}

const ALICE: [(&str, &str); 1] = [("X-Client", "alice")];

/// Whether the gateway logged a warning or error about its store.
fn warned_about_store(log: &str) -> bool {
    log.lines().any(|l| {
        let Ok(v) = serde_json::from_str::<Value>(l) else {
            return false;
        };
        let level = v["level"].as_str().unwrap_or_default();
        let text = l.to_ascii_lowercase();
        matches!(level, "WARN" | "ERROR") && (text.contains("store") || text.contains("redis"))
    })
}

/// Sends alice's GETs to `gw` until one is refused with `status` (the
/// gateway reconnects to a restarted Redis on its own time); returns how many
/// passed meanwhile.
async fn until_refused(gw: &GatewayProcess, status: u16) -> usize {
    let mut passed = 0;
    within(&format!("the limit answers {status} again"), async {
        loop {
            let r = get_at(gw.addr, "/api/again", &ALICE).await;
            if r.status == status {
                return;
            }
            assert_eq!(r.status, 200, "{r:?}");
            passed += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    passed
}

#[runtimes]
async fn redis_killed_fails_open_and_limits_return_when_it_restarts(rt: Runtime) {
    let mut redis = RedisServer::start();
    let backend = Backend::echo().await;
    let gw = GatewayProcess::start(
        rt,
        &doc(&backend, 2),
        &["--store", &redis.url(), "--store-timeout-ms", "300"],
    )
    .await;

    for want in ["1", "0"] {
        let r = get_at(gw.addr, "/api/x", &ALICE).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("x-remaining").as_deref(), Some(want), "{r:?}");
    }
    assert_eq!(get_at(gw.addr, "/api/x", &ALICE).await.status, 429);

    redis.stop();
    // Fail open: the calls pass, as if within the limit.
    for i in 0..5 {
        let r = get_at(gw.addr, &format!("/api/down/{i}"), &ALICE).await;
        assert_eq!(r.status, 200, "fail open, call {i}: {r:?}");
        assert_eq!(
            r.header("x-remaining").as_deref(),
            Some("2"),
            "an open failure reports the configured calls: {r:?}"
        );
    }
    assert_eq!(backend.requests().len(), 7);
    wait_metric_at_least(gw.ops_addr, "portcullis_store_errors_total", 1.0).await;
    within("a warning about the store in the log", async {
        while !warned_about_store(&gw.log_text()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // Back on the same port (empty): the gateway finds it again by itself.
    redis.restart();
    let passed = until_refused(&gw, 429).await;
    eprintln!("{rt:?}: {passed} calls passed between Redis's restart and the first 429 (limit 2)");
    assert!(passed >= 2, "the restarted Redis starts counting from zero");
    assert_eq!(get_at(gw.addr, "/api/x", &ALICE).await.status, 429);
    assert!(!redis.keys().is_empty(), "the counter is in Redis again");
}

#[runtimes]
async fn a_frozen_redis_is_bounded_by_the_store_timeout(rt: Runtime) {
    let redis = RedisServer::start();
    let backend = Backend::echo().await;
    let gw = GatewayProcess::start(
        rt,
        &doc(&backend, 3),
        &["--store", &redis.url(), "--store-timeout-ms", "300"],
    )
    .await;
    let r = get_at(gw.addr, "/api/x", &ALICE).await;
    assert_eq!(r.header("x-remaining").as_deref(), Some("2"), "{r:?}");

    // Frozen: the store calls get no answer. Each request ends when the store
    // timeout does (the harness fails it after 30 s: no request hangs) and
    // passes, failing open.
    redis.pause();
    for i in 0..3 {
        let r = get_at(gw.addr, &format!("/api/frozen/{i}"), &ALICE).await;
        assert_eq!(r.status, 200, "fail open, call {i}: {r:?}");
    }
    let timeouts = wait_metric_at_least(
        gw.ops_addr,
        r#"portcullis_store_errors_total{reason="timeout"}"#,
        1.0,
    )
    .await;
    assert!(timeouts >= 1.0);
    // Requests without limits do not touch the store.
    assert_eq!(get_at(gw.addr, "/free/x", &[]).await.status, 200);

    // Thawed, it answers again (late answers to abandoned calls included):
    // the limit refuses once the count is reached.
    redis.resume();
    until_refused(&gw, 429).await;
    assert_eq!(get_at(gw.addr, "/api/x", &ALICE).await.status, 429);
}

#[runtimes]
async fn fail_closed_answers_503_with_retry_after(rt: Runtime) {
    let mut redis = RedisServer::start();
    let backend = Backend::echo().await;
    let gw = GatewayProcess::start(
        rt,
        &doc(&backend, 100),
        &[
            "--store",
            &redis.url(),
            "--store-on-failure",
            "closed",
            "--store-timeout-ms",
            "300",
        ],
    )
    .await;
    assert_eq!(get_at(gw.addr, "/api/x", &ALICE).await.status, 200);
    assert_eq!(backend.requests().len(), 1);

    let assert_refused = |r: &Response, why: &str| {
        assert_eq!(r.status, 503, "{why}: {r:?} {}", r.body_str());
        assert_eq!(retry_after(r), 1, "{why}: {r:?}");
    };

    // Killed: refused at once.
    redis.stop();
    for i in 0..3 {
        let r = get_at(gw.addr, &format!("/api/down/{i}"), &ALICE).await;
        assert_refused(&r, "Redis killed");
    }
    assert_eq!(backend.requests().len(), 1, "refused calls never left");
    // An API without limits is not affected.
    assert_eq!(get_at(gw.addr, "/free/x", &[]).await.status, 200);
    wait_metric_at_least(gw.ops_addr, "portcullis_store_errors_total", 1.0).await;

    // Back: admitted again.
    redis.restart();
    until_ok(&gw).await;

    // Frozen: refused when the timeout ends the wait.
    redis.pause();
    let before = backend.requests().len();
    for i in 0..2 {
        let r = get_at(gw.addr, &format!("/api/frozen/{i}"), &ALICE).await;
        assert_refused(&r, "Redis frozen");
    }
    assert_eq!(backend.requests().len(), before);
    wait_metric_at_least(
        gw.ops_addr,
        r#"portcullis_store_errors_total{reason="timeout"}"#,
        1.0,
    )
    .await;
    redis.resume();
    until_ok(&gw).await;
}

/// Sends alice's GETs until one passes (the store answers again).
async fn until_ok(gw: &GatewayProcess) {
    within("admitted again once Redis answers", async {
        loop {
            let r = get_at(gw.addr, "/api/back", &ALICE).await;
            match r.status {
                200 => return,
                503 => tokio::time::sleep(Duration::from_millis(50)).await,
                other => panic!("status {other}: {r:?}"),
            }
        }
    })
    .await;
}

#[runtimes]
async fn counts_outlive_a_gateway_restart(rt: Runtime) {
    let password = "e2e-Secret-pw";
    let redis = RedisServer::start_with_password(password);
    let backend = Backend::echo().await;
    let prefix = "e2e:restart:";
    let url = redis.url();
    let args = [
        "--store",
        url.as_str(),
        "--store-timeout-ms",
        "5000",
        "--store-key-prefix",
        prefix,
    ];
    let mut gw = GatewayProcess::start(rt, &doc(&backend, 5), &args).await;
    for want in ["4", "3", "2"] {
        let r = get_at(gw.addr, "/api/x", &ALICE).await;
        assert_eq!(r.header("x-remaining").as_deref(), Some(want), "{r:?}");
    }
    let keys = wait_keys(&redis, "the counter", |k| !k.is_empty()).await;
    assert!(keys.iter().all(|k| k.starts_with(prefix)), "{keys:?}");
    let first_log = gw.log_text();

    wait_sigterm_handler(gw.pid()).await;
    gw.signal("TERM");
    assert!(gw.wait_exit().await.success());
    drop(gw);

    let gw = GatewayProcess::start(rt, &doc(&backend, 5), &args).await;
    for want in ["1", "0"] {
        let r = get_at(gw.addr, "/api/x", &ALICE).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.header("x-remaining").as_deref(),
            Some(want),
            "the count went on from where it was: {r:?}"
        );
    }
    let r = get_at(gw.addr, "/api/x", &ALICE).await;
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(backend.requests().len(), 5);
    assert_eq!(
        metric_sum(gw.ops_addr, "portcullis_store_errors_total").await,
        0.0
    );
    for log in [first_log, gw.log_text()] {
        assert!(!log.contains(password), "the password is in the log: {log}");
    }
}
