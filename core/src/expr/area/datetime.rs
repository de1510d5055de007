//! `DateTime` and `TimeSpan`: constants (`DateTime.UtcNow`, `TimeSpan.Zero`),
//! static functions (`FromUnixTimeSeconds`, `TimeSpan.FromMinutes`...),
//! constructors, members and methods. The calendar arithmetic, formats and
//! parsing are in `expr::datetime`.

use crate::expr::compile::{err, konst, Comp};
use crate::expr::datetime;
use crate::expr::eval::{common_method, f64_arg, fail, int_arg, no_member, s, R};
use crate::expr::node::{CastTy, Ctor, Member, Method, Node, StaticFn};
use crate::expr::types::{StaticSig, Ty, TypeK};
use crate::expr::value::Value;
use crate::expr::{EvalError, ExprError};

// ---- compile time ----

/// `DateTime.UtcNow`, `DateTime.MinValue`, `TimeSpan.Zero`...
pub(crate) fn consts(k: TypeK, name: &str) -> Option<Comp> {
    Some(match (k, name) {
        (TypeK::Cast(CastTy::DateTime), "UtcNow" | "Now") => {
            Comp::Val(Node::Static(StaticFn::Now, Vec::new()), Ty::DateTime)
        }
        (TypeK::Cast(CastTy::DateTime), "Today" | "UtcToday") => {
            Comp::Val(Node::Static(StaticFn::Today, Vec::new()), Ty::DateTime)
        }
        (TypeK::Cast(CastTy::DateTime), "MinValue") => {
            konst(Value::DateTime(datetime::MIN_MS), Ty::DateTime)
        }
        (TypeK::Cast(CastTy::DateTime), "MaxValue") => {
            konst(Value::DateTime(datetime::MAX_MS), Ty::DateTime)
        }
        (TypeK::Cast(CastTy::DateTime), "UnixEpoch") => konst(Value::DateTime(0), Ty::DateTime),
        (TypeK::Cast(CastTy::TimeSpan), "Zero") => konst(Value::TimeSpan(0), Ty::TimeSpan),
        _ => return None,
    })
}

/// Static functions of `DateTime` and `TimeSpan` (their `Parse` is in `convert`).
pub(crate) fn statics(k: TypeK, name: &str, pos: usize) -> Result<Option<StaticSig>, ExprError> {
    use StaticFn as F;
    Ok(Some(match (k, name) {
        (TypeK::Cast(CastTy::DateTime), "FromUnixTimeSeconds") => {
            (F::FromUnixSeconds, Ty::DateTime, 1, 1)
        }
        (TypeK::Cast(CastTy::DateTime), "FromUnixTimeMilliseconds") => {
            (F::FromUnixMilliseconds, Ty::DateTime, 1, 1)
        }
        (TypeK::Cast(CastTy::TimeSpan), _) => {
            let unit = match name {
                "FromMilliseconds" => 1,
                "FromSeconds" => 1000,
                "FromMinutes" => 60_000,
                "FromHours" => 3_600_000,
                "FromDays" => 86_400_000,
                _ => return Err(err(pos, format!("unsupported method 'TimeSpan.{name}'"))),
            };
            (F::TimeSpanFrom(unit), Ty::TimeSpan, 1, 1)
        }
        _ => return Ok(None),
    }))
}

/// Whether `m` is a method of `DateTime`.
pub(crate) fn datetime_method_ok(m: Method) -> bool {
    use Method as M;
    matches!(
        m,
        M::AddSeconds
            | M::AddMinutes
            | M::AddHours
            | M::AddDays
            | M::AddMilliseconds
            | M::AddMonths
            | M::AddYears
            | M::AddTicks
            | M::Add
            | M::Subtract
            | M::ToUniversalTime
            | M::ToLocalTime
            | M::ToUnixTimeSeconds
            | M::ToUnixTimeMilliseconds
    )
}

/// Whether `m` is a method of `TimeSpan`.
pub(crate) fn timespan_method_ok(m: Method) -> bool {
    use Method as M;
    matches!(m, M::Add | M::Subtract | M::Negate | M::Duration)
}

/// Whether `m` is a property of `DateTime`.
pub(crate) fn datetime_member_ok(m: Member) -> bool {
    use Member as M;
    matches!(
        m,
        M::Year
            | M::Month
            | M::Day
            | M::Hour
            | M::Minute
            | M::Second
            | M::Millisecond
            | M::DayOfWeek
            | M::DayOfYear
            | M::Date
            | M::TimeOfDay
            | M::Ticks
            | M::UtcDateTime
            | M::DateTimeOf
    )
}

