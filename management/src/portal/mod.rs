//! The developer portal at `/portal`: server-rendered HTML pages where API
//! consumers sign up, browse and search APIs and products, read operations,
//! subscribe, manage their keys and try operations through a gateway.
//!
//! Every page but sign-in, sign-up and the assets needs a portal session; every
//! form carries a CSRF token. Pages work without JavaScript; the one script only
//! adds "copy" buttons. Assets are embedded in the binary.

mod account;
mod api_page;
mod catalog;
mod csrf;
mod form;
mod forward;
mod layout;
mod next;
mod password;
mod profile;
mod search;
mod session;
mod subscriptions;
mod try_it;
mod try_request;
mod versions;

use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::http::Shared;
use crate::web::{assets, headers};

/// The stylesheet.
const CSS: &[u8] = include_bytes!("../../assets/portal/portal.css");

/// The progressive-enhancement script (copy buttons).
const JS: &[u8] = include_bytes!("../../assets/portal/portal.js");

/// Every `/portal` route, with the page security headers.
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/portal", get(catalog::home))
        .route("/portal/", get(|| async { session::see_other("/portal") }))
        .route(
            "/portal/signin",
            get(account::signin_form).post(account::signin),
        )
        .route(
            "/portal/signup",
            get(account::signup_form).post(account::signup),
        )
        .route("/portal/signout", post(account::signout))
        .route("/portal/account", get(profile::show))
        .route("/portal/account/password", post(profile::change_password))
        .route("/portal/products", get(catalog::products))
        .route("/portal/products/{id}", get(catalog::product))
        .route(
            "/portal/products/{id}/subscribe",
            post(subscriptions::subscribe),
        )
        .route("/portal/subscriptions", get(subscriptions::list))
        .route(
            "/portal/subscriptions/{id}/regenerate",
            post(subscriptions::regenerate),
        )
        .route(
            "/portal/subscriptions/{id}/cancel",
            post(subscriptions::cancel),
        )
        .route("/portal/apis/{id}", get(api_page::show))
        .route(
            "/portal/apis/{api}/operations/{op}/try",
            get(try_it::page_get).post(try_it::send),
        )
        .route(
            "/portal/assets/portal.css",
            get(|| async { assets::asset(CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/portal/assets/portal.js",
            get(|| async { assets::asset(JS, "text/javascript; charset=utf-8") }),
        )
        .route("/portal/{*rest}", get(unknown).post(unknown))
        .layer(middleware::from_fn(headers::page_headers))
}

/// Any other `/portal` path: an HTML 404 (no session needed to learn that nothing is there).
async fn unknown() -> Response {
    let page = layout::error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no portal page at this address.",
        layout::Viewer::Anonymous,
    );
    page.into_response()
}
