//! Small RFC 9110 grammar helpers shared by the codec: tokens, lists, number formatting.

use bytes::BytesMut;

/// `tchar` of RFC 9110 5.6.2, as a lookup table.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = matches!(b,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9'
            | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+'
            | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
        i += 1;
    }
    t
};

/// Whether `b` may appear in a token (field names, methods, codings).
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    TOKEN[b as usize]
}

/// Whether `b` may appear in a field value (HTAB, SP, VCHAR, obs-text).
#[inline]
pub(crate) fn is_field_vchar(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// Whether `b` is optional whitespace (SP or HTAB).
#[inline]
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without leading and trailing SP / HTAB.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// The elements of a comma-separated list value, trimmed, empty ones skipped
/// (RFC 9110 5.6.1 tells recipients to ignore empty elements).
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// Appends `n` in decimal, formatted on the stack.
pub(crate) fn write_dec(n: u64, out: &mut BytesMut) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `n` in lowercase hexadecimal, formatted on the stack.
pub(crate) fn write_hex(n: u64, out: &mut BytesMut) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = DIGITS[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends one `name: value\r\n` field line.
#[inline]
pub(crate) fn write_field(name: &[u8], value: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let all = |s: &[u8]| s.iter().all(|&b| is_tchar(b));
        assert!(all(b"Content-Length"));
        assert!(all(b"x!#$%&'*+-.^_`|~9"));
        assert!(!all(b"a b"));
        assert!(!all(b"a:b"));
        assert!(!all(b"a\"b"));
        assert!(!all(&[0x80]));
    }

    #[test]
    fn lists() {
        let v: Vec<&[u8]> = list_elements(b" a ,, b\t,c,").collect();
        assert_eq!(v, vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(trim_ows(b" \t "), b"");
        assert_eq!(trim_ows(b"\tx y "), b"x y");
    }

    #[test]
    fn numbers() {
        for n in [0u64, 1, 9, 10, 255, 4096, 1234567890, u64::MAX] {
            let mut out = BytesMut::new();
            write_dec(n, &mut out);
            assert_eq!(&out[..], n.to_string().as_bytes());
            let mut out = BytesMut::new();
            write_hex(n, &mut out);
            assert_eq!(&out[..], format!("{n:x}").as_bytes());
        }
    }
}
