//! The compiler's view of types and names: static types (`Ty`), the known
//! .NET types (`TypeK`), and the tables that map names to members, methods
//! and cast targets. Which member or method exists on which type is asked
//! of the area that owns the type (`area::*`).

use super::area::{
    certificate, collections, context, crypto, datetime, json, jwt, math, regex, strings, xml,
};
use super::ast::TypeRef;
use super::compile::err;
use super::crypto as crypto_lib;
use super::node::{CastTy, IntW, Member, Method, StaticFn};
use super::ExprError;

/// A static function's binding: the function, its result type, and the
/// least and most arguments it takes.
pub(crate) type StaticSig = (StaticFn, Ty, usize, usize);

/// A static type, as far as the compiler knows it (for early errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
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
    /// An `X509Certificate2`.
    Cert,
    /// A LINQ to XML object (`XDocument`, `XElement`, `XAttribute`, `XName`, `XNamespace`).
    Xml,
    Null,
}

impl Ty {
    /// The C# name of the type, for error messages.
    pub(crate) fn name(self) -> &'static str {
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
            Ty::Cert => "X509Certificate2",
            Ty::Xml => "XElement",
            Ty::Null => "null",
        }
    }

    /// The static type of a cast target.
    pub(crate) fn of_cast(c: CastTy) -> Ty {
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
            CastTy::XDocument
            | CastTy::XElement
            | CastTy::XAttribute
            | CastTy::XName
            | CastTy::XNamespace => Ty::Xml,
            _ => Ty::Any,
        }
    }
}

/// Known types usable as `Type.Member` or `new Type(...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeK {
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
    Hash(crypto_lib::HashAlg, bool),
    BitConverter,
    Buffer,
    /// `Aes`, `AesManaged`, `SymmetricAlgorithm`...
    Aes,
    CipherMode,
    PaddingMode,
    Regex,
    RegexOptions,
}

/// Maps a type name (any namespace prefix dropped) to a known type.
pub(crate) fn type_k(name: &str) -> Option<TypeK> {
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
        "XDocument" => TypeK::Cast(CastTy::XDocument),
        "XElement" | "XContainer" | "XNode" => TypeK::Cast(CastTy::XElement),
        "XAttribute" => TypeK::Cast(CastTy::XAttribute),
        "XName" => TypeK::Cast(CastTy::XName),
        "XNamespace" => TypeK::Cast(CastTy::XNamespace),
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
        // Declared as such, a certificate variable keeps its static type.
        "X509Certificate2" | "X509Certificate" | "X500DistinguishedName" => {
            TypeK::Cast(CastTy::Object)
        }
        "Match" | "Group" | "Capture" | "GroupCollection" | "MatchCollection" => {
            TypeK::Cast(CastTy::Object)
        }
        _ => {
            let (alg, keyed) = crypto_lib::class_of(base)?;
            TypeK::Hash(alg, keyed)
        }
    };
    Some(k)
}

/// Namespaces that may prefix a type name (`System.Text.Encoding`).
pub(crate) const NAMESPACES: &[&str] = &[
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
pub(crate) fn cast_ty(t: &TypeRef) -> Result<CastTy, ExprError> {
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
pub(crate) fn unsupported_type(name: &str) -> String {
    let base = name.rsplit('.').next().unwrap_or(name);
    format!(
        "unsupported type '{name}'{}",
        type_reason(base).unwrap_or("")
    )
}

/// An unresolved dotted name used as a member or method (`System.IO.File.ReadAllText`):
/// named whole, so the error shows the construct and not only its first unknown part.
pub(crate) fn unsupported_path(full: &str, what: &str) -> String {
    if !full.contains('.') || NAMESPACES.contains(&full) {
        return unsupported_type(full);
    }
    format!("unsupported {what} '{full}'")
}

/// Why a known .NET type is not supported (its short name), when there is a reason to give.
pub(crate) fn type_reason(base: &str) -> Option<&'static str> {
    let why = match base {
        "MD5" | "HMACMD5" | "MD5CryptoServiceProvider" => {
            " (MD5 is not available: the gateway's crypto library, ring, has no MD5)"
        }
        "AesGcm" | "AesCcm" | "TripleDES" | "DES" | "RC2" | "ChaCha20Poly1305" => {
            " (of symmetric encryption only AES in CBC mode is supported: Aes, byte[].Encrypt/Decrypt)"
        }
        "RSA" | "RSACryptoServiceProvider" | "ECDsa" => " (asymmetric keys are not supported)",
        "X509Certificate2" | "X509Certificate" => {
            " (certificates cannot be made in expressions: read context.Request.Certificate or context.Deployment.Certificates)"
        }
        "XmlDocument" | "XmlReader" | "XPathDocument" | "XPathNavigator" | "XmlNode" => {
            " (of XML only LINQ to XML is supported: XDocument, XElement)"
        }
        "StringBuilder" => " (use string concatenation or string.Join)",
        _ => return None,
    };
    Some(why)
}

/// A member name to its enum (whether the type has it is checked apart).
pub(crate) fn member_of(name: &str) -> Option<Member> {
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
        "Thumbprint" => M::Thumbprint,
        "SerialNumber" => M::SerialNumber,
        "NotAfter" => M::NotAfter,
        "SubjectName" => M::SubjectName,
        "IssuerName" => M::IssuerName,
        "RawData" => M::RawData,
        "FriendlyName" => M::FriendlyName,
        "Root" => M::Root,
        "LocalName" => M::LocalName,
        "NamespaceName" => M::NamespaceName,
        "Namespace" => M::Namespace,
        "Parent" => M::Parent,
        "HasElements" => M::HasElements,
        "HasAttributes" => M::HasAttributes,
        "IsEmpty" => M::IsEmpty,
        _ => return None,
    })
}

