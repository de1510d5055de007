//! Recursive-descent parser for the C# subset: tokens to `ast`.

use super::ast::{Arg, BinOp, IPart, LocalFn, TypeRef, UnOp, E, EK, S};
use super::lexer::{tokenize, InterpPart, Tok, Token};
use super::ExprError;

/// A parsed expression text: `@(expr)` or `@{ statements }`.
#[derive(Debug, Clone, PartialEq)]
pub enum Program {
    /// `@( ... )`.
    Expr(E),
    /// `@{ ... }`.
    Block(Vec<S>),
}

/// Deepest nesting accepted, so hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 128;

/// C# keywords that cannot be names.
const KEYWORDS: &[&str] = &[
    "new",
    "null",
    "true",
    "false",
    "this",
    "base",
    "typeof",
    "default",
    "is",
    "as",
    "var",
    "if",
    "else",
    "return",
    "foreach",
    "in",
    "for",
    "while",
    "do",
    "try",
    "catch",
    "finally",
    "throw",
    "break",
    "continue",
    "using",
    "out",
    "ref",
    "switch",
    "case",
    "checked",
    "unchecked",
    "nameof",
    "const",
    "sizeof",
    "lock",
    "goto",
    "yield",
    "static",
    "void",
    "await",
    "stackalloc",
    "class",
    "struct",
    "delegate",
    "operator",
    "event",
    "fixed",
    "unsafe",
    "volatile",
];

/// Predefined type keywords.
pub const PREDEFINED: &[&str] = &[
    "string", "int", "long", "bool", "double", "float", "decimal", "char", "byte", "sbyte",
    "short", "ushort", "uint", "ulong", "object", "dynamic",
];

fn is_keyword(s: &str) -> bool {
    KEYWORDS.contains(&s)
}

fn err(offset: usize, message: impl Into<String>) -> ExprError {
    ExprError {
        offset,
        message: message.into(),
    }
}

/// Parses the whole expression text (starting with `@`).
pub fn parse(src: &str) -> Result<Program, ExprError> {
    let lead = src.len() - src.trim_start().len();
    let body = &src[lead..];
    if !(body.starts_with("@(") || body.starts_with("@{")) {
        return Err(err(lead, "an expression starts with '@(' or '@{'"));
    }
    let toks = tokenize(src, lead + 1)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
    };
    let prog = if p.eat("(") {
        let e = p.expr()?;
        p.expect(")")?;
        Program::Expr(e)
    } else {
        p.expect("{")?;
        let mut stmts = Vec::new();
        while !p.is("}") {
            if p.at_eof() {
                return Err(err(p.pos(), "expected '}' at the end of the block"));
            }
            stmts.push(p.statement()?);
        }
        p.expect("}")?;
        Program::Block(stmts)
    };
    if !p.at_eof() {
        return Err(err(p.pos(), "unexpected text after the expression"));
    }
    Ok(prog)
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    depth: usize,
}

impl Parser {
    fn tok(&self) -> &Tok {
        self.toks.get(self.i).map(|t| &t.tok).unwrap_or(&Tok::Eof)
    }

    fn tok_at(&self, n: usize) -> &Tok {
        self.toks
            .get(self.i + n)
            .map(|t| &t.tok)
            .unwrap_or(&Tok::Eof)
    }

    fn pos(&self) -> usize {
        self.toks
            .get(self.i)
            .or(self.toks.last())
            .map(|t| t.start)
            .unwrap_or(0)
    }

    fn at_eof(&self) -> bool {
        matches!(self.tok(), Tok::Eof)
    }

    fn is(&self, p: &str) -> bool {
        matches!(self.tok(), Tok::Punct(q) if *q == p)
    }

    fn is_at(&self, n: usize, p: &str) -> bool {
        matches!(self.tok_at(n), Tok::Punct(q) if *q == p)
    }

    fn is_kw(&self, k: &str) -> bool {
        matches!(self.tok(), Tok::Ident(s) if s == k)
    }

    fn advance(&mut self) {
        if self.i < self.toks.len() {
            self.i += 1;
        }
    }

