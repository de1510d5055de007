//! Errors as `application/problem+json` (RFC 9457), mapped from store errors.

use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_core::config::ConfigError;
use serde::Serialize;

use crate::store::StoreError;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The prefix of every problem `type` this service uses.
pub const TYPE_PREFIX: &str = "https://portcullis.dev/problems/";

/// Where a policy document fails to compile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyLocation {
    /// Whose document: `global`, `product 'p'`, `api 'a'`, `api 'a' operation 'o'`.
    pub owner: String,
    /// The offending element (the policy), or `policies` for document-level errors.
    pub element: String,
    /// Line in the document, from 1.
    pub line: u32,
    /// Column in the line, from 1.
    pub column: u32,
    /// Why it does not compile.
    pub reason: String,
}

/// An error response: status, a problem type slug, a title and a detail sentence.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// The last segment of the problem type URI.
    pub slug: &'static str,
    /// A short summary of the problem type.
    pub title: &'static str,
    /// What happened this time.
    pub detail: String,
    /// For a policy that does not compile: where and why (boxed: errors stay small).
    pub policy: Option<Box<PolicyLocation>>,
    /// The `WWW-Authenticate` challenge of a 401.
    pub challenge: Option<&'static str>,
    /// For an OpenAPI document that cannot be imported: where it breaks.
    pub document: Option<Box<DocumentLocation>>,
}

/// Where an imported OpenAPI document breaks: a position for a syntax error, a
/// JSON pointer for a structural one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentLocation {
    /// Line in the document, from 1 (syntax errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Column in the line, from 1 (syntax errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// JSON pointer (RFC 6901) of the offending value (structural errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// Why it cannot be imported.
    pub reason: String,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<&'a PolicyLocation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<&'a DocumentLocation>,
}

impl Problem {
    /// A problem with the given status, type slug, title and detail.
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            slug,
            title,
            detail: detail.into(),
            policy: None,
            challenge: None,
            document: None,
        }
    }

    /// 400: the request itself is not acceptable.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
            detail,
        )
    }

    /// 400: the body is not the JSON expected.
    pub fn invalid_json(err: &serde_json::Error) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-json",
            "Invalid JSON body",
            format!(
                "the body is not valid JSON: {} (line {}, column {})",
                strip_position(err),
                err.line(),
                err.column()
            ),
        )
    }

    /// 401 for the admin API: no or an unknown bearer token.
    pub fn unauthorized_admin(detail: impl Into<String>) -> Self {
        Problem {
            challenge: Some("Bearer realm=\"portcullis-management\""),
            ..Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                detail,
            )
        }
    }

    /// 401 for the gateway endpoints: no, or a bad, gateway token.
    pub fn unauthorized_gateway(detail: impl Into<String>) -> Self {
        Problem {
            challenge: Some("GatewayKey"),
            ..Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                detail,
            )
        }
    }

    /// 404 for a path that no route serves.
    pub fn no_route(path: &str) -> Self {
        Problem::new(
            StatusCode::NOT_FOUND,
            "no-such-route",
            "No such route",
            format!("no resource at `{path}`; see /openapi.json"),
        )
    }

    /// 405 for a method the route does not serve.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!("`{path}` does not accept {method}; see /openapi.json"),
        )
    }

    /// 412: `If-Match` or `If-None-Match` did not hold.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition-failed",
            "Precondition failed",
            detail,
        )
    }

    /// 413: the body exceeds the limit.
    pub fn too_large(limit: usize) -> Self {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            format!("request bodies are limited to {limit} bytes"),
        )
    }

    /// 415: a body of a media type the endpoint does not take.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
        )
    }

    /// 500, with a detail that reveals nothing; the cause goes to the log.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "management request failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "Internal error",
            "the management plane failed to handle the request; its log has the cause",
        )
    }

    /// 400 for a candidate configuration that does not compile.
    pub fn config(err: &ConfigError) -> Self {
        match err {
            ConfigError::Policy { owner, error } => Problem {
                policy: Some(Box::new(PolicyLocation {
                    owner: owner.clone(),
                    element: error.policy.clone(),
                    line: error.pos.line,
                    column: error.pos.column,
                    reason: error.message.clone(),
                })),
                ..Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-policy",
                    "Invalid policy",
                    err.to_string(),
                )
            },
            _ => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-configuration",
                "Invalid configuration",
                err.to_string(),
            ),
        }
    }
}

impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                format!("{what} not found"),
            ),
            StoreError::PreconditionFailed(why) => Problem::precondition_failed(why),
            StoreError::Invalid(why) => Problem::invalid(why),
            StoreError::Config(config) => Problem::config(&config),
            StoreError::Conflict(why) => {
                Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", why)
            }
            StoreError::Unauthorized(why) => Problem::unauthorized_gateway(why),
            other @ (StoreError::Sqlite(_) | StoreError::Io(_) | StoreError::Corrupt(_)) => {
                Problem::internal(&other)
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = Body {
            kind: format!("{TYPE_PREFIX}{}", self.slug),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            policy: self.policy.as_deref(),
            document: self.document.as_deref(),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(challenge) = self.challenge {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

/// serde_json's message without its " at line L column C" suffix.
fn strip_position(err: &serde_json::Error) -> String {
    let full = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}
