//! Authentication: the admin bearer token for the REST API, gateway tokens for sync.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use super::Shared;

/// Lets a request through only with `Authorization: Bearer <admin token>`.
pub async fn require_admin(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let Some(token) = bearer_token(req.headers()) else {
        return Problem::unauthorized_admin(
            "send the admin token as `Authorization: Bearer <token>`",
        )
        .into_response();
    };
    match state.read(move |s| Ok(s.check_admin_token(&token))).await {
        Ok(true) => next.run(req).await,
        Ok(false) => {
            Problem::unauthorized_admin("the bearer token is not an admin token").into_response()
        }
        Err(problem) => problem.into_response(),
    }
}

/// Checks the gateway token of a request to a gateway endpoint for `gateway_id`:
/// 401 for a missing, malformed, expired or forged token or one for another gateway,
/// 404 for an unknown gateway.
pub async fn require_gateway(
    state: &Shared,
    headers: &HeaderMap,
    gateway_id: &str,
) -> Result<(), Problem> {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(Problem::unauthorized_gateway(
            "send a gateway token as `Authorization: GatewayKey <id>&<expiry>&<signature>`",
        ));
    };
    let value = value.to_owned();
    let id = gateway_id.to_owned();
    let now = state.now_unix();
    state
        .read(move |s| s.verify_gateway_token(&value, &id, now))
        .await
        .map_err(|problem| match problem.status.as_u16() {
            401 | 404 => problem,
            // Anything else the store says about a token is still a refusal.
            _ if problem.status.is_client_error() => Problem::unauthorized_gateway(problem.detail),
            _ => problem,
        })
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer_token(&h).as_deref(), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer  abc "));
        assert_eq!(bearer_token(&h).as_deref(), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&h), None);
    }
}
