//! Gateway administration beyond CRUD: keys, key regeneration, tokens and status.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::body::{JsonBody, RawBody};
use super::clock::{parse_rfc3339, rfc3339};
use super::conditional::precondition;
use super::problem::Problem;
use super::{Shared, ADMIN_ACTOR};
use crate::store::{Heartbeat, KeyType};

/// `/gateways/{id}/keys`, `/regenerate-key`, `/token` and `/status`.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/gateways/{id}/keys", post(keys))
        .route("/gateways/{id}/regenerate-key", post(regenerate_key))
        .route("/gateways/{id}/token", post(token))
        .route("/gateways/{id}/status", get(status))
}

/// Body of `POST /gateways/{id}/regenerate-key`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegenerateRequest {
    key_type: KeyType,
}

/// Body of `POST /gateways/{id}/token`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenRequest {
    #[serde(default)]
    key_type: Option<KeyType>,
    #[serde(default)]
    expiry: Option<String>,
}

/// Response of `POST /gateways/{id}/token`.
#[derive(Debug, Serialize)]
struct TokenResponse {
    value: String,
    expiry: String,
}

/// One instance in `GET /gateways/{id}/status`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct InstanceView {
    #[serde(flatten)]
    heartbeat: Heartbeat,
    last_heartbeat: String,
    online: bool,
    /// Whether the instance serves exactly the store's current content for this
    /// gateway (same store identity and digest); `null` while it serves nothing
    /// or reports no digest.
    content_matches: Option<bool>,
}

/// Response of `GET /gateways/{id}/status`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusView {
    gateway_id: String,
    /// The store's identity.
    store_id: String,
    /// The store's current revision.
    current_revision: u64,
    /// The digest of the content the store would send this gateway now.
    current_digest: Option<String>,
    instances: Vec<InstanceView>,
}

async fn keys(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response, Problem> {
    let keys = state.read(move |s| s.gateway_keys(&id)).await?;
    Ok(Json(keys).into_response())
}

async fn regenerate_key(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<RegenerateRequest>,
) -> Result<Response, Problem> {
    let precondition = precondition(&headers)?;
    let now = state.now_unix();
    let keys = state
        .write(move |s| {
            s.regenerate_gateway_key(&id, request.key_type, precondition, ADMIN_ACTOR, now)
        })
        .await?;
    Ok(Json(keys).into_response())
}

async fn token(
    State(state): State<Shared>,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    // The body is optional: none means a primary-key token for 30 days.
    let request: TokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TokenRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| Problem::invalid_json(&e))?
    };
    let which = request.key_type.unwrap_or(KeyType::Primary);
    let expiry = match request.expiry.as_deref() {
        None => None,
        Some(text) => Some(parse_rfc3339(text).ok_or_else(|| {
            Problem::invalid(format!(
                "expiry `{text}` is not an RFC 3339 date-time after 1970"
            ))
        })?),
    };
    let now = state.now_unix();
    let token = state
        .read(move |s| s.gateway_token(&id, which, expiry, now))
        .await?;
    Ok(Json(TokenResponse {
        value: token.value,
        expiry: rfc3339(token.expiry_unix),
    })
    .into_response())
}

async fn status(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response, Problem> {
    let now = state.now_unix();
    let (status, current) = state
        .read(move |s| Ok((s.gateway_status(&id, now)?, s.gateway_config(&id)?)))
        .await?;
    // Offline after three missed heartbeats of the configured interval.
    let window = state.heartbeat_interval.as_secs().max(1).saturating_mul(3);
    let instances = status
        .instances
        .into_iter()
        .map(|i| InstanceView {
            online: now.saturating_sub(i.last_heartbeat_unix) <= window,
            last_heartbeat: rfc3339(i.last_heartbeat_unix),
            content_matches: i.heartbeat.applied_digest.as_ref().map(|digest| {
                Some(digest) == current.id.digest.as_ref()
                    && i.heartbeat.store_id == current.id.store_id
            }),
            heartbeat: i.heartbeat,
        })
        .collect();
    Ok(Json(StatusView {
        gateway_id: status.gateway_id,
        store_id: current.id.store_id.clone().unwrap_or_default(),
        current_revision: current.revision,
        current_digest: current.id.digest.clone(),
        instances,
    })
    .into_response())
}
