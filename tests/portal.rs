//! The developer portal end to end, over real processes: a `portcullis
//! management` process with its SQLite file, a `portcullis gateway` connected to
//! it, and a real backend. A headless Chromium drives the sign-up to "try it"
//! journey; raw HTTP checks sessions, CSRF and that users only reach their own
//! subscriptions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::browser::Browser;
use common::managed::{ManagedGateway, ManagementProcess};
use common::*;
use fantoccini::Locator;
use serde_json::{json, Value};

/// The password every test user signs up with.
const PASSWORD: &str = "correct horse battery";

/// A pet store: three operations with parameters, a request body and examples.
fn pets_document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Pet Store", "version": "1.0.0", "description": "Adopt cats and dogs." },
        "paths": {
            "/pets": {
                "get": {
                    "operationId": "listPets",
                    "summary": "List all pets",
                    "parameters": [{
                        "name": "limit", "in": "query", "required": false,
                        "description": "How many to return", "schema": { "type": "integer" }, "example": 5
                    }],
                    "responses": { "200": {
                        "description": "The pets",
                        "content": { "application/json": {
                            "schema": { "type": "array", "items": { "$ref": "#/components/schemas/Pet" } },
                            "example": [{ "id": 1, "name": "Rex" }]
                        } }
                    } }
                },
                "post": {
                    "operationId": "createPet",
                    "summary": "Add a pet",
                    "requestBody": { "required": true, "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/Pet" },
                        "example": { "id": 7, "name": "Tom" }
                    } } },
                    "responses": { "201": { "description": "Created" } }
                }
            },
            "/pets/{petId}": {
                "get": {
                    "operationId": "showPet",
                    "summary": "One pet",
                    "parameters": [{
                        "name": "petId", "in": "path", "required": true,
                        "schema": { "type": "string" }, "example": "rex"
                    }],
                    "responses": { "200": { "description": "The pet" } }
                }
            }
        },
        "components": { "schemas": { "Pet": {
            "type": "object", "required": ["id", "name"],
            "properties": { "id": { "type": "integer" }, "name": { "type": "string" } }
        } } }
    })
}

/// Management plane, gateway and backend with API `pets` (at `/petstore`),
/// products `starter` (instant) and `gold` (needs approval), gateway `gw-1`
/// serving `pets` with its public URL set.
struct Estate {
    mgmt: ManagementProcess,
    gw: ManagedGateway,
    _backend: Backend,
    _data: tempfile::TempDir,
}

impl Estate {
    async fn start() -> Estate {
        let backend = Backend::start(|r| {
            let body = json!({ "pets": [{ "id": 1, "name": "Rex" }], "seenPath": r.target() });
            Reply::Send(response(
                200,
                &[("Content-Type", "application/json")],
                body.to_string().as_bytes(),
            ))
        })
        .await;
        let data = tempfile::tempdir().unwrap();
        let mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
        let import = format!(
            "/apis/pets/openapi?path=petstore&serviceUrl=http://{}",
            backend.addr
        );
        mgmt.ok("PUT", &import, Some(&pets_document().to_string()), 201)
            .await;
        let starter = json!({ "displayName": "Starter", "description": "Free tier for trying things out", "apis": ["pets"] });
        mgmt.ok("PUT", "/products/starter", Some(&starter.to_string()), 201)
            .await;
        let gold = json!({ "displayName": "Gold", "description": "Reviewed access", "apis": ["pets"], "approvalRequired": true });
        mgmt.ok("PUT", "/products/gold", Some(&gold.to_string()), 201)
            .await;
        let token = mgmt.gateway_with_token("gw-1", &["pets"]).await;
        let gw = ManagedGateway::start(Runtime::Tokio, &mgmt.url, &token, &[]).await;
        let with_url = json!({ "location": { "name": "test lab" }, "apis": ["pets"], "url": format!("http://{}", gw.addr) });
        mgmt.ok("PUT", "/gateways/gw-1", Some(&with_url.to_string()), 200)
            .await;
        gw.ready().await;
        // Keyed: without a key the gateway refuses.
        gw.wait_for("/petstore/pets", "the gateway serves pets", |r| {
            r.status == 401
        })
        .await;
        Estate {
            mgmt,
            gw,
            _backend: backend,
            _data: data,
        }
    }

