//! Request and response heads: incremental parsing on `httparse`, fields kept as offsets.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use smallvec::SmallVec;

use super::syntax::{list_elements, trim_ows};
use super::{BodyFraming, CodecError, Limits};

/// A byte range inside a head's `raw` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// The bytes this span covers in `raw`.
    pub fn of<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        &raw[self.start as usize..self.end as usize]
    }
}

/// One header field: name and value (value without surrounding whitespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderSpan {
    /// Field name as received.
    pub name: Span,
    /// Field value, leading and trailing whitespace removed.
    pub value: Span,
}

/// Header fields of a head; inline up to 32 so most requests do not allocate.
pub type Headers = SmallVec<[HeaderSpan; 32]>;

/// HTTP version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The head's bytes, from the request line to the empty line inclusive.
    pub raw: Bytes,
    /// Request method.
    pub method: http::Method,
    /// Path and query in origin form (`/a/b?x=1`); for an absolute-form target, the part
    /// after the authority (an empty span when there is none: `path_and_query()` then
    /// gives `/`); for `OPTIONS *`, `*`. Use the accessors rather than the span.
    pub path_and_query: Span,
    /// Authority of an absolute-form target (`http://host:port/...`), which overrides Host.
    pub target_authority: Option<Span>,
    /// HTTP version.
    pub version: Version,
    /// All header fields in order.
    pub headers: Headers,
    /// The value of the Host header, if any.
    pub host: Option<Span>,
    /// How the request body is delimited (`Empty`, `Length` or `Chunked`).
    pub framing: BodyFraming,
    /// Whether the client wants the connection kept open after this exchange
    /// (1.1: unless `Connection: close`; 1.0: only with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent (only meaningful with a body).
    pub expect_continue: bool,
    /// An `Expect` header with another expectation was sent (answer 417).
    pub expect_unsupported: bool,
}

impl RequestHead {
    /// Parses a request head from the front of `buf`.
    ///
    /// `Ok(None)`: incomplete, call again with more bytes (bytes may arrive one at a
    /// time). `Ok(Some(head))`: the head's bytes were split off `buf`, what follows it
    /// (body, pipelined requests) stays. Leading empty lines before a request line are
    /// skipped as RFC 9112 allows. Enforces `limits` (head size, header count), the
    /// RFC 9112 framing rules (Transfer-Encoding with Content-Length, differing
    /// Content-Length values, final coding not chunked, unknown codings -> 501),
    /// and rejects obs-fold, bare CR, whitespace before the colon, a missing or
    /// repeated Host in HTTP/1.1, and versions other than 1.0/1.1.
    pub fn parse(buf: &mut BytesMut, limits: &Limits) -> Result<Option<RequestHead>, CodecError> {
        parse_request(buf, limits)
    }

    /// Path and query bytes (`/a/b?x=1`); `/` for an absolute-form target without path.
    pub fn path_and_query(&self) -> &[u8] {
        let pq = self.path_and_query.of(&self.raw);
        // An absolute-form target without a path (`http://h`) has an empty span: the
        // `/` it stands for (RFC 9112 3.2.2) is not in `raw`.
        if pq.is_empty() {
            b"/"
        } else {
            pq
        }
    }

    /// Path without the query.
    pub fn path(&self) -> &[u8] {
        let pq = self.path_and_query();
        match memchr_q(pq) {
            Some(i) => &pq[..i],
            None => pq,
        }
    }

    /// The query without `?`, if there is one.
    pub fn query(&self) -> Option<&[u8]> {
        let pq = self.path_and_query();
        memchr_q(pq).map(|i| &pq[i + 1..])
    }

    /// The authority the request is for: an absolute-form target's, else Host's.
    pub fn authority(&self) -> Option<&[u8]> {
        self.target_authority.or(self.host).map(|s| s.of(&self.raw))
    }

    /// Name and value of every header field, in order.
    pub fn header_pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        self.headers
            .iter()
            .map(move |h| (h.name.of(&self.raw), h.value.of(&self.raw)))
    }

    /// Value of the first header field with this name (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_pairs()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
}

/// A parsed response head.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// The head's bytes, from the status line to the empty line inclusive.
    pub raw: Bytes,
    /// HTTP version.
    pub version: Version,
    /// Status code (100..=999).
    pub status: u16,
    /// Reason phrase (may be empty).
    pub reason: Span,
    /// All header fields in order.
    pub headers: Headers,
    /// How the body is delimited, given the request method and the status
    /// (HEAD, 1xx, 204 and 304 have none; no length and not chunked: close-delimited).
    pub framing: BodyFraming,
    /// Whether the server keeps the connection open after this response.
    pub keep_alive: bool,
}

impl ResponseHead {
    /// Parses a response head from the front of `buf`; same contract as
    /// [`RequestHead::parse`]. `request_method` decides framing (a response to HEAD
    /// has no body). A response with Transfer-Encoding and Content-Length is rejected
    /// (a gateway must not forward it). A Transfer-Encoding naming any coding other
    /// than chunked is `UnsupportedTransferCoding`: the gateway re-frames bodies and
    /// would otherwise pass on content still in that coding without saying so. A
    /// Transfer-Encoding without any coding means close-delimited, as RFC 9112 says
    /// for a final coding other than chunked.
    pub fn parse(
        buf: &mut BytesMut,
        limits: &Limits,
        request_method: &http::Method,
    ) -> Result<Option<ResponseHead>, CodecError> {
        parse_response(buf, limits, request_method)
    }

    /// Name and value of every header field, in order.
    pub fn header_pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        self.headers
            .iter()
            .map(move |h| (h.name.of(&self.raw), h.value.of(&self.raw)))
    }

    /// Value of the first header field with this name (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_pairs()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The reason phrase bytes.
    pub fn reason(&self) -> &[u8] {
        self.reason.of(&self.raw)
    }
}

