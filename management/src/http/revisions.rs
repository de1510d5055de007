//! API revisions: `GET|POST /apis/{id}/revisions`, `POST
//! /apis/{id}/revisions/{rev}/make-current`, `DELETE /apis/{id}/revisions/{rev}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::body::{json_from_slice, RawBody};
use super::entities::{entity_response, put_response};
use super::problem::Problem;
use super::{Shared, ADMIN_ACTOR};
use crate::store::{revision_id, Kind, Precondition, StoreError};

/// The revision routes under `/apis/{id}`.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/apis/{id}/revisions", get(list).post(create))
        .route(
            "/apis/{id}/revisions/{rev}/make-current",
            post(make_current),
        )
        .route("/apis/{id}/revisions/{rev}", delete(remove))
}

/// The optional body of a revision's creation or release.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevisionNotes {
    /// Release notes (APIM's `apiRevisionDescription`, or a release's `notes`).
    #[serde(default, alias = "notes")]
    api_revision_description: Option<String>,
}

/// The notes in an optional JSON body.
fn notes(body: &[u8]) -> Result<RevisionNotes, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(RevisionNotes::default())
    } else {
        json_from_slice(body)
    }
}

async fn list(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response, Problem> {
    let revisions = state.read(move |s| s.list_revisions(&id)).await?;
    let value: Vec<serde_json::Value> = revisions.into_iter().map(|e| e.body).collect();
    let count = value.len();
    Ok(Json(serde_json::json!({ "value": value, "count": count })).into_response())
}

async fn create(
    State(state): State<Shared>,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    let notes = notes(&body)?;
    let now = state.now_unix();
    let written = state
        .write(move |s| s.create_revision(&id, notes.api_revision_description, ADMIN_ACTOR, now))
        .await?;
    Ok(put_response(written))
}

async fn make_current(
    State(state): State<Shared>,
    Path((id, rev)): Path<(String, u32)>,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    let notes = notes(&body)?;
    let now = state.now_unix();
    let entity = state
        .write(move |s| {
            s.make_revision_current(&id, rev, notes.api_revision_description, ADMIN_ACTOR, now)
        })
        .await?;
    Ok(entity_response(StatusCode::OK, entity))
}

async fn remove(
    State(state): State<Shared>,
    Path((id, rev)): Path<(String, u32)>,
) -> Result<StatusCode, Problem> {
    let now = state.now_unix();
    state
        .write(move |s| {
            let current = s.get(Kind::Api, &id)?;
            if current.body.get("apiRevision").and_then(|v| v.as_u64()).unwrap_or(1)
                == u64::from(rev)
            {
                return Err(StoreError::Conflict(format!(
                    "revision {rev} is the current revision of api '{id}': make another one current first"
                )));
            }
            s.delete(
                Kind::Api,
                &revision_id(&id, rev),
                Precondition::NONE,
                ADMIN_ACTOR,
                now,
            )
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
