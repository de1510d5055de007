//! The objects a Liquid template reads: `context` (the request, the response,
//! variables, API, operation, subscription, product) with APIM's Pascal-cased
//! member names, and `body`, the section's message body parsed as JSON.

use liquid_core::model::{KString, Object, Value};

use super::super::context::{Context, Headers, Url};
use super::super::error::Failure;
use super::super::transform::Target;
use crate::expr::{datetime, Value as ExprValue};

/// The template's globals for a request.
pub fn globals(ctx: &Context, target: Target, parse_date: bool) -> Result<Object, Failure> {
    let mut g = Object::new();
    g.insert("context".into(), Value::Object(context(ctx)));
    g.insert("body".into(), body(ctx, target, parse_date)?);
    Ok(g)
}

fn context(ctx: &Context) -> Object {
    let mut c = Object::new();
    let req = &ctx.request;
    let mut r = Object::new();
    put(&mut r, "Method", &req.method);
    r.insert("Url".into(), url(&req.url));
    r.insert("OriginalUrl".into(), url(&req.original_url));
    put(&mut r, "IpAddress", &req.ip_address);
    r.insert("Headers".into(), headers(&req.headers));
    r.insert(
        "MatchedParameters".into(),
        pairs(
            req.matched_parameters
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        ),
    );
    r.insert(
        "HasBody".into(),
        Value::scalar(req.body.as_ref().is_some_and(|b| !b.is_empty())),
    );
    c.insert("Request".into(), Value::Object(r));
    if let Some(resp) = &ctx.response {
        let mut o = Object::new();
        o.insert("StatusCode".into(), Value::scalar(i64::from(resp.status)));
        put(&mut o, "StatusReason", &resp.reason);
        o.insert("Headers".into(), headers(&resp.headers));
        c.insert("Response".into(), Value::Object(o));
    }
    let mut vars: Vec<(&String, &ExprValue)> = ctx.variables.iter().collect();
    vars.sort_by(|a, b| a.0.cmp(b.0));
    c.insert(
        "Variables".into(),
        Value::array(vars.into_iter().map(|(k, v)| entry(k, from_expr(v)))),
    );
    let api = &ctx.fixed.api;
    let mut a = Object::new();
    put(&mut a, "Id", &api.id);
    put(&mut a, "Name", &api.name);
    put(&mut a, "Path", &api.path);
    a.insert("ServiceUrl".into(), url(&api.service_url));
    c.insert("Api".into(), Value::Object(a));
    let op = &ctx.fixed.operation;
    let mut o = Object::new();
    put(&mut o, "Id", &op.id);
    put(&mut o, "Name", &op.name);
    put(&mut o, "Method", &op.method);
    put(&mut o, "UrlTemplate", &op.url_template);
    c.insert("Operation".into(), Value::Object(o));
    let sub = ctx.fixed.subscription.as_deref().map(|s| {
        let mut o = Object::new();
        put(&mut o, "Id", &s.id);
        put(&mut o, "Name", &s.name);
        put(&mut o, "Key", &s.key);
        put(&mut o, "PrimaryKey", &s.primary_key);
        put(&mut o, "SecondaryKey", &s.secondary_key);
        Value::Object(o)
    });
    c.insert("Subscription".into(), sub.unwrap_or(Value::Nil));
    let product = ctx.fixed.product.as_deref().map(|p| {
        let mut o = Object::new();
        put(&mut o, "Id", &p.id);
        put(&mut o, "Name", &p.name);
        Value::Object(o)
    });
    c.insert("Product".into(), product.unwrap_or(Value::Nil));
    // The gateway has no users: `context.User` is null, as for an anonymous call.
    c.insert("User".into(), Value::Nil);
    let mut d = Object::new();
    put(&mut d, "GatewayId", &ctx.fixed.gateway_id);
    put(&mut d, "Region", &ctx.fixed.region);
    put(&mut d, "ServiceName", &ctx.fixed.service_name);
    c.insert("Deployment".into(), Value::Object(d));
    put(&mut c, "RequestId", &ctx.request_id);
    put(
        &mut c,
        "Timestamp",
        &datetime::format_default(ctx.now_unix_ms),
    );
    c
}

fn put(o: &mut Object, k: &'static str, v: &str) {
    o.insert(k.into(), Value::scalar(v.to_string()));
}

