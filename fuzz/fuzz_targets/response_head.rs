//! Response head parsing, for a GET and for a HEAD request.
//!
//! Input: `[split, limits, mode, bytes...]`; `mode` bit 0 picks HEAD as the request
//! method (else GET), bit 1 expands the bytes through `RESPONSE_TOKENS`. As for
//! requests: whole and split parses must end the same, a parsed head must agree with
//! an independent reading of its fields (framing, keep-alive), and re-encoding it
//! with `write_response_head` must parse back to the same response (an empty reason
//! comes back as the canonical one, which is what the encoder writes). Errors must
//! map to a status in {400, 413, 431, 501, 505}.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portcullis_core::http::encode::{canonical_reason, write_response_head};
use portcullis_core::http::{BodyFraming, HeadScanner, Limits, ResponseHead, Version};
use portcullis_fuzz::*;

/// Through the connection's `HeadScanner` (linear for heads sent in pieces).
fn scan(input: &[u8], at: usize, limits: &Limits, method: &http::Method) -> Parsed<RespSummary> {
    let mut scanner = HeadScanner::new();
    scan_in_two(input, at, |buf, eof| {
        scanner
            .parse_response(buf, limits, method, eof)
            .map(|h| h.as_ref().map(RespSummary::of))
    })
}

fn parse(input: &[u8], at: usize, limits: &Limits, method: &http::Method) -> Parsed<RespSummary> {
    parse_in_two(input, at, |buf| {
        ResponseHead::parse(buf, limits, method).map(|h| h.as_ref().map(RespSummary::of))
    })
}

/// What must hold for a response head the parser accepted.
fn check_response(h: &RespSummary, method: &http::Method) {
    assert!((100..=999).contains(&h.status), "status {}", h.status);
    assert!(!h
        .reason
        .iter()
        .any(|&b| b == b'\r' || b == b'\n' || (b < 0x20 && b != b'\t') || b == 0x7f));

    let bodiless = (100..200).contains(&h.status)
        || h.status == 204
        || h.status == 304
        || *method == http::Method::HEAD;
    if bodiless {
        assert_eq!(h.framing, BodyFraming::Empty);
    } else {
        match transfer_codings(&h.headers) {
            Some(codings) => {
                assert_eq!(h.version, Version::Http11, "Transfer-Encoding in 1.0");
                assert_eq!(named(&h.headers, "content-length").count(), 0, "TE + CL");
                match &codings[..] {
                    [] => assert_eq!(h.framing, BodyFraming::CloseDelimited),
                    [c] if c.eq_ignore_ascii_case(b"chunked") => {
                        assert_eq!(h.framing, BodyFraming::Chunked)
                    }
                    _ => panic!("accepted codings {codings:?}"),
                }
            }
            None => {
                let n = content_length(&h.headers).expect("accepted a bad Content-Length");
                let expected = n.map_or(BodyFraming::CloseDelimited, length_framing);
                assert_eq!(h.framing, expected);
            }
        }
    }
    assert_eq!(
        h.keep_alive,
        expected_keep_alive(h.version, &h.headers) && h.framing != BodyFraming::CloseDelimited
    );
}

/// The response re-encoded with `write_response_head` (which writes HTTP/1.1; the
/// version is patched for a 1.0 response so that the round trip covers it too).
fn encode(h: &RespSummary) -> BytesMut {
    let mut out = BytesMut::new();
    write_response_head(h.status, &h.reason, &field_refs(&h.headers), &mut out);
    assert!(out.starts_with(b"HTTP/1.1 "));
    if h.version == Version::Http10 {
        out[..8].copy_from_slice(b"HTTP/1.0");
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [split, limits, mode, input @ ..] = data else {
        return;
    };
    let limits = limits_from(*limits);
    let input = &expand(input, mode & 2 == 2, RESPONSE_TOKENS)[..];
    let method = if mode & 1 == 1 {
        http::Method::HEAD
    } else {
        http::Method::GET
    };

    let whole = parse(input, input.len(), &limits, &method);
    let at = split_point(*split, input.len());
    let pieces = parse(input, at, &limits, &method);
    assert_eq!(whole, pieces, "split at {at} changed the outcome");
    let scanned = scan(input, at, &limits, &method);
    assert_eq!(
        whole, scanned,
        "the scanner split at {at} changed the outcome"
    );

    let head = match whole.result {
        Err(e) => {
            check_error_status(&e);
            return;
        }
        Ok(None) => {
            assert_eq!(whole.leftover, input, "incomplete head consumed bytes");
            assert!(
                input.len() <= limits.max_head_bytes,
                "incomplete head of {} bytes over the limit {}",
                input.len(),
                limits.max_head_bytes
            );
            return;
        }
        Ok(Some(head)) => head,
    };
    check_head_bytes(
        input,
        &head.raw,
        &whole.leftover,
        &limits,
        head.headers.len(),
    );
    check_response(&head, &method);

    let encoded = encode(&head);
    let exact = Limits {
        max_head_bytes: encoded.len(),
        max_headers: head.headers.len(),
        ..limits
    };
    let mut buf = encoded.clone();
    let again = match ResponseHead::parse(&mut buf, &exact, &method) {
        Ok(Some(h)) => RespSummary::of(&h),
        other => panic!(
            "re-encoded head {:?} does not parse: {other:?}",
            String::from_utf8_lossy(&encoded)
        ),
    };
    assert!(buf.is_empty(), "bytes left after the re-encoded head");
    assert_eq!(again.raw, &encoded[..]);
    let mut expected = head.without_raw();
    if expected.reason.is_empty() {
        expected.reason = canonical_reason(head.status).to_vec();
    }
    assert_eq!(again.without_raw(), expected, "round trip");
    assert_eq!(encode(&again), encoded, "encoding is not stable");
});
