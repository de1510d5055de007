//! The browser harness itself: headless Chromium starts, renders a loopback page,
//! finds what its accessibility check looks for, takes a screenshot, and keeps the `Secure; HttpOnly; SameSite=Strict` cookies
//! the admin console and portal set over plain HTTP on 127.0.0.1 (their sign-in
//! depends on it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use common::browser::Browser;

async fn set() -> impl IntoResponse {
    (
        [(
            SET_COOKIE,
            "sid=abc123; Path=/; Max-Age=60; HttpOnly; SameSite=Strict; Secure",
        )],
        Html("<!doctype html><html lang=en><title>set</title><h1>cookie set</h1></html>"),
    )
}

/// A page that gets two basics wrong: grey-on-white text and an unlabelled field.
async fn careless() -> Html<&'static str> {
    Html(
        "<!doctype html><html lang=en><head><title>careless</title>\
         <style>p.faint{color:#bbb} p.ok{color:#333}</style></head><body>\
         <a href=\"#main\">Skip</a><main id=main><h1>Careless</h1>\
         <p class=faint>hard to read</p><p class=ok>easy to read</p>\
         <input name=q></main></body></html>",
    )
}

async fn show(headers: HeaderMap) -> Html<String> {
    let cookie = headers
        .get(COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    Html(format!(
        "<!doctype html><html lang=en><title>show</title><h1 id=c>cookie: {cookie}</h1></html>"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_keeps_secure_cookies_on_loopback_and_takes_screenshots() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/set", get(set))
        .route("/show", get(show))
        .route("/careless", get(careless));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let browser = Browser::start().await;
    browser.goto(&format!("http://{addr}/set")).await;
    browser.wait_for_text("cookie set").await;
    browser.goto(&format!("http://{addr}/show")).await;
    let shown = browser.find("#c").await.text().await.unwrap();
    assert_eq!(shown, "cookie: sid=abc123");
    // JavaScript cannot read an HttpOnly cookie.
    let seen = browser
        .client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert_eq!(seen, serde_json::json!(""));
    // The accessibility check catches what it claims to.
    browser.goto(&format!("http://{addr}/careless")).await;
    browser.wait_for_text("Careless").await;
    let problems = browser.accessibility_problems().await;
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("unlabelled field q"),
        "{problems:?}"
    );
    assert!(problems[1].starts_with("contrast 1.9"), "{problems:?}");
    assert!(problems[1].contains("hard to read"), "{problems:?}");
    let png = browser.screenshot("harness").await;
    assert!(std::fs::metadata(&png).unwrap().len() > 100);
    browser.close().await;
    server.abort();
}
