//! The validation policies (`validate-content`, `validate-parameters`,
//! `validate-headers`, `validate-status-code`) and `mock-response` answering
//! the operation's example, driven in memory against an API whose contract is
//! the second corpus's pet store document. Each policy document is the
//! corpus's own file (`core/tests/apim-corpus-2/`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::memory::*;
use common::policy_docs::{assert_apim_error, cfg, op, papi};
use common::{ok, response, Reply};
use serde_json::{json, Value};

const PETSTORE: &str = include_str!("../core/tests/apim-corpus-2/openapi/petstore.json");
const VALIDATE_CONTENT: &str = include_str!("../core/tests/apim-corpus-2/validate-content.xml");
const VALIDATE_PARAMETERS: &str =
    include_str!("../core/tests/apim-corpus-2/validate-parameters.xml");
const VALIDATE_HEADERS: &str = include_str!("../core/tests/apim-corpus-2/validate-headers.xml");
const VALIDATE_STATUS_CODE: &str =
    include_str!("../core/tests/apim-corpus-2/validate-status-code.xml");
const MOCK_RESPONSE: &str = include_str!("../core/tests/apim-corpus-2/mock-response.xml");
const MOCK_RESPONSE_DEFAULTS: &str =
    include_str!("../core/tests/apim-corpus-2/mock-response.defaults.xml");

/// The pet store at `/petstore` in front of `backend`, with `policy` at API
/// scope and the pet store document as its contract.
fn petstore(backend: &MemBackend, policy: &str) -> Value {
    let mut a = papi("petstore", "petstore", backend.addr, policy);
    a["operations"] = json!([
        op("listPets", "GET", "/pets", ""),
        op("createPet", "POST", "/pets", ""),
        op("showPetById", "GET", "/pets/{petId}", ""),
    ]);
    a["openapi"] = serde_json::from_str(PETSTORE).unwrap();
    a
}

fn gateway(backend: &MemBackend, policy: &str) -> MemGateway {
    MemGateway::start(&cfg(vec![petstore(backend, policy)]))
}

#[test]
fn validate_content_passes_a_conforming_body_and_refuses_others_with_apims_400() {
    let backend = MemBackend::echo();
    let gw = gateway(&backend, VALIDATE_CONTENT);
    let json_type = [("Content-Type", "application/json")];

    let r = call(
        &gw,
        "POST",
        "/petstore/pets",
        &json_type,
        br#"{"name":"Rex","tag":null}"#,
    );
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    // No content type: read as JSON (missing-content-type-value); HAL mapped to JSON.
    let r = call(&gw, "POST", "/petstore/pets", &[], br#"{"name":"Rex"}"#);
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    let hal = [("Content-Type", "application/hal+json; charset=utf-8")];
    let r = call(&gw, "POST", "/petstore/pets", &hal, br#"{"name":"Rex"}"#);
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    // A request without a body has nothing to validate.
    let r = get_with(&gw, "/petstore/pets/7", &[]);
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(backend.requests().len(), 4);

    // A missing required property.
    let r = call(
        &gw,
        "POST",
        "/petstore/pets",
        &json_type,
        br#"{"tag":"dog"}"#,
    );
    assert_eq!(r.status, 400, "{r:?}");
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("Body of the request does not conform to the definition NewPet, which is associated with the content type application/json."),
        "{message}"
    );
    assert!(
        message.contains("\"name\" is a required property"),
        "{message}"
    );
    assert_eq!(
        r.header("x-validation-reason").as_deref(),
        Some("validate-content: Bad request")
    );
    // A property the schema does not name: allow-additional-properties="false".
    let r = call(
        &gw,
        "POST",
        "/petstore/pets",
        &json_type,
        br#"{"name":"Rex","owner":"me"}"#,
    );
    assert_eq!(r.status, 400, "{r:?}");
    // Not JSON at all.
    let r = call(&gw, "POST", "/petstore/pets", &json_type, b"{name:");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.json()["message"].as_str().unwrap().contains("Line: 1"),
        "{}",
        r.body_str()
    );
    // A content type the operation does not declare.
    let r = call(
        &gw,
        "POST",
        "/petstore/pets",
        &[("Content-Type", "text/plain")],
        b"Rex",
    );
    assert_apim_error(
        &r,
        400,
        "Unspecified content type text/plain is not allowed.",
    );
    // XML is declared and checked for being well-formed.
    let xml = [("Content-Type", "application/xml")];
    let r = call(
        &gw,
        "POST",
        "/petstore/pets",
        &xml,
        b"<NewPet><name>Rex</name></NewPet>",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = call(
        &gw,
        "POST",
        "/petstore/pets",
        &xml,
        b"<NewPet><name>Rex</NewPet>",
    );
    assert_eq!(r.status, 400, "{r:?}");
    // Over max-size (100 KB).
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(102_400));
    let r = call(&gw, "POST", "/petstore/pets", &json_type, big.as_bytes());
    assert_apim_error(
        &r,
        400,
        &format!(
            "Request's body is {} bytes long and it exceeds the limit of 102400 bytes.",
            big.len()
        ),
    );
    assert_eq!(
        backend.requests().len(),
        5,
        "refused requests never reach the backend"
    );
    gw.stop();
}

