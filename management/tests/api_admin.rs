//! End-to-end tests of the management API over real sockets, the admin token, entity CRUD with ETags, pagination, refused policies and references, secrets and subscription keys, body limits and TLS:
//! `Management::start` on 127.0.0.1:0 with a temporary data directory, driven
//! by a small HTTP client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_common;
#[allow(dead_code)]
mod client;

use api_common::{api, revision, start};
use client::{options, Client};
use portcullis_management::{Management, TlsMode};
use serde_json::{json, Value};

#[tokio::test]
async fn admin_token_is_required_everywhere_but_openapi_and_healthz() {
    let h = start().await;
    let anonymous = h.admin.anonymous();
    for path in [
        "/apis",
        "/revision",
        "/audit",
        "/policy",
        "/gateways/x/status",
        "/analytics/requests",
        "/analytics/records",
    ] {
        let r = anonymous.get(path).await;
        r.problem(401);
        assert!(r
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")));
        h.admin
            .with_authorization("Bearer wrong-token")
            .get(path)
            .await
            .problem(401);
        h.admin
            .with_authorization("Basic YWRtaW46YWRtaW4=")
            .get(path)
            .await
            .problem(401);
    }
    assert_eq!(h.admin.get("/apis").await.status, 200);
    assert_eq!(anonymous.get("/openapi.json").await.status, 200);
    assert_eq!(anonymous.get("/healthz").await.status, 200);
    // Writes too.
    let r = anonymous
        .put_json("/backends/b", &json!({"url": "http://x/"}))
        .await;
    r.problem(401);
    assert_eq!(revision(&h.admin).await, 0, "nothing written");
}

#[tokio::test]
async fn admin_token_survives_a_restart_and_can_come_from_the_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = Management::start(options(dir.path())).await.expect("start");
    let token = first.created_admin_token().expect("created").to_owned();
    first.shutdown().await;

    let second = Management::start(options(dir.path()))
        .await
        .expect("restart");
    assert_eq!(second.created_admin_token(), None, "printed only once");
    let client = Client::new(second.local_addr());
    assert_eq!(client.admin(&token).get("/apis").await.status, 200);
    second.shutdown().await;

    let mut from_env = options(dir.path());
    from_env.admin_token = Some("env-token-0123456789abcdef".to_owned());
    let third = Management::start(from_env)
        .await
        .expect("restart with a token");
    assert_eq!(third.created_admin_token(), None);
    let client = Client::new(third.local_addr());
    assert_eq!(
        client
            .admin("env-token-0123456789abcdef")
            .get("/apis")
            .await
            .status,
        200
    );
    client.admin(&token).get("/apis").await.problem(401);
    third.shutdown().await;
}

