//! `json-to-xml`, `xml-to-json` and `xsl-transform` over real sockets on both
//! runtimes: a chunked JSON upload reaches the backend as XML with a
//! Content-Length, a chunked XML answer reaches the client as JSON with a
//! Content-Length, on one keep-alive connection; an XSLT stylesheet with a
//! parameter rewrites both bodies (the conversions themselves are tested in
//! core and in `decisions_xml`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::policy_docs::*;
use common::*;
use serde_json::json;

#[runtimes]
async fn json_client_in_front_of_an_xml_backend(rt: Runtime) {
    let backend = Backend::start(|r| {
        let xml = format!(
            "<?xml version=\"1.0\"?><result><received>{}</received><item>a</item><item>b</item></result>",
            r.body.len()
        );
        let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let (head, tail) = xml.as_bytes().split_at(20);
        out.extend_from_slice(&chunked(&[head, tail]));
        Reply::Send(out)
    })
    .await;
    let policy = policies(
        r#"<json-to-xml apply="content-type-json" consider-accept-header="false" />"#,
        "",
        r#"<xml-to-json kind="javascript-friendly" apply="content-type-xml" consider-accept-header="true" />"#,
        "",
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let mut c = gw.client().await;
    for round in 0..2 {
        let mut req = b"POST /api/orders HTTP/1.1\r\nHost: gateway.test\r\nContent-Type: application/json\r\nAccept: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(&chunked(&[
            br#"{"order": {"id": "#,
            format!("{round}, ").as_bytes(),
            br#""sku": "X"}}"#,
        ]));
        let r = c.roundtrip(req).await;
        assert_eq!(r.status, 200, "{r:?}");
        let sent = format!("<order><id>{round}</id><sku>X</sku></order>");
        assert_eq!(
            r.json(),
            json!({ "result": { "received": sent.len().to_string(), "item": ["a", "b"] } })
        );
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(r.header("content-length"), Some(r.body.len().to_string()));
        assert!(r.header("transfer-encoding").is_none(), "{r:?}");
        let got = &backend.requests()[round];
        assert_eq!(String::from_utf8(got.body.clone()).unwrap(), sent);
        assert_eq!(got.header("content-length"), Some(sent.len().to_string()));
        assert_eq!(
            got.header("content-type").as_deref(),
            Some("application/xml")
        );
        assert!(got.header("transfer-encoding").is_none());
    }
    gw.stop().await;
}

#[runtimes]
async fn xsl_transform_on_both_bodies(rt: Runtime) {
    let backend = Backend::start(|r| {
        let body = format!(
            "<echo><got>{}</got></echo>",
            String::from_utf8_lossy(&r.body).replace('<', "&lt;")
        );
        let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        out.extend_from_slice(&chunked(&[body.as_bytes()]));
        Reply::Send(out)
    })
    .await;
    let policy = policies(
        r#"<xsl-transform>
             <parameter parameter-name="who">@(context.Request.Headers.GetValueOrDefault("X-Who", "nobody"))</parameter>
             <xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
               <xsl:output method="xml" omit-xml-declaration="yes" />
               <xsl:param name="who" />
               <xsl:template match="/*"><req from="{$who}" n="{count(*)}" /></xsl:template>
             </xsl:stylesheet>
           </xsl-transform>"#,
        "",
        r#"<xsl-transform>
             <xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
               <xsl:output method="text" />
               <xsl:template match="/">got: <xsl:value-of select="echo/got" /></xsl:template>
             </xsl:stylesheet>
           </xsl-transform>"#,
        "",
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let mut c = gw.client().await;
    let req = request(
        "POST",
        "/api/x",
        &[("X-Who", "Zoë"), ("Content-Type", "application/xml")],
        "<list><i/><i/><i/></list>".as_bytes(),
    );
    let r = c.roundtrip(req).await;
    assert_eq!(r.status, 200, "{r:?}");
    let sent = r#"<req from="Zoë" n="3"/>"#;
    assert_eq!(r.body_str(), format!("got: {sent}\n"));
    assert_eq!(r.header("content-length"), Some(r.body.len().to_string()));
    let got = &backend.requests()[0];
    assert_eq!(
        String::from_utf8(got.body.clone()).unwrap().trim_end(),
        sent
    );
    assert_eq!(
        got.header("content-length"),
        Some(got.body.len().to_string())
    );
    gw.stop().await;
}
