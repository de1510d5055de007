//! APIM's validation policies (`validate-content`, `validate-parameters`,
//! `validate-headers`, `validate-status-code`): a request or response checked
//! against the operation's contract, compiled once per configuration from the
//! API's OpenAPI document ([`contract`]).
//!
//! Each finding has an action: `ignore` skips it, `detect` records it in the
//! errors variable, `prevent` records it and stops the request with APIM's
//! error (400 on the request, 502 on the response) and `context.LastError`.

pub mod content;
pub mod contract;
pub mod headers;
pub mod parameters;

use std::sync::Arc;

use serde_json::json;

use super::context::Context;
use super::error::{Failure, PolicyError};
use super::param::json_error_response;
use super::program::SectionKind;
use super::xml::Element;
use crate::expr::Value;
use contract::{OperationContract, Variant};

/// What a validation policy does with a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationAction {
    /// Skip the check.
    Ignore,
    /// Record the error and stop the request or response.
    Prevent,
    /// Record the error and go on.
    Detect,
}

impl ValidationAction {
    /// APIM's name for it.
    pub fn name(self) -> &'static str {
        match self {
            ValidationAction::Ignore => "ignore",
            ValidationAction::Prevent => "prevent",
            ValidationAction::Detect => "detect",
        }
    }
}

/// Attribute `name` of `el` as an action; a missing one is an error when `required`.
pub(crate) fn action_attr(
    el: &Element,
    name: &str,
    required: bool,
) -> Result<Option<ValidationAction>, PolicyError> {
    match el.attr(name).map(str::trim) {
        None if required => Err(PolicyError::at(
            el,
            format!("attribute '{name}' is required (ignore, prevent or detect)"),
        )),
        None => Ok(None),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "ignore" => Ok(Some(ValidationAction::Ignore)),
            "prevent" => Ok(Some(ValidationAction::Prevent)),
            "detect" => Ok(Some(ValidationAction::Detect)),
            _ if v.starts_with('@') => Err(PolicyError::at(
                el,
                format!("'{name}': policy expressions are not supported here; use ignore, prevent or detect"),
            )),
            _ => Err(PolicyError::at(
                el,
                format!("'{name}' must be ignore, prevent or detect, not '{v}'"),
            )),
        },
    }
}

/// The message APIM's clients get for a problem they cannot fix.
pub const INTERNAL_ERROR: &str =
    "The request could not be processed due to an internal error. Contact the API owner.";

/// One validation error, as APIM logs it to the errors variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `Name`: the parameter, header, content type or status code (may be empty).
    pub name: String,
    /// `Type`: `RequestBody`, `QueryParameter`, `ResponseHeader`, `StatusCode`...
    pub kind: &'static str,
    /// `ValidationRule`: `SizeLimit`, `Unspecified`, `IncorrectMessage`...
    pub rule: &'static str,
    /// `Details`: for the owner (the errors variable, `context.LastError.Message`).
    pub details: String,
    /// What the client is told when the action is `prevent`.
    pub public: String,
    /// The action that applied.
    pub action: ValidationAction,
}

/// A compiled validation policy.
#[derive(Debug, Clone)]
pub enum Validate {
    /// `validate-content`.
    Content(Arc<content::ValidateContent>),
    /// `validate-parameters`.
    Parameters(Arc<parameters::ValidateParameters>),
    /// `validate-headers`.
    Headers(Arc<headers::ValidateHeaders>),
    /// `validate-status-code`.
    StatusCode(Arc<headers::ValidateStatusCode>),
}

impl Validate {
    /// Compiles one of the four elements in `section`.
    pub fn compile(el: &Element, section: SectionKind) -> Result<Validate, PolicyError> {
        let on_response = section != SectionKind::Inbound;
        let allowed: &[SectionKind] = match el.name.as_str() {
            "validate-content" => &[
                SectionKind::Inbound,
                SectionKind::Outbound,
                SectionKind::OnError,
            ],
            "validate-parameters" => &[SectionKind::Inbound],
            _ => &[SectionKind::Outbound, SectionKind::OnError],
        };
        if !allowed.contains(&section) {
            let names: Vec<&str> = allowed.iter().map(|s| s.name()).collect();
            return Err(PolicyError::at(
                el,
                format!(
                    "<{}> is not allowed in <{}> (only in {})",
                    el.name,
                    section.name(),
                    names.join(", ")
                ),
            ));
        }
        Ok(match el.name.as_str() {
            "validate-content" => Validate::Content(Arc::new(content::ValidateContent::compile(
                el,
                on_response,
            )?)),
            "validate-parameters" => {
                Validate::Parameters(Arc::new(parameters::ValidateParameters::compile(el)?))
            }
            "validate-headers" => {
                Validate::Headers(Arc::new(headers::ValidateHeaders::compile(el)?))
            }
            _ => Validate::StatusCode(Arc::new(headers::ValidateStatusCode::compile(el)?)),
        })
    }

    /// Whether it reads a body: (request, response).
    pub fn reads_body(&self) -> (bool, bool) {
        match self {
            Validate::Content(c) => (!c.on_response, c.on_response),
            _ => (false, false),
        }
    }

    /// The schema variants it validates bodies with (`allow-additional-properties`,
    /// `case-insensitive-property-names`), for the contract to compile.
    pub fn variants(&self) -> Vec<Variant> {
        match self {
            Validate::Content(c) => c.variants(),
            _ => Vec::new(),
        }
    }

