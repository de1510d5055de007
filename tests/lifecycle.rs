//! The gateway's life: graceful shutdown on SIGTERM and reload on SIGHUP (real
//! binary), the demo the README promises (real binary), configuration reload with
//! requests in flight and invalid files rejected (in-process), and refusing an
//! invalid file at start.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;

// ---------------------------------------------------------------------------
// Log capture: the only outward sign that a rejected file was looked at.
// ---------------------------------------------------------------------------

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogWriter(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("install log capture");
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines containing both `what` and `about`.
fn log_lines(what: &str, about: &str) -> Vec<String> {
    let log = log_buffer().lock().unwrap();
    String::from_utf8_lossy(&log)
        .lines()
        .filter(|l| l.contains(what) && l.contains(about))
        .map(str::to_owned)
        .collect()
}

/// Waits until `n` log lines contain `what` and `about`.
async fn wait_log(what: &str, about: &str, n: usize) -> Vec<String> {
    within(
        &format!("waiting for {n} log lines {what:?} about {about}"),
        async {
            loop {
                let lines = log_lines(what, about);
                if lines.len() >= n {
                    return lines;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        },
    )
    .await
}

// ---------------------------------------------------------------------------
// Graceful shutdown (real binary)
// ---------------------------------------------------------------------------

#[runtimes]
async fn sigterm_finishes_requests_in_flight_and_exits_cleanly(rt: Runtime) {
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let backend = Backend::start(move |r| {
        if r.target() == "/slow" {
            Reply::AfterGate(g.clone(), ok("text/plain", b"slow but complete"))
        } else {
            Reply::Send(ok("text/plain", b"fast"))
        }
    })
    .await;
    let mut gw =
        GatewayProcess::start(rt, &config_for(backend.addr), &["--shutdown-grace", "20"]).await;

    // An idle keep-alive connection, and a request the backend is sitting on.
    let mut idle = Client::connect(gw.addr).await;
    assert_eq!(idle.roundtrip(get("/api/fast")).await.status, 200);
    let mut slow = Client::connect(gw.addr).await;
    slow.send(get("/api/slow")).await;
    backend.wait_requests(2).await;

    wait_sigterm_handler(gw.pid()).await;
    gw.signal("TERM");

    // Idle connections are closed.
    idle.expect_closed().await;

    // New connections are refused (or closed unanswered) once shutdown has begun;
    // until then a probe may still be answered, so keep trying.
    within("new connections refused after SIGTERM", async {
        loop {
            let Ok(stream) = TcpStream::connect(gw.addr).await else {
                break;
            };
            let mut c = Client::from_stream(stream);
            c.send_lossy(get("/status-0123456789abcdef")).await;
            let (_how, answer) = c.read_to_end().await;
            if answer.is_empty() {
                break;
            }
            assert!(
                answer.starts_with(b"HTTP/1.1 200 "),
                "{:?}",
                String::from_utf8_lossy(&answer)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // The process is still draining: it must not have exited yet.
    if let Some(status) = gw.child.try_wait().unwrap() {
        // Let the log reader catch up before reporting.
        tokio::time::sleep(Duration::from_millis(300)).await;
        panic!(
            "gateway exited ({status:?}) with a request in flight; log:\n{}",
            gw.log_text()
        );
    }

    // The backend answers; the client gets all of it, told that the connection closes.
    gate.notify_one();
    let r = slow.response().await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "slow but complete");
    assert!(
        r.says_close(),
        "draining response must say Connection: close: {r:?}; log:\n{}",
        gw.log_text()
    );
    slow.expect_closed().await;

    let status = gw.wait_exit().await;
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        gw.log_text()
    );
}

/// SIGHUP reads the configuration file at once (here the reload interval is an
/// hour, so nothing else would) and the process lives on, as nginx users expect.
#[runtimes]
async fn sighup_reloads_the_configuration_file_and_the_process_survives(rt: Runtime) {
    let backend = Backend::start(|_| Reply::Send(ok("text/plain", b"ok"))).await;
    let url = format!("http://{}", backend.addr);
    let first = config(1, vec![api("one", "one", &url)]);
    let mut gw = GatewayProcess::start(rt, &first, &["--reload-interval-ms", "3600000"]).await;
    assert_eq!(fetch(gw.addr, "/one/x").await.status, 200);
    assert_eq!(fetch(gw.addr, "/two/x").await.status, 404);
    // The watcher's first check (at start) has passed once the gateway answers;
    // give it a moment more so the new file is not what that check reads.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let second = config(2, vec![api("two", "two", &url)]);
    write_atomically(
        &gw.config_path,
        &serde_json::to_vec_pretty(&second).unwrap(),
    );
    gw.signal("HUP");
    poll_status(gw.addr, "/two/x", 200).await;
    assert_eq!(fetch(gw.addr, "/one/x").await.status, 404);
    gw.wait_log("configuration reloaded").await;

    // Another SIGHUP with the file unchanged: nothing changes, nobody dies.
    gw.signal("HUP");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "the gateway exited on SIGHUP; log:\n{}",
        gw.log_text()
    );
    assert_eq!(fetch(gw.addr, "/two/x").await.status, 200);
    assert_eq!(fetch(gw.ops_addr, "/readyz").await.status, 200);

    wait_sigterm_handler(gw.pid()).await;
    gw.signal("TERM");
    let status = gw.wait_exit().await;
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        gw.log_text()
    );
}

/// Once shutdown has begun, every response still to come says `Connection: close`,
/// even when its bytes and the stop reach a connection in the same wakeup.
///
/// In-process, repeated: each round has the same order of events (stop, idle
/// connection closed, then the backend answers), but whether the connection's
/// task notices the stop before it reads the answer depends on scheduling, which
/// the repetitions vary.
#[runtimes]
async fn responses_after_shutdown_began_say_connection_close(rt: Runtime) {
    for round in 0..300 {
        let gate = Arc::new(Notify::new());
        let g = gate.clone();
        let backend = Backend::start(move |r| {
            if r.target() == "/slow" {
                Reply::AfterGate(g.clone(), ok("text/plain", b"slow but complete"))
            } else {
                Reply::Send(ok("text/plain", b"fast"))
            }
        })
        .await;
        let gw = TestGateway::for_backend(rt, &backend).await;
        let mut idle = gw.client().await;
        assert_eq!(idle.roundtrip(get("/api/fast")).await.status, 200);
        let mut slow = gw.client().await;
        slow.send(get("/api/slow")).await;
        backend.wait_requests(2).await;
        let stopping = tokio::spawn(gw.stop());
        // The idle connection closing shows the shutdown has begun.
        idle.expect_closed().await;
        gate.notify_one();
        let r = slow.response().await;
        assert_eq!(r.body_str(), "slow but complete");
        assert!(
            r.says_close(),
            "round {round}: response after shutdown began without Connection: close: {r:?}"
        );
        slow.expect_closed().await;
        within("shutdown", stopping).await.unwrap();
    }
}

// ---------------------------------------------------------------------------
// The demo (real binary)
// ---------------------------------------------------------------------------

#[runtimes]
async fn demo_serves_the_sample_api(rt: Runtime) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "demo",
            "--runtime",
            rt.name(),
            "--listen",
            "127.0.0.1:0",
            "--ops-listen",
            "127.0.0.1:0",
            "--https-listen",
            "127.0.0.1:0",
            // Not the default 8090: the two runtimes' demos run at the same
            // time, and both would find it free before either binds it.
            "--management-listen",
            "127.0.0.1:0",
        ])
        .env_clear()
        .envs(clean_env())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn portcullis demo");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut vars = std::collections::HashMap::new();
    within("demo prints its endpoints", async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with('#') {
                break;
            }
            if let Some((k, v)) = line.split_once('=') {
                vars.insert(k.to_owned(), v.to_owned());
            }
        }
    })
    .await;
    // Keep draining stdout so the demo never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let url = vars.get("GATEWAY_URL").expect("GATEWAY_URL printed");
    let path = vars
        .get("SAMPLE_API_PATH")
        .expect("SAMPLE_API_PATH printed");
    let addr: std::net::SocketAddr = url
        .strip_prefix("http://")
        .expect("http URL")
        .parse()
        .expect("GATEWAY_URL is host:port");
    assert_ne!(addr.port(), 0);

    let mut c = Client::connect(addr).await;
    let r = c.roundtrip(get(&format!("{path}/hello"))).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{r:?}"
    );
    let body = r.json();
    assert!(body["message"].as_str().is_some(), "{body}");
    assert_eq!(body["forwardedFor"], "127.0.0.1");
    assert_eq!(body["forwardedProto"], "http");

    // HTTPS, trusting the CA the demo printed, as its curl --cacert line does.
    let https: std::net::SocketAddr = vars
        .get("HTTPS_GATEWAY_URL")
        .expect("HTTPS_GATEWAY_URL printed")
        .strip_prefix("https://")
        .expect("https URL")
        .parse()
        .expect("HTTPS_GATEWAY_URL is host:port");
    let ca = std::path::PathBuf::from(vars.get("GATEWAY_CA").expect("GATEWAY_CA printed"));
    let client = std::sync::Arc::new(common::tls::client_trusting(&ca));
    for name in ["localhost", "127.0.0.1"] {
        let r = common::tls::https_get(https, &client, name, &format!("{path}/hello")).await;
        assert_eq!(r.status, 200, "{r:?}");
        let body: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
        assert_eq!(body["forwardedProto"], "https", "{body}");
    }

    // The keyed API, as the README's second curl line shows.
    if let (Some(keyed), Some(key)) = (vars.get("KEYED_API_PATH"), vars.get("SUBSCRIPTION_KEY")) {
        let r = c.roundtrip(get(&format!("{keyed}/hello"))).await;
        assert_eq!(r.status, 401);
        let r = c
            .roundtrip(format!(
                "GET {keyed}/hello HTTP/1.1\r\nHost: demo\r\nOcp-Apim-Subscription-Key: {key}\r\n\r\n"
            ))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    // The management plane it printed answers with the admin token, and lists
    // what the demo seeded.
    let management: std::net::SocketAddr = vars
        .get("MANAGEMENT_URL")
        .expect("MANAGEMENT_URL printed")
        .strip_prefix("http://")
        .expect("http URL")
        .parse()
        .expect("MANAGEMENT_URL is host:port");
    let token = vars.get("ADMIN_TOKEN").expect("ADMIN_TOKEN printed");
    let mut m = Client::connect(management).await;
    let r = m
        .roundtrip(format!(
            "GET /apis HTTP/1.1\r\nHost: demo\r\nAuthorization: Bearer {token}\r\n\r\n"
        ))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["count"], 2, "{}", r.body_str());
    let r = m.roundtrip(get("/apis")).await;
    assert_eq!(r.status, 401, "the management API needs the token");
    // The portal and the console it printed ask to sign in; the portal's "try it"
    // goes to the demo gateway, whose URL the demo registered.
    let base = vars.get("MANAGEMENT_URL").expect("MANAGEMENT_URL printed");
    for (key, page, login) in [
        ("PORTAL_URL", "/portal", "/portal/signin"),
        ("ADMIN_URL", "/admin", "/admin/login"),
    ] {
        assert_eq!(
            vars.get(key).map(String::as_str),
            Some(format!("{base}{page}").as_str())
        );
        let r = m.roundtrip(get(page)).await;
        assert_eq!(r.status, 303, "{page}: {r:?}");
        assert!(
            r.header("location").is_some_and(|l| l.starts_with(login)),
            "{page}: {r:?}"
        );
    }
    let r = m
        .roundtrip(format!(
            "GET /gateways/demo-gateway HTTP/1.1\r\nHost: demo\r\nAuthorization: Bearer {token}\r\n\r\n"
        ))
        .await;
    assert_eq!(
        r.json()["url"].as_str(),
        Some(url.as_str()),
        "{}",
        r.body_str()
    );
    let r = m
        .roundtrip(format!(
            "GET /apis/sample/openapi HTTP/1.1\r\nHost: demo\r\nAuthorization: Bearer {token}\r\n\r\n"
        ))
        .await;
    assert!(
        r.body_str().contains("#/components/schemas/Greeting"),
        "the demo's OpenAPI document is imported: {}",
        r.body_str()
    );
    drop(m);
    let ops = vars.get("OPS_URL").expect("OPS_URL printed");
    let ops: std::net::SocketAddr = ops.strip_prefix("http://").unwrap().parse().unwrap();
    assert_eq!(fetch(ops, "/readyz").await.status, 200);
    // METRICS_URL is the gateway's Prometheus endpoint; it counted the call above.
    let metrics = vars.get("METRICS_URL").expect("METRICS_URL printed");
    assert_eq!(metrics, &format!("http://{ops}/metrics"));
    let text = fetch(ops, "/metrics").await.body_str();
    assert!(text.contains("portcullis_requests_total{api="), "{text}");
    drop(c);

    let pid = child.id().unwrap();
    wait_sigterm_handler(pid).await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = within("demo exits", child.wait()).await.unwrap();
    assert!(status.success(), "demo exit status {status:?}");
}

