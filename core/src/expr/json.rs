//! JSON the Newtonsoft way on `serde_json`: `ToString()`, casts, `SelectToken`.

use std::sync::Arc;

use serde_json::Value as J;

use super::datetime;
use super::encoding::base64_encode;
use super::value::{format_double, format_guid, Obj, Value};

/// Newtonsoft's name for a token's type (`JObject`, `JArray`, `JValue`).
pub fn token_type_name(j: &J) -> &'static str {
    match j {
        J::Object(_) => "JObject",
        J::Array(_) => "JArray",
        _ => "JValue",
    }
}

/// Newtonsoft's `JTokenType` name.
pub fn token_kind(j: &J) -> &'static str {
    match j {
        J::Object(_) => "Object",
        J::Array(_) => "Array",
        J::String(_) => "String",
        J::Bool(_) => "Boolean",
        J::Null => "Null",
        J::Number(n) if n.is_f64() => "Float",
        J::Number(_) => "Integer",
    }
}

/// `JToken.ToString()`: a JValue as .NET prints its value (strings raw, `True`),
/// objects and arrays as JSON, indented (two spaces) unless `indented` is false.
pub fn token_to_string(j: &J, indented: bool) -> String {
    match j {
        J::Null => String::new(),
        J::Bool(true) => "True".into(),
        J::Bool(false) => "False".into(),
        J::String(s) => s.clone(),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (_, Some(u)) => u.to_string(),
            _ => format_double(n.as_f64().unwrap_or(0.0)),
        },
        J::Object(_) | J::Array(_) => {
            let mut out = String::new();
            write_json(&mut out, j, if indented { Some(0) } else { None });
            out
        }
    }
}

/// Writes `j` as JSON text; `indent` is the current depth, `None` for compact.
pub fn write_json(out: &mut String, j: &J, indent: Option<usize>) {
    match j {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => out.push_str(&json_number(n)),
        J::String(s) => write_string(out, s),
        J::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent.map(|d| d + 1));
                write_json(out, item, indent.map(|d| d + 1));
            }
            newline(out, indent);
            out.push(']');
        }
        J::Object(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent.map(|d| d + 1));
                write_string(out, k);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_json(out, v, indent.map(|d| d + 1));
            }
            newline(out, indent);
            out.push('}');
        }
    }
}

fn newline(out: &mut String, depth: Option<usize>) {
    if let Some(d) = depth {
        out.push('\n');
        for _ in 0..d {
            out.push_str("  ");
        }
    }
}

fn json_number(n: &serde_json::Number) -> String {
    if n.is_f64() {
        let s = format_double(n.as_f64().unwrap_or(0.0));
        if s.contains(['.', 'E']) {
            s
        } else {
            s + ".0"
        }
    } else {
        n.to_string()
    }
}

