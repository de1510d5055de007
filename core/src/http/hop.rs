//! Proxy header rules: hop-by-hop fields removed, X-Forwarded-* added (RFC 9110 7.6.1).

use bytes::BytesMut;

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
}

/// Whether `name` is a hop-by-hop field that a proxy never forwards (fixed list:
/// Connection, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade,
/// Proxy-Authorization, Proxy-Connection).
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    let _ = name;
    todo!()
}

/// Appends the head of the request to send upstream: `{method} {path_and_query} HTTP/1.1`,
/// Host (original, or `fwd.host_override`), every client field except hop-by-hop ones,
/// those named in Connection, Content-Length, Host, Expect and X-Forwarded-Proto/Host;
/// then the framing header for `framing`, `X-Forwarded-For` (existing value + ", " +
/// client ip), `X-Forwarded-Proto`, `X-Forwarded-Host` (the original host) and the
/// final CRLF. `path_and_query` is given in pieces so the caller can join backend
/// base path, rewritten path and query without building a string.
pub fn write_upstream_request(
    head: &RequestHead,
    method: &http::Method,
    path_and_query: &[&[u8]],
    framing: OutFraming,
    fwd: &Forwarding<'_>,
    out: &mut BytesMut,
) {
    let _ = (head, method, path_and_query, framing, fwd, out);
    todo!()
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
    let _ = (head, framing, close, keep_alive_http10, out);
    todo!()
}
