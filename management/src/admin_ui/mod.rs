//! The admin console at `/admin`: a sign-in form for the admin token, and a
//! single-page app (embedded assets) that works on the same REST API as scripts,
//! authenticated by the session cookie this module sets.

mod assets;
mod login;
mod page;
pub(crate) mod session;
mod shell;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

use crate::http::Shared;
use crate::web;

/// `/admin`, `/admin/*` (the app's screens), `/admin/login`, `/admin/logout` and
/// `/admin/assets/*`.
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/admin", get(shell::serve))
        .route("/admin/", get(shell::serve))
        .route("/admin/{*screen}", get(shell::serve))
        .route("/admin/login", get(login::form).post(login::submit))
        .route("/admin/logout", post(login::logout))
        .route("/admin/assets/{*file}", get(assets::serve))
        .layer(middleware::from_fn(web::headers::page_headers))
}
