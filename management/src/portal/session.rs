//! The portal session: its cookie, and the extractor that turns a request into
//! the signed-in user or a redirect to the sign-in page.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::layout::{problem_page, Viewer};
use super::next;
use crate::http::Shared;
use crate::store::{PortalUser, Realm};
use crate::web::cookie;

/// The session cookie's name.
pub const COOKIE: &str = "portcullis_portal";

/// The path every portal cookie is scoped to.
pub const COOKIE_PATH: &str = "/portal";

/// How long a portal session lasts: 8 hours.
pub const TTL_SECS: u64 = 8 * 3600;

/// A request from a signed-in, not blocked, user.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The user.
    pub user: PortalUser,
    /// The session's CSRF token, for the forms of the pages it sees.
    pub csrf: String,
}

impl SignedIn {
    /// The viewer for page layouts.
    pub fn viewer(&self) -> Viewer<'_> {
        Viewer::User(&self.user, &self.csrf)
    }
}

impl FromRequestParts<Shared> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Response> {
        // After signing in, a GET comes back where it was; a form post cannot be
        // replayed, so it goes home.
        let target = if parts.method == Method::GET || parts.method == Method::HEAD {
            parts
                .uri
                .path_and_query()
                .map_or(next::HOME, |p| p.as_str())
                .to_owned()
        } else {
            next::HOME.to_owned()
        };
        let Some(id) = cookie::read(&parts.headers, COOKIE) else {
            return Err(to_signin(&target));
        };
        let now = state.now_unix();
        let found = state
            .read(move |s| {
                let Some(session) = s.session(Realm::Portal, &id, now)? else {
                    return Ok(None);
                };
                let user = s.portal_user(&session.subject)?;
                Ok(user.map(|u| (u, session.csrf)))
            })
            .await
            .map_err(|p| problem_page(p, Viewer::Anonymous))?;
        match found {
            Some((user, csrf)) if !user.blocked => Ok(SignedIn { user, csrf }),
            _ => Err(to_signin(&target)),
        }
    }
}

/// 303 to the sign-in page, coming back to `target` afterwards.
pub fn to_signin(target: &str) -> Response {
    see_other(&next::signin_url(target))
}

/// 303 See Other to `location` (a path of this site).
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The session cookie id a request carries, if any.
pub fn cookie_id(headers: &HeaderMap) -> Option<String> {
    cookie::read(headers, COOKIE)
}
