//! The connection machine's store steps, driven by hand as the driver does:
//! each request for shared state goes out as one `Event::Store`, answered
//! with `handle_store_done`; writes go out one-way; a `limit-concurrency` slot
//! goes back on every path; an unavailable store fails open.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use portcullis_core::config::{CompiledConfig, Snapshot};
use portcullis_core::http::Limits;
use portcullis_core::policy::store::{LocalStore, StoreAnswer, StoreOp};
use portcullis_core::proxy::*;

struct Fixed(Arc<CompiledConfig>);

impl ConfigSource for Fixed {
    fn current(&self) -> Option<Arc<CompiledConfig>> {
        Some(self.0.clone())
    }
}

fn conn(policy: &str) -> ProxyConn {
    let op = serde_json::json!([
        {"id": "get", "method": "GET", "urlTemplate": "/{id}"},
        {"id": "post", "method": "POST", "urlTemplate": "/"},
    ]);
    let snapshot = serde_json::json!({
        "revision": 1,
        "apis": [
            {"id": "items", "path": "items", "serviceUrl": "http://backend.test:9000/v1",
             "subscriptionRequired": false, "operations": op, "policy": policy},
        ],
    });
    let snapshot = Snapshot::from_json(snapshot.to_string().as_bytes()).expect("parses");
    let config = Arc::new(CompiledConfig::compile(snapshot).expect("compiles"));
    let settings = Arc::new(ConnSettings {
        limits: Limits::default(),
        timeouts: Timeouts::default(),
        proto: "http",
        config: Arc::new(Fixed(config)),
        policy: PolicyEnv::default(),
        telemetry: portcullis_core::telemetry::discard(),
        allow_underscores_in_headers: false,
        https_port: None,
    });
    ProxyConn::new(
        settings,
        "192.0.2.9",
        portcullis_core::proxy::IdSeq::default(),
        Instant::now(),
    )
}

/// What the driver saw while handling the pending events.
#[derive(Default)]
struct Seen {
    connect: bool,
    close: bool,
    /// Operations of the requests answered, and whether one-way.
    stored: Vec<(Vec<StoreOp>, bool)>,
}

