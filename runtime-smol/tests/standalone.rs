//! The smol gateway with a local configuration file, over real loopback sockets:
//! proxying with bodies of both framings, keep-alive, policies, reload, the
//! operations endpoints and graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use portcullis_runtime_smol::{Gateway, GatewayOptions};
use serde_json::{json, Value};
use support::*;

/// API `id` at `/{path}` forwarding everything to `service`, with a policy
/// document when `policy` is not empty.
fn api(id: &str, path: &str, service: &str, policy: &str) -> Value {
    let mut a = json!({
        "id": id,
        "displayName": id,
        "path": path,
        "serviceUrl": service,
        "subscriptionRequired": false,
        "operations": [{ "id": "any", "method": "*", "urlTemplate": "/*" }]
    });
    if !policy.is_empty() {
        a["policy"] = json!(policy);
    }
    a
}

fn config(revision: u64, apis: Vec<Value>) -> Value {
    json!({ "revision": revision, "apis": apis })
}

fn inbound(p: &str) -> String {
    format!("<policies><inbound><base />{p}</inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>")
}

struct TestGateway {
    gateway: Gateway,
    addr: SocketAddr,
    ops: SocketAddr,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start(doc: &Value) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.json");
    write_atomically(&path, &serde_json::to_vec(doc).unwrap());
    let mut options = GatewayOptions::new(path.clone());
    options.listen = any_port();
    options.ops_listen = Some(any_port());
    options.reload_interval = Duration::from_millis(50);
    options.shutdown_grace = Duration::from_secs(5);
    let gateway = within("gateway start", Gateway::start(options))
        .await
        .expect("gateway starts");
    TestGateway {
        addr: gateway.local_addr(),
        ops: gateway.ops_addr().unwrap(),
        gateway,
        path,
        _dir: dir,
    }
}

fn backend_config(backend: &Backend) -> Value {
    config(
        1,
        vec![api("api", "api", &format!("http://{}", backend.addr), "")],
    )
}

#[test]
fn proxies_get_and_post_with_both_body_framings() {
    smol::block_on(async {
        let backend = Backend::start();
        let gw = start(&backend_config(&backend)).await;

        let a = get(gw.addr, "/api/hello?x=1").await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("x-method").as_deref(), Some("GET"));
        assert_eq!(a.header("x-target").as_deref(), Some("/hello?x=1"));

        let mut c = Client::connect(gw.addr).await;
        c.send(b"POST /api/items HTTP/1.1\r\nHost: gw\r\nContent-Length: 11\r\n\r\nhello world")
            .await;
        let a = c.read(&http::Method::POST).await;
        assert_eq!((a.status, a.body_str().as_str()), (200, "hello world"));

        c.send(b"POST /api/items HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            .await;
        let a = c.read(&http::Method::POST).await;
        assert_eq!((a.status, a.body_str().as_str()), (200, "hello world"));

        let reqs = backend.requests();
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[1].method, "POST");
        assert_eq!(reqs[1].body, b"hello world");
        assert!(!reqs[1].chunked);
        assert_eq!(reqs[2].body, b"hello world");
        assert!(reqs[2].chunked, "a chunked body is forwarded chunked");

        // A large body crosses many reads and writes.
        let big = vec![b'x'; 1 << 20];
        let mut req = format!(
            "POST /api/big HTTP/1.1\r\nHost: gw\r\nContent-Length: {}\r\n\r\n",
            big.len()
        )
        .into_bytes();
        req.extend_from_slice(&big);
        c.send(&req).await;
        let a = c.read(&http::Method::POST).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body.len(), big.len());

        // No route: the gateway's own 404.
        assert_eq!(get(gw.addr, "/nowhere").await.status, 404);
        within("shutdown", gw.gateway.shutdown()).await;
    })
}

