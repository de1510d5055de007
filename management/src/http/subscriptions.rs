//! Subscription actions: show keys, regenerate a key, suspend, activate, cancel.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use portcullis_core::config::SubscriptionState;

use super::conditional::precondition;
use super::entities::entity_response;
use super::problem::Problem;
use super::{Shared, ADMIN_ACTOR};
use crate::store::KeyType;

/// `POST /subscriptions/{id}/...` actions.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/subscriptions/{id}/secrets", post(secrets))
        .route(
            "/subscriptions/{id}/regenerate-primary-key",
            post(|state, id, headers| regenerate(KeyType::Primary, state, id, headers)),
        )
        .route(
            "/subscriptions/{id}/regenerate-secondary-key",
            post(|state, id, headers| regenerate(KeyType::Secondary, state, id, headers)),
        )
        .route(
            "/subscriptions/{id}/suspend",
            post(|state, id, headers| set_state(SubscriptionState::Suspended, state, id, headers)),
        )
        .route(
            "/subscriptions/{id}/activate",
            post(|state, id, headers| set_state(SubscriptionState::Active, state, id, headers)),
        )
        .route(
            "/subscriptions/{id}/cancel",
            post(|state, id, headers| set_state(SubscriptionState::Cancelled, state, id, headers)),
        )
}

async fn secrets(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response, Problem> {
    let keys = state.read(move |s| s.subscription_secrets(&id)).await?;
    Ok(Json(keys).into_response())
}

async fn regenerate(
    which: KeyType,
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let precondition = precondition(&headers)?;
    let now = state.now_unix();
    let keys = state
        .write(move |s| s.regenerate_subscription_key(&id, which, precondition, ADMIN_ACTOR, now))
        .await?;
    Ok(Json(keys).into_response())
}

async fn set_state(
    target: SubscriptionState,
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let precondition = precondition(&headers)?;
    let now = state.now_unix();
    let entity = state
        .write(move |s| s.set_subscription_state(&id, target, precondition, ADMIN_ACTOR, now))
        .await?;
    Ok(entity_response(StatusCode::OK, entity))
}
