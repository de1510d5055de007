//! Request smuggling defences (RFC 9112), decided where they are made: the
//! connection machine driven in memory (`common::memory`) in front of a
//! recording in-memory backend, asserting on the exact bytes both ways. Every
//! ambiguous or malformed framing is answered with 400 (501 for an unknown
//! transfer coding), the connection is closed, and the request a lenient
//! parser would have seen hidden in the payload never reaches the backend.
//! On real sockets (`smuggling.rs`): that the error is read before an orderly
//! close, and the binary's `--allow-underscores-in-headers` flag.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::memory::*;
use common::{api, config, config_for, get, Reply};

/// What a smuggled request looks like; a backend seeing this path means an attack
/// got through.
const MARK: &str = "smuggled";

fn smuggled() -> String {
    format!("GET /api/{MARK} HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
}

/// Sends `payload` on a fresh connection, expects `status` and a close, and checks
/// that the backend saw nothing of the smuggled request. Returns the backend for
/// extra checks.
fn attack(payload: &[u8], status: u16) -> MemBackend {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    c.send_lossy(payload);
    let r = c.response();
    assert_eq!(
        r.status,
        status,
        "payload {:?} got {r:?}",
        String::from_utf8_lossy(payload)
    );
    assert!(
        r.says_close(),
        "error response must announce the close: {r:?}"
    );
    assert_eq!(r.json()["statusCode"], status);
    let linger = c.closed();
    let extra = c.unread();
    assert!(
        extra.is_empty(),
        "a second response came back for payload {:?}: {:?}",
        String::from_utf8_lossy(payload),
        String::from_utf8_lossy(&extra)
    );
    // An orderly close (our side first, the client's drained): a reset could
    // destroy the error response before the client reads it.
    assert_eq!(
        linger,
        Some(true),
        "payload {:?}",
        String::from_utf8_lossy(payload)
    );
    // The exact bytes: the one response just read, and nothing around it.
    let mut sent = r.raw_head().to_vec();
    sent.extend_from_slice(&r.body);
    assert_eq!(
        String::from_utf8_lossy(&c.written()),
        String::from_utf8_lossy(&sent),
        "payload {:?}",
        String::from_utf8_lossy(payload)
    );
    drop(c);
    backend.assert_nothing_smuggled(MARK);
    backend
}

/// An attack rejected at the head: the backend must not even be contacted.
fn head_attack(payload: &[u8], status: u16) {
    let backend = attack(payload, status);
    assert_eq!(
        backend.connections(),
        0,
        "backend was contacted: {:#?}",
        backend.requests()
    );
}

#[test]
fn transfer_encoding_with_content_length() {
    let payload = format!(
        "POST /api/a HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{}",
        smuggled()
    );
    head_attack(payload.as_bytes(), 400);
    // The other order, and the length a CL.TE attack would use.
    let tail = smuggled();
    let payload = format!(
        "POST /api/a HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{tail}",
        5 + tail.len()
    );
    head_attack(payload.as_bytes(), 400);
}

#[test]
fn differing_content_lengths() {
    let tail = smuggled();
    let payload = format!(
        "POST /api/a HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 5\r\nContent-Length: {}\r\n\r\nhello{tail}",
        5 + tail.len()
    );
    head_attack(payload.as_bytes(), 400);
    // In one field line.
    let payload = format!(
        "POST /api/a HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 5, {}\r\n\r\nhello{tail}",
        5 + tail.len()
    );
    head_attack(payload.as_bytes(), 400);
}

#[test]
fn invalid_content_length_values() {
    for cl in ["+5", "-5", "0x5", "5 5", "", "99999999999999999999999"] {
        let payload = format!(
            "POST /api/a HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: {cl}\r\n\r\nhello{}",
            smuggled()
        );
        head_attack(payload.as_bytes(), 400);
    }
}

#[test]
fn repeated_equal_content_length_is_accepted_once() {
    // RFC 9112 6.3 allows identical repeats; the backend must get one field.
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c.roundtrip(
        b"POST /api/a HTTP/1.1\r\nHost: g\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "hello");
    assert_eq!(backend.only_request().headers("content-length"), vec!["5"]);
    gw.stop();
}

#[test]
fn final_coding_not_chunked() {
    for te in ["chunked, identity", "chunked, chunked", "identity"] {
        let payload = format!(
            "POST /api/a HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n{}",
            smuggled()
        );
        head_attack(payload.as_bytes(), 400);
    }
    // Split over two field lines.
    let payload = format!(
        "POST /api/a HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n{}",
        smuggled()
    );
    head_attack(payload.as_bytes(), 400);
}

#[test]
fn unknown_transfer_coding_is_501() {
    for te in ["gzip, chunked", "x-custom, chunked"] {
        let payload = format!(
            "POST /api/a HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n{}",
            smuggled()
        );
        head_attack(payload.as_bytes(), 501);
    }
}

#[test]
fn transfer_encoding_in_http10() {
    let payload = format!(
        "POST /api/a HTTP/1.0\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{}",
        smuggled()
    );
    head_attack(payload.as_bytes(), 400);
}

#[test]
fn obs_fold() {
    // A folded Transfer-Encoding a lenient parser would unfold into "chunked".
    let payload = format!(
        "POST /api/a HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 5\r\nX-Folded: a\r\n Transfer-Encoding: chunked\r\n\r\nhello{}",
        smuggled()
    );
    head_attack(payload.as_bytes(), 400);
    let payload = format!(
        "GET /api/a HTTP/1.1\r\nHost: gateway.test\r\nX-Folded: first\r\n\tsecond\r\n\r\n{}",
        smuggled()
    );
    head_attack(payload.as_bytes(), 400);
}

#[test]
fn bare_cr() {
    for payload in [
        format!(
            "GET /api/a HTTP/1.1\r\nHost: gateway.test\r\nX-Bare: a\rTransfer-Encoding: chunked\r\n\r\n{}",
            smuggled()
        ),
        format!(
            "GET /api/a HTTP/1.1\rHost: gateway.test\r\n\r\n{}",
            smuggled()
        ),
        format!(
            "GET /api/a HTTP/1.1\r\nHost: gateway.test\r\n\r\r\n{}",
            smuggled()
        ),
    ] {
        head_attack(payload.as_bytes(), 400);
    }
}

#[test]
fn whitespace_before_colon() {
    for field in [
        "Transfer-Encoding : chunked",
        "Transfer-Encoding\t: chunked",
        "Content-Length : 5",
    ] {
        let payload = format!(
            "POST /api/a HTTP/1.1\r\nHost: gateway.test\r\n{field}\r\n\r\n0\r\n\r\n{}",
            smuggled()
        );
        head_attack(payload.as_bytes(), 400);
    }
}

#[test]
fn missing_or_repeated_host() {
    head_attack(
        format!("GET /api/a HTTP/1.1\r\n\r\n{}", smuggled()).as_bytes(),
        400,
    );
    head_attack(
        format!(
            "GET /api/a HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n{}",
            smuggled()
        )
        .as_bytes(),
        400,
    );
}

/// A chunked POST whose body is `body`, followed by the smuggled request.
fn chunked_attack(body: &str) -> Vec<u8> {
    format!(
        "POST /api/a HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n{body}{}",
        smuggled()
    )
    .into_bytes()
}

/// A body-level attack: the head was valid, so the backend may have been contacted
/// and may have seen the start of the body, but never a complete request nor any
/// byte of the smuggled one.
fn body_attack(body: &str) {
    let backend = attack(&chunked_attack(body), 400);
    for r in backend.requests() {
        assert!(
            !r.complete,
            "backend got a complete request from a broken body {body:?}: {r:#?}"
        );
    }
}

#[test]
fn invalid_chunk_size() {
    for body in [
        "zz\r\nhello\r\n0\r\n\r\n",
        "5\r\nhello\r\nxyz\r\n\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
        " 5\r\nhello\r\n0\r\n\r\n",
        "\r\nhello\r\n0\r\n\r\n",
    ] {
        body_attack(body);
    }
}

#[test]
fn chunk_size_overflow() {
    // 2^72 - 1 and friends: a parser that wraps around would read a small size.
    for body in [
        "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        "10000000000000005\r\nhello\r\n0\r\n\r\n",
    ] {
        let backend = attack(&chunked_attack(body), 400);
        assert!(backend.requests().iter().all(|r| !r.complete));
    }
}

#[test]
fn missing_crlf_after_chunk_data() {
    for body in [
        "5\r\nhelloXX0\r\n\r\n",
        "5\r\nhello0\r\n\r\n",
        "3\r\nhello\r\n0\r\n\r\n",
        "5\r\nhello\r0\r\n\r\n",
    ] {
        body_attack(body);
    }
}

#[test]
fn bare_cr_in_chunk_framing() {
    for body in ["5\rhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\r\n"] {
        body_attack(body);
    }
}

#[test]
fn valid_chunked_followed_by_a_pipelined_request_is_two_requests() {
    // The counterpart of the attacks: correctly framed, the second request is a
    // legitimate pipelined request and is proxied as such.
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    c.send(chunked_attack("5\r\nhello\r\n0\r\n\r\n"));
    let r1 = c.response();
    let r2 = c.response();
    assert_eq!(r1.body_str(), "hello");
    assert_eq!(r2.header("x-path").as_deref(), Some("/smuggled"));
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, b"hello");
    gw.stop();
}

#[test]
fn malformed_request_lines() {
    for payload in [
        "GET /api/a HTTP/1.1 extra\r\nHost: g\r\n\r\n",
        "GET  /api/a HTTP/1.1\r\nHost: g\r\n\r\n",
        "GET /api/a\r\nHost: g\r\n\r\n",
        "G(T /api/a HTTP/1.1\r\nHost: g\r\n\r\n",
        "GET /api/a HTTP/1.1\r\nBad Name: x\r\nHost: g\r\n\r\n",
        "GET /api/a HTTP/1.1\r\nX-Nul: a\0b\r\nHost: g\r\n\r\n",
    ] {
        head_attack(format!("{payload}{}", smuggled()).as_bytes(), 400);
    }
}

#[test]
fn unsupported_http_version_is_505() {
    head_attack(
        format!("GET /api/a HTTP/2.0\r\nHost: g\r\n\r\n{}", smuggled()).as_bytes(),
        505,
    );
}

#[test]
fn attack_after_a_valid_request_on_the_same_connection() {
    // The first request is answered normally, the attack that follows on the same
    // connection is rejected and the connection closed.
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let mut batch = get("/api/first").into_bytes();
    batch.extend_from_slice(
        format!(
            "POST /api/a HTTP/1.1\r\nHost: g\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{}",
            smuggled()
        )
        .as_bytes(),
    );
    c.send(&batch);
    let r1 = c.response();
    assert_eq!(r1.status, 200);
    assert_eq!(r1.header("x-path").as_deref(), Some("/first"));
    let r2 = c.response();
    assert_eq!(r2.status, 400);
    c.expect_closed();
    drop(c);
    gw.stop();
    backend.assert_nothing_smuggled(MARK);
    assert_eq!(backend.only_request().target(), "/first");
}

#[test]
fn ambiguous_backend_responses_are_not_relayed() {
    // The response direction: a backend response with TE and CL (or differing CLs)
    // is refused with 502 rather than passed on for the client to misread.
    for bad in [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    ] {
        let backend = MemBackend::start(move |_| Reply::Send(bad.as_bytes().to_vec()));
        let gw = MemGateway::for_backend(&backend);
        let mut c = gw.client();
        let r = c.roundtrip(get("/api/x"));
        assert_eq!(r.status, 502, "backend response {bad:?} got {r:?}");
        gw.stop();
    }
}

#[test]
fn invalid_host_values() {
    for host in ["evil.test/path", "a b", "evil.test@x", "h\"x"] {
        head_attack(
            format!("GET /api/a HTTP/1.1\r\nHost: {host}\r\n\r\n{}", smuggled()).as_bytes(),
            400,
        );
    }
}

#[test]
fn coding_names_are_case_insensitive() {
    // The positive control for the coding checks: `Chunked` is chunked.
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c
        .roundtrip(b"POST /api/a HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
        ;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "ok");
    gw.stop();
}

// ---------------------------------------------------------------------------
// Field names with underscores, and trailers that must not be forwarded
// ---------------------------------------------------------------------------

/// A request whose real framing is `Content-Length: 2`, carrying fields that a
/// CGI-style backend would read as Transfer-Encoding, Content-Length, X-Api-Key
/// and X-Forwarded-For.
const UNDERSCORED: &[u8] = b"POST /api/u HTTP/1.1\r\nHost: gateway.test\r\n\
Transfer_Encoding: chunked\r\nContent_Length: 5\r\nX_Api_Key: stolen\r\n\
X_Forwarded_For: 6.6.6.6\r\nContent-Length: 2\r\n\r\nhi";

/// An API in front of `backend` whose inbound policy copies what it sees of
/// `X_Api_Key` into `X-Policy-Saw` (`none` when it sees nothing).
fn underscore_probe_config(backend: &MemBackend) -> serde_json::Value {
    let mut a = api("api", "api", &format!("http://{}", backend.addr));
    a["policy"] = serde_json::json!(
        "<policies><inbound><base />\
         <set-header name=\"X-Policy-Saw\" exists-action=\"override\">\
         <value>@(context.Request.Headers.GetValueOrDefault(\"X_Api_Key\", \"none\"))</value>\
         </set-header></inbound><backend><base /></backend>\
         <outbound><base /></outbound><on-error><base /></on-error></policies>"
    );
    config(1, vec![a])
}

#[test]
fn underscored_header_fields_are_dropped_by_default() {
    let backend = MemBackend::echo();
    let gw = MemGateway::start(&underscore_probe_config(&backend));
    let mut c = gw.client();
    let r = c.roundtrip(UNDERSCORED);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "hi");
    let got = backend.only_request();
    let raw = got.raw_head();
    assert!(
        !raw.contains('_'),
        "an underscored field reached the backend: {raw}"
    );
    assert_eq!(got.body, b"hi");
    assert_eq!(got.header("content-length").as_deref(), Some("2"));
    assert_eq!(got.header("transfer-encoding"), None);
    // Only this hop in X-Forwarded-For: the spoofed address was dropped.
    assert_eq!(got.headers("x-forwarded-for"), vec!["127.0.0.1".to_owned()]);
    // Policies never saw the field either.
    assert_eq!(got.header("x-policy-saw").as_deref(), Some("none"));
    // The connection stays usable: nothing was mistaken for framing.
    let r = c.roundtrip(get("/api/next"));
    assert_eq!(r.status, 200, "{r:?}");
    gw.stop();
}

