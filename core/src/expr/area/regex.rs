//! `System.Text.RegularExpressions`: `Regex` static functions and objects
//! (`new Regex(...)`, `IsMatch`, `Match`, `Matches`, `Replace`, `Split`,
//! `Escape`), `RegexOptions`, and the `Match`/`Group` objects. A pattern known
//! at compile time is compiled once, with its errors reported by the
//! compiler. The .NET regex behaviours are in `expr::regexp`.

use std::sync::Arc;

use crate::expr::ast::{Arg, BinOp, TypeRef, E, EK};
use crate::expr::compile::{err, konst, Comp, Compiler};
use crate::expr::eval::{
    arr, check_len, common_method, fail, int_arg, no_member, s, str_arg, strs, MAX_LEN, R,
};
use crate::expr::node::{CastTy, Ctor, Member, Method, Node, RegexFn, StaticFn};
use crate::expr::regexp::{self, DotnetRegex};
use crate::expr::types::{Ty, TypeK};
use crate::expr::value::{Obj, Value};
use crate::expr::{EvalError, ExprError};

// ---- compile time ----

/// `RegexOptions.*`.
pub(crate) fn consts(k: TypeK, name: &str) -> Option<Comp> {
    match k {
        TypeK::RegexOptions => regexp::OPTIONS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| konst(*v, Ty::Int)),
        _ => None,
    }
}

/// Whether `m` is a method of a `Regex` object.
pub(crate) fn method_ok(m: Method) -> bool {
    use Method as M;
    matches!(
        m,
        M::IsMatch | M::Match | M::Matches | M::Replace | M::Split
    )
}

impl Compiler {
    /// `new Regex(pattern[, options])`: a literal pattern is compiled here.
    pub(crate) fn new_regex(
        &mut self,
        t: &TypeRef,
        args: &[Arg],
        init: Option<&[E]>,
        pos: usize,
    ) -> Result<Comp, ExprError> {
        if init.is_some_and(|i| !i.is_empty()) {
            return Err(err(
                pos,
                format!("initializers are not supported on '{}'", t.name),
            ));
        }
        if args.is_empty() || args.len() > 3 {
            return Err(err(
                pos,
                format!("wrong number of arguments to '{}'", t.name),
            ));
        }
        let mut a = self.args(args, pos)?;
        a.truncate(2);
        if a.len() == 1 {
            a.push(Node::Const(Value::Int(0)));
        }
        if let Some(re) = self.const_regex(&a[0], &a[1], args[0].value.pos)? {
            return Ok(Comp::Val(
                Node::Const(Value::Object(std::sync::Arc::new(Obj::Regex(re)))),
                Ty::Regex,
            ));
        }
        Ok(Comp::Val(Node::New(Ctor::Regex, a, Vec::new()), Ty::Regex))
    }

    /// A pattern and options known at compile time, compiled (errors here
    /// are compile errors naming the pattern problem).
    fn const_regex(
        &self,
        pat: &Node,
        opts: &Node,
        pos: usize,
    ) -> Result<Option<regexp::DotnetRegex>, ExprError> {
        let (Node::Const(Value::Str(p)), Some(o)) = (pat, const_int(opts)) else {
            return Ok(None);
        };
        regexp::compile(p, o, false)
            .map(Some)
            .map_err(|m| err(pos, m))
    }

