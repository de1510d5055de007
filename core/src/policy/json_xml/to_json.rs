//! XML to JSON, the way APIM's `xml-to-json` writes it: an element is a
//! property; an element with only text is a string, an empty one `null`;
//! attributes are `@name`, text next to attributes or elements is `#text`;
//! repeated elements are an array. `direct` keeps the document as it is
//! (the declaration's `version`/`encoding`/`standalone` as properties, prefixes
//! with `:` written `$`, `xmlns` attributes); `javascript-friendly` keeps only
//! the data (local names, no declaration, no namespace declarations).

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde_json::{Map, Value};

use super::ConvertError;

/// `kind` of `xml-to-json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `direct`: the JSON reflects the XML document's structure.
    Direct,
    /// `javascript-friendly`: names usable as JavaScript identifiers.
    JavascriptFriendly,
}

/// The settings of one conversion (attribute values of the policy, evaluated).
#[derive(Debug, Clone, Copy)]
pub struct ToJson {
    /// `kind`.
    pub kind: Kind,
    /// `always-array-child-elements`: every child element is an array.
    pub always_array: bool,
}

/// Elements nested deeper than this are refused (the JSON writer recurses).
const MAX_DEPTH: usize = 512;

#[derive(Debug, Default)]
struct XElement {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<XNode>,
}

#[derive(Debug)]
enum XNode {
    Element(XElement),
    Text(String),
}

/// The XML declaration's pseudo-attributes, in order.
type Declaration = Vec<(String, String)>;

/// Converts an XML body (UTF-8) to JSON text.
pub fn xml_to_json(body: &[u8], opts: &ToJson) -> Result<String, ConvertError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ConvertError::Xml(format!("the body is not UTF-8: {e}")))?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let (decl, root) = parse(text)?;
    let mut out = Map::new();
    if opts.kind == Kind::Direct {
        for (k, v) in decl {
            out.insert(k, Value::String(v));
        }
    }
    out.insert(name_of(&root.name, opts.kind), element_value(&root, opts));
    serde_json::to_string(&Value::Object(out))
        .map_err(|e| ConvertError::Xml(format!("cannot write JSON: {e}")))
}

fn name_of(name: &str, kind: Kind) -> String {
    match kind {
        Kind::Direct => name.replace(':', "$"),
        Kind::JavascriptFriendly => name.rsplit(':').next().unwrap_or(name).to_string(),
    }
}

fn is_namespace_decl(attr: &str) -> bool {
    attr == "xmlns" || attr.starts_with("xmlns:")
}

fn element_value(el: &XElement, opts: &ToJson) -> Value {
    let attrs: Vec<&(String, String)> = el
        .attrs
        .iter()
        .filter(|(k, _)| opts.kind == Kind::Direct || !is_namespace_decl(k))
        .collect();
    // Whitespace between elements is layout, not data (as .NET's XmlDocument
    // reads it without PreserveWhitespace).
    let texts: Vec<&str> = el
        .children
        .iter()
        .filter_map(|c| match c {
            XNode::Text(t) if !t.trim().is_empty() => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let has_elements = el.children.iter().any(|c| matches!(c, XNode::Element(_)));
    if attrs.is_empty() && !has_elements {
        return match texts.as_slice() {
            [] => Value::Null,
            [one] => Value::String((*one).to_string()),
            many => Value::String(many.concat()),
        };
    }
    let mut map = Map::new();
    for (k, v) in attrs {
        map.insert(
            format!("@{}", name_of(k, opts.kind)),
            Value::String(v.clone()),
        );
    }
    match texts.as_slice() {
        [] => {}
        [one] => {
            map.insert("#text".into(), Value::String((*one).to_string()));
        }
        many => {
            map.insert(
                "#text".into(),
                Value::Array(
                    many.iter()
                        .map(|t| Value::String((*t).to_string()))
                        .collect(),
                ),
            );
        }
    }
    // Group children by name, at the place of the first one.
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    for c in &el.children {
        if let XNode::Element(child) = c {
            let key = name_of(&child.name, opts.kind);
            let v = element_value(child, opts);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, vs)) => vs.push(v),
                None => groups.push((key, vec![v])),
            }
        }
    }
    for (key, mut vs) in groups {
        let v = if vs.len() == 1 && !opts.always_array {
            vs.pop().unwrap_or(Value::Null)
        } else {
            Value::Array(vs)
        };
        // An attribute and a child of the same name in javascript-friendly
        // output: the child keeps the plain name, the attribute its `@`.
        map.insert(key, v);
    }
    Value::Object(map)
}

