//! Policy documents to `Document`s: sections, `<base />`, control flow,
//! fragments and `{{named values}}`.

use std::collections::HashMap;
use std::time::Duration;

use super::actions::{self, Action};
use super::attrs;
use super::auth_cert::CertRef;
use super::error::PolicyError;
use super::program::{
    Document, Level, Needs, Op, Origin, RefKind, Reference, RetrySpec, Section, SectionKind,
};
use super::transform::SetBackendService;
use super::xml::{self, Element, Node, Pos};
use crate::expr::Expr;

/// Fragments deeper than this are refused (a fragment including itself, for one).
const MAX_FRAGMENT_DEPTH: usize = 8;

/// What a document may refer to: named values and fragments.
#[derive(Debug, Default)]
pub struct CompileEnv<'a> {
    /// `{{name}}` → (value, secret).
    pub named_values: HashMap<&'a str, (&'a str, bool)>,
    /// Fragment id → fragment XML.
    pub fragments: HashMap<&'a str, &'a str>,
}

impl CompileEnv<'_> {
    /// Replaces secret named values in an error message, so compile errors can be
    /// shown and logged (also those found after compiling, such as a backend
    /// named through a secret value that does not exist).
    pub fn redact(&self, mut err: PolicyError) -> PolicyError {
        for (value, secret) in self.named_values.values() {
            if *secret && value.len() >= 3 {
                err.message = err.message.replace(value, "***");
            }
        }
        err
    }
}

/// Compiles a `<policies>` document of scope `level`.
pub fn compile_document(
    src: &str,
    level: Level,
    env: &CompileEnv<'_>,
) -> Result<Document, PolicyError> {
    compile_inner(src, level, env).map_err(|e| env.redact(e))
}

fn compile_inner(src: &str, level: Level, env: &CompileEnv<'_>) -> Result<Document, PolicyError> {
    let mut root = xml::parse(src)?;
    if root.name != "policies" {
        return Err(PolicyError::at(
            &root,
            format!("the root element must be <policies>, not <{}>", root.name),
        ));
    }
    let mut named = Vec::new();
    substitute(&mut root, env, &mut named)?;
    let mut b = Builder {
        env,
        origins: Vec::new(),
        slots: 0,
        needs: Needs::default(),
        fragment_stack: Vec::new(),
        include_pos: None,
        references: Vec::new(),
    };
    b.note_named(named);
    let mut sections: [Option<Section>; 4] = Default::default();
    for el in root.elements() {
        let Some(kind) = SectionKind::ALL.into_iter().find(|k| k.name() == el.name) else {
            return Err(PolicyError::at(
                el,
                format!("unexpected element <{}>: a policy document has <inbound>, <backend>, <outbound> and <on-error>", el.name),
            ));
        };
        if sections[kind as usize].is_some() {
            return Err(PolicyError::at(el, format!("<{}> appears twice", el.name)));
        }
        attrs::only(el, &[])?;
        let mut ops = Vec::new();
        b.block(el, kind, true, "", &mut ops)?;
        sections[kind as usize] = Some(Section { ops });
    }
    // A `<base />` can only be where APIM allows it: directly in a section.
    Ok(Document {
        level,
        sections,
        origins: b.origins,
        needs: b.needs,
        slots: b.slots,
        references: b.references,
    })
}

/// A `{{name}}` found by [`substitute`]: the name, the element and its position.
type NamedUse = (String, String, Pos);

/// Replaces `{{name}}` in attribute values and text with named values, noting
/// each name used in `used`.
fn substitute(
    el: &mut Element,
    env: &CompileEnv<'_>,
    used: &mut Vec<NamedUse>,
) -> Result<(), PolicyError> {
    substitute_in(el, env, used, false)
}

/// As [`substitute`]; `liquid`: inside `<set-body template="liquid">`, where
/// `{{body.x}}` is Liquid's, so only names that are defined named values are
/// replaced and the rest is left to the template.
fn substitute_in(
    el: &mut Element,
    env: &CompileEnv<'_>,
    used: &mut Vec<NamedUse>,
    liquid: bool,
) -> Result<(), PolicyError> {
    let liquid =
        liquid || (el.name == "set-body" && el.attr("template").map(str::trim) == Some("liquid"));
    let pos = el.pos;
    let name = el.name.clone();
    let fail = |msg: String| PolicyError {
        pos,
        policy: name.clone(),
        message: msg,
    };
    let mut names = Vec::new();
    for a in &mut el.attrs {
        if a.value.contains("{{") {
            a.value = replace_named(&a.value, env, &mut names, liquid).map_err(&fail)?;
        }
    }
    for child in &mut el.children {
        match child {
            Node::Element(e) => substitute_in(e, env, used, liquid)?,
            Node::Text(t) if t.contains("{{") => {
                *t = replace_named(t, env, &mut names, liquid).map_err(&fail)?;
            }
            Node::Text(_) => {}
        }
    }
    used.extend(names.into_iter().map(|n| (n, name.clone(), pos)));
    Ok(())
}

