//! The evaluator: walks the compiled tree against a `Context`, read-only.

use std::cmp::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value as J;

use super::ast::{BinOp, UnOp};
use super::compile::Compiled;
use super::crypto;
use super::datetime;
use super::encoding;
use super::json;
use super::jwt::Jwt;
use super::node::*;
use super::regexp::{self, DotnetRegex};
use super::strings;
use super::value::{format_guid, parse_guid, Dict, Obj, Value};
use super::EvalError;
use crate::policy::context::{Context, Response, Url};

/// C#'s `NullReferenceException` message.
pub const NRE: &str = "Object reference not set to an instance of an object.";

/// Loop iterations and lambda calls allowed per evaluation.
const BUDGET: u64 = 1_000_000;

/// Longest string or array an evaluation may build (bytes or items).
const MAX_LEN: usize = 16 << 20;

type R<T> = Result<T, EvalError>;

fn fail<T>(msg: impl Into<String>) -> R<T> {
    Err(EvalError {
        message: msg.into(),
    })
}

fn nre<T>(what: &str) -> R<T> {
    fail(format!("{NRE} ({what} is null)"))
}

enum Flow {
    Normal,
    Return(Value),
    Break,
    Continue,
}

/// Local function calls nested deeper than this fail (recursion included):
/// each level may nest expressions as deep as the parser allows, and the
/// evaluator must stay within a small thread stack.
const MAX_CALL_DEPTH: usize = 16;

/// Per-evaluation state.
pub struct Frame<'c> {
    ctx: &'c Context,
    funcs: &'c [Func],
    locals: Vec<Value>,
    budget: u64,
    rng: u64,
    depth: usize,
}

/// Evaluates a compiled program; `seed` mixes into `Guid.NewGuid()`/`Random`.
pub fn run(c: &Compiled, ctx: &Context, seed: u64) -> R<Value> {
    let mut rng = seed
        ^ ctx.rng_seed
        ^ encoding::fnv1a(ctx.request_id.as_bytes())
        ^ (ctx.now_unix_ms as u64).rotate_left(17)
        ^ (ctx.elapsed.as_nanos() as u64).rotate_left(33)
        ^ (ctx.variables.len() as u64).rotate_left(47);
    encoding::splitmix64(&mut rng);
    let mut f = Frame {
        ctx,
        funcs: &c.funcs,
        locals: vec![Value::Null; c.slots as usize],
        budget: BUDGET,
        rng,
        depth: 0,
    };
    match &c.program {
        Program::Expr(n) => f.eval(n),
        Program::Block(stmts) => match f.block(stmts)? {
            Flow::Return(v) => Ok(v),
            _ => fail("the expression ended without returning a value"),
        },
    }
}

fn truthy(v: &Value) -> R<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Json(j) => match j.as_ref() {
            J::Bool(b) => Ok(*b),
            _ => fail(format!(
                "Cannot implicitly convert type '{}' to 'bool'",
                v.type_name()
            )),
        },
        Value::Null => fail(format!("{NRE} (a condition is null)")),
        _ => fail(format!(
            "Cannot implicitly convert type '{}' to 'bool'",
            v.type_name()
        )),
    }
}

/// The .NET type name of a value, for cast errors.
fn dotnet_name(v: &Value) -> String {
    match v {
        Value::Str(_) => "System.String".into(),
        Value::Int(_) => "System.Int32".into(),
        Value::Double(_) => "System.Double".into(),
        Value::Bool(_) => "System.Boolean".into(),
        Value::Char(_) => "System.Char".into(),
        Value::Json(j) => format!("Newtonsoft.Json.Linq.{}", json::token_type_name(j)),
        Value::DateTime(_) => "System.DateTime".into(),
        Value::TimeSpan(_) => "System.TimeSpan".into(),
        Value::Guid(_) => "System.Guid".into(),
        Value::Bytes(_) => "System.Byte[]".into(),
        Value::Array(_) => "System.String[]".into(),
        other => other.type_name().into(),
    }
}

fn cast_name(t: CastTy) -> &'static str {
    match t {
        CastTy::Str => "System.String",
        CastTy::Int(IntW::I64) => "System.Int64",
        CastTy::Int(_) => "System.Int32",
        CastTy::Double => "System.Double",
        CastTy::Bool => "System.Boolean",
        CastTy::Char => "System.Char",
        CastTy::Object => "System.Object",
        CastTy::JObject => "Newtonsoft.Json.Linq.JObject",
        CastTy::JArray => "Newtonsoft.Json.Linq.JArray",
        CastTy::JToken => "Newtonsoft.Json.Linq.JToken",
        CastTy::JValue => "Newtonsoft.Json.Linq.JValue",
        CastTy::Response => "IResponse",
        CastTy::Jwt => "Jwt",
        CastTy::DateTime => "System.DateTime",
        CastTy::TimeSpan => "System.TimeSpan",
        CastTy::Guid => "System.Guid",
        CastTy::Uri => "System.Uri",
        CastTy::Bytes => "System.Byte[]",
        CastTy::Array => "System.Array",
        CastTy::Dict => "System.Collections.Generic.IDictionary",
        CastTy::Basic => "BasicAuthCredentials",
        CastTy::Exception => "System.Exception",
        CastTy::Crypto => "System.Security.Cryptography.HashAlgorithm",
    }
}

fn invalid_cast<T>(v: &Value, t: CastTy) -> R<T> {
    fail(format!(
        "Unable to cast object of type '{}' to type '{}'.",
        dotnet_name(v),
        cast_name(t)
    ))
}

fn wrap_int(i: i64, w: IntW) -> i64 {
    match w {
        IntW::U8 => i as u8 as i64,
        IntW::I8 => i as i8 as i64,
        IntW::I16 => i as i16 as i64,
        IntW::U16 => i as u16 as i64,
        IntW::I32 => i as i32 as i64,
        IntW::U32 => i as u32 as i64,
        IntW::I64 | IntW::U64 => i,
    }
}

fn f64_to_i64(d: f64) -> i64 {
    if d.is_nan() {
        0
    } else {
        d as i64
    }
}

/// `(T)v`.
pub fn cast(v: Value, t: CastTy, nullable: bool) -> R<Value> {
    if let Value::Null = v {
        return match t {
            CastTy::Int(_)
            | CastTy::Double
            | CastTy::Bool
            | CastTy::Char
            | CastTy::DateTime
            | CastTy::TimeSpan
            | CastTy::Guid
                if !nullable =>
            {
                nre("the value being cast")
            }
            _ => Ok(Value::Null),
        };
    }
    match t {
        CastTy::Object => Ok(v),
        CastTy::Str => match &v {
            Value::Str(_) => Ok(v),
            Value::Json(j) => json::to_string_cast(j).map_err(|m| EvalError { message: m }),
            Value::Char(c) => Ok(Value::Str(c.to_string().into())),
            Value::Object(o) if matches!(**o, Obj::Uri(_)) => {
                Ok(Value::Str(v.to_display_string().into()))
            }
            _ => invalid_cast(&v, t),
        },
        CastTy::Int(w) => match &v {
            Value::Int(i) => Ok(Value::Int(wrap_int(*i, w))),
            Value::Double(d) => Ok(Value::Int(wrap_int(f64_to_i64(*d), w))),
            Value::Char(c) => Ok(Value::Int(wrap_int(*c as i64, w))),
            Value::Json(j) => {
                match json::to_int_cast(j, if w == IntW::I64 { "Int64" } else { "Int32" }) {
                    Ok(Value::Int(i)) => Ok(Value::Int(wrap_int(i, w))),
                    Ok(other) => Ok(other),
                    Err(m) => fail(m),
                }
            }
            _ => invalid_cast(&v, t),
        },
        CastTy::Double => match &v {
            Value::Int(i) => Ok(Value::Double(*i as f64)),
            Value::Double(_) => Ok(v),
            Value::Char(c) => Ok(Value::Double(*c as u32 as f64)),
            Value::Json(j) => json::to_double_cast(j).map_err(|m| EvalError { message: m }),
            _ => invalid_cast(&v, t),
        },
        CastTy::Bool => match &v {
            Value::Bool(_) => Ok(v),
            Value::Json(j) => json::to_bool_cast(j).map_err(|m| EvalError { message: m }),
            _ => invalid_cast(&v, t),
        },
        CastTy::Char => match &v {
            Value::Char(_) => Ok(v),
            Value::Int(i) => Ok(Value::Char(
                char::from_u32(*i as u16 as u32).unwrap_or('\u{fffd}'),
            )),
            Value::Json(j) => match j.as_str() {
                Some(s) if s.chars().count() == 1 => {
                    Ok(Value::Char(s.chars().next().unwrap_or(' ')))
                }
                _ => invalid_cast(&v, t),
            },
            _ => invalid_cast(&v, t),
        },
        CastTy::JObject => match &v {
            Value::Json(j) if j.is_object() => Ok(v),
            _ => invalid_cast(&v, t),
        },
        CastTy::JArray => match &v {
            Value::Json(j) if j.is_array() => Ok(v),
            _ => invalid_cast(&v, t),
        },
        CastTy::JToken | CastTy::JValue => match &v {
            Value::Json(j) if t == CastTy::JToken || !(j.is_object() || j.is_array()) => Ok(v),
            Value::Str(_)
            | Value::Int(_)
            | Value::Double(_)
            | Value::Bool(_)
            | Value::DateTime(_)
            | Value::Guid(_) => Ok(Value::Json(Arc::new(v.to_json()))),
            _ => invalid_cast(&v, t),
        },
        CastTy::Response => match &v {
            Value::Response(_) => Ok(v),
            _ => invalid_cast(&v, t),
        },
        CastTy::Jwt => match &v {
            Value::Jwt(_) => Ok(v),
            _ => invalid_cast(&v, t),
        },
        CastTy::DateTime => match &v {
            Value::DateTime(_) => Ok(v),
            Value::Json(j) => match j.as_str().and_then(datetime::parse) {
                Some(ms) => Ok(Value::DateTime(ms)),
                None => invalid_cast(&v, t),
            },
            _ => invalid_cast(&v, t),
        },
        CastTy::TimeSpan => match &v {
            Value::TimeSpan(_) => Ok(v),
            _ => invalid_cast(&v, t),
        },
        CastTy::Guid => match &v {
            Value::Guid(_) => Ok(v),
            _ => invalid_cast(&v, t),
        },
        CastTy::Uri => match &v {
            Value::Object(o) if matches!(**o, Obj::Uri(_)) => Ok(v),
            _ => invalid_cast(&v, t),
        },
        CastTy::Bytes => match &v {
            Value::Bytes(_) => Ok(v),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items.iter() {
                    match i {
                        Value::Int(n) => out.push(*n as u8),
                        _ => return invalid_cast(&v, t),
                    }
                }
                Ok(Value::Bytes(Bytes::from(out)))
            }
            _ => invalid_cast(&v, t),
        },
        CastTy::Array => match &v {
            Value::Array(_) => Ok(v),
            Value::Json(j) if j.is_array() => Ok(v),
            Value::Bytes(_) => Ok(v),
            _ => invalid_cast(&v, t),
        },
        CastTy::Dict => match &v {
            Value::Dict(_) => Ok(v),
            Value::Json(j) if j.is_object() => Ok(v),
            _ => invalid_cast(&v, t),
        },
        CastTy::Basic => match &v {
            Value::Object(o) if matches!(**o, Obj::Basic { .. }) => Ok(v),
            _ => invalid_cast(&v, t),
        },
        CastTy::Exception => Ok(v),
        CastTy::Crypto => match &v {
            Value::Object(o) if matches!(**o, Obj::Hasher(..)) => Ok(v),
            _ => invalid_cast(&v, t),
        },
    }
}

/// Whether `v` is a `T` (`is T`).
fn is_type(v: &Value, t: CastTy) -> bool {
    match (t, v) {
        (_, Value::Null) => false,
        (CastTy::Object, _) => true,
        (CastTy::Str, Value::Str(_)) => true,
        (CastTy::Int(_), Value::Int(_)) => true,
        (CastTy::Double, Value::Double(_)) => true,
        (CastTy::Bool, Value::Bool(_)) => true,
        (CastTy::Char, Value::Char(_)) => true,
        (CastTy::JObject, Value::Json(j)) => j.is_object(),
        (CastTy::JArray, Value::Json(j)) => j.is_array(),
        (CastTy::JToken, Value::Json(_)) => true,
        (CastTy::JValue, Value::Json(j)) => !(j.is_object() || j.is_array()),
        (CastTy::Response, Value::Response(_)) => true,
        (CastTy::Jwt, Value::Jwt(_)) => true,
        (CastTy::DateTime, Value::DateTime(_)) => true,
        (CastTy::TimeSpan, Value::TimeSpan(_)) => true,
        (CastTy::Guid, Value::Guid(_)) => true,
        (CastTy::Bytes, Value::Bytes(_)) => true,
        (CastTy::Array, Value::Array(_) | Value::Bytes(_)) => true,
        (CastTy::Array, Value::Json(j)) => j.is_array(),
        (CastTy::Dict, Value::Dict(_)) => true,
        (CastTy::Uri, Value::Object(o)) => matches!(**o, Obj::Uri(_)),
        (CastTy::Basic, Value::Object(o)) => matches!(**o, Obj::Basic { .. }),
        (CastTy::Exception, Value::Object(o)) => matches!(**o, Obj::KeyValue(..)),
        (CastTy::Crypto, Value::Object(o)) => matches!(**o, Obj::Hasher(..)),
        _ => false,
    }
}

fn default_of(t: Option<CastTy>) -> Value {
    match t {
        Some(CastTy::Int(_)) => Value::Int(0),
        Some(CastTy::Double) => Value::Double(0.0),
        Some(CastTy::Bool) => Value::Bool(false),
        Some(CastTy::DateTime) => Value::DateTime(datetime::MIN_MS),
        Some(CastTy::TimeSpan) => Value::TimeSpan(0),
        Some(CastTy::Guid) => Value::Guid(0),
        Some(CastTy::Char) => Value::Char('\0'),
        _ => Value::Null,
    }
}

/// Value equality as `==` and `Equals` see it (strings ordinal).
pub fn equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Str(x), Value::Json(j)) | (Value::Json(j), Value::Str(x)) => {
            j.as_str() == Some(&**x)
        }
        (Value::Char(x), Value::Char(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Json(x), Value::Json(y)) => x == y,
        (Value::Json(j), Value::Bool(b)) | (Value::Bool(b), Value::Json(j)) => {
            j.as_bool() == Some(*b)
        }
        (Value::DateTime(x), Value::DateTime(y)) => x == y,
        (Value::TimeSpan(x), Value::TimeSpan(y)) => x == y,
        (Value::Guid(x), Value::Guid(y)) => x == y,
        _ => match (num(a), num(b)) {
            (Some(Num::I(x)), Some(Num::I(y))) => x == y,
            (Some(x), Some(y)) => x.f() == y.f(),
            _ => a == b,
        },
    }
}

#[derive(Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

fn num(v: &Value) -> Option<Num> {
    match v {
        Value::Int(i) => Some(Num::I(*i)),
        Value::Double(d) => Some(Num::F(*d)),
        Value::Char(c) => Some(Num::I(*c as i64)),
        Value::Json(j) => match j.as_ref() {
            J::Number(n) => n.as_i64().map(Num::I).or_else(|| n.as_f64().map(Num::F)),
            _ => None,
        },
        _ => None,
    }
}

