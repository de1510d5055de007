//! The in-memory harness: the gateway's connection machine (`ProxyConn`)
//! driven exactly as the driver drives it, outputs drained after every input,
//! with no socket, thread or clock. Backends are scripted in memory and record
//! what they receive; shared state is a `LocalStore`; time is an input the test
//! advances by hand (`MemGateway::advance`), so windows need no sleeping.
//!
//! The shapes match the socket suite's: `MemBackend` has the `addr`,
//! `only_request()`, `requests()` and `connections()` of `common::Backend`
//! (recording the same `Received`); `MemGateway::client()` gives a connection
//! with the `send`/`response`/`roundtrip`/`expect_closed` of `common::Client`;
//! `get_with`/`call` give the same `Response`. So a decision test moves from
//! sockets to memory with few edits: `#[runtimes] async fn` becomes `#[test]
//! fn`, `TestGateway::start(rt, ..)` becomes `MemGateway::start(..)`,
//! `Backend` becomes `MemBackend`, and the `.await`s go.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::http::Method;
use bytes::BytesMut;
use portcullis_core::config::{CompiledConfig, Snapshot};
use portcullis_core::http::{BodyDecoder, BodyEvent, Limits, RequestHead, ResponseHead};
use portcullis_core::policy::store::LocalStore;
use portcullis_core::proxy::setup::unix_millis;
use portcullis_core::proxy::{ConfigSource, ConnSettings, Event, IdSeq, PolicyEnv, ProxyConn};
use serde_json::Value;

use super::{config_for, response, GatewayOptions, Received, Reply, Response};

/// Most steps one exchange may take before the harness calls it stuck.
const MAX_STEPS: usize = 100_000;

type Handler = dyn Fn(&Received) -> Reply;

struct BackendState {
    handler: Box<Handler>,
    connections: Cell<usize>,
    requests: RefCell<Vec<Received>>,
}

/// A scripted in-memory backend: answers each request as its handler says and
/// records it. Its `addr` is a made-up address no socket listens on; it is how
/// the configuration names it (`papi(.., backend.addr, ..)`).
pub struct MemBackend {
    pub addr: SocketAddr,
    state: Rc<BackendState>,
}

thread_local! {
    /// The backends of the running test (each `#[test]` has its own thread),
    /// by `host:port`.
    static BACKENDS: RefCell<HashMap<String, Rc<BackendState>>> = RefCell::new(HashMap::new());
}

/// Numbers the made-up backend addresses, never the same one twice in a run.
static NEXT_BACKEND: AtomicU32 = AtomicU32::new(1);

impl Drop for MemBackend {
    fn drop(&mut self) {
        let key = self.addr.to_string();
        // `try_with`: the map may already be gone when the thread ends.
        let _ = BACKENDS.try_with(|b| b.borrow_mut().remove(&key));
    }
}

impl MemBackend {
    /// A backend answering as `handler` says. `Reply::Send`, `SendAndClose`,
    /// `Drop` and `Hang` have a meaning in memory; the gated replies need a
    /// second task, so those tests stay on sockets.
    pub fn start(handler: impl Fn(&Received) -> Reply + 'static) -> MemBackend {
        let state = Rc::new(BackendState {
            handler: Box::new(handler),
            connections: Cell::new(0),
            requests: RefCell::new(Vec::new()),
        });
        let n = NEXT_BACKEND.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        let addr = SocketAddr::from(([10, n[1], n[2], n[3]], 8080));
        BACKENDS.with(|b| b.borrow_mut().insert(addr.to_string(), state.clone()));
        MemBackend { addr, state }
    }

    /// As `common::Backend::echo`: `200`, the request's body echoed, `X-Path`
    /// set to the path received.
    pub fn echo() -> MemBackend {
        MemBackend::start(|r| {
            let target = r.target();
            Reply::Send(response(
                200,
                &[
                    ("Content-Type", "application/octet-stream"),
                    ("X-Path", &target),
                ],
                &r.body,
            ))
        })
    }

