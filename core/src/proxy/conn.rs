//! The per-client-connection proxy state machine.
//!
//! One `ProxyConn` per accepted client connection. The adapter hands it the bytes it
//! reads from the client and the backend (`handle_client_data`,
//! `handle_upstream_data`), writes out what it has pending (`client_pending`,
//! `upstream_pending`), acts on the events it polls (`poll_event`: open or release a
//! backend connection, close) and sleeps until `poll_timeout`. Every HTTP decision,
//! which request is next, where it goes, how bodies are framed on each side, whether
//! a connection may be reused, which deadline applies and what status an error gets,
//! is made here.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};

use super::admission::{admit, Admission, Admitted, Gate, KeyStrip, Refusal};
use super::local::{write_error, write_error_message, STATUS_PROBE_PATH};
use super::settings::{ConnSettings, IdSeq};
use crate::cert::ClientCertificate;
use crate::http::percent::decode_into;
use policied::{Access, PolicyRun, Stage};

mod event;
mod invariants;
mod parked;
mod policied;
mod tally;
mod target;
mod tunnel;
use crate::config::{ApiType, CompiledConfig, Scheme};
use crate::http::body::{BodyDecoder, BodyEvent};
use crate::http::chunked::{write_chunk_end, write_chunk_size, write_last_chunk};
use crate::http::encode::write_local_response;
use crate::http::field_rules::forwardable_trailers;
use crate::http::hop::{
    write_downstream_response, write_upstream_fields, write_upstream_request, Forwarding,
    OutFraming,
};
use crate::http::websocket::{classify, switches_to_websocket, Handshake};
use crate::http::{
    BodyFraming, CodecError, HeadScanner, Limits, RequestHead, ResponseHead, Version,
};
use crate::telemetry::trace_context::{parse_traceparent, SpanContext, TRACEPARENT_LEN};
pub use event::{Event, UpstreamFailure};
pub use parked::ParkedConn;
use tally::Tally;
pub use target::UpstreamTarget;

/// Most bytes of a body read in full for policies (request or response).
const MAX_POLICY_BODY: usize = 16 * 1024 * 1024;
/// Above this many pending output bytes a side stops being read (backpressure).
const HIGH_WATER: usize = 64 * 1024;
/// How long a connection waits for its next request before giving its buffers back.
const SHRINK_AFTER: Duration = Duration::from_secs(1);

/// Where and how a request is forwarded.
#[derive(Debug)]
struct Forward {
    target: UpstreamTarget,
    /// Bytes of the path the API prefix took; the rest goes after the base path.
    api_prefix_len: usize,
    /// How the request body is framed upstream.
    framing: OutFraming,
    /// The subscription key to leave out.
    strip: KeyStrip,
    /// The gateway's span, as the backend's `traceparent` (when tracing).
    traceparent: Option<[u8; TRACEPARENT_LEN]>,
    /// A WebSocket handshake to a WebSocket API: its `Upgrade` goes on, and
    /// a `101` makes the connection a tunnel.
    upgrade: bool,
}

impl Forward {
    /// Appends the head of the request to send to the backend.
    fn write_head(&self, head: &RequestHead, client_ip: &str, proto: &str, out: &mut BytesMut) {
        let api = self.target.config.api(self.target.api);
        let service = self.target.service();
        let rest = &head.path()[self.api_prefix_len..];
        let base = service.base_path.as_bytes();
        let rest_or_root: &[u8] = if rest.is_empty() && base.is_empty() {
            b"/"
        } else {
            rest
        };
        let query = match &self.strip {
            KeyStrip::Query(q) => Some(q.as_slice()).filter(|q| !q.is_empty()),
            _ => head.query(),
        };
        let (q_sep, q): (&[u8], &[u8]) = match query {
            Some(q) => (b"?", q),
            None => (b"", b""),
        };
        let fwd = Forwarding {
            client_ip: client_ip.as_bytes(),
            proto: proto.as_bytes(),
            host_override: if api.preserve_host_header {
                None
            } else {
                Some(service.authority.as_bytes())
            },
            traceparent: self.traceparent.as_ref().map(|t| &t[..]),
            upgrade: self.upgrade.then_some(&b"websocket"[..]),
        };
        let pq: [&[u8]; 4] = [base, rest_or_root, q_sep, q];
        if self.strip == KeyStrip::Header {
            let key = api.subscription_key_parameter_names.header.as_bytes();
            let fields = head
                .header_pairs()
                .filter(move |(n, _)| !n.eq_ignore_ascii_case(key));
            write_upstream_fields(
                fields,
                head.authority(),
                head.method.as_str().as_bytes(),
                &pq,
                self.framing,
                &fwd,
                head.raw.len(),
                out,
            );
        } else {
            write_upstream_request(head, &head.method, &pq, self.framing, &fwd, out);
        }
    }
}

/// Which deadline `poll_timeout` currently reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeadlineKind {
    /// Waiting for the first byte of the next request; when it passes, the
    /// buffers are given back (the connection may stay idle a long time).
    Shrink {
        /// When the idle connection is closed.
        idle_until: Instant,
    },
    /// Waiting for the first byte of the next request.
    Idle,
    /// Reading a request head that has started.
    HeaderRead,
    /// Opening the backend connection.
    Connect,
    /// Request sent, waiting for the response head.
    Response,
    /// Streaming a body in either direction.
    BodyIdle,
    /// A policy (`retry`, `wait`) waits until then.
    PolicySleep,
    /// A WebSocket tunnel with no byte moving either way.
    TunnelIdle,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head.
    Head { started: bool },
    /// A request is being proxied; see `Exchange`.
    Exchange,
    /// A WebSocket API's backend switched protocols: bytes are relayed both
    /// ways, no HTTP (see `conn/tunnel.rs`).
    Tunnel(tunnel::Tunnel),
    /// `CloseClient` was emitted; nothing else happens.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upstream {
    /// `ConnectUpstream` emitted, no answer yet.
    Connecting,
    /// Connected; `reused` when it came from the pool.
    Connected { reused: bool },
    /// Released (or never needed any more).
    Released,
}

