//! The external cache on a real Redis, shared by gateway binaries, on both
//! runtimes: a response stored through one gateway is a hit on another (with
//! the life it has left as its `max-age`), values stored by one are found by
//! another, values over `maxEntryBytes` are not stored; and `external` on a
//! gateway without Redis never hits, where `prefer-external` falls back to the
//! built-in cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::policy_docs::{cfg, inbound, op, papi, policies};
use common::redis::RedisServer;
use common::store::{call_at, gateways, get_at, metric_sum, redis_args, wait_keys};
use common::*;
use serde_json::json;

/// A backend answering `response N for PATH`, N counting its requests.
async fn counting_backend() -> (Backend, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let backend = Backend::start(move |r| {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::Send(response(
            200,
            &[("Content-Type", "text/plain"), ("X-Served", &n.to_string())],
            format!("response {n} for {}", r.target()).as_bytes(),
        ))
    })
    .await;
    (backend, count)
}

/// cache-lookup with `caching-type` (public downstream caching) and a 60 s cache-store.
fn cached(caching_type: &str) -> String {
    policies(
        &format!(
            r#"<cache-lookup vary-by-developer="false" vary-by-developer-groups="false"
                  downstream-caching-type="public" caching-type="{caching_type}" />"#
        ),
        "",
        r#"<cache-store duration="60" />"#,
        "",
    )
}

/// `max-age` of a `Cache-Control` header.
fn max_age(r: &Response) -> u64 {
    let cc = r
        .header("cache-control")
        .unwrap_or_else(|| panic!("no Cache-Control: {r:?}"));
    cc.split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no max-age in {cc:?}"))
}

#[runtimes]
async fn a_response_cached_through_one_gateway_is_a_hit_on_another(rt: Runtime) {
    let redis = RedisServer::start();
    let (backend, count) = counting_backend().await;
    let doc = cfg(vec![papi("a", "api", backend.addr, &cached("external"))]);
    let prefix = "e2e:cache:";
    let gws = gateways(
        rt,
        &doc,
        2,
        &redis_args(&redis, &["--store-key-prefix", prefix]),
    )
    .await;
    let (a, b) = (&gws[0], &gws[1]);

    let r = get_at(a.addr, "/api/item?q=1", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "response 1 for /item?q=1");
    // cache-store writes after the answer: wait until the entry is in Redis.
    let keys = wait_keys(&redis, "the stored response", |k| !k.is_empty()).await;
    assert!(
        keys.iter().all(|k| k.starts_with(prefix)),
        "keys outside {prefix}: {keys:?}"
    );
    // Let a second of its life pass, so a hit's max-age is below 60 whether
    // the gateway rounds down or up.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let r = get_at(b.addr, "/api/item?q=1", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "response 1 for /item?q=1", "a hit on B");
    assert_eq!(r.header("x-served").as_deref(), Some("1"));
    let age = max_age(&r);
    assert!(
        (1..60).contains(&age),
        "a hit's max-age is the life it has left: {age}"
    );
    assert!(
        r.header("cache-control").unwrap().starts_with("public"),
        "{r:?}"
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "the backend was called once"
    );

    // Another path is another entry, a miss.
    let r = get_at(b.addr, "/api/other?q=1", &[]).await;
    assert_eq!(r.body_str(), "response 2 for /other?q=1");
    assert_eq!(backend.requests().len(), 2);
    for gw in &gws {
        let errors = metric_sum(gw.ops_addr, "portcullis_store_errors_total").await;
        assert_eq!(errors, 0.0);
    }
}

/// An API with PUT/GET/DELETE `/values/{name}` on cache-*-value with `caching_type`.
fn values_api(backend: std::net::SocketAddr, caching_type: &str) -> serde_json::Value {
    let key = r#"@(&quot;v-&quot; + context.Request.MatchedParameters[&quot;name&quot;])"#;
    let mut a = papi("values", "api", backend, "");
    a["operations"] = json!([
        op(
            "put",
            "PUT",
            "/values/{name}",
            &inbound(&format!(
                r#"<cache-store-value key="{key}" value="@(context.Request.Body.As&lt;string&gt;())" duration="60" caching-type="{caching_type}" />
                   <return-response><set-status code="204" reason="No Content" /></return-response>"#
            ))
        ),
        op(
            "get",
            "GET",
            "/values/{name}",
            &inbound(&format!(
                r#"<cache-lookup-value key="{key}" default-value="(none)" variable-name="found" caching-type="{caching_type}" />
                   <return-response>
                     <set-status code="200" reason="OK" />
                     <set-body>@((string)context.Variables["found"])</set-body>
                   </return-response>"#
            ))
        ),
        op(
            "delete",
            "DELETE",
            "/values/{name}",
            &inbound(&format!(
                r#"<cache-remove-value key="{key}" caching-type="{caching_type}" />
                   <return-response><set-status code="204" reason="No Content" /></return-response>"#
            ))
        ),
    ]);
    a
}

