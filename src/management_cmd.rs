//! `portcullis management`: the management plane service.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use portcullis_management::{Management, ManagementOptions, TlsMode};

use crate::ShutdownSignal;

/// Options of `portcullis management`.
#[derive(Debug, clap::Args)]
pub(crate) struct ManagementArgs {
    /// Address for the REST API (and, later, the admin UI and portal).
    #[arg(
        long,
        default_value = "0.0.0.0:8090",
        env = "PORTCULLIS_MANAGEMENT_LISTEN"
    )]
    listen: SocketAddr,
    /// Data directory: the SQLite database (created on first run) and, with
    /// `--self-signed`, the generated certificates.
    #[arg(long, default_value = "portcullis-data", env = "PORTCULLIS_DATA")]
    data: PathBuf,
    /// Admin bearer token (at least 16 characters). Without it, the first run
    /// creates one and prints it once.
    #[arg(long, env = "PORTCULLIS_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// PEM certificate chain to serve HTTPS with (needs `--tls-key`).
    #[arg(
        long,
        env = "PORTCULLIS_TLS_CERT",
        requires = "tls_key",
        conflicts_with = "self_signed"
    )]
    tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "PORTCULLIS_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a generated certificate for localhost, 127.0.0.1 and ::1
    /// (kept in DATA/tls/); gateways trust it with `--ca DATA/tls/ca.pem`. For trials.
    #[arg(long, env = "PORTCULLIS_SELF_SIGNED")]
    self_signed: bool,
    /// How many days request records uploaded by gateways are kept for analytics
    /// (pruned hourly).
    #[arg(
        long,
        default_value_t = portcullis_management::store::analytics::DEFAULT_RETENTION_DAYS,
        env = "PORTCULLIS_ANALYTICS_RETENTION_DAYS",
        value_parser = clap::value_parser!(u32).range(1..=36_500)
    )]
    analytics_retention_days: u32,
    /// Let `POST /apis/{id}/openapi/import-url` fetch from loopback, private
    /// (RFC 1918, fc00::/7), link-local (cloud metadata) and other non-public
    /// addresses. Off by default: for labs whose documents are served locally.
    #[arg(long, env = "PORTCULLIS_OPENAPI_FETCH_PRIVATE")]
    openapi_fetch_private: bool,
    /// The file with the key that seals uploaded certificates' private keys
    /// [default: DATA/certificate-keys.kek]; made (0600) on the first upload.
    /// Keep it apart from the database (a mounted secret) so a copy of the
    /// database alone reveals no key; back it up: without it the plane
    /// refuses to start once certificates exist.
    #[arg(long, env = "PORTCULLIS_KEY_ENCRYPTION_KEY_FILE")]
    key_encryption_key_file: Option<PathBuf>,
    /// Seconds between gateway heartbeats, as the gateways are configured (their
    /// `--heartbeat-interval`); an instance is shown offline after three missed.
    #[arg(
        long,
        default_value_t = 60,
        env = "PORTCULLIS_HEARTBEAT_INTERVAL",
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    heartbeat_interval: u64,
    /// Give the store in `--data` a new random identity, print it as
    /// `STORE_ID=<id>`, and exit without serving. Run it once after restoring the
    /// database from a copy: every gateway then fetches the restored content,
    /// whatever revision it holds.
    #[arg(long)]
    new_store_identity: bool,
    /// Start a signing key rotation in `--data` and exit without serving: the
    /// key becomes the previous one, a new key is made and printed. Until
    /// `--end-signing-key-overlap`, snapshots carry both keys' signatures.
    #[arg(long, conflicts_with_all = ["new_store_identity", "end_signing_key_overlap"])]
    rotate_signing_key: bool,
    /// End a signing key rotation's overlap in `--data` and exit without
    /// serving: the previous key is removed and snapshots are signed with the
    /// new key only.
    #[arg(long, conflicts_with = "new_store_identity")]
    end_signing_key_overlap: bool,
}

impl ManagementArgs {
    /// The service options these arguments describe.
    pub(crate) fn options(&self) -> ManagementOptions {
        let mut options = ManagementOptions::new(self.listen, self.data.clone());
        options.admin_token = self.admin_token.clone();
        options.analytics_retention_days = self.analytics_retention_days;
        options.fetch_private_addresses = self.openapi_fetch_private;
        options.key_encryption_key_file = self.key_encryption_key_file.clone();
        options.heartbeat_interval = std::time::Duration::from_secs(self.heartbeat_interval);
        options.tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => TlsMode::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ if self.self_signed => TlsMode::SelfSigned,
            _ => TlsMode::Plain,
        };
        options
    }
}

