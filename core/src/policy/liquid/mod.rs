//! `set-body template="liquid"`: a Liquid template compiled once per
//! configuration and rendered per request against APIM's `context` and `body`
//! objects.
//!
//! APIM runs DotLiquid in "C# mode": filters are Pascal-cased (`Upcase`,
//! `AtLeast`) and `Date` takes .NET format strings. The `liquid` crate parses
//! and renders; `filters` registers its standard filters under APIM's names
//! and adds the .NET ones; `model` builds the objects a template reads.

mod filters;
mod model;

use std::collections::BTreeSet;
use std::sync::Arc;

use liquid_core::model::{
    KString, KStringCow, KStringRef, ScalarCow, Value as LiquidValue, ValueCow, ValueView,
};
use liquid_core::runtime::RuntimeBuilder;
use liquid_core::{Renderable, Runtime};

use super::context::Context;
use super::error::{Failure, PolicyError};
use super::transform::Target;
use super::xml::{Element, Node};

/// A compiled Liquid template.
#[derive(Clone)]
pub struct LiquidTemplate {
    template: Arc<liquid_core::Template>,
    /// `parse-date` (default true): date strings in the body read as dates.
    parse_date: bool,
}

impl std::fmt::Debug for LiquidTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiquidTemplate").finish_non_exhaustive()
    }
}

impl LiquidTemplate {
    /// Compiles the content of `<set-body template="liquid">` (text and any
    /// XML written inside it, as written). A template that does not parse is
    /// an error naming its line in the policy document.
    pub fn compile(el: &Element) -> Result<LiquidTemplate, PolicyError> {
        let source = inner_source(el);
        let parse_date = super::attrs::boolean(el, "parse-date", true)?;
        let mut t = Self::parse(&source).map_err(|(line, reason)| {
            let mut e = PolicyError::at(el, format!("liquid template line {line}: {reason}"));
            // The text starts on the element's line.
            e.pos.line = e.pos.line.saturating_add(line.saturating_sub(1));
            e
        })?;
        t.parse_date = parse_date;
        Ok(t)
    }

    /// Parses template text; on failure the template's line (1-based) and why.
    pub fn parse(source: &str) -> Result<LiquidTemplate, (u32, String)> {
        match liquid_core::parser::parse(source, &filters::language()) {
            Ok(elements) => Ok(LiquidTemplate {
                template: Arc::new(liquid_core::Template::new(elements)),
                parse_date: true,
            }),
            Err(e) => Err(describe(source, &e.to_string())),
        }
    }

    /// Renders for a request: `context` and `body` of the section's message.
    pub fn render(&self, ctx: &Context, target: Target) -> Result<String, Failure> {
        let globals = model::globals(ctx, target, self.parse_date)?;
        let core = RuntimeBuilder::new().set_globals(&globals).build();
        let runtime = Lenient(&core);
        let mut out = Vec::new();
        self.template
            .render_to(&mut out, &runtime)
            .map_err(|e| Failure::new("LiquidTemplateError", describe_render(&e.to_string())))?;
        // Every input and filter keeps UTF-8; lossy only guards the type.
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// The runtime a template renders with: a name that is not there is `nil`, as
/// in DotLiquid (the crate's own runtime treats it as an error), so
/// `{{ body.optional | Default: "x" }}` works.
struct Lenient<'r>(&'r dyn Runtime);

impl Runtime for Lenient<'_> {
    fn partials(&self) -> &dyn liquid_core::runtime::PartialStore {
        self.0.partials()
    }

