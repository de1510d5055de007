//! Limits shared through a real Redis by several gateway binaries, on both
//! runtimes: exact counting (one atomic script call per decision, so the
//! gateways together admit exactly the limit), approximate counting (local
//! counts synced every `syncIntervalMs`: a bounded overshoot, then every
//! gateway refuses), and `limit-concurrency` slots held across gateways.
//!
//! Each test starts its own `redis-server` (`common::redis`) and its own
//! gateways (`--store redis://...`). Store calls get a generous timeout here so
//! a busy machine never turns a slow answer into a fail-open admission; what
//! happens when Redis fails is in `store_redis_failure`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use common::policy_docs::{cfg, inbound, own_backend, papi, subscription, KEY_A, KEY_B};
use common::redis::{RedisServer, Resp};
use common::store::{gateways, get_at, metric_sum, redis_args, retry_after};
use common::*;
use serde_json::json;
use tokio::sync::Notify;

/// The counter key of the `*-by-key` policies: the `X-Client` header.
const BY_CLIENT: &str =
    "@(context.Request.Headers.GetValueOrDefault(&quot;X-Client&quot;, &quot;anonymous&quot;))";

/// Sends `n` GETs at once, request `i` to `addrs[i % addrs.len()]` with
/// `headers`; the responses in request order.
async fn burst(
    addrs: &[SocketAddr],
    n: usize,
    tag: &str,
    headers: &[(&str, &str)],
) -> Vec<Response> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let addr = addrs[i % addrs.len()];
            let path = format!("/api/{tag}/{i}");
            let headers = headers.clone();
            tokio::spawn(async move {
                let h: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                get_at(addr, &path, &h).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(within("a burst request", t).await.expect("request task"));
    }
    out
}

fn addrs(gws: &[GatewayProcess]) -> Vec<SocketAddr> {
    gws.iter().map(|g| g.addr).collect()
}

/// Every gateway counted store calls and no store errors.
async fn assert_store_healthy(gws: &[GatewayProcess]) {
    for (i, gw) in gws.iter().enumerate() {
        let calls = metric_sum(gw.ops_addr, "portcullis_store_call_duration_seconds_count").await;
        assert!(calls > 0.0, "gateway {i} counted no store calls");
        let errors = metric_sum(gw.ops_addr, "portcullis_store_errors_total").await;
        assert_eq!(errors, 0.0, "gateway {i} counted store errors");
    }
}

#[test]
fn redis_harness_starts_answers_stops_and_restarts_on_its_port() {
    let mut redis = RedisServer::start_with_password("harness-pw");
    assert_eq!(redis.command(&["SET", "k", "v"]), Resp::Simple("OK".into()));
    assert_eq!(redis.command(&["GET", "k"]).text().as_deref(), Some("v"));
    assert_eq!(redis.keys(), ["k"]);
    assert!(redis.url().starts_with("redis://:harness-pw@127.0.0.1:"));
    // Without AUTH the server refuses.
    let mut raw = std::net::TcpStream::connect(redis.addr()).unwrap();
    std::io::Write::write_all(&mut raw, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap();
    let mut answer = [0u8; 7];
    std::io::Read::read_exact(&mut raw, &mut answer).unwrap();
    assert_eq!(&answer, b"-NOAUTH");

    let addr = redis.addr();
    redis.stop();
    assert!(!redis.is_running());
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "nothing listens once stopped"
    );
    redis.restart();
    assert_eq!(redis.addr(), addr, "same port");
    assert!(redis.keys().is_empty(), "nothing persisted");
    assert_eq!(redis.command(&["PING"]), Resp::Simple("PONG".into()));
}

