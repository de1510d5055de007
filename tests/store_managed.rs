//! The shared-state store as operators set it: on the management plane's
//! gateway entity (two replicas of one gateway share their limits through the
//! Redis it names, and report its health in their heartbeats), and over TLS
//! (`rediss://`, a Redis with a certificate from a private CA and a password).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::managed::{ManagedGateway, ManagementProcess};
use common::policy_docs::{cfg, inbound, papi};
use common::redis::RedisServer;
use common::store::{gateways, get_at};
use common::tls::TestCa;
use common::*;
use serde_json::json;

const BY_CLIENT: &str =
    "@(context.Request.Headers.GetValueOrDefault(&quot;X-Client&quot;, &quot;anonymous&quot;))";

fn limited(calls: u32) -> String {
    inbound(&format!(
        r#"<rate-limit-by-key calls="{calls}" renewal-period="60" counter-key="{BY_CLIENT}" />"#
    ))
}

#[runtimes]
async fn the_gateway_entity_s_store_is_shared_by_its_replicas(rt: Runtime) {
    let redis = RedisServer::start();
    let backend = Backend::echo().await;
    let data = tempfile::tempdir().unwrap();
    let mgmt =
        ManagementProcess::start(any_port(), data.path(), &["--heartbeat-interval", "1"]).await;
    let api = api("limited", "api", &format!("http://{}", backend.addr));
    mgmt.ok("PUT", "/apis/limited", Some(&api.to_string()), 201)
        .await;
    let r = mgmt
        .call("PUT", "/apis/limited/policy", Some(&limited(4)))
        .await;
    assert!(matches!(r.status, 200 | 201), "{r:?}");
    let token = mgmt.gateway_with_token("edge", &["limited"]).await;
    // The store lives on the gateway entity; every replica of `edge` gets it.
    let body = json!({"location": {"name": "test lab"}, "apis": ["limited"],
                      "store": {"url": redis.url(), "timeoutMs": 5000}});
    mgmt.ok("PUT", "/gateways/edge", Some(&body.to_string()), 200)
        .await;

    let url = format!("http://{}", mgmt.addr);
    let beat = ["--heartbeat-interval", "1"];
    let a = ManagedGateway::start(rt, &url, &token, &beat).await;
    let b = ManagedGateway::start(rt, &url, &token, &beat).await;
    a.ready().await;
    b.ready().await;

    let alice = [("X-Client", "alice")];
    let mut admitted = 0;
    for i in 0..8 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let r = get_at(gw.addr, &format!("/api/{i}"), &alice).await;
        match r.status {
            200 => admitted += 1,
            429 => {}
            other => panic!("status {other}: {r:?}"),
        }
    }
    assert_eq!(admitted, 4, "two replicas admit the limit together");
    let keys = redis.keys();
    assert!(
        keys.iter().any(|k| k.starts_with("portcullis:edge:rl:")),
        "the counters are in Redis under the gateway's prefix: {keys:?}"
    );

    // Their heartbeats report the store, password-free, per instance.
    within("both instances report their store", async {
        loop {
            let status = mgmt.ok("GET", "/gateways/edge/status", None, 200).await;
            let reported = status["instances"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter(|i| i["stateStore"]["healthy"] == json!(true))
                        .count()
                })
                .unwrap_or(0);
            if reported == 2 {
                let text = status.to_string();
                assert!(text.contains("\"counting\":\"exact\""), "{text}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

/// A `redis-server` serving TLS only, with a password.
struct TlsRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsRedis {
    fn start(ca: &TestCa) -> TlsRedis {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = ca.issue(dir.path(), "redis", &["localhost"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--requirepass", "s3cret", "--tls-auth-clients", "no"])
            .arg("--tls-cert-file")
            .arg(&files.cert)
            .arg("--tls-key-file")
            .arg(&files.key)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test installs it)");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < WAIT, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsRedis {
            child,
            port,
            _dir: dir,
        }
    }
}

#[runtimes]
async fn rediss_with_a_private_ca_and_a_password(rt: Runtime) {
    let ca = TestCa::new();
    let redis = TlsRedis::start(&ca);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let backend = Backend::echo().await;
    let doc = cfg(vec![papi("limited", "api", backend.addr, &limited(2))]);
    let url = format!("rediss://:s3cret@localhost:{}/0", redis.port);
    let args: Vec<String> = [
        "--store",
        url.as_str(),
        "--store-timeout-ms",
        "5000",
        "--store-on-failure",
        "closed",
        "--upstream-ca",
        ca_file.to_str().unwrap(),
        "--gateway-id",
        "tls-edge",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let gws = gateways(rt, &doc, 2, &args).await;
    let alice = [("X-Client", "alice")];
    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for i in 0..4 {
            out.push(get_at(gws[i % 2].addr, "/api/x", &alice).await.status);
        }
        out
    };
    // Fail closed: a TLS or password problem would be 503s, not 200s and 429s.
    assert_eq!(statuses, vec![200, 200, 429, 429], "shared over TLS");
}