fn compare(a: &Value, b: &Value) -> R<Ordering> {
    match (a, b) {
        (Value::DateTime(x), Value::DateTime(y)) | (Value::TimeSpan(x), Value::TimeSpan(y)) => {
            Ok(x.cmp(y))
        }
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Guid(x), Value::Guid(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        _ => match (num(a), num(b)) {
            (Some(Num::I(x)), Some(Num::I(y))) => Ok(x.cmp(&y)),
            (Some(x), Some(y)) => Ok(x.f().partial_cmp(&y.f()).unwrap_or(Ordering::Less)),
            _ => fail(format!(
                "cannot compare '{}' and '{}'",
                a.type_name(),
                b.type_name()
            )),
        },
    }
}

fn check_len(n: usize) -> R<()> {
    if n > MAX_LEN {
        return fail("the result is too large");
    }
    Ok(())
}

fn concat(a: &Value, b: &Value) -> R<Value> {
    let (x, y) = (a.to_display_string(), b.to_display_string());
    check_len(x.len() + y.len())?;
    Ok(Value::Str((x + &y).into()))
}

fn arith(op: BinOp, a: &Value, b: &Value) -> R<Value> {
    use BinOp::*;
    if op == Add && (matches!(a, Value::Str(_)) || matches!(b, Value::Str(_))) {
        return concat(a, b);
    }
    match (op, a, b) {
        (Sub, Value::DateTime(x), Value::DateTime(y)) => {
            return Ok(Value::TimeSpan(x.saturating_sub(*y)))
        }
        (Add, Value::DateTime(x), Value::TimeSpan(y))
        | (Add, Value::TimeSpan(y), Value::DateTime(x)) => return date(x.saturating_add(*y)),
        (Sub, Value::DateTime(x), Value::TimeSpan(y)) => return date(x.saturating_sub(*y)),
        (Add, Value::TimeSpan(x), Value::TimeSpan(y)) => {
            return Ok(Value::TimeSpan(x.saturating_add(*y)))
        }
        (Sub, Value::TimeSpan(x), Value::TimeSpan(y)) => {
            return Ok(Value::TimeSpan(x.saturating_sub(*y)))
        }
        (Mul, Value::TimeSpan(x), _) => {
            if let Some(n) = num(b) {
                return Ok(Value::TimeSpan(f64_to_i64(*x as f64 * n.f())));
            }
        }
        (Div, Value::TimeSpan(x), _) => {
            if let Some(n) = num(b) {
                return Ok(Value::TimeSpan(f64_to_i64(*x as f64 / n.f())));
            }
        }
        (BitAnd | BitOr | BitXor, Value::Bool(x), Value::Bool(y)) => {
            return Ok(Value::Bool(match op {
                BitAnd => x & y,
                BitOr => x | y,
                _ => x ^ y,
            }))
        }
        (Add, Value::Null, _) | (Add, _, Value::Null) => return Ok(Value::Null),
        _ => {}
    }
    let (Some(x), Some(y)) = (num(a), num(b)) else {
        if matches!(a, Value::Null) || matches!(b, Value::Null) {
            return Ok(Value::Null);
        }
        return fail(format!(
            "Operator '{}' cannot be applied to operands of type '{}' and '{}'",
            op_str(op),
            a.type_name(),
            b.type_name()
        ));
    };
    match (x, y) {
        (Num::I(x), Num::I(y)) => Ok(Value::Int(match op {
            Add => x.wrapping_add(y),
            Sub => x.wrapping_sub(y),
            Mul => x.wrapping_mul(y),
            Div => {
                if y == 0 {
                    return fail("Attempted to divide by zero.");
                }
                x.wrapping_div(y)
            }
            Rem => {
                if y == 0 {
                    return fail("Attempted to divide by zero.");
                }
                x.wrapping_rem(y)
            }
            BitAnd => x & y,
            BitOr => x | y,
            BitXor => x ^ y,
            Shl => x.wrapping_shl((y & 63) as u32),
            Shr => x.wrapping_shr((y & 63) as u32),
            _ => return fail("unsupported operator"),
        })),
        (x, y) => {
            let (x, y) = (x.f(), y.f());
            Ok(Value::Double(match op {
                Add => x + y,
                Sub => x - y,
                Mul => x * y,
                Div => x / y,
                Rem => x % y,
                _ => {
                    return fail(format!(
                        "Operator '{}' cannot be applied to operands of type 'double'",
                        op_str(op)
                    ))
                }
            }))
        }
    }
}

fn op_str(op: BinOp) -> &'static str {
    use BinOp::*;
    match op {
        Add => "+",
        Sub => "-",
        Mul => "*",
        Div => "/",
        Rem => "%",
        Eq => "==",
        Ne => "!=",
        Lt => "<",
        Le => "<=",
        Gt => ">",
        Ge => ">=",
        And => "&&",
        Or => "||",
        BitAnd => "&",
        BitOr => "|",
        BitXor => "^",
        Shl => "<<",
        Shr => ">>",
        Coalesce => "??",
    }
}

fn date(ms: i64) -> R<Value> {
    if datetime::in_range(ms) {
        Ok(Value::DateTime(ms))
    } else {
        fail("The added or subtracted value results in an un-representable DateTime.")
    }
}

fn str_arg(v: &Value, what: &str) -> R<Arc<str>> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        Value::Char(c) => Ok(c.to_string().into()),
        Value::Json(j) if j.is_string() => Ok(j.as_str().unwrap_or_default().into()),
        Value::Null => fail(format!("Value cannot be null. (Parameter '{what}')")),
        other => fail(format!(
            "expected a string for '{what}', got {}",
            other.type_name()
        )),
    }
}

fn int_arg(v: &Value, what: &str) -> R<i64> {
    match num(v) {
        Some(Num::I(i)) => Ok(i),
        Some(Num::F(f)) if f.fract() == 0.0 => Ok(f64_to_i64(f)),
        _ => fail(format!(
            "expected an integer for '{what}', got {}",
            v.type_name()
        )),
    }
}

fn f64_arg(v: &Value, what: &str) -> R<f64> {
    match num(v) {
        Some(n) => Ok(n.f()),
        None => fail(format!(
            "expected a number for '{what}', got {}",
            v.type_name()
        )),
    }
}

fn idx_arg(v: &Value, what: &str) -> R<usize> {
    let i = int_arg(v, what)?;
    usize::try_from(i).map_err(|_| EvalError {
        message: format!("Index was out of range. Must be non-negative. (Parameter '{what}')"),
    })
}

fn bytes_arg(v: &Value) -> R<Bytes> {
    match v {
        Value::Bytes(b) => Ok(b.clone()),
        Value::Array(_) => match cast(v.clone(), CastTy::Bytes, false)? {
            Value::Bytes(b) => Ok(b),
            _ => fail("expected a byte[]"),
        },
        Value::Null => fail("Value cannot be null. (Parameter 'bytes')"),
        other => fail(format!("expected a byte[], got {}", other.type_name())),
    }
}

fn ignore_case(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Int(code)) => code % 2 == 1,
        Some(Value::Bool(b)) => *b,
        _ => false,
    }
}

fn arr(items: Vec<Value>) -> Value {
    Value::Array(Arc::new(items))
}

fn strs(items: Vec<String>) -> Value {
    arr(items.into_iter().map(|s| Value::Str(s.into())).collect())
}

fn s(v: impl Into<Arc<str>>) -> Value {
    Value::Str(v.into())
}

fn url(ctx: &Context, src: UrlSrc) -> &Url {
    match src {
        UrlSrc::Request => &ctx.request.url,
        UrlSrc::Original => &ctx.request.original_url,
        UrlSrc::Service => &ctx.fixed.api.service_url,
    }
}

fn query_dict(u: &Url) -> Dict {
    let mut d = Dict::default();
    for (k, v) in &u.query {
        push_multi(&mut d, k, v, false);
    }
    d
}

fn push_multi(d: &mut Dict, k: &str, v: &str, ignore_case: bool) {
    let found = d.entries.iter_mut().find(|(n, _)| {
        if ignore_case {
            n.eq_ignore_ascii_case(k)
        } else {
            &**n == k
        }
    });
    match found {
        Some((_, Value::Array(items))) => Arc::make_mut(items).push(s(v)),
        _ => d.entries.push((k.into(), arr(vec![s(v)]))),
    }
}

fn headers_dict(h: &crate::policy::context::Headers) -> Dict {
    let mut d = Dict {
        entries: Vec::new(),
        ignore_case: true,
    };
    for (k, v) in h.iter() {
        push_multi(&mut d, k, v, true);
    }
    d
}

fn response_value(r: &Response) -> Value {
    Value::Response(Arc::new(r.clone()))
}

/// A sequence's items (arrays, JSON arrays and objects, strings, bytes, dictionaries).
fn items(v: &Value) -> R<Vec<Value>> {
    Ok(match v {
        Value::Array(a) => a.as_ref().clone(),
        Value::Json(j) => match j.as_ref() {
            J::Array(a) => a.iter().map(|x| json::token(x.clone())).collect(),
            J::Object(m) => m
                .iter()
                .map(|(k, x)| Value::Object(Arc::new(Obj::Property(k.as_str().into(), x.clone()))))
                .collect(),
            _ => return fail("Cannot access child value on Newtonsoft.Json.Linq.JValue."),
        },
        Value::Str(st) => st.chars().map(Value::Char).collect(),
        Value::Bytes(b) => b.iter().map(|x| Value::Int(*x as i64)).collect(),
        Value::Dict(d) => d
            .entries
            .iter()
            .map(|(k, x)| Value::Object(Arc::new(Obj::KeyValue(k.clone(), x.clone()))))
            .collect(),
        Value::Null => return nre("the sequence"),
        other => return fail(format!("'{}' is not a sequence", other.type_name())),
    })
}

fn index_value(base: &Value, key: &Value) -> R<Value> {
    match base {
        Value::Null => nre("the indexed value"),
        Value::Str(st) => {
            let i = idx_arg(key, "index")?;
            match st.chars().nth(i) {
                Some(c) => Ok(Value::Char(c)),
                None => fail("Index was outside the bounds of the array."),
            }
        }
        Value::Array(a) => {
            let i = idx_arg(key, "index")?;
            a.get(i)
                .cloned()
                .map_or_else(|| fail("Index was outside the bounds of the array."), Ok)
        }
        Value::Bytes(b) => {
            let i = idx_arg(key, "index")?;
            b.get(i)
                .map(|x| Value::Int(*x as i64))
                .map_or_else(|| fail("Index was outside the bounds of the array."), Ok)
        }
        Value::Json(j) => match (j.as_ref(), key) {
            (J::Object(m), k) => {
                let k = str_arg(k, "propertyName").map_err(|_| EvalError {
                    message: "Accessed JObject values with invalid key value. Object property name expected.".into(),
                })?;
                Ok(m.get(&*k)
                    .map(|x| json::token(x.clone()))
                    .unwrap_or(Value::Null))
            }
            (J::Array(a), k) => {
                let i = match num(k) {
                    Some(Num::I(i)) => i,
                    _ => return fail("Accessed JArray values with invalid key value. Int32 array index expected."),
                };
                match usize::try_from(i).ok().and_then(|i| a.get(i)) {
                    Some(x) => Ok(json::token(x.clone())),
                    None => fail("Index was out of range. Must be non-negative and less than the size of the collection."),
                }
            }
            _ => fail("Cannot access child value on Newtonsoft.Json.Linq.JValue."),
        },
        Value::Dict(d) => {
            let k = str_arg(key, "key")?;
            match d.get(&k) {
                Some(x) => Ok(x.clone()),
                None => fail(format!(
                    "The given key '{k}' was not present in the dictionary."
                )),
            }
        }
        Value::Object(o) if matches!(**o, Obj::Groups(_)) => {
            let Obj::Groups(m) = &**o else {
                return fail("internal error: not a GroupCollection");
            };
            let g = match key {
                Value::Str(name) => m.group_by_name(name),
                k => m.group(int_arg(k, "groupnum")?),
            };
            Ok(Value::Object(Arc::new(Obj::Group(g))))
        }
        other => fail(format!(
            "Cannot apply indexing to a value of type '{}'",
            other.type_name()
        )),
    }
}

impl<'c> Frame<'c> {
    fn tick(&mut self) -> R<()> {
        if self.budget == 0 {
            return fail("the expression ran too long (loop limit reached)");
        }
        self.budget -= 1;
        Ok(())
    }

    fn next_random(&mut self) -> u64 {
        encoding::splitmix64(&mut self.rng)
    }

    fn set_local(&mut self, slot: u32, v: Value) {
        if let Some(l) = self.locals.get_mut(slot as usize) {
            *l = v;
        }
    }

    fn local(&self, slot: u32) -> Value {
        self.locals
            .get(slot as usize)
            .cloned()
            .unwrap_or(Value::Null)
    }

    // ---- statements ----

