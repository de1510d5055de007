//! Transformation policies: headers, query parameters, URI, method, body,
//! find-and-replace, backend service, variables and basic authentication.

use std::borrow::Cow;
use std::sync::Arc;

use super::attrs;
use super::context::{Context, Headers, Url};
use super::error::{Failure, PolicyError};
use super::program::SectionKind;
use super::xml::Element;
use crate::expr::{EvalError, Template};
use crate::http::ServiceUrl;

/// Whether a policy changes the request or the response (by section, as APIM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `context.Request`.
    Request,
    /// `context.Response`.
    Response,
}

impl Target {
    /// The message a policy in `section` works on.
    pub fn of(section: SectionKind) -> Target {
        match section {
            SectionKind::Inbound | SectionKind::Backend => Target::Request,
            SectionKind::Outbound | SectionKind::OnError => Target::Response,
        }
    }
}

/// `exists-action` of `set-header` and `set-query-parameter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistsAction {
    /// Replace the values (the default).
    Override,
    /// Keep existing values, set only if absent.
    Skip,
    /// Add the values to existing ones.
    Append,
    /// Remove the field.
    Delete,
}

fn exists_action(el: &Element) -> Result<ExistsAction, PolicyError> {
    match el.attr("exists-action").map(str::trim) {
        None | Some("override") => Ok(ExistsAction::Override),
        Some("skip") => Ok(ExistsAction::Skip),
        Some("append") => Ok(ExistsAction::Append),
        Some("delete") => Ok(ExistsAction::Delete),
        Some(other) => Err(PolicyError::at(
            el,
            format!("exists-action must be override, skip, append or delete, not '{other}'"),
        )),
    }
}

/// `exists-action` and the `<value>`s of `set-header` and `set-query-parameter`.
fn action_and_values(el: &Element) -> Result<(ExistsAction, Vec<Template>), PolicyError> {
    attrs::only(el, &["name", "exists-action"])?;
    let action = exists_action(el)?;
    let values = values(el)?;
    if values.is_empty() && action != ExistsAction::Delete {
        return Err(PolicyError::at(
            el,
            "at least one <value> is required unless exists-action is delete",
        ));
    }
    Ok((action, values))
}

fn values(el: &Element) -> Result<Vec<Template>, PolicyError> {
    attrs::only_children(el, &["value"])?;
    el.children_named("value")
        .map(attrs::text_template)
        .collect()
}

/// `set-header`.
#[derive(Debug, Clone)]
pub struct SetHeader {
    /// Field name (may be an expression).
    pub name: Template,
    /// What to do when present.
    pub action: ExistsAction,
    /// Values.
    pub values: Vec<Template>,
    /// Request or response.
    pub target: Target,
}

impl SetHeader {
    /// Compiles `<set-header name exists-action><value/>...</set-header>`.
    pub fn compile(el: &Element, section: SectionKind) -> Result<Self, PolicyError> {
        let (action, values) = action_and_values(el)?;
        Ok(SetHeader {
            name: attrs::required_template(el, "name")?,
            action,
            values,
            target: Target::of(section),
        })
    }

    /// Applies it to the context.
    pub fn run(&self, ctx: &mut Context) -> Result<(), Failure> {
        let (name, vals) = self.compute(ctx)?;
        let Some(headers) = headers_mut(ctx, self.target) else {
            return Ok(());
        };
        apply_values(headers, &name, self.action, vals);
        Ok(())
    }

    /// Applies it to `headers`, evaluating against `ctx` (for messages that are
    /// not the context's own, like a `send-request`'s).
    pub fn apply(&self, ctx: &Context, headers: &mut Headers) -> Result<(), Failure> {
        let (name, vals) = self.compute(ctx)?;
        apply_values(headers, &name, self.action, vals);
        Ok(())
    }

