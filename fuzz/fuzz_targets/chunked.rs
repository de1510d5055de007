//! Chunked body decoding.
//!
//! Input: `[trailer_limit, seed, body_limit, mode, bytes...]`; `mode` bit 0 expands
//! the bytes through `CHUNKED_TOKENS`. The bytes are decoded with
//! `ChunkedDecoder` whole and in pieces whose sizes come from a PRNG seeded with
//! `seed`; both must give the same data, the same end (trailers) or error, and the
//! same bytes left after the end. The data never exceeds the input. A body that
//! ends is re-encoded (one chunk per Data event, then the last chunk and the
//! trailers) and must decode to the same data, chunks and trailers with nothing left
//! over. `BodyDecoder` with chunked framing and a payload limit must agree with the
//! bare decoder, failing with BodyTooLarge exactly when the data passes the limit.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portcullis_core::http::chunked::{
    write_chunk_end, write_chunk_size, write_last_chunk, ChunkEvent, ChunkedDecoder,
};
use portcullis_core::http::{BodyDecoder, BodyEvent, BodyFraming, CodecError};
use portcullis_fuzz::{expand, Rng, CHUNKED_TOKENS};

/// How a decode ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    /// Input ran out before the end of the body.
    Incomplete,
    /// The body ended, with these trailer lines.
    End(Option<Vec<u8>>),
    Error(CodecError),
}

#[derive(Debug)]
struct Decoded {
    /// Data events in order.
    pieces: Vec<Vec<u8>>,
    status: Status,
    /// Bytes left after the end (the buffer plus what was not fed yet).
    leftover: Vec<u8>,
}

impl Decoded {
    fn data(&self) -> Vec<u8> {
        self.pieces.concat()
    }
}

/// One decoder step, as the bare chunked decoder and the body decoder both offer it.
enum Step {
    Data(Vec<u8>),
    End(Option<Vec<u8>>),
}

/// Feeds `input` in pieces of the sizes `sizes` gives, calling `decode` until it
/// needs more input, like a connection does; stops at the end or an error.
fn run(
    input: &[u8],
    mut sizes: impl FnMut() -> usize,
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<Step>, CodecError>,
) -> Decoded {
    let mut buf = BytesMut::new();
    let mut pieces = Vec::new();
    let mut fed = 0;
    let status = 'feed: loop {
        if fed == input.len() {
            break Status::Incomplete;
        }
        let n = sizes().clamp(1, input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        loop {
            match decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(Step::Data(d))) => {
                    assert!(!d.is_empty(), "empty Data event");
                    pieces.push(d);
                }
                Ok(Some(Step::End(t))) => {
                    if let Some(t) = &t {
                        assert!(!t.is_empty(), "empty trailers are None");
                        assert!(t.ends_with(b"\r\n"), "trailer lines end in CRLF");
                    }
                    // After the end the decoder takes nothing more.
                    let before = buf.len();
                    assert!(matches!(decode(&mut buf), Ok(None)));
                    assert_eq!(buf.len(), before, "bytes taken after the end");
                    break 'feed Status::End(t);
                }
                Err(e) => break 'feed Status::Error(e),
            }
        }
    };
    buf.extend_from_slice(&input[fed..]);
    Decoded {
        pieces,
        status,
        leftover: buf.to_vec(),
    }
}

fn chunked(
    input: &[u8],
    sizes: impl FnMut() -> usize,
    max_trailer: usize,
) -> (Decoded, ChunkedDecoder) {
    let mut dec = ChunkedDecoder::new(max_trailer);
    let out = run(input, sizes, |buf| {
        Ok(dec.decode(buf)?.map(|ev| match ev {
            ChunkEvent::Data(d) => Step::Data(d.to_vec()),
            ChunkEvent::End(t) => Step::End(t.map(|t| t.to_vec())),
        }))
    });
    (out, dec)
}

/// Whole-input and split decodes must agree (data merged: the pieces may differ).
fn assert_same(a: &Decoded, b: &Decoded, what: &str) {
    assert_eq!(a.status, b.status, "{what}: status");
    assert_eq!(a.data(), b.data(), "{what}: data");
    if !matches!(a.status, Status::Error(_)) {
        assert_eq!(a.leftover, b.leftover, "{what}: leftover");
    }
}

