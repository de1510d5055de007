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
#[path = "head_tests.rs"]
mod tests;
