//! Policies that make or change the response: `return-response`, `set-status`,
//! `mock-response`, and the `check-header` and `trace` policies.

use super::attrs;
use super::context::{Context, Response};
use super::error::{Failure, PolicyError};
use super::program::SectionKind;
use super::transform::{eval, SetBody, SetHeader};
use super::xml::Element;
use crate::expr::Template;

/// `set-status`.
#[derive(Debug, Clone)]
pub struct SetStatus {
    /// Status code.
    pub code: Template,
    /// Reason phrase.
    pub reason: Option<Template>,
}

impl SetStatus {
    /// Compiles `<set-status code reason />`.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["code", "reason"])?;
        let code = attrs::required_template(el, "code")?;
        if let Some(lit) = code.literal() {
            check_status(el, lit)?;
        }
        Ok(SetStatus {
            code,
            reason: attrs::template(el, "reason")?,
        })
    }

    /// Sets the status of the response (making one if there is none yet).
    pub fn run(&self, ctx: &mut Context) -> Result<(), Failure> {
        let code = eval(&self.code, ctx)?;
        let status: u16 = code
            .trim()
            .parse()
            .ok()
            .filter(|c| (100..=999).contains(c))
            .ok_or_else(|| {
                Failure::new(
                    "InvalidStatusCode",
                    format!("'{code}' is not a status code"),
                )
            })?;
        let reason = match &self.reason {
            Some(r) => eval(r, ctx)?,
            None => reason_phrase(status).to_string(),
        };
        let resp = ctx.response.get_or_insert_with(Response::default);
        resp.status = status;
        resp.reason = reason;
        Ok(())
    }
}

fn check_status(el: &Element, lit: &str) -> Result<(), PolicyError> {
    match lit.trim().parse::<u16>() {
        Ok(c) if (100..=999).contains(&c) => Ok(()),
        _ => Err(PolicyError::at(el, format!("'{lit}' is not a status code"))),
    }
}

/// `return-response`.
#[derive(Debug, Clone)]
pub struct ReturnResponse {
    /// Start from a response held in this variable (a `send-request` result).
    pub variable: Option<String>,
    /// `set-status`.
    pub status: Option<SetStatus>,
    /// `set-header`s.
    pub headers: Vec<SetHeader>,
    /// `set-body`.
    pub body: Option<SetBody>,
}

impl ReturnResponse {
    /// Compiles `<return-response response-variable-name>` with its children.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["response-variable-name"])?;
        attrs::only_children(el, &["set-status", "set-header", "set-body"])?;
        let status = el.child("set-status").map(SetStatus::compile).transpose()?;
        let headers = el
            .children_named("set-header")
            .map(|h| SetHeader::compile(h, SectionKind::Outbound))
            .collect::<Result<_, _>>()?;
        let body = el
            .child("set-body")
            .map(|b| SetBody::compile(b, SectionKind::Outbound))
            .transpose()?;
        Ok(ReturnResponse {
            variable: el.attr("response-variable-name").map(str::to_string),
            status,
            headers,
            body,
        })
    }

    /// Builds the response into `context.Response`; the pipeline then ends.
    pub fn run(&self, ctx: &mut Context) -> Result<(), Failure> {
        let base = match &self.variable {
            Some(v) => match ctx.variables.get(v) {
                Some(crate::expr::Value::Response(r)) => (**r).clone(),
                _ => {
                    return Err(Failure::new(
                        "VariableNotFound",
                        format!("variable '{v}' does not hold a response"),
                    ))
                }
            },
            None => Response {
                status: 200,
                reason: "OK".into(),
                ..Default::default()
            },
        };
        // The children work on the new response, with the request still readable.
        let saved = ctx.response.replace(base);
        let result = (|| {
            if let Some(s) = &self.status {
                s.run(ctx)?;
            }
            for h in &self.headers {
                h.run(ctx)?;
            }
            if let Some(b) = &self.body {
                b.run(ctx)?;
            }
            Ok(())
        })();
        if result.is_err() {
            ctx.response = saved;
        }
        result
    }
}

/// `mock-response`: answers without calling the backend, with the example the
/// operation's contract (the API's OpenAPI document) gives for the status and
/// content type asked; without one, an empty body.
#[derive(Debug, Clone)]
pub struct MockResponse {
    /// Status code (default 200).
    pub status: u16,
    /// Whether `status-code` was given (without it the contract's first 2xx
    /// response is answered).
    pub status_given: bool,
    /// `content-type`, if given (without it: the response's first representation).
    pub content_type: Option<String>,
}