    fn block(&mut self, stmts: &[Stmt]) -> R<Flow> {
        for st in stmts {
            match self.stmt(st)? {
                Flow::Normal => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Normal)
    }

    fn stmt(&mut self, st: &Stmt) -> R<Flow> {
        match st {
            Stmt::Expr(n) => {
                self.eval(n)?;
                Ok(Flow::Normal)
            }
            Stmt::Set(slot, n) => {
                let v = self.eval(n)?;
                self.set_local(*slot, v);
                Ok(Flow::Normal)
            }
            Stmt::If(c, a, b) => {
                let c = self.eval(c)?;
                if truthy(&c)? {
                    self.stmt(a)
                } else if let Some(b) = b {
                    self.stmt(b)
                } else {
                    Ok(Flow::Normal)
                }
            }
            Stmt::Block(b) => self.block(b),
            Stmt::Return(n) => Ok(Flow::Return(self.eval(n)?)),
            Stmt::Foreach(slot, it, body) => self.foreach(*slot, it, body),
            Stmt::While(c, body) => {
                loop {
                    self.tick()?;
                    let cv = self.eval(c)?;
                    if !truthy(&cv)? {
                        break;
                    }
                    match self.stmt(body)? {
                        Flow::Break => break,
                        Flow::Return(v) => return Ok(Flow::Return(v)),
                        _ => {}
                    }
                }
                Ok(Flow::Normal)
            }
            Stmt::DoWhile(body, c) => {
                loop {
                    self.tick()?;
                    match self.stmt(body)? {
                        Flow::Break => break,
                        Flow::Return(v) => return Ok(Flow::Return(v)),
                        _ => {}
                    }
                    let cv = self.eval(c)?;
                    if !truthy(&cv)? {
                        break;
                    }
                }
                Ok(Flow::Normal)
            }
            Stmt::For(init, c, step, body) => {
                for i in init {
                    self.stmt(i)?;
                }
                loop {
                    self.tick()?;
                    if let Some(c) = c {
                        let cv = self.eval(c)?;
                        if !truthy(&cv)? {
                            break;
                        }
                    }
                    match self.stmt(body)? {
                        Flow::Break => break,
                        Flow::Return(v) => return Ok(Flow::Return(v)),
                        _ => {}
                    }
                    for s in step {
                        self.eval(s)?;
                    }
                }
                Ok(Flow::Normal)
            }
            Stmt::Break => Ok(Flow::Break),
            Stmt::Continue => Ok(Flow::Continue),
            Stmt::Throw(e) => {
                let msg = match e {
                    Some(e) => match self.eval(e)? {
                        Value::Object(o) => match &*o {
                            Obj::KeyValue(_, m) => m.to_display_string(),
                            _ => "Exception of type 'System.Exception' was thrown.".into(),
                        },
                        other => other.to_display_string(),
                    },
                    None => "Exception of type 'System.Exception' was thrown.".into(),
                };
                fail(msg)
            }
            Stmt::Try(body, catch, fin) => {
                let r = self.stmt(body);
                let r = match (r, catch) {
                    (Err(e), Some((slot, cbody))) => {
                        if self.budget == 0 {
                            Err(e)
                        } else {
                            if let Some(slot) = slot {
                                self.set_local(
                                    *slot,
                                    Value::Object(Arc::new(Obj::KeyValue(
                                        "Exception".into(),
                                        s(e.message),
                                    ))),
                                );
                            }
                            self.stmt(cbody)
                        }
                    }
                    (r, _) => r,
                };
                if let Some(f) = fin {
                    match self.stmt(f)? {
                        Flow::Normal => {}
                        other => return Ok(other),
                    }
                }
                r
            }
        }
    }

    fn foreach(&mut self, slot: u32, it: &Node, body: &Stmt) -> R<Flow> {
        let v = self.eval(it)?;
        for item in items(&v)? {
            self.tick()?;
            self.set_local(slot, item);
            match self.stmt(body)? {
                Flow::Break => break,
                Flow::Return(v) => return Ok(Flow::Return(v)),
                _ => {}
            }
        }
        Ok(Flow::Normal)
    }

    // ---- expressions ----

    /// Evaluates a node.
    pub fn eval(&mut self, n: &Node) -> R<Value> {
        match n {
            Node::Const(v) => Ok(v.clone()),
            Node::Local(slot) => Ok(self.local(*slot)),
            Node::Ctx(p) => self.ctx_prop(*p),
            Node::CtxDict(d, op, args, t) => self.ctx_dict(*d, *op, args, *t),
            Node::BodyAs(src, t) => self.body_as(src, *t),
            Node::BodyForm(src) => self.body_form(src),
            Node::Member(b, m) => {
                let v = self.eval(b)?;
                self.member(v, *m)
            }
            Node::Method(b, m, args, t) => self.method(b, *m, args, *t),
            Node::Static(f, args) => self.static_fn(*f, args),
            Node::TryParse(t, sn, slot) => self.try_parse(*t, sn, *slot),
            Node::TryGetValue(b, k, slot) => self.try_get_value(b, k, *slot),
            Node::Index(b, k) => {
                let b = self.eval(b)?;
                let k = self.eval(k)?;
                index_value(&b, &k)
            }
            Node::CondAccess(t, slot, rest) => {
                let v = self.eval(t)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                self.set_local(*slot, v);
                self.eval(rest)
            }
            Node::Unary(op, x) => {
                let v = self.eval(x)?;
                unary(*op, v)
            }
            Node::Binary(op, a, b) => self.binary(*op, a, b),
            Node::Cond(c, a, b) => {
                let cv = self.eval(c)?;
                if truthy(&cv)? {
                    self.eval(a)
                } else {
                    self.eval(b)
                }
            }
            Node::Cast(t, nullable, x) => {
                let v = self.eval(x)?;
                cast(v, *t, *nullable)
            }
            Node::Is(t, x, slot, negate) => {
                let v = self.eval(x)?;
                let r = match t {
                    None => v.is_null(),
                    Some(t) => is_type(&v, *t),
                };
                if r {
                    if let Some(slot) = slot {
                        self.set_local(*slot, v);
                    }
                }
                Ok(Value::Bool(r != *negate))
            }
            Node::As(t, x) => {
                let v = self.eval(x)?;
                Ok(if is_type(&v, *t) { v } else { Value::Null })
            }
            Node::Interp(parts) => self.interp(parts),
            Node::New(c, args, init) => self.construct(*c, args, init),
            Node::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    out.push(self.eval(i)?);
                }
                Ok(arr(out))
            }
            Node::ArraySized(bytes, size) => {
                let n = self.eval(size)?;
                let n = idx_arg(&n, "size")?;
                check_len(n)?;
                Ok(if *bytes {
                    Value::Bytes(Bytes::from(vec![0u8; n]))
                } else {
                    arr(vec![Value::Null; n])
                })
            }
            Node::Anon(members) => {
                let mut m = serde_json::Map::new();
                for (k, v) in members {
                    let v = self.eval(v)?;
                    m.insert(k.to_string(), v.to_json());
                }
                Ok(json::token(J::Object(m)))
            }
            Node::Lambda(..) => fail("a lambda expression is not a value"),
            Node::Assign(place, op, v) => self.assign(place, *op, v),
            Node::IncDec(place, inc, prefix) => self.inc_dec(place, *inc, *prefix),
            Node::Mut(place, op, args) => self.mutate(place, *op, args),
            Node::Nop(args) => {
                for a in args {
                    self.eval(a)?;
                }
                Ok(Value::Null)
            }
            Node::CallFn(idx, args) => self.call_fn(*idx, args),
        }
    }

    /// Calls a local function: its own slots are saved and cleared, then
    /// restored, so recursive calls do not see each other's locals; captured
    /// outer locals are shared. Parameters changed in place (not reassigned)
    /// are written back to local arguments, as .NET references would show.
    fn call_fn(&mut self, idx: u32, args: &[Node]) -> R<Value> {
        let funcs = self.funcs;
        let Some(f) = funcs.get(idx as usize) else {
            return fail("internal error: unknown local function");
        };
        self.tick()?;
        if self.depth >= MAX_CALL_DEPTH {
            return fail(format!(
                "local function calls nested too deeply (more than {MAX_CALL_DEPTH})"
            ));
        }
        let vals = self.eval_args(args)?;
        let (start, end) = (f.slots.0 as usize, f.slots.1 as usize);
        let saved: Vec<Value> = match self.locals.get_mut(start..end) {
            Some(own) => own
                .iter_mut()
                .map(|v| std::mem::replace(v, Value::Null))
                .collect(),
            None => return fail("internal error: local function slots"),
        };
        for (slot, v) in f.params.iter().zip(&vals) {
            self.set_local(*slot, v.clone());
        }
        self.depth += 1;
        let r = self.stmt(&f.body);
        self.depth -= 1;
        let finals: Vec<Value> = f.params.iter().map(|p| self.local(*p)).collect();
        if let Some(own) = self.locals.get_mut(start..end) {
            for (l, v) in own.iter_mut().zip(saved) {
                *l = v;
            }
        }
        let flow = r?;
        for (((arg, new), old), wb) in args.iter().zip(finals).zip(&vals).zip(&f.write_back) {
            if let (true, Node::Local(slot)) = (*wb, arg) {
                if !same_ref(&new, old) {
                    self.set_local(*slot, new);
                }
            }
        }
        match flow {
            Flow::Return(v) => Ok(v),
            _ => Ok(Value::Null),
        }
    }

    fn binary(&mut self, op: BinOp, a: &Node, b: &Node) -> R<Value> {
        match op {
            BinOp::And => {
                let l = self.eval(a)?;
                if !truthy(&l)? {
                    return Ok(Value::Bool(false));
                }
                let r = self.eval(b)?;
                Ok(Value::Bool(truthy(&r)?))
            }
            BinOp::Or => {
                let l = self.eval(a)?;
                if truthy(&l)? {
                    return Ok(Value::Bool(true));
                }
                let r = self.eval(b)?;
                Ok(Value::Bool(truthy(&r)?))
            }
            BinOp::Coalesce => {
                let l = self.eval(a)?;
                if l.is_null() {
                    self.eval(b)
                } else {
                    Ok(l)
                }
            }
            _ => {
                let l = self.eval(a)?;
                let r = self.eval(b)?;
                binop(op, &l, &r)
            }
        }
    }

    fn interp(&mut self, parts: &[INode]) -> R<Value> {
        let mut out = String::new();
        for p in parts {
            match p {
                INode::Lit(t) => out.push_str(t),
                INode::Hole(n, al, fmt) => {
                    let v = self.eval(n)?;
                    let text = match fmt {
                        Some(f) => {
                            strings::format_value(&v, f).map_err(|m| EvalError { message: m })?
                        }
                        None => v.to_display_string(),
                    };
                    match al {
                        Some(a) => out.push_str(&strings::align(text, *a)),
                        None => out.push_str(&text),
                    }
                }
            }
            check_len(out.len())?;
        }
        Ok(s(out))
    }

    // ---- context ----

    fn ctx_prop(&mut self, p: CtxProp) -> R<Value> {
        let ctx = self.ctx;
        Ok(match p {
            CtxProp::RequestMethod => s(ctx.request.method.as_str()),
            CtxProp::RequestIp => s(ctx.request.ip_address.as_str()),
            CtxProp::Url(src, part) => {
                let u = url(ctx, src);
                match part {
                    UrlPart::Scheme => s(u.scheme.as_str()),
                    UrlPart::Host => s(u.host.as_str()),
                    UrlPart::Port => Value::Int(u.port as i64),
                    UrlPart::Path => s(u.path.as_str()),
                    UrlPart::QueryString => s(u.query_string()),
                    UrlPart::Whole => s(u.to_url_string()),
                }
            }
            CtxProp::Dict(d) => match d {
                CtxDict::Headers(m) => Value::Dict(Arc::new(headers_dict(self.headers(m)?))),
                CtxDict::Query(src) => Value::Dict(Arc::new(query_dict(url(ctx, src)))),
                CtxDict::Matched => Value::Dict(Arc::new(Dict {
                    entries: ctx
                        .request
                        .matched_parameters
                        .iter()
                        .map(|(k, v)| (Arc::from(k.as_str()), s(v.as_str())))
                        .collect(),
                    ignore_case: true,
                })),
                CtxDict::Variables => {
                    let mut entries: Vec<(Arc<str>, Value)> = ctx
                        .variables
                        .iter()
                        .map(|(k, v)| (Arc::from(k.as_str()), v.clone()))
                        .collect();
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                    Value::Dict(Arc::new(Dict {
                        entries,
                        ignore_case: false,
                    }))
                }
            },
            CtxProp::StatusCode => match &ctx.response {
                Some(r) => Value::Int(r.status as i64),
                None => return nre("context.Response"),
            },
            CtxProp::StatusReason => match &ctx.response {
                Some(r) => s(r.reason.as_str()),
                None => return nre("context.Response"),
            },
            CtxProp::ResponseValue => match &ctx.response {
                Some(r) => response_value(r),
                None => Value::Null,
            },
            CtxProp::BodyRaw(m) => {
                let body = match m {
                    MsgSrc::Request => ctx.request.body.as_ref(),
                    MsgSrc::Response => ctx.response.as_ref().and_then(|r| r.body.as_ref()),
                };
                body.map(|b| Value::Bytes(b.clone())).unwrap_or(Value::Null)
            }
            CtxProp::Subscription(f) => match (&ctx.fixed.subscription, f) {
                (None, None) => Value::Null,
                (None, Some(_)) => return nre("context.Subscription"),
                (Some(sub), Some(f)) => s(match f {
                    SubField::Id => sub.id.as_str(),
                    SubField::Name => sub.name.as_str(),
                    SubField::Key => sub.key.as_str(),
                    SubField::PrimaryKey => sub.primary_key.as_str(),
                    SubField::SecondaryKey => sub.secondary_key.as_str(),
                }),
                (Some(sub), None) => Value::Dict(Arc::new(Dict {
                    entries: vec![
                        ("Id".into(), s(sub.id.as_str())),
                        ("Name".into(), s(sub.name.as_str())),
                    ],
                    ignore_case: false,
                })),
            },
            CtxProp::Product(f) => match (&ctx.fixed.product, f) {
                (None, None) => Value::Null,
                (None, Some(_)) => return nre("context.Product"),
                (Some(p), Some(true)) => s(p.id.as_str()),
                (Some(p), Some(false)) => s(p.name.as_str()),
                (Some(p), None) => Value::Dict(Arc::new(Dict {
                    entries: vec![
                        ("Id".into(), s(p.id.as_str())),
                        ("Name".into(), s(p.name.as_str())),
                    ],
                    ignore_case: false,
                })),
            },
            CtxProp::ApiId => s(ctx.fixed.api.id.as_str()),
            CtxProp::ApiName => s(ctx.fixed.api.name.as_str()),
            CtxProp::ApiPath => s(ctx.fixed.api.path.as_str()),
            CtxProp::OpId => s(ctx.fixed.operation.id.as_str()),
            CtxProp::OpName => s(ctx.fixed.operation.name.as_str()),
            CtxProp::OpMethod => s(ctx.fixed.operation.method.as_str()),
            CtxProp::OpUrlTemplate => s(ctx.fixed.operation.url_template.as_str()),
            CtxProp::GatewayId => Value::Str(ctx.fixed.gateway_id.clone()),
            CtxProp::Region => Value::Str(ctx.fixed.region.clone()),
            CtxProp::ServiceName => Value::Str(ctx.fixed.service_name.clone()),
            CtxProp::LastError(f) => match (&ctx.last_error, f) {
                (None, None) => Value::Null,
                (None, Some(_)) => return nre("context.LastError"),
                (Some(e), Some(f)) => s(match f {
                    ErrField::Source => e.source.as_str(),
                    ErrField::Reason => e.reason.as_str(),
                    ErrField::Message => e.message.as_str(),
                    ErrField::Scope => e.scope.as_str(),
                    ErrField::Section => e.section.as_str(),
                    ErrField::Path => e.path.as_str(),
                    ErrField::PolicyId => e.policy_id.as_str(),
                }),
                (Some(e), None) => Value::Dict(Arc::new(Dict {
                    entries: vec![
                        ("Source".into(), s(e.source.as_str())),
                        ("Reason".into(), s(e.reason.as_str())),
                        ("Message".into(), s(e.message.as_str())),
                    ],
                    ignore_case: false,
                })),
            },
            CtxProp::User => return nre("context.User"),
            CtxProp::RequestId => s(ctx.request_id.as_str()),
            CtxProp::Elapsed => {
                Value::TimeSpan(i64::try_from(ctx.elapsed.as_millis()).unwrap_or(i64::MAX))
            }
            CtxProp::Timestamp => {
                let e = i64::try_from(ctx.elapsed.as_millis()).unwrap_or(0);
                Value::DateTime(
                    ctx.now_unix_ms
                        .saturating_sub(e)
                        .clamp(datetime::MIN_MS, datetime::MAX_MS),
                )
            }
        })
    }

    fn headers(&self, m: MsgSrc) -> R<&'c crate::policy::context::Headers> {
        match m {
            MsgSrc::Request => Ok(&self.ctx.request.headers),
            MsgSrc::Response => match &self.ctx.response {
                Some(r) => Ok(&r.headers),
                None => nre("context.Response"),
            },
        }
    }

    fn ctx_dict(&mut self, d: CtxDict, op: DictOp, args: &[Node], t: Option<CastTy>) -> R<Value> {
        // Inline: a lookup takes one or two arguments, and this runs per request.
        let mut vals: smallvec::SmallVec<[Value; 2]> = smallvec::SmallVec::new();
        for a in args {
            vals.push(self.eval(a)?);
        }
        let key = match vals.first() {
            Some(k) => Some(str_arg(k, "key")?),
            None => None,
        };
        let dflt = vals.get(1).cloned();
        let ctx = self.ctx;
        match d {
            CtxDict::Headers(m) => {
                let h = self.headers(m)?;
                match (op, key) {
                    (DictOp::Get, Some(k)) => {
                        let mut found = h.get_all(&k);
                        Ok(match (found.next(), found.next()) {
                            // One field (the usual case): its value, copied once.
                            (Some(one), None) => s(one),
                            (None, _) => dflt.unwrap_or(Value::Null),
                            _ => h.get_joined(&k).map(s).unwrap_or(Value::Null),
                        })
                    }
                    (DictOp::Has, Some(k)) => Ok(Value::Bool(h.contains(&k))),
                    (DictOp::Index, Some(k)) => {
                        let all: Vec<Value> = h.get_all(&k).map(s).collect();
                        if all.is_empty() {
                            fail(format!(
                                "The given key '{k}' was not present in the dictionary."
                            ))
                        } else {
                            Ok(arr(all))
                        }
                    }
                    (DictOp::Count, _) => Ok(Value::Int(h.names().len() as i64)),
                    (DictOp::Keys, _) => Ok(arr(h.names().into_iter().map(s).collect())),
                    _ => fail("missing key"),
                }
            }
            CtxDict::Query(src) => {
                let u = url(ctx, src);
                let all = |k: &str| -> Vec<&str> {
                    u.query
                        .iter()
                        .filter(|(n, _)| n == k)
                        .map(|(_, v)| v.as_str())
                        .collect()
                };
                match (op, key) {
                    (DictOp::Get, Some(k)) => {
                        let v = all(&k);
                        Ok(if v.is_empty() {
                            dflt.unwrap_or(Value::Null)
                        } else {
                            s(v.join(","))
                        })
                    }
                    (DictOp::Has, Some(k)) => Ok(Value::Bool(!all(&k).is_empty())),
                    (DictOp::Index, Some(k)) => {
                        let v = all(&k);
                        if v.is_empty() {
                            fail(format!(
                                "The given key '{k}' was not present in the dictionary."
                            ))
                        } else {
                            Ok(arr(v.into_iter().map(s).collect()))
                        }
                    }
                    (DictOp::Count, _) => Ok(Value::Int(query_dict(u).entries.len() as i64)),
                    (DictOp::Keys, _) => Ok(arr(query_dict(u)
                        .entries
                        .into_iter()
                        .map(|(k, _)| Value::Str(k))
                        .collect())),
                    _ => fail("missing key"),
                }
            }
            CtxDict::Matched => {
                let mp = &ctx.request.matched_parameters;
                let find = |k: &str| {
                    mp.iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(k))
                        .map(|(_, v)| v.as_str())
                };
                match (op, key) {
                    (DictOp::Get, Some(k)) => Ok(find(&k).map(s).or(dflt).unwrap_or(Value::Null)),
                    (DictOp::Has, Some(k)) => Ok(Value::Bool(find(&k).is_some())),
                    (DictOp::Index, Some(k)) => match find(&k) {
                        Some(v) => Ok(s(v)),
                        None => fail(format!(
                            "The given key '{k}' was not present in the dictionary."
                        )),
                    },
                    (DictOp::Count, _) => Ok(Value::Int(mp.len() as i64)),
                    (DictOp::Keys, _) => Ok(arr(mp.iter().map(|(k, _)| s(k.as_str())).collect())),
                    _ => fail("missing key"),
                }
            }
            CtxDict::Variables => {
                let vars = &ctx.variables;
                match (op, key) {
                    (DictOp::Get, Some(k)) => match vars.get(&*k) {
                        Some(v) => match t {
                            Some(t) => cast(v.clone(), t, true),
                            None => Ok(v.clone()),
                        },
                        None => Ok(dflt.unwrap_or_else(|| default_of(t))),
                    },
                    (DictOp::Has, Some(k)) => Ok(Value::Bool(vars.contains_key(&*k))),
                    (DictOp::Index, Some(k)) => match vars.get(&*k) {
                        Some(v) => Ok(v.clone()),
                        None => fail(format!(
                            "The given key '{k}' was not present in the dictionary."
                        )),
                    },
                    (DictOp::Count, _) => Ok(Value::Int(vars.len() as i64)),
                    (DictOp::Keys, _) => {
                        let mut keys: Vec<&String> = vars.keys().collect();
                        keys.sort();
                        Ok(arr(keys.into_iter().map(|k| s(k.as_str())).collect()))
                    }
                    _ => fail("missing key"),
                }
            }
        }
    }

    fn body_bytes(&mut self, src: &BodySrc) -> R<Bytes> {
        match src {
            BodySrc::Ctx(MsgSrc::Request) => match &self.ctx.request.body {
                Some(b) => Ok(b.clone()),
                None => nre("context.Request.Body"),
            },
            BodySrc::Ctx(MsgSrc::Response) => match self.ctx.response.as_ref().map(|r| &r.body) {
                Some(Some(b)) => Ok(b.clone()),
                Some(None) => nre("context.Response.Body"),
                None => nre("context.Response"),
            },
            BodySrc::Value(n) => match self.eval(n)? {
                Value::Response(r) => match &r.body {
                    Some(b) => Ok(b.clone()),
                    None => nre("the response's Body"),
                },
                Value::Null => nre("the response"),
                other => fail(format!("'{}' has no Body", other.type_name())),
            },
        }
    }

    fn body_as(&mut self, src: &BodySrc, t: CastTy) -> R<Value> {
        let b = self.body_bytes(src)?;
        if t == CastTy::Bytes {
            return Ok(Value::Bytes(b));
        }
        let text = String::from_utf8_lossy(&b);
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        match t {
            CastTy::Str => Ok(s(text)),
            CastTy::JObject => json::parse(text, "JObject")
                .map(json::token)
                .map_err(|m| EvalError { message: m }),
            CastTy::JArray => json::parse(text, "JArray")
                .map(json::token)
                .map_err(|m| EvalError { message: m }),
            _ => json::parse(text, "JToken")
                .map(json::token)
                .map_err(|m| EvalError { message: m }),
        }
    }

    fn body_form(&mut self, src: &BodySrc) -> R<Value> {
        let b = self.body_bytes(src)?;
        let text = String::from_utf8_lossy(&b);
        let mut d = Dict::default();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = encoding::uri_unescape(k, true);
            let v = encoding::uri_unescape(v, true);
            push_multi(&mut d, &k, &v, false);
        }
        Ok(Value::Dict(Arc::new(d)))
    }

    // ---- members ----

    fn member(&mut self, v: Value, m: Member) -> R<Value> {
        member(v, m)
    }

    // ---- methods ----

    fn eval_args(&mut self, args: &[Node]) -> R<Vec<Value>> {
        let mut out = Vec::with_capacity(args.len());
        for a in args {
            out.push(self.eval(a)?);
        }
        Ok(out)
    }

    fn call_lambda(&mut self, f: &Node, args: &[Value]) -> R<Value> {
        self.tick()?;
        match f {
            Node::Lambda(slots, body) => {
                for (slot, v) in slots.iter().zip(args) {
                    self.set_local(*slot, v.clone());
                }
                self.eval(body)
            }
            _ => fail("expected a lambda expression"),
        }
    }

    fn method(&mut self, b: &Node, m: Method, args: &[Node], t: Option<CastTy>) -> R<Value> {
        let recv = self.eval(b)?;
        if recv.is_null() {
            return nre(&format!("the target of '{m:?}'"));
        }
        let has_lambda = args.iter().any(|a| matches!(a, Node::Lambda(..)));
        if has_lambda || (is_seq_method(m) && !matches!(recv, Value::Str(_))) {
            return self.linq(recv, m, args);
        }
        let a = self.eval_args(args)?;
        match &recv {
            Value::Str(st) => str_method(st, m, &a),
            Value::Json(j) => json_method(j, m, &a, t),
            Value::DateTime(ms) => datetime_method(*ms, m, &a),
            Value::TimeSpan(ms) => timespan_method(*ms, m, &a),
            Value::Dict(d) => match m {
                Method::GetValueOrDefault => {
                    // Multi-valued entries (headers, claims) come back comma-joined, as in APIM.
                    let k = str_arg(a.first().unwrap_or(&Value::Null), "key")?;
                    Ok(match d.get(&k) {
                        Some(Value::Array(xs)) if xs.iter().all(|x| matches!(x, Value::Str(_))) => {
                            s(xs.iter()
                                .map(|x| x.to_display_string())
                                .collect::<Vec<_>>()
                                .join(","))
                        }
                        Some(v) => v.clone(),
                        None => a.get(1).cloned().unwrap_or(Value::Null),
                    })
                }
                Method::ContainsKey => {
                    let k = str_arg(a.first().unwrap_or(&Value::Null), "key")?;
                    Ok(Value::Bool(d.get(&k).is_some()))
                }
                _ => common_method(&recv, m, &a),
            },
            Value::Guid(g) => match m {
                Method::ToByteArray => {
                    // .NET's byte order: the first three groups little-endian.
                    let be = g.to_be_bytes();
                    let mut out = be;
                    out[0..4].copy_from_slice(&[be[3], be[2], be[1], be[0]]);
                    out[4..6].copy_from_slice(&[be[5], be[4]]);
                    out[6..8].copy_from_slice(&[be[7], be[6]]);
                    Ok(Value::Bytes(Bytes::copy_from_slice(&out)))
                }
                Method::ToString => match a.first() {
                    Some(f) => strings::format_value(&recv, &str_arg(f, "format")?)
                        .map(s)
                        .map_err(|m| EvalError { message: m }),
                    None => Ok(s(format_guid(*g, 'D'))),
                },
                _ => common_method(&recv, m, &a),
            },
            Value::Bytes(data) if matches!(m, Method::Encrypt | Method::Decrypt) => {
                encrypt_decrypt(data, m == Method::Encrypt, &a)
            }
            Value::Object(o) => {
                match (&**o, m) {
                    (Obj::Regex(re), _) => regex_method(re, m, &a),
                    (Obj::Match(md), Method::Result) => {
                        let rep = str_arg(a.first().unwrap_or(&Value::Null), "replacement")?;
                        let out = regexp::result(md, &rep, MAX_LEN);
                        check_len(out.len())?;
                        Ok(s(out))
                    }
                    (Obj::Aes(_), Method::Dispose | Method::Clear) => Ok(Value::Null),
                    (Obj::Random(seed), Method::Next | Method::NextDouble) => {
                        let r = self.next_random() ^ *seed;
                        let mut st = r;
                        let x = encoding::splitmix64(&mut st);
                        random_next(x, m, &a)
                    }
                    (Obj::Hasher(alg, key), Method::ComputeHash) => {
                        let data = bytes_arg(a.first().unwrap_or(&Value::Null))?;
                        let data = match (a.get(1), a.get(2)) {
                            (None, None) => &data[..],
                            (Some(off), Some(n)) => {
                                let off = idx_arg(off, "offset")?;
                                let n = idx_arg(n, "count")?;
                                match off.checked_add(n).and_then(|end| data.get(off..end)) {
                                Some(d) => d,
                                None => return fail("Offset and length were out of bounds for the array or count is greater than the number of elements from index to the end of the source collection."),
                            }
                            }
                            _ => return fail(
                                "ComputeHash takes a byte[], or a byte[], an offset and a count",
                            ),
                        };
                        let out = match key {
                            Some(k) => crypto::hmac(*alg, k, data),
                            None => crypto::hash(*alg, data),
                        };
                        Ok(Value::Bytes(Bytes::from(out)))
                    }
                    (Obj::Hasher(..), Method::Dispose | Method::Clear) => Ok(Value::Null),
                    _ => common_method(&recv, m, &a),
                }
            }
            _ => common_method(&recv, m, &a),
        }
    }

    fn linq(&mut self, recv: Value, m: Method, args: &[Node]) -> R<Value> {
        let items = items(&recv)?;
        let f = args.first();
        let is_fn = matches!(f, Some(Node::Lambda(..)));
        let pred = |me: &mut Self, x: &Value| -> R<bool> {
            match f {
                Some(f) if is_fn => {
                    let r = me.call_lambda(f, std::slice::from_ref(x))?;
                    truthy(&r)
                }
                _ => Ok(true),
            }
        };
        match m {
            Method::Where => {
                let mut out = Vec::new();
                for x in items {
                    if pred(self, &x)? {
                        out.push(x);
                    }
                }
                Ok(arr(out))
            }
            Method::Select => {
                let Some(f) = f else {
                    return fail("Select needs a selector");
                };
                let mut out = Vec::with_capacity(items.len());
                for x in items {
                    out.push(self.call_lambda(f, &[x])?);
                }
                Ok(arr(out))
            }
            Method::Any => {
                for x in items {
                    if pred(self, &x)? {
                        return Ok(Value::Bool(true));
                    }
                }
                Ok(Value::Bool(false))
            }
            Method::All => {
                for x in items {
                    if !pred(self, &x)? {
                        return Ok(Value::Bool(false));
                    }
                }
                Ok(Value::Bool(true))
            }
            Method::Count => {
                let mut n = 0;
                for x in items {
                    if pred(self, &x)? {
                        n += 1;
                    }
                }
                Ok(Value::Int(n))
            }
            Method::First
            | Method::FirstOrDefault
            | Method::Last
            | Method::LastOrDefault
            | Method::Single
            | Method::SingleOrDefault => {
                let mut found: Vec<Value> = Vec::new();
                for x in items {
                    if pred(self, &x)? {
                        found.push(x);
                        if matches!(m, Method::First | Method::FirstOrDefault) {
                            break;
                        }
                        if matches!(m, Method::Single | Method::SingleOrDefault) && found.len() > 1
                        {
                            return fail("Sequence contains more than one matching element");
                        }
                    }
                }
                let none = if is_fn {
                    "Sequence contains no matching element"
                } else {
                    "Sequence contains no elements"
                };
                match (m, found.pop()) {
                    (_, Some(v)) => Ok(v),
                    (
                        Method::FirstOrDefault | Method::LastOrDefault | Method::SingleOrDefault,
                        None,
                    ) => Ok(Value::Null),
                    _ => fail(none),
                }
            }
            Method::OrderBy
            | Method::OrderByDescending
            | Method::Sum
            | Method::Min
            | Method::Max => {
                let mut keyed = Vec::with_capacity(items.len());
                for x in items {
                    let k = match f {
                        Some(f) if is_fn => self.call_lambda(f, std::slice::from_ref(&x))?,
                        _ => x.clone(),
                    };
                    keyed.push((k, x));
                }
                match m {
                    Method::Sum => {
                        let mut acc = Value::Int(0);
                        for (k, _) in &keyed {
                            acc = arith(BinOp::Add, &acc, k)?;
                        }
                        Ok(acc)
                    }
                    Method::Min | Method::Max => {
                        let mut best: Option<Value> = None;
                        for (k, _) in keyed {
                            best = Some(match best {
                                None => k,
                                Some(b) => {
                                    let o = compare(&k, &b)?;
                                    if (m == Method::Min && o == Ordering::Less)
                                        || (m == Method::Max && o == Ordering::Greater)
                                    {
                                        k
                                    } else {
                                        b
                                    }
                                }
                            });
                        }
                        best.map_or_else(|| fail("Sequence contains no elements"), Ok)
                    }
                    _ => {
                        let mut err = None;
                        keyed.sort_by(|a, b| match compare(&a.0, &b.0) {
                            Ok(o) => o,
                            Err(e) => {
                                err = Some(e);
                                Ordering::Equal
                            }
                        });
                        if let Some(e) = err {
                            return Err(e);
                        }
                        if m == Method::OrderByDescending {
                            keyed.reverse();
                        }
                        Ok(arr(keyed.into_iter().map(|(_, x)| x).collect()))
                    }
                }
            }
            _ => {
                let a = self.eval_args(args)?;
                seq_method(items, m, &a)
            }
        }
    }

    // ---- static functions ----

    fn static_fn(&mut self, f: StaticFn, args: &[Node]) -> R<Value> {
        use StaticFn as F;
        match f {
            F::Now => {
                return Ok(Value::DateTime(
                    self.ctx
                        .now_unix_ms
                        .clamp(datetime::MIN_MS, datetime::MAX_MS),
                ))
            }
            F::Today => {
                let ms = self
                    .ctx
                    .now_unix_ms
                    .clamp(datetime::MIN_MS, datetime::MAX_MS);
                return Ok(Value::DateTime(ms - ms.rem_euclid(86_400_000)));
            }
            F::NewGuid => {
                let hi = self.next_random() as u128;
                let lo = self.next_random() as u128;
                let mut g = (hi << 64) | lo;
                g = (g & !(0xF << 76)) | (0x4 << 76);
                g = (g & !(0x3 << 62)) | (0x2 << 62);
                return Ok(Value::Guid(g));
            }
            F::ArrayExists => {
                let Some(seq) = args.first() else {
                    return fail("Array.Exists needs an array");
                };
                let seq = self.eval(seq)?;
                let Some(pred) = args.get(1) else {
                    return fail("Array.Exists needs a predicate");
                };
                for x in items(&seq)? {
                    let r = self.call_lambda(pred, &[x])?;
                    if truthy(&r)? {
                        return Ok(Value::Bool(true));
                    }
                }
                return Ok(Value::Bool(false));
            }
            _ => {}
        }
        let a = self.eval_args(args)?;
        static_fn(f, &a)
    }

    fn try_parse(&mut self, t: CastTy, sn: &Node, slot: u32) -> R<Value> {
        let v = self.eval(sn)?;
        let parsed = match &v {
            Value::Str(text) => parse_as(text, t).ok(),
            _ => None,
        };
        match parsed {
            Some(p) => {
                self.set_local(slot, p);
                Ok(Value::Bool(true))
            }
            None => {
                self.set_local(slot, default_of(Some(t)));
                Ok(Value::Bool(false))
            }
        }
    }

    fn try_get_value(&mut self, b: &Node, k: &Node, slot: u32) -> R<Value> {
        let d = self.eval(b)?;
        let k = self.eval(k)?;
        let found = match &d {
            Value::Dict(d) => d.get(&str_arg(&k, "key")?).cloned(),
            Value::Json(j) if j.is_object() => {
                let key = str_arg(&k, "propertyName")?;
                j.get(&*key).map(|x| json::token(x.clone()))
            }
            Value::Null => return nre("the dictionary"),
            other => return fail(format!("'{}' has no TryGetValue", other.type_name())),
        };
        let ok = found.is_some();
        self.set_local(slot, found.unwrap_or(Value::Null));
        Ok(Value::Bool(ok))
    }

    fn construct(&mut self, c: Ctor, args: &[Node], init: &[Node]) -> R<Value> {
        let a = self.eval_args(args)?;
        let mut items = Vec::with_capacity(init.len());
        for i in init {
            items.push(self.eval(i)?);
        }
        match c {
            Ctor::JObject => {
                let mut m = serde_json::Map::new();
                for v in a.iter().chain(items.iter()) {
                    add_to_object(&mut m, v)?;
                }
                Ok(json::token(J::Object(m)))
            }
            Ctor::JArray => {
                let mut out = Vec::new();
                for v in a.iter().chain(items.iter()) {
                    match v {
                        Value::Array(xs) => out.extend(xs.iter().map(Value::to_json)),
                        other => out.push(other.to_json()),
                    }
                }
                Ok(json::token(J::Array(out)))
            }
            Ctor::JProperty => {
                let name = str_arg(a.first().unwrap_or(&Value::Null), "name")?;
                let v = match &a[1.min(a.len())..] {
                    [] => J::Null,
                    [one] => one.to_json(),
                    many => J::Array(many.iter().map(Value::to_json).collect()),
                };
                Ok(Value::Object(Arc::new(Obj::Property(name, v))))
            }
            Ctor::JValue => Ok(json::token(a.first().map(Value::to_json).unwrap_or(J::Null))),
            Ctor::DateTime => {
                if a.len() == 1 {
                    return match &a[0] {
                        Value::DateTime(_) => Ok(a[0].clone()),
                        v => {
                            let ticks = int_arg(v, "ticks")?;
                            date((ticks - datetime::EPOCH_TICKS) / 10_000)
                        }
                    };
                }
                let mut n = [1i64, 1, 1, 0, 0, 0, 0];
                for (i, v) in a.iter().take(7).enumerate() {
                    n[i] = int_arg(v, "date part")?;
                }
                let part = |x: i64| u32::try_from(x).unwrap_or(u32::MAX);
                match datetime::from_parts(n[0], part(n[1]), part(n[2]), part(n[3]), part(n[4]), part(n[5]), part(n[6])) {
                    Some(ms) => Ok(Value::DateTime(ms)),
                    None => fail("Year, Month, and Day parameters describe an un-representable DateTime."),
                }
            }
            Ctor::TimeSpan => {
                let n: Vec<i64> = a.iter().map(|v| int_arg(v, "part")).collect::<R<_>>()?;
                let ms = match n.as_slice() {
                    [ticks] => ticks / 10_000,
                    [h, m, sec] => h.saturating_mul(3_600_000).saturating_add(m.saturating_mul(60_000)).saturating_add(sec.saturating_mul(1000)),
                    [d, h, m, sec] => d.saturating_mul(86_400_000).saturating_add(h.saturating_mul(3_600_000)).saturating_add(m.saturating_mul(60_000)).saturating_add(sec.saturating_mul(1000)),
                    [d, h, m, sec, ms] => d.saturating_mul(86_400_000).saturating_add(h.saturating_mul(3_600_000)).saturating_add(m.saturating_mul(60_000)).saturating_add(sec.saturating_mul(1000)).saturating_add(*ms),
                    _ => return fail("unsupported TimeSpan constructor"),
                };
                Ok(Value::TimeSpan(ms))
            }
            Ctor::Guid => match a.first() {
                Some(Value::Str(t)) => parse_guid(t)
                    .map(Value::Guid)
                    .map_or_else(|| fail("Guid should contain 32 digits with 4 dashes (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)."), Ok),
                Some(Value::Bytes(b)) if b.len() == 16 => {
                    let mut be = [0u8; 16];
                    be.copy_from_slice(b);
                    let mut out = be;
                    out[0..4].copy_from_slice(&[be[3], be[2], be[1], be[0]]);
                    out[4..6].copy_from_slice(&[be[5], be[4]]);
                    out[6..8].copy_from_slice(&[be[7], be[6]]);
                    Ok(Value::Guid(u128::from_be_bytes(out)))
                }
                _ => fail("unsupported Guid constructor"),
            },
            Ctor::Random => {
                let seed = match a.first() {
                    Some(v) => {
                        let mut st = int_arg(v, "Seed")? as u64;
                        encoding::splitmix64(&mut st)
                    }
                    None => self.next_random(),
                };
                Ok(Value::Object(Arc::new(Obj::Random(seed))))
            }
            Ctor::Uri => {
                let t = str_arg(a.first().unwrap_or(&Value::Null), "uriString")?;
                if !t.contains("://") {
                    return fail("Invalid URI: The format of the URI could not be determined.");
                }
                Ok(Value::Object(Arc::new(Obj::Uri(t))))
            }
            Ctor::List => {
                let mut out = match a.first() {
                    Some(Value::Int(_)) | None => Vec::new(),
                    Some(v) => super::eval::items(v)?,
                };
                out.extend(items);
                Ok(arr(out))
            }
            Ctor::Dictionary => {
                let mut d = Dict::default();
                if let Some(Value::Int(code)) = a.last() {
                    d.ignore_case = code % 2 == 1;
                }
                for it in items {
                    dict_add(&mut d, &it)?;
                }
                Ok(Value::Dict(Arc::new(d)))
            }
            Ctor::String => {
                let c = match a.first() {
                    Some(Value::Char(c)) => *c,
                    _ => return fail("unsupported string constructor"),
                };
                let n = idx_arg(a.get(1).unwrap_or(&Value::Int(0)), "count")?;
                check_len(n)?;
                Ok(s(std::iter::repeat_n(c, n).collect::<String>()))
            }
            Ctor::Hasher(alg, keyed) => {
                let key = if keyed {
                    Some(bytes_arg(a.first().unwrap_or(&Value::Null))?)
                } else {
                    None
                };
                Ok(Value::Object(Arc::new(Obj::Hasher(alg, key))))
            }
            Ctor::Aes => {
                let mut p = crypto::AesParams::default();
                for (i, v) in a.iter().enumerate() {
                    let f = match i {
                        0 => AesField::Key,
                        1 => AesField::Iv,
                        2 => AesField::Mode,
                        _ => AesField::Padding,
                    };
                    if !v.is_null() && !matches!(v, Value::Int(0)) {
                        set_aes(&mut p, f, v)?;
                    }
                }
                Ok(Value::Object(Arc::new(Obj::Aes(p))))
            }
            Ctor::Regex => {
                let pat = str_arg(a.first().unwrap_or(&Value::Null), "pattern")?;
                let opts = int_arg(a.get(1).unwrap_or(&Value::Int(0)), "options")?;
                let re = regexp::compile(&pat, opts, true).map_err(|message| EvalError { message })?;
                Ok(Value::Object(Arc::new(Obj::Regex(re))))
            }
            Ctor::Exception => {
                let msg = a.first().map(|v| v.to_display_string()).unwrap_or_else(|| "Exception of type 'System.Exception' was thrown.".into());
                Ok(Value::Object(Arc::new(Obj::KeyValue("Exception".into(), s(msg)))))
            }
        }
    }

    // ---- assignment ----

    fn read_place(&mut self, place: &Place) -> R<(Vec<Value>, Value)> {
        let mut keys = Vec::with_capacity(place.path.len());
        for k in &place.path {
            keys.push(self.eval(k)?);
        }
        let mut cur = self.local(place.slot);
        for k in &keys {
            cur = index_value(&cur, k)?;
        }
        Ok((keys, cur))
    }

    fn write_place(&mut self, place: &Place, keys: &[Value], v: Value) -> R<()> {
        let Some(root) = self.locals.get_mut(place.slot as usize) else {
            return fail("invalid local");
        };
        assign_path(root, keys, v)
    }

    fn assign(&mut self, place: &Place, op: Option<BinOp>, v: &Node) -> R<Value> {
        let (keys, cur) = if op.is_some() {
            self.read_place(place)?
        } else {
            let mut keys = Vec::with_capacity(place.path.len());
            for k in &place.path {
                keys.push(self.eval(k)?);
            }
            (keys, Value::Null)
        };
        let new = match op {
            None => self.eval(v)?,
            Some(BinOp::Coalesce) => {
                if cur.is_null() {
                    self.eval(v)?
                } else {
                    return Ok(cur);
                }
            }
            Some(op) => {
                let r = self.eval(v)?;
                binop(op, &cur, &r)?
            }
        };
        self.write_place(place, &keys, new.clone())?;
        Ok(new)
    }

    fn inc_dec(&mut self, place: &Place, inc: bool, prefix: bool) -> R<Value> {
        let (keys, cur) = self.read_place(place)?;
        let new = arith(
            if inc { BinOp::Add } else { BinOp::Sub },
            &cur,
            &Value::Int(1),
        )?;
        self.write_place(place, &keys, new.clone())?;
        Ok(if prefix { new } else { cur })
    }

    fn mutate(&mut self, place: &Place, op: MutOp, args: &[Node]) -> R<Value> {
        let a = self.eval_args(args)?;
        let (keys, mut target) = if place.path.is_empty() {
            let v = match self.locals.get_mut(place.slot as usize) {
                Some(l) => std::mem::replace(l, Value::Null),
                None => return fail("invalid local"),
            };
            (Vec::new(), v)
        } else {
            self.read_place(place)?
        };
        let r = mutate_value(&mut target, op, &a);
        self.write_place(place, &keys, target)?;
        r
    }
}