// ---------------------------------------------------------------------------
// Reload (in-process)
// ---------------------------------------------------------------------------

/// A configuration with API `version` at `/{version}`; its size differs with each
/// revision (see `reload_sees_a_same_size_file_with_preserved_mtime` for why).
fn versioned(revision: u64, version: &str, backend: std::net::SocketAddr) -> Vec<u8> {
    let mut doc = config(
        revision,
        vec![api(
            &format!("api-{version}"),
            version,
            &format!("http://{backend}"),
        )],
    );
    doc["apis"][0]["description"] = json!("r".repeat(revision as usize));
    serde_json::to_vec_pretty(&doc).unwrap()
}

/// The same configuration with a description that keeps its size at that of
/// revision `same_size_as`.
fn versioned_padded(
    revision: u64,
    version: &str,
    backend: std::net::SocketAddr,
    same_size_as: u64,
) -> Vec<u8> {
    let mut doc: serde_json::Value =
        serde_json::from_slice(&versioned(revision, version, backend)).unwrap();
    doc["apis"][0]["description"] = json!("r".repeat(same_size_as as usize));
    serde_json::to_vec_pretty(&doc).unwrap()
}

/// Polls `path` on new connections until it answers `status`.
async fn until_status(gw: &TestGateway, path: &str, status: u16) {
    poll_status(gw.addr, path, status).await;
}