#[derive(Debug)]
enum Response {
    /// Waiting for the backend's response head.
    AwaitingHead,
    /// Reading the whole body for policies (`context.Response.Body`).
    Collect { decoder: BodyDecoder, buf: BytesMut },
    /// The head is in `context.Response`; the body waits in the backend
    /// connection until outbound policies finish.
    Held {
        decoder: BodyDecoder,
        /// The backend's framing, for the client's.
        head_framing: BodyFraming,
        /// The backend declared a Content-Length on a bodiless response.
        declared: Option<u64>,
    },
    /// Streaming the body to the client.
    Body {
        decoder: BodyDecoder,
        framing: OutFraming,
    },
    /// Complete.
    Done,
}

/// State of the request being proxied.
#[derive(Debug)]
struct Exchange {
    forward: Forward,
    /// The client's request head, kept to write the upstream head again for a retry.
    head: RequestHead,
    method: http::Method,
    client_version: Version,
    /// A stale pooled connection may be retried once (requests without a body only).
    retry_allowed: bool,
    upstream: Upstream,
    upstream_eof: bool,
    /// The backend's response allows reusing its connection.
    upstream_keep_alive: bool,
    /// Request body still to forward (`None` once complete or when there was none).
    req_body: Option<BodyDecoder>,
    expect_continue: bool,
    response: Response,
    response_timeout: Duration,
    /// Close the client connection after this exchange.
    close: bool,
    /// Policies of this request, when it has any.
    policy: Option<Box<PolicyRun>>,
}

/// The proxy state machine of one client connection.
#[derive(Debug)]
pub struct ProxyConn {
    settings: Arc<ConnSettings>,
    client_ip: Box<str>,
    /// The certificate the client sent during the TLS handshake, if any.
    client_cert: Option<Arc<ClientCertificate>>,
    client_in: BytesMut,
    client_out: BytesMut,
    upstream_in: BytesMut,
    upstream_out: BytesMut,
    /// How far a request head arriving in `client_in` has been scanned, so a
    /// head sent a byte at a time is not re-parsed from its start on every read.
    client_scan: HeadScanner,
    /// The same for a response head in `upstream_in`.
    upstream_scan: HeadScanner,
    events: VecDeque<Event>,
    phase: Phase,
    exchange: Option<Exchange>,
    deadline: Option<(Instant, DeadlineKind)>,
    client_eof: bool,
    /// The client's byte stream is between requests (nothing of a request unread).
    at_boundary: bool,
    draining: bool,
    upstream_limits: Limits,
    /// The request in progress, for its telemetry record.
    tally: Tally,
    /// This connection's request and span id inputs.
    ids: IdSeq,
    /// Bytes read from the client, and written to it, since the connection began.
    read_total: u64,
    written_total: u64,
    /// The last finished request's policy state, reused by the next request
    /// with policies (its buffers refilled, not allocated again); given back
    /// when the connection goes idle.
    spare_run: Option<Box<PolicyRun>>,
}

impl ProxyConn {
    /// A machine for a connection just accepted from `client_ip` at `now`;
    /// `ids` is its own run of request ids (see [`IdSeq`]: distinct per
    /// connection).
    pub fn new(settings: Arc<ConnSettings>, client_ip: &str, ids: IdSeq, now: Instant) -> Self {
        let idle = settings.timeouts.idle;
        let deadline = (
            now + idle.min(SHRINK_AFTER),
            DeadlineKind::Shrink {
                idle_until: now + idle,
            },
        );
        ProxyConn::with_deadline(settings, client_ip.into(), ids, deadline)
    }

    /// A machine between requests with nothing read yet, waiting for `deadline`
    /// (a new connection's, or a parked one's: see `conn/parked.rs`).
    fn with_deadline(
        settings: Arc<ConnSettings>,
        client_ip: Box<str>,
        ids: IdSeq,
        deadline: (Instant, DeadlineKind),
    ) -> Self {
        let upstream_limits = Limits {
            // Backends get more room for response heads (large cookies) than clients.
            max_head_bytes: 64 * 1024,
            // 128 is the most the codec parses without a heap allocation.
            max_headers: 128,
            max_body_bytes: None,
            max_trailer_bytes: settings.limits.max_trailer_bytes,
        };
        ProxyConn {
            settings,
            client_ip,
            client_cert: None,
            // Buffers are allocated when bytes arrive, not before.
            client_in: BytesMut::new(),
            client_out: BytesMut::new(),
            upstream_in: BytesMut::new(),
            upstream_out: BytesMut::new(),
            client_scan: HeadScanner::new(),
            upstream_scan: HeadScanner::new(),
            events: VecDeque::new(),
            phase: Phase::Head { started: false },
            exchange: None,
            deadline: Some(deadline),
            client_eof: false,
            at_boundary: true,
            draining: false,
            upstream_limits,
            tally: Tally::default(),
            ids,
            read_total: 0,
            written_total: 0,
            spare_run: None,
        }
    }

    /// Sets the certificate the client sent during the TLS handshake (on the
    /// HTTPS listener, before the first bytes): `context.Request.Certificate`
    /// and `validate-client-certificate` read it for every request of the
    /// connection.
    pub fn set_client_certificate(&mut self, cert: Option<Arc<ClientCertificate>>) {
        self.client_cert = cert;
    }

    /// The certificate the client sent during the TLS handshake, if any.
    pub fn client_certificate(&self) -> Option<&Arc<ClientCertificate>> {
        self.client_cert.as_ref()
    }

    // ----- what the adapter asks -----

    /// Whether the adapter should read from the client now.
    pub fn wants_client_read(&self) -> bool {
        if let Phase::Tunnel(_) = self.phase {
            return self.tunnel_wants_client_read();
        }
        if self.client_eof || self.client_out.len() >= HIGH_WATER {
            return false;
        }
        match self.phase {
            Phase::Head { .. } => true,
            Phase::Closed | Phase::Tunnel(_) => false,
            Phase::Exchange => match &self.exchange {
                Some(ex) if ex.collecting_request() => {
                    self.client_in.len() < self.settings.limits.max_head_bytes.max(HIGH_WATER)
                }
                Some(ex) if ex.req_body.is_some() => {
                    matches!(ex.upstream, Upstream::Connected { .. })
                        && self.upstream_out.len() < HIGH_WATER
                }
                // Request complete: keep reading (bounded) to notice a close or
                // take in a pipelined request.
                _ => self.client_in.len() < self.settings.limits.max_head_bytes,
            },
        }
    }

