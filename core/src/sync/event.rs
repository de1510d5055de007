//! What the sync agent reports for the log: applies, rejections, backup and
//! connectivity changes. The adapter writes each at its severity.

use std::fmt;
use std::time::Duration;

/// How loudly an event should be logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Routine detail.
    Debug,
    /// A normal change of state.
    Info,
    /// Something is wrong; the gateway copes.
    Warn,
    /// Something is wrong that needs an operator.
    Error,
}

/// Where an applied configuration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Fetched from the management plane.
    Management,
    /// Loaded from the backup file at start.
    Backup,
}

/// Something the sync agent did or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A configuration was put in force.
    Applied {
        /// Its revision.
        revision: u64,
        /// The revision it replaced.
        previous: Option<u64>,
        /// Where it came from.
        origin: Origin,
    },
    /// A fetched snapshot was not applied; the configuration in force stays.
    Rejected {
        /// Its revision, when it could be read.
        revision: Option<u64>,
        /// Why.
        error: String,
    },
    /// A management signing key is trusted from now on (trust on first use):
    /// an operator compares the fingerprint with the one the plane printed.
    SigningKeyPinned {
        /// The key's fingerprint (`SHA256:..`).
        fingerprint: String,
        /// Pinned by the backup rather than by a fetched snapshot.
        from_backup: bool,
    },
    /// The pinned management key endorsed the plane's new key (both signed a
    /// snapshot during a rotation's overlap): the pin moved to it.
    SigningKeyRotated {
        /// The fingerprint of the key pinned until now.
        from: String,
        /// The fingerprint of the key pinned from now on.
        to: String,
    },
    /// A snapshot was applied without a signature to check (an older plane,
    /// and no management key configured or pinned).
    Unverified {
        /// Its revision.
        revision: u64,
    },
    /// The first fetch was answered.
    Connected,
    /// A fetch failed after the previous one succeeded (or at start).
    ConnectivityLost {
        /// What failed.
        error: String,
        /// No fetch has succeeded yet.
        at_start: bool,
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// Another fetch failed during an outage.
    FetchFailed {
        /// What failed.
        error: String,
        /// Consecutive failures so far.
        failures: u32,
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// The management plane refused the token (401): expired, revoked or forged.
    Unauthorized {
        /// The server's explanation.
        detail: String,
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// A fetch succeeded after failures.
    ConnectivityRestored {
        /// Consecutive failures before it.
        failures: u32,
    },
    /// The server answered a long poll much sooner than asked, without a change:
    /// it ignores `wait`, so plain polling takes over for a while.
    LongPollIgnored {
        /// How long the poll asked the server to wait.
        asked: Duration,
        /// How soon it answered.
        answered_after: Duration,
    },
    /// No backup file exists yet.
    BackupMissing,
    /// The backup file was not used (damaged, wrong key, tampered, invalid).
    BackupRejected {
        /// Why.
        error: String,
    },
    /// The backup is valid but a fetched configuration is already in force.
    BackupStale {
        /// The backup's revision.
        revision: u64,
    },
    /// The applied configuration was written to the backup file.
    BackupSaved {
        /// Its revision.
        revision: u64,
    },
    /// Writing the backup file failed.
    BackupSaveFailed {
        /// The revision that was not saved.
        revision: u64,
        /// Why.
        error: String,
    },
    /// A heartbeat was not accepted.
    HeartbeatFailed {
        /// Why.
        error: String,
        /// Fetches are failing too: expected, and already reported.
        disconnected: bool,
    },
}

impl Event {
    /// How loudly to log it.
    pub fn severity(&self) -> Severity {
        match self {
            Event::Applied { .. }
            | Event::Connected
            | Event::ConnectivityRestored { .. }
            | Event::BackupMissing
            | Event::BackupStale { .. }
            | Event::LongPollIgnored { .. } => Severity::Info,
            Event::BackupSaved { .. }
            | Event::HeartbeatFailed {
                disconnected: true, ..
            } => Severity::Debug,
            Event::FetchFailed { .. }
            | Event::ConnectivityLost { .. }
            | Event::HeartbeatFailed { .. }
            | Event::SigningKeyPinned { .. }
            | Event::SigningKeyRotated { .. }
            | Event::Unverified { .. } => Severity::Warn,
            Event::Rejected { .. }
            | Event::Unauthorized { .. }
            | Event::BackupRejected { .. }
            | Event::BackupSaveFailed { .. } => Severity::Error,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Applied {
                revision,
                previous,
                origin,
            } => {
                let from = match origin {
                    Origin::Management => "from the management plane",
                    Origin::Backup => "from the backup file",
                };
                match previous {
                    Some(p) => write!(f, "configuration revision {revision} applied {from} (was {p})"),
                    None => write!(f, "configuration revision {revision} applied {from}"),
                }
            }
            Event::Rejected {
                revision: Some(r),
                error,
            } => write!(
                f,
                "configuration revision {r} rejected, keeping the configuration in force: {error}"
            ),
            Event::Rejected {
                revision: None,
                error,
            } => write!(
                f,
                "configuration rejected, keeping the configuration in force: {error}"
            ),
            Event::Connected => f.write_str("connected to the management plane"),
            Event::ConnectivityLost {
                error,
                at_start: true,
                retry_in,
            } => write!(
                f,
                "management plane unreachable: {error}; retrying in {retry_in:.1?}"
            ),
            Event::ConnectivityLost {
                error, retry_in, ..
            } => write!(
                f,
                "connectivity to the management plane lost: {error}; serving the configuration in force, retrying in {retry_in:.1?}"
            ),
            Event::FetchFailed {
                error,
                failures,
                retry_in,
            } => write!(
                f,
                "management plane still unreachable ({failures} failures): {error}; retrying in {retry_in:.1?}"
            ),
            Event::Unauthorized { detail, retry_in } => write!(
                f,
                "management plane refused the gateway token (expired or invalid: {detail}); serving the configuration in force, retrying in {retry_in:.1?}"
            ),
            Event::ConnectivityRestored { failures } => write!(
                f,
                "connectivity to the management plane restored after {failures} failed attempts"
            ),
            Event::LongPollIgnored {
                asked,
                answered_after,
            } => write!(
                f,
                "management plane answered a {asked:?} long poll after {answered_after:.1?}; polling instead"
            ),
            Event::BackupMissing => f.write_str("no configuration backup yet"),
            Event::SigningKeyPinned {
                fingerprint,
                from_backup: false,
            } => write!(
                f,
                "trusting the management signing key {fingerprint} on first use; compare it \
                 with the fingerprint `portcullis management` printed"
            ),
            Event::SigningKeyPinned {
                fingerprint,
                from_backup: true,
            } => write!(
                f,
                "trusting the management signing key {fingerprint}, pinned in the configuration backup"
            ),
            Event::SigningKeyRotated { from, to } => write!(
                f,
                "trusting the management signing key {to} from now on: the key pinned until \
                 now, {from}, signed beside it (a key rotation)"
            ),
            Event::Unverified { revision } => write!(
                f,
                "configuration revision {revision} applied unverified: it is not signed (an older \
                 management plane) and no management key is configured or pinned"
            ),
            Event::BackupRejected { error } => {
                write!(f, "configuration backup rejected, not served: {error}")
            }
            Event::BackupStale { revision } => write!(
                f,
                "configuration backup (revision {revision}) not used: a fetched configuration is in force"
            ),
            Event::BackupSaved { revision } => {
                write!(f, "configuration backup saved (revision {revision})")
            }
            Event::BackupSaveFailed { revision, error } => write!(
                f,
                "configuration backup of revision {revision} not saved: {error}"
            ),
            Event::HeartbeatFailed { error, .. } => write!(f, "heartbeat failed: {error}"),
        }
    }
}
