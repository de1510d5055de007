//! Policy XML to an element tree that remembers where every element starts.
//!
//! APIM accepts expressions that are not well-formed XML: `@(...)` attribute
//! values with unescaped `"` and `<`, and `@{ ... }` blocks with `<` and `&&` in
//! element text. Like APIM, we escape such expressions before the XML parser
//! sees them, keeping line numbers and mapping columns back to the original.

use std::fmt;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// A position in the original document, 1-based.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub column: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// An attribute with its unescaped value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Attribute name.
    pub name: String,
    /// Unescaped value.
    pub value: String,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A nested element.
    Element(Element),
    /// Text or CDATA, unescaped (whitespace kept).
    Text(String),
}

/// An element with its attributes, children and start position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Element name as written.
    pub name: String,
    /// Attributes in document order.
    pub attrs: Vec<Attr>,
    /// Child elements and text.
    pub children: Vec<Node>,
    /// Where the element's `<` is.
    pub pos: Pos,
    /// Whether a policy's compile looked at this element (see [`Element::unread`]).
    pub read: Read,
}

/// Whether compiling looked at an element: set by [`Element::elements`],
/// [`Element::child`] and [`Element::children_named`]. Never part of equality.
#[derive(Debug, Clone, Default)]
pub struct Read(std::cell::Cell<bool>);

impl PartialEq for Read {
    fn eq(&self, _: &Read) -> bool {
        true
    }
}

impl Eq for Read {}

impl Element {
    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }

    /// Child elements, in order (each is marked read as it is yielded).
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.unmarked().inspect(|e| e.read.0.set(true))
    }

    /// Child elements, not marking them read.
    fn unmarked(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// Child elements named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.unmarked()
            .filter(move |e| e.name == name)
            .inspect(|e| e.read.0.set(true))
    }

    /// The first child element named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        let found = self.unmarked().find(|e| e.name == name)?;
        found.read.0.set(true);
        Some(found)
    }

    /// Marks this element and everything inside it read: for a policy that takes
    /// its content as data (an XML document, say) rather than as elements it knows.
    pub fn mark_all_read(&self) {
        self.read.0.set(true);
        for e in self.unmarked() {
            e.mark_all_read();
        }
    }

    /// The first element inside this one (depth first) that compiling never looked
    /// at, with its parent: a child the policy does not know, which APIM refuses and
    /// which must not be silently ignored. Namespaced content (`xsl:...`, `xmlns`)
    /// is data, not policy elements, and is not checked.
    pub fn unread(&self) -> Option<(&Element, &Element)> {
        for e in self.unmarked() {
            if e.name.contains(':') || e.attrs.iter().any(|a| a.name == "xmlns") {
                continue;
            }
            if !e.read.0.get() {
                return Some((e, self));
            }
            if let Some(found) = e.unread() {
                return Some(found);
            }
        }
        None
    }

    /// All text directly inside the element, concatenated.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                out.push_str(t);
            }
        }
        out
    }
}

/// Why a document is not parseable XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct XmlError {
    /// Where.
    pub pos: Pos,
    /// The element the problem is in, when known.
    pub element: Option<String>,
    /// What.
    pub message: String,
}

