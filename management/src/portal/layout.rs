//! The page shell every portal page shares (skip link, header, navigation, footer),
//! and the error pages.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use crate::http::Problem;
use crate::store::PortalUser;

/// Who is looking at a page: signed in (with the session's CSRF token for the
/// sign-out form) or not.
#[derive(Debug, Clone, Copy)]
pub enum Viewer<'a> {
    /// Nobody is signed in.
    Anonymous,
    /// A signed-in user and their session's CSRF token.
    User(&'a PortalUser, &'a str),
}

/// Which navigation entry the page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// APIs, products and the catalogue home.
    Catalog,
    /// Products.
    Products,
    /// The user's subscriptions.
    Subscriptions,
    /// Sign-in and sign-up, and the signed-in user's account page.
    Account,
}

/// A whole HTML page: `title` goes in `<title>` and, as the one `h1`, at the top of `main`.
pub fn page(title: &str, viewer: Viewer<'_>, section: Section, content: Markup) -> Markup {
    let current = |s: Section| if s == section { Some("page") } else { None };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Developer portal" }
                link rel="stylesheet" href="/portal/assets/portal.css";
                script src="/portal/assets/portal.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/portal" { "Portcullis " span.brand-sub { "developer portal" } }
                    @if let Viewer::User(user, csrf) = viewer {
                        nav aria-label="Main" {
                            ul {
                                li { a href="/portal" aria-current=[current(Section::Catalog)] { "APIs" } }
                                li { a href="/portal/products" aria-current=[current(Section::Products)] { "Products" } }
                                li { a href="/portal/subscriptions" aria-current=[current(Section::Subscriptions)] { "My subscriptions" } }
                            }
                        }
                        form.signout method="post" action="/portal/signout" {
                            input type="hidden" name="csrf" value=(csrf);
                            a.who href="/portal/account" aria-current=[current(Section::Account)] {
                                (user.first_name) " " (user.last_name)
                            }
                            button.link type="submit" { "Sign out" }
                        }
                    } @else {
                        nav aria-label="Account" {
                            ul {
                                li { a href="/portal/signin" aria-current=[current(Section::Account)] { "Sign in" } }
                                li { a href="/portal/signup" { "Sign up" } }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (content)
                }
                footer.bottom {
                    p { "Served by the Portcullis management plane." }
                }
            }
        }
    }
}

/// An HTML response.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// A page that explains what went wrong, with a way back.
pub fn error_page(status: StatusCode, title: &str, message: &str, viewer: Viewer<'_>) -> Response {
    let content = html! {
        p.notice.error role="alert" { (message) }
        p { a href="/portal" { "Back to the portal home" } }
    };
    respond(status, page(title, viewer, Section::Catalog, content))
}

/// The 403 for a form whose CSRF token is missing or wrong.
pub fn csrf_failed(viewer: Viewer<'_>) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form was not accepted: its security token is missing, wrong or expired, \
         so nothing was changed. Go back, reload the page and submit the form again.",
        viewer,
    )
}

/// The 404 page.
pub fn not_found(what: &str, viewer: Viewer<'_>) -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        &format!("There is no {what} here, or it is not yours to see."),
        viewer,
    )
}

/// A store or server failure as a page: its own status and detail for 4xx, a
/// generic message (the detail logged) for 5xx.
pub fn problem_page(problem: Problem, viewer: Viewer<'_>) -> Response {
    if problem.status.is_server_error() {
        tracing::error!(detail = %problem.detail, "portal request failed");
        return error_page(
            problem.status,
            "Something went wrong",
            "The portal could not complete this request. Please try again in a moment.",
            viewer,
        );
    }
    if problem.status == StatusCode::NOT_FOUND {
        return error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("{}.", capitalize(&problem.detail)),
            viewer,
        );
    }
    error_page(problem.status, problem.title, &problem.detail, viewer)
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