#[test]
fn validate_content_on_the_response_answers_502_and_detect_lets_it_through() {
    let backend = MemBackend::start(|r| {
        let body: &[u8] = if r.target().contains("/pets/1") {
            br#"{"id":1,"name":"Rex"}"#
        } else {
            br#"{"id":"two","name":"Tom"}"#
        };
        Reply::Send(ok("application/json", body))
    });
    let prevent = r#"<policies><inbound><base /></inbound><backend><base /></backend><outbound><base />
        <validate-content unspecified-content-type-action="prevent" max-size="1024" size-exceeded-action="prevent">
          <content type="application/json" validate-as="json" action="prevent" />
        </validate-content></outbound><on-error><base /><set-header name="X-Error" exists-action="override"><value>@(context.LastError.Reason + ": " + context.LastError.Message)</value></set-header></on-error></policies>"#;
    let gw = gateway(&backend, prevent);
    let r = get_with(&gw, "/petstore/pets/1", &[]);
    assert_eq!(r.status, 200, "{r:?} {:?}", r.header("x-error"));
    assert_eq!(r.json(), json!({"id": 1, "name": "Rex"}));
    let r = get_with(&gw, "/petstore/pets/2", &[]);
    assert_apim_error(
        &r,
        502,
        "The request could not be processed due to an internal error. Contact the API owner.",
    );
    gw.stop();

    let detect = r#"<policies><inbound><base /></inbound><backend><base /></backend><outbound><base />
        <validate-content unspecified-content-type-action="detect" max-size="1024" size-exceeded-action="detect" errors-variable-name="found">
          <content type="application/json" validate-as="json" action="detect" />
        </validate-content>
        <set-header name="X-Found" exists-action="override"><value>@(JsonConvert.SerializeObject(context.Variables["found"]))</value></set-header>
        </outbound><on-error><base /></on-error></policies>"#;
    let gw = gateway(&backend, detect);
    let r = get_with(&gw, "/petstore/pets/2", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let found: Value = serde_json::from_str(&r.header("x-found").unwrap()).unwrap();
    assert_eq!(found[0]["Type"], "ResponseBody");
    assert_eq!(found[0]["ValidationRule"], "IncorrectMessage");
    assert_eq!(found[0]["Action"], "detect");
    assert_eq!(found[0]["Name"], "application/json");
    gw.stop();
}

#[test]
fn validate_parameters_checks_types_required_and_undeclared_ones() {
    let backend = MemBackend::echo();
    let gw = gateway(&backend, VALIDATE_PARAMETERS);
    let r = get_with(&gw, "/petstore/pets?limit=10&tags=a,b&debug=1", &[]);
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(r.header("x-parameter-findings").as_deref(), Some("[]"));

    // Out of the schema's range.
    let r = get_with(&gw, "/petstore/pets?limit=500", &[]);
    assert_eq!(r.status, 400, "{r:?}");
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with(
            "The value of the query parameter limit does not conform to the definition."
        ),
        "{message}"
    );
    // Not an integer at all.
    let r = get_with(&gw, "/petstore/pets?limit=ten", &[]);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.json()["message"].as_str().unwrap().starts_with(
            "Value of the query parameter limit couldn't be parsed according to the definition."
        ),
        "{}",
        r.body_str()
    );
    // Twice.
    let r = get_with(&gw, "/petstore/pets?limit=1&limit=2", &[]);
    assert_apim_error(
        &r,
        400,
        "Request cannot contain multiple values for the query parameter limit.",
    );
    // Undeclared query parameter: prevented.
    let r = get_with(&gw, "/petstore/pets?sort=name", &[]);
    assert_apim_error(&r, 400, "Unspecified query parameter sort is not allowed.");
    assert_eq!(
        r.header("x-validation-reason").as_deref(),
        Some("validate-parameters: Unspecified query parameter sort is not allowed.")
    );
    // Path parameter of the wrong type.
    let r = get_with(&gw, "/petstore/pets/rex", &[]);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body_str().contains("path parameter petId"),
        "{}",
        r.body_str()
    );
    // A declared header with a bad value is prevented; an undeclared one only detected.
    let r = get_with(&gw, "/petstore/pets", &[("X-Request-Id", "not-a-uuid")]);
    assert_eq!(r.status, 400, "{r:?}");
    let r = get_with(&gw, "/petstore/pets/3", &[("X-Client", "mobile")]);
    assert_eq!(r.status, 200, "{r:?}");
    let found: Value = serde_json::from_str(&r.header("x-parameter-findings").unwrap()).unwrap();
    assert_eq!(
        found,
        json!([{
            "Name": "X-Client",
            "Type": "RequestHeader",
            "ValidationRule": "Unspecified",
            "Details": "Unspecified header X-Client is not allowed.",
            "Action": "detect"
        }])
    );
    assert_eq!(backend.requests().len(), 2);
    gw.stop();
}