#[runtimes]
async fn values_stored_through_one_gateway_are_found_by_another(rt: Runtime) {
    let redis = RedisServer::start();
    let backend = Backend::echo().await;
    let doc = cfg(vec![values_api(backend.addr, "external")]);
    let gws = gateways(rt, &doc, 2, &redis_args(&redis, &[])).await;
    let (a, b) = (&gws[0], &gws[1]);

    let r = get_at(b.addr, "/api/values/colour", &[]).await;
    assert_eq!((r.status, r.body_str().as_str()), (200, "(none)"), "{r:?}");
    let r = call_at(a.addr, "PUT", "/api/values/colour", &[], b"blue").await;
    assert_eq!(r.status, 204, "{r:?}");
    wait_keys(&redis, "the stored value", |k| k.len() == 1).await;
    let r = get_at(b.addr, "/api/values/colour", &[]).await;
    assert_eq!((r.status, r.body_str().as_str()), (200, "blue"), "{r:?}");
    let r = get_at(b.addr, "/api/values/size", &[]).await;
    assert_eq!(r.body_str(), "(none)", "another key");

    // Removed through B: gone for A.
    let r = call_at(b.addr, "DELETE", "/api/values/colour", &[], b"").await;
    assert_eq!(r.status, 204, "{r:?}");
    wait_keys(&redis, "the value removed", |k| k.is_empty()).await;
    let r = get_at(a.addr, "/api/values/colour", &[]).await;
    assert_eq!(r.body_str(), "(none)", "removed");
    assert!(backend.requests().is_empty());
}

#[runtimes]
async fn store_from_the_configuration_document_and_its_max_entry_bytes(rt: Runtime) {
    // No --store flag: the settings come from the document's `store` (as the
    // management plane's snapshot carries them), with a small maxEntryBytes.
    let redis = RedisServer::start();
    let backend = Backend::echo().await;
    let mut doc = cfg(vec![values_api(backend.addr, "external")]);
    doc["store"] = json!({
        "url": redis.url(),
        "timeoutMs": 5000,
        "keyPrefix": "e2e:doc:",
        "maxEntryBytes": 1000
    });
    let gws = gateways(rt, &doc, 2, &[]).await;
    let (a, b) = (&gws[0], &gws[1]);

    let big = "x".repeat(2000);
    let r = call_at(a.addr, "PUT", "/api/values/big", &[], big.as_bytes()).await;
    assert_eq!(r.status, 204, "a value too big is not an error: {r:?}");
    let r = call_at(a.addr, "PUT", "/api/values/small", &[], b"fits").await;
    assert_eq!(r.status, 204, "{r:?}");
    let keys = wait_keys(&redis, "the small value", |k| !k.is_empty()).await;
    let r = get_at(b.addr, "/api/values/small", &[]).await;
    assert_eq!(r.body_str(), "fits");
    let r = get_at(b.addr, "/api/values/big", &[]).await;
    assert_eq!(r.body_str(), "(none)", "over maxEntryBytes: not stored");
    let r = get_at(a.addr, "/api/values/big", &[]).await;
    assert_eq!(r.body_str(), "(none)", "nor kept in A's built-in cache");
    assert_eq!(redis.keys().len(), 1, "only the small value: {keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("e2e:doc:")), "{keys:?}");
}

#[runtimes]
async fn external_without_redis_never_hits_and_prefer_external_falls_back(rt: Runtime) {
    let (backend, count) = counting_backend().await;
    let doc = cfg(vec![
        papi("ext", "ext", backend.addr, &cached("external")),
        papi("pref", "pref", backend.addr, &cached("prefer-external")),
    ]);
    let gw = GatewayProcess::start(rt, &doc, &["--store", "local"]).await;

    // `external` with no external cache: every GET goes to the backend, never
    // an old answer.
    for i in 1..=3 {
        let r = get_at(gw.addr, "/ext/item", &[]).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.body_str(),
            format!("response {i} for /item"),
            "GET {i} is a miss"
        );
    }
    assert_eq!(count.load(Ordering::SeqCst), 3);
    let missing = metric_sum(
        gw.ops_addr,
        r#"portcullis_store_errors_total{reason="no_external_cache"}"#,
    )
    .await;
    assert!(missing >= 1.0, "no_external_cache counted: {missing}");
    gw.wait_log("external").await;

    // `prefer-external` falls back to the built-in cache: soon a GET is
    // answered with what an earlier one got (the store is written as the
    // answer goes out, so the very next GET may still miss).
    let mut previous = get_at(gw.addr, "/pref/item", &[]).await;
    assert_eq!(previous.body_str(), "response 4 for /item");
    within("a hit from the built-in cache", async {
        loop {
            let r = get_at(gw.addr, "/pref/item", &[]).await;
            assert_eq!(r.status, 200, "{r:?}");
            if r.body_str() == previous.body_str() {
                assert_eq!(r.header("x-served"), previous.header("x-served"));
                return;
            }
            previous = r;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
