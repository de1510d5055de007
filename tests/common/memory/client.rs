//! A client connection to a `MemGateway`, driven as the driver's pump
//! (`portcullis_driver::conn::serve`) drives one: the driver's own
//! `handle_events` acts on the machine's events (pool or connect, call-outs,
//! the store session, key set refreshes, the close), then bytes move both
//! ways in reads of the driver's size. Only the sockets are memory.

use std::task::{Context, Poll, Waker};
use std::time::Instant;

use axum::http::Method;
use bytes::{Bytes, BytesMut};
use portcullis_core::callout::CalloutRequest;
use portcullis_core::cert::ClientCertificate;
use portcullis_core::config::ServiceUrl;
use portcullis_core::http::{BodyDecoder, BodyEvent, Limits, ResponseHead};
use portcullis_core::http::{Scheme, UpstreamTls};
use portcullis_core::proxy::{ProxyConn, UpstreamFailure};
use portcullis_driver::callout::OneWaySlot;
use portcullis_driver::conn::events::{handle_events, one_way_call, AfterEvents, ConnHost};
use portcullis_driver::store::StoreSession;
use portcullis_driver::upstream::stream::PollStream;

use super::backend::MemStream;
use super::callout::{poll_now, MemCallouts};
use super::{take_response, MemGateway, MAX_STEPS};
use crate::common::{Closed, Response};

/// The driver's per-read buffer size: the gateway reads at most this much of
/// either side at once.
const READ_SIZE: usize = portcullis_driver::conn::SCRATCH_SIZE;

/// What a connection's events need: the gateway's pool, call-outs and clock.
pub(super) struct MemHost<'g> {
    pub(super) gw: &'g MemGateway,
}

impl ConnHost for MemHost<'_> {
    type Upstream = MemStream;
    type Calls = MemCallouts;

    fn now(&self) -> Instant {
        self.gw.clock.now()
    }

    fn checkout(&self, key: &std::sync::Arc<str>, _now: Instant) -> Option<MemStream> {
        let mut pool = self.gw.pool.borrow_mut();
        let idle = pool.get_mut(key)?;
        // As the driver's pool: a connection the backend closed is dropped.
        while let Some(up) = idle.pop() {
            if !up.is_closed() {
                return Some(up);
            }
        }
        None
    }

    fn checkin(&self, upstream: MemStream, _now: Instant) {
        let mut pool = self.gw.pool.borrow_mut();
        pool.entry(upstream.key.clone()).or_default().push(upstream);
    }

    fn connect(
        &self,
        service: &ServiceUrl,
        _tls: Option<&std::sync::Arc<UpstreamTls>>,
        key: &std::sync::Arc<str>,
        _deadline: Instant,
    ) -> impl std::future::Future<Output = Option<std::io::Result<MemStream>>> {
        // TLS settings only matter to https backends, which live in the socket suites.
        std::future::ready(Some(MemStream::connect(
            key.clone(),
            &service.host,
            service.port,
            service.scheme == Scheme::Https,
        )))
    }

    fn calls(&self) -> &MemCallouts {
        &self.gw.callouts
    }

    fn one_way_slot(&self) -> Option<OneWaySlot> {
        self.gw.one_way.try_acquire()
    }

    fn spawn_one_way(
        &self,
        request: CalloutRequest,
        tls: Option<std::sync::Arc<UpstreamTls>>,
        slot: OneWaySlot,
    ) {
        // The task runs to its end at once: its target answers from memory.
        let calls = self.gw.callouts.clone().detached();
        poll_now(one_way_call(calls, request, tls, slot))
            .unwrap_or_else(|| panic!("an in-memory one-way call waited on nothing"));
    }

    fn note_not_ready(&self, _now: Instant) {
        self.gw.not_ready.set(self.gw.not_ready.get() + 1);
    }
}

/// A client connection to a `MemGateway`: what the socket suite's `Client`
/// does, in memory. Dropping it is the client closing its side.
pub struct MemClient<'g> {
    pub(super) gw: &'g MemGateway,
    pub(super) conn: ProxyConn,
    /// The connection's handle on the store (gives back its slots when dropped).
    pub(super) store: StoreSession,
    /// Bytes sent, not yet read by the gateway.
    pub(super) input: Vec<u8>,
    /// Bytes the gateway wrote, not yet taken as responses.
    pub(super) got: BytesMut,
    /// Every byte the gateway wrote to this client.
    pub(super) written: Vec<u8>,
    pub(super) upstream: Option<MemStream>,
    /// The gateway closed the connection; `Some(linger)`: it closed its side
    /// first and drained the client's (an orderly end, never a reset).
    pub(super) closed: Option<bool>,
    /// The client closed its side; `eof_read`: the gateway has read that.
    pub(super) eof: bool,
    pub(super) eof_read: bool,
}

