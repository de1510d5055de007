//! `portcullis bootstrap`: a one-shot job for Compose (or a Kubernetes Job)
//! that seeds a fresh management plane with the sample configuration, creates
//! the gateways and writes each one's token to a file the gateway reads with
//! `--token-file`, so no shell or curl is needed in the image.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::seed::{gateway_with_token, seed, Admin};

/// Options of `portcullis bootstrap`.
#[derive(Debug, clap::Args)]
pub(crate) struct BootstrapArgs {
    /// The management plane's URL as this job reaches it.
    #[arg(long, env = "PORTCULLIS_MANAGEMENT_URL")]
    management_url: String,
    /// The management plane's URL as a user reaches it (printed) [default: --management-url].
    #[arg(long, env = "PORTCULLIS_PUBLIC_MANAGEMENT_URL")]
    public_management_url: Option<String>,
    /// The management plane's admin token.
    #[arg(long, env = "PORTCULLIS_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    /// The sample backend's URL as the gateways reach it.
    #[arg(
        long,
        default_value = "http://backend:8000",
        env = "PORTCULLIS_SAMPLE_BACKEND_URL"
    )]
    backend_url: String,
    /// Gateways to create, `ID=PUBLIC_URL` (the URL users call it at; shown in
    /// the portal), comma separated or repeated.
    #[arg(
        long = "gateway",
        env = "PORTCULLIS_BOOTSTRAP_GATEWAYS",
        value_delimiter = ',',
        required = true
    )]
    gateways: Vec<String>,
    /// Directory where each gateway's token is written as `ID.token`.
    #[arg(
        long,
        default_value = "/var/lib/portcullis/bootstrap",
        env = "PORTCULLIS_TOKEN_DIR"
    )]
    token_dir: PathBuf,
    /// Seconds to wait for the management plane to answer.
    #[arg(long, default_value_t = 60, env = "PORTCULLIS_BOOTSTRAP_WAIT")]
    wait: u64,
}

/// One `ID=PUBLIC_URL` of `--gateway`.
struct GatewaySpec {
    id: String,
    url: String,
}

fn parse_gateway(spec: &str) -> anyhow::Result<GatewaySpec> {
    let (id, url) = spec
        .split_once('=')
        .with_context(|| format!("--gateway {spec:?}: expected ID=PUBLIC_URL"))?;
    let id = id.trim();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        bail!("--gateway {spec:?}: the id must be letters, digits and dashes");
    }
    Ok(GatewaySpec {
        id: id.to_owned(),
        url: url.trim().to_owned(),
    })
}

/// Seeds, creates the gateways, writes their tokens and prints what a user needs.
pub(crate) async fn run(args: BootstrapArgs) -> anyhow::Result<()> {
    let gateways = args
        .gateways
        .iter()
        .map(|s| parse_gateway(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let admin = Admin::new(&args.management_url, &args.admin_token)?;
    wait_for_management(&admin, Duration::from_secs(args.wait)).await?;
    let seeded = seed(&admin, &args.backend_url).await?;
    for gw in &gateways {
        let entity = json!({
            "description": "A gateway container started by deploy/compose.yaml.",
            "location": { "name": "compose" },
            "apis": seeded.api_ids,
            "url": gw.url,
        });
        let token = gateway_with_token(&admin, &gw.id, &entity).await?;
        let path = args.token_dir.join(format!("{}.token", gw.id));
        write_atomically(&path, &token)?;
        tracing::info!(gateway = %gw.id, path = %path.display(), "gateway token written");
    }

    let public = args
        .public_management_url
        .as_deref()
        .unwrap_or(&args.management_url)
        .trim_end_matches('/');
    println!("# Portcullis is seeded with the sample configuration:");
    println!("MANAGEMENT_URL={public}");
    println!("ADMIN_URL={public}/admin");
    println!("PORTAL_URL={public}/portal");
    println!("ADMIN_TOKEN={}", args.admin_token);
    println!("SUBSCRIPTION_KEY={}", seeded.subscription_key);
    for gw in &gateways {
        let var = gw.id.to_ascii_uppercase().replace('-', "_");
        println!("GATEWAY_{var}_URL={}", gw.url);
    }
    if let Some(gw) = gateways.first() {
        println!("# try it (the sample API allows 60 calls a minute per client address):");
        println!("curl -i {}/{}/hello", gw.url, seeded.open_path);
        println!(
            "curl -i -H 'Ocp-Apim-Subscription-Key: {}' {}/{}/hello",
            seeded.subscription_key, gw.url, seeded.keyed_path
        );
    }
    println!(
        "curl -s -H 'Authorization: Bearer {}' {public}/apis",
        args.admin_token
    );
    Ok(())
}

/// Polls `/revision` until the management plane answers it (with this admin token).
async fn wait_for_management(admin: &Admin, wait: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + wait;
    loop {
        match admin.call("GET", "/revision", &Value::Null).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!(
                    "the management plane did not answer within {} s",
                    wait.as_secs()
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Writes `text` to `path` through a temporary file and a rename, so a gateway
/// starting meanwhile never reads half a token.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{text}\n"))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateways_are_given_as_id_equals_url() {
        let g = parse_gateway("edge-1=http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (g.id.as_str(), g.url.as_str()),
            ("edge-1", "http://127.0.0.1:8080")
        );
        assert!(parse_gateway("edge-1").is_err());
        assert!(parse_gateway("../x=http://a").is_err());
    }
}