    /// The header name and values, checked (literals borrowed, not copied).
    fn compute(&self, ctx: &Context) -> Result<(Cow<'_, str>, Values<'_>), Failure> {
        let name = eval_str(&self.name, ctx)?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(Failure::new(
                "InvalidHeaderName",
                format!("'{name}' is not a valid header name"),
            ));
        }
        let mut vals = Values::new();
        for v in &self.values {
            let s = eval_str(v, ctx)?;
            if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(Failure::new(
                    "InvalidHeaderValue",
                    format!("value of header '{name}' contains a line break"),
                ));
            }
            vals.push(s);
        }
        Ok((name, vals))
    }
}

/// A policy's evaluated values: one, almost always, kept inline.
type Values<'a> = smallvec::SmallVec<[Cow<'a, str>; 1]>;

fn apply_values(headers: &mut Headers, name: &str, action: ExistsAction, vals: Values<'_>) {
    match action {
        ExistsAction::Delete => headers.remove(name),
        ExistsAction::Skip if headers.contains(name) => {}
        ExistsAction::Skip | ExistsAction::Append => {
            for v in vals {
                headers.append_str(name, &v);
            }
        }
        ExistsAction::Override => {
            headers.remove(name);
            for v in vals {
                headers.append_str(name, &v);
            }
        }
    }
}

/// The headers a policy changes: the request's, or the response's (made if missing).
pub fn headers_mut(ctx: &mut Context, target: Target) -> Option<&mut Headers> {
    match target {
        Target::Request => Some(&mut ctx.request.headers),
        Target::Response => ctx.response.as_mut().map(|r| &mut r.headers),
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Evaluates a template to text, as a policy failure when it throws.
pub fn eval(t: &Template, ctx: &Context) -> Result<String, Failure> {
    t.eval_string(ctx).map_err(expr_failure)
}

/// As [`eval`], borrowing a literal instead of copying it.
pub fn eval_str<'a>(t: &'a Template, ctx: &Context) -> Result<Cow<'a, str>, Failure> {
    t.eval_str(ctx).map_err(expr_failure)
}

/// The failure for an expression that threw, as APIM reports it.
pub fn expr_failure(e: EvalError) -> Failure {
    Failure::new("ExpressionValueEvaluationFailure", e.message)
}

/// `set-query-parameter`.
#[derive(Debug, Clone)]
pub struct SetQueryParameter {
    /// Parameter name.
    pub name: Template,
    /// What to do when present.
    pub action: ExistsAction,
    /// Values.
    pub values: Vec<Template>,
}

impl SetQueryParameter {
    /// Compiles `<set-query-parameter name exists-action><value/></set-query-parameter>`.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        let (action, values) = action_and_values(el)?;
        Ok(SetQueryParameter {
            name: attrs::required_template(el, "name")?,
            action,
            values,
        })
    }

    /// Applies it to the request URL.
    pub fn run(&self, ctx: &mut Context) -> Result<(), Failure> {
        let name = eval(&self.name, ctx)?;
        let mut vals = Vec::with_capacity(self.values.len());
        for v in &self.values {
            vals.push(eval(v, ctx)?);
        }
        let q = &mut ctx.request.url.query;
        let present = q.iter().any(|(n, _)| *n == name);
        match self.action {
            ExistsAction::Delete => q.retain(|(n, _)| *n != name),
            ExistsAction::Skip if present => {}
            ExistsAction::Skip | ExistsAction::Append => {
                q.extend(vals.into_iter().map(|v| (name.clone(), v)));
            }
            ExistsAction::Override => {
                // The values take the place of the first occurrence.
                let at = q.iter().position(|(n, _)| *n == name).unwrap_or(q.len());
                q.retain(|(n, _)| *n != name);
                let at = at.min(q.len());
                let new: Vec<_> = vals.into_iter().map(|v| (name.clone(), v)).collect();
                q.splice(at..at, new);
            }
        }
        Ok(())
    }
}

/// `rewrite-uri`.
#[derive(Debug, Clone)]
pub struct RewriteUri {
    /// The new path and query, relative to the backend URL; `{param}` names
    /// are filled from the operation's matched template parameters.
    pub template: Template,
    /// Keep query parameters the new template does not mention.
    pub copy_unmatched_params: bool,
}

