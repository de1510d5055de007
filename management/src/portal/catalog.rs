//! The catalogue: the home page (APIs and products, with search), the products
//! list and a product's page with its subscribe button.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use portcullis_core::config::{Api, Product};

use super::layout::{not_found, page, problem_page, respond, Section};
use super::search::Query;
use super::session::SignedIn;
use super::subscriptions::state_badge;
use crate::http::Shared;

/// The name people see for an API.
pub fn api_name(api: &Api) -> &str {
    if api.display_name.is_empty() {
        &api.id
    } else {
        &api.display_name
    }
}

/// The name people see for a product.
pub fn product_name(product: &Product) -> &str {
    if product.display_name.is_empty() {
        &product.id
    } else {
        &product.display_name
    }
}

/// The portal path of API `id` (ids are URL-safe by construction).
pub fn api_href(id: &str) -> String {
    format!("/portal/apis/{id}")
}

/// The portal path of product `id`.
pub fn product_href(id: &str) -> String {
    format!("/portal/products/{id}")
}

/// `1 API`, `2 APIs`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The value of `name` in a raw query string.
pub fn query_param(raw: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// GET /portal: APIs and products, filtered by `?q=`.
pub async fn home(
    State(state): State<Shared>,
    signed: SignedIn,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = query_param(raw.as_deref(), "q").unwrap_or_default();
    let query = Query::parse(&q);
    let catalog = state
        .read(|s| Ok((s.portal_apis(), s.portal_products())))
        .await;
    let (apis, products) = match catalog {
        Ok(c) => c,
        Err(p) => return problem_page(p, signed.viewer()),
    };
    let names_of = |product: &Product| -> Vec<&str> {
        product
            .apis
            .iter()
            .filter_map(|id| apis.iter().find(|a| &a.id == id).map(api_name))
            .collect()
    };
    let found_apis: Vec<&Api> = apis.iter().filter(|a| query.matches_api(a)).collect();
    let found_products: Vec<&Product> = products
        .iter()
        .filter(|p| query.matches_product(p, &names_of(p)))
        .collect();
    let content = html! {
        form.search role="search" method="get" action="/portal" {
            label for="q" { "Search APIs and products" }
            div.search-row {
                input #q type="search" name="q" value=(q) placeholder="Name, path or operation";
                button type="submit" { "Search" }
            }
        }
        @if !query.is_empty() {
            p role="status" {
                (found_apis.len()) " APIs and " (found_products.len()) " products match “" (q) "”. "
                a href="/portal" { "Show everything" }
            }
        }
        section aria-labelledby="apis-heading" {
            h2 #apis-heading { "APIs" }
            @if found_apis.is_empty() {
                p.empty { "No API matches." }
            } @else {
                ul.cards {
                    @for api in &found_apis {
                        li.card {
                            h3 { a href=(api_href(&api.id)) { (api_name(api)) } }
                            p.meta {
                                code { "/" (api.normalized_path()) } " · " (plural(api.operations.len(), "operation", "operations"))
                                @if let Some(v) = api.api_version.as_deref().filter(|v| !v.is_empty()) { " · version " (v) }
                            }
                            @if !api.description.is_empty() { p { (api.description) } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="products-heading" {
            h2 #products-heading { "Products" }
            (product_cards(&found_products, &apis))
        }
    };
    respond(
        StatusCode::OK,
        page(
            "APIs and products",
            signed.viewer(),
            Section::Catalog,
            content,
        ),
    )
}

/// GET /portal/products
pub async fn products(State(state): State<Shared>, signed: SignedIn) -> Response {
    let catalog = state
        .read(|s| Ok((s.portal_apis(), s.portal_products())))
        .await;
    let (apis, products) = match catalog {
        Ok(c) => c,
        Err(p) => return problem_page(p, signed.viewer()),
    };
    let all: Vec<&Product> = products.iter().collect();
    let content = html! {
        p { "A subscription to a product gives you keys for all of its APIs." }
        (product_cards(&all, &apis))
    };
    respond(
        StatusCode::OK,
        page("Products", signed.viewer(), Section::Products, content),
    )
}

fn product_cards(products: &[&Product], apis: &[Api]) -> Markup {
    html! {
        @if products.is_empty() {
            p.empty { "No product matches." }
        } @else {
            ul.cards {
                @for product in products {
                    li.card {
                        h3 { a href=(product_href(&product.id)) { (product_name(product)) } }
                        p.meta {
                            (plural(product.apis.len(), "API", "APIs")) " · "
                            @if product.approval_required { "needs approval" } @else { "instant access" }
                        }
                        @if !product.description.is_empty() { p { (product.description) } }
                        @let names: Vec<&str> = product.apis.iter()
                            .filter_map(|id| apis.iter().find(|a| &a.id == id).map(api_name)).collect();
                        @if !names.is_empty() { p.apis-of { "Includes: " (names.join(", ")) } }
                    }
                }
            }
        }
    }
}

/// GET /portal/products/{id}: its APIs, whether approval is needed, and subscribe.
pub async fn product(
    State(state): State<Shared>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let user_id = signed.user.id.clone();
    let wanted = id.clone();
    let found = state
        .read(move |s| {
            let product = match s.portal_product(&wanted) {
                Ok(p) => p,
                Err(crate::store::StoreError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            let subscription = s
                .portal_subscriptions(&user_id)
                .into_iter()
                .find(|sub| sub.is_live() && sub.product_id() == Some(wanted.as_str()));
            Ok(Some((product, s.portal_apis(), subscription)))
        })
        .await;
    let (product, apis, subscription) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return not_found("product", signed.viewer()),
        Err(p) => return problem_page(p, signed.viewer()),
    };
    let content = html! {
        @if !product.description.is_empty() { p.lead { (product.description) } }
        section aria-labelledby="access-heading" {
            h2 #access-heading { "Access" }
            @if product.approval_required {
                p { "New subscriptions wait for an administrator's approval; your keys work once it is approved." }
            } @else {
                p { "Subscriptions are approved at once: your keys work right away." }
            }
            @if let Some(sub) = &subscription {
                p {
                    "You are subscribed: " (state_badge(sub.state)) ". "
                    a href="/portal/subscriptions" { "See your keys" }
                }
            } @else {
                form method="post" action={(product_href(&product.id)) "/subscribe"} {
                    input type="hidden" name="csrf" value=(signed.csrf);
                    button.primary type="submit" { "Subscribe to " (product_name(&product)) }
                }
            }
        }
        section aria-labelledby="product-apis-heading" {
            h2 #product-apis-heading { "APIs in this product" }
            ul.plain {
                @for api_id in &product.apis {
                    li {
                        @if let Some(api) = apis.iter().find(|a| &a.id == api_id) {
                            a href=(api_href(&api.id)) { (api_name(api)) }
                            @if !api.description.is_empty() { " — " (api.description) }
                        } @else {
                            (api_id)
                        }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        page(
            product_name(&product),
            signed.viewer(),
            Section::Products,
            content,
        ),
    )
}
