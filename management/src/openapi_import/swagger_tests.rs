//! Unit tests of the Swagger 2.0 conversion, on a petstore-like document.

use serde_json::{json, Value};

use super::view::view;
use super::{import_document, merge, parse_document, read_document, to_openapi3};
use super::{ImportOptions, Version};

/// The classic Swagger petstore, cut down, with the features the conversion handles.
const PETSTORE: &str = r##"{
  "swagger": "2.0",
  "info": { "title": "Swagger Petstore", "version": "1.0.7", "description": "A sample server" },
  "host": "petstore.swagger.io",
  "basePath": "/v2",
  "tags": [{ "name": "pet" }],
  "schemes": ["http", "https"],
  "consumes": ["application/json"],
  "produces": ["application/json"],
  "paths": {
    "/pet": {
      "post": {
        "tags": ["pet"], "summary": "Add a new pet to the store", "operationId": "addPet",
        "consumes": ["application/json", "application/xml"],
        "produces": ["application/json", "application/xml"],
        "parameters": [{
          "in": "body", "name": "body", "description": "Pet object that needs to be added",
          "required": true, "schema": { "$ref": "#/definitions/Pet" }
        }],
        "responses": { "405": { "description": "Invalid input" } },
        "security": [{ "petstore_auth": ["write:pets", "read:pets"] }]
      },
      "put": {
        "operationId": "updatePet",
        "parameters": [{ "$ref": "#/parameters/PetBody" }],
        "responses": { "400": { "$ref": "#/responses/BadRequest" } }
      }
    },
    "/pet/findByStatus": {
      "get": {
        "summary": "Finds Pets by status", "operationId": "findPetsByStatus",
        "produces": ["application/xml", "application/json"],
        "parameters": [{
          "name": "status", "in": "query", "required": true, "type": "array",
          "items": { "type": "string", "enum": ["available", "pending", "sold"], "default": "available" },
          "collectionFormat": "multi"
        }, {
          "name": "tags", "in": "query", "type": "array", "items": { "type": "string" },
          "collectionFormat": "pipes"
        }, { "$ref": "#/parameters/Limit" }],
        "responses": {
          "200": {
            "description": "successful operation",
            "schema": { "type": "array", "items": { "$ref": "#/definitions/Pet" } },
            "headers": { "X-Rate-Limit": { "type": "integer", "format": "int32", "description": "calls per hour" } },
            "examples": { "application/json": [{ "id": 1, "name": "doggie", "photoUrls": [] }] }
          },
          "400": { "description": "Invalid status value" }
        }
      }
    },
    "/pet/{petId}": {
      "parameters": [
        { "name": "petId", "in": "path", "required": true, "type": "integer", "format": "int64" },
        { "name": "name", "in": "formData", "type": "string", "description": "Updated name" }
      ],
      "get": {
        "operationId": "getPetById",
        "responses": {
          "200": { "description": "successful operation", "schema": { "$ref": "#/definitions/Pet" } },
          "404": { "description": "Pet not found" }
        },
        "security": [{ "api_key": [] }]
      },
      "post": {
        "summary": "Updates a pet in the store with form data", "operationId": "updatePetWithForm",
        "consumes": ["application/x-www-form-urlencoded"],
        "parameters": [{ "name": "status", "in": "formData", "required": true, "type": "string" }],
        "responses": { "405": { "description": "Invalid input" } }
      },
      "delete": {
        "operationId": "deletePet",
        "parameters": [{ "name": "api_key", "in": "header", "type": "string", "x-example": "special-key" }],
        "responses": { "400": { "description": "Invalid ID supplied" } }
      }
    },
    "/pet/{petId}/uploadImage": {
      "post": {
        "summary": "uploads an image", "operationId": "uploadFile",
        "consumes": ["multipart/form-data"],
        "parameters": [
          { "name": "petId", "in": "path", "required": true, "type": "integer", "format": "int64" },
          { "name": "additionalMetadata", "in": "formData", "type": "string" },
          { "name": "file", "in": "formData", "required": true, "type": "file" }
        ],
        "responses": { "200": { "description": "successful operation", "schema": { "$ref": "#/definitions/ApiResponse" } } }
      }
    },
    "/store/inventory": {
      "get": {
        "operationId": "getInventory",
        "responses": {
          "200": {
            "description": "successful operation",
            "schema": { "type": "object", "additionalProperties": { "type": "integer", "format": "int32" } }
          }
        },
        "security": [{ "api_key": [] }]
      }
    }
  },
  "parameters": {
    "PetBody": { "in": "body", "name": "body", "required": true, "schema": { "$ref": "#/definitions/Pet" } },
    "Limit": { "in": "query", "name": "limit", "type": "integer", "format": "int32", "maximum": 100 }
  },
  "responses": {
    "BadRequest": { "description": "Bad request", "schema": { "$ref": "#/definitions/ApiResponse" } }
  },
  "securityDefinitions": {
    "petstore_auth": {
      "type": "oauth2", "authorizationUrl": "https://petstore.swagger.io/oauth/authorize",
      "flow": "implicit", "scopes": { "write:pets": "modify pets", "read:pets": "read pets" }
    },
    "api_key": { "type": "apiKey", "name": "api_key", "in": "header" },
    "basic": { "type": "basic" },
    "partner": { "type": "oauth2", "flow": "application", "tokenUrl": "https://auth.example/token", "scopes": {} }
  },
  "definitions": {
    "Category": { "type": "object", "properties": { "id": { "type": "integer", "format": "int64" }, "name": { "type": "string" } } },
    "Pet": {
      "type": "object", "required": ["name", "photoUrls"], "discriminator": "petType",
      "properties": {
        "id": { "type": "integer", "format": "int64" },
        "petType": { "type": "string" },
        "category": { "$ref": "#/definitions/Category" },
        "name": { "type": "string", "example": "doggie" },
        "photoUrls": { "type": "array", "items": { "type": "string" } },
        "nickname": { "type": "string", "x-nullable": true },
        "x-nullable": { "type": "boolean", "description": "a property that happens to have this name" },
        "status": { "type": "string", "enum": ["available", "pending", "sold"] }
      }
    },
    "ApiResponse": { "type": "object", "properties": { "code": { "type": "integer", "format": "int32" }, "message": { "type": "string" } } }
  },
  "externalDocs": { "url": "http://swagger.io" }
}"##;