    /// Connections opened to this backend so far.
    pub fn connections(&self) -> usize {
        self.state.connections.get()
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Received> {
        self.state.requests.borrow().clone()
    }

    /// The one request received; panics if there is not exactly one.
    pub fn only_request(&self) -> Received {
        let reqs = self.requests();
        assert_eq!(reqs.len(), 1, "backend requests: {reqs:#?}");
        reqs.into_iter().next().unwrap()
    }
}

struct Fixed(Arc<CompiledConfig>);

impl ConfigSource for Fixed {
    fn current(&self) -> Option<Arc<CompiledConfig>> {
        Some(self.0.clone())
    }
}

/// A gateway in memory: the settings the driver would build from default
/// options, a shared-state store, a pool of idle backend connections and a
/// hand-driven clock.
pub struct MemGateway {
    settings: Arc<ConnSettings>,
    store: RefCell<LocalStore>,
    now: Cell<Instant>,
    conns: Cell<u64>,
    /// Idle backend connections by pool key, as the driver's pool keeps them.
    pool: RefCell<HashMap<String, Vec<Upstream>>>,
}

impl MemGateway {
    /// A gateway serving the configuration document `doc`.
    pub fn start(doc: &Value) -> MemGateway {
        let bytes = serde_json::to_vec(doc).unwrap();
        let snapshot = Snapshot::from_json(&bytes).expect("the document parses");
        let config = Arc::new(CompiledConfig::compile(snapshot).expect("the document compiles"));
        let options = GatewayOptions::new("gateway.json".into());
        let now = Instant::now();
        let settings = Arc::new(ConnSettings {
            limits: options.limits,
            timeouts: options.timeouts,
            proto: "http",
            config: Arc::new(Fixed(config)),
            // The wall clock is read once, for the anchor policies compute
            // their time from (tokens minted by tests carry real times); after
            // that, time moves only with `advance`.
            policy: PolicyEnv::new(
                "portcullis".into(),
                Some((now, unix_millis(SystemTime::now()))),
                [7; 32],
            ),
            telemetry: portcullis_core::telemetry::discard(),
            allow_underscores_in_headers: options.allow_underscores_in_headers,
        });
        MemGateway {
            settings,
            store: RefCell::new(LocalStore::default()),
            now: Cell::new(now),
            conns: Cell::new(0),
            pool: RefCell::new(HashMap::new()),
        }
    }

    /// A gateway with API `/api` in front of `backend`.
    pub fn for_backend(backend: &MemBackend) -> MemGateway {
        MemGateway::start(&config_for(backend.addr))
    }

    /// Moves the gateway's clock forward.
    pub fn advance(&self, by: Duration) {
        self.now.set(self.now.get() + by);
    }

    /// Nothing to stop in memory; kept so moved tests read the same.
    pub fn stop(&self) {}

    /// A new client connection.
    pub fn client(&self) -> MemClient<'_> {
        let n = self.conns.get();
        self.conns.set(n + 1);
        // Loopback, as the socket suite's clients: ip-filter and
        // X-Forwarded-For assertions read the same in both.
        let conn = ProxyConn::new(
            self.settings.clone(),
            "127.0.0.1",
            IdSeq::new(n),
            self.now.get(),
        );
        MemClient {
            gw: self,
            conn,
            input: Vec::new(),
            got: BytesMut::new(),
            upstream: None,
            closed: false,
        }
    }

    /// Sends `request` on a new client connection and returns the complete
    /// response to `method`; then the client leaves.
    pub fn exchange(&self, method: &str, request: &[u8]) -> Response {
        let mut c = self.client();
        c.send(request);
        c.response_to(&Method::from_bytes(method.as_bytes()).unwrap())
    }
}

/// A client connection to a `MemGateway`: what the socket suite's `Client`
/// does, in memory. Dropping it is the client closing its side.
pub struct MemClient<'g> {
    gw: &'g MemGateway,
    conn: ProxyConn,
    /// Bytes sent, not yet read by the gateway.
    input: Vec<u8>,
    /// Bytes the gateway wrote, not yet taken as responses.
    got: BytesMut,
    upstream: Option<Upstream>,
    /// The gateway closed the connection.
    closed: bool,
}