    /// Runs the check on the request or response in `ctx`.
    pub fn run(&self, ctx: &mut Context) -> Result<(), Failure> {
        let contract = ctx.fixed.operation.contract.clone();
        let contract = contract.as_deref();
        let (findings, variable, on_response, policy) = match self {
            Validate::Content(c) => (
                c.check(ctx, contract),
                c.errors_variable.as_deref(),
                c.on_response,
                "validate-content",
            ),
            Validate::Parameters(p) => (
                p.check(ctx, contract),
                p.errors_variable.as_deref(),
                false,
                "validate-parameters",
            ),
            Validate::Headers(h) => (
                h.check(ctx, contract),
                h.errors_variable.as_deref(),
                true,
                "validate-headers",
            ),
            Validate::StatusCode(s) => (
                s.check(ctx, contract),
                s.errors_variable.as_deref(),
                true,
                "validate-status-code",
            ),
        };
        conclude(ctx, policy, findings, variable, on_response)
    }
}

/// Records `findings` in the errors variable and fails on the first `prevent` one.
fn conclude(
    ctx: &mut Context,
    policy: &str,
    findings: Vec<Finding>,
    variable: Option<&str>,
    on_response: bool,
) -> Result<(), Failure> {
    let findings: Vec<Finding> = findings
        .into_iter()
        .filter(|f| f.action != ValidationAction::Ignore)
        .collect();
    if let Some(name) = variable {
        let list: Vec<serde_json::Value> = findings
            .iter()
            .map(|f| {
                json!({
                    "Name": f.name,
                    "Type": f.kind,
                    "ValidationRule": f.rule,
                    "Details": f.details,
                    "Action": f.action.name(),
                })
            })
            .collect();
        // Appended to, so several validation policies can share one variable.
        let mut all = match ctx.variables.get(name) {
            Some(Value::Json(v)) => v.as_array().cloned().unwrap_or_default(),
            _ => Vec::new(),
        };
        all.extend(list);
        ctx.variables.insert(
            name.to_owned(),
            Value::Json(Arc::new(serde_json::Value::Array(all))),
        );
    }
    let Some(first) = findings
        .iter()
        .find(|f| f.action == ValidationAction::Prevent)
    else {
        return Ok(());
    };
    let (status, reason_phrase, reason) = if on_response {
        (502, "Bad Gateway", "Response not allowed")
    } else {
        (400, "Bad Request", "Bad request")
    };
    tracing::debug!(policy, details = %first.details, "validation prevented");
    Err(Failure {
        reason: reason.into(),
        message: first.details.clone(),
        response: Some(Box::new(json_error_response(
            status,
            reason_phrase,
            &first.public,
        ))),
    })
}

/// The contract's answer for this request, or `None` when the API has no
/// document describing the operation.
pub(crate) type Contract<'a> = Option<&'a OperationContract>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::xml;

    fn compile(src: &str, section: SectionKind) -> Result<Validate, PolicyError> {
        Validate::compile(&xml::parse(src).unwrap(), section)
    }

    #[test]
    fn bad_documents_are_compile_errors_naming_the_element() {
        let missing = compile(r#"<validate-status-code />"#, SectionKind::Outbound).unwrap_err();
        assert!(
            missing.message.contains("unspecified-status-code-action"),
            "{missing}"
        );
        let bad = compile(
            r#"<validate-headers specified-header-action="block" unspecified-header-action="ignore" />"#,
            SectionKind::Outbound,
        )
        .unwrap_err();
        assert!(bad.message.contains("ignore, prevent or detect"), "{bad}");
        let inbound = compile(
            r#"<validate-status-code unspecified-status-code-action="prevent" />"#,
            SectionKind::Inbound,
        )
        .unwrap_err();
        assert!(
            inbound.message.contains("not allowed in <inbound>"),
            "{inbound}"
        );
        let schema_id = compile(
            r#"<validate-content unspecified-content-type-action="prevent" max-size="1024" size-exceeded-action="prevent"><content type="application/json" validate-as="json" schema-id="s" action="prevent" /></validate-content>"#,
            SectionKind::Inbound,
        )
        .unwrap_err();
        assert_eq!(schema_id.policy, "content");
        let child = compile(
            r#"<validate-parameters specified-parameter-action="prevent" unspecified-parameter-action="ignore"><cookies /></validate-parameters>"#,
            SectionKind::Inbound,
        )
        .unwrap_err();
        assert!(child.message.contains("<cookies>"), "{child}");
        let size = compile(
            r#"<validate-content unspecified-content-type-action="prevent" max-size="100" />"#,
            SectionKind::Inbound,
        )
        .unwrap_err();
        assert!(size.message.contains("size-exceeded-action"), "{size}");
    }

    #[test]
    fn the_errors_variable_collects_non_ignored_findings_and_prevent_fails() {
        let finding = |action| Finding {
            name: "sort".into(),
            kind: "QueryParameter",
            rule: "Unspecified",
            details: "Unspecified query parameter sort is not allowed.".into(),
            public: "Unspecified query parameter sort is not allowed.".into(),
            action,
        };
        let mut ctx = Context::default();
        let ok = conclude(
            &mut ctx,
            "validate-parameters",
            vec![
                finding(ValidationAction::Ignore),
                finding(ValidationAction::Detect),
            ],
            Some("errors"),
            false,
        );
        assert!(ok.is_ok());
        let Some(Value::Json(list)) = ctx.variables.get("errors") else {
            panic!("no variable")
        };
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(list[0]["Action"], "detect");
        let failure = conclude(
            &mut ctx,
            "validate-parameters",
            vec![finding(ValidationAction::Prevent)],
            Some("errors"),
            true,
        )
        .unwrap_err();
        assert_eq!(failure.reason, "Response not allowed");
        assert_eq!(failure.response.unwrap().status, 502);
        let Some(Value::Json(list)) = ctx.variables.get("errors") else {
            panic!("no variable")
        };
        assert_eq!(list.as_array().unwrap().len(), 2);
    }
}
