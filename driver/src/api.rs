//! What a runtime crate re-exports for its users besides its `Gateway` and
//! `Callouts` types: one list, so the runtime crates stay small and alike.

pub use crate::backup_file::BACKUP_FILE_NAME;
pub use crate::config_file::{load_config, ConfigFileError as ConfigError};
pub use crate::gateway::GatewayError;
pub use crate::jwks::{JwksOptions, JwksRefresher, KeySetCallback};
pub use crate::options::{
    BackupOptions, CertificateFiles, ConfigOrigin, GatewayOptions, HttpsOptions, ManagedOptions,
    TelemetryOptions, DEFAULT_HTTPS_LISTEN, MAX_SNAPSHOT_BYTES,
};
pub use crate::shared_config::SharedConfig;
pub use crate::sync::SyncSetupError;
pub use crate::tls_server::{CertError, ServerTlsError};
pub use crate::upstream::TlsSetupError;
pub use portcullis_core::callout::CalloutFailure;
pub use portcullis_core::sync::{
    BackupKey, BackupKeyError, BackupStatus, Connectivity, Health, SyncStatus, SyncTiming,
};
