//! Policy expressions: APIM's `@(...)` and `@{ ... }` C# subset, compiled once
//! and evaluated against a request's `Context`.
//!
//! PLACEHOLDER API: the expression helper replaces this file (keeping these
//! signatures) with the real lexer, parser, compiler and evaluator.

use std::sync::Arc;

use crate::policy::context::{Context, Response};

/// A value an expression produces or a variable holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `bool`.
    Bool(bool),
    /// `int`/`long`.
    Int(i64),
    /// `double`.
    Double(f64),
    /// `string`.
    Str(Arc<str>),
    /// `string[]` and other arrays.
    Array(Arc<Vec<Value>>),
    /// A JSON token (`JObject`, `JArray`, `JValue`).
    Json(Arc<serde_json::Value>),
    /// `DateTime`, milliseconds since the Unix epoch, UTC.
    DateTime(i64),
    /// `TimeSpan`, milliseconds.
    TimeSpan(i64),
    /// An `IResponse` (a `send-request` result held in a variable).
    Response(Arc<Response>),
}

impl Value {
    /// The value as C#'s `ToString()` writes it (`True`, `42`, text as is, `null` as empty).
    pub fn to_display_string(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(true) => "True".into(),
            Value::Bool(false) => "False".into(),
            Value::Int(i) => i.to_string(),
            Value::Double(d) => d.to_string(),
            Value::Str(s) => s.to_string(),
            Value::Array(_) => "System.String[]".into(),
            Value::Json(j) => j.to_string(),
            Value::DateTime(ms) => ms.to_string(),
            Value::TimeSpan(ms) => ms.to_string(),
            Value::Response(_) => "IResponse".into(),
        }
    }
}

/// A compile-time error: where in the expression source and what is wrong
/// (naming the unsupported construct when that is the reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at offset {offset})")]
pub struct ExprError {
    /// Byte offset in the source text given to `compile`.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// A run-time failure (null dereference, bad cast, parse failure...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    /// What went wrong.
    pub message: String,
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub struct Expr {
    _private: (),
}

impl Expr {
    /// Compiles `@(...)` or `@{ ... }` (the whole text, `@` included).
    pub fn compile(src: &str) -> Result<Expr, ExprError> {
        Err(ExprError {
            offset: 0,
            message: format!("expressions are not implemented yet: {src}"),
        })
    }

    /// Evaluates against a request's context.
    pub fn eval(&self, _ctx: &Context) -> Result<Value, EvalError> {
        Err(EvalError {
            message: "not implemented".into(),
        })
    }

    /// Whether evaluating reads `context.Request.Body`.
    pub fn reads_request_body(&self) -> bool {
        false
    }

    /// Whether evaluating reads `context.Response.Body`.
    pub fn reads_response_body(&self) -> bool {
        false
    }
}

/// A policy value: literal text, or an expression when it starts with `@(` or `@{`.
#[derive(Debug, Clone)]
pub enum Template {
    /// Text used as is.
    Literal(Arc<str>),
    /// An expression evaluated per request.
    Expr(Expr),
}

impl Template {
    /// Parses an attribute value or element text.
    pub fn compile(text: &str) -> Result<Template, ExprError> {
        let t = text.trim();
        if t.starts_with("@(") || t.starts_with("@{") {
            Ok(Template::Expr(Expr::compile(t)?))
        } else {
            Ok(Template::Literal(text.into()))
        }
    }

    /// The value: the literal as a string, or the expression's result.
    pub fn eval(&self, ctx: &Context) -> Result<Value, EvalError> {
        match self {
            Template::Literal(s) => Ok(Value::Str(s.clone())),
            Template::Expr(e) => e.eval(ctx),
        }
    }

    /// The value as text.
    pub fn eval_string(&self, ctx: &Context) -> Result<String, EvalError> {
        match self {
            Template::Literal(s) => Ok(s.to_string()),
            Template::Expr(e) => Ok(e.eval(ctx)?.to_display_string()),
        }
    }

    /// The literal text, if this is not an expression.
    pub fn literal(&self) -> Option<&str> {
        match self {
            Template::Literal(s) => Some(s),
            Template::Expr(_) => None,
        }
    }

    /// Whether evaluating reads the request body.
    pub fn reads_request_body(&self) -> bool {
        matches!(self, Template::Expr(e) if e.reads_request_body())
    }

    /// Whether evaluating reads the response body.
    pub fn reads_response_body(&self) -> bool {
        matches!(self, Template::Expr(e) if e.reads_response_body())
    }
}
