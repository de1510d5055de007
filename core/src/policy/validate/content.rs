//! `validate-content`: a request's or response's body checked for size,
//! content type, and against the operation's schema for that content type
//! (JSON by JSON Schema; XML and SOAP for being well-formed).

use bytes::Bytes;

use super::contract::{lower_keys, Media, Variant};
use super::{action_attr, Contract, Finding, ValidationAction, INTERNAL_ERROR};
use crate::policy::attrs;
use crate::policy::context::Context;
use crate::policy::error::PolicyError;
use crate::policy::xml::Element;

/// The largest `max-size` accepted (APIM's limit: 4 MB).
pub const MAX_SIZE_LIMIT: u64 = 4 * 1024 * 1024;

/// How a `<content>`'s body is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidateAs {
    /// JSON, against the schema by JSON Schema.
    Json,
    /// XML, for being well-formed.
    Xml,
    /// A SOAP envelope, for being well-formed XML with an `Envelope` root.
    Soap,
}

/// One `<content>` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentRule {
    /// The content type it applies to (lower case); `None`: every type the schema has.
    pub content_type: Option<String>,
    /// The engine.
    pub validate_as: ValidateAs,
    /// What to do with a body that does not conform.
    pub action: ValidationAction,
    /// The schema variant (`allow-additional-properties`, `case-insensitive-property-names`).
    pub variant: Variant,
}

/// `<content-type-map>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentTypeMap {
    /// `any-content-type-value`.
    pub any: Option<String>,
    /// `missing-content-type-value`.
    pub missing: Option<String>,
    /// `<type from to>`, lower case.
    pub types: Vec<(String, String)>,
}

/// `<validate-content>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidateContent {
    /// Validates the response (outbound, on-error) rather than the request.
    pub on_response: bool,
    /// `unspecified-content-type-action`.
    pub unspecified_action: ValidationAction,
    /// `max-size`, bytes.
    pub max_size: Option<u64>,
    /// `size-exceeded-action`.
    pub size_exceeded_action: ValidationAction,
    /// `errors-variable-name`.
    pub errors_variable: Option<String>,
    /// `<content-type-map>`.
    pub map: ContentTypeMap,
    /// The `<content>` elements.
    pub contents: Vec<ContentRule>,
}

