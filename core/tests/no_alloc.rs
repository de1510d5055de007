//! A keep-alive request through the connection state machine allocates nothing once
//! the connection is warm: routing, head parsing, the upstream head, the response head
//! and the body copy all reuse what the connection already holds.

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
