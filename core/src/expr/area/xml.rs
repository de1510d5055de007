//! LINQ to XML, read-only: `XDocument.Parse`, `XElement.Parse`, `Root`,
//! `Element(s)`, `Attribute(s)`, `Descendants`, `Ancestors`, `Value`, `Name`
//! (`LocalName`, `NamespaceName`, `Namespace`), `Parent`, `ToString()`,
//! `XName`/`XNamespace` (`ns + "local"`), casts to `string`, numbers and
//! `bool`, and `Body.As<XDocument>()`. The documents are `expr::xml`'s.

use std::sync::Arc;

use crate::expr::eval::{arr, fail, no_member, nre, s, R};
use crate::expr::node::{CastTy, Member, Method, StaticFn};
use crate::expr::types::{StaticSig, Ty, TypeK};
use crate::expr::value::{Obj, Value};
use crate::expr::xml::{self, XDoc, XName, XmlVal};
use crate::expr::{EvalError, ExprError};

// ---- compile time ----

/// `XDocument.Parse`, `XElement.Parse`, `XName.Get`, `XNamespace.Get`.
pub(crate) fn statics(k: TypeK, name: &str, _pos: usize) -> Result<Option<StaticSig>, ExprError> {
    use StaticFn as F;
    Ok(Some(match (k, name) {
        (TypeK::Cast(c @ (CastTy::XDocument | CastTy::XElement)), "Parse") => {
            (F::XmlParse(c), Ty::Xml, 1, 1)
        }
        (TypeK::Cast(CastTy::XName), "Get") => (F::XNameGet, Ty::Xml, 1, 2),
        (TypeK::Cast(CastTy::XNamespace), "Get") => (F::XNamespaceGet, Ty::Xml, 1, 1),
        _ => return Ok(None),
    }))
}

/// Whether `m` is a method of an XML object.
pub(crate) fn method_ok(m: Method) -> bool {
    use Method as M;
    matches!(
        m,
        M::Element | M::Elements | M::Attribute | M::Attributes | M::Descendants | M::Ancestors
    )
}

/// Whether `m` is a property of an XML object.
pub(crate) fn member_ok(m: Member) -> bool {
    use Member as M;
    matches!(
        m,
        M::Root
            | M::Value
            | M::Name
            | M::LocalName
            | M::NamespaceName
            | M::Namespace
            | M::Parent
            | M::HasElements
            | M::HasAttributes
            | M::IsEmpty
    )
}

// ---- run time ----

fn xml_err(message: String) -> EvalError {
    EvalError {
        message: format!("System.Xml.XmlException: {message}"),
    }
}

/// Parses `text` as `XDocument` or `XElement` (`Body.As<XDocument>()` too).
pub(crate) fn parse_as(text: &str, t: CastTy) -> R<Value> {
    let doc = Arc::new(xml::parse(text).map_err(xml_err)?);
    Ok(obj(match t {
        CastTy::XElement => XmlVal::Element(doc, 0),
        _ => XmlVal::Document(doc),
    }))
}

fn obj(x: XmlVal) -> Value {
    Value::Object(Arc::new(Obj::Xml(x)))
}

/// `XDocument.Parse`, `XElement.Parse`, `XName.Get`, `XNamespace.Get`.
pub(crate) fn call_static(f: StaticFn, a: &[Value]) -> R<Value> {
    let arg = |i: usize| a.get(i).unwrap_or(&Value::Null);
    match f {
        StaticFn::XmlParse(t) => match arg(0) {
            Value::Str(text) => parse_as(text, t),
            Value::Null => nre("the text to parse"),
            other => fail(format!("cannot parse a '{}' as XML", other.type_name())),
        },
        StaticFn::XNameGet => {
            let n = match (arg(0), a.get(1)) {
                (Value::Str(local), Some(Value::Str(ns))) => XName {
                    ns: ns.clone(),
                    local: XName::parse(local).map_err(xml_err)?.local,
                },
                (Value::Str(name), None) => XName::parse(name).map_err(xml_err)?,
                _ => return nre("the name"),
            };
            Ok(obj(XmlVal::Name(n)))
        }
        StaticFn::XNamespaceGet => match arg(0) {
            Value::Str(ns) => Ok(obj(XmlVal::Namespace(ns.clone()))),
            _ => nre("the namespace name"),
        },
        _ => fail("internal error: unexpected static function"),
    }
}

