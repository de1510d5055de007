//! LINQ to XML: `XDocument`, `XElement`, `XAttribute`, `XName`, `XNamespace`.

use super::*;

const ORDER: &str = r#"<?xml version="1.0"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body>
    <o:Order xmlns:o="urn:orders" id="SO-1" priority="2">
      <o:Line sku="A1">2</o:Line>
      <o:Line sku="B2">5</o:Line>
      <o:Note>rush &amp; gift</o:Note>
    </o:Order>
  </soap:Body>
</soap:Envelope>"#;

fn xml_ctx() -> Context {
    let mut c = ctx();
    c.request.body = Some(Bytes::from_static(ORDER.as_bytes()));
    c.variables.insert("xml".into(), Value::from(ORDER));
    c
}

fn xv(src: &str) -> Value {
    let e = Expr::compile(src).unwrap_or_else(|e| panic!("compile {src}: {e}"));
    e.eval(&xml_ctx())
        .unwrap_or_else(|e| panic!("eval {src}: {e}"))
}

fn xs(src: &str) -> String {
    xv(src).to_display_string()
}

fn xerr(src: &str) -> String {
    let e = Expr::compile(src).unwrap_or_else(|e| panic!("compile {src}: {e}"));
    match e.eval(&xml_ctx()) {
        Ok(v) => panic!("{src} evaluated to {v:?}"),
        Err(e) => e.message,
    }
}

#[test]
fn parse_root_name_and_value() {
    assert_eq!(
        xs(r#"@(XElement.Parse("<a><b>x</b><c>y</c></a>").Value)"#),
        "xy"
    );
    assert_eq!(
        xs(r#"@(XDocument.Parse("<a><b>x</b></a>").Root.Element("b").Value)"#),
        "x"
    );
    assert_eq!(
        xs(r#"@(XDocument.Parse((string)context.Variables["xml"]).Root.Name.LocalName)"#),
        "Envelope"
    );
    assert_eq!(
        xs(r#"@(XDocument.Parse((string)context.Variables["xml"]).Root.Name.NamespaceName)"#),
        "http://schemas.xmlsoap.org/soap/envelope/"
    );
    assert_eq!(
        xs(r#"@(XDocument.Parse((string)context.Variables["xml"]).Root.Name.ToString())"#),
        "{http://schemas.xmlsoap.org/soap/envelope/}Envelope"
    );
    assert_eq!(xs(r#"@(XElement.Parse("<a/>").Name == "a")"#), "True");
    assert_eq!(
        xs(r#"@(XElement.Parse("<a><b/></a>").HasElements)"#),
        "True"
    );
    assert_eq!(xs(r#"@(XElement.Parse("<a/>").IsEmpty)"#), "True");
}

#[test]
fn elements_descendants_and_linq() {
    let body = r#"@{
        var doc = context.Request.Body.As<XDocument>(preserveContent: true);
        XNamespace o = "urn:orders";
        var order = doc.Descendants(o + "Order").First();
        var skus = order.Elements(o + "Line").Select(l => l.Attribute("sku").Value);
        return string.Join(",", skus) + "|" + order.Elements().Count() + "|" + (string)order.Element(o + "Note");
    }"#;
    assert_eq!(xs(body), "A1,B2|3|rush & gift");
    assert_eq!(
        xs(
            r#"@(XDocument.Parse((string)context.Variables["xml"]).Descendants().Where(e => e.Name.LocalName == "Line").Sum(e => (int)e))"#
        ),
        "7"
    );
    assert_eq!(
        xs(
            r#"@(XDocument.Parse((string)context.Variables["xml"]).Descendants("{urn:orders}Line").Count())"#
        ),
        "2"
    );
    // Without the namespace the name does not match.
    assert_eq!(
        xs(
            r#"@(XDocument.Parse((string)context.Variables["xml"]).Descendants("Line").FirstOrDefault() == null)"#
        ),
        "True"
    );
    assert_eq!(
        xs(r#"@(XElement.Parse("<a><b/></a>").Element("c") == null)"#),
        "True"
    );
    assert_eq!(
        xs(
            r#"@(XElement.Parse("<a><b><c/></b></a>").Descendants("c").First().Ancestors().Count())"#
        ),
        "2"
    );
    assert_eq!(
        xs(r#"@(XElement.Parse("<a><b/></a>").Element("b").Parent.Name.LocalName)"#),
        "a"
    );
}

#[test]
fn attributes() {
    assert_eq!(
        xs(r#"@(XElement.Parse("<a x='1' y='2'/>").Attribute("y").Value)"#),
        "2"
    );
    assert_eq!(
        xs(r#"@(XElement.Parse("<a x='1' y='2'/>").Attributes().Count())"#),
        "2"
    );
    assert_eq!(
        xs(r#"@(XElement.Parse("<a x='1'/>").Attribute("z") == null)"#),
        "True"
    );
    assert_eq!(
        xs(r#"@(XElement.Parse("<a x='1 &amp; 2'/>").Attribute("x").ToString())"#),
        "x=\"1 &amp; 2\""
    );
    assert_eq!(
        xs(r#"@((int)XElement.Parse("<a n=' 42'/>").Attribute("n") + 1)"#),
        "43"
    );
    assert_eq!(xs(r#"@((bool)XElement.Parse("<a>true</a>"))"#), "True");
}

#[test]
fn to_string_is_dotnets() {
    assert_eq!(
        xs(r#"@(XDocument.Parse("<?xml version='1.0'?><a><b>x</b></a>").ToString())"#),
        "<a>\r\n  <b>x</b>\r\n</a>"
    );
    assert_eq!(
        xs(r#"@(XElement.Parse("<a>t<b/></a>").ToString())"#),
        "<a>t<b /></a>"
    );
    assert_eq!(xs(r#"@(XName.Get("a", "urn:x").ToString())"#), "{urn:x}a");
    assert_eq!(xs(r#"@(XNamespace.Get("urn:x") + "a")"#), "{urn:x}a");
}

#[test]
fn casts_and_type_tests() {
    assert_eq!(xs(r#"@(XElement.Parse("<a/>") is XElement)"#), "True");
    assert_eq!(
        xs(r#"@(XDocument.Parse("<a/>").Root as XDocument == null)"#),
        "True"
    );
    assert_eq!(
        xs(r#"@{ XElement e = XElement.Parse("<a>v</a>"); return (string)e; }"#),
        "v"
    );
}

#[test]
fn malformed_xml_is_a_runtime_error() {
    let m = xerr(r#"@(XDocument.Parse("<a><b></a>").Root.Value)"#);
    assert!(m.starts_with("System.Xml.XmlException: "), "{m}");
    let m = xerr(r#"@(XElement.Parse("not xml").Value)"#);
    assert!(m.starts_with("System.Xml.XmlException: "), "{m}");
    // The JSON request body of the shared context is not XML.
    let e = Expr::compile("@(context.Request.Body.As<XDocument>().Root.Name.LocalName)").unwrap();
    let m = e.eval(&ctx()).unwrap_err().message;
    assert!(m.contains("XmlException"), "{m}");
    let m = xerr(r#"@(XElement.Parse("<a/>").Element("").Value)"#);
    assert!(m.contains("XName"), "{m}");
}

#[test]
fn unsupported_members_are_compile_errors() {
    assert_eq!(
        compile_err(r#"@(XElement.Parse("<a/>").Nodes())"#),
        "unsupported method 'Nodes' on XElement"
    );
    assert_eq!(
        compile_err(r#"@(XDocument.Parse("<a/>").Declaration)"#),
        "unsupported member 'Declaration' on XElement"
    );
}
