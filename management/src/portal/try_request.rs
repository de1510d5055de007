//! Building a "try it" request from the console's form: the URL is always a
//! configured gateway's URL, the API's path and the operation's template with
//! its parameters percent-encoded, so nothing typed in the form can change the
//! host the request goes to.

use axum::http::{HeaderName, HeaderValue, Method, Uri};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Characters left as they are in a path segment: RFC 3986's unreserved ones.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The most extra headers a console request may carry.
const MAX_HEADERS: usize = 50;

/// Headers the console sets itself or that would change how the request is framed.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
    "proxy-authorization",
    "expect",
];

/// What a template segment asks the user for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathInput {
    /// `{name}`: one segment.
    Param(String),
    /// `*`: the rest of the path, any number of segments.
    Rest,
}

/// The inputs an operation's URL template needs, in order.
pub fn path_inputs(template: &str) -> Vec<PathInput> {
    let path = template.split('?').next().unwrap_or_default();
    path.split('/')
        .filter_map(|seg| {
            if seg == "*" {
                Some(PathInput::Rest)
            } else {
                seg.strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                    .map(|n| PathInput::Param(n.to_owned()))
            }
        })
        .collect()
}

/// The template's path with `{name}` segments replaced by `param(name)` and `*` by
/// `rest`, every value percent-encoded (the rest segment by segment).
pub fn fill_path<'a>(
    template: &str,
    param: impl Fn(&str) -> Option<&'a str>,
    rest: &str,
) -> Result<String, String> {
    let path = template.split('?').next().unwrap_or_default();
    let mut out = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        if seg == "*" {
            let rest = rest.trim_start_matches('/');
            let mut parts = Vec::new();
            for part in rest.split('/') {
                if part == "." || part == ".." {
                    return Err(
                        "The rest of the path must not contain `.` or `..` segments.".to_owned(),
                    );
                }
                parts.push(utf8_percent_encode(part, SEGMENT).to_string());
            }
            out.push_str(&parts.join("/"));
        } else if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let value = param(name).unwrap_or_default();
            if value.is_empty() {
                return Err(format!("Fill in the path parameter `{name}`."));
            }
            out.push_str(&utf8_percent_encode(value, SEGMENT).to_string());
        } else {
            out.push_str(seg);
        }
    }
    if template.ends_with('/') && !out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// A query string as typed (`a=1&b=two words`, with or without `?`), re-encoded.
pub fn normalise_query(query: &str) -> String {
    let query = query.trim().trim_start_matches('?');
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        out.append_pair(&name, &value);
    }
    out.finish()
}

/// `Name: value` lines (blank lines ignored) as headers; framing headers, `Host`
/// and the subscription key header (`key_header`) are refused.
pub fn parse_headers(
    text: &str,
    key_header: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut headers = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("The header line `{line}` has no `:`; write `Name: value`."))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("`{}` is not a valid header name.", name.trim()))?;
        if RESERVED.contains(&name.as_str()) || name.as_str().eq_ignore_ascii_case(key_header) {
            return Err(format!(
                "The console sets `{name}` itself; remove it from the extra headers."
            ));
        }
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("The value of `{name}` has characters a header cannot carry."))?;
        headers.push((name, value));
        if headers.len() > MAX_HEADERS {
            return Err(format!("Send at most {MAX_HEADERS} extra headers."));
        }
    }
    Ok(headers)
}

/// The request's URL: `gateway` (a configured gateway URL), the API's path, the
/// filled path and the query. The result is checked to keep the gateway's scheme
/// and authority.
pub fn target(gateway: &str, api_path: &str, path: &str, query: &str) -> Result<Uri, String> {
    let base = gateway.trim_end_matches('/');
    let api_path = api_path.trim_matches('/');
    let mut url = base.to_owned();
    if !api_path.is_empty() {
        url.push('/');
        url.push_str(api_path);
    }
    url.push_str(path);
    if url == base {
        url.push('/');
    }
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    let uri: Uri = url
        .parse()
        .map_err(|_| format!("`{url}` is not a valid URL."))?;
    let gateway_uri: Uri = gateway
        .parse()
        .map_err(|_| format!("The gateway URL `{gateway}` is not valid."))?;
    if uri.scheme() != gateway_uri.scheme() || uri.authority() != gateway_uri.authority() {
        return Err("The request would leave the gateway; it was not sent.".to_owned());
    }
    Ok(uri)
}

/// The method to send: the operation's, or for a `*` operation the one chosen.
pub fn method(operation_method: &str, chosen: &str) -> Result<Method, String> {
    let m = if operation_method == "*" {
        chosen
    } else {
        operation_method
    };
    Method::from_bytes(m.as_bytes()).map_err(|_| format!("`{m}` is not an HTTP method."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_of_a_template() {
        assert_eq!(
            path_inputs("/users/{id}/files/*"),
            [PathInput::Param("id".into()), PathInput::Rest]
        );
        assert!(path_inputs("/status?verbose={v}").is_empty());
    }

    #[test]
    fn fills_and_encodes_parameters() {
        let p = |n: &str| match n {
            "id" => Some("a b/../c?d#e"),
            "x" => Some("ok"),
            _ => None,
        };
        assert_eq!(
            fill_path("/users/{id}/x/{x}", p, "").unwrap(),
            "/users/a%20b%2F..%2Fc%3Fd%23e/x/ok"
        );
        assert_eq!(
            fill_path("/files/*", p, "/a/b c/d").unwrap(),
            "/files/a/b%20c/d"
        );
        assert!(fill_path("/files/*", p, "a/../b").is_err());
        assert!(fill_path("/users/{missing}", p, "").is_err());
        assert_eq!(fill_path("/", p, "").unwrap(), "");
        assert_eq!(fill_path("/items/", p, "").unwrap(), "/items/");
        assert_eq!(fill_path("/search?q={q}", p, "").unwrap(), "/search");
    }

    #[test]
    fn queries_are_re_encoded() {
        assert_eq!(normalise_query("?a=1&b=two words"), "a=1&b=two+words");
        assert_eq!(normalise_query(""), "");
        assert_eq!(normalise_query("x=%26"), "x=%26");
    }

    #[test]
    fn headers_are_checked() {
        let h = parse_headers(
            "Accept: application/json\n\nX-Trace:  42 ",
            "Ocp-Apim-Subscription-Key",
        )
        .unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].0.as_str(), "x-trace");
        assert_eq!(h[1].1, "42");
        for bad in [
            "no colon",
            "Host: evil.example",
            "bad name: 1",
            "ocp-apim-subscription-key: x",
            "Transfer-Encoding: chunked",
        ] {
            assert!(
                parse_headers(bad, "Ocp-Apim-Subscription-Key").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn target_stays_on_the_gateway() {
        let uri = target("http://127.0.0.1:8080", "/echo/", "/users/1", "a=1").unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:8080/echo/users/1?a=1");
        let root = target("http://127.0.0.1:8080/", "", "", "").unwrap();
        assert_eq!(root.to_string(), "http://127.0.0.1:8080/");
        // Encoded input cannot produce another authority.
        let p = |_: &str| Some("@evil.example");
        let path = fill_path("/{x}", p, "").unwrap();
        let uri = target("http://127.0.0.1:8080", "", &path, "").unwrap();
        assert_eq!(uri.authority().unwrap().as_str(), "127.0.0.1:8080");
    }

    #[test]
    fn methods() {
        assert_eq!(method("GET", "POST").unwrap(), Method::GET);
        assert_eq!(method("*", "PATCH").unwrap(), Method::PATCH);
        assert!(method("*", "BAD METHOD").is_err());
    }
}
