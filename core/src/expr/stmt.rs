//! Compiling statements and local functions: blocks and scopes, loops,
//! `try`/`catch`, `return` checks ("not all code paths return a value").

use super::ast::{Arg, LocalFn, TypeRef, S};
use super::compile::{err, Comp, Compiler};
use super::node::{CastTy, Func, Node, Stmt};
use super::types::{cast_ty, Ty};
use super::value::Value;
use super::ExprError;

/// A local function's signature (`ret` `None` is `void`).
#[derive(Debug, Clone)]
pub(crate) struct Sig {
    pub(crate) params: Vec<CastTy>,
    pub(crate) ret: Option<CastTy>,
}

/// Whether a statement list returns (or throws) on every path.
pub(crate) fn always_returns(stmts: &[Stmt]) -> bool {
    stmts.iter().any(stmt_returns)
}

fn stmt_returns(s: &Stmt) -> bool {
    match s {
        Stmt::Return(_) | Stmt::Throw(_) => true,
        Stmt::Block(b) => always_returns(b),
        Stmt::If(_, a, Some(b)) => stmt_returns(a) && stmt_returns(b),
        Stmt::Try(body, catch, fin) => {
            fin.as_ref().is_some_and(|f| stmt_returns(f))
                || (stmt_returns(body) && catch.as_ref().is_none_or(|(_, c)| stmt_returns(c)))
        }
        Stmt::While(Node::Const(Value::Bool(true)), _) => true,
        _ => false,
    }
}

impl Compiler {
    /// Registers the local functions of a block, so calls anywhere in it
    /// (before the declaration, recursive, mutual) resolve.
    pub(crate) fn declare_fns(&mut self, stmts: &[S]) -> Result<(), ExprError> {
        let depth = self.scopes.len();
        for s in stmts {
            let S::LocalFn(f) = s else { continue };
            if self.fns.iter().any(|(n, _, d)| *d == depth && *n == f.name) {
                return Err(err(
                    f.pos,
                    format!(
                        "a local function named '{}' is already defined in this scope",
                        f.name
                    ),
                ));
            }
            let mut params = Vec::new();
            for (t, _, _) in &f.params {
                params.push(cast_ty(t)?);
            }
            let ret = match &f.ret {
                Some(t) => Some(cast_ty(t)?),
                None => None,
            };
            let idx = u32::try_from(self.funcs.len())
                .map_err(|_| err(f.pos, "too many local functions"))?;
            self.sigs.push(Sig { params, ret });
            self.funcs.push(None);
            self.fns.push((f.name.clone(), idx, depth));
        }
        Ok(())
    }

    /// The local function named `name` in scope, innermost first.
    pub(crate) fn lookup_fn(&self, name: &str) -> Option<u32> {
        self.fns
            .iter()
            .rev()
            .find(|(n, _, _)| n == name)
            .map(|(_, i, _)| *i)
    }

    /// Compiles a local function's body where it is declared (it sees the
    /// locals declared before it).
    pub(crate) fn local_fn(&mut self, f: &LocalFn) -> Result<Stmt, ExprError> {
        let Some(idx) = self.lookup_fn(&f.name) else {
            return Err(err(f.pos, "internal error: undeclared local function"));
        };
        let sig = self
            .sigs
            .get(idx as usize)
            .cloned()
            .ok_or_else(|| err(f.pos, "internal error: unknown local function"))?;
        let start = self.next_slot;
        let loops = std::mem::replace(&mut self.loops, 0);
        let holes = std::mem::take(&mut self.holes);
        let base = std::mem::replace(&mut self.fn_scope_base, self.scopes.len());
        self.rets.push(sig.ret);
        let r = self.scoped(|me| {
            let mut slots = Vec::new();
            for ((_, pname, ppos), c) in f.params.iter().zip(&sig.params) {
                slots.push(me.declare(pname, Ty::of_cast(*c), *ppos)?);
            }
            let body = me.stmt(&f.body)?;
            Ok((slots, body))
        });
        self.rets.pop();
        self.fn_scope_base = base;
        self.holes = holes;
        self.loops = loops;
        let (params, body) = r?;
        if sig.ret.is_some() && !stmt_returns(&body) {
            return Err(err(
                f.pos,
                format!("'{}': not all code paths return a value", f.name),
            ));
        }
        let write_back = params
            .iter()
            .map(|p| !self.reassigned.contains(p))
            .collect();
        let func = Func {
            params,
            write_back,
            body,
            slots: (start, self.next_slot),
        };
        match self.funcs.get_mut(idx as usize) {
            Some(slot) => *slot = Some(func),
            None => return Err(err(f.pos, "internal error: unknown local function")),
        }
        Ok(Stmt::Block(Vec::new()))
    }