    fn eat(&mut self, p: &str) -> bool {
        if self.is(p) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn eat_kw(&mut self, k: &str) -> bool {
        if self.is_kw(k) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, p: &str) -> Result<(), ExprError> {
        if self.eat(p) {
            Ok(())
        } else {
            Err(err(self.pos(), format!("expected '{p}'{}", self.found())))
        }
    }

    fn found(&self) -> String {
        match self.tok() {
            Tok::Eof => " but the expression ended".into(),
            Tok::Ident(s) => format!(" but found '{s}'"),
            Tok::Punct(p) => format!(" but found '{p}'"),
            _ => " but found a literal".into(),
        }
    }

    fn ident(&mut self) -> Result<String, ExprError> {
        match self.tok() {
            Tok::Ident(s) if !is_keyword(s) => {
                let s = s.clone();
                self.advance();
                Ok(s)
            }
            _ => Err(err(self.pos(), format!("expected a name{}", self.found()))),
        }
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(self.pos(), "expression is nested too deeply"));
        }
        Ok(())
    }

    // ---- types ----

    /// Parses a type if one is here; restores the position otherwise.
    fn try_type(&mut self) -> Option<TypeRef> {
        let save = self.i;
        let r = self.type_inner();
        if r.is_none() {
            self.i = save;
        }
        r
    }

    fn type_inner(&mut self) -> Option<TypeRef> {
        let pos = self.pos();
        let mut name = match self.tok() {
            Tok::Ident(s) if !is_keyword(s) => s.clone(),
            _ => return None,
        };
        self.advance();
        while self.is(".") && matches!(self.tok_at(1), Tok::Ident(s) if !is_keyword(s)) {
            self.advance();
            if let Tok::Ident(s) = self.tok() {
                name.push('.');
                name.push_str(s);
            }
            self.advance();
        }
        let mut args = Vec::new();
        if self.is("<") {
            self.advance();
            loop {
                args.push(self.type_inner()?);
                if self.eat(",") {
                    continue;
                }
                if self.eat(">") {
                    break;
                }
                return None;
            }
        }
        let mut nullable = false;
        if self.is("?") && !self.starts_expression_at(1) {
            self.advance();
            nullable = true;
        }
        let mut arrays = 0;
        while self.is("[") && self.is_at(1, "]") {
            self.advance();
            self.advance();
            arrays += 1;
        }
        Some(TypeRef {
            name,
            args,
            arrays,
            nullable,
            pos,
        })
    }

    /// Whether the token `n` ahead can start an expression (to tell `T? x` from `a ? b : c`).
    fn starts_expression_at(&self, n: usize) -> bool {
        match self.tok_at(n) {
            Tok::Ident(s) => {
                !matches!(self.tok_at(n + 1), Tok::Punct("=" | ";" | ",")) || s == "null"
            }
            Tok::Eof => false,
            Tok::Punct(p) => matches!(*p, "(" | "!" | "-" | "+" | "~"),
            _ => true,
        }
    }

    // ---- statements ----

    fn block(&mut self) -> Result<S, ExprError> {
        self.expect("{")?;
        let mut stmts = Vec::new();
        while !self.is("}") {
            if self.at_eof() {
                return Err(err(self.pos(), "expected '}'"));
            }
            stmts.push(self.statement()?);
        }
        self.advance();
        Ok(S::Block(stmts))
    }

    fn statement(&mut self) -> Result<S, ExprError> {
        self.enter()?;
        let r = self.statement_inner();
        self.depth -= 1;
        r
    }

    fn statement_inner(&mut self) -> Result<S, ExprError> {
        let pos = self.pos();
        if self.is("{") {
            return self.block();
        }
        if self.eat(";") {
            return Ok(S::Empty);
        }
        let kw = match self.tok() {
            Tok::Ident(s) => s.clone(),
            _ => String::new(),
        };
        match kw.as_str() {
            "if" => {
                self.advance();
                self.expect("(")?;
                let c = self.expr()?;
                self.expect(")")?;
                let then = self.statement()?;
                let els = if self.eat_kw("else") {
                    Some(Box::new(self.statement()?))
                } else {
                    None
                };
                return Ok(S::If(c, Box::new(then), els));
            }
            "return" => {
                self.advance();
                if self.eat(";") {
                    return Ok(S::Return(None, pos));
                }
                let e = self.expr()?;
                self.expect(";")?;
                return Ok(S::Return(Some(e), pos));
            }
            "foreach" => {
                self.advance();
                self.expect("(")?;
                if !self.eat_kw("var") && self.try_type().is_none() {
                    return Err(err(self.pos(), "expected a type in foreach"));
                }
                let name = self.ident()?;
                if !self.eat_kw("in") {
                    return Err(err(self.pos(), "expected 'in' in foreach"));
                }
                let it = self.expr()?;
                self.expect(")")?;
                let body = self.statement()?;
                return Ok(S::Foreach(name, it, Box::new(body), pos));
            }
            "while" => {
                self.advance();
                self.expect("(")?;
                let c = self.expr()?;
                self.expect(")")?;
                let body = self.statement()?;
                return Ok(S::While(c, Box::new(body)));
            }
            "do" => {
                self.advance();
                let body = self.statement()?;
                if !self.eat_kw("while") {
                    return Err(err(self.pos(), "expected 'while' after do"));
                }
                self.expect("(")?;
                let c = self.expr()?;
                self.expect(")")?;
                self.expect(";")?;
                return Ok(S::DoWhile(Box::new(body), c));
            }
            "for" => {
                self.advance();
                self.expect("(")?;
                let mut init = Vec::new();
                if !self.is(";") {
                    if let Some(d) = self.try_decl()? {
                        init.push(d);
                    } else {
                        loop {
                            init.push(S::Expr(self.expr()?));
                            if !self.eat(",") {
                                break;
                            }
                        }
                    }
                }
                self.expect(";")?;
                let cond = if self.is(";") {
                    None
                } else {
                    Some(self.expr()?)
                };
                self.expect(";")?;
                let mut step = Vec::new();
                if !self.is(")") {
                    loop {
                        step.push(self.expr()?);
                        if !self.eat(",") {
                            break;
                        }
                    }
                }
                self.expect(")")?;
                let body = self.statement()?;
                return Ok(S::For(init, cond, step, Box::new(body)));
            }
            "break" => {
                self.advance();
                self.expect(";")?;
                return Ok(S::Break(pos));
            }
            "continue" => {
                self.advance();
                self.expect(";")?;
                return Ok(S::Continue(pos));
            }
            "throw" => {
                self.advance();
                if self.eat(";") {
                    return Ok(S::Throw(None, pos));
                }
                let e = self.expr()?;
                self.expect(";")?;
                return Ok(S::Throw(Some(e), pos));
            }
            "try" => {
                self.advance();
                let body = self.block()?;
                let mut catch = None;
                if self.eat_kw("catch") {
                    let mut name = None;
                    if self.eat("(") {
                        if self.try_type().is_none() {
                            return Err(err(self.pos(), "expected an exception type"));
                        }
                        if let Tok::Ident(s) = self.tok() {
                            if !is_keyword(s) {
                                name = Some(s.clone());
                                self.advance();
                            }
                        }
                        self.expect(")")?;
                    }
                    if self.is_kw("when") {
                        return Err(err(
                            self.pos(),
                            "exception filters ('catch when') are not supported",
                        ));
                    }
                    catch = Some((name, Box::new(self.block()?)));
                    if self.is_kw("catch") {
                        return Err(err(
                            self.pos(),
                            "more than one catch clause is not supported",
                        ));
                    }
                }
                let finally = if self.eat_kw("finally") {
                    Some(Box::new(self.block()?))
                } else {
                    None
                };
                if catch.is_none() && finally.is_none() {
                    return Err(err(self.pos(), "expected 'catch' or 'finally'"));
                }
                return Ok(S::Try(Box::new(body), catch, finally));
            }
            "checked" | "unchecked" if self.is_at(1, "{") => {
                self.advance();
                return self.block();
            }
            "using" => {
                // `using (decl or expr) body` and `using var x = e;`: scoped
                // declarations (nothing here needs disposing).
                self.advance();
                if self.eat("(") {
                    let inner = match self.try_decl()? {
                        Some(d) => d,
                        None => S::Expr(self.expr()?),
                    };
                    self.expect(")")?;
                    let body = self.statement()?;
                    return Ok(S::Block(vec![inner, body]));
                }
                return match self.try_decl()? {
                    Some(d) => {
                        self.expect(";")?;
                        Ok(d)
                    }
                    None => Err(err(self.pos(), "expected a declaration after 'using'")),
                };
            }
            "switch" => return Err(err(pos, "switch statements are not supported")),
            "lock" | "goto" | "yield" => {
                return Err(err(pos, format!("'{kw}' statements are not supported")))
            }
            "const" => {
                self.advance();
                return match self.try_decl()? {
                    Some(d) => {
                        self.expect(";")?;
                        Ok(d)
                    }
                    None => Err(err(self.pos(), "expected a declaration after const")),
                };
            }
            "void" => {
                self.advance();
                return self.local_fn(None);
            }
            "static" => {
                self.advance();
                if self.eat_kw("void") {
                    return self.local_fn(None);
                }
                let Some(ret) = self.try_type() else {
                    return Err(err(self.pos(), "expected a local function after 'static'"));
                };
                return self.local_fn(Some(ret));
            }
            "async" => return Err(err(pos, "async local functions are not supported")),
            _ => {}
        }
        if let Some(f) = self.try_local_fn()? {
            return Ok(f);
        }
        if let Some(d) = self.try_decl()? {
            self.expect(";")?;
            return Ok(d);
        }
        let e = self.expr()?;
        self.expect(";")?;
        Ok(S::Expr(e))
    }

    /// `T Name(...) {` or `T Name(...) =>` at statement start: a local function.
    fn try_local_fn(&mut self) -> Result<Option<S>, ExprError> {
        let save = self.i;
        let Some(ret) = self.try_type() else {
            return Ok(None);
        };
        let named = matches!(self.tok(), Tok::Ident(s) if !is_keyword(s))
            && (self.is_at(1, "(") || self.is_at(1, "<"));
        if named {
            let mut j = 1;
            if self.is_at(1, "<") {
                return Err(err(self.pos(), "generic local functions are not supported"));
            }
            let mut depth = 0;
            loop {
                if self.is_at(j, "(") {
                    depth += 1;
                } else if self.is_at(j, ")") {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                } else if matches!(self.tok_at(j), Tok::Eof) {
                    break;
                }
                j += 1;
            }
            if self.is_at(j + 1, "{") || self.is_at(j + 1, "=>") {
                return self.local_fn(Some(ret)).map(Some);
            }
        }
        self.i = save;
        Ok(None)
    }

    /// The rest of a local function after its return type (`None`: `void`).
    fn local_fn(&mut self, ret: Option<TypeRef>) -> Result<S, ExprError> {
        let pos = self.pos();
        let name = self.ident()?;
        if self.is("<") {
            return Err(err(self.pos(), "generic local functions are not supported"));
        }
        self.expect("(")?;
        let mut params = Vec::new();
        if !self.eat(")") {
            loop {
                let ppos = self.pos();
                if let Tok::Ident(m) = self.tok() {
                    if matches!(m.as_str(), "ref" | "out" | "in" | "params" | "this") {
                        return Err(err(
                            ppos,
                            format!("'{m}' parameters are not supported in local functions"),
                        ));
                    }
                }
                let Some(t) = self.try_type() else {
                    return Err(err(ppos, "expected a parameter type"));
                };
                let pname = self.ident()?;
                if self.is("=") {
                    return Err(err(
                        self.pos(),
                        "optional parameters are not supported in local functions",
                    ));
                }
                params.push((t, pname, ppos));
                if self.eat(",") {
                    continue;
                }
                self.expect(")")?;
                break;
            }
        }
        let body = if self.is("=>") {
            let epos = self.pos();
            self.advance();
            let e = self.expr()?;
            self.expect(";")?;
            if ret.is_some() {
                S::Block(vec![S::Return(Some(e), epos)])
            } else {
                S::Block(vec![S::Expr(e)])
            }
        } else if self.is("{") {
            self.block()?
        } else {
            return Err(err(self.pos(), "expected '{' or '=>' after the parameters"));
        };
        Ok(S::LocalFn(Box::new(LocalFn {
            name,
            params,
            ret,
            body,
            pos,
        })))
    }

    /// `var x = e`, `T x = e, y` (without the `;`), if a declaration is here.
    fn try_decl(&mut self) -> Result<Option<S>, ExprError> {
        let save = self.i;
        let ty = if self.is_kw("var") && matches!(self.tok_at(1), Tok::Ident(s) if !is_keyword(s)) {
            self.advance();
            None
        } else {
            match self.try_type() {
                Some(t) => Some(t),
                None => return Ok(None),
            }
        };
        let is_decl = matches!(self.tok(), Tok::Ident(s) if !is_keyword(s))
            && matches!(self.tok_at(1), Tok::Punct("=" | ";" | ",") | Tok::Ident(_));
        let is_local_fn =
            matches!(self.tok(), Tok::Ident(s) if !is_keyword(s)) && self.is_at(1, "(");
        if is_local_fn && ty.is_some() {
            // `T Name(` at statement start: a local function (a call would be `Name(`).
            let pos = self.pos();
            let mut j = 2;
            let mut depth = 1;
            while depth > 0 && !matches!(self.tok_at(j), Tok::Eof) {
                if self.is_at(j, "(") {
                    depth += 1;
                } else if self.is_at(j, ")") {
                    depth -= 1;
                }
                j += 1;
            }
            if self.is_at(j, "{") || self.is_at(j, "=>") {
                return Err(err(pos, "local functions are not supported"));
            }
        }
        if !is_decl || matches!(self.tok_at(1), Tok::Ident(_)) {
            self.i = save;
            return Ok(None);
        }
        let mut vars = Vec::new();
        loop {
            let pos = self.pos();
            let name = self.ident()?;
            let init = if self.eat("=") {
                if self.is("{") {
                    // `T[] x = { a, b }`
                    let p = self.pos();
                    let items = self.initializer()?;
                    Some(E {
                        kind: EK::NewArray(ty.clone(), None, items),
                        pos: p,
                    })
                } else {
                    Some(self.expr()?)
                }
            } else {
                None
            };
            vars.push((name, init, pos));
            if !self.eat(",") {
                break;
            }
        }
        Ok(Some(S::Decl(ty, vars)))
    }

    // ---- expressions ----

    fn expr(&mut self) -> Result<E, ExprError> {
        self.enter()?;
        let r = self.assignment();
        self.depth -= 1;
        r
    }

    fn lambda_params(&self) -> Option<(Vec<String>, usize)> {
        if let Tok::Ident(s) = self.tok() {
            if !is_keyword(s) && self.is_at(1, "=>") {
                return Some((vec![s.clone()], 2));
            }
            return None;
        }
        if !self.is("(") {
            return None;
        }
        let mut j = 1;
        let mut params = Vec::new();
        let mut last: Option<String> = None;
        loop {
            match self.tok_at(j) {
                Tok::Ident(s) if !is_keyword(s) || PREDEFINED.contains(&s.as_str()) => {
                    last = Some(s.clone())
                }
                Tok::Punct(",") => params.push(last.take()?),
                Tok::Punct(")") => {
                    if let Some(l) = last.take() {
                        params.push(l);
                    }
                    break;
                }
                _ => return None,
            }
            j += 1;
        }
        if self.is_at(j + 1, "=>") {
            Some((params, j + 2))
        } else {
            None
        }
    }

    fn assignment(&mut self) -> Result<E, ExprError> {
        let pos = self.pos();
        if let Some((params, skip)) = self.lambda_params() {
            for _ in 0..skip {
                self.advance();
            }
            if self.is("{") {
                return Err(err(
                    self.pos(),
                    "block-bodied lambda expressions are not supported",
                ));
            }
            let body = self.expr()?;
            return Ok(E {
                kind: EK::Lambda(params, Box::new(body)),
                pos,
            });
        }
        let lhs = self.conditional()?;
        let op = match self.tok() {
            Tok::Punct("=") => None,
            Tok::Punct("+=") => Some(BinOp::Add),
            Tok::Punct("-=") => Some(BinOp::Sub),
            Tok::Punct("*=") => Some(BinOp::Mul),
            Tok::Punct("/=") => Some(BinOp::Div),
            Tok::Punct("%=") => Some(BinOp::Rem),
            Tok::Punct("&=") => Some(BinOp::BitAnd),
            Tok::Punct("|=") => Some(BinOp::BitOr),
            Tok::Punct("^=") => Some(BinOp::BitXor),
            Tok::Punct("<<=") => Some(BinOp::Shl),
            Tok::Punct("??=") => Some(BinOp::Coalesce),
            _ => return Ok(lhs),
        };
        let apos = self.pos();
        self.advance();
        let rhs = self.expr()?;
        Ok(E {
            kind: EK::Assign(op, Box::new(lhs), Box::new(rhs)),
            pos: apos,
        })
    }

    fn conditional(&mut self) -> Result<E, ExprError> {
        let c = self.coalesce()?;
        if self.is("?") {
            let pos = self.pos();
            self.advance();
            let a = self.expr()?;
            self.expect(":")?;
            let b = self.expr()?;
            return Ok(E {
                kind: EK::Cond(Box::new(c), Box::new(a), Box::new(b)),
                pos,
            });
        }
        Ok(c)
    }

    fn coalesce(&mut self) -> Result<E, ExprError> {
        let l = self.binary(0)?;
        if self.is("??") {
            let pos = self.pos();
            self.advance();
            self.enter()?;
            let r = self.coalesce();
            self.depth -= 1;
            return Ok(E {
                kind: EK::Binary(BinOp::Coalesce, Box::new(l), Box::new(r?)),
                pos,
            });
        }
        Ok(l)
    }

    /// Left-associative binary levels, loosest first.
    fn binary(&mut self, level: usize) -> Result<E, ExprError> {
        const LEVELS: &[&[(&str, BinOp)]] = &[
            &[("||", BinOp::Or)],
            &[("&&", BinOp::And)],
            &[("|", BinOp::BitOr)],
            &[("^", BinOp::BitXor)],
            &[("&", BinOp::BitAnd)],
            &[("==", BinOp::Eq), ("!=", BinOp::Ne)],
            &[
                ("<", BinOp::Lt),
                (">", BinOp::Gt),
                ("<=", BinOp::Le),
                (">=", BinOp::Ge),
            ],
            &[("<<", BinOp::Shl)],
            &[("+", BinOp::Add), ("-", BinOp::Sub)],
            &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Rem)],
        ];
        if level >= LEVELS.len() {
            return self.unary();
        }
        let mut l = self.binary(level + 1)?;
        let entry_depth = self.depth;
        let r = self.binary_loop(level, &mut l, LEVELS);
        self.depth = entry_depth;
        r?;
        Ok(l)
    }

    fn binary_loop(
        &mut self,
        level: usize,
        l: &mut E,
        levels: &[&[(&str, BinOp)]],
    ) -> Result<(), ExprError> {
        loop {
            self.enter()?;
            let pos = self.pos();
            // `>>` is two `>` tokens (so `List<List<T>>` lexes); join them here.
            if level == 7 && self.is(">") && self.is_at(1, ">") && self.adjacent() {
                self.advance();
                self.advance();
                let r = self.binary(level + 1)?;
                take_binary(l, BinOp::Shr, r, pos);
                continue;
            }
            if level == 6 {
                if self.is(">") && self.is_at(1, ">") && self.adjacent() {
                    return Ok(());
                }
                if self.is_kw("is") {
                    self.advance();
                    let mut negate = false;
                    if self.eat_kw("not") {
                        negate = true;
                    }
                    if self.eat_kw("null") {
                        let inner = std::mem::replace(
                            l,
                            E {
                                kind: EK::Null,
                                pos,
                            },
                        );
                        *l = E {
                            kind: EK::Is(Box::new(inner), None, None, negate),
                            pos,
                        };
                        continue;
                    }
                    let ty = self
                        .try_type()
                        .ok_or_else(|| err(self.pos(), "expected a type after 'is'"))?;
                    let mut name = None;
                    if let Tok::Ident(s) = self.tok() {
                        if !is_keyword(s) && s != "and" && s != "or" {
                            name = Some(s.clone());
                            self.advance();
                        }
                    }
                    let inner = std::mem::replace(
                        l,
                        E {
                            kind: EK::Null,
                            pos,
                        },
                    );
                    *l = E {
                        kind: EK::Is(Box::new(inner), Some(ty), name, negate),
                        pos,
                    };
                    continue;
                }
                if self.is_kw("as") {
                    self.advance();
                    let ty = self
                        .try_type()
                        .ok_or_else(|| err(self.pos(), "expected a type after 'as'"))?;
                    let inner = std::mem::replace(
                        l,
                        E {
                            kind: EK::Null,
                            pos,
                        },
                    );
                    *l = E {
                        kind: EK::As(Box::new(inner), ty),
                        pos,
                    };
                    continue;
                }
            }
            let Tok::Punct(p) = self.tok() else {
                return Ok(());
            };
            let Some((_, op)) = levels[level].iter().find(|(s, _)| s == p) else {
                return Ok(());
            };
            let op = *op;
            self.advance();
            let r = self.binary(level + 1)?;
            take_binary(l, op, r, pos);
        }
    }

    fn adjacent(&self) -> bool {
        match (self.toks.get(self.i), self.toks.get(self.i + 1)) {
            (Some(a), Some(b)) => a.end == b.start,
            _ => false,
        }
    }

    fn unary(&mut self) -> Result<E, ExprError> {
        self.enter()?;
        let r = self.unary_inner();
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> Result<E, ExprError> {
        let pos = self.pos();
        let op = match self.tok() {
            Tok::Punct("-") => Some(UnOp::Neg),
            Tok::Punct("+") => Some(UnOp::Plus),
            Tok::Punct("!") => Some(UnOp::Not),
            Tok::Punct("~") => Some(UnOp::BitNot),
            _ => None,
        };
        if let Some(op) = op {
            self.advance();
            let e = self.unary()?;
            // Fold negative literals so `-9223372036854775808`-style bounds stay literal.
            if op == UnOp::Neg {
                match e.kind {
                    EK::Int(i) => {
                        return Ok(E {
                            kind: EK::Int(i.wrapping_neg()),
                            pos,
                        })
                    }
                    EK::Double(d) => {
                        return Ok(E {
                            kind: EK::Double(-d),
                            pos,
                        })
                    }
                    _ => {}
                }
            }
            return Ok(E {
                kind: EK::Unary(op, Box::new(e)),
                pos,
            });
        }
        if self.is("++") || self.is("--") {
            let inc = self.is("++");
            self.advance();
            let e = self.unary()?;
            return Ok(E {
                kind: EK::IncDec(inc, true, Box::new(e)),
                pos,
            });
        }
        if self.is_kw("await") {
            return Err(err(pos, "await is not supported"));
        }
        if self.is("(") {
            let save = self.i;
            self.advance();
            if let Some(ty) = self.try_type() {
                if self.is(")") {
                    let predefined = PREDEFINED.contains(&ty.name.as_str());
                    let next_starts = match self.tok_at(1) {
                        Tok::Ident(s) => {
                            !matches!(s.as_str(), "is" | "as" | "in" | "switch" | "with")
                        }
                        Tok::Punct(p) => matches!(*p, "(" | "!" | "~"),
                        Tok::Eof => false,
                        _ => true,
                    };
                    let sign_follows = matches!(self.tok_at(1), Tok::Punct("-" | "+"));
                    if next_starts || (predefined && sign_follows) {
                        self.advance();
                        let e = self.unary()?;
                        return Ok(E {
                            kind: EK::Cast(ty, Box::new(e)),
                            pos,
                        });
                    }
                }
            }
            self.i = save;
        }
        self.postfix()
    }

    fn args(&mut self) -> Result<Vec<Arg>, ExprError> {
        self.expect("(")?;
        let mut out = Vec::new();
        if self.eat(")") {
            return Ok(out);
        }
        loop {
            let mut name = None;
            if let Tok::Ident(s) = self.tok() {
                if !is_keyword(s) && self.is_at(1, ":") {
                    name = Some(s.clone());
                    self.advance();
                    self.advance();
                }
            }
            let mut out_arg = false;
            let mut declares = false;
            if self.is_kw("out") || self.is_kw("ref") || (self.is_kw("in") && name.is_none()) {
                out_arg = true;
                self.advance();
                if self.is_kw("var") {
                    self.advance();
                    declares = true;
                } else {
                    let save = self.i;
                    if self.try_type().is_some()
                        && matches!(self.tok(), Tok::Ident(s) if !is_keyword(s))
                        && matches!(self.tok_at(1), Tok::Punct(")" | ","))
                    {
                        declares = true;
                    } else {
                        self.i = save;
                    }
                }
            }
            let value = self.expr()?;
            out.push(Arg {
                name,
                out: out_arg,
                declares,
                value,
            });
            if self.eat(")") {
                return Ok(out);
            }
            self.expect(",")?;
        }
    }

    /// `<T, U>` before `(`, if here; restores the position otherwise.
    fn try_type_args(&mut self) -> Option<Vec<TypeRef>> {
        if !self.is("<") {
            return None;
        }
        let save = self.i;
        self.advance();
        let mut out = Vec::new();
        while let Some(t) = self.try_type() {
            out.push(t);
            if self.eat(",") {
                continue;
            }
            if self.eat(">") && self.is("(") {
                return Some(out);
            }
            break;
        }
        self.i = save;
        None
    }

    fn postfix(&mut self) -> Result<E, ExprError> {
        let base = self.primary()?;
        self.postfix_ops(base)
    }

    fn postfix_ops(&mut self, e: E) -> Result<E, ExprError> {
        let entry_depth = self.depth;
        let r = self.postfix_loop(e);
        self.depth = entry_depth;
        r
    }

    fn postfix_loop(&mut self, mut e: E) -> Result<E, ExprError> {
        loop {
            self.enter()?;
            let pos = self.pos();
            if self.is(".") {
                self.advance();
                let name = self.ident()?;
                e = E {
                    kind: EK::Member(Box::new(e), name),
                    pos,
                };
                if let Some(targs) = self.try_type_args() {
                    let args = self.args()?;
                    e = E {
                        kind: EK::Call(Box::new(e), targs, args),
                        pos,
                    };
                }
            } else if self.is("(") {
                let args = self.args()?;
                e = E {
                    kind: EK::Call(Box::new(e), Vec::new(), args),
                    pos,
                };
            } else if self.is("[") {
                self.advance();
                let mut idx = vec![self.expr()?];
                while self.eat(",") {
                    idx.push(self.expr()?);
                }
                self.expect("]")?;
                e = E {
                    kind: EK::Index(Box::new(e), idx),
                    pos,
                };
            } else if self.is("?.") || self.is("?[") {
                let hole = E {
                    kind: EK::CondHole,
                    pos,
                };
                let start = if self.is("?.") {
                    self.advance();
                    let name = self.ident()?;
                    let mut m = E {
                        kind: EK::Member(Box::new(hole), name),
                        pos,
                    };
                    if let Some(targs) = self.try_type_args() {
                        let args = self.args()?;
                        m = E {
                            kind: EK::Call(Box::new(m), targs, args),
                            pos,
                        };
                    }
                    m
                } else {
                    self.advance();
                    let mut idx = vec![self.expr()?];
                    while self.eat(",") {
                        idx.push(self.expr()?);
                    }
                    self.expect("]")?;
                    E {
                        kind: EK::Index(Box::new(hole), idx),
                        pos,
                    }
                };
                let rest = self.postfix_ops(start);
                return Ok(E {
                    kind: EK::CondAccess(Box::new(e), Box::new(rest?)),
                    pos,
                });
            } else if self.is("++") || self.is("--") {
                let inc = self.is("++");
                self.advance();
                e = E {
                    kind: EK::IncDec(inc, false, Box::new(e)),
                    pos,
                };
            } else if self.is("!") && matches!(self.tok_at(1), Tok::Punct("." | "[")) {
                // null-forgiving `x!.y`: no effect at run time.
                self.advance();
            } else {
                return Ok(e);
            }
        }
    }

    fn initializer(&mut self) -> Result<Vec<E>, ExprError> {
        self.expect("{")?;
        let mut items = Vec::new();
        while !self.is("}") {
            if self.is("{") {
                let pos = self.pos();
                let inner = self.initializer()?;
                items.push(E {
                    kind: EK::InitList(inner),
                    pos,
                });
            } else {
                items.push(self.expr()?);
            }
            if !self.eat(",") {
                break;
            }
        }
        self.expect("}")?;
        Ok(items)
    }

    fn new_expr(&mut self, pos: usize) -> Result<E, ExprError> {
        if self.is("[") {
            self.advance();
            self.expect("]")?;
            let items = self.initializer()?;
            return Ok(E {
                kind: EK::NewArray(None, None, items),
                pos,
            });
        }
        if self.is("{") {
            self.advance();
            let mut members = Vec::new();
            while !self.is("}") {
                let mpos = self.pos();
                let e = self.expr()?;
                match e.kind {
                    EK::Assign(None, l, r) => match l.kind {
                        EK::Name(n) => members.push((n, *r)),
                        _ => return Err(err(mpos, "invalid anonymous type member")),
                    },
                    EK::Name(ref n) => members.push((n.clone(), e.clone())),
                    EK::Member(_, ref n) => members.push((n.clone(), e.clone())),
                    _ => return Err(err(mpos, "invalid anonymous type member")),
                }
                if !self.eat(",") {
                    break;
                }
            }
            self.expect("}")?;
            return Ok(E {
                kind: EK::NewAnon(members),
                pos,
            });
        }
        let ty = self.try_type().ok_or_else(|| {
            err(
                self.pos(),
                format!("expected a type after 'new'{}", self.found()),
            )
        })?;
        if ty.arrays > 0 {
            let mut elem = ty.clone();
            elem.arrays -= 1;
            let items = self.initializer()?;
            return Ok(E {
                kind: EK::NewArray(Some(elem), None, items),
                pos,
            });
        }
        if self.is("[") {
            self.advance();
            let size = self.expr()?;
            self.expect("]")?;
            let items = if self.is("{") {
                self.initializer()?
            } else {
                Vec::new()
            };
            return Ok(E {
                kind: EK::NewArray(Some(ty), Some(Box::new(size)), items),
                pos,
            });
        }
        let args = if self.is("(") {
            self.args()?
        } else {
            Vec::new()
        };
        let init = if self.is("{") {
            Some(self.initializer()?)
        } else {
            None
        };
        if init.is_none()
            && args.is_empty()
            && !self
                .toks
                .get(self.i.wrapping_sub(1))
                .is_some_and(|t| t.tok == Tok::Punct(")"))
        {
            return Err(err(self.pos(), "expected '(' after the type in 'new'"));
        }
        Ok(E {
            kind: EK::New(ty, args, init),
            pos,
        })
    }

    fn primary(&mut self) -> Result<E, ExprError> {
        let pos = self.pos();
        let tok = self.tok().clone();
        let kind = match tok {
            Tok::Int(v, _) => EK::Int(v),
            Tok::Double(d) => EK::Double(d),
            Tok::Str(s) => EK::Str(s),
            Tok::Char(c) => EK::Char(c),
            Tok::Interp(parts) => {
                let mut out = Vec::new();
                for part in parts {
                    match part {
                        InterpPart::Lit(s) => out.push(IPart::Lit(s)),
                        InterpPart::Hole {
                            tokens,
                            align,
                            format,
                        } => {
                            let mut sub = Parser {
                                toks: tokens,
                                i: 0,
                                depth: self.depth,
                            };
                            let e = sub.expr()?;
                            if !sub.at_eof() {
                                return Err(err(
                                    sub.pos(),
                                    "unexpected text in interpolation hole",
                                ));
                            }
                            out.push(IPart::Hole(e, align, format));
                        }
                    }
                }
                EK::Interp(out)
            }
            Tok::Punct("(") => {
                self.advance();
                let e = self.expr()?;
                self.expect(")")?;
                return Ok(e);
            }
            Tok::Ident(s) => match s.as_str() {
                "true" => EK::Bool(true),
                "false" => EK::Bool(false),
                "null" => EK::Null,
                "new" => {
                    self.advance();
                    return self.new_expr(pos);
                }
                "typeof" | "default" | "nameof" | "sizeof" | "this" | "base" | "stackalloc"
                | "checked" | "unchecked" | "delegate" => {
                    return Err(err(pos, format!("'{s}' is not supported")))
                }
                "switch" => return Err(err(pos, "switch expressions are not supported")),
                k if PREDEFINED.contains(&k) => EK::TypeName(TypeRef {
                    name: k.to_string(),
                    args: Vec::new(),
                    arrays: 0,
                    nullable: false,
                    pos,
                }),
                k if is_keyword(k) => return Err(err(pos, format!("unexpected keyword '{k}'"))),
                _ => {
                    self.advance();
                    let name = E {
                        kind: EK::Name(s),
                        pos,
                    };
                    if let Some(targs) = self.try_type_args() {
                        let args = self.args()?;
                        return Ok(E {
                            kind: EK::Call(Box::new(name), targs, args),
                            pos,
                        });
                    }
                    return Ok(name);
                }
            },
            Tok::Eof => return Err(err(pos, "unexpected end of the expression")),
            Tok::Punct(p) => return Err(err(pos, format!("unexpected '{p}'"))),
        };
        self.advance();
        Ok(E { kind, pos })
    }
}

/// Replaces `l` with `l op r`.
fn take_binary(l: &mut E, op: BinOp, r: E, pos: usize) {
    let inner = std::mem::replace(
        l,
        E {
            kind: EK::Null,
            pos,
        },
    );
    *l = E {
        kind: EK::Binary(op, Box::new(inner), Box::new(r)),
        pos,
    };
}
