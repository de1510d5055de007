//! Signing in with the admin token and out again.
//!
//! The sign-in form is anonymous, so its CSRF protection is a double-submit
//! cookie: a random token both in a cookie scoped to the form and in a hidden
//! field; a cross-site page can make a browser send the cookie but cannot read it
//! to fill in the field. Signing out is protected by the session's own token.

use std::time::Duration;

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;

use super::shell::{see_other, to_login};
use super::{page, session};
use crate::http::{Problem, Shared};
use crate::store::Realm;
use crate::web;

/// The sign-in form's double-submit cookie, sent to the form only; a form stays
/// usable for an hour.
const FORM: web::csrf::FormCookie = web::csrf::FormCookie {
    name: "portcullis_admin_login",
    path: "/admin/login",
    ttl_secs: 3600,
};

/// How long a refused sign-in waits before answering (slows guessing).
const REFUSAL_DELAY: Duration = Duration::from_millis(400);

/// The fields of the sign-in form.
#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

/// The fields of the sign-out form.
#[derive(Debug, Deserialize)]
pub(super) struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `GET /admin/login`: the form (or the console, when already signed in).
pub(super) async fn form(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    if session::of_request(&state, &headers).await?.is_some() {
        return Ok(see_other("/admin"));
    }
    fresh_form(&state, &headers, StatusCode::OK, None)
}

/// `POST /admin/login`: checks the form's CSRF pair and the token; on success a
/// new session and 303 to the console, else the form again with the reason.
pub(super) async fn submit(
    State(state): State<Shared>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, Problem> {
    let Ok(Form(form)) = form else {
        return fresh_form(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            Some("The form was not sent as a form. Sign in again."),
        );
    };
    if !FORM.matches(&headers, &form.csrf) {
        return fresh_form(
            &state,
            &headers,
            StatusCode::FORBIDDEN,
            Some("This form expired or did not come from this site. Sign in again."),
        );
    }
    let token = form.token;
    let accepted = state.read(move |s| Ok(s.check_admin_token(&token))).await?;
    if !accepted {
        tracing::warn!("admin console sign-in refused: wrong admin token");
        tokio::time::sleep(REFUSAL_DELAY).await;
        return fresh_form(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("That is not an admin token."),
        );
    }
    let now = state.now_unix();
    let created = state
        .write(move |s| s.create_session(Realm::Admin, session::SUBJECT, now, session::TTL_SECS))
        .await?;
    tracing::info!("admin console session started");
    let secure = web::cookie::secure_for(&state, &headers);
    let mut response = see_other("/admin");
    let cookies = response.headers_mut();
    cookies.append(
        SET_COOKIE,
        web::cookie::set(session::COOKIE, &created.id, "/", session::TTL_SECS, secure),
    );
    cookies.append(SET_COOKIE, FORM.clear(secure));
    Ok(response)
}

/// `POST /admin/logout`: ends the session (with the session's CSRF token in the
/// form) and clears its cookie.
pub(super) async fn logout(
    State(state): State<Shared>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Result<Response, Problem> {
    let Some((id, current)) = session::of_request(&state, &headers).await? else {
        return Ok(to_login());
    };
    let given = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !web::csrf::matches(&current.csrf, &given) {
        return Err(session::csrf_refused());
    }
    state.write(move |s| s.end_session(&id)).await?;
    tracing::info!("admin console session ended");
    let mut response = to_login();
    response.headers_mut().append(
        SET_COOKIE,
        web::cookie::clear(
            session::COOKIE,
            "/",
            web::cookie::secure_for(&state, &headers),
        ),
    );
    Ok(response)
}

/// The form with a new CSRF pair: the token in the page and in the form's cookie.
fn fresh_form(
    state: &Shared,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
) -> Result<Response, Problem> {
    let (csrf, set) = FORM.fresh(web::cookie::secure_for(state, headers))?;
    let mut response = page::html(status, page::login(&csrf, error));
    response.headers_mut().append(SET_COOKIE, set);
    Ok(response)
}
