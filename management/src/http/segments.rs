//! Ids are path segments: `.` and `..` (or their percent-encoded forms) would name
//! the collection or its parent once a client, proxy or browser resolves the URL,
//! so a request with one is refused before it reaches a handler; so is one whose
//! segments are not UTF-8 once percent-decoded (the path extractor would answer
//! that in plain text).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;

/// Refuses a request whose path has a `.` or `..` segment, or a segment that is
/// not UTF-8, with 400 problem+json.
pub(super) async fn refuse_dot_segments(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if let Some(segment) = dot_segment(path) {
        return Problem::invalid(format!(
            "`{segment}` is not an id: ids cannot be `.` or `..`"
        ))
        .into_response();
    }
    if let Some(segment) = non_utf8_segment(path) {
        return Problem::invalid(format!(
            "the path segment `{segment}` is not UTF-8 once percent-decoded"
        ))
        .into_response();
    }
    next.run(req).await
}

/// The first segment of `path` whose percent-decoding is not UTF-8.
fn non_utf8_segment(path: &str) -> Option<&str> {
    path.split('/').find(|segment| {
        percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .is_err()
    })
}

/// The first segment of `path` that is `.` or `..`, percent-encoded or not.
fn dot_segment(path: &str) -> Option<&str> {
    path.split('/').find(|segment| {
        let lower = segment.to_ascii_lowercase();
        let decoded = lower.replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::dot_segment;

    #[test]
    fn dot_segments_are_found_in_any_spelling() {
        for path in [
            "/apis/.",
            "/apis/..",
            "/apis/%2e",
            "/apis/%2E%2e",
            "/apis/.%2E/policy",
            "/apis/a/operations/../policy",
        ] {
            assert!(dot_segment(path).is_some(), "{path}");
        }
        for path in [
            "/apis/a.b",
            "/apis/...",
            "/apis/.hidden",
            "/apis/%2e%2e%2e",
            "/",
        ] {
            assert_eq!(dot_segment(path), None, "{path}");
        }
    }
}