/// An `XName` argument: an `XName`, or a string `"{ns}local"` / `"local"`.
fn name_arg(v: &Value) -> R<XName> {
    match v {
        Value::Str(s) => XName::parse(s).map_err(xml_err),
        Value::Object(o) => match &**o {
            Obj::Xml(XmlVal::Name(n)) => Ok(n.clone()),
            _ => fail(format!("'{}' is not an XName", v.type_name())),
        },
        Value::Null => {
            fail("System.ArgumentNullException: Value cannot be null. (Parameter 'name')")
        }
        other => fail(format!("'{}' is not an XName", other.type_name())),
    }
}

/// The element a container stands for: a document's root, or the element.
fn container(x: &XmlVal) -> Option<(&Arc<XDoc>, usize, bool)> {
    match x {
        XmlVal::Document(d) => Some((d, 0, true)),
        XmlVal::Element(d, i) => Some((d, *i, false)),
        _ => None,
    }
}

fn elements_of(d: &Arc<XDoc>, ids: Vec<usize>) -> Value {
    arr(ids
        .into_iter()
        .map(|i| obj(XmlVal::Element(d.clone(), i)))
        .collect())
}

/// Methods of XML objects.
pub(crate) fn method(x: &XmlVal, v: &Value, m: Method, a: &[Value]) -> R<Value> {
    use Method as M;
    if matches!(m, M::ToString | M::Equals | M::GetHashCode | M::CompareTo) {
        return crate::expr::eval::common_method(v, m, a);
    }
    let name = match a.first() {
        Some(n) => Some(name_arg(n)?),
        None => None,
    };
    if a.len() > 1 {
        return fail(format!("wrong number of arguments to '{m:?}'"));
    }
    let Some((d, el, is_doc)) = container(x) else {
        return fail(format!("unsupported method '{m:?}' on {}", v.type_name()));
    };
    match (m, name) {
        // A document's only child element is its root.
        (M::Element, Some(n)) if is_doc => Ok(if d.elems[0].name == n {
            obj(XmlVal::Element(d.clone(), 0))
        } else {
            Value::Null
        }),
        (M::Element, Some(n)) => Ok(d
            .elements(el, Some(&n))
            .first()
            .map_or(Value::Null, |i| obj(XmlVal::Element(d.clone(), *i)))),
        (M::Elements, n) if is_doc => Ok(elements_of(
            d,
            [0].into_iter()
                .filter(|_| n.as_ref().is_none_or(|n| d.elems[0].name == *n))
                .collect(),
        )),
        (M::Elements, n) => Ok(elements_of(d, d.elements(el, n.as_ref()))),
        (M::Descendants, n) => {
            let mut ids = Vec::new();
            if is_doc && n.as_ref().is_none_or(|n| d.elems[0].name == *n) {
                ids.push(0);
            }
            ids.extend(d.descendants(el, n.as_ref()));
            Ok(elements_of(d, ids))
        }
        (M::Ancestors, n) if !is_doc => {
            let mut ids = Vec::new();
            let mut at = d.elems[el].parent;
            while let Some(p) = at {
                if n.as_ref().is_none_or(|n| d.elems[p].name == *n) {
                    ids.push(p);
                }
                at = d.elems[p].parent;
            }
            Ok(elements_of(d, ids))
        }
        (M::Attribute, Some(n)) if !is_doc => Ok(d
            .attribute(el, &n)
            .map_or(Value::Null, |i| obj(XmlVal::Attribute(d.clone(), el, i)))),
        (M::Attributes, n) if !is_doc => Ok(arr(d.elems[el]
            .attrs
            .iter()
            .enumerate()
            .filter(|(_, at)| n.as_ref().is_none_or(|n| at.name == *n))
            .map(|(i, _)| obj(XmlVal::Attribute(d.clone(), el, i)))
            .collect())),
        (M::Element | M::Attribute, None) => fail(format!("'{m:?}' needs a name")),
        _ => fail(format!("unsupported method '{m:?}' on {}", v.type_name())),
    }
}

