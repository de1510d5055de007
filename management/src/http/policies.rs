//! Policy documents as raw XML at global, product, API and operation scope.

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::body::XmlBody;
use super::conditional::{if_none_match_versions, precondition, set_etag};
use super::problem::Problem;
use super::{Shared, ADMIN_ACTOR};
use crate::store::{PolicyDoc, PolicyScope};

/// The media type policy documents are served with.
const XML: &str = "application/xml; charset=utf-8";

/// GET, PUT and DELETE of `/policy`, `/products/{id}/policy`, `/apis/{id}/policy`
/// and `/apis/{id}/operations/{opId}/policy`.
pub fn routes() -> Router<Shared> {
    Router::new()
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
