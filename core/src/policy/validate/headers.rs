//! `validate-headers` (the response's headers against the operation's
//! response for its status) and `validate-status-code` (the response's
//! status among the operation's responses).

use super::contract::{ParamIn, ResponseSpec};
use super::parameters::check_values;
use super::{action_attr, Contract, Finding, ValidationAction, INTERNAL_ERROR};
use crate::policy::attrs;
use crate::policy::context::Context;
use crate::policy::error::PolicyError;
use crate::policy::xml::Element;

/// Response headers that are part of HTTP itself, never "unspecified".
const STANDARD_RESPONSE_HEADERS: &[&str] = &[
    "accept-ranges",
    "age",
    "cache-control",
    "connection",
    "content-encoding",
    "content-language",
    "content-length",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expires",
    "keep-alive",
    "last-modified",
    "location",
    "pragma",
    "retry-after",
    "server",
    "set-cookie",
    "trailer",
    "transfer-encoding",
    "vary",
    "via",
];

/// `<validate-headers>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidateHeaders {
    /// `specified-header-action`.
    pub specified: ValidationAction,
    /// `unspecified-header-action`.
    pub unspecified: ValidationAction,
    /// `errors-variable-name`.
    pub errors_variable: Option<String>,
    /// `<header name action>` overrides.
    pub headers: Vec<(String, ValidationAction)>,
}

impl ValidateHeaders {
    /// Compiles `<validate-headers>`.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &[
                "specified-header-action",
                "unspecified-header-action",
                "errors-variable-name",
            ],
        )?;
        attrs::only_children(el, &["header"])?;
        let mut headers = Vec::new();
        for h in el.children_named("header") {
            attrs::only(h, &["name", "action"])?;
            let action = action_attr(h, "action", true)?.unwrap_or(ValidationAction::Ignore);
            headers.push((attrs::required(h, "name")?.to_owned(), action));
        }
        Ok(ValidateHeaders {
            specified: action_attr(el, "specified-header-action", true)?
                .unwrap_or(ValidationAction::Ignore),
            unspecified: action_attr(el, "unspecified-header-action", true)?
                .unwrap_or(ValidationAction::Ignore),
            errors_variable: el.attr("errors-variable-name").map(str::to_owned),
            headers,
        })
    }

    fn action(&self, name: &str, specified: bool) -> ValidationAction {
        match self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, a)) => *a,
            None if specified => self.specified,
            None => self.unspecified,
        }
    }

    /// The findings for the response's headers.
    pub fn check(&self, ctx: &Context, contract: Contract<'_>) -> Vec<Finding> {
        let Some(resp) = ctx.response.as_ref() else {
            return Vec::new();
        };
        let spec: Option<&ResponseSpec> = contract.and_then(|c| c.response(resp.status));
        let declared = spec.map_or(&[][..], |s| s.headers.as_slice());
        let mut findings = Vec::new();
        for h in declared {
            let action = self.action(&h.name, true);
            if action == ValidationAction::Ignore {
                continue;
            }
            let values: Vec<&str> = resp.headers.get_all(&h.name).collect();
            if let Some(f) = check_values(h, &values, action, true) {
                findings.push(f);
            }
        }
        let mut seen: Vec<String> = Vec::new();
        for (name, _) in resp.headers.iter() {
            let lower = name.to_ascii_lowercase();
            if STANDARD_RESPONSE_HEADERS.contains(&lower.as_str())
                || declared.iter().any(|h| h.name.eq_ignore_ascii_case(name))
                || seen.contains(&lower)
            {
                continue;
            }
            seen.push(lower);
            findings.push(Finding {
                name: name.to_owned(),
                kind: "ResponseHeader",
                rule: "Unspecified",
                details: format!("Unspecified header {name} is not allowed."),
                public: INTERNAL_ERROR.to_owned(),
                action: self.action(name, false),
            });
        }
        debug_assert!(declared.iter().all(|h| h.location == ParamIn::Header));
        findings
    }
}

/// `<validate-status-code>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidateStatusCode {
    /// `unspecified-status-code-action`.
    pub unspecified: ValidationAction,
    /// `errors-variable-name`.
    pub errors_variable: Option<String>,
    /// `<status-code code action>` overrides for codes the contract does not declare.
    pub codes: Vec<(u16, ValidationAction)>,
}

impl ValidateStatusCode {
    /// Compiles `<validate-status-code>`.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &["unspecified-status-code-action", "errors-variable-name"],
        )?;
        attrs::only_children(el, &["status-code"])?;
        let mut codes = Vec::new();
        for c in el.children_named("status-code") {
            attrs::only(c, &["code", "action"])?;
            let code = attrs::parsed::<u16>(c, "code")?
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| {
                    PolicyError::at(c, "'code' must be an HTTP status code (100-599)")
                })?;
            let action = action_attr(c, "action", true)?.unwrap_or(ValidationAction::Ignore);
            codes.push((code, action));
        }
        Ok(ValidateStatusCode {
            unspecified: action_attr(el, "unspecified-status-code-action", true)?
                .unwrap_or(ValidationAction::Ignore),
            errors_variable: el.attr("errors-variable-name").map(str::to_owned),
            codes,
        })
    }

    /// The finding for the response's status, if it is not in the contract.
    pub fn check(&self, ctx: &Context, contract: Contract<'_>) -> Vec<Finding> {
        let Some(resp) = ctx.response.as_ref() else {
            return Vec::new();
        };
        let status = resp.status;
        // `default` covers every status; `2XX` its class.
        if contract.is_some_and(|c| c.response(status).is_some()) {
            return Vec::new();
        }
        let action = self
            .codes
            .iter()
            .find(|(c, _)| *c == status)
            .map_or(self.unspecified, |(_, a)| *a);
        vec![Finding {
            name: status.to_string(),
            kind: "StatusCode",
            rule: "Unspecified",
            details: format!("Response status code {status} is not allowed."),
            public: INTERNAL_ERROR.to_owned(),
            action,
        }]
    }
}
