//! `portcullis demo`: the whole product on loopback — a management plane on a
//! temporary data directory, one gateway connected to it with a backup, and the
//! sample backend — seeded through the management API with the example
//! configuration.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use portcullis_management::{Management, ManagementOptions};
use portcullis_runtime_tokio::{
    BackupKey, BackupOptions, CertificateFiles, GatewayOptions, HttpsOptions, ManagedOptions,
};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::seed::{gateway_with_token, seed, Admin};
use crate::{sample_backend, DemoArgs, Runtime, ShutdownSignal};

/// The demo gateway's id.
const GATEWAY_ID: &str = "demo-gateway";

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let signal = ShutdownSignal::install()?;
    let backend = TcpListener::bind("127.0.0.1:0")
        .await
        .context("starting the sample backend")?;
    let backend_url = format!("http://{}", backend.local_addr()?);
    let backend_task = tokio::spawn(sample_backend::serve(backend, std::future::pending()));

    let dir = tempfile::Builder::new()
        .prefix("portcullis-demo-")
        .tempdir()
        .context("creating the demo's data directory")?;
    let data_dir = dir.path().join("management");
    let backup_dir = dir.path().join("gateway-backup");
    // The gateway's HTTPS: a local CA and a certificate for localhost,
    // 127.0.0.1 and ::1, in the demo's (owner-only) temporary directory.
    let tls_dir = dir.path().join("gateway-tls");
    std::fs::create_dir(&tls_dir).context("creating the demo's TLS directory")?;
    let tls = portcullis_certs::ensure_local_tls(&tls_dir, "Portcullis demo CA")
        .context("generating the demo's certificate")?;

    let mut options = ManagementOptions::new(
        free_or_fallback(args.management_listen).await,
        data_dir.clone(),
    );
    options.admin_token = None;
    let management = Management::start(options)
        .await
        .context("starting the management plane")?;
    let admin_token = management
        .created_admin_token()
        .context("the demo's fresh data directory has no admin token")?
        .to_owned();
    let management_url = management.base_url().to_owned();

    let admin = Admin::new(&management_url, &admin_token)?;
    let seeded = seed(&admin, &backend_url).await?;
    let gateway_token =
        gateway_with_token(&admin, GATEWAY_ID, &gateway_entity(&seeded.api_ids, None)).await?;

    let mut managed = ManagedOptions::new(management_url.clone(), gateway_token);
    managed.backup = Some(BackupOptions {
        dir: backup_dir.clone(),
        key: BackupKey::from_bytes(random_key()?),
    });
    let mut options = GatewayOptions::managed(managed);
    options.listen = free_or_fallback(args.listen).await;
    options.ops_listen = Some(free_or_fallback(args.ops_listen).await);
    options.https = Some(HttpsOptions {
        listen: free_or_fallback(args.https_listen).await,
        certificates: vec![CertificateFiles {
            cert: tls.server_cert.clone(),
            key: tls.server_key.clone(),
        }],
        public_port: None,
    });
    args.tuning.apply(&mut options);
    options.store = args.tuning.store.settings()?;
    let gateway = Gateway::start(args.runtime, options).await?;
    wait_ready(&gateway).await?;
    let addr = gateway.local_addr();
    let gateway_url = format!("http://{addr}");
    admin
        .call(
            "PUT",
            &format!("/gateways/{GATEWAY_ID}"),
            &gateway_entity(&seeded.api_ids, Some(&gateway_url)),
        )
        .await?;

    println!("GATEWAY_URL={gateway_url}");
    if let Some(https) = gateway.https_addr() {
        println!("HTTPS_GATEWAY_URL=https://{https}");
    }
    println!("GATEWAY_CA={}", tls.ca_cert.display());
    println!("MANAGEMENT_URL={management_url}");
    println!("PORTAL_URL={management_url}/portal");
    println!("ADMIN_URL={management_url}/admin");
    println!("ADMIN_TOKEN={admin_token}");
    println!("SUBSCRIPTION_KEY={}", seeded.subscription_key);
    println!("SAMPLE_API_PATH=/{}", seeded.open_path);
    println!("KEYED_API_PATH=/{}", seeded.keyed_path);
    if let Some(ops) = gateway.ops_addr() {
        println!("OPS_URL=http://{ops}");
        println!("METRICS_URL=http://{ops}/metrics");
    }
    println!("BACKEND_URL={backend_url}");
    println!("DATA_DIR={}", data_dir.display());
    println!("BACKUP_DIR={}", backup_dir.display());
    println!("# try it (the Starter product allows 5 calls a minute per subscription):");
    println!(
        "curl -i -H 'Ocp-Apim-Subscription-Key: {}' http://{addr}/{}/hello",
        seeded.subscription_key, seeded.keyed_path
    );
    println!("curl -i http://{addr}/{}/hello", seeded.open_path);
    if let Some(https) = gateway.https_addr() {
        println!(
            "curl -i --cacert {} https://{https}/{}/hello",
            tls.ca_cert.display(),
            seeded.open_path
        );
    }
    println!("curl -s -H 'Authorization: Bearer {admin_token}' {management_url}/apis");
    println!("# the developer portal: sign up at PORTAL_URL, subscribe to a product, try an API;");
    println!("# the admin console: sign in at ADMIN_URL with ADMIN_TOKEN.");
    println!(
        "# changes made through MANAGEMENT_URL reach the gateway at once; Ctrl-C stops the demo."
    );

    signal.recv().await;
    gateway.shutdown().await;
    management.shutdown().await;
    backend_task.abort();
    drop(dir);
    Ok(())
}

