//! `xsl-transform`: an inline XSLT 1.0 stylesheet, compiled once per
//! configuration (libxslt through `portcullis-xslt`, which loads no document,
//! entity, file or URL), applied to the request or response body with
//! `<parameter>` values from expressions.

use std::sync::Arc;

use portcullis_xslt::Stylesheet;

use super::attrs;
use super::context::Context;
use super::error::{Failure, PolicyError};
use super::program::SectionKind;
use super::transform::{eval, set_body, Target};
use super::xml::{Element, Node, Pos};
use crate::expr::Template;

/// `xsl-transform`.
#[derive(Debug, Clone)]
pub struct XslTransform {
    stylesheet: Arc<Stylesheet>,
    /// `<parameter name>` → value, in document order.
    params: Vec<(String, Template)>,
    target: Target,
}

/// Whether `el` is `xsl:stylesheet` or `xsl:transform` (any prefix).
fn is_stylesheet(el: &Element) -> bool {
    let local = el.name.rsplit(':').next().unwrap_or("");
    local == "stylesheet" || local == "transform"
}

impl XslTransform {
    /// Compiles `<xsl-transform><parameter name>…</parameter><xsl:stylesheet>…`.
    pub fn compile(el: &Element, section: SectionKind) -> Result<Self, PolicyError> {
        attrs::only(el, &[])?;
        let mut params = Vec::new();
        let mut sheet = None;
        for child in el.elements() {
            if child.name == "parameter" {
                attrs::only(child, &["name", "parameter-name"])?;
                let name = child
                    .attr("parameter-name")
                    .or_else(|| child.attr("name"))
                    .ok_or_else(|| {
                        PolicyError::at(child, "attribute 'parameter-name' is required")
                    })?;
                params.push((name.to_string(), attrs::text_template(child)?));
            } else if is_stylesheet(child) {
                if sheet.is_some() {
                    return Err(PolicyError::at(child, "only one stylesheet is allowed"));
                }
                sheet = Some(child);
            } else {
                return Err(PolicyError::at(
                    child,
                    format!("unexpected element <{}> inside <xsl-transform>", child.name),
                ));
            }
        }
        let sheet =
            sheet.ok_or_else(|| PolicyError::at(el, "an inline <xsl:stylesheet> is required"))?;
        let text = serialize(sheet);
        let stylesheet = Stylesheet::compile(&text).map_err(|e| {
            let line = e.line.unwrap_or(1).max(1);
            PolicyError {
                pos: Pos {
                    line: sheet.pos.line.saturating_add(line - 1),
                    column: if line == 1 { sheet.pos.column } else { 1 },
                },
                policy: "xsl-transform".into(),
                message: format!("the stylesheet does not compile: {}", e.message),
            }
        })?;
        Ok(XslTransform {
            stylesheet: Arc::new(stylesheet),
            params,
            target: Target::of(section),
        })
    }

    /// Transforms the body (an empty body is left alone).
    pub fn run(&self, ctx: &mut Context) -> Result<(), Failure> {
        let body = match self.target {
            Target::Request => ctx.request.body.clone(),
            Target::Response => ctx.response.as_ref().and_then(|r| r.body.clone()),
        };
        let Some(body) = body.filter(|b| !b.is_empty()) else {
            return Ok(());
        };
        let mut values = Vec::with_capacity(self.params.len());
        for (name, t) in &self.params {
            values.push((name.as_str(), eval(t, ctx)?));
        }
        let params: Vec<(&str, &str)> = values.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let out = self
            .stylesheet
            .transform(&body, &params)
            .map_err(|e| Failure::new("XslTransformFailed", e.message))?;
        set_body(ctx, self.target, out);
        Ok(())
    }
}

/// The stylesheet element as XML text again (the policy parser unescaped it).
/// Line breaks in text are kept, so libxslt's line numbers map back to the
/// document's.
fn serialize(el: &Element) -> String {
    let mut out = String::new();
    write_element(el, &mut out);
    out
}

fn write_element(el: &Element, out: &mut String) {
    out.push('<');
    out.push_str(&el.name);
    for a in &el.attrs {
        out.push(' ');
        out.push_str(&a.name);
        out.push_str("=\"");
        for c in a.value.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '"' => out.push_str("&quot;"),
                '\n' => out.push_str("&#10;"),
                '\r' => out.push_str("&#13;"),
                '\t' => out.push_str("&#9;"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if el.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for child in &el.children {
        match child {
            Node::Element(e) => write_element(e, out),
            Node::Text(t) => {
                for c in t.chars() {
                    match c {
                        '&' => out.push_str("&amp;"),
                        '<' => out.push_str("&lt;"),
                        '>' => out.push_str("&gt;"),
                        '\r' => out.push_str("&#13;"),
                        c => out.push(c),
                    }
                }
            }
        }
    }
    out.push_str("</");
    out.push_str(&el.name);
    out.push('>');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use crate::policy::compile::{compile_document, CompileEnv};
    use crate::policy::program::Level;

    fn compile(outbound: &str) -> Result<(), String> {
        let doc = format!(
            "<policies>\n<inbound>\n<base />\n</inbound>\n<outbound>\n{outbound}\n</outbound>\n</policies>"
        );
        compile_document(&doc, Level::Api, &CompileEnv::default())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_stylesheet_that_does_not_compile_is_a_compile_error_at_its_line() {
        let err = compile(
            r#"<xsl-transform>
    <xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
        <xsl:template match="/">
            <xsl:value-of select="1 +" />
        </xsl:template>
    </xsl:stylesheet>
</xsl-transform>"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with("line 9, column 1: <xsl-transform>: the stylesheet does not compile: "),
            "{err}"
        );
        assert!(
            err.contains("could not compile select expression '1 +'"),
            "{err}"
        );
    }

    #[test]
    fn external_documents_are_refused_at_compile_time() {
        let err = compile(
            r#"<xsl-transform><xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"><xsl:import href="https://example.com/a.xsl"/></xsl:stylesheet></xsl-transform>"#,
        )
        .unwrap_err();
        assert!(err.contains("refused"), "{err}");
    }

    #[test]
    fn structure_errors_name_the_element() {
        assert_eq!(
            compile("<xsl-transform />").unwrap_err(),
            "line 6, column 1: <xsl-transform>: an inline <xsl:stylesheet> is required"
        );
        assert_eq!(
            compile(r#"<xsl-transform><frob/></xsl-transform>"#).unwrap_err(),
            "line 6, column 16: <frob>: unexpected element <frob> inside <xsl-transform>"
        );
        assert_eq!(
            compile(r#"<xsl-transform><parameter>x</parameter></xsl-transform>"#).unwrap_err(),
            "line 6, column 16: <parameter>: attribute 'parameter-name' is required"
        );
        let in_backend = compile_document(
            "<policies><backend><xsl-transform /></backend></policies>",
            Level::Api,
            &CompileEnv::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            in_backend.contains("is not allowed in <backend>"),
            "{in_backend}"
        );
    }

    #[test]
    fn escaped_text_and_attributes_survive_serialisation() {
        let el = crate::policy::xml::parse(
            "<xsl:stylesheet a=\"x &amp; &quot;y&quot; &lt;\"><t>1 &lt; 2 &amp; 3 &gt; 2</t><e/></xsl:stylesheet>",
        )
        .unwrap();
        assert_eq!(
            super::serialize(&el),
            "<xsl:stylesheet a=\"x &amp; &quot;y&quot; &lt;\"><t>1 &lt; 2 &amp; 3 &gt; 2</t><e/></xsl:stylesheet>"
        );
    }
}
