//! An operation's contract, compiled once per configuration from the API's
//! OpenAPI 3 document: its parameters, request bodies and responses, with
//! their JSON Schemas compiled and their examples resolved.
//!
//! `$ref`s inside schemas are resolved by the JSON Schema validator against
//! the document's `components` (each schema is compiled as a root that carries
//! them), so recursive schemas work; parameter, request body, response and
//! header objects that are `$ref`s are followed here.

use std::sync::Arc;

use serde_json::{Map, Value};

/// Why an API's contract cannot be compiled: where in the document, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("OpenAPI document at `{pointer}`: {message}")]
pub struct ContractError {
    /// JSON pointer (RFC 6901) of the offending value.
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

impl ContractError {
    fn new(pointer: &str, message: impl Into<String>) -> Self {
        ContractError {
            pointer: pointer.to_owned(),
            message: message.into(),
        }
    }
}

/// Where a parameter is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamIn {
    /// In the path (`/users/{id}`).
    Path,
    /// In the query string.
    Query,
    /// A header.
    Header,
}

impl ParamIn {
    /// The words APIM's messages use for it.
    pub fn noun(self) -> &'static str {
        match self {
            ParamIn::Path => "path parameter",
            ParamIn::Query => "query parameter",
            ParamIn::Header => "header",
        }
    }

    /// The `Type` of a validation error about it.
    pub fn error_type(self) -> &'static str {
        match self {
            ParamIn::Path => "PathParameter",
            ParamIn::Query => "QueryParameter",
            ParamIn::Header => "RequestHeader",
        }
    }
}

/// How a schema is changed before it is compiled, as `validate-content`'s
/// attributes ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Variant {
    /// `allow-additional-properties`: `Some(true)` drops every
    /// `additionalProperties: false`, `Some(false)` forbids properties no
    /// `properties` names; `None` keeps the schema's own.
    pub additional_properties: Option<bool>,
    /// `case-insensitive-property-names`: property names compared in lower case.
    pub case_insensitive: bool,
}

/// A compiled JSON Schema with the variants the configuration's policies use.
#[derive(Debug)]
pub struct Schema {
    /// The schema as written (resolved against the document's components).
    pub source: Value,
    /// The compiled validators, the plain one first.
    validators: Vec<(Variant, jsonschema::Validator)>,
}

impl Schema {
    /// The validator for `variant` (the plain one if that variant was not compiled).
    pub fn validator(&self, variant: Variant) -> Option<&jsonschema::Validator> {
        self.validators
            .iter()
            .find(|(v, _)| *v == variant)
            .or_else(|| self.validators.first())
            .map(|(_, v)| v)
    }

    /// The `type` the schema names (`string` when it names none or several).
    pub fn primary_type(&self) -> &str {
        match self.source.get("type") {
            Some(Value::String(t)) => t,
            Some(Value::Array(types)) => types
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("string"),
            _ => "string",
        }
    }

    /// The `type` of the array's `items` (`string` by default).
    pub fn item_type(&self) -> &str {
        match self.source.get("items").and_then(|i| i.get("type")) {
            Some(Value::String(t)) => t,
            _ => "string",
        }
    }
}

/// One parameter or response header.
#[derive(Debug)]
pub struct Param {
    /// Its name (headers compare without regard to case).
    pub name: String,
    /// Where it is sent.
    pub location: ParamIn,
    /// Whether a request must carry it.
    pub required: bool,
    /// Its schema, when it has one and validation needs it.
    pub schema: Option<Schema>,
}

/// One media type of a request or response body.
#[derive(Debug)]
pub struct Media {
    /// The content type as the document names it, lower case (`application/json`).
    pub content_type: String,
    /// The schema's name for error messages (`Pet`, or the content type's own
    /// description when the schema is inline).
    pub definition: String,
    /// Its schema, when it has one and validation needs it.
    pub schema: Option<Schema>,
    /// The example a mock answers with: `example`, else the first of `examples`.
    pub example: Option<Value>,
}

/// One response of the operation.
#[derive(Debug)]
pub struct ResponseSpec {
    /// The key as written: `200`, `2XX` or `default`.
    pub key: String,
    /// Its headers.
    pub headers: Vec<Param>,
    /// Its representations, in document order.
    pub content: Vec<Media>,
}

