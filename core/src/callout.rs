//! Calls the gateway makes itself (`send-request`, `send-one-way-request`, the
//! OpenID metadata of `validate-jwt`): the request, where it goes, and the
//! exchange machine that writes its bytes and reads the response, without IO.
//!
//! The adapter opens the connection named by [`CalloutTarget`] (reusing a pooled one
//! under [`CalloutTarget::pool_key`]), writes [`CalloutExchange::pending`], feeds what
//! it reads to [`CalloutExchange::handle_data`] (an empty slice at end of stream)
//! and gets a [`Completed`] response back. [`RefreshSchedule`] and [`KeySetFetch`]
//! decide when and how the OpenID key sets are fetched.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::config::{ConfigError, Scheme, ServiceUrl};
use crate::http::encode::write_request_head;
use crate::http::hop::is_hop_by_hop;
use crate::http::{
    BodyDecoder, BodyEvent, BodyFraming, CodecError, HeadScanner, Limits, ResponseHead, Version,
};
use crate::policy::context::{Headers, Response};

/// A call the gateway makes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Header fields to send (Host, Content-Length and hop-by-hop fields are the
    /// exchange's own: a Host given here replaces the URL's, the others are dropped).
    pub headers: Vec<(String, String)>,
    /// Request body (may be empty).
    pub body: Bytes,
    /// How long the whole call (name resolution, connect, TLS, exchange) may take.
    pub timeout: Duration,
}

impl CalloutRequest {
    /// A `GET` of `url` without extra fields.
    pub fn get(url: impl Into<String>, timeout: Duration) -> Self {
        CalloutRequest {
            method: "GET".to_owned(),
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
            timeout,
        }
    }

    /// Parses the URL and encodes the request: the target to connect to and the
    /// exchange to run on that connection.
    pub fn prepare(
        &self,
        limits: CalloutLimits,
    ) -> Result<(CalloutTarget, CalloutExchange), CalloutError> {
        let target = CalloutTarget::parse(&self.url)?;
        let exchange = CalloutExchange::new(self, &target, limits)?;
        Ok((target, exchange))
    }
}

impl From<crate::policy::send::CallRequest> for CalloutRequest {
    fn from(call: crate::policy::send::CallRequest) -> Self {
        CalloutRequest {
            method: call.method,
            url: call.url,
            headers: call.headers,
            body: call.body,
            timeout: call.timeout,
        }
    }
}

/// Why a callout could not be made or its response not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalloutError {
    /// The URL is not an absolute `http`/`https` URL the gateway can call.
    #[error("invalid URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The method is not an HTTP token.
    #[error("invalid method `{0}`")]
    InvalidMethod(String),
    /// A header field name or value cannot be sent.
    #[error("invalid header field `{name}`: {reason}")]
    InvalidHeader {
        /// The field name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The connection closed before any byte of a response arrived.
    #[error("connection closed before a response")]
    NoResponse,
    /// The response is not valid HTTP/1.1, is truncated, or breaks a size limit.
    #[error("invalid response: {0}")]
    Response(#[from] CodecError),
    /// More interim (1xx) responses than `CalloutLimits::max_interim`.
    #[error("more than {0} interim responses")]
    TooManyInterim(usize),
    /// A `101 Switching Protocols` the request did not ask for.
    #[error("unexpected 101 Switching Protocols")]
    UnexpectedUpgrade,
}

impl CalloutError {
    /// The class of failure, as `context.LastError` needs it.
    pub fn kind(&self) -> CalloutFailureKind {
        match self {
            CalloutError::InvalidUrl { .. }
            | CalloutError::InvalidMethod(_)
            | CalloutError::InvalidHeader { .. } => CalloutFailureKind::InvalidRequest,
            CalloutError::NoResponse | CalloutError::Response(CodecError::Truncated) => {
                CalloutFailureKind::Connection
            }
            CalloutError::Response(_)
            | CalloutError::TooManyInterim(_)
            | CalloutError::UnexpectedUpgrade => CalloutFailureKind::Protocol,
        }
    }
}

/// Why a call made by an adapter did not produce a response: what the adapter
/// saw (its IO errors) and what the exchange found, in one error both adapters
/// return.
#[derive(Debug, thiserror::Error)]
pub enum CalloutFailure {
    /// The request could not be built (URL, method or header field).
    #[error(transparent)]
    InvalidRequest(CalloutError),
    /// The call did not complete within the request's timeout.
    #[error("no complete response within {0:?}")]
    Timeout(Duration),
    /// No connection: name resolution, TCP connect or TLS handshake failed.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// `scheme://host:port`.
        target: Arc<str>,
        /// What failed.
        source: std::io::Error,
    },
    /// The connection failed while the exchange was under way.
    #[error("connection to {target} failed: {source}")]
    Io {
        /// `scheme://host:port`.
        target: Arc<str>,
        /// What failed.
        source: std::io::Error,
    },
    /// The connection closed early, or the response was invalid or too large.
    #[error("{target}: {source}")]
    Response {
        /// `scheme://host:port`.
        target: Arc<str>,
        /// What was wrong.
        source: CalloutError,
    },
}

impl CalloutFailure {
    /// The class of failure, for `context.LastError` and logs.
    pub fn kind(&self) -> CalloutFailureKind {
        match self {
            CalloutFailure::InvalidRequest(_) => CalloutFailureKind::InvalidRequest,
            CalloutFailure::Timeout(_) => CalloutFailureKind::Timeout,
            CalloutFailure::Connect { .. } => CalloutFailureKind::Connect,
            CalloutFailure::Io { .. } => CalloutFailureKind::Connection,
            CalloutFailure::Response { source, .. } => source.kind(),
        }
    }

