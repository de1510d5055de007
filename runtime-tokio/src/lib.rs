//! The tokio adapter of the Portcullis gateway: sockets, timers and files.
//!
//! It moves bytes and events between sockets and the sans-IO machines of
//! `portcullis-core` and sleeps until the deadlines they hand it. It makes no HTTP
//! decision of its own.

mod backup_file;
mod callout;
mod config_file;
mod connection;
mod env;
mod gateway;
mod jwks;
mod ops;
mod sync;
mod telemetry;
mod upstream;

pub use backup_file::BACKUP_FILE_NAME;
pub use callout::Callouts;
pub use config_file::{load_config, ConfigError, SharedConfig};
#[cfg(feature = "sabotage")]
pub use env::Sabotage;
pub use env::{
    Blocking, BoxFuture, Disk, Environment, Io, Listener, Net, NetStream, OsDisk, TokioNet,
};
pub use gateway::{Gateway, GatewayError};
pub use jwks::{JwksOptions, JwksRefresher, KeySetCallback};
pub use portcullis_core::callout::CalloutFailure;
pub use portcullis_core::sync::{
    BackupKey, BackupKeyError, BackupStatus, Connectivity, Health, SyncStatus, SyncTiming,
};
pub use portcullis_driver::options::{
    BackupOptions, ConfigOrigin, GatewayOptions, ManagedOptions, MAX_SNAPSHOT_BYTES,
};
pub use sync::SyncSetupError;
pub use upstream::TlsSetupError;

/// The current time as the core expects it.
///
/// Taken from tokio's clock so a simulation (turmoil) that drives tokio's time also
/// drives the core's.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