fn converted() -> Value {
    to_openapi3(&parse_document(PETSTORE.as_bytes()).expect("parses"))
}

/// Every `$ref` string in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
        _ => {}
    }
}

#[test]
fn root_servers_components_and_security() {
    let doc = converted();
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc.get("swagger").is_none() && doc.get("definitions").is_none());
    assert_eq!(doc["info"]["title"], "Swagger Petstore");
    assert_eq!(doc["externalDocs"]["url"], "http://swagger.io");
    assert_eq!(doc["tags"][0]["name"], "pet");
    assert_eq!(
        doc["servers"],
        json!([
            { "url": "https://petstore.swagger.io/v2" },
            { "url": "http://petstore.swagger.io/v2" }
        ])
    );
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["Pet"]["properties"]["category"]["$ref"],
        "#/components/schemas/Category"
    );
    assert_eq!(
        schemas["Pet"]["discriminator"],
        json!({ "propertyName": "petType" })
    );
    assert_eq!(schemas["Pet"]["properties"]["nickname"]["nullable"], true);
    // A property named like a keyword stays a property.
    assert_eq!(
        schemas["Pet"]["properties"]["x-nullable"]["type"],
        "boolean"
    );
    let security = &doc["components"]["securitySchemes"];
    assert_eq!(
        security["petstore_auth"]["flows"]["implicit"]["authorizationUrl"],
        "https://petstore.swagger.io/oauth/authorize"
    );
    assert_eq!(
        security["petstore_auth"]["flows"]["implicit"]["scopes"]["read:pets"],
        "read pets"
    );
    assert_eq!(
        security["partner"]["flows"]["clientCredentials"]["tokenUrl"],
        "https://auth.example/token"
    );
    assert_eq!(
        security["api_key"],
        json!({ "type": "apiKey", "name": "api_key", "in": "header" })
    );
    assert_eq!(
        security["basic"],
        json!({ "type": "http", "scheme": "basic" })
    );
    assert_eq!(
        doc["components"]["parameters"]["Limit"]["schema"],
        json!({ "type": "integer", "format": "int32", "maximum": 100 })
    );
    assert_eq!(
        doc["components"]["requestBodies"]["PetBody"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/Pet"
    );
    assert_eq!(
        doc["components"]["responses"]["BadRequest"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/ApiResponse"
    );
    // Every reference points into the converted document.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 8);
    for r in all {
        let pointer = r.strip_prefix('#').expect("local");
        assert!(doc.pointer(pointer).is_some(), "{r} resolves");
    }
}

#[test]
fn bodies_forms_parameters_and_responses() {
    let doc = converted();
    let paths = &doc["paths"];
    let add = &paths["/pet"]["post"];
    assert!(add.get("parameters").is_none() && add.get("consumes").is_none());
    assert_eq!(add["requestBody"]["required"], true);
    assert_eq!(
        add["requestBody"]["description"],
        "Pet object that needs to be added"
    );
    for media in ["application/json", "application/xml"] {
        assert_eq!(
            add["requestBody"]["content"][media]["schema"]["$ref"],
            "#/components/schemas/Pet"
        );
    }
    assert_eq!(add["security"][0]["petstore_auth"][0], "write:pets");
    assert_eq!(
        paths["/pet"]["put"]["requestBody"]["$ref"],
        "#/components/requestBodies/PetBody"
    );
    assert_eq!(
        paths["/pet"]["put"]["responses"]["400"]["$ref"],
        "#/components/responses/BadRequest"
    );

    let find = &paths["/pet/findByStatus"]["get"];
    let status = &find["parameters"][0];
    assert_eq!(status["style"], "form");
    assert_eq!(status["explode"], true);
    assert_eq!(status["schema"]["items"]["enum"][2], "sold");
    assert!(status.get("type").is_none() && status.get("collectionFormat").is_none());
    assert_eq!(find["parameters"][1]["style"], "pipeDelimited");
    assert_eq!(
        find["parameters"][2]["$ref"],
        "#/components/parameters/Limit"
    );
    let ok = &find["responses"]["200"];
    assert_eq!(
        ok["content"]["application/xml"]["schema"]["items"]["$ref"],
        "#/components/schemas/Pet"
    );
    assert_eq!(
        ok["content"]["application/json"]["example"][0]["name"],
        "doggie"
    );
    assert_eq!(
        ok["headers"]["X-Rate-Limit"]["schema"],
        json!({ "type": "integer", "format": "int32" })
    );
    assert!(find["responses"]["400"].get("content").is_none());

    let item = &paths["/pet/{petId}"];
    // The path item keeps its path parameter; its form field went to the operations.
    assert_eq!(item["parameters"].as_array().map(Vec::len), Some(1));
    assert_eq!(item["parameters"][0]["schema"]["format"], "int64");
    let form = &item["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"];
    assert_eq!(form["schema"]["properties"]["status"]["type"], "string");
    assert_eq!(
        form["schema"]["properties"]["name"]["description"],
        "Updated name"
    );
    assert_eq!(form["schema"]["required"], json!(["status"]));
    assert_eq!(item["post"]["requestBody"]["required"], true);
    // The inherited form field alone makes a form body for the other methods too.
    assert!(item["get"]["requestBody"]["content"]
        .get("application/x-www-form-urlencoded")
        .is_some());
    assert_eq!(item["delete"]["parameters"][0]["example"], "special-key");

    let upload = &paths["/pet/{petId}/uploadImage"]["post"]["requestBody"]["content"];
    let schema = &upload["multipart/form-data"]["schema"];
    assert_eq!(
        schema["properties"]["file"],
        json!({ "type": "string", "format": "binary" })
    );
    assert_eq!(
        paths["/store/inventory"]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["additionalProperties"]["format"],
        "int32"
    );
}

#[test]
fn import_stores_openapi_3_with_the_same_operations() {
    let (stored, imported) = import_document(PETSTORE.as_bytes()).expect("imports");
    assert_eq!(imported.version, Version::Swagger2);
    assert_eq!(stored["openapi"], "3.0.3");
    assert_eq!(
        imported.service_url.as_deref(),
        Some("https://petstore.swagger.io/v2")
    );
    let again = read_document(&stored).expect("the stored document reads");
    assert_eq!(again.version, Version::OpenApi30);
    assert_eq!(again.operations, imported.operations);
    assert_eq!(again.service_url, imported.service_url);
    let ids: Vec<_> = imported.operations.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "updatePet",
            "addPet",
            "findPetsByStatus",
            "getPetById",
            "updatePetWithForm",
            "deletePet",
            "uploadFile",
            "getInventory"
        ]
    );

    // The portal sees the converted details.
    let options = ImportOptions {
        path: Some("petstore".into()),
        service_url: None,
    };
    let api = merge("petstore", None, &imported, &options).expect("api");
    let v = view(&api, Some(&stored));
    let find = &v.operations[2];
    assert_eq!(find.id, "findPetsByStatus");
    assert_eq!(
        find.parameters[0].schema,
        "array of string, one of: available, pending, sold"
    );
    assert_eq!(find.parameters[2].name, "limit");
    assert_eq!(find.responses[0].bodies.len(), 2);
    let add = v.operations[1].request_body.as_ref().expect("body");
    assert_eq!(add.content_type, "application/json");
    assert!(
        add.schema_json.contains("\"photoUrls\""),
        "{}",
        add.schema_json
    );
    assert!(add.schema_json.contains("\"category\""));
    // Even a Swagger document stored before conversion existed is shown.
    let raw = parse_document(PETSTORE.as_bytes()).expect("parses");
    assert_eq!(view(&api, Some(&raw)), v);
}

#[test]
fn odd_swagger_pieces_are_carried_over() {
    let doc = json!({
        "swagger": "2.0",
        "paths": {
            "/a": {
                "x-note": 1,
                "parameters": "not a list",
                "get": { "parameters": [3, { "$ref": "#/parameters/Missing" }], "responses": { "200": "odd" } }
            }
        },
        "definitions": "odd",
        "securityDefinitions": { "s": { "type": "mystery" } },
        "basePath": "/base/",
    });
    let out = to_openapi3(&doc);
    assert_eq!(out["servers"], json!([{ "url": "/base" }]));
    assert_eq!(out["paths"]["/a"]["x-note"], 1);
    assert_eq!(out["paths"]["/a"]["get"]["responses"]["200"], "odd");
    assert_eq!(
        out["components"]["securitySchemes"]["s"],
        json!({ "type": "mystery" })
    );
    assert_eq!(to_openapi3(&json!([1])), json!([1]));
}