    /// The failure as a policy's `send-request` sees it (`context.LastError`).
    pub fn to_policy_failure(&self) -> crate::policy::error::Failure {
        crate::policy::error::Failure::new(self.kind().last_error_reason(), self.to_string())
    }
}

/// How a callout failed, in the classes a policy's error handling tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalloutFailureKind {
    /// The request could not be built (URL, method or header field).
    InvalidRequest,
    /// No connection could be made: name resolution, TCP connect or TLS handshake.
    Connect,
    /// The call did not complete within its timeout.
    Timeout,
    /// The connection failed or closed before the response was complete.
    Connection,
    /// The response was not valid HTTP/1.1 or broke a size limit.
    Protocol,
}

impl CalloutFailureKind {
    /// A short stable name for logs and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            CalloutFailureKind::InvalidRequest => "invalid-request",
            CalloutFailureKind::Connect => "connect",
            CalloutFailureKind::Timeout => "timeout",
            CalloutFailureKind::Connection => "connection",
            CalloutFailureKind::Protocol => "protocol",
        }
    }

    /// `context.LastError.Reason` for a `send-request` that failed this way.
    pub fn last_error_reason(self) -> &'static str {
        match self {
            CalloutFailureKind::InvalidRequest => "InvalidRequest",
            CalloutFailureKind::Connect | CalloutFailureKind::Connection => "ConnectionFailure",
            CalloutFailureKind::Timeout => "Timeout",
            CalloutFailureKind::Protocol => "InvalidResponse",
        }
    }
}

/// Where a callout goes: the connection to open and the request target to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutTarget {
    /// Scheme, host, port, Host value (`authority`) and pool key; `base_path` is empty.
    pub service: ServiceUrl,
    /// Request target in origin form (`/a/b?x=1`), `/` when the URL has no path,
    /// characters not allowed in a request target percent-encoded, fragment dropped.
    pub path_and_query: String,
}

impl CalloutTarget {
    /// Parses an absolute `http`/`https` URL (no user info; any fragment is dropped).
    pub fn parse(url: &str) -> Result<CalloutTarget, CalloutError> {
        let invalid = |reason: &'static str| CalloutError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let trimmed = url.trim_matches(|c: char| c.is_ascii_whitespace());
        let (scheme, rest) = trimmed
            .split_once("://")
            .ok_or_else(|| invalid("missing scheme (http:// or https://)"))?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() {
            return Err(invalid("missing host"));
        }
        let service =
            ServiceUrl::parse(&format!("{scheme}://{authority}")).map_err(|e| match e {
                ConfigError::InvalidUrl { reason, .. } => invalid(reason),
                _ => invalid("not a usable URL"),
            })?;
        let tail = tail.split_once('#').map_or(tail, |(before, _)| before);
        let mut path_and_query = String::with_capacity(tail.len() + 1);
        if !tail.starts_with('/') {
            path_and_query.push('/');
        }
        encode_target(tail, &mut path_and_query);
        Ok(CalloutTarget {
            service,
            path_and_query,
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> Scheme {
        self.service.scheme
    }

    /// Host to connect to (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.service.host
    }

    /// Port to connect to.
    pub fn port(&self) -> u16 {
        self.service.port
    }

    /// `scheme://host:port`: connections to the same key are interchangeable.
    pub fn pool_key(&self) -> &Arc<str> {
        &self.service.pool_key
    }
}

/// Appends `text` with every byte that may not appear in a request target
/// (RFC 3986 pchar, `/` and `?`) percent-encoded; a `%` already starting an escape
/// is kept.
fn encode_target(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let keep = b.is_ascii_alphanumeric()
            || b"-._~!$&'()*+,;=:@/?".contains(&b)
            || (b == b'%'
                && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit));
        if keep {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// Size limits on a callout's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalloutLimits {
    /// Largest response head (each interim head counts on its own).
    pub max_head_bytes: usize,
    /// Most header fields in a response head.
    pub max_headers: usize,
    /// Largest response body (after chunked decoding).
    pub max_body_bytes: u64,
    /// Largest trailer section of a chunked body (trailers are read and dropped).
    pub max_trailer_bytes: usize,
    /// Most interim (1xx) responses skipped before the final one.
    pub max_interim: usize,
}

impl Default for CalloutLimits {
    fn default() -> Self {
        CalloutLimits {
            max_head_bytes: 64 * 1024,
            max_headers: 256,
            max_body_bytes: 8 * 1024 * 1024,
            max_trailer_bytes: 8 * 1024,
            max_interim: 16,
        }
    }
}

/// A finished exchange: the response and whether its connection may carry another.
#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    /// The final response, body buffered (`Some`, possibly empty).
    pub response: Response,
    /// The connection is clean and kept alive: it may go back to the pool.
    pub reusable: bool,
}

/// One request/response exchange on one connection.
#[derive(Debug)]
pub struct CalloutExchange {
    method: http::Method,
    limits: CalloutLimits,
    /// The whole request: head and body.
    request: Bytes,
    /// Bytes of `request` written so far.
    written: usize,
    /// Response bytes received and not yet consumed.
    input: BytesMut,
    /// How far a response head in `input` has been scanned (linear parsing of a
    /// head that arrives in pieces).
    scan: HeadScanner,
    /// Any response byte has arrived.
    received: bool,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Waiting for the final response head; interim heads skipped so far.
    Head { interim: usize },
    /// Reading the body of `head`.
    Body {
        head: Box<ResponseHead>,
        decoder: BodyDecoder,
        body: BytesMut,
    },
    /// Completed or failed: nothing more happens.
    Done,
}

impl CalloutExchange {
    /// Encodes `request` for `target`: the request line with the target's path and
    /// query, `Host` (the request's own if it has one, else the URL's authority), the
    /// request's fields except hop-by-hop ones and framing, `Content-Length` (when
    /// there is a body, or for methods that expect one), `Connection: keep-alive`.
    pub fn new(
        request: &CalloutRequest,
        target: &CalloutTarget,
        limits: CalloutLimits,
    ) -> Result<CalloutExchange, CalloutError> {
        let method = http::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| CalloutError::InvalidMethod(request.method.clone()))?;
        let length = request.body.len().to_string();
        let mut host: Option<&[u8]> = None;
        let mut fields: Vec<(&[u8], &[u8])> = Vec::with_capacity(request.headers.len() + 3);
        fields.push((&b"Host"[..], &b""[..]));
        for (name, value) in &request.headers {
            let value = check_field(name, value)?;
            let n = name.as_bytes();
            if n.eq_ignore_ascii_case(b"host") {
                host.get_or_insert(value);
            } else if !(is_hop_by_hop(n) || n.eq_ignore_ascii_case(b"content-length")) {
                fields.push((n, value));
            }
        }
        fields[0].1 = host.unwrap_or(target.service.authority.as_bytes());
        let expects_body = !matches!(
            method,
            http::Method::GET
                | http::Method::HEAD
                | http::Method::DELETE
                | http::Method::OPTIONS
                | http::Method::TRACE
                | http::Method::CONNECT
        );
        if !request.body.is_empty() || expects_body {
            fields.push((&b"Content-Length"[..], length.as_bytes()));
        }
        fields.push((&b"Connection"[..], &b"keep-alive"[..]));
        let mut out = BytesMut::new();
        write_request_head(
            &method,
            target.path_and_query.as_bytes(),
            Version::Http11,
            &fields,
            &mut out,
        );
        out.extend_from_slice(&request.body);
        Ok(CalloutExchange {
            method,
            limits,
            request: out.freeze(),
            written: 0,
            input: BytesMut::new(),
            scan: HeadScanner::new(),
            received: false,
            state: State::Head { interim: 0 },
        })
    }

