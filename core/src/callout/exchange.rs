//! The call-out exchange: one request/response on one connection, as bytes in
//! and bytes out. Builds the request head, parses the response (interim
//! responses skipped, body framed and limited) and says whether the connection
//! may be reused.
//!
//! A [`Machine`]: the inputs are response bytes ([`CalloutExchange::handle_input`],
//! an empty slice at end of stream) and request bytes written
//! ([`CalloutExchange::written`]); the one output is the outcome (the completed
//! response, or why there is none), given once by `poll_output`. It has no
//! timers: the driver enforces the call's timeout.
//!
//! Invariants (checked by `check_invariants` after every input in debug builds):
//! no more request bytes are counted written than the request has; an outcome
//! waits only once the exchange is over; no more interim responses are skipped
//! than the limit allows; a body is read only after a response byte arrived,
//! and never grows past the body limit.

use bytes::{Bytes, BytesMut};

use super::{CalloutError, CalloutRequest, CalloutTarget};
use crate::http::encode::write_request_head;
use crate::http::hop::is_hop_by_hop;
use crate::http::{
    BodyDecoder, BodyEvent, BodyFraming, CodecError, HeadScanner, Headers, Limits, Response,
    ResponseHead, Version,
};
use crate::machine::{debug_check, Machine};

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
    /// How the exchange ended, until `poll_output` takes it.
    outcome: Option<Result<Completed, CalloutError>>,
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
            outcome: None,
        })
    }

    /// Request bytes still to write (empty once all are written).
    pub fn pending(&self) -> &[u8] {
        self.request.get(self.written..).unwrap_or_default()
    }

    /// `n` bytes of [`pending`](Self::pending) were written.
    pub fn written(&mut self, n: usize) {
        self.written = self.written.saturating_add(n).min(self.request.len());
        debug_check(self);
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
    /// stream. Once the response is complete or cannot be, the outcome waits in
    /// [`poll_output`](Machine::poll_output) (never later than end of stream);
    /// bytes after that are ignored.
    pub fn handle_input(&mut self, data: &[u8]) {
        if !self.is_done() {
            let eof = data.is_empty();
            if !eof {
                self.received = true;
                self.input.extend_from_slice(data);
            }
            let result = self.advance(eof);
            if !matches!(result, Ok(None)) {
                self.state = State::Done;
                self.outcome = result.transpose();
            }
        }
        debug_check(self);
    }

    /// [`handle_input`](Self::handle_input), then the outcome if there is one:
    /// `Ok(Some)` once, when the response is complete; `Ok(None)` while more is
    /// needed (never at end of stream unless already done). After `Some` or an
    /// error every call returns `Ok(None)`.
    pub fn handle_data(&mut self, data: &[u8]) -> Result<Option<Completed>, CalloutError> {
        self.handle_input(data);
        self.poll_output().transpose()
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

impl Machine for CalloutExchange {
    type Output = Result<Completed, CalloutError>;

    fn poll_output(&mut self) -> Option<Self::Output> {
        self.outcome.take()
    }

    fn poll_timeout(&self) -> Option<std::time::Instant> {
        // The driver enforces the call's timeout; the exchange has no timers.
        None
    }

    fn handle_timeout(&mut self, _now: std::time::Instant) {}

    fn check_invariants(&self) {
        assert!(
            self.written <= self.request.len(),
            "more request bytes written than the request has"
        );
        assert!(
            self.outcome.is_none() || self.is_done(),
            "an outcome waits only once the exchange is over"
        );
        match &self.state {
            State::Head { interim } => assert!(
                *interim <= self.limits.max_interim,
                "more interim responses skipped than allowed"
            ),
            State::Body { body, .. } => {
                assert!(self.received, "a body is read only after a response byte");
                assert!(
                    body.len() as u64 <= self.limits.max_body_bytes,
                    "the body grew past its limit"
                );
            }
            State::Done => {}
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::callout::CalloutFailureKind;
    use crate::http::Scheme;

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
}
