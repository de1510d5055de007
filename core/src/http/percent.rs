//! Percent-encoding (RFC 3986 section 2.1), the one place for it: URL
//! components that policies and expressions build, query strings they parse,
//! call-out request targets, and the escape checks the router and the URL
//! parser make.

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Whether `b` is an RFC 3986 unreserved character (never needs escaping).
pub fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The value of one hex digit, either case.
pub fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte that the two hex digits at `bytes[at..at + 2]` spell, if both are there.
pub fn hex_pair_at(bytes: &[u8], at: usize) -> Option<u8> {
    let high = hex_digit(*bytes.get(at)?)?;
    let low = hex_digit(*bytes.get(at + 1)?)?;
    Some(high << 4 | low)
}

fn push_escape(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 15)]));
}

/// Encodes everything but RFC 3986 unreserved characters (`Uri.EscapeDataString`).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    encode_component_into(s, &mut out);
    out
}

/// [`encode_component`], appended to `out`.
pub fn encode_component_into(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            push_escape(out, b);
        }
    }
}

/// `WebUtility.UrlEncode`: like [`encode_component`] but spaces become `+`,
/// `!*()` stay and `~` is escaped.
pub fn encode_form(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'!' | b'*' | b'(' | b')')
        {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            push_escape(&mut out, b);
        }
    }
    out
}

/// Appends `text` with every byte that may not appear in a request target
/// (RFC 3986 pchar, `/` and `?`) percent-encoded; a `%` already starting an escape
/// is kept.
pub fn encode_target(text: &str, out: &mut String) {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let keep = b.is_ascii_alphanumeric()
            || b"-._~!$&'()*+,;=:@/?".contains(&b)
            || (b == b'%' && hex_pair_at(bytes, i + 1).is_some());
        if keep {
            out.push(char::from(b));
        } else {
            push_escape(out, b);
        }
    }
}

/// Decodes `%XX` escapes and, when `plus_is_space`, `+` as a space; invalid
/// escapes are kept as they are and invalid UTF-8 is replaced
/// (`Uri.UnescapeDataString`, or `WebUtility.UrlDecode` with `plus_is_space`).
pub fn decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    if !bytes
        .iter()
        .any(|&b| b == b'%' || (plus_is_space && b == b'+'))
    {
        return s.to_string();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            // An escape needs both digits, so a `%` in the last two bytes stays.
            b'%' if i + 2 < bytes.len() => match hex_pair_at(bytes, i + 1) {
                Some(value) => {
                    out.push(value);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// [`decode`], appended to `out` (no allocation when nothing is escaped and
/// `out` has room).
pub fn decode_into(s: &str, plus_is_space: bool, out: &mut String) {
    let escaped = s.bytes().any(|b| b == b'%' || (plus_is_space && b == b'+'));
    if escaped {
        out.push_str(&decode(s, plus_is_space));
    } else {
        out.push_str(s);
    }
}

/// [`parse_query`] into `out`, reusing the buffers of the pairs it holds.
pub fn parse_query_into(q: &str, out: &mut Vec<(String, String)>) {
    let mut used = 0;
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        if used == out.len() {
            out.push((String::new(), String::new()));
        }
        let (name, value) = &mut out[used];
        name.clear();
        value.clear();
        decode_into(n, true, name);
        decode_into(v, true, value);
        used += 1;
    }
    out.truncate(used);
}

/// Splits a raw query string (without `?`) into decoded name/value pairs.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((n, v)) => (decode(n, true), decode(v, true)),
            None => (decode(pair, true), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(encode_component("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(decode("a%20b%26c%3Dd%2F%C3%A9", false), "a b&c=d/é");
        assert_eq!(decode("a+b%2", true), "a b%2");
        assert_eq!(decode("%zz%4", false), "%zz%4");
        assert_eq!(
            parse_query("a=1&b=x+y&c&=&d=%41"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "".into()),
                ("".into(), "".into()),
                ("d".into(), "A".into()),
            ]
        );
        let mut reused = vec![("old".to_string(), "x".to_string()); 7];
        parse_query_into("a=1&b=x+y&c&=&d=%41", &mut reused);
        assert_eq!(reused, parse_query("a=1&b=x+y&c&=&d=%41"));
        parse_query_into("", &mut reused);
        assert!(reused.is_empty());
    }

    #[test]
    fn form_and_target_encodings() {
        assert_eq!(encode_form("a b~!*()é"), "a+b%7E!*()%C3%A9");
        let mut out = String::new();
        encode_target("/a b/%41%4?x=[1]", &mut out);
        assert_eq!(out, "/a%20b/%41%254?x=%5B1%5D");
    }

    #[test]
    fn hex_pairs() {
        assert_eq!(hex_pair_at(b"%c3", 1), Some(0xc3));
        assert_eq!(hex_pair_at(b"%C", 1), None);
        assert_eq!(hex_pair_at(b"%zz", 1), None);
    }
}