fn replace_named(
    s: &str,
    env: &CompileEnv<'_>,
    names: &mut Vec<String>,
    liquid: bool,
) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else {
            break;
        };
        let name = rest[open + 2..open + 2 + close].trim();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        out.push_str(&rest[..open]);
        let valid = valid && (!liquid || env.named_values.contains_key(name));
        if valid {
            let (value, _) = env
                .named_values
                .get(name)
                .ok_or_else(|| format!("named value '{name}' is not defined"))?;
            out.push_str(value);
            names.push(name.to_string());
        } else {
            // Not a named value reference (e.g. `{{` in a JSON body): keep it.
            out.push_str(&rest[open..open + 4 + close]);
        }
        rest = &rest[open + 4 + close..];
    }
    out.push_str(rest);
    Ok(out)
}

struct Builder<'e, 'a> {
    env: &'e CompileEnv<'a>,
    origins: Vec<Origin>,
    slots: u16,
    needs: Needs,
    fragment_stack: Vec<String>,
    /// Where the outermost `<include-fragment>` being compiled is in the document.
    include_pos: Option<Pos>,
    references: Vec<Reference>,
}

impl Builder<'_, '_> {
    /// Notes a reference made by element `policy` at `pos` of the current text (the
    /// document, or the innermost fragment being included).
    fn note_ref(&mut self, kind: RefKind, id: &str, policy: &str, pos: Pos) {
        let (pos, fragment) = match (self.fragment_stack.last(), self.include_pos) {
            (Some(f), Some(at)) => (at, Some((f.clone(), pos))),
            _ => (pos, None),
        };
        self.references.push(Reference {
            kind,
            id: id.to_string(),
            policy: policy.to_string(),
            pos,
            fragment,
        });
    }

    /// Notes the certificate an `authentication-certificate` (on its own or
    /// inside `send-request`) names by a literal, to be checked at load time.
    fn note_certificate_ref(&mut self, el: &Element, action: &Action) {
        let (cert, at) = match action {
            Action::AuthenticationCertificate(c) => (c, el),
            Action::Send(s) => match (&s.certificate, el.child("authentication-certificate")) {
                (Some(c), Some(child)) => (c, child),
                _ => return,
            },
            _ => return,
        };
        let (kind, id) = match cert.static_ref() {
            Some(CertRef::Id(id)) => (RefKind::Certificate, id),
            Some(CertRef::Thumbprint(t)) => (RefKind::CertificateThumbprint, t),
            None => return,
        };
        let id = id.to_string();
        self.note_ref(kind, &id, "authentication-certificate", at.pos);
    }

    fn note_named(&mut self, named: Vec<NamedUse>) {
        for (name, policy, pos) in named {
            self.note_ref(RefKind::NamedValue, &name, &policy, pos);
        }
    }

    fn origin(&mut self, el: &Element, path: &str) -> u32 {
        self.origins.push(Origin {
            policy: el.name.clone(),
            path: path.to_string(),
            pos: el.pos,
            id: el.attr("id").unwrap_or_default().to_string(),
        });
        u32::try_from(self.origins.len() - 1).unwrap_or(u32::MAX)
    }

    fn next_slot(&mut self, el: &Element) -> Result<u16, PolicyError> {
        let s = self.slots;
        self.slots = s
            .checked_add(1)
            .ok_or_else(|| PolicyError::at(el, "too many retry and limit-concurrency blocks"))?;
        Ok(s)
    }

    /// Compiles the children of `parent` into `ops`.
    fn block(
        &mut self,
        parent: &Element,
        section: SectionKind,
        top: bool,
        prefix: &str,
        ops: &mut Vec<Op>,
    ) -> Result<(), PolicyError> {
        for n in &parent.children {
            if let Node::Text(t) = n {
                if !t.trim().is_empty() {
                    return Err(PolicyError::at(
                        parent,
                        format!("unexpected text '{}' inside <{}>", t.trim(), parent.name),
                    ));
                }
            }
        }
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for el in parent.elements() {
            let n = counts.entry(el.name.as_str()).or_insert(0);
            *n += 1;
            let path = if prefix.is_empty() {
                format!("{}[{}]", el.name, n)
            } else {
                format!("{prefix}\\{}[{}]", el.name, n)
            };
            self.element(el, section, top, &path, ops)?;
        }
        Ok(())
    }

