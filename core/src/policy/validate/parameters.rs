//! `validate-parameters`: a request's path, query and header parameters
//! checked against the operation's: required ones present, values of the
//! declared type and schema, no parameters the contract does not declare.

use super::contract::{Param, ParamIn, Schema, Variant};
use super::{action_attr, Contract, Finding, ValidationAction};
use crate::policy::attrs;
use crate::policy::context::Context;
use crate::policy::error::PolicyError;
use crate::policy::xml::Element;

/// Request headers that are part of HTTP itself, never "unspecified".
const STANDARD_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "authorization",
    "cache-control",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "cookie",
    "expect",
    "forwarded",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "keep-alive",
    "origin",
    "pragma",
    "range",
    "referer",
    "te",
    "traceparent",
    "tracestate",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "via",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// The actions of one of `<headers>`, `<query>`, `<path>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    /// `specified-parameter-action` (else the policy's).
    pub specified: Option<ValidationAction>,
    /// `unspecified-parameter-action` (else the policy's).
    pub unspecified: Option<ValidationAction>,
    /// `<parameter name action>` overrides.
    pub parameters: Vec<(String, ValidationAction)>,
}

/// `<validate-parameters>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidateParameters {
    /// `specified-parameter-action`.
    pub specified: ValidationAction,
    /// `unspecified-parameter-action`.
    pub unspecified: ValidationAction,
    /// `errors-variable-name`.
    pub errors_variable: Option<String>,
    /// `<headers>`.
    pub headers: Group,
    /// `<query>`.
    pub query: Group,
    /// `<path>`.
    pub path: Group,
}

fn group(el: Option<&Element>, unspecified_allowed: bool) -> Result<Group, PolicyError> {
    let Some(el) = el else {
        return Ok(Group::default());
    };
    if unspecified_allowed {
        attrs::only(
            el,
            &["specified-parameter-action", "unspecified-parameter-action"],
        )?;
    } else {
        attrs::only(el, &["specified-parameter-action"])?;
    }
    attrs::only_children(el, &["parameter"])?;
    let mut parameters = Vec::new();
    for p in el.children_named("parameter") {
        attrs::only(p, &["name", "action"])?;
        let action = action_attr(p, "action", true)?.unwrap_or(ValidationAction::Ignore);
        parameters.push((attrs::required(p, "name")?.to_owned(), action));
    }
    Ok(Group {
        specified: action_attr(el, "specified-parameter-action", false)?,
        unspecified: if unspecified_allowed {
            action_attr(el, "unspecified-parameter-action", false)?
        } else {
            None
        },
        parameters,
    })
}

impl ValidateParameters {
    /// Compiles `<validate-parameters>`.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &[
                "specified-parameter-action",
                "unspecified-parameter-action",
                "errors-variable-name",
            ],
        )?;
        attrs::only_children(el, &["headers", "query", "path"])?;
        Ok(ValidateParameters {
            specified: action_attr(el, "specified-parameter-action", true)?
                .unwrap_or(ValidationAction::Ignore),
            unspecified: action_attr(el, "unspecified-parameter-action", true)?
                .unwrap_or(ValidationAction::Ignore),
            errors_variable: el.attr("errors-variable-name").map(str::to_owned),
            headers: group(el.child("headers"), true)?,
            query: group(el.child("query"), true)?,
            path: group(el.child("path"), false)?,
        })
    }

    fn group(&self, location: ParamIn) -> &Group {
        match location {
            ParamIn::Path => &self.path,
            ParamIn::Query => &self.query,
            ParamIn::Header => &self.headers,
        }
    }

    /// The action for parameter `name` at `location`.
    fn action(&self, location: ParamIn, name: &str, specified: bool) -> ValidationAction {
        let g = self.group(location);
        let own = g.parameters.iter().find(|(n, _)| {
            if location == ParamIn::Header {
                n.eq_ignore_ascii_case(name)
            } else {
                n == name
            }
        });
        match own {
            Some((_, a)) => *a,
            None if specified => g.specified.unwrap_or(self.specified),
            None => g.unspecified.unwrap_or(self.unspecified),
        }
    }

    /// The findings for the request's parameters.
    pub fn check(&self, ctx: &Context, contract: Contract<'_>) -> Vec<Finding> {
        let declared: &[Param] = contract.map_or(&[], |c| c.parameters.as_slice());
        let mut findings = Vec::new();
        for p in declared {
            let action = self.action(p.location, &p.name, true);
            if action == ValidationAction::Ignore {
                continue;
            }
            let values: Vec<&str> = match p.location {
                ParamIn::Path => ctx
                    .request
                    .matched_parameters
                    .iter()
                    .filter(|(n, _)| *n == p.name)
                    .map(|(_, v)| v.as_str())
                    .collect(),
                ParamIn::Query => ctx
                    .request
                    .url
                    .query
                    .iter()
                    .filter(|(n, _)| *n == p.name)
                    .map(|(_, v)| v.as_str())
                    .collect(),
                ParamIn::Header => ctx.request.headers.get_all(&p.name).collect(),
            };
            if let Some(f) = check_values(p, &values, action, false) {
                findings.push(f);
            }
        }
        // Parameters the contract does not declare.
        let is_declared = |location: ParamIn, name: &str| {
            declared.iter().any(|p| {
                p.location == location
                    && (p.name == name
                        || (location == ParamIn::Header && p.name.eq_ignore_ascii_case(name)))
            })
        };
        let mut seen: Vec<&str> = Vec::new();
        for (name, _) in &ctx.request.url.query {
            if is_declared(ParamIn::Query, name) || seen.contains(&name.as_str()) {
                continue;
            }
            seen.push(name);
            let action = self.action(ParamIn::Query, name, false);
            findings.push(unspecified_finding(ParamIn::Query, name, action));
        }
        let mut seen: Vec<String> = Vec::new();
        for (name, _) in ctx.request.headers.iter() {
            let lower = name.to_ascii_lowercase();
            if STANDARD_REQUEST_HEADERS.contains(&lower.as_str())
                || lower.starts_with("ocp-apim-")
                || is_declared(ParamIn::Header, name)
                || seen.contains(&lower)
            {
                continue;
            }
            seen.push(lower);
            let action = self.action(ParamIn::Header, name, false);
            findings.push(unspecified_finding(ParamIn::Header, name, action));
        }
        findings
    }
}

