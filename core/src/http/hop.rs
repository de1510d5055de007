//! Proxy header rules: hop-by-hop fields removed, X-Forwarded-* added (RFC 9110 7.6.1).

use bytes::BytesMut;
use smallvec::SmallVec;

use super::encode::write_status_line;
use super::syntax::{list_elements, write_dec, write_field};
use super::{RequestHead, ResponseHead};

/// How the body of a forwarded message is framed on the outgoing side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFraming {
    /// No body and no framing header (responses to HEAD, 204, 304; requests without body).
    None,
    /// `Content-Length: n` (0 allowed, e.g. an empty 200).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither header: the body ends when the connection closes (HTTP/1.0 clients).
    Close,
}

/// What a forwarded request says about the client and the target.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    /// Client address as text, appended to X-Forwarded-For.
    pub client_ip: &'a [u8],
    /// Scheme the client used (`http` or `https`), for X-Forwarded-Proto.
    pub proto: &'a [u8],
    /// Host header to send: the client's (`None` = keep the original) or the backend's.
    pub host_override: Option<&'a [u8]>,
    /// A `traceparent` to send instead of the client's (the gateway's span).
    pub traceparent: Option<&'a [u8]>,
    /// A WebSocket handshake on a WebSocket API: the protocol the client asked
    /// to switch to, sent on as `Connection: Upgrade` and `Upgrade: {value}`
    /// (hop-by-hop fields, otherwise never forwarded).
    pub upgrade: Option<&'a [u8]>,
}

/// Whether `name` is a hop-by-hop field that a proxy never forwards (fixed list:
/// Connection, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade,
/// Proxy-Authorization, Proxy-Connection).
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    // Length first: most names are rejected without comparing bytes.
    let candidates: &[&[u8]] = match name.len() {
        2 => &[b"te"],
        7 => &[b"trailer", b"upgrade"],
        10 => &[b"connection", b"keep-alive"],
        16 => &[b"proxy-connection"],
        17 => &[b"transfer-encoding"],
        19 => &[b"proxy-authorization"],
        _ => return false,
    };
    candidates.iter().any(|c| name.eq_ignore_ascii_case(c))
}

/// Field names listed in a message's Connection fields (RFC 9110 7.6.1), borrowed
/// from the head; inline up to 8 names, which covers real traffic without allocating.
pub(super) type ConnectionNames<'a> = SmallVec<[&'a [u8]; 8]>;

/// The names listed in every `Connection` field of a head.
pub(super) fn connection_names<'a>(
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> ConnectionNames<'a> {
    let mut names = ConnectionNames::new();
    for (name, value) in fields {
        if name.eq_ignore_ascii_case(b"connection") {
            names.extend(list_elements(value));
        }
    }
    names
}

