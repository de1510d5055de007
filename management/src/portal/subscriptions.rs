//! A user's subscriptions: subscribing to a product, the list with keys (shown on
//! demand, copyable), key regeneration and cancelling. Every action checks the
//! owner: another user's subscription id is a 404.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use portcullis_core::config::SubscriptionState;

use super::catalog::{product_href, query_param};
use super::csrf;
use super::form::Form;
use super::layout::{csrf_failed, error_page, not_found, page, problem_page, respond, Section};
use super::session::{see_other, SignedIn};
use crate::http::Shared;
use crate::store::{KeyType, PortalSubscription};

/// A subscription state as a labelled badge.
pub fn state_badge(state: SubscriptionState) -> Markup {
    let (class, label) = match state {
        SubscriptionState::Active => ("ok", "active"),
        SubscriptionState::Submitted => ("wait", "pending approval"),
        SubscriptionState::Suspended => ("bad", "suspended"),
        SubscriptionState::Cancelled => ("off", "cancelled"),
        SubscriptionState::Expired => ("off", "expired"),
        SubscriptionState::Rejected => ("bad", "rejected"),
    };
    html! { span class={"badge " (class)} { (label) } }
}

/// POST /portal/products/{id}/subscribe
pub async fn subscribe(
    State(state): State<Shared>,
    signed: SignedIn,
    Path(product_id): Path<String>,
    form: Form,
) -> Response {
    if !csrf::session_ok(&signed, &form) {
        return csrf_failed(signed.viewer());
    }
    let user_id = signed.user.id.clone();
    let now = state.now_unix();
    match state
        .write(move |s| s.portal_subscribe(&user_id, &product_id, now))
        .await
    {
        Ok((sub, true)) => see_other(&format!("/portal/subscriptions?subscribed={}", sub.id)),
        Ok((sub, false)) => see_other(&format!("/portal/subscriptions?existing={}", sub.id)),
        Err(p) => problem_page(p, signed.viewer()),
    }
}