/// Whether a parameter still holds the very object passed in (nothing
/// changed it in place); values without identity always do.
fn same_ref(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Json(x), Value::Json(y)) => Arc::ptr_eq(x, y),
        (Value::Array(x), Value::Array(y)) => Arc::ptr_eq(x, y),
        (Value::Dict(x), Value::Dict(y)) => Arc::ptr_eq(x, y),
        (Value::Bytes(x), Value::Bytes(y)) => x.as_ptr() == y.as_ptr() && x.len() == y.len(),
        (Value::Json(_) | Value::Array(_) | Value::Dict(_) | Value::Bytes(_), _) => false,
        _ => true,
    }
}

fn is_seq_method(m: Method) -> bool {
    use Method as M;
    matches!(
        m,
        M::First
            | M::FirstOrDefault
            | M::Last
            | M::LastOrDefault
            | M::Single
            | M::SingleOrDefault
            | M::Any
            | M::All
            | M::Where
            | M::Select
            | M::Count
            | M::ToArray
            | M::Skip
            | M::Take
            | M::Reverse
            | M::Distinct
            | M::OrderBy
            | M::OrderByDescending
            | M::Sum
            | M::Min
            | M::Max
            | M::Concat
            | M::ElementAt
            | M::Contains
    )
}

fn unary(op: UnOp, v: Value) -> R<Value> {
    match (op, &v) {
        (UnOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
        (UnOp::Not, _) => Ok(Value::Bool(!truthy(&v)?)),
        (UnOp::Plus, _) if num(&v).is_some() => Ok(v),
        (UnOp::Neg, Value::TimeSpan(t)) => Ok(Value::TimeSpan(t.saturating_neg())),
        (UnOp::Neg, _) => match num(&v) {
            Some(Num::I(i)) => Ok(Value::Int(i.wrapping_neg())),
            Some(Num::F(f)) => Ok(Value::Double(-f)),
            None => fail(format!(
                "Operator '-' cannot be applied to operand of type '{}'",
                v.type_name()
            )),
        },
        (UnOp::BitNot, _) => match num(&v) {
            Some(Num::I(i)) => Ok(Value::Int(!i)),
            _ => fail(format!(
                "Operator '~' cannot be applied to operand of type '{}'",
                v.type_name()
            )),
        },
        _ => fail(format!("unsupported operand of type '{}'", v.type_name())),
    }
}

fn binop(op: BinOp, l: &Value, r: &Value) -> R<Value> {
    match op {
        BinOp::Eq => Ok(Value::Bool(equals(l, r))),
        BinOp::Ne => Ok(Value::Bool(!equals(l, r))),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            if l.is_null() || r.is_null() {
                return Ok(Value::Bool(false));
            }
            if let (Value::Str(_), Value::Str(_)) = (l, r) {
                return fail(
                    "Operator '<' cannot be applied to operands of type 'string' and 'string'",
                );
            }
            if let (Some(Num::F(x)), _) | (_, Some(Num::F(x))) = (num(l), num(r)) {
                if x.is_nan() {
                    return Ok(Value::Bool(false));
                }
            }
            let o = compare(l, r)?;
            Ok(Value::Bool(match op {
                BinOp::Lt => o == Ordering::Less,
                BinOp::Le => o != Ordering::Greater,
                BinOp::Gt => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }))
        }
        _ => arith(op, l, r),
    }
}

