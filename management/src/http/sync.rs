//! The endpoints gateways call with their token: configuration (with long-poll) and heartbeat.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::auth::require_gateway;
use super::body::{
    check_media_type_of, is_json, json_from_slice, read_limited, MAX_HEARTBEAT_BYTES,
};
use super::pagination::query_pairs;
use super::problem::Problem;
use super::Shared;
use crate::store::Heartbeat;

/// `GET /gateways/{id}/configuration` and `POST /gateways/{id}/heartbeat`.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/gateways/{id}/configuration", get(configuration))
        .route("/gateways/{id}/heartbeat", post(heartbeat))
}

async fn configuration(
    State(state): State<Shared>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require_gateway(&state, &headers, &id).await?;
    let wait = wait_param(query.as_deref(), state.max_wait)?;
    let known = if_none_match_tags(&headers);
    let config = {
        let id = id.clone();
        state.read(move |s| s.gateway_config(&id)).await?
    };
    // Only the exact content (revision and digest) is "not modified": a gateway
    // holding the same revision of other content (a restored store) gets it all.
    let config = if known.contains(&config.etag()) && !wait.is_zero() {
        if wait_for_change(&state, config.revision, wait).await {
            return Ok(shutting_down());
        }
        state.read(move |s| s.gateway_config(&id)).await?
    } else {
        config
    };
    let mut response = if known.contains(&config.etag()) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(Body::from(config.json.clone()));
        super::signing_key::sign(&state, response.headers_mut(), &config.json);
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    };
    let headers = response.headers_mut();
    // Hex digits, digits, a dash and quotes: always a valid header value.
    if let Ok(etag) = HeaderValue::from_str(&config.etag()) {
        headers.insert(ETAG, etag);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `?wait=SECONDS`, capped at `max`; absent means no wait.
fn wait_param(query: Option<&str>, max: Duration) -> Result<Duration, Problem> {
    let mut wait = Duration::ZERO;
    for (name, value) in query_pairs(query) {
        if name == "wait" {
            let secs: u64 = value.parse().map_err(|_| {
                Problem::invalid(format!(
                    "`wait` must be a whole number of seconds, not `{value}`"
                ))
            })?;
            wait = Duration::from_secs(secs);
        }
    }
    Ok(wait.min(max))
}

/// The entity tags an `If-None-Match` header names, quotes included, weak
/// prefixes dropped.
fn if_none_match_tags(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/").to_owned())
        .filter(|tag| !tag.is_empty())
        .collect()
}

/// Waits until the revision is not `current`, `wait` passes, or shutdown begins;
/// returns whether it was shutdown.
async fn wait_for_change(state: &Shared, current: u64, wait: Duration) -> bool {
    let mut revisions = state.subscribe();
    let mut shutdown = state.shutdown.clone();
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        if *shutdown.borrow_and_update() {
            return true;
        }
        if *revisions.borrow_and_update() != current {
            return false;
        }
        tokio::select! {
            changed = revisions.changed() => if changed.is_err() { return true },
            changed = shutdown.changed() => if changed.is_err() { return true },
            () = &mut deadline => return false,
        }
    }
}

/// A long poll ended by shutdown: 503 with `Retry-After: 0` (graceful shutdown
/// closes the connection after it), not a 304 a gateway would take for a server that ignores `wait` (and
/// fall back to plain polling); it reconnects and long polls again.
fn shutting_down() -> Response {
    let mut response = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting-down",
        "Shutting down",
        "the management plane is shutting down; long poll again once it is back",
    )
    .into_response();
    let headers = response.headers_mut();
    headers.insert(RETRY_AFTER, HeaderValue::from_static("0"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The body is taken raw (not by an extractor, which would read it before the
/// handler runs): the token is checked first, and an oversized body is refused
/// before it is read.
async fn heartbeat(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, Problem> {
    require_gateway(&state, &headers, &id).await?;
    check_media_type_of(&headers, "a JSON heartbeat", is_json)?;
    let body = read_limited(&headers, body, MAX_HEARTBEAT_BYTES).await?;
    let beat: Heartbeat = json_from_slice(&body)?;
    if beat.instance_id.is_empty() {
        return Err(Problem::invalid("instanceId must not be empty"));
    }
    // A heartbeat changes no configuration (the revision stays), but the store
    // records it with `&mut`.
    let now = state.now_unix();
    state
        .write(move |s| s.record_heartbeat(&id, &beat, now))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_is_capped_and_checked() {
        let max = Duration::from_secs(60);
        assert_eq!(wait_param(None, max).expect("ok"), Duration::ZERO);
        assert_eq!(
            wait_param(Some("wait=5"), max).expect("ok"),
            Duration::from_secs(5)
        );
        assert_eq!(wait_param(Some("wait=600"), max).expect("ok"), max);
        assert!(wait_param(Some("wait=soon"), max).is_err());
    }

    #[test]
    fn if_none_match_tags_keep_the_whole_tag() {
        let mut h = HeaderMap::new();
        h.insert(
            IF_NONE_MATCH,
            HeaderValue::from_static("\"3-ab\", W/\"4-cd\""),
        );
        assert_eq!(if_none_match_tags(&h), ["\"3-ab\"", "\"4-cd\""]);
        assert!(if_none_match_tags(&HeaderMap::new()).is_empty());
    }
}
