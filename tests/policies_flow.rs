//! APIM policies end to end, flow control (choose, return-response, forward-request, retry, on-error), calls to other services, and caching: a real gateway (in-process, loopback
//! sockets) in front of recording test backends, configured with policy
//! documents at the global, product, API and operation scopes. Each test checks
//! what the client sees (status, headers, body) and what the backends received.
//!
//! Nothing here depends on timing: rate limits and quotas use periods of a minute
//! or more, slow backends are held by gates the test opens, and every wait has the
//! generous hang guard of `common::within`. The suite's shared helpers are in
//! `common::policy_docs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::policy_docs::*;
use common::*;
use serde_json::json;

// ---------------------------------------------------------------------------
// Flow
// ---------------------------------------------------------------------------

#[runtimes]
async fn choose_when_otherwise(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound(
        r#"<choose>
             <when condition="@(context.Request.Headers.GetValueOrDefault(&quot;X-Tier&quot;, &quot;&quot;) == &quot;gold&quot;)">
               <set-header name="X-Branch" exists-action="override"><value>gold</value></set-header>
             </when>
             <when condition="@(context.Request.Url.Query.ContainsKey(&quot;silver&quot;))">
               <set-header name="X-Branch" exists-action="override"><value>silver</value></set-header>
             </when>
             <otherwise>
               <set-header name="X-Branch" exists-action="override"><value>other</value></set-header>
             </otherwise>
           </choose>"#,
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    get_with(&gw, "/api/1", &[("X-Tier", "gold")]).await;
    get_with(&gw, "/api/2?silver", &[("X-Tier", "bronze")]).await;
    get_with(&gw, "/api/3", &[]).await;
    // Gold wins over silver: the first true condition is taken.
    get_with(&gw, "/api/4?silver=1", &[("X-Tier", "gold")]).await;
    let branches: Vec<String> = backend
        .requests()
        .iter()
        .map(|r| r.header("x-branch").unwrap_or_default())
        .collect();
    assert_eq!(branches, ["gold", "silver", "other", "gold"]);
    gw.stop().await;
}

#[runtimes]
async fn return_response_skips_the_backend(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound(
        r#"<return-response>
             <set-status code="418" reason="I'm a teapot" />
             <set-header name="X-Short" exists-action="override"><value>stout</value></set-header>
             <set-header name="Content-Type" exists-action="override"><value>application/json</value></set-header>
             <set-body>@("{\"path\":\"" + context.Request.Url.Path + "\"}")</set-body>
           </return-response>
           <set-header name="X-Never" exists-action="override"><value>ran</value></set-header>"#,
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/pot", &[]).await;
    assert_eq!(r.status, 418, "{r:?}");
    assert!(
        r.raw_head().starts_with(b"HTTP/1.1 418 I'm a teapot\r\n"),
        "{r:?}"
    );
    assert_eq!(r.header("x-short").as_deref(), Some("stout"));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.json(), json!({ "path": "/pot" }));
    assert!(!r.has("x-never"));
    assert!(backend.requests().is_empty());
    gw.stop().await;
}

#[runtimes]
async fn set_status_on_the_response(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = outbound(r#"<set-status code="201" reason="Made" />"#);
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = call(&gw, "POST", "/api/new", &[], b"thing").await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(r.raw_head().starts_with(b"HTTP/1.1 201 Made\r\n"), "{r:?}");
    assert_eq!(r.body_str(), "thing");
    assert_eq!(backend.only_request().body, b"thing");
    gw.stop().await;
}

#[runtimes]
async fn mock_response_skips_the_backend(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = inbound(r#"<mock-response status-code="202" content-type="application/json" />"#);
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/mocked", &[]).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(backend.requests().is_empty());
    gw.stop().await;
}

#[runtimes]
async fn forward_request_timeout_goes_to_on_error(rt: Runtime) {
    let backend = Backend::start(|r| {
        if r.target().starts_with("/slow") {
            Reply::Hang
        } else {
            Reply::Send(ok("text/plain", b"fast"))
        }
    })
    .await;
    let mut a = papi("a", "api", backend.addr, "");
    a["operations"] = json!([
        op(
            "handled",
            "GET",
            "/slow/handled",
            &own_backend(
                "",
                r#"<forward-request timeout="1" />"#,
                "",
                r#"<set-header name="X-Error" exists-action="override"><value>@(context.LastError.Source + ":" + context.LastError.Reason)</value></set-header>"#
            )
        ),
        op(
            "plain",
            "GET",
            "/slow/plain",
            &own_backend("", r#"<forward-request timeout="1" />"#, "", "")
        ),
        op(
            "replaced",
            "GET",
            "/slow/replaced",
            &own_backend(
                "",
                r#"<forward-request timeout="1" />"#,
                "",
                r#"<return-response><set-status code="503" reason="Later" /><set-body>try later</set-body></return-response>"#
            )
        ),
        op(
            "fast",
            "GET",
            "/fast",
            &own_backend("", r#"<forward-request timeout="1" />"#, "", "")
        ),
    ]);
    let gw = TestGateway::start(rt, &cfg(vec![a])).await;

    let r = get_with(&gw, "/api/slow/handled", &[]).await;
    assert_eq!(r.status, 504, "{r:?} {}", r.body_str());
    assert_eq!(
        r.header("x-error").as_deref(),
        Some("forward-request:Timeout")
    );

    let r = get_with(&gw, "/api/slow/plain", &[]).await;
    assert_eq!(r.status, 504, "{r:?}");

    let r = get_with(&gw, "/api/slow/replaced", &[]).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.body_str(), "try later");

    let r = get_with(&gw, "/api/fast", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "fast");
    gw.stop().await;
}

#[runtimes]
async fn unreachable_backend_goes_to_on_error(rt: Runtime) {
    let dead = closed_port().await;
    let policy = policies("", "", "", LAST_ERROR_HEADER);
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", dead, &policy)])).await;
    let r = get_with(&gw, "/api/x", &[]).await;
    assert_eq!(r.status, 502, "{r:?} {}", r.body_str());
    let error = r.header("x-error").unwrap_or_default();
    assert!(error.starts_with("BackendConnectionFailure: "), "{r:?}");
    gw.stop().await;
}

#[runtimes]
async fn retry_until_the_backend_succeeds(rt: Runtime) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    // Fails twice, then succeeds, then fails twice again...
    let backend = Backend::start(move |r| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        if n % 3 < 2 {
            Reply::Send(response(500, &[], format!("fail {n}").as_bytes()))
        } else {
            Reply::Send(ok(
                "text/plain",
                format!("ok {n} {}", r.target()).as_bytes(),
            ))
        }
    })
    .await;
    let mut a = papi("a", "api", backend.addr, "");
    a["operations"] = json!([
        op(
            "enough",
            "POST",
            "/enough",
            &own_backend(
                "",
                r#"<retry condition="@(context.Response.StatusCode &gt;= 500)" count="3" interval="1">
                     <forward-request />
                   </retry>"#,
                "",
                ""
            )
        ),
        op(
            "too-few",
            "POST",
            "/too-few",
            &own_backend(
                "",
                r#"<retry condition="@(context.Response.StatusCode &gt;= 500)" count="1" interval="0" first-fast-retry="true">
                     <forward-request />
                   </retry>"#,
                "",
                ""
            )
        ),
    ]);
    let gw = TestGateway::start(rt, &cfg(vec![a])).await;

    let r = call(&gw, "POST", "/api/enough", &[], b"body").await;
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(r.body_str(), "ok 2 /enough");
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 3);
    assert!(
        reqs.iter().all(|r| r.body == b"body"),
        "every attempt has the body"
    );

    // One retry is not enough for two failures: the last answer is the client's.
    let r = call(&gw, "POST", "/api/too-few", &[], b"again").await;
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(r.body_str(), "fail 4");
    assert_eq!(backend.requests().len(), 5);
    gw.stop().await;
}

#[runtimes]
async fn wait_for_calls_then_use_their_answers(rt: Runtime) {
    let backend = Backend::echo().await;
    let other = Backend::start(|r| Reply::Send(ok("text/plain", r.target().as_bytes()))).await;
    let policy = inbound(&format!(
        r#"<wait for="all">
             <send-request mode="new" response-variable-name="one" timeout="20">
               <set-url>http://{o}/one</set-url>
             </send-request>
             <send-request mode="new" response-variable-name="two" timeout="20">
               <set-url>http://{o}/two</set-url>
             </send-request>
           </wait>
           <set-header name="X-Both" exists-action="override"><value>@(((IResponse)context.Variables["one"]).Body.As&lt;string&gt;() + "+" + ((IResponse)context.Variables["two"]).Body.As&lt;string&gt;())</value></set-header>"#,
        o = other.addr
    ));
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/x", &[]).await;
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(
        backend.only_request().header("x-both").as_deref(),
        Some("/one+/two")
    );
    let mut seen: Vec<String> = other.requests().iter().map(|r| r.target()).collect();
    seen.sort();
    assert_eq!(seen, ["/one", "/two"]);
    gw.stop().await;
}

#[runtimes]
async fn trace_does_not_change_the_exchange(rt: Runtime) {
    let backend = Backend::echo().await;
    let policy = policies(
        r#"<trace source="e2e" severity="information"><message>@("inbound " + context.Request.Url.Path)</message><metadata name="k" value="v" /></trace>"#,
        "",
        r#"<trace source="e2e" severity="error"><message>outbound</message></trace>"#,
        "",
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = call(&gw, "POST", "/api/traced", &[], b"data").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "data");
    assert_eq!(backend.only_request().target(), "/traced");
    gw.stop().await;
}

#[runtimes]
async fn authentication_basic(rt: Runtime) {
    let backend = Backend::echo().await;
    let mut doc = cfg(vec![papi(
        "a",
        "api",
        backend.addr,
        &inbound(r#"<authentication-basic username="svc" password="{{svc-password}}" />"#),
    )]);
    doc["namedValues"] = json!([{ "name": "svc-password", "value": "s3cret:pw", "secret": true }]);
    let gw = TestGateway::start(rt, &doc).await;
    let r = get_with(&gw, "/api/x", &[("Authorization", "Bearer client-token")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        backend.only_request().headers("authorization"),
        [format!("Basic {}", base64(b"svc:s3cret:pw"))]
    );
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// Calls to other services
// ---------------------------------------------------------------------------

#[runtimes]
async fn send_request_response_used_in_a_header(rt: Runtime) {
    let backend = Backend::echo().await;
    let tokens = Backend::start(|_| Reply::Send(ok("text/plain", b"token-123"))).await;
    let policy = inbound(&format!(
        r#"<send-request mode="new" response-variable-name="r" timeout="20" ignore-error="false">
             <set-url>http://{}/issue?for=@(context.Request.Url.Path)</set-url>
             <set-method>POST</set-method>
             <set-header name="X-Caller" exists-action="override"><value>gateway</value></set-header>
             <set-body>@("user=" + context.Request.Headers.GetValueOrDefault("X-User", "?"))</set-body>
           </send-request>
           <set-header name="X-Token" exists-action="override"><value>@(((IResponse)context.Variables["r"]).Body.As&lt;string&gt;())</value></set-header>
           <set-header name="X-Token-Status" exists-action="override"><value>@(((IResponse)context.Variables["r"]).StatusCode.ToString())</value></set-header>"#,
        tokens.addr
    ));
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/data", &[("X-User", "ada")]).await;
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    let req = backend.only_request();
    assert_eq!(req.header("x-token").as_deref(), Some("token-123"));
    assert_eq!(req.header("x-token-status").as_deref(), Some("200"));
    let call = tokens.only_request();
    assert_eq!(call.method(), "POST");
    assert_eq!(call.header("x-caller").as_deref(), Some("gateway"));
    assert_eq!(call.body, b"user=ada");
    assert!(
        call.target().starts_with("/issue?for="),
        "{}",
        call.target()
    );
    gw.stop().await;
}

#[runtimes]
async fn send_request_failure_goes_to_on_error_unless_ignored(rt: Runtime) {
    let backend = Backend::echo().await;
    let dead = closed_port().await;
    let mut a = papi("a", "api", backend.addr, "");
    a["operations"] = json!([
        op(
            "strict",
            "GET",
            "/strict",
            &policies(
                &format!(
                    r#"<send-request mode="new" response-variable-name="r" timeout="10"><set-url>http://{dead}/x</set-url></send-request>"#
                ),
                "",
                "",
                r#"<set-header name="X-Error" exists-action="override"><value>@(context.LastError.Source)</value></set-header>"#
            )
        ),
        op(
            "lenient",
            "GET",
            "/lenient",
            &inbound(&format!(
                r#"<send-request mode="new" response-variable-name="r" timeout="10" ignore-error="true"><set-url>http://{dead}/x</set-url></send-request>
                   <set-header name="X-Null" exists-action="override"><value>@((context.Variables["r"] == null).ToString())</value></set-header>"#
            ))
        ),
    ]);
    let gw = TestGateway::start(rt, &cfg(vec![a])).await;
    let r = get_with(&gw, "/api/strict", &[]).await;
    assert!(r.status >= 500, "{r:?}");
    assert_eq!(r.header("x-error").as_deref(), Some("send-request"));
    let r = get_with(&gw, "/api/lenient", &[]).await;
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(
        backend.only_request().header("x-null").as_deref(),
        Some("True")
    );
    gw.stop().await;
}

#[runtimes]
async fn send_one_way_request_reaches_the_other_server(rt: Runtime) {
    let backend = Backend::echo().await;
    let audit = Backend::start(|_| Reply::Send(response(204, &[], b""))).await;
    let policy = inbound(&format!(
        r#"<send-one-way-request mode="new">
             <set-url>http://{}/audit</set-url>
             <set-method>POST</set-method>
             <set-header name="Content-Type" exists-action="override"><value>text/plain</value></set-header>
             <set-body>@(context.Request.Method + " " + context.Request.OriginalUrl.Path)</set-body>
           </send-one-way-request>"#,
        audit.addr
    ));
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;
    let r = get_with(&gw, "/api/audited", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(backend.only_request().target(), "/audited");
    audit.wait_requests(1).await;
    let got = audit.only_request();
    assert_eq!(got.method(), "POST");
    assert_eq!(got.target(), "/audit");
    assert_eq!(got.body, b"GET /api/audited");
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// Caching
// ---------------------------------------------------------------------------

#[runtimes]
async fn cache_lookup_and_store_responses(rt: Runtime) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let backend = Backend::start(move |r| {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::Send(response(
            200,
            &[("Content-Type", "text/plain"), ("X-Served", &n.to_string())],
            format!("response {n} for {}", r.target()).as_bytes(),
        ))
    })
    .await;
    let policy = policies(
        r#"<cache-lookup vary-by-developer="false" vary-by-developer-groups="false" downstream-caching-type="none">
             <vary-by-query-parameter>q</vary-by-query-parameter>
           </cache-lookup>"#,
        "",
        r#"<cache-store duration="60" />"#,
        "",
    );
    let gw = TestGateway::start(rt, &cfg(vec![papi("a", "api", backend.addr, &policy)])).await;

    let r1 = get_with(&gw, "/api/item?q=1", &[]).await;
    assert_eq!(r1.status, 200, "{r1:?}");
    assert_eq!(r1.body_str(), "response 1 for /item?q=1");
    let r2 = get_with(&gw, "/api/item?q=1", &[]).await;
    assert_eq!(r2.status, 200, "{r2:?}");
    assert_eq!(
        r2.body_str(),
        "response 1 for /item?q=1",
        "served from the cache"
    );
    assert_eq!(r2.header("x-served").as_deref(), Some("1"));
    assert_eq!(
        backend.requests().len(),
        1,
        "the second GET did not reach the backend"
    );

    // A different value of a vary-by parameter is another entry.
    let r3 = get_with(&gw, "/api/item?q=2", &[]).await;
    assert_eq!(r3.body_str(), "response 2 for /item?q=2");
    // Parameters not varied by do not split the cache.
    let r4 = get_with(&gw, "/api/item?q=1&other=x", &[]).await;
    assert_eq!(r4.body_str(), "response 1 for /item?q=1");
    // POST is not cached.
    let r5 = call(&gw, "POST", "/api/item?q=1", &[], b"x").await;
    assert_eq!(r5.body_str(), "response 3 for /item?q=1");
    assert_eq!(backend.requests().len(), 3);
    gw.stop().await;
}

#[runtimes]
async fn cache_store_lookup_and_remove_values(rt: Runtime) {
    let backend = Backend::echo().await;
    let mut a = papi("a", "api", backend.addr, "");
    a["operations"] = json!([
        op(
            "put",
            "PUT",
            "/values/{name}",
            &inbound(
                r#"<cache-store-value key="@(&quot;v-&quot; + context.Request.MatchedParameters[&quot;name&quot;])" value="@(context.Request.Body.As&lt;string&gt;())" duration="60" />
                   <return-response><set-status code="204" reason="No Content" /></return-response>"#
            )
        ),
        op(
            "get",
            "GET",
            "/values/{name}",
            &inbound(
                r#"<cache-lookup-value key="@(&quot;v-&quot; + context.Request.MatchedParameters[&quot;name&quot;])" default-value="(none)" variable-name="found" />
                   <return-response>
                     <set-status code="200" reason="OK" />
                     <set-body>@((string)context.Variables["found"])</set-body>
                   </return-response>"#
            )
        ),
        op(
            "delete",
            "DELETE",
            "/values/{name}",
            &inbound(
                r#"<cache-remove-value key="@(&quot;v-&quot; + context.Request.MatchedParameters[&quot;name&quot;])" />
                   <return-response><set-status code="204" reason="No Content" /></return-response>"#
            )
        ),
    ]);
    let gw = TestGateway::start(rt, &cfg(vec![a])).await;

    let r = get_with(&gw, "/api/values/colour", &[]).await;
    assert_eq!((r.status, r.body_str().as_str()), (200, "(none)"), "{r:?}");
    let r = call(&gw, "PUT", "/api/values/colour", &[], b"blue").await;
    assert_eq!(r.status, 204, "{r:?} {}", r.body_str());
    let r = get_with(&gw, "/api/values/colour", &[]).await;
    assert_eq!((r.status, r.body_str().as_str()), (200, "blue"), "{r:?}");
    let r = get_with(&gw, "/api/values/size", &[]).await;
    assert_eq!(r.body_str(), "(none)", "another key");
    let r = call(&gw, "DELETE", "/api/values/colour", &[], b"").await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = get_with(&gw, "/api/values/colour", &[]).await;
    assert_eq!(r.body_str(), "(none)", "removed");
    assert!(backend.requests().is_empty());
    gw.stop().await;
}
