//! The chunked transfer coding (RFC 9112 section 7.1): incremental decoder and encoder.

use bytes::{Buf, Bytes, BytesMut};

use super::syntax::{is_field_vchar, is_tchar, write_hex};
use super::CodecError;

/// What one step of chunked decoding produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkEvent {
    /// Chunk payload bytes (a chunk may come out in several pieces).
    Data(Bytes),
    /// Last chunk and trailer section read; trailer field lines if any.
    End(Option<Bytes>),
}

/// Longest chunk-size line (size, extensions, line end) accepted.
const MAX_SIZE_LINE: usize = 4096;

/// Where the decoder is in the chunked grammar (RFC 9112 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Start of a chunk-size line: a hex digit must come.
    SizeStart,
    /// In the hex digits of the size.
    Size,
    /// Whitespace after the size: only BWS before `;` is allowed.
    SizeBws,
    /// After `;` (and BWS): an extension name must come.
    ExtNameStart,
    /// In an extension name.
    ExtName,
    /// Whitespace after an extension name: `=` or `;` must come.
    ExtNameBws,
    /// After `=` (and BWS): a token or quoted string must come.
    ExtValueStart,
    /// In a token extension value.
    ExtToken,
    /// In a quoted-string extension value.
    ExtQuoted,
    /// After a backslash in a quoted string.
    ExtQuotedEscape,
    /// Just after a closing quote.
    ExtQuotedEnd,
    /// Whitespace after an extension value: `;` must come.
    ExtValueBws,
    /// Saw CR ending the size line: LF must come.
    SizeLf,
    /// In chunk data; `remaining` bytes are left.
    Data,
    /// After chunk data: CRLF (or LF) must come.
    DataCr,
    /// Saw CR after chunk data: LF must come.
    DataLf,
    /// Start of a trailer line (or the final empty line).
    TrailerStart,
    /// In a trailer field name.
    TrailerName,
    /// In a trailer field value.
    TrailerValue,
    /// Saw CR ending a trailer line: LF must come.
    TrailerLf,
    /// Saw CR of the final empty line: LF must come.
    EndLf,
    /// Last chunk and trailers read.
    Done,
}

/// Incremental chunked decoder: validates sizes (hex only, no overflow), extensions,
/// CRLF after each chunk, and trailer fields; bare LF line endings are accepted,
/// bare CR is not.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// The size being read, then the data bytes left in the current chunk.
    remaining: u64,
    /// Bytes of the current size line so far (against `MAX_SIZE_LINE`).
    line_len: usize,
    /// Trailer field lines read so far, each ending in CRLF.
    trailers: BytesMut,
    max_trailer: usize,
}

impl ChunkedDecoder {
    /// A decoder whose trailer section may be at most `max_trailer` bytes.
    pub fn new(max_trailer: usize) -> Self {
        ChunkedDecoder {
            state: State::SizeStart,
            remaining: 0,
            line_len: 0,
            trailers: BytesMut::new(),
            max_trailer,
        }
    }

