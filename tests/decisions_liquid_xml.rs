//! `set-body template="liquid"` and the XML subset of expressions, decided in
//! memory (`common::memory`): the second corpus's documents
//! (`core/tests/apim-corpus-2/`) in front of scripted backends, checking the
//! bytes both ways.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::memory::*;
use common::policy_docs::{cfg, papi};
use common::{response, Reply};

const LIQUID: &str = include_str!("../core/tests/apim-corpus-2/set-body-liquid.xml");

/// The text with the whitespace between elements and around lines removed.
fn squeeze(s: &str) -> String {
    s.lines().map(str::trim).collect::<Vec<_>>().join("")
}

#[test]
fn liquid_corpus_turns_json_into_soap_and_back() {
    let backend = MemBackend::start(|_| {
        Reply::Send(response(
            200,
            &[("Content-Type", "application/json")],
            br#"{"id":"SO-981","state":"ACCEPTED","total":1234.5,"lines":[1,2],"placedAt":"2024-11-05T16:20:00Z"}"#,
        ))
    });
    let gw = MemGateway::start(&cfg(vec![papi("orders", "orders", backend.addr, LIQUID)]));
    let order = br#"{"customer":{"id":"C-17"},"lines":[{"sku":"A1","quantity":2},{"sku":"B<2>","quantity":1}],"note":"leave at <door>","requestedOn":"2024-11-04T09:00:00Z"}"#;
    let r = call(
        &gw,
        "POST",
        "/orders/submit",
        &[
            ("Content-Type", "application/json"),
            ("X-Channel", "mobile"),
        ],
        order,
    );
    assert_eq!(r.status, 200, "{r:?}");

    let req = backend.only_request();
    assert_eq!(
        req.header("content-type").as_deref(),
        Some("text/xml; charset=utf-8")
    );
    assert_eq!(
        req.header("soapaction").as_deref(),
        Some("http://tempuri.org/PlaceOrder")
    );
    let sent = String::from_utf8(req.body.clone()).unwrap();
    assert_eq!(
        req.header("content-length").as_deref(),
        Some(sent.len().to_string().as_str())
    );
    assert_eq!(
        squeeze(&sent),
        "<soap:Envelope xmlns=\"http://tempuri.org/\" xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
         <soap:Body><PlaceOrder>\
         <Customer>C-17</Customer>\
         <Channel>MOBILE</Channel>\
         <Lines><Line sku=\"A1\" qty=\"2\" /><Line sku=\"B<2>\" qty=\"1\" /></Lines>\
         <Note>leave at &lt;door&gt;</Note>\
         <RequestedOn>2024-11-04</RequestedOn>\
         <Tenant>public</Tenant>\
         </PlaceOrder></soap:Body></soap:Envelope>"
    );

    let out: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        out,
        serde_json::json!({
            "orderId": "SO-981",
            "status": "accepted",
            "total": "$1,234.50",
            "lines": 2,
            "placedAt": "05 Nov 2024 16:20",
            "links": { "self": "/orders/submit/SO-981" }
        })
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    gw.stop();
}

#[test]
fn liquid_body_that_is_not_json_fails_to_on_error() {
    let backend = MemBackend::echo();
    let doc = r#"<policies>
        <inbound>
            <set-body template="liquid">{"id": "{{body.id}}"}</set-body>
        </inbound>
        <backend><forward-request /></backend>
        <outbound />
        <on-error>
            <return-response>
                <set-status code="400" reason="Bad Request" />
                <set-body>@(context.LastError.Source + "|" + context.LastError.Reason + "|" + context.LastError.Message)</set-body>
            </return-response>
        </on-error>
    </policies>"#;
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, doc)]));
    let r = call(
        &gw,
        "POST",
        "/api/x",
        &[("Content-Type", "application/json")],
        b"{\"id\": ",
    );
    assert_eq!(r.status, 400, "{r:?}");
    let body = r.body_str();
    assert!(
        body.starts_with("set-body|LiquidTemplateError|the body is not valid JSON"),
        "{body}"
    );
    assert!(backend.requests().is_empty());
    gw.stop();
}

