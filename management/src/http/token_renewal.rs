//! `POST /gateways/{id}/token/renew` (a gateway trades its valid token for a fresh
//! one) and what the plane keeps about refused gateway tokens: a rate-limited log
//! line and the last refusal per gateway, for `GET /gateways/{id}/status`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;

use super::auth::require_gateway;
use super::clock::rfc3339;
use super::problem::Problem;
use super::Shared;
use crate::store::Heartbeat;

/// Keys a gateway had before regeneration, remembered (in memory) per gateway.
const MAX_RETIRED_KEYS: usize = 4;
/// The detail of a refusal of a token signed with a regenerated key.
pub const KEY_REGENERATED: &str =
    "the gateway token was signed with a key since regenerated: give the gateway a new token";

/// At most one log line per gateway this often; the others are counted.
pub const REFUSAL_LOG_EVERY_SECS: u64 = 60;
/// Gateways whose refusals are remembered at once (the id is the request's, so
/// anyone can make up ids: the oldest are forgotten first).
const MAX_TRACKED: usize = 1024;

/// `POST /gateways/{id}/token/renew`.
pub fn routes() -> Router<Shared> {
    Router::new().route("/gateways/{id}/token/renew", post(renew))
}

/// Response of `POST /gateways/{id}/token/renew`, as of `POST /gateways/{id}/token`.
#[derive(Debug, Serialize)]
struct TokenResponse {
    value: String,
    expiry: String,
}

async fn renew(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require_gateway(&state, &headers, &id).await?;
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let now = state.now_unix();
    let gateway = id.clone();
    let token = state
        .read(move |s| s.renew_gateway_token(&value, &gateway, now))
        .await?;
    tracing::info!(gateway_id = %id, expiry = token.expiry_unix, "renewed a gateway token");
    Ok(Json(TokenResponse {
        value: token.value,
        expiry: rfc3339(token.expiry_unix),
    })
    .into_response())
}

/// Why a gateway token was refused, as an operator reads it.
pub fn refusal_reason(status: u16, detail: &str) -> &'static str {
    let detail = detail.to_ascii_lowercase();
    if status == 404 {
        "unknown gateway"
    } else if detail.contains("send a gateway token") {
        "no token"
    } else if detail.contains("expired") {
        "expired"
    } else if detail.contains("since regenerated") {
        "key regenerated"
    } else if detail.contains("signature") {
        "bad signature"
    } else if detail.contains("another gateway") {
        "token for another gateway"
    } else {
        "malformed token"
    }
}

#[derive(Debug, Clone)]
struct Entry {
    reason: &'static str,
    detail: String,
    at_unix: u64,
    count: u64,
    logged_unix: Option<u64>,
    suppressed: u64,
}

/// The last refusal of a gateway's token, in its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusalView {
    /// `expired`, `bad signature`, `key regenerated`, `unknown gateway`, `token for another
    /// gateway`, `no token` or `malformed token`.
    pub reason: &'static str,
    /// The refusal's detail.
    pub detail: String,
    /// When, RFC 3339.
    pub at: String,
    /// Refusals since the management plane started.
    pub count: u64,
}

/// Refused gateway tokens, per gateway id.
#[derive(Debug, Default)]
pub struct RefusalLog {
    entries: Mutex<HashMap<String, Entry>>,
    /// Keys replaced by `regenerate-key` since the plane started, per gateway,
    /// to tell a token signed with one from a forgery.
    retired: Mutex<HashMap<String, Vec<String>>>,
}

impl RefusalLog {
    /// Remembers a key of `gateway_id` that was just regenerated.
    pub fn retire_key(&self, gateway_id: &str, key: String) {
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        let keys = retired.entry(gateway_id.to_owned()).or_default();
        keys.push(key);
        if keys.len() > MAX_RETIRED_KEYS {
            keys.remove(0);
        }
    }

    /// Whether `token` (an `Authorization` value) was signed with a retired key
    /// of `gateway_id`, whatever its expiry.
    pub fn signed_with_retired_key(&self, gateway_id: &str, token: &str) -> bool {
        let Ok(parsed) = portcullis_core::sync::token::parse(token) else {
            return false;
        };
        let retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(keys) = retired.get(gateway_id) else {
            return false;
        };
        let keys: Vec<&[u8]> = keys.iter().map(String::as_bytes).collect();
        // Expiry 0 as "now": only the signature is in question here.
        parsed.gateway_id == gateway_id && parsed.verify(&keys, 0).is_ok()
    }

