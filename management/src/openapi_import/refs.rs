//! Local references (`"$ref": "#/components/..."`) of a document: followed to their
//! target, or expanded in place for display. Both are bounded, so a reference
//! cycle or a document built to blow up on expansion cannot hang or exhaust memory.

use serde_json::{Map, Value};

/// How many `$ref` hops [`follow`] takes before giving up on a chain.
const MAX_HOPS: usize = 16;

/// How many references [`expand`] nests inside each other.
const MAX_NESTED_REFS: usize = 12;

/// How many JSON values one [`expand`] produces before it stops expanding references.
const MAX_NODES: usize = 20_000;

/// Keys whose values are literal data, never schema: a `$ref` in them is text.
const LITERAL_KEYS: [&str; 5] = ["example", "examples", "default", "enum", "const"];

/// The JSON pointer a local reference names (`#/a/b` → `/a/b`), `None` for other
/// references (another file, a URL).
pub fn local_pointer(reference: &str) -> Option<&str> {
    reference.strip_prefix('#')
}

/// The local reference string of `value` if it is a reference object.
fn reference_of(value: &Value) -> Option<&str> {
    value.get("$ref").and_then(Value::as_str)
}

/// `value` with its chain of local references followed; `value`'s last reachable
/// step when a reference is not local, names nothing, or the chain loops.
pub fn follow<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    let mut current = value;
    for _ in 0..MAX_HOPS {
        let next = reference_of(current)
            .and_then(local_pointer)
            .and_then(|pointer| doc.pointer(pointer));
        match next {
            Some(next) => current = next,
            None => break,
        }
    }
    current
}

/// `value` with the local references in it replaced by their targets. A reference
/// already being expanded (a cycle), one nested too deeply, or one met after the
/// size budget is spent stays a `$ref`, so a reader still sees where it points.
pub fn expand(doc: &Value, value: &Value) -> Value {
    let mut expansion = Expansion {
        doc,
        stack: Vec::new(),
        budget: MAX_NODES,
    };
    expansion.value(value)
}

struct Expansion<'a> {
    doc: &'a Value,
    /// The references being expanded, outermost first.
    stack: Vec<String>,
    budget: usize,
}

impl Expansion<'_> {
    fn value(&mut self, value: &Value) -> Value {
        self.budget = self.budget.saturating_sub(1);
        match value {
            Value::Object(map) => {
                if let Some(expanded) = self.reference(map) {
                    return expanded;
                }
                let mut out = Map::new();
                for (key, child) in map {
                    let child = if LITERAL_KEYS.contains(&key.as_str()) {
                        child.clone()
                    } else {
                        self.value(child)
                    };
                    out.insert(key.clone(), child);
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            other => other.clone(),
        }
    }

    /// The expansion of a reference object, `None` when `map` is not one or it
    /// must stay as it is.
    fn reference(&mut self, map: &Map<String, Value>) -> Option<Value> {
        let reference = map.get("$ref")?.as_str()?;
        let pointer = local_pointer(reference)?;
        if self.budget == 0
            || self.stack.len() >= MAX_NESTED_REFS
            || self.stack.iter().any(|r| r == reference)
        {
            return None;
        }
        let target = self.doc.pointer(pointer)?;
        self.stack.push(reference.to_owned());
        let mut expanded = self.value(target);
        self.stack.pop();
        // Keys beside `$ref` (3.1 allows `description` and friends) refine the target.
        if let Value::Object(out) = &mut expanded {
            for (key, child) in map {
                if key != "$ref" {
                    let child = self.value(child);
                    out.insert(key.clone(), child);
                }
            }
        }
        Some(expanded)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn follows_chains_and_stops_on_loops() {
        let doc = json!({
            "a": { "$ref": "#/b" },
            "b": { "type": "string" },
            "loop1": { "$ref": "#/loop2" },
            "loop2": { "$ref": "#/loop1" },
        });
        assert_eq!(
            follow(&doc, &json!({ "$ref": "#/a" })),
            &json!({ "type": "string" })
        );
        assert!(follow(&doc, &json!({ "$ref": "#/loop1" }))
            .get("$ref")
            .is_some());
        let missing = json!({ "$ref": "#/nowhere" });
        assert_eq!(follow(&doc, &missing), &missing);
        let remote = json!({ "$ref": "other.yaml#/x" });
        assert_eq!(follow(&doc, &remote), &remote);
        assert_eq!(follow(&doc, &json!(3)), &json!(3));
    }

    #[test]
    fn expands_nested_references_and_keeps_cycles_as_refs() {
        let doc = json!({ "components": { "schemas": {
            "Pet": { "type": "object", "properties": {
                "tag": { "$ref": "#/components/schemas/Tag" },
                "parent": { "$ref": "#/components/schemas/Pet" },
            } },
            "Tag": { "type": "string", "example": { "$ref": "literal" } },
        } } });
        let out = expand(&doc, &json!({ "$ref": "#/components/schemas/Pet" }));
        assert_eq!(out["properties"]["tag"]["type"], "string");
        assert_eq!(
            out["properties"]["tag"]["example"],
            json!({ "$ref": "literal" })
        );
        assert_eq!(
            out["properties"]["parent"],
            json!({ "$ref": "#/components/schemas/Pet" })
        );
    }

    #[test]
    fn expansion_of_a_doubling_document_is_bounded() {
        // Each level refers to the one below twice: 2^40 nodes if expanded fully.
        let mut schemas = Map::new();
        for level in 0..40 {
            let below = format!("#/s/l{}", level + 1);
            schemas.insert(
                format!("l{level}"),
                json!({ "a": { "$ref": below }, "b": { "$ref": below } }),
            );
        }
        schemas.insert("l40".into(), json!({ "type": "string" }));
        let doc = json!({ "s": schemas });
        let out = expand(&doc, &json!({ "$ref": "#/s/l0" }));
        let size = out.to_string().len();
        assert!(size < 5_000_000, "{size} bytes");
    }
}