/// Whether `name` is one of `names` (ASCII case-insensitive).
pub(super) fn named_in(name: &[u8], names: &ConnectionNames<'_>) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Fields of a client request the gateway writes itself or must not pass on.
fn replaced_upstream(name: &[u8]) -> bool {
    let candidates: &[&[u8]] = match name.len() {
        4 => &[b"host"],
        6 => &[b"expect"],
        14 => &[b"content-length"],
        15 => &[b"x-forwarded-for"],
        16 => &[b"x-forwarded-host"],
        17 => &[b"x-forwarded-proto"],
        _ => return false,
    };
    candidates.iter().any(|c| name.eq_ignore_ascii_case(c))
}

/// Appends the framing header field for `framing`, if it has one.
fn write_framing(framing: OutFraming, out: &mut BytesMut) {
    match framing {
        OutFraming::None | OutFraming::Close => {}
        OutFraming::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            write_dec(n, out);
            out.extend_from_slice(b"\r\n");
        }
        OutFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
}

/// Appends the head of the request to send upstream: `{method} {path_and_query} HTTP/1.1`,
/// Host (original, or `fwd.host_override`), every client field except hop-by-hop ones,
/// those named in Connection, Content-Length, Host, Expect and X-Forwarded-Proto/Host;
/// then the framing header for `framing`, `X-Forwarded-For` (existing value + ", " +
/// client ip), `X-Forwarded-Proto`, `X-Forwarded-Host` (the original host) and the
/// final CRLF. `path_and_query` is given in pieces so the caller can join backend
/// base path, rewritten path and query without building a string.
///
/// The client's X-Forwarded-For lines are joined into one list (elements trimmed,
/// empty ones dropped). `OutFraming::Close` writes no framing field: a request body
/// cannot be close-delimited. X-Forwarded-Host is left out when there is no authority.
pub fn write_upstream_request(
    head: &RequestHead,
    method: &http::Method,
    path_and_query: &[&[u8]],
    framing: OutFraming,
    fwd: &Forwarding<'_>,
    out: &mut BytesMut,
) {
    write_upstream_fields(
        head.header_pairs(),
        head.authority(),
        method.as_str().as_bytes(),
        path_and_query,
        framing,
        fwd,
        head.raw.len(),
        out,
    );
}

/// `write_upstream_request` for fields that do not come from a parsed head (a
/// request that policies changed): `original_authority` is the client's Host,
/// `size_hint` the bytes the fields take.
#[allow(clippy::too_many_arguments)]
pub fn write_upstream_fields<'f, I>(
    fields: I,
    original_authority: Option<&[u8]>,
    method: &[u8],
    path_and_query: &[&[u8]],
    framing: OutFraming,
    fwd: &Forwarding<'_>,
    size_hint: usize,
    out: &mut BytesMut,
) where
    I: Iterator<Item = (&'f [u8], &'f [u8])> + Clone,
{
    let pq_len: usize = path_and_query.iter().map(|p| p.len()).sum();
    // Every field of the client head plus what is added comes to about this much;
    // reserving once keeps the writes below from reallocating.
    out.reserve(size_hint + pq_len + fwd.client_ip.len() + fwd.proto.len() + 128);

    out.extend_from_slice(method);
    out.extend_from_slice(b" ");
    for piece in path_and_query {
        out.extend_from_slice(piece);
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // Host first, as RFC 9110 7.2 asks; an empty value when the client sent none
    // (HTTP/1.0), since HTTP/1.1 requires the field.
    let host = fwd.host_override.or(original_authority).unwrap_or(b"");
    write_field(b"Host", host, out);

    let dropped = connection_names(fields.clone());
    let mut has_xff = false;
    for (name, value) in fields.clone() {
        if is_hop_by_hop(name) || named_in(name, &dropped) {
            continue;
        }
        if replaced_upstream(name) {
            has_xff |= name.eq_ignore_ascii_case(b"x-forwarded-for");
            continue;
        }
        if fwd.traceparent.is_some() && name.eq_ignore_ascii_case(b"traceparent") {
            continue;
        }
        write_field(name, value, out);
    }
    write_framing(framing, out);
    if let Some(traceparent) = fwd.traceparent {
        write_field(b"traceparent", traceparent, out);
    }
    if let Some(protocol) = fwd.upgrade {
        write_field(b"Connection", b"Upgrade", out);
        write_field(b"Upgrade", protocol, out);
    }

    // X-Forwarded-For: the client's list (all its lines, in order), then this hop.
    out.extend_from_slice(b"X-Forwarded-For: ");
    if has_xff {
        for (name, value) in fields {
            if name.eq_ignore_ascii_case(b"x-forwarded-for") && !named_in(name, &dropped) {
                for element in list_elements(value) {
                    out.extend_from_slice(element);
                    out.extend_from_slice(b", ");
                }
            }
        }
    }
    out.extend_from_slice(fwd.client_ip);
    out.extend_from_slice(b"\r\n");
    write_field(b"X-Forwarded-Proto", fwd.proto, out);
    if let Some(authority) = original_authority.filter(|a| !a.is_empty()) {
        write_field(b"X-Forwarded-Host", authority, out);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends the head of the response to send to the client: `HTTP/1.1 {status} {reason}`,
/// every upstream field except hop-by-hop ones, those named in Connection and
/// Content-Length; then the framing header for `framing`, `Connection: close` when
/// `close`, or `Connection: keep-alive` when `keep_alive_http10` (an HTTP/1.0 client
/// kept open); and the final CRLF.
pub fn write_downstream_response(
    head: &ResponseHead,
    framing: OutFraming,
    close: bool,
    keep_alive_http10: bool,
    out: &mut BytesMut,
) {
    out.reserve(head.raw.len() + 64);
    write_downstream_fields(
        head.status,
        head.reason(),
        head.header_pairs(),
        framing,
        close,
        keep_alive_http10,
        out,
    );
}

/// `write_downstream_response` for a status, reason and fields that do not come
/// from a parsed head (a response that policies made or changed).
pub fn write_downstream_fields<'f, I>(
    status: u16,
    reason: &[u8],
    fields: I,
    framing: OutFraming,
    close: bool,
    keep_alive_http10: bool,
    out: &mut BytesMut,
) where
    I: Iterator<Item = (&'f [u8], &'f [u8])> + Clone,
{
    write_status_line(status, reason, out);
    let dropped = connection_names(fields.clone());
    for (name, value) in fields {
        if is_hop_by_hop(name)
            || name.eq_ignore_ascii_case(b"content-length")
            || named_in(name, &dropped)
        {
            continue;
        }
        write_field(name, value, out);
    }
    write_framing(framing, out);
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if keep_alive_http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{BodyFraming, Limits, Version};

    fn request(text: &[u8]) -> RequestHead {
        RequestHead::parse(&mut BytesMut::from(text), &Limits::default())
            .unwrap()
            .unwrap()
    }

    fn response(text: &[u8]) -> ResponseHead {
        ResponseHead::parse(
            &mut BytesMut::from(text),
            &Limits::default(),
            &http::Method::GET,
        )
        .unwrap()
        .unwrap()
    }

    const FWD: Forwarding<'static> = Forwarding {
        client_ip: b"10.0.0.9",
        proto: b"https",
        host_override: None,
        traceparent: None,
        upgrade: None,
    };

    fn upstream(head: &RequestHead, framing: OutFraming, fwd: &Forwarding<'_>) -> String {
        let mut out = BytesMut::new();
        write_upstream_request(
            head,
            &head.method,
            &[head.path_and_query()],
            framing,
            fwd,
            &mut out,
        );
        // Whatever is written must be a valid request head.
        let again = RequestHead::parse(&mut out.clone(), &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(again.version, Version::Http11);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn hop_by_hop_names() {
        for name in [
            "Connection",
            "keep-alive",
            "TE",
            "Trailer",
            "transfer-encoding",
            "UPGRADE",
            "Proxy-Authorization",
            "proxy-connection",
        ] {
            assert!(is_hop_by_hop(name.as_bytes()), "{name}");
        }
        for name in [
            "Connections",
            "Host",
            "Te-x",
            "Trailers",
            "Content-Length",
            "",
            "x",
        ] {
            assert!(!is_hop_by_hop(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn upstream_request_rewrites_fields() {
        let head = request(
            b"POST /api/x?y=1 HTTP/1.1\r\n\
              Host: front.example\r\n\
              Connection: keep-alive, X-Secret\r\n\
              X-Secret: s\r\n\
              Keep-Alive: timeout=5\r\n\
              TE: trailers\r\n\
              Upgrade: websocket\r\n\
              Proxy-Authorization: basic x\r\n\
              Expect: 100-continue\r\n\
              Content-Length: 3\r\n\
              X-Forwarded-For: 1.1.1.1, 2.2.2.2\r\n\
              x-forwarded-for: 3.3.3.3\r\n\
              X-Forwarded-Proto: ftp\r\n\
              X-Forwarded-Host: evil\r\n\
              Accept: */*\r\n\
              X-Other: v\r\n\r\n",
        );
        assert_eq!(
            upstream(&head, OutFraming::Length(3), &FWD),
            "POST /api/x?y=1 HTTP/1.1\r\n\
             Host: front.example\r\n\
             Accept: */*\r\n\
             X-Other: v\r\n\
             Content-Length: 3\r\n\
             X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.9\r\n\
             X-Forwarded-Proto: https\r\n\
             X-Forwarded-Host: front.example\r\n\r\n"
        );
    }

    #[test]
    fn upstream_request_framing_and_host() {
        let head =
            request(b"PUT /x HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(head.framing, BodyFraming::Chunked);
        let fwd = Forwarding {
            host_override: Some(b"backend:8080"),
            traceparent: None,
            upgrade: None,
            ..FWD
        };
        let mut out = BytesMut::new();
        write_upstream_request(
            &head,
            &http::Method::PUT,
            &[b"/base", b"/x", b"?", b"q=1"],
            OutFraming::Chunked,
            &fwd,
            &mut out,
        );
        assert_eq!(
            &out[..],
            &b"PUT /base/x?q=1 HTTP/1.1\r\n\
               Host: backend:8080\r\n\
               Transfer-Encoding: chunked\r\n\
               X-Forwarded-For: 10.0.0.9\r\n\
               X-Forwarded-Proto: https\r\n\
               X-Forwarded-Host: a.example\r\n\r\n"[..]
        );
    }

    #[test]
    fn upstream_request_from_http10_and_absolute_form() {
        // HTTP/1.0 without Host: the upstream request is 1.1 with an empty Host.
        let head = request(b"GET /x HTTP/1.0\r\n\r\n");
        assert_eq!(
            upstream(&head, OutFraming::None, &FWD),
            "GET /x HTTP/1.1\r\nHost: \r\nX-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: https\r\n\r\n"
        );
        // The absolute-form authority wins over Host.
        let head = request(b"GET http://target.example/p HTTP/1.1\r\nHost: ignored\r\n\r\n");
        assert_eq!(
            upstream(&head, OutFraming::None, &FWD),
            "GET /p HTTP/1.1\r\nHost: target.example\r\nX-Forwarded-For: 10.0.0.9\r\n\
             X-Forwarded-Proto: https\r\nX-Forwarded-Host: target.example\r\n\r\n"
        );
    }

    #[test]
    fn connection_may_name_forwarded_for() {
        let head = request(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Forwarded-For\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n");
        let text = upstream(&head, OutFraming::None, &FWD);
        assert!(text.contains("X-Forwarded-For: 10.0.0.9\r\n"), "{text}");
        assert!(!text.contains("6.6.6.6"), "{text}");
    }

    #[test]
    fn downstream_response_rewrites_fields() {
        let head = response(
            b"HTTP/1.1 200 Fine\r\n\
              Content-Type: text/plain\r\n\
              Connection: X-Internal\r\n\
              X-Internal: 1\r\n\
              Transfer-Encoding: chunked\r\n\
              Keep-Alive: timeout=5\r\n\
              Trailer: X-Sum\r\n\
              Set-Cookie: a=1\r\n\
              Set-Cookie: b=2\r\n\r\n",
        );
        let mut out = BytesMut::new();
        write_downstream_response(&head, OutFraming::Chunked, false, false, &mut out);
        assert_eq!(
            &out[..],
            &b"HTTP/1.1 200 Fine\r\n\
               Content-Type: text/plain\r\n\
               Set-Cookie: a=1\r\n\
               Set-Cookie: b=2\r\n\
               Transfer-Encoding: chunked\r\n\r\n"[..]
        );
    }

    #[test]
    fn downstream_response_connection_and_length() {
        let head = response(b"HTTP/1.0 404\r\nContent-Length: 10\r\nX: y\r\n\r\n");
        let mut out = BytesMut::new();
        write_downstream_response(&head, OutFraming::Length(10), false, true, &mut out);
        assert_eq!(
            &out[..],
            &b"HTTP/1.1 404 Not Found\r\nX: y\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\n"[..]
        );
        let mut out = BytesMut::new();
        write_downstream_response(&head, OutFraming::Close, true, true, &mut out);
        assert_eq!(
            &out[..],
            &b"HTTP/1.1 404 Not Found\r\nX: y\r\nConnection: close\r\n\r\n"[..]
        );
        let mut out = BytesMut::new();
        write_downstream_response(&head, OutFraming::None, false, false, &mut out);
        assert_eq!(&out[..], &b"HTTP/1.1 404 Not Found\r\nX: y\r\n\r\n"[..]);
        let mut out = BytesMut::new();
        write_downstream_response(&head, OutFraming::Length(0), false, false, &mut out);
        assert_eq!(
            &out[..],
            &b"HTTP/1.1 404 Not Found\r\nX: y\r\nContent-Length: 0\r\n\r\n"[..]
        );
    }
}