/// Whether `m` is a property of `TimeSpan`.
pub(crate) fn timespan_member_ok(m: Member) -> bool {
    use Member as M;
    matches!(
        m,
        M::TotalMilliseconds
            | M::TotalSeconds
            | M::TotalMinutes
            | M::TotalHours
            | M::TotalDays
            | M::Milliseconds
            | M::Seconds
            | M::Minutes
            | M::Hours
            | M::Days
            | M::Ticks
    )
}

// ---- run time ----

/// A `DateTime` value, or .NET's error when `ms` is out of its range.
pub(crate) fn date(ms: i64) -> R<Value> {
    if datetime::in_range(ms) {
        Ok(Value::DateTime(ms))
    } else {
        fail("The added or subtracted value results in an un-representable DateTime.")
    }
}

/// `DateTime.UtcNow` (and `Now`): the request's clock, within .NET's range.
pub(crate) fn now(now_unix_ms: i64) -> Value {
    Value::DateTime(now_unix_ms.clamp(datetime::MIN_MS, datetime::MAX_MS))
}

/// `DateTime.Today` (and `UtcToday`).
pub(crate) fn today(now_unix_ms: i64) -> Value {
    let ms = now_unix_ms.clamp(datetime::MIN_MS, datetime::MAX_MS);
    Value::DateTime(ms - ms.rem_euclid(86_400_000))
}

/// `DateTimeOffset.FromUnixTimeSeconds`, `TimeSpan.FromMinutes`...
pub(crate) fn call_static(f: StaticFn, a: &[Value]) -> R<Value> {
    use StaticFn as F;
    let arg = |i: usize| a.get(i).unwrap_or(&Value::Null);
    Ok(match f {
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
        _ => return fail("internal error: unexpected static function"),
    })
}

/// `new DateTime(...)`, `new TimeSpan(...)`.
pub(crate) fn construct(c: Ctor, a: &[Value]) -> R<Value> {
    match c {
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
            match datetime::from_parts(
                n[0],
                part(n[1]),
                part(n[2]),
                part(n[3]),
                part(n[4]),
                part(n[5]),
                part(n[6]),
            ) {
                Some(ms) => Ok(Value::DateTime(ms)),
                None => {
                    fail("Year, Month, and Day parameters describe an un-representable DateTime.")
                }
            }
        }
        Ctor::TimeSpan => {
            let n: Vec<i64> = a.iter().map(|v| int_arg(v, "part")).collect::<R<_>>()?;
            let ms = match n.as_slice() {
                [ticks] => ticks / 10_000,
                [h, m, sec] => h
                    .saturating_mul(3_600_000)
                    .saturating_add(m.saturating_mul(60_000))
                    .saturating_add(sec.saturating_mul(1000)),
                [d, h, m, sec] => d
                    .saturating_mul(86_400_000)
                    .saturating_add(h.saturating_mul(3_600_000))
                    .saturating_add(m.saturating_mul(60_000))
                    .saturating_add(sec.saturating_mul(1000)),
                [d, h, m, sec, ms] => d
                    .saturating_mul(86_400_000)
                    .saturating_add(h.saturating_mul(3_600_000))
                    .saturating_add(m.saturating_mul(60_000))
                    .saturating_add(sec.saturating_mul(1000))
                    .saturating_add(*ms),
                _ => return fail("unsupported TimeSpan constructor"),
            };
            Ok(Value::TimeSpan(ms))
        }
        _ => fail("internal error: unexpected constructor"),
    }
}

/// Properties of `DateTime` and `TimeSpan` values.
pub(crate) fn member(v: &Value, m: Member) -> R<Value> {
    use Member as M;
    let bad = |v: &Value| no_member(v, m);
    match v {
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
                _ => return bad(v),
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
                _ => return bad(v),
            })
        }
        _ => bad(v),
    }
}

/// Methods of a `DateTime`.
pub(crate) fn datetime_method(ms: i64, m: Method, a: &[Value]) -> R<Value> {
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

/// Methods of a `TimeSpan`.
pub(crate) fn timespan_method(ms: i64, m: Method, a: &[Value]) -> R<Value> {
    match (m, a.first()) {
        (Method::Add, Some(Value::TimeSpan(t))) => Ok(Value::TimeSpan(ms.saturating_add(*t))),
        (Method::Subtract, Some(Value::TimeSpan(t))) => Ok(Value::TimeSpan(ms.saturating_sub(*t))),
        (Method::Negate, _) => Ok(Value::TimeSpan(ms.saturating_neg())),
        (Method::Duration, _) => Ok(Value::TimeSpan(ms.saturating_abs())),
        _ => common_method(&Value::TimeSpan(ms), m, a),
    }
}