/// GET /portal/subscriptions
pub async fn list(
    State(state): State<Shared>,
    signed: SignedIn,
    RawQuery(raw): RawQuery,
) -> Response {
    let user_id = signed.user.id.clone();
    let found = state
        .read(move |s| Ok((s.portal_subscriptions(&user_id), s.portal_products())))
        .await;
    let (subs, products) = match found {
        Ok(f) => f,
        Err(p) => return problem_page(p, signed.viewer()),
    };
    let notice = notice(raw.as_deref(), &subs);
    let content = html! {
        @if let Some(notice) = notice {
            p.notice.ok role="status" { (notice) }
        }
        @if subs.is_empty() {
            p.empty { "You have no subscriptions yet. " a href="/portal/products" { "Browse the products" } " to get keys." }
        } @else {
            p.hint #copy-status aria-live="polite" {}
            ul.cards.wide {
                @for sub in &subs {
                    @let product = sub.product_id().and_then(|p| products.iter().find(|x| x.id == p));
                    li.card #{"sub-" (sub.id)} {
                        h2 {
                            @if let Some(product) = product {
                                a href=(product_href(&product.id)) { (super::catalog::product_name(product)) }
                            } @else {
                                (if sub.display_name.is_empty() { &sub.id } else { &sub.display_name })
                            }
                        }
                        p.meta { "State: " (state_badge(sub.state)) " · Scope: " code { (sub.scope) } }
                        @if sub.state == SubscriptionState::Submitted {
                            p { "An administrator has to approve this subscription before its keys work." }
                        }
                        @if sub.state != SubscriptionState::Cancelled {
                            (keys(sub, &signed.csrf))
                            form.inline method="post" action={"/portal/subscriptions/" (sub.id) "/cancel"} {
                                input type="hidden" name="csrf" value=(signed.csrf);
                                button.danger type="submit" { "Cancel subscription" }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        page(
            "My subscriptions",
            signed.viewer(),
            Section::Subscriptions,
            content,
        ),
    )
}

/// The message for `?subscribed=`, `?existing=`, `?regenerated=` or `?cancelled=`
/// naming one of the user's subscriptions.
fn notice(raw: Option<&str>, subs: &[PortalSubscription]) -> Option<&'static str> {
    let names = |key: &str| query_param(raw, key).filter(|id| subs.iter().any(|s| &s.id == id));
    if let Some(id) = names("subscribed") {
        let pending = subs
            .iter()
            .any(|s| s.id == id && s.state == SubscriptionState::Submitted);
        return Some(if pending {
            "Subscription requested: it is pending approval."
        } else {
            "Subscribed: your keys are ready."
        });
    }
    if names("existing").is_some() {
        return Some("You already have a subscription to this product: here it is.");
    }
    if names("regenerated").is_some() {
        return Some("Key regenerated: the old one no longer works.");
    }
    if names("cancelled").is_some() {
        return Some("Subscription cancelled.");
    }
    None
}

/// The keys of one subscription, hidden until shown, each with copy and regenerate.
fn keys(sub: &PortalSubscription, csrf: &str) -> Markup {
    html! {
        details.keys {
            summary { "Show keys" }
            dl {
                @for (which, label, value) in [("primary", "Primary key", &sub.primary_key), ("secondary", "Secondary key", &sub.secondary_key)] {
                    @let id = format!("key-{}-{which}", sub.id);
                    dt { (label) }
                    dd {
                        code.key id=(id) { (value) }
                        div.key-actions {
                            button.copy type="button" data-copy=(id) hidden { "Copy" span.visually-hidden { " " (label.to_lowercase()) } }
                            form.inline method="post" action={"/portal/subscriptions/" (sub.id) "/regenerate"} {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="key" value=(which);
                                button type="submit" { "Regenerate " (which) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// POST /portal/subscriptions/{id}/regenerate (field `key`: `primary` or `secondary`)
pub async fn regenerate(
    State(state): State<Shared>,
    signed: SignedIn,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    if !csrf::session_ok(&signed, &form) {
        return csrf_failed(signed.viewer());
    }
    let which = match form.get("key") {
        "primary" => KeyType::Primary,
        "secondary" => KeyType::Secondary,
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Which key?",
                "Say which key to regenerate: primary or secondary. Nothing was changed.",
                signed.viewer(),
            )
        }
    };
    let done = format!("/portal/subscriptions?regenerated={id}#sub-{id}");
    on_own_subscription(&state, &signed, id, done, move |s, user, id, now| {
        s.portal_regenerate_key(user, id, which, now).map(drop)
    })
    .await
}

/// Runs `change` (the store, the user's id, the subscription id, now) on one of
/// the signed-in user's subscriptions and goes to `done`; another user's
/// subscription, or none, is the portal's 404 (the store checks the owner).
async fn on_own_subscription<F>(
    state: &Shared,
    signed: &SignedIn,
    id: String,
    done: String,
    change: F,
) -> Response
where
    F: FnOnce(&mut crate::store::Store, &str, &str, u64) -> Result<(), crate::store::StoreError>
        + Send
        + 'static,
{
    let user_id = signed.user.id.clone();
    let now = state.now_unix();
    match state.write(move |s| change(s, &user_id, &id, now)).await {
        Ok(()) => see_other(&done),
        Err(p) if p.status == StatusCode::NOT_FOUND => not_found("subscription", signed.viewer()),
        Err(p) => problem_page(p, signed.viewer()),
    }
}

/// POST /portal/subscriptions/{id}/cancel
pub async fn cancel(
    State(state): State<Shared>,
    signed: SignedIn,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    if !csrf::session_ok(&signed, &form) {
        return csrf_failed(signed.viewer());
    }
    let done = format!("/portal/subscriptions?cancelled={id}");
    on_own_subscription(&state, &signed, id, done, |s, user, id, now| {
        s.portal_cancel(user, id, now).map(drop)
    })
    .await
}