    /// Records a refusal (status and detail of the problem) of a token sent
    /// for `gateway_id`, and logs it unless one was logged for that gateway in the
    /// last [`REFUSAL_LOG_EVERY_SECS`]; the next line says how many were not.
    pub fn record(&self, gateway_id: &str, status: u16, detail: &str, now_unix: u64) {
        let reason = refusal_reason(status, detail);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if !entries.contains_key(gateway_id) && entries.len() >= MAX_TRACKED {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.at_unix)
                .map(|(id, _)| id.clone());
            if let Some(id) = oldest {
                entries.remove(&id);
            }
        }
        let entry = entries
            .entry(gateway_id.to_owned())
            .or_insert_with(|| Entry {
                reason,
                detail: String::new(),
                at_unix: now_unix,
                count: 0,
                logged_unix: None,
                suppressed: 0,
            });
        entry.reason = reason;
        entry.detail = detail.chars().take(300).collect();
        entry.at_unix = now_unix;
        entry.count += 1;
        let due = entry
            .logged_unix
            .is_none_or(|at| now_unix >= at.saturating_add(REFUSAL_LOG_EVERY_SECS));
        if due {
            tracing::warn!(
                gateway_id = %gateway_id,
                reason,
                detail = %entry.detail,
                suppressed = entry.suppressed,
                "refused a gateway token ({reason}); {} more refusal(s) of this gateway's \
                 tokens were not logged in the last minute",
                entry.suppressed
            );
            entry.logged_unix = Some(now_unix);
            entry.suppressed = 0;
        } else {
            entry.suppressed += 1;
        }
    }

    /// The last refusal of `gateway_id`'s token, if any.
    pub fn last(&self, gateway_id: &str) -> Option<RefusalView> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(gateway_id).map(|e| RefusalView {
            reason: e.reason,
            detail: e.detail.clone(),
            at: rfc3339(e.at_unix),
            count: e.count,
        })
    }

    /// Refusals of `gateway_id`'s token not logged yet (rate limit).
    #[cfg(test)]
    fn suppressed(&self, gateway_id: &str) -> u64 {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(gateway_id).map_or(0, |e| e.suppressed)
    }
}

/// What an instance's status says about its token: its expiry (RFC 3339) and
/// whether it has expired. An instance whose token has expired can no longer
/// reach the plane, so its last heartbeat's `healthy` / `connected` would be
/// stale: it is shown `degraded` and `disconnected` instead.
pub fn token_state(heartbeat: &mut Heartbeat, now_unix: u64) -> (Option<String>, bool) {
    let Some(expiry) = heartbeat.token_expiry else {
        return (None, false);
    };
    let expired = expiry <= now_unix;
    if expired {
        heartbeat.connectivity = "disconnected".to_owned();
        if heartbeat.health == "healthy" {
            heartbeat.health = "degraded".to_owned();
        }
    }
    (Some(rfc3339(expiry)), expired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_at_most_once_a_minute_per_gateway() {
        let log = RefusalLog::default();
        log.record("gw1", 401, "gateway token expired", 1000);
        assert_eq!(log.suppressed("gw1"), 0);
        log.record("gw1", 401, "gateway token expired", 1010);
        log.record("gw1", 401, "gateway token signature does not match", 1059);
        assert_eq!(log.suppressed("gw1"), 2);
        // Another gateway has its own allowance.
        log.record("gw2", 404, "gateway `gw2` not found", 1020);
        assert_eq!(log.suppressed("gw2"), 0);
        log.record("gw1", 401, "gateway token expired", 1060);
        assert_eq!(log.suppressed("gw1"), 0);
        let last = log.last("gw1").unwrap();
        assert_eq!((last.reason, last.count), ("expired", 4));
        assert_eq!(log.last("gw2").unwrap().reason, "unknown gateway");
        assert_eq!(log.last("gw3"), None);
    }

    #[test]
    fn reasons_are_named() {
        for (status, detail, reason) in [
            (401, "gateway token expired", "expired"),
            (
                401,
                "gateway token signature does not match the gateway's keys",
                "bad signature",
            ),
            (401, KEY_REGENERATED, "key regenerated"),
            (
                401,
                "the gateway token is for another gateway",
                "token for another gateway",
            ),
            (404, "gateway `x` not found", "unknown gateway"),
            (401, "send a gateway token as …", "no token"),
            (
                401,
                "malformed gateway token: unknown scheme",
                "malformed token",
            ),
        ] {
            assert_eq!(refusal_reason(status, detail), reason, "{detail}");
        }
    }

    #[test]
    fn tokens_signed_with_a_regenerated_key_are_told_apart() {
        use portcullis_core::sync::token::sign;
        let log = RefusalLog::default();
        let old = sign("gw1", 1, b"old-key");
        assert!(!log.signed_with_retired_key("gw1", &old));
        log.retire_key("gw1", "old-key".to_owned());
        assert!(log.signed_with_retired_key("gw1", &old));
        assert!(!log.signed_with_retired_key("gw1", &sign("gw1", 1, b"forged")));
        assert!(!log.signed_with_retired_key("gw2", &sign("gw2", 1, b"old-key")));
        for i in 0..MAX_RETIRED_KEYS {
            log.retire_key("gw1", format!("k{i}"));
        }
        assert!(
            !log.signed_with_retired_key("gw1", &old),
            "only the last few are kept"
        );
    }

    #[test]
    fn the_tracked_gateways_are_bounded() {
        let log = RefusalLog::default();
        for i in 0..(MAX_TRACKED as u64 + 10) {
            log.record(&format!("gw{i}"), 404, "not found", i);
        }
        assert_eq!(log.entries.lock().unwrap().len(), MAX_TRACKED);
        assert!(log.last("gw0").is_none(), "the oldest is forgotten");
        assert!(log.last(&format!("gw{}", MAX_TRACKED + 9)).is_some());
    }
}