fn malformed(reader: &Reader<&[u8]>, text: &str, msg: impl std::fmt::Display) -> ConvertError {
    let at = usize::try_from(reader.error_position()).unwrap_or(0);
    let (line, column) = line_col(text, at);
    ConvertError::Xml(format!("line {line}, column {column}: {msg}"))
}

fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn parse(text: &str) -> Result<(Declaration, XElement), ConvertError> {
    let mut reader = Reader::from_reader(text.as_bytes());
    reader.config_mut().trim_text(false);
    reader.config_mut().check_end_names = true;
    let mut decl = Vec::new();
    let mut stack: Vec<XElement> = Vec::new();
    let mut root: Option<XElement> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| malformed(&reader, text, e))?;
        match event {
            Event::Decl(d) => {
                if let Ok(v) = d.version() {
                    decl.push(("version".into(), v.to_string()));
                }
                if let Some(Ok(v)) = d.encoding() {
                    decl.push(("encoding".into(), v.to_string()));
                }
                if let Some(Ok(v)) = d.standalone() {
                    decl.push(("standalone".into(), v.to_string()));
                }
            }
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(malformed(
                        &reader,
                        text,
                        format!("elements nested deeper than {MAX_DEPTH}"),
                    ));
                }
                if root.is_some() && stack.is_empty() {
                    return Err(malformed(&reader, text, "more than one root element"));
                }
                let el = start_element(&start).map_err(|m| malformed(&reader, text, m))?;
                stack.push(el);
            }
            Event::Empty(start) => {
                let el = start_element(&start).map_err(|m| malformed(&reader, text, m))?;
                attach(&mut stack, &mut root, el).map_err(|m| malformed(&reader, text, m))?;
            }
            Event::End(_) => {
                let Some(el) = stack.pop() else {
                    return Err(malformed(
                        &reader,
                        text,
                        "closing tag without an opening tag",
                    ));
                };
                attach(&mut stack, &mut root, el).map_err(|m| malformed(&reader, text, m))?;
            }
            Event::Text(t) => {
                let raw = t.xml10_content();
                let value =
                    quick_xml::escape::unescape(&raw).map_err(|e| malformed(&reader, text, e))?;
                push_text(&mut stack, &value).map_err(|m| malformed(&reader, text, m))?;
            }
            Event::GeneralRef(r) => {
                let name = (*r).to_string();
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&name)
                        .map(str::to_string)
                        .ok_or_else(|| {
                            malformed(&reader, text, format!("unknown entity '&{name};'"))
                        })?,
                    Err(e) => {
                        return Err(malformed(
                            &reader,
                            text,
                            format!("bad character reference '&{name};': {e}"),
                        ))
                    }
                };
                push_text(&mut stack, &resolved).map_err(|m| malformed(&reader, text, m))?;
            }
            Event::CData(c) => {
                let value = c.xml10_content().into_owned();
                push_text(&mut stack, &value).map_err(|m| malformed(&reader, text, m))?;
            }
            // Comments and processing instructions carry no data; a DTD's
            // entities are never expanded (an entity it declares is unknown).
            Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(ConvertError::Xml(format!(
            "<{}> is never closed",
            open.name
        )));
    }
    let root = root.ok_or_else(|| ConvertError::Xml("the document has no element".into()))?;
    Ok((decl, root))
}

fn start_element(start: &BytesStart<'_>) -> Result<XElement, String> {
    let name = start.name().as_ref().to_string();
    let mut attrs: Vec<(String, String)> = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(|e| format!("bad attribute in <{name}>: {e}"))?;
        let key = a.key.as_ref().to_string();
        // XML's attribute-value normalisation: a literal line break or tab is
        // a space (a character reference to one stays what it says).
        let raw: String = a
            .value
            .chars()
            .map(|c| {
                if matches!(c, '\n' | '\r' | '\t') {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        let value = quick_xml::escape::unescape(&raw)
            .map_err(|e| format!("bad value of attribute '{key}' in <{name}>: {e}"))?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(XElement {
        name,
        attrs,
        children: Vec::new(),
    })
}

fn attach(stack: &mut [XElement], root: &mut Option<XElement>, el: XElement) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(XNode::Element(el)),
        None if root.is_none() => *root = Some(el),
        None => return Err("more than one root element".into()),
    }
    Ok(())
}

fn push_text(stack: &mut [XElement], value: &str) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => {
            // Adjacent text, entity references and CDATA are one text node.
            if let Some(XNode::Text(t)) = parent.children.last_mut() {
                t.push_str(value);
            } else {
                parent.children.push(XNode::Text(value.to_string()));
            }
            Ok(())
        }
        None if value.trim().is_empty() => Ok(()),
        None => Err("text outside the root element".into()),
    }
}
