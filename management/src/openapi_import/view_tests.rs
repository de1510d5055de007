//! Unit tests of the portal's view model: a realistic document, an API without one,
//! changed routes, and garbage documents that must not panic.

use portcullis_core::config::Api;
use serde_json::{json, Value};

use super::view::{view, ParamView};
use super::{merge, parse_document, read_document, ImportOptions};

const STORE_YAML: &str = r##"
openapi: 3.0.3
info:
  title: Pet store
  version: 2.1.0
  description: Pets for sale
servers:
  - url: https://pets.example/v2
paths:
  /pets:
    get:
      operationId: listPets
      summary: List pets
      parameters:
        - $ref: '#/components/parameters/Limit'
        - name: status
          in: query
          description: Filter by status
          schema:
            type: array
            items: { type: string, enum: [available, pending, sold] }
      responses:
        '200':
          description: The pets
          content:
            application/json:
              schema:
                type: array
                items: { $ref: '#/components/schemas/Pet' }
              example: [{ id: 1, name: Rex }]
        default:
          $ref: '#/components/responses/Error'
    post:
      operationId: addPet
      requestBody:
        $ref: '#/components/requestBodies/NewPet'
      responses:
        '201': { description: Created }
  /pets/{petId}:
    parameters:
      - name: petId
        in: path
        required: true
        description: The pet's id
        schema: { type: integer, format: int64 }
        example: 42
      - name: X-Trace
        in: header
        schema: { type: string }
    get:
      operationId: showPet
      description: One pet by id
      parameters:
        - name: X-Trace
          in: header
          required: true
          description: Overridden at operation level
          schema: { type: string, format: uuid }
      responses:
        '200':
          description: The pet
          content:
            application/json:
              schema: { $ref: '#/components/schemas/Pet' }
              examples:
                rex: { $ref: '#/components/examples/Rex' }
            application/xml:
              schema: { $ref: '#/components/schemas/Pet' }
components:
  parameters:
    Limit:
      name: limit
      in: query
      required: false
      schema: { type: integer, format: int32, maximum: 100 }
  requestBodies:
    NewPet:
      description: The pet to add
      required: true
      content:
        text/plain:
          schema: { type: string }
        application/json:
          schema: { $ref: '#/components/schemas/Pet' }
  responses:
    Error:
      description: An error
      content:
        application/problem+json:
          schema:
            type: object
            properties:
              title: { type: string }
  examples:
    Rex:
      value: { id: 7, name: Rex, tag: dog }
  schemas:
    Pet:
      type: object
      required: [id, name]
      properties:
        id: { type: integer, format: int64 }
        name: { type: string }
        tag: { type: string, nullable: true }
        parent: { $ref: '#/components/schemas/Pet' }
"##;

fn imported_api(yaml: &str) -> (Api, Value) {
    let doc = parse_document(yaml.as_bytes()).expect("parses");
    let imported = read_document(&doc).expect("reads");
    let options = ImportOptions {
        path: Some("pets".into()),
        service_url: None,
    };
    (
        merge("pets", None, &imported, &options).expect("merges"),
        doc,
    )
}

fn param<'a>(params: &'a [ParamView], name: &str) -> &'a ParamView {
    params
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no parameter {name} in {params:?}"))
}

