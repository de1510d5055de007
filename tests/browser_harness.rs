//! The browser harness itself: headless Chromium starts, renders a loopback page,
//! takes a screenshot, and keeps the `Secure; HttpOnly; SameSite=Strict` cookies
//! the admin console and portal set over plain HTTP on 127.0.0.1 (their sign-in
//! depends on it).

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
        .route("/show", get(show));
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
    let png = browser.screenshot("harness").await;
    assert!(std::fs::metadata(&png).unwrap().len() > 100);
    browser.close().await;
    server.abort();
}