    /// Consumes bytes from the front of `buf`; `Ok(None)` means more input is needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ChunkEvent>, CodecError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Data => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    // Bounded by buf.len(), so the cast back to usize is lossless.
                    let n = self.remaining.min(buf.len() as u64) as usize;
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Some(ChunkEvent::Data(buf.split_to(n).freeze())));
                }
                _ => {
                    // Framing bytes one at a time until data starts, the body ends,
                    // or the input runs out.
                    let mut used = 0;
                    let mut result = Ok(());
                    for &b in buf.iter() {
                        used += 1;
                        result = self.step(b);
                        if result.is_err() || matches!(self.state, State::Data | State::Done) {
                            break;
                        }
                    }
                    buf.advance(used);
                    result?;
                    if self.state == State::Done {
                        let trailers = std::mem::take(&mut self.trailers);
                        let trailers = (!trailers.is_empty()).then(|| trailers.freeze());
                        return Ok(Some(ChunkEvent::End(trailers)));
                    }
                    if self.state != State::Data {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Whether the last chunk and trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Advances the framing state machine by one byte (never in `Data`).
    fn step(&mut self, b: u8) -> Result<(), CodecError> {
        use State::*;
        if self.in_size_line() {
            self.line_len += 1;
            if self.line_len > MAX_SIZE_LINE {
                return Err(CodecError::InvalidChunk("extension too long"));
            }
        }
        if self.state == Size {
            if let Some(d) = hex_value(b) {
                // Checked arithmetic is the overflow rule: no length of hex string
                // is trusted, leading zeros included.
                self.remaining = self
                    .remaining
                    .checked_mul(16)
                    .and_then(|n| n.checked_add(u64::from(d)))
                    .ok_or(CodecError::InvalidChunk("chunk size overflows"))?;
                return Ok(());
            }
        }
        self.state = match (self.state, b) {
            (SizeStart, _) => match hex_value(b) {
                Some(d) => {
                    self.remaining = u64::from(d);
                    Size
                }
                None => return Err(CodecError::InvalidChunk("chunk size is not a hex number")),
            },
            (Size | SizeBws, b' ' | b'\t') => SizeBws,
            (Size | SizeBws, b';') => ExtNameStart,
            (ExtNameStart, b' ' | b'\t') => ExtNameStart,
            (ExtNameStart, _) if is_tchar(b) => ExtName,
            (ExtName, _) if is_tchar(b) => ExtName,
            (ExtName | ExtNameBws, b' ' | b'\t') => ExtNameBws,
            (ExtName | ExtNameBws, b'=') => ExtValueStart,
            (ExtName | ExtNameBws, b';') => ExtNameStart,
            (ExtValueStart, b' ' | b'\t') => ExtValueStart,
            (ExtValueStart, b'"') => ExtQuoted,
            (ExtValueStart, _) if is_tchar(b) => ExtToken,
            (ExtToken, _) if is_tchar(b) => ExtToken,
            (ExtQuoted, b'"') => ExtQuotedEnd,
            (ExtQuoted, b'\\') => ExtQuotedEscape,
            (ExtQuoted, _) if is_qdtext(b) => ExtQuoted,
            (ExtQuotedEscape, _) if is_field_vchar(b) => ExtQuoted,
            (ExtToken | ExtQuotedEnd | ExtValueBws, b' ' | b'\t') => ExtValueBws,
            (ExtToken | ExtQuotedEnd | ExtValueBws, b';') => ExtNameStart,
            (Size | ExtName | ExtToken | ExtQuotedEnd, b'\r') => SizeLf,
            (Size | ExtName | ExtToken | ExtQuotedEnd, b'\n') | (SizeLf, b'\n') => {
                self.end_size_line()
            }
            (SizeLf, _) => return Err(CodecError::InvalidChunk("bare CR in chunk size line")),
            (SizeBws | ExtNameStart | ExtNameBws | ExtValueStart | ExtValueBws, b'\r' | b'\n') => {
                return Err(CodecError::InvalidChunk(
                    "whitespace or `;` at end of size line",
                ))
            }
            (
                Size | SizeBws | ExtNameStart | ExtName | ExtNameBws | ExtValueStart | ExtToken
                | ExtQuoted | ExtQuotedEscape | ExtQuotedEnd | ExtValueBws,
                _,
            ) => return Err(CodecError::InvalidChunk("invalid chunk size line")),
            (DataCr, b'\r') => DataLf,
            (DataCr, b'\n') | (DataLf, b'\n') => SizeStart,
            (DataCr, _) => return Err(CodecError::InvalidChunk("missing CRLF after chunk data")),
            (DataLf, _) => return Err(CodecError::InvalidChunk("bare CR after chunk data")),
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart, b'\n') | (EndLf, b'\n') => Done,
            (EndLf, _) => return Err(CodecError::InvalidChunk("bare CR after trailers")),
            (TrailerStart | TrailerName, _) if is_tchar(b) => {
                self.push_trailer(&[b])?;
                TrailerName
            }
            (TrailerName, b':') => {
                self.push_trailer(b":")?;
                TrailerValue
            }
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, b'\n') | (TrailerLf, b'\n') => {
                // Lines are stored with CRLF whatever ending they came with.
                self.push_trailer(b"\r\n")?;
                TrailerStart
            }
            (TrailerValue, _) if is_field_vchar(b) => {
                self.push_trailer(&[b])?;
                TrailerValue
            }
            (TrailerLf, _) => return Err(CodecError::InvalidChunk("bare CR in trailer")),
            // A line starting with whitespace (obs-fold), whitespace before the
            // colon, a control byte in a value and the like.
            (TrailerStart | TrailerName | TrailerValue, _) => {
                return Err(CodecError::InvalidChunk("invalid trailer field"))
            }
            (Data | Done, _) => return Err(CodecError::InvalidChunk("internal state")),
        };
        Ok(())
    }

    /// Whether the state is inside a chunk-size line (counted against its limit).
    fn in_size_line(&self) -> bool {
        !matches!(
            self.state,
            State::Data
                | State::DataCr
                | State::DataLf
                | State::TrailerStart
                | State::TrailerName
                | State::TrailerValue
                | State::TrailerLf
                | State::EndLf
                | State::Done
        )
    }

    /// The state after a complete size line: data, or trailers after the last chunk.
    fn end_size_line(&mut self) -> State {
        self.line_len = 0;
        if self.remaining == 0 {
            State::TrailerStart
        } else {
            State::Data
        }
    }

    /// Appends trailer bytes, refusing to grow past `max_trailer`.
    fn push_trailer(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        if self.trailers.len() + bytes.len() > self.max_trailer {
            return Err(CodecError::InvalidChunk("trailers too large"));
        }
        self.trailers.extend_from_slice(bytes);
        Ok(())
    }
}