/// Parses a policy document (or fragment) into its root element.
pub fn parse(src: &str) -> Result<Element, XmlError> {
    let pre = escape_expressions(src);
    let text = pre.text.as_str();
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let at = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = reader.read_event().map_err(|e| {
            let err_at = usize::try_from(reader.error_position()).unwrap_or(at);
            XmlError {
                element: None,
                pos: pre.pos(src, err_at),
                message: format!("malformed XML: {e}"),
            }
        })?;
        let here = || pre.pos(src, at);
        match event {
            Event::Start(start) => {
                let el = element(&start, here())?;
                stack.push(el);
            }
            Event::Empty(start) => {
                let el = element(&start, here())?;
                attach(&mut stack, &mut root, el, here())?;
            }
            Event::End(_) => {
                // quick-xml checks that end names match their start.
                let Some(el) = stack.pop() else {
                    return Err(XmlError {
                        element: None,
                        pos: here(),
                        message: "closing tag without an opening tag".into(),
                    });
                };
                attach(&mut stack, &mut root, el, here())?;
            }
            Event::Text(t) => {
                let raw = t.xml10_content();
                let value = quick_xml::escape::unescape(&raw).map_err(|e| XmlError {
                    element: None,
                    pos: here(),
                    message: format!("bad escape in text: {e}"),
                })?;
                push_text(&mut stack, &value, here())?;
            }
            Event::GeneralRef(r) => {
                let name = (*r).to_string();
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(s) => s.to_string(),
                        None => {
                            return Err(XmlError {
                                element: None,
                                pos: here(),
                                message: format!("unknown entity '&{name};'"),
                            })
                        }
                    },
                    Err(e) => {
                        return Err(XmlError {
                            element: None,
                            pos: here(),
                            message: format!("bad character reference '&{name};': {e}"),
                        })
                    }
                };
                push_text(&mut stack, &resolved, here())?;
            }
            Event::CData(c) => {
                let value = c.xml10_content().into_owned();
                push_text(&mut stack, &value, here())?;
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(XmlError {
            element: Some(open.name.clone()),
            pos: open.pos,
            message: format!("<{}> is never closed", open.name),
        });
    }
    root.ok_or_else(|| XmlError {
        element: None,
        pos: Pos { line: 1, column: 1 },
        message: "the document has no element".into(),
    })
}

fn element(start: &BytesStart<'_>, pos: Pos) -> Result<Element, XmlError> {
    let name = start.name().as_ref().to_string();
    let mut attrs = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(|e| XmlError {
            element: Some(name.clone()),
            pos,
            message: format!("bad attribute: {}", without_offset(&e.to_string())),
        })?;
        let key = a.key.as_ref().to_string();
        // Unescaped but not normalised: APIM keeps the line breaks of
        // multi-line expressions in attributes, whose `//` comments need them.
        let raw: &str = &a.value;
        let value = quick_xml::escape::unescape(raw).map_err(|e| XmlError {
            element: Some(name.clone()),
            pos,
            message: format!("bad value of attribute '{key}': {e}"),
        })?;
        if attrs.iter().any(|x: &Attr| x.name == key) {
            return Err(XmlError {
                element: Some(name.clone()),
                pos,
                message: format!("attribute '{key}' appears twice"),
            });
        }
        attrs.push(Attr {
            name: key,
            value: value.into_owned(),
        });
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
        pos,
        read: Read::default(),
    })
}

fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    el: Element,
    pos: Pos,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(el)),
        None if root.is_none() => *root = Some(el),
        None => {
            return Err(XmlError {
                element: None,
                pos,
                message: "more than one root element".into(),
            })
        }
    }
    Ok(())
}

fn push_text(stack: &mut [Element], text: &str, pos: Pos) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(prev)) = parent.children.last_mut() {
                prev.push_str(text);
            } else {
                parent.children.push(Node::Text(text.to_string()));
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(XmlError {
            element: None,
            pos,
            message: "text outside the root element".into(),
        }),
    }
}

/// The document with its expressions escaped, and where it grew.
struct Escaped {
    text: String,
    /// `(offset in text, bytes added so far)` after each insertion, ascending.
    shifts: Vec<(usize, usize)>,
    /// Byte offset where each line of the original starts (the first is 0).
    line_starts: Vec<usize>,
}

