//! Embedded static files (CSS, JavaScript, images) served with a strong ETag.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A response serving `body` as `content_type`, revalidated on every use (`no-cache`)
/// so a new binary's assets are picked up at once.
pub(crate) fn asset(body: &'static [u8], content_type: &'static str) -> Response {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let tag = format!("\"{}\"", crate::store::hex_prefix(digest.as_ref(), 16));
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        h.insert(ETAG, tag);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_carry_type_and_tag() {
        let res = asset(b"body { }", "text/css; charset=utf-8");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
        let tag = res.headers()[ETAG].to_str().unwrap().to_owned();
        assert_eq!(tag.len(), 34);
        assert_ne!(asset(b"other", "text/css").headers()[ETAG], tag.as_str());
    }
}
