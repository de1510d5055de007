//! End to end on both runtimes: an API whose contract arrives through the
//! management plane's real OpenAPI import, served by a connected gateway.
//! `validate-content` refuses a body that breaks the imported schema with 400
//! and APIM's body, and `mock-response` answers the document's example.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::managed::{ManagedGateway, ManagementProcess};
use common::*;
use serde_json::json;

const PETSTORE: &str = include_str!("../core/tests/apim-corpus-2/openapi/petstore.json");
const VALIDATE_CONTENT: &str = include_str!("../core/tests/apim-corpus-2/validate-content.xml");
const MOCK_RESPONSE: &str = include_str!("../core/tests/apim-corpus-2/mock-response.xml");

fn post_json(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: gateway.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[runtimes]
async fn imported_contract_validates_and_mocks(rt: Runtime) {
    let backend = Backend::echo().await;
    let data = tempfile::tempdir().unwrap();
    let mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let mut petstore = api("petstore", "petstore", &format!("http://{}", backend.addr));
    petstore["subscriptionRequired"] = json!(false);
    mgmt.ok("PUT", "/apis/petstore", Some(&petstore.to_string()), 201)
        .await;
    // The real import: the document's operations replace the API's.
    let r = mgmt
        .call("PUT", "/apis/petstore/openapi", Some(PETSTORE))
        .await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    let r = mgmt
        .call("PUT", "/apis/petstore/policy", Some(VALIDATE_CONTENT))
        .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.body_str());
    let r = mgmt
        .call(
            "PUT",
            "/apis/petstore/operations/showPetById/policy",
            Some(MOCK_RESPONSE),
        )
        .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.body_str());
    let token = mgmt.gateway_with_token("gw-1", &["petstore"]).await;
    let gw = ManagedGateway::start(rt, &mgmt.url, &token, &[]).await;
    gw.ready().await;

    // A body that breaks the imported schema (`name` is required).
    let mut c = Client::connect(gw.addr).await;
    let r = c
        .roundtrip(post_json("/petstore/pets", r#"{"tag":"dog"}"#))
        .await;
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    let body = r.json();
    assert_eq!(body["statusCode"], 400);
    assert!(
        body["message"].as_str().unwrap().starts_with(
            "Body of the request does not conform to the definition NewPet, which is associated with the content type application/json."
        ),
        "{body}"
    );
    // A conforming one reaches the backend.
    let mut c = Client::connect(gw.addr).await;
    let r = c
        .roundtrip(post_json("/petstore/pets", r#"{"name":"Rex"}"#))
        .await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.header("x-path").as_deref(), Some("/pets"));

    // The mocked operation answers the document's example; the backend is not called.
    let r = gw.get("/petstore/pets/7").await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.json(), json!({"id": 7, "name": "Bella", "tag": "dog"}));
    assert!(r.header("x-path").is_none());
}