    /// `Regex.IsMatch/Match/Matches/Replace/Split(input, pattern, ...)`,
    /// `Regex.Escape/Unescape(s)`.
    pub(crate) fn regex_static(
        &mut self,
        base: &str,
        name: &str,
        targs: &[TypeRef],
        args: &[Arg],
        pos: usize,
    ) -> Result<Comp, ExprError> {
        if !targs.is_empty() {
            return Err(err(
                pos,
                format!("type arguments are not supported on '{base}.{name}'"),
            ));
        }
        let (f, ty, min, max) = match name {
            "IsMatch" => (RegexFn::IsMatch, Ty::Bool, 2, 4),
            "Match" => (RegexFn::Match, Ty::Any, 2, 4),
            "Matches" => (RegexFn::Matches, Ty::Array, 2, 4),
            "Replace" => (RegexFn::Replace, Ty::Str, 3, 5),
            "Split" => (RegexFn::Split, Ty::Array, 2, 4),
            "Escape" | "Unescape" => {
                if args.len() != 1 {
                    return Err(err(
                        pos,
                        format!("wrong number of arguments to '{base}.{name}'"),
                    ));
                }
                let a = self.args(args, pos)?;
                let f = if name == "Escape" {
                    StaticFn::RegexEscape
                } else {
                    StaticFn::RegexUnescape
                };
                return Ok(Comp::Val(Node::Static(f, a), Ty::Str));
            }
            _ => return Err(err(pos, format!("unsupported method '{base}.{name}'"))),
        };
        if args.len() < min || args.len() > max {
            return Err(err(
                pos,
                format!("wrong number of arguments to '{base}.{name}'"),
            ));
        }
        if args.iter().any(|a| matches!(a.value.kind, EK::Lambda(..))) {
            return Err(err(
                pos,
                format!("'{base}.{name}' with a MatchEvaluator (lambda) is not supported"),
            ));
        }
        let mut a = self.args(args, pos)?;
        // [input, pattern, (replacement,) options, (timeout)] -> [input, pattern, options, replacement?]
        let replacement = if f == RegexFn::Replace {
            Some(a.remove(2))
        } else {
            None
        };
        a.truncate(3);
        if a.len() == 2 {
            a.push(Node::Const(Value::Int(0)));
        }
        if let Some(re) = self.const_regex(&a[1], &a[2], args[1].value.pos)? {
            a[1] = Node::Const(Value::Object(std::sync::Arc::new(Obj::Regex(re))));
        }
        a.extend(replacement);
        Ok(Comp::Val(Node::Static(StaticFn::Regex(f), a), ty))
    }
}

/// An integer known at compile time: a constant, or constants combined with `|`.
fn const_int(n: &Node) -> Option<i64> {
    match n {
        Node::Const(Value::Int(i)) => Some(*i),
        Node::Binary(BinOp::BitOr, a, b) => Some(const_int(a)? | const_int(b)?),
        Node::Cast(CastTy::Int(_), _, x) => const_int(x),
        _ => None,
    }
}

// ---- run time ----

/// `Regex.IsMatch(input, pattern, ...)` and friends, `Regex.Escape`, `Regex.Unescape`.
pub(crate) fn call_static(f: StaticFn, a: &[Value]) -> R<Value> {
    use StaticFn as F;
    let arg = |i: usize| a.get(i).unwrap_or(&Value::Null);
    Ok(match f {
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
        _ => return fail("internal error: unexpected static function"),
    })
}

/// `new Regex(pattern[, options])` with a pattern known only at run time.
pub(crate) fn construct(a: &[Value]) -> R<Value> {
    let pat = str_arg(a.first().unwrap_or(&Value::Null), "pattern")?;
    let opts = int_arg(a.get(1).unwrap_or(&Value::Int(0)), "options")?;
    let re = regexp::compile(&pat, opts, true).map_err(|message| EvalError { message })?;
    Ok(Value::Object(Arc::new(Obj::Regex(re))))
}

/// Methods of `Regex` objects, and `Match.Result(replacement)`.
pub(crate) fn object_method(o: &Obj, recv: &Value, m: Method, a: &[Value]) -> R<Value> {
    match (o, m) {
        (Obj::Regex(re), _) => regex_method(re, m, a),
        (Obj::Match(md), Method::Result) => {
            let rep = str_arg(a.first().unwrap_or(&Value::Null), "replacement")?;
            let out = regexp::result(md, &rep, MAX_LEN);
            check_len(out.len())?;
            Ok(s(out))
        }
        _ => common_method(recv, m, a),
    }
}

/// Properties of `Match`, `Group` and `GroupCollection` objects.
pub(crate) fn object_member(o: &Obj, v: &Value, m: Member) -> R<Value> {
    use Member as M;
    let bad = |v: &Value| no_member(v, m);
    match (o, m) {
        (Obj::Match(md), _) => group_member(md.groups.first().cloned().flatten(), m, Some(md))
            .unwrap_or_else(|| bad(v)),
        (Obj::Group(g), _) => group_member(g.clone(), m, None).unwrap_or_else(|| bad(v)),
        (Obj::Groups(md), M::Count) => Ok(Value::Int(md.groups.len() as i64)),
        _ => bad(v),
    }
}

/// `groups[i]` or `groups["name"]`.
pub(crate) fn group_at(m: &regexp::MatchData, key: &Value) -> R<Value> {
    let g = match key {
        Value::Str(name) => m.group_by_name(name),
        k => m.group(int_arg(k, "groupnum")?),
    };
    Ok(Value::Object(Arc::new(Obj::Group(g))))
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
