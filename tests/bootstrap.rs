//! `portcullis bootstrap` (Compose's one-shot `init`) over real processes:
//! it seeds a management plane, writes gateway tokens to files, can run again,
//! and a gateway started with `--token-file` serves what it seeded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::managed::{ManagedGateway, ManagementProcess};
use common::*;

/// Runs `portcullis bootstrap` for gateways edge-1 and edge-2; returns its stdout.
async fn bootstrap(mgmt: &ManagementProcess, backend_url: &str, token_dir: &Path) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["bootstrap", "--management-url", &mgmt.url])
        .args(["--admin-token", managed::ADMIN_TOKEN])
        .args(["--backend-url", backend_url])
        .args([
            "--gateway",
            "edge-1=http://127.0.0.1:18080,edge-2=http://127.0.0.1:18082",
        ])
        .arg("--token-dir")
        .arg(token_dir)
        .env_clear()
        .envs(clean_env())
        .output()
        .await
        .expect("running portcullis bootstrap");
    assert!(
        out.status.success(),
        "bootstrap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of `NAME=value` in the printed lines.
fn printed<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{name} not printed:\n{stdout}"))
}

#[runtimes]
async fn bootstrap_seeds_writes_tokens_and_a_gateway_runs_on_its_token_file(rt: Runtime) {
    let backend = Backend::echo().await;
    let backend_url = format!("http://{}", backend.addr);
    let data = tempfile::tempdir().unwrap();
    let mgmt = ManagementProcess::start(any_port(), data.path(), &[]).await;
    let tokens = tempfile::tempdir().unwrap();

    let first = bootstrap(&mgmt, &backend_url, tokens.path()).await;
    assert_eq!(printed(&first, "MANAGEMENT_URL"), mgmt.url);
    assert_eq!(
        printed(&first, "GATEWAY_EDGE_2_URL"),
        "http://127.0.0.1:18082"
    );
    let key = printed(&first, "SUBSCRIPTION_KEY").to_owned();
    for id in ["edge-1", "edge-2"] {
        let token = std::fs::read_to_string(tokens.path().join(format!("{id}.token"))).unwrap();
        assert!(
            token.starts_with(&format!("GatewayKey {id}&")),
            "{id}: {token}"
        );
    }
    // Again on the seeded plane (Compose runs `init` at every `up`): the same
    // subscription, fresh tokens.
    let second = bootstrap(&mgmt, &backend_url, tokens.path()).await;
    assert_eq!(printed(&second, "SUBSCRIPTION_KEY"), key);

    let token_file = tokens.path().join("edge-1.token");
    let (child, addr, ops_addr, log) = spawn_gateway(
        rt,
        &[
            "--management-url",
            &mgmt.url,
            "--token-file",
            token_file.to_str().unwrap(),
        ],
    )
    .await;
    let gw = ManagedGateway {
        child,
        addr,
        ops_addr,
        log,
    };
    gw.ready().await;
    let r = gw.get("/sample/hello").await;
    assert_eq!(r.status, 200, "{r:?}\n{}", gw.log_text());
    // The keyed API needs the subscription key bootstrap printed.
    assert_eq!(gw.get("/keyed/hello").await.status, 401);
}
