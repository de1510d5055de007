//! The chunked transfer coding (RFC 9112 section 7.1): incremental decoder and encoder.

use bytes::{Bytes, BytesMut};

use super::CodecError;

/// What one step of chunked decoding produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkEvent {
    /// Chunk payload bytes (a chunk may come out in several pieces).
    Data(Bytes),
    /// Last chunk and trailer section read; trailer field lines if any.
    End(Option<Bytes>),
}

/// Incremental chunked decoder: validates sizes (hex only, no overflow), extensions,
/// CRLF after each chunk, and trailer fields; bare LF line endings are accepted,
/// bare CR is not.
#[derive(Debug)]
pub struct ChunkedDecoder {
    // private state; implementation chooses
}

impl ChunkedDecoder {
    /// A decoder whose trailer section may be at most `max_trailer` bytes.
    pub fn new(max_trailer: usize) -> Self {
        let _ = max_trailer;
        todo!()
    }

    /// Consumes bytes from the front of `buf`; `Ok(None)` means more input is needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ChunkEvent>, CodecError> {
        let _ = buf;
        todo!()
    }

    /// Whether the last chunk and trailers have been read.
    pub fn is_done(&self) -> bool {
        todo!()
    }
}

/// Appends the size line of a chunk of `len` bytes (`{hex}\r\n`); `len` must be > 0.
pub fn write_chunk_size(len: usize, out: &mut BytesMut) {
    let _ = (len, out);
    todo!()
}

/// Appends the CRLF that ends a chunk's data.
pub fn write_chunk_end(out: &mut BytesMut) {
    out.extend_from_slice(b"\r\n");
}

/// Appends the last chunk, the trailer field lines (if any) and the final CRLF.
pub fn write_last_chunk(trailers: Option<&[u8]>, out: &mut BytesMut) {
    let _ = (trailers, out);
    todo!()
}