    /// Whether the adapter should read from the backend now.
    pub fn wants_upstream_read(&self) -> bool {
        if let Phase::Tunnel(tunnel) = &self.phase {
            return self.tunnel_wants_upstream_read(tunnel);
        }
        match &self.exchange {
            Some(ex) => {
                matches!(ex.upstream, Upstream::Connected { .. })
                    && !ex.upstream_eof
                    && !matches!(ex.response, Response::Done | Response::Held { .. })
                    && self.client_out.len() < HIGH_WATER
            }
            None => false,
        }
    }

    /// Bytes waiting to be written to the client.
    pub fn client_pending(&self) -> &[u8] {
        &self.client_out
    }

    /// Bytes waiting to be written to the backend.
    pub fn upstream_pending(&self) -> &[u8] {
        &self.upstream_out
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        crate::machine::debug_check(self);
        self.events.pop_front()
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline.map(|(at, _)| at)
    }

    /// Bytes of buffer memory the connection holds.
    pub fn buffer_capacity(&self) -> usize {
        self.client_in.capacity()
            + self.client_out.capacity()
            + self.upstream_in.capacity()
            + self.upstream_out.capacity()
    }

    // ----- what the adapter tells -----

    /// `n` bytes were written to the client.
    pub fn client_written(&mut self, n: usize, now: Instant) {
        let n = n.min(self.client_out.len());
        self.client_out.advance(n);
        self.written_total += n as u64;
        if n > 0 {
            self.touch(now);
        }
        self.progress(now);
    }

    /// `n` bytes were written to the backend.
    pub fn upstream_written(&mut self, n: usize, now: Instant) {
        self.upstream_out.advance(n.min(self.upstream_out.len()));
        if n > 0 {
            self.touch(now);
        }
        self.progress(now);
    }

    /// Bytes read from the client (empty: the client closed its side).
    ///
    /// The bytes are copied into a buffer sized to what is pending, so the adapter
    /// can read into one scratch buffer per thread and an idle connection holds no
    /// read buffer at all.
    pub fn handle_client_data(&mut self, data: &[u8], now: Instant) {
        self.client_in.extend_from_slice(data);
        let n = data.len();
        self.read_total += n as u64;
        if n == 0 {
            self.client_eof = true;
            self.on_client_eof(now);
            return;
        }
        if let Phase::Head { started: false } = self.phase {
            self.phase = Phase::Head { started: true };
            self.set_deadline(
                now,
                self.settings.timeouts.header_read,
                DeadlineKind::HeaderRead,
            );
        }
        self.touch(now);
        self.progress(now);
    }

    /// Bytes read from the backend (empty: the backend closed).
    pub fn handle_upstream_data(&mut self, data: &[u8], now: Instant) {
        if let Phase::Tunnel(_) = self.phase {
            return self.tunnel_upstream_data(data, now);
        }
        self.upstream_in.extend_from_slice(data);
        let n = data.len();
        if let Some(ex) = &mut self.exchange {
            if n == 0 {
                ex.upstream_eof = true;
            }
        }
        if n > 0 {
            self.touch(now);
        }
        self.progress(now);
    }

    /// The backend connection asked for is ready; `reused` when taken from the pool.
    pub fn handle_upstream_connected(&mut self, reused: bool, now: Instant) {
        let Some(ex) = &mut self.exchange else {
            // Not waiting for one (the exchange ended meanwhile): give it back.
            self.events
                .push_back(Event::ReleaseUpstream { reuse: reused });
            return;
        };
        ex.upstream = Upstream::Connected { reused };
        if ex.expect_continue {
            // The backend is there, so tell the client to send its body; the
            // Expect header itself is not forwarded (see hop.rs).
            ex.expect_continue = false;
            self.client_out
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        self.arm_exchange_deadline(now);
        self.progress(now);
    }

    /// Connecting to, writing to or reading from the backend failed.
    pub fn handle_upstream_failed(&mut self, failure: UpstreamFailure, now: Instant) {
        if let Phase::Tunnel(_) = self.phase {
            // A tunnel's backend is gone: nothing to answer, the client's closed.
            return self.end_tunnel(now);
        }
        if failure == UpstreamFailure::TunnelLimit {
            // The gateway has no room for another WebSocket connection.
            if self.fail_exchange(503, now) {
                self.progress(now);
            }
            return;
        }
        if self.exchange.is_none() {
            return;
        }
        if failure == UpstreamFailure::Io && self.try_retry(now) {
            return;
        }
        // With policies the failure goes to `on-error`, which must run now.
        if self.fail_exchange(502, now) {
            self.progress(now);
        }
    }

    /// The deadline from `poll_timeout` has passed (spurious calls are ignored).
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some((at, kind)) = self.deadline else {
            return;
        };
        if now < at {
            return;
        }
        self.deadline = None;
        match kind {
            DeadlineKind::Shrink { idle_until } => {
                // Ten thousand idle keep-alive connections should not hold ten
                // thousand sets of buffers; a busy connection never gets here.
                for buf in [
                    &mut self.client_in,
                    &mut self.client_out,
                    &mut self.upstream_in,
                    &mut self.upstream_out,
                ] {
                    if buf.is_empty() {
                        *buf = BytesMut::new();
                    }
                }
                self.spare_run = None;
                self.deadline = Some((idle_until, DeadlineKind::Idle));
            }
            DeadlineKind::Idle => self.close(now),
            DeadlineKind::HeaderRead => {
                write_error(408, true, &mut self.client_out);
                self.close(now);
            }
            DeadlineKind::Connect | DeadlineKind::Response => {
                // With policies the failure goes to `on-error`, which must run now.
                if self.fail_exchange(504, now) {
                    self.progress(now);
                }
            }
            DeadlineKind::PolicySleep => {
                self.policy_sleep_done(now);
            }
            // An idle tunnel ending is its normal end, not an error of the handshake.
            DeadlineKind::TunnelIdle => self.end_tunnel(now),
            DeadlineKind::BodyIdle => {
                let client_stalled = self
                    .exchange
                    .as_ref()
                    .is_some_and(|ex| ex.req_body.is_some());
                if self.fail_exchange(if client_stalled { 408 } else { 504 }, now) {
                    self.progress(now);
                }
            }
        }
    }

