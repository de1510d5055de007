//! A keep-alive request through the connection state machine allocates nothing once
//! the connection is warm: routing, head parsing, the upstream head, the response head
//! and the body copy all reuse what the connection already holds. With the load
//! benchmark's policies, a warm request stays within a small allocation budget.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// A counting global allocator needs `unsafe impl GlobalAlloc`.
#![allow(unsafe_code)]

#[path = "support/sink.rs"]
mod sink;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use portcullis_core::config::{CompiledConfig, Snapshot};
use portcullis_core::http::Limits;
use portcullis_core::proxy::{ConfigSource, ConnSettings, Event, ProxyConn, Timeouts};

/// Counts allocations made on this thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Fixed(Arc<CompiledConfig>);

impl ConfigSource for Fixed {
    fn current(&self) -> Option<Arc<CompiledConfig>> {
        Some(self.0.clone())
    }
}

const CONFIG: &str = r#"{"revision":1,"apis":[{"id":"items","path":"items",
  "serviceUrl":"http://backend.test:9000/v1","subscriptionRequired":false,
  "operations":[{"id":"get","method":"GET","urlTemplate":"/{id}"}]}]}"#;

const REQUEST: &[u8] = b"GET /items/42?full=true HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: bench/1.0\r\nAccept: application/json\r\nAccept-Encoding: gzip\r\nX-Request-Id: 0123456789\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\nDate: Tue, 24 Nov 2026 20:00:00 GMT\r\n\r\n{\"id\":42,\"name\":\"an item\"}\n";

/// One request through the machine, as an adapter would drive it; allocations made.
fn one_request(conn: &mut ProxyConn, now: Instant) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    conn.handle_client_data(REQUEST, now);
    let mut connected = false;
    while let Some(event) = conn.poll_event() {
        if let Event::ConnectUpstream { .. } = event {
            connected = true;
        }
    }
    assert!(connected, "request not forwarded");
    conn.handle_upstream_connected(true, now);
    let sent = conn.upstream_pending().len();
    assert!(sent > 0);
    conn.upstream_written(sent, now);
    conn.handle_upstream_data(RESPONSE, now);
    let answered = conn.client_pending().len();
    assert!(answered > RESPONSE.len() / 2, "no response");
    conn.client_written(answered, now);
    let mut released = false;
    while let Some(event) = conn.poll_event() {
        if let Event::ReleaseUpstream { reuse: true } = event {
            released = true;
        }
    }
    assert!(released, "backend connection not released for reuse");
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn warm_keep_alive_request_does_not_allocate() {
    let snapshot = Snapshot::from_json(CONFIG.as_bytes()).expect("parses");
    let config = Arc::new(CompiledConfig::compile(snapshot).expect("compiles"));
    let settings = Arc::new(ConnSettings {
        limits: Limits::default(),
        timeouts: Timeouts::default(),
        proto: "http",
        config: Arc::new(Fixed(config)),
        policy: portcullis_core::proxy::PolicyEnv::default(),
        telemetry: Arc::new(sink::Sink::default()),
        allow_underscores_in_headers: false,
        https_port: None,
    });
    let now = Instant::now();
    let mut conn = ProxyConn::new(
        settings,
        "192.0.2.1",
        portcullis_core::proxy::IdSeq::default(),
        now,
    );
    let first = one_request(&mut conn, now);
    assert!(first > 0, "the counter does not count");
    for _ in 0..3 {
        one_request(&mut conn, now);
    }
    let warm = one_request(&mut conn, now);
    assert_eq!(warm, 0, "a warm request allocated {warm} times");
}

/// The policy set of the load benchmark: a per-subscription rate limit (never
/// reached), a literal request header, a URL rewrite with a template parameter
/// and a literal response header.
const LOAD_BENCH_POLICY: &str = r#"<policies>
  <inbound>
    <base />
    <rate-limit-by-key calls="1000000000" renewal-period="60" counter-key="@(context.Subscription.Id)" />
    <set-header name="X-Gateway" exists-action="override"><value>portcullis</value></set-header>
    <rewrite-uri template="/v2/items/{id}" />
  </inbound>
  <backend><base /></backend>
  <outbound>
    <base />
    <set-header name="X-Served-By" exists-action="override"><value>portcullis</value></set-header>
  </outbound>
  <on-error><base /></on-error>
</policies>"#;

const KEY: &str = "0123456789abcdef0123456789abcdef";

const KEYED_REQUEST: &[u8] = b"GET /items/42?full=true HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: bench/1.0\r\nAccept: application/json\r\nAccept-Encoding: gzip\r\nX-Request-Id: 0123456789\r\nOcp-Apim-Subscription-Key: 0123456789abcdef0123456789abcdef\r\n\r\n";

/// Heap allocations a warm keep-alive request through `LOAD_BENCH_POLICY` may
/// make, store answers included (the issue's goal is at most 5). The three left
/// are the rate limit's: `context.Subscription.Id` as an expression value, the
/// counter key, and the store request's counter list.
const POLICY_BUDGET: u64 = 3;