    /// Request bytes still to write (empty once all are written).
    pub fn pending(&self) -> &[u8] {
        self.request.get(self.written..).unwrap_or_default()
    }

    /// `n` bytes of [`pending`](Self::pending) were written.
    pub fn written(&mut self, n: usize) {
        self.written = self.written.saturating_add(n).min(self.request.len());
    }

    /// Whether the whole request has been written.
    pub fn request_written(&self) -> bool {
        self.written == self.request.len()
    }

    /// Whether any response byte has arrived.
    pub fn received_any(&self) -> bool {
        self.received
    }

    /// Whether the exchange completed or failed.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether, after this exchange failed on a connection taken from the pool,
    /// the call may be made again on a new connection: nothing of a response
    /// arrived (the server most likely closed the idle connection) and the method
    /// is idempotent, so a request the server did see is safe to repeat.
    pub fn may_retry_on_new_connection(&self) -> bool {
        !self.received && self.method.is_idempotent()
    }

    /// Takes response bytes; an empty `data` means the connection reached end of
    /// stream. `Ok(Some)` once, when the response is complete; `Ok(None)` while more
    /// is needed (never at end of stream unless already done). After `Some` or an
    /// error every call returns `Ok(None)`.
    pub fn handle_data(&mut self, data: &[u8]) -> Result<Option<Completed>, CalloutError> {
        if self.is_done() {
            return Ok(None);
        }
        let eof = data.is_empty();
        if !eof {
            self.received = true;
            self.input.extend_from_slice(data);
        }
        let result = self.advance(eof);
        if !matches!(result, Ok(None)) {
            self.state = State::Done;
        }
        result
    }

    fn advance(&mut self, eof: bool) -> Result<Option<Completed>, CalloutError> {
        loop {
            match &mut self.state {
                State::Done => return Ok(None),
                State::Head { interim } => {
                    let limits = Limits {
                        max_head_bytes: self.limits.max_head_bytes,
                        max_headers: self.limits.max_headers,
                        max_body_bytes: None,
                        max_trailer_bytes: self.limits.max_trailer_bytes,
                    };
                    let parsed =
                        self.scan
                            .parse_response(&mut self.input, &limits, &self.method, eof);
                    let Some(head) = parsed? else {
                        if !eof {
                            return Ok(None);
                        }
                        return Err(if self.received {
                            CalloutError::Response(CodecError::Truncated)
                        } else {
                            CalloutError::NoResponse
                        });
                    };
                    match head.status {
                        101 => return Err(CalloutError::UnexpectedUpgrade),
                        100..=199 => {
                            *interim += 1;
                            if *interim > self.limits.max_interim {
                                return Err(CalloutError::TooManyInterim(self.limits.max_interim));
                            }
                        }
                        _ => {
                            let capacity = match head.framing {
                                BodyFraming::Length(n) => n.min(self.limits.max_body_bytes),
                                _ => 0,
                            };
                            let decoder = BodyDecoder::new(
                                head.framing,
                                Some(self.limits.max_body_bytes),
                                self.limits.max_trailer_bytes,
                            );
                            self.state = State::Body {
                                head: Box::new(head),
                                decoder,
                                body: BytesMut::with_capacity(
                                    usize::try_from(capacity).unwrap_or(0),
                                ),
                            };
                        }
                    }
                }
                State::Body {
                    head,
                    decoder,
                    body,
                } => {
                    let event = match decoder.decode(&mut self.input)? {
                        Some(event) => event,
                        None if eof => decoder.finish_on_eof()?,
                        None => return Ok(None),
                    };
                    match event {
                        BodyEvent::Data(data) => body.extend_from_slice(&data),
                        BodyEvent::End { .. } => {
                            let reusable = head.keep_alive
                                && !eof
                                && self.input.is_empty()
                                && self.written == self.request.len();
                            let response = to_response(head, std::mem::take(body).freeze());
                            return Ok(Some(Completed { response, reusable }));
                        }
                    }
                }
            }
        }
    }
}

