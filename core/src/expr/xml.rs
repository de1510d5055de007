//! LINQ to XML, read-only: a parsed document (`XDocument`/`XElement`) as an
//! arena of elements with resolved namespaces, and how .NET prints one
//! (`ToString()`: indented, two spaces, CRLF, no declaration), reads its
//! `Value` and matches an `XName`. Parsing is quick-xml's; external entities
//! and DTDs are never loaded.

use std::sync::Arc;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// The namespace `xmlns:p` declarations are in, as .NET names them.
pub const XMLNS: &str = "http://www.w3.org/2000/xmlns/";
/// The namespace of the `xml:` prefix.
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// An expanded name: namespace (empty for none) and local name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XName {
    /// `NamespaceName`.
    pub ns: Arc<str>,
    /// `LocalName`.
    pub local: Arc<str>,
}

impl XName {
    /// `{ns}local`, or `local` without a namespace (`XName.ToString()`).
    pub fn expanded(&self) -> String {
        if self.ns.is_empty() {
            self.local.to_string()
        } else {
            format!("{{{}}}{}", self.ns, self.local)
        }
    }

    /// An `XName` from its string form (`"{ns}local"` or `"local"`).
    pub fn parse(s: &str) -> Result<XName, String> {
        let (ns, local) = match s.strip_prefix('{') {
            Some(rest) => match rest.split_once('}') {
                Some((ns, local)) => (ns, local),
                None => return Err(format!("'{s}' is not a valid XName")),
            },
            None => ("", s),
        };
        if local.is_empty() || local.contains(['<', '>', ' ', '{', '}', ':']) {
            return Err(format!("'{s}' is not a valid XName (invalid local name)"));
        }
        Ok(XName {
            ns: ns.into(),
            local: local.into(),
        })
    }
}

/// An attribute as written, with its expanded name.
#[derive(Debug, Clone, PartialEq)]
pub struct XAttr {
    /// The prefix as written (`xmlns` for namespace declarations).
    pub prefix: Option<Arc<str>>,
    /// Expanded name.
    pub name: XName,
    /// Unescaped value.
    pub value: String,
}

/// What an element contains.
#[derive(Debug, Clone, PartialEq)]
pub enum XNode {
    /// A child element (index into the arena).
    Element(usize),
    /// Text or CDATA, unescaped.
    Text(String),
    /// A comment (kept for `ToString()`, not part of `Value`).
    Comment(String),
}

/// An element.
#[derive(Debug, Clone, PartialEq)]
pub struct XElem {
    /// The prefix as written.
    pub prefix: Option<Arc<str>>,
    /// Expanded name.
    pub name: XName,
    /// Attributes (namespace declarations included) in document order.
    pub attrs: Vec<XAttr>,
    /// Children in order.
    pub children: Vec<XNode>,
    /// The parent element, none for the root.
    pub parent: Option<usize>,
}

/// A parsed document: elements in document order (the root is 0).
#[derive(Debug, Clone, PartialEq)]
pub struct XDoc {
    /// The arena; an element's descendants follow it.
    pub elems: Vec<XElem>,
}

/// Documents larger than this many elements are refused (expressions run per
/// request; the body is already bounded, this bounds the arena too).
const MAX_ELEMENTS: usize = 100_000;

/// Deeper nesting is refused: reading and printing walk the tree recursively.
const MAX_DEPTH: usize = 256;