impl ResponseSpec {
    /// Whether the key names `status` exactly (`200`) or by class (`2XX`).
    pub fn matches(&self, status: u16) -> bool {
        let key = self.key.to_ascii_uppercase();
        if let Ok(code) = key.parse::<u16>() {
            return code == status;
        }
        let bytes = key.as_bytes();
        bytes.len() == 3
            && &bytes[1..] == b"XX"
            && u16::from(bytes[0].wrapping_sub(b'0')) == status / 100
    }
}

/// An operation's contract.
#[derive(Debug, Default)]
pub struct OperationContract {
    /// Path, query and header parameters (path-level ones merged in).
    pub parameters: Vec<Param>,
    /// The request body's representations.
    pub request_body: Vec<Media>,
    /// Whether the request body is required.
    pub request_body_required: bool,
    /// The responses, in document order.
    pub responses: Vec<ResponseSpec>,
}

impl OperationContract {
    /// The response for `status`: an exact key first, then its class, then `default`.
    pub fn response(&self, status: u16) -> Option<&ResponseSpec> {
        let exact = self
            .responses
            .iter()
            .find(|r| r.key.parse::<u16>().ok() == Some(status));
        exact
            .or_else(|| self.responses.iter().find(|r| r.matches(status)))
            .or_else(|| self.responses.iter().find(|r| r.key == "default"))
    }

    /// The response `mock-response` answers with for `status` (none given: the
    /// first 2xx response of the document, else 200's).
    pub fn mock_response(&self, status: Option<u16>) -> Option<&ResponseSpec> {
        match status {
            Some(s) => self.response(s),
            None => self
                .responses
                .iter()
                .find(|r| r.key.starts_with('2'))
                .or_else(|| self.response(200)),
        }
    }
}

/// What the configuration's policies need compiled.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    /// Compile schemas at all (some validation policy exists).
    pub schemas: bool,
    /// The body schema variants `validate-content` asks for, besides the plain one.
    pub variants: Vec<Variant>,
}

/// One operation of the configuration, as the contract is looked up for it.
#[derive(Debug, Clone, Copy)]
pub struct OperationKey<'a> {
    /// Upper-case method, or `*`.
    pub method: &'a str,
    /// The URL template (`/users/{id}`).
    pub url_template: &'a str,
}

/// Compiles the contract of every operation in `ops` found in `doc` (an
/// OpenAPI 3.0 or 3.1 document); an operation the document does not describe
/// gets `None`.
pub fn compile(
    doc: &Value,
    ops: &[OperationKey<'_>],
    needs: &Needs,
) -> Result<Vec<Option<Arc<OperationContract>>>, ContractError> {
    let root = doc
        .as_object()
        .ok_or_else(|| ContractError::new("", "the document must be an object"))?;
    let draft = match root.get("openapi").and_then(Value::as_str) {
        Some(v) if v.starts_with("3.0") => jsonschema::Draft::Draft4,
        Some(v) if v.starts_with("3.1") => jsonschema::Draft::Draft202012,
        Some(v) => {
            return Err(ContractError::new(
                "/openapi",
                format!("unsupported OpenAPI version `{v}`: 3.0.x or 3.1.x expected"),
            ))
        }
        None if root.contains_key("swagger") => return Err(ContractError::new(
            "/swagger",
            "Swagger 2.0: import it through the management plane, which converts it to OpenAPI 3",
        )),
        None => return Err(ContractError::new("/openapi", "is required")),
    };
    let openapi30 = draft == jsonschema::Draft::Draft4;
    let components = root.get("components").cloned().unwrap_or(Value::Null);
    let cx = Cx {
        doc,
        components: if openapi30 {
            nullable_to_type(&components)
        } else {
            components
        },
        draft,
        openapi30,
        needs,
    };
    let paths = match root.get("paths") {
        None => None,
        Some(Value::Object(p)) => Some(p),
        Some(_) => return Err(ContractError::new("/paths", "must be an object")),
    };
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let found = paths.and_then(|p| find_operation(p, *op));
        out.push(match found {
            None => None,
            Some((path, method, item, operation)) => {
                let pointer = format!("/paths/{}/{method}", escape(path));
                Some(Arc::new(cx.operation(&pointer, item, operation)?))
            }
        });
    }
    Ok(out)
}