#[runtimes]
async fn reload_keeps_requests_in_flight_and_rejects_invalid_files(rt: Runtime) {
    log_buffer();
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let backend = Backend::start(move |r| {
        if r.target() == "/slow" {
            Reply::AfterGate(g.clone(), ok("text/plain", b"slow on revision 1"))
        } else {
            Reply::Send(response(200, &[("X-Path", &r.target())], b"ok"))
        }
    })
    .await;
    let doc: serde_json::Value = serde_json::from_slice(&versioned(1, "v1", backend.addr)).unwrap();
    let gw = TestGateway::start_with(rt, &doc, |o| {
        o.reload_interval = Duration::from_millis(50);
    })
    .await;
    assert_eq!(gw.gateway.revision(), Some(1));

    // A keep-alive connection used before and after the reload.
    let mut keep = gw.client().await;
    assert_eq!(keep.roundtrip(get("/v1/before")).await.status, 200);
    // A request in flight on revision 1.
    let mut slow = gw.client().await;
    slow.send(get("/v1/slow")).await;
    backend.wait_requests(2).await;

    write_atomically(&gw.config_path, &versioned(2, "v2", backend.addr));
    until_status(&gw, "/v2/hello", 200).await;
    assert_eq!(gw.gateway.revision(), Some(2));
    let mut c = gw.client().await;
    let r = c.roundtrip(get("/v1/hello")).await;
    assert_eq!(r.status, 404, "the old path is gone: {r:?}");
    let r = c.roundtrip(get("/v2/hello")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-path").as_deref(), Some("/hello"));
    // The connection opened before the reload routes its next request with the new one.
    assert_eq!(keep.roundtrip(get("/v2/after")).await.status, 200);
    assert_eq!(keep.roundtrip(get("/v1/after")).await.status, 404);

    // The request in flight finishes on the configuration it started with.
    gate.notify_one();
    let r = slow.response().await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "slow on revision 1");

    let path = gw.config_path.display().to_string();
    // Broken JSON: rejected, revision 2 stays in force.
    write_atomically(&gw.config_path, b"{ \"revision\": 3, \"apis\": [ oops");
    let lines = wait_log("configuration rejected", &path, 1).await;
    assert!(
        lines[0].contains("line") && lines[0].contains("column"),
        "JSON errors name line and column: {lines:?}"
    );
    assert_eq!(gw.gateway.revision(), Some(2));
    assert_eq!(c.roundtrip(get("/v2/still")).await.status, 200);
    assert_eq!(c.roundtrip(get("/v1/still")).await.status, 404);

    // Valid JSON that does not validate: rejected too.
    let mut bad = config(
        4,
        vec![api("v4", "v4", &format!("http://{}", backend.addr))],
    );
    bad["apis"][0]["timeoutSeconds"] = json!(0);
    write_atomically(&gw.config_path, &serde_json::to_vec(&bad).unwrap());
    wait_log("configuration rejected", &path, 2).await;
    assert_eq!(gw.gateway.revision(), Some(2));
    assert_eq!(c.roundtrip(get("/v2/still")).await.status, 200);
    assert_eq!(c.roundtrip(get("/v4/x")).await.status, 404);
    assert_eq!(fetch(gw.ops_addr, "/readyz").await.status, 200);

    // And a good file after the bad ones is picked up.
    write_atomically(&gw.config_path, &versioned(5, "v5", backend.addr));
    until_status(&gw, "/v5/hello", 200).await;
    assert_eq!(gw.gateway.revision(), Some(5));
    drop((c, keep, slow));
    gw.stop().await;
}

