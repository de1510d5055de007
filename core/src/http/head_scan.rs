//! Heads that arrive in pieces, parsed in time linear in their size.
//!
//! [`RequestHead::parse`] and [`ResponseHead::parse`] start over on every call, so a
//! peer sending a 32 KiB head one byte per read would make the gateway parse
//! 32 KiB × 32 KiB / 2 bytes. A [`HeadScanner`] kept beside the read buffer
//! remembers how far it has looked, scans only the bytes that arrived since for
//! the empty line that ends a head, and runs the full parser only when that line
//! is there, when the buffer outgrows the head limit, or when the buffer has
//! doubled since the last full parse. The last rule keeps garbage (a TLS
//! handshake on the plain port, a malformed start line) refused as soon as it
//! arrives in one read, as before, while the doubling keeps the total work within
//! twice the head's size.
//!
//! The outcome is always the full parser's, on the same bytes, so it is the same
//! as calling `parse` after every read: the same head, the same error and status.
//! Only when an error shows is different: an error in a head that arrives in
//! pieces is reported when the head ends, when the buffer has doubled, when the
//! head limit is passed or at end of stream, not at the first bad byte.

use bytes::BytesMut;

use super::{CodecError, Limits, RequestHead, ResponseHead};

/// How far a head arriving in pieces has been looked at; keep one per read
/// buffer and [`reset`](HeadScanner::reset) it whenever the buffer is emptied
/// other than by a parse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadScanner {
    /// Bytes at the front of the buffer already looked at.
    scanned: usize,
    /// Where the start line begins, once a byte other than CR or LF was seen
    /// (empty lines before a start line are skipped, as the parser does).
    start: Option<usize>,
    /// Buffer length from which the full parser runs again even without an
    /// end of head (0: at the next call).
    next_full_parse: usize,
}

impl HeadScanner {
    /// A scanner for a buffer holding nothing of a head yet.
    pub fn new() -> Self {
        HeadScanner::default()
    }

    /// Forgets everything: the next call parses the buffer in full.
    pub fn reset(&mut self) {
        *self = HeadScanner::default();
    }

    /// [`RequestHead::parse`] on `buf`, run only once its outcome can have
    /// changed. `eof`: no more bytes will come, so the buffer is judged as it is.
    pub fn parse_request(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        eof: bool,
    ) -> Result<Option<RequestHead>, CodecError> {
        if !eof && !self.worth_parsing(buf, limits) {
            return Ok(None);
        }
        let result = RequestHead::parse(buf, limits);
        self.parsed(buf.len(), matches!(result, Ok(None)));
        result
    }

    /// [`ResponseHead::parse`] on `buf`, run only once its outcome can have
    /// changed; as [`parse_request`](HeadScanner::parse_request).
    pub fn parse_response(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        request_method: &http::Method,
        eof: bool,
    ) -> Result<Option<ResponseHead>, CodecError> {
        if !eof && !self.worth_parsing(buf, limits) {
            return Ok(None);
        }
        let result = ResponseHead::parse(buf, limits, request_method);
        self.parsed(buf.len(), matches!(result, Ok(None)));
        result
    }

    /// Notes a full parse of a buffer of `len` bytes: still incomplete, or done
    /// (a head split off, or an error), after which the buffer starts afresh.
    fn parsed(&mut self, len: usize, incomplete: bool) {
        if incomplete {
            self.next_full_parse = len.saturating_mul(2).max(len + 1);
        } else {
            self.reset();
        }
    }

    /// Whether the full parser could answer anything but "incomplete" now.
    fn worth_parsing(&mut self, buf: &[u8], limits: &Limits) -> bool {
        if buf.len() < self.scanned {
            // The buffer was emptied behind our back: what was scanned is gone.
            self.reset();
        }
        // Past the limit the parser answers at once (too large, or the error in
        // the first `max_head_bytes` bytes), exactly where it did on every read.
        buf.len() > limits.max_head_bytes.min(u32::MAX as usize)
            || buf.len() >= self.next_full_parse
            || self.end_of_head_arrived(buf)
    }