fn memchr_q(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'?')
}

/// Header slots httparse fills on the stack; a larger `max_headers` uses the heap.
const STACK_HEADER_SLOTS: usize = 128;

/// Uninitialised header slots for httparse, which fills them without reading them.
type Slot<'b> = MaybeUninit<httparse::Header<'b>>;

/// Exactly `n` slots: from `stack` when they fit, else from `heap` (rare limits only).
fn header_slots<'a, 'b>(
    stack: &'a mut [Slot<'b>; STACK_HEADER_SLOTS],
    heap: &'a mut Vec<Slot<'b>>,
    n: usize,
) -> &'a mut [Slot<'b>] {
    if n <= STACK_HEADER_SLOTS {
        &mut stack[..n]
    } else {
        heap.resize_with(n, MaybeUninit::uninit);
        &mut heap[..]
    }
}

/// The part of `buf` given to httparse. Capping it at the head limit makes the
/// outcome depend only on the first `max_head_bytes` bytes, so feeding the same
/// bytes in any number of pieces ends in the same result.
fn head_window<'a>(buf: &'a [u8], limits: &Limits) -> (&'a [u8], usize) {
    // Spans are u32 offsets, so no head may be larger than that.
    let max = limits.max_head_bytes.min(u32::MAX as usize);
    (&buf[..buf.len().min(max)], max)
}

/// Number of bytes of empty lines before the start line (RFC 9112 2.2 lets a
/// server skip them). httparse has already checked they are CRLF or LF.
fn leading_empty_lines(window: &[u8]) -> usize {
    window
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// `s` as a span of the head whose first byte is at address `base` and which is
/// `len` bytes long; `None` if `s` is not inside it (never happens with httparse,
/// but an offset is never trusted blindly).
fn span_in(base: usize, len: usize, s: &[u8]) -> Option<Span> {
    let start = (s.as_ptr() as usize).checked_sub(base)?;
    let end = start.checked_add(s.len())?;
    if end > len {
        return None;
    }
    Some(Span {
        start: u32::try_from(start).ok()?,
        end: u32::try_from(end).ok()?,
    })
}

/// Maps an httparse error to ours; `version` is the text where the version is
/// expected, used to tell an unknown version (505) from garbage (400).
fn map_parse_error(err: httparse::Error, version: &[u8], limits: &Limits) -> CodecError {
    match err {
        httparse::Error::TooManyHeaders => CodecError::TooManyHeaders(limits.max_headers),
        httparse::Error::Version => classify_version(version),
        // httparse rejects a field line starting with whitespace (obs-fold) and
        // whitespace before the colon as bad name bytes.
        httparse::Error::HeaderName => {
            CodecError::Malformed("invalid field name, whitespace before colon, or obs-fold")
        }
        httparse::Error::HeaderValue => {
            CodecError::Malformed("invalid byte (control or bare CR) in field value")
        }
        httparse::Error::NewLine => CodecError::Malformed("invalid line ending (bare CR)"),
        httparse::Error::Status => CodecError::Malformed("invalid status line"),
        httparse::Error::Token => CodecError::Malformed("invalid request line"),
    }
}

/// `HTTP/` followed by a digit is a version we do not speak (505); anything else
/// in the version position is a malformed start line. httparse reports the error
/// as soon as the first wrong byte arrives, and this decision only looks at the
/// bytes up to that one, so it is the same however the input was split.
fn classify_version(v: &[u8]) -> CodecError {
    let known = v.starts_with(b"HTTP/1.0") || v.starts_with(b"HTTP/1.1");
    if v.len() >= 6 && v.starts_with(b"HTTP/") && v[5].is_ascii_digit() && !known {
        CodecError::UnsupportedVersion
    } else {
        CodecError::Malformed("invalid HTTP version")
    }
}

/// The version text of a request line (after the second space), for error mapping.
fn request_line_version(line: &[u8]) -> &[u8] {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let _method = parts.next();
    let _target = parts.next();
    parts.next().unwrap_or(b"")
}

/// Bytes allowed in an authority (RFC 3986 reg-name, IP literal, port), as a table:
/// it is checked for every byte of every Host value. `@` is left out: userinfo in a
/// request target or Host is rejected (RFC 9110 4.2.4).
static AUTHORITY: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
                    | b'%'
            );
        i += 1;
    }
    t
};

/// Whether `b` may appear in an authority.
#[inline]
fn is_authority_byte(b: u8) -> bool {
    AUTHORITY[b as usize]
}

/// The part after `http://` or `https://` (scheme case-insensitive), if it is one.
fn strip_http_scheme(target: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&target[scheme.len()..]);
        }
    }
    None
}

/// Parses a Content-Length value: one or more comma-separated `1*DIGIT` elements.
fn parse_decimal(s: &[u8]) -> Result<u64, &'static str> {
    if s.is_empty() {
        return Err("empty value");
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return Err("not a decimal number");
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or("value too large")?;
    }
    Ok(n)
}

/// What the header fields say about routing, framing and connection handling,
/// gathered in one pass over the fields.
#[derive(Default)]
struct FieldScan {
    host_count: u32,
    host: Option<Span>,
    host_invalid: bool,
    cl_seen: bool,
    cl: Option<u64>,
    cl_invalid: Option<&'static str>,
    te_present: bool,
    chunked_count: u32,
    last_is_chunked: bool,
    other_coding: bool,
    conn_close: bool,
    conn_keep_alive: bool,
    expect_continue: bool,
    expect_other: bool,
}