fn add_to_object(m: &mut serde_json::Map<String, J>, v: &Value) -> R<()> {
    match v {
        Value::Object(o) => match &**o {
            Obj::Property(k, x) => {
                if m.contains_key(&**k) {
                    return fail(format!("Can not add property {k} to Newtonsoft.Json.Linq.JObject. Property with the same name already exists on object."));
                }
                m.insert(k.to_string(), x.clone());
                Ok(())
            }
            _ => fail(format!(
                "Can not add {} to Newtonsoft.Json.Linq.JObject.",
                v.type_name()
            )),
        },
        Value::Json(j) => match j.as_ref() {
            J::Object(other) => {
                for (k, x) in other {
                    m.insert(k.clone(), x.clone());
                }
                Ok(())
            }
            _ => fail(format!(
                "Can not add {} to Newtonsoft.Json.Linq.JObject.",
                json::token_type_name(j)
            )),
        },
        Value::Array(xs) => {
            for x in xs.iter() {
                add_to_object(m, x)?;
            }
            Ok(())
        }
        Value::Null => Ok(()),
        other => fail(format!(
            "Can not add {} to Newtonsoft.Json.Linq.JObject.",
            other.type_name()
        )),
    }
}

fn dict_add(d: &mut Dict, pair: &Value) -> R<()> {
    let Value::Array(kv) = pair else {
        return fail("dictionary initializers take { key, value } pairs");
    };
    let (Some(k), Some(v)) = (kv.first(), kv.get(1)) else {
        return fail("dictionary initializers take { key, value } pairs");
    };
    let k = str_arg(k, "key")?;
    if d.get(&k).is_some() {
        return fail("An item with the same key has already been added.");
    }
    d.entries.push((k, v.clone()));
    Ok(())
}

/// `Array.Copy(src, si, target, di, n)` / `Buffer.BlockCopy`: `a` is `[src, si, di, n]`.
fn copy_into(target: &mut Value, a: &[Value]) -> R<Value> {
    let [src, si, di, n] = a else {
        return fail("Array.Copy takes a source, a destination and a length");
    };
    let si = idx_arg(si, "sourceIndex")?;
    let di = idx_arg(di, "destinationIndex")?;
    let n = idx_arg(n, "length")?;
    let range = |start: usize, len: usize| {
        start
            .checked_add(n)
            .filter(|end| *end <= len)
            .map(|end| start..end)
    };
    let too_short = || {
        fail("Source array was not long enough. Check the source index, length, and the array's lower bounds. (Parameter 'sourceArray')")
    };
    match (target, src) {
        (Value::Null, _) => nre("the destination array"),
        (_, Value::Null) => nre("the source array"),
        (Value::Bytes(dst), Value::Bytes(sb)) => {
            let (Some(sr), Some(dr)) = (range(si, sb.len()), range(di, dst.len())) else {
                return too_short();
            };
            let mut data = dst.to_vec();
            data[dr].copy_from_slice(&sb[sr]);
            *dst = Bytes::from(data);
            Ok(Value::Null)
        }
        (Value::Array(dst), src) => {
            let items = items(src)?;
            let (Some(sr), Some(dr)) = (range(si, items.len()), range(di, dst.len())) else {
                return too_short();
            };
            let d = Arc::make_mut(dst);
            for (slot, v) in d[dr].iter_mut().zip(items[sr].iter()) {
                *slot = v.clone();
            }
            Ok(Value::Null)
        }
        (Value::Bytes(_), other) => fail(format!(
            "Array.Copy: cannot copy a {} into a byte[]",
            other.type_name()
        )),
        (other, _) => fail(format!(
            "Array.Copy: the destination is a {}, not an array",
            other.type_name()
        )),
    }
}

fn mutate_value(target: &mut Value, op: MutOp, a: &[Value]) -> R<Value> {
    if op == MutOp::CopyInto {
        return copy_into(target, a);
    }
    if let MutOp::SetAes(f) = op {
        let v = a.first().cloned().unwrap_or(Value::Null);
        let Value::Object(o) = target else {
            return match target {
                Value::Null => nre("the Aes object"),
                other => fail(format!(
                    "'{f:?}' cannot be set on a value of type '{}'",
                    other.type_name()
                )),
            };
        };
        let Obj::Aes(p) = Arc::make_mut(o) else {
            return fail(format!("'{f:?}' can only be set on an Aes object"));
        };
        set_aes(p, f, &v)?;
        return Ok(v);
    }
    match target {
        Value::Null => nre("the target"),
        Value::Json(j) => {
            let j = Arc::make_mut(j);
            match (j, op) {
                (J::Object(m), MutOp::Add) => {
                    match a {
                        [name, v] => {
                            let k = str_arg(name, "propertyName")?;
                            if m.contains_key(&*k) {
                                return fail(format!("Can not add property {k} to Newtonsoft.Json.Linq.JObject. Property with the same name already exists on object."));
                            }
                            m.insert(k.to_string(), v.to_json());
                        }
                        [v] => add_to_object(m, v)?,
                        _ => return fail("JObject.Add takes a property, or a name and a value"),
                    }
                    Ok(Value::Null)
                }
                (J::Object(m), MutOp::RemoveProperty | MutOp::Remove) => {
                    let k = str_arg(a.first().unwrap_or(&Value::Null), "propertyName")?;
                    Ok(Value::Bool(m.shift_remove(&*k).is_some()))
                }
                (J::Object(m), MutOp::Clear) => {
                    m.clear();
                    Ok(Value::Null)
                }
                (J::Array(xs), MutOp::Add) => {
                    for v in a {
                        xs.push(v.to_json());
                    }
                    Ok(Value::Null)
                }
                (J::Array(xs), MutOp::Clear) => {
                    xs.clear();
                    Ok(Value::Null)
                }
                (J::Array(xs), MutOp::Remove | MutOp::RemoveProperty) => {
                    let v = a.first().map(Value::to_json).unwrap_or(J::Null);
                    match xs.iter().position(|x| *x == v) {
                        Some(i) => {
                            xs.remove(i);
                            Ok(Value::Bool(true))
                        }
                        None => Ok(Value::Bool(false)),
                    }
                }
                (J::Array(xs), MutOp::Insert) => {
                    let i = idx_arg(a.first().unwrap_or(&Value::Null), "index")?;
                    if i > xs.len() {
                        return fail("Index must be within the bounds of the List.");
                    }
                    xs.insert(i, a.get(1).map(Value::to_json).unwrap_or(J::Null));
                    Ok(Value::Null)
                }
                _ => fail(format!("unsupported method '{op:?}' on JValue")),
            }
        }
        Value::Array(xs) => {
            let xs = Arc::make_mut(xs);
            match op {
                MutOp::Add => {
                    check_len(xs.len() + a.len())?;
                    xs.extend(a.iter().cloned());
                    Ok(Value::Null)
                }
                MutOp::Clear => {
                    xs.clear();
                    Ok(Value::Null)
                }
                MutOp::Remove | MutOp::RemoveProperty => {
                    let v = a.first().cloned().unwrap_or(Value::Null);
                    match xs.iter().position(|x| equals(x, &v)) {
                        Some(i) => {
                            xs.remove(i);
                            Ok(Value::Bool(true))
                        }
                        None => Ok(Value::Bool(false)),
                    }
                }
                MutOp::Insert => {
                    let i = idx_arg(a.first().unwrap_or(&Value::Null), "index")?;
                    if i > xs.len() {
                        return fail("Index must be within the bounds of the List.");
                    }
                    xs.insert(i, a.get(1).cloned().unwrap_or(Value::Null));
                    Ok(Value::Null)
                }
                MutOp::CopyInto | MutOp::SetAes(_) => fail("internal error: Array.Copy"),
            }
        }
        Value::Dict(d) => {
            let d = Arc::make_mut(d);
            match (op, a) {
                (MutOp::Add, [k, v]) => {
                    dict_add(d, &arr(vec![k.clone(), v.clone()]))?;
                    Ok(Value::Null)
                }
                (MutOp::Clear, _) => {
                    d.entries.clear();
                    Ok(Value::Null)
                }
                (MutOp::Remove | MutOp::RemoveProperty, [k]) => {
                    let k = str_arg(k, "key")?;
                    let ic = d.ignore_case;
                    let before = d.entries.len();
                    d.entries.retain(|(n, _)| {
                        if ic {
                            !n.eq_ignore_ascii_case(&k)
                        } else {
                            **n != *k
                        }
                    });
                    Ok(Value::Bool(d.entries.len() != before))
                }
                _ => fail("unsupported dictionary operation"),
            }
        }
        other => fail(format!(
            "unsupported method '{op:?}' on {}",
            other.type_name()
        )),
    }
}

fn assign_path(root: &mut Value, keys: &[Value], v: Value) -> R<()> {
    let Some((k, rest)) = keys.split_first() else {
        *root = v;
        return Ok(());
    };
    match root {
        Value::Null => nre("the indexed value"),
        Value::Json(j) => json_assign(Arc::make_mut(j), keys, v.to_json()),
        Value::Array(xs) => {
            let i = idx_arg(k, "index")?;
            match Arc::make_mut(xs).get_mut(i) {
                Some(slot) => assign_path(slot, rest, v),
                None => fail("Index was outside the bounds of the array."),
            }
        }
        Value::Bytes(b) if rest.is_empty() => {
            let i = idx_arg(k, "index")?;
            let byte = int_arg(&v, "value")? as u8;
            let mut data = b.to_vec();
            match data.get_mut(i) {
                Some(x) => *x = byte,
                None => return fail("Index was outside the bounds of the array."),
            }
            *b = Bytes::from(data);
            Ok(())
        }
        Value::Dict(d) => {
            let key = str_arg(k, "key")?;
            let d = Arc::make_mut(d);
            let ic = d.ignore_case;
            let pos = d.entries.iter().position(|(n, _)| {
                if ic {
                    n.eq_ignore_ascii_case(&key)
                } else {
                    **n == *key
                }
            });
            match pos {
                Some(p) => assign_path(&mut d.entries[p].1, rest, v),
                None if rest.is_empty() => {
                    d.entries.push((key, v));
                    Ok(())
                }
                None => fail(format!(
                    "The given key '{key}' was not present in the dictionary."
                )),
            }
        }
        other => fail(format!(
            "Cannot apply indexing to a value of type '{}'",
            other.type_name()
        )),
    }
}