/// The demo's gateway, on the runtime `--runtime` picks. A smol gateway's tasks
/// run on smol's global executor, next to this process's tokio runtime.
enum Gateway {
    Tokio(portcullis_runtime_tokio::Gateway),
    Smol(portcullis_runtime_smol::Gateway),
}

impl Gateway {
    async fn start(runtime: Runtime, options: GatewayOptions) -> anyhow::Result<Gateway> {
        Ok(match runtime {
            Runtime::Tokio => {
                Gateway::Tokio(portcullis_runtime_tokio::Gateway::start(options).await?)
            }
            Runtime::Smol => Gateway::Smol(portcullis_runtime_smol::Gateway::start(options).await?),
        })
    }

    fn local_addr(&self) -> SocketAddr {
        match self {
            Gateway::Tokio(g) => g.local_addr(),
            Gateway::Smol(g) => g.local_addr(),
        }
    }

    fn https_addr(&self) -> Option<SocketAddr> {
        match self {
            Gateway::Tokio(g) => g.https_addr(),
            Gateway::Smol(g) => g.https_addr(),
        }
    }

    fn ops_addr(&self) -> Option<SocketAddr> {
        match self {
            Gateway::Tokio(g) => g.ops_addr(),
            Gateway::Smol(g) => g.ops_addr(),
        }
    }

    fn revision(&self) -> Option<u64> {
        match self {
            Gateway::Tokio(g) => g.revision(),
            Gateway::Smol(g) => g.revision(),
        }
    }

    async fn shutdown(self) {
        match self {
            Gateway::Tokio(g) => g.shutdown().await,
            Gateway::Smol(g) => g.shutdown().await,
        }
    }
}

/// The demo gateway as the management plane stores it; `url` once it listens
/// (the portal's "try it" console sends requests there).
fn gateway_entity(api_ids: &[String], url: Option<&str>) -> Value {
    let mut gateway = json!({
        "description": "The gateway `portcullis demo` runs on loopback.",
        "location": { "name": "demo (loopback)" },
        "apis": api_ids,
    });
    if let Some(url) = url {
        gateway["url"] = Value::String(url.to_owned());
    }
    gateway
}

/// Waits until the gateway has applied its first configuration.
async fn wait_ready(gateway: &Gateway) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while gateway.revision().is_none() {
        if tokio::time::Instant::now() > deadline {
            bail!("the gateway did not receive its configuration within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// A fresh backup key for this demo run.
fn random_key() -> anyhow::Result<[u8; 32]> {
    use ring::rand::SecureRandom;
    let mut key = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| anyhow::anyhow!("the operating system's random source failed"))?;
    Ok(key)
}

/// The wanted address if it is free, else a free port on the same interface, so the
/// demo starts even where the default ports are taken.
async fn free_or_fallback(wanted: SocketAddr) -> SocketAddr {
    match TcpListener::bind(wanted).await {
        Ok(_) => wanted,
        Err(_) => SocketAddr::new(wanted.ip(), 0),
    }
}
