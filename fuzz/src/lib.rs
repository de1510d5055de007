//! Helpers shared by the fuzz targets: turning control bytes into limits and split
//! points, owned summaries of parsed heads that can be compared, and the checks that
//! every parse outcome must pass.

use bytes::BytesMut;
use portcullis_core::http::{
    BodyFraming, CodecError, Limits, RequestHead, ResponseHead, Span, Version,
};

/// Status codes a codec error may map to.
pub const ERROR_STATUSES: [u16; 5] = [400, 413, 431, 501, 505];

/// Checks that an error maps to one of the statuses a server may answer with.
pub fn check_error_status(e: &CodecError) {
    assert!(
        ERROR_STATUSES.contains(&e.status()),
        "{e:?} maps to status {}",
        e.status()
    );
}

/// Limits picked by one control byte: the defaults half the time, otherwise small
/// limits (a head of 16..=296 bytes, 0..=15 fields) so the limit paths are reached
/// with short inputs.
pub fn limits_from(sel: u8) -> Limits {
    if sel < 128 {
        Limits::default()
    } else {
        Limits {
            max_head_bytes: 16 + usize::from((sel >> 4) & 7) * 40,
            max_headers: usize::from(sel & 0x0f),
            ..Limits::default()
        }
    }
}

/// A split position in `0..=len` chosen by one control byte (scaled, so that long
/// inputs can be split anywhere, not only in their first 256 bytes).
pub fn split_point(sel: u8, len: usize) -> usize {
    (usize::from(sel) * (len + 1)) / 256
}

/// A tiny deterministic PRNG (xorshift64*) for piece sizes derived from the input.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` (never the all-zero state).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next pseudo-random number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A piece size, mostly small (1..=8), sometimes up to 64, rarely up to 1024.
    pub fn piece(&mut self) -> usize {
        let r = self.next_u64();
        let n = match r % 8 {
            0 => 1 + (r >> 8) % 1024,
            1 | 2 => 1 + (r >> 8) % 64,
            _ => 1 + (r >> 8) % 8,
        };
        n as usize
    }
}

/// Owned bytes of an optional span.
fn span_bytes(raw: &[u8], s: Option<Span>) -> Option<Vec<u8>> {
    s.map(|s| s.of(raw).to_vec())
}

/// Header fields as owned (name, value) pairs.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything a parsed request head says, owned and comparable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqSummary {
    /// The head's raw bytes (only meaningful when comparing parses of the same input).
    pub raw: Vec<u8>,
    pub method: http::Method,
    pub path_and_query: Vec<u8>,
    pub target_authority: Option<Vec<u8>>,
    pub authority: Option<Vec<u8>>,
    pub version: Version,
    pub headers: Fields,
    pub host: Option<Vec<u8>>,
    pub framing: BodyFraming,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub expect_unsupported: bool,
}

impl ReqSummary {
    /// The summary of `h`.
    pub fn of(h: &RequestHead) -> Self {
        ReqSummary {
            raw: h.raw.to_vec(),
            method: h.method.clone(),
            path_and_query: h.path_and_query().to_vec(),
            target_authority: span_bytes(&h.raw, h.target_authority),
            authority: h.authority().map(<[u8]>::to_vec),
            version: h.version,
            headers: h
                .header_pairs()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect(),
            host: span_bytes(&h.raw, h.host),
            framing: h.framing,
            keep_alive: h.keep_alive,
            expect_continue: h.expect_continue,
            expect_unsupported: h.expect_unsupported,
        }
    }

    /// The same summary without the raw bytes, for comparing a re-encoded head
    /// (whose whitespace and line ends may differ) with the original.
    pub fn without_raw(&self) -> Self {
        ReqSummary {
            raw: Vec::new(),
            ..self.clone()
        }
    }
}

/// Everything a parsed response head says, owned and comparable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RespSummary {
    pub raw: Vec<u8>,
    pub version: Version,
    pub status: u16,
    pub reason: Vec<u8>,
    pub headers: Fields,
    pub framing: BodyFraming,
    pub keep_alive: bool,
}

impl RespSummary {
    /// The summary of `h`.
    pub fn of(h: &ResponseHead) -> Self {
        RespSummary {
            raw: h.raw.to_vec(),
            version: h.version,
            status: h.status,
            reason: h.reason().to_vec(),
            headers: h
                .header_pairs()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect(),
            framing: h.framing,
            keep_alive: h.keep_alive,
        }
    }

    /// The same summary without the raw bytes.
    pub fn without_raw(&self) -> Self {
        RespSummary {
            raw: Vec::new(),
            ..self.clone()
        }
    }
}

/// The outcome of feeding bytes to a head parser: the result and the bytes left in
/// the buffer (after a head: what follows it; otherwise: everything fed).
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed<T> {
    pub result: Result<Option<T>, CodecError>,
    pub leftover: Vec<u8>,
}