    /// Scans the bytes not looked at yet for the empty line ending a head: a LF
    /// followed by LF or CRLF (the parser takes CRLF or bare LF line endings),
    /// after the start line has begun. Each byte is looked at most three times.
    fn end_of_head_arrived(&mut self, buf: &[u8]) -> bool {
        let start = match self.start {
            Some(start) => start,
            None => {
                let skipped = &buf[self.scanned..];
                match skipped.iter().position(|&b| b != b'\r' && b != b'\n') {
                    Some(i) => {
                        let start = self.scanned + i;
                        self.start = Some(start);
                        start
                    }
                    None => {
                        self.scanned = buf.len();
                        return false;
                    }
                }
            }
        };
        // A LF in the last two bytes scanned before could not be judged then:
        // what follows it may have arrived only now.
        let from = self.scanned.saturating_sub(2).max(start);
        self.scanned = buf.len();
        let rest = &buf[from..];
        rest.iter().enumerate().any(|(i, &b)| {
            b == b'\n'
                && matches!(
                    (rest.get(i + 1), rest.get(i + 2)),
                    (Some(b'\n'), _) | (Some(b'\r'), Some(b'\n'))
                )
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What a parse came to, comparable across calls.
    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        Head { raw: Vec<u8>, rest: Vec<u8> },
        Error(CodecError),
        Incomplete,
    }

    /// Parses `text` whole with the stateless parser.
    fn whole(text: &[u8], limits: &Limits) -> Outcome {
        let mut buf = BytesMut::from(text);
        match RequestHead::parse(&mut buf, limits) {
            Ok(Some(h)) => Outcome::Head {
                raw: h.raw.to_vec(),
                rest: buf.to_vec(),
            },
            Ok(None) => Outcome::Incomplete,
            Err(e) => Outcome::Error(e),
        }
    }

    /// Feeds `text` through a scanner in pieces ending at `cuts`, stopping at the
    /// first head or error; at the end the stream ends (`eof`).
    fn pieces(text: &[u8], cuts: &[usize], limits: &Limits) -> (Outcome, usize) {
        let mut scanner = HeadScanner::new();
        let mut buf = BytesMut::new();
        let mut at = 0;
        let mut ends: Vec<usize> = cuts.iter().map(|&c| c.min(text.len())).collect();
        ends.sort_unstable();
        ends.push(text.len());
        for (i, &end) in ends.iter().enumerate() {
            if end < at {
                continue;
            }
            buf.extend_from_slice(&text[at..end]);
            at = end;
            let eof = i == ends.len() - 1;
            match scanner.parse_request(&mut buf, limits, eof) {
                Ok(Some(h)) => {
                    buf.extend_from_slice(&text[at..]);
                    let outcome = Outcome::Head {
                        raw: h.raw.to_vec(),
                        rest: buf.to_vec(),
                    };
                    return (outcome, end);
                }
                Ok(None) => {}
                Err(e) => return (Outcome::Error(e), end),
            }
        }
        (Outcome::Incomplete, text.len())
    }

    fn limits(max_head_bytes: usize) -> Limits {
        Limits {
            max_head_bytes,
            max_headers: 8,
            ..Limits::default()
        }
    }

    #[test]
    fn complete_exactly_at_the_empty_line_byte_by_byte() {
        for text in [
            &b"\r\n\nGET /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"[..],
            b"GET /p HTTP/1.1\nHost: h\n\nabc",
            b"GET /p HTTP/1.1\r\nHost: h\n\r\nabc",
            b"GET /p HTTP/1.0\r\n\r\nabc",
        ] {
            let cuts: Vec<usize> = (1..text.len()).collect();
            let (outcome, at) = pieces(text, &cuts, &Limits::default());
            assert_eq!(outcome, whole(text, &Limits::default()));
            assert_eq!(at, text.len() - 3, "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn full_parses_are_few_when_bytes_come_one_at_a_time() {
        let mut text = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        while text.len() < 30_000 {
            text.extend_from_slice(b"X-Pad: ");
            text.extend_from_slice(&[b'p'; 1000]);
            text.extend_from_slice(b"\r\n");
        }
        text.extend_from_slice(b"\r\n");
        let limits = Limits::default();
        let mut scanner = HeadScanner::new();
        let mut buf = BytesMut::new();
        let mut full_parses = 0;
        for (i, &b) in text.iter().enumerate() {
            buf.extend_from_slice(&[b]);
            if !scanner.worth_parsing(&buf, &limits) {
                continue;
            }
            full_parses += 1;
            let r = RequestHead::parse(&mut buf, &limits).unwrap();
            if r.is_some() {
                assert_eq!(i, text.len() - 1);
                break;
            }
            scanner.parsed(buf.len(), true);
        }
        // One per doubling of the buffer (1, 2, 4, ... 16384 bytes) and the last.
        assert_eq!(full_parses, 16, "{full_parses} full parses");
    }

    #[test]
    fn garbage_in_one_read_is_refused_at_once() {
        let mut scanner = HeadScanner::new();
        let mut buf = BytesMut::from(&b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..]);
        assert!(matches!(
            scanner.parse_request(&mut buf, &Limits::default(), false),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn an_error_in_a_later_piece_shows_by_the_end_of_the_head_or_the_stream() {
        let limits = Limits::default();
        let mut scanner = HeadScanner::new();
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\n"[..]);
        assert!(matches!(
            scanner.parse_request(&mut buf, &limits, false),
            Ok(None)
        ));
        buf.extend_from_slice(b"X\r: b");
        // Not parsed yet: no end of head and the buffer has not doubled...
        assert!(matches!(
            scanner.parse_request(&mut buf, &limits, false),
            Ok(None)
        ));
        // ...but at end of stream it is, and the error is the parser's.
        assert_eq!(
            scanner.parse_request(&mut buf, &limits, true).unwrap_err(),
            whole(&buf, &limits).error()
        );
        let mut scanner = HeadScanner::new();
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\n"[..]);
        assert!(matches!(
            scanner.parse_request(&mut buf, &limits, false),
            Ok(None)
        ));
        buf.extend_from_slice(b"X\r: b\r\n\r\n");
        assert!(matches!(
            scanner.parse_request(&mut buf, &limits, false),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn too_large_at_the_same_byte_as_before() {
        let limits = limits(64);
        let text = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "y".repeat(100));
        let cuts: Vec<usize> = (1..text.len()).collect();
        let (outcome, at) = pieces(text.as_bytes(), &cuts, &limits);
        assert_eq!(outcome, Outcome::Error(CodecError::HeadTooLarge(64)));
        assert_eq!(at, 65, "refused at the first byte past the limit");
    }

    #[test]
    fn a_buffer_emptied_elsewhere_is_noticed() {
        let limits = Limits::default();
        let mut scanner = HeadScanner::new();
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\nX-Long-Field: abcdef"[..]);
        assert!(matches!(
            scanner.parse_request(&mut buf, &limits, false),
            Ok(None)
        ));
        buf.clear();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n");
        let h = scanner.parse_request(&mut buf, &limits, false).unwrap();
        assert_eq!(h.unwrap().header("host"), Some(&b"b"[..]));
    }

    #[test]
    fn responses_and_interim_heads() {
        let text = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let mut scanner = HeadScanner::new();
        let mut buf = BytesMut::new();
        let mut statuses = Vec::new();
        for &b in text.iter() {
            buf.extend_from_slice(&[b]);
            // After the final head come body bytes, not another head.
            while statuses.last().is_none_or(|&s| s < 200) {
                match scanner.parse_response(
                    &mut buf,
                    &Limits::default(),
                    &http::Method::GET,
                    false,
                ) {
                    Ok(Some(h)) => statuses.push(h.status),
                    Ok(None) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        assert_eq!(statuses, [100, 200]);
        assert_eq!(&buf[..], b"ok");
    }

    impl Outcome {
        fn error(self) -> CodecError {
            match self {
                Outcome::Error(e) => e,
                other => panic!("expected an error, got {other:?}"),
            }
        }
    }

    /// Heads made of valid and invalid pieces, so that every outcome shows up.
    fn head_text() -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            Just(b"Host: a\r\n".to_vec()),
            Just(b"X-A: 1\r\n".to_vec()),
            Just(b"X-B: two words\n".to_vec()),
            Just(b"Content-Length: 3\r\n".to_vec()),
            Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
            Just(b"X\r: bad\r\n".to_vec()),
            Just(b" folded\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..6),
        ];
        let start = prop_oneof![
            Just(b"GET / HTTP/1.1\r\n".to_vec()),
            Just(b"\r\nPOST /x?y HTTP/1.0\n".to_vec()),
            Just(b"GET / HTTP/2.0\r\n".to_vec()),
            Just(b"G@T / HTTP/1.1\r\n".to_vec()),
        ];
        (start, proptest::collection::vec(line, 0..12)).prop_map(|(s, lines)| {
            let mut text = s;
            for l in lines {
                text.extend_from_slice(&l);
            }
            text.extend_from_slice(b"abc");
            text
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// However a head is split into reads, the scanner ends in what parsing
        /// the whole text at once gives: the same head and leftover bytes, or
        /// the same error; and never later than the end of the head.
        #[test]
        fn any_split_gives_the_whole_parse(
            text in head_text(),
            cuts in proptest::collection::vec(0usize..200, 0..20),
            max_head in prop_oneof![Just(32usize), Just(64), Just(32 * 1024)],
        ) {
            let limits = limits(max_head);
            let expected = whole(&text, &limits);
            let (outcome, _) = pieces(&text, &cuts, &limits);
            prop_assert_eq!(outcome, expected);
        }

        /// One byte per read, the case the scanner exists for.
        #[test]
        fn byte_by_byte_gives_the_whole_parse(
            text in head_text(),
            max_head in prop_oneof![Just(32usize), Just(64), Just(32 * 1024)],
        ) {
            let limits = limits(max_head);
            let cuts: Vec<usize> = (1..text.len()).collect();
            let (outcome, _) = pieces(&text, &cuts, &limits);
            prop_assert_eq!(outcome, whole(&text, &limits));
        }
    }
}