#[test]
fn a_document_gives_parameters_bodies_and_responses() {
    let (api, doc) = imported_api(STORE_YAML);
    let v = view(&api, Some(&doc));
    assert_eq!(v.title, "Pet store");
    assert_eq!(v.version, "2.1.0");
    assert_eq!(v.description, "Pets for sale");
    let ids: Vec<_> = v.operations.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["listPets", "addPet", "showPet"]);

    let list = &v.operations[0];
    assert_eq!((list.method.as_str(), list.path.as_str()), ("GET", "/pets"));
    assert_eq!(list.summary, "List pets");
    let limit = param(&list.parameters, "limit");
    assert_eq!(limit.schema, "integer (int32)");
    assert_eq!(limit.location, "query");
    assert!(!limit.required);
    let status = param(&list.parameters, "status");
    assert_eq!(
        status.schema,
        "array of string, one of: available, pending, sold"
    );
    assert_eq!(status.description, "Filter by status");
    let statuses: Vec<_> = list.responses.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["200", "default"]);
    let ok = &list.responses[0].bodies[0];
    assert_eq!(ok.content_type, "application/json");
    let schema: Value = serde_json::from_str(&ok.schema_json).expect("schema is JSON");
    assert_eq!(schema["items"]["properties"]["name"]["type"], "string");
    // The cycle stays a reference.
    assert_eq!(
        schema["items"]["properties"]["parent"]["$ref"],
        "#/components/schemas/Pet"
    );
    let example: Value =
        serde_json::from_str(ok.example.as_deref().expect("example")).expect("JSON");
    assert_eq!(example, json!([{ "id": 1, "name": "Rex" }]));
    // A response by reference.
    assert_eq!(list.responses[1].description, "An error");
    assert_eq!(
        list.responses[1].bodies[0].content_type,
        "application/problem+json"
    );

    let add = &v.operations[1];
    let body = add.request_body.as_ref().expect("request body");
    assert_eq!(body.content_type, "application/json", "JSON preferred");
    assert_eq!(body.description, "The pet to add");
    assert!(body.schema_json.contains("\"required\""));
    assert_eq!(add.responses[0].status, "201");
    assert!(add.responses[0].bodies.is_empty());

    let show = &v.operations[2];
    assert_eq!(show.path, "/pets/{petId}");
    assert_eq!(show.description, "One pet by id");
    let pet_id = param(&show.parameters, "petId");
    assert!(pet_id.required);
    assert_eq!(pet_id.schema, "integer (int64)");
    assert_eq!(pet_id.example.as_deref(), Some("42"));
    assert_eq!(pet_id.description, "The pet's id");
    // The operation's header parameter replaced the path item's, in place.
    assert_eq!(show.parameters.len(), 2);
    let trace = param(&show.parameters, "X-Trace");
    assert!(trace.required);
    assert_eq!(trace.schema, "string (uuid)");
    let bodies = &show.responses[0].bodies;
    assert_eq!(bodies.len(), 2);
    let rex: Value =
        serde_json::from_str(bodies[0].example.as_deref().expect("example")).expect("JSON");
    assert_eq!(rex["tag"], "dog");
    assert_eq!(bodies[1].content_type, "application/xml");
}

#[test]
fn the_apis_own_names_win_and_changed_routes_keep_their_parameters() {
    let (mut api, doc) = imported_api(STORE_YAML);
    api.display_name = "Pets!".into();
    api.operations[2].display_name = "Show".into();
    api.operations[2].url_template = "/animals/{animalId}?verbose={v}".into();
    let v = view(&api, Some(&doc));
    assert_eq!(v.title, "Pets!");
    let show = &v.operations[2];
    assert_eq!(show.summary, "Show");
    assert_eq!(show.path, "/animals/{animalId}");
    let names: Vec<_> = show
        .parameters
        .iter()
        .map(|p| (p.name.as_str(), p.location.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("X-Trace", "header"),
            ("animalId", "path"),
            ("verbose", "query")
        ]
    );
    // Its responses still come from the document.
    assert_eq!(show.responses[0].description, "The pet");
}

