//! The signed-in user's account page: who they are, and a password change that
//! ends every other session of theirs.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::csrf;
use super::form::Form;
use super::layout::{csrf_failed, page, problem_page, respond, Section};
use super::password;
use super::session::{see_other, SignedIn, COOKIE, COOKIE_PATH, TTL_SECS};
use crate::http::{Problem, Shared};
use crate::store::Realm;
use crate::web::cookie;

/// The query of `GET /portal/account`.
#[derive(Debug, Default, Deserialize)]
pub struct AccountQuery {
    changed: Option<String>,
}

/// GET /portal/account
pub async fn show(signed: SignedIn, Query(query): Query<AccountQuery>) -> Response {
    let notice = query
        .changed
        .is_some()
        .then_some("Your password is changed. Your other sessions are signed out.");
    respond(StatusCode::OK, account_page(&signed, notice, None))
}

/// POST /portal/account/password
pub async fn change_password(
    State(state): State<Shared>,
    headers: HeaderMap,
    signed: SignedIn,
    form: Form,
) -> Response {
    if !csrf::session_ok(&signed, &form) {
        return csrf_failed(signed.viewer());
    }
    let current = form.get("currentPassword").to_owned();
    let new = form.get("newPassword").to_owned();
    let again =
        |status: StatusCode, error: &str| respond(status, account_page(&signed, None, Some(error)));
    if let Some(message) = password::rule_broken(&new) {
        return again(StatusCode::BAD_REQUEST, &message);
    }
    let user_id = signed.user.id.clone();
    let stored = match state.read(move |s| s.portal_password_hash(&user_id)).await {
        Ok(stored) => stored,
        Err(p) => return problem_page(p, signed.viewer()),
    };
    // Users made through the REST API have no password: nothing to check against.
    let Some(stored) = stored else {
        return again(
            StatusCode::CONFLICT,
            "This account has no portal password; ask the API provider.",
        );
    };
    let checked = password::off_thread(move || {
        password::verify(&current, &stored).then(|| password::hash(&new))
    })
    .await;
    let hashed = match checked {
        Ok(Some(Ok(hash))) => hash,
        Ok(None) => return again(StatusCode::UNAUTHORIZED, "The current password is wrong."),
        Ok(Some(Err(e))) => return problem_page(Problem::internal(&e), signed.viewer()),
        Err(e) => return problem_page(Problem::internal(&e), signed.viewer()),
    };
    let user_id = signed.user.id.clone();
    let now = state.now_unix();
    // One write: the new hash, every session of the user ended, a fresh one for
    // this browser.
    let created = state
        .write(move |s| {
            s.portal_set_password(&user_id, &hashed)?;
            s.end_sessions_of(Realm::Portal, &user_id)?;
            s.create_session(Realm::Portal, &user_id, now, TTL_SECS)
        })
        .await;
    let fresh = match created {
        Ok(fresh) => fresh,
        Err(p) => return problem_page(p, signed.viewer()),
    };
    tracing::info!(user = %signed.user.id, "portal password changed");
    let mut response = see_other("/portal/account?changed=1");
    let secure = cookie::secure_for(&state, &headers);
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie::set(COOKIE, &fresh.id, COOKIE_PATH, TTL_SECS, secure),
    );
    response
}

fn account_page(signed: &SignedIn, notice: Option<&str>, error: Option<&str>) -> Markup {
    let user = &signed.user;
    let content = html! {
        @if let Some(notice) = notice {
            p.notice.ok role="status" { (notice) }
        }
        dl.facts {
            dt { "Name" } dd { (user.first_name) " " (user.last_name) }
            dt { "Email" } dd { (user.email) }
        }
        h2 { "Change your password" }
        @if let Some(error) = error {
            p.notice.error role="alert" #password-error { (error) }
        }
        form.stack method="post" action="/portal/account/password" {
            input type="hidden" name="csrf" value=(signed.csrf);
            // The browser's password manager pairs the new password with this account.
            input type="hidden" name="username" autocomplete="username" value=(user.email);
            div.field {
                label for="currentPassword" { "Current password" }
                input #currentPassword type="password" name="currentPassword"
                    autocomplete="current-password" required
                    aria-describedby=[error.map(|_| "password-error")];
            }
            div.field {
                label for="newPassword" { "New password" }
                input #newPassword type="password" name="newPassword" autocomplete="new-password"
                    required minlength=(password::MIN_LENGTH) aria-describedby="new-password-hint";
                p.hint #new-password-hint {
                    "At least " (password::MIN_LENGTH) " characters. Your other sessions will be signed out."
                }
            }
            button.primary type="submit" { "Change password" }
        }
    };
    page("Your account", signed.viewer(), Section::Account, content)
}
