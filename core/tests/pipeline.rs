//! The policy pipeline driven by hand: scopes and `<base />`, control flow,
//! errors, suspension for the backend, calls, caches and timers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_core::config::ServiceUrl;
use portcullis_core::http::Response;
use portcullis_core::machine::Machine;
use portcullis_core::policy::compile::{compile_document, CompileEnv};
use portcullis_core::policy::context::Context;
use portcullis_core::policy::error::Failure;
use portcullis_core::policy::pipeline::{
    Chain, Env, ForwardFailure, Pipeline, PipelineOutput, Step,
};
use portcullis_core::policy::program::{Document, Level};
use portcullis_core::policy::store::LocalStore;
use std::cell::RefCell;

fn doc(level: Level, xml: &str) -> Arc<Document> {
    doc_env(level, xml, &CompileEnv::default())
}

fn doc_env(level: Level, xml: &str, env: &CompileEnv<'_>) -> Arc<Document> {
    match compile_document(xml, level, env) {
        Ok(d) => Arc::new(d),
        Err(e) => panic!("compile failed: {e}"),
    }
}

fn chain(docs: [Option<&str>; 4]) -> Chain {
    let levels = [Level::Global, Level::Product, Level::Api, Level::Operation];
    let mut c = Chain::default();
    for (i, d) in docs.iter().enumerate() {
        c.docs[i] = d.map(|x| doc(levels[i], x));
    }
    c
}

fn ctx() -> Context {
    let mut c = Context::default();
    c.request.method = "GET".into();
    c.request.url.scheme = "http".into();
    c.request.url.host = "backend".into();
    c.request.url.port = 80;
    c.request.url.path = "/base/items/7".into();
    c.request.base_path = "/base".into();
    c.request.headers.append("Host", "gw.example");
    c.request.headers.append("X-Kind", "a");
    c.request.ip_address = "10.1.2.3".into();
    c.request.matched_parameters = vec![("id".into(), "7".into())];
    c
}

/// Drives pipelines as the connection does, answering their store requests
/// (and applying their store writes) from one local store.
struct Harness {
    store: RefCell<LocalStore>,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        Harness {
            store: RefCell::new(LocalStore::default()),
            now: Instant::now(),
        }
    }

    /// Runs to the next step that is not a store request.
    fn run(&self, p: &mut Pipeline, c: &mut Context) -> Step {
        let none = |_: &str| -> Option<&ServiceUrl> { None };
        let env = Env {
            now: self.now,
            backend: &none,
            tls: &portcullis_core::policy::auth_cert::NoTls,
        };
        loop {
            let step = p.run(c, &env);
            if let Some(writes) = p.side.take_store_writes(self.now, 0) {
                self.store.borrow_mut().answer(&writes);
            }
            match step {
                Step::Store(request) => {
                    let answer = self.store.borrow_mut().answer(&request);
                    p.store_done(c, answer);
                }
                step => return step,
            }
        }
    }
}

fn backend_ok(c: &mut Context, body: &str) {
    let mut r = Response {
        status: 200,
        reason: "OK".into(),
        ..Default::default()
    };
    r.headers.append("Content-Type", "text/plain");
    r.body = Some(body.to_string().into());
    c.response = Some(r);
}

fn response(c: &Context) -> &Response {
    c.response.as_ref().expect("a response")
}

/// Runs a request through: forwards get `backend_ok`, ends at Respond.
fn run_through(h: &Harness, p: &mut Pipeline, c: &mut Context) -> usize {
    let mut forwards = 0;
    loop {
        match h.run(p, c) {
            Step::Forward(_) => {
                forwards += 1;
                backend_ok(c, "from backend");
                p.forward_done(c, Ok(()));
            }
            Step::Respond => return forwards,
            other => panic!("unexpected step {other:?}"),
        }
    }
}

const APPEND: &str =
    r#"<set-header name="X-Order" exists-action="append"><value>LEVEL</value></set-header>"#;

fn scope_doc(level: &str, inbound_base: bool) -> String {
    let set = APPEND.replace("LEVEL", level);
    let base = if inbound_base { "<base />" } else { "" };
    format!(
        "<policies><inbound>{base}{set}</inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>"
    )
}

