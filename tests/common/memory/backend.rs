//! Scripted in-memory backends, and the connections the gateway opens to them.
//!
//! A `MemBackend` answers as its handler says and records what it receives:
//! the parsed requests (complete or not, as `common::Backend` does) and every
//! raw byte. The gateway reaches it through `MemStream`, the driver's
//! `PollStream` over memory; proxied requests and call-outs alike (a
//! `send-request` target or an identity provider is a `MemBackend` too).
//!
//! A reply can be held: `hold()` keeps every answer back until `release()`, and
//! `Reply::AfterGate`/`SplitAtGate` keep theirs until the gate is notified, so
//! two requests can be in flight at once.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use portcullis_core::http::{BodyDecoder, BodyEvent, Limits, RequestHead};
use portcullis_driver::upstream::stream::PollStream;
use tokio::sync::Notify;

use crate::common::{response, Received, Reply};

type Handler = dyn Fn(&Received) -> Reply;

/// An answer not yet given to the gateway.
enum Held {
    /// Kept back by `MemBackend::hold`; `close`: the backend closes after it.
    Bytes { bytes: Vec<u8>, close: bool },
    /// Given once the gate is notified.
    Gate(Arc<Notify>, Vec<u8>),
}

/// The backend's side of one connection.
#[derive(Default)]
struct ConnState {
    /// Received bytes not yet parsed into a request.
    buf: BytesMut,
    /// Answer bytes the gateway has not read yet.
    replies: Vec<u8>,
    /// Answers waiting, in order, behind a hold or a gate.
    held: VecDeque<Held>,
    /// The backend closes once `replies` and `held` are read.
    close_after: bool,
    /// The backend stopped reading (it closed or failed to parse).
    deaf: bool,
    /// The backend answers nothing more; it reads (records) what comes
    /// until the gateway closes, as the socket backend does.
    hung: bool,
    /// The gateway closed the connection.
    ended: bool,
}

impl ConnState {
    /// Moves what a notified gate or a release lets through into `replies`.
    fn release_ready(&mut self, releasing: bool) {
        while let Some(front) = self.held.front() {
            let ready = match front {
                Held::Bytes { .. } => releasing,
                Held::Gate(gate, _) => gate_open(gate),
            };
            if !ready {
                return;
            }
            match self.held.pop_front() {
                Some(Held::Bytes { bytes, close }) => {
                    self.replies.extend_from_slice(&bytes);
                    self.close_after |= close;
                }
                Some(Held::Gate(_, bytes)) => self.replies.extend_from_slice(&bytes),
                None => {}
            }
        }
    }

    /// The backend has closed and everything it sent was read.
    fn closed(&self) -> bool {
        self.close_after && self.replies.is_empty() && self.held.is_empty()
    }
}

/// Whether `gate` was notified (`notify_one` leaves a permit a fresh waiter takes).
fn gate_open(gate: &Notify) -> bool {
    let notified = pin!(gate.notified());
    notified
        .poll(&mut Context::from_waker(Waker::noop()))
        .is_ready()
}

pub(super) struct BackendState {
    handler: Box<Handler>,
    conns: RefCell<Vec<ConnState>>,
    requests: RefCell<Vec<Received>>,
    /// Every byte received, per connection.
    raw: RefCell<Vec<Vec<u8>>>,
    /// New answers are held until `release`.
    holding: Cell<bool>,
}

thread_local! {
    /// The backends of the running test (each `#[test]` has its own thread),
    /// by `host:port`.
    static BACKENDS: RefCell<HashMap<String, Rc<BackendState>>> = RefCell::new(HashMap::new());
}

/// Numbers the made-up backend addresses, never the same one twice in a run.
static NEXT_BACKEND: AtomicU32 = AtomicU32::new(1);

/// The backend at `addr` (`host:port`), if one runs.
fn lookup(addr: &str) -> Option<Rc<BackendState>> {
    BACKENDS
        .try_with(|b| b.borrow().get(addr).cloned())
        .ok()
        .flatten()
}

/// A scripted in-memory backend: answers each request as its handler says and
/// records it. Its `addr` is a made-up address no socket listens on; it is how
/// the configuration names it (`papi(.., backend.addr, ..)`, a call-out's URL).
pub struct MemBackend {
    pub addr: SocketAddr,
    state: Rc<BackendState>,
}

impl Drop for MemBackend {
    fn drop(&mut self) {
        let key = self.addr.to_string();
        // `try_with`: the map may already be gone when the thread ends.
        let _ = BACKENDS.try_with(|b| b.borrow_mut().remove(&key));
    }
}