/// A file whose revision is not above the one in force is refused on reload with a
/// warning naming both revisions (an old file put back, or an edit that forgot to
/// bump the revision); the configuration in force keeps serving.
#[runtimes]
async fn reload_refuses_a_revision_not_above_the_one_in_force(rt: Runtime) {
    log_buffer();
    let backend = Backend::echo().await;
    let doc: serde_json::Value = serde_json::from_slice(&versioned(2, "v2", backend.addr)).unwrap();
    let gw = TestGateway::start_with(rt, &doc, |o| {
        o.reload_interval = Duration::from_millis(50);
    })
    .await;
    assert_eq!(gw.gateway.revision(), Some(2));
    let path = gw.config_path.display().to_string();

    // The same revision with other content: refused.
    write_atomically(
        &gw.config_path,
        &versioned_padded(2, "same", backend.addr, 7),
    );
    let lines = wait_log("configuration refused", &path, 1).await;
    assert!(
        lines[0].contains("WARN") && lines[0].contains("revision 2 is not above revision 2"),
        "{lines:?}"
    );
    assert_eq!(fetch(gw.addr, "/same/x").await.status, 404);
    assert_eq!(fetch(gw.addr, "/v2/x").await.status, 200);

    // A lower revision: refused too.
    write_atomically(&gw.config_path, &versioned(1, "older", backend.addr));
    let lines = wait_log("configuration refused", &path, 2).await;
    assert!(
        lines[1].contains("revision 1 is not above revision 2"),
        "{lines:?}"
    );
    assert_eq!(gw.gateway.revision(), Some(2));
    assert_eq!(fetch(gw.addr, "/older/x").await.status, 404);
    assert_eq!(fetch(gw.addr, "/v2/x").await.status, 200);

    // A higher one is put in force.
    write_atomically(&gw.config_path, &versioned(3, "v3", backend.addr));
    until_status(&gw, "/v3/x", 200).await;
    assert_eq!(gw.gateway.revision(), Some(3));
    gw.stop().await;
}