/// Parses a document (`XDocument.Parse`, `XElement.Parse`): one root element,
/// well-formed, namespaces resolved. The error reads like .NET's `XmlException`.
pub fn parse(text: &str) -> Result<XDoc, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut elems: Vec<XElem> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    // Namespace scopes: (prefix, uri), innermost last; `stack_marks` says how
    // many each open element pushed.
    let mut scopes: Vec<(Arc<str>, Arc<str>)> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    let mut done = false;
    let bad = |reader: &Reader<&[u8]>, msg: String| -> String {
        let at = usize::try_from(reader.buffer_position()).unwrap_or(0);
        let (line, col) = line_col(text, at);
        format!("{msg} Line {line}, position {col}.")
    };
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| bad(&reader, format!("The XML is not well-formed: {e}.")))?;
        match ev {
            Event::Start(s) | Event::Empty(s) if done => {
                let _ = s;
                return Err(bad(&reader, "There are multiple root elements.".into()));
            }
            Event::Start(ref s) | Event::Empty(ref s) => {
                let empty = matches!(ev, Event::Empty(_));
                let pushed = scopes.len();
                let el =
                    element(s, &mut scopes, stack.last().copied()).map_err(|m| bad(&reader, m))?;
                let idx = elems.len();
                if idx >= MAX_ELEMENTS {
                    return Err(format!("The XML has more than {MAX_ELEMENTS} elements."));
                }
                if let Some(&p) = stack.last() {
                    elems[p].children.push(XNode::Element(idx));
                }
                elems.push(el);
                if empty {
                    scopes.truncate(pushed);
                    if stack.is_empty() {
                        done = true;
                    }
                } else {
                    if stack.len() >= MAX_DEPTH {
                        return Err(format!(
                            "The XML is nested more than {MAX_DEPTH} elements deep."
                        ));
                    }
                    stack.push(idx);
                    marks.push(pushed);
                }
            }
            Event::End(_) => {
                stack.pop();
                if let Some(m) = marks.pop() {
                    scopes.truncate(m);
                }
                if stack.is_empty() {
                    done = true;
                }
            }
            Event::Text(t) => {
                let raw = t.xml10_content();
                let v = quick_xml::escape::unescape(&raw)
                    .map_err(|e| bad(&reader, format!("The XML has a bad escape: {e}.")))?;
                text_node(&mut elems, &stack, &v).map_err(|m| bad(&reader, m))?;
            }
            Event::GeneralRef(r) => {
                let name = (*r).to_string();
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(s) => s.to_string(),
                        None => {
                            return Err(bad(
                                &reader,
                                format!("Reference to undeclared entity '{name}'."),
                            ))
                        }
                    },
                };
                text_node(&mut elems, &stack, &resolved).map_err(|m| bad(&reader, m))?;
            }
            Event::CData(c) => {
                let v = c.xml10_content().into_owned();
                text_node(&mut elems, &stack, &v).map_err(|m| bad(&reader, m))?;
            }
            Event::Comment(c) => {
                if let Some(&p) = stack.last() {
                    let v = c.xml10_content().into_owned();
                    elems[p].children.push(XNode::Comment(v));
                }
            }
            Event::DocType(_) => {
                return Err(bad(
                    &reader,
                    "For security reasons DTD is prohibited in this XML document.".into(),
                ))
            }
            Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(&open) = stack.last() {
        return Err(format!(
            "Unexpected end of file has occurred. The following elements are not closed: {}.",
            qname(&elems[open].prefix, &elems[open].name.local)
        ));
    }
    if elems.is_empty() {
        return Err("Root element is missing.".into());
    }
    Ok(XDoc { elems })
}

fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..at.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

fn text_node(elems: &mut [XElem], stack: &[usize], v: &str) -> Result<(), String> {
    match stack.last() {
        Some(&p) => {
            let children = &mut elems[p].children;
            if let Some(XNode::Text(prev)) = children.last_mut() {
                prev.push_str(v);
            } else {
                children.push(XNode::Text(v.to_string()));
            }
            Ok(())
        }
        None if v.trim().is_empty() => Ok(()),
        None => Err("Data at the root level is invalid.".into()),
    }
}

fn split_qname(q: &str) -> (Option<&str>, &str) {
    match q.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, q),
    }
}

fn qname(prefix: &Option<Arc<str>>, local: &str) -> String {
    match prefix {
        Some(p) => format!("{p}:{local}"),
        None => local.to_string(),
    }
}

fn resolve(scopes: &[(Arc<str>, Arc<str>)], prefix: &str) -> Option<Arc<str>> {
    match prefix {
        "xml" => Some(XML_NS.into()),
        "xmlns" => Some(XMLNS.into()),
        _ => scopes
            .iter()
            .rev()
            .find(|(p, _)| &**p == prefix)
            .map(|(_, u)| u.clone()),
    }
}

