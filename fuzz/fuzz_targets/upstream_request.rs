//! The request head the gateway sends upstream.
//!
//! Input: `[options, bytes...]`. The bytes are parsed as a request head; when that
//! succeeds, `hop::write_upstream_request` builds the upstream head and the result is
//! parsed again. It must be exactly one request head with nothing after it, HTTP/1.1,
//! with exactly one Host, no hop-by-hop field and no field the client's Connection
//! named, Transfer-Encoding only (and only `chunked`) when the framing is chunked,
//! Content-Length only for a length framing, body framing as the gateway chose it,
//! one X-Forwarded-For / -Proto, at most one X-Forwarded-Host, and the client's
//! end-to-end fields in order: no smuggling vector through the rewritten head.
//!
//! `options` bits: 0-1 the outgoing framing (the client's, chunked, a length, or
//! close-delimited, which must write no framing field); 2 an IPv6 client address;
//! 3 https; 4 a Host override (the backend's authority); 5 a backend base path;
//! 6 the method changed to POST (as a policy may); 7 expand the bytes through
//! `REQUEST_TOKENS`.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portcullis_core::http::hop::{is_hop_by_hop, write_upstream_request, Forwarding, OutFraming};
use portcullis_core::http::{BodyFraming, Limits, RequestHead, Version};
use portcullis_fuzz::*;

/// Hop-by-hop field names (RFC 9110 7.6.1 and the usual extras), listed here
/// independently of the codec.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

/// Fields the gateway writes itself (client copies are dropped).
const GATEWAY_WRITTEN: [&str; 7] = [
    "host",
    "content-length",
    "transfer-encoding",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "expect",
];

