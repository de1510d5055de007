//! End-to-end tests of the management API over real sockets, the OpenAPI document of the management API, and OpenAPI import and export:
//! `Management::start` on 127.0.0.1:0 with a temporary data directory, driven
//! by a small HTTP client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_common;
#[allow(dead_code)]
mod client;

use api_common::{revision, start};
use client::{Client, Resp};
use serde_json::{json, Value};

#[tokio::test]
async fn openapi_document_covers_every_route() {
    let h = start().await;
    let anonymous = h.admin.anonymous();
    let r = anonymous.get("/openapi.json").await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().expect("paths");
    let expected = [
        "/apis",
        "/apis/{id}",
        "/products",
        "/products/{id}",
        "/subscriptions",
        "/subscriptions/{id}",
        "/users",
        "/users/{id}",
        "/backends",
        "/backends/{id}",
        "/certificates",
        "/certificates/{id}",
        "/ca-certificates",
        "/ca-certificates/{id}",
        "/gateways/{id}/hostnames",
        "/gateways/{id}/hostnames/{hostname}",
        "/named-values",
        "/named-values/{id}",
        "/policy-fragments",
        "/policy-fragments/{id}",
        "/gateways",
        "/gateways/{id}",
        "/policy",
        "/products/{id}/policy",
        "/apis/{id}/policy",
        "/apis/{id}/operations/{opId}/policy",
        "/policy/validate",
        "/products/{id}/policy/validate",
        "/apis/{id}/policy/validate",
        "/apis/{id}/operations/{opId}/policy/validate",
        "/apis/{id}/openapi",
        "/apis/{id}/openapi/import-url",
        "/apis/{id}/revisions",
        "/apis/{id}/revisions/{rev}",
        "/apis/{id}/revisions/{rev}/make-current",
        "/api-version-sets",
        "/api-version-sets/{id}",
        "/subscriptions/{id}/secrets",
        "/subscriptions/{id}/regenerate-primary-key",
        "/subscriptions/{id}/regenerate-secondary-key",
        "/subscriptions/{id}/suspend",
        "/subscriptions/{id}/activate",
        "/subscriptions/{id}/cancel",
        "/gateways/{id}/keys",
        "/gateways/{id}/regenerate-key",
        "/gateways/{id}/token",
        "/gateways/{id}/token/renew",
        "/gateways/{id}/status",
        "/gateways/{id}/configuration",
        "/gateways/{id}/heartbeat",
        "/gateways/{id}/telemetry",
        "/analytics/requests",
        "/analytics/records",
        "/revision",
        "/audit",
        "/openapi.json",
        "/healthz",
    ];
    for path in expected {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert_eq!(paths.len(), expected.len());
    // Every documented path and method is routed: the server answers neither 405 nor
    // "no such route" (an unknown entity's 404 is fine).
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "nope")
            .replace("{opId}", "nope")
            .replace("{rev}", "2")
            .replace("{hostname}", "nope.example.test");
        for method in item.as_object().expect("item").keys() {
            let method: hyper::Method = method.to_uppercase().parse().expect("method");
            let body = (method == hyper::Method::PUT || method == hyper::Method::POST)
                .then(|| b"{}".to_vec());
            let r = h.admin.send(method.clone(), &concrete, &[], body).await;
            assert_ne!(r.status, 405, "{method} {concrete}");
            if r.status == 404 {
                let problem = r.problem(404);
                assert!(
                    !problem["type"]
                        .as_str()
                        .unwrap_or("")
                        .ends_with("/no-such-route"),
                    "{method} {concrete} is not routed"
                );
            }
        }
    }
    // And what is not documented is not routed.
    let r = h.admin.get("/nothing-here").await.problem(404);
    assert!(r["type"]
        .as_str()
        .is_some_and(|t| t.ends_with("/no-such-route")));
    h.admin
        .send(hyper::Method::PATCH, "/apis/x", &[], None)
        .await
        .problem(405);
}

const PETS_YAML: &str = "\
openapi: 3.0.3
info:
  title: Pets
  version: '1'
servers:
  - url: http://127.0.0.1:9/v1
paths:
  /pets:
    get:
      operationId: listPets
      summary: List pets
      responses:
        200:
          description: ok
          content:
            application/json:
              example: [{ id: 1 }]
    post:
      summary: Add a pet
      responses: { '201': { description: created } }
  /pets/{petId}:
    get:
      operationId: getPet
      parameters:
        - { name: petId, in: path, required: true, schema: { type: integer } }
      responses: { default: { description: ok } }
";

async fn put_document(admin: &Client, path: &str, content_type: &str, body: &str) -> Resp {
    admin
        .send(
            hyper::Method::PUT,
            path,
            &[("content-type", content_type)],
            Some(body.as_bytes().to_vec()),
        )
        .await
}