/// A parsed head and its body as a policy `Response`: fields kept in order except
/// Transfer-Encoding (the body is no longer in that coding).
fn to_response(head: &ResponseHead, body: Bytes) -> Response {
    let mut headers = Headers::new();
    for (name, value) in head.header_pairs() {
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            continue;
        }
        headers.append(
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        );
    }
    Response {
        status: head.status,
        reason: String::from_utf8_lossy(head.reason()).into_owned(),
        headers,
        body: Some(body),
    }
}

/// Checks a field to send; its value without surrounding whitespace.
fn check_field<'a>(name: &str, value: &'a str) -> Result<&'a [u8], CalloutError> {
    let fail = |reason| CalloutError::InvalidHeader {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(fail("empty name"));
    }
    if !name.bytes().all(is_tchar) {
        return Err(fail("name is not a token"));
    }
    let value = value.trim_matches([' ', '\t']);
    if !value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
    {
        return Err(fail("value has a control character"));
    }
    Ok(value.as_bytes())
}

/// `tchar` of RFC 9110 5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

// ---------------------------------------------------------------------------
// OpenID key sets (`validate-jwt` `<openid-config url="...">`)
// ---------------------------------------------------------------------------

/// How often key sets are fetched again, and how failures back off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Time between two fetches of a source after a success.
    pub interval: Duration,
    /// Wait after the first failure; doubled after each further one.
    pub min_backoff: Duration,
    /// Longest wait after failures.
    pub max_backoff: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            interval: Duration::from_secs(3600),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl RefreshPolicy {
    /// The wait after `failures` consecutive failures (1 or more).
    pub fn backoff(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(31);
        self.min_backoff
            .saturating_mul(1u32 << shift)
            .min(self.max_backoff)
    }
}

#[derive(Debug)]
struct Source {
    url: String,
    /// When to fetch next; `None` while a fetch is in flight.
    due: Option<Instant>,
    failures: u32,
}

/// When to fetch each OpenID configuration: at once when it is new, every
/// `interval` after a success, after a capped exponential backoff after failures.
/// At most one fetch per source is in flight.
#[derive(Debug)]
pub struct RefreshSchedule {
    policy: RefreshPolicy,
    sources: Vec<Source>,
}

impl RefreshSchedule {
    /// A schedule without sources.
    pub fn new(policy: RefreshPolicy) -> Self {
        RefreshSchedule {
            policy,
            sources: Vec::new(),
        }
    }

    /// Replaces the set of sources: new ones are due at once, known ones keep
    /// their schedule, missing ones are forgotten (a fetch in flight for one of
    /// them is ignored when it reports back). Duplicates count once.
    pub fn set_sources<I, S>(&mut self, urls: I, now: Instant)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut next: Vec<Source> = Vec::new();
        for url in urls {
            let url = url.into();
            if next.iter().any(|s| s.url == url) {
                continue;
            }
            match self.sources.iter().position(|s| s.url == url) {
                Some(i) => next.push(self.sources.swap_remove(i)),
                None => next.push(Source {
                    url,
                    due: Some(now),
                    failures: 0,
                }),
            }
        }
        self.sources = next;
    }

    /// The sources, in the order given.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().map(|s| s.url.as_str())
    }

    /// A source due for a fetch at `now`, marked in flight until its result is
    /// reported with [`handle_success`](Self::handle_success) or
    /// [`handle_failure`](Self::handle_failure).
    pub fn poll_due(&mut self, now: Instant) -> Option<String> {
        let source = self
            .sources
            .iter_mut()
            .find(|s| s.due.is_some_and(|due| due <= now))?;
        source.due = None;
        Some(source.url.clone())
    }

    /// When the next source falls due (`None`: nothing to wait for).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sources.iter().filter_map(|s| s.due).min()
    }

    /// The fetch of `url` succeeded; `false` if the source is no longer wanted
    /// (its keys should then be dropped, not installed).
    pub fn handle_success(&mut self, url: &str, now: Instant) -> bool {
        let interval = self.policy.interval;
        match self.in_flight(url) {
            Some(source) => {
                source.failures = 0;
                source.due = Some(now + interval);
                true
            }
            None => false,
        }
    }

    /// The fetch of `url` failed; the wait before the next try (`None` if the
    /// source is no longer wanted).
    pub fn handle_failure(&mut self, url: &str, now: Instant) -> Option<Duration> {
        let policy = self.policy;
        let source = self.in_flight(url)?;
        source.failures = source.failures.saturating_add(1);
        let wait = policy.backoff(source.failures);
        source.due = Some(now + wait);
        Some(wait)
    }

    fn in_flight(&mut self, url: &str) -> Option<&mut Source> {
        self.sources
            .iter_mut()
            .find(|s| s.url == url && s.due.is_none())
    }
}

