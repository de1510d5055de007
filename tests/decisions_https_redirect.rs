//! An API's `httpsRedirect`, tested where it is decided: a plain HTTP request
//! gets the same URL over HTTPS (301 for GET and HEAD, 308 for the rest), the
//! backend never sees it, and without the setting or an HTTPS listener the
//! API keeps APIM's answers (404 for an HTTPS-only API).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use common::memory::*;
use common::{api, config, post};
use portcullis_driver::options::HttpsOptions;
use serde_json::{json, Value};

fn redirecting(backend: &MemBackend, protocols: &[&str]) -> Value {
    let mut moved = api("moved", "moved", &format!("http://{}", backend.addr));
    moved["protocols"] = json!(protocols);
    moved["httpsRedirect"] = json!(true);
    let mut plain = api("plain", "plain", &format!("http://{}", backend.addr));
    plain["protocols"] = json!(["https"]);
    config(1, vec![moved, plain])
}

fn with_https(doc: &Value, listen: &str, public_port: Option<u16>) -> MemGateway {
    let listen: SocketAddr = listen.parse().unwrap();
    MemGateway::start_with(doc, |o| {
        o.https = Some(HttpsOptions {
            listen,
            certificates: Vec::new(),
            public_port,
        });
    })
}

#[test]
fn get_and_head_get_301_to_the_same_url_over_https() {
    let backend = MemBackend::echo();
    let gw = with_https(&redirecting(&backend, &["https"]), "0.0.0.0:8081", None);
    let mut c = gw.client();
    let r =
        c.roundtrip("GET /moved/items/7?x=1&y=%20 HTTP/1.1\r\nHost: api.example.com:8080\r\n\r\n");
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://api.example.com:8081/moved/items/7?x=1&y=%20")
    );
    assert_eq!(r.header("content-length").as_deref(), Some("0"));
    // Keep-alive: the connection serves the next request.
    let r = c.roundtrip("HEAD /moved/ HTTP/1.1\r\nHost: api.example.com\r\n\r\n");
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://api.example.com:8081/moved/")
    );
    assert_eq!(backend.requests().len(), 0);
}

#[test]
fn other_methods_get_308_and_the_connection_closes_over_an_unread_body() {
    let backend = MemBackend::echo();
    let gw = with_https(
        &redirecting(&backend, &["http", "https"]),
        "0.0.0.0:8081",
        None,
    );
    let mut c = gw.client();
    // `post` sends Host: gateway.test.
    let r = c.roundtrip(post("/moved/orders", b"{\"n\":1}"));
    assert_eq!(r.status, 308, "{r:?}");
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://gateway.test:8081/moved/orders")
    );
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert_eq!(backend.requests().len(), 0);
}

#[test]
fn the_public_port_is_used_and_443_left_out() {
    let backend = MemBackend::echo();
    let doc = redirecting(&backend, &["https"]);
    let gw = with_https(&doc, "0.0.0.0:8081", Some(443));
    let r = gw
        .client()
        .roundtrip("GET /moved/a HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n");
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://[2001:db8::1]/moved/a")
    );
    let gw = with_https(&doc, "0.0.0.0:8081", Some(9443));
    let r = gw
        .client()
        .roundtrip("GET /moved/a HTTP/1.1\r\nHost: api.example.com\r\n\r\n");
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://api.example.com:9443/moved/a")
    );
}

#[test]
fn without_the_setting_or_a_listener_apis_answer_as_protocols_say() {
    let backend = MemBackend::echo();
    let doc = redirecting(&backend, &["http", "https"]);
    // An HTTPS-only API without the setting: APIM's 404 over HTTP.
    let gw = with_https(&doc, "0.0.0.0:8081", None);
    let r = gw
        .client()
        .roundtrip("GET /plain/a HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(r.status, 404, "{r:?}");
    // No HTTPS listener: nowhere to redirect to, so the API serves HTTP.
    let gw = MemGateway::start(&doc);
    let r = gw
        .client()
        .roundtrip("GET /moved/a HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(backend.requests().len(), 1);
}
