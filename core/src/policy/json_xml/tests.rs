//! The conversions on APIM's documented examples and their edge cases.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};

use super::to_xml::normalize_date;
use super::*;

fn to_xml(json: &str) -> String {
    json_to_xml(json.as_bytes(), &ToXml::default()).unwrap()
}

fn direct(xml: &str) -> Value {
    let s = xml_to_json(
        xml.as_bytes(),
        &ToJson {
            kind: Kind::Direct,
            always_array: false,
        },
    )
    .unwrap();
    serde_json::from_str(&s).unwrap()
}

fn friendly(xml: &str) -> Value {
    let s = xml_to_json(
        xml.as_bytes(),
        &ToJson {
            kind: Kind::JavascriptFriendly,
            always_array: false,
        },
    )
    .unwrap();
    serde_json::from_str(&s).unwrap()
}

#[test]
fn apim_soap_example_with_namespaces_and_attribute_block() {
    // The example of APIM's json-to-xml page: prefix "xmlns", separator ":",
    // attribute block "#attrs".
    let body = r##"{
      "soapenv:Envelope": {
        "xmlns:soapenv": "http://schemas.xmlsoap.org/soap/envelope/",
        "xmlns:v1": "http://localdomain.com/core/v1",
        "soapenv:Header": {},
        "soapenv:Body": {
          "v1:QueryList": {
            "#attrs": { "queryName": "test" },
            "v1:QueryItem": {
              "#attrs": { "name": "dummy" },
              "#text": "dummy"
            }
          }
        }
      }
    }"##;
    let opts = ToXml {
        parse_date: false,
        separator: ":",
        namespace_prefix: Some("xmlns"),
        attribute_block: Some("#attrs"),
    };
    let xml = json_to_xml(body.as_bytes(), &opts).unwrap();
    assert_eq!(
        xml,
        concat!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:v1="http://localdomain.com/core/v1">"#,
            "<soapenv:Header />",
            "<soapenv:Body>",
            r#"<v1:QueryList queryName="test"><v1:QueryItem name="dummy">dummy</v1:QueryItem></v1:QueryList>"#,
            "</soapenv:Body>",
            "</soapenv:Envelope>"
        )
    );
}

#[test]
fn apim_documented_example_verbatim() {
    // The input of APIM's page, as published. The page's expected output drops
    // the <v1:QueryItem> element around <name>; we keep it (every property is
    // an element, as everywhere else on the page), and write no indentation.
    let body = r##"{
      "soapenv:Envelope": {
        "xmlns:soapenv": "http://schemas.xmlsoap.org/soap/envelope/",
        "xmlns:v1": "http://localdomain.com/core/v1",
        "soapenv:Header": {},
        "soapenv:Body": {
          "v1:QueryList": {
            "#attrs": { "queryName": "test" },
            "v1:QueryItem": { "name": "dummy text" }
          }
        }
      }
    }"##;
    let opts = ToXml {
        parse_date: false,
        separator: ":",
        namespace_prefix: Some("xmlns"),
        attribute_block: Some("#attrs"),
    };
    assert_eq!(
        json_to_xml(body.as_bytes(), &opts).unwrap(),
        concat!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:v1="http://localdomain.com/core/v1">"#,
            "<soapenv:Header /><soapenv:Body>",
            r#"<v1:QueryList queryName="test"><v1:QueryItem><name>dummy text</name></v1:QueryItem></v1:QueryList>"#,
            "</soapenv:Body></soapenv:Envelope>"
        )
    );
}