impl RewriteUri {
    /// Compiles `<rewrite-uri template copy-unmatched-params />`.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["template", "copy-unmatched-params"])?;
        Ok(RewriteUri {
            template: attrs::required_template(el, "template")?,
            copy_unmatched_params: attrs::boolean(el, "copy-unmatched-params", true)?,
        })
    }

    /// Rewrites the request URL's path (after the backend base path) and query.
    pub fn run(&self, ctx: &mut Context) -> Result<(), Failure> {
        let raw = eval_str(&self.template, ctx)?;
        let req = &mut ctx.request;
        // The new path is written into the old one's buffer.
        let mut path = std::mem::take(&mut req.url.path);
        path.clear();
        path.push_str(req.base_path.trim_end_matches('/'));
        let start = path.len();
        fill_template(&raw, &req.matched_parameters, &req.url.query, &mut path);
        let own_query = path[start..].find('?').map(|at| {
            let query = crate::http::percent::parse_query(&path[start + at + 1..]);
            path.truncate(start + at);
            query
        });
        if !path[start..].starts_with('/') {
            path.insert(start, '/');
        }
        if path.contains(' ') {
            path = path.replace(' ', "%20");
        }
        match own_query {
            // Parameters the template names (in its path or its own query) are
            // not copied again.
            Some(mut new_query) => {
                if self.copy_unmatched_params {
                    let own = new_query.len();
                    for (n, v) in &req.url.query {
                        let used = names_placeholder(&raw, n)
                            || new_query[..own].iter().any(|(q, _)| q == n);
                        if !used {
                            new_query.push((n.clone(), v.clone()));
                        }
                    }
                }
                req.url.query = new_query;
            }
            None if self.copy_unmatched_params => {
                req.url.query.retain(|(n, _)| !names_placeholder(&raw, n));
            }
            None => req.url.query.clear(),
        }
        req.url.path = path;
        Ok(())
    }
}

/// Whether `template` contains `{name}`.
fn names_placeholder(template: &str, name: &str) -> bool {
    template.match_indices('{').any(|(i, _)| {
        template[i + 1..]
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('}'))
    })
}

/// Replaces `{name}` in a rewrite template with template parameters, then
/// query parameters, appending to `out`.
fn fill_template(
    t: &str,
    params: &[(String, String)],
    query: &[(String, String)],
    out: &mut String,
) {
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return;
        };
        let name = &after[..close];
        let value = params
            .iter()
            .chain(query.iter())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        if let Some(v) = value {
            out.push_str(v);
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
}

/// `set-method`.
#[derive(Debug, Clone)]
pub struct SetMethod(pub Template);

impl SetMethod {
    /// Compiles `<set-method>PUT</set-method>`.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &[])?;
        let t = attrs::text_template(el)?;
        if let Some(lit) = t.literal() {
            if !is_method(lit.trim()) {
                return Err(PolicyError::at(
                    el,
                    format!("'{}' is not an HTTP method", lit.trim()),
                ));
            }
        }
        Ok(SetMethod(t))
    }

    /// Sets the request method.
    pub fn run(&self, ctx: &mut Context) -> Result<(), Failure> {
        ctx.request.method = self.compute(ctx)?;
        Ok(())
    }

    /// The method, checked.
    pub fn compute(&self, ctx: &Context) -> Result<String, Failure> {
        let m = eval(&self.0, ctx)?;
        let m = m.trim();
        if !is_method(m) {
            return Err(Failure::new(
                "InvalidMethod",
                format!("'{m}' is not an HTTP method"),
            ));
        }
        Ok(m.to_string())
    }
}

fn is_method(m: &str) -> bool {
    !m.is_empty() && m.bytes().all(is_token_byte)
}

/// `set-body`.
#[derive(Debug, Clone)]
pub struct SetBody {
    /// The new body.
    pub body: Template,
    /// Request or response.
    pub target: Target,
    /// The body as a Liquid template (`template="liquid"`), rendered instead of `body`.
    pub liquid: Option<super::liquid::LiquidTemplate>,
}