fn unspecified_finding(location: ParamIn, name: &str, action: ValidationAction) -> Finding {
    let details = format!("Unspecified {} {name} is not allowed.", location.noun());
    Finding {
        name: name.to_owned(),
        kind: location.error_type(),
        rule: "Unspecified",
        public: details.clone(),
        details,
        action,
    }
}

/// The finding for a declared parameter's (or response header's) `values`, if any.
/// Findings about a response hide their details from the client.
pub(crate) fn check_values(
    p: &Param,
    values: &[&str],
    action: ValidationAction,
    response: bool,
) -> Option<Finding> {
    let side = if response { "Response" } else { "Request" };
    let kind = if response {
        "ResponseHeader"
    } else {
        p.location.error_type()
    };
    let noun = p.location.noun();
    let name = &p.name;
    let finding = |details: String, public: String| Finding {
        name: name.clone(),
        kind,
        rule: "IncorrectMessage",
        public: if response {
            super::INTERNAL_ERROR.to_owned()
        } else {
            public
        },
        details,
        action,
    };
    let is_array = p
        .schema
        .as_ref()
        .is_some_and(|s| s.primary_type() == "array");
    match values {
        [] if p.required => {
            let text = format!("{side} does not contain the required {noun} {name}.");
            Some(finding(text.clone(), text))
        }
        [] => None,
        [_, _, ..] if !is_array => {
            let text = format!("{side} cannot contain multiple values for the {noun} {name}.");
            Some(finding(text.clone(), text))
        }
        _ => {
            let schema = p.schema.as_ref()?;
            let value = match typed_value(schema, values) {
                Ok(v) => v,
                Err(e) => {
                    return Some(finding(
                        format!("Value of the {noun} {name} cannot be parsed according to the definition. {e}"),
                        format!("Value of the {noun} {name} couldn't be parsed according to the definition. {e}"),
                    ))
                }
            };
            let validator = schema.validator(Variant::default())?;
            if validator.is_valid(&value) {
                return None;
            }
            let error = validator.iter_errors(&value).next()?;
            let error = error.to_string().replace(['\r', '\n'], " ");
            Some(finding(
                format!("Value of the {noun} {name} does not conform to the definition. {error}"),
                format!(
                    "The value of the {noun} {name} does not conform to the definition. {error}"
                ),
            ))
        }
    }
}

/// The parameter's text as the JSON value its schema's type says
/// (`style: form`/`simple` arrays are comma-separated).
fn typed_value(schema: &Schema, values: &[&str]) -> Result<serde_json::Value, String> {
    let ty = schema.primary_type();
    if ty == "array" {
        let item = schema.item_type();
        let mut items = Vec::new();
        for v in values {
            for part in v.split(',') {
                items.push(scalar(item, part)?);
            }
        }
        return Ok(serde_json::Value::Array(items));
    }
    scalar(ty, values.first().copied().unwrap_or(""))
}

fn scalar(ty: &str, text: &str) -> Result<serde_json::Value, String> {
    match ty {
        "integer" => text
            .trim()
            .parse::<i64>()
            .map(serde_json::Value::from)
            .map_err(|_| format!("'{text}' is not an integer.")),
        "number" => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(serde_json::Value::Number)
            .ok_or_else(|| format!("'{text}' is not a number.")),
        "boolean" => match text.trim() {
            "true" | "True" => Ok(serde_json::Value::Bool(true)),
            "false" | "False" => Ok(serde_json::Value::Bool(false)),
            _ => Err(format!("'{text}' is not a boolean.")),
        },
        "object" => serde_json::from_str(text).map_err(|e| e.to_string()),
        _ => Ok(serde_json::Value::String(text.to_owned())),
    }
}