#[tokio::test]
async fn openapi_import_keeps_policies_and_exports_round_trip() {
    let h = start().await;
    let a = &h.admin;
    let before = revision(a).await;
    let r = put_document(
        a,
        "/apis/pets/openapi?path=pets",
        "application/yaml",
        PETS_YAML,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.header("etag").is_some());
    assert_eq!(revision(a).await, before + 1);
    let api = a.get("/apis/pets").await.json();
    assert_eq!(api["displayName"], "Pets");
    assert_eq!(api["path"], "pets");
    assert_eq!(api["serviceUrl"], "http://127.0.0.1:9/v1");
    let ops: Vec<(String, String, String)> = api["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap_or("").to_owned(),
                o["method"].as_str().unwrap_or("").to_owned(),
                o["urlTemplate"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("listPets".into(), "GET".into(), "/pets".into()),
            ("post-pets".into(), "POST".into(), "/pets".into()),
            ("getPet".into(), "GET".into(), "/pets/{petId}".into()),
        ]
    );
    let audit = a.get("/audit").await.json();
    assert_eq!(audit["value"][0]["action"], "import");
    assert_eq!(audit["value"][0]["resource"], "/apis/pets");

    // Policies of the API and of operations that keep their id survive a re-import
    // (in JSON this time), as do other settings.
    let good = "<policies><inbound><base /></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>";
    assert_eq!(
        a.put_xml("/apis/pets/operations/listPets/policy", good)
            .await
            .status,
        201
    );
    assert_eq!(a.put_xml("/apis/pets/policy", good).await.status, 201);
    let mut doc: Value = json!({
        "openapi": "3.1.0",
        "info": { "title": "Pets v2" },
        "paths": {
            "/pets": { "get": { "operationId": "listPets", "summary": "All pets" } },
            "/owners": { "get": { "operationId": "listOwners" } },
        },
    });
    let r = put_document(
        a,
        "/apis/pets/openapi",
        "application/json",
        &doc.to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let api = a.get("/apis/pets").await.json();
    assert_eq!(api["displayName"], "Pets v2");
    assert_eq!(api["serviceUrl"], "http://127.0.0.1:9/v1", "upstream kept");
    assert_eq!(api["operations"].as_array().map(Vec::len), Some(2));
    assert_eq!(api["operations"][0]["displayName"], "All pets");
    assert!(api["operations"][0]["policy"].is_string(), "{api}");
    assert!(api["policy"].is_string());
    assert_eq!(
        a.get("/apis/pets/operations/listPets/policy").await.status,
        200
    );

    // Export: the stored document, brought up to date, in JSON and YAML.
    let r = put_document(a, "/apis/pets/openapi?path=pets", "text/yaml", PETS_YAML).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let exported = a.get("/apis/pets/openapi").await;
    assert_eq!(exported.status, 200);
    let out = exported.json();
    assert_eq!(out["servers"][0]["url"], "/pets");
    assert_eq!(out["paths"]["/pets"]["get"]["operationId"], "listPets");
    assert_eq!(
        out["paths"]["/pets"]["get"]["responses"]["200"]["content"]["application/json"]["example"]
            [0]["id"],
        1
    );
    let yaml = a.get("/apis/pets/openapi?format=yaml").await;
    assert_eq!(yaml.status, 200);
    assert_eq!(yaml.header("content-type"), Some("application/yaml"));
    assert!(
        yaml.text().contains("operationId: getPet"),
        "{}",
        yaml.text()
    );
    a.get("/apis/pets/openapi?format=xml").await.problem(400);

    // The export imports into another API with the same operations.
    let r = put_document(
        a,
        "/apis/copy/openapi?path=copy&serviceUrl=http://127.0.0.1:9/",
        "application/json",
        &out.to_string(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let copy = a.get("/apis/copy").await.json();
    let pets = a.get("/apis/pets").await.json();
    let strip = |v: &Value| {
        v["operations"]
            .as_array()
            .expect("ops")
            .iter()
            .map(|o| {
                (
                    o["id"].clone(),
                    o["method"].clone(),
                    o["urlTemplate"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&copy), strip(&pets));

    // An API that was never imported exports a generated document.
    assert_eq!(
        a.put_json("/apis/echo", &api_common::api("echo", "echo"))
            .await
            .status,
        201
    );
    let out = a.get("/apis/echo/openapi").await.json();
    assert_eq!(out["openapi"], "3.0.3");
    assert_eq!(out["servers"][0]["url"], "/echo");
    a.get("/apis/none/openapi").await.problem(404);

    // Nothing is written for bad documents.
    let at = revision(a).await;
    let r = put_document(
        a,
        "/apis/pets/openapi",
        "application/yaml",
        "openapi: 3.0.0\npaths:\n  /a: [unclosed\n",
    )
    .await;
    let problem = r.problem(400);
    assert!(
        problem["document"]["line"].as_u64().is_some_and(|l| l >= 3),
        "{problem}"
    );
    assert!(
        problem["document"]["column"].as_u64().is_some(),
        "{problem}"
    );
    doc["paths"]["/pets"]["get"] = json!({ "responses": [] });
    let r = put_document(
        a,
        "/apis/pets/openapi",
        "application/json",
        &doc.to_string(),
    )
    .await;
    assert_eq!(
        r.problem(400)["document"]["pointer"],
        "/paths/~1pets/get/responses"
    );
    // A new API needs its path.
    put_document(a, "/apis/new/openapi", "application/yaml", PETS_YAML)
        .await
        .problem(400);
    put_document(
        a,
        "/apis/new/openapi?path=new",
        "application/xml",
        PETS_YAML,
    )
    .await
    .problem(415);
    assert_eq!(revision(a).await, at);
    h.management.shutdown().await;
}
