//! Byte-level checks on request paths and Host values, allocation-free.

use crate::http::percent::{hex_pair_at, is_unreserved};

/// Longest Host name (without port) that can match a host-specific API.
///
/// DNS names are at most 253 bytes, so nothing routable is cut off.
pub(crate) const MAX_HOST_LEN: usize = 256;

/// Longest segment, once canonical, that the router compares with literals.
///
/// Configured literals with escapes must fit (the builder checks), so a request
/// segment whose canonical form is longer cannot equal any of them.
pub(crate) const MAX_SEGMENT_LEN: usize = 256;

/// The segment as compared with configured literals (RFC 3986 section 6.2.2).
///
/// Escapes of unreserved characters are decoded (`%75sers` is `users`) and the hex
/// digits of other escapes uppercased (`%c3%a9` is `%C3%A9`), because the backend
/// decodes them too: matching raw bytes would let `/%61dmin` reach a backend's
/// `/admin` through an operation other than the one configured for it. A segment
/// without `%` is returned as it is; `None` when the canonical form does not fit
/// `buf`, meaning no literal can match it. Works in `buf`, no allocation.
pub(crate) fn canonical<'a>(seg: &'a [u8], buf: &'a mut [u8; MAX_SEGMENT_LEN]) -> Option<&'a [u8]> {
    if !seg.contains(&b'%') {
        return Some(seg);
    }
    let mut out = 0;
    let mut i = 0;
    while i < seg.len() {
        let escape = match seg[i] {
            b'%' => hex_pair_at(seg, i + 1),
            _ => None,
        };
        let (bytes, used): ([u8; 3], usize) = match escape {
            Some(value) if is_unreserved(value) => ([value, 0, 0], 1),
            Some(_) => (
                [
                    b'%',
                    seg[i + 1].to_ascii_uppercase(),
                    seg[i + 2].to_ascii_uppercase(),
                ],
                3,
            ),
            None => ([seg[i], 0, 0], 1),
        };
        let dst = buf.get_mut(out..out + used)?;
        dst.copy_from_slice(&bytes[..used]);
        out += used;
        i += if escape.is_some() { 3 } else { 1 };
    }
    Some(&buf[..out])
}

/// Whether a raw request path may be routed.
///
/// Refused: no leading `/`, a backslash, `%2F` or `%5C` (encoded separators), and
/// `.`/`..` segments in any spelling (`%2e`, `.%2E`, ...), also with a `;param`
/// suffix (`..;`, which some servlet containers resolve as `..`). A backend that
/// resolves any of these would serve a different resource than the one we matched
/// (`/public/../admin`), so such requests are answered 400 instead of routed.
pub(crate) fn is_routable(path: &[u8]) -> bool {
    if path.first() != Some(&b'/') {
        return false;
    }
    path.split(|&b| b == b'/').all(segment_is_safe)
}

/// Whether one path segment (between slashes) is free of the constructs above.
pub(crate) fn segment_is_safe(seg: &[u8]) -> bool {
    if seg.contains(&b'\\') {
        return false;
    }
    let encoded_separator = seg.windows(3).any(|w| {
        w[0] == b'%'
            && ((w[1] == b'2' && w[2].eq_ignore_ascii_case(&b'f'))
                || (w[1] == b'5' && w[2].eq_ignore_ascii_case(&b'c')))
    });
    !encoded_separator && !is_dot_segment(seg)
}

