//! Tests of the expression language: each supported group, error messages,
//! and the APIM sample-policy corpus.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
// A concrete context to evaluate against: the pipeline's (tests only).
use crate::policy::context::{Context, LastError, SubscriptionInfo};

mod crypto;
mod local_fn;
mod regex;
mod symmetric;
mod xml;

/// A JWT with header {"alg":"HS256","typ":"JWT"} and claims
/// {"sub":"user-1","name":"Ann","aud":["a","b"],"exp":1700000000,"nonce":"n1"}.
fn sample_jwt() -> String {
    let h = encoding::base64_encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let p = encoding::base64_encode(
        br#"{"sub":"user-1","name":"Ann","aud":["a","b"],"exp":1700000000,"nonce":"n1"}"#,
    );
    let url = |s: String| s.trim_end_matches('=').replace('+', "-").replace('/', "_");
    format!("{}.{}.sig", url(h), url(p))
}

fn ctx() -> Context {
    let mut c = Context {
        request_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
        now_unix_ms: 1_700_000_000_123,
        elapsed: Duration::from_millis(1500),
        ..Context::default()
    };
    c.request.method = "POST".into();
    c.request.url = Url {
        scheme: "https".into(),
        host: "backend.example".into(),
        port: 8443,
        path: "/v1/items".into(),
        query: vec![
            ("a".into(), "1".into()),
            ("b".into(), "x y".into()),
            ("a".into(), "2".into()),
        ],
    };
    c.request.original_url = Url {
        scheme: "https".into(),
        host: "api.example".into(),
        port: 443,
        path: "/shop/v1/items".into(),
        query: vec![],
    };
    c.request.headers.append("Content-Type", "application/json");
    c.request.headers.append("X-Multi", "a");
    c.request.headers.append("x-multi", "b");
    c.request
        .headers
        .append("Authorization", format!("Bearer {}", sample_jwt()));
    c.request.body = Some(Bytes::from_static(
        br#"{"name":"widget","tags":["x","y"],"n":3,"nested":{"ok":true}}"#,
    ));
    c.request.ip_address = "10.1.2.3".into();
    c.request.matched_parameters = vec![("id".into(), "42".into())];
    c.variables.insert("s".into(), Value::from("text"));
    c.variables.insert("accessKey".into(), Value::from("a2V5"));
    c.variables.insert("n".into(), Value::Int(7));
    c.variables.insert("flag".into(), Value::Bool(true));
    c.variables.insert(
        "obj".into(),
        Value::from(serde_json::json!({"access_token": "tok", "expires_in": 3600, "list": [1, 2]})),
    );
    let mut resp = Response {
        status: 201,
        reason: "Created".into(),
        body: Some(Bytes::from_static(br#"{"id":"abc"}"#)),
        ..Response::default()
    };
    resp.headers.append("Location", "/items/abc");
    c.variables.insert("resp".into(), Value::from(resp.clone()));
    c.response = Some(resp);
    c.fixed.subscription = Some(std::sync::Arc::new(SubscriptionInfo {
        id: "sub1".into(),
        name: "Starter sub".into(),
        key: "k".into(),
        primary_key: "pk".into(),
        secondary_key: "sk".into(),
    }));
    c.fixed.region = "West Europe".into();
    c.last_error = Some(LastError {
        source: "rate-limit".into(),
        reason: "RateLimitExceeded".into(),
        message: "too many".into(),
        ..LastError::default()
    });
    c
}

fn ev(src: &str) -> Value {
    let e = Expr::compile(src).unwrap_or_else(|e| panic!("compile {src}: {e}"));
    e.eval(&ctx()).unwrap_or_else(|e| panic!("eval {src}: {e}"))
}

fn evs(src: &str) -> String {
    ev(src).to_display_string()
}

fn compile_err(src: &str) -> String {
    match Expr::compile(src) {
        Ok(_) => panic!("{src} compiled"),
        Err(e) => e.message,
    }
}

fn eval_err(src: &str) -> String {
    let e = Expr::compile(src).unwrap_or_else(|e| panic!("compile {src}: {e}"));
    match e.eval(&ctx()) {
        Ok(v) => panic!("{src} evaluated to {v:?}"),
        Err(e) => e.message,
    }
}

#[test]
fn literals_and_operators() {
    assert_eq!(ev("@(1 + 2 * 3)"), Value::Int(7));
    assert_eq!(ev("@(7 / 2)"), Value::Int(3));
    assert_eq!(ev("@(7 % 3)"), Value::Int(1));
    assert_eq!(ev("@(7.0 / 2)"), Value::Double(3.5));
    assert_eq!(evs("@(0.1 + 0.2)"), "0.30000000000000004");
    assert_eq!(evs("@(1e21)"), "1E+21");
    assert_eq!(evs("@(true)"), "True");
    assert_eq!(evs(r#"@("a" + 1 + true + null)"#), "a1True");
    assert_eq!(evs(r#"@(@"c:\path ""q""")"#), r#"c:\path "q""#);
    assert_eq!(evs(r#"@("tab\tnl\n\u0041")"#), "tab\tnl\nA");
    assert_eq!(ev("@('x')"), Value::Char('x'));
    assert_eq!(ev("@(10L)"), Value::Int(10));
    assert_eq!(ev("@(0xFF)"), Value::Int(255));
    assert_eq!(ev("@(1 < 2 && !(2 <= 1) || false)"), Value::Bool(true));
    assert_eq!(ev(r#"@("a" == "a" && "a" != "A")"#), Value::Bool(true));
    assert_eq!(ev("@(true ? 1 : 2)"), Value::Int(1));
    assert_eq!(ev(r#"@(null ?? "d")"#), Value::from("d"));
    assert_eq!(ev("@(-5 + +3)"), Value::Int(-2));
    assert_eq!(ev("@(6 & 3 | 8 ^ 1)"), Value::Int(11));
    assert_eq!(ev("@(1 << 4 >> 2)"), Value::Int(4));
    assert_eq!(eval_err("@(1 / 0)"), "Attempted to divide by zero.");
    assert_eq!(ev(r#"@("x" is string)"#), Value::Bool(true));
    assert_eq!(ev(r#"@(context.Variables["n"] as string)"#), Value::Null);
}

#[test]
fn interpolated_strings() {
    assert_eq!(
        evs(r#"@($"id={context.Request.MatchedParameters["id"]}!")"#),
        "id=42!"
    );
    assert_eq!(
        evs(r#"@($"{{lit}} {1 + 1,3}|{2,-3}|{255:X4}")"#),
        "{lit}   2|2  |00FF"
    );
    assert_eq!(evs(r#"@($@"a""{(true ? $"-{1}-" : "")}")"#), "a\"-1-");
    assert_eq!(
        evs(r#"@{ var port = 8443; return $"https://h{(port != 443 ? $":{port}" : "")}/cb"; }"#),
        "https://h:8443/cb"
    );
}

#[test]
fn blocks_and_statements() {
    let src = r#"@{
        var total = 0;
        string[] parts = "1,2,3,x".Split(',');
        foreach (var p in parts) {
            int n;
            if (int.TryParse(p, out n)) { total += n; } else { continue; }
        }
        for (int i = 0; i < 3; i++) { total = total + i; }
        while (total < 100) { total *= 2; if (total > 50) break; }
        try { throw new Exception("boom"); } catch (Exception ex) { total += ex.Message.Length; }
        return total;
    }"#;
    assert_eq!(ev(src), Value::Int(76));
    assert_eq!(
        compile_err("@{ var x = 1; }"),
        "not all code paths return a value"
    );
    assert_eq!(
        compile_err("@{ for (int F(int a) { return a; }; ; ) { } return 1; }"),
        "local functions are not supported"
    );
    assert!(eval_err("@{ while (true) { } }").contains("loop limit"));
}

#[test]
fn context_members() {
    assert_eq!(evs("@(context.Request.Method)"), "POST");
    assert_eq!(evs("@(context.Request.Url.Host)"), "backend.example");
    assert_eq!(ev("@(context.Request.Url.Port)"), Value::Int(8443));
    assert_eq!(evs("@(context.Request.Url.Path)"), "/v1/items");
    assert_eq!(
        evs("@(context.Request.Url.QueryString)"),
        "?a=1&b=x%20y&a=2"
    );
    assert_eq!(
        evs("@(context.Request.Url.ToString())"),
        "https://backend.example:8443/v1/items?a=1&b=x%20y&a=2"
    );
    assert_eq!(
        evs(r#"@(context.Request.Url.Query.GetValueOrDefault("a", "d"))"#),
        "1,2"
    );
    assert_eq!(
        evs(r#"@(context.Request.Url.Query.GetValueOrDefault("zz", "d"))"#),
        "d"
    );
    assert_eq!(
        evs("@(context.Request.OriginalUrl.Scheme + context.Request.OriginalUrl.Port)"),
        "https443"
    );
    assert_eq!(
        evs(r#"@(context.Request.Headers.GetValueOrDefault("x-multi", ""))"#),
        "a,b"
    );
    assert_eq!(
        ev(r#"@(context.Request.Headers.GetValueOrDefault("nope"))"#),
        Value::Null
    );
    assert_eq!(
        ev(r#"@(context.Request.Headers.ContainsKey("content-type"))"#),
        Value::Bool(true)
    );
    assert_eq!(evs(r#"@(context.Request.Headers["X-Multi"][1])"#), "b");
    assert_eq!(
        ev(r#"@(context.Request.Headers["X-Multi"].Length)"#),
        Value::Int(2)
    );
    assert_eq!(evs("@(context.Request.IpAddress)"), "10.1.2.3");
    assert_eq!(evs(r#"@(context.Request.MatchedParameters["id"])"#), "42");
    assert_eq!(
        evs(r#"@(context.Request.MatchedParameters.GetValueOrDefault("x", "d"))"#),
        "d"
    );
    assert_eq!(ev("@(context.Response.StatusCode)"), Value::Int(201));
    assert_eq!(evs("@(context.Response.StatusReason)"), "Created");
    assert_eq!(
        evs(r#"@(context.Response.Headers["location"][0])"#),
        "/items/abc"
    );
    assert_eq!(
        evs("@(context.Subscription.Name + context.Subscription.PrimaryKey)"),
        "Starter subpk"
    );
    assert_eq!(ev("@(context.Product == null)"), Value::Bool(true));
    assert!(eval_err("@(context.Product.Name)").contains("Object reference not set"));
    assert_eq!(evs("@(context.Deployment.Region)"), "West Europe");
    assert_eq!(
        evs("@(context.LastError.Source + \":\" + context.LastError.Reason)"),
        "rate-limit:RateLimitExceeded"
    );
    assert_eq!(
        evs("@(context.RequestId)"),
        "0f8fad5b-d9cb-469f-a165-70867728950e"
    );
    assert_eq!(
        ev("@(context.Elapsed.TotalMilliseconds)"),
        Value::Double(1500.0)
    );
    assert_eq!(ev("@(context.Elapsed.TotalSeconds > 1)"), Value::Bool(true));
    assert_eq!(ev("@(context.User)"), Value::Null);
    assert!(eval_err("@(context.User.Id)").contains("context.User is null"));
    assert_eq!(
        ev("@(context.Response != null && context.Response.StatusCode == 201)"),
        Value::Bool(true)
    );
}

#[test]
fn variables() {
    assert_eq!(evs(r#"@((string)context.Variables["s"])"#), "text");
    assert_eq!(ev(r#"@((int)context.Variables["n"] + 1)"#), Value::Int(8));
    assert_eq!(
        ev(r#"@(context.Variables.ContainsKey("s"))"#),
        Value::Bool(true)
    );
    assert_eq!(
        ev(r#"@(context.Variables.GetValueOrDefault<int>("missing"))"#),
        Value::Int(0)
    );
    assert_eq!(
        ev(r#"@(context.Variables.GetValueOrDefault<bool>("flag"))"#),
        Value::Bool(true)
    );
    assert_eq!(
        evs(r#"@(context.Variables.GetValueOrDefault("missing", "dflt"))"#),
        "dflt"
    );
    assert_eq!(
        ev(r#"@(context.Variables.GetValueOrDefault<string>("missing"))"#),
        Value::Null
    );
    assert_eq!(
        eval_err(r#"@(context.Variables["zz"])"#),
        "The given key 'zz' was not present in the dictionary."
    );
    assert_eq!(
        eval_err(r#"@((string)context.Variables["n"])"#),
        "Unable to cast object of type 'System.Int32' to type 'System.String'."
    );
    assert_eq!(
        compile_err(r#"@{ context.Variables["x"] = 1; return 1; }"#),
        "context is read-only in expressions"
    );
    let e = Expr::compile(
        r#"@(((IResponse)context.Variables["resp"]).Body.As<JObject>()["id"].ToString())"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!e.reads_response_body());
    assert_eq!(
        e.eval(&ctx()).map(|v| v.to_display_string()),
        Ok("abc".to_string())
    );
    assert_eq!(
        ev(r#"@(((IResponse)context.Variables["resp"]).StatusCode)"#),
        Value::Int(201)
    );
    assert_eq!(
        evs(
            r#"@(((IResponse)context.Variables["resp"]).Headers.GetValueOrDefault("location", ""))"#
        ),
        "/items/abc"
    );
}

#[test]
fn strings() {
    assert_eq!(ev(r#"@("Hello".Contains("ell"))"#), Value::Bool(true));
    assert_eq!(
        ev(r#"@("Hello".StartsWith("he", StringComparison.OrdinalIgnoreCase))"#),
        Value::Bool(true)
    );
    assert_eq!(ev(r#"@("Hello".EndsWith("LO"))"#), Value::Bool(false));
    assert_eq!(
        evs(r#"@("Hello".ToLower() + "x".ToUpperInvariant())"#),
        "helloX"
    );
    assert_eq!(
        evs(r#"@("Hello".Substring(1, 3) + "Hello".Substring(3))"#),
        "elllo"
    );
    assert_eq!(
        evs(r#"@("a-b-c".Replace("-", "+").Replace('+', '/'))"#),
        "a/b/c"
    );
    assert_eq!(
        ev(r#"@("a,b;;c".Split(new[] {',', ';'}, StringSplitOptions.RemoveEmptyEntries).Length)"#),
        Value::Int(3)
    );
    assert_eq!(evs(r#"@("k=v=w".Split('=')[2])"#), "w");
    assert_eq!(evs(r#"@("a::b".Split("::")[1])"#), "b");
    assert_eq!(
        evs(r#"@("  x ".Trim() + "|" + "xxaxx".TrimStart('x') + "|" + "ab  ".TrimEnd())"#),
        "x|axx|ab"
    );
    assert_eq!(ev(r#"@("hello".Length)"#), Value::Int(5));
    assert_eq!(
        ev(r#"@("hello".IndexOf("l") + "hello".LastIndexOf('l'))"#),
        Value::Int(5)
    );
    assert_eq!(
        ev(r#"@("East US".Equals("east us", StringComparison.OrdinalIgnoreCase))"#),
        Value::Bool(true)
    );
    assert_eq!(
        ev(
            r#"@(string.IsNullOrEmpty("") && String.IsNullOrWhiteSpace(" ") && !string.IsNullOrEmpty("a"))"#
        ),
        Value::Bool(true)
    );
    assert_eq!(
        evs(r#"@(string.Format("{0}-{1:D3}-{0}", "a", 7))"#),
        "a-007-a"
    );
    assert_eq!(
        evs(r#"@(string.Join(",", new[] {"a", "b"}) + String.Concat("x", 1))"#),
        "a,bx1"
    );
    assert_eq!(
        evs(r#"@("7".PadLeft(3, '0') + "|" + "ab".PadRight(4) + "|")"#),
        "007|ab  |"
    );
    assert_eq!(evs("@(42.ToString())"), "42");
    assert_eq!(ev(r#"@("abc"[1])"#), Value::Char('b'));
    assert_eq!(
        compile_err(r#"@("x".Foo())"#),
        "unsupported method 'Foo' on string"
    );
    assert_eq!(
        compile_err(r#"@("x".Bar)"#),
        "unsupported member 'Bar' on string"
    );
    assert!(eval_err(r#"@("abc".Substring(5))"#).contains("startIndex"));
}

#[test]
fn conversions_and_encoding() {
    assert_eq!(
        ev(r#"@(int.Parse("12") + long.Parse("30"))"#),
        Value::Int(42)
    );
    assert_eq!(ev(r#"@(bool.Parse("True"))"#), Value::Bool(true));
    assert_eq!(
        ev(r#"@(Convert.ToInt32("5") + Convert.ToInt32(2.5))"#),
        Value::Int(7)
    );
    assert_eq!(evs("@(Convert.ToString(12))"), "12");
    assert_eq!(
        evs(r#"@(Convert.ToBase64String(Encoding.UTF8.GetBytes("user:pass")))"#),
        "dXNlcjpwYXNz"
    );
    assert_eq!(
        evs(r#"@(Encoding.UTF8.GetString(Convert.FromBase64String("dXNlcjpwYXNz")))"#),
        "user:pass"
    );
    assert_eq!(
        evs(r#"@(System.Text.Encoding.UTF8.GetString(System.Convert.FromBase64String("aGk=")))"#),
        "hi"
    );
    assert!(eval_err(r#"@(Convert.FromBase64String("***"))"#).contains("not a valid Base-64"));
    assert!(eval_err(r#"@(int.Parse("x"))"#).contains("not in a correct format"));
    assert_eq!(
        evs(r#"@(Uri.EscapeDataString("a b/c?d") + "|" + Uri.UnescapeDataString("a%20b"))"#),
        "a%20b%2Fc%3Fd|a b"
    );
    assert_eq!(
        evs(
            r#"@(System.Net.WebUtility.UrlEncode("a b&c") + System.Net.WebUtility.HtmlEncode("<x>"))"#
        ),
        "a+b%26c&lt;x&gt;"
    );
    assert_eq!(
        ev("@(Math.Max(3, 9) - Math.Min(3, 9) + Math.Abs(-1))"),
        Value::Int(7)
    );
    assert_eq!(ev("@((int)3.9 + (long)1)"), Value::Int(4));
    assert_eq!(ev("@((double)1 / 4)"), Value::Double(0.25));
}

#[test]
fn dates_and_timespans() {
    // 2023-11-14T22:13:20.123Z
    assert_eq!(
        evs(r#"@(DateTime.UtcNow.ToString("o"))"#),
        "2023-11-14T22:13:20.1230000Z"
    );
    assert_eq!(
        evs(r#"@(DateTime.UtcNow.ToString("u"))"#),
        "2023-11-14 22:13:20Z"
    );
    assert_eq!(
        evs(r#"@(DateTime.UtcNow.ToString("R"))"#),
        "Tue, 14 Nov 2023 22:13:20 GMT"
    );
    assert_eq!(
        evs(r#"@(DateTime.UtcNow.AddDays(1).ToString("yyyy-MM-ddTHH:mm:ssZ"))"#),
        "2023-11-15T22:13:20Z"
    );
    assert_eq!(evs("@(DateTime.UtcNow)"), "11/14/2023 22:13:20");
    assert_eq!(
        ev("@(DateTimeOffset.UtcNow.ToUnixTimeSeconds())"),
        Value::Int(1_700_000_000)
    );
    assert_eq!(
        ev("@(DateTimeOffset.FromUnixTimeMilliseconds(1000).ToUnixTimeMilliseconds())"),
        Value::Int(1000)
    );
    assert_eq!(
        ev("@((int)(DateTime.UtcNow - new DateTime(1970, 1, 1)).TotalSeconds)"),
        Value::Int(1_700_000_000)
    );
    assert_eq!(
        evs(r#"@(DateTime.Parse("2024-02-29T10:00:00Z").AddMinutes(90).ToString("s"))"#),
        "2024-02-29T11:30:00"
    );
    assert_eq!(evs("@(TimeSpan.FromSeconds(90))"), "00:01:30");
    assert_eq!(
        ev("@(TimeSpan.FromMinutes(2).TotalSeconds)"),
        Value::Double(120.0)
    );
    assert_eq!(
        ev("@(DateTime.UtcNow > DateTimeOffset.FromUnixTimeSeconds(0))"),
        Value::Bool(true)
    );
    assert_eq!(ev("@(DateTime.UtcNow.AddMonths(3).Month)"), Value::Int(2));
}

#[test]
fn json() {
    assert_eq!(
        evs(r#"@(context.Request.Body.As<JObject>()["name"].ToString())"#),
        "widget"
    );
    assert_eq!(
        evs(r#"@((string)context.Request.Body.As<JObject>(preserveContent: true)["tags"][1])"#),
        "y"
    );
    assert_eq!(
        ev(r#"@((int)context.Request.Body.As<JObject>()["n"])"#),
        Value::Int(3)
    );
    assert_eq!(
        ev(r#"@(context.Request.Body.As<JObject>().SelectToken("nested.ok"))"#),
        Value::from(serde_json::json!(true))
    );
    assert_eq!(
        ev(r#"@((bool)context.Request.Body.As<JObject>().SelectToken("nested.ok"))"#),
        Value::Bool(true)
    );
    assert_eq!(
        ev(r#"@(context.Request.Body.As<JObject>().SelectToken("tags[0]").ToString())"#),
        Value::from("x")
    );
    assert_eq!(
        ev(r#"@(context.Request.Body.As<JObject>()["missing"] == null)"#),
        Value::Bool(true)
    );
    assert_eq!(
        ev(r#"@(context.Request.Body.As<JObject>().Value<int>("n"))"#),
        Value::Int(3)
    );
    assert_eq!(
        ev(r#"@(context.Request.Body.As<JObject>().Value<string>("missing"))"#),
        Value::Null
    );
    assert_eq!(
        evs(r#"@(context.Request.Body.As<string>())"#),
        r#"{"name":"widget","tags":["x","y"],"n":3,"nested":{"ok":true}}"#
    );
    assert_eq!(ev(r#"@(JArray.Parse("[1,2,3]").Count)"#), Value::Int(3));
    assert_eq!(
        evs(
            r#"@(new JObject(new JProperty("status", "HTTP 405"), new JProperty("n", 1)).ToString())"#
        ),
        "{\n  \"status\": \"HTTP 405\",\n  \"n\": 1\n}"
    );
    assert_eq!(
        evs(
            r#"@(JObject.Parse("{\"b\":[1,{\"c\":null}],\"a\":{}}").ToString(Newtonsoft.Json.Formatting.None))"#
        ),
        r#"{"b":[1,{"c":null}],"a":{}}"#
    );
    assert_eq!(
        evs(
            r#"@{ var o = new JObject(); o["x"] = 1; o.Add("y", "z"); o["x"] = "w"; var a = new JArray(); a.Add(o); a.Add(2); return a.ToString(Formatting.None); }"#
        ),
        r#"[{"x":"w","y":"z"},2]"#
    );
    assert_eq!(
        evs(
            r#"@{ var r = JObject.Parse("{\"a\":1,\"b\":2,\"c\":3}"); foreach (var k in new [] {"a", "c"}) { r.Property(k).Remove(); } return r.ToString(Formatting.None); }"#
        ),
        r#"{"b":2}"#
    );
    assert_eq!(
        evs(r#"@(((JObject)context.Variables["obj"])["access_token"].ToString())"#),
        "tok"
    );
    assert_eq!(
        ev(r#"@((int)((JObject)context.Variables["obj"])["expires_in"])"#),
        Value::Int(3600)
    );
    assert_eq!(
        evs(r#"@(JsonConvert.SerializeObject(new { typ = "JWT", n = 1 }))"#),
        r#"{"typ":"JWT","n":1}"#
    );
    assert!(eval_err(r#"@(JObject.Parse("[1]"))"#).contains("not an object"));
    let e =
        Expr::compile("@(context.Request.Body.As<JObject>())").unwrap_or_else(|e| panic!("{e}"));
    assert!(e.reads_request_body() && !e.reads_response_body());
    let e =
        Expr::compile("@(context.Response.Body.As<string>())").unwrap_or_else(|e| panic!("{e}"));
    assert!(e.reads_response_body() && !e.reads_request_body());
}

#[test]
fn jwt_and_basic() {
    assert_eq!(
        evs(r#"@(context.Request.Headers.GetValueOrDefault("Authorization","").AsJwt()?.Subject)"#),
        "user-1"
    );
    assert_eq!(ev(r#"@("nonsense".AsJwt()?.Subject)"#), Value::Null);
    assert_eq!(
        evs(
            r#"@(context.Request.Headers.GetValueOrDefault("Authorization").AsJwt().Claims.GetValueOrDefault("aud", "-"))"#
        ),
        "a,b"
    );
    assert_eq!(
        evs(
            r#"@(context.Request.Headers.GetValueOrDefault("Authorization").AsJwt().Claims["name"][0])"#
        ),
        "Ann"
    );
    assert_eq!(
        ev(
            r#"@(context.Request.Headers.GetValueOrDefault("Authorization").AsJwt().ExpirationTime.Value.Year)"#
        ),
        Value::Int(2023)
    );
    assert_eq!(
        evs(
            r#"@("Basic dXNlcjpwYXNz".AsBasic().UserId + "/" + "Basic dXNlcjpwYXNz".AsBasic().Password)"#
        ),
        "user/pass"
    );
}

#[test]
fn linq_and_arrays() {
    assert_eq!(
        evs(
            r#"@("a=1; b=2; c=3".Split(';').Select(x => x.Trim()).Select(p => p.Split('=')).SingleOrDefault(p => p[0] == "b")?[1] ?? "none")"#
        ),
        "2"
    );
    assert_eq!(
        evs(
            r#"@("a=1".Split(';').Select(p => p.Split('=')).SingleOrDefault(p => p[0] == "zz")?[1] ?? "none")"#
        ),
        "none"
    );
    assert_eq!(
        ev(r#"@(new [] {"post", "put"}.Contains("PUT", StringComparer.OrdinalIgnoreCase))"#),
        Value::Bool(true)
    );
    assert_eq!(
        ev(r#"@(new [] {1, 2, 3}.Where(x => x > 1).Count())"#),
        Value::Int(2)
    );
    assert_eq!(
        ev(r#"@(new [] {1, 2, 3}.Any(x => x > 2) && new [] {1, 2}.All(x => x > 0))"#),
        Value::Bool(true)
    );
    assert_eq!(
        evs(r#"@("x;sap-XSRF=1;y".Split(';').FirstOrDefault(s => s.Contains("sap-XSRF")))"#),
        "sap-XSRF=1"
    );
    assert_eq!(
        ev(r#"@(Array.Exists(new [] {"a", "b"}, e => e == "b"))"#),
        Value::Bool(true)
    );
    assert_eq!(
        evs(r#"@{ var l = new List<string>() { "a" }; l.Add("b"); return string.Join("+", l); }"#),
        "a+b"
    );
    assert_eq!(
        ev(r#"@(context.Request.Body.As<JObject>()["tags"].Count())"#),
        Value::Int(2)
    );
    assert_eq!(
        ev(r#"@(context.Request.Headers["X-Multi"].First())"#),
        Value::from("a")
    );
    assert!(eval_err("@(new int[0].First())").contains("no elements"));
}

#[test]
fn guid_and_random_are_deterministic_per_request() {
    let e = Expr::compile("@(Guid.NewGuid().ToString())").unwrap_or_else(|e| panic!("{e}"));
    let a = e
        .eval(&ctx())
        .map(|v| v.to_display_string())
        .unwrap_or_default();
    assert_eq!(a.len(), 36);
    assert_eq!(&a[14..15], "4");
    assert_eq!(
        Some(a.clone()),
        e.eval(&ctx()).ok().map(|v| v.to_display_string())
    );
    let mut other = ctx();
    other.request_id = "another".into();
    assert_ne!(Some(a), e.eval(&other).ok().map(|v| v.to_display_string()));
    let two = evs("@(Guid.NewGuid().ToString() + Guid.NewGuid().ToString())");
    assert_ne!(&two[..36], &two[36..]);
    let r = ev("@(new Random(context.RequestId.GetHashCode()).Next(1, 3))");
    assert!(matches!(r, Value::Int(1 | 2)));
    assert!(matches!(
        ev("@(new Random().Next(0, 10))"),
        Value::Int(0..=9)
    ));
}

#[test]
fn null_semantics() {
    assert!(
        eval_err(r#"@(context.Request.Headers.GetValueOrDefault("nope").Length)"#)
            .contains("Object reference not set to an instance of an object")
    );
    assert_eq!(
        ev(r#"@(context.Request.Headers.GetValueOrDefault("nope")?.Length)"#),
        Value::Null
    );
    assert_eq!(
        ev(r#"@(context.Request.Headers.GetValueOrDefault("nope")?.Trim().Length ?? -1)"#),
        Value::Int(-1)
    );
    assert_eq!(ev("@((string)null == null)"), Value::Bool(true));
}

#[test]
fn unsupported_constructs_are_named() {
    assert_eq!(
        compile_err("@(XmlReader.Create(\"<a/>\"))"),
        "unsupported type 'XmlReader' (of XML only LINQ to XML is supported: XDocument, XElement)"
    );
    assert_eq!(
        compile_err("@(MD5.Create())"),
        "unsupported type 'MD5' (MD5 is not available: the gateway's crypto library, ring, has no MD5)"
    );
    // The whole construct is named, not its first unknown part (`System.IO`).
    assert_eq!(
        compile_err(r#"@(System.IO.File.ReadAllText("/etc/passwd"))"#),
        "unsupported method 'System.IO.File.ReadAllText'"
    );
    assert_eq!(
        compile_err("@(System.Environment.MachineName)"),
        "unsupported member 'System.Environment.MachineName'"
    );
    assert_eq!(
        compile_err("@(Environment.GetEnvironmentVariable(\"HOME\"))"),
        "unsupported method 'Environment.GetEnvironmentVariable'"
    );
    assert_eq!(
        compile_err("@(context.Foo)"),
        "unsupported member 'context.Foo'"
    );
    assert_eq!(
        compile_err("@(context.Request.Foo)"),
        "unsupported member 'context.Request.Foo'"
    );
    assert_eq!(
        compile_err("@((XmlDocument)null)"),
        "unsupported type 'XmlDocument' (of XML only LINQ to XML is supported: XDocument, XElement)"
    );
    assert_eq!(
        compile_err("@(x => x)"),
        "lambda expressions are only supported as arguments to LINQ methods"
    );
    assert_eq!(
        compile_err("@(typeof(string))"),
        "'typeof' is not supported"
    );
    assert_eq!(
        compile_err("@(Math.Foo(1))"),
        "unsupported method 'Math.Foo'"
    );
    assert_eq!(
        compile_err("@(undefinedName)"),
        "the name 'undefinedName' does not exist in the current context"
    );
    assert_eq!(
        compile_err("@{ switch (1) { } return 1; }"),
        "switch statements are not supported"
    );
    let e = Expr::compile("@(1 +)").err().map(|e| e.offset);
    assert_eq!(e, Some(5));
}

#[test]
fn template() {
    let t = Template::compile("plain text").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.literal(), Some("plain text"));
    let t = Template::compile("  @(1 + 1)").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.eval_string(&ctx()).ok().as_deref(), Some("2"));
    assert!(t.literal().is_none());
    let err = Template::compile("  @(1 +)").err().map(|e| e.offset);
    assert_eq!(err, Some(7));
}

#[test]
fn expression_extent_finds_the_end() {
    assert_eq!(expression_extent(r#"@(a(")") + ')')" rest"#), Some(15));
    assert_eq!(expression_extent("@{ return \"}\"; } tail"), Some(16));
    assert_eq!(expression_extent("@(unterminated"), None);
}

#[test]
fn deep_nesting_is_rejected_not_overflowed() {
    let deep = format!("@({}1{})", "(".repeat(5000), ")".repeat(5000));
    assert!(Expr::compile(&deep).is_err());
    let long = format!("@(1{})", " + 1".repeat(5000));
    assert!(Expr::compile(&long).is_err());
    let ok = format!("@(1{})", " + 1".repeat(50));
    assert_eq!(ev(&ok), Value::Int(51));
}

#[test]
fn values_are_send_sync() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Expr>();
    check::<Value>();
    check::<Template>();
    let _ = Arc::new(Value::Null);
}

/// Token soup through compile and eval: nothing may panic, evaluation is deterministic.
#[test]
fn random_token_soup_never_panics() {
    const TOKENS: &[&str] = &[
        "context",
        ".",
        "Request",
        "Headers",
        "GetValueOrDefault",
        "(",
        ")",
        "\"a\"",
        ",",
        "Variables",
        "[",
        "]",
        "(string)",
        "(int)",
        "(JObject)",
        "Body",
        "As<JObject>",
        "()",
        "Split",
        "';'",
        "Select",
        "x => x",
        "FirstOrDefault",
        "?.",
        "??",
        "?",
        ":",
        "==",
        "&&",
        "!",
        "+",
        "-",
        "*",
        "/",
        "%",
        "<",
        ">",
        "1",
        "0",
        "-1",
        "2.5",
        "true",
        "null",
        "new",
        "JObject",
        "JProperty",
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
        "while",
        "try",
        "catch",
        "throw",
        "$\"a{1}b\"",
        "@\"v\"",
        "'c'",
        "AsJwt",
        "DateTime.UtcNow",
        "AddSeconds",
        "TimeSpan.FromSeconds",
        "Guid.NewGuid()",
        "int.Parse",
        "string.Format",
        "\"{0}\"",
        "Substring",
        "Length",
        "SelectToken",
        "\"n\"",
        "List<string>",
        "Add",
        "Math.Max",
        "x",
        "++",
        "+=",
        "=",
        "<<",
        ">>",
        "9223372036854775807",
        "AddMonths",
        "PadLeft",
        "new [] {1, 2}",
        "Sum",
        "JArray.Parse(\"[1,{}]\")",
        "\"obj\"",
        "Value<int>",
        "Count",
    ];
    let mut state = 0x1234_5678_9abc_def0u64;
    let c = ctx();
    for _ in 0..3000 {
        let n = (encoding::splitmix64(&mut state) % 24) as usize;
        let mut text = String::new();
        for _ in 0..n {
            let i = (encoding::splitmix64(&mut state) % TOKENS.len() as u64) as usize;
            text.push_str(TOKENS[i]);
        }
        for src in [
            format!("@({text})"),
            format!("@{{ {text} }}"),
            format!("@{{ return {text}; }}"),
        ] {
            if let Ok(e) = Expr::compile(&src) {
                let a = e.eval(&c);
                assert_eq!(format!("{a:?}"), format!("{:?}", e.eval(&c)), "{src}");
                if let Ok(v) = a {
                    let _ = v.to_display_string();
                }
            }
        }
    }
}

#[test]
fn nesting_at_the_limit_evaluates() {
    let mut depth = 1;
    loop {
        let src = format!("@({}1{})", "(int)(".repeat(depth), ")".repeat(depth));
        match Expr::compile(&src) {
            Ok(e) => assert_eq!(e.eval(&ctx()), Ok(Value::Int(1))),
            Err(_) => break,
        }
        depth += 1;
    }
    assert!(depth > 20, "only {depth} levels");
}

#[test]
fn documented_examples_compile_and_run() {
    let examples = [
        r#"@{
            int total = 0;
            void Add(JObject o, string name, int n) { o.Add(name, n); total += n; }
            var result = new JObject();
            Add(result, "a", 1);
            Add(result, "b", 2);
            result.Add("total", total);
            return result.ToString();
        }"#,
        r#"@{
            var key = Convert.FromBase64String((string)context.Variables["accessKey"]);
            using (var hmac = new HMACSHA256(key)) {
                return Convert.ToBase64String(hmac.ComputeHash(Encoding.UTF8.GetBytes("text to sign")));
            }
        }"#,
        r#"@{
            var total = 0;
            foreach (var p in context.Request.Headers.GetValueOrDefault("X-Ids", "").Split(',')) {
                int n;
                if (int.TryParse(p, out n)) { total += n; }
            }
            return total;
        }"#,
        r#"@(context.Response.StatusCode == 401 || context.Response.StatusCode == 403)"#,
        r#"@("Bearer " + (string)context.Variables["s"])"#,
        r#"@(context.Request.Headers.GetValueOrDefault("Authorization","").AsJwt()?.Subject ?? "anonymous")"#,
        r#"@(context.Request.Url.Path.Split('/').Last().ToLowerInvariant())"#,
        r#"@(string.Format("{0}/{1}", (string)context.Variables["s"], (string)context.Variables["s"]))"#,
        r#"@{ var user = "u"; var pass = "p"; return "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{pass}")); }"#,
        r#"@(DateTime.UtcNow.AddSeconds(300).ToString("R"))"#,
        r#"@((int)(DateTime.UtcNow - new DateTime(1970, 1, 1)).TotalSeconds)"#,
        r#"@((string)((IResponse)context.Variables["resp"]).Body.As<JObject>()["id"])"#,
        r#"@{
            var body = context.Response.Body.As<JObject>();
            body.Property("id").Remove();
            return body.ToString();
        }"#,
        r#"@(context.Request.Headers.GetValueOrDefault("cookie", "").Split(';')
            .Select(c => c.Trim().Split('=')).FirstOrDefault(c => c[0] == "session")?[1] ?? "")"#,
        r#"@{ TimeSpan t; return TimeSpan.TryParse("00:01:00", out t) ? t.TotalSeconds : -1; }"#,
        r#"@{ var d = new Dictionary<string, string> { { "a", "b" } }; d.Add("c", "d"); var o = ""; foreach (var kv in d) { o += kv.Key + kv.Value; } return o; }"#,
        r#"@{ var o = new JObject(); o["a"] = new JObject(); o["a"]["b"] = 1; return o.ToString(Formatting.None); }"#,
    ];
    let expected = [
        "{\n  \"a\": 1,\n  \"b\": 2,\n  \"total\": 3\n}",
        "JSCFdQh6hHJ7yP702Il9CxR3FA6StoD2GMirIYdeOGU=",
        "0",
        "False",
        "Bearer text",
        "user-1",
        "items",
        "text/text",
        "Basic dTpw",
        "Tue, 14 Nov 2023 22:18:20 GMT",
        "1700000000",
        "abc",
        "{}",
        "",
        "60",
        "abcd",
        r#"{"a":{"b":1}}"#,
    ];
    for (src, want) in examples.iter().zip(expected) {
        assert_eq!(evs(src), want, "{src}");
    }
}
