//! libxslt through the binding: APIM's documented example, parameters,
//! compile errors with their line, and every way out of the process refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const XSL: &str = r#"xmlns:xsl="http://www.w3.org/1999/XSL/Transform""#;

fn sheet(body: &str) -> String {
    format!("<xsl:stylesheet version=\"1.0\" {XSL}>{body}</xsl:stylesheet>")
}

fn run(body: &str, input: &str, params: &[(&str, &str)]) -> String {
    let s = Stylesheet::compile(&sheet(body)).unwrap();
    String::from_utf8(s.transform(input.as_bytes(), params).unwrap()).unwrap()
}

#[test]
fn apim_example_copies_and_adds_a_parameter_as_attribute() {
    let out = run(
        r#"<xsl:output method="xml" omit-xml-declaration="yes" />
        <xsl:param name="User-Agent" />
        <xsl:template match="* | @* | node()">
            <xsl:copy>
                <xsl:if test="self::* and not(parent::*)">
                    <xsl:attribute name="User-Agent"><xsl:value-of select="$User-Agent" /></xsl:attribute>
                </xsl:if>
                <xsl:apply-templates select="* | @* | node()" />
            </xsl:copy>
        </xsl:template>"#,
        r#"<catalog a="1"><cd><title>Empire</title></cd></catalog>"#,
        &[("User-Agent", "curl/8 \"quoted\" 'single'")],
    );
    assert_eq!(
        out.trim(),
        r#"<catalog User-Agent="curl/8 &quot;quoted&quot; 'single'" a="1"><cd><title>Empire</title></cd></catalog>"#
    );
}

#[test]
fn namespaces_stripped_sorted_and_numbers_formatted() {
    let out = run(
        r#"<xsl:output method="xml" omit-xml-declaration="yes" />
        <xsl:template match="*"><xsl:element name="{local-name()}"><xsl:apply-templates select="@* | node()"/></xsl:element></xsl:template>
        <xsl:template match="@*"><xsl:attribute name="{local-name()}"><xsl:value-of select="."/></xsl:attribute></xsl:template>"#,
        r#"<s:Envelope xmlns:s="urn:s"><s:Body><m:r xmlns:m="urn:m" m:x="1">Grüße</m:r></s:Body></s:Envelope>"#,
        &[],
    );
    assert_eq!(
        out.trim(),
        r#"<Envelope><Body><r x="1">Grüße</r></Body></Envelope>"#
    );
    let out = run(
        r#"<xsl:output method="text" />
        <xsl:template match="/orders"><xsl:for-each select="order"><xsl:sort select="@amount" data-type="number" order="descending"/><xsl:value-of select="concat(@id, '=', format-number(@amount, '0.00'), ';')"/></xsl:for-each></xsl:template>"#,
        r#"<orders><order id="a" amount="5"/><order id="b" amount="20"/><order id="c" amount="7.5"/></orders>"#,
        &[],
    );
    assert_eq!(out, "b=20.00;c=7.50;a=5.00;");
}

