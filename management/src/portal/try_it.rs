//! The "try it" console: a form per operation that posts to the portal, which
//! sends the request through a configured gateway with the chosen subscription's
//! key and shows the response.

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use maud::{html, Markup};
use portcullis_core::config::Operation;

use super::api_page::ApiContext;
use super::catalog::{api_href, api_name};
use super::csrf;
use super::form::Form;
use super::forward::{self, Answer, Outgoing, MAX_RESPONSE};
use super::layout::{csrf_failed, not_found, page, problem_page, respond, Section};
use super::session::SignedIn;
use super::try_request::{self, PathInput};
use crate::http::Shared;

/// Methods offered for an operation that accepts any (`*`).
const ANY_METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The form field value that means "send no key".
const NO_KEY: &str = "none";

/// One operation's console form, with what it offers and what was entered.
pub struct TryForm<'a> {
    ctx: &'a ApiContext,
    op: &'a Operation,
    index: usize,
    csrf: &'a str,
    entered: Option<&'a Form>,
}

impl<'a> TryForm<'a> {
    /// The form for operation `op` (number `index` on the API page), filled with
    /// `entered` if the user sent it before, else with the documented examples.
    pub fn new(
        ctx: &'a ApiContext,
        op: &'a Operation,
        index: usize,
        csrf: &'a str,
        entered: Option<&'a Form>,
    ) -> Self {
        TryForm {
            ctx,
            op,
            index,
            csrf,
            entered,
        }
    }

    /// What was entered in `field`, else `default()`.
    fn value(&self, field: &str, default: impl FnOnce() -> String) -> String {
        match self.entered {
            Some(form) => form.get(field).to_owned(),
            None => default(),
        }
    }

    /// The documented example of parameter `name` in `location`.
    fn example(&self, name: &str, location: &str) -> Option<String> {
        self.ctx
            .operation_docs(&self.op.id)?
            .parameters
            .iter()
            .find(|p| p.name == name && p.location == location)
            .and_then(|p| p.example.clone())
    }
}

/// The console form of one operation.
pub fn console_form(f: &TryForm<'_>) -> Markup {
    let ctx = f.ctx;
    let op = f.op;
    let id = |name: &str| format!("op{}-{name}", f.index);
    let action = format!(
        "{}/operations/{}/try",
        api_href(&ctx.api.id),
        utf8_segment(&op.id)
    );
    let usable = ctx.usable_subscriptions();
    let docs = ctx.operation_docs(&op.id);
    let default_query = || {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for p in docs.map(|d| d.parameters.as_slice()).unwrap_or_default() {
            if p.location == "query" && p.required {
                q.append_pair(&p.name, p.example.as_deref().unwrap_or_default());
            }
        }
        q.finish()
    };
    let body_example = docs.and_then(|d| d.request_body.as_ref()).map(|b| {
        (
            b.content_type.clone(),
            b.example.clone().unwrap_or_default(),
        )
    });
    let default_headers = || match &body_example {
        Some((content_type, _)) => format!("Content-Type: {content_type}"),
        None => String::new(),
    };
    let default_body = || {
        body_example
            .as_ref()
            .map(|(_, e)| e.clone())
            .unwrap_or_default()
    };
    html! {
        @if ctx.gateways.is_empty() {
            p.notice.error { "No gateway with a public URL serves this API, so the console cannot send requests to it." }
        } @else {
            form.stack.console method="post" action=(action) {
                input type="hidden" name="csrf" value=(f.csrf);
                @if op.method == "*" {
                    div.field {
                        label for=(id("method")) { "Method" }
                        select id=(id("method")) name="method" {
                            @let chosen = f.value("method", || "GET".to_owned());
                            @for m in ANY_METHODS {
                                option value=(m) selected[chosen == m] { (m) }
                            }
                        }
                    }
                } @else {
                    p { "Method: " span class={"method m-" (op.method.to_lowercase())} { (op.method) } }
                }
                @if ctx.gateways.len() > 1 {
                    div.field {
                        label for=(id("gateway")) { "Gateway" }
                        select id=(id("gateway")) name="gateway" {
                            @let chosen = f.value("gateway", String::new);
                            @for gw in &ctx.gateways {
                                option value=(gw.id) selected[chosen == gw.id] { (gw.id) " — " (gw.url) }
                            }
                        }
                    }
                }
                @for input in try_request::path_inputs(&op.url_template) {
                    @match input {
                        PathInput::Param(name) => {
                            @let field = format!("path.{name}");
                            div.field {
                                label for=(id(&field)) { "Path parameter " code { (name) } }
                                input id=(id(&field)) type="text" name=(field) required
                                    value=(f.value(&field, || f.example(&name, "path").unwrap_or_default()));
                            }
                        }
                        PathInput::Rest => {
                            div.field {
                                label for=(id("rest")) { "Rest of the path (after " code { (op.url_template.trim_end_matches('*')) } ")" }
                                input id=(id("rest")) type="text" name="rest" value=(f.value("rest", String::new));
                            }
                        }
                    }
                }
                div.field {
                    label for=(id("query")) { "Query string" }
                    input id=(id("query")) type="text" name="query" placeholder="name=value&other=value"
                        value=(f.value("query", default_query));
                }
                div.field {
                    label for=(id("headers")) { "Extra headers, one " code { "Name: value" } " per line" }
                    textarea id=(id("headers")) name="headers" rows="3" { (f.value("headers", default_headers)) }
                }
                @if !matches!(op.method.as_str(), "GET" | "HEAD") {
                    div.field {
                        label for=(id("body")) { "Body" }
                        textarea id=(id("body")) name="body" rows="6" { (f.value("body", default_body)) }
                    }
                }
                div.field {
                    label for=(id("subscription")) { "Subscription key" }
                    @let chosen = f.value("subscription", String::new);
                    select id=(id("subscription")) name="subscription" {
                        @for sub in &usable {
                            option value=(sub.id) selected[chosen == sub.id] {
                                (if sub.display_name.is_empty() { &sub.id } else { &sub.display_name }) " (primary key)"
                            }
                        }
                        @if !ctx.api.subscription_required || usable.is_empty() {
                            option value=(NO_KEY) selected[chosen == NO_KEY] { "No key" }
                        }
                    }
                    @if usable.is_empty() && ctx.api.subscription_required {
                        p.hint { "You have no active subscription for this API: subscribe to one of its products first." }
                    }
                }
                button.primary type="submit" { "Send request" }
            }
        }
    }
}

