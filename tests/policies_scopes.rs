//! APIM policies end to end, configuration errors at start (the scopes
//! themselves are tested in memory, in `decisions_scopes`): a real gateway (in-process, loopback
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

use common::policy_docs::*;
use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Configuration errors
// ---------------------------------------------------------------------------

/// Starts a gateway on `doc` and returns its start error.
async fn start_error(rt: Runtime, doc: &Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.json");
    write_atomically(&path, &serde_json::to_vec_pretty(doc).unwrap());
    let mut options = GatewayOptions::new(path);
    options.listen = any_port();
    options.ops_listen = None;
    match within("gateway start", Gateway::start(rt, options)).await {
        Ok(gw) => {
            gw.shutdown().await;
            panic!("a gateway started with an invalid policy");
        }
        // The message names the document, the line and the reason.
        Err(e) => e.to_string(),
    }
}

#[runtimes]
async fn bad_policy_is_rejected_at_start_with_line_and_reason(rt: Runtime) {
    let backend = closed_port().await;
    // Line 4: an unknown exists-action.
    let bad_attr = "<policies>\n  <inbound>\n    <base />\n    <set-header name=\"X\" exists-action=\"sometimes\"><value>1</value></set-header>\n  </inbound>\n</policies>";
    let e = start_error(rt, &cfg(vec![papi("a", "api", backend, bad_attr)])).await;
    assert!(e.contains("api `a`"), "{e}");
    assert!(e.contains("line 4"), "{e}");
    assert!(e.contains("<set-header>"), "{e}");
    assert!(e.contains("sometimes"), "{e}");

    // Line 3 of the global document: a policy that does not exist.
    let unknown =
        "<policies>\n  <inbound>\n    <teleport to=\"mars\" />\n  </inbound>\n</policies>";
    let mut doc = cfg(vec![papi("a", "api", backend, "")]);
    doc["policy"] = json!(unknown);
    let e = start_error(rt, &doc).await;
    assert!(e.contains("global"), "{e}");
    assert!(e.contains("line 3"), "{e}");
    assert!(e.contains("teleport"), "{e}");

    // A policy in a section where APIM does not allow it (operation scope).
    let mut a = papi("a", "api", backend, "");
    a["operations"] = json!([op(
        "o",
        "GET",
        "/",
        "<policies>\n<inbound />\n<outbound>\n<rate-limit calls=\"1\" renewal-period=\"60\" />\n</outbound>\n</policies>"
    )]);
    let e = start_error(rt, &cfg(vec![a])).await;
    assert!(e.contains("operation `o`"), "{e}");
    assert!(e.contains("line 4"), "{e}");
    assert!(e.contains("<rate-limit>"), "{e}");

    // Malformed XML and an expression that does not compile.
    let e = start_error(
        rt,
        &cfg(vec![papi(
            "a",
            "api",
            backend,
            "<policies>\n<inbound>\n</policies>",
        )]),
    )
    .await;
    assert!(e.contains("api `a`") && e.contains("line"), "{e}");
    let bad_expr = "<policies>\n<inbound>\n<set-header name=\"X\"><value>@(context.Nope(</value></set-header>\n</inbound>\n</policies>";
    let e = start_error(rt, &cfg(vec![papi("a", "api", backend, bad_expr)])).await;
    assert!(e.contains("line 3") && e.contains("<value>"), "{e}");

    // A fragment that is not defined.
    let missing = "<policies>\n<inbound>\n<include-fragment fragment-id=\"nowhere\" />\n</inbound>\n</policies>";
    let e = start_error(rt, &cfg(vec![papi("a", "api", backend, missing)])).await;
    assert!(e.contains("line 3") && e.contains("nowhere"), "{e}");
}
