//! `GET /admin` and its screens: the app's shell for a signed-in admin, else a
//! redirect to the sign-in form.

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{page, session};
use crate::http::{Problem, Shared};

/// The shell (every screen is the same page: the app routes on the path).
pub(super) async fn serve(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    match session::of_request(&state, &headers).await? {
        Some((_, s)) => Ok(page::html(StatusCode::OK, page::shell(&s.csrf))),
        None => Ok(to_login()),
    }
}

/// 303 to the sign-in form.
pub(super) fn to_login() -> Response {
    see_other("/admin/login")
}

/// 303 to `location` (a constant path).
pub(super) fn see_other(location: &'static str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static(location));
    response
}
