//! Streaming body decoding: content-length, chunked and close-delimited bodies.

use bytes::{Bytes, BytesMut};

use super::chunked::{ChunkEvent, ChunkedDecoder};
use super::{BodyFraming, CodecError};

/// What the decoder produced from the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEvent {
    /// Payload bytes (chunk framing removed), split off the input without copying.
    Data(Bytes),
    /// The body is complete. For a chunked body, its trailer field lines
    /// (`name: value\r\n` each, validated, without the final empty line), if any.
    End {
        /// Raw trailer field lines, or `None` when there were none.
        trailers: Option<Bytes>,
    },
}

/// Decodes one message body incrementally, never holding more than it was handed.
#[derive(Debug)]
pub struct BodyDecoder {
    kind: Kind,
    /// Payload bytes handed out so far.
    decoded: u64,
    max_body: Option<u64>,
}

#[derive(Debug)]
enum Kind {
    /// No body: the next `decode` returns `End`.
    Empty,
    /// Content-Length: this many bytes left (0: the next `decode` returns `End`).
    Length {
        remaining: u64,
    },
    Chunked(ChunkedDecoder),
    /// Until the connection closes.
    Close,
    /// `End` was returned.
    Done,
}

impl BodyDecoder {
    /// A decoder for a body with this framing; `max_body` is the payload limit
    /// (exceeding it gives `BodyTooLarge`), `max_trailer` the trailer section limit.
    pub fn new(framing: BodyFraming, max_body: Option<u64>, max_trailer: usize) -> Self {
        let kind = match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => Kind::Empty,
            BodyFraming::Length(n) => Kind::Length { remaining: n },
            BodyFraming::Chunked => Kind::Chunked(ChunkedDecoder::new(max_trailer)),
            BodyFraming::CloseDelimited => Kind::Close,
        };
        BodyDecoder {
            kind,
            decoded: 0,
            max_body,
        }
    }

    /// Takes body bytes from the front of `buf`. `Ok(None)`: need more input.
    /// Bytes after the end of the body (a pipelined request) stay in `buf`.
    /// After `End` is returned, further calls return `Ok(None)`.
    ///
    /// `Data` is never empty. A Content-Length body larger than `max_body` fails on
    /// the first call, before any of it is handed out; other bodies fail when the
    /// payload would pass the limit.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BodyEvent>, CodecError> {
        match &mut self.kind {
            Kind::Done => Ok(None),
            Kind::Empty | Kind::Length { remaining: 0 } => {
                self.kind = Kind::Done;
                Ok(Some(BodyEvent::End { trailers: None }))
            }
            Kind::Length { remaining } => {
                if let Some(max) = self.max_body {
                    if self.decoded.saturating_add(*remaining) > max {
                        return Err(CodecError::BodyTooLarge(max));
                    }
                }
                if buf.is_empty() {
                    return Ok(None);
                }
                // Bounded by buf.len(), so the cast back to usize is lossless.
                let n = (*remaining).min(buf.len() as u64) as usize;
                *remaining -= n as u64;
                self.decoded += n as u64;
                Ok(Some(BodyEvent::Data(buf.split_to(n).freeze())))
            }
            Kind::Chunked(dec) => match dec.decode(buf)? {
                None => Ok(None),
                Some(ChunkEvent::Data(data)) => self.count(data).map(Some),
                Some(ChunkEvent::End(trailers)) => {
                    self.kind = Kind::Done;
                    Ok(Some(BodyEvent::End { trailers }))
                }
            },
            Kind::Close => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let data = buf.split().freeze();
                self.count(data).map(Some)
            }
        }
    }

    /// Counts `data` against the limit and wraps it as an event.
    fn count(&mut self, data: Bytes) -> Result<BodyEvent, CodecError> {
        let total = self.decoded.saturating_add(data.len() as u64);
        if let Some(max) = self.max_body {
            if total > max {
                return Err(CodecError::BodyTooLarge(max));
            }
        }
        self.decoded = total;
        Ok(BodyEvent::Data(data))
    }

    /// The stream ended: `End` for a close-delimited body, `Truncated` otherwise
    /// unless the body was already complete.
    pub fn finish_on_eof(&mut self) -> Result<BodyEvent, CodecError> {
        match self.kind {
            Kind::Close | Kind::Empty | Kind::Length { remaining: 0 } | Kind::Done => {
                self.kind = Kind::Done;
                Ok(BodyEvent::End { trailers: None })
            }
            Kind::Length { .. } | Kind::Chunked(_) => Err(CodecError::Truncated),
        }
    }

    /// Whether `End` has been returned.
    pub fn is_done(&self) -> bool {
        matches!(self.kind, Kind::Done)
    }

    /// Payload bytes decoded so far.
    pub fn payload_len(&self) -> u64 {
        self.decoded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(b: &'static [u8]) -> Option<BodyEvent> {
        Some(BodyEvent::Data(Bytes::from_static(b)))
    }

    const END: Option<BodyEvent> = Some(BodyEvent::End { trailers: None });

    #[test]
    fn empty_body_ends_at_once() {
        let mut dec = BodyDecoder::new(BodyFraming::Empty, None, 0);
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert!(!dec.is_done());
        assert_eq!(dec.decode(&mut buf), Ok(END));
        assert!(dec.is_done());
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), 16);
        assert_eq!(dec.payload_len(), 0);
        let mut dec = BodyDecoder::new(BodyFraming::Length(0), None, 0);
        assert_eq!(dec.decode(&mut BytesMut::new()), Ok(END));
    }

    #[test]
    fn content_length_body() {
        let mut dec = BodyDecoder::new(BodyFraming::Length(8), None, 0);
        let mut buf = BytesMut::new();
        assert_eq!(dec.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"abc");
        assert_eq!(dec.decode(&mut buf), Ok(data(b"abc")));
        assert_eq!(dec.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"defghNEXT");
        assert_eq!(dec.decode(&mut buf), Ok(data(b"defgh")));
        assert_eq!(dec.payload_len(), 8);
        assert!(!dec.is_done());
        assert_eq!(dec.decode(&mut buf), Ok(END));
        assert!(dec.is_done());
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert_eq!(&buf[..], b"NEXT");
    }

    #[test]
    fn chunked_body() {
        let mut dec = BodyDecoder::new(BodyFraming::Chunked, None, 100);
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n0\r\nT: 1\r\n\r\nNEXT"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(data(b"abc")));
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Some(BodyEvent::End {
                trailers: Some(Bytes::from_static(b"T: 1\r\n"))
            }))
        );
        assert!(dec.is_done());
        assert_eq!(dec.payload_len(), 3);
        assert_eq!(&buf[..], b"NEXT");
    }

    #[test]
    fn close_delimited_body() {
        let mut dec = BodyDecoder::new(BodyFraming::CloseDelimited, None, 0);
        let mut buf = BytesMut::new();
        assert_eq!(dec.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"everything");
        assert_eq!(dec.decode(&mut buf), Ok(data(b"everything")));
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert!(!dec.is_done());
        assert_eq!(dec.finish_on_eof(), Ok(BodyEvent::End { trailers: None }));
        assert!(dec.is_done());
        assert_eq!(dec.payload_len(), 10);
    }

    #[test]
    fn body_limit() {
        // A declared length over the limit fails before any byte is handed out.
        let mut dec = BodyDecoder::new(BodyFraming::Length(11), Some(10), 0);
        let e = dec
            .decode(&mut BytesMut::from(&b"0123456789x"[..]))
            .unwrap_err();
        assert_eq!(e, CodecError::BodyTooLarge(10));
        assert_eq!(e.status(), 413);
        let mut dec = BodyDecoder::new(BodyFraming::Length(10), Some(10), 0);
        assert_eq!(
            dec.decode(&mut BytesMut::from(&b"0123456789"[..])),
            Ok(data(b"0123456789"))
        );
        // Chunked and close-delimited bodies fail when they pass it.
        let mut dec = BodyDecoder::new(BodyFraming::Chunked, Some(4), 0);
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(data(b"abc")));
        assert_eq!(dec.decode(&mut buf), Err(CodecError::BodyTooLarge(4)));
        let mut dec = BodyDecoder::new(BodyFraming::Chunked, Some(5), 0);
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(data(b"abc")));
        assert_eq!(dec.decode(&mut buf), Ok(data(b"de")));
        assert_eq!(dec.decode(&mut buf), Ok(END));
        let mut dec = BodyDecoder::new(BodyFraming::CloseDelimited, Some(3), 0);
        assert_eq!(
            dec.decode(&mut BytesMut::from(&b"abc"[..])),
            Ok(data(b"abc"))
        );
        assert_eq!(
            dec.decode(&mut BytesMut::from(&b"d"[..])),
            Err(CodecError::BodyTooLarge(3))
        );
    }

    #[test]
    fn eof_before_the_end_is_truncation() {
        let mut dec = BodyDecoder::new(BodyFraming::Length(5), None, 0);
        assert_eq!(
            dec.decode(&mut BytesMut::from(&b"abc"[..])),
            Ok(data(b"abc"))
        );
        assert_eq!(dec.finish_on_eof(), Err(CodecError::Truncated));
        let mut dec = BodyDecoder::new(BodyFraming::Chunked, None, 0);
        assert_eq!(
            dec.decode(&mut BytesMut::from(&b"3\r\nabc\r\n"[..])),
            Ok(data(b"abc"))
        );
        assert_eq!(dec.finish_on_eof(), Err(CodecError::Truncated));
        assert_eq!(CodecError::Truncated.status(), 400);
    }

    #[test]
    fn eof_after_the_end_is_fine() {
        let mut dec = BodyDecoder::new(BodyFraming::Length(3), None, 0);
        assert_eq!(
            dec.decode(&mut BytesMut::from(&b"abc"[..])),
            Ok(data(b"abc"))
        );
        // All bytes are in even though End was not returned yet.
        assert_eq!(dec.finish_on_eof(), Ok(BodyEvent::End { trailers: None }));
        assert!(dec.is_done());
        assert_eq!(dec.finish_on_eof(), Ok(BodyEvent::End { trailers: None }));
        let mut dec = BodyDecoder::new(BodyFraming::Empty, None, 0);
        assert_eq!(dec.finish_on_eof(), Ok(BodyEvent::End { trailers: None }));
        let mut dec = BodyDecoder::new(BodyFraming::Chunked, None, 0);
        assert_eq!(dec.decode(&mut BytesMut::from(&b"0\r\n\r\n"[..])), Ok(END));
        assert_eq!(dec.finish_on_eof(), Ok(BodyEvent::End { trailers: None }));
    }

    #[test]
    fn chunk_errors_pass_through() {
        let mut dec = BodyDecoder::new(BodyFraming::Chunked, None, 0);
        assert!(matches!(
            dec.decode(&mut BytesMut::from(&b"zz\r\n"[..])),
            Err(CodecError::InvalidChunk(_))
        ));
    }
}