/// `Url`: its parts, and `ToString`/`ToUri` as the whole URL.
fn url(u: &Url) -> Value {
    let mut o = Object::new();
    put(&mut o, "Scheme", &u.scheme);
    put(&mut o, "Host", &u.host);
    o.insert("Port".into(), Value::scalar(i64::from(u.port)));
    put(&mut o, "Path", &u.path);
    o.insert(
        "Query".into(),
        pairs(u.query.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    );
    put(&mut o, "QueryString", &u.query_string());
    let whole = u.to_url_string();
    put(&mut o, "ToUri", &whole);
    put(&mut o, "ToString", &whole);
    Value::Object(o)
}

/// A DotLiquid dictionary entry (`KeyValuePair`): `{Key, Value}`. The
/// dictionaries are lists of them; the runtime (`super::dictionary_find`)
/// looks names up in them.
fn entry(k: &str, v: Value) -> Value {
    let mut o = Object::new();
    o.insert("Key".into(), Value::scalar(k.to_string()));
    o.insert("Value".into(), v);
    Value::Object(o)
}

/// Header fields by name as received; repeated fields joined with `,` (APIM's
/// `GetValueOrDefault`).
fn headers(h: &Headers) -> Value {
    Value::array(
        h.names()
            .into_iter()
            .filter_map(|name| Some(entry(name, Value::scalar(h.get_joined(name)?)))),
    )
}

/// Name/value pairs; a repeated name keeps its first value.
fn pairs<'a>(it: impl Iterator<Item = (&'a str, &'a str)>) -> Value {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for (k, v) in it {
        if !seen.contains(&k) {
            seen.push(k);
            out.push(entry(k, Value::scalar(v.to_string())));
        }
    }
    Value::array(out)
}

/// `body`: the message's JSON parsed when its Content-Type says JSON, other
/// text as a string, nothing when there is no body.
/// `parse_date`: date strings become .NET's default `DateTime` text
/// (`MM/dd/yyyy HH:mm:ss`), as APIM's `parse-date="true"` (the default) does.
fn body(ctx: &Context, target: Target, parse_date: bool) -> Result<Value, Failure> {
    let (headers, body) = match target {
        Target::Request => (Some(&ctx.request.headers), ctx.request.body.as_ref()),
        Target::Response => match &ctx.response {
            Some(r) => (Some(&r.headers), r.body.as_ref()),
            None => (None, None),
        },
    };
    let Some(body) = body.filter(|b| !b.is_empty()) else {
        return Ok(Value::Nil);
    };
    let ct = headers
        .and_then(|h| h.get("content-type"))
        .unwrap_or_default();
    if is_json(ct) {
        let j: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            Failure::new(
                "LiquidTemplateError",
                format!("the body is not valid JSON: {e}"),
            )
        })?;
        return Ok(from_json(&j, parse_date));
    }
    Ok(Value::scalar(String::from_utf8_lossy(body).into_owned()))
}

/// `application/json`, `text/json` or any `+json` type (the set-body page's rule).
fn is_json(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || media == "text/json" || media.ends_with("+json")
}

fn from_json(j: &serde_json::Value, parse_date: bool) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Nil,
        J::Bool(b) => Value::scalar(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::scalar(i),
            None => Value::scalar(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => match json_date(s).filter(|_| parse_date) {
            Some(ms) => Value::scalar(datetime::format_default(ms)),
            None => Value::scalar(s.clone()),
        },
        J::Array(a) => Value::array(a.iter().map(|v| from_json(v, parse_date))),
        J::Object(m) => {
            let mut o = Object::new();
            for (k, v) in m {
                o.insert(KString::from_ref(k), from_json(v, parse_date));
            }
            Value::Object(o)
        }
    }
}

/// A string Json.NET reads as a date: ISO 8601 with a time
/// (`2012-03-21T05:40Z`) or `/Date(1198908717056)/`.
fn json_date(s: &str) -> Option<i64> {
    if let Some(inner) = s.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) {
        // An offset after the milliseconds only says how to show it.
        let end = inner
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == '+' || *c == '-')
            .map_or(inner.len(), |(i, _)| i);
        return inner[..end].parse::<i64>().ok();
    }
    let b = s.as_bytes();
    let iso = b.len() >= 16
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T';
    if iso {
        datetime::parse(s)
    } else {
        None
    }
}

/// A variable's value as Liquid sees it.
fn from_expr(v: &ExprValue) -> Value {
    match v {
        ExprValue::Null => Value::Nil,
        ExprValue::Bool(b) => Value::scalar(*b),
        ExprValue::Int(i) => Value::scalar(*i),
        ExprValue::Double(d) => Value::scalar(*d),
        ExprValue::Json(j) => from_json(j, false),
        ExprValue::Array(a) => Value::array(a.iter().map(from_expr)),
        ExprValue::Dict(d) => {
            let mut o = Object::new();
            for (k, v) in &d.entries {
                o.insert(KString::from_ref(k), from_expr(v));
            }
            Value::Object(o)
        }
        other => Value::scalar(other.to_display_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_dates() {
        use super::json_date;
        assert_eq!(json_date("/Date(1198908717056)/"), Some(1_198_908_717_056));
        assert_eq!(
            json_date("/Date(1198908717056+0100)/"),
            Some(1_198_908_717_056)
        );
        assert!(json_date("2012-03-21T05:40:00Z").is_some());
        assert!(json_date("2012-03-21").is_none());
        assert!(json_date("March").is_none());
    }

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Text/JSON"));
        assert!(is_json("application/problem+json"));
        assert!(!is_json("application/xml"));
        assert!(!is_json(""));
    }
}