/// Runs the management plane until SIGTERM or Ctrl-C.
pub(crate) async fn run(args: ManagementArgs) -> anyhow::Result<()> {
    if args.new_store_identity {
        return new_store_identity(&args.data);
    }
    if args.rotate_signing_key || args.end_signing_key_overlap {
        return signing_key_rotation(&args.data, args.rotate_signing_key);
    }
    let signal = ShutdownSignal::install()?;
    let management = Management::start(args.options())
        .await
        .context("starting the management plane")?;
    print_endpoints(&management);
    signal.recv().await;
    tracing::info!("shutting down the management plane");
    management.shutdown().await;
    Ok(())
}

/// `--new-store-identity`: replaces the store's identity and prints the new one.
fn new_store_identity(data: &std::path::Path) -> anyhow::Result<()> {
    let mut store = portcullis_management::store::Store::open(data)
        .with_context(|| format!("opening the store in {}", data.display()))?;
    let old = store.store_id().to_owned();
    let new = store
        .new_store_identity()
        .context("recording the new store identity")?;
    println!("PREVIOUS_STORE_ID={old}");
    println!("STORE_ID={new}");
    Ok(())
}

/// `--rotate-signing-key` (`rotate`) or `--end-signing-key-overlap`: acts on
/// the key files and prints the keys.
fn signing_key_rotation(data: &std::path::Path, rotate: bool) -> anyhow::Result<()> {
    use portcullis_management::signing::SigningKey;
    // Opening the store takes the data directory's lock: a running plane
    // would keep signing with the keys it loaded.
    let store = portcullis_management::store::Store::open(data).with_context(|| {
        format!(
            "opening the store in {} (is a management plane running on it?)",
            data.display()
        )
    })?;
    if rotate {
        let (new, previous) = SigningKey::rotate(data).context("rotating the signing key")?;
        println!("MANAGEMENT_SIGNING_KEY={}", new.to_base64());
        println!("MANAGEMENT_SIGNING_KEY_FINGERPRINT={}", new.fingerprint());
        println!("PREVIOUS_SIGNING_KEY={}", previous.to_base64());
        println!(
            "PREVIOUS_SIGNING_KEY_FINGERPRINT={}",
            previous.fingerprint()
        );
    } else {
        let previous = SigningKey::end_overlap(data).context("ending the signing key overlap")?;
        println!("REMOVED_SIGNING_KEY_FINGERPRINT={}", previous.fingerprint());
    }
    drop(store);
    Ok(())
}

/// Prints what a caller needs, one `KEY=VALUE` per line: the CA to trust (when
/// self-signed), a newly created admin token (shown this once), the public key
/// snapshots are signed with and its fingerprint, and the URL last.
pub(crate) fn print_endpoints(management: &Management) {
    if let Some(ca) = management.ca_path() {
        println!("MANAGEMENT_CA={}", ca.display());
    }
    if let Some(token) = management.created_admin_token() {
        println!("# a new admin token was created; it is not shown again:");
        println!("ADMIN_TOKEN={token}");
    }
    // Public: gateways take it with --management-public-key.
    println!(
        "MANAGEMENT_SIGNING_KEY={}",
        management.signing_key().to_base64()
    );
    println!(
        "MANAGEMENT_SIGNING_KEY_FINGERPRINT={}",
        management.signing_key().fingerprint()
    );
    println!("MANAGEMENT_URL={}", management.base_url());
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::ManagementArgs;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: ManagementArgs,
    }

    #[test]
    fn analytics_retention_defaults_to_30_days_and_is_checked() {
        let cli = Cli::try_parse_from(["management"]).expect("defaults");
        assert_eq!(cli.args.options().analytics_retention_days, 30);
        let cli =
            Cli::try_parse_from(["management", "--analytics-retention-days", "7"]).expect("7 days");
        assert_eq!(cli.args.options().analytics_retention_days, 7);
        assert!(Cli::try_parse_from(["management", "--analytics-retention-days", "0"]).is_err());
    }

    #[test]
    fn private_document_fetches_are_off_unless_asked_for() {
        let cli = Cli::try_parse_from(["management"]).expect("defaults");
        assert!(!cli.args.options().fetch_private_addresses);
        let cli = Cli::try_parse_from(["management", "--openapi-fetch-private"]).expect("flag");
        assert!(cli.args.options().fetch_private_addresses);
    }
}
