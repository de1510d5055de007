//! Gateway ↔ management plane: tokens, the sync agent and the configuration backup.
//!
//! [`agent::SyncAgent`] decides everything (when to fetch, back off, apply, save,
//! heartbeat); [`protocol::Endpoint`] builds its HTTP requests and reads their
//! responses; [`backup`] is the encrypted backup file format.

pub mod agent;
pub mod backoff;
pub mod backup;
pub mod backup_file;
pub mod backup_key;
pub mod content;
pub mod credential;
pub mod event;
pub mod heartbeat;
pub mod protocol;
pub mod renewal;
pub mod settings;
pub mod signature;
pub mod token;
pub mod token_file;
pub mod trust;

pub use agent::{FetchResult, Output, SyncAgent, SyncStatus};
pub use backup_key::{BackupKey, BackupKeyError};
pub use content::ContentId;
pub use event::{Event, Origin, Severity};
pub use heartbeat::{BackupStatus, Connectivity, Health, Heartbeat};
pub use settings::{AgentSetup, BackupSettings, SyncSettings, SyncTiming};