/// `.` or `..`, with any dot written as `%2e`, ignoring a `;params` suffix.
fn is_dot_segment(seg: &[u8]) -> bool {
    let name = match seg.iter().position(|&b| b == b';') {
        Some(i) => &seg[..i],
        None => seg,
    };
    let mut dots = 0;
    let mut rest = name;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3
            && rest[0] == b'%'
            && rest[1] == b'2'
            && rest[2].eq_ignore_ascii_case(&b'e')
        {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    dots == 1 || dots == 2
}

/// Lowercases the name part of a Host value into `buf`: port, IPv6 brackets and a final dot removed.
///
/// `None` when the name is empty or longer than `buf`; such a host can only match
/// APIs without hostnames.
pub(crate) fn host_key<'b>(host: &[u8], buf: &'b mut [u8; MAX_HOST_LEN]) -> Option<&'b [u8]> {
    let name = if let Some(v6) = host.strip_prefix(b"[") {
        let close = v6.iter().position(|&b| b == b']')?;
        &v6[..close]
    } else {
        match host.iter().position(|&b| b == b':') {
            Some(i) => &host[..i],
            None => host,
        }
    };
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() || name.len() > buf.len() {
        return None;
    }
    let out = &mut buf[..name.len()];
    for (d, s) in out.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routable_paths() {
        for ok in [
            "/",
            "/users",
            "/users/",
            "/users/42",
            "/a//b",
            "/.well-known/x",
            "/...",
            "/a.b/c..d",
            "/%2e%2e%2e",
            "/file.json",
            "/a%20b",
        ] {
            assert!(is_routable(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "users",
            "*",
            "/.",
            "/./a",
            "/..",
            "/public/../admin",
            "/a/%2e%2e/b",
            "/a/%2E%2e",
            "/a/.%2e/b",
            "/a/%2e./b",
            "/a/%2e",
            "/a/..;/b",
            "/a/.;x",
            "/a%2fb",
            "/a%2Fb",
            "/a%5cb",
            "/a\\b",
            "/a/b\\..\\c",
        ] {
            assert!(!is_routable(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn canonical_segments() {
        let mut buf = [0u8; MAX_SEGMENT_LEN];
        let mut c = |s: &str| {
            canonical(s.as_bytes(), &mut buf).map(|c| String::from_utf8_lossy(c).into_owned())
        };
        assert_eq!(c("users").as_deref(), Some("users"));
        assert_eq!(c("%75sers").as_deref(), Some("users"));
        assert_eq!(c("%41%7e%2D%5f").as_deref(), Some("A~-_"));
        assert_eq!(c("caf%c3%a9").as_deref(), Some("caf%C3%A9"));
        assert_eq!(c("a%20b").as_deref(), Some("a%20b"));
        assert_eq!(c("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(c("%").as_deref(), Some("%"));
        let long = "a".repeat(300);
        assert_eq!(c(&long).map(|s| s.len()), Some(300));
        assert_eq!(c(&"%41".repeat(256)).map(|s| s.len()), Some(256));
        assert_eq!(c(&"%41".repeat(257)), None);
        assert_eq!(c(&"%20".repeat(86)), None);
    }

    #[test]
    fn host_keys() {
        let mut buf = [0u8; MAX_HOST_LEN];
        let key = |h: &[u8], buf: &mut [u8; MAX_HOST_LEN]| host_key(h, buf).map(<[u8]>::to_vec);
        assert_eq!(
            key(b"API.Example.com", &mut buf).as_deref(),
            Some(&b"api.example.com"[..])
        );
        assert_eq!(
            key(b"api.example.com:8080", &mut buf).as_deref(),
            Some(&b"api.example.com"[..])
        );
        assert_eq!(
            key(b"api.example.com.:80", &mut buf).as_deref(),
            Some(&b"api.example.com"[..])
        );
        assert_eq!(key(b"[::1]:8080", &mut buf).as_deref(), Some(&b"::1"[..]));
        assert_eq!(
            key(b"[FE80::1]", &mut buf).as_deref(),
            Some(&b"fe80::1"[..])
        );
        assert_eq!(key(b"[::1", &mut buf), None);
        assert_eq!(key(b"", &mut buf), None);
        assert_eq!(key(b":80", &mut buf), None);
        assert_eq!(key(&[b'a'; 300], &mut buf), None);
        assert_eq!(key(&[b'a'; 256], &mut buf).map(|k| k.len()), Some(256));
    }
}
