//! `Jwt`: a JSON Web Token decoded without verifying it (`AsJwt()`).

use std::sync::Arc;

use super::encoding::base64_decode;
use super::value::{Dict, Value};

/// A decoded JWT: header and claims as JSON objects, and the token text.
#[derive(Debug, Clone, PartialEq)]
pub struct Jwt {
    /// The JOSE header.
    pub header: serde_json::Map<String, serde_json::Value>,
    /// The payload's claims.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// The token as given (without a `Bearer ` prefix).
    pub raw: Arc<str>,
}

impl Jwt {
    /// Decodes `header.payload.signature` (an optional `Bearer ` prefix is
    /// dropped); `None` unless both parts are Base64url JSON objects.
    pub fn decode(text: &str) -> Option<Jwt> {
        let t = text.trim();
        let t = match t.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("bearer ") => t[7..].trim_start(),
            _ => t,
        };
        let mut parts = t.split('.');
        let (h, p) = (parts.next()?, parts.next()?);
        let _sig = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let header = decode_part(h)?;
        let claims = decode_part(p)?;
        Some(Jwt {
            header,
            claims,
            raw: t.into(),
        })
    }

    /// A string claim or header field.
    fn str_field(map: &serde_json::Map<String, serde_json::Value>, name: &str) -> Value {
        match map.get(name) {
            Some(serde_json::Value::String(s)) => Value::Str(s.as_str().into()),
            Some(serde_json::Value::Null) | None => Value::Null,
            Some(other) => Value::Str(claim_text(other).into()),
        }
    }

    /// `Subject` (`sub`).
    pub fn subject(&self) -> Value {
        Self::str_field(&self.claims, "sub")
    }

    /// `Issuer` (`iss`).
    pub fn issuer(&self) -> Value {
        Self::str_field(&self.claims, "iss")
    }

    /// `Id` (`jti`).
    pub fn id(&self) -> Value {
        Self::str_field(&self.claims, "jti")
    }

    /// `Algorithm` (header `alg`).
    pub fn algorithm(&self) -> Value {
        Self::str_field(&self.header, "alg")
    }

    /// `Type` (header `typ`).
    pub fn type_(&self) -> Value {
        Self::str_field(&self.header, "typ")
    }

    /// `Audiences` (`aud`, one or many) as `string[]`.
    pub fn audiences(&self) -> Value {
        Value::Array(Arc::new(claim_values(self.claims.get("aud"))))
    }

    /// A `DateTime?` from a NumericDate claim (`exp`, `nbf`, `iat`).
    pub fn time(&self, name: &str) -> Value {
        match self.claims.get(name).and_then(|v| v.as_f64()) {
            Some(secs) if secs.is_finite() && secs.abs() < 1e14 => {
                Value::DateTime((secs * 1000.0) as i64)
            }
            _ => Value::Null,
        }
    }

    /// `Claims`: each claim's values as `string[]`.
    pub fn claims_dict(&self) -> Dict {
        Dict {
            entries: self
                .claims
                .iter()
                .map(|(k, v)| {
                    (
                        Arc::<str>::from(k.as_str()),
                        Value::Array(Arc::new(claim_values(Some(v)))),
                    )
                })
                .collect(),
            ignore_case: false,
        }
    }
}

fn decode_part(part: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let bytes = base64_decode(part, false)?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

/// A claim value as text: strings as is, other JSON compact.
fn claim_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(b) => if *b { "true" } else { "false" }.into(),
        other => other.to_string(),
    }
}

/// A claim's values: an array claim gives each element, others one.
fn claim_values(v: Option<&serde_json::Value>) -> Vec<Value> {
    match v {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| Value::Str(claim_text(i).into()))
            .collect(),
        Some(other) => vec![Value::Str(claim_text(other).into())],
    }
}
