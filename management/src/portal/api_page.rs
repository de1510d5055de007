//! An API's page: its description, where to call it, the products that include
//! it, and every operation with its parameters, bodies, responses and a "try it"
//! form, rendered from the stored OpenAPI document (or, without one, from the
//! API's own operations).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use portcullis_core::config::{Api, Product, VersionSet};

use super::catalog::{api_name, product_href, product_name};
use super::layout::{not_found, page, problem_page, respond, Section};
use super::session::SignedIn;
use super::try_it::{self, TryForm};
use crate::http::Shared;
use crate::openapi_import::view::{view, ApiView, BodyView, OperationView};
use crate::store::{PortalGateway, PortalSubscription, StoreError};

/// Everything an API's page (or its try-it page) shows.
pub struct ApiContext {
    /// The API.
    pub api: Api,
    /// Its documentation view.
    pub docs: ApiView,
    /// Gateways that serve it and have a public URL.
    pub gateways: Vec<PortalGateway>,
    /// The products that include it.
    pub products: Vec<Product>,
    /// The viewer's subscriptions (all states).
    pub subscriptions: Vec<PortalSubscription>,
    /// Its version set and the set's versions (id, version), when it has one.
    pub versions: Option<(VersionSet, Vec<(String, String)>)>,
}

impl ApiContext {
    /// Loads API `id` for `user_id`; `None` when there is no such API.
    pub async fn load(
        state: &Shared,
        id: String,
        user_id: String,
    ) -> Result<Option<ApiContext>, crate::http::Problem> {
        state
            .read(move |s| {
                let (api, document) = match s.api_with_document(&id) {
                    Ok(found) => found,
                    Err(StoreError::NotFound(_)) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let document: Option<serde_json::Value> = document.and_then(|text| {
                    serde_json::from_str(&text)
                        .map_err(|e| tracing::warn!(api = %id, error = %e, "stored OpenAPI document does not parse"))
                        .ok()
                });
                let docs = view(&api, document.as_ref());
                let products = s
                    .portal_products()
                    .into_iter()
                    .filter(|p| p.apis.iter().any(|a| a == &id))
                    .collect();
                Ok(Some(ApiContext {
                    versions: s.portal_versions(&api),
                    gateways: s.portal_gateways_for(&id),
                    subscriptions: s.portal_subscriptions(&user_id),
                    api,
                    docs,
                    products,
                }))
            })
            .await
    }

    /// The user's active subscriptions whose keys open this API.
    pub fn usable_subscriptions(&self) -> Vec<&PortalSubscription> {
        use portcullis_core::config::SubscriptionState;
        self.subscriptions
            .iter()
            .filter(|s| s.state == SubscriptionState::Active)
            .filter(|s| {
                let scope = s.scope.trim_end_matches('/');
                scope == "/apis"
                    || scope.strip_prefix("/apis/") == Some(self.api.id.as_str())
                    || s.product_id()
                        .is_some_and(|p| self.products.iter().any(|x| x.id == p))
            })
            .collect()
    }

    /// The documentation of operation `id`, if the view has it.
    pub fn operation_docs(&self, id: &str) -> Option<&OperationView> {
        self.docs.operations.iter().find(|o| o.id == id)
    }
}

/// GET /portal/apis/{id}
pub async fn show(
    State(state): State<Shared>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let ctx = match ApiContext::load(&state, id, signed.user.id.clone()).await {
        Ok(Some(ctx)) => ctx,
        Ok(None) => return not_found("API", signed.viewer()),
        Err(p) => return problem_page(p, signed.viewer()),
    };
    let api = &ctx.api;
    let description = if ctx.docs.description.is_empty() {
        api.description.as_str()
    } else {
        ctx.docs.description.as_str()
    };
    let keys = &api.subscription_key_parameter_names;
    let call_path = super::versions::call_path(&ctx);
    let content = html! {
        @if !description.is_empty() { p.lead { (description) } }
        (super::versions::picker(&ctx))
        section aria-labelledby="call-heading" {
            h2 #call-heading { "Calling this API" }
            @if ctx.gateways.is_empty() {
                p { "No gateway with a public URL serves this API yet, so it cannot be called from here." }
            } @else {
                p { "Base URL" @if ctx.gateways.len() > 1 { "s" } ":" }
                ul.plain {
                    @for gw in &ctx.gateways {
                        li { code.url { (gw.url) "/" (call_path) } }
                    }
                }
            }
            @if api.subscription_required {
                p {
                    "Send a subscription key in the " code { (keys.header) } " header (or the "
                    code { (keys.query) } " query parameter)."
                }
            } @else {
                p { "This API can be called without a subscription key." }
            }
            @if !ctx.products.is_empty() {
                p {
                    "Get a key by subscribing to "
                    @for (i, product) in ctx.products.iter().enumerate() {
                        @if i > 0 { ", " }
                        a href=(product_href(&product.id)) { (product_name(product)) }
                    }
                    "."
                }
            }
        }
        section aria-labelledby="ops-heading" {
            h2 #ops-heading { "Operations" }
            @if api.operations.is_empty() {
                p.empty { "This API lists no operations." }
            }
            @if api.operations.len() > 1 {
                nav aria-label="Operations" {
                    ul.toc {
                        @for (i, op) in api.operations.iter().enumerate() {
                            li {
                                a href={"#op" (i)} { span class={"method m-" (op.method.to_lowercase())} { (op.method) } " " (op.url_template) }
                                @let summary = ctx.operation_docs(&op.id).map(|d| d.summary.as_str()).filter(|s| !s.is_empty()).unwrap_or(op.display_name.as_str());
                                @if !summary.is_empty() { " — " (summary) }
                            }
                        }
                    }
                }
            }
            @for (i, op) in api.operations.iter().enumerate() {
                @let docs = ctx.operation_docs(&op.id);
                article.operation id={"op" (i)} aria-labelledby={"op" (i) "-title"} {
                    h3 id={"op" (i) "-title"} {
                        span class={"method m-" (op.method.to_lowercase())} { (op.method) } " "
                        code.template { (op.url_template) }
                    }
                    @let summary = docs.map(|d| d.summary.as_str()).filter(|s| !s.is_empty()).unwrap_or(&op.display_name);
                    @if !summary.is_empty() { p.summary { (summary) } }
                    @let text = docs.map(|d| d.description.as_str()).filter(|s| !s.is_empty()).unwrap_or(&op.description);
                    @if !text.is_empty() { p { (text) } }
                    @if let Some(docs) = docs { (operation_details(docs)) }
                    details.try {
                        summary { "Try it" }
                        (try_it::console_form(&TryForm::new(&ctx, op, i, &signed.csrf, None)))
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        page(api_name(api), signed.viewer(), Section::Catalog, content),
    )
}

/// Parameters, request body and responses of one operation.
fn operation_details(op: &OperationView) -> Markup {
    html! {
        @if !op.parameters.is_empty() {
            h4 { "Parameters" }
            ul.params {
                @for p in &op.parameters {
                    li {
                        code.name { (p.name) }
                        " " span.where { "in " (p.location) }
                        @if p.required { " " span.badge.wait { "required" } }
                        @if !p.schema.is_empty() { " " span.type { (p.schema) } }
                        @if !p.description.is_empty() { p { (p.description) } }
                        @if let Some(example) = &p.example { p { "Example: " code { (example) } } }
                    }
                }
            }
        }
        @if let Some(body) = &op.request_body {
            h4 { "Request body" }
            (body_view(body))
        }
        @if !op.responses.is_empty() {
            h4 { "Responses" }
            ul.responses {
                @for r in &op.responses {
                    li {
                        strong.status { (r.status) } @if !r.description.is_empty() { " — " (r.description) }
                        @for body in &r.bodies { (body_view(body)) }
                    }
                }
            }
        }
    }
}

fn body_view(body: &BodyView) -> Markup {
    html! {
        div.body-view {
            p { code { (body.content_type) } @if !body.description.is_empty() { " — " (body.description) } }
            @if !body.schema_json.is_empty() {
                details {
                    summary { "Schema" }
                    pre.code tabindex="0" { (body.schema_json) }
                }
            }
            @if let Some(example) = &body.example {
                p.label { "Example" }
                pre.code tabindex="0" { (example) }
            }
        }
    }
}
