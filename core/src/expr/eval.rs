//! The evaluator: walks the compiled tree against a request's context,
//! read-only. This file holds the generic part (statements, locals, local
//! functions, dispatch to the areas, assignment); operators are in `ops`,
//! and each .NET area's behaviour in `area::*`.

use std::sync::Arc;

use bytes::Bytes;

use super::area::context::ExprContext;
use super::area::{
    certificate, collections, context, convert, crypto, datetime, json, jwt, math, regex, strings,
};
use super::ast::BinOp;
use super::compile::Compiled;
use super::encoding;
use super::node::*;
use super::ops::{binop, compare, compare_result, equals, num, truthy, unary, Num};
use super::value::{Obj, Value};
use super::EvalError;

/// C#'s `NullReferenceException` message.
pub(crate) const NRE: &str = "Object reference not set to an instance of an object.";

/// Loop iterations and lambda calls allowed per evaluation.
const BUDGET: u64 = 1_000_000;

/// Longest string or array an evaluation may build (bytes or items).
pub(crate) const MAX_LEN: usize = 16 << 20;

/// An evaluation result.
pub(crate) type R<T> = Result<T, EvalError>;

/// A run-time failure with `msg`.
pub(crate) fn fail<T>(msg: impl Into<String>) -> R<T> {
    Err(EvalError {
        message: msg.into(),
    })
}

/// C#'s `NullReferenceException`, naming what was null.
pub(crate) fn nre<T>(what: &str) -> R<T> {
    fail(format!("{NRE} ({what} is null)"))
}

enum Flow {
    Normal,
    Return(Value),
    Break,
    Continue,
}

/// Local function calls nested deeper than this fail (recursion included):
/// each level may nest expressions as deep as the parser allows, and the
/// evaluator must stay within a small thread stack.
const MAX_CALL_DEPTH: usize = 16;

/// Per-evaluation state.
pub struct Frame<'c> {
    pub(crate) ctx: &'c dyn ExprContext,
    funcs: &'c [Func],
    pub(crate) locals: Vec<Value>,
    budget: u64,
    rng: u64,
    depth: usize,
}

/// Evaluates a compiled program; `seed` mixes into `Guid.NewGuid()`/`Random`.
pub fn run(c: &Compiled, ctx: &dyn ExprContext, seed: u64) -> R<Value> {
    let mut rng = seed
        ^ ctx.rng_seed()
        ^ encoding::fnv1a(ctx.request_id().as_bytes())
        ^ (ctx.now_unix_ms() as u64).rotate_left(17)
        ^ (ctx.elapsed().as_nanos() as u64).rotate_left(33)
        ^ (ctx.variables().len() as u64).rotate_left(47);
    encoding::splitmix64(&mut rng);
    let mut f = Frame {
        ctx,
        funcs: &c.funcs,
        locals: vec![Value::Null; c.slots as usize],
        budget: BUDGET,
        rng,
        depth: 0,
    };
    match &c.program {
        Program::Expr(n) => f.eval(n),
        Program::Block(stmts) => match f.block(stmts)? {
            Flow::Return(v) => Ok(v),
            _ => fail("the expression ended without returning a value"),
        },
    }
}

/// Fails when a result would be longer than `MAX_LEN`.
pub(crate) fn check_len(n: usize) -> R<()> {
    if n > MAX_LEN {
        return fail("the result is too large");
    }
    Ok(())
}

/// The error for a member the value's type does not have.
pub(crate) fn no_member<T>(v: &Value, m: Member) -> R<T> {
    fail(format!("unsupported member '{m:?}' on {}", v.type_name()))
}

/// A string argument (a `char` or a JSON string will do).
pub(crate) fn str_arg(v: &Value, what: &str) -> R<Arc<str>> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        Value::Char(c) => Ok(c.to_string().into()),
        Value::Json(j) if j.is_string() => Ok(j.as_str().unwrap_or_default().into()),
        Value::Null => fail(format!("Value cannot be null. (Parameter '{what}')")),
        other => fail(format!(
            "expected a string for '{what}', got {}",
            other.type_name()
        )),
    }
}

