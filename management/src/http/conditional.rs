//! ETags and conditional requests: `ETag: "<version>"`, `If-Match`, `If-None-Match`.

use axum::http::header::{ETAG, IF_MATCH, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue};

use super::problem::Problem;
use crate::store::{IfMatch, Precondition};

/// The `ETag` value of a version or revision: `"<n>"`.
pub fn etag(version: u64) -> HeaderValue {
    // Digits and quotes only: always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// Adds `ETag: "<version>"` to a header map.
pub fn set_etag(headers: &mut HeaderMap, version: u64) {
    headers.insert(ETAG, etag(version));
}

/// The precondition of a write from `If-Match` and `If-None-Match: *`.
///
/// An `If-Match` tag that is not one of ours (not a number, or weak) can never match,
/// so it fails at once with 412.
pub fn precondition(headers: &HeaderMap) -> Result<Precondition, Problem> {
    let if_match = match header_str(headers, IF_MATCH.as_str())? {
        None => None,
        Some(value) => Some(parse_if_match(value)?),
    };
    let if_none_match_any = match header_str(headers, IF_NONE_MATCH.as_str())? {
        Some(value) => value.split(',').any(|tag| tag.trim() == "*"),
        None => false,
    };
    Ok(Precondition {
        if_match,
        if_none_match_any,
    })
}

fn parse_if_match(value: &str) -> Result<IfMatch, Problem> {
    let tags: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if tags.contains(&"*") {
        return Ok(IfMatch::Any);
    }
    let mut versions = tags.iter().filter_map(|t| strong_version(t));
    match (versions.next(), versions.next()) {
        (Some(v), None) => Ok(IfMatch::Version(v)),
        (Some(_), Some(_)) => Err(Problem::invalid(
            "If-Match with more than one entity tag is not supported",
        )),
        (None, _) => Err(Problem::precondition_failed(format!(
            "If-Match {value} matches no version of this resource"
        ))),
    }
}

/// The versions an `If-None-Match` header names (weak or strong), for GET and the
/// configuration endpoint. `*` and foreign tags are left out.
pub fn if_none_match_versions(headers: &HeaderMap) -> Vec<u64> {
    let Ok(Some(value)) = header_str(headers, IF_NONE_MATCH.as_str()) else {
        return Vec::new();
    };
    value
        .split(',')
        .map(str::trim)
        .filter_map(|t| strong_version(t.strip_prefix("W/").unwrap_or(t)))
        .collect()
}

/// `"12"` -> 12; anything else (weak, unquoted, not a number) -> `None`.
fn strong_version(tag: &str) -> Option<u64> {
    let inner = tag.strip_prefix('"')?.strip_suffix('"')?;
    if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    inner.parse().ok()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Problem> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Problem::invalid(format!("{name} is given more than once")));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| Problem::invalid(format!("{name} is not visible ASCII")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn if_match_forms() {
        let p = precondition(&headers(&[("if-match", "\"7\"")])).expect("ok");
        assert_eq!(p.if_match, Some(IfMatch::Version(7)));
        let p = precondition(&headers(&[("if-match", "*")])).expect("ok");
        assert_eq!(p.if_match, Some(IfMatch::Any));
        let p = precondition(&headers(&[])).expect("ok");
        assert_eq!(p, Precondition::NONE);
        let e = precondition(&headers(&[("if-match", "W/\"7\"")])).expect_err("weak");
        assert_eq!(e.status.as_u16(), 412);
        let e = precondition(&headers(&[("if-match", "\"abc\"")])).expect_err("foreign");
        assert_eq!(e.status.as_u16(), 412);
        let e = precondition(&headers(&[("if-match", "\"1\", \"2\"")])).expect_err("two");
        assert_eq!(e.status.as_u16(), 400);
    }

    #[test]
    fn if_none_match_forms() {
        let p = precondition(&headers(&[("if-none-match", "*")])).expect("ok");
        assert!(p.if_none_match_any);
        let h = headers(&[("if-none-match", "W/\"3\", \"4\", \"x\"")]);
        assert_eq!(if_none_match_versions(&h), vec![3, 4]);
    }
}