/// Properties of XML objects.
pub(crate) fn member(x: &XmlVal, v: &Value, m: Member) -> R<Value> {
    use Member as M;
    let parent = |d: &Arc<XDoc>, i: Option<usize>| {
        i.map_or(Value::Null, |p| obj(XmlVal::Element(d.clone(), p)))
    };
    Ok(match (x, m) {
        (XmlVal::Document(d), M::Root) => obj(XmlVal::Element(d.clone(), 0)),
        (XmlVal::Element(d, i), M::Value) => s(d.value(*i)),
        (XmlVal::Element(d, i), M::Name) => obj(XmlVal::Name(d.elems[*i].name.clone())),
        (XmlVal::Element(d, i), M::Parent) => parent(d, d.elems[*i].parent),
        (XmlVal::Element(d, i), M::HasElements) => Value::Bool(!d.elements(*i, None).is_empty()),
        (XmlVal::Element(d, i), M::HasAttributes) => Value::Bool(!d.elems[*i].attrs.is_empty()),
        (XmlVal::Element(d, i), M::IsEmpty) => Value::Bool(d.elems[*i].children.is_empty()),
        (XmlVal::Attribute(d, e, a), M::Value) => s(d.elems[*e].attrs[*a].value.as_str()),
        (XmlVal::Attribute(d, e, a), M::Name) => {
            obj(XmlVal::Name(d.elems[*e].attrs[*a].name.clone()))
        }
        (XmlVal::Attribute(d, e, _), M::Parent) => parent(d, Some(*e)),
        (XmlVal::Name(n), M::LocalName) => s(n.local.clone()),
        (XmlVal::Name(n), M::NamespaceName) => s(n.ns.clone()),
        (XmlVal::Name(n), M::Namespace) => obj(XmlVal::Namespace(n.ns.clone())),
        (XmlVal::Namespace(ns), M::NamespaceName) => s(ns.clone()),
        _ => return no_member(v, m),
    })
}

/// `ns + "local"`: the `XName` in that namespace.
pub(crate) fn add(a: &Value, b: &Value) -> Option<R<Value>> {
    let Value::Object(o) = a else { return None };
    let Obj::Xml(XmlVal::Namespace(ns)) = &**o else {
        return None;
    };
    Some(match b {
        Value::Str(local) => XName::parse(local).map_err(xml_err).map(|n| {
            obj(XmlVal::Name(XName {
                ns: ns.clone(),
                local: n.local,
            }))
        }),
        _ => fail("an XNamespace can only be added to a string"),
    })
}

/// `XName == "name"`, as C#'s implicit conversion from string compares.
pub(crate) fn name_equals(a: &Value, b: &Value) -> Option<bool> {
    let (o, text) = match (a, b) {
        (Value::Object(o), Value::Str(t)) | (Value::Str(t), Value::Object(o)) => (o, t),
        _ => return None,
    };
    match &**o {
        Obj::Xml(XmlVal::Name(n)) => Some(n.expanded() == **text),
        Obj::Xml(XmlVal::Namespace(ns)) => Some(**ns == **text),
        _ => None,
    }
}

/// Casts to and from XML objects: `(string)el`, `(int)el`, `(XElement)x`,
/// `XNamespace ns = "urn:x"`. `None`: not an XML cast.
pub(crate) fn cast(v: &Value, t: CastTy) -> Option<R<Value>> {
    let text = |x: &XmlVal| match x {
        XmlVal::Element(d, i) => Some(d.value(*i)),
        XmlVal::Attribute(d, e, a) => Some(d.elems[*e].attrs[*a].value.clone()),
        _ => None,
    };
    match (t, v) {
        (CastTy::XName, Value::Str(st)) => Some(
            XName::parse(st)
                .map_err(xml_err)
                .map(|n| obj(XmlVal::Name(n))),
        ),
        (CastTy::XNamespace, Value::Str(st)) => Some(Ok(obj(XmlVal::Namespace(st.clone())))),
        (_, Value::Object(o)) => {
            let Obj::Xml(x) = &**o else { return None };
            if is_type(x, t) {
                return Some(Ok(v.clone()));
            }
            let tx = text(x)?;
            let tx = tx.trim();
            Some(match t {
                CastTy::Str => Ok(s(text(x)?)),
                CastTy::Int(_) => tx.parse::<i64>().map(Value::Int).or_else(|_| {
                    fail(format!("Input string was not in a correct format: '{tx}'."))
                }),
                CastTy::Double => tx.parse::<f64>().map(Value::Double).or_else(|_| {
                    fail(format!("Input string was not in a correct format: '{tx}'."))
                }),
                // XML booleans: true/false/1/0.
                CastTy::Bool => match tx {
                    "true" | "1" => Ok(Value::Bool(true)),
                    "false" | "0" => Ok(Value::Bool(false)),
                    _ => fail(format!("The string '{tx}' is not a valid Boolean value.")),
                },
                _ => return None,
            })
        }
        _ => None,
    }
}

/// Whether `x` is a `t` (`is`, `as`).
pub(crate) fn is_type(x: &XmlVal, t: CastTy) -> bool {
    matches!(
        (t, x),
        (CastTy::XDocument, XmlVal::Document(_))
            | (CastTy::XElement, XmlVal::Element(..))
            | (CastTy::XAttribute, XmlVal::Attribute(..))
            | (CastTy::XName, XmlVal::Name(_))
            | (CastTy::XNamespace, XmlVal::Namespace(_))
    )
}