impl FieldScan {
    /// Takes note of one field whose value is `value` (at `value_span` in the head).
    fn field(&mut self, name: &[u8], value: &[u8], value_span: Span) {
        // Dispatch on length first: most fields are none of these, and a length
        // compare rejects them without looking at the bytes.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                self.host_count += 1;
                self.host = Some(value_span);
                self.host_invalid |= !value.iter().all(|&b| is_authority_byte(b));
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                for e in list_elements(value) {
                    if e.eq_ignore_ascii_case(b"100-continue") {
                        self.expect_continue = true;
                    } else {
                        self.expect_other = true;
                    }
                }
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for e in list_elements(value) {
                    if e.eq_ignore_ascii_case(b"close") {
                        self.conn_close = true;
                    } else if e.eq_ignore_ascii_case(b"keep-alive") {
                        self.conn_keep_alive = true;
                    }
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => self.content_length(value),
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                self.te_present = true;
                for e in list_elements(value) {
                    if e.eq_ignore_ascii_case(b"chunked") {
                        self.chunked_count += 1;
                        self.last_is_chunked = true;
                    } else {
                        self.other_coding = true;
                        self.last_is_chunked = false;
                    }
                }
            }
            _ => {}
        }
    }

    /// One Content-Length line: a list of identical decimal values is accepted
    /// (RFC 9110 8.6), across lines too; any difference is an error.
    fn content_length(&mut self, value: &[u8]) {
        self.cl_seen = true;
        if self.cl_invalid.is_some() {
            return;
        }
        // Split by hand rather than with list_elements: an empty element is an
        // error here, not something to skip.
        for elem in value.split(|&b| b == b',') {
            match parse_decimal(trim_ows(elem)) {
                Ok(n) => match self.cl {
                    Some(prev) if prev != n => {
                        self.cl_invalid = Some("conflicting values");
                        return;
                    }
                    _ => self.cl = Some(n),
                },
                Err(why) => {
                    self.cl_invalid = Some(why);
                    return;
                }
            }
        }
    }

    /// Keep-alive as the message's own version and Connection field decide it.
    fn keep_alive(&self, version: Version) -> bool {
        match version {
            Version::Http11 => !self.conn_close,
            Version::Http10 => self.conn_keep_alive && !self.conn_close,
        }
    }

    /// Content-Length framing, once Transfer-Encoding is known to be absent.
    fn length_framing(&self) -> Result<Option<BodyFraming>, CodecError> {
        if let Some(why) = self.cl_invalid {
            return Err(CodecError::InvalidContentLength(why));
        }
        Ok(self.cl.map(|n| {
            if n == 0 {
                BodyFraming::Empty
            } else {
                BodyFraming::Length(n)
            }
        }))
    }

    /// Request body framing (RFC 9112 6.3), refusing everything ambiguous.
    fn request_framing(&self, version: Version) -> Result<BodyFraming, CodecError> {
        if self.te_present {
            if version == Version::Http10 {
                // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
                return Err(CodecError::Malformed(
                    "Transfer-Encoding in an HTTP/1.0 request",
                ));
            }
            if self.cl_seen {
                return Err(CodecError::TransferEncodingWithContentLength);
            }
            if self.chunked_count != 1 || !self.last_is_chunked {
                return Err(CodecError::ChunkedNotLast);
            }
            if self.other_coding {
                return Err(CodecError::UnsupportedTransferCoding);
            }
            return Ok(BodyFraming::Chunked);
        }
        Ok(self.length_framing()?.unwrap_or(BodyFraming::Empty))
    }

    /// Response body framing for a response that may have a body.
    fn response_framing(&self, version: Version) -> Result<BodyFraming, CodecError> {
        if self.te_present {
            if version == Version::Http10 {
                return Err(CodecError::Malformed(
                    "Transfer-Encoding in an HTTP/1.0 response",
                ));
            }
            if self.cl_seen {
                return Err(CodecError::TransferEncodingWithContentLength);
            }
            if self.chunked_count > 1 {
                return Err(CodecError::ChunkedNotLast);
            }
            if self.other_coding {
                return Err(CodecError::UnsupportedTransferCoding);
            }
            return Ok(if self.last_is_chunked {
                BodyFraming::Chunked
            } else {
                BodyFraming::CloseDelimited
            });
        }
        Ok(self
            .length_framing()?
            .unwrap_or(BodyFraming::CloseDelimited))
    }
}