#[runtimes]
async fn exact_rate_limit_by_key_is_shared_by_three_gateways(rt: Runtime) {
    let redis = RedisServer::start();
    let backend = Backend::echo().await;
    let policy = inbound(&format!(
        r#"<rate-limit-by-key calls="30" renewal-period="60" counter-key="{BY_CLIENT}"
              remaining-calls-header-name="X-Remaining" total-calls-header-name="X-Total" />"#
    ));
    let doc = cfg(vec![papi("limited", "api", backend.addr, &policy)]);
    let gws = gateways(rt, &doc, 3, &redis_args(&redis, &["--gateway-id", "edge"])).await;
    let alice = [("X-Client", "alice")];

    // One at a time, round robin: one countdown across the three.
    for i in 0..15 {
        let gw = i % 3;
        let r = get_at(gws[gw].addr, &format!("/api/seq/{i}"), &alice).await;
        assert_eq!(r.status, 200, "request {i} via gateway {gw}: {r:?}");
        assert_eq!(
            r.header("x-remaining"),
            Some((29 - i).to_string()),
            "request {i} via gateway {gw}: {r:?}"
        );
        assert_eq!(r.header("x-total").as_deref(), Some("30"), "{r:?}");
    }

    // The other 75 at once, round robin: exactly 15 more pass, each seeing its
    // own place in the countdown.
    let responses = burst(&addrs(&gws), 75, "burst", &alice).await;
    let mut remaining = Vec::new();
    let mut refused = 0;
    for r in &responses {
        match r.status {
            200 => remaining.push(
                r.header("x-remaining")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("no X-Remaining: {r:?}")),
            ),
            429 => {
                refused += 1;
                assert!((1..=60).contains(&retry_after(r)), "{r:?}");
                let message = r.json()["message"].as_str().unwrap().to_owned();
                assert!(
                    message.starts_with("Rate limit is exceeded. Try again in "),
                    "{message}"
                );
            }
            other => panic!("status {other}: {r:?} {}", r.body_str()),
        }
    }
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        (0..15).collect::<Vec<u64>>(),
        "the burst's admissions, each with its own remaining count"
    );
    assert_eq!(refused, 60);
    assert_eq!(
        backend.requests().len(),
        30,
        "only admitted calls reached the backend"
    );

    // Every gateway refuses alice now; bob has his own counter, on all three.
    for (i, gw) in gws.iter().enumerate() {
        let r = get_at(gw.addr, "/api/after", &alice).await;
        assert_eq!(r.status, 429, "gateway {i}: {r:?}");
        let r = get_at(gw.addr, "/api/bob", &[("X-Client", "bob")]).await;
        assert_eq!(r.status, 200, "gateway {i}: {r:?}");
        assert_eq!(r.header("x-remaining"), Some((29 - i).to_string()), "{r:?}");
    }

    // The counters live in Redis under the gateway's default prefix.
    let keys = redis.keys();
    assert!(!keys.is_empty(), "no keys in Redis");
    assert!(
        keys.iter().all(|k| k.starts_with("portcullis:edge:")),
        "keys outside the prefix portcullis:edge: {keys:?}"
    );
    assert_store_healthy(&gws).await;
}

#[runtimes]
async fn exact_quota_by_key_is_shared_by_three_gateways(rt: Runtime) {
    let redis = RedisServer::start();
    let backend = Backend::echo().await;
    // A day-long period: a test never straddles its (fixed) boundary in practice.
    let policy = inbound(&format!(
        r#"<quota-by-key calls="30" renewal-period="86400" counter-key="{BY_CLIENT}" />"#
    ));
    let doc = cfg(vec![papi("q", "api", backend.addr, &policy)]);
    let gws = gateways(rt, &doc, 3, &redis_args(&redis, &[])).await;
    let tenant = [("X-Client", "tenant-1")];

    let responses = burst(&addrs(&gws), 90, "q", &tenant).await;
    let mut passed = 0;
    for r in &responses {
        match r.status {
            200 => passed += 1,
            403 => {
                assert!((1..=86400).contains(&retry_after(r)), "{r:?}");
                let message = r.json()["message"].as_str().unwrap().to_owned();
                assert!(
                    message.starts_with("Out of call volume quota. Quota will be replenished in "),
                    "{message}"
                );
            }
            other => panic!("status {other}: {r:?} {}", r.body_str()),
        }
    }
    assert_eq!(passed, 30, "exactly the quota passes");
    assert_eq!(backend.requests().len(), 30);
    for (i, gw) in gws.iter().enumerate() {
        let r = get_at(gw.addr, "/api/after", &tenant).await;
        assert_eq!(r.status, 403, "gateway {i}: {r:?}");
        let r = get_at(gw.addr, "/api/other", &[("X-Client", "tenant-2")]).await;
        assert_eq!(r.status, 200, "another key's quota, gateway {i}: {r:?}");
    }
    assert_store_healthy(&gws).await;
}

#[runtimes]
async fn exact_rate_limit_per_subscription_is_shared_by_three_gateways(rt: Runtime) {
    let redis = RedisServer::start();
    let backend = Backend::echo().await;
    let policy = inbound(
        r#"<rate-limit calls="10" renewal-period="60" remaining-calls-header-name="X-Remaining" />"#,
    );
    let mut a = papi("limited", "api", backend.addr, &policy);
    a["subscriptionRequired"] = json!(true);
    let mut doc = cfg(vec![a]);
    doc["subscriptions"] = json!([
        subscription("a", "/apis", KEY_A, "active"),
        subscription("b", "/apis", KEY_B, "active"),
    ]);
    let gws = gateways(rt, &doc, 3, &redis_args(&redis, &[])).await;
    let key = "Ocp-Apim-Subscription-Key";

    let responses = burst(&addrs(&gws), 30, "sub", &[(key, KEY_A)]).await;
    let passed = responses.iter().filter(|r| r.status == 200).count();
    let refused = responses.iter().filter(|r| r.status == 429).count();
    assert_eq!((passed, refused), (10, 20), "{responses:#?}");
    for r in responses.iter().filter(|r| r.status == 429) {
        assert!((1..=60).contains(&retry_after(r)), "{r:?}");
    }
    // The secondary key is the same subscription; another subscription counts apart.
    for (i, gw) in gws.iter().enumerate() {
        let r = get_at(gw.addr, "/api/2nd", &[(key, "a-secondary-key-0123456789")]).await;
        assert_eq!(r.status, 429, "gateway {i}: {r:?}");
        let r = get_at(gw.addr, "/api/b", &[(key, KEY_B)]).await;
        assert_eq!(r.status, 200, "gateway {i}: {r:?}");
        assert_eq!(r.header("x-remaining"), Some((9 - i).to_string()), "{r:?}");
    }
    assert_eq!(backend.requests().len(), 13);
    assert_store_healthy(&gws).await;
}

