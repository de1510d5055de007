//! Sign-up, sign-in and sign-out.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::csrf;
use super::form::Form;
use super::layout::{csrf_failed, page, problem_page, respond, Section, Viewer};
use super::next;
use super::password;
use super::session::{self, see_other, SignedIn, COOKIE, COOKIE_PATH, TTL_SECS};
use crate::http::{Problem, Shared};
use crate::store::{NewPortalUser, PortalUser, Realm, StoreError};
use crate::web::cookie;

/// The longest name or email accepted, in characters.
const MAX_FIELD: usize = 254;

/// `?next=` on the sign-in page.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// GET /portal/signin
pub async fn signin_form(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Response {
    let next = next::sanitize(query.next.as_deref()).to_owned();
    anonymous_page(&state, &headers, StatusCode::OK, |token| {
        signin_page(token, &next, "", None)
    })
}

/// POST /portal/signin
pub async fn signin(State(state): State<Shared>, headers: HeaderMap, form: Form) -> Response {
    if !csrf::anonymous_ok(&headers, &form) {
        return csrf_failed(Viewer::Anonymous);
    }
    let email = form.get("email").trim().to_lowercase();
    let given = form.get("password").to_owned();
    let next = next::sanitize(form.opt("next")).to_owned();
    let again = |status: StatusCode, message: &str| {
        anonymous_page(&state, &headers, status, |token| {
            signin_page(token, &next, &email, Some(message))
        })
    };
    let now = state.now_unix();
    if let Some(wait) = state.sign_in_throttle.locked_for(&email, now) {
        return locked(again, wait);
    }
    let lookup = email.clone();
    let found = match state.read(move |s| s.portal_credentials(&lookup)).await {
        Ok(found) => found,
        Err(p) => return problem_page(p, Viewer::Anonymous),
    };
    let checked = password::off_thread(move || match found {
        Some((user, hash)) => password::verify(&given, &hash).then_some(user),
        None => {
            password::verify_nothing(&given);
            None
        }
    })
    .await;
    match checked {
        Err(e) => problem_page(Problem::internal(&e), Viewer::Anonymous),
        Ok(None) => match state.sign_in_throttle.failed(&email, now) {
            Some(wait) => locked(again, wait),
            None => again(StatusCode::UNAUTHORIZED, "The email or password is wrong."),
        },
        Ok(Some(user)) if user.blocked => again(
            StatusCode::FORBIDDEN,
            "This account is blocked. Contact the API provider to have it unblocked.",
        ),
        Ok(Some(user)) => {
            state.sign_in_throttle.succeeded(&email);
            start_session(&state, &headers, &user, &next).await
        }
    }
}

/// The sign-in form again, saying sign-in is paused for `wait` seconds (429).
fn locked(again: impl Fn(StatusCode, &str) -> Response, wait: u64) -> Response {
    let minutes = wait.div_ceil(60).max(1);
    again(
        StatusCode::TOO_MANY_REQUESTS,
        &format!(
            "Too many failed sign-ins for this email. Try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        ),
    )
}

/// GET /portal/signup
pub async fn signup_form(State(state): State<Shared>, headers: HeaderMap) -> Response {
    anonymous_page(&state, &headers, StatusCode::OK, |token| {
        signup_page(token, &SignUp::default(), &[])
    })
}

/// What the sign-up form holds, the password aside.
#[derive(Debug, Clone, Default)]
struct SignUp {
    email: String,
    first_name: String,
    last_name: String,
}

/// A form field and what is wrong with it.
type FieldError = (&'static str, String);

/// POST /portal/signup
pub async fn signup(State(state): State<Shared>, headers: HeaderMap, form: Form) -> Response {
    if !csrf::anonymous_ok(&headers, &form) {
        return csrf_failed(Viewer::Anonymous);
    }
    let entered = SignUp {
        email: form.get("email").trim().to_owned(),
        first_name: form.get("firstName").trim().to_owned(),
        last_name: form.get("lastName").trim().to_owned(),
    };
    let given = form.get("password").to_owned();
    let errors = check_sign_up(&entered, &given);
    let again = |status: StatusCode, errors: &[FieldError]| {
        anonymous_page(&state, &headers, status, |token| {
            signup_page(token, &entered, errors)
        })
    };
    if !errors.is_empty() {
        return again(StatusCode::BAD_REQUEST, &errors);
    }
    let hashed = match password::off_thread(move || password::hash(&given)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return problem_page(Problem::internal(&e), Viewer::Anonymous),
        Err(e) => return problem_page(Problem::internal(&e), Viewer::Anonymous),
    };
    let new = NewPortalUser {
        email: entered.email.to_lowercase(),
        first_name: entered.first_name.clone(),
        last_name: entered.last_name.clone(),
        password_hash: hashed,
    };
    let now = state.now_unix();
    let created = state
        .write(move |s| match s.portal_sign_up(new, now) {
            Err(StoreError::Conflict(_)) => Ok(None),
            other => other.map(Some),
        })
        .await;
    match created {
        Ok(Some(user)) => {
            tracing::info!(user = %user.id, "portal sign-up");
            start_session(&state, &headers, &user, next::HOME).await
        }
        Ok(None) => again(
            StatusCode::CONFLICT,
            &[(
                "email",
                "An account with this email already exists. Sign in instead, or use another email."
                    .to_owned(),
            )],
        ),
        Err(p) if p.status == StatusCode::BAD_REQUEST => {
            again(StatusCode::BAD_REQUEST, &[("email", p.detail)])
        }
        Err(p) => problem_page(p, Viewer::Anonymous),
    }
}

/// POST /portal/signout
pub async fn signout(
    State(state): State<Shared>,
    headers: HeaderMap,
    signed: SignedIn,
    form: Form,
) -> Response {
    if !csrf::session_ok(&signed, &form) {
        return csrf_failed(signed.viewer());
    }
    if let Some(id) = session::cookie_id(&headers) {
        if let Err(p) = state.write(move |s| s.end_session(&id)).await {
            return problem_page(p, signed.viewer());
        }
    }
    let mut response = see_other("/portal/signin");
    let secure = cookie::secure_for(&state, &headers);
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie::clear(COOKIE, COOKIE_PATH, secure),
    );
    response
}

/// Ends the request's old session if any (so a planted cookie never becomes a
/// signed-in one), starts a new one for `user` and goes to `next`.
async fn start_session(
    state: &Shared,
    headers: &HeaderMap,
    user: &PortalUser,
    next: &str,
) -> Response {
    let old = session::cookie_id(headers);
    let subject = user.id.clone();
    let now = state.now_unix();
    let created = state
        .write(move |s| {
            if let Some(old) = old {
                s.end_session(&old)?;
            }
            s.create_session(Realm::Portal, &subject, now, TTL_SECS)
        })
        .await;
    let session = match created {
        Ok(s) => s,
        Err(p) => return problem_page(p, Viewer::Anonymous),
    };
    let secure = cookie::secure_for(state, headers);
    let mut response = see_other(next);
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie::set(COOKIE, &session.id, COOKIE_PATH, TTL_SECS, secure),
    );
    response
}

/// An anonymous form page with its double-submit token (and the cookie, if new).
fn anonymous_page(
    state: &Shared,
    headers: &HeaderMap,
    status: StatusCode,
    render: impl FnOnce(&str) -> Markup,
) -> Response {
    let secure = cookie::secure_for(state, headers);
    let (token, set) = match csrf::anonymous_token(headers, secure) {
        Ok(t) => t,
        Err(e) => return problem_page(Problem::from(e), Viewer::Anonymous),
    };
    let mut response = respond(status, render(&token));
    if let Some(set) = set {
        response.headers_mut().append(header::SET_COOKIE, set);
    }
    response
}

/// What is wrong with a sign-up, field by field.
fn check_sign_up(entered: &SignUp, password: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let email = &entered.email;
    let at = email.find('@');
    let email_ok = email.chars().count() <= MAX_FIELD
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && at.is_some_and(|i| i > 0 && i + 1 < email.len() && email.matches('@').count() == 1);
    if !email_ok {
        errors.push((
            "email",
            "Enter an email address such as name@example.com.".to_owned(),
        ));
    }
    for (field, value, label) in [
        ("firstName", &entered.first_name, "first name"),
        ("lastName", &entered.last_name, "last name"),
    ] {
        if value.is_empty() {
            errors.push((field, format!("Enter your {label}.")));
        } else if value.chars().count() > MAX_FIELD || value.chars().any(char::is_control) {
            errors.push((
                field,
                format!("Enter a {label} of at most {MAX_FIELD} characters."),
            ));
        }
    }
    if let Some(message) = password::rule_broken(password) {
        errors.push(("password", message));
    }
    errors
}

fn signin_page(token: &str, next: &str, email: &str, error: Option<&str>) -> Markup {
    let content = html! {
        @if let Some(error) = error {
            p.notice.error role="alert" #signin-error { (error) }
        }
        form.stack method="post" action="/portal/signin" {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="next" value=(next);
            div.field {
                label for="email" { "Email" }
                input #email type="email" name="email" autocomplete="username" required value=(email)
                    aria-describedby=[error.map(|_| "signin-error")];
            }
            div.field {
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
            }
            button.primary type="submit" { "Sign in" }
        }
        p { "New here? " a href="/portal/signup" { "Create an account" } "." }
    };
    page("Sign in", Viewer::Anonymous, Section::Account, content)
}

fn signup_page(token: &str, entered: &SignUp, errors: &[FieldError]) -> Markup {
    let error_of = |field: &str| {
        errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    };
    let field = |name: &'static str,
                 label: &str,
                 kind: &str,
                 value: &str,
                 autocomplete: &str,
                 hint: Option<&str>| {
        let error = error_of(name);
        let described = match (error.is_some(), hint.is_some()) {
            (true, _) => Some(format!("{name}-error")),
            (false, true) => Some(format!("{name}-hint")),
            _ => None,
        };
        html! {
            div.field {
                label for=(name) { (label) }
                @if let Some(hint) = hint {
                    p.hint id={(name) "-hint"} { (hint) }
                }
                @if let Some(error) = error {
                    p.field-error id={(name) "-error"} { (error) }
                }
                input id=(name) type=(kind) name=(name) value=(value) required
                    autocomplete=(autocomplete)
                    aria-invalid=[error.map(|_| "true")]
                    aria-describedby=[described];
            }
        }
    };
    let content = html! {
        @if !errors.is_empty() {
            div.notice.error role="alert" {
                p { "The account was not created:" }
                ul {
                    @for (name, message) in errors {
                        li { a href={"#" (name)} { (message) } }
                    }
                }
            }
        }
        form.stack method="post" action="/portal/signup" {
            input type="hidden" name="csrf" value=(token);
            (field("email", "Email", "email", &entered.email, "email", None))
            (field("firstName", "First name", "text", &entered.first_name, "given-name", None))
            (field("lastName", "Last name", "text", &entered.last_name, "family-name", None))
            (field("password", "Password", "password", "", "new-password",
                Some(&format!("At least {} characters.", password::MIN_LENGTH))))
            button.primary type="submit" { "Create account" }
        }
        p { "Already have an account? " a href="/portal/signin" { "Sign in" } "." }
    };
    page(
        "Create an account",
        Viewer::Anonymous,
        Section::Account,
        content,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entered(email: &str, first: &str, last: &str) -> SignUp {
        SignUp {
            email: email.into(),
            first_name: first.into(),
            last_name: last.into(),
        }
    }

    #[test]
    fn sign_up_rules() {
        assert!(check_sign_up(&entered("ada@example.com", "Ada", "L"), "long enough!").is_empty());
        let fields = |e: Vec<FieldError>| e.into_iter().map(|(f, _)| f).collect::<Vec<_>>();
        assert_eq!(
            fields(check_sign_up(&entered("nope", "", "L"), "short")),
            ["email", "firstName", "password"]
        );
        for bad in ["@example.com", "ada@", "a b@example.com", "a@b@c"] {
            assert_eq!(
                fields(check_sign_up(&entered(bad, "A", "L"), "long enough!")),
                ["email"],
                "{bad}"
            );
        }
    }

    #[test]
    fn signup_page_keeps_values_but_never_the_password() {
        let html = signup_page(
            "tok",
            &entered("ada@example.com", "Ada", "<b>L</b>"),
            &[("email", "taken".into())],
        )
        .into_string();
        assert!(html.contains("value=\"ada@example.com\""));
        assert!(html.contains("&lt;b&gt;L&lt;/b&gt;"), "escaped");
        assert!(html.contains("taken"));
        assert!(html.contains("type=\"password\" name=\"password\" value=\"\""));
    }
}