/// The spans of `fields` (in a head at address `base`, `len` bytes long) and what
/// they say about framing and connection handling.
#[inline(always)]
fn collect_fields(
    fields: &[httparse::Header<'_>],
    base: usize,
    len: usize,
) -> Result<(Headers, FieldScan), CodecError> {
    let mut scan = FieldScan::default();
    let mut outside = false;
    // `extend` from an exact-size iterator writes in place; pushing one by one
    // costs a capacity check and a call per field.
    let headers: Headers = fields
        .iter()
        .map(|h| {
            let (Some(name), Some(value)) = (
                span_in(base, len, h.name.as_bytes()),
                span_in(base, len, h.value),
            ) else {
                outside = true;
                return HeaderSpan {
                    name: Span::default(),
                    value: Span::default(),
                };
            };
            scan.field(h.name.as_bytes(), h.value, value);
            HeaderSpan { name, value }
        })
        .collect();
    if outside {
        return Err(CodecError::Malformed("field outside head"));
    }
    Ok((headers, scan))
}

/// The work of [`RequestHead::parse`]; nothing is taken from `buf` unless a head is
/// returned.
///
/// The head is built in the final expression so that its inline header array is
/// written once, not moved through intermediate values.
#[inline(always)]
fn parse_request(buf: &mut BytesMut, limits: &Limits) -> Result<Option<RequestHead>, CodecError> {
    let (window, max_head) = head_window(buf, limits);
    let mut stack = [const { MaybeUninit::uninit() }; STACK_HEADER_SLOTS];
    let mut heap = Vec::new();
    let slots = header_slots(&mut stack, &mut heap, limits.max_headers);
    let mut req = httparse::Request::new(&mut []);
    let total = match req.parse_with_uninit_headers(window, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            return Err(CodecError::HeadTooLarge(limits.max_head_bytes));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => {
            let line = &window[leading_empty_lines(window)..];
            return Err(map_parse_error(err, request_line_version(line), limits));
        }
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(CodecError::Malformed("incomplete request line"));
    };
    let skip = leading_empty_lines(window);
    let len = total
        .checked_sub(skip)
        .ok_or(CodecError::Malformed("empty request line"))?;
    let base = window.as_ptr() as usize + skip;
    let span = |s: &[u8]| span_in(base, len, s).ok_or(CodecError::Malformed("field outside head"));

    let version = match minor {
        0 => Version::Http10,
        1 => Version::Http11,
        _ => return Err(CodecError::UnsupportedVersion),
    };
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| CodecError::Malformed("invalid method"))?;
    if method == http::Method::CONNECT {
        // Authority-form targets and tunnels are not something this gateway does.
        return Err(CodecError::Malformed("CONNECT is not supported"));
    }

    let target = target.as_bytes();
    if target.contains(&b'#') {
        return Err(CodecError::Malformed("fragment in request target"));
    }
    let (path_and_query, target_authority) = if target.first() == Some(&b'/') {
        (span(target)?, None)
    } else if target == b"*" {
        if method != http::Method::OPTIONS {
            return Err(CodecError::Malformed(
                "asterisk-form target without OPTIONS",
            ));
        }
        (span(target)?, None)
    } else if let Some(rest) = strip_http_scheme(target) {
        let auth_len = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        let (authority, path) = rest.split_at(auth_len);
        if authority.is_empty() || !authority.iter().all(|&b| is_authority_byte(b)) {
            return Err(CodecError::Malformed("invalid authority in request target"));
        }
        if path.first() == Some(&b'?') {
            // `http://h?q` would need a `/` inserted before the query, which a span
            // into `raw` cannot express; such targets are vanishingly rare.
            return Err(CodecError::Malformed(
                "absolute-form target with query but no path",
            ));
        }
        (span(path)?, Some(span(authority)?))
    } else {
        return Err(CodecError::Malformed("invalid request target"));
    };

    let (headers, scan) = collect_fields(req.headers, base, len)?;

    // RFC 9112 3.2: 400 for a missing Host in 1.1, several Host lines, a bad Host.
    if scan.host_count > 1 {
        return Err(CodecError::Malformed("more than one Host field"));
    }
    if scan.host_count == 0 && version == Version::Http11 {
        return Err(CodecError::Malformed("missing Host field"));
    }
    if scan.host_invalid {
        return Err(CodecError::Malformed("invalid Host field"));
    }
    let framing = scan.request_framing(version)?;

    let keep_alive = scan.keep_alive(version);
    // Done with the borrowed window: the head's bytes can now be split off.
    drop(heap);
    buf.advance(skip);
    let raw = buf.split_to(len).freeze();
    Ok(Some(RequestHead {
        raw,
        method,
        path_and_query,
        target_authority,
        version,
        headers,
        host: scan.host,
        framing,
        keep_alive,
        // RFC 9110 10.1.1: a 100-continue expectation in HTTP/1.0 is ignored.
        expect_continue: scan.expect_continue && version == Version::Http11,
        expect_unsupported: scan.expect_other,
    }))
}