    /// Stop taking requests: finish the one in progress (telling the client the
    /// connection closes), then close.
    pub fn begin_shutdown(&mut self) {
        self.draining = true;
        match self.phase {
            // Between requests: nothing to report, so no time is needed.
            Phase::Head { .. } => self.close_between_requests(),
            // A tunnel may last for hours: it ends now. Its record is
            // reported with the time it last moved a byte.
            Phase::Tunnel(_) => {
                if let Some((at, DeadlineKind::TunnelIdle)) = self.deadline {
                    let idle = self.settings.timeouts.tunnel_idle;
                    let last = at.checked_sub(idle).unwrap_or(at);
                    self.end_tunnel(last);
                }
            }
            _ => {}
        }
    }

    // ----- the machine -----

    /// A body moved: its idle deadline starts again.
    fn touch(&mut self, now: Instant) {
        match self.deadline {
            Some((_, DeadlineKind::BodyIdle)) => self.set_deadline(
                now,
                self.settings.timeouts.body_idle,
                DeadlineKind::BodyIdle,
            ),
            Some((_, DeadlineKind::TunnelIdle)) => self.set_deadline(
                now,
                self.settings.timeouts.tunnel_idle,
                DeadlineKind::TunnelIdle,
            ),
            _ => {}
        }
    }

    /// Waits for the next request: buffers are released after a short pause, the
    /// connection is closed after the idle timeout.
    fn go_idle(&mut self, now: Instant) {
        let idle = self.settings.timeouts.idle;
        let idle_until = now + idle;
        self.deadline = Some((
            now + idle.min(SHRINK_AFTER),
            DeadlineKind::Shrink { idle_until },
        ));
    }

    fn set_deadline(&mut self, now: Instant, after: Duration, kind: DeadlineKind) {
        self.deadline = Some((now + after, kind));
    }

    fn close(&mut self, now: Instant) {
        if self.tally.active() {
            self.note_policy_outcome();
            self.report(now);
        }
        self.close_between_requests();
    }