/// A method name to its enum (whether the type has it is checked apart).
pub(crate) fn method_of(name: &str) -> Option<Method> {
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
        "Verify" => M::Verify,
        "GetCertHashString" => M::GetCertHashString,
        "GetSerialNumberString" => M::GetSerialNumberString,
        "Element" => M::Element,
        "Elements" => M::Elements,
        "Attribute" => M::Attribute,
        "Attributes" => M::Attributes,
        "Descendants" => M::Descendants,
        "Ancestors" => M::Ancestors,
        _ => return None,
    })
}

/// Whether method `m` exists on static type `ty` (unknown types allow all).
pub(crate) fn method_ok(ty: Ty, m: Method) -> bool {
    use Method as M;
    let common = matches!(m, M::ToString | M::Equals | M::GetHashCode | M::CompareTo);
    common
        || match ty {
            Ty::Any | Ty::Null => true,
            Ty::Str => strings::method_ok(m),
            Ty::Array => collections::array_method_ok(m),
            Ty::Bytes => collections::array_method_ok(m) || crypto::bytes_method_ok(m),
            Ty::Cipher => crypto::cipher_method_ok(m),
            Ty::Regex => regex::method_ok(m),
            Ty::Json => json::method_ok(m),
            Ty::Dict => collections::dict_method_ok(m),
            Ty::DateTime => datetime::datetime_method_ok(m),
            Ty::TimeSpan => datetime::timespan_method_ok(m),
            Ty::Guid => math::guid_method_ok(m),
            Ty::Crypto => crypto::hasher_method_ok(m),
            Ty::Cert => certificate::method_ok(m),
            Ty::Xml => xml::method_ok(m),
            Ty::Int | Ty::Double | Ty::Bool | Ty::Char | Ty::Response | Ty::Jwt => false,
        }
}

/// The static type of `m`'s result on a receiver of type `ty`.
pub(crate) fn method_result(ty: Ty, m: Method) -> Ty {
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
        M::IsMatch | M::Verify => Ty::Bool,
        M::GetCertHashString | M::GetSerialNumberString => Ty::Str,
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
        M::Element | M::Attribute => Ty::Xml,
        M::Elements | M::Attributes | M::Descendants | M::Ancestors => Ty::Array,
        _ => Ty::Any,
    }
}

/// Whether member `m` exists on static type `ty` (unknown types allow all).
pub(crate) fn member_ok(ty: Ty, m: Member) -> bool {
    use Member as M;
    if matches!(m, M::Value | M::HasValue)
        && !matches!(
            ty,
            Ty::Str | Ty::Array | Ty::Dict | Ty::Jwt | Ty::Response | Ty::Cert
        )
    {
        // `Nullable<T>.Value` / `.HasValue`.
        return true;
    }
    match ty {
        Ty::Any | Ty::Null => true,
        Ty::Str => matches!(m, M::Length),
        Ty::Array | Ty::Bytes => collections::array_member_ok(m),
        Ty::Json => json::member_ok(m),
        Ty::Dict => collections::dict_member_ok(m),
        Ty::DateTime => datetime::datetime_member_ok(m),
        Ty::TimeSpan => datetime::timespan_member_ok(m),
        Ty::Response => context::response_member_ok(m),
        Ty::Jwt => jwt::member_ok(m),
        Ty::Crypto => crypto::hasher_member_ok(m),
        Ty::Cipher => crypto::cipher_member_ok(m),
        Ty::Cert => certificate::member_ok(m),
        Ty::Xml => xml::member_ok(m),
        Ty::Regex => false,
        Ty::Int | Ty::Double | Ty::Bool | Ty::Char | Ty::Guid => false,
    }
}

/// The static type of member `m`.
pub(crate) fn member_result(m: Member) -> Ty {
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
        M::IV | M::RawData => Ty::Bytes,
        M::Thumbprint | M::SerialNumber | M::FriendlyName => Ty::Str,
        M::NotAfter => Ty::DateTime,
        M::Root | M::Parent | M::Namespace => Ty::Xml,
        M::LocalName | M::NamespaceName => Ty::Str,
        M::HasElements | M::HasAttributes | M::IsEmpty => Ty::Bool,
        _ => Ty::Any,
    }
}

/// ` on T` for an error message, or nothing when the type is unknown.
pub(crate) fn on_ty(ty: Ty) -> String {
    if ty == Ty::Any {
        String::new()
    } else {
        format!(" on {}", ty.name())
    }
}