#[test]
fn keeps_client_and_backend_connections_alive() {
    smol::block_on(async {
        let backend = Backend::start();
        let gw = start(&backend_config(&backend)).await;
        let mut c = Client::connect(gw.addr).await;
        for i in 0..5 {
            let a = c.get(&format!("/api/n{i}")).await;
            assert_eq!(a.status, 200);
            assert_eq!(a.header("x-target"), Some(format!("/n{i}")));
            assert!(a
                .header("connection")
                .is_none_or(|v| !v.eq_ignore_ascii_case("close")));
        }
        assert_eq!(backend.connections(), 1, "the backend connection is reused");
        // Connection: close is honoured.
        c.send(b"GET /api/last HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
            .await;
        assert_eq!(c.read(&http::Method::GET).await.status, 200);
        assert!(c.is_closed().await);
        within("shutdown", gw.gateway.shutdown()).await;
    })
}

#[test]
fn applies_policies() {
    smol::block_on(async {
        let backend = Backend::start();
        let service = format!("http://{}", backend.addr);
        let doc = config(
            1,
            vec![
                api(
                    "headers",
                    "h",
                    &service,
                    &inbound(
                        r#"<set-header name="X-Added" exists-action="override"><value>@(context.Request.Method + "!")</value></set-header>"#,
                    ),
                ),
                api(
                    "limited",
                    "l",
                    &service,
                    &inbound(r#"<rate-limit calls="2" renewal-period="90" />"#),
                ),
                api(
                    "answer",
                    "r",
                    &service,
                    &inbound(
                        r#"<return-response><set-status code="418" reason="Teapot" /><set-body>short and stout</set-body></return-response>"#,
                    ),
                ),
            ],
        );
        let gw = start(&doc).await;
        assert_eq!(get(gw.addr, "/h/x").await.status, 200);
        let seen = backend.requests().pop().unwrap();
        assert_eq!(seen.header("x-added"), Some("GET!"));

        assert_eq!(get(gw.addr, "/l/1").await.status, 200);
        assert_eq!(get(gw.addr, "/l/2").await.status, 200);
        assert_eq!(get(gw.addr, "/l/3").await.status, 429);

        let a = get(gw.addr, "/r/x").await;
        assert_eq!((a.status, a.body_str().as_str()), (418, "short and stout"));
        assert_eq!(backend.requests().len(), 3);
        within("shutdown", gw.gateway.shutdown()).await;
    })
}

#[test]
fn reloads_the_configuration_file_and_keeps_the_last_good_one() {
    smol::block_on(async {
        let backend = Backend::start();
        let service = format!("http://{}", backend.addr);
        let gw = start(&config(
            1,
            vec![api("api", "api", &format!("{service}/one"), "")],
        ))
        .await;
        assert_eq!(gw.gateway.revision(), Some(1));
        assert_eq!(
            get(gw.addr, "/api/x").await.header("x-target").as_deref(),
            Some("/one/x")
        );

        let next = config(2, vec![api("api", "api", &format!("{service}/two"), "")]);
        write_atomically(&gw.path, &serde_json::to_vec(&next).unwrap());
        wait_until("revision 2", || gw.gateway.revision() == Some(2)).await;
        assert_eq!(
            get(gw.addr, "/api/x").await.header("x-target").as_deref(),
            Some("/two/x")
        );

        // A broken file is rejected; revision 2 stays in force.
        write_atomically(&gw.path, b"{ not json");
        sleep(Duration::from_millis(300)).await;
        assert_eq!(gw.gateway.revision(), Some(2));
        assert_eq!(get(gw.addr, "/api/x").await.status, 200);
        within("shutdown", gw.gateway.shutdown()).await;
    })
}

#[test]
fn a_configuration_that_does_not_load_fails_the_start() {
    smol::block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.json");
        std::fs::write(&path, b"{\"revision\": 1, \"apis\": [{}]}").unwrap();
        let mut options = GatewayOptions::new(path);
        options.listen = any_port();
        options.ops_listen = None;
        let err = Gateway::start(options).await.err().expect("refused");
        assert!(err.to_string().contains("invalid configuration"), "{err}");
        let mut options = GatewayOptions::new(dir.path().join("missing.json"));
        options.listen = any_port();
        assert!(Gateway::start(options).await.is_err());
    })
}

#[test]
fn answers_health_and_readiness() {
    smol::block_on(async {
        let backend = Backend::start();
        let gw = start(&backend_config(&backend)).await;
        let a = get(gw.ops, "/healthz").await;
        assert_eq!((a.status, a.body_str().as_str()), (200, "ok\n"));
        let a = get(gw.ops, "/readyz").await;
        assert_eq!((a.status, a.body_str().as_str()), (200, "ready\n"));
        let metrics = get(gw.ops, "/metrics").await;
        assert_eq!(metrics.status, 200);
        assert!(metrics.body_str().contains("portcullis_ready 1\n"));
        assert_eq!(get(gw.ops, "/nothing").await.status, 404);
        within("shutdown", gw.gateway.shutdown()).await;
    })
}

#[test]
fn metrics_keep_a_bounded_number_of_series_and_count_what_they_fold() {
    smol::block_on(async {
        let backend = Backend::start();
        let service = format!("http://{}", backend.addr);
        let apis = (0..30)
            .map(|i| api(&format!("api-{i:02}"), &format!("a{i}"), &service, ""))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.json");
        write_atomically(&path, &serde_json::to_vec(&config(1, apis)).unwrap());
        let mut options = GatewayOptions::new(path);
        options.listen = any_port();
        options.ops_listen = Some(any_port());
        options.telemetry.metrics_max_series = 10;
        let gateway = within("gateway start", Gateway::start(options))
            .await
            .expect("gateway starts");
        let (addr, ops) = (gateway.local_addr(), gateway.ops_addr().unwrap());
        let mut client = Client::connect(addr).await;
        for i in 0..30 {
            assert_eq!(client.get(&format!("/a{i}/x")).await.status, 200);
        }
        // A request is counted once its response is out: wait for the last.
        let text = within("every request counted", async {
            loop {
                let metrics = get(ops, "/metrics").await;
                assert_eq!(metrics.status, 200);
                let text = metrics.body_str();
                if text.contains("portcullis_metrics_series_folded_total 20\n") {
                    return text;
                }
                smol::Timer::after(Duration::from_millis(20)).await;
            }
        })
        .await;
        let requests: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("portcullis_requests_total{"))
            .collect();
        assert_eq!(requests.len(), 11, "ten APIs and the overflow: {text}");
        assert!(
            text.contains("portcullis_requests_total{api=\"(other)\",product=\"(other)\",status_class=\"2xx\"} 20\n"),
            "{text}"
        );
        assert!(!text.contains("operation="), "per API by default: {text}");
        assert!(text.len() < 100_000, "{} bytes", text.len());
        within("shutdown", gateway.shutdown()).await;
    })
}