/// Why an OpenID configuration or key set fetch did not give a key set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// A document was answered with a status other than 2xx.
    #[error("{what} answered with status {status}")]
    Status {
        /// Which document.
        what: &'static str,
        /// The status.
        status: u16,
    },
    /// A document is not the JSON expected.
    #[error("{what} is not valid: {reason}")]
    Invalid {
        /// Which document.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Largest key set or configuration document accepted.
pub const MAX_DISCOVERY_DOCUMENT: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FetchStage {
    Config,
    KeySet,
    Done,
}

/// What one OpenID configuration gave: its issuer and its key set. Both are
/// installed together, so a token is never checked against the keys of one
/// fetch and the issuer of another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedKeySet {
    /// The configuration's `issuer` (`None`: the document names none, and then
    /// only issuers the policy lists are accepted).
    pub issuer: Option<String>,
    /// The key set document (a JSON object with a `keys` array).
    pub jwks: Bytes,
}

/// What to do next in a key set fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySetStep {
    /// Perform this request and hand its response to `handle_response`.
    Fetch(CalloutRequest),
    /// The configuration's issuer and key set.
    Done(FetchedKeySet),
}

/// Fetching one key set: the OpenID configuration document, then the `jwks_uri`
/// it names.
#[derive(Debug)]
pub struct KeySetFetch {
    config_url: String,
    timeout: Duration,
    stage: FetchStage,
    /// The issuer the configuration document named.
    issuer: Option<String>,
}

impl KeySetFetch {
    /// A fetch starting at the OpenID configuration `config_url`, each request
    /// limited to `timeout`.
    pub fn new(config_url: &str, timeout: Duration) -> Self {
        KeySetFetch {
            config_url: config_url.to_owned(),
            timeout,
            stage: FetchStage::Config,
            issuer: None,
        }
    }

    /// The first request: the configuration document.
    pub fn start(&self) -> CalloutRequest {
        json_get(&self.config_url, self.timeout)
    }

    /// Takes the response to the last request: the next request, or the key set.
    pub fn handle_response(&mut self, response: &Response) -> Result<KeySetStep, DiscoveryError> {
        let stage = self.stage;
        let what = match stage {
            FetchStage::Config => "OpenID configuration",
            _ => "key set",
        };
        self.stage = FetchStage::Done;
        if !(200..300).contains(&response.status) {
            return Err(DiscoveryError::Status {
                what,
                status: response.status,
            });
        }
        let body = response.body.clone().unwrap_or_default();
        let invalid = |reason: String| DiscoveryError::Invalid { what, reason };
        if body.len() as u64 > MAX_DISCOVERY_DOCUMENT {
            return Err(invalid(format!(
                "larger than {MAX_DISCOVERY_DOCUMENT} bytes"
            )));
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
        match stage {
            FetchStage::Config => {
                let uri = doc
                    .get("jwks_uri")
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(|| invalid("no `jwks_uri` string".to_owned()))?;
                CalloutTarget::parse(uri).map_err(|e| invalid(e.to_string()))?;
                self.issuer = match doc.get("issuer") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(i)) if !i.trim().is_empty() => Some(i.clone()),
                    Some(_) => return Err(invalid("`issuer` is not a string".to_owned())),
                };
                self.stage = FetchStage::KeySet;
                Ok(KeySetStep::Fetch(json_get(uri, self.timeout)))
            }
            FetchStage::KeySet => {
                if !doc.get("keys").is_some_and(serde_json::Value::is_array) {
                    return Err(invalid("no `keys` array".to_owned()));
                }
                Ok(KeySetStep::Done(FetchedKeySet {
                    issuer: self.issuer.take(),
                    jwks: body,
                }))
            }
            FetchStage::Done => Err(invalid("the fetch is already over".to_owned())),
        }
    }
}

