//! The syntax tree the parser builds, before names are resolved.

/// A type name as written: `string`, `JObject`, `List<string>`, `byte[]`, `int?`.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeRef {
    /// Dotted name, e.g. `System.Text.Encoding`.
    pub name: String,
    /// Generic arguments.
    pub args: Vec<TypeRef>,
    /// Array rank count (`[]` suffixes).
    pub arrays: usize,
    /// `?` suffix.
    pub nullable: bool,
    /// Byte offset in the source.
    pub pos: usize,
}

/// An expression node with its source offset.
#[derive(Debug, Clone, PartialEq)]
pub struct E {
    /// What it is.
    pub kind: EK,
    /// Byte offset in the source.
    pub pos: usize,
}

/// A call argument, maybe named (`preserveContent: true`) or `out`.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// Name, for a named argument.
    pub name: Option<String>,
    /// `out`/`ref` argument.
    pub out: bool,
    /// `out var x` / `out int x`: declares the local.
    pub declares: bool,
    /// The value (for `out`, the target).
    pub value: E,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    /// `-x`.
    Neg,
    /// `+x`.
    Plus,
    /// `!x`.
    Not,
    /// `~x`.
    BitNot,
}

/// Binary operators (short-circuit and `??` included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Rem,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `&&`.
    And,
    /// `||`.
    Or,
    /// `&`.
    BitAnd,
    /// `|`.
    BitOr,
    /// `^`.
    BitXor,
    /// `<<`.
    Shl,
    /// `>>`.
    Shr,
    /// `??`.
    Coalesce,
}

/// A piece of an interpolated string.
#[derive(Debug, Clone, PartialEq)]
pub enum IPart {
    /// Literal text.
    Lit(String),
    /// A hole with alignment and format.
    Hole(E, Option<i64>, Option<String>),
}

/// Expression kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum EK {
    /// `null`.
    Null,
    /// `true`/`false`.
    Bool(bool),
    /// Integer literal.
    Int(i64),
    /// Real literal.
    Double(f64),
    /// String literal.
    Str(String),
    /// Char literal.
    Char(char),
    /// Interpolated string.
    Interp(Vec<IPart>),
    /// A simple name (local, type, namespace or `context`).
    Name(String),
    /// A predefined type keyword used as an expression (`string.Empty`, `int.Parse`).
    TypeName(TypeRef),
    /// `a.b`.
    Member(Box<E>, String),
    /// `callee<T>(args)`; callee is a `Name` or `Member`.
    Call(Box<E>, Vec<TypeRef>, Vec<Arg>),
    /// `a[i, ...]`.
    Index(Box<E>, Vec<E>),
    /// `target?.rest`: `rest` is built on `CondHole`.
    CondAccess(Box<E>, Box<E>),
    /// The value of the enclosing `CondAccess` target.
    CondHole,
    /// Unary operator.
    Unary(UnOp, Box<E>),
    /// Binary operator.
    Binary(BinOp, Box<E>, Box<E>),
    /// `c ? a : b`.
    Cond(Box<E>, Box<E>, Box<E>),
    /// `(T)x`.
    Cast(TypeRef, Box<E>),
    /// `x is T [name]`, `x is null`, `x is not null` (type `None` means null).
    Is(Box<E>, Option<TypeRef>, Option<String>, bool),
    /// `x as T`.
    As(Box<E>, TypeRef),
    /// `new T(args) { init }`.
    New(TypeRef, Vec<Arg>, Option<Vec<E>>),
    /// `new T[n]`, `new T[] { ... }`, `new [] { ... }`.
    NewArray(Option<TypeRef>, Option<Box<E>>, Vec<E>),
    /// `new { a = 1, b }`.
    NewAnon(Vec<(String, E)>),
    /// `{ a, b }` inside a collection initializer.
    InitList(Vec<E>),
    /// `x => body`, `(x, y) => body`.
    Lambda(Vec<String>, Box<E>),
    /// `a = b` and compound assignments (`op` is `None` for plain `=`).
    Assign(Option<BinOp>, Box<E>, Box<E>),
    /// `++x`, `x++`, `--x`, `x--`: (increment?, prefix?).
    IncDec(bool, bool, Box<E>),
}

/// A statement.
#[derive(Debug, Clone, PartialEq)]
pub enum S {
    /// `var x = e;`, `string x = e, y;` (type `None` is `var`).
    Decl(Option<TypeRef>, Vec<(String, Option<E>, usize)>),
    /// An expression statement.
    Expr(E),
    /// `if (c) a else b`.
    If(E, Box<S>, Option<Box<S>>),
    /// `{ ... }`.
    Block(Vec<S>),
    /// `return e;`.
    Return(Option<E>, usize),
    /// `foreach (T x in e) body`.
    Foreach(String, E, Box<S>, usize),
    /// `while (c) body`.
    While(E, Box<S>),
    /// `do body while (c);`.
    DoWhile(Box<S>, E),
    /// `for (init; cond; step) body`.
    For(Vec<S>, Option<E>, Vec<E>, Box<S>),
    /// `break;`.
    Break(usize),
    /// `continue;`.
    Continue(usize),
    /// `try { } catch (T name) { } finally { }`.
    Try(Box<S>, Option<(Option<String>, Box<S>)>, Option<Box<S>>),
    /// `throw e;`.
    Throw(Option<E>, usize),
    /// `;`.
    Empty,
    /// A local function declaration.
    LocalFn(Box<LocalFn>),
}

/// `T Name(T1 a, T2 b) { ... }` or `=> e;` inside a block (`ret` `None` is `void`).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalFn {
    /// The function's name.
    pub name: String,
    /// Parameters: type, name, offset.
    pub params: Vec<(TypeRef, String, usize)>,
    /// Return type; `None` for `void`.
    pub ret: Option<TypeRef>,
    /// The body, a block.
    pub body: S,
    /// Offset of the name.
    pub pos: usize,
}