#[test]
fn underscored_header_fields_pass_when_allowed() {
    let backend = MemBackend::echo();
    let gw = MemGateway::start_with(&underscore_probe_config(&backend), |o| {
        o.allow_underscores_in_headers = true;
    });
    let mut c = gw.client();
    let r = c.roundtrip(UNDERSCORED);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "hi");
    let got = backend.only_request();
    assert_eq!(got.header("transfer_encoding").as_deref(), Some("chunked"));
    assert_eq!(got.header("content_length").as_deref(), Some("5"));
    assert_eq!(got.header("x_api_key").as_deref(), Some("stolen"));
    assert_eq!(got.header("x_forwarded_for").as_deref(), Some("6.6.6.6"));
    assert_eq!(got.header("x-policy-saw").as_deref(), Some("stolen"));
    // They are only names: the framing is still the real Content-Length.
    assert_eq!(got.body, b"hi");
    assert_eq!(got.header("content-length").as_deref(), Some("2"));
    assert_eq!(got.header("transfer-encoding"), None);
    gw.stop();
}

/// Trailer lines with fields RFC 9110 6.5.1 keeps out of trailers, one with an
/// underscore, and an ordinary one.
const TRAILERS: &str = "Authorization: x\r\nContent-Length: 0\r\nHost: evil\r\n\
Set-Cookie: s=1\r\nTransfer-Encoding: chunked\r\nX-Checksum: abc\r\nX_Trailer: u\r\n";