/// A JSON string literal, escaped as Newtonsoft does by default.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A value converted to a JSON token, as `JToken.FromObject` / `new JValue(x)` would.
pub fn value_to_json(v: &Value) -> J {
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Double(d) => serde_json::Number::from_f64(*d)
            .map(J::Number)
            .unwrap_or(J::Null),
        Value::Str(s) => J::String(s.to_string()),
        Value::Char(c) => J::String(c.to_string()),
        Value::Array(items) => J::Array(items.iter().map(value_to_json).collect()),
        Value::Json(j) => (**j).clone(),
        Value::DateTime(ms) => {
            J::String(datetime::format(*ms, "yyyy-MM-ddTHH:mm:ss.FFFFFFFZ").unwrap_or_default())
        }
        Value::TimeSpan(ms) => J::String(datetime::format_timespan(*ms)),
        Value::Bytes(b) => J::String(base64_encode(b)),
        Value::Guid(g) => J::String(format_guid(*g, 'D')),
        Value::Jwt(jwt) => J::Object(jwt.claims.clone()),
        Value::Dict(d) => J::Object(
            d.entries
                .iter()
                .map(|(k, v)| (k.to_string(), value_to_json(v)))
                .collect(),
        ),
        Value::Response(_) => J::Null,
        Value::Object(o) => match &**o {
            Obj::Property(k, v) => {
                let mut m = serde_json::Map::new();
                m.insert(k.to_string(), v.clone());
                J::Object(m)
            }
            Obj::Basic { user_id, password } => {
                let mut m = serde_json::Map::new();
                m.insert("UserId".into(), J::String(user_id.to_string()));
                m.insert("Password".into(), J::String(password.to_string()));
                J::Object(m)
            }
            Obj::Uri(s) => J::String(s.to_string()),
            Obj::KeyValue(k, v) => {
                let mut m = serde_json::Map::new();
                m.insert("Key".into(), J::String(k.to_string()));
                m.insert("Value".into(), value_to_json(v));
                J::Object(m)
            }
            Obj::Random(_) | Obj::Hasher(..) | Obj::Aes(_) => J::Object(serde_json::Map::new()),
            Obj::Regex(r) => {
                let mut m = serde_json::Map::new();
                m.insert("Pattern".into(), J::String(r.pattern.to_string()));
                m.insert("Options".into(), J::from(r.options));
                J::Object(m)
            }
            Obj::Match(md) => group_json(md.groups.first().cloned().flatten()),
            Obj::Group(g) => group_json(g.clone()),
            Obj::Groups(md) => J::Array(md.groups.iter().cloned().map(group_json).collect()),
            Obj::Certificate(c) => {
                // The public properties policies read, as Newtonsoft names them.
                let mut m = serde_json::Map::new();
                for (k, v) in [
                    ("Subject", &c.subject),
                    ("Issuer", &c.issuer),
                    ("Thumbprint", &c.thumbprint),
                    ("SerialNumber", &c.serial_number),
                ] {
                    m.insert(k.into(), J::String(v.clone()));
                }
                for (k, secs) in [("NotBefore", c.not_before), ("NotAfter", c.not_after)] {
                    let ms = secs
                        .saturating_mul(1000)
                        .clamp(datetime::MIN_MS, datetime::MAX_MS);
                    m.insert(k.into(), value_to_json(&Value::DateTime(ms)));
                }
                J::Object(m)
            }
            Obj::X500Name(n) => {
                let mut m = serde_json::Map::new();
                m.insert("Name".into(), J::String(n.to_string()));
                J::Object(m)
            }
            // As its text (Newtonsoft would convert the XML; policies read values).
            Obj::Xml(x) => J::String(x.to_display_string()),
        },
    }
}

/// A JSON token as an expression value (`JToken` stays a token).
pub fn token(j: J) -> Value {
    Value::Json(Arc::new(j))
}

/// Parses JSON text; `what` names the expected kind (`JObject`, `JArray`, `JToken`).
pub fn parse(text: &str, what: &str) -> Result<J, String> {
    let j: J = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| format!("{what}.Parse: invalid JSON: {e}"))?;
    match (what, &j) {
        ("JObject", J::Object(_)) | ("JArray", J::Array(_)) | ("JToken", _) => Ok(j),
        _ => Err(format!(
            "Error reading {what} from JsonReader. Current JsonReader item is not {}: {}",
            if what == "JObject" {
                "an object"
            } else {
                "an array"
            },
            token_kind(&j)
        )),
    }
}

