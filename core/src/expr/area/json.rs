//! `JObject`, `JArray`, `JToken`, `JValue`, `JProperty` and `JsonConvert`:
//! static functions, constructors, members, methods and in-place changes.
//! The Newtonsoft behaviours on `serde_json` are in `expr::json`.

use std::sync::Arc;

use serde_json::Value as J;

use crate::expr::area::collections::{self, index_value, is_linq, items, seq_method};
use crate::expr::area::convert::{cast, default_of};
use crate::expr::compile::{konst, Comp};
use crate::expr::eval::{arr, common_method, fail, idx_arg, no_member, nre, s, str_arg, R};
use crate::expr::json;
use crate::expr::node::{CastTy, Ctor, Member, Method, MutOp, StaticFn};
use crate::expr::types::{StaticSig, Ty, TypeK};
use crate::expr::value::{Obj, Value};
use crate::expr::{EvalError, ExprError};

// ---- compile time ----

/// `Formatting.None`, `Formatting.Indented`.
pub(crate) fn consts(k: TypeK, name: &str) -> Option<Comp> {
    Some(match (k, name) {
        (TypeK::Formatting, "None") => konst(0, Ty::Int),
        (TypeK::Formatting, "Indented") => konst(1, Ty::Int),
        _ => return None,
    })
}

/// `JObject.Parse`, `JToken.FromObject`, `JsonConvert.SerializeObject`...
pub(crate) fn statics(k: TypeK, name: &str, _pos: usize) -> Result<Option<StaticSig>, ExprError> {
    use StaticFn as F;
    Ok(Some(match (k, name) {
        (TypeK::Cast(c @ (CastTy::JObject | CastTy::JArray | CastTy::JToken)), "Parse") => {
            (F::JsonParse(c), Ty::Json, 1, 1)
        }
        (TypeK::Cast(CastTy::JObject | CastTy::JArray | CastTy::JToken), "FromObject") => {
            (F::FromObject, Ty::Json, 1, 1)
        }
        (TypeK::JsonConvert, "SerializeObject") => (F::Serialize, Ty::Str, 1, 2),
        (TypeK::JsonConvert, "DeserializeObject") => (F::Deserialize, Ty::Json, 1, 1),
        _ => return Ok(None),
    }))
}

/// Whether `m` is a method of a JSON token.
pub(crate) fn method_ok(m: Method) -> bool {
    use Method as M;
    collections::is_linq(m)
        || matches!(
            m,
            M::Value
                | M::Values
                | M::SelectToken
                | M::Property
                | M::Properties
                | M::Children
                | M::ToObject
                | M::ContainsKey
                | M::IndexOf
        )
}

/// Whether `m` is a property of a JSON token.
pub(crate) fn member_ok(m: Member) -> bool {
    use Member as M;
    matches!(
        m,
        M::Count | M::Type | M::HasValues | M::First | M::Last | M::Name | M::Value
    )
}

// ---- run time ----

/// `JToken.Parse`, `JToken.FromObject`, `JsonConvert.SerializeObject`/`DeserializeObject`.
pub(crate) fn call_static(f: StaticFn, a: &[Value]) -> R<Value> {
    use StaticFn as F;
    let arg = |i: usize| a.get(i).unwrap_or(&Value::Null);
    Ok(match f {
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
        _ => return fail("internal error: unexpected static function"),
    })
}

/// `new JObject(...)`, `new JArray(...)`, `new JProperty(name, value)`, `new JValue(x)`
/// (`items`: collection initializer items).
pub(crate) fn construct(c: Ctor, a: &[Value], items: &[Value]) -> R<Value> {
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
        Ctor::JValue => Ok(json::token(
            a.first().map(Value::to_json).unwrap_or(J::Null),
        )),
        _ => fail("internal error: unexpected constructor"),
    }
}

/// Properties of a JSON token.
pub(crate) fn member(j: &J, v: &Value, m: Member) -> R<Value> {
    use Member as M;
    let bad = |v: &Value| no_member(v, m);
    match (m, j) {
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
        _ => bad(v),
    }
}

/// `Name` and `Value` of a `JProperty`.
pub(crate) fn property_member(k: &Arc<str>, x: &J, v: &Value, m: Member) -> R<Value> {
    match m {
        Member::Name => Ok(Value::Str(k.clone())),
        Member::Value => Ok(json::token(x.clone())),
        _ => no_member(v, m),
    }
}

/// `Add`, `Remove`, `Clear`, `Insert` on a JSON token held in a local.
pub(crate) fn mutate(j: &mut Arc<J>, op: MutOp, a: &[Value]) -> R<Value> {
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

/// Adds what `JObject.Add(x)` or `new JObject(x)` adds: a property, an object's properties...
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

/// `token[key] = v` (and deeper paths).
pub(crate) fn json_assign(j: &mut J, keys: &[Value], v: J) -> R<()> {
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

/// A JSON scalar as a C# value (`JValue.Value`).
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

/// `JToken.ToString(Formatting)`.
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

/// Methods of a JSON token.
pub(crate) fn json_method(j: &Arc<J>, m: Method, a: &[Value], t: Option<CastTy>) -> R<Value> {
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
        _ if is_linq(m) => seq_method(items(&v)?, m, a),
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