/// Handles the pending events: store requests answered by `answer`.
fn drain(
    conn: &mut ProxyConn,
    now: Instant,
    mut answer: impl FnMut(&portcullis_core::policy::store::StoreRequest) -> StoreAnswer,
) -> Seen {
    let mut seen = Seen::default();
    while let Some(event) = conn.poll_event() {
        match event {
            Event::ConnectUpstream { .. } => seen.connect = true,
            Event::CloseClient { .. } => seen.close = true,
            Event::Store { request, one_way } => {
                let a = answer(&request);
                seen.stored.push((request.ops.to_vec(), one_way));
                if !one_way {
                    conn.handle_store_done(a, now);
                }
            }
            _ => {}
        }
    }
    seen
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn respond(conn: &mut ProxyConn, now: Instant) -> String {
    conn.handle_upstream_connected(false, now);
    let n = conn.upstream_pending().len();
    conn.upstream_written(n, now);
    conn.handle_upstream_data(OK, now);
    let out = conn.client_pending().to_vec();
    conn.client_written(out.len(), now);
    String::from_utf8_lossy(&out).into_owned()
}

const SLOT: &str = r#"<policies><inbound><base /></inbound><backend>
  <limit-concurrency key="one" max-count="1"><forward-request timeout="60" /></limit-concurrency>
</backend><outbound><base /></outbound><on-error><base /></on-error></policies>"#;

#[test]
fn a_slot_goes_back_when_the_response_is_decided() {
    let mut store = LocalStore::default();
    let mut c = conn(SLOT);
    let now = Instant::now();
    c.handle_client_data(b"GET /items/1 HTTP/1.1\r\nHost: gw\r\n\r\n", now);
    let seen = drain(&mut c, now, |r| store.answer(r));
    assert!(seen.connect);
    assert_eq!(seen.stored.len(), 1, "one request: the slot");
    assert!(matches!(seen.stored[0].0[..], [StoreOp::Acquire { .. }]));
    assert!(!seen.stored[0].1, "the pipeline waits for it");
    assert_eq!(store.slots.in_flight("one"), 1);
    assert!(respond(&mut c, now).starts_with("HTTP/1.1 200"));
    let seen = drain(&mut c, now, |r| store.answer(r));
    assert!(
        matches!(&seen.stored[..], [(ops, true)] if matches!(ops[..], [StoreOp::Release { .. }])),
        "given back one-way"
    );
    assert_eq!(store.slots.in_flight("one"), 0);
}

#[test]
fn a_slot_goes_back_when_the_client_leaves_mid_request() {
    let mut store = LocalStore::default();
    let mut c = conn(SLOT);
    let now = Instant::now();
    c.handle_client_data(
        b"POST /items/ HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\nabc",
        now,
    );
    let seen = drain(&mut c, now, |r| store.answer(r));
    assert!(seen.connect);
    c.handle_upstream_connected(false, now);
    let n = c.upstream_pending().len();
    c.upstream_written(n, now);
    assert_eq!(store.slots.in_flight("one"), 1);
    // The client goes away before its body is in.
    c.handle_client_data(b"", now);
    let seen = drain(&mut c, now, |r| store.answer(r));
    assert!(seen.close);
    assert_eq!(
        store.slots.in_flight("one"),
        0,
        "the abandoned request's slot"
    );
}

#[test]
fn an_unavailable_store_fails_open_and_a_cache_misses() {
    let policy = r#"<policies><inbound><base />
      <rate-limit-by-key calls="1" renewal-period="60" counter-key="k" remaining-calls-header-name="X-Left" />
      <quota-by-key calls="1" renewal-period="60" counter-key="k" />
      <cache-lookup-value key="v" variable-name="cached" default-value="none" />
      <set-header name="X-Cached" exists-action="override"><value>@((string)context.Variables["cached"])</value></set-header>
    </inbound><backend>
      <limit-concurrency key="one" max-count="1"><forward-request timeout="60" /></limit-concurrency>
    </backend><outbound><base /></outbound><on-error><base /></on-error></policies>"#;
    let mut c = conn(policy);
    let now = Instant::now();
    for _ in 0..3 {
        c.handle_client_data(b"GET /items/1 HTTP/1.1\r\nHost: gw\r\n\r\n", now);
        let seen = drain(&mut c, now, |_| StoreAnswer::Unavailable("down".into()));
        assert!(seen.connect, "allowed although over every limit");
        assert_eq!(seen.stored.len(), 4, "rate, quota, cache value, slot");
        let up = String::from_utf8_lossy(c.upstream_pending()).into_owned();
        assert!(up.contains("X-Cached: none"), "a miss: {up}");
        let down = respond(&mut c, now);
        assert!(down.starts_with("HTTP/1.1 200"), "{down}");
        assert!(down.contains("X-Left: 1"), "the whole limit left: {down}");
        drain(&mut c, now, |_| StoreAnswer::Unavailable("down".into()));
    }
}

#[test]
fn counts_are_kept_in_the_store() {
    let policy = r#"<policies><inbound><base />
      <rate-limit-by-key calls="1" renewal-period="60" counter-key="k" />
    </inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>"#;
    let mut store = LocalStore::default();
    let mut c = conn(policy);
    let now = Instant::now();
    c.handle_client_data(b"GET /items/1 HTTP/1.1\r\nHost: gw\r\n\r\n", now);
    assert!(drain(&mut c, now, |r| store.answer(r)).connect);
    assert!(respond(&mut c, now).starts_with("HTTP/1.1 200"));
    drain(&mut c, now, |r| store.answer(r));
    c.handle_client_data(b"GET /items/1 HTTP/1.1\r\nHost: gw\r\n\r\n", now);
    let seen = drain(&mut c, now, |r| store.answer(r));
    assert!(!seen.connect);
    let out = String::from_utf8_lossy(c.client_pending()).into_owned();
    assert!(out.starts_with("HTTP/1.1 429"), "{out}");
    assert_eq!(store.rates.len(), 1);
}