/// `SelectToken(path)` for simple paths: `a.b`, `a[0].b`, `['a b']`, `$.a`.
pub fn select_token<'a>(j: &'a J, path: &str) -> Result<Option<&'a J>, String> {
    let b = path.as_bytes();
    let mut i = 0;
    let mut cur = j;
    if b.first() == Some(&b'$') {
        i = 1;
    }
    let mut first = true;
    while i < b.len() {
        let key: Result<String, usize>;
        if b[i] == b'.' {
            i += 1;
            let start = i;
            while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                i += 1;
            }
            key = Ok(path[start..i].to_string());
        } else if b[i] == b'[' {
            i += 1;
            if i < b.len() && (b[i] == b'\'' || b[i] == b'"') {
                let q = b[i];
                i += 1;
                let start = i;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                key = Ok(path[start..i.min(b.len())].to_string());
                i += 1;
            } else {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let n = path[start..i]
                    .parse::<usize>()
                    .map_err(|_| format!("unsupported JSONPath '{path}'"))?;
                key = Err(n);
            }
            if b.get(i) != Some(&b']') {
                return Err(format!("unsupported JSONPath '{path}'"));
            }
            i += 1;
        } else if first {
            let start = i;
            while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                i += 1;
            }
            key = Ok(path[start..i].to_string());
        } else {
            return Err(format!("unsupported JSONPath '{path}'"));
        }
        first = false;
        match key {
            Ok(k) => {
                if k.is_empty() || k == "*" || k.contains(['?', '(', '*']) {
                    return Err(format!("unsupported JSONPath '{path}'"));
                }
                match cur {
                    J::Object(m) => match m.get(&k) {
                        Some(v) => cur = v,
                        None => return Ok(None),
                    },
                    _ => return Ok(None),
                }
            }
            Err(n) => match cur {
                J::Array(a) => match a.get(n) {
                    Some(v) => cur = v,
                    None => return Ok(None),
                },
                _ => return Ok(None),
            },
        }
    }
    Ok(Some(cur))
}

/// `(string)token`.
pub fn to_string_cast(j: &J) -> Result<Value, String> {
    match j {
        J::Null => Ok(Value::Null),
        J::Object(_) | J::Array(_) => Err(format!("Can not convert {} to String.", token_kind(j))),
        other => Ok(Value::Str(token_to_string(other, false).into())),
    }
}

/// `(long)token` / `(int)token`.
pub fn to_int_cast(j: &J, ty: &str) -> Result<Value, String> {
    match j {
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Value::Int(i))
            } else {
                let d = n.as_f64().unwrap_or(0.0);
                if d.is_finite() && d.abs() < 9.2e18 {
                    Ok(Value::Int(d.round() as i64))
                } else {
                    Err(format!(
                        "Value was either too large or too small for an {ty}."
                    ))
                }
            }
        }
        J::String(s) => s
            .trim()
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| "Input string was not in a correct format.".to_string()),
        J::Bool(b) => Ok(Value::Int(*b as i64)),
        _ => Err(format!("Can not convert {} to {ty}.", token_kind(j))),
    }
}

/// `(double)token`.
pub fn to_double_cast(j: &J) -> Result<Value, String> {
    match j {
        J::Number(n) => Ok(Value::Double(n.as_f64().unwrap_or(0.0))),
        J::String(s) => s
            .trim()
            .parse::<f64>()
            .map(Value::Double)
            .map_err(|_| "Input string was not in a correct format.".to_string()),
        J::Bool(b) => Ok(Value::Double(if *b { 1.0 } else { 0.0 })),
        _ => Err(format!("Can not convert {} to Double.", token_kind(j))),
    }
}

/// `(bool)token`.
pub fn to_bool_cast(j: &J) -> Result<Value, String> {
    match j {
        J::Bool(b) => Ok(Value::Bool(*b)),
        J::Number(n) => Ok(Value::Bool(n.as_f64().unwrap_or(0.0) != 0.0)),
        J::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
        J::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
        J::String(_) => Err("String was not recognized as a valid Boolean.".into()),
        _ => Err(format!("Can not convert {} to Boolean.", token_kind(j))),
    }
}

/// A regex `Match` or `Group` as JSON: `Success`, `Index`, `Length`, `Value`.
fn group_json(g: super::regexp::GroupData) -> J {
    let mut m = serde_json::Map::new();
    m.insert("Success".into(), J::Bool(g.is_some()));
    let (i, v) = g.unwrap_or((0, "".into()));
    m.insert("Index".into(), J::from(i));
    m.insert("Length".into(), J::from(v.chars().count()));
    m.insert("Value".into(), J::String(v.to_string()));
    J::Object(m)
}
