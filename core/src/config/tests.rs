use http::Method;

use super::*;
use crate::router::RouteOutcome;

const FULL: &str = r#"{
  "revision": 1,
  "apis": [{
    "id": "users", "displayName": "Users API",
    "path": "users",
    "serviceUrl": "http://127.0.0.1:8000/api",
    "backendId": null,
    "protocols": ["http", "https"],
    "hostnames": [],
    "subscriptionRequired": false,
    "subscriptionKeyParameterNames": {"header": "Ocp-Apim-Subscription-Key", "query": "subscription-key"},
    "preserveHostHeader": true,
    "timeoutSeconds": 30,
    "operations": [{"id": "get-user", "displayName": "Get user", "method": "GET", "urlTemplate": "/users/{id}"}]
  }],
  "backends": [{"id": "users-backend", "url": "http://127.0.0.1:8000"}],
  "namedValues": [{"name": "env", "value": "prod", "secret": false}]
}"#;

fn parse(json: &str) -> Snapshot {
    match Snapshot::from_json(json.as_bytes()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn compile(json: &str) -> CompiledConfig {
    match CompiledConfig::compile(parse(json)) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// A snapshot with one API whose fields are `api_fields` (JSON members, no braces).
fn one_api(api_fields: &str) -> String {
    format!(r#"{{"revision": 1, "apis": [{{{api_fields}}}]}}"#)
}

fn invalid(json: &str) -> String {
    match parse(json).validate() {
        Ok(()) => panic!("accepted: {json}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn parses_the_full_model() {
    let s = parse(FULL);
    assert_eq!(s.revision, 1);
    let api = &s.apis[0];
    assert_eq!(api.id, "users");
    assert_eq!(api.display_name, "Users API");
    assert_eq!(
        api.service_url.as_deref(),
        Some("http://127.0.0.1:8000/api")
    );
    assert_eq!(api.operations[0].url_template, "/users/{id}");
    assert_eq!(s.backends[0].url, "http://127.0.0.1:8000");
    assert_eq!(s.named_values[0].value, "prod");
    s.validate().unwrap();
}

#[test]
fn defaults() {
    let s = parse(&one_api(
        r#""id": "a", "path": "a", "serviceUrl": "http://b""#,
    ));
    let api = &s.apis[0];
    assert_eq!(api.protocols, [Scheme::Http, Scheme::Https]);
    assert!(api.hostnames.is_empty());
    assert!(api.subscription_required);
    assert_eq!(
        api.subscription_key_parameter_names.header,
        "Ocp-Apim-Subscription-Key"
    );
    assert_eq!(
        api.subscription_key_parameter_names.query,
        "subscription-key"
    );
    assert!(api.preserve_host_header);
    assert_eq!(api.timeout_seconds, 30);
    assert_eq!(api.timeout(), std::time::Duration::from_secs(30));
    assert!(api.operations.is_empty());
    assert!(api.display_name.is_empty());
    assert!(s.backends.is_empty() && s.named_values.is_empty());

    let s = parse(&one_api(
        r#""id": "a", "path": "a", "serviceUrl": "http://b",
           "subscriptionKeyParameterNames": {"header": "X-Key"}"#,
    ));
    let names = &s.apis[0].subscription_key_parameter_names;
    assert_eq!(
        (names.header.as_str(), names.query.as_str()),
        ("X-Key", "subscription-key")
    );
}

#[test]
fn json_errors_carry_line_and_column() {
    let typo = "{\n  \"revision\": 1,\n  \"apis\": [{\"id\": \"a\", \"path\": \"a\", \"serviceURL\": \"http://b\"}]\n}";
    match Snapshot::from_json(typo.as_bytes()) {
        Err(ConfigError::Json {
            line,
            column,
            message,
        }) => {
            assert_eq!(line, 3);
            assert!(column > 30, "{column}");
            assert!(message.contains("unknown field `serviceURL`"), "{message}");
            assert!(!message.contains("at line"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let e = Snapshot::from_json(b"{\"revision\": 1,\n\"apis\": [}").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("invalid configuration at line 2, column 10:"),
        "{e}"
    );
    let e = Snapshot::from_json(b"{\"apis\": []}").unwrap_err();
    assert!(e.to_string().contains("missing field `revision`"), "{e}");
    let e =
        Snapshot::from_json(one_api(r#""id": "a", "path": "a", "protocols": ["ftp"]"#).as_bytes())
            .unwrap_err();
    assert!(e.to_string().contains("unknown variant `ftp`"), "{e}");
    let e = Snapshot::from_json(b"{\"revision\": 1, \"extra\": true}").unwrap_err();
    assert!(e.to_string().contains("unknown field `extra`"), "{e}");
}

#[test]
fn validation_errors_name_the_entity() {
    let base = r#""path": "a", "serviceUrl": "http://b""#;
    let two = |a: &str, b: &str| format!(r#"{{"revision": 1, "apis": [{{{a}}}, {{{b}}}]}}"#);

    let e = invalid(&two(
        &format!(r#""id": "x", {base}"#),
        r#""id": "x", "path": "b", "serviceUrl": "http://b""#,
    ));
    assert_eq!(e, "api `x`: duplicate API id");
    let e = invalid(&two(
        &format!(r#""id": "x", {base}"#),
        r#""id": "y", "path": "/a/", "serviceUrl": "http://b""#,
    ));
    assert_eq!(
        e,
        "api `y`: path `/a` on any host is already used by api `x`"
    );
    let e = invalid(&one_api(
        r#""id": "bad id", "path": "a", "serviceUrl": "http://b""#,
    ));
    assert!(e.starts_with("api `bad id`: invalid id"), "{e}");
    let e = invalid(&one_api(r#""id": "a", "path": "a?x""#));
    assert!(e.starts_with("api `a`: no upstream"), "{e}");
    let e = invalid(&one_api(
        r#""id": "a", "path": "a?x", "serviceUrl": "http://b""#,
    ));
    assert!(e.starts_with("api `a`: invalid path `a?x`"), "{e}");
    let e = invalid(&one_api(
        r#""id": "a", "path": "a b", "serviceUrl": "http://b""#,
    ));
    assert!(e.contains("whitespace"), "{e}");
    let e = invalid(&one_api(
        r#""id": "a", "path": "a", "serviceUrl": "ftp://b""#,
    ));
    assert_eq!(
        e,
        "api `a`: invalid serviceUrl `ftp://b`: scheme must be http or https"
    );
    let e = invalid(&one_api(
        r#""id": "a", "path": "a", "serviceUrl": "http://b", "backendId": "c""#,
    ));
    assert_eq!(e, "api `a`: set either serviceUrl or backendId, not both");
    let e = invalid(&one_api(r#""id": "a", "path": "a", "backendId": "nope""#));
    assert_eq!(e, "api `a`: backendId `nope` refers to no backend");
    let e = invalid(&one_api(&format!(r#""id": "a", {base}, "protocols": []"#)));
    assert_eq!(e, "api `a`: protocols must list http, https or both");
    let e = invalid(&one_api(&format!(
        r#""id": "a", {base}, "timeoutSeconds": 0"#
    )));
    assert!(e.contains("timeoutSeconds"), "{e}");
    let e = invalid(&one_api(&format!(
        r#""id": "a", {base}, "hostnames": ["a.com:80"]"#
    )));
    assert_eq!(
        e,
        "api `a`: invalid hostname `a.com:80`: must not include a port"
    );
    let e = invalid(&one_api(&format!(
        r#""id": "a", {base}, "subscriptionKeyParameterNames": {{"header": "X Key"}}"#
    )));
    assert!(
        e.contains("invalid subscription key header name `X Key`"),
        "{e}"
    );

    let op =
        |m: &str, t: &str| format!(r#"{{"id": "op-{m}", "method": "{m}", "urlTemplate": "{t}"}}"#);
    let with_ops = |ops: &[String]| {
        one_api(&format!(
            r#""id": "a", {base}, "operations": [{}]"#,
            ops.join(",")
        ))
    };
    let e = invalid(&with_ops(&[op("GET", "/x"), op("GET", "/y")]));
    assert_eq!(e, "api `a`, operation `op-GET`: duplicate operation id");
    let e = invalid(&with_ops(&[op("get", "/x")]));
    assert!(
        e.starts_with("api `a`, operation `op-get`: invalid method `get`"),
        "{e}"
    );
    let e = invalid(&with_ops(&[op("GET", "x")]));
    assert_eq!(
        e,
        "api `a`, operation `op-GET`: invalid urlTemplate `x`: must start with '/'"
    );
    let e = invalid(&with_ops(&[op("GET", "/a/{id}/{id}")]));
    assert!(e.contains("parameter `id` appears twice"), "{e}");
    let e = invalid(&with_ops(&[op("GET", "/a/*/b")]));
    assert!(
        e.contains("'*' is only allowed as the whole last segment"),
        "{e}"
    );
    let e = invalid(&with_ops(&[
        op("GET", "/users/{id}"),
        r#"{"id": "other", "method": "GET", "urlTemplate": "/users/{userId}"}"#.to_owned(),
    ]));
    assert_eq!(
        e,
        "api `a`, operation `other`: same method and URL template as operation `op-GET`"
    );

    let e = invalid(r#"{"revision": 1, "backends": [{"id": "b", "url": "http://x?y"}]}"#);
    assert_eq!(
        e,
        "backend `b`: invalid url `http://x?y`: a query is not allowed"
    );
    let e = invalid(
        r#"{"revision": 1, "backends": [{"id": "b", "url": "http://x"}, {"id": "b", "url": "http://y"}]}"#,
    );
    assert_eq!(e, "backend `b`: duplicate id");
    let e = invalid(
        r#"{"revision": 1, "namedValues": [{"name": "n", "value": "1"}, {"name": "n", "value": "2"}]}"#,
    );
    assert_eq!(e, "named value `n`: duplicate id");
    let e = invalid(r#"{"revision": 1, "namedValues": [{"name": "a b", "value": "1"}]}"#);
    assert!(e.starts_with("named value `a b`: invalid id"), "{e}");
}

#[test]
fn secret_named_values_are_not_printed() {
    let s = parse(
        r#"{"revision": 1, "namedValues": [
            {"name": "key", "value": "hunter2", "secret": true},
            {"name": "env", "value": "prod"}]}"#,
    );
    let debug = format!("{s:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert!(debug.contains("prod"), "{debug}");
    // The gateway needs the value itself: it is kept and serialized.
    assert_eq!(s.named_values[0].value, "hunter2");
    assert!(String::from_utf8_lossy(&s.to_json()).contains("hunter2"));
}

#[test]
fn serialization_round_trips() {
    let s = parse(FULL);
    let again = parse(&String::from_utf8_lossy(&s.to_json()));
    assert_eq!(s, again);
    let json = String::from_utf8_lossy(&s.to_json()).into_owned();
    assert!(json.contains("\"subscriptionKeyParameterNames\""), "{json}");
    assert!(json.contains("\"timeoutSeconds\":30"), "{json}");
}

#[test]
fn compiles_and_resolves_upstreams() {
    let c = compile(
        r#"{"revision": 9,
            "apis": [
              {"id": "direct", "path": "d", "serviceUrl": "http://127.0.0.1:8000/api/",
               "operations": [{"id": "any", "method": "*", "urlTemplate": "/*"}]},
              {"id": "via-backend", "path": "/b/", "backendId": "shared",
               "operations": [{"id": "get", "method": "GET", "urlTemplate": "/items/{id}"}]}
            ],
            "backends": [{"id": "shared", "url": "https://Backend.Example:8443/base"}]}"#,
    );
    assert_eq!(c.revision(), 9);
    assert_eq!(c.snapshot().apis.len(), 2);
    assert_eq!(c.upstream(0).base_path, "/api");
    assert_eq!(&*c.upstream(0).pool_key, "http://127.0.0.1:8000");
    let up = c.upstream(1);
    assert_eq!(
        (up.scheme, up.host.as_str(), up.port),
        (Scheme::Https, "backend.example", 8443)
    );
    assert_eq!(up.authority, "backend.example:8443");
    assert_eq!(up.base_path, "/base");

    let path = b"/b/items/42";
    let RouteOutcome::Matched(m) = c.router().route(Some(b"gw"), &Method::GET, path) else {
        panic!("no match");
    };
    assert_eq!(c.api(m.api as usize).id, "via-backend");
    assert_eq!(c.operation(m.api as usize, m.operation as usize).id, "get");
    assert_eq!(&path[m.api_prefix_len..], b"/items/42");
    assert_eq!(m.param(path, "id"), Some(&b"42"[..]));
}

#[test]
fn compile_reports_validation_errors() {
    let e = CompiledConfig::compile(parse(&one_api(r#""id": "a", "path": "a""#))).unwrap_err();
    assert_eq!(e, ConfigError::api("a", ApiProblem::MissingUpstream));
}

#[test]
fn example_gateway_json_compiles() {
    let c = compile(include_str!("../../../examples/gateway.json"));
    let api = c.api(0);
    assert_eq!((api.id.as_str(), api.path.as_str()), ("sample", "sample"));
    assert!(!api.subscription_required);
    assert_eq!(c.upstream(0).authority, "127.0.0.1:8000");
    let route = |m: Method, p: &str| match c.router().route(None, &m, p.as_bytes()) {
        RouteOutcome::Matched(m) => {
            Some(c.operation(m.api as usize, m.operation as usize).id.clone())
        }
        _ => None,
    };
    assert_eq!(
        route(Method::GET, "/sample/hello").as_deref(),
        Some("get-hello")
    );
    assert_eq!(
        route(Method::GET, "/sample/users/7").as_deref(),
        Some("get-user")
    );
    assert_eq!(
        route(Method::POST, "/sample/echo").as_deref(),
        Some("post-echo")
    );
    assert_eq!(
        route(Method::GET, "/sample/slow").as_deref(),
        Some("get-slow")
    );
    // No catch-all operation: anything else is a 404.
    assert_eq!(route(Method::GET, "/sample/other"), None);
    assert_eq!(route(Method::GET, "/sample/echo"), None);
}