/// Feeds `input` to `parse` in two pieces, `input[..at]` then the rest, the way a
/// connection does: the parser is called after each piece until it returns a head
/// or an error. `at == input.len()` feeds everything at once.
pub fn parse_in_two<T>(
    input: &[u8],
    at: usize,
    mut parse: impl FnMut(&mut BytesMut) -> Result<Option<T>, CodecError>,
) -> Parsed<T> {
    let mut buf = BytesMut::new();
    let mut result = Ok(None);
    let pieces = [&input[..at], &input[at..]];
    for (i, piece) in pieces.iter().enumerate() {
        buf.extend_from_slice(piece);
        result = parse(&mut buf);
        if !matches!(result, Ok(None)) {
            // Done: what was not fed yet follows whatever is left in the buffer.
            for rest in &pieces[i + 1..] {
                buf.extend_from_slice(rest);
            }
            break;
        }
    }
    Parsed {
        result,
        leftover: buf.to_vec(),
    }
}

/// [`parse_in_two`] through a `HeadScanner`-style parse, `parse(buf, eof)`:
/// each piece as it arrives, then once more at end of stream if no outcome
/// showed, which must come to what parsing the whole input once gives.
pub fn scan_in_two<T>(
    input: &[u8],
    at: usize,
    mut parse: impl FnMut(&mut BytesMut, bool) -> Result<Option<T>, CodecError>,
) -> Parsed<T> {
    let mut parsed = parse_in_two(input, at, |buf| parse(buf, false));
    if matches!(parsed.result, Ok(None)) {
        let mut buf = BytesMut::from(&parsed.leftover[..]);
        parsed.result = parse(&mut buf, true);
        parsed.leftover = buf.to_vec();
    }
    parsed
}

/// Number of CR and LF bytes before the start line (skipped by the parsers).
pub fn leading_empty_lines(input: &[u8]) -> usize {
    input
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Checks what holds for any successfully parsed head: it is the input's bytes after
/// the skipped empty lines, it ends with an empty line, the rest of the input stays
/// in the buffer, and the limits were kept.
pub fn check_head_bytes(input: &[u8], raw: &[u8], leftover: &[u8], limits: &Limits, fields: usize) {
    let skip = leading_empty_lines(input);
    assert!(
        skip + raw.len() <= limits.max_head_bytes,
        "head with {skip} skipped bytes is {} bytes, limit {}",
        raw.len(),
        limits.max_head_bytes
    );
    assert!(fields <= limits.max_headers, "{fields} fields");
    assert_eq!(raw, &input[skip..skip + raw.len()], "raw is not the input");
    assert_eq!(leftover, &input[skip + raw.len()..], "leftover");
    assert!(
        raw.ends_with(b"\n\n") || raw.ends_with(b"\n\r\n"),
        "{raw:?}"
    );
}

/// Fields named `name` (ASCII case-insensitive).
pub fn named<'a>(fields: &'a Fields, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    fields
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| &v[..])
}

/// Field pairs as borrowed slices, as the encoders take them.
pub fn field_refs(fields: &Fields) -> Vec<(&[u8], &[u8])> {
    fields.iter().map(|(n, v)| (&n[..], &v[..])).collect()
}

/// Elements of a comma-separated list, trimmed of SP/HTAB, empty ones dropped
/// (written here independently of the codec's own helper).
pub fn list(value: &[u8]) -> Vec<&[u8]> {
    value
        .split(|&b| b == b',')
        .map(|e| {
            let start = e.iter().position(|&b| b != b' ' && b != b'\t');
            match start {
                None => &e[..0],
                Some(s) => {
                    let end = e.iter().rposition(|&b| b != b' ' && b != b'\t').unwrap();
                    &e[s..=end]
                }
            }
        })
        .filter(|e| !e.is_empty())
        .collect()
}

/// What the Connection fields say, computed independently of the codec:
/// (`close` listed, `keep-alive` listed, every listed name lowercased).
pub fn connection_tokens(fields: &Fields) -> (bool, bool, Vec<Vec<u8>>) {
    let mut close = false;
    let mut keep_alive = false;
    let mut names = Vec::new();
    for v in named(fields, "connection") {
        for e in list(v) {
            close |= e.eq_ignore_ascii_case(b"close");
            keep_alive |= e.eq_ignore_ascii_case(b"keep-alive");
            names.push(e.to_ascii_lowercase());
        }
    }
    (close, keep_alive, names)
}

/// Keep-alive as RFC 9112 9.3 decides it from the version and Connection fields.
pub fn expected_keep_alive(version: Version, fields: &Fields) -> bool {
    let (close, keep_alive, _) = connection_tokens(fields);
    match version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive && !close,
    }
}

/// The transfer codings of all Transfer-Encoding fields in order (None: no field).
pub fn transfer_codings(fields: &Fields) -> Option<Vec<Vec<u8>>> {
    let mut any = false;
    let mut codings = Vec::new();
    for v in named(fields, "transfer-encoding") {
        any = true;
        codings.extend(list(v).into_iter().map(<[u8]>::to_vec));
    }
    any.then_some(codings)
}

