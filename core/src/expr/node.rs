//! The compiled tree: names resolved to slots and enums, walked by `eval`.

use std::sync::Arc;

use super::ast::{BinOp, UnOp};
use super::crypto::HashAlg;
use super::value::Value;

/// Which URL of the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlSrc {
    /// `context.Request.Url`.
    Request,
    /// `context.Request.OriginalUrl`.
    Original,
    /// `context.Api.ServiceUrl`.
    Service,
}

/// A part of a context URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlPart {
    /// `Scheme`.
    Scheme,
    /// `Host`.
    Host,
    /// `Port`.
    Port,
    /// `Path`.
    Path,
    /// `QueryString` (`?a=1`, or empty).
    QueryString,
    /// The whole URL (`ToString()`).
    Whole,
}

/// Which message's headers or body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgSrc {
    /// `context.Request`.
    Request,
    /// `context.Response`.
    Response,
}

/// A dictionary-like object of the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtxDict {
    /// Header fields.
    Headers(MsgSrc),
    /// URL query parameters.
    Query(UrlSrc),
    /// `context.Request.MatchedParameters`.
    Matched,
    /// `context.Variables`.
    Variables,
}

/// Dictionary operations compiled against a context dictionary or a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DictOp {
    /// `GetValueOrDefault(name[, default])`.
    Get,
    /// `ContainsKey(name)`.
    Has,
    /// `[name]`.
    Index,
    /// `Count`.
    Count,
    /// `Keys`.
    Keys,
}

/// A leaf property of the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtxProp {
    /// `context.Request.Method`.
    RequestMethod,
    /// `context.Request.IpAddress`.
    RequestIp,
    /// A URL part.
    Url(UrlSrc, UrlPart),
    /// A dictionary as a value.
    Dict(CtxDict),
    /// `context.Response.StatusCode`.
    StatusCode,
    /// `context.Response.StatusReason`.
    StatusReason,
    /// `context.Response` as a value.
    ResponseValue,
    /// A body as raw bytes (or null).
    BodyRaw(MsgSrc),
    /// `context.Subscription.*` (`None`: the object).
    Subscription(Option<SubField>),
    /// `context.Product.Id`/`Name` (`None`: the object).
    Product(Option<bool>),
    /// `context.Api.Id`.
    ApiId,
    /// `context.Api.Name`.
    ApiName,
    /// `context.Api.Path`.
    ApiPath,
    /// `context.Operation.Id`.
    OpId,
    /// `context.Operation.Name`.
    OpName,
    /// `context.Operation.Method`.
    OpMethod,
    /// `context.Operation.UrlTemplate`.
    OpUrlTemplate,
    /// `context.Deployment.GatewayId`.
    GatewayId,
    /// `context.Deployment.Region`.
    Region,
    /// `context.Deployment.ServiceName`.
    ServiceName,
    /// `context.LastError.*` (`None`: the object).
    LastError(Option<ErrField>),
    /// `context.User` (always null here) and its members.
    User,
    /// `context.RequestId`.
    RequestId,
    /// `context.Elapsed`.
    Elapsed,
    /// `context.Timestamp` (now minus elapsed).
    Timestamp,
    /// `context.Request.Certificate` (null without one).
    Certificate,
    /// `context.Deployment.Certificates`: thumbprint → certificate.
    DeploymentCertificates,
}

/// `context.Subscription` members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubField {
    /// `Id`.
    Id,
    /// `Name`.
    Name,
    /// `Key`.
    Key,
    /// `PrimaryKey`.
    PrimaryKey,
    /// `SecondaryKey`.
    SecondaryKey,
}

/// `context.LastError` members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrField {
    /// `Source`.
    Source,
    /// `Reason`.
    Reason,
    /// `Message`.
    Message,
    /// `Scope`.
    Scope,
    /// `Section`.
    Section,
    /// `Path`.
    Path,
    /// `PolicyId`.
    PolicyId,
}

/// Integer widths for casts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntW {
    /// `byte`.
    U8,
    /// `sbyte`.
    I8,
    /// `short`.
    I16,
    /// `ushort`.
    U16,
    /// `int`.
    I32,
    /// `uint`.
    U32,
    /// `long`.
    I64,
    /// `ulong` (kept as i64 bits).
    U64,
}