/// The path item and operation object of `op`: the document path whose
/// segments match the URL template's (parameter names aside) and the method.
fn find_operation<'d>(
    paths: &'d Map<String, Value>,
    op: OperationKey<'_>,
) -> Option<(&'d str, &'d str, &'d Value, &'d Value)> {
    let template = op.url_template.split('?').next().unwrap_or("");
    let want = shape(template);
    for (path, item) in paths {
        if path.starts_with("x-") || shape(path) != want {
            continue;
        }
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            if op.method == "*" || op.method.eq_ignore_ascii_case(method) {
                return Some((path, method, item, operation));
            }
        }
    }
    None
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// A path's segments with every parameter segment written `{}`.
fn shape(path: &str) -> Vec<&str> {
    path.trim_matches('/')
        .split('/')
        .map(|s| if s.contains('{') { "{}" } else { s })
        .collect()
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

struct Cx<'a> {
    doc: &'a Value,
    components: Value,
    draft: jsonschema::Draft,
    openapi30: bool,
    needs: &'a Needs,
}

impl Cx<'_> {
    /// Follows a local `$ref` (repeatedly); `pointer` is where `value` is.
    fn follow<'v>(&'v self, value: &'v Value, pointer: &str) -> Result<&'v Value, ContractError> {
        let mut current = value;
        for _ in 0..16 {
            let Some(reference) = current.get("$ref") else {
                return Ok(current);
            };
            let target = reference
                .as_str()
                .and_then(|r| r.strip_prefix('#'))
                .ok_or_else(|| {
                    ContractError::new(
                        &format!("{pointer}/$ref"),
                        "only local references (`#/...`) are supported",
                    )
                })?;
            current = self.doc.pointer(target).ok_or_else(|| {
                ContractError::new(
                    &format!("{pointer}/$ref"),
                    format!("`#{target}` is not in the document"),
                )
            })?;
        }
        Err(ContractError::new(pointer, "too many nested references"))
    }

    fn operation(
        &self,
        pointer: &str,
        item: &Value,
        operation: &Value,
    ) -> Result<OperationContract, ContractError> {
        let mut contract = OperationContract::default();
        let item_pointer = pointer.rsplit_once('/').map_or("", |(p, _)| p);
        // Operation-level parameters override path-level ones of the same name and place.
        let mut params: Vec<Param> = Vec::new();
        for (list, at) in [
            (operation.get("parameters"), pointer.to_owned()),
            (item.get("parameters"), item_pointer.to_owned()),
        ] {
            let Some(list) = list else { continue };
            let list = list.as_array().ok_or_else(|| {
                ContractError::new(&format!("{at}/parameters"), "must be an array")
            })?;
            for (i, p) in list.iter().enumerate() {
                let at = format!("{at}/parameters/{i}");
                if let Some(param) = self.parameter(&at, p)? {
                    let taken = params.iter().any(|q| {
                        q.location == param.location
                            && (q.name == param.name
                                || (param.location == ParamIn::Header
                                    && q.name.eq_ignore_ascii_case(&param.name)))
                    });
                    if !taken {
                        params.push(param);
                    }
                }
            }
        }
        contract.parameters = params;
        if let Some(body) = operation.get("requestBody") {
            let at = format!("{pointer}/requestBody");
            let body = self.follow(body, &at)?;
            contract.request_body_required = body.get("required") == Some(&Value::Bool(true));
            contract.request_body = self.content(&format!("{at}/content"), body.get("content"))?;
        }
        if let Some(responses) = operation.get("responses") {
            let responses = responses.as_object().ok_or_else(|| {
                ContractError::new(&format!("{pointer}/responses"), "must be an object")
            })?;
            for (key, response) in responses {
                if key.starts_with("x-") {
                    continue;
                }
                let at = format!("{pointer}/responses/{}", escape(key));
                let response = self.follow(response, &at)?;
                let mut headers = Vec::new();
                if let Some(Value::Object(hs)) = response.get("headers") {
                    for (name, h) in hs {
                        let hat = format!("{at}/headers/{}", escape(name));
                        let h = self.follow(h, &hat)?;
                        headers.push(Param {
                            name: name.clone(),
                            location: ParamIn::Header,
                            required: h.get("required") == Some(&Value::Bool(true)),
                            schema: self.param_schema(&hat, h)?,
                        });
                    }
                }
                contract.responses.push(ResponseSpec {
                    key: key.clone(),
                    headers,
                    content: self.content(&format!("{at}/content"), response.get("content"))?,
                });
            }
        }
        Ok(contract)
    }

    fn parameter(&self, pointer: &str, p: &Value) -> Result<Option<Param>, ContractError> {
        let p = self.follow(p, pointer)?;
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ContractError::new(&format!("{pointer}/name"), "is required"))?;
        let location = match p.get("in").and_then(Value::as_str) {
            Some("path") => ParamIn::Path,
            Some("query") => ParamIn::Query,
            Some("header") => ParamIn::Header,
            // Cookies are not validated by APIM's policies.
            Some("cookie") => return Ok(None),
            _ => {
                return Err(ContractError::new(
                    &format!("{pointer}/in"),
                    "must be `path`, `query`, `header` or `cookie`",
                ))
            }
        };
        Ok(Some(Param {
            name: name.to_owned(),
            location,
            required: location == ParamIn::Path || p.get("required") == Some(&Value::Bool(true)),
            schema: self.param_schema(pointer, p)?,
        }))
    }

    /// A parameter's or header's `schema`, or its `content`'s first one.
    fn param_schema(&self, pointer: &str, p: &Value) -> Result<Option<Schema>, ContractError> {
        if let Some(schema) = p.get("schema") {
            return self.schema(&format!("{pointer}/schema"), schema, &[]);
        }
        if let Some(Value::Object(content)) = p.get("content") {
            if let Some((ct, media)) = content.iter().next() {
                if let Some(schema) = media.get("schema") {
                    let at = format!("{pointer}/content/{}/schema", escape(ct));
                    return self.schema(&at, schema, &[]);
                }
            }
        }
        Ok(None)
    }

    fn content(&self, pointer: &str, content: Option<&Value>) -> Result<Vec<Media>, ContractError> {
        let Some(content) = content else {
            return Ok(Vec::new());
        };
        let content = content
            .as_object()
            .ok_or_else(|| ContractError::new(pointer, "must be an object"))?;
        let mut out = Vec::with_capacity(content.len());
        for (ct, media) in content {
            let at = format!("{pointer}/{}", escape(ct));
            let (schema, definition) = match media.get("schema") {
                Some(s) => (
                    self.schema(&format!("{at}/schema"), s, &self.needs.variants)?,
                    definition_name(s),
                ),
                None => (None, String::new()),
            };
            out.push(Media {
                content_type: ct.to_ascii_lowercase(),
                definition,
                schema,
                example: self.example(&at, media)?,
            });
        }
        Ok(out)
    }

    /// A media type's `example`, else its first `examples` entry's `value`.
    fn example(&self, pointer: &str, media: &Value) -> Result<Option<Value>, ContractError> {
        if let Some(e) = media.get("example") {
            return Ok(Some(e.clone()));
        }
        if let Some(Value::Object(examples)) = media.get("examples") {
            if let Some((name, e)) = examples.iter().next() {
                let at = format!("{pointer}/examples/{}", escape(name));
                let e = self.follow(e, &at)?;
                return Ok(e.get("value").cloned());
            }
        }
        Ok(None)
    }

    /// Compiles `schema` (plain and in each of `variants`), when schemas are needed.
    fn schema(
        &self,
        pointer: &str,
        schema: &Value,
        variants: &[Variant],
    ) -> Result<Option<Schema>, ContractError> {
        let source = if self.openapi30 {
            nullable_to_type(schema)
        } else {
            schema.clone()
        };
        if !self.needs.schemas {
            return Ok(Some(Schema {
                source,
                validators: Vec::new(),
            }));
        }
        let mut validators = Vec::with_capacity(1 + variants.len());
        for variant in std::iter::once(Variant::default()).chain(variants.iter().copied()) {
            if validators.iter().any(|(v, _)| *v == variant) {
                continue;
            }
            let mut root = serde_json::json!({ "allOf": [source.clone()] });
            if let Value::Object(map) = &mut root {
                // `#/components/...` references resolve against the root.
                map.insert("components".into(), self.components.clone());
            }
            let root = apply_variant(root, variant);
            let validator = jsonschema::options()
                .with_draft(self.draft)
                .build(&root)
                .map_err(|e| {
                    ContractError::new(pointer, format!("not a usable JSON Schema: {e}"))
                })?;
            validators.push((variant, validator));
        }
        Ok(Some(Schema { source, validators }))
    }
}