/// An API whose policy sends every request to backend `backend_id`.
fn routed_to(revision: u64, backend_id: &str, backend: std::net::SocketAddr) -> Vec<u8> {
    let mut doc = config(
        revision,
        vec![api("routed", "routed", &format!("http://{backend}"))],
    );
    doc["apis"][0]["policy"] = json!(format!(
        "<policies>\n  <inbound>\n    <base />\n    <set-backend-service backend-id=\"{backend_id}\" />\n  </inbound>\n</policies>"
    ));
    doc["backends"] = json!([{"id": "b1", "url": format!("http://{backend}/b1")}]);
    serde_json::to_vec_pretty(&doc).unwrap()
}

/// A policy naming a backend the file does not define is a compile error when the
/// file is loaded, not a 500 for every request: at start the gateway refuses the
/// file; on reload it keeps the configuration in force and logs why.
#[runtimes]
async fn a_policy_naming_a_missing_backend_is_refused_when_loaded(rt: Runtime) {
    log_buffer();
    let backend = Backend::echo().await;
    let reason = "backend 'ghost' does not exist";

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.json");
    std::fs::write(&path, routed_to(1, "ghost", backend.addr)).unwrap();
    let mut options = GatewayOptions::new(path.clone());
    options.listen = any_port();
    options.ops_listen = Some(any_port());
    match Gateway::start(rt, options).await {
        Err(e) => {
            let msg = e
                .config_error()
                .unwrap_or_else(|| panic!("wrong error: {e}"));
            assert!(msg.contains(reason), "{msg}");
            assert!(
                msg.contains("api `routed`") && msg.contains("line 4"),
                "{msg}"
            );
        }
        Ok(_) => panic!("a gateway started naming a missing backend"),
    }

    let doc: serde_json::Value = serde_json::from_slice(&routed_to(1, "b1", backend.addr)).unwrap();
    let gw = TestGateway::start_with(rt, &doc, |o| {
        o.reload_interval = Duration::from_millis(50);
    })
    .await;
    let r = fetch(gw.addr, "/routed/x").await;
    assert_eq!(r.status, 200, "{r:?}");
    write_atomically(&gw.config_path, &routed_to(2, "ghost", backend.addr));
    let lines = wait_log("configuration rejected", reason, 1).await;
    assert!(lines[0].contains("line 4"), "{lines:?}");
    assert_eq!(gw.gateway.revision(), Some(1));
    let r = fetch(gw.addr, "/routed/y").await;
    assert_eq!(r.status, 200, "revision 1 still serves: {r:?}");
    let targets: Vec<String> = backend.requests().iter().map(|r| r.target()).collect();
    assert_eq!(targets, ["/b1/x", "/b1/y"]);
    gw.stop().await;
}

