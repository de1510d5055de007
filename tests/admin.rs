//! The admin console at `/admin`, end to end over real processes: its security
//! over plain HTTP with a raw client (sessions, CSRF, sign-in and sign-out), the
//! policy check endpoint it uses, and the console itself driven in headless
//! Chromium against a real management plane and a real gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::browser::Browser;
use common::managed::{ManagedGateway, ManagementProcess, ADMIN_TOKEN};
use common::{any_port, api, within, Backend, Response, Runtime, WAIT};
// The console's flows do not depend on the gateway's runtime: one run, on tokio.
use axum::Router;
#[allow(unused_imports)]
use common::runtimes as _;
use fantoccini::Locator;
use serde_json::{json, Value};

/// One request on a fresh connection, with no bearer token unless `headers` has one.
async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    common::managed::http_call(addr, method, path, headers, body).await
}

/// Every `Set-Cookie` value of a response.
fn set_cookies(r: &Response) -> Vec<String> {
    String::from_utf8_lossy(r.raw_head())
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.trim().to_owned())
        })
        .collect()
}

/// The value `Set-Cookie` gives cookie `name`, if it is set (not cleared).
fn cookie_set(r: &Response, name: &str) -> Option<String> {
    set_cookies(r).into_iter().find_map(|c| {
        let value = c
            .strip_prefix(&format!("{name}="))?
            .split(';')
            .next()?
            .to_owned();
        (!value.is_empty() && !c.to_ascii_lowercase().contains("max-age=0")).then_some(value)
    })
}

/// The value of `attr="…"` after `marker` in an HTML page.
fn attr_after(html: &str, marker: &str, attr: &str) -> Option<String> {
    let rest = &html[html.find(marker)?..];
    let start = rest.find(&format!("{attr}=\""))? + attr.len() + 2;
    let end = rest[start..].find('"')?;
    Some(rest[start..start + end].to_owned())
}

/// A fresh sign-in form: its double-submit cookie and hidden CSRF field.
async fn login_form(addr: SocketAddr) -> (String, String) {
    let r = raw(addr, "GET", "/admin/login", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    let cookie = cookie_set(&r, "portcullis_admin_login").expect("form cookie");
    let field = attr_after(&r.body_str(), "name=\"csrf\"", "value").expect("csrf field");
    assert_eq!(cookie, field, "double submit: the same token in both");
    (cookie, field)
}

/// Posts the sign-in form with `token`.
async fn post_login(addr: SocketAddr, form_cookie: &str, csrf: &str, token: &str) -> Response {
    let body = format!("csrf={csrf}&token={token}");
    let cookie = format!("portcullis_admin_login={form_cookie}");
    raw(
        addr,
        "POST",
        "/admin/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &cookie),
        ],
        &body,
    )
    .await
}

/// Signs in: the session cookie header and the session's CSRF token (from the shell).
async fn sign_in(addr: SocketAddr) -> (String, String) {
    let (form_cookie, csrf) = login_form(addr).await;
    let r = post_login(addr, &form_cookie, &csrf, ADMIN_TOKEN).await;
    assert_eq!(r.status, 303, "{}", r.body_str());
    assert_eq!(r.header("location").as_deref(), Some("/admin"));
    let session = cookie_set(&r, "portcullis_admin").expect("session cookie");
    let raw_cookie = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("portcullis_admin="))
        .expect("session cookie line");
    let lower = raw_cookie.to_ascii_lowercase();
    assert!(lower.contains("httponly"), "{raw_cookie}");
    assert!(lower.contains("samesite=strict"), "{raw_cookie}");
    assert!(lower.contains("path=/"), "{raw_cookie}");
    let cookie = format!("portcullis_admin={session}");
    let shell = raw(addr, "GET", "/admin", &[("Cookie", &cookie)], "").await;
    assert_eq!(shell.status, 200, "{}", shell.body_str());
    let csrf = attr_after(&shell.body_str(), "name=\"csrf-token\"", "content").expect("meta csrf");
    assert!(csrf.len() >= 32, "a real token: {csrf}");
    (cookie, csrf)
}

fn assert_to_login(r: &Response, what: &str) {
    assert_eq!(r.status, 303, "{what}: {}", r.body_str());
    assert_eq!(
        r.header("location").as_deref(),
        Some("/admin/login"),
        "{what}"
    );
}

