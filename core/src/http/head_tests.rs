//! Tests of head parsing ([`super`]).

use super::*;

fn parse_with(s: &[u8], limits: &Limits) -> Result<Option<RequestHead>, CodecError> {
    let mut buf = BytesMut::from(s);
    RequestHead::parse(&mut buf, limits)
}

fn parse(s: &[u8]) -> Result<Option<RequestHead>, CodecError> {
    parse_with(s, &Limits::default())
}

fn ok(s: &[u8]) -> RequestHead {
    parse(s).unwrap().expect("complete head")
}

fn err(s: &[u8]) -> CodecError {
    parse(s).expect_err("an error")
}

fn malformed(s: &[u8]) {
    match parse(s) {
        Err(CodecError::Malformed(_)) => {}
        other => panic!(
            "{:?}: expected Malformed, got {other:?}",
            String::from_utf8_lossy(s)
        ),
    }
}

fn resp(s: &[u8], method: &http::Method) -> Result<Option<ResponseHead>, CodecError> {
    let mut buf = BytesMut::from(s);
    ResponseHead::parse(&mut buf, &Limits::default(), method)
}

fn resp_ok(s: &[u8]) -> ResponseHead {
    resp(s, &http::Method::GET).unwrap().expect("complete head")
}

fn resp_err(s: &[u8]) -> CodecError {
    resp(s, &http::Method::GET).expect_err("an error")
}

#[test]
fn simple_get() {
    let text = b"GET /a/b?x=1&y HTTP/1.1\r\nHost: example.com:8080\r\nAccept:  */* \r\nX-Empty:\r\n\r\nNEXT";
    let mut buf = BytesMut::from(&text[..]);
    let h = RequestHead::parse(&mut buf, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..], b"NEXT");
    assert_eq!(&h.raw[..], &text[..text.len() - 4]);
    assert_eq!(h.method, http::Method::GET);
    assert_eq!(h.version, Version::Http11);
    assert_eq!(h.path_and_query(), b"/a/b?x=1&y");
    assert_eq!(h.path(), b"/a/b");
    assert_eq!(h.query(), Some(&b"x=1&y"[..]));
    assert_eq!(h.authority(), Some(&b"example.com:8080"[..]));
    assert_eq!(h.target_authority, None);
    assert_eq!(h.header("accept"), Some(&b"*/*"[..]));
    assert_eq!(h.header("x-empty"), Some(&b""[..]));
    assert_eq!(h.header("missing"), None);
    let pairs: Vec<_> = h.header_pairs().collect();
    assert_eq!(pairs[0], (&b"Host"[..], &b"example.com:8080"[..]));
    assert_eq!(pairs.len(), 3);
    assert_eq!(h.framing, BodyFraming::Empty);
    assert!(h.keep_alive);
    assert!(!h.expect_continue && !h.expect_unsupported);
}

#[test]
fn incomplete_head_leaves_buffer_alone() {
    let text = b"GET / HTTP/1.1\r\nHost: a\r\n";
    let mut buf = BytesMut::from(&text[..]);
    assert!(matches!(
        RequestHead::parse(&mut buf, &Limits::default()),
        Ok(None)
    ));
    assert_eq!(&buf[..], &text[..]);
    assert!(matches!(parse(b""), Ok(None)));
    assert!(matches!(parse(b"\r\n"), Ok(None)));
}

#[test]
fn one_byte_at_a_time() {
    let text = b"\r\nPOST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
    let mut buf = BytesMut::new();
    let mut head = None;
    for (i, &b) in text.iter().enumerate() {
        buf.extend_from_slice(&[b]);
        if let Some(h) = RequestHead::parse(&mut buf, &Limits::default()).unwrap() {
            assert_eq!(i, text.len() - 4, "complete exactly at the empty line");
            head = Some(h);
            break;
        }
    }
    let head = head.expect("parsed");
    assert_eq!(head.framing, BodyFraming::Length(3));
    assert_eq!(head.path_and_query(), b"/p");
    assert!(buf.is_empty());
}