    /// `F(a, b)` of a local function.
    pub(crate) fn call_fn(
        &mut self,
        idx: u32,
        name: &str,
        targs: &[TypeRef],
        args: &[Arg],
        pos: usize,
    ) -> Result<Comp, ExprError> {
        let sig = self
            .sigs
            .get(idx as usize)
            .cloned()
            .ok_or_else(|| err(pos, "internal error: unknown local function"))?;
        if !targs.is_empty() {
            return Err(err(pos, "generic local functions are not supported"));
        }
        if args.len() != sig.params.len() {
            return Err(err(
                pos,
                format!("wrong number of arguments to local function '{name}'"),
            ));
        }
        let mut out = Vec::with_capacity(args.len());
        for (a, c) in args.iter().zip(&sig.params) {
            if a.out || a.name.is_some() {
                return Err(err(
                    a.value.pos,
                    format!("named, out and ref arguments are not supported in calls to local function '{name}'"),
                ));
            }
            let (n, t) = self.value(&a.value)?;
            out.push(if *c == CastTy::Double && t != Ty::Double {
                Node::Cast(CastTy::Double, true, Box::new(n))
            } else {
                n
            });
        }
        let ty = match sig.ret {
            Some(c) => Ty::of_cast(c),
            None => Ty::Null,
        };
        Ok(Comp::Val(Node::CallFn(idx, out), ty))
    }

    // ---- statements ----

