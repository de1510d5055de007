//! Authentication: the admin bearer token or the admin console's session for the
//! REST API, gateway tokens for sync.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use super::Shared;
use crate::admin_ui::session;
use crate::web;

/// The header a console request carries its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How a request to the admin API says who it is.
#[derive(Debug, PartialEq, Eq)]
enum Credential {
    /// `Authorization: Bearer <token>`: scripts (checked first: a script never has
    /// the console's cookie, and a cross-site page cannot set this header).
    Bearer(String),
    /// The console's session cookie, and the CSRF token the request carries.
    Session { id: String, csrf: Option<String> },
    /// Neither.
    Missing,
}

/// The credential of a request.
fn credential(headers: &HeaderMap) -> Credential {
    if let Some(token) = bearer_token(headers) {
        return Credential::Bearer(token);
    }
    match session::cookie_id(headers) {
        Some(id) => Credential::Session {
            id,
            csrf: headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        },
        None => Credential::Missing,
    }
}

/// Whether a method changes nothing, so a cookie alone may authenticate it.
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether a session-authenticated request may go on: safe methods always, others
/// only with the session's CSRF token.
fn session_allows(method: &Method, session_csrf: &str, given: Option<&str>) -> bool {
    is_safe(method) || given.is_some_and(|g| web::csrf::matches(session_csrf, g))
}

/// Lets a request through with `Authorization: Bearer <admin token>`, or with a
/// live admin console session (plus its `X-CSRF-Token` on unsafe methods: 403
/// without). A portal session never passes.
pub async fn require_admin(State(state): State<Shared>, req: Request, next: Next) -> Response {
    match credential(req.headers()) {
        Credential::Bearer(token) => {
            match state.read(move |s| Ok(s.check_admin_token(&token))).await {
                Ok(true) => next.run(req).await,
                Ok(false) => Problem::unauthorized_admin("the bearer token is not an admin token")
                    .into_response(),
                Err(problem) => problem.into_response(),
            }
        }
        Credential::Session { id, csrf } => match session::lookup(&state, id).await {
            Ok(Some(current)) if session_allows(req.method(), &current.csrf, csrf.as_deref()) => {
                next.run(req).await
            }
            Ok(Some(_)) => session::csrf_refused().into_response(),
            Ok(None) => Problem::unauthorized_admin(
                "the admin console session has ended; sign in again at /admin/login",
            )
            .into_response(),
            Err(problem) => problem.into_response(),
        },
        Credential::Missing => {
            Problem::unauthorized_admin("send the admin token as `Authorization: Bearer <token>`")
                .into_response()
        }
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
    let now = state.now_unix();
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let refused = |mut problem: Problem| {
        let status = problem.status.as_u16();
        if status == 401
            && problem.detail.contains("signature")
            && state
                .token_refusals
                .signed_with_retired_key(gateway_id, presented)
        {
            problem = Problem::unauthorized_gateway(super::token_renewal::KEY_REGENERATED);
        }
        if status == 401 || status == 404 {
            state
                .token_refusals
                .record(gateway_id, status, &problem.detail, now);
        }
        problem
    };
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(refused(Problem::unauthorized_gateway(
            "send a gateway token as `Authorization: GatewayKey <id>&<expiry>&<signature>`",
        )));
    };
    let value = value.to_owned();
    let id = gateway_id.to_owned();
    state
        .read(move |s| s.verify_gateway_token(&value, &id, now))
        .await
        .map_err(|problem| match problem.status.as_u16() {
            401 | 404 => problem,
            // Anything else the store says about a token is still a refusal.
            _ if problem.status.is_client_error() => Problem::unauthorized_gateway(problem.detail),
            _ => problem,
        })
        .map_err(refused)
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

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn the_bearer_token_wins_over_a_cookie() {
        let h = headers(&[
            ("authorization", "Bearer abc"),
            ("cookie", "portcullis_admin=s1"),
        ]);
        assert_eq!(credential(&h), Credential::Bearer("abc".into()));
    }

    #[test]
    fn the_admin_cookie_is_a_session_credential_and_no_other_is() {
        let h = headers(&[
            ("cookie", "other=1; portcullis_admin=s1"),
            ("x-csrf-token", "t1"),
        ]);
        assert_eq!(
            credential(&h),
            Credential::Session {
                id: "s1".into(),
                csrf: Some("t1".into())
            }
        );
        let portal = headers(&[("cookie", "portcullis_portal=s2")]);
        assert_eq!(credential(&portal), Credential::Missing);
        assert_eq!(credential(&HeaderMap::new()), Credential::Missing);
    }

    #[test]
    fn unsafe_methods_need_the_session_csrf_token() {
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(session_allows(&method, "t1", None), "{method}");
        }
        for method in [Method::PUT, Method::POST, Method::DELETE, Method::PATCH] {
            assert!(!session_allows(&method, "t1", None), "{method} without");
            assert!(!session_allows(&method, "t1", Some("t2")), "{method} wrong");
            assert!(!session_allows(&method, "t1", Some("")), "{method} empty");
            assert!(session_allows(&method, "t1", Some("t1")), "{method} right");
        }
    }
}