#[test]
fn leading_empty_lines_are_skipped() {
    let h = ok(b"\r\n\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(h.raw.starts_with(b"GET / HTTP/1.1\r\n"));
    assert_eq!(h.path_and_query(), b"/");
    assert_eq!(h.host.map(|s| s.of(&h.raw)), Some(&b"a"[..]));
    // A CR not followed by LF among them is a bare CR.
    malformed(b"\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn leading_empty_lines_count_toward_the_limit() {
    let limits = Limits {
        max_head_bytes: 40,
        ..Limits::default()
    };
    let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"; // 27 bytes
    assert!(parse_with(head, &limits).unwrap().is_some());
    let mut text = b"\r\n".repeat(7);
    text.extend_from_slice(head);
    assert_eq!(
        parse_with(&text, &limits).unwrap_err(),
        CodecError::HeadTooLarge(40)
    );
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    let h = ok(b"GET / HTTP/1.1\nHost: a\nX: y\n\n");
    assert_eq!(h.header("x"), Some(&b"y"[..]));
}

// ---- smuggling: framing ----

#[test]
fn transfer_encoding_with_content_length_is_refused() {
    let e = err(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert_eq!(e, CodecError::TransferEncodingWithContentLength);
    assert_eq!(e.status(), 400);
    let e = err(
        b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 0\r\n\r\n",
    );
    assert_eq!(e, CodecError::TransferEncodingWithContentLength);
}

#[test]
fn differing_content_lengths_are_refused() {
    let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
    assert_eq!(e, CodecError::InvalidContentLength("conflicting values"));
    assert_eq!(e.status(), 400);
    let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n");
    assert_eq!(e, CodecError::InvalidContentLength("conflicting values"));
}

#[test]
fn identical_content_lengths_are_one() {
    let h =
        ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 , 5,5\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Length(5));
    let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Length(7));
}

#[test]
fn content_length_must_be_digits() {
    for bad in [
        &b"+5"[..],
        b"-1",
        b"5 5",
        b"0x10",
        b"5a",
        b"",
        b"5,",
        b",5",
        b"5,,5",
        b"1e3",
        b"\xd9\xa5", // Arabic-Indic digit five in UTF-8
    ] {
        let mut text = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ".to_vec();
        text.extend_from_slice(bad);
        text.extend_from_slice(b"\r\n\r\n");
        match parse(&text) {
            Err(CodecError::InvalidContentLength(_)) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn content_length_overflow() {
    let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n");
    assert_eq!(e, CodecError::InvalidContentLength("value too large"));
    let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Length(u64::MAX));
}

#[test]
fn zero_length_or_no_framing_is_empty() {
    let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Empty);
    let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Empty);
}

#[test]
fn chunked_framing() {
    for te in [
        &b"chunked"[..],
        b"Chunked",
        b"CHUNKED",
        b" chunked\t",
        b", chunked,",
    ] {
        let mut text = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ".to_vec();
        text.extend_from_slice(te);
        text.extend_from_slice(b"\r\n\r\n");
        assert_eq!(ok(&text).framing, BodyFraming::Chunked, "{te:?}");
    }
}

#[test]
fn final_coding_must_be_chunked() {
    for te in [
        &b"gzip"[..],
        b"chunked, gzip",
        b"identity",
        b"",
        b"xchunked",
        b"chunked;a=b",
    ] {
        let mut text = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ".to_vec();
        text.extend_from_slice(te);
        text.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            parse(&text).unwrap_err(),
            CodecError::ChunkedNotLast,
            "{te:?}"
        );
    }
    let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert_eq!(e, CodecError::ChunkedNotLast);
    assert_eq!(e.status(), 400);
}

#[test]
fn chunked_twice_is_refused() {
    let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n");
    assert_eq!(e, CodecError::ChunkedNotLast);
    let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(e, CodecError::ChunkedNotLast);
}

#[test]
fn other_codings_are_not_implemented() {
    let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_eq!(e, CodecError::UnsupportedTransferCoding);
    assert_eq!(e.status(), 501);
    let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(e, CodecError::UnsupportedTransferCoding);
}

