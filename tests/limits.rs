//! The client deadlines on real sockets and real time, on both runtimes: a head
//! that never completes gets 408, an idle keep-alive connection is closed (the
//! driver's timer fires). The size limits and the other deadline decisions are
//! tested in memory, in `decisions_limits`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

#[runtimes]
async fn head_that_never_completes_gets_408(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::start_with(rt, &config_for(backend.addr), |o| {
        o.timeouts.header_read = Duration::from_secs(1);
    })
    .await;
    let mut c = gw.client().await;
    c.send(b"GET /api/x HTTP/1.1\r\nHost: gatew").await;
    let r = c.response().await;
    assert_eq!(r.status, 408, "{r:?}");
    c.expect_closed().await;
    drop(c);
    gw.stop().await;
    assert_eq!(backend.connections(), 0);
}

#[runtimes]
async fn idle_keep_alive_connection_is_closed(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::start_with(rt, &config_for(backend.addr), |o| {
        o.timeouts.idle = Duration::from_secs(1);
    })
    .await;
    let mut c = gw.client().await;
    assert_eq!(c.roundtrip(get("/api/x")).await.status, 200);
    let (how, extra) = c.read_to_end().await;
    assert_eq!(how, Closed::Eof);
    assert!(extra.is_empty(), "{:?}", String::from_utf8_lossy(&extra));
    gw.stop().await;
}
