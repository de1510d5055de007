//! Values expressions produce and variables hold, and how C# prints them.

use std::sync::Arc;

use bytes::Bytes;

use super::crypto::{AesParams, HashAlg};
use super::datetime;
use super::json;
use super::jwt::Jwt;
use super::regexp::{DotnetRegex, GroupData, MatchData};
use super::Response;
use crate::cert::ClientCertificate;

/// A value an expression produces or a variable holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `bool`.
    Bool(bool),
    /// `int`/`long` (always 64-bit here).
    Int(i64),
    /// `double`.
    Double(f64),
    /// `string`.
    Str(Arc<str>),
    /// `string[]` and other arrays and lists.
    Array(Arc<Vec<Value>>),
    /// A JSON token (`JObject`, `JArray`, `JValue`).
    Json(Arc<serde_json::Value>),
    /// `DateTime`/`DateTimeOffset`, milliseconds since the Unix epoch, UTC.
    DateTime(i64),
    /// `TimeSpan`, milliseconds.
    TimeSpan(i64),
    /// An `IResponse` (a `send-request` result held in a variable).
    Response(Arc<Response>),
    /// `char`.
    Char(char),
    /// `byte[]`.
    Bytes(Bytes),
    /// `Guid`, as its 128 bits in the order its text shows them.
    Guid(u128),
    /// `Jwt` (`AsJwt()`, or `validate-jwt`'s `output-token-variable-name`).
    Jwt(Arc<Jwt>),
    /// A read-only dictionary (headers, query, claims, form fields...).
    Dict(Arc<Dict>),
    /// Other objects expressions can make (`JProperty`, `Random`, `Uri`...).
    Object(Arc<Obj>),
}

/// A read-only dictionary with string keys, in insertion order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dict {
    /// Entries in order.
    pub entries: Vec<(Arc<str>, Value)>,
    /// Whether keys compare ASCII-case-insensitively (headers do).
    pub ignore_case: bool,
}

impl Dict {
    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| {
                if self.ignore_case {
                    k.eq_ignore_ascii_case(key)
                } else {
                    &**k == key
                }
            })
            .map(|(_, v)| v)
    }
}

/// Less common objects, kept out of `Value` itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Obj {
    /// `new JProperty(name, value)`.
    Property(Arc<str>, serde_json::Value),
    /// `AsBasic()`: the user id and password of a `Basic` credential.
    Basic {
        /// `UserId`.
        user_id: Arc<str>,
        /// `Password`.
        password: Arc<str>,
    },
    /// `new Random(seed)`.
    Random(u64),
    /// `new Uri(text)`: the text as given.
    Uri(Arc<str>),
    /// A dictionary entry, as `foreach` over a dictionary yields it.
    KeyValue(Arc<str>, Value),
    /// `SHA256.Create()` (no key) or `new HMACSHA256(key)`.
    Hasher(HashAlg, Option<Bytes>),
    /// `Aes.Create()`, `new AesManaged()`: key, IV, mode, padding.
    Aes(AesParams),
    /// `new Regex(pattern[, options])` (or a pattern compiled once).
    Regex(DotnetRegex),
    /// A `Match`.
    Match(Arc<MatchData>),
    /// A match's `Groups`.
    Groups(Arc<MatchData>),
    /// A `Group` (`None`: it did not take part: `Success` false, `Value` "").
    Group(GroupData),
    /// An `X509Certificate2` (`context.Request.Certificate`).
    Certificate(Arc<ClientCertificate>),
    /// An `X500DistinguishedName` (`SubjectName`, `IssuerName`): its `Name`.
    X500Name(Arc<str>),
    /// LINQ to XML: a document, element, attribute, name or namespace.
    Xml(super::xml::XmlVal),
}