#[tokio::test]
async fn crud_with_etags_and_preconditions() {
    let h = start().await;
    let a = &h.admin;
    let created = a
        .put_json("/backends/b1", &json!({"url": "http://127.0.0.1:9/"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let etag = created.etag();
    assert_eq!(etag, format!("\"{}\"", revision(a).await));
    assert_eq!(created.json()["url"], "http://127.0.0.1:9/");

    let got = a.get("/backends/b1").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.etag(), etag);
    assert_eq!(got.json()["id"], "b1");
    let not_modified = a
        .get_with("/backends/b1", &[("if-none-match", &etag)])
        .await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.etag(), etag);

    // Create-only on an existing entity, and a stale If-Match: 412, nothing changes.
    let body = json!({"url": "http://127.0.0.1:10/"});
    a.put_json_with("/backends/b1", &body, &[("if-none-match", "*")])
        .await
        .problem(412);
    a.put_json_with("/backends/b1", &body, &[("if-match", "\"999\"")])
        .await
        .problem(412);
    assert_eq!(
        a.get("/backends/b1").await.json()["url"],
        "http://127.0.0.1:9/"
    );

    let replaced = a
        .put_json_with("/backends/b1", &body, &[("if-match", &etag)])
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    let etag2 = replaced.etag();
    assert_ne!(etag2, etag);
    // The old ETag is stale now.
    a.put_json_with("/backends/b1", &body, &[("if-match", &etag)])
        .await
        .problem(412);
    a.delete_with("/backends/b1", &[("if-match", &etag)])
        .await
        .problem(412);
    let deleted = a.delete_with("/backends/b1", &[("if-match", &etag2)]).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    let gone = a.get("/backends/b1").await.problem(404);
    assert!(gone["type"]
        .as_str()
        .is_some_and(|t| t.ends_with("/not-found")));
    a.delete("/backends/b1").await.problem(404);
    // If-Match on a missing entity, and If-None-Match: * creating it.
    a.put_json_with("/backends/b1", &body, &[("if-match", "*")])
        .await
        .problem(412);
    let recreated = a
        .put_json_with("/backends/b1", &body, &[("if-none-match", "*")])
        .await;
    assert_eq!(recreated.status, 201);

    // Bad JSON and a body id that contradicts the URL: 400 problem+json.
    let r = a
        .send(
            hyper::Method::PUT,
            "/backends/b2",
            &[("content-type", "application/json")],
            Some(b"{\"url\": ".to_vec()),
        )
        .await
        .problem(400);
    assert!(
        r["detail"].as_str().is_some_and(|d| d.contains("line 1")),
        "{r}"
    );
    a.put_json("/backends/b2", &json!({"id": "other", "url": "http://x/"}))
        .await
        .problem(400);

    // Every change is in the audit log, newest first, with the actor.
    let audit = a.get("/audit").await.json();
    let entries = audit["value"].as_array().expect("entries");
    assert_eq!(audit["count"], 4);
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["create", "delete", "replace", "create"]);
    assert_eq!(entries[0]["resource"], "/backends/b1");
    assert_eq!(entries[0]["actor"], "admin");
    assert!(entries[0]["at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let revisions: Vec<u64> = entries
        .iter()
        .map(|e| e["revision"].as_u64().expect("rev"))
        .collect();
    assert!(revisions.windows(2).all(|w| w[0] > w[1]), "{revisions:?}");
}

#[tokio::test]
async fn lists_paginate() {
    let h = start().await;
    let a = &h.admin;
    for i in 0..5 {
        let r = a
            .put_json(
                &format!("/backends/b{i}"),
                &json!({"url": "http://127.0.0.1:9/"}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let mut seen = Vec::new();
    let mut next = Some("/backends?top=2".to_owned());
    let mut pages = 0;
    while let Some(link) = next {
        let page = a.get(&link).await.json();
        assert_eq!(page["count"], 5);
        for item in page["value"].as_array().expect("value") {
            seen.push(item["id"].as_str().expect("id").to_owned());
        }
        next = page["nextLink"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["b0", "b1", "b2", "b3", "b4"]);
    let page = a.get("/backends?skip=4").await.json();
    assert_eq!(page["value"].as_array().map(Vec::len), Some(1));
    assert!(page.get("nextLink").is_none());
    let page = a.get("/backends").await.json();
    assert_eq!(page["value"].as_array().map(Vec::len), Some(5));
    a.get("/backends?top=many").await.problem(400);
    let audit = a.get("/audit?top=2").await.json();
    assert_eq!(audit["count"], 5);
    assert_eq!(audit["nextLink"], "/audit?skip=2&top=2");
}

#[tokio::test]
async fn a_bad_policy_is_refused_with_its_line_and_reason_and_nothing_is_stored() {
    let h = start().await;
    let a = &h.admin;
    assert_eq!(
        a.put_json("/apis/echo", &api("echo", "echo")).await.status,
        201
    );
    let before = revision(a).await;

    let bad =
        "<policies>\n  <inbound>\n    <base />\n    <no-such-policy />\n  </inbound>\n</policies>";
    let r = a.put_xml("/apis/echo/policy", bad).await.problem(400);
    assert!(
        r["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/invalid-policy")),
        "{r}"
    );
    let policy = &r["policy"];
    assert!(
        policy["owner"]
            .as_str()
            .is_some_and(|o| o.starts_with("api") && o.contains("echo")),
        "{r}"
    );
    assert_eq!(policy["element"], "no-such-policy", "{r}");
    assert_eq!(policy["line"], 4, "{r}");
    assert_eq!(policy["column"], 5, "{r}");
    assert!(
        policy["reason"].as_str().is_some_and(|s| !s.is_empty()),
        "{r}"
    );
    a.get("/apis/echo/policy").await.problem(404);

    // The same document inline in the API body: refused, the API unchanged.
    let mut with_policy = api("echo", "echo");
    with_policy["policy"] = json!(bad);
    let r = a.put_json("/apis/echo", &with_policy).await.problem(400);
    assert_eq!(r["policy"]["line"], 4, "{r}");
    // A new API with a bad policy is not created at all.
    let mut other = api("other", "other");
    other["operations"][0]["policy"] = json!(bad);
    let r = a.put_json("/apis/other", &other).await.problem(400);
    assert!(
        r["policy"]["owner"]
            .as_str()
            .is_some_and(|o| o.contains("operation")),
        "{r}"
    );
    a.get("/apis/other").await.problem(404);
    // A configuration error that is not a policy one: detail is the ConfigError.
    let r = a
        .put_json("/apis/dup", &api("dup", "echo"))
        .await
        .problem(400);
    assert!(
        r["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/invalid-configuration")),
        "{r}"
    );
    assert!(r.get("policy").is_none());
    assert_eq!(revision(a).await, before, "nothing stored");

    // Good documents at every scope, as XML.
    let good = "<policies><inbound><base /></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>";
    let r = a.put_xml("/policy", good).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = a.put_xml("/apis/echo/policy", good).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = a.put_xml("/apis/echo/operations/get/policy", good).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let etag = r.etag();
    let r = a.put_xml("/apis/echo/operations/get/policy", good).await;
    assert_eq!(r.status, 200, "replaced");
    let got = a.get("/apis/echo/operations/get/policy").await;
    assert_eq!(got.status, 200);
    assert!(got
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/xml")));
    assert_eq!(got.text(), good);
    assert_ne!(got.etag(), etag);
    a.get("/apis/echo/operations/nope/policy")
        .await
        .problem(404);
    // Not XML: 415.
    let r = a
        .send(
            hyper::Method::PUT,
            "/policy",
            &[("content-type", "application/json")],
            Some(b"{}".to_vec()),
        )
        .await;
    r.problem(415);
    let deleted = a.delete("/apis/echo/operations/get/policy").await;
    assert_eq!(deleted.status, 204);
    a.get("/apis/echo/operations/get/policy").await.problem(404);
}

#[tokio::test]
async fn referenced_entities_cannot_be_deleted() {
    let h = start().await;
    let a = &h.admin;
    assert_eq!(
        a.put_json("/apis/echo", &api("echo", "echo")).await.status,
        201
    );
    let r = a
        .put_json(
            "/products/starter",
            &json!({"displayName": "Starter", "apis": ["echo"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = a
        .put_json(
            "/subscriptions/s1",
            &json!({"displayName": "S1", "scope": "/products/starter"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = a.delete("/apis/echo").await.problem(409);
    assert!(r["type"].as_str().is_some_and(|t| t.ends_with("/conflict")));
    a.delete("/products/starter").await.problem(409);
    assert_eq!(a.get("/apis/echo").await.status, 200, "still there");
    assert_eq!(a.delete("/subscriptions/s1").await.status, 204);
    assert_eq!(a.delete("/products/starter").await.status, 204);
    assert_eq!(a.delete("/apis/echo").await.status, 204);
}

#[tokio::test]
async fn secret_named_values_are_never_shown_after_creation() {
    let h = start().await;
    let a = &h.admin;
    let created = a
        .put_json(
            "/named-values/password",
            &json!({"value": "hunter2-secret", "secret": true}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let plain = a
        .put_json(
            "/named-values/greeting",
            &json!({"value": "hello", "secret": false}),
        )
        .await;
    assert_eq!(plain.status, 201);

    let got = a.get("/named-values/password").await.json();
    assert_eq!(got["value"], Value::Null);
    assert_eq!(got["secret"], true);
    assert_eq!(
        a.get("/named-values/greeting").await.json()["value"],
        "hello"
    );
    let list = a.get("/named-values").await;
    assert!(!list.text().contains("hunter2-secret"), "{}", list.text());
    // Replacing without a value keeps the secret; the response still hides it.
    let replaced = a
        .put_json("/named-values/password", &json!({"secret": true}))
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    assert_eq!(replaced.json()["value"], Value::Null);
    let audit = a.get("/audit").await;
    assert!(!audit.text().contains("hunter2-secret"), "{}", audit.text());
}

#[tokio::test]
async fn subscription_keys_are_generated_shown_once_and_rotated() {
    let h = start().await;
    let a = &h.admin;
    assert_eq!(
        a.put_json("/apis/echo", &api("echo", "echo")).await.status,
        201
    );
    let user = json!({"email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace"});
    let r = a.put_json("/users/u1", &user).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["state"], "active");
    let created = a
        .put_json(
            "/subscriptions/s1",
            &json!({"displayName": "S1", "scope": "/apis/echo", "ownerId": "u1"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let body = created.json();
    let primary = body["primaryKey"]
        .as_str()
        .expect("primary key shown at create")
        .to_owned();
    let secondary = body["secondaryKey"]
        .as_str()
        .expect("secondary key")
        .to_owned();
    for key in [&primary, &secondary] {
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_ne!(primary, secondary);

    let got = a.get("/subscriptions/s1").await.json();
    assert!(
        got.get("primaryKey").is_none() && got.get("secondaryKey").is_none(),
        "{got}"
    );
    assert_eq!(got["state"], "active");
    assert!(!a.get("/subscriptions").await.text().contains(&primary));

    let secrets = a.post("/subscriptions/s1/secrets", None).await;
    assert_eq!(secrets.status, 200, "{}", secrets.text());
    assert_eq!(
        secrets.json(),
        json!({"primaryKey": primary, "secondaryKey": secondary})
    );

    let rotated = a
        .post("/subscriptions/s1/regenerate-primary-key", None)
        .await
        .json();
    assert_ne!(rotated["primaryKey"], primary.as_str());
    assert_eq!(rotated["secondaryKey"], secondary.as_str());
    let rotated2 = a
        .post("/subscriptions/s1/regenerate-secondary-key", None)
        .await
        .json();
    assert_eq!(rotated2["primaryKey"], rotated["primaryKey"]);
    assert_ne!(rotated2["secondaryKey"], secondary.as_str());

    let suspended = a.post("/subscriptions/s1/suspend", None).await;
    assert_eq!(suspended.status, 200, "{}", suspended.text());
    assert_eq!(suspended.json()["state"], "suspended");
    let etag = suspended.etag();
    a.post_with("/subscriptions/s1/activate", None, &[("if-match", "\"1\"")])
        .await
        .problem(412);
    let active = a
        .post_with("/subscriptions/s1/activate", None, &[("if-match", &etag)])
        .await;
    assert_eq!(active.json()["state"], "active");
    let cancelled = a.post("/subscriptions/s1/cancel", None).await;
    assert_eq!(cancelled.json()["state"], "cancelled");
    assert_eq!(
        a.get("/subscriptions/s1").await.json()["state"],
        "cancelled"
    );
    a.post("/subscriptions/nope/suspend", None)
        .await
        .problem(404);
    a.post("/subscriptions/nope/secrets", None)
        .await
        .problem(404);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let h = start().await;
    let big = vec![b' '; portcullis_management::http::MAX_BODY + 1];
    let r = h
        .admin
        .send(
            hyper::Method::PUT,
            "/backends/b",
            &[("content-type", "application/json")],
            Some(big),
        )
        .await;
    r.problem(413);
}

#[tokio::test]
async fn self_signed_tls_serves_to_a_client_trusting_the_generated_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut opts = options(dir.path());
    opts.tls = TlsMode::SelfSigned;
    let m = Management::start(opts.clone())
        .await
        .expect("start with TLS");
    assert!(
        m.base_url().starts_with("https://127.0.0.1:"),
        "{}",
        m.base_url()
    );
    let ca_path = m.ca_path().expect("CA path reported").to_owned();
    assert!(ca_path.starts_with(dir.path().join("data").join("tls")));
    let ca = std::fs::read(&ca_path).expect("CA file");
    let token = m.created_admin_token().expect("token").to_owned();
    let client = Client::tls(m.local_addr(), &ca).admin(&token);
    let r = client.get("/healthz").await;
    assert_eq!(r.status, 200);
    assert_eq!(client.get("/apis").await.status, 200);
    // Plain HTTP to the TLS port and a client that does not trust the CA both fail.
    assert!(Client::new(m.local_addr())
        .try_send(hyper::Method::GET, "/healthz", &[], None)
        .await
        .map(|r| r.status != 200)
        .unwrap_or(true));
    let other_ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("other CA")
        .cert
        .pem();
    assert!(Client::tls(m.local_addr(), other_ca.as_bytes())
        .try_send(hyper::Method::GET, "/healthz", &[], None)
        .await
        .is_err());
    m.shutdown().await;

    // The next run reuses the certificate.
    let m = Management::start(opts).await.expect("restart with TLS");
    assert_eq!(
        std::fs::read(m.ca_path().expect("CA")).expect("CA file"),
        ca
    );
    let client = Client::tls(m.local_addr(), &ca).admin(&token);
    assert_eq!(client.get("/apis").await.status, 200);
    m.shutdown().await;

    // A certificate and key given as files (here: the generated ones).
    let tls_dir = dir.path().join("data").join("tls");
    let other = tempfile::tempdir().expect("temp dir");
    let mut opts = options(other.path());
    opts.tls = TlsMode::Files {
        cert: tls_dir.join("server.pem"),
        key: tls_dir.join("server-key.pem"),
    };
    let m = Management::start(opts).await.expect("start with TLS files");
    assert_eq!(m.ca_path(), None);
    assert!(m.base_url().starts_with("https://"));
    assert_eq!(
        Client::tls(m.local_addr(), &ca)
            .get("/healthz")
            .await
            .status,
        200
    );
    m.shutdown().await;
    // A start that fails (here: on TLS) creates no admin token that nobody saw.
    let third = tempfile::tempdir().expect("temp dir");
    let mut opts = options(third.path());
    opts.tls = TlsMode::Files {
        cert: tls_dir.join("missing.pem"),
        key: tls_dir.join("server-key.pem"),
    };
    let err = Management::start(opts)
        .await
        .expect_err("missing certificate");
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let m = Management::start(options(third.path()))
        .await
        .expect("plain start");
    assert!(
        m.created_admin_token().is_some(),
        "the token is printed by the start that works"
    );
    m.shutdown().await;
}