impl MockResponse {
    /// Compiles `<mock-response status-code content-type />`.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["status-code", "content-type", "index"])?;
        let status = attrs::parsed::<u16>(el, "status-code")?.unwrap_or(200);
        if !(100..=999).contains(&status) {
            return Err(PolicyError::at(
                el,
                format!("'{status}' is not a status code"),
            ));
        }
        Ok(MockResponse {
            status,
            status_given: el.attr("status-code").is_some(),
            content_type: el.attr("content-type").map(|c| c.trim().to_string()),
        })
    }

    /// Puts the mocked response in `context.Response`.
    pub fn run(&self, ctx: &mut Context) {
        let contract = ctx.fixed.operation.contract.clone();
        let (status, example) = match contract.as_deref() {
            Some(c) => super::validate::contract::mock_example(
                c,
                self.status_given.then_some(self.status),
                self.content_type.as_deref(),
            ),
            None => (self.status, None),
        };
        let mut resp = Response {
            status,
            reason: reason_phrase(status).to_string(),
            ..Default::default()
        };
        let (content_type, body) = match example {
            Some((ct, body)) => (self.content_type.clone().unwrap_or(ct), body),
            None => (
                self.content_type
                    .clone()
                    .unwrap_or_else(|| "application/json".to_string()),
                bytes::Bytes::new(),
            ),
        };
        resp.headers.set("Content-Type", content_type);
        resp.body = Some(body);
        ctx.response = Some(resp);
    }
}

/// `check-header`.
#[derive(Debug, Clone)]
pub struct CheckHeader {
    /// Header to check.
    pub name: String,
    /// Status when the check fails.
    pub status: u16,
    /// Message when the check fails.
    pub message: String,
    /// Compare values ignoring case.
    pub ignore_case: bool,
    /// Allowed values (any value if empty).
    pub values: Vec<String>,
}

impl CheckHeader {
    /// Compiles `<check-header name failed-check-httpcode failed-check-error-message ignore-case><value/></check-header>`.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &[
                "name",
                "failed-check-httpcode",
                "failed-check-error-message",
                "ignore-case",
            ],
        )?;
        attrs::only_children(el, &["value"])?;
        let status = attrs::parsed::<u16>(el, "failed-check-httpcode")?
            .ok_or_else(|| PolicyError::at(el, "attribute 'failed-check-httpcode' is required"))?;
        Ok(CheckHeader {
            name: attrs::required(el, "name")?.to_string(),
            status,
            message: attrs::required(el, "failed-check-error-message")?.to_string(),
            ignore_case: attrs::boolean(el, "ignore-case", false)?,
            values: el
                .children_named("value")
                .map(|v| v.text().trim().to_string())
                .collect(),
        })
    }

    /// Fails with the configured status when the header is missing or has a value
    /// not in the list.
    pub fn run(&self, ctx: &Context) -> Result<(), Failure> {
        let ok = match ctx.request.headers.get_joined(&self.name) {
            None => false,
            Some(_) if self.values.is_empty() => true,
            Some(_) => ctx.request.headers.get_all(&self.name).any(|v| {
                v.split(',').map(str::trim).any(|v| {
                    self.values.iter().any(|a| {
                        if self.ignore_case {
                            a.eq_ignore_ascii_case(v)
                        } else {
                            a == v
                        }
                    })
                })
            }),
        };
        if ok {
            return Ok(());
        }
        let reason = if ctx.request.headers.contains(&self.name) {
            "HeaderValueNotAllowed"
        } else {
            "HeaderNotFound"
        };
        Err(Failure {
            reason: reason.into(),
            message: self.message.clone(),
            response: Some(Box::new(json_error(self.status, &self.message))),
        })
    }
}

/// A response with APIM's JSON error body `{ "statusCode": n, "message": "..." }`.
pub fn json_error(status: u16, message: &str) -> Response {
    super::param::json_error_response(status, reason_phrase(status), message)
}

/// `trace`.
#[derive(Debug, Clone)]
pub struct Trace {
    /// `source`.
    pub source: String,
    /// `severity`: verbose, information or error.
    pub severity: String,
    /// `<message>`.
    pub message: Template,
    /// `<metadata name value/>`s.
    pub metadata: Vec<(String, String)>,
}

impl Trace {
    /// Compiles `<trace source severity><message/><metadata name value/></trace>`.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["source", "severity"])?;
        attrs::only_children(el, &["message", "metadata"])?;
        let severity = el.attr("severity").unwrap_or("verbose").to_string();
        if !["verbose", "information", "error"].contains(&severity.as_str()) {
            return Err(PolicyError::at(
                el,
                format!("severity must be verbose, information or error, not '{severity}'"),
            ));
        }
        let message = match el.child("message") {
            Some(m) => attrs::text_template(m)?,
            // Older documents put the message directly inside <trace>.
            None => attrs::text_template(el)?,
        };
        let metadata = el
            .children_named("metadata")
            .map(|m| {
                Ok((
                    attrs::required(m, "name")?.to_string(),
                    attrs::required(m, "value")?.to_string(),
                ))
            })
            .collect::<Result<_, PolicyError>>()?;
        Ok(Trace {
            source: attrs::required(el, "source")?.to_string(),
            severity,
            message,
            metadata,
        })
    }
}

/// A trace record a `trace` policy produced, for the runtime to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRecord {
    /// `source`.
    pub source: String,
    /// `severity`.
    pub severity: String,
    /// The evaluated message.
    pub message: String,
    /// Metadata pairs.
    pub metadata: Vec<(String, String)>,
}

/// The standard reason phrase of a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    std::str::from_utf8(crate::http::encode::canonical_reason(status)).unwrap_or("")
}
