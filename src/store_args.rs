//! The gateway's shared-state store flags (`--store` and its settings).

use anyhow::Context as _;
use portcullis_core::config::store::{Counting, OnFailure, StoreSettings, StoreUrl};

/// Where rate limits, quotas, concurrency slots and the external cache live.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// `local` (this replica counts alone) or a Redis URL
    /// (`redis://[user:password@]host[:port][/db]`, `rediss://` for TLS) shared
    /// by every replica. Wins over the management plane's setting for this
    /// gateway [default: that setting, else local].
    #[arg(long, env = "PORTCULLIS_STORE", hide_env_values = true)]
    store: Option<String>,
    /// `exact` (one atomic Redis round trip per decision: the replicas never
    /// admit more than the limit together) or `approximate` (counted locally,
    /// synced every --store-sync-interval-ms: no round trip, bounded overshoot).
    #[arg(long, default_value = "exact", env = "PORTCULLIS_STORE_COUNTING", value_parser = parse_counting)]
    store_counting: Counting,
    /// When Redis does not answer in time: `open` (limits let requests through,
    /// as APIM does) or `closed` (limits answer 503 with Retry-After).
    #[arg(long, default_value = "open", env = "PORTCULLIS_STORE_ON_FAILURE", value_parser = parse_on_failure)]
    store_on_failure: OnFailure,
    /// Bound on one Redis call, in milliseconds.
    #[arg(long, default_value_t = portcullis_core::config::store::DEFAULT_TIMEOUT_MS, env = "PORTCULLIS_STORE_TIMEOUT_MS")]
    store_timeout_ms: u64,
    /// Approximate counting: milliseconds between syncs with Redis.
    #[arg(long, default_value_t = portcullis_core::config::store::DEFAULT_SYNC_INTERVAL_MS, env = "PORTCULLIS_STORE_SYNC_INTERVAL_MS")]
    store_sync_interval_ms: u64,
    /// Prefix of every Redis key [default: portcullis:{gateway id}:].
    #[arg(long, env = "PORTCULLIS_STORE_KEY_PREFIX")]
    store_key_prefix: Option<String>,
}

impl StoreArgs {
    /// The settings the flags give, `None` when `--store` is not set.
    pub fn settings(&self) -> anyhow::Result<Option<StoreSettings>> {
        let Some(url) = &self.store else {
            return Ok(None);
        };
        let url: StoreUrl = url.parse().context("--store")?;
        let settings = StoreSettings {
            url,
            counting: self.store_counting,
            on_failure: self.store_on_failure,
            timeout_ms: self.store_timeout_ms,
            sync_interval_ms: self.store_sync_interval_ms,
            key_prefix: self.store_key_prefix.clone(),
            ..StoreSettings::default()
        };
        settings.validate().context("--store settings")?;
        Ok(Some(settings))
    }
}

fn parse_counting(text: &str) -> Result<Counting, String> {
    match text {
        "exact" => Ok(Counting::Exact),
        "approximate" => Ok(Counting::Approximate),
        other => Err(format!("'{other}': use exact or approximate")),
    }
}

fn parse_on_failure(text: &str) -> Result<OnFailure, String> {
    match text {
        "open" => Ok(OnFailure::Open),
        "closed" => Ok(OnFailure::Closed),
        other => Err(format!("'{other}': use open or closed")),
    }
}
