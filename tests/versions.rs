//! API versions and revisions end to end over real processes on both
//! runtimes: configured through the management plane's REST API, routed by
//! a connected gateway (a Segment-scheme version set, a revision reached with
//! `;rev=N`, then made current in one change).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::managed::{ManagedGateway, ManagementProcess};
use common::*;
use serde_json::json;

/// The path the echo backend received, when the answer is 200.
fn forwarded_to(path: &'static str) -> impl Fn(&Response) -> bool {
    move |r| r.status == 200 && r.header("x-path").as_deref() == Some(path)
}

#[runtimes]
async fn versions_and_revisions_through_the_management_plane(rt: Runtime) {
    let backend = Backend::echo().await;
    let data = tempfile::tempdir().unwrap();
    let mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let set = json!({"displayName": "Orders", "versioningScheme": "Segment"});
    mgmt.ok(
        "PUT",
        "/api-version-sets/orders",
        Some(&set.to_string()),
        201,
    )
    .await;
    for v in ["v1", "v2"] {
        let mut a = api(
            &format!("orders-{v}"),
            "orders",
            &format!("http://{}/{v}", backend.addr),
        );
        a["apiVersionSetId"] = json!("orders");
        a["apiVersion"] = json!(v);
        mgmt.ok(
            "PUT",
            &format!("/apis/orders-{v}"),
            Some(&a.to_string()),
            201,
        )
        .await;
    }
    // v1 is the default now: requests naming no version reach it.
    let set =
        json!({"displayName": "Orders", "versioningScheme": "Segment", "defaultVersion": "v1"});
    mgmt.ok(
        "PUT",
        "/api-version-sets/orders",
        Some(&set.to_string()),
        200,
    )
    .await;
    let token = mgmt
        .gateway_with_token("gw-1", &["orders-v1", "orders-v2"])
        .await;
    let gw = ManagedGateway::start(rt, &mgmt.url, &token, &["--poll-interval", "3600"]).await;
    gw.ready().await;
    assert!(forwarded_to("/v1/hello")(&gw.get("/orders/v1/hello").await));
    assert!(forwarded_to("/v2/hello")(&gw.get("/orders/v2/hello").await));
    assert!(forwarded_to("/v1/hello")(&gw.get("/orders/hello").await));

    // A new revision of v1 with another upstream: reached only with `;rev=2`.
    let rev = mgmt
        .ok("POST", "/apis/orders-v1/revisions", None, 201)
        .await;
    assert_eq!(rev["id"], "orders-v1~rev2");
    let mut rev2 = rev.clone();
    rev2["serviceUrl"] = json!(format!("http://{}/v1-next", backend.addr));
    mgmt.ok("PUT", "/apis/orders-v1~rev2", Some(&rev2.to_string()), 200)
        .await;
    gw.wait_for(
        "/orders/v1;rev=2/hello",
        "the revision is routed",
        forwarded_to("/v1-next/hello"),
    )
    .await;
    assert!(forwarded_to("/v1/hello")(&gw.get("/orders/v1/hello").await));

    // Made current in one change: the plain path serves it, the old one is `;rev=1`.
    let before = mgmt.revision().await;
    mgmt.ok(
        "POST",
        "/apis/orders-v1/revisions/2/make-current",
        None,
        200,
    )
    .await;
    assert_eq!(mgmt.revision().await, before + 1);
    gw.wait_for(
        "/orders/v1/hello",
        "the new current revision is served",
        forwarded_to("/v1-next/hello"),
    )
    .await;
    assert!(forwarded_to("/v1/hello")(
        &gw.get("/orders/v1;rev=1/hello").await
    ));
    assert!(forwarded_to("/v1-next/hello")(
        &gw.get("/orders/hello").await
    ));
}
