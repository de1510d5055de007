//! Policy expressions (`portcullis_core::expr`).
//!
//! Input: `[mode, bytes...]`. Mode bit 0 expands each byte through `TOKENS` (C#
//! fragments seen in APIM policies) so the fuzzer reaches deep into the grammar
//! quickly; otherwise the bytes are the text itself (lossy UTF-8). Mode bit 1 wraps
//! the text in `@(...)`, bit 2 in `@{ ... }`. The text is compiled; a successful
//! compile is evaluated twice against a sample context and must give the same
//! result both times (evaluation is deterministic and read-only), and the result
//! must print. Nothing may panic. `expression_extent` must stay inside the text on
//! a character boundary, and `Template::compile` must agree with `Expr::compile`.

#![no_main]

use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use portcullis_core::expr::{expression_extent, Expr, Template, Value};
use portcullis_core::http::{Response, Url};
use portcullis_core::policy::context::{Context, LastError};

const TOKENS: &[&str] = &[
    "context",
    ".",
    "Request",
    "Response",
    "Headers",
    "GetValueOrDefault",
    "(",
    ")",
    "\"Authorization\"",
    ",",
    "\"\"",
    "Variables",
    "[",
    "]",
    "\"x\"",
    "(string)",
    "(int)",
    "(JObject)",
    "(IResponse)",
    "Body",
    "As<JObject>",
    "As<string>",
    "()",
    "preserveContent: true",
    "Url",
    "Query",
    "Path",
    "Host",
    "Port",
    "ToString",
    "Split",
    "';'",
    "Select",
    "x => x",
    "Trim",
    "Where",
    "FirstOrDefault",
    "?.",
    "??",
    "?",
    ":",
    "==",
    "!=",
    "&&",
    "||",
    "!",
    "+",
    "-",
    "*",
    "/",
    "%",
    "<",
    ">",
    "<=",
    ">=",
    "1",
    "0",
    "-1",
    "2.5",
    "true",
    "false",
    "null",
    "new",
    "JObject",
    "JProperty",
    "JArray",
    "{",
    "}",
    ";",
    "var ",
    "v",
    " = ",
    "return ",
    "if",
    "else",
    "foreach",
    "in",
    "for",
    "while",
    "try",
    "catch",
    "throw",
    "$\"a{1}b\"",
    "@\"v\"",
    "'c'",
    "AsJwt",
    "Claims",
    "Subject",
    "DateTime.UtcNow",
    "AddSeconds",
    "ToString(\"o\")",
    "TimeSpan.FromSeconds",
    "TotalSeconds",
    "Guid.NewGuid()",
    "new Random().Next(1, 3)",
    "int.Parse",
    "Convert.ToBase64String",
    "Encoding.UTF8.GetBytes",
    "Convert.FromBase64String",
    "string.Format",
    "\"{0}-{1}\"",
    "string.Join",
    "Substring",
    "IndexOf",
    "Replace",
    "Length",
    "Count",
    "SelectToken",
    "\"a.b[0]\"",
    "Value<string>",
    "is",
    "as",
    "string",
    "int",
    "long",
    "bool",
    "double",
    "char",
    "byte[]",
    "List<string>",
    "Add",
    "Remove",
    "Property",
    "Math.Max",
    "Uri.EscapeDataString",
    "OriginalUrl",
    "MatchedParameters",
    "\"id\"",
    "LastError",
    "Reason",
    "Subscription",
    "Id",
    "Elapsed",
    "RequestId",
    "StatusCode",
    "ContainsKey",
    "Contains",
    "StartsWith",
    "StringComparison.OrdinalIgnoreCase",
    "++",
    "+=",
    "=",
    "x",
    "i",
    "<<",
    ">>",
    "&",
    "|",
    "^",
    "~",
    "/*c*/",
    "//c\n",
    " ",
    "\n",
    "\"\\u0041\\n\"",
    "9223372036854775807",
    "0xFF",
    "1e308",
    "AddMonths",
    "PadLeft",
    "new [] {1, 2}",
    "Any",
    "Sum",
    "OrderBy",
    "JArray.Parse(\"[1,{}]\")",
    "JObject.Parse(\"{\\\"a\\\":{\\\"b\\\":[1]}}\")",
];

fn sample_context() -> Context {
    let mut c = Context {
        request_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
        now_unix_ms: 1_700_000_000_123,
        elapsed: Duration::from_millis(12),
        ..Context::default()
    };
    c.request.method = "POST".into();
    c.request.url = Url {
        scheme: "https".into(),
        host: "h".into(),
        port: 443,
        path: "/a/b".into(),
        query: vec![("x".into(), "1".into()), ("x".into(), "2".into())],
    };
    c.request.original_url = c.request.url.clone();
    c.request.headers.append(
        "Authorization",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.",
    );
    c.request.headers.append("X-A", "1");
    c.request.body = Some(Bytes::from_static(br#"{"a":{"b":[1,"2",null]},"s":"t"}"#));
    c.request.matched_parameters = vec![("id".into(), "7".into())];
    c.variables.insert("x".into(), Value::from("v"));
    c.variables.insert("n".into(), Value::Int(3));
    let json = Expr::compile(r#"@(JObject.Parse("{\"a\":[1,2],\"b\":{\"c\":\"d\"}}"))"#)
        .ok()
        .and_then(|e| e.eval(&c).ok())
        .unwrap_or(Value::Null);
    c.variables.insert("j".into(), json);
    let resp = Response {
        status: 200,
        reason: "OK".into(),
        body: Some(Bytes::from_static(b"[1,2,3]")),
        ..Response::default()
    };
    c.variables.insert("r".into(), Value::from(resp.clone()));
    c.response = Some(resp);
    c.last_error = Some(LastError {
        source: "s".into(),
        ..LastError::default()
    });
    c
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut text = if mode & 1 == 1 {
        rest.iter()
            .map(|b| TOKENS[*b as usize % TOKENS.len()])
            .collect::<String>()
    } else {
        String::from_utf8_lossy(rest).into_owned()
    };
    if mode & 2 == 2 {
        text = format!("@({text})");
    } else if mode & 4 == 4 {
        text = format!("@{{ {text} }}");
    }

    if let Some(n) = expression_extent(&text) {
        assert!(n <= text.len() && text.is_char_boundary(n));
    }

    let compiled = Expr::compile(&text);
    if let Err(e) = &compiled {
        assert!(
            e.offset <= text.len(),
            "offset {} past {}",
            e.offset,
            text.len()
        );
    }
    match Template::compile(&text) {
        Ok(Template::Expr(_)) => assert!(compiled.is_ok()),
        Ok(Template::Literal(_)) => {}
        Err(_) => assert!(compiled.is_err()),
    }
    let Ok(expr) = compiled else {
        return;
    };
    let ctx = sample_context();
    let first = expr.eval(&ctx);
    let second = expr.eval(&ctx);
    // Debug text, not `==`: a NaN result is still the same result.
    assert_eq!(
        format!("{first:?}"),
        format!("{second:?}"),
        "evaluation is not deterministic"
    );
    if let Ok(v) = first {
        let _ = v.to_display_string();
        let _ = v.to_json();
    }
    let _ = expr.reads_request_body();
    let _ = expr.reads_response_body();
});
