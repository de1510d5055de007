//! The smol adapter of the Portcullis gateway: sockets, timers and files on smol.
//!
//! Like the tokio adapter, it moves bytes and events between sockets, files and
//! timers and the sans-IO machines of `portcullis-core`, and sleeps until the
//! deadlines they hand it. It makes no HTTP, policy or sync decision of its own.
//! Tasks run on smol's global executor (`smol::spawn`; `SMOL_THREADS` threads).

mod backup_file;
mod callout;
mod config_file;
mod connection;
mod gateway;
mod jwks;
mod ops;
mod stop;
mod sync;
mod telemetry;
mod upstream;

pub use backup_file::BACKUP_FILE_NAME;
pub use callout::Callouts;
pub use config_file::{load_config, ConfigError, SharedConfig};
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
pub(crate) fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// Runs `fut` for at most `limit`; `None` if the time ran out first.
pub(crate) async fn timeout<T>(
    limit: std::time::Duration,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    timeout_at(now() + limit, fut).await
}

/// Runs `fut` until `deadline`; `None` if the deadline passed first.
pub(crate) async fn timeout_at<T>(
    deadline: std::time::Instant,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    smol::future::or(async { Some(fut.await) }, async {
        smol::Timer::at(deadline).await;
        None
    })
    .await
}
