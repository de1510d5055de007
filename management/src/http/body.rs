//! Request bodies: the size limit (413), JSON (400 with line and column) and XML text.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::problem::Problem;

/// The largest request body accepted: 16 MiB.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// A whole request body, within [`MAX_BODY`].
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(RawBody(bytes)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(Problem::too_large(MAX_BODY))
            }
            Err(e) => Err(Problem::invalid(e.body_text())),
        }
    }
}

/// A JSON body parsed into `T`; any `Content-Type` naming JSON (or none) is accepted.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        check_media_type(&req, "JSON", |m| {
            m == "application/json" || m.ends_with("+json")
        })?;
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| Problem::invalid_json(&e))
    }
}

/// A policy document: UTF-8 XML text (`application/xml`, `text/xml`, or no type).
pub struct XmlBody(pub String);

impl<S: Send + Sync> FromRequest<S> for XmlBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        check_media_type(&req, "XML", |m| {
            m == "application/xml" || m == "text/xml" || m.ends_with("+xml")
        })?;
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        String::from_utf8(bytes.to_vec())
            .map(XmlBody)
            .map_err(|e| Problem::invalid(format!("the policy document is not UTF-8: {e}")))
    }
}

/// Refuses a body whose `Content-Type` is given and is not accepted with 415.
pub(super) fn check_media_type(
    req: &Request,
    what: &str,
    accepts: impl Fn(&str) -> bool,
) -> Result<(), Problem> {
    check_media_type_of(req.headers(), what, accepts)
}

/// [`check_media_type`] on a request's header fields.
pub(super) fn check_media_type_of(
    headers: &HeaderMap,
    what: &str,
    accepts: impl Fn(&str) -> bool,
) -> Result<(), Problem> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let media = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if accepts(&media) {
        Ok(())
    } else {
        Err(Problem::unsupported_media_type(format!(
            "this endpoint takes {what}, not `{media}`"
        )))
    }
}
