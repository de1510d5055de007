//! A submitted HTML form: `application/x-www-form-urlencoded` fields, read whole
//! within a size limit.

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::Response;

use super::layout::{error_page, Viewer};

/// The largest form accepted: a try-it body of 1 MiB, percent-encoded, and the rest.
pub const MAX_FORM: usize = 4 * 1024 * 1024;

/// The fields of a submitted form, in order.
#[derive(Debug, Clone, Default)]
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// Parses an urlencoded body.
    pub fn parse(body: &[u8]) -> Form {
        Form {
            fields: form_urlencoded::parse(body).into_owned().collect(),
        }
    }

    /// The first value of `name`, or `""` when absent.
    pub fn get(&self, name: &str) -> &str {
        self.opt(name).unwrap_or_default()
    }

    /// The first value of `name`, if given.
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = Response;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let urlencoded = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !urlencoded {
            return Err(error_page(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Not a form",
                "The portal only accepts HTML form submissions (application/x-www-form-urlencoded).",
                Viewer::Anonymous,
            ));
        }
        let body = axum::body::to_bytes(req.into_body(), MAX_FORM)
            .await
            .map_err(|_| {
                error_page(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Form too large",
                    &format!(
                        "The form is larger than {} MiB; nothing was changed.",
                        MAX_FORM / (1024 * 1024)
                    ),
                    Viewer::Anonymous,
                )
            })?;
        Ok(Form::parse(&body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields() {
        let f = Form::parse(b"a=1&b=two+words&c=%26%3D&a=2");
        assert_eq!(f.get("a"), "1");
        assert_eq!(f.get("b"), "two words");
        assert_eq!(f.get("c"), "&=");
        assert_eq!(f.get("missing"), "");
        assert_eq!(f.opt("missing"), None);
    }
}
