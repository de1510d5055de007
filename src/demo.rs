//! `portcullis demo`: a sample backend and a gateway in front of it, on loopback.

use std::net::SocketAddr;

use anyhow::Context;
use portcullis_runtime_tokio::{Gateway, GatewayOptions};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::{sample_backend, DemoArgs, ShutdownSignal};

/// The example configuration shipped in the repository.
const EXAMPLE_CONFIG: &str = include_str!("../examples/gateway.json");
/// The backend address the example configuration points at.
const EXAMPLE_BACKEND: &str = "http://127.0.0.1:8000";

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
        .context("creating a directory for the demo configuration")?;
    let config_path = dir.path().join("gateway.json");
    let config = point_at_backend(EXAMPLE_CONFIG, &backend_url)?;
    std::fs::write(&config_path, config).context("writing the demo configuration")?;

    let mut options = GatewayOptions::new(config_path.clone());
    options.listen = free_or_fallback(args.listen).await;
    options.ops_listen = Some(free_or_fallback(args.ops_listen).await);
    args.tuning.apply(&mut options);
    let gateway = Gateway::start(options).await?;
    let addr = gateway.local_addr();
    let path = first_api_path(EXAMPLE_CONFIG);

    println!("GATEWAY_URL=http://{addr}");
    if let Some(ops) = gateway.ops_addr() {
        println!("OPS_URL=http://{ops}");
    }
    println!("SAMPLE_API_PATH=/{path}");
    if let Some((keyed_path, key)) = keyed_api(EXAMPLE_CONFIG) {
        println!("KEYED_API_PATH=/{keyed_path}");
        println!("SUBSCRIPTION_KEY={key}");
    }
    println!("BACKEND_URL={backend_url}");
    println!("CONFIG_FILE={}", config_path.display());
    println!("# try it:");
    println!("curl -i http://{addr}/{path}/hello");
    if let Some((keyed_path, key)) = keyed_api(EXAMPLE_CONFIG) {
        println!("curl -i -H 'Ocp-Apim-Subscription-Key: {key}' http://{addr}/{keyed_path}/hello");
    }
    println!("# edit CONFIG_FILE and the gateway reloads it; Ctrl-C stops the demo.");

    signal.recv().await;
    gateway.shutdown().await;
    backend_task.abort();
    drop(dir);
    Ok(())
}

/// The example configuration with its backend URLs replaced by the sample backend's.
fn point_at_backend(config: &str, backend_url: &str) -> anyhow::Result<String> {
    let mut doc: Value =
        serde_json::from_str(config).context("parsing the example configuration")?;
    let replace = |v: &mut Value| {
        if v.as_str().is_some_and(|s| s.starts_with(EXAMPLE_BACKEND)) {
            if let Some(s) = v.as_str() {
                *v = Value::String(s.replacen(EXAMPLE_BACKEND, backend_url, 1));
            }
        }
    };
    if let Some(apis) = doc.get_mut("apis").and_then(Value::as_array_mut) {
        for api in apis {
            if let Some(url) = api.get_mut("serviceUrl") {
                replace(url);
            }
        }
    }
    if let Some(backends) = doc.get_mut("backends").and_then(Value::as_array_mut) {
        for backend in backends {
            if let Some(url) = backend.get_mut("url") {
                replace(url);
            }
        }
    }
    Ok(serde_json::to_string_pretty(&doc)?)
}

fn first_api_path(config: &str) -> String {
    serde_json::from_str::<Value>(config)
        .ok()
        .and_then(|doc| doc["apis"][0]["path"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The path of the first API that needs a subscription key, and a key that opens it.
fn keyed_api(config: &str) -> Option<(String, String)> {
    let doc: Value = serde_json::from_str(config).ok()?;
    let api = doc["apis"]
        .as_array()?
        .iter()
        .find(|a| a["subscriptionRequired"].as_bool() != Some(false))?;
    let key = doc["subscriptions"].as_array()?.first()?["primaryKey"].as_str()?;
    Some((api["path"].as_str()?.to_owned(), key.to_owned()))
}

/// The wanted address if it is free, else a free port on the same interface, so the
/// demo starts even where 8080 is taken.
async fn free_or_fallback(wanted: SocketAddr) -> SocketAddr {
    match TcpListener::bind(wanted).await {
        Ok(_) => wanted,
        Err(_) => SocketAddr::new(wanted.ip(), 0),
    }
}
