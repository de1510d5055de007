//! APIM flow control (choose, return-response, mock-response, set-status,
//! retry), trace, authentication-basic and caching, tested where they are
//! decided: the connection machine driven in memory (`common::memory`) in
//! front of scripted in-memory backends, its store answered in memory. Retry
//! intervals pass on the harness's clock, without sleeping. Backend timeouts,
//! unreachable backends and calls to other services are in `decisions_calls`;
//! a one-way call in a task of its own on each runtime stays in `policies_flow`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::memory::*;
use common::policy_docs::{base64, cfg, inbound, op, outbound, own_backend, papi, policies};
use common::{ok, response, Reply};
use serde_json::json;

#[test]
fn choose_when_otherwise() {
    let backend = MemBackend::echo();
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
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    get_with(&gw, "/api/1", &[("X-Tier", "gold")]);
    get_with(&gw, "/api/2?silver", &[("X-Tier", "bronze")]);
    get_with(&gw, "/api/3", &[]);
    // Gold wins over silver: the first true condition is taken.
    get_with(&gw, "/api/4?silver=1", &[("X-Tier", "gold")]);
    let branches: Vec<String> = backend
        .requests()
        .iter()
        .map(|r| r.header("x-branch").unwrap_or_default())
        .collect();
    assert_eq!(branches, ["gold", "silver", "other", "gold"]);
    gw.stop();
}

#[test]
fn return_response_skips_the_backend() {
    let backend = MemBackend::echo();
    let policy = inbound(
        r#"<return-response>
             <set-status code="418" reason="I'm a teapot" />
             <set-header name="X-Short" exists-action="override"><value>stout</value></set-header>
             <set-header name="Content-Type" exists-action="override"><value>application/json</value></set-header>
             <set-body>@("{\"path\":\"" + context.Request.Url.Path + "\"}")</set-body>
           </return-response>
           <set-header name="X-Never" exists-action="override"><value>ran</value></set-header>"#,
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = get_with(&gw, "/api/pot", &[]);
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
    gw.stop();
}

#[test]
fn set_status_on_the_response() {
    let backend = MemBackend::echo();
    let policy = outbound(r#"<set-status code="201" reason="Made" />"#);
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = call(&gw, "POST", "/api/new", &[], b"thing");
    assert_eq!(r.status, 201, "{r:?}");
    assert!(r.raw_head().starts_with(b"HTTP/1.1 201 Made\r\n"), "{r:?}");
    assert_eq!(r.body_str(), "thing");
    assert_eq!(backend.only_request().body, b"thing");
    gw.stop();
}

#[test]
fn mock_response_skips_the_backend() {
    let backend = MemBackend::echo();
    let policy = inbound(r#"<mock-response status-code="202" content-type="application/json" />"#);
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = get_with(&gw, "/api/mocked", &[]);
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(backend.requests().is_empty());
    gw.stop();
}

#[test]
fn retry_until_the_backend_succeeds() {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    // Fails twice, then succeeds, then fails twice again...
    let backend = MemBackend::start(move |r| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        if n % 3 < 2 {
            Reply::Send(response(500, &[], format!("fail {n}").as_bytes()))
        } else {
            Reply::Send(ok(
                "text/plain",
                format!("ok {n} {}", r.target()).as_bytes(),
            ))
        }
    });
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
    let gw = MemGateway::start(&cfg(vec![a]));

    let r = call(&gw, "POST", "/api/enough", &[], b"body");
    assert_eq!(r.status, 200, "{r:?} {}", r.body_str());
    assert_eq!(r.body_str(), "ok 2 /enough");
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 3);
    assert!(
        reqs.iter().all(|r| r.body == b"body"),
        "every attempt has the body"
    );

    // One retry is not enough for two failures: the last answer is the client's.
    let r = call(&gw, "POST", "/api/too-few", &[], b"again");
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(r.body_str(), "fail 4");
    assert_eq!(backend.requests().len(), 5);
    gw.stop();
}

#[test]
fn trace_does_not_change_the_exchange() {
    let backend = MemBackend::echo();
    let policy = policies(
        r#"<trace source="e2e" severity="information"><message>@("inbound " + context.Request.Url.Path)</message><metadata name="k" value="v" /></trace>"#,
        "",
        r#"<trace source="e2e" severity="error"><message>outbound</message></trace>"#,
        "",
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));
    let r = call(&gw, "POST", "/api/traced", &[], b"data");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "data");
    assert_eq!(backend.only_request().target(), "/traced");
    gw.stop();
}

