//! An API as an OpenAPI 3 document: the imported document brought up to date with
//! the API's operations, or one generated from them.

use portcullis_core::config::{Api, Operation};
use serde_json::{json, Map, Value};

use super::{read_document, to_openapi3, Version, ANY_METHOD_EXTENSION, METHODS};

/// The API as an OpenAPI 3 document. `stored` is the document last imported, if any.
///
/// With an imported document, each current operation whose id the document gives
/// keeps its document object (parameters, request body, responses, examples) with
/// the API's name, description and method; the others are generated. (A Swagger 2.0
/// document stored before imports converted it is converted first.) An operation
/// for any method (`*`) is listed under every method of [`METHODS`] its path item
/// has no other operation for, each copy marked with [`ANY_METHOD_EXTENSION`] (the
/// first keeps the operation's id, the others get `{id}.{method}`), which an import
/// reads back as one operation.
/// `servers` is the API's path, relative: the management plane does not know the
/// gateway's address.
pub fn export(api: &Api, stored: Option<&Value>) -> Value {
    let converted = stored
        .filter(|doc| doc.get("swagger").is_some())
        .map(to_openapi3);
    let stored = converted.as_ref().or(stored);
    let imported = stored.and_then(|doc| {
        read_document(doc)
            .ok()
            .filter(|i| i.version != Version::Swagger2)
            .map(|i| (doc, i))
    });
    let mut root = match &imported {
        Some((Value::Object(map), _)) => map.clone(),
        _ => {
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
        let (doc, found) = imported.as_ref()?;
        let source = found.operations.iter().find(|o| o.id == op.id)?;
        let item = super::refs::follow(doc, doc.get("paths")?.get(&source.path)?);
        Some((source, item, item.get(&source.method_key)?.clone()))
    };
    let mut paths = Map::new();
    let mut any_methods = Vec::new();
    for op in &api.operations {
        let method = op.method.to_ascii_lowercase();
        let any_method = op.method == "*";
        if !any_method && !METHODS.contains(&method.as_str()) {
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
            map.remove(ANY_METHOD_EXTENSION);
        }
        let entry = paths.entry(key.clone()).or_insert_with(|| {
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
        if any_method {
            any_methods.push((key, object));
        } else if let Value::Object(entry) = entry {
            entry.insert(method, object);
        }
    }
    // After the others: an any-method operation takes the methods its path item
    // leaves free (a more specific operation there wins, as in routing).
    for (key, object) in any_methods {
        let Some(Value::Object(entry)) = paths.get_mut(&key) else {
            continue;
        };
        let free: Vec<&str> = METHODS
            .into_iter()
            .filter(|m| !entry.contains_key(*m))
            .collect();
        let id = object.get("operationId").cloned();
        if free.is_empty() {
            // Every method of the path has its own operation: this one only serves
            // methods OpenAPI has no key for, and is left out.
            tracing::warn!(path = %key, operation = ?id, "an operation for any method has no free method to be exported under");
        }
        for (i, method) in free.into_iter().enumerate() {
            let mut copy = object.clone();
            if let (Value::Object(map), Some(Value::String(id))) = (&mut copy, &id) {
                map.insert(ANY_METHOD_EXTENSION.into(), json!(true));
                // The first copy carries the id; operation ids are unique in a document.
                if i > 0 {
                    map.insert("operationId".into(), json!(format!("{id}.{method}")));
                }
            }
            entry.insert(method.to_owned(), copy);
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