#[test]
fn without_a_document_the_operations_speak_for_themselves() {
    let api: Api = serde_json::from_value(json!({
        "id": "echo", "path": "echo", "serviceUrl": "http://up",
        "operations": [
            { "id": "get", "displayName": "Get one", "method": "GET", "urlTemplate": "/items/{id}/parts/{part}" },
            { "id": "any", "method": "*", "urlTemplate": "/*" },
        ],
    }))
    .expect("api");
    let v = view(&api, None);
    assert_eq!(v.title, "echo");
    assert_eq!(v.version, "");
    let get = &v.operations[0];
    assert_eq!(get.summary, "Get one");
    assert_eq!(get.path, "/items/{id}/parts/{part}");
    let params: Vec<_> = get
        .parameters
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.location.as_str(),
                p.required,
                p.schema.as_str(),
            )
        })
        .collect();
    assert_eq!(
        params,
        [
            ("id", "path", true, "string"),
            ("part", "path", true, "string")
        ]
    );
    assert!(get.request_body.is_none() && get.responses.is_empty());
    assert_eq!(v.operations[1].method, "*");
    assert_eq!(v.operations[1].path, "/*");
    // An operation the document does not know is generated too.
    let doc = json!({ "openapi": "3.0.0", "info": { "title": "Doc", "version": 3 }, "paths": {} });
    let v = view(&api, Some(&doc));
    assert_eq!(v.version, "3");
    assert_eq!(v.operations[0].parameters.len(), 2);
}

#[test]
fn type_texts() {
    use super::view::type_text;
    let doc =
        json!({ "components": { "schemas": { "Id": { "type": "string", "format": "uuid" } } } });
    let t = |schema: Value| type_text(&doc, &schema, 0);
    assert_eq!(t(json!({ "type": "string" })), "string");
    assert_eq!(t(json!({ "type": ["integer", "null"] })), "integer or null");
    assert_eq!(
        t(json!({ "type": "number", "nullable": true })),
        "number or null"
    );
    assert_eq!(
        t(json!({ "$ref": "#/components/schemas/Id" })),
        "string (uuid)"
    );
    assert_eq!(
        t(json!({ "oneOf": [{ "type": "string" }, { "type": "integer" }] })),
        "string or integer"
    );
    assert_eq!(t(json!({ "properties": {} })), "object");
    assert_eq!(
        t(json!({ "items": { "type": "boolean" } })),
        "array of boolean"
    );
    assert_eq!(t(json!({ "enum": [1, 2] })), "any, one of: 1, 2");
    assert_eq!(t(json!(true)), "any");
    let deep = json!({ "type": "array", "items": { "type": "array", "items": { "type": "array", "items": { "type": "array", "items": { "type": "array", "items": { "type": "array" } } } } } });
    assert!(t(deep).ends_with('…'));
    let many: Vec<Value> = (0..30).map(|i| json!(i)).collect();
    assert!(t(json!({ "type": "integer", "enum": many })).ends_with(", …"));
}

/// A small deterministic generator (xorshift), enough to vary garbage documents.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Keys and refs an OpenAPI reader looks at, so garbage hits the interesting paths.
const KEYS: [&str; 24] = [
    "$ref",
    "parameters",
    "requestBody",
    "responses",
    "content",
    "schema",
    "items",
    "properties",
    "type",
    "format",
    "enum",
    "example",
    "examples",
    "value",
    "name",
    "in",
    "oneOf",
    "allOf",
    "nullable",
    "description",
    "application/json",
    "200",
    "get",
    "summary",
];
const REFS: [&str; 7] = [
    "#",
    "#/",
    "#/components",
    "#/components/x",
    "#/paths/~1a",
    "#/nope/0",
    "other#/x",
];

fn garbage(rng: &mut Rng, depth: usize) -> Value {
    let pick = if depth > 5 {
        rng.below(5)
    } else {
        rng.below(8)
    };
    match pick {
        0 => Value::Null,
        1 => json!(rng.below(3) == 0),
        2 => json!(rng.next() as i64),
        3 => json!(REFS[rng.below(REFS.len())]),
        4 => json!(KEYS[rng.below(KEYS.len())]),
        5 | 6 => {
            let mut map = serde_json::Map::new();
            for _ in 0..rng.below(5) {
                let key = KEYS[rng.below(KEYS.len())];
                let value = if key == "$ref" {
                    json!(REFS[rng.below(REFS.len())])
                } else {
                    garbage(rng, depth + 1)
                };
                map.insert(key.to_owned(), value);
            }
            Value::Object(map)
        }
        _ => Value::Array((0..rng.below(4)).map(|_| garbage(rng, depth + 1)).collect()),
    }
}