impl ValidateContent {
    /// Compiles `<validate-content>`.
    pub fn compile(el: &Element, on_response: bool) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &[
                "unspecified-content-type-action",
                "max-size",
                "size-exceeded-action",
                "errors-variable-name",
                "id",
            ],
        )?;
        attrs::only_children(el, &["content-type-map", "content"])?;
        let unspecified_action = action_attr(el, "unspecified-content-type-action", true)?
            .unwrap_or(ValidationAction::Ignore);
        // Required, as in APIM: a validated body always has a size limit.
        let max_size = Some(
            attrs::parsed::<u64>(el, "max-size")?
                .ok_or_else(|| PolicyError::at(el, "attribute 'max-size' is required (bytes)"))?,
        );
        if max_size.is_some_and(|m| m > MAX_SIZE_LIMIT) {
            return Err(PolicyError::at(
                el,
                format!("'max-size' is at most {MAX_SIZE_LIMIT} bytes"),
            ));
        }
        let size_exceeded_action =
            action_attr(el, "size-exceeded-action", true)?.unwrap_or(ValidationAction::Ignore);
        let mut map = ContentTypeMap::default();
        if let Some(m) = el.child("content-type-map") {
            attrs::only(m, &["any-content-type-value", "missing-content-type-value"])?;
            attrs::only_children(m, &["type"])?;
            map.any = m.attr("any-content-type-value").map(media_type);
            map.missing = m.attr("missing-content-type-value").map(media_type);
            for t in m.children_named("type") {
                attrs::only(t, &["from", "when", "to"])?;
                if t.attr("when").is_some() {
                    return Err(PolicyError::at(
                        t,
                        "'when' (a policy expression) is not supported; name the content type with 'from'",
                    ));
                }
                map.types.push((
                    media_type(attrs::required(t, "from")?),
                    media_type(attrs::required(t, "to")?),
                ));
            }
        }
        let mut contents = Vec::new();
        for c in el.children_named("content") {
            attrs::only(
                c,
                &[
                    "type",
                    "validate-as",
                    "schema-id",
                    "schema-ref",
                    "action",
                    "allow-additional-properties",
                    "case-insensitive-property-names",
                ],
            )?;
            if c.attr("schema-id").is_some() || c.attr("schema-ref").is_some() {
                return Err(PolicyError::at(
                    c,
                    "'schema-id' and 'schema-ref' name schemas stored apart from the API, which Portcullis does not keep; leave them out to validate against the operation's schema",
                ));
            }
            let validate_as = match attrs::required(c, "validate-as")?
                .trim()
                .to_ascii_lowercase()
                .as_str()
            {
                "json" => ValidateAs::Json,
                "xml" => ValidateAs::Xml,
                "soap" => ValidateAs::Soap,
                other => {
                    return Err(PolicyError::at(
                        c,
                        format!("'validate-as' must be json, xml or soap, not '{other}'"),
                    ))
                }
            };
            let additional_properties = match c.attr("allow-additional-properties") {
                None => None,
                Some(_) => Some(attrs::boolean(c, "allow-additional-properties", true)?),
            };
            contents.push(ContentRule {
                content_type: c.attr("type").map(media_type).filter(|t| !t.is_empty()),
                validate_as,
                action: action_attr(c, "action", true)?.unwrap_or(ValidationAction::Ignore),
                variant: Variant {
                    additional_properties,
                    case_insensitive: attrs::boolean(c, "case-insensitive-property-names", false)?,
                },
            });
        }
        Ok(ValidateContent {
            on_response,
            unspecified_action,
            max_size,
            size_exceeded_action,
            errors_variable: el.attr("errors-variable-name").map(str::to_owned),
            map,
            contents,
        })
    }

    /// The schema variants its `<content>` elements use, besides the plain one.
    pub fn variants(&self) -> Vec<Variant> {
        self.contents
            .iter()
            .map(|c| c.variant)
            .filter(|v| *v != Variant::default())
            .collect()
    }

    /// The content type validation uses: the mapped one, else the message's.
    fn effective_type(&self, header: Option<&str>) -> Option<String> {
        let given = header.map(media_type).filter(|t| !t.is_empty());
        if let Some(g) = &given {
            if let Some((_, to)) = self.map.types.iter().find(|(from, _)| from == g) {
                return Some(to.clone());
            }
        }
        if let Some(any) = &self.map.any {
            return Some(any.clone());
        }
        match given {
            Some(g) => Some(g),
            None => self.map.missing.clone(),
        }
    }

    /// The findings for the request's or response's body.
    pub fn check(&self, ctx: &Context, contract: Contract<'_>) -> Vec<Finding> {
        let (side, body, header) = if self.on_response {
            let Some(resp) = ctx.response.as_ref() else {
                return Vec::new();
            };
            (
                "response",
                resp.body.clone(),
                resp.headers.get("content-type"),
            )
        } else {
            (
                "request",
                ctx.request.body.clone(),
                ctx.request.headers.get("content-type"),
            )
        };
        let kind = if self.on_response {
            "ResponseBody"
        } else {
            "RequestBody"
        };
        let public = |text: String| {
            if self.on_response {
                INTERNAL_ERROR.to_owned()
            } else {
                text
            }
        };
        let body = body.unwrap_or_default();
        let mut findings = Vec::new();
        if let Some(max) = self.max_size {
            let size = body.len() as u64;
            if size > max {
                let side_cap = if self.on_response {
                    "Response's"
                } else {
                    "Request's"
                };
                findings.push(Finding {
                    name: String::new(),
                    kind,
                    rule: "SizeLimit",
                    details: format!(
                        "{side_cap} body is {size} bytes long and it exceeds the configured limit of {max} bytes."
                    ),
                    public: public(format!(
                        "{side_cap} body is {size} bytes long and it exceeds the limit of {max} bytes."
                    )),
                    action: self.size_exceeded_action,
                });
            }
        }
        if body.is_empty() {
            // No body (a GET, a 204): nothing whose type or content to check.
            return findings;
        }
        let content_type = self.effective_type(header);
        let Some(content_type) = content_type else {
            findings.push(unspecified(kind, "", self.unspecified_action, &public));
            return findings;
        };
        let media: Option<&Media> = match contract {
            None => None,
            Some(c) => {
                let list = if self.on_response {
                    let status = ctx.response.as_ref().map_or(200, |r| r.status);
                    c.response(status)
                        .map(|r| r.content.as_slice())
                        .unwrap_or(&[])
                } else {
                    c.request_body.as_slice()
                };
                find_media(list, &content_type)
            }
        };
        let Some(media) = media else {
            findings.push(unspecified(
                kind,
                &content_type,
                self.unspecified_action,
                &public,
            ));
            return findings;
        };
        let rule = self
            .contents
            .iter()
            .find(|r| r.content_type.as_deref().is_none_or(|t| t == content_type));
        let Some(rule) = rule else {
            return findings;
        };
        if rule.action == ValidationAction::Ignore {
            return findings;
        }
        if let Some(problem) = validate_body(rule, media, &body) {
            let details = format!(
                "Body of the {side} does not conform to the definition {}, which is associated with the content type {content_type}. {problem}",
                media.definition
            );
            findings.push(Finding {
                name: content_type.clone(),
                kind,
                rule: "IncorrectMessage",
                public: public(details.clone()),
                details,
                action: rule.action,
            });
        }
        findings
    }
}