#[test]
fn a_stylesheet_that_does_not_compile_names_its_line_and_reason() {
    let err = Stylesheet::compile(&format!(
        "<xsl:stylesheet version=\"1.0\" {XSL}>\n<xsl:template match=\"/\">\n<xsl:value-of select=\"1 +\" />\n</xsl:template>\n</xsl:stylesheet>"
    ))
    .unwrap_err();
    assert_eq!(err.line, Some(3), "{err:?}");
    assert!(
        err.message
            .contains("could not compile select expression '1 +'"),
        "{err:?}"
    );
    let err = Stylesheet::compile(&sheet(r#"<xsl:template match="///"/>"#)).unwrap_err();
    assert!(err.message.contains("///"), "{err:?}");
    let err = Stylesheet::compile(&format!(
        "<xsl:stylesheet version=\"1.0\" {XSL}>\n<unclosed>\n</xsl:stylesheet>"
    ))
    .unwrap_err();
    assert_eq!(err.line, Some(3), "{err:?}");
    assert!(
        err.message.starts_with("stylesheet.xsl:3: parser error : Opening and ending tag mismatch: unclosed line 2 and xsl:stylesheet;"),
        "{err:?}"
    );
}

#[test]
fn include_import_document_and_entities_are_refused() {
    for body in [
        r#"<xsl:include href="http://127.0.0.1:9/x.xsl"/>"#,
        r#"<xsl:import href="/etc/hostname"/>"#,
    ] {
        let err = Stylesheet::compile(&sheet(body)).unwrap_err();
        assert!(err.message.contains("refused"), "{body}: {err:?}");
    }
    // document() loads nothing: the transformation fails saying so.
    let s = Stylesheet::compile(&sheet(
        r#"<xsl:output method="text"/><xsl:template match="/">[<xsl:value-of select="document('/etc/hostname')"/>]</xsl:template>"#,
    ))
    .unwrap();
    let err = s.transform(b"<a/>", &[]).unwrap_err();
    assert!(err.message.contains("refused"), "{err:?}");
    // An external entity in the body is not read.
    let input = r#"<!DOCTYPE a [<!ENTITY e SYSTEM "/etc/hostname">]><a>&e;</a>"#;
    let s = Stylesheet::compile(&sheet(
        r#"<xsl:output method="text"/><xsl:template match="/">[<xsl:value-of select="a"/>]</xsl:template>"#,
    ))
    .unwrap();
    let out = s
        .transform(input.as_bytes(), &[])
        .map(|b| String::from_utf8(b).unwrap());
    assert!(matches!(out.as_deref(), Ok("[]") | Err(_)), "{out:?}");
    // xsl:document (writing a file) is forbidden.
    let s = Stylesheet::compile(&sheet(
        r#"<xsl:template match="/"><xsl:document href="/tmp/portcullis-xslt-must-not-exist"><x/></xsl:document></xsl:template>"#,
    ));
    if let Ok(s) = s {
        assert!(s.transform(b"<a/>", &[]).is_err());
    }
    assert!(!std::path::Path::new("/tmp/portcullis-xslt-must-not-exist").exists());
}

#[test]
fn output_is_utf8_unless_the_stylesheet_names_another_encoding() {
    let body = r#"<xsl:output method="xml" omit-xml-declaration="yes"/><xsl:param name="p"/><xsl:template match="/"><r p="{$p}"><xsl:value-of select="."/></r></xsl:template>"#;
    assert_eq!(
        run(body, "<a>東京</a>", &[("p", "Zoë")]).trim_end(),
        r#"<r p="Zoë">東京</r>"#
    );
    let latin = r#"<xsl:output method="xml" encoding="ISO-8859-1"/><xsl:template match="/"><r><xsl:value-of select="."/></r></xsl:template>"#;
    let s = Stylesheet::compile(&sheet(latin)).unwrap();
    let out = s.transform("<a>é</a>".as_bytes(), &[]).unwrap();
    assert!(out.ends_with(b"<r>\xE9</r>\n"), "{out:?}");
}

#[test]
fn a_body_that_is_not_xml_fails_with_its_line() {
    let s = Stylesheet::compile(&sheet(r#"<xsl:template match="/"><x/></xsl:template>"#)).unwrap();
    let err = s.transform(b"<a>\n<b></a>", &[]).unwrap_err();
    assert_eq!(err.line, Some(2), "{err:?}");
}

#[test]
fn shared_between_threads() {
    let s = std::sync::Arc::new(
        Stylesheet::compile(&sheet(
            r#"<xsl:output method="text"/><xsl:param name="p"/><xsl:template match="/"><xsl:value-of select="concat($p, count(//i))"/></xsl:template>"#,
        ))
        .unwrap(),
    );
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for n in 0..50 {
                    let input = format!("<r>{}</r>", "<i/>".repeat(n));
                    let p = format!("t{t}-");
                    let out = s.transform(input.as_bytes(), &[("p", &p)]).unwrap();
                    assert_eq!(String::from_utf8(out).unwrap(), format!("t{t}-{n}"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