/// A target type of a cast, `is`, `as` or a generic argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastTy {
    /// `string`.
    Str,
    /// Integer types.
    Int(IntW),
    /// `double`, `float`, `decimal`.
    Double,
    /// `bool`.
    Bool,
    /// `char`.
    Char,
    /// `object`.
    Object,
    /// `JObject`.
    JObject,
    /// `JArray`.
    JArray,
    /// `JToken`.
    JToken,
    /// `JValue`.
    JValue,
    /// `IResponse`.
    Response,
    /// `Jwt`.
    Jwt,
    /// `DateTime`, `DateTimeOffset`.
    DateTime,
    /// `TimeSpan`.
    TimeSpan,
    /// `Guid`.
    Guid,
    /// `Uri`.
    Uri,
    /// `byte[]`.
    Bytes,
    /// Other arrays and lists.
    Array,
    /// Dictionaries.
    Dict,
    /// `BasicAuthCredentials`.
    Basic,
    /// `Exception`.
    Exception,
    /// `HashAlgorithm`, `HMAC`, `SHA256`, `HMACSHA256`...
    Crypto,
    /// `XDocument`.
    XDocument,
    /// `XElement`.
    XElement,
    /// `XAttribute`.
    XAttribute,
    /// `XName`.
    XName,
    /// `XNamespace`.
    XNamespace,
}

/// Instance members resolved at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Member {
    Length,
    Count,
    StatusCode,
    StatusReason,
    Headers,
    Claims,
    Subject,
    Issuer,
    Id,
    Audiences,
    ExpirationTime,
    NotBefore,
    IssuedAt,
    Algorithm,
    Type,
    TotalMilliseconds,
    TotalSeconds,
    TotalMinutes,
    TotalHours,
    TotalDays,
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
    Days,
    Ticks,
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
    DayOfWeek,
    DayOfYear,
    Date,
    TimeOfDay,
    UtcDateTime,
    DateTimeOf,
    UserId,
    Password,
    Key,
    Value,
    Keys,
    Values,
    Message,
    AbsolutePath,
    AbsoluteUri,
    Host,
    Port,
    Scheme,
    Query,
    PathAndQuery,
    HasValues,
    HasValue,
    First,
    Last,
    Name,
    IV,
    Mode,
    Padding,
    KeySize,
    BlockSize,
    Success,
    Groups,
    Index,
    Thumbprint,
    SerialNumber,
    NotAfter,
    SubjectName,
    IssuerName,
    RawData,
    FriendlyName,
    Root,
    LocalName,
    NamespaceName,
    Namespace,
    Parent,
    HasElements,
    HasAttributes,
    IsEmpty,
}

/// Instance methods resolved at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Method {
    Contains,
    StartsWith,
    EndsWith,
    ToLower,
    ToUpper,
    Substring,
    Replace,
    Split,
    Trim,
    TrimStart,
    TrimEnd,
    IndexOf,
    LastIndexOf,
    Equals,
    PadLeft,
    PadRight,
    ToString,
    AsJwt,
    AsBasic,
    GetHashCode,
    Insert,
    Remove,
    ToCharArray,
    CompareTo,
    First,
    FirstOrDefault,
    Last,
    LastOrDefault,
    Single,
    SingleOrDefault,
    Any,
    All,
    Where,
    Select,
    Count,
    ToArray,
    Skip,
    Take,
    Reverse,
    Distinct,
    OrderBy,
    OrderByDescending,
    Sum,
    Min,
    Max,
    Concat,
    ElementAt,
    Value,
    Values,
    SelectToken,
    Property,
    Properties,
    Children,
    ToObject,
    ContainsKey,
    GetValueOrDefault,
    AddSeconds,
    AddMinutes,
    AddHours,
    AddDays,
    AddMilliseconds,
    AddMonths,
    AddYears,
    AddTicks,
    Add,
    Subtract,
    ToUniversalTime,
    ToLocalTime,
    ToUnixTimeSeconds,
    ToUnixTimeMilliseconds,
    Negate,
    Duration,
    ToByteArray,
    Next,
    NextDouble,
    Clear,
    ComputeHash,
    Dispose,
    Encrypt,
    Decrypt,
    IsMatch,
    Match,
    Matches,
    Result,
    Verify,
    GetCertHashString,
    GetSerialNumberString,
    Element,
    Elements,
    Attribute,
    Attributes,
    Descendants,
    Ancestors,
}

