//! Collections and entities of every kind: list, GET, PUT (create or replace), DELETE.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::body::JsonBody;
use super::conditional::{if_none_match_versions, precondition, set_etag};
use super::pagination::{Page, PageRequest};
use super::problem::Problem;
use super::{Shared, ADMIN_ACTOR};
use crate::store::{Entity, Kind, Written};

/// `/{collection}` and `/{collection}/{id}` for every kind.
pub fn routes() -> Router<Shared> {
    let mut router = Router::new();
    for kind in Kind::ROUTED {
        let collection = format!("/{}", kind.collection());
        let item = format!("/{}/{{id}}", kind.collection());
        router = router
            .route(
                &collection,
                get(move |state, query| list(kind, state, query)),
            )
            .route(
                &item,
                get(move |state, id, headers| get_one(kind, state, id, headers))
                    .put(move |state, id, headers, body| put(kind, state, id, headers, body))
                    .delete(move |state, id, headers| delete(kind, state, id, headers)),
            );
    }
    router
}

/// The answer to a PUT: 201 when it created the entity, else 200, with its ETag.
pub fn put_response(written: Written) -> Response {
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    entity_response(status, written.entity)
}

/// A single entity as a response: its body and `ETag`.
pub fn entity_response(status: StatusCode, entity: Entity) -> Response {
    let mut response = (status, Json(entity.body)).into_response();
    set_etag(response.headers_mut(), entity.version);
    response
}

async fn list(
    kind: Kind,
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let page = PageRequest::from_query(query.as_deref())?;
    let (entities, count) = state
        .read(move |s| s.list(kind, page.skip, page.top))
        .await?;
    let value: Vec<serde_json::Value> = entities.into_iter().map(|e| e.body).collect();
    let path = format!("/{}", kind.collection());
    Ok(Json(Page::new(&path, page, value, count)).into_response())
}

async fn get_one(
    kind: Kind,
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let entity = state.read(move |s| s.get(kind, &id)).await?;
    if if_none_match_versions(&headers).contains(&entity.version) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        set_etag(response.headers_mut(), entity.version);
        return Ok(response);
    }
    Ok(entity_response(StatusCode::OK, entity))
}

async fn put(
    kind: Kind,
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, Problem> {
    let precondition = precondition(&headers)?;
    let now = state.now_unix();
    let written = state
        .write(move |s| s.put(kind, &id, body, precondition, ADMIN_ACTOR, now))
        .await?;
    Ok(put_response(written))
}

async fn delete(
    kind: Kind,
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    let precondition = precondition(&headers)?;
    let now = state.now_unix();
    state
        .write(move |s| s.delete(kind, &id, precondition, ADMIN_ACTOR, now))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