fn json_assign(j: &mut J, keys: &[Value], v: J) -> R<()> {
    let Some((k, rest)) = keys.split_first() else {
        *j = v;
        return Ok(());
    };
    match j {
        J::Object(m) => {
            let key = str_arg(k, "propertyName")?;
            if rest.is_empty() {
                m.insert(key.to_string(), v);
                return Ok(());
            }
            match m.get_mut(&*key) {
                Some(inner) => json_assign(inner, rest, v),
                None => nre("the property"),
            }
        }
        J::Array(xs) => {
            let i = idx_arg(k, "index")?;
            match xs.get_mut(i) {
                Some(inner) => json_assign(inner, rest, v),
                None => fail("Index was out of range. Must be non-negative and less than the size of the collection."),
            }
        }
        _ => fail("Cannot set child value on Newtonsoft.Json.Linq.JValue."),
    }
}

/// Members of values.
fn member(v: Value, m: Member) -> R<Value> {
    use Member as M;
    let bad = |v: &Value| fail(format!("unsupported member '{m:?}' on {}", v.type_name()));
    // `Nullable<T>.HasValue` / `.Value`.
    if m == M::HasValue {
        return Ok(Value::Bool(!v.is_null()));
    }
    if m == M::Value
        && matches!(
            v,
            Value::Int(_)
                | Value::Double(_)
                | Value::Bool(_)
                | Value::Char(_)
                | Value::DateTime(_)
                | Value::TimeSpan(_)
                | Value::Guid(_)
        )
    {
        return Ok(v);
    }
    match &v {
        Value::Null => nre(&format!("the target of '{m:?}'")),
        Value::Str(st) => match m {
            M::Length => Ok(Value::Int(strings::char_len(st) as i64)),
            _ => bad(&v),
        },
        Value::Array(xs) => match m {
            M::Length | M::Count => Ok(Value::Int(xs.len() as i64)),
            _ => bad(&v),
        },
        Value::Bytes(b) => match m {
            M::Length | M::Count => Ok(Value::Int(b.len() as i64)),
            _ => bad(&v),
        },
        Value::Json(j) => match (m, j.as_ref()) {
            (M::Count, J::Object(o)) => Ok(Value::Int(o.len() as i64)),
            (M::Count, J::Array(a)) => Ok(Value::Int(a.len() as i64)),
            (M::Type, x) => Ok(s(json::token_kind(x))),
            (M::HasValues, J::Object(o)) => Ok(Value::Bool(!o.is_empty())),
            (M::HasValues, J::Array(a)) => Ok(Value::Bool(!a.is_empty())),
            (M::HasValues, _) => Ok(Value::Bool(false)),
            (M::First, J::Array(a)) => Ok(a
                .first()
                .map(|x| json::token(x.clone()))
                .unwrap_or(Value::Null)),
            (M::Last, J::Array(a)) => Ok(a
                .last()
                .map(|x| json::token(x.clone()))
                .unwrap_or(Value::Null)),
            (M::First, J::Object(o)) => Ok(o
                .iter()
                .next()
                .map(|(k, x)| Value::Object(Arc::new(Obj::Property(k.as_str().into(), x.clone()))))
                .unwrap_or(Value::Null)),
            (M::Last, J::Object(o)) => Ok(o
                .iter()
                .next_back()
                .map(|(k, x)| Value::Object(Arc::new(Obj::Property(k.as_str().into(), x.clone()))))
                .unwrap_or(Value::Null)),
            (M::Value, x) if !(x.is_object() || x.is_array()) => Ok(json_scalar(x)),
            (M::Count, _) => fail("Cannot access child value on Newtonsoft.Json.Linq.JValue."),
            _ => bad(&v),
        },
        Value::Dict(d) => match m {
            M::Count => Ok(Value::Int(d.entries.len() as i64)),
            M::Keys => Ok(arr(d
                .entries
                .iter()
                .map(|(k, _)| Value::Str(k.clone()))
                .collect())),
            M::Values => Ok(arr(d.entries.iter().map(|(_, x)| x.clone()).collect())),
            _ => bad(&v),
        },
        Value::DateTime(ms) => {
            let p = datetime::parts(*ms);
            Ok(match m {
                M::Year => Value::Int(p.year),
                M::Month => Value::Int(p.month as i64),
                M::Day => Value::Int(p.day as i64),
                M::Hour => Value::Int(p.hour as i64),
                M::Minute => Value::Int(p.minute as i64),
                M::Second => Value::Int(p.second as i64),
                M::Millisecond => Value::Int(p.milli as i64),
                M::DayOfWeek => s([
                    "Sunday",
                    "Monday",
                    "Tuesday",
                    "Wednesday",
                    "Thursday",
                    "Friday",
                    "Saturday",
                ][p.weekday as usize % 7]),
                M::DayOfYear => Value::Int(
                    datetime::days_from_civil(p.year, p.month, p.day)
                        - datetime::days_from_civil(p.year, 1, 1)
                        + 1,
                ),
                M::Date => Value::DateTime(ms - ms.rem_euclid(86_400_000)),
                M::TimeOfDay => Value::TimeSpan(ms.rem_euclid(86_400_000)),
                M::Ticks => Value::Int(
                    ms.saturating_mul(10_000)
                        .saturating_add(datetime::EPOCH_TICKS),
                ),
                M::UtcDateTime | M::DateTimeOf => v.clone(),
                _ => return bad(&v),
            })
        }
        Value::TimeSpan(ms) => {
            let ms = *ms;
            Ok(match m {
                M::TotalMilliseconds => Value::Double(ms as f64),
                M::TotalSeconds => Value::Double(ms as f64 / 1000.0),
                M::TotalMinutes => Value::Double(ms as f64 / 60_000.0),
                M::TotalHours => Value::Double(ms as f64 / 3_600_000.0),
                M::TotalDays => Value::Double(ms as f64 / 86_400_000.0),
                M::Milliseconds => Value::Int(ms % 1000),
                M::Seconds => Value::Int(ms / 1000 % 60),
                M::Minutes => Value::Int(ms / 60_000 % 60),
                M::Hours => Value::Int(ms / 3_600_000 % 24),
                M::Days => Value::Int(ms / 86_400_000),
                M::Ticks => Value::Int(ms.saturating_mul(10_000)),
                _ => return bad(&v),
            })
        }
        Value::Response(r) => match m {
            M::StatusCode => Ok(Value::Int(r.status as i64)),
            M::StatusReason => Ok(s(r.reason.as_str())),
            M::Headers => Ok(Value::Dict(Arc::new(headers_dict(&r.headers)))),
            _ => bad(&v),
        },
        Value::Jwt(j) => Ok(match m {
            M::Claims => Value::Dict(Arc::new(j.claims_dict())),
            M::Subject => j.subject(),
            M::Issuer => j.issuer(),
            M::Id => j.id(),
            M::Audiences => j.audiences(),
            M::ExpirationTime => j.time("exp"),
            M::NotBefore => j.time("nbf"),
            M::IssuedAt => j.time("iat"),
            M::Algorithm => j.algorithm(),
            M::Type => j.type_(),
            _ => return bad(&v),
        }),
        Value::Object(o) => match (&**o, m) {
            (Obj::Property(k, _), M::Name) => Ok(Value::Str(k.clone())),
            (Obj::Property(_, x), M::Value) => Ok(json::token(x.clone())),
            (Obj::Basic { user_id, .. }, M::UserId) => Ok(Value::Str(user_id.clone())),
            (Obj::Basic { password, .. }, M::Password) => Ok(Value::Str(password.clone())),
            (Obj::KeyValue(k, _), M::Key) => Ok(Value::Str(k.clone())),
            (Obj::KeyValue(_, x), M::Value | M::Message) => Ok(x.clone()),
            (Obj::Uri(u), _) => uri_member(u, m),
            (Obj::Hasher(_, Some(k)), M::Key) => Ok(Value::Bytes(k.clone())),
            (Obj::Aes(p), M::Key | M::IV) => {
                let (x, what) = if m == M::Key {
                    (&p.key, "Key")
                } else {
                    (&p.iv, "IV")
                };
                match x {
                    Some(b) => Ok(Value::Bytes(b.clone())),
                    None => fail(format!("Aes.{what} was not set (.NET would generate a random one; the gateway has no random source)")),
                }
            }
            (Obj::Aes(p), M::Mode) => Ok(Value::Int(if p.mode == 0 {
                crypto::MODE_CBC
            } else {
                p.mode
            })),
            (Obj::Aes(p), M::Padding) => Ok(Value::Int(if p.padding == 0 {
                crypto::PADDING_PKCS7
            } else {
                p.padding
            })),
            (Obj::Aes(p), M::KeySize) => Ok(Value::Int(
                p.key.as_ref().map_or(256, |k| k.len() as i64 * 8),
            )),
            (Obj::Aes(_), M::BlockSize) => Ok(Value::Int(128)),
            (Obj::Match(md), _) => group_member(md.groups.first().cloned().flatten(), m, Some(md))
                .unwrap_or_else(|| bad(&v)),
            (Obj::Group(g), _) => group_member(g.clone(), m, None).unwrap_or_else(|| bad(&v)),
            (Obj::Groups(md), M::Count) => Ok(Value::Int(md.groups.len() as i64)),
            _ => bad(&v),
        },
        _ => bad(&v),
    }
}

fn json_scalar(j: &J) -> Value {
    match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::String(t) => s(t.as_str()),
        J::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .unwrap_or_else(|| Value::Double(n.as_f64().unwrap_or(0.0))),
        other => json::token(other.clone()),
    }
}

fn uri_member(u: &str, m: Member) -> R<Value> {
    let (scheme, rest) = u.split_once("://").unwrap_or(("", u));
    let (authority, path_q) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (path, query) = match path_q.find('?') {
        Some(i) => (&path_q[..i], &path_q[i..]),
        None => (path_q, ""),
    };
    let path = path.split('#').next().unwrap_or(path);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => {
            (h, p.parse::<i64>().unwrap_or(-1))
        }
        _ => (
            authority,
            if scheme.eq_ignore_ascii_case("https") {
                443
            } else {
                80
            },
        ),
    };
    Ok(match m {
        Member::AbsolutePath => s(path),
        Member::AbsoluteUri => s(u),
        Member::Host => s(host),
        Member::Port => Value::Int(port),
        Member::Scheme => s(scheme.to_ascii_lowercase()),
        Member::Query => s(query),
        Member::PathAndQuery => s(format!("{path}{query}")),
        _ => return fail(format!("unsupported member '{m:?}' on Uri")),
    })
}

fn common_method(v: &Value, m: Method, a: &[Value]) -> R<Value> {
    match m {
        Method::ToString => match a.first() {
            Some(Value::Int(fmt)) if matches!(v, Value::Json(_)) => {
                // JToken.ToString(Formatting)
                match v {
                    Value::Json(j) => Ok(s(json_to_string(j, *fmt == 1))),
                    _ => Ok(s(v.to_display_string())),
                }
            }
            Some(f) => {
                let f = str_arg(f, "format")?;
                strings::format_value(v, &f)
                    .map(s)
                    .map_err(|m| EvalError { message: m })
            }
            None => Ok(s(v.to_display_string())),
        },
        Method::Equals => Ok(Value::Bool(equals(v, a.first().unwrap_or(&Value::Null)))),
        Method::GetHashCode => Ok(Value::Int(
            encoding::fnv1a(v.to_display_string().as_bytes()) as i32 as i64,
        )),
        Method::CompareTo => {
            let o = a.first().unwrap_or(&Value::Null);
            if o.is_null() {
                return Ok(Value::Int(1));
            }
            Ok(Value::Int(match compare(v, o)? {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            }))
        }
        _ => fail(format!("unsupported method '{m:?}' on {}", v.type_name())),
    }
}

fn json_to_string(j: &J, indented: bool) -> String {
    match j {
        J::Object(_) | J::Array(_) => json::token_to_string(j, indented),
        J::String(t) if !indented => {
            // A JValue string printed as JSON would be quoted; ToString() on a
            // JValue gives the raw text with either formatting.
            t.clone()
        }
        other => json::token_to_string(other, indented),
    }
}

fn random_next(x: u64, m: Method, a: &[Value]) -> R<Value> {
    if m == Method::NextDouble {
        return Ok(Value::Double((x >> 11) as f64 / (1u64 << 53) as f64));
    }
    let (lo, hi) = match a {
        [] => (0, i32::MAX as i64),
        [max] => (0, int_arg(max, "maxValue")?),
        [min, max, ..] => (int_arg(min, "minValue")?, int_arg(max, "maxValue")?),
    };
    if hi < lo {
        return fail("'minValue' cannot be greater than maxValue.");
    }
    if hi == lo {
        return Ok(Value::Int(lo));
    }
    let span = (hi as i128 - lo as i128) as u128;
    Ok(Value::Int((lo as i128 + (x as u128 % span) as i128) as i64))
}

fn str_method(st: &Arc<str>, m: Method, a: &[Value]) -> R<Value> {
    use Method as M;
    let arg = |i: usize| a.get(i).unwrap_or(&Value::Null);
    Ok(match m {
        M::Contains | M::StartsWith | M::EndsWith | M::IndexOf | M::LastIndexOf | M::Equals => {
            let needle = match arg(0) {
                Value::Null if m == M::Equals => return Ok(Value::Bool(false)),
                v => str_arg(v, "value")?,
            };
            // An extra argument: a StringComparison (or a start index for IndexOf).
            let (start, ic) = match (m, a.get(1)) {
                (M::IndexOf | M::LastIndexOf, Some(Value::Int(i)))
                    if a.len() == 2 && *i > 5
                        || (matches!(m, M::IndexOf | M::LastIndexOf) && a.len() == 3) =>
                {
                    (Some(*i), ignore_case(a.get(2)))
                }
                (_, x) => (None, ignore_case(x)),
            };
            let (hay, needle) = if ic {
                (st.to_lowercase(), needle.to_lowercase())
            } else {
                (st.to_string(), needle.to_string())
            };
            match m {
                M::Contains => Value::Bool(hay.contains(&needle)),
                M::StartsWith => Value::Bool(hay.starts_with(&needle)),
                M::EndsWith => Value::Bool(hay.ends_with(&needle)),
                M::Equals => Value::Bool(hay == needle),
                M::IndexOf => {
                    let from = match start {
                        Some(i) => strings::byte_at(&hay, usize::try_from(i).unwrap_or(usize::MAX))
                            .ok_or_else(|| EvalError {
                                message: "startIndex cannot be larger than length of string."
                                    .into(),
                            })?,
                        None => 0,
                    };
                    Value::Int(
                        hay[from..]
                            .find(&needle)
                            .map(|b| strings::char_index(&hay, b + from) as i64)
                            .unwrap_or(-1),
                    )
                }
                _ => Value::Int(
                    hay.rfind(&needle)
                        .map(|b| strings::char_index(&hay, b) as i64)
                        .unwrap_or(-1),
                ),
            }
        }
        M::ToLower => s(st.to_lowercase()),
        M::ToUpper => s(st.to_uppercase()),
        M::Substring => {
            let start = idx_arg(arg(0), "startIndex")?;
            let len = strings::char_len(st);
            if start > len {
                return fail(
                    "startIndex cannot be larger than length of string. (Parameter 'startIndex')",
                );
            }
            let count = match a.get(1) {
                Some(c) => idx_arg(c, "length")?,
                None => len - start,
            };
            if start + count > len {
                return fail("Index and length must refer to a location within the string. (Parameter 'length')");
            }
            let b0 = strings::byte_at(st, start).unwrap_or(st.len());
            let b1 = strings::byte_at(st, start + count).unwrap_or(st.len());
            s(&st[b0..b1])
        }
        M::Replace => {
            let from = str_arg(arg(0), "oldValue")?;
            if from.is_empty() {
                return fail("String cannot be of zero length. (Parameter 'oldValue')");
            }
            let to = match arg(1) {
                Value::Null => Arc::from(""),
                v => str_arg(v, "newValue")?,
            };
            let est = st.len() / from.len() * to.len() + st.len();
            check_len(est)?;
            s(st.replace(&*from, &to))
        }
        M::Split => {
            let mut seps = Vec::new();
            let mut count = None;
            let mut options = 0;
            for (i, v) in a.iter().enumerate() {
                match v {
                    Value::Char(c) => seps.push(c.to_string()),
                    Value::Str(t) => seps.push(t.to_string()),
                    Value::Array(xs) => {
                        for x in xs.iter() {
                            seps.push(str_arg(x, "separator")?.to_string());
                        }
                    }
                    Value::Int(n) if i == a.len() - 1 && i > 0 => options = *n,
                    Value::Int(n) => count = Some(usize::try_from(*n).unwrap_or(0)),
                    Value::Null => {}
                    other => {
                        return fail(format!(
                            "unsupported separator of type '{}'",
                            other.type_name()
                        ))
                    }
                }
            }
            strs(strings::split(st, &seps, count, options))
        }
        M::Trim | M::TrimStart | M::TrimEnd => {
            let mut chars = Vec::new();
            for v in a {
                match v {
                    Value::Char(c) => chars.push(*c),
                    Value::Array(xs) => {
                        for x in xs.iter() {
                            if let Value::Char(c) = x {
                                chars.push(*c);
                            }
                        }
                    }
                    Value::Str(t) => chars.extend(t.chars()),
                    _ => return fail("Trim takes characters"),
                }
            }
            s(strings::trim(
                st,
                &chars,
                m != M::TrimEnd,
                m != M::TrimStart,
            ))
        }
        M::PadLeft | M::PadRight => {
            let w = idx_arg(arg(0), "totalWidth")?;
            check_len(w)?;
            let c = match a.get(1) {
                Some(Value::Char(c)) => *c,
                Some(_) => return fail("PadLeft/PadRight take a char"),
                None => ' ',
            };
            s(strings::pad(st, w, c, m == M::PadLeft))
        }
        M::ToString => s(st.clone()),
        M::AsJwt => match Jwt::decode(st) {
            Some(j) => Value::Jwt(Arc::new(j)),
            None => Value::Null,
        },
        M::AsBasic => {
            let t = st.trim();
            let t = match t.get(..6) {
                Some(p) if p.eq_ignore_ascii_case("basic ") => t[6..].trim(),
                _ => t,
            };
            match encoding::base64_decode(t, false)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
            {
                Some(text) => match text.split_once(':') {
                    Some((u, p)) => Value::Object(Arc::new(Obj::Basic {
                        user_id: u.into(),
                        password: p.into(),
                    })),
                    None => Value::Null,
                },
                None => Value::Null,
            }
        }
        M::GetHashCode => Value::Int(encoding::fnv1a(st.as_bytes()) as i32 as i64),
        M::Insert => {
            let i = idx_arg(arg(0), "startIndex")?;
            let v = str_arg(arg(1), "value")?;
            let b = strings::byte_at(st, i).ok_or_else(|| EvalError { message: "Specified argument was out of the range of valid values. (Parameter 'startIndex')".into() })?;
            s(format!("{}{}{}", &st[..b], v, &st[b..]))
        }
        M::Remove => {
            let i = idx_arg(arg(0), "startIndex")?;
            let len = strings::char_len(st);
            if i > len {
                return fail(
                    "startIndex must be less than length of string. (Parameter 'startIndex')",
                );
            }
            let count = match a.get(1) {
                Some(c) => idx_arg(c, "count")?,
                None => len - i,
            };
            if i + count > len {
                return fail("Index and count must refer to a location within the string. (Parameter 'count')");
            }
            let b0 = strings::byte_at(st, i).unwrap_or(st.len());
            let b1 = strings::byte_at(st, i + count).unwrap_or(st.len());
            s(format!("{}{}", &st[..b0], &st[b1..]))
        }
        M::ToCharArray => arr(st.chars().map(Value::Char).collect()),
        M::CompareTo => Value::Int(
            match st
                .as_ref()
                .cmp(&*str_arg(arg(0), "strB").unwrap_or_default())
            {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            },
        ),
        _ => return seq_method(st.chars().map(Value::Char).collect(), m, a),
    })
}