#[test]
fn forbidden_request_trailers_are_not_forwarded() {
    let backend = MemBackend::echo();
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let req = format!(
        "POST /api/t HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n\
         2\r\nok\r\n0\r\n{TRAILERS}\r\n"
    );
    let r = c.roundtrip(req);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "ok");
    let got = backend.only_request();
    assert!(got.complete);
    assert_eq!(got.body, b"ok");
    let trailers = got
        .trailers
        .map(|t| String::from_utf8_lossy(&t).into_owned());
    assert_eq!(trailers.as_deref(), Some("X-Checksum: abc\r\n"));
    let raw = String::from_utf8_lossy(&backend.raw_bytes()).into_owned();
    assert!(
        !raw.contains("evil") && !raw.contains("Authorization"),
        "{raw}"
    );
    gw.stop();
}

#[test]
fn underscored_request_trailers_pass_when_allowed() {
    let backend = MemBackend::echo();
    let gw = MemGateway::start_with(&config_for(backend.addr), |o| {
        o.allow_underscores_in_headers = true;
    });
    let mut c = gw.client();
    let req = format!(
        "POST /api/t HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n\
         2\r\nok\r\n0\r\n{TRAILERS}\r\n"
    );
    let r = c.roundtrip(req);
    assert_eq!(r.status, 200, "{r:?}");
    let got = backend.only_request();
    let trailers = got
        .trailers
        .map(|t| String::from_utf8_lossy(&t).into_owned());
    // The forbidden ones still go: allowing underscores allows nothing else.
    assert_eq!(
        trailers.as_deref(),
        Some("X-Checksum: abc\r\nX_Trailer: u\r\n")
    );
    gw.stop();
}

#[test]
fn forbidden_response_trailers_are_not_forwarded() {
    let backend = MemBackend::start(|_| {
        Reply::Send(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n\
                 5\r\nhello\r\n0\r\n{TRAILERS}Www-Authenticate: Basic\r\n\r\n"
            )
            .into_bytes(),
        )
    });
    let gw = MemGateway::for_backend(&backend);
    let mut c = gw.client();
    let r = c.roundtrip(get("/api/stream"));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.is_chunked(), "{r:?}");
    assert_eq!(r.body_str(), "hello");
    let trailers = r.trailers.map(|t| String::from_utf8_lossy(&t).into_owned());
    // Underscores are a rule for requests only, as in nginx.
    assert_eq!(
        trailers.as_deref(),
        Some("X-Checksum: abc\r\nX_Trailer: u\r\n")
    );
    // The connection is still in step.
    let r = c.roundtrip(get("/api/again"));
    assert_eq!(r.body_str(), "hello");
    gw.stop();
}