/// The value of a hex digit.
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `qdtext` of RFC 9110 5.6.4: HTAB, SP, VCHAR except `"` and `\`, obs-text.
fn is_qdtext(b: u8) -> bool {
    is_field_vchar(b) && b != b'"' && b != b'\\'
}

/// Appends the size line of a chunk of `len` bytes (`{hex}\r\n`); `len` must be > 0.
///
/// A zero `len` writes nothing: `0\r\n` would end the body early.
pub fn write_chunk_size(len: usize, out: &mut BytesMut) {
    debug_assert!(len > 0, "a zero-size chunk would end the body");
    if len == 0 {
        return;
    }
    write_hex(len as u64, out);
    out.extend_from_slice(b"\r\n");
}

/// Appends the CRLF that ends a chunk's data.
pub fn write_chunk_end(out: &mut BytesMut) {
    out.extend_from_slice(b"\r\n");
}

/// Appends the last chunk, the trailer field lines (if any) and the final CRLF.
pub fn write_last_chunk(trailers: Option<&[u8]>, out: &mut BytesMut) {
    out.extend_from_slice(b"0\r\n");
    if let Some(t) = trailers.filter(|t| !t.is_empty()) {
        out.extend_from_slice(t);
        // Each field line needs its own line end before the final empty line.
        if !t.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed `step` bytes at a time: (data, trailers) or the error.
    fn decode_split(
        input: &[u8],
        step: usize,
        max_trailer: usize,
    ) -> Result<(Vec<u8>, Option<Bytes>), CodecError> {
        let mut dec = ChunkedDecoder::new(max_trailer);
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(ev) = dec.decode(&mut buf)? {
                match ev {
                    ChunkEvent::Data(d) => {
                        assert!(!d.is_empty());
                        data.extend_from_slice(&d);
                    }
                    ChunkEvent::End(t) => {
                        assert!(dec.is_done());
                        return Ok((data, t));
                    }
                }
            }
        }
        Err(CodecError::Truncated)
    }

    fn decode(input: &[u8]) -> Result<(Vec<u8>, Option<Bytes>), CodecError> {
        let whole = decode_split(input, input.len(), 1024);
        // Every test also checks that byte-at-a-time input gives the same answer.
        assert_eq!(
            decode_split(input, 1, 1024),
            whole,
            "{:?}",
            String::from_utf8_lossy(input)
        );
        whole
    }

    fn invalid(input: &[u8]) -> &'static str {
        match decode(input) {
            Err(CodecError::InvalidChunk(why)) => why,
            other => panic!(
                "{:?}: expected InvalidChunk, got {other:?}",
                String::from_utf8_lossy(input)
            ),
        }
    }

    #[test]
    fn simple_body() {
        assert_eq!(
            decode(b"5\r\nhello\r\n0\r\n\r\n"),
            Ok((b"hello".to_vec(), None))
        );
        assert_eq!(
            decode(b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n"),
            Ok((b"abc0123456789".to_vec(), None))
        );
        assert_eq!(decode(b"0\r\n\r\n"), Ok((Vec::new(), None)));
    }

    #[test]
    fn hex_sizes() {
        let data = vec![b'x'; 0x1af];
        for size in ["1af", "1AF", "1aF", "00001af"] {
            let mut input = format!("{size}\r\n").into_bytes();
            input.extend_from_slice(&data);
            input.extend_from_slice(b"\r\n0\r\n\r\n");
            assert_eq!(decode(&input).unwrap().0, data, "{size}");
        }
    }

    #[test]
    fn bare_lf_is_accepted() {
        assert_eq!(
            decode(b"5\nhello\n0\nX: y\n\n"),
            Ok((b"hello".to_vec(), Some(Bytes::from_static(b"X: y\r\n"))))
        );
    }

    #[test]
    fn data_comes_out_in_pieces_without_framing() {
        let mut dec = ChunkedDecoder::new(0);
        let mut buf = BytesMut::from(&b"a\r\n01234"[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Some(ChunkEvent::Data(Bytes::from_static(b"01234"))))
        );
        assert_eq!(dec.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"56789\r\n0\r\n\r\nGET");
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Some(ChunkEvent::Data(Bytes::from_static(b"56789"))))
        );
        assert_eq!(dec.decode(&mut buf), Ok(Some(ChunkEvent::End(None))));
        assert!(dec.is_done());
        // What follows the body stays, and a finished decoder takes nothing.
        assert_eq!(&buf[..], b"GET");
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert_eq!(&buf[..], b"GET");
    }

    #[test]
    fn size_overflow() {
        assert_eq!(invalid(b"10000000000000000\r\n"), "chunk size overflows");
        assert_eq!(invalid(b"fffffffffffffffff\r\n"), "chunk size overflows");
        // Sixteen digits fit, also behind leading zeros.
        let mut dec = ChunkedDecoder::new(0);
        let mut buf = BytesMut::from(&b"0000ffffffffffffffff\r\nab"[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Some(ChunkEvent::Data(Bytes::from_static(b"ab"))))
        );
    }

    #[test]
    fn size_must_be_hex() {
        assert_eq!(invalid(b"g\r\n"), "chunk size is not a hex number");
        assert_eq!(invalid(b"-1\r\n"), "chunk size is not a hex number");
        assert_eq!(
            invalid(b"+1\r\nx\r\n0\r\n\r\n"),
            "chunk size is not a hex number"
        );
        invalid(b"0x5\r\nhello\r\n0\r\n\r\n");
        invalid(b"5g\r\nhello\r\n0\r\n\r\n");
    }

    #[test]
    fn empty_size_is_refused() {
        assert_eq!(
            invalid(b"\r\nhello\r\n0\r\n\r\n"),
            "chunk size is not a hex number"
        );
        assert_eq!(invalid(b";ext\r\n"), "chunk size is not a hex number");
    }

    #[test]
    fn whitespace_around_size() {
        // Leading whitespace is not in the grammar.
        invalid(b" 5\r\nhello\r\n0\r\n\r\n");
        invalid(b"\t5\r\nhello\r\n0\r\n\r\n");
        // Whitespace after the size is only BWS before an extension.
        invalid(b"5 \r\nhello\r\n0\r\n\r\n");
        invalid(b"5 5\r\nhello\r\n0\r\n\r\n");
        assert_eq!(
            decode(b"5 \t; a\r\nhello\r\n0\r\n\r\n").unwrap().0,
            b"hello"
        );
    }

    #[test]
    fn missing_crlf_after_data() {
        assert_eq!(
            invalid(b"5\r\nhelloX\r\n0\r\n\r\n"),
            "missing CRLF after chunk data"
        );
        assert_eq!(
            invalid(b"5\r\nhello0\r\n\r\n"),
            "missing CRLF after chunk data"
        );
        assert_eq!(
            invalid(b"3\r\nhello\r\n0\r\n\r\n"),
            "missing CRLF after chunk data"
        );
        assert_eq!(invalid(b"5\r\nhello\rX"), "bare CR after chunk data");
    }

    #[test]
    fn bare_cr_is_refused() {
        assert_eq!(
            invalid(b"5\rhello\r\n0\r\n\r\n"),
            "bare CR in chunk size line"
        );
        assert_eq!(invalid(b"5;a\r\r\nhello\r\n"), "bare CR in chunk size line");
        assert_eq!(invalid(b"0\r\nX: a\rb\r\n\r\n"), "bare CR in trailer");
        assert_eq!(invalid(b"0\r\n\rX"), "bare CR after trailers");
    }

    #[test]
    fn extensions_are_validated_and_dropped() {
        for ext in [
            &b";a"[..],
            b";a=b",
            b";a=b;c",
            b" ; a = b ; c=d",
            b";a=\"quoted; \\\" value\"",
            b";a=\"\"",
            b";a=\"x\" ;b",
            b";a;b;c=1",
            b";!#$%&'*+-.^_`|~=x",
        ] {
            let mut input = b"5".to_vec();
            input.extend_from_slice(ext);
            input.extend_from_slice(b"\r\nhello\r\n0");
            input.extend_from_slice(ext);
            input.extend_from_slice(b"\r\n\r\n");
            assert_eq!(
                decode(&input).unwrap().0,
                b"hello",
                "{:?}",
                String::from_utf8_lossy(ext)
            );
        }
    }

    #[test]
    fn bad_extensions_are_refused() {
        for ext in [
            &b";"[..],
            b"; ",
            b";a=",
            b";a =",
            b";=b",
            b";a b",
            b";a=b c",
            b";a=\"open",
            b";a=\"x\"y",
            b";a=\"\x01\"",
            b";a=b ",
            b";a ",
            b";a=(b)",
            b";a=\"\\\x01\"",
            b";\xc3\xa9",
        ] {
            let mut input = b"5".to_vec();
            input.extend_from_slice(ext);
            input.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
            invalid(&input);
        }
    }

    #[test]
    fn extension_length_is_capped() {
        let mut input = b"5;a=".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_SIZE_LINE));
        input.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert_eq!(invalid(&input), "extension too long");
        // Just under the cap is fine (the line counts its CRLF).
        let mut input = b"5;a=".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_SIZE_LINE - 7));
        input.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert_eq!(decode(&input).unwrap().0, b"hello");
        // Endless leading zeros are capped the same way.
        let mut input = vec![b'0'; MAX_SIZE_LINE + 1];
        input.extend_from_slice(b"5\r\n");
        invalid(&input);
    }

    #[test]
    fn trailers() {
        assert_eq!(
            decode(b"5\r\nhello\r\n0\r\nX-A: 1\r\nX-B:two words \r\n\r\n"),
            Ok((
                b"hello".to_vec(),
                Some(Bytes::from_static(b"X-A: 1\r\nX-B:two words \r\n"))
            ))
        );
        assert_eq!(
            decode(b"0\r\nX-A:\r\n\r\n"),
            Ok((Vec::new(), Some(Bytes::from_static(b"X-A:\r\n"))))
        );
    }

    #[test]
    fn bad_trailers_are_refused() {
        for t in [
            &b"X-A: 1\r\n b\r\n"[..],
            b" X-A: 1\r\n",
            b"X-A : 1\r\n",
            b"X-A\r\n",
            b": 1\r\n",
            b"X-A: \x00\r\n",
            b"X-A: \x7f\r\n",
            b"X(A): 1\r\n",
        ] {
            let mut input = b"0\r\n".to_vec();
            input.extend_from_slice(t);
            input.extend_from_slice(b"\r\n");
            invalid(&input);
        }
    }

    #[test]
    fn trailer_size_is_capped() {
        let input = b"0\r\nX-A: 12345\r\n\r\n";
        // Stored as `X-A: 12345\r\n`: 12 bytes.
        assert!(decode_split(input, 100, 12).is_ok());
        assert_eq!(
            decode_split(input, 100, 11),
            Err(CodecError::InvalidChunk("trailers too large"))
        );
        assert_eq!(
            decode_split(input, 1, 11),
            Err(CodecError::InvalidChunk("trailers too large"))
        );
    }

    #[test]
    fn write_sizes() {
        for (len, text) in [
            (1usize, "1\r\n"),
            (15, "f\r\n"),
            (255, "ff\r\n"),
            (4096, "1000\r\n"),
            (0xabcdef, "abcdef\r\n"),
        ] {
            let mut out = BytesMut::new();
            write_chunk_size(len, &mut out);
            assert_eq!(&out[..], text.as_bytes());
        }
    }

    #[test]
    fn write_whole_body() {
        let mut out = BytesMut::new();
        write_chunk_size(5, &mut out);
        out.extend_from_slice(b"hello");
        write_chunk_end(&mut out);
        write_last_chunk(None, &mut out);
        assert_eq!(&out[..], b"5\r\nhello\r\n0\r\n\r\n");
        let mut out = BytesMut::new();
        write_last_chunk(Some(b"A: 1\r\nB: 2\r\n"), &mut out);
        assert_eq!(&out[..], b"0\r\nA: 1\r\nB: 2\r\n\r\n");
        let mut out = BytesMut::new();
        write_last_chunk(Some(b"A: 1"), &mut out);
        assert_eq!(&out[..], b"0\r\nA: 1\r\n\r\n");
        let mut out = BytesMut::new();
        write_last_chunk(Some(b""), &mut out);
        assert_eq!(&out[..], b"0\r\n\r\n");
    }

    #[test]
    fn written_trailers_decode_back() {
        let mut out = BytesMut::new();
        write_chunk_size(3, &mut out);
        out.extend_from_slice(b"abc");
        write_chunk_end(&mut out);
        write_last_chunk(Some(b"Checksum: x\r\n"), &mut out);
        assert_eq!(
            decode(&out),
            Ok((
                b"abc".to_vec(),
                Some(Bytes::from_static(b"Checksum: x\r\n"))
            ))
        );
    }
}