#[test]
fn base_runs_the_parent_scope_at_its_place() {
    let g = scope_doc("global", true);
    let p = scope_doc("product", true);
    let a = scope_doc("api", true);
    let o = scope_doc("operation", true);
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([Some(&g), Some(&p), Some(&a), Some(&o)]));
    let mut c = ctx();
    assert_eq!(run_through(&h, &mut pl, &mut c), 1);
    let order: Vec<&str> = c.request.headers.get_all("X-Order").collect();
    assert_eq!(order, ["global", "product", "api", "operation"]);
}

#[test]
fn a_section_without_base_does_not_inherit() {
    let g = scope_doc("global", true);
    let a = scope_doc("api", false);
    let o = scope_doc("operation", true);
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([Some(&g), None, Some(&a), Some(&o)]));
    let mut c = ctx();
    run_through(&h, &mut pl, &mut c);
    let order: Vec<&str> = c.request.headers.get_all("X-Order").collect();
    assert_eq!(order, ["api", "operation"]);
}

#[test]
fn base_after_own_policies_runs_the_parent_last() {
    let g = scope_doc("global", true);
    let set = APPEND.replace("LEVEL", "api");
    let a = format!("<policies><inbound>{set}<base /></inbound></policies>");
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([Some(&g), None, Some(&a), None]));
    let mut c = ctx();
    run_through(&h, &mut pl, &mut c);
    let order: Vec<&str> = c.request.headers.get_all("X-Order").collect();
    assert_eq!(order, ["api", "global"]);
}

#[test]
fn a_backend_section_without_forward_request_answers_200_without_calling() {
    let a = "<policies><inbound /><backend /><outbound /><on-error /></policies>";
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    assert_eq!(run_through(&h, &mut pl, &mut c), 0);
    assert_eq!(response(&c).status, 200);
}

#[test]
fn choose_takes_the_first_true_branch() {
    let a = r#"<policies><inbound>
      <choose>
        <when condition="@(context.Request.Headers.GetValueOrDefault(&quot;X-Kind&quot;, &quot;&quot;) == &quot;b&quot;)">
          <set-header name="X-Branch" exists-action="override"><value>b</value></set-header>
        </when>
        <when condition="@(context.Request.Headers.GetValueOrDefault("X-Kind", "") == "a")">
          <set-header name="X-Branch" exists-action="override"><value>a</value></set-header>
        </when>
        <otherwise>
          <set-header name="X-Branch" exists-action="override"><value>other</value></set-header>
        </otherwise>
      </choose>
    </inbound></policies>"#;
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    run_through(&h, &mut pl, &mut c);
    assert_eq!(c.request.headers.get("X-Branch"), Some("a"));

    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    c.request.headers.set("X-Kind", "z");
    run_through(&h, &mut pl, &mut c);
    assert_eq!(c.request.headers.get("X-Branch"), Some("other"));
}

#[test]
fn return_response_skips_backend_and_outbound() {
    let a = r#"<policies>
      <inbound><return-response>
        <set-status code="403" reason="Nope" />
        <set-header name="X-Why" exists-action="override"><value>policy</value></set-header>
        <set-body>denied</set-body>
      </return-response></inbound>
      <outbound><set-header name="X-Out" exists-action="override"><value>1</value></set-header></outbound>
    </policies>"#;
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    assert_eq!(run_through(&h, &mut pl, &mut c), 0);
    let r = response(&c);
    assert_eq!((r.status, r.reason.as_str()), (403, "Nope"));
    assert_eq!(r.headers.get("X-Why"), Some("policy"));
    assert_eq!(r.headers.get("X-Out"), None);
    assert_eq!(r.body.as_deref(), Some(&b"denied"[..]));
}

#[test]
fn outbound_changes_the_backend_response() {
    let a = r#"<policies><inbound /><backend><base /></backend><outbound>
      <set-header name="X-Out" exists-action="override"><value>@(context.Response.StatusCode.ToString())</value></set-header>
      <find-and-replace from="backend" to="gateway" />
      <set-status code="201" reason="Made" />
    </outbound></policies>"#;
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    run_through(&h, &mut pl, &mut c);
    let r = response(&c);
    assert_eq!(r.status, 201);
    assert_eq!(r.headers.get("X-Out"), Some("200"));
    assert_eq!(r.body.as_deref(), Some(&b"from gateway"[..]));
}

