//! JSON to XML, the way APIM's `json-to-xml` writes it (Json.NET's conventions):
//! a property is an element, an array repeats its property's element, `@name`
//! and the attribute block are attributes, `#text` and `#cdata-section` are text,
//! properties starting with the namespace prefix declare namespaces, and names
//! that are not XML names are encoded as `_xHHHH_`.

use serde_json::{Map, Value};

use super::ConvertError;

/// The root element when the JSON is not a single object property.
pub const DOCUMENT: &str = "Document";
/// The element of each item of a top-level array.
pub const ARRAY_ITEM: &str = "Array";

/// The settings of one conversion (attribute values of the policy, evaluated).
#[derive(Debug, Clone, Copy)]
pub struct ToXml<'a> {
    /// `parse-date`: ISO 8601 date-time strings are rewritten as .NET writes a
    /// parsed date (trailing zeros of the fraction dropped).
    pub parse_date: bool,
    /// `namespace-separator`: `p<sep>local` is the qualified name `p:local`
    /// when prefix `p` is declared.
    pub separator: &'a str,
    /// `namespace-prefix`: properties starting with it declare namespaces.
    pub namespace_prefix: Option<&'a str>,
    /// `attribute-block-name`: the object whose properties are attributes.
    pub attribute_block: Option<&'a str>,
}

impl Default for ToXml<'_> {
    fn default() -> Self {
        ToXml {
            parse_date: true,
            separator: "_",
            namespace_prefix: None,
            attribute_block: None,
        }
    }
}

/// Converts a JSON body to XML (UTF-8, no declaration).
pub fn json_to_xml(body: &[u8], opts: &ToXml<'_>) -> Result<String, ConvertError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ConvertError::Json(format!("{e}")))?;
    let mut w = Writer {
        opts,
        out: String::with_capacity(body.len() + body.len() / 2),
        scopes: Vec::new(),
    };
    match &value {
        Value::Object(map) if single_root(map, opts).is_some() => {
            if let Some((name, inner)) = single_root(map, opts) {
                w.element(name, inner)?;
            }
        }
        Value::Object(map) => w.object(DOCUMENT, map)?,
        Value::Array(items) => {
            w.out.push('<');
            w.out.push_str(DOCUMENT);
            w.out.push('>');
            for item in items {
                w.element(ARRAY_ITEM, item)?;
            }
            w.out.push_str("</");
            w.out.push_str(DOCUMENT);
            w.out.push('>');
        }
        scalar => w.element(DOCUMENT, scalar)?,
    }
    Ok(w.out)
}

/// The one property of `{"name": {...}}`, which becomes the root element.
fn single_root<'v>(map: &'v Map<String, Value>, opts: &ToXml<'_>) -> Option<(&'v str, &'v Value)> {
    if map.len() != 1 {
        return None;
    }
    let (k, v) = map.iter().next()?;
    let special = k.starts_with('@')
        || k.starts_with('#')
        || Some(k.as_str()) == opts.attribute_block
        || opts.namespace_prefix.is_some_and(|p| k.starts_with(p));
    (!special && v.is_object()).then_some((k.as_str(), v))
}

struct Writer<'o, 'a> {
    opts: &'o ToXml<'a>,
    out: String,
    /// Namespace prefixes declared by each open element.
    scopes: Vec<Vec<String>>,
}

impl Writer<'_, '_> {
    /// Property `name` with value `v`: an element, or one per item of an array.
    fn element(&mut self, name: &str, v: &Value) -> Result<(), ConvertError> {
        match v {
            Value::Array(items) => {
                for item in items {
                    match item {
                        // An array in an array keeps its shape: one element
                        // holding the inner items.
                        Value::Array(_) => {
                            let tag = self.name(name);
                            self.out.push('<');
                            self.out.push_str(&tag);
                            self.out.push('>');
                            self.element(name, item)?;
                            self.out.push_str("</");
                            self.out.push_str(&tag);
                            self.out.push('>');
                        }
                        other => self.element(name, other)?,
                    }
                }
                Ok(())
            }
            Value::Object(map) => self.object(name, map),
            Value::Null => {
                let tag = self.name(name);
                self.out.push('<');
                self.out.push_str(&tag);
                self.out.push_str(" />");
                Ok(())
            }
            scalar => {
                let tag = self.name(name);
                self.out.push('<');
                self.out.push_str(&tag);
                self.out.push('>');
                let text = self.scalar_text(scalar);
                push_escaped(&mut self.out, &text, false)?;
                self.out.push_str("</");
                self.out.push_str(&tag);
                self.out.push('>');
                Ok(())
            }
        }
    }