fn seq_method(items: Vec<Value>, m: Method, a: &[Value]) -> R<Value> {
    use Method as M;
    Ok(match m {
        M::ToArray => arr(items),
        M::Count => Value::Int(items.len() as i64),
        M::Any => Value::Bool(!items.is_empty()),
        M::First | M::Single if items.is_empty() => return fail("Sequence contains no elements"),
        M::First | M::FirstOrDefault => items.into_iter().next().unwrap_or(Value::Null),
        M::Last if items.is_empty() => return fail("Sequence contains no elements"),
        M::Last | M::LastOrDefault => items.into_iter().next_back().unwrap_or(Value::Null),
        M::Single | M::SingleOrDefault if items.len() > 1 => {
            return fail("Sequence contains more than one element")
        }
        M::Single | M::SingleOrDefault => items.into_iter().next().unwrap_or(Value::Null),
        M::Skip => {
            let n = int_arg(a.first().unwrap_or(&Value::Int(0)), "count")?.max(0) as usize;
            arr(items.into_iter().skip(n).collect())
        }
        M::Take => {
            let n = int_arg(a.first().unwrap_or(&Value::Int(0)), "count")?.max(0) as usize;
            arr(items.into_iter().take(n).collect())
        }
        M::Reverse => arr(items.into_iter().rev().collect()),
        M::Distinct => {
            let mut out: Vec<Value> = Vec::new();
            for x in items {
                if !out.iter().any(|y| equals(y, &x)) {
                    out.push(x);
                }
            }
            arr(out)
        }
        M::Contains => {
            let x = a.first().unwrap_or(&Value::Null);
            let ic = ignore_case(a.get(1));
            Value::Bool(items.iter().any(|y| {
                if ic {
                    match (y.as_str(), x.as_str()) {
                        (Some(p), Some(q)) => {
                            p.eq_ignore_ascii_case(q) || p.to_lowercase() == q.to_lowercase()
                        }
                        _ => equals(y, x),
                    }
                } else {
                    equals(y, x)
                }
            }))
        }
        M::ElementAt => {
            let i = idx_arg(a.first().unwrap_or(&Value::Null), "index")?;
            match items.into_iter().nth(i) {
                Some(v) => v,
                None => return fail("Index was out of range. Must be non-negative and less than the size of the collection."),
            }
        }
        M::Concat => {
            let mut out = items;
            if let Some(o) = a.first() {
                out.extend(self::items(o)?);
            }
            check_len(out.len())?;
            arr(out)
        }
        M::IndexOf => {
            let x = a.first().unwrap_or(&Value::Null);
            Value::Int(
                items
                    .iter()
                    .position(|y| equals(y, x))
                    .map(|i| i as i64)
                    .unwrap_or(-1),
            )
        }
        M::Sum => {
            let mut acc = Value::Int(0);
            for x in &items {
                acc = arith(BinOp::Add, &acc, x)?;
            }
            acc
        }
        M::Min | M::Max => {
            let mut best: Option<Value> = None;
            for x in items {
                best = Some(match best {
                    None => x,
                    Some(b) => {
                        let o = compare(&x, &b)?;
                        if (m == M::Min && o == Ordering::Less)
                            || (m == M::Max && o == Ordering::Greater)
                        {
                            x
                        } else {
                            b
                        }
                    }
                });
            }
            return best.map_or_else(|| fail("Sequence contains no elements"), Ok);
        }
        _ => return fail(format!("unsupported method '{m:?}' on a sequence")),
    })
}

fn json_method(j: &Arc<J>, m: Method, a: &[Value], t: Option<CastTy>) -> R<Value> {
    use Method as M;
    let v = Value::Json(j.clone());
    match m {
        M::ToString => match a.first() {
            Some(Value::Int(f)) => Ok(s(json_to_string(j, *f == 1))),
            None => Ok(s(json::token_to_string(j, true))),
            Some(_) => common_method(&v, m, a),
        },
        M::Value => {
            let key = a.first().unwrap_or(&Value::Null);
            let x = index_value(&v, key)?;
            match t {
                Some(t) => match x {
                    Value::Json(ref inner) if inner.is_null() => {
                        Ok(default_of(Some(t)).or_null_for(t))
                    }
                    Value::Null => Ok(default_of(Some(t)).or_null_for(t)),
                    x => cast(x, t, true),
                },
                None => Ok(x),
            }
        }
        M::ToObject => match t {
            Some(t) => cast(v, t, true),
            None => Ok(v),
        },
        M::Values => {
            let items = items(&v)?;
            let mut out = Vec::with_capacity(items.len());
            for x in items {
                let x = match x {
                    Value::Object(o) => match &*o {
                        Obj::Property(_, inner) => json::token(inner.clone()),
                        _ => Value::Object(o),
                    },
                    x => x,
                };
                out.push(match t {
                    Some(t) => cast(x, t, true)?,
                    None => x,
                });
            }
            Ok(arr(out))
        }
        M::SelectToken => {
            let path = str_arg(a.first().unwrap_or(&Value::Null), "path")?;
            match json::select_token(j, &path) {
                Ok(Some(x)) => Ok(json::token(x.clone())),
                Ok(None) if matches!(a.get(1), Some(Value::Bool(true))) => {
                    fail(format!("Path '{path}' does not exist."))
                }
                Ok(None) => Ok(Value::Null),
                Err(e) => fail(e),
            }
        }
        M::Property => {
            let k = str_arg(a.first().unwrap_or(&Value::Null), "name")?;
            match j.as_ref() {
                J::Object(o) => Ok(o
                    .get(&*k)
                    .map(|x| Value::Object(Arc::new(Obj::Property(k.clone(), x.clone()))))
                    .unwrap_or(Value::Null)),
                _ => fail("Cannot access child value on Newtonsoft.Json.Linq.JValue."),
            }
        }
        M::Properties | M::Children => items(&v).map(arr),
        M::ContainsKey => {
            let k = str_arg(a.first().unwrap_or(&Value::Null), "propertyName")?;
            Ok(Value::Bool(j.get(&*k).is_some()))
        }
        M::IndexOf => seq_method(items(&v)?, m, a),
        _ if is_seq_method(m) => seq_method(items(&v)?, m, a),
        _ => common_method(&v, m, a),
    }
}

trait OrNull {
    fn or_null_for(self, t: CastTy) -> Value;
}

impl OrNull for Value {
    /// `Value<T>` of a missing or null token: null for reference types, default otherwise.
    fn or_null_for(self, t: CastTy) -> Value {
        match t {
            CastTy::Str
            | CastTy::Object
            | CastTy::JObject
            | CastTy::JArray
            | CastTy::JToken
            | CastTy::JValue => Value::Null,
            _ => self,
        }
    }
}

fn datetime_method(ms: i64, m: Method, a: &[Value]) -> R<Value> {
    use Method as M;
    let amount = |unit: f64| -> R<Value> {
        let n =
            f64_arg(a.first().unwrap_or(&Value::Null), "value").or_else(|_| match a.first() {
                Some(Value::Str(t)) => t.trim().parse::<f64>().map_err(|_| EvalError {
                    message: "Input string was not in a correct format.".into(),
                }),
                _ => fail("expected a number"),
            })?;
        let delta = n * unit;
        if !delta.is_finite() || delta.abs() > 1e15 {
            return fail("Value to add was out of range. (Parameter 'value')");
        }
        date(ms.saturating_add(delta.round() as i64))
    };
    match m {
        M::AddMilliseconds => amount(1.0),
        M::AddSeconds => amount(1000.0),
        M::AddMinutes => amount(60_000.0),
        M::AddHours => amount(3_600_000.0),
        M::AddDays => amount(86_400_000.0),
        M::AddTicks => amount(0.0001),
        M::AddMonths | M::AddYears => {
            let n = int_arg(a.first().unwrap_or(&Value::Null), "months")?;
            let months = if m == M::AddYears {
                n.saturating_mul(12)
            } else {
                n
            };
            datetime::add_months(ms, months).map(Value::DateTime).map_or_else(
                || fail("The added or subtracted value results in an un-representable DateTime."),
                Ok,
            )
        }
        M::Add => match a.first() {
            Some(Value::TimeSpan(t)) => date(ms.saturating_add(*t)),
            _ => fail("DateTime.Add takes a TimeSpan"),
        },
        M::Subtract => match a.first() {
            Some(Value::TimeSpan(t)) => date(ms.saturating_sub(*t)),
            Some(Value::DateTime(o)) => Ok(Value::TimeSpan(ms.saturating_sub(*o))),
            _ => fail("DateTime.Subtract takes a TimeSpan or a DateTime"),
        },
        M::ToUniversalTime | M::ToLocalTime => Ok(Value::DateTime(ms)),
        M::ToUnixTimeSeconds => Ok(Value::Int(ms.div_euclid(1000))),
        M::ToUnixTimeMilliseconds => Ok(Value::Int(ms)),
        _ => common_method(&Value::DateTime(ms), m, a),
    }
}

fn timespan_method(ms: i64, m: Method, a: &[Value]) -> R<Value> {
    match (m, a.first()) {
        (Method::Add, Some(Value::TimeSpan(t))) => Ok(Value::TimeSpan(ms.saturating_add(*t))),
        (Method::Subtract, Some(Value::TimeSpan(t))) => Ok(Value::TimeSpan(ms.saturating_sub(*t))),
        (Method::Negate, _) => Ok(Value::TimeSpan(ms.saturating_neg())),
        (Method::Duration, _) => Ok(Value::TimeSpan(ms.saturating_abs())),
        _ => common_method(&Value::TimeSpan(ms), m, a),
    }
}

