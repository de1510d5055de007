//! Conversions: casts (`(int)x`, `x as T`, `x is T`), `Parse`/`TryParse`,
//! `Convert.*`, `Encoding.UTF8`, `BitConverter`, `Uri` and `WebUtility`, and
//! the numeric limits (`int.MaxValue`...). The codecs themselves are in
//! `expr::encoding` and `expr::crypto`.

use std::sync::Arc;

use bytes::Bytes;

use crate::expr::area::math::round_half_even;
use crate::expr::ast::Arg;
use crate::expr::compile::{err, konst, Comp, Compiler};
use crate::expr::crypto;
use crate::expr::datetime;
use crate::expr::encoding;
use crate::expr::eval::{bytes_arg, check_len, fail, idx_arg, int_arg, nre, s, str_arg, Frame, R};
use crate::expr::json;
use crate::expr::node::{CastTy, IntW, Member, Node, StaticFn};
use crate::expr::ops::num;
use crate::expr::types::{StaticSig, Ty, TypeK};
use crate::expr::value::{parse_guid, Obj, Value};
use crate::expr::{EvalError, ExprError};

// ---- compile time ----

/// The types with `Parse` and `TryParse`.
pub(crate) fn parsable(c: CastTy) -> bool {
    matches!(
        c,
        CastTy::Int(_)
            | CastTy::Double
            | CastTy::Bool
            | CastTy::Guid
            | CastTy::DateTime
            | CastTy::TimeSpan
    )
}

/// `int.MaxValue`, `double.NaN`, `Encoding.UTF8`, `BitConverter.IsLittleEndian`...
pub(crate) fn consts(k: TypeK, tname: &str, name: &str) -> Option<Comp> {
    Some(match (k, name) {
        (TypeK::Cast(CastTy::Int(w)), "MaxValue") => konst(int_bound(w, true), Ty::Int),
        (TypeK::Cast(CastTy::Int(w)), "MinValue") => konst(int_bound(w, false), Ty::Int),
        (TypeK::Cast(CastTy::Double), "MaxValue") => konst(f64::MAX, Ty::Double),
        (TypeK::Cast(CastTy::Double), "MinValue") => konst(f64::MIN, Ty::Double),
        (TypeK::Cast(CastTy::Double), "NaN") => konst(f64::NAN, Ty::Double),
        (TypeK::Encoding, "UTF8" | "ASCII" | "Default" | "Unicode") if name != "Unicode" => {
            Comp::Type(TypeK::Utf8, format!("{tname}.{name}"))
        }
        (TypeK::BitConverter, "IsLittleEndian") => konst(true, Ty::Bool),
        _ => return None,
    })
}

/// `int.Parse`, `Convert.*`, `Encoding.UTF8.GetBytes`, `BitConverter.*`,
/// `Uri.EscapeDataString`, `WebUtility.*`.
pub(crate) fn statics(k: TypeK, name: &str, pos: usize) -> Result<Option<StaticSig>, ExprError> {
    use StaticFn as F;
    Ok(Some(match (k, name) {
        (TypeK::Cast(c), "Parse") if parsable(c) => (F::Parse(c), Ty::of_cast(c), 1, 2),
        (TypeK::BitConverter, "ToString") => (F::BitConverterString, Ty::Str, 1, 3),
        (TypeK::BitConverter, _) => {
            let f = match name {
                "ToInt16" => F::BitConverterInt(2, true),
                "ToUInt16" => F::BitConverterInt(2, false),
                "ToInt32" => F::BitConverterInt(4, true),
                "ToUInt32" => F::BitConverterInt(4, false),
                "ToInt64" => F::BitConverterInt(8, true),
                "ToUInt64" => F::BitConverterInt(8, false),
                _ => {
                    return Err(err(
                        pos,
                        format!("unsupported method 'BitConverter.{name}'"),
                    ))
                }
            };
            (f, Ty::Int, 2, 2)
        }
        (TypeK::Convert, _) => {
            let (f, ty) = match name {
                "ToInt32" => (F::ConvertTo(CastTy::Int(IntW::I32)), Ty::Int),
                "ToInt64" => (F::ConvertTo(CastTy::Int(IntW::I64)), Ty::Int),
                "ToInt16" => (F::ConvertTo(CastTy::Int(IntW::I16)), Ty::Int),
                "ToByte" => (F::ConvertTo(CastTy::Int(IntW::U8)), Ty::Int),
                "ToUInt32" => (F::ConvertTo(CastTy::Int(IntW::U32)), Ty::Int),
                "ToDouble" | "ToDecimal" | "ToSingle" => (F::ConvertTo(CastTy::Double), Ty::Double),
                "ToBoolean" => (F::ConvertTo(CastTy::Bool), Ty::Bool),
                "ToString" => (F::ConvertTo(CastTy::Str), Ty::Str),
                "ToChar" => (F::ConvertTo(CastTy::Char), Ty::Char),
                "ToDateTime" => (F::ConvertTo(CastTy::DateTime), Ty::DateTime),
                "ToBase64String" => (F::ToBase64, Ty::Str),
                "FromBase64String" => (F::FromBase64, Ty::Bytes),
                "ToHexString" => (F::ToHex(true), Ty::Str),
                "ToHexStringLower" => (F::ToHex(false), Ty::Str),
                "FromHexString" => (F::FromHex, Ty::Bytes),
                _ => return Err(err(pos, format!("unsupported method 'Convert.{name}'"))),
            };
            (f, ty, 1, 2)
        }
        (TypeK::Utf8, "GetBytes") => (F::GetBytes, Ty::Bytes, 1, 1),
        (TypeK::Utf8, "GetString") => (F::GetString, Ty::Str, 1, 3),
        (TypeK::Cast(CastTy::Uri), "EscapeDataString" | "EscapeUriString") => {
            (F::UriEscape, Ty::Str, 1, 1)
        }
        (TypeK::Cast(CastTy::Uri), "UnescapeDataString") => (F::UriUnescape, Ty::Str, 1, 1),
        (TypeK::WebUtility, "UrlEncode") => (F::UrlEncode, Ty::Str, 1, 1),
        (TypeK::WebUtility, "UrlDecode") => (F::UrlDecode, Ty::Str, 1, 1),
        (TypeK::WebUtility, "HtmlEncode") => (F::HtmlEncode, Ty::Str, 1, 1),
        (TypeK::WebUtility, "HtmlDecode") => (F::HtmlDecode, Ty::Str, 1, 1),
        _ => return Ok(None),
    }))
}

