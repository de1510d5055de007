//! The production image on real containers: deploy/compose.yaml brought up as a
//! fresh Compose project per test (management plane, two gateways, the sample
//! backend), load and probes from this process through the published loopback
//! ports, faults made with the `docker` CLI.
//!
//! Needs a Docker daemon and the image under test in `PORTCULLIS_IMAGE` (e.g.
//! `deploy/build-image.sh && PORTCULLIS_IMAGE=portcullis:local cargo test --test
//! containers`); without either, each test prints why and passes as skipped.
//! The tests run one at a time (a lock), and every project is torn down with
//! `down -v` when its test ends, failed or not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "containers/dockerfiles.rs"]
mod dockerfiles;
#[path = "containers/harness.rs"]
mod harness;
#[path = "containers/http.rs"]
mod http;

use std::time::{Duration, Instant};

use harness::{docker, loopback, serve_test_api, versioned_policy, wait_version, Project};

/// A change made through the management API reaches both gateways.
#[test]
fn a_change_reaches_both_gateways() {
    let Some(p) = Project::up("change") else {
        return;
    };
    // The sample configuration `init` seeded is served by both.
    for port in [p.ports.edge1.0, p.ports.edge2.0] {
        let r = http::get(loopback(port), "/sample/hello", &[]).unwrap();
        assert_eq!(r.status, 200, "{}", r.body_text());
        assert!(r
            .body_text()
            .contains("Hello from the Portcullis sample backend"));
    }
    serve_test_api(&p);
    let changed = Instant::now();
    p.admin_ok("PUT", "/apis/t/policy", &versioned_policy(2));
    let within = Duration::from_secs(30);
    wait_version(&p, p.ports.edge1.0, 2, within);
    wait_version(&p, p.ports.edge2.0, 2, within);
    eprintln!(
        "MEASURED change to both gateways: {} ms",
        changed.elapsed().as_millis()
    );
}

/// The management plane cut off the gateways' network for 60 s under steady
/// load: not one request fails; changes made meanwhile arrive after reconnecting.
#[test]
fn a_partition_fails_no_request_and_changes_arrive_after_it() {
    let Some(p) = Project::up("partition") else {
        return;
    };
    serve_test_api(&p);
    let management = p.container("management");
    let network = p.private_network();
    let load = http::Load::start(
        &[loopback(p.ports.edge1.0), loopback(p.ports.edge2.0)],
        "/t/hello",
        Duration::from_millis(20),
    );
    std::thread::sleep(Duration::from_secs(2));
    docker(&["network", "disconnect", &network, &management]);
    let cut = Instant::now();
    // Through the `admin` network the management API still takes changes.
    p.admin_ok("PUT", "/apis/t/policy", &versioned_policy(2));
    while cut.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(5));
        // The partition is real: the change has not reached the gateways.
        for port in [p.ports.edge1.0, p.ports.edge2.0] {
            let r = http::get(loopback(port), "/t/hello", &[]).unwrap();
            assert_eq!(r.header("x-version"), Some("1"), "{r:?}");
        }
    }
    docker(&[
        "network",
        "connect",
        "--alias",
        "management",
        &network,
        &management,
    ]);
    let reconnected = Instant::now();
    let within = Duration::from_secs(120);
    wait_version(&p, p.ports.edge1.0, 2, within);
    wait_version(&p, p.ports.edge2.0, 2, within);
    eprintln!(
        "MEASURED change made during the partition arrived at both gateways {} ms after reconnecting",
        reconnected.elapsed().as_millis()
    );
    let report = load.finish();
    eprintln!(
        "MEASURED partition load: {} requests answered 200, {} failed",
        report.ok,
        report.failures.len()
    );
    assert!(
        report.failures.is_empty(),
        "failed requests: {:?}",
        &report.failures[..report.failures.len().min(20)]
    );
    assert!(report.ok > 1000, "too little load: {}", report.ok);
}

