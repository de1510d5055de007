//! `json-to-xml` and `xml-to-json` through the whole connection machine in
//! memory (`common::memory`): the second corpus's documents
//! (`core/tests/apim-corpus-2/`) loaded as they are, checked on what the
//! backend receives and what the client sees (body, Content-Type,
//! Content-Length), and failures reaching `on-error` with `context.LastError`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::memory::*;
use common::policy_docs::{cfg, papi, policies, LAST_ERROR_HEADER};
use common::{ok, Reply};
use serde_json::json;

const JSON_TO_XML: &str = include_str!("../core/tests/apim-corpus-2/json-to-xml.xml");
const JSON_TO_XML_ACCEPT: &str = include_str!("../core/tests/apim-corpus-2/json-to-xml.accept.xml");
const XML_TO_JSON: &str = include_str!("../core/tests/apim-corpus-2/xml-to-json.xml");
const XML_TO_JSON_FRIENDLY: &str =
    include_str!("../core/tests/apim-corpus-2/xml-to-json.javascript-friendly.xml");

#[test]
fn corpus_json_to_xml_sends_a_soap_envelope_to_the_backend() {
    let backend = MemBackend::echo();
    let gw = MemGateway::start(&cfg(vec![papi("a", "soap", backend.addr, JSON_TO_XML)]));
    let body = r##"{
      "soapenv:Envelope": {
        "xmlns:soapenv": "http://schemas.xmlsoap.org/soap/envelope/",
        "xmlns:v1": "http://localdomain.com/core/v1",
        "soapenv:Header": {},
        "soapenv:Body": {
          "v1:QueryList": {
            "#attrs": { "queryName": "test" },
            "v1:QueryItem": { "#attrs": { "name": "dummy" }, "#text": "Größe" },
            "v1:Since": "2024-01-01T00:00:00.000Z"
          }
        }
      }
    }"##;
    let r = call(
        &gw,
        "POST",
        "/soap/query",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let expected = concat!(
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:v1="http://localdomain.com/core/v1">"#,
        "<soapenv:Header /><soapenv:Body>",
        r#"<v1:QueryList queryName="test"><v1:QueryItem name="dummy">Größe</v1:QueryItem>"#,
        // parse-date="false": the date is copied as written.
        "<v1:Since>2024-01-01T00:00:00.000Z</v1:Since></v1:QueryList>",
        "</soapenv:Body></soapenv:Envelope>"
    );
    let req = backend.only_request();
    assert_eq!(String::from_utf8(req.body.clone()).unwrap(), expected);
    assert_eq!(
        req.header("content-length"),
        Some(expected.len().to_string())
    );
    assert_eq!(
        req.header("content-type").as_deref(),
        Some("text/xml; charset=utf-8")
    );
    assert_eq!(
        req.header("soapaction").as_deref(),
        Some(r#""http://localdomain.com/core/v1/QueryList""#)
    );
    // apply="content-type-json": a body that does not say it is JSON passes as is.
    let r = call(
        &gw,
        "POST",
        "/soap/query",
        &[("Content-Type", "text/plain")],
        b"{\"a\": 1}",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(backend.requests()[1].body, b"{\"a\": 1}");
    gw.stop();
}

#[test]
fn corpus_json_to_xml_converts_the_response_only_for_clients_asking_for_xml() {
    let backend = MemBackend::start(|r| {
        if r.target() == "/text" {
            Reply::Send(ok("text/plain", b"{\"plain\": true}"))
        } else {
            Reply::Send(ok(
                "application/json; charset=utf-8",
                r#"{"id": 42, "name": "Zoë", "tags": ["a", "b"], "placed": "2024-03-01T10:20:30.500Z"}"#
                    .as_bytes(),
            ))
        }
    });
    let gw = MemGateway::start(&cfg(vec![papi(
        "a",
        "orders",
        backend.addr,
        JSON_TO_XML_ACCEPT,
    )]));
    let r = get_with(&gw, "/orders/1", &[("Accept", "application/xml")]);
    assert_eq!(r.status, 200, "{r:?}");
    let xml = "<Document><id>42</id><name>Zoë</name><tags>a</tags><tags>b</tags><placed>2024-03-01T10:20:30.5Z</placed></Document>";
    assert_eq!(r.body_str(), xml);
    assert_eq!(r.header("content-type").as_deref(), Some("application/xml"));
    assert_eq!(r.header("content-length"), Some(xml.len().to_string()));
    // consider-accept-header="true": a JSON client gets the JSON.
    let r = get_with(&gw, "/orders/1", &[("Accept", "application/json")]);
    assert!(r.body_str().starts_with("{\"id\": 42"), "{}", r.body_str());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json; charset=utf-8")
    );
    // apply="content-type-json": a text answer is not converted.
    let r = get_with(&gw, "/orders/text", &[("Accept", "text/xml")]);
    assert_eq!(r.body_str(), "{\"plain\": true}");
    gw.stop();
}

#[test]
fn corpus_xml_to_json_answers_json_mirroring_the_xml() {
    let backend = MemBackend::start(|r| {
        if r.target() == "/json" {
            return Reply::Send(ok("application/json", b"[1]"));
        }
        Reply::Send(ok(
            "text/xml; charset=utf-8",
            br#"<?xml version="1.0" encoding="utf-8"?>
<inv:stock xmlns:inv="urn:inventory" warehouse="north">
  <inv:item sku="A-1"><inv:qty>3</inv:qty></inv:item>
  <inv:item sku="B-2"><inv:qty>0</inv:qty><inv:note>back &amp; forth</inv:note></inv:item>
</inv:stock>"#,
        ))
    });
    let gw = MemGateway::start(&cfg(vec![papi("a", "stock", backend.addr, XML_TO_JSON)]));
    let r = get_with(&gw, "/stock/all", &[("Accept", "*/*")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json(),
        json!({
            "version": "1.0",
            "encoding": "utf-8",
            "inv$stock": {
                "@xmlns$inv": "urn:inventory",
                "@warehouse": "north",
                "inv$item": [
                    { "@sku": "A-1", "inv$qty": "3" },
                    { "@sku": "B-2", "inv$qty": "0", "inv$note": "back & forth" }
                ]
            }
        })
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.header("content-length"), Some(r.body.len().to_string()));
    assert_eq!(
        backend.only_request().header("accept").as_deref(),
        Some("application/xml")
    );
    // apply="content-type-xml": JSON from the backend passes untouched.
    let r = get_with(&gw, "/stock/json", &[]);
    assert_eq!(r.body_str(), "[1]");
    gw.stop();
}

#[test]
fn corpus_xml_to_json_javascript_friendly_on_the_request() {
    let backend = MemBackend::echo();
    let gw = MemGateway::start(&cfg(vec![papi(
        "a",
        "partners",
        backend.addr,
        XML_TO_JSON_FRIENDLY,
    )]));
    let body =
        br#"<p:order xmlns:p="urn:partner" id="77"><p:line><p:sku>X</p:sku></p:line></p:order>"#;
    let r = call(
        &gw,
        "POST",
        "/partners/orders",
        &[("Content-Type", "application/xml")],
        body,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let req = backend.only_request();
    let sent: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        sent,
        json!({ "order": { "@id": "77", "line": [ { "sku": ["X"] } ] } })
    );
    assert_eq!(
        req.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        req.header("content-length"),
        Some(req.body.len().to_string())
    );
    gw.stop();
}

#[test]
fn a_body_that_does_not_convert_goes_to_on_error_with_last_error() {
    let backend = MemBackend::echo();
    let policy = policies(
        r#"<choose>
             <when condition="@(context.Request.Url.Path.EndsWith("json"))">
               <json-to-xml apply="always" consider-accept-header="false" />
             </when>
             <otherwise>
               <xml-to-json kind="direct" apply="always" consider-accept-header="false" />
             </otherwise>
           </choose>"#,
        "",
        "",
        LAST_ERROR_HEADER,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = call(&gw, "POST", "/api/json", &[], b"{\"a\": [1,");
    assert_eq!(r.status, 500, "{r:?}");
    let err = r.header("x-error").unwrap();
    assert!(
        err.starts_with("JsonToXmlConversionFailed: the body is not valid JSON"),
        "{err}"
    );
    let r = call(&gw, "POST", "/api/xml", &[], b"<a><b></a>");
    assert_eq!(r.status, 500, "{r:?}");
    let err = r.header("x-error").unwrap();
    assert!(
        err.starts_with("XmlToJsonConversionFailed: the body is not well-formed XML: line 1"),
        "{err}"
    );
    assert!(backend.requests().is_empty());
    // An empty body is left alone, as APIM does.
    let r = call(&gw, "POST", "/api/json", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    gw.stop();
}

#[test]
fn attribute_values_may_be_expressions() {
    let backend =
        MemBackend::start(|_| Reply::Send(ok("application/json", br#"{"error": {"code": "E1"}}"#)));
    let policy = policies(
        "",
        "",
        r#"<json-to-xml apply="@(context.Request.Headers.GetValueOrDefault("X-Apply", "always"))" consider-accept-header="false" />"#,
        "",
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = get_with(&gw, "/api/x", &[]);
    assert_eq!(r.body_str(), "<error><code>E1</code></error>");
    let r = get_with(&gw, "/api/x", &[("X-Apply", "sometimes")]);
    assert_eq!(r.status, 500, "{r:?}");
    gw.stop();
}

#[test]
fn json_to_xml_in_on_error_converts_the_error_answer() {
    let backend = MemBackend::echo();
    let policy = policies(
        r#"<xml-to-json kind="direct" apply="always" consider-accept-header="false" />"#,
        "",
        "",
        r#"<set-body>@("{\"error\": {\"reason\": \"" + context.LastError.Reason + "\"}}")</set-body>
           <json-to-xml apply="always" consider-accept-header="true" />"#,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = call(&gw, "POST", "/api/x", &[("Accept", "text/xml")], b"not xml");
    assert_eq!(r.status, 500, "{r:?}");
    let xml = "<error><reason>XmlToJsonConversionFailed</reason></error>";
    assert_eq!(r.body_str(), xml);
    assert_eq!(r.header("content-type").as_deref(), Some("application/xml"));
    assert_eq!(r.header("content-length"), Some(xml.len().to_string()));
    gw.stop();
}

const XSL_TRANSFORM: &str = include_str!("../core/tests/apim-corpus-2/xsl-transform.xml");

#[test]
fn corpus_xsl_transform_stamps_the_request_and_unwraps_the_soap_response() {
    let backend = MemBackend::start(|_| {
        Reply::Send(ok(
            "text/xml; charset=utf-8",
            br#"<?xml version="1.0"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body>
    <m:OrdersResponse xmlns:m="urn:orders">
      <m:Order id="a" amount="5">  pens </m:Order>
      <m:Order id="b" amount="20.5">paper</m:Order>
    </m:OrdersResponse>
  </soap:Body>
</soap:Envelope>"#,
        ))
    });
    let gw = MemGateway::start(&cfg(vec![papi("a", "orders", backend.addr, XSL_TRANSFORM)]));
    let r = call(
        &gw,
        "POST",
        "/orders/list",
        &[
            ("Content-Type", "text/xml"),
            ("User-Agent", "partner-client/2.1 \"beta\""),
            ("X-Plan", "gold"),
        ],
        b"<GetOrders><Customer id=\"7\">acme</Customer></GetOrders>",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let expected = r#"<orders count="2" total="25.50"><order id="b" amount="20.50">paper</order><order id="a" amount="5.00">pens</order></orders>"#;
    assert_eq!(r.body_str().trim_end(), expected);
    assert_eq!(r.header("content-length"), Some(r.body.len().to_string()));
    let req = backend.only_request();
    assert_eq!(
        String::from_utf8(req.body.clone()).unwrap().trim_end(),
        r#"<GetOrders User-Agent="partner-client/2.1 &quot;beta&quot;" plan="gold"><Customer id="7">acme</Customer></GetOrders>"#
    );
    assert_eq!(
        req.header("content-length"),
        Some(req.body.len().to_string())
    );
    // A request body that is not XML stops in the pipeline with the reason.
    let r = call(&gw, "POST", "/orders/list", &[], b"{\"json\": true}");
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(backend.requests().len(), 1);
    gw.stop();
}

#[test]
fn xsl_transform_failure_reaches_on_error_with_last_error() {
    let backend = MemBackend::echo();
    let policy = policies(
        r#"<xsl-transform>
             <xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
               <xsl:template match="/"><xsl:message terminate="yes">no orders here</xsl:message></xsl:template>
             </xsl:stylesheet>
           </xsl-transform>"#,
        "",
        "",
        LAST_ERROR_HEADER,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = call(&gw, "POST", "/api/x", &[], b"<a/>");
    assert_eq!(r.status, 500, "{r:?}");
    let err = r.header("x-error").unwrap();
    assert!(err.starts_with("XslTransformFailed: "), "{err}");
    assert!(err.contains("no orders here"), "{err}");
    assert!(backend.requests().is_empty());
    gw.stop();
}
