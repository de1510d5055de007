//! `Jwt` (from `AsJwt()`) and `BasicAuthCredentials` (from `AsBasic()`):
//! their properties. Decoding is in `expr::jwt`; the `AsJwt`/`AsBasic`
//! string methods are with the other string methods.

use std::sync::Arc;

use crate::expr::eval::{no_member, R};
use crate::expr::jwt::Jwt;
use crate::expr::node::Member;
use crate::expr::value::Value;

// ---- compile time ----

/// Whether `m` is a property of a `Jwt`.
pub(crate) fn member_ok(m: Member) -> bool {
    use Member as M;
    matches!(
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
    )
}

// ---- run time ----

/// Properties of a `Jwt`.
pub(crate) fn member(j: &Jwt, v: &Value, m: Member) -> R<Value> {
    use Member as M;
    Ok(match m {
        M::Claims => Value::Dict(Arc::new(j.claims_dict())),
        M::Subject => j.subject(),
        M::Issuer => j.issuer(),
        M::Id => j.id(),
        M::Audiences => j.audiences(),
        M::ExpirationTime => j.time("exp"),
        M::NotBefore => j.time("nbf"),
        M::IssuedAt => j.time("iat"),
        M::Algorithm => j.algorithm(),
        M::Type => j.type_(),
        _ => return no_member(v, m),
    })
}

/// `UserId` and `Password` of `BasicAuthCredentials`.
pub(crate) fn basic_member(
    user_id: &Arc<str>,
    password: &Arc<str>,
    v: &Value,
    m: Member,
) -> R<Value> {
    match m {
        Member::UserId => Ok(Value::Str(user_id.clone())),
        Member::Password => Ok(Value::Str(password.clone())),
        _ => no_member(v, m),
    }
}
