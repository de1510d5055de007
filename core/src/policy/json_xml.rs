//! `json-to-xml` and `xml-to-json`: when they convert (APIM's `apply` and
//! `consider-accept-header`), and what they leave in the message (the new
//! body, its Content-Type; framing is recomputed by `set_body`).

pub mod to_json;
pub mod to_xml;

use super::attrs;
use super::context::{Context, Headers};
use super::error::{Failure, PolicyError};
use super::program::SectionKind;
use super::transform::{eval, set_body, Target};
use super::xml::Element;
use crate::expr::Template;

pub use to_json::{xml_to_json, Kind, ToJson};
pub use to_xml::{json_to_xml, ToXml};

/// A body that cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The body is not the JSON `json-to-xml` needs (or has no XML form).
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    /// The body is not the well-formed XML `xml-to-json` needs.
    #[error("the body is not well-formed XML: {0}")]
    Xml(String),
}

/// The Content-Type `json-to-xml` sets.
pub const XML_CONTENT_TYPE: &str = "application/xml";
/// The Content-Type `xml-to-json` sets.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// A setting that is a literal (checked at compile time) or an expression
/// (evaluated and checked per request).
#[derive(Debug, Clone)]
enum Setting<T> {
    Fixed(T),
    Expr(Template),
}

impl<T: Copy> Setting<T> {
    fn compile(
        el: &Element,
        name: &str,
        default: Option<T>,
        parse: fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<Self, PolicyError> {
        let Some(t) = attrs::template(el, name)? else {
            return default
                .map(Setting::Fixed)
                .ok_or_else(|| PolicyError::at(el, format!("attribute '{name}' is required")));
        };
        match t.literal() {
            Some(lit) => parse(lit.trim()).map(Setting::Fixed).ok_or_else(|| {
                PolicyError::at(
                    el,
                    format!("attribute '{name}' must be {expected}, not '{lit}'"),
                )
            }),
            None => Ok(Setting::Expr(t)),
        }
    }

    fn get(&self, ctx: &Context, name: &str, parse: fn(&str) -> Option<T>) -> Result<T, Failure> {
        match self {
            Setting::Fixed(v) => Ok(*v),
            Setting::Expr(t) => {
                let s = eval(t, ctx)?;
                parse(s.trim()).ok_or_else(|| {
                    Failure::new(
                        "ExpressionValueEvaluationFailure",
                        format!("attribute '{name}' evaluated to an invalid value '{s}'"),
                    )
                })
            }
        }
    }
}

fn boolean(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// `apply`: convert always, or only a body whose Content-Type says it is the
/// source format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Apply {
    Always,
    ContentType,
}

fn apply_json(s: &str) -> Option<Apply> {
    match s {
        "always" => Some(Apply::Always),
        "content-type-json" | "content-type-json-only" => Some(Apply::ContentType),
        _ => None,
    }
}

fn apply_xml(s: &str) -> Option<Apply> {
    match s {
        "always" => Some(Apply::Always),
        "content-type-xml" | "content-type-xml-only" => Some(Apply::ContentType),
        _ => None,
    }
}

fn kind(s: &str) -> Option<Kind> {
    match s {
        "direct" => Some(Kind::Direct),
        "javascript-friendly" => Some(Kind::JavascriptFriendly),
        _ => None,
    }
}

/// The media types of a Content-Type or Accept value, lower case, without
/// parameters.
fn media_types(value: &str) -> impl Iterator<Item = String> + '_ {
    value.split(',').map(|part| {
        part.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

/// `application/json`, `text/json` or any `+json` type.
pub fn is_json(media: &str) -> bool {
    media == "application/json" || media == "text/json" || media.ends_with("+json")
}

/// `application/xml`, `text/xml` or any `+xml` type.
pub fn is_xml(media: &str) -> bool {
    media == "application/xml" || media == "text/xml" || media.ends_with("+xml")
}

fn headers_of(ctx: &Context, target: Target) -> Option<&Headers> {
    match target {
        Target::Request => Some(&ctx.request.headers),
        Target::Response => ctx.response.as_ref().map(|r| &r.headers),
    }
}

/// When a conversion applies: the message's Content-Type is the source format
/// (unless `apply` is `always`) and, when asked to consider it, the client's
/// Accept names the result format.
struct Conversion<'a> {
    apply: &'a Setting<Apply>,
    parse_apply: fn(&str) -> Option<Apply>,
    consider_accept: &'a Setting<bool>,
    source: fn(&str) -> bool,
    result: fn(&str) -> bool,
}

impl Conversion<'_> {
    /// The body to convert, or `None` when there is none or the conversion
    /// does not apply to this message.
    fn body(&self, ctx: &Context, target: Target) -> Result<Option<bytes::Bytes>, Failure> {
        let Some(body) = body_of(ctx, target).filter(|b| !b.is_empty()) else {
            return Ok(None);
        };
        if self.apply.get(ctx, "apply", self.parse_apply)? == Apply::ContentType
            && !content_type_is(ctx, target, self.source)
        {
            return Ok(None);
        }
        if self
            .consider_accept
            .get(ctx, "consider-accept-header", boolean)?
            && !accept_asks(ctx, self.result)
        {
            return Ok(None);
        }
        Ok(Some(body))
    }
}

fn body_of(ctx: &Context, target: Target) -> Option<bytes::Bytes> {
    match target {
        Target::Request => ctx.request.body.clone(),
        Target::Response => ctx.response.as_ref().and_then(|r| r.body.clone()),
    }
}

/// Whether the message's Content-Type is one `is` accepts.
fn content_type_is(ctx: &Context, target: Target, is: fn(&str) -> bool) -> bool {
    headers_of(ctx, target)
        .and_then(|h| h.get("content-type"))
        .is_some_and(|v| media_types(v).any(|m| is(&m)))
}

/// Whether the client's Accept header asks for a type `is` accepts (`*/*`
/// alone does not: APIM converts only when the format is asked for by name).
fn accept_asks(ctx: &Context, is: fn(&str) -> bool) -> bool {
    ctx.request
        .headers
        .get_joined("accept")
        .is_some_and(|v| media_types(&v).any(|m| is(&m)))
}

/// Puts the converted body and its Content-Type in the message.
fn replace(ctx: &mut Context, target: Target, body: String, content_type: &str) {
    set_body(ctx, target, body.into_bytes());
    match target {
        Target::Request => ctx.request.headers.set("content-type", content_type),
        Target::Response => {
            if let Some(r) = ctx.response.as_mut() {
                r.headers.set("content-type", content_type);
            }
        }
    }
}

/// `json-to-xml`.
#[derive(Debug, Clone)]
pub struct JsonToXml {
    apply: Setting<Apply>,
    consider_accept: Setting<bool>,
    parse_date: bool,
    separator: Option<Template>,
    namespace_prefix: Option<Template>,
    attribute_block: Option<Template>,
    target: Target,
}

impl JsonToXml {
    /// Compiles `<json-to-xml apply consider-accept-header parse-date
    /// namespace-separator namespace-prefix attribute-block-name />`.
    pub fn compile(el: &Element, section: SectionKind) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &[
                "apply",
                "consider-accept-header",
                "parse-date",
                "namespace-separator",
                "namespace-prefix",
                "attribute-block-name",
            ],
        )?;
        attrs::only_children(el, &[])?;
        let separator = attrs::template(el, "namespace-separator")?;
        if let Some(sep) = separator.as_ref().and_then(Template::literal) {
            if sep.chars().count() != 1 {
                return Err(PolicyError::at(
                    el,
                    format!("attribute 'namespace-separator' must be one character, not '{sep}'"),
                ));
            }
        }
        Ok(JsonToXml {
            apply: Setting::compile(el, "apply", None, apply_json, "always or content-type-json")?,
            consider_accept: Setting::compile(
                el,
                "consider-accept-header",
                Some(true),
                boolean,
                "true or false",
            )?,
            // APIM: policy expressions aren't allowed in parse-date.
            parse_date: attrs::boolean(el, "parse-date", true)?,
            separator,
            namespace_prefix: attrs::template(el, "namespace-prefix")?,
            attribute_block: attrs::template(el, "attribute-block-name")?,
            target: Target::of(section),
        })
    }

    /// Converts the body when `apply` and the Accept header say so.
    pub fn run(&self, ctx: &mut Context) -> Result<(), Failure> {
        let wanted = Conversion {
            apply: &self.apply,
            parse_apply: apply_json,
            consider_accept: &self.consider_accept,
            source: is_json,
            result: is_xml,
        };
        let Some(body) = wanted.body(ctx, self.target)? else {
            return Ok(());
        };
        let opt = |t: &Option<Template>, ctx: &Context| -> Result<Option<String>, Failure> {
            t.as_ref().map(|t| eval(t, ctx)).transpose()
        };
        let separator = opt(&self.separator, ctx)?.unwrap_or_else(|| "_".into());
        if separator.chars().count() > 1 {
            return Err(Failure::new(
                "ExpressionValueEvaluationFailure",
                format!("namespace-separator must be one character, not '{separator}'"),
            ));
        }
        let prefix = opt(&self.namespace_prefix, ctx)?;
        let block = opt(&self.attribute_block, ctx)?;
        let opts = ToXml {
            parse_date: self.parse_date,
            separator: &separator,
            namespace_prefix: prefix.as_deref().filter(|p| !p.is_empty()),
            attribute_block: block.as_deref().filter(|b| !b.is_empty()),
        };
        let xml = json_to_xml(&body, &opts)
            .map_err(|e| Failure::new("JsonToXmlConversionFailed", e.to_string()))?;
        replace(ctx, self.target, xml, XML_CONTENT_TYPE);
        Ok(())
    }
}