fn element(
    s: &BytesStart<'_>,
    scopes: &mut Vec<(Arc<str>, Arc<str>)>,
    parent: Option<usize>,
) -> Result<XElem, String> {
    let raw_name = s.name().as_ref().to_string();
    let mut raw_attrs = Vec::new();
    for a in s.attributes() {
        let a = a.map_err(|e| format!("The XML has a bad attribute: {e}."))?;
        let key = a.key.as_ref().to_string();
        let raw: &str = &a.value;
        let value = quick_xml::escape::unescape(raw)
            .map_err(|e| format!("The XML has a bad escape in attribute '{key}': {e}."))?
            .into_owned();
        if raw_attrs.iter().any(|(k, _): &(String, String)| *k == key) {
            return Err(format!("'{key}' is a duplicate attribute name."));
        }
        // Declarations first: they apply to the element's own name and attributes.
        if key == "xmlns" {
            scopes.push(("".into(), value.as_str().into()));
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            scopes.push((p.into(), value.as_str().into()));
        }
        raw_attrs.push((key, value));
    }
    let (prefix, local) = split_qname(&raw_name);
    let ns = match prefix {
        Some(p) => resolve(scopes, p).ok_or_else(|| format!("'{p}' is an undeclared prefix."))?,
        None => resolve(scopes, "").unwrap_or_else(|| "".into()),
    };
    let mut attrs = Vec::with_capacity(raw_attrs.len());
    for (key, value) in raw_attrs {
        let (p, l) = split_qname(&key);
        let (prefix, name) = if key == "xmlns" {
            (
                None,
                XName {
                    ns: "".into(),
                    local: "xmlns".into(),
                },
            )
        } else {
            match p {
                Some(p) => {
                    let ns = resolve(scopes, p)
                        .ok_or_else(|| format!("'{p}' is an undeclared prefix."))?;
                    (
                        Some(Arc::from(p)),
                        XName {
                            ns,
                            local: l.into(),
                        },
                    )
                }
                // Unprefixed attributes are in no namespace.
                None => (
                    None,
                    XName {
                        ns: "".into(),
                        local: l.into(),
                    },
                ),
            }
        };
        attrs.push(XAttr {
            prefix,
            name,
            value,
        });
    }
    Ok(XElem {
        prefix: prefix.map(Arc::from),
        name: XName {
            ns,
            local: local.into(),
        },
        attrs,
        children: Vec::new(),
        parent,
    })
}

impl XDoc {
    /// `Value`: the text of the element and all its descendants, in order.
    pub fn value(&self, el: usize) -> String {
        let mut out = String::new();
        self.collect_text(el, &mut out);
        out
    }

    fn collect_text(&self, el: usize, out: &mut String) {
        for c in &self.elems[el].children {
            match c {
                XNode::Text(t) => out.push_str(t),
                XNode::Element(i) => self.collect_text(*i, out),
                XNode::Comment(_) => {}
            }
        }
    }

    /// Child elements of `el`, optionally only those named `name`.
    pub fn elements(&self, el: usize, name: Option<&XName>) -> Vec<usize> {
        self.elems[el]
            .children
            .iter()
            .filter_map(|c| match c {
                XNode::Element(i) => Some(*i),
                _ => None,
            })
            .filter(|i| name.is_none_or(|n| self.elems[*i].name == *n))
            .collect()
    }

    /// Descendant elements of `el` in document order, optionally named `name`.
    pub fn descendants(&self, el: usize, name: Option<&XName>) -> Vec<usize> {
        let mut out = Vec::new();
        self.walk(el, name, &mut out);
        out
    }

    fn walk(&self, el: usize, name: Option<&XName>, out: &mut Vec<usize>) {
        for c in &self.elems[el].children {
            if let XNode::Element(i) = c {
                if name.is_none_or(|n| self.elems[*i].name == *n) {
                    out.push(*i);
                }
                self.walk(*i, name, out);
            }
        }
    }

    /// The attribute of `el` named `name`.
    pub fn attribute(&self, el: usize, name: &XName) -> Option<usize> {
        self.elems[el].attrs.iter().position(|a| {
            a.name == *name
                || (a.prefix.as_deref() == Some("xmlns")
                    && name.ns.as_ref() == XMLNS
                    && a.name.local == name.local)
        })
    }

    /// `ToString()`: the element as .NET prints it (indented where an element
    /// has only elements inside, two spaces, CRLF).
    pub fn to_xml(&self, el: usize) -> String {
        let mut out = String::new();
        self.write(el, 0, true, &mut out);
        out
    }

    /// `pretty`: whether this element may be indented (not inside mixed content).
    fn write(&self, el: usize, depth: usize, pretty: bool, out: &mut String) {
        let e = &self.elems[el];
        let name = qname(&e.prefix, &e.name.local);
        out.push('<');
        out.push_str(&name);
        for a in &e.attrs {
            out.push(' ');
            out.push_str(&qname(&a.prefix, &a.name.local));
            out.push_str("=\"");
            escape_attr(&a.value, out);
            out.push('"');
        }
        if e.children.is_empty() {
            out.push_str(" />");
            return;
        }
        out.push('>');
        let indent = pretty && e.children.iter().all(|c| !matches!(c, XNode::Text(_)));
        for c in &e.children {
            if indent {
                out.push_str("\r\n");
                out.push_str(&"  ".repeat(depth + 1));
            }
            match c {
                XNode::Element(i) => self.write(*i, depth + 1, indent, out),
                XNode::Text(t) => escape_text(t, out),
                XNode::Comment(t) => {
                    out.push_str("<!--");
                    out.push_str(t);
                    out.push_str("-->");
                }
            }
        }
        if indent {
            out.push_str("\r\n");
            out.push_str(&"  ".repeat(depth));
        }
        out.push_str("</");
        out.push_str(&name);
        out.push('>');
    }
}

