//! Swagger 2.0 to OpenAPI 3.0: done once on import, so the stored document, the
//! export and the portal only ever see OpenAPI 3.
//!
//! The document's structure was checked by `read_document` before; pieces that are
//! still odd are carried over as they are rather than refused.

use serde_json::{json, Map, Value};

/// The OpenAPI version converted documents declare.
const OPENAPI_VERSION: &str = "3.0.3";

/// Media type assumed when neither the operation nor the document says (`consumes`,
/// `produces`), as Swagger tools do.
const DEFAULT_MEDIA_TYPE: &str = "application/json";

/// Root keys that have an OpenAPI 3 place of their own (or none).
const CONVERTED_ROOT_KEYS: [&str; 11] = [
    "swagger",
    "host",
    "basePath",
    "schemes",
    "consumes",
    "produces",
    "paths",
    "definitions",
    "parameters",
    "responses",
    "securityDefinitions",
];

/// Parameter fields that describe its value, moved into its `schema`.
const SCHEMA_FIELDS: [&str; 17] = [
    "type",
    "format",
    "items",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "enum",
    "multipleOf",
    "x-nullable",
];

/// The OpenAPI 3.0 form of a Swagger 2.0 document: `definitions` become
/// `components/schemas` (references rewritten), `body` and `formData` parameters a
/// `requestBody`, `consumes`/`produces` content types, `host`/`basePath`/`schemes`
/// `servers`, `securityDefinitions` `components/securitySchemes`.
pub fn to_openapi3(doc: &Value) -> Value {
    let Some(root) = doc.as_object() else {
        return doc.clone();
    };
    let converter = Converter {
        root,
        consumes: media_types(root.get("consumes")),
        produces: media_types(root.get("produces")),
    };
    let mut out = Map::new();
    out.insert("openapi".into(), json!(OPENAPI_VERSION));
    for (key, value) in root {
        if !CONVERTED_ROOT_KEYS.contains(&key.as_str()) {
            out.insert(key.clone(), value.clone());
        }
    }
    if let Some(servers) = servers(root) {
        out.insert("servers".into(), servers);
    }
    if let Some(Value::Object(paths)) = root.get("paths") {
        let paths = paths
            .iter()
            .map(|(path, item)| (path.clone(), converter.path_item(item)))
            .collect();
        out.insert("paths".into(), Value::Object(paths));
    }
    let components = converter.components();
    if !components.is_empty() {
        out.insert("components".into(), Value::Object(components));
    }
    Value::Object(out)
}

/// A `consumes`/`produces` list; `None` when absent or not a list.
fn media_types(value: Option<&Value>) -> Option<Vec<String>> {
    let list = value?.as_array()?;
    Some(
        list.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
    )
}

/// `scheme://host/basePath` per scheme (https first, as the importer prefers it),
/// or the bare `basePath` without a host.
fn servers(root: &Map<String, Value>) -> Option<Value> {
    let base = root.get("basePath").and_then(Value::as_str).unwrap_or("");
    let base = base.trim_end_matches('/');
    let Some(host) = root.get("host").and_then(Value::as_str) else {
        return (!base.is_empty()).then(|| json!([{ "url": base }]));
    };
    let mut schemes: Vec<&str> = root
        .get("schemes")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .filter(|s| *s == "http" || *s == "https")
                .collect()
        })
        .unwrap_or_default();
    if schemes.is_empty() {
        schemes.push("https");
    }
    schemes.sort_by_key(|s| *s != "https");
    Some(Value::Array(
        schemes
            .into_iter()
            .map(|scheme| json!({ "url": format!("{scheme}://{host}{base}") }))
            .collect(),
    ))
}