    fn element(
        &mut self,
        el: &Element,
        section: SectionKind,
        top: bool,
        path: &str,
        ops: &mut Vec<Op>,
    ) -> Result<(), PolicyError> {
        match el.name.as_str() {
            "base" => {
                if !top {
                    return Err(PolicyError::at(
                        el,
                        "<base /> must be a direct child of a section",
                    ));
                }
                attrs::only(el, &[])?;
                ops.push(Op::Base);
            }
            "choose" => self.choose(el, section, path, ops)?,
            "retry" => {
                attrs::only(
                    el,
                    &[
                        "condition",
                        "count",
                        "interval",
                        "max-interval",
                        "delta",
                        "first-fast-retry",
                    ],
                )?;
                let slot = self.next_slot(el)?;
                let cond = attrs::required(el, "condition")?;
                let condition = Expr::compile(cond.trim())
                    .map_err(|e| PolicyError::expr(el, "attribute 'condition'", &e))?;
                let count = attrs::parsed::<u32>(el, "count")?
                    .ok_or_else(|| PolicyError::at(el, "attribute 'count' is required"))?;
                let secs = |name: &str| -> Result<Option<Duration>, PolicyError> {
                    Ok(attrs::parsed::<u64>(el, name)?.map(Duration::from_secs))
                };
                let interval = secs("interval")?
                    .ok_or_else(|| PolicyError::at(el, "attribute 'interval' is required"))?;
                let spec = RetrySpec {
                    condition,
                    count,
                    interval,
                    max_interval: secs("max-interval")?,
                    delta: secs("delta")?,
                    first_fast_retry: attrs::boolean(el, "first-fast-retry", false)?,
                };
                let origin = self.origin(el, path);
                let start = index(ops.len());
                ops.push(Op::RetryStart(slot));
                let before = ops.len();
                self.block(el, section, false, path, ops)?;
                if ops[before..]
                    .iter()
                    .any(|op| matches!(op, Op::Act(a, _) if matches!(**a, Action::Forward(_))))
                {
                    // Sending the request again needs its body; judging the
                    // attempt may need the response's.
                    self.needs.request_body = true;
                    self.needs.response_body = true;
                }
                ops.push(Op::RetryEnd {
                    slot,
                    start,
                    spec: Box::new(spec),
                    origin,
                });
            }
            "wait" => {
                // send-requests only: in flight at once (`wait.rs`); otherwise the
                // children run one after the other.
                let any = super::wait::check(el)?;
                // Compiled in place: jump targets are indices into `ops`.
                let start = ops.len();
                self.block(el, section, false, path, ops)?;
                if let Some(action) = super::wait::parallel(ops, start, any) {
                    let origin = self.origin(el, path);
                    ops.push(Op::Act(Box::new(action), origin));
                }
            }
            "limit-concurrency" => {
                let spec = super::concurrency::LimitConcurrency::from_element(el)?;
                let slot = self.next_slot(el)?;
                let origin = self.origin(el, path);
                ops.push(Op::Act(
                    Box::new(Action::LimitConcurrency(spec, slot)),
                    origin,
                ));
                self.block(el, section, false, path, ops)?;
                ops.push(Op::ReleaseConcurrency(slot));
            }
            "include-fragment" => {
                attrs::only(el, &["fragment-id"])?;
                let id = attrs::required(el, "fragment-id")?.trim().to_string();
                self.note_ref(RefKind::Fragment, &id, "include-fragment", el.pos);
                if self.fragment_stack.contains(&id)
                    || self.fragment_stack.len() >= MAX_FRAGMENT_DEPTH
                {
                    return Err(PolicyError::at(
                        el,
                        format!("fragment '{id}' includes itself"),
                    ));
                }
                let src = *self.env.fragments.get(id.as_str()).ok_or_else(|| {
                    PolicyError::at(el, format!("policy fragment '{id}' is not defined"))
                })?;
                let mut frag = xml::parse(src).map_err(|e| {
                    PolicyError::at(el, format!("fragment '{id}' at {}: {}", e.pos, e.message))
                })?;
                if frag.name != "fragment" {
                    return Err(PolicyError::at(
                        el,
                        format!("fragment '{id}': the root element must be <fragment>"),
                    ));
                }
                let mut named = Vec::new();
                substitute(&mut frag, self.env, &mut named).map_err(|e| {
                    PolicyError::at(el, format!("fragment '{id}' at {}: {}", e.pos, e.message))
                })?;
                let outermost = self.fragment_stack.is_empty();
                if outermost {
                    self.include_pos = Some(el.pos);
                }
                self.fragment_stack.push(id.clone());
                self.note_named(named);
                let r = self.block(&frag, section, false, path, ops);
                self.fragment_stack.pop();
                if outermost {
                    self.include_pos = None;
                }
                r.map_err(|e| {
                    PolicyError::at(
                        el,
                        format!(
                            "in fragment '{id}' at {}: <{}>: {}",
                            e.pos, e.policy, e.message
                        ),
                    )
                })?;
            }
            _ => {
                let action = actions::compile(el, section)?;
                attrs::no_unread_children(el)?;
                if let Action::SetBackendService(SetBackendService::Backend(id)) = &action {
                    self.note_ref(RefKind::Backend, id, &el.name, el.pos);
                }
                self.note_certificate_ref(el, &action);
                self.note_needs(el, &action, section);
                let origin = self.origin(el, path);
                ops.push(Op::Act(Box::new(action), origin));
            }
        }
        Ok(())
    }

