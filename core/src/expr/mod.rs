//! Policy expressions: APIM's `@(...)` and `@{ ... }` C# subset, compiled once
//! and evaluated against a request's `Context`.
//!
//! `lexer` → `parser` (to `ast`) → `compile` (names resolved to the enums of
//! `node`; statements in `stmt`, type tables in `types`) → `eval` (operators
//! in `ops`). Each .NET area (strings, dates, JSON, JWT, crypto, regex,
//! collections, conversions, math, `context`) keeps its compile-time and
//! run-time halves together in `area/`; the .NET algorithms they use are in
//! `strings`, `datetime`, `json`, `jwt`, `encoding`, `crypto` and `regexp`.
//! Values live in `value`. EXPRESSIONS.md at the repository root lists what
//! is supported.
//!
//! Expressions read the request through the `ExprContext` trait, which the
//! policy pipeline's context implements; this module does not depend on the
//! pipeline.

mod area;
mod ast;
mod compile;
pub mod crypto;
pub mod datetime;
pub mod encoding;
mod eval;
pub mod json;
pub mod jwt;
mod lexer;
mod node;
mod ops;
mod parser;
mod place;
pub mod regexp;
mod stmt;
pub mod strings;
mod types;
pub mod value;
pub mod xml;

#[cfg(test)]
mod tests;

use std::sync::Arc;

// The HTTP message types expressions read. They are the policy context's
// today and move to `http/`; this is the one line that names them.
pub(crate) use crate::http::{Headers, Response, Url};

pub use area::context::ExprContext;
pub use jwt::Jwt;
pub use lexer::expression_extent;
pub use node::{ErrField, SubField, UrlSrc};
pub use value::{Dict, Obj, Value};

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
    compiled: Arc<compile::Compiled>,
    seed: u64,
}

impl Expr {
    /// Compiles `@(...)` or `@{ ... }` (the whole text, `@` included).
    pub fn compile(src: &str) -> Result<Expr, ExprError> {
        let compiled = compile::compile(src)?;
        Ok(Expr {
            compiled: Arc::new(compiled),
            seed: encoding::fnv1a(src.as_bytes()),
        })
    }

    /// Evaluates against a request's context.
    pub fn eval(&self, ctx: &dyn ExprContext) -> Result<Value, EvalError> {
        eval::run(&self.compiled, ctx, self.seed)
    }

    /// Whether evaluating reads `context.Request.Body`.
    pub fn reads_request_body(&self) -> bool {
        self.compiled.reads_request_body
    }

    /// Whether evaluating reads `context.Response.Body`.
    pub fn reads_response_body(&self) -> bool {
        self.compiled.reads_response_body
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
            let lead = text.len() - text.trim_start().len();
            Expr::compile(t).map(Template::Expr).map_err(|e| ExprError {
                offset: e.offset + lead,
                message: e.message,
            })
        } else {
            Ok(Template::Literal(text.into()))
        }
    }

    /// The value: the literal as a string, or the expression's result.
    pub fn eval(&self, ctx: &dyn ExprContext) -> Result<Value, EvalError> {
        match self {
            Template::Literal(s) => Ok(Value::Str(s.clone())),
            Template::Expr(e) => e.eval(ctx),
        }
    }

    /// The value as text.
    pub fn eval_string(&self, ctx: &dyn ExprContext) -> Result<String, EvalError> {
        match self {
            Template::Literal(s) => Ok(s.to_string()),
            Template::Expr(e) => Ok(e.eval(ctx)?.to_display_string()),
        }
    }

    /// As [`Template::eval_string`], borrowing a literal instead of copying it.
    pub fn eval_str(&self, ctx: &dyn ExprContext) -> Result<std::borrow::Cow<'_, str>, EvalError> {
        match self {
            Template::Literal(s) => Ok(std::borrow::Cow::Borrowed(&**s)),
            Template::Expr(e) => Ok(std::borrow::Cow::Owned(e.eval(ctx)?.to_display_string())),
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
