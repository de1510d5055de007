//! Request bodies: the size limit (413), JSON (400 with line and column) and XML text.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
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

/// Whether `Content-Type` names JSON.
pub(super) fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// A JSON body parsed into `T`; any `Content-Type` naming JSON is accepted, and
/// none only without a body.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        check_media_type(&req, "JSON", is_json)?;
        let untyped = !req.headers().contains_key(CONTENT_TYPE);
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        check_untyped_body(untyped, &bytes, "JSON")?;
        json_from_slice(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body: 400 problem+json naming the line and column, and saying so
/// when the bytes are not UTF-8 at all.
pub(super) fn json_from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(not_utf8("the JSON body", &e));
    }
    serde_json::from_slice(bytes).map_err(|e| Problem::invalid_json(&e))
}

/// 400: a text body that is not UTF-8, with where it stops being UTF-8.
fn not_utf8(what: &str, e: &std::str::Utf8Error) -> Problem {
    Problem::invalid(format!(
        "{what} is not UTF-8: invalid bytes at offset {}",
        e.valid_up_to()
    ))
}

/// A policy document: UTF-8 XML text (`application/xml`, `text/xml`).
pub struct XmlBody(pub String);

impl<S: Send + Sync> FromRequest<S> for XmlBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        check_media_type(&req, "XML", |m| {
            m == "application/xml" || m == "text/xml" || m.ends_with("+xml")
        })?;
        let untyped = !req.headers().contains_key(CONTENT_TYPE);
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        check_untyped_body(untyped, &bytes, "XML")?;
        match std::str::from_utf8(&bytes) {
            Ok(text) => Ok(XmlBody(text.to_owned())),
            Err(e) => Err(not_utf8("the policy document", &e)),
        }
    }
}

/// A body that came without `Content-Type` (one whose framing the head did not
/// give away, as over HTTP/2) is refused once read: 415, never guessed at.
pub(super) fn check_untyped_body(untyped: bool, body: &[u8], what: &str) -> Result<(), Problem> {
    if untyped && !body.is_empty() {
        return Err(missing_type(what));
    }
    Ok(())
}

fn missing_type(what: &str) -> Problem {
    Problem::unsupported_media_type(format!(
        "this endpoint takes {what}: the body needs a `Content-Type`"
    ))
}

/// Whether the head says there is no body: `Content-Length: 0`, or neither a
/// length nor chunked framing (HTTP/1.1).
fn declared_empty(headers: &HeaderMap) -> bool {
    match declared_length(headers) {
        Some(n) => n == 0,
        None => !headers.contains_key(CONTENT_LENGTH) && !headers.contains_key(TRANSFER_ENCODING),
    }
}

/// Refuses with 415 a body whose `Content-Type` is not accepted, or is missing
/// (a body without one is not taken for any type); no body needs no type.
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
        return if declared_empty(headers) {
            Ok(())
        } else {
            Err(missing_type(what))
        };
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