const API: &str = r#"{"path":"echo","serviceUrl":"http://127.0.0.1:9/","operations":[{"id":"any","method":"*","urlTemplate":"/*"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_sessions_and_csrf_over_plain_http() {
    let data = tempfile::tempdir().unwrap();
    let mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let addr = mgmt.addr;

    // No session: every console page sends the browser to the sign-in form.
    for path in [
        "/admin",
        "/admin/",
        "/admin/apis",
        "/admin/apis/echo",
        "/admin/gateways",
        "/admin/policy",
    ] {
        let r = raw(addr, "GET", path, &[], "").await;
        assert_to_login(&r, path);
        let r = raw(
            addr,
            "GET",
            path,
            &[("Cookie", "portcullis_admin=00ff")],
            "",
        )
        .await;
        assert_to_login(&r, &format!("{path} with a made-up session"));
    }
    // The bearer token is no session: the console wants its cookie.
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let r = raw(addr, "GET", "/admin", &[("Authorization", &auth)], "").await;
    assert_to_login(&r, "bearer on a page");
    // Assets are public (no data in them) and pages carry the CSP.
    let r = raw(addr, "GET", "/admin/assets/app.js", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/javascript"));
    assert!(r.has("etag"));
    assert_eq!(
        raw(addr, "GET", "/admin/assets/nope.js", &[], "")
            .await
            .status,
        404
    );
    let r = raw(addr, "GET", "/admin/login", &[], "").await;
    let csp = r.header("content-security-policy").expect("CSP");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));

    // A wrong token: the form again, with the reason, and no session cookie.
    let (form_cookie, csrf) = login_form(addr).await;
    let r = post_login(addr, &form_cookie, &csrf, "not-the-admin-token-at-all").await;
    assert_eq!(r.status, 401, "{}", r.body_str());
    assert!(
        r.body_str().contains("not an admin token"),
        "{}",
        r.body_str()
    );
    assert_eq!(cookie_set(&r, "portcullis_admin"), None);
    // The right token without the form's cookie (a cross-site post): refused.
    let r = raw(
        addr,
        "POST",
        "/admin/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("csrf={csrf}&token={ADMIN_TOKEN}"),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body_str());
    assert_eq!(cookie_set(&r, "portcullis_admin"), None);
    // …or with a field that does not match it.
    let r = post_login(addr, &form_cookie, "0000", ADMIN_TOKEN).await;
    assert_eq!(r.status, 403, "{}", r.body_str());
    assert_eq!(cookie_set(&r, "portcullis_admin"), None);

    // Signed in: the shell, and the REST API with the cookie.
    let (cookie, token) = sign_in(addr).await;
    for path in ["/admin", "/admin/apis/echo", "/admin/gateways"] {
        let r = raw(addr, "GET", path, &[("Cookie", &cookie)], "").await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body_str().contains("/admin/assets/app.js"));
    }
    let r = raw(addr, "GET", "/admin/login", &[("Cookie", &cookie)], "").await;
    assert_eq!(r.status, 303, "already signed in");
    let r = raw(addr, "GET", "/apis", &[("Cookie", &cookie)], "").await;
    assert_eq!(r.status, 200, "{}", r.body_str());

    // A change with only the cookie: 403 without or with a wrong token, nothing stored.
    let revision = mgmt.revision().await;
    let json = ("Content-Type", "application/json");
    for extra in [
        vec![],
        vec![("X-CSRF-Token", "wrong")],
        vec![("X-CSRF-Token", "")],
    ] {
        let mut headers = vec![("Cookie", cookie.as_str()), json];
        headers.extend(extra.iter().copied());
        let r = raw(addr, "PUT", "/apis/echo", &headers, API).await;
        assert_eq!(r.status, 403, "{extra:?}: {}", r.body_str());
        assert!(r
            .header("content-type")
            .unwrap_or_default()
            .contains("problem+json"));
    }
    let r = raw(
        addr,
        "POST",
        "/policy/validate",
        &[("Cookie", &cookie), ("Content-Type", "application/xml")],
        "<policies/>",
    )
    .await;
    assert_eq!(
        r.status, 403,
        "every unsafe method, even one that stores nothing"
    );
    assert_eq!(mgmt.call("GET", "/apis/echo", None).await.status, 404);
    assert_eq!(mgmt.revision().await, revision, "nothing changed");
    // With the session's token it works.
    let r = raw(
        addr,
        "PUT",
        "/apis/echo",
        &[("Cookie", &cookie), json, ("X-CSRF-Token", &token)],
        API,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body_str());
    assert_eq!(mgmt.revision().await, revision + 1);
    // The bearer token still works, without any CSRF token.
    let r = raw(
        addr,
        "DELETE",
        "/apis/echo",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body_str());
    // The cookie under another name (e.g. the portal's) is no admin credential.
    let portal = cookie.replace("portcullis_admin=", "portcullis_portal=");
    let r = raw(addr, "GET", "/apis", &[("Cookie", &portal)], "").await;
    assert_eq!(r.status, 401);

    // Signing out needs the session's token too, then ends the session.
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let r = raw(
        addr,
        "POST",
        "/admin/logout",
        &[("Cookie", &cookie), form],
        "csrf=wrong",
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        raw(addr, "GET", "/apis", &[("Cookie", &cookie)], "")
            .await
            .status,
        200,
        "still signed in"
    );
    let r = raw(
        addr,
        "POST",
        "/admin/logout",
        &[("Cookie", &cookie), form],
        &format!("csrf={token}"),
    )
    .await;
    assert_to_login(&r, "sign out");
    assert!(
        set_cookies(&r)
            .iter()
            .any(|c| c.starts_with("portcullis_admin=")
                && c.to_ascii_lowercase().contains("max-age=0")),
        "the cookie is cleared: {:?}",
        set_cookies(&r)
    );
    assert_to_login(
        &raw(addr, "GET", "/admin", &[("Cookie", &cookie)], "").await,
        "after sign-out",
    );
    let r = raw(addr, "GET", "/apis", &[("Cookie", &cookie)], "").await;
    assert_eq!(r.status, 401, "the old cookie no longer works");
    let r = raw(
        addr,
        "PUT",
        "/apis/echo",
        &[("Cookie", &cookie), json, ("X-CSRF-Token", &token)],
        API,
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_validate_compiles_like_put_and_stores_nothing() {
    let data = tempfile::tempdir().unwrap();
    let mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    mgmt.ok("PUT", "/apis/echo", Some(API), 201).await;
    mgmt.ok("PUT", "/named-values/calls", Some(r#"{"value":"5"}"#), 201)
        .await;
    let revision = mgmt.revision().await;

    let broken =
        "<policies>\n  <inbound>\n    <base />\n    <no-such-policy />\n  </inbound>\n</policies>";
    let v = mgmt
        .ok("POST", "/apis/echo/policy/validate", Some(broken), 200)
        .await;
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["errors"][0]["line"], 4, "{v}");
    assert_eq!(v["errors"][0]["element"], "no-such-policy", "{v}");
    // PUT refuses the same document at the same line.
    let put = mgmt.call("PUT", "/apis/echo/policy", Some(broken)).await;
    assert_eq!(put.status, 400);
    assert_eq!(put.json()["policy"]["line"], 4);

    // Named values of the store resolve, as on PUT.
    let good = r#"<policies><inbound><base /><rate-limit calls="{{calls}}" renewal-period="60" /></inbound></policies>"#;
    for path in [
        "/apis/echo/policy/validate",
        "/policy/validate",
        "/apis/echo/operations/any/policy/validate",
    ] {
        let v: Value = mgmt.ok("POST", path, Some(good), 200).await;
        assert_eq!(v, serde_json::json!({ "valid": true }), "{path}");
    }
    let unknown = good.replace("{{calls}}", "{{nope}}");
    let v = mgmt
        .ok("POST", "/policy/validate", Some(&unknown), 200)
        .await;
    assert_eq!(v["valid"], false, "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nope"),
        "{v}"
    );

    assert_eq!(
        mgmt.call("POST", "/apis/nope/policy/validate", Some(good))
            .await
            .status,
        404
    );
    assert_eq!(
        mgmt.call("POST", "/products/nope/policy/validate", Some(good))
            .await
            .status,
        404
    );
    assert_eq!(mgmt.revision().await, revision, "a check stores nothing");
    assert_eq!(
        mgmt.call("GET", "/apis/echo/policy", None).await.status,
        404
    );
}

/// Waits until the text of some element `css` matches contains `text`; returns it.
async fn wait_text(b: &Browser, css: &str, text: &str) -> String {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(all) = b.client.find_all(Locator::Css(css)).await {
                seen.clear();
                for el in all {
                    if let Ok(t) = el.text().await {
                        if t.contains(text) {
                            return t;
                        }
                        seen.push(t);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    match found {
        Ok(t) => t,
        Err(_) => panic!("no `{css}` showed {text:?}; last seen: {seen:?}"),
    }
}

/// A small OpenAPI 3 document with three operations.
fn petstore(backend: SocketAddr) -> String {
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Pets", "version": "1.0" },
        "servers": [{ "url": format!("http://{backend}/v1") }],
        "paths": {
            "/pets": {
                "get": { "operationId": "listPets", "summary": "List pets", "responses": { "200": { "description": "ok" } } },
                "post": { "operationId": "createPet", "summary": "Create a pet", "responses": { "201": { "description": "created" } } }
            },
            "/pets/{petId}": {
                "get": { "operationId": "showPetById", "summary": "One pet",
                    "parameters": [{ "name": "petId", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "responses": { "200": { "description": "ok" } } }
            }
        }
    })
    .to_string()
}

/// An unknown element on line 4.
const BROKEN_POLICY: &str =
    "<policies>\n<inbound>\n<base />\n<no-such-policy />\n</inbound>\n</policies>";

const GOOD_POLICY: &str = "<policies>\n<inbound>\n<base />\n<set-header name=\"X-Console\" exists-action=\"override\"><value>yes</value></set-header>\n</inbound>\n</policies>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_console_in_a_browser() {
    let backend = Backend::echo().await;
    let data = tempfile::tempdir().unwrap();
    // Heartbeats every second: an instance is offline three seconds after its last.
    let mgmt = ManagementProcess::start(
        any_port(),
        data.path(),
        // Documents are served from loopback below: allow fetching them.
        &["--heartbeat-interval", "1", "--openapi-fetch-private"],
    )
    .await;
    let echo = api("echo", "echo", &format!("http://{}", backend.addr));
    mgmt.ok("PUT", "/apis/echo", Some(&echo.to_string()), 201)
        .await;
    let gateway = json!({ "location": { "name": "test lab" }, "apis": ["echo"] });
    mgmt.ok("PUT", "/gateways/gw-1", Some(&gateway.to_string()), 201)
        .await;
    let pending =
        json!({ "scope": "/apis/echo", "displayName": "Team Pending", "state": "submitted" });
    mgmt.ok(
        "PUT",
        "/subscriptions/team-pending",
        Some(&pending.to_string()),
        201,
    )
    .await;
    let rejected =
        json!({ "scope": "/apis/echo", "displayName": "Team Rejected", "state": "submitted" });
    mgmt.ok(
        "PUT",
        "/subscriptions/team-rejected",
        Some(&rejected.to_string()),
        201,
    )
    .await;
    let user = json!({ "email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace" });
    mgmt.ok("PUT", "/users/ada", Some(&user.to_string()), 201)
        .await;

    let b = Browser::start().await;
    let base = mgmt.url.clone();

    // Sign in: the console sends us to the form, the token gets us back.
    b.goto(&format!("{base}/admin")).await;
    b.fill("#token", ADMIN_TOKEN).await;
    b.click("form button[type=submit]").await;
    wait_text(&b, "main h1", "Dashboard").await;

    // Gateways: a token, shown once, starts a real gateway that shows online.
    b.goto(&format!("{base}/admin/gateways")).await;
    b.click("button[aria-label='Create a token for gw-1']")
        .await;
    let token = b
        .find("input.token")
        .await
        .prop("value")
        .await
        .expect("value")
        .expect("token");
    assert!(token.starts_with("GatewayKey gw-1&"), "{token}");
    let mut gw = ManagedGateway::start(
        Runtime::Tokio,
        &mgmt.url,
        &token,
        &["--heartbeat-interval", "1"],
    )
    .await;
    gw.ready().await;
    for i in 0..12 {
        let path = if i % 4 == 3 {
            "/nowhere".to_string()
        } else {
            format!("/echo/item-{i}")
        };
        gw.get(&path).await;
    }
    wait_text(&b, ".instances .badge", "online").await;
    b.screenshot("admin-gateways").await;

    // A gateway on Redis: its card shows the setting (password hidden), and a
    // table shows each instance's store as its heartbeat reports it.
    let on_redis = json!({
        "location": { "name": "rack 2" }, "apis": ["echo"],
        "store": { "url": "redis://:console-s3cret@cache.internal:6379/0",
                   "counting": "approximate", "onFailure": "closed" },
    });
    mgmt.ok(
        "PUT",
        "/gateways/gw-redis",
        Some(&on_redis.to_string()),
        201,
    )
    .await;
    let redis_token = mgmt
        .ok("POST", "/gateways/gw-redis/token", Some("{}"), 200)
        .await["value"]
        .as_str()
        .expect("token")
        .to_owned();
    let beat = json!({
        "instanceId": "edge-redis-1", "hostname": "rack-2", "version": "0.1.0",
        "health": "degraded", "connectivity": "connected",
        "stateStore": { "target": "redis://:***@cache.internal:6379/0", "counting": "approximate",
                        "onFailure": "closed", "healthy": false, "errors": 4,
                        "lastError": "timed out after 100 ms", "p99Micros": 1500 },
    });
    let r = common::managed::http_call(
        mgmt.addr,
        "POST",
        "/gateways/gw-redis/heartbeat",
        &[
            ("Authorization", &redis_token),
            ("Content-Type", "application/json"),
        ],
        &beat.to_string(),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body_str());
    b.goto(&format!("{base}/admin/gateways")).await;
    let redis_card = "section[aria-labelledby='gw-gw-redis']";
    wait_text(
        &b,
        &format!("{redis_card} > p"),
        "shared state: redis://:***@cache.internal:6379/0 (approximate, fail closed)",
    )
    .await;
    let row = wait_text(
        &b,
        "[aria-label='Shared-state stores of gw-redis'] tbody tr",
        "edge-redis-1",
    )
    .await;
    for shown in [
        "redis://:***@cache.internal:6379/0",
        "approximate",
        "closed",
        "unhealthy",
        "4",
        "timed out after 100 ms",
        "1.5 ms",
    ] {
        assert!(row.contains(shown), "{shown} not in {row:?}");
    }
    wait_text(&b, "[data-store='edge-redis-1']", "unhealthy").await;
    // The gateway that counts in process says so, and has no store table.
    wait_text(
        &b,
        "section[aria-labelledby='gw-gw-1'] > p",
        "shared state: in process",
    )
    .await;
    assert!(b
        .client
        .find_all(Locator::Css("[aria-label='Shared-state stores of gw-1']"))
        .await
        .expect("find")
        .is_empty());
    let source = b.client.source().await.expect("source");
    assert!(
        !source.contains("console-s3cret"),
        "the password reached the page"
    );
    b.screenshot("admin-gateway-stores").await;

    // Dashboard: the gateway's requests, charted per API once uploaded.
    within("requests reach analytics", async {
        loop {
            let v = mgmt
                .ok("GET", "/analytics/requests?groupBy=api", None, 200)
                .await;
            if v["groups"].as_array().is_some_and(|g| !g.is_empty()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    b.goto(&format!("{base}/admin")).await;
    wait_text(&b, "figure.chart-card figcaption", "Requests per API").await;
    wait_text(&b, "figure.chart-card .legend", "echo").await;
    b.find("figure.chart-card svg path.line").await;
    b.screenshot("admin-dashboard").await;

    // APIs: import an OpenAPI document into a new API by pasting it.
    b.click("#nav a[href='/admin/apis']").await;
    wait_text(&b, "main h1", "APIs").await;
    b.fill("form input[name=id]", "pets").await;
    b.fill("form input[name=path]", "pets").await;
    b.fill("form textarea[name=document]", &petstore(backend.addr))
        .await;
    b.click("form:has(textarea[name=document]) button.primary")
        .await;
    wait_text(&b, "main .crumbs", "pets").await;
    for op in ["listPets", "createPet", "showPetById"] {
        wait_text(&b, "main table", op).await;
    }
    wait_text(&b, "main table", "/pets/{petId}").await;
    b.screenshot("admin-apis").await;
    let imported = mgmt.ok("GET", "/apis/pets", None, 200).await;
    assert_eq!(
        imported["operations"].as_array().map(Vec::len),
        Some(3),
        "{imported}"
    );

    // The imported operations are in the developer portal too, for a developer who
    // signs up there (another browser: the admin's session does not open the portal).
    b.goto(&format!("{base}/portal")).await;
    wait_text(&b, "h1", "Sign in").await;
    let dev = Browser::start().await;
    dev.goto(&format!("{base}/portal/signup")).await;
    dev.fill("#email", "dev@example.com").await;
    dev.fill("#firstName", "Dev").await;
    dev.fill("#lastName", "Eloper").await;
    dev.fill("#password", "a long enough password").await;
    dev.click("main button[type='submit']").await;
    wait_text(&dev, "h1", "APIs and products").await;
    dev.goto(&format!("{base}/portal/apis/pets")).await;
    for summary in ["List pets", "Create a pet", "One pet"] {
        wait_text(&dev, "main", summary).await;
    }
    wait_text(&dev, "main", "/pets/{petId}").await;
    dev.screenshot("portal-imported-api").await;
    // Nor does the developer's portal session open the console.
    dev.goto(&format!("{base}/admin/apis")).await;
    wait_text(&dev, "main label", "Admin token").await;
    dev.close().await;
    b.goto(&format!("{base}/admin/apis/pets")).await;
    wait_text(&b, "main .crumbs", "pets").await;

    // A document that does not parse: the console shows where.
    b.fill(
        "form textarea[name=document]",
        "{\"openapi\": \"3.0.3\",\n  \"paths\": {,}\n}",
    )
    .await;
    b.click("form:has(textarea[name=document]) button.primary")
        .await;
    wait_text(
        &b,
        "form:has(textarea[name=document]) .status.error",
        "Line 2",
    )
    .await;

    // The API's policy: a broken document is refused with its line, and not saved.
    let editor = ".policy-editor textarea";
    b.find(editor).await;
    // Loaded (no document yet: the editor offers a starting point) before typing.
    wait_text(&b, ".policy-editor .validity", "No document yet").await;
    b.fill(editor, BROKEN_POLICY).await;
    wait_text(&b, ".policy-editor .errors", "Line 4").await;
    b.click(".policy-editor button.primary").await;
    let shown = wait_text(&b, ".policy-editor .status.error", "Line 4").await;
    assert!(shown.contains("no-such-policy"), "{shown}");
    b.find(".gutter span.bad").await;
    b.screenshot("admin-policy-error").await;
    assert_eq!(
        mgmt.call("GET", "/apis/pets/policy", None).await.status,
        404,
        "nothing saved"
    );
    // Jump to the error: the editor selects line 4.
    b.click(".policy-editor .errors button").await;
    let selected = b
        .client
        .execute("const t = document.querySelector('.policy-editor textarea'); return t.value.slice(t.selectionStart, t.selectionEnd);", vec![])
        .await
        .expect("selection");
    assert!(
        selected
            .as_str()
            .is_some_and(|s| s.contains("no-such-policy")),
        "{selected}"
    );
    // Fixed, it is saved.
    b.fill(editor, GOOD_POLICY).await;
    wait_text(&b, ".policy-editor .validity", "Compiles").await;
    b.click(".policy-editor button.primary").await;
    wait_text(&b, ".policy-editor .status.ok", "Saved").await;
    let saved = mgmt.call("GET", "/apis/pets/policy", None).await;
    assert_eq!(saved.status, 200);
    assert!(
        saved.body_str().contains("X-Console"),
        "{}",
        saved.body_str()
    );

    // An operation's policy, in the same editor.
    b.click("a[aria-label='Policy of operation listPets']")
        .await;
    wait_text(&b, ".policy-editor h2", "Operation policy").await;
    wait_text(&b, ".policy-editor .validity", "No document yet").await;
    b.click(".policy-editor button.primary").await;
    wait_text(&b, ".policy-editor .status.ok", "Saved").await;
    let op = mgmt
        .call("GET", "/apis/pets/operations/listPets/policy", None)
        .await;
    assert_eq!(op.status, 200, "{}", op.body_str());

    // Subscriptions: approve the pending one.
    b.goto(&format!("{base}/admin/subscriptions?state=submitted"))
        .await;
    b.click("button[aria-label='Approve Team Pending']").await;
    wait_text(&b, "main .status.ok", "Approved").await;
    let sub = mgmt
        .ok("GET", "/subscriptions/team-pending", None, 200)
        .await;
    assert_eq!(sub["state"], "active", "{sub}");
    b.click("button[aria-label='Reject Team Rejected']").await;
    wait_text(&b, "main .status.ok", "Rejected").await;
    let sub = mgmt
        .ok("GET", "/subscriptions/team-rejected", None, 200)
        .await;
    assert_eq!(sub["state"], "rejected", "{sub}");

    // Products: a new one with an API, then its page.
    b.click("#nav a[href='/admin/products']").await;
    wait_text(&b, "main h1", "Products").await;
    b.fill("form.card input[pattern]", "gold").await;
    b.fill("form.card .field:nth-of-type(2) input", "Gold")
        .await;
    b.click("form.card input[value=pets]").await;
    b.click("form.card button.primary").await;
    wait_text(&b, "main .crumbs", "gold").await;
    let product = mgmt.ok("GET", "/products/gold", None, 200).await;
    assert_eq!(product["apis"], json!(["pets"]), "{product}");
    assert_eq!(product["displayName"], "Gold", "{product}");

    // Users: block one.
    b.click("#nav a[href='/admin/users']").await;
    b.click("button[aria-label='Block ada@example.com']").await;
    wait_text(&b, "main .status.ok", "Blocked").await;
    let user = mgmt.ok("GET", "/users/ada", None, 200).await;
    assert_eq!(user["state"], "blocked", "{user}");

    // Named values: a secret is stored and never shown again.
    b.click("#nav a[href='/admin/named-values']").await;
    wait_text(&b, "main h1", "Named values").await;
    b.fill("form.card input[pattern]", "backend-key").await;
    b.fill("form.card input[type=text]", "s3cr3t-value-1234")
        .await;
    b.click("form.card input[type=checkbox]").await;
    b.click("form.card button.primary").await;
    wait_text(&b, "main table", "backend-key").await;
    let page = b.client.source().await.expect("page source");
    assert!(
        !page.contains("s3cr3t-value-1234"),
        "a secret is never shown"
    );
    let nv = mgmt.ok("GET", "/named-values/backend-key", None, 200).await;
    assert_eq!(nv["secret"], true, "{nv}");

    // The import form also takes a file...
    let zoo = "openapi: 3.0.3\ninfo: { title: Zoo, version: '1' }\npaths:\n  /animals:\n    get: { operationId: listAnimals, responses: { '200': { description: ok } } }\n  /animals/{name}:\n    get:\n      operationId: getAnimal\n      parameters: [{ name: name, in: path, required: true, schema: { type: string } }]\n      responses: { '200': { description: ok } }\n";
    let file = data.path().join("zoo.yaml");
    std::fs::write(&file, zoo).expect("writes the document");
    b.goto(&format!("{base}/admin/apis")).await;
    b.fill("form input[name=id]", "zoo").await;
    b.fill("form input[name=path]", "zoo").await;
    b.fill(
        "form input[name=serviceUrl]",
        &format!("http://{}", backend.addr),
    )
    .await;
    b.find("form input[type=file]")
        .await
        .send_keys(&file.display().to_string())
        .await
        .expect("chooses the file");
    // The file's text lands in the document field before it is sent.
    within("the file is read", async {
        loop {
            let text = b
                .find("form textarea[name=document]")
                .await
                .prop("value")
                .await;
            if text
                .ok()
                .flatten()
                .is_some_and(|t| t.contains("listAnimals"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    b.click("form:has(textarea[name=document]) button.primary")
        .await;
    wait_text(&b, "main .crumbs", "zoo").await;
    for op in ["listAnimals", "getAnimal"] {
        wait_text(&b, "main table", op).await;
    }
    // ...or a URL, which the management plane fetches itself.
    let served = Router::new().route(
        "/birds.json",
        axum::routing::get(|| async {
            axum::Json(json!({
                "openapi": "3.0.3",
                "info": { "title": "Birds", "version": "1" },
                "paths": { "/birds": { "get": { "operationId": "listBirds", "responses": { "200": { "description": "ok" } } } } }
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let docs = listener.local_addr().expect("address");
    let docs_server = tokio::spawn(async move { axum::serve(listener, served).await });
    b.goto(&format!("{base}/admin/apis")).await;
    b.fill("form input[name=id]", "birds").await;
    b.fill("form input[name=path]", "birds").await;
    b.fill(
        "form input[name=serviceUrl]",
        &format!("http://{}", backend.addr),
    )
    .await;
    b.fill("form input[name=url]", &format!("http://{docs}/birds.json"))
        .await;
    b.click("form:has(input[name=url]) button.primary").await;
    wait_text(&b, "main .crumbs", "birds").await;
    wait_text(&b, "main table", "listBirds").await;
    docs_server.abort();

    // Gateways: the killed gateway turns offline on the page by itself.
    // (gw-1's card: gw-redis's instance, which sent one heartbeat, is offline by now.)
    b.goto(&format!("{base}/admin/gateways")).await;
    let gw1_badge = "section[aria-labelledby='gw-gw-1'] .instances .badge";
    wait_text(&b, gw1_badge, "online").await;
    gw.kill().await;
    wait_text(&b, gw1_badge, "offline").await;
    b.screenshot("admin-gateway-offline").await;

    // Every screen has the accessibility basics, contrast included; keyboard users
    // reach the content first through the skip link.
    for screen in [
        "/admin",
        "/admin/apis",
        "/admin/apis/pets",
        "/admin/products",
        "/admin/subscriptions",
        "/admin/users",
        "/admin/named-values",
        "/admin/gateways",
        "/admin/policy",
    ] {
        b.goto(&format!("{base}{screen}")).await;
        b.find("main h1").await;
        // Views render after their data arrives: let them settle.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            b.accessibility_problems().await,
            Vec::<String>::new(),
            "{screen}"
        );
    }
    b.goto(&format!("{base}/admin/apis")).await;
    b.find("main h1").await;
    b.client
        .active_element()
        .await
        .expect("focus")
        .send_keys("\u{E004}")
        .await
        .expect("tab");
    let focused = b.client.active_element().await.expect("focus");
    assert_eq!(
        focused.attr("href").await.expect("href").as_deref(),
        Some("#main")
    );
    b.close().await;

    // The sign-in form too.
    let anonymous = Browser::start().await;
    anonymous.goto(&format!("{base}/admin/login")).await;
    assert_eq!(
        anonymous.accessibility_problems().await,
        Vec::<String>::new(),
        "/admin/login"
    );
    anonymous.close().await;

    // At phone width: the menu folds behind a button, and no screen scrolls sideways.
    let phone = Browser::start_phone().await;
    phone.goto(&format!("{base}/admin/login")).await;
    phone.fill("#token", ADMIN_TOKEN).await;
    phone.click("form button[type=submit]").await;
    wait_text(&phone, "main h1", "Dashboard").await;
    let nav_link = "#nav a[href='/admin/apis']";
    assert!(!phone
        .find(nav_link)
        .await
        .is_displayed()
        .await
        .expect("displayed"));
    phone.click("#nav-toggle").await;
    assert!(phone
        .find(nav_link)
        .await
        .is_displayed()
        .await
        .expect("displayed"));
    phone.screenshot("admin-phone-menu").await;
    phone.click(nav_link).await;
    wait_text(&phone, "main h1", "APIs").await;
    for screen in [
        "/admin",
        "/admin/apis/pets",
        "/admin/subscriptions",
        "/admin/gateways",
    ] {
        phone.goto(&format!("{base}{screen}")).await;
        phone.find("main h1").await;
        assert!(phone.fits_width().await, "{screen} scrolls sideways");
    }
    phone.goto(&format!("{base}/admin/apis/pets")).await;
    wait_text(&phone, "main table", "listPets").await;
    phone.screenshot("admin-phone-api").await;
    phone.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_console_shows_versions_and_makes_a_revision_current() {
    let data = tempfile::tempdir().unwrap();
    let mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let set = json!({ "displayName": "Orders", "versioningScheme": "Segment" });
    mgmt.ok(
        "PUT",
        "/api-version-sets/orders",
        Some(&set.to_string()),
        201,
    )
    .await;
    let mut orders = api("orders-v1", "orders", "http://127.0.0.1:9");
    orders["apiVersionSetId"] = json!("orders");
    orders["apiVersion"] = json!("v1");
    mgmt.ok("PUT", "/apis/orders-v1", Some(&orders.to_string()), 201)
        .await;
    let b = Browser::start().await;
    let base = mgmt.url.clone();
    b.goto(&format!("{base}/admin")).await;
    b.fill("#token", ADMIN_TOKEN).await;
    b.click("form button[type=submit]").await;
    wait_text(&b, "main h1", "Dashboard").await;

    b.goto(&format!("{base}/admin/apis/orders-v1")).await;
    wait_text(
        &b,
        "main section.card p",
        "Version v1 of version set orders",
    )
    .await;
    // Create a revision from the console: it is listed, not current.
    b.click("button.create-revision").await;
    wait_text(&b, "main table", "orders-v1~rev2").await;
    // Make it current: one change, and the table follows.
    let before = mgmt.revision().await;
    b.click("button[data-make-current='2']").await;
    wait_text(&b, "main table", "orders-v1~rev1").await;
    assert_eq!(mgmt.revision().await, before + 1);
    let current = mgmt.ok("GET", "/apis/orders-v1", None, 200).await;
    assert_eq!(current["apiRevision"], 2, "{current}");
    b.screenshot("admin-revisions").await;
    assert!(b.accessibility_problems().await.is_empty());
    b.close().await;
}
