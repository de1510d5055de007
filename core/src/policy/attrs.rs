//! Reading policy attributes: required or optional, literal or expression, typed.

use std::str::FromStr;

use super::error::PolicyError;
use super::xml::Element;
use crate::expr::Template;

/// A required attribute's literal value.
pub fn required<'e>(el: &'e Element, name: &str) -> Result<&'e str, PolicyError> {
    el.attr(name)
        .ok_or_else(|| PolicyError::at(el, format!("attribute '{name}' is required")))
}

/// An attribute parsed as a number or other `FromStr` type, with a clear error.
pub fn parsed<T: FromStr>(el: &Element, name: &str) -> Result<Option<T>, PolicyError> {
    match el.attr(name) {
        None => Ok(None),
        Some(v) => v.trim().parse::<T>().map(Some).map_err(|_| {
            PolicyError::at(el, format!("attribute '{name}' has an invalid value '{v}'"))
        }),
    }
}

/// An attribute that must be `true` or `false` (APIM accepts any case).
pub fn boolean(el: &Element, name: &str, default: bool) -> Result<bool, PolicyError> {
    match el.attr(name) {
        None => Ok(default),
        Some(v) if v.trim().eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.trim().eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(PolicyError::at(
            el,
            format!("attribute '{name}' must be true or false, not '{v}'"),
        )),
    }
}

/// An attribute that may hold an expression.
pub fn template(el: &Element, name: &str) -> Result<Option<Template>, PolicyError> {
    match el.attr(name) {
        None => Ok(None),
        Some(v) => Template::compile(v)
            .map(Some)
            .map_err(|e| PolicyError::expr(el, &format!("attribute '{name}'"), &e)),
    }
}

/// A required attribute that may hold an expression.
pub fn required_template(el: &Element, name: &str) -> Result<Template, PolicyError> {
    template(el, name)?
        .ok_or_else(|| PolicyError::at(el, format!("attribute '{name}' is required")))
}

/// The element's text as a template (literal or expression).
pub fn text_template(el: &Element) -> Result<Template, PolicyError> {
    Template::compile(&el.text()).map_err(|e| PolicyError::expr(el, "text", &e))
}

/// Rejects attributes other than `allowed` (and APIM's universal `id`), so a typo
/// is an error instead of a silently ignored setting.
pub fn only(el: &Element, allowed: &[&str]) -> Result<(), PolicyError> {
    for a in &el.attrs {
        if a.name != "id" && !allowed.contains(&a.name.as_str()) {
            return Err(PolicyError::at(
                el,
                format!("unknown attribute '{}'", a.name),
            ));
        }
    }
    Ok(())
}

/// Rejects child elements other than `allowed`.
pub fn only_children(el: &Element, allowed: &[&str]) -> Result<(), PolicyError> {
    for c in el.elements() {
        if !allowed.contains(&c.name.as_str()) {
            return Err(PolicyError::at(
                c,
                format!("unexpected element <{}> inside <{}>", c.name, el.name),
            ));
        }
    }
    Ok(())
}

/// Refuses a child element (at any depth) that compiling policy `el` never looked
/// at: `<set-header><value><frob/></value></set-header>` is an error naming
/// `<frob>`, its line and its parent, never silently ignored. Every policy goes
/// through this after its compile, so no policy has to list what it ignores.
pub fn no_unread_children(el: &Element) -> Result<(), PolicyError> {
    match el.unread() {
        None => Ok(()),
        Some((child, parent)) => Err(PolicyError {
            pos: child.pos,
            policy: el.name.clone(),
            message: format!(
                "unexpected element <{}> inside <{}>",
                child.name, parent.name
            ),
        }),
    }
}

/// A header or variable name a policy reports to (`remaining-calls-header-name`
/// and the like): a literal, not empty, never an expression.
pub fn output_name(el: &Element, a: &str) -> Result<Option<String>, PolicyError> {
    match el.attr(a) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Err(PolicyError::at(
            el,
            format!("attribute '{a}' must not be empty"),
        )),
        Some(v) if v.trim_start().starts_with("@(") || v.trim_start().starts_with("@{") => {
            Err(PolicyError::at(
                el,
                format!("attribute '{a}' does not allow policy expressions"),
            ))
        }
        Some(v) => Ok(Some(v.trim().to_string())),
    }
}