fn parse_as(text: &str, t: CastTy) -> R<Value> {
    let bad = || EvalError {
        message: format!("The input string '{text}' was not in a correct format."),
    };
    let tt = text.trim();
    match t {
        CastTy::Int(w) => {
            let v: i64 = tt.parse().map_err(|_| bad())?;
            if wrap_int(v, w) != v {
                return fail(format!("Value was either too large or too small for an {}.", if w == IntW::I64 { "Int64" } else { "Int32" }));
            }
            Ok(Value::Int(v))
        }
        CastTy::Double => tt.parse::<f64>().map(Value::Double).map_err(|_| bad()),
        CastTy::Bool => {
            if tt.eq_ignore_ascii_case("true") {
                Ok(Value::Bool(true))
            } else if tt.eq_ignore_ascii_case("false") {
                Ok(Value::Bool(false))
            } else {
                fail(format!("String '{text}' was not recognized as a valid Boolean."))
            }
        }
        CastTy::Guid => parse_guid(tt).map(Value::Guid).ok_or_else(|| EvalError {
            message: "Guid should contain 32 digits with 4 dashes (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).".into(),
        }),
        CastTy::DateTime => datetime::parse(tt).map(Value::DateTime).ok_or_else(|| EvalError {
            message: format!("String '{text}' was not recognized as a valid DateTime."),
        }),
        CastTy::TimeSpan => {
            let parts: Vec<&str> = tt.split(':').collect();
            let n: Vec<i64> = parts.iter().map(|p| p.parse::<f64>().map(|f| (f * 1000.0) as i64).map_err(|_| bad())).collect::<R<_>>()?;
            match n.as_slice() {
                [h, m, sec] => Ok(Value::TimeSpan(h / 1000 * 3_600_000 + m / 1000 * 60_000 + sec)),
                [h, m] => Ok(Value::TimeSpan(h / 1000 * 3_600_000 + m / 1000 * 60_000)),
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

fn static_fn(f: StaticFn, a: &[Value]) -> R<Value> {
    use StaticFn as F;
    let arg = |i: usize| a.get(i).unwrap_or(&Value::Null);
    Ok(match f {
        F::IsNullOrEmpty => Value::Bool(match arg(0) {
            Value::Null => true,
            v => str_arg(v, "value")?.is_empty(),
        }),
        F::IsNullOrWhiteSpace => Value::Bool(match arg(0) {
            Value::Null => true,
            v => str_arg(v, "value")?.trim().is_empty(),
        }),
        F::Format => {
            let fmt = str_arg(arg(0), "format")?;
            let rest: Vec<Value> = match &a[1.min(a.len())..] {
                [Value::Array(xs)] => xs.as_ref().clone(),
                other => other.to_vec(),
            };
            let out = strings::format(&fmt, &rest).map_err(|m| EvalError { message: m })?;
            check_len(out.len())?;
            s(out)
        }
        F::Join => {
            let sep = match arg(0) {
                Value::Null => Arc::from(""),
                v => str_arg(v, "separator")?,
            };
            let parts: Vec<Value> = match &a[1.min(a.len())..] {
                [one] if !matches!(one, Value::Str(_)) => items(one)?,
                many => many.to_vec(),
            };
            let strs: Vec<String> = parts.iter().map(|p| p.to_display_string()).collect();
            let out = strs.join(&sep);
            check_len(out.len())?;
            s(out)
        }
        F::Concat => {
            let parts: Vec<Value> = match a {
                [one] if matches!(one, Value::Array(_)) => items(one)?,
                many => many.to_vec(),
            };
            let out: String = parts.iter().map(|p| p.to_display_string()).collect();
            check_len(out.len())?;
            s(out)
        }
        F::StringEquals => {
            let (x, y) = (arg(0), arg(1));
            if x.is_null() || y.is_null() {
                return Ok(Value::Bool(x.is_null() && y.is_null()));
            }
            let (x, y) = (str_arg(x, "a")?, str_arg(y, "b")?);
            Value::Bool(if ignore_case(a.get(2)) {
                x.to_lowercase() == y.to_lowercase()
            } else {
                x == y
            })
        }
        F::StringCompare => {
            let (x, y) = (str_arg(arg(0), "strA")?, str_arg(arg(1), "strB")?);
            let o = if ignore_case(a.get(2)) {
                x.to_lowercase().cmp(&y.to_lowercase())
            } else {
                x.cmp(&y)
            };
            Value::Int(match o {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            })
        }
        F::Parse(t) => {
            let text = str_arg(arg(0), "s")?;
            parse_as(&text, t)?
        }
        F::ConvertTo(t) => convert_to(arg(0), t, a.get(1))?,
        F::ToBase64 => {
            let b = bytes_arg(arg(0))?;
            check_len(b.len() / 3 * 4)?;
            s(encoding::base64_encode(&b))
        }
        F::FromBase64 => {
            let t = str_arg(arg(0), "s")?;
            match encoding::base64_decode(&t, true) {
                Some(b) => Value::Bytes(Bytes::from(b)),
                None => return fail("The input is not a valid Base-64 string as it contains a non-base 64 character, more than two padding characters, or an illegal character among the padding characters."),
            }
        }
        F::GetBytes => {
            let t = str_arg(arg(0), "s")?;
            Value::Bytes(Bytes::copy_from_slice(t.as_bytes()))
        }
        F::GetString => {
            let b = bytes_arg(arg(0))?;
            let b = match (a.get(1), a.get(2)) {
                (Some(i), Some(n)) => {
                    let i = idx_arg(i, "index")?;
                    let n = idx_arg(n, "count")?;
                    if i.checked_add(n).is_none_or(|e| e > b.len()) {
                        return fail("Index and count must refer to a location within the buffer.");
                    }
                    b.slice(i..i + n)
                }
                _ => b,
            };
            s(String::from_utf8_lossy(&b).into_owned())
        }
        F::FromUnixSeconds => {
            let n = int_arg(arg(0), "seconds")?;
            date(n.checked_mul(1000).unwrap_or(i64::MAX))?
        }
        F::FromUnixMilliseconds => date(int_arg(arg(0), "milliseconds")?)?,
        F::TimeSpanFrom(unit) => {
            let n = f64_arg(arg(0), "value")?;
            let ms = n * unit as f64;
            if !ms.is_finite() || ms.abs() > 9.2e18 {
                return fail("TimeSpan overflowed because the duration is too long.");
            }
            Value::TimeSpan(ms.round() as i64)
        }
        F::MathMin | F::MathMax => {
            let (x, y) = (arg(0), arg(1));
            let o = compare(x, y)?;
            let pick_x = if f == F::MathMin {
                o != Ordering::Greater
            } else {
                o != Ordering::Less
            };
            if pick_x {
                x.clone()
            } else {
                y.clone()
            }
        }
        F::MathAbs => match num(arg(0)) {
            Some(Num::I(i)) => Value::Int(i.wrapping_abs()),
            Some(Num::F(d)) => Value::Double(d.abs()),
            None => return fail("Math.Abs takes a number"),
        },
        F::MathRound => {
            let d = f64_arg(arg(0), "value")?;
            match a.get(1) {
                Some(p) => {
                    let p = int_arg(p, "digits")?.clamp(0, 15) as i32;
                    let k = 10f64.powi(p);
                    Value::Double(round_half_even(d * k) / k)
                }
                None => Value::Double(round_half_even(d)),
            }
        }
        F::MathFloor => Value::Double(f64_arg(arg(0), "d")?.floor()),
        F::MathCeiling => Value::Double(f64_arg(arg(0), "a")?.ceil()),
        F::MathPow => Value::Double(f64_arg(arg(0), "x")?.powf(f64_arg(arg(1), "y")?)),
        F::MathSqrt => Value::Double(f64_arg(arg(0), "d")?.sqrt()),
        F::JsonParse(t) => {
            let text = str_arg(arg(0), "json")?;
            let what = match t {
                CastTy::JObject => "JObject",
                CastTy::JArray => "JArray",
                _ => "JToken",
            };
            json::parse(&text, what)
                .map(json::token)
                .map_err(|m| EvalError { message: m })?
        }
        F::FromObject => json::token(arg(0).to_json()),
        F::Serialize => {
            let j = arg(0).to_json();
            let indented = matches!(a.get(1), Some(Value::Int(1)));
            let mut out = String::new();
            json::write_json(&mut out, &j, if indented { Some(0) } else { None });
            s(out)
        }
        F::Deserialize => {
            let text = str_arg(arg(0), "value")?;
            json::parse(&text, "JToken")
                .map(json::token)
                .map_err(|m| EvalError { message: m })?
        }
        F::UriEscape => s(encoding::uri_escape(&str_arg(arg(0), "stringToEscape")?)),
        F::UriUnescape => s(encoding::uri_unescape(
            &str_arg(arg(0), "stringToUnescape")?,
            false,
        )),
        F::UrlEncode => match arg(0) {
            Value::Null => Value::Null,
            v => s(encoding::url_encode_form(&str_arg(v, "value")?)),
        },
        F::UrlDecode => match arg(0) {
            Value::Null => Value::Null,
            v => s(encoding::uri_unescape(&str_arg(v, "encodedValue")?, true)),
        },
        F::HtmlEncode => match arg(0) {
            Value::Null => Value::Null,
            v => s(encoding::html_encode(&str_arg(v, "value")?)),
        },
        F::HtmlDecode => match arg(0) {
            Value::Null => Value::Null,
            v => s(encoding::html_decode(&str_arg(v, "value")?)),
        },
        F::ArrayIndexOf => {
            let x = arg(1);
            let xs = items(arg(0))?;
            Value::Int(
                xs.iter()
                    .position(|y| equals(y, x))
                    .map(|i| i as i64)
                    .unwrap_or(-1),
            )
        }
        F::CharIsDigit
        | F::CharIsLetter
        | F::CharIsWhiteSpace
        | F::CharIsLetterOrDigit
        | F::CharIsUpper
        | F::CharIsLower => {
            let c = match arg(0) {
                Value::Char(c) => *c,
                other => return fail(format!("expected a char, got {}", other.type_name())),
            };
            Value::Bool(match f {
                F::CharIsDigit => c.is_ascii_digit(),
                F::CharIsLetter => c.is_alphabetic(),
                F::CharIsWhiteSpace => c.is_whitespace(),
                F::CharIsLetterOrDigit => c.is_alphanumeric(),
                F::CharIsUpper => c.is_uppercase(),
                _ => c.is_lowercase(),
            })
        }
        F::HashCreate(alg) => Value::Object(Arc::new(Obj::Hasher(alg, None))),
        F::AesCreate => Value::Object(Arc::new(Obj::Aes(crypto::AesParams::default()))),
        F::RegexEscape => s(regexp::escape(&str_arg(arg(0), "str")?)),
        F::RegexUnescape => s(regexp::unescape(&str_arg(arg(0), "str")?)),
        F::Regex(rf) => {
            let opts = int_arg(arg(2), "options")?;
            let re = match arg(1) {
                Value::Object(o) if matches!(**o, Obj::Regex(_)) => match &**o {
                    Obj::Regex(r) => r.clone(),
                    _ => return fail("internal error: not a Regex"),
                },
                v => {
                    let pat = str_arg(v, "pattern")?;
                    regexp::compile(&pat, opts, true).map_err(|message| EvalError { message })?
                }
            };
            let m = match rf {
                RegexFn::IsMatch => Method::IsMatch,
                RegexFn::Match => Method::Match,
                RegexFn::Matches => Method::Matches,
                RegexFn::Replace => Method::Replace,
                RegexFn::Split => Method::Split,
            };
            let mut rest = vec![arg(0).clone()];
            if rf == RegexFn::Replace {
                rest.push(arg(3).clone());
            }
            regex_method(&re, m, &rest)?
        }
        F::HashData(alg) => Value::Bytes(Bytes::from(crypto::hash(alg, &bytes_arg(arg(0))?))),
        F::HmacData(alg) => {
            let key = bytes_arg(arg(0))?;
            let data = bytes_arg(arg(1))?;
            Value::Bytes(Bytes::from(crypto::hmac(alg, &key, &data)))
        }
        F::BitConverterString => {
            let b = bytes_arg(arg(0))?;
            let start = match a.get(1) {
                Some(v) => idx_arg(v, "startIndex")?,
                None => 0,
            };
            let len = match a.get(2) {
                Some(v) => idx_arg(v, "length")?,
                None => b.len().saturating_sub(start),
            };
            match start.checked_add(len).and_then(|end| b.get(start..end)) {
                Some(part) if start <= b.len() => {
                    check_len(part.len().saturating_mul(3))?;
                    s(crypto::bit_converter_string(part))
                }
                _ => return fail("Destination array is not long enough to copy all the items in the collection. Check array index and length. (Parameter 'startIndex')"),
            }
        }
        F::BitConverterInt(width, signed) => {
            let b = bytes_arg(arg(0))?;
            let start = idx_arg(arg(1), "startIndex")?;
            let Some(part) = start
                .checked_add(width as usize)
                .and_then(|end| b.get(start..end))
            else {
                return fail("Destination array is not long enough to copy all the items in the collection. Check array index and length. (Parameter 'startIndex')");
            };
            let mut le = [0u8; 8];
            le[..part.len()].copy_from_slice(part);
            let raw = u64::from_le_bytes(le);
            let bits = u32::from(width) * 8;
            let v = if bits >= 64 {
                raw as i64
            } else if signed {
                // Sign-extend from `bits`.
                let shift = 64 - bits;
                ((raw << shift) as i64) >> shift
            } else {
                raw as i64
            };
            Value::Int(v)
        }
        F::ToHex(upper) => {
            let b = bytes_arg(arg(0))?;
            check_len(b.len().saturating_mul(2))?;
            s(crypto::to_hex(&b, upper))
        }
        F::FromHex => match crypto::from_hex(&str_arg(arg(0), "s")?) {
            Some(b) => Value::Bytes(Bytes::from(b)),
            None => return fail("The input is not a valid hex string as it contains a non-hex character or an odd number of characters."),
        },
        F::Now | F::Today | F::NewGuid | F::ArrayExists => {
            return fail("internal error: unexpected static function")
        }
    })
}

fn round_half_even(d: f64) -> f64 {
    let r = d.round();
    if (d - d.trunc()).abs() == 0.5 {
        2.0 * (d / 2.0).round()
    } else {
        r
    }
}

fn convert_to(v: &Value, t: CastTy, extra: Option<&Value>) -> R<Value> {
    match (t, v) {
        (CastTy::Str, Value::Null) => Ok(s("")),
        (CastTy::Str, Value::Bytes(_) | Value::Int(_)) if extra.is_some() => {
            // Convert.ToString(value, toBase)
            let base = int_arg(extra.unwrap_or(&Value::Int(10)), "toBase")?;
            let i = int_arg(v, "value")?;
            Ok(s(match base {
                2 => format!("{i:b}"),
                8 => format!("{i:o}"),
                16 => format!("{i:x}"),
                _ => i.to_string(),
            }))
        }
        (CastTy::Str, _) => Ok(s(v.to_display_string())),
        (_, Value::Null) => Ok(default_of(Some(t))),
        (CastTy::Int(w), Value::Str(text)) => {
            let base = match extra {
                Some(b) => int_arg(b, "fromBase")?,
                None => 10,
            };
            let v = if base == 10 {
                match parse_as(text, CastTy::Int(w))? {
                    Value::Int(i) => i,
                    _ => 0,
                }
            } else {
                let digits = text.trim();
                let digits = digits
                    .strip_prefix("0x")
                    .or_else(|| digits.strip_prefix("0X"))
                    .unwrap_or(digits);
                i64::from_str_radix(digits, u32::try_from(base).unwrap_or(10).clamp(2, 36))
                    .map_err(|_| EvalError {
                        message: "Could not find any recognizable digits.".into(),
                    })?
            };
            if wrap_int(v, w) != v && base == 10 {
                return fail("Value was either too large or too small.");
            }
            Ok(Value::Int(wrap_int(v, w)))
        }
        (CastTy::Int(w), Value::Double(d)) => {
            let r = round_half_even(*d);
            if !r.is_finite() || wrap_int(r as i64, w) as f64 != r {
                return fail("Value was either too large or too small.");
            }
            Ok(Value::Int(r as i64))
        }
        (CastTy::Int(w), Value::Int(i)) => {
            if wrap_int(*i, w) != *i {
                return fail("Value was either too large or too small.");
            }
            Ok(v.clone())
        }
        (CastTy::Int(_), Value::Bool(b)) => Ok(Value::Int(*b as i64)),
        (CastTy::Double, Value::Str(text)) => parse_as(text, CastTy::Double),
        (CastTy::Bool, Value::Str(text)) => parse_as(text, CastTy::Bool),
        (CastTy::Bool, _) => match num(v) {
            Some(n) => Ok(Value::Bool(n.f() != 0.0)),
            None => cast(v.clone(), t, false),
        },
        (CastTy::DateTime, Value::Str(text)) => parse_as(text, CastTy::DateTime),
        _ => cast(v.clone(), t, false),
    }
}

/// Sets a property of an `Aes` object, checking sizes as .NET's setters do.
fn set_aes(p: &mut crypto::AesParams, f: AesField, v: &Value) -> R<()> {
    let err = |message: String| EvalError { message };
    match f {
        AesField::Key => {
            let b = bytes_arg(v)?;
            crypto::check_key(&b).map_err(err)?;
            p.key = Some(b);
        }
        AesField::Iv => {
            let b = bytes_arg(v)?;
            crypto::check_iv(&b).map_err(err)?;
            p.iv = Some(b);
        }
        AesField::Mode => p.mode = int_arg(v, "Mode")?,
        AesField::Padding => p.padding = int_arg(v, "Padding")?,
    }
    Ok(())
}

/// APIM's `byte[].Encrypt(alg, key, iv)`, `Encrypt(aes)`, `Encrypt(aes, key, iv)`
/// (and `Decrypt`): AES-CBC.
fn encrypt_decrypt(data: &Bytes, encrypt: bool, a: &[Value]) -> R<Value> {
    let what = if encrypt { "Encrypt" } else { "Decrypt" };
    let mut p = match a.first() {
        Some(Value::Str(name)) => {
            if !crypto::is_aes_name(name) {
                return fail(crypto::unsupported_alg(name));
            }
            crypto::AesParams::default()
        }
        Some(Value::Object(o)) if matches!(**o, Obj::Aes(_)) => match &**o {
            Obj::Aes(p) => p.clone(),
            _ => return fail("internal error: not an Aes object"),
        },
        Some(Value::Null) | None => return nre(&format!("the algorithm of {what}")),
        Some(other) => {
            return fail(format!(
                "{what} takes an algorithm name or an Aes object, not a value of type '{}'",
                other.type_name()
            ))
        }
    };
    match a {
        [_] if matches!(a.first(), Some(Value::Str(_))) => {
            return fail(format!(
                "{what}(\"{}\") needs a key and an IV",
                a.first().map(|v| v.to_display_string()).unwrap_or_default()
            ))
        }
        [_] => {}
        [_, key, iv] => {
            let key = bytes_arg(key)?;
            let iv = bytes_arg(iv)?;
            p.key = Some(key);
            p.iv = Some(iv);
        }
        _ => return fail(format!("wrong number of arguments to {what}")),
    }
    crypto::aes_cbc(&p, data, encrypt)
        .map(|v| Value::Bytes(Bytes::from(v)))
        .map_err(|message| EvalError { message })
}

fn match_value(m: regexp::MatchData) -> Value {
    Value::Object(Arc::new(Obj::Match(Arc::new(m))))
}

/// `IsMatch`, `Match`, `Matches`, `Replace`, `Split` on a regex (`a[0]` is the input).
fn regex_method(re: &DotnetRegex, m: Method, a: &[Value]) -> R<Value> {
    let input = match a.first() {
        Some(Value::Null) | None => {
            return fail("Value cannot be null. (Parameter 'input')");
        }
        Some(v) => str_arg(v, "input")?,
    };
    let err = |message: String| EvalError { message };
    Ok(match m {
        Method::IsMatch => Value::Bool(re.is_match(&input)),
        Method::Match => match_value(re.find(&input)),
        Method::Matches => arr(re
            .find_all(&input, MAX_LEN)
            .map_err(err)?
            .into_iter()
            .map(match_value)
            .collect()),
        Method::Replace => {
            let rep = match a.get(1) {
                Some(Value::Null) | None => {
                    return fail("Value cannot be null. (Parameter 'replacement')")
                }
                Some(v) => str_arg(v, "replacement")?,
            };
            s(re.replace(&input, &rep, MAX_LEN).map_err(err)?)
        }
        Method::Split => strs(re.split(&input, regexp::MAX_MATCHES).map_err(err)?),
        Method::ToString => s(re.pattern.clone()),
        _ => return fail(format!("unsupported method '{m:?}' on Regex")),
    })
}

/// `Success`, `Value`, `Index`, `Length` of a match or group (and `Groups` of a match).
fn group_member(
    g: regexp::GroupData,
    m: Member,
    md: Option<&Arc<regexp::MatchData>>,
) -> Option<R<Value>> {
    Some(Ok(match m {
        Member::Success => Value::Bool(g.is_some()),
        Member::Value => s(g.map(|(_, v)| v).unwrap_or_else(|| "".into())),
        Member::Index => Value::Int(g.map_or(0, |(i, _)| i)),
        Member::Length => Value::Int(g.map_or(0, |(_, v)| v.chars().count() as i64)),
        Member::Groups => Value::Object(Arc::new(Obj::Groups(md?.clone()))),
        _ => return None,
    }))
}
