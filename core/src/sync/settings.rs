//! How the sync agent paces itself, who it reports as, and its backup key.

use std::time::Duration;

use super::backoff::BackoffPolicy;
use super::backup_key::BackupKey;

/// Intervals and timeouts of the sync agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncTiming {
    /// Plain polling interval, when long polls are not answered as asked or a
    /// snapshot was rejected (10 s).
    pub poll_interval: Duration,
    /// How long a long poll asks the server to hold the request (30 s).
    pub long_poll_wait: Duration,
    /// After the server was found to ignore `wait`, how long until long polls are
    /// tried again (10 min).
    pub long_poll_retry: Duration,
    /// Timeout of a plain request; a long poll gets its wait on top (10 s).
    pub request_timeout: Duration,
    /// Heartbeat interval (60 s).
    pub heartbeat_interval: Duration,
    /// Backoff after failed fetches (1 s doubling to 5 s, jittered); while no
    /// configuration is in force its ceiling stays within `poll_interval`.
    pub backoff: BackoffPolicy,
}

impl Default for SyncTiming {
    fn default() -> Self {
        SyncTiming {
            poll_interval: Duration::from_secs(10),
            long_poll_wait: Duration::from_secs(30),
            long_poll_retry: Duration::from_secs(600),
            request_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(60),
            backoff: BackoffPolicy::default(),
        }
    }
}

/// The backup: the key files are sealed under and where nonces start.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// The AES-256-GCM key.
    pub key: BackupKey,
    /// This gateway's id (from its token): files are bound to it, and a file of
    /// another gateway is neither served nor overwritten.
    pub gateway_id: String,
    /// 12 random bytes from the OS, fresh at each process start; nonces are this
    /// with a counter folded in, so they never repeat under the key.
    pub nonce_seed: [u8; 12],
}

/// Everything the sync agent is configured with.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Intervals and timeouts.
    pub timing: SyncTiming,
    /// This gateway process, for heartbeats.
    pub instance_id: String,
    /// The host it runs on, for heartbeats.
    pub hostname: String,
    /// The gateway version, for heartbeats.
    pub version: String,
    /// The configuration backup, if one is kept.
    pub backup: Option<BackupSettings>,
    /// The keys snapshots must be signed with (any one); empty: trust on first use.
    pub management_keys: Vec<super::signature::PublicKey>,
}

impl SyncSettings {
    /// Default timing, this crate's version, no backup.
    pub fn new(instance_id: impl Into<String>, hostname: impl Into<String>) -> Self {
        SyncSettings {
            timing: SyncTiming::default(),
            instance_id: instance_id.into(),
            hostname: hostname.into(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            backup: None,
            management_keys: Vec::new(),
        }
    }
}

/// What a connected gateway's sync agent starts from: its settings and seed.
#[derive(Debug, Clone)]
pub struct AgentSetup {
    /// The agent's settings.
    pub settings: SyncSettings,
    /// The agent's jitter seed.
    pub seed: u64,
}