    fn object(&mut self, name: &str, map: &Map<String, Value>) -> Result<(), ConvertError> {
        // Namespace declarations first: the element's own name may use them.
        let mut declared = Vec::new();
        let mut ns_attrs = Vec::new();
        if let Some(prefix) = self.opts.namespace_prefix.filter(|p| !p.is_empty()) {
            for (k, v) in map {
                if let Some(rest) = k.strip_prefix(prefix) {
                    let local = rest
                        .strip_prefix(self.opts.separator)
                        .or_else(|| rest.strip_prefix(':'))
                        .unwrap_or(rest);
                    let attr = if local.is_empty() {
                        "xmlns".to_string()
                    } else {
                        declared.push(local.to_string());
                        format!("xmlns:{}", encode_name(local))
                    };
                    ns_attrs.push((attr, self.scalar_text(v)));
                }
            }
        }
        self.scopes.push(declared);
        let tag = self.name(name);
        self.out.push('<');
        self.out.push_str(&tag);
        for (attr, value) in &ns_attrs {
            self.attribute_raw(attr, value)?;
        }
        let is_ns = |k: &str| {
            self.opts
                .namespace_prefix
                .is_some_and(|p| !p.is_empty() && k.starts_with(p))
        };
        let mut attrs = Vec::new();
        for (k, v) in map {
            if is_ns(k) {
                continue;
            }
            if let Some(a) = k.strip_prefix('@') {
                attrs.push((a.to_string(), v));
            } else if Some(k.as_str()) == self.opts.attribute_block {
                match v {
                    Value::Object(block) => {
                        attrs.extend(block.iter().map(|(bk, bv)| (bk.clone(), bv)));
                    }
                    other => {
                        return Err(ConvertError::Json(format!(
                            "the attribute block '{k}' must be an object, not {}",
                            kind(other)
                        )))
                    }
                }
            }
        }
        for (a, v) in attrs {
            let n = self.name(&a);
            let text = match v {
                Value::Null => String::new(),
                Value::Object(_) | Value::Array(_) => {
                    return Err(ConvertError::Json(format!(
                        "attribute '{a}' must have a string, number or boolean value, not {}",
                        kind(v)
                    )))
                }
                s => self.scalar_text(s),
            };
            self.attribute_raw(&n, &text)?;
        }
        let content: Vec<(&String, &Value)> = map
            .iter()
            .filter(|(k, _)| {
                !is_ns(k) && !k.starts_with('@') && Some(k.as_str()) != self.opts.attribute_block
            })
            .collect();
        if content.is_empty() {
            self.out.push_str(" />");
        } else {
            self.out.push('>');
            for (k, v) in content {
                match k.as_str() {
                    "#text" => {
                        let text = self.text_of(k, v)?;
                        push_escaped(&mut self.out, &text, false)?;
                    }
                    "#cdata-section" => {
                        let text = self.text_of(k, v)?;
                        push_cdata(&mut self.out, &text)?;
                    }
                    _ => self.element(k, v)?,
                }
            }
            self.out.push_str("</");
            self.out.push_str(&tag);
            self.out.push('>');
        }
        self.scopes.pop();
        Ok(())
    }

    fn attribute_raw(&mut self, name: &str, value: &str) -> Result<(), ConvertError> {
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push_str("=\"");
        push_escaped(&mut self.out, value, true)?;
        self.out.push('"');
        Ok(())
    }

    /// The text of `#text` or `#cdata-section`: a scalar, or an array of them.
    fn text_of(&self, key: &str, v: &Value) -> Result<String, ConvertError> {
        match v {
            Value::Array(items) => {
                let mut s = String::new();
                for i in items {
                    s.push_str(&self.text_of(key, i)?);
                }
                Ok(s)
            }
            Value::Object(_) => Err(ConvertError::Json(format!(
                "'{key}' must have a string, number or boolean value, not an object"
            ))),
            Value::Null => Ok(String::new()),
            s => Ok(self.scalar_text(s)),
        }
    }

