use super::*;
use crate::policy::context::{Context, Response};
use crate::policy::xml;

fn ctx(body: &str, content_type: &str) -> Context {
    let mut c = Context::default();
    c.request.method = "POST".into();
    c.request.url.scheme = "https".into();
    c.request.url.host = "api.example.com".into();
    c.request.url.port = 443;
    c.request.url.path = "/orders/42".into();
    c.request.url.query = vec![("expand".into(), "lines".into())];
    c.request.original_url = c.request.url.clone();
    c.request.headers.append("Content-Type", content_type);
    c.request.headers.append("X-Tenant", "contoso");
    c.request.ip_address = "203.0.113.9".into();
    c.request.matched_parameters = vec![("id".into(), "42".into())];
    c.request.body = Some(body.to_string().into());
    c.variables
        .insert("region".into(), crate::expr::Value::Str("west".into()));
    c
}

fn render(template: &str, c: &Context, target: Target) -> Result<String, Failure> {
    let t = LiquidTemplate::parse(template)
        .map_err(|(l, m)| Failure::new("parse", format!("{l}: {m}")))?;
    t.render(c, target)
}

#[test]
fn json_body_and_context_members() {
    let c = ctx(
        r#"{"customer":{"name":"Ada","purchase":{"identifier":"P-1","lines":[{"sku":"a"},{"sku":"b"}]}}}"#,
        "application/json",
    );
    let out = render(
        "{{body.customer.name}}|{{body.customer.purchase.identifier}}|\
         {% for l in body.customer.purchase.lines %}{{l.sku}}{% endfor %}|\
         {{context.Request.Method}} {{context.Request.Url.Path}} {{context.Request.Url.Host}} \
         {{context.Request.Url.Port}} {{context.Request.Url.Query.expand}}|\
         {{context.Request.Headers.X-Tenant}}|{{context.Request.MatchedParameters.id}}|\
         {{context.Request.IpAddress}}|{{context.Variables.region}}|{{context.Request.Url.ToString}}",
        &c,
        Target::Request,
    )
    .unwrap();
    assert_eq!(
        out,
        "Ada|P-1|ab|POST /orders/42 api.example.com 443 lines|contoso|42|203.0.113.9|west|\
         https://api.example.com/orders/42?expand=lines"
    );
}

#[test]
fn pascal_filters() {
    let c = ctx(
        r#"{"n":"ada lovelace","price":1234.5,"tags":["b","a","b"]}"#,
        "text/json",
    );
    let out = render(
        "{{body.n | Upcase}}|{{body.missing | Default: \"none\"}}|{{body.n | Capitalize}}|\
         {{body.tags | Uniq | Sort | Join: \",\"}}|{{body.price | Currency}}|{{body.n | Size}}|\
         {{ \"<a>\" | H }}|{{ 7 | DividedBy: 2 }}|{{ body.n | TruncateWords: 1 }}",
        &c,
        Target::Request,
    )
    .unwrap();
    assert_eq!(
        out,
        "ADA LOVELACE|none|Ada lovelace|a,b|$1,234.50|12|&lt;a&gt;|3|ada..."
    );
}

#[test]
fn date_filter_takes_dotnet_formats() {
    let c = ctx(
        r#"{"start":"2024-03-05T07:08:09Z","text":"soon"}"#,
        "application/json",
    );
    let out = render(
        "{{body.start | Date: \"yyyyMMddTHH:mm:ssZ\"}}|{{body.start | Date: \"dd/MM/yyyy\"}}|{{body.text | Date: \"yyyy\"}}",
        &c,
        Target::Request,
    )
    .unwrap();
    assert_eq!(out, "20240305T07:08:09Z|05/03/2024|soon");
}