impl SetBody {
    /// Compiles `<set-body>text or expression</set-body>`.
    pub fn compile(el: &Element, section: SectionKind) -> Result<Self, PolicyError> {
        attrs::only(el, &["template", "xsi-nil", "parse-date"])?;
        let liquid = match el.attr("template").map(str::trim) {
            None | Some("none") => None,
            Some("liquid") => {
                // XML written inside a Liquid template is the template's text,
                // not policy elements.
                el.mark_all_read();
                Some(super::liquid::LiquidTemplate::compile(el)?)
            }
            Some(t) => {
                return Err(PolicyError::at(
                    el,
                    format!("template must be liquid, not '{t}'"),
                ))
            }
        };
        if let Some(v) = el.attr("xsi-nil") {
            if !matches!(v.trim(), "blank" | "null") {
                return Err(PolicyError::at(
                    el,
                    format!("xsi-nil must be blank or null, not '{v}'"),
                ));
            }
        }
        attrs::boolean(el, "parse-date", true)?;
        let body = match liquid {
            // The text is the template's, not an expression.
            Some(_) => Template::Literal("".into()),
            None => attrs::text_template(el)?,
        };
        Ok(SetBody {
            body,
            target: Target::of(section),
            liquid,
        })
    }

    /// The new body's text: the template rendered, or the value evaluated.
    pub fn text(&self, ctx: &Context) -> Result<String, Failure> {
        match &self.liquid {
            Some(l) => l.render(ctx, self.target),
            None => eval(&self.body, ctx),
        }
    }

    /// Replaces the body (and drops a stale Content-Length; framing is recomputed).
    pub fn run(&self, ctx: &mut Context) -> Result<(), Failure> {
        let body = self.text(ctx)?;
        set_body(ctx, self.target, body.into_bytes());
        Ok(())
    }
}

/// Replaces the target's body.
pub fn set_body(ctx: &mut Context, target: Target, body: Vec<u8>) {
    match target {
        Target::Request => {
            ctx.request.body = Some(body.into());
            ctx.request.headers.remove("content-length");
            ctx.request.headers.remove("transfer-encoding");
        }
        Target::Response => {
            let resp = ctx
                .response
                .get_or_insert_with(|| super::context::Response {
                    status: 200,
                    reason: "OK".into(),
                    ..Default::default()
                });
            resp.body = Some(body.into());
            resp.headers.remove("content-length");
            resp.headers.remove("transfer-encoding");
        }
    }
}

/// `find-and-replace`.
#[derive(Debug, Clone)]
pub struct FindAndReplace {
    /// Text to find.
    pub from: Template,
    /// Replacement.
    pub to: Template,
    /// Request or response body.
    pub target: Target,
}

impl FindAndReplace {
    /// Compiles `<find-and-replace from to />`.
    pub fn compile(el: &Element, section: SectionKind) -> Result<Self, PolicyError> {
        attrs::only(el, &["from", "to"])?;
        Ok(FindAndReplace {
            from: attrs::required_template(el, "from")?,
            to: attrs::required_template(el, "to")?,
            target: Target::of(section),
        })
    }

    /// Replaces every occurrence in the body.
    pub fn run(&self, ctx: &mut Context) -> Result<(), Failure> {
        let from = eval(&self.from, ctx)?;
        let to = eval(&self.to, ctx)?;
        if from.is_empty() {
            return Ok(());
        }
        let body = match self.target {
            Target::Request => ctx.request.body.clone(),
            Target::Response => ctx.response.as_ref().and_then(|r| r.body.clone()),
        };
        let Some(body) = body else { return Ok(()) };
        let text = String::from_utf8_lossy(&body);
        if !text.contains(from.as_str()) {
            return Ok(());
        }
        let replaced = text.replace(from.as_str(), &to);
        set_body(ctx, self.target, replaced.into_bytes());
        Ok(())
    }
}