    /// Compiles a statement.
    pub(crate) fn stmt(&mut self, s: &S) -> Result<Stmt, ExprError> {
        Ok(match s {
            S::Empty => Stmt::Block(Vec::new()),
            S::Expr(e) => Stmt::Expr(self.value(e)?.0),
            S::Decl(ty, vars) => {
                let decl = match ty {
                    Some(t) => Some(cast_ty(t)?),
                    None => None,
                };
                let mut out = Vec::new();
                for (name, init, pos) in vars {
                    let (node, vty) = match init {
                        Some(e) => {
                            let (n, t) = self.value(e)?;
                            match decl {
                                Some(CastTy::Double) if t != Ty::Double => {
                                    (Node::Cast(CastTy::Double, true, Box::new(n)), Ty::Double)
                                }
                                // `XNamespace ns = "urn:x"`: C#'s implicit conversion.
                                Some(c @ (CastTy::XName | CastTy::XNamespace)) if t == Ty::Str => {
                                    (Node::Cast(c, true, Box::new(n)), Ty::Xml)
                                }
                                Some(c) if c != CastTy::Object => (n, Ty::of_cast(c)),
                                _ => (n, t),
                            }
                        }
                        None => {
                            if ty.is_none() {
                                return Err(err(
                                    *pos,
                                    "implicitly-typed variables must be initialized",
                                ));
                            }
                            (
                                Node::Const(Value::Null),
                                decl.map(Ty::of_cast).unwrap_or(Ty::Any),
                            )
                        }
                    };
                    let slot = self.declare(name, vty, *pos)?;
                    out.push(Stmt::Set(slot, node));
                }
                if out.len() == 1 {
                    out.pop().unwrap_or(Stmt::Block(Vec::new()))
                } else {
                    Stmt::Block(out)
                }
            }
            S::If(c, a, b) => {
                let c = self.value(c)?.0;
                let a = self.scoped(|me| me.stmt(a))?;
                let b = match b {
                    Some(b) => Some(Box::new(self.scoped(|me| me.stmt(b))?)),
                    None => None,
                };
                Stmt::If(c, Box::new(a), b)
            }
            S::LocalFn(f) => self.local_fn(f)?,
            S::Block(stmts) => self.scoped(|me| {
                me.declare_fns(stmts)?;
                let mut out = Vec::new();
                for s in stmts {
                    out.push(me.stmt(s)?);
                }
                Ok(Stmt::Block(out))
            })?,
            S::Return(e, pos) => match (e, self.rets.last()) {
                (Some(_), Some(None)) => {
                    return Err(err(*pos, "a void local function cannot return a value"))
                }
                (None, Some(None)) => Stmt::Return(Node::Const(Value::Null)),
                (Some(e), Some(Some(CastTy::Double))) => {
                    let (n, t) = self.value(e)?;
                    Stmt::Return(if t == Ty::Double {
                        n
                    } else {
                        Node::Cast(CastTy::Double, true, Box::new(n))
                    })
                }
                (Some(e), _) => Stmt::Return(self.value(e)?.0),
                (None, _) => return Err(err(*pos, "an expression must return a value")),
            },
            S::Foreach(name, it, body, pos) => {
                let (itn, ity) = self.value(it)?;
                let elem = match ity {
                    Ty::Str => Ty::Char,
                    Ty::Json => Ty::Json,
                    _ => Ty::Any,
                };
                self.scoped(|me| {
                    let slot = me.declare(name, elem, *pos)?;
                    me.loops += 1;
                    let b = me.stmt(body);
                    me.loops -= 1;
                    Ok(Stmt::Foreach(slot, itn, Box::new(b?)))
                })?
            }
            S::While(c, body) => {
                let c = self.value(c)?.0;
                self.loops += 1;
                let b = self.scoped(|me| me.stmt(body));
                self.loops -= 1;
                Stmt::While(c, Box::new(b?))
            }
            S::DoWhile(body, c) => {
                self.loops += 1;
                let b = self.scoped(|me| me.stmt(body));
                self.loops -= 1;
                let c = self.value(c)?.0;
                Stmt::DoWhile(Box::new(b?), c)
            }
            S::For(init, cond, step, body) => self.scoped(|me| {
                let mut i = Vec::new();
                for s in init {
                    i.push(me.stmt(s)?);
                }
                let c = match cond {
                    Some(c) => Some(me.value(c)?.0),
                    None => None,
                };
                let mut st = Vec::new();
                for e in step {
                    st.push(me.value(e)?.0);
                }
                me.loops += 1;
                let b = me.scoped(|me2| me2.stmt(body));
                me.loops -= 1;
                Ok(Stmt::For(i, c, st, Box::new(b?)))
            })?,
            S::Break(pos) => {
                if self.loops == 0 {
                    return Err(err(*pos, "no enclosing loop out of which to break"));
                }
                Stmt::Break
            }
            S::Continue(pos) => {
                if self.loops == 0 {
                    return Err(err(*pos, "no enclosing loop to continue"));
                }
                Stmt::Continue
            }
            S::Throw(e, _) => Stmt::Throw(match e {
                Some(e) => Some(self.value(e)?.0),
                None => None,
            }),
            S::Try(body, catch, fin) => {
                let b = self.scoped(|me| me.stmt(body))?;
                let c = match catch {
                    Some((name, cbody)) => Some(self.scoped(|me| {
                        let slot = match name {
                            Some(n) => Some(me.declare(n, Ty::Any, 0)?),
                            None => None,
                        };
                        Ok((slot, Box::new(me.stmt(cbody)?)))
                    })?),
                    None => None,
                };
                let f = match fin {
                    Some(f) => Some(Box::new(self.scoped(|me| me.stmt(f))?)),
                    None => None,
                };
                Stmt::Try(Box::new(b), c, f)
            }
        })
    }
}