#[test]
fn response_target_reads_the_response() {
    let mut c = ctx("{}", "application/json");
    let mut r = Response {
        status: 201,
        reason: "Created".into(),
        ..Default::default()
    };
    r.headers.append("Content-Type", "application/json");
    r.headers.append("Location", "/orders/42");
    r.body = Some(r#"{"id":42}"#.into());
    c.response = Some(r);
    let out = render(
        "{{body.id}} {{context.Response.StatusCode}} {{context.Response.Headers.Location}}",
        &c,
        Target::Response,
    )
    .unwrap();
    assert_eq!(out, "42 201 /orders/42");
}

#[test]
fn non_json_body_is_text_and_no_body_is_nil() {
    let c = ctx("plain words", "text/plain");
    assert_eq!(
        render("[{{body}}]", &c, Target::Request).unwrap(),
        "[plain words]"
    );
    let mut c = ctx("", "application/json");
    c.request.body = None;
    assert_eq!(
        render("[{{body | Default: \"empty\"}}]", &c, Target::Request).unwrap(),
        "[empty]"
    );
}

#[test]
fn malformed_json_body_is_a_failure() {
    let c = ctx("{not json", "application/json");
    let f = render("{{body.a}}", &c, Target::Request).unwrap_err();
    assert_eq!(f.reason, "LiquidTemplateError");
    assert!(f.message.contains("not valid JSON"), "{}", f.message);
}

#[test]
fn xml_inside_the_element_is_part_of_the_template() {
    let doc = "<set-body template=\"liquid\">\n    <soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
               <soap:Body><Get><cust>{{body.cust}}</cust></Get></soap:Body></soap:Envelope>\n</set-body>";
    let el = xml::parse(doc).unwrap();
    let t = LiquidTemplate::compile(&el).unwrap();
    let c = ctx(r#"{"cust":"C&1"}"#, "application/json");
    let out = t.render(&c, Target::Request).unwrap();
    assert_eq!(
        out.trim(),
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
         <soap:Body><Get><cust>C&1</cust></Get></soap:Body></soap:Envelope>"
    );
}

#[test]
fn a_bad_template_is_a_compile_error_with_its_line() {
    let doc = "<policies>\n<set-body template=\"liquid\">\nline one\n{{ body.a | upcase }}\n</set-body>\n</policies>";
    let root = xml::parse(doc).unwrap();
    let el = root.child("set-body").unwrap();
    let e = LiquidTemplate::compile(el).unwrap_err();
    assert_eq!(e.policy, "set-body");
    assert!(
        e.message.contains("unknown filter 'upcase'"),
        "{}",
        e.message
    );
    assert!(e.message.contains("line 3"), "{}", e.message);
    assert_eq!(e.pos.line, 4);

    let doc = "<set-body template=\"liquid\">\n{% if body.a %}\nunclosed\n</set-body>";
    let el = xml::parse(doc).unwrap();
    let e = LiquidTemplate::compile(&el).unwrap_err();
    assert!(
        e.message.starts_with("liquid template line"),
        "{}",
        e.message
    );

    let doc = "<set-body template=\"liquid\">{{ body.a </set-body>";
    let el = xml::parse(doc).unwrap();
    assert!(LiquidTemplate::compile(&el).is_err());
}

#[test]
fn filter_arguments_are_checked_at_compile() {
    assert!(LiquidTemplate::parse("{{ 1 | Currency: \"fr-FR\" }}").is_err());
    assert!(LiquidTemplate::parse("{{ 1 | Currency: \"en-US\" }}").is_ok());
    assert!(LiquidTemplate::parse("{{ 1 | Date: \"yyyy\", \"x\" }}").is_err());
}

#[test]
fn render_errors_name_what_failed() {
    let c = ctx(r#"{"lines":[{"sku":"a"}]}"#, "application/json");
    let f = render(
        "{% for l in body.lines %}{{ l.qty }}{% endfor %}",
        &c,
        Target::Request,
    )
    .unwrap_err();
    assert_eq!(f.reason, "LiquidTemplateError");
    assert_eq!(
        f.message,
        "Unknown index; requested index=qty; in {% for l in body[\"lines\"]  %}"
    );
}

#[test]
fn dictionaries_iterate_as_key_value_pairs_and_index_by_name() {
    let c = ctx("{}", "application/json");
    let out = render(
        "{% for h in context.Request.Headers %}{{ h.Key }}={{ h.Value }};{% endfor %}|\
         {{ context.Request.Headers[\"x-tenant\"] }}|{{ context.Request.Headers.size }}|\
         {% for p in context.Request.MatchedParameters %}{{ p.Key }}:{{ p.Value }}{% endfor %}|\
         {% assign region = context.Variables[\"region\"] %}{{ region | Upcase }}",
        &c,
        Target::Request,
    )
    .unwrap();
    assert_eq!(
        out,
        "Content-Type=application/json;X-Tenant=contoso;|contoso|2|id:42|WEST"
    );
}

#[test]
fn parse_date_reads_body_dates_as_dotnet_does() {
    let c = ctx(
        r#"{"at":"2024-03-05T07:08:09Z","day":"2024-03-05"}"#,
        "application/json",
    );
    let on = "<set-body template=\"liquid\">{{body.at}}|{{body.day}}|{{body.at | Date: \"yyyy\"}}</set-body>";
    let t = LiquidTemplate::compile(&xml::parse(on).unwrap()).unwrap();
    assert_eq!(
        t.render(&c, Target::Request).unwrap(),
        "03/05/2024 07:08:09|2024-03-05|2024"
    );
    let off = "<set-body template=\"liquid\" parse-date=\"false\">{{body.at}}</set-body>";
    let t = LiquidTemplate::compile(&xml::parse(off).unwrap()).unwrap();
    assert_eq!(
        t.render(&c, Target::Request).unwrap(),
        "2024-03-05T07:08:09Z"
    );
    let bad = "<set-body template=\"liquid\" parse-date=\"maybe\">x</set-body>";
    assert!(LiquidTemplate::compile(&xml::parse(bad).unwrap()).is_err());
}
