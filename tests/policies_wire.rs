//! APIM policies end to end, policies and the wire over real sockets: large
//! bodies streamed past policies, reloads from the watched file (keep-alive,
//! pipelining and framing under policies are tested in memory, in
//! `decisions_policy_wire`; what policies decide from the backend's answers in
//! `decisions_backend`): a real gateway (in-process, loopback
//! sockets) in front of recording test backends, configured with policy
//! documents at the global, product, API and operation scopes. Each test checks
//! what the client sees (status, headers, body) and what the backends received.
//!
//! Nothing here depends on timing: rate limits and quotas use periods of a minute
//! or more, slow backends are held by gates the test opens, and every wait has the
//! generous hang guard of `common::within`. The suite's shared helpers are in
//! `common::policy_docs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::policy_docs::*;
use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Policies and the wire: keep-alive, framing, reloads
// ---------------------------------------------------------------------------

#[runtimes]
async fn large_bodies_stream_past_header_only_policies(rt: Runtime) {
    let block = base_block(64 * 1024);
    let body: Vec<u8> = block
        .iter()
        .cycle()
        .take(3 * 1024 * 1024 + 7)
        .copied()
        .collect();
    let expected = body.clone();
    let backend = Backend::start(move |r| {
        if r.method() == "GET" {
            let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for piece in body.chunks(100_000) {
                out.extend_from_slice(&chunked(&[piece])[..]);
                // chunked() ends each call with the last chunk: drop it but for the end.
                out.truncate(out.len() - 5);
            }
            out.extend_from_slice(b"0\r\n\r\n");
            Reply::Send(out)
        } else {
            Reply::Send(ok("text/plain", format!("{}", r.body.len()).as_bytes()))
        }
    })
    .await;
    let policy = policies(
        &mark("in"),
        "",
        r#"<set-header name="X-Out" exists-action="override"><value>@(context.Response.StatusCode.ToString())</value></set-header>"#,
        "",
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let mut c = gw.client().await;
    let r = c.roundtrip(get("/api/big")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-out").as_deref(), Some("200"));
    assert_eq!(r.body.len(), expected.len());
    assert!(r.body == expected, "streamed body differs");

    let upload = base_block(2 * 1024 * 1024);
    let r = c.roundtrip(post("/api/up", &upload)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), upload.len().to_string());
    let got = &backend.requests()[1];
    assert!(got.body == upload, "uploaded body differs");
    assert_eq!(values(got.headers("x-order")), ["in"]);
    gw.stop().await;
}

#[runtimes]
async fn reload_puts_new_policies_in_force_and_keeps_them_on_a_bad_one(rt: Runtime) {
    let backend = Backend::echo().await;
    let doc_with = |revision: u64, policy: &str| {
        let mut d = config(revision, vec![papi("a", "api", backend.addr, policy)]);
        // Sizes differ per revision so the watcher cannot miss a change.
        d["apis"][0]["description"] = json!("r".repeat(revision as usize));
        serde_json::to_vec_pretty(&d).unwrap()
    };
    let v = |value: &str| {
        inbound(&format!(
            r#"<set-header name="X-Version" exists-action="override"><value>{value}</value></set-header>"#
        ))
    };
    let doc: Value = serde_json::from_slice(&doc_with(1, &v("one"))).unwrap();
    let gw =
        TestGateway::start_with(rt, &doc, |o| o.reload_interval = Duration::from_millis(50)).await;
    let version = |gw: &TestGateway| {
        let gw_addr = gw.addr;
        async move {
            let mut c = Client::connect(gw_addr).await;
            c.roundtrip(get("/api/v")).await;
        }
    };
    version(&gw).await;
    assert_eq!(
        backend.requests()[0].header("x-version").as_deref(),
        Some("one")
    );

    // A bad policy is rejected: revision 1 stays.
    write_atomically(
        &gw.config_path,
        &doc_with(2, "<policies><inbound><nope /></inbound></policies>"),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gw.gateway.revision(), Some(1));
    version(&gw).await;
    assert_eq!(
        backend
            .requests()
            .last()
            .unwrap()
            .header("x-version")
            .as_deref(),
        Some("one")
    );

    // A good one is put in force.
    write_atomically(&gw.config_path, &doc_with(3, &v("three")));
    within("revision 3 is in force", async {
        while gw.gateway.revision() != Some(3) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    version(&gw).await;
    assert_eq!(
        backend
            .requests()
            .last()
            .unwrap()
            .header("x-version")
            .as_deref(),
        Some("three")
    );
    gw.stop().await;
}