impl MemBackend {
    /// A backend answering as `handler` says; every `Reply` has its meaning in
    /// memory (a gate is open once notified).
    pub fn start(handler: impl Fn(&Received) -> Reply + 'static) -> MemBackend {
        let state = Rc::new(BackendState {
            handler: Box::new(handler),
            conns: RefCell::new(Vec::new()),
            requests: RefCell::new(Vec::new()),
            raw: RefCell::new(Vec::new()),
            holding: Cell::new(false),
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
        self.state.conns.borrow().len()
    }

    /// Connections ended so far, by the gateway or by the backend.
    pub fn closed_connections(&self) -> usize {
        let conns = self.state.conns.borrow();
        conns.iter().filter(|c| c.ended || c.close_after).count()
    }

    /// As `common::Backend::wait_closed`, in memory nothing to wait for: asserts
    /// at least `n` connections have ended.
    pub fn wait_closed(&self, n: usize) {
        let closed = self.closed_connections();
        assert!(closed >= n, "{closed} backend connections ended, not {n}");
    }

    /// Requests received so far (an incomplete one once its connection ended).
    pub fn requests(&self) -> Vec<Received> {
        self.state.requests.borrow().clone()
    }

    /// The one request received; panics if there is not exactly one.
    pub fn only_request(&self) -> Received {
        let reqs = self.requests();
        assert_eq!(reqs.len(), 1, "backend requests: {reqs:#?}");
        reqs.into_iter().next().unwrap()
    }

    /// Every byte received on every connection, concatenated.
    pub fn raw_bytes(&self) -> Vec<u8> {
        self.state.raw.borrow().concat()
    }

    /// The bytes received on each connection, in the order they were opened.
    pub fn raw_by_connection(&self) -> Vec<Vec<u8>> {
        self.state.raw.borrow().clone()
    }

    /// From now on the answers are kept back until `release`.
    pub fn hold(&self) {
        self.state.holding.set(true);
    }

    /// Answers kept back by `hold`, not yet released.
    pub fn held(&self) -> usize {
        self.state
            .conns
            .borrow()
            .iter()
            .flat_map(|c| &c.held)
            .filter(|h| matches!(h, Held::Bytes { .. }))
            .count()
    }

    /// Lets every answer kept back go (the gateway reads them when next
    /// driven) and stops holding new ones.
    pub fn release(&self) {
        self.state.holding.set(false);
        for conn in self.state.conns.borrow_mut().iter_mut() {
            conn.release_ready(true);
        }
    }

    /// As `common::Backend::assert_nothing_smuggled`: no byte of the request
    /// marked `marker` arrived, and at most one complete request did.
    pub fn assert_nothing_smuggled(&self, marker: &str) {
        let raw = self.raw_bytes();
        assert!(
            !raw.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "backend received the smuggled request's bytes: {:?}",
            String::from_utf8_lossy(&raw)
        );
        for r in self.requests() {
            assert!(
                !r.target().contains(marker),
                "backend received a smuggled request: {r:#?}"
            );
        }
        assert!(
            self.requests().iter().filter(|r| r.complete).count() <= 1,
            "backend received more than one complete request: {:#?}",
            self.requests()
        );
    }
}

impl BackendState {
    /// Takes bytes the gateway wrote on connection `idx`; records and answers
    /// each complete request.
    fn receive(&self, idx: usize, bytes: &[u8]) {
        let (deaf, hung) = {
            let conns = self.conns.borrow();
            (conns[idx].deaf, conns[idx].hung)
        };
        if deaf {
            return;
        }
        self.raw.borrow_mut()[idx].extend_from_slice(bytes);
        if hung {
            return;
        }
        self.conns.borrow_mut()[idx].buf.extend_from_slice(bytes);
        while let Some(received) = self.next_request(idx) {
            self.requests.borrow_mut().push(received.clone());
            if !received.complete {
                return;
            }
            let reply = (self.handler)(&received);
            self.answer(idx, reply);
        }
    }

    /// The next whole request on connection `idx`, or an incomplete one whose
    /// body broke (the backend then stops reading, as the socket one does).
    fn next_request(&self, idx: usize) -> Option<Received> {
        let mut conns = self.conns.borrow_mut();
        let conn = &mut conns[idx];
        if conn.deaf || conn.hung {
            return None;
        }
        let mut rest = conn.buf.clone();
        let head = match RequestHead::parse(&mut rest, &LIMITS) {
            Ok(Some(head)) => head,
            Ok(None) => return None,
            Err(e) => {
                eprintln!("in-memory backend: invalid request head from the gateway: {e}");
                conn.deaf = true;
                conn.close_after = true;
                return None;
            }
        };
        let mut decoder = BodyDecoder::new(head.framing, None, LIMITS.max_trailer_bytes);
        let mut body = Vec::new();
        let (trailers, complete) = loop {
            match decoder.decode(&mut rest) {
                Ok(Some(BodyEvent::Data(d))) => body.extend_from_slice(&d),
                Ok(Some(BodyEvent::End { trailers })) => break (trailers, true),
                Ok(None) => return None,
                Err(e) => {
                    eprintln!("in-memory backend: invalid request body from the gateway: {e}");
                    conn.deaf = true;
                    conn.close_after = true;
                    break (None, false);
                }
            }
        };
        conn.buf = rest;
        Some(Received {
            conn: idx,
            head,
            body,
            trailers,
            complete,
        })
    }

    /// Queues the handler's answer on connection `idx`.
    fn answer(&self, idx: usize, reply: Reply) {
        let holding = self.holding.get();
        let mut conns = self.conns.borrow_mut();
        let conn = &mut conns[idx];
        let (bytes, close) = match reply {
            Reply::Send(bytes) => (bytes, false),
            Reply::SendAndClose(bytes) => (bytes, true),
            Reply::Drop => (Vec::new(), true),
            // Never answers; reads (and drops) what else comes until the gateway
            // closes, its own deadlines deciding on the harness's clock.
            Reply::Hang => {
                conn.hung = true;
                return;
            }
            Reply::AfterGate(gate, bytes) => {
                conn.held.push_back(Held::Gate(gate, bytes));
                conn.release_ready(false);
                return;
            }
            Reply::SplitAtGate(first, gate, rest) => {
                conn.held.push_back(Held::Bytes {
                    bytes: first,
                    close: false,
                });
                conn.held.push_back(Held::Gate(gate, rest));
                conn.release_ready(!holding);
                return;
            }
        };
        if close {
            // The socket backend stops reading once it has closed.
            conn.deaf = true;
        }
        conn.held.push_back(Held::Bytes { bytes, close });
        conn.release_ready(!holding);
    }

    /// The gateway closed connection `idx`: a request cut short is recorded
    /// as incomplete, as the socket backend does at the end of its stream.
    fn end(&self, idx: usize) {
        let partial = {
            let mut conns = self.conns.borrow_mut();
            let conn = &mut conns[idx];
            if conn.ended {
                return;
            }
            conn.ended = true;
            if conn.deaf || conn.hung {
                None
            } else {
                let mut rest = conn.buf.clone();
                RequestHead::parse(&mut rest, &LIMITS)
                    .ok()
                    .flatten()
                    .map(|head| {
                        let mut decoder =
                            BodyDecoder::new(head.framing, None, LIMITS.max_trailer_bytes);
                        let mut body = Vec::new();
                        while let Ok(Some(BodyEvent::Data(d))) = decoder.decode(&mut rest) {
                            body.extend_from_slice(&d);
                        }
                        Received {
                            conn: idx,
                            head,
                            body,
                            trailers: None,
                            complete: false,
                        }
                    })
            }
        };
        if let Some(r) = partial {
            self.requests.borrow_mut().push(r);
        }
    }
}

/// What the recording backend accepts (generous: it records, the gateway decides).
const LIMITS: Limits = Limits {
    max_head_bytes: 1 << 20,
    max_headers: 1000,
    max_body_bytes: None,
    max_trailer_bytes: 64 * 1024,
};

/// One connection from the gateway to an in-memory backend: the driver's
/// `PollStream` over memory. It holds only the backend's address and the
/// connection's number (so it is `Send`, as call-out streams must be); the
/// state is the backend's, on the test's thread.
#[derive(Debug)]
pub struct MemStream {
    /// `host:port` of the backend.
    addr: String,
    /// The pool's key (`scheme://host:port`).
    pub(super) key: Arc<str>,
    idx: usize,
}

impl MemStream {
    /// Opens a connection to the backend at `host:port`, pooled under `key`;
    /// refused when no backend is there. TLS is for the socket suites.
    pub(super) fn connect(key: Arc<str>, host: &str, port: u16, tls: bool) -> io::Result<Self> {
        assert!(!tls, "the in-memory harness has no TLS backends: {key}");
        let addr = format!("{host}:{port}");
        let Some(state) = lookup(&addr) else {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("no in-memory backend at {addr}"),
            ));
        };
        let idx = {
            let mut conns = state.conns.borrow_mut();
            conns.push(ConnState::default());
            conns.len() - 1
        };
        state.raw.borrow_mut().push(Vec::new());
        Ok(MemStream { addr, key, idx })
    }