impl MemClient<'_> {
    /// The certificate chain (DER, leaf first) this client presented in its
    /// TLS handshake, handed to the connection machine as the driver does
    /// after one.
    pub fn present_certificate(&mut self, chain: Vec<Vec<u8>>) {
        let cert = ClientCertificate::from_der_chain(chain).expect("a readable certificate");
        self.conn
            .set_client_certificate(Some(std::sync::Arc::new(cert)));
    }

    /// Sends `bytes` as they are.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.input.extend_from_slice(bytes.as_ref());
    }

    /// As `send`: kept so moved tests read the same (a socket write may fail
    /// once the gateway closed; in memory the bytes are just left unread).
    pub fn send_lossy(&mut self, bytes: impl AsRef<[u8]>) {
        self.send(bytes);
    }

    /// Drives the connection until `take` finds what it wants in the bytes
    /// written and not yet taken (`true`: the gateway closed). Time passes
    /// only when nothing else can happen: the next deadline is let pass.
    fn drive_until<T>(&mut self, mut take: impl FnMut(&mut BytesMut, bool) -> Option<T>) -> T {
        for _ in 0..MAX_STEPS {
            self.pump();
            if let Some(found) = take(&mut self.got, self.closed.is_some()) {
                return found;
            }
            if self.closed.is_some() {
                break;
            }
            let Some(at) = self.conn.poll_timeout() else {
                break;
            };
            self.gw.clock.advance_to(at);
            self.conn.handle_timeout(self.gw.clock.now());
        }
        panic!(
            "not what the test waits for; got {:?} (closed: {:?})",
            String::from_utf8_lossy(&self.got),
            self.closed
        )
    }

    /// Reads a complete final response to a request with `method` (1xx
    /// skipped), after the gateway has done everything it can (its one-way
    /// store writes included).
    pub fn response_to(&mut self, method: &Method) -> Response {
        self.drive_until(|got, closed| take_response(got, method, closed))
    }

    /// Reads the next response head (1xx included), as `Client::read_head`.
    pub fn read_head(&mut self, method: &Method) -> ResponseHead {
        let limits = Limits {
            max_head_bytes: 1 << 20,
            max_headers: 1000,
            ..Limits::default()
        };
        self.drive_until(|got, _| match ResponseHead::parse(got, &limits, method) {
            Ok(head) => head,
            Err(e) => panic!(
                "invalid response head from the gateway ({e}): {:?}",
                String::from_utf8_lossy(got)
            ),
        })
    }

    /// Reads the body that follows `head`, as `Client::read_body`.
    pub fn read_body(&mut self, head: &ResponseHead) -> (Vec<u8>, Option<Bytes>) {
        self.drive_until(|got, closed| {
            let mut rest = got.clone();
            let mut decoder = BodyDecoder::new(head.framing, None, 64 * 1024);
            let mut body = Vec::new();
            loop {
                let step = match decoder.decode(&mut rest) {
                    Ok(None) if closed => decoder.finish_on_eof(),
                    Ok(None) => return None,
                    Ok(Some(ev)) => Ok(ev),
                    Err(e) => Err(e),
                };
                match step {
                    Ok(BodyEvent::Data(d)) => body.extend_from_slice(&d),
                    Ok(BodyEvent::End { trailers }) => {
                        *got = rest;
                        return Some((body, trailers));
                    }
                    Err(e) => panic!("invalid or truncated response body ({e})"),
                }
            }
        })
    }

    /// The next `n` bytes written (fewer if the gateway closed first).
    pub fn read_exact_bytes(&mut self, n: usize) -> Vec<u8> {
        self.drive_until(|got, closed| {
            (got.len() >= n || closed).then(|| got.split_to(n.min(got.len())).to_vec())
        })
    }

    /// Drives until the gateway closes; how it closed and the bytes written
    /// before the close and not yet taken, as `Client::read_to_end`. A close
    /// that does not drain the client while bytes it sent are still unread is
    /// what a socket reports as a reset.
    pub fn read_to_end(&mut self) -> (Closed, Vec<u8>) {
        self.drive_until(|_, closed| closed.then_some(()));
        let how = match self.closed {
            Some(false) if !self.input.is_empty() => Closed::Reset,
            _ => Closed::Eof,
        };
        (how, self.got.split().to_vec())
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
        self.pump();
        assert!(
            self.closed.is_some(),
            "the gateway kept the connection open"
        );
        assert!(
            self.got.is_empty(),
            "gateway sent more bytes before closing: {:?}",
            String::from_utf8_lossy(&self.got)
        );
    }

    /// Whether the gateway has closed the connection (after driving it);
    /// `Some(true)`: an orderly close that drains the client first, so the
    /// last response is read rather than lost to a reset.
    pub fn closed(&mut self) -> Option<bool> {
        self.pump();
        self.closed
    }

    /// Every byte the gateway wrote to this client so far, exactly.
    pub fn written(&mut self) -> Vec<u8> {
        self.pump();
        self.written.clone()
    }

    /// Bytes written and not yet taken as a response.
    pub fn unread(&mut self) -> Vec<u8> {
        self.pump();
        self.got.to_vec()
    }

    /// Drives the connection as the driver does until nothing moves, without
    /// letting time pass: a request waiting on a held backend answer stays in
    /// flight.
    pub fn pump(&mut self) {
        for _ in 0..MAX_STEPS {
            if !self.step() {
                return;
            }
        }
        panic!("the connection never settles");
    }

    /// One round of the driver's loop: events, then bytes both ways.
    fn step(&mut self) -> bool {
        let now = self.gw.clock.now();
        if self.closed.is_some() {
            return self.flush_client(now);
        }
        let host = MemHost { gw: self.gw };
        let after = poll_now(handle_events(
            &mut self.conn,
            &host,
            &mut self.upstream,
            &mut self.store,
        ))
        .unwrap_or_else(|| panic!("the driver's event handling waited on nothing"));
        if let AfterEvents::Close { linger } = after {
            self.closed = Some(linger);
            self.flush_client(now);
            return true;
        }
        let now = self.gw.clock.now();
        let mut progressed = self.flush_client(now);
        let mut cx = Context::from_waker(Waker::noop());
        if let Some(up) = self.upstream.as_mut() {
            while !self.conn.upstream_pending().is_empty() {
                match up.poll_write(&mut cx, self.conn.upstream_pending()) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        self.conn.upstream_written(n, now);
                        progressed = true;
                    }
                    _ => {
                        self.conn.handle_upstream_failed(UpstreamFailure::Io, now);
                        return true;
                    }
                }
            }
        }
        if self.conn.wants_client_read() {
            if !self.input.is_empty() {
                let n = self.input.len().min(READ_SIZE);
                let bytes: Vec<u8> = self.input.drain(..n).collect();
                self.conn.handle_client_data(&bytes, now);
                progressed = true;
            } else if self.eof && !self.eof_read {
                self.eof_read = true;
                self.conn.handle_client_data(b"", now);
                progressed = true;
            }
        }
        if self.conn.wants_upstream_read() {
            if let Some(up) = self.upstream.as_mut() {
                let mut buf = vec![0u8; READ_SIZE];
                match up.poll_read(&mut cx, &mut buf) {
                    Poll::Ready(Ok(n)) => {
                        self.conn.handle_upstream_data(&buf[..n], now);
                        progressed = true;
                    }
                    Poll::Ready(Err(_)) => {
                        self.conn.handle_upstream_failed(UpstreamFailure::Io, now);
                        progressed = true;
                    }
                    Poll::Pending => {}
                }
            }
        }
        progressed
    }

    /// Takes what the gateway has pending for the client; whether there was any.
    fn flush_client(&mut self, now: Instant) -> bool {
        let out = self.conn.client_pending().to_vec();
        if out.is_empty() {
            return false;
        }
        self.conn.client_written(out.len(), now);
        self.got.extend_from_slice(&out);
        self.written.extend_from_slice(&out);
        true
    }
}

impl Drop for MemClient<'_> {
    /// The client closes its side. The connection then runs on as the
    /// driver's task does until the machine is done with it (time passing
    /// to its deadlines if it waits on a backend that never answers), so what
    /// that releases (a concurrency slot, a backend connection) is released
    /// before the next request, as with sockets.
    fn drop(&mut self) {
        if std::thread::panicking() || self.closed.is_some() {
            return;
        }
        self.eof = true;
        for _ in 0..MAX_STEPS {
            self.pump();
            if self.closed.is_some() {
                return;
            }
            let Some(at) = self.conn.poll_timeout() else {
                return;
            };
            self.gw.clock.advance_to(at);
            self.conn.handle_timeout(self.gw.clock.now());
        }
    }
}