/// An operation id as a URL path segment.
fn utf8_segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// GET /portal/apis/{api}/operations/{op}/try: the console of one operation.
pub async fn page_get(
    State(state): State<Shared>,
    signed: SignedIn,
    Path((api_id, op_id)): Path<(String, String)>,
) -> Response {
    console(&state, &signed, api_id, op_id, None).await
}

/// POST /portal/apis/{api}/operations/{op}/try: sends the request and shows the answer.
pub async fn send(
    State(state): State<Shared>,
    signed: SignedIn,
    Path((api_id, op_id)): Path<(String, String)>,
    form: Form,
) -> Response {
    if !csrf::session_ok(&signed, &form) {
        return csrf_failed(signed.viewer());
    }
    console(&state, &signed, api_id, op_id, Some(form)).await
}

/// What happened to a console request.
enum Outcome {
    /// The gateway answered.
    Answered(Answer),
    /// The form was not acceptable: why.
    Refused(String),
    /// The gateway could not be reached: why.
    Failed(String),
}

async fn console(
    state: &Shared,
    signed: &SignedIn,
    api_id: String,
    op_id: String,
    form: Option<Form>,
) -> Response {
    let ctx = match ApiContext::load(state, api_id, signed.user.id.clone()).await {
        Ok(Some(ctx)) => ctx,
        Ok(None) => return not_found("API", signed.viewer()),
        Err(p) => return problem_page(p, signed.viewer()),
    };
    let Some((index, op)) = ctx
        .api
        .operations
        .iter()
        .enumerate()
        .find(|(_, o)| o.id == op_id)
    else {
        return not_found("operation", signed.viewer());
    };
    let outcome = match &form {
        None => None,
        Some(form) => Some(match build(&ctx, op, form) {
            Err(why) => Outcome::Refused(why),
            Ok(out) => {
                tracing::info!(user = %signed.user.id, api = %ctx.api.id, operation = %op.id, url = %out.uri, "portal console request");
                match forward::send(out).await {
                    Ok(answer) => Outcome::Answered(answer),
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
        }),
    };
    let status = match &outcome {
        Some(Outcome::Refused(_)) => StatusCode::BAD_REQUEST,
        Some(Outcome::Failed(_)) => StatusCode::BAD_GATEWAY,
        _ => StatusCode::OK,
    };
    let title = format!("Try {} {}", op.method, op.url_template);
    let content = html! {
        p { "API: " a href=(api_href(&ctx.api.id)) { (api_name(&ctx.api)) } }
        (console_form(&TryForm::new(&ctx, op, index, &signed.csrf, form.as_ref())))
        @match &outcome {
            None => {}
            Some(Outcome::Refused(why)) => {
                p.notice.error role="alert" #result { "Not sent: " (why) }
            }
            Some(Outcome::Failed(why)) => {
                p.notice.error role="alert" #result { "No answer: " (why) }
            }
            Some(Outcome::Answered(answer)) => { (answer_view(answer)) }
        }
    };
    respond(
        status,
        page(&title, signed.viewer(), Section::Catalog, content),
    )
}

/// The request the form describes, or why it cannot be sent.
fn build(ctx: &ApiContext, op: &Operation, form: &Form) -> Result<Outgoing, String> {
    let gateway = match form.opt("gateway") {
        Some(chosen) => ctx
            .gateways
            .iter()
            .find(|g| g.id == chosen)
            .ok_or("Choose one of the listed gateways.")?,
        None => ctx
            .gateways
            .first()
            .ok_or("No gateway with a public URL serves this API.")?,
    };
    let method = try_request::method(&op.method, form.get("method"))?;
    let path = try_request::fill_path(
        &op.url_template,
        |name| form.opt(&format!("path.{name}")),
        form.get("rest"),
    )?;
    let query = try_request::normalise_query(form.get("query"));
    let uri = try_request::target(&gateway.url, &ctx.api.path, &path, &query)?;
    let key_header = &ctx.api.subscription_key_parameter_names.header;
    let mut headers = HeaderMap::new();
    for (name, value) in try_request::parse_headers(form.get("headers"), key_header)? {
        headers.append(name, value);
    }
    match form.get("subscription") {
        NO_KEY | "" => {}
        chosen => {
            let sub = ctx
                .usable_subscriptions()
                .into_iter()
                .find(|s| s.id == chosen)
                .ok_or("Choose one of your active subscriptions for this API.")?;
            let name = HeaderName::from_bytes(key_header.as_bytes()).map_err(|_| {
                format!("The API's key header `{key_header}` is not a valid header name.")
            })?;
            let value = HeaderValue::from_str(&sub.primary_key)
                .map_err(|_| "The subscription key cannot be sent in a header.".to_owned())?;
            headers.insert(name, value);
        }
    }
    let body = form.get("body");
    if body.len() > MAX_RESPONSE {
        return Err(format!(
            "Send a body of at most {} KiB.",
            MAX_RESPONSE / 1024
        ));
    }
    Ok(Outgoing {
        method,
        uri,
        headers,
        body: Bytes::from(body.to_owned()),
    })
}

/// The gateway's answer: status, headers and body (JSON pretty-printed).
fn answer_view(answer: &Answer) -> Markup {
    let class = match answer.status {
        200..=299 => "ok",
        300..=399 => "wait",
        _ => "bad",
    };
    let json = answer
        .headers
        .iter()
        .any(|(n, v)| n == "content-type" && v.contains("json"));
    let text = String::from_utf8_lossy(&answer.body);
    let shown = if json {
        serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| text.clone().into_owned())
    } else {
        text.into_owned()
    };
    let mut head = String::new();
    for (name, value) in &answer.headers {
        let _ = writeln!(head, "{name}: {value}");
    }
    html! {
        section.answer #result aria-labelledby="result-heading" {
            h2 #result-heading { "Response" }
            p.status-line role="status" {
                span class={"badge " (class)} #response-status { (answer.status) " " (answer.reason) }
                " in " (answer.elapsed.as_millis()) " ms"
            }
            h3 { "Headers" }
            pre.code tabindex="0" { (head) }
            h3 { "Body" }
            @if answer.truncated {
                p.notice { "Only the first " (MAX_RESPONSE / 1024) " KiB are shown." }
            }
            @if shown.is_empty() {
                p.empty { "(empty)" }
            } @else {
                pre.code #response-body tabindex="0" { (shown) }
            }
        }
    }
}
