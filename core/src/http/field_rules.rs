//! Received fields the gateway drops before anything else sees them: request
//! header fields with `_` in their name, and trailer fields that must not be
//! merged into or acted on as header fields (RFC 9110 6.5.1).

use bytes::{Bytes, BytesMut};

use super::RequestHead;

/// Whether a field name contains `_`.
///
/// CGI-style backends (PHP, WSGI, CGI) turn `-` into `_` to make variable names
/// (`HTTP_TRANSFER_ENCODING`), so `Transfer_Encoding` and `Transfer-Encoding`
/// become one variable there: a client could pass framing, forwarding or
/// authentication fields the gateway never recognised as such. nginx drops these
/// fields by default (`underscores_in_headers off`); so does the gateway.
pub fn has_underscore(name: &[u8]) -> bool {
    name.contains(&b'_')
}

impl RequestHead {
    /// Removes every header field whose name has `_` in it (see
    /// [`has_underscore`]); the number removed. The bytes stay in `raw`, but no
    /// accessor, policy or forwarded head shows them any more.
    pub fn remove_underscored_fields(&mut self) -> usize {
        let before = self.headers.len();
        let raw = &self.raw;
        self.headers.retain(|h| {
            let name = h.name.of(raw);
            let keep = !has_underscore(name);
            if !keep {
                tracing::debug!(
                    field = %String::from_utf8_lossy(name),
                    "request header field with an underscore in its name dropped"
                );
            }
            keep
        });
        before - self.headers.len()
    }
}

/// Field names that must not be forwarded as trailers, lowercase: RFC 9110
/// 6.5.1's message framing, routing, request modifiers (controls and
/// conditionals), authentication, response control data and content
/// processing fields; hop-by-hop fields; and the forwarding fields the gateway
/// writes itself in the head.
const FORBIDDEN_TRAILERS: &[&[u8]] = &[
    // Framing.
    b"content-length",
    b"transfer-encoding",
    // Routing.
    b"host",
    // Request modifiers: controls (RFC 9110 7, RFC 9111 5.2, 5.4).
    b"cache-control",
    b"expect",
    b"max-forwards",
    b"pragma",
    b"range",
    b"te",
    // Request modifiers: conditionals (RFC 9110 13).
    b"if-match",
    b"if-none-match",
    b"if-modified-since",
    b"if-unmodified-since",
    b"if-range",
    // Authentication (RFC 9110 11, RFC 6265).
    b"authorization",
    b"proxy-authorization",
    b"www-authenticate",
    b"proxy-authenticate",
    b"authentication-info",
    b"proxy-authentication-info",
    b"cookie",
    b"set-cookie",
    // Response control data (RFC 9110 10.2, RFC 9111 5).
    b"age",
    b"date",
    b"expires",
    b"location",
    b"retry-after",
    b"vary",
    b"warning",
    // Content processing.
    b"content-encoding",
    b"content-type",
    b"content-range",
    b"trailer",
    // Hop-by-hop (RFC 9110 7.6.1).
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"upgrade",
    // What the gateway itself says about the client in the head.
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-proto",
];

/// Whether a field with this name is dropped from trailers (ASCII case-insensitive).
pub fn is_forbidden_trailer(name: &[u8]) -> bool {
    FORBIDDEN_TRAILERS
        .iter()
        .any(|f| f.len() == name.len() && f.eq_ignore_ascii_case(name))
}

