//! What the developer portal shows of an API: its operations with their
//! parameters, request bodies and responses, read from the stored OpenAPI document
//! when there is one and from the API's own operations otherwise.
//!
//! Every field is plain text ready to render: the portal needs no knowledge of
//! OpenAPI, and odd documents degrade to less detail instead of errors.

use portcullis_core::config::{Api, Operation};
use serde_json::{Map, Value};

use super::refs::{expand, follow};
use super::{read_document, ImportedOperation, Version};

/// An API as the portal shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiView {
    /// The API's name (its id when it has none).
    pub title: String,
    /// The document's `info.version`, empty without one.
    pub version: String,
    /// The API's description, else the document's.
    pub description: String,
    /// The API's operations, in the API's order.
    pub operations: Vec<OperationView>,
}

/// One operation as the portal shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationView {
    /// The operation's id.
    pub id: String,
    /// Its HTTP method, `*` for any method.
    pub method: String,
    /// Its URL template as the gateway routes it (without a query part), e.g. `/users/{id}`.
    pub path: String,
    /// A one-line name, may be empty.
    pub summary: String,
    /// Free text, may be empty.
    pub description: String,
    /// Path, query, header and cookie parameters.
    pub parameters: Vec<ParamView>,
    /// The request body, when the operation takes one.
    pub request_body: Option<BodyView>,
    /// The documented responses, in document order.
    pub responses: Vec<ResponseView>,
}

/// One parameter of an operation.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamView {
    /// Its name.
    pub name: String,
    /// `path`, `query`, `header` or `cookie`.
    pub location: String,
    /// Whether a request must give it.
    pub required: bool,
    /// Free text, may be empty.
    pub description: String,
    /// A short type text: `string`, `integer (int32)`, `array of string`, `string, one of: a, b`.
    pub schema: String,
    /// An example value, when the document gives one.
    pub example: Option<String>,
}

/// A request or response body in one content type.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyView {
    /// Its media type, e.g. `application/json`.
    pub content_type: String,
    /// Free text, may be empty.
    pub description: String,
    /// The schema as pretty JSON with local references resolved; empty without a schema.
    pub schema_json: String,
    /// An example body (pretty JSON, or the text of a string example).
    pub example: Option<String>,
}

/// One documented response of an operation.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseView {
    /// The status code, a range like `4XX`, or `default`.
    pub status: String,
    /// Free text, may be empty.
    pub description: String,
    /// Its bodies, one per content type.
    pub bodies: Vec<BodyView>,
}

/// How many enum values a type text lists before `…`.
const MAX_ENUM_VALUES: usize = 20;

/// How deeply a type text looks into nested schemas (`array of array of ...`).
const MAX_TYPE_DEPTH: usize = 4;