    /// Closes when no request is in progress.
    fn close_between_requests(&mut self) {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            self.deadline = None;
            if let Some(mut ex) = self.exchange.take() {
                if let Some(event) = ex.policy.as_mut().and_then(|run| run.abandon()) {
                    self.events.push_back(event);
                }
                if ex.upstream != Upstream::Released {
                    self.events
                        .push_back(Event::ReleaseUpstream { reuse: false });
                }
            }
            self.upstream_out.clear();
            let clean = self.client_eof || (self.at_boundary && self.client_in.is_empty());
            let linger = !clean;
            self.events.push_back(Event::CloseClient { linger });
        }
    }

    /// Bytes of the client's stream taken in so far (read and not still buffered).
    fn consumed(&self) -> u64 {
        self.read_total - self.client_in.len() as u64
    }

    /// Bytes of responses produced so far (written or waiting to be).
    fn produced(&self) -> u64 {
        self.written_total + self.client_out.len() as u64
    }

    /// Hands what the request's policies knew (request id, cache, last error)
    /// to its tally, before the exchange goes.
    fn note_policy_outcome(&mut self) {
        if let Some(run) = self.exchange.as_mut().and_then(|ex| ex.policy.as_mut()) {
            run.note_outcome(&mut self.tally, self.settings.telemetry.wants_records());
        }
    }

    /// Reports the request in progress to the gateway's telemetry.
    fn report(&mut self, now: Instant) {
        let (consumed, produced) = (self.consumed(), self.produced());
        let settings = &self.settings;
        let ids = &mut self.ids;
        self.tally.report(
            &*settings.telemetry,
            now,
            (consumed, produced),
            &self.client_ip,
            |at| settings.policy.unix_ms(at),
            || settings.policy.next_request_id(ids).0,
        );
    }

    /// Runs the machine as far as the buffered input allows.
    fn progress(&mut self, now: Instant) {
        loop {
            match self.phase {
                Phase::Closed => return,
                Phase::Head { .. } => {
                    if !self.start_request(now) {
                        return;
                    }
                }
                Phase::Exchange => {
                    if !self.pump_exchange(now) {
                        return;
                    }
                }
                Phase::Tunnel(_) => {
                    if !self.pump_tunnel(now) {
                        return;
                    }
                }
            }
        }
    }

    /// Answers a request head that could not be parsed with its status, and closes.
    fn refuse_head(&mut self, err: &CodecError, consumed: u64, now: Instant) {
        self.at_boundary = false;
        self.tally.begin(now, consumed, self.produced());
        self.tally.error("client", "InvalidRequest");
        self.tally.status(err.status());
        write_error(err.status(), true, &mut self.client_out);
        self.close(now);
    }

    /// Tries to parse the next request head and start its exchange; true if the
    /// phase changed and `progress` should continue.
    fn start_request(&mut self, now: Instant) -> bool {
        if self.client_out.len() >= HIGH_WATER {
            // A client pipelining faster than it reads waits for its answers.
            return false;
        }
        if self.client_in.is_empty() && !self.client_eof {
            return false;
        }
        match self.read_head(now) {
            Ok(head) => self.dispatch(head, now),
            Err(changed) => changed,
        }
    }

    /// Parses the next request head; `Err` with whether the phase changed when
    /// there is none (incomplete, end of stream, or refused as unparseable).
    fn read_head(&mut self, now: Instant) -> Result<RequestHead, bool> {
        let consumed = self.consumed();
        let parsed = self.client_scan.parse_request(
            &mut self.client_in,
            &self.settings.limits,
            self.client_eof,
        );
        match parsed {
            Ok(Some(mut head)) => {
                self.on_head(&mut head, consumed, now);
                Ok(head)
            }
            Ok(None) => {
                if self.client_eof {
                    self.close(now);
                    return Err(true);
                }
                if !self.client_in.is_empty() && self.phase == (Phase::Head { started: false }) {
                    // A pipelined head has begun: it gets the head timeout, not idle.
                    self.phase = Phase::Head { started: true };
                    self.set_deadline(
                        now,
                        self.settings.timeouts.header_read,
                        DeadlineKind::HeaderRead,
                    );
                }
                Err(false)
            }
            Err(err) => {
                self.refuse_head(&err, consumed, now);
                Err(true)
            }
        }
    }

    /// Hook: a head was parsed. Drops the fields nobody may see and starts the
    /// request's telemetry (request line, trace context).
    fn on_head(&mut self, head: &mut RequestHead, consumed: u64, now: Instant) {
        if !self.settings.allow_underscores_in_headers {
            // Before anything looks at the head: neither policies, routing,
            // telemetry nor the backend see such fields (nginx's
            // `underscores_in_headers off`).
            head.remove_underscored_fields();
        }
        self.tally.begin(now, consumed, self.produced());
        let telemetry = &self.settings.telemetry;
        if telemetry.wants_records() {
            self.tally.request_line(&head.method, head.path());
        }
        if telemetry.settings().tracing {
            let incoming = head.header("traceparent").and_then(parse_traceparent);
            let (trace_id, span_id) = self.settings.policy.next_span_ids(&mut self.ids);
            self.tally
                .trace(SpanContext::child_of(incoming, trace_id, span_id));
        }
    }

    /// Hook: what a parsed head gets. Answers what the connection answers
    /// itself (unsupported `Expect`, the status probe, not ready), then admits
    /// the request and starts it, with policies or without.
    fn dispatch(&mut self, head: RequestHead, now: Instant) -> bool {
        let has_body = head.framing != BodyFraming::Empty;
        self.at_boundary = !has_body;
        // A body we do not forward cannot be skipped safely, so such answers close.
        let close_if_local = !head.keep_alive || has_body || self.draining || self.client_eof;
        if head.expect_unsupported {
            self.tally.error("client", "ExpectationFailed");
            return self.answer_locally(417, true, now);
        }
        let config = self.settings.config.current();
        if head.path() == STATUS_PROBE_PATH {
            return self.answer_probe(config.is_some(), close_if_local, now);
        }
        let Some(config) = config else {
            self.events.push_back(Event::NotReady);
            self.tally.error("gateway", "NotReady");
            return self.answer_locally(503, close_if_local, now);
        };
        let gate = Gate {
            scheme: if self.settings.proto == "https" {
                Scheme::Https
            } else {
                Scheme::Http
            },
            max_body_bytes: self.settings.limits.max_body_bytes,
            https_port: self.settings.https_port,
        };
        // What admission decided, taken out of the match (which borrows the head
        // and the configuration, both moving on to the exchange).
        let (api_idx, op_idx, prefix, subscription, product, strip, params, preflight) =
            match admit(&head, &config, gate) {
                Admission::Admitted(admitted) => {
                    let (api_idx, op_idx) = (admitted.api(), admitted.operation());
                    self.tally.routed(&config, api_idx, op_idx);
                    self.tally
                        .access(admitted.product, admitted.subscription.map(|(s, _)| s));
                    // Only policies see the template parameters.
                    let params = (!config.policy_free(api_idx, op_idx)).then(|| {
                        // Into the last request's parameters, reusing their buffers.
                        let mut params = self
                            .spare_run
                            .as_mut()
                            .map(|run| run.take_params())
                            .unwrap_or_default();
                        template_params(&admitted, head.path(), &mut params);
                        params
                    });
                    (
                        api_idx,
                        op_idx,
                        admitted.route.api_prefix_len,
                        admitted.subscription,
                        admitted.product,
                        admitted.strip,
                        params,
                        admitted.preflight,
                    )
                }
                Admission::Unrouted(refusal) => return self.refuse(refusal, close_if_local, now),
                Admission::Redirect {
                    api,
                    operation,
                    port,
                } => {
                    self.tally.routed(&config, api, operation);
                    return self.redirect_to_https(&head, port, close_if_local, now);
                }
                Admission::Refused {
                    api,
                    operation,
                    refusal,
                } => {
                    self.tally.routed(&config, api, operation);
                    return self.refuse(refusal, close_if_local, now);
                }
            };
        // A WebSocket API's handshake keeps its Upgrade; any other request
        // (and an upgrade on another API) follows the hop-by-hop rules.
        let upgrade = config.api(api_idx).api_type == ApiType::Websocket
            && match classify(&head) {
                Handshake::WebSocket => true,
                Handshake::None => false,
                refused => return self.refuse_handshake(refused, now),
            };
        if preflight && (params.is_none() || !config.chain(api_idx, op_idx, product).has_cors()) {
            // A preflight for an API without a cors policy: nothing answers it.
            return self.refuse(super::admission::NOT_FOUND, close_if_local, now);
        }
        let Some(params) = params else {
            return self.start_plain_request(head, config, (api_idx, upgrade), prefix, strip, now);
        };
        let access = Access {
            subscription,
            product,
            strip,
            preflight,
        };
        self.start_policy_request(
            head,
            config,
            (api_idx, upgrade),
            op_idx,
            prefix,
            params,
            access,
            now,
        )
    }

    /// Hook: the status probe (`STATUS_PROBE_PATH`), answered 200 when `ready`.
    fn answer_probe(&mut self, ready: bool, close: bool, now: Instant) -> bool {
        // A health probe, as in APIM: not a request to count. It follows
        // readiness, so a load balancer sends no traffic to a gateway that
        // would answer every call with 503.
        self.tally.forget();
        if ready {
            write_local_response(200, None, &[], b"", close, &mut self.client_out);
        } else {
            self.events.push_back(Event::NotReady);
            write_error(503, close, &mut self.client_out);
        }
        self.next_or_close(close, now)
    }

    /// Hook: a request admission turned away gets its answer.
    fn refuse(&mut self, refusal: Refusal, close_if_local: bool, now: Instant) -> bool {
        let close = refusal.close || close_if_local;
        self.tally.error(refusal.source, refusal.reason);
        match refusal.message {
            Some(message) => {
                self.tally.status(refusal.status);
                write_error_message(refusal.status, message, close, &mut self.client_out);
                self.report(now);
                self.next_or_close(close, now)
            }
            None => self.answer_locally(refusal.status, close, now),
        }
    }

    /// Hook: a plain HTTP request to an API with `httpsRedirect` gets the
    /// same URL over HTTPS: 301 for GET and HEAD, 308 for the rest (which
    /// must repeat their method and body, RFC 9110 15.4.9).
    fn redirect_to_https(
        &mut self,
        head: &RequestHead,
        port: u16,
        close: bool,
        now: Instant,
    ) -> bool {
        let status = if matches!(head.method.as_str(), "GET" | "HEAD") {
            301
        } else {
            308
        };
        let location = https_location(head.authority().unwrap_or_default(), port, head);
        self.tally.status(status);
        write_local_response(
            status,
            None,
            &[(b"Location", &location)],
            b"",
            close,
            &mut self.client_out,
        );
        self.report(now);
        self.next_or_close(close, now)
    }

    /// Hook: a request without policies is forwarded as it streams in.
    fn start_plain_request(
        &mut self,
        head: RequestHead,
        config: Arc<CompiledConfig>,
        (api_idx, upgrade): (usize, bool),
        api_prefix_len: usize,
        strip: KeyStrip,
        now: Instant,
    ) -> bool {
        let has_body = head.framing != BodyFraming::Empty;
        let req_framing = request_framing(&head);
        self.upstream_out.clear();
        let response_timeout = Duration::from_secs(u64::from(config.api(api_idx).timeout_seconds));
        let target = UpstreamTarget {
            config,
            api: api_idx,
            custom: None,
            custom_tls: None,
            tunnel: upgrade,
        };
        let forward = Forward {
            target,
            api_prefix_len,
            framing: req_framing,
            strip,
            traceparent: self.tally.traceparent(),
            upgrade,
        };
        forward.write_head(
            &head,
            &self.client_ip,
            self.settings.proto,
            &mut self.upstream_out,
        );
        let req_body = has_body.then(|| {
            BodyDecoder::new(
                head.framing,
                self.settings.limits.max_body_bytes,
                self.settings.limits.max_trailer_bytes,
            )
        });
        let close = !head.keep_alive || self.draining;
        let expect_continue = head.expect_continue && has_body;
        let target = forward.target.clone();
        self.exchange = Some(Exchange {
            forward,
            method: head.method.clone(),
            client_version: head.version,
            // Only a request that cannot have had an effect is sent twice.
            retry_allowed: !has_body && is_idempotent(&head.method),
            head,
            upstream: Upstream::Connecting,
            upstream_eof: false,
            upstream_keep_alive: false,
            req_body,
            expect_continue,
            response: Response::AwaitingHead,
            response_timeout,
            close,
            policy: None,
        });
        self.phase = Phase::Exchange;
        self.tally.backend_start(now);
        self.events.push_back(Event::ConnectUpstream {
            target,
            // A connection that may become a tunnel is never a pooled one.
            fresh: upgrade,
        });
        self.set_deadline(now, self.settings.timeouts.connect, DeadlineKind::Connect);
        true
    }

    fn answer_locally(&mut self, status: u16, close: bool, now: Instant) -> bool {
        self.tally.status(status);
        write_error(status, close, &mut self.client_out);
        self.report(now);
        self.next_or_close(close, now)
    }

    /// After an answer: close, or wait for the next request.
    fn next_or_close(&mut self, close: bool, now: Instant) -> bool {
        if close {
            self.close(now);
        } else {
            self.phase = Phase::Head { started: false };
            self.go_idle(now);
        }
        true
    }

    /// Moves request body and response bytes as far as buffers allow; true if the
    /// phase changed.
    fn pump_exchange(&mut self, now: Instant) -> bool {
        let Some(ex) = self.exchange.as_mut() else {
            self.phase = Phase::Head { started: false };
            return true;
        };
        if let Some(run) = &ex.policy {
            match run.stage {
                Stage::CollectRequest => return self.collect_request(now),
                Stage::Running => return self.drive_pipeline(now),
                Stage::Forwarding => {}
                Stage::AwaitCall | Stage::AwaitStore | Stage::AwaitSleep => return false,
            }
        }
        if !matches!(ex.upstream, Upstream::Connected { .. }) {
            return false;
        }
        // Request body: client -> backend.
        let mut request_finished = false;
        if let Some(decoder) = ex.req_body.as_mut() {
            while self.upstream_out.len() < HIGH_WATER {
                match decoder.decode(&mut self.client_in) {
                    Ok(Some(BodyEvent::Data(data))) => {
                        if let Some(run) = ex.policy.as_mut() {
                            run.count_streamed(data.len());
                        }
                        write_body_data(ex.forward.framing, &data, &mut self.upstream_out);
                    }
                    Ok(Some(BodyEvent::End { trailers })) => {
                        if ex.forward.framing == OutFraming::Chunked {
                            let drop_underscored = !self.settings.allow_underscores_in_headers;
                            let trailers = forwardable_trailers(trailers, drop_underscored);
                            write_last_chunk(trailers.as_deref(), &mut self.upstream_out);
                        }
                        request_finished = true;
                        break;
                    }
                    Ok(None) => {
                        if self.client_eof {
                            // The client went away mid-body: nothing sensible to answer.
                            self.tally.error("client", "ClientConnectionFailure");
                            self.close(now);
                            return true;
                        }
                        break;
                    }
                    Err(err) => return self.fail_exchange(err.status(), now),
                }
            }
        }
        if request_finished {
            self.at_boundary = true;
            ex.req_body = None;
            self.arm_exchange_deadline(now);
        }
        let Some(ex) = self.exchange.as_mut() else {
            return true;
        };
        // Response: backend -> client.
        loop {
            match &mut ex.response {
                Response::AwaitingHead => {
                    if self.upstream_in.is_empty() && !ex.upstream_eof {
                        return false;
                    }
                    match self.upstream_scan.parse_response(
                        &mut self.upstream_in,
                        &self.upstream_limits,
                        &ex.method,
                        ex.upstream_eof,
                    ) {
                        Ok(Some(head)) if head.status < 200 => {
                            if head.status == 101 {
                                if ex.forward.upgrade && switches_to_websocket(&head) {
                                    return self.start_tunnel(&head, now);
                                }
                                // Only a WebSocket handshake is sent with its
                                // Upgrade, so another switch is a backend bug.
                                return self.fail_exchange(502, now);
                            }
                            // Interim responses (103 and a stray 100) are not relayed.
                            continue;
                        }
                        Ok(Some(head)) if ex.policy.is_some() => {
                            ex.retry_allowed = false;
                            return self.policy_response_head(head, now);
                        }
                        Ok(Some(head)) => {
                            ex.retry_allowed = false;
                            self.tally.status(head.status);
                            ex.upstream_keep_alive = head.keep_alive;
                            let framing = client_framing(&head, &ex.method, ex.client_version);
                            if framing == OutFraming::Close {
                                ex.close = true;
                            }
                            // A backend answering before the request body is all in: the
                            // rest of the body cannot be told from a next request, so
                            // the connection closes after this answer, and says so.
                            let close = ex.close || self.draining || ex.req_body.is_some();
                            ex.close = close;
                            let keep_alive_10 = !close && ex.client_version == Version::Http10;
                            write_downstream_response(
                                &head,
                                framing,
                                close,
                                keep_alive_10,
                                &mut self.client_out,
                            );
                            let decoder = BodyDecoder::new(
                                head.framing,
                                None,
                                self.upstream_limits.max_trailer_bytes,
                            );
                            // Until the body moves, the response deadline still runs.
                            self.deadline = Some((
                                now + self.settings.timeouts.body_idle,
                                DeadlineKind::BodyIdle,
                            ));
                            ex.response = Response::Body { decoder, framing };
                        }
                        Ok(None) => {
                            if ex.upstream_eof {
                                if self.try_retry(now) {
                                    return false;
                                }
                                return self.fail_exchange(502, now);
                            }
                            return false;
                        }
                        Err(_) => return self.fail_exchange(502, now),
                    }
                }
                Response::Collect { decoder, buf } => {
                    let step = match decoder.decode(&mut self.upstream_in) {
                        Ok(None) if ex.upstream_eof => decoder.finish_on_eof().map(Some),
                        other => other,
                    };
                    match step {
                        Ok(Some(BodyEvent::Data(data))) => {
                            if buf.len() + data.len() > MAX_POLICY_BODY {
                                return self.fail_exchange(502, now);
                            }
                            buf.extend_from_slice(&data);
                        }
                        Ok(Some(BodyEvent::End { .. })) => {
                            return self.policy_response_collected(now);
                        }
                        Ok(None) => return false,
                        Err(_) => return self.fail_exchange(502, now),
                    }
                }
                Response::Held { .. } => return false,
                Response::Body { decoder, framing } => {
                    if self.client_out.len() >= HIGH_WATER {
                        return false;
                    }
                    let step = match decoder.decode(&mut self.upstream_in) {
                        Ok(None) if ex.upstream_eof => decoder.finish_on_eof().map(Some),
                        other => other,
                    };
                    match step {
                        Ok(Some(BodyEvent::Data(data))) => {
                            if let Some(run) = ex.policy.as_mut() {
                                run.count_streamed(data.len());
                            }
                            write_body_data(*framing, &data, &mut self.client_out);
                        }
                        Ok(Some(BodyEvent::End { trailers })) => {
                            if *framing == OutFraming::Chunked {
                                let trailers = forwardable_trailers(trailers, false);
                                write_last_chunk(trailers.as_deref(), &mut self.client_out);
                            }
                            ex.response = Response::Done;
                        }
                        Ok(None) => return false,
                        Err(_) => {
                            // Head already sent: closing is the only way to tell the
                            // client the body is incomplete.
                            self.tally.error("backend", "BackendIncompleteResponse");
                            self.close(now);
                            return true;
                        }
                    }
                }
                Response::Done => break,
            }
        }
        self.finish_exchange(now)
    }

    /// The response is complete: release the backend and go on with the next request.
    fn finish_exchange(&mut self, now: Instant) -> bool {
        self.policy_exchange_done(now);
        self.tally.backend_end(now);
        self.note_policy_outcome();
        let Some(ex) = self.exchange.as_ref() else {
            return true;
        };
        // A backend may answer before it has taken the whole request body; the
        // answer stands, but the rest of the body cannot be told apart from a next
        // request, so both connections close.
        let request_done = ex.req_body.is_none();
        let reuse = request_done
            && ex.upstream_keep_alive
            && !ex.upstream_eof
            && self.upstream_out.is_empty();
        let close = ex.close || !request_done || self.draining;
        let held = ex.upstream != Upstream::Released;
        if let Some(run) = self.exchange.take().and_then(|ex| ex.policy) {
            self.spare_run = Some(run);
        }
        self.upstream_in.clear();
        self.upstream_scan.reset();
        self.upstream_out.clear();
        if held {
            self.events.push_back(Event::ReleaseUpstream { reuse });
        }
        self.report(now);
        self.next_or_close(close, now)
    }

    /// Resends the request on a fresh connection after a pooled one turned out stale.
    fn try_retry(&mut self, now: Instant) -> bool {
        let Some(ex) = self.exchange.as_mut() else {
            return false;
        };
        let stale_pooled = matches!(ex.upstream, Upstream::Connected { reused: true })
            && ex.retry_allowed
            && self.upstream_in.is_empty();
        if !stale_pooled {
            return false;
        }
        ex.retry_allowed = false;
        ex.upstream = Upstream::Connecting;
        ex.upstream_eof = false;
        self.upstream_out.clear();
        match &mut ex.policy {
            Some(run) => {
                run.write_upstream(
                    &ex.forward,
                    &ex.head,
                    &self.client_ip,
                    self.settings.proto,
                    &mut self.upstream_out,
                );
                // A body the policies set goes again too.
                run.append_body(&mut self.upstream_out);
            }
            None => ex.forward.write_head(
                &ex.head,
                &self.client_ip,
                self.settings.proto,
                &mut self.upstream_out,
            ),
        }
        self.events
            .push_back(Event::ReleaseUpstream { reuse: false });
        self.events.push_back(Event::ConnectUpstream {
            target: ex.forward.target.clone(),
            fresh: true,
        });
        self.set_deadline(now, self.settings.timeouts.connect, DeadlineKind::Connect);
        true
    }

    /// Ends the exchange with an error: a status if nothing was sent yet, else a close.
    fn fail_exchange(&mut self, status: u16, now: Instant) -> bool {
        if self.policy_can_handle_failure() {
            return self.policy_forward_failed(status, now);
        }
        self.tally.backend_end(now);
        let (source, reason) = match status {
            502 => ("backend", "BackendConnectionFailure"),
            504 => ("backend", "Timeout"),
            408 => ("client", "Timeout"),
            413 => ("client", "RequestEntityTooLarge"),
            400..=499 => ("client", "InvalidRequestBody"),
            _ => ("gateway", "InternalError"),
        };
        self.tally.error(source, reason);
        self.note_policy_outcome();
        let Some(mut ex) = self.exchange.take() else {
            return true;
        };
        if let Some(event) = ex.policy.as_mut().and_then(|run| run.abandon()) {
            self.events.push_back(event);
        }
        if ex.upstream != Upstream::Released {
            self.events
                .push_back(Event::ReleaseUpstream { reuse: false });
        }
        self.upstream_in.clear();
        self.upstream_scan.reset();
        self.upstream_out.clear();
        let head_sent = !matches!(ex.response, Response::AwaitingHead);
        if head_sent {
            self.close(now);
            return true;
        }
        let close = ex.close || ex.req_body.is_some() || self.draining || self.client_eof;
        self.tally.status(status);
        write_error(status, close, &mut self.client_out);
        self.report(now);
        self.next_or_close(close, now)
    }

    fn on_client_eof(&mut self, now: Instant) {
        match self.phase {
            Phase::Head { .. } => {
                // The scanner parses a head arriving in pieces only at its end, so
                // one cut short may hold an error not reported yet: the client
                // gets the answer it would have had when the bad byte came.
                let consumed = self.consumed();
                if !self.client_in.is_empty() {
                    let parsed = self.client_scan.parse_request(
                        &mut self.client_in,
                        &self.settings.limits,
                        true,
                    );
                    if let Err(err) = parsed {
                        self.refuse_head(&err, consumed, now);
                        return;
                    }
                }
                self.close(now)
            }
            Phase::Closed => {}
            Phase::Tunnel(_) => self.tunnel_client_eof(now),
            Phase::Exchange => {
                let mid_body = self
                    .exchange
                    .as_ref()
                    .is_some_and(|ex| ex.req_body.is_some());
                if mid_body {
                    self.close(now);
                } else if let Some(ex) = self.exchange.as_mut() {
                    // A half-closed client still gets its answer, then the close.
                    ex.close = true;
                }
            }
        }
    }

    /// Sets the deadline for the exchange's current step.
    fn arm_exchange_deadline(&mut self, now: Instant) {
        let Some(ex) = &self.exchange else { return };
        if ex.req_body.is_some() {
            self.set_deadline(
                now,
                self.settings.timeouts.body_idle,
                DeadlineKind::BodyIdle,
            );
        } else if matches!(ex.response, Response::AwaitingHead) {
            let after = ex.response_timeout;
            self.set_deadline(now, after, DeadlineKind::Response);
        }
    }
}

