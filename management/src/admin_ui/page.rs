//! Server-rendered pages: the embedded templates with their few values filled in.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The console's shell: the app's HTML, with `{{csrf}}`.
const SHELL: &str = include_str!("../../assets/admin/shell.html");

/// The sign-in page, with `{{csrf}}` and `{{error}}`.
const LOGIN: &str = include_str!("../../assets/admin/login.html");

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The shell for a session whose CSRF token is `csrf`.
pub(super) fn shell(csrf: &str) -> String {
    SHELL.replace("{{csrf}}", &escape(csrf))
}

/// The sign-in form with its CSRF token and, after a refusal, why.
pub(super) fn login(csrf: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| {
            format!(
                "<p class=\"status error\" role=\"alert\" id=\"login-error\">{}</p>",
                escape(e)
            )
        })
        .unwrap_or_default();
    LOGIN
        .replace("{{csrf}}", &escape(csrf))
        .replace("{{error}}", &error)
}

/// An HTML response.
pub(super) fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let page = login("abc", Some("<b>no</b>"));
        assert!(page.contains("value=\"abc\""));
        assert!(page.contains("&lt;b&gt;no&lt;/b&gt;"));
        assert!(!page.contains("{{"));
        let page = shell("t\"x");
        assert!(page.contains("content=\"t&quot;x\""));
        assert!(!page.contains("{{"));
    }
}
