//! Compose projects for the container tests: the `docker` and Compose CLIs run
//! through std::process, one fresh project (own network and volumes) per test,
//! torn down by a guard even when the test panics.

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::http::{self, Response};

/// The admin token the tests give the management plane.
pub const ADMIN_TOKEN: &str = "container-tests-admin-token";

/// The tests share two cores and the Docker daemon: one project at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// How Compose is run here: `docker-compose` (v1) or `docker compose` (v2).
fn compose_program() -> &'static [&'static str] {
    static PROGRAM: OnceLock<&'static [&'static str]> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let v1 = Command::new("docker-compose").arg("version").output();
        if v1.map(|o| o.status.success()).unwrap_or(false) {
            &["docker-compose"]
        } else {
            &["docker", "compose"]
        }
    })
}

/// The image under test, or why the tests are skipped.
fn image_or_skip() -> Option<String> {
    let Ok(image) = std::env::var("PORTCULLIS_IMAGE") else {
        eprintln!(
            "SKIPPED: PORTCULLIS_IMAGE is not set (build the image with deploy/build-image.sh, \
             then run with PORTCULLIS_IMAGE=portcullis:local)"
        );
        return None;
    };
    let info = Command::new("docker").arg("info").output();
    if !info.map(|o| o.status.success()).unwrap_or(false) {
        eprintln!("SKIPPED: no Docker daemon answers (`docker info` failed)");
        return None;
    }
    Some(image)
}