    fn with<T>(&self, f: impl FnOnce(&BackendState, usize) -> T) -> Option<T> {
        lookup(&self.addr).map(|s| f(&s, self.idx))
    }

    /// The backend has closed this connection (a pool would find it dead).
    pub(super) fn is_closed(&self) -> bool {
        self.with(|s, i| {
            let mut conns = s.conns.borrow_mut();
            conns[i].release_ready(!s.holding.get());
            conns[i].closed()
        })
        .unwrap_or(true)
    }
}

impl PollStream for MemStream {
    fn poll_read(&mut self, _cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let read = self.with(|s, i| {
            let mut conns = s.conns.borrow_mut();
            let conn = &mut conns[i];
            conn.release_ready(!s.holding.get());
            if !conn.replies.is_empty() {
                let n = conn.replies.len().min(buf.len());
                buf[..n].copy_from_slice(&conn.replies[..n]);
                conn.replies.drain(..n);
                Poll::Ready(Ok(n))
            } else if conn.closed() {
                Poll::Ready(Ok(0))
            } else {
                Poll::Pending
            }
        });
        // A backend that went away with its test: the end of the stream.
        read.unwrap_or(Poll::Ready(Ok(0)))
    }

    fn poll_write(&mut self, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.with(|s, i| s.receive(i, buf));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for MemStream {
    fn drop(&mut self) {
        self.with(|s, i| s.end(i));
    }
}