/// An integer argument.
pub(crate) fn int_arg(v: &Value, what: &str) -> R<i64> {
    match num(v) {
        Some(Num::I(i)) => Ok(i),
        Some(Num::F(f)) if f.fract() == 0.0 => Ok(convert::f64_to_i64(f)),
        _ => fail(format!(
            "expected an integer for '{what}', got {}",
            v.type_name()
        )),
    }
}

/// A number argument.
pub(crate) fn f64_arg(v: &Value, what: &str) -> R<f64> {
    match num(v) {
        Some(n) => Ok(n.f()),
        None => fail(format!(
            "expected a number for '{what}', got {}",
            v.type_name()
        )),
    }
}

/// A non-negative index argument.
pub(crate) fn idx_arg(v: &Value, what: &str) -> R<usize> {
    let i = int_arg(v, what)?;
    usize::try_from(i).map_err(|_| EvalError {
        message: format!("Index was out of range. Must be non-negative. (Parameter '{what}')"),
    })
}

/// A `byte[]` argument (an array of integers will do).
pub(crate) fn bytes_arg(v: &Value) -> R<Bytes> {
    match v {
        Value::Bytes(b) => Ok(b.clone()),
        Value::Array(_) => match convert::cast(v.clone(), CastTy::Bytes, false)? {
            Value::Bytes(b) => Ok(b),
            _ => fail("expected a byte[]"),
        },
        Value::Null => fail("Value cannot be null. (Parameter 'bytes')"),
        other => fail(format!("expected a byte[], got {}", other.type_name())),
    }
}

/// Whether a `StringComparison` (or `bool`) argument asks to ignore case.
pub(crate) fn ignore_case(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Int(code)) => code % 2 == 1,
        Some(Value::Bool(b)) => *b,
        _ => false,
    }
}

/// An array value.
pub(crate) fn arr(items: Vec<Value>) -> Value {
    Value::Array(Arc::new(items))
}

/// An array of strings.
pub(crate) fn strs(items: Vec<String>) -> Value {
    arr(items.into_iter().map(|s| Value::Str(s.into())).collect())
}

/// A string value.
pub(crate) fn s(v: impl Into<Arc<str>>) -> Value {
    Value::Str(v.into())
}

impl<'c> Frame<'c> {
    fn tick(&mut self) -> R<()> {
        if self.budget == 0 {
            return fail("the expression ran too long (loop limit reached)");
        }
        self.budget -= 1;
        Ok(())
    }

    /// The evaluation's next pseudo-random number.
    pub(crate) fn next_random(&mut self) -> u64 {
        encoding::splitmix64(&mut self.rng)
    }

    /// Sets a local.
    pub(crate) fn set_local(&mut self, slot: u32, v: Value) {
        if let Some(l) = self.locals.get_mut(slot as usize) {
            *l = v;
        }
    }

    /// A local's value (null when unset).
    pub(crate) fn local(&self, slot: u32) -> Value {
        self.locals
            .get(slot as usize)
            .cloned()
            .unwrap_or(Value::Null)
    }

    // ---- statements ----

