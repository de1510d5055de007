//! Streaming body decoding: content-length, chunked and close-delimited bodies.

use bytes::{Bytes, BytesMut};

use super::{chunked::ChunkedDecoder, BodyFraming, CodecError};

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
    // private state; implementation chooses
    #[allow(dead_code)]
    kind: Kind,
}

#[derive(Debug)]
#[allow(dead_code)]
enum Kind {
    Empty,
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    Close,
    Done,
}

impl BodyDecoder {
    /// A decoder for a body with this framing; `max_body` is the payload limit
    /// (exceeding it gives `BodyTooLarge`), `max_trailer` the trailer section limit.
    pub fn new(framing: BodyFraming, max_body: Option<u64>, max_trailer: usize) -> Self {
        let _ = (framing, max_body, max_trailer);
        todo!()
    }

    /// Takes body bytes from the front of `buf`. `Ok(None)`: need more input.
    /// Bytes after the end of the body (a pipelined request) stay in `buf`.
    /// After `End` is returned, further calls return `Ok(None)`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BodyEvent>, CodecError> {
        let _ = buf;
        todo!()
    }

    /// The stream ended: `End` for a close-delimited body, `Truncated` otherwise
    /// unless the body was already complete.
    pub fn finish_on_eof(&mut self) -> Result<BodyEvent, CodecError> {
        todo!()
    }

    /// Whether `End` has been returned.
    pub fn is_done(&self) -> bool {
        todo!()
    }

    /// Payload bytes decoded so far.
    pub fn payload_len(&self) -> u64 {
        todo!()
    }
}