/// A change written right after the gateway started must not be lost.
///
/// The single-threaded runtime makes the interleaving deterministic: the file is
/// rewritten after `Gateway::start` returned and before the file watcher task first
/// ran.
#[runtimes(flavor = "current_thread")]
async fn reload_sees_a_change_made_right_after_start(rt: Runtime) {
    let backend = Backend::echo().await;
    let doc: serde_json::Value = serde_json::from_slice(&versioned(1, "v1", backend.addr)).unwrap();
    let gw = TestGateway::start_with(rt, &doc, |o| {
        o.reload_interval = Duration::from_millis(50);
    })
    .await;
    // A different length, so no file-stamp coarseness can hide the change.
    write_atomically(&gw.config_path, &versioned(2, "version2", backend.addr));
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if gw.gateway.revision() == Some(2) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        seen.is_ok(),
        "revision 2 written just after start was never applied (still {:?})",
        gw.gateway.revision()
    );
    assert_eq!(fetch(gw.addr, "/version2/x").await.status, 200);
    gw.stop().await;
}

/// A new version with the same size and modification time as the old one is still
/// a new version. Same mtimes are common: file timestamps come from a coarse clock
/// (one tick is 4 ms on this kernel), so two writes in the same tick share one, and
/// `cp -p`, `rsync -t` or `tar` preserve them on purpose. (The reload test above
/// hit this by chance about one run in ten before its revisions got different
/// sizes.)
#[runtimes]
async fn reload_sees_a_same_size_file_with_preserved_mtime(rt: Runtime) {
    let backend = Backend::echo().await;
    let doc: serde_json::Value = serde_json::from_slice(&versioned(1, "v1", backend.addr)).unwrap();
    let gw = TestGateway::start_with(rt, &doc, |o| {
        o.reload_interval = Duration::from_millis(50);
    })
    .await;
    // A first reload shows the watcher is running and has seen the file.
    write_atomically(&gw.config_path, &versioned(2, "version2", backend.addr));
    until_status(&gw, "/version2/x", 200).await;
    assert_eq!(gw.gateway.revision(), Some(2));
    let old = std::fs::metadata(&gw.config_path).unwrap();
    let new = versioned_padded(3, "version3", backend.addr, 2);
    assert_eq!(new.len() as u64, old.len());
    let dir = gw.config_path.parent().unwrap();
    let mut tmp = tempfile::NamedTempFile::new_in(dir).unwrap();
    tmp.write_all(&new).unwrap();
    tmp.as_file().set_modified(old.modified().unwrap()).unwrap();
    tmp.persist(&gw.config_path).unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if gw.gateway.revision() == Some(3) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        seen.is_ok(),
        "same-size revision 3 with the old mtime was never applied (still {:?})",
        gw.gateway.revision()
    );
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// Start-up
// ---------------------------------------------------------------------------

