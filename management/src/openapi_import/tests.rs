//! Unit tests of the conversion: versions, formats, errors with positions, ids, templates.

use serde_json::json;

use super::*;

fn read(text: &str) -> Result<Imported, ImportError> {
    read_document(&parse_document(text.as_bytes())?)
}

const PETS_YAML: &str = "\
openapi: 3.0.3
info:
  title: Pets
  description: A pet store
  version: '1'
servers:
  - url: '{scheme}://pets.example/v1'
    variables:
      scheme: { default: https }
paths:
  /pets:
    get:
      operationId: listPets
      summary: List pets
      responses:
        200: { description: ok }
    post:
      summary: Add a pet
      responses:
        '201': { description: created }
  /pets/{petId}:
    parameters:
      - { name: petId, in: path, required: true, schema: { type: string } }
    get:
      operationId: get pet!
      description: One pet
      responses: { default: { description: ok } }
";

#[test]
fn openapi_3_yaml() {
    let imported = read(PETS_YAML).expect("imports");
    assert_eq!(imported.version, Version::OpenApi30);
    assert_eq!(imported.title.as_deref(), Some("Pets"));
    assert_eq!(
        imported.service_url.as_deref(),
        Some("https://pets.example/v1")
    );
    let ops: Vec<_> = imported
        .operations
        .iter()
        .map(|o| {
            (
                o.id.as_str(),
                o.method.as_str(),
                o.url_template.as_str(),
                o.display_name.as_str(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("listPets", "GET", "/pets", "List pets"),
            ("post-pets", "POST", "/pets", "Add a pet"),
            ("get-pet", "GET", "/pets/{petId}", "get pet!"),
        ]
    );
    assert_eq!(imported.operations[2].description, "One pet");
}

#[test]
fn openapi_3_1_json_without_responses() {
    let doc = json!({
        "openapi": "3.1.0",
        "info": { "title": "T", "version": "1" },
        "servers": [{ "url": "/relative" }, { "url": "http://up.example" }],
        "paths": { "/a/{x}/b": { "delete": { "operationId": "del" } } },
    });
    let imported = read(&doc.to_string()).expect("imports");
    assert_eq!(imported.version, Version::OpenApi31);
    assert_eq!(imported.service_url.as_deref(), Some("http://up.example"));
    assert_eq!(imported.operations[0].url_template, "/a/{x}/b");
    assert_eq!(imported.operations[0].method, "DELETE");
    // 3.1 may have no paths at all.
    let empty = read(r#"{"openapi":"3.1.0","info":{"title":"x","version":"1"}}"#).expect("ok");
    assert!(empty.operations.is_empty());
}

#[test]
fn swagger_2() {
    let doc = json!({
        "swagger": "2.0",
        "info": { "title": "Legacy", "version": "1" },
        "host": "legacy.example:8080",
        "basePath": "/api/",
        "schemes": ["http"],
        "paths": { "/items/{id}": { "put": { "operationId": "putItem", "responses": { "200": { "description": "ok" } } } } },
    });
    let imported = read(&doc.to_string()).expect("imports");
    assert_eq!(imported.version, Version::Swagger2);
    assert_eq!(
        imported.service_url.as_deref(),
        Some("http://legacy.example:8080/api")
    );
    assert_eq!(imported.operations[0].id, "putItem");
}

#[test]
fn yaml_syntax_error_has_line_and_column() {
    let err = read("openapi: 3.0.0\ninfo:\n  title: [unclosed\npaths: {}\n").unwrap_err();
    match err {
        ImportError::Syntax {
            format,
            line,
            column,
            ..
        } => {
            assert_eq!(format, "YAML");
            assert!(line >= 3, "line {line}");
            assert!(column >= 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn json_syntax_error_has_line_and_column() {
    let err = read("{\n  \"openapi\": \"3.0.0\",\n  \"paths\": {,}\n}").unwrap_err();
    assert!(
        matches!(
            err,
            ImportError::Syntax {
                format: "JSON",
                line: 3,
                column: 13,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn structural_errors_name_the_json_pointer() {
    let pointer = |text: &str| match read(text) {
        Err(ImportError::Structure { pointer, .. }) => pointer,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        pointer(r#"{"openapi":"3.0.0","paths":{"/users":{"get":{}}}}"#),
        "/paths/~1users/get/responses"
    );
    assert_eq!(
        pointer(r#"{"openapi":"3.0.0","paths":{"/users":{"get":{"responses":[]}}}}"#),
        "/paths/~1users/get/responses"
    );
    assert_eq!(pointer(r#"{"openapi":"4.0"}"#), "/openapi");
    assert_eq!(pointer(r#"{"swagger":"1.2"}"#), "/swagger");
    assert_eq!(pointer(r#"{"info":{}}"#), "");
    assert_eq!(pointer("openapi: 3.0.0\n"), "/paths");
    assert_eq!(
        pointer(r#"{"openapi":"3.0.0","paths":{"users":{}}}"#),
        "/paths/users"
    );
    assert_eq!(
        pointer(r#"{"openapi":"3.0.0","paths":{"/a":{"get":{"responses":{},"summary":3}}}}"#),
        "/paths/~1a/get/summary"
    );
    assert_eq!(
        pointer(r#"{"openapi":"3.0.0","paths":{"/a/b~c":{"get":"x"}}}"#),
        "/paths/~1a~1b~0c/get"
    );
    assert_eq!(pointer("- a\n- b\n"), "");
}

#[test]
fn path_item_refs_are_followed() {
    let doc = json!({
        "openapi": "3.0.0",
        "paths": { "/a": { "$ref": "#/x-items/a" } },
        "x-items": { "a": { "get": { "responses": {} } } },
    });
    let imported = read(&doc.to_string()).expect("imports");
    assert_eq!(imported.operations[0].id, "get-a");
    let bad = json!({ "openapi": "3.0.0", "paths": { "/a": { "$ref": "other.yaml#/a" } } });
    assert!(matches!(
        read(&bad.to_string()),
        Err(ImportError::Structure { pointer, .. }) if pointer == "/paths/~1a/$ref"
    ));
}

#[test]
fn ids_are_valid_and_unique() {
    assert_eq!(sanitize_id("get users / by id"), "get-users-by-id");
    assert_eq!(sanitize_id("a.b_c~d-e"), "a.b_c~d-e");
    assert_eq!(sanitize_id("!!!"), "");
    assert_eq!(sanitize_id(&"x".repeat(300)).len(), 200);
    assert_eq!(derive_id("get", "/users/{id}"), "get-users-id");
    assert_eq!(derive_id("get", "/"), "get");
    let doc = json!({
        "openapi": "3.0.0",
        "paths": {
            "/a": { "get": { "operationId": "same", "responses": {} }, "put": { "operationId": "same", "responses": {} } },
            "/b": { "get": { "operationId": "???", "responses": {} }, "post": { "operationId": "same", "responses": {} } },
        },
    });
    let ids: Vec<_> = read(&doc.to_string())
        .expect("imports")
        .operations
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(ids, ["same", "same-2", "get-b", "same-3"]);
}

#[test]
fn path_templates() {
    assert_eq!(to_url_template("/users/{id}").as_deref(), Ok("/users/{id}"));
    assert_eq!(to_url_template("/").as_deref(), Ok("/"));
    assert_eq!(
        to_url_template("/files/{name}.json").as_deref(),
        Ok("/files/{name}")
    );
    assert_eq!(
        to_url_template("/a/{x y}/{x_y}").as_deref(),
        Ok("/a/{x_y}/{x_y2}")
    );
    assert_eq!(to_url_template("/users/").as_deref(), Ok("/users/"));
    assert!(to_url_template("/a//b").is_err());
    assert!(to_url_template("/a/{open").is_err());
    assert!(to_url_template("no-slash").is_err());
}

#[test]
fn merge_keeps_settings_and_policies_of_kept_ids() {
    let imported = read(PETS_YAML).expect("imports");
    let options = ImportOptions {
        path: Some("pets".into()),
        service_url: None,
    };
    let mut api = merge("pets", None, &imported, &options).expect("new api");
    assert_eq!(api.path, "pets");
    assert_eq!(api.service_url.as_deref(), Some("https://pets.example/v1"));
    assert_eq!(api.display_name, "Pets");
    api.policy = Some("<policies/>".into());
    api.timeout_seconds = 7;
    api.operations[0].policy = Some("<policies><inbound/></policies>".into());
    api.operations[1].policy = Some("<policies/>".into());
    let mut changed = imported.clone();
    changed.operations.remove(1);
    let again = merge("pets", Some(&api), &changed, &ImportOptions::default()).expect("merge");
    assert_eq!(again.policy.as_deref(), Some("<policies/>"));
    assert_eq!(again.timeout_seconds, 7);
    assert_eq!(again.operations.len(), 2);
    assert_eq!(
        again.operations[0].policy.as_deref(),
        Some("<policies><inbound/></policies>")
    );
    assert_eq!(again.operations[1].policy, None);
    // A new API needs a path, and an upstream from somewhere.
    assert!(merge("x", None, &imported, &ImportOptions::default()).is_err());
    let mut no_server = imported;
    no_server.service_url = None;
    assert!(merge("x", None, &no_server, &options).is_err());
}

#[test]
fn export_updates_the_imported_document() {
    let doc = parse_document(PETS_YAML.as_bytes()).expect("parses");
    let imported = read_document(&doc).expect("imports");
    let options = ImportOptions {
        path: Some("/pets/".into()),
        service_url: None,
    };
    let mut api = merge("pets", None, &imported, &options).expect("api");
    api.operations[0].display_name = "All the pets".into();
    api.operations.push(portcullis_core::config::Operation {
        id: "search".into(),
        display_name: String::new(),
        description: String::new(),
        method: "GET".into(),
        url_template: "/search/{kind}?q={q}".into(),
        policy: None,
    });
    let out = export(&api, Some(&doc));
    assert_eq!(out["openapi"], "3.0.3");
    assert_eq!(out["servers"], json!([{ "url": "/pets" }]));
    assert_eq!(out["paths"]["/pets"]["get"]["summary"], "All the pets");
    assert_eq!(
        out["paths"]["/pets"]["get"]["responses"]["200"]["description"],
        "ok"
    );
    // Path-level parameters of the document come along.
    assert_eq!(
        out["paths"]["/pets/{petId}"]["parameters"][0]["name"],
        "petId"
    );
    assert_eq!(
        out["paths"]["/pets/{petId}"]["get"]["operationId"],
        "get-pet"
    );
    let search = &out["paths"]["/search/{kind}"]["get"];
    assert_eq!(search["parameters"][0]["in"], "path");
    assert_eq!(search["parameters"][1]["name"], "q");
    // And it imports again to the same operations.
    let back = read_document(&out).expect("round trip");
    let ids: Vec<_> = back.operations.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["listPets", "post-pets", "get-pet", "search"]);
}

#[test]
fn export_without_a_document_is_generated() {
    let api: portcullis_core::config::Api = serde_json::from_value(json!({
        "id": "echo", "path": "echo", "serviceUrl": "http://up",
        "operations": [
            { "id": "get", "method": "GET", "urlTemplate": "/items/{id}" },
            { "id": "any", "method": "*", "urlTemplate": "/*" },
        ],
    }))
    .expect("api");
    let out = export(&api, None);
    assert_eq!(out["info"]["title"], "echo");
    assert_eq!(out["servers"][0]["url"], "/echo");
    assert_eq!(out["paths"].as_object().map(|p| p.len()), Some(2));
    assert_eq!(out["paths"]["/items/{id}"]["get"]["operationId"], "get");
    // Any method: a marked copy under every method, the first with the id.
    let any = out["paths"]["/*"].as_object().expect("the any-method path");
    assert_eq!(any.len(), METHODS.len());
    assert_eq!(any["get"]["operationId"], "any");
    assert_eq!(any["trace"]["operationId"], "any.trace");
    assert!(any.values().all(|op| op[ANY_METHOD_EXTENSION] == true));
}

/// Operations as (id, method, template, name, description).
fn operations(api: &portcullis_core::config::Api) -> Vec<(String, String, String, String, String)> {
    api.operations
        .iter()
        .map(|o| {
            (
                o.id.clone(),
                o.method.clone(),
                o.url_template.clone(),
                o.display_name.clone(),
                o.description.clone(),
            )
        })
        .collect()
}

#[test]
fn import_export_import_gives_the_same_operations() {
    let (doc, imported) = import_document(PETS_YAML.as_bytes()).expect("imports");
    let options = ImportOptions {
        path: Some("pets".into()),
        service_url: None,
    };
    let mut api = merge("pets", None, &imported, &options).expect("api");
    // Operations the document did not have: any method, a wildcard, a query part.
    for (id, method, template) in [
        ("anything", "*", "/pets/{petId}/raw"),
        ("files", "GET", "/files/*"),
        ("fallback", "*", "/*"),
    ] {
        api.operations.push(portcullis_core::config::Operation {
            id: id.into(),
            display_name: format!("{id} name"),
            description: format!("{id} text"),
            method: method.into(),
            url_template: template.into(),
            policy: None,
        });
    }
    // An imported operation turned into an any-method one keeps its document object.
    api.operations[1].method = "*".into();
    for stored in [Some(&doc), None] {
        let exported = export(&api, stored);
        let text = serde_json::to_vec(&exported).expect("serialises");
        let (doc_again, again) = import_document(&text).expect("the export imports");
        let back = merge("pets", Some(&api), &again, &ImportOptions::default()).expect("merges");
        assert_eq!(
            operations(&back),
            operations(&api),
            "stored: {}",
            stored.is_some()
        );
        // And once more: the export of the re-imported document is stable.
        let twice = export(&back, Some(&doc_again));
        assert_eq!(twice["paths"], exported["paths"]);
    }
    let exported = export(&api, Some(&doc));
    // GET /pets is listPets'; the any-method operation takes the other methods.
    let pets = &exported["paths"]["/pets"];
    assert_eq!(pets["get"]["operationId"], "listPets");
    assert!(pets["get"].get(ANY_METHOD_EXTENSION).is_none());
    assert_eq!(pets["put"]["operationId"], "post-pets");
    assert_eq!(pets["post"]["operationId"], "post-pets.post");
    assert_eq!(pets["post"][ANY_METHOD_EXTENSION], true);
    assert_eq!(pets["put"]["responses"]["201"]["description"], "created");
    // Back to a single method: the mark goes.
    api.operations[1].method = "POST".into();
    let exported = export(&api, Some(&export(&api, Some(&doc))));
    assert!(exported["paths"]["/pets"].get("put").is_none());
    assert!(exported["paths"]["/pets"]["post"]
        .get(ANY_METHOD_EXTENSION)
        .is_none());
}