/// Runs `program args`, returning its output whatever the exit status.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Runs `docker args` and returns its trimmed stdout; panics on failure.
pub fn docker(args: &[&str]) -> String {
    let out = run("docker", args);
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A free port on loopback (free when asked; Docker binds it soon after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The host ports a project's services are published on.
pub struct Ports {
    /// The management plane's API.
    pub management: u16,
    /// Gateway edge-1's API and ops ports.
    pub edge1: (u16, u16),
    /// Gateway edge-2's API and ops ports.
    pub edge2: (u16, u16),
}

/// A running Compose project from deploy/compose.yaml; `down -v` on drop.
pub struct Project {
    /// The Compose project name (prefix of its network and volume names).
    pub name: String,
    /// The image it runs.
    pub image: String,
    /// Where its services are published on loopback.
    pub ports: Ports,
    env: Vec<(String, String)>,
    _serial: MutexGuard<'static, ()>,
}

impl Project {
    /// Starts deploy/compose.yaml as a fresh project and waits until both
    /// gateways are ready; `None` (the test is skipped) without Docker or image.
    pub fn up(test: &str) -> Option<Project> {
        let image = image_or_skip()?;
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!("pctest-{test}-{}", std::process::id()).replace('_', "-");
        let ports = Ports {
            management: free_port(),
            edge1: (free_port(), free_port()),
            edge2: (free_port(), free_port()),
        };
        let env = vec![
            ("PORTCULLIS_IMAGE".to_owned(), image.clone()),
            ("PORTCULLIS_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned()),
            (
                "MANAGEMENT_HTTP".to_owned(),
                format!("127.0.0.1:{}", ports.management),
            ),
            (
                "EDGE1_HTTP".to_owned(),
                format!("127.0.0.1:{}", ports.edge1.0),
            ),
            (
                "EDGE1_OPS".to_owned(),
                format!("127.0.0.1:{}", ports.edge1.1),
            ),
            (
                "EDGE2_HTTP".to_owned(),
                format!("127.0.0.1:{}", ports.edge2.0),
            ),
            (
                "EDGE2_OPS".to_owned(),
                format!("127.0.0.1:{}", ports.edge2.1),
            ),
        ];
        let project = Project {
            name,
            image,
            ports,
            env,
            _serial: serial,
        };
        let started = Instant::now();
        project.compose_ok(&["up", "-d"]);
        project.wait_ready(project.ports.edge1.1, Duration::from_secs(60));
        project.wait_ready(project.ports.edge2.1, Duration::from_secs(60));
        eprintln!(
            "[{}] up and both gateways ready in {} ms",
            project.name,
            started.elapsed().as_millis()
        );
        Some(project)
    }

    /// Runs a Compose command on this project.
    pub fn compose(&self, args: &[&str]) -> Output {
        let program = compose_program();
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/compose.yaml");
        Command::new(program[0])
            .args(&program[1..])
            .args(["-f", file, "-p", &self.name])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("running compose")
    }

    /// Runs a Compose command that must succeed; returns its stdout.
    pub fn compose_ok(&self, args: &[&str]) -> String {
        let out = self.compose(args);
        assert!(
            out.status.success(),
            "compose {}: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The container id of `service`.
    pub fn container(&self, service: &str) -> String {
        let id = self.compose_ok(&["ps", "-q", service]);
        assert!(!id.is_empty(), "service {service} has no container");
        id
    }

    /// The project's private network (gateways, management plane, backend).
    pub fn private_network(&self) -> String {
        format!("{}_private", self.name)
    }

    /// Every service's log, for failure messages.
    pub fn logs(&self) -> String {
        let out = self.compose(&["logs", "--no-color", "--tail", "60"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the ops port answers `/readyz` with 200.
    pub fn wait_ready(&self, ops_port: u16, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(r) = http::get(loopback(ops_port), "/readyz", &[]) {
                if r.status == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "not ready on ops port {ops_port} within {within:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One management API call with the admin token, through the published port.
    pub fn admin(&self, method: &str, path: &str, body: &str) -> Response {
        let bearer = format!("Bearer {ADMIN_TOKEN}");
        let content_type = if body.trim_start().starts_with('<') {
            "application/xml"
        } else {
            "application/json"
        };
        let headers = [
            ("Authorization", bearer.as_str()),
            ("Content-Type", content_type),
        ];
        http::call(
            loopback(self.ports.management),
            method,
            path,
            &headers,
            body,
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.logs()))
    }

    /// An admin call that must answer 2xx.
    pub fn admin_ok(&self, method: &str, path: &str, body: &str) -> Response {
        let r = self.admin(method, path, body);
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: {} {}",
            r.status,
            r.body_text()
        );
        r
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // A paused container cannot be stopped: unpause whatever the test paused.
        let label = format!("label=com.docker.compose.project={}", self.name);
        let paused = run(
            "docker",
            &["ps", "-q", "--filter", &label, "--filter", "status=paused"],
        );
        for id in String::from_utf8_lossy(&paused.stdout).split_whitespace() {
            run("docker", &["unpause", id]);
        }
        // Containers the tests ran beside Compose first: they hold the network.
        let extra = format!("label={}", extra_label(self));
        let left = run("docker", &["ps", "-aq", "--filter", &extra]);
        for id in String::from_utf8_lossy(&left.stdout).split_whitespace() {
            run("docker", &["rm", "-f", "-v", id]);
        }
        let out = self.compose(&["down", "-v", "--remove-orphans", "-t", "2"]);
        if !out.status.success() {
            eprintln!(
                "[{}] compose down: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Whatever else carries the project's label.
        let left = run("docker", &["ps", "-aq", "--filter", &label]);
        for id in String::from_utf8_lossy(&left.stdout).split_whitespace() {
            run("docker", &["rm", "-f", "-v", id]);
        }
        for kind in ["network", "volume"] {
            let left = run("docker", &[kind, "ls", "-q", "--filter", &label]);
            for id in String::from_utf8_lossy(&left.stdout).split_whitespace() {
                run("docker", &[kind, "rm", id]);
            }
        }
    }
}

/// The label of containers a test runs beside Compose (`docker run`), so the
/// teardown finds them.
pub fn extra_label(p: &Project) -> String {
    format!("portcullis.test.extra={}", p.name)
}

/// 127.0.0.1:`port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// API `t` at `/t` in front of the sample backend, without the sample APIs'
/// rate limit (the tests' load comes from one client address).
pub fn test_api() -> String {
    serde_json::json!({
        "id": "t",
        "displayName": "container tests",
        "path": "t",
        "serviceUrl": "http://backend:8000",
        "subscriptionRequired": false,
        "operations": [{ "id": "any", "method": "*", "urlTemplate": "/*" }]
    })
    .to_string()
}

/// An API policy that stamps responses with `X-Version: {version}`.
pub fn versioned_policy(version: u32) -> String {
    format!(
        "<policies>\n  <inbound><base /></inbound>\n  <backend><base /></backend>\n  <outbound>\n    <base />\n    <set-header name=\"X-Version\" exists-action=\"override\"><value>{version}</value></set-header>\n  </outbound>\n  <on-error><base /></on-error>\n</policies>"
    )
}

/// Adds API `t` (policy version 1) to both gateways and waits until both serve it.
pub fn serve_test_api(p: &Project) {
    p.admin_ok("PUT", "/apis/t", &test_api());
    p.admin_ok("PUT", "/apis/t/policy", &versioned_policy(1));
    for (gw, port) in [("edge-1", p.ports.edge1.0), ("edge-2", p.ports.edge2.0)] {
        // What `portcullis bootstrap` made, with API `t` added.
        let entity = serde_json::json!({
            "location": { "name": "compose" },
            "apis": ["sample", "sample-keyed", "t"],
            "url": format!("http://127.0.0.1:{port}"),
        });
        p.admin_ok("PUT", &format!("/gateways/{gw}"), &entity.to_string());
    }
    wait_version(p, p.ports.edge1.0, 1, Duration::from_secs(30));
    wait_version(p, p.ports.edge2.0, 1, Duration::from_secs(30));
}

/// Waits until `GET /t/hello` on `port` answers 200 with `X-Version: version`.
pub fn wait_version(p: &Project, port: u16, version: u32, within: Duration) -> Duration {
    let start = Instant::now();
    let want = version.to_string();
    loop {
        if let Ok(r) = http::get(loopback(port), "/t/hello", &[]) {
            if r.status == 200 && r.header("x-version") == Some(want.as_str()) {
                return start.elapsed();
            }
        }
        assert!(
            start.elapsed() < within,
            "port {port} did not serve version {version} within {within:?}\n{}",
            p.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
