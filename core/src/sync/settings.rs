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

impl AgentSetup {
    /// Settings for a connected gateway from its options and 32 random bytes the
    /// adapter drew from the OS (the jitter seed, the backup nonces' seed and, when
    /// none is given, the instance id come from them). `hostname` is asked only
    /// when the options name none.
    pub fn new(
        options: &crate::options::ManagedOptions,
        random: [u8; 32],
        hostname: impl FnOnce() -> String,
    ) -> AgentSetup {
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&random[..8]);
        let mut nonce_seed = [0u8; 12];
        nonce_seed.copy_from_slice(&random[8..20]);
        let instance_id = if options.instance_id.is_empty() {
            random[20..28].iter().map(|b| format!("{b:02x}")).collect()
        } else {
            options.instance_id.clone()
        };
        let hostname = if options.hostname.is_empty() {
            hostname()
        } else {
            options.hostname.clone()
        };
        let mut settings = SyncSettings::new(instance_id, hostname);
        settings.timing = options.timing;
        settings.management_keys = options.management_public_keys.clone();
        // A token that does not parse stops the gateway before the agent runs
        // (the endpoint refuses it); an empty id then binds nothing real.
        let gateway_id = super::token::parse(&options.token)
            .map(|t| t.gateway_id.to_owned())
            .unwrap_or_default();
        settings.backup = options.backup.as_ref().map(|b| BackupSettings {
            key: b.key.clone(),
            gateway_id,
            nonce_seed,
        });
        AgentSetup {
            settings,
            seed: u64::from_le_bytes(seed),
        }
    }
}