/// The matched operation's template parameters, decoded, for policies.
fn template_params(admitted: &Admitted<'_>, path: &[u8], out: &mut Vec<(String, String)>) {
    let captures = &admitted.route.params;
    out.truncate(captures.len());
    for (i, c) in captures.iter().enumerate() {
        if i == out.len() {
            out.push((String::new(), String::new()));
        }
        let (name, value) = &mut out[i];
        name.clear();
        name.push_str(c.name);
        value.clear();
        let raw = String::from_utf8_lossy(&path[c.start..c.end]);
        decode_into(&raw, false, value);
    }
}

/// How a client request's body is framed towards the backend.
fn request_framing(head: &RequestHead) -> OutFraming {
    match head.framing {
        // An explicit `Content-Length: 0` (a POST without a body) is kept: some
        // servers answer 411 without it.
        BodyFraming::Empty if head.header("content-length").is_some() => OutFraming::Length(0),
        BodyFraming::Empty => OutFraming::None,
        BodyFraming::Length(n) => OutFraming::Length(n),
        _ => OutFraming::Chunked,
    }
}

/// Appends body bytes as the outgoing framing wants them (a chunk, or as they are).
fn write_body_data(framing: OutFraming, data: &[u8], out: &mut BytesMut) {
    if framing == OutFraming::Chunked {
        write_chunk_size(data.len(), out);
        out.extend_from_slice(data);
        write_chunk_end(out);
    } else {
        out.extend_from_slice(data);
    }
}