    fn block(&mut self, stmts: &[Stmt]) -> R<Flow> {
        for st in stmts {
            match self.stmt(st)? {
                Flow::Normal => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Normal)
    }

    fn stmt(&mut self, st: &Stmt) -> R<Flow> {
        match st {
            Stmt::Expr(n) => {
                self.eval(n)?;
                Ok(Flow::Normal)
            }
            Stmt::Set(slot, n) => {
                let v = self.eval(n)?;
                self.set_local(*slot, v);
                Ok(Flow::Normal)
            }
            Stmt::If(c, a, b) => {
                let c = self.eval(c)?;
                if truthy(&c)? {
                    self.stmt(a)
                } else if let Some(b) = b {
                    self.stmt(b)
                } else {
                    Ok(Flow::Normal)
                }
            }
            Stmt::Block(b) => self.block(b),
            Stmt::Return(n) => Ok(Flow::Return(self.eval(n)?)),
            Stmt::Foreach(slot, it, body) => self.foreach(*slot, it, body),
            Stmt::While(c, body) => {
                loop {
                    self.tick()?;
                    let cv = self.eval(c)?;
                    if !truthy(&cv)? {
                        break;
                    }
                    match self.stmt(body)? {
                        Flow::Break => break,
                        Flow::Return(v) => return Ok(Flow::Return(v)),
                        _ => {}
                    }
                }
                Ok(Flow::Normal)
            }
            Stmt::DoWhile(body, c) => {
                loop {
                    self.tick()?;
                    match self.stmt(body)? {
                        Flow::Break => break,
                        Flow::Return(v) => return Ok(Flow::Return(v)),
                        _ => {}
                    }
                    let cv = self.eval(c)?;
                    if !truthy(&cv)? {
                        break;
                    }
                }
                Ok(Flow::Normal)
            }
            Stmt::For(init, c, step, body) => {
                for i in init {
                    self.stmt(i)?;
                }
                loop {
                    self.tick()?;
                    if let Some(c) = c {
                        let cv = self.eval(c)?;
                        if !truthy(&cv)? {
                            break;
                        }
                    }
                    match self.stmt(body)? {
                        Flow::Break => break,
                        Flow::Return(v) => return Ok(Flow::Return(v)),
                        _ => {}
                    }
                    for s in step {
                        self.eval(s)?;
                    }
                }
                Ok(Flow::Normal)
            }
            Stmt::Break => Ok(Flow::Break),
            Stmt::Continue => Ok(Flow::Continue),
            Stmt::Throw(e) => {
                let msg = match e {
                    Some(e) => match self.eval(e)? {
                        Value::Object(o) => match &*o {
                            Obj::KeyValue(_, m) => m.to_display_string(),
                            _ => "Exception of type 'System.Exception' was thrown.".into(),
                        },
                        other => other.to_display_string(),
                    },
                    None => "Exception of type 'System.Exception' was thrown.".into(),
                };
                fail(msg)
            }
            Stmt::Try(body, catch, fin) => {
                let r = self.stmt(body);
                let r = match (r, catch) {
                    (Err(e), Some((slot, cbody))) => {
                        if self.budget == 0 {
                            Err(e)
                        } else {
                            if let Some(slot) = slot {
                                self.set_local(
                                    *slot,
                                    Value::Object(Arc::new(Obj::KeyValue(
                                        "Exception".into(),
                                        s(e.message),
                                    ))),
                                );
                            }
                            self.stmt(cbody)
                        }
                    }
                    (r, _) => r,
                };
                if let Some(f) = fin {
                    match self.stmt(f)? {
                        Flow::Normal => {}
                        other => return Ok(other),
                    }
                }
                r
            }
        }
    }

    fn foreach(&mut self, slot: u32, it: &Node, body: &Stmt) -> R<Flow> {
        let v = self.eval(it)?;
        for item in collections::items(&v)? {
            self.tick()?;
            self.set_local(slot, item);
            match self.stmt(body)? {
                Flow::Break => break,
                Flow::Return(v) => return Ok(Flow::Return(v)),
                _ => {}
            }
        }
        Ok(Flow::Normal)
    }

    // ---- expressions ----

    /// Evaluates a node.
    pub fn eval(&mut self, n: &Node) -> R<Value> {
        match n {
            Node::Const(v) => Ok(v.clone()),
            Node::Local(slot) => Ok(self.local(*slot)),
            Node::Ctx(p) => self.ctx_prop(*p),
            Node::CtxDict(d, op, args, t) => self.ctx_dict(*d, *op, args, *t),
            Node::BodyAs(src, t) => self.body_as(src, *t),
            Node::BodyForm(src) => self.body_form(src),
            Node::Member(b, m) => {
                let v = self.eval(b)?;
                member(v, *m)
            }
            Node::Method(b, m, args, t) => self.method(b, *m, args, *t),
            Node::Static(f, args) => self.static_fn(*f, args),
            Node::TryParse(t, sn, slot) => self.try_parse(*t, sn, *slot),
            Node::TryGetValue(b, k, slot) => self.try_get_value(b, k, *slot),
            Node::Index(b, k) => {
                let b = self.eval(b)?;
                let k = self.eval(k)?;
                collections::index_value(&b, &k)
            }
            Node::CondAccess(t, slot, rest) => {
                let v = self.eval(t)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                self.set_local(*slot, v);
                self.eval(rest)
            }
            Node::Unary(op, x) => {
                let v = self.eval(x)?;
                unary(*op, v)
            }
            Node::Binary(op, a, b) => self.binary(*op, a, b),
            Node::Cond(c, a, b) => {
                let cv = self.eval(c)?;
                if truthy(&cv)? {
                    self.eval(a)
                } else {
                    self.eval(b)
                }
            }
            Node::Cast(t, nullable, x) => {
                let v = self.eval(x)?;
                convert::cast(v, *t, *nullable)
            }
            Node::Is(t, x, slot, negate) => {
                let v = self.eval(x)?;
                let r = match t {
                    None => v.is_null(),
                    Some(t) => convert::is_type(&v, *t),
                };
                if r {
                    if let Some(slot) = slot {
                        self.set_local(*slot, v);
                    }
                }
                Ok(Value::Bool(r != *negate))
            }
            Node::As(t, x) => {
                let v = self.eval(x)?;
                Ok(if convert::is_type(&v, *t) {
                    v
                } else {
                    Value::Null
                })
            }
            Node::Interp(parts) => self.interp(parts),
            Node::New(c, args, init) => self.construct(*c, args, init),
            Node::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    out.push(self.eval(i)?);
                }
                Ok(arr(out))
            }
            Node::ArraySized(bytes, size) => {
                let n = self.eval(size)?;
                let n = idx_arg(&n, "size")?;
                check_len(n)?;
                Ok(if *bytes {
                    Value::Bytes(Bytes::from(vec![0u8; n]))
                } else {
                    arr(vec![Value::Null; n])
                })
            }
            Node::Anon(members) => {
                let mut m = serde_json::Map::new();
                for (k, v) in members {
                    let v = self.eval(v)?;
                    m.insert(k.to_string(), v.to_json());
                }
                Ok(super::json::token(serde_json::Value::Object(m)))
            }
            Node::Lambda(..) => fail("a lambda expression is not a value"),
            Node::Assign(place, op, v) => self.assign(place, *op, v),
            Node::IncDec(place, inc, prefix) => self.inc_dec(place, *inc, *prefix),
            Node::Mut(place, op, args) => self.mutate(place, *op, args),
            Node::Nop(args) => {
                for a in args {
                    self.eval(a)?;
                }
                Ok(Value::Null)
            }
            Node::CallFn(idx, args) => self.call_fn(*idx, args),
        }
    }

    /// Calls a local function: its own slots are saved and cleared, then
    /// restored, so recursive calls do not see each other's locals; captured
    /// outer locals are shared. Parameters changed in place (not reassigned)
    /// are written back to local arguments, as .NET references would show.
    pub(crate) fn call_fn(&mut self, idx: u32, args: &[Node]) -> R<Value> {
        let funcs = self.funcs;
        let Some(f) = funcs.get(idx as usize) else {
            return fail("internal error: unknown local function");
        };
        self.tick()?;
        if self.depth >= MAX_CALL_DEPTH {
            return fail(format!(
                "local function calls nested too deeply (more than {MAX_CALL_DEPTH})"
            ));
        }
        let vals = self.eval_args(args)?;
        let (start, end) = (f.slots.0 as usize, f.slots.1 as usize);
        let saved: Vec<Value> = match self.locals.get_mut(start..end) {
            Some(own) => own
                .iter_mut()
                .map(|v| std::mem::replace(v, Value::Null))
                .collect(),
            None => return fail("internal error: local function slots"),
        };
        for (slot, v) in f.params.iter().zip(&vals) {
            self.set_local(*slot, v.clone());
        }
        self.depth += 1;
        let r = self.stmt(&f.body);
        self.depth -= 1;
        let finals: Vec<Value> = f.params.iter().map(|p| self.local(*p)).collect();
        if let Some(own) = self.locals.get_mut(start..end) {
            for (l, v) in own.iter_mut().zip(saved) {
                *l = v;
            }
        }
        let flow = r?;
        for (((arg, new), old), wb) in args.iter().zip(finals).zip(&vals).zip(&f.write_back) {
            if let (true, Node::Local(slot)) = (*wb, arg) {
                if !same_ref(&new, old) {
                    self.set_local(*slot, new);
                }
            }
        }
        match flow {
            Flow::Return(v) => Ok(v),
            _ => Ok(Value::Null),
        }
    }

    /// A binary operator; `&&`, `||` and `??` short-circuit.
    pub(crate) fn binary(&mut self, op: BinOp, a: &Node, b: &Node) -> R<Value> {
        match op {
            BinOp::And => {
                let l = self.eval(a)?;
                if !truthy(&l)? {
                    return Ok(Value::Bool(false));
                }
                let r = self.eval(b)?;
                Ok(Value::Bool(truthy(&r)?))
            }
            BinOp::Or => {
                let l = self.eval(a)?;
                if truthy(&l)? {
                    return Ok(Value::Bool(true));
                }
                let r = self.eval(b)?;
                Ok(Value::Bool(truthy(&r)?))
            }
            BinOp::Coalesce => {
                let l = self.eval(a)?;
                if l.is_null() {
                    self.eval(b)
                } else {
                    Ok(l)
                }
            }
            _ => {
                let l = self.eval(a)?;
                let r = self.eval(b)?;
                binop(op, &l, &r)
            }
        }
    }

    fn interp(&mut self, parts: &[INode]) -> R<Value> {
        let mut out = String::new();
        for p in parts {
            match p {
                INode::Lit(t) => out.push_str(t),
                INode::Hole(n, al, fmt) => {
                    let v = self.eval(n)?;
                    let text = match fmt {
                        Some(f) => super::strings::format_value(&v, f)
                            .map_err(|m| EvalError { message: m })?,
                        None => v.to_display_string(),
                    };
                    match al {
                        Some(a) => out.push_str(&super::strings::align(text, *a)),
                        None => out.push_str(&text),
                    }
                }
            }
            check_len(out.len())?;
        }
        Ok(s(out))
    }

    // ---- methods ----

    /// Evaluates call arguments in order.
    pub(crate) fn eval_args(&mut self, args: &[Node]) -> R<Vec<Value>> {
        let mut out = Vec::with_capacity(args.len());
        for a in args {
            out.push(self.eval(a)?);
        }
        Ok(out)
    }

    /// Calls a lambda argument with `args` (counts against the budget).
    pub(crate) fn call_lambda(&mut self, f: &Node, args: &[Value]) -> R<Value> {
        self.tick()?;
        match f {
            Node::Lambda(slots, body) => {
                for (slot, v) in slots.iter().zip(args) {
                    self.set_local(*slot, v.clone());
                }
                self.eval(body)
            }
            _ => fail("expected a lambda expression"),
        }
    }

    /// An instance method call: LINQ, or dispatch to the area of the receiver.
    pub(crate) fn method(
        &mut self,
        b: &Node,
        m: Method,
        args: &[Node],
        t: Option<CastTy>,
    ) -> R<Value> {
        let recv = self.eval(b)?;
        if recv.is_null() {
            return nre(&format!("the target of '{m:?}'"));
        }
        let has_lambda = args.iter().any(|a| matches!(a, Node::Lambda(..)));
        if has_lambda || (collections::is_linq(m) && !matches!(recv, Value::Str(_))) {
            return self.linq(recv, m, args);
        }
        let a = self.eval_args(args)?;
        match &recv {
            Value::Str(st) => strings::str_method(st, m, &a),
            Value::Json(j) => json::json_method(j, m, &a, t),
            Value::DateTime(ms) => datetime::datetime_method(*ms, m, &a),
            Value::TimeSpan(ms) => datetime::timespan_method(*ms, m, &a),
            Value::Dict(d) => collections::dict_method(d, &recv, m, &a),
            Value::Guid(g) => math::guid_method(*g, &recv, m, &a),
            Value::Bytes(data) if matches!(m, Method::Encrypt | Method::Decrypt) => {
                crypto::encrypt_decrypt(data, m == Method::Encrypt, &a)
            }
            Value::Object(o) => match &**o {
                Obj::Regex(_) | Obj::Match(_) => regex::object_method(o, &recv, m, &a),
                Obj::Aes(_) | Obj::Hasher(..) => crypto::object_method(o, &recv, m, &a),
                Obj::Random(seed) if matches!(m, Method::Next | Method::NextDouble) => {
                    self.random_method(*seed, m, &a)
                }
                Obj::Certificate(c) => certificate::method(self.ctx, c, &recv, m, &a),
                Obj::Xml(x) => super::area::xml::method(x, &recv, m, &a),
                _ => common_method(&recv, m, &a),
            },
            _ => common_method(&recv, m, &a),
        }
    }

    // ---- static functions ----

    fn static_fn(&mut self, f: StaticFn, args: &[Node]) -> R<Value> {
        use StaticFn as F;
        match f {
            F::Now => return Ok(datetime::now(self.ctx.now_unix_ms())),
            F::Today => return Ok(datetime::today(self.ctx.now_unix_ms())),
            F::NewGuid => return Ok(self.new_guid()),
            F::ArrayExists => return self.array_exists(args),
            _ => {}
        }
        let a = self.eval_args(args)?;
        match f {
            F::IsNullOrEmpty
            | F::IsNullOrWhiteSpace
            | F::Format
            | F::Join
            | F::Concat
            | F::StringEquals
            | F::StringCompare
            | F::CharIsDigit
            | F::CharIsLetter
            | F::CharIsWhiteSpace
            | F::CharIsLetterOrDigit
            | F::CharIsUpper
            | F::CharIsLower => strings::call_static(f, &a),
            F::Parse(_)
            | F::ConvertTo(_)
            | F::ToBase64
            | F::FromBase64
            | F::GetBytes
            | F::GetString
            | F::UriEscape
            | F::UriUnescape
            | F::UrlEncode
            | F::UrlDecode
            | F::HtmlEncode
            | F::HtmlDecode
            | F::BitConverterString
            | F::BitConverterInt(..)
            | F::ToHex(_)
            | F::FromHex => convert::call_static(f, &a),
            F::FromUnixSeconds | F::FromUnixMilliseconds | F::TimeSpanFrom(_) => {
                datetime::call_static(f, &a)
            }
            F::MathMin
            | F::MathMax
            | F::MathAbs
            | F::MathRound
            | F::MathFloor
            | F::MathCeiling
            | F::MathPow
            | F::MathSqrt => math::call_static(f, &a),
            F::JsonParse(_) | F::FromObject | F::Serialize | F::Deserialize => {
                json::call_static(f, &a)
            }
            F::ArrayIndexOf => collections::call_static(f, &a),
            F::HashCreate(_) | F::HashData(_) | F::HmacData(_) | F::AesCreate => {
                crypto::call_static(f, &a)
            }
            F::Regex(_) | F::RegexEscape | F::RegexUnescape => regex::call_static(f, &a),
            F::XmlParse(_) | F::XNameGet | F::XNamespaceGet => super::area::xml::call_static(f, &a),
            F::Now | F::Today | F::NewGuid | F::ArrayExists => {
                fail("internal error: unexpected static function")
            }
        }
    }

    /// `new T(args) { init }`: dispatch to the area of `T`.
    pub(crate) fn construct(&mut self, c: Ctor, args: &[Node], init: &[Node]) -> R<Value> {
        let a = self.eval_args(args)?;
        let mut items = Vec::with_capacity(init.len());
        for i in init {
            items.push(self.eval(i)?);
        }
        match c {
            Ctor::JObject | Ctor::JArray | Ctor::JProperty | Ctor::JValue => {
                json::construct(c, &a, &items)
            }
            Ctor::DateTime | Ctor::TimeSpan => datetime::construct(c, &a),
            Ctor::Guid => math::construct_guid(&a),
            Ctor::Random => self.new_random(&a),
            Ctor::Uri => convert::construct_uri(&a),
            Ctor::List | Ctor::Dictionary => collections::construct(c, &a, items),
            Ctor::String => strings::construct(&a),
            Ctor::Hasher(..) | Ctor::Aes => crypto::construct(c, &a),
            Ctor::Regex => regex::construct(&a),
            Ctor::Exception => {
                let msg = a
                    .first()
                    .map(|v| v.to_display_string())
                    .unwrap_or_else(|| "Exception of type 'System.Exception' was thrown.".into());
                Ok(Value::Object(Arc::new(Obj::KeyValue(
                    "Exception".into(),
                    s(msg),
                ))))
            }
        }
    }
}

