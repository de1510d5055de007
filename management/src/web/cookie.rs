//! Session cookies: reading them from requests and writing `Set-Cookie` values.

use axum::http::header::{COOKIE, HOST};
use axum::http::{HeaderMap, HeaderValue};

use crate::http::AppState;

/// The value of cookie `name` in the request's `Cookie` headers, if present.
pub(crate) fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
}

/// A `Set-Cookie` value for an HttpOnly, SameSite=Strict cookie scoped to `path`.
pub(crate) fn set(
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: u64,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
    );
    // Names, values and paths are ours (hex tokens, fixed names); a stray control
    // character would be a bug, and an empty cookie is the safe outcome.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// A `Set-Cookie` value that deletes cookie `name` at `path`.
pub(crate) fn clear(name: &str, path: &str, secure: bool) -> HeaderValue {
    set(name, "", path, 0, secure)
}

/// Whether cookies for this request should be `Secure`: always over TLS, and over
/// plain HTTP only when the browser talks to a loopback host (browsers treat
/// `http://localhost` and `127.0.0.1` as secure contexts and keep such cookies;
/// on any other plain-HTTP host a `Secure` cookie would be dropped and nobody
/// could sign in).
pub(crate) fn secure_for(state: &AppState, headers: &HeaderMap) -> bool {
    state.serves_tls()
        || headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(is_loopback_host)
}

/// Whether a `Host` header value names a loopback host.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        })
    };
    if name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cookies_among_others() {
        let mut h = HeaderMap::new();
        assert_eq!(read(&h, "a"), None);
        h.append(COOKIE, HeaderValue::from_static("x=1; a=two; b=3"));
        h.append(COOKIE, HeaderValue::from_static("c=\"q\""));
        assert_eq!(read(&h, "a").as_deref(), Some("two"));
        assert_eq!(read(&h, "c").as_deref(), Some("q"));
        assert_eq!(read(&h, "ab"), None);
    }

    #[test]
    fn set_and_clear() {
        let v = set("s", "abc", "/portal", 60, true);
        assert_eq!(
            v.to_str().unwrap(),
            "s=abc; Path=/portal; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
        let v = clear("s", "/", false);
        assert_eq!(
            v.to_str().unwrap(),
            "s=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
        );
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:1",
            "127.1.2.3",
            "[::1]:80",
            "[::1]",
            "app.localhost",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1:80",
            "[2001:db8::1]:80",
            "localhost.example.com",
            "",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