#[runtimes]
async fn invalid_configuration_at_start_is_refused(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.json");
    std::fs::write(&path, b"{\n  \"revision\": 1,\n  \"apis\": [,]\n}").unwrap();
    let mut options = GatewayOptions::new(path.clone());
    options.listen = any_port();
    options.ops_listen = Some(any_port());
    match Gateway::start(rt, options).await {
        Err(e) => {
            let msg = e
                .config_error()
                .unwrap_or_else(|| panic!("wrong error: {e}"));
            assert!(msg.contains("line 3"), "error names the line: {msg}");
        }
        Ok(_) => panic!("a gateway started on an invalid configuration"),
    }

    // The binary exits with an error instead of serving.
    let out = within(
        "portcullis gateway with an invalid file",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args([
                "gateway",
                "--runtime",
                rt.name(),
                "--listen",
                "127.0.0.1:0",
                "--ops-listen",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(&path)
            .env_clear()
            .envs(clean_env())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");
}

#[runtimes]
async fn in_process_shutdown_closes_idle_connections(rt: Runtime) {
    let backend = Backend::echo().await;
    let gw = TestGateway::for_backend(rt, &backend).await;
    let addr = gw.addr;
    let mut idle = gw.client().await;
    assert_eq!(idle.roundtrip(get("/api/x")).await.status, 200);
    gw.stop().await;
    idle.expect_closed().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener still accepting after shutdown"
    );
}