#[test]
fn several_properties_are_wrapped_in_document() {
    assert_eq!(
        to_xml(r#"{"id": 7, "name": "Zoë", "active": true, "note": null}"#),
        "<Document><id>7</id><name>Zoë</name><active>true</active><note /></Document>"
    );
}

#[test]
fn a_single_object_property_is_the_root() {
    assert_eq!(
        to_xml(r##"{"order": {"id": "A-1", "@currency": "EUR", "#text": "x"}}"##),
        r#"<order currency="EUR"><id>A-1</id>x</order>"#
    );
}

#[test]
fn arrays_repeat_their_element_and_an_array_of_one_is_one_element() {
    assert_eq!(
        to_xml(r#"{"a": [1, 2], "b": ["only"], "c": [], "d": [[1, 2], [3]]}"#),
        "<Document><a>1</a><a>2</a><b>only</b><d><d>1</d><d>2</d></d><d><d>3</d></d></Document>"
    );
    assert_eq!(
        to_xml(r#"[{"x": 1}, 2]"#),
        "<Document><Array><x>1</x></Array><Array>2</Array></Document>"
    );
}

#[test]
fn scalars_and_empty_documents() {
    assert_eq!(to_xml(r#""text""#), "<Document>text</Document>");
    assert_eq!(to_xml("{}"), "<Document />");
    assert_eq!(to_xml("null"), "<Document />");
}

#[test]
fn names_that_are_not_xml_names_are_encoded() {
    assert_eq!(
        to_xml(r#"{"first name": 1, "2nd": 2, "a:b": 3, "ok-name.x": 4}"#),
        "<Document><first_x0020_name>1</first_x0020_name><_x0032_nd>2</_x0032_nd><a_x003A_b>3</a_x003A_b><ok-name.x>4</ok-name.x></Document>"
    );
}

#[test]
fn text_is_escaped_and_cdata_kept() {
    assert_eq!(
        to_xml(
            r##"{"r": {"@q": "a\"<b", "#text": "x & y < z", "c": {"#cdata-section": "<raw>]]>"}}}"##
        ),
        r#"<r q="a&quot;&lt;b">x &amp; y &lt; z<c><![CDATA[<raw>]]]]><![CDATA[>]]></c></r>"#
    );
}

#[test]
fn default_separator_only_qualifies_declared_prefixes() {
    let opts = ToXml {
        namespace_prefix: Some("xmlns"),
        ..ToXml::default()
    };
    let xml = json_to_xml(
        br#"{"s_Envelope": {"xmlns_s": "urn:s", "s_Body": {"user_id": 5}}}"#,
        &opts,
    )
    .unwrap();
    assert_eq!(
        xml,
        r#"<s:Envelope xmlns:s="urn:s"><s:Body><user_id>5</user_id></s:Body></s:Envelope>"#
    );
}

#[test]
fn parse_date_normalises_iso_dates_only_when_asked() {
    assert_eq!(
        normalize_date("2024-03-01T10:20:30.1200000Z").as_deref(),
        Some("2024-03-01T10:20:30.12Z")
    );
    assert_eq!(
        normalize_date("2024-03-01T10:20:30.000+02:00").as_deref(),
        Some("2024-03-01T10:20:30+02:00")
    );
    assert_eq!(normalize_date("2024-13-01T10:20:30"), None);
    assert_eq!(normalize_date("not a date"), None);
    let body = br#"{"at": "2024-03-01T10:20:30.500Z"}"#;
    let parsed = json_to_xml(body, &ToXml::default()).unwrap();
    assert_eq!(
        parsed,
        "<Document><at>2024-03-01T10:20:30.5Z</at></Document>"
    );
    let copied = json_to_xml(
        body,
        &ToXml {
            parse_date: false,
            ..ToXml::default()
        },
    )
    .unwrap();
    assert_eq!(
        copied,
        "<Document><at>2024-03-01T10:20:30.500Z</at></Document>"
    );
}

#[test]
fn malformed_json_is_an_error_naming_the_place() {
    let err = json_to_xml(b"{\"a\": ", &ToXml::default()).unwrap_err();
    assert!(matches!(err, ConvertError::Json(_)), "{err}");
    assert!(err.to_string().contains("line 1"), "{err}");
    let err = json_to_xml(br#"{"a": "\u0001"}"#, &ToXml::default()).unwrap_err();
    assert!(err.to_string().contains("U+0001"), "{err}");
}

#[test]
fn direct_keeps_the_declaration_prefixes_and_namespace_attributes() {
    // The shape APIM answers for a SOAP response (`:` written `$`).
    let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns="http://example.com/" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body>
    <GetOrders>
      <Customer>1234567</Customer>
    </GetOrders>
  </soap:Body>
</soap:Envelope>"#;
    assert_eq!(
        direct(xml),
        json!({
            "version": "1.0",
            "encoding": "utf-8",
            "soap$Envelope": {
                "@xmlns": "http://example.com/",
                "@xmlns$soap": "http://schemas.xmlsoap.org/soap/envelope/",
                "soap$Body": { "GetOrders": { "Customer": "1234567" } }
            }
        })
    );
    assert_eq!(
        friendly(xml),
        json!({ "Envelope": { "Body": { "GetOrders": { "Customer": "1234567" } } } })
    );
}

#[test]
fn repeated_elements_are_arrays_and_always_array_makes_every_child_one() {
    let xml = r#"<orders count="2"><order id="1">pen</order><order id="2"/><total>3.5</total><empty/></orders>"#;
    assert_eq!(
        direct(xml),
        json!({ "orders": {
            "@count": "2",
            "order": [ {"@id": "1", "#text": "pen"}, {"@id": "2"} ],
            "total": "3.5",
            "empty": null
        }})
    );
    let s = xml_to_json(
        b"<list><item>one</item></list>",
        &ToJson {
            kind: Kind::Direct,
            always_array: true,
        },
    )
    .unwrap();
    assert_eq!(s, r#"{"list":{"item":["one"]}}"#);
    let s = xml_to_json(
        b"<list><item>one</item></list>",
        &ToJson {
            kind: Kind::Direct,
            always_array: false,
        },
    )
    .unwrap();
    assert_eq!(s, r#"{"list":{"item":"one"}}"#);
}

#[test]
fn text_entities_cdata_and_non_ascii_survive() {
    assert_eq!(
        direct("<p>caf&#233; &amp; <![CDATA[<b>bold</b>]]> \u{1F600} 東京</p>"),
        json!({ "p": "café & <b>bold</b> \u{1F600} 東京" })
    );
    assert_eq!(
        direct("<p>one<br/>two</p>"),
        json!({ "p": { "#text": ["one", "two"], "br": null } })
    );
}

#[test]
fn attribute_values_are_normalised_as_xml_says() {
    assert_eq!(
        direct("<a v=\"one\ntwo&#10;three\"/>"),
        json!({ "a": { "@v": "one two\nthree" } })
    );
}

#[test]
fn malformed_xml_is_an_error_naming_the_place() {
    for bad in [
        "<a><b></a>",
        "<a>",
        "<a/><b/>",
        "text",
        "",
        "<a>&unknown;</a>",
        "<a x='1' x='2'/>",
    ] {
        let err = xml_to_json(
            bad.as_bytes(),
            &ToJson {
                kind: Kind::Direct,
                always_array: false,
            },
        )
        .unwrap_err();
        assert!(matches!(err, ConvertError::Xml(_)), "{bad}: {err}");
    }
    let err = xml_to_json(
        b"<a>\n  <b></c>\n</a>",
        &ToJson {
            kind: Kind::Direct,
            always_array: false,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn round_trip_keeps_the_data() {
    let json = r#"{"invoice": {"@id": "9", "line": [{"sku": "a", "qty": "1"}, {"sku": "b", "qty": "2"}], "note": "ünïcödé"}}"#;
    let xml = to_xml(json);
    assert_eq!(direct(&xml), serde_json::from_str::<Value>(json).unwrap());
}

fn compile_error(policy: &str) -> String {
    use crate::policy::compile::{compile_document, CompileEnv};
    use crate::policy::program::Level;
    let doc = format!(
        "<policies>\n<inbound>\n<base />\n</inbound>\n<outbound>\n{policy}\n</outbound>\n</policies>"
    );
    compile_document(&doc, Level::Api, &CompileEnv::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_settings_are_compile_errors_naming_the_element_line_and_reason() {
    assert_eq!(
        compile_error(r#"<json-to-xml apply="sometimes" />"#),
        "line 6, column 1: <json-to-xml>: attribute 'apply' must be always or content-type-json, not 'sometimes'"
    );
    assert_eq!(
        compile_error(r#"<json-to-xml consider-accept-header="false" />"#),
        "line 6, column 1: <json-to-xml>: attribute 'apply' is required"
    );
    assert_eq!(
        compile_error(r#"<json-to-xml apply="always" parse-date="@(true)" />"#),
        "line 6, column 1: <json-to-xml>: attribute 'parse-date' must be true or false, not '@(true)'"
    );
    assert_eq!(
        compile_error(r#"<json-to-xml apply="always" namespace-separator="::" />"#),
        "line 6, column 1: <json-to-xml>: attribute 'namespace-separator' must be one character, not '::'"
    );
    assert_eq!(
        compile_error(r#"<xml-to-json kind="pretty" apply="always" />"#),
        "line 6, column 1: <xml-to-json>: attribute 'kind' must be javascript-friendly or direct, not 'pretty'"
    );
    assert_eq!(
        compile_error(r#"<xml-to-json kind="direct" apply="always" always-array="true" />"#),
        "line 6, column 1: <xml-to-json>: unknown attribute 'always-array'"
    );
    assert_eq!(
        compile_error(r#"<xml-to-json kind="direct" apply="always"><frob /></xml-to-json>"#),
        "line 6, column 43: <frob>: unexpected element <frob> inside <xml-to-json>"
    );
    let in_backend = crate::policy::compile::compile_document(
        "<policies><backend><xml-to-json kind=\"direct\" apply=\"always\" /></backend></policies>",
        crate::policy::program::Level::Api,
        &crate::policy::compile::CompileEnv::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        in_backend.contains("is not allowed in <backend>"),
        "{in_backend}"
    );
}
