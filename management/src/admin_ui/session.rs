//! The admin console's session: its cookie, lifetime, and lookup.

use axum::http::{HeaderMap, StatusCode};

use crate::http::{Problem, Shared};
use crate::store::{Realm, Session};
use crate::web;

/// The session cookie (Path=/: the console calls the REST API with it).
pub(crate) const COOKIE: &str = "portcullis_admin";

/// How long a console session lasts: a working day.
pub(crate) const TTL_SECS: u64 = 8 * 3600;

/// The subject every admin session is for (there is one admin identity: the token).
pub(crate) const SUBJECT: &str = "admin";

/// The session id the request's admin cookie carries, if any.
pub(crate) fn cookie_id(headers: &HeaderMap) -> Option<String> {
    web::cookie::read(headers, COOKIE).filter(|id| !id.is_empty())
}

/// The live admin session `id` names (never a portal session), or `None`.
pub(crate) async fn lookup(state: &Shared, id: String) -> Result<Option<Session>, Problem> {
    let now = state.now_unix();
    state.read(move |s| s.session(Realm::Admin, &id, now)).await
}

/// The live admin session of a request, with its id.
pub(crate) async fn of_request(
    state: &Shared,
    headers: &HeaderMap,
) -> Result<Option<(String, Session)>, Problem> {
    let Some(id) = cookie_id(headers) else {
        return Ok(None);
    };
    Ok(lookup(state, id.clone()).await?.map(|s| (id, s)))
}

/// 403 for a session's unsafe request without its CSRF token.
pub(crate) fn csrf_refused() -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "csrf-token-mismatch",
        "CSRF token missing or wrong",
        "a request authenticated by the admin console's session cookie that changes something must carry the session's token in the X-CSRF-Token header",
    )
}