    fn scalar_text(&self, v: &Value) -> String {
        match v {
            Value::String(s) if self.opts.parse_date => {
                normalize_date(s).unwrap_or_else(|| s.clone())
            }
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Null => String::new(),
            // Not reached: objects and arrays are elements.
            other => other.to_string(),
        }
    }

    /// The XML name of JSON name `name`: `p<sep>local` with a declared prefix is
    /// `p:local`; anything that is not an XML name is encoded.
    fn name(&self, name: &str) -> String {
        let sep = self.opts.separator;
        if !sep.is_empty() {
            if let Some((prefix, local)) = name.split_once(sep) {
                let declared = prefix == "xml" || self.scopes.iter().flatten().any(|p| p == prefix);
                if declared && !local.is_empty() {
                    return format!("{}:{}", encode_name(prefix), encode_name(local));
                }
            }
        }
        encode_name(name)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_numeric() || c == '-' || c == '.' || c == '\u{B7}'
}

/// .NET's `XmlConvert.EncodeLocalName`: characters that cannot be in an XML
/// name (and `:`) become `_xHHHH_`.
pub fn encode_name(name: &str) -> String {
    if name.is_empty() {
        return "_".into();
    }
    let mut out = String::with_capacity(name.len());
    for (i, c) in name.chars().enumerate() {
        let ok = if i == 0 {
            is_name_start(c)
        } else {
            is_name_char(c)
        };
        if ok {
            out.push(c);
        } else if (c as u32) > 0xFFFF {
            out.push_str(&format!("_x{:08X}_", c as u32));
        } else {
            out.push_str(&format!("_x{:04X}_", c as u32));
        }
    }
    out
}

/// A character XML 1.0 can carry.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn push_escaped(out: &mut String, s: &str, attribute: bool) -> Result<(), ConvertError> {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\r' => out.push_str("&#xD;"),
            '\n' if attribute => out.push_str("&#xA;"),
            '\t' if attribute => out.push_str("&#x9;"),
            c if !xml_char(c) => {
                return Err(ConvertError::Json(format!(
                    "character U+{:04X} cannot be written in XML",
                    c as u32
                )))
            }
            c => out.push(c),
        }
    }
    Ok(())
}

fn push_cdata(out: &mut String, s: &str) -> Result<(), ConvertError> {
    if let Some(c) = s.chars().find(|c| !xml_char(*c)) {
        return Err(ConvertError::Json(format!(
            "character U+{:04X} cannot be written in XML",
            c as u32
        )));
    }
    out.push_str("<![CDATA[");
    // `]]>` cannot be inside one section: split it across two.
    out.push_str(&s.replace("]]>", "]]]]><![CDATA[>"));
    out.push_str("]]>");
    Ok(())
}

/// An ISO 8601 date-time as .NET writes it back after parsing
/// (`yyyy-MM-ddTHH:mm:ss.FFFFFFFK`): the fraction loses trailing zeros and is
/// cut to seven digits. `None` for a string that is not such a date.
pub fn normalize_date(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 19
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !shape {
        return None;
    }
    let (month, day, hour, min, sec) = (
        num(&s[5..7]),
        num(&s[8..10]),
        num(&s[11..13]),
        num(&s[14..16]),
        num(&s[17..19]),
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    let mut rest = &s[19..];
    let mut fraction = "";
    if let Some(f) = rest.strip_prefix('.') {
        let n = f.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        fraction = &f[..n];
        rest = &f[n..];
    }
    let zone_ok = rest.is_empty()
        || rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && digits_str(&rest[1..3])
            && &rest[3..4] == ":"
            && digits_str(&rest[4..6]));
    if !zone_ok {
        return None;
    }
    let fraction = fraction[..fraction.len().min(7)].trim_end_matches('0');
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..19]);
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(fraction);
    }
    out.push_str(rest);
    Some(out)
}

fn num(s: &str) -> u32 {
    s.parse().unwrap_or(u32::MAX)
}

fn digits_str(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}