#[test]
fn a_failing_policy_goes_to_on_error_with_last_error() {
    let a = r#"<policies>
      <inbound>
        <check-header name="X-Token" failed-check-httpcode="401" failed-check-error-message="token missing" id="need-token" />
        <set-header name="X-Never" exists-action="override"><value>1</value></set-header>
      </inbound>
      <on-error>
        <set-header name="X-Error" exists-action="override">
          <value>@(context.LastError.Source + "|" + context.LastError.Reason + "|" + context.LastError.Section + "|" + context.LastError.Scope + "|" + context.LastError.PolicyId)</value>
        </set-header>
      </on-error>
    </policies>"#;
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    assert_eq!(run_through(&h, &mut pl, &mut c), 0);
    let r = response(&c);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.headers.get("X-Error"),
        Some("check-header|HeaderNotFound|inbound|api|need-token")
    );
    assert_eq!(c.request.headers.get("X-Never"), None);
    let le = c.last_error.as_ref().expect("last error");
    assert_eq!(le.message, "token missing");
    assert_eq!(le.path, "check-header[1]");
}

#[test]
fn a_backend_failure_goes_to_on_error() {
    let a = r#"<policies><inbound /><backend><base /></backend><outbound />
      <on-error><return-response><set-status code="503" reason="Down" /><set-body>@(context.LastError.Reason)</set-body></return-response></on-error>
    </policies>"#;
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    assert!(matches!(h.run(&mut pl, &mut c), Step::Forward(_)));
    pl.forward_done(
        &mut c,
        Err(ForwardFailure {
            reason: "BackendConnectionFailure",
            message: "refused".into(),
            status: 502,
        }),
    );
    assert_eq!(h.run(&mut pl, &mut c), Step::Respond);
    let r = response(&c);
    assert_eq!(r.status, 503);
    assert_eq!(r.body.as_deref(), Some(&b"BackendConnectionFailure"[..]));
    assert_eq!(
        c.last_error.as_ref().map(|e| e.source.as_str()),
        Some("forward-request")
    );
}

#[test]
fn without_on_error_the_prepared_response_is_sent() {
    let a = r#"<policies><inbound><ip-filter action="allow"><address>192.0.2.1</address></ip-filter></inbound></policies>"#;
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    run_through(&h, &mut pl, &mut c);
    assert_eq!(response(&c).status, 403);
}