fn json_get(url: &str, timeout: Duration) -> CalloutRequest {
    let mut request = CalloutRequest::get(url, timeout);
    request
        .headers
        .push(("Accept".to_owned(), "application/json".to_owned()));
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, url: &str) -> CalloutRequest {
        CalloutRequest {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Bytes::new(),
            timeout: Duration::from_secs(1),
        }
    }

    fn exchange(method: &str) -> CalloutExchange {
        let (_, ex) = request(method, "http://h/")
            .prepare(CalloutLimits::default())
            .unwrap();
        ex
    }

    fn feed(ex: &mut CalloutExchange, chunks: &[&[u8]]) -> Result<Option<Completed>, CalloutError> {
        let mut last = Ok(None);
        for chunk in chunks {
            last = ex.handle_data(chunk);
            if !matches!(last, Ok(None)) {
                return last;
            }
        }
        last
    }

    /// Feeds `text` one byte at a time, then end of stream if `eof`.
    fn bytewise(
        ex: &mut CalloutExchange,
        text: &[u8],
        eof: bool,
    ) -> Result<Completed, CalloutError> {
        for b in text {
            if let Some(done) = ex.handle_data(std::slice::from_ref(b))? {
                return Ok(done);
            }
        }
        if eof {
            if let Some(done) = ex.handle_data(b"")? {
                return Ok(done);
            }
        }
        panic!("incomplete");
    }

    fn written_all(ex: &mut CalloutExchange) {
        let n = ex.pending().len();
        ex.written(n);
    }

    // ---- targets ----

    #[test]
    fn targets() {
        let t = CalloutTarget::parse(
            "https://Login.Example.com/tenant/v2.0/.well-known/openid-configuration?x=1#frag",
        )
        .unwrap();
        assert_eq!(t.scheme(), Scheme::Https);
        assert_eq!(t.host(), "login.example.com");
        assert_eq!(t.port(), 443);
        assert_eq!(
            t.path_and_query,
            "/tenant/v2.0/.well-known/openid-configuration?x=1"
        );
        assert_eq!(&**t.pool_key(), "https://login.example.com:443");
        assert_eq!(t.service.authority, "login.example.com");

        let t = CalloutTarget::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((t.port(), t.path_and_query.as_str()), (8080, "/"));
        assert_eq!(t.service.authority, "127.0.0.1:8080");
        let t = CalloutTarget::parse("http://h?q=1").unwrap();
        assert_eq!(t.path_and_query, "/?q=1");
        let t = CalloutTarget::parse("http://[::1]:9/a").unwrap();
        assert_eq!((t.host(), t.port()), ("::1", 9));
        assert_eq!(&**t.pool_key(), "http://[::1]:9");
        let t = CalloutTarget::parse("http://h#x").unwrap();
        assert_eq!(t.path_and_query, "/");
        let t = CalloutTarget::parse(" http://h/a b?c=d e&f=%41%zz\r\n\u{e9}").unwrap();
        assert_eq!(t.path_and_query, "/a%20b?c=d%20e&f=%41%25zz%0D%0A%C3%A9");
    }

    #[test]
    fn bad_urls() {
        for url in [
            "",
            "h/x",
            "ftp://h/x",
            "http://",
            "http:///x",
            "http://u@h/",
            "http://h:0/",
            "http://h:99999/",
            "http://h:x/",
            "http://a b/",
            "http://[::1/",
            "https://:443/",
        ] {
            let e = CalloutTarget::parse(url).unwrap_err();
            assert!(matches!(e, CalloutError::InvalidUrl { .. }), "{url}: {e}");
            assert_eq!(e.kind(), CalloutFailureKind::InvalidRequest);
            assert!(e.to_string().contains("invalid URL"), "{e}");
        }
    }

    // ---- request bytes ----

    #[test]
    fn request_bytes() {
        let mut req = request("POST", "http://api.example.com:8080/v1/x?y=1");
        req.headers = vec![
            ("X-Id".into(), " 7 ".into()),
            ("Content-Length".into(), "99".into()),
            ("Transfer-Encoding".into(), "chunked".into()),
            ("Connection".into(), "close".into()),
            ("Accept".into(), "*/*".into()),
        ];
        req.body = Bytes::from_static(b"hello");
        let (_, ex) = req.prepare(CalloutLimits::default()).unwrap();
        assert_eq!(
            ex.pending(),
            &b"POST /v1/x?y=1 HTTP/1.1\r\nHost: api.example.com:8080\r\nX-Id: 7\r\nAccept: */*\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"[..]
        );

        let ex = exchange("GET");
        assert_eq!(
            ex.pending(),
            &b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"[..]
        );
        // A body-carrying method says Content-Length: 0; a given Host wins.
        let mut req = request("PUT", "https://h:443");
        req.headers = vec![
            ("host".into(), "virtual".into()),
            ("Host".into(), "x".into()),
        ];
        let (_, ex) = req.prepare(CalloutLimits::default()).unwrap();
        assert_eq!(
            ex.pending(),
            &b"PUT / HTTP/1.1\r\nHost: virtual\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"[..]
        );
    }

    #[test]
    fn writing_progress() {
        let mut ex = exchange("GET");
        let total = ex.pending().len();
        assert!(!ex.request_written());
        ex.written(3);
        assert_eq!(ex.pending().len(), total - 3);
        assert!(ex.pending().starts_with(b" / HTTP/1.1"));
        ex.written(total);
        assert!(ex.pending().is_empty());
        assert!(ex.request_written());
    }

    #[test]
    fn bad_requests() {
        let mut req = request("GE T", "http://h/");
        assert!(matches!(
            req.prepare(CalloutLimits::default()),
            Err(CalloutError::InvalidMethod(_))
        ));
        req.method = String::new();
        assert!(matches!(
            req.prepare(CalloutLimits::default()),
            Err(CalloutError::InvalidMethod(_))
        ));
        for (name, value) in [
            ("X", "a\r\nInjected: 1"),
            ("X", "a\0"),
            ("", "v"),
            ("X Y", "v"),
            ("X:", "v"),
        ] {
            let mut req = request("GET", "http://h/");
            req.headers = vec![(name.into(), value.into())];
            let e = req.prepare(CalloutLimits::default()).unwrap_err();
            assert!(matches!(e, CalloutError::InvalidHeader { .. }), "{name:?}");
            assert_eq!(e.kind(), CalloutFailureKind::InvalidRequest);
        }
    }

    // ---- responses ----

    #[test]
    fn content_length_response() {
        let mut ex = exchange("GET");
        written_all(&mut ex);
        let done = bytewise(
            &mut ex,
            b"HTTP/1.1 200 Fine\r\nContent-Type: application/json\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 7\r\n\r\n{\"a\":1}",
            false,
        )
        .unwrap();
        assert!(done.reusable);
        let r = done.response;
        assert_eq!((r.status, r.reason.as_str()), (200, "Fine"));
        assert_eq!(r.body.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(r.headers.get_joined("x-a").as_deref(), Some("1,2"));
        assert_eq!(r.headers.get("content-length"), Some("7"));
        assert_eq!(r.headers.len(), 4);
        assert!(ex.is_done());
        assert_eq!(ex.handle_data(b"more"), Ok(None));
        assert_eq!(ex.handle_data(b""), Ok(None));
    }

    #[test]
    fn chunked_response() {
        let mut ex = exchange("GET");
        written_all(&mut ex);
        let text = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nT: 1\r\n\r\n";
        let done = bytewise(&mut ex, text, false).unwrap();
        assert!(done.reusable);
        assert_eq!(done.response.status, 201);
        assert_eq!(done.response.body.as_deref(), Some(&b"abcdefg"[..]));
        // Transfer-Encoding is dropped: the body is decoded.
        assert_eq!(done.response.headers.get("transfer-encoding"), None);
        assert_eq!(done.response.headers.get("x"), Some("y"));
        // All at once too.
        let mut ex = exchange("GET");
        written_all(&mut ex);
        let done = ex.handle_data(text).unwrap().unwrap();
        assert_eq!(done.response.body.as_deref(), Some(&b"abcdefg"[..]));
    }

    #[test]
    fn close_delimited_response() {
        let mut ex = exchange("GET");
        written_all(&mut ex);
        let done = bytewise(&mut ex, b"HTTP/1.1 200 OK\r\n\r\nuntil the end", true).unwrap();
        assert!(!done.reusable);
        assert_eq!(done.response.body.as_deref(), Some(&b"until the end"[..]));
        // HTTP/1.0 without length as well.
        let mut ex = exchange("GET");
        written_all(&mut ex);
        assert_eq!(ex.handle_data(b"HTTP/1.0 200 OK\r\n\r\nx"), Ok(None));
        let done = ex.handle_data(b"").unwrap().unwrap();
        assert!(!done.reusable);
        assert_eq!(done.response.body.as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn bodiless_responses() {
        for (method, text) in [
            ("GET", &b"HTTP/1.1 204 No Content\r\n\r\n"[..]),
            (
                "GET",
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n",
            ),
            ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
        ] {
            let mut ex = exchange(method);
            written_all(&mut ex);
            let done = ex.handle_data(text).unwrap().unwrap();
            assert!(done.reusable, "{method}");
            assert_eq!(done.response.body.as_deref(), Some(&b""[..]));
        }
    }

    #[test]
    fn interim_responses_are_skipped() {
        let mut ex = exchange("POST");
        written_all(&mut ex);
        let done = feed(
            &mut ex,
            &[
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(done.response.status, 200);
        assert_eq!(done.response.headers.get("link"), None);
        assert_eq!(done.response.body.as_deref(), Some(&b"ok"[..]));

        let mut ex = exchange("GET");
        let many = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(17);
        assert_eq!(ex.handle_data(&many), Err(CalloutError::TooManyInterim(16)));
        let mut ex = exchange("GET");
        let e = ex
            .handle_data(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n")
            .unwrap_err();
        assert_eq!(e, CalloutError::UnexpectedUpgrade);
        assert_eq!(e.kind(), CalloutFailureKind::Protocol);
    }

    #[test]
    fn reuse_rules() {
        // Connection: close.
        let mut ex = exchange("GET");
        written_all(&mut ex);
        let done = ex
            .handle_data(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!done.reusable);
        // Extra bytes after the response.
        let mut ex = exchange("GET");
        written_all(&mut ex);
        let done = ex
            .handle_data(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1")
            .unwrap()
            .unwrap();
        assert!(!done.reusable);
        assert_eq!(done.response.body.as_deref(), Some(&b"a"[..]));
        // Response before the request was fully written.
        let mut ex = exchange("GET");
        let done = ex
            .handle_data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!done.reusable);
        // HTTP/1.0 keep-alive is honoured.
        let mut ex = exchange("GET");
        written_all(&mut ex);
        let done = ex
            .handle_data(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(done.reusable);
        // Length body whose end comes with end of stream.
        let mut ex = exchange("GET");
        written_all(&mut ex);
        assert_eq!(
            ex.handle_data(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"),
            Ok(None)
        );
        assert_eq!(
            ex.handle_data(b"z")
                .unwrap()
                .unwrap()
                .response
                .body
                .as_deref(),
            Some(&b"z"[..])
        );
    }

    #[test]
    fn oversized_responses() {
        let limits = CalloutLimits {
            max_body_bytes: 4,
            max_head_bytes: 64,
            ..CalloutLimits::default()
        };
        let (_, mut ex) = request("GET", "http://h/").prepare(limits).unwrap();
        assert_eq!(
            ex.handle_data(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
            Err(CalloutError::Response(CodecError::BodyTooLarge(4)))
        );
        let (_, mut ex) = request("GET", "http://h/").prepare(limits).unwrap();
        assert_eq!(
            feed(&mut ex, &[b"HTTP/1.1 200 OK\r\n\r\nabc", b"de"]),
            Err(CalloutError::Response(CodecError::BodyTooLarge(4)))
        );
        let (_, mut ex) = request("GET", "http://h/").prepare(limits).unwrap();
        assert_eq!(
            ex.handle_data(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n"
            ),
            Err(CalloutError::Response(CodecError::BodyTooLarge(4)))
        );
        let (_, mut ex) = request("GET", "http://h/").prepare(limits).unwrap();
        let e = ex
            .handle_data(format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(64)).as_bytes())
            .unwrap_err();
        assert_eq!(e, CalloutError::Response(CodecError::HeadTooLarge(64)));
        assert_eq!(e.kind(), CalloutFailureKind::Protocol);
        assert!(ex.is_done());
        // The default limits: 64 KiB heads, 8 MiB bodies.
        let mut ex = exchange("GET");
        let head = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(60 * 1024));
        assert_eq!(ex.handle_data(head.as_bytes()), Ok(None));
        let mut ex = exchange("GET");
        assert_eq!(
            ex.handle_data(b"HTTP/1.1 200 OK\r\nContent-Length: 8388609\r\n\r\n"),
            Err(CalloutError::Response(CodecError::BodyTooLarge(
                8 * 1024 * 1024
            )))
        );
    }

    #[test]
    fn truncated_responses() {
        let mut ex = exchange("GET");
        assert!(ex.may_retry_on_new_connection());
        let e = ex.handle_data(b"").unwrap_err();
        assert_eq!(e, CalloutError::NoResponse);
        assert_eq!(e.kind(), CalloutFailureKind::Connection);
        assert!(ex.may_retry_on_new_connection());

        for text in [
            &b"HTTP/1.1 200 OK\r\nContent-Le"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        ] {
            let mut ex = exchange("GET");
            assert_eq!(ex.handle_data(text), Ok(None));
            assert!(!ex.may_retry_on_new_connection());
            let e = ex.handle_data(b"").unwrap_err();
            assert_eq!(e, CalloutError::Response(CodecError::Truncated));
            assert_eq!(e.kind(), CalloutFailureKind::Connection);
        }
        // POST is never repeated.
        assert!(!exchange("POST").may_retry_on_new_connection());
    }

    #[test]
    fn garbage_responses() {
        for text in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/2.0 200 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        ] {
            let mut ex = exchange("GET");
            let e = ex.handle_data(text).unwrap_err();
            assert!(matches!(e, CalloutError::Response(_)), "{text:?}: {e:?}");
            assert_eq!(e.kind(), CalloutFailureKind::Protocol);
            assert!(ex.is_done());
            assert_eq!(ex.handle_data(b""), Ok(None));
        }
    }

    // ---- key sets ----

    fn json(status: u16, body: &str) -> Response {
        Response {
            status,
            body: Some(Bytes::copy_from_slice(body.as_bytes())),
            ..Response::default()
        }
    }

    #[test]
    fn key_set_fetch() {
        let mut fetch = KeySetFetch::new(
            "https://idp/.well-known/openid-configuration",
            Duration::from_secs(5),
        );
        let first = fetch.start();
        assert_eq!(first.url, "https://idp/.well-known/openid-configuration");
        assert_eq!(first.method, "GET");
        assert_eq!(first.timeout, Duration::from_secs(5));
        let step = fetch
            .handle_response(&json(
                200,
                r#"{"issuer":"x","jwks_uri":"https://idp/keys"}"#,
            ))
            .unwrap();
        let KeySetStep::Fetch(next) = step else {
            panic!("{step:?}")
        };
        assert_eq!(next.url, "https://idp/keys");
        let step = fetch.handle_response(&json(200, r#"{"keys":[]}"#)).unwrap();
        assert_eq!(
            step,
            KeySetStep::Done(FetchedKeySet {
                issuer: Some("x".to_owned()),
                jwks: Bytes::from_static(br#"{"keys":[]}"#)
            })
        );
    }

    #[test]
    fn key_set_fetch_failures() {
        let start = || KeySetFetch::new("http://idp/c", Duration::from_secs(1));
        let e = start().handle_response(&json(404, "")).unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::Status {
                what: "OpenID configuration",
                status: 404
            }
        );
        for body in [
            "",
            "{",
            r#"{"jwks_uri":1}"#,
            r#"{"jwks_uri":"/relative"}"#,
            r#"{"jwks_uri":"http://idp/k","issuer":5}"#,
            "[]",
        ] {
            let e = start().handle_response(&json(200, body)).unwrap_err();
            assert!(matches!(e, DiscoveryError::Invalid { .. }), "{body}");
        }
        for body in ["<html>", r#"{"keys":{}}"#, r#"{"other":[]}"#] {
            let mut fetch = start();
            fetch
                .handle_response(&json(200, r#"{"jwks_uri":"http://idp/k"}"#))
                .unwrap();
            let e = fetch.handle_response(&json(200, body)).unwrap_err();
            assert!(
                matches!(
                    e,
                    DiscoveryError::Invalid {
                        what: "key set",
                        ..
                    }
                ),
                "{body}"
            );
        }
        let mut fetch = start();
        fetch
            .handle_response(&json(200, r#"{"jwks_uri":"http://idp/k"}"#))
            .unwrap();
        assert!(matches!(
            fetch.handle_response(&json(500, "")),
            Err(DiscoveryError::Status {
                what: "key set",
                status: 500
            })
        ));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RefreshPolicy::default();
        let secs: Vec<u64> = (1..=12).map(|n| p.backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(300));
    }
}