/// The trailer section to forward, from the field lines the chunked decoder
/// read (each `name:value\r\n`): forbidden fields removed, and with
/// `drop_underscored` (request trailers, unless underscores are allowed) fields
/// whose name has `_`. `None` when nothing is left. Allocates only when a field
/// is removed.
pub fn forwardable_trailers(trailers: Option<Bytes>, drop_underscored: bool) -> Option<Bytes> {
    let trailers = trailers?;
    // Built only from the first dropped line on: the lines before it, then
    // every kept line after.
    let mut kept: Option<BytesMut> = None;
    let mut offset = 0;
    for line in trailers.split_inclusive(|&b| b == b'\n') {
        let name = line.split(|&b| b == b':').next().unwrap_or(line);
        let forbidden = is_forbidden_trailer(name);
        if forbidden || (drop_underscored && has_underscore(name)) {
            tracing::debug!(
                field = %String::from_utf8_lossy(name),
                reason = if forbidden { "not allowed in trailers" } else { "underscore in name" },
                "trailer field dropped"
            );
            kept.get_or_insert_with(|| {
                let mut k = BytesMut::with_capacity(trailers.len());
                k.extend_from_slice(&trailers[..offset]);
                k
            });
        } else if let Some(k) = kept.as_mut() {
            k.extend_from_slice(line);
        }
        offset += line.len();
    }
    match kept {
        None => (!trailers.is_empty()).then_some(trailers),
        Some(k) => (!k.is_empty()).then(|| k.freeze()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Limits;

    fn head(text: &[u8]) -> RequestHead {
        RequestHead::parse(&mut BytesMut::from(text), &Limits::default())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn underscored_fields_are_removed() {
        let mut h = head(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent_Length: 5\r\n\
X_Forwarded_For: 1.2.3.4\r\nX-Api-Key: k\r\nX_Api_Key: spoof\r\n_: x\r\n\r\n",
        );
        // Parsing alone keeps them (the test backend relies on it) and they never
        // decided framing.
        assert_eq!(h.headers.len(), 7);
        assert_eq!(h.framing, crate::http::BodyFraming::Empty);
        assert_eq!(h.remove_underscored_fields(), 5);
        let names: Vec<&[u8]> = h.header_pairs().map(|(n, _)| n).collect();
        assert_eq!(names, [&b"Host"[..], b"X-Api-Key"]);
        assert_eq!(h.header("x-api-key"), Some(&b"k"[..]));
        assert_eq!(h.header("x_api_key"), None);
        assert_eq!(h.remove_underscored_fields(), 0);
    }

    #[test]
    fn forbidden_trailer_names() {
        for name in [
            &b"Content-Length"[..],
            b"TRANSFER-ENCODING",
            b"host",
            b"Authorization",
            b"Proxy-Authorization",
            b"Cookie",
            b"Set-Cookie",
            b"WWW-Authenticate",
            b"If-None-Match",
            b"Cache-Control",
            b"Expect",
            b"Max-Forwards",
            b"Range",
            b"TE",
            b"Content-Type",
            b"Content-Encoding",
            b"Trailer",
            b"Vary",
            b"Location",
            b"Connection",
            b"X-Forwarded-For",
        ] {
            assert!(
                is_forbidden_trailer(name),
                "{:?}",
                String::from_utf8_lossy(name)
            );
        }
        for name in [
            &b"X-Checksum"[..],
            b"Server-Timing",
            b"Digest",
            b"Hosts",
            b"Content-Lengthy",
            b"X-Host",
            b"",
        ] {
            assert!(
                !is_forbidden_trailer(name),
                "{:?}",
                String::from_utf8_lossy(name)
            );
        }
    }

    fn forward(t: &[u8], drop_underscored: bool) -> Option<Vec<u8>> {
        forwardable_trailers(Some(Bytes::copy_from_slice(t)), drop_underscored).map(|b| b.to_vec())
    }

    #[test]
    fn trailers_are_filtered() {
        assert_eq!(forwardable_trailers(None, true), None);
        assert_eq!(forward(b"", true), None);
        assert_eq!(
            forward(b"X-Checksum:abc\r\nServer-Timing: db;dur=5\r\n", true).as_deref(),
            Some(&b"X-Checksum:abc\r\nServer-Timing: db;dur=5\r\n"[..])
        );
        assert_eq!(
            forward(
                b"Authorization: x\r\nX-Checksum: abc\r\nContent-Length: 0\r\nhost:evil\r\n",
                true
            )
            .as_deref(),
            Some(&b"X-Checksum: abc\r\n"[..])
        );
        assert_eq!(
            forward(b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", true),
            None
        );
        assert_eq!(
            forward(b"X_Checksum: a\r\nX-B: b\r\n", true).as_deref(),
            Some(&b"X-B: b\r\n"[..])
        );
        assert_eq!(
            forward(b"X_Checksum: a\r\nX-B: b\r\n", false).as_deref(),
            Some(&b"X_Checksum: a\r\nX-B: b\r\n"[..])
        );
        // Names are matched whole: a value mentioning a forbidden name is fine.
        assert_eq!(
            forward(b"X-Note: Host: evil\r\n", true).as_deref(),
            Some(&b"X-Note: Host: evil\r\n"[..])
        );
    }

    #[test]
    fn unchanged_trailers_are_not_copied() {
        let t = Bytes::from_static(b"X-Checksum: abc\r\n");
        let out = forwardable_trailers(Some(t.clone()), true).unwrap();
        assert_eq!(out.as_ptr(), t.as_ptr());
    }
}
