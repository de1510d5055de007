//! End-to-end tests of OpenAPI import and export over real sockets: documents
//! fetched from a loopback server (refused unless private fetches are allowed),
//! Swagger 2.0 stored as OpenAPI 3, and operations for any method round-tripping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod client;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use client::{start_with, Client, Harness, Resp};
use serde_json::{json, Value};

async fn start(fetch_private_addresses: bool) -> Harness {
    start_with(|options| options.fetch_private_addresses = fetch_private_addresses).await
}

async fn revision(admin: &Client) -> u64 {
    let r = admin.get("/revision").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["revision"].as_u64().expect("revision")
}

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
      responses: { '200': { description: ok } }
    post:
      summary: Add a pet
      responses: { '201': { description: created } }
  /pets/{petId}:
    get:
      operationId: getPet
      responses: { default: { description: ok } }
";

/// A loopback HTTP/1.1 server: `/doc` answers `body`, `/moved` redirects to `/doc`,
/// anything else 404; it counts the connections it accepts.
async fn serve_document(body: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..read]).into_owned();
                let response = if head.starts_with("GET /doc ") {
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/yaml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else if head.starts_with("GET /moved ") {
                    "HTTP/1.1 302 Found\r\nlocation: /doc\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                } else {
                    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_owned()
                };
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn import_from_a_url_when_private_fetches_are_allowed() {
    let h = start(true).await;
    let a = &h.admin;
    let (server, _) = serve_document(PETS_YAML).await;
    let r = a
        .post(
            "/apis/remote/openapi/import-url",
            Some(&json!({ "url": format!("http://{server}/moved"), "path": "remote" })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let api = a.get("/apis/remote").await.json();
    assert_eq!(api["operations"].as_array().map(Vec::len), Some(3));
    assert_eq!(api["serviceUrl"], "http://127.0.0.1:9/v1");
    let out = a.get("/apis/remote/openapi").await.json();
    assert_eq!(out["info"]["title"], "Pets");

    let at = revision(a).await;
    let r = a
        .post(
            "/apis/remote/openapi/import-url",
            Some(&json!({ "url": format!("http://{server}/missing") })),
        )
        .await;
    assert!(r.problem(502)["detail"]
        .as_str()
        .is_some_and(|d| d.contains("404")));
    a.post(
        "/apis/remote/openapi/import-url",
        Some(&json!({ "url": "file:///etc/passwd" })),
    )
    .await
    .problem(400);
    a.post("/apis/remote/openapi/import-url", Some(&json!({})))
        .await
        .problem(400);
    assert_eq!(revision(a).await, at);
    h.management.shutdown().await;
}

#[tokio::test]
async fn import_from_a_non_public_address_is_refused_by_default() {
    let h = start(false).await;
    let a = &h.admin;
    let (server, accepted) = serve_document(PETS_YAML).await;
    let at = revision(a).await;
    for (url, kind) in [
        (format!("http://{server}/doc"), "loopback"),
        (
            format!("http://localhost:{}/moved", server.port()),
            "loopback",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "link-local",
        ),
        ("http://192.168.0.1/openapi.yaml".to_owned(), "private"),
        ("http://[fd00::1]/openapi.yaml".to_owned(), "private"),
    ] {
        let r = a
            .post(
                "/apis/remote/openapi/import-url",
                Some(&json!({ "url": url, "path": "remote" })),
            )
            .await;
        let problem = r.problem(400);
        assert!(
            problem["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("/fetch-refused")),
            "{problem}"
        );
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.contains(kind), "{url}: {detail}");
        assert!(detail.contains("--openapi-fetch-private"), "{detail}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "never connected to");
    assert_eq!(revision(a).await, at, "nothing stored");
    a.get("/apis/remote").await.problem(404);
    h.management.shutdown().await;
}

const SWAGGER: &str = r##"{
  "swagger": "2.0",
  "info": { "title": "Legacy store", "version": "0.9" },
  "host": "127.0.0.1:9",
  "basePath": "/store",
  "schemes": ["http"],
  "paths": {
    "/orders": {
      "post": {
        "operationId": "placeOrder",
        "consumes": ["application/json"],
        "parameters": [{ "in": "body", "name": "order", "required": true, "schema": { "$ref": "#/definitions/Order" } }],
        "responses": { "200": { "description": "placed", "schema": { "$ref": "#/definitions/Order" }, "examples": { "application/json": { "id": 5 } } } }
      }
    },
    "/orders/{orderId}": {
      "get": {
        "operationId": "getOrder",
        "parameters": [{ "name": "orderId", "in": "path", "required": true, "type": "integer", "format": "int64" }],
        "responses": { "404": { "description": "no such order" } }
      }
    }
  },
  "definitions": { "Order": { "type": "object", "properties": { "id": { "type": "integer" } } } }
}"##;

#[tokio::test]
async fn swagger_2_is_stored_and_exported_as_openapi_3() {
    let h = start(false).await;
    let a = &h.admin;
    let r = put_document(
        a,
        "/apis/legacy/openapi?path=legacy",
        "application/json",
        SWAGGER,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let api = a.get("/apis/legacy").await.json();
    assert_eq!(api["serviceUrl"], "http://127.0.0.1:9/store");
    assert_eq!(api["operations"][0]["id"], "placeOrder");
    let out = a.get("/apis/legacy/openapi").await.json();
    assert_eq!(out["openapi"], "3.0.3");
    assert!(out.get("swagger").is_none() && out.get("definitions").is_none());
    let place = &out["paths"]["/orders"]["post"];
    assert_eq!(
        place["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Order"
    );
    assert_eq!(
        place["responses"]["200"]["content"]["application/json"]["example"]["id"],
        5
    );
    assert_eq!(
        out["components"]["schemas"]["Order"]["properties"]["id"]["type"],
        "integer"
    );
    assert_eq!(
        out["paths"]["/orders/{orderId}"]["get"]["parameters"][0]["schema"]["format"],
        "int64"
    );
    h.management.shutdown().await;
}

#[tokio::test]
async fn operations_for_any_method_survive_export_and_import() {
    let h = start(false).await;
    let a = &h.admin;
    let api = json!({
        "id": "echo", "path": "echo", "serviceUrl": "http://127.0.0.1:9/",
        "operations": [
            { "id": "read", "displayName": "Read one", "method": "GET", "urlTemplate": "/items/{id}" },
            { "id": "anything", "displayName": "Anything else", "method": "*", "urlTemplate": "/items/{id}" },
            { "id": "rest", "method": "*", "urlTemplate": "/*" },
        ],
    });
    let r = a.put_json("/apis/echo", &api).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let exported = a.get("/apis/echo/openapi?format=yaml").await;
    assert_eq!(exported.status, 200);
    let text = exported.text();
    assert!(text.contains("x-portcullis-any-method: true"), "{text}");
    let r = put_document(
        a,
        "/apis/copy/openapi?path=copy&serviceUrl=http://127.0.0.1:9/",
        "application/yaml",
        &text,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let operations = |api: &Value| -> Vec<(String, String, String)> {
        api["operations"]
            .as_array()
            .expect("operations")
            .iter()
            .map(|o| {
                (
                    o["id"].as_str().unwrap_or_default().to_owned(),
                    o["method"].as_str().unwrap_or_default().to_owned(),
                    o["urlTemplate"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let original = a.get("/apis/echo").await.json();
    let copy = a.get("/apis/copy").await.json();
    assert_eq!(operations(&copy), operations(&original));
    assert_eq!(copy["operations"][1]["displayName"], "Anything else");
    h.management.shutdown().await;
}