fn is_one_of(name: &[u8], names: &[&str]) -> bool {
    names
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

fuzz_target!(|data: &[u8]| {
    let [options, input @ ..] = data else {
        return;
    };
    let limits = Limits::default();
    let input = expand(input, options & 128 != 0, REQUEST_TOKENS);
    let mut buf = BytesMut::from(&input[..]);
    let Ok(Some(head)) = RequestHead::parse(&mut buf, &limits) else {
        return;
    };
    let client = ReqSummary::of(&head);

    // The framing the gateway picks: the client's, re-chunked, a fixed length or
    // (never valid for a request body, so it must write nothing) close-delimited.
    let framing = match options & 3 {
        0 => match head.framing {
            BodyFraming::Empty => OutFraming::None,
            BodyFraming::Length(n) => OutFraming::Length(n),
            BodyFraming::Chunked => OutFraming::Chunked,
            BodyFraming::CloseDelimited => unreachable!("request framing"),
        },
        1 => OutFraming::Chunked,
        2 => OutFraming::Length(u64::from((options >> 2) & 31)),
        _ => OutFraming::Close,
    };
    let fwd = Forwarding {
        client_ip: if options & 4 == 0 {
            b"192.0.2.7"
        } else {
            b"2001:db8::7"
        },
        proto: if options & 8 == 0 { b"http" } else { b"https" },
        host_override: (options & 16 != 0).then_some(&b"backend.internal:8080"[..]),
        traceparent: None,
        upgrade: None,
    };
    // In pieces, the way the proxy joins backend base path, path and query.
    let base: &[u8] = if options & 32 != 0 { b"/base" } else { b"" };
    let (q_sep, q): (&[u8], &[u8]) = match head.query() {
        Some(q) => (b"?", q),
        None => (b"", b""),
    };
    let path: Vec<&[u8]> = vec![base, head.path(), q_sep, q];
    // A policy may change the method (not for `OPTIONS *`, whose target needs it).
    let method = if options & 64 != 0 && head.path_and_query() != b"*" {
        http::Method::POST
    } else {
        head.method.clone()
    };

    let mut out = BytesMut::new();
    write_upstream_request(&head, &method, &path, framing, &fwd, &mut out);
    let written = out.clone();
    let text = || String::from_utf8_lossy(&written).into_owned();

    // Limits wide enough for what the gateway adds: the point is the shape of the
    // head, not the client's limits.
    let wide = Limits {
        max_head_bytes: out.len().max(limits.max_head_bytes),
        max_headers: head.headers.len() + 8,
        ..limits
    };
    let up = match RequestHead::parse(&mut out, &wide) {
        Ok(Some(up)) => ReqSummary::of(&up),
        other => panic!("upstream head does not parse: {other:?}\n{}", text()),
    };
    assert!(out.is_empty(), "bytes after the upstream head:\n{}", text());
    assert_eq!(up.raw, &written[..]);

    assert_eq!(up.version, Version::Http11);
    assert_eq!(up.method, method);
    assert_eq!(up.path_and_query, path.concat(), "{}", text());
    assert_eq!(up.target_authority, None);

    // Exactly one Host, the override or the client's authority (empty without one).
    let hosts: Vec<&[u8]> = named(&up.headers, "host").collect();
    let expected_host = fwd
        .host_override
        .map(<[u8]>::to_vec)
        .or_else(|| client.authority.clone())
        .unwrap_or_default();
    assert_eq!(hosts, [&expected_host[..]], "{}", text());

    // No hop-by-hop field except the gateway's own Transfer-Encoding: chunked.
    let (_, _, connection_names) = connection_tokens(&client.headers);
    for (name, value) in &up.headers {
        assert_eq!(
            is_hop_by_hop(name),
            is_one_of(name, &HOP_BY_HOP),
            "is_hop_by_hop({name:?})"
        );
        if is_one_of(name, &HOP_BY_HOP) {
            assert!(
                name.eq_ignore_ascii_case(b"transfer-encoding") && value == b"chunked",
                "hop-by-hop field {:?} forwarded:\n{}",
                String::from_utf8_lossy(name),
                text()
            );
        }
        if !is_one_of(name, &GATEWAY_WRITTEN) {
            assert!(
                !connection_names.contains(&name.to_ascii_lowercase()),
                "field named in Connection forwarded:\n{}",
                text()
            );
        }
        assert!(!name.eq_ignore_ascii_case(b"expect"), "Expect forwarded");
    }

    // Framing exactly as chosen: TE only for chunked, CL only for a length.
    let te = named(&up.headers, "transfer-encoding").count();
    let cl: Vec<&[u8]> = named(&up.headers, "content-length").collect();
    let (expected_te, expected_cl, expected_framing) = match framing {
        OutFraming::None | OutFraming::Close => (0, None, BodyFraming::Empty),
        OutFraming::Length(n) => (0, Some(n.to_string()), length_framing(n)),
        OutFraming::Chunked => (1, None, BodyFraming::Chunked),
    };
    assert_eq!(te, expected_te, "Transfer-Encoding fields:\n{}", text());
    assert_eq!(
        cl,
        expected_cl.iter().map(|s| s.as_bytes()).collect::<Vec<_>>(),
        "Content-Length fields:\n{}",
        text()
    );
    assert_eq!(up.framing, expected_framing, "{}", text());
    assert!(up.keep_alive);
    assert!(!up.expect_continue && !up.expect_unsupported);

    // X-Forwarded-*: one each, the client's list (unless Connection named it) then
    // this hop; the original authority as X-Forwarded-Host.
    let xff_dropped = connection_names.iter().any(|n| n == b"x-forwarded-for");
    let mut expected_xff: Vec<&[u8]> = Vec::new();
    if !xff_dropped {
        for v in named(&client.headers, "x-forwarded-for") {
            expected_xff.extend(list(v));
        }
    }
    expected_xff.push(fwd.client_ip);
    let expected_xff = expected_xff.join(&b", "[..]);
    let xff: Vec<&[u8]> = named(&up.headers, "x-forwarded-for").collect();
    assert_eq!(xff, [&expected_xff[..]], "{}", text());
    let xfp: Vec<&[u8]> = named(&up.headers, "x-forwarded-proto").collect();
    assert_eq!(xfp, [fwd.proto]);
    let xfh: Vec<&[u8]> = named(&up.headers, "x-forwarded-host").collect();
    let expected_xfh: Vec<&[u8]> = client
        .authority
        .as_deref()
        .filter(|a| !a.is_empty())
        .into_iter()
        .collect();
    assert_eq!(xfh, expected_xfh, "{}", text());

    // The client's end-to-end fields, in order, unchanged.
    let forwarded: Fields = client
        .headers
        .iter()
        .filter(|(n, _)| {
            !is_one_of(n, &HOP_BY_HOP)
                && !is_one_of(n, &GATEWAY_WRITTEN)
                && !connection_names.contains(&n.to_ascii_lowercase())
        })
        .cloned()
        .collect();
    let passed: Fields = up
        .headers
        .iter()
        .filter(|(n, _)| !is_one_of(n, &GATEWAY_WRITTEN))
        .cloned()
        .collect();
    assert_eq!(passed, forwarded, "end-to-end fields:\n{}", text());
});
