//! Why a policy document does not compile, and how a policy fails at run time.

use super::context::Response;
use super::xml::{Element, Pos, XmlError};
use crate::callout::CalloutFailure;
use crate::expr::ExprError;

/// A policy document that cannot be compiled: where, which policy, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: <{policy}>: {message}")]
pub struct PolicyError {
    /// Position of the offending element in its document.
    pub pos: Pos,
    /// Element name (the policy), or `policies` for document-level errors.
    pub policy: String,
    /// The reason.
    pub message: String,
}

impl PolicyError {
    /// An error about element `el`.
    pub fn at(el: &Element, message: impl Into<String>) -> Self {
        PolicyError {
            pos: el.pos,
            policy: el.name.clone(),
            message: message.into(),
        }
    }

    /// A bad expression in attribute or text `what` of `el`.
    pub fn expr(el: &Element, what: &str, err: &ExprError) -> Self {
        PolicyError::at(el, format!("expression in {what}: {}", err.message))
    }
}

impl From<XmlError> for PolicyError {
    fn from(e: XmlError) -> Self {
        PolicyError {
            pos: e.pos,
            policy: e.element.unwrap_or_else(|| "policies".into()),
            message: e.message,
        }
    }
}

/// A policy that stopped the request at run time: the error for
/// `context.LastError`, and the response APIM would send if `<on-error>` does
/// not change it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// `LastError.Reason`, e.g. `RateLimitExceeded`.
    pub reason: String,
    /// `LastError.Message`.
    pub message: String,
    /// The response prepared for the client (e.g. 429 with Retry-After), if any;
    /// without one the client gets a 500.
    pub response: Option<Box<Response>>,
}

impl Failure {
    /// A failure without a prepared response (the client gets a 500).
    pub fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            reason: reason.into(),
            message: message.into(),
            response: None,
        }
    }
}

// Defined here rather than in `callout`, which sits below policies and must not
// name their types.
impl CalloutFailure {
    /// The failure as a policy's `send-request` sees it (`context.LastError`).
    pub fn to_policy_failure(&self) -> Failure {
        Failure::new(self.kind().last_error_reason(), self.to_string())
    }
}