#[test]
fn validate_headers_checks_the_response_headers_of_the_status() {
    let backend = MemBackend::start(|r| {
        let t = r.target();
        let headers: &[(&str, &str)] = if t.contains("bad-type") {
            &[
                ("Content-Type", "application/json"),
                ("X-Total-Count", "many"),
            ]
        } else if t.contains("extra") {
            &[
                ("Content-Type", "application/json"),
                ("X-Powered-By", "PHP/5.4"),
            ]
        } else {
            &[
                ("Content-Type", "application/json"),
                ("X-Total-Count", "2"),
                ("X-Backend-Trace", "node-7"),
            ]
        };
        Reply::Send(response(200, headers, b"[]"))
    });
    let gw = gateway(&backend, VALIDATE_HEADERS);
    let r = get_with(&gw, "/petstore/pets", &[]);
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(r.header("x-total-count").as_deref(), Some("2"));
    let internal =
        "The request could not be processed due to an internal error. Contact the API owner.";
    let r = get_with(&gw, "/petstore/pets?bad-type", &[]);
    assert_apim_error(&r, 502, internal);
    assert!(
        r.header("x-validation-reason").unwrap().starts_with(
            "Response not allowed: Value of the header X-Total-Count cannot be parsed"
        ),
        "{r:?}"
    );
    let r = get_with(&gw, "/petstore/pets?extra", &[]);
    assert_apim_error(&r, 502, internal);
    assert_eq!(
        r.header("x-validation-reason").as_deref(),
        Some("Response not allowed: Unspecified header X-Powered-By is not allowed.")
    );
    gw.stop();
}

#[test]
fn validate_status_code_hides_undeclared_statuses() {
    let backend = MemBackend::start(|r| {
        let status = r
            .target()
            .rsplit('/')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap_or(200);
        Reply::Send(response(
            status,
            &[("Content-Type", "text/plain")],
            b"stack trace",
        ))
    });
    let gw = gateway(&backend, VALIDATE_STATUS_CODE);
    // 200 and 404 are declared for showPetById.
    assert_eq!(get_with(&gw, "/petstore/pets/200", &[]).status, 200);
    assert_eq!(get_with(&gw, "/petstore/pets/404", &[]).status, 404);
    let r = get_with(&gw, "/petstore/pets/500", &[]);
    assert_apim_error(
        &r,
        502,
        "The request could not be processed due to an internal error. Contact the API owner.",
    );
    assert_eq!(
        r.header("x-validation-reason").as_deref(),
        Some("Response not allowed: Response status code 500 is not allowed.")
    );
    // The override only detects 503.
    let r = get_with(&gw, "/petstore/pets/503", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(r.body_str(), "stack trace");
    gw.stop();
}

#[test]
fn mock_response_answers_the_operations_example() {
    let backend = MemBackend::echo();
    let gw = gateway(&backend, MOCK_RESPONSE);
    let r = get_with(&gw, "/petstore/pets/7", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.json(), json!({"id": 7, "name": "Bella", "tag": "dog"}));
    let r = get_with(&gw, "/petstore/pets", &[]);
    assert_eq!(
        r.json(),
        json!([{"id": 1, "name": "Rex", "tag": "dog"}, {"id": 2, "name": "Tom", "tag": "cat"}])
    );
    assert!(backend.requests().is_empty());
    gw.stop();

    // No attributes: the first 2xx response (201 here) and its first
    // representation, from `examples`.
    let gw = gateway(&backend, MOCK_RESPONSE_DEFAULTS);
    let r = call(&gw, "POST", "/petstore/pets", &[], b"");
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json(), json!({"id": 10, "name": "Fido", "tag": "dog"}));
    gw.stop();

    // The status and content type asked choose the example.
    let xml = r#"<policies><inbound><base /><mock-response status-code="200" content-type="application/xml" /></inbound>
        <backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>"#;
    let gw = gateway(&backend, xml);
    let r = get_with(&gw, "/petstore/pets/7", &[]);
    assert_eq!(r.header("content-type").as_deref(), Some("application/xml"));
    assert_eq!(
        r.body_str(),
        "<Pet><id>7</id><name>Bella</name><tag>dog</tag></Pet>"
    );
    gw.stop();
    let not_found = r#"<policies><inbound><base /><mock-response status-code="404" /></inbound>
        <backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>"#;
    let gw = gateway(&backend, not_found);
    let r = get_with(&gw, "/petstore/pets/9", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), json!({"code": 404, "message": "pet not found"}));
    gw.stop();
    assert!(backend.requests().is_empty());
}

#[test]
fn a_contract_that_does_not_compile_is_a_configuration_error_naming_the_pointer() {
    let backend = MemBackend::echo();
    let mut a = petstore(&backend, VALIDATE_CONTENT);
    a["openapi"]["paths"]["/pets"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"] = json!({"$ref": "#/components/schemas/Missing"});
    let err = portcullis_core::config::CompiledConfig::compile(
        portcullis_core::config::Snapshot::from_json(&serde_json::to_vec(&cfg(vec![a])).unwrap())
            .unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("api `petstore`: OpenAPI document at `/paths/~1pets/post/requestBody/content/application~1json/schema`"), "{err}");
}