/// The name error messages give a schema: the last segment of its `$ref`, or
/// `inline` for a schema written in place.
fn definition_name(schema: &Value) -> String {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r.rsplit('/').next().unwrap_or(r).to_owned(),
        None => "inline".to_owned(),
    }
}

/// OpenAPI 3.0's `nullable: true` as JSON Schema says it (`type: [t, "null"]`),
/// everywhere in `value`.
fn nullable_to_type(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (k, v) in map {
                out.insert(k.clone(), nullable_to_type(v));
            }
            if out.get("nullable") == Some(&Value::Bool(true)) {
                out.remove("nullable");
                if let Some(Value::String(t)) = out.get("type").cloned() {
                    out.insert("type".into(), serde_json::json!([t, "null"]));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(nullable_to_type).collect()),
        other => other.clone(),
    }
}

/// The schema changed as `variant` asks, everywhere in it.
fn apply_variant(value: Value, variant: Variant) -> Value {
    if variant == Variant::default() {
        return value;
    }
    match value {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len() + 1);
            let is_object_schema = map.get("type") == Some(&Value::String("object".into()))
                || map.contains_key("properties");
            for (k, v) in map {
                let v = match k.as_str() {
                    // Property names, lowered for case-insensitive matching.
                    "properties" if variant.case_insensitive => match v {
                        Value::Object(props) => Value::Object(
                            props
                                .into_iter()
                                .map(|(name, s)| (name.to_lowercase(), apply_variant(s, variant)))
                                .collect(),
                        ),
                        other => apply_variant(other, variant),
                    },
                    "required" if variant.case_insensitive => match v {
                        Value::Array(names) => Value::Array(
                            names
                                .into_iter()
                                .map(|n| match n {
                                    Value::String(s) => Value::String(s.to_lowercase()),
                                    other => other,
                                })
                                .collect(),
                        ),
                        other => other,
                    },
                    _ => apply_variant(v, variant),
                };
                out.insert(k, v);
            }
            match variant.additional_properties {
                Some(true) if out.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    out.remove("additionalProperties");
                }
                Some(false) if is_object_schema => {
                    out.insert("additionalProperties".into(), Value::Bool(false));
                }
                _ => {}
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| apply_variant(v, variant))
                .collect(),
        ),
        other => other,
    }
}

