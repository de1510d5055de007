//! Name resolution: the syntax tree to the compiled tree. `context.*` paths,
//! members, methods, static functions and types become enums; locals become
//! slots; unsupported constructs fail here, naming themselves.

use std::sync::Arc;

use super::ast::{Arg, BinOp, IPart, LocalFn, TypeRef, UnOp, E, EK, S};
use super::crypto::{self, HashAlg};
use super::node::*;
use super::parser;
use super::regexp;
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

/// A static type, as far as the compiler knows it (for early errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Any,
    Str,
    Int,
    Double,
    Bool,
    Char,
    Json,
    Array,
    DateTime,
    TimeSpan,
    Response,
    Jwt,
    Dict,
    Bytes,
    Guid,
    Crypto,
    /// An `Aes` object.
    Cipher,
    /// A `Regex` object.
    Regex,
    Null,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Any => "object",
            Ty::Str => "string",
            Ty::Int => "int",
            Ty::Double => "double",
            Ty::Bool => "bool",
            Ty::Char => "char",
            Ty::Json => "JToken",
            Ty::Array => "array",
            Ty::DateTime => "DateTime",
            Ty::TimeSpan => "TimeSpan",
            Ty::Response => "IResponse",
            Ty::Jwt => "Jwt",
            Ty::Dict => "dictionary",
            Ty::Bytes => "byte[]",
            Ty::Guid => "Guid",
            Ty::Crypto => "HashAlgorithm",
            Ty::Cipher => "Aes",
            Ty::Regex => "Regex",
            Ty::Null => "null",
        }
    }

    fn of_cast(c: CastTy) -> Ty {
        match c {
            CastTy::Str => Ty::Str,
            CastTy::Int(_) => Ty::Int,
            CastTy::Double => Ty::Double,
            CastTy::Bool => Ty::Bool,
            CastTy::Char => Ty::Char,
            CastTy::JObject | CastTy::JArray | CastTy::JToken | CastTy::JValue => Ty::Json,
            CastTy::Response => Ty::Response,
            CastTy::Jwt => Ty::Jwt,
            CastTy::DateTime => Ty::DateTime,
            CastTy::TimeSpan => Ty::TimeSpan,
            CastTy::Guid => Ty::Guid,
            CastTy::Bytes => Ty::Bytes,
            CastTy::Array => Ty::Array,
            CastTy::Dict => Ty::Dict,
            CastTy::Crypto => Ty::Crypto,
            _ => Ty::Any,
        }
    }
}

/// Known types usable as `Type.Member` or `new Type(...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeK {
    Cast(CastTy),
    Convert,
    Encoding,
    Utf8,
    Math,
    JsonConvert,
    WebUtility,
    StringComparison,
    StringComparer,
    StringSplitOptions,
    Formatting,
    ArrayStatic,
    Random,
    List,
    Dictionary,
    JProperty,
    /// `SHA256` (`false`) or `HMACSHA256` (`true`), and their aliases.
    Hash(HashAlg, bool),
    BitConverter,
    Buffer,
    /// `Aes`, `AesManaged`, `SymmetricAlgorithm`...
    Aes,
    CipherMode,
    PaddingMode,
    Regex,
    RegexOptions,
}

/// Context objects that are not values themselves.
#[derive(Debug, Clone)]
enum CtxObj {
    Context,
    Request,
    Response,
    Url(UrlSrc),
    Dict(CtxDict),
    Body(BodySrc),
    Subscription,
    Product,
    Api,
    Operation,
    Deployment,
    LastError,
    User,
}

impl CtxObj {
    fn path(&self) -> &'static str {
        match self {
            CtxObj::Context => "context",
            CtxObj::Request => "context.Request",
            CtxObj::Response => "context.Response",
            CtxObj::Url(UrlSrc::Request) => "context.Request.Url",
            CtxObj::Url(UrlSrc::Original) => "context.Request.OriginalUrl",
            CtxObj::Url(UrlSrc::Service) => "context.Api.ServiceUrl",
            CtxObj::Dict(CtxDict::Headers(MsgSrc::Request)) => "context.Request.Headers",
            CtxObj::Dict(CtxDict::Headers(MsgSrc::Response)) => "context.Response.Headers",
            CtxObj::Dict(CtxDict::Query(_)) => "Url.Query",
            CtxObj::Dict(CtxDict::Matched) => "context.Request.MatchedParameters",
            CtxObj::Dict(CtxDict::Variables) => "context.Variables",
            CtxObj::Body(BodySrc::Ctx(MsgSrc::Request)) => "context.Request.Body",
            CtxObj::Body(BodySrc::Ctx(MsgSrc::Response)) => "context.Response.Body",
            CtxObj::Body(BodySrc::Value(_)) => "IResponse.Body",
            CtxObj::Subscription => "context.Subscription",
            CtxObj::Product => "context.Product",
            CtxObj::Api => "context.Api",
            CtxObj::Operation => "context.Operation",
            CtxObj::Deployment => "context.Deployment",
            CtxObj::LastError => "context.LastError",
            CtxObj::User => "context.User",
        }
    }
}

enum Comp {
    Val(Node, Ty),
    Ctx(CtxObj),
    Type(TypeK, String),
    Ns(String),
}

fn err(offset: usize, message: impl Into<String>) -> ExprError {
    ExprError {
        offset,
        message: message.into(),
    }
}