    fn portal(&self) -> String {
        format!("{}/portal", self.mgmt.url)
    }

    /// `GET path` on the gateway with `key` in the subscription key header.
    async fn call_with_key(&self, path: &str, key: &str) -> Response {
        let mut c = Client::connect(self.gw.addr).await;
        c.roundtrip(format!(
            "GET {path} HTTP/1.1\r\nHost: gateway.test\r\nOcp-Apim-Subscription-Key: {key}\r\n\r\n"
        ))
        .await
    }
}

// ---------------------------------------------------------------------------
// A small browser-less visitor: raw HTTP/1.1 with a cookie jar.
// ---------------------------------------------------------------------------

struct Visitor {
    addr: SocketAddr,
    cookies: BTreeMap<String, String>,
}

impl Visitor {
    fn new(addr: SocketAddr) -> Visitor {
        Visitor {
            addr,
            cookies: BTreeMap::new(),
        }
    }

    async fn get(&mut self, path: &str) -> Response {
        self.send("GET", path, None).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let body = fields
            .iter()
            .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.send("POST", path, Some(body)).await
    }

    async fn send(&mut self, method: &str, path: &str, body: Option<String>) -> Response {
        Box::pin(self.send_now(method, path, body)).await
    }

    async fn send_now(&mut self, method: &str, path: &str, body: Option<String>) -> Response {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            request.push_str(&format!("Cookie: {}\r\n", jar.join("; ")));
        }
        if let Some(body) = &body {
            request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
            request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        } else {
            request.push_str("\r\n");
        }
        let mut client = Client::connect(self.addr).await;
        client.send(request).await;
        let method: axum::http::Method = method.parse().unwrap();
        let response = within("the portal answers", client.response_to(&method)).await;
        for line in String::from_utf8_lossy(response.raw_head()).lines() {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if !name.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let pair = value.trim().split(';').next().unwrap_or_default();
            if let Some((n, v)) = pair.split_once('=') {
                if value.contains("Max-Age=0") || v.is_empty() {
                    self.cookies.remove(n);
                } else {
                    self.cookies.insert(n.to_owned(), v.to_owned());
                }
            }
        }
        response
    }

    /// Signs up (through the real form, CSRF cookie included) and is signed in after.
    async fn sign_up(&mut self, email: &str) -> Response {
        let form = self.get("/portal/signup").await;
        assert_eq!(form.status, 200);
        let csrf = csrf_of(&form.body_str());
        self.post(
            "/portal/signup",
            &[
                ("csrf", &csrf),
                ("email", email),
                ("firstName", "Test"),
                ("lastName", "User"),
                ("password", PASSWORD),
            ],
        )
        .await
    }

    async fn sign_in(&mut self, email: &str, password: &str, next: &str) -> Response {
        let form = self.get("/portal/signin").await;
        let csrf = csrf_of(&form.body_str());
        self.post(
            "/portal/signin",
            &[
                ("csrf", &csrf),
                ("email", email),
                ("password", password),
                ("next", next),
            ],
        )
        .await
    }

    /// The session CSRF token, from a signed-in page's forms.
    async fn csrf(&mut self) -> String {
        let page = self.get("/portal/subscriptions").await;
        assert_eq!(page.status, 200, "{}", page.body_str());
        csrf_of(&page.body_str())
    }

    /// Subscribes to `product`; the new (or existing) subscription's id.
    async fn subscribe(&mut self, product: &str) -> String {
        let csrf = self.csrf().await;
        let r = self
            .post(
                &format!("/portal/products/{product}/subscribe"),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body_str());
        let location = r.header("location").unwrap();
        location
            .split_once('=')
            .map(|(_, id)| id.to_owned())
            .unwrap_or_else(|| panic!("no id in {location}"))
    }
}

/// `text` percent-encoded for a form or query (everything but unreserved characters).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The first `csrf` hidden field's value in a page.
fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no csrf field in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// The text of the element with `id` (a key) in a page.
fn key_in(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {html}"))
        + marker.len();
    let end = html[start..].find('<').unwrap() + start;
    html[start..end].to_owned()
}