/// `xml-to-json`.
#[derive(Debug, Clone)]
pub struct XmlToJson {
    kind: Setting<Kind>,
    apply: Setting<Apply>,
    consider_accept: Setting<bool>,
    always_array: Setting<bool>,
    target: Target,
}

impl XmlToJson {
    /// Compiles `<xml-to-json kind apply consider-accept-header
    /// always-array-child-elements />`.
    pub fn compile(el: &Element, section: SectionKind) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &[
                "kind",
                "apply",
                "consider-accept-header",
                "always-array-child-elements",
                // The name an older version of APIM's page used.
                "always-array-children",
            ],
        )?;
        attrs::only_children(el, &[])?;
        let array_attr = if el.attr("always-array-child-elements").is_some() {
            "always-array-child-elements"
        } else {
            "always-array-children"
        };
        Ok(XmlToJson {
            kind: Setting::compile(el, "kind", None, kind, "javascript-friendly or direct")?,
            apply: Setting::compile(el, "apply", None, apply_xml, "always or content-type-xml")?,
            consider_accept: Setting::compile(
                el,
                "consider-accept-header",
                Some(true),
                boolean,
                "true or false",
            )?,
            always_array: Setting::compile(el, array_attr, Some(false), boolean, "true or false")?,
            target: Target::of(section),
        })
    }

    /// Converts the body when `apply` and the Accept header say so.
    pub fn run(&self, ctx: &mut Context) -> Result<(), Failure> {
        let wanted = Conversion {
            apply: &self.apply,
            parse_apply: apply_xml,
            consider_accept: &self.consider_accept,
            source: is_xml,
            result: is_json,
        };
        let Some(body) = wanted.body(ctx, self.target)? else {
            return Ok(());
        };
        let opts = ToJson {
            kind: self.kind.get(ctx, "kind", kind)?,
            always_array: self
                .always_array
                .get(ctx, "always-array-child-elements", boolean)?,
        };
        let json = xml_to_json(&body, &opts)
            .map_err(|e| Failure::new("XmlToJsonConversionFailed", e.to_string()))?;
        replace(ctx, self.target, json, JSON_CONTENT_TYPE);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
