//! The HTTP side of a WebSocket opening handshake (RFC 6455 §4): telling a
//! handshake from a request, and the `101 Switching Protocols` head passed on
//! to the client. The frames after it are not HTTP and are not parsed.

use bytes::BytesMut;

use super::encode::write_status_line;
use super::hop::{connection_names, is_hop_by_hop, named_in};
use super::syntax::{list_elements, write_field};
use super::{BodyFraming, RequestHead, ResponseHead, Version};

/// What a request head is, as a WebSocket handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// Not a handshake: no `Upgrade: websocket` with `Connection: upgrade`.
    None,
    /// A well-formed opening handshake (RFC 6455 §4.1).
    WebSocket,
    /// An upgrade to `websocket` that is not a valid handshake; the reason.
    Invalid(&'static str),
    /// A handshake for a protocol version other than 13 (RFC 6455 §4.4:
    /// answered with `426` and `Sec-WebSocket-Version: 13`).
    UnsupportedVersion,
}

/// The one WebSocket protocol version (RFC 6455 §4.1, item 9).
pub const WEBSOCKET_VERSION: &[u8] = b"13";

/// Tells whether `head` asks to switch to WebSocket, and whether it may.
pub fn classify(head: &RequestHead) -> Handshake {
    let upgrade_listed = head
        .header_pairs()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
        .any(|(_, v)| list_elements(v).any(|e| e.eq_ignore_ascii_case(b"upgrade")));
    let websocket = head
        .header_pairs()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"upgrade"))
        .any(|(_, v)| list_elements(v).any(|e| e.eq_ignore_ascii_case(b"websocket")));
    if !(upgrade_listed && websocket) {
        return Handshake::None;
    }
    if head.method != http::Method::GET {
        return Handshake::Invalid("a WebSocket handshake must be a GET");
    }
    if head.version != Version::Http11 {
        return Handshake::Invalid("a WebSocket handshake must be HTTP/1.1");
    }
    if head.framing != BodyFraming::Empty {
        return Handshake::Invalid("a WebSocket handshake has no body");
    }
    // A base64-encoded 16-byte nonce is 24 characters (RFC 6455 §4.1, item 7).
    let key_ok = head
        .header("sec-websocket-key")
        .is_some_and(|k| k.trim_ascii().len() == 24);
    if !key_ok {
        return Handshake::Invalid("Sec-WebSocket-Key is missing or malformed");
    }
    match head.header("sec-websocket-version") {
        Some(v) if v.trim_ascii() == WEBSOCKET_VERSION => Handshake::WebSocket,
        _ => Handshake::UnsupportedVersion,
    }
}

/// Whether a backend's `101` switches to WebSocket (its `Upgrade` lists it).
pub fn switches_to_websocket(head: &ResponseHead) -> bool {
    head.status == 101
        && head
            .header_pairs()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"upgrade"))
            .any(|(_, v)| list_elements(v).any(|e| e.eq_ignore_ascii_case(b"websocket")))
}

/// Appends the `101 Switching Protocols` head for the client: the backend's
/// end-to-end fields (`Sec-WebSocket-Accept`, `-Protocol`, `-Extensions`...),
/// then `Connection: Upgrade` and `Upgrade: websocket`, which the hop-by-hop
/// rules would otherwise drop.
pub fn write_switching_response(head: &ResponseHead, out: &mut BytesMut) {
    out.reserve(head.raw.len() + 64);
    write_status_line(101, head.reason(), out);
    let dropped = connection_names(head.header_pairs());
    for (name, value) in head.header_pairs() {
        if is_hop_by_hop(name)
            || name.eq_ignore_ascii_case(b"content-length")
            || named_in(name, &dropped)
        {
            continue;
        }
        write_field(name, value, out);
    }
    write_field(b"Connection", b"Upgrade", out);
    write_field(b"Upgrade", b"websocket", out);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Limits;

    fn request(text: &str) -> RequestHead {
        RequestHead::parse(&mut BytesMut::from(text.as_bytes()), &Limits::default())
            .unwrap()
            .unwrap()
    }

    const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    #[test]
    fn handshakes_are_told_from_requests() {
        let ok = format!(
            "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\n\
             Connection: keep-alive, Upgrade\r\n{KEY}Sec-WebSocket-Version: 13\r\n\r\n"
        );
        assert_eq!(classify(&request(&ok)), Handshake::WebSocket);
        assert_eq!(
            classify(&request("GET / HTTP/1.1\r\nHost: a\r\n\r\n")),
            Handshake::None
        );
        // Upgrade without Connection: upgrade is only a hop-by-hop field.
        let no_conn = format!("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n{KEY}\r\n");
        assert_eq!(classify(&request(&no_conn)), Handshake::None);
        let h2c = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(classify(&request(h2c)), Handshake::None);
    }

    #[test]
    fn bad_handshakes_say_why() {
        let base = "Host: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
        let post = format!("POST / HTTP/1.1\r\n{base}{KEY}Sec-WebSocket-Version: 13\r\n\r\n");
        assert_eq!(
            classify(&request(&post)),
            Handshake::Invalid("a WebSocket handshake must be a GET")
        );
        let no_key = format!("GET / HTTP/1.1\r\n{base}Sec-WebSocket-Version: 13\r\n\r\n");
        assert_eq!(
            classify(&request(&no_key)),
            Handshake::Invalid("Sec-WebSocket-Key is missing or malformed")
        );
        let v8 = format!("GET / HTTP/1.1\r\n{base}{KEY}Sec-WebSocket-Version: 8\r\n\r\n");
        assert_eq!(classify(&request(&v8)), Handshake::UnsupportedVersion);
    }

    #[test]
    fn the_switch_keeps_upgrade_and_accept() {
        let mut raw = BytesMut::from(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nKeep-Alive: 5\r\n\r\n",
        );
        let head = ResponseHead::parse(&mut raw, &Limits::default(), &http::Method::GET)
            .unwrap()
            .unwrap();
        assert!(switches_to_websocket(&head));
        let mut out = BytesMut::new();
        write_switching_response(&head, &mut out);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 101 Switching Protocols\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        );
    }
}
