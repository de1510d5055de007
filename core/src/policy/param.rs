//! Typed policy attributes that may be literal or an expression, and the JSON
//! error responses APIM's access policies send.

// `Failure` carries the prepared response by value; it is the pipeline's type.

use super::attrs;
use super::context::{Context, Headers, Response};
use super::error::{Failure, PolicyError};
use super::xml::Element;
use crate::expr::Template;

/// A value type an attribute can hold.
pub trait ParamValue: Sized + Clone {
    /// What the attribute must look like, for error messages.
    const EXPECTED: &'static str;
    /// Parses the attribute or expression text.
    fn parse_param(s: &str) -> Option<Self>;
}

impl ParamValue for u64 {
    const EXPECTED: &'static str = "a non-negative integer";
    fn parse_param(s: &str) -> Option<Self> {
        s.trim().parse().ok()
    }
}

impl ParamValue for u16 {
    const EXPECTED: &'static str = "an integer from 0 to 65535";
    fn parse_param(s: &str) -> Option<Self> {
        s.trim().parse().ok()
    }
}

impl ParamValue for bool {
    const EXPECTED: &'static str = "true or false";
    fn parse_param(s: &str) -> Option<Self> {
        // Expressions print C# booleans as `True`/`False`.
        let s = s.trim();
        if s.eq_ignore_ascii_case("true") {
            Some(true)
        } else if s.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        }
    }
}

impl ParamValue for String {
    const EXPECTED: &'static str = "text";
    fn parse_param(s: &str) -> Option<Self> {
        Some(s.to_string())
    }
}

/// An attribute known at compile time, or an expression evaluated per request.
#[derive(Debug, Clone)]
pub enum Param<T> {
    /// A literal value, checked when the policy compiled.
    Lit(T),
    /// An expression, evaluated and parsed per request.
    Expr(Template),
}

impl<T: ParamValue> Param<T> {
    /// Reads attribute `name` of `el`, checking literals now.
    pub fn attr(el: &Element, name: &str) -> Result<Option<Param<T>>, PolicyError> {
        match attrs::template(el, name)? {
            None => Ok(None),
            Some(t) => Self::from_template(el, &format!("attribute '{name}'"), t).map(Some),
        }
    }

    /// Reads attribute `name`, using `default` when it is absent.
    pub fn attr_or(el: &Element, name: &str, default: T) -> Result<Param<T>, PolicyError> {
        Ok(Self::attr(el, name)?.unwrap_or(Param::Lit(default)))
    }

    /// Reads a required attribute.
    pub fn required(el: &Element, name: &str) -> Result<Param<T>, PolicyError> {
        Self::attr(el, name)?
            .ok_or_else(|| PolicyError::at(el, format!("attribute '{name}' is required")))
    }

    /// The element's text as a parameter.
    pub fn text(el: &Element) -> Result<Param<T>, PolicyError> {
        let t = attrs::text_template(el)?;
        Self::from_template(el, "text", t)
    }

    fn from_template(el: &Element, what: &str, t: Template) -> Result<Param<T>, PolicyError> {
        match t.literal() {
            Some(lit) => T::parse_param(lit).map(Param::Lit).ok_or_else(|| {
                PolicyError::at(
                    el,
                    format!("{what} must be {}, not '{}'", T::EXPECTED, lit.trim()),
                )
            }),
            None => Ok(Param::Expr(t)),
        }
    }

    /// The value for this request.
    pub fn resolve(&self, ctx: &Context) -> Result<T, Failure> {
        match self {
            Param::Lit(v) => Ok(v.clone()),
            Param::Expr(t) => {
                let s = t.eval_string(ctx).map_err(|e| eval_failure(&e.message))?;
                T::parse_param(&s).ok_or_else(|| {
                    eval_failure(&format!("expression value '{s}' is not {}", T::EXPECTED))
                })
            }
        }
    }

    /// The literal value, if this is not an expression.
    pub fn literal(&self) -> Option<&T> {
        match self {
            Param::Lit(v) => Some(v),
            Param::Expr(_) => None,
        }
    }

    /// Whether this is an expression.
    pub fn is_expr(&self) -> bool {
        matches!(self, Param::Expr(_))
    }
}

/// The failure APIM reports when an expression throws or yields a bad value.
pub fn eval_failure(message: &str) -> Failure {
    Failure::new("ExpressionValueEvaluationFailure", message)
}