/// While the management plane hangs (paused: its name resolves, connections
/// get no answer), a gateway restarted with its backup volume serves at once;
/// a gateway without a backup reports not ready and never serves an empty
/// configuration.
#[test]
fn a_restart_during_an_outage_serves_from_the_backup_and_none_without_one() {
    let Some(p) = Project::up("restart") else {
        return;
    };
    serve_test_api(&p);
    p.admin_ok("PUT", "/apis/t/policy", &versioned_policy(3));
    wait_version(&p, p.ports.edge1.0, 3, Duration::from_secs(30));
    wait_backup(&p, "edge-1");
    docker(&["pause", &p.container("management")]);

    let edge1 = p.container("edge-1");
    docker(&["stop", "-t", "10", &edge1]);
    restart_timed(&p, &edge1, 3, "management paused");
    assert_applied_from_backup(&edge1);

    // A third gateway, with edge-2's token but no backup, started during the outage.
    let (api, ops) = (free_port(), free_port());
    let name = format!("{}-nobackup", p.name);
    let label = format!("com.docker.compose.project={}", p.name);
    let token_volume = format!("{}_bootstrap:/var/lib/portcullis/bootstrap:ro", p.name);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &label,
        "--label",
        &harness::extra_label(&p),
        "--read-only",
        "--network",
        &p.private_network(),
        "-v",
        &token_volume,
        "-e",
        "PORTCULLIS_MANAGEMENT_URL=http://management:8090",
        "-e",
        "PORTCULLIS_GATEWAY_TOKEN_FILE=/var/lib/portcullis/bootstrap/edge-2.token",
        "-p",
        &format!("127.0.0.1:{api}:8080"),
        "-p",
        &format!("127.0.0.1:{ops}:9090"),
        &p.image,
        "gateway",
    ]);
    // Until it has a configuration: 503 everywhere, never a 200 or a 404 of
    // an empty configuration.
    let mut answers = 0;
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        for (port, path) in [
            (ops, "/readyz"),
            (api, "/t/hello"),
            (api, "/status-0123456789abcdef"),
        ] {
            if let Ok(r) = http::get(loopback(port), path, &[]) {
                assert_eq!(r.status, 503, "{path}: {r:?}");
                answers += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(answers > 30, "the gateway without a backup never answered");
    // The image's HEALTHCHECK command says unhealthy meanwhile.
    let healthcheck = [
        "exec",
        name.as_str(),
        "/usr/local/bin/portcullis",
        "healthcheck",
    ];
    assert!(!harness::run("docker", &healthcheck).status.success());
    // It was only the outage: with the management plane back, it serves.
    docker(&["unpause", &p.container("management")]);
    wait_version(&p, api, 3, Duration::from_secs(90));
    let out = harness::run("docker", &healthcheck);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The management plane's host name does not resolve at start (its container
/// is gone, so Docker's DNS has no such name): the gateway serves its backup.
#[test]
fn a_gateway_whose_management_name_does_not_resolve_serves_its_backup() {
    let Some(p) = Project::up("dns") else {
        return;
    };
    serve_test_api(&p);
    wait_backup(&p, "edge-1");
    p.compose_ok(&["rm", "--stop", "--force", "-v", "management"]);
    let edge1 = p.container("edge-1");
    docker(&["stop", "-t", "10", &edge1]);
    restart_timed(&p, &edge1, 1, "management name unresolvable");
    // The configuration came from the backup, and the name did not resolve.
    assert_eq!(p.compose_ok(&["ps", "-q", "management"]), "");
    assert_applied_from_backup(&edge1);
    let logs = harness::run("docker", &["logs", "--tail", "20", &edge1]);
    let text = String::from_utf8_lossy(&logs.stderr);
    assert!(text.contains("failed to lookup address"), "{text}");
}

/// `docker stop` during a slow request: the request finishes, new connections
/// are refused, and the gateway exits 0 within the grace period.
#[test]
fn docker_stop_drains_requests_in_flight() {
    let Some(p) = Project::up("drain") else {
        return;
    };
    serve_test_api(&p);
    let edge1 = p.container("edge-1");
    let ip = docker(&[
        "inspect",
        "-f",
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            p.private_network()
        ),
        &edge1,
    ]);
    let direct: std::net::SocketAddr = format!("{ip}:8080").parse().unwrap();
    let slow_addr = loopback(p.ports.edge1.0);
    let slow = std::thread::spawn(move || {
        http::call_with_timeout(
            slow_addr,
            "GET",
            "/t/slow?ms=6000",
            &[],
            "",
            Duration::from_secs(30),
        )
    });
    std::thread::sleep(Duration::from_secs(1));
    let stop_started = Instant::now();
    let stopper = {
        let edge1 = edge1.clone();
        std::thread::spawn(move || harness::run("docker", &["stop", "-t", "30", &edge1]))
    };
    std::thread::sleep(Duration::from_secs(1));
    // Draining: the listener is closed.
    let refused = std::net::TcpStream::connect_timeout(&direct, Duration::from_secs(2));
    assert!(
        matches!(&refused, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "a new connection during the drain: {refused:?}"
    );
    let r = slow.join().unwrap().expect("the slow request finished");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(
        r.body_text().contains("\"sleptMs\":6000"),
        "{}",
        r.body_text()
    );
    let stopped = stopper.join().unwrap();
    assert!(stopped.status.success());
    let took = stop_started.elapsed();
    let exit = docker(&["inspect", "-f", "{{.State.ExitCode}}", &edge1]);
    assert_eq!(exit, "0", "exit code");
    assert!(
        took < Duration::from_secs(30),
        "docker stop took {took:?}: the grace period ran out"
    );
    eprintln!(
        "MEASURED docker stop with a 6 s request in flight: {} ms",
        took.as_millis()
    );
}

/// The containers run as the image's non-root user on a read-only root file
/// system, the image has no shell, and Docker's HEALTHCHECK says healthy.
#[test]
fn containers_run_as_non_root_on_a_read_only_root() {
    let Some(p) = Project::up("nonroot") else {
        return;
    };
    assert_eq!(
        docker(&["image", "inspect", "-f", "{{.Config.User}}", &p.image]),
        "65532:65532"
    );
    for service in ["management", "edge-1", "edge-2", "backend"] {
        let id = p.container(service);
        let readonly = docker(&["inspect", "-f", "{{.HostConfig.ReadonlyRootfs}}", &id]);
        assert_eq!(readonly, "true", "{service}");
        // The process itself, as the kernel sees it.
        let uid = docker(&["top", &id, "-o", "pid,uid"]);
        let uids: Vec<&str> = uid
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        assert!(!uids.is_empty());
        assert!(uids.iter().all(|u| *u == "65532"), "{service}: {uid}");
    }
    let shell = harness::run(
        "docker",
        &[
            "run",
            "--rm",
            "--entrypoint",
            "/bin/sh",
            &p.image,
            "-c",
            "true",
        ],
    );
    assert!(!shell.status.success(), "the image has a shell");
    let edge1 = p.container("edge-1");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = docker(&["inspect", "-f", "{{.State.Health.Status}}", &edge1]);
        if health == "healthy" {
            break;
        }
        assert!(Instant::now() < deadline, "edge-1 is {health}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Starts the stopped `edge-1` and waits for its first 200 with `X-Version:
/// version`; prints how long `docker start` took and how long after it the
/// gateway answered.
fn restart_timed(p: &Project, container: &str, version: u32, outage: &str) {
    let start = Instant::now();
    docker(&["start", container]);
    let started = start.elapsed();
    let served = wait_version(p, p.ports.edge1.0, version, Duration::from_secs(30));
    eprintln!(
        "MEASURED start to first 200 from the backup ({outage}): {} ms (`docker start` {} ms, then {} ms)",
        start.elapsed().as_millis(),
        started.as_millis(),
        served.as_millis()
    );
}

/// Waits until gateway `service` has written a backup file.
fn wait_backup(p: &Project, service: &str) {
    let id = p.container(service);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // `docker cp` to stdout is a tar of the directory: no shell needed.
        let tar = harness::run(
            "docker",
            &["cp", &format!("{id}:/var/lib/portcullis/backup"), "-"],
        );
        let listed = list_tar(&tar.stdout);
        if listed
            .lines()
            .any(|f| f.starts_with("backup/") && !f.ends_with('/'))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{service} wrote no backup\n{}",
            p.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The gateway's log since its last start says the configuration came from
/// its backup file.
fn assert_applied_from_backup(container: &str) {
    let since = docker(&["inspect", "-f", "{{.State.StartedAt}}", container]);
    let logs = harness::run("docker", &["logs", "--since", &since, container]);
    let text = String::from_utf8_lossy(&logs.stderr);
    assert!(
        text.contains("applied from the backup file"),
        "not served from the backup:\n{text}"
    );
}

/// The names in a tar archive (`tar -t`).
fn list_tar(archive: &[u8]) -> String {
    use std::io::Write;
    let mut tar = std::process::Command::new("tar")
        .arg("-t")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running tar");
    tar.stdin.take().unwrap().write_all(archive).unwrap();
    let out = tar.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