#[test]
fn retry_repeats_the_backend_call_with_waits() {
    let a = r#"<policies><inbound /><backend>
      <retry condition="@(context.Response.StatusCode >= 500)" count="3" interval="2" first-fast-retry="true">
        <forward-request />
      </retry>
    </backend><outbound /></policies>"#;
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    let mut attempts = 0;
    let mut sleeps = Vec::new();
    loop {
        match h.run(&mut pl, &mut c) {
            Step::Forward(_) => {
                attempts += 1;
                let status = if attempts < 3 { 503 } else { 200 };
                c.response = Some(Response {
                    status,
                    ..Default::default()
                });
                pl.forward_done(&mut c, Ok(()));
            }
            Step::Sleep(at) => {
                sleeps.push(at.duration_since(h.now));
                // The interval is the machine's timer: not over a moment early.
                assert_eq!(pl.poll_timeout(), Some(at));
                pl.handle_timeout(at - Duration::from_millis(1));
                assert_eq!(pl.poll_timeout(), Some(at));
                pl.handle_timeout(at);
                assert_eq!(pl.poll_timeout(), None);
            }
            Step::Respond => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(attempts, 3);
    // The first retry is immediate, the second waits the interval.
    assert_eq!(sleeps, [Duration::from_secs(2)]);
    assert_eq!(response(&c).status, 200);
}

#[test]
fn retry_gives_up_after_count() {
    let a = r#"<policies><backend>
      <retry condition="@(context.Response.StatusCode == 503)" count="2" interval="0">
        <forward-request />
      </retry>
    </backend></policies>"#;
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    let mut attempts = 0;
    loop {
        match h.run(&mut pl, &mut c) {
            Step::Forward(_) => {
                attempts += 1;
                c.response = Some(Response {
                    status: 503,
                    ..Default::default()
                });
                pl.forward_done(&mut c, Ok(()));
            }
            Step::Respond => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(attempts, 3, "the first attempt and two retries");
}

#[test]
fn send_request_suspends_and_stores_the_response() {
    let a = r#"<policies><inbound>
      <send-request mode="new" response-variable-name="auth" timeout="5" ignore-error="false">
        <set-url>https://auth.example/check</set-url>
        <set-method>POST</set-method>
        <set-header name="X-Id" exists-action="override"><value>@(context.Request.IpAddress)</value></set-header>
        <set-body>hello</set-body>
      </send-request>
      <set-header name="X-Auth" exists-action="override">
        <value>@(((IResponse)context.Variables["auth"]).StatusCode.ToString())</value>
      </set-header>
    </inbound></policies>"#;
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    let Step::Call(req) = h.run(&mut pl, &mut c) else {
        panic!("expected a call");
    };
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "https://auth.example/check");
    assert_eq!(req.timeout, Duration::from_secs(5));
    assert!(req.headers.contains(&("X-Id".into(), "10.1.2.3".into())));
    assert_eq!(&req.body[..], b"hello");
    pl.call_done(
        &mut c,
        Ok(Response {
            status: 204,
            ..Default::default()
        }),
    );
    assert!(matches!(h.run(&mut pl, &mut c), Step::Forward(_)));
    assert_eq!(c.request.headers.get("X-Auth"), Some("204"));
}

#[test]
fn send_request_failure_goes_to_on_error_unless_ignored() {
    let doc = |ignore: &str| {
        format!(
            r#"<policies><inbound>
      <send-request mode="new" response-variable-name="r" ignore-error="{ignore}"><set-url>http://x.example/</set-url></send-request>
      <set-header name="X-Null" exists-action="override"><value>@(context.Variables["r"] == null ? "null" : "set")</value></set-header>
    </inbound><on-error><set-status code="599" reason="Call failed" /></on-error></policies>"#
        )
    };
    let h = Harness::new();
    for (ignore, status) in [("true", None), ("false", Some(599))] {
        let d = doc(ignore);
        let mut pl = Pipeline::new(chain([None, None, Some(&d), None]));
        let mut c = ctx();
        assert!(matches!(h.run(&mut pl, &mut c), Step::Call(_)));
        pl.call_done(&mut c, Err(Failure::new("Timeout", "too slow")));
        match h.run(&mut pl, &mut c) {
            Step::Forward(_) => {
                assert_eq!(status, None);
                assert_eq!(c.request.headers.get("X-Null"), Some("null"));
            }
            Step::Respond => assert_eq!(Some(response(&c).status), status),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn cache_lookup_hit_skips_the_backend_and_runs_outbound() {
    let a = r#"<policies>
      <inbound><cache-lookup vary-by-developer="false" vary-by-developer-groups="false"><vary-by-query-parameter>v</vary-by-query-parameter></cache-lookup></inbound>
      <backend><base /></backend>
      <outbound><cache-store duration="60" /><set-header name="X-Out" exists-action="override"><value>1</value></set-header></outbound>
    </policies>"#;
    let h = Harness::new();
    // First request: a miss, the backend answers, the response is stored.
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    assert!(matches!(h.run(&mut pl, &mut c), Step::Forward(_)));
    assert_eq!(pl.cache_status().as_str(), "miss");
    backend_ok(&mut c, "cached body");
    pl.forward_done(&mut c, Ok(()));
    assert_eq!(h.run(&mut pl, &mut c), Step::Respond);
    assert_eq!(h.store.borrow().cache.len(), 1, "the response was stored");
    let bytes = h.store.borrow().cache.bytes();

    // Second request: a hit; no forward, outbound runs, nothing stored again.
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    assert_eq!(h.run(&mut pl, &mut c), Step::Respond);
    assert_eq!(pl.cache_status().as_str(), "hit");
    let r = response(&c);
    assert_eq!(r.body.as_deref(), Some(&b"cached body"[..]));
    assert_eq!(r.headers.get("X-Out"), Some("1"));
    assert_eq!(
        h.store.borrow().cache.bytes(),
        bytes,
        "nothing stored again"
    );
}

#[test]
fn rate_limit_by_key_refuses_over_the_limit() {
    let a = r#"<policies><inbound>
      <rate-limit-by-key calls="2" renewal-period="60" counter-key="@(context.Request.IpAddress)" remaining-calls-header-name="X-Left" />
    </inbound></policies>"#;
    let h = Harness::new();
    let d = chain([None, None, Some(a), None]);
    let mut statuses = Vec::new();
    let mut left = Vec::new();
    for _ in 0..3 {
        let mut pl = Pipeline::new(d.clone());
        let mut c = ctx();
        run_through(&h, &mut pl, &mut c);
        let r = response(&c);
        statuses.push(r.status);
        left.push(r.headers.get("X-Left").map(str::to_string));
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(left[0].as_deref(), Some("1"));
    assert_eq!(left[1].as_deref(), Some("0"));
}

#[test]
fn fragments_and_named_values_are_resolved_at_compile_time() {
    let mut env = CompileEnv::default();
    env.named_values.insert("greeting", ("hello", false));
    env.fragments.insert(
        "common",
        r#"<fragment><set-header name="X-Frag" exists-action="override"><value>{{greeting}}</value></set-header></fragment>"#,
    );
    let a = doc_env(
        Level::Api,
        r#"<policies><inbound><include-fragment fragment-id="common" /></inbound></policies>"#,
        &env,
    );
    let mut c2 = Chain::default();
    c2.docs[2] = Some(a);
    let h = Harness::new();
    let mut pl = Pipeline::new(c2);
    let mut c = ctx();
    run_through(&h, &mut pl, &mut c);
    assert_eq!(c.request.headers.get("X-Frag"), Some("hello"));
}

#[test]
fn compile_errors_name_the_policy_line_and_reason() {
    let env = CompileEnv::default();
    let err = |xml: &str| match compile_document(xml, Level::Api, &env) {
        Ok(_) => panic!("compiled: {xml}"),
        Err(e) => e,
    };
    let e = err("<policies>\n  <inbound>\n    <frobnicate />\n  </inbound>\n</policies>");
    assert_eq!((e.pos.line, e.policy.as_str()), (3, "frobnicate"));
    assert!(e.message.contains("unsupported policy"), "{e}");
    let e = err("<policies><inbound>\n<rate-limit renewal-period=\"10\" /></inbound></policies>");
    assert_eq!((e.pos.line, e.policy.as_str()), (2, "rate-limit"));
    let e = err("<policies><inbound><set-header name=\"x\"><value>{{missing}}</value></set-header></inbound></policies>");
    assert!(e.message.contains("named value 'missing'"), "{e}");
    let e = err(
        "<policies><inbound><choose><when condition=\"@(1 +)\"/></choose></inbound></policies>",
    );
    assert_eq!(e.policy, "when");
    let e = err("<policies><inbound><authentication-managed-identity resource=\"x\" /></inbound></policies>");
    assert!(e.message.contains("Azure"), "{e}");
    let e = err("<policies><outbound><forward-request /></outbound></policies>");
    assert!(e.message.contains("not allowed in <outbound>"), "{e}");
    let e =
        err("<policies><inbound><include-fragment fragment-id=\"nope\" /></inbound></policies>");
    assert!(e.message.contains("'nope' is not defined"), "{e}");
}

#[test]
fn an_unknown_child_element_is_a_compile_error_naming_it() {
    let env = CompileEnv::default();
    let err = |xml: &str| match compile_document(xml, Level::Api, &env) {
        Ok(_) => panic!("compiled: {xml}"),
        Err(e) => e,
    };
    // Inside a text element, at any depth, in a policy without children, inside a
    // policy nested in send-request or return-response: each names the element,
    // its line and its parent.
    let cases = [
        ("<set-header name=\"x\">\n<value>a<frob/></value></set-header>", "set-header", "frob", "value"),
        ("<rewrite-uri template=\"/x\">\n<frob/></rewrite-uri>", "rewrite-uri", "frob", "rewrite-uri"),
        ("<set-body>\n<frob>x</frob>{}</set-body>", "set-body", "frob", "set-body"),
        ("<set-variable name=\"a\" value=\"1\">\n<value>x</value></set-variable>", "set-variable", "value", "set-variable"),
        ("<return-response><set-status code=\"200\"/>\n<set-header name=\"a\"><value>1<x/></value></set-header></return-response>", "return-response", "x", "value"),
        ("<send-request mode=\"new\" response-variable-name=\"r\"><set-url>https://a.example/</set-url>\n<set-method>GET<m/></set-method></send-request>", "send-request", "m", "set-method"),
    ];
    for (policy, name, child, parent) in cases {
        let xml = format!("<policies><inbound>{policy}</inbound></policies>");
        let e = err(&xml);
        assert_eq!((e.pos.line, e.policy.as_str()), (2, name), "{e}");
        assert_eq!(
            e.message,
            format!("unexpected element <{child}> inside <{parent}>"),
            "{xml}"
        );
    }
    // Known children still compile.
    compile_document(
        "<policies><inbound><set-header name=\"x\"><value>a</value><value>b</value></set-header></inbound></policies>",
        Level::Api,
        &env,
    )
    .expect("compiles");
}

#[test]
fn secret_named_values_do_not_appear_in_errors() {
    let mut env = CompileEnv::default();
    env.named_values.insert("secret", ("hunter2-hunter2", true));
    let xml = r#"<policies><inbound><set-status code="{{secret}}" /></inbound></policies>"#;
    let e = compile_document(xml, Level::Api, &env).expect_err("bad status");
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn transformation_policies_change_the_request() {
    let a = r#"<policies><inbound>
      <set-variable name="tier" value="@(context.Request.Headers.GetValueOrDefault("X-Kind", "none").ToUpper())" />
      <set-header name="X-Tier" exists-action="override"><value>@((string)context.Variables["tier"])</value></set-header>
      <set-header name="X-Kind" exists-action="delete" />
      <set-header name="Host" exists-action="skip"><value>ignored</value></set-header>
      <set-query-parameter name="page" exists-action="override"><value>2</value></set-query-parameter>
      <set-query-parameter name="tag" exists-action="append"><value>a</value><value>b</value></set-query-parameter>
      <rewrite-uri template="/v2/things/{id}?src=gw" />
      <set-method>PUT</set-method>
      <set-body>@("{\"tier\":\"" + (string)context.Variables["tier"] + "\"}")</set-body>
      <authentication-basic username="user" password="p@ss" />
    </inbound></policies>"#;
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    c.request.url.query = vec![("page".into(), "1".into()), ("keep".into(), "yes".into())];
    assert!(matches!(h.run(&mut pl, &mut c), Step::Forward(_)));
    let r = &c.request;
    assert_eq!(r.headers.get("X-Tier"), Some("A"));
    assert_eq!(r.headers.get("X-Kind"), None);
    assert_eq!(r.headers.get("Host"), Some("gw.example"));
    assert_eq!(r.method, "PUT");
    assert_eq!(r.url.path, "/base/v2/things/7");
    // The template's own query first, then the parameters it did not name.
    assert_eq!(r.url.query_string(), "?src=gw&page=2&keep=yes&tag=a&tag=b");
    assert_eq!(r.body.as_deref(), Some(&br#"{"tier":"A"}"#[..]));
    assert_eq!(r.headers.get("Authorization"), Some("Basic dXNlcjpwQHNz"));
}

#[test]
fn set_backend_service_points_the_request_elsewhere() {
    let a = r#"<policies><inbound><set-backend-service base-url="https://other.example:8443/api" /></inbound></policies>"#;
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    assert!(matches!(h.run(&mut pl, &mut c), Step::Forward(_)));
    let u = &c.request.url;
    assert_eq!(
        (u.scheme.as_str(), u.host.as_str(), u.port, u.path.as_str()),
        ("https", "other.example", 8443, "/api/items/7")
    );
    assert_eq!(u.to_url_string(), "https://other.example:8443/api/items/7");
}

#[test]
fn mock_response_answers_without_the_backend() {
    let a = r#"<policies><inbound><mock-response status-code="202" content-type="application/xml" /></inbound></policies>"#;
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    assert_eq!(run_through(&h, &mut pl, &mut c), 0);
    let r = response(&c);
    assert_eq!(r.status, 202);
    assert_eq!(r.headers.get("Content-Type"), Some("application/xml"));
}

#[test]
fn one_way_requests_and_traces_are_side_effects() {
    let a = r#"<policies><inbound>
      <send-one-way-request mode="new"><set-url>http://audit.example/log</set-url><set-method>POST</set-method><set-body>@(context.Request.Method)</set-body></send-one-way-request>
      <trace source="test" severity="information"><message>@("seen " + context.Request.IpAddress)</message><metadata name="k" value="v" /></trace>
    </inbound></policies>"#;
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    assert!(matches!(h.run(&mut pl, &mut c), Step::Forward(_)));
    assert_eq!(pl.side.one_way.len(), 1);
    assert_eq!(pl.side.one_way[0].url, "http://audit.example/log");
    assert_eq!(&pl.side.one_way[0].body[..], b"GET");
    assert_eq!(pl.side.traces.len(), 1);
    assert_eq!(pl.side.traces[0].message, "seen 10.1.2.3");
    assert_eq!(
        pl.side.traces[0].metadata,
        [("k".to_string(), "v".to_string())]
    );
    // Drained through the machine contract: traces, then one-way calls.
    let outputs: Vec<PipelineOutput> = std::iter::from_fn(|| pl.poll_output()).collect();
    assert!(matches!(
        &outputs[..],
        [PipelineOutput::Trace(t), PipelineOutput::OneWay(c)]
            if t.message == "seen 10.1.2.3" && c.url == "http://audit.example/log"
    ));
    assert!(pl.side.traces.is_empty() && pl.side.one_way.is_empty());
}

#[test]
fn wait_runs_its_children_and_limit_concurrency_releases_its_slot() {
    let a = r#"<policies><inbound>
      <limit-concurrency key="k" max-count="1">
        <wait for="all">
          <choose><when condition="@(true)">
            <set-header name="X-A" exists-action="override"><value>1</value></set-header>
            <set-header name="X-B" exists-action="override"><value>2</value></set-header>
          </when></choose>
        </wait>
      </limit-concurrency>
    </inbound></policies>"#;
    // APIM allows only send-request, cache-lookup-value and choose in wait.
    let e = compile_document(
        "<policies><inbound><wait>\n<set-header name=\"x\" /></wait></inbound></policies>",
        Level::Api,
        &CompileEnv::default(),
    )
    .expect_err("set-header in wait");
    assert_eq!((e.pos.line, e.policy.as_str()), (2, "set-header"), "{e}");
    assert!(
        e.message
            .contains("wait may contain only send-request, cache-lookup-value and choose"),
        "{e}"
    );
    let h = Harness::new();
    let d = chain([None, None, Some(a), None]);
    // Two requests at once: the second is refused while the first holds the slot.
    let mut p1 = Pipeline::new(d.clone());
    let mut c1 = ctx();
    let mut p2 = Pipeline::new(d.clone());
    let mut c2 = ctx();
    // The block ends before the backend call, so the slot is free again.
    assert!(matches!(h.run(&mut p1, &mut c1), Step::Forward(_)));
    assert_eq!(c1.request.headers.get("X-B"), Some("2"));
    assert!(matches!(h.run(&mut p2, &mut c2), Step::Forward(_)));

    let held = r#"<policies><backend>
      <limit-concurrency key="k2" max-count="1"><forward-request /></limit-concurrency>
    </backend></policies>"#;
    let d = chain([None, None, Some(held), None]);
    let mut p1 = Pipeline::new(d.clone());
    let mut c1 = ctx();
    assert!(matches!(h.run(&mut p1, &mut c1), Step::Forward(_)));
    let mut p2 = Pipeline::new(d.clone());
    let mut c2 = ctx();
    assert_eq!(h.run(&mut p2, &mut c2), Step::Respond);
    assert_eq!(response(&c2).status, 429);
    // The first finishes; a third gets in.
    backend_ok(&mut c1, "x");
    p1.forward_done(&mut c1, Ok(()));
    assert_eq!(h.run(&mut p1, &mut c1), Step::Respond);
    let mut p3 = Pipeline::new(d);
    let mut c3 = ctx();
    assert!(matches!(h.run(&mut p3, &mut c3), Step::Forward(_)));
}

#[test]
fn documents_that_change_nothing_are_recognised() {
    let env = CompileEnv::default();
    let pass = |level, xml: &str| {
        compile_document(xml, level, &env)
            .expect("compiles")
            .is_passthrough()
    };
    let apim_default_global = "<policies><inbound></inbound><backend><forward-request /></backend><outbound></outbound><on-error></on-error></policies>";
    assert!(pass(Level::Global, apim_default_global));
    let all_base = "<policies><inbound><base /></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>";
    assert!(pass(Level::Api, all_base));
    assert!(pass(Level::Operation, "<policies />"));
    // An empty section below the global scope stops inheritance: not a no-op.
    assert!(!pass(Level::Api, "<policies><inbound /></policies>"));
    assert!(!pass(
        Level::Global,
        "<policies><backend><forward-request timeout=\"5\" /></backend></policies>"
    ));
    assert!(!pass(
        Level::Api,
        "<policies><inbound><base /><set-header name=\"a\" exists-action=\"delete\" /></inbound></policies>"
    ));
}

#[test]
fn request_ids_are_unique_guids_and_depend_on_the_secret() {
    use portcullis_core::proxy::IdSeq;
    use portcullis_core::proxy::PolicyEnv;
    let a = PolicyEnv::new("gw".into(), None, [1; 32]);
    let b = PolicyEnv::new("gw".into(), None, [2; 32]);
    let mut seen = std::collections::HashSet::new();
    // Connections draw from their own runs, yet no id repeats across them.
    let mut conns = [IdSeq::new(0), IdSeq::new(1), IdSeq::new(2)];
    for i in 0..1000 {
        let (id, _) = a.next_request_id(&mut conns[i % 3]);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4", "version 4: {id}");
        assert!(
            matches!(&id[19..20], "8" | "9" | "a" | "b"),
            "variant: {id}"
        );
        assert!(seen.insert(id));
    }
    // Another secret gives other ids for the same counter values.
    let (first_b, seed_b) = b.next_request_id(&mut IdSeq::new(0));
    let (first_a, seed_a) =
        PolicyEnv::new("gw".into(), None, [1; 32]).next_request_id(&mut IdSeq::new(0));
    assert_ne!(first_a, first_b);
    assert_ne!(seed_a, seed_b);
}

#[test]
fn emit_metric_samples_are_side_outputs() {
    let a = r#"<policies><inbound>
      <emit-metric name="Requests" namespace="shop" value="@(2 + 1)"><dimension name="API ID" /><dimension name="Kind" value="@(context.Request.Headers.GetValueOrDefault("X-Kind", ""))" /></emit-metric>
    </inbound></policies>"#;
    let h = Harness::new();
    let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
    let mut c = ctx();
    assert!(matches!(h.run(&mut pl, &mut c), Step::Forward(_)));
    let outputs: Vec<PipelineOutput> = std::iter::from_fn(|| pl.poll_output()).collect();
    assert!(
        matches!(
            &outputs[..],
            [PipelineOutput::Metric(m)]
                if m.namespace == "shop" && m.name == "Requests" && m.value == 3.0
                    && m.dimensions == [("API ID".to_string(), String::new()), ("Kind".to_string(), "a".to_string())]
        ),
        "{outputs:?}"
    );
}

/// `llm-token-limit` asks for its minute and its quota in one store request,
/// and counts the response's `usage` after it.
#[test]
fn llm_token_limit_counts_usage_after_the_response() {
    let a = r#"<policies><inbound>
      <llm-token-limit counter-key="k" tokens-per-minute="50" token-quota="1000" token-quota-period="Hourly" tokens-consumed-header-name="x-used" remaining-tokens-header-name="x-left" />
    </inbound></policies>"#;
    let h = Harness::new();
    let usage = r#"{"usage":{"prompt_tokens":5,"completion_tokens":25,"total_tokens":30}}"#;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let mut pl = Pipeline::new(chain([None, None, Some(a), None]));
        let mut c = ctx();
        loop {
            match h.run(&mut pl, &mut c) {
                Step::Forward(_) => {
                    backend_ok(&mut c, usage);
                    pl.forward_done(&mut c, Ok(()));
                }
                Step::Respond => break,
                other => panic!("unexpected step {other:?}"),
            }
        }
        let r = response(&c);
        statuses.push((
            r.status,
            r.headers.get("x-used").map(str::to_string),
            r.headers.get("x-left").map(str::to_string),
        ));
    }
    assert_eq!(
        statuses,
        [
            (200, Some("30".into()), Some("20".into())),
            (200, Some("30".into()), Some("0".into())),
            (429, None, None),
        ]
    );
}