/// `value` with every object key in lower case (for case-insensitive property names).
pub fn lower_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.to_lowercase(), lower_keys(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(lower_keys).collect()),
        other => other.clone(),
    }
}

/// What `mock-response` answers from the contract: the status (`status`, else
/// the first 2xx response's, else 200) and the example of the representation
/// asked (`content_type`, else the response's first) as its content type and
/// body; no example, no body.
pub fn mock_example(
    contract: &OperationContract,
    status: Option<u16>,
    content_type: Option<&str>,
) -> (u16, Option<(String, bytes::Bytes)>) {
    let Some(response) = contract.mock_response(status) else {
        return (status.unwrap_or(200), None);
    };
    let status = status.unwrap_or_else(|| response.key.parse::<u16>().unwrap_or(200));
    let media = match content_type {
        Some(ct) => {
            let ct = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            super::content::find_media(&response.content, &ct)
        }
        None => response.content.first(),
    };
    let Some(media) = media else {
        return (status, None);
    };
    let Some(example) = &media.example else {
        return (status, None);
    };
    let body = match example {
        // A string example of a non-JSON type is the body itself (XML, text).
        Value::String(s) if !media.content_type.contains("json") => s.clone().into_bytes(),
        other => serde_json::to_vec(other).unwrap_or_default(),
    };
    (
        status,
        Some((media.content_type.clone(), bytes::Bytes::from(body))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "openapi": "3.0.3",
            "info": {"title": "Pets", "version": "1"},
            "paths": {
                "/pets/{petId}": {
                    "parameters": [{"name": "petId", "in": "path", "required": true, "schema": {"type": "integer"}}],
                    "get": {
                        "parameters": [{"$ref": "#/components/parameters/Verbose"}],
                        "responses": {
                            "200": {
                                "description": "ok",
                                "headers": {"X-Rate": {"schema": {"type": "integer"}}},
                                "content": {"application/json": {
                                    "schema": {"$ref": "#/components/schemas/Pet"},
                                    "example": {"id": 1, "name": "Rex"}
                                }}
                            },
                            "4XX": {"description": "client error"}
                        }
                    },
                    "put": {
                        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}},
                        "responses": {"204": {"description": "stored"}}
                    }
                }
            },
            "components": {
                "parameters": {"Verbose": {"name": "verbose", "in": "query", "schema": {"type": "boolean"}}},
                "schemas": {"Pet": {
                    "type": "object",
                    "required": ["id", "name"],
                    "properties": {
                        "id": {"type": "integer"},
                        "name": {"type": "string"},
                        "tag": {"type": "string", "nullable": true},
                        "parent": {"$ref": "#/components/schemas/Pet"}
                    }
                }}
            }
        })
    }

    fn all() -> Needs {
        Needs {
            schemas: true,
            variants: vec![Variant {
                additional_properties: Some(false),
                case_insensitive: false,
            }],
        }
    }

    #[test]
    fn finds_operations_by_method_and_path_shape() {
        let ops = [
            OperationKey {
                method: "GET",
                url_template: "/pets/{id}",
            },
            OperationKey {
                method: "PUT",
                url_template: "/pets/{id}",
            },
            OperationKey {
                method: "GET",
                url_template: "/owners",
            },
        ];
        let c = compile(&doc(), &ops, &all()).unwrap();
        let get = c[0].as_ref().unwrap();
        let names: Vec<&str> = get.parameters.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["verbose", "petId"]);
        assert!(get.parameters[1].required);
        assert_eq!(get.responses.len(), 2);
        assert_eq!(get.response(404).unwrap().key, "4XX");
        assert_eq!(
            get.mock_response(None).unwrap().content[0].example,
            Some(json!({"id": 1, "name": "Rex"}))
        );
        let put = c[1].as_ref().unwrap();
        assert!(put.request_body_required);
        assert_eq!(put.request_body[0].definition, "Pet");
        assert!(c[2].is_none());
    }

    #[test]
    fn schemas_resolve_components_recursively_and_take_nullable() {
        let ops = [OperationKey {
            method: "PUT",
            url_template: "/pets/{id}",
        }];
        let c = compile(&doc(), &ops, &all()).unwrap();
        let schema = c[0].as_ref().unwrap().request_body[0]
            .schema
            .as_ref()
            .unwrap();
        let plain = schema.validator(Variant::default()).unwrap();
        assert!(plain.is_valid(
            &json!({"id": 1, "name": "a", "tag": null, "parent": {"id": 2, "name": "b"}})
        ));
        assert!(!plain.is_valid(&json!({"id": 1, "name": "a", "parent": {"id": "x", "name": "b"}})));
        assert!(plain.is_valid(&json!({"id": 1, "name": "a", "extra": true})));
        let strict = schema
            .validator(Variant {
                additional_properties: Some(false),
                case_insensitive: false,
            })
            .unwrap();
        assert!(!strict.is_valid(&json!({"id": 1, "name": "a", "extra": true})));
    }

    #[test]
    fn a_broken_reference_names_its_pointer() {
        let mut d = doc();
        d["paths"]["/pets/{petId}"]["get"]["parameters"][0]["$ref"] =
            json!("#/components/parameters/Nope");
        let ops = [OperationKey {
            method: "GET",
            url_template: "/pets/{id}",
        }];
        let e = compile(&d, &ops, &all()).unwrap_err();
        assert_eq!(e.pointer, "/paths/~1pets~1{petId}/get/parameters/0/$ref");
    }
}

#[cfg(test)]
mod petstore_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn petstore_pet_response() {
        let doc: Value = serde_json::from_str(include_str!(
            "../../../tests/apim-corpus-2/openapi/petstore.json"
        ))
        .unwrap();
        let ops = [OperationKey {
            method: "GET",
            url_template: "/pets/{petId}",
        }];
        let needs = Needs {
            schemas: true,
            variants: vec![],
        };
        let c = compile(&doc, &ops, &needs).unwrap();
        let media = &c[0].as_ref().unwrap().response(200).unwrap().content[0];
        let v = media
            .schema
            .as_ref()
            .unwrap()
            .validator(Variant::default())
            .unwrap();
        let errors: Vec<String> = v
            .iter_errors(&json!({"id": 1, "name": "Rex"}))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
}