/// How to frame the response body towards the client.
fn client_framing(head: &ResponseHead, method: &http::Method, client: Version) -> OutFraming {
    let declared = head
        .header("content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    client_framing_parts(head.framing, declared, head.status, method, client)
}

/// `client_framing` from the backend's framing, declared length and status.
fn client_framing_parts(
    framing: BodyFraming,
    declared: Option<u64>,
    status: u16,
    method: &http::Method,
    client: Version,
) -> OutFraming {
    match framing {
        BodyFraming::Length(n) => OutFraming::Length(n),
        BodyFraming::Chunked | BodyFraming::CloseDelimited => match client {
            Version::Http11 => OutFraming::Chunked,
            Version::Http10 => OutFraming::Close,
        },
        BodyFraming::Empty => {
            if status == 204 || status < 200 {
                OutFraming::None
            } else if *method == http::Method::HEAD || status == 304 {
                // No body follows, but the length the backend declared is kept.
                declared.map_or(OutFraming::None, OutFraming::Length)
            } else {
                OutFraming::Length(0)
            }
        }
    }
}

/// Methods whose repetition has no further effect (RFC 9110 9.2.2).
fn is_idempotent(method: &http::Method) -> bool {
    use http::Method;
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// `https://host[:port]/path?query` for a request that came with `authority`
/// (its port, if any, dropped: the HTTPS listener has its own; 443 is left out).
fn https_location(authority: &[u8], port: u16, head: &RequestHead) -> Vec<u8> {
    let host = match authority.iter().rposition(|&b| b == b':') {
        // An IPv6 literal's colons are inside the brackets.
        Some(i) if !authority[i..].contains(&b']') => &authority[..i],
        _ => authority,
    };
    let mut out = Vec::with_capacity(host.len() + head.path_and_query().len() + 16);
    out.extend_from_slice(b"https://");
    out.extend_from_slice(host);
    if port != 443 {
        out.push(b':');
        out.extend_from_slice(port.to_string().as_bytes());
    }
    out.extend_from_slice(head.path_and_query());
    out
}