impl Compiler {
    /// `T.TryParse(s, out x)` on a type with `Parse`.
    pub(crate) fn try_parse(
        &mut self,
        c: CastTy,
        args: &[Arg],
        pos: usize,
    ) -> Result<Comp, ExprError> {
        if args.len() != 2 {
            return Err(err(pos, "TryParse takes a string and an out variable"));
        }
        let s = self.value(&args[0].value)?.0;
        let slot = self.out_slot(&args[1])?;
        Ok(Comp::Val(Node::TryParse(c, Box::new(s), slot), Ty::Bool))
    }
}

fn int_bound(w: IntW, max: bool) -> i64 {
    match (w, max) {
        (IntW::U8, true) => u8::MAX as i64,
        (IntW::I8, true) => i8::MAX as i64,
        (IntW::I16, true) => i16::MAX as i64,
        (IntW::U16, true) => u16::MAX as i64,
        (IntW::I32, true) => i32::MAX as i64,
        (IntW::U32, true) => u32::MAX as i64,
        (IntW::I64 | IntW::U64, true) => i64::MAX,
        (IntW::U8 | IntW::U16 | IntW::U32 | IntW::U64, false) => 0,
        (IntW::I8, false) => i8::MIN as i64,
        (IntW::I16, false) => i16::MIN as i64,
        (IntW::I32, false) => i32::MIN as i64,
        (IntW::I64, false) => i64::MIN,
    }
}

// ---- run time ----

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
        CastTy::XDocument => "System.Xml.Linq.XDocument",
        CastTy::XElement => "System.Xml.Linq.XElement",
        CastTy::XAttribute => "System.Xml.Linq.XAttribute",
        CastTy::XName => "System.Xml.Linq.XName",
        CastTy::XNamespace => "System.Xml.Linq.XNamespace",
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

/// A double truncated to an integer as C#'s cast does (NaN is 0).
pub(crate) fn f64_to_i64(d: f64) -> i64 {
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
    if let Some(r) = super::xml::cast(&v, t) {
        return r;
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
        CastTy::XDocument
        | CastTy::XElement
        | CastTy::XAttribute
        | CastTy::XName
        | CastTy::XNamespace => invalid_cast(&v, t),
    }
}

/// Whether `v` is a `T` (`is T`).
pub(crate) fn is_type(v: &Value, t: CastTy) -> bool {
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
        (_, Value::Object(o)) if matches!(**o, Obj::Xml(_)) => match &**o {
            Obj::Xml(x) => super::xml::is_type(x, t),
            _ => false,
        },
        _ => false,
    }
}

/// `default(T)`: zero for value types, null otherwise.
pub(crate) fn default_of(t: Option<CastTy>) -> Value {
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

/// `int.Parse`, `Convert.*`, `Encoding.UTF8.*`, `Uri.*`, `WebUtility.*`, `BitConverter.*`.
pub(crate) fn call_static(f: StaticFn, a: &[Value]) -> R<Value> {
    use StaticFn as F;
    let arg = |i: usize| a.get(i).unwrap_or(&Value::Null);
    Ok(match f {
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
        _ => return fail("internal error: unexpected static function"),
    })
}

/// `new Uri(text)`.
pub(crate) fn construct_uri(a: &[Value]) -> R<Value> {
    let t = str_arg(a.first().unwrap_or(&Value::Null), "uriString")?;
    if !t.contains("://") {
        return fail("Invalid URI: The format of the URI could not be determined.");
    }
    Ok(Value::Object(Arc::new(Obj::Uri(t))))
}

impl Frame<'_> {
    /// `T.TryParse(s, out x)`: sets the `out` local to the value, or to `default(T)`.
    pub(crate) fn try_parse(&mut self, t: CastTy, sn: &Node, slot: u32) -> R<Value> {
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
}

/// Properties of a `Uri`.
pub(crate) fn uri_member(u: &str, m: Member) -> R<Value> {
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