/// Static functions and properties of known types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum StaticFn {
    IsNullOrEmpty,
    IsNullOrWhiteSpace,
    Format,
    Join,
    Concat,
    StringEquals,
    StringCompare,
    Parse(CastTy),
    ConvertTo(CastTy),
    ToBase64,
    FromBase64,
    GetBytes,
    GetString,
    Now,
    Today,
    FromUnixSeconds,
    FromUnixMilliseconds,
    TimeSpanFrom(i64),
    NewGuid,
    MathMin,
    MathMax,
    MathAbs,
    MathRound,
    MathFloor,
    MathCeiling,
    MathPow,
    MathSqrt,
    JsonParse(CastTy),
    FromObject,
    Serialize,
    Deserialize,
    UriEscape,
    UriUnescape,
    UrlEncode,
    UrlDecode,
    HtmlEncode,
    HtmlDecode,
    ArrayExists,
    ArrayIndexOf,
    CharIsDigit,
    CharIsLetter,
    CharIsWhiteSpace,
    CharIsLetterOrDigit,
    CharIsUpper,
    CharIsLower,
    /// `SHA256.Create()`.
    HashCreate(HashAlg),
    /// `SHA256.HashData(bytes)`.
    HashData(HashAlg),
    /// `HMACSHA256.HashData(key, bytes)`.
    HmacData(HashAlg),
    /// `BitConverter.ToString(bytes[, start[, length]])`.
    BitConverterString,
    /// `BitConverter.ToInt32(bytes, start)` and friends: (width in bytes, signed).
    BitConverterInt(u8, bool),
    /// `Convert.ToHexString(bytes)` (upper case) / `ToHexStringLower`.
    ToHex(bool),
    /// `Convert.FromHexString(s)`.
    FromHex,
    /// `Aes.Create()`.
    AesCreate,
    /// `Regex.IsMatch/Match/...`: args `[input, pattern or Regex, options, replacement?]`.
    Regex(RegexFn),
    /// `Regex.Escape(s)`.
    RegexEscape,
    /// `Regex.Unescape(s)`.
    RegexUnescape,
    /// `XDocument.Parse(s)` (`XDocument`) or `XElement.Parse(s)` (`XElement`).
    XmlParse(CastTy),
    /// `XName.Get(name)` / `XName.Get(local, ns)`.
    XNameGet,
    /// `XNamespace.Get(uri)`.
    XNamespaceGet,
}

/// Static `Regex` methods (and the instance ones, on a `Regex` object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum RegexFn {
    IsMatch,
    Match,
    Matches,
    Replace,
    Split,
}

/// Settable properties of an `Aes` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AesField {
    /// `Key`.
    Key,
    /// `IV`.
    Iv,
    /// `Mode`.
    Mode,
    /// `Padding`.
    Padding,
}

/// Constructors (`new T(...)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Ctor {
    JObject,
    JArray,
    JProperty,
    JValue,
    DateTime,
    TimeSpan,
    Guid,
    Random,
    Uri,
    List,
    Dictionary,
    String,
    Exception,
    /// `new SHA256Managed()` (`false`) or `new HMACSHA256(key)` (`true`).
    Hasher(HashAlg, bool),
    /// `new AesManaged { ... }`: args are `[key, iv, mode, padding]` (null/0 when not set).
    Aes,
    /// `new Regex(pattern[, options])` from a run-time pattern: `[pattern, options]`.
    Regex,
}

/// An assignable place: a local, then indexer keys into it.
#[derive(Debug, Clone)]
pub struct Place {
    /// The local's slot.
    pub slot: u32,
    /// Indexer keys applied in order.
    pub path: Vec<Node>,
}

/// Mutating calls on a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutOp {
    /// `Add(...)` (JObject, JArray, List, Dictionary).
    Add,
    /// `Remove(x)`.
    Remove,
    /// `Property(name).Remove()` / `Remove(name)` on a JObject.
    RemoveProperty,
    /// `Clear()`.
    Clear,
    /// `Insert(i, x)` on a list.
    Insert,
    /// `Array.Copy(src, srcIndex, this, dstIndex, length)`: args are
    /// `[src, srcIndex, dstIndex, length]`.
    CopyInto,
    /// `aes.Key = v` and the other settable `Aes` properties.
    SetAes(AesField),
}

