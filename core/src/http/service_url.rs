//! Upstream URLs: parsed once per snapshot into what the proxy needs per request.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::host::{check_name, is_ipv6};
use super::percent::hex_pair_at;

/// A URL scheme: how a client reached the gateway, or how to reach an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// The scheme's name, lowercase.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port used when a URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A URL that [`ServiceUrl::parse`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URL `{url}`: {reason}")]
pub struct UrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// An upstream base URL, split into the parts used to connect and to build requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrl {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host to connect to: lowercase DNS name or IP literal, IPv6 without brackets.
    pub host: String,
    /// Port to connect to (80 or 443 when the URL names none).
    pub port: u16,
    /// Value for a Host header: `host`, or `host:port` when the port is not the default.
    pub authority: String,
    /// Path prefix for every forwarded request, without trailing `/`; may be empty.
    pub base_path: String,
    /// `scheme://host:port`, keying the upstream connection pool.
    pub pool_key: Arc<str>,
}

impl ServiceUrl {
    /// Parses an absolute `http` or `https` URL without user info, query or fragment.
    pub fn parse(input: &str) -> Result<ServiceUrl, UrlError> {
        parse(input).map_err(|reason| UrlError {
            url: input.to_owned(),
            reason,
        })
    }
}

impl ServiceUrl {
    /// Whether the host is certainly this machine (see [`is_loopback_host`]).
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }
}

/// Whether `host` certainly names this machine: `localhost`, an IPv4 address in
/// 127.0.0.0/8, or `::1` (brackets allowed). Other names are not resolved: what
/// they resolve to can change, so they count as other machines.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    unbracketed.parse::<IpAddr>().is_ok_and(is_loopback_ip)
}

/// Whether `ip` is this machine: 127.0.0.0/8, `::1`, or 127.0.0.0/8 mapped into
/// IPv6 (`::ffff:127.0.0.1`).
pub fn is_loopback_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

impl fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

/// Whether `url` names a WebSocket backend (`ws://` or `wss://`, any case).
pub fn is_websocket_url(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("ws") || scheme.eq_ignore_ascii_case("wss")
    })
}

/// Parses a backend's or an API's upstream URL: as [`parse`], and also
/// `ws://` and `wss://` (a WebSocket API's backend: its handshake is HTTP/1.1,
/// over TLS for `wss`, so they are kept as `http` and `https`).
pub(crate) fn parse_upstream(input: &str) -> Result<ServiceUrl, &'static str> {
    match input.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("ws") => {
            parse(&format!("http://{rest}"))
        }
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("wss") => {
            parse(&format!("https://{rest}"))
        }
        _ => parse(input),
    }
}

/// Parses `input`, returning the reason on failure so callers can add their context.
pub(crate) fn parse(input: &str) -> Result<ServiceUrl, &'static str> {
    if !input.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("contains whitespace, control or non-ASCII characters");
    }
    let (scheme, rest) = input
        .split_once("://")
        .ok_or("missing scheme (http:// or https://)")?;
    let scheme = if scheme.eq_ignore_ascii_case("http") {
        Scheme::Http
    } else if scheme.eq_ignore_ascii_case("https") {
        Scheme::Https
    } else {
        return Err("scheme must be http or https");
    };
    if rest.contains('?') {
        return Err("a query is not allowed");
    }
    if rest.contains('#') {
        return Err("a fragment is not allowed");
    }
    if rest.contains('\\') {
        return Err("a backslash is not allowed");
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err("user info is not allowed");
    }
    let (host, port) = split_host_port(authority)?;
    let port = match port {
        None => scheme.default_port(),
        Some(p) => parse_port(p)?,
    };
    let base_path = path.trim_end_matches('/');
    check_base_path(base_path)?;

    let bracketed = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let authority = if port == scheme.default_port() {
        bracketed.clone()
    } else {
        format!("{bracketed}:{port}")
    };
    let pool_key: Arc<str> = Arc::from(format!("{scheme}://{bracketed}:{port}"));
    Ok(ServiceUrl {
        scheme,
        host,
        port,
        authority,
        base_path: base_path.to_owned(),
        pool_key,
    })
}

/// Splits an authority into a lowercase host (IPv6 unbracketed) and the port text.
fn split_host_port(authority: &str) -> Result<(String, Option<&str>), &'static str> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (inner, after) = v6.split_once(']').ok_or("unclosed '[' in host")?;
        if !is_ipv6(inner) {
            return Err("not a valid IPv6 address");
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("unexpected text after ']'")?),
        };
        return Ok((inner.to_ascii_lowercase(), port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if port.is_some_and(|p| p.contains(':')) {
        return Err("an IPv6 address must be in brackets");
    }
    check_name(host)?;
    Ok((host.to_ascii_lowercase(), port))
}

fn parse_port(text: &str) -> Result<u16, &'static str> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("port must be a number");
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err("port must be between 1 and 65535"),
        Ok(p) => Ok(p),
    }
}

