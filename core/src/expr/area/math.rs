//! `Math`, `Random` and `Guid`: `Math.Min`/`Round`/`Pow`..., `new Random(seed)`
//! and `Next`, `Guid.NewGuid()`, `new Guid(...)`, `ToByteArray`. Randomness
//! comes from the evaluation's seeded generator, never from the OS.

use std::cmp::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::expr::compile::{err, konst, Comp};
use crate::expr::encoding;
use crate::expr::eval::{common_method, f64_arg, fail, int_arg, s, str_arg, Frame, R};
use crate::expr::node::{CastTy, Method, StaticFn};
use crate::expr::ops::{compare, num, Num};
use crate::expr::strings;
use crate::expr::types::{StaticSig, Ty, TypeK};
use crate::expr::value::{format_guid, parse_guid, Obj, Value};
use crate::expr::{EvalError, ExprError};

// ---- compile time ----

/// `Math.PI`, `Guid.Empty`.
pub(crate) fn consts(k: TypeK, name: &str) -> Option<Comp> {
    Some(match (k, name) {
        (TypeK::Cast(CastTy::Guid), "Empty") => konst(Value::Guid(0), Ty::Guid),
        (TypeK::Math, "PI") => konst(std::f64::consts::PI, Ty::Double),
        _ => return None,
    })
}

/// `Math.*`, `Guid.NewGuid()`.
pub(crate) fn statics(k: TypeK, name: &str, pos: usize) -> Result<Option<StaticSig>, ExprError> {
    use StaticFn as F;
    Ok(Some(match (k, name) {
        (TypeK::Cast(CastTy::Guid), "NewGuid") => (F::NewGuid, Ty::Guid, 0, 0),
        (TypeK::Math, _) => {
            let f = match name {
                "Min" => F::MathMin,
                "Max" => F::MathMax,
                "Abs" => F::MathAbs,
                "Round" => F::MathRound,
                "Floor" => F::MathFloor,
                "Ceiling" => F::MathCeiling,
                "Pow" => F::MathPow,
                "Sqrt" => F::MathSqrt,
                _ => return Err(err(pos, format!("unsupported method 'Math.{name}'"))),
            };
            (f, Ty::Any, 1, 2)
        }
        _ => return Ok(None),
    }))
}

/// Whether `m` is a method of a `Guid`.
pub(crate) fn guid_method_ok(m: Method) -> bool {
    matches!(m, Method::ToByteArray)
}

// ---- run time ----

/// `Math.Min`, `Math.Round`, `Math.Pow`...
pub(crate) fn call_static(f: StaticFn, a: &[Value]) -> R<Value> {
    use StaticFn as F;
    let arg = |i: usize| a.get(i).unwrap_or(&Value::Null);
    Ok(match f {
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
        _ => return fail("internal error: unexpected static function"),
    })
}

/// `Math.Round`'s default: halves to even.
pub(crate) fn round_half_even(d: f64) -> f64 {
    let r = d.round();
    if (d - d.trunc()).abs() == 0.5 {
        2.0 * (d / 2.0).round()
    } else {
        r
    }
}

/// .NET's byte order of a `Guid` from (or to) its big-endian bytes: the first
/// three groups little-endian. The swap is its own inverse.
fn dotnet_guid_order(be: [u8; 16]) -> [u8; 16] {
    let mut out = be;
    out[0..4].copy_from_slice(&[be[3], be[2], be[1], be[0]]);
    out[4..6].copy_from_slice(&[be[5], be[4]]);
    out[6..8].copy_from_slice(&[be[7], be[6]]);
    out
}

/// `new Guid(text)` or `new Guid(bytes)`.
pub(crate) fn construct_guid(a: &[Value]) -> R<Value> {
    match a.first() {
        Some(Value::Str(t)) => parse_guid(t)
            .map(Value::Guid)
            .map_or_else(|| fail("Guid should contain 32 digits with 4 dashes (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)."), Ok),
        Some(Value::Bytes(b)) if b.len() == 16 => {
            let mut be = [0u8; 16];
            be.copy_from_slice(b);
            Ok(Value::Guid(u128::from_be_bytes(dotnet_guid_order(be))))
        }
        _ => fail("unsupported Guid constructor"),
    }
}

/// Methods of a `Guid`.
pub(crate) fn guid_method(g: u128, recv: &Value, m: Method, a: &[Value]) -> R<Value> {
    match m {
        Method::ToByteArray => Ok(Value::Bytes(Bytes::copy_from_slice(&dotnet_guid_order(
            g.to_be_bytes(),
        )))),
        Method::ToString => match a.first() {
            Some(f) => strings::format_value(recv, &str_arg(f, "format")?)
                .map(s)
                .map_err(|m| EvalError { message: m }),
            None => Ok(s(format_guid(g, 'D'))),
        },
        _ => common_method(recv, m, a),
    }
}

impl Frame<'_> {
    /// `Guid.NewGuid()`: a version 4 GUID from the evaluation's generator.
    pub(crate) fn new_guid(&mut self) -> Value {
        let hi = self.next_random() as u128;
        let lo = self.next_random() as u128;
        let mut g = (hi << 64) | lo;
        g = (g & !(0xF << 76)) | (0x4 << 76);
        g = (g & !(0x3 << 62)) | (0x2 << 62);
        Value::Guid(g)
    }

    /// `new Random()` (seeded from the evaluation's generator) or `new Random(seed)`.
    pub(crate) fn new_random(&mut self, a: &[Value]) -> R<Value> {
        let seed = match a.first() {
            Some(v) => {
                let mut st = int_arg(v, "Seed")? as u64;
                encoding::splitmix64(&mut st)
            }
            None => self.next_random(),
        };
        Ok(Value::Object(Arc::new(Obj::Random(seed))))
    }

    /// `Next(...)`, `NextDouble()` on a `Random` object.
    pub(crate) fn random_method(&mut self, seed: u64, m: Method, a: &[Value]) -> R<Value> {
        let r = self.next_random() ^ seed;
        let mut st = r;
        let x = encoding::splitmix64(&mut st);
        random_next(x, m, a)
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