/// A compiled expression node.
#[derive(Debug, Clone)]
pub enum Node {
    /// A constant.
    Const(Value),
    /// A local variable.
    Local(u32),
    /// A context property.
    Ctx(CtxProp),
    /// An operation on a context dictionary.
    CtxDict(CtxDict, DictOp, Vec<Node>, Option<CastTy>),
    /// `Body.As<T>()` (`CastTy::Str`, `JObject`, `JArray`, `JToken`, `Bytes`).
    BodyAs(BodySrc, CastTy),
    /// `Body.AsFormUrlEncodedContent()`.
    BodyForm(BodySrc),
    /// An instance member.
    Member(Box<Node>, Member),
    /// An instance method call.
    Method(Box<Node>, Method, Vec<Node>, Option<CastTy>),
    /// A static function.
    Static(StaticFn, Vec<Node>),
    /// A `TryParse`-style call assigning its `out` local.
    TryParse(CastTy, Box<Node>, u32),
    /// `TryGetValue(key, out x)` on a dictionary-like value.
    TryGetValue(Box<Node>, Box<Node>, u32),
    /// `a[i]`.
    Index(Box<Node>, Box<Node>),
    /// `target?.rest`: rest reads the target from the slot.
    CondAccess(Box<Node>, u32, Box<Node>),
    /// Unary operator.
    Unary(UnOp, Box<Node>),
    /// Binary operator.
    Binary(BinOp, Box<Node>, Box<Node>),
    /// `c ? a : b`.
    Cond(Box<Node>, Box<Node>, Box<Node>),
    /// `(T)x`.
    Cast(CastTy, bool, Box<Node>),
    /// `x is T [slot]` (`None`: `is null`), negated when the flag is set.
    Is(Option<CastTy>, Box<Node>, Option<u32>, bool),
    /// `x as T`.
    As(CastTy, Box<Node>),
    /// Interpolated string.
    Interp(Vec<INode>),
    /// `new T(args)` with collection initializer items.
    New(Ctor, Vec<Node>, Vec<Node>),
    /// An array literal.
    Array(Vec<Node>),
    /// `new T[n]` (bytes when `true`).
    ArraySized(bool, Box<Node>),
    /// An anonymous object (becomes a JObject).
    Anon(Vec<(Arc<str>, Node)>),
    /// A lambda: parameter slots and body (only as a method argument).
    Lambda(Vec<u32>, Box<Node>),
    /// `place = value` / `place op= value`.
    Assign(Place, Option<BinOp>, Box<Node>),
    /// `++`/`--`: (increment?, prefix?).
    IncDec(Place, bool, bool),
    /// A mutating call on a place.
    Mut(Place, MutOp, Vec<Node>),
    /// `context.Trace(...)` and similar no-ops.
    Nop(Vec<Node>),
    /// A call of local function number `.0` of `Compiled::funcs`.
    CallFn(u32, Vec<Node>),
}

/// A compiled local function.
#[derive(Debug, Clone)]
pub struct Func {
    /// Parameter slots.
    pub params: Vec<u32>,
    /// Per parameter: never reassigned in the body, so when the argument is a
    /// local, changes made through it (`obj.Add(...)`, `arr[0] = x`) are written
    /// back to that local, as with .NET's reference types.
    pub write_back: Vec<bool>,
    /// The body.
    pub body: Stmt,
    /// The slots the function owns (its parameters and locals), saved and
    /// restored around each call so recursion works.
    pub slots: (u32, u32),
}

/// Where a body comes from.
#[derive(Debug, Clone)]
pub enum BodySrc {
    /// The context's request or response.
    Ctx(MsgSrc),
    /// An `IResponse` value.
    Value(Box<Node>),
}

/// A part of a compiled interpolated string.
#[derive(Debug, Clone)]
pub enum INode {
    /// Text.
    Lit(Arc<str>),
    /// A hole: value, alignment, format.
    Hole(Node, Option<i64>, Option<Arc<str>>),
}

/// A compiled statement.
#[derive(Debug, Clone)]
pub enum Stmt {
    /// Evaluate and drop.
    Expr(Node),
    /// Set a local.
    Set(u32, Node),
    /// `if`.
    If(Node, Box<Stmt>, Option<Box<Stmt>>),
    /// `{ ... }`.
    Block(Vec<Stmt>),
    /// `return`.
    Return(Node),
    /// `foreach`.
    Foreach(u32, Node, Box<Stmt>),
    /// `while`.
    While(Node, Box<Stmt>),
    /// `do ... while`.
    DoWhile(Box<Stmt>, Node),
    /// `for`.
    For(Vec<Stmt>, Option<Node>, Vec<Node>, Box<Stmt>),
    /// `break`.
    Break,
    /// `continue`.
    Continue,
    /// `try/catch/finally`: catch's exception slot and body.
    Try(
        Box<Stmt>,
        Option<(Option<u32>, Box<Stmt>)>,
        Option<Box<Stmt>>,
    ),
    /// `throw`.
    Throw(Option<Node>),
}

/// A whole compiled program.
#[derive(Debug, Clone)]
pub enum Program {
    /// `@( ... )`.
    Expr(Node),
    /// `@{ ... }`.
    Block(Vec<Stmt>),
}