fn konst(v: impl Into<Value>, ty: Ty) -> Comp {
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

/// A local function's signature (`ret` `None` is `void`).
#[derive(Debug, Clone)]
struct Sig {
    params: Vec<CastTy>,
    ret: Option<CastTy>,
}

fn always_returns(stmts: &[Stmt]) -> bool {
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

struct Compiler {
    scopes: Vec<Vec<(String, u32, Ty)>>,
    next_slot: u32,
    req_body: bool,
    resp_body: bool,
    holes: Vec<(u32, Ty)>,
    loops: usize,
    /// Local functions in scope: name, index, scope depth.
    fns: Vec<(String, u32, usize)>,
    sigs: Vec<Sig>,
    funcs: Vec<Option<Func>>,
    /// Return types of the local functions being compiled (innermost last).
    rets: Vec<Option<CastTy>>,
    /// Slots assigned as a whole (`x = ...`, `x++`, `out x`).
    reassigned: Vec<u32>,
    /// First scope of the local function being compiled: its names may shadow outer ones.
    fn_scope_base: usize,
}

/// Maps a type name (any namespace prefix dropped) to a known type.
fn type_k(name: &str) -> Option<TypeK> {
    let base = name.rsplit('.').next().unwrap_or(name);
    let k = match base {
        "string" | "String" => TypeK::Cast(CastTy::Str),
        "int" | "Int32" => TypeK::Cast(CastTy::Int(IntW::I32)),
        "uint" | "UInt32" => TypeK::Cast(CastTy::Int(IntW::U32)),
        "long" | "Int64" => TypeK::Cast(CastTy::Int(IntW::I64)),
        "ulong" | "UInt64" => TypeK::Cast(CastTy::Int(IntW::U64)),
        "short" | "Int16" => TypeK::Cast(CastTy::Int(IntW::I16)),
        "ushort" | "UInt16" => TypeK::Cast(CastTy::Int(IntW::U16)),
        "byte" | "Byte" => TypeK::Cast(CastTy::Int(IntW::U8)),
        "sbyte" | "SByte" => TypeK::Cast(CastTy::Int(IntW::I8)),
        "double" | "Double" | "float" | "Single" | "decimal" | "Decimal" => {
            TypeK::Cast(CastTy::Double)
        }
        "bool" | "Boolean" => TypeK::Cast(CastTy::Bool),
        "char" | "Char" => TypeK::Cast(CastTy::Char),
        "object" | "Object" | "dynamic" => TypeK::Cast(CastTy::Object),
        "JObject" => TypeK::Cast(CastTy::JObject),
        "JArray" => TypeK::Cast(CastTy::JArray),
        "JToken" => TypeK::Cast(CastTy::JToken),
        "JValue" => TypeK::Cast(CastTy::JValue),
        "JProperty" => TypeK::JProperty,
        "IResponse" => TypeK::Cast(CastTy::Response),
        "Jwt" => TypeK::Cast(CastTy::Jwt),
        "DateTime" | "DateTimeOffset" => TypeK::Cast(CastTy::DateTime),
        "TimeSpan" => TypeK::Cast(CastTy::TimeSpan),
        "Guid" => TypeK::Cast(CastTy::Guid),
        "Uri" => TypeK::Cast(CastTy::Uri),
        "BasicAuthCredentials" => TypeK::Cast(CastTy::Basic),
        "Exception" => TypeK::Cast(CastTy::Exception),
        "Convert" => TypeK::Convert,
        "Encoding" => TypeK::Encoding,
        "Math" => TypeK::Math,
        "JsonConvert" => TypeK::JsonConvert,
        "WebUtility" | "HttpUtility" => TypeK::WebUtility,
        "StringComparison" => TypeK::StringComparison,
        "StringComparer" => TypeK::StringComparer,
        "StringSplitOptions" => TypeK::StringSplitOptions,
        "Formatting" => TypeK::Formatting,
        "Array" => TypeK::ArrayStatic,
        "Random" => TypeK::Random,
        "List"
        | "IList"
        | "IEnumerable"
        | "ICollection"
        | "IReadOnlyList"
        | "IReadOnlyCollection" => TypeK::List,
        "Dictionary" | "IDictionary" | "IReadOnlyDictionary" => TypeK::Dictionary,
        "HashAlgorithm" | "HMAC" | "KeyedHashAlgorithm" => TypeK::Cast(CastTy::Crypto),
        "BitConverter" => TypeK::BitConverter,
        "Buffer" => TypeK::Buffer,
        "Aes"
        | "AesManaged"
        | "AesCryptoServiceProvider"
        | "AesCng"
        | "Rijndael"
        | "RijndaelManaged"
        | "SymmetricAlgorithm" => TypeK::Aes,
        "CipherMode" => TypeK::CipherMode,
        "PaddingMode" => TypeK::PaddingMode,
        "Regex" => TypeK::Regex,
        "RegexOptions" => TypeK::RegexOptions,
        "Match" | "Group" | "Capture" | "GroupCollection" | "MatchCollection" => {
            TypeK::Cast(CastTy::Object)
        }
        _ => {
            let (alg, keyed) = crypto::class_of(base)?;
            TypeK::Hash(alg, keyed)
        }
    };
    Some(k)
}

const NAMESPACES: &[&str] = &[
    "System",
    "System.Text",
    "System.Net",
    "System.Linq",
    "System.Collections",
    "System.Collections.Generic",
    "System.Security",
    "System.Security.Cryptography",
    "System.Xml",
    "System.Xml.Linq",
    "System.Text.RegularExpressions",
    "System.Web",
    "Newtonsoft",
    "Newtonsoft.Json",
    "Newtonsoft.Json.Linq",
    "Microsoft",
];

/// A type reference to a cast target.
fn cast_ty(t: &TypeRef) -> Result<CastTy, ExprError> {
    if t.arrays > 0 {
        let mut elem = t.clone();
        elem.arrays -= 1;
        let e = cast_ty(&elem)?;
        return Ok(if t.arrays == 1 && e == CastTy::Int(IntW::U8) {
            CastTy::Bytes
        } else {
            CastTy::Array
        });
    }
    match type_k(&t.name) {
        Some(TypeK::Cast(c)) => {
            for a in &t.args {
                cast_ty(a)?;
            }
            Ok(c)
        }
        Some(TypeK::List) => {
            for a in &t.args {
                cast_ty(a)?;
            }
            Ok(CastTy::Array)
        }
        Some(TypeK::Dictionary) => {
            for a in &t.args {
                cast_ty(a)?;
            }
            Ok(CastTy::Dict)
        }
        Some(TypeK::Hash(..)) if t.args.is_empty() => Ok(CastTy::Crypto),
        // Declared as such, these keep the type the initializer has.
        Some(TypeK::Aes | TypeK::Regex) if t.args.is_empty() => Ok(CastTy::Object),
        _ => Err(err(t.pos, unsupported_type(&t.name))),
    }
}

/// `unsupported type 'T'`, with the reason for the types policies use most.
fn unsupported_type(name: &str) -> String {
    let base = name.rsplit('.').next().unwrap_or(name);
    let why = match base {
        "MD5" | "HMACMD5" | "MD5CryptoServiceProvider" => {
            " (MD5 is not available: the gateway's crypto library, ring, has no MD5)"
        }
        "AesGcm" | "AesCcm" | "TripleDES" | "DES" | "RC2" | "ChaCha20Poly1305" => {
            " (of symmetric encryption only AES in CBC mode is supported: Aes, byte[].Encrypt/Decrypt)"
        }
        "RSA" | "RSACryptoServiceProvider" | "ECDsa" | "X509Certificate2" => {
            " (certificates and asymmetric keys are not supported)"
        }
        "XDocument" | "XElement" | "XmlDocument" | "XmlReader" | "XPathDocument" => {
            " (XML documents are not supported)"
        }
        "StringBuilder" => " (use string concatenation or string.Join)",
        _ => "",
    };
    format!("unsupported type '{name}'{why}")
}

fn member_of(name: &str) -> Option<Member> {
    use Member as M;
    Some(match name {
        "Length" => M::Length,
        "Count" => M::Count,
        "StatusCode" => M::StatusCode,
        "StatusReason" => M::StatusReason,
        "Headers" => M::Headers,
        "Claims" => M::Claims,
        "Subject" => M::Subject,
        "Issuer" => M::Issuer,
        "Id" => M::Id,
        "Audiences" => M::Audiences,
        "ExpirationTime" => M::ExpirationTime,
        "NotBefore" => M::NotBefore,
        "IssuedAt" => M::IssuedAt,
        "Algorithm" => M::Algorithm,
        "Type" => M::Type,
        "TotalMilliseconds" => M::TotalMilliseconds,
        "TotalSeconds" => M::TotalSeconds,
        "TotalMinutes" => M::TotalMinutes,
        "TotalHours" => M::TotalHours,
        "TotalDays" => M::TotalDays,
        "Milliseconds" => M::Milliseconds,
        "Seconds" => M::Seconds,
        "Minutes" => M::Minutes,
        "Hours" => M::Hours,
        "Days" => M::Days,
        "Ticks" | "UtcTicks" => M::Ticks,
        "Year" => M::Year,
        "Month" => M::Month,
        "Day" => M::Day,
        "Hour" => M::Hour,
        "Minute" => M::Minute,
        "Second" => M::Second,
        "Millisecond" => M::Millisecond,
        "DayOfWeek" => M::DayOfWeek,
        "DayOfYear" => M::DayOfYear,
        "Date" => M::Date,
        "TimeOfDay" => M::TimeOfDay,
        "UtcDateTime" | "LocalDateTime" => M::UtcDateTime,
        "DateTime" => M::DateTimeOf,
        "UserId" => M::UserId,
        "Password" => M::Password,
        "Key" => M::Key,
        "Value" => M::Value,
        "Keys" => M::Keys,
        "Values" => M::Values,
        "Message" => M::Message,
        "AbsolutePath" => M::AbsolutePath,
        "AbsoluteUri" | "OriginalString" => M::AbsoluteUri,
        "Host" => M::Host,
        "Port" => M::Port,
        "Scheme" => M::Scheme,
        "Query" => M::Query,
        "PathAndQuery" => M::PathAndQuery,
        "HasValues" => M::HasValues,
        "HasValue" => M::HasValue,
        "First" => M::First,
        "Last" => M::Last,
        "Name" => M::Name,
        "IV" => M::IV,
        "Mode" => M::Mode,
        "Padding" => M::Padding,
        "KeySize" => M::KeySize,
        "BlockSize" => M::BlockSize,
        "Success" => M::Success,
        "Groups" => M::Groups,
        "Index" => M::Index,
        _ => return None,
    })
}

fn method_of(name: &str) -> Option<Method> {
    use Method as M;
    Some(match name {
        "Contains" => M::Contains,
        "StartsWith" => M::StartsWith,
        "EndsWith" => M::EndsWith,
        "ToLower" | "ToLowerInvariant" => M::ToLower,
        "ToUpper" | "ToUpperInvariant" => M::ToUpper,
        "Substring" => M::Substring,
        "Replace" => M::Replace,
        "Split" => M::Split,
        "Trim" => M::Trim,
        "TrimStart" => M::TrimStart,
        "TrimEnd" => M::TrimEnd,
        "IndexOf" => M::IndexOf,
        "LastIndexOf" => M::LastIndexOf,
        "Equals" => M::Equals,
        "PadLeft" => M::PadLeft,
        "PadRight" => M::PadRight,
        "ToString" => M::ToString,
        "AsJwt" => M::AsJwt,
        "AsBasic" => M::AsBasic,
        "GetHashCode" => M::GetHashCode,
        "Insert" => M::Insert,
        "Remove" => M::Remove,
        "ToCharArray" => M::ToCharArray,
        "CompareTo" => M::CompareTo,
        "First" => M::First,
        "FirstOrDefault" => M::FirstOrDefault,
        "Last" => M::Last,
        "LastOrDefault" => M::LastOrDefault,
        "Single" => M::Single,
        "SingleOrDefault" => M::SingleOrDefault,
        "Any" => M::Any,
        "All" => M::All,
        "Where" => M::Where,
        "Select" => M::Select,
        "Count" => M::Count,
        "ToArray" | "ToList" | "AsEnumerable" => M::ToArray,
        "Skip" => M::Skip,
        "Take" => M::Take,
        "Reverse" => M::Reverse,
        "Distinct" => M::Distinct,
        "OrderBy" => M::OrderBy,
        "OrderByDescending" => M::OrderByDescending,
        "Sum" => M::Sum,
        "Min" => M::Min,
        "Max" => M::Max,
        "Concat" => M::Concat,
        "ElementAt" => M::ElementAt,
        "Value" => M::Value,
        "Values" => M::Values,
        "SelectToken" => M::SelectToken,
        "Property" => M::Property,
        "Properties" => M::Properties,
        "Children" => M::Children,
        "ToObject" => M::ToObject,
        "ContainsKey" => M::ContainsKey,
        "GetValueOrDefault" => M::GetValueOrDefault,
        "AddSeconds" => M::AddSeconds,
        "AddMinutes" => M::AddMinutes,
        "AddHours" => M::AddHours,
        "AddDays" => M::AddDays,
        "AddMilliseconds" => M::AddMilliseconds,
        "AddMonths" => M::AddMonths,
        "AddYears" => M::AddYears,
        "AddTicks" => M::AddTicks,
        "Add" => M::Add,
        "Subtract" => M::Subtract,
        "ToUniversalTime" => M::ToUniversalTime,
        "ToLocalTime" => M::ToLocalTime,
        "ToUnixTimeSeconds" => M::ToUnixTimeSeconds,
        "ToUnixTimeMilliseconds" => M::ToUnixTimeMilliseconds,
        "Negate" => M::Negate,
        "Duration" => M::Duration,
        "ToByteArray" => M::ToByteArray,
        "Next" => M::Next,
        "NextDouble" => M::NextDouble,
        "Clear" => M::Clear,
        "ComputeHash" => M::ComputeHash,
        "Dispose" => M::Dispose,
        "Encrypt" => M::Encrypt,
        "Decrypt" => M::Decrypt,
        "IsMatch" => M::IsMatch,
        "Match" => M::Match,
        "Matches" => M::Matches,
        "Result" => M::Result,
        _ => return None,
    })
}

fn is_linq(m: Method) -> bool {
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

/// Whether method `m` exists on static type `ty` (unknown types allow all).
fn method_ok(ty: Ty, m: Method) -> bool {
    use Method as M;
    let common = matches!(m, M::ToString | M::Equals | M::GetHashCode | M::CompareTo);
    common
        || match ty {
            Ty::Any | Ty::Null => true,
            Ty::Str => {
                is_linq(m)
                    || matches!(
                        m,
                        M::StartsWith
                            | M::EndsWith
                            | M::ToLower
                            | M::ToUpper
                            | M::Substring
                            | M::Replace
                            | M::Split
                            | M::Trim
                            | M::TrimStart
                            | M::TrimEnd
                            | M::IndexOf
                            | M::LastIndexOf
                            | M::PadLeft
                            | M::PadRight
                            | M::AsJwt
                            | M::AsBasic
                            | M::Insert
                            | M::Remove
                            | M::ToCharArray
                    )
            }
            Ty::Array => is_linq(m) || matches!(m, M::IndexOf),
            Ty::Bytes => is_linq(m) || matches!(m, M::IndexOf | M::Encrypt | M::Decrypt),
            Ty::Cipher => matches!(m, M::Dispose | M::Clear),
            Ty::Regex => matches!(
                m,
                M::IsMatch | M::Match | M::Matches | M::Replace | M::Split
            ),
            Ty::Json => {
                is_linq(m)
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
            Ty::Dict => is_linq(m) || matches!(m, M::GetValueOrDefault | M::ContainsKey),
            Ty::DateTime => matches!(
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
            ),
            Ty::TimeSpan => matches!(m, M::Add | M::Subtract | M::Negate | M::Duration),
            Ty::Guid => matches!(m, M::ToByteArray),
            Ty::Crypto => matches!(m, M::ComputeHash | M::Dispose | M::Clear),
            Ty::Int | Ty::Double | Ty::Bool | Ty::Char | Ty::Response | Ty::Jwt => false,
        }
}

fn method_result(ty: Ty, m: Method) -> Ty {
    use Method as M;
    match m {
        M::ToString => Ty::Str,
        M::Equals | M::Any | M::All | M::ContainsKey | M::StartsWith | M::EndsWith => Ty::Bool,
        M::Contains => Ty::Bool,
        M::GetHashCode | M::CompareTo | M::IndexOf | M::LastIndexOf | M::Count => Ty::Int,
        M::ToUnixTimeSeconds | M::ToUnixTimeMilliseconds => Ty::Int,
        M::AsJwt => Ty::Jwt,
        M::Split | M::Where | M::Select | M::ToArray | M::Skip | M::Take | M::Reverse => Ty::Array,
        M::ToByteArray | M::ComputeHash | M::Encrypt | M::Decrypt => Ty::Bytes,
        M::IsMatch => Ty::Bool,
        M::Matches => Ty::Array,
        M::Result => Ty::Str,
        M::Replace if ty == Ty::Regex => Ty::Str,
        M::ToLower
        | M::ToUpper
        | M::Substring
        | M::Replace
        | M::Trim
        | M::TrimStart
        | M::TrimEnd
        | M::PadLeft
        | M::PadRight
        | M::Insert
        | M::Remove
            if ty == Ty::Str =>
        {
            Ty::Str
        }
        M::AddSeconds
        | M::AddMinutes
        | M::AddHours
        | M::AddDays
        | M::AddMilliseconds
        | M::AddMonths
        | M::AddYears
        | M::AddTicks
        | M::ToUniversalTime
        | M::ToLocalTime => Ty::DateTime,
        M::Negate | M::Duration => Ty::TimeSpan,
        M::SelectToken | M::Property => Ty::Json,
        _ => Ty::Any,
    }
}

fn member_ok(ty: Ty, m: Member) -> bool {
    use Member as M;
    if matches!(m, M::Value | M::HasValue)
        && !matches!(ty, Ty::Str | Ty::Array | Ty::Dict | Ty::Jwt | Ty::Response)
    {
        // `Nullable<T>.Value` / `.HasValue`.
        return true;
    }
    match ty {
        Ty::Any | Ty::Null => true,
        Ty::Str => matches!(m, M::Length),
        Ty::Array | Ty::Bytes => matches!(m, M::Length | M::Count),
        Ty::Json => matches!(
            m,
            M::Count | M::Type | M::HasValues | M::First | M::Last | M::Name | M::Value
        ),
        Ty::Dict => matches!(m, M::Count | M::Keys | M::Values),
        Ty::DateTime => matches!(
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
        ),
        Ty::TimeSpan => matches!(
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
        ),
        Ty::Response => matches!(m, M::StatusCode | M::StatusReason | M::Headers),
        Ty::Jwt => matches!(
            m,
            M::Claims
                | M::Subject
                | M::Issuer
                | M::Id
                | M::Audiences
                | M::ExpirationTime
                | M::NotBefore
                | M::IssuedAt
                | M::Algorithm
                | M::Type
        ),
        Ty::Crypto => matches!(m, M::Key),
        Ty::Cipher => matches!(
            m,
            M::Key | M::IV | M::Mode | M::Padding | M::KeySize | M::BlockSize
        ),
        Ty::Regex => false,
        Ty::Int | Ty::Double | Ty::Bool | Ty::Char | Ty::Guid => false,
    }
}

fn member_result(m: Member) -> Ty {
    use Member as M;
    match m {
        M::Length | M::Count | M::StatusCode | M::Year | M::Month | M::Day | M::Hour => Ty::Int,
        M::Minute | M::Second | M::Millisecond | M::Days | M::Hours | M::Minutes => Ty::Int,
        M::Seconds | M::Milliseconds | M::Ticks | M::DayOfYear | M::Port => Ty::Int,
        M::TotalMilliseconds | M::TotalSeconds | M::TotalMinutes | M::TotalHours | M::TotalDays => {
            Ty::Double
        }
        M::StatusReason | M::Subject | M::Issuer | M::Algorithm | M::UserId | M::Password => {
            Ty::Str
        }
        M::Message | M::AbsolutePath | M::AbsoluteUri | M::Host | M::Scheme | M::PathAndQuery => {
            Ty::Str
        }
        M::Headers | M::Claims => Ty::Dict,
        M::Audiences | M::Keys | M::Values => Ty::Array,
        M::Date | M::UtcDateTime | M::DateTimeOf => Ty::DateTime,
        M::TimeOfDay => Ty::TimeSpan,
        M::HasValues | M::Success => Ty::Bool,
        M::Index | M::Mode | M::Padding | M::KeySize | M::BlockSize => Ty::Int,
        M::IV => Ty::Bytes,
        _ => Ty::Any,
    }
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

    fn declare(&mut self, name: &str, ty: Ty, pos: usize) -> Result<u32, ExprError> {
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

    fn lookup(&self, name: &str) -> Option<(u32, Ty)> {
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

    fn scoped<T>(
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

    /// Registers the local functions of a block, so calls anywhere in it
    /// (before the declaration, recursive, mutual) resolve.
    fn declare_fns(&mut self, stmts: &[S]) -> Result<(), ExprError> {
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

    fn lookup_fn(&self, name: &str) -> Option<u32> {
        self.fns
            .iter()
            .rev()
            .find(|(n, _, _)| n == name)
            .map(|(_, i, _)| *i)
    }

    /// Compiles a local function's body where it is declared (it sees the
    /// locals declared before it).
    fn local_fn(&mut self, f: &LocalFn) -> Result<Stmt, ExprError> {
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
    fn call_fn(
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

    fn stmt(&mut self, s: &S) -> Result<Stmt, ExprError> {
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

    // ---- expressions ----

    fn value(&mut self, e: &E) -> Result<(Node, Ty), ExprError> {
        let c = self.expr(e)?;
        self.materialize(c, e.pos)
    }

    fn materialize(&mut self, c: Comp, pos: usize) -> Result<(Node, Ty), ExprError> {
        Ok(match c {
            Comp::Val(n, t) => (n, t),
            Comp::Ctx(obj) => match obj {
                CtxObj::Url(src) => (Node::Ctx(CtxProp::Url(src, UrlPart::Whole)), Ty::Str),
                CtxObj::Dict(d) => (Node::Ctx(CtxProp::Dict(d)), Ty::Dict),
                CtxObj::Response => (Node::Ctx(CtxProp::ResponseValue), Ty::Response),
                CtxObj::Body(BodySrc::Ctx(m)) => {
                    self.mark_body(m);
                    (Node::Ctx(CtxProp::BodyRaw(m)), Ty::Bytes)
                }
                CtxObj::Subscription => (Node::Ctx(CtxProp::Subscription(None)), Ty::Dict),
                CtxObj::Product => (Node::Ctx(CtxProp::Product(None)), Ty::Dict),
                CtxObj::LastError => (Node::Ctx(CtxProp::LastError(None)), Ty::Dict),
                CtxObj::User => (Node::Const(Value::Null), Ty::Null),
                other => {
                    return Err(err(
                        pos,
                        format!("unsupported use of '{}' as a value", other.path()),
                    ))
                }
            },
            Comp::Type(_, name) => {
                return Err(err(pos, format!("'{name}' is a type, not a value")))
            }
            Comp::Ns(name) => return Err(err(pos, unsupported_type(&name))),
        })
    }

    fn mark_body(&mut self, m: MsgSrc) {
        match m {
            MsgSrc::Request => self.req_body = true,
            MsgSrc::Response => self.resp_body = true,
        }
    }

    fn expr(&mut self, e: &E) -> Result<Comp, ExprError> {
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
                    Comp::Ctx(CtxObj::Dict(d)) => {
                        let ty = match d {
                            CtxDict::Headers(_) | CtxDict::Query(_) => Ty::Array,
                            CtxDict::Matched => Ty::Str,
                            CtxDict::Variables => Ty::Any,
                        };
                        Comp::Val(Node::CtxDict(d, DictOp::Index, vec![k], None), ty)
                    }
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

    fn place(&mut self, e: &E) -> Result<Place, ExprError> {
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

    fn name(&mut self, n: &str, pos: usize) -> Result<Comp, ExprError> {
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
            return Err(err(pos, unsupported_type(n)));
        }
        Err(err(
            pos,
            format!("the name '{n}' does not exist in the current context"),
        ))
    }

    fn member(&mut self, b: Comp, name: &str, pos: usize) -> Result<Comp, ExprError> {
        match b {
            Comp::Ctx(obj) => self.ctx_member(obj, name, pos),
            Comp::Type(k, tname) => self.static_member(k, &tname, name, pos),
            Comp::Ns(ns) => {
                let full = format!("{ns}.{name}");
                if let Some(k) = type_k(name) {
                    return Ok(Comp::Type(k, full));
                }
                if NAMESPACES.contains(&full.as_str()) {
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

    fn ctx_member(&mut self, obj: CtxObj, name: &str, pos: usize) -> Result<Comp, ExprError> {
        use CtxProp as P;
        let v = |p: CtxProp, t: Ty| Ok(Comp::Val(Node::Ctx(p), t));
        match (&obj, name) {
            (CtxObj::Context, "Request") => Ok(Comp::Ctx(CtxObj::Request)),
            (CtxObj::Context, "Response") => Ok(Comp::Ctx(CtxObj::Response)),
            (CtxObj::Context, "Variables") => Ok(Comp::Ctx(CtxObj::Dict(CtxDict::Variables))),
            (CtxObj::Context, "Subscription") => Ok(Comp::Ctx(CtxObj::Subscription)),
            (CtxObj::Context, "Product") => Ok(Comp::Ctx(CtxObj::Product)),
            (CtxObj::Context, "Api") => Ok(Comp::Ctx(CtxObj::Api)),
            (CtxObj::Context, "Operation") => Ok(Comp::Ctx(CtxObj::Operation)),
            (CtxObj::Context, "Deployment") => Ok(Comp::Ctx(CtxObj::Deployment)),
            (CtxObj::Context, "LastError") => Ok(Comp::Ctx(CtxObj::LastError)),
            (CtxObj::Context, "User") => Ok(Comp::Ctx(CtxObj::User)),
            (CtxObj::Context, "RequestId") => v(P::RequestId, Ty::Str),
            (CtxObj::Context, "Elapsed") => v(P::Elapsed, Ty::TimeSpan),
            (CtxObj::Context, "Timestamp") => v(P::Timestamp, Ty::DateTime),
            (CtxObj::Context, "Tracing") => Ok(konst(false, Ty::Bool)),
            (CtxObj::Request, "Method") => v(P::RequestMethod, Ty::Str),
            (CtxObj::Request, "Url") => Ok(Comp::Ctx(CtxObj::Url(UrlSrc::Request))),
            (CtxObj::Request, "OriginalUrl") => Ok(Comp::Ctx(CtxObj::Url(UrlSrc::Original))),
            (CtxObj::Request, "Headers") => {
                Ok(Comp::Ctx(CtxObj::Dict(CtxDict::Headers(MsgSrc::Request))))
            }
            (CtxObj::Request, "IpAddress") => v(P::RequestIp, Ty::Str),
            (CtxObj::Request, "Body") => Ok(Comp::Ctx(CtxObj::Body(BodySrc::Ctx(MsgSrc::Request)))),
            (CtxObj::Request, "MatchedParameters") => Ok(Comp::Ctx(CtxObj::Dict(CtxDict::Matched))),
            (CtxObj::Request, "Certificate") => Ok(konst(Value::Null, Ty::Null)),
            (CtxObj::Response, "StatusCode") => v(P::StatusCode, Ty::Int),
            (CtxObj::Response, "StatusReason") => v(P::StatusReason, Ty::Str),
            (CtxObj::Response, "Headers") => {
                Ok(Comp::Ctx(CtxObj::Dict(CtxDict::Headers(MsgSrc::Response))))
            }
            (CtxObj::Response, "Body") => {
                Ok(Comp::Ctx(CtxObj::Body(BodySrc::Ctx(MsgSrc::Response))))
            }
            (CtxObj::Url(src), _) => {
                let part = match name {
                    "Scheme" => UrlPart::Scheme,
                    "Host" => UrlPart::Host,
                    "Port" => UrlPart::Port,
                    "Path" => UrlPart::Path,
                    "QueryString" => UrlPart::QueryString,
                    "Query" => return Ok(Comp::Ctx(CtxObj::Dict(CtxDict::Query(*src)))),
                    _ => return Err(self.no_member(&obj, name, pos)),
                };
                let ty = if part == UrlPart::Port {
                    Ty::Int
                } else {
                    Ty::Str
                };
                v(P::Url(*src, part), ty)
            }
            (CtxObj::Dict(d), "Count") => Ok(Comp::Val(
                Node::CtxDict(*d, DictOp::Count, Vec::new(), None),
                Ty::Int,
            )),
            (CtxObj::Dict(d), "Keys") => Ok(Comp::Val(
                Node::CtxDict(*d, DictOp::Keys, Vec::new(), None),
                Ty::Array,
            )),
            (CtxObj::Subscription, _) => {
                let f = match name {
                    "Id" => SubField::Id,
                    "Name" => SubField::Name,
                    "Key" => SubField::Key,
                    "PrimaryKey" => SubField::PrimaryKey,
                    "SecondaryKey" => SubField::SecondaryKey,
                    _ => return Err(self.no_member(&obj, name, pos)),
                };
                v(P::Subscription(Some(f)), Ty::Str)
            }
            (CtxObj::Product, "Id") => v(P::Product(Some(true)), Ty::Str),
            (CtxObj::Product, "Name") => v(P::Product(Some(false)), Ty::Str),
            (CtxObj::Api, "Id") => v(P::ApiId, Ty::Str),
            (CtxObj::Api, "Name") => v(P::ApiName, Ty::Str),
            (CtxObj::Api, "Path") => v(P::ApiPath, Ty::Str),
            (CtxObj::Api, "ServiceUrl") => Ok(Comp::Ctx(CtxObj::Url(UrlSrc::Service))),
            (CtxObj::Operation, "Id") => v(P::OpId, Ty::Str),
            (CtxObj::Operation, "Name") => v(P::OpName, Ty::Str),
            (CtxObj::Operation, "Method") => v(P::OpMethod, Ty::Str),
            (CtxObj::Operation, "UrlTemplate") => v(P::OpUrlTemplate, Ty::Str),
            (CtxObj::Deployment, "GatewayId") => v(P::GatewayId, Ty::Str),
            (CtxObj::Deployment, "Region") => v(P::Region, Ty::Str),
            (CtxObj::Deployment, "ServiceName") => v(P::ServiceName, Ty::Str),
            (CtxObj::LastError, _) => {
                let f = match name {
                    "Source" => ErrField::Source,
                    "Reason" => ErrField::Reason,
                    "Message" => ErrField::Message,
                    "Scope" => ErrField::Scope,
                    "Section" => ErrField::Section,
                    "Path" => ErrField::Path,
                    "PolicyId" => ErrField::PolicyId,
                    _ => return Err(self.no_member(&obj, name, pos)),
                };
                v(P::LastError(Some(f)), Ty::Str)
            }
            (
                CtxObj::User,
                "Id" | "Email" | "FirstName" | "LastName" | "Note" | "Groups" | "Identities"
                | "RegistrationDate",
            ) => v(P::User, Ty::Str),
            _ => Err(self.no_member(&obj, name, pos)),
        }
    }

    fn no_member(&self, obj: &CtxObj, name: &str, pos: usize) -> ExprError {
        err(pos, format!("unsupported member '{}.{name}'", obj.path()))
    }

    fn static_member(
        &mut self,
        k: TypeK,
        tname: &str,
        name: &str,
        pos: usize,
    ) -> Result<Comp, ExprError> {
        let base = tname.rsplit('.').next().unwrap_or(tname);
        Ok(match (k, name) {
            (TypeK::Cast(CastTy::Str), "Empty") => konst("", Ty::Str),
            (TypeK::Cast(CastTy::Int(w)), "MaxValue") => konst(int_bound(w, true), Ty::Int),
            (TypeK::Cast(CastTy::Int(w)), "MinValue") => konst(int_bound(w, false), Ty::Int),
            (TypeK::Cast(CastTy::Double), "MaxValue") => konst(f64::MAX, Ty::Double),
            (TypeK::Cast(CastTy::Double), "MinValue") => konst(f64::MIN, Ty::Double),
            (TypeK::Cast(CastTy::Double), "NaN") => konst(f64::NAN, Ty::Double),
            (TypeK::Cast(CastTy::DateTime), "UtcNow" | "Now") => {
                Comp::Val(Node::Static(StaticFn::Now, Vec::new()), Ty::DateTime)
            }
            (TypeK::Cast(CastTy::DateTime), "Today" | "UtcToday") => {
                Comp::Val(Node::Static(StaticFn::Today, Vec::new()), Ty::DateTime)
            }
            (TypeK::Cast(CastTy::DateTime), "MinValue") => {
                konst(Value::DateTime(super::datetime::MIN_MS), Ty::DateTime)
            }
            (TypeK::Cast(CastTy::DateTime), "MaxValue") => {
                konst(Value::DateTime(super::datetime::MAX_MS), Ty::DateTime)
            }
            (TypeK::Cast(CastTy::DateTime), "UnixEpoch") => konst(Value::DateTime(0), Ty::DateTime),
            (TypeK::Cast(CastTy::TimeSpan), "Zero") => konst(Value::TimeSpan(0), Ty::TimeSpan),
            (TypeK::Cast(CastTy::Guid), "Empty") => konst(Value::Guid(0), Ty::Guid),
            (TypeK::Encoding, "UTF8" | "ASCII" | "Default" | "Unicode") if name != "Unicode" => {
                Comp::Type(TypeK::Utf8, format!("{tname}.{name}"))
            }
            (TypeK::StringComparison | TypeK::StringComparer, _) => {
                let code = match name {
                    "CurrentCulture" => 0,
                    "CurrentCultureIgnoreCase" => 1,
                    "InvariantCulture" => 2,
                    "InvariantCultureIgnoreCase" => 3,
                    "Ordinal" => 4,
                    "OrdinalIgnoreCase" => 5,
                    _ => return Err(err(pos, format!("unsupported member '{base}.{name}'"))),
                };
                konst(code, Ty::Int)
            }
            (TypeK::StringSplitOptions, "None") => konst(0, Ty::Int),
            (TypeK::StringSplitOptions, "RemoveEmptyEntries") => konst(1, Ty::Int),
            (TypeK::StringSplitOptions, "TrimEntries") => konst(2, Ty::Int),
            (TypeK::Formatting, "None") => konst(0, Ty::Int),
            (TypeK::Formatting, "Indented") => konst(1, Ty::Int),
            (TypeK::Math, "PI") => konst(std::f64::consts::PI, Ty::Double),
            (TypeK::BitConverter, "IsLittleEndian") => konst(true, Ty::Bool),
            (TypeK::CipherMode, _) => match crypto::CIPHER_MODES.iter().find(|(n, _)| *n == name) {
                Some((_, v)) => konst(*v, Ty::Int),
                None => return Err(err(pos, format!("unsupported member '{base}.{name}'"))),
            },
            (TypeK::PaddingMode, _) => match crypto::PADDING_MODES.iter().find(|(n, _)| *n == name)
            {
                Some((_, v)) => konst(*v, Ty::Int),
                None => return Err(err(pos, format!("unsupported member '{base}.{name}'"))),
            },
            (TypeK::RegexOptions, _) => match regexp::OPTIONS.iter().find(|(n, _)| *n == name) {
                Some((_, v)) => konst(*v, Ty::Int),
                None => return Err(err(pos, format!("unsupported member '{base}.{name}'"))),
            },
            _ => return Err(err(pos, format!("unsupported member '{base}.{name}'"))),
        })
    }

    fn args(&mut self, args: &[Arg], pos: usize) -> Result<Vec<Node>, ExprError> {
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

    fn out_slot(&mut self, a: &Arg) -> Result<u32, ExprError> {
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

    fn targ(&self, targs: &[TypeRef]) -> Result<Option<CastTy>, ExprError> {
        match targs {
            [] => Ok(None),
            [t] => Ok(Some(cast_ty(t)?)),
            [_, t, ..] => Err(err(t.pos, "too many type arguments")),
        }
    }

    fn call(
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
            Comp::Ns(ns) => Err(err(pos, unsupported_type(&format!("{ns}.{name}")))),
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
                    if args.len() != 2 {
                        return Err(err(pos, "TryGetValue takes a key and an out variable"));
                    }
                    let k = self.value(&args[0].value)?.0;
                    let slot = self.out_slot(&args[1])?;
                    return Ok(Comp::Val(
                        Node::TryGetValue(Box::new(node), Box::new(k), slot),
                        Ty::Bool,
                    ));
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

    fn ctx_call(
        &mut self,
        obj: CtxObj,
        name: &str,
        targs: &[TypeRef],
        args: &[Arg],
        pos: usize,
    ) -> Result<Comp, ExprError> {
        match (&obj, name) {
            (CtxObj::Dict(d), "GetValueOrDefault" | "ContainsKey") => {
                let op = if name == "ContainsKey" {
                    DictOp::Has
                } else {
                    DictOp::Get
                };
                let t = self.targ(targs)?;
                if t.is_some() && *d != CtxDict::Variables {
                    return Err(err(
                        pos,
                        format!("'{name}<T>' is only supported on context.Variables"),
                    ));
                }
                let max = if op == DictOp::Has { 1 } else { 2 };
                if args.is_empty() || args.len() > max {
                    return Err(err(pos, format!("wrong number of arguments to '{name}'")));
                }
                let a = self.args(args, pos)?;
                let ty = match (op, d, t) {
                    (DictOp::Has, _, _) => Ty::Bool,
                    (_, CtxDict::Variables, Some(c)) => Ty::of_cast(c),
                    (_, CtxDict::Variables, None) => Ty::Any,
                    _ => Ty::Str,
                };
                Ok(Comp::Val(Node::CtxDict(*d, op, a, t), ty))
            }
            (CtxObj::Dict(d), "TryGetValue") => {
                if args.len() != 2 {
                    return Err(err(pos, "TryGetValue takes a key and an out variable"));
                }
                let k = self.value(&args[0].value)?.0;
                let slot = self.out_slot(&args[1])?;
                Ok(Comp::Val(
                    Node::TryGetValue(Box::new(Node::Ctx(CtxProp::Dict(*d))), Box::new(k), slot),
                    Ty::Bool,
                ))
            }
            (CtxObj::Url(src), "ToString") if args.is_empty() => Ok(Comp::Val(
                Node::Ctx(CtxProp::Url(*src, UrlPart::Whole)),
                Ty::Str,
            )),
            (CtxObj::Body(src), "As") => {
                let t = self
                    .targ(targs)?
                    .ok_or_else(|| err(pos, "As<T>() needs a type argument"))?;
                for a in args {
                    match a.name.as_deref() {
                        Some("preserveContent") | None => {}
                        Some(other) => {
                            return Err(err(a.value.pos, format!("unsupported argument '{other}'")))
                        }
                    }
                }
                let t = match t {
                    CastTy::Str
                    | CastTy::JObject
                    | CastTy::JArray
                    | CastTy::JToken
                    | CastTy::Bytes => t,
                    _ => {
                        return Err(err(
                            targs.first().map(|t| t.pos).unwrap_or(pos),
                            format!(
                                "unsupported type '{}' in Body.As<T>()",
                                targs.first().map(|t| t.name.as_str()).unwrap_or("?")
                            ),
                        ))
                    }
                };
                let src = self.body_src(src.clone());
                Ok(Comp::Val(Node::BodyAs(src, t), Ty::of_cast(t)))
            }
            (CtxObj::Body(src), "AsFormUrlEncodedContent") => {
                let src = self.body_src(src.clone());
                Ok(Comp::Val(Node::BodyForm(src), Ty::Dict))
            }
            (CtxObj::Context, "Trace") => {
                let a = self.args(args, pos)?;
                Ok(Comp::Val(Node::Nop(a), Ty::Null))
            }
            _ => {
                // Treat the object as a value (a URL's ToString(), a dictionary's LINQ...).
                match self.materialize(Comp::Ctx(obj.clone()), pos) {
                    Ok((node, ty)) => {
                        let Some(m) = method_of(name) else {
                            return Err(err(
                                pos,
                                format!("unsupported method '{name}' on {}", obj.path()),
                            ));
                        };
                        if !method_ok(ty, m) {
                            return Err(err(
                                pos,
                                format!("unsupported method '{name}' on {}", obj.path()),
                            ));
                        }
                        let t = self.targ(targs)?;
                        let a = self.args(args, pos)?;
                        Ok(Comp::Val(
                            Node::Method(Box::new(node), m, a, t),
                            method_result(ty, m),
                        ))
                    }
                    Err(_) => Err(err(
                        pos,
                        format!("unsupported method '{name}' on {}", obj.path()),
                    )),
                }
            }
        }
    }

    fn body_src(&mut self, src: BodySrc) -> BodySrc {
        if let BodySrc::Ctx(m) = &src {
            self.mark_body(*m);
        }
        src
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
        use StaticFn as F;
        let base = tname.rsplit('.').next().unwrap_or(tname);
        // TryParse(s, out x).
        if name == "TryParse" {
            if let TypeK::Cast(
                c @ (CastTy::Int(_)
                | CastTy::Double
                | CastTy::Bool
                | CastTy::Guid
                | CastTy::DateTime
                | CastTy::TimeSpan),
            ) = k
            {
                if args.len() != 2 {
                    return Err(err(pos, "TryParse takes a string and an out variable"));
                }
                let s = self.value(&args[0].value)?.0;
                let slot = self.out_slot(&args[1])?;
                return Ok(Comp::Val(Node::TryParse(c, Box::new(s), slot), Ty::Bool));
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
            if let Some(a) = args.first() {
                match &a.value.kind {
                    EK::Str(n) if args.len() == 1 && crypto::is_aes_name(n) => {}
                    EK::Str(n) if args.len() == 1 => {
                        return Err(err(a.value.pos, crypto::unsupported_alg(n)))
                    }
                    _ => {
                        return Err(err(
                            pos,
                            format!("'{base}.Create' takes no arguments or an algorithm name literal (\"Aes\")"),
                        ))
                    }
                }
            }
            return Ok(Comp::Val(
                Node::Static(F::AesCreate, Vec::new()),
                Ty::Cipher,
            ));
        }
        let (f, ty, min, max) = match (k, name) {
            (TypeK::Hash(alg, false), "Create") => (F::HashCreate(alg), Ty::Crypto, 0, 0),
            (TypeK::Hash(alg, false), "HashData") => (F::HashData(alg), Ty::Bytes, 1, 1),
            (TypeK::Hash(alg, true), "HashData") => (F::HmacData(alg), Ty::Bytes, 2, 2),
            (TypeK::BitConverter, "ToString") => (F::BitConverterString, Ty::Str, 1, 3),
            (TypeK::BitConverter, _) => {
                let f = match name {
                    "ToInt16" => F::BitConverterInt(2, true),
                    "ToUInt16" => F::BitConverterInt(2, false),
                    "ToInt32" => F::BitConverterInt(4, true),
                    "ToUInt32" => F::BitConverterInt(4, false),
                    "ToInt64" => F::BitConverterInt(8, true),
                    "ToUInt64" => F::BitConverterInt(8, false),
                    _ => {
                        return Err(err(
                            pos,
                            format!("unsupported method 'BitConverter.{name}'"),
                        ))
                    }
                };
                (f, Ty::Int, 2, 2)
            }
            (TypeK::Cast(CastTy::Str), "IsNullOrEmpty") => (F::IsNullOrEmpty, Ty::Bool, 1, 1),
            (TypeK::Cast(CastTy::Str), "IsNullOrWhiteSpace") => {
                (F::IsNullOrWhiteSpace, Ty::Bool, 1, 1)
            }
            (TypeK::Cast(CastTy::Str), "Format") => (F::Format, Ty::Str, 1, 64),
            (TypeK::Cast(CastTy::Str), "Join") => (F::Join, Ty::Str, 2, 64),
            (TypeK::Cast(CastTy::Str), "Concat") => (F::Concat, Ty::Str, 0, 64),
            (TypeK::Cast(CastTy::Str), "Equals") => (F::StringEquals, Ty::Bool, 2, 3),
            (TypeK::Cast(CastTy::Str), "Compare" | "CompareOrdinal") => {
                (F::StringCompare, Ty::Int, 2, 3)
            }
            (
                TypeK::Cast(
                    c @ (CastTy::Int(_)
                    | CastTy::Double
                    | CastTy::Bool
                    | CastTy::Guid
                    | CastTy::DateTime
                    | CastTy::TimeSpan),
                ),
                "Parse",
            ) => (F::Parse(c), Ty::of_cast(c), 1, 2),
            (TypeK::Convert, _) => {
                let (f, ty) = match name {
                    "ToInt32" => (F::ConvertTo(CastTy::Int(IntW::I32)), Ty::Int),
                    "ToInt64" => (F::ConvertTo(CastTy::Int(IntW::I64)), Ty::Int),
                    "ToInt16" => (F::ConvertTo(CastTy::Int(IntW::I16)), Ty::Int),
                    "ToByte" => (F::ConvertTo(CastTy::Int(IntW::U8)), Ty::Int),
                    "ToUInt32" => (F::ConvertTo(CastTy::Int(IntW::U32)), Ty::Int),
                    "ToDouble" | "ToDecimal" | "ToSingle" => {
                        (F::ConvertTo(CastTy::Double), Ty::Double)
                    }
                    "ToBoolean" => (F::ConvertTo(CastTy::Bool), Ty::Bool),
                    "ToString" => (F::ConvertTo(CastTy::Str), Ty::Str),
                    "ToChar" => (F::ConvertTo(CastTy::Char), Ty::Char),
                    "ToDateTime" => (F::ConvertTo(CastTy::DateTime), Ty::DateTime),
                    "ToBase64String" => (F::ToBase64, Ty::Str),
                    "FromBase64String" => (F::FromBase64, Ty::Bytes),
                    "ToHexString" => (F::ToHex(true), Ty::Str),
                    "ToHexStringLower" => (F::ToHex(false), Ty::Str),
                    "FromHexString" => (F::FromHex, Ty::Bytes),
                    _ => return Err(err(pos, format!("unsupported method 'Convert.{name}'"))),
                };
                (f, ty, 1, 2)
            }
            (TypeK::Utf8, "GetBytes") => (F::GetBytes, Ty::Bytes, 1, 1),
            (TypeK::Utf8, "GetString") => (F::GetString, Ty::Str, 1, 3),
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
            (TypeK::Cast(CastTy::Guid), "NewGuid") => (F::NewGuid, Ty::Guid, 0, 0),
            (TypeK::Math, _) => {
                let f = match name {
                    "Min" => F::MathMin,
                    "Max" => F::MathMax,
                    "Abs" => F::MathAbs,
                    "Round" => F::MathRound,
                    "Floor" => F::MathFloor,
                    "Ceiling" => F::MathCeiling,
                    "Pow" => F::MathPow,
                    "Sqrt" => F::MathSqrt,
                    _ => return Err(err(pos, format!("unsupported method 'Math.{name}'"))),
                };
                (f, Ty::Any, 1, 2)
            }
            (TypeK::Cast(c @ (CastTy::JObject | CastTy::JArray | CastTy::JToken)), "Parse") => {
                (F::JsonParse(c), Ty::Json, 1, 1)
            }
            (TypeK::Cast(CastTy::JObject | CastTy::JArray | CastTy::JToken), "FromObject") => {
                (F::FromObject, Ty::Json, 1, 1)
            }
            (TypeK::JsonConvert, "SerializeObject") => (F::Serialize, Ty::Str, 1, 2),
            (TypeK::JsonConvert, "DeserializeObject") => (F::Deserialize, Ty::Json, 1, 1),
            (TypeK::Cast(CastTy::Uri), "EscapeDataString" | "EscapeUriString") => {
                (F::UriEscape, Ty::Str, 1, 1)
            }
            (TypeK::Cast(CastTy::Uri), "UnescapeDataString") => (F::UriUnescape, Ty::Str, 1, 1),
            (TypeK::WebUtility, "UrlEncode") => (F::UrlEncode, Ty::Str, 1, 1),
            (TypeK::WebUtility, "UrlDecode") => (F::UrlDecode, Ty::Str, 1, 1),
            (TypeK::WebUtility, "HtmlEncode") => (F::HtmlEncode, Ty::Str, 1, 1),
            (TypeK::WebUtility, "HtmlDecode") => (F::HtmlDecode, Ty::Str, 1, 1),
            (TypeK::ArrayStatic, "Exists") => (F::ArrayExists, Ty::Bool, 2, 2),
            (TypeK::ArrayStatic, "IndexOf") => (F::ArrayIndexOf, Ty::Int, 2, 2),
            (TypeK::Cast(CastTy::Char), _) => {
                let f = match name {
                    "IsDigit" => F::CharIsDigit,
                    "IsLetter" => F::CharIsLetter,
                    "IsWhiteSpace" => F::CharIsWhiteSpace,
                    "IsLetterOrDigit" => F::CharIsLetterOrDigit,
                    "IsUpper" => F::CharIsUpper,
                    "IsLower" => F::CharIsLower,
                    _ => return Err(err(pos, format!("unsupported method 'char.{name}'"))),
                };
                (f, Ty::Bool, 1, 1)
            }
            _ => return Err(err(pos, format!("unsupported method '{base}.{name}'"))),
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

    /// `new SHA256Managed()`, `new HMACSHA256(key)`, `new HMACSHA256 { Key = key }`.
    fn new_hasher(
        &mut self,
        ctor: Ctor,
        keyed: bool,
        t: &TypeRef,
        args: &[Arg],
        init: Option<&[E]>,
        pos: usize,
    ) -> Result<Comp, ExprError> {
        let mut key = None;
        for item in init.unwrap_or_default() {
            match &item.kind {
                EK::Assign(None, l, r) if keyed && matches!(&l.kind, EK::Name(n) if n == "Key") => {
                    key = Some(self.value(r)?.0);
                }
                _ => {
                    return Err(err(
                        item.pos,
                        format!("unsupported initializer on '{}'", t.name),
                    ))
                }
            }
        }
        let mut a = self.args(args, pos)?;
        if !keyed && !a.is_empty() {
            return Err(err(pos, format!("'{}' takes no arguments", t.name)));
        }
        if keyed {
            if a.len() > 1 || (a.len() == 1 && key.is_some()) {
                return Err(err(
                    pos,
                    format!("wrong number of arguments to '{}'", t.name),
                ));
            }
            if let Some(k) = key {
                a.push(k);
            }
            if a.is_empty() {
                return Err(err(
                    pos,
                    format!(
                        "new {}() without a key is not supported (.NET makes a random key; give one: new {}(keyBytes))",
                        t.name, t.name
                    ),
                ));
            }
        }
        Ok(Comp::Val(Node::New(ctor, a, Vec::new()), Ty::Crypto))
    }

    /// `Array.Copy(src, [srcIndex,] dst, [dstIndex,] length)`, `Buffer.BlockCopy(...)`:
    /// the destination must be a local (or an element of one).
    fn array_copy(
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

impl Compiler {
    /// `aes.Key` (`IV`, `Mode`, `Padding`) as an assignment target, when
    /// `aes` is a local holding an `Aes` object (or of unknown type).
    fn aes_member<'e>(&self, lhs: &'e E) -> Option<(&'e E, AesField)> {
        let EK::Member(base, name) = &lhs.kind else {
            return None;
        };
        let f = match name.as_str() {
            "Key" => AesField::Key,
            "IV" => AesField::Iv,
            "Mode" => AesField::Mode,
            "Padding" => AesField::Padding,
            _ => return None,
        };
        let EK::Name(n) = &base.kind else {
            return None;
        };
        match self.lookup(n) {
            Some((_, Ty::Cipher | Ty::Any)) => Some((base, f)),
            _ => None,
        }
    }

    /// `bytes.Encrypt("Aes", key, iv)`, `Encrypt(aes)`, `Encrypt(aes, key, iv)`
    /// (and `Decrypt`): a literal algorithm name is checked here.
    fn encrypt_call(
        &mut self,
        node: Node,
        ty: Ty,
        m: Method,
        targs: &[TypeRef],
        args: &[Arg],
        pos: usize,
    ) -> Result<Comp, ExprError> {
        let name = if m == Method::Encrypt {
            "Encrypt"
        } else {
            "Decrypt"
        };
        if !targs.is_empty() {
            return Err(err(
                pos,
                format!("type arguments are not supported on '{name}'"),
            ));
        }
        if args.len() != 1 && args.len() != 3 {
            return Err(err(
                pos,
                format!("wrong number of arguments to '{name}' (algorithm, key, IV; or an Aes object[, key, IV])"),
            ));
        }
        if let EK::Str(alg) = &args[0].value.kind {
            if !crypto::is_aes_name(alg) {
                return Err(err(args[0].value.pos, crypto::unsupported_alg(alg)));
            }
            if args.len() != 3 {
                return Err(err(
                    pos,
                    format!("'{name}(\"{alg}\")' needs a key and an IV"),
                ));
            }
        }
        let a = self.args(args, pos)?;
        let _ = ty;
        Ok(Comp::Val(
            Node::Method(Box::new(node), m, a, None),
            Ty::Bytes,
        ))
    }

    /// `new AesManaged()`, `new AesManaged { Key = k, IV = iv, Mode = ..., Padding = ... }`.
    fn new_aes(
        &mut self,
        t: &TypeRef,
        args: &[Arg],
        init: Option<&[E]>,
        pos: usize,
    ) -> Result<Comp, ExprError> {
        if !args.is_empty() {
            return Err(err(pos, format!("'{}' takes no arguments", t.name)));
        }
        let mut fields: Vec<Node> = vec![
            Node::Const(Value::Null),
            Node::Const(Value::Null),
            Node::Const(Value::Int(0)),
            Node::Const(Value::Int(0)),
        ];
        for item in init.unwrap_or_default() {
            let i = match &item.kind {
                EK::Assign(None, l, r) => {
                    let i = match &l.kind {
                        EK::Name(n) if n == "Key" => 0,
                        EK::Name(n) if n == "IV" => 1,
                        EK::Name(n) if n == "Mode" => 2,
                        EK::Name(n) if n == "Padding" => 3,
                        _ => usize::MAX,
                    };
                    if i != usize::MAX {
                        fields[i] = self.value(r)?.0;
                    }
                    i
                }
                _ => usize::MAX,
            };
            if i == usize::MAX {
                return Err(err(
                    item.pos,
                    format!(
                        "unsupported initializer on '{}' (Key, IV, Mode and Padding can be set)",
                        t.name
                    ),
                ));
            }
        }
        Ok(Comp::Val(
            Node::New(Ctor::Aes, fields, Vec::new()),
            Ty::Cipher,
        ))
    }

    /// `new Regex(pattern[, options])`: a literal pattern is compiled here.
    fn new_regex(
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
                Node::Const(Value::Object(std::sync::Arc::new(
                    super::value::Obj::Regex(re),
                ))),
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
    fn regex_static(
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
            a[1] = Node::Const(Value::Object(std::sync::Arc::new(
                super::value::Obj::Regex(re),
            )));
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

fn on_ty(ty: Ty) -> String {
    if ty == Ty::Any {
        String::new()
    } else {
        format!(" on {}", ty.name())
    }
}

fn int_bound(w: IntW, max: bool) -> i64 {
    match (w, max) {
        (IntW::U8, true) => u8::MAX as i64,
        (IntW::I8, true) => i8::MAX as i64,
        (IntW::I16, true) => i16::MAX as i64,
        (IntW::U16, true) => u16::MAX as i64,
        (IntW::I32, true) => i32::MAX as i64,
        (IntW::U32, true) => u32::MAX as i64,
        (IntW::I64 | IntW::U64, true) => i64::MAX,
        (IntW::U8 | IntW::U16 | IntW::U32 | IntW::U64, false) => 0,
        (IntW::I8, false) => i8::MIN as i64,
        (IntW::I16, false) => i16::MIN as i64,
        (IntW::I32, false) => i32::MIN as i64,
        (IntW::I64, false) => i64::MIN,
    }
}
