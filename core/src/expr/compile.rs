//! Name resolution: the syntax tree to the compiled tree. `context.*` paths,
//! members, methods, static functions and types become enums; locals become
//! slots; unsupported constructs fail here, naming themselves.
//!
//! This file holds the generic part (expressions, locals, dispatch); the
//! statements are in `stmt`, the type tables in `types`, and each .NET area's
//! bindings in `area::*`.

use std::sync::Arc;

use super::area::context::{self, CtxObj};
use super::area::{collections, convert, crypto, datetime, json, math, regex, strings, xml};
use super::ast::{Arg, BinOp, IPart, TypeRef, UnOp, E, EK};
use super::node::*;
use super::parser;
use super::stmt::{always_returns, Sig};
use super::types::{
    cast_ty, member_of, member_ok, member_result, method_of, method_ok, method_result, on_ty,
    type_k, type_reason, unsupported_path, unsupported_type, Ty, TypeK, NAMESPACES,
};
use super::value::Value;
use super::ExprError;

/// The result of compiling an expression text.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The tree.
    pub program: Program,
    /// How many local slots evaluation needs.
    pub slots: u32,
    /// Whether it reads `context.Request.Body`.
    pub reads_request_body: bool,
    /// Whether it reads `context.Response.Body`.
    pub reads_response_body: bool,
    /// Local functions, by index (`Node::CallFn`).
    pub funcs: Vec<Func>,
}

/// What an expression compiles to before it is known to be a value: a
/// context object, a type or a namespace may still be followed by a member.
pub(crate) enum Comp {
    /// A value: its node and static type.
    Val(Node, Ty),
    /// A context object (`context.Request`...).
    Ctx(CtxObj),
    /// A type (`string`, `DateTime`...) and its name as written.
    Type(TypeK, String),
    /// A namespace (`System.Text`).
    Ns(String),
}

/// A compile error at `offset`.
pub(crate) fn err(offset: usize, message: impl Into<String>) -> ExprError {
    ExprError {
        offset,
        message: message.into(),
    }
}

/// A constant of static type `ty`.
pub(crate) fn konst(v: impl Into<Value>, ty: Ty) -> Comp {
    Comp::Val(Node::Const(v.into()), ty)
}

/// Compiles expression text (`@(...)` or `@{...}`).
pub fn compile(src: &str) -> Result<Compiled, ExprError> {
    let program = parser::parse(src)?;
    let mut c = Compiler {
        scopes: vec![Vec::new()],
        next_slot: 0,
        req_body: false,
        resp_body: false,
        holes: Vec::new(),
        loops: 0,
        fns: Vec::new(),
        sigs: Vec::new(),
        funcs: Vec::new(),
        rets: Vec::new(),
        reassigned: Vec::new(),
        fn_scope_base: 0,
    };
    let program = match program {
        parser::Program::Expr(e) => Program::Expr(c.value(&e)?.0),
        parser::Program::Block(stmts) => {
            c.declare_fns(&stmts)?;
            let mut out = Vec::new();
            for s in &stmts {
                out.push(c.stmt(s)?);
            }
            if !always_returns(&out) {
                let pos = src.len().saturating_sub(1);
                return Err(err(pos, "not all code paths return a value"));
            }
            Program::Block(out)
        }
    };
    let mut funcs = Vec::with_capacity(c.funcs.len());
    for f in c.funcs {
        match f {
            Some(f) => funcs.push(f),
            None => return Err(err(0, "internal error: a local function was not compiled")),
        }
    }
    Ok(Compiled {
        program,
        slots: c.next_slot,
        reads_request_body: c.req_body,
        reads_response_body: c.resp_body,
        funcs,
    })
}