/// The Content-Length of the fields if they carry one valid, consistent value.
/// `Err` (with the reason) when a Content-Length field is present but invalid or
/// inconsistent.
pub fn content_length(fields: &Fields) -> Result<Option<u64>, &'static str> {
    let mut n: Option<u64> = None;
    for v in named(fields, "content-length") {
        for e in v.split(|&b| b == b',') {
            let [e] = list(e)[..] else {
                return Err("empty or spaced element");
            };
            if !e.iter().all(u8::is_ascii_digit) {
                return Err("not decimal");
            }
            let m: u64 = std::str::from_utf8(e)
                .expect("digits")
                .parse()
                .map_err(|_| "too large")?;
            if n.is_some_and(|n| n != m) {
                return Err("conflicting values");
            }
            n = Some(m);
        }
    }
    Ok(n)
}

/// Content-Length framing: zero is no body.
pub fn length_framing(n: u64) -> BodyFraming {
    if n == 0 {
        BodyFraming::Empty
    } else {
        BodyFraming::Length(n)
    }
}

/// Expands the input through a token table when `on`: each byte in the top
/// `tokens.len()` values (`256 - tokens.len()..=255`) becomes that token, other bytes
/// stay. Keywords like `Transfer-Encoding: ` are hard for a byte-level fuzzer to
/// guess in a short run (they are compared case-insensitively, not with `memcmp`), so
/// this lets the short CI runs reach the framing and proxy rules; with `on` false the
/// bytes go in as they are and every byte value is reachable.
pub fn expand(input: &[u8], on: bool, tokens: &[&[u8]]) -> Vec<u8> {
    assert!(tokens.len() <= 128);
    if !on {
        return input.to_vec();
    }
    let first = 256 - tokens.len();
    let mut out = Vec::with_capacity(input.len() * 2);
    for &b in input {
        let b = usize::from(b);
        if b >= first {
            out.extend_from_slice(tokens[b - first]);
        } else {
            out.push(b as u8);
        }
    }
    out
}

/// Tokens for request heads: whole lines that make a valid request in a few bytes,
/// then the words they are made of.
pub const REQUEST_TOKENS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a.example\r\n",
    b"POST /p?q=1 HTTP/1.1\r\nHost: a.example:8080\r\n",
    b"GET http://b.example/x HTTP/1.1\r\nHost: a.example\r\n",
    b"OPTIONS * HTTP/1.0\r\n",
    b"Host: a.example\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 5\r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive, X-A\r\n",
    b"Expect: 100-continue\r\n",
    b"X-Forwarded-For: 192.0.2.1, 192.0.2.2\r\n",
    b"X-A: 1\r\n",
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"OPTIONS ",
    b"CONNECT ",
    b"*",
    b"/",
    b"?",
    b"http://",
    b"HTTPS://",
    b" HTTP/1.1\r\n",
    b" HTTP/1.0\r\n",
    b" HTTP/2.0\r\n",
    b"\r\n",
    b"\r\n\r\n",
    b"Host: ",
    b"host:",
    b"a.example",
    b":8080",
    b"[::1]",
    b"Transfer-Encoding: ",
    b"Content-Length: ",
    b"chunked",
    b"gzip",
    b"Connection: ",
    b"close",
    b"keep-alive",
    b"Expect: ",
    b"100-continue",
    b", ",
    b"X-Forwarded-For: ",
    b"X-Forwarded-Proto: ",
    b"X-Forwarded-Host: ",
    b"Keep-Alive: ",
    b"TE: ",
    b"Upgrade: ",
    b"Proxy-Connection: ",
    b"Proxy-Authorization: ",
    b"Trailer: ",
    b"18446744073709551615",
];

/// Tokens for response heads.
pub const RESPONSE_TOKENS: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.0 200 OK\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 5\r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
    b"HTTP/1.1 ",
    b"HTTP/1.0 ",
    b"HTTP/2 ",
    b"100 ",
    b"101 ",
    b"204 ",
    b"304 ",
    b"404 ",
    b"999 ",
    b"099 ",
    b"\r\n",
    b"\r\n\r\n",
    b"Transfer-Encoding: ",
    b"Content-Length: ",
    b"chunked",
    b"gzip",
    b"Connection: ",
    b"close",
    b"keep-alive",
    b", ",
    b"Set-Cookie: ",
    b"18446744073709551615",
];

/// Tokens for chunked bodies.
pub const CHUNKED_TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"0\r\n\r\n",
    b"0\r\n",
    b"1\r\nx\r\n",
    b";",
    b"=",
    b"\"",
    b"\\",
    b"ext",
    b"ffffffffffffffff",
    b"10000000000000000",
    b"X-Trailer: v\r\n",
];