    fn choose(
        &mut self,
        el: &Element,
        section: SectionKind,
        path: &str,
        ops: &mut Vec<Op>,
    ) -> Result<(), PolicyError> {
        attrs::only(el, &[])?;
        attrs::only_children(el, &["when", "otherwise"])?;
        let mut end_jumps = Vec::new();
        let mut seen_otherwise = false;
        let mut whens = 0;
        for child in el.elements() {
            if seen_otherwise {
                return Err(PolicyError::at(
                    child,
                    "<otherwise> must be the last child of <choose>",
                ));
            }
            match child.name.as_str() {
                "when" => {
                    whens += 1;
                    attrs::only(child, &["condition"])?;
                    let cond = attrs::required(child, "condition")?;
                    let expr = Expr::compile(cond.trim())
                        .map_err(|e| PolicyError::expr(child, "attribute 'condition'", &e))?;
                    let origin = self.origin(child, &format!("{path}\\when[{whens}]"));
                    let at = ops.len();
                    ops.push(Op::JumpUnless(expr, 0, origin));
                    self.block(
                        child,
                        section,
                        false,
                        &format!("{path}\\when[{whens}]"),
                        ops,
                    )?;
                    end_jumps.push(ops.len());
                    ops.push(Op::Jump(0));
                    let next = index(ops.len());
                    if let Op::JumpUnless(_, target, _) = &mut ops[at] {
                        *target = next;
                    }
                }
                _ => {
                    seen_otherwise = true;
                    attrs::only(child, &[])?;
                    self.block(child, section, false, &format!("{path}\\otherwise"), ops)?;
                }
            }
        }
        if whens == 0 {
            return Err(PolicyError::at(el, "<choose> needs at least one <when>"));
        }
        let end = index(ops.len());
        for j in end_jumps {
            ops[j] = Op::Jump(end);
        }
        Ok(())
    }

    fn note_needs(&mut self, el: &Element, action: &Action, section: SectionKind) {
        let on_request = matches!(section, SectionKind::Inbound | SectionKind::Backend);
        let structural = matches!(
            action,
            Action::SetBody(_)
                | Action::FindAndReplace(_)
                | Action::JsonToXml(_)
                | Action::XmlToJson(_)
                | Action::XslTransform(_)
        );
        if let Action::Validate(v) = action {
            // validate-content reads the body of the side it validates.
            let (request, response) = v.reads_body();
            self.needs.request_body |= request;
            self.needs.response_body |= response;
        }
        if matches!(action, Action::CacheStore(_)) {
            // A stored response needs its body.
            self.needs.response_body = true;
        }
        // Token counts are in the response's `usage`; estimates read the prompt.
        if let Action::LlmTokenLimit(l) = action {
            self.needs.response_body = true;
            self.needs.request_body |= l.estimate_prompt_tokens;
        }
        if matches!(action, Action::LlmEmitTokenMetric(_)) {
            self.needs.response_body = true;
            self.needs.request_body = true;
        }
        let text = element_text(el);
        if on_request && (structural || text.contains("Request.Body")) {
            self.needs.request_body = true;
        }
        if let Action::Send(s) = action {
            // A Liquid body of its own reads the request's (`body`).
            if s.copy || s.body.as_ref().is_some_and(|b| b.liquid.is_some()) {
                self.needs.request_body = true;
            }
        }
        if !on_request && (structural || text.contains("Response.Body")) {
            self.needs.response_body = true;
        }
        if on_request && text.contains("Response.Body") {
            // Backend-section policies after forward-request read the response.
            self.needs.response_body = true;
        }
    }
}

/// Every attribute value and text inside `el`, for cheap "does it mention" checks.
fn element_text(el: &Element) -> String {
    let mut out = String::new();
    fn walk(el: &Element, out: &mut String) {
        for a in &el.attrs {
            out.push_str(&a.value);
            out.push('\n');
        }
        for c in &el.children {
            match c {
                Node::Element(e) => walk(e, out),
                Node::Text(t) => out.push_str(t),
            }
        }
    }
    walk(el, &mut out);
    out
}

fn index(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