    fn name(&self) -> Option<KStringRef<'_>> {
        self.0.name()
    }

    fn roots(&self) -> BTreeSet<KStringCow<'_>> {
        self.0.roots()
    }

    fn try_get(&self, path: &[ScalarCow<'_>]) -> Option<ValueCow<'_>> {
        self.0.try_get(path)
    }

    fn get(&self, path: &[ScalarCow<'_>]) -> liquid_core::Result<ValueCow<'_>> {
        if let Some(v) = self.0.try_get(path) {
            return Ok(v);
        }
        Ok(ValueCow::Owned(
            dictionary_find(self.0, path).unwrap_or(LiquidValue::Nil),
        ))
    }

    fn set_global(&self, name: KString, val: LiquidValue) -> Option<LiquidValue> {
        self.0.set_global(name, val)
    }

    fn set_index(&self, name: KString, val: LiquidValue) -> Option<LiquidValue> {
        self.0.set_index(name, val)
    }

    fn get_index<'a>(&'a self, name: &str) -> Option<ValueCow<'a>> {
        self.0.get_index(name)
    }

    fn registers(&self) -> &liquid_core::runtime::Registers {
        self.0.registers()
    }
}

/// `path` through DotLiquid dictionaries: `context.Request.Headers` (and the
/// other dictionaries of `model`) are lists of `{Key, Value}`, so that
/// `{% for h in context.Request.Headers %}{{h.Key}}` works as in APIM; a
/// name indexes them by `Key`, ignoring case (`Headers.Accept`,
/// `Headers["content-type"]`).
fn dictionary_find(rt: &dyn Runtime, path: &[ScalarCow<'_>]) -> Option<LiquidValue> {
    let root = rt.try_get(path.get(..1)?)?;
    let mut cur: &dyn ValueView = root.as_view();
    for idx in &path[1..] {
        cur = step(cur, idx)?;
    }
    Some(cur.to_value())
}

fn step<'v>(v: &'v dyn ValueView, idx: &ScalarCow<'_>) -> Option<&'v dyn ValueView> {
    if let Some(o) = v.as_object() {
        return o.get(idx.to_kstr().as_str());
    }
    let a = v.as_array()?;
    if let Some(i) = idx.to_integer() {
        return a.get(i);
    }
    let key = idx.to_kstr();
    match key.as_str() {
        "first" => a.first(),
        "last" => a.last(),
        name => a.values().find_map(|e| {
            let o = e.as_object()?;
            let k = o.get("Key")?;
            if k.to_kstr().eq_ignore_ascii_case(name) {
                o.get("Value")
            } else {
                None
            }
        }),
    }
}

/// A render error's first line, with the variable or filter it names.
fn describe_render(msg: &str) -> String {
    let mut out = first_line(msg);
    for l in msg.lines().skip(1) {
        let t = l.trim();
        if let Some(from) = t.strip_prefix("from: ") {
            out.push_str("; in ");
            out.push_str(from);
        } else if t.starts_with("filter=") || t.starts_with("requested") {
            out.push_str("; ");
            out.push_str(t);
        }
    }
    out
}

/// The element's content as written: text, and child elements serialised back
/// to XML (the SOAP envelope of APIM's JSON-to-SOAP example).
fn inner_source(el: &Element) -> String {
    let mut out = String::new();
    for n in &el.children {
        write_node(&mut out, n);
    }
    out
}

fn write_node(out: &mut String, n: &Node) {
    match n {
        Node::Text(t) => {
            if out.is_empty() && t.trim().is_empty() {
                return;
            }
            // Text only: Liquid's own `{% if a < b %}` must stay as written.
            out.push_str(t);
        }
        Node::Element(e) => {
            out.push('<');
            out.push_str(&e.name);
            for a in &e.attrs {
                out.push(' ');
                out.push_str(&a.name);
                out.push_str("=\"");
                out.push_str(&a.value.replace('&', "&amp;").replace('"', "&quot;"));
                out.push('"');
            }
            if e.children.is_empty() {
                out.push_str(" />");
                return;
            }
            out.push('>');
            for c in &e.children {
                write_node(out, c);
            }
            out.push_str("</");
            out.push_str(&e.name);
            out.push('>');
        }
    }
}

/// The line and reason of a `liquid` error message.
fn describe(source: &str, msg: &str) -> (u32, String) {
    let mut line = None;
    let mut reason = None;
    let mut requested = None;
    for l in msg.lines() {
        let t = l.trim();
        if let Some(rest) = t.strip_prefix("--> ") {
            line = rest
                .split(':')
                .next()
                .and_then(|n| n.trim().parse::<u32>().ok());
        } else if let Some(r) = t.strip_prefix("= ") {
            reason = Some(r.to_string());
        } else if let Some(f) = t.strip_prefix("requested filter=") {
            requested = Some(f.to_string());
        }
    }
    if let Some(f) = requested {
        // The crate does not say where; the first line using the filter does.
        let at = source
            .lines()
            .position(|l| {
                l.split('|')
                    .skip(1)
                    .any(|seg| seg.trim_start().split([':', ' ', '}']).next() == Some(f.as_str()))
            })
            .map_or(1, |i| u32::try_from(i + 1).unwrap_or(u32::MAX));
        return (
            at,
            format!("unknown filter '{f}' (APIM's filters are Pascal-cased, e.g. Upcase, AtLeast)"),
        );
    }
    let head = first_line(msg);
    let reason = match reason {
        Some(r) => format!("{head}: {r}"),
        None => head,
    };
    (line.unwrap_or(1), reason)
}

/// The first line of a `liquid` error, without the crate's `liquid: ` prefix.
fn first_line(msg: &str) -> String {
    let l = msg.lines().next().unwrap_or_default();
    l.strip_prefix("liquid: ").unwrap_or(l).trim().to_string()
}

#[cfg(test)]
mod tests;