/// The compiler's state while it walks one expression.
pub(crate) struct Compiler {
    pub(crate) scopes: Vec<Vec<(String, u32, Ty)>>,
    pub(crate) next_slot: u32,
    pub(crate) req_body: bool,
    pub(crate) resp_body: bool,
    pub(crate) holes: Vec<(u32, Ty)>,
    pub(crate) loops: usize,
    /// Local functions in scope: name, index, scope depth.
    pub(crate) fns: Vec<(String, u32, usize)>,
    pub(crate) sigs: Vec<Sig>,
    pub(crate) funcs: Vec<Option<Func>>,
    /// Return types of the local functions being compiled (innermost last).
    pub(crate) rets: Vec<Option<CastTy>>,
    /// Slots assigned as a whole (`x = ...`, `x++`, `out x`).
    pub(crate) reassigned: Vec<u32>,
    /// First scope of the local function being compiled: its names may shadow outer ones.
    pub(crate) fn_scope_base: usize,
}

impl Compiler {
    fn new_slot(&mut self) -> Result<u32, ExprError> {
        let s = self.next_slot;
        if s >= 10_000 {
            return Err(err(0, "too many local variables"));
        }
        self.next_slot += 1;
        Ok(s)
    }

    /// Declares a local in the innermost scope (names may not shadow within a function).
    pub(crate) fn declare(&mut self, name: &str, ty: Ty, pos: usize) -> Result<u32, ExprError> {
        let taken = self.scopes[self.fn_scope_base.min(self.scopes.len())..]
            .iter()
            .flatten()
            .any(|(n, _, _)| n == name);
        if taken {
            return Err(err(
                pos,
                format!("a local variable named '{name}' is already defined in this scope"),
            ));
        }
        let slot = self.new_slot()?;
        if let Some(scope) = self.scopes.last_mut() {
            scope.push((name.to_string(), slot, ty));
        }
        Ok(slot)
    }