impl MemClient<'_> {
    /// Sends `bytes` as they are.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.input.extend_from_slice(bytes.as_ref());
    }

    /// Reads a complete final response to a request with `method` (1xx
    /// skipped), after the gateway has done everything it can (its one-way
    /// store writes included). Time passes only when nothing else can happen.
    pub fn response_to(&mut self, method: &Method) -> Response {
        for _ in 0..MAX_STEPS {
            self.settle();
            if let Some(r) = take_response(&mut self.got, method, self.closed) {
                return r;
            }
            if self.closed {
                break;
            }
            // Nothing left but waiting: let the next deadline pass.
            let Some(at) = self.conn.poll_timeout() else {
                break;
            };
            let at = at.max(self.gw.now.get());
            self.gw.now.set(at);
            self.conn.handle_timeout(at);
        }
        panic!(
            "no complete response; got {:?}",
            String::from_utf8_lossy(&self.got)
        )
    }

    /// Reads a complete final response to a GET.
    pub fn response(&mut self) -> Response {
        self.response_to(&Method::GET)
    }

    /// Sends `request` and reads the response.
    pub fn roundtrip(&mut self, request: impl AsRef<[u8]>) -> Response {
        self.send(request);
        self.response()
    }

    /// Asserts the gateway closes the connection with nothing more sent.
    pub fn expect_closed(&mut self) {
        self.settle();
        assert!(self.closed, "the gateway kept the connection open");
        assert!(
            self.got.is_empty(),
            "gateway sent more bytes before closing: {:?}",
            String::from_utf8_lossy(&self.got)
        );
    }

    /// Drives the machine as the driver does until nothing moves.
    fn settle(&mut self) {
        for _ in 0..MAX_STEPS {
            if !self.step() {
                return;
            }
        }
        panic!("the connection never settles");
    }

    /// One round of the driver's loop: input, events, bytes both ways.
    fn step(&mut self) -> bool {
        let gw = self.gw;
        let now = gw.now.get();
        let mut progressed = false;
        if self.closed {
            return self.flush_client(now);
        }
        if self.conn.wants_client_read() && !self.input.is_empty() {
            let bytes = std::mem::take(&mut self.input);
            self.conn.handle_client_data(&bytes, now);
            progressed = true;
        }
        while let Some(event) = self.conn.poll_event() {
            progressed = true;
            match event {
                Event::ConnectUpstream { target, fresh } => {
                    let service = target.service();
                    let key = service.pool_key.to_string();
                    let pooled = if fresh {
                        None
                    } else {
                        gw.pool.borrow_mut().get_mut(&key).and_then(Vec::pop)
                    };
                    let reused = pooled.is_some();
                    let addr = format!("{}:{}", service.host, service.port);
                    self.upstream = Some(pooled.unwrap_or_else(|| Upstream::open(key, &addr)));
                    self.conn.handle_upstream_connected(reused, now);
                }
                Event::ReleaseUpstream { reuse } => {
                    if let Some(up) = self.upstream.take().filter(|_| reuse) {
                        gw.pool
                            .borrow_mut()
                            .entry(up.key.clone())
                            .or_default()
                            .push(up);
                    }
                }
                Event::Store { request, one_way } => {
                    let answer = gw.store.borrow_mut().answer(&request);
                    if !one_way {
                        self.conn.handle_store_done(answer, now);
                    }
                }
                Event::Trace(_) | Event::NotReady => {}
                Event::CloseClient { .. } => {
                    // As the driver: the backend connection goes, no more
                    // events are handled, what is pending is written, then
                    // the connection closes.
                    self.upstream = None;
                    self.closed = true;
                    break;
                }
                other => panic!("the in-memory harness cannot answer {other:?}"),
            }
        }
        if let Some(up) = self.upstream.as_mut() {
            let pending = self.conn.upstream_pending().to_vec();
            if !pending.is_empty() {
                self.conn.upstream_written(pending.len(), now);
                up.receive(&pending);
                progressed = true;
            }
            if self.conn.wants_upstream_read() {
                if !up.replies.is_empty() {
                    let bytes = std::mem::take(&mut up.replies);
                    self.conn.handle_upstream_data(&bytes, now);
                    progressed = true;
                } else if up.close_after && !up.eof_sent {
                    up.eof_sent = true;
                    self.conn.handle_upstream_data(b"", now);
                    progressed = true;
                }
            }
        }
        self.flush_client(now) || progressed
    }

    /// Takes what the gateway has pending for the client; whether there was any.
    fn flush_client(&mut self, now: Instant) -> bool {
        let out = self.conn.client_pending().to_vec();
        if out.is_empty() {
            return false;
        }
        self.conn.client_written(out.len(), now);
        self.got.extend_from_slice(&out);
        true
    }
}

impl Drop for MemClient<'_> {
    /// The client closes its side; what that releases (a concurrency slot, a
    /// backend connection) is done before the next request, as with sockets.
    fn drop(&mut self) {
        if std::thread::panicking() || self.closed {
            return;
        }
        let now = self.gw.now.get();
        self.conn.handle_client_data(b"", now);
        self.settle();
    }
}