/// The portal's view of `api`, detailed from `document` (the stored OpenAPI document)
/// where it describes the API's operations.
pub fn view(api: &Api, document: Option<&Value>) -> ApiView {
    // A Swagger 2.0 document stored before imports converted it is converted here.
    let converted = document
        .filter(|doc| doc.get("swagger").is_some())
        .map(super::to_openapi3);
    let document = converted.as_ref().or(document);
    let read = document.and_then(|doc| match read_document(doc) {
        Ok(imported) if imported.version != Version::Swagger2 => Some((doc, imported.operations)),
        _ => None,
    });
    let info = document.and_then(|d| d.get("info"));
    let info_text = |key: &str| info.and_then(|i| i.get(key)).map(scalar_text);
    let title = non_empty(&api.display_name)
        .or_else(|| info_text("title"))
        .unwrap_or_else(|| api.id.clone());
    let description = non_empty(&api.description)
        .or_else(|| info_text("description"))
        .unwrap_or_default();
    let operations = api
        .operations
        .iter()
        .map(|op| {
            let source = read.as_ref().and_then(|(doc, ops)| {
                let found = ops
                    .iter()
                    .find(|o| o.id == op.id)
                    .or_else(|| ops.iter().find(|o| same_route(o, op)))?;
                DocOperation::find(doc, found)
            });
            operation_view(op, source)
        })
        .collect();
    ApiView {
        title,
        version: info_text("version").unwrap_or_default(),
        description,
        operations,
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Text of a scalar (`1.0` may be a YAML number); empty for structures.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// Whether a document operation routes like the API's operation.
fn same_route(doc_op: &ImportedOperation, op: &Operation) -> bool {
    doc_op.method.eq_ignore_ascii_case(&op.method) && doc_op.url_template == route_path(op)
}

/// The URL template without its query part (core ignores it when routing).
fn route_path(op: &Operation) -> String {
    op.url_template
        .split_once('?')
        .map_or(op.url_template.as_str(), |(path, _)| path)
        .to_owned()
}

/// An operation's object in the document, with what it needs around it.
struct DocOperation<'a> {
    doc: &'a Value,
    path_item: &'a Map<String, Value>,
    object: &'a Map<String, Value>,
    /// The core template of its path key, to tell whether the API's route changed.
    url_template: &'a str,
}

impl<'a> DocOperation<'a> {
    fn find(doc: &'a Value, found: &'a ImportedOperation) -> Option<Self> {
        let item = follow(doc, doc.get("paths")?.get(&found.path)?).as_object()?;
        let object = item.get(&found.method_key)?.as_object()?;
        Some(DocOperation {
            doc,
            path_item: item,
            object,
            url_template: &found.url_template,
        })
    }
}

fn operation_view(op: &Operation, source: Option<DocOperation<'_>>) -> OperationView {
    let path = route_path(op);
    let doc_text = |key: &str| {
        source
            .as_ref()
            .and_then(|s| s.object.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let summary = non_empty(&op.display_name)
        .or_else(|| doc_text("summary"))
        .unwrap_or_default();
    let description = non_empty(&op.description)
        .or_else(|| doc_text("description"))
        .unwrap_or_default();
    let template_params = template_parameters(op);
    let (parameters, request_body, responses) = match &source {
        Some(source) => {
            let mut parameters = document_parameters(source);
            if source.url_template != path {
                // The route changed since the import: its own path parameters rule.
                parameters.retain(|p| {
                    p.location != "path" || template_params.iter().any(|t| t.name == p.name)
                });
            }
            for generated in template_params {
                let known = parameters
                    .iter()
                    .any(|p| p.name == generated.name && p.location == generated.location);
                if !known {
                    parameters.push(generated);
                }
            }
            let body = source
                .object
                .get("requestBody")
                .and_then(|b| request_body_view(source.doc, b));
            (parameters, body, responses_view(source.doc, source.object))
        }
        None => (template_params, None, Vec::new()),
    };
    OperationView {
        id: op.id.clone(),
        method: op.method.clone(),
        path,
        summary,
        description,
        parameters,
        request_body,
        responses,
    }
}

/// The parameters an operation's URL template names: `{name}` path segments
/// (required) and `name={value}` pairs of a query part.
fn template_parameters(op: &Operation) -> Vec<ParamView> {
    let (path, query) = match op.url_template.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (op.url_template.as_str(), None),
    };
    let param = |name: &str, location: &str| ParamView {
        name: name.to_owned(),
        location: location.to_owned(),
        required: true,
        description: String::new(),
        schema: "string".to_owned(),
        example: None,
    };
    let mut out: Vec<ParamView> = path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| param(name, "path"))
        .collect();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        if !name.is_empty() {
            out.push(param(name, "query"));
        }
    }
    out
}

/// The path item's parameters, then the operation's (which replace a path item
/// parameter of the same name and location).
fn document_parameters(source: &DocOperation<'_>) -> Vec<ParamView> {
    let mut out: Vec<ParamView> = Vec::new();
    let lists = [
        source.path_item.get("parameters"),
        source.object.get("parameters"),
    ];
    for list in lists.into_iter().flatten() {
        let Some(list) = follow(source.doc, list).as_array() else {
            continue;
        };
        for param in list {
            let Some(param) = param_view(source.doc, param) else {
                continue;
            };
            match out
                .iter_mut()
                .find(|p| p.name == param.name && p.location == param.location)
            {
                Some(existing) => *existing = param,
                None => out.push(param),
            }
        }
    }
    out
}

fn param_view(doc: &Value, param: &Value) -> Option<ParamView> {
    let param = follow(doc, param).as_object()?;
    let name = param.get("name")?.as_str()?.to_owned();
    let location = param.get("in")?.as_str()?.to_owned();
    // A parameter's schema is `schema`, or that of its single `content` entry.
    let schema = param.get("schema").or_else(|| {
        let content = param.get("content")?.as_object()?;
        content.values().next()?.get("schema")
    });
    let example = example_of(doc, param).or_else(|| {
        let schema = follow(doc, schema?);
        schema.get("example").cloned()
    });
    Some(ParamView {
        required: location == "path" || param.get("required") == Some(&Value::Bool(true)),
        name,
        location,
        description: text(param.get("description")),
        schema: schema.map_or_else(|| "string".to_owned(), |s| type_text(doc, s, 0)),
        example: example.map(|e| match e {
            Value::String(s) => s,
            other => other.to_string(),
        }),
    })
}