#[test]
fn garbage_documents_never_panic() {
    let api: Api = serde_json::from_value(json!({
        "id": "g", "path": "g", "serviceUrl": "http://up",
        "operations": [
            { "id": "get-a", "method": "GET", "urlTemplate": "/a" },
            { "id": "x", "method": "POST", "urlTemplate": "/a/{b}?c={d}" },
            { "id": "any", "method": "*", "urlTemplate": "/*" },
        ],
    }))
    .expect("api");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut detailed = 0;
    for _ in 0..3000 {
        // Mostly readable operations (an object with `responses` objects), so the
        // view looks into them rather than falling back to the API's operations.
        let mut operation = garbage(&mut rng, 0);
        if let Value::Object(map) = &mut operation {
            let responses = match garbage(&mut rng, 1) {
                Value::Object(r) => Value::Object(r),
                _ => json!({ "200": garbage(&mut rng, 2) }),
            };
            map.insert("responses".into(), responses);
            map.remove("operationId");
        }
        let doc = json!({
            "openapi": "3.0.0",
            "info": garbage(&mut rng, 3),
            "paths": { "/a": { "get": operation, "parameters": garbage(&mut rng, 2) } },
            "components": garbage(&mut rng, 0),
        });
        let v = view(&api, Some(&doc));
        assert_eq!(v.operations.len(), 3);
        if !v.operations[0].responses.is_empty() {
            detailed += 1;
        }
        // And the document alone, whatever it is.
        view(&api, Some(&garbage(&mut rng, 0)));
    }
    assert!(detailed > 100, "only {detailed} documents were looked into");
    // Self-referencing pieces everywhere.
    let doc = json!({
        "openapi": "3.0.0",
        "paths": { "/a": { "$ref": "#/paths/~1a", "get": {
            "parameters": { "$ref": "#/paths/~1a/get/parameters" },
            "requestBody": { "$ref": "#/paths/~1a/get/requestBody" },
            "responses": { "200": { "$ref": "#/paths/~1a/get/responses/200" },
                           "201": { "content": { "a/b": { "schema": { "$ref": "#/paths/~1a/get/responses/201/content/a~1b/schema" } } } } },
        } } },
    });
    view(&api, Some(&doc));
}

#[test]
fn the_demo_document_shows_every_operation_in_detail() {
    let text = include_str!("../../../examples/sample-openapi.yaml");
    let (doc, imported) = super::import_document(text.as_bytes()).expect("imports");
    let options = ImportOptions {
        path: Some("sample".into()),
        service_url: Some("http://127.0.0.1:8000".into()),
    };
    let api = merge("sample", None, &imported, &options).expect("api");
    let v = view(&api, Some(&doc));
    assert_eq!(v.title, "Sample API");
    assert_eq!(v.operations.len(), 4);
    for op in &v.operations {
        assert!(!op.summary.is_empty(), "{op:?}");
        assert!(!op.responses.is_empty(), "{op:?}");
        let body = op.responses[0].bodies.first().expect("a response body");
        let schema: Value = serde_json::from_str(&body.schema_json).expect("JSON schema");
        assert!(
            !schema.to_string().contains("$ref"),
            "references expanded: {schema}"
        );
    }
    let user = v
        .operations
        .iter()
        .find(|o| o.path == "/users/{id}")
        .expect("get-user");
    assert_eq!(user.parameters[0].example.as_deref(), Some("42"));
    let echo = v
        .operations
        .iter()
        .find(|o| o.method == "POST")
        .expect("echo");
    assert!(echo.request_body.is_some());
}