/// The work of [`ResponseHead::parse`], shaped like [`parse_request`].
#[inline(always)]
fn parse_response(
    buf: &mut BytesMut,
    limits: &Limits,
    request_method: &http::Method,
) -> Result<Option<ResponseHead>, CodecError> {
    let (window, max_head) = head_window(buf, limits);
    let mut stack = [const { MaybeUninit::uninit() }; STACK_HEADER_SLOTS];
    let mut heap = Vec::new();
    let slots = header_slots(&mut stack, &mut heap, limits.max_headers);
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, window, slots);
    let total = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            return Err(CodecError::HeadTooLarge(limits.max_head_bytes));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => {
            let line = &window[leading_empty_lines(window)..];
            return Err(map_parse_error(err, line, limits));
        }
    };
    let (Some(minor), Some(status)) = (resp.version, resp.code) else {
        return Err(CodecError::Malformed("incomplete status line"));
    };
    let skip = leading_empty_lines(window);
    let head_bytes = window
        .get(skip..total)
        .ok_or(CodecError::Malformed("empty status line"))?;
    let len = head_bytes.len();
    let base = head_bytes.as_ptr() as usize;

    let version = match minor {
        0 => Version::Http10,
        1 => Version::Http11,
        _ => return Err(CodecError::UnsupportedVersion),
    };
    if status < 100 {
        return Err(CodecError::Malformed("status code below 100"));
    }
    // httparse hands back a static "" for an empty or non-ASCII reason, so the span
    // is found here: `HTTP/1.1 200 ` is 13 bytes, the reason runs to the line end.
    let line_end = head_bytes
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(0);
    let reason = if line_end > 13 && head_bytes[12] == b' ' {
        Span {
            start: 13,
            end: line_end as u32,
        }
    } else {
        Span { start: 12, end: 12 }
    };

    let (headers, scan) = collect_fields(resp.headers, base, len)?;

    let bodiless = (100..200).contains(&status)
        || status == 204
        || status == 304
        || *request_method == http::Method::HEAD;
    let framing = if bodiless {
        BodyFraming::Empty
    } else {
        scan.response_framing(version)?
    };
    let keep_alive = scan.keep_alive(version) && framing != BodyFraming::CloseDelimited;
    drop(heap);
    buf.advance(skip);
    let raw = buf.split_to(len).freeze();
    Ok(Some(ResponseHead {
        raw,
        version,
        status,
        reason,
        headers,
        framing,
        keep_alive,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(s: &[u8], limits: &Limits) -> Result<Option<RequestHead>, CodecError> {
        let mut buf = BytesMut::from(s);
        RequestHead::parse(&mut buf, limits)
    }

    fn parse(s: &[u8]) -> Result<Option<RequestHead>, CodecError> {
        parse_with(s, &Limits::default())
    }

    fn ok(s: &[u8]) -> RequestHead {
        parse(s).unwrap().expect("complete head")
    }

    fn err(s: &[u8]) -> CodecError {
        parse(s).expect_err("an error")
    }

    fn malformed(s: &[u8]) {
        match parse(s) {
            Err(CodecError::Malformed(_)) => {}
            other => panic!(
                "{:?}: expected Malformed, got {other:?}",
                String::from_utf8_lossy(s)
            ),
        }
    }

    fn resp(s: &[u8], method: &http::Method) -> Result<Option<ResponseHead>, CodecError> {
        let mut buf = BytesMut::from(s);
        ResponseHead::parse(&mut buf, &Limits::default(), method)
    }

    fn resp_ok(s: &[u8]) -> ResponseHead {
        resp(s, &http::Method::GET).unwrap().expect("complete head")
    }

    fn resp_err(s: &[u8]) -> CodecError {
        resp(s, &http::Method::GET).expect_err("an error")
    }

    #[test]
    fn simple_get() {
        let text = b"GET /a/b?x=1&y HTTP/1.1\r\nHost: example.com:8080\r\nAccept:  */* \r\nX-Empty:\r\n\r\nNEXT";
        let mut buf = BytesMut::from(&text[..]);
        let h = RequestHead::parse(&mut buf, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..], b"NEXT");
        assert_eq!(&h.raw[..], &text[..text.len() - 4]);
        assert_eq!(h.method, http::Method::GET);
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.path_and_query(), b"/a/b?x=1&y");
        assert_eq!(h.path(), b"/a/b");
        assert_eq!(h.query(), Some(&b"x=1&y"[..]));
        assert_eq!(h.authority(), Some(&b"example.com:8080"[..]));
        assert_eq!(h.target_authority, None);
        assert_eq!(h.header("accept"), Some(&b"*/*"[..]));
        assert_eq!(h.header("x-empty"), Some(&b""[..]));
        assert_eq!(h.header("missing"), None);
        let pairs: Vec<_> = h.header_pairs().collect();
        assert_eq!(pairs[0], (&b"Host"[..], &b"example.com:8080"[..]));
        assert_eq!(pairs.len(), 3);
        assert_eq!(h.framing, BodyFraming::Empty);
        assert!(h.keep_alive);
        assert!(!h.expect_continue && !h.expect_unsupported);
    }

    #[test]
    fn incomplete_head_leaves_buffer_alone() {
        let text = b"GET / HTTP/1.1\r\nHost: a\r\n";
        let mut buf = BytesMut::from(&text[..]);
        assert!(matches!(
            RequestHead::parse(&mut buf, &Limits::default()),
            Ok(None)
        ));
        assert_eq!(&buf[..], &text[..]);
        assert!(matches!(parse(b""), Ok(None)));
        assert!(matches!(parse(b"\r\n"), Ok(None)));
    }

    #[test]
    fn one_byte_at_a_time() {
        let text = b"\r\nPOST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
        let mut buf = BytesMut::new();
        let mut head = None;
        for (i, &b) in text.iter().enumerate() {
            buf.extend_from_slice(&[b]);
            if let Some(h) = RequestHead::parse(&mut buf, &Limits::default()).unwrap() {
                assert_eq!(i, text.len() - 4, "complete exactly at the empty line");
                head = Some(h);
                break;
            }
        }
        let head = head.expect("parsed");
        assert_eq!(head.framing, BodyFraming::Length(3));
        assert_eq!(head.path_and_query(), b"/p");
        assert!(buf.is_empty());
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        let h = ok(b"\r\n\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(h.raw.starts_with(b"GET / HTTP/1.1\r\n"));
        assert_eq!(h.path_and_query(), b"/");
        assert_eq!(h.host.map(|s| s.of(&h.raw)), Some(&b"a"[..]));
        // A CR not followed by LF among them is a bare CR.
        malformed(b"\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[test]
    fn leading_empty_lines_count_toward_the_limit() {
        let limits = Limits {
            max_head_bytes: 40,
            ..Limits::default()
        };
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"; // 27 bytes
        assert!(parse_with(head, &limits).unwrap().is_some());
        let mut text = b"\r\n".repeat(7);
        text.extend_from_slice(head);
        assert_eq!(
            parse_with(&text, &limits).unwrap_err(),
            CodecError::HeadTooLarge(40)
        );
    }

    #[test]
    fn bare_lf_line_endings_are_accepted() {
        let h = ok(b"GET / HTTP/1.1\nHost: a\nX: y\n\n");
        assert_eq!(h.header("x"), Some(&b"y"[..]));
    }

    // ---- smuggling: framing ----

    #[test]
    fn transfer_encoding_with_content_length_is_refused() {
        let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(e, CodecError::TransferEncodingWithContentLength);
        assert_eq!(e.status(), 400);
        let e = err(b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(e, CodecError::TransferEncodingWithContentLength);
    }

    #[test]
    fn differing_content_lengths_are_refused() {
        let e =
            err(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
        assert_eq!(e, CodecError::InvalidContentLength("conflicting values"));
        assert_eq!(e.status(), 400);
        let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n");
        assert_eq!(e, CodecError::InvalidContentLength("conflicting values"));
    }

    #[test]
    fn identical_content_lengths_are_one() {
        let h = ok(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 , 5,5\r\nContent-Length: 5\r\n\r\n",
        );
        assert_eq!(h.framing, BodyFraming::Length(5));
        let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Length(7));
    }

    #[test]
    fn content_length_must_be_digits() {
        for bad in [
            &b"+5"[..],
            b"-1",
            b"5 5",
            b"0x10",
            b"5a",
            b"",
            b"5,",
            b",5",
            b"5,,5",
            b"1e3",
            b"\xd9\xa5", // Arabic-Indic digit five in UTF-8
        ] {
            let mut text = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ".to_vec();
            text.extend_from_slice(bad);
            text.extend_from_slice(b"\r\n\r\n");
            match parse(&text) {
                Err(CodecError::InvalidContentLength(_)) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn content_length_overflow() {
        let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n");
        assert_eq!(e, CodecError::InvalidContentLength("value too large"));
        let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Length(u64::MAX));
    }

    #[test]
    fn zero_length_or_no_framing_is_empty() {
        let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Empty);
        let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Empty);
    }

    #[test]
    fn chunked_framing() {
        for te in [
            &b"chunked"[..],
            b"Chunked",
            b"CHUNKED",
            b" chunked\t",
            b", chunked,",
        ] {
            let mut text = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ".to_vec();
            text.extend_from_slice(te);
            text.extend_from_slice(b"\r\n\r\n");
            assert_eq!(ok(&text).framing, BodyFraming::Chunked, "{te:?}");
        }
    }

    #[test]
    fn final_coding_must_be_chunked() {
        for te in [
            &b"gzip"[..],
            b"chunked, gzip",
            b"identity",
            b"",
            b"xchunked",
            b"chunked;a=b",
        ] {
            let mut text = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ".to_vec();
            text.extend_from_slice(te);
            text.extend_from_slice(b"\r\n\r\n");
            assert_eq!(
                parse(&text).unwrap_err(),
                CodecError::ChunkedNotLast,
                "{te:?}"
            );
        }
        let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(e, CodecError::ChunkedNotLast);
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn chunked_twice_is_refused() {
        let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n");
        assert_eq!(e, CodecError::ChunkedNotLast);
        let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(e, CodecError::ChunkedNotLast);
    }

    #[test]
    fn other_codings_are_not_implemented() {
        let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(e, CodecError::UnsupportedTransferCoding);
        assert_eq!(e.status(), 501);
        let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(e, CodecError::UnsupportedTransferCoding);
    }

    #[test]
    fn transfer_encoding_in_http10_is_faulty() {
        malformed(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    }

    // ---- smuggling: field syntax ----

    #[test]
    fn obs_fold_is_refused() {
        malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n ,chunked\r\n\r\n");
    }

    #[test]
    fn bare_cr_in_field_is_refused() {
        malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX:\rb\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX\r: b\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\nHost: a\r\n\rX: b\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n");
    }

    #[test]
    fn bare_cr_in_request_line_is_refused() {
        malformed(b"GET\r/ HTTP/1.1\r\nHost: a\r\n\r\n");
        malformed(b"GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n");
        malformed(b"GET / HTTP/1.1\rHost: a\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\rHost: a\r\n\r\n");
    }

    #[test]
    fn whitespace_before_colon_is_refused() {
        malformed(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n");
        malformed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n");
    }

    #[test]
    fn invalid_token_chars_are_refused() {
        malformed(b"GE(T / HTTP/1.1\r\nHost: a\r\n\r\n");
        malformed(b"GE\"T / HTTP/1.1\r\nHost: a\r\n\r\n");
        malformed(b" GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        malformed(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX@Y: b\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX(Y): b\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: b\r\n\r\n");
        // Extension methods made of token characters are fine.
        assert_eq!(
            ok(b"PURGE / HTTP/1.1\r\nHost: a\r\n\r\n").method.as_str(),
            "PURGE"
        );
    }

    #[test]
    fn control_chars_in_target_are_refused() {
        for c in [0u8, b'\t', 0x1f, 0x7f] {
            let mut text = b"GET /a".to_vec();
            text.push(c);
            text.extend_from_slice(b"b HTTP/1.1\r\nHost: a\r\n\r\n");
            malformed(&text);
        }
        // Not UTF-8.
        malformed(b"GET /a\xffb HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[test]
    fn control_chars_in_values_are_refused() {
        for c in [0u8, 1, 0x0b, 0x1f, 0x7f] {
            let mut text = b"GET / HTTP/1.1\r\nHost: a\r\nX: a".to_vec();
            text.push(c);
            text.extend_from_slice(b"b\r\n\r\n");
            malformed(&text);
        }
        // HTAB and obs-text are allowed.
        let h = ok(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\tb \xe2\x82\xac\r\n\r\n");
        assert_eq!(h.header("x"), Some(&b"a\tb \xe2\x82\xac"[..]));
    }

    // ---- request target ----

    #[test]
    fn absolute_form_target() {
        let h = ok(b"GET http://Api.Example.com:8080/v1/x?q=1 HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(
            h.target_authority.map(|s| s.of(&h.raw)),
            Some(&b"Api.Example.com:8080"[..])
        );
        assert_eq!(h.authority(), Some(&b"Api.Example.com:8080"[..]));
        assert_eq!(h.path_and_query(), b"/v1/x?q=1");
        assert_eq!(h.path(), b"/v1/x");
        assert_eq!(h.query(), Some(&b"q=1"[..]));
        let h = ok(b"GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(h.authority(), Some(&b"h"[..]));
        assert_eq!(h.path_and_query(), b"/");
        assert_eq!(h.path(), b"/");
        assert_eq!(h.query(), None);
        let h = ok(b"GET http://[::1]:80/ HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(h.authority(), Some(&b"[::1]:80"[..]));
    }

    #[test]
    fn bad_absolute_forms_are_refused() {
        malformed(b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n");
        malformed(b"GET http://user@h/x HTTP/1.1\r\nHost: h\r\n\r\n");
        malformed(b"GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n");
        malformed(b"GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n");
        malformed(b"GET http:/h/x HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    #[test]
    fn other_target_forms() {
        let h = ok(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(h.path_and_query(), b"*");
        malformed(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n");
        malformed(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n");
        malformed(b"CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n");
        malformed(b"GET h:443 HTTP/1.1\r\nHost: h\r\n\r\n");
        malformed(b"GET a/b HTTP/1.1\r\nHost: h\r\n\r\n");
        malformed(b"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    // ---- Host ----

    #[test]
    fn host_rules() {
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nX: y\r\n\r\n"),
            CodecError::Malformed("missing Host field")
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"),
            CodecError::Malformed("more than one Host field")
        );
        malformed(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n");
        malformed(b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n");
        let h = ok(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(h.host, None);
        assert_eq!(h.authority(), None);
        let h = ok(b"GET / HTTP/1.1\r\nHost:\r\n\r\n");
        assert_eq!(h.authority(), Some(&b""[..]));
    }

    // ---- versions ----

    #[test]
    fn versions() {
        assert_eq!(ok(b"GET / HTTP/1.0\r\n\r\n").version, Version::Http10);
        for v in [
            &b"HTTP/2.0"[..],
            b"HTTP/1.2",
            b"HTTP/3",
            b"HTTP/0.9",
            b"HTTP/11",
        ] {
            let mut text = b"GET / ".to_vec();
            text.extend_from_slice(v);
            text.extend_from_slice(b"\r\nHost: a\r\n\r\n");
            let e = parse(&text).unwrap_err();
            assert_eq!(e, CodecError::UnsupportedVersion, "{v:?}");
            assert_eq!(e.status(), 505);
        }
        for v in [
            &b"FOO/1.1"[..],
            b"http/1.1",
            b"HTTP/x.1",
            b"HTTP/1.1x",
            b"HTTP/1.10",
        ] {
            let mut text = b"GET / ".to_vec();
            text.extend_from_slice(v);
            text.extend_from_slice(b"\r\nHost: a\r\n\r\n");
            assert!(
                matches!(parse(&text), Err(CodecError::Malformed(_))),
                "{v:?}"
            );
        }
        // A request line without version (HTTP/0.9 style) never completes a
        // request-line and is refused once it ends.
        malformed(b"GET /\r\n\r\n");
    }

    // ---- limits ----

    #[test]
    fn head_too_large() {
        let big = "a".repeat(33 * 1024);
        // Incomplete and already over the limit.
        let text = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {big}");
        let e = err(text.as_bytes());
        assert_eq!(e, CodecError::HeadTooLarge(32 * 1024));
        assert_eq!(e.status(), 431);
        // Complete but over the limit.
        let text = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {big}\r\n\r\n");
        assert_eq!(err(text.as_bytes()), CodecError::HeadTooLarge(32 * 1024));
    }

    #[test]
    fn head_of_exactly_the_limit_is_fine() {
        let limits = Limits::default();
        let prefix = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
        let pad = limits.max_head_bytes - prefix.len() - 4;
        let text = format!("{prefix}{}\r\n\r\nrest", "b".repeat(pad));
        let mut buf = BytesMut::from(text.as_bytes());
        let h = RequestHead::parse(&mut buf, &limits).unwrap().unwrap();
        assert_eq!(h.raw.len(), limits.max_head_bytes);
        assert_eq!(&buf[..], b"rest");
        // One more byte and it is too large.
        let text = format!("{prefix}{}\r\n\r\n", "b".repeat(pad + 1));
        assert_eq!(
            err(text.as_bytes()),
            CodecError::HeadTooLarge(limits.max_head_bytes)
        );
    }

    fn with_fields(n: usize) -> Vec<u8> {
        let mut text = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 1..n {
            text.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        text.extend_from_slice(b"\r\n");
        text
    }

    #[test]
    fn too_many_headers() {
        let e = err(&with_fields(101));
        assert_eq!(e, CodecError::TooManyHeaders(100));
        assert_eq!(e.status(), 431);
        // Also while the head is still incomplete.
        let text = with_fields(101);
        assert_eq!(
            err(&text[..text.len() - 2]),
            CodecError::TooManyHeaders(100)
        );
    }

    #[test]
    fn exactly_max_headers_is_fine() {
        assert_eq!(ok(&with_fields(100)).headers.len(), 100);
    }

    #[test]
    fn header_limit_above_the_stack_slots() {
        let limits = Limits {
            max_headers: 200,
            ..Limits::default()
        };
        let h = parse_with(&with_fields(200), &limits).unwrap().unwrap();
        assert_eq!(h.headers.len(), 200);
        assert_eq!(h.header("x-199"), Some(&b"v"[..]));
        assert_eq!(
            parse_with(&with_fields(201), &limits).unwrap_err(),
            CodecError::TooManyHeaders(200)
        );
    }

    // ---- connection handling ----

    #[test]
    fn keep_alive_http11() {
        assert!(ok(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").keep_alive);
        assert!(!ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(
            !ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n").keep_alive
        );
        assert!(
            !ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x\r\nConnection: close\r\n\r\n")
                .keep_alive
        );
        assert!(ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n").keep_alive);
    }

    #[test]
    fn keep_alive_http10() {
        assert!(!ok(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ok(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(ok(b"GET / HTTP/1.0\r\nConnection: foo, Keep-Alive\r\n\r\n").keep_alive);
        assert!(
            ok(b"GET / HTTP/1.0\r\nConnection: foo\r\nConnection: keep-alive\r\n\r\n").keep_alive
        );
        assert!(!ok(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
        assert!(!ok(b"GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n").keep_alive);
    }

    #[test]
    fn expect_handling() {
        let h =
            ok(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        assert!(h.expect_continue && !h.expect_unsupported);
        let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n");
        assert!(h.expect_continue);
        let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n");
        assert!(!h.expect_continue && h.expect_unsupported);
        let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, foo\r\n\r\n");
        assert!(h.expect_continue && h.expect_unsupported);
        // RFC 9110 10.1.1: ignored in HTTP/1.0.
        let h = ok(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
        assert!(!h.expect_continue && !h.expect_unsupported);
    }

    // ---- responses ----

    #[test]
    fn response_basics() {
        let text = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
        let mut buf = BytesMut::from(&text[..]);
        let h = ResponseHead::parse(&mut buf, &Limits::default(), &http::Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..], b"hello");
        assert_eq!(h.status, 200);
        assert_eq!(h.reason(), b"OK");
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.framing, BodyFraming::Length(5));
        assert!(h.keep_alive);
        assert_eq!(h.header("server"), Some(&b"x"[..]));
        assert_eq!(&h.raw[..], &text[..text.len() - 5]);
    }

    #[test]
    fn response_reasons() {
        assert_eq!(
            resp_ok(b"HTTP/1.1 404 Not  Found \r\n\r\n").reason(),
            b"Not  Found "
        );
        assert_eq!(resp_ok(b"HTTP/1.1 200\r\n\r\n").reason(), b"");
        assert_eq!(resp_ok(b"HTTP/1.1 200 \r\n\r\n").reason(), b"");
        assert_eq!(
            resp_ok(b"HTTP/1.1 200 Gr\xfc\xdfe\r\n\r\n").reason(),
            b"Gr\xfc\xdfe"
        );
        assert_eq!(
            resp_ok(b"\r\nHTTP/1.1 201 Created\nX: y\n\n").reason(),
            b"Created"
        );
    }

    #[test]
    fn response_framing() {
        assert_eq!(
            resp_ok(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").framing,
            BodyFraming::Chunked
        );
        let h = resp_ok(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::CloseDelimited);
        assert!(!h.keep_alive);
        assert_eq!(
            resp_ok(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").framing,
            BodyFraming::Empty
        );
        let h = resp_ok(b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::CloseDelimited);
        assert!(!h.keep_alive);
    }

    #[test]
    fn bodiless_responses() {
        for status in [100u16, 101, 103, 204, 304] {
            let text = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            let h = resp_ok(text.as_bytes());
            assert_eq!(h.framing, BodyFraming::Empty, "{status}");
            assert!(h.keep_alive);
        }
        let h = resp(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
            &http::Method::HEAD,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, BodyFraming::Empty);
    }

    #[test]
    fn response_framing_errors() {
        assert_eq!(
            resp_err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
            CodecError::TransferEncodingWithContentLength
        );
        assert_eq!(
            resp_err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            CodecError::UnsupportedTransferCoding
        );
        assert_eq!(
            resp_err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
            CodecError::UnsupportedTransferCoding
        );
        assert_eq!(
            resp_err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
            CodecError::ChunkedNotLast
        );
        assert_eq!(
            resp_err(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            CodecError::InvalidContentLength("conflicting values")
        );
        assert_eq!(
            resp_err(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            CodecError::InvalidContentLength("not a decimal number")
        );
        assert!(matches!(
            resp_err(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            CodecError::Malformed(_)
        ));
    }

    #[test]
    fn response_start_line_errors() {
        assert_eq!(
            resp_err(b"HTTP/2.0 200 OK\r\n\r\n"),
            CodecError::UnsupportedVersion
        );
        assert!(matches!(
            resp_err(b"HTTP/1.1 099 Low\r\n\r\n"),
            CodecError::Malformed(_)
        ));
        assert!(matches!(
            resp_err(b"HTTP/1.1 20 OK\r\n\r\n"),
            CodecError::Malformed(_)
        ));
        assert!(matches!(
            resp_err(b"HTTP/1.1 200 O\rK\r\n\r\n"),
            CodecError::Malformed(_)
        ));
        assert!(matches!(
            resp_err(b"ICY 200 OK\r\n\r\n"),
            CodecError::Malformed(_)
        ));
        assert!(matches!(
            resp_err(b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
            CodecError::Malformed(_)
        ));
        assert!(matches!(
            resp_err(b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n"),
            CodecError::Malformed(_)
        ));
    }

    #[test]
    fn response_keep_alive() {
        assert!(
            !resp_ok(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n")
                .keep_alive
        );
        assert!(!resp_ok(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").keep_alive);
        assert!(
            resp_ok(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n")
                .keep_alive
        );
        // Close-delimited can never be kept alive.
        assert!(!resp_ok(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn response_limits() {
        let limits = Limits {
            max_head_bytes: 64,
            max_headers: 2,
            ..Limits::default()
        };
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"[..]);
        assert_eq!(
            ResponseHead::parse(&mut buf, &limits, &http::Method::GET).unwrap_err(),
            CodecError::TooManyHeaders(2)
        );
        let mut buf =
            BytesMut::from(format!("HTTP/1.1 200 OK\r\nA: {}", "x".repeat(64)).as_bytes());
        assert_eq!(
            ResponseHead::parse(&mut buf, &limits, &http::Method::GET).unwrap_err(),
            CodecError::HeadTooLarge(64)
        );
    }
}