#[runtimes]
async fn approximate_rate_limit_overshoots_within_the_bound_then_every_gateway_refuses(
    rt: Runtime,
) {
    const LIMIT: usize = 30;
    const GATEWAYS: usize = 3;
    let redis = RedisServer::start();
    let backend = Backend::echo().await;
    let policy = inbound(&format!(
        r#"<rate-limit-by-key calls="{LIMIT}" renewal-period="60" counter-key="{BY_CLIENT}" />"#
    ));
    let doc = cfg(vec![papi("limited", "api", backend.addr, &policy)]);
    let args = redis_args(
        &redis,
        &[
            "--store-counting",
            "approximate",
            "--store-sync-interval-ms",
            "200",
        ],
    );
    let gws = gateways(rt, &doc, GATEWAYS, &args).await;
    let alice = [("X-Client", "alice")];

    // A burst of three times the limit, spread evenly: each gateway may admit up
    // to the limit before it hears of the others' calls.
    let responses = burst(&addrs(&gws), LIMIT * GATEWAYS, "burst", &alice).await;
    for r in &responses {
        assert!(matches!(r.status, 200 | 429), "{r:?} {}", r.body_str());
    }
    let admitted = responses.iter().filter(|r| r.status == 200).count();
    eprintln!(
        "approximate counting, {rt:?}: a burst of {} over {GATEWAYS} gateways (limit {LIMIT}, sync 200 ms) admitted {admitted}",
        LIMIT * GATEWAYS
    );
    assert!(admitted >= LIMIT, "admitted {admitted}, below the limit");
    assert!(
        admitted <= LIMIT * GATEWAYS,
        "admitted {admitted}, above limit x gateways"
    );

    // Once the counts are synced, every gateway refuses. Syncing takes a few
    // intervals on a busy machine: a call admitted meanwhile is counted too,
    // and the total stays within the bound.
    let mut late = 0;
    for (i, gw) in gws.iter().enumerate() {
        within(&format!("gateway {i} refuses after syncing"), async {
            loop {
                let r = get_at(gw.addr, "/api/after", &alice).await;
                match r.status {
                    429 => break,
                    200 => late += 1,
                    other => panic!("gateway {i}: status {other}: {r:?}"),
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
        .await;
    }
    eprintln!("approximate counting, {rt:?}: {late} calls admitted after the burst before every gateway refused");
    assert!(
        admitted + late <= LIMIT * GATEWAYS,
        "admitted {admitted} + {late} after the burst, above limit x gateways"
    );
    assert_eq!(backend.requests().len(), admitted + late);

    // Calls counted on one gateway reach the others: carol uses up her limit
    // on gateway 0 alone; after a few sync intervals gateways 1 and 2 refuse
    // her, long before they could have counted the limit themselves (a
    // gateway counting alone would admit all of its own 30).
    let carol = [("X-Client", "carol")];
    for i in 0..LIMIT {
        let r = get_at(gws[0].addr, &format!("/api/carol/{i}"), &carol).await;
        assert_eq!(r.status, 200, "carol's call {i} on gateway 0: {r:?}");
    }
    assert_eq!(
        get_at(gws[0].addr, "/api/carol/over", &carol).await.status,
        429
    );
    tokio::time::sleep(std::time::Duration::from_millis(5 * 200)).await;
    for (i, gw) in gws.iter().enumerate().skip(1) {
        let mut admitted_here = 0;
        within(&format!("gateway {i} refuses carol"), async {
            loop {
                let r = get_at(gw.addr, "/api/carol/elsewhere", &carol).await;
                match r.status {
                    429 => break,
                    200 => admitted_here += 1,
                    other => panic!("gateway {i}: status {other}: {r:?}"),
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
        .await;
        eprintln!("approximate counting, {rt:?}: gateway {i} admitted {admitted_here} of carol's calls after gateway 0 used her limit");
        assert!(
            admitted_here < LIMIT,
            "gateway {i} admitted {admitted_here} of carol's calls: it never heard of gateway 0's"
        );
    }

    // Another key is not affected.
    let r = get_at(gws[0].addr, "/api/bob", &[("X-Client", "bob")]).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[runtimes]
async fn limit_concurrency_slots_are_shared_by_gateways(rt: Runtime) {
    let redis = RedisServer::start();
    // The backend holds `/one` and `/two` until the test opens their gates.
    let gates: Arc<HashMap<String, Arc<Notify>>> = Arc::new(
        ["/one", "/two"]
            .into_iter()
            .map(|p| (p.to_owned(), Arc::new(Notify::new())))
            .collect(),
    );
    let g = gates.clone();
    let backend = Backend::start(move |r| {
        let body = ok("text/plain", r.target().as_bytes());
        match g.get(&r.target()) {
            Some(gate) => Reply::AfterGate(gate.clone(), body),
            None => Reply::Send(body),
        }
    })
    .await;
    let policy = own_backend(
        "",
        r#"<limit-concurrency key="shared" max-count="2"><forward-request timeout="60" /></limit-concurrency>"#,
        "",
        "",
    );
    let doc = cfg(vec![papi("a", "api", backend.addr, &policy)]);
    let gws = gateways(rt, &doc, 3, &redis_args(&redis, &[])).await;

    let mut first = Client::connect(gws[0].addr).await;
    first.send(get("/api/one")).await;
    let mut second = Client::connect(gws[1].addr).await;
    second.send(get("/api/two")).await;
    backend.wait_requests(2).await;

    // Both slots are taken on other gateways: the third is refused.
    let r = get_at(gws[2].addr, "/api/three", &[]).await;
    assert_eq!(r.status, 429, "{r:?} {}", r.body_str());
    assert_eq!(
        r.json(),
        json!({ "statusCode": 429, "message": "Too many concurrent requests." })
    );
    assert_eq!(backend.requests().len(), 2, "the refused one never left");

    gates["/one"].notify_one();
    gates["/two"].notify_one();
    let r = first.response().await;
    assert_eq!((r.status, r.body_str().as_str()), (200, "/one"));
    let r = second.response().await;
    assert_eq!((r.status, r.body_str().as_str()), (200, "/two"));

    // The slots were given back: the third gateway is let through now (the
    // release is one-way, so it may land just after the answers).
    within("a slot is free again", async {
        loop {
            let r = get_at(gws[2].addr, "/api/four", &[]).await;
            match r.status {
                200 => break,
                429 => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                other => panic!("status {other}: {r:?}"),
            }
        }
    })
    .await;
    let r = get_at(gws[0].addr, "/api/five", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[runtimes]
async fn approximate_counting_decides_locally_without_waiting_for_redis(rt: Runtime) {
    // Approximate counting makes no round trip on the request path once a key
    // is known (its first decision goes to Redis, to start from the shared
    // count): with Redis frozen after that, the gateway still counts its own
    // calls and refuses past the limit. Exact counting would wait for the
    // store timeout on every call and fail open, admitting them all.
    let redis = RedisServer::start();
    let backend = Backend::echo().await;
    let policy = inbound(&format!(
        r#"<rate-limit-by-key calls="5" renewal-period="60" counter-key="{BY_CLIENT}" />"#
    ));
    let doc = cfg(vec![papi("limited", "api", backend.addr, &policy)]);
    let args = [
        "--store",
        &redis.url(),
        "--store-counting",
        "approximate",
        "--store-sync-interval-ms",
        "200",
        "--store-timeout-ms",
        "300",
    ];
    let gw = GatewayProcess::start(rt, &doc, &args).await;
    let alice = [("X-Client", "alice")];
    let first = get_at(gw.addr, "/api/first", &alice).await;
    assert_eq!(first.status, 200, "{first:?}");

    redis.pause();
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(get_at(gw.addr, &format!("/api/{i}"), &alice).await.status);
    }
    redis.resume();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 429, 429],
        "with Redis frozen, approximate counting refuses past the limit on its own count"
    );
    assert_eq!(backend.requests().len(), 5);
    // Thawed, the calls counted meanwhile reach Redis with the next sync: a
    // second gateway started now sees the limit used up. Without that sync it
    // would see only the first call (made in exact fashion) and admit 4 more.
    let other = GatewayProcess::start(rt, &doc, &args).await;
    let mut admitted_there = 0;
    within("the second gateway sees the synced count", async {
        loop {
            let r = get_at(other.addr, "/api/other", &alice).await;
            match r.status {
                429 => return,
                200 => admitted_there += 1,
                s => panic!("status {s}: {r:?}"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    })
    .await;
    assert!(
        admitted_there < 4,
        "the second gateway admitted {admitted_there}: the frozen-time calls never reached Redis"
    );
}