/// The backend side of one upstream connection.
struct Upstream {
    /// The pool's key (`scheme://host:port`).
    key: String,
    state: Rc<BackendState>,
    idx: usize,
    buf: BytesMut,
    /// Answer bytes not yet read by the gateway.
    replies: Vec<u8>,
    /// The backend closes once its answer is read.
    close_after: bool,
    /// The close was delivered.
    eof_sent: bool,
}

impl Upstream {
    /// A new connection to the in-memory backend at `addr` (`host:port`),
    /// pooled under `key`.
    fn open(key: String, addr: &str) -> Upstream {
        let state = BACKENDS
            .with(|b| b.borrow().get(addr).cloned())
            .unwrap_or_else(|| panic!("no in-memory backend at {addr}"));
        let idx = state.connections.get();
        state.connections.set(idx + 1);
        Upstream {
            key,
            state,
            idx,
            buf: BytesMut::new(),
            replies: Vec::new(),
            close_after: false,
            eof_sent: false,
        }
    }

    /// Takes bytes the gateway wrote; records and answers each complete request.
    fn receive(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        let limits = Limits {
            max_head_bytes: 1 << 20,
            max_headers: 1000,
            max_body_bytes: None,
            max_trailer_bytes: 64 * 1024,
        };
        loop {
            let mut rest = self.buf.clone();
            let Ok(Some(head)) = RequestHead::parse(&mut rest, &limits) else {
                return;
            };
            let mut decoder = BodyDecoder::new(head.framing, None, limits.max_trailer_bytes);
            let mut body = Vec::new();
            let trailers = loop {
                match decoder.decode(&mut rest) {
                    Ok(Some(BodyEvent::Data(d))) => body.extend_from_slice(&d),
                    Ok(Some(BodyEvent::End { trailers })) => break trailers,
                    Ok(None) => return,
                    Err(e) => panic!("in-memory backend: invalid request body: {e}"),
                }
            };
            self.buf = rest;
            let received = Received {
                conn: self.idx,
                head,
                body,
                trailers,
                complete: true,
            };
            self.state.requests.borrow_mut().push(received.clone());
            match (self.state.handler)(&received) {
                Reply::Send(bytes) => self.replies.extend_from_slice(&bytes),
                Reply::SendAndClose(bytes) => {
                    self.replies.extend_from_slice(&bytes);
                    self.close_after = true;
                }
                Reply::Drop => self.close_after = true,
                // Never answers: the gateway's own deadlines decide, on the
                // harness's clock.
                Reply::Hang => {}
                Reply::AfterGate(..) | Reply::SplitAtGate(..) => {
                    panic!("in-memory backend: gated replies need sockets")
                }
            }
        }
    }
}

/// Takes a complete final response (1xx skipped) from the start of `buf`, if
/// all there; `eof`: the connection ended, which ends a close-delimited body.
fn take_response(buf: &mut BytesMut, method: &Method, eof: bool) -> Option<Response> {
    let limits = Limits {
        max_head_bytes: 1 << 20,
        max_headers: 1000,
        ..Limits::default()
    };
    let mut rest = buf.clone();
    loop {
        let head = ResponseHead::parse(&mut rest, &limits, method).ok()??;
        if head.status < 200 {
            continue;
        }
        let mut decoder = BodyDecoder::new(head.framing, None, 64 * 1024);
        let mut body = Vec::new();
        loop {
            let step = match decoder.decode(&mut rest).ok()? {
                None if eof => Some(decoder.finish_on_eof().ok()?),
                other => other,
            };
            match step? {
                BodyEvent::Data(d) => body.extend_from_slice(&d),
                BodyEvent::End { trailers } => {
                    *buf = rest;
                    return Some(Response {
                        status: head.status,
                        head,
                        body,
                        trailers,
                    });
                }
            }
        }
    }
}

/// One request on a new connection; the complete response.
pub fn call(
    gw: &MemGateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    gw.exchange(
        method,
        &super::policy_docs::request(method, path, headers, body),
    )
}

/// `GET path` with these headers on a new connection.
pub fn get_with(gw: &MemGateway, path: &str, headers: &[(&str, &str)]) -> Response {
    call(gw, "GET", path, headers, b"")
}

/// As `policy_docs::status_backend`: `/status/NNN...` answered with status
/// NNN, anything else 200; the body is the path received.
pub fn status_backend() -> MemBackend {
    MemBackend::start(|r| {
        let target = r.target();
        let status = target
            .strip_prefix("/status/")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or(200);
        Reply::Send(response(
            status,
            &[("Content-Type", "text/plain")],
            target.as_bytes(),
        ))
    })
}