/// A local reference moved to where OpenAPI 3 keeps the thing.
fn rewrite_ref(reference: &str) -> String {
    for (from, to) in [
        ("#/definitions/", "#/components/schemas/"),
        ("#/parameters/", "#/components/parameters/"),
        ("#/responses/", "#/components/responses/"),
    ] {
        if let Some(rest) = reference.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    reference.to_owned()
}

/// A schema with its references rewritten and its Swagger-only keywords replaced:
/// `x-nullable` → `nullable`, a string `discriminator` → `{propertyName}`,
/// `type: file` → a binary string.
fn schema(value: &Value) -> Value {
    let Value::Object(map) = value else {
        return value.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        let converted = match key.as_str() {
            "$ref" => match value.as_str() {
                Some(r) => json!(rewrite_ref(r)),
                None => value.clone(),
            },
            "x-nullable" => {
                out.insert("nullable".into(), value.clone());
                continue;
            }
            "discriminator" => match value {
                Value::String(name) => json!({ "propertyName": name }),
                other => other.clone(),
            },
            "type" if value == "file" => {
                out.insert("format".into(), json!("binary"));
                json!("string")
            }
            "properties" | "patternProperties" => match value {
                Value::Object(props) => Value::Object(
                    props
                        .iter()
                        .map(|(name, s)| (name.clone(), schema(s)))
                        .collect(),
                ),
                other => other.clone(),
            },
            "items" | "additionalProperties" | "not" => match value {
                Value::Array(items) => Value::Array(items.iter().map(schema).collect()),
                other => schema(other),
            },
            "allOf" | "anyOf" | "oneOf" => match value {
                Value::Array(items) => Value::Array(items.iter().map(schema).collect()),
                other => other.clone(),
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    Value::Object(out)
}

/// A non-body parameter's (or header's, or items') value fields as a schema.
fn value_schema(map: &Map<String, Value>) -> Value {
    let mut fields = Map::new();
    for key in SCHEMA_FIELDS {
        if let Some(value) = map.get(key) {
            let value = match (key, value) {
                ("items", Value::Object(items)) => value_schema(items),
                _ => value.clone(),
            };
            fields.insert(key.to_owned(), value);
        }
    }
    if !fields.contains_key("type") {
        fields.insert("type".into(), json!("string"));
    }
    schema(&Value::Object(fields))
}

/// Where a parameter goes in OpenAPI 3.
enum ParamKind {
    /// Stays a parameter (query, path, header).
    Plain,
    /// Becomes the request body.
    Body,
    /// A field of a form request body.
    Form,
}

struct Converter<'a> {
    root: &'a Map<String, Value>,
    consumes: Option<Vec<String>>,
    produces: Option<Vec<String>>,
}

/// A parameter as found in a list: inline, or the target of a `#/parameters/` reference.
struct FoundParam<'a> {
    /// The parameter it stands for (the entry itself unless a reference).
    resolved: &'a Map<String, Value>,
    /// The name of the `#/parameters/` component it refers to.
    component: Option<&'a str>,
}

impl FoundParam<'_> {
    fn kind(&self) -> ParamKind {
        match self.resolved.get("in").and_then(Value::as_str) {
            Some("body") => ParamKind::Body,
            Some("formData") => ParamKind::Form,
            _ => ParamKind::Plain,
        }
    }

    fn key(&self) -> (Option<&str>, Option<&str>) {
        (
            self.resolved.get("name").and_then(Value::as_str),
            self.resolved.get("in").and_then(Value::as_str),
        )
    }
}

impl<'a> Converter<'a> {
    fn param(&self, entry: &'a Value) -> Option<FoundParam<'a>> {
        let component = entry
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/parameters/"));
        let resolved = match component {
            Some(name) => self.root.get("parameters")?.get(name)?.as_object()?,
            None => entry.as_object()?,
        };
        Some(FoundParam {
            resolved,
            component,
        })
    }

    fn params(&self, list: Option<&'a Value>) -> Vec<FoundParam<'a>> {
        list.and_then(Value::as_array)
            .map(|l| l.iter().filter_map(|p| self.param(p)).collect())
            .unwrap_or_default()
    }

    fn path_item(&self, item: &Value) -> Value {
        let Value::Object(item) = item else {
            return item.clone();
        };
        let shared = self.params(item.get("parameters"));
        let mut out = Map::new();
        for (key, value) in item {
            if super::METHODS.contains(&key.as_str()) {
                out.insert(key.clone(), self.operation(value, &shared));
            } else if key == "parameters" {
                let plain: Vec<Value> = shared
                    .iter()
                    .filter(|p| matches!(p.kind(), ParamKind::Plain))
                    .map(|p| self.plain_param(p))
                    .collect();
                if !plain.is_empty() {
                    out.insert(key.clone(), Value::Array(plain));
                }
            } else {
                out.insert(key.clone(), value.clone());
            }
        }
        Value::Object(out)
    }

    fn plain_param(&self, param: &FoundParam<'_>) -> Value {
        match param.component {
            Some(name) => json!({ "$ref": format!("#/components/parameters/{name}") }),
            None => plain_parameter(param.resolved),
        }
    }

    /// An operation; `shared` are its path item's parameters (the body and form
    /// ones land in its request body unless it overrides them).
    fn operation(&self, op: &Value, shared: &[FoundParam<'_>]) -> Value {
        let Value::Object(op) = op else {
            return op.clone();
        };
        let consumes = media_types(op.get("consumes"))
            .or_else(|| self.consumes.clone())
            .unwrap_or_default();
        let produces = media_types(op.get("produces"))
            .or_else(|| self.produces.clone())
            .unwrap_or_default();
        let own = self.params(op.get("parameters"));
        let inherited = shared.iter().filter(|s| {
            !matches!(s.kind(), ParamKind::Plain) && !own.iter().any(|o| o.key() == s.key())
        });
        let mut plain = Vec::new();
        let mut body = None;
        let mut form = Vec::new();
        for param in inherited.chain(own.iter()) {
            match param.kind() {
                ParamKind::Plain => plain.push(self.plain_param(param)),
                ParamKind::Body => body = Some(param),
                ParamKind::Form => form.push(param.resolved),
            }
        }
        let mut request_body = match body {
            Some(FoundParam {
                component: Some(name),
                ..
            }) => Some(json!({ "$ref": format!("#/components/requestBodies/{name}") })),
            Some(param) => Some(body_request(param.resolved, &consumes)),
            None if !form.is_empty() => Some(form_request(&form, &consumes)),
            None => None,
        };
        let mut out = Map::new();
        for (key, value) in op {
            match key.as_str() {
                "consumes" | "produces" | "schemes" => {}
                "parameters" => {
                    if !plain.is_empty() {
                        out.insert(key.clone(), Value::Array(std::mem::take(&mut plain)));
                    }
                    if let Some(body) = request_body.take() {
                        out.insert("requestBody".into(), body);
                    }
                }
                "responses" => {
                    let responses = match value {
                        Value::Object(responses) => Value::Object(
                            responses
                                .iter()
                                .map(|(status, r)| (status.clone(), response(r, &produces)))
                                .collect(),
                        ),
                        other => other.clone(),
                    };
                    out.insert(key.clone(), responses);
                }
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
        // Parameters inherited from the path item, when the operation lists none.
        if !plain.is_empty() {
            out.insert("parameters".into(), Value::Array(plain));
        }
        if let Some(body) = request_body {
            out.insert("requestBody".into(), body);
        }
        Value::Object(out)
    }

    fn components(&self) -> Map<String, Value> {
        let mut components = Map::new();
        let object = |key: &str| self.root.get(key).and_then(Value::as_object);
        if let Some(definitions) = object("definitions") {
            let schemas = definitions
                .iter()
                .map(|(name, s)| (name.clone(), schema(s)))
                .collect();
            components.insert("schemas".into(), Value::Object(schemas));
        }
        let mut parameters = Map::new();
        let mut bodies = Map::new();
        let consumes = self.consumes.clone().unwrap_or_default();
        for (name, param) in object("parameters").into_iter().flatten() {
            let Value::Object(param) = param else {
                continue;
            };
            match param.get("in").and_then(Value::as_str) {
                Some("body") => {
                    bodies.insert(name.clone(), body_request(param, &consumes));
                }
                // A form field cannot be a component; operations inline it.
                Some("formData") => {}
                _ => {
                    parameters.insert(name.clone(), plain_parameter(param));
                }
            }
        }
        if !parameters.is_empty() {
            components.insert("parameters".into(), Value::Object(parameters));
        }
        if !bodies.is_empty() {
            components.insert("requestBodies".into(), Value::Object(bodies));
        }
        if let Some(responses) = object("responses") {
            let produces = self.produces.clone().unwrap_or_default();
            let responses = responses
                .iter()
                .map(|(name, r)| (name.clone(), response(r, &produces)))
                .collect();
            components.insert("responses".into(), Value::Object(responses));
        }
        if let Some(definitions) = object("securityDefinitions") {
            let schemes = definitions
                .iter()
                .map(|(name, s)| (name.clone(), security_scheme(s)))
                .collect();
            components.insert("securitySchemes".into(), Value::Object(schemes));
        }
        components
    }
}

/// A query, path or header parameter: its value fields move into `schema`,
/// `collectionFormat` becomes `style`/`explode`, `x-example` `example`.
fn plain_parameter(param: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (key, value) in param {
        match key.as_str() {
            k if SCHEMA_FIELDS.contains(&k) => {}
            "collectionFormat" | "allowEmptyValue" => {}
            "x-example" => {
                out.insert("example".into(), value.clone());
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    let location = param.get("in").and_then(Value::as_str).unwrap_or("query");
    if param.get("allowEmptyValue").is_some() && location == "query" {
        out.insert("allowEmptyValue".into(), param["allowEmptyValue"].clone());
    }
    if param.get("type").and_then(Value::as_str) == Some("array") {
        let format = param.get("collectionFormat").and_then(Value::as_str);
        let (style, explode) = match (format.unwrap_or("csv"), location) {
            ("multi", _) => ("form", true),
            ("ssv", "query") => ("spaceDelimited", false),
            ("pipes", "query") => ("pipeDelimited", false),
            (_, "query") => ("form", false),
            _ => ("simple", false),
        };
        out.insert("style".into(), json!(style));
        out.insert("explode".into(), json!(explode));
    }
    out.insert("schema".into(), value_schema(param));
    Value::Object(out)
}

/// The content map of a body: `schema` under each media type (JSON when none is
/// declared), with an example for a type when `examples` has one.
fn content(
    media: &[String],
    schema_value: Option<Value>,
    examples: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut types: Vec<String> = if media.is_empty() {
        vec![DEFAULT_MEDIA_TYPE.to_owned()]
    } else {
        media.to_vec()
    };
    for example_type in examples.into_iter().flat_map(|e| e.keys()) {
        if !types.contains(example_type) {
            types.push(example_type.clone());
        }
    }
    types
        .into_iter()
        .map(|media_type| {
            let mut entry = Map::new();
            if let Some(s) = &schema_value {
                entry.insert("schema".into(), s.clone());
            }
            if let Some(example) = examples.and_then(|e| e.get(&media_type)) {
                entry.insert("example".into(), example.clone());
            }
            (media_type, Value::Object(entry))
        })
        .collect()
}

fn copy_extensions(from: &Map<String, Value>, to: &mut Map<String, Value>) {
    for (key, value) in from {
        if key.starts_with("x-") && key != "x-examples" && key != "x-example" {
            to.insert(key.clone(), value.clone());
        }
    }
}

/// A `body` parameter as a request body in each of `consumes`.
fn body_request(param: &Map<String, Value>, consumes: &[String]) -> Value {
    let mut out = Map::new();
    if let Some(description) = param.get("description") {
        out.insert("description".into(), description.clone());
    }
    let examples = param.get("x-examples").and_then(Value::as_object);
    let content = content(consumes, param.get("schema").map(schema), examples);
    out.insert("content".into(), Value::Object(content));
    if param.get("required") == Some(&Value::Bool(true)) {
        out.insert("required".into(), json!(true));
    }
    copy_extensions(param, &mut out);
    Value::Object(out)
}

/// `formData` parameters as one object-typed form body.
fn form_request(fields: &[&Map<String, Value>], consumes: &[String]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut has_file = false;
    for field in fields {
        let Some(name) = field.get("name").and_then(Value::as_str) else {
            continue;
        };
        has_file |= field.get("type").and_then(Value::as_str) == Some("file");
        let mut property = value_schema(field);
        if let (Value::Object(p), Some(d)) = (&mut property, field.get("description")) {
            p.insert("description".into(), d.clone());
        }
        properties.insert(name.to_owned(), property);
        if field.get("required") == Some(&Value::Bool(true)) {
            required.push(json!(name));
        }
    }
    let form_types: Vec<String> = consumes
        .iter()
        .filter(|c| {
            c.starts_with("multipart/form-data")
                || c.starts_with("application/x-www-form-urlencoded")
        })
        .cloned()
        .collect();
    let media = if !form_types.is_empty() {
        form_types
    } else if has_file {
        vec!["multipart/form-data".to_owned()]
    } else {
        vec!["application/x-www-form-urlencoded".to_owned()]
    };
    let mut object = Map::new();
    object.insert("type".into(), json!("object"));
    object.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        object.insert("required".into(), Value::Array(required));
    }
    let content = content(&media, Some(Value::Object(object)), None);
    let mut out = Map::new();
    out.insert("content".into(), Value::Object(content));
    if fields
        .iter()
        .any(|f| f.get("required") == Some(&Value::Bool(true)))
    {
        out.insert("required".into(), json!(true));
    }
    Value::Object(out)
}

/// A response: `schema` and `examples` as content in each of `produces`, headers'
/// value fields as their schema.
fn response(value: &Value, produces: &[String]) -> Value {
    let Value::Object(map) = value else {
        return value.clone();
    };
    if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
        return json!({ "$ref": rewrite_ref(reference) });
    }
    let mut out = Map::new();
    out.insert(
        "description".into(),
        map.get("description").cloned().unwrap_or_else(|| json!("")),
    );
    if let Some(Value::Object(headers)) = map.get("headers") {
        let headers = headers
            .iter()
            .map(|(name, header)| {
                let converted = match header {
                    Value::Object(h) => {
                        let mut out = Map::new();
                        if let Some(d) = h.get("description") {
                            out.insert("description".into(), d.clone());
                        }
                        out.insert("schema".into(), value_schema(h));
                        Value::Object(out)
                    }
                    other => other.clone(),
                };
                (name.clone(), converted)
            })
            .collect();
        out.insert("headers".into(), Value::Object(headers));
    }
    let examples = map.get("examples").and_then(Value::as_object);
    let body_schema = map.get("schema").map(schema);
    if body_schema.is_some() || examples.is_some_and(|e| !e.is_empty()) {
        let content = content(produces, body_schema, examples);
        out.insert("content".into(), Value::Object(content));
    }
    copy_extensions(map, &mut out);
    Value::Object(out)
}

/// A security definition as an OpenAPI 3 security scheme.
fn security_scheme(value: &Value) -> Value {
    let Value::Object(map) = value else {
        return value.clone();
    };
    let get = |key: &str| map.get(key).cloned().unwrap_or_else(|| json!(""));
    let mut out = Map::new();
    match map.get("type").and_then(Value::as_str) {
        Some("basic") => {
            out.insert("type".into(), json!("http"));
            out.insert("scheme".into(), json!("basic"));
        }
        Some("apiKey") => {
            out.insert("type".into(), json!("apiKey"));
            out.insert("name".into(), get("name"));
            out.insert("in".into(), get("in"));
        }
        Some("oauth2") => {
            let scopes = map.get("scopes").cloned().unwrap_or_else(|| json!({}));
            let (flow, urls): (&str, &[&str]) = match map.get("flow").and_then(Value::as_str) {
                Some("implicit") => ("implicit", &["authorizationUrl"]),
                Some("password") => ("password", &["tokenUrl"]),
                Some("application") => ("clientCredentials", &["tokenUrl"]),
                _ => ("authorizationCode", &["authorizationUrl", "tokenUrl"]),
            };
            let mut flow_object = Map::new();
            for url in urls {
                flow_object.insert((*url).to_owned(), get(url));
            }
            flow_object.insert("scopes".into(), scopes);
            out.insert("type".into(), json!("oauth2"));
            out.insert("flows".into(), json!({ flow: flow_object }));
        }
        _ => return value.clone(),
    }
    if let Some(description) = map.get("description") {
        out.insert("description".into(), description.clone());
    }
    copy_extensions(map, &mut out);
    Value::Object(out)
}