impl Value {
    /// The value as C#'s `ToString()` writes it (`True`, `42`, text as is, `null` as empty).
    pub fn to_display_string(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(true) => "True".into(),
            Value::Bool(false) => "False".into(),
            Value::Int(i) => i.to_string(),
            Value::Double(d) => format_double(*d),
            Value::Str(s) => s.to_string(),
            Value::Array(items) => {
                if items
                    .iter()
                    .all(|v| matches!(v, Value::Str(_) | Value::Null))
                {
                    "System.String[]".into()
                } else {
                    "System.Object[]".into()
                }
            }
            Value::Json(j) => json::token_to_string(j, true),
            Value::DateTime(ms) => datetime::format_default(*ms),
            Value::TimeSpan(ms) => datetime::format_timespan(*ms),
            Value::Response(_) => "IResponse".into(),
            Value::Char(c) => c.to_string(),
            Value::Bytes(_) => "System.Byte[]".into(),
            Value::Guid(g) => format_guid(*g, 'D'),
            Value::Jwt(_) => "Jwt".into(),
            Value::Dict(_) => {
                "System.Collections.Generic.Dictionary`2[System.String,System.String[]]".into()
            }
            Value::Object(o) => match &**o {
                Obj::Property(name, value) => {
                    let mut m = serde_json::Map::new();
                    m.insert(name.to_string(), value.clone());
                    let s = json::token_to_string(&serde_json::Value::Object(m), true);
                    // A JProperty prints as its "name": value line.
                    let inner = s.trim_start_matches('{').trim_end_matches('}').trim();
                    inner.to_string()
                }
                Obj::Basic { .. } => "BasicAuthCredentials".into(),
                Obj::Random(_) => "System.Random".into(),
                Obj::Uri(s) => s.to_string(),
                Obj::KeyValue(k, v) => format!("[{}, {}]", k, v.to_display_string()),
                Obj::Hasher(alg, key) => format!(
                    "System.Security.Cryptography.{}",
                    if key.is_some() {
                        alg.hmac_name()
                    } else {
                        alg.hash_name()
                    }
                ),
                Obj::Aes(_) => "System.Security.Cryptography.AesManaged".into(),
                Obj::Regex(r) => r.pattern.to_string(),
                Obj::Match(m) => m
                    .groups
                    .first()
                    .and_then(|g| g.as_ref())
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default(),
                Obj::Groups(_) => "System.Text.RegularExpressions.GroupCollection".into(),
                Obj::Group(g) => g.as_ref().map(|(_, v)| v.to_string()).unwrap_or_default(),
                Obj::Certificate(c) => super::area::certificate::to_display_string(c),
                Obj::X500Name(_) => {
                    "System.Security.Cryptography.X509Certificates.X500DistinguishedName".into()
                }
                Obj::Xml(x) => x.to_display_string(),
            },
        }
    }

    /// The C# type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Double(_) => "double",
            Value::Str(_) => "string",
            Value::Array(_) => "array",
            Value::Json(j) => json::token_type_name(j),
            Value::DateTime(_) => "DateTime",
            Value::TimeSpan(_) => "TimeSpan",
            Value::Response(_) => "IResponse",
            Value::Char(_) => "char",
            Value::Bytes(_) => "byte[]",
            Value::Guid(_) => "Guid",
            Value::Jwt(_) => "Jwt",
            Value::Dict(_) => "dictionary",
            Value::Object(o) => match &**o {
                Obj::Property(..) => "JProperty",
                Obj::Basic { .. } => "BasicAuthCredentials",
                Obj::Random(_) => "Random",
                Obj::Uri(_) => "Uri",
                Obj::KeyValue(..) => "KeyValuePair",
                Obj::Hasher(alg, None) => alg.hash_name(),
                Obj::Hasher(alg, Some(_)) => alg.hmac_name(),
                Obj::Aes(_) => "Aes",
                Obj::Regex(_) => "Regex",
                Obj::Match(_) => "Match",
                Obj::Groups(_) => "GroupCollection",
                Obj::Group(_) => "Group",
                Obj::Certificate(_) => "X509Certificate2",
                Obj::X500Name(_) => "X500DistinguishedName",
                Obj::Xml(x) => x.type_name(),
            },
        }
    }

    /// Whether this is `null` (a JSON `null` token is not).
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as a `bool`, if it is one (or a JSON boolean).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Json(j) => j.as_bool(),
            _ => None,
        }
    }

    /// The value as an integer, if it is one (or a JSON integer).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Json(j) => j.as_i64(),
            _ => None,
        }
    }

    /// The value as a `double`, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Double(d) => Some(*d),
            Value::Json(j) => j.as_f64(),
            _ => None,
        }
    }

    /// The text, if this is a string (or a JSON string).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Json(j) => j.as_str(),
            _ => None,
        }
    }

    /// The value as JSON, as Newtonsoft would serialize it.
    pub fn to_json(&self) -> serde_json::Value {
        json::value_to_json(self)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s.into())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.into())
    }
}

impl From<Arc<str>> for Value {
    fn from(s: Arc<str>) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i.into())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(d: f64) -> Self {
        Value::Double(d)
    }
}

impl From<serde_json::Value> for Value {
    fn from(j: serde_json::Value) -> Self {
        Value::Json(Arc::new(j))
    }
}

impl From<Response> for Value {
    fn from(r: Response) -> Self {
        Value::Response(Arc::new(r))
    }
}

impl From<Jwt> for Value {
    fn from(j: Jwt) -> Self {
        Value::Jwt(Arc::new(j))
    }
}

/// A `double` as .NET's `ToString()` writes it: shortest round-trip digits,
/// scientific notation (`1E+15`, `1E-05`) outside 1e-5..1e15.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "∞".into() } else { "-∞".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e-5".
    let e = format!("{d:e}");
    let (mantissa, exp) = match e.split_once('e') {
        Some((m, x)) => (m, x.parse::<i32>().unwrap_or(0)),
        None => return d.to_string(),
    };
    if (-5..15).contains(&exp) {
        return d.to_string();
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{}E{}{:02}", mantissa, sign, exp.unsigned_abs())
}

/// A `Guid` as `ToString(format)` writes it (`D`, `N`, `B`, `P`).
pub fn format_guid(g: u128, format: char) -> String {
    let hex = format!("{g:032x}");
    let dashed = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    match format.to_ascii_uppercase() {
        'N' => hex,
        'B' => format!("{{{dashed}}}"),
        'P' => format!("({dashed})"),
        _ => dashed,
    }
}

/// Parses a `Guid` in `D`, `N`, `B` or `P` form.
pub fn parse_guid(s: &str) -> Option<u128> {
    let s = s.trim();
    let s = s
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .or_else(|| s.strip_prefix('(').and_then(|x| x.strip_suffix(')')))
        .unwrap_or(s);
    let hex: String = if s.len() == 36 {
        let b = s.as_bytes();
        if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
            return None;
        }
        s.chars().filter(|c| *c != '-').collect()
    } else {
        s.to_string()
    };
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}