fn escape_text(t: &str, out: &mut String) {
    for c in t.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(t: &str, out: &mut String) {
    for c in t.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#xD;"),
            '\n' => out.push_str("&#xA;"),
            '\t' => out.push_str("&#x9;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOAP: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:orders">
  <soap:Body>
    <Order id="7" xml:lang="en"><Line sku="a">one</Line><Line sku="b">two &amp; more</Line></Order>
  </soap:Body>
</soap:Envelope>"#;

    fn name(ns: &str, local: &str) -> XName {
        XName {
            ns: ns.into(),
            local: local.into(),
        }
    }

    #[test]
    fn parses_with_namespaces() {
        let d = parse(SOAP).unwrap();
        assert_eq!(
            d.elems[0].name,
            name("http://schemas.xmlsoap.org/soap/envelope/", "Envelope")
        );
        let body = d.elements(
            0,
            Some(&name("http://schemas.xmlsoap.org/soap/envelope/", "Body")),
        );
        assert_eq!(body.len(), 1);
        // The default namespace applies to unprefixed elements, not attributes.
        let order = d.elements(body[0], Some(&name("urn:orders", "Order")));
        assert_eq!(order.len(), 1);
        assert_eq!(
            d.attribute(order[0], &name("", "id"))
                .map(|a| &d.elems[order[0]].attrs[a].value[..]),
            Some("7")
        );
        assert!(d.attribute(order[0], &name(XML_NS, "lang")).is_some());
        let lines = d.descendants(0, Some(&name("urn:orders", "Line")));
        assert_eq!(lines.len(), 2);
        assert_eq!(d.value(lines[1]), "two & more");
        assert_eq!(d.value(order[0]), "onetwo & more");
        assert!(d.descendants(0, Some(&name("", "Line"))).is_empty());
    }

    #[test]
    fn prints_as_dotnet_does() {
        let d = parse("<a x=\"1&amp;2\"><b>t&lt;</b><c/><d>mixed <e>in</e> text</d></a>").unwrap();
        assert_eq!(
            d.to_xml(0),
            "<a x=\"1&amp;2\">\r\n  <b>t&lt;</b>\r\n  <c />\r\n  <d>mixed <e>in</e> text</d>\r\n</a>"
        );
        assert_eq!(d.to_xml(1), "<b>t&lt;</b>");
    }

    #[test]
    fn malformed_documents_are_errors() {
        let deep = format!("{}{}", "<a>".repeat(300), "</a>".repeat(300));
        assert!(parse(&deep).unwrap_err().contains("nested"));
        for bad in [
            "",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "text",
            "<p:a/>",
            "<a x='1' x='2'/>",
            "<!DOCTYPE a [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><a>&e;</a>",
            "<a>&nope;</a>",
            &"<a>".repeat(300),
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn names_parse_and_print() {
        assert_eq!(XName::parse("{urn:x}a").unwrap(), name("urn:x", "a"));
        assert_eq!(XName::parse("a").unwrap().expanded(), "a");
        assert_eq!(name("urn:x", "a").expanded(), "{urn:x}a");
        assert!(XName::parse("{urn:x").is_err());
        assert!(XName::parse("").is_err());
    }
}

/// A LINQ to XML value in an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum XmlVal {
    /// An `XDocument`.
    Document(Arc<XDoc>),
    /// An `XElement` of a document.
    Element(Arc<XDoc>, usize),
    /// An `XAttribute`: the element and the attribute's index.
    Attribute(Arc<XDoc>, usize, usize),
    /// An `XName`.
    Name(XName),
    /// An `XNamespace` (its URI; empty for `XNamespace.None`).
    Namespace(Arc<str>),
}

impl XmlVal {
    /// `ToString()` as .NET prints each.
    pub fn to_display_string(&self) -> String {
        match self {
            XmlVal::Document(d) => d.to_xml(0),
            XmlVal::Element(d, i) => d.to_xml(*i),
            XmlVal::Attribute(d, e, a) => {
                let a = &d.elems[*e].attrs[*a];
                let mut out = qname(&a.prefix, &a.name.local);
                out.push_str("=\"");
                escape_attr(&a.value, &mut out);
                out.push('"');
                out
            }
            XmlVal::Name(n) => n.expanded(),
            XmlVal::Namespace(ns) => ns.to_string(),
        }
    }

    /// The .NET type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            XmlVal::Document(_) => "XDocument",
            XmlVal::Element(..) => "XElement",
            XmlVal::Attribute(..) => "XAttribute",
            XmlVal::Name(_) => "XName",
            XmlVal::Namespace(_) => "XNamespace",
        }
    }
}
