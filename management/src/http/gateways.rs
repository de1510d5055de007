//! Gateway administration beyond CRUD: keys, key regeneration, tokens and status.

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::body::{
    check_media_type_of, check_untyped_body, is_json, json_from_slice, JsonBody, RawBody,
};
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
    /// The token's expiry, RFC 3339, when the instance reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_expires_at: Option<String>,
    token_expired: bool,
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
    /// The last refusal of a token sent for this gateway, if any.
    last_token_refusal: Option<super::token_renewal::RefusalView>,
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
    let gateway = id.clone();
    let which = request.key_type;
    let (old, keys) = state
        .write(move |s| {
            let old = s.gateway_keys(&gateway)?;
            let keys = s.regenerate_gateway_key(&gateway, which, precondition, ADMIN_ACTOR, now)?;
            Ok((old, keys))
        })
        .await?;
    // Remembered so a token signed with the old key is refused as such, not as
    // a forgery.
    let retired = match which {
        KeyType::Primary => old.primary,
        KeyType::Secondary => old.secondary,
    };
    state.token_refusals.retire_key(&id, retired);
    Ok(Json(keys).into_response())
}

async fn token(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    check_media_type_of(&headers, "JSON", is_json)?;
    check_untyped_body(!headers.contains_key(CONTENT_TYPE), &body, "JSON")?;
    // The body is optional: none means a primary-key token for 30 days.
    let request: TokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TokenRequest::default()
    } else {
        json_from_slice(&body)?
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
        .map(|mut i| {
            let (token_expires_at, token_expired) =
                super::token_renewal::token_state(&mut i.heartbeat, now);
            InstanceView {
                // An expired token cannot heartbeat: the instance is cut off now.
                online: now.saturating_sub(i.last_heartbeat_unix) <= window && !token_expired,
                last_heartbeat: rfc3339(i.last_heartbeat_unix),
                content_matches: i.heartbeat.applied_digest.as_ref().map(|digest| {
                    Some(digest) == current.id.digest.as_ref()
                        && i.heartbeat.store_id == current.id.store_id
                }),
                heartbeat: i.heartbeat,
                token_expires_at,
                token_expired,
            }
        })
        .collect();
    let last_token_refusal = state.token_refusals.last(&status.gateway_id);
    Ok(Json(StatusView {
        gateway_id: status.gateway_id,
        store_id: current.id.store_id.clone().unwrap_or_default(),
        current_revision: current.revision,
        current_digest: current.id.digest.clone(),
        instances,
        last_token_refusal,
    })
    .into_response())
}
