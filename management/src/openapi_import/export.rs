//! An API as an OpenAPI 3 document: the imported document brought up to date with
//! the API's operations, or one generated from them.

use portcullis_core::config::{Api, Operation};
use serde_json::{json, Map, Value};

use super::{read_document, Version, METHODS};

/// The API as an OpenAPI 3 document. `stored` is the document last imported, if any.
///
/// With an imported OpenAPI 3 document, each current operation whose id the document
/// gives keeps its document object (parameters, request body, responses, examples)
/// with the API's name, description and method; the others are generated. Swagger 2.0
/// documents are not converted: their `info` is kept, the paths are generated.
/// Operations for any method (`*`) have no OpenAPI form and are left out. `servers`
/// is the API's path, relative: the management plane does not know the gateway's
/// address.
pub fn export(api: &Api, stored: Option<&Value>) -> Value {
    let imported = stored.and_then(|doc| read_document(doc).ok().map(|i| (doc, i)));
    let mut root = match &imported {
        Some((doc, i)) if i.version != Version::Swagger2 => match doc {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        },
        Some((doc, _)) => {
            let mut map = Map::new();
            map.insert("openapi".into(), json!("3.0.3"));
            if let Some(info) = doc.get("info") {
                map.insert("info".into(), info.clone());
            }
            map
        }
        None => {
            let mut map = Map::new();
            map.insert("openapi".into(), json!("3.0.3"));
            map
        }
    };
    let mut info = match root.remove("info") {
        Some(Value::Object(info)) => info,
        _ => Map::new(),
    };
    let title = if api.display_name.is_empty() {
        api.id.clone()
    } else {
        api.display_name.clone()
    };
    info.insert("title".into(), json!(title));
    if !api.description.is_empty() {
        info.insert("description".into(), json!(api.description));
    }
    if !info.contains_key("version") {
        info.insert("version".into(), json!("1.0"));
    }
    root.insert("info".into(), Value::Object(info));
    root.insert(
        "servers".into(),
        json!([{ "url": format!("/{}", api.normalized_path()) }]),
    );

    let from_doc = |op: &Operation| {
        let (doc, found) = imported
            .as_ref()
            .filter(|(_, i)| i.version != Version::Swagger2)?;
        let source = found.operations.iter().find(|o| o.id == op.id)?;
        let item = doc.get("paths")?.get(&source.path)?;
        Some((source, item, item.get(&source.method_key)?.clone()))
    };
    let mut paths = Map::new();
    for op in &api.operations {
        let method = op.method.to_ascii_lowercase();
        if !METHODS.contains(&method.as_str()) {
            continue;
        }
        let found = from_doc(op);
        // The document's path key while the operation's template is unchanged (it
        // may say more, like `{name}.json`), else the template.
        let (key, item_fields, mut object) = match found {
            Some((source, item, object)) if source.url_template == op.url_template => {
                (source.path.clone(), Some(item), object)
            }
            Some((_, _, object)) => (template_path(&op.url_template), None, object),
            None => (template_path(&op.url_template), None, generated(op)),
        };
        if let Value::Object(map) = &mut object {
            map.insert("operationId".into(), json!(op.id));
            set_or_remove(map, "summary", &op.display_name);
            set_or_remove(map, "description", &op.description);
        }
        let entry = paths.entry(key).or_insert_with(|| {
            let mut fields = Map::new();
            // The path item's own fields (shared parameters, summary) come along.
            if let Some(Value::Object(item)) = item_fields {
                for (k, v) in item {
                    if !METHODS.contains(&k.as_str()) && k != "$ref" {
                        fields.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(fields)
        });
        if let Value::Object(entry) = entry {
            entry.insert(method, object);
        }
    }
    root.insert("paths".into(), Value::Object(paths));
    Value::Object(root)
}

fn set_or_remove(map: &mut Map<String, Value>, key: &str, value: &str) {
    if value.is_empty() {
        map.remove(key);
    } else {
        map.insert(key.into(), json!(value));
    }
}

/// A URL template without its query part, as an OpenAPI path key.
fn template_path(template: &str) -> String {
    template
        .split_once('?')
        .map_or(template, |(path, _)| path)
        .to_owned()
}

/// An operation object from the operation alone: its path and query parameters.
fn generated(op: &Operation) -> Value {
    let mut parameters = Vec::new();
    let (path, query) = match op.url_template.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (op.url_template.as_str(), None),
    };
    for segment in path.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            parameters.push(json!({
                "name": name, "in": "path", "required": true, "schema": { "type": "string" }
            }));
        }
    }
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        if !name.is_empty() {
            parameters.push(json!({
                "name": name, "in": "query", "required": true, "schema": { "type": "string" }
            }));
        }
    }
    let mut object = Map::new();
    if !parameters.is_empty() {
        object.insert("parameters".into(), Value::Array(parameters));
    }
    object.insert(
        "responses".into(),
        json!({ "default": { "description": "The backend's response" } }),
    );
    Value::Object(object)
}