/// How many entities of a collection the admin REST API lists.
async fn count(mgmt: &ManagementProcess, collection: &str) -> u64 {
    mgmt.ok("GET", &format!("/{collection}"), None, 200).await["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("count of {collection}"))
}

/// Both keys of a subscription, from the admin REST API.
async fn secrets(mgmt: &ManagementProcess, id: &str) -> Value {
    mgmt.ok(
        "POST",
        &format!("/subscriptions/{id}/secrets"),
        Some("{}"),
        200,
    )
    .await
}

// ---------------------------------------------------------------------------
// 1. The journey in a real browser.
// ---------------------------------------------------------------------------

/// The text of the element `css` once it contains `expected` (retrying while the
/// browser navigates, when elements come and go).
async fn wait_text(browser: &Browser, css: &str, expected: &str) -> String {
    within(&format!("{css} shows {expected:?}"), async {
        loop {
            if let Ok(el) = browser.client.find(Locator::Css(css)).await {
                if let Ok(text) = el.text().await {
                    if text.contains(expected) {
                        return text;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

async fn text_of(browser: &Browser, css: &str) -> String {
    wait_text(browser, css, "").await
}

async fn click(browser: &Browser, css: &str) {
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn fill(browser: &Browser, css: &str, text: &str) {
    let el = browser.client.find(Locator::Css(css)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_user_signs_up_subscribes_copies_a_key_and_tries_an_operation() {
    // Boxed: the whole journey is one large future, and the test thread's stack is small.
    Box::pin(a_new_user_signs_up_subscribes_copies_a_key_and_tries_an_operation_steps()).await;
}

async fn a_new_user_signs_up_subscribes_copies_a_key_and_tries_an_operation_steps() {
    let estate = Estate::start().await;
    let portal = estate.portal();
    let browser = Browser::start().await;

    // Not signed in: the portal sends the browser to sign in.
    browser.goto(&format!("{portal}/products/starter")).await;
    let url = browser.client.current_url().await.unwrap();
    assert!(url.path().ends_with("/portal/signin"), "{url}");
    click(&browser, "main a[href='/portal/signup']").await;
    wait_text(&browser, "h1", "Create an account").await;
    fill(&browser, "#email", "Ada@Example.com").await;
    fill(&browser, "#firstName", "Ada").await;
    fill(&browser, "#lastName", "Lovelace").await;
    fill(&browser, "#password", PASSWORD).await;
    click(&browser, "main button[type='submit']").await;
    wait_text(&browser, "h1", "APIs and products").await;
    assert!(text_of(&browser, "header .who")
        .await
        .contains("Ada Lovelace"));
    // The account is a real User entity.
    let users = estate.mgmt.ok("GET", "/users", None, 200).await;
    assert_eq!(users["value"][0]["email"], "ada@example.com", "{users}");

    // Search narrows the catalogue.
    fill(&browser, "#q", "adopt").await;
    click(&browser, "form.search button").await;
    wait_text(&browser, "main p[role='status']", "adopt").await;
    assert!(text_of(&browser, "main").await.contains("Pet Store"));
    fill(&browser, "#q", "weather").await;
    click(&browser, "form.search button").await;
    wait_text(&browser, "main p[role='status']", "weather").await;
    assert!(text_of(&browser, "main").await.contains("No API matches."));
    browser.goto(&portal).await;
    text_of(&browser, "a[href='/portal/apis/pets']").await;
    browser.screenshot("portal-home").await;
    // Keyboard: the first Tab reaches the skip link, which moves focus to the content.
    browser
        .find("body")
        .await
        .send_keys(fantoccini::key::Key::Tab.to_string().as_str())
        .await
        .unwrap();
    let focused = browser.client.active_element().await.unwrap();
    assert_eq!(focused.text().await.unwrap(), "Skip to content");
    focused
        .send_keys(fantoccini::key::Key::Enter.to_string().as_str())
        .await
        .unwrap();
    let focused = browser.client.active_element().await.unwrap();
    assert_eq!(focused.attr("id").await.unwrap().as_deref(), Some("main"));

    // Subscribe to the instant product.
    click(&browser, "a[href='/portal/products/starter']").await;
    wait_text(&browser, "h1", "Starter").await;
    click(&browser, "main form button[type='submit']").await;
    wait_text(&browser, "h1", "My subscriptions").await;
    assert!(text_of(&browser, ".notice.ok").await.contains("Subscribed"));
    assert!(text_of(&browser, ".badge").await.contains("active"));

    // The keys are hidden until shown, then readable, and Copy reports it.
    let key_el = browser.client.find(Locator::Css("code.key")).await.unwrap();
    assert!(!key_el.is_displayed().await.unwrap(), "keys start hidden");
    click(&browser, "details.keys summary").await;
    assert!(key_el.is_displayed().await.unwrap());
    let key = key_el.text().await.unwrap();
    assert_eq!(key.len(), 64, "{key}");
    click(&browser, "button.copy").await;
    assert_eq!(wait_text(&browser, "#copy-status", "Cop").await, "Copied");
    browser.screenshot("portal-subscriptions").await;
    // The key shown is the subscription's real key: the gateway takes it.
    let through = estate.call_with_key("/petstore/pets", &key).await;
    assert_eq!(through.status, 200, "{}", through.body_str());

    // The API page, rendered from the imported document.
    browser.goto(&format!("{portal}/apis/pets")).await;
    assert_eq!(text_of(&browser, "h1").await, "Pet Store");
    let main = text_of(&browser, "main").await;
    for expected in [
        "Adopt cats and dogs.",
        "List all pets",
        "/pets/{petId}",
        "limit",
        "Request body",
    ] {
        assert!(main.contains(expected), "{expected} missing from {main}");
    }
    assert!(
        main.contains(&format!("http://{}/petstore", estate.gw.addr)),
        "{main}"
    );
    browser.screenshot("portal-api").await;

    // Try it: the first operation, through the real gateway with the key.
    click(&browser, "#op0 details.try summary").await;
    click(&browser, "#op0 form.console button[type='submit']").await;
    let status = text_of(&browser, "#response-status").await;
    assert!(status.starts_with("200"), "{status}");
    let body = text_of(&browser, "#response-body").await;
    assert!(
        body.contains("\"seenPath\": \"/pets\"") && body.contains("Rex"),
        "{body}"
    );
    browser.screenshot("portal-try-it").await;

    // A path parameter is filled in from the documented example and encoded.
    browser
        .goto(&format!("{portal}/apis/pets/operations/showPet/try"))
        .await;
    assert_eq!(
        browser
            .find("input[name='path.petId']")
            .await
            .attr("value")
            .await
            .unwrap()
            .as_deref(),
        Some("rex")
    );
    fill(&browser, "input[name='path.petId']", "rex 1").await;
    click(&browser, "form.console button[type='submit']").await;
    let status = text_of(&browser, "#response-status").await;
    assert!(status.starts_with("200"), "{status}");
    let body = text_of(&browser, "#response-body").await;
    assert!(body.contains("/pets/rex%201"), "{body}");

    // Every page the journey saw has the accessibility basics.
    for page in [
        "/signin",
        "/signup",
        "",
        "/products",
        "/products/starter",
        "/subscriptions",
        "/apis/pets",
        "/apis/pets/operations/createPet/try",
        "/account",
    ] {
        browser.goto(&format!("{portal}{page}")).await;
        text_of(&browser, "h1").await;
        assert_eq!(
            browser.accessibility_problems().await,
            Vec::<String>::new(),
            "{page}"
        );
    }

    // Phone width: the main pages fit without scrolling sideways.
    let phone = Browser::start_phone().await;
    phone.goto(&format!("{portal}/signin")).await;
    fill(&phone, "#email", "ada@example.com").await;
    fill(&phone, "#password", PASSWORD).await;
    click(&phone, "main button[type='submit']").await;
    wait_text(&phone, "h1", "APIs and products").await;
    assert!(phone.fits_width().await, "home is wider than a phone");
    phone.screenshot("portal-phone").await;
    for page in ["/apis/pets", "/subscriptions", "/products/starter"] {
        phone.goto(&format!("{portal}{page}")).await;
        text_of(&phone, "h1").await;
        assert!(phone.fits_width().await, "{page} is wider than a phone");
    }
    phone.close().await;
    browser.close().await;
}

// ---------------------------------------------------------------------------
// 2. A product that needs approval.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_subscription_that_needs_approval_works_once_activated() {
    // Boxed: the whole journey is one large future, and the test thread's stack is small.
    Box::pin(a_subscription_that_needs_approval_works_once_activated_steps()).await;
}

async fn a_subscription_that_needs_approval_works_once_activated_steps() {
    let estate = Estate::start().await;
    let mut user = Visitor::new(estate.mgmt.addr);
    assert_eq!(user.sign_up("grace@example.com").await.status, 303);
    let id = user.subscribe("gold").await;
    let page = user.get("/portal/subscriptions").await.body_str();
    assert!(page.contains("pending approval"), "{page}");
    let key = key_in(&page, &format!("key-{id}-primary"));
    assert_eq!(secrets(&estate.mgmt, &id).await["primaryKey"], key);

    // Not approved yet: the gateway refuses the key.
    let refused = estate.call_with_key("/petstore/pets", &key).await;
    assert_eq!(refused.status, 401, "{}", refused.body_str());

    estate
        .mgmt
        .ok(
            "POST",
            &format!("/subscriptions/{id}/activate"),
            Some("{}"),
            200,
        )
        .await;
    within("the approved key works", async {
        loop {
            if estate.call_with_key("/petstore/pets", &key).await.status == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let page = user.get("/portal/subscriptions").await.body_str();
    assert!(page.contains("badge ok"), "{page}");

    // Subscribing again shows the existing subscription instead of a second one.
    assert_eq!(user.subscribe("gold").await, id);
    assert_eq!(count(&estate.mgmt, "subscriptions").await, 1);

    // An API no gateway with a URL serves: the page and the console say so.
    let internal = json!({ "path": "internal", "serviceUrl": "http://127.0.0.1:9/", "operations": [
        { "id": "ping", "method": "GET", "urlTemplate": "/ping" }
    ] });
    estate
        .mgmt
        .ok("PUT", "/apis/internal", Some(&internal.to_string()), 201)
        .await;
    let page = user.get("/portal/apis/internal").await.body_str();
    assert!(
        page.contains("No gateway with a public URL serves this API yet"),
        "{page}"
    );
    let csrf = user.csrf().await;
    let r = user
        .post(
            "/portal/apis/internal/operations/ping/try",
            &[("csrf", &csrf), ("subscription", &id)],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert!(r
        .body_str()
        .contains("No gateway with a public URL serves this API"));
}

// ---------------------------------------------------------------------------
// 3. Security over plain HTTP.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn pages_need_a_session_forms_need_their_token_and_users_see_only_their_own() {
    // Boxed: the whole journey is one large future, and the test thread's stack is small.
    Box::pin(pages_need_a_session_forms_need_their_token_and_users_see_only_their_own_steps())
        .await;
}

async fn pages_need_a_session_forms_need_their_token_and_users_see_only_their_own_steps() {
    let estate = Estate::start().await;
    let mgmt = &estate.mgmt;
    let addr = mgmt.addr;

    // Without a session every page redirects to sign-in, coming back afterwards.
    let mut nobody = Visitor::new(addr);
    for page in [
        "/portal",
        "/portal?q=pets",
        "/portal/products",
        "/portal/products/starter",
        "/portal/subscriptions",
        "/portal/apis/pets",
        "/portal/apis/pets/operations/listPets/try",
    ] {
        let r = nobody.get(page).await;
        assert_eq!(r.status, 303, "{page}");
        let location = r.header("location").unwrap();
        assert!(location.starts_with("/portal/signin"), "{page}: {location}");
        if page != "/portal" {
            assert_eq!(location, format!("/portal/signin?next={}", encode(page)));
        }
    }
    for form in [
        "/portal/products/starter/subscribe",
        "/portal/subscriptions/x/regenerate",
        "/portal/subscriptions/x/cancel",
        "/portal/apis/pets/operations/listPets/try",
        "/portal/signout",
    ] {
        let r = nobody.post(form, &[("csrf", "x")]).await;
        assert_eq!(r.status, 303, "{form}");
    }
    // Sign-in, sign-up and assets need no session, and pages carry the security headers.
    for open in [
        "/portal/signin",
        "/portal/signup",
        "/portal/assets/portal.css",
        "/portal/assets/portal.js",
    ] {
        assert_eq!(nobody.get(open).await.status, 200, "{open}");
    }
    let signin = nobody.get("/portal/signin").await;
    let csp = signin.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!signin.body_str().contains("style=\""), "no inline styles");

    // Anonymous forms: the double-submit token is checked.
    let users_before = count(mgmt, "users").await;
    let mut forger = Visitor::new(addr);
    let r = forger
        .post(
            "/portal/signup",
            &[
                ("email", "mallory@example.com"),
                ("firstName", "M"),
                ("lastName", "M"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body_str().contains("nothing was changed"));
    forger.get("/portal/signup").await;
    let r = forger
        .post(
            "/portal/signup",
            &[
                ("csrf", &"0".repeat(64)),
                ("email", "mallory@example.com"),
                ("firstName", "M"),
                ("lastName", "M"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(count(mgmt, "users").await, users_before);

    // Two users, each with a subscription.
    let mut alice = Visitor::new(addr);
    let r = alice.sign_up("alice@example.com").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/portal"));
    let session_cookie = r
        .header("set-cookie")
        .into_iter()
        .chain(
            String::from_utf8_lossy(r.raw_head())
                .lines()
                .map(str::to_owned),
        )
        .find(|l| l.contains("portcullis_portal="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/portal", "Secure"] {
        assert!(
            session_cookie.contains(attribute),
            "{attribute} in {session_cookie}"
        );
    }
    let a_sub = alice.subscribe("starter").await;
    let a_page = alice.get("/portal/subscriptions").await.body_str();
    let a_key = key_in(&a_page, &format!("key-{a_sub}-primary"));
    let mut bob = Visitor::new(addr);
    assert_eq!(bob.sign_up("bob@example.com").await.status, 303);
    let b_sub = bob.subscribe("starter").await;
    assert_ne!(a_sub, b_sub);

    // Bob's pages show nothing of Alice's.
    let b_page = bob.get("/portal/subscriptions").await.body_str();
    assert!(b_page.contains(&b_sub));
    assert!(
        !b_page.contains(&a_sub) && !b_page.contains(&a_key),
        "{b_page}"
    );
    let notice = bob
        .get(&format!("/portal/subscriptions?subscribed={a_sub}"))
        .await
        .body_str();
    assert!(!notice.contains(&a_key));

    // Bob cannot act on Alice's subscription, even with his own valid token.
    let b_csrf = bob.csrf().await;
    for action in ["regenerate", "cancel"] {
        let r = bob
            .post(
                &format!("/portal/subscriptions/{a_sub}/{action}"),
                &[("csrf", &b_csrf), ("key", "primary")],
            )
            .await;
        assert_eq!(r.status, 404, "{action}: {}", r.body_str());
    }
    // Nor send requests with her key through the console.
    let r = bob
        .post(
            "/portal/apis/pets/operations/listPets/try",
            &[("csrf", &b_csrf), ("subscription", &a_sub)],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert_eq!(secrets(mgmt, &a_sub).await["primaryKey"], a_key);
    let a_state = mgmt
        .ok("GET", &format!("/subscriptions/{a_sub}"), None, 200)
        .await;
    assert_eq!(a_state["state"], "active");

    // Signed-in forms: no token or a wrong one (another session's) is a 403, nothing changes.
    let subs_before = count(mgmt, "subscriptions").await;
    for token in [None, Some(b_csrf.as_str()), Some("")] {
        let mut fields = vec![("key", "primary")];
        if let Some(t) = token {
            fields.push(("csrf", t));
        }
        let r = alice
            .post(
                &format!("/portal/subscriptions/{a_sub}/regenerate"),
                &fields,
            )
            .await;
        assert_eq!(r.status, 403, "{token:?}");
        let r = alice
            .post(&format!("/portal/subscriptions/{a_sub}/cancel"), &fields)
            .await;
        assert_eq!(r.status, 403, "{token:?}");
        let r = alice.post("/portal/products/gold/subscribe", &fields).await;
        assert_eq!(r.status, 403, "{token:?}");
    }
    assert_eq!(secrets(mgmt, &a_sub).await["primaryKey"], a_key);
    assert_eq!(count(mgmt, "subscriptions").await, subs_before);

    // With her token, Alice regenerates her key: the old one stops working.
    let a_csrf = alice.csrf().await;
    let r = alice
        .post(
            &format!("/portal/subscriptions/{a_sub}/regenerate"),
            &[("csrf", &a_csrf), ("key", "primary")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body_str());
    let new_key = secrets(mgmt, &a_sub).await["primaryKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_key, a_key);
    let page = alice.get("/portal/subscriptions").await.body_str();
    assert_eq!(key_in(&page, &format!("key-{a_sub}-primary")), new_key);

    // A portal session opens no admin endpoint.
    let session = alice.cookies.get("portcullis_portal").unwrap().clone();
    for path in ["/apis", "/users", &format!("/subscriptions/{a_sub}")] {
        let mut c = Client::connect(addr).await;
        let r = c
            .roundtrip(format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: portcullis_portal={session}\r\n\r\n"
            ))
            .await;
        assert_eq!(r.status, 401, "{path}");
    }

    // Signing in again with the same email in other case: the password decides.
    let mut again = Visitor::new(addr);
    let r = again
        .sign_in("ALICE@example.com", "wrong password!", "/portal")
        .await;
    assert_eq!(r.status, 401);
    assert!(r.body_str().contains("The email or password is wrong."));
    let r = again
        .sign_in("nobody@example.com", PASSWORD, "/portal")
        .await;
    assert_eq!(r.status, 401);
    assert!(r.body_str().contains("The email or password is wrong."));
    // next is honoured inside the portal only.
    let r = again
        .sign_in("ALICE@example.com", PASSWORD, "https://evil.example/")
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/portal"));
    let r = again
        .sign_in("alice@example.com", PASSWORD, "/portal/apis/pets")
        .await;
    assert_eq!(r.header("location").as_deref(), Some("/portal/apis/pets"));

    // The same email again: a clear error, the other fields kept, no password echoed.
    let mut twin = Visitor::new(addr);
    let r = twin.sign_up("Alice@Example.com").await;
    assert_eq!(r.status, 409);
    let html = r.body_str();
    assert!(html.contains("already exists"), "{html}");
    assert!(html.contains("value=\"Alice@Example.com\""));
    assert!(!html.contains(PASSWORD));
    let r = twin
        .post(
            "/portal/signup",
            &[
                ("csrf", &csrf_of(&html)),
                ("email", "x@example.com"),
                ("firstName", "X"),
                ("lastName", "Y"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body_str().contains("at least 10 characters"));

    // Signing out ends the session on the server: the old cookie no longer works.
    let csrf = alice.csrf().await;
    let r = alice.post("/portal/signout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303);
    let mut replay = Visitor::new(addr);
    replay.cookies.insert("portcullis_portal".into(), session);
    assert_eq!(replay.get("/portal").await.status, 303);

    // A blocked user can no longer sign in, and their open session stops working.
    let users = mgmt.ok("GET", "/users", None, 200).await;
    let bob_user = users["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "bob@example.com")
        .unwrap()
        .clone();
    let mut blocked = bob_user.clone();
    blocked["state"] = json!("blocked");
    let id = bob_user["id"].as_str().unwrap();
    mgmt.ok(
        "PUT",
        &format!("/users/{id}"),
        Some(&blocked.to_string()),
        200,
    )
    .await;
    assert_eq!(bob.get("/portal").await.status, 303);
    let r = Visitor::new(addr)
        .sign_in("bob@example.com", PASSWORD, "/portal")
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body_str().contains("blocked"));

    // Changing the password needs the current one and a good new one, and signs
    // out every other session of the user.
    let mut dora = Visitor::new(addr);
    assert_eq!(dora.sign_up("dora@example.com").await.status, 303);
    let mut dora_elsewhere = Visitor::new(addr);
    assert_eq!(
        dora_elsewhere
            .sign_in("dora@example.com", PASSWORD, "/portal")
            .await
            .status,
        303
    );
    let page = dora.get("/portal/account").await;
    assert_eq!(page.status, 200);
    assert!(page.body_str().contains("dora@example.com"));
    let csrf = csrf_of(&page.body_str());
    let new_password = "an entirely new passphrase";
    for (current, new, status) in [
        ("not the password", new_password, 401),
        (PASSWORD, "short", 400),
    ] {
        let r = dora
            .post(
                "/portal/account/password",
                &[
                    ("csrf", &csrf),
                    ("currentPassword", current),
                    ("newPassword", new),
                ],
            )
            .await;
        assert_eq!(r.status, status, "{}", r.body_str());
    }
    let r = dora
        .post(
            "/portal/account/password",
            &[("currentPassword", PASSWORD), ("newPassword", new_password)],
        )
        .await;
    assert_eq!(r.status, 403, "no CSRF token, no change");
    let r = dora
        .post(
            "/portal/account/password",
            &[
                ("csrf", &csrf),
                ("currentPassword", PASSWORD),
                ("newPassword", new_password),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body_str());
    assert_eq!(
        r.header("location").as_deref(),
        Some("/portal/account?changed=1")
    );
    assert_eq!(
        dora.get("/portal/account?changed=1").await.status,
        200,
        "this browser stays signed in"
    );
    assert_eq!(
        dora_elsewhere.get("/portal").await.status,
        303,
        "the other session ended"
    );
    let mut later = Visitor::new(addr);
    assert_eq!(
        later
            .sign_in("dora@example.com", PASSWORD, "/portal")
            .await
            .status,
        401
    );
    assert_eq!(
        later
            .sign_in("dora@example.com", new_password, "/portal")
            .await
            .status,
        303
    );

    // Guessing passwords: the fifth failure within the window pauses sign-in for
    // that email, even with the right password, and says so; other emails, and
    // emails without an account alike, are counted on their own.
    let mut guesser = Visitor::new(addr);
    for _ in 0..4 {
        let r = guesser
            .sign_in("alice@example.com", "not the password", "/portal")
            .await;
        assert_eq!(r.status, 401);
    }
    let r = guesser
        .sign_in("alice@example.com", "not the password", "/portal")
        .await;
    assert_eq!(r.status, 429);
    assert!(
        r.body_str().contains("Too many failed sign-ins"),
        "{}",
        r.body_str()
    );
    let r = guesser
        .sign_in("alice@example.com", PASSWORD, "/portal")
        .await;
    assert_eq!(r.status, 429);
    // No session was started.
    assert_eq!(guesser.get("/portal").await.status, 303);
    let r = guesser
        .sign_in("carol@example.com", PASSWORD, "/portal")
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_portal_lists_an_apis_versions_and_hides_revisions() {
    // Boxed: the whole journey is one large future, and the test thread's stack is small.
    Box::pin(the_portal_lists_an_apis_versions_and_hides_revisions_steps()).await;
}

async fn the_portal_lists_an_apis_versions_and_hides_revisions_steps() {
    let data = tempfile::tempdir().unwrap();
    let mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let set =
        json!({ "displayName": "Orders", "versioningScheme": "Segment", "defaultVersion": "v1" });
    for v in ["v1", "v2"] {
        let mut a = api(&format!("orders-{v}"), "orders", "http://127.0.0.1:9");
        a["displayName"] = json!(format!("Orders {v}"));
        a["apiVersionSetId"] = json!("orders");
        a["apiVersion"] = json!(v);
        if v == "v1" {
            let plain = json!({ "displayName": "Orders", "versioningScheme": "Segment" });
            mgmt.ok(
                "PUT",
                "/api-version-sets/orders",
                Some(&plain.to_string()),
                201,
            )
            .await;
        }
        mgmt.ok(
            "PUT",
            &format!("/apis/orders-{v}"),
            Some(&a.to_string()),
            201,
        )
        .await;
    }
    mgmt.ok(
        "PUT",
        "/api-version-sets/orders",
        Some(&set.to_string()),
        200,
    )
    .await;
    mgmt.ok("POST", "/apis/orders-v1/revisions", None, 201)
        .await;

    let mut visitor = Visitor::new(mgmt.addr);
    let r = visitor.sign_up("versions@example.com").await;
    assert_eq!(r.status, 303, "{}", r.body_str());
    // The catalogue: one entry per version, each labelled; no non-current revision.
    let home = visitor.get("/portal").await.body_str();
    assert!(
        home.contains("version v1") && home.contains("version v2"),
        "{home}"
    );
    assert!(!home.contains("orders-v1~rev2"), "{home}");
    // An API's page: the version picker, this version marked, the others linked.
    let page = visitor.get("/portal/apis/orders-v2").await;
    assert_eq!(page.status, 200);
    let page = page.body_str();
    assert!(page.contains("id=\"versions-heading\""), "{page}");
    assert!(
        page.contains("<strong aria-current=\"page\">v2</strong>"),
        "{page}"
    );
    assert!(page.contains("href=\"/portal/apis/orders-v1\""), "{page}");
    assert!(page.contains("/orders/v2/…"), "{page}");
    let v1 = visitor.get("/portal/apis/orders-v1").await.body_str();
    assert!(
        v1.contains("requests that name no version reach this one"),
        "{v1}"
    );
}