#[test]
fn transfer_encoding_in_http10_is_faulty() {
    malformed(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
}

// ---- smuggling: field syntax ----

#[test]
fn obs_fold_is_refused() {
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n ,chunked\r\n\r\n");
}

#[test]
fn bare_cr_in_field_is_refused() {
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX:\rb\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX\r: b\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\n\rX: b\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n");
}

#[test]
fn bare_cr_in_request_line_is_refused() {
    malformed(b"GET\r/ HTTP/1.1\r\nHost: a\r\n\r\n");
    malformed(b"GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n");
    malformed(b"GET / HTTP/1.1\rHost: a\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\rHost: a\r\n\r\n");
}

#[test]
fn whitespace_before_colon_is_refused() {
    malformed(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n");
    malformed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n");
}

#[test]
fn invalid_token_chars_are_refused() {
    malformed(b"GE(T / HTTP/1.1\r\nHost: a\r\n\r\n");
    malformed(b"GE\"T / HTTP/1.1\r\nHost: a\r\n\r\n");
    malformed(b" GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    malformed(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX@Y: b\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX(Y): b\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: b\r\n\r\n");
    // Extension methods made of token characters are fine.
    assert_eq!(
        ok(b"PURGE / HTTP/1.1\r\nHost: a\r\n\r\n").method.as_str(),
        "PURGE"
    );
}

#[test]
fn control_chars_in_target_are_refused() {
    for c in [0u8, b'\t', 0x1f, 0x7f] {
        let mut text = b"GET /a".to_vec();
        text.push(c);
        text.extend_from_slice(b"b HTTP/1.1\r\nHost: a\r\n\r\n");
        malformed(&text);
    }
    // Not UTF-8.
    malformed(b"GET /a\xffb HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn control_chars_in_values_are_refused() {
    for c in [0u8, 1, 0x0b, 0x1f, 0x7f] {
        let mut text = b"GET / HTTP/1.1\r\nHost: a\r\nX: a".to_vec();
        text.push(c);
        text.extend_from_slice(b"b\r\n\r\n");
        malformed(&text);
    }
    // HTAB and obs-text are allowed.
    let h = ok(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\tb \xe2\x82\xac\r\n\r\n");
    assert_eq!(h.header("x"), Some(&b"a\tb \xe2\x82\xac"[..]));
}

// ---- request target ----

#[test]
fn absolute_form_target() {
    let h = ok(b"GET http://Api.Example.com:8080/v1/x?q=1 HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(
        h.target_authority.map(|s| s.of(&h.raw)),
        Some(&b"Api.Example.com:8080"[..])
    );
    assert_eq!(h.authority(), Some(&b"Api.Example.com:8080"[..]));
    assert_eq!(h.path_and_query(), b"/v1/x?q=1");
    assert_eq!(h.path(), b"/v1/x");
    assert_eq!(h.query(), Some(&b"q=1"[..]));
    let h = ok(b"GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(h.authority(), Some(&b"h"[..]));
    assert_eq!(h.path_and_query(), b"/");
    assert_eq!(h.path(), b"/");
    assert_eq!(h.query(), None);
    let h = ok(b"GET http://[::1]:80/ HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(h.authority(), Some(&b"[::1]:80"[..]));
}

#[test]
fn bad_absolute_forms_are_refused() {
    malformed(b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n");
    malformed(b"GET http://user@h/x HTTP/1.1\r\nHost: h\r\n\r\n");
    malformed(b"GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n");
    malformed(b"GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n");
    malformed(b"GET http:/h/x HTTP/1.1\r\nHost: h\r\n\r\n");
}

#[test]
fn other_target_forms() {
    let h = ok(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(h.path_and_query(), b"*");
    malformed(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n");
    malformed(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n");
    malformed(b"CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n");
    malformed(b"GET h:443 HTTP/1.1\r\nHost: h\r\n\r\n");
    malformed(b"GET a/b HTTP/1.1\r\nHost: h\r\n\r\n");
    malformed(b"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n");
}

// ---- Host ----

#[test]
fn host_rules() {
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nX: y\r\n\r\n"),
        CodecError::Malformed("missing Host field")
    );
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"),
        CodecError::Malformed("more than one Host field")
    );
    malformed(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n");
    let h = ok(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(h.host, None);
    assert_eq!(h.authority(), None);
    let h = ok(b"GET / HTTP/1.1\r\nHost:\r\n\r\n");
    assert_eq!(h.authority(), Some(&b""[..]));
}

// ---- versions ----

#[test]
fn versions() {
    assert_eq!(ok(b"GET / HTTP/1.0\r\n\r\n").version, Version::Http10);
    for v in [
        &b"HTTP/2.0"[..],
        b"HTTP/1.2",
        b"HTTP/3",
        b"HTTP/0.9",
        b"HTTP/11",
    ] {
        let mut text = b"GET / ".to_vec();
        text.extend_from_slice(v);
        text.extend_from_slice(b"\r\nHost: a\r\n\r\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e, CodecError::UnsupportedVersion, "{v:?}");
        assert_eq!(e.status(), 505);
    }
    for v in [
        &b"FOO/1.1"[..],
        b"http/1.1",
        b"HTTP/x.1",
        b"HTTP/1.1x",
        b"HTTP/1.10",
    ] {
        let mut text = b"GET / ".to_vec();
        text.extend_from_slice(v);
        text.extend_from_slice(b"\r\nHost: a\r\n\r\n");
        assert!(
            matches!(parse(&text), Err(CodecError::Malformed(_))),
            "{v:?}"
        );
    }
    // A request line without version (HTTP/0.9 style) never completes a
    // request-line and is refused once it ends.
    malformed(b"GET /\r\n\r\n");
}

// ---- limits ----

#[test]
fn head_too_large() {
    let big = "a".repeat(33 * 1024);
    // Incomplete and already over the limit.
    let text = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {big}");
    let e = err(text.as_bytes());
    assert_eq!(e, CodecError::HeadTooLarge(32 * 1024));
    assert_eq!(e.status(), 431);
    // Complete but over the limit.
    let text = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {big}\r\n\r\n");
    assert_eq!(err(text.as_bytes()), CodecError::HeadTooLarge(32 * 1024));
}

#[test]
fn head_of_exactly_the_limit_is_fine() {
    let limits = Limits::default();
    let prefix = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    let pad = limits.max_head_bytes - prefix.len() - 4;
    let text = format!("{prefix}{}\r\n\r\nrest", "b".repeat(pad));
    let mut buf = BytesMut::from(text.as_bytes());
    let h = RequestHead::parse(&mut buf, &limits).unwrap().unwrap();
    assert_eq!(h.raw.len(), limits.max_head_bytes);
    assert_eq!(&buf[..], b"rest");
    // One more byte and it is too large.
    let text = format!("{prefix}{}\r\n\r\n", "b".repeat(pad + 1));
    assert_eq!(
        err(text.as_bytes()),
        CodecError::HeadTooLarge(limits.max_head_bytes)
    );
}

fn with_fields(n: usize) -> Vec<u8> {
    let mut text = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 1..n {
        text.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    text.extend_from_slice(b"\r\n");
    text
}

#[test]
fn too_many_headers() {
    let e = err(&with_fields(101));
    assert_eq!(e, CodecError::TooManyHeaders(100));
    assert_eq!(e.status(), 431);
    // Also while the head is still incomplete.
    let text = with_fields(101);
    assert_eq!(
        err(&text[..text.len() - 2]),
        CodecError::TooManyHeaders(100)
    );
}

#[test]
fn exactly_max_headers_is_fine() {
    assert_eq!(ok(&with_fields(100)).headers.len(), 100);
}

#[test]
fn header_limit_above_the_stack_slots() {
    let limits = Limits {
        max_headers: 200,
        ..Limits::default()
    };
    let h = parse_with(&with_fields(200), &limits).unwrap().unwrap();
    assert_eq!(h.headers.len(), 200);
    assert_eq!(h.header("x-199"), Some(&b"v"[..]));
    assert_eq!(
        parse_with(&with_fields(201), &limits).unwrap_err(),
        CodecError::TooManyHeaders(200)
    );
}

// ---- connection handling ----

#[test]
fn keep_alive_http11() {
    assert!(ok(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").keep_alive);
    assert!(!ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
    assert!(!ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n").keep_alive);
    assert!(
        !ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x\r\nConnection: close\r\n\r\n").keep_alive
    );
    assert!(ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n").keep_alive);
}

#[test]
fn keep_alive_http10() {
    assert!(!ok(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(ok(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    assert!(ok(b"GET / HTTP/1.0\r\nConnection: foo, Keep-Alive\r\n\r\n").keep_alive);
    assert!(ok(b"GET / HTTP/1.0\r\nConnection: foo\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    assert!(!ok(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
    assert!(!ok(b"GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n").keep_alive);
}

#[test]
fn expect_handling() {
    let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
    assert!(h.expect_continue && !h.expect_unsupported);
    let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n");
    assert!(h.expect_continue);
    let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n");
    assert!(!h.expect_continue && h.expect_unsupported);
    let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, foo\r\n\r\n");
    assert!(h.expect_continue && h.expect_unsupported);
    // RFC 9110 10.1.1: ignored in HTTP/1.0.
    let h = ok(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
    assert!(!h.expect_continue && !h.expect_unsupported);
}

// ---- responses ----

#[test]
fn response_basics() {
    let text = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
    let mut buf = BytesMut::from(&text[..]);
    let h = ResponseHead::parse(&mut buf, &Limits::default(), &http::Method::GET)
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..], b"hello");
    assert_eq!(h.status, 200);
    assert_eq!(h.reason(), b"OK");
    assert_eq!(h.version, Version::Http11);
    assert_eq!(h.framing, BodyFraming::Length(5));
    assert!(h.keep_alive);
    assert_eq!(h.header("server"), Some(&b"x"[..]));
    assert_eq!(&h.raw[..], &text[..text.len() - 5]);
}

#[test]
fn response_reasons() {
    assert_eq!(
        resp_ok(b"HTTP/1.1 404 Not  Found \r\n\r\n").reason(),
        b"Not  Found "
    );
    assert_eq!(resp_ok(b"HTTP/1.1 200\r\n\r\n").reason(), b"");
    assert_eq!(resp_ok(b"HTTP/1.1 200 \r\n\r\n").reason(), b"");
    assert_eq!(
        resp_ok(b"HTTP/1.1 200 Gr\xfc\xdfe\r\n\r\n").reason(),
        b"Gr\xfc\xdfe"
    );
    assert_eq!(
        resp_ok(b"\r\nHTTP/1.1 201 Created\nX: y\n\n").reason(),
        b"Created"
    );
}

#[test]
fn response_framing() {
    assert_eq!(
        resp_ok(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").framing,
        BodyFraming::Chunked
    );
    let h = resp_ok(b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::CloseDelimited);
    assert!(!h.keep_alive);
    assert_eq!(
        resp_ok(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").framing,
        BodyFraming::Empty
    );
    let h = resp_ok(b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::CloseDelimited);
    assert!(!h.keep_alive);
}

#[test]
fn bodiless_responses() {
    for status in [100u16, 101, 103, 204, 304] {
        let text = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let h = resp_ok(text.as_bytes());
        assert_eq!(h.framing, BodyFraming::Empty, "{status}");
        assert!(h.keep_alive);
    }
    let h = resp(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        &http::Method::HEAD,
    )
    .unwrap()
    .unwrap();
    assert_eq!(h.framing, BodyFraming::Empty);
}

#[test]
fn response_framing_errors() {
    assert_eq!(
        resp_err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
        CodecError::TransferEncodingWithContentLength
    );
    assert_eq!(
        resp_err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        CodecError::UnsupportedTransferCoding
    );
    assert_eq!(
        resp_err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
        CodecError::UnsupportedTransferCoding
    );
    assert_eq!(
        resp_err(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        CodecError::ChunkedNotLast
    );
    assert_eq!(
        resp_err(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        CodecError::InvalidContentLength("conflicting values")
    );
    assert_eq!(
        resp_err(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
        CodecError::InvalidContentLength("not a decimal number")
    );
    assert!(matches!(
        resp_err(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        CodecError::Malformed(_)
    ));
}

#[test]
fn response_start_line_errors() {
    assert_eq!(
        resp_err(b"HTTP/2.0 200 OK\r\n\r\n"),
        CodecError::UnsupportedVersion
    );
    assert!(matches!(
        resp_err(b"HTTP/1.1 099 Low\r\n\r\n"),
        CodecError::Malformed(_)
    ));
    assert!(matches!(
        resp_err(b"HTTP/1.1 20 OK\r\n\r\n"),
        CodecError::Malformed(_)
    ));
    assert!(matches!(
        resp_err(b"HTTP/1.1 200 O\rK\r\n\r\n"),
        CodecError::Malformed(_)
    ));
    assert!(matches!(
        resp_err(b"ICY 200 OK\r\n\r\n"),
        CodecError::Malformed(_)
    ));
    assert!(matches!(
        resp_err(b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
        CodecError::Malformed(_)
    ));
    assert!(matches!(
        resp_err(b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n"),
        CodecError::Malformed(_)
    ));
}

#[test]
fn response_keep_alive() {
    assert!(
        !resp_ok(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n").keep_alive
    );
    assert!(!resp_ok(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").keep_alive);
    assert!(
        resp_ok(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n")
            .keep_alive
    );
    // Close-delimited can never be kept alive.
    assert!(!resp_ok(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n").keep_alive);
}

#[test]
fn response_limits() {
    let limits = Limits {
        max_head_bytes: 64,
        max_headers: 2,
        ..Limits::default()
    };
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"[..]);
    assert_eq!(
        ResponseHead::parse(&mut buf, &limits, &http::Method::GET).unwrap_err(),
        CodecError::TooManyHeaders(2)
    );
    let mut buf = BytesMut::from(format!("HTTP/1.1 200 OK\r\nA: {}", "x".repeat(64)).as_bytes());
    assert_eq!(
        ResponseHead::parse(&mut buf, &limits, &http::Method::GET).unwrap_err(),
        CodecError::HeadTooLarge(64)
    );
}