#[test]
fn authentication_basic() {
    let backend = MemBackend::echo();
    let mut doc = cfg(vec![papi(
        "a",
        "api",
        backend.addr,
        &inbound(r#"<authentication-basic username="svc" password="{{svc-password}}" />"#),
    )]);
    doc["namedValues"] = json!([{ "name": "svc-password", "value": "s3cret:pw", "secret": true }]);
    let gw = MemGateway::start(&doc);
    let r = get_with(&gw, "/api/x", &[("Authorization", "Bearer client-token")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        backend.only_request().headers("authorization"),
        [format!("Basic {}", base64(b"svc:s3cret:pw"))]
    );
    gw.stop();
}

#[test]
fn cache_lookup_and_store_responses() {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let backend = MemBackend::start(move |r| {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::Send(response(
            200,
            &[("Content-Type", "text/plain"), ("X-Served", &n.to_string())],
            format!("response {n} for {}", r.target()).as_bytes(),
        ))
    });
    let policy = policies(
        r#"<cache-lookup vary-by-developer="false" vary-by-developer-groups="false" downstream-caching-type="none">
             <vary-by-query-parameter>q</vary-by-query-parameter>
           </cache-lookup>"#,
        "",
        r#"<cache-store duration="60" />"#,
        "",
    );
    let gw = MemGateway::start(&cfg(vec![papi("a", "api", backend.addr, &policy)]));

    let r1 = get_with(&gw, "/api/item?q=1", &[]);
    assert_eq!(r1.status, 200, "{r1:?}");
    assert_eq!(r1.body_str(), "response 1 for /item?q=1");
    let r2 = get_with(&gw, "/api/item?q=1", &[]);
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
    let r3 = get_with(&gw, "/api/item?q=2", &[]);
    assert_eq!(r3.body_str(), "response 2 for /item?q=2");
    // Parameters not varied by do not split the cache.
    let r4 = get_with(&gw, "/api/item?q=1&other=x", &[]);
    assert_eq!(r4.body_str(), "response 1 for /item?q=1");
    // POST is not cached.
    let r5 = call(&gw, "POST", "/api/item?q=1", &[], b"x");
    assert_eq!(r5.body_str(), "response 3 for /item?q=1");
    assert_eq!(backend.requests().len(), 3);
    gw.stop();
}

#[test]
fn cache_store_lookup_and_remove_values() {
    let backend = MemBackend::echo();
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
    let gw = MemGateway::start(&cfg(vec![a]));

    let r = get_with(&gw, "/api/values/colour", &[]);
    assert_eq!((r.status, r.body_str().as_str()), (200, "(none)"), "{r:?}");
    let r = call(&gw, "PUT", "/api/values/colour", &[], b"blue");
    assert_eq!(r.status, 204, "{r:?} {}", r.body_str());
    let r = get_with(&gw, "/api/values/colour", &[]);
    assert_eq!((r.status, r.body_str().as_str()), (200, "blue"), "{r:?}");
    let r = get_with(&gw, "/api/values/size", &[]);
    assert_eq!(r.body_str(), "(none)", "another key");
    let r = call(&gw, "DELETE", "/api/values/colour", &[], b"");
    assert_eq!(r.status, 204, "{r:?}");
    let r = get_with(&gw, "/api/values/colour", &[]);
    assert_eq!(r.body_str(), "(none)", "removed");
    assert!(backend.requests().is_empty());
    gw.stop();
}