impl Escaped {
    /// The original position of byte `at` of the escaped text.
    fn pos(&self, original: &str, at: usize) -> Pos {
        // Both lookups are binary searches: a document has many elements.
        let k = self.shifts.partition_point(|(o, _)| *o <= at);
        let added = if k == 0 { 0 } else { self.shifts[k - 1].1 };
        let at = at.saturating_sub(added).min(original.len());
        let line = self.line_starts.partition_point(|&start| start <= at);
        let line_start = self.line_starts[line.saturating_sub(1)];
        let column = String::from_utf8_lossy(&original.as_bytes()[line_start..at])
            .chars()
            .count()
            + 1;
        Pos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}

/// Escapes `"`, `<`, `>` and bare `&` inside `@(...)` and `@{...}` expressions
/// that start an attribute value or element text, so the XML parser accepts them.
fn escape_expressions(src: &str) -> Escaped {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len() + 64);
    let mut shifts = Vec::new();
    let mut added = 0usize;
    let mut i = 0;
    let mut copied = 0;
    let mut in_tag = false;
    while i < b.len() {
        let c = b[i];
        // Comments and CDATA are copied untouched.
        // Byte-wise: `i` may be inside a multi-byte character here.
        if !in_tag && b[i..].starts_with(b"<!--") {
            i = find_bytes(&b[i..], b"-->").map_or(b.len(), |p| i + p + 3);
            continue;
        }
        if !in_tag && b[i..].starts_with(b"<![CDATA[") {
            i = find_bytes(&b[i..], b"]]>").map_or(b.len(), |p| i + p + 3);
            continue;
        }
        if c == b'<' {
            in_tag = true;
            i += 1;
            continue;
        }
        if c == b'>' && in_tag {
            in_tag = false;
            i += 1;
            continue;
        }
        let starts_expr = c == b'@' && matches!(b.get(i + 1), Some(b'(') | Some(b'{'));
        if !starts_expr {
            i += 1;
            continue;
        }
        let in_attr_value = in_tag && i > 0 && matches!(b[i - 1], b'"' | b'\'');
        // In text, an expression is the whole (trimmed) content. `i` is at an
        // ASCII `@`, so slicing there is on a character boundary.
        let in_text = !in_tag && {
            let before = src[..i].trim_end_matches(|ch: char| ch.is_whitespace());
            before.ends_with('>')
        };
        if in_attr_value || in_text {
            // The expression lexer knows C# strings, comments and
            // interpolations; the bracket counter is the fallback for text it
            // cannot tokenise.
            let extent = crate::expr::expression_extent(&src[i..])
                .map(|n| i + n)
                .or_else(|| expression_end(b, i + 1));
            let Some(end) = extent else {
                i += 1;
                continue;
            };
            out.push_str(&src[copied..i]);
            for (k, ch) in src[i..end].char_indices() {
                let rep = match ch {
                    '"' if in_attr_value => Some("&quot;"),
                    '<' => Some("&lt;"),
                    '>' => Some("&gt;"),
                    '&' if !is_entity(&src[i + k..end]) => Some("&amp;"),
                    _ => None,
                };
                match rep {
                    Some(r) => {
                        out.push_str(r);
                        added += r.len() - 1;
                        shifts.push((out.len(), added));
                    }
                    None => out.push(ch),
                }
            }
            copied = end;
            i = end;
            continue;
        }
        i += 1;
    }
    out.push_str(&src[copied..]);
    let line_starts = std::iter::once(0)
        .chain(
            b.iter()
                .enumerate()
                .filter(|(_, &c)| c == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    Escaped {
        text: out,
        shifts,
        line_starts,
    }
}

/// quick-xml's message without its `position N: ` prefix, an offset into the
/// escaped text that means nothing to whoever reads the error.
fn without_offset(msg: &str) -> &str {
    match msg.strip_prefix("position ") {
        Some(rest) => rest.split_once(": ").map_or(msg, |(_, m)| m),
        None => msg,
    }
}

/// Where `needle` first occurs in `hay`.
fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether `s` starts with an XML entity or character reference.
fn is_entity(s: &str) -> bool {
    let Some(semi) = s[1..].find(';') else {
        return false;
    };
    let name = &s[1..1 + semi];
    !name.is_empty()
        && name.len() <= 8
        && (name.chars().all(|c| c.is_ascii_alphanumeric()) || name.starts_with('#'))
}

/// The end (exclusive) of the balanced `(...)`/`{...}` group opening at `open`,
/// skipping C# string and character literals.
fn expression_end(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'(' | b'{' | b'[' => depth += 1,
            b')' | b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b'"' => {
                let verbatim = i > 0 && b[i - 1] == b'@';
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\\' if !verbatim => i += 1,
                        b'"' if verbatim && b.get(i + 1) == Some(&b'"') => i += 1,
                        b'"' => break,
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'\'' => {
                // A char literal: 'x' or '\x'.
                let len = if b.get(i + 1) == Some(&b'\\') { 4 } else { 3 };
                if b.get(i + len - 1) == Some(&b'\'') {
                    i += len - 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_attributes() {
        let doc = "<policies>\n  <inbound>\n    <set-header name=\"x\" exists-action=\"override\">\n      <value>1</value>\n    </set-header>\n  </inbound>\n</policies>";
        let root = parse(doc).expect("parses");
        assert_eq!(root.name, "policies");
        let inbound = root.child("inbound").expect("inbound");
        assert_eq!(inbound.pos, Pos { line: 2, column: 3 });
        let sh = inbound.child("set-header").expect("set-header");
        assert_eq!(sh.pos, Pos { line: 3, column: 5 });
        assert_eq!(sh.attr("name"), Some("x"));
        assert_eq!(sh.child("value").map(Element::text), Some("1".into()));
    }

    #[test]
    fn unescaped_expressions_are_accepted() {
        let doc = r#"<policies><inbound>
<choose><when condition="@(context.Request.Headers.GetValueOrDefault("a","") == "b" && 1 < 2)">
<set-body>@{ var x = 1; if (x < 2 && x > 0) { return "a&amp;b"; } return "<x/>"; }</set-body>
</when></choose>
<set-variable name="v" value="@(context.Variables.GetValueOrDefault<string>("k"))" />
</inbound></policies>"#;
        let root = parse(doc).expect("parses");
        let inbound = root.child("inbound").expect("inbound");
        let when = inbound
            .child("choose")
            .and_then(|c| c.child("when"))
            .expect("when");
        assert_eq!(
            when.attr("condition"),
            Some(r#"@(context.Request.Headers.GetValueOrDefault("a","") == "b" && 1 < 2)"#)
        );
        assert_eq!(
            when.child("set-body").map(Element::text),
            Some(r#"@{ var x = 1; if (x < 2 && x > 0) { return "a&b"; } return "<x/>"; }"#.into())
        );
        let sv = inbound.child("set-variable").expect("set-variable");
        assert_eq!(
            sv.attr("value"),
            Some(r#"@(context.Variables.GetValueOrDefault<string>("k"))"#)
        );
        assert_eq!(sv.pos.line, 5);
        assert_eq!(sv.pos.column, 1);
    }

    #[test]
    fn errors_have_positions() {
        let err =
            parse("<policies>\n  <inbound>\n  </outbound>\n</policies>").expect_err("mismatch");
        assert_eq!(err.pos.line, 3, "{err}");
        let err = parse("<policies>\n <inbound>").expect_err("unclosed");
        assert!(
            err.message.contains("never closed") || err.message.contains("malformed"),
            "{err}"
        );
        assert!(parse("").is_err());
        assert!(parse("<a/><b/>").is_err());
    }

    #[test]
    fn multibyte_text_and_a_byte_order_mark() {
        let root = parse("\u{feff}<!-- é --><a x=\"ü\"><b>€ ✓</b><c>@(1 < 2)</c></a>").expect("ok");
        assert_eq!(root.attr("x"), Some("ü"));
        assert_eq!(root.child("c").map(Element::text), Some("@(1 < 2)".into()));
        let root = parse("<a>\u{e9}<![CDATA[é]]>@(\"é\" + \"<\")</a>").expect("ok");
        assert!(root.text().starts_with("éé"), "{}", root.text());
    }

    #[test]
    fn attribute_errors_name_their_element() {
        let err = parse("<policies>\n<inbound>\n<rewrite-uri template=\"a\" x y=\"1\" />\n</inbound></policies>")
            .expect_err("bad attribute");
        assert_eq!(err.element.as_deref(), Some("rewrite-uri"));
        assert_eq!(err.pos.line, 3);
        assert!(!err.message.contains("position"), "{err}");
        let err = parse("<a x=\"1\" x=\"2\"/>").expect_err("duplicate");
        assert_eq!(err.element.as_deref(), Some("a"));
    }

    #[test]
    fn entities_and_cdata() {
        let root =
            parse("<a x=\"&lt;&#65;\">1 &amp; 2<![CDATA[<raw>]]><!-- c --></a>").expect("ok");
        assert_eq!(root.attr("x"), Some("<A"));
        assert_eq!(root.text(), "1 & 2<raw>");
    }
}