#[test]
fn liquid_template_keeps_named_values_and_leaves_the_rest_to_liquid() {
    let backend = MemBackend::echo();
    let doc = r#"<policies>
        <inbound>
            <set-body template="liquid">{{tenant-name}}:{{body.id}}:{{ body.missing | Default: "none" }}</set-body>
        </inbound>
        <backend><forward-request /></backend>
        <outbound />
        <on-error />
    </policies>"#;
    let mut config = cfg(vec![papi("a", "api", backend.addr, doc)]);
    config["namedValues"] = serde_json::json!([{ "name": "tenant-name", "value": "contoso" }]);
    let gw = MemGateway::start(&config);
    let r = call(
        &gw,
        "POST",
        "/api/x",
        &[("Content-Type", "application/json")],
        br#"{"id": 7}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(backend.only_request().body, b"contoso:7:none");
    gw.stop();
}

const XML: &str = include_str!("../core/tests/apim-corpus-2/expressions-xml.xml");

const ORDER: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body>
    <o:Order xmlns:o="urn:orders" id="SO-42">
      <o:Customer>C-17</o:Customer>
      <o:Line sku="A1" qty="2" price="9.5" />
      <o:Line sku="B2" qty="1" price="1" />
    </o:Order>
  </soap:Body>
</soap:Envelope>"#;

fn xml_backend() -> MemBackend {
    MemBackend::start(|_| {
        Reply::Send(response(
            200,
            &[("Content-Type", "application/xml")],
            br#"<Reply><Status code="201">Accepted</Status><Notes><Warning>late</Warning><Warning>split</Warning></Notes></Reply>"#,
        ))
    })
}

#[test]
fn xml_corpus_reads_the_request_and_the_reply() {
    let backend = xml_backend();
    let gw = MemGateway::start(&cfg(vec![papi("orders", "orders", backend.addr, XML)]));
    let r = call(
        &gw,
        "POST",
        "/orders/submit",
        &[("Content-Type", "text/xml")],
        ORDER.as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    let req = backend.only_request();
    assert_eq!(req.header("x-order-id").as_deref(), Some("SO-42"));
    assert_eq!(req.header("x-order-total").as_deref(), Some("20"));
    assert_eq!(req.header("x-envelope").as_deref(), Some("Envelope"));
    // preserveContent: the backend gets the request body unchanged.
    assert_eq!(req.body, ORDER.as_bytes());
    let out: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        out,
        serde_json::json!({
            "orderId": "SO-42",
            "customer": "C-17",
            "status": "Accepted",
            "code": 201,
            "warnings": ["late", "split"]
        })
    );
    gw.stop();
}

#[test]
fn xml_corpus_answers_400_without_an_order() {
    let backend = xml_backend();
    let gw = MemGateway::start(&cfg(vec![papi("orders", "orders", backend.addr, XML)]));
    let r = call(
        &gw,
        "POST",
        "/orders/submit",
        &[("Content-Type", "text/xml")],
        b"<Envelope><Body /></Envelope>",
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.body_str(), "The request has no order.");
    assert!(backend.requests().is_empty());
    gw.stop();
}

#[test]
fn malformed_xml_goes_to_on_error_with_the_parsers_message() {
    let backend = xml_backend();
    let gw = MemGateway::start(&cfg(vec![papi("orders", "orders", backend.addr, XML)]));
    let r = call(
        &gw,
        "POST",
        "/orders/submit",
        &[("Content-Type", "text/xml")],
        b"<Envelope><Body></Envelope>",
    );
    assert_eq!(r.status, 400, "{r:?}");
    let body = r.body_str();
    assert!(
        body.starts_with(
            "set-variable: ExpressionValueEvaluationFailure: System.Xml.XmlException: "
        ),
        "{body}"
    );
    assert!(backend.requests().is_empty());
    gw.stop();
}

#[test]
fn snippet_list_all_inbound_headers_runs() {
    let doc =
        include_str!("../core/tests/apim-policies/examples/List all inbound headers.policy.xml");
    let backend = MemBackend::echo();
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, doc)]));
    let r = get_with(
        &gw,
        "/api/x",
        &[("X-Tenant", "contoso"), ("Accept", "text/plain")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let lines: Vec<&str> = r
        .body
        .split(|b| *b == b'\n')
        .map(|l| std::str::from_utf8(l).unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert!(lines.contains(&"X-Tenant: contoso"), "{lines:?}");
    assert!(lines.contains(&"Accept: text/plain"), "{lines:?}");
    assert!(lines.contains(&"Host: gateway.test"), "{lines:?}");
    assert!(backend.requests().is_empty());
    gw.stop();
}

#[test]
fn snippet_extracting_multiple_values_from_xml_runs() {
    let doc = include_str!(
        "../core/tests/apim-policies/examples/Extracting multiple values from xml documents.policy.xml"
    );
    let source = MemBackend::start(|_| {
        Reply::Send(response(
            200,
            &[("Content-Type", "text/xml")],
            b"<message1>\n  <conditionValue>true</conditionValue>\n  <value1>MESSAGE1_TEST1</value1>\n  <value2>MESSAGE1_TEST2</value2>\n  <value3>MESSAGE1_TEST3</value3>\n</message1>",
        ))
    });
    let backend = MemBackend::echo();
    let mut config = cfg(vec![papi("a", "api", backend.addr, doc)]);
    config["namedValues"] = serde_json::json!([
        { "name": "my-send-request", "value": format!("http://{}/message", source.addr) }
    ]);
    let gw = MemGateway::start(&config);
    let r = get_with(&gw, "/api/x", &[]);
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(
        squeeze(&r.body_str()),
        "<message3><data val1=\"MESSAGE1_TEST1\" val3=\"MESSAGE1_TEST3\" /></message3>"
    );
    assert_eq!(source.only_request().target(), "/message");
    assert!(backend.requests().is_empty());
    gw.stop();
}

#[test]
fn liquid_body_of_a_send_request_reads_the_request() {
    let audit = MemBackend::start(|_| Reply::Send(response(204, &[], b"")));
    let backend = MemBackend::echo();
    let doc = format!(
        r#"<policies>
        <inbound>
            <send-request mode="new" response-variable-name="audit" timeout="10">
                <set-url>http://{}/audit</set-url>
                <set-method>POST</set-method>
                <set-body template="liquid">{{"order": "{{{{body.id}}}}", "path": "{{{{context.Request.Url.Path}}}}"}}</set-body>
            </send-request>
        </inbound>
        <backend><forward-request /></backend>
        <outbound />
        <on-error />
    </policies>"#,
        audit.addr
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &doc)]));
    let r = call(
        &gw,
        "POST",
        "/api/orders",
        &[("Content-Type", "application/json")],
        br#"{"id": "SO-5"}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        audit.only_request().body,
        br#"{"order": "SO-5", "path": "/orders"}"#
    );
    assert_eq!(backend.only_request().body, br#"{"id": "SO-5"}"#);
    gw.stop();
}
