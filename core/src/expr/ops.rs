//! Operators: truthiness, equality, ordering and arithmetic as C# applies
//! them to expression values (`==`, `<`, `+` on strings, dates and numbers...).

use std::cmp::Ordering;

use serde_json::Value as J;

use super::area::convert::f64_to_i64;
use super::area::datetime::date;
use super::ast::{BinOp, UnOp};
use super::eval::{check_len, fail, NRE, R};
use super::value::Value;

/// A condition's value: a `bool` (or a JSON boolean).
pub(crate) fn truthy(v: &Value) -> R<bool> {
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

/// Value equality as `==` and `Equals` see it (strings ordinal).
pub fn equals(a: &Value, b: &Value) -> bool {
    if let Some(eq) = super::area::xml::name_equals(a, b) {
        return eq;
    }
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

/// A number: integral or floating.
#[derive(Clone, Copy)]
pub(crate) enum Num {
    I(i64),
    F(f64),
}

impl Num {
    /// The number as a double.
    pub(crate) fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

/// A value as a number, if it is one (`char` and JSON numbers included).
pub(crate) fn num(v: &Value) -> Option<Num> {
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

/// Ordering for `<`, `OrderBy`, `Min`, `CompareTo`.
pub(crate) fn compare(a: &Value, b: &Value) -> R<Ordering> {
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

/// An ordering as .NET's `CompareTo` reports it: -1, 0 or 1.
pub(crate) fn compare_result(o: Ordering) -> i64 {
    match o {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

/// `a + b` with a string operand.
fn concat(a: &Value, b: &Value) -> R<Value> {
    let (x, y) = (a.to_display_string(), b.to_display_string());
    check_len(x.len() + y.len())?;
    Ok(Value::Str((x + &y).into()))
}

/// Arithmetic and bitwise operators.
pub(crate) fn arith(op: BinOp, a: &Value, b: &Value) -> R<Value> {
    use BinOp::*;
    if op == Add {
        if let Some(r) = super::area::xml::add(a, b) {
            return r;
        }
    }
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

/// A unary operator.
pub(crate) fn unary(op: UnOp, v: Value) -> R<Value> {
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

/// A binary operator other than `&&`, `||` and `??`.
pub(crate) fn binop(op: BinOp, l: &Value, r: &Value) -> R<Value> {
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