/// Whether a parameter still holds the very object passed in (nothing
/// changed it in place); values without identity always do.
fn same_ref(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Json(x), Value::Json(y)) => Arc::ptr_eq(x, y),
        (Value::Array(x), Value::Array(y)) => Arc::ptr_eq(x, y),
        (Value::Dict(x), Value::Dict(y)) => Arc::ptr_eq(x, y),
        (Value::Bytes(x), Value::Bytes(y)) => x.as_ptr() == y.as_ptr() && x.len() == y.len(),
        (Value::Json(_) | Value::Array(_) | Value::Dict(_) | Value::Bytes(_), _) => false,
        _ => true,
    }
}

/// Members of values.
pub(crate) fn member(v: Value, m: Member) -> R<Value> {
    use Member as M;
    // `Nullable<T>.HasValue` / `.Value`.
    if m == M::HasValue {
        return Ok(Value::Bool(!v.is_null()));
    }
    if m == M::Value
        && matches!(
            v,
            Value::Int(_)
                | Value::Double(_)
                | Value::Bool(_)
                | Value::Char(_)
                | Value::DateTime(_)
                | Value::TimeSpan(_)
                | Value::Guid(_)
        )
    {
        return Ok(v);
    }
    match &v {
        Value::Null => nre(&format!("the target of '{m:?}'")),
        Value::Str(st) => strings::member(st, &v, m),
        Value::Array(_) | Value::Bytes(_) | Value::Dict(_) => collections::member(&v, m),
        Value::Json(j) => json::member(j, &v, m),
        Value::DateTime(_) | Value::TimeSpan(_) => datetime::member(&v, m),
        Value::Response(r) => context::response_member(r, &v, m),
        Value::Jwt(j) => jwt::member(j, &v, m),
        Value::Object(o) => match &**o {
            Obj::Property(k, x) => json::property_member(k, x, &v, m),
            Obj::Basic { user_id, password } => jwt::basic_member(user_id, password, &v, m),
            Obj::KeyValue(k, x) => collections::key_value_member(k, x, &v, m),
            Obj::Uri(u) => convert::uri_member(u, m),
            Obj::Hasher(..) | Obj::Aes(_) => crypto::object_member(o, &v, m),
            Obj::Match(_) | Obj::Group(_) | Obj::Groups(_) => regex::object_member(o, &v, m),
            Obj::Certificate(c) => certificate::member(c, &v, m),
            Obj::X500Name(n) => certificate::name_member(n, &v, m),
            Obj::Xml(x) => super::area::xml::member(x, &v, m),
            Obj::Random(_) | Obj::Regex(_) => no_member(&v, m),
        },
        _ => no_member(&v, m),
    }
}

/// `ToString`, `Equals`, `GetHashCode`, `CompareTo`: the methods of every value.
pub(crate) fn common_method(v: &Value, m: Method, a: &[Value]) -> R<Value> {
    match m {
        // (`JToken.ToString(Formatting)` is the JSON area's.)
        Method::ToString => match a.first() {
            Some(f) => {
                let f = str_arg(f, "format")?;
                super::strings::format_value(v, &f)
                    .map(s)
                    .map_err(|m| EvalError { message: m })
            }
            None => Ok(s(v.to_display_string())),
        },
        Method::Equals => Ok(Value::Bool(equals(v, a.first().unwrap_or(&Value::Null)))),
        Method::GetHashCode => Ok(Value::Int(
            encoding::fnv1a(v.to_display_string().as_bytes()) as i32 as i64,
        )),
        Method::CompareTo => {
            let o = a.first().unwrap_or(&Value::Null);
            if o.is_null() {
                return Ok(Value::Int(1));
            }
            Ok(Value::Int(compare_result(compare(v, o)?)))
        }
        _ => fail(format!("unsupported method '{m:?}' on {}", v.type_name())),
    }
}
