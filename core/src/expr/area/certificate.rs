//! `X509Certificate2` (`context.Request.Certificate`, the values of
//! `context.Deployment.Certificates`) and `X500DistinguishedName` (its
//! `SubjectName` and `IssuerName`): their properties and methods. The fields
//! are parsed once per connection (`crate::cert`); `Verify()` asks the
//! context, which holds the revision's trusted CAs.

use std::sync::Arc;

use bytes::Bytes;

use crate::cert::ClientCertificate;
use crate::expr::area::context::ExprContext;
use crate::expr::datetime;
use crate::expr::eval::{common_method, no_member, R};
use crate::expr::node::{Member, Method};
use crate::expr::value::{Obj, Value};

// ---- compile time ----

/// Whether `m` is a property of an `X509Certificate2`.
pub(crate) fn member_ok(m: Member) -> bool {
    use Member as M;
    matches!(
        m,
        M::Subject
            | M::Issuer
            | M::Thumbprint
            | M::SerialNumber
            | M::NotBefore
            | M::NotAfter
            | M::SubjectName
            | M::IssuerName
            | M::RawData
            | M::FriendlyName
    )
}

/// Whether `m` is a method of an `X509Certificate2`.
pub(crate) fn method_ok(m: Method) -> bool {
    matches!(
        m,
        Method::Verify | Method::GetCertHashString | Method::GetSerialNumberString
    )
}

// ---- run time ----

/// A certificate as an expression value.
pub(crate) fn value(c: &Arc<ClientCertificate>) -> Value {
    Value::Object(Arc::new(Obj::Certificate(c.clone())))
}

/// Unix seconds as a `DateTime`, inside .NET's range.
fn date(secs: i64) -> Value {
    Value::DateTime(
        secs.saturating_mul(1000)
            .clamp(datetime::MIN_MS, datetime::MAX_MS),
    )
}

/// Properties of an `X509Certificate2`.
pub(crate) fn member(c: &ClientCertificate, v: &Value, m: Member) -> R<Value> {
    use Member as M;
    let name = |n: &str| Value::Object(Arc::new(Obj::X500Name(n.into())));
    Ok(match m {
        M::Subject => Value::Str(c.subject.as_str().into()),
        M::Issuer => Value::Str(c.issuer.as_str().into()),
        M::Thumbprint => Value::Str(c.thumbprint.as_str().into()),
        M::SerialNumber => Value::Str(c.serial_number.as_str().into()),
        M::NotBefore => date(c.not_before),
        M::NotAfter => date(c.not_after),
        M::SubjectName => name(&c.subject),
        M::IssuerName => name(&c.issuer),
        M::RawData => Value::Bytes(Bytes::copy_from_slice(c.leaf())),
        // Windows' certificate store property; a certificate from TLS has none.
        M::FriendlyName => Value::Str("".into()),
        _ => return no_member(v, m),
    })
}

/// `X500DistinguishedName.Name`.
pub(crate) fn name_member(n: &Arc<str>, v: &Value, m: Member) -> R<Value> {
    match m {
        Member::Name => Ok(Value::Str(n.clone())),
        _ => no_member(v, m),
    }
}

/// Methods of an `X509Certificate2`.
pub(crate) fn method(
    ctx: &dyn ExprContext,
    c: &ClientCertificate,
    v: &Value,
    m: Method,
    a: &[Value],
) -> R<Value> {
    match m {
        Method::Verify => Ok(Value::Bool(ctx.verify_certificate(c))),
        Method::GetCertHashString => Ok(Value::Str(c.thumbprint.as_str().into())),
        Method::GetSerialNumberString => Ok(Value::Str(c.serial_number.as_str().into())),
        _ => common_method(v, m, a),
    }
}

/// `ToString()` as .NET writes it for a certificate.
pub(crate) fn to_display_string(c: &ClientCertificate) -> String {
    let d = |secs: i64| match date(secs) {
        Value::DateTime(ms) => datetime::format_default(ms),
        _ => String::new(),
    };
    format!(
        "[Subject]\n  {}\n\n[Issuer]\n  {}\n\n[Serial Number]\n  {}\n\n[Not Before]\n  {}\n\n[Not After]\n  {}\n\n[Thumbprint]\n  {}\n",
        c.subject,
        c.issuer,
        c.serial_number,
        d(c.not_before),
        d(c.not_after),
        c.thumbprint
    )
}

/// `context.Deployment.Certificates`: thumbprint → certificate.
pub(crate) fn deployment_dict(certs: &[Arc<ClientCertificate>]) -> crate::expr::Dict {
    crate::expr::Dict {
        entries: certs
            .iter()
            .map(|c| (Arc::from(c.thumbprint.as_str()), value(c)))
            .collect(),
        // Thumbprints are hex; people write them in either case.
        ignore_case: true,
    }
}