fuzz_target!(|data: &[u8]| {
    let [trailer_sel, seed, body_sel, mode, input @ ..] = data else {
        return;
    };
    let input = &expand(input, mode & 1 == 1, CHUNKED_TOKENS)[..];
    let max_trailer = if *trailer_sel < 128 {
        8 * 1024
    } else {
        usize::from(trailer_sel - 128)
    };
    let max_body = (*body_sel >= 128).then(|| u64::from(body_sel - 128) * 4);

    let (whole, dec) = chunked(input, || usize::MAX, max_trailer);
    let mut rng = Rng::new(u64::from(*seed));
    let (split, _) = chunked(input, || rng.piece(), max_trailer);
    assert_same(&whole, &split, "split");

    let data = whole.data();
    assert!(data.len() <= input.len(), "more data than input");
    assert!(
        data.len() + whole.leftover.len() <= input.len(),
        "data and leftover exceed the input"
    );
    assert_eq!(dec.is_done(), matches!(whole.status, Status::End(_)));
    match &whole.status {
        Status::Error(e) => {
            assert!(matches!(e, CodecError::InvalidChunk(_)), "{e:?}");
            assert_eq!(e.status(), 400);
        }
        Status::Incomplete => assert!(whole.leftover.is_empty(), "incomplete yet bytes left"),
        Status::End(_) => {}
    }

    // BodyDecoder over the same pieces: the same, unless the data passes the limit.
    let mut body = BodyDecoder::new(BodyFraming::Chunked, max_body, max_trailer);
    let mut rng = Rng::new(u64::from(*seed));
    let via_body = run(
        input,
        || rng.piece(),
        |buf| {
            Ok(body.decode(buf)?.map(|ev| match ev {
                BodyEvent::Data(d) => Step::Data(d.to_vec()),
                BodyEvent::End { trailers } => Step::End(trailers.map(|t| t.to_vec())),
            }))
        },
    );
    let got = via_body.data();
    assert_eq!(body.payload_len(), got.len() as u64);
    match max_body {
        Some(max) if data.len() as u64 > max => {
            assert_eq!(
                via_body.status,
                Status::Error(CodecError::BodyTooLarge(max))
            );
            assert_eq!(CodecError::BodyTooLarge(max).status(), 413);
            assert!(got.len() as u64 <= max, "data past the limit handed out");
            assert_eq!(got, data[..got.len()], "body data differs");
        }
        _ => {
            assert_same(&split, &via_body, "BodyDecoder");
            assert_eq!(body.is_done(), matches!(via_body.status, Status::End(_)));
            match (&via_body.status, body.finish_on_eof()) {
                (Status::End(_), Ok(BodyEvent::End { trailers: None })) => {}
                (Status::Incomplete, Err(CodecError::Truncated)) => {}
                (Status::Error(_), _) => {}
                (s, eof) => panic!("status {s:?} then EOF gives {eof:?}"),
            }
        }
    }

    // Round trip of a complete body: one chunk per Data event, then the trailers.
    let Status::End(trailers) = &whole.status else {
        return;
    };
    let mut encoded = BytesMut::new();
    for piece in &whole.pieces {
        write_chunk_size(piece.len(), &mut encoded);
        encoded.extend_from_slice(piece);
        write_chunk_end(&mut encoded);
    }
    write_last_chunk(trailers.as_deref(), &mut encoded);
    let (again, _) = chunked(&encoded, || usize::MAX, max_trailer);
    assert_eq!(again.status, whole.status, "round trip: end");
    assert_eq!(again.pieces, whole.pieces, "round trip: chunks");
    assert!(again.leftover.is_empty(), "round trip: bytes left over");
    let mut rng = Rng::new(u64::from(*seed) ^ 0x5a);
    let (again_split, _) = chunked(&encoded, || rng.piece(), max_trailer);
    assert_same(&again, &again_split, "round trip, split");
});
