//! Request head parsing.
//!
//! Input: `[split, limits, mode, bytes...]`; `mode` bit 0 expands the bytes through
//! `REQUEST_TOKENS` (see `portcullis_fuzz::expand`). The bytes are parsed whole and
//! again in two pieces split at a point chosen by `split`; both must end the same
//! (same error, or same head and same bytes left over), and so must the two pieces
//! fed through the connection's `HeadScanner` (then end of stream). A parsed head must agree
//! with an independent reading of its fields (Host, framing, keep-alive, Expect), and
//! re-encoding it with `write_request_head` must parse back to the same request.
//! Errors must map to a status in {400, 413, 431, 501, 505}.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portcullis_core::http::encode::write_request_head;
use portcullis_core::http::{BodyFraming, HeadScanner, Limits, RequestHead, Version};
use portcullis_fuzz::*;

/// Through the connection's `HeadScanner` (linear for heads sent in pieces).
fn scan(input: &[u8], at: usize, limits: &Limits) -> Parsed<ReqSummary> {
    let mut scanner = HeadScanner::new();
    scan_in_two(input, at, |buf, eof| {
        scanner
            .parse_request(buf, limits, eof)
            .map(|h| h.as_ref().map(ReqSummary::of))
    })
}

fn parse(input: &[u8], at: usize, limits: &Limits) -> Parsed<ReqSummary> {
    parse_in_two(input, at, |buf| {
        RequestHead::parse(buf, limits).map(|h| h.as_ref().map(ReqSummary::of))
    })
}

/// What must hold for a request head the parser accepted, checked against the
/// fields themselves rather than the parser's own bookkeeping.
fn check_request(h: &ReqSummary) {
    assert_ne!(h.method, http::Method::CONNECT);
    let pq = &h.path_and_query[..];
    assert!(
        pq.first() == Some(&b'/') || (pq == b"*" && h.method == http::Method::OPTIONS),
        "target {pq:?}"
    );
    assert!(!pq.contains(&b'#'));
    assert!(!pq
        .iter()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control()));

    // Host: at most one, required in 1.1; the authority is the target's, else Host's.
    let hosts: Vec<&[u8]> = named(&h.headers, "host").collect();
    assert!(hosts.len() <= 1, "{} Host fields", hosts.len());
    assert_eq!(h.host.as_deref(), hosts.first().copied());
    if h.version == Version::Http11 {
        assert!(h.host.is_some(), "HTTP/1.1 without Host");
    }
    assert_eq!(
        h.authority,
        h.target_authority.clone().or_else(|| h.host.clone())
    );
    for a in [&h.host, &h.target_authority].into_iter().flatten() {
        assert!(!a
            .iter()
            .any(|&b| matches!(b, b'@' | b'/' | b'?' | b'#' | b' ' | b'\t')));
    }

    // Framing (RFC 9112 6.3): chunked only as the single, final coding, never with
    // Content-Length and never in 1.0; otherwise exactly the Content-Length.
    match transfer_codings(&h.headers) {
        Some(codings) => {
            assert_eq!(h.version, Version::Http11, "Transfer-Encoding in 1.0");
            assert_eq!(named(&h.headers, "content-length").count(), 0, "TE + CL");
            assert_eq!(codings.len(), 1, "codings {codings:?}");
            assert!(codings[0].eq_ignore_ascii_case(b"chunked"));
            assert_eq!(h.framing, BodyFraming::Chunked);
        }
        None => {
            let n = content_length(&h.headers).expect("accepted a bad Content-Length");
            assert_eq!(h.framing, length_framing(n.unwrap_or(0)));
        }
    }

    assert_eq!(h.keep_alive, expected_keep_alive(h.version, &h.headers));

    let mut cont = false;
    let mut other = false;
    for v in named(&h.headers, "expect") {
        for e in list(v) {
            if e.eq_ignore_ascii_case(b"100-continue") {
                cont = true;
            } else {
                other = true;
            }
        }
    }
    assert_eq!(h.expect_continue, cont && h.version == Version::Http11);
    assert_eq!(h.expect_unsupported, other);
}

/// The request re-encoded: request line (absolute form kept as `http://authority`),
/// the fields as pairs, CRLF line ends.
fn encode(h: &ReqSummary) -> BytesMut {
    let target = match &h.target_authority {
        Some(a) => [&b"http://"[..], a, &h.path_and_query].concat(),
        None => h.path_and_query.clone(),
    };
    let mut out = BytesMut::new();
    write_request_head(
        &h.method,
        &target,
        h.version,
        &field_refs(&h.headers),
        &mut out,
    );
    out
}

fuzz_target!(|data: &[u8]| {
    let [split, limits, mode, input @ ..] = data else {
        return;
    };
    let limits = limits_from(*limits);
    let input = &expand(input, mode & 1 == 1, REQUEST_TOKENS)[..];

    let whole = parse(input, input.len(), &limits);
    let at = split_point(*split, input.len());
    let pieces = parse(input, at, &limits);
    assert_eq!(whole, pieces, "split at {at} changed the outcome");
    let scanned = scan(input, at, &limits);
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
    check_request(&head);

    // Round trip: the re-encoded head parses to the same request, with nothing left
    // over, within limits that fit it exactly; and encoding that gives the same bytes.
    let encoded = encode(&head);
    let exact = Limits {
        max_head_bytes: encoded.len(),
        max_headers: head.headers.len(),
        ..limits
    };
    let mut buf = encoded.clone();
    let again = match RequestHead::parse(&mut buf, &exact) {
        Ok(Some(h)) => ReqSummary::of(&h),
        other => panic!(
            "re-encoded head {:?} does not parse: {other:?}",
            String::from_utf8_lossy(&encoded)
        ),
    };
    assert!(buf.is_empty(), "bytes left after the re-encoded head");
    assert_eq!(again.raw, &encoded[..]);
    assert_eq!(again.without_raw(), head.without_raw(), "round trip");
    assert_eq!(encode(&again), encoded, "encoding is not stable");
});
