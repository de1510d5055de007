//! `string` and `char`: static functions (`string.Format`, `string.Join`,
//! `char.IsDigit`...), the `StringComparison`/`StringSplitOptions` constants,
//! and the instance methods of strings. The .NET text algorithms themselves
//! are in `expr::strings`.

use std::sync::Arc;

use crate::expr::area::collections;
use crate::expr::compile::{err, konst, Comp};
use crate::expr::encoding;
use crate::expr::eval::{
    arr, check_len, fail, idx_arg, ignore_case, no_member, s, str_arg, strs, R,
};
use crate::expr::jwt::Jwt;
use crate::expr::node::{CastTy, Member, Method, StaticFn};
use crate::expr::ops::compare_result;
use crate::expr::strings;
use crate::expr::types::{StaticSig, Ty, TypeK};
use crate::expr::value::{Obj, Value};
use crate::expr::{EvalError, ExprError};

// ---- compile time ----

/// `string.Empty`, `StringComparison.*`, `StringComparer.*`, `StringSplitOptions.*`.
pub(crate) fn consts(k: TypeK, name: &str) -> Option<Comp> {
    Some(match (k, name) {
        (TypeK::Cast(CastTy::Str), "Empty") => konst("", Ty::Str),
        (TypeK::StringComparison | TypeK::StringComparer, _) => {
            let code = match name {
                "CurrentCulture" => 0,
                "CurrentCultureIgnoreCase" => 1,
                "InvariantCulture" => 2,
                "InvariantCultureIgnoreCase" => 3,
                "Ordinal" => 4,
                "OrdinalIgnoreCase" => 5,
                _ => return None,
            };
            konst(code, Ty::Int)
        }
        (TypeK::StringSplitOptions, "None") => konst(0, Ty::Int),
        (TypeK::StringSplitOptions, "RemoveEmptyEntries") => konst(1, Ty::Int),
        (TypeK::StringSplitOptions, "TrimEntries") => konst(2, Ty::Int),
        _ => return None,
    })
}

/// Static functions of `string` and `char`.
pub(crate) fn statics(k: TypeK, name: &str, pos: usize) -> Result<Option<StaticSig>, ExprError> {
    use StaticFn as F;
    Ok(Some(match (k, name) {
        (TypeK::Cast(CastTy::Str), "IsNullOrEmpty") => (F::IsNullOrEmpty, Ty::Bool, 1, 1),
        (TypeK::Cast(CastTy::Str), "IsNullOrWhiteSpace") => (F::IsNullOrWhiteSpace, Ty::Bool, 1, 1),
        (TypeK::Cast(CastTy::Str), "Format") => (F::Format, Ty::Str, 1, 64),
        (TypeK::Cast(CastTy::Str), "Join") => (F::Join, Ty::Str, 2, 64),
        (TypeK::Cast(CastTy::Str), "Concat") => (F::Concat, Ty::Str, 0, 64),
        (TypeK::Cast(CastTy::Str), "Equals") => (F::StringEquals, Ty::Bool, 2, 3),
        (TypeK::Cast(CastTy::Str), "Compare" | "CompareOrdinal") => {
            (F::StringCompare, Ty::Int, 2, 3)
        }
        (TypeK::Cast(CastTy::Char), _) => {
            let f = match name {
                "IsDigit" => F::CharIsDigit,
                "IsLetter" => F::CharIsLetter,
                "IsWhiteSpace" => F::CharIsWhiteSpace,
                "IsLetterOrDigit" => F::CharIsLetterOrDigit,
                "IsUpper" => F::CharIsUpper,
                "IsLower" => F::CharIsLower,
                _ => return Err(err(pos, format!("unsupported method 'char.{name}'"))),
            };
            (f, Ty::Bool, 1, 1)
        }
        _ => return Ok(None),
    }))
}

/// Whether `m` is a method of `string` (LINQ included: a string is a sequence of `char`).
pub(crate) fn method_ok(m: Method) -> bool {
    use Method as M;
    collections::is_linq(m)
        || matches!(
            m,
            M::StartsWith
                | M::EndsWith
                | M::ToLower
                | M::ToUpper
                | M::Substring
                | M::Replace
                | M::Split
                | M::Trim
                | M::TrimStart
                | M::TrimEnd
                | M::IndexOf
                | M::LastIndexOf
                | M::PadLeft
                | M::PadRight
                | M::AsJwt
                | M::AsBasic
                | M::Insert
                | M::Remove
                | M::ToCharArray
        )
}

// ---- run time ----

/// `string.IsNullOrEmpty`, `string.Format`, `string.Join`, ..., `char.IsDigit`...
pub(crate) fn call_static(f: StaticFn, a: &[Value]) -> R<Value> {
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
                [one] if !matches!(one, Value::Str(_)) => collections::items(one)?,
                many => many.to_vec(),
            };
            let strs: Vec<String> = parts.iter().map(|p| p.to_display_string()).collect();
            let out = strs.join(&sep);
            check_len(out.len())?;
            s(out)
        }
        F::Concat => {
            let parts: Vec<Value> = match a {
                [one] if matches!(one, Value::Array(_)) => collections::items(one)?,
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
            Value::Int(compare_result(o))
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
        _ => return fail("internal error: unexpected static function"),
    })
}

/// `new string(c, count)`.
pub(crate) fn construct(a: &[Value]) -> R<Value> {
    let c = match a.first() {
        Some(Value::Char(c)) => *c,
        _ => return fail("unsupported string constructor"),
    };
    let n = idx_arg(a.get(1).unwrap_or(&Value::Int(0)), "count")?;
    check_len(n)?;
    Ok(s(std::iter::repeat_n(c, n).collect::<String>()))
}

/// `Length` of a string.
pub(crate) fn member(st: &str, v: &Value, m: Member) -> R<Value> {
    match m {
        Member::Length => Ok(Value::Int(strings::char_len(st) as i64)),
        _ => no_member(v, m),
    }
}

/// Instance methods of a string.
pub(crate) fn str_method(st: &Arc<str>, m: Method, a: &[Value]) -> R<Value> {
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
        M::CompareTo => Value::Int(compare_result(
            st.as_ref()
                .cmp(&*str_arg(arg(0), "strB").unwrap_or_default()),
        )),
        _ => return collections::seq_method(st.chars().map(Value::Char).collect(), m, a),
    })
}