/// `set-backend-service`.
#[derive(Debug, Clone)]
pub enum SetBackendService {
    /// `base-url`: a literal URL checked at compile time.
    Url(Arc<ServiceUrl>),
    /// `base-url` from an expression, parsed per request.
    Expr(Template),
    /// `backend-id` of a configured backend.
    Backend(String),
}

impl SetBackendService {
    /// Compiles `<set-backend-service base-url | backend-id />`.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &[
                "base-url",
                "backend-id",
                "sf-partition-key",
                "sf-replica-type",
                "sf-resolve-condition",
                "sf-service-instance-name",
                "sf-listener-name",
            ],
        )?;
        if el.attrs.iter().any(|a| a.name.starts_with("sf-")) {
            return Err(PolicyError::at(
                el,
                "Service Fabric backends (sf-* attributes) are not supported",
            ));
        }
        match (el.attr("base-url"), el.attr("backend-id")) {
            (Some(_), Some(_)) => Err(PolicyError::at(
                el,
                "give either base-url or backend-id, not both",
            )),
            (Some(_), None) => {
                let t = attrs::required_template(el, "base-url")?;
                match t.literal() {
                    Some(lit) => ServiceUrl::parse(lit.trim())
                        .map(|u| SetBackendService::Url(Arc::new(u)))
                        .map_err(|e| PolicyError::at(el, format!("base-url: {e}"))),
                    None => Ok(SetBackendService::Expr(t)),
                }
            }
            (None, Some(id)) => Ok(SetBackendService::Backend(id.trim().to_string())),
            (None, None) => Err(PolicyError::at(el, "base-url or backend-id is required")),
        }
    }
}

/// Points the request URL at a new backend base URL, keeping the path after the
/// old base path.
pub fn retarget(ctx: &mut Context, service: &ServiceUrl) {
    let old_base = ctx.request.base_path.trim_end_matches('/');
    let url: &mut Url = &mut ctx.request.url;
    let rest = url
        .path
        .strip_prefix(old_base)
        .unwrap_or(&url.path)
        .to_string();
    url.scheme = service.scheme.as_str().to_string();
    url.host = service.host.to_string();
    url.port = service.port;
    url.path = format!(
        "{}{}",
        service.base_path,
        if rest.is_empty() && service.base_path.is_empty() {
            "/"
        } else {
            &rest
        }
    );
    ctx.request.base_path = service.base_path.to_string();
}

/// `set-variable`.
#[derive(Debug, Clone)]
pub struct SetVariable {
    /// Variable name.
    pub name: String,
    /// Value (a literal is a string).
    pub value: Template,
}

impl SetVariable {
    /// Compiles `<set-variable name value />`.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["name", "value"])?;
        Ok(SetVariable {
            name: attrs::required(el, "name")?.to_string(),
            value: attrs::required_template(el, "value")?,
        })
    }

    /// Stores the value in `context.Variables`.
    pub fn run(&self, ctx: &mut Context) -> Result<(), Failure> {
        let v = self.value.eval(ctx).map_err(expr_failure)?;
        ctx.variables.insert(self.name.clone(), v);
        Ok(())
    }
}

/// `authentication-basic`.
#[derive(Debug, Clone)]
pub struct AuthenticationBasic {
    /// User name.
    pub username: Template,
    /// Password.
    pub password: Template,
}

impl AuthenticationBasic {
    /// Compiles `<authentication-basic username password />`.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["username", "password"])?;
        Ok(AuthenticationBasic {
            username: attrs::required_template(el, "username")?,
            password: attrs::required_template(el, "password")?,
        })
    }

    /// Sets the request's Authorization header.
    pub fn run(&self, ctx: &mut Context) -> Result<(), Failure> {
        let value = self.compute(ctx)?;
        ctx.request.headers.set("Authorization", value);
        Ok(())
    }

    /// The Authorization header value.
    pub fn compute(&self, ctx: &Context) -> Result<String, Failure> {
        let user = eval(&self.username, ctx)?;
        let pass = eval(&self.password, ctx)?;
        let token = crate::expr::encoding::base64_encode(format!("{user}:{pass}").as_bytes());
        Ok(format!("Basic {token}"))
    }
}
