//! Assignment: `x = v`, `x op= v`, `x++`, `a[i][j] = v` and the in-place
//! calls (`list.Add(x)`, `obj.Remove("p")`...) on locals and their elements.
//! Context values are read-only; only locals are ever written.

use std::sync::Arc;

use bytes::Bytes;

use super::area::{collections, crypto, json};
use super::ast::BinOp;
use super::eval::{fail, idx_arg, int_arg, nre, str_arg, Frame, R};
use super::node::{MutOp, Node, Place};
use super::ops::{arith, binop};
use super::value::Value;

impl Frame<'_> {
    fn read_place(&mut self, place: &Place) -> R<(Vec<Value>, Value)> {
        let mut keys = Vec::with_capacity(place.path.len());
        for k in &place.path {
            keys.push(self.eval(k)?);
        }
        let mut cur = self.local(place.slot);
        for k in &keys {
            cur = collections::index_value(&cur, k)?;
        }
        Ok((keys, cur))
    }

    fn write_place(&mut self, place: &Place, keys: &[Value], v: Value) -> R<()> {
        let Some(root) = self.locals.get_mut(place.slot as usize) else {
            return fail("invalid local");
        };
        assign_path(root, keys, v)
    }

    /// `place = v` and `place op= v`.
    pub(crate) fn assign(&mut self, place: &Place, op: Option<BinOp>, v: &Node) -> R<Value> {
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

    /// `++`/`--`, prefix or postfix.
    pub(crate) fn inc_dec(&mut self, place: &Place, inc: bool, prefix: bool) -> R<Value> {
        let (keys, cur) = self.read_place(place)?;
        let new = arith(
            if inc { BinOp::Add } else { BinOp::Sub },
            &cur,
            &Value::Int(1),
        )?;
        self.write_place(place, &keys, new.clone())?;
        Ok(if prefix { new } else { cur })
    }

    /// A mutating call (`Add`, `Remove`...) on a local or an element of one.
    pub(crate) fn mutate(&mut self, place: &Place, op: MutOp, args: &[Node]) -> R<Value> {
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

/// Changes a local in place (`Add`, `Remove`, `Array.Copy` into it, `aes.Key = ...`).
fn mutate_value(target: &mut Value, op: MutOp, a: &[Value]) -> R<Value> {
    match op {
        MutOp::CopyInto => return collections::copy_into(target, a),
        MutOp::SetAes(f) => return crypto::set_aes_on(target, f, a),
        _ => {}
    }
    match target {
        Value::Null => nre("the target"),
        Value::Json(j) => json::mutate(j, op, a),
        other => collections::mutate(other, op, a),
    }
}

/// `local[k1][k2]... = v`.
fn assign_path(root: &mut Value, keys: &[Value], v: Value) -> R<()> {
    let Some((k, rest)) = keys.split_first() else {
        *root = v;
        return Ok(());
    };
    match root {
        Value::Null => nre("the indexed value"),
        Value::Json(j) => json::json_assign(Arc::make_mut(j), keys, v.to_json()),
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
