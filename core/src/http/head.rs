//! Request and response heads: incremental parsing on `httparse`, fields kept as offsets.

use bytes::{Bytes, BytesMut};
use smallvec::SmallVec;

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
    /// after the authority (`/` when empty); for `OPTIONS *`, `*`.
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
        let _ = (buf, limits);
        todo!()
    }

    /// Path and query bytes (`/a/b?x=1`).
    pub fn path_and_query(&self) -> &[u8] {
        self.path_and_query.of(&self.raw)
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
    pub fn header_pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
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
    /// (a gateway must not forward it); a final coding other than chunked means
    /// close-delimited, as RFC 9112 says for responses.
    pub fn parse(
        buf: &mut BytesMut,
        limits: &Limits,
        request_method: &http::Method,
    ) -> Result<Option<ResponseHead>, CodecError> {
        let _ = (buf, limits, request_method);
        todo!()
    }

    /// Name and value of every header field, in order.
    pub fn header_pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
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
