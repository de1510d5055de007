//! Host syntax: DNS names, IPv4 and IPv6 literals, checked without `std::net`.
//!
//! The core is sans-IO and stays clear of `std::net` altogether, so the literal
//! syntax is checked here; it is small and only runs when a snapshot is compiled.

/// Checks a DNS name or dotted IPv4 address (no brackets, no port, no trailing dot).
pub(crate) fn check_name(host: &str) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("missing host");
    }
    if host.len() > 253 {
        return Err("host name longer than 253 characters");
    }
    let mut labels = 0;
    let mut last_numeric = false;
    for label in host.split('.') {
        labels += 1;
        if label.is_empty() {
            return Err("empty label in host name");
        }
        if label.len() > 63 {
            return Err("host name label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("host name may hold only letters, digits, '-', '_' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("host name label starts or ends with '-'");
        }
        last_numeric = label.bytes().all(|b| b.is_ascii_digit());
    }
    // A name whose last label is numeric is read as an IPv4 address by resolvers
    // (WHATWG and getaddrinfo alike), so it must be a well-formed one.
    if last_numeric && !is_ipv4(host, labels) {
        return Err("not a valid IPv4 address");
    }
    Ok(())
}

fn is_ipv4(host: &str, labels: usize) -> bool {
    labels == 4 && host.split('.').all(is_octet)
}

fn is_octet(s: &str) -> bool {
    // Leading zeros are refused because some resolvers read them as octal.
    let well_formed = !s.is_empty()
        && s.len() <= 3
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    well_formed && s.parse::<u16>().is_ok_and(|v| v <= 255)
}

/// Whether `s` is an IPv6 address (without brackets or zone id).
pub(crate) fn is_ipv6(s: &str) -> bool {
    let (head, tail, compressed) = match s.find("::") {
        Some(i) => (&s[..i], &s[i + 2..], true),
        None => (s, "", false),
    };
    if compressed && tail.contains("::") {
        return false;
    }
    if !compressed && s.is_empty() {
        return false;
    }
    let mut all = groups_of(head).chain(groups_of(tail)).peekable();
    let mut groups = 0;
    while let Some(part) = all.next() {
        let last = all.peek().is_none();
        if last && part.contains('.') {
            if !is_ipv4(part, part.split('.').count()) {
                return false;
            }
            groups += 2;
        } else if !part.is_empty() && part.len() <= 4 && part.bytes().all(|b| b.is_ascii_hexdigit())
        {
            groups += 1;
        } else {
            return false;
        }
    }
    if compressed {
        groups <= 7
    } else {
        groups == 8
    }
}

/// The colon-separated pieces of one side of `::` (none for an empty side).
fn groups_of(side: &str) -> impl Iterator<Item = &str> {
    (!side.is_empty())
        .then(|| side.split(':'))
        .into_iter()
        .flatten()
}

/// Normalizes a configured hostname to the router's key: lowercase, no brackets, no final dot.
pub(crate) fn normalize_hostname(hostname: &str) -> Result<String, &'static str> {
    let h = hostname.strip_suffix('.').unwrap_or(hostname);
    if let Some(inner) = h.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or("unclosed '[' or a port after an IPv6 address")?;
        if !is_ipv6(inner) {
            return Err("not a valid IPv6 address");
        }
        return Ok(inner.to_ascii_lowercase());
    }
    if h.contains(':') {
        if is_ipv6(h) {
            return Ok(h.to_ascii_lowercase());
        }
        return Err("must not include a port");
    }
    if h.contains('*') {
        return Err("wildcard hostnames are not supported");
    }
    check_name(h)?;
    Ok(h.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ipv4() {
        assert!(check_name("example.com").is_ok());
        assert!(check_name("a-b_c.example").is_ok());
        assert!(check_name("127.0.0.1").is_ok());
        assert!(check_name("localhost").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a..b").is_err());
        assert!(check_name("-a.com").is_err());
        assert!(check_name("256.1.1.1").is_err());
        assert!(check_name("1.2.3").is_err());
        assert!(check_name("01.2.3.4").is_err());
        assert!(check_name("exa mple").is_err());
    }

    #[test]
    fn ipv6_literals() {
        for ok in [
            "::1",
            "::",
            "fe80::1",
            "2001:db8:0:0:0:0:2:1",
            "2001:db8::2:1",
            "::ffff:192.0.2.1",
            "1::",
        ] {
            assert!(is_ipv6(ok), "{ok}");
        }
        for bad in [
            "",
            ":",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "1::2::3",
            "12345::1",
            "g::1",
            "::1.2.3",
            "1:2:3:4:5:6:7::8:9",
        ] {
            assert!(!is_ipv6(bad), "{bad}");
        }
    }

    #[test]
    fn hostname_normalization() {
        assert_eq!(
            normalize_hostname("API.Example.COM.").as_deref(),
            Ok("api.example.com")
        );
        assert_eq!(normalize_hostname("[::1]").as_deref(), Ok("::1"));
        assert_eq!(normalize_hostname("FE80::1").as_deref(), Ok("fe80::1"));
        assert!(normalize_hostname("example.com:8080").is_err());
        assert!(normalize_hostname("*.example.com").is_err());
        assert!(normalize_hostname("[::1]:80").is_err());
    }
}