fn text(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// `example`, else the value of the first of `examples` (a map of Example Objects).
fn example_of(doc: &Value, object: &Map<String, Value>) -> Option<Value> {
    if let Some(example) = object.get("example") {
        return Some(example.clone());
    }
    let examples = object.get("examples")?.as_object()?;
    examples
        .values()
        .find_map(|e| follow(doc, e).get("value").cloned())
}

fn request_body_view(doc: &Value, body: &Value) -> Option<BodyView> {
    let body = follow(doc, body).as_object()?;
    let description = text(body.get("description"));
    let mut bodies = bodies_view(doc, body.get("content"), &description);
    // One body is shown: JSON when offered, else the first.
    let json = bodies.iter().position(|b| is_json(&b.content_type));
    match json {
        Some(i) => Some(bodies.swap_remove(i)),
        None if bodies.is_empty() => None,
        None => Some(bodies.swap_remove(0)),
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence == "application/json" || essence.ends_with("+json")
}

fn bodies_view(doc: &Value, content: Option<&Value>, description: &str) -> Vec<BodyView> {
    let Some(content) = content.map(|c| follow(doc, c)).and_then(Value::as_object) else {
        return Vec::new();
    };
    content
        .iter()
        .map(|(content_type, media)| {
            let media = follow(doc, media).as_object();
            let schema = media.and_then(|m| m.get("schema")).map(|s| expand(doc, s));
            let example = media
                .and_then(|m| example_of(doc, m))
                .or_else(|| schema.as_ref()?.get("example").cloned());
            BodyView {
                content_type: content_type.clone(),
                description: description.to_owned(),
                schema_json: schema.as_ref().map(pretty).unwrap_or_default(),
                example: example.map(|e| match e {
                    Value::String(s) => s,
                    other => pretty(&other),
                }),
            }
        })
        .collect()
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

fn responses_view(doc: &Value, object: &Map<String, Value>) -> Vec<ResponseView> {
    let Some(responses) = object
        .get("responses")
        .map(|r| follow(doc, r))
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    responses
        .iter()
        .filter(|(status, _)| !status.starts_with("x-"))
        .map(|(status, response)| {
            let response = follow(doc, response);
            let description = text(response.get("description"));
            ResponseView {
                status: status.clone(),
                bodies: bodies_view(doc, response.get("content"), &description),
                description,
            }
        })
        .collect()
}

/// A short text of a schema's type: `integer (int32)`, `array of string`, `object`,
/// `string, one of: a, b`, `string or null`; `any` when it says nothing.
pub fn type_text(doc: &Value, schema: &Value, depth: usize) -> String {
    if depth > MAX_TYPE_DEPTH {
        return "…".to_owned();
    }
    let Some(obj) = follow(doc, schema).as_object() else {
        return "any".to_owned();
    };
    let alternatives = |key: &str| {
        obj.get(key).and_then(Value::as_array).map(|alts| {
            alts.iter()
                .map(|a| type_text(doc, a, depth + 1))
                .collect::<Vec<_>>()
        })
    };
    let mut text = match obj.get("type") {
        Some(Value::String(t)) => single_type(doc, obj, t, depth),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .map(|t| single_type(doc, obj, t, depth))
            .collect::<Vec<_>>()
            .join(" or "),
        _ => {
            if let Some(alts) = alternatives("oneOf").or_else(|| alternatives("anyOf")) {
                alts.join(" or ")
            } else if let Some(mut all) = alternatives("allOf") {
                if all.len() == 1 {
                    all.swap_remove(0)
                } else {
                    "object".to_owned()
                }
            } else if obj.contains_key("properties") {
                "object".to_owned()
            } else if obj.contains_key("items") {
                single_type(doc, obj, "array", depth)
            } else {
                String::new()
            }
        }
    };
    if text.is_empty() {
        text = "any".to_owned();
    }
    if obj.get("nullable") == Some(&Value::Bool(true)) {
        text.push_str(" or null");
    }
    if let Some(values) = obj.get("enum").and_then(Value::as_array) {
        if !values.is_empty() {
            let mut listed: Vec<String> = values
                .iter()
                .take(MAX_ENUM_VALUES)
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            if values.len() > MAX_ENUM_VALUES {
                listed.push("…".to_owned());
            }
            text = format!("{text}, one of: {}", listed.join(", "));
        }
    }
    text
}

fn single_type(doc: &Value, obj: &Map<String, Value>, kind: &str, depth: usize) -> String {
    if kind == "array" {
        let items = obj
            .get("items")
            .map_or_else(|| "any".to_owned(), |i| type_text(doc, i, depth + 1));
        return format!("array of {items}");
    }
    match obj.get("format").and_then(Value::as_str) {
        Some(format) if !format.is_empty() => format!("{kind} ({format})"),
        _ => kind.to_owned(),
    }
}