/// Evaluates a text template for a request.
pub fn eval_text(t: &Template, ctx: &Context) -> Result<String, Failure> {
    t.eval_string(ctx).map_err(|e| eval_failure(&e.message))
}

/// Evaluates a text template and hands the text to `f`, without copying a
/// literal or an expression's string result first.
pub fn with_text<R>(t: &Template, ctx: &Context, f: impl FnOnce(&str) -> R) -> Result<R, Failure> {
    match t {
        Template::Literal(s) => Ok(f(s)),
        Template::Expr(e) => match e.eval(ctx).map_err(|e| eval_failure(&e.message))? {
            crate::expr::Value::Str(s) => Ok(f(&s)),
            other => Ok(f(&other.to_display_string())),
        },
    }
}

/// `{ "statusCode": N, "message": "..." }`, the body of APIM's own error responses.
pub fn json_error_body(status: u16, message: &str) -> String {
    // serde_json escapes the message; the layout matches APIM's one-line body.
    let msg = serde_json::Value::String(message.to_string());
    format!("{{ \"statusCode\": {status}, \"message\": {msg} }}")
}

/// A JSON error response as APIM's access policies send it.
pub fn json_error_response(status: u16, reason: &str, message: &str) -> Response {
    let mut headers = Headers::new();
    headers.append("Content-Type", "application/json");
    Response {
        status,
        reason: reason.to_string(),
        headers,
        body: Some(json_error_body(status, message).into()),
    }
}

/// Parses a `Retry-After`-style count of seconds or a .NET TimeSpan
/// (`[d.]hh:mm:ss`), as APIM accepts for durations such as `clock-skew`.
pub fn parse_seconds_or_timespan(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let (days, rest) = match s.split_once('.') {
        Some((d, r)) if r.contains(':') => (d.parse::<u64>().ok()?, r),
        _ => (0, s),
    };
    let mut parts = rest.split(':');
    let h: u64 = parts.next()?.parse().ok()?;
    let m: u64 = parts.next()?.parse().ok()?;
    let sec = parts.next()?;
    // Fractional seconds are dropped: every caller works in whole seconds.
    let sec: u64 = sec.split('.').next()?.parse().ok()?;
    if parts.next().is_some() || m >= 60 || sec >= 60 {
        return None;
    }
    days.checked_mul(86_400)?
        .checked_add(h.checked_mul(3600)?)?
        .checked_add(m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::xml;

    #[test]
    fn literals_are_checked_at_compile_time() {
        let el = xml::parse(r#"<p n="12" b="True" bad="x"/>"#).expect("xml");
        let n: Param<u64> = Param::required(&el, "n").expect("n");
        assert_eq!(n.literal(), Some(&12));
        let b: Param<bool> = Param::required(&el, "b").expect("b");
        assert_eq!(b.resolve(&Context::default()), Ok(true));
        let err = Param::<u64>::required(&el, "bad").expect_err("bad");
        assert!(err.message.contains("non-negative integer"), "{err}");
        assert!(Param::<u64>::required(&el, "missing").is_err());
        let d: Param<u64> = Param::attr_or(&el, "missing", 5).expect("default");
        assert_eq!(d.literal(), Some(&5));
    }

    #[test]
    fn error_bodies_match_apim() {
        assert_eq!(
            json_error_body(429, "Rate limit is exceeded. Try again in 5 seconds."),
            r#"{ "statusCode": 429, "message": "Rate limit is exceeded. Try again in 5 seconds." }"#
        );
        assert_eq!(
            json_error_body(401, "a \"quoted\" one"),
            r#"{ "statusCode": 401, "message": "a \"quoted\" one" }"#
        );
        let r = json_error_response(403, "Forbidden", "Forbidden");
        assert_eq!(r.headers.get("content-type"), Some("application/json"));
    }

    #[test]
    fn timespans() {
        assert_eq!(parse_seconds_or_timespan("30"), Some(30));
        assert_eq!(parse_seconds_or_timespan("00:05:00"), Some(300));
        assert_eq!(parse_seconds_or_timespan("1.00:00:01"), Some(86_401));
        assert_eq!(parse_seconds_or_timespan("00:00:10.5"), Some(10));
        assert_eq!(parse_seconds_or_timespan("00:61:00"), None);
        assert_eq!(parse_seconds_or_timespan("-1"), None);
        assert_eq!(parse_seconds_or_timespan("abc"), None);
    }
}