/// Checks a base path (empty or starting with `/`, no trailing `/`) against RFC 3986.
fn check_base_path(path: &str) -> Result<(), &'static str> {
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let ok = b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@%".contains(&b);
        if !ok {
            return Err("path has a character that must be percent-encoded");
        }
        if b == b'%' && hex_pair_at(bytes, i + 1).is_none() {
            return Err("path has a '%' not followed by two hex digits");
        }
    }
    // Dot segments would be resolved by the upstream but not by us, so the path
    // we think we forward would not be the one served.
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("path has a '.' or '..' segment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> ServiceUrl {
        match ServiceUrl::parse(url) {
            Ok(u) => u,
            Err(e) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn defaults_and_authority() {
        let u = ok("http://127.0.0.1:8000/api/");
        assert_eq!(u.scheme, Scheme::Http);
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 8000);
        assert_eq!(u.authority, "127.0.0.1:8000");
        assert_eq!(u.base_path, "/api");
        assert_eq!(&*u.pool_key, "http://127.0.0.1:8000");
        assert_eq!(u.to_string(), "http://127.0.0.1:8000/api");

        let u = ok("HTTPS://Backend.Example.com");
        assert_eq!(u.scheme, Scheme::Https);
        assert_eq!(u.host, "backend.example.com");
        assert_eq!(u.port, 443);
        assert_eq!(u.authority, "backend.example.com");
        assert_eq!(u.base_path, "");
        assert_eq!(&*u.pool_key, "https://backend.example.com:443");

        let u = ok("http://example.com:80/");
        assert_eq!(u.authority, "example.com");
        assert_eq!(u.base_path, "");
    }

    #[test]
    fn ipv6_hosts() {
        let u = ok("http://[::1]:8080/x");
        assert_eq!(u.host, "::1");
        assert_eq!(u.authority, "[::1]:8080");
        assert_eq!(&*u.pool_key, "http://[::1]:8080");
        let u = ok("https://[FE80::1]");
        assert_eq!(u.host, "fe80::1");
        assert_eq!(u.authority, "[fe80::1]");
    }

    #[test]
    fn loopback_hosts_are_only_those_certainly_this_machine() {
        for host in [
            "localhost",
            "LocalHost",
            "localhost.",
            "127.0.0.1",
            "127.1.2.3",
            "127.255.255.255",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
            "[0:0:0:0:0:0:0:1]",
        ] {
            assert!(is_loopback_host(host), "{host} is loopback");
        }
        for host in [
            "localhost.example.com",
            "mylocalhost",
            "localhost6",
            "128.0.0.1",
            "192.0.2.1",
            "10.0.0.1",
            "0.0.0.0",
            "::",
            "[::2]",
            "::ffff:192.0.2.1",
            "example.com",
            "",
            "127.0.0.1.nip.io",
        ] {
            assert!(!is_loopback_host(host), "{host} is not loopback");
        }
        assert!(ok("http://[::1]:8090").is_loopback());
        assert!(ok("http://LOCALHOST:8090/mgmt").is_loopback());
        assert!(ok("https://127.1.2.3").is_loopback());
        assert!(!ok("http://192.0.2.1:8090").is_loopback());
        assert!(!ok("http://localhost.example.com").is_loopback());
    }

    #[test]
    fn rejects() {
        for (url, why) in [
            ("ftp://example.com", "scheme"),
            ("example.com/api", "missing scheme"),
            ("http://", "missing host"),
            ("http://:80", "missing host"),
            ("http://user:pw@example.com", "user info"),
            ("http://example.com/a?x=1", "query"),
            ("http://example.com/a#f", "fragment"),
            ("http://example.com:0", "port"),
            ("http://example.com:99999", "port"),
            ("http://example.com:", "port"),
            ("http://example.com:8a", "port"),
            ("http://::1/", "brackets"),
            ("http://[::1/", "unclosed"),
            ("http://[::g]/", "IPv6"),
            ("http://exa mple.com", "whitespace"),
            ("http://example.com/a/../b", "segment"),
            ("http://example.com/a%zz", "hex"),
            ("http://example.com/{x}", "percent-encoded"),
            ("http://example.com\\a", "backslash"),
            ("http://300.1.1.1", "IPv4"),
        ] {
            match ServiceUrl::parse(url) {
                Ok(u) => panic!("{url} accepted: {u:?}"),
                Err(e) => assert!(e.to_string().contains(why), "{url}: {e}"),
            }
        }
    }
}