/// Handles the machine's events as an adapter does (store requests answered from
/// `store`); whether a backend connection was asked for and whether the backend
/// connection was released for reuse.
fn drain(
    conn: &mut ProxyConn,
    store: &mut portcullis_core::policy::store::LocalStore,
    now: Instant,
) -> (bool, bool) {
    let (mut connected, mut released) = (false, false);
    while let Some(event) = conn.poll_event() {
        match event {
            Event::ConnectUpstream { .. } => connected = true,
            Event::ReleaseUpstream { reuse: true } => released = true,
            Event::Store { request, one_way } => {
                let answer = store.answer(&request);
                if !one_way {
                    conn.handle_store_done(answer, now);
                }
            }
            _ => {}
        }
    }
    (connected, released)
}

/// One keyed request through the policy API; allocations made, and the bytes
/// sent upstream and to the client.
fn one_policy_request(
    conn: &mut ProxyConn,
    store: &mut portcullis_core::policy::store::LocalStore,
    now: Instant,
) -> (u64, String, String) {
    let before = ALLOCATIONS.with(Cell::get);
    conn.handle_client_data(KEYED_REQUEST, now);
    let (connected, _) = drain(conn, store, now);
    assert!(connected, "request not forwarded");
    conn.handle_upstream_connected(true, now);
    let sent = conn.upstream_pending().len();
    let counted = ALLOCATIONS.with(Cell::get);
    let up = String::from_utf8_lossy(conn.upstream_pending()).into_owned();
    let skipped = ALLOCATIONS.with(Cell::get) - counted;
    conn.upstream_written(sent, now);
    conn.handle_upstream_data(RESPONSE, now);
    let answered = conn.client_pending().len();
    let counted = ALLOCATIONS.with(Cell::get);
    let down = String::from_utf8_lossy(conn.client_pending()).into_owned();
    let skipped = skipped + ALLOCATIONS.with(Cell::get) - counted;
    conn.client_written(answered, now);
    let (_, released) = drain(conn, store, now);
    assert!(released, "backend connection not released for reuse");
    (ALLOCATIONS.with(Cell::get) - before - skipped, up, down)
}

#[test]
fn warm_policy_request_stays_in_its_allocation_budget() {
    let op = r#"[{"id":"get","method":"GET","urlTemplate":"/{id}"}]"#;
    let policy = serde_json::to_string(LOAD_BENCH_POLICY).unwrap();
    let config = format!(
        r#"{{"revision":1,"apis":[{{"id":"items","path":"items",
          "serviceUrl":"http://backend.test:9000/v1","operations":{op},"policy":{policy}}}],
          "subscriptions":[{{"id":"sub-1","scope":"/apis","primaryKey":"{KEY}",
          "secondaryKey":"fedcba9876543210fedcba9876543210"}}]}}"#
    );
    let snapshot = Snapshot::from_json(config.as_bytes()).expect("parses");
    let config = Arc::new(CompiledConfig::compile(snapshot).expect("compiles"));
    let settings = Arc::new(ConnSettings {
        limits: Limits::default(),
        timeouts: Timeouts::default(),
        proto: "http",
        config: Arc::new(Fixed(config)),
        policy: portcullis_core::proxy::PolicyEnv::default(),
        telemetry: Arc::new(sink::Sink::default()),
        allow_underscores_in_headers: false,
        https_port: None,
    });
    let now = Instant::now();
    let mut conn = ProxyConn::new(
        settings,
        "192.0.2.1",
        portcullis_core::proxy::IdSeq::default(),
        now,
    );
    let mut store = portcullis_core::policy::store::LocalStore::new(7);
    let (first, up, down) = one_policy_request(&mut conn, &mut store, now);
    assert!(first > 0, "the counter does not count");
    assert!(
        up.starts_with("GET /v1/v2/items/42?full=true "),
        "not rewritten: {up}"
    );
    assert!(
        up.contains("\r\nX-Gateway: portcullis\r\n"),
        "no header: {up}"
    );
    assert!(!up.contains(KEY), "subscription key forwarded: {up}");
    assert!(down.starts_with("HTTP/1.1 200"), "client got: {down}");
    assert!(
        down.contains("\r\nX-Served-By: portcullis\r\n"),
        "no header: {down}"
    );
    for _ in 0..3 {
        one_policy_request(&mut conn, &mut store, now);
    }
    let (warm, up2, down2) = one_policy_request(&mut conn, &mut store, now);
    assert_eq!(up2, up, "warm request forwarded differently");
    assert_eq!(down2.len(), down.len(), "warm response differs");
    eprintln!("warm policy request: {warm} allocations");
    assert!(
        warm <= POLICY_BUDGET,
        "a warm policy request allocated {warm} times (budget {POLICY_BUDGET})"
    );
}
