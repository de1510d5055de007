//! Collections: arrays and lists (`new List<T>`, `Array.Copy`,
//! `Array.Exists`), dictionaries (`new Dictionary<K, V>`, `TryGetValue`,
//! `GetValueOrDefault`), LINQ over any sequence, indexing, and the in-place
//! changes of locals (`Add`, `Remove`, `Insert`, `Clear`).

use std::cmp::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value as J;

use crate::expr::area::regex;
use crate::expr::ast::{Arg, BinOp, TypeRef};
use crate::expr::compile::{err, Comp, Compiler};
use crate::expr::eval::{
    arr, check_len, common_method, fail, idx_arg, ignore_case, int_arg, no_member, nre, s, str_arg,
    Frame, R,
};
use crate::expr::json;
use crate::expr::node::{Ctor, Member, Method, MutOp, Node, StaticFn};
use crate::expr::ops::{arith, compare, equals, num, truthy, Num};
use crate::expr::types::{StaticSig, Ty, TypeK};
use crate::expr::value::{Dict, Obj, Value};
use crate::expr::{EvalError, ExprError};

// ---- compile time ----

/// Whether `m` is a LINQ method (or `Contains`): these run on any sequence.
pub(crate) fn is_linq(m: Method) -> bool {
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

/// `Array.Exists`, `Array.IndexOf`.
pub(crate) fn statics(k: TypeK, name: &str, _pos: usize) -> Result<Option<StaticSig>, ExprError> {
    use StaticFn as F;
    Ok(Some(match (k, name) {
        (TypeK::ArrayStatic, "Exists") => (F::ArrayExists, Ty::Bool, 2, 2),
        (TypeK::ArrayStatic, "IndexOf") => (F::ArrayIndexOf, Ty::Int, 2, 2),
        _ => return Ok(None),
    }))
}

/// Whether `m` is a method of an array or list (`byte[]` included).
pub(crate) fn array_method_ok(m: Method) -> bool {
    is_linq(m) || matches!(m, Method::IndexOf)
}

/// Whether `m` is a method of a dictionary.
pub(crate) fn dict_method_ok(m: Method) -> bool {
    is_linq(m) || matches!(m, Method::GetValueOrDefault | Method::ContainsKey)
}

/// Whether `m` is a property of an array or list.
pub(crate) fn array_member_ok(m: Member) -> bool {
    matches!(m, Member::Length | Member::Count)
}

/// Whether `m` is a property of a dictionary.
pub(crate) fn dict_member_ok(m: Member) -> bool {
    matches!(m, Member::Count | Member::Keys | Member::Values)
}

impl Compiler {
    /// `TryGetValue(key, out x)` on a dictionary-like value (or a context dictionary).
    pub(crate) fn try_get_value(
        &mut self,
        target: Node,
        args: &[Arg],
        pos: usize,
    ) -> Result<Comp, ExprError> {
        if args.len() != 2 {
            return Err(err(pos, "TryGetValue takes a key and an out variable"));
        }
        let k = self.value(&args[0].value)?.0;
        let slot = self.out_slot(&args[1])?;
        Ok(Comp::Val(
            Node::TryGetValue(Box::new(target), Box::new(k), slot),
            Ty::Bool,
        ))
    }

    /// `Array.Copy(src, [srcIndex,] dst, [dstIndex,] length)`, `Buffer.BlockCopy(...)`:
    /// the destination must be a local (or an element of one).
    pub(crate) fn array_copy(
        &mut self,
        base: &str,
        name: &str,
        targs: &[TypeRef],
        args: &[Arg],
        pos: usize,
    ) -> Result<Comp, ExprError> {
        if !targs.is_empty() || args.iter().any(|a| a.out || a.name.is_some()) {
            return Err(err(
                pos,
                format!("unsupported arguments to '{base}.{name}'"),
            ));
        }
        let (src, si, dst, di, len) = match args {
            [src, dst, len] if name == "Copy" => (src, None, dst, None, len),
            [src, si, dst, di, len] => (src, Some(si), dst, Some(di), len),
            _ => {
                return Err(err(
                    pos,
                    format!("wrong number of arguments to '{base}.{name}'"),
                ))
            }
        };
        let place = self.place(&dst.value).map_err(|_| {
            err(
                dst.value.pos,
                format!("the destination of '{base}.{name}' must be a local variable"),
            )
        })?;
        let zero = || Node::Const(Value::Int(0));
        let src = self.value(&src.value)?.0;
        let si = match si {
            Some(a) => self.value(&a.value)?.0,
            None => zero(),
        };
        let di = match di {
            Some(a) => self.value(&a.value)?.0,
            None => zero(),
        };
        let len = self.value(&len.value)?.0;
        Ok(Comp::Val(
            Node::Mut(place, MutOp::CopyInto, vec![src, si, di, len]),
            Ty::Null,
        ))
    }
}

// ---- run time ----

/// A sequence's items (arrays, JSON arrays and objects, strings, bytes, dictionaries).
pub(crate) fn items(v: &Value) -> R<Vec<Value>> {
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

/// `a[key]` on a string, array, JSON token, dictionary or `GroupCollection`.
pub(crate) fn index_value(base: &Value, key: &Value) -> R<Value> {
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
        Value::Object(o) if matches!(**o, Obj::Groups(_)) => match &**o {
            Obj::Groups(m) => regex::group_at(m, key),
            _ => fail("internal error: not a GroupCollection"),
        },
        other => fail(format!(
            "Cannot apply indexing to a value of type '{}'",
            other.type_name()
        )),
    }
}

/// `Array.IndexOf(array, x)`.
pub(crate) fn call_static(f: StaticFn, a: &[Value]) -> R<Value> {
    use StaticFn as F;
    let arg = |i: usize| a.get(i).unwrap_or(&Value::Null);
    Ok(match f {
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
        _ => return fail("internal error: unexpected static function"),
    })
}

/// `new List<T>(...)`, `new Dictionary<K, V>(...)` (`items`: initializer items).
pub(crate) fn construct(c: Ctor, a: &[Value], init: Vec<Value>) -> R<Value> {
    match c {
        Ctor::List => {
            let mut out = match a.first() {
                Some(Value::Int(_)) | None => Vec::new(),
                Some(v) => items(v)?,
            };
            out.extend(init);
            Ok(arr(out))
        }
        Ctor::Dictionary => {
            let mut d = Dict::default();
            if let Some(Value::Int(code)) = a.last() {
                d.ignore_case = code % 2 == 1;
            }
            for it in init {
                dict_add(&mut d, &it)?;
            }
            Ok(Value::Dict(Arc::new(d)))
        }
        _ => fail("internal error: unexpected constructor"),
    }
}

/// `Length`/`Count` of arrays, `Count`/`Keys`/`Values` of dictionaries.
pub(crate) fn member(v: &Value, m: Member) -> R<Value> {
    use Member as M;
    let bad = |v: &Value| no_member(v, m);
    match v {
        Value::Array(xs) => match m {
            M::Length | M::Count => Ok(Value::Int(xs.len() as i64)),
            _ => bad(v),
        },
        Value::Bytes(b) => match m {
            M::Length | M::Count => Ok(Value::Int(b.len() as i64)),
            _ => bad(v),
        },
        Value::Dict(d) => match m {
            M::Count => Ok(Value::Int(d.entries.len() as i64)),
            M::Keys => Ok(arr(d
                .entries
                .iter()
                .map(|(k, _)| Value::Str(k.clone()))
                .collect())),
            M::Values => Ok(arr(d.entries.iter().map(|(_, x)| x.clone()).collect())),
            _ => bad(v),
        },
        _ => bad(v),
    }
}

/// `Key` and `Value` of a `KeyValuePair` (and `Message` of an exception).
pub(crate) fn key_value_member(k: &Arc<str>, x: &Value, v: &Value, m: Member) -> R<Value> {
    match m {
        Member::Key => Ok(Value::Str(k.clone())),
        Member::Value | Member::Message => Ok(x.clone()),
        _ => no_member(v, m),
    }
}

/// Methods of a dictionary (LINQ aside).
pub(crate) fn dict_method(d: &Dict, recv: &Value, m: Method, a: &[Value]) -> R<Value> {
    match m {
        Method::GetValueOrDefault => {
            // Multi-valued entries (headers, claims) come back comma-joined, as in APIM.
            let k = str_arg(a.first().unwrap_or(&Value::Null), "key")?;
            Ok(match d.get(&k) {
                Some(Value::Array(xs)) if xs.iter().all(|x| matches!(x, Value::Str(_))) => s(xs
                    .iter()
                    .map(|x| x.to_display_string())
                    .collect::<Vec<_>>()
                    .join(",")),
                Some(v) => v.clone(),
                None => a.get(1).cloned().unwrap_or(Value::Null),
            })
        }
        Method::ContainsKey => {
            let k = str_arg(a.first().unwrap_or(&Value::Null), "key")?;
            Ok(Value::Bool(d.get(&k).is_some()))
        }
        _ => common_method(recv, m, a),
    }
}

/// `Add`, `Remove`, `Insert`, `Clear` on an array, list or dictionary held in a local.
pub(crate) fn mutate(target: &mut Value, op: MutOp, a: &[Value]) -> R<Value> {
    match target {
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
pub(crate) fn copy_into(target: &mut Value, a: &[Value]) -> R<Value> {
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

/// LINQ and sequence methods without a lambda, over materialized items.
pub(crate) fn seq_method(items: Vec<Value>, m: Method, a: &[Value]) -> R<Value> {
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

impl Frame<'_> {
    /// `Array.Exists(array, predicate)`.
    pub(crate) fn array_exists(&mut self, args: &[Node]) -> R<Value> {
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
        Ok(Value::Bool(false))
    }

    /// LINQ methods with lambdas (`Where`, `Select`, `Any`, `OrderBy`...) and
    /// the sequence methods of non-string receivers.
    pub(crate) fn linq(&mut self, recv: Value, m: Method, args: &[Node]) -> R<Value> {
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

    /// `TryGetValue(key, out x)` on a dictionary or JSON object.
    pub(crate) fn try_get_value(&mut self, b: &Node, k: &Node, slot: u32) -> R<Value> {
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
}
