//! Policy documents as raw XML at global, product, API and operation scope, and
//! their check before saving (`POST …/policy/validate`).

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_core::config::ConfigError;
use serde::Serialize;

use super::body::XmlBody;
use super::conditional::{if_none_match_versions, precondition, set_etag};
use super::problem::Problem;
use super::{Shared, ADMIN_ACTOR};
use crate::store::{PolicyDoc, PolicyScope, StoreError};

/// The media type policy documents are served with.
const XML: &str = "application/xml; charset=utf-8";

/// GET, PUT and DELETE of `/policy`, `/products/{id}/policy`, `/apis/{id}/policy`
/// and `/apis/{id}/operations/{opId}/policy`, and POST of each one's `/validate`.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/policy/validate",
            post(|state, body| validate(PolicyScope::Global, state, body)),
        )
        .route(
            "/products/{id}/policy/validate",
            post(|state, Path(id): Path<String>, body| {
                validate(PolicyScope::Product(id), state, body)
            }),
        )
        .route(
            "/apis/{id}/policy/validate",
            post(|state, Path(id): Path<String>, body| validate(PolicyScope::Api(id), state, body)),
        )
        .route(
            "/apis/{id}/operations/{opId}/policy/validate",
            post(|state, Path((id, op)): Path<(String, String)>, body| {
                validate(PolicyScope::Operation(id, op), state, body)
            }),
        )
        .route(
            "/policy",
            get(|state, headers| get_doc(PolicyScope::Global, state, headers))
                .put(|state, headers, body| put_doc(PolicyScope::Global, state, headers, body))
                .delete(|state, headers| delete_doc(PolicyScope::Global, state, headers)),
        )
        .route(
            "/products/{id}/policy",
            get(|state, Path(id): Path<String>, headers| {
                get_doc(PolicyScope::Product(id), state, headers)
            })
            .put(|state, Path(id): Path<String>, headers, body| {
                put_doc(PolicyScope::Product(id), state, headers, body)
            })
            .delete(|state, Path(id): Path<String>, headers| {
                delete_doc(PolicyScope::Product(id), state, headers)
            }),
        )
        .route(
            "/apis/{id}/policy",
            get(|state, Path(id): Path<String>, headers| {
                get_doc(PolicyScope::Api(id), state, headers)
            })
            .put(|state, Path(id): Path<String>, headers, body| {
                put_doc(PolicyScope::Api(id), state, headers, body)
            })
            .delete(|state, Path(id): Path<String>, headers| {
                delete_doc(PolicyScope::Api(id), state, headers)
            }),
        )
        .route(
            "/apis/{id}/operations/{opId}/policy",
            get(|state, Path((id, op)): Path<(String, String)>, headers| {
                get_doc(PolicyScope::Operation(id, op), state, headers)
            })
            .put(
                |state, Path((id, op)): Path<(String, String)>, headers, body| {
                    put_doc(PolicyScope::Operation(id, op), state, headers, body)
                },
            )
            .delete(|state, Path((id, op)): Path<(String, String)>, headers| {
                delete_doc(PolicyScope::Operation(id, op), state, headers)
            }),
        )
}

fn xml_response(status: StatusCode, doc: PolicyDoc) -> Response {
    let mut response = (status, doc.xml).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(XML));
    set_etag(headers, doc.version);
    response
}

async fn get_doc(
    scope: PolicyScope,
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let doc = state.read(move |s| s.get_policy(&scope)).await?;
    if if_none_match_versions(&headers).contains(&doc.version) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        set_etag(response.headers_mut(), doc.version);
        return Ok(response);
    }
    Ok(xml_response(StatusCode::OK, doc))
}

async fn put_doc(
    scope: PolicyScope,
    State(state): State<Shared>,
    headers: HeaderMap,
    XmlBody(xml): XmlBody,
) -> Result<Response, Problem> {
    let precondition = precondition(&headers)?;
    let now = state.now_unix();
    let (doc, created) = state
        .write(move |s| s.put_policy(&scope, &xml, precondition, ADMIN_ACTOR, now))
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(xml_response(status, doc))
}

async fn delete_doc(
    scope: PolicyScope,
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    let precondition = precondition(&headers)?;
    let now = state.now_unix();
    state
        .write(move |s| s.delete_policy(&scope, precondition, ADMIN_ACTOR, now))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer of `POST …/policy/validate`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct Validation {
    valid: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<ValidationError>,
}

/// One reason a document does not compile, where the compiler found it.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct ValidationError {
    /// Line in the document, from 1 (absent for errors outside the document).
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
    /// Column in the line, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<u32>,
    /// The offending element, or `policies` for document-level errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    element: Option<String>,
    /// Whose document the error is in (the one checked, unless it breaks another).
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    /// Why it does not compile.
    message: String,
}

/// Compiles the document as PUT would, stores nothing: 200 with `valid` and, when
/// false, the compiler's errors with their lines. An unknown owner is 404, like PUT.
async fn validate(
    scope: PolicyScope,
    State(state): State<Shared>,
    XmlBody(xml): XmlBody,
) -> Result<Response, Problem> {
    let outcome = state
        .read(move |s| match s.check_policy(&scope, &xml) {
            Ok(()) => Ok(Ok(())),
            // The document's fault: an answer, not a failed request.
            Err(StoreError::Config(err)) => Ok(Err(*err)),
            Err(other) => Err(other),
        })
        .await?;
    Ok(Json(validation(outcome)).into_response())
}

/// The body for a compile outcome.
fn validation(outcome: Result<(), ConfigError>) -> Validation {
    let errors = match outcome {
        Ok(()) => Vec::new(),
        Err(ConfigError::Policy { owner, error }) => vec![ValidationError {
            line: Some(error.pos.line),
            column: Some(error.pos.column),
            element: Some(error.policy),
            owner: Some(owner),
            message: error.message,
        }],
        Err(other) => vec![ValidationError {
            line: None,
            column: None,
            element: None,
            owner: None,
            message: other.to_string(),
        }],
    };
    Validation {
        valid: errors.is_empty(),
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_bodies() {
        let ok = serde_json::to_value(validation(Ok(()))).expect("json");
        assert_eq!(ok, serde_json::json!({ "valid": true }));
        let err = ConfigError::TooMany {
            what: "apis",
            limit: 1,
        };
        let body = serde_json::to_value(validation(Err(err))).expect("json");
        assert_eq!(body["valid"], false);
        assert_eq!(body["errors"][0]["message"], "more than 1 apis");
        assert!(body["errors"][0].get("line").is_none());
    }
}