fn unspecified(
    kind: &'static str,
    content_type: &str,
    action: ValidationAction,
    public: &dyn Fn(String) -> String,
) -> Finding {
    let details = format!("Unspecified content type {content_type} is not allowed.");
    Finding {
        name: content_type.to_owned(),
        kind,
        rule: "Unspecified",
        public: public(details.clone()),
        details,
        action,
    }
}

/// A content type without parameters, in lower case.
fn media_type(raw: &str) -> String {
    raw.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The representation for `content_type`: exact, then `type/*`, then `*/*`.
pub(crate) fn find_media<'a>(list: &'a [Media], content_type: &str) -> Option<&'a Media> {
    let major = content_type.split('/').next().unwrap_or("");
    list.iter()
        .find(|m| m.content_type == content_type)
        .or_else(|| {
            list.iter()
                .find(|m| m.content_type.strip_suffix("/*") == Some(major))
        })
        .or_else(|| list.iter().find(|m| m.content_type == "*/*"))
}

/// Why `body` does not conform, if it does not.
fn validate_body(rule: &ContentRule, media: &Media, body: &Bytes) -> Option<String> {
    match rule.validate_as {
        ValidateAs::Json => {
            let value: serde_json::Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => {
                    return Some(format!(
                        "{} Line: {}, Position: {}",
                        e.to_string().split(" at line").next().unwrap_or(""),
                        e.line(),
                        e.column()
                    ))
                }
            };
            let schema = media.schema.as_ref()?;
            let validator = schema.validator(rule.variant)?;
            let value = if rule.variant.case_insensitive {
                lower_keys(&value)
            } else {
                value
            };
            if validator.is_valid(&value) {
                // The fast check; errors are collected only for a failing body.
                return None;
            }
            let error = validator.iter_errors(&value).next()?;
            let path = error.instance_path().to_string();
            // Masked: the message names the schema's rule, not the (possibly
            // large) value; one line, as it may go into a header.
            let message = error.masked().to_string().replace(['\r', '\n'], " ");
            Some(format!(
                "{message} Path: '{}'.",
                if path.is_empty() { "/" } else { &path }
            ))
        }
        ValidateAs::Xml | ValidateAs::Soap => {
            xml_problem(body, rule.validate_as == ValidateAs::Soap)
        }
    }
}

/// Why `body` is not well-formed XML (or, for SOAP, has no `Envelope` root).
fn xml_problem(body: &[u8], soap: bool) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().check_end_names = true;
    let mut depth: usize = 0;
    let mut roots = 0usize;
    let mut buf = Vec::new();
    loop {
        let at = reader.buffer_position();
        match reader.read_event_into(&mut buf) {
            Err(e) => return Some(format!("{e} Position: {at}")),
            Ok(Event::Eof) => break,
            Ok(Event::Start(s)) => {
                if depth == 0 {
                    roots += 1;
                    if soap && s.local_name().as_ref() != "Envelope" {
                        return Some("The root element is not a SOAP Envelope.".into());
                    }
                }
                depth += 1;
            }
            Ok(Event::Empty(s)) => {
                if depth == 0 {
                    roots += 1;
                    if soap && s.local_name().as_ref() != "Envelope" {
                        return Some("The root element is not a SOAP Envelope.".into());
                    }
                }
            }
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Text(t)) if depth == 0 && !t.trim().is_empty() => {
                return Some("Text is not allowed outside the root element.".into())
            }
            Ok(_) => {}
        }
        buf.clear();
    }
    match (roots, depth) {
        (0, _) => Some("Root element is missing.".into()),
        (1, 0) => None,
        (1, _) => Some("Unexpected end of file: an element is not closed.".into()),
        _ => Some("There are multiple root elements.".into()),
    }
}