    /// A local's slot and static type, innermost first.
    pub(crate) fn lookup(&self, name: &str) -> Option<(u32, Ty)> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .find(|(n, _, _)| n == name)
            .map(|(_, s, t)| (*s, *t))
    }

    fn set_ty(&mut self, slot: u32, ty: Ty) {
        for scope in self.scopes.iter_mut() {
            for entry in scope.iter_mut() {
                if entry.1 == slot {
                    entry.2 = ty;
                }
            }
        }
    }

    /// Runs `f` in a new scope (its locals and local functions end with it).
    pub(crate) fn scoped<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ExprError>,
    ) -> Result<T, ExprError> {
        self.scopes.push(Vec::new());
        let depth = self.scopes.len();
        let r = f(self);
        self.fns.retain(|(_, _, d)| *d < depth);
        self.scopes.pop();
        r
    }

    // ---- expressions ----

    /// Compiles an expression that must be a value.
    pub(crate) fn value(&mut self, e: &E) -> Result<(Node, Ty), ExprError> {
        let c = self.expr(e)?;
        self.materialize(c, e.pos)
    }

    /// A compiled expression as a value (context objects that are values become nodes).
    pub(crate) fn materialize(&mut self, c: Comp, pos: usize) -> Result<(Node, Ty), ExprError> {
        Ok(match c {
            Comp::Val(n, t) => (n, t),
            Comp::Ctx(obj) => return self.ctx_value(obj, pos),
            Comp::Type(_, name) => {
                return Err(err(pos, format!("'{name}' is a type, not a value")))
            }
            Comp::Ns(name) => return Err(err(pos, unsupported_path(&name, "member"))),
        })
    }

    /// Compiles an expression.
    pub(crate) fn expr(&mut self, e: &E) -> Result<Comp, ExprError> {
        let pos = e.pos;
        Ok(match &e.kind {
            EK::Null => konst(Value::Null, Ty::Null),
            EK::Bool(b) => konst(*b, Ty::Bool),
            EK::Int(i) => konst(*i, Ty::Int),
            EK::Double(d) => konst(*d, Ty::Double),
            EK::Str(s) => konst(s.as_str(), Ty::Str),
            EK::Char(c) => konst(Value::Char(*c), Ty::Char),
            EK::Interp(parts) => {
                let mut out = Vec::new();
                for p in parts {
                    match p {
                        IPart::Lit(s) => out.push(INode::Lit(s.as_str().into())),
                        IPart::Hole(e, align, fmt) => {
                            let n = self.value(e)?.0;
                            out.push(INode::Hole(n, *align, fmt.as_deref().map(Arc::from)));
                        }
                    }
                }
                Comp::Val(Node::Interp(out), Ty::Str)
            }
            EK::Name(n) => self.name(n, pos)?,
            EK::TypeName(t) => match type_k(&t.name) {
                Some(k) => Comp::Type(k, t.name.clone()),
                None => return Err(err(pos, unsupported_type(&t.name))),
            },
            EK::Member(base, name) => {
                let b = self.expr(base)?;
                self.member(b, name, pos)?
            }
            EK::Call(callee, targs, args) => self.call(callee, targs, args, pos)?,
            EK::Index(base, idx) => {
                if idx.len() != 1 {
                    return Err(err(pos, "multi-dimensional indexers are not supported"));
                }
                let b = self.expr(base)?;
                let (k, _) = self.value(&idx[0])?;
                match b {
                    Comp::Ctx(CtxObj::Dict(d)) => context::ctx_index(d, k),
                    other => {
                        let (n, t) = self.materialize(other, pos)?;
                        let rt = match t {
                            Ty::Str => Ty::Char,
                            Ty::Json => Ty::Json,
                            Ty::Dict => Ty::Any,
                            Ty::Bytes => Ty::Int,
                            Ty::Int
                            | Ty::Double
                            | Ty::Bool
                            | Ty::DateTime
                            | Ty::TimeSpan
                            | Ty::Guid => {
                                return Err(err(
                                    pos,
                                    format!(
                                        "cannot apply indexing to an expression of type '{}'",
                                        t.name()
                                    ),
                                ))
                            }
                            _ => Ty::Any,
                        };
                        Comp::Val(Node::Index(Box::new(n), Box::new(k)), rt)
                    }
                }
            }
            EK::CondAccess(target, rest) => {
                let (t, tty) = self.value(target)?;
                let slot = self.new_slot()?;
                self.holes.push((slot, tty));
                let r = self.value(rest);
                self.holes.pop();
                let (r, rty) = r?;
                Comp::Val(Node::CondAccess(Box::new(t), slot, Box::new(r)), rty)
            }
            EK::CondHole => match self.holes.last() {
                Some((slot, ty)) => Comp::Val(Node::Local(*slot), *ty),
                None => return Err(err(pos, "misplaced null-conditional access")),
            },
            EK::Unary(op, x) => {
                let (n, t) = self.value(x)?;
                let rt = match op {
                    UnOp::Not => Ty::Bool,
                    _ => t,
                };
                Comp::Val(Node::Unary(*op, Box::new(n)), rt)
            }
            EK::Binary(op, l, r) => {
                let (ln, lt) = self.value(l)?;
                let (rn, rt) = self.value(r)?;
                let ty = match op {
                    BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                        Ty::Bool
                    }
                    BinOp::And | BinOp::Or => Ty::Bool,
                    BinOp::Add if lt == Ty::Xml => Ty::Xml,
                    BinOp::Add if lt == Ty::Str || rt == Ty::Str => Ty::Str,
                    BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem
                        if lt == Ty::Int && rt == Ty::Int =>
                    {
                        Ty::Int
                    }
                    BinOp::Sub if lt == Ty::DateTime && rt == Ty::DateTime => Ty::TimeSpan,
                    BinOp::Coalesce if lt == rt => lt,
                    _ => Ty::Any,
                };
                Comp::Val(Node::Binary(*op, Box::new(ln), Box::new(rn)), ty)
            }
            EK::Cond(c, a, b) => {
                let (cn, _) = self.value(c)?;
                let (an, at) = self.value(a)?;
                let (bn, bt) = self.value(b)?;
                let ty = if at == bt { at } else { Ty::Any };
                Comp::Val(Node::Cond(Box::new(cn), Box::new(an), Box::new(bn)), ty)
            }
            EK::Cast(t, x) => {
                let c = cast_ty(t)?;
                let (n, _) = self.value(x)?;
                Comp::Val(Node::Cast(c, t.nullable, Box::new(n)), Ty::of_cast(c))
            }
            EK::Is(x, t, name, negate) => {
                let (n, _) = self.value(x)?;
                let c = match t {
                    Some(t) => Some(cast_ty(t)?),
                    None => None,
                };
                let slot = match name {
                    Some(nm) => {
                        Some(self.declare(nm, c.map(Ty::of_cast).unwrap_or(Ty::Any), pos)?)
                    }
                    None => None,
                };
                Comp::Val(Node::Is(c, Box::new(n), slot, *negate), Ty::Bool)
            }
            EK::As(x, t) => {
                let c = cast_ty(t)?;
                let (n, _) = self.value(x)?;
                Comp::Val(Node::As(c, Box::new(n)), Ty::of_cast(c))
            }
            EK::New(t, args, init) => self.new_obj(t, args, init.as_deref(), pos)?,
            EK::NewArray(elem, size, items) => {
                let is_bytes = match elem {
                    Some(t) => {
                        let c = cast_ty(t)?;
                        c == CastTy::Int(IntW::U8)
                    }
                    None => false,
                };
                if let Some(size) = size {
                    let (n, _) = self.value(size)?;
                    if !items.is_empty() {
                        let mut out = Vec::new();
                        for i in items {
                            out.push(self.value(i)?.0);
                        }
                        let node = Node::Array(out);
                        return Ok(if is_bytes {
                            Comp::Val(Node::Cast(CastTy::Bytes, false, Box::new(node)), Ty::Bytes)
                        } else {
                            Comp::Val(node, Ty::Array)
                        });
                    }
                    return Ok(Comp::Val(
                        Node::ArraySized(is_bytes, Box::new(n)),
                        if is_bytes { Ty::Bytes } else { Ty::Array },
                    ));
                }
                let mut out = Vec::new();
                for i in items {
                    out.push(self.value(i)?.0);
                }
                if is_bytes {
                    Comp::Val(
                        Node::Cast(CastTy::Bytes, false, Box::new(Node::Array(out))),
                        Ty::Bytes,
                    )
                } else {
                    Comp::Val(Node::Array(out), Ty::Array)
                }
            }
            EK::NewAnon(members) => {
                let mut out = Vec::new();
                for (name, e) in members {
                    out.push((Arc::from(name.as_str()), self.value(e)?.0));
                }
                Comp::Val(Node::Anon(out), Ty::Json)
            }
            EK::InitList(_) => return Err(err(pos, "unexpected initializer list")),
            EK::Lambda(..) => {
                return Err(err(
                    pos,
                    "lambda expressions are only supported as arguments to LINQ methods",
                ))
            }
            EK::Assign(None, lhs, rhs) if self.aes_member(lhs).is_some() => {
                let (base, f) = self
                    .aes_member(lhs)
                    .ok_or_else(|| err(pos, "internal error"))?;
                let place = self.place(base)?;
                let (r, rt) = self.value(rhs)?;
                Comp::Val(Node::Mut(place, MutOp::SetAes(f), vec![r]), rt)
            }
            EK::Assign(op, lhs, rhs) => {
                let place = self.place(lhs)?;
                if place.path.is_empty() {
                    self.reassigned.push(place.slot);
                }
                let (r, rt) = self.value(rhs)?;
                if op.is_none() && place.path.is_empty() {
                    let declared = self
                        .scopes
                        .iter()
                        .flatten()
                        .find(|e| e.1 == place.slot)
                        .map(|e| e.2);
                    if declared == Some(Ty::Any) || declared == Some(Ty::Null) {
                        self.set_ty(place.slot, rt);
                    }
                }
                Comp::Val(Node::Assign(place, *op, Box::new(r)), rt)
            }
            EK::IncDec(inc, prefix, x) => {
                let place = self.place(x)?;
                if place.path.is_empty() {
                    self.reassigned.push(place.slot);
                }
                Comp::Val(Node::IncDec(place, *inc, *prefix), Ty::Any)
            }
        })
    }

    /// An assignable place: a local, then indexer keys into it.
    pub(crate) fn place(&mut self, e: &E) -> Result<Place, ExprError> {
        match &e.kind {
            EK::Name(n) => match self.lookup(n) {
                Some((slot, _)) => Ok(Place {
                    slot,
                    path: Vec::new(),
                }),
                None if n == "context" => Err(err(e.pos, "context is read-only in expressions")),
                None => Err(err(
                    e.pos,
                    format!("the name '{n}' does not exist in the current context"),
                )),
            },
            EK::Index(base, idx) if idx.len() == 1 => {
                let mut p = self.place(base)?;
                let k = self.value(&idx[0])?.0;
                p.path.push(k);
                Ok(p)
            }
            EK::Member(base, name) => {
                if matches!(self.expr(base), Ok(Comp::Ctx(_))) {
                    return Err(err(e.pos, "context is read-only in expressions"));
                }
                Err(err(
                    e.pos,
                    format!("assigning to member '{name}' is not supported"),
                ))
            }
            _ => {
                if let Ok(Comp::Ctx(_)) | Ok(Comp::Val(Node::CtxDict(..), _)) = self.expr(e) {
                    return Err(err(e.pos, "context is read-only in expressions"));
                }
                Err(err(e.pos, "this expression cannot be assigned to"))
            }
        }
    }

    /// A simple name: a local, `context`, a type or a namespace.
    pub(crate) fn name(&mut self, n: &str, pos: usize) -> Result<Comp, ExprError> {
        if let Some((slot, ty)) = self.lookup(n) {
            return Ok(Comp::Val(Node::Local(slot), ty));
        }
        if n == "context" {
            return Ok(Comp::Ctx(CtxObj::Context));
        }
        if let Some(k) = type_k(n) {
            return Ok(Comp::Type(k, n.to_string()));
        }
        if NAMESPACES.contains(&n) {
            return Ok(Comp::Ns(n.to_string()));
        }
        if n.starts_with(|c: char| c.is_ascii_uppercase()) {
            if type_reason(n).is_some() {
                return Err(err(pos, unsupported_type(n)));
            }
            // Unresolved: the error names the whole dotted construct once it ends.
            return Ok(Comp::Ns(n.to_string()));
        }
        Err(err(
            pos,
            format!("the name '{n}' does not exist in the current context"),
        ))
    }

    /// `b.name`: dispatched on what `b` is.
    pub(crate) fn member(&mut self, b: Comp, name: &str, pos: usize) -> Result<Comp, ExprError> {
        match b {
            Comp::Ctx(obj) => self.ctx_member(obj, name, pos),
            Comp::Type(k, tname) => self.static_member(k, &tname, name, pos),
            Comp::Ns(ns) => {
                let full = format!("{ns}.{name}");
                if let Some(k) = type_k(name) {
                    return Ok(Comp::Type(k, full));
                }
                if NAMESPACES.contains(&full.as_str()) || type_reason(name).is_none() {
                    return Ok(Comp::Ns(full));
                }
                Err(err(pos, unsupported_type(&full)))
            }
            Comp::Val(node, ty) => {
                if name == "Body" && matches!(ty, Ty::Response | Ty::Any) {
                    return Ok(Comp::Ctx(CtxObj::Body(BodySrc::Value(Box::new(node)))));
                }
                let Some(m) = member_of(name) else {
                    return Err(err(
                        pos,
                        format!("unsupported member '{name}'{}", on_ty(ty)),
                    ));
                };
                if !member_ok(ty, m) {
                    return Err(err(
                        pos,
                        format!("unsupported member '{name}' on {}", ty.name()),
                    ));
                }
                Ok(Comp::Val(Node::Member(Box::new(node), m), member_result(m)))
            }
        }
    }

    fn static_member(
        &mut self,
        k: TypeK,
        tname: &str,
        name: &str,
        pos: usize,
    ) -> Result<Comp, ExprError> {
        let base = tname.rsplit('.').next().unwrap_or(tname);
        convert::consts(k, tname, name)
            .or_else(|| strings::consts(k, name))
            .or_else(|| datetime::consts(k, name))
            .or_else(|| math::consts(k, name))
            .or_else(|| json::consts(k, name))
            .or_else(|| crypto::consts(k, name))
            .or_else(|| regex::consts(k, name))
            .ok_or_else(|| err(pos, format!("unsupported member '{base}.{name}'")))
    }

    /// Call arguments (lambdas allowed; `out` only where a binding takes it).
    pub(crate) fn args(&mut self, args: &[Arg], pos: usize) -> Result<Vec<Node>, ExprError> {
        let mut out = Vec::new();
        for a in args {
            if a.out {
                return Err(err(
                    a.value.pos.max(pos),
                    "out and ref arguments are only supported with TryParse and TryGetValue",
                ));
            }
            out.push(self.arg_value(&a.value)?);
        }
        Ok(out)
    }

    fn arg_value(&mut self, e: &E) -> Result<Node, ExprError> {
        if let EK::Lambda(params, body) = &e.kind {
            return self.scoped(|me| {
                let mut slots = Vec::new();
                for p in params {
                    slots.push(me.declare(p, Ty::Any, e.pos)?);
                }
                let (b, _) = me.value(body)?;
                Ok(Node::Lambda(slots, Box::new(b)))
            });
        }
        Ok(self.value(e)?.0)
    }

    /// An `out x` / `out var x` argument's slot.
    pub(crate) fn out_slot(&mut self, a: &Arg) -> Result<u32, ExprError> {
        if !a.out {
            return Err(err(a.value.pos, "expected an out argument"));
        }
        match &a.value.kind {
            EK::Name(n) if a.declares => self.declare(n, Ty::Any, a.value.pos),
            EK::Name(n) => self
                .lookup(n)
                .map(|(s, _)| s)
                .inspect(|s| self.reassigned.push(*s))
                .ok_or_else(|| {
                    err(
                        a.value.pos,
                        format!("the name '{n}' does not exist in the current context"),
                    )
                }),
            _ => Err(err(a.value.pos, "out arguments must be local variables")),
        }
    }

    /// The single type argument of a generic call, if any.
    pub(crate) fn targ(&self, targs: &[TypeRef]) -> Result<Option<CastTy>, ExprError> {
        match targs {
            [] => Ok(None),
            [t] => Ok(Some(cast_ty(t)?)),
            [_, t, ..] => Err(err(t.pos, "too many type arguments")),
        }
    }

    /// `callee(args)`: local functions, then dispatch on the receiver (context, type, value).
    pub(crate) fn call(
        &mut self,
        callee: &E,
        targs: &[TypeRef],
        args: &[Arg],
        pos: usize,
    ) -> Result<Comp, ExprError> {
        let (base, name) = match &callee.kind {
            EK::Member(base, name) => (base, name.as_str()),
            EK::Name(n) => {
                if let Some(idx) = self.lookup_fn(n) {
                    return self.call_fn(idx, n, targs, args, callee.pos.max(pos));
                }
                return Err(err(
                    callee.pos,
                    format!("unsupported method '{n}' (not a local function; delegates are not supported)"),
                ));
            }
            _ => return Err(err(callee.pos, "this expression cannot be called")),
        };
        let pos = callee.pos.max(pos);
        // `x.Property("a").Remove()` on a local JObject.
        if name == "Remove" && args.is_empty() {
            if let EK::Call(inner, _, pargs) = &base.kind {
                if let EK::Member(obj, pname) = &inner.kind {
                    if pname == "Property" && pargs.len() == 1 {
                        let place = self.place(obj).map_err(|_| {
                            err(
                                pos,
                                "Property(...).Remove() is only supported on a local variable",
                            )
                        })?;
                        let k = self.value(&pargs[0].value)?.0;
                        return Ok(Comp::Val(
                            Node::Mut(place, MutOp::RemoveProperty, vec![k]),
                            Ty::Any,
                        ));
                    }
                }
            }
        }
        let b = self.expr(base)?;
        match b {
            Comp::Ctx(obj) => self.ctx_call(obj, name, targs, args, pos),
            Comp::Type(k, tname) => self.static_call(k, &tname, name, targs, args, pos),
            Comp::Ns(ns) => Err(err(
                pos,
                unsupported_path(&format!("{ns}.{name}"), "method"),
            )),
            Comp::Val(node, ty) => {
                // Mutations of locals.
                let mutation = match name {
                    "Add" if ty != Ty::DateTime && ty != Ty::TimeSpan => Some(MutOp::Add),
                    "Clear" if ty != Ty::Crypto && ty != Ty::Cipher => Some(MutOp::Clear),
                    "Remove" if matches!(ty, Ty::Json | Ty::Array | Ty::Dict) => {
                        Some(MutOp::Remove)
                    }
                    "Insert" if matches!(ty, Ty::Array) => Some(MutOp::Insert),
                    _ => None,
                };
                if let Some(op) = mutation {
                    let place = self.place(base).map_err(|_| {
                        err(pos, format!("'{name}' is only supported on a local variable (context values are read-only)"))
                    })?;
                    let a = self.args(args, pos)?;
                    let op = if op == MutOp::Remove && ty == Ty::Json {
                        MutOp::RemoveProperty
                    } else {
                        op
                    };
                    return Ok(Comp::Val(Node::Mut(place, op, a), Ty::Any));
                }
                if name == "TryGetValue" {
                    return self.try_get_value(node, args, pos);
                }
                let Some(m) = method_of(name) else {
                    return Err(err(
                        pos,
                        format!("unsupported method '{name}'{}", on_ty(ty)),
                    ));
                };
                if matches!(m, Method::Encrypt | Method::Decrypt) && method_ok(ty, m) {
                    return self.encrypt_call(node, ty, m, targs, args, pos);
                }
                if !method_ok(ty, m) {
                    return Err(err(
                        pos,
                        format!("unsupported method '{name}' on {}", ty.name()),
                    ));
                }
                let t = self.targ(targs)?;
                let a = self.args(args, pos)?;
                let rt = match (m, t) {
                    (Method::Value | Method::ToObject, Some(c)) => Ty::of_cast(c),
                    _ => method_result(ty, m),
                };
                Ok(Comp::Val(Node::Method(Box::new(node), m, a, t), rt))
            }
        }
    }

    fn static_call(
        &mut self,
        k: TypeK,
        tname: &str,
        name: &str,
        targs: &[TypeRef],
        args: &[Arg],
        pos: usize,
    ) -> Result<Comp, ExprError> {
        let base = tname.rsplit('.').next().unwrap_or(tname);
        // TryParse(s, out x).
        if name == "TryParse" {
            if let TypeK::Cast(c) = k {
                if convert::parsable(c) {
                    return self.try_parse(c, args, pos);
                }
            }
        }
        if matches!(
            (k, name),
            (TypeK::ArrayStatic, "Copy") | (TypeK::Buffer, "BlockCopy")
        ) {
            return self.array_copy(base, name, targs, args, pos);
        }
        if k == TypeK::Regex {
            return self.regex_static(base, name, targs, args, pos);
        }
        if (k, name) == (TypeK::Aes, "Create") {
            return self.aes_create(base, args, pos);
        }
        let areas = [
            convert::statics,
            strings::statics,
            datetime::statics,
            math::statics,
            json::statics,
            collections::statics,
            crypto::statics,
            xml::statics,
        ];
        let mut found = None;
        for statics in areas {
            found = statics(k, name, pos)?;
            if found.is_some() {
                break;
            }
        }
        let Some((f, ty, min, max)) = found else {
            return Err(err(pos, format!("unsupported method '{base}.{name}'")));
        };
        if !targs.is_empty() {
            return Err(err(
                pos,
                format!("type arguments are not supported on '{base}.{name}'"),
            ));
        }
        if args.len() < min || args.len() > max {
            return Err(err(
                pos,
                format!("wrong number of arguments to '{base}.{name}'"),
            ));
        }
        let a = self.args(args, pos)?;
        Ok(Comp::Val(Node::Static(f, a), ty))
    }

    fn new_obj(
        &mut self,
        t: &TypeRef,
        args: &[Arg],
        init: Option<&[E]>,
        pos: usize,
    ) -> Result<Comp, ExprError> {
        let k = type_k(&t.name);
        let (ctor, ty) = match k {
            Some(TypeK::Cast(CastTy::JObject)) => (Ctor::JObject, Ty::Json),
            Some(TypeK::Cast(CastTy::JArray)) => (Ctor::JArray, Ty::Json),
            Some(TypeK::JProperty) => (Ctor::JProperty, Ty::Any),
            Some(TypeK::Cast(CastTy::JValue)) => (Ctor::JValue, Ty::Json),
            Some(TypeK::Cast(CastTy::DateTime)) => (Ctor::DateTime, Ty::DateTime),
            Some(TypeK::Cast(CastTy::TimeSpan)) => (Ctor::TimeSpan, Ty::TimeSpan),
            Some(TypeK::Cast(CastTy::Guid)) => (Ctor::Guid, Ty::Guid),
            Some(TypeK::Random) => (Ctor::Random, Ty::Any),
            Some(TypeK::Cast(CastTy::Uri)) => (Ctor::Uri, Ty::Any),
            Some(TypeK::List) if t.name.rsplit('.').next() == Some("List") => {
                (Ctor::List, Ty::Array)
            }
            Some(TypeK::Dictionary) if t.name.rsplit('.').next() == Some("Dictionary") => {
                (Ctor::Dictionary, Ty::Dict)
            }
            Some(TypeK::Cast(CastTy::Str)) => (Ctor::String, Ty::Str),
            Some(TypeK::Cast(CastTy::Exception)) => (Ctor::Exception, Ty::Any),
            Some(TypeK::Hash(alg, keyed)) => (Ctor::Hasher(alg, keyed), Ty::Crypto),
            Some(TypeK::Aes) if t.name.rsplit('.').next() != Some("SymmetricAlgorithm") => {
                (Ctor::Aes, Ty::Cipher)
            }
            Some(TypeK::Regex) => (Ctor::Regex, Ty::Regex),
            _ => return Err(err(t.pos.max(pos), unsupported_type(&t.name))),
        };
        if ctor == Ctor::Aes {
            return self.new_aes(t, args, init, pos);
        }
        if ctor == Ctor::Regex {
            return self.new_regex(t, args, init, pos);
        }
        for a in &t.args {
            cast_ty(a)?;
        }
        if let Ctor::Hasher(_, keyed) = ctor {
            return self.new_hasher(ctor, keyed, t, args, init, pos);
        }
        let a = self.args(args, pos)?;
        let mut items = Vec::new();
        if let Some(init) = init {
            for item in init {
                match &item.kind {
                    EK::InitList(pair) if ctor == Ctor::Dictionary && pair.len() == 2 => {
                        let k = self.value(&pair[0])?.0;
                        let v = self.value(&pair[1])?.0;
                        items.push(Node::Array(vec![k, v]));
                    }
                    EK::Assign(None, l, _) if matches!(l.kind, EK::Name(_)) => {
                        let n = match &l.kind {
                            EK::Name(n) => n.as_str(),
                            _ => "?",
                        };
                        return Err(err(
                            item.pos,
                            format!("object initializers are not supported ('{n} = ...')"),
                        ));
                    }
                    EK::InitList(_) => {
                        return Err(err(item.pos, "unsupported collection initializer"))
                    }
                    _ if matches!(ctor, Ctor::List | Ctor::JArray | Ctor::JObject) => {
                        items.push(self.value(item)?.0);
                    }
                    _ => {
                        return Err(err(
                            item.pos,
                            format!("collection initializers are not supported on '{}'", t.name),
                        ))
                    }
                }
            }
        }
        Ok(Comp::Val(Node::New(ctor, a, items), ty))
    }
}
