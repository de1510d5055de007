//! Request smuggling defences (RFC 9112) over real sockets, for what only
//! sockets show: the error response to an attack is read by the client before
//! an orderly close (no reset), and the binary's `--allow-underscores-in-headers`
//! flag. Every framing decision (each ambiguous or malformed framing answered
//! 400 or 501, the connection closed, nothing smuggled to the backend) is
//! tested in memory on exact bytes, in `decisions_smuggling`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// What a smuggled request looks like; a backend seeing this path means an attack
/// got through.
const MARK: &str = "smuggled";

fn smuggled() -> String {
    format!("GET /api/{MARK} HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
}

/// Sends `payload` on a fresh connection, expects `status` and a close, and checks
/// that the backend saw nothing of the smuggled request. Returns the backend for
/// extra checks.
async fn attack(rt: Runtime, payload: &[u8], status: u16) -> Backend {
    let backend = Backend::echo().await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let mut c = gw.client().await;
    c.send_lossy(payload).await;
    let r = c.response().await;
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
    let (how, extra) = c.read_to_end().await;
    assert!(
        extra.is_empty(),
        "a second response came back for payload {:?}: {:?}",
        String::from_utf8_lossy(payload),
        String::from_utf8_lossy(&extra)
    );
    // An orderly close: a reset could destroy the error response before the
    // client reads it.
    assert_eq!(
        how,
        Closed::Eof,
        "payload {:?}",
        String::from_utf8_lossy(payload)
    );
    drop(c);
    // Shut the gateway down and let the backend read everything it was sent.
    gw.stop().await;
    backend.wait_closed(backend.connections()).await;
    backend.assert_nothing_smuggled(MARK);
    backend
}

/// An attack rejected at the head: the backend must not even be contacted.
async fn head_attack(rt: Runtime, payload: &[u8], status: u16) {
    let backend = attack(rt, payload, status).await;
    assert_eq!(
        backend.connections(),
        0,
        "backend was contacted: {:#?}",
        backend.requests()
    );
}

#[runtimes]
async fn an_attack_is_answered_and_closed_in_order(rt: Runtime) {
    // The smoke test of what memory cannot show: the 400 reaches the client
    // over a real socket, and the close after it is orderly (the client's
    // unread attack bytes are drained, not reset over the answer).
    let payload = format!(
        "POST /api/a HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{}",
        smuggled()
    );
    head_attack(rt, payload.as_bytes(), 400).await;
}

// ---------------------------------------------------------------------------
// Field names with underscores: the binary's flag
// ---------------------------------------------------------------------------

/// A request whose real framing is `Content-Length: 2`, carrying fields that a
/// CGI-style backend would read as Transfer-Encoding, Content-Length, X-Api-Key
/// and X-Forwarded-For.
const UNDERSCORED: &[u8] = b"POST /api/u HTTP/1.1\r\nHost: gateway.test\r\n\
Transfer_Encoding: chunked\r\nContent_Length: 5\r\nX_Api_Key: stolen\r\n\
X_Forwarded_For: 6.6.6.6\r\nContent-Length: 2\r\n\r\nhi";

#[runtimes]
async fn the_binary_drops_underscored_fields_unless_its_flag_allows_them(rt: Runtime) {
    for (args, forwarded) in [
        (&[][..], false),
        (&["--allow-underscores-in-headers"][..], true),
        (&["--allow-underscores-in-headers", "false"][..], false),
    ] {
        let backend = Backend::echo().await;
        let gw = GatewayProcess::start(rt, &config_for(backend.addr), args).await;
        let mut c = Client::connect(gw.addr).await;
        let r = c.roundtrip(UNDERSCORED).await;
        assert_eq!(r.status, 200, "{args:?}: {r:?}");
        let got = backend.only_request();
        assert_eq!(
            got.header("x_api_key").is_some(),
            forwarded,
            "{args:?}: {}",
            got.raw_head()
        );
    }
}