#[test]
fn shutdown_finishes_requests_in_flight_then_stops_listening() {
    smol::block_on(async {
        let backend = Backend::start_with_delay(Duration::from_millis(400));
        let gw = start(&backend_config(&backend)).await;
        let addr = gw.addr;
        let mut idle = Client::connect(addr).await;
        assert_eq!(idle.get("/api/warm").await.status, 200);

        let in_flight = smol::spawn(async move {
            let mut c = Client::connect(addr).await;
            c.send(b"GET /api/slow HTTP/1.1\r\nHost: gw\r\n\r\n").await;
            let a = c.read(&http::Method::GET).await;
            (a.status, a.header("connection"), c.is_closed().await)
        });
        wait_until("the slow request reached the backend", || {
            backend.requests().len() == 1 && backend.connections() >= 1
        })
        .await;
        sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        within("shutdown", gw.gateway.shutdown()).await;
        let (status, connection, closed) = in_flight.await;
        assert_eq!(status, 200, "the request in flight was answered");
        assert_eq!(connection.as_deref(), Some("close"));
        assert!(closed);
        assert!(started.elapsed() < Duration::from_secs(5));
        // The idle keep-alive connection was closed, and nothing listens any more.
        assert!(idle.is_closed().await);
        assert!(std::net::TcpStream::connect(addr).is_err());
    })
}

#[test]
fn policies_make_calls_and_use_the_cache() {
    smol::block_on(async {
        let backend = Backend::start();
        let service = format!("http://{}", backend.addr);
        let b = backend.addr;
        let doc = config(
            1,
            vec![
                api(
                    "calls",
                    "s",
                    &service,
                    &inbound(&format!(
                        r#"<send-request mode="new" response-variable-name="r" timeout="20">
                             <set-url>http://{b}/side</set-url>
                             <set-method>POST</set-method>
                             <set-body>ping</set-body>
                           </send-request>
                           <send-one-way-request mode="new">
                             <set-url>http://{b}/audit</set-url>
                             <set-method>POST</set-method>
                             <set-body>seen</set-body>
                           </send-one-way-request>
                           <set-header name="X-Side" exists-action="override"><value>@(((IResponse)context.Variables["r"]).Body.As&lt;string&gt;())</value></set-header>"#
                    )),
                ),
                api(
                    "put",
                    "put",
                    &service,
                    &inbound(
                        r#"<cache-store-value key="k" value="@(context.Request.Body.As&lt;string&gt;())" duration="60" />
                           <return-response><set-status code="204" reason="No Content" /></return-response>"#,
                    ),
                ),
                api(
                    "get",
                    "get",
                    &service,
                    &inbound(
                        r#"<cache-lookup-value key="k" default-value="(none)" variable-name="found" />
                           <return-response><set-status code="200" reason="OK" /><set-body>@((string)context.Variables["found"])</set-body></return-response>"#,
                    ),
                ),
            ],
        );
        let gw = start(&doc).await;
        let a = get(gw.addr, "/s/x").await;
        assert_eq!(a.status, 200);
        wait_until("the one-way call arrives", || {
            backend.requests().iter().any(|r| r.target == "/audit")
        })
        .await;
        let reqs = backend.requests();
        let side = reqs.iter().find(|r| r.target == "/side").expect("the call");
        assert_eq!(
            (side.method.as_str(), side.body.as_slice()),
            ("POST", &b"ping"[..])
        );
        let audit = reqs.iter().find(|r| r.target == "/audit").unwrap();
        assert_eq!(audit.body, b"seen");
        let proxied = reqs
            .iter()
            .find(|r| r.target == "/x")
            .expect("the proxied request");
        assert_eq!(proxied.header("x-side"), Some("ping"));

        assert_eq!(get(gw.addr, "/get/x").await.body_str(), "(none)");
        let mut c = Client::connect(gw.addr).await;
        c.send(b"PUT /put/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 6\r\n\r\ncached")
            .await;
        assert_eq!(c.read(&http::Method::PUT).await.status, 204);
        assert_eq!(get(gw.addr, "/get/x").await.body_str(), "cached");
        within("shutdown", gw.gateway.shutdown()).await;
    })
}
