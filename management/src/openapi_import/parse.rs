//! Reading a document's text: JSON or YAML into a `serde_json::Value`, with the
//! position of a syntax error.

use serde_json::{Map, Number, Value};

use super::ImportError;

/// Parses `bytes` as JSON when the first non-blank character is `{`, as YAML otherwise
/// (JSON is YAML too, but serde_json's messages are more precise for JSON).
pub fn parse_document(bytes: &[u8]) -> Result<Value, ImportError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ImportError::Encoding(e.to_string()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| ImportError::Syntax {
            format: "JSON",
            line: e.line(),
            column: e.column(),
            message: strip_json_position(&e),
        })
    } else {
        let mut value: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| yaml_error(&e))?;
        value.apply_merge().map_err(|e| yaml_error(&e))?;
        yaml_to_json(value, "")
    }
}

fn yaml_error(e: &serde_yaml_ng::Error) -> ImportError {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    let full = e.to_string();
    // serde_yaml_ng appends " at line L column C"; the position has its own fields.
    let message = match full.find(" at line ") {
        Some(at) => full[..at].to_owned(),
        None => full,
    };
    ImportError::Syntax {
        format: "YAML",
        line,
        column,
        message,
    }
}

fn strip_json_position(err: &serde_json::Error) -> String {
    let full = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

/// YAML to JSON: map keys that are numbers or booleans (`200:` under `responses`)
/// become strings; tags are dropped; a `.nan` or `.inf` is refused.
fn yaml_to_json(value: serde_yaml_ng::Value, pointer: &str) -> Result<Value, ImportError> {
    use serde_yaml_ng::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                Value::Number(u.into())
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Value::Number(Number::from_f64(f).ok_or_else(|| {
                    ImportError::structure(
                        pointer,
                        "a number that JSON cannot hold (NaN or infinity)",
                    )
                })?)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| yaml_to_json(v, &format!("{pointer}/{i}")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    Y::Null => "null".to_owned(),
                    _ => {
                        return Err(ImportError::structure(
                            pointer,
                            "a mapping key that is not a string, number or boolean",
                        ))
                    }
                };
                let child = format!("{pointer}/{}", super::escape_pointer(&key));
                out.insert(key, yaml_to_json(v, &child)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value, pointer)?,
    })
}
