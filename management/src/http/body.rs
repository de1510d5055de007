//! Request bodies: the size limit (413), JSON (400 with line and column) and XML text.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use super::problem::Problem;

/// The largest request body accepted: 16 MiB.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// The largest heartbeat accepted: 64 KiB. A gateway's heartbeat is a few hundred
/// bytes (a compile error makes it longer), so this is generous and still cheap.
pub const MAX_HEARTBEAT_BYTES: usize = 64 * 1024;

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

/// Reads a body of at most `limit` bytes, for handlers that authenticate first and
/// read after: 413 before a byte is read when `Content-Length` says more, or as
/// soon as a streamed (chunked) body passes the limit, so an oversized body is
/// never buffered whole.
pub(super) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, Problem> {
    if declared_length(headers).is_some_and(|declared| declared > limit as u64) {
        return Err(Problem::too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(Problem::too_large(limit)),
        Err(e) => Err(Problem::invalid(format!("cannot read the body: {e}"))),
    }
}

/// The `Content-Length` of a request, when it has a readable one (the HTTP
/// server has already refused a malformed one).
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
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
