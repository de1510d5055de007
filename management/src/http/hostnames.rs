//! A gateway's custom hostnames: `/gateways/{id}/hostnames[/{hostname}]`.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::body::JsonBody;
use super::conditional::{if_none_match_versions, precondition, set_etag};
use super::entities::{entity_response, put_response};
use super::pagination::{Page, PageRequest};
use super::problem::Problem;
use super::{Shared, ADMIN_ACTOR};

/// The collection and item routes.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/gateways/{id}/hostnames", get(list))
        .route(
            "/gateways/{id}/hostnames/{hostname}",
            get(get_one).put(put).delete(delete),
        )
}

async fn list(
    State(state): State<Shared>,
    Path(gateway): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let page = PageRequest::from_query(query.as_deref())?;
    let path = format!("/gateways/{gateway}/hostnames");
    let (entities, count) = state
        .read(move |s| s.list_hostnames(&gateway, page.skip, page.top))
        .await?;
    let value: Vec<serde_json::Value> = entities.into_iter().map(|e| e.body).collect();
    Ok(Json(Page::new(&path, page, value, count)).into_response())
}

async fn get_one(
    State(state): State<Shared>,
    Path((gateway, hostname)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let entity = state
        .read(move |s| s.get_hostname(&gateway, &hostname))
        .await?;
    if if_none_match_versions(&headers).contains(&entity.version) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        set_etag(response.headers_mut(), entity.version);
        return Ok(response);
    }
    Ok(entity_response(StatusCode::OK, entity))
}

async fn put(
    State(state): State<Shared>,
    Path((gateway, hostname)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, Problem> {
    let precondition = precondition(&headers)?;
    let now = state.now_unix();
    let written = state
        .write(move |s| s.put_hostname(&gateway, &hostname, body, precondition, ADMIN_ACTOR, now))
        .await?;
    Ok(put_response(written))
}

async fn delete(
    State(state): State<Shared>,
    Path((gateway, hostname)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    let precondition = precondition(&headers)?;
    let now = state.now_unix();
    state
        .write(move |s| s.delete_hostname(&gateway, &hostname, precondition, ADMIN_ACTOR, now))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
